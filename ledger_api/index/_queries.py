"""Typed queries over the read model (current state and as-of a block or a time)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eth_utils.address import to_checksum_address

from ledger_api.index._models import (
    AgencyView,
    AlertView,
    AnchorKind,
    AnchorView,
    DecisionEventView,
    DeclarationStatus,
    DeclarationView,
    EventRecord,
    KeyView,
    StampView,
    SupportingDocumentView,
)

__all__ = ["ReadModel"]

_LATEST = 1 << 62  # "no block limit"


def _hex32(value: str | bytes) -> str:
    """Normalise a bytes32 id given as bytes or 0x-hex to lowercase 0x-hex."""
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    text = value.lower()
    return text if text.startswith("0x") else "0x" + text


def _address(value: str) -> str:
    return to_checksum_address(value)


class ReadModel:
    """Queries over an index database (open one with :meth:`open`, or use ``Indexer.model``).

    Every query answers from what the indexer processed (up to its cursor); ``as_of`` variants
    answer as the chain stood at the end of a block, or at a unix time.
    """

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        """Run several statements on one consistent snapshot (a read transaction in WAL mode), so a
        query never mixes rows from before and after an indexer commit or rollback."""
        if self._db.in_transaction:
            yield
            return
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            self._db.execute("COMMIT")

    @classmethod
    def open(cls, database: Path | str) -> ReadModel:
        """Open an index database for reading (it may be written by an indexer concurrently)."""
        from ledger_api.index._indexer import connect

        return cls(connect(database))

    def close(self) -> None:
        """Close the database connection (only for models from :meth:`open`)."""
        self._db.close()

    # ------------------------------------------------------------------ blocks and time

    def cursor_block(self) -> int:
        """The last block the indexer fully processed."""
        row = self._db.execute("SELECT block_number FROM cursor WHERE id = 1").fetchone()
        return int(row[0]) if row else -1

    def block_at(self, time: int) -> int | None:
        """The last indexed block with a timestamp ``<= time`` (state as of ``time``), or ``None``."""
        row = self._db.execute(
            "SELECT block_number FROM blocks WHERE timestamp <= ? ORDER BY timestamp DESC, block_number DESC LIMIT 1",
            (time,),
        ).fetchone()
        return None if row is None else int(row[0])

    # ------------------------------------------------------------------ declarations

    def declaration(self, declaration_id: str | bytes) -> DeclarationView | None:
        """The current state of one declaration version, or ``None`` if unknown."""
        with self._snapshot():
            return self._declaration(_hex32(declaration_id), _LATEST)

    def declaration_as_of(
        self, declaration_id: str | bytes, *, block: int | None = None, time: int | None = None
    ) -> DeclarationView | None:
        """Status and stamps of a declaration at the end of ``block`` (or at unix ``time``).

        ``None`` when the declaration did not exist yet. Stamps are those recorded up to then,
        marked revoked only if revoked by then.
        """
        if (block is None) == (time is None):
            raise ValueError("give exactly one of block= or time=")
        with self._snapshot():
            if time is not None:
                block = self.block_at(time)
                if block is None:
                    return None
            assert block is not None
            view = self._declaration(_hex32(declaration_id), block)
            if view is None:
                return None
            return DeclarationView(**{**view.__dict__, "stamps": self._stamps(view.declaration_id, block)})

    def _declaration(self, declaration_id: str, block: int) -> DeclarationView | None:
        row = self._db.execute(
            "SELECT d.declaration_id, d.declarant, d.jurisdiction, d.version, d.previous_id, d.local_reference, "
            "d.cid, d.block_number, d.timestamp, d.tx_hash, s.status, s.channel, s.required_stamps, s.mrn, "
            "s.rule_set_hash, s.superseded_by FROM declarations d JOIN declaration_states s "
            "ON s.declaration_id = d.declaration_id WHERE d.declaration_id = ? AND s.block_number <= ? "
            "ORDER BY s.block_number DESC, s.log_index DESC LIMIT 1",
            (declaration_id, block),
        ).fetchone()
        if row is None:
            return None
        documents = tuple(
            SupportingDocumentView(position=p, document_type=t, sha256=h, cid=c)
            for p, t, h, c in self._db.execute(
                "SELECT position, document_type, sha256, cid FROM supporting_documents WHERE declaration_id = ? "
                "ORDER BY position",
                (declaration_id,),
            )
        )
        return DeclarationView(
            declaration_id=row[0],
            declarant=row[1],
            jurisdiction=row[2],
            version=row[3],
            previous_id=row[4],
            local_reference=row[5],
            cid=row[6],
            submitted_block=row[7],
            submitted_at=row[8],
            tx_hash=row[9],
            status=DeclarationStatus(row[10]),
            channel=row[11],
            required_stamps=row[12],
            mrn=row[13],
            rule_set_hash=row[14],
            superseded_by=row[15],
            documents=documents,
            as_of_block=min(block, self.cursor_block()),
        )

    def declarations_of(self, declarant: str) -> list[DeclarationView]:
        """Every declaration version submitted by ``declarant``, oldest first (current state)."""
        with self._snapshot():
            ids = [
                r[0]
                for r in self._db.execute(
                    "SELECT declaration_id FROM declarations WHERE declarant = ? ORDER BY block_number, log_index",
                    (_address(declarant),),
                )
            ]
            return [v for v in (self._declaration(i, _LATEST) for i in ids) if v is not None]

    def declaration_by_mrn(self, mrn: str | bytes) -> str | None:
        """The latest declaration version carrying ``mrn`` (current state), or ``None``."""
        row = self._db.execute(
            "SELECT s.declaration_id FROM declaration_states s WHERE s.mrn = ? "
            "ORDER BY s.block_number DESC, s.log_index DESC LIMIT 1",
            (_hex32(mrn),),
        ).fetchone()
        return None if row is None else str(row[0])

    def timeline(self, declaration_id: str | bytes) -> list[EventRecord]:
        """Every event touching a declaration version (submission or amendment, acceptance, channel,
        stamps and revocations, decision steps, alerts on it), in chain order."""
        rows = self._db.execute(
            "SELECT e.block_number, e.log_index, e.tx_hash, e.contract, e.name, e.args, b.timestamp "
            "FROM declaration_events x JOIN events e ON e.position = x.block_number * 1048576 + x.log_index "
            "LEFT JOIN blocks b ON b.block_number = e.block_number "
            "WHERE x.declaration_id = ? ORDER BY e.position",
            (_hex32(declaration_id),),
        ).fetchall()
        return [
            EventRecord(
                block_number=r[0],
                log_index=r[1],
                tx_hash=r[2],
                contract=r[3],
                name=r[4],
                args=json.loads(r[5]),
                timestamp=r[6] or 0,
            )  # fmt: skip
            for r in rows
        ]

    def events(self, *, from_block: int = 0, to_block: int = _LATEST, name: str | None = None) -> list[EventRecord]:
        """Raw decoded events in a block range (optionally of one event name), in chain order."""
        sql = (
            "SELECT e.block_number, e.log_index, e.tx_hash, e.contract, e.name, e.args, b.timestamp FROM events e "
            "LEFT JOIN blocks b ON b.block_number = e.block_number WHERE e.position BETWEEN ? AND ?"
        )
        params: list[Any] = [from_block << 20, (min(to_block, _LATEST >> 21) << 20) | 0xFFFFF]
        if name is not None:
            sql += " AND e.name = ?"
            params.append(name)
        sql += " ORDER BY e.position"
        return [
            EventRecord(
                block_number=r[0],
                log_index=r[1],
                tx_hash=r[2],
                contract=r[3],
                name=r[4],
                args=json.loads(r[5]),
                timestamp=r[6] or 0,
            )  # fmt: skip
            for r in self._db.execute(sql, params)
        ]

    def event_count(self) -> int:
        """How many events the index holds."""
        return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    # ------------------------------------------------------------------ documents, stamps, decisions

    def _anchors(self, where: str, params: tuple[Any, ...], limit: int = -1) -> list[AnchorView]:
        """Anchors matching ``where`` (over ``anchors a``), in chain order (seq = row order), at most
        ``limit`` (-1: all)."""
        return [
            AnchorView(
                sha256=r[0],
                kind=AnchorKind(r[1]),
                ref=r[2],
                cid=r[3],
                block_number=r[4],
                log_index=r[5],
                timestamp=r[6] or 0,
                seq=r[7],
            )  # fmt: skip
            for r in self._db.execute(
                "SELECT a.sha256, a.kind, a.ref, a.cid, a.block_number, a.log_index, b.timestamp, a.rowid "
                f"FROM anchors a LEFT JOIN blocks b ON b.block_number = a.block_number WHERE {where} "
                "ORDER BY a.block_number, a.log_index, a.rowid LIMIT ?",
                (*params, limit),
            )
        ]

    def document(self, sha256: str | bytes) -> list[AnchorView]:
        """Everywhere ``sha256`` is anchored (declaration, supporting document, stamp report, batch
        root), oldest first; empty when it is not anchored."""
        return self._anchors("a.sha256 = ?", (_hex32(sha256),))

    def anchors_after(self, after: tuple[int, int, int] = (-1, -1, -1), *, limit: int = 1000) -> list[AnchorView]:
        """Anchors after cursor ``after`` = ``(block_number, log_index, seq)`` in chain order, at most
        ``limit``: a resumable walk over everything anchored (oracles, replication). Pass the last
        view's :attr:`AnchorView.cursor` to continue; one event's several anchors (a declaration and
        its supporting documents) share a position and are ordered by ``seq``."""
        return self._anchors("(a.block_number, a.log_index, a.rowid) > (?, ?, ?)", after, limit)

    def anchor_of(self, sha256: str | bytes) -> tuple[AnchorKind, str]:
        """Same answer as the contract's ``anchorOf``: declaration first, then the first supporting
        document anchor, stamp report, batch root; ``(NONE, 0x00…)`` otherwise."""
        anchors = self.document(sha256)
        for kind in (AnchorKind.DECLARATION, AnchorKind.SUPPORTING_DOCUMENT, AnchorKind.STAMP_REPORT):
            for anchor in anchors:
                if anchor.kind == kind:
                    return kind, anchor.ref
        for anchor in anchors:
            if anchor.kind == AnchorKind.BATCH_ROOT:
                return anchor.kind, anchor.ref
        return AnchorKind.NONE, "0x" + "00" * 32

    def documents_by_cid(self, cid: str | bytes) -> list[AnchorView]:
        """Anchors whose stored envelope / report / manifest has this binary CID."""
        rows = self._db.execute("SELECT DISTINCT sha256 FROM anchors WHERE cid = ?", (_hex32(cid),)).fetchall()
        return [a for (sha,) in rows for a in self.document(sha) if a.cid == _hex32(cid)]

    def stamps(self, declaration_id: str | bytes) -> list[StampView]:
        """Stamps of a declaration version in chain order, with their current revocation state."""
        return list(self._stamps(_hex32(declaration_id), _LATEST))

    def _stamps(self, declaration_id: str, block: int) -> tuple[StampView, ...]:
        rows = self._db.execute(
            "SELECT s.stamp_id, s.declaration_id, s.agency_index, s.signer, s.stamp_type, s.result, s.signed_at, "
            "s.report_cid, s.relayer, s.block_number, s.timestamp, r.block_number, r.reason_code FROM stamps s "
            "LEFT JOIN stamp_revocations r ON r.stamp_id = s.stamp_id AND r.block_number <= ? "
            "WHERE s.declaration_id = ? AND s.block_number <= ? ORDER BY s.block_number, s.log_index",
            (block, declaration_id, block),
        ).fetchall()
        return tuple(
            StampView(
                stamp_id=r[0],
                declaration_id=r[1],
                agency_index=r[2],
                signer=r[3],
                stamp_type=r[4],
                result=r[5],
                signed_at=r[6],
                report_cid=r[7],
                relayer=r[8],
                block_number=r[9],
                timestamp=r[10],
                revoked=r[11] is not None,
                revoked_block=r[11],
                revocation_reason=r[12],
            )  # fmt: skip
            for r in rows
        )

    def decisions(self, declaration_id: str | bytes) -> list[DecisionEventView]:
        """Every decision step on a declaration version, in chain order."""
        rows = self._db.execute(
            "SELECT declaration_id, round, action, kind, status, reason_code, report_sha256, signer, approvals, "
            "approvals_required, pass_stamps, block_number, log_index, timestamp FROM decision_events "
            "WHERE declaration_id = ? ORDER BY block_number, log_index",
            (_hex32(declaration_id),),
        ).fetchall()
        return [
            DecisionEventView(
                declaration_id=r[0],
                round=r[1],
                action=r[2],
                kind=r[3],
                status=r[4],
                reason_code=r[5],
                report_sha256=r[6],
                signer=r[7],
                approvals=r[8],
                approvals_required=r[9],
                pass_stamps=tuple(json.loads(r[10])) if r[10] else (),
                block_number=r[11],
                log_index=r[12],
                timestamp=r[13],
            )  # fmt: skip
            for r in rows
        ]

    def pending_decision(self, declaration_id: str | bytes) -> DecisionEventView | None:
        """The open dual-control proposal of a declaration (its ``proposed`` step), or ``None``."""
        steps = self.decisions(declaration_id)
        open_round: DecisionEventView | None = None
        for step in steps:
            if step.action == "proposed":
                open_round = step
            elif step.action in ("recorded", "cancelled") and open_round is not None and step.round == open_round.round:
                open_round = None
        return open_round

    # ------------------------------------------------------------------ batches and alerts

    def batch(self, root: str | bytes) -> dict[str, Any] | None:
        """A batch anchor by Merkle root: agency index, leaf count, kind, manifest CID, block, time."""
        row = self._db.execute(
            "SELECT root, agency_index, leaf_count, kind, manifest_cid, signer, block_number, timestamp FROM batches "
            "WHERE root = ?",
            (_hex32(root),),
        ).fetchone()
        if row is None:
            return None
        names = ("root", "agency_index", "leaf_count", "kind", "manifest_cid", "signer", "block_number", "timestamp")
        return dict(zip(names, row, strict=True))

    def alerts(self, subject: str | bytes, *, active_only: bool = False) -> list[AlertView]:
        """Alerts on a subject (document sha256, declaration id, or trader address), oldest first.

        A trader address may be given as a 20-byte address; it is left-padded like the contract does.
        """
        key = _hex32(subject)
        if len(key) == 42:
            key = "0x" + key[2:].rjust(64, "0")
        rows = self._db.execute(
            "SELECT a.alert_id, a.subject, a.subject_kind, a.agency_index, a.reason_code, a.evidence_sha256, a.signer, "
            "a.block_number, a.timestamp, c.block_number FROM alerts a LEFT JOIN alert_clearings c "
            "ON c.alert_id = a.alert_id WHERE a.subject = ? ORDER BY a.alert_id",
            (key,),
        ).fetchall()
        views = [
            AlertView(
                alert_id=r[0],
                subject=r[1],
                subject_kind=r[2],
                agency_index=r[3],
                reason_code=r[4],
                evidence_sha256=r[5],
                signer=r[6],
                block_number=r[7],
                raised_at=r[8],
                active=r[9] is None,
                cleared_block=r[9],
            )  # fmt: skip
            for r in rows
        ]
        return [v for v in views if v.active] if active_only else views

    # ------------------------------------------------------------------ agencies, keys, traders

    def agency(self, agency: str | bytes | int) -> AgencyView | None:
        """An agency by index, bytes32 id (0x-hex / bytes) or code (``"CN-TJ-CUSTOMS"``)."""
        with self._snapshot():
            return self._agency(agency)

    def agencies(self) -> list[AgencyView]:
        """Every registered agency (current state), by agency index."""
        with self._snapshot():
            indexes = [int(r[0]) for r in self._db.execute("SELECT agency_index FROM agencies ORDER BY agency_index")]
            return [view for i in indexes if (view := self._agency(i)) is not None]

    def _agency(self, agency: str | bytes | int) -> AgencyView | None:
        if isinstance(agency, int):
            row = self._db.execute("SELECT agency_id FROM agencies WHERE agency_index = ?", (agency,)).fetchone()
            if row is None:
                return None
            agency_id = str(row[0])
        elif isinstance(agency, str) and not agency.startswith("0x"):
            agency_id = "0x" + agency.encode("ascii").ljust(32, b"\0").hex()
        else:
            agency_id = _hex32(agency)
        base = self._db.execute(
            "SELECT agency_index, country FROM agencies WHERE agency_id = ?", (agency_id,)
        ).fetchone()
        if base is None:
            return None
        history = [
            {
                "block_number": r[0],
                "log_index": r[1],
                "timestamp": r[2],
                "change": r[3],
                "name": r[4],
                "roles": r[5],
                "status": r[6],
                "encryption_key": r[7],
                "ipfs_endpoint": r[8],
            }  # fmt: skip
            for r in self._db.execute(
                "SELECT block_number, log_index, timestamp, change, name, roles, status, encryption_key, ipfs_endpoint "
                "FROM agency_states WHERE agency_id = ? ORDER BY block_number, log_index",
                (agency_id,),
            )
        ]
        current = history[-1]
        signers = tuple(
            r[0]
            for r in self._db.execute(
                "SELECT signer FROM key_states WHERE agency_id = ? AND change = 'added' "
                "ORDER BY block_number, log_index",
                (agency_id,),
            )
        )
        return AgencyView(
            agency_id=agency_id,
            agency_index=base[0],
            code=bytes.fromhex(agency_id[2:]).rstrip(b"\0").decode("ascii", "replace"),
            country=base[1],
            name=current["name"],
            roles=current["roles"],
            status=current["status"],
            encryption_key=current["encryption_key"],
            ipfs_endpoint=current["ipfs_endpoint"],
            signers=signers,
            history=tuple(history),
        )

    def signer_key(self, signer: str, *, block: int = _LATEST) -> KeyView | None:
        """A signer key's validity facts as of ``block`` (default: current), with its change history."""
        rows = self._db.execute(
            "SELECT block_number, log_index, timestamp, change, agency_id, agency_index, valid_from, valid_until, "
            "compromised_at, reported_by FROM key_states WHERE signer = ? AND block_number <= ? "
            "ORDER BY block_number, log_index",
            (_address(signer), block),
        ).fetchall()
        if not rows:
            return None
        names = (
            "block_number", "log_index", "timestamp", "change", "agency_id", "agency_index", "valid_from",
            "valid_until", "compromised_at", "reported_by",
        )  # fmt: skip
        history = tuple(dict(zip(names, r, strict=True)) for r in rows)
        last = history[-1]
        return KeyView(
            signer=_address(signer),
            agency_id=last["agency_id"],
            agency_index=last["agency_index"],
            valid_from=last["valid_from"],
            valid_until=last["valid_until"],
            compromised_at=last["compromised_at"],
            history=history,
        )

    def key_valid_at(self, signer: str, agency: str | bytes | int, time: int, *, block: int = _LATEST) -> bool:
        """Was ``signer`` a valid key of ``agency`` at unix ``time``? Same rule as the registry's
        ``wasValidSigner`` (``validFrom <= time < validUntil`` and before any compromise), judged
        with what was known as of ``block`` (default: now — a later compromise report voids it)."""
        key = self.signer_key(signer, block=block)
        if key is None:
            return False
        if isinstance(agency, int):
            same_agency = key.agency_index == agency and agency != 0
        else:
            view = self.agency(agency)
            same_agency = view is not None and view.agency_index == key.agency_index
        return (
            same_agency
            and key.valid_from <= time < key.valid_until
            and (key.compromised_at == 0 or time < key.compromised_at)
        )

    def trader(self, account: str) -> dict[str, Any] | None:
        """A trader's current registrar index, status and AEO flag, with the block of the last change."""
        row = self._db.execute(
            "SELECT registrar_index, status, aeo, block_number FROM trader_states WHERE trader = ? "
            "ORDER BY block_number DESC, log_index DESC LIMIT 1",
            (_address(account),),
        ).fetchone()
        if row is None:
            return None
        return {"registrar_index": row[0], "status": row[1], "aeo": bool(row[2]), "block_number": row[3]}

    def proposal(self, proposal_id: int) -> dict[str, Any] | None:
        """A governance proposal with its actions (approved / executed / cancelled)."""
        row = self._db.execute(
            "SELECT proposer, target, call_data, expires_at, epoch, block_number FROM proposals WHERE proposal_id = ?",
            (proposal_id,),
        ).fetchone()
        if row is None:
            return None
        actions = [
            {"action": a, "actor": actor, "approvals": n, "block_number": b}
            for a, actor, n, b in self._db.execute(
                "SELECT action, actor, approvals, block_number FROM proposal_actions WHERE proposal_id = ? "
                "ORDER BY block_number, log_index",
                (proposal_id,),
            )
        ]
        names = ("proposer", "target", "call_data", "expires_at", "epoch", "block_number")
        return {
            "proposal_id": proposal_id,
            **dict(zip(names, row, strict=True)),
            "actions": actions,
            "executed": any(a["action"] == "executed" for a in actions),
            "cancelled": any(a["action"] == "cancelled" for a in actions),
        }
