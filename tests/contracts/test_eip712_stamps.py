"""EIP-712 stamps signed by an inspector key off-chain and relayed by anyone."""

from __future__ import annotations

import pytest
from brownie import chain
from eth_account import Account
from eth_account.messages import encode_typed_data
from testkit import (
    DAY,
    DOCUMENT_CHECK,
    EXPORT_CLEARANCE,
    FAIL,
    INSPECTION,
    LAB_TEST,
    PARTNER,
    PASS,
    RELEASE,
    ST_RELEASED,
    STAMP_TYPES,  # noqa: E402  (kept separate: only the digest test needs it)
    ZERO32,
    as_dict,
    cid,
    event,
    high_s,
    local_key,
    now,
    plain,
    sha,
    sign_stamp,
    stamp_tuple,
)


def message(
    c,
    declaration_id,
    *,
    key=None,
    stamp_type=LAB_TEST,
    result=PASS,
    report="signed-report",
    signed_at=None,
    nonce=None,
    deadline=None,
):
    key = key or c.keys.lab
    signed_at = now() - 60 if signed_at is None else signed_at
    return {
        "declarationId": declaration_id,
        "stampType": stamp_type,
        "result": result,
        "reportSha256": sha(report),
        "reportCid": cid(report),
        "signer": key.address,
        "signedAt": signed_at,
        "nonce": c.led.nonces(key) if nonce is None else nonce,
        "deadline": signed_at + DAY if deadline is None else deadline,
    }


def relay(c, msg, signature, relayer=None):
    return c.led.relayStamp(stamp_tuple(msg), signature, {"from": relayer or c.outsider})


def test_relayed_stamp_by_third_party(c):
    did = c.accepted()
    msg = message(c, did)
    signature = sign_stamp(c.keys.lab, msg, ledger=c.led)
    tx = relay(c, msg, signature, relayer=c.traders.t2)  # the trader relays the lab's signed stamp
    assert len(tx.events) == 1
    assert event(tx, "StampRecorded") == plain(
        {
            "stampId": sha("signed-report"),
            "declarationId": did,
            "agencyIndex": c.index["LAB"],
            "signer": c.keys.lab,
            "stampType": LAB_TEST,
            "result": PASS,
            "signedAt": msg["signedAt"],
            "reportCid": cid("signed-report"),
            "relayer": c.traders.t2,
        }
    )
    assert as_dict(c.led.stamp(sha("signed-report"))) == plain(
        {
            "declarationId": did,
            "signer": c.keys.lab,
            "agencyIndex": c.index["LAB"],
            "stampType": LAB_TEST,
            "result": PASS,
            "revoked": False,
            "signedAt": msg["signedAt"],
        }
    )
    assert c.led.nonces(c.keys.lab) == 1


def test_relayed_stamps_count_for_release(c):
    did = c.accepted()
    m1 = message(c, did, stamp_type=DOCUMENT_CHECK, report="r1")
    relay(c, m1, sign_stamp(c.keys.lab, m1, ledger=c.led))
    m2 = message(c, did, stamp_type=LAB_TEST, report="r2")
    assert m2["nonce"] == 1
    relay(c, m2, sign_stamp(c.keys.lab, m2, ledger=c.led))
    c.led.decide(did, RELEASE, 1, ZERO32, [sha("r1"), sha("r2")], {"from": c.keys.cn})
    assert c.decl(did)["status"] == ST_RELEASED


def test_stamp_digest_matches_eth_account(c):
    did = c.accepted()
    msg = message(c, did)
    domain = {"name": "ClearanceLedger", "version": "1", "chainId": chain.id, "verifyingContract": c.led.address}
    signable = encode_typed_data(
        full_message={"types": STAMP_TYPES, "primaryType": "Stamp", "domain": domain, "message": msg}
    )
    from eth_utils import keccak

    expected = keccak(b"\x19\x01" + signable.header + signable.body)
    assert plain(c.led.stampDigest(stamp_tuple(msg))) == expected
    assert plain(c.led.eip712Domain())[1:5] == ("ClearanceLedger", "1", chain.id, c.led.address)


def test_nonce_increments_per_signer(c):
    did = c.accepted()
    for i in range(3):
        msg = message(c, did, report=f"n{i}")
        assert msg["nonce"] == i
        relay(c, msg, sign_stamp(c.keys.lab, msg, ledger=c.led))
    assert c.led.nonces(c.keys.lab) == 3
    assert c.led.nonces(c.keys.lab2) == 0  # per signer
    msg = message(c, did, key=c.keys.lab2, report="other-signer")
    relay(c, msg, sign_stamp(c.keys.lab2, msg, ledger=c.led))
    assert c.led.nonces(c.keys.lab2) == 1


def test_replay_rejected(c):
    did = c.accepted()
    msg = message(c, did)
    signature = sign_stamp(c.keys.lab, msg, ledger=c.led)
    relay(c, msg, signature)
    # the identical payload: nonce already used (checked before the duplicate report)
    c.expect_revert(
        c.led.relayStamp,
        [stamp_tuple(msg), signature],
        c.outsider,
        "ClearanceLedgerInvalidNonce",
        c.keys.lab,
        1,
        send=True,
    )
    # same nonce, different report
    msg2 = dict(msg, reportSha256=sha("other"), reportCid=cid("other"))
    c.expect_revert(
        c.led.relayStamp,
        [stamp_tuple(msg2), sign_stamp(c.keys.lab, msg2, ledger=c.led)],
        c.outsider,
        "ClearanceLedgerInvalidNonce",
        c.keys.lab,
        1,
    )


def test_future_nonce_rejected(c):
    did = c.accepted()
    msg = message(c, did, nonce=5)
    c.expect_revert(
        c.led.relayStamp,
        [stamp_tuple(msg), sign_stamp(c.keys.lab, msg, ledger=c.led)],
        c.outsider,
        "ClearanceLedgerInvalidNonce",
        c.keys.lab,
        0,
    )


@pytest.mark.parametrize(
    "domain_override",
    [
        {"chain_id": 1},
        {"chain_id": 31338},
        {"verifying_contract": "0x" + "11" * 20},
        {"verifying_contract": "registry"},
        {"name": "DocumentStore"},
        {"version": "2"},
    ],
    ids=["chain-1", "chain-31338", "other-contract", "registry-contract", "other-name", "other-version"],
)
def test_wrong_domain_rejected(c, domain_override):
    did = c.accepted()
    msg = message(c, did)
    if domain_override.get("verifying_contract") == "registry":
        domain_override = {"verifying_contract": c.reg.address}
    signature = sign_stamp(c.keys.lab, msg, ledger=c.led, **domain_override)
    c.expect_revert(
        c.led.relayStamp,
        [stamp_tuple(msg), signature],
        c.outsider,
        "ClearanceLedgerInvalidSignature",
        c.keys.lab,
        send=True,
    )


def test_high_s_signature_rejected(c):
    did = c.accepted()
    msg = message(c, did)
    signature = sign_stamp(c.keys.lab, msg, ledger=c.led)
    twin = high_s(signature)
    # the twin is a valid secp256k1 signature of the same digest by the same key...
    digest = bytes(c.led.stampDigest(stamp_tuple(msg)))
    vrs = (twin[64], int.from_bytes(twin[:32], "big"), int.from_bytes(twin[32:64], "big"))
    assert Account._recover_hash(digest, vrs=vrs) == c.keys.lab.address
    # ...which the ledger must refuse (low-s only)
    c.expect_revert(
        c.led.relayStamp, [stamp_tuple(msg), twin], c.outsider, "ClearanceLedgerInvalidSignature", c.keys.lab, send=True
    )
    relay(c, msg, signature)  # the canonical one still works


@pytest.mark.parametrize("mangle", ["short", "empty", "bad-v", "zero"])
def test_malformed_signature_rejected(c, mangle):
    did = c.accepted()
    msg = message(c, did)
    signature = sign_stamp(c.keys.lab, msg, ledger=c.led)
    bad = {"short": signature[:64], "empty": b"", "bad-v": signature[:64] + b"\x05", "zero": b"\x00" * 65}[mangle]
    c.expect_revert(
        c.led.relayStamp, [stamp_tuple(msg), bad], c.outsider, "ClearanceLedgerInvalidSignature", c.keys.lab
    )


def test_signer_mismatch_rejected(c):
    did = c.accepted()
    msg = message(c, did, key=c.keys.lab)
    by_other = sign_stamp(c.keys.lab2, msg, ledger=c.led)  # claims lab, signed by lab2
    c.expect_revert(
        c.led.relayStamp, [stamp_tuple(msg), by_other], c.outsider, "ClearanceLedgerInvalidSignature", c.keys.lab
    )
    tampered = dict(msg, result=FAIL)  # payload changed after signing
    c.expect_revert(
        c.led.relayStamp,
        [stamp_tuple(tampered), sign_stamp(c.keys.lab, msg, ledger=c.led)],
        c.outsider,
        "ClearanceLedgerInvalidSignature",
        c.keys.lab,
    )


def test_expired_deadline_rejected(c):
    did = c.accepted()
    msg = message(c, did, signed_at=now() - 100, deadline=now() - 1)
    c.expect_revert(
        c.led.relayStamp,
        [stamp_tuple(msg), sign_stamp(c.keys.lab, msg, ledger=c.led)],
        c.outsider,
        "ClearanceLedgerSignatureExpired",
        now() - 1,
        send=True,
    )


def test_deadline_passes_while_waiting(c):
    did = c.accepted()
    msg = message(c, did, signed_at=now() - 10, deadline=now() + 100)
    signature = sign_stamp(c.keys.lab, msg, ledger=c.led)
    chain.sleep(200)
    chain.mine()
    c.expect_revert(
        c.led.relayStamp, [stamp_tuple(msg), signature], c.outsider, "ClearanceLedgerSignatureExpired", msg["deadline"]
    )


def test_signed_in_future_rejected(c):
    did = c.accepted()
    future = now() + 3600
    msg = message(c, did, signed_at=future, deadline=future + 60)
    c.expect_revert(
        c.led.relayStamp,
        [stamp_tuple(msg), sign_stamp(c.keys.lab, msg, ledger=c.led)],
        c.outsider,
        "ClearanceLedgerSignedInFuture",
        future,
    )


def test_signature_window_limit(c):
    did = c.accepted()
    signed_at = now() - 10
    too_long = message(c, did, signed_at=signed_at, deadline=signed_at + 30 * DAY + 1)
    c.expect_revert(
        c.led.relayStamp,
        [stamp_tuple(too_long), sign_stamp(c.keys.lab, too_long, ledger=c.led)],
        c.outsider,
        "ClearanceLedgerSignatureWindowTooLong",
        signed_at,
        signed_at + 30 * DAY + 1,
    )
    exact = message(c, did, signed_at=signed_at, deadline=signed_at + 30 * DAY)
    relay(c, exact, sign_stamp(c.keys.lab, exact, ledger=c.led))


def test_key_not_yet_valid_at_signed_at(c):
    fresh = local_key("future-lab-key")
    start = now() + 1000
    c.govern(c.reg.addSignerKey, c.agencies["LAB"], fresh, start, start + DAY)
    did = c.accepted()
    msg = message(c, did, key=fresh, signed_at=now() - 10)
    c.expect_revert(
        c.led.relayStamp,
        [stamp_tuple(msg), sign_stamp(fresh, msg, ledger=c.led)],
        c.outsider,
        "AgencyRegistryKeyNotValid",
        fresh,
        msg["signedAt"],
    )


def test_key_outside_window_at_signed_at_but_valid_signature_before_expiry(c):
    did = c.accepted()
    key_info = as_dict(c.reg.signerKey(c.keys.expired))
    # the rotated-out key signed after its validity ended: refused
    late = message(c, did, key=c.keys.expired, signed_at=key_info["validUntil"] + 1)
    c.expect_revert(
        c.led.relayStamp,
        [stamp_tuple(late), sign_stamp(c.keys.expired, late, ledger=c.led)],
        c.outsider,
        "AgencyRegistryKeyNotValid",
        c.keys.expired,
        late["signedAt"],
    )


def test_rotation_keeps_signatures_made_inside_window(c):
    """A stamp signed while the key was valid can be relayed after the key was rotated out."""
    did = c.accepted()
    signed_at = now() - 5
    msg = message(c, did, signed_at=signed_at)
    signature = sign_stamp(c.keys.lab, msg, ledger=c.led)
    c.govern(c.reg.setSignerKeyExpiry, c.keys.lab, now() + 2)
    chain.sleep(60)
    chain.mine()
    assert not c.reg.wasValidSigner(c.keys.lab, c.index["LAB"], now())
    tx = relay(c, msg, signature)
    assert event(tx, "StampRecorded")["signedAt"] == signed_at


def test_key_with_recorded_compromise_rejected(c):
    did = c.accepted()
    key_info = as_dict(c.reg.signerKey(c.keys.compromised))
    # even a signing time before the recorded compromise is refused: the holder could back-date
    msg = message(c, did, key=c.keys.compromised, signed_at=key_info["compromisedAt"] - 1)
    c.expect_revert(
        c.led.relayStamp,
        [stamp_tuple(msg), sign_stamp(c.keys.compromised, msg, ledger=c.led)],
        c.outsider,
        "AgencyRegistryKeyNotValid",
        c.keys.compromised,
        msg["signedAt"],
        send=True,
    )


def test_unknown_signer_rejected(c):
    stranger = local_key("stranger")
    did = c.accepted()
    msg = message(c, did, key=stranger)
    c.expect_revert(
        c.led.relayStamp,
        [stamp_tuple(msg), sign_stamp(stranger, msg, ledger=c.led)],
        c.outsider,
        "AgencyRegistryNotASigner",
        stranger,
    )


def test_relayed_stamp_role_rules(c):
    did = c.accepted()
    export = message(c, did, stamp_type=EXPORT_CLEARANCE)
    c.expect_revert(
        c.led.relayStamp,
        [stamp_tuple(export), sign_stamp(c.keys.lab, export, ledger=c.led)],
        c.outsider,
        "AgencyRegistryMissingRole",
        c.agencies["LAB"],
        PARTNER,
    )
    by_partner = message(c, did, key=c.keys.partner, stamp_type=EXPORT_CLEARANCE, report="export")
    relay(c, by_partner, sign_stamp(c.keys.partner, by_partner, ledger=c.led))
    lab_by_customs = message(c, did, key=c.keys.cn)
    c.expect_revert(
        c.led.relayStamp,
        [stamp_tuple(lab_by_customs), sign_stamp(c.keys.cn, lab_by_customs, ledger=c.led)],
        c.outsider,
        "AgencyRegistryMissingRole",
        c.agencies["CN"],
        INSPECTION,
    )


def test_relayed_stamp_value_and_status_rules(c):
    did = c.accepted()
    bad_type = message(c, did, stamp_type=8)
    c.expect_revert(
        c.led.relayStamp,
        [stamp_tuple(bad_type), sign_stamp(c.keys.lab, bad_type, ledger=c.led)],
        c.outsider,
        "ClearanceLedgerInvalidStampType",
        8,
    )
    submitted = c.submit()
    msg = message(c, submitted)
    c.expect_revert(
        c.led.relayStamp,
        [stamp_tuple(msg), sign_stamp(c.keys.lab, msg, ledger=c.led)],
        c.outsider,
        "ClearanceLedgerInvalidStatus",
        submitted,
        1,
    )
    existing = c.stamp(did, DOCUMENT_CHECK)
    dup = dict(message(c, did), reportSha256=existing)
    c.expect_revert(
        c.led.relayStamp,
        [stamp_tuple(dup), sign_stamp(c.keys.lab, dup, ledger=c.led)],
        c.outsider,
        "ClearanceLedgerStampExists",
        existing,
    )
