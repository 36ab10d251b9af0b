"""Integrity watch: every anchored document, fetched from the agency stores and re-verified.

For each anchor (declaration, supporting document, stamp report, batch manifest) the oracle finds
the stores that should hold the content — the anchoring agency's store when it is watched, plus
every watched store that has it — and checks each copy:

* **CID**: every block of the DAG is fetched and hashed (the stores re-verify each block; a
  mismatch is :class:`~ledger_api.errors.IntegrityError` naming the block's CID);
* **commitment**: when the content is a ledger envelope and this agency holds a key wrap for it (key
  wraps from the API's document vault, ``<var_dir>/api/documents.db``, read only) and its X25519 key
  is in the keystore, the envelope is opened and sha256(plaintext) compared with the anchored
  sha256; plain (unencrypted) content whose sha256 is the anchored one counts as checked too.

A bad copy is a **finding** recorded once (``ctx.state`` fact ``finding:<reason>:<sha256>:<cid>``)
and posted once as an on-chain alert (``raiseAlert``, subject kind DOCUMENT, subject = the
anchored sha256 — the batch root for manifests) under the deterministic journal key
``alert:<reason>:<sha256>:<cid>``; the evidence hash is sha256 of the finding's canonical JSON, which
``python -m oracles integrity findings`` prints so anyone can re-hash it.

Scheduling: new anchors are checked in the step right after the indexer saw them; every step
re-stats the block files of every embedded-store copy (a changed inode / size / mtime / ctime
triggers a full re-verification of that copy at once: a bit flipped through the file system is
caught within one polling interval for the price of one ``stat`` per block); and every
``LEDGER_ORACLE_INTEGRITY_RECHECK`` seconds a full re-check round re-reads and re-hashes every copy
in every store (IPFS copies, and tampering that bypasses the file system), in bounded slices.

See ``docs/oracles/integrity.md`` for the reason codes and the rules for missing content.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ledger_api.chain import _tx_calls as calls
from ledger_api.documents import (
    DEFAULT_MAX_SIZE,
    ENVELOPE_MAGIC,
    AgencyPrivateKey,
    Cid,
    ContentStore,
    Keyring,
    LocalStore,
    VaultKeyrings,
    fetch_copy,
    verify_commitment,
)
from ledger_api.errors import (
    DocumentNotFound,
    DocumentTooLarge,
    IntegrityError,
    InvalidCid,
    MalformedBlock,
    StoreUnavailable,
)
from ledger_api.hashing import canonical_json
from ledger_api.index import AnchorKind, AnchorView
from ledger_api.outbox import EntryState
from oracles._base import Oracle, OracleContext, log_event, open_context

__all__ = [
    "REASON_COMMITMENT_MISMATCH",
    "REASON_MISSING",
    "REASON_TAMPERED",
    "IntegrityOracle",
    "add_commands",
]

#: ``raiseAlert`` reason codes of the integrity watch (range 4100-4199 is this oracle's).
REASON_TAMPERED = 4101  #: a stored block does not hash to its CID (bytes altered)
REASON_MISSING = 4102  #: content lost: a block or the whole document is gone from a store that should hold it
REASON_COMMITMENT_MISMATCH = 4103  #: the anchored CID's envelope does not open to the anchored sha256
REASONS = {"tampered": REASON_TAMPERED, "missing": REASON_MISSING, "commitment-mismatch": REASON_COMMITMENT_MISMATCH}

SUBJECT_DOCUMENT = 0  #: ``AlertSubject.DOCUMENT``
#: Anchors taken from the read model per step.
ANCHORS_PER_STEP = 500
#: Copies fully verified per step (new, pending and re-check round together) and bytes read per step.
COPIES_PER_STEP = 200
BYTES_PER_STEP = 256 * 1024 * 1024
#: Largest document whose blocks are kept in memory for the commitment check; larger ones get the
#: CID check only (streamed). The stores refuse anything over their own limit as well.
MAX_DOCUMENT_BYTES = DEFAULT_MAX_SIZE
#: Longest error detail kept in a finding.
_DETAIL_MAX = 300

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    doc TEXT PRIMARY KEY,          -- <sha256 hex>:<cid string>
    sha256 TEXT NOT NULL, cid TEXT NOT NULL, kind INTEGER NOT NULL, ref TEXT NOT NULL,
    agency TEXT NOT NULL,          -- anchoring agency code ('' when unknown)
    block_number INTEGER NOT NULL, anchored_at INTEGER NOT NULL,
    first_seen REAL NOT NULL,      -- when this oracle learnt of the anchor
    checked_at REAL,               -- last full check (NULL: never)
    state TEXT NOT NULL DEFAULT 'pending'
);
CREATE INDEX IF NOT EXISTS documents_due ON documents(checked_at);
CREATE TABLE IF NOT EXISTS copies (
    doc TEXT NOT NULL, store TEXT NOT NULL,
    state TEXT NOT NULL,  -- ok | tampered | missing | commitment-mismatch | absent | unreachable | unverifiable
    commitment TEXT NOT NULL DEFAULT 'unchecked',  -- verified | unchecked | mismatch
    seen_ok INTEGER NOT NULL DEFAULT 0,            -- 1 once the copy was ever verified intact
    fingerprint TEXT,              -- JSON [[path, ino, size, mtime_ns, ctime_ns], ...] (embedded stores)
    checked_at REAL NOT NULL,
    PRIMARY KEY (doc, store)
);
"""


# ---------------------------------------------------------------------------------- helpers


def _cid_text(cid_hex: str) -> str:
    """String form of a binary CID given as 0x-hex (:class:`InvalidCid` if it is not one)."""
    try:
        raw = bytes.fromhex(cid_hex.removeprefix("0x"))
    except ValueError as exc:
        raise InvalidCid(f"not hex: {cid_hex[:80]!r}") from exc
    return str(Cid.from_bytes(raw))


def _short(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:_DETAIL_MAX]


@dataclass
class CopyCheck:
    """The outcome of checking one copy of a document in one store."""

    state: str  # ok | tampered | missing | commitment-mismatch | absent | unreachable | unverifiable
    commitment: str = "unchecked"  # verified | unchecked | mismatch
    detail: str = ""
    bad_block: str | None = None  # CID of the block that failed verification
    bad_block_sha256: str | None = None  # sha256 of the bytes the store served for it
    fingerprint: list[list[Any]] | None = None
    bytes_read: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Document:
    doc: str
    sha256: str
    cid: str
    kind: int
    ref: str
    agency: str
    block_number: int
    first_seen: float


# ---------------------------------------------------------------------------------- oracle


class IntegrityOracle(Oracle):
    """Fetch every anchored document from the agency stores; verify CID and commitment; alert once.

    ``never_stored_grace``: content that no watched store ever held counts as MISSING only when the
    anchoring agency's store is explicitly watched (``LEDGER_ORACLE_IPFS_NODES`` names it) and the
    anchor is older than this many seconds; otherwise it is reported as ``unavailable`` (no alert).
    ``keyrings``: where key wraps come from (default: the API vault under ``var_dir``).
    """

    name = "integrity"
    default_agency = "CONSORTIUM-AUDIT"
    summary = "fetch every anchored document from the agency stores, verify CID + commitment, alert once"

    def __init__(
        self,
        ctx: OracleContext,
        *,
        never_stored_grace: float | None = None,
        keyrings: Callable[[str], Keyring | None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(ctx)
        self.never_stored_grace = (
            ctx.oracle_settings.integrity_missing_grace if never_stored_grace is None else never_stored_grace
        )
        self._vault = VaultKeyrings.for_settings(ctx.settings) if keyrings is None else None
        self._keyrings: Callable[[str], Keyring | None] = keyrings or self._vault or (lambda _cid: None)
        self._clock = clock
        self._db = sqlite3.connect(ctx.directory / "integrity.db", isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._private_key: AgencyPrivateKey | None | bool = False  # False: not looked up yet
        self._unreachable: dict[str, str] = {}
        self._agency_codes: dict[int, str] = {}
        self._reposted = False
        self._last: dict[str, int] = {}
        self._pins: dict[str, set[tuple[int, bytes]]] = {}

    # ---- configuration derived from the context

    @property
    def embedded(self) -> bool:
        """True without ``LEDGER_ORACLE_IPFS_NODES``: one shared store stands for every agency's."""
        return not self.ctx.oracle_settings.ipfs_nodes

    def _decryption_key(self) -> AgencyPrivateKey | None:
        if self._private_key is False:
            label = self.ctx.agency.lower()
            keystore = self.ctx.keystore
            self._private_key = (
                AgencyPrivateKey(keystore.encryption_key(label)) if keystore.has_encryption_key(label) else None
            )
        return self._private_key if isinstance(self._private_key, AgencyPrivateKey) else None

    # ---- the step

    def step(self) -> int:
        """Take new anchors, re-stat embedded copies, verify what is due; post alerts for findings."""
        if not self._reposted:
            self._repost_findings()
            self._reposted = True
        self._unreachable = {}
        self._pins = {}
        self._last = {"anchors": 0, "verified": 0, "bytes_read": 0, "blocks_statted": 0, "changed": 0}
        work = self._ingest()
        work += self._quick_scan()
        work += self._verify_due()
        if self._unreachable and len(self._unreachable) == len(self.ctx.stores):
            agency, reason = next(iter(self._unreachable.items()))
            raise StoreUnavailable(agency, reason)
        return work

    def _ingest(self) -> int:
        cursor = tuple(self.ctx.state.get("anchor_cursor", [-1, -1, -1]))
        anchors = self.ctx.read.anchors_after((cursor[0], cursor[1], cursor[2]), limit=ANCHORS_PER_STEP)
        now = self._clock()
        for anchor in anchors:
            self._add(anchor, now)
        self._last["anchors"] = len(anchors)
        if anchors:
            self.ctx.state.set("anchor_cursor", list(anchors[-1].cursor))
            log_event(self.ctx.log, "anchors taken", count=len(anchors), cursor=list(anchors[-1].cursor))
        return len(anchors)

    def _add(self, anchor: AnchorView, now: float) -> None:
        if not anchor.cid or anchor.cid in ("0x", "0x00"):
            return
        try:
            cid = _cid_text(anchor.cid)
        except InvalidCid as exc:
            self._record_unverifiable(anchor, f"anchored CID is not a CID: {exc}")
            return
        doc = f"{anchor.sha256}:{cid}"
        self._db.execute(
            "INSERT OR IGNORE INTO documents (doc, sha256, cid, kind, ref, agency, block_number, anchored_at,"
            " first_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (doc, anchor.sha256, cid, int(anchor.kind), anchor.ref, self._anchoring_agency(anchor),
             anchor.block_number, anchor.timestamp, now),
        )  # fmt: skip

    def _record_unverifiable(self, anchor: AnchorView, detail: str) -> None:
        self.ctx.state.record_fact(
            f"unverifiable:{anchor.sha256}:{anchor.cid}",
            {"sha256": anchor.sha256, "cid": anchor.cid, "kind": anchor.kind.name, "detail": detail[:_DETAIL_MAX]},
        )

    def _agency_code(self, index: int) -> str:
        if index not in self._agency_codes:
            view = self.ctx.read.agency(index)
            if view is None:
                return ""
            self._agency_codes[index] = view.code
        return self._agency_codes[index]

    def _anchoring_agency(self, anchor: AnchorView) -> str:
        """The agency whose store took the content: jurisdiction, stamping agency or batch agency."""
        index: int | None = None
        if anchor.kind in (AnchorKind.DECLARATION, AnchorKind.SUPPORTING_DOCUMENT):
            declaration = self.ctx.read.declaration(anchor.ref)
            index = declaration.jurisdiction if declaration else None
        elif anchor.kind == AnchorKind.STAMP_REPORT:
            stamp = next((s for s in self.ctx.read.stamps(anchor.ref) if s.stamp_id == anchor.sha256), None)
            index = stamp.agency_index if stamp else None
        elif anchor.kind == AnchorKind.BATCH_ROOT:
            batch = self.ctx.read.batch(anchor.ref)
            index = int(batch["agency_index"]) if batch else None
        return self._agency_code(index) if index is not None else ""

    # ---- scheduling

    def _round_start(self) -> float:
        """Start of the current full re-check round (a new round every ``integrity_recheck`` seconds)."""
        now = self._clock()
        started = float(self.ctx.state.get("round_started", 0.0))
        if now - started >= self.ctx.oracle_settings.integrity_recheck:
            if started:
                log_event(self.ctx.log, "re-check round started", previous=round(started, 3))
            started = now
            self.ctx.state.set("round_started", started)
        return started

    def _verify_due(self) -> int:
        """Verify never-checked documents first, then those not checked in this round (bounded)."""
        started = self._round_start()
        rows = self._db.execute(
            "SELECT doc, sha256, cid, kind, ref, agency, block_number, first_seen FROM documents "
            "WHERE checked_at IS NULL OR checked_at < ? ORDER BY checked_at IS NOT NULL, checked_at, rowid LIMIT ?",
            (started, COPIES_PER_STEP),
        ).fetchall()
        done = 0
        spent = 0
        for row in rows:
            if spent >= BYTES_PER_STEP:
                break
            spent += self._check_document(_Document(*row))
            done += 1
        if not rows:
            finished = self.ctx.state.get("round_finished", 0.0)
            if finished < started:
                self.ctx.state.set("round_finished", self._clock())
        return done

    def _quick_scan(self) -> int:
        """Re-stat every block file of every embedded-store copy; fully re-verify changed copies now."""
        local = {a: s for a, s in self.ctx.stores.items() if isinstance(s, LocalStore)}
        if not local:
            return 0
        changed: list[str] = []
        for doc, store, fingerprint in self._db.execute(
            "SELECT doc, store, fingerprint FROM copies WHERE fingerprint IS NOT NULL"
        ).fetchall():
            if store in local:
                entries = json.loads(fingerprint)
                self._last["blocks_statted"] += len(entries)
                if _fingerprint_changed(entries):
                    changed.append(doc)
        self._last["changed"] = len(changed)
        for doc in dict.fromkeys(changed):
            row = self._db.execute(
                "SELECT doc, sha256, cid, kind, ref, agency, block_number, first_seen FROM documents WHERE doc = ?",
                (doc,),
            ).fetchone()
            if row is not None:
                log_event(self.ctx.log, "block files changed, re-verifying", document=row[1], cid=row[2])
                self._check_document(_Document(*row))
        return len(changed)

    # ---- checking

    def _targets(self, document: _Document) -> list[str]:
        """Stores to check: the anchoring agency's (if watched), every holder, every earlier holder."""
        stores = self.ctx.stores
        if self.embedded:
            return list(stores)
        targets = [document.agency] if document.agency in stores else []
        earlier = {r[0] for r in self._db.execute("SELECT store FROM copies WHERE doc = ?", (document.doc,))}
        for agency, store in stores.items():
            if agency in targets or agency in self._unreachable:
                continue
            if agency in earlier:
                targets.append(agency)
                continue
            try:
                if store.has(document.cid):
                    targets.append(agency)
            except StoreUnavailable as exc:
                self._unreachable[agency] = _short(exc)
        return targets

    def _obliged(self, document: _Document, agency: str) -> bool:
        """Whether ``agency``'s store must hold the document: the anchoring / embedded store, or it pins it."""
        if self.embedded or agency == document.agency:
            return True
        if agency not in self._pins:
            try:
                self._pins[agency] = {(c.codec, c.digest) for c in map(Cid.parse, self.ctx.stores[agency].list())}
            except StoreUnavailable as exc:
                self._unreachable[agency] = _short(exc)
                return False
        cid = Cid.parse(document.cid)
        return (cid.codec, cid.digest) in self._pins[agency]

    def _check_document(self, document: _Document) -> int:
        now = self._clock()
        spent = 0
        states: list[str] = []
        for agency in self._targets(document):
            if agency in self._unreachable:
                continue
            store = self.ctx.stores[agency]
            result = self._check_copy(store, document)
            spent += result.bytes_read
            self._last["bytes_read"] += result.bytes_read
            if result.state == "unreachable":
                self._unreachable[agency] = result.detail
                continue
            previous = self._db.execute(
                "SELECT seen_ok FROM copies WHERE doc = ? AND store = ?", (document.doc, agency)
            ).fetchone()
            seen_ok = bool(previous and previous[0])
            if result.state == "absent":
                result = self._absent(document, agency, seen_ok, now)
            elif result.state == "missing" and not self._obliged(document, agency):
                result = CopyCheck(state="absent", detail="partial DAG in a store that does not pin it (a cache)")
            self._db.execute(
                "INSERT OR REPLACE INTO copies (doc, store, state, commitment, seen_ok, fingerprint, checked_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (document.doc, agency, result.state, result.commitment, int(seen_ok or result.state == "ok"),
                 json.dumps(result.fingerprint) if result.fingerprint is not None else None, now),
            )  # fmt: skip
            states.append(result.state)
            if result.state in REASONS:
                self._report(document, agency, result)
        self._last["verified"] += 1
        state = _worst(states)
        self._db.execute("UPDATE documents SET checked_at = ?, state = ? WHERE doc = ?", (now, state, document.doc))
        return spent

    def _absent(self, document: _Document, agency: str, seen_ok: bool, now: float) -> CopyCheck:
        """A store that should hold the document has no root block: lost, not yet stored, or unknown."""
        if seen_ok and self._obliged(document, agency):
            return CopyCheck(state="missing", detail=f"the document was held intact by {agency} and is gone")
        explicit = not self.embedded and agency == document.agency
        if explicit and now - document.first_seen >= self.never_stored_grace:
            return CopyCheck(
                state="missing",
                detail=f"the anchoring agency's store {agency} never held it ({self.never_stored_grace:.0f} s grace)",
            )
        return CopyCheck(state="absent", detail="not stored in a watched store (yet)")

    def _check_copy(self, store: ContentStore, document: _Document) -> CopyCheck:
        """Fetch and verify every block of one copy; then the commitment when it can be opened."""
        cid = Cid.parse(document.cid)
        try:
            if not store.has(cid):
                return CopyCheck(state="absent")
            copy = fetch_copy(store, cid, retain=MAX_DOCUMENT_BYTES)
        except StoreUnavailable as exc:
            return CopyCheck(state="unreachable", detail=_short(exc))
        except IntegrityError as exc:
            return self._tampered(store, exc)
        except DocumentNotFound as exc:
            return CopyCheck(state="missing", detail=f"part of the DAG is gone: {_short(exc)}"[:_DETAIL_MAX])
        except (MalformedBlock, DocumentTooLarge) as exc:
            # the bytes hash to the anchored CIDs: this is what was anchored, not a storage fault
            return CopyCheck(state="unverifiable", detail=_short(exc))
        read = copy.bytes_read
        fingerprint = _fingerprint(store, list(copy.blocks)) if isinstance(store, LocalStore) else None
        if copy.content is None:
            return CopyCheck(state="ok", detail="CID verified (too large for the commitment check)",
                             fingerprint=fingerprint, bytes_read=read)  # fmt: skip
        commitment, detail = self._commitment(document, copy.content)
        state = "commitment-mismatch" if commitment == "mismatch" else "ok"
        return CopyCheck(state=state, commitment=commitment, detail=detail, fingerprint=fingerprint, bytes_read=read)

    def _tampered(self, store: ContentStore, error: IntegrityError) -> CopyCheck:
        bad_sha: str | None = None
        with contextlib.suppress(StoreUnavailable, DocumentNotFound, InvalidCid):
            bad_sha = "0x" + hashlib.sha256(store.get_block_unverified(Cid.parse(error.cid))).hexdigest()
        return CopyCheck(state="tampered", detail=_short(error), bad_block=error.cid, bad_block_sha256=bad_sha)

    def _commitment(self, document: _Document, content: bytes) -> tuple[str, str]:
        """('verified' | 'unchecked' | 'mismatch', detail) for the content of an intact copy."""
        if document.kind == AnchorKind.BATCH_ROOT:
            return "unchecked", "batch manifest: the anchor is a Merkle root, not a content hash"
        if hashlib.sha256(content).hexdigest() == document.sha256.removeprefix("0x"):
            return "verified", "plain content"
        if not content.startswith(ENVELOPE_MAGIC):  # no key / keyring lookup needed
            return "unchecked", "not an envelope and not the committed bytes"
        return verify_commitment(
            content, document.sha256, agency=self.ctx.agency, private_key=self._decryption_key(),
            keyring=self._keyrings(document.cid),
        )  # fmt: skip

    # ---- findings and alerts

    def _report(self, document: _Document, agency: str, result: CopyCheck) -> None:
        """Record the finding once and post its alert once (deterministic key)."""
        key = f"{result.state}:{document.sha256}:{document.cid}"
        finding = {
            "format": "ledger-integrity-finding-v1",
            "reason": result.state,
            "reason_code": REASONS[result.state],
            "sha256": document.sha256,
            "cid": document.cid,
            "kind": AnchorKind(document.kind).name,
            "ref": document.ref,
            "anchored_block": document.block_number,
            "anchoring_agency": document.agency,
            "store": agency,
            "detail": result.detail,
            "bad_block": result.bad_block,
            "bad_block_sha256": result.bad_block_sha256,
            "observer": self.ctx.agency,
        }
        if self.ctx.state.record_fact(f"finding:{key}", {"finding": finding, "detected_at": self._clock()}):
            log_event(self.ctx.log, "integrity finding", level=logging.WARNING, reason=result.state,
                      document=document.sha256, cid=document.cid, store=agency, detail=result.detail)  # fmt: skip
        self._post(key)

    def _post(self, key: str) -> None:
        recorded = self.ctx.state.fact(f"finding:{key}")
        finding = recorded["finding"]
        evidence = hashlib.sha256(canonical_json(finding)).digest()
        self.ctx.post(
            f"alert:{key}",
            calls.raise_alert(
                subject_kind=SUBJECT_DOCUMENT,
                subject=bytes.fromhex(finding["sha256"].removeprefix("0x")),
                reason_code=int(finding["reason_code"]),
                evidence_sha256=evidence,
            ),
        )

    def _repost_findings(self) -> None:
        """After a crash between recording a finding and journaling its alert: journal it now."""
        for fact_key in self.ctx.state.facts("finding:"):
            key = fact_key.removeprefix("finding:")
            if self.ctx.posted(f"alert:{key}") is None:
                self._post(key)

    # ---- reporting

    def findings(self) -> list[dict[str, Any]]:
        """Every finding with its evidence hash and alert journal state, oldest first."""
        return _findings(self.ctx)

    def status(self) -> dict[str, Any]:
        """Document and copy counts by state, findings, the re-check round, unreachable stores."""
        documents = dict(self._db.execute("SELECT state, COUNT(*) FROM documents GROUP BY state").fetchall())
        copies = dict(self._db.execute("SELECT state, COUNT(*) FROM copies GROUP BY state").fetchall())
        commitments = dict(
            self._db.execute("SELECT commitment, COUNT(*) FROM copies WHERE state = 'ok' GROUP BY commitment")
        )
        findings = self.ctx.state.facts("finding:")
        return {
            "documents": documents,
            "copies": copies,
            "commitments": commitments,
            "findings": len(findings),
            "finding_keys": sorted(findings)[-20:],
            "round_started": self.ctx.state.get("round_started"),
            "round_finished": self.ctx.state.get("round_finished"),
            "recheck_seconds": self.ctx.oracle_settings.integrity_recheck,
            "unreachable_stores": dict(self._unreachable),
            "last_step": dict(self._last),
            "stores": sorted(self.ctx.stores),
        }

    def problems(self) -> list[str]:
        """Copies currently tampered / missing / not matching their commitment, and alerts the ledger
        refused: while any is listed the oracle reports ``degraded`` (health 503)."""
        bad = self._db.execute(
            "SELECT state, COUNT(*) FROM copies WHERE state IN ('tampered', 'missing', 'commitment-mismatch') "
            "GROUP BY state ORDER BY state"
        ).fetchall()
        out = [f"{count} stored cop{'y' if count == 1 else 'ies'} {state}" for state, count in bad]
        # runs after every pass: ask the journal, not every finding
        failed = self.ctx.outbox.counts().get(EntryState.FAILED, 0) if "outbox" in self.ctx.__dict__ else 0
        if failed:
            out.append(f"{failed} alert(s) refused by the ledger (see `integrity findings`)")
        return out

    def close(self) -> None:
        """Close the oracle's own database and the vault connection."""
        self._db.close()
        if self._vault is not None:
            self._vault.close()


def _worst(states: list[str]) -> str:
    for state in ("tampered", "commitment-mismatch", "missing", "unverifiable", "ok", "absent"):
        if state in states:
            return "unavailable" if state == "absent" else state
    return "unavailable"


def _stat(path: str) -> list[Any]:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return [path, None, None, None, None]
    return [path, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _fingerprint(store: LocalStore, cids: list[Cid]) -> list[list[Any]]:
    """``[path, inode, size, mtime_ns, ctime_ns]`` of each block file of an embedded-store copy."""
    return [_stat(os.fspath(store._block_path(c))) for c in cids]  # noqa: SLF001 - the store's own layout


def _fingerprint_changed(fingerprint: list[list[Any]]) -> bool:
    return any(_stat(entry[0]) != entry for entry in fingerprint)


def _findings(ctx: OracleContext) -> list[dict[str, Any]]:
    out = []
    for key, value in ctx.state.facts("finding:").items():
        finding = value["finding"]
        entry = ctx.posted(f"alert:{key.removeprefix('finding:')}")
        out.append(
            {
                **finding,
                "detected_at": value.get("detected_at"),
                "evidence_sha256": "0x" + hashlib.sha256(canonical_json(finding)).hexdigest(),
                "alert": None if entry is None else {"state": str(entry.state), "tx_hash": entry.tx_hash},
            }
        )
    return sorted(out, key=lambda f: (f["detected_at"] or 0, f["sha256"]))


# ---------------------------------------------------------------------------------- commands


def _print_findings(args: argparse.Namespace) -> int:
    ctx = open_context(IntegrityOracle.name, default_agency=IntegrityOracle.default_agency)
    try:
        findings = _findings(ctx)
    finally:
        ctx.close()
    json.dump(findings, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
    return 1 if args.fail_on_findings and findings else 0


def add_commands(actions: Any) -> None:
    """``integrity findings``: every finding (JSON), its evidence hash and its alert's journal state."""
    parser = actions.add_parser("findings", help="print every integrity finding as JSON")
    parser.add_argument("--fail-on-findings", action="store_true", help="exit 1 when there is any finding")
    parser.set_defaults(handler=_print_findings)


ORACLE = IntegrityOracle
