"""``ledger demo``: the demo scenario against a running ``ledger run`` (see :mod:`ledger_api._demo`)."""

from __future__ import annotations

from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``demo`` to the ``ledger`` command."""
    from ledger_api._demo import add_demo_parser  # the scenario lives in the library

    add_demo_parser(subparsers)
