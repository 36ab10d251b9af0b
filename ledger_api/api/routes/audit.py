"""The latest audit replay report (``ledger audit replay --report FILE``), for auditors only.

The service does not run replays; it serves the JSON report an auditor's replay last wrote to the
configured path (``LEDGER_AUDIT_REPORT``, default ``<var_dir>/audit/report.json``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from ledger_api.api.deps import CurrentIdentity, require_role
from ledger_api.errors import AuditReportNotFound, ConfigurationError

__all__ = ["MAX_REPORT_BYTES", "router"]

router = APIRouter(prefix="/v1/audit", tags=["audit"])

#: Largest report file the service reads (a report with more findings is refused, not truncated).
MAX_REPORT_BYTES = 32 * 1024 * 1024


def _read_report(path: Path) -> tuple[dict[str, Any], float]:
    """The report's JSON object and its modification time; :class:`AuditReportNotFound` if there is none."""
    try:
        stat = path.stat()
        if stat.st_size > MAX_REPORT_BYTES:
            raise ConfigurationError(f"the audit report is larger than {MAX_REPORT_BYTES} bytes")
        report = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise AuditReportNotFound("no replay report has been written yet") from None
    except ValueError:
        raise ConfigurationError("the audit report file is not JSON") from None
    if not isinstance(report, dict):
        raise ConfigurationError("the audit report file is not a JSON object")
    return report, stat.st_mtime


@router.get("/report", summary="The latest replay report (auditors)")
async def latest_report(caller: CurrentIdentity, request: Request) -> dict[str, Any]:
    """The JSON report of the last ``ledger audit replay --report``, with ``written_at`` (Unix
    seconds) added; 404 ``audit-report-not-found`` while there is none, 403 for non-auditors."""
    require_role(caller, "AUDITOR")
    path: Path | None = getattr(request.app.state, "audit_report", None)
    if path is None:
        raise AuditReportNotFound("this service has no audit report path configured")
    report, written_at = await run_in_threadpool(_read_report, path)
    return {"written_at": int(written_at), "report": report}
