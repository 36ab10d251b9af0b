"""Health: each dependency reports ok / degraded / down; the service is as healthy as its worst part.

Checks are small objects with a ``name`` and an async ``check()``; the app runs them concurrently
with a timeout so a hung dependency shows as down instead of hanging the health endpoint.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx

__all__ = ["ChainHealth", "HealthCheck", "HealthReport", "Status", "run_checks"]

Status = Literal["ok", "degraded", "down"]
_RANK: dict[Status, int] = {"ok": 0, "degraded": 1, "down": 2}


@dataclass(frozen=True, kw_only=True)
class HealthReport:
    """One dependency's state."""

    status: Status
    detail: str = ""
    facts: dict[str, Any] = field(default_factory=dict)


class HealthCheck(Protocol):
    """A dependency the service needs."""

    name: str  # a check may also set ``critical = False``: its "down" then only degrades the service

    async def check(self) -> HealthReport:
        """Probe the dependency; never raise for an unhealthy dependency, report it."""
        ...


class ChainHealth:
    """The EVM JSON-RPC endpoint: reachable, chain id as expected, head block number."""

    name = "chain"

    def __init__(
        self, *, rpc_url: str, expected_chain_id: int | None = None, timeout: float = 2.0, critical: bool = True
    ) -> None:
        #: False when the service keeps working without the node (outbox, index): down → degraded overall.
        self.critical = critical
        self._rpc_url = rpc_url
        self._expected_chain_id = expected_chain_id
        self._timeout = timeout

    async def check(self) -> HealthReport:
        """Ask for chain id and head block in one batch request."""
        batch = [
            {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
            {"jsonrpc": "2.0", "id": 2, "method": "eth_blockNumber", "params": []},
        ]
        try:
            async with httpx.AsyncClient(timeout=self._timeout, verify=_tls_context()) as client:
                response = await client.post(self._rpc_url, json=batch)
            results = {item["id"]: item["result"] for item in response.json()}
            chain_id, head = int(results[1], 16), int(results[2], 16)
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return HealthReport(status="down", detail="ledger node unreachable")
        if self._expected_chain_id is not None and chain_id != self._expected_chain_id:
            return HealthReport(status="down", detail="ledger node serves another chain", facts={"chainId": chain_id})
        return HealthReport(status="ok", facts={"chainId": chain_id, "head": head})


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for every probe: building it (loading CA roots) is what makes a client slow."""
    return ssl.create_default_context()


async def run_checks(checks: list[HealthCheck], *, timeout: float = 3.0) -> tuple[Status, dict[str, Any]]:
    """Run every check concurrently; return the overall status and a JSON-ready report."""

    async def guarded(check: HealthCheck) -> HealthReport:
        started = time.perf_counter()
        try:
            report = await asyncio.wait_for(check.check(), timeout)
        except TimeoutError:
            return HealthReport(status="down", detail=f"no answer within {timeout:.0f}s")
        except Exception:  # a check's own bug must not take the endpoint down
            return HealthReport(status="down", detail="health check failed")
        return HealthReport(
            status=report.status,
            detail=report.detail,
            facts={**report.facts, "latencyMs": round((time.perf_counter() - started) * 1000, 1)},
        )

    reports = await asyncio.gather(*(guarded(c) for c in checks))
    overall: Status = "ok"
    body: dict[str, Any] = {}
    for check, report in zip(checks, reports, strict=True):
        # A dependency the service can work without (it queues writes, serves reads from the index)
        # makes the service degraded, not down.
        weight: Status = (
            "degraded" if report.status == "down" and not getattr(check, "critical", True) else report.status
        )
        if _RANK[weight] > _RANK[overall]:
            overall = weight
        body[check.name] = {
            "status": report.status,
            **({"detail": report.detail} if report.detail else {}),
            **report.facts,
        }
    return overall, body
