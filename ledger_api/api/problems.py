"""The one table from domain errors to HTTP: status, stable problem type, headers (RFC 9457).

Routes never build HTTP errors for domain failures: they raise :class:`ledger_api.errors.LedgerError`
subclasses and the app's handler renders them through :func:`problem_for`. A problem's ``type`` is
``urn:customs-ledger:problem:<code>`` where ``<code>`` is the error's stable ``code``; clients switch
on it, never on ``detail`` text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ledger_api import errors as e

__all__ = ["PROBLEM_MEDIA_TYPE", "Problem", "problem_for", "problem_type"]

PROBLEM_MEDIA_TYPE = "application/problem+json"
_TYPE_PREFIX = "urn:customs-ledger:problem:"
#: RFC 9421 §5.1 hint sent with 401s: what a valid request signature covers.
_ACCEPT_SIGNATURE = (
    'sig=("@method" "@target-uri" "content-digest");alg="ecdsa-secp256k1-keccak256";tag="customs-ledger"'
)
#: Seconds a client should wait before retrying when a dependency is down.
RETRY_AFTER_SECONDS = 5


def problem_type(code: str) -> str:
    """The stable ``type`` URI of a problem code."""
    return _TYPE_PREFIX + code


@dataclass(frozen=True, kw_only=True)
class Problem:
    """An RFC 9457 problem document plus the headers that go with it."""

    status: int
    code: str
    title: str
    detail: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The JSON body."""
        document: dict[str, Any] = {
            "type": problem_type(self.code),
            "title": self.title,
            "status": self.status,
            "code": self.code,
        }
        if self.detail:
            document["detail"] = self.detail
        document.update(self.extensions)
        return document


#: Error class → (HTTP status, title). The most specific class along the MRO wins.
_TABLE: dict[type[e.LedgerError], tuple[int, str]] = {
    e.ConfigurationError: (500, "Service misconfigured"),
    e.ToolchainError: (500, "Service misconfigured"),
    e.ChainUnavailable: (503, "Ledger node unavailable"),
    e.ChainError: (502, "Ledger node error"),
    e.ContractRevert: (409, "Refused by the ledger contracts"),
    e.GasLimitExceeded: (422, "Transaction too large"),
    e.TransactionTimeout: (504, "Transaction not confirmed in time"),
    e.OutboxError: (409, "Write journal conflict"),
    e.IdempotencyConflict: (409, "Idempotency key reused for a different request"),
    e.UnknownOutboxEntry: (404, "No such write"),
    e.JournalBusy: (503, "Write journal busy"),
    e.DocumentError: (422, "Invalid document"),
    e.DocumentTooLarge: (413, "Document too large"),
    e.DocumentNotFound: (404, "Document not found"),
    e.IntegrityError: (502, "Stored document failed its integrity check"),
    e.StoreUnavailable: (503, "Content store unavailable"),
    e.AccessRevoked: (403, "No access to this document"),
    e.WrongKey: (403, "No access to this document"),
    e.ProofError: (422, "Proof does not verify"),
    e.ReadModelError: (500, "Read model error"),
    e.AuthenticationError: (401, "Request not authenticated"),
    e.Forbidden: (403, "Not allowed"),
    e.DeclarationNotFound: (404, "Declaration not found"),
    e.RateLimited: (429, "Too many requests"),
    e.NoCustody: (403, "This service cannot sign for the caller"),
    e.SubmissionNotFound: (404, "Submission not found"),
    e.TokenNotFound: (404, "API token not found"),
    e.InvalidSubmission: (422, "Invalid submission"),
    e.StampNotFound: (404, "Stamp not found"),
    e.ProposalNotFound: (404, "Proposal not found"),
    e.EvidenceError: (422, "Invalid evidence"),
    e.EvidenceExportError: (404, "No evidence for this subject"),
    e.ExportBusy: (503, "Evidence export busy"),
    e.AuditReportNotFound: (404, "No audit report yet"),
}

#: Contract custom errors (by name suffix, component prefix stripped) that say "who you are may not
#: do this" or "no such thing", refining ContractRevert's default 409.
_REVERT_STATUS = (
    (
        (
            "NotGovernance",
            "NotGovernor",
            "NotBootstrapper",
            "NotDeclarant",
            "NotJurisdiction",
            "NotStampIssuer",
            "NotAlertIssuer",
            "NotTraderRegistrar",
            "NotProposer",
            "NotKeyPeer",
            "MissingRole",
            "NotASigner",
            "KeyNotValid",
            "AgencyNotActive",
            "TraderNotActive",
            "RoleConflict",
        ),
        403,
    ),
    (
        (
            "UnknownDeclaration",
            "UnknownStamp",
            "UnknownAgency",
            "UnknownAgencyIndex",
            "UnknownTrader",
            "UnknownProposal",
            "UnknownAlert",
            "UnknownGovernor",
        ),
        404,
    ),
    (("Invalid", "ZeroValue", "TooMany", "SignatureExpired", "SignedInFuture", "SignatureWindowTooLong"), 422),
)


def _revert_status(error_name: str) -> int:
    for prefix in ("AgencyRegistry", "ClearanceLedger"):
        if error_name.startswith(prefix):
            error_name = error_name[len(prefix) :]
            break
    for names, status in _REVERT_STATUS:
        if any(error_name == n or (n == "Invalid" and error_name.startswith(n)) for n in names):
            return status
    return 409


def problem_for(error: e.LedgerError) -> Problem:
    """Render a domain error as a problem: status from the table, ``code`` from the error."""
    status, title = 500, "Internal error"
    for cls in type(error).__mro__:
        if cls in _TABLE:
            status, title = _TABLE[cls]
            break
    headers: dict[str, str] = {}
    extensions: dict[str, Any] = {}
    code = error.code
    if isinstance(error, e.ContractRevert):
        status = _revert_status(error.error_name)
        code = "contract-revert"
        extensions = {"error": error.error_name, "arguments": {k: str(v) for k, v in error.args_by_name.items()}}
    if status == 503:
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    if isinstance(error, e.RateLimited | e.ExportBusy):  # when this caller's budget / the exporter allows another
        headers["Retry-After"] = str(error.retry_after)
    if status == 401:  # RFC 9421 §5.1: say how to sign
        headers["Accept-Signature"] = (
            'sig=("@method" "@target-uri" "content-digest");alg="ecdsa-secp256k1-keccak256";tag="customs-ledger"'
        )
    # 5xx details can name internal endpoints or paths: keep them out of responses (the title and
    # code say what kind of failure it is); an integrity failure names only the CID, which is useful.
    detail = str(error) if status < 500 or isinstance(error, e.IntegrityError) else ""
    return Problem(status=status, code=code, title=title, detail=detail, headers=headers, extensions=extensions)
