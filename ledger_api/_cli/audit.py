"""``ledger audit replay``: rebuild the ledger from its events, compare with the views, check invariants."""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
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
    where = replay.add_mutually_exclusive_group()
    where.add_argument("--store", type=Path, default=None, metavar="PATH",
                       help="embedded content store holding the rule sets, envelopes and documents (default: the "
                       "configured store: LEDGER_IPFS_API or <var_dir>/store)")  # fmt: skip
    where.add_argument("--ipfs", action="append", default=None, metavar="API",
                       help="IPFS (Kubo RPC) API to fetch them from instead; repeat it to fetch documents from "
                       "several nodes (the channel check uses the first)")  # fmt: skip
    replay.add_argument("--no-channel-check", action="store_true",
                        help="do not re-derive channels from the rule sets (reported as skipped)")  # fmt: skip
    replay.add_argument(
        "--documents",
        action="store_true",
        help="fetch every anchored document from the store(s) and re-verify CID and commitment",
    )
    replay.add_argument("--agency", default=None, metavar="CODE",
                        help="open declarations with this agency's decryption key from the keystore (label: CODE in "
                        "lower case) and the keyrings of the local sealing vault; without it only the content-free "
                        "rules of content-dependent channels are checked")  # fmt: skip
    replay.add_argument("--vault", type=Path, default=None, metavar="FILE",
                        help="vault database holding the keyrings (default: <var_dir>/api/documents.db)")  # fmt: skip
    replay.set_defaults(handler=_replay)


def _channel_sources(args: argparse.Namespace, settings: Any, stack: ExitStack) -> tuple[dict[str, Any], Any]:
    """The content stores (name → store) and, with ``--agency``, the declaration reader."""
    from ledger_api.audit import DeclarationReader
    from ledger_api.chain.keystore import Keystore
    from ledger_api.documents import (
        VAULT_FILE,
        AgencyPrivateKey,
        ContentStore,
        IpfsStore,
        LazyIpfsStore,
        LocalStore,
        VaultKeyrings,
        content_store,
    )
    from ledger_api.errors import ConfigurationError, StoreUnavailable

    stores: dict[str, ContentStore] = {}
    if args.store is not None:
        if not args.store.is_dir():
            raise ConfigurationError(f"no content store at {args.store}")
        stores[str(args.store)] = LocalStore(args.store)
    elif args.ipfs:
        for api in args.ipfs:
            try:
                node = IpfsStore(api)
            except ValueError as exc:
                raise ConfigurationError(f"--ipfs {api}: {exc}") from exc
            except StoreUnavailable:
                if not args.documents:
                    raise
                stores[api] = LazyIpfsStore(api)  # reported as a document-store-unavailable finding
                continue
            stack.callback(node.close)
            stores[api] = node
    else:
        configured = content_store(settings)
        stores[settings.ipfs_api or str(settings.var_dir / "store")] = configured
    reader = None
    if args.agency:
        keystore = Keystore.from_settings(settings)
        label = args.agency.lower()
        if not keystore.has_encryption_key(label):
            raise ConfigurationError(f"the keystore holds no decryption key '{label}' for agency {args.agency}")
        keyrings = VaultKeyrings(args.vault or settings.var_dir / VAULT_FILE)
        stack.callback(keyrings.close)
        reader = DeclarationReader(
            agency=args.agency, private_key=AgencyPrivateKey(keystore.encryption_key(label)), keyrings=keyrings
        )
    return stores, reader


def _replay(args: argparse.Namespace) -> int:
    from ledger_api.audit import DocumentCheck, replay, write_report
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
    with ExitStack() as stack:
        stores: dict[str, Any] = {}
        reader = None
        if args.documents or not args.no_channel_check:
            stores, reader = _channel_sources(args, settings, stack)
        report = replay(
            args.rpc_url or settings.effective_rpc_url,
            deployment,
            to_block=args.to_block,
            rule_store=None if args.no_channel_check else next(iter(stores.values())),
            reader=reader,
            document_check=DocumentCheck(stores, reader=reader) if args.documents else None,
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
    for name, summary in report.checks.items():
        outcomes = summary.get("verdicts", summary.get("outcomes", {}))
        print(f"  checked {name}: {summary.get('checked', 0)} {outcomes}", file=sys.stderr)
    for name, why in report.checks_skipped.items():
        print(f"  skipped {name}: {why}", file=sys.stderr)
    return 0 if report.ok else EXIT_FINDINGS
