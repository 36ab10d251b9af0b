"""Settings validation and the CLI's error contract (one readable line, non-zero exit)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ledger_api.cli import main
from ledger_api.config import Settings


def test_production_requires_an_rpc_url_and_a_strong_keystore_password() -> None:
    with pytest.raises(ValidationError, match="LEDGER_RPC_URL"):
        Settings(environment="production", keystore_password="x" * 20)
    with pytest.raises(ValidationError, match="LEDGER_KEYSTORE_PASSWORD"):
        Settings(environment="production", rpc_url="http://node:8545", keystore_password="short")
    ok = Settings(environment="production", rpc_url="http://node:8545", keystore_password="x" * 20)
    assert not ok.embedded and ok.effective_rpc_url == "http://node:8545"
    assert "x" * 20 not in repr(ok)  # secrets never printed


def test_embedded_default_points_at_local_anvil() -> None:
    settings = Settings(anvil_port=9999)
    assert settings.embedded and settings.effective_rpc_url == "http://127.0.0.1:9999"


def test_cli_without_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: ledger" in capsys.readouterr().err


def test_cli_refusal_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str], tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LEDGER_VAR_DIR", str(tmp_path))
    assert main(["node", "reset"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["ledger: error: `ledger node reset` deletes the embedded chain; repeat with --yes"]
