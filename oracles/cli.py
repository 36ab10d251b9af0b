"""The oracles' command line, shared by ``python -m oracles`` and ``ledger oracle``.

``<name> run [--once] [--interval S] [--health-port P]`` runs an oracle until SIGTERM / Ctrl-C;
``<name> status`` prints the status it last persisted (exit 1 when it is degraded or stale);
oracle modules may add sub-commands (``witness compare``, ``bridge submit`` …).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from ledger_api.cli import run_command
from oracles import ORACLES
from oracles._base import Oracle, configure_logging, open_context, read_status, run
from oracles.config import OracleSettings

__all__ = ["add_oracle_parsers", "main"]

EXIT_ERROR = 1


def _module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(ORACLES[name])
    except ModuleNotFoundError as exc:  # an oracle not built yet must not break the others
        if exc.name != ORACLES[name]:
            raise
        return None


def add_oracle_parsers(subparsers: Any) -> None:
    """Add one sub-command per oracle (each with ``run``, ``status`` and its own actions)."""
    for name in ORACLES:
        module = _module(name)
        if module is None:
            continue
        oracle_cls: type[Oracle] = module.ORACLE
        parser = subparsers.add_parser(name, help=oracle_cls.summary, description=oracle_cls.summary)
        actions = parser.add_subparsers(dest="action", metavar="ACTION")
        run_p = actions.add_parser("run", help="run until SIGTERM / Ctrl-C (the default action)")
        _run_options(run_p)
        run_p.set_defaults(handler=_run, oracle_cls=oracle_cls)
        status_p = actions.add_parser("status", help="the status the oracle last persisted (JSON)")
        status_p.add_argument("--max-age", type=float, default=0.0, help="exit 1 if older than this many seconds")
        status_p.set_defaults(handler=_status, oracle_cls=oracle_cls)
        add = getattr(module, "add_commands", None)
        if add is not None:
            add(actions)
        _run_options(parser)
        parser.set_defaults(handler=_run, oracle_cls=oracle_cls)


def _run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--once", action="store_true", help="one pass, then exit (cron-style)")
    parser.add_argument("--interval", type=float, help="seconds between polls when idle")
    parser.add_argument("--health-port", type=int, help="serve GET /health and /status on this loopback port")


def _oracle_settings(args: argparse.Namespace) -> OracleSettings:
    base = OracleSettings()
    changes: dict[str, Any] = {}
    if getattr(args, "interval", None) is not None:
        changes["interval"] = args.interval
    if getattr(args, "health_port", None) is not None:
        changes["health_port"] = args.health_port
    return OracleSettings.model_validate({**base.model_dump(), **changes}) if changes else base


def _run(args: argparse.Namespace) -> int:
    configure_logging()
    oracle_cls: type[Oracle] = args.oracle_cls
    settings = _oracle_settings(args)
    ctx = open_context(oracle_cls.name, default_agency=oracle_cls.default_agency, oracle_settings=settings)
    oracle = oracle_cls(ctx)
    try:
        status = run(oracle, once=args.once)
    finally:
        oracle.close()
        ctx.close()
    return EXIT_ERROR if args.once and status.state == "degraded" else 0


def _status(args: argparse.Namespace) -> int:
    oracle_cls: type[Oracle] = args.oracle_cls
    ctx = open_context(oracle_cls.name, default_agency=oracle_cls.default_agency)
    try:
        status = read_status(ctx)
    finally:
        ctx.close()
    if status is None:
        print(f"oracles: {oracle_cls.name} has never run for this agency", file=sys.stderr)
        return EXIT_ERROR
    print(json.dumps(status, indent=2, default=str))
    stale = bool(args.max_age) and time.time() - float(status.get("last_step_at") or 0) > args.max_age
    return EXIT_ERROR if status.get("state") == "degraded" or stale else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m oracles``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m oracles", description="Run or inspect a ledger oracle.")
    parser.add_argument("-v", "--verbose", action="store_true", help="show diagnostics on errors")
    add_oracle_parsers(parser.add_subparsers(dest="oracle", metavar="ORACLE"))
    return run_command(parser, argv, name="oracles")
