"""Evidence bundles over HTTP: the same file ``ledger evidence export`` writes, for a court or a partner.

The bundle holds only public chain data (block headers, receipts, transactions, storage proofs) and
the verdict — never document contents — so any authenticated agency may ask for it, as for a
verdict. Building one reads every block header since the deployment, so the service builds one at a
time (``503 export-busy`` + ``Retry-After`` otherwise) in a worker thread.
"""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from starlette.concurrency import run_in_threadpool

from ledger_api.api.deps import CurrentAgency
from ledger_api.audit import export_bundle
from ledger_api.errors import ConfigurationError, ExportBusy
from ledger_api.verify.evidence import canonical_bundle

__all__ = ["router"]

router = APIRouter(prefix="/v1/evidence", tags=["evidence"])

Subject = Annotated[
    str, Path(pattern=r"^0x[0-9a-fA-F]{64}$", description="sha256 of a document, or a declaration id, 0x-hex")
]

#: One export at a time per process (each reads every block header since the deployment).
_EXPORTING = threading.Lock()


@router.get(
    "/{subject}",
    summary="Evidence bundle of an anchored document (offline-verifiable JSON)",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}, "description": "customs-ledger-evidence bundle"}},
)
async def evidence_bundle(subject: Subject, caller: CurrentAgency, request: Request) -> Response:
    """Export the bundle of ``subject`` up to the current head; verify it offline with
    ``ledger evidence verify BUNDLE --trusted-block <hash of its last header>`` (docs/evidence.md)."""
    deployment = getattr(request.app.state, "deployment", None)
    rpc_url = getattr(request.app.state, "rpc_url", None)
    if deployment is None or not rpc_url:
        raise ConfigurationError("this service has no deployment to export evidence from")
    if not _EXPORTING.acquire(blocking=False):
        raise ExportBusy()
    try:
        bundle = await run_in_threadpool(export_bundle, rpc_url, deployment, subject.lower())
    finally:
        _EXPORTING.release()
    body = canonical_bundle(bundle)  # the exact bytes `ledger evidence verify` accepts (step 1)
    filename = f"evidence-{subject.lower()[2:18]}.json"
    return Response(
        content=body,
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
