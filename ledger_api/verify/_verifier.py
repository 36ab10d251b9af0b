"""The checklist verifier: pure (no I/O), one numbered list of checks, one verdict.

The caller gathers :class:`VerificationFacts` (from the index, the registry and the content
store); :func:`verify` runs every check in order and returns a :class:`Verdict` listing each step's
outcome. A :class:`~ledger_api.verify.Policy` then says what *this* verifier requires on top
(e.g. a partner customs agency accepting only released goods without alerts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from ledger_api.index import (
    AlertView,
    AnchorKind,
    AnchorView,
    DecisionEventView,
    DeclarationStatus,
    DeclarationView,
    StampView,
)

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
    "verify",
]

Outcome = Literal["pass", "warn", "fail", "skip"]
PASS_RESULT = 1
_AUTO_RELEASE_CHANNEL = 1  # GREEN


@dataclass(frozen=True, kw_only=True)
class StampFacts:
    """A stamp and whether its key was valid (in its window, before any compromise) when it signed."""

    stamp: StampView
    key_valid_at_signing: bool


@dataclass(frozen=True, kw_only=True)
class VerificationFacts:
    """Everything the checklist looks at; gathered by the caller, never fetched here."""

    sha256: str  # of the presented document, lowercase 0x-hex
    anchors: tuple[AnchorView, ...]  # where this sha256 is anchored (first anchor first)
    declaration: DeclarationView | None = None  # the declaration version the anchor belongs to
    declarant_registered: bool | None = None  # the declarant is (or was) a registered trader
    stamps: tuple[StampFacts, ...] = ()  # every stamp of that declaration version
    decisions: tuple[DecisionEventView, ...] = ()
    alerts: tuple[AlertView, ...] = ()  # active alerts on the document, declaration or declarant
    stored_copy: Literal["verified", "missing", "mismatch", "not-checked"] = "not-checked"
    index_lag_blocks: int = 0  # how far the read model trails the chain head


@dataclass(frozen=True, kw_only=True)
class Check:
    """One numbered step of the checklist."""

    step: int
    name: str
    outcome: Outcome
    detail: str


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """The checklist's result. ``status`` is INVALID if any check failed, NOT_ANCHORED if step 1 did."""

    sha256: str
    status: Literal["VALID", "VALID_WITH_WARNINGS", "INVALID", "NOT_ANCHORED"]
    checks: tuple[Check, ...]
    anchored_as: str | None = None
    declaration_id: str | None = None
    declaration_status: str | None = None
    stale_blocks: int = 0
    facts: VerificationFacts | None = field(default=None, repr=False)

    def failed(self) -> list[Check]:
        """The checks that failed."""
        return [c for c in self.checks if c.outcome == "fail"]


class Policy(Protocol):
    """What a verifier requires beyond the facts being consistent; returns extra checks."""

    def evaluate(self, facts: VerificationFacts) -> list[Check]:
        """Checks this policy adds (step numbers from 100 on)."""
        ...


def verify(facts: VerificationFacts, policy: Policy | None = None) -> Verdict:
    """Run the numbered checklist over ``facts`` (and ``policy``); return the verdict."""
    checks: list[Check] = []

    def add(step: int, name: str, outcome: Outcome, detail: str) -> None:
        checks.append(Check(step=step, name=name, outcome=outcome, detail=detail))

    # 1. The document is anchored on the ledger.
    if not facts.anchors:
        add(1, "anchored", "fail", f"{facts.sha256} is not anchored on the ledger")
        return Verdict(sha256=facts.sha256, status="NOT_ANCHORED", checks=tuple(checks), facts=facts)
    first = facts.anchors[0]
    add(1, "anchored", "pass", f"anchored as {first.kind.name.lower()} in block {first.block_number}")

    # 2. A stored copy, when fetched, still hashes to its CID and commitment.
    copy_checks: dict[str, tuple[Outcome, str]] = {
        "verified": ("pass", "the stored copy re-hashes to its CID and sha256"),
        "missing": ("fail", "no content store holds the anchored document any more"),
        "mismatch": ("fail", "the stored copy does not match its CID or commitment"),
        "not-checked": ("skip", "the stored copy was not fetched"),
    }
    add(2, "stored copy", *copy_checks[facts.stored_copy])

    d = facts.declaration
    if first.kind == AnchorKind.BATCH_ROOT:
        add(3, "provenance", "pass", f"Merkle batch root anchored in block {first.block_number}")
        return _finish(facts, checks, policy, anchored_as="batch_root")
    if d is None:
        add(3, "provenance", "fail", "the anchor names a declaration the read model does not know")
        return _finish(facts, checks, policy, anchored_as=first.kind.name.lower())

    # 3. Who issued it: the declarant was a registered trader; a report's signer held a valid key.
    if first.kind == AnchorKind.STAMP_REPORT:
        mine = [s for s in facts.stamps if s.stamp.stamp_id == facts.sha256]
        if mine and mine[0].key_valid_at_signing:
            add(3, "provenance", "pass", f"stamp report signed by {mine[0].stamp.signer} with a key valid then")
        else:
            add(3, "provenance", "fail", "the report's stamp was signed by a key not valid at signing time")
    elif facts.declarant_registered is False:
        add(3, "provenance", "fail", f"declarant {d.declarant} is not a registered trader")
    else:
        add(3, "provenance", "pass", f"declared by trader {d.declarant}, version {d.version}")

    # 4. Every stamp's key was valid when it signed (rotation keeps old stamps; compromise voids later ones).
    void = [s.stamp.stamp_id for s in facts.stamps if not s.key_valid_at_signing]
    if void:
        add(4, "stamp keys", "fail" if d.status == DeclarationStatus.RELEASED else "warn",
            f"{len(void)} stamp(s) signed by keys not valid at signing time: {', '.join(void)}")  # fmt: skip
    else:
        add(4, "stamp keys", "pass", f"{len(facts.stamps)} stamp(s), all keys valid at signing time")

    # 5. Status of the declaration version.
    status = d.status
    if status == DeclarationStatus.RELEASED:
        add(5, "status", "pass", "released")
    elif status == DeclarationStatus.SUPERSEDED:
        add(5, "status", "warn", f"superseded by amendment {d.superseded_by}")
    elif status in (DeclarationStatus.REJECTED, DeclarationStatus.SEIZED):
        add(5, "status", "warn", f"customs decided {status.name}")
    else:
        add(5, "status", "warn", f"not cleared yet ({status.name})")

    # 6. Required stamps: a non-revoked PASS with a valid key for each required type.
    missing = [t for t in _bits(d.required_stamps) if not _has_valid_pass(facts.stamps, t)]
    if not d.required_stamps:
        add(6, "required stamps", "pass", "no inspection required")
    elif not missing:
        add(6, "required stamps", "pass", f"valid PASS for every required type {_bits(d.required_stamps)}")
    else:
        severity: Outcome = "fail" if status == DeclarationStatus.RELEASED else "warn"
        add(6, "required stamps", severity, f"no valid PASS stamp for type(s) {missing}")

    # 7. Decisions are consistent with the status.
    recorded = [x for x in facts.decisions if x.action == "recorded"]
    if status == DeclarationStatus.RELEASED:
        auto = d.channel == _AUTO_RELEASE_CHANNEL and d.required_stamps == 0
        if any(x.kind == 0 for x in recorded) or auto:
            how = "automatic release (GREEN, no inspection)" if auto and not recorded else "RELEASE decision recorded"
            add(7, "decisions", "pass", how)
        else:
            add(7, "decisions", "fail", "released without a RELEASE decision or automatic release")
    else:
        add(7, "decisions", "pass", f"{len(recorded)} decision(s) recorded")

    # 8. Live alerts on the document, the declaration or the declarant.
    active = [a for a in facts.alerts if a.active]
    if active:
        add(8, "alerts", "warn", f"{len(active)} active alert(s): " + ", ".join(f"#{a.alert_id}" for a in active))
    else:
        add(8, "alerts", "pass", "no active alerts")

    return _finish(facts, checks, policy, anchored_as=first.kind.name.lower())


def _finish(facts: VerificationFacts, checks: list[Check], policy: Policy | None, *, anchored_as: str) -> Verdict:
    if facts.index_lag_blocks > 0:
        lag = f"the read model trails the chain by {facts.index_lag_blocks} block(s)"
        checks.append(Check(step=9, name="freshness", outcome="warn", detail=lag))
    if policy is not None:
        checks.extend(policy.evaluate(facts))
    outcomes = {c.outcome for c in checks}
    status: Literal["VALID", "VALID_WITH_WARNINGS", "INVALID"] = (
        "INVALID" if "fail" in outcomes else "VALID_WITH_WARNINGS" if "warn" in outcomes else "VALID"
    )
    d = facts.declaration
    return Verdict(
        sha256=facts.sha256,
        status=status,
        checks=tuple(checks),
        anchored_as=anchored_as,
        declaration_id=d.declaration_id if d else None,
        declaration_status=d.status.name if d else None,
        stale_blocks=facts.index_lag_blocks,
        facts=facts,
    )


def _bits(mask: int) -> list[int]:
    return [t for t in range(16) if mask >> t & 1]


def _has_valid_pass(stamps: Sequence[StampFacts], stamp_type: int) -> bool:
    return any(
        s.stamp.stamp_type == stamp_type and s.stamp.result == PASS_RESULT and not s.stamp.revoked
        and s.key_valid_at_signing
        for s in stamps
    )  # fmt: skip


# --- policies ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequireReleased:
    """The declaration must be RELEASED."""

    def evaluate(self, facts: VerificationFacts) -> list[Check]:
        """Fail unless released."""
        ok = facts.declaration is not None and facts.declaration.status == DeclarationStatus.RELEASED
        return [Check(step=100, name="policy: released", outcome="pass" if ok else "fail",
                      detail="released" if ok else "this verifier accepts released goods only")]  # fmt: skip


@dataclass(frozen=True)
class NoActiveAlerts:
    """No active alert on the document, its declaration or its declarant."""

    def evaluate(self, facts: VerificationFacts) -> list[Check]:
        """Fail on any active alert."""
        active = [a.alert_id for a in facts.alerts if a.active]
        return [Check(step=101, name="policy: no alerts", outcome="fail" if active else "pass",
                      detail=f"active alerts {active}" if active else "no active alerts")]  # fmt: skip


@dataclass(frozen=True)
class RequireStamp:
    """A valid, non-revoked PASS stamp of ``stamp_type`` (e.g. an export clearance)."""

    stamp_type: int

    def evaluate(self, facts: VerificationFacts) -> list[Check]:
        """Fail unless such a stamp exists."""
        ok = _has_valid_pass(facts.stamps, self.stamp_type)
        return [Check(step=102, name=f"policy: stamp {self.stamp_type}", outcome="pass" if ok else "fail",
                      detail="present" if ok else f"no valid PASS stamp of type {self.stamp_type}")]  # fmt: skip


@dataclass(frozen=True)
class AllOf:
    """Every policy must hold."""

    policies: tuple[Policy, ...]

    def evaluate(self, facts: VerificationFacts) -> list[Check]:
        """All the policies' checks."""
        return [check for p in self.policies for check in p.evaluate(facts)]


@dataclass(frozen=True)
class AnyOf:
    """At least one policy must hold (its checks are reported; the others' failures are not)."""

    policies: tuple[Policy, ...]

    def evaluate(self, facts: VerificationFacts) -> list[Check]:
        """The first satisfied policy's checks, or one failing check naming them all."""
        for p in self.policies:
            checks = p.evaluate(facts)
            if all(c.outcome != "fail" for c in checks):
                return checks
        names = ", ".join(type(p).__name__ for p in self.policies)
        return [Check(step=110, name="policy: any of", outcome="fail", detail=f"none of {names} holds")]


@dataclass(frozen=True)
class UnsafeAcceptAnchored:
    """Accept anything anchored, whatever its status (for exploration only: never for clearance)."""

    def evaluate(self, facts: VerificationFacts) -> list[Check]:
        """Adds nothing."""
        return []
