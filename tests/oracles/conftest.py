"""Fixtures for the oracle tests: a fresh embedded ledger, oracle contexts, real IPFS daemons."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger_api.chain.client import LedgerClient
from ledger_api.chain.deploy import Deployment, ensure_deployed
from ledger_api.chain.keystore import Keystore
from ledger_api.chain.node import AnvilNode
from ledger_api.config import Settings
from oracles._base import OracleContext
from oracles.config import OracleSettings
from tests._support.ipfs import IpfsDaemon, free_port, start_daemons, stop_all


class Ledger:
    """A deployed embedded consortium: settings, deployment record, keystore, an all-keys client."""

    def __init__(self, settings: Settings, deployment: Deployment) -> None:
        self.settings = settings
        self.deployment = deployment
        self.keystore = Keystore.from_settings(settings)
        self.client = LedgerClient.from_settings(settings, deployment, self.keystore)

    def address(self, label: str) -> str:
        """Address of keystore ``label`` (``trader-tj-electronics``, ``cn-tj-customs-signer-0`` …)."""
        return str(self.keystore.signer(label).address)

    def context(self, name: str, agency: str, **oracle_settings: Any) -> OracleContext:
        """An oracle context for ``agency`` with state under the test's var dir."""
        values = {"state_dir": self.settings.var_dir / "oracles", **oracle_settings}
        return OracleContext(
            name=name,
            settings=self.settings,
            oracle_settings=OracleSettings(**values),
            deployment=self.deployment,
            agency=agency,
            keystore=self.keystore,
        )


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    """A fresh embedded ledger (anvil on a free port, default consortium) for one test."""
    settings = Settings(var_dir=tmp_path / "var", anvil_port=free_port())
    try:
        deployment, _ = ensure_deployed(settings)
        handle = Ledger(settings, deployment)
        yield handle
        handle.client.close()
    finally:
        AnvilNode(state_dir=settings.var_dir / "anvil", port=settings.anvil_port).stop()


@pytest.fixture
def contexts(ledger: Ledger) -> Iterator[Callable[..., OracleContext]]:
    """Factory of oracle contexts on ``ledger``; all are closed after the test."""
    opened: list[OracleContext] = []

    def make(name: str, agency: str, **oracle_settings: Any) -> OracleContext:
        ctx = ledger.context(name, agency, **oracle_settings)
        opened.append(ctx)
        return ctx

    yield make
    for ctx in opened:
        ctx.close()


@pytest.fixture(scope="session")
def ipfs_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[IpfsDaemon]]:
    """Two connected js-ipfs daemons shared by the session (do not stop them in a test)."""
    daemons = start_daemons(tmp_path_factory.mktemp("oracle-ipfs"), ["agency-a", "agency-b"])
    try:
        yield daemons
    finally:
        stop_all(daemons)
