"""Every user kind through the typed client: trader → customs → partner agency → governors."""

from __future__ import annotations

import hashlib

import pytest

from ledger_api.client import ApiProblem
from tests.ledger_api.api.conftest import Service

pytestmark = pytest.mark.integration


def test_a_consignment_through_the_typed_client(service: Service) -> None:
    trader = service.client("trader-rtm-importer")
    customs, partner = service.client("nl-rtm-customs-signer-0"), service.client("cn-tj-customs-signer-0")
    certificate = b"phytosanitary certificate PC-2026-118"
    accepted = trader.submit_declaration({"jurisdiction": "NL-RTM-CUSTOMS", "local_reference": "RTM-CLIENT-1"},
                                         [(4, "pc.pdf", certificate)])  # fmt: skip
    assert trader.wait_settled(accepted["tracking_id"])["status"] == "final"
    did, sha = accepted["declaration_id"], "0x" + hashlib.sha256(certificate).hexdigest()

    page = service.until(
        lambda: (p := customs.customs_declarations()) and any(d["declaration_id"] == did for d in p["items"]) and p
    )
    assert all(d["jurisdiction"] == page["items"][0]["jurisdiction"] for d in page["items"])
    assert (
        customs.wait_settled(customs.accept_declaration(did, "26NL000000000118A1")["tracking_id"])["status"] == "final"
    )

    assert customs.fetch_document(sha) == certificate
    with pytest.raises(ApiProblem) as no_wrap:
        partner.fetch_document(sha)
    assert no_wrap.value.status == 404  # no wrap: indistinguishable from unknown
    assert "CN-TJ-CUSTOMS" in customs.grant_access(sha, "CN-TJ-CUSTOMS")["agencies"]
    assert partner.fetch_document(sha) == certificate
    customs.revoke_access(sha, "CN-TJ-CUSTOMS")
    with pytest.raises(ApiProblem):
        partner.fetch_document(sha)

    held = customs.decide(did, "HOLD", reason_code=7)
    assert customs.wait_settled(held["tracking_id"])["status"] == "final"
    status = service.until(lambda: (d := trader.declaration(did))["status"] == "HELD" and d)
    assert status["mrn"] is not None
    assert [e["name"] for e in trader.timeline(did)][:2] == ["DeclarationSubmitted", "DeclarationAccepted"]


def test_governors_suspend_an_agency_through_the_typed_client(service: Service) -> None:
    first, second = service.client("governor-0"), service.client("governor-1")
    proposed = first.propose({"action": "set_agency_status", "agency_id": "NL-NVWA", "status": "SUSPENDED"})
    proposal_id = proposed["proposal_id"]
    assert isinstance(proposal_id, int)
    second.approve_proposal(proposal_id)
    executed = first.execute_proposal(proposal_id)
    assert executed["proposal_id"] == proposal_id and executed["events"]
    view = service.until(
        lambda: (p := _indexed(lambda: first.proposal(proposal_id))) and p["status"] == "executed" and p
    )
    assert view["function"] == "setAgencyStatus" and len(view["approved_by"]) >= 2
    nvwa = service.client("nl-nvwa-signer-0")
    refused = service.until(lambda: _refused(nvwa))
    assert refused == (401, "unknown-caller")


def _indexed(read: object) -> dict[str, object] | None:
    """``read()``, or None while the indexer has not seen the object yet (404)."""
    try:
        return read()  # type: ignore[operator,no-any-return]
    except ApiProblem as exc:
        if exc.status == 404:
            return None
        raise


def _refused(client: object) -> tuple[int, str] | None:
    try:
        client.verify_hash("0x" + "00" * 32)  # type: ignore[attr-defined]
    except ApiProblem as exc:
        return exc.status, exc.problem_code
    return None
