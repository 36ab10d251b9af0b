"""Prometheus metrics: request series by route template (never raw paths), scrape-time gauges,
one registry per app, and who may scrape ``/metrics``."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from ledger_api import errors as e
from ledger_api.api import create_app
from ledger_api.api.auth import MemoryNonceStore, RequestAuthenticator
from ledger_api.api.metrics import UNMATCHED, Metrics, install_metrics

DECLARATION = "0x" + "ab" * 32
TOKEN = "scrape-token-7f3a9c"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class NoOne:
    """A directory that knows no caller: signed or not, every request is refused (401)."""

    def identity(self, address: str, *, at: int) -> None:
        return None


def _samples(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def _scrape(client: TestClient) -> tuple[str, Samples]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return response.text, _samples(response.text)


@pytest.fixture
def app() -> FastAPI:
    app = create_app(max_body=64)
    app.state.authenticator = RequestAuthenticator(directory=NoOne(), nonces=MemoryNonceStore())
    return app


def test_requests_are_counted_under_their_route_template(app: FastAPI) -> None:
    client = TestClient(app)
    for _ in range(2):
        assert client.get(f"/v1/declarations/{DECLARATION}").status_code == 401  # unsigned
    assert client.get(f"/v1/declarations/{DECLARATION}/timeline").status_code == 401
    assert client.delete(f"/v1/declarations/{DECLARATION}").status_code == 405
    assert client.get(f"/nowhere/{DECLARATION}").status_code == 404
    assert client.get("/health").status_code == 200
    text, samples = _scrape(client)

    template = "/v1/declarations/{declaration_id}"
    assert _value(samples, "ledger_http_requests_total", method="GET", route=template, status="401") == 2
    assert _value(samples, "ledger_http_requests_total", method="DELETE", route=template, status="405") == 1
    timeline = "/v1/declarations/{declaration_id}/timeline"
    assert _value(samples, "ledger_http_requests_total", method="GET", route=timeline, status="401") == 1
    assert _value(samples, "ledger_http_requests_total", method="GET", route=UNMATCHED, status="404") == 1
    assert _value(samples, "ledger_http_requests_total", method="GET", route="/health", status="200") == 1
    assert _value(samples, "ledger_http_request_duration_seconds_count", method="GET", route=template) == 2
    assert DECLARATION not in text and "/nowhere" not in text  # raw paths never become labels


def test_every_route_of_the_service_is_labelled_with_its_openapi_path(app: FastAPI) -> None:
    """Nested routers, prefixes, converters: whatever the route table holds, its label is the template."""
    client = TestClient(app, raise_server_exceptions=False)
    paths = client.get("/openapi.json").json()["paths"]
    assert paths, "the service publishes routes"
    expected = set()
    for template, operations in paths.items():
        for method in operations:
            if method.upper() not in {"GET", "POST", "PUT", "PATCH", "DELETE"}:
                continue
            client.request(method.upper(), re.sub(r"\{[^}]+\}", "1", template))
            expected.add((method.upper(), template))
    _, samples = _scrape(client)
    recorded = {
        (dict(labels)["method"], dict(labels)["route"])
        for (name, labels) in samples
        if name == "ledger_http_requests_total"
    }
    assert expected <= recorded
    assert not any(route == UNMATCHED for _, route in recorded)


def test_routers_nested_with_prefixes_report_the_full_template() -> None:
    inner = APIRouter(prefix="/things")

    @inner.get("/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    outer = APIRouter(prefix="/v9")
    outer.include_router(inner)
    app = create_app()
    app.include_router(outer, prefix="/api")
    client = TestClient(app)
    assert client.get("/api/v9/things/abc").status_code == 200
    _, samples = _scrape(client)
    assert _value(samples, "ledger_http_requests_total", method="GET", route="/api/v9/things/{thing_id}", status="200")


def test_failures_and_refusals_by_middleware_are_recorded(app: FastAPI) -> None:
    @app.get("/boom/{n}")
    async def boom(n: int) -> None:
        raise RuntimeError("unexpected")

    client = TestClient(app, raise_server_exceptions=False)
    assert client.get("/boom/1").status_code == 500
    too_large = client.post(f"/v1/declarations/{DECLARATION}", content=b"x" * 100)  # refused before routing
    assert too_large.status_code == 413
    client.request("BREW", "/health")
    _, samples = _scrape(client)
    assert _value(samples, "ledger_http_requests_total", method="GET", route="/boom/{n}", status="500") == 1
    route = "/v1/declarations/{declaration_id}"
    assert _value(samples, "ledger_http_requests_total", method="POST", route=route, status="413") == 1
    assert _value(samples, "ledger_http_requests_total", method="OTHER", route="/health", status="405") == 1


def test_durations_land_in_the_histogram_buckets() -> None:
    ticks: Iterator[float] = iter(float(n) * 0.3 for n in range(1000))  # each request takes exactly 0.3 s
    app = FastAPI()

    @app.get("/slow")
    async def slow() -> str:
        return "ok"

    install_metrics(app, clock=lambda: next(ticks))
    client = TestClient(app)
    client.get("/slow")
    _, samples = _scrape(client)
    labels = {"method": "GET", "route": "/slow"}
    assert _value(samples, "ledger_http_request_duration_seconds_count", **labels) == 1
    assert _value(samples, "ledger_http_request_duration_seconds_sum", **labels) == pytest.approx(0.3)
    assert _value(samples, "ledger_http_request_duration_seconds_bucket", le="0.25", **labels) == 0
    assert _value(samples, "ledger_http_request_duration_seconds_bucket", le="0.5", **labels) == 1


def test_gauge_callbacks_are_computed_at_scrape_time(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app()
    metrics: Metrics = app.state.metrics
    head = {"block": 41}
    backlog: dict[tuple[str, ...], float] = {("pending",): 3, ("failed",): 1}
    metrics.add_gauge_callback("ledger_chain_head_block", "Latest block seen", lambda: head["block"])
    metrics.add_gauge_callback("ledger_outbox_entries", "Outbox entries by state", lambda: backlog, labels=["state"])
    metrics.add_gauge_callback("ledger_index_lag_blocks", "Index lag (unknown while the node is down)", lambda: None)
    metrics.add_gauge_callback("ledger_agencies", "Agencies by status", lambda: {"ACTIVE": 5}, labels=["status"])

    def broken() -> float:
        raise OSError("database is locked")

    metrics.add_gauge_callback("ledger_broken", "Always fails", broken)
    client = TestClient(app)
    _, samples = _scrape(client)
    assert _value(samples, "ledger_chain_head_block") == 41
    assert _value(samples, "ledger_outbox_entries", state="pending") == 3
    assert _value(samples, "ledger_outbox_entries", state="failed") == 1
    assert _value(samples, "ledger_agencies", status="ACTIVE") == 5  # one label: a plain string key
    assert not any(name in {"ledger_index_lag_blocks", "ledger_broken"} for name, _ in samples)
    assert "ledger_broken" in caplog.text  # the failure is logged, the rest of the scrape is served
    head["block"] = 42
    backlog[("pending",)] = 0
    _, samples = _scrape(client)
    assert _value(samples, "ledger_chain_head_block") == 42
    assert _value(samples, "ledger_outbox_entries", state="pending") == 0


@pytest.mark.parametrize(
    ("name", "labels"),
    [
        ("ledger_chain_head_block", ()),  # already registered
        ("ledger_http_requests", ()),  # the request counter's name
        ("ledger_http_requests_total", ()),  # … and its sample name
        ("not a metric name", ()),
        ("ledger_outbox_entries", ("state-name",)),
        ("ledger_outbox_entries", ("__reserved",)),
    ],
)
def test_gauge_names_must_be_valid_and_new(name: str, labels: tuple[str, ...]) -> None:
    metrics = Metrics()
    metrics.add_gauge_callback("ledger_chain_head_block", "head", lambda: 1)
    with pytest.raises(e.ConfigurationError):
        metrics.add_gauge_callback(name, "again", lambda: {}, labels=labels)


def test_each_app_has_its_own_registry() -> None:
    first, second = create_app(), create_app()  # no "duplicated timeseries" from a shared global registry
    TestClient(first).get("/health")
    _, first_samples = _scrape(TestClient(first))
    _, second_samples = _scrape(TestClient(second))
    assert _value(first_samples, "ledger_http_requests_total", method="GET", route="/health", status="200") == 1
    assert _value(second_samples, "ledger_http_requests_total", method="GET", route="/health", status="200") is None


def test_metrics_are_not_part_of_the_api_schema() -> None:
    assert "/metrics" not in TestClient(create_app()).get("/openapi.json").json()["paths"]


@pytest.mark.parametrize("host", ["testclient", "127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_without_a_token_loopback_clients_may_scrape(host: str) -> None:
    assert TestClient(create_app(), client=(host, 9000)).get("/metrics").status_code == 200


@pytest.mark.parametrize("host", ["203.0.113.9", "10.0.0.2", "2001:db8::1", "::ffff:203.0.113.9"])
def test_without_a_token_other_clients_are_refused(host: str) -> None:
    response = TestClient(create_app(), client=(host, 9000)).get("/metrics")
    assert response.status_code == 403 and response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "forbidden"
    assert "ledger_http_requests" not in response.text


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer ", "Bearer ünïcode"]
)
def test_with_a_token_scrapes_without_it_are_refused(
    authorization: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = TestClient(create_app(metrics_token=TOKEN))  # a loopback client: the token is required anyway
    headers = {"authorization": authorization.encode("utf-8")} if authorization is not None else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 401 and response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "unauthenticated" and response.headers["www-authenticate"].startswith("Bearer")
    assert TOKEN not in response.text and TOKEN not in caplog.text


def test_with_a_token_any_client_presenting_it_may_scrape(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = TestClient(create_app(metrics_token=TOKEN), client=("203.0.113.9", 9000))
    response = client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200 and "ledger_http_requests_total" in response.text
    assert client.get("/metrics", headers={"authorization": f"bearer {TOKEN}"}).status_code == 200  # scheme: any case
    assert TOKEN not in caplog.text
