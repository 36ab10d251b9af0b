"""Customs authorities over HTTP: accept, decide (four-eyes where configured), their jurisdiction's work list.

A real anvil with the default consortium and the service under uvicorn (the ``service`` fixture);
every write goes through the outbox to the chain and comes back through the indexer.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from ledger_api.api.writes import WriteService
from ledger_api.chain import _tx_calls as calls
from ledger_api.client import ApiProblem, LedgerHttpClient
from tests.ledger_api.api.conftest import Service

pytestmark = pytest.mark.integration

CN_CUSTOMS, CN_CUSTOMS_2 = "cn-tj-customs-signer-0", "cn-tj-customs-signer-1"
NL_CUSTOMS, LAB, NVWA = "nl-rtm-customs-signer-0", "cn-tj-ciq-lab-signer-0", "nl-nvwa-signer-0"
RISK, AUDIT = "consortium-risk-signer-0", "consortium-audit-signer-0"
OWNER, OTHER_TRADER, NL_TRADER = "trader-tj-electronics", "trader-tj-foods", "trader-rtm-importer"
RED, LAB_TEST_BIT = 3, 1 << 3
ZERO_ID = "0x" + "00" * 32


def sha(data: bytes) -> str:
    """0x-hex sha256."""
    return "0x" + hashlib.sha256(data).hexdigest()


def problem(call: Callable[[], object]) -> tuple[int, str]:
    """Run a request that must fail; its (status, problem code)."""
    with pytest.raises(ApiProblem) as refused:
        call()
    return refused.value.status, refused.value.problem_code


def writes_of(service: Service) -> WriteService:
    """The service's write side (journal, vault, custody)."""
    writes: WriteService = service.app.state.writes  # type: ignore[attr-defined]
    return writes


def indexed(client: LedgerHttpClient, declaration_id: str) -> dict[str, Any] | None:
    """The declaration as ``client`` sees it, or None while the indexer has not caught up."""
    try:
        return client.declaration(declaration_id)
    except ApiProblem as exc:
        if exc.status == 404:
            return None
        raise


def settle(client: LedgerHttpClient, accepted: dict[str, Any], *, status: str = "final") -> dict[str, Any]:
    """Wait for a 202'd write to settle and check how it ended."""
    settled = client.wait_settled(accepted["tracking_id"])
    assert settled["status"] == status, settled
    return settled


def submitted(service: Service, lrn: str, *, trader: str = OWNER, jurisdiction: str = "CN-TJ-CUSTOMS") -> str:
    """A declaration submitted over HTTP, mined and indexed; its id."""
    client = service.client(trader)
    declaration = {"jurisdiction": jurisdiction, "local_reference": lrn, "nonce": os.urandom(8).hex()}
    accepted = client.submit_declaration(declaration, [(1, "invoice.pdf", b"invoice " + lrn.encode())])
    settle(client, accepted)
    declaration_id: str = accepted["declaration_id"]
    service.until(lambda: indexed(client, declaration_id))
    return declaration_id


def accepted_declaration(service: Service, lrn: str, *, customs: str = CN_CUSTOMS, **kwargs: str) -> str:
    """A declaration submitted and accepted (MRN = ``MRN-<lrn>``), indexed as ACCEPTED; its id."""
    declaration_id = submitted(service, lrn, **kwargs)
    client = service.client(customs)
    settle(client, client.post_json(f"/v1/declarations/{declaration_id}/acceptance", {"mrn": f"MRN-{lrn}"}))
    service.until(lambda: (indexed(client, declaration_id) or {}).get("status") == "ACCEPTED")
    return declaration_id


def assign_channel(service: Service, declaration_id: str, *, channel: int = RED, required: int = LAB_TEST_BIT) -> None:
    """The risk oracle's channel, journaled straight into the service's outbox (there is no route for it)."""
    risk = service.address(RISK)
    call = calls.assign_channel(
        declaration_id=bytes.fromhex(declaration_id[2:]), channel=channel, required_stamps=required,
        rule_set_hash=hashlib.sha256(b"rules-v1").digest(),
    )  # fmt: skip
    entry = writes_of(service).committer.submit(f"{risk.lower()}/channel:{declaration_id}", call, risk)
    assert service.client(RISK).wait_settled(str(entry.id))["status"] == "final"
    customs = service.client(CN_CUSTOMS)
    service.until(lambda: (indexed(customs, declaration_id) or {}).get("channel") == channel)


def timeline_names(client: LedgerHttpClient, declaration_id: str) -> list[str]:
    """Event names of the declaration's timeline over HTTP."""
    return [event["name"] for event in client.timeline(declaration_id)]


# ---------------------------------------------------------------------------------------- flows


def test_submission_to_release_with_a_lab_stamp_and_the_whole_timeline(service: Service) -> None:
    trader, customs, lab = service.client(OWNER), service.client(CN_CUSTOMS), service.client(LAB)
    declaration_id = submitted(service, "LRN-FLOW-1")

    accepted = customs.post_json(f"/v1/declarations/{declaration_id}/acceptance", {"mrn": "CNTJ26FLOW0000001"})
    assert accepted["status"] == "pending" and accepted["declaration_id"] == declaration_id
    assert settle(customs, accepted)["function"] == "acceptDeclaration"
    service.until(lambda: (indexed(customs, declaration_id) or {}).get("status") == "ACCEPTED")
    assert customs.declaration(declaration_id)["mrn"] == sha(b"CNTJ26FLOW0000001")

    assign_channel(service, declaration_id)

    report = b"%PDF lab report: moisture 4.1 %, lead below limit " + os.urandom(16)
    stamp = lab.record_stamp(declaration_id, stamp_type="LAB_TEST", result="PASS", report=report)
    assert stamp["stamp_id"] == sha(report) and stamp["declaration_id"] == declaration_id
    assert settle(lab, stamp)["function"] == "recordStamp"
    service.until(lambda: "StampRecorded" in timeline_names(customs, declaration_id))

    decision = {"kind": "RELEASE", "reason_code": 1, "report_sha256": sha(b"release report"),
                "pass_stamps": [stamp["stamp_id"]]}  # fmt: skip
    release = customs.post_json(f"/v1/declarations/{declaration_id}/decisions", decision)
    assert settle(customs, release)["function"] == "decide"
    service.until(lambda: customs.declaration(declaration_id)["status"] == "RELEASED")

    expected = ["DeclarationSubmitted", "DeclarationAccepted", "ChannelAssigned", "StampRecorded", "DecisionRecorded"]
    for party in (trader, customs):  # the declarant and the jurisdiction both see every step
        events = party.timeline(declaration_id)
        assert [e["name"] for e in events] == expected
        assert all(e["tx_hash"] and e["block_number"] > 0 for e in events)
        stamped = events[3]["args"]
        assert stamped["stampId"] == stamp["stamp_id"] and stamped["signer"] == service.address(LAB)
        assert [s.lower() for s in events[4]["args"]["passStamps"]] == [stamp["stamp_id"]]
    assert trader.declaration(declaration_id)["status"] == "RELEASED"

    # The report is stored sealed for the lab and the jurisdiction, and nobody else.
    writes = writes_of(service)
    envelope = writes.vault.get(bytes.fromhex(stamp["stamp_id"][2:]))
    assert envelope is not None and sorted(envelope.keyring.agencies) == ["CN-TJ-CIQ-LAB", "CN-TJ-CUSTOMS"]
    for agency in ("CN-TJ-CUSTOMS", "CN-TJ-CIQ-LAB"):
        opened = writes.vault.open_for(bytes.fromhex(stamp["stamp_id"][2:]), agency_id=agency,
                                       private_key=writes.decryption_keys[agency], max_size=1 << 20)  # fmt: skip
        assert opened == report

    released = customs.get_json("/v1/customs/declarations?status=RELEASED&limit=500")
    assert declaration_id in [d["declaration_id"] for d in released["items"]]


def test_seizure_needs_a_second_signer_and_a_cancelled_round_can_be_proposed_again(service: Service) -> None:
    first, second = service.client(CN_CUSTOMS), service.client(CN_CUSTOMS_2)
    declaration_id = accepted_declaration(service, "LRN-SEIZE-1")
    path = f"/v1/declarations/{declaration_id}"

    settle(first, first.post_json(f"{path}/decisions", {"kind": "HOLD", "reason_code": 3}))
    seize = {"kind": "SEIZE", "reason_code": 4, "report_sha256": sha(b"seizure report")}
    proposed = first.post_json(f"{path}/decisions", seize)
    settle(first, proposed)
    service.until(lambda: "DecisionProposed" in timeline_names(first, declaration_id))
    assert first.declaration(declaration_id)["status"] == "HELD"  # not yet: SEIZE needs two signers

    # The proposer cannot approve its own proposal: the API journals it, the contract refuses it.
    own = first.post_json(f"{path}/decisions/pending/approvals", {})
    failed = settle(first, own, status="failed")
    assert failed["error"]["error"] == "ClearanceLedgerAlreadyApproved"

    settle(second, second.post_json(f"{path}/decisions/pending/cancellation", {}))
    service.until(lambda: "DecisionCancelled" in timeline_names(first, declaration_id))

    again = first.post_json(f"{path}/decisions", seize)  # same content, new round: a new write
    assert again["tracking_id"] != proposed["tracking_id"]
    settle(first, again)
    service.until(lambda: timeline_names(first, declaration_id).count("DecisionProposed") == 2)
    approval = second.post_json(f"{path}/decisions/pending/approvals", {})
    assert second.post_json(f"{path}/decisions/pending/approvals", {})["tracking_id"] == approval["tracking_id"]
    settle(second, approval)
    service.until(lambda: first.declaration(declaration_id)["status"] == "SEIZED")

    names = timeline_names(service.client(OWNER), declaration_id)
    assert names == ["DeclarationSubmitted", "DeclarationAccepted", "DecisionRecorded", "DecisionProposed",
                     "DecisionCancelled", "DecisionProposed", "DecisionRecorded"]  # fmt: skip
    final = service.client(OWNER).timeline(declaration_id)[-1]["args"]
    assert final["signer"] == service.address(CN_CUSTOMS_2) and final["round"] == 2


def test_acceptance_is_idempotent_and_a_reused_key_with_other_content_conflicts(service: Service) -> None:
    customs = service.client(CN_CUSTOMS)
    declaration_id = submitted(service, "LRN-IDEM-1")
    path = f"/v1/declarations/{declaration_id}/acceptance"
    first = customs.post_json(path, {"mrn": "MRN-IDEM-1"})
    assert customs.post_json(path, {"mrn": "MRN-IDEM-1"})["tracking_id"] == first["tracking_id"]
    settle(customs, first)
    # Other content is another write (default key from the content); the contract refuses a second acceptance.
    other_mrn = customs.post_json(path, {"mrn": "MRN-IDEM-2"})
    assert other_mrn["tracking_id"] != first["tracking_id"]
    assert settle(customs, other_mrn, status="failed")["error"]["error"] == "ClearanceLedgerInvalidStatus"
    keyed = customs.post_json(path, {"mrn": "MRN-IDEM-3"}, idempotency_key="accept-idem-1-retry")
    reused = partial(customs.post_json, path, {"mrn": "MRN-IDEM-4"}, idempotency_key="accept-idem-1-retry")
    assert problem(reused) == (409, "idempotency-conflict")
    assert settle(customs, keyed, status="failed")["error"]["error"] == "ClearanceLedgerInvalidStatus"


# ---------------------------------------------------------------------------------------- authorization


def test_authorization_matrix_of_the_customs_routes(service: Service) -> None:
    declaration_id = submitted(service, "LRN-MATRIX-1")
    path = f"/v1/declarations/{declaration_id}"
    writes = writes_of(service)
    refused = {  # caller → the answer to every customs write on a CN declaration
        OWNER: (403, "forbidden"), OTHER_TRADER: (403, "forbidden"), NL_CUSTOMS: (404, "declaration-not-found"),
        LAB: (403, "forbidden"), NVWA: (403, "forbidden"), RISK: (403, "forbidden"), AUDIT: (403, "forbidden"),
    }  # fmt: skip
    writes_to_try: list[tuple[str, dict[str, Any]]] = [
        (f"{path}/acceptance", {"mrn": "MRN-MATRIX-1"}),
        (f"{path}/decisions", {"kind": "REJECT", "reason_code": 9}),
        (f"{path}/decisions/pending/approvals", {}),
        (f"{path}/decisions/pending/cancellation", {}),
    ]
    before = writes.outbox.counts()
    for label, expected in refused.items():
        client = service.client(label)
        for route, body in writes_to_try:
            assert problem(partial(client.post_json, route, body)) == expected, (label, route)
        if expected[0] == 403:
            assert problem(partial(client.get_json, "/v1/customs/declarations")) == expected, label
    # An unknown declaration is 404 for the jurisdiction too; a key the service does not hold cannot write.
    customs = service.client(CN_CUSTOMS)
    assert problem(lambda: customs.post_json(f"/v1/declarations/{ZERO_ID}/acceptance", {"mrn": "X"})) == (
        404, "declaration-not-found",
    )  # fmt: skip
    held = writes.custody
    writes.custody = held - {service.address(CN_CUSTOMS).lower()}
    try:
        assert problem(lambda: customs.post_json(f"{path}/acceptance", {"mrn": "MRN-MATRIX-1"})) == (403, "no-custody")
    finally:
        writes.custody = held
    assert writes.outbox.counts() == before  # nothing refused was journaled

    # The jurisdiction's keys: every write is journaled; the contract judges the transitions.
    no_pending = ({}, "failed", "ClearanceLedgerNoPendingDecision")
    allowed = [({"mrn": "MRN-MATRIX-1"}, "final", None), ({"kind": "HOLD", "reason_code": 9}, "final", None),
               no_pending, no_pending]  # fmt: skip
    for (route, _), (body, status, error) in zip(writes_to_try, allowed, strict=True):
        settled = settle(customs, customs.post_json(route, body), status=status)
        assert (settled["error"] or {}).get("error") == error, (route, settled)
    service.until(lambda: customs.declaration(declaration_id)["status"] == "HELD")
    cn_list = customs.get_json("/v1/customs/declarations?limit=500")["items"]
    assert declaration_id in [d["declaration_id"] for d in cn_list]
    nl_list = service.client(NL_CUSTOMS).get_json("/v1/customs/declarations?limit=500")["items"]
    assert declaration_id not in [d["declaration_id"] for d in nl_list]


# ---------------------------------------------------------------------------------------- bad input


def test_malformed_customs_requests_are_refused_precisely_and_nothing_is_journaled(service: Service) -> None:
    customs = service.client(CN_CUSTOMS)
    declaration_id = submitted(service, "LRN-BAD-1")
    nl_declaration = submitted(service, "LRN-BAD-NL", trader=NL_TRADER, jurisdiction="NL-RTM-CUSTOMS")
    path = f"/v1/declarations/{declaration_id}"
    writes = writes_of(service)
    before = writes.outbox.counts()
    invalid = (422, "invalid-request")
    cases: list[tuple[str, Any, tuple[int, str]]] = [
        ("/v1/declarations/0x1234/acceptance", {"mrn": "MRN-1"}, invalid),
        (f"/v1/declarations/0x{'zz' * 32}/acceptance", {"mrn": "MRN-1"}, invalid),
        (f"{path}/acceptance", {"mrn": ""}, invalid),
        (f"{path}/acceptance", {"mrn": "M" * 36}, invalid),
        (f"{path}/acceptance", {"mrn": "MRN 1"}, invalid),
        (f"{path}/acceptance", {"mrn": 12345}, invalid),
        (f"{path}/acceptance", {"mrn": "MRN-1", "jurisdiction": "NL-RTM-CUSTOMS"}, invalid),
        (f"{path}/acceptance", {}, invalid),
        (f"{path}/decisions", {"kind": "PARDON", "reason_code": 1}, invalid),
        (f"{path}/decisions", {"kind": "release", "reason_code": 1}, invalid),
        (f"{path}/decisions", {"kind": 0, "reason_code": 1}, invalid),
        (f"{path}/decisions", {"kind": "HOLD", "reason_code": 65536}, invalid),
        (f"{path}/decisions", {"kind": "HOLD", "reason_code": -1}, invalid),
        (f"{path}/decisions", {"kind": "HOLD", "reason_code": "1"}, invalid),
        (f"{path}/decisions", {"kind": "HOLD", "reason_code": 1, "report_sha256": "0x" + "zz" * 32}, invalid),
        (f"{path}/decisions", {"kind": "HOLD", "reason_code": 1, "report_sha256": "ab" * 32}, invalid),
        (f"{path}/decisions", {"kind": "HOLD", "reason_code": 1, "pass_stamps": [sha(b"s")]}, invalid),
        (f"{path}/decisions", {"kind": "RELEASE", "reason_code": 1, "pass_stamps": [sha(b"s"), sha(b"s")]}, invalid),
        (f"{path}/decisions", {"kind": "RELEASE", "reason_code": 1,
                               "pass_stamps": [sha(bytes([i])) for i in range(17)]}, invalid),
        (f"{path}/decisions", {"kind": "RELEASE", "reason_code": 1, "pass_stamps": [sha(b"unknown stamp")]},
         (422, "invalid-submission")),
        (f"{path}/decisions", ["RELEASE"], invalid),
        (f"{path}/decisions/pending/approvals", {"pass_stamps": ["0x12"]}, invalid),
        (f"{path}/decisions/pending/approvals", {"pass_stamps": [sha(b"unknown stamp")]}, (422, "invalid-submission")),
        (f"{path}/decisions/pending/approvals", {"kind": "SEIZE"}, invalid),
    ]  # fmt: skip
    for route, body, expected in cases:
        assert problem(partial(customs.post_json, route, body)) == expected, (route, body)
    for raw in (b"{not json", b"", b"\xff\xfe"):
        not_json = partial(customs._request, "POST", f"{path}/acceptance",
                           headers={"content-type": "application/json"}, body=raw)  # fmt: skip
        assert problem(not_json) == invalid, raw
    assert problem(lambda: customs.post_json(f"{path}/acceptance", {"mrn": "A"}, idempotency_key="short")) == (
        422, "invalid-submission",
    )  # fmt: skip
    for query in ("limit=0", "limit=501", "limit=ten", "status=BOGUS", "status=accepted", "after=0x1234",
                  f"after={ZERO_ID}", f"after={nl_declaration}"):  # fmt: skip
        assert problem(partial(customs.get_json, f"/v1/customs/declarations?{query}")) == invalid, query
    assert writes.outbox.counts() == before


# ---------------------------------------------------------------------------------------- the work list


def test_the_jurisdiction_list_pages_in_submission_order_and_filters_by_status(service: Service) -> None:
    customs, nl_customs = service.client(CN_CUSTOMS), service.client(NL_CUSTOMS)
    ours = [submitted(service, f"LRN-LIST-{n}") for n in range(3)]
    theirs = submitted(service, "LRN-LIST-NL", trader=NL_TRADER, jurisdiction="NL-RTM-CUSTOMS")
    accepted = accepted_declaration(service, "LRN-LIST-ACC")

    everything = customs.get_json("/v1/customs/declarations?limit=500")
    assert everything["next_after"] is None
    ids = [d["declaration_id"] for d in everything["items"]]
    assert ids[-4:] == [*ours, accepted] and theirs not in ids
    blocks = [d["submitted_block"] for d in everything["items"]]
    assert blocks == sorted(blocks)

    paged: list[str] = []
    after: str | None = None
    while True:
        page = customs.get_json("/v1/customs/declarations?limit=2" + (f"&after={after}" if after else ""))
        assert len(page["items"]) <= 2
        paged += [d["declaration_id"] for d in page["items"]]
        after = page["next_after"]
        if after is None:
            break
        assert after == paged[-1]
    assert paged == ids

    submitted_only = customs.get_json("/v1/customs/declarations?status=SUBMITTED&limit=500")["items"]
    assert {d["status"] for d in submitted_only} == {"SUBMITTED"}
    assert set(ours) <= {d["declaration_id"] for d in submitted_only}
    assert accepted not in {d["declaration_id"] for d in submitted_only}
    both = customs.get_json("/v1/customs/declarations?status=SUBMITTED&status=ACCEPTED&limit=500")["items"]
    assert {*ours, accepted} <= {d["declaration_id"] for d in both}
    assert [d["declaration_id"] for d in nl_customs.get_json("/v1/customs/declarations")["items"]][-1] == theirs
