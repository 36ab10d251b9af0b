"""``ledger api …`` against a running service: submit, status, verify; bad input is one line and exit 1."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from ledger_api.cli import main
from tests.ledger_api.api.conftest import Service

pytestmark = pytest.mark.integration


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_submits_tracks_and_verifies(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LEDGER_VAR_DIR", str(service.settings.var_dir))
    declaration = tmp_path / "declaration.json"
    declaration.write_text(json.dumps({"jurisdiction": "CN-TJ-CUSTOMS", "local_reference": "CLI-1"}))
    invoice = tmp_path / "invoice.pdf"
    invoice.write_bytes(b"%PDF cli invoice")
    api = ("api", "--url", service.base_url)

    code, out, _ = _run(capsys, *api, "--as", "trader-tj-foods", "submit", str(declaration),
                        "--document", f"1:{invoice}", "--wait")  # fmt: skip
    settled = json.loads(out)
    assert code == 0 and settled["status"] == "final" and settled["function"] == "submitDeclaration"
    code, out, _ = _run(capsys, *api, "--as", "trader-tj-foods", "status", settled["tracking_id"])
    assert code == 0 and json.loads(out)["state"] == "final"

    sha = hashlib.sha256(invoice.read_bytes()).hexdigest()
    service.until(lambda: _run(capsys, *api, "--as", "cn-tj-customs-signer-0", "verify", sha)[0] == 0)
    code, out, _ = _run(capsys, *api, "--as", "cn-tj-customs-signer-0", "verify", str(invoice))
    assert code == 0 and json.loads(out)["sha256"].removeprefix("0x") == sha

    for argv, needle in [
        ((*api, "--as", "nobody-here", "status", "1"), "no key 'nobody-here'"),
        ((*api, "--as", "trader-tj-foods", "submit", str(tmp_path / "missing.json")), "not a file"),
        ((*api, "--as", "trader-tj-foods", "submit", str(declaration), "--document", "x:y"), "TYPE:PATH"),
        ((*api, "--as", "trader-tj-foods", "status", "999999"), "submission-not-found"),
    ]:
        code, out, err = _run(capsys, *argv)
        assert code == 1 and needle in err and len(err.strip().splitlines()) == 1, err
