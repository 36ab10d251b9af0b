"""The HTTP shell: one error table (problem+json, stable codes), size limits, validation, health."""

from __future__ import annotations

import socket
from pathlib import Path

import anyio
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from ledger_api import errors as e
from ledger_api.api import create_app
from ledger_api.api.health import ChainHealth
from ledger_api.api.problems import problem_type
from ledger_api.chain.node import AnvilNode

PROBLEM = "application/problem+json"


class Body(BaseModel):
    """A request body with one typed field."""

    count: int


def _app_raising(error: Exception) -> FastAPI:
    app = create_app(max_body=1024)

    @app.get("/boom")
    async def boom() -> None:
        raise error

    @app.post("/echo")
    async def echo(body: Body) -> dict[str, int]:
        return {"count": body.count}

    return app


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (e.DocumentNotFound("bafkrei-missing"), 404, "document-not-found"),
        (e.ChainUnavailable("http://10.0.0.9:8545"), 503, "chain-unavailable"),
        (
            e.ContractRevert("ClearanceLedgerNotDeclarant", {"declarationId": "0x01", "caller": "0xabc"}),
            403,
            "contract-revert",
        ),
        (e.ContractRevert("ClearanceLedgerUnknownDeclaration", {"declarationId": "0x01"}), 404, "contract-revert"),
        (e.ContractRevert("ClearanceLedgerDeclarationExists", {"declarationId": "0x01"}), 409, "contract-revert"),
        (e.ContractRevert("ClearanceLedgerInvalidCid", {"length": 0}), 422, "contract-revert"),
        (e.ConfigurationError("secret path /etc/ledger/keys is unreadable"), 500, "configuration"),
    ],
)
def test_domain_errors_map_through_the_one_table(error: e.LedgerError, status: int, code: str) -> None:
    response = TestClient(_app_raising(error)).get("/boom")
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == problem_type(code) and body["code"] == code and body["status"] == status
    if status >= 500:
        assert "detail" not in body  # nothing internal leaks (addresses, paths)
        assert "10.0.0.9" not in response.text and "/etc/ledger" not in response.text
    if isinstance(error, e.ContractRevert):
        assert body["error"] == error.error_name
        assert body["arguments"] == {k: str(v) for k, v in error.args_by_name.items()}


def test_dependency_down_says_when_to_retry() -> None:
    response = TestClient(_app_raising(e.ChainUnavailable("http://127.0.0.1:1"))).get("/boom")
    assert response.status_code == 503 and response.headers["retry-after"] == "5"


def test_unexpected_exception_is_a_bare_500_problem() -> None:
    client = TestClient(_app_raising(RuntimeError("db password is hunter2")), raise_server_exceptions=False)
    response = client.get("/boom")
    assert response.status_code == 500 and response.json()["code"] == "internal"
    assert "hunter2" not in response.text


def test_validation_errors_are_422_problems_naming_the_fields() -> None:
    client = TestClient(_app_raising(RuntimeError()))
    response = client.post("/echo", json={"count": "many"})
    assert response.status_code == 422 and response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["code"] == "invalid-request"
    assert [f["location"] for f in body["errors"]] == ["body.count"]
    assert client.post("/echo", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422


def test_unknown_route_and_method_are_problems() -> None:
    client = TestClient(_app_raising(RuntimeError()))
    assert client.get("/nowhere").json()["code"] == "not-found"
    response = client.delete("/echo")
    assert response.status_code == 405 and response.json()["code"] == "method-not-allowed"


def test_declared_oversized_body_is_refused_before_reading() -> None:
    response = TestClient(_app_raising(RuntimeError())).post(
        "/echo", content=b"x" * 2048, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["code"] == "request-too-large" and response.json()["limit"] == 1024


def test_streamed_oversized_body_is_cut_off_while_streaming() -> None:
    """Drive the ASGI app directly: a chunked upload with no Content-Length is refused after the
    chunk that crosses the limit, not after the whole body arrived."""
    app = _app_raising(RuntimeError())
    pulled = 0
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"x" * 512, "more_body": pulled < 1000}  # 512 KB in total

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/echo", "raw_path": b"/echo", "query_string": b"", "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")],
        "client": ("127.0.0.1", 1234), "server": ("127.0.0.1", 80),
    }  # fmt: skip
    anyio.run(app, scope, receive, send)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 413
    assert pulled == 3  # 3 x 512 B crosses the 1 KiB limit; the other 997 chunks were never read


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.integration
def test_health_reports_a_real_node_and_a_dead_one(tmp_path: Path) -> None:
    node = AnvilNode(state_dir=tmp_path / "anvil", port=_free_port())
    node.start()
    try:
        client = TestClient(create_app(health_checks=[ChainHealth(rpc_url=node.rpc_url, expected_chain_id=31337)]))
        body = client.get("/health").json()
        assert body["status"] == "ok" and body["checks"]["chain"]["chainId"] == 31337
        assert body["checks"]["chain"]["head"] >= 0
        wrong = TestClient(create_app(health_checks=[ChainHealth(rpc_url=node.rpc_url, expected_chain_id=1)]))
        assert wrong.get("/health").json()["checks"]["chain"]["detail"] == "ledger node serves another chain"
    finally:
        node.stop()
    dead = TestClient(create_app(health_checks=[ChainHealth(rpc_url=node.rpc_url)])).get("/health")
    assert dead.status_code == 503 and dead.json()["checks"]["chain"]["status"] == "down"


def test_openapi_is_published() -> None:
    spec = TestClient(create_app()).get("/openapi.json").json()
    assert spec["info"]["title"] == "Customs document-provenance ledger" and "/health" in spec["paths"]
