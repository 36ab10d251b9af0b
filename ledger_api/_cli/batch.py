"""``ledger batch anchor`` / ``ledger batch verify``: many documents under one anchored Merkle root.

``anchor`` hashes the files (progress on stderr), builds the batch (``DocumentBatch``), stores its
manifest in the content store, journals ``anchorBatch`` in a durable outbox under
``<var_dir>/batches`` keyed by the root (a re-run or a crash never anchors twice) and drives it to
final, then writes one proof file per document. ``verify`` checks a document against its proof file
offline and then asks the chain (``batch(root)`` and OpenZeppelin ``isBatchLeaf`` on the contract).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from ledger_api._cli._common import ProgressLine, load_deployment, load_settings

__all__ = ["register"]

#: Exit status when verification ran and the document is not proven part of an anchored batch.
EXIT_NOT_PROVEN = 3
_READ_CHUNK = 1 << 20


def register(subparsers: Any) -> None:
    """Add ``batch`` with its ``anchor`` and ``verify`` actions to the ``ledger`` command."""
    batch = subparsers.add_parser("batch", help="anchor many documents under one Merkle root; verify one of them")
    actions = batch.add_subparsers(dest="batch_command", metavar="ACTION", required=True)
    anchor = actions.add_parser("anchor", help="hash files, store the manifest, anchor the root, write proof files")
    anchor.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files, or directories (recursive)")
    anchor.add_argument("--as", dest="label", required=True, metavar="LABEL",
                        help="keystore label of the agency key that anchors (e.g. nl-nvwa-signer-0)")  # fmt: skip
    anchor.add_argument("--kind", type=int, default=1, help="application batch kind, 0-255 (default 1)")
    anchor.add_argument("--proofs", type=Path, default=None, metavar="DIR",
                        help="write <name>.proof.json per document here (default: ./proofs-<root prefix>)")  # fmt: skip
    anchor.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the anchor to be final")
    anchor.add_argument("--json", action="store_true", help="print the result as JSON")
    anchor.add_argument("--quiet", action="store_true", help="no progress on stderr")
    anchor.set_defaults(handler=_anchor)

    verify = actions.add_parser("verify", help="check a document against its proof file and the chain")
    verify.add_argument("document", type=Path, metavar="FILE")
    verify.add_argument("--proof", type=Path, required=True, metavar="PROOF", help="the document's .proof.json")
    verify.add_argument("--offline", action="store_true", help="check the proof only (no chain lookup)")
    verify.add_argument("--rpc-url", default=None, help="JSON-RPC endpoint (default: the configured node)")
    verify.add_argument("--deployment", type=Path, default=None, metavar="FILE",
                        help="deployment record (default: <var_dir>/deployment.json)")  # fmt: skip
    verify.add_argument("--json", action="store_true", help="print the verdict as JSON")
    verify.set_defaults(handler=_verify)


def _files(paths: list[Path]) -> list[tuple[Path, str]]:
    from ledger_api.documents import MAX_BATCH_DOCUMENTS
    from ledger_api.errors import DocumentError

    found: list[tuple[Path, str]] = []  # (file, name in the manifest: relative to the argument that named it)
    for path in paths:
        if path.is_dir():
            found += sorted(
                (p, p.relative_to(path).as_posix()) for p in path.rglob("*") if p.is_file() and not p.is_symlink()
            )
        elif path.is_file():
            found.append((path, path.name))
        else:
            raise DocumentError(f"{path}: no such file or directory")
        if len(found) > MAX_BATCH_DOCUMENTS:
            raise DocumentError(f"more than {MAX_BATCH_DOCUMENTS:,} files: split the batch")
    if not found:
        raise DocumentError("no files to anchor")
    return found


def _sha256(path: Path) -> bytes:
    from ledger_api.errors import DocumentError

    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_READ_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise DocumentError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return digest.digest()


def _anchor(args: argparse.Namespace) -> int:
    from ledger_api.chain import _tx_calls as calls
    from ledger_api.chain.client import LedgerClient
    from ledger_api.chain.keystore import Keystore
    from ledger_api.documents import Cid, DocumentBatch, content_store, write_proof_files
    from ledger_api.errors import ConfigurationError, LedgerError
    from ledger_api.outbox import EntryState, Outbox, OutboxWorker

    settings = load_settings()
    deployment = load_deployment(settings)
    files = _files(args.paths)
    progress = None if args.quiet else sys.stderr
    bar = ProgressLine(progress, total=len(files), unit="files")
    digests: list[bytes] = []
    for n, (path, _) in enumerate(files, 1):
        digests.append(_sha256(path))
        bar.update(n, final=n == len(files))
    names = [name for _, name in files]  # never local paths: the manifest is the same from any directory
    batch = DocumentBatch.build(digests, names=names, kind=args.kind)
    stored = content_store(settings).put(batch.manifest())
    root = bytes.fromhex(batch.root[2:])

    keystore = Keystore.from_settings(settings)
    if not keystore.has_signer(args.label):
        raise ConfigurationError(f"the keystore holds no key '{args.label}'")
    directory = settings.var_dir / "batches"
    directory.mkdir(parents=True, exist_ok=True)
    client = LedgerClient.from_settings(settings, deployment, keystore, labels=[args.label])
    outbox = Outbox.open(directory / "outbox.db")
    try:
        entry = outbox.submit(
            key=f"batch:{batch.root}",
            call=calls.anchor_batch(root=root, leaf_count=len(digests), kind=args.kind,
                                    manifest_cid=Cid.parse(stored.cid).to_bytes()),  # fmt: skip
            signer=client.addresses[0],
        )
        OutboxWorker(outbox=outbox, client=client, idle_sleep=0.0).drain(timeout=args.timeout)
        entry = outbox.get(entry.id)
    finally:
        outbox.close()
        client.close()
    if entry.state == EntryState.FAILED:
        raise LedgerError(f"anchorBatch failed: {entry.error_name or entry.last_error} {entry.error_args or ''}")
    if entry.state != EntryState.FINAL:
        raise LedgerError(
            f"the anchor of {batch.root} is journaled ({entry.state}) but not final after {args.timeout:.0f} s: "
            "run the same command again to resume"
        )

    out_dir = args.proofs or Path(f"proofs-{batch.root[2:14]}")
    write_proof_files(batch.proofs(manifest_cid=stored.cid), out_dir, tx_hash=entry.tx_hash,
                      block_number=entry.block_number)  # fmt: skip
    result = {"root": batch.root, "documents": len(digests), "kind": args.kind, "manifest_cid": stored.cid,
              "tx_hash": entry.tx_hash, "block_number": entry.block_number, "proofs": str(out_dir)}  # fmt: skip
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:>13}  {value}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from ledger_api.documents import read_proof_file, verify_batch_proof
    from ledger_api.errors import ProofError

    proof_file = read_proof_file(args.proof)
    verdict: dict[str, Any] = {"document": str(args.document), "sha256": "0x" + _sha256(args.document).hex()}
    checks: list[tuple[str, bool, str]] = []
    try:
        proof_file = verify_batch_proof(proof_file, bytes.fromhex(verdict["sha256"][2:]))
        checks.append(("proof", True, f"leads from the document to root {proof_file['root']}"))
    except ProofError as exc:
        checks.append(("proof", False, str(exc)))
    if all(ok for _, ok, _ in checks) and not args.offline:
        checks += _on_chain(args, proof_file)
    verdict["valid"] = all(ok for _, ok, _ in checks)
    verdict["checks"] = [{"check": c, "ok": ok, "detail": d} for c, ok, d in checks]
    if args.json:
        print(json.dumps(verdict, indent=2))
    else:
        for name, ok, detail in checks:
            print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
        print(f"{'VALID' if verdict['valid'] else 'NOT PROVEN'}: {args.document}")
    return 0 if verdict["valid"] else EXIT_NOT_PROVEN


def _on_chain(args: argparse.Namespace, proof_file: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """The root's ``BatchAnchored`` event names this manifest, leaf count and kind; ``isBatchLeaf``
    (OpenZeppelin MerkleProof on the contract) accepts the proof."""
    from ledger_api.chain import _tx_calls as calls
    from ledger_api.chain.events import EventDecoder, JsonRpc, fetch_logs
    from ledger_api.documents import Cid, leaf_hash
    from ledger_api.errors import LedgerError

    settings = load_settings()
    deployment = load_deployment(settings, args.deployment)
    root = proof_file["root"]
    decoder = EventDecoder.for_contracts({deployment.ledger: "ClearanceLedger"}, hex_bytes=True)
    topic0 = next(spec.topic0 for spec in decoder.specs if spec.name == "BatchAnchored")
    leaf = leaf_hash(["bytes32"], [proof_file["sha256"]])
    nodes = [bytes.fromhex(p[2:]) for p in proof_file["proof"]]
    call = calls.encode_call("isBatchLeaf", [bytes.fromhex(root[2:]), nodes, leaf])
    with JsonRpc(rpc_url=args.rpc_url or settings.effective_rpc_url) as rpc:
        head = rpc.block_number()
        logs = [log for page in fetch_logs(rpc, [deployment.ledger], deployment.deployment_block, head,
                                           topics=[topic0, root]) for log in page]  # fmt: skip
        answer = rpc.call("eth_call", [{"to": deployment.ledger, "data": "0x" + call.hex()}, hex(head)])
    (is_leaf,) = calls.decode_result("isBatchLeaf", bytes.fromhex(str(answer)[2:]))
    events = [e for e in decoder.decode_all(logs) if e.name == "BatchAnchored"]
    if not events:
        return [("anchored", False, f"root {root} is not anchored on this ledger")]
    anchored = events[0]
    manifest = str(anchored.args["manifestCid"])
    try:
        expected = "0x" + Cid.parse(str(proof_file.get("manifest_cid") or "")).to_bytes().hex()
    except LedgerError:  # no or no valid manifest CID in the proof file: it cannot match the anchor
        expected = ""
    same = (
        manifest.lower() == expected.lower()
        and anchored.args["leafCount"] == proof_file.get("leaf_count")
        and anchored.args["kind"] == proof_file.get("kind")
    )
    return [
        ("anchored", True, f"root anchored in block {anchored.block_number} by agency #{anchored.args['agencyIndex']}"),
        ("manifest", same, "the anchored manifest CID, leaf count and kind are the proof file's"),
        ("on-chain proof", bool(is_leaf), "OpenZeppelin MerkleProof on the contract (isBatchLeaf)"),
    ]
