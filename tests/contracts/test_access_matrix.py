"""Access matrix: every state-changing function of both contracts × every kind of caller.

Each cell asserts either success (the function's own event is emitted) or the exact custom error
with its arguments. The expectation of a cell is computed by the rule of the function's row (the
table ``FUNCTIONS`` below), from the caller kind's facts (``CALLERS``): which agency the key belongs
to, whether the key is valid, whether the agency is active.

Caller kinds: a random account with no key, a trader, a governor acting directly, a valid key of
each role's agency (the declaration's customs CN, another customs NL, inspection lab, partner
customs, risk oracle, auditor, trader registrar), a key of a suspended agency, a rotated-out
(expired) key and a compromised key.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from brownie import accounts
from testkit import (
    AGENCY_SUSPENDED,
    ALL_ROLES,
    AUDITOR,
    CH_GREEN,
    CUSTOMS,
    DAY,
    HOLD,
    INSPECTION,
    LAB_TEST,
    PASS,
    REGISTRAR,
    REJECT,
    RISK,
    SUBJ_DOCUMENT,
    TRADER_SUSPENDED,
    ZERO32,
    b32,
    cid,
    now,
    sha,
    sign_stamp,
    stamp_tuple,
)

# caller kind → (how to get the account, agency short name or None, key state)
CALLERS = {
    "no-key": (lambda c: c.outsider, None, None),
    "trader": (lambda c: c.traders.t1, None, None),
    "governor": (lambda c: c.governors[0], None, None),
    "customs-CN": (lambda c: c.keys.cn, "CN", "valid"),
    "customs-NL": (lambda c: c.keys.nl, "NL", "valid"),
    "inspection": (lambda c: c.keys.lab, "LAB", "valid"),
    "partner": (lambda c: c.keys.partner, "PARTNER", "valid"),
    "risk-oracle": (lambda c: c.keys.oracle, "RISK", "valid"),
    "auditor": (lambda c: c.keys.auditor, "AUDIT", "valid"),
    "registrar": (lambda c: c.keys.registrar, "REG", "valid"),
    "suspended-agency": (lambda c: c.keys.susp, "SUSP", "valid"),
    "rotated-out-key": (lambda c: c.keys.expired, "CN", "expired"),
    "compromised-key": (lambda c: c.keys.compromised, "LAB", "compromised"),
}
ROLES = {
    "CN": CUSTOMS,
    "NL": CUSTOMS,
    "LAB": INSPECTION,
    "PARTNER": 1 << 2,
    "RISK": RISK,
    "AUDIT": AUDITOR,
    "REG": REGISTRAR,
    "SUSP": ALL_ROLES,
}
OK = None


# ------------------------------------------------------------------------------------ rules


def governed(error="AgencyRegistryNotGovernance"):
    """Governed function: no direct caller at all after bootstrap."""
    return lambda s, kind, who: (error, who)


def agency_key(mask, then=None):
    """A valid key of an ACTIVE agency holding a role of `mask` (AgencyRegistry.authorize)."""

    def rule(s, kind, who):
        _, agency, state = CALLERS[kind]
        if agency is None:
            return ("AgencyRegistryNotASigner", who)
        if state in ("expired", "compromised"):
            return ("AgencyRegistryKeyNotValid", who, now() + 1)
        if agency == "SUSP":
            return ("AgencyRegistryAgencyNotActive", s.c.agencies["SUSP"], AGENCY_SUSPENDED)
        if ROLES[agency] & mask == 0:
            return ("AgencyRegistryMissingRole", s.c.agencies[agency], mask)
        return then(s, agency, who) if then else OK

    return rule


def jurisdiction(declaration):
    """A valid customs key of the declaration's jurisdiction (CN)."""
    return agency_key(
        CUSTOMS,
        lambda s, agency, who: (
            OK if agency == "CN" else ("ClearanceLedgerNotJurisdiction", getattr(s, declaration), s.c.index[agency])
        ),
    )


def only(kind_ok, error):
    """Only caller kind `kind_ok` succeeds; everyone else gets `error(*args(s, who))`."""
    return lambda s, kind, who: OK if kind == kind_ok else (error[0], *error[1](s, who))


# function → (contract attribute, args(s), rule, event emitted on success)
FUNCTIONS = {
    # -- AgencyRegistry: governed -------------------------------------------------------------
    "addAgency": ("reg", lambda s: [b32("NEW"), "New", b"FR", CUSTOMS, ZERO32, ""], governed(), "AgencyAdded"),
    "setAgencyRoles": ("reg", lambda s: [s.c.agencies["AUDIT"], AUDITOR | RISK], governed(), "AgencyRolesChanged"),
    "setAgencyStatus": ("reg", lambda s: [s.c.agencies["AUDIT"], AGENCY_SUSPENDED], governed(), "AgencyStatusChanged"),
    "updateAgencyProfile": (
        "reg",
        lambda s: [s.c.agencies["AUDIT"], "Renamed", ZERO32, ""],
        governed(),
        "AgencyProfileUpdated",
    ),
    "addSignerKey": (
        "reg",
        lambda s: [s.c.agencies["AUDIT"], accounts[9], s.t0, s.t0 + DAY],
        governed(),
        "SignerKeyAdded",
    ),
    "setSignerKeyExpiry": ("reg", lambda s: [s.c.keys.lab2, s.t0 + DAY], governed(), "SignerKeyExpiryChanged"),
    "addGovernor": ("reg", lambda s: [accounts[9]], governed(), "GovernorAdded"),
    "removeGovernor": ("reg", lambda s: [s.c.governors[2]], governed(), "GovernorRemoved"),
    "setThreshold": ("reg", lambda s: [3], governed(), "ThresholdChanged"),
    "setProposalLifetime": ("reg", lambda s: [7200], governed(), "ProposalLifetimeChanged"),
    "setGovernedTarget": ("reg", lambda s: [s.c.led, False], governed(), "GovernedTargetSet"),
    # -- AgencyRegistry: bootstrap & proposals -------------------------------------------------
    "finishBootstrap": ("reg", lambda s: [], governed("AgencyRegistryNotBootstrapper"), "BootstrapFinished"),
    "propose": (
        "reg",
        lambda s: [s.c.reg, s.c.reg.setProposalLifetime.encode_input(7200)],
        only("governor", ("AgencyRegistryNotGovernor", lambda s, who: [who])),
        "ProposalCreated",
    ),
    "approve": (
        "reg",
        lambda s: [s.pid_approve],
        only("governor", ("AgencyRegistryNotGovernor", lambda s, who: [who])),
        "ProposalApproved",
    ),
    "execute": (
        "reg",
        lambda s: [s.pid_execute],
        only("governor", ("AgencyRegistryNotGovernor", lambda s, who: [who])),
        "ProposalExecuted",
    ),
    "cancel": (
        "reg",
        lambda s: [s.pid_cancel],
        only("governor", ("AgencyRegistryNotProposer", lambda s, who: [s.pid_cancel, who])),
        "ProposalCancelled",
    ),
    # -- AgencyRegistry: agency-operated ---------------------------------------------------------
    "reportKeyCompromised": (
        "reg",
        lambda s: [s.c.keys.lab2, s.t0],
        only("inspection", ("AgencyRegistryNotKeyPeer", lambda s, who: [who, s.c.keys.lab2])),
        "SignerKeyCompromised",
    ),
    "registerTrader": ("reg", lambda s: [accounts[10], False], agency_key(REGISTRAR), "TraderRegistered"),
    "updateTrader": (
        "reg",
        lambda s: [s.c.traders.t2, TRADER_SUSPENDED, False],
        agency_key(REGISTRAR),
        "TraderUpdated",
    ),
    # -- ClearanceLedger: traders --------------------------------------------------------------
    "submitDeclaration": (
        "led",
        lambda s: [s.c.agencies["CN"], b32("LRN"), sha("new"), cid("new"), []],
        only("trader", ("AgencyRegistryUnknownTrader", lambda s, who: [who])),
        "DeclarationSubmitted",
    ),
    "amendDeclaration": (
        "led",
        lambda s: [s.submitted, sha("amend"), cid("amend"), []],
        only("trader", ("ClearanceLedgerNotDeclarant", lambda s, who: [s.submitted, who])),
        "DeclarationAmended",
    ),
    # -- ClearanceLedger: customs authority ------------------------------------------------------
    "acceptDeclaration": (
        "led",
        lambda s: [s.submitted, b32("MRN-MATRIX")],
        jurisdiction("submitted"),
        "DeclarationAccepted",
    ),
    "decide": ("led", lambda s: [s.accepted, HOLD, 1, ZERO32, []], jurisdiction("accepted"), "DecisionRecorded"),
    "approveDecision": ("led", lambda s: [s.pending, []], jurisdiction("pending"), "DecisionRecorded"),
    "cancelDecision": ("led", lambda s: [s.pending], jurisdiction("pending"), "DecisionCancelled"),
    # -- ClearanceLedger: risk oracle, inspection ------------------------------------------------
    "assignChannel": ("led", lambda s: [s.submitted, CH_GREEN, 0, sha("rules")], agency_key(RISK), "ChannelAssigned"),
    "recordStamp": (
        "led",
        lambda s: [s.accepted, LAB_TEST, PASS, sha("matrix-report"), cid("m")],
        agency_key(INSPECTION),
        "StampRecorded",
    ),
    "relayStamp": ("led", lambda s: [stamp_tuple(s.signed), s.signature], lambda s, kind, who: OK, "StampRecorded"),
    "revokeStamp": (
        "led",
        lambda s: [s.stamp_id, 1],
        agency_key(
            ALL_ROLES,
            lambda s, agency, who: (
                OK if agency == "LAB" else ("ClearanceLedgerNotStampIssuer", s.stamp_id, s.c.index[agency])
            ),
        ),
        "StampRevoked",
    ),
    # -- ClearanceLedger: any agency -------------------------------------------------------------
    "anchorBatch": ("led", lambda s: [sha("matrix-root"), 4, 0, b""], agency_key(ALL_ROLES), "BatchAnchored"),
    "raiseAlert": ("led", lambda s: [SUBJ_DOCUMENT, sha("doc"), 1, ZERO32], agency_key(ALL_ROLES), "AlertRaised"),
    "clearAlert": (
        "led",
        lambda s: [s.alert_id, 1],
        agency_key(
            ALL_ROLES,
            lambda s, agency, who: (
                OK if agency == "AUDIT" else ("ClearanceLedgerNotAlertIssuer", s.alert_id, s.c.index[agency])
            ),
        ),
        "AlertCleared",
    ),
    # -- ClearanceLedger: governed ---------------------------------------------------------------
    "setApprovalsRequired": (
        "led",
        lambda s: [HOLD, 2],
        governed("ClearanceLedgerNotGovernance"),
        "ApprovalsRequiredChanged",
    ),
}

CELLS = [(fn, kind) for fn in FUNCTIONS for kind in CALLERS]


@pytest.fixture(scope="module")
def scene(c):
    """Objects each row acts on, created once per module (every cell reverts to this state)."""
    s = SimpleNamespace(c=c, t0=now())
    c.govern(c.led.setApprovalsRequired, REJECT, 2)
    s.submitted = c.submit()
    s.accepted = c.accepted()
    s.pending = c.accepted()
    c.led.decide(s.pending, REJECT, 1, ZERO32, [], {"from": c.keys.cn2})  # pending; CN's first key may approve
    s.stamp_id = c.stamp(s.accepted, LAB_TEST, key=c.keys.lab)
    s.alert_id = c.led.raiseAlert(SUBJ_DOCUMENT, sha("flagged"), 1, ZERO32, {"from": c.keys.auditor}).events[
        "AlertRaised"
    ]["alertId"]
    g0, g1, g2 = c.governors
    s.pid_approve = c.propose(c.reg, c.reg.setProposalLifetime, 7200, proposer=g1)
    s.pid_execute = c.propose(c.reg, c.reg.setProposalLifetime, 7300, proposer=g1)
    c.reg.approve(s.pid_execute, {"from": g2})
    s.pid_cancel = c.propose(c.reg, c.reg.setProposalLifetime, 7400, proposer=g0)
    s.signed = {
        "declarationId": s.accepted,
        "stampType": LAB_TEST,
        "result": PASS,
        "reportSha256": sha("relayed"),
        "reportCid": cid("relayed"),
        "signer": c.keys.lab2.address,
        "signedAt": now() - 30,
        "nonce": 0,
        "deadline": now() + DAY,
    }
    s.signature = sign_stamp(c.keys.lab2, s.signed, ledger=c.led)
    return s


def test_matrix_covers_every_state_changing_function(c):
    """The table lists exactly the non-view functions of both ABIs."""
    for contract, attr in ((c.reg, "reg"), (c.led, "led")):
        mutating = {
            i["name"] for i in contract.abi if i["type"] == "function" and i["stateMutability"] not in ("view", "pure")
        }
        assert mutating == {name for name, row in FUNCTIONS.items() if row[0] == attr}, attr


@pytest.mark.parametrize("function, kind", CELLS, ids=[f"{fn}-{kind}" for fn, kind in CELLS])
def test_access(scene, function, kind):
    c = scene.c
    attr, make_args, rule, event_name = FUNCTIONS[function]
    method = getattr(getattr(c, attr), function)
    who = CALLERS[kind][0](c)
    args = make_args(scene)
    expected = rule(scene, kind, who)
    if expected is OK:
        tx = method(*args, {"from": who})
        assert tx.status == 1
        assert event_name in tx.events
    else:
        c.expect_revert(method, args, who, *expected)


GOVERNED = [
    fn for fn, row in FUNCTIONS.items() if row[2].__qualname__.startswith("governed") and fn != "finishBootstrap"
]


@pytest.mark.parametrize("function", GOVERNED)
def test_governed_functions_succeed_through_a_passed_proposal(scene, function):
    c = scene.c
    attr, make_args, _, event_name = FUNCTIONS[function]
    tx = c.govern(getattr(getattr(c, attr), function), *make_args(scene))
    assert [e.name for e in tx.events] == ["ProposalExecuted", event_name]


def test_clear_alert_through_governance(scene):
    tx = scene.c.govern(scene.c.led.clearAlert, scene.alert_id, 1)
    assert [e.name for e in tx.events] == ["ProposalExecuted", "AlertCleared"]


def test_expect_revert_is_exact(c):
    """The matrix is only as good as its assertion: wrong error, wrong arguments or no revert fail."""
    args = [b32("NEW"), "New", b"FR", CUSTOMS, ZERO32, ""]
    c.expect_revert(c.reg.addAgency, args, c.outsider, "AgencyRegistryNotGovernance", c.outsider, send=True)
    with pytest.raises(AssertionError):  # right error, wrong argument
        c.expect_revert(c.reg.addAgency, args, c.outsider, "AgencyRegistryNotGovernance", c.governors[0])
    with pytest.raises(AssertionError):  # wrong error, same argument layout
        c.expect_revert(c.reg.addAgency, args, c.outsider, "AgencyRegistryNotGovernor", c.outsider)
    with pytest.raises(AssertionError):  # the call succeeds
        c.expect_revert(c.led.anchorBatch, [sha("ok"), 1, 0, b""], c.keys.lab, "ClearanceLedgerInvalidBatch", ZERO32, 1)
