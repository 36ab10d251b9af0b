"""The pure checklist: each step's outcome from constructed facts, and the policies."""

from __future__ import annotations

from dataclasses import replace

from ledger_api.index import (
    AlertView,
    AnchorKind,
    AnchorView,
    DecisionEventView,
    DeclarationStatus,
    DeclarationView,
    StampView,
)
from ledger_api.verify import (
    AllOf,
    AnyOf,
    NoActiveAlerts,
    RequireReleased,
    RequireStamp,
    StampFacts,
    UnsafeAcceptAnchored,
    VerificationFacts,
    verify,
)

DECL = "0x" + "d1" * 32
LAB, XRAY = 3, 2


def _anchor(kind: AnchorKind = AnchorKind.DECLARATION, sha: str = DECL) -> AnchorView:
    return AnchorView(sha256=sha, kind=kind, ref=DECL, cid="0x01", block_number=10, log_index=0, timestamp=1)


def _declaration(status: DeclarationStatus = DeclarationStatus.RELEASED, required: int = 1 << LAB) -> DeclarationView:
    return DeclarationView(
        declaration_id=DECL, declarant="0x" + "ab" * 20, jurisdiction=1, version=1, previous_id=None,
        local_reference="0x00", cid="0x01", status=status, channel=3, required_stamps=required, mrn="0x01",
        rule_set_hash="0x02", superseded_by=None, documents=(), submitted_block=10, submitted_at=1, tx_hash="0x",
        as_of_block=20,
    )  # fmt: skip


def _stamp(stamp_type: int = LAB, result: int = 1, revoked: bool = False, sid: str = "0x" + "5a" * 32) -> StampView:
    return StampView(
        stamp_id=sid, declaration_id=DECL, agency_index=3, signer="0x" + "11" * 20, stamp_type=stamp_type,
        result=result, signed_at=100, report_cid="0x01", relayer="0x" + "00" * 20, block_number=12, timestamp=100,
        revoked=revoked, revoked_block=None, revocation_reason=None,
    )  # fmt: skip


def _release() -> DecisionEventView:
    return DecisionEventView(
        declaration_id=DECL, round=0, action="recorded", kind=0, status=3, reason_code=1, report_sha256=None,
        signer="0x" + "22" * 20, approvals=None, approvals_required=None, pass_stamps=(), block_number=13,
        log_index=0, timestamp=101,
    )  # fmt: skip


def _alert(active: bool = True) -> AlertView:
    return AlertView(
        alert_id=7, subject=DECL, subject_kind=1, agency_index=6, reason_code=9, evidence_sha256="0x", signer="0x",
        block_number=14, raised_at=102, active=active, cleared_block=None,
    )  # fmt: skip


def _released_facts(**changes: object) -> VerificationFacts:
    base = VerificationFacts(
        sha256=DECL, anchors=(_anchor(),), declaration=_declaration(), declarant_registered=True,
        stamps=(StampFacts(stamp=_stamp(), key_valid_at_signing=True),), decisions=(_release(),),
    )  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


def _outcomes(facts: VerificationFacts, **kw: object) -> dict[str, str]:
    return {c.name: c.outcome for c in verify(facts, **kw).checks}  # type: ignore[arg-type]


def test_a_released_declaration_with_its_stamps_is_valid() -> None:
    verdict = verify(_released_facts())
    assert verdict.status == "VALID" and verdict.declaration_status == "RELEASED"
    assert [c.step for c in verdict.checks] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert _outcomes(_released_facts())["stored copy"] == "skip"


def test_an_unknown_document_is_not_anchored() -> None:
    verdict = verify(VerificationFacts(sha256="0x" + "00" * 32, anchors=()))
    assert verdict.status == "NOT_ANCHORED" and [c.step for c in verdict.checks] == [1]


def test_a_stored_copy_that_no_longer_matches_fails_step_2() -> None:
    assert verify(_released_facts(stored_copy="mismatch")).status == "INVALID"
    assert _outcomes(_released_facts(stored_copy="verified"))["stored copy"] == "pass"


def test_release_without_a_valid_pass_is_an_invariant_violation() -> None:
    revoked = (StampFacts(stamp=_stamp(revoked=True), key_valid_at_signing=True),)
    assert _outcomes(_released_facts(stamps=revoked))["required stamps"] == "fail"
    void_key = (StampFacts(stamp=_stamp(), key_valid_at_signing=False),)
    verdict = verify(_released_facts(stamps=void_key))
    assert verdict.status == "INVALID"
    assert {c.name for c in verdict.failed()} == {"stamp keys", "required stamps"}
    assert _outcomes(_released_facts(decisions=()))["decisions"] == "fail"


def test_pending_declarations_warn_instead_of_failing() -> None:
    pending = _released_facts(declaration=_declaration(DeclarationStatus.ACCEPTED), stamps=(), decisions=())
    verdict = verify(pending)
    assert verdict.status == "VALID_WITH_WARNINGS"
    assert _outcomes(pending)["required stamps"] == "warn" and _outcomes(pending)["status"] == "warn"


def test_superseded_and_alerted_documents_carry_warnings() -> None:
    superseded = _released_facts(declaration=replace(_declaration(DeclarationStatus.SUPERSEDED), superseded_by="0x9"))
    assert "superseded by amendment 0x9" in [c.detail for c in verify(superseded).checks][4]
    alerted = verify(_released_facts(alerts=(_alert(),)))
    assert (
        alerted.status == "VALID_WITH_WARNINGS" and _outcomes(_released_facts(alerts=(_alert(),)))["alerts"] == "warn"
    )


def test_a_report_signed_with_a_void_key_fails_provenance() -> None:
    report = "0x" + "5a" * 32
    facts = _released_facts(
        sha256=report, anchors=(_anchor(AnchorKind.STAMP_REPORT, report),),
        stamps=(StampFacts(stamp=_stamp(sid=report), key_valid_at_signing=False),),
    )  # fmt: skip
    assert _outcomes(facts)["provenance"] == "fail"


def test_policies_add_requirements_and_compose() -> None:
    pending = _released_facts(declaration=_declaration(DeclarationStatus.HELD))
    assert verify(pending, policy=RequireReleased()).status == "INVALID"
    assert verify(_released_facts(), policy=RequireReleased()).status == "VALID"
    strict = AllOf((RequireReleased(), NoActiveAlerts()))
    assert verify(_released_facts(alerts=(_alert(),)), policy=strict).status == "INVALID"
    assert verify(_released_facts(alerts=(_alert(active=False),)), policy=strict).status == "VALID"
    either = AnyOf((RequireStamp(XRAY), RequireStamp(LAB)))
    assert verify(_released_facts(), policy=either).status == "VALID"
    neither = AnyOf((RequireStamp(XRAY), RequireStamp(0)))
    assert verify(_released_facts(), policy=neither).failed()[0].name == "policy: any of"
    assert verify(_released_facts(), policy=UnsafeAcceptAnchored()).status == "VALID"


def test_a_stale_read_model_is_reported() -> None:
    verdict = verify(_released_facts(index_lag_blocks=12))
    assert verdict.status == "VALID_WITH_WARNINGS" and verdict.stale_blocks == 12
    assert verdict.checks[-1].name == "freshness"


def test_a_batch_root_is_anchored_provenance() -> None:
    root = "0x" + "bb" * 32
    verdict = verify(VerificationFacts(sha256=root, anchors=(_anchor(AnchorKind.BATCH_ROOT, root),)))
    assert verdict.status == "VALID" and verdict.anchored_as == "batch_root"
