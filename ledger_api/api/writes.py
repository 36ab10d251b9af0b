"""The write side of the service: custody of signing keys, sealed document storage, the outbox.

Every HTTP write follows ARCHITECTURE §4 "Submit": canonicalize → commitment → seal (AES-256-GCM,
data key wrapped for each entitled agency's X25519 key) → store in the content store → journal in
the outbox (group commit, one fsync for all concurrent requests) → 202 with a tracking id. The
:class:`~ledger_api.outbox.OutboxWorker` thread then sends, confirms and repairs; a write is never
lost and never anchored twice, whatever dies when (see ``ledger_api.outbox``).

* :class:`GroupCommitter` gathers concurrent submissions into one ``Outbox.submit_many``.
* :class:`DocumentVault` remembers, per plaintext sha256, the envelope CID and its key wraps, so a
  retried upload reuses the same envelope (idempotent) and agencies holding a wrap can decrypt.
* :class:`WriteService` is what routes use (``request.app.state.writes``).
"""

from __future__ import annotations

import asyncio
import queue
import re
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ledger_api.api.health import HealthReport
from ledger_api.chain._tx_calls import LedgerCall
from ledger_api.documents import AgencyPrivateKey, AgencyPublicKey, ContentStore, Keyring, seal
from ledger_api.documents._cid import Cid
from ledger_api.errors import (
    AccessRevoked,
    DocumentNotFound,
    IdempotencyConflict,
    InvalidSubmission,
    JournalBusy,
    LedgerError,
    NoCustody,
    OutboxError,
    SubmissionNotFound,
)
from ledger_api.models import Identity
from ledger_api.outbox import EntryState, Outbox, OutboxEntry, OutboxWorker

__all__ = [
    "DocumentVault",
    "GroupCommitter",
    "OutboxHealth",
    "StoreHealth",
    "StoredEnvelope",
    "WriteService",
    "journal_key",
]

#: Idempotency keys chosen by clients: printable, bounded.
_IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9._:\-]{8,128}$")


def journal_key(caller: Identity, idempotency_key: str) -> str:
    """The outbox key for a client's ``Idempotency-Key``: namespaced by the caller, so two callers
    can never collide (or probe each other's keys)."""
    if not _IDEMPOTENCY_KEY.match(idempotency_key):
        raise InvalidSubmission("Idempotency-Key must be 8-128 characters of A-Z a-z 0-9 . _ : -")
    return f"{caller.address.lower()}/{idempotency_key}"


# ---------------------------------------------------------------------------------------- group commit


@dataclass(slots=True)
class _Pending:
    key: str
    call: LedgerCall
    signer: str
    done: threading.Event = field(default_factory=threading.Event)
    result: OutboxEntry | LedgerError | None = None


class GroupCommitter:
    """Journals concurrent submissions together: one SQLite transaction and one fsync per group.

    A single thread owns the journal writes; callers block (in a worker thread) or await until
    their request is durable. Groups form naturally: while one fsync runs, the next requests queue.
    """

    def __init__(self, outbox: Outbox, *, max_group: int = 512) -> None:
        self._outbox = outbox
        self._max_group = max_group
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="outbox-group-commit", daemon=True)
        self._thread.start()
        #: Groups committed and requests journaled (for metrics and benchmarks).
        self.groups = 0
        self.requests = 0

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            stop = False
            while len(group) < self._max_group:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                group.append(item)
            self._commit(group)
            if stop:
                return

    def _commit(self, group: list[_Pending]) -> None:
        try:
            results: Sequence[OutboxEntry | LedgerError] = self._outbox.submit_many(
                [(p.key, p.call, p.signer) for p in group]
            )
        except LedgerError as exc:
            results = [exc] * len(group)
        except Exception as exc:  # noqa: BLE001 - a journal failure must reach every waiter, not kill the thread
            results = [JournalBusy(f"journal write failed: {type(exc).__name__}")] * len(group)
        self.groups += 1
        self.requests += len(group)
        for pending, result in zip(group, results, strict=True):
            pending.result = result
            pending.done.set()

    def submit(self, key: str, call: LedgerCall, signer: str, *, timeout: float = 30.0) -> OutboxEntry:
        """Journal one request durably (blocking); raises :class:`IdempotencyConflict` on a reused key."""
        pending = _Pending(key=key, call=call, signer=signer)
        self._queue.put(pending)
        if not pending.done.wait(timeout):
            # Still queued: it may be journaled later — a retry with the same idempotency key then
            # returns that entry, so nothing is written twice.
            raise JournalBusy("the write journal did not take the request in time; retry with the same key")
        if isinstance(pending.result, LedgerError):
            raise pending.result
        assert pending.result is not None
        return pending.result

    async def submit_async(self, key: str, call: LedgerCall, signer: str) -> OutboxEntry:
        """:meth:`submit` from async code (waits in a worker thread, never blocks the event loop)."""
        return await asyncio.to_thread(self.submit, key, call, signer)

    def close(self) -> None:
        """Finish queued requests and stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout=10)


# ---------------------------------------------------------------------------------------- document vault


@dataclass(frozen=True, kw_only=True, slots=True)
class StoredEnvelope:
    """A sealed document in the content store."""

    sha256: bytes  # of the plaintext (anchored)
    cid: str  # of the envelope (anchored, binary form via :meth:`cid_bytes`)
    keyring: Keyring

    def cid_bytes(self) -> bytes:
        """The binary CID as anchored on chain."""
        return Cid.parse(self.cid).to_bytes()


class DocumentVault:
    """Sealed envelopes and their key wraps (SQLite; wraps are ciphertext, not secrets).

    One plaintext (sha256) can have several envelopes: each upload is sealed for the agencies it is
    entitled to, and an envelope's wraps are never replaced by another upload's (a trader sharing
    the same invoice with a second jurisdiction must not take it away from the first). Sealing uses
    a fresh random data key, so :meth:`seal_and_store` reuses an envelope that already covers the
    requested recipients: a retried upload anchors the same CID (idempotent).
    """

    def __init__(self, path: Path, store: ContentStore) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS sealed (cid TEXT PRIMARY KEY, sha256 BLOB NOT NULL, "
            "keyring TEXT NOT NULL, created_at REAL NOT NULL)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS sealed_sha256 ON sealed(sha256, created_at)")
        legacy = self._db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='envelopes'").fetchone()
        if legacy:  # one row per sha256 (before several envelopes per document)
            self._db.execute("INSERT OR IGNORE INTO sealed SELECT cid, sha256, keyring, created_at FROM envelopes")
            self._db.execute("DROP TABLE envelopes")
        self._lock = threading.Lock()
        self.store = store

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def envelopes(self, sha256: bytes) -> list[StoredEnvelope]:
        """Every envelope of plaintext ``sha256``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT cid, keyring FROM sealed WHERE sha256 = ? ORDER BY created_at, cid", (sha256,)
            ).fetchall()
        return [StoredEnvelope(sha256=sha256, cid=r[0], keyring=Keyring.from_json(r[1])) for r in rows]

    def get(self, sha256: bytes) -> StoredEnvelope | None:
        """The first envelope recorded for plaintext ``sha256``, if any."""
        found = self.envelopes(sha256)
        return found[0] if found else None

    def for_agency(self, sha256: bytes, agency_id: str) -> StoredEnvelope | None:
        """An envelope of ``sha256`` holding a key wrap for ``agency_id``, if any."""
        return next((e for e in self.envelopes(sha256) if agency_id in e.keyring.agencies), None)

    def by_cid(self, cid: str) -> StoredEnvelope | None:
        """The envelope stored under content identifier ``cid`` (string form), if any."""
        with self._lock:
            row = self._db.execute("SELECT sha256, keyring FROM sealed WHERE cid = ?", (cid,)).fetchone()
        if row is None:
            return None
        return StoredEnvelope(sha256=bytes(row[0]), cid=cid, keyring=Keyring.from_json(row[1]))

    def seal_and_store(
        self, plaintext: bytes, *, recipients: Mapping[str, AgencyPublicKey], sha256: bytes
    ) -> StoredEnvelope:
        """Seal ``plaintext`` for ``recipients`` and put the envelope in the content store (pinned).

        Blocking (content store I/O); raises ``StoreUnavailable`` with nothing recorded if the store
        is down. An envelope of this plaintext that already covers ``recipients`` is reused.
        """
        for known in self.envelopes(sha256):
            if set(recipients) <= set(known.keyring.agencies) and self.store.has(known.cid):
                return known
        sealed = seal(plaintext, document_id="sha256:" + sha256.hex(), recipients=recipients)
        stored = self.store.put(sealed.envelope, max_size=None)
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO sealed (cid, sha256, keyring, created_at) VALUES (?, ?, ?, ?)",
                (stored.cid, sha256, sealed.keyring.to_json(), time.time()),
            )
        return StoredEnvelope(sha256=sha256, cid=stored.cid, keyring=sealed.keyring)

    def update_keyring(self, cid: str, keyring: Keyring) -> None:
        """Replace the wraps of the envelope stored under ``cid`` (grant / revoke / shred)."""
        with self._lock:
            changed = self._db.execute("UPDATE sealed SET keyring = ? WHERE cid = ?", (keyring.to_json(), cid)).rowcount
        if not changed:
            raise DocumentNotFound(f"no envelope recorded under {cid}")

    def open_for(self, sha256: bytes, *, agency_id: str, private_key: AgencyPrivateKey, max_size: int) -> bytes:
        """Fetch, verify and decrypt the document for ``agency_id``.

        Raises :class:`DocumentNotFound` (no envelope), :class:`AccessRevoked` (none with a wrap for
        this agency), ``IntegrityError`` / ``TamperedEnvelope`` if bytes were altered anywhere.
        """
        from ledger_api.documents import open_envelope  # noqa: PLC0415 - keeps import of this module light

        envelopes = self.envelopes(sha256)
        if not envelopes:
            raise DocumentNotFound(f"no stored envelope for sha256 {sha256.hex()}")
        envelope = next((e for e in envelopes if agency_id in e.keyring.agencies), None)
        if envelope is None:
            raise AccessRevoked(envelopes[0].keyring.document_id, agency_id)
        raw = self.store.read(envelope.cid, max_size=max_size)
        return open_envelope(raw, envelope.keyring, agency_id=agency_id, private_key=private_key)


# ---------------------------------------------------------------------------------------- the service


class WriteService:
    """What the write routes share: keys held, journal, committer, vault, agencies' decryption keys."""

    def __init__(
        self,
        *,
        outbox: Outbox,
        custody: Sequence[str],
        vault: DocumentVault,
        decryption_keys: Mapping[str, AgencyPrivateKey] | None = None,
        max_document: int = 64 * 1024 * 1024,
    ) -> None:
        self.outbox = outbox
        self.custody = frozenset(a.lower() for a in custody)
        self.vault = vault
        self.committer = GroupCommitter(outbox)
        self.decryption_keys = dict(decryption_keys or {})
        self.max_document = max_document
        #: Set by the service lifespan (for health and metrics).
        self.worker: OutboxWorker | None = None

    def close(self) -> None:
        """Stop the committer and close the journal and the vault."""
        self.committer.close()
        self.vault.close()

    def require_custody(self, caller: Identity) -> None:
        """Raise :class:`NoCustody` unless this service holds the caller's signing key."""
        if caller.address.lower() not in self.custody:
            raise NoCustody(f"this service holds no signing key for {caller.address}")

    async def journal(self, caller: Identity, idempotency_key: str, call: LedgerCall) -> OutboxEntry:
        """Journal ``call`` for ``caller`` under its idempotency key; durable when this returns.

        A retry with the same key and the same call returns the first entry;
        a different call under a used key raises :class:`IdempotencyConflict`.
        """
        self.require_custody(caller)
        key = journal_key(caller, idempotency_key)
        try:
            return await self.committer.submit_async(key, call, caller.address)
        except IdempotencyConflict:
            raise IdempotencyConflict(idempotency_key) from None

    def tracked(self, caller: Identity, tracking_id: str) -> OutboxEntry:
        """The caller's own journal entry ``tracking_id`` (404 for anyone else's, or none)."""
        if not tracking_id.isdigit() or len(tracking_id) > 18:
            raise SubmissionNotFound(tracking_id)
        try:
            entry = self.outbox.get(int(tracking_id))
        except OutboxError:
            raise SubmissionNotFound(tracking_id) from None
        if entry.signer.lower() != caller.address.lower():
            raise SubmissionNotFound(tracking_id)
        return entry


def entry_status(entry: OutboxEntry) -> str:
    """``pending`` (journaled, not yet final), ``final`` or ``failed``."""
    if entry.state == EntryState.FINAL:
        return "final"
    if entry.state == EntryState.FAILED:
        return "failed"
    return "pending"


# ---------------------------------------------------------------------------------------- health


class OutboxHealth:
    """The write journal: backlog by state, age of the oldest active entry, the worker's last error."""

    name = "outbox"

    def __init__(self, writes: WriteService, *, max_age: float = 120.0) -> None:
        self._writes = writes
        self._max_age = max_age

    async def check(self) -> HealthReport:
        """Degraded when the oldest unfinished write is older than ``max_age`` seconds."""
        counts = await asyncio.to_thread(self._writes.outbox.counts)
        active = await asyncio.to_thread(self._writes.outbox.entries, list(EntryState.ACTIVE), limit=1)
        age = time.time() - active[0].created_at if active else 0.0
        facts: dict[str, object] = {
            "backlog": {s: counts.get(s, 0) for s in EntryState.ACTIVE},
            "failed": counts.get(EntryState.FAILED, 0),
            "oldestActiveSeconds": round(age, 1),
        }
        worker = self._writes.worker
        if worker is not None and worker.last_error:
            facts["lastError"] = worker.last_error.split(":", 1)[0]
        if age > self._max_age:
            return HealthReport(status="degraded", detail="writes are waiting for the chain", facts=facts)
        return HealthReport(status="ok", facts=facts)


class StoreHealth:
    """The content store: can a small probe block be written and read back."""

    name = "content_store"
    #: Reads and verification work without it (writes get 503): down → degraded overall.
    critical = False

    def __init__(self, store: ContentStore) -> None:
        self._store = store

    async def check(self) -> HealthReport:
        """Put and read a fixed probe (content-addressed: always the same CID)."""

        def probe() -> str:
            stored = self._store.put(b"customs-ledger health probe\n", pin=False)
            self._store.read(stored.cid)
            return stored.cid

        try:
            await asyncio.to_thread(probe)
        except LedgerError as exc:
            return HealthReport(status="down", detail=exc.code)
        return HealthReport(status="ok", facts={"store": type(self._store).__name__})
