"""The ``ledger`` command.

Each command group lives in its own module under ``ledger_api/_cli/`` and exposes
``register(subparsers)``; this module only assembles them and turns library errors into one
readable line on stderr and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from ledger_api._runtime import bound_recursion
from ledger_api.errors import LedgerError

__all__ = ["main", "run_command"]

#: Command-group modules, in the order they appear in ``ledger --help``.
_GROUPS = (
    "ledger_api._cli.node",
    "ledger_api._cli.run",
    "ledger_api._cli.demo",
    "ledger_api._cli.documents",
    "ledger_api._cli.batch",
    "ledger_api._cli.api",
    "ledger_api._cli.oracle",
    "ledger_api._cli.audit",
    "ledger_api._cli.evidence",
)

EXIT_ERROR = 1
EXIT_USAGE = 2


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ledger", description="Customs document-provenance ledger.")
    parser.add_argument("-v", "--verbose", action="store_true", help="show diagnostics on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in _GROUPS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a group not built yet must not break the others
            if exc.name != module_name:
                raise
            continue
        module.register(subparsers)
    return parser


def run_command(parser: argparse.ArgumentParser, argv: Sequence[str] | None, *, name: str) -> int:
    """Parse ``argv`` and run the chosen handler; a :class:`LedgerError` becomes one line
    ``<name>: error: …`` on stderr and exit 1 (the diagnostics with ``--verbose``)."""
    bound_recursion()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.handler(args) or 0)
    except LedgerError as exc:
        message = exc.diagnostics() if args.verbose else str(exc)
        print(f"{name}: error: {message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `ledger … | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``ledger`` command; returns the process exit status."""
    return run_command(_build_parser(), argv, name="ledger")  # the parser imports the groups (web3 among them)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
