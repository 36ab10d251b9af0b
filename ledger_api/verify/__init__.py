"""Verification: the numbered checklist (pure, no I/O), composable policies, and `gather_facts`
(which reads only through the ReadModel it is given)."""

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
from ledger_api.verify.gather import gather_facts

__all__ = [
    "AllOf",
    "AnyOf",
    "Check",
    "NoActiveAlerts",
    "Policy",
    "RequireReleased",
    "RequireStamp",
    "StampFacts",
    "UnsafeAcceptAnchored",
    "VerificationFacts",
    "Verdict",
    "gather_facts",
    "verify",
]
