"""Verification over HTTP on a real chain: by hash, by streamed upload, and every refusal."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from web3 import Web3

from ledger_api.api.auth import sign_request
from ledger_api.api.service import build_service
from ledger_api.chain.artifacts import load_artifact
from ledger_api.chain.deploy import Deployment, agency_id_bytes
from ledger_api.chain.keystore import Keystore
from ledger_api.config import Settings
from ledger_api.errors import EvidenceError

pytestmark = pytest.mark.integration
BASE = "http://ledger.test"
INVOICE = b"COMMERCIAL INVOICE 2026-0042\nconsignee: Rotterdam Importer BV\ntotal: 18,400.00 EUR\n" * 50


def _cid(data: bytes) -> bytes:
    return bytes([0x01, 0x55, 0x12, 0x20]) + hashlib.sha256(data).digest()


def _anchor_invoice(settings: Settings, record: Deployment, reference: str) -> tuple[Web3, Any, bytes, bytes]:
    """Submit a declaration listing INVOICE straight to the contract (trader key, nonce 0); returns
    (w3, the trader account, the declaration id, the invoice's sha256)."""
    w3 = Web3(Web3.HTTPProvider(settings.effective_rpc_url))
    ledger = w3.eth.contract(address=record.ledger, abi=load_artifact("ClearanceLedger").abi)
    trader = Keystore.from_settings(settings).signer("trader-tj-electronics")
    declaration = hashlib.sha256(f"canonical declaration {reference}".encode()).digest()
    invoice_sha = hashlib.sha256(INVOICE).digest()
    call = ledger.functions.submitDeclaration(
        agency_id_bytes("CN-TJ-CUSTOMS"), hashlib.sha256(reference.encode()).digest(), declaration,
        _cid(b"envelope"), [(1, invoice_sha, _cid(INVOICE))],
    )  # fmt: skip
    tx = call.build_transaction({"from": trader.address, "nonce": 0, "chainId": record.chain_id})
    w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(trader.sign_transaction(tx).raw_transaction))
    return w3, trader, declaration, invoice_sha


def test_agencies_verify_documents_by_hash_and_by_upload(deployed: tuple[Settings, Deployment]) -> None:
    settings, record = deployed
    keys = Keystore.from_settings(settings)
    w3, trader, declaration, invoice_sha = _anchor_invoice(settings, record, "LRN-42")

    lab = bytes(keys.signer("cn-tj-ciq-lab-signer-0").key)
    with TestClient(build_service(settings, record), base_url=BASE) as client:
        by_hash = f"{BASE}/v1/verify/0x{invoice_sha.hex()}"
        for _ in range(50):  # the indexer thread catches up
            body = client.get(by_hash, headers=sign_request(method="GET", url=by_hash, headers={}, body=b"",
                                                           private_key=lab)).json()  # fmt: skip
            if body.get("status") != "NOT_ANCHORED":
                break
            time.sleep(0.1)
        assert body["anchored_as"] == "supporting_document" and body["declaration_id"] == "0x" + declaration.hex()
        assert body["status"] == "VALID_WITH_WARNINGS" and body["declaration_status"] == "SUBMITTED"
        assert [c["step"] for c in body["checks"]][:8] == [1, 2, 3, 4, 5, 6, 7, 8]

        upload = f"{BASE}/v1/verify"
        headers = {"content-type": "application/octet-stream"}
        headers |= sign_request(method="POST", url=upload, headers=headers, body=INVOICE, private_key=lab)
        streamed = client.post(upload, content=iter([INVOICE[:1000], INVOICE[1000:]]), headers=headers)
        assert streamed.status_code == 200 and streamed.json()["sha256"] == "0x" + invoice_sha.hex()

        forged = {"content-type": "application/octet-stream"}
        forged |= sign_request(method="POST", url=upload, headers=forged, body=INVOICE, private_key=lab)
        tampered = client.post(upload, content=INVOICE.replace(b"18,400", b"1,840"), headers=forged)
        assert tampered.status_code == 401 and tampered.json()["code"] == "signature-invalid"

        unknown = f"{BASE}/v1/verify/0x{'00' * 32}"
        nobody = client.get(unknown, headers=sign_request(method="GET", url=unknown, headers={}, body=b"",
                                                          private_key=lab)).json()  # fmt: skip
        assert nobody["status"] == "NOT_ANCHORED"

        as_trader = sign_request(method="GET", url=by_hash, headers={}, body=b"", private_key=bytes(trader.key))
        assert client.get(by_hash, headers=as_trader).json()["code"] == "forbidden"
        assert client.get(by_hash).status_code == 401
        bad = f"{BASE}/v1/verify/not-a-hash"
        refused = client.get(bad, headers=sign_request(method="GET", url=bad, headers={}, body=b"", private_key=lab))
        assert refused.status_code == 422 and refused.json()["code"] == "invalid-request"


def test_evidence_bundles_over_http_verify_offline_and_refusals_are_problems(
    deployed: tuple[Settings, Deployment],
) -> None:
    from ledger_api.api.routes import evidence as evidence_route
    from ledger_api.verify.evidence import TrustedDeployment, verify_bundle

    settings, record = deployed
    keys = Keystore.from_settings(settings)
    w3, trader, declaration, invoice_sha = _anchor_invoice(settings, record, "LRN-43")

    partner = bytes(keys.signer("nl-rtm-customs-signer-0").key)

    def get(client: TestClient, path: str, key: bytes = partner) -> Any:
        url = f"{BASE}{path}"
        return client.get(url, headers=sign_request(method="GET", url=url, headers={}, body=b"", private_key=key))

    with TestClient(build_service(settings, record, writes=False), base_url=BASE) as client:
        answer = get(client, f"/v1/evidence/0x{invoice_sha.hex()}")
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/json")
        assert "attachment" in answer.headers["content-disposition"]
        bundle = answer.content
        last = int(json.loads(bundle)["blocks"][-1]["header"]["number"], 16)
        trusted = w3.eth.get_block(last)["hash"].to_0x_hex()  # from our own node, not from the bundle
        report = verify_bundle(
            bundle, trusted_block=trusted, document=INVOICE,
            deployment=TrustedDeployment(chain_id=record.chain_id, registry=record.registry, ledger=record.ledger,
                                         deployment_block=record.deployment_block),
        )  # fmt: skip
        assert report.anchored_as == "supporting_document" and report.declaration_id == "0x" + declaration.hex()
        assert report.verdict_status == "VALID_WITH_WARNINGS"  # submitted, not yet accepted
        with pytest.raises(EvidenceError):
            verify_bundle(bundle, trusted_block=trusted, document=INVOICE.replace(b"18,400", b"1,840"))

        unknown = get(client, f"/v1/evidence/0x{'00' * 32}")
        assert unknown.status_code == 404 and unknown.json()["code"] == "evidence-export"
        assert get(client, f"/v1/evidence/0x{invoice_sha.hex()}", bytes(trader.key)).json()["code"] == "forbidden"

        # A chain too long for one bundle is refused before any header is read.
        from ledger_api.audit import _evidence

        fetched: list[str] = []
        real_batch = _evidence.JsonRpc.batch

        def counting(self: Any, calls: Any) -> Any:
            fetched.extend(method for method, _ in calls)
            return real_batch(self, calls)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(_evidence, "MAX_BUNDLE_BYTES", 10_000)
            patch.setattr(_evidence.JsonRpc, "batch", counting)
            too_long = get(client, f"/v1/evidence/0x{invoice_sha.hex()}")
        assert too_long.status_code == 413 and too_long.json()["code"] == "bundle-too-large"
        assert "eth_getBlockByNumber" not in fetched

        with evidence_route._EXPORTING:  # another export in progress
            busy = get(client, f"/v1/evidence/0x{invoice_sha.hex()}")
        assert busy.status_code == 503 and busy.json()["code"] == "export-busy" and busy.headers["retry-after"]
