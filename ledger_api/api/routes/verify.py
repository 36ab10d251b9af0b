"""Verification for agencies: is this document anchored, by whom, and what happened to it?"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from ledger_api.api.auth import content_sha256
from ledger_api.api.deps import CurrentAgency, ReadModelDep, StreamingAgency
from ledger_api.documents import Cid
from ledger_api.errors import DocumentNotFound, SignatureInvalid
from ledger_api.index import ReadModel
from ledger_api.verify import Verdict, gather_facts, verify

__all__ = ["router"]

router = APIRouter(prefix="/v1/verify", tags=["verify"])

CidText = Annotated[str, Path(pattern=r"^[A-Za-z0-9]{10,100}$", description="CID (Qm…, b…, z…)")]
Sha256Hex = Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{64}$", description="sha256 of the document, 0x-hex")]


class CheckPublic(BaseModel):
    """One step of the checklist."""

    model_config = ConfigDict(frozen=True)

    step: int
    name: str
    outcome: str = Field(description="pass | warn | fail | skip")
    detail: str


class VerdictPublic(BaseModel):
    """The verdict and every check that produced it."""

    model_config = ConfigDict(frozen=True)

    sha256: str
    status: str = Field(description="VALID | VALID_WITH_WARNINGS | INVALID | NOT_ANCHORED")
    anchored_as: str | None = Field(default=None, description="declaration | supporting_document | …")
    declaration_id: str | None = None
    declaration_status: str | None = None
    indexed_through_block: int
    chain_head: int | None = Field(description="latest block seen; null while the node is unreachable")
    checks: list[CheckPublic]
    anchors: list[dict[str, Any]] = Field(description="every anchor of this sha256 (kind, ref, block)")


def _verdict(request: Request, model: ReadModel, sha256: str) -> VerdictPublic:
    cursor = model.cursor_block()
    head: int | None = getattr(request.app.state, "chain_head", None)
    lag = max(0, head - cursor) if head is not None else 0
    verdict: Verdict = verify(gather_facts(model, sha256.lower(), index_lag_blocks=lag))
    facts = verdict.facts
    return VerdictPublic(
        sha256=verdict.sha256,
        status=verdict.status,
        anchored_as=verdict.anchored_as,
        declaration_id=verdict.declaration_id,
        declaration_status=verdict.declaration_status,
        indexed_through_block=cursor,
        chain_head=head,
        checks=[CheckPublic(step=c.step, name=c.name, outcome=c.outcome, detail=c.detail) for c in verdict.checks],
        anchors=[
            {"kind": a.kind.name.lower(), "ref": a.ref, "block": a.block_number, "logIndex": a.log_index}
            for a in (facts.anchors if facts else ())
        ],
    )


@router.get("/{sha256}", summary="Verify a document by its sha256")
async def verify_by_hash(
    sha256: Sha256Hex, caller: CurrentAgency, model: ReadModelDep, request: Request
) -> VerdictPublic:
    """Run the checklist for a document the caller already hashed."""
    return _verdict(request, model, sha256)


@router.get("/cid/{cid}", summary="Verify a document by the CID of its stored copy")
async def verify_by_cid(cid: CidText, caller: CurrentAgency, model: ReadModelDep, request: Request) -> VerdictPublic:
    """Find the anchor whose stored envelope / report / manifest has this CID and run the checklist
    for its sha256; 404 ``document-not-found`` when no anchor names the CID (422 if it is not a CID)."""
    anchors = model.documents_by_cid(Cid.parse(cid).to_bytes())
    if not anchors:
        raise DocumentNotFound(cid, "no anchor on the ledger names this CID")
    return _verdict(request, model, anchors[0].sha256)


@router.post(
    "",
    summary="Verify an uploaded document (raw bytes, streamed)",
    openapi_extra={"requestBody": {"content": {"application/octet-stream": {"schema": {"type": "string"}}}}},
)
async def verify_upload(caller: StreamingAgency, model: ReadModelDep, request: Request) -> VerdictPublic:
    """Hash the upload as it streams (never buffered whole), check it against the signed
    Content-Digest, then run the checklist for that sha256."""
    expected = content_sha256((k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw)
    digest = hashlib.sha256()
    async for chunk in request.stream():
        digest.update(chunk)
    if digest.digest() != expected:
        raise SignatureInvalid("the uploaded bytes do not match the signed Content-Digest")
    return _verdict(request, model, "0x" + digest.hexdigest())
