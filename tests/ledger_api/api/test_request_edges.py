"""Requests at the edges of HTTP: escaped paths, empty bodies, undecodable JSON — 4xx problems, never 401 by mistake."""

from __future__ import annotations

import httpx
import pytest

from ledger_api.api.auth import sign_request
from tests.ledger_api.api.conftest import Service

pytestmark = pytest.mark.integration


def _signed(
    service: Service, method: str, path: str, *, body: bytes = b"", headers: dict[str, str] | None = None
) -> httpx.Response:
    url = service.base_url + path
    key = bytes(service.keystore.signer("cn-tj-customs-signer-0").key)
    fields = dict(headers or {})
    fields |= sign_request(method=method, url=url, headers=fields, body=body, private_key=key)
    return httpx.request(method, url, headers=fields, content=body)


def test_paths_with_percent_escapes_authenticate_and_reach_the_route(service: Service) -> None:
    for path in ("/v1/declarations/null%2Cnull", "/v1/verify/%3B", "/v1/declarations/%C3%A9"):
        response = _signed(service, "GET", path)
        assert response.status_code == 422 and response.json()["code"] == "invalid-request", (path, response.text)


def test_an_empty_upload_is_verified_not_refused(service: Service) -> None:
    response = _signed(service, "POST", "/v1/verify", headers={"content-type": "application/octet-stream"})
    assert response.status_code == 200 and response.json()["status"] == "NOT_ANCHORED"


def test_json_that_is_not_utf8_is_an_invalid_request(service: Service) -> None:
    response = _signed(service, "POST", "/v1/stamps/signed", body=b'{"a": "\xff\xfe"}',
                       headers={"content-type": "application/json"})  # fmt: skip
    assert response.status_code == 422 and response.json()["code"] == "invalid-request", response.text


def _multipart(service: Service, label: str, files: list[object], data: dict[str, object]) -> httpx.Response:
    url = service.base_url + "/v1/declarations"
    encoded = httpx.Request("POST", url, files=files, data=data)  # type: ignore[arg-type]
    body = encoded.read()
    headers = {"content-type": encoded.headers["content-type"]}
    key = bytes(service.keystore.signer(label).key)
    headers |= sign_request(method="POST", url=url, headers=headers, body=body, private_key=key)
    return httpx.post(url, headers=headers, content=body)


def test_odd_submissions_are_422_not_500(service: Service) -> None:
    declaration = b'{"jurisdiction": "CN-TJ-CUSTOMS", "local_reference": "EDGE-1"}'
    files = [("declaration", ("d.json", declaration, "application/json")), ("documents", ("a.pdf", b"x", "a/b"))]
    unicode_digit = _multipart(service, "trader-tj-foods", files, {"document_types": ["\u00b2"]})
    assert unicode_digit.status_code == 422 and unicode_digit.json()["code"] == "invalid-submission", unicode_digit.text
    deep = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    nested = _multipart(
        service, "trader-tj-foods", [("declaration", ("d.json", deep[: 1024 * 1024 - 10], "application/json"))], {}
    )
    assert nested.status_code == 422 and nested.json()["code"] == "invalid-submission", nested.text


def test_unsigned_requests_are_refused_before_the_body_is_read(service: Service) -> None:
    response = httpx.post(service.base_url + "/v1/declarations", content=b"x" * 1_000_000,
                          headers={"content-type": "application/octet-stream"})  # fmt: skip
    assert response.status_code == 401 and response.json()["code"] == "signature-missing"


def test_deeply_nested_json_bodies_are_422_and_the_service_survives(service: Service) -> None:
    deep = b'{"a":' * 200_000 + b"1" + b"}" * 200_000
    for path in ("/v1/tokens", "/v1/stamps/signed"):
        response = _signed(service, "POST", path, body=deep, headers={"content-type": "application/json"})
        assert response.status_code == 422 and response.json()["code"] == "invalid-request", (path, response.text)
    assert httpx.get(service.base_url + "/health").status_code == 200  # still alive
