"""The web pages in real headless Chromium against a real service on a real anvil.

A declaration with a real document goes through the typed client to the chain (accepted, channelled,
stamped by the lab, released); then a browser signs in with API tokens and: drops the document →
"Anchored and valid" with its issuer and timeline (and the same for its pasted sha256 and CID); drops
a copy with one byte changed → "Not found — does not match"; trader A's page lists A's declarations,
never B's, and asking for B's by id is refused; the auditor page shows its empty state, then the report
of a real ``ledger audit replay --report``, and refuses a customs key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from ledger_api.chain.events import JsonRpc
from ledger_api.cli import main
from ledger_api.documents import Cid
from ledger_api.verify.evidence import verify_bundle
from tests.ledger_api.api.conftest import Service
from tests.ledger_api.api.test_customs_routes import CN_CUSTOMS, LAB, assign_channel, indexed, settle

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

TRADER_A, TRADER_B, AUDITOR = "trader-tj-electronics", "trader-tj-foods", "consortium-audit-signer-0"
CERTIFICATE = (
    b"%PDF-1.4\n% certificate of origin CO-2026-0815\nexporter: Tianjin Electronics Co.\n"
    b"consignee: Rotterdam Importer BV\ngoods: 1200 x LED drivers, HS 8504.40\n%%EOF\n"
)


def _token(service: Service, label: str) -> str:
    token: str = service.client(label).mint_token(ttl_seconds=900)["token"]
    return token


def _sign_in(page: Page, service: Service, path: str, label: str) -> None:
    page.goto(service.base_url + path)
    page.get_by_label("API token").fill(_token(service, label))
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signed-in")).to_be_visible()


def _submit(service: Service, trader: str, reference: str, document: bytes) -> str:
    client = service.client(trader)
    declaration = {"jurisdiction": "CN-TJ-CUSTOMS", "local_reference": reference, "nonce": os.urandom(8).hex()}
    accepted = client.submit_declaration(declaration, [(3, "certificate.pdf", document)])
    settle(client, accepted)
    declaration_id: str = accepted["declaration_id"]
    service.until(lambda: indexed(client, declaration_id))
    return declaration_id


def _drop(page: Page, name: str, content: bytes) -> None:
    """Drop a file on the drop zone the way a desktop drag does (a DataTransfer carrying a File)."""
    transfer = page.evaluate_handle(
        """([name, b64]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: "application/pdf" }));
            return transfer;
        }""",
        [name, base64.b64encode(content).decode()],
    )
    page.dispatch_event("#drop-zone", "drop", {"dataTransfer": transfer})


def test_a_dropped_document_is_verified_and_a_tampered_copy_fails(service: Service, page: Page, tmp_path: Path) -> None:
    declaration_id = _submit(service, TRADER_A, "E2E-VERIFY-1", CERTIFICATE)
    customs, lab = service.client(CN_CUSTOMS), service.client(LAB)
    settle(customs, customs.accept_declaration(declaration_id, "26CNTJE2E0000001"))
    service.until(lambda: (indexed(customs, declaration_id) or {}).get("status") == "ACCEPTED")
    assign_channel(service, declaration_id)
    stamp = lab.record_stamp(declaration_id, stamp_type="LAB_TEST", result="PASS", report=b"%PDF lab " + os.urandom(8))
    settle(lab, stamp)
    service.until(lambda: any(e["name"] == "StampRecorded" for e in customs.timeline(declaration_id)))
    settle(customs, customs.decide(declaration_id, "RELEASE", reason_code=1, pass_stamps=[stamp["stamp_id"]]))
    service.until(lambda: customs.declaration(declaration_id)["status"] == "RELEASED")

    sent: list[tuple[str, str, bytes | None]] = []
    page.on("request", lambda r: sent.append((r.method, r.url, r.post_data_buffer)))
    _sign_in(page, service, "/verify", CN_CUSTOMS)
    expect(page.locator("#who")).to_contain_text("CN-TJ-CUSTOMS")

    _drop(page, "certificate.pdf", CERTIFICATE)
    verdict = page.locator("#verdict")
    expect(verdict.locator("#verdict-heading")).to_have_text("Anchored and valid")
    expect(verdict).to_contain_text("certificate.pdf")
    expect(page.locator("#verdict-status")).to_have_text("VALID")
    expect(page.locator("#issuer")).to_contain_text(service.address(TRADER_A))
    expect(page.locator("#declaration-status")).to_have_text("RELEASED")
    events = page.locator("#timeline li strong")
    expect(events).to_have_text(
        ["DeclarationSubmitted", "DeclarationAccepted", "ChannelAssigned", "StampRecorded", "DecisionRecorded"]
    )
    expect(page.get_by_role("heading", name="Stamps and decisions")).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download verdict.json").click()
    assert download.value.suggested_filename == "verdict.json"
    # The evidence bundle: fetched with the token, saved, and it verifies offline against our own node's block.
    with page.expect_download(timeout=60_000) as bundle_download:
        page.get_by_role("button", name="Download evidence bundle").click()
    saved = tmp_path / "bundle.json"
    bundle_download.value.save_as(saved)
    expect(page.locator("#bundle-status")).to_contain_text("Evidence bundle saved")
    bundle = saved.read_bytes()
    last = int(json.loads(bundle)["blocks"][-1]["header"]["number"], 16)
    with JsonRpc(rpc_url=service.settings.effective_rpc_url) as rpc:
        trusted = rpc.call("eth_getBlockByNumber", [hex(last), False])["hash"]
    report = verify_bundle(bundle, trusted_block=trusted, document=CERTIFICATE)
    assert report is not None

    # The same verdict for the pasted sha256 and for the CID of the stored (sealed) copy.
    sha = hashlib.sha256(CERTIFICATE).hexdigest()
    stored = str(Cid.from_bytes(bytes.fromhex(customs.declaration(declaration_id)["documents"][0]["cid"][2:])))
    for pasted in (sha, stored):
        page.get_by_label("Or paste a sha256").fill(pasted)
        page.get_by_role("button", name="Verify", exact=True).click()
        expect(page.locator("#verdict")).to_contain_text("SHA-256: 0x" + sha)
        expect(verdict.locator("#verdict-heading")).to_have_text("Anchored and valid")
    page.get_by_label("Or paste a sha256").fill("not a fingerprint")
    page.get_by_role("button", name="Verify", exact=True).click()
    expect(verdict.get_by_role("heading")).to_have_text("Not a sha256 or a CID")

    tampered = bytearray(CERTIFICATE)
    tampered[40] ^= 0x01  # one byte changed
    copy = tmp_path / "certificate-copy.pdf"
    copy.write_bytes(bytes(tampered))
    with page.expect_file_chooser() as chooser:  # the keyboard path: Enter on the focused drop zone
        page.locator("#drop-zone").focus()
        page.keyboard.press("Enter")
    chooser.value.set_files(copy)
    expect(verdict.locator("#verdict-heading")).to_have_text("Not found — does not match any anchored document")
    expect(verdict).to_contain_text("may have been altered")
    expect(page.locator("#verdict-status")).to_have_text("NOT_ANCHORED")

    # Only fingerprints went to the service: no request carried a body, none left the origin.
    assert sent and all(method == "GET" and not body for method, _, body in sent)
    assert all(url.startswith(service.base_url) for _, url, _ in sent)
    assert not any(CERTIFICATE[:20] in (body or b"") for _, _, body in sent)


def test_a_trader_sees_its_own_declarations_and_never_another_traders(service: Service, page: Page) -> None:
    mine = [_submit(service, TRADER_A, f"E2E-A-{n}", b"%PDF invoice A " + os.urandom(8)) for n in (1, 2)]
    theirs = _submit(service, TRADER_B, "E2E-B-1", b"%PDF invoice B " + os.urandom(8))

    _sign_in(page, service, "/trader", TRADER_A)
    expect(page.locator("#who")).to_contain_text(service.address(TRADER_A))
    for declaration_id in mine:
        expect(page.locator(f'#declarations > li[data-declaration="{declaration_id}"]')).to_be_visible()
    expect(page.locator("#list-status")).to_contain_text("declaration version(s) shown")
    assert theirs not in page.locator("main").inner_text()
    assert page.locator(f'[data-declaration="{theirs}"]').count() == 0

    first = page.locator(f'#declarations > li[data-declaration="{mine[0]}"]')
    first.get_by_text("Provenance timeline").click()
    expect(first.locator("ol.timeline li strong").first).to_have_text("DeclarationSubmitted")

    page.get_by_label("Declaration id").fill(theirs)
    page.get_by_role("button", name="Open").click()
    refusal = page.locator("#opened")
    expect(refusal).to_contain_text("Refused: this declaration is not visible to you")
    expect(refusal).to_contain_text("HTTP 404")
    expect(refusal).to_contain_text("declaration-not-found")
    assert refusal.locator("dl").count() == 0 and "E2E-B" not in refusal.inner_text()

    page.get_by_label("Declaration id").fill(mine[1])
    page.get_by_role("button", name="Open").click()
    expect(refusal.locator(f'li[data-declaration="{mine[1]}"]')).to_be_visible()


def test_the_audit_page_shows_an_empty_state_then_the_real_replay_report_to_auditors_only(
    service: Service, page: Page, monkeypatch: pytest.MonkeyPatch
) -> None:
    report_path = service.settings.audit_report_path
    report_path.unlink(missing_ok=True)
    _sign_in(page, service, "/auditor", AUDITOR)
    expect(page.locator("#report-status")).to_contain_text("No replay report yet")

    # A real replay of this service's chain, written where the service reads it.
    report_path.parent.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("LEDGER_VAR_DIR", str(service.settings.var_dir))
    monkeypatch.setenv("LEDGER_ANVIL_PORT", str(service.settings.anvil_port))
    code = main(["audit", "replay", "--quiet", "--no-channel-check", "--report", str(report_path)])
    assert code == 0, "the replay found problems on a clean chain"
    page.reload()
    expect(page.locator("#report-status")).to_contain_text("Replay OK — no errors found")
    expect(page.locator("#report")).to_contain_text("Digest matches views")
    expect(page.get_by_role("button", name="Download report.json")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("API token").fill(_token(service, CN_CUSTOMS))
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#report-status")).to_contain_text("HTTP 403")
    assert page.locator("#report").inner_text().strip() == ""
