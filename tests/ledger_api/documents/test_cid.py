"""CIDs and the UnixFS layout (the daemon cross-check lives in tests/integration/test_ipfs.py)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from ledger_api.documents import CHUNK_SIZE, MAX_LINKS, Cid, DagBuilder, cid_of, cid_of_file
from ledger_api.documents._cid import CODEC_DAG_PB, CODEC_RAW
from ledger_api.documents._unixfs import decode_dag_pb
from ledger_api.errors import DocumentTooLarge, IntegrityError, InvalidCid, MalformedBlock

HELLO = b"hello world\n"


def test_kubo_vectors_for_hello_world() -> None:
    assert cid_of(HELLO, cid_version=0) == "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
    assert cid_of(HELLO) == "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"


def test_empty_file_has_the_kubo_cids() -> None:
    assert cid_of(b"", cid_version=0) == "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
    assert cid_of(b"") == "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    # the raw-codec CID of zero bytes is simply sha256("")
    assert Cid.parse(cid_of(b"")).digest == hashlib.sha256(b"").digest()


def test_single_chunk_is_a_raw_block_and_two_chunks_a_dag_pb_parent() -> None:
    one = Cid.parse(cid_of(b"a" * CHUNK_SIZE))
    assert (one.version, one.codec) == (1, CODEC_RAW)
    assert one.digest == hashlib.sha256(b"a" * CHUNK_SIZE).digest()
    two = Cid.parse(cid_of(b"a" * (CHUNK_SIZE + 1)))
    assert (two.version, two.codec) == (1, CODEC_DAG_PB)
    assert str(two).startswith("bafybei")


def _blocks(content: bytes, version: int) -> tuple[Cid, dict[Cid, bytes]]:
    blocks: dict[Cid, bytes] = {}
    builder = DagBuilder(cid_version=version, sink=lambda c, b: blocks.__setitem__(c, b))
    builder.feed(content)
    return builder.finish(), blocks


def _depth(root: Cid, blocks: dict[Cid, bytes]) -> int:
    if root.codec == CODEC_RAW:
        return 0
    node = decode_dag_pb(blocks[root], root)
    if not node.links:
        return 0
    return 1 + _depth(node.links[0][0], blocks)


def test_balanced_layout_fan_out_and_depth_at_the_174_link_boundary() -> None:
    # 174 chunks fit under one parent; the 175th forces a second level with a 1-link subtree.
    content = b"\x01" * (MAX_LINKS * CHUNK_SIZE)
    root, blocks = _blocks(content, 1)
    top = decode_dag_pb(blocks[root], root)
    assert len(top.links) == MAX_LINKS and _depth(root, blocks) == 1
    assert top.filesize == len(content)
    assert list(top.blocksizes) == [CHUNK_SIZE] * MAX_LINKS
    root2, blocks2 = _blocks(content + b"\x02", 1)
    top2 = decode_dag_pb(blocks2[root2], root2)
    assert len(top2.links) == 2 and _depth(root2, blocks2) == 2
    second = top2.links[1][0]
    assert len(decode_dag_pb(blocks2[second], second).links) == 1
    # Tsize of a link = bytes of the child's whole DAG
    first, tsize = top2.links[0]
    child = decode_dag_pb(blocks2[first], first)
    assert tsize == len(blocks2[first]) + sum(t for _, t in child.links)


def test_streaming_in_odd_pieces_gives_the_same_cid() -> None:
    content = bytes(range(251)) * 4000  # ~1 MB, not chunk aligned
    expected = cid_of(content)
    for piece in (1, 4095, CHUNK_SIZE - 1, CHUNK_SIZE, 3 * CHUNK_SIZE + 7):
        chunks = [content[i : i + piece] for i in range(0, len(content), piece)]
        assert cid_of(chunks) == expected
    assert cid_of(io.BytesIO(content)) == expected
    assert cid_of(content, cid_version=0) != expected


def test_v0_leaves_wrap_unixfs_file_data() -> None:
    root, blocks = _blocks(b"x" * (CHUNK_SIZE + 5), 0)
    assert root.version == 0 and str(root).startswith("Qm")
    top = decode_dag_pb(blocks[root], root)
    leaf_cid = top.links[1][0]
    leaf = decode_dag_pb(blocks[leaf_cid], leaf_cid)
    assert leaf.data == b"xxxxx" and leaf.filesize == 5 and leaf.links == ()


def test_cid_text_forms_round_trip() -> None:
    v1 = Cid.parse("bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4")
    assert Cid.from_bytes(v1.to_bytes()) == v1
    # js-ipfs prints CIDv1 in base58btc: the same CID
    assert Cid.parse("zb2rhi36Gc9GJWijLEL6zW45MBux5FcFv5gJmjXA7VAMozEXY") == v1
    v0 = Cid.parse("QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o")
    assert str(v0.to_v1()).startswith("bafybei") and v0.to_v1().to_v0() == v0
    assert v0.block_key == v0.to_v1().block_key


@pytest.mark.parametrize("bad", ["", "Qm123", "mAXASIA", "bafk!!!", "b" + "a" * 10, "zzzz0OIl"])
def test_invalid_cids_are_typed_errors(bad: str) -> None:
    with pytest.raises(InvalidCid):
        Cid.parse(bad)


def test_verify_names_the_cid() -> None:
    cid = Cid.parse(cid_of(HELLO))
    cid.verify(HELLO)
    with pytest.raises(IntegrityError) as err:
        cid.verify(b"hello world!")
    assert err.value.cid == str(cid)


def test_malformed_dag_pb_is_a_typed_error() -> None:
    root, blocks = _blocks(b"y" * (CHUNK_SIZE + 1), 1)
    with pytest.raises(MalformedBlock):
        decode_dag_pb(blocks[root][:-3], root)


def test_cid_of_file_and_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "doc.bin"
    path.write_bytes(HELLO)
    assert cid_of_file(path) == cid_of(HELLO)
    with pytest.raises(DocumentTooLarge):
        cid_of_file(path, max_size=5)
