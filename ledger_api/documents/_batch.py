"""Document batches: many documents, one Merkle root, one transaction, one proof per document.

A batch is an OpenZeppelin StandardMerkleTree over the documents' sha256 digests (leaf encoding
``["bytes32"]``), so every proof verifies with OZ ``MerkleProof`` on chain (``isBatchLeaf``) and
with ``@openzeppelin/merkle-tree`` off chain. What is anchored: the root, the leaf count, an
application kind and the CID of the batch's **manifest** — deterministic JSON (sorted keys, compact,
ASCII)::

    {"format": "customs-ledger-batch/1", "kind": 1, "names": ["a.pdf", …], "tree": <standard-v1 dump>}

stored in the content store, so anyone holding a document and the manifest (or only the document
and its proof file) can prove it belongs to the anchored root. A **proof file** is a small JSON
document handed out with each document::

    {"format": "customs-ledger-batch-proof/1", "sha256": "0x…", "name": "a.pdf", "root": "0x…",
     "proof": ["0x…", …], "kind": 1, "leaf_count": N, "manifest_cid": "bafy…"}
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledger_api.documents._merkle import StandardMerkleTree
from ledger_api.errors import DocumentError, ProofError

__all__ = [
    "BATCH_FORMAT",
    "MAX_BATCH_DOCUMENTS",
    "MAX_MANIFEST_BYTES",
    "PROOF_FORMAT",
    "DocumentBatch",
    "verify_batch_proof",
]

BATCH_FORMAT = "customs-ledger-batch/1"
PROOF_FORMAT = "customs-ledger-batch-proof/1"
#: Most documents in one batch (a 1M-leaf tree builds in seconds; its manifest is ~150 MB).
MAX_BATCH_DOCUMENTS = 1_000_000
#: Largest manifest read back from a store.
MAX_MANIFEST_BYTES = 256 * 1024 * 1024
#: Largest proof file read (a depth-20 proof is ~1.5 KB).
MAX_PROOF_BYTES = 64 * 1024
_NAME_MAX = 512
_HEX32 = 66


def _sha_hex(value: object, what: str) -> str:
    if not isinstance(value, str) or len(value) != _HEX32 or not value.startswith("0x"):
        raise DocumentError(f"{what} must be a 0x-prefixed 32-byte hex string")
    try:
        bytes.fromhex(value[2:])
    except ValueError as exc:
        raise DocumentError(f"{what} must be a 0x-prefixed 32-byte hex string") from exc
    return value.lower()


@dataclass(frozen=True, kw_only=True)
class DocumentBatch:
    """A batch of documents: their sha256 digests (in order), names, kind and Merkle tree."""

    kind: int  # application-defined batch kind (uint8), e.g. 1 = parcel manifests
    digests: tuple[str, ...]  # 0x-hex sha256 of each document, in insertion order
    names: tuple[str, ...]  # a label for each document (file name), same order
    tree: StandardMerkleTree  # OpenZeppelin tree over [[digest]] with leaf encoding ["bytes32"]

    @classmethod
    def build(
        cls, digests: Sequence[bytes | str], *, names: Sequence[str] | None = None, kind: int = 1
    ) -> DocumentBatch:
        """Build the batch of ``digests`` (32-byte sha256 each); ``names`` default to the digests."""
        if not 0 <= kind <= 255:
            raise DocumentError(f"batch kind {kind} is not a uint8")
        if not digests:
            raise DocumentError("a batch needs at least one document")
        if len(digests) > MAX_BATCH_DOCUMENTS:
            raise DocumentError(f"{len(digests):,} documents: a batch holds at most {MAX_BATCH_DOCUMENTS:,}")
        raws: list[bytes] = []
        for i, d in enumerate(digests):
            if isinstance(d, bytes):
                if len(d) != 32:
                    raise DocumentError(f"digest {i} must be 32 bytes")
                raws.append(d)
            else:
                raws.append(bytes.fromhex(_sha_hex(d, f"digest {i}")[2:]))
        hexes = tuple("0x" + r.hex() for r in raws)
        if len(set(hexes)) != len(hexes):
            raise DocumentError("the same document appears twice in the batch")
        labels = tuple(names) if names is not None else hexes
        if len(labels) != len(hexes) or any(not isinstance(n, str) or len(n) > _NAME_MAX for n in labels):
            raise DocumentError(f"one name (at most {_NAME_MAX} characters) per document is needed")
        tree = StandardMerkleTree.of([[r] for r in raws], ["bytes32"])
        return cls(kind=kind, digests=hexes, names=labels, tree=tree)

    @property
    def root(self) -> str:
        """0x-hex Merkle root (what ``anchorBatch`` records)."""
        return self.tree.root

    def manifest(self) -> bytes:
        """The JSON manifest stored in the content store (its CID is anchored): compact, keys sorted,
        ASCII only, so the same batch always gives the same bytes and the same CID."""
        document = {"format": BATCH_FORMAT, "kind": self.kind, "names": list(self.names), "tree": self.tree.dump()}
        return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()

    @classmethod
    def from_manifest(cls, raw: bytes) -> DocumentBatch:
        """Read a manifest (size-limited, every node and leaf re-hashed); raise DocumentError if invalid."""
        if len(raw) > MAX_MANIFEST_BYTES:
            raise DocumentError(f"manifest of {len(raw):,} bytes exceeds {MAX_MANIFEST_BYTES:,}")
        try:
            document = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise DocumentError(f"manifest is not JSON: {exc}") from exc
        if not isinstance(document, dict) or document.get("format") != BATCH_FORMAT:
            raise DocumentError(f"not a {BATCH_FORMAT} manifest")
        kind, names, dump = document.get("kind"), document.get("names"), document.get("tree")
        if not isinstance(kind, int) or not isinstance(names, list) or not isinstance(dump, dict):
            raise DocumentError("manifest needs kind, names and tree")
        try:
            tree = StandardMerkleTree.load(dump)
        except (ValueError, KeyError, TypeError) as exc:
            raise DocumentError(f"manifest tree is invalid: {exc}") from exc
        if list(tree.leaf_encoding) != ["bytes32"]:
            raise DocumentError("manifest tree must have leaf encoding ['bytes32']")
        digests = [str(tree.value(i)[0]) for i in range(len(tree))]
        batch = cls.build(digests, names=[str(n) for n in names], kind=kind)
        if batch.root != tree.root:
            raise DocumentError("manifest tree does not match its values")
        return batch

    def proofs(self, *, manifest_cid: str) -> list[dict[str, Any]]:
        """One proof file (JSON object, :data:`PROOF_FORMAT`) per document, in insertion order."""
        root, count = self.root, len(self.digests)
        return [
            {"format": PROOF_FORMAT, "sha256": digest, "name": name, "root": root, "proof": proof,
             "kind": self.kind, "leaf_count": count, "manifest_cid": manifest_cid}
            for digest, name, proof in zip(self.digests, self.names, self.tree.proofs(), strict=True)
        ]  # fmt: skip


def verify_batch_proof(proof_file: dict[str, Any], sha256: bytes | None = None) -> dict[str, Any]:
    """Check a proof file offline (no I/O): well formed, its sha256 equals ``sha256`` (the document's,
    when given), and the proof leads from that leaf to the root. Returns the normalised proof file;
    raises :class:`ProofError` (or :class:`DocumentError` for a malformed file)."""
    if not isinstance(proof_file, dict) or proof_file.get("format") != PROOF_FORMAT:
        raise DocumentError(f"not a {PROOF_FORMAT} file")
    digest = _sha_hex(proof_file.get("sha256"), "sha256")
    root = _sha_hex(proof_file.get("root"), "root")
    proof = proof_file.get("proof")
    if not isinstance(proof, list) or len(proof) > 64:
        raise DocumentError("proof must be a list of at most 64 hashes")
    nodes = [_sha_hex(p, "proof node") for p in proof]
    if sha256 is not None and "0x" + sha256.hex() != digest:
        raise ProofError(
            expected_root=root, detail=f"the document's sha256 is 0x{sha256.hex()}, the proof is for {digest}"
        )
    StandardMerkleTree.verify(root, ["bytes32"], [digest], nodes)
    return {**proof_file, "sha256": digest, "root": root, "proof": nodes}
