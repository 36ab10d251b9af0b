"""Fixtures shared by the library's tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger_api.chain.deploy import Deployment, ensure_deployed
from ledger_api.chain.node import AnvilNode
from ledger_api.config import Settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[tuple[Settings, Deployment]]:
    """A fresh embedded ledger (anvil on a free port, default consortium bootstrapped) under
    ``tmp_path/var``; its anvil is stopped afterwards."""
    settings = Settings(var_dir=tmp_path / "var", anvil_port=_free_port())
    try:
        record, _ = ensure_deployed(settings)
        yield settings, record
    finally:
        AnvilNode(state_dir=settings.var_dir / "anvil", port=settings.anvil_port).stop()
