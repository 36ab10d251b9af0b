"""``ledger demo`` without a running system: one clear error line and exit status 1."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from ledger_api.chain.deploy import AgencyRecord, Deployment
from ledger_api.cli import main


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_demo_needs_a_deployment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LEDGER_VAR_DIR", str(tmp_path / "var"))
    assert main(["demo"]) == 1
    err = capsys.readouterr().err
    assert "no deployment record" in err and "ledger run" in err


def test_demo_exits_1_when_the_api_does_not_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    var = tmp_path / "var"
    var.mkdir()
    Deployment(
        chain_id=31337, registry="0x" + "11" * 20, ledger="0x" + "22" * 20, deployment_block=1,
        registry_codehash="0x" + "00" * 32, ledger_codehash="0x" + "00" * 32, deployer="0x" + "55" * 20,
        governors=("0x" + "33" * 20,), threshold=1,
        agencies={"CN-TJ-CUSTOMS": AgencyRecord(index=1, signers=("0x" + "44" * 20,), encryption_public_key="0x00")},
    ).save(var / "deployment.json")  # fmt: skip
    monkeypatch.setenv("LEDGER_VAR_DIR", str(var))
    assert main(["demo", "--base-url", f"http://127.0.0.1:{_closed_port()}"]) == 1
    err = capsys.readouterr().err
    assert "cannot reach the running system" in err and "ledger run" in err
