"""The durable outbox: a SQLite journal of every write intent, driven to finality on the chain.

States (see docs/outbox.md for the diagram and the crash-point table)::

    received ──store──▶ stored ──sign+journal──▶ sent ──receipt──▶ mined ──N confirmations──▶ final
        │                 │                       │  ▲                │
        │                 └──revert at estimate──▶ failed ◀─status 0──┘ (decoded domain error)
        │                 └──already on chain────────────────────────▶ mined/final
        └ (content store down: stays received, retried)   └─ rollback / reorg: mined/final ─▶ sent

The invariants that make every crash point recoverable:

1. **Journal before effect.** An entry is committed (``synchronous=FULL``) as ``received`` before
   the caller is told "accepted"; a transaction's signed raw bytes, nonce and hash are committed as
   ``sent`` *before* they are broadcast. Nothing reaches the node that the journal does not know.
2. **Every step is idempotent.** Storing in a content store is content-addressed (same CID);
   rebroadcasting identical raw bytes is a no-op for the node; receipts are looked up by hash.
3. **Nonces are owned by the journal.** A nonce recorded in a ``sent`` entry is never handed out
   again (the client's nonce floor is raised above the journal's maximum on start). If the chain's
   nonce moved past an entry whose transactions have no receipt, the nonce was taken by something
   else: the entry's *anchor* (declaration commitment, stamp report, batch root) is looked up on
   chain — present → done without sending again; absent → signed again with a fresh nonce (the
   contract refuses a second anchor of the same id, so this can never anchor twice).
4. **The chain is the judge on restart.** :meth:`Outbox.reconcile` walks mined/final entries
   newest block first and compares block hashes with the node; entries in blocks the node no
   longer has (a node restarted from an older state, a reorg) go back to ``sent`` and their raw
   bytes are resent with the SAME nonce while it is free.

5. **Bounded.** At most ``max_in_flight`` unmined transactions per signer; an entry is signed
   afresh (out of gas, nonce taken) at most 5 times, then fails for an operator; nothing is sent
   to a node that does not serve the ledger (``LedgerClient.ensure_ledger``).

:class:`OutboxWorker` drives entries forward in batches (pipelined: one JSON-RPC batch per step
and state), backs off while the node is unreachable and reconciles when it comes back.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_utils.address import to_checksum_address

from ledger_api.chain._tx_calls import Anchor, AnchorKind, LedgerCall
from ledger_api.chain.client import LedgerClient, TxHandle, TxReceipt
from ledger_api.errors import (
    ChainUnavailable,
    ContractRevert,
    IdempotencyConflict,
    LedgerError,
    OutboxError,
    StoreUnavailable,
    TransactionError,
    TransactionFailed,
    TransactionRejected,
    UnknownOutboxEntry,
)

__all__ = ["EntryState", "Outbox", "OutboxEntry", "OutboxWorker", "ReconcileReport", "Storer"]


class EntryState:
    """The states of an outbox entry (strings in the journal)."""

    RECEIVED = "received"
    STORED = "stored"
    SENT = "sent"
    MINED = "mined"
    FINAL = "final"
    FAILED = "failed"
    ACTIVE = (RECEIVED, STORED, SENT, MINED)
    TERMINAL = (FINAL, FAILED)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    fingerprint TEXT NOT NULL,          -- sha256 of the request, to detect a reused key
    state TEXT NOT NULL,
    signer TEXT NOT NULL,               -- checksummed address that signs
    request BLOB,                       -- spooled document/request while 'received'
    function TEXT,                      -- ledger function, once 'stored'
    calldata BLOB,
    anchor_kind TEXT,                   -- declaration | stamp | batch | NULL
    anchor_id BLOB,
    nonce INTEGER,
    tx_hash TEXT,                       -- the latest signed transaction
    tx_hashes TEXT NOT NULL DEFAULT '[]',  -- every hash ever signed for this entry (replacements)
    raw_tx BLOB,                        -- exact bytes of tx_hash, for rebroadcast
    gas INTEGER, fee_cap INTEGER, priority_fee INTEGER,
    sent_at REAL,                       -- unix time of the last (re)broadcast
    attempts INTEGER NOT NULL DEFAULT 0,
    block_number INTEGER, block_hash TEXT,
    on_chain_before INTEGER NOT NULL DEFAULT 0,  -- anchor found on chain instead of mined by us
    error_code TEXT, error_name TEXT, error_args TEXT, last_error TEXT,
    created_at REAL NOT NULL, updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_state ON entries(state, id);
CREATE INDEX IF NOT EXISTS entries_block ON entries(block_number);
"""


@dataclass(frozen=True, kw_only=True, slots=True)
class OutboxEntry:
    """One journaled write intent (a row of the journal)."""

    id: int
    idempotency_key: str
    state: str
    signer: str
    request: bytes | None
    call: LedgerCall | None
    nonce: int | None
    tx_hash: str | None
    tx_hashes: tuple[str, ...]
    raw_tx: bytes | None
    gas: int | None
    fee_cap: int | None
    priority_fee: int | None
    sent_at: float | None
    attempts: int
    block_number: int | None
    block_hash: str | None
    on_chain_before: bool
    error_code: str | None
    error_name: str | None
    error_args: dict[str, object] = field(default_factory=dict)
    last_error: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0

    def handle(self) -> TxHandle:
        """The entry's latest transaction as a client handle (only for entries that were sent)."""
        if self.call is None or self.nonce is None or self.raw_tx is None or self.tx_hash is None:
            raise OutboxError(f"outbox entry {self.id} has no signed transaction")
        return TxHandle(
            tx_hash=self.tx_hash, nonce=self.nonce, signer=self.signer, call=self.call, raw=self.raw_tx,
            gas=self.gas or 0, fee_cap=self.fee_cap or 0, priority_fee=self.priority_fee or 0,
        )  # fmt: skip


@dataclass(frozen=True, kw_only=True, slots=True)
class ReconcileReport:
    """What :meth:`Outbox.reconcile` found and did."""

    rolled_back: int  # mined/final entries whose block the node no longer has → sent again
    resent: int  # identical raw bytes rebroadcast (same nonce)
    replaced: int  # same nonce, bumped fees
    re_signed: int  # fresh nonce (old one taken by another transaction)
    found_on_chain: int  # anchor already on chain: done without sending
    mined: int
    failed: int


#: Turns a ``received`` entry into the ledger call to anchor (after putting its documents in the
#: content store). Must be idempotent (content addressing makes it so); may raise StoreUnavailable.
Storer = Callable[[OutboxEntry], LedgerCall]


#: An entry is signed afresh (out of gas, or its nonce taken by a transaction without a receipt)
#: at most this often; then it fails for an operator to look at instead of spending nonces forever.
_MAX_ATTEMPTS = 5


def _fingerprint(kind: bytes, *parts: bytes) -> str:
    digest = hashlib.sha256(kind)
    for part in parts:
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


class Outbox:
    """The journal. Thread-safe; several processes may open the same file (WAL, busy timeout)."""

    def __init__(self, *, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
        deadline = time.monotonic() + 30.0
        while True:  # switching to WAL needs a moment of exclusive access when several processes open at once
            try:
                self._db.execute("PRAGMA busy_timeout=30000")
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(_SCHEMA)
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise OutboxError(f"cannot open the outbox journal {path}: {exc}") from exc
                time.sleep(0.05)
        self._lock = threading.RLock()

    @classmethod
    def open(cls, path: Path) -> Outbox:
        """Open (or create) the journal at ``path``."""
        return cls(path=path)

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ writes (each one transaction)

    def _write(self, statements: Iterable[tuple[str, Sequence[object]]]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    self._db.execute(sql, params)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _insert_many(
        self, rows: Sequence[tuple[str, str, str, str, dict[str, object]]]
    ) -> list[OutboxEntry | IdempotencyConflict]:
        """Insert (key, fingerprint, state, signer, columns) rows in ONE transaction (one fsync).

        ``INSERT .. ON CONFLICT DO NOTHING`` inside ``BEGIN IMMEDIATE`` keeps the key check atomic
        across processes; a key already used for another request yields :class:`IdempotencyConflict`
        for that row only.
        """
        conflicts: dict[str, IdempotencyConflict] = {}
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for key, fingerprint, state, signer, columns in rows:
                    names = ["idempotency_key", "fingerprint", "state", "signer", "created_at", "updated_at", *columns]
                    values = [key, fingerprint, state, signer, now, now, *columns.values()]
                    self._db.execute(
                        f"INSERT INTO entries ({','.join(names)}) VALUES ({','.join('?' * len(names))}) "
                        "ON CONFLICT(idempotency_key) DO NOTHING",
                        values,
                    )
                    stored = self._db.execute("SELECT fingerprint FROM entries WHERE idempotency_key = ?", (key,))
                    if stored.fetchone()[0] != fingerprint:
                        conflicts[key] = IdempotencyConflict(key)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            found = {e.idempotency_key: e for e in self._select_keys([r[0] for r in rows])}
        return [conflicts.get(key) or found[key] for key, *_ in rows]

    def _select_keys(self, keys: Sequence[str]) -> list[OutboxEntry]:
        out: list[OutboxEntry] = []
        for start in range(0, len(keys), 500):
            part = keys[start : start + 500]
            out += self._select(f"idempotency_key IN ({','.join('?' * len(part))})", part)
        return out

    @staticmethod
    def _one(result: OutboxEntry | IdempotencyConflict) -> OutboxEntry:
        if isinstance(result, IdempotencyConflict):
            raise result
        return result

    def submit(self, *, key: str, call: LedgerCall, signer: str) -> OutboxEntry:
        """Journal a ready ledger call (its documents are already stored) under idempotency ``key``.

        Durable (fsync'd) when this returns. The same key with the same call returns the existing
        entry (whatever its state); the same key with a different call raises
        :class:`IdempotencyConflict`.
        """
        return self._one(self.submit_many([(key, call, signer)])[0])

    def submit_many(self, requests: Sequence[tuple[str, LedgerCall, str]]) -> list[OutboxEntry | IdempotencyConflict]:
        """Group commit: journal (key, call, signer) requests in one transaction and one fsync.

        Results are in order; a reused key with different content is an :class:`IdempotencyConflict`
        value for that request only. The HTTP API can gather concurrent requests into one call.
        """
        rows = [
            (key, _fingerprint(b"call", call.function.encode(), call.calldata, signer.lower().encode()),
             EntryState.STORED, signer, self._call_columns(call))
            for key, call, signer in ((k, c, to_checksum_address(a)) for k, c, a in requests)
        ]  # fmt: skip
        return self._insert_many(rows)

    def receive(self, *, key: str, request: bytes, signer: str) -> OutboxEntry:
        """Journal a request whose documents still have to be stored (the worker's ``storer`` does it)."""
        signer = to_checksum_address(signer)
        fingerprint = _fingerprint(b"request", request, signer.lower().encode())
        return self._one(self._insert_many([(key, fingerprint, EntryState.RECEIVED, signer, {"request": request})])[0])

    @staticmethod
    def _call_columns(call: LedgerCall) -> dict[str, object]:
        return {
            "function": call.function,
            "calldata": call.calldata,
            "anchor_kind": call.anchor.kind.value if call.anchor else None,
            "anchor_id": call.anchor.id if call.anchor else None,
        }

    def mark_stored(self, entry_id: int, call: LedgerCall) -> None:
        """``received`` → ``stored``: the documents are in the content store; ``call`` anchors them."""
        cols = self._call_columns(call)
        self._write(
            [
                (
                    "UPDATE entries SET state='stored', request=NULL, function=?, calldata=?, anchor_kind=?, "
                    "anchor_id=?, updated_at=? WHERE id=? AND state='received'",
                    (*cols.values(), time.time(), entry_id),
                )
            ]
        )

    def _sent_statement(self, entry_id: int, handle: TxHandle, hashes: Sequence[str]) -> tuple[str, Sequence[object]]:
        return (
            "UPDATE entries SET state='sent', nonce=?, tx_hash=?, tx_hashes=?, raw_tx=?, gas=?, fee_cap=?, "
            "priority_fee=?, sent_at=?, attempts=attempts+1, block_number=NULL, block_hash=NULL, updated_at=? "
            "WHERE id=?",
            (handle.nonce, handle.tx_hash, json.dumps(list(hashes)), handle.raw, handle.gas, handle.fee_cap,
             handle.priority_fee, time.time(), time.time(), entry_id),
        )  # fmt: skip

    def record_sent(self, sent: Sequence[tuple[OutboxEntry, TxHandle]]) -> None:
        """Journal signed transactions (one fsync for the batch) BEFORE they are broadcast.

        A replacement (same nonce) or re-signed transaction keeps every earlier hash of the entry,
        so whichever of them the chain mined is found.
        """
        self._write(
            [self._sent_statement(entry.id, handle, [*entry.tx_hashes, handle.tx_hash]) for entry, handle in sent]
        )

    def record_broadcast(self, entry_ids: Sequence[int], *, error: str | None = None) -> None:
        """Remember when entries were (re)broadcast, and why the node refused them if it did."""
        now = time.time()
        self._write([("UPDATE entries SET sent_at=?, last_error=?, updated_at=? WHERE id=?", (now, error, now, i))
                     for i in entry_ids])  # fmt: skip

    def note_error(self, entry_id: int, error: str) -> None:
        """Remember a transient problem (content store down, node refusal) without changing state."""
        self._write([("UPDATE entries SET last_error=?, updated_at=? WHERE id=?", (error, time.time(), entry_id))])

    def record_mined(self, mined: Sequence[tuple[int, TxReceipt]], *, final: bool) -> None:
        """``sent`` → ``mined`` (or straight to ``final`` when no confirmations are required)."""
        state = EntryState.FINAL if final else EntryState.MINED
        self._write(
            [
                (
                    "UPDATE entries SET state=?, tx_hash=?, block_number=?, block_hash=?, last_error=NULL, "
                    "updated_at=? WHERE id=?",
                    (state, r.tx_hash, r.block_number, r.block_hash, time.time(), i),
                )
                for i, r in mined
            ]  # fmt: skip
        )

    def record_on_chain(self, entry_ids: Sequence[int], *, block_number: int, block_hash: str, final: bool) -> None:
        """The entry's anchor is already on chain (an earlier attempt or anyone): done, never sent again."""
        state = EntryState.FINAL if final else EntryState.MINED
        self._write(
            [
                (
                    "UPDATE entries SET state=?, on_chain_before=1, block_number=?, block_hash=?, updated_at=? "
                    "WHERE id=?",
                    (state, block_number, block_hash, time.time(), i),
                )
                for i in entry_ids
            ]  # fmt: skip
        )

    def record_final(self, entry_ids: Sequence[int]) -> None:
        """``mined`` → ``final`` (enough confirmations, block still canonical)."""
        now = time.time()
        self._write([("UPDATE entries SET state='final', updated_at=? WHERE id=? AND state='mined'", (now, i))
                     for i in entry_ids])  # fmt: skip

    def record_failed(self, entry_id: int, error: LedgerError, *, receipt: TxReceipt | None = None) -> None:
        """Terminal failure with the decoded domain error (revert at estimate time or status-0 receipt)."""
        name = error.error_name if isinstance(error, ContractRevert) else type(error).__name__
        args = error.args_by_name if isinstance(error, ContractRevert) else {}
        self._write(
            [
                (
                    "UPDATE entries SET state='failed', error_code=?, error_name=?, error_args=?, last_error=?, "
                    "block_number=?, block_hash=?, updated_at=? WHERE id=?",
                    (
                        error.code,
                        name,
                        json.dumps(args, default=str),
                        str(error),
                        receipt.block_number if receipt else None,
                        receipt.block_hash if receipt else None,
                        time.time(),
                        entry_id,
                    ),
                )  # fmt: skip
            ]
        )

    def record_retry(self, entry_id: int, *, reason: str) -> None:
        """A mined-but-failed transaction that did not revert (out of gas): back to ``stored``.

        Its hashes stay in ``tx_hashes`` (so receipts still find them); the next send signs anew.
        """
        self._write(
            [
                (
                    "UPDATE entries SET state='stored', nonce=NULL, tx_hash=NULL, raw_tx=NULL, last_error=?, "
                    "updated_at=? WHERE id=?",
                    (reason, time.time(), entry_id),
                )
            ]
        )

    def record_rollback(self, entries: Sequence[OutboxEntry]) -> None:
        """Entries whose block is gone: back to ``sent`` (resend the raw bytes) or ``stored`` (never sent)."""
        statements: list[tuple[str, Sequence[object]]] = []
        for entry in entries:
            state = EntryState.SENT if entry.raw_tx is not None else EntryState.STORED
            statements.append(
                ("UPDATE entries SET state=?, block_number=NULL, block_hash=NULL, on_chain_before=0, sent_at=0, "
                 "error_code=NULL, error_name=NULL, error_args=NULL, updated_at=? WHERE id=?",
                 (state, time.time(), entry.id))
            )  # fmt: skip
        self._write(statements)

    # ------------------------------------------------------------------ reads

    _COLUMNS = (
        "id, idempotency_key, state, signer, request, function, calldata, anchor_kind, anchor_id, nonce, tx_hash, "
        "tx_hashes, raw_tx, gas, fee_cap, priority_fee, sent_at, attempts, block_number, block_hash, "
        "on_chain_before, error_code, error_name, error_args, last_error, created_at, updated_at"
    )

    @staticmethod
    def _entry(row: tuple[Any, ...]) -> OutboxEntry:
        (id_, key, state, signer, request, function, calldata, anchor_kind, anchor_id, nonce, tx_hash, tx_hashes,
         raw_tx, gas, fee_cap, priority_fee, sent_at, attempts, block_number, block_hash, on_chain_before,
         error_code, error_name, error_args, last_error, created_at, updated_at) = row  # fmt: skip
        call = None
        if function is not None:
            anchor = Anchor(kind=AnchorKind(anchor_kind), id=bytes(anchor_id)) if anchor_kind else None
            call = LedgerCall(function=function, calldata=bytes(calldata), anchor=anchor)
        return OutboxEntry(
            id=id_, idempotency_key=key, state=state, signer=signer,
            request=bytes(request) if request is not None else None, call=call,
            nonce=nonce, tx_hash=tx_hash, tx_hashes=tuple(json.loads(tx_hashes)),
            raw_tx=bytes(raw_tx) if raw_tx is not None else None,
            gas=gas, fee_cap=fee_cap, priority_fee=priority_fee, sent_at=sent_at,
            attempts=attempts, block_number=block_number, block_hash=block_hash,
            on_chain_before=bool(on_chain_before), error_code=error_code, error_name=error_name,
            error_args=json.loads(error_args) if error_args else {}, last_error=last_error,
            created_at=created_at, updated_at=updated_at,
        )  # fmt: skip

    def _select(self, where: str, params: Sequence[object]) -> list[OutboxEntry]:
        with self._lock:
            rows = self._db.execute(f"SELECT {self._COLUMNS} FROM entries WHERE {where}", params).fetchall()
        return [self._entry(r) for r in rows]

    def find(self, key: str) -> OutboxEntry | None:
        """The entry with idempotency ``key``, if any."""
        found = self._select("idempotency_key = ?", (key,))
        return found[0] if found else None

    def get(self, entry_id: int) -> OutboxEntry:
        """The entry with id ``entry_id``; :class:`UnknownOutboxEntry` if there is none."""
        found = self._select("id = ?", (entry_id,))
        if not found:
            raise UnknownOutboxEntry(f"no outbox entry {entry_id}")
        return found[0]

    def entries(
        self, states: Sequence[str], *, limit: int = 1_000_000, signers: Sequence[str] | None = None
    ) -> list[OutboxEntry]:
        """Entries in ``states`` (of ``signers`` if given), oldest first (nonce order for ``sent``)."""
        marks = ",".join("?" * len(states))
        where, params = f"state IN ({marks})", list(states)
        if signers is not None:
            where += f" AND signer IN ({','.join('?' * len(signers))})"
            params += [to_checksum_address(a) for a in signers]
        return self._select(f"{where} ORDER BY nonce IS NULL, nonce, id LIMIT ?", (*params, limit))

    def counts(self) -> dict[str, int]:
        """Number of entries per state (the backlog health reports)."""
        with self._lock:
            rows = self._db.execute("SELECT state, count(*) FROM entries GROUP BY state").fetchall()
        return {str(state): int(n) for state, n in rows}

    def in_flight(self) -> dict[str, int]:
        """Number of ``sent`` (broadcast, not yet mined) entries per signer."""
        with self._lock:
            rows = self._db.execute("SELECT signer, count(*) FROM entries WHERE state='sent' GROUP BY signer")
            return {str(s): int(n) for s, n in rows.fetchall()}

    def max_nonces(self) -> dict[str, int]:
        """Highest nonce the journal ever used, per signer."""
        with self._lock:
            rows = self._db.execute("SELECT signer, max(nonce) FROM entries WHERE nonce IS NOT NULL GROUP BY signer")
            return {str(s): int(n) for s, n in rows.fetchall()}

    def anchored_blocks(self, *, below: int | None = None, limit: int = 64) -> list[tuple[int, str]]:
        """Distinct (block number, block hash) of mined/final entries, newest first, below ``below``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT block_number, block_hash FROM entries WHERE state IN ('mined','final') "
                "AND block_number IS NOT NULL AND block_number < ? ORDER BY block_number DESC LIMIT ?",
                (below if below is not None else 2**62, limit),
            ).fetchall()
        return [(int(n), str(h)) for n, h in rows]

    def entries_in_blocks(self, numbers: Sequence[int]) -> list[OutboxEntry]:
        """Mined/final entries recorded in blocks ``numbers``."""
        marks = ",".join("?" * len(numbers))
        return self._select(f"state IN ('mined','final') AND block_number IN ({marks})", tuple(numbers))

    # ------------------------------------------------------------------ recovery

    def reconcile(self, client: LedgerClient) -> ReconcileReport:
        """Compare every non-final entry (and recent final ones) with the chain and repair the journal.

        0. The node must serve the ledger (chain id, contract code), else :class:`ChainUnavailable`.
        1. Rollback: mined/final entries in blocks the node no longer has go back to ``sent``.
        2. Nonce floors: the client never reuses a nonce the journal holds.
        3. Each ``sent`` entry: mined → mined/final (or failed with its decoded error); unknown to
           the node with its nonce still free → identical bytes resent; nonce taken → anchor found on
           chain (done) or re-signed with a fresh nonce.
        """
        client.ensure_ledger()
        rolled_back = self._detect_rollback(client)
        client.resync_nonces()
        for signer, nonce in self.max_nonces().items():
            try:
                client.raise_nonce_floor(signer, nonce + 1)
            except LedgerError:
                continue  # a signer this client does not hold; its entries stay for another service
        driver = _Driver(outbox=self, client=client, resend_after=0.0, stuck_after=float("inf"))
        tally = driver.advance_sent(self.entries([EntryState.SENT], signers=client.addresses))
        driver.advance_mined(self.entries([EntryState.MINED], signers=client.addresses))
        return ReconcileReport(rolled_back=rolled_back, **tally)

    def _detect_rollback(self, client: LedgerClient, chunk: int = 64) -> int:
        """Walk recorded blocks newest first until one still has the same hash on the node."""
        gone: list[int] = []
        below: int | None = None
        while True:
            part = self.anchored_blocks(below=below, limit=chunk)
            if not part:
                break
            canonical = client.block_hashes([n for n, _ in part])
            matched = False
            for number, block_hash in part:
                if canonical.get(number) == block_hash:
                    matched = True
                    break
                gone.append(number)
            if matched:
                break
            below = part[-1][0]
        if not gone:
            return 0
        entries = self.entries_in_blocks(gone)
        self.record_rollback(entries)
        return len(entries)


def _call(entry: OutboxEntry) -> LedgerCall:
    if entry.call is None:
        raise OutboxError(f"outbox entry {entry.id} has no ledger call yet (state {entry.state})")
    return entry.call


def _pick_receipt(entry: OutboxEntry, receipts: dict[str, TxReceipt]) -> TxReceipt | None:
    """The receipt that decides ``entry``: any successful one (replacements share a nonce, so at most
    one mines), else the failed receipt of its *current* transaction (older failures were retried)."""
    for tx_hash in entry.tx_hashes:
        found = receipts.get(tx_hash)
        if found is not None and found.status == 1:
            return found
    return receipts.get(entry.tx_hash) if entry.tx_hash else None


def _anchors(entries: Iterable[OutboxEntry]) -> list[tuple[OutboxEntry, Anchor]]:
    return [(e, e.call.anchor) for e in entries if e.call is not None and e.call.anchor is not None]


class _Driver:
    """Moves batches of entries one state forward; shared by :meth:`Outbox.reconcile` and the worker."""

    def __init__(
        self,
        *,
        outbox: Outbox,
        client: LedgerClient,
        resend_after: float,
        stuck_after: float,
        max_in_flight: int = 128,
    ) -> None:
        self.outbox = outbox
        self.client = client
        self.max_in_flight = max_in_flight
        self.resend_after = resend_after
        self.stuck_after = stuck_after

    def _mark_on_chain(self, entry_ids: Sequence[int]) -> None:
        if not entry_ids:
            return
        head = self.client.head()
        block_hash = self.client.block_hashes([head])[head] or ""
        self.outbox.record_on_chain(
            entry_ids, block_number=head, block_hash=block_hash, final=self.client.confirmations == 0
        )

    def store(self, entries: Sequence[OutboxEntry], storer: Storer) -> int:
        """``received`` → ``stored`` through ``storer`` (content store); stops at the first outage."""
        done = 0
        for entry in entries:
            try:
                call = storer(entry)
            except StoreUnavailable as exc:
                self.outbox.note_error(entry.id, str(exc))
                break
            self.outbox.mark_stored(entry.id, call)
            done += 1
        return done

    def send(self, entries: Sequence[OutboxEntry]) -> int:
        """``stored`` → ``sent``: estimate (batch), journal signed txs (one fsync), broadcast (batch)."""
        held = {address.lower() for address in self.client.addresses}
        foreign = [e for e in entries if e.signer.lower() not in held]
        for entry in foreign:  # another service (holding that key) will send it
            if entry.last_error is None:
                self.outbox.note_error(entry.id, f"no local key for {entry.signer}")
        # At most `max_in_flight` unmined transactions per signer: node pools cap transactions per
        # sender (Besu's layered pool keeps ~200 future ones), and anvil's automine leaves a large
        # backlog pending until the next transaction arrives.
        quota = {a.lower(): self.max_in_flight - n for a, n in self.outbox.in_flight().items()}
        ready = []
        for entry in entries:
            key = entry.signer.lower()
            if entry.call is not None and key in held and quota.get(key, self.max_in_flight) > 0:
                quota[key] = quota.get(key, self.max_in_flight) - 1
                ready.append(entry)
        if not ready:
            return 0
        gases = self.client.estimate_many([(_call(e), e.signer) for e in ready])
        reverted = [(e, g) for e, g in zip(ready, gases, strict=True) if not isinstance(g, int)]
        with_anchor = _anchors([e for e, _ in reverted])
        found = self.client.anchored([a for _, a in with_anchor]) if with_anchor else []
        exists = {e.id: present for (e, _), present in zip(with_anchor, found, strict=True)}
        self._mark_on_chain([e.id for e, _ in reverted if exists.get(e.id)])
        for entry, error in reverted:
            if not exists.get(entry.id):
                assert isinstance(error, LedgerError)
                self.outbox.record_failed(entry.id, error)
        to_sign = [(e, g) for e, g in zip(ready, gases, strict=True) if isinstance(g, int)]
        if not to_sign:
            return len(reverted)
        handles = self.client.sign_many([(_call(e), e.signer, g) for e, g in to_sign])
        self.outbox.record_sent([(e, h) for (e, _), h in zip(to_sign, handles, strict=True)])
        self._broadcast([e.id for e, _ in to_sign], [h.raw for h in handles])
        return len(ready)

    def _broadcast(self, entry_ids: Sequence[int], raws: Sequence[bytes]) -> None:
        results = self.client.broadcast_many(raws)
        refused = [(i, r) for i, r in zip(entry_ids, results, strict=True) if isinstance(r, TransactionRejected)]
        for entry_id, rejection in refused:
            self.outbox.record_broadcast([entry_id], error=rejection.reason)

    def advance_sent(self, entries: Sequence[OutboxEntry]) -> dict[str, int]:
        """``sent`` → mined/final/failed, or repair: resend, replace (bump), re-sign, found on chain."""
        tally = {"resent": 0, "replaced": 0, "re_signed": 0, "found_on_chain": 0, "mined": 0, "failed": 0}
        if not entries:
            return tally
        receipts = self.client.receipts([h for e in entries for h in e.tx_hashes])
        mined: list[tuple[OutboxEntry, TxReceipt]] = []
        waiting: list[OutboxEntry] = []
        for entry in entries:
            receipt = _pick_receipt(entry, receipts)
            if receipt is not None:
                mined.append((entry, receipt))
            else:
                waiting.append(entry)
        self._record_receipts(mined, tally)
        now = time.time()
        overdue = [e for e in waiting if now - (e.sent_at or 0.0) >= self.resend_after]
        if overdue:
            self._repair(overdue, tally)
        return tally

    def _record_receipts(self, mined: Sequence[tuple[OutboxEntry, TxReceipt]], tally: dict[str, int]) -> None:
        good = [(e.id, r) for e, r in mined if r.status == 1]
        if good:
            head = self.client.head()
            final = [(i, r) for i, r in good if self.client.is_final(r, head)]
            self.outbox.record_mined(final, final=True)
            self.outbox.record_mined([(i, r) for i, r in good if not self.client.is_final(r, head)], final=False)
            tally["mined"] += len(good)
        reverted = [(e, r) for e, r in mined if r.status != 1]
        if not reverted:
            return
        # A reverted anchor whose id is on chain now (anchored concurrently, e.g. the same document
        # under two keys in one batch) is done, not failed.
        with_anchor = _anchors(e for e, _ in reverted)
        present = self.client.anchored([a for _, a in with_anchor]) if with_anchor else []
        done = {e.id for (e, _), p in zip(with_anchor, present, strict=True) if p}
        self._mark_on_chain(sorted(done))
        tally["found_on_chain"] += len(done)
        for entry, receipt in reverted:
            if entry.id in done:
                continue
            call = _call(entry)
            error = self.client.revert_reason(call=call, signer=entry.signer, block_number=receipt.block_number)
            if isinstance(error, TransactionFailed) and entry.attempts < _MAX_ATTEMPTS:
                # No revert on replay: it ran out of gas (a reused estimate). Estimate afresh, send again.
                self.client.forget_estimate(call)
                self.outbox.record_retry(entry.id, reason=f"out of gas in block {receipt.block_number}")
                continue
            self.outbox.record_failed(entry.id, error, receipt=receipt)
            tally["failed"] += 1

    def _repair(self, overdue: Sequence[OutboxEntry], tally: dict[str, int]) -> None:
        states = self.client.states([e.tx_hash for e in overdue if e.tx_hash])
        signers = sorted({e.signer for e in overdue})
        chain_nonces = self.client.nonces_of(signers, "latest")
        resend: list[OutboxEntry] = []
        taken: list[OutboxEntry] = []
        now = time.time()
        for entry in overdue:
            assert entry.tx_hash is not None and entry.nonce is not None
            state = states.get(entry.tx_hash)
            if state is not None and state.where == "mined":
                continue  # mined between the two lookups; the next pass records it
            if state is not None and state.where == "pending":
                if now - (entry.sent_at or 0.0) >= self.stuck_after:
                    self._replace(entry, tally)
                continue
            if chain_nonces[entry.signer] <= entry.nonce:
                resend.append(entry)
            else:
                taken.append(entry)
        if resend:
            self.outbox.record_broadcast([e.id for e in resend])
            self._broadcast([e.id for e in resend], [e.raw_tx or b"" for e in resend])
            tally["resent"] += len(resend)
        if taken:
            self._nonce_taken(taken, tally)

    def _replace(self, entry: OutboxEntry, tally: dict[str, int]) -> None:
        replacement = self.client.replacement_for(entry.handle())
        self.outbox.record_sent([(entry, replacement)])  # journal first: a crash now keeps both hashes
        self._broadcast([entry.id], [replacement.raw])
        tally["replaced"] += 1

    def _nonce_taken(self, taken: Sequence[OutboxEntry], tally: dict[str, int]) -> None:
        """Our nonce was used by a transaction we have no receipt for: never anchor twice."""
        receipts = self.client.receipts([h for e in taken for h in e.tx_hashes])  # re-check: no race
        still = [e for e in taken if _pick_receipt(e, receipts) is None]
        with_anchor = _anchors(still)
        present = self.client.anchored([a for _, a in with_anchor]) if with_anchor else []
        on_chain = [e.id for (e, _), p in zip(with_anchor, present, strict=True) if p]
        self._mark_on_chain(on_chain)
        tally["found_on_chain"] += len(on_chain)
        again = [e for (e, _), p in zip(with_anchor, present, strict=True) if not p]
        for entry in [e for e in again if e.attempts >= _MAX_ATTEMPTS]:
            # Bounded: repeated "nonce taken, no receipt, not on chain" means something else uses
            # this key or the node forgets receipts; stop spending nonces and ask an operator.
            self.outbox.record_failed(
                entry.id,
                TransactionError(
                    f"nonce of {entry.signer} taken {entry.attempts} times by transactions without a receipt "
                    "for this entry; not sent again (another writer on this key, or the node forgets receipts?)"
                ),
            )
            tally["failed"] += 1
        again = [e for e in again if e.attempts < _MAX_ATTEMPTS]
        if again:
            handles = self.client.sign_many([(_call(e), e.signer, e.gas or 0) for e in again])
            self.outbox.record_sent(list(zip(again, handles, strict=True)))
            self._broadcast([e.id for e in again], [h.raw for h in handles])
            tally["re_signed"] += len(again)
        for entry in still:
            if entry.call is not None and entry.call.anchor is None:
                error = TransactionError(
                    f"nonce {entry.nonce} of {entry.signer} was used by a transaction this outbox did not sign; "
                    f"{entry.call.function} has no anchor to check, so it is not sent again"
                )
                self.outbox.record_failed(entry.id, error)
                tally["failed"] += 1

    def advance_mined(self, entries: Sequence[OutboxEntry]) -> int:
        """``mined`` → ``final`` once confirmed and still canonical; back to ``sent`` if the block is gone."""
        if not entries:
            return 0
        head = self.client.head()
        due = [e for e in entries if e.block_number is not None and head - e.block_number >= self.client.confirmations]
        if not due:
            return 0
        canonical = self.client.block_hashes(sorted({e.block_number for e in due if e.block_number is not None}))
        final = [e.id for e in due if canonical.get(e.block_number or 0) == e.block_hash]
        gone = [e for e in due if canonical.get(e.block_number or 0) != e.block_hash]
        self.outbox.record_final(final)
        if gone:
            self.outbox.record_rollback(gone)
        return len(due)


class OutboxWorker:
    """Drives outbox entries to ``final``: pipelined batches, backoff while the node is down, stoppable."""

    def __init__(
        self,
        *,
        outbox: Outbox,
        client: LedgerClient,
        storer: Storer | None = None,
        batch_size: int = 256,
        resend_after: float = 5.0,
        stuck_after: float = 30.0,
        idle_sleep: float = 0.02,
        max_backoff: float = 5.0,
        max_in_flight: int = 128,
    ) -> None:
        self.outbox = outbox
        self.client = client
        self.storer = storer
        self.batch_size = batch_size
        self.idle_sleep = idle_sleep
        self.max_backoff = max_backoff
        self._driver = _Driver(
            outbox=outbox,
            client=client,
            resend_after=resend_after,
            stuck_after=stuck_after,
            max_in_flight=max_in_flight,
        )
        self._reconciled = False
        #: The last error the loop backed off from (for health reporting).
        self.last_error: str | None = None
        #: Running totals of what reconciliation and repair did (for metrics).
        self.totals: dict[str, int] = dict.fromkeys(
            ("rolled_back", "resent", "replaced", "re_signed", "found_on_chain", "mined", "failed"), 0
        )

    def step(self) -> int:
        """One pass over every active state; returns how many entries it touched. Raises ChainUnavailable."""
        if not self._reconciled:
            report = self.outbox.reconcile(self.client)
            for name in self.totals:
                self.totals[name] += getattr(report, name)
            self._reconciled = True
        touched = 0
        if self.storer is not None:
            touched += self._driver.store(
                self.outbox.entries([EntryState.RECEIVED], limit=self.batch_size, signers=self.client.addresses),
                self.storer,
            )
        touched += self._driver.send(
            self.outbox.entries([EntryState.STORED], limit=self.batch_size, signers=self.client.addresses)
        )
        sent = self.outbox.entries([EntryState.SENT], limit=self.batch_size * 4, signers=self.client.addresses)
        tally = self._driver.advance_sent(sent)
        for name, value in tally.items():
            self.totals[name] += value
        touched += tally["mined"] + tally["failed"] + tally["found_on_chain"]
        touched += self._driver.advance_mined(
            self.outbox.entries([EntryState.MINED], limit=self.batch_size * 4, signers=self.client.addresses)
        )
        return touched

    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set; back off exponentially while the node is unreachable, then reconcile."""
        backoff = 0.0
        while not stop.is_set():
            try:
                touched = self.step()
                backoff = 0.0
            except Exception as exc:  # noqa: BLE001 - a daemon loop: never die, back off and report
                # The node is down or answers errors: back off; after an outage, reconcile first
                # (the node may have restarted from an older state).
                backoff = min(self.max_backoff, max(0.1, backoff * 2))
                if not isinstance(exc, LedgerError) or isinstance(exc, ChainUnavailable | TransactionError):
                    self._reconciled = False
                self.last_error = f"{type(exc).__name__}: {exc}"
                stop.wait(backoff)
                continue
            if not touched:
                stop.wait(self.idle_sleep)

    def drain(self, *, timeout: float = 60.0) -> dict[str, int]:
        """Step until no entry is active (or ``timeout``); return the final state counts."""
        deadline = time.monotonic() + timeout
        backoff = 0.05
        while time.monotonic() < deadline:
            try:
                touched = self.step()
            except ChainUnavailable:
                self._reconciled = False
                time.sleep(backoff)
                backoff = min(self.max_backoff, backoff * 2)
                continue
            counts = self.outbox.counts()
            if not any(counts.get(s, 0) for s in EntryState.ACTIVE):
                return counts
            if not touched:
                time.sleep(self.idle_sleep)
        return self.outbox.counts()
