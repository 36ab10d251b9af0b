"""Declarations over HTTP: a trader sees only its own, customs only its jurisdiction's, others nothing."""

from __future__ import annotations

import hashlib
import time

import pytest
from fastapi.testclient import TestClient
from web3 import Web3

from ledger_api.api.auth import sign_request
from ledger_api.api.service import build_service
from ledger_api.chain.artifacts import load_artifact
from ledger_api.chain.deploy import Deployment, agency_id_bytes
from ledger_api.chain.keystore import Keystore
from ledger_api.config import Settings

pytestmark = pytest.mark.integration
BASE = "http://ledger.test"


def _send(w3: Web3, account: object, call: object, chain_id: int) -> None:
    tx = call.build_transaction(  # type: ignore[attr-defined]
        {"from": account.address, "nonce": w3.eth.get_transaction_count(account.address), "chainId": chain_id}  # type: ignore[attr-defined]
    )
    signed = account.sign_transaction(tx)  # type: ignore[attr-defined]
    assert w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))["status"] == 1


def test_declarations_are_visible_to_their_parties_only(deployed: tuple[Settings, Deployment]) -> None:
    settings, record = deployed
    keys = Keystore.from_settings(settings)
    w3 = Web3(Web3.HTTPProvider(settings.effective_rpc_url))
    ledger = w3.eth.contract(address=record.ledger, abi=load_artifact("ClearanceLedger").abi)
    owner, other = keys.signer("trader-tj-electronics"), keys.signer("trader-tj-foods")
    declaration = hashlib.sha256(b"declaration LRN-900").digest()
    cid = b"\x01\x55\x12\x20" + declaration
    lrn = hashlib.sha256(b"LRN-900").digest()
    submit = ledger.functions.submitDeclaration(agency_id_bytes("CN-TJ-CUSTOMS"), lrn, declaration, cid, [])
    _send(w3, owner, submit, record.chain_id)
    customs = keys.signer("cn-tj-customs-signer-0")
    _send(
        w3,
        customs,
        ledger.functions.acceptDeclaration(declaration, hashlib.sha256(b"MRN-900").digest()),
        record.chain_id,
    )
    did = "0x" + declaration.hex()

    def get(client: TestClient, path: str, key: bytes) -> object:
        url = BASE + path
        return client.get(url, headers=sign_request(method="GET", url=url, headers={}, body=b"", private_key=key))

    with TestClient(build_service(settings, record), base_url=BASE) as client:
        for _ in range(100):  # the indexer thread catches up
            mine = get(client, "/v1/declarations", bytes(owner.key)).json()  # type: ignore[attr-defined]
            if mine and mine[0]["status"] == "ACCEPTED":
                break
            time.sleep(0.1)
        assert [d["declaration_id"] for d in mine] == [did] and mine[0]["mrn"] is not None
        timeline = get(client, f"/v1/declarations/{did}/timeline", bytes(owner.key)).json()  # type: ignore[attr-defined]
        assert [e["name"] for e in timeline] == ["DeclarationSubmitted", "DeclarationAccepted"]

        assert get(client, "/v1/declarations", bytes(other.key)).json() == []  # type: ignore[attr-defined]
        for key in (other, keys.signer("nl-rtm-customs-signer-0"), keys.signer("cn-tj-ciq-lab-signer-0")):
            hidden = get(client, f"/v1/declarations/{did}", bytes(key.key))
            assert hidden.status_code == 404 and hidden.json()["code"] == "declaration-not-found"  # type: ignore[attr-defined]
        jurisdiction = get(client, f"/v1/declarations/{did}", bytes(customs.key))
        assert jurisdiction.status_code == 200 and jurisdiction.json()["status"] == "ACCEPTED"  # type: ignore[attr-defined]
        listing = get(client, "/v1/declarations", bytes(customs.key))
        assert listing.status_code == 403 and listing.json()["code"] == "forbidden"  # type: ignore[attr-defined]
        unknown = get(client, f"/v1/declarations/0x{'00' * 32}", bytes(owner.key))
        assert unknown.status_code == 404  # type: ignore[attr-defined]
