"""Fixtures for chain tests: a real anvil per test module, in a temporary var dir."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from ledger_api.chain.node import AnvilNode
from ledger_api.config import Settings


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def embedded_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings of an embedded ledger in a fresh var dir on a free port; stops its anvil after."""
    var_dir = tmp_path_factory.mktemp("var")
    settings = Settings(var_dir=var_dir, anvil_port=free_port(), environment="development")
    yield settings
    AnvilNode(state_dir=var_dir / "anvil", port=settings.anvil_port).stop()
