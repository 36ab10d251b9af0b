"""The ``ledger run`` supervisor with tiny Python children: health wait, restart with backoff, stop."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from ledger_api._supervisor import ChildSpec, Supervisor, SupervisorError

SLEEPER = "import time\nwhile True: time.sleep(0.1)"
STUBBORN = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True: time.sleep(0.1)"
FAILS = "import sys; sys.exit(3)"


def _server(port: int) -> str:
    return (
        "import http.server\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n        self.send_response(200); self.end_headers()\n"
        "    def log_message(self, *a): pass\n"
        f"http.server.HTTPServer(('127.0.0.1', {port}), H).serve_forever()\n"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def _spec(tmp_path: Path, name: str, code: str, health_url: str | None = None) -> ChildSpec:
    return ChildSpec(name=name, argv=(sys.executable, "-c", code), log=tmp_path / f"{name}.log", health_url=health_url)


def test_start_waits_for_health_then_restarts_a_dead_child_with_backoff(tmp_path: Path) -> None:
    port = _free_port()
    lines: list[str] = []
    supervisor = Supervisor(
        [_spec(tmp_path, "web", _server(port), f"http://127.0.0.1:{port}/"), _spec(tmp_path, "worker", SLEEPER)],
        backoff_min=0.2,
        log=lines.append,
    )
    supervisor.start(health_timeout=30)
    try:
        assert supervisor.health() == {"web": "ok", "worker": "ok"}
        worker = supervisor.children[1]
        first = worker.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while (worker.pid in (None, first)) and time.monotonic() < deadline:
            supervisor.poll()
            time.sleep(0.05)
        assert worker.pid not in (None, first) and worker.restarts == 1
        assert any("worker exited" in line for line in lines) and any("restarted" in line for line in lines)
        assert (tmp_path / "worker.log").read_text().count("start worker") == 2
    finally:
        supervisor.stop()
    assert all(_gone(pid) for child in supervisor.children for pid in child.pids)


def test_backoff_grows_while_a_child_keeps_failing(tmp_path: Path) -> None:
    supervisor = Supervisor([_spec(tmp_path, "crash", FAILS)], backoff_min=0.1, backoff_max=0.4, log=lambda _: None)
    supervisor.start()
    child = supervisor.children[0]
    delays = []
    deadline = time.monotonic() + 15
    while len(delays) < 4 and time.monotonic() < deadline:
        before = child.restart_at
        supervisor.poll()
        if child.restart_at is not None and child.restart_at != before:
            delays.append(child.restart_at - time.monotonic())
        time.sleep(0.02)
    supervisor.stop()
    assert len(delays) == 4
    assert delays[0] < 0.15 and delays[-1] > 0.25  # 0.1, 0.2, 0.4, 0.4 (±20 % jitter)


def test_stop_kills_a_child_that_ignores_sigterm_and_start_fails_cleanly(tmp_path: Path) -> None:
    supervisor = Supervisor([_spec(tmp_path, "stubborn", STUBBORN)], stop_timeout=1.0, log=lambda _: None)
    supervisor.start()
    time.sleep(0.5)  # let it install its handler
    pid = supervisor.children[0].pid
    assert pid is not None
    supervisor.stop()
    assert _gone(pid)

    port = _free_port()
    broken = Supervisor(
        [_spec(tmp_path, "first", SLEEPER), _spec(tmp_path, "dies", FAILS, f"http://127.0.0.1:{port}/")],
        log=lambda _: None,
    )
    with pytest.raises(SupervisorError, match="dies exited with status 3"):
        broken.start(health_timeout=10)
    assert all(_gone(pid) for child in broken.children for pid in child.pids)  # the first one was stopped too
