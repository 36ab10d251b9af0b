"""Inspection agencies: stamps with report files, EIP-712 signed stamps, revocation.

* ``POST /v1/stamps`` (multipart): the caller's agency stamps a declaration and uploads the report;
  the report is sealed for the issuing agency and the declaration's customs authority, stored, and
  ``recordStamp`` is journaled with the report's sha256 as the stamp id.
* ``POST /v1/stamps/signed`` (JSON): an agency key relays a stamp an inspector signed off-line
  (EIP-712); the contract verifies the signature, this route checks its shape and the signer.
* ``POST /v1/stamps/{stamp_id}/revocation`` (JSON): the issuing agency revokes one of its stamps.

Stamp types and results are named as in LedgerTypes.sol (``LAB_TEST``, ``PASS``, …). EXPORT_CLEARANCE
stamps need the PARTNER_CUSTOMS role, every other type INSPECTION_AGENCY. Any such agency may stamp
a declaration whose id it knows; an unknown id is 404 ``declaration-not-found``. Whether the
declaration's status allows a stamp is left to the contract (the read model may trail the chain):
a refusal shows as ``failed`` on the tracking resource.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal

from eth_utils.address import is_checksum_address, to_checksum_address
from fastapi import APIRouter, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException

from ledger_api.api.deps import CurrentIdentity, ReadModelDep
from ledger_api.api.routes.customs import WriteIdempotencyKey
from ledger_api.api.routes.submissions import SubmissionAccepted, _active_agency_key, accepted, writes_of
from ledger_api.chain import _tx_calls as calls
from ledger_api.documents._cid import Cid
from ledger_api.errors import DeclarationNotFound, Forbidden, InvalidCid, InvalidSubmission, StampNotFound
from ledger_api.hashing import sha256_bytes
from ledger_api.index import AnchorKind, DeclarationView, ReadModel, StampView
from ledger_api.models import Identity

__all__ = [
    "STAMP_RESULTS",
    "STAMP_TYPES",
    "RevocationRequest",
    "SignedStampRequest",
    "StampAccepted",
    "router",
    "stamp_role",
]

router = APIRouter(tags=["stamps"])

#: ``StampType`` and ``StampResult`` of LedgerTypes.sol, by name.
STAMP_TYPES = {
    "DOCUMENT_CHECK": 0, "PHYSICAL_EXAM": 1, "XRAY_SCAN": 2, "LAB_TEST": 3, "QUARANTINE": 4,
    "EXPORT_CLEARANCE": 5, "ORIGIN_VERIFICATION": 6, "SANITARY_CHECK": 7,
}  # fmt: skip
STAMP_RESULTS = {"PASS": 1, "FAIL": 2, "INCONCLUSIVE": 3}
StampTypeName = Literal[
    "DOCUMENT_CHECK", "PHYSICAL_EXAM", "XRAY_SCAN", "LAB_TEST", "QUARANTINE", "EXPORT_CLEARANCE",
    "ORIGIN_VERIFICATION", "SANITARY_CHECK",
]  # fmt: skip
StampResultName = Literal["PASS", "FAIL", "INCONCLUSIVE"]
#: ``ClearanceLedger.MAX_SIGNATURE_WINDOW``: deadline − signedAt.
MAX_SIGNATURE_WINDOW = 30 * 24 * 3600
_SECP256K1_HALF_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141 // 2
_ROLE_BITS = {"INSPECTION_AGENCY": 1 << 1, "PARTNER_CUSTOMS": 1 << 2}
_HEX32 = re.compile(r"^0x[0-9a-fA-F]{64}$")
_STRICT = ConfigDict(extra="forbid", frozen=True, strict=True)

Sha256Hex = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{64}$", description="32 bytes, 0x-hex")]
StampId = Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{64}$", description="stamp id (its report's sha256)")]


def stamp_role(stamp_type: str) -> str:
    """The role an agency needs to issue a stamp of ``stamp_type`` (as the contract's ``_stampRole``)."""
    return "PARTNER_CUSTOMS" if stamp_type == "EXPORT_CLEARANCE" else "INSPECTION_AGENCY"


class StampAccepted(SubmissionAccepted):
    """A stamp write journaled in the outbox (HTTP 202)."""

    stamp_id: str = Field(description="the report's sha256")


class SignedStampRequest(BaseModel):
    """``IClearanceLedger.SignedStamp`` as the inspector signed it (EIP-712), and the signature.

    ``stamp_type`` and ``result`` are named; the signed message carries their enum values.
    """

    model_config = _STRICT

    declaration_id: Sha256Hex
    stamp_type: StampTypeName
    result: StampResultName
    report_sha256: Sha256Hex
    report_cid: str = Field(pattern=r"^0x(?:[0-9a-fA-F]{2}){1,128}$", description="binary CID, 0x-hex")
    signer: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$", description="the inspector key that signed")
    signed_at: int = Field(ge=1, lt=1 << 64, description="unix seconds of signing")
    nonce: int = Field(ge=0, lt=1 << 256, description="the signer's next nonce on the ledger")
    deadline: int = Field(ge=1, lt=1 << 256, description="unix seconds after which it may not be relayed")
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$", description="65 bytes r ‖ s ‖ v, 0x-hex")

    @field_validator("report_sha256")
    @classmethod
    def _non_zero(cls, value: str) -> str:
        if not int(value, 16):
            raise ValueError("must not be zero")
        return value

    @field_validator("report_cid")
    @classmethod
    def _a_cid(cls, value: str) -> str:
        try:
            Cid.from_bytes(bytes.fromhex(value[2:]))
        except InvalidCid as exc:
            raise ValueError(f"not a binary CID: {exc}") from None
        return value

    @field_validator("signer")
    @classmethod
    def _checksummed(cls, value: str) -> str:
        body = value[2:]
        if body != body.lower() and body != body.upper() and not is_checksum_address(value):
            raise ValueError("mixed-case address with a wrong EIP-55 checksum")
        return to_checksum_address(value)

    @field_validator("signature")
    @classmethod
    def _canonical_signature(cls, value: str) -> str:
        raw = bytes.fromhex(value[2:])
        r, s, v = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big"), raw[64]
        if not r or not 0 < s <= _SECP256K1_HALF_N or v not in (27, 28):
            raise ValueError("not a canonical signature (r ≠ 0, low s, v 27 or 28)")
        return value

    @model_validator(mode="after")
    def _window(self) -> SignedStampRequest:
        if self.deadline < self.signed_at or self.deadline - self.signed_at > MAX_SIGNATURE_WINDOW:
            raise ValueError(f"the deadline must fall within {MAX_SIGNATURE_WINDOW} s after signed_at")
        return self


class RevocationRequest(BaseModel):
    """Revoke a stamp of the caller's agency."""

    model_config = _STRICT

    reason_code: int = Field(ge=0, le=0xFFFF, description="application-defined reason (uint16)")


# ---------------------------------------------------------------------------------------- helpers


def _stamping_agency(caller: Identity) -> None:
    if not any(caller.has_role(role) for role in _ROLE_BITS):
        raise Forbidden("stamps are issued by keys of inspection agencies (or partner customs)")


def _require_stamp_role(caller: Identity, stamp_type: str) -> None:
    role = stamp_role(stamp_type)
    if not caller.has_role(role):
        raise Forbidden(f"{stamp_type} stamps are issued by {role} agencies")


def _known_declaration(model: ReadModel, declaration_id: str) -> DeclarationView:
    view = model.declaration(declaration_id.lower())
    if view is None:
        raise DeclarationNotFound(declaration_id)
    return view


@dataclass(frozen=True, kw_only=True)
class _StampForm:
    declaration_id: str
    stamp_type: str
    result: str
    report: bytes


async def _read_form(request: Request, max_report: int) -> _StampForm:
    """Parse the multipart body (authentication has read and checked it already)."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidSubmission("send multipart/form-data (declaration_id, stamp_type, result, report)")
    try:
        form = await request.form(max_files=1, max_fields=3)
    except HTTPException as exc:  # malformed multipart, too many parts, an oversized field
        raise InvalidSubmission(f"unreadable multipart body: {exc.detail}") from None
    try:
        return await _form_fields(form, max_report)
    finally:
        await form.close()  # spooled upload files


def _one_text(form: FormData, name: str, allowed: re.Pattern[str] | dict[str, int]) -> str:
    values = form.getlist(name)
    if len(values) != 1 or not isinstance(values[0], str):
        raise InvalidSubmission(f"exactly one '{name}' text field is required")
    value = values[0]
    if not (value in allowed if isinstance(allowed, dict) else allowed.match(value)):
        expected = ", ".join(allowed) if isinstance(allowed, dict) else "0x and 64 hex digits"
        raise InvalidSubmission(f"'{name}' must be one of: {expected}")
    return value


async def _form_fields(form: FormData, max_report: int) -> _StampForm:
    declaration_id = _one_text(form, "declaration_id", _HEX32)
    stamp_type = _one_text(form, "stamp_type", STAMP_TYPES)
    result = _one_text(form, "result", STAMP_RESULTS)
    reports = form.getlist("report")
    if len(reports) != 1 or not isinstance(reports[0], UploadFile):
        raise InvalidSubmission("exactly one 'report' file part is required")
    report = await reports[0].read(max_report + 1)
    if len(report) > max_report:
        raise InvalidSubmission(f"the report is larger than {max_report} bytes")
    if not report:
        raise InvalidSubmission("the report is empty")
    return _StampForm(declaration_id=declaration_id, stamp_type=stamp_type, result=result, report=report)


def _issued_stamp(model: ReadModel, caller: Identity, stamp_id: str) -> StampView:
    """A stamp issued by the caller's agency; 404 for anyone else's (or none)."""
    agency = model.agency(caller.agency_id) if caller.agency_id else None
    if agency is not None:
        for anchor in model.document(stamp_id):
            if anchor.kind == AnchorKind.STAMP_REPORT:
                for stamp in model.stamps(anchor.ref):
                    if stamp.stamp_id == stamp_id.lower() and stamp.agency_index == agency.agency_index:
                        return stamp
    raise StampNotFound(stamp_id)


def _stamp_answer(body: SubmissionAccepted, declaration_id: str, stamp_id: bytes) -> StampAccepted:
    return StampAccepted(**{**body.model_dump(), "declaration_id": declaration_id, "stamp_id": "0x" + stamp_id.hex()})


_MULTIPART = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["declaration_id", "stamp_type", "result", "report"],
                    "properties": {
                        "declaration_id": {"type": "string", "pattern": "^0x[0-9a-fA-F]{64}$"},
                        "stamp_type": {"type": "string", "enum": list(STAMP_TYPES)},
                        "result": {"type": "string", "enum": list(STAMP_RESULTS)},
                        "report": {
                            "type": "string",
                            "format": "binary",
                            "description": "the inspection report (its sha256 becomes the stamp id)",
                        },
                    },
                }  # fmt: skip
            }
        },
    }
}


# ---------------------------------------------------------------------------------------- routes


@router.post(
    "/v1/stamps", status_code=202, openapi_extra=_MULTIPART,
    summary="Stamp a declaration with an inspection report (inspection agencies)",
)  # fmt: skip
async def record_stamp(
    caller: CurrentIdentity,
    model: ReadModelDep,
    request: Request,
    response: Response,
    idempotency_key: WriteIdempotencyKey = None,
) -> StampAccepted:
    """Seal and store the report for the issuing agency and the jurisdiction, journal ``recordStamp``."""
    writes = writes_of(request)
    _stamping_agency(caller)
    writes.require_custody(caller)
    form = await _read_form(request, writes.max_document)
    _require_stamp_role(caller, form.stamp_type)
    view = _known_declaration(model, form.declaration_id)
    jurisdiction = model.agency(view.jurisdiction)
    if jurisdiction is None or caller.agency_id is None:
        raise InvalidSubmission("the declaration's jurisdiction is not (yet) known to the read model")
    recipients = {caller.agency_id: _active_agency_key(model, caller.agency_id, customs=False)[1]}
    recipients[jurisdiction.code] = _active_agency_key(model, jurisdiction.code, customs=True)[1]
    digest = sha256_bytes(form.report)
    stored = await run_in_threadpool(writes.vault.seal_and_store, form.report, recipients=recipients, sha256=digest)
    call = calls.record_stamp(
        declaration_id=bytes.fromhex(view.declaration_id[2:]), stamp_type=STAMP_TYPES[form.stamp_type],
        result=STAMP_RESULTS[form.result], report_sha256=digest, report_cid=stored.cid_bytes(),
    )  # fmt: skip
    entry = await writes.journal(caller, idempotency_key or f"stamp:{digest.hex()}", call)
    return _stamp_answer(accepted(entry, response), view.declaration_id, digest)


@router.post(
    "/v1/stamps/signed", status_code=202,
    summary="Relay a stamp an inspector signed off-line (EIP-712; any agency key relays)",
)  # fmt: skip
async def relay_stamp(
    body: SignedStampRequest,
    caller: CurrentIdentity,
    model: ReadModelDep,
    request: Request,
    response: Response,
    idempotency_key: WriteIdempotencyKey = None,
) -> StampAccepted:
    """Journal ``relayStamp`` with the caller as relayer; the contract verifies the signature and nonce."""
    writes = writes_of(request)
    if caller.kind != "agency":
        raise Forbidden("signed stamps are relayed by agency keys")
    writes.require_custody(caller)
    view = _known_declaration(model, body.declaration_id)
    key = model.signer_key(body.signer)
    agency = model.agency(key.agency_index) if key is not None else None
    role = stamp_role(body.stamp_type)
    if agency is None or not agency.roles & _ROLE_BITS[role]:
        raise InvalidSubmission(f"{body.signer} is not a signer key of an agency with the {role} role")
    report = bytes.fromhex(body.report_sha256[2:])
    stamp = calls.SignedStampFields(
        declaration_id=bytes.fromhex(view.declaration_id[2:]), stamp_type=STAMP_TYPES[body.stamp_type],
        result=STAMP_RESULTS[body.result], report_sha256=report, report_cid=bytes.fromhex(body.report_cid[2:]),
        signer=body.signer, signed_at=body.signed_at, nonce=body.nonce, deadline=body.deadline,
    )  # fmt: skip
    call = calls.relay_stamp(stamp=stamp, signature=bytes.fromhex(body.signature[2:]))
    entry = await writes.journal(caller, idempotency_key or f"signed-stamp:{report.hex()}", call)
    return _stamp_answer(accepted(entry, response), view.declaration_id, report)


@router.post(
    "/v1/stamps/{stamp_id}/revocation", status_code=202,
    summary="Revoke a stamp (its issuing agency)",
)  # fmt: skip
async def revoke_stamp(
    stamp_id: StampId,
    body: RevocationRequest,
    caller: CurrentIdentity,
    model: ReadModelDep,
    request: Request,
    response: Response,
    idempotency_key: WriteIdempotencyKey = None,
) -> StampAccepted:
    """Journal ``revokeStamp``; any other agency's stamp (or none) is 404 ``stamp-not-found``."""
    writes = writes_of(request)
    if caller.kind != "agency":
        raise Forbidden("stamps are revoked by keys of their issuing agency")
    writes.require_custody(caller)
    stamp = _issued_stamp(model, caller, stamp_id)
    raw = bytes.fromhex(stamp.stamp_id[2:])
    call = calls.revoke_stamp(stamp_id=raw, reason_code=body.reason_code)
    key = idempotency_key or f"revocation:{raw.hex()}:{body.reason_code}"
    entry = await writes.journal(caller, key, call)
    return _stamp_answer(accepted(entry, response), stamp.declaration_id, raw)
