"""CIDs (v0 and v1) with sha2-256 multihashes: parse, encode, verify.

Only what the content stores need: codecs ``raw`` (0x55) and ``dag-pb`` (0x70), multihash
``sha2-256`` (0x12, 32 bytes), multibases base58btc (``z`` / bare ``Qm…`` for v0) and base32 lower
(``b``, the canonical text form of CIDv1). Small enough to own rather than depend on.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from ledger_api.errors import IntegrityError, InvalidCid

__all__ = ["CODEC_DAG_PB", "CODEC_RAW", "Cid", "read_varint", "varint"]

CODEC_RAW = 0x55
CODEC_DAG_PB = 0x70
_SHA2_256 = 0x12
_CODEC_NAMES = {CODEC_RAW: "raw", CODEC_DAG_PB: "dag-pb"}
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}


def varint(n: int) -> bytes:
    """Unsigned LEB128 (protobuf / multiformats varint)."""
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Decode a varint at ``pos``; return ``(value, next_pos)``. Raises ``ValueError`` if cut."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("varint runs past the end of the buffer")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 64 bits")


def _b58encode(raw: bytes) -> str:
    n = int.from_bytes(raw, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58[r])
    pad = len(raw) - len(raw.lstrip(b"\0"))
    return "1" * pad + "".join(reversed(out))


def _b58decode(text: str) -> bytes:
    n = 0
    for c in text:
        n = n * 58 + _B58_INDEX[c]
    pad = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * pad + body


@dataclass(frozen=True, kw_only=True)
class Cid:
    """A content identifier over a sha2-256 digest."""

    version: int  #: 0 or 1
    codec: int  #: multicodec of the block: 0x55 raw or 0x70 dag-pb (v0 is always dag-pb)
    digest: bytes  #: the 32-byte sha256 of the block

    def __post_init__(self) -> None:
        if self.version not in (0, 1):
            raise InvalidCid(f"unsupported CID version {self.version}")
        if self.version == 0 and self.codec != CODEC_DAG_PB:
            raise InvalidCid("CIDv0 can only address dag-pb blocks")
        if self.codec not in _CODEC_NAMES:
            raise InvalidCid(f"unsupported codec 0x{self.codec:x}")
        if len(self.digest) != 32:
            raise InvalidCid("sha2-256 digests are 32 bytes")

    # --- construction ---

    @classmethod
    def for_block(cls, block: bytes | memoryview, *, codec: int, version: int = 1) -> Cid:
        """The CID of ``block`` under ``codec`` (sha2-256)."""
        return cls(version=version, codec=codec, digest=hashlib.sha256(block).digest())

    @classmethod
    def parse(cls, text: str | Cid) -> Cid:
        """Parse a CID string (``Qm…`` v0, ``b…`` base32 v1, ``z…`` base58btc v1)."""
        if isinstance(text, Cid):
            return text
        if not isinstance(text, str) or not text:
            raise InvalidCid(f"not a CID: {text!r}")
        try:
            if len(text) == 46 and text.startswith("Qm"):
                return cls.from_bytes(_b58decode(text))
            prefix, body = text[0], text[1:]
            if prefix == "b":
                raw = base64.b32decode(body.upper() + "=" * (-len(body) % 8))
            elif prefix == "z":
                raw = _b58decode(body)
            else:
                raise InvalidCid(f"unsupported multibase prefix {prefix!r} in {text!r}")
        except (ValueError, KeyError) as exc:
            raise InvalidCid(f"not a CID: {text!r}") from exc
        return cls.from_bytes(raw)

    @classmethod
    def from_bytes(cls, raw: bytes) -> Cid:
        """Decode binary CID bytes (v0: a bare multihash; v1: version, codec, multihash)."""
        cid, end = cls.decode_prefix(raw, 0)
        if end != len(raw):
            raise InvalidCid("trailing bytes after the CID")
        return cid

    @classmethod
    def decode_prefix(cls, raw: bytes | memoryview, pos: int) -> tuple[Cid, int]:
        """Decode a binary CID starting at ``pos``; return ``(cid, next_pos)`` (used by CAR)."""
        try:
            if raw[pos] == _SHA2_256 and raw[pos + 1] == 0x20:
                digest = bytes(raw[pos + 2 : pos + 34])
                if len(digest) != 32:
                    raise ValueError("cut multihash")
                return cls(version=0, codec=CODEC_DAG_PB, digest=digest), pos + 34
            version, pos = read_varint(raw, pos)
            if version != 1:
                raise InvalidCid(f"unsupported CID version {version}")
            codec, pos = read_varint(raw, pos)
            mh_code, pos = read_varint(raw, pos)
            mh_len, pos = read_varint(raw, pos)
        except (IndexError, ValueError) as exc:
            raise InvalidCid("truncated CID bytes") from exc
        if mh_code != _SHA2_256 or mh_len != 32:
            raise InvalidCid(f"unsupported multihash 0x{mh_code:x}/{mh_len}")
        digest = bytes(raw[pos : pos + 32])
        if len(digest) != 32:
            raise InvalidCid("truncated CID digest")
        return cls(version=1, codec=codec, digest=digest), pos + 32

    # --- encodings ---

    @property
    def multihash(self) -> bytes:
        """``0x12 0x20 || digest``."""
        return bytes((_SHA2_256, 0x20)) + self.digest

    def to_bytes(self) -> bytes:
        """Binary form (what dag-pb links and CAR sections carry)."""
        if self.version == 0:
            return self.multihash
        return varint(1) + varint(self.codec) + self.multihash

    def __str__(self) -> str:
        if self.version == 0:
            return _b58encode(self.multihash)
        return "b" + base64.b32encode(self.to_bytes()).decode().lower().rstrip("=")

    @property
    def codec_name(self) -> str:
        """``raw`` or ``dag-pb``."""
        return _CODEC_NAMES[self.codec]

    def to_v1(self) -> Cid:
        """The same block addressed as CIDv1 (v0 → dag-pb v1)."""
        return Cid(version=1, codec=self.codec, digest=self.digest)

    def to_v0(self) -> Cid:
        """The CIDv0 form; only dag-pb blocks have one."""
        return Cid(version=0, codec=self.codec, digest=self.digest)

    @property
    def block_key(self) -> str:
        """Storage key shared by every CID of the same bytes (base32 of the multihash)."""
        return base64.b32encode(self.multihash).decode().rstrip("=")

    def verify(self, block: bytes | memoryview) -> None:
        """Raise :class:`IntegrityError` naming this CID unless ``block`` hashes to it."""
        if hashlib.sha256(block).digest() != self.digest:
            raise IntegrityError(str(self), "block hash differs")
