"""A running service on a real anvil, shared by the route tests of one module."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from ledger_api.api.service import build_service
from ledger_api.chain.deploy import Deployment, ensure_deployed
from ledger_api.chain.keystore import Keystore
from ledger_api.chain.node import AnvilNode
from ledger_api.client import LedgerHttpClient
from ledger_api.config import Settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    """The service under test and signed clients for the default consortium's keys."""

    settings: Settings
    deployment: Deployment
    keystore: Keystore
    app: FastAPI
    base_url: str
    clients: list[LedgerHttpClient] = field(default_factory=list)

    def client(self, label: str) -> LedgerHttpClient:
        """A typed client signing with keystore key ``label`` (e.g. ``trader-tj-foods``); closed at teardown."""
        client = LedgerHttpClient(base_url=self.base_url, private_key=bytes(self.keystore.signer(label).key))
        self.clients.append(client)
        return client

    def address(self, label: str) -> str:
        """The address of keystore key ``label``."""
        return str(self.keystore.signer(label).address)

    def until(self, probe: Callable[[], Any], *, timeout: float = 20.0) -> Any:
        """Poll ``probe`` until it returns something truthy (the indexer and worker run in threads)."""
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout} s (last: {value!r})")
            time.sleep(0.05)


@contextlib.contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Run ``app`` under uvicorn on a free loopback port (in a thread); yields its base URL."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the service did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A deployed default consortium and its service (indexer + outbox worker threads running)."""
    var = Path(tmp_path_factory.mktemp("service")) / "var"
    settings = Settings(var_dir=var, anvil_port=_free_port(), rate_limit_enabled=False)
    try:
        record, _ = ensure_deployed(settings)
        app = build_service(settings, record)
        with serve(app) as base_url:
            running = Service(settings=settings, deployment=record, keystore=Keystore.from_settings(settings), app=app,
                              base_url=base_url)  # fmt: skip
            yield running
            for client in running.clients:
                client.close()
    finally:
        AnvilNode(state_dir=settings.var_dir / "anvil", port=settings.anvil_port).stop()
