"""Prometheus metrics of the HTTP service: requests by route template, gauges computed at scrape time.

Each app has its own :class:`prometheus_client.CollectorRegistry` (never the process-global one), so
any number of apps can live in one process. Request series are labelled with the route *template*
(``/v1/declarations/{declaration_id}``), never the raw path, and with a closed set of methods, so
their cardinality is bounded by the routes the service has; paths no route serves are ``unmatched``.

``GET /metrics`` serves the text exposition format. With a ``metrics_token`` it requires
``Authorization: Bearer <token>``; without one it answers loopback clients only.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import iter_route_contexts
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger_api.api.problems import PROBLEM_MEDIA_TYPE, Problem
from ledger_api.errors import ConfigurationError

__all__ = [
    "DURATION_BUCKETS",
    "UNMATCHED",
    "GaugeValue",
    "Metrics",
    "MetricsMiddleware",
    "RouteTemplates",
    "install_metrics",
]

#: The ``route`` label of requests no route serves.
UNMATCHED = "unmatched"
#: Histogram buckets (seconds) of request durations: fast reads up to long document uploads.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Methods recorded by name; anything else is recorded as ``OTHER`` (the label set stays closed).
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: Clients served ``/metrics`` without a token. ``testclient`` is Starlette's in-process test client.
_LOCAL_CLIENTS = frozenset({"testclient"})
_HTTP_METRICS = ("ledger_http_requests", "ledger_http_request_duration_seconds")
#: Classic Prometheus names (what every Prometheus version and exporter tooling accepts).
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

#: What a gauge callback returns: a value (no labels), or label values (a tuple, or a string for one
#: label) → value; ``None`` = no sample now.
GaugeValue = float | Mapping[tuple[str, ...], float] | Mapping[str, float] | None

_log = logging.getLogger("ledger_api.api.metrics")


class _Gauge:
    """A gauge whose samples a callback computes at scrape time."""

    def __init__(self, name: str, help: str, fn: Callable[[], GaugeValue], labels: tuple[str, ...]) -> None:
        self.name = name
        self.help = help
        self.fn = fn
        self.labels = labels

    def family(self) -> GaugeMetricFamily:
        """Call the callback and render its samples."""
        family = GaugeMetricFamily(self.name, self.help, labels=self.labels)
        value = self.fn()
        if value is None:
            return family
        if isinstance(value, Mapping):
            for key, sample in value.items():
                label_values = [key] if isinstance(key, str) else [str(v) for v in key]
                if len(label_values) != len(self.labels):
                    raise ValueError(f"{len(label_values)} label values for labels {self.labels}")
                family.add_metric(label_values, float(sample))
        elif self.labels:
            raise ValueError(f"a gauge with labels {self.labels} needs a mapping of label values")
        else:
            family.add_metric([], float(value))
        return family


class _ScrapeTimeGauges:
    """The collector holding every callback gauge of one registry."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._gauges: dict[str, _Gauge] = {}

    def add(self, gauge: _Gauge) -> None:
        """Register ``gauge``; its name must be new."""
        with self._lock:
            if gauge.name in self._gauges or gauge.name.startswith(_HTTP_METRICS):  # incl. _total, _count, …
                raise ConfigurationError(f"metric {gauge.name!r} is already registered")
            self._gauges[gauge.name] = gauge

    def collect(self) -> Iterable[Metric]:
        """One family per gauge; a failing callback is logged and its gauge left out of this scrape."""
        with self._lock:
            gauges = list(self._gauges.values())
        for gauge in gauges:
            try:
                family = gauge.family()
            except Exception as exc:  # a broken gauge must not take the whole scrape down
                _log.warning("metrics gauge %s failed: %s", gauge.name, type(exc).__name__)
                continue
            yield family


class Metrics:
    """One app's metrics: its own registry, the HTTP request series, and gauges computed at scrape time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ledger_http_requests",
            "HTTP requests served, by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "ledger_http_request_duration_seconds",
            "Time to serve an HTTP request (until its last body byte was sent), by method and route template",
            ["method", "route"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self._gauges = _ScrapeTimeGauges()
        self.registry.register(self._gauges)

    def observe(self, *, method: str, route: str, status: int, seconds: float) -> None:
        """Record one served request."""
        method = method.upper() if method.upper() in _METHODS else "OTHER"
        self.requests.labels(method=method, route=route, status=str(status)).inc()
        self.duration.labels(method=method, route=route).observe(seconds)

    def add_gauge_callback(
        self, name: str, help: str, fn: Callable[[], GaugeValue], *, labels: Sequence[str] = ()
    ) -> None:
        """Publish a gauge ``fn`` computes at each scrape (outbox backlog, index lag, chain head, …).

        Without ``labels`` ``fn`` returns a number; with them, a mapping from label-value tuples to
        numbers (e.g. ``{("pending",): 3, ("failed",): 0}`` for ``labels=("state",)``). ``None`` means
        "no sample now" (e.g. the node is unreachable). A callback that raises is left out of that scrape.
        """
        gauge = _Gauge(name, help, fn, tuple(labels))
        if not _NAME.fullmatch(name):
            raise ConfigurationError(f"invalid metric name {name!r} (letters, digits, '_' and ':')")
        for label in gauge.labels:
            if not _LABEL.fullmatch(label) or label.startswith("__"):
                raise ConfigurationError(f"invalid label name {label!r} of metric {name!r}")
        self._gauges.add(gauge)

    def exposition(self) -> bytes:
        """The Prometheus text exposition of every metric of this app (runs the gauge callbacks)."""
        return generate_latest(self.registry)


class RouteTemplates:
    """Maps a request to the path template of the route serving it, or :data:`UNMATCHED`.

    Resolved from the app's routes (nested routers' prefixes included), not from the raw path; the
    table is rebuilt when routes are added.
    """

    def __init__(self, app: FastAPI) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._built_for = -1
        self._table: list[tuple[re.Pattern[str], str]] = []

    def _current(self) -> list[tuple[re.Pattern[str], str]]:
        routes = self._app.routes
        with self._lock:
            if len(routes) != self._built_for:
                table: list[tuple[re.Pattern[str], str]] = []
                for context in iter_route_contexts(routes):
                    regex = getattr(context, "path_regex", None)
                    template = context.path_format
                    if isinstance(regex, re.Pattern) and isinstance(template, str):
                        table.append((regex, template))
                self._table, self._built_for = table, len(routes)
            return self._table

    def template(self, scope: Scope) -> str:
        """The template of the first route whose path pattern matches the request (any method)."""
        path = _route_path(scope)
        for regex, template in self._current():
            if regex.match(path):
                return template
        return UNMATCHED


def _route_path(scope: Scope) -> str:
    """The request path relative to the app's ``root_path`` (what routes are matched against)."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :] or "/"
    return path


class MetricsMiddleware:
    """ASGI middleware counting and timing every HTTP request under its route template.

    Add it outermost so refusals by other middleware (413 size limit) are recorded too; a request
    whose handler raised before responding is recorded as 500 (what the error middleware sends).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        templates: RouteTemplates,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.app = app
        self._metrics = metrics
        self._templates = templates
        self._clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = self._clock()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            self._metrics.observe(
                method=str(scope.get("method", "")),
                route=self._templates.template(scope),
                status=status,
                seconds=max(0.0, self._clock() - started),
            )


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host in _LOCAL_CLIENTS:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _bearer(request: Request) -> bytes | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip().encode("utf-8")


def _problem(problem: Problem) -> JSONResponse:
    return JSONResponse(
        problem.body(), status_code=problem.status, headers=problem.headers, media_type=PROBLEM_MEDIA_TYPE
    )


def install_metrics(
    app: FastAPI, *, token: str | None = None, clock: Callable[[], float] = time.perf_counter
) -> Metrics:
    """Give ``app`` metrics (``app.state.metrics``): the request middleware (added now, so call this
    after the other middleware to record their refusals too) and ``GET /metrics``.

    With ``token``, scrapes must send ``Authorization: Bearer <token>`` (401 otherwise); without
    one, only loopback clients are served (403 otherwise). ``clock`` times requests (tests).
    """
    metrics = Metrics()
    app.state.metrics = metrics
    app.add_middleware(MetricsMiddleware, metrics=metrics, templates=RouteTemplates(app), clock=clock)
    expected = token.encode("utf-8") if token else None

    @app.get("/metrics", tags=["operations"], include_in_schema=False, summary="Prometheus metrics")
    def scrape(request: Request) -> Response:
        """The text exposition (a sync endpoint: gauge callbacks may block, so it runs in a worker thread)."""
        if expected is not None:
            offered = _bearer(request)
            if offered is None or not hmac.compare_digest(offered, expected):
                return _problem(
                    Problem(
                        status=401,
                        code="unauthenticated",
                        title="Metrics need a bearer token",
                        headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                    )
                )
        elif not _is_loopback(request.client.host if request.client else None):
            return _problem(
                Problem(
                    status=403,
                    code="forbidden",
                    title="Metrics are served to loopback clients only",
                    detail="configure a metrics token to scrape from another host",
                )
            )
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return metrics
