"""Routes behind the web pages on a real service: the trader's own declarations page by page, who
am I, verify by CID, the audit report for auditors only, and ``ledger api token``."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from ledger_api.cli import main
from ledger_api.client import ApiProblem, LedgerHttpClient
from ledger_api.documents import Cid
from tests.ledger_api.api.conftest import Service

pytestmark = pytest.mark.integration


def _problem(call: object) -> tuple[int, str]:
    with pytest.raises(ApiProblem) as refused:
        call()  # type: ignore[operator]
    return refused.value.status, refused.value.problem_code


def test_the_trader_listing_is_the_callers_own_page_by_page(service: Service) -> None:
    mine, other = service.client("trader-tj-electronics"), service.client("trader-tj-foods")
    submitted = []
    for trader, reference in ((mine, "WEB-A-1"), (other, "WEB-B-1"), (mine, "WEB-A-2")):
        accepted = trader.submit_declaration({"jurisdiction": "CN-TJ-CUSTOMS", "local_reference": reference},
                                             [(1, f"{reference}.pdf", f"invoice {reference}".encode())])  # fmt: skip
        assert trader.wait_settled(accepted["tracking_id"])["status"] == "final"
        submitted.append(accepted["declaration_id"])
    a1, b1, a2 = submitted
    service.until(lambda: len(mine.my_declarations()["items"]) == 2)
    page = mine.my_declarations(limit=1)
    assert [d["declaration_id"] for d in page["items"]] == [a1] and page["next_after"] == a1
    last = mine.my_declarations(limit=1, after=a1)
    assert [d["declaration_id"] for d in last["items"]] == [a2] and last["next_after"] is None
    assert [d["declaration_id"] for d in other.my_declarations()["items"]] == [b1]
    assert _problem(lambda: mine.my_declarations(after=b1)) == (422, "invalid-request")  # not its own cursor
    assert _problem(lambda: mine.declaration(b1)) == (404, "declaration-not-found")
    assert _problem(lambda: service.client("cn-tj-customs-signer-0").my_declarations()) == (403, "forbidden")
    with LedgerHttpClient(base_url=service.base_url, token=mine.mint_token(ttl_seconds=600)["token"]) as browser:
        assert browser.whoami() == {"address": service.address("trader-tj-electronics"), "kind": "trader",
                                    "agency_id": None, "roles": [], "auth_method": "token"}  # fmt: skip
        assert {d["declaration_id"] for d in browser.my_declarations()["items"]} == {a1, a2}

    # The verification page's CID route: the CID of the stored (sealed) copy finds the same verdict.
    customs = service.client("cn-tj-customs-signer-0")
    anchored = mine.declaration(a1)["documents"][0]
    cid = str(Cid.from_bytes(bytes.fromhex(anchored["cid"].removeprefix("0x"))))
    invoice_sha = "0x" + hashlib.sha256(b"invoice WEB-A-1").hexdigest()
    assert customs.verify_cid(cid)["sha256"] == anchored["sha256"] == invoice_sha
    unknown = str(Cid.for_block(b"never anchored", codec=0x55))
    assert _problem(lambda: customs.verify_cid(unknown)) == (404, "document-not-found")
    assert _problem(lambda: customs.verify_cid("bnotacid0000")) == (422, "invalid-cid")


def test_the_audit_report_is_for_auditors_only(service: Service) -> None:
    auditor = service.client("consortium-audit-signer-0")
    path = service.settings.audit_report_path
    assert path == service.settings.var_dir / "audit" / "report.json"
    path.unlink(missing_ok=True)
    assert _problem(auditor.audit_report) == (404, "audit-report-not-found")
    for label in ("cn-tj-customs-signer-0", "trader-tj-foods", "cn-tj-ciq-lab-signer-0"):
        assert _problem(service.client(label).audit_report) == (403, "forbidden"), label
    path.parent.mkdir(parents=True, exist_ok=True)
    report = {"report": "ledger-audit-replay/1", "ok": True, "summary": {"errors": 0, "warnings": 0}, "findings": []}
    path.write_text(json.dumps(report))
    served = auditor.audit_report()
    assert served["report"] == report and served["written_at"] > 0
    assert _problem(service.client("trader-tj-foods").audit_report) == (403, "forbidden")  # still, with a report


def test_cli_mints_a_token_printing_only_the_token(
    service: Service, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("LEDGER_VAR_DIR", str(service.settings.var_dir))
    code = main(["api", "--url", service.base_url, "--as", "trader-tj-foods", "token", "--ttl", "600"])
    out, err = capsys.readouterr()
    assert code == 0 and re.fullmatch(r"clt_[0-9a-f]{16}_[A-Za-z0-9_-]{43}\n", out) and "expires at" in err
    assert out.strip() not in err
    with LedgerHttpClient(base_url=service.base_url, token=out.strip()) as browser:
        assert browser.whoami()["address"] == service.address("trader-tj-foods")
    code = main(["api", "--url", service.base_url, "--as", "trader-tj-foods", "token", "--ttl", "5"])
    assert code == 1 and "--ttl" in capsys.readouterr().err
