"""Incremental replay from a signed checkpoint on a real anvil: the same digest and findings as a full replay;
tampered, unsigned, foreign and rewritten-history checkpoints refused with typed errors."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from ledger_api._cli import audit as audit_cli
from ledger_api.audit import (
    AuditError,
    ChannelAssignment,
    ChannelProblem,
    ReplayReport,
    open_checkpoint,
    replay,
    write_checkpoint,
)
from ledger_api.chain.accumulator import ZERO_ACCUMULATOR, accumulate
from ledger_api.chain.events import fetch_logs
from ledger_api.errors import (
    AuditCheckpointError,
    CheckpointForeign,
    CheckpointNotPrefix,
    CheckpointTampered,
    CheckpointUnsigned,
    ConfigurationError,
)

from .conftest import Chain, History, HistoryGenerator

pytestmark = pytest.mark.integration

AUDITOR = Account.from_key("0x" + "a5" * 32)


@pytest.fixture(scope="module")
def history(chain: Chain) -> History:
    """A random history of about 120 operations (seeded) on the module's chain."""
    return HistoryGenerator(chain, seed=424242).run(120, checkpoints=2)


def flag_channels(assignment: ChannelAssignment) -> list[str | ChannelProblem]:
    """A channel check that flags every channel: findings before and after any checkpoint."""
    return [ChannelProblem(message=f"flagged {assignment.declaration_id}", code="test-channel", severity="warning")]


def _checkpointed(chain: Chain, to_block: int, path: Path, *, signer: Any = AUDITOR) -> ReplayReport:
    report = replay(
        chain.rpc_url, chain.deployment, to_block=to_block, channel_check=flag_channels, track=True, progress=None
    )
    assert report.digest_match is True and report.resume_point is not None
    d = chain.deployment
    write_checkpoint(
        path,
        report.resume_point,
        chain_id=d.chain_id,
        registry=d.registry,
        ledger=d.ledger,
        deployment_block=d.deployment_block,
        state_digest=report.state_digest,
        signer=signer,
    )
    return report


def _findings(report: ReplayReport) -> list[dict[str, Any]]:
    return [f.to_json() for f in report.findings]


def test_resume_gives_the_same_digest_and_findings_as_a_full_replay(
    chain: Chain, history: History, tmp_path: Path
) -> None:
    middle, end = history.checkpoints[0], history.checkpoints[-1]
    path = tmp_path / "checkpoint.json"
    first = _checkpointed(chain, middle, path)
    point = open_checkpoint(path, chain.rpc_url, chain.deployment, expected_signer=AUDITOR.address)
    assert first.resume_point is not None
    assert point.block_number == middle and point.block_hash == first.resume_point.block_hash
    assert point.state is not first.resume_point.state  # rebuilt from the JSON snapshot
    resumed = replay(
        chain.rpc_url, chain.deployment, to_block=end, channel_check=flag_channels, resume=point, progress=None
    )
    full = replay(chain.rpc_url, chain.deployment, to_block=end, channel_check=flag_channels, track=True, progress=None)
    assert resumed.digest_match is True and full.digest_match is True
    assert resumed.state_digest == full.state_digest == full.view_digest != first.state_digest
    assert _findings(resumed) == _findings(full)
    flagged_blocks = [f.block for f in full.findings if f.code == "test-channel"]
    assert min(flagged_blocks) <= middle < max(flagged_blocks)  # findings on both sides of the checkpoint
    assert resumed.events_by_name == full.events_by_name and resumed.counts == full.counts
    assert resumed.throughput.events < full.throughput.events  # only the blocks after the checkpoint were read
    assert resumed.from_block == middle + 1 and resumed.to_json()["resumed_from"]["block"] == middle
    # the accumulator carried across the checkpoint is the witness's, over every log from deployment
    assert resumed.resume_point is not None and full.resume_point is not None
    assert resumed.resume_point.accumulator == full.resume_point.accumulator
    d = chain.deployment
    pages = fetch_logs(chain.rpc_url, [d.registry, d.ledger], d.deployment_block, end)
    acc, count = ZERO_ACCUMULATOR, 0
    for page in pages:
        acc, n = accumulate(acc, page)
        count += n
    assert full.resume_point.accumulator == "0x" + acc.hex() and full.resume_point.event_count == count
    assert full.to_json()["history"]["accumulator"] == "0x" + acc.hex()

    # a checkpoint of a resumed replay resumes too (nothing new to read: the digest still matches the views)
    again = tmp_path / "again.json"
    write_checkpoint(
        again,
        resumed.resume_point,
        chain_id=d.chain_id,
        registry=d.registry,
        ledger=d.ledger,
        deployment_block=d.deployment_block,
        state_digest=resumed.state_digest,
        signer=AUDITOR,
    )
    point = open_checkpoint(again, chain.rpc_url, d, expected_signer=AUDITOR.address)
    last = replay(chain.rpc_url, d, to_block=end, channel_check=flag_channels, resume=point, progress=None)
    assert last.throughput.events == 0 and last.digest_match is True and _findings(last) == _findings(full)


def _mutations() -> list[tuple[str, Callable[[dict[str, Any]], None]]]:
    def bump(name: str) -> Callable[[dict[str, Any]], None]:
        return lambda doc: doc.__setitem__(name, doc[name] + 1)

    def hex_flip(name: str) -> Callable[[dict[str, Any]], None]:
        return lambda doc: doc.__setitem__(name, doc[name][:-1] + ("0" if doc[name][-1] != "0" else "1"))

    def state_value(doc: dict[str, Any]) -> None:
        doc["state"]["threshold"] += 1

    def state_agency_name(doc: dict[str, Any]) -> None:
        doc["state"]["agencies"][0][1]["name"] = "Forged Customs"

    def drop_finding(doc: dict[str, Any]) -> None:
        doc["findings"].pop()

    def event_counts(doc: dict[str, Any]) -> None:
        doc["events_by_name"]["StampRecorded"] -= 1

    def signature_value(doc: dict[str, Any]) -> None:
        value = doc["signature"]["value"]
        doc["signature"]["value"] = value[:10] + ("0" if value[10] != "0" else "1") + value[11:]

    def claimed_signer(doc: dict[str, Any]) -> None:
        doc["signature"]["signer"] = "0x" + "12" * 20

    return [
        ("block_number", bump("block_number")),
        ("event_count", bump("event_count")),
        ("created_at", bump("created_at")),
        ("block_hash", hex_flip("block_hash")),
        ("accumulator", hex_flip("accumulator")),
        ("state_digest", hex_flip("state_digest")),
        ("state value", state_value),
        ("state agency name", state_agency_name),
        ("finding dropped", drop_finding),
        ("event counts", event_counts),
        ("signature", signature_value),
        ("claimed signer", claimed_signer),
    ]


def _altered(value: Any) -> Any:
    """A different value of the same JSON kind."""
    if isinstance(value, bool) or value is None:
        return not value if isinstance(value, bool) else "0x" + "00" * 32
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        return value[:-1] + ("0" if value[-1] != "0" else "1")
    if isinstance(value, list):
        return value[:-1] if value else [0]
    if isinstance(value, dict):
        return {**value, "x": 1} if "signer" not in value else {**value, "scheme": "eip191"}
    raise AssertionError(value)


def test_tampered_unsigned_and_foreign_checkpoints_are_refused(chain: Chain, history: History, tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    _checkpointed(chain, history.checkpoints[0], path)
    original = json.loads(path.read_text())
    assert original["findings"] and original["state"]["agencies"]
    for name, mutate in _mutations():
        doc = json.loads(path.read_text())
        mutate(doc)
        assert doc != original, name
        forged = tmp_path / "forged.json"
        forged.write_text(json.dumps(doc))
        with pytest.raises(CheckpointTampered):
            open_checkpoint(forged, chain.rpc_url, chain.deployment, expected_signer=AUDITOR.address)
    # and every top-level field, whatever it holds
    for name in sorted(original):
        doc = json.loads(path.read_text())
        doc[name] = _altered(doc[name])
        forged = tmp_path / "forged.json"
        forged.write_text(json.dumps(doc))
        with pytest.raises(CheckpointTampered):
            open_checkpoint(forged, chain.rpc_url, chain.deployment, expected_signer=AUDITOR.address)
    # a valid signature by another key than the expected one
    other = Account.from_key("0x" + "5a" * 32)
    with pytest.raises(CheckpointTampered, match="not the expected key"):
        open_checkpoint(path, chain.rpc_url, chain.deployment, expected_signer=other.address)
    # too large to read
    with pytest.raises(CheckpointTampered, match="larger than"):
        open_checkpoint(path, chain.rpc_url, chain.deployment, expected_signer=AUDITOR.address, max_bytes=1000)
    # not about this deployment (signature fine, so it is the deployment check that refuses it)
    elsewhere = dataclasses.replace(chain.deployment, ledger="0x" + "34" * 20)
    with pytest.raises(CheckpointForeign):
        open_checkpoint(path, chain.rpc_url, elsewhere, expected_signer=AUDITOR.address)

    # unsigned: refused unless allowed; when allowed, a snapshot that does not have its digest is still refused
    unsigned = tmp_path / "unsigned.json"
    _checkpointed(chain, history.checkpoints[0], unsigned, signer=None)
    with pytest.raises(CheckpointUnsigned):
        open_checkpoint(unsigned, chain.rpc_url, chain.deployment, expected_signer=AUDITOR.address)
    assert open_checkpoint(unsigned, chain.rpc_url, chain.deployment, expected_signer=None, allow_unsigned=True)
    doc = json.loads(unsigned.read_text())
    doc["state"]["threshold"] += 1
    unsigned.write_text(json.dumps(doc))
    with pytest.raises(CheckpointTampered, match="state digest"):
        open_checkpoint(unsigned, chain.rpc_url, chain.deployment, expected_signer=None, allow_unsigned=True)
    # a signed checkpoint with nobody to trust proves nothing
    with pytest.raises(CheckpointUnsigned):
        open_checkpoint(path, chain.rpc_url, chain.deployment, expected_signer=None)
    assert issubclass(CheckpointNotPrefix, AuditCheckpointError) and issubclass(
        CheckpointTampered, AuditCheckpointError
    )


def test_cli_checkpoint_then_resume(
    chain: Chain, history: History, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    record = tmp_path / "deployment.json"
    chain.deployment.save(record)
    monkeypatch.setenv("LEDGER_VAR_DIR", str(tmp_path / "var"))
    parser = argparse.ArgumentParser()
    audit_cli.register(parser.add_subparsers(dest="command"))
    checkpoint, out = tmp_path / "cp.json", tmp_path / "report.json"
    base = [
        "audit",
        "replay",
        "--deployment",
        str(record),
        "--rpc-url",
        chain.rpc_url,
        "--quiet",
        "--no-channel-check",
        "--report",
        str(out),
    ]
    args = parser.parse_args(
        [*base, "--to-block", str(history.checkpoints[0]), "--checkpoint", str(checkpoint), "--signer", "auditor"]
    )
    assert args.handler(args) == 0 and checkpoint.exists()
    assert "checkpoint at block" in capsys.readouterr().err
    args = parser.parse_args(
        [*base, "--to-block", str(history.checkpoints[-1]), "--resume", str(checkpoint), "--signer", "auditor"]
    )
    assert args.handler(args) == 0
    data = json.loads(out.read_text())
    assert data["ok"] and data["digest"]["match"] and data["resumed_from"]["block"] == history.checkpoints[0]
    # without saying whom to trust, or with another key, --resume refuses (exit through the typed error)
    args = parser.parse_args([*base, "--resume", str(checkpoint)])
    with pytest.raises(ConfigurationError, match="expected signer"):
        args.handler(args)
    args = parser.parse_args([*base, "--resume", str(checkpoint), "--expect-signer", "0x" + "12" * 20])
    with pytest.raises(CheckpointTampered):
        args.handler(args)


def test_a_checkpoint_of_a_rewritten_history_is_not_a_prefix(chain: Chain, history: History, tmp_path: Path) -> None:
    """Runs last in this module: it rewrites the module chain's history (evm_snapshot / evm_revert)."""
    w3 = chain.w3
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    generator = HistoryGenerator(chain, seed=1)
    for _ in range(3):
        generator.submit()
    path = tmp_path / "checkpoint.json"
    _checkpointed(chain, chain.head(), path)
    height = chain.head()
    assert open_checkpoint(path, chain.rpc_url, chain.deployment, expected_signer=AUDITOR.address)
    assert w3.provider.make_request("evm_revert", [snapshot])["result"] is True  # type: ignore[arg-type]
    trader = next(iter(chain.deployment.traders.values()))
    fn = chain.registry.functions.updateTrader(trader, 1, True)
    chain.web3_tx(chain.account("cn-tj-customs-signer-0"), fn)  # a different transaction at the same heights
    while chain.head() < height:
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    with pytest.raises(CheckpointNotPrefix):
        open_checkpoint(path, chain.rpc_url, chain.deployment, expected_signer=AUDITOR.address)
    # a full replay of the new history is still clean
    report = replay(chain.rpc_url, chain.deployment, progress=None)
    assert report.digest_match is True and report.errors == []

    # a reorg while the logs are being read: the replay refuses to certify that history in a checkpoint
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    chain.web3_tx(chain.account("cn-tj-customs-signer-0"), chain.registry.functions.updateTrader(trader, 1, False))
    head = chain.head()
    d = chain.deployment

    def reorging_pages() -> Iterator[list[Any]]:
        yield from fetch_logs(chain.rpc_url, [d.registry, d.ledger], d.deployment_block, head)
        assert w3.provider.make_request("evm_revert", [snapshot])["result"] is True  # type: ignore[arg-type]
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    with pytest.raises(AuditError, match="changed while it was replayed"):
        replay(chain.rpc_url, d, to_block=head, logs=reorging_pages(), track=True, progress=None)
