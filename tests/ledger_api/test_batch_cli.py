"""``ledger batch anchor`` / ``ledger batch verify`` on a real anvil with the embedded store."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from ledger_api.chain.deploy import Deployment
from ledger_api.chain.events import EventDecoder, JsonRpc, fetch_logs
from ledger_api.cli import main
from ledger_api.config import Settings
from ledger_api.documents import DocumentBatch, LocalStore

pytestmark = pytest.mark.integration


def _env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    monkeypatch.setenv("LEDGER_VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("LEDGER_ANVIL_PORT", str(settings.anvil_port))


def _batch_events(settings: Settings, record: Deployment) -> list[dict[str, object]]:
    decoder = EventDecoder.for_contracts({record.ledger: "ClearanceLedger"}, hex_bytes=True)
    with JsonRpc(rpc_url=settings.effective_rpc_url) as rpc:
        logs = [log for page in fetch_logs(rpc, [record.ledger], 0, rpc.block_number()) for log in page]
    return [dict(e.args) for e in decoder.decode_all(logs) if e.name == "BatchAnchored"]


def test_anchor_then_verify_each_document_and_refuse_a_tampered_one(
    deployed: tuple[Settings, Deployment],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings, record = deployed
    _env(monkeypatch, settings)
    docs = tmp_path / "manifests"
    (docs / "day-2").mkdir(parents=True)
    for i in range(6):
        (docs / ("day-2" if i % 2 else "") / f"parcel-{i}.json").write_text(json.dumps({"parcel": i, "kg": 3 + i}))
    proofs = tmp_path / "proofs"
    argv = ["batch", "anchor", str(docs), "--as", "nl-nvwa-signer-0", "--kind", "3", "--proofs", str(proofs),
            "--json", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["documents"] == 6 and result["kind"] == 3 and result["block_number"] > 0
    # the manifest is in the embedded store and rebuilds the anchored root
    stored = LocalStore(settings.var_dir / "store").read(result["manifest_cid"])
    assert DocumentBatch.from_manifest(stored).root == result["root"]
    [event] = _batch_events(settings, record)
    assert event["root"] == result["root"] and event["leafCount"] == 6 and event["kind"] == 3

    files = sorted(p for p in docs.rglob("*.json"))
    for path in files:
        proof = proofs / f"{path.name}.proof.json"
        assert main(["batch", "verify", str(path), "--proof", str(proof), "--json"]) == 0
        verdict = json.loads(capsys.readouterr().out)
        assert verdict["valid"] and [c["check"] for c in verdict["checks"]] == [
            "proof", "anchored", "manifest", "on-chain proof"]  # fmt: skip

    tampered = tmp_path / "parcel-0.json"
    tampered.write_bytes(files[0].read_bytes().replace(b'"kg": 3', b'"kg": 9'))
    assert main(["batch", "verify", str(tampered), "--proof", str(proofs / "parcel-0.json.proof.json")]) == 3
    assert "NOT PROVEN" in capsys.readouterr().out

    # the same documents again: the journal knows the root, nothing is anchored twice
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["root"] == result["root"]
    assert len(_batch_events(settings, record)) == 1


def test_verify_reports_a_root_that_was_never_anchored_and_cli_errors_are_one_line(
    deployed: tuple[Settings, Deployment],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings, _ = deployed
    _env(monkeypatch, settings)
    document = tmp_path / "invoice.pdf"
    document.write_bytes(b"%PDF invoice 42")
    batch = DocumentBatch.build([hashlib.sha256(document.read_bytes()).digest(), hashlib.sha256(b"x").digest()])
    proof = tmp_path / "invoice.proof.json"
    proof.write_text(json.dumps(batch.proofs(manifest_cid="bafkreie7q3iidccmpvszul7kudcvvuavuo7u6gzlbobczuk5nqk3b4akba")[0]))
    assert main(["batch", "verify", str(document), "--proof", str(proof), "--offline"]) == 0
    capsys.readouterr()
    assert main(["batch", "verify", str(document), "--proof", str(proof), "--json"]) == 3
    verdict = json.loads(capsys.readouterr().out)
    assert not verdict["valid"] and verdict["checks"][-1]["check"] == "anchored"

    assert main(["batch", "anchor", str(document), "--as", "no-such-label", "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no-such-label" in err[0]
    assert main(["batch", "anchor", str(tmp_path / "missing"), "--as", "nl-nvwa-signer-0"]) == 1
    assert "no such file" in capsys.readouterr().err
    proof.write_text("{not json")
    assert main(["batch", "verify", str(document), "--proof", str(proof)]) == 1
