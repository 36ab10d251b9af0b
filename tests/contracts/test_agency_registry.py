"""AgencyRegistry: bootstrap, agencies, keys, traders and M-of-N governance — one test per behaviour."""

from __future__ import annotations

import pytest
from brownie import accounts, chain
from testkit import (
    AGENCY_ACTIVE,
    AGENCY_NONE,
    AGENCY_REMOVED,
    AGENCY_SUSPENDED,
    ALL_ROLES,
    AUDITOR,
    CUSTOMS,
    DAY,
    INSPECTION,
    LIFETIME,
    REGISTRAR,
    RISK,
    TRADER_ACTIVE,
    TRADER_NONE,
    TRADER_SUSPENDED,
    ZERO32,
    ZERO_ADDRESS,
    as_dict,
    b32,
    event,
    local_key,
    now,
    plain,
    sha,
)

NEW_ID = b32("FR-LE-HAVRE")


def add_agency_args(agency_id=NEW_ID, name="Le Havre Customs", country=b"FR", roles=CUSTOMS, endpoint="/dns/lh"):
    return [agency_id, name, country, roles, sha("x25519:lh"), endpoint]


# ------------------------------------------------------------------------------------ bootstrap


def test_constructor_sets_governance_and_bootstrapper(AgencyRegistry):
    reg = AgencyRegistry.deploy([accounts[1], accounts[2]], 2, 7200, {"from": accounts[0]})
    assert plain(reg.governance()) == plain((2, 2, 0, 7200))
    assert reg.bootstrapping() is True
    assert reg.bootstrapper() == accounts[0]
    assert reg.isGovernor(accounts[1]) and reg.isGovernor(accounts[2]) and not reg.isGovernor(accounts[0])
    events = reg.tx.events
    assert [e["governor"] for e in events["GovernorAdded"]] == [accounts[1].address, accounts[2].address]
    assert events["ThresholdChanged"]["threshold"] == 2
    assert events["ProposalLifetimeChanged"]["lifetime"] == 7200


@pytest.mark.parametrize(
    "governors, threshold, lifetime, error",
    [
        ([1], 2, 7200, ("AgencyRegistryInvalidThreshold", 2, 1)),
        ([1, 2], 1, 7200, ("AgencyRegistryInvalidThreshold", 1, 2)),
        ([1, 2], 3, 7200, ("AgencyRegistryInvalidThreshold", 3, 2)),
        ([1, 2], 2, 3599, ("AgencyRegistryInvalidLifetime", 3599)),
        ([1, 2], 2, 90 * DAY + 1, ("AgencyRegistryInvalidLifetime", 90 * DAY + 1)),
        ([1, 1], 2, 7200, ("AgencyRegistryGovernorExists", "a1")),
        ([1, 0], 2, 7200, ("AgencyRegistryZeroAddress",)),
    ],
)
def test_constructor_refusals(AgencyRegistry, c, governors, threshold, lifetime, error):
    addresses = [accounts[i].address if i else ZERO_ADDRESS for i in governors]
    deploy_data = AgencyRegistry.deploy.encode_input(addresses, threshold, lifetime)
    from brownie import web3

    response = web3.provider.make_request("eth_estimateGas", [{"from": accounts[0].address, "data": deploy_data}])
    name, *args = error
    args = [accounts[1] if a == "a1" else a for a in args]
    assert bytes.fromhex(response["error"]["data"][2:]) == c.errors.encode(name, *args)


def test_bootstrapper_acts_alone_then_finishes(AgencyRegistry):
    reg = AgencyRegistry.deploy([accounts[1], accounts[2], accounts[3]], 2, DAY, {"from": accounts[0]})
    tx = reg.addAgency(*add_agency_args(), {"from": accounts[0]})
    assert tx.events["AgencyAdded"]["agencyIndex"] == 1
    tx = reg.finishBootstrap({"from": accounts[0]})
    assert plain(tx.events["BootstrapFinished"]) == plain({"governorCount": 3, "threshold": 2})
    assert len(tx.events) == 1
    assert reg.bootstrapping() is False
    assert reg.bootstrapper() == ZERO_ADDRESS


def test_finish_bootstrap_only_by_bootstrapper_and_once(c):
    # the consortium fixture already finished bootstrap
    c.expect_revert(c.reg.finishBootstrap, [], c.deployer, "AgencyRegistryNotBootstrapper", c.deployer)
    c.expect_revert(c.reg.finishBootstrap, [], c.governors[0], "AgencyRegistryNotBootstrapper", c.governors[0])


def test_finish_bootstrap_refused_by_non_bootstrapper_while_bootstrapping(AgencyRegistry, c):
    reg = AgencyRegistry.deploy([accounts[1], accounts[2]], 2, DAY, {"from": accounts[0]})
    c.expect_revert(reg.finishBootstrap, [], accounts[1], "AgencyRegistryNotBootstrapper", accounts[1])
    assert reg.bootstrapping()


def test_finish_bootstrap_rechecks_threshold(AgencyRegistry, c):
    reg = AgencyRegistry.deploy([accounts[1], accounts[2]], 2, DAY, {"from": accounts[0]})
    reg.addGovernor(accounts[3], {"from": accounts[0]})
    reg.setThreshold(3, {"from": accounts[0]})
    c.expect_revert(reg.removeGovernor, [accounts[3]], accounts[0], "AgencyRegistryInvalidThreshold", 3, 2)
    reg.finishBootstrap({"from": accounts[0]})
    assert plain(reg.governance()[:2]) == plain((3, 3))


def test_bootstrapper_loses_all_powers_after_finish(c):
    d = c.deployer
    c.expect_revert(c.reg.addAgency, add_agency_args(), d, "AgencyRegistryNotGovernance", d)
    c.expect_revert(c.reg.setAgencyRoles, [c.agencies["CN"], CUSTOMS], d, "AgencyRegistryNotGovernance", d)
    c.expect_revert(c.reg.addGovernor, [accounts[9]], d, "AgencyRegistryNotGovernance", d)
    c.expect_revert(c.reg.setThreshold, [3], d, "AgencyRegistryNotGovernance", d)
    c.expect_revert(c.reg.reportKeyCompromised, [c.keys.cn, now()], d, "AgencyRegistryNotKeyPeer", d, c.keys.cn)
    c.expect_revert(c.led.setApprovalsRequired, [0, 2], d, "ClearanceLedgerNotGovernance", d)
    c.expect_revert(c.reg.propose, [c.reg, c.reg.setThreshold.encode_input(3)], d, "AgencyRegistryNotGovernor", d)


def test_governors_cannot_call_governed_functions_directly(c):
    g = c.governors[0]
    c.expect_revert(c.reg.addAgency, add_agency_args(), g, "AgencyRegistryNotGovernance", g)
    c.expect_revert(c.reg.setGovernedTarget, [c.led, False], g, "AgencyRegistryNotGovernance", g)
    c.expect_revert(c.led.setApprovalsRequired, [0, 2], g, "ClearanceLedgerNotGovernance", g)


# ------------------------------------------------------------------------------------ agencies


def test_add_agency_by_governance(c):
    count = c.reg.agencyCount()
    tx = c.govern(c.reg.addAgency, *add_agency_args(roles=CUSTOMS | REGISTRAR))
    added = event(tx, "AgencyAdded")
    assert added["agencyId"] == NEW_ID and added["agencyIndex"] == count + 1
    assert added["name"] == "Le Havre Customs" and added["country"] == b"FR" and added["roles"] == CUSTOMS | REGISTRAR
    a = as_dict(c.reg.agency(NEW_ID))
    assert a["index"] == count + 1 and a["status"] == AGENCY_ACTIVE and a["roles"] == CUSTOMS | REGISTRAR
    assert a["encryptionKey"] == sha("x25519:lh") and a["ipfsEndpoint"] == "/dns/lh"
    assert as_dict(c.reg.agencyByIndex(count + 1)) == a
    assert c.reg.agencyCount() == count + 1


@pytest.mark.parametrize(
    "override",
    [
        {"agency_id": ZERO32},
        {"name": ""},
        {"name": "n" * 257},
        {"endpoint": "e" * 257},
        {"country": b"fr"},
        {"country": b"F1"},
        {"country": b"\x00\x00"},
        {"roles": 1 << 6},
        {"roles": 0xFFFF},
    ],
    ids=[
        "zero-id",
        "empty-name",
        "long-name",
        "long-endpoint",
        "lower-country",
        "digit-country",
        "zero-country",
        "unknown-role-bit",
        "all-bits",
    ],
)
def test_add_agency_invalid_fields(c, override):
    args = add_agency_args(**override)
    pid = c.propose(c.reg, c.reg.addAgency, *args)
    c.reg.approve(pid, {"from": c.governors[1]})
    c.expect_revert(c.reg.execute, [pid], c.governors[0], "AgencyRegistryInvalidAgency", args[0])
    # the failed execution leaves the proposal open
    assert c.reg.proposal(pid)[5] is False


def test_add_agency_accepts_max_text_and_all_roles(c):
    c.govern(c.reg.addAgency, *add_agency_args(name="n" * 256, endpoint="e" * 256, roles=ALL_ROLES))
    assert as_dict(c.reg.agency(NEW_ID))["roles"] == ALL_ROLES


def test_add_agency_id_never_reused(c):
    pid = c.propose(c.reg, c.reg.addAgency, *add_agency_args(agency_id=c.agencies["CN"]))
    c.reg.approve(pid, {"from": c.governors[1]})
    c.expect_revert(c.reg.execute, [pid], c.governors[0], "AgencyRegistryAgencyExists", c.agencies["CN"])
    c.govern(c.reg.setAgencyStatus, c.agencies["AUDIT"], AGENCY_REMOVED)
    pid = c.propose(c.reg, c.reg.addAgency, *add_agency_args(agency_id=c.agencies["AUDIT"]))
    c.reg.approve(pid, {"from": c.governors[1]})
    c.expect_revert(c.reg.execute, [pid], c.governors[0], "AgencyRegistryAgencyExists", c.agencies["AUDIT"])


def test_set_agency_roles(c):
    tx = c.govern(c.reg.setAgencyRoles, c.agencies["AUDIT"], AUDITOR | RISK)
    assert plain(tx.events["AgencyRolesChanged"]) == plain({"agencyId": c.agencies["AUDIT"], "roles": AUDITOR | RISK})
    assert as_dict(c.reg.agency(c.agencies["AUDIT"]))["roles"] == AUDITOR | RISK
    # the new role is usable at once
    did = c.submit()
    c.channel(did, 1, 0, key=c.keys.auditor)
    assert c.decl(did)["channel"] == 1


def test_set_agency_roles_refusals(c):
    pid = c.propose(c.reg, c.reg.setAgencyRoles, c.agencies["AUDIT"], 1 << 6)
    c.reg.approve(pid, {"from": c.governors[1]})
    c.expect_revert(c.reg.execute, [pid], c.governors[0], "AgencyRegistryInvalidAgency", c.agencies["AUDIT"])
    unknown = b32("NOPE")
    pid = c.propose(c.reg, c.reg.setAgencyRoles, unknown, AUDITOR)
    c.reg.approve(pid, {"from": c.governors[1]})
    c.expect_revert(c.reg.execute, [pid], c.governors[0], "AgencyRegistryUnknownAgency", unknown)


def test_role_removal_revokes_capability(c):
    c.govern(c.reg.setAgencyRoles, c.agencies["LAB"], 0)
    did = c.accepted()
    args = [did, 0, 1, sha("r"), b"\x01"]
    c.expect_revert(c.led.recordStamp, args, c.keys.lab, "AgencyRegistryMissingRole", c.agencies["LAB"], INSPECTION)


@pytest.mark.parametrize(
    "path",
    [
        [AGENCY_SUSPENDED],
        [AGENCY_SUSPENDED, AGENCY_ACTIVE],
        [AGENCY_REMOVED],
        [AGENCY_SUSPENDED, AGENCY_REMOVED],
    ],
    ids=["active-suspended", "suspended-active", "active-removed", "suspended-removed"],
)
def test_agency_status_transitions(c, path):
    for status in path:
        tx = c.govern(c.reg.setAgencyStatus, c.agencies["AUDIT"], status)
        assert plain(tx.events["AgencyStatusChanged"]) == plain({"agencyId": c.agencies["AUDIT"], "status": status})
        assert as_dict(c.reg.agency(c.agencies["AUDIT"]))["status"] == status


@pytest.mark.parametrize(
    "start, target",
    [
        (AGENCY_ACTIVE, AGENCY_ACTIVE),
        (AGENCY_ACTIVE, AGENCY_NONE),
        (AGENCY_SUSPENDED, AGENCY_SUSPENDED),
        (AGENCY_SUSPENDED, AGENCY_NONE),
    ],
)
def test_agency_status_invalid_changes(c, start, target):
    agency_id = c.agencies["AUDIT"] if start == AGENCY_ACTIVE else c.agencies["SUSP"]
    pid = c.propose(c.reg, c.reg.setAgencyStatus, agency_id, target)
    c.reg.approve(pid, {"from": c.governors[1]})
    c.expect_revert(c.reg.execute, [pid], c.governors[0], "AgencyRegistryInvalidStatusChange", agency_id, start, target)


@pytest.mark.parametrize("target", [AGENCY_ACTIVE, AGENCY_SUSPENDED, AGENCY_REMOVED])
def test_removed_is_final(c, target):
    agency_id = c.agencies["AUDIT"]
    c.govern(c.reg.setAgencyStatus, agency_id, AGENCY_REMOVED)
    pid = c.propose(c.reg, c.reg.setAgencyStatus, agency_id, target)
    c.reg.approve(pid, {"from": c.governors[1]})
    c.expect_revert(c.reg.execute, [pid], c.governors[0], "AgencyRegistryAgencyNotActive", agency_id, AGENCY_REMOVED)


def test_removed_agency_cannot_be_changed_otherwise(c):
    agency_id = c.agencies["AUDIT"]
    c.govern(c.reg.setAgencyStatus, agency_id, AGENCY_REMOVED)
    for method, args in [
        (c.reg.setAgencyRoles, [agency_id, AUDITOR]),
        (c.reg.updateAgencyProfile, [agency_id, "x", ZERO32, ""]),
        (c.reg.addSignerKey, [agency_id, accounts[9], now(), now() + DAY]),
    ]:
        pid = c.propose(c.reg, method, *args)
        c.reg.approve(pid, {"from": c.governors[1]})
        c.expect_revert(
            c.reg.execute, [pid], c.governors[0], "AgencyRegistryAgencyNotActive", agency_id, AGENCY_REMOVED
        )


def test_suspended_agency_keys_refused_and_reactivation_restores(c):
    agency_id = c.agencies["AUDIT"]
    c.govern(c.reg.setAgencyStatus, agency_id, AGENCY_SUSPENDED)
    c.expect_revert(
        c.led.anchorBatch,
        [sha("root"), 1, 0, b""],
        c.keys.auditor,
        "AgencyRegistryAgencyNotActive",
        agency_id,
        AGENCY_SUSPENDED,
    )
    c.govern(c.reg.setAgencyStatus, agency_id, AGENCY_ACTIVE)
    tx = c.led.anchorBatch(sha("root"), 1, 0, b"", {"from": c.keys.auditor})
    assert tx.events["BatchAnchored"]["agencyIndex"] == c.index["AUDIT"]


def test_update_agency_profile(c):
    agency_id = c.agencies["LAB"]
    tx = c.govern(c.reg.updateAgencyProfile, agency_id, "Renamed Lab", sha("new-x25519"), "/ip4/10.0.0.1/tcp/4001")
    assert plain(tx.events["AgencyProfileUpdated"]) == plain(
        {
            "agencyId": agency_id,
            "name": "Renamed Lab",
            "encryptionKey": sha("new-x25519"),
            "ipfsEndpoint": "/ip4/10.0.0.1/tcp/4001",
        }
    )
    a = as_dict(c.reg.agency(agency_id))
    assert plain((a["name"], a["encryptionKey"], a["ipfsEndpoint"])) == plain(
        ("Renamed Lab", sha("new-x25519"), "/ip4/10.0.0.1/tcp/4001")
    )
    assert a["roles"] == INSPECTION and a["status"] == AGENCY_ACTIVE  # untouched


@pytest.mark.parametrize("name, endpoint", [("", "/e"), ("n" * 257, "/e"), ("ok", "e" * 257)])
def test_update_agency_profile_invalid(c, name, endpoint):
    agency_id = c.agencies["LAB"]
    pid = c.propose(c.reg, c.reg.updateAgencyProfile, agency_id, name, ZERO32, endpoint)
    c.reg.approve(pid, {"from": c.governors[1]})
    c.expect_revert(c.reg.execute, [pid], c.governors[0], "AgencyRegistryInvalidAgency", agency_id)


def test_unknown_agency_views(c):
    c.expect_revert(c.reg.agency, [b32("NOPE")], c.outsider, "AgencyRegistryUnknownAgency", b32("NOPE"))
    n = c.reg.agencyCount()
    c.expect_revert(c.reg.agencyByIndex, [0], c.outsider, "AgencyRegistryUnknownAgencyIndex", 0)
    c.expect_revert(c.reg.agencyByIndex, [n + 1], c.outsider, "AgencyRegistryUnknownAgencyIndex", n + 1)


# ------------------------------------------------------------------------------------ keys


def test_add_signer_key(c):
    k = local_key("new-lab-key")
    t = now()
    tx = c.govern(c.reg.addSignerKey, c.agencies["LAB"], k, t + 100, t + DAY)
    assert plain(tx.events["SignerKeyAdded"]) == plain(
        {"agencyId": c.agencies["LAB"], "signer": k, "validFrom": t + 100, "validUntil": t + DAY}
    )
    assert plain(c.reg.signerKey(k)) == plain((c.index["LAB"], t + 100, t + DAY, 0))
    # not valid yet: validFrom in the future
    c.expect_revert(c.reg.authorize, [k, INSPECTION], c.outsider, "AgencyRegistryKeyNotValid", k, now() + 1)
    chain.sleep(200)
    chain.mine()
    assert c.reg.authorize(k, INSPECTION) == c.index["LAB"]


@pytest.mark.parametrize("window", ["empty", "inverted", "ended"])
def test_add_signer_key_invalid_validity(c, window):
    t = now()
    valid_from, valid_until = {"empty": (t + 50, t + 50), "inverted": (t + 60, t + 50), "ended": (t - 100, t - 1)}[
        window
    ]
    pid = c.propose(c.reg, c.reg.addSignerKey, c.agencies["LAB"], accounts[9], valid_from, valid_until)
    c.reg.approve(pid, {"from": c.governors[1]})
    c.expect_revert(c.reg.execute, [pid], c.governors[0], "AgencyRegistryInvalidValidity", valid_from, valid_until)


def test_add_signer_key_refusals(c):
    t = now()
    cases = [
        ([c.agencies["LAB"], ZERO_ADDRESS, t, t + DAY], ("AgencyRegistryZeroAddress",)),
        ([c.agencies["LAB"], c.keys.lab, t, t + DAY], ("AgencyRegistryKeyExists", c.keys.lab)),
        # keys are never reused, not even across agencies
        ([c.agencies["NL"], c.keys.lab, t, t + DAY], ("AgencyRegistryKeyExists", c.keys.lab)),
        ([b32("NOPE"), accounts[9], t, t + DAY], ("AgencyRegistryUnknownAgency", b32("NOPE"))),
    ]
    for args, (error, *error_args) in cases:
        pid = c.propose(c.reg, c.reg.addSignerKey, *args)
        c.reg.approve(pid, {"from": c.governors[1]})
        c.expect_revert(c.reg.execute, [pid], c.governors[0], error, *error_args)


def test_set_signer_key_expiry_rotation_keeps_old_signatures_valid(c):
    k = c.keys.lab
    did = c.accepted()  # requires DOCUMENT_CHECK + LAB_TEST
    old_stamp = c.stamp(did, 0, key=k)
    signed_at = c.led.stamp(old_stamp)["signedAt"]
    until = now() + 5
    tx = c.govern(c.reg.setSignerKeyExpiry, k, until)
    assert plain(tx.events["SignerKeyExpiryChanged"]) == plain({"signer": k, "validUntil": until})
    assert c.reg.signerKey(k)[2] == until
    chain.sleep(30)
    chain.mine()
    assert not c.reg.wasValidSigner(k, c.index["LAB"], now())
    assert c.reg.wasValidSigner(k, c.index["LAB"], signed_at)  # the old signature stays valid
    c.expect_revert(c.reg.authorize, [k, INSPECTION], c.outsider, "AgencyRegistryKeyNotValid", k, now() + 1)
    # the stamp signed before the rotation still counts for a release
    new_stamp = c.stamp(did, 3, key=c.keys.lab2)
    tx = c.led.decide(did, 0, 1, ZERO32, [old_stamp, new_stamp], {"from": c.keys.cn})
    assert c.decl(did)["status"] == 3


def test_set_signer_key_expiry_refusals(c):
    k = c.keys.lab
    key = as_dict(c.reg.signerKey(k))
    for until in (key["validFrom"], key["validFrom"] - 1, now() - 1):
        pid = c.propose(c.reg, c.reg.setSignerKeyExpiry, k, until)
        c.reg.approve(pid, {"from": c.governors[1]})
        c.expect_revert(c.reg.execute, [pid], c.governors[0], "AgencyRegistryInvalidValidity", key["validFrom"], until)
    pid = c.propose(c.reg, c.reg.setSignerKeyExpiry, accounts[9], now() + DAY)
    c.reg.approve(pid, {"from": c.governors[1]})
    c.expect_revert(c.reg.execute, [pid], c.governors[0], "AgencyRegistryNotASigner", accounts[9])


def test_expired_key_can_be_extended_by_governance(c):
    k = c.keys.expired
    assert not c.reg.wasValidSigner(k, c.index["CN"], now())
    c.govern(c.reg.setSignerKeyExpiry, k, now() + DAY)
    assert c.reg.authorize(k, CUSTOMS) == c.index["CN"]


def test_report_key_compromised_by_peer_key(c):
    did = c.accepted()
    old_stamp = c.stamp(did, 0, key=c.keys.lab2)
    old_time = c.led.stamp(old_stamp)["signedAt"]
    chain.sleep(100)
    chain.mine()
    at = now() - 50
    tx = c.reg.reportKeyCompromised(c.keys.lab2, at, {"from": c.keys.lab})
    assert plain(tx.events["SignerKeyCompromised"]) == plain(
        {"signer": c.keys.lab2, "compromisedAt": at, "reportedBy": c.keys.lab}
    )
    assert len(tx.events) == 1
    assert c.reg.signerKey(c.keys.lab2)[3] == at
    # signatures before the compromise stay valid, from compromisedAt on they are void
    assert c.reg.wasValidSigner(c.keys.lab2, c.index["LAB"], old_time)
    assert c.reg.wasValidSigner(c.keys.lab2, c.index["LAB"], at - 1)
    assert not c.reg.wasValidSigner(c.keys.lab2, c.index["LAB"], at)
    assert not c.reg.wasValidSigner(c.keys.lab2, c.index["LAB"], now())
    c.expect_revert(
        c.reg.authorize, [c.keys.lab2, INSPECTION], c.outsider, "AgencyRegistryKeyNotValid", c.keys.lab2, now() + 1
    )


def test_report_key_compromised_earlier_time_allowed_later_refused(c):
    c.reg.reportKeyCompromised(c.keys.lab2, now() - 10, {"from": c.keys.lab})
    first = c.reg.signerKey(c.keys.lab2)[3]
    c.expect_revert(
        c.reg.reportKeyCompromised,
        [c.keys.lab2, first],
        c.keys.lab,
        "AgencyRegistryInvalidCompromiseTime",
        c.keys.lab2,
        first,
    )
    c.reg.reportKeyCompromised(c.keys.lab2, first - 100, {"from": c.keys.lab})
    assert c.reg.signerKey(c.keys.lab2)[3] == first - 100


def test_report_key_compromised_by_governance(c):
    at = now() - 5
    tx = c.govern(c.reg.reportKeyCompromised, c.keys.nl, at)
    assert plain(tx.events["SignerKeyCompromised"]) == plain(
        {"signer": c.keys.nl, "compromisedAt": at, "reportedBy": c.reg}
    )
    assert c.reg.signerKey(c.keys.nl)[3] == at


def test_report_key_compromised_refusals(c):
    t = now()
    valid_from = c.reg.signerKey(c.keys.lab2)[1]
    err = "AgencyRegistryNotKeyPeer"
    # not a peer: self, other agency, unknown account, compromised peer, expired peer
    c.expect_revert(c.reg.reportKeyCompromised, [c.keys.lab2, t], c.keys.lab2, err, c.keys.lab2, c.keys.lab2)
    c.expect_revert(c.reg.reportKeyCompromised, [c.keys.lab2, t], c.keys.cn, err, c.keys.cn, c.keys.lab2)
    c.expect_revert(c.reg.reportKeyCompromised, [c.keys.lab2, t], c.outsider, err, c.outsider, c.keys.lab2)
    c.expect_revert(
        c.reg.reportKeyCompromised, [c.keys.lab2, t], c.keys.compromised, err, c.keys.compromised, c.keys.lab2
    )
    c.expect_revert(c.reg.reportKeyCompromised, [c.keys.cn, t], c.keys.expired, err, c.keys.expired, c.keys.cn)
    c.expect_revert(c.reg.reportKeyCompromised, [c.keys.cn, t], c.governors[0], err, c.governors[0], c.keys.cn)
    # invalid times: before validity, in the future
    bad = "AgencyRegistryInvalidCompromiseTime"
    c.expect_revert(
        c.reg.reportKeyCompromised, [c.keys.lab2, valid_from - 1], c.keys.lab, bad, c.keys.lab2, valid_from - 1
    )
    c.expect_revert(c.reg.reportKeyCompromised, [c.keys.lab2, t + 1000], c.keys.lab, bad, c.keys.lab2, t + 1000)
    # unknown key
    c.expect_revert(c.reg.reportKeyCompromised, [accounts[9], t], c.keys.lab, "AgencyRegistryNotASigner", accounts[9])


def test_was_valid_signer_boundaries(c):
    k = as_dict(c.reg.signerKey(c.keys.cn))
    i = c.index["CN"]
    assert c.reg.wasValidSigner(c.keys.cn, i, k["validFrom"])
    assert not c.reg.wasValidSigner(c.keys.cn, i, k["validFrom"] - 1)
    assert c.reg.wasValidSigner(c.keys.cn, i, k["validUntil"] - 1)
    assert not c.reg.wasValidSigner(c.keys.cn, i, k["validUntil"])  # exclusive end
    assert not c.reg.wasValidSigner(c.keys.cn, c.index["NL"], now())  # wrong agency
    assert not c.reg.wasValidSigner(c.keys.cn, 0, now())
    assert not c.reg.wasValidSigner(accounts[9], 0, now())  # unknown key, index 0


def test_authorize_signed_refuses_any_compromised_key(c):
    # compromised at t0-10, validFrom t0-1000: a signature dated before the compromise is still refused
    key = as_dict(c.reg.signerKey(c.keys.compromised))
    early = key["validFrom"] + 1
    assert c.reg.wasValidSigner(c.keys.compromised, c.index["LAB"], early)
    c.expect_revert(
        c.reg.authorizeSigned,
        [c.keys.compromised, INSPECTION, early],
        c.outsider,
        "AgencyRegistryKeyNotValid",
        c.keys.compromised,
        early,
    )
    assert c.reg.authorizeSigned(c.keys.lab, INSPECTION, now() - 1) == c.index["LAB"]


def test_authorize_reports_reason(c):
    c.expect_revert(c.reg.authorize, [c.outsider, ALL_ROLES], c.outsider, "AgencyRegistryNotASigner", c.outsider)
    c.expect_revert(
        c.reg.authorize,
        [c.keys.susp, ALL_ROLES],
        c.outsider,
        "AgencyRegistryAgencyNotActive",
        c.agencies["SUSP"],
        AGENCY_SUSPENDED,
    )
    c.expect_revert(
        c.reg.authorize, [c.keys.lab, CUSTOMS], c.outsider, "AgencyRegistryMissingRole", c.agencies["LAB"], CUSTOMS
    )
    assert c.reg.authorize(c.keys.lab, CUSTOMS | INSPECTION) == c.index["LAB"]


# ------------------------------------------------------------------------------------ traders


def test_register_trader(c):
    t = accounts[10]
    tx = c.reg.registerTrader(t, True, {"from": c.keys.registrar})
    assert plain(tx.events["TraderRegistered"]) == plain({"trader": t, "registrarIndex": c.index["REG"], "aeo": True})
    assert len(tx.events) == 1
    assert plain(c.reg.trader(t)) == plain((c.index["REG"], TRADER_ACTIVE, True))
    assert plain(c.reg.trader(accounts[11])) == plain((0, TRADER_NONE, False))


def test_register_trader_refusals(c):
    r = c.keys.registrar
    c.expect_revert(c.reg.registerTrader, [c.traders.t1, False], r, "AgencyRegistryTraderExists", c.traders.t1)
    c.expect_revert(c.reg.registerTrader, [ZERO_ADDRESS, False], r, "AgencyRegistryZeroAddress")
    c.expect_revert(
        c.reg.registerTrader, [accounts[10], False], c.keys.cn, "AgencyRegistryMissingRole", c.agencies["CN"], REGISTRAR
    )
    c.expect_revert(c.reg.registerTrader, [accounts[10], False], c.traders.t1, "AgencyRegistryNotASigner", c.traders.t1)


def test_update_trader(c):
    tx = c.reg.updateTrader(c.traders.t1, TRADER_SUSPENDED, False, {"from": c.keys.registrar})
    assert plain(tx.events["TraderUpdated"]) == plain(
        {"trader": c.traders.t1, "status": TRADER_SUSPENDED, "aeo": False}
    )
    assert plain(c.reg.trader(c.traders.t1)) == plain((c.index["REG"], TRADER_SUSPENDED, False))
    c.expect_revert(
        c.reg.authorizeSubmission,
        [c.traders.t1, c.agencies["CN"]],
        c.outsider,
        "AgencyRegistryTraderNotActive",
        c.traders.t1,
        TRADER_SUSPENDED,
    )
    c.reg.updateTrader(c.traders.t1, TRADER_ACTIVE, True, {"from": c.keys.registrar})
    assert c.reg.authorizeSubmission(c.traders.t1, c.agencies["CN"]) == c.index["CN"]


def test_update_trader_only_by_registering_agency(c):
    second = local_key("second-registrar")
    c.govern(c.reg.addAgency, *add_agency_args(agency_id=b32("NL-TRADER-REG"), roles=REGISTRAR))
    c.govern(c.reg.addSignerKey, b32("NL-TRADER-REG"), second, now() - 10, now() + DAY)
    other_index = c.reg.agency(b32("NL-TRADER-REG"))["index"]
    c.expect_revert(
        c.reg.updateTrader,
        [c.traders.t1, TRADER_SUSPENDED, False],
        second,
        "AgencyRegistryNotTraderRegistrar",
        c.traders.t1,
        other_index,
    )
    # another key of the registering agency may
    c.govern(c.reg.addSignerKey, c.agencies["REG"], local_key("registrar-2"), now() - 10, now() + DAY)
    c.reg.updateTrader(c.traders.t1, TRADER_SUSPENDED, False, {"from": local_key("registrar-2")})
    assert c.reg.trader(c.traders.t1)[1] == TRADER_SUSPENDED


def test_update_trader_refusals(c):
    r = c.keys.registrar
    c.expect_revert(
        c.reg.updateTrader, [accounts[10], TRADER_ACTIVE, False], r, "AgencyRegistryUnknownTrader", accounts[10]
    )
    c.expect_revert(
        c.reg.updateTrader, [c.traders.t1, TRADER_NONE, False], r, "AgencyRegistryInvalidTraderStatus", TRADER_NONE
    )
    c.govern(c.reg.setAgencyRoles, c.agencies["REG"], AUDITOR)
    c.expect_revert(
        c.reg.updateTrader,
        [c.traders.t1, TRADER_ACTIVE, False],
        r,
        "AgencyRegistryMissingRole",
        c.agencies["REG"],
        REGISTRAR,
    )


def test_authorize_submission_reasons(c):
    o = c.outsider
    c.expect_revert(
        c.reg.authorizeSubmission,
        [c.traders.unregistered, c.agencies["CN"]],
        o,
        "AgencyRegistryUnknownTrader",
        c.traders.unregistered,
    )
    c.expect_revert(
        c.reg.authorizeSubmission, [c.traders.t1, b32("NOPE")], o, "AgencyRegistryUnknownAgency", b32("NOPE")
    )
    c.expect_revert(
        c.reg.authorizeSubmission,
        [c.traders.t1, c.agencies["LAB"]],
        o,
        "AgencyRegistryMissingRole",
        c.agencies["LAB"],
        CUSTOMS,
    )
    assert c.reg.authorizeSubmission(c.traders.t2, c.agencies["NL"]) == c.index["NL"]


# ------------------------------------------------------------------------------------ governance


def test_propose_approve_execute(c):
    g0, g1, g2 = c.governors
    data = c.reg.setProposalLifetime.encode_input(7200)
    tx = c.reg.propose(c.reg, data, {"from": g0})
    ev = event(tx, "ProposalCreated")
    pid = ev["proposalId"]
    assert pid == c.reg.proposalCount()
    assert ev["proposer"] == g0 and ev["target"] == c.reg.address and ev["callData"] == bytes.fromhex(data[2:])
    assert ev["expiresAt"] == tx.timestamp + LIFETIME and ev["epoch"] == 0
    assert c.reg.hasApproved(pid, g0) and not c.reg.hasApproved(pid, g1)
    assert plain(c.reg.proposal(pid)) == plain(
        (g0, c.reg, tx.timestamp + LIFETIME, 0, 1, False, False, bytes.fromhex(data[2:]))
    )
    c.expect_revert(c.reg.execute, [pid], g0, "AgencyRegistryInsufficientApprovals", pid, 1, 2)
    tx = c.reg.approve(pid, {"from": g2})
    assert plain(tx.events["ProposalApproved"]) == plain({"proposalId": pid, "governor": g2, "approvals": 2})
    tx = c.reg.execute(pid, {"from": g1})  # any governor may execute
    assert [e.name for e in tx.events] == ["ProposalExecuted", "ProposalLifetimeChanged"]
    assert plain(tx.events["ProposalExecuted"]) == plain({"proposalId": pid, "executor": g1})
    assert c.reg.governance()[3] == 7200
    assert c.reg.proposal(pid)[5] is True
    c.expect_revert(c.reg.execute, [pid], g0, "AgencyRegistryProposalClosed", pid)
    c.expect_revert(c.reg.approve, [pid], g1, "AgencyRegistryProposalClosed", pid)
    c.expect_revert(c.reg.cancel, [pid], g0, "AgencyRegistryProposalClosed", pid)


def test_propose_refusals(c):
    g = c.governors[0]
    data = c.reg.setThreshold.encode_input(3)
    c.expect_revert(c.reg.propose, [c.reg, data], c.outsider, "AgencyRegistryNotGovernor", c.outsider)
    c.expect_revert(c.reg.propose, [c.keys.cn, data], g, "AgencyRegistryInvalidTarget", c.keys.cn)
    c.expect_revert(c.reg.propose, [c.reg, b"\x01\x02\x03"], g, "AgencyRegistryInvalidCallData", 3)
    c.expect_revert(c.reg.propose, [c.reg, b""], g, "AgencyRegistryInvalidCallData", 0)
    c.expect_revert(c.reg.propose, [c.reg, b"\x00" * 4097], g, "AgencyRegistryInvalidCallData", 4097)
    pid = c.reg.propose(c.reg, b"\x00" * 4096, {"from": g}).events["ProposalCreated"]["proposalId"]
    assert len(c.reg.proposal(pid)[7]) == 4096


def test_approve_refusals(c):
    g0, g1, _ = c.governors
    pid = c.propose(c.reg, c.reg.setThreshold, 3)
    c.expect_revert(c.reg.approve, [pid], g0, "AgencyRegistryAlreadyApproved", pid, g0)
    c.expect_revert(c.reg.approve, [pid], c.outsider, "AgencyRegistryNotGovernor", c.outsider)
    c.expect_revert(c.reg.approve, [pid + 1], g1, "AgencyRegistryUnknownProposal", pid + 1)
    c.expect_revert(c.reg.execute, [pid + 1], g1, "AgencyRegistryUnknownProposal", pid + 1)
    c.expect_revert(c.reg.execute, [pid], c.outsider, "AgencyRegistryNotGovernor", c.outsider)
    c.expect_revert(c.reg.proposal, [pid + 1], g1, "AgencyRegistryUnknownProposal", pid + 1)


def test_cancel(c):
    g0, g1, _ = c.governors
    pid = c.propose(c.reg, c.reg.setThreshold, 3)
    c.expect_revert(c.reg.cancel, [pid], g1, "AgencyRegistryNotProposer", pid, g1)
    c.expect_revert(c.reg.cancel, [pid + 1], g0, "AgencyRegistryUnknownProposal", pid + 1)
    tx = c.reg.cancel(pid, {"from": g0})
    assert plain(tx.events["ProposalCancelled"]) == plain({"proposalId": pid})
    assert c.reg.proposal(pid)[6] is True
    c.expect_revert(c.reg.approve, [pid], g1, "AgencyRegistryProposalClosed", pid)
    c.expect_revert(c.reg.execute, [pid], g0, "AgencyRegistryProposalClosed", pid)
    c.expect_revert(c.reg.cancel, [pid], g0, "AgencyRegistryProposalClosed", pid)


def test_proposal_expiry(c):
    g0, g1, _ = c.governors
    pid = c.propose(c.reg, c.reg.setThreshold, 3)
    expires_at = c.reg.proposal(pid)[2]
    chain.sleep(LIFETIME + 10)
    chain.mine()
    c.expect_revert(c.reg.approve, [pid], g1, "AgencyRegistryProposalExpired", pid, expires_at)
    pid2 = c.propose(c.reg, c.reg.setThreshold, 3)
    c.reg.approve(pid2, {"from": g1})
    chain.sleep(LIFETIME + 10)
    chain.mine()
    c.expect_revert(c.reg.execute, [pid2], g0, "AgencyRegistryProposalExpired", pid2, c.reg.proposal(pid2)[2])


def test_proposal_stale_after_governor_set_change(c):
    g0, g1, g2 = c.governors
    stale = c.propose(c.reg, c.reg.setProposalLifetime, 7200)
    c.reg.approve(stale, {"from": g1})
    tx = c.govern(c.reg.addGovernor, accounts[4])
    assert plain(tx.events["GovernorAdded"]) == plain({"governor": accounts[4]})
    assert plain(c.reg.governance()[:3]) == plain((4, 2, 1))
    c.expect_revert(c.reg.execute, [stale], g0, "AgencyRegistryProposalStale", stale, 0, 1)
    c.expect_revert(c.reg.approve, [stale], g2, "AgencyRegistryProposalStale", stale, 0, 1)
    # re-proposed at the new epoch it works, and the new governor counts
    fresh = c.propose(c.reg, c.reg.setProposalLifetime, 7200, proposer=accounts[4])
    c.reg.approve(fresh, {"from": g2})
    c.reg.execute(fresh, {"from": accounts[4]})
    assert c.reg.governance()[3] == 7200


def test_remove_governor_and_threshold_change_bump_epoch(c):
    g0, g1, g2 = c.governors
    tx = c.govern(c.reg.removeGovernor, g2)
    assert plain(tx.events["GovernorRemoved"]) == plain({"governor": g2})
    assert not c.reg.isGovernor(g2)
    assert plain(c.reg.governance()[:3]) == plain((2, 2, 1))
    c.expect_revert(c.reg.propose, [c.reg, c.reg.setThreshold.encode_input(2)], g2, "AgencyRegistryNotGovernor", g2)
    tx = c.govern(c.reg.setThreshold, 2)
    assert plain(tx.events["ThresholdChanged"]) == plain({"threshold": 2})
    assert plain(c.reg.governance()[:3]) == plain((2, 2, 2))


def test_governor_management_refusals(c):
    g0, g1, g2 = c.governors
    cases = [
        (c.reg.addGovernor, [g1], ("AgencyRegistryGovernorExists", g1)),
        (c.reg.addGovernor, [ZERO_ADDRESS], ("AgencyRegistryZeroAddress",)),
        (c.reg.removeGovernor, [c.outsider], ("AgencyRegistryUnknownGovernor", c.outsider)),
        (c.reg.setThreshold, [1], ("AgencyRegistryInvalidThreshold", 1, 3)),
        (c.reg.setThreshold, [4], ("AgencyRegistryInvalidThreshold", 4, 3)),
        (c.reg.setProposalLifetime, [3599], ("AgencyRegistryInvalidLifetime", 3599)),
        (c.reg.setProposalLifetime, [90 * DAY + 1], ("AgencyRegistryInvalidLifetime", 90 * DAY + 1)),
        (c.reg.setGovernedTarget, [c.reg, True], ("AgencyRegistryInvalidTarget", c.reg)),
        (c.reg.setGovernedTarget, [c.outsider, True], ("AgencyRegistryInvalidTarget", c.outsider)),
    ]
    for method, args, (error, *error_args) in cases:
        pid = c.propose(c.reg, method, *args)
        c.reg.approve(pid, {"from": g1})
        c.expect_revert(c.reg.execute, [pid], g0, error, *error_args)
    # threshold 3 of 3: removing a governor would go below the threshold
    c.govern(c.reg.setThreshold, 3)
    pid = c.propose(c.reg, c.reg.removeGovernor, g2)
    c.reg.approve(pid, {"from": g1})
    c.reg.approve(pid, {"from": g2})
    c.expect_revert(c.reg.execute, [pid], g0, "AgencyRegistryInvalidThreshold", 3, 2)


def test_threshold_three_needs_three_approvals(c):
    g0, g1, g2 = c.governors
    c.govern(c.reg.setThreshold, 3)
    pid = c.propose(c.reg, c.reg.setProposalLifetime, 7200)
    c.reg.approve(pid, {"from": g1})
    c.expect_revert(c.reg.execute, [pid], g0, "AgencyRegistryInsufficientApprovals", pid, 2, 3)
    c.reg.approve(pid, {"from": g2})
    c.reg.execute(pid, {"from": g2})
    assert c.reg.governance()[3] == 7200


def test_governed_target_allowlist(c):
    g0 = c.governors[0]
    data = c.led.setApprovalsRequired.encode_input(0, 2)
    assert c.reg.isGovernedTarget(c.led)
    tx = c.govern(c.reg.setGovernedTarget, c.led, False)
    assert plain(tx.events["GovernedTargetSet"]) == plain({"target": c.led, "allowed": False})
    c.expect_revert(c.reg.propose, [c.led, data], g0, "AgencyRegistryInvalidTarget", c.led)
    c.govern(c.reg.setGovernedTarget, c.led, True)
    tx = c.govern(c.led.setApprovalsRequired, 0, 2)
    assert plain(tx.events["ApprovalsRequiredChanged"]) == plain({"kind": 0, "approvals": 2})


def test_execute_bubbles_target_error_and_proposal_stays_open(c):
    g0, g1, _ = c.governors
    pid = c.propose(c.led, c.led.setApprovalsRequired, 0, 9)
    c.reg.approve(pid, {"from": g1})
    c.expect_revert(c.reg.execute, [pid], g0, "ClearanceLedgerInvalidApprovals", 9, send=True)
    assert plain(c.reg.proposal(pid)[5:7]) == plain((False, False))


def test_proposal_ids_increment(c):
    first = c.propose(c.reg, c.reg.setThreshold, 3)
    second = c.propose(c.reg, c.reg.setThreshold, 3, proposer=c.governors[2])
    assert second == first + 1 == c.reg.proposalCount()
