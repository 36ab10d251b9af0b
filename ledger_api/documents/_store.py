"""The content-store interface and the embedded on-disk store.

Every store addresses documents by the CID ``ipfs add`` would give them, and every read is
trustless: each block is hashed and compared with the CID it was requested under before a single
byte of it is returned (:class:`~ledger_api.errors.IntegrityError` otherwise).
"""

from __future__ import annotations

import abc
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ledger_api.documents._cid import CODEC_DAG_PB, CODEC_RAW, Cid
from ledger_api.documents._unixfs import DagBuilder, decode_dag_pb
from ledger_api.errors import (
    DocumentNotFound,
    DocumentTooLarge,
    IntegrityError,
    MalformedBlock,
    StoreUnavailable,
)
from ledger_api.hashing import iter_limited

__all__ = ["DEFAULT_MAX_SIZE", "ContentStore", "LocalStore", "Source", "StoredDocument"]

#: Default per-document limit (100 MiB); callers pass their own ``max_size`` to change it.
DEFAULT_MAX_SIZE = 100 * 1024 * 1024
#: Upper bound for one block (bitswap's limit is 2 MiB; ours are <= 256 KiB + a small header).
MAX_BLOCK_SIZE = 2 * 1024 * 1024

Source = bytes | bytearray | memoryview | IO[bytes] | Iterable[bytes]


@dataclass(frozen=True, kw_only=True)
class StoredDocument:
    """Result of :meth:`ContentStore.put`."""

    cid: str  #: the document's CID (string form, as ``ipfs add`` prints it in base32 / base58)
    size: int  #: bytes of document content


def _chunks(source: Source, max_size: int | None) -> Iterator[bytes]:
    if isinstance(source, bytes | bytearray | memoryview):
        if max_size is not None and len(source) > max_size:
            raise DocumentTooLarge(limit=max_size, seen=len(source))
        return iter((bytes(source),))
    return iter_limited(source, max_size=max_size)


class ContentStore(abc.ABC):
    """One interface for every content store (embedded, IPFS RPC).

    Subclasses provide block access (:meth:`get_block_unverified`, :meth:`put_block`) and
    pinning; reading whole documents, verification and size limits live here once.
    """

    # --- what a store provides ---

    @abc.abstractmethod
    def put(
        self,
        source: Source,
        *,
        max_size: int | None = DEFAULT_MAX_SIZE,
        cid_version: int = 1,
        pin: bool = True,
    ) -> StoredDocument:
        """Store a document (bytes, a binary file object or an iterable of chunks).

        Oversized input raises :class:`DocumentTooLarge` before it is read completely and
        leaves nothing behind.
        """

    @abc.abstractmethod
    def get_block_unverified(self, cid: Cid) -> bytes:
        """Raw block bytes as the backend has them. Use :meth:`get_block` instead."""

    @abc.abstractmethod
    def put_block(self, cid: Cid, block: bytes) -> None:
        """Store one block under ``cid`` after verifying it (used by CAR import)."""

    @abc.abstractmethod
    def has(self, cid: str | Cid) -> bool:
        """Whether the document's root block is available from this store."""

    @abc.abstractmethod
    def pin(self, cid: str | Cid) -> None:
        """Keep the document (and its whole DAG) from garbage collection."""

    @abc.abstractmethod
    def unpin(self, cid: str | Cid) -> None:
        """Allow the document to be garbage-collected."""

    @abc.abstractmethod
    def list(self) -> list[str]:
        """CIDs of the pinned documents, sorted."""

    # --- shared, verified reads ---

    def get_block(self, cid: str | Cid) -> bytes:
        """Block bytes, verified against ``cid`` (:class:`IntegrityError` otherwise)."""
        parsed = Cid.parse(cid)
        block = self.get_block_unverified(parsed)
        if len(block) > MAX_BLOCK_SIZE:
            raise IntegrityError(str(parsed), f"block of {len(block)} bytes exceeds the limit")
        parsed.verify(block)
        return block

    def size(self, cid: str | Cid) -> int:
        """Document size in bytes as declared by its (verified) root block."""
        parsed = Cid.parse(cid)
        block = self.get_block(parsed)
        if parsed.codec == CODEC_RAW:
            return len(block)
        return decode_dag_pb(block, parsed).filesize

    def get(self, cid: str | Cid, *, max_size: int | None = DEFAULT_MAX_SIZE) -> Iterator[bytes]:
        """Stream a document's bytes, every block verified against its CID before it is yielded.

        The root is fetched and checked first: a document larger than ``max_size`` raises
        :class:`DocumentTooLarge` before any content is returned.
        """
        parsed = Cid.parse(cid)
        root = self.get_block(parsed)
        if parsed.codec == CODEC_RAW:
            if max_size is not None and len(root) > max_size:
                raise DocumentTooLarge(limit=max_size, seen=len(root))
            return iter((root,))
        node = decode_dag_pb(root, parsed)
        if max_size is not None and node.filesize > max_size:
            raise DocumentTooLarge(limit=max_size, seen=node.filesize)
        return self._walk(parsed, root, node.filesize)

    def _walk(self, root_cid: Cid, root_block: bytes, expected: int) -> Iterator[bytes]:
        produced = 0
        # Depth-first, left to right; each entry: (cid, block if already fetched, declared size)
        stack: list[tuple[Cid, bytes | None, int]] = [(root_cid, root_block, expected)]
        while stack:
            cid, block, declared = stack.pop()
            if block is None:
                block = self.get_block(cid)
            if cid.codec == CODEC_RAW:
                if len(block) != declared:
                    raise IntegrityError(str(root_cid), f"leaf {cid} has an unexpected size")
                produced += len(block)
                yield block
                continue
            if cid.codec != CODEC_DAG_PB:  # pragma: no cover - Cid refuses other codecs
                raise MalformedBlock(f"unsupported codec in {cid}")
            node = decode_dag_pb(block, cid)
            if node.filesize != declared:
                raise IntegrityError(str(root_cid), f"node {cid} size differs from its parent's")
            if node.data:
                produced += len(node.data)
                yield node.data
            for (child, _tsize), size in zip(reversed(node.links), reversed(node.blocksizes), strict=True):
                stack.append((child, None, size))
        if produced != expected:  # pragma: no cover - guarded per node above
            raise IntegrityError(str(root_cid), "document size differs from the declared size")

    def read(self, cid: str | Cid, *, max_size: int | None = DEFAULT_MAX_SIZE) -> bytes:
        """The whole document as bytes (verified); see :meth:`get`."""
        return b"".join(self.get(cid, max_size=max_size))

    def dag_cids(self, cid: str | Cid) -> Iterator[tuple[Cid, bytes]]:
        """Every ``(cid, verified block)`` of the document's DAG, root first (for CAR export)."""
        stack = [Cid.parse(cid)]
        while stack:
            current = stack.pop()
            block = self.get_block(current)
            yield current, block
            if current.codec == CODEC_DAG_PB:
                node = decode_dag_pb(block, current)
                stack.extend(child for child, _ in reversed(node.links))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalStore(ContentStore):
    """The embedded default: blocks as files under a directory (e.g. ``./var/blocks``).

    Layout::

        ROOT/blocks/<xy>/<KEY>   one file per block; KEY = base32 multihash, xy = its last 2 chars
        ROOT/pins/<CID>          one empty file per pinned document
        ROOT/tmp/                staging area; a put writes here first, then renames

    A put writes every block into a private staging directory, then moves the blocks into place
    with atomic renames and finally records the pin; a failure at any point (oversized input, I/O
    error, crash) leaves no partial block file behind — only complete, content-addressed blocks
    can ever appear under ``blocks/``. ``durable=True`` (default) fsyncs files and directories.
    """

    def __init__(self, root: str | os.PathLike[str], *, durable: bool = True) -> None:
        self.root = Path(root)
        self.durable = durable
        try:
            for sub in ("blocks", "pins", "tmp"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(str(self.root), str(exc)) from exc

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def _block_path(self, cid: Cid) -> Path:
        key = cid.block_key
        return self.root / "blocks" / key[-2:] / key

    # --- writes ---

    def put(
        self,
        source: Source,
        *,
        max_size: int | None = DEFAULT_MAX_SIZE,
        cid_version: int = 1,
        pin: bool = True,
    ) -> StoredDocument:
        """See :meth:`ContentStore.put`. Blocks land under ``blocks/`` only after the whole
        document was read within the limit."""
        staging = self.root / "tmp" / f"put-{secrets.token_hex(8)}"
        staging.mkdir()
        staged: list[tuple[Cid, Path]] = []
        seen: set[str] = set()

        def sink(cid: Cid, block: bytes) -> None:
            key = cid.block_key
            if key in seen:
                return
            seen.add(key)
            if self._block_path(cid).exists():
                return
            tmp = staging / key
            try:
                with open(tmp, "wb") as fh:
                    fh.write(block)
                    if self.durable:
                        os.fsync(fh.fileno())
            except OSError as exc:
                raise StoreUnavailable(str(self.root), str(exc)) from exc
            staged.append((cid, tmp))

        try:
            builder = DagBuilder(cid_version=cid_version, sink=sink)
            for chunk in _chunks(source, max_size):  # source errors propagate unchanged
                builder.feed(chunk)
            root = builder.finish()
            try:
                touched: set[Path] = set()
                for cid, tmp in staged:
                    target = self._block_path(cid)
                    target.parent.mkdir(exist_ok=True)
                    os.replace(tmp, target)
                    touched.add(target.parent)
                if self.durable:
                    for directory in touched:
                        _fsync_dir(directory)
            except OSError as exc:
                raise StoreUnavailable(str(self.root), str(exc)) from exc
            if pin:
                self.pin(root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return StoredDocument(cid=str(root), size=builder.size)

    def put_block(self, cid: Cid, block: bytes) -> None:
        """Verify and store one block atomically (temp file + rename)."""
        cid.verify(block)
        target = self._block_path(cid)
        if target.exists():
            return
        target.parent.mkdir(exist_ok=True)
        tmp = self.root / "tmp" / f"block-{secrets.token_hex(8)}"
        try:
            with open(tmp, "wb") as fh:
                fh.write(block)
                if self.durable:
                    os.fsync(fh.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    # --- reads ---

    def get_block_unverified(self, cid: Cid) -> bytes:
        """Read a block file; :class:`DocumentNotFound` if absent."""
        path = self._block_path(cid)
        try:
            with open(path, "rb") as fh:
                return fh.read(MAX_BLOCK_SIZE + 1)
        except FileNotFoundError as exc:
            raise DocumentNotFound(str(cid), str(self.root)) from exc

    def has(self, cid: str | Cid) -> bool:
        """Whether the root block is on disk."""
        return self._block_path(Cid.parse(cid)).exists()

    # --- pins ---

    def pin(self, cid: str | Cid) -> None:
        """Record a pin (the root block must be present)."""
        parsed = Cid.parse(cid)
        if not self.has(parsed):
            raise DocumentNotFound(str(parsed), str(self.root))
        marker = self.root / "pins" / str(parsed)
        if not marker.exists():
            tmp = self.root / "tmp" / f"pin-{secrets.token_hex(8)}"
            tmp.touch()
            os.replace(tmp, marker)
            if self.durable:
                _fsync_dir(marker.parent)

    def unpin(self, cid: str | Cid) -> None:
        """Remove a pin; :class:`DocumentNotFound` if it was not pinned."""
        parsed = Cid.parse(cid)
        try:
            (self.root / "pins" / str(parsed)).unlink()
        except FileNotFoundError as exc:
            raise DocumentNotFound(str(parsed), "not pinned") from exc

    def list(self) -> list[str]:
        """Pinned document CIDs, sorted."""
        return sorted(p.name for p in (self.root / "pins").iterdir())

    def gc(self) -> int:
        """Delete blocks no pin reaches, and stale staging files; return blocks removed."""
        keep: set[str] = set()
        for name in self.list():
            try:
                for cid, _block in self.dag_cids(name):
                    keep.add(cid.block_key)
            except DocumentNotFound:
                continue
        removed = 0
        for shard in (self.root / "blocks").iterdir():
            for path in shard.iterdir():
                if path.name not in keep:
                    path.unlink()
                    removed += 1
        for stale in (self.root / "tmp").iterdir():
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)
        return removed
