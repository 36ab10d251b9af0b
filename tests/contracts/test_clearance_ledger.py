"""ClearanceLedger: every lifecycle transition and every refusal, one behaviour per test."""

from __future__ import annotations

import pytest
from brownie import chain
from testkit import (
    AGENCY_SUSPENDED,
    AK_BATCH_ROOT,
    AK_DECLARATION,
    AK_NONE,
    AK_STAMP_REPORT,
    AK_SUPPORTING,
    CH_GREEN,
    CH_NONE,
    CH_RED,
    CH_YELLOW,
    CUSTOMS,
    DOCUMENT_CHECK,
    EXPORT_CLEARANCE,
    FAIL,
    HOLD,
    INCONCLUSIVE,
    INSPECTION,
    LAB_TEST,
    PARTNER,
    PASS,
    PHYSICAL_EXAM,
    REJECT,
    RELEASE,
    RISK,
    SEIZE,
    ST_ACCEPTED,
    ST_HELD,
    ST_REJECTED,
    ST_RELEASED,
    ST_SEIZED,
    ST_SUBMITTED,
    ST_SUPERSEDED,
    SUBJ_DECLARATION,
    SUBJ_DOCUMENT,
    SUBJ_TRADER,
    TRADER_SUSPENDED,
    XRAY_SCAN,
    ZERO32,
    StandardMerkleTree,
    as_dict,
    b32,
    bit,
    cid,
    docs,
    event,
    plain,
    sha,
)

TWO = bit(DOCUMENT_CHECK, LAB_TEST)


def submit_args(c, label, jurisdiction="CN", n_docs=3, **override):
    args = {
        "jurisdiction": c.agencies[jurisdiction],
        "reference": b32("LRN-" + label),
        "commitment": sha(label),
        "cid": cid(label),
        "documents": docs(label, n_docs),
    }
    args.update(override)
    return list(args.values())


def released(c, did):
    """Release an accepted YELLOW(DOCUMENT_CHECK+LAB_TEST) declaration with fresh PASS stamps."""
    stamps = [c.stamp(did, DOCUMENT_CHECK), c.stamp(did, LAB_TEST)]
    c.led.decide(did, RELEASE, 1, ZERO32, stamps, {"from": c.keys.cn})
    return stamps


def held(c, did=None):
    did = did or c.accepted()
    c.led.decide(did, HOLD, 7, sha("hold-report"), [], {"from": c.keys.cn})
    return did


def declaration_in(c, status):
    """A declaration in `status` reached through the real lifecycle."""
    if status == ST_SUBMITTED:
        return c.submit()
    did = c.accepted()
    if status == ST_ACCEPTED:
        return did
    if status == ST_RELEASED:
        released(c, did)
    elif status == ST_HELD:
        held(c, did)
    elif status == ST_REJECTED:
        c.led.decide(did, REJECT, 1, ZERO32, [], {"from": c.keys.cn})
    elif status == ST_SEIZED:
        held(c, did)
        c.led.decide(did, SEIZE, 1, ZERO32, [], {"from": c.keys.cn})
    elif status == ST_SUPERSEDED:
        c.led.amendDeclaration(did, sha(c.fresh("amend")), cid("a"), [], {"from": c.traders.t1})
    assert c.decl(did)["status"] == status
    return did


ALL_STATUSES = [ST_SUBMITTED, ST_ACCEPTED, ST_RELEASED, ST_HELD, ST_REJECTED, ST_SEIZED, ST_SUPERSEDED]
STATUS_IDS = ["submitted", "accepted", "released", "held", "rejected", "seized", "superseded"]


# ------------------------------------------------------------------------------------ submit


def test_submit_declaration(c):
    args = submit_args(c, "sub-1")
    tx = c.led.submitDeclaration(*args, {"from": c.traders.t1})
    assert len(tx.events) == 1
    assert event(tx, "DeclarationSubmitted") == plain(
        {
            "declarationId": sha("sub-1"),
            "declarant": c.traders.t1,
            "jurisdiction": c.index["CN"],
            "localReference": b32("LRN-sub-1"),
            "cid": cid("sub-1"),
            "documents": docs("sub-1", 3),
        }
    )
    d = c.decl(sha("sub-1"))
    assert d == plain(
        {
            "declarant": c.traders.t1,
            "jurisdiction": c.index["CN"],
            "status": ST_SUBMITTED,
            "channel": CH_NONE,
            "requiredStamps": 0,
            "version": 1,
            "mrn": ZERO32,
            "ruleSetHash": ZERO32,
            "previousId": ZERO32,
            "supersededBy": ZERO32,
        }
    )


def test_submit_limits_accepted_at_the_edges(c):
    c.led.submitDeclaration(*submit_args(c, "edge", n_docs=32, cid=cid("edge", 128)), {"from": c.traders.t1})
    c.led.submitDeclaration(*submit_args(c, "nodocs", n_docs=0, cid=cid("x", 1)), {"from": c.traders.t1})
    assert c.decl(sha("edge"))["status"] == ST_SUBMITTED and c.decl(sha("nodocs"))["status"] == ST_SUBMITTED


@pytest.mark.parametrize(
    "override, error",
    [
        ({"n_docs": 33}, ("ClearanceLedgerTooMany", 33, 32)),
        ({"cid": b""}, ("ClearanceLedgerInvalidCid", 0)),
        ({"cid": cid("x", 129)}, ("ClearanceLedgerInvalidCid", 129)),
        ({"reference": ZERO32}, ("ClearanceLedgerZeroValue", b32("localReference"))),
        ({"commitment": ZERO32}, ("ClearanceLedgerZeroValue", b32("commitment"))),
        ({"documents": [(1, ZERO32, cid("d"))]}, ("ClearanceLedgerZeroValue", b32("documentSha256"))),
        ({"documents": [(1, sha("d"), b"")]}, ("ClearanceLedgerInvalidCid", 0)),
        ({"documents": [(1, sha("d"), cid("d", 129))]}, ("ClearanceLedgerInvalidCid", 129)),
        ({"jurisdiction": "LAB"}, ("AgencyRegistryMissingRole", "LAB", CUSTOMS)),
        ({"jurisdiction": "SUSP"}, ("AgencyRegistryAgencyNotActive", "SUSP", AGENCY_SUSPENDED)),
    ],
    ids=[
        "33-docs",
        "cid-0",
        "cid-129",
        "zero-reference",
        "zero-commitment",
        "zero-doc-sha",
        "doc-cid-0",
        "doc-cid-129",
        "non-customs-jurisdiction",
        "suspended-jurisdiction",
    ],
)
def test_submit_refusals(c, override, error):
    jurisdiction = override.pop("jurisdiction", "CN")
    n_docs = override.pop("n_docs", 3)
    args = submit_args(c, "bad", jurisdiction=jurisdiction, n_docs=n_docs, **override)
    name, *error_args = error
    error_args = [c.agencies[a] if isinstance(a, str) else a for a in error_args]
    c.expect_revert(c.led.submitDeclaration, args, c.traders.t1, name, *error_args)


def test_submit_unknown_jurisdiction(c):
    args = submit_args(c, "x")
    args[0] = b32("NOPE")
    c.expect_revert(c.led.submitDeclaration, args, c.traders.t1, "AgencyRegistryUnknownAgency", b32("NOPE"))


def test_submit_duplicate_commitment(c):
    did = c.submit(label="dup")
    c.expect_revert(
        c.led.submitDeclaration, submit_args(c, "dup"), c.traders.t2, "ClearanceLedgerDeclarationExists", did
    )


def test_submit_by_unknown_or_suspended_trader(c):
    c.expect_revert(
        c.led.submitDeclaration,
        submit_args(c, "u"),
        c.traders.unregistered,
        "AgencyRegistryUnknownTrader",
        c.traders.unregistered,
    )
    c.expect_revert(
        c.led.submitDeclaration,
        submit_args(c, "u"),
        c.traders.suspended,
        "AgencyRegistryTraderNotActive",
        c.traders.suspended,
        TRADER_SUSPENDED,
    )
    c.expect_revert(c.led.submitDeclaration, submit_args(c, "u"), c.keys.cn, "AgencyRegistryUnknownTrader", c.keys.cn)


def test_supporting_document_keeps_first_anchor(c):
    shared = (9, sha("shared-invoice"), cid("shared-invoice"))
    c.led.submitDeclaration(*submit_args(c, "first", documents=[shared]), {"from": c.traders.t1})
    c.led.submitDeclaration(*submit_args(c, "second", documents=[shared]), {"from": c.traders.t2})
    assert plain(c.led.anchorOf(sha("shared-invoice"))) == (AK_SUPPORTING, sha("first"))


# ------------------------------------------------------------------------------------ amend


def test_amend_submitted(c):
    v1 = c.submit(label="am-1")
    tx = c.led.amendDeclaration(v1, sha("am-2"), cid("am-2"), docs("am-2", 2), {"from": c.traders.t1})
    assert len(tx.events) == 1
    assert event(tx, "DeclarationAmended") == plain(
        {
            "declarationId": sha("am-2"),
            "previousId": v1,
            "declarant": c.traders.t1,
            "version": 2,
            "cid": cid("am-2"),
            "documents": docs("am-2", 2),
        }
    )
    old, new = c.decl(v1), c.decl(sha("am-2"))
    assert old["status"] == ST_SUPERSEDED and old["supersededBy"] == sha("am-2")
    assert new["status"] == ST_SUBMITTED and new["version"] == 2 and new["previousId"] == v1
    assert new["jurisdiction"] == old["jurisdiction"] and new["declarant"] == old["declarant"]
    # a third version
    c.led.amendDeclaration(sha("am-2"), sha("am-3"), cid("am-3"), [], {"from": c.traders.t1})
    assert c.decl(sha("am-3"))["version"] == 3


def test_amend_accepted_resets_channel_and_carries_mrn(c):
    v1 = c.accepted()
    c.stamp(v1, DOCUMENT_CHECK)
    mrn = c.decl(v1)["mrn"]
    c.led.amendDeclaration(v1, sha("amended"), cid("amended"), [], {"from": c.traders.t1})
    v2 = c.decl(sha("amended"))
    assert v2["channel"] == CH_NONE and v2["requiredStamps"] == 0 and v2["ruleSetHash"] == ZERO32
    assert v2["status"] == ST_SUBMITTED and v2["mrn"] == mrn  # the MRN is carried over
    assert c.decl(v1)["mrn"] == mrn  # the superseded version keeps its record
    assert plain(c.led.declarationByMrn(mrn)) == v1  # until the new version is accepted
    other = b32("MRN-OTHER")
    c.expect_revert(
        c.led.acceptDeclaration, [sha("amended"), other], c.keys.cn, "ClearanceLedgerInvalidMrn", sha("amended"), other
    )
    c.expect_revert(
        c.led.acceptDeclaration,
        [sha("amended"), ZERO32],
        c.keys.cn,
        "ClearanceLedgerInvalidMrn",
        sha("amended"),
        ZERO32,
    )
    tx = c.led.acceptDeclaration(sha("amended"), mrn, {"from": c.keys.cn})
    assert event(tx, "DeclarationAccepted") == plain(
        {"declarationId": sha("amended"), "mrn": mrn, "signer": c.keys.cn, "released": False}
    )
    assert plain(c.led.declarationByMrn(mrn)) == sha("amended")
    assert c.decl(sha("amended"))["status"] == ST_ACCEPTED


def test_mrn_carried_across_unaccepted_intermediate_version(c):
    v1 = c.accepted()
    mrn = c.decl(v1)["mrn"]
    c.led.amendDeclaration(v1, sha("v2"), cid("v2"), [], {"from": c.traders.t1})
    c.led.amendDeclaration(sha("v2"), sha("v3"), cid("v3"), [], {"from": c.traders.t1})
    assert c.decl(sha("v3"))["mrn"] == mrn and c.decl(sha("v3"))["version"] == 3
    c.expect_revert(
        c.led.acceptDeclaration,
        [sha("v3"), b32("FRESH")],
        c.keys.cn,
        "ClearanceLedgerInvalidMrn",
        sha("v3"),
        b32("FRESH"),
    )
    c.led.acceptDeclaration(sha("v3"), mrn, {"from": c.keys.cn})
    assert plain(c.led.declarationByMrn(mrn)) == sha("v3")


def test_amend_of_unaccepted_declaration_takes_fresh_mrn(c):
    v1 = c.submit()
    c.led.amendDeclaration(v1, sha("v2-fresh"), cid("v2"), [], {"from": c.traders.t1})
    assert c.decl(sha("v2-fresh"))["mrn"] == ZERO32
    used = c.decl(c.accepted())["mrn"]
    c.expect_revert(
        c.led.acceptDeclaration, [sha("v2-fresh"), used], c.keys.cn, "ClearanceLedgerInvalidMrn", sha("v2-fresh"), used
    )
    c.led.acceptDeclaration(sha("v2-fresh"), b32("MRN-FRESH"), {"from": c.keys.cn})
    assert c.decl(sha("v2-fresh"))["mrn"] == b32("MRN-FRESH")


def test_amend_only_by_declarant(c):
    v1 = c.submit()
    c.expect_revert(
        c.led.amendDeclaration,
        [v1, sha("x"), cid("x"), []],
        c.traders.t2,
        "ClearanceLedgerNotDeclarant",
        v1,
        c.traders.t2,
    )
    c.expect_revert(
        c.led.amendDeclaration, [v1, sha("x"), cid("x"), []], c.keys.cn, "ClearanceLedgerNotDeclarant", v1, c.keys.cn
    )


@pytest.mark.parametrize(
    "status",
    [ST_RELEASED, ST_HELD, ST_REJECTED, ST_SEIZED, ST_SUPERSEDED],
    ids=["released", "held", "rejected", "seized", "superseded"],
)
def test_amend_refused_after_submitted_or_accepted(c, status):
    did = declaration_in(c, status)
    c.expect_revert(
        c.led.amendDeclaration,
        [did, sha("late"), cid("late"), []],
        c.traders.t1,
        "ClearanceLedgerInvalidStatus",
        did,
        status,
    )


def test_amend_refusals(c):
    v1 = c.submit()
    t1 = c.traders.t1
    c.expect_revert(
        c.led.amendDeclaration,
        [sha("nope"), sha("x"), cid("x"), []],
        t1,
        "ClearanceLedgerUnknownDeclaration",
        sha("nope"),
    )
    c.expect_revert(c.led.amendDeclaration, [v1, v1, cid("x"), []], t1, "ClearanceLedgerDeclarationExists", v1)
    c.expect_revert(
        c.led.amendDeclaration, [v1, ZERO32, cid("x"), []], t1, "ClearanceLedgerZeroValue", b32("commitment")
    )
    c.expect_revert(c.led.amendDeclaration, [v1, sha("x"), b"", []], t1, "ClearanceLedgerInvalidCid", 0)
    c.expect_revert(
        c.led.amendDeclaration, [v1, sha("x"), cid("x"), docs("x", 33)], t1, "ClearanceLedgerTooMany", 33, 32
    )
    c.reg.updateTrader(t1, TRADER_SUSPENDED, False, {"from": c.keys.registrar})
    c.expect_revert(
        c.led.amendDeclaration, [v1, sha("x"), cid("x"), []], t1, "AgencyRegistryTraderNotActive", t1, TRADER_SUSPENDED
    )


# ------------------------------------------------------------------------------------ accept


def test_accept_declaration(c):
    did = c.submit()
    mrn = b32("26CNTJ0000000001")
    tx = c.led.acceptDeclaration(did, mrn, {"from": c.keys.cn2})
    assert len(tx.events) == 1
    assert event(tx, "DeclarationAccepted") == plain(
        {"declarationId": did, "mrn": mrn, "signer": c.keys.cn2, "released": False}
    )
    assert c.decl(did)["status"] == ST_ACCEPTED and c.decl(did)["mrn"] == mrn
    assert plain(c.led.declarationByMrn(mrn)) == did


def test_accept_refusals(c):
    did = c.submit()
    used = c.decl(c.accepted())["mrn"]
    c.expect_revert(c.led.acceptDeclaration, [did, ZERO32], c.keys.cn, "ClearanceLedgerInvalidMrn", did, ZERO32)
    c.expect_revert(c.led.acceptDeclaration, [did, used], c.keys.cn, "ClearanceLedgerInvalidMrn", did, used)
    c.expect_revert(
        c.led.acceptDeclaration, [did, b32("M")], c.keys.nl, "ClearanceLedgerNotJurisdiction", did, c.index["NL"]
    )
    c.expect_revert(
        c.led.acceptDeclaration, [did, b32("M")], c.keys.lab, "AgencyRegistryMissingRole", c.agencies["LAB"], CUSTOMS
    )
    c.expect_revert(
        c.led.acceptDeclaration, [sha("nope"), b32("M")], c.keys.cn, "ClearanceLedgerUnknownDeclaration", sha("nope")
    )


@pytest.mark.parametrize("status", ALL_STATUSES[1:], ids=STATUS_IDS[1:])
def test_accept_only_submitted(c, status):
    did = declaration_in(c, status)
    c.expect_revert(
        c.led.acceptDeclaration, [did, b32("MRN-NEW")], c.keys.cn, "ClearanceLedgerInvalidStatus", did, status
    )


def test_accept_auto_releases_green_without_stamps(c):
    did = c.submit()
    tx = c.channel(did, CH_GREEN, 0)
    assert event(tx, "ChannelAssigned")["released"] is False
    assert c.decl(did)["status"] == ST_SUBMITTED
    tx = c.accept(did)
    assert event(tx, "DeclarationAccepted")["released"] is True
    assert len(tx.events) == 1
    assert c.decl(did)["status"] == ST_RELEASED


def test_accept_green_with_required_stamps_not_released(c):
    did = c.submit()
    c.channel(did, CH_GREEN, bit(DOCUMENT_CHECK))
    tx = c.accept(did)
    assert event(tx, "DeclarationAccepted")["released"] is False
    assert c.decl(did)["status"] == ST_ACCEPTED


# ------------------------------------------------------------------------------------ channel


def test_assign_channel_after_accept(c):
    did = c.accepted(channel=CH_NONE)
    tx = c.led.assignChannel(did, CH_RED, bit(PHYSICAL_EXAM, XRAY_SCAN), sha("rules-v7"), {"from": c.keys.oracle})
    assert len(tx.events) == 1
    assert event(tx, "ChannelAssigned") == plain(
        {
            "declarationId": did,
            "agencyIndex": c.index["RISK"],
            "channel": CH_RED,
            "requiredStamps": bit(PHYSICAL_EXAM, XRAY_SCAN),
            "ruleSetHash": sha("rules-v7"),
            "signer": c.keys.oracle,
            "released": False,
        }
    )
    d = c.decl(did)
    assert (d["status"], d["channel"], d["requiredStamps"], d["ruleSetHash"]) == (
        ST_ACCEPTED,
        CH_RED,
        bit(PHYSICAL_EXAM, XRAY_SCAN),
        sha("rules-v7"),
    )


def test_assign_green_after_accept_auto_releases(c):
    did = c.accepted(channel=CH_NONE)
    tx = c.channel(did, CH_GREEN, 0)
    assert event(tx, "ChannelAssigned")["released"] is True
    assert c.decl(did)["status"] == ST_RELEASED


def test_assign_channel_before_accept(c):
    did = c.submit()
    c.channel(did, CH_YELLOW, bit(DOCUMENT_CHECK))
    assert c.decl(did)["status"] == ST_SUBMITTED and c.decl(did)["channel"] == CH_YELLOW
    c.accept(did)
    assert c.decl(did)["status"] == ST_ACCEPTED


@pytest.mark.parametrize(
    "channel, required",
    [(CH_NONE, 0), (CH_NONE, 1), (4, 1), (255, 1), (CH_YELLOW, 0), (CH_RED, 0), (CH_GREEN, 1 << 8), (CH_RED, 0xFFFF)],
)
def test_assign_channel_invalid_combinations(c, channel, required):
    did = c.submit()
    c.expect_revert(
        c.led.assignChannel,
        [did, channel, required, sha("r")],
        c.keys.oracle,
        "ClearanceLedgerInvalidChannel",
        channel,
        required,
    )


def test_assign_channel_refusals(c):
    did = c.submit()
    o = c.keys.oracle
    c.expect_revert(c.led.assignChannel, [did, CH_GREEN, 0, ZERO32], o, "ClearanceLedgerZeroValue", b32("ruleSetHash"))
    c.expect_revert(
        c.led.assignChannel,
        [did, CH_GREEN, 0, sha("r")],
        c.keys.cn,
        "AgencyRegistryMissingRole",
        c.agencies["CN"],
        RISK,
    )
    c.expect_revert(
        c.led.assignChannel, [sha("nope"), CH_GREEN, 0, sha("r")], o, "ClearanceLedgerUnknownDeclaration", sha("nope")
    )
    c.channel(did, CH_YELLOW, bit(DOCUMENT_CHECK))
    c.expect_revert(c.led.assignChannel, [did, CH_GREEN, 0, sha("r")], o, "ClearanceLedgerChannelAlreadySet", did)


@pytest.mark.parametrize(
    "status",
    [ST_RELEASED, ST_HELD, ST_REJECTED, ST_SEIZED, ST_SUPERSEDED],
    ids=["released", "held", "rejected", "seized", "superseded"],
)
def test_assign_channel_only_submitted_or_accepted(c, status):
    did = declaration_in(c, status)
    c.expect_revert(
        c.led.assignChannel, [did, CH_GREEN, 0, sha("r")], c.keys.oracle, "ClearanceLedgerInvalidStatus", did, status
    )


# ------------------------------------------------------------------------------------ stamps


def test_record_stamp(c):
    did = c.accepted()
    report = sha("lab-report-1")
    tx = c.led.recordStamp(did, LAB_TEST, PASS, report, cid("lab-report-1"), {"from": c.keys.lab})
    assert len(tx.events) == 1
    assert event(tx, "StampRecorded") == plain(
        {
            "stampId": report,
            "declarationId": did,
            "agencyIndex": c.index["LAB"],
            "signer": c.keys.lab,
            "stampType": LAB_TEST,
            "result": PASS,
            "signedAt": tx.timestamp,
            "reportCid": cid("lab-report-1"),
            "relayer": "0x0000000000000000000000000000000000000000",
        }
    )
    assert as_dict(c.led.stamp(report)) == plain(
        {
            "declarationId": did,
            "signer": c.keys.lab,
            "agencyIndex": c.index["LAB"],
            "stampType": LAB_TEST,
            "result": PASS,
            "revoked": False,
            "signedAt": tx.timestamp,
        }
    )
    assert plain(c.led.anchorOf(report)) == (AK_STAMP_REPORT, did)


@pytest.mark.parametrize("result", [FAIL, INCONCLUSIVE])
def test_failure_stamps_count_as_open(c, result):
    did = c.accepted()
    c.stamp(did, LAB_TEST, result)
    c.stamp(did, LAB_TEST, result)
    assert c.led.openFailures(did, LAB_TEST) == 2
    c.stamp(did, LAB_TEST, PASS)
    assert c.led.openFailures(did, LAB_TEST) == 2 and c.led.openFailures(did, DOCUMENT_CHECK) == 0


def test_stamp_on_held_declaration(c):
    did = held(c)
    c.stamp(did, PHYSICAL_EXAM)
    assert c.led.stamp(c.stamp(did, XRAY_SCAN, FAIL))["result"] == FAIL


def test_stamp_roles(c):
    did = c.accepted()
    args = [did, LAB_TEST, PASS, sha("r"), cid("r")]
    c.expect_revert(c.led.recordStamp, args, c.keys.cn, "AgencyRegistryMissingRole", c.agencies["CN"], INSPECTION)
    c.expect_revert(
        c.led.recordStamp, args, c.keys.partner, "AgencyRegistryMissingRole", c.agencies["PARTNER"], INSPECTION
    )
    c.expect_revert(c.led.recordStamp, args, c.keys.oracle, "AgencyRegistryMissingRole", c.agencies["RISK"], INSPECTION)
    export = [did, EXPORT_CLEARANCE, PASS, sha("r"), cid("r")]
    c.expect_revert(c.led.recordStamp, export, c.keys.lab, "AgencyRegistryMissingRole", c.agencies["LAB"], PARTNER)
    tx = c.led.recordStamp(*export, {"from": c.keys.partner})
    assert event(tx, "StampRecorded")["agencyIndex"] == c.index["PARTNER"]


@pytest.mark.parametrize(
    "status",
    [ST_SUBMITTED, ST_RELEASED, ST_REJECTED, ST_SEIZED, ST_SUPERSEDED],
    ids=["submitted", "released", "rejected", "seized", "superseded"],
)
def test_stamp_only_on_accepted_or_held(c, status):
    did = declaration_in(c, status)
    c.expect_revert(
        c.led.recordStamp,
        [did, LAB_TEST, PASS, sha("r"), cid("r")],
        c.keys.lab,
        "ClearanceLedgerInvalidStatus",
        did,
        status,
    )


def test_stamp_value_refusals(c):
    did = c.accepted()
    lab = c.keys.lab
    c.expect_revert(c.led.recordStamp, [did, 8, PASS, sha("r"), cid("r")], lab, "ClearanceLedgerInvalidStampType", 8)
    c.expect_revert(c.led.recordStamp, [did, 0, 0, sha("r"), cid("r")], lab, "ClearanceLedgerInvalidStampResult", 0)
    c.expect_revert(c.led.recordStamp, [did, 0, 4, sha("r"), cid("r")], lab, "ClearanceLedgerInvalidStampResult", 4)
    c.expect_revert(
        c.led.recordStamp, [did, 0, PASS, ZERO32, cid("r")], lab, "ClearanceLedgerZeroValue", b32("reportSha256")
    )
    c.expect_revert(c.led.recordStamp, [did, 0, PASS, sha("r"), b""], lab, "ClearanceLedgerInvalidCid", 0)
    c.expect_revert(c.led.recordStamp, [did, 0, PASS, sha("r"), cid("r", 129)], lab, "ClearanceLedgerInvalidCid", 129)
    c.expect_revert(
        c.led.recordStamp,
        [sha("nope"), 0, PASS, sha("r"), cid("r")],
        lab,
        "ClearanceLedgerUnknownDeclaration",
        sha("nope"),
    )
    existing = c.stamp(did, DOCUMENT_CHECK)
    c.expect_revert(
        c.led.recordStamp, [did, 0, PASS, existing, cid("r")], c.keys.lab2, "ClearanceLedgerStampExists", existing
    )


# ------------------------------------------------------------------------------------ revoke


def test_revoke_stamp_by_issuing_agency(c):
    did = c.accepted()
    failed = c.stamp(did, LAB_TEST, FAIL, key=c.keys.lab)
    assert c.led.openFailures(did, LAB_TEST) == 1
    tx = c.led.revokeStamp(failed, 42, {"from": c.keys.lab2})  # another key of the same agency
    assert len(tx.events) == 1
    assert event(tx, "StampRevoked") == plain(
        {"stampId": failed, "declarationId": did, "signer": c.keys.lab2, "reasonCode": 42}
    )
    assert c.led.stamp(failed)["revoked"] is True
    assert c.led.openFailures(did, LAB_TEST) == 0


def test_revoke_pass_stamp_keeps_failure_count(c):
    did = c.accepted()
    c.stamp(did, LAB_TEST, FAIL)
    passed = c.stamp(did, LAB_TEST, PASS)
    c.led.revokeStamp(passed, 1, {"from": c.keys.lab})
    assert c.led.openFailures(did, LAB_TEST) == 1


def test_revoke_refusals(c):
    did = c.accepted()
    stamp_id = c.stamp(did, LAB_TEST)
    c.expect_revert(
        c.led.revokeStamp, [stamp_id, 1], c.keys.cn, "ClearanceLedgerNotStampIssuer", stamp_id, c.index["CN"]
    )
    c.expect_revert(
        c.led.revokeStamp, [stamp_id, 1], c.keys.partner, "ClearanceLedgerNotStampIssuer", stamp_id, c.index["PARTNER"]
    )
    c.expect_revert(c.led.revokeStamp, [sha("nope"), 1], c.keys.lab, "ClearanceLedgerUnknownStamp", sha("nope"))
    c.expect_revert(c.led.revokeStamp, [stamp_id, 1], c.outsider, "AgencyRegistryNotASigner", c.outsider)
    c.led.revokeStamp(stamp_id, 1, {"from": c.keys.lab})
    c.expect_revert(c.led.revokeStamp, [stamp_id, 1], c.keys.lab, "ClearanceLedgerStampAlreadyRevoked", stamp_id)


# ------------------------------------------------------------------------------------ decisions


def test_release_from_accepted(c):
    did = c.accepted()
    stamps = [c.stamp(did, DOCUMENT_CHECK), c.stamp(did, LAB_TEST)]
    tx = c.led.decide(did, RELEASE, 3, sha("release-report"), stamps, {"from": c.keys.cn})
    assert len(tx.events) == 1
    assert event(tx, "DecisionRecorded") == plain(
        {
            "declarationId": did,
            "kind": RELEASE,
            "status": ST_RELEASED,
            "reasonCode": 3,
            "reportSha256": sha("release-report"),
            "signer": c.keys.cn,
            "round": 0,
            "passStamps": stamps,
        }
    )
    assert c.decl(did)["status"] == ST_RELEASED


def test_release_from_held(c):
    did = held(c)
    released(c, did)
    assert c.decl(did)["status"] == ST_RELEASED


@pytest.mark.parametrize(
    "start, kind, end",
    [
        (ST_ACCEPTED, HOLD, ST_HELD),
        (ST_SUBMITTED, REJECT, ST_REJECTED),
        (ST_ACCEPTED, REJECT, ST_REJECTED),
        (ST_HELD, REJECT, ST_REJECTED),
        (ST_HELD, SEIZE, ST_SEIZED),
    ],
    ids=["accepted-hold", "submitted-reject", "accepted-reject", "held-reject", "held-seize"],
)
def test_allowed_decisions(c, start, kind, end):
    did = declaration_in(c, start)
    tx = c.led.decide(did, kind, 5, sha("report"), [], {"from": c.keys.cn})
    assert len(tx.events) == 1
    assert event(tx, "DecisionRecorded")["status"] == end
    assert c.decl(did)["status"] == end


FORBIDDEN = [
    (status, kind)
    for status in ALL_STATUSES
    for kind in (RELEASE, HOLD, REJECT, SEIZE)
    if not (
        (kind == RELEASE and status in (ST_ACCEPTED, ST_HELD))
        or (kind == HOLD and status == ST_ACCEPTED)
        or (kind == REJECT and status in (ST_SUBMITTED, ST_ACCEPTED, ST_HELD))
        or (kind == SEIZE and status == ST_HELD)
    )
]


@pytest.mark.parametrize(
    "status, kind",
    FORBIDDEN,
    ids=[f"{STATUS_IDS[s - 1]}-{['release', 'hold', 'reject', 'seize'][k]}" for s, k in FORBIDDEN],
)
def test_forbidden_decisions(c, status, kind):
    did = declaration_in(c, status)
    c.expect_revert(
        c.led.decide, [did, kind, 1, ZERO32, []], c.keys.cn, "ClearanceLedgerInvalidDecision", did, status, kind
    )


def test_decide_refusals(c):
    did = c.accepted()
    c.expect_revert(c.led.decide, [did, 4, 1, ZERO32, []], c.keys.cn, "ClearanceLedgerInvalidDecisionKind", 4)
    c.expect_revert(
        c.led.decide, [did, HOLD, 1, ZERO32, []], c.keys.nl, "ClearanceLedgerNotJurisdiction", did, c.index["NL"]
    )
    c.expect_revert(
        c.led.decide, [did, HOLD, 1, ZERO32, []], c.keys.lab, "AgencyRegistryMissingRole", c.agencies["LAB"], CUSTOMS
    )
    c.expect_revert(
        c.led.decide, [sha("nope"), HOLD, 1, ZERO32, []], c.keys.cn, "ClearanceLedgerUnknownDeclaration", sha("nope")
    )


def test_release_needs_channel(c):
    did = c.accepted(channel=CH_NONE)
    c.expect_revert(c.led.decide, [did, RELEASE, 1, ZERO32, []], c.keys.cn, "ClearanceLedgerChannelNotSet", did)


def test_release_needs_pass_for_each_required_type(c):
    did = c.accepted()  # DOCUMENT_CHECK + LAB_TEST
    doc = c.stamp(did, DOCUMENT_CHECK)
    lab = c.stamp(did, LAB_TEST)
    c.expect_revert(
        c.led.decide, [did, RELEASE, 1, ZERO32, []], c.keys.cn, "ClearanceLedgerStampMissing", did, DOCUMENT_CHECK
    )
    c.expect_revert(
        c.led.decide, [did, RELEASE, 1, ZERO32, [doc]], c.keys.cn, "ClearanceLedgerStampMissing", did, LAB_TEST
    )
    c.expect_revert(
        c.led.decide, [did, RELEASE, 1, ZERO32, [lab]], c.keys.cn, "ClearanceLedgerStampMissing", did, DOCUMENT_CHECK
    )
    # extra stamps of non-required types are fine
    extra = c.stamp(did, XRAY_SCAN)
    c.led.decide(did, RELEASE, 1, ZERO32, [extra, lab, doc], {"from": c.keys.cn})
    assert c.decl(did)["status"] == ST_RELEASED


def test_release_green_with_required_stamps(c):
    did = c.accepted(channel=CH_GREEN, required=bit(DOCUMENT_CHECK))
    c.expect_revert(
        c.led.decide, [did, RELEASE, 1, ZERO32, []], c.keys.cn, "ClearanceLedgerStampMissing", did, DOCUMENT_CHECK
    )
    c.led.decide(did, RELEASE, 1, ZERO32, [c.stamp(did, DOCUMENT_CHECK)], {"from": c.keys.cn})
    assert c.decl(did)["status"] == ST_RELEASED


def test_release_refuses_invalid_cited_stamps(c):
    did = c.accepted()
    other = c.accepted()
    lab = c.stamp(did, LAB_TEST)
    foreign = c.stamp(other, DOCUMENT_CHECK)
    failed = c.stamp(did, XRAY_SCAN, FAIL)
    revoked = c.stamp(did, DOCUMENT_CHECK)
    c.led.revokeStamp(revoked, 1, {"from": c.keys.lab})
    for bad in (foreign, failed, revoked, sha("unknown")):
        c.expect_revert(
            c.led.decide, [did, RELEASE, 1, ZERO32, [lab, bad]], c.keys.cn, "ClearanceLedgerStampInvalid", did, bad
        )


def test_release_cites_at_most_16(c):
    did = c.accepted()
    lab = c.stamp(did, LAB_TEST)
    c.expect_revert(c.led.decide, [did, RELEASE, 1, ZERO32, [lab] * 17], c.keys.cn, "ClearanceLedgerTooMany", 17, 16)
    c.led.decide(did, RELEASE, 1, ZERO32, [lab] * 15 + [c.stamp(did, DOCUMENT_CHECK)], {"from": c.keys.cn})


@pytest.mark.parametrize("result", [FAIL, INCONCLUSIVE])
def test_open_failure_blocks_release_until_revoked(c, result):
    did = c.accepted()
    doc, lab = c.stamp(did, DOCUMENT_CHECK), c.stamp(did, LAB_TEST)
    bad = c.stamp(did, LAB_TEST, result)
    c.expect_revert(
        c.led.decide, [did, RELEASE, 1, ZERO32, [doc, lab]], c.keys.cn, "ClearanceLedgerStampFailureOpen", did, LAB_TEST
    )
    c.led.revokeStamp(bad, 9, {"from": c.keys.lab})
    c.led.decide(did, RELEASE, 1, ZERO32, [doc, lab], {"from": c.keys.cn})
    assert c.decl(did)["status"] == ST_RELEASED


def test_open_failure_of_non_required_type_does_not_block(c):
    did = c.accepted()
    c.stamp(did, XRAY_SCAN, FAIL)
    released(c, did)
    assert c.decl(did)["status"] == ST_RELEASED


def test_stamp_of_key_compromised_before_signing_is_invalid(c):
    did = c.accepted()
    doc, lab = c.stamp(did, DOCUMENT_CHECK), c.stamp(did, LAB_TEST, key=c.keys.lab2)
    signed_at = c.led.stamp(lab)["signedAt"]
    c.reg.reportKeyCompromised(c.keys.lab2, signed_at, {"from": c.keys.lab})  # compromised at its signing time
    c.expect_revert(
        c.led.decide, [did, RELEASE, 1, ZERO32, [doc, lab]], c.keys.cn, "ClearanceLedgerStampInvalid", did, lab
    )


def test_stamp_of_key_compromised_after_signing_stays_valid(c):
    did = c.accepted()
    doc, lab = c.stamp(did, DOCUMENT_CHECK), c.stamp(did, LAB_TEST, key=c.keys.lab2)
    signed_at = c.led.stamp(lab)["signedAt"]
    chain.sleep(10)
    chain.mine()
    c.reg.reportKeyCompromised(c.keys.lab2, signed_at + 1, {"from": c.keys.lab})
    c.led.decide(did, RELEASE, 1, ZERO32, [doc, lab], {"from": c.keys.cn})
    assert c.decl(did)["status"] == ST_RELEASED


def test_stamp_of_suspended_agency_still_cited(c):
    """Suspension is about acting now; a stamp validly signed before stays valid (wasValidSigner)."""
    did = c.accepted()
    doc, lab = c.stamp(did, DOCUMENT_CHECK), c.stamp(did, LAB_TEST)
    c.govern(c.reg.setAgencyStatus, c.agencies["LAB"], AGENCY_SUSPENDED)
    c.led.decide(did, RELEASE, 1, ZERO32, [doc, lab], {"from": c.keys.cn})
    assert c.decl(did)["status"] == ST_RELEASED


# ------------------------------------------------------------------------------------ four-eyes


@pytest.fixture
def dual_release(c):
    c.govern(c.led.setApprovalsRequired, RELEASE, 2)
    return c


def test_set_approvals_required(c):
    assert c.led.approvalsRequired(RELEASE) == 1
    tx = c.govern(c.led.setApprovalsRequired, SEIZE, 3)
    assert event(tx, "ApprovalsRequiredChanged") == {"kind": SEIZE, "approvals": 3}
    assert c.led.approvalsRequired(SEIZE) == 3 and c.led.approvalsRequired(RELEASE) == 1


@pytest.mark.parametrize(
    "kind, approvals, error",
    [
        (4, 2, ("ClearanceLedgerInvalidDecisionKind", 4)),
        (RELEASE, 0, ("ClearanceLedgerInvalidApprovals", 0)),
        (RELEASE, 6, ("ClearanceLedgerInvalidApprovals", 6)),
    ],
)
def test_set_approvals_required_invalid(c, kind, approvals, error):
    pid = c.propose(c.led, c.led.setApprovalsRequired, kind, approvals)
    c.reg.approve(pid, {"from": c.governors[1]})
    c.expect_revert(c.reg.execute, [pid], c.governors[0], *error)


def test_dual_control_release(dual_release):
    c = dual_release
    did = c.accepted()
    stamps = [c.stamp(did, DOCUMENT_CHECK), c.stamp(did, LAB_TEST)]
    tx = c.led.decide(did, RELEASE, 4, sha("r"), stamps, {"from": c.keys.cn})
    assert len(tx.events) == 1
    assert event(tx, "DecisionProposed") == plain(
        {
            "declarationId": did,
            "round": 1,
            "kind": RELEASE,
            "reasonCode": 4,
            "reportSha256": sha("r"),
            "proposer": c.keys.cn,
            "approvalsRequired": 2,
        }
    )
    assert c.decl(did)["status"] == ST_ACCEPTED
    assert as_dict(c.led.pendingDecision(did)) == plain(
        {
            "kind": RELEASE,
            "approvals": 1,
            "approvalsRequired": 2,
            "reasonCode": 4,
            "round": 1,
            "proposer": c.keys.cn,
            "reportSha256": sha("r"),
        }
    )
    assert c.led.hasApprovedDecision(did, 1, c.keys.cn) and not c.led.hasApprovedDecision(did, 1, c.keys.cn2)
    c.expect_revert(c.led.approveDecision, [did, stamps], c.keys.cn, "ClearanceLedgerAlreadyApproved", did, c.keys.cn)
    c.expect_revert(c.led.decide, [did, HOLD, 1, ZERO32, []], c.keys.cn2, "ClearanceLedgerDecisionPending", did)
    tx = c.led.approveDecision(did, stamps, {"from": c.keys.cn2})
    assert len(tx.events) == 1
    assert event(tx, "DecisionRecorded") == plain(
        {
            "declarationId": did,
            "kind": RELEASE,
            "status": ST_RELEASED,
            "reasonCode": 4,
            "reportSha256": sha("r"),
            "signer": c.keys.cn2,
            "round": 1,
            "passStamps": stamps,
        }
    )
    assert c.decl(did)["status"] == ST_RELEASED
    assert c.led.pendingDecision(did)["approvals"] == 0


def test_dual_control_three_signers(c):
    c.govern(c.led.setApprovalsRequired, HOLD, 3)
    did = c.accepted()
    c.led.decide(did, HOLD, 1, ZERO32, [], {"from": c.keys.cn})
    tx = c.led.approveDecision(did, [], {"from": c.keys.cn2})
    assert event(tx, "DecisionApproved") == plain(
        {"declarationId": did, "round": 1, "signer": c.keys.cn2, "approvals": 2}
    )
    assert c.decl(did)["status"] == ST_ACCEPTED
    c.expect_revert(c.led.approveDecision, [did, []], c.keys.cn2, "ClearanceLedgerAlreadyApproved", did, c.keys.cn2)
    tx = c.led.approveDecision(did, [], {"from": c.keys.cn3})
    assert event(tx, "DecisionRecorded")["status"] == ST_HELD
    assert c.decl(did)["status"] == ST_HELD


def test_single_signer_kinds_unaffected_by_dual_control(dual_release):
    c = dual_release
    did = c.accepted()
    c.led.decide(did, HOLD, 1, ZERO32, [], {"from": c.keys.cn})
    assert c.decl(did)["status"] == ST_HELD


def test_dual_control_cancel_starts_new_round(dual_release):
    c = dual_release
    did = c.accepted()
    stamps = [c.stamp(did, DOCUMENT_CHECK), c.stamp(did, LAB_TEST)]
    c.led.decide(did, RELEASE, 1, ZERO32, stamps, {"from": c.keys.cn})
    tx = c.led.cancelDecision(did, {"from": c.keys.cn3})
    assert event(tx, "DecisionCancelled") == plain({"declarationId": did, "round": 1, "signer": c.keys.cn3})
    assert len(tx.events) == 1
    p = as_dict(c.led.pendingDecision(did))
    assert p["approvals"] == 0 and p["round"] == 1
    c.expect_revert(c.led.approveDecision, [did, stamps], c.keys.cn2, "ClearanceLedgerNoPendingDecision", did)
    c.expect_revert(c.led.cancelDecision, [did], c.keys.cn2, "ClearanceLedgerNoPendingDecision", did)
    # a new round: the earlier approver may approve again
    c.led.decide(did, RELEASE, 1, ZERO32, stamps, {"from": c.keys.cn2})
    assert c.led.pendingDecision(did)["round"] == 2
    c.led.approveDecision(did, stamps, {"from": c.keys.cn})
    assert c.decl(did)["status"] == ST_RELEASED


def test_dual_control_refusals(dual_release):
    c = dual_release
    did = c.accepted()
    c.expect_revert(c.led.approveDecision, [did, []], c.keys.cn, "ClearanceLedgerNoPendingDecision", did)
    c.expect_revert(c.led.cancelDecision, [did], c.keys.cn, "ClearanceLedgerNoPendingDecision", did)
    stamps = [c.stamp(did, DOCUMENT_CHECK), c.stamp(did, LAB_TEST)]
    c.led.decide(did, RELEASE, 1, ZERO32, stamps, {"from": c.keys.cn})
    c.expect_revert(
        c.led.approveDecision, [did, stamps], c.keys.nl, "ClearanceLedgerNotJurisdiction", did, c.index["NL"]
    )
    c.expect_revert(c.led.cancelDecision, [did], c.keys.nl, "ClearanceLedgerNotJurisdiction", did, c.index["NL"])
    c.expect_revert(
        c.led.approveDecision, [did, stamps], c.keys.lab, "AgencyRegistryMissingRole", c.agencies["LAB"], CUSTOMS
    )
    c.expect_revert(
        c.led.approveDecision, [sha("nope"), stamps], c.keys.cn2, "ClearanceLedgerUnknownDeclaration", sha("nope")
    )
    # the proposing check runs before opening the round: a release lacking stamps is never pending
    other = c.accepted()
    c.expect_revert(
        c.led.decide, [other, RELEASE, 1, ZERO32, []], c.keys.cn, "ClearanceLedgerStampMissing", other, DOCUMENT_CHECK
    )


def test_dual_control_rechecks_stamps_at_final_approval(dual_release):
    c = dual_release
    did = c.accepted()
    doc, lab = c.stamp(did, DOCUMENT_CHECK), c.stamp(did, LAB_TEST)
    c.led.decide(did, RELEASE, 1, ZERO32, [doc, lab], {"from": c.keys.cn})
    c.led.revokeStamp(lab, 3, {"from": c.keys.lab})
    c.expect_revert(c.led.approveDecision, [did, [doc, lab]], c.keys.cn2, "ClearanceLedgerStampInvalid", did, lab)
    c.expect_revert(c.led.approveDecision, [did, [doc]], c.keys.cn2, "ClearanceLedgerStampMissing", did, LAB_TEST)
    bad = c.stamp(did, LAB_TEST, FAIL)
    new_lab = c.stamp(did, LAB_TEST)
    c.expect_revert(
        c.led.approveDecision, [did, [doc, new_lab]], c.keys.cn2, "ClearanceLedgerStampFailureOpen", did, LAB_TEST
    )
    c.led.revokeStamp(bad, 3, {"from": c.keys.lab})
    c.led.approveDecision(did, [doc, new_lab], {"from": c.keys.cn2})
    assert c.decl(did)["status"] == ST_RELEASED


def test_dual_control_rechecks_transition_at_final_approval(c):
    c.govern(c.led.setApprovalsRequired, HOLD, 2)
    did = c.accepted()
    c.led.decide(did, HOLD, 1, ZERO32, [], {"from": c.keys.cn})
    # the declarant amends meanwhile: the pending decision can no longer take effect
    c.led.amendDeclaration(did, sha("amend-while-pending"), cid("a"), [], {"from": c.traders.t1})
    c.expect_revert(
        c.led.approveDecision, [did, []], c.keys.cn2, "ClearanceLedgerInvalidDecision", did, ST_SUPERSEDED, HOLD
    )


def test_approvals_fixed_when_proposed(c):
    c.govern(c.led.setApprovalsRequired, HOLD, 3)
    did = c.accepted()
    c.led.decide(did, HOLD, 1, ZERO32, [], {"from": c.keys.cn})
    c.govern(c.led.setApprovalsRequired, HOLD, 2)
    tx = c.led.approveDecision(did, [], {"from": c.keys.cn2})
    assert "DecisionApproved" in tx.events and c.decl(did)["status"] == ST_ACCEPTED


# ------------------------------------------------------------------------------------ batches

VALUE_TYPES = ["bytes32", "uint256", "address"]


def batch_tree(n):
    return StandardMerkleTree(VALUE_TYPES, [[sha(f"parcel-{i}"), i * 1000, f"0x{i + 1:040x}"] for i in range(n)])


def test_anchor_batch(c):
    tree = batch_tree(5)
    tx = c.led.anchorBatch(tree.root, 5, 2, cid("manifest"), {"from": c.keys.auditor})
    assert len(tx.events) == 1
    assert event(tx, "BatchAnchored") == plain(
        {
            "root": tree.root,
            "agencyIndex": c.index["AUDIT"],
            "leafCount": 5,
            "kind": 2,
            "manifestCid": cid("manifest"),
            "signer": c.keys.auditor,
        }
    )
    assert plain(c.led.batch(tree.root)) == (c.index["AUDIT"], 5, 2, tx.timestamp)
    assert plain(c.led.anchorOf(tree.root)) == (AK_BATCH_ROOT, tree.root)


def test_anchor_batch_refusals(c):
    a = c.keys.auditor
    c.expect_revert(c.led.anchorBatch, [ZERO32, 1, 0, b""], a, "ClearanceLedgerInvalidBatch", ZERO32, 1)
    c.expect_revert(c.led.anchorBatch, [sha("r"), 0, 0, b""], a, "ClearanceLedgerInvalidBatch", sha("r"), 0)
    c.expect_revert(c.led.anchorBatch, [sha("r"), 1, 0, cid("m", 129)], a, "ClearanceLedgerInvalidCid", 129)
    c.led.anchorBatch(sha("r"), 1, 0, cid("m", 128), {"from": c.keys.lab})
    c.expect_revert(c.led.anchorBatch, [sha("r"), 1, 0, b""], a, "ClearanceLedgerBatchExists", sha("r"))
    c.expect_revert(c.led.anchorBatch, [sha("r2"), 1, 0, b""], c.traders.t1, "AgencyRegistryNotASigner", c.traders.t1)


@pytest.mark.parametrize("n", [1, 2, 5, 8, 13])
def test_is_batch_leaf_with_standard_merkle_tree(c, n):
    tree = batch_tree(n)
    assert not c.led.isBatchLeaf(tree.root, tree.proof(0), tree.leaf(0))  # not anchored yet
    c.led.anchorBatch(tree.root, n, 1, cid("m"), {"from": c.keys.lab})
    for i in range(n):
        # the leaf is keccak256(bytes.concat(keccak256(abi.encode(values))))
        assert c.led.isBatchLeaf(tree.root, tree.proof(i), tree.leaf(i))
    outsider_leaf = StandardMerkleTree(VALUE_TYPES, [[sha("forged"), 1, f"0x{1:040x}"]]).root
    assert not c.led.isBatchLeaf(tree.root, tree.proof(0), outsider_leaf)
    if n > 1:
        assert not c.led.isBatchLeaf(tree.root, tree.proof(1), tree.leaf(0))
        # a single-hashed leaf (no double keccak) must not verify
        import eth_abi
        from eth_utils import keccak

        single = keccak(eth_abi.encode(VALUE_TYPES, tree.values[0]))
        assert not c.led.isBatchLeaf(tree.root, tree.proof(0), single)


def test_are_batch_leaves_multiproof(c):
    tree = batch_tree(9)
    c.led.anchorBatch(tree.root, 9, 1, cid("m"), {"from": c.keys.lab})
    for subset in ([0], [1, 4], [0, 2, 5, 8], list(range(9))):
        leaves, proof, flags = tree.multiproof(subset)
        assert c.led.areBatchLeaves(tree.root, proof, flags, leaves), subset
    leaves, proof, flags = tree.multiproof([1, 4, 7])
    tampered = [sha("forged")] + leaves[1:]
    assert not c.led.areBatchLeaves(tree.root, proof, flags, tampered)
    assert not c.led.areBatchLeaves(tree.root, proof, flags + [True], leaves)  # malformed: caught, false
    assert not c.led.areBatchLeaves(sha("unanchored"), proof, flags, leaves)


# ------------------------------------------------------------------------------------ alerts


def test_raise_alert(c):
    did = c.submit()
    before = c.led.alertCount()
    tx = c.led.raiseAlert(SUBJ_DECLARATION, did, 11, sha("evidence"), {"from": c.keys.auditor})
    assert len(tx.events) == 1
    alert_id = before + 1
    assert event(tx, "AlertRaised") == plain(
        {
            "alertId": alert_id,
            "subject": did,
            "agencyIndex": c.index["AUDIT"],
            "subjectKind": SUBJ_DECLARATION,
            "reasonCode": 11,
            "evidenceSha256": sha("evidence"),
            "signer": c.keys.auditor,
        }
    )
    assert as_dict(c.led.alert(alert_id)) == plain(
        {
            "subject": did,
            "subjectKind": SUBJ_DECLARATION,
            "agencyIndex": c.index["AUDIT"],
            "reasonCode": 11,
            "active": True,
            "raisedAt": tx.timestamp,
            "evidenceSha256": sha("evidence"),
        }
    )
    assert c.led.alertCount() == alert_id and c.led.activeAlertCount(did) == 1


def test_alert_counts_per_subject(c):
    trader_subject = bytes(12) + bytes.fromhex(c.traders.t1.address[2:])
    ids = [
        c.led.raiseAlert(SUBJ_TRADER, trader_subject, 1, ZERO32, {"from": k}).events["AlertRaised"]["alertId"]
        for k in (c.keys.auditor, c.keys.cn, c.keys.lab)
    ]
    c.led.raiseAlert(SUBJ_DOCUMENT, sha("doc"), 1, ZERO32, {"from": c.keys.partner})
    assert c.led.activeAlertCount(trader_subject) == 3 and c.led.activeAlertCount(sha("doc")) == 1
    c.led.clearAlert(ids[1], 2, {"from": c.keys.cn2})
    assert c.led.activeAlertCount(trader_subject) == 2
    assert c.led.alertCount() == ids[0] + 3


def test_clear_alert_by_issuer(c):
    alert_id = c.led.raiseAlert(SUBJ_DOCUMENT, sha("doc"), 1, ZERO32, {"from": c.keys.lab}).events["AlertRaised"][
        "alertId"
    ]
    tx = c.led.clearAlert(alert_id, 77, {"from": c.keys.lab2})
    assert len(tx.events) == 1
    assert event(tx, "AlertCleared") == plain(
        {"alertId": alert_id, "subject": sha("doc"), "reasonCode": 77, "signer": c.keys.lab2}
    )
    assert c.led.alert(alert_id)["active"] is False and c.led.activeAlertCount(sha("doc")) == 0


def test_clear_alert_by_governance(c):
    alert_id = c.led.raiseAlert(SUBJ_DOCUMENT, sha("doc"), 1, ZERO32, {"from": c.keys.lab}).events["AlertRaised"][
        "alertId"
    ]
    tx = c.govern(c.led.clearAlert, alert_id, 5)
    assert [e.name for e in tx.events] == ["ProposalExecuted", "AlertCleared"]
    assert event(tx, "AlertCleared")["signer"] == c.reg.address
    assert c.led.activeAlertCount(sha("doc")) == 0


def test_alert_refusals(c):
    a = c.keys.auditor
    c.expect_revert(c.led.raiseAlert, [3, sha("x"), 1, ZERO32], a, "ClearanceLedgerInvalidAlertSubject", 3)
    c.expect_revert(c.led.raiseAlert, [SUBJ_DOCUMENT, ZERO32, 1, ZERO32], a, "ClearanceLedgerZeroValue", b32("subject"))
    c.expect_revert(
        c.led.raiseAlert, [SUBJ_DOCUMENT, sha("x"), 1, ZERO32], c.traders.t1, "AgencyRegistryNotASigner", c.traders.t1
    )
    alert_id = c.led.raiseAlert(SUBJ_DOCUMENT, sha("x"), 1, ZERO32, {"from": a}).events["AlertRaised"]["alertId"]
    c.expect_revert(
        c.led.clearAlert, [alert_id, 1], c.keys.cn, "ClearanceLedgerNotAlertIssuer", alert_id, c.index["CN"]
    )
    c.expect_revert(c.led.clearAlert, [alert_id + 1, 1], a, "ClearanceLedgerUnknownAlert", alert_id + 1)
    c.expect_revert(c.led.clearAlert, [0, 1], a, "ClearanceLedgerUnknownAlert", 0)
    c.led.clearAlert(alert_id, 1, {"from": a})
    c.expect_revert(c.led.clearAlert, [alert_id, 1], a, "ClearanceLedgerUnknownAlert", alert_id)


# ------------------------------------------------------------------------------------ anchorOf


def test_anchor_of_each_kind(c):
    did = c.accepted()
    stamp_id = c.stamp(did, LAB_TEST)
    c.led.anchorBatch(sha("batch-root"), 3, 0, b"", {"from": c.keys.lab})
    assert plain(c.led.anchorOf(did)) == (AK_DECLARATION, did)
    assert plain(c.led.anchorOf(stamp_id)) == (AK_STAMP_REPORT, did)
    assert plain(c.led.anchorOf(sha("batch-root"))) == (AK_BATCH_ROOT, sha("batch-root"))
    assert plain(c.led.anchorOf(sha("never anchored"))) == (AK_NONE, ZERO32)
    assert plain(c.led.anchorOf(ZERO32)) == (AK_NONE, ZERO32)


def test_anchor_of_supporting_documents(c):
    c.led.submitDeclaration(*submit_args(c, "with-docs"), {"from": c.traders.t1})
    for _, document_sha, _ in docs("with-docs", 3):
        assert plain(c.led.anchorOf(document_sha)) == (AK_SUPPORTING, sha("with-docs"))
    # an amendment re-listing the same documents leaves their first anchor
    c.led.amendDeclaration(sha("with-docs"), sha("with-docs-2"), cid("x"), docs("with-docs", 3), {"from": c.traders.t1})
    assert plain(c.led.anchorOf(docs("with-docs", 3)[0][1])) == (AK_SUPPORTING, sha("with-docs"))
    assert plain(c.led.anchorOf(sha("with-docs"))) == (AK_DECLARATION, sha("with-docs"))


def test_python_merkle_port_matches_openzeppelin_js(c):
    """The Python StandardMerkleTree used above agrees with @openzeppelin/merkle-tree (npm) itself,
    and the JS library's own proofs verify on chain."""
    import json
    import shutil
    import subprocess
    from pathlib import Path

    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    tree = batch_tree(9)
    values = [["0x" + v[0].hex(), str(v[1]), v[2]] for v in tree.values]
    script = """
const { StandardMerkleTree } = require('@openzeppelin/merkle-tree');
const [types, values] = JSON.parse(process.argv[1]);
const tree = StandardMerkleTree.of(values, types);
const multi = tree.getMultiProof([1, 4, 7]);
console.log(JSON.stringify({root: tree.root, proofs: values.map((_, i) => tree.getProof(i)),
  multi: {leaves: multi.leaves.map(v => tree.leafHash(v)), proof: multi.proof, flags: multi.proofFlags}}));
"""
    root_dir = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [node, "-e", script, json.dumps([VALUE_TYPES, values])],
        cwd=root_dir,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    js = json.loads(out.stdout)
    assert bytes.fromhex(js["root"][2:]) == tree.root
    for i, proof in enumerate(js["proofs"]):
        assert [bytes.fromhex(p[2:]) for p in proof] == tree.proof(i)
    leaves, proof, flags = tree.multiproof([1, 4, 7])
    assert [bytes.fromhex(x[2:]) for x in js["multi"]["leaves"]] == leaves
    assert [bytes.fromhex(x[2:]) for x in js["multi"]["proof"]] == proof
    assert js["multi"]["flags"] == flags
    c.led.anchorBatch(tree.root, 9, 1, cid("m"), {"from": c.keys.lab})
    assert c.led.areBatchLeaves(tree.root, js["multi"]["proof"], js["multi"]["flags"], js["multi"]["leaves"])
