"""Document batches: manifest round trip, one proof per document, every alteration refused."""

from __future__ import annotations

import hashlib
import json

import pytest

from ledger_api.documents import PROOF_FORMAT, DocumentBatch, StandardMerkleTree, verify_batch_proof
from ledger_api.errors import DocumentError, ProofError


def _digests(n: int) -> list[bytes]:
    return [hashlib.sha256(f"parcel manifest {i}".encode()).digest() for i in range(n)]


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 257])
def test_every_document_has_a_proof_that_verifies_and_the_manifest_round_trips(n: int) -> None:
    digests = _digests(n)
    batch = DocumentBatch.build(digests, names=[f"p{i}.json" for i in range(n)], kind=7)
    assert batch.root == StandardMerkleTree.of([["0x" + d.hex()] for d in digests], ["bytes32"]).root
    again = DocumentBatch.from_manifest(batch.manifest())
    assert (again.root, again.digests, again.names, again.kind) == (batch.root, batch.digests, batch.names, 7)
    proofs = batch.proofs(manifest_cid="bafkreiexample")
    assert [p["sha256"] for p in proofs] == ["0x" + d.hex() for d in digests]
    for digest, proof in zip(digests, proofs, strict=True):
        assert proof["format"] == PROOF_FORMAT and proof["leaf_count"] == n and proof["kind"] == 7
        assert verify_batch_proof(json.loads(json.dumps(proof)), digest)["root"] == batch.root


def test_a_proof_is_refused_for_another_document_an_altered_node_or_another_root() -> None:
    digests = _digests(9)
    batch = DocumentBatch.build(digests)
    proof = batch.proofs(manifest_cid="x")[4]
    with pytest.raises(ProofError):
        verify_batch_proof(proof, digests[5])  # another document
    for i in range(len(proof["proof"])):
        nodes = list(proof["proof"])
        nodes[i] = "0x" + ("00" if nodes[i][2:4] != "00" else "11") + nodes[i][4:]
        with pytest.raises(ProofError):
            verify_batch_proof({**proof, "proof": nodes})
    other = DocumentBatch.build(_digests(10))
    with pytest.raises(ProofError):
        verify_batch_proof({**proof, "root": other.root})
    with pytest.raises(ProofError):
        verify_batch_proof({**proof, "proof": proof["proof"][:-1]})


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: {**p, "format": "other/1"},
        lambda p: {**p, "sha256": "0x1234"},
        lambda p: {**p, "root": 42},
        lambda p: {**p, "proof": "0x00"},
        lambda p: {**p, "proof": ["0x" + "00" * 32] * 65},
        lambda p: {**p, "proof": ["zz" * 33]},
    ],
)
def test_malformed_proof_files_are_typed_errors(mutate: object) -> None:
    proof = DocumentBatch.build(_digests(3)).proofs(manifest_cid="x")[0]
    with pytest.raises(DocumentError):
        verify_batch_proof(mutate(proof))  # type: ignore[operator]


def test_building_refuses_empty_duplicate_and_out_of_range_input() -> None:
    with pytest.raises(DocumentError):
        DocumentBatch.build([])
    with pytest.raises(DocumentError):
        DocumentBatch.build(_digests(2) * 2)
    with pytest.raises(DocumentError):
        DocumentBatch.build(_digests(2), kind=256)
    with pytest.raises(DocumentError):
        DocumentBatch.build(_digests(2), names=["only one"])
    with pytest.raises(DocumentError):
        DocumentBatch.build([b"short"])


def test_a_tampered_manifest_is_refused() -> None:
    batch = DocumentBatch.build(_digests(5), names=[str(i) for i in range(5)])
    manifest = json.loads(batch.manifest())
    manifest["tree"]["values"][0]["value"] = ["0x" + "ab" * 32]
    with pytest.raises(DocumentError):
        DocumentBatch.from_manifest(json.dumps(manifest).encode())
    with pytest.raises(DocumentError):
        DocumentBatch.from_manifest(b"[1, 2")
    with pytest.raises(DocumentError):
        DocumentBatch.from_manifest(json.dumps({**manifest, "format": "x"}).encode())
