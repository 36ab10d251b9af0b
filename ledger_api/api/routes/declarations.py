"""Declarations as their parties see them: a trader its own, a customs authority its jurisdiction's.

Anyone else gets 404 — whether a declaration exists is itself confidential.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from ledger_api.api.deps import CurrentIdentity, ReadModelDep
from ledger_api.errors import DeclarationNotFound, Forbidden
from ledger_api.index import DeclarationView, ReadModel
from ledger_api.index._declarant import declarant_declarations
from ledger_api.index._jurisdiction import UnknownCursor
from ledger_api.models import Identity

__all__ = ["router"]

router = APIRouter(prefix="/v1/declarations", tags=["declarations"])

#: Largest page of ``GET /v1/declarations/mine``.
MAX_PAGE = 500

DeclarationId = Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{64}$", description="declaration id (its commitment)")]


class SupportingDocumentPublic(BaseModel):
    """A supporting document anchored with a declaration version."""

    model_config = ConfigDict(frozen=True)

    document_type: int
    sha256: str
    cid: str = Field(description="binary CID, 0x-hex")


class DeclarationPublic(BaseModel):
    """A declaration version as its parties see it."""

    model_config = ConfigDict(frozen=True)

    declaration_id: str
    declarant: str
    jurisdiction: int
    version: int
    status: str
    channel: int
    required_stamps: int
    mrn: str | None
    previous_id: str | None
    superseded_by: str | None
    submitted_block: int
    submitted_at: int
    documents: list[SupportingDocumentPublic]


class OwnDeclarations(BaseModel):
    """One page of the calling trader's declarations, oldest submission first."""

    model_config = ConfigDict(frozen=True)

    items: list[DeclarationPublic]
    next_after: str | None = Field(description="pass as `after` for the next page; null on the last page")


class TimelineEvent(BaseModel):
    """One event of a declaration's provenance timeline, with where to find it on chain."""

    model_config = ConfigDict(frozen=True)

    name: str
    block_number: int
    log_index: int
    tx_hash: str
    timestamp: int
    args: dict[str, Any]


def _public(view: DeclarationView) -> DeclarationPublic:
    return DeclarationPublic(
        declaration_id=view.declaration_id, declarant=view.declarant, jurisdiction=view.jurisdiction,
        version=view.version, status=view.status.name, channel=view.channel, required_stamps=view.required_stamps,
        mrn=view.mrn, previous_id=view.previous_id, superseded_by=view.superseded_by,
        submitted_block=view.submitted_block, submitted_at=view.submitted_at,
        documents=[SupportingDocumentPublic(document_type=d.document_type, sha256=d.sha256, cid=d.cid)
                   for d in view.documents],
    )  # fmt: skip


def _readable(model: ReadModel, caller: Identity, declaration_id: str) -> DeclarationView:
    """The declaration if ``caller`` is its declarant or a key of its jurisdiction; 404 otherwise."""
    view = model.declaration(declaration_id.lower())
    if view is not None:
        if caller.kind == "trader" and view.declarant.lower() == caller.address.lower():
            return view
        if caller.kind == "agency" and caller.has_role("CUSTOMS_AUTHORITY") and caller.agency_id:
            agency = model.agency(caller.agency_id)
            if agency is not None and agency.agency_index == view.jurisdiction:
                return view
    raise DeclarationNotFound(declaration_id)


@router.get("", summary="The caller's own declarations (traders)")
async def list_own(caller: CurrentIdentity, model: ReadModelDep) -> list[DeclarationPublic]:
    """Every declaration version the calling trader submitted, oldest first."""
    if caller.kind != "trader":
        raise Forbidden("listing declarations is for traders (their own)")
    return [_public(v) for v in model.declarations_of(caller.address)]


@router.get("/mine", summary="The caller's own declarations, one page at a time (traders)")
async def list_own_page(
    caller: CurrentIdentity,
    model: ReadModelDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    after: Annotated[
        str | None, Query(pattern=r"^0x[0-9a-fA-F]{64}$", description="last declaration id of the previous page")
    ] = None,
) -> OwnDeclarations:
    """The calling trader's declaration versions in order of submission; nobody else's, ever."""
    if caller.kind != "trader":
        raise Forbidden("listing declarations is for traders (their own)")
    try:
        page = declarant_declarations(model, caller.address, limit=limit, after=after)
    except UnknownCursor:
        raise RequestValidationError(
            [{"loc": ("query", "after"), "msg": "not one of your declarations", "type": "value_error"}]
        ) from None
    items = [_public(v) for v in page.items]
    return OwnDeclarations(items=items, next_after=items[-1].declaration_id if page.has_more and items else None)


@router.get("/{declaration_id}", summary="One declaration version")
async def get_one(declaration_id: DeclarationId, caller: CurrentIdentity, model: ReadModelDep) -> DeclarationPublic:
    """A declaration version, for its declarant or its jurisdiction."""
    return _public(_readable(model, caller, declaration_id))


@router.get("/{declaration_id}/timeline", summary="Provenance timeline of a declaration version")
async def timeline(declaration_id: DeclarationId, caller: CurrentIdentity, model: ReadModelDep) -> list[TimelineEvent]:
    """Every event touching the version (submission, acceptance, channel, stamps, decisions, alerts), in order."""
    view = _readable(model, caller, declaration_id)
    return [
        TimelineEvent(name=e.name, block_number=e.block_number, log_index=e.log_index, tx_hash=e.tx_hash,
                      timestamp=e.timestamp, args=e.args)
        for e in model.timeline(view.declaration_id)
    ]  # fmt: skip
