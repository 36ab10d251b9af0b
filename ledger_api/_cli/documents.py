"""``ledger cid``, ``ledger merkle …`` and ``ledger store …`` commands."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ledger_api.documents import (
    DEFAULT_MAX_SIZE,
    ContentStore,
    IpfsStore,
    LocalStore,
    StandardMerkleTree,
    cid_of_file,
    export_car,
    import_car,
)
from ledger_api.errors import DocumentError

__all__ = ["register"]

_DEFAULT_STORE = "var/blocks"


def _load_json(text_or_path: str, what: str) -> Any:
    """A JSON value given inline, as ``@FILE``, or as a path to an existing file."""
    try:
        if text_or_path.startswith("@"):
            return json.loads(Path(text_or_path[1:]).read_text(encoding="utf-8"))
        stripped = text_or_path.lstrip()
        if stripped[:1] in ("[", "{", '"') or not Path(text_or_path).is_file():
            return json.loads(text_or_path)
        return json.loads(Path(text_or_path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise DocumentError(f"cannot read {what}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise DocumentError(f"{what} is not valid JSON: {exc}") from exc


def _types(text: str) -> list[str]:
    types = [t.strip() for t in text.split(",") if t.strip()]
    if not types:
        raise DocumentError("--types needs at least one ABI type, e.g. --types bytes32,uint256")
    return types


# --- ledger cid ----------------------------------------------------------------------------------


def _cmd_cid(args: argparse.Namespace) -> int:
    try:
        cid = cid_of_file(args.path, cid_version=args.cid_version, max_size=args.max_size)
    except OSError as exc:
        raise DocumentError(f"cannot read {args.path}: {exc.strerror or exc}") from exc
    print(cid)
    return 0


# --- ledger merkle -------------------------------------------------------------------------------


def _cmd_merkle_build(args: argparse.Namespace) -> int:
    values = _load_json("@" + args.values, "VALUES")
    if not isinstance(values, list) or not values or not all(isinstance(v, list) for v in values):
        raise DocumentError("VALUES.json must be a non-empty JSON array of leaf tuples (arrays)")
    try:
        tree = StandardMerkleTree.of(values, _types(args.types))
    except (ValueError, TypeError, OverflowError) as exc:
        raise DocumentError(f"cannot encode the leaves: {exc}") from exc
    text = json.dumps(tree.dump(), indent=2) + "\n"
    if args.output:
        tmp = Path(args.output).with_name(Path(args.output).name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, args.output)
        print(tree.root)
    else:
        sys.stdout.write(text)
    return 0


def _load_tree(path: str) -> StandardMerkleTree:
    dump = _load_json("@" + path, "tree dump")
    try:
        return StandardMerkleTree.load(dump)
    except (ValueError, KeyError, TypeError) as exc:
        raise DocumentError(f"{path} is not a valid standard-v1 tree: {exc}") from exc


def _cmd_merkle_proof(args: argparse.Namespace) -> int:
    tree = _load_tree(args.tree)
    try:
        proof = tree.proof(args.index)
    except IndexError as exc:
        raise DocumentError(f"no leaf with index {args.index} (tree has {len(tree)})") from exc
    dump = tree.dump()
    print(
        json.dumps(
            {
                "root": tree.root,
                "leafEncoding": list(tree.leaf_encoding),
                "value": dump["values"][args.index]["value"],
                "proof": proof,
            },
            indent=2,
        )
    )
    return 0


def _cmd_merkle_verify(args: argparse.Namespace) -> int:
    bundle: dict[str, Any] = {}
    if args.bundle:
        loaded = _load_json("@" + args.bundle, "proof bundle")
        if not isinstance(loaded, dict):
            raise DocumentError("the proof bundle must be a JSON object")
        bundle = loaded
    root = args.root or bundle.get("root")
    types = _types(args.types) if args.types else bundle.get("leafEncoding")
    value = _load_json(args.value, "--value") if args.value else bundle.get("value")
    proof = _load_json(args.proof, "--proof") if args.proof else bundle.get("proof")
    if root is None or types is None or value is None or proof is None:
        raise DocumentError("need --root, --types, --value and --proof (or a --bundle holding them)")
    if not isinstance(value, list) or not isinstance(proof, list):
        raise DocumentError("--value and --proof must be JSON arrays")
    StandardMerkleTree.verify(root, types, value, proof)  # raises ProofError
    print(f"OK: leaf is in the tree with root {root}")
    return 0


# --- ledger store --------------------------------------------------------------------------------


def _store(args: argparse.Namespace) -> ContentStore:
    if args.ipfs_api:
        return IpfsStore(args.ipfs_api)
    return LocalStore(args.store)


def _cmd_store_put(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        with open(args.path, "rb") as fh:
            stored = store.put(fh, max_size=args.max_size, cid_version=args.cid_version)
    except OSError as exc:
        raise DocumentError(f"cannot read {args.path}: {exc.strerror or exc}") from exc
    print(stored.cid)
    return 0


def _cmd_store_get(args: argparse.Namespace) -> int:
    store = _store(args)
    chunks = store.get(args.cid, max_size=args.max_size)
    if args.output in (None, "-"):
        for chunk in chunks:
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        return 0
    tmp = Path(args.output).with_name(Path(args.output).name + ".part")
    try:
        with open(tmp, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
        os.replace(tmp, args.output)
    finally:
        tmp.unlink(missing_ok=True)
    return 0


def _cmd_store_ls(args: argparse.Namespace) -> int:
    for cid in _store(args).list():
        print(cid)
    return 0


def _cmd_store_pin(args: argparse.Namespace) -> int:
    _store(args).pin(args.cid)
    return 0


def _cmd_store_unpin(args: argparse.Namespace) -> int:
    _store(args).unpin(args.cid)
    return 0


def _cmd_store_export(args: argparse.Namespace) -> int:
    from ledger_api._cli._common import ProgressLine

    store = _store(args)
    tmp = Path(args.output).with_name(Path(args.output).name + ".part")
    line = ProgressLine(None if args.quiet else sys.stderr, total=None, unit="blocks")
    seen = [0]

    def progress(blocks: int, size: int) -> None:
        seen[0] = blocks
        line.update(blocks, extra=f"{size / 1e6:,.1f} MB")

    try:
        with open(tmp, "wb") as fh:
            written = export_car(store, args.cid, fh, progress=progress)
        line.update(seen[0], final=True, extra=f"{written / 1e6:,.1f} MB written to {args.output}")
        os.replace(tmp, args.output)
    finally:
        tmp.unlink(missing_ok=True)
    return 0


def _cmd_store_import(args: argparse.Namespace) -> int:
    store = _store(args)
    with open(args.car, "rb") as fh:
        result = import_car(store, fh)
    for root in result.roots:
        print(root)
    return 0


def register(subparsers: Any) -> None:
    """Add the ``cid``, ``merkle`` and ``store`` command groups to ``ledger``."""
    cid = subparsers.add_parser(
        "cid",
        help="print the IPFS CID of a file (as `ipfs add` computes it)",
        description="Print only the CID `ipfs add --cid-version=1 --raw-leaves` (default) or"
        " `ipfs add` (--cid-version 0) gives PATH. Nothing is stored.",
    )
    cid.add_argument("path", metavar="PATH")
    cid.add_argument("--cid-version", type=int, choices=(0, 1), default=1)
    cid.add_argument("--max-size", type=int, default=None, help="refuse files larger than this")
    cid.set_defaults(handler=_cmd_cid)

    merkle = subparsers.add_parser("merkle", help="OpenZeppelin-compatible Merkle batches")
    msub = merkle.add_subparsers(dest="merkle_command", metavar="SUBCOMMAND")
    build = msub.add_parser(
        "build",
        help="build a StandardMerkleTree and write its standard-v1 dump",
        description='VALUES.json is a JSON array of leaf tuples, e.g. [["0x…", "5"], …].',
    )
    build.add_argument("values", metavar="VALUES.json")
    build.add_argument("--types", required=True, help="comma-separated ABI types, e.g. bytes32,uint256")
    build.add_argument("-o", "--output", metavar="FILE", help="write the dump here (prints the root)")
    build.set_defaults(handler=_cmd_merkle_build)

    proof = msub.add_parser("proof", help="print the proof bundle for one leaf of a dump")
    proof.add_argument("tree", metavar="TREE.json", help="a standard-v1 dump")
    proof.add_argument("--index", type=int, required=True, help="leaf index in VALUES order")
    proof.set_defaults(handler=_cmd_merkle_proof)

    verify = msub.add_parser(
        "verify",
        help="verify a leaf and its proof against a root (exit 1 if it does not)",
        description="Give --root/--types/--value/--proof, or --bundle FILE as printed by"
        " `ledger merkle proof` (explicit flags override bundle fields). JSON flags accept"
        " inline JSON or @FILE.",
    )
    verify.add_argument("--bundle", metavar="FILE")
    verify.add_argument("--root", help="0x-hex Merkle root (e.g. as anchored on chain)")
    verify.add_argument("--types", help="comma-separated ABI types")
    verify.add_argument("--value", help='leaf tuple as JSON, e.g. \'["0x…", "5"]\'')
    verify.add_argument("--proof", help="JSON array of 0x-hex sibling hashes")
    verify.set_defaults(handler=_cmd_merkle_verify)

    store = subparsers.add_parser("store", help="put / get / pin documents in a content store")
    store.add_argument("--store", default=_DEFAULT_STORE, help=f"local store directory ({_DEFAULT_STORE})")
    store.add_argument("--ipfs-api", metavar="MULTIADDR", help="use an IPFS RPC API instead")
    ssub = store.add_subparsers(dest="store_command", metavar="SUBCOMMAND")
    put = ssub.add_parser("put", help="store a file; prints its CID")
    put.add_argument("path", metavar="PATH")
    put.add_argument("--cid-version", type=int, choices=(0, 1), default=1)
    put.add_argument("--max-size", type=int, default=DEFAULT_MAX_SIZE)
    put.set_defaults(handler=_cmd_store_put)
    get = ssub.add_parser("get", help="fetch a document (verified against its CID)")
    get.add_argument("cid", metavar="CID")
    get.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    get.add_argument("--max-size", type=int, default=DEFAULT_MAX_SIZE)
    get.set_defaults(handler=_cmd_store_get)
    ls = ssub.add_parser("ls", help="list pinned documents")
    ls.set_defaults(handler=_cmd_store_ls)
    for name, fn in (("pin", _cmd_store_pin), ("unpin", _cmd_store_unpin)):
        p = ssub.add_parser(name, help=f"{name} a document")
        p.add_argument("cid", metavar="CID")
        p.set_defaults(handler=fn)
    exp = ssub.add_parser("export", help="write a document's DAG as a CARv1 file")
    exp.add_argument("cid", metavar="CID")
    exp.add_argument("-o", "--output", required=True, metavar="FILE.car")
    exp.add_argument("--quiet", action="store_true", help="no progress on stderr")
    exp.set_defaults(handler=_cmd_store_export)
    imp = ssub.add_parser("import", help="import a CARv1 file (every block verified)")
    imp.add_argument("car", metavar="FILE.car")
    imp.set_defaults(handler=_cmd_store_import)
