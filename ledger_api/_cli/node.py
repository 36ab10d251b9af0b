"""``ledger up``, ``ledger serve`` and ``ledger node …``: the embedded node, the deployment, the API."""

from __future__ import annotations

import argparse
import json
import shutil
from typing import Any

from ledger_api._cli._common import load_settings
from ledger_api.chain.deploy import Deployment, ensure_deployed
from ledger_api.chain.node import AnvilNode
from ledger_api.config import Settings
from ledger_api.errors import ConfigurationError, redact_url

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``up``, ``serve`` and ``node`` to the ``ledger`` command."""
    up = subparsers.add_parser("up", help="start the embedded node, deploy + bootstrap once, print addresses")
    up.add_argument("--json", action="store_true", help="print the deployment record as JSON")
    up.set_defaults(handler=_up)

    serve = subparsers.add_parser("serve", help="run the HTTP API (starts the embedded node when needed)")
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.set_defaults(handler=_serve)

    node = subparsers.add_parser("node", help="manage the embedded anvil node")
    actions = node.add_subparsers(dest="node_command", metavar="ACTION", required=True)
    actions.add_parser("status", help="is the embedded node running?").set_defaults(handler=_status)
    actions.add_parser("stop", help="stop the embedded node (its state is kept)").set_defaults(handler=_stop)
    reset = actions.add_parser("reset", help="stop the node and DELETE the embedded chain and its deployment")
    reset.add_argument("--yes", action="store_true", help="confirm deletion")
    reset.set_defaults(handler=_reset)


def _node(settings: Settings) -> AnvilNode:
    return AnvilNode(state_dir=settings.var_dir / "anvil", port=settings.anvil_port, binary=settings.anvil_binary)


def _up(args: argparse.Namespace) -> int:
    settings = load_settings()
    record, created = ensure_deployed(settings)
    if args.json:
        print(json.dumps(_summary(record), indent=2))
        return 0
    state = "deployed and bootstrapped" if created else "already deployed (state restored)"
    print(f"ledger: consortium {state} on chain {record.chain_id} at {redact_url(settings.effective_rpc_url)}")
    print(f"  AgencyRegistry   {record.registry}")
    print(f"  ClearanceLedger  {record.ledger}")
    print(f"  deployment block {record.deployment_block}")
    print(f"  governors        {len(record.governors)} (threshold {record.threshold})")
    for agency_id, agency in record.agencies.items():
        print(f"  agency #{agency.index:<2} {agency_id:<18} signers {', '.join(agency.signers)}")
    for label, address in record.traders.items():
        print(f"  trader {label:<24} {address}")
    if settings.embedded:
        print(f"the embedded anvil keeps running (state in {settings.var_dir}/anvil); stop it with `ledger node stop`")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn  # only this command needs the ASGI server

    from ledger_api.api.service import build_service

    settings = load_settings()
    record, _ = ensure_deployed(settings)
    print(f"ledger: serving the API on http://{args.host}:{args.port} (OpenAPI at /openapi.json)")
    uvicorn.run(build_service(settings, record), host=args.host, port=args.port, log_level="warning")
    return 0


def _summary(record: Deployment) -> dict[str, Any]:
    return {
        "chainId": record.chain_id,
        "registry": record.registry,
        "ledger": record.ledger,
        "deploymentBlock": record.deployment_block,
        "governors": list(record.governors),
        "threshold": record.threshold,
        "agencies": {k: {"index": v.index, "signers": list(v.signers)} for k, v in record.agencies.items()},
        "traders": record.traders,
    }


def _status(args: argparse.Namespace) -> int:
    node = _node(load_settings())
    pid, chain_id = node.pid(), node.chain_id()
    if pid is None or chain_id is None:
        print(f"embedded node: not running (port {node.port})")
        return 3
    print(f"embedded node: running, pid {pid}, chain id {chain_id}, {node.rpc_url}")
    return 0


def _stop(args: argparse.Namespace) -> int:
    stopped = _node(load_settings()).stop()
    print("embedded node stopped, state kept" if stopped else "embedded node was not running")
    return 0


def _reset(args: argparse.Namespace) -> int:
    settings = load_settings()
    if not args.yes:
        raise ConfigurationError("`ledger node reset` deletes the embedded chain; repeat with --yes")
    _node(settings).stop()
    shutil.rmtree(settings.var_dir / "anvil", ignore_errors=True)
    (settings.var_dir / "deployment.json").unlink(missing_ok=True)
    print(f"embedded chain and deployment record deleted (keys kept in {settings.var_dir}/keys)")
    return 0
