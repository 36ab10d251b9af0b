"""Pure hashing and commitment code shared by the documents package, the verifier and the oracles.

Three kinds of commitment, all without I/O beyond the stream a caller hands in:

* :func:`sha256_bytes` / :func:`sha256_stream` — the sha256 of a document's exact bytes (what a
  declaration anchors as a supporting document's ``sha256``). Streams are read in chunks and a size
  limit is enforced while reading, so an oversized input is refused before it is read completely.
* :func:`canonical_json` / :func:`declaration_commitment` — RFC 8785 (JCS) canonical JSON of a
  structured declaration and the sha256 of that canonical form. Canonicalization is done by the
  ``rfc8785`` package (Trail of Bits); its failures are wrapped in
  :class:`~ledger_api.errors.CanonicalizationError`.
* :class:`SaltedFieldTree` / :func:`verify_disclosure` — a salted per-field Merkle commitment for
  selective disclosure. Each field becomes a leaf ``sha256(0x00 || JCS([salt_hex, name, value]))``
  with a fresh salt of at least 128 bits from :mod:`secrets`; fields are ordered by name and the
  tree is the RFC 6962 / RFC 9162 Merkle tree (interior nodes ``sha256(0x01 || left || right)``).
  The holder reveals a subset of fields, each with its salt and an inclusion proof; a verifier
  checks them against the 32-byte root (the on-chain commitment) and learns nothing about the other
  fields except how many there are.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import rfc8785

from ledger_api.errors import CanonicalizationError, DocumentTooLarge, ProofError

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MIN_SALT_BYTES",
    "DisclosedField",
    "Disclosure",
    "SaltedFieldTree",
    "canonical_json",
    "declaration_commitment",
    "iter_limited",
    "sha256_bytes",
    "sha256_stream",
    "strict_json",
    "verify_disclosure",
]

#: Read size for streaming hashes (1 MiB keeps sha256 near its peak throughput).
DEFAULT_CHUNK_SIZE = 1 << 20
#: Salts shorter than this (128 bits) are refused.
MIN_SALT_BYTES = 16

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


# --- plain sha256 commitments --------------------------------------------------------------------


def sha256_bytes(content: bytes) -> bytes:
    """Return the 32-byte sha256 digest of ``content``."""
    return hashlib.sha256(content).digest()


def iter_limited(
    stream: IO[bytes] | Iterable[bytes],
    *,
    max_size: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Iterator[bytes]:
    """Yield the chunks of ``stream`` (a binary file object or an iterable of ``bytes``).

    Raises :class:`DocumentTooLarge` as soon as more than ``max_size`` bytes have been seen: at
    most one chunk past the limit is ever read.
    """
    seen = 0
    chunks: Iterable[bytes]
    if hasattr(stream, "read"):
        reader = stream

        def _read() -> Iterator[bytes]:
            while True:
                chunk = reader.read(chunk_size)
                if not chunk:
                    return
                yield chunk

        chunks = _read()
    else:
        chunks = stream
    for chunk in chunks:
        seen += len(chunk)
        if max_size is not None and seen > max_size:
            raise DocumentTooLarge(limit=max_size, seen=seen)
        yield bytes(chunk)


def sha256_stream(
    stream: IO[bytes] | Iterable[bytes],
    *,
    max_size: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> bytes:
    """Return the sha256 digest of everything ``stream`` yields, refusing more than ``max_size``."""
    digest = hashlib.sha256()
    for chunk in iter_limited(stream, max_size=max_size, chunk_size=chunk_size):
        digest.update(chunk)
    return digest.digest()


# --- RFC 8785 canonical JSON ---------------------------------------------------------------------


def canonical_json(value: Any) -> bytes:
    """Return the RFC 8785 (JCS) canonical UTF-8 encoding of a JSON value.

    Accepts what :func:`json.loads` produces (dict with str keys, list, str, int, float, bool,
    None). Raises :class:`CanonicalizationError` for values without a canonical form (NaN,
    infinities, integers outside the IEEE 754 safe range, non-string keys, other types).
    """
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise CanonicalizationError(f"value has no RFC 8785 canonical form: {exc}") from exc


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json(data: bytes | str) -> Any:
    """Parse JSON that is about to be hashed, signed or acted on: duplicate keys and the
    ``NaN`` / ``Infinity`` constants Python accepts are refused (both would let two readers see
    different values in the same bytes). Raises ``ValueError`` (also for bad UTF-8) or
    ``RecursionError``; bound the nesting before calling on untrusted input."""
    return json.loads(data, object_pairs_hook=_unique_keys, parse_constant=_no_constant)


def declaration_commitment(declaration: Any) -> bytes:
    """Return ``sha256(canonical_json(declaration))``, the 32-byte commitment anchored on chain."""
    return hashlib.sha256(canonical_json(declaration)).digest()


# --- salted per-field Merkle commitment (selective disclosure) -----------------------------------


def _leaf_hash(salt: bytes, name: str, value: Any) -> bytes:
    return hashlib.sha256(_LEAF_PREFIX + canonical_json([salt.hex(), name, value])).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than ``n`` (n >= 2)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 Merkle Tree Hash of already-hashed leaves."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return _node_hash(_mth(leaves[:k]), _mth(leaves[k:]))


def _path(index: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 audit path for ``leaves[index]`` (bottom-up)."""
    if len(leaves) <= 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*_path(index, leaves[:k]), _mth(leaves[k:])]
    return [*_path(index - k, leaves[k:]), _mth(leaves[:k])]


def _root_from_path(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes | None:
    """RFC 9162 §2.1.3.2 inclusion-proof verification; ``None`` if the path has the wrong shape."""
    if index >= size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = _node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        return None
    return r


@dataclass(frozen=True, kw_only=True)
class DisclosedField:
    """One revealed field: its value, salt and inclusion proof in the field tree."""

    name: str  #: field name
    value: Any  #: the field's JSON value
    salt: str  #: hex salt (>= 32 hex digits) that blinds the leaf
    index: int  #: position of the field in the name-ordered tree
    proof: tuple[str, ...]  #: hex sibling hashes, bottom-up (RFC 6962 audit path)


@dataclass(frozen=True, kw_only=True)
class Disclosure:
    """What a holder hands a verifier: some fields of a committed record plus their proofs."""

    root: str  #: hex (0x-prefixed) commitment the fields are claimed to belong to
    field_count: int  #: total number of committed fields (disclosed or not)
    fields: tuple[DisclosedField, ...]  #: the revealed fields

    def to_json(self) -> str:
        """Serialize to a JSON document (stable key order)."""
        return json.dumps(
            {
                "format": "ledger-disclosure-v1",
                "root": self.root,
                "fieldCount": self.field_count,
                "fields": [
                    {
                        "name": f.name,
                        "value": f.value,
                        "salt": f.salt,
                        "index": f.index,
                        "proof": list(f.proof),
                    }
                    for f in self.fields
                ],
            },
            sort_keys=True,
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str) -> Disclosure:
        """Parse :meth:`to_json` output; raises :class:`ProofError` on a malformed document."""
        try:
            raw = json.loads(text)
            if raw.get("format") != "ledger-disclosure-v1":
                raise ValueError(f"unknown format {raw.get('format')!r}")
            return cls(
                root=str(raw["root"]),
                field_count=int(raw["fieldCount"]),
                fields=tuple(
                    DisclosedField(
                        name=str(f["name"]),
                        value=f["value"],
                        salt=str(f["salt"]),
                        index=int(f["index"]),
                        proof=tuple(str(p) for p in f["proof"]),
                    )
                    for f in raw["fields"]
                ),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ProofError(expected_root="?", detail=f"malformed disclosure: {exc}") from exc


@dataclass(frozen=True, kw_only=True)
class SaltedFieldTree:
    """The holder's side of a salted per-field commitment: every field, its salt, and the root.

    Build with :meth:`commit`; keep it (it holds the salts — :meth:`to_json` / :meth:`from_json`)
    and anchor :attr:`root`. Hand out :meth:`disclose` results; never the tree itself.
    """

    fields: Mapping[str, Any]  #: field name -> JSON value
    salts: Mapping[str, bytes] = field(repr=False)  #: field name -> salt (>= 16 bytes)

    def __post_init__(self) -> None:
        if set(self.fields) != set(self.salts):
            raise ValueError("every field needs exactly one salt")
        for name, salt in self.salts.items():
            if len(salt) < MIN_SALT_BYTES:
                raise ValueError(f"salt of field {name!r} is shorter than {MIN_SALT_BYTES} bytes")
        # Validate every value up front so errors name the field.
        for name, value in self.fields.items():
            if not isinstance(name, str):
                raise CanonicalizationError(f"field names must be strings, got {name!r}")
            try:
                canonical_json(value)
            except CanonicalizationError as exc:
                raise CanonicalizationError(f"field {name!r}: {exc}") from exc

    @classmethod
    def commit(cls, fields: Mapping[str, Any], *, salt_bytes: int = MIN_SALT_BYTES) -> SaltedFieldTree:
        """Commit to ``fields`` with a fresh random salt per field from :mod:`secrets`."""
        if salt_bytes < MIN_SALT_BYTES:
            raise ValueError(f"salts must be at least {MIN_SALT_BYTES} bytes")
        return cls(fields=dict(fields), salts={name: secrets.token_bytes(salt_bytes) for name in fields})

    @property
    def names(self) -> list[str]:
        """Field names in tree order (sorted by code point)."""
        return sorted(self.fields)

    def _leaves(self) -> list[bytes]:
        return [_leaf_hash(self.salts[n], n, self.fields[n]) for n in self.names]

    @property
    def root(self) -> bytes:
        """The 32-byte commitment to all fields."""
        return _mth(self._leaves())

    def disclose(self, names: Iterable[str]) -> Disclosure:
        """Reveal the named fields with their salts and inclusion proofs."""
        order = self.names
        leaves = self._leaves()
        wanted = sorted(set(names))
        unknown = [n for n in wanted if n not in self.fields]
        if unknown:
            raise KeyError(f"no such field(s): {', '.join(unknown)}")
        disclosed = []
        for name in wanted:
            index = order.index(name)
            disclosed.append(
                DisclosedField(
                    name=name,
                    value=self.fields[name],
                    salt=self.salts[name].hex(),
                    index=index,
                    proof=tuple("0x" + p.hex() for p in _path(index, leaves)),
                )
            )
        return Disclosure(root="0x" + _mth(leaves).hex(), field_count=len(order), fields=tuple(disclosed))

    def to_json(self) -> str:
        """Serialize fields and salts (secret: the salts unblind every field)."""
        return json.dumps(
            {
                "format": "ledger-salted-fields-v1",
                "fields": {n: {"value": self.fields[n], "salt": self.salts[n].hex()} for n in self.names},
            },
            sort_keys=True,
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str) -> SaltedFieldTree:
        """Load :meth:`to_json` output."""
        raw = json.loads(text)
        if raw.get("format") != "ledger-salted-fields-v1":
            raise ValueError(f"unknown format {raw.get('format')!r}")
        entries = raw["fields"]
        return cls(
            fields={n: e["value"] for n, e in entries.items()},
            salts={n: bytes.fromhex(e["salt"]) for n, e in entries.items()},
        )


def _hex32(text: str, what: str, root: str) -> bytes:
    try:
        raw = bytes.fromhex(text.removeprefix("0x"))
    except ValueError as exc:
        raise ProofError(expected_root=root, detail=f"{what} is not hex") from exc
    if len(raw) != 32:
        raise ProofError(expected_root=root, detail=f"{what} is not 32 bytes")
    return raw


def verify_disclosure(disclosure: Disclosure, expected_root: bytes | str) -> dict[str, Any]:
    """Check every disclosed field against ``expected_root``; return ``{name: value}``.

    Raises :class:`ProofError` if the disclosure claims another root, a salt is too short, a
    field appears twice, or any proof does not lead to the root.
    """
    root = expected_root if isinstance(expected_root, bytes) else _hex32(expected_root, "root", expected_root)
    root_hex = "0x" + root.hex()
    claimed = _hex32(disclosure.root, "disclosure root", root_hex)
    if claimed != root:
        raise ProofError(expected_root=root_hex, detail=f"disclosure is for another commitment {disclosure.root}")
    revealed: dict[str, Any] = {}
    seen_index: set[int] = set()
    for f in disclosure.fields:
        if f.name in revealed or f.index in seen_index:
            raise ProofError(expected_root=root_hex, detail=f"field {f.name!r} disclosed twice")
        try:
            salt = bytes.fromhex(f.salt)
        except ValueError as exc:
            raise ProofError(expected_root=root_hex, detail=f"salt of {f.name!r} is not hex") from exc
        if len(salt) < MIN_SALT_BYTES:
            raise ProofError(expected_root=root_hex, detail=f"salt of {f.name!r} is too short")
        try:
            leaf = _leaf_hash(salt, f.name, f.value)
        except CanonicalizationError as exc:
            raise ProofError(expected_root=root_hex, detail=f"field {f.name!r}: {exc}") from exc
        path = [_hex32(p, f"proof of {f.name!r}", root_hex) for p in f.proof]
        if _root_from_path(f.index, disclosure.field_count, leaf, path) != root:
            raise ProofError(expected_root=root_hex, detail=f"field {f.name!r} does not verify")
        revealed[f.name] = f.value
        seen_index.add(f.index)
    return revealed
