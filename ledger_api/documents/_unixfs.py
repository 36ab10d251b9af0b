"""UnixFS files as IPFS lays them out: chunking, balanced DAG, dag-pb/UnixFS protobuf encoding.

The layout reproduces ``ipfs add`` exactly (Kubo and js-ipfs agree on it):

* fixed-size chunks of 256 KiB (``size-262144``);
* CIDv1 (``--cid-version=1``, which implies ``--raw-leaves``): each chunk is a ``raw`` block; a
  file of one chunk (including the empty file) is that raw block itself (``bafkrei…``);
* CIDv0 (the default): each chunk is a dag-pb node holding ``UnixFS{Type: File, Data, filesize}``;
  a one-chunk file is that leaf node (``Qm…``);
* parents are dag-pb nodes with ``UnixFS{Type: File, filesize, blocksizes…}`` and at most 174
  links each (``Hash``, empty ``Name``, ``Tsize`` = the child's cumulative DAG size);
* the tree is balanced: leaves are grouped 174 at a time into parents, parents 174 at a time into
  grandparents, and so on until one node remains; every leaf sits at the same depth.

The protobuf encoding is written by hand (a few varints and length-delimited fields) in the
canonical field order dag-pb requires: links (field 2) before data (field 1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from ledger_api.documents._cid import CODEC_DAG_PB, CODEC_RAW, Cid, read_varint, varint
from ledger_api.errors import MalformedBlock

__all__ = [
    "CHUNK_SIZE",
    "MAX_LINKS",
    "DagBuilder",
    "DagNode",
    "compute_cid",
    "decode_dag_pb",
]

CHUNK_SIZE = 256 * 1024
MAX_LINKS = 174

_UNIXFS_RAW = 0
_UNIXFS_FILE = 2

BlockSink = Callable[[Cid, bytes], None]


# --- protobuf encoding ---------------------------------------------------------------------------


def _field_bytes(tag: int, value: bytes | memoryview) -> bytes:
    return bytes((tag,)) + varint(len(value)) + bytes(value)


def _unixfs_file(*, data: bytes | memoryview | None, filesize: int, blocksizes: Iterable[int]) -> bytes:
    out = bytearray(b"\x08" + varint(_UNIXFS_FILE))
    if data:
        out += _field_bytes(0x12, data)
    out += b"\x18" + varint(filesize)
    for size in blocksizes:
        out += b"\x20" + varint(size)
    return bytes(out)


def _pb_node(*, links: Iterable[tuple[bytes, int]], data: bytes) -> bytes:
    out = bytearray()
    for cid_bytes, tsize in links:
        link = _field_bytes(0x0A, cid_bytes) + b"\x12\x00" + b"\x18" + varint(tsize)
        out += _field_bytes(0x12, link)
    out += _field_bytes(0x0A, data)
    return bytes(out)


# --- builder ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Link:
    cid: Cid
    tsize: int  # cumulative size of the child's DAG (block bytes of it and all descendants)
    filesize: int  # bytes of file content below the child


class DagBuilder:
    """Streaming builder: feed bytes, get the root CID; every block is handed to ``sink``.

    Memory use is bounded by one chunk plus 173 pending links per DAG level.
    """

    def __init__(self, *, cid_version: int = 1, sink: BlockSink | None = None) -> None:
        if cid_version not in (0, 1):
            raise ValueError("cid_version must be 0 or 1")
        self._version = cid_version
        self._sink = sink
        self._buffer = bytearray()
        self._levels: list[list[_Link]] = [[]]
        self._size = 0

    @property
    def size(self) -> int:
        """File bytes fed so far."""
        return self._size

    def feed(self, chunk: bytes | memoryview) -> None:
        """Append file content."""
        self._size += len(chunk)
        buf = self._buffer
        if not buf and len(chunk) >= CHUNK_SIZE:
            view = memoryview(chunk)
            whole = len(view) - len(view) % CHUNK_SIZE
            for start in range(0, whole, CHUNK_SIZE):
                self._leaf(view[start : start + CHUNK_SIZE])
            buf += view[whole:]
            return
        buf += chunk
        if len(buf) >= CHUNK_SIZE:
            view = memoryview(buf)
            whole = len(view) - len(view) % CHUNK_SIZE
            for start in range(0, whole, CHUNK_SIZE):
                self._leaf(view[start : start + CHUNK_SIZE])
            rest = bytes(view[whole:])
            view.release()
            self._buffer = bytearray(rest)

    def _emit(self, cid: Cid, block: bytes | memoryview) -> None:
        if self._sink is not None:
            self._sink(cid, bytes(block))

    def _leaf(self, chunk: bytes | memoryview) -> None:
        if self._version == 1:
            cid = Cid.for_block(chunk, codec=CODEC_RAW)
            self._emit(cid, chunk)
            link = _Link(cid, len(chunk), len(chunk))
        else:
            block = _pb_node(links=(), data=_unixfs_file(data=chunk, filesize=len(chunk), blocksizes=()))
            cid = Cid.for_block(block, codec=CODEC_DAG_PB, version=0)
            self._emit(cid, block)
            link = _Link(cid, len(block), len(chunk))
        self._push(0, link)

    def _push(self, level: int, link: _Link) -> None:
        if level == len(self._levels):
            self._levels.append([])
        pending = self._levels[level]
        pending.append(link)
        if len(pending) == MAX_LINKS:
            self._levels[level] = []
            self._push(level + 1, self._parent(pending))

    def _parent(self, children: list[_Link]) -> _Link:
        filesize = sum(c.filesize for c in children)
        data = _unixfs_file(data=None, filesize=filesize, blocksizes=(c.filesize for c in children))
        block = _pb_node(links=((c.cid.to_bytes(), c.tsize) for c in children), data=data)
        cid = Cid.for_block(block, codec=CODEC_DAG_PB, version=self._version)
        self._emit(cid, block)
        return _Link(cid, len(block) + sum(c.tsize for c in children), filesize)

    def finish(self) -> Cid:
        """Flush the last chunk and close every level; return the root CID."""
        if self._buffer or (self._size == 0 and not self._levels[0]):
            self._leaf(bytes(self._buffer))
            self._buffer = bytearray()
        level = 0
        while True:
            pending = self._levels[level]
            is_top = level == len(self._levels) - 1
            if is_top and len(pending) == 1:
                return pending[0].cid
            self._levels[level] = []
            if pending:
                self._push(level + 1, self._parent(pending))
            level += 1


def compute_cid(chunks: Iterable[bytes | memoryview], *, cid_version: int = 1) -> Cid:
    """The CID ``ipfs add [--cid-version=1]`` gives the concatenation of ``chunks``."""
    builder = DagBuilder(cid_version=cid_version)
    for chunk in chunks:
        builder.feed(chunk)
    return builder.finish()


# --- decoding ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class DagNode:
    """A decoded dag-pb node carrying UnixFS file data."""

    links: tuple[tuple[Cid, int], ...]  #: (child CID, Tsize)
    data: bytes  #: file bytes held by this node itself (leaf nodes of CIDv0 DAGs)
    filesize: int  #: total file bytes under this node
    blocksizes: tuple[int, ...]  #: file bytes under each child


def _fields(buf: bytes, where: str) -> Iterator[tuple[int, int, int | bytes]]:
    pos = 0
    try:
        while pos < len(buf):
            key, pos = read_varint(buf, pos)
            number, wire = key >> 3, key & 7
            if wire == 0:
                value, pos = read_varint(buf, pos)
                yield number, wire, value
            elif wire == 2:
                length, pos = read_varint(buf, pos)
                if pos + length > len(buf):
                    raise ValueError("field runs past the end")
                yield number, wire, buf[pos : pos + length]
                pos += length
            else:
                raise ValueError(f"unsupported wire type {wire}")
    except ValueError as exc:
        raise MalformedBlock(f"cannot decode {where}: {exc}") from exc


def decode_dag_pb(block: bytes, cid: Cid) -> DagNode:
    """Decode a dag-pb block holding a UnixFS file (or raw) node."""
    links: list[tuple[Cid, int]] = []
    unixfs = b""
    for number, wire, value in _fields(block, f"dag-pb block {cid}"):
        if number == 2 and isinstance(value, bytes):
            link_cid: Cid | None = None
            tsize = 0
            for ln, _lw, lv in _fields(value, f"link in {cid}"):
                if ln == 1 and isinstance(lv, bytes):
                    link_cid = Cid.from_bytes(lv)
                elif ln == 3 and isinstance(lv, int):
                    tsize = lv
            if link_cid is None:
                raise MalformedBlock(f"link without a hash in {cid}")
            links.append((link_cid, tsize))
        elif number == 1 and isinstance(value, bytes):
            unixfs = value
        elif wire == 0:
            raise MalformedBlock(f"unexpected field {number} in dag-pb block {cid}")
    kind: int | None = None
    data = b""
    filesize: int | None = None
    blocksizes: list[int] = []
    for number, _wire, value in _fields(unixfs, f"UnixFS data of {cid}"):
        if number == 1 and isinstance(value, int):
            kind = value
        elif number == 2 and isinstance(value, bytes):
            data = value
        elif number == 3 and isinstance(value, int):
            filesize = value
        elif number == 4 and isinstance(value, int):
            blocksizes.append(value)
    if kind not in (_UNIXFS_FILE, _UNIXFS_RAW):
        raise MalformedBlock(f"{cid} is not a UnixFS file node (type {kind})")
    if len(blocksizes) != len(links):
        raise MalformedBlock(f"{cid} has {len(links)} links but {len(blocksizes)} blocksizes")
    if filesize is None:
        filesize = len(data) + sum(blocksizes)
    if filesize != len(data) + sum(blocksizes):
        raise MalformedBlock(f"{cid} declares filesize {filesize} inconsistent with its parts")
    return DagNode(links=tuple(links), data=data, filesize=filesize, blocksizes=tuple(blocksizes))
