"""Wire the HTTP service to a deployment: authenticator, read model + indexer, health, state under var/."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from fastapi import FastAPI

from ledger_api.api.app import create_app
from ledger_api.api.auth import RequestAuthenticator, SqliteNonceStore
from ledger_api.api.governance_client import GovernanceClient
from ledger_api.api.health import ChainHealth, HealthReport
from ledger_api.api.ratelimit import rate_limits_from
from ledger_api.api.tokens import TokenStore
from ledger_api.api.writes import DocumentVault, OutboxHealth, StoreHealth, WriteService
from ledger_api.chain.client import LedgerClient
from ledger_api.chain.deploy import Deployment
from ledger_api.chain.identity import RegistryDirectory
from ledger_api.chain.keystore import Keystore
from ledger_api.config import Settings
from ledger_api.documents import VAULT_FILE, AgencyPrivateKey, content_store
from ledger_api.index import Indexer, ReadModel
from ledger_api.outbox import EntryState, Outbox, OutboxWorker

__all__ = ["IndexHealth", "build_service"]

_log = logging.getLogger("ledger_api.service")
#: How often the service refreshes its view of the chain head (for staleness indicators).
HEAD_INTERVAL = 1.0


class IndexHealth:
    """The read model: how far it trails the chain head (degraded past ``max_lag`` blocks)."""

    name = "index"

    def __init__(self, *, app: FastAPI, max_lag: int = 5) -> None:
        self._app = app
        self._max_lag = max_lag

    async def check(self) -> HealthReport:
        """Compare the index cursor with the last head the service saw."""
        model: ReadModel | None = getattr(self._app.state, "read_model", None)
        if model is None:
            return HealthReport(status="down", detail="read model not open")
        cursor = model.cursor_block()
        head: int | None = getattr(self._app.state, "chain_head", None)
        if head is None:
            return HealthReport(status="degraded", detail="chain head unknown; serving the index as is",
                                facts={"indexedThroughBlock": cursor})  # fmt: skip
        lag = max(0, head - cursor)
        return HealthReport(
            status="ok" if lag <= self._max_lag else "degraded", facts={"indexedThroughBlock": cursor, "lagBlocks": lag}
        )


async def _track_head(app: FastAPI, rpc_url: str) -> None:
    """Keep ``app.state.chain_head`` current; ``None`` while the node is unreachable."""
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            try:
                response = await client.post(
                    rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
                )
                app.state.chain_head = int(response.json()["result"], 16)
            except (httpx.HTTPError, KeyError, ValueError, TypeError):
                app.state.chain_head = None
            await asyncio.sleep(HEAD_INTERVAL)


def _register_gauges(app: FastAPI) -> None:
    """Service gauges computed at scrape time: chain head, indexed block, index lag, outbox by state."""
    metrics = app.state.metrics

    def head() -> float | None:
        value: int | None = app.state.chain_head
        return None if value is None else float(value)

    def indexed() -> float | None:
        model: ReadModel | None = getattr(app.state, "read_model", None)
        return None if model is None else float(model.cursor_block())

    def lag() -> float | None:
        top, cursor = head(), indexed()
        return None if top is None or cursor is None else max(0.0, top - cursor)

    def outbox() -> dict[tuple[str, ...], float] | None:
        writes: WriteService | None = app.state.writes
        if writes is None:
            return None
        counts = writes.outbox.counts()
        return {(state,): float(counts.get(state, 0)) for state in (*EntryState.ACTIVE, *EntryState.TERMINAL)}

    metrics.add_gauge_callback("ledger_chain_head_block", "Latest block the service saw", head)
    metrics.add_gauge_callback("ledger_index_block", "Block the read model is indexed through", indexed)
    metrics.add_gauge_callback("ledger_index_lag_blocks", "Blocks the read model trails the chain head", lag)
    metrics.add_gauge_callback("ledger_outbox_entries", "Write journal entries by state", outbox, labels=("state",))


def build_writes(
    settings: Settings, deployment: Deployment, *, keystore: Keystore | None = None
) -> tuple[WriteService, LedgerClient]:
    """The write side: the keys this service signs with, its outbox journal, document vault and store."""
    keystore = keystore or Keystore.from_settings(settings)
    client = LedgerClient.from_settings(settings, deployment, keystore, labels=settings.signer_labels)
    held = {a.lower() for a in client.addresses}
    decryption = {
        agency_id: AgencyPrivateKey(keystore.encryption_key(agency_id.lower()))
        for agency_id, record in deployment.agencies.items()
        if any(s.lower() in held for s in record.signers) and keystore.has_encryption_key(agency_id.lower())
    }
    api_dir = settings.var_dir / "api"
    writes = WriteService(
        outbox=Outbox.open(api_dir / "outbox.db"),
        custody=client.addresses,
        vault=DocumentVault(settings.var_dir / VAULT_FILE, content_store(settings)),
        decryption_keys=decryption,
    )
    return writes, client


def build_service(
    settings: Settings, deployment: Deployment, *, index_path: Path | None = None, writes: bool = True
) -> FastAPI:
    """The service for ``deployment``: request signatures checked against its AgencyRegistry,
    reads served from an index kept current by a background indexer thread, and (``writes``)
    writes journaled in the outbox and driven to the chain by an outbox worker thread."""
    database = index_path or settings.var_dir / "index" / "index.db"
    database.parent.mkdir(parents=True, exist_ok=True)
    rpc_url = settings.effective_rpc_url

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        indexer = Indexer.for_deployment(
            deployment, database=database, rpc_url=rpc_url, confirmations=settings.confirmations
        )

        def follow() -> None:
            try:
                indexer.follow(stop=stop, interval=0.5, on_error=lambda e: _log.warning("indexer: %s", e.code))
            finally:
                indexer.close()

        threads = [threading.Thread(target=follow, name="ledger-indexer", daemon=True)]
        write_side: WriteService | None = app.state.writes
        if write_side is not None:
            worker = OutboxWorker(outbox=write_side.outbox, client=app.state.ledger_client)
            write_side.worker = worker
            threads.append(threading.Thread(target=worker.run, args=(stop,), name="outbox-worker", daemon=True))
        for thread in threads:
            thread.start()
        app.state.read_model = ReadModel.open(database)
        head_task = asyncio.create_task(_track_head(app, rpc_url))
        try:
            yield
        finally:
            head_task.cancel()
            stop.set()
            for thread in threads:
                await asyncio.to_thread(thread.join, 10)
            app.state.read_model.close()
            if write_side is not None:
                write_side.close()
                write_side.outbox.close()
                app.state.ledger_client.close()

    app = create_app(
        health_checks=[ChainHealth(rpc_url=rpc_url, expected_chain_id=deployment.chain_id, critical=False)],
        lifespan=lifespan,
        rate_limits=rate_limits_from(settings),
        metrics_token=settings.metrics_token.get_secret_value() if settings.metrics_token else None,
    )
    app.state.health_checks.append(IndexHealth(app=app))
    app.state.chain_head = None
    app.state.authenticator = RequestAuthenticator(
        directory=RegistryDirectory.connect(rpc_url=rpc_url, registry=deployment.registry),
        nonces=SqliteNonceStore(settings.var_dir / "api" / "nonces.db"),
    )
    app.state.deployment = deployment
    app.state.rpc_url = rpc_url
    app.state.tokens = TokenStore(settings.var_dir / "api" / "tokens.db")
    app.state.audit_report = settings.audit_report_path  # GET /v1/audit/report (routes/audit.py)
    _register_gauges(app)
    app.state.writes = None
    if writes:
        write_side, client = build_writes(settings, deployment)
        app.state.writes = write_side
        app.state.ledger_client = client
        app.state.health_checks += [StoreHealth(write_side.vault.store), OutboxHealth(write_side)]
    # Governance transactions (synchronous, governor keys the keystore already holds): routes/governance.py.
    app.state.governance = (
        GovernanceClient.from_settings(settings, deployment, Keystore.from_settings(settings)) if writes else None
    )
    return app
