"""Customs authority: accept, decide, approve decisions, its jurisdiction's declarations.

Every route is for keys of a CUSTOMS_AUTHORITY agency (anyone else: 403 ``forbidden``) and only for
declarations of that agency's jurisdiction: a declaration of another jurisdiction is 404
``declaration-not-found``, exactly like an unknown one, because whether a declaration exists is
confidential (see ``routes/declarations.py``).

Writes are journaled in the outbox and answered 202 with a tracking id. What can be judged from
facts that never change once indexed (role, jurisdiction, the cited stamps) is checked here;
transitions that depend on the declaration's current status are left to the contract, since the
read model may trail the chain: a refused transition shows as ``failed`` with the decoded
contract error on ``GET /v1/submissions/{tracking_id}``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ledger_api.api.deps import CurrentIdentity, ReadModelDep
from ledger_api.api.routes.declarations import DeclarationPublic
from ledger_api.api.routes.declarations import _public as public_declaration
from ledger_api.api.routes.submissions import SubmissionAccepted, accepted, writes_of
from ledger_api.chain import _tx_calls as calls
from ledger_api.chain.consortium import DecisionKind
from ledger_api.errors import DeclarationNotFound, Forbidden, InvalidSubmission
from ledger_api.hashing import canonical_json, sha256_bytes
from ledger_api.index import DeclarationStatus, DeclarationView, ReadModel
from ledger_api.index._jurisdiction import UnknownCursor, jurisdiction_declarations
from ledger_api.models import Identity

__all__ = [
    "AcceptanceRequest",
    "ApprovalRequest",
    "DecisionRequest",
    "JurisdictionDeclarations",
    "WriteIdempotencyKey",
    "content_key",
    "customs_agency_index",
    "router",
]

router = APIRouter(tags=["customs"])

#: Most stamps a RELEASE may cite (``ClearanceLedger.MAX_CITED_STAMPS``).
MAX_CITED_STAMPS = 16
#: Largest page of ``GET /v1/customs/declarations``.
MAX_PAGE = 500
_PASS = 1  # StampResult.PASS

Sha256Hex = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{64}$", description="32 bytes, 0x-hex")]
DeclarationId = Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{64}$", description="declaration id (its commitment)")]
WriteIdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="8-128 characters of A-Z a-z 0-9 . _ : -; retrying with the same key never writes twice "
        "(default: derived from the request content)",
    ),
]
StatusName = Literal["SUBMITTED", "ACCEPTED", "RELEASED", "HELD", "REJECTED", "SEIZED", "SUPERSEDED"]
_STRICT = ConfigDict(extra="forbid", frozen=True, strict=True)


class AcceptanceRequest(BaseModel):
    """Accept a SUBMITTED declaration under its Movement Reference Number."""

    model_config = _STRICT

    mrn: str = Field(
        min_length=1, max_length=35, pattern=r"^[A-Za-z0-9][A-Za-z0-9-]*$",
        description="Movement Reference Number; anchored as its sha256",
    )  # fmt: skip


class DecisionRequest(BaseModel):
    """A decision on a declaration; RELEASE cites a PASS stamp for every required stamp type."""

    model_config = _STRICT

    kind: Literal["RELEASE", "HOLD", "REJECT", "SEIZE"]
    reason_code: int = Field(ge=0, le=0xFFFF, description="application-defined reason (uint16)")
    report_sha256: Sha256Hex | None = Field(default=None, description="sha256 of the decision report, if any")
    pass_stamps: list[Sha256Hex] = Field(default_factory=list, max_length=MAX_CITED_STAMPS)

    @model_validator(mode="after")
    def _stamps_for_release_only(self) -> DecisionRequest:
        if self.pass_stamps and self.kind != "RELEASE":
            raise ValueError("pass_stamps are cited by a RELEASE only")
        if len({s.lower() for s in self.pass_stamps}) != len(self.pass_stamps):
            raise ValueError("pass_stamps cites a stamp twice")
        return self


class ApprovalRequest(BaseModel):
    """Approve the pending (dual-control) decision; a RELEASE's final approval cites its PASS stamps."""

    model_config = _STRICT

    pass_stamps: list[Sha256Hex] = Field(default_factory=list, max_length=MAX_CITED_STAMPS)

    @model_validator(mode="after")
    def _distinct(self) -> ApprovalRequest:
        if len({s.lower() for s in self.pass_stamps}) != len(self.pass_stamps):
            raise ValueError("pass_stamps cites a stamp twice")
        return self


class JurisdictionDeclarations(BaseModel):
    """One page of the caller's jurisdiction's declarations, oldest submission first."""

    model_config = ConfigDict(frozen=True)

    items: list[DeclarationPublic]
    next_after: str | None = Field(description="pass as `after` for the next page; null on the last page")


def content_key(action: str, **fields: object) -> str:
    """A default idempotency key: ``action`` and the sha256 of the canonical request content, so a
    retry of the same request is the same write and different content is a different one."""
    return f"{action}:{sha256_bytes(canonical_json(fields)).hex()}"


def customs_agency_index(model: ReadModel, caller: Identity) -> int:
    """The agency index of a CUSTOMS_AUTHORITY caller (its jurisdiction); :class:`Forbidden` otherwise."""
    if not caller.has_role("CUSTOMS_AUTHORITY") or not caller.agency_id:
        raise Forbidden("this operation is for keys of a customs authority")
    agency = model.agency(caller.agency_id)
    if agency is None:
        raise Forbidden(f"{caller.agency_id} is not (yet) known to the read model")
    return agency.agency_index


def _jurisdiction_declaration(
    request: Request, model: ReadModel, caller: Identity, declaration_id: str
) -> DeclarationView:
    """Role, custody, then the declaration: 403 / 403 no-custody / 404 (unknown or another jurisdiction's)."""
    index = customs_agency_index(model, caller)
    writes_of(request).require_custody(caller)
    view = model.declaration(declaration_id.lower())
    if view is None or view.jurisdiction != index:
        raise DeclarationNotFound(declaration_id)
    return view


def _check_cited(model: ReadModel, view: DeclarationView, stamp_ids: list[str]) -> list[bytes]:
    """Every cited stamp must be an indexed, non-revoked PASS stamp of this declaration version."""
    stamps = {s.stamp_id: s for s in model.stamps(view.declaration_id)}
    for stamp_id in stamp_ids:
        stamp = stamps.get(stamp_id.lower())
        if stamp is None:
            raise InvalidSubmission(f"{stamp_id} is not a stamp of declaration {view.declaration_id} (yet)")
        if stamp.result != _PASS or stamp.revoked:
            raise InvalidSubmission(f"stamp {stamp_id} is {'revoked' if stamp.revoked else 'not a PASS'}")
    return [bytes.fromhex(s[2:]) for s in stamp_ids]


def _lower(values: list[str]) -> list[str]:
    return [v.lower() for v in values]


def _last_round(model: ReadModel, declaration_id: str) -> int:
    """The latest dual-control round seen (0 if none): part of default keys, so a new round is a new write."""
    return max((d.round for d in model.decisions(declaration_id)), default=0)


def _answer(body: SubmissionAccepted, view: DeclarationView) -> SubmissionAccepted:
    """The 202 body naming the declaration the write is about."""
    return body.model_copy(update={"declaration_id": view.declaration_id})


@router.post(
    "/v1/declarations/{declaration_id}/acceptance", status_code=202,
    summary="Accept a declaration and assign its MRN (customs authority of its jurisdiction)",
)  # fmt: skip
async def accept_declaration(
    declaration_id: DeclarationId,
    body: AcceptanceRequest,
    caller: CurrentIdentity,
    model: ReadModelDep,
    request: Request,
    response: Response,
    idempotency_key: WriteIdempotencyKey = None,
) -> SubmissionAccepted:
    """Journal ``acceptDeclaration`` with ``sha256(mrn)``."""
    view = _jurisdiction_declaration(request, model, caller, declaration_id)
    mrn = sha256_bytes(body.mrn.encode())
    call = calls.accept_declaration(declaration_id=bytes.fromhex(view.declaration_id[2:]), mrn=mrn)
    key = idempotency_key or content_key("acceptance", declaration=view.declaration_id, mrn=body.mrn)
    entry = await writes_of(request).journal(caller, key, call)
    return _answer(accepted(entry, response), view)


@router.post(
    "/v1/declarations/{declaration_id}/decisions", status_code=202,
    summary="Decide RELEASE / HOLD / REJECT / SEIZE (customs authority of the jurisdiction)",
)  # fmt: skip
async def decide(
    declaration_id: DeclarationId,
    body: DecisionRequest,
    caller: CurrentIdentity,
    model: ReadModelDep,
    request: Request,
    response: Response,
    idempotency_key: WriteIdempotencyKey = None,
) -> SubmissionAccepted:
    """Journal ``decide``: effective at once for single-control kinds, else a proposal awaiting approval."""
    view = _jurisdiction_declaration(request, model, caller, declaration_id)
    stamps = _check_cited(model, view, body.pass_stamps)
    report = bytes.fromhex(body.report_sha256[2:]) if body.report_sha256 else bytes(32)
    call = calls.decide(
        declaration_id=bytes.fromhex(view.declaration_id[2:]), kind=int(DecisionKind[body.kind]),
        reason_code=body.reason_code, report_sha256=report, pass_stamps=stamps,
    )  # fmt: skip
    key = idempotency_key or content_key(
        "decision", declaration=view.declaration_id, round=_last_round(model, view.declaration_id),
        kind=body.kind, reason_code=body.reason_code, report="0x" + report.hex(), pass_stamps=_lower(body.pass_stamps),
    )  # fmt: skip
    entry = await writes_of(request).journal(caller, key, call)
    return _answer(accepted(entry, response), view)


@router.post(
    "/v1/declarations/{declaration_id}/decisions/pending/approvals", status_code=202,
    summary="Approve the pending dual-control decision (another signer of the jurisdiction)",
)  # fmt: skip
async def approve_decision(
    declaration_id: DeclarationId,
    body: ApprovalRequest,
    caller: CurrentIdentity,
    model: ReadModelDep,
    request: Request,
    response: Response,
    idempotency_key: WriteIdempotencyKey = None,
) -> SubmissionAccepted:
    """Journal ``approveDecision``; the approval that reaches the required count makes the decision take effect."""
    view = _jurisdiction_declaration(request, model, caller, declaration_id)
    stamps = _check_cited(model, view, body.pass_stamps)
    call = calls.approve_decision(declaration_id=bytes.fromhex(view.declaration_id[2:]), pass_stamps=stamps)
    key = idempotency_key or content_key(
        "approval", declaration=view.declaration_id, round=_last_round(model, view.declaration_id),
        pass_stamps=_lower(body.pass_stamps),
    )  # fmt: skip
    entry = await writes_of(request).journal(caller, key, call)
    return _answer(accepted(entry, response), view)


@router.post(
    "/v1/declarations/{declaration_id}/decisions/pending/cancellation", status_code=202,
    summary="Withdraw the pending dual-control decision (a signer of the jurisdiction)",
)  # fmt: skip
async def cancel_decision(
    declaration_id: DeclarationId,
    caller: CurrentIdentity,
    model: ReadModelDep,
    request: Request,
    response: Response,
    idempotency_key: WriteIdempotencyKey = None,
) -> SubmissionAccepted:
    """Journal ``cancelDecision`` (no body)."""
    view = _jurisdiction_declaration(request, model, caller, declaration_id)
    call = calls.cancel_decision(declaration_id=bytes.fromhex(view.declaration_id[2:]))
    key = idempotency_key or content_key(
        "cancellation", declaration=view.declaration_id, round=_last_round(model, view.declaration_id)
    )
    entry = await writes_of(request).journal(caller, key, call)
    return _answer(accepted(entry, response), view)


@router.get("/v1/customs/declarations", summary="The caller's jurisdiction's declarations (customs authority)")
async def jurisdiction_list(
    caller: CurrentIdentity,
    model: ReadModelDep,
    status: Annotated[list[StatusName] | None, Query(max_length=7, description="current status (repeatable)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    after: Annotated[
        str | None, Query(pattern=r"^0x[0-9a-fA-F]{64}$", description="last declaration id of the previous page")
    ] = None,
) -> JurisdictionDeclarations:
    """Declaration versions of the caller's jurisdiction in order of submission, optionally by current status."""
    index = customs_agency_index(model, caller)
    try:
        page = jurisdiction_declarations(
            model, index, statuses=[DeclarationStatus[s] for s in status or ()], limit=limit, after=after
        )
    except UnknownCursor:
        raise RequestValidationError(
            [{"loc": ("query", "after"), "msg": "not a declaration of your jurisdiction", "type": "value_error"}]
        ) from None
    items = [public_declaration(v) for v in page.items]
    return JurisdictionDeclarations(
        items=items, next_after=items[-1].declaration_id if page.has_more and items else None
    )
