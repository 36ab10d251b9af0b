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
    replay.add_argument("--html", type=Path, default=None, metavar="FILE",
                        help="also write a self-contained HTML report (summary, anomalies with links, declaration "
                        "timeline, throughput)")  # fmt: skip
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
    replay.add_argument("--checkpoint", type=Path, default=None, metavar="FILE",
                        help="at the end, write a checkpoint (block, block hash, event accumulator, state digest, "
                        "state snapshot) signed with --signer to resume from later")  # fmt: skip
    replay.add_argument("--resume", type=Path, default=None, metavar="FILE",
                        help="continue from a checkpoint: its signature and signer are verified first, then that "
                        "it is a prefix of the node's history; only the blocks after it are replayed")  # fmt: skip
    replay.add_argument("--signer", default=None, metavar="LABEL",
                        help="keystore label of the auditor's key: signs --checkpoint, and is the key --resume "
                        "expects (unless --expect-signer)")  # fmt: skip
    replay.add_argument("--expect-signer", default=None, metavar="ADDRESS",
                        help="address that must have signed the --resume checkpoint")  # fmt: skip
    replay.add_argument("--unsigned-checkpoint", action="store_true",
                        help="allow writing an unsigned checkpoint (no --signer) and resuming from one without a "
                        "trusted signer; its state digest is still checked")  # fmt: skip
    replay.set_defaults(handler=_replay)


def _checkpoint_keys(args: argparse.Namespace, settings: Any) -> tuple[Any, str | None]:
    """The account signing ``--checkpoint`` and the address ``--resume`` expects (from --signer / --expect-signer)."""
    from ledger_api.chain.keystore import Keystore
    from ledger_api.errors import ConfigurationError

    account = None
    if args.signer:
        keystore = Keystore.from_settings(settings)
        if args.resume is not None and not args.expect_signer and not keystore.has_signer(args.signer):
            raise ConfigurationError(f"the keystore holds no signer key '{args.signer}' to check the checkpoint with")
        account = keystore.signer(args.signer)
    if args.checkpoint is not None and account is None and not args.unsigned_checkpoint:
        raise ConfigurationError("--checkpoint needs --signer LABEL (or --unsigned-checkpoint)")
    expected = args.expect_signer or (str(account.address) if account is not None else None)
    if args.resume is not None and expected is None and not args.unsigned_checkpoint:
        raise ConfigurationError("--resume needs the expected signer: --signer LABEL or --expect-signer ADDRESS")
    return account, expected


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
    from ledger_api.audit import (
        DocumentCheck,
        Timeline,
        open_checkpoint,
        replay,
        write_checkpoint,
        write_html,
        write_report,
    )
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
    rpc_url = args.rpc_url or settings.effective_rpc_url
    account, expected = _checkpoint_keys(args, settings)
    resume = None
    if args.resume is not None:  # signature and signer first, then chain / contracts / prefix, then the state
        resume = open_checkpoint(args.resume, rpc_url, deployment, expected_signer=expected,
                                 allow_unsigned=args.unsigned_checkpoint)  # fmt: skip
    timeline = Timeline() if args.html is not None else None
    with ExitStack() as stack:
        stores: dict[str, Any] = {}
        reader = None
        if args.documents or not args.no_channel_check:
            stores, reader = _channel_sources(args, settings, stack)
        report = replay(
            rpc_url,
            deployment,
            to_block=args.to_block,
            rule_store=None if args.no_channel_check else next(iter(stores.values())),
            reader=reader,
            document_check=DocumentCheck(stores, reader=reader, progress=None if args.quiet else sys.stderr)
            if args.documents
            else None,
            resume=resume,
            track=args.checkpoint is not None,
            on_event=timeline,
            progress=None if args.quiet else sys.stderr,
        )
    if args.report:
        write_report(report, args.report, explorer=args.explorer)
    if args.html is not None:
        write_html(report, str(args.html), explorer=args.explorer, timeline=timeline)
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
    if report.resumed_from is not None:
        print(f"  resumed from the checkpoint at block {report.resumed_from['block']}", file=sys.stderr)
    if args.checkpoint is not None and report.resume_point is not None:
        if report.digest_match is True:
            write_checkpoint(args.checkpoint, report.resume_point, chain_id=deployment.chain_id,
                             registry=deployment.registry, ledger=deployment.ledger,
                             deployment_block=deployment.deployment_block, state_digest=report.state_digest,
                             signer=account)  # fmt: skip
            print(f"  checkpoint at block {report.to_block} written to {args.checkpoint}", file=sys.stderr)
        else:
            print("  checkpoint NOT written: the replayed state does not match the views", file=sys.stderr)
    return 0 if report.ok else EXIT_FINDINGS
