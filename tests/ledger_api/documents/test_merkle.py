"""OpenZeppelin StandardMerkleTree compatibility (cross-checked against the npm package itself)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_api.documents import MultiProof, StandardMerkleTree, keccak256, leaf_hash
from ledger_api.documents._merkle import _encoder
from ledger_api.errors import ProofError

REPO = Path(__file__).resolve().parents[3]
OZ_MERKLE = REPO / "node_modules" / "@openzeppelin" / "merkle-tree"

TYPES = ["address", "uint256", "bytes32", "string", "bool"]


def _values(n: int) -> list[list[Any]]:
    return [
        [
            "0x" + f"{i + 1:040x}",
            str(10**18 * i + 7),
            "0x" + keccak256(str(i).encode()).hex(),
            f"parcel-{i}-\u00e9",
            i % 2 == 0,
        ]
        for i in range(n)
    ]


def test_leaf_is_double_keccak_of_abi_encode() -> None:
    value = ["0x" + "11" * 20, "5"]
    encoded = abi_encode(["address", "uint256"], ["0x" + "11" * 20, 5])
    assert leaf_hash(["address", "uint256"], value) == keccak256(keccak256(encoded))


@settings(max_examples=60, deadline=None)
@given(
    address=st.binary(min_size=20, max_size=20),
    number=st.integers(min_value=0, max_value=2**256 - 1),
    signed=st.integers(min_value=-(2**127), max_value=2**127 - 1),
    word=st.binary(min_size=32, max_size=32),
    short=st.binary(min_size=4, max_size=4),
    flag=st.booleans(),
)
def test_fast_static_encoder_equals_eth_abi(
    address: bytes, number: int, signed: int, word: bytes, short: bytes, flag: bool
) -> None:
    types = ["address", "uint256", "int128", "bytes32", "bytes4", "bool"]
    ours = _encoder(types)(["0x" + address.hex(), number, signed, word, short, flag])
    ref = abi_encode(types, ["0x" + address.hex(), number, signed, word, short, flag])
    assert ours == ref


def test_static_encoder_range_checks() -> None:
    with pytest.raises(ValueError):
        _encoder(["uint8"])([256])
    with pytest.raises(ValueError):
        _encoder(["bytes32"])(["0x1234"])
    with pytest.raises(ValueError):
        _encoder(["bool"])([1])


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33])
def test_every_proof_verifies_and_only_against_its_root(n: int) -> None:
    tree = StandardMerkleTree.of(_values(n), TYPES)
    other = StandardMerkleTree.of(_values(n + 1), TYPES)
    every = tree.proofs()
    assert len(every) == n
    for i in range(n):
        proof = tree.proof(i)
        assert every[i] == proof  # all at once == one by one
        StandardMerkleTree.verify(tree.root, TYPES, tree.value(i), proof)
        assert tree.proof(list(tree.value(i))) == proof  # by value == by index
        with pytest.raises(ProofError) as err:
            StandardMerkleTree.verify(other.root, TYPES, tree.value(i), proof)
        assert err.value.expected_root == other.root


def test_altered_leaf_fails() -> None:
    tree = StandardMerkleTree.of(_values(6), TYPES)
    value = list(tree.value(2))
    proof = tree.proof(2)
    value[1] = "8"
    with pytest.raises(ProofError):
        StandardMerkleTree.verify(tree.root, TYPES, value, proof)
    with pytest.raises(ProofError):
        StandardMerkleTree.verify(tree.root, TYPES, tree.value(2), [*proof, "0x" + "00" * 32])
    with pytest.raises(KeyError):
        tree.proof(value)


@pytest.mark.parametrize("picks", [[0], [1, 4], [0, 1, 2, 3, 4, 5, 6], [6, 2, 3], []])
def test_multiproofs(picks: list[int]) -> None:
    tree = StandardMerkleTree.of(_values(7), TYPES)
    multi = tree.multiproof(picks)
    assert sorted(map(tuple, multi.leaves)) == sorted(tuple(tree.value(i)) for i in picks)
    StandardMerkleTree.verify_multiproof(tree.root, TYPES, multi)
    if picks:
        bad = MultiProof(leaves=multi.leaves[1:], proof=multi.proof, proof_flags=multi.proof_flags)
        with pytest.raises(ProofError):
            StandardMerkleTree.verify_multiproof(tree.root, TYPES, bad)
    with pytest.raises(ValueError):
        tree.multiproof([0, 0])


def test_dump_load_round_trip_and_tamper_detection() -> None:
    tree = StandardMerkleTree.of(_values(9), TYPES)
    dump = json.loads(json.dumps(tree.dump()))
    assert dump["format"] == "standard-v1"
    loaded = StandardMerkleTree.load(dump)
    assert loaded.root == tree.root and loaded.proof(3) == tree.proof(3)
    dump["values"][0]["value"][3] = "tampered"
    with pytest.raises(ValueError, match="expected value"):
        StandardMerkleTree.load(dump)
    dump = tree.dump()
    dump["tree"][1] = "0x" + "00" * 32
    with pytest.raises(ValueError, match="invalid"):
        StandardMerkleTree.load(dump)


def test_bytes32_batch_of_document_hashes() -> None:
    leaves = [[keccak256(i.to_bytes(4, "big"))] for i in range(1000)]
    tree = StandardMerkleTree.of(leaves, ["bytes32"])
    StandardMerkleTree.verify(tree.root, ["bytes32"], leaves[500], tree.proof(500))
    assert len(tree.dump()["tree"]) == 1999


_JS = r"""
const { StandardMerkleTree } = require(process.argv[2]);
const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const tree = StandardMerkleTree.of(input.values, input.types);
const ours = StandardMerkleTree.load(input.ours);   // validates our dump with their code
const out = {
  dump: tree.dump(),
  proof3: tree.getProof(3),
  multi: tree.getMultiProof([0, 2, 5]),
  verifiesOurs: StandardMerkleTree.verify(
    input.ours.tree[0], input.types, input.values[4], input.ourProof4),
  oursRoot: ours.root,
};
process.stdout.write(JSON.stringify(out));
"""


def test_cross_check_with_openzeppelin_merkle_tree_js(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None or not (OZ_MERKLE / "package.json").exists():
        pytest.skip("needs node and node_modules/@openzeppelin/merkle-tree (run `npm ci` at the root)")
    values = _values(11)
    tree = StandardMerkleTree.of(values, TYPES)
    payload = {"values": values, "types": TYPES, "ours": tree.dump(), "ourProof4": tree.proof(4)}
    script = tmp_path / "oz_check.js"
    script.write_text(_JS, encoding="utf-8")
    result = subprocess.run(
        [node, str(script), str(OZ_MERKLE)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    js = json.loads(result.stdout)
    assert js["dump"] == tree.dump()  # identical tree, order, values and treeIndex
    assert js["proof3"] == tree.proof(3)
    multi = tree.multiproof([0, 2, 5])
    assert js["multi"]["proof"] == list(multi.proof)
    assert js["multi"]["proofFlags"] == list(multi.proof_flags)
    assert js["multi"]["leaves"] == [list(v) for v in multi.leaves]
    assert js["verifiesOurs"] is True and js["oursRoot"] == tree.root


def test_verify_many_checks_every_item() -> None:
    values = [[keccak256(i.to_bytes(4, "big"))] for i in range(3000)]
    tree = StandardMerkleTree.of(values, ["bytes32"])
    items = [(values[i], tree.proof(i)) for i in range(0, 3000, 3)]
    assert StandardMerkleTree.verify_many(tree.root, ["bytes32"], items) == 1000
    bad = list(items)
    bad[417] = (values[1], items[417][1])  # a proof for another leaf
    with pytest.raises(ProofError, match="item 417"):
        StandardMerkleTree.verify_many(tree.root, ["bytes32"], bad)
    other = StandardMerkleTree.of(values[:10], ["bytes32"])
    with pytest.raises(ProofError, match="item 0"):
        StandardMerkleTree.verify_many(other.root, ["bytes32"], items)
    mixed = [["0x" + f"{i:040x}", str(i)] for i in range(50)]
    mtree = StandardMerkleTree.of(mixed, ["address", "uint256"])
    pairs = [(mixed[i], mtree.proof(i)) for i in range(50)]
    assert StandardMerkleTree.verify_many(mtree.root, ["address", "uint256"], pairs) == 50
