"""``ledger oracle <name> …``: the oracles' commands (see :mod:`oracles.cli`) under ``ledger``."""

from __future__ import annotations

from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``oracle`` with one sub-command per oracle."""
    from oracles.cli import add_oracle_parsers  # the oracles package ships with the ledger

    parser = subparsers.add_parser("oracle", help="run or inspect an oracle (integrity, risk, bridge, …)")
    add_oracle_parsers(parser.add_subparsers(dest="oracle", metavar="ORACLE", required=True))
