"""Replication oracle: keep every anchored CID pinned on at least k agency IPFS nodes.

Each pass (:meth:`ReplicationOracle.step`):

1. **walks new anchors** (``ReadModel.anchors_after`` from a persisted cursor) and remembers every
   CID anchored on chain (declarations, supporting documents, stamp reports, batch manifests) as a
   ``doc:<cid>`` fact; empty CIDs are skipped, unparseable ones remembered as ``invalid:…`` facts;
2. **asks every agency node which CIDs it pins** (one ``pin/ls`` per node); a node that does not
   answer (:class:`~ledger_api.errors.StoreUnavailable`) counts as holding nothing this pass;
3. **repairs** every document pinned on fewer than k nodes: its blocks are read from a node that
   pins it (each block re-verified against its CID by :meth:`ContentStore.dag_cids`), written to
   the target with ``put_block`` (verified again) and pinned there. The target never has to fetch
   or be trusted with anything; targets and sources are ranked per CID by rendezvous hashing
   (sha256 of binary CID + agency id), so every run — and every agency running the oracle —
   picks the same nodes;
4. **reports** what stays under-replicated (nodes down, no reachable holder, no node left to copy
   to) in ``status()`` details and the persisted report printed by ``replication report``.

The oracle posts nothing on chain. A node being down is a finding, not a failure of the oracle: the
run state stays ``ok`` and the node is retried next pass; only when *no* node answers at all does
the pass raise :class:`StoreUnavailable` (state ``degraded``, backoff). See docs/oracles/replication.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ledger_api.documents import DEFAULT_MAX_SIZE, Cid, ContentStore
from ledger_api.errors import (
    DocumentNotFound,
    DocumentTooLarge,
    IntegrityError,
    InvalidCid,
    MalformedBlock,
    StoreUnavailable,
)
from ledger_api.index import AnchorView
from oracles._base import Oracle, OracleContext, log_event, open_context

__all__ = [
    "ORACLE",
    "ReplicationOracle",
    "add_commands",
    "parse_anchor_cid",
    "rank_nodes",
]

#: Anchors read per page of the walk, and pages per pass (a pass stays bounded).
ANCHOR_PAGE = 500
ANCHOR_PAGES_PER_STEP = 4
#: Documents copied per pass at most (the run loop comes back at once while there is work).
COPIES_PER_STEP = 50
#: Largest binary CID an anchor may carry (the contract's limit).
MAX_CID_BYTES = 128
#: Largest document copied between nodes (bytes of content), and its largest DAG (blocks).
MAX_DOCUMENT_BYTES = DEFAULT_MAX_SIZE
MAX_DAG_BLOCKS = MAX_DOCUMENT_BYTES // 1024 + 16
#: Under-replicated documents listed in ``status()`` details (the ``report`` lists all, capped).
STATUS_LIST = 20
REPORT_LIST = 10_000

_CURSOR = "anchors_cursor"
_REPORT = "report"
_COPIES = "copies_total"
_DOC = "doc:"
_INVALID = "invalid:"
_UNDER = "under:"


def parse_anchor_cid(value: str | None) -> Cid | None:
    """The CID an anchor carries (``0x``-hex binary CID), None when it carries none.

    Raises :class:`InvalidCid` for bytes that are not a CID this library handles (or too long).
    """
    if not value or value in ("0x", "0X"):
        return None
    text = value[2:] if value[:2] in ("0x", "0X") else value
    if len(text) > 2 * MAX_CID_BYTES:
        raise InvalidCid(f"anchored CID longer than {MAX_CID_BYTES} bytes")
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise InvalidCid(f"anchored CID is not hex: {value[:80]!r}") from exc
    return Cid.from_bytes(raw)


def rank_nodes(cid: Cid, agencies: Iterable[str]) -> list[str]:
    """``agencies`` in this CID's preference order (rendezvous hashing: highest score first).

    The score is ``sha256(binary CIDv1 || agency id)``: deterministic, independent of the order the
    nodes were configured in, and spreads documents evenly; adding or removing a node only moves
    the documents that ranked it among their first k.
    """
    key = cid.to_v1().to_bytes()
    return sorted(agencies, key=lambda agency: (hashlib.sha256(key + agency.encode()).digest(), agency), reverse=True)


def _key(cid: Cid) -> str:
    """One text form per block content and codec (v0 and v1 of a dag-pb root are the same)."""
    return str(cid.to_v1())


_DOCUMENT_FAILURES = (StoreUnavailable, IntegrityError, MalformedBlock, DocumentNotFound, InvalidCid)


class _CopyFailed(Exception):
    """A copy failed on one side: ``source``, ``target`` or the ``document`` itself (too large)."""

    def __init__(self, side: str, error: Exception) -> None:
        super().__init__(f"{side}: {error}")
        self.side = side
        self.error = error


@dataclass
class _Pass:
    """What one pass found and did."""

    nodes: dict[str, str] = field(default_factory=dict)  # agency -> "up" | "down: <why>"
    pinned: dict[str, set[str]] = field(default_factory=dict)  # agency -> pinned CID keys (up nodes)
    copies: list[dict[str, str]] = field(default_factory=list)
    under: list[dict[str, Any]] = field(default_factory=list)
    documents: int = 0
    new_documents: int = 0

    def up(self) -> list[str]:
        return [agency for agency, state in self.nodes.items() if state == "up"]

    def down(self, agency: str, exc: Exception) -> None:
        self.nodes[agency] = f"down: {type(exc).__name__}"
        self.pinned.pop(agency, None)


class ReplicationOracle(Oracle):
    """Keeps every anchored CID pinned on at least ``LEDGER_ORACLE_REPLICAS`` agency nodes."""

    name = "replication"
    default_agency = "CONSORTIUM-AUDIT"
    summary = "keep every anchored CID pinned on at least k agency IPFS nodes; report the others"

    def __init__(self, ctx: OracleContext) -> None:
        super().__init__(ctx)
        self.replicas = ctx.oracle_settings.replicas
        self.last: _Pass | None = None
        self._warned = False

    # ---------------------------------------------------------------- anchors

    def _walk_anchors(self) -> tuple[int, int]:
        """Remember the CIDs of anchors past the cursor; returns (anchors read, new documents)."""
        stored = self.ctx.state.get(_CURSOR, [-1, -1, -1])
        cursor = (int(stored[0]), int(stored[1]), int(stored[2]))
        read = new = 0
        for _page in range(ANCHOR_PAGES_PER_STEP):
            anchors = self.ctx.read.anchors_after(cursor, limit=ANCHOR_PAGE)
            for anchor in anchors:
                new += self._remember(anchor)
            read += len(anchors)
            if anchors:
                cursor = anchors[-1].cursor
                self.ctx.state.set(_CURSOR, list(cursor))
            if len(anchors) < ANCHOR_PAGE:
                break
        return read, new

    def _remember(self, anchor: AnchorView) -> int:
        """Record the anchor's CID as a document to replicate (1 if it is new)."""
        where = {"sha256": anchor.sha256, "kind": anchor.kind.name.lower(), "ref": anchor.ref,
                 "block": anchor.block_number}  # fmt: skip
        try:
            cid = parse_anchor_cid(anchor.cid)
        except InvalidCid as exc:
            fact = f"{_INVALID}{anchor.sha256}:{anchor.block_number}"
            if self.ctx.state.record_fact(fact, {**where, "error": str(exc)}):
                log_event(self.ctx.log, "anchored CID is not a CID", level=logging.WARNING, **where, error=str(exc))
            return 0
        if cid is None:
            return 0
        return 1 if self.ctx.state.record_fact(f"{_DOC}{_key(cid)}", where) else 0

    # ---------------------------------------------------------------- nodes

    def _survey(self, result: _Pass) -> None:
        """Ask every node for its pins; a node that does not answer is down for this pass."""
        for agency, store in sorted(self.ctx.stores.items()):
            try:
                pins = store.list()
            except StoreUnavailable as exc:
                result.down(agency, exc)
                log_event(self.ctx.log, "node down", level=logging.WARNING, node=agency, error=str(exc))
                continue
            keys: set[str] = set()
            for text in pins:
                try:
                    keys.add(_key(Cid.parse(text)))
                except InvalidCid:
                    continue  # a pin we cannot address (other hash / codec) is not one of ours
            result.nodes[agency] = "up"
            result.pinned[agency] = keys

    # ---------------------------------------------------------------- repair

    def _copy(self, cid: Cid, source: ContentStore, target: ContentStore) -> int:
        """Copy the DAG of ``cid`` block by block (verified on read and again on write), then pin it
        on ``target``; returns the number of blocks. Failures are tagged with the side that failed."""
        try:
            size = source.size(cid)
        except _DOCUMENT_FAILURES as exc:
            raise _CopyFailed("source", exc) from exc
        if size > MAX_DOCUMENT_BYTES:
            raise _CopyFailed("document", DocumentTooLarge(limit=MAX_DOCUMENT_BYTES, seen=size))
        blocks = source.dag_cids(cid)
        count = 0
        while True:
            try:
                item = next(blocks, None)
            except _DOCUMENT_FAILURES as exc:
                raise _CopyFailed("source", exc) from exc
            if item is None:
                break
            count += 1
            if count > MAX_DAG_BLOCKS:
                raise _CopyFailed("document", DocumentTooLarge(limit=MAX_DOCUMENT_BYTES, seen=size))
            try:
                target.put_block(*item)
            except _DOCUMENT_FAILURES as exc:
                raise _CopyFailed("target", exc) from exc
        try:
            target.pin(cid)
        except _DOCUMENT_FAILURES as exc:
            raise _CopyFailed("target", exc) from exc
        return count

    def _copy_from_any(self, cid: Cid, sources: list[str], target: str, result: _Pass) -> str | None:
        """Copy ``cid`` to ``target`` from the first source that serves it; None, or why it failed."""
        stores = self.ctx.stores
        key = _key(cid)
        reason = "no holder served a verified copy"
        for source in sources:
            try:
                blocks = self._copy(cid, stores[source], stores[target])
            except _CopyFailed as failed:
                exc = failed.error
                log_event(self.ctx.log, "copy failed", level=logging.WARNING, cid=key, source=source, target=target,
                          side=failed.side, error=f"{type(exc).__name__}: {exc}")  # fmt: skip
                if failed.side == "document":
                    return f"not copied: {exc}"
                node = source if failed.side == "source" else target
                if isinstance(exc, StoreUnavailable):
                    result.down(node, exc)
                if failed.side == "target":
                    return f"copy to {target} failed: {type(exc).__name__}"
                continue  # try the next holder
            result.pinned.setdefault(target, set()).add(key)
            result.copies.append({"cid": key, "source": source, "target": target})
            self.ctx.state.set(_COPIES, int(self.ctx.state.get(_COPIES, 0)) + 1)
            log_event(self.ctx.log, "replicated", cid=key, source=source, target=target, blocks=blocks)
            return None
        return reason

    def _repair(self, cid: Cid, holders: list[str], result: _Pass, budget: int) -> tuple[list[str], str]:
        """Copy ``cid`` to up nodes not pinning it (in rank order) until k pin it.

        Returns the nodes gained and, when still short of k, why."""
        ranked = rank_nodes(cid, self.ctx.stores)
        gained: list[str] = []
        reason = ""
        for target in ranked:
            if len(holders) + len(gained) >= self.replicas:
                return gained, ""
            if target in holders or result.nodes.get(target) != "up":
                continue
            if len(gained) >= budget:
                return gained, "deferred: this pass's copy budget is spent"
            sources = [a for a in ranked if a in holders and result.nodes.get(a) == "up"]
            if not sources:
                return gained, "no reachable node pins it"
            failure = self._copy_from_any(cid, sources, target, result)
            if failure is None:
                gained.append(target)
            else:
                reason = failure
        if len(holders) + len(gained) >= self.replicas:
            return gained, ""
        return gained, reason or "too few nodes up"

    # ---------------------------------------------------------------- the pass

    def step(self) -> int:
        """One pass: walk new anchors, survey the nodes, repair, report. Returns anchors + copies."""
        if self.replicas > len(self.ctx.stores) and not self._warned:
            self._warned = True
            log_event(
                self.ctx.log, "fewer nodes than replicas: every document will stay under-replicated",
                level=logging.WARNING, replicas=self.replicas, nodes=len(self.ctx.stores),
            )  # fmt: skip
        read, new = self._walk_anchors()
        result = _Pass(new_documents=new)
        self._survey(result)
        if not result.up():
            self._persist(result, complete=False)
            raise StoreUnavailable(", ".join(sorted(self.ctx.stores)), "no agency node answers")
        documents = self.ctx.state.facts(_DOC)
        result.documents = len(documents)
        budget = COPIES_PER_STEP
        for fact, where in documents.items():
            key = fact[len(_DOC) :]
            cid = Cid.parse(key)
            holders = [a for a in rank_nodes(cid, self.ctx.stores) if key in result.pinned.get(a, set())]
            if len(holders) >= self.replicas:
                continue
            gained, reason = self._repair(cid, holders, result, budget)
            budget -= len(gained)
            holders += gained
            if len(holders) < self.replicas:
                result.under.append({"cid": key, **where, "replicas": len(holders), "required": self.replicas,
                                     "holders": sorted(holders), "reason": reason})  # fmt: skip
        self._persist(result, complete=True)
        self._log_transitions(result)
        self.last = result
        return read + len(result.copies)

    def _log_transitions(self, result: _Pass) -> None:
        """Log a document once when it falls under k and once when it is back (not every pass)."""
        now = {item["cid"]: item for item in result.under}
        for item in result.under:
            if self.ctx.state.record_fact(f"{_UNDER}{item['cid']}", {"since": time.time()}):
                log_event(self.ctx.log, "under-replicated", level=logging.WARNING, cid=item["cid"],
                          replicas=item["replicas"], required=self.replicas, reason=item["reason"])  # fmt: skip
        for fact in self.ctx.state.facts(_UNDER):
            key = fact[len(_UNDER) :]
            if key not in now:
                self.ctx.state.forget_fact(fact)
                log_event(self.ctx.log, "replication restored", cid=key, required=self.replicas)

    def _persist(self, result: _Pass, *, complete: bool) -> None:
        """Store this pass's report (what ``replication report`` prints)."""
        self.ctx.state.set(
            _REPORT,
            {
                "at": time.time(),
                "complete": complete,
                "replicas": self.replicas,
                "nodes": dict(sorted(result.nodes.items())),
                "documents": result.documents,
                "under_replicated_count": len(result.under),
                "under_replicated": result.under[:REPORT_LIST],
                "copied": result.copies[:REPORT_LIST],
                "invalid_cids": list(self.ctx.state.facts(_INVALID).values())[:REPORT_LIST],
            },
        )

    def status(self) -> dict[str, Any]:
        """Figures of the last pass: nodes up / down, documents, under-replicated (first few), copies."""
        result = self.last
        if result is None:
            return {"replicas": self.replicas}
        return {
            "replicas": self.replicas,
            "nodes": dict(sorted(result.nodes.items())),
            "documents": result.documents,
            "under_replicated_count": len(result.under),
            "under_replicated": result.under[:STATUS_LIST],
            "copied_last_pass": len(result.copies),
            "copies_total": int(self.ctx.state.get(_COPIES, 0)),
        }


# ------------------------------------------------------------------------------------ commands


def _report(args: argparse.Namespace) -> int:
    """Print the last pass's report as JSON; exit 1 when a document is under-replicated."""
    ctx = open_context(ReplicationOracle.name, default_agency=ReplicationOracle.default_agency)
    try:
        report = ctx.state.get(_REPORT)
    finally:
        ctx.close()
    if not isinstance(report, dict):
        print("oracles: replication has never run for this agency", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2, default=str))
    stale = bool(args.max_age) and time.time() - float(report.get("at") or 0) > args.max_age
    return 1 if report.get("under_replicated_count") or not report.get("complete") or stale else 0


def add_commands(actions: Any) -> None:
    """``replication report [--max-age S]``: the last pass's findings (exit 1 if under-replicated)."""
    parser = actions.add_parser("report", help="under-replicated documents of the last pass (JSON; exit 1 if any)")
    parser.add_argument("--max-age", type=float, default=0.0, help="exit 1 if the report is older than this (s)")
    parser.set_defaults(handler=_report)


ORACLE = ReplicationOracle
