"""Collect :class:`VerificationFacts` for a sha256 from a read model.

The checklist (:func:`ledger_api.verify.verify`) stays pure; this is the one place that reads, and
it reads only through the :class:`~ledger_api.index.ReadModel` it is handed.
"""

from __future__ import annotations

from typing import Literal

from ledger_api.index import AnchorKind, AnchorView, ReadModel
from ledger_api.verify._verifier import StampFacts, VerificationFacts

__all__ = ["gather_facts"]

#: The contract's anchorOf precedence: a declaration first, then a supporting document, a report, a root.
_PRECEDENCE = {
    AnchorKind.DECLARATION: 0,
    AnchorKind.SUPPORTING_DOCUMENT: 1,
    AnchorKind.STAMP_REPORT: 2,
    AnchorKind.BATCH_ROOT: 3,
}


def gather_facts(
    model: ReadModel,
    sha256: str,
    *,
    stored_copy: Literal["verified", "missing", "mismatch", "not-checked"] = "not-checked",
    index_lag_blocks: int = 0,
) -> VerificationFacts:
    """Everything the checklist needs about ``sha256`` (lowercase 0x-hex), as the read model knows it."""
    anchors: tuple[AnchorView, ...] = tuple(
        sorted(model.document(sha256), key=lambda a: (_PRECEDENCE.get(a.kind, 9), a.block_number, a.log_index))
    )
    alerts = list(model.alerts(sha256, active_only=True))
    if not anchors or anchors[0].kind == AnchorKind.BATCH_ROOT:
        return VerificationFacts(
            sha256=sha256, anchors=anchors, alerts=tuple(alerts), stored_copy=stored_copy,
            index_lag_blocks=index_lag_blocks,
        )  # fmt: skip
    declaration = model.declaration(anchors[0].ref)
    if declaration is None:
        return VerificationFacts(sha256=sha256, anchors=anchors, alerts=tuple(alerts), stored_copy=stored_copy)
    stamps = tuple(
        StampFacts(stamp=s, key_valid_at_signing=model.key_valid_at(s.signer, s.agency_index, s.signed_at))
        for s in model.stamps(declaration.declaration_id)
    )
    alerts += model.alerts(declaration.declaration_id, active_only=True)
    alerts += model.alerts(declaration.declarant, active_only=True)
    return VerificationFacts(
        sha256=sha256,
        anchors=anchors,
        declaration=declaration,
        declarant_registered=model.trader(declaration.declarant) is not None,
        stamps=stamps,
        decisions=tuple(model.decisions(declaration.declaration_id)),
        alerts=tuple({a.alert_id: a for a in alerts}.values()),
        stored_copy=stored_copy,
        index_lag_blocks=index_lag_blocks,
    )
