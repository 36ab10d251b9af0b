"""Auditor replay: rebuild the whole ledger from its events and check it (docs/audit.md).

:func:`replay` reads every event of a deployment from its deployment block with raw JSON-RPC
``eth_getLogs`` (adaptive pagination) and the ABI-layout decoder of :mod:`ledger_api.chain.events`,
rebuilds agencies, keys (with their validity history), traders, governance, declarations and
their versions, channels, stamps, decisions, batches and alerts in memory while checking the
business invariants at each event, and proves that the digest of the rebuilt state equals the
digest of the contracts' view state at the same block. The result is a :class:`ReplayReport`
(JSON via :meth:`ReplayReport.to_json`).

This package never imports web3: it reads the chain through ``ledger_api.chain.events`` (httpx)
and encodes view calls with eth_abi.
"""

from ledger_api.audit._channels import DeclarationReader, ReplayFacts, RuleSetChannelCheck
from ledger_api.audit._checkpoint import (
    ReplayCheckpoint,
    ResumePoint,
    decode_state,
    encode_state,
    load_checkpoint,
    open_checkpoint,
    resume_point,
    write_checkpoint,
)
from ledger_api.audit._digest import DIGEST_VERSION, digest
from ledger_api.audit._documents import AnchoredDocument, DocumentCheck, anchored_documents
from ledger_api.audit._evidence import bundle_zip, export_bundle
from ledger_api.audit._findings import AuditError, Finding, Severity
from ledger_api.audit._html import Timeline, render_html, write_html
from ledger_api.audit._replay import DeploymentLike, Progress, ReplayReport, Throughput, replay, write_report
from ledger_api.audit._state import ChannelAssignment, ChannelProblem, ChannelRuleCheck, LedgerState, Rebuilder

__all__ = [
    "DIGEST_VERSION",
    "AnchoredDocument",
    "AuditError",
    "ChannelAssignment",
    "ChannelProblem",
    "ChannelRuleCheck",
    "DeclarationReader",
    "DeploymentLike",
    "DocumentCheck",
    "Finding",
    "LedgerState",
    "Progress",
    "Rebuilder",
    "ReplayCheckpoint",
    "ReplayFacts",
    "ReplayReport",
    "ResumePoint",
    "RuleSetChannelCheck",
    "Severity",
    "Throughput",
    "Timeline",
    "anchored_documents",
    "bundle_zip",
    "decode_state",
    "digest",
    "encode_state",
    "export_bundle",
    "load_checkpoint",
    "open_checkpoint",
    "render_html",
    "replay",
    "resume_point",
    "write_checkpoint",
    "write_html",
    "write_report",
]
