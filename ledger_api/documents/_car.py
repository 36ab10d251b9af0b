"""CARv1 export and import (https://ipld.io/specs/transport/car/carv1/).

A CAR file is ``varint(len(header)) || header`` followed by sections
``varint(len(cid) + len(block)) || cid || block``. The header is DAG-CBOR
``{"roots": [CID, …], "version": 1}``; we write it byte-for-byte as ``ipfs dag export`` does and
read any well-formed CARv1 header. Import verifies every block against its CID before storing it
and raises :class:`~ledger_api.errors.TruncatedCar` if the stream stops inside the header or a
section.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO

from ledger_api.documents._cid import Cid, varint
from ledger_api.documents._store import MAX_BLOCK_SIZE, ContentStore
from ledger_api.errors import DocumentTooLarge, MalformedBlock, TruncatedCar

__all__ = ["CarImport", "export_car", "import_car", "iter_car"]

_MAX_HEADER = 1 << 20


def _cbor_head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes(((major << 5) | n,))
    for add, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * width):
            return bytes(((major << 5) | add,)) + n.to_bytes(width, "big")
    raise ValueError("integer too large for CBOR")


def _encode_header(roots: list[Cid]) -> bytes:
    out = bytearray(_cbor_head(5, 2))
    out += _cbor_head(3, 5) + b"roots"
    out += _cbor_head(4, len(roots))
    for root in roots:
        cid_bytes = b"\x00" + root.to_bytes()
        out += b"\xd8\x2a" + _cbor_head(2, len(cid_bytes)) + cid_bytes
    out += _cbor_head(3, 7) + b"version" + _cbor_head(0, 1)
    return bytes(out)


class _CborReader:
    """Just enough DAG-CBOR to read a CAR header (maps, arrays, strings, ints, tag 42)."""

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise MalformedBlock("CAR header ends inside a CBOR item")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def item(self) -> object:
        first = self._take(1)[0]
        major, info = first >> 5, first & 31
        if info < 24:
            n = info
        elif info in (24, 25, 26, 27):
            n = int.from_bytes(self._take(1 << (info - 24)), "big")
        else:
            raise MalformedBlock("unsupported CBOR item in CAR header")
        if major == 0:
            return n
        if major == 2:
            return self._take(n)
        if major == 3:
            return self._take(n).decode("utf-8")
        if major == 4:
            return [self.item() for _ in range(n)]
        if major == 5:
            out: dict[object, object] = {}
            for _ in range(n):
                key = self.item()
                out[key] = self.item()
            return out
        if major == 6 and n == 42:
            raw = self.item()
            if not isinstance(raw, bytes) or not raw.startswith(b"\x00"):
                raise MalformedBlock("bad CID in CAR header")
            return Cid.from_bytes(raw[1:])
        raise MalformedBlock("unsupported CBOR item in CAR header")


def _read_exact(stream: IO[bytes], n: int, offset: int, what: str) -> bytes:
    out = stream.read(n)
    if len(out) != n:
        raise TruncatedCar(offset=offset + len(out), detail=f"{what}: expected {n} bytes")
    return out


def _read_varint(stream: IO[bytes], offset: int, what: str) -> tuple[int | None, int]:
    """Read a varint; ``(None, 0)`` at a clean end of stream."""
    result = shift = used = 0
    while True:
        b = stream.read(1)
        if not b:
            if used == 0:
                return None, 0
            raise TruncatedCar(offset=offset + used, detail=f"{what}: varint cut short")
        used += 1
        result |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return result, used
        shift += 7
        if shift > 63:
            raise MalformedBlock(f"CAR {what}: varint too long")


@dataclass(frozen=True, kw_only=True)
class CarImport:
    """Result of :func:`import_car`."""

    roots: tuple[str, ...]  #: root CIDs named in the header
    blocks: int  #: number of blocks imported (each verified)


def export_car(
    store: ContentStore, cid: str | Cid, out: IO[bytes], *, progress: Callable[[int, int], None] | None = None
) -> int:
    """Write the whole DAG of ``cid`` as a CARv1 stream; return the bytes written. ``progress`` is called
    with (blocks written, bytes written) after each block."""
    root = Cid.parse(cid)
    header = _encode_header([root])
    written = out.write(varint(len(header)) + header) or 0
    seen: set[str] = set()
    for block_cid, block in store.dag_cids(root):
        if block_cid.block_key in seen:
            continue
        seen.add(block_cid.block_key)
        cid_bytes = block_cid.to_bytes()
        written += out.write(varint(len(cid_bytes) + len(block)) + cid_bytes + block) or 0
        if progress is not None:
            progress(len(seen), written)
    return written


def iter_car(stream: IO[bytes]) -> tuple[list[Cid], Iterator[tuple[Cid, bytes]]]:
    """Parse a CARv1 stream: ``(roots, iterator of (cid, verified block))``."""
    length, used = _read_varint(stream, 0, "header length")
    if length is None:
        raise TruncatedCar(offset=0, detail="empty stream, no CAR header")
    if length > _MAX_HEADER:
        raise MalformedBlock(f"CAR header of {length} bytes is implausibly large")
    header = _CborReader(_read_exact(stream, length, used, "header")).item()
    if not isinstance(header, dict) or header.get("version") != 1:
        raise MalformedBlock("not a CARv1 header")
    roots = header.get("roots")
    if not isinstance(roots, list) or not all(isinstance(r, Cid) for r in roots):
        raise MalformedBlock("CAR header roots are not CIDs")
    offset = used + length

    def sections() -> Iterator[tuple[Cid, bytes]]:
        pos = offset
        while True:
            size, used = _read_varint(stream, pos, "section length")
            if size is None:
                return
            pos += used
            if size > MAX_BLOCK_SIZE + 64:
                raise DocumentTooLarge(limit=MAX_BLOCK_SIZE, seen=size)
            section = _read_exact(stream, size, pos, "section")
            cid, start = Cid.decode_prefix(section, 0)
            block = section[start:]
            cid.verify(block)
            pos += size
            yield cid, block

    return list(roots), sections()


def import_car(store: ContentStore, stream: IO[bytes], *, pin: bool = True) -> CarImport:
    """Import every block of a CARv1 stream into ``store`` and pin its roots.

    Blocks are verified before they are stored. Roots are pinned only if the whole stream was read
    successfully (a truncated CAR pins nothing).
    """
    roots, sections = iter_car(stream)
    count = 0
    for cid, block in sections:
        store.put_block(cid, block)
        count += 1
    if pin:
        for root in roots:
            store.pin(root)
    return CarImport(roots=tuple(str(r) for r in roots), blocks=count)
