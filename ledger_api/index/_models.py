"""Frozen values returned by the read-model queries. Hashes and ids are lowercase 0x-hex strings."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

__all__ = [
    "AgencyView",
    "AlertView",
    "AnchorKind",
    "AnchorView",
    "DecisionEventView",
    "DeclarationStatus",
    "DeclarationView",
    "EventRecord",
    "KeyView",
    "StampView",
    "SupportingDocumentView",
]


class DeclarationStatus(IntEnum):
    """``DeclarationStatus`` of LedgerTypes.sol."""

    NONE = 0
    SUBMITTED = 1
    ACCEPTED = 2
    RELEASED = 3
    HELD = 4
    REJECTED = 5
    SEIZED = 6
    SUPERSEDED = 7


class AnchorKind(IntEnum):
    """``AnchorKind`` of LedgerTypes.sol."""

    NONE = 0
    DECLARATION = 1
    SUPPORTING_DOCUMENT = 2
    STAMP_REPORT = 3
    BATCH_ROOT = 4


@dataclass(frozen=True, kw_only=True)
class SupportingDocumentView:
    """One supporting document of a declaration version."""

    position: int
    document_type: int
    sha256: str
    cid: str  # binary CID, 0x-hex


@dataclass(frozen=True, kw_only=True)
class DeclarationView:
    """A declaration version as of ``as_of_block`` (the cursor for current state)."""

    declaration_id: str  # = commitment
    declarant: str
    jurisdiction: int  # agency index
    version: int
    previous_id: str | None
    local_reference: str
    cid: str
    status: DeclarationStatus
    channel: int
    required_stamps: int
    mrn: str | None
    rule_set_hash: str | None
    superseded_by: str | None
    documents: tuple[SupportingDocumentView, ...]
    submitted_block: int
    submitted_at: int
    tx_hash: str
    as_of_block: int
    stamps: tuple[StampView, ...] = ()  # filled by the as-of query


@dataclass(frozen=True, kw_only=True)
class StampView:
    """A stamp, with its revocation when there is one (as of the query's block)."""

    stamp_id: str  # = report sha256
    declaration_id: str
    agency_index: int
    signer: str
    stamp_type: int
    result: int
    signed_at: int
    report_cid: str
    relayer: str
    block_number: int
    timestamp: int
    revoked: bool
    revoked_block: int | None
    revocation_reason: int | None


@dataclass(frozen=True, kw_only=True)
class DecisionEventView:
    """One decision step: ``recorded`` (took effect), or ``proposed`` / ``approved`` / ``cancelled``."""

    declaration_id: str
    round: int  # 0 for single-control decisions
    action: str
    kind: int | None
    status: int | None  # the declaration's status after a recorded decision
    reason_code: int | None
    report_sha256: str | None
    signer: str
    approvals: int | None
    approvals_required: int | None
    pass_stamps: tuple[str, ...]
    block_number: int
    log_index: int
    timestamp: int


@dataclass(frozen=True, kw_only=True)
class AnchorView:
    """Where a sha256 is anchored."""

    sha256: str
    kind: AnchorKind
    ref: str  # declaration id (declaration, supporting document, stamp report) or batch root
    cid: str | None
    block_number: int
    log_index: int
    timestamp: int
    seq: int = 0  # order among one event's anchors (set by ReadModel.anchors_after)

    @property
    def cursor(self) -> tuple[int, int, int]:
        """Position to resume :meth:`ReadModel.anchors_after` from."""
        return (self.block_number, self.log_index, self.seq)


@dataclass(frozen=True, kw_only=True)
class AlertView:
    """An alert and whether it is still active."""

    alert_id: int
    subject: str
    subject_kind: int
    agency_index: int
    reason_code: int
    evidence_sha256: str
    signer: str
    block_number: int
    raised_at: int
    active: bool
    cleared_block: int | None


@dataclass(frozen=True, kw_only=True)
class KeyView:
    """A signer key's current validity facts and the history of changes (oldest first)."""

    signer: str
    agency_id: str
    agency_index: int
    valid_from: int
    valid_until: int
    compromised_at: int
    history: tuple[dict[str, Any], ...]


@dataclass(frozen=True, kw_only=True)
class AgencyView:
    """An agency's current facts, its signer keys and the history of role / status / profile changes."""

    agency_id: str
    agency_index: int
    code: str  # agency_id as text, zero padding stripped
    country: str
    name: str
    roles: int
    status: int
    encryption_key: str
    ipfs_endpoint: str
    signers: tuple[str, ...]
    history: tuple[dict[str, Any], ...]


@dataclass(frozen=True, kw_only=True)
class EventRecord:
    """One raw decoded event as stored (args JSON-ready: bytes as 0x-hex)."""

    block_number: int
    log_index: int
    tx_hash: str
    contract: str
    name: str
    args: dict[str, Any]
    timestamp: int
