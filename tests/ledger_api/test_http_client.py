"""The typed client against the real service over TCP (uvicorn), on a real chain."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn
from web3 import Web3

from ledger_api.api.service import build_service
from ledger_api.chain.artifacts import load_artifact
from ledger_api.chain.deploy import Deployment, agency_id_bytes
from ledger_api.chain.keystore import Keystore
from ledger_api.client import ApiProblem, LedgerHttpClient
from ledger_api.config import Settings

pytestmark = pytest.mark.integration


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_client_verifies_a_file_streamed_over_http(tmp_path: Path, deployed: tuple[Settings, Deployment]) -> None:
    settings, record = deployed
    document = tmp_path / "certificate-of-origin.pdf"
    document.write_bytes(b"%PDF-1.7 certificate of origin, consignment 2026/0042\n" * 60_000)  # ~3 MB
    sha = hashlib.sha256(document.read_bytes()).digest()
    server: uvicorn.Server | None = None
    try:
        keys = Keystore.from_settings(settings)
        w3 = Web3(Web3.HTTPProvider(settings.effective_rpc_url))
        ledger = w3.eth.contract(address=record.ledger, abi=load_artifact("ClearanceLedger").abi)
        trader = keys.signer("trader-rtm-importer")
        call = ledger.functions.submitDeclaration(
            agency_id_bytes("NL-RTM-CUSTOMS"), hashlib.sha256(b"LRN-7").digest(), hashlib.sha256(b"decl-7").digest(),
            b"\x01\x55\x12\x20" + sha, [(3, sha, b"\x01\x55\x12\x20" + sha)],
        )  # fmt: skip
        tx = call.build_transaction({"from": trader.address, "nonce": 0, "chainId": record.chain_id})
        w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(trader.sign_transaction(tx).raw_transaction))

        port = _port()
        server = uvicorn.Server(uvicorn.Config(build_service(settings, record), port=port, log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        base = f"http://127.0.0.1:{port}"
        partner = bytes(keys.signer("nl-rtm-customs-signer-0").key)
        with LedgerHttpClient(base_url=base, private_key=partner) as client:
            for _ in range(100):
                try:
                    if client.health()["checks"]["index"].get("lagBlocks") == 0:
                        break
                except Exception:  # not listening yet
                    pass
                time.sleep(0.1)
            verdict = client.verify_file(document)
            assert verdict["sha256"] == "0x" + sha.hex() and verdict["anchored_as"] == "supporting_document"
            assert client.verify_hash("0x" + sha.hex())["declaration_status"] == "SUBMITTED"
        with LedgerHttpClient(base_url=base, private_key=bytes(trader.key)) as as_trader:
            with pytest.raises(ApiProblem) as refused:
                as_trader.verify_hash("0x" + sha.hex())
            assert refused.value.status == 403 and refused.value.problem_code == "forbidden"
    finally:
        if server is not None:
            server.should_exit = True
            time.sleep(0.5)
