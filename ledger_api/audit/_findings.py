"""Findings: what the replay reports as wrong (or worth an auditor's attention), with where it happened."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ledger_api.errors import LedgerError

__all__ = ["AuditError", "Finding", "Severity"]


class AuditError(LedgerError):
    """The replay could not run to the end (not: the replay found anomalies — those are findings)."""

    code = "audit-error"


class Severity:
    """Finding severities. ``error`` fails the audit; ``warning`` is reported but does not."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One anomaly: a stable ``code``, a sentence, and the event it was found at.

    ``block`` / ``tx`` / ``log_index`` locate the event (``None`` for end-of-history checks and
    for the digest comparison); ``details`` carries the values an auditor needs to follow up.
    """

    code: str
    severity: str
    message: str
    block: int | None = None
    tx: str | None = None
    log_index: int | None = None
    event: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self, explorer: str | None = None) -> dict[str, Any]:
        """JSON form; ``explorer`` is a URL template with ``{tx}`` and/or ``{block}`` for a link."""
        out: dict[str, Any] = {"code": self.code, "severity": self.severity, "message": self.message}
        if self.block is not None:
            out["block"] = self.block
        if self.tx is not None:
            out["tx"] = self.tx
        if self.log_index is not None:
            out["log_index"] = self.log_index
        if self.event is not None:
            out["event"] = self.event
        if self.block is not None or self.tx is not None:
            link: dict[str, Any] = {"block": self.block, "tx": self.tx, "log_index": self.log_index}
            if explorer is not None:
                link["url"] = explorer.format(tx=self.tx or "", block=self.block if self.block is not None else "")
            out["link"] = link
        if self.details:
            out["details"] = self.details
        return out
