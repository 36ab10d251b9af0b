"""Apply decoded events to the read-model tables (append-only: snapshots and facts)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ledger_api.chain.events import DecodedEvent

# AnchorKind values of LedgerTypes.sol.
ANCHOR_DECLARATION, ANCHOR_SUPPORTING_DOCUMENT, ANCHOR_STAMP_REPORT, ANCHOR_BATCH_ROOT = 1, 2, 3, 4
# DeclarationStatus values.
SUBMITTED, ACCEPTED, RELEASED, SUPERSEDED = 1, 2, 3, 7
# AlertSubject.DECLARATION
_ALERT_ON_DECLARATION = 1


_Handler = Callable[["Applier", DecodedEvent, Mapping[str, Any], int], None]

#: ``json.dumps(value, separators=(",", ":"))`` without building an encoder per call (same output).
_to_json = json.JSONEncoder(separators=(",", ":")).encode
_INSERT_EVENT = "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)"


class Applier:
    """Turns events into rows. Keeps small caches of current snapshots; :meth:`reset` drops them."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self._agency_state: dict[str, tuple[Any, ...]] = {}
        self._key_state: dict[str, tuple[Any, ...]] = {}
        self._trader_state: dict[str, tuple[Any, ...]] = {}
        self._declaration_state: dict[str, tuple[Any, ...]] = {}
        self._agency_ids: dict[int, str] = {}
        self._pending: dict[str, list[tuple[Any, ...]]] = {}
        # rows of ``events`` (one per event), queued apart from the others: no dict lookup per event
        self._event_rows: list[tuple[Any, ...]] = []

    def _insert(self, sql: str, row: tuple[Any, ...]) -> None:
        """Queue a row; rows are written with ``executemany`` per statement at :meth:`flush`."""
        rows = self._pending.get(sql)
        if rows is None:
            self._pending[sql] = [row]
        else:
            rows.append(row)

    def _read(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Cursor:
        """Run a query after writing the queued rows (so it sees them)."""
        self.flush()
        return self._db.execute(sql, params)

    def flush(self) -> None:
        """Write every queued row (call inside the page's transaction)."""
        if self._event_rows:
            self._db.executemany(_INSERT_EVENT, self._event_rows)
            self._event_rows.clear()
        for sql, rows in self._pending.items():
            self._db.executemany(sql, rows)
        self._pending.clear()

    def reset(self) -> None:
        """Forget cached snapshots (after a rollback or a failed transaction)."""
        self._agency_state.clear()
        self._key_state.clear()
        self._trader_state.clear()
        self._declaration_state.clear()
        self._agency_ids.clear()
        self._pending.clear()
        self._event_rows.clear()

    def apply(self, event: DecodedEvent, timestamp: int) -> None:
        """Record ``event`` (mined at ``timestamp``) in ``events`` and the tables it affects.

        ``event`` comes from a decoder with ``hex_bytes=True`` (bytes already 0x-hex, JSON-ready).
        """
        self.apply_all((event,), {event.block_number: timestamp})

    def apply_all(self, events: Sequence[DecodedEvent], timestamps: Mapping[int, int]) -> None:
        """:meth:`apply` every event of a page in order (``timestamps``: block number → timestamp)."""
        event_rows = self._event_rows
        handlers = _HANDLERS
        for event in events:
            contract, name, _address, block_number, block_hash, tx_hash, log_index, args = event
            event_rows.append(
                (
                    (block_number << 20) | log_index, block_number, log_index, tx_hash, block_hash, contract, name,
                    _to_json(args),
                )
            )  # fmt: skip
            handler = handlers.get(name)
            if handler is not None:
                handler(self, event, args, timestamps[block_number])

    # ------------------------------------------------------------------ helpers

    def _touch(self, declaration_id: str, event: DecodedEvent) -> None:
        self._insert(
            "INSERT OR IGNORE INTO declaration_events VALUES (?, ?, ?)",
            (declaration_id, event.block_number, event.log_index),
        )

    def _latest(self, cache: dict[str, tuple[Any, ...]], sql: str, key: str) -> tuple[Any, ...] | None:
        state = cache.get(key)
        if state is None:
            row = self._read(sql, (key,)).fetchone()
            if row is not None:
                state = tuple(row)
                cache[key] = state
        return state

    def _agency_id(self, index: int) -> str:
        known = self._agency_ids.get(index)
        if known is None:
            row = self._read("SELECT agency_id FROM agencies WHERE agency_index = ?", (index,)).fetchone()
            known = str(row[0]) if row else ""
            if known:
                self._agency_ids[index] = known
        return known

    # agency snapshot: name, roles, status, encryption_key, ipfs_endpoint
    def _agency_snapshot(self, event: DecodedEvent, ts: int, agency_id: str, change: str, **changes: Any) -> None:
        old = self._latest(
            self._agency_state,
            "SELECT name, roles, status, encryption_key, ipfs_endpoint FROM agency_states WHERE agency_id = ? "
            "ORDER BY block_number DESC, log_index DESC LIMIT 1",
            agency_id,
        ) or ("", 0, 0, "", "")
        fields = dict(zip(("name", "roles", "status", "encryption_key", "ipfs_endpoint"), old, strict=True))
        fields.update(changes)
        state = (fields["name"], fields["roles"], fields["status"], fields["encryption_key"], fields["ipfs_endpoint"])
        self._insert(
            "INSERT INTO agency_states VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (agency_id, event.block_number, event.log_index, ts, change, *state),
        )
        self._agency_state[agency_id] = state

    # key snapshot: agency_id, agency_index, valid_from, valid_until, compromised_at, reported_by
    def _key_snapshot(self, event: DecodedEvent, ts: int, signer: str, change: str, **changes: Any) -> None:
        old = self._latest(
            self._key_state,
            "SELECT agency_id, agency_index, valid_from, valid_until, compromised_at, reported_by FROM key_states "
            "WHERE signer = ? ORDER BY block_number DESC, log_index DESC LIMIT 1",
            signer,
        ) or ("", 0, 0, 0, 0, None)
        names = ("agency_id", "agency_index", "valid_from", "valid_until", "compromised_at", "reported_by")
        fields = dict(zip(names, old, strict=True))
        fields.update(changes)
        state = tuple(fields[n] for n in names)
        self._insert(
            "INSERT INTO key_states VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (signer, event.block_number, event.log_index, ts, change, *state),
        )
        self._key_state[signer] = state

    # declaration snapshot: status, channel, required_stamps, mrn, rule_set_hash, superseded_by
    def _declaration_snapshot(
        self, event: DecodedEvent, ts: int, declaration_id: str, change: str, *, fresh: bool = False, **changes: Any
    ) -> None:
        known = None
        if not fresh:
            known = self._latest(
                self._declaration_state,
                "SELECT status, channel, required_stamps, mrn, rule_set_hash, superseded_by FROM declaration_states "
                "WHERE declaration_id = ? ORDER BY block_number DESC, log_index DESC LIMIT 1",
                declaration_id,
            )
        old = known or (0, 0, 0, None, None, None)
        names = ("status", "channel", "required_stamps", "mrn", "rule_set_hash", "superseded_by")
        fields = dict(zip(names, old, strict=True))
        fields.update(changes)
        state = tuple(fields[n] for n in names)
        self._insert(
            "INSERT INTO declaration_states VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (declaration_id, event.block_number, event.log_index, ts, change, *state),
        )
        self._declaration_state[declaration_id] = state

    def _trader_snapshot(self, event: DecodedEvent, ts: int, trader: str, change: str, **changes: Any) -> None:
        old = self._latest(
            self._trader_state,
            "SELECT registrar_index, status, aeo FROM trader_states WHERE trader = ? "
            "ORDER BY block_number DESC, log_index DESC LIMIT 1",
            trader,
        ) or (0, 0, 0)
        names = ("registrar_index", "status", "aeo")
        fields = dict(zip(names, old, strict=True))
        fields.update(changes)
        state = tuple(fields[n] for n in names)
        self._insert(
            "INSERT INTO trader_states VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (trader, event.block_number, event.log_index, ts, change, *state),
        )
        self._trader_state[trader] = state

    def _store_declaration(
        self, event: DecodedEvent, a: Mapping[str, Any], ts: int, *, version: int, previous: str | None
    ) -> None:
        declaration_id = a["declarationId"]
        if previous is None:
            jurisdiction, local_reference = a["jurisdiction"], a["localReference"]
        else:
            row = self._read(
                "SELECT jurisdiction, local_reference FROM declarations WHERE declaration_id = ?", (previous,)
            ).fetchone()
            jurisdiction, local_reference = (row[0], row[1]) if row else (0, "")
        self._insert(
            "INSERT INTO declarations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                declaration_id,
                a["declarant"],
                jurisdiction,
                version,
                previous,
                local_reference,
                a["cid"],
                event.tx_hash,
                event.block_number,
                event.log_index,
                ts,
            ),
        )
        mrn = None
        if previous is not None:
            prev_state = self._latest(
                self._declaration_state,
                "SELECT status, channel, required_stamps, mrn, rule_set_hash, superseded_by FROM declaration_states "
                "WHERE declaration_id = ? ORDER BY block_number DESC, log_index DESC LIMIT 1",
                previous,
            )
            mrn = prev_state[3] if prev_state else None
        self._declaration_snapshot(
            event, ts, declaration_id, "submitted" if previous is None else "amended",
            status=SUBMITTED, mrn=mrn, fresh=True,
        )  # fmt: skip
        self._insert(
            "INSERT INTO anchors VALUES (?, ?, ?, ?, ?, ?)",
            (declaration_id, ANCHOR_DECLARATION, declaration_id, a["cid"], event.block_number, event.log_index),
        )
        for position, document in enumerate(a["documents"]):
            self._insert(
                "INSERT INTO supporting_documents VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    declaration_id,
                    position,
                    document["documentType"],
                    document["sha256"],
                    document["cid"],
                    event.block_number,
                    event.log_index,
                ),
            )
            self._insert(
                "INSERT INTO anchors VALUES (?, ?, ?, ?, ?, ?)",
                (
                    document["sha256"],
                    ANCHOR_SUPPORTING_DOCUMENT,
                    declaration_id,
                    document["cid"],
                    event.block_number,
                    event.log_index,
                ),
            )
        self._touch(declaration_id, event)


# ====================================================================== handlers, one per event


def _agency_added(ap: Applier, e: DecodedEvent, a: Mapping[str, Any], ts: int) -> None:
    country = bytes.fromhex(a["country"][2:]).decode("ascii", "replace")
    ap._insert(
        "INSERT INTO agencies VALUES (?, ?, ?, ?, ?)",
        (a["agencyId"], a["agencyIndex"], country, e.block_number, e.log_index),
    )
    ap._agency_snapshot(
        e, ts, a["agencyId"], "added", name=a["name"], roles=a["roles"], status=1,
        encryption_key=a["encryptionKey"], ipfs_endpoint=a["ipfsEndpoint"],
    )  # fmt: skip


def _agency_roles(ap: Applier, e: DecodedEvent, a: Mapping[str, Any], ts: int) -> None:
    ap._agency_snapshot(e, ts, a["agencyId"], "roles", roles=a["roles"])


def _agency_status(ap: Applier, e: DecodedEvent, a: Mapping[str, Any], ts: int) -> None:
    ap._agency_snapshot(e, ts, a["agencyId"], "status", status=a["status"])


def _agency_profile(ap: Applier, e: DecodedEvent, a: Mapping[str, Any], ts: int) -> None:
    ap._agency_snapshot(
        e, ts, a["agencyId"], "profile", name=a["name"], encryption_key=a["encryptionKey"],
        ipfs_endpoint=a["ipfsEndpoint"],
    )  # fmt: skip


def _key_added(ap: Applier, e: DecodedEvent, a: Mapping[str, Any], ts: int) -> None:
    row = ap._read("SELECT agency_index FROM agencies WHERE agency_id = ?", (a["agencyId"],)).fetchone()
    ap._key_snapshot(
        e, ts, a["signer"], "added", agency_id=a["agencyId"], agency_index=row[0] if row else 0,
        valid_from=a["validFrom"], valid_until=a["validUntil"], compromised_at=0,
    )  # fmt: skip


def _key_expiry(ap: Applier, e: DecodedEvent, a: Mapping[str, Any], ts: int) -> None:
    ap._key_snapshot(e, ts, a["signer"], "expiry", valid_until=a["validUntil"])


def _key_compromised(ap: Applier, e: DecodedEvent, a: Mapping[str, Any], ts: int) -> None:
    ap._key_snapshot(e, ts, a["signer"], "compromised", compromised_at=a["compromisedAt"], reported_by=a["reportedBy"])


def _trader_registered(ap: Applier, e: DecodedEvent, a: Mapping[str, Any], ts: int) -> None:
    ap._trader_snapshot(
        e, ts, a["trader"], "registered", registrar_index=a["registrarIndex"], status=1, aeo=int(a["aeo"])
    )


def _trader_updated(ap: Applier, e: DecodedEvent, a: Mapping[str, Any], ts: int) -> None:
    ap._trader_snapshot(e, ts, a["trader"], "updated", status=a["status"], aeo=int(a["aeo"]))


def _governor(added: bool) -> _Handler:
    def handler(ap: Applier, e: DecodedEvent, a: Mapping[str, Any], ts: int) -> None:
        ap._insert(
            "INSERT INTO governor_changes VALUES (?, ?, ?, ?)", (a["governor"], int(added), e.block_number, e.log_index)
        )

    return handler


def _proposal_created(ap: Applier, e: DecodedEvent, a: Mapping[str, Any], ts: int) -> None:
    ap._insert(
        "INSERT INTO proposals VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            a["proposalId"], a["proposer"], a["target"], a["callData"], a["expiresAt"], a["epoch"],
            e.block_number, e.log_index, ts,
        ),
    )  # fmt: skip


def _proposal_action(action: str, actor: str | None) -> _Handler:
    def handler(ap: Applier, e: DecodedEvent, a: Mapping[str, Any], ts: int) -> None:
        ap._insert(
            "INSERT INTO proposal_actions VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                a["proposalId"], action, a.get(actor) if actor else None, a.get("approvals"),
                e.block_number, e.log_index, ts,
            ),
        )  # fmt: skip

    return handler


def _declaration_submitted(ap: Applier, e: DecodedEvent, a: Mapping[str, Any], ts: int) -> None:
    ap._store_declaration(e, a, ts, version=1, previous=None)


def _declaration_amended(ap: Applier, e: DecodedEvent, a: Mapping[str, Any], ts: int) -> None:
    ap._store_declaration(e, a, ts, version=a["version"], previous=a["previousId"])
    ap._declaration_snapshot(e, ts, a["previousId"], "superseded", status=SUPERSEDED, superseded_by=a["declarationId"])
    ap._touch(a["previousId"], e)


def _declaration_accepted(ap: Applier, e: DecodedEvent, a: Mapping[str, Any], ts: int) -> None:
    ap._declaration_snapshot(
        e, ts, a["declarationId"], "accepted", status=RELEASED if a["released"] else ACCEPTED, mrn=a["mrn"]
    )
    ap._touch(a["declarationId"], e)


def _channel_assigned(ap: Applier, e: DecodedEvent, a: Mapping[str, Any], ts: int) -> None:
    changes: dict[str, Any] = {
        "channel": a["channel"], "required_stamps": a["requiredStamps"], "rule_set_hash": a["ruleSetHash"]
    }  # fmt: skip
    if a["released"]:
        changes["status"] = RELEASED
    ap._declaration_snapshot(e, ts, a["declarationId"], "channel", **changes)
    ap._touch(a["declarationId"], e)


def _stamp_recorded(ap: Applier, e: DecodedEvent, a: Mapping[str, Any], ts: int) -> None:
    ap._insert(
        "INSERT INTO stamps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            a["stampId"], a["declarationId"], a["agencyIndex"], a["signer"], a["stampType"], a["result"],
            a["signedAt"], a["reportCid"], a["relayer"], e.tx_hash, e.block_number, e.log_index, ts,
        ),
    )  # fmt: skip
    ap._insert(
        "INSERT INTO anchors VALUES (?, ?, ?, ?, ?, ?)",
        (a["stampId"], ANCHOR_STAMP_REPORT, a["declarationId"], a["reportCid"], e.block_number, e.log_index),
    )
    ap._touch(a["declarationId"], e)


def _stamp_revoked(ap: Applier, e: DecodedEvent, a: Mapping[str, Any], ts: int) -> None:
    ap._insert(
        "INSERT INTO stamp_revocations VALUES (?, ?, ?, ?, ?, ?, ?)",
        (a["stampId"], a["declarationId"], a["signer"], a["reasonCode"], e.block_number, e.log_index, ts),
    )
    ap._touch(a["declarationId"], e)


def _decision(action: str) -> _Handler:
    def handler(ap: Applier, e: DecodedEvent, a: Mapping[str, Any], ts: int) -> None:
        signer = a.get("signer") or a.get("proposer") or ""
        pass_stamps = a.get("passStamps")
        ap._insert(
            "INSERT INTO decision_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                a["declarationId"], a["round"], action, a.get("kind"), a.get("status"), a.get("reasonCode"),
                a.get("reportSha256"), signer, a.get("approvals"), a.get("approvalsRequired"),
                None if pass_stamps is None else json.dumps(pass_stamps), e.block_number, e.log_index, ts,
            ),
        )  # fmt: skip
        if action == "recorded":
            ap._declaration_snapshot(e, ts, a["declarationId"], "decision", status=a["status"])
        ap._touch(a["declarationId"], e)

    return handler


def _batch_anchored(ap: Applier, e: DecodedEvent, a: Mapping[str, Any], ts: int) -> None:
    ap._insert(
        "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            a["root"], a["agencyIndex"], a["leafCount"], a["kind"], a["manifestCid"], a["signer"],
            e.block_number, e.log_index, ts,
        ),
    )  # fmt: skip
    ap._insert(
        "INSERT INTO anchors VALUES (?, ?, ?, ?, ?, ?)",
        (a["root"], ANCHOR_BATCH_ROOT, a["root"], a["manifestCid"], e.block_number, e.log_index),
    )


def _alert_raised(ap: Applier, e: DecodedEvent, a: Mapping[str, Any], ts: int) -> None:
    ap._insert(
        "INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            a["alertId"], a["subject"], a["subjectKind"], a["agencyIndex"], a["reasonCode"], a["evidenceSha256"],
            a["signer"], e.block_number, e.log_index, ts,
        ),
    )  # fmt: skip
    if a["subjectKind"] == _ALERT_ON_DECLARATION:
        ap._touch(a["subject"], e)


def _alert_cleared(ap: Applier, e: DecodedEvent, a: Mapping[str, Any], ts: int) -> None:
    ap._insert(
        "INSERT INTO alert_clearings VALUES (?, ?, ?, ?, ?, ?)",
        (a["alertId"], a["reasonCode"], a["signer"], e.block_number, e.log_index, ts),
    )
    row = ap._read("SELECT subject_kind FROM alerts WHERE alert_id = ?", (a["alertId"],)).fetchone()
    if row is not None and row[0] == _ALERT_ON_DECLARATION:
        ap._touch(a["subject"], e)


_HANDLERS: dict[str, _Handler] = {
    "AgencyAdded": _agency_added,
    "AgencyRolesChanged": _agency_roles,
    "AgencyStatusChanged": _agency_status,
    "AgencyProfileUpdated": _agency_profile,
    "SignerKeyAdded": _key_added,
    "SignerKeyExpiryChanged": _key_expiry,
    "SignerKeyCompromised": _key_compromised,
    "TraderRegistered": _trader_registered,
    "TraderUpdated": _trader_updated,
    "GovernorAdded": _governor(True),
    "GovernorRemoved": _governor(False),
    "ProposalCreated": _proposal_created,
    "ProposalApproved": _proposal_action("approved", "governor"),
    "ProposalExecuted": _proposal_action("executed", "executor"),
    "ProposalCancelled": _proposal_action("cancelled", None),
    "DeclarationSubmitted": _declaration_submitted,
    "DeclarationAmended": _declaration_amended,
    "DeclarationAccepted": _declaration_accepted,
    "ChannelAssigned": _channel_assigned,
    "StampRecorded": _stamp_recorded,
    "StampRevoked": _stamp_revoked,
    "DecisionProposed": _decision("proposed"),
    "DecisionApproved": _decision("approved"),
    "DecisionCancelled": _decision("cancelled"),
    "DecisionRecorded": _decision("recorded"),
    "BatchAnchored": _batch_anchored,
    "AlertRaised": _alert_raised,
    "AlertCleared": _alert_cleared,
}
