"""Fixtures for outbox tests: a real anvil with the default consortium, per test module."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from web3 import Web3

from ledger_api.chain.consortium import default_consortium
from ledger_api.chain.deploy import Deployment, deploy_consortium
from ledger_api.chain.keystore import Keystore
from ledger_api.chain.node import AnvilNode

TRADERS = ("trader-tj-electronics", "trader-tj-foods")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, kw_only=True)
class OutboxChain:
    """A deployed consortium on a private anvil plus the trader keys the tests sign with."""

    node: AnvilNode
    var_dir: Path
    deployment: Deployment
    keys: dict[str, bytes]  # keystore label -> private key

    def rpc(self, method: str, params: list[Any]) -> Any:
        """Raw JSON-RPC result (test controls such as evm_mine, anvil_dropTransaction)."""
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        reply = httpx.post(self.node.rpc_url, json=body, timeout=30).json()
        assert "error" not in reply, reply
        return reply["result"]

    def address(self, label: str) -> str:
        """Address of keystore label ``label``."""
        return str(Account.from_key(self.keys[label]).address)

    def submitted_per_commitment(self) -> dict[str, int]:
        """DeclarationSubmitted events on chain, counted per declaration id (= commitment)."""
        topic = (
            "0x"
            + Web3.keccak(
                text="DeclarationSubmitted(bytes32,address,uint32,bytes32,bytes,(uint8,bytes32,bytes)[])"
            ).hex()
        )
        logs = self.rpc(
            "eth_getLogs",
            [{"address": self.deployment.ledger, "fromBlock": hex(self.deployment.deployment_block),
              "toBlock": "latest", "topics": [topic]}],
        )  # fmt: skip
        counts: dict[str, int] = {}
        for log in logs:
            counts[log["topics"][1]] = counts.get(log["topics"][1], 0) + 1
        return counts


@pytest.fixture(scope="module")
def outbox_chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OutboxChain]:
    """anvil (state dumped every second) + the default consortium, deployed with deploy_consortium."""
    var_dir = tmp_path_factory.mktemp("outbox-var")
    (var_dir / "keys").mkdir()
    node = AnvilNode(state_dir=var_dir / "anvil", port=_free_port())
    node.start()
    try:
        keystore = Keystore(directory=var_dir / "keys", password="outbox-test-password")
        w3 = Web3(Web3.HTTPProvider(node.rpc_url))
        deployment = deploy_consortium(w3, spec=default_consortium(), keystore=keystore, fund=True)
        keys = {label: bytes(keystore.signer(label).key) for label in TRADERS}
        yield OutboxChain(node=node, var_dir=var_dir, deployment=deployment, keys=keys)
    finally:
        node.stop()


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    """A fresh outbox database path."""
    return tmp_path / "outbox.sqlite3"
