"""Partner-agency bridge on a real anvil: signed stamps checked like relayStamp, relayed exactly once.

Stamps are signed with the consortium's real keys through eth-account's own EIP-712 encoder (an
implementation independent of the bridge's), delivered over the bridge's HTTP feed and its drop
directory, and the chain is asked what happened.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from ledger_api.chain import _tx_calls as calls
from ledger_api.chain.deploy import agency_id_bytes
from ledger_api.errors import AttestationRejected
from ledger_api.outbox import EntryState
from oracles._base import OracleContext, run
from oracles.bridge import (
    MAX_CID_LENGTH,
    MAX_SIGNATURE_WINDOW,
    REASONS,
    BridgeOracle,
    domain_separator,
    parse_item,
    recover_signer,
    stamp_digest,
)
from tests._support.ipfs import free_port
from tests.oracles.conftest import Ledger

TRADER = "trader-tj-electronics"
CUSTOMS = "cn-tj-customs-signer-0"
LAB = "cn-tj-ciq-lab-signer-0"  # INSPECTION_AGENCY
PARTNER = "nl-rtm-customs-signer-0"  # PARTNER_CUSTOMS (and the bridge's relayer)
CID = bytes.fromhex("01551220") + b"\x11" * 32
EXPORT_CLEARANCE, LAB_TEST, PASS = 5, 3, 1
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
EIP712_TYPES = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "Stamp": [
        {"name": "declarationId", "type": "bytes32"},
        {"name": "stampType", "type": "uint8"},
        {"name": "result", "type": "uint8"},
        {"name": "reportSha256", "type": "bytes32"},
        {"name": "reportCid", "type": "bytes"},
        {"name": "signer", "type": "address"},
        {"name": "signedAt", "type": "uint64"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ],
}


# ---------------------------------------------------------------------------------------- helpers


def view(ledger: Ledger, function: str, *args: Any) -> tuple[Any, ...]:
    """A ClearanceLedger view via eth_call."""
    data = "0x" + calls.encode_call(function, args).hex()
    out = ledger.client.rpc.call("eth_call", [{"to": ledger.deployment.ledger, "data": data}, "latest"])
    return calls.decode_result(function, bytes.fromhex(str(out)[2:]))


def chain_time(ledger: Ledger) -> int:
    """Timestamp of the latest block."""
    return int(ledger.client.rpc.call("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)


def declaration(ledger: Ledger, *, accept: bool = True) -> bytes:
    """A new declaration submitted by a trader and (by default) accepted by its customs."""
    commitment = os.urandom(32)
    trader, customs = ledger.address(TRADER), ledger.address(CUSTOMS)
    ledger.client.wait(ledger.client.submit_declaration(
        signer=trader, jurisdiction_id=agency_id_bytes("CN-TJ-CUSTOMS"), local_reference=b"LRN".ljust(32, b"\0"),
        commitment=commitment, cid=CID,
    ))  # fmt: skip
    if accept:
        mrn = os.urandom(8).hex().encode().ljust(32, b"\0")
        ledger.client.wait(ledger.client.accept_declaration(signer=customs, declaration_id=commitment, mrn=mrn))
    return commitment


def sign(ledger: Ledger, declaration_id: bytes, *, label: str = PARTNER, signing_label: str | None = None,
         stamp_type: int = EXPORT_CLEARANCE, result: int = PASS, report: bytes | None = None,
         nonce: int | None = None, signed_at: int | None = None, deadline: int | None = None,
         key: bytes | None = None, signer: str | None = None) -> dict[str, Any]:  # fmt: skip
    """A feed item: stamp fields signed with eth-account's EIP-712 encoder by ``signing_label``'s key
    (default: ``label``'s own; or the raw private ``key``), naming ``signer`` (default: ``label``'s address)."""
    signer = signer or ledger.address(label)
    signed_at = chain_time(ledger) if signed_at is None else signed_at
    message = {
        "declarationId": declaration_id, "stampType": stamp_type, "result": result,
        "reportSha256": report or os.urandom(32), "reportCid": CID, "signer": signer, "signedAt": signed_at,
        "nonce": int(view(ledger, "nonces", signer)[0]) if nonce is None else nonce,
        "deadline": signed_at + 3600 if deadline is None else deadline,
    }  # fmt: skip
    domain = {"name": "ClearanceLedger", "version": "1", "chainId": ledger.deployment.chain_id,
              "verifyingContract": ledger.deployment.ledger}  # fmt: skip
    typed = encode_typed_data(full_message={"types": EIP712_TYPES, "primaryType": "Stamp", "domain": domain,
                                            "message": message})  # fmt: skip
    private_key = key or bytes(ledger.keystore.signer(signing_label or label).key)
    signed = Account.sign_message(typed, private_key)
    return {
        "declaration_id": "0x" + declaration_id.hex(), "stamp_type": stamp_type, "result": result,
        "report_sha256": "0x" + message["reportSha256"].hex(), "report_cid": "0x" + CID.hex(), "signer": signer,
        "signed_at": signed_at, "nonce": message["nonce"], "deadline": message["deadline"],
        "signature": "0x" + bytes(signed.signature).hex(),
    }  # fmt: skip


def body(item: dict[str, Any]) -> bytes:
    """An item's JSON bytes."""
    return json.dumps(item).encode()


def recorded_stamps(ctx: OracleContext, declaration_id: bytes) -> list[Any]:
    """StampRecorded events of a declaration, as indexed after syncing to the head."""
    ctx.sync()
    return ctx.read.stamps(declaration_id)


def until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``predicate`` until it holds (fails the test at the deadline)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached before the deadline")


def settle(oracle: BridgeOracle) -> None:
    """Drive every relay to final (held ones are posted by the oracle's step once the one before is mined)."""

    def step() -> bool:
        oracle.ctx.worker.drain(timeout=30)
        oracle.ctx.sync()
        oracle.step()
        return not oracle.ctx.state.get("pending")

    until(step, timeout=60)


# ---------------------------------------------------------------------------------------- unit


def test_parse_item_refuses_malformed_and_too_large_items() -> None:
    good = {
        "declaration_id": "0x" + "01" * 32, "stamp_type": "EXPORT_CLEARANCE", "result": "PASS",
        "report_sha256": "0x" + "02" * 32, "report_cid": "0x" + CID.hex(), "signer": "0x" + "ab" * 20,
        "signed_at": 10, "nonce": "123456789012345678901234567890", "deadline": 20, "signature": "0x" + "00" * 65,
    }  # fmt: skip
    item = parse_item(body(good), max_bytes=4096)
    assert (item.stamp.stamp_type, item.stamp.result, item.stamp.nonce) == (5, 1, 123456789012345678901234567890)
    assert parse_item(body(item.as_json()), max_bytes=4096) == item  # the canonical form round-trips

    def reason(raw: bytes, max_bytes: int = 16384) -> str:
        with pytest.raises(AttestationRejected) as refused:
            parse_item(raw, max_bytes=max_bytes)
        return refused.value.reason

    assert reason(body(good), max_bytes=100) == "too-large"
    assert reason(b"[" * 500_000, max_bytes=1 << 20) == "malformed"  # never reaches the recursive parser
    bad: list[bytes] = [
        b"not json", b"[1]", b"\xff\xfe", b"[" * 8000, b'{"a": {"b": 1}}', body({**good, "extra": 1}),
        body({k: v for k, v in good.items() if k != "nonce"}),
        body(good)[:-1] + b', "nonce": 1}',  # duplicate key
        body({**good, "nonce": "NaN"}).replace(b'"NaN"', b"NaN"),
        body({**good, "stamp_type": 8}), body({**good, "result": 0}), body({**good, "result": True}),
        body({**good, "signed_at": 1 << 64}), body({**good, "nonce": -1}), body({**good, "nonce": "1e3"}),
        body({**good, "declaration_id": "0x" + "00" * 32}), body({**good, "report_sha256": "0x" + "02" * 31}),
        body({**good, "report_cid": "0x"}), body({**good, "report_cid": "0x" + "aa" * (MAX_CID_LENGTH + 1)}),
        body({**good, "signature": "0x" + "00" * 64}), body({**good, "signer": "0x" + "AB" * 19 + "aB"}),
        body({**good, "signer": "ab" * 20}), body({**good, "report_sha256": "0x" + "zz" * 32}),
        body({**good, "deadline": "9" * 5000}),
    ]  # fmt: skip
    assert [reason(raw) for raw in bad] == ["malformed"] * len(bad)


def test_signatures_must_be_low_s_with_v_27_or_28() -> None:
    account = Account.create()
    digest = os.urandom(32)
    signature = bytes(Account.unsafe_sign_hash(digest, account.key).signature)
    assert recover_signer(digest, signature) == account.address
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    high = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])  # the malleable twin: same signer
    zero_v = signature[:64] + bytes([v - 27])
    for forged in (high, zero_v, b"\0" * 65):
        with pytest.raises(AttestationRejected) as refused:
            recover_signer(digest, forged)
        assert refused.value.reason == "bad-signature"


# ---------------------------------------------------------------------------------------- on chain


@pytest.mark.integration
def test_local_digest_matches_eth_account_and_the_contract(ledger: Ledger) -> None:
    domain = domain_separator(ledger.deployment.chain_id, ledger.deployment.ledger)
    assert int(view(ledger, "MAX_SIGNATURE_WINDOW")[0]) == MAX_SIGNATURE_WINDOW
    assert int(view(ledger, "MAX_CID_LENGTH")[0]) == MAX_CID_LENGTH
    cases = [
        sign(ledger, os.urandom(32)),
        sign(ledger, os.urandom(32), label=LAB, stamp_type=LAB_TEST, result=2, nonce=2**255 + 7, deadline=2**256 - 1),
        {**sign(ledger, os.urandom(32), label=LAB, stamp_type=7, result=3), "report_cid": "0x" + "cd" * 128},
    ]
    for raw in cases:
        item = parse_item(body(raw), max_bytes=65536)
        local = stamp_digest(item.stamp, domain=domain)
        s = item.stamp
        fields = (s.declaration_id, s.stamp_type, s.result, s.report_sha256, s.report_cid, s.signer, s.signed_at,
                  s.nonce, s.deadline)  # fmt: skip
        onchain = view(ledger, "stampDigest", fields)[0]
        assert local == bytes(onchain)
    # the first two were signed through eth-account's encoder: the signature recovers over our digest
    for raw in cases[:2]:
        item = parse_item(body(raw), max_bytes=65536)
        assert recover_signer(stamp_digest(item.stamp, domain=domain), item.signature) == item.stamp.signer


@pytest.mark.integration
def test_a_valid_clearance_delivered_three_times_is_relayed_once_and_its_nonce_cannot_be_replayed(
    ledger: Ledger, contexts: Callable[..., OracleContext]
) -> None:
    declaration_id = declaration(ledger)
    ctx = contexts("bridge", "NL-RTM-CUSTOMS", feed_port=free_port(), interval=0.1)
    oracle = BridgeOracle(ctx)
    ctx.sync()  # what run() does before each step
    try:
        port = oracle.start_feed()
        url = f"http://127.0.0.1:{port}/v1/stamps"
        item = sign(ledger, declaration_id)  # EXPORT_CLEARANCE by the partner administration's key
        first = httpx.post(url, content=body(item), timeout=30)
        assert first.status_code == 202, first.text
        digest = first.json()["digest"]
        second = httpx.post(url, content=body(item), timeout=30)
        assert second.status_code == 409 and second.json()["reason"] == "replayed"
        (oracle.inbox / "again.json").write_bytes(body(item))
        run(oracle, max_steps=1)  # takes the drop
        assert not (oracle.inbox / "again.json").exists()
        reason_file = json.loads((oracle.inbox / "rejected" / "again.reason.json").read_text())
        assert reason_file["reason"] == "replayed" and reason_file["digest"] == digest
        settle(oracle)
        stamps = recorded_stamps(ctx, declaration_id)
        assert len(stamps) == 1
        assert stamps[0].stamp_id == item["report_sha256"] and stamps[0].stamp_type == EXPORT_CLEARANCE
        assert stamps[0].signer == item["signer"] and stamps[0].relayer.lower() == ctx.signer.lower()
        assert ctx.outbox.counts() == {"final": 1}
        state = httpx.get(f"{url}/{digest}", timeout=10).json()
        assert state["relay"] == EntryState.FINAL and state["source"].startswith("http:")
        assert int(view(ledger, "nonces", item["signer"])[0]) == 1

        # a new stamp reusing the spent nonce 0 is a replay; one ahead of the next nonce is refused too
        reused = sign(ledger, declaration_id, nonce=0)
        refused = httpx.post(url, content=body(reused), timeout=30)
        assert (refused.status_code, refused.json()["reason"]) == (409, "replayed")
        ahead = httpx.post(url, content=body(sign(ledger, declaration_id, nonce=5)), timeout=30)
        assert (ahead.status_code, ahead.json()["reason"]) == (422, "nonce-mismatch")
        assert len(recorded_stamps(ctx, declaration_id)) == 1
        assert {r["reason"] for r in oracle.rejections()} == {"replayed", "nonce-mismatch"}
    finally:
        oracle.close()


@pytest.mark.integration
def test_forged_expired_and_unauthorised_items_are_refused_with_a_reason_and_never_relayed(
    ledger: Ledger, contexts: Callable[..., OracleContext]
) -> None:
    open_id, submitted_id = declaration(ledger), declaration(ledger, accept=False)
    ctx = contexts("bridge", "NL-RTM-CUSTOMS", feed_port=free_port())
    oracle = BridgeOracle(ctx)
    now = chain_time(ledger)
    ctx.sync()
    lab_key = ctx.read.signer_key(ledger.address(LAB))
    assert lab_key is not None
    stranger = Account.create()
    tampered = sign(ledger, open_id)
    cases: dict[str, tuple[str, bytes]] = {
        "wrong key": ("bad-signature", body(sign(ledger, open_id, signing_label=LAB))),
        "tampered": ("bad-signature", body({**tampered, "result": 2})),
        "expired": ("expired", body(sign(ledger, open_id, signed_at=now - 7200, deadline=now - 60))),
        "future": ("signed-in-future", body(sign(ledger, open_id, signed_at=now + 3600, deadline=now + 7200))),
        "window": ("window-too-long", body(sign(ledger, open_id, deadline=now + MAX_SIGNATURE_WINDOW + 10))),
        "role": ("role-missing", body(sign(ledger, open_id, label=LAB))),  # an inspector may not clear exports
        "before key": ("key-not-valid-at-signing",
                       body(sign(ledger, open_id, label=LAB, stamp_type=LAB_TEST, signed_at=lab_key.valid_from - 60))),
        "not open": ("declaration-not-open", body(sign(ledger, submitted_id, label=LAB, stamp_type=LAB_TEST))),
        "malformed": ("malformed", b'{"declaration_id": 1}'),
    }  # fmt: skip
    # a stranger's key signing in its own name: a valid signature, but no registered agency key
    cases["stranger"] = (
        "unknown-signer",
        body(sign(ledger, open_id, signer=stranger.address, key=bytes(stranger.key))),
    )
    try:
        url = f"http://127.0.0.1:{oracle.start_feed()}/v1/stamps"
        for name, (reason, raw) in cases.items():
            if name in ("wrong key", "expired", "role", "stranger"):  # half through the drop directory
                (oracle.inbox / f"{name.replace(' ', '-')}.json").write_bytes(raw)
                continue
            answer = httpx.post(url, content=raw, timeout=30)
            assert (answer.status_code, answer.json()["reason"]) == (422, reason), (name, answer.text)
        huge = httpx.post(url, content=b"{" + b" " * ctx.oracle_settings.feed_max_bytes + b"}", timeout=30)
        assert (huge.status_code, huge.json()["reason"]) == (413, "too-large")
        run(oracle, max_steps=1)
        for name in ("wrong key", "expired", "role", "stranger"):
            stem = name.replace(" ", "-")
            reason_file = json.loads((oracle.inbox / "rejected" / f"{stem}.reason.json").read_text())
            assert reason_file["reason"] == cases[name][0], name
            assert (oracle.inbox / "rejected" / f"{stem}.json").exists()
        assert not list(oracle.inbox.glob("*.json")) and not list((oracle.inbox / "processed").iterdir())
        assert recorded_stamps(ctx, open_id) == [] and recorded_stamps(ctx, submitted_id) == []
        assert ctx.outbox.counts() == {}
        logged = {r["reason"] for r in oracle.rejections()}
        assert logged == {reason for reason, _ in cases.values()}
        assert logged <= set(REASONS)
    finally:
        oracle.close()
        ctx.close()

    env = dict(
        os.environ, LEDGER_VAR_DIR=str(ledger.settings.var_dir), LEDGER_ANVIL_PORT=str(ledger.settings.anvil_port)
    )
    listed = subprocess.run(
        [sys.executable, "-m", "oracles", "bridge", "rejections", "--reason", "bad-signature"],
        env=env, capture_output=True, timeout=120,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    lines = [json.loads(line) for line in listed.stdout.decode().splitlines()]
    assert len(lines) == 2 and {line["reason"] for line in lines} == {"bad-signature"}


@pytest.mark.integration
def test_an_inspectors_stamps_in_nonce_order_are_relayed_from_the_drop_and_a_failed_relay_is_logged(
    ledger: Ledger, contexts: Callable[..., OracleContext]
) -> None:
    open_id = declaration(ledger)
    ctx = contexts("bridge", "NL-RTM-CUSTOMS")
    oracle = BridgeOracle(ctx)
    ctx.sync()
    first = sign(ledger, open_id, label=LAB, stamp_type=LAB_TEST)
    second = sign(ledger, open_id, label=LAB, stamp_type=1, nonce=first["nonce"] + 1)
    (oracle.inbox / "a.json").write_bytes(body(first))
    (oracle.inbox / "b.json").write_bytes(body(second))
    assert oracle.step() == 2  # both accepted before either is mined: the second's nonce follows the first
    assert sorted(p.name for p in (oracle.inbox / "processed").iterdir()) == ["a.json", "b.json"]
    settle(oracle)
    assert [s.stamp_id for s in recorded_stamps(ctx, open_id)] == [first["report_sha256"], second["report_sha256"]]

    # the chain moves on under an item in flight: accepted (not simulated: its signer has one in flight),
    # its declaration then released, so its relay fails on chain; the failure lands in the rejection log
    third = sign(ledger, open_id, label=LAB, stamp_type=LAB_TEST, nonce=first["nonce"] + 2)
    fourth = sign(ledger, open_id, label=LAB, stamp_type=4, nonce=first["nonce"] + 3)
    later_id = declaration(ledger)
    blocked = sign(ledger, later_id, label=LAB, stamp_type=LAB_TEST, nonce=first["nonce"] + 3)
    assert oracle.submit(body(third), source="test").status == "accepted"
    reject = ledger.client.decide(signer=ledger.address(CUSTOMS), declaration_id=later_id, kind=2, reason_code=1,
                                  report_sha256=os.urandom(32))  # fmt: skip
    ledger.client.wait(reject)  # REJECTED: no more stamps on it
    assert oracle.submit(body(blocked), source="test").status == "accepted"
    settle(oracle)
    failed = [r for r in oracle.rejections() if r["source"] == "test"]
    assert [(r["reason"], r["stamp_id"]) for r in failed] == [("declaration-not-open", blocked["report_sha256"])]
    again = oracle.submit(body(blocked), source="again")
    assert (again.status, again.reason) == ("rejected", "declaration-not-open")
    # the nonce was not spent by the failed relay: the next stamp takes it
    assert oracle.submit(body(fourth), source="test").status == "accepted"
    settle(oracle)
    assert len(recorded_stamps(ctx, open_id)) == 4 and recorded_stamps(ctx, later_id) == []
    assert ctx.outbox.counts() == {"final": 4, "failed": 1}

    # the CLI: one item checked and relayed now (exit 0), the same again refused as a replay (exit 1)
    fifth = sign(ledger, open_id, label=LAB, stamp_type=LAB_TEST)
    item_file = ledger.settings.var_dir / "fifth.json"
    item_file.write_bytes(body(fifth))
    oracle.close()
    ctx.close()
    env = dict(
        os.environ, LEDGER_VAR_DIR=str(ledger.settings.var_dir), LEDGER_ANVIL_PORT=str(ledger.settings.anvil_port)
    )
    command = [sys.executable, "-m", "oracles", "bridge", "submit", str(item_file)]
    first_try = subprocess.run(command, env=env, capture_output=True, timeout=120)
    assert first_try.returncode == 0, first_try.stderr
    assert json.loads(first_try.stdout)["status"] == "accepted"
    second_try = subprocess.run(command, env=env, capture_output=True, timeout=120)
    assert second_try.returncode == 1 and json.loads(second_try.stdout)["reason"] == "replayed"
    assert int(view(ledger, "nonces", ledger.address(LAB))[0]) == fifth["nonce"] + 1


@pytest.mark.integration
@pytest.mark.faults
def test_a_crash_between_remembering_an_item_and_journaling_its_relay_still_relays_it_once(
    ledger: Ledger, contexts: Callable[..., OracleContext]
) -> None:
    declaration_id = declaration(ledger)
    first_life = BridgeOracle(contexts("bridge", "NL-RTM-CUSTOMS"))
    first_life.ctx.sync()
    item = sign(ledger, declaration_id)

    def killed(*_args: Any, **_kwargs: Any) -> Any:
        raise KeyboardInterrupt("SIGKILL stand-in: the process dies before journaling the relay")

    first_life.ctx.post = killed  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        first_life.submit(body(item), source="http:test")
    assert first_life.ctx.state.get("pending"), "the item was remembered before the crash"
    assert first_life.ctx.outbox.counts() == {}
    first_life.close()
    first_life.ctx.close()

    second_life = BridgeOracle(contexts("bridge", "NL-RTM-CUSTOMS"))  # same state directory
    second_life.ctx.sync()
    again = second_life.submit(body(item), source="http:test")  # the partner retries meanwhile
    assert again.status in ("accepted", "replayed")
    settle(second_life)
    assert len(recorded_stamps(second_life.ctx, declaration_id)) == 1
    assert int(view(ledger, "nonces", item["signer"])[0]) == 1
    assert second_life.ctx.outbox.counts() == {"final": 1}
    # the signer's next stamp is not held behind a ghost
    nxt = sign(ledger, declaration_id)
    assert second_life.submit(body(nxt), source="http:test").status == "accepted"
    settle(second_life)
    assert len(recorded_stamps(second_life.ctx, declaration_id)) == 2
    second_life.close()


@pytest.mark.integration
def test_a_symlink_dropped_in_the_inbox_is_never_followed(
    ledger: Ledger, contexts: Callable[..., OracleContext], tmp_path: Any
) -> None:
    declaration_id = declaration(ledger)
    oracle = BridgeOracle(contexts("bridge", "NL-RTM-CUSTOMS"))
    outside = tmp_path / "elsewhere.json"
    outside.write_bytes(body(sign(ledger, declaration_id)))  # a valid item, but not dropped by the partner
    (oracle.inbox / "link.json").symlink_to(outside)
    try:
        run(oracle, max_steps=1)
        reason = json.loads((oracle.inbox / "rejected" / "link.reason.json").read_text())
        assert reason["status"] == "rejected" and reason["reason"] == "malformed"
        assert oracle.ctx.outbox.counts() == {} and outside.exists()
        assert len(recorded_stamps(oracle.ctx, declaration_id)) == 0
    finally:
        oracle.close()


@pytest.mark.integration
def test_a_flood_of_junk_keeps_the_newest_rejections(
    contexts: Callable[..., OracleContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    import oracles.bridge

    monkeypatch.setattr(oracles.bridge, "MAX_REJECTIONS_KEPT", 3)
    oracle = BridgeOracle(contexts("bridge", "NL-RTM-CUSTOMS"))
    try:
        for n in range(7):
            assert oracle.submit(f"junk {n}".encode(), source="http:flood").status == "rejected"
            time.sleep(0.002)
        kept = oracle.rejections()
        assert [r["id"] for r in kept] == ["0x" + hashlib.sha256(f"junk {n}".encode()).hexdigest()
                                           for n in (4, 5, 6)]  # fmt: skip
        assert oracle.status()["rejections"] == 3 and oracle.status()["rejections_not_kept"] == 4
    finally:
        oracle.close()
