"""ABI encoding of the ClearanceLedger's state-changing functions and the views the outbox needs.

The only place where ledger call data is built: one :class:`LedgerCall` builder per function the
service uses, each also naming what the call *anchors* (a declaration, stamp or batch id), so the
outbox can ask the chain "is this already there?" instead of anchoring twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_utils.abi import function_signature_to_4byte_selector

from ledger_api.chain.artifacts import load_artifact

__all__ = ["Anchor", "AnchorKind", "LedgerCall", "SupportingDocumentRef", "encode_call"]


class AnchorKind(StrEnum):
    """What a call anchors; each is refused by the contract when it already exists."""

    DECLARATION = "declaration"
    STAMP = "stamp"
    BATCH = "batch"


@dataclass(frozen=True, kw_only=True, slots=True)
class Anchor:
    """The on-chain identity a call creates (declaration commitment, stamp report sha256, batch root)."""

    kind: AnchorKind
    id: bytes  # 32 bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class LedgerCall:
    """ABI-encoded call of one ClearanceLedger function."""

    function: str
    calldata: bytes
    anchor: Anchor | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SupportingDocumentRef:
    """A supporting document of a declaration version (``SupportingDocument`` in LedgerTypes.sol)."""

    document_type: int
    sha256: bytes
    cid: bytes


def _canonical(item: dict[str, Any]) -> str:
    kind = str(item["type"])
    if kind.startswith("tuple"):
        return "(" + ",".join(_canonical(c) for c in item["components"]) + ")" + kind[5:]
    return kind


@cache
def _functions() -> dict[str, tuple[bytes, tuple[str, ...], tuple[str, ...]]]:
    table: dict[str, tuple[bytes, tuple[str, ...], tuple[str, ...]]] = {}
    for item in load_artifact("ClearanceLedger").abi:
        if item["type"] != "function":
            continue
        inputs = tuple(_canonical(i) for i in item["inputs"])
        outputs = tuple(_canonical(o) for o in item.get("outputs", []))
        selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(inputs)})")
        table[str(item["name"])] = (selector, inputs, outputs)
    return table


def encode_call(function: str, args: Sequence[object]) -> bytes:
    """Selector + ABI-encoded ``args`` of ClearanceLedger ``function``."""
    selector, inputs, _ = _functions()[function]
    return selector + abi_encode(list(inputs), list(args))


def decode_result(function: str, output: bytes) -> tuple[Any, ...]:
    """Decode the return data of view ``function``."""
    _, _, outputs = _functions()[function]
    return tuple(abi_decode(list(outputs), output))


def _b32(value: bytes, name: str) -> bytes:
    if len(value) != 32:
        raise ValueError(f"{name} must be 32 bytes, got {len(value)}")
    return value


def _docs(documents: Sequence[SupportingDocumentRef]) -> list[tuple[int, bytes, bytes]]:
    return [(d.document_type, _b32(d.sha256, "document sha256"), d.cid) for d in documents]


def submit_declaration(
    *, jurisdiction_id: bytes, local_reference: bytes, commitment: bytes, cid: bytes,
    documents: Sequence[SupportingDocumentRef] = (),
) -> LedgerCall:  # fmt: skip
    """``submitDeclaration``: anchors declaration ``commitment`` (version 1)."""
    args = (_b32(jurisdiction_id, "jurisdiction_id"), _b32(local_reference, "local_reference"),
            _b32(commitment, "commitment"), cid, _docs(documents))  # fmt: skip
    return LedgerCall(
        function="submitDeclaration",
        calldata=encode_call("submitDeclaration", args),
        anchor=Anchor(kind=AnchorKind.DECLARATION, id=commitment),
    )


def amend_declaration(
    *, previous_id: bytes, commitment: bytes, cid: bytes, documents: Sequence[SupportingDocumentRef] = ()
) -> LedgerCall:
    """``amendDeclaration``: anchors version n+1 (``commitment``) of ``previous_id``."""
    args = (_b32(previous_id, "previous_id"), _b32(commitment, "commitment"), cid, _docs(documents))
    return LedgerCall(
        function="amendDeclaration",
        calldata=encode_call("amendDeclaration", args),
        anchor=Anchor(kind=AnchorKind.DECLARATION, id=commitment),
    )


def accept_declaration(*, declaration_id: bytes, mrn: bytes) -> LedgerCall:
    """``acceptDeclaration`` with the Movement Reference Number."""
    args = (_b32(declaration_id, "declaration_id"), _b32(mrn, "mrn"))
    return LedgerCall(function="acceptDeclaration", calldata=encode_call("acceptDeclaration", args))


def assign_channel(*, declaration_id: bytes, channel: int, required_stamps: int, rule_set_hash: bytes) -> LedgerCall:
    """``assignChannel`` (risk oracle)."""
    args = (_b32(declaration_id, "declaration_id"), channel, required_stamps, _b32(rule_set_hash, "rule_set_hash"))
    return LedgerCall(function="assignChannel", calldata=encode_call("assignChannel", args))


def record_stamp(
    *, declaration_id: bytes, stamp_type: int, result: int, report_sha256: bytes, report_cid: bytes
) -> LedgerCall:
    """``recordStamp``: anchors stamp ``report_sha256``."""
    args = (_b32(declaration_id, "declaration_id"), stamp_type, result, _b32(report_sha256, "report_sha256"),
            report_cid)  # fmt: skip
    return LedgerCall(
        function="recordStamp",
        calldata=encode_call("recordStamp", args),
        anchor=Anchor(kind=AnchorKind.STAMP, id=report_sha256),
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class SignedStampFields:
    """``IClearanceLedger.SignedStamp``: an inspector's EIP-712 stamp to relay."""

    declaration_id: bytes
    stamp_type: int
    result: int
    report_sha256: bytes
    report_cid: bytes
    signer: str
    signed_at: int
    nonce: int
    deadline: int


def relay_stamp(*, stamp: SignedStampFields, signature: bytes) -> LedgerCall:
    """``relayStamp``: anchors stamp ``stamp.report_sha256`` signed off-chain by ``stamp.signer``."""
    fields = (_b32(stamp.declaration_id, "declaration_id"), stamp.stamp_type, stamp.result,
              _b32(stamp.report_sha256, "report_sha256"), stamp.report_cid, stamp.signer, stamp.signed_at,
              stamp.nonce, stamp.deadline)  # fmt: skip
    return LedgerCall(
        function="relayStamp",
        calldata=encode_call("relayStamp", (fields, signature)),
        anchor=Anchor(kind=AnchorKind.STAMP, id=stamp.report_sha256),
    )


def revoke_stamp(*, stamp_id: bytes, reason_code: int) -> LedgerCall:
    """``revokeStamp`` (issuing agency only)."""
    return LedgerCall(
        function="revokeStamp", calldata=encode_call("revokeStamp", (_b32(stamp_id, "stamp_id"), reason_code))
    )


def decide(
    *, declaration_id: bytes, kind: int, reason_code: int, report_sha256: bytes, pass_stamps: Sequence[bytes] = ()
) -> LedgerCall:
    """``decide`` (jurisdiction): RELEASE / HOLD / REJECT / SEIZE, citing PASS stamps for RELEASE."""
    args = (_b32(declaration_id, "declaration_id"), kind, reason_code, _b32(report_sha256, "report_sha256"),
            [_b32(s, "pass stamp") for s in pass_stamps])  # fmt: skip
    return LedgerCall(function="decide", calldata=encode_call("decide", args))


def approve_decision(*, declaration_id: bytes, pass_stamps: Sequence[bytes] = ()) -> LedgerCall:
    """``approveDecision``: a further signer of the jurisdiction approves the pending decision."""
    args = (_b32(declaration_id, "declaration_id"), [_b32(s, "pass stamp") for s in pass_stamps])
    return LedgerCall(function="approveDecision", calldata=encode_call("approveDecision", args))


def cancel_decision(*, declaration_id: bytes) -> LedgerCall:
    """``cancelDecision``: withdraw the pending decision."""
    return LedgerCall(
        function="cancelDecision", calldata=encode_call("cancelDecision", (_b32(declaration_id, "declaration_id"),))
    )


def anchor_batch(*, root: bytes, leaf_count: int, kind: int, manifest_cid: bytes) -> LedgerCall:
    """``anchorBatch``: anchors Merkle root ``root``."""
    return LedgerCall(
        function="anchorBatch",
        calldata=encode_call("anchorBatch", (_b32(root, "root"), leaf_count, kind, manifest_cid)),
        anchor=Anchor(kind=AnchorKind.BATCH, id=root),
    )


def raise_alert(*, subject_kind: int, subject: bytes, reason_code: int, evidence_sha256: bytes) -> LedgerCall:
    """``raiseAlert`` on a document, declaration or trader."""
    args = (subject_kind, _b32(subject, "subject"), reason_code, _b32(evidence_sha256, "evidence_sha256"))
    return LedgerCall(function="raiseAlert", calldata=encode_call("raiseAlert", args))


def clear_alert(*, alert_id: int, reason_code: int) -> LedgerCall:
    """``clearAlert`` (raising agency)."""
    return LedgerCall(function="clearAlert", calldata=encode_call("clearAlert", (alert_id, reason_code)))


def anchor_view(anchor: Anchor) -> bytes:
    """Call data of the view that tells whether ``anchor`` exists on chain."""
    function = {AnchorKind.DECLARATION: "declaration", AnchorKind.STAMP: "stamp", AnchorKind.BATCH: "batch"}[
        anchor.kind
    ]
    return encode_call(function, (anchor.id,))


def anchor_exists(anchor: Anchor, output: bytes) -> bool:
    """Read the output of :func:`anchor_view`: declaration status ≠ NONE, stamp signer ≠ 0, batch agency ≠ 0."""
    function = {AnchorKind.DECLARATION: "declaration", AnchorKind.STAMP: "stamp", AnchorKind.BATCH: "batch"}[
        anchor.kind
    ]
    (record,) = decode_result(function, output)
    if anchor.kind is AnchorKind.DECLARATION:
        return int(record[2]) != 0  # status
    if anchor.kind is AnchorKind.STAMP:
        return int(str(record[1]), 16) != 0  # signer
    return int(record[0]) != 0  # agencyIndex
