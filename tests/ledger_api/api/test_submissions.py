"""Traders submit and amend declarations over HTTP; writes are journaled, anchored once, tracked by their submitter."""

from __future__ import annotations

import hashlib
import json
import os

import httpx
import pytest

from ledger_api.api.writes import WriteService
from ledger_api.client import ApiProblem
from ledger_api.hashing import declaration_commitment
from tests.ledger_api.api.conftest import Service

pytestmark = pytest.mark.integration


def _declaration(lrn: str, jurisdiction: str = "CN-TJ-CUSTOMS", **extra: object) -> dict[str, object]:
    return {"jurisdiction": jurisdiction, "local_reference": lrn, "goods": [{"hs": "850760", "qty": 120}], **extra}


def _problem(excinfo: pytest.ExceptionInfo[ApiProblem]) -> tuple[int, str]:
    return excinfo.value.status, excinfo.value.problem_code


def test_a_trader_submits_and_the_declaration_is_anchored_with_its_sealed_documents(service: Service) -> None:
    trader = service.client("trader-tj-electronics")
    invoice, packing = b"%PDF invoice " + os.urandom(64), b"packing list " + os.urandom(64)
    declaration = _declaration("LRN-A-1")
    accepted = trader.submit_declaration(declaration, [(1, "invoice.pdf", invoice), (2, "packing.txt", packing)])
    assert accepted["status"] == "pending" and accepted["tracking_id"].isdigit()
    assert accepted["declaration_id"] == "0x" + declaration_commitment(declaration).hex()

    settled = trader.wait_settled(accepted["tracking_id"])
    assert settled["status"] == "final", settled
    assert settled["function"] == "submitDeclaration" and settled["tx_hash"] and settled["block_number"] > 0

    mine = service.until(
        lambda: [d for d in trader.declarations() if d["declaration_id"] == accepted["declaration_id"]]
    )
    assert mine[0]["status"] == "SUBMITTED" and mine[0]["version"] == 1
    anchored = {d["sha256"]: d for d in mine[0]["documents"]}
    assert set(anchored) == {"0x" + hashlib.sha256(invoice).hexdigest(), "0x" + hashlib.sha256(packing).hexdigest()}

    # The stored copy is an envelope only the jurisdiction's customs authority can open.
    writes: WriteService = service.app.state.writes  # type: ignore[attr-defined]
    key = writes.decryption_keys["CN-TJ-CUSTOMS"]
    opened = writes.vault.open_for(hashlib.sha256(invoice).digest(), agency_id="CN-TJ-CUSTOMS", private_key=key,
                                   max_size=1 << 20)  # fmt: skip
    assert opened == invoice
    envelope = writes.vault.get(hashlib.sha256(invoice).digest())
    assert envelope is not None and envelope.keyring.agencies == ["CN-TJ-CUSTOMS"]
    assert invoice not in writes.vault.store.read(envelope.cid)
    # The declaration document itself is also sealed for the risk oracle (it channels it from its
    # goods); the supporting files are not.
    sealed_declaration = writes.vault.get(declaration_commitment(declaration))
    assert sealed_declaration is not None
    assert sorted(sealed_declaration.keyring.agencies) == ["CN-TJ-CUSTOMS", "CONSORTIUM-RISK"]


def test_retries_anchor_once_and_a_reused_key_with_other_content_conflicts(service: Service) -> None:
    trader = service.client("trader-tj-foods")
    declaration = _declaration("LRN-B-1")
    first = trader.submit_declaration(declaration, idempotency_key="order-4711-attempt")
    again = trader.submit_declaration(declaration, idempotency_key="order-4711-attempt")
    assert again["tracking_id"] == first["tracking_id"]
    implicit = [trader.submit_declaration(_declaration("LRN-B-2")) for _ in range(2)]  # default key: the commitment
    assert implicit[0]["tracking_id"] == implicit[1]["tracking_id"]

    with pytest.raises(ApiProblem) as conflict:
        trader.submit_declaration(_declaration("LRN-B-3"), idempotency_key="order-4711-attempt")
    assert _problem(conflict) == (409, "idempotency-conflict")
    for accepted in (first, implicit[0]):
        assert trader.wait_settled(accepted["tracking_id"])["status"] == "final"
    wanted = (first["declaration_id"], implicit[0]["declaration_id"])
    ids = service.until(
        lambda: (i := [d["declaration_id"] for d in trader.declarations()]) and all(w in i for w in wanted) and i
    )
    assert ids.count(wanted[0]) == 1 and ids.count(wanted[1]) == 1


def test_bad_submissions_are_refused_with_precise_codes_and_nothing_is_journaled(service: Service) -> None:
    trader = service.client("trader-rtm-importer")
    writes: WriteService = service.app.state.writes  # type: ignore[attr-defined]
    before = writes.outbox.counts()
    cases = [
        (lambda: trader.submit_declaration(_declaration("LRN-C-1", jurisdiction="XX-NOWHERE")), 422,
         "invalid-submission"),
        (lambda: trader.submit_declaration(_declaration("LRN-C-2", jurisdiction="CN-TJ-CIQ-LAB")), 422,
         "invalid-submission"),
        (lambda: trader.submit_declaration({"jurisdiction": "CN-TJ-CUSTOMS"}), 422, "invalid-submission"),
        (lambda: trader.submit_declaration(_declaration("LRN-C-3"), share_with=["NL-NVWA", "NL-NVWA"]), 422,
         "invalid-submission"),
        (lambda: trader.submit_declaration(_declaration("LRN-C-4"), idempotency_key="short"), 422,
         "invalid-submission"),
        (lambda: service.client("cn-tj-customs-signer-0").submit_declaration(_declaration("LRN-C-5")), 403,
         "forbidden"),
    ]  # fmt: skip
    for call, status, code in cases:
        with pytest.raises(ApiProblem) as refused:
            call()
        assert _problem(refused) == (status, code), refused.value

    # Not JSON / not an object, and counts that do not match, built by hand.
    for raw in (b"{not json", b"[1, 2]"):
        with pytest.raises(ApiProblem) as refused:
            _raw_submit(trader, raw)
        assert _problem(refused) == (422, "invalid-submission")
    assert writes.outbox.counts() == before


def _raw_submit(client: object, raw: bytes) -> object:
    import httpx  # noqa: PLC0415

    from ledger_api.client import LedgerHttpClient  # noqa: PLC0415

    assert isinstance(client, LedgerHttpClient)
    encoded = httpx.Request("POST", "http://127.0.0.1/v1/declarations",
                            files=[("declaration", ("d.json", raw, "application/json"))])  # fmt: skip
    return client._json("POST", "/v1/declarations", headers={"content-type": encoded.headers["content-type"]},
                        body=encoded.read())  # fmt: skip


def test_writes_are_tracked_and_amended_by_their_own_trader_only(service: Service) -> None:
    owner, other = service.client("trader-tj-electronics"), service.client("trader-tj-foods")
    original = _declaration("LRN-D-1")
    accepted = owner.submit_declaration(original, [(1, "invoice.pdf", b"invoice D-1")])
    with pytest.raises(ApiProblem) as hidden:
        other.submission(accepted["tracking_id"])
    assert _problem(hidden) == (404, "submission-not-found")
    assert owner.wait_settled(accepted["tracking_id"])["status"] == "final"
    did = accepted["declaration_id"]
    service.until(lambda: any(d["declaration_id"] == did for d in owner.declarations()))

    with pytest.raises(ApiProblem) as not_theirs:
        other.amend_declaration(did, _declaration("LRN-D-1", note="hijack"))
    assert _problem(not_theirs) == (404, "declaration-not-found")
    with pytest.raises(ApiProblem) as moved:
        owner.amend_declaration(did, _declaration("LRN-D-1", jurisdiction="NL-RTM-CUSTOMS"))
    assert _problem(moved) == (422, "invalid-submission")

    amended = owner.amend_declaration(did, _declaration("LRN-D-1", revision=2), [(1, "invoice.pdf", b"invoice D-1 v2")])
    assert owner.wait_settled(amended["tracking_id"])["status"] == "final"
    new = amended["declaration_id"]

    def both() -> dict[str, dict[str, object]] | None:
        listed = {d["declaration_id"]: d for d in owner.declarations()}
        return {k: listed[k] for k in (did, new)} if new in listed and did in listed else None

    versions = service.until(both)
    assert versions[did]["status"] == "SUPERSEDED" or versions[did]["superseded_by"] == new
    assert versions[new]["version"] == 2
    assert versions[new]["previous_id"] == did
    assert json.loads(json.dumps(versions))  # JSON all the way through


def test_metrics_expose_the_write_journal_and_the_index(service: Service) -> None:
    trader = service.client("trader-tj-foods")
    accepted = trader.submit_declaration(_declaration("LRN-M-1"))
    assert trader.wait_settled(accepted["tracking_id"])["status"] == "final"
    text = httpx.get(f"{service.base_url}/metrics").text  # loopback: allowed without a token
    samples = {
        line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines() if line and not line.startswith("#")
    }
    assert samples['ledger_outbox_entries{state="final"}'] >= 1
    assert samples['ledger_outbox_entries{state="failed"}'] == 0
    assert samples["ledger_index_block"] > 0
    assert any(k.startswith('ledger_http_requests_total{method="POST",route="/v1/declarations"') for k in samples)


def test_the_same_file_in_two_jurisdictions_keeps_both_accesses(service: Service) -> None:
    shared = b"commercial invoice INV-SHARED-77 " + os.urandom(16)
    exporter, importer = service.client("trader-tj-electronics"), service.client("trader-rtm-importer")
    first = exporter.submit_declaration(_declaration("LRN-S-1"), [(1, "invoice.pdf", shared)])
    second = importer.submit_declaration(
        _declaration("LRN-S-2", jurisdiction="NL-RTM-CUSTOMS"), [(1, "inv.pdf", shared)]
    )
    for client, accepted in ((exporter, first), (importer, second)):
        assert client.wait_settled(accepted["tracking_id"])["status"] == "final"
    writes: WriteService = service.app.state.writes  # type: ignore[attr-defined]
    digest = hashlib.sha256(shared).digest()
    assert len(writes.vault.envelopes(digest)) == 2  # one envelope per entitled set, neither replaced
    for agency in ("CN-TJ-CUSTOMS", "NL-RTM-CUSTOMS"):
        key = writes.decryption_keys[agency]
        assert writes.vault.open_for(digest, agency_id=agency, private_key=key, max_size=1 << 20) == shared
    # Neither jurisdiction can lock the other out.
    sha = "0x" + digest.hex()
    nl = service.client("nl-rtm-customs-signer-0")
    service.until(lambda: _indexed_document(nl, sha) and _visible(importer, second["declaration_id"]))
    with pytest.raises(ApiProblem) as refused:
        nl._json("DELETE", f"/v1/documents/{sha}/grants/CN-TJ-CUSTOMS")
    assert _problem(refused) == (422, "invalid-submission")


def _visible(client: object, declaration_id: str) -> bool:
    return any(d["declaration_id"] == declaration_id for d in client.declarations())  # type: ignore[attr-defined]


def _indexed_document(client: object, sha: str) -> bool:
    try:
        client.fetch_document(sha)  # type: ignore[attr-defined]
    except ApiProblem:
        return False
    return True
