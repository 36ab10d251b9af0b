"""``ledger audit replay``: rebuild the ledger from its events, compare with the views, check invariants."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]

#: Exit status when the replay ran but found something wrong (errors or a digest mismatch).
EXIT_FINDINGS = 3


def register(subparsers: Any) -> None:
    """Add ``audit`` with its ``replay`` action to the ``ledger`` command."""
    audit = subparsers.add_parser("audit", help="auditor tools: replay every event and check the ledger")
    actions = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    replay = actions.add_parser(
        "replay", help="rebuild the state from every event, compare with the contract views, check invariants"
    )
    replay.add_argument("--to-block", type=int, default=None, help="last block to replay (default: the head)")
    replay.add_argument("--report", default=None, metavar="FILE", help="write the JSON report here ('-' = stdout)")
    replay.add_argument("--deployment", type=Path, default=None, metavar="FILE",
                        help="deployment record (default: <var_dir>/deployment.json)")  # fmt: skip
    replay.add_argument("--rpc-url", default=None, help="JSON-RPC endpoint (default: the configured node)")
    replay.add_argument("--explorer", default=None, metavar="TEMPLATE",
                        help="URL template for finding links, e.g. 'https://explorer/tx/{tx}'")  # fmt: skip
    replay.add_argument("--quiet", action="store_true", help="no progress on stderr")
    replay.set_defaults(handler=_replay)


def _replay(args: argparse.Namespace) -> int:
    from ledger_api.audit import replay, write_report
    from ledger_api.chain.deploy import Deployment
    from ledger_api.config import Settings
    from ledger_api.errors import ConfigurationError

    try:
        settings = Settings()
    except ValueError as exc:  # pydantic ValidationError is a ValueError
        raise ConfigurationError(str(exc).splitlines()[0] if str(exc) else "invalid settings") from exc
    path = args.deployment or settings.var_dir / "deployment.json"
    if not path.exists():
        raise ConfigurationError(f"no deployment record at {path} (run `ledger up` or pass --deployment)")
    deployment = Deployment.load(path)
    report = replay(
        args.rpc_url or settings.effective_rpc_url,
        deployment,
        to_block=args.to_block,
        progress=None if args.quiet else sys.stderr,
    )
    if args.report:
        write_report(report, args.report, explorer=args.explorer)
    rate = report.throughput.events_per_second
    verdict = "OK" if report.ok else "FAILED"
    print(
        f"ledger audit replay: {verdict} — blocks {report.from_block}..{report.to_block}, "
        f"{report.throughput.events} events ({rate:,.0f} events/s), {len(report.errors)} errors, "
        f"{len(report.findings) - len(report.errors)} warnings, digest {report.state_digest} "
        f"{'=' if report.digest_match else '≠'} views {report.view_digest}",
        file=sys.stderr,
    )
    for finding in report.errors[:20]:
        where = f" (block {finding.block}, tx {finding.tx})" if finding.block is not None else ""
        print(f"  {finding.code}: {finding.message}{where}", file=sys.stderr)
    for name, why in report.checks_skipped.items():
        print(f"  skipped {name}: {why}", file=sys.stderr)
    return 0 if report.ok else EXIT_FINDINGS
