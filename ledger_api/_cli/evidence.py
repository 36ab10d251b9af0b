"""``ledger evidence export`` / ``ledger evidence verify``: evidence bundles, checked offline (docs/evidence.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``evidence`` with its ``export`` and ``verify`` actions to the ``ledger`` command."""
    evidence = subparsers.add_parser(
        "evidence", help="evidence bundles: export one document's proof, verify a bundle offline"
    )
    actions = evidence.add_subparsers(dest="evidence_command", metavar="ACTION", required=True)
    export = actions.add_parser(
        "export", help="write the evidence bundle of a document (sha256) or declaration (id) from the node"
    )
    export.add_argument(
        "subject", metavar="SHA256|DECLARATION_ID", help="0x-hex sha256 of a document, or a declaration id"
    )
    export.add_argument("-o", "--output", default="-", metavar="FILE",
                        help="where to write the bundle (default: stdout; with --zip a file is required)")  # fmt: skip
    export.add_argument("--zip", action="store_true", help="write a zip holding bundle.json and the --document")
    export.add_argument("--document", type=Path, default=None, metavar="FILE",
                        help="the document itself: checked against the subject, put in the zip")  # fmt: skip
    export.add_argument("--merkle-proof", type=Path, default=None, metavar="FILE",
                        help="for a batched document: its proof file (`ledger batch anchor --proofs`) or "
                        "its proof as `ledger merkle proof` prints it")  # fmt: skip
    export.add_argument("--to-block", type=int, default=None, help="last block of the bundle (default: the head)")
    export.add_argument("--rpc-url", default=None, help="JSON-RPC endpoint (default: the configured node)")
    export.add_argument("--deployment", type=Path, default=None, metavar="FILE",
                        help="deployment record (default: <var_dir>/deployment.json)")  # fmt: skip
    export.set_defaults(handler=_export)
    verify = actions.add_parser("verify", help="verify a bundle offline against a block hash you trust")
    verify.add_argument("bundle", type=Path, metavar="BUNDLE", help="bundle.json or the zip variant")
    verify.add_argument("--document", type=Path, default=None, metavar="FILE",
                        help="check that this file is the subject (default: the zip's document, if any)")  # fmt: skip
    verify.add_argument("--trusted-block", required=True, metavar="HASH",
                        help="0x-hex hash of the bundle's last block, as your own node / checkpoint says")  # fmt: skip
    verify.add_argument("--deployment", type=Path, default=None, metavar="FILE",
                        help="your deployment record: the bundle must be about its chain id, contracts and "
                        "deployment block (without it they are shown for you to compare)")  # fmt: skip
    verify.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    verify.set_defaults(handler=_verify)


def _read_limited(path: Path, limit: int) -> bytes:
    from ledger_api.errors import BundleTooLarge, ConfigurationError

    try:
        with path.open("rb") as handle:
            content = handle.read(limit + 1)
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(content) > limit:
        raise BundleTooLarge(limit=limit, seen=len(content))
    return content


def _export(args: argparse.Namespace) -> int:
    from ledger_api.audit import bundle_zip, export_bundle
    from ledger_api.chain.deploy import Deployment
    from ledger_api.config import Settings
    from ledger_api.errors import ConfigurationError
    from ledger_api.verify.evidence import MAX_BUNDLE_BYTES, canonical_bundle

    try:
        settings = Settings()
    except ValueError as exc:  # pydantic ValidationError is a ValueError
        raise ConfigurationError(str(exc).splitlines()[0] if str(exc) else "invalid settings") from exc
    path = args.deployment or settings.var_dir / "deployment.json"
    if not path.exists():
        raise ConfigurationError(f"no deployment record at {path} (run `ledger up` or pass --deployment)")
    if args.zip and args.output == "-":
        raise ConfigurationError("--zip needs an output file (-o FILE)")
    proof = None
    if args.merkle_proof is not None:
        try:
            proof = json.loads(_read_limited(args.merkle_proof, MAX_BUNDLE_BYTES))
        except ValueError as exc:
            raise ConfigurationError(f"{args.merkle_proof} is not JSON: {exc}") from exc
    document = _read_limited(args.document, MAX_BUNDLE_BYTES) if args.document is not None else None
    bundle = export_bundle(
        args.rpc_url or settings.effective_rpc_url, Deployment.load(path), args.subject, to_block=args.to_block,
        merkle_proof=proof,
    )  # fmt: skip
    if args.zip:
        name = args.document.name if args.document is not None else "document"
        content = bundle_zip(bundle, document=document, document_name=name)
    else:
        if document is not None:
            bundle_zip(bundle, document=document)  # the same subject check, the zip is discarded
        content = canonical_bundle(bundle)
    if args.output == "-":
        sys.stdout.write(content.decode("ascii"))
    else:
        Path(args.output).write_bytes(content)
    last = bundle["blocks"][-1]["header"]
    print(
        f"ledger evidence export: {bundle['subject']['sha256']} anchored as {bundle['facts']['anchor']['kind']}, "
        f"verdict {bundle['verdict']['status']}; last block {int(last['number'], 16)} — verify with "
        f"--trusted-block set to that block's hash from a node you trust",
        file=sys.stderr,
    )
    return 0


def _verify(args: argparse.Namespace) -> int:
    from ledger_api.verify.evidence import MAX_BUNDLE_BYTES, TrustedDeployment, read_bundle_zip, verify_bundle

    raw = _read_limited(args.bundle, 2 * MAX_BUNDLE_BYTES)
    bundle, document = read_bundle_zip(raw) if raw[:4] == b"PK\x03\x04" else (raw, None)
    if args.document is not None:
        document = _read_limited(args.document, MAX_BUNDLE_BYTES)
    deployment = None
    if args.deployment is not None:
        from ledger_api.chain.deploy import Deployment
        from ledger_api.errors import ConfigurationError

        if not args.deployment.exists():
            raise ConfigurationError(f"no deployment record at {args.deployment}")
        deployment = TrustedDeployment.of(Deployment.load(args.deployment))
    report = verify_bundle(bundle, trusted_block=args.trusted_block, document=document, deployment=deployment)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    print(
        f"ledger evidence verify: OK — {report.sha256} anchored as {report.anchored_as}, verdict "
        f"{report.verdict_status}; {report.blocks} headers to trusted block {report.trusted_block}, "
        f"{report.events} proven events, {report.relayed_signatures} EIP-712 signature(s), document "
        f"{'checked' if report.document_checked else 'not given'}",
        file=sys.stderr,
    )
    if deployment is None:
        print(
            f"  chain {report.chain_id}, registry {report.registry}, ledger {report.ledger}: the bundle's claims "
            "— compare them with your deployment record (or pass --deployment)",
            file=sys.stderr,
        )
    return 0
