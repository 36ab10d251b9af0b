"""The embedded LocalStore: round trips, limits, atomic writes, trustless reads, pins, CAR."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger_api.documents import (
    CHUNK_SIZE,
    Cid,
    LocalStore,
    cid_of,
    export_car,
    import_car,
    iter_car,
)
from ledger_api.errors import (
    DocumentNotFound,
    DocumentTooLarge,
    IntegrityError,
    MalformedBlock,
    TruncatedCar,
)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "blocks", durable=False)


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 17])
@pytest.mark.parametrize("version", [0, 1])
def test_put_get_round_trip_with_ipfs_cids(store: LocalStore, size: int, version: int) -> None:
    content = os.urandom(size)
    stored = store.put(content, cid_version=version)
    assert stored.cid == cid_of(content, cid_version=version)
    assert stored.size == size
    assert store.read(stored.cid) == content
    assert store.size(stored.cid) == size
    assert store.has(stored.cid)
    assert stored.cid in store.list()


def test_get_streams_block_by_block(store: LocalStore) -> None:
    content = os.urandom(5 * CHUNK_SIZE + 3)
    cid = store.put(io.BytesIO(content)).cid
    pieces = list(store.get(cid))
    assert len(pieces) == 6 and max(len(p) for p in pieces) == CHUNK_SIZE
    assert b"".join(pieces) == content


def test_oversized_input_is_refused_early_and_leaves_nothing(store: LocalStore) -> None:
    consumed = 0

    def endless() -> Iterator[bytes]:
        nonlocal consumed
        while True:
            consumed += 65536
            yield b"z" * 65536

    with pytest.raises(DocumentTooLarge) as err:
        store.put(endless(), max_size=1_000_000)
    assert err.value.limit == 1_000_000
    assert consumed <= 1_000_000 + 65536
    assert _files(store.root) == [] and store.list() == []
    with pytest.raises(DocumentTooLarge):
        store.put(b"x" * 11, max_size=10)


def test_failure_mid_write_leaves_no_partial_files(store: LocalStore) -> None:
    def broken() -> Iterator[bytes]:
        yield os.urandom(3 * CHUNK_SIZE)  # three blocks get staged ...
        raise OSError("disk went away")  # ... then the source fails

    with pytest.raises(OSError, match="disk went away"):
        store.put(broken())
    assert _files(store.root) == []  # no block, no pin, no staging leftovers


def test_get_refuses_documents_over_the_limit_before_returning_bytes(store: LocalStore) -> None:
    cid = store.put(os.urandom(2 * CHUNK_SIZE)).cid
    with pytest.raises(DocumentTooLarge) as err:
        store.get(cid, max_size=CHUNK_SIZE)
    assert err.value.seen == 2 * CHUNK_SIZE
    small = store.put(b"abc").cid
    with pytest.raises(DocumentTooLarge):
        store.read(small, max_size=2)


def test_tampered_block_raises_integrity_error_naming_the_cid(store: LocalStore) -> None:
    content = os.urandom(2 * CHUNK_SIZE + 10)
    root = store.put(content).cid
    leaf = Cid.for_block(content[CHUNK_SIZE : 2 * CHUNK_SIZE], codec=0x55)
    path = store._block_path(leaf)
    path.write_bytes(b"\x00" + path.read_bytes()[1:])
    received = []
    with pytest.raises(IntegrityError) as err:
        for piece in store.get(root):
            received.append(piece)
    assert err.value.cid == str(leaf)
    assert str(leaf) in str(err.value)
    assert received == [content[:CHUNK_SIZE]]  # the altered block itself never came out


def test_tampered_single_block_document(store: LocalStore) -> None:
    cid = store.put(b"certificate of origin").cid
    store._block_path(Cid.parse(cid)).write_bytes(b"certificate of 0rigin")
    with pytest.raises(IntegrityError, match=cid):
        store.read(cid)


def test_missing_document_and_pins(store: LocalStore) -> None:
    missing = cid_of(b"never stored")
    assert not store.has(missing)
    with pytest.raises(DocumentNotFound):
        store.read(missing)
    with pytest.raises(DocumentNotFound):
        store.pin(missing)
    cid = store.put(b"doc", pin=False).cid
    assert store.list() == []
    store.pin(cid)
    store.pin(cid)  # idempotent
    assert store.list() == [cid]
    store.unpin(cid)
    with pytest.raises(DocumentNotFound):
        store.unpin(cid)
    assert store.gc() == 1 and not store.has(cid)


def test_gc_keeps_pinned_dags_and_shared_blocks(store: LocalStore) -> None:
    chunk = os.urandom(CHUNK_SIZE)
    keep = store.put(chunk * 2 + b"tail").cid
    drop = store.put(chunk + b"other", pin=False).cid
    store.gc()
    assert store.read(keep) == chunk * 2 + b"tail"
    assert not store.has(drop)


def test_durable_mode_writes_the_same_layout(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "durable")  # fsync on
    cid = store.put(os.urandom(CHUNK_SIZE + 1)).cid
    assert len(_files(tmp_path / "durable" / "blocks")) == 3
    assert store.list() == [cid]


# --- CAR -------------------------------------------------------------------------------------


def test_car_round_trip_between_stores(tmp_path: Path, store: LocalStore) -> None:
    content = os.urandom(4 * CHUNK_SIZE + 99)
    cid = store.put(content).cid
    car = io.BytesIO()
    written = export_car(store, cid, car)
    assert written == len(car.getvalue())
    other = LocalStore(tmp_path / "other", durable=False)
    result = import_car(other, io.BytesIO(car.getvalue()))
    assert result.roots == (cid,) and result.blocks == 6
    assert other.read(cid) == content and other.list() == [cid]


def test_car_header_is_dag_cbor_roots_and_version(store: LocalStore) -> None:
    cid = store.put(b"hello world\n").cid
    car = io.BytesIO()
    export_car(store, cid, car)
    raw = car.getvalue()
    cid_bytes = Cid.parse(cid).to_bytes()
    header = b"\xa2\x65roots\x81\xd8\x2a\x58" + bytes([len(cid_bytes) + 1]) + b"\x00" + cid_bytes + b"\x67version\x01"
    assert raw[0] == len(header) and raw[1 : 1 + len(header)] == header
    roots, sections = iter_car(io.BytesIO(raw))
    assert [str(r) for r in roots] == [cid]
    assert [(str(c), b) for c, b in sections] == [(cid, b"hello world\n")]


def test_truncated_car_is_a_typed_error_at_every_cut(tmp_path: Path, store: LocalStore) -> None:
    cid = store.put(os.urandom(CHUNK_SIZE + 50)).cid
    car = io.BytesIO()
    export_car(store, cid, car)
    raw = car.getvalue()
    cuts = {0, 1, 5, 40, 60, 61, 62, 70, 100, len(raw) // 2, len(raw) - 1}
    for i, cut in enumerate(sorted(cuts)):
        target = LocalStore(tmp_path / f"t{i}", durable=False)
        with pytest.raises(TruncatedCar):
            import_car(target, io.BytesIO(raw[:cut]))
        assert target.list() == []  # roots of a truncated CAR are never pinned


def test_car_with_altered_block_is_rejected(tmp_path: Path, store: LocalStore) -> None:
    cid = store.put(b"bill of lading #42").cid
    car = io.BytesIO()
    export_car(store, cid, car)
    raw = bytearray(car.getvalue())
    raw[-1] ^= 0xFF
    target = LocalStore(tmp_path / "t", durable=False)
    with pytest.raises(IntegrityError, match=cid):
        import_car(target, io.BytesIO(bytes(raw)))
    assert not target.has(cid)


def test_car_with_garbage_header_is_malformed(tmp_path: Path) -> None:
    target = LocalStore(tmp_path / "t", durable=False)
    with pytest.raises(MalformedBlock):
        import_car(target, io.BytesIO(b"\x03\xa1\x61x"))
