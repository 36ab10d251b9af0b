"""Wire the HTTP service to a deployment: authenticator, health checks, state under var/."""

from __future__ import annotations

from fastapi import FastAPI
from web3 import Web3

from ledger_api.api.app import create_app
from ledger_api.api.auth import RequestAuthenticator, SqliteNonceStore
from ledger_api.api.health import ChainHealth
from ledger_api.chain.deploy import Deployment
from ledger_api.chain.identity import RegistryDirectory
from ledger_api.config import Settings

__all__ = ["build_service"]


def build_service(settings: Settings, deployment: Deployment) -> FastAPI:
    """The service for ``deployment``: request signatures checked against its AgencyRegistry."""
    app = create_app(
        health_checks=[ChainHealth(rpc_url=settings.effective_rpc_url, expected_chain_id=deployment.chain_id)]
    )
    w3 = Web3(Web3.HTTPProvider(settings.effective_rpc_url, request_kwargs={"timeout": 10}))
    app.state.authenticator = RequestAuthenticator(
        directory=RegistryDirectory(w3=w3, registry=deployment.registry),
        nonces=SqliteNonceStore(settings.var_dir / "api" / "nonces.db"),
    )
    app.state.deployment = deployment
    return app
