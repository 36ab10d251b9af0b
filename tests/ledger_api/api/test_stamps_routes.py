"""Inspection stamps over HTTP: reports sealed and anchored, EIP-712 stamps relayed, revocation by the issuer.

A real anvil with the default consortium and the service under uvicorn (the ``service`` fixture).
"""

from __future__ import annotations

import os
from functools import partial
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from web3 import Web3

from ledger_api.chain.artifacts import load_artifact
from tests.ledger_api.api.conftest import Service
from tests.ledger_api.api.test_customs_routes import (
    AUDIT,
    CN_CUSTOMS,
    LAB,
    NL_CUSTOMS,
    NVWA,
    OTHER_TRADER,
    OWNER,
    RISK,
    ZERO_ID,
    accepted_declaration,
    problem,
    settle,
    sha,
    timeline_names,
    writes_of,
)

pytestmark = pytest.mark.integration

STAMP_TYPE = {"DOCUMENT_CHECK": 0, "PHYSICAL_EXAM": 1, "LAB_TEST": 3, "EXPORT_CLEARANCE": 5}
RESULT = {"PASS": 1, "FAIL": 2, "INCONCLUSIVE": 3}
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


@pytest.fixture(scope="module")
def ledger(service: Service) -> Any:
    """The ClearanceLedger contract (web3), for nonces, chain time and the contract's own EIP-712 digest."""
    w3 = Web3(Web3.HTTPProvider(service.settings.effective_rpc_url))
    return w3.eth.contract(address=service.deployment.ledger, abi=load_artifact("ClearanceLedger").abi)


def raw_cid(report: bytes) -> str:
    """A binary CIDv1 (raw, sha2-256) of ``report``, 0x-hex."""
    return "0x01551220" + sha(report)[2:]


def signed_stamp(
    service: Service, ledger: Any, declaration_id: str, report: bytes, *, inspector: str = NVWA,
    signing_key: str | None = None, stamp_type: str = "PHYSICAL_EXAM", result: str = "PASS",
) -> dict[str, Any]:  # fmt: skip
    """The JSON body of ``POST /v1/stamps/signed``: a stamp signed off-line by ``inspector``'s key
    (or, to forge one, by ``signing_key`` while naming ``inspector`` as the signer)."""
    signer = service.address(inspector)
    signed_at = int(ledger.w3.eth.get_block("latest")["timestamp"])
    message = {
        "declarationId": bytes.fromhex(declaration_id[2:]), "stampType": STAMP_TYPE[stamp_type],
        "result": RESULT[result], "reportSha256": bytes.fromhex(sha(report)[2:]),
        "reportCid": bytes.fromhex(raw_cid(report)[2:]), "signer": signer, "signedAt": signed_at,
        "nonce": int(ledger.functions.nonces(signer).call()), "deadline": signed_at + 3600,
    }  # fmt: skip
    domain = {"name": "ClearanceLedger", "version": "1", "chainId": service.deployment.chain_id,
              "verifyingContract": service.deployment.ledger}  # fmt: skip
    typed = encode_typed_data(full_message={"types": EIP712_TYPES, "primaryType": "Stamp", "domain": domain,
                                            "message": message})  # fmt: skip
    signed = Account.sign_message(typed, bytes(service.keystore.signer(signing_key or inspector).key))
    assert bytes(signed.message_hash) == bytes(ledger.functions.stampDigest(tuple(message.values())).call())
    return {
        "declaration_id": declaration_id, "stamp_type": stamp_type, "result": result, "report_sha256": sha(report),
        "report_cid": raw_cid(report), "signer": signer, "signed_at": signed_at, "nonce": message["nonce"],
        "deadline": message["deadline"], "signature": "0x" + bytes(signed.signature).hex(),
    }  # fmt: skip


def report(label: str) -> bytes:
    """A fresh inspection report."""
    return f"%PDF inspection report {label} ".encode() + os.urandom(16)


# ---------------------------------------------------------------------------------------- flows


def test_a_lab_stamp_is_sealed_for_lab_and_jurisdiction_anchored_once_and_revocable(service: Service) -> None:
    lab, customs = service.client(LAB), service.client(CN_CUSTOMS)
    declaration_id = accepted_declaration(service, "LRN-STAMP-1")
    content = report("S-1")
    stamp = lab.record_stamp(declaration_id, stamp_type="LAB_TEST", result="FAIL", report=content)
    assert stamp["stamp_id"] == sha(content) and stamp["declaration_id"] == declaration_id
    retry = lab.record_stamp(declaration_id, stamp_type="LAB_TEST", result="FAIL", report=content)
    assert retry["tracking_id"] == stamp["tracking_id"]  # default key: the stamp id
    other_result = partial(lab.record_stamp, declaration_id, stamp_type="LAB_TEST", result="PASS", report=content)
    assert problem(other_result) == (409, "idempotency-conflict")
    assert settle(lab, stamp)["anchor"] == sha(content)
    service.until(lambda: "StampRecorded" in timeline_names(customs, declaration_id))
    recorded = customs.timeline(declaration_id)[-1]["args"]
    assert recorded["result"] == RESULT["FAIL"] and recorded["stampType"] == STAMP_TYPE["LAB_TEST"]
    assert int(recorded["relayer"], 16) == 0  # recorded directly

    writes = writes_of(service)
    envelope = writes.vault.get(bytes.fromhex(stamp["stamp_id"][2:]))
    assert envelope is not None and sorted(envelope.keyring.agencies) == ["CN-TJ-CIQ-LAB", "CN-TJ-CUSTOMS"]
    assert "0x" + envelope.cid_bytes().hex() == recorded["reportCid"]
    assert content not in writes.vault.store.read(envelope.cid)

    release = {"kind": "RELEASE", "reason_code": 1, "pass_stamps": [stamp["stamp_id"]]}
    cite = partial(customs.post_json, f"/v1/declarations/{declaration_id}/decisions", release)
    assert problem(cite) == (422, "invalid-submission")  # a FAIL stamp is no PASS

    revocation = lab.post_json(f"/v1/stamps/{stamp['stamp_id']}/revocation", {"reason_code": 7})
    assert revocation["stamp_id"] == stamp["stamp_id"] and revocation["declaration_id"] == declaration_id
    again = lab.post_json(f"/v1/stamps/{stamp['stamp_id']}/revocation", {"reason_code": 7})
    assert again["tracking_id"] == revocation["tracking_id"]
    settle(lab, revocation)
    twice = lab.post_json(f"/v1/stamps/{stamp['stamp_id']}/revocation", {"reason_code": 8})  # another request
    assert settle(lab, twice, status="failed")["error"]["error"] == "ClearanceLedgerStampAlreadyRevoked"
    service.until(lambda: "StampRevoked" in timeline_names(customs, declaration_id))
    assert customs.timeline(declaration_id)[-1]["args"]["reasonCode"] == 7
    assert problem(cite) == (422, "invalid-submission")  # nor is a revoked one


def test_a_signed_stamp_is_relayed_by_another_agency_and_the_contract_checks_the_signature(
    service: Service, ledger: Any
) -> None:
    relayer, customs = service.client(AUDIT), service.client(CN_CUSTOMS)
    declaration_id = accepted_declaration(service, "LRN-SIGNED-1")
    content = report("SIGNED-1")
    body = signed_stamp(service, ledger, declaration_id, content)
    relayed = relayer.post_json("/v1/stamps/signed", body)
    assert relayed["stamp_id"] == sha(content) and relayed["declaration_id"] == declaration_id
    assert relayer.post_json("/v1/stamps/signed", body)["tracking_id"] == relayed["tracking_id"]
    assert settle(relayer, relayed)["function"] == "relayStamp"
    service.until(lambda: "StampRecorded" in timeline_names(customs, declaration_id))
    recorded = customs.timeline(declaration_id)[-1]["args"]
    assert recorded["signer"] == service.address(NVWA) and recorded["relayer"] == service.address(AUDIT)
    assert recorded["signedAt"] == body["signed_at"] and recorded["stampType"] == STAMP_TYPE["PHYSICAL_EXAM"]

    # Well-formed but signed by another key than the one it names: journaled, refused by the contract.
    forged = signed_stamp(service, ledger, declaration_id, report("FORGED"), signing_key=LAB)
    failed = settle(relayer, relayer.post_json("/v1/stamps/signed", forged), status="failed")
    assert failed["error"]["error"] == "ClearanceLedgerInvalidSignature"


# ---------------------------------------------------------------------------------------- authorization


def test_authorization_matrix_of_the_stamp_routes(service: Service, ledger: Any) -> None:
    declaration_id = accepted_declaration(service, "LRN-STAMP-MATRIX")
    writes = writes_of(service)
    forbidden, hidden = (403, "forbidden"), (404, "stamp-not-found")

    def stamp_as(label: str, stamp_type: str = "LAB_TEST") -> dict[str, Any]:
        client = service.client(label)
        return client.record_stamp(declaration_id, stamp_type=stamp_type, result="PASS", report=report(label))

    before = writes.outbox.counts()
    for label in (OWNER, OTHER_TRADER, CN_CUSTOMS, NL_CUSTOMS, RISK, AUDIT):
        assert problem(partial(stamp_as, label)) == forbidden, label
    assert problem(partial(stamp_as, LAB, "EXPORT_CLEARANCE")) == forbidden  # needs PARTNER_CUSTOMS
    assert writes.outbox.counts() == before

    stamps = {label: stamp_as(label) for label in (LAB, NVWA)}
    stamps["export"] = stamp_as(NL_CUSTOMS, "EXPORT_CLEARANCE")  # partner customs issue export clearances
    for label, accepted in stamps.items():
        client = service.client(NL_CUSTOMS if label == "export" else label)
        settle(client, accepted)
    export_envelope = writes.vault.get(bytes.fromhex(stamps["export"]["stamp_id"][2:]))
    assert export_envelope is not None
    assert sorted(export_envelope.keyring.agencies) == ["CN-TJ-CUSTOMS", "NL-RTM-CUSTOMS"]

    # Relaying: any agency key (its signature is the inspector's), never a trader.
    for label in (CN_CUSTOMS, NL_CUSTOMS, LAB, NVWA, RISK, AUDIT):
        body = signed_stamp(service, ledger, declaration_id, report(f"relayed-by-{label}"))
        settle(service.client(label), service.client(label).post_json("/v1/stamps/signed", body))
    body = signed_stamp(service, ledger, declaration_id, report("relayed-by-a-trader"))
    for label in (OWNER, OTHER_TRADER):
        assert problem(partial(service.client(label).post_json, "/v1/stamps/signed", body)) == forbidden

    # Revocation: only the issuing agency; anyone else's stamp is not found.
    lab_stamp = stamps[LAB]["stamp_id"]
    service.until(lambda: lab_stamp in str(service.client(CN_CUSTOMS).timeline(declaration_id)))
    path = f"/v1/stamps/{lab_stamp}/revocation"
    before = writes.outbox.counts()
    for label, expected in ((OWNER, forbidden), (OTHER_TRADER, forbidden), (CN_CUSTOMS, hidden), (NL_CUSTOMS, hidden),
                            (NVWA, hidden), (RISK, hidden), (AUDIT, hidden)):  # fmt: skip
        assert problem(partial(service.client(label).post_json, path, {"reason_code": 1})) == expected, label
    assert writes.outbox.counts() == before
    settle(service.client(LAB), service.client(LAB).post_json(path, {"reason_code": 1}))


# ---------------------------------------------------------------------------------------- bad input


def test_malformed_stamp_requests_are_refused_precisely_and_nothing_is_journaled(service: Service, ledger: Any) -> None:
    lab = service.client(LAB)
    declaration_id = accepted_declaration(service, "LRN-STAMP-BAD")
    writes = writes_of(service)
    before = writes.outbox.counts()
    invalid, unfit = (422, "invalid-request"), (422, "invalid-submission")
    fields = {"declaration_id": declaration_id, "stamp_type": "LAB_TEST", "result": "PASS"}
    a_report = [("report", ("report.pdf", b"%PDF report", "application/pdf"))]

    def form(data: dict[str, str | list[str]], files: list[tuple[str, tuple[str, bytes, str]]]) -> object:
        return lab.post_form("/v1/stamps", data=data, files=files)

    form_cases: list[tuple[dict[str, str | list[str]], list[tuple[str, tuple[str, bytes, str]]], tuple[int, str]]] = [
        ({**fields}, [], unfit),  # no file at all: not even multipart
        ({**fields}, [("document", ("report.pdf", b"%PDF", "application/pdf"))], unfit),  # no 'report' part
        ({**fields}, a_report * 2, unfit),
        ({**fields}, [("report", ("empty.pdf", b"", "application/pdf"))], unfit),
        ({**fields, "stamp_type": "BOGUS"}, a_report, unfit),
        ({**fields, "stamp_type": "3"}, a_report, unfit),
        ({**fields, "result": "NONE"}, a_report, unfit),
        ({**fields, "declaration_id": "0x1234"}, a_report, unfit),
        ({**fields, "declaration_id": ["0x" + "11" * 32, "0x" + "22" * 32]}, a_report, unfit),
        ({"stamp_type": "LAB_TEST", "result": "PASS"}, a_report, unfit),
        ({**fields, "note": "extra"}, a_report, unfit),
        ({**fields, "declaration_id": ZERO_ID}, a_report, (404, "declaration-not-found")),
    ]  # fmt: skip
    for data, files, expected in form_cases:
        assert problem(partial(form, data, files)) == expected, (data, files)
    json_body = partial(lab.post_json, "/v1/stamps", {**fields, "report": "inline"})
    assert problem(json_body) == unfit
    limit = writes.max_document
    writes.max_document = 64
    try:
        big = [("report", ("big.pdf", b"x" * 65, "application/pdf"))]
        assert problem(partial(form, fields, big)) == unfit
    finally:
        writes.max_document = limit

    good = signed_stamp(service, ledger, declaration_id, report("BAD-relay"))
    signature = bytes.fromhex(good["signature"][2:])
    r, s = signature[:32], int.from_bytes(signature[32:64], "big")
    high_s = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - signature[64]])
    mixed = good["signer"][:2] + good["signer"][2:].swapcase()
    relay_cases: list[tuple[dict[str, Any], tuple[int, str]]] = [
        ({"signature": "0x" + "zz" * 65}, invalid),
        ({"signature": good["signature"][:-2]}, invalid),  # 64 bytes
        ({"signature": "0x" + high_s.hex()}, invalid),  # the malleable twin
        ({"signature": good["signature"][:-2] + "01"}, invalid),  # v must be 27 or 28
        ({"deadline": good["signed_at"] + 31 * 24 * 3600}, invalid),
        ({"deadline": good["signed_at"] - 1}, invalid),
        ({"signer": mixed}, invalid),  # mixed case with a wrong EIP-55 checksum
        ({"report_cid": "0x1234"}, invalid),
        ({"report_cid": "0x" + "01" * 129}, invalid),
        ({"report_sha256": ZERO_ID}, invalid),
        ({"stamp_type": "BOGUS"}, invalid),
        ({"stamp_type": 1}, invalid),
        ({"nonce": -1}, invalid),
        ({"nonce": "0"}, invalid),
        ({"extra": True}, invalid),
        ({"signer": "0x" + "12" * 20}, unfit),  # no such key
        ({"signer": service.address(CN_CUSTOMS)}, unfit),  # not an inspection agency's key
        ({"stamp_type": "EXPORT_CLEARANCE"}, unfit),  # NVWA is no partner customs
        ({"declaration_id": ZERO_ID}, (404, "declaration-not-found")),
    ]
    for change, expected in relay_cases:
        body = {**good, **change}
        assert problem(partial(lab.post_json, "/v1/stamps/signed", body)) == expected, change
    missing = {k: v for k, v in good.items() if k != "signature"}
    assert problem(partial(lab.post_json, "/v1/stamps/signed", missing)) == invalid

    for path, body, expected in [
        ("/v1/stamps/0x1234/revocation", {"reason_code": 1}, invalid),
        (f"/v1/stamps/{ZERO_ID}/revocation", {"reason_code": 65536}, invalid),
        (f"/v1/stamps/{ZERO_ID}/revocation", {"reason_code": "1"}, invalid),
        (f"/v1/stamps/{ZERO_ID}/revocation", {}, invalid),
        (f"/v1/stamps/{ZERO_ID}/revocation", {"reason_code": 1}, (404, "stamp-not-found")),
    ]:
        assert problem(partial(lab.post_json, path, body)) == expected, (path, body)
    assert writes.outbox.counts() == before
