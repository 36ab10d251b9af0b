"""Builds the FastAPI application: error table, size limits, rate limits, metrics, health, OpenAPI.

``create_app`` is the only constructor; routes live in ``ledger_api/api/routes/`` (one resource
each) and never build HTTP errors for domain failures: they raise, and the handlers here render
every :class:`LedgerError` through :mod:`ledger_api.api.problems`.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger_api import __version__
from ledger_api._runtime import bound_recursion
from ledger_api.api.health import HealthCheck, run_checks
from ledger_api.api.limits import BodySizeLimit
from ledger_api.api.metrics import install_metrics
from ledger_api.api.problems import PROBLEM_MEDIA_TYPE, Problem, problem_for
from ledger_api.api.ratelimit import RateLimiter, RateLimits
from ledger_api.api.routes import (
    audit,
    customs,
    declarations,
    documents,
    evidence,
    governance,
    me,
    stamps,
    submissions,
    tokens,
    verify,
    web,
)
from ledger_api.errors import LedgerError

__all__ = ["DEFAULT_MAX_BODY", "create_app"]

#: Default limit on a request body (uploads of documents included): 64 MiB.
DEFAULT_MAX_BODY = 64 * 1024 * 1024

_log = logging.getLogger("ledger_api.api")


def _problem_response(problem: Problem) -> JSONResponse:
    return JSONResponse(
        problem.body(), status_code=problem.status, headers=problem.headers, media_type=PROBLEM_MEDIA_TYPE
    )


def create_app(
    *,
    health_checks: list[HealthCheck] | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    lifespan: Any = None,
    rate_limits: RateLimits | None = None,
    metrics_token: str | None = None,
) -> FastAPI:
    """The HTTP service. ``health_checks`` are the dependencies ``GET /health`` reports on;
    ``lifespan`` starts and stops background work (indexer, head tracker). ``rate_limits`` (None: no
    limits) budgets authenticated callers and failing client addresses; ``GET /metrics`` requires
    ``metrics_token`` as a bearer token when it is set, else it serves loopback clients only."""
    bound_recursion()
    app = FastAPI(
        lifespan=lifespan,
        title="Customs document-provenance ledger",
        version=__version__,
        description="Anchor, follow and verify trade documents across customs administrations.",
        responses={"default": {"description": "RFC 9457 problem", "content": {PROBLEM_MEDIA_TYPE: {}}}},
    )
    app.state.health_checks = list(health_checks or [])

    @app.exception_handler(LedgerError)
    async def _domain_error(request: Request, error: LedgerError) -> JSONResponse:
        problem = problem_for(error)
        if problem.status >= 500:
            _log.warning("%s %s failed: %s", request.method, request.url.path, error.code)
        return _problem_response(problem)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        fields = [
            {"location": ".".join(str(p) for p in item.get("loc", ())), "message": str(item.get("msg", ""))}
            for item in error.errors()
        ]
        return _problem_response(
            Problem(
                status=422,
                code="invalid-request",
                title="Invalid request",
                detail=f"{len(fields)} field(s) failed validation",
                extensions={"errors": fields},
            )
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 400:  # the framework could not parse the body (e.g. JSON that is not UTF-8)
            return _problem_response(
                Problem(status=422, code="invalid-request", title="Invalid request", detail=str(error.detail or ""))
            )
        codes = {404: "not-found", 405: "method-not-allowed", 401: "unauthenticated", 403: "forbidden"}
        return _problem_response(
            Problem(
                status=error.status_code,
                code=codes.get(error.status_code, f"http-{error.status_code}"),
                title=str(error.detail) if error.detail else "HTTP error",
                headers=dict(error.headers or {}),
            )
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        _log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _problem_response(Problem(status=500, code="internal", title="Internal error"))

    @app.get("/health", tags=["operations"], summary="Dependency health (200 ok/degraded, 503 down)")
    async def health(request: Request) -> JSONResponse:
        status, report = await run_checks(request.app.state.health_checks)
        body: dict[str, Any] = {"status": status, "version": __version__, "checks": report}
        return JSONResponse(body, status_code=503 if status == "down" else 200)

    for module in (
        verify,
        declarations,
        submissions,
        customs,
        stamps,
        documents,
        governance,
        tokens,
        evidence,
        me,
        audit,
        web,
    ):
        app.include_router(module.router)
    app.add_middleware(BodySizeLimit, max_bytes=max_body)
    app.state.rate_limiter = RateLimiter(rate_limits) if rate_limits is not None else None
    install_metrics(app, token=metrics_token)  # last: its middleware is outermost and sees every response
    return app
