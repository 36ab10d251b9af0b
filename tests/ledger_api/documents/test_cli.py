"""`ledger cid`, `ledger merkle …` and `ledger store …`, run through ledger_api.cli.main."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ledger_api.cli import main
from ledger_api.documents import CHUNK_SIZE, StandardMerkleTree, cid_of


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_cid_prints_only_the_cid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = tmp_path / "hello.txt"
    doc.write_bytes(b"hello world\n")
    assert _run(capsys, "cid", str(doc)) == (
        0,
        "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4\n",
        "",
    )
    assert _run(capsys, "cid", "--cid-version", "0", str(doc))[1] == (
        "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o\n"
    )
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert _run(capsys, "cid", str(empty))[1].strip() == cid_of(b"")


def test_cid_errors_are_one_line_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _run(capsys, "cid", str(tmp_path / "missing.pdf"))
    assert status == 1 and out == ""
    assert err.startswith("ledger: error: cannot read") and err.count("\n") == 1
    big = tmp_path / "big"
    big.write_bytes(b"x" * 100)
    status, _, err = _run(capsys, "cid", "--max-size", "10", str(big))
    assert status == 1 and "size limit of 10 bytes" in err


def test_merkle_build_proof_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    values = [["0x" + f"{i:064x}", str(i * 3)] for i in range(5)]
    path = tmp_path / "values.json"
    path.write_text(json.dumps(values))
    status, out, _ = _run(capsys, "merkle", "build", str(path), "--types", "bytes32,uint256")
    assert status == 0
    dump = json.loads(out)
    assert StandardMerkleTree.load(dump).root == StandardMerkleTree.of(values, ["bytes32", "uint256"]).root
    tree_file = tmp_path / "tree.json"
    status, out, _ = _run(capsys, "merkle", "build", str(path), "--types", "bytes32,uint256", "-o", str(tree_file))
    assert status == 0 and out.strip() == dump["tree"][0]
    assert json.loads(tree_file.read_text()) == dump

    status, out, _ = _run(capsys, "merkle", "proof", str(tree_file), "--index", "2")
    bundle_file = tmp_path / "bundle.json"
    bundle_file.write_text(out)
    bundle = json.loads(out)
    assert bundle["value"] == values[2]
    assert _run(capsys, "merkle", "verify", "--bundle", str(bundle_file))[0] == 0
    status, out, _ = _run(
        capsys,
        "merkle",
        "verify",
        "--root",
        bundle["root"],
        "--types",
        "bytes32,uint256",
        "--value",
        json.dumps(values[2]),
        "--proof",
        json.dumps(bundle["proof"]),
    )
    assert status == 0 and out.startswith("OK")
    # the same proof for another leaf or another root: exit 1, one line
    status, _, err = _run(capsys, "merkle", "verify", "--bundle", str(bundle_file), "--value", json.dumps(values[3]))
    assert status == 1 and "does not verify" in err
    status, _, err = _run(capsys, "merkle", "verify", "--bundle", str(bundle_file), "--root", "0x" + "ab" * 32)
    assert status == 1 and "0x" + "ab" * 32 in err


def test_merkle_build_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "values.json"
    path.write_text("{not json")
    status, _, err = _run(capsys, "merkle", "build", str(path), "--types", "bytes32")
    assert status == 1 and "not valid JSON" in err
    path.write_text('[["0x12"]]')
    status, _, err = _run(capsys, "merkle", "build", str(path), "--types", "bytes32")
    assert status == 1 and "cannot encode" in err


def test_store_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "var" / "blocks")
    doc = tmp_path / "invoice.pdf"
    content = os.urandom(CHUNK_SIZE * 2 + 5)
    doc.write_bytes(content)
    status, out, _ = _run(capsys, "store", "--store", store, "put", str(doc))
    cid = out.strip()
    assert status == 0 and cid == cid_of(content)
    assert _run(capsys, "store", "--store", store, "ls")[1].split() == [cid]
    target = tmp_path / "copy.pdf"
    assert _run(capsys, "store", "--store", store, "get", cid, "-o", str(target))[0] == 0
    assert target.read_bytes() == content
    car = tmp_path / "doc.car"
    status, out, err = _run(capsys, "store", "--store", store, "export", cid, "-o", str(car))
    assert status == 0 and out == ""  # progress goes to stderr, stdout stays clean
    assert "4 blocks" in err and f"written to {car}" in err  # two full chunks, the tail, the root
    assert _run(capsys, "store", "--store", store, "export", cid, "-o", str(car), "--quiet")[2] == ""
    other = str(tmp_path / "other")
    assert _run(capsys, "store", "--store", other, "import", str(car))[1].split() == [cid]
    assert _run(capsys, "store", "--store", other, "unpin", cid)[0] == 0
    assert _run(capsys, "store", "--store", other, "ls")[1] == ""
    status, _, err = _run(capsys, "store", "--store", store, "get", cid_of(b"nope"))
    assert status == 1 and "no document" in err
