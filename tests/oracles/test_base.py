"""The shared oracle machinery: idempotent posting across restarts, backoff, status, health, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ledger_api.chain import _tx_calls as calls
from ledger_api.errors import ChainUnavailable
from ledger_api.outbox import EntryState
from oracles._base import Oracle, OracleContext, OracleState, read_status, run
from tests.oracles.conftest import Ledger

SUBJECT = bytes.fromhex("ab" * 32)


class _AlertOnce(Oracle):
    """Posts one alert fact per step (same key every time)."""

    name = "probe"
    default_agency = "CONSORTIUM-AUDIT"

    def step(self) -> int:
        self.ctx.post("alert:probe", calls.raise_alert(subject_kind=0, subject=SUBJECT, reason_code=7,
                                                        evidence_sha256=b"\x01" * 32))  # fmt: skip
        return 0


class _Flaky(Oracle):
    """Fails with a dependency error ``failures`` times, then succeeds."""

    name = "flaky"
    default_agency = "CONSORTIUM-AUDIT"

    def __init__(self, ctx: OracleContext, failures: int) -> None:
        super().__init__(ctx)
        self.left = failures
        self.calls: list[float] = []

    def step(self) -> int:
        self.calls.append(time.monotonic())
        if self.left > 0:
            self.left -= 1
            raise ChainUnavailable("http://127.0.0.1:1")
        return 0


def _alert_count(ledger: Ledger) -> int:
    data = "0x" + calls.encode_call("alertCount", ()).hex()
    out = ledger.client.rpc.call("eth_call", [{"to": ledger.deployment.ledger, "data": data}, "latest"])
    return int(out, 16)


@pytest.mark.integration
def test_a_fact_is_posted_once_across_restarts(ledger: Ledger, contexts: Callable[..., OracleContext]) -> None:
    for _life in range(3):  # three "process lives" on the same state directory
        ctx = contexts("probe", "CONSORTIUM-AUDIT")
        run(_AlertOnce(ctx), max_steps=3)
        ctx.worker.drain(timeout=20)
        ctx.close()
    assert _alert_count(ledger) == 1
    ctx = contexts("probe", "CONSORTIUM-AUDIT")
    entry = ctx.posted("alert:probe")
    assert entry is not None and entry.state == EntryState.FINAL
    assert ctx.outbox.counts() == {"final": 1}


@pytest.mark.integration
def test_dependency_failures_back_off_exponentially_then_recover(contexts: Callable[..., OracleContext]) -> None:
    ctx = contexts("flaky", "CONSORTIUM-AUDIT", interval=0.2, backoff_max=0.8)
    oracle = _Flaky(ctx, failures=4)
    stop = threading.Event()
    states: list[str] = []

    def watch() -> None:
        while not stop.is_set():
            status = read_status(ctx)
            if status:
                states.append(status["state"])
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        status = run(oracle, stop=stop, max_steps=1)
    finally:
        stop.set()
        watcher.join()
    assert status.steps == 1 and status.consecutive_failures == 0 and status.last_error is None
    gaps = [b - a for a, b in zip(oracle.calls, oracle.calls[1:], strict=False)]
    assert len(gaps) == 4
    # jittered backoff: each wait lies in [base/2, min(cap, base * 2^(n-1))]; the cap bounds them all
    assert all(0.09 <= g <= 0.8 + 0.3 for g in gaps), gaps
    assert "degraded" in states


def test_state_records_a_fact_once(tmp_path: Any) -> None:
    state = OracleState(tmp_path / "s.db")
    assert state.record_fact("k", {"a": 1}) is True
    assert state.record_fact("k", {"a": 2}) is False
    assert state.fact("k") == {"a": 1}
    state.forget_fact("k")
    assert state.fact("k") is None
    for n in range(5):
        state.record_fact(f"log:{n}", n)
        time.sleep(0.002)
    assert state.trim_facts("log:", 2) == 3
    assert sorted(state.facts("log:").values()) == [3, 4] and state.trim_facts("log:", 2) == 0
    state.set("cursor", 41)
    state.close()
    again = OracleState(tmp_path / "s.db")
    assert again.get("cursor") == 41 and again.get("missing", "x") == "x"
    again.close()


@pytest.mark.integration
def test_run_command_serves_health_and_stops_on_sigterm(ledger: Ledger) -> None:
    env = dict(os.environ)
    env.update(
        LEDGER_VAR_DIR=str(ledger.settings.var_dir),
        LEDGER_ANVIL_PORT=str(ledger.settings.anvil_port),
        LEDGER_ORACLE_INTERVAL="0.2",
    )
    from tests._support.ipfs import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "oracles", "replication", "run", "--health-port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/status", timeout=2)
                body = response.json()
                if body.get("state") == "ok":
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        assert body.get("state") == "ok", body
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()["oracle"] == "replication"
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    events = [json.loads(line)["event"] for line in err.decode().splitlines() if line.startswith("{")]
    assert events[0] == "oracle started" and events[-1] == "oracle stopped"
    status = subprocess.run(
        [sys.executable, "-m", "oracles", "replication", "status"], env=env, capture_output=True, timeout=60
    )
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["state"] == "stopped"


class _Troubled(Oracle):
    """Every pass succeeds but reports a standing problem."""

    name = "troubled"
    default_agency = "CONSORTIUM-AUDIT"

    def step(self) -> int:
        return 0

    def problems(self) -> list[str]:
        return ["document 0xab… missing from NL-RTM-CUSTOMS"]


@pytest.mark.integration
def test_standing_problems_make_the_health_endpoint_answer_503(contexts: Callable[..., OracleContext]) -> None:
    from tests._support.ipfs import free_port

    port = free_port()
    ctx = contexts("troubled", "CONSORTIUM-AUDIT", health_port=port, interval=0.1)
    stop = threading.Event()
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(run(_Troubled(ctx), stop=stop)))
    thread.start()
    try:
        deadline = time.monotonic() + 30
        response = None
        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                if response.status_code == 503:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        assert response is not None and response.status_code == 503, response
        assert response.headers["Retry-After"] and response.json()["state"] == "degraded"
        details = httpx.get(f"http://127.0.0.1:{port}/status", timeout=2).json()["details"]
        assert details["problems"] == ["document 0xab… missing from NL-RTM-CUSTOMS"]
    finally:
        stop.set()
        thread.join(30)
    assert result and result[0].state == "stopped" and result[0].last_error is None


def test_a_taken_port_is_one_readable_configuration_error() -> None:
    """The health endpoint / partner feed on a port another process holds: a ConfigurationError that
    names the endpoint and the port (one line from the CLI), not a traceback."""
    import socket
    from http.server import BaseHTTPRequestHandler

    from ledger_api.errors import ConfigurationError
    from oracles._base import listen

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigurationError) as refused:
            listen("127.0.0.1", port, BaseHTTPRequestHandler, what="health endpoint")
    assert f"127.0.0.1:{port}" in str(refused.value) and "health endpoint" in str(refused.value)
