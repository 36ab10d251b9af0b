"""API tokens: minted with a signed request, bound to the identity, revocable, never able to mint."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger_api.client import ApiProblem, LedgerHttpClient
from tests.ledger_api.api.conftest import Service

pytestmark = pytest.mark.integration


def _problem(call: object) -> tuple[int, str]:
    with pytest.raises(ApiProblem) as refused:
        call()  # type: ignore[operator]
    return refused.value.status, refused.value.problem_code


def test_a_token_stands_in_for_signatures_until_revoked(service: Service, tmp_path: Path) -> None:
    signed = service.client("cn-tj-customs-signer-0")
    issued = signed.mint_token(ttl_seconds=3600)
    assert issued["token"].startswith("clt_") and issued["owner"] == service.address("cn-tj-customs-signer-0")
    with LedgerHttpClient(base_url=service.base_url, token=issued["token"]) as desk:
        assert desk.verify_hash("0x" + "00" * 32)["status"] == "NOT_ANCHORED"
        upload = tmp_path / "scan.pdf"
        upload.write_bytes(b"scanned certificate " * 1000)
        assert desk.verify_file(upload)["status"] == "NOT_ANCHORED"  # streamed, checked against Content-Digest
        assert _problem(lambda: desk.mint_token()) == (403, "forbidden")
        listed = signed.tokens()
        assert [t["token_id"] for t in listed if t["token_id"] == issued["token_id"]] and all(
            "token" not in t for t in listed
        )

        signed.revoke_token(issued["token_id"])
        assert _problem(lambda: desk.verify_hash("0x" + "00" * 32)) == (401, "signature-invalid")
    assert _problem(lambda: signed.revoke_token("00" * 8)) == (404, "token-not-found")
    assert _problem(lambda: signed.mint_token(ttl_seconds=10**9)) == (422, "invalid-request")


def test_tokens_carry_their_identity_and_nothing_more(service: Service) -> None:
    trader_token = service.client("trader-tj-foods").mint_token()["token"]
    with LedgerHttpClient(base_url=service.base_url, token=trader_token) as trader:
        assert isinstance(trader.declarations(), list)  # the trader's own list
        assert _problem(lambda: trader.verify_hash("0x" + "00" * 32)) == (403, "forbidden")  # agencies only
    forged = trader_token[:-4] + ("AAAA" if not trader_token.endswith("AAAA") else "BBBB")
    for bad in (forged, "clt_nothing", "x" * 80):
        with LedgerHttpClient(base_url=service.base_url, token=bad) as client:
            assert _problem(lambda c=client: c.declarations()) == (401, "signature-invalid")  # type: ignore[misc]
