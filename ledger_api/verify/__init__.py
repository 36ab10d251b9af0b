"""Verification: the numbered checklist (pure, no I/O), composable policies, `gather_facts`
(which reads only through the ReadModel it is given), and the offline evidence-bundle checklist
(:mod:`ledger_api.verify.evidence`, pure)."""

from ledger_api.verify._verifier import (
    AllOf,
    AnyOf,
    Check,
    NoActiveAlerts,
    Policy,
    RequireReleased,
    RequireStamp,
    StampFacts,
    UnsafeAcceptAnchored,
    Verdict,
    VerificationFacts,
    verify,
)
from ledger_api.verify.evidence import EvidenceReport, TrustedDeployment, verify_bundle
from ledger_api.verify.gather import gather_facts

__all__ = [
    "AllOf",
    "AnyOf",
    "Check",
    "EvidenceReport",
    "NoActiveAlerts",
    "Policy",
    "RequireReleased",
    "RequireStamp",
    "StampFacts",
    "TrustedDeployment",
    "UnsafeAcceptAnchored",
    "VerificationFacts",
    "Verdict",
    "gather_facts",
    "verify",
    "verify_bundle",
]
