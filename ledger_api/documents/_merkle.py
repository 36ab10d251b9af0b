"""Merkle batches compatible with OpenZeppelin's ``StandardMerkleTree`` (merkle-tree 1.0.8).

* leaf = ``keccak256(keccak256(abi.encode(types, value)))`` (double hash: second-preimage safe);
* interior node = ``keccak256(sort(a, b))`` (sorted pairs, what ``MerkleProof.sol`` expects);
* leaves sorted by hash (the library default), then laid out exactly like its ``makeMerkleTree``:
  an array of ``2n - 1`` nodes, leaf ``i`` of the sorted order at index ``2n - 2 - i``, node ``j``
  the hash of nodes ``2j + 1`` and ``2j + 2``; the root at index 0;
* :meth:`StandardMerkleTree.dump` / :meth:`StandardMerkleTree.load` read and write its
  ``standard-v1`` JSON format, so JavaScript tools read our trees and we read theirs.

``abi.encode`` is done by ``eth-abi``; for leaves made only of static 32-byte types (``bytes32``,
``uintN``, ``intN``, ``address``, ``bool``, ``bytesN``) a direct word encoder is used instead
(tested equal to ``eth-abi``) because it is ~20x faster. keccak256 comes from ``safe-pysha3``
(a maintained C binding); no keccak is implemented here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from eth_abi.abi import encode as abi_encode
from sha3 import keccak_256  # type: ignore[import-untyped]

from ledger_api.errors import ProofError

__all__ = ["MultiProof", "StandardMerkleTree", "keccak256", "leaf_hash"]

_STATIC = re.compile(r"^(u?int(\d*)|address|bool|bytes(\d+))$")


def keccak256(data: bytes) -> bytes:
    """Ethereum's keccak256 (not NIST SHA3-256)."""
    digest: bytes = keccak_256(data).digest()
    return digest


def _to_bytes(value: Any, what: str) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        text = value[2:] if value[:2] in ("0x", "0X") else value
        try:
            return bytes.fromhex(text)
        except ValueError as exc:
            raise ValueError(f"{what}: {value!r} is not hex") from exc
    raise ValueError(f"{what}: expected hex string or bytes, got {type(value).__name__}")


def _to_int(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{what}: expected an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value, 0)
        except ValueError as exc:
            raise ValueError(f"{what}: {value!r} is not an integer") from exc
    raise ValueError(f"{what}: expected an integer, got {type(value).__name__}")


def _normalize(abi_type: str, value: Any) -> Any:
    """JSON-friendly value (as in a standard-v1 dump) → what eth-abi expects."""
    if abi_type.endswith("]"):
        inner = abi_type[: abi_type.rindex("[")]
        if not isinstance(value, list | tuple):
            raise ValueError(f"{abi_type}: expected a list")
        return [_normalize(inner, v) for v in value]
    if abi_type.startswith(("uint", "int")):
        return _to_int(value, abi_type)
    if abi_type.startswith("bytes"):
        return _to_bytes(value, abi_type)
    if abi_type == "address":
        if not isinstance(value, str):
            raise ValueError("address: expected a 0x-prefixed hex string")
        return value
    if abi_type == "bool":
        if not isinstance(value, bool):
            raise ValueError("bool: expected true or false")
        return value
    if abi_type == "string":
        if not isinstance(value, str):
            raise ValueError("string: expected a string")
        return value
    raise ValueError(f"unsupported ABI type {abi_type!r}")


def _to_json(abi_type: str, value: Any) -> Any:
    """What a value looks like in a standard-v1 dump (bytes → 0x hex, ints → decimal strings)."""
    if abi_type.endswith("]"):
        inner = abi_type[: abi_type.rindex("[")]
        return [_to_json(inner, v) for v in value]
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _static_word(abi_type: str, value: Any) -> bytes:
    match = _STATIC.match(abi_type)
    assert match is not None
    if abi_type == "bool":
        if not isinstance(value, bool):
            raise ValueError("bool: expected true or false")
        return int(value).to_bytes(32, "big")
    if abi_type == "address":
        raw = _to_bytes(value, "address")
        if len(raw) != 20:
            raise ValueError(f"address: {value!r} is not 20 bytes")
        return raw.rjust(32, b"\0")
    if abi_type.startswith("bytes"):
        raw = _to_bytes(value, abi_type)
        width = int(match.group(3))
        if not 1 <= width <= 32 or len(raw) != width:
            raise ValueError(f"{abi_type}: {value!r} is not {width} bytes")
        return raw.ljust(32, b"\0")
    bits = int(match.group(2) or 256)
    number = _to_int(value, abi_type)
    if abi_type.startswith("u"):
        if not 0 <= number < 1 << bits:
            raise ValueError(f"{abi_type}: {value!r} out of range")
        return number.to_bytes(32, "big")
    if not -(1 << (bits - 1)) <= number < 1 << (bits - 1):
        raise ValueError(f"{abi_type}: {value!r} out of range")
    return number.to_bytes(32, "big", signed=True)


def _encoder(types: Sequence[str]) -> Any:
    return _cached_encoder(tuple(types))


@lru_cache(maxsize=64)
def _is_static(types: tuple[str, ...]) -> bool:
    """Every type encodes to exactly one 32-byte word (so a leaf is ``32 * len(types)`` bytes)."""
    return all(_STATIC.match(t) for t in types) and all(
        not t.startswith("bytes") or 1 <= int(t[5:]) <= 32 for t in types if t != "bool"
    )


@lru_cache(maxsize=64)
def _cached_encoder(types: tuple[str, ...]) -> Any:
    if _is_static(types):
        if list(types) == ["bytes32"]:

            def one_word(value: Sequence[Any]) -> bytes:
                raw = value[0]
                if isinstance(raw, bytes) and len(raw) == 32:
                    return raw
                return _static_word("bytes32", raw)

            return one_word
        return lambda value: b"".join(_static_word(t, v) for t, v in zip(types, value, strict=True))
    type_list = list(types)
    return lambda value: abi_encode(type_list, [_normalize(t, v) for t, v in zip(type_list, value, strict=True)])


def leaf_hash(types: Sequence[str], value: Sequence[Any]) -> bytes:
    """``keccak256(keccak256(abi.encode(types, value)))`` — OpenZeppelin's standard leaf."""
    if len(value) != len(types):
        raise ValueError(f"leaf has {len(value)} values for {len(types)} types")
    return keccak256(keccak256(_encoder(types)(value)))


def _node(a: bytes, b: bytes) -> bytes:
    digest: bytes = keccak_256(a + b if a < b else b + a).digest()
    return digest


def _hex(node: bytes) -> str:
    return "0x" + node.hex()


def _process_proof(leaf: bytes, proof: Iterable[bytes]) -> bytes:
    node = leaf
    for sibling in proof:
        node = _node(node, sibling)
    return node


@dataclass(frozen=True, kw_only=True)
class MultiProof:
    """A multiproof as @openzeppelin/merkle-tree returns it (leaves are values, not hashes)."""

    leaves: tuple[tuple[Any, ...], ...]  #: the proven values, in the order the proof consumes them
    proof: tuple[str, ...]  #: 0x-hex sibling hashes
    proof_flags: tuple[bool, ...]  #: true: combine two computed nodes; false: take from ``proof``


def _parse_node(text: str | bytes, root_hex: str) -> bytes:
    try:
        raw = _to_bytes(text, "node")
    except ValueError as exc:
        raise ProofError(expected_root=root_hex, detail=str(exc)) from exc
    if len(raw) != 32:
        raise ProofError(expected_root=root_hex, detail="proof nodes must be 32 bytes")
    return raw


def _process_multiproof(leaves: list[bytes], proof: list[bytes], flags: Sequence[bool], root_hex: str) -> bytes:
    if len(proof) < sum(1 for f in flags if not f) or len(leaves) + len(proof) != len(flags) + 1:
        raise ProofError(expected_root=root_hex, detail="multiproof has an invalid shape")
    stack = list(leaves)
    pending = list(proof)
    # A deque would avoid O(n) pops; proofs are small, and this mirrors the JS reference closely.
    for flag in flags:
        a = stack.pop(0)
        b = stack.pop(0) if flag else pending.pop(0)
        stack.append(_node(a, b))
    if len(stack) + len(pending) != 1:
        raise ProofError(expected_root=root_hex, detail="multiproof has an invalid shape")
    return stack[0] if stack else pending[0]


class _Nodes:
    """The tree's nodes as one buffer of 32-byte hashes (``nodes[i]`` is node ``i``)."""

    __slots__ = ("_buffer",)

    def __init__(self, buffer: bytes | bytearray) -> None:
        if not buffer or len(buffer) % 32:
            raise ValueError("tree nodes must be 32 bytes")
        self._buffer = buffer  # never handed out: only copies of single nodes leave

    def __len__(self) -> int:
        return len(self._buffer) // 32

    def __getitem__(self, index: int) -> bytes:
        if not 0 <= index < len(self):
            raise IndexError(index)
        return bytes(self._buffer[32 * index : 32 * index + 32])

    def hex_nodes(self) -> list[str]:
        """Every node as 0x-hex, in tree order."""
        text = self._buffer.hex()
        return ["0x" + text[i : i + 64] for i in range(0, len(text), 64)]


class StandardMerkleTree:
    """An OpenZeppelin-compatible Merkle tree over ABI-typed values.

    Build with :meth:`of` (or :meth:`load` a ``standard-v1`` dump); prove with :meth:`proof` /
    :meth:`multiproof`; verify without the tree with :meth:`verify` / :meth:`verify_multiproof`.
    """

    __slots__ = ("_hash_index", "_leaf_encoding", "_tree", "_tree_index", "_values")

    def __init__(
        self,
        *,
        tree: _Nodes,
        values: list[tuple[Any, ...]],
        tree_index: list[int],
        leaf_encoding: Sequence[str],
    ) -> None:
        self._tree = tree
        self._values = values
        self._tree_index = tree_index
        self._leaf_encoding = tuple(leaf_encoding)
        self._hash_index: dict[bytes, int] | None = None

    # --- building ---

    @classmethod
    def of(
        cls,
        values: Iterable[Sequence[Any]],
        leaf_encoding: Sequence[str],
        *,
        sort_leaves: bool = True,
    ) -> StandardMerkleTree:
        """Build the tree exactly as ``StandardMerkleTree.of(values, leafEncoding)`` does."""
        types = list(leaf_encoding)
        encode = _encoder(types)
        rows = [tuple(v) for v in values]
        if set(map(len, rows)) - {len(types)}:
            row = next(r for r in rows if len(r) != len(types))
            raise ValueError(f"leaf {row!r} has {len(row)} values for {len(types)} types")
        k = keccak_256
        leaves = b"".join([k(k(encode(row)).digest()).digest() for row in rows])
        return cls._from_leaves(rows, leaves, types, sort_leaves=sort_leaves)

    @classmethod
    def _from_leaves(
        cls,
        rows: list[tuple[Any, ...]],
        leaves: bytes,
        types: list[str],
        *,
        sort_leaves: bool,
    ) -> StandardMerkleTree:
        """Lay out and hash the tree from concatenated 32-byte leaf hashes (value order)."""
        n = len(leaves) // 32
        if n == 0:
            raise ValueError("a Merkle tree needs at least one leaf")
        hashes = [leaves[i : i + 32] for i in range(0, len(leaves), 32)]
        order = sorted(range(n), key=hashes.__getitem__) if sort_leaves else list(range(n))
        size = 2 * n - 1
        tree: list[bytes] = [b""] * (n - 1)
        tree.extend(hashes[i] for i in reversed(order))
        tree_index = [0] * n
        for position, value_index in enumerate(order):
            tree_index[value_index] = size - 1 - position
        k = keccak_256
        hi = n - 1
        while hi > 0:  # nodes [lo, hi) only depend on nodes >= hi
            lo = hi // 2
            tree[lo:hi] = [
                k(a + b).digest() if a < b else k(b + a).digest()
                for a, b in zip(
                    tree[2 * lo + 1 : 2 * hi + 1 : 2],
                    tree[2 * lo + 2 : 2 * hi + 2 : 2],
                    strict=True,
                )
            ]
            hi = lo
        return cls(tree=_Nodes(b"".join(tree)), values=rows, tree_index=tree_index, leaf_encoding=types)

    # --- reading ---

    @property
    def root(self) -> str:
        """0x-hex root (what ``Batch`` anchors on chain)."""
        return _hex(self._tree[0])

    @property
    def leaf_encoding(self) -> tuple[str, ...]:
        """The ABI types of every leaf."""
        return self._leaf_encoding

    def __len__(self) -> int:
        return len(self._values)

    def value(self, index: int) -> tuple[Any, ...]:
        """The value at ``index`` (insertion order)."""
        return self._values[index]

    def leaf_hash(self, value: Sequence[Any]) -> bytes:
        """The standard leaf hash of ``value`` under this tree's encoding."""
        return leaf_hash(self._leaf_encoding, value)

    def _value_index(self, value_or_index: int | Sequence[Any]) -> int:
        if isinstance(value_or_index, int):
            if not 0 <= value_or_index < len(self._values):
                raise IndexError("index out of bounds")
            return value_or_index
        if self._hash_index is None:
            # like the JS ``hashLookup``: for duplicate leaves the last value wins
            self._hash_index = {self._tree[t]: i for i, t in enumerate(self._tree_index)}
        found = self._hash_index.get(self.leaf_hash(value_or_index))
        if found is None:
            raise KeyError("leaf is not in tree")
        return found

    # --- proofs ---

    def proof(self, value_or_index: int | Sequence[Any]) -> list[str]:
        """Sibling hashes from the leaf to the root (``getProof``)."""
        index = self._tree_index[self._value_index(value_or_index)]
        proof = []
        while index > 0:
            sibling = index - 1 if index % 2 == 0 else index + 1
            proof.append(_hex(self._tree[sibling]))
            index = (index - 1) // 2
        return proof

    def proofs(self) -> list[list[str]]:
        """The proof of every value, in insertion order (``[proof(i) for i in range(len(tree))]``).

        Built top-down once: a node's proof is its sibling followed by its parent's proof, so each
        node's hex is computed once and every path shares the work above it.
        """
        nodes = self._tree.hex_nodes()
        upward: list[list[str]] = [[] for _ in range(len(nodes))]
        for index in range(1, len(nodes)):  # parents come before their children
            sibling = index - 1 if index % 2 == 0 else index + 1
            upward[index] = [nodes[sibling], *upward[(index - 1) // 2]]
        return [upward[index] for index in self._tree_index]

    def multiproof(self, values_or_indices: Sequence[int | Sequence[Any]]) -> MultiProof:
        """A multiproof for several leaves (``getMultiProof``)."""
        indices = sorted((self._tree_index[self._value_index(v)] for v in values_or_indices), reverse=True)
        if len(set(indices)) != len(indices):
            raise ValueError("cannot prove duplicated index")
        stack = list(indices)
        proof: list[str] = []
        flags: list[bool] = []
        while stack and stack[0] > 0:
            j = stack.pop(0)
            s = j - 1 if j % 2 == 0 else j + 1
            p = (j - 1) // 2
            if stack and s == stack[0]:
                flags.append(True)
                stack.pop(0)
            else:
                flags.append(False)
                proof.append(_hex(self._tree[s]))
            stack.append(p)
        if not indices:
            proof.append(_hex(self._tree[0]))
        by_hash = {self._tree[t]: i for i, t in enumerate(self._tree_index)}
        return MultiProof(
            leaves=tuple(self._values[by_hash[self._tree[i]]] for i in indices),
            proof=tuple(proof),
            proof_flags=tuple(flags),
        )

    # --- verification (static: needs only the root) ---

    @staticmethod
    def verify(
        root: str | bytes,
        leaf_encoding: Sequence[str],
        value: Sequence[Any],
        proof: Sequence[str | bytes],
    ) -> None:
        """Check ``value`` + ``proof`` against ``root``; raise :class:`ProofError` otherwise."""
        expected = _parse_node(root, str(root))
        root_hex = _hex(expected)
        try:
            leaf = leaf_hash(leaf_encoding, value)
        except ValueError as exc:
            raise ProofError(expected_root=root_hex, detail=f"bad leaf value: {exc}") from exc
        nodes = [_parse_node(p, root_hex) for p in proof]
        computed = _process_proof(leaf, nodes)
        if computed != expected:
            raise ProofError(expected_root=root_hex, detail=f"proof leads to {_hex(computed)}")

    @staticmethod
    def verify_many(
        root: str | bytes,
        leaf_encoding: Sequence[str],
        items: Iterable[tuple[Sequence[Any], Sequence[str | bytes]]],
    ) -> int:
        """Check many ``(value, proof)`` pairs against one root; return how many were checked.

        Raises :class:`ProofError` naming the first item (by position) that does not verify.
        """
        expected = _parse_node(root, str(root))
        root_hex = _hex(expected)
        types = tuple(leaf_encoding)
        checked = 0
        for value, proof in items:
            try:
                StandardMerkleTree.verify(expected, types, value, proof)
            except ProofError as exc:
                raise ProofError(expected_root=root_hex, detail=f"item {checked}: {exc}") from exc
            checked += 1
        return checked

    @staticmethod
    def verify_multiproof(root: str | bytes, leaf_encoding: Sequence[str], multiproof: MultiProof) -> None:
        """Check a multiproof against ``root``; raise :class:`ProofError` otherwise."""
        expected = _parse_node(root, str(root))
        root_hex = _hex(expected)
        try:
            leaves = [leaf_hash(leaf_encoding, v) for v in multiproof.leaves]
        except ValueError as exc:
            raise ProofError(expected_root=root_hex, detail=f"bad leaf value: {exc}") from exc
        proof = [_parse_node(p, root_hex) for p in multiproof.proof]
        computed = _process_multiproof(leaves, proof, multiproof.proof_flags, root_hex)
        if computed != expected:
            raise ProofError(expected_root=root_hex, detail=f"multiproof leads to {_hex(computed)}")

    # --- standard-v1 dump ---

    def dump(self) -> dict[str, Any]:
        """The ``standard-v1`` JSON structure (``tree.dump()`` in JavaScript)."""
        types = self._leaf_encoding
        return {
            "format": "standard-v1",
            "leafEncoding": list(types),
            "tree": self._tree.hex_nodes(),
            "values": [
                {
                    "value": [_to_json(t, v) for t, v in zip(types, row, strict=True)],
                    "treeIndex": ti,
                }
                for row, ti in zip(self._values, self._tree_index, strict=True)
            ],
        }

    @classmethod
    def load(cls, dump: dict[str, Any]) -> StandardMerkleTree:
        """Read a ``standard-v1`` dump; validate every node and value (JS ``load``)."""
        if dump.get("format") != "standard-v1":
            raise ValueError(f"unknown format {dump.get('format')!r}")
        types = dump.get("leafEncoding")
        if not isinstance(types, list) or not types:
            raise ValueError("expected leaf encoding")
        tree = [_to_bytes(node, "tree node") for node in dump["tree"]]
        if not tree or any(len(node) != 32 for node in tree):
            raise ValueError("tree nodes must be 32 bytes")
        values = [tuple(entry["value"]) for entry in dump["values"]]
        tree_index = [int(entry["treeIndex"]) for entry in dump["values"]]
        encode = _encoder(types)
        for row, ti in zip(values, tree_index, strict=True):
            if not 0 <= ti < len(tree) or 2 * ti + 1 < len(tree):
                raise ValueError(f"tree index {ti} is not a leaf")
            if keccak256(keccak256(encode(row))) != tree[ti]:
                raise ValueError("Merkle tree does not contain the expected value")
        for i in range(len(tree)):
            left, right = 2 * i + 1, 2 * i + 2
            if right >= len(tree):
                if left < len(tree):
                    raise ValueError("Merkle tree is invalid")
            elif _node(tree[left], tree[right]) != tree[i]:
                raise ValueError("Merkle tree is invalid")
        return cls(tree=_Nodes(b"".join(tree)), values=values, tree_index=tree_index, leaf_encoding=types)
