"""A small process supervisor for ``ledger run``: child processes, health checks, restarts, shutdown.

Each child runs in its own session (so a Ctrl-C on the terminal reaches only the supervisor, which
then stops the children in order), writes stdout and stderr to its own log file, is health-checked
over HTTP, and is restarted with a jittered exponential backoff when it exits. :meth:`Supervisor.stop`
stops the children in reverse start order: SIGTERM to the child's process group, SIGKILL after a
grace period.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ledger_api.errors import LedgerError

__all__ = ["ChildSpec", "ChildState", "Supervisor", "SupervisorError"]


class SupervisorError(LedgerError):
    """A supervised process could not be started or did not become healthy."""

    code = "supervisor"

    def diagnostics(self) -> str:
        return f"{self}\nThe child's log (see the path above) says why; fix it and run `ledger run` again."


@dataclass(frozen=True, kw_only=True)
class ChildSpec:
    """What to run: a name, the command, its extra environment, its health URL and its log file."""

    name: str
    argv: tuple[str, ...]
    log: Path
    env: Mapping[str, str] = field(default_factory=dict)
    health_url: str | None = None
    any_status_healthy: bool = False  # any HTTP answer is "ok" (e.g. an RPC API answering GET with 405)


@dataclass(kw_only=True)
class ChildState:
    """A supervised child: its process (``None`` while waiting for a restart) and its history."""

    spec: ChildSpec
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    failures: int = 0
    restart_at: float | None = None
    started_at: float = 0.0
    pids: list[int] = field(default_factory=list)

    @property
    def pid(self) -> int | None:
        """PID of the running process, or ``None``."""
        return self.process.pid if self.process is not None else None


def probe(url: str, *, timeout: float = 2.0) -> int | None:
    """HTTP status of ``GET url``, or ``None`` when nothing answers."""
    try:
        return httpx.get(url, timeout=timeout).status_code
    except httpx.HTTPError:
        return None


class Supervisor:
    """Start, watch, restart and stop a fixed list of child processes."""

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        *,
        backoff_min: float = 1.0,
        backoff_max: float = 30.0,
        stable_after: float = 60.0,
        stop_timeout: float = 15.0,
        log: Callable[[str], None] = print,
    ) -> None:
        """``stable_after``: seconds a child must live for its backoff to start again from ``backoff_min``."""
        self.children = [ChildState(spec=spec) for spec in specs]
        self._backoff_min = backoff_min
        self._backoff_max = backoff_max
        self._stable_after = stable_after
        self._stop_timeout = stop_timeout
        self._log = log

    # ------------------------------------------------------------------ start

    def _spawn(self, child: ChildState) -> None:
        spec = child.spec
        spec.log.parent.mkdir(parents=True, exist_ok=True)
        with open(spec.log, "ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} start {spec.name}\n".encode())
            log.flush()
            child.process = subprocess.Popen(
                spec.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **spec.env},
                start_new_session=True,
            )
        child.pids.append(child.process.pid)
        child.started_at = time.monotonic()
        child.restart_at = None

    def start(self, *, health_timeout: float = 90.0, stop: Callable[[], bool] = lambda: False) -> None:
        """Start every child in order, each one answering its health URL before the next starts.

        Raises :class:`SupervisorError` when a child exits or stays silent past ``health_timeout``
        (everything started so far is stopped first).
        """
        for child in self.children:
            self._spawn(child)
            try:
                self._await_health(child, health_timeout, stop)
            except BaseException:
                self.stop()
                raise

    def _await_health(self, child: ChildState, timeout: float, stop: Callable[[], bool]) -> None:
        spec, process = child.spec, child.process
        assert process is not None
        deadline = time.monotonic() + timeout
        while spec.health_url is not None:
            if process.poll() is not None:
                raise SupervisorError(f"{spec.name} exited with status {process.returncode}; see {spec.log}")
            if probe(spec.health_url) is not None:
                return
            if stop():
                raise KeyboardInterrupt
            if time.monotonic() > deadline:
                raise SupervisorError(f"{spec.name} did not answer {spec.health_url} within {timeout:.0f} s")
            time.sleep(0.2)

    # ------------------------------------------------------------------ watch

    def poll(self) -> None:
        """Notice exited children and restart those whose backoff delay has passed."""
        now = time.monotonic()
        for child in self.children:
            process = child.process
            if process is not None and process.poll() is not None:
                lived = now - child.started_at
                child.failures = 1 if lived >= self._stable_after else child.failures + 1
                delay = min(self._backoff_max, self._backoff_min * 2 ** (child.failures - 1))
                delay *= random.uniform(0.8, 1.2)
                child.process, child.restart_at = None, now + delay
                self._log(
                    f"ledger run: {child.spec.name} exited with status {process.returncode} after {lived:.0f} s; "
                    f"restarting in {delay:.1f} s (log: {child.spec.log})"
                )
            elif process is None and child.restart_at is not None and now >= child.restart_at:
                self._spawn(child)
                child.restarts += 1
                self._log(f"ledger run: {child.spec.name} restarted (pid {child.pid})")

    def health(self) -> dict[str, str]:
        """Per child: ``ok`` / ``degraded`` (the health URL answered 503) / ``down`` / ``restarting``."""
        report: dict[str, str] = {}
        for child in self.children:
            if child.process is None:
                report[child.spec.name] = "restarting"
                continue
            url = child.spec.health_url
            status = probe(url) if url is not None else 200
            if status is not None and child.spec.any_status_healthy:
                status = 200
            report[child.spec.name] = {None: "down", 200: "ok"}.get(status, "degraded")
        return report

    # ------------------------------------------------------------------ stop

    def stop(self) -> None:
        """Stop every running child, in reverse start order (SIGTERM to its group, SIGKILL after the grace)."""
        for child in reversed(self.children):
            process = child.process
            child.process, child.restart_at = None, None
            if process is None or process.poll() is not None:
                continue
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=self._stop_timeout)
            except subprocess.TimeoutExpired:
                self._log(f"ledger run: {child.spec.name} ignored SIGTERM for {self._stop_timeout:.0f} s; killing it")
                _signal_group(process.pid, signal.SIGKILL)
                process.wait(timeout=self._stop_timeout)
            # anything the child left in its group (it runs in its own session) goes too
            _signal_group(process.pid, signal.SIGKILL)


def _signal_group(pid: int, signum: int) -> None:
    """Signal the process group led by ``pid`` (the child's own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)
