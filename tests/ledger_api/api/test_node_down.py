"""The chain node goes away: writes are accepted as pending, reads keep working, health is degraded;
everything completes when the node comes back."""

from __future__ import annotations

import hashlib
import time

import httpx
import pytest

from ledger_api.api.service import build_service
from ledger_api.chain.deploy import Deployment
from ledger_api.chain.keystore import Keystore
from ledger_api.chain.node import AnvilNode
from ledger_api.client import LedgerHttpClient
from ledger_api.config import Settings
from tests._support.recovery import record_recovery
from tests.ledger_api.api.conftest import Service, serve

pytestmark = pytest.mark.integration


@pytest.mark.faults
def test_writes_queue_and_reads_continue_while_the_node_is_down(deployed: tuple[Settings, Deployment]) -> None:
    settings, record = deployed
    settings = settings.model_copy(update={"rate_limit_enabled": False})
    keys = Keystore.from_settings(settings)
    app = build_service(settings, record)
    node = AnvilNode(state_dir=settings.var_dir / "anvil", port=settings.anvil_port)
    with serve(app) as base:
        helper = Service(settings=settings, deployment=record, keystore=keys, app=app, base_url=base)
        trader = LedgerHttpClient(base_url=base, private_key=bytes(keys.signer("trader-tj-electronics").key))
        customs = LedgerHttpClient(base_url=base, private_key=bytes(keys.signer("cn-tj-customs-signer-0").key))
        try:
            invoice = b"invoice before the outage"
            first = trader.submit_declaration({"jurisdiction": "CN-TJ-CUSTOMS", "local_reference": "OUT-1"},
                                              [(1, "invoice.pdf", invoice)])  # fmt: skip
            assert trader.wait_settled(first["tracking_id"])["status"] == "final"
            sha = "0x" + hashlib.sha256(invoice).hexdigest()
            helper.until(lambda: customs.verify_hash(sha)["status"] != "NOT_ANCHORED")

            assert node.stop()
            health = helper.until(
                lambda: (h := httpx.get(f"{base}/health")).json()["checks"]["chain"]["status"] == "down" and h
            )
            assert health.status_code == 200 and health.json()["status"] == "degraded"

            second = trader.submit_declaration({"jurisdiction": "CN-TJ-CUSTOMS", "local_reference": "OUT-2"})
            assert second["status"] == "pending"
            assert trader.submission(second["tracking_id"])["status"] == "pending"
            assert any(d["declaration_id"] == first["declaration_id"] for d in trader.declarations())
            verdict = helper.until(lambda: (v := customs.verify_hash(sha))["chain_head"] is None and v)
            assert verdict["status"] != "NOT_ANCHORED"  # served from the index, marked as possibly stale

            assert node.start()
            back = time.monotonic()
            assert trader.wait_settled(second["tracking_id"], timeout=60)["status"] == "final"
            assert helper.until(lambda: httpx.get(f"{base}/health").json()["status"] == "ok")
            record_recovery("node down under the service (queued write final, health ok)", time.monotonic() - back,
                            bound=30.0)  # fmt: skip
            did = second["declaration_id"]
            ids = helper.until(lambda: [x for d in trader.declarations() if (x := d["declaration_id"]) == did])
            assert ids == [did]
        finally:
            trader.close()
            customs.close()
