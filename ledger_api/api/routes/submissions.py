"""Trader writes: submit and amend declarations (multipart), and tracking of every journaled write.

A submission is accepted once it is durable in the outbox: the response is ``202`` with a tracking
id (``GET /v1/submissions/{tracking_id}``) whatever the chain node is doing. Supporting files and the
declaration document itself are sealed for the jurisdiction's customs authority (and any agencies
named in ``share_with``; the declaration document also for the active risk-oracle agencies, which
channel it from its content) and stored in the content store first; if the store is down the request is
refused with 503 + Retry-After and nothing is journaled.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException

from ledger_api.api.deps import CurrentIdentity, ReadModelDep
from ledger_api.api.writes import StoredEnvelope, WriteService, entry_status
from ledger_api.chain import _tx_calls as calls
from ledger_api.chain.deploy import agency_id_bytes
from ledger_api.documents import AgencyPublicKey
from ledger_api.errors import ConfigurationError, DeclarationNotFound, Forbidden, InvalidSubmission
from ledger_api.hashing import canonical_json, sha256_bytes
from ledger_api.index import ReadModel
from ledger_api.models import Identity
from ledger_api.outbox import OutboxEntry

__all__ = ["DeclarationHeader", "SubmissionAccepted", "SubmissionStatus", "router"]

router = APIRouter(tags=["submissions"])

#: Limits on one declaration submission (the contract accepts at most 32 supporting documents).
MAX_DECLARATION_JSON = 1024 * 1024
MAX_DOCUMENTS = 32
MAX_SHARE_WITH = 8
_ACTIVE = 1  # AgencyStatus.ACTIVE
_AGENCY_CODE = re.compile(r"^[A-Z0-9][A-Z0-9-]{1,31}$")
_CUSTOMS_AUTHORITY_BIT = 1 << 0
_RISK_ORACLE_BIT = 1 << 3

DeclarationId = Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{64}$", description="declaration id (its commitment)")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="8-128 characters; retrying with the same key never anchors twice (default: the declaration "
        "commitment)",
    ),
]


class DeclarationHeader(BaseModel):
    """The fields of a declaration document the ledger itself needs; the rest is free-form JSON."""

    model_config = ConfigDict(extra="allow", frozen=True)

    jurisdiction: str = Field(pattern=r"^[A-Z0-9][A-Z0-9-]{1,31}$", description="customs authority code")
    local_reference: str = Field(min_length=1, max_length=64, description="LRN / UCR (hashed on chain)")


class SubmissionAccepted(BaseModel):
    """A write journaled in the outbox (HTTP 202)."""

    model_config = ConfigDict(frozen=True)

    tracking_id: str
    status: str = Field(description="pending | final | failed")
    declaration_id: str | None = None
    status_url: str


class SubmissionError(BaseModel):
    """Why a journaled write failed (a contract custom error, decoded)."""

    model_config = ConfigDict(frozen=True)

    code: str | None
    error: str | None
    arguments: dict[str, Any]


class SubmissionStatus(BaseModel):
    """Where a journaled write is: received → stored → sent → mined → final (or failed)."""

    model_config = ConfigDict(frozen=True)

    tracking_id: str
    status: str = Field(description="pending | final | failed")
    state: str = Field(description="received | stored | sent | mined | final | failed")
    function: str | None
    anchor: str | None = Field(description="declaration id / stamp id / batch root the write creates")
    tx_hash: str | None
    block_number: int | None
    error: SubmissionError | None


def writes_of(request: Request) -> WriteService:
    """The service's write side (set up by :func:`ledger_api.api.service.build_service`)."""
    writes: WriteService | None = getattr(request.app.state, "writes", None)
    if writes is None:
        raise ConfigurationError("this service takes no writes (no outbox configured)")
    return writes


def accepted(entry: OutboxEntry, response: Response) -> SubmissionAccepted:
    """The 202 body for a journaled entry (and its Location header)."""
    url = f"/v1/submissions/{entry.id}"
    response.headers["Location"] = url
    anchor = entry.call.anchor if entry.call is not None else None
    return SubmissionAccepted(
        tracking_id=str(entry.id), status=entry_status(entry), status_url=url,
        declaration_id="0x" + anchor.id.hex() if anchor is not None and anchor.kind == "declaration" else None,
    )  # fmt: skip


def _active_agency_key(model: ReadModel, code: str, *, customs: bool) -> tuple[int, AgencyPublicKey]:
    view = model.agency(code)
    if view is None or view.status != _ACTIVE:
        raise InvalidSubmission(f"{code} is not an active agency of this ledger")
    if customs and not view.roles & _CUSTOMS_AUTHORITY_BIT:
        raise InvalidSubmission(f"{code} is not a customs authority")
    key = bytes.fromhex(view.encryption_key.removeprefix("0x"))
    if len(key) != 32 or not any(key):
        raise InvalidSubmission(f"{code} has no document encryption key registered")
    return view.agency_index, AgencyPublicKey(raw=key)


def _risk_oracle_keys(model: ReadModel) -> dict[str, AgencyPublicKey]:
    """Encryption keys of the active RISK_ORACLE agencies that registered one, by agency code."""
    keys = {}
    for view in model.agencies():
        key = bytes.fromhex(view.encryption_key.removeprefix("0x"))
        if view.status == _ACTIVE and view.roles & _RISK_ORACLE_BIT and len(key) == 32 and any(key):
            keys[view.code] = AgencyPublicKey(raw=key)
    return keys


async def _read_limited(upload: UploadFile, limit: int, what: str) -> bytes:
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise InvalidSubmission(f"{what} is larger than {limit} bytes")
    return data


@dataclass(frozen=True, kw_only=True)
class _DeclarationForm:
    declaration: bytes
    files: list[bytes]
    document_types: list[int]
    share_with: list[str]


async def _read_form(request: Request, max_document: int) -> _DeclarationForm:
    """Parse the multipart body (after authentication has read and checked it; see the module docstring)."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidSubmission("send multipart/form-data (declaration, documents, document_types, share_with)")
    try:
        form = await request.form(max_files=MAX_DOCUMENTS + 1, max_fields=MAX_DOCUMENTS + MAX_SHARE_WITH + 2)
    except HTTPException as exc:  # malformed multipart, too many parts, an oversized field
        raise InvalidSubmission(f"unreadable multipart body: {exc.detail}") from None
    try:
        return await _form_fields(form, max_document)
    finally:
        await form.close()  # spooled upload files


async def _form_fields(form: FormData, max_document: int) -> _DeclarationForm:
    declarations = form.getlist("declaration")
    if len(declarations) != 1:
        raise InvalidSubmission("exactly one 'declaration' part (the declaration JSON) is required")
    (part,) = declarations
    if isinstance(part, str):
        raw = part.encode()
    else:
        raw = await _read_limited(part, MAX_DECLARATION_JSON, "the declaration")  # fmt: skip
    if len(raw) > MAX_DECLARATION_JSON:
        raise InvalidSubmission(f"the declaration is larger than {MAX_DECLARATION_JSON} bytes")
    uploads = form.getlist("documents")
    if len(uploads) > MAX_DOCUMENTS:
        raise InvalidSubmission(f"at most {MAX_DOCUMENTS} supporting documents")
    files = []
    for i, upload in enumerate(uploads):
        if not isinstance(upload, UploadFile):
            raise InvalidSubmission("'documents' parts must be files")
        files.append(await _read_limited(upload, max_document, f"document {upload.filename or i}"))
    kinds: list[int] = []
    for value in form.getlist("document_types"):
        if not isinstance(value, str) or not (value.isascii() and value.isdigit()) or not 0 <= int(value) <= 255:
            raise InvalidSubmission("document_types are integers 0-255, one per document")
        kinds.append(int(value))
    share = [v for v in form.getlist("share_with") if isinstance(v, str)]
    if len(share) != len(form.getlist("share_with")) or any(not _AGENCY_CODE.match(v) for v in share):
        raise InvalidSubmission("share_with names agency codes")
    return _DeclarationForm(declaration=raw, files=files, document_types=kinds, share_with=share)


def _trader_with_custody(writes: WriteService, caller: Identity) -> None:
    if caller.kind != "trader":
        raise Forbidden("declarations are submitted by traders")
    writes.require_custody(caller)


def _parse_declaration(raw: bytes) -> tuple[Any, DeclarationHeader]:
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidSubmission(f"the declaration is not JSON: {exc}") from None
    except RecursionError:
        raise InvalidSubmission("the declaration nests too deeply") from None
    if not isinstance(document, dict):
        raise InvalidSubmission("the declaration must be a JSON object")
    try:
        return document, DeclarationHeader.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidSubmission(f"declaration field {where}: {first['msg']}") from None


async def _prepare(
    *, writes: WriteService, model: ReadModel, caller: Identity, form: _DeclarationForm
) -> tuple[DeclarationHeader, bytes, StoredEnvelope, list[calls.SupportingDocumentRef]]:
    """Validate, seal and store a declaration and its files; returns (header, commitment, envelope, refs)."""
    document_types, share_with, files = form.document_types, form.share_with, form.files
    if len(document_types) != len(files):
        raise InvalidSubmission(f"{len(files)} documents but {len(document_types)} document_types")
    if len(share_with) > MAX_SHARE_WITH or len(set(share_with)) != len(share_with):
        raise InvalidSubmission(f"share_with names at most {MAX_SHARE_WITH} distinct agencies")
    document, header = _parse_declaration(form.declaration)
    canonical = canonical_json(document)
    commitment = sha256_bytes(canonical)
    _, customs_key = _active_agency_key(model, header.jurisdiction, customs=True)
    recipients = {header.jurisdiction: customs_key}
    for code in share_with:
        recipients[code] = _active_agency_key(model, code, customs=False)[1]
    # The declaration itself (not its supporting files) is also readable by the risk oracles, which
    # assign its selectivity channel from its goods, origin and value.
    declaration_recipients = {**_risk_oracle_keys(model), **recipients}

    def store() -> tuple[StoredEnvelope, list[calls.SupportingDocumentRef]]:
        main = writes.vault.seal_and_store(canonical, recipients=declaration_recipients, sha256=commitment)
        refs = []
        for kind, content in zip(document_types, files, strict=True):
            digest = sha256_bytes(content)
            sealed = writes.vault.seal_and_store(content, recipients=recipients, sha256=digest)
            refs.append(calls.SupportingDocumentRef(document_type=kind, sha256=digest, cid=sealed.cid_bytes()))
        return main, refs

    envelope, refs = await run_in_threadpool(store)
    return header, commitment, envelope, refs


_MULTIPART = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["declaration"],
                    "properties": {
                        "declaration": {
                            "type": "string",
                            "format": "binary",
                            "description": "the declaration document: a JSON object (at most 1 MiB) "
                            "with jurisdiction and local_reference",
                        },
                        "documents": {
                            "type": "array",
                            "maxItems": MAX_DOCUMENTS,
                            "items": {"type": "string", "format": "binary"},
                        },
                        "document_types": {
                            "type": "array",
                            "maxItems": MAX_DOCUMENTS,
                            "items": {"type": "integer", "minimum": 0, "maximum": 255},
                        },
                        "share_with": {
                            "type": "array",
                            "maxItems": MAX_SHARE_WITH,
                            "items": {"type": "string", "pattern": "^[A-Z0-9][A-Z0-9-]{1,31}$"},
                        },
                    },
                }  # fmt: skip
            }
        },
    }
}


@router.post(
    "/v1/declarations", status_code=202, openapi_extra=_MULTIPART,
    summary="Submit a declaration with its supporting documents (traders)",
)  # fmt: skip
async def submit_declaration(
    caller: CurrentIdentity,
    model: ReadModelDep,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> SubmissionAccepted:
    """Seal and store the documents, journal ``submitDeclaration`` and return its tracking id."""
    writes = writes_of(request)
    _trader_with_custody(writes, caller)
    header, commitment, envelope, refs = await _prepare(
        writes=writes, model=model, caller=caller, form=await _read_form(request, writes.max_document)
    )
    call = calls.submit_declaration(
        jurisdiction_id=agency_id_bytes(header.jurisdiction),
        local_reference=sha256_bytes(header.local_reference.encode()),
        commitment=commitment, cid=envelope.cid_bytes(), documents=refs,
    )  # fmt: skip
    entry = await writes.journal(caller, idempotency_key or f"declaration:{commitment.hex()}", call)
    return accepted(entry, response)


@router.post(
    "/v1/declarations/{declaration_id}/amendments", status_code=202, openapi_extra=_MULTIPART,
    summary="Amend a declaration: a new version that supersedes it (its declarant)",
)  # fmt: skip
async def amend_declaration(
    declaration_id: DeclarationId,
    caller: CurrentIdentity,
    model: ReadModelDep,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> SubmissionAccepted:
    """Journal ``amendDeclaration`` of ``declaration_id``; only its declarant may, before release."""
    writes = writes_of(request)
    _trader_with_custody(writes, caller)
    previous = model.declaration(declaration_id.lower())
    if previous is None or caller.kind != "trader" or previous.declarant.lower() != caller.address.lower():
        raise DeclarationNotFound(declaration_id)
    header, commitment, envelope, refs = await _prepare(
        writes=writes, model=model, caller=caller, form=await _read_form(request, writes.max_document)
    )
    jurisdiction = model.agency(header.jurisdiction)
    if jurisdiction is None or jurisdiction.agency_index != previous.jurisdiction:
        raise InvalidSubmission("an amendment keeps the jurisdiction of the declaration it amends")
    call = calls.amend_declaration(
        previous_id=bytes.fromhex(declaration_id[2:]), commitment=commitment, cid=envelope.cid_bytes(), documents=refs
    )
    entry = await writes.journal(caller, idempotency_key or f"amendment:{commitment.hex()}", call)
    return accepted(entry, response)


@router.get("/v1/submissions/{tracking_id}", summary="Where a journaled write is (its submitter only)")
async def submission_status(
    tracking_id: Annotated[str, Path(pattern=r"^[0-9]{1,18}$")], caller: CurrentIdentity, request: Request
) -> SubmissionStatus:
    """The state of one of the caller's writes; anyone else's is 404."""
    entry = writes_of(request).tracked(caller, tracking_id)
    error = None
    if entry.error_code or entry.error_name:
        error = SubmissionError(code=entry.error_code, error=entry.error_name, arguments=entry.error_args)
    anchor = entry.call.anchor if entry.call is not None else None
    return SubmissionStatus(
        tracking_id=str(entry.id), status=entry_status(entry), state=entry.state,
        function=entry.call.function if entry.call else None, anchor="0x" + anchor.id.hex() if anchor else None,
        tx_hash=entry.tx_hash, block_number=entry.block_number, error=error,
    )  # fmt: skip
