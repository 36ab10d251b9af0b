"""The service's write path on real js-ipfs daemons: sealed documents land in the agency's IPFS node,
a partner agency's node fetches them by CID, and a dead daemon means 503 with nothing journaled."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger_api.api.service import build_service
from ledger_api.api.writes import WriteService
from ledger_api.chain.deploy import Deployment, ensure_deployed
from ledger_api.chain.keystore import Keystore
from ledger_api.chain.node import AnvilNode
from ledger_api.client import ApiProblem, LedgerHttpClient
from ledger_api.config import Settings
from ledger_api.documents import Cid
from tests.integration.conftest import IpfsDaemon
from tests.ledger_api.api.conftest import serve

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Deployment]]:
    settings = Settings(var_dir=Path(tmp_path_factory.mktemp("svc-ipfs")) / "var", anvil_port=_free_port(),
                        rate_limit_enabled=False)  # fmt: skip
    try:
        record, _ = ensure_deployed(settings)
        yield settings, record
    finally:
        AnvilNode(state_dir=settings.var_dir / "anvil", port=settings.anvil_port).stop()


def test_submitted_documents_are_sealed_into_ipfs_and_fetched_by_a_partner_node(
    chain: tuple[Settings, Deployment], ipfs_daemons: list[IpfsDaemon]
) -> None:
    settings, record = chain
    own, partner = ipfs_daemons
    settings = settings.model_copy(update={"ipfs_api": own.api})
    app = build_service(settings, record)
    keys = Keystore.from_settings(settings)
    certificate = b"certificate of origin no. 7781 " * 100
    with (
        serve(app) as base,
        LedgerHttpClient(base_url=base, private_key=bytes(keys.signer("trader-tj-foods").key)) as trader,
    ):
        accepted = trader.submit_declaration({"jurisdiction": "CN-TJ-CUSTOMS", "local_reference": "IPFS-1"},
                                             [(3, "origin.pdf", certificate)])  # fmt: skip
        assert trader.wait_settled(accepted["tracking_id"])["status"] == "final"
        writes: WriteService = app.state.writes
        envelope = writes.vault.get(hashlib.sha256(certificate).digest())
        assert envelope is not None
        assert own.store.has(envelope.cid)
        fetched = partner.store.read(envelope.cid)  # over the swarm, verified block by block
        assert Cid.parse(envelope.cid).to_bytes() == envelope.cid_bytes() and certificate not in fetched
        key = writes.decryption_keys["CN-TJ-CUSTOMS"]
        sha = hashlib.sha256(certificate).digest()
        opened = writes.vault.open_for(sha, agency_id="CN-TJ-CUSTOMS", private_key=key, max_size=1 << 20)
        assert opened == certificate


@pytest.mark.faults
def test_a_dead_ipfs_daemon_means_503_retry_after_and_nothing_journaled(chain: tuple[Settings, Deployment]) -> None:
    settings, record = chain
    settings = settings.model_copy(update={"ipfs_api": f"/ip4/127.0.0.1/tcp/{_free_port()}/http"})
    app = build_service(settings, record)  # starts although the daemon is unreachable
    keys = Keystore.from_settings(settings)
    with (
        serve(app) as base,
        LedgerHttpClient(base_url=base, private_key=bytes(keys.signer("trader-tj-foods").key)) as trader,
    ):
        before = app.state.writes.outbox.counts()
        with pytest.raises(ApiProblem) as refused:
            trader.submit_declaration({"jurisdiction": "CN-TJ-CUSTOMS", "local_reference": "IPFS-DOWN"})
        assert refused.value.status == 503 and refused.value.problem_code == "store-unavailable"
        assert app.state.writes.outbox.counts() == before
        health = trader.health()
        assert health["status"] == "degraded" and health["checks"]["content_store"]["status"] == "down"
