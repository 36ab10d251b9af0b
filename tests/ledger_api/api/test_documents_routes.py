"""Agencies fetch decrypted documents they hold a key wrap for; grants and revocations change who does."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ledger_api.api.auth import sign_request
from ledger_api.api.writes import WriteService
from ledger_api.errors import StoreUnavailable
from ledger_api.hashing import canonical_json
from tests.ledger_api.api.conftest import Service

pytestmark = pytest.mark.integration

CUSTOMS, RTM_CUSTOMS, NVWA = "cn-tj-customs-signer-0", "nl-rtm-customs-signer-0", "nl-nvwa-signer-0"
TRADER = "trader-tj-electronics"
_KEYS: dict[str, bytes] = {}


def _request(service: Service, label: str, method: str, path: str, payload: Any = None) -> httpx.Response:
    """A request signed with keystore key ``label`` (raw response: bytes bodies, DELETE)."""
    if label not in _KEYS:
        _KEYS[label] = bytes(service.keystore.signer(label).key)
    url = service.base_url + path
    body = json.dumps(payload).encode() if payload is not None else b""
    headers = {"content-type": "application/json"} if payload is not None else {}
    headers |= sign_request(method=method, url=url, headers=headers, body=body, private_key=_KEYS[label])
    return httpx.request(method, url, headers=headers, content=body, timeout=30)


def _problem(response: httpx.Response) -> tuple[int, str]:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return response.status_code, str(response.json()["code"])


def _sha(content: bytes) -> str:
    return "0x" + hashlib.sha256(content).hexdigest()


def _anchored(service: Service, documents: list[tuple[int, str, bytes]], lrn: str) -> dict[str, Any]:
    """Submit a declaration with ``documents`` and wait until the index has it; returns its declaration JSON."""
    trader = service.client(TRADER)
    declaration = {"jurisdiction": "CN-TJ-CUSTOMS", "local_reference": lrn, "goods": [{"hs": "851712", "qty": 3}]}
    accepted = trader.submit_declaration(declaration, documents)
    assert trader.wait_settled(accepted["tracking_id"])["status"] == "final"
    did = accepted["declaration_id"]
    service.until(lambda: any(d["declaration_id"] == did for d in trader.declarations()))
    return declaration


@pytest.fixture(scope="module")
def invoice(service: Service) -> Iterator[bytes]:
    """An invoice anchored as a supporting document of a Tianjin declaration."""
    content = b"%PDF-1.7 commercial invoice " + os.urandom(256)
    _anchored(service, [(1, "invoice.pdf", content)], "LRN-DOC-1")
    yield content


def test_the_jurisdiction_fetches_the_exact_plaintext_with_its_digest(service: Service, invoice: bytes) -> None:
    response = _request(service, CUSTOMS, "GET", f"/v1/documents/{_sha(invoice)}")
    assert response.status_code == 200, response.text
    assert response.content == invoice
    assert response.headers["content-type"] == "application/octet-stream"
    digest = base64.b64encode(hashlib.sha256(invoice).digest()).decode()
    assert response.headers["content-digest"] == f"sha-256=:{digest}:"
    assert response.headers["digest"] == f"sha-256={digest}"
    assert response.headers["ledger-sha256"] == _sha(invoice)
    assert response.headers["cache-control"] == "no-store"
    # Upper-case hex names the same document.
    assert _request(service, CUSTOMS, "GET", f"/v1/documents/0x{_sha(invoice)[2:].upper()}").content == invoice


def test_the_declaration_document_itself_is_readable_as_its_canonical_json(service: Service) -> None:
    declaration = _anchored(service, [], "LRN-DOC-2")
    canonical = canonical_json(declaration)
    response = _request(service, CUSTOMS, "GET", f"/v1/documents/{_sha(canonical)}")
    assert response.status_code == 200 and response.content == canonical


def test_another_agency_reads_only_while_granted(service: Service, invoice: bytes) -> None:
    sha = _sha(invoice)
    assert _problem(_request(service, NVWA, "GET", f"/v1/documents/{sha}")) == (404, "document-not-found")
    assert _problem(_request(service, NVWA, "GET", f"/v1/documents/{sha}/access")) == (404, "document-not-found")
    # Only a holder grants.
    refused = _request(service, NVWA, "POST", f"/v1/documents/{sha}/grants", {"agency_id": "NL-NVWA"})
    assert _problem(refused) == (404, "document-not-found")
    access = _request(service, CUSTOMS, "GET", f"/v1/documents/{sha}/access").json()
    assert access["sha256"] == sha and access["agencies"] == ["CN-TJ-CUSTOMS"] and access["cid"].startswith("b")

    granted = _request(service, CUSTOMS, "POST", f"/v1/documents/{sha}/grants", {"agency_id": "NL-NVWA"})
    assert granted.status_code == 200, granted.text
    assert granted.json()["agencies"] == ["CN-TJ-CUSTOMS", "NL-NVWA"]
    again = _request(service, CUSTOMS, "POST", f"/v1/documents/{sha}/grants", {"agency_id": "NL-NVWA"})
    assert again.json()["agencies"] == ["CN-TJ-CUSTOMS", "NL-NVWA"]  # idempotent
    fetched = _request(service, NVWA, "GET", f"/v1/documents/{sha}")
    assert fetched.status_code == 200 and fetched.content == invoice
    assert _request(service, NVWA, "GET", f"/v1/documents/{sha}/access").json()["agencies"] == [
        "CN-TJ-CUSTOMS", "NL-NVWA",
    ]  # fmt: skip

    # Revocation: the jurisdiction only — not the grantee, not another customs authority.
    assert _problem(_request(service, NVWA, "DELETE", f"/v1/documents/{sha}/grants/NL-NVWA")) == (403, "forbidden")
    assert _problem(_request(service, RTM_CUSTOMS, "DELETE", f"/v1/documents/{sha}/grants/NL-NVWA")) == (
        403, "forbidden",
    )  # fmt: skip
    own = _request(service, CUSTOMS, "DELETE", f"/v1/documents/{sha}/grants/CN-TJ-CUSTOMS")
    assert _problem(own) == (422, "invalid-submission")
    revoked = _request(service, CUSTOMS, "DELETE", f"/v1/documents/{sha}/grants/NL-NVWA")
    assert revoked.status_code == 200 and revoked.json()["agencies"] == ["CN-TJ-CUSTOMS"]
    assert _problem(_request(service, NVWA, "GET", f"/v1/documents/{sha}")) == (404, "document-not-found")
    # Revoking an agency without a wrap changes nothing.
    assert _request(service, CUSTOMS, "DELETE", f"/v1/documents/{sha}/grants/NL-NVWA").json()["agencies"] == [
        "CN-TJ-CUSTOMS"
    ]


def test_traders_unknown_documents_and_bad_grants_are_refused(service: Service, invoice: bytes) -> None:
    sha = _sha(invoice)
    assert _problem(_request(service, TRADER, "GET", f"/v1/documents/{sha}")) == (403, "forbidden")
    assert _problem(_request(service, "governor-0", "GET", f"/v1/documents/{sha}")) == (403, "forbidden")
    unknown = "0x" + "ab" * 32
    assert _problem(_request(service, CUSTOMS, "GET", f"/v1/documents/{unknown}")) == (404, "document-not-found")
    assert _problem(_request(service, CUSTOMS, "DELETE", f"/v1/documents/{unknown}/grants/NL-NVWA")) == (
        403,
        "forbidden",
    )  # fmt: skip  (no anchoring declaration of the caller's jurisdiction: checked before any lookup)
    assert _problem(_request(service, CUSTOMS, "GET", "/v1/documents/0x1234")) == (422, "invalid-request")
    for body in ({"agency_id": "XX-NOWHERE"}, {"agency_id": "nl-nvwa"}, {"agency_id": "NL-NVWA", "extra": 1}):
        refused = _request(service, CUSTOMS, "POST", f"/v1/documents/{sha}/grants", body)
        assert _problem(refused) in {(422, "invalid-submission"), (422, "invalid-request")}, body
    unsigned = httpx.get(f"{service.base_url}/v1/documents/{sha}")
    assert unsigned.status_code == 401


def test_custody_integrity_size_and_store_outages(service: Service) -> None:
    content = b"certificate of origin " + os.urandom(70 * 1024)  # larger than the envelope overhead allowance
    other = b"phytosanitary certificate " + os.urandom(64)
    _anchored(service, [(3, "origin.pdf", content), (4, "phyto.pdf", other)], "LRN-DOC-3")
    sha = _sha(content)
    writes: WriteService = service.app.state.writes  # type: ignore[attr-defined]

    key = writes.decryption_keys.pop("CN-TJ-CUSTOMS")
    try:
        assert _problem(_request(service, CUSTOMS, "GET", f"/v1/documents/{sha}")) == (403, "no-custody")
    finally:
        writes.decryption_keys["CN-TJ-CUSTOMS"] = key

    limit = writes.max_document
    writes.max_document = 0
    try:
        assert _problem(_request(service, CUSTOMS, "GET", f"/v1/documents/{sha}")) == (413, "document-too-large")
    finally:
        writes.max_document = limit

    class _DownStore:
        def read(self, cid: str, *, max_size: int | None = None) -> bytes:
            raise StoreUnavailable("test store", "down for the test")

    store = writes.vault.store
    writes.vault.store = _DownStore()  # type: ignore[assignment]
    try:
        down = _request(service, CUSTOMS, "GET", f"/v1/documents/{sha}")
        assert _problem(down) == (503, "store-unavailable") and int(down.headers["retry-after"]) >= 1
    finally:
        writes.vault.store = store

    # The vault row of one document now carries another document's keyring: never served as plaintext.
    mine, theirs = writes.vault.get(bytes.fromhex(sha[2:])), writes.vault.get(hashlib.sha256(other).digest())
    assert mine is not None and theirs is not None
    writes.vault.update_keyring(mine.cid, theirs.keyring)
    try:
        assert _problem(_request(service, CUSTOMS, "GET", f"/v1/documents/{sha}")) == (502, "integrity")
    finally:
        writes.vault.update_keyring(mine.cid, mine.keyring)
    assert _request(service, CUSTOMS, "GET", f"/v1/documents/{sha}").content == content
