"""Helpers of the API crash test: the service as its own process group, retrying clients, the chain's record.

* :class:`ServiceProcess` runs ``python -m ledger_api.cli serve`` in a new session, so a SIGKILL of
  its process group kills it whole (no graceful shutdown, no final fsync, responses in flight lost).
* :class:`Driver` runs submissions on a thread pool. Each submission is a distinct declaration
  with a fixed ``Idempotency-Key``; like a real client it retries with the SAME key after a
  connection error or a 5xx until it gets its 202 (or its deadline passes). Progress (the number of
  keys answered 202) is what the test's kill points are chosen by; :meth:`Driver.admit` bounds how
  many submissions may begin, so a fast machine cannot run past a planned fault.
* :func:`wait_for_consistent_state_dump` finds a safe moment to kill anvil (between two dumps, after
  a consistent one).
* :func:`submitted_on_chain` reads every ``DeclarationSubmitted`` log of the ledger with raw
  ``eth_getLogs`` and decodes the two indexed topics (declaration id = commitment, declarant).
"""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from eth_utils.crypto import keccak

from ledger_api.client import ApiProblem, LedgerHttpClient
from ledger_api.config import Settings
from ledger_api.hashing import declaration_commitment

__all__ = [
    "TRADERS",
    "Driver",
    "Job",
    "Outcome",
    "ServiceProcess",
    "file_stamp",
    "free_port",
    "make_jobs",
    "submitted_on_chain",
    "state_dump_consistent",
    "wait_for_consistent_state_dump",
]

REPO = Path(__file__).resolve().parents[3]

#: The three traders of the default consortium and the customs authority each declares to.
TRADERS: Mapping[str, str] = {
    "trader-tj-electronics": "CN-TJ-CUSTOMS",
    "trader-tj-foods": "CN-TJ-CUSTOMS",
    "trader-rtm-importer": "NL-RTM-CUSTOMS",
}

_DECLARATION_SUBMITTED = "0x" + keccak(
    text="DeclarationSubmitted(bytes32,address,uint32,bytes32,bytes,(uint8,bytes32,bytes)[])"
).hex().removeprefix("0x")


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------------------- the service process


class ServiceProcess:
    """``ledger serve`` in its own session (process group) on a fixed port; killed and restarted at will."""

    def __init__(self, *, settings: Settings, port: int, log: Path) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.log = log
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
        self.env |= {
            "LEDGER_VAR_DIR": str(settings.var_dir),
            "LEDGER_ANVIL_PORT": str(settings.anvil_port),
            "LEDGER_RATE_LIMIT_ENABLED": "false",  # three callers send ~1,000 writes: the budgets would throttle
            "PYTHONUNBUFFERED": "1",
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, *, timeout: float = 90.0) -> float:
        """Start the service and wait until ``/health`` answers; returns the seconds it took."""
        assert self.process is None, "already running"
        began = time.monotonic()
        with self.log.open("ab") as log:
            log.write(f"---- start {self.starts} ----\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ledger_api.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=REPO, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            )  # fmt: skip
        self.starts += 1
        deadline = began + timeout
        with httpx.Client(timeout=5) as http:
            while True:
                if self.process.poll() is not None:
                    code = self.process.returncode
                    self.process = None
                    raise AssertionError(f"the service exited with {code} while starting; see {self.log}")
                try:
                    # Any answer (200 ok/degraded, 503 down) means the lifespan ran and the routes are served.
                    if http.get(f"{self.base_url}/health").status_code in (200, 503):
                        return time.monotonic() - began
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    self.kill()
                    raise AssertionError(f"the service did not answer /health within {timeout:.0f} s; see {self.log}")
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the whole process group (a crash: nothing is flushed, nothing answers) and reap it."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)
        self.process = None

    def stop(self, *, timeout: float = 30.0) -> None:
        """Graceful stop (SIGTERM: uvicorn runs the lifespan shutdown), SIGKILL if it hangs."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=timeout)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"the service did not stop within {timeout:.0f} s of SIGTERM; see {self.log}"
            ) from None
        self.process = None

    def health(self) -> dict[str, Any]:
        """The ``/health`` report (200 or 503)."""
        with httpx.Client(timeout=10) as http:
            response = http.get(f"{self.base_url}/health")
        assert response.status_code in (200, 503), response.text
        report: dict[str, Any] = response.json()
        return report


# ---------------------------------------------------------------------------------------- submissions


@dataclass(frozen=True, kw_only=True)
class Job:
    """One distinct declaration, its submitting trader and its fixed idempotency key."""

    key: str
    label: str
    declaration: dict[str, Any]
    commitment: str  # 0x-hex: the declaration id it must be anchored under


def make_jobs(*, tag: str, count: int, start: int = 0) -> list[Job]:
    """``count`` distinct small declarations, spread over the three traders."""
    labels = list(TRADERS)
    jobs = []
    for i in range(start, start + count):
        label = labels[i % len(labels)]
        declaration = {
            "jurisdiction": TRADERS[label],
            "local_reference": f"CRASH-{tag}-{i:05d}",
            "goods": [{"hs": "850760", "qty": i + 1}],
        }
        jobs.append(
            Job(key=f"crash-{tag}-{i:05d}", label=label, declaration=declaration,
                commitment="0x" + declaration_commitment(declaration).hex())
        )  # fmt: skip
    return jobs


@dataclass
class Outcome:
    """What one submission saw, attempt by attempt."""

    job: Job
    attempts: int = 0
    transport_errors: int = 0
    server_errors: list[tuple[float, str]] = field(default_factory=list)  # (monotonic time, "status code")
    accepted: list[dict[str, Any]] = field(default_factory=list)  # every 202 body for this key
    accepted_at: float | None = None  # monotonic time of the first 202
    refused: ApiProblem | None = None  # a 4xx: not retried, the test fails on it
    gave_up: str | None = None

    @property
    def tracking_ids(self) -> set[str]:
        return {body["tracking_id"] for body in self.accepted}


class Driver:
    """Submits jobs concurrently; each retries with the same key until it gets a 202 (see the module doc)."""

    def __init__(self, *, base_url: str, keys: Mapping[str, bytes], workers: int, deadline: float, seed: int) -> None:
        self.base_url = base_url
        self.keys = dict(keys)
        self.deadline = deadline  # monotonic time after which a submission gives up
        self._rng = random.Random(seed)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="crash-client")
        self._local = threading.local()
        self._clients: list[LedgerHttpClient] = []
        self._progress = threading.Condition()
        self.accepted = 0  # keys answered 202 (progress)
        self.in_flight = 0  # HTTP requests under way
        self.started = 0  # submissions begun
        self._admit: int | None = None  # at most this many submissions begin (None: all)
        self._closed = threading.Event()
        self.outcomes: list[Outcome] = []

    def close(self) -> None:
        """Stop retrying, wait for the pool and close every client."""
        self._closed.set()
        with self._progress:
            self._progress.notify_all()
        self._pool.shutdown(wait=True, cancel_futures=True)
        for client in self._clients:
            client.close()

    def _client(self, label: str) -> LedgerHttpClient:
        clients: dict[str, LedgerHttpClient] | None = getattr(self._local, "clients", None)
        if clients is None:
            clients = self._local.clients = {}
        if label not in clients:
            clients[label] = LedgerHttpClient(base_url=self.base_url, private_key=self.keys[label], timeout=30)
            with self._progress:
                self._clients.append(clients[label])
        return clients[label]

    def submit(self, jobs: Iterable[Job]) -> list[Future[Outcome]]:
        """Queue ``jobs`` on the pool; each future resolves to its :class:`Outcome`."""
        futures = []
        for job in jobs:
            outcome = Outcome(job=job)
            self.outcomes.append(outcome)
            futures.append(self._pool.submit(self._run, outcome))
        return futures

    def admit(self, limit: int | None) -> None:
        """Let at most ``limit`` submissions begin in all (``None``: every one); the rest wait their turn.

        Bounds how far the run can get before (or during) a planned fault, whatever the machine's speed."""
        with self._progress:
            self._admit = limit
            self._progress.notify_all()

    def _run(self, outcome: Outcome) -> Outcome:
        with self._progress:
            while self._admit is not None and self.started >= self._admit:
                self._progress.wait(timeout=0.5)
                if self._closed.is_set() or time.monotonic() > self.deadline:
                    outcome.gave_up = "never admitted"
                    return outcome
            self.started += 1
        job, client = outcome.job, self._client(outcome.job.label)
        delay = 0.05
        while True:
            outcome.attempts += 1
            with self._progress:
                self.in_flight += 1
            try:
                body = client.submit_declaration(job.declaration, idempotency_key=job.key)
            except httpx.TransportError as exc:  # the service died under us, or is not up yet
                outcome.transport_errors += 1
                last = f"{type(exc).__name__}: {exc}"
            except ApiProblem as problem:
                if problem.status < 500:
                    outcome.refused = problem
                    return outcome
                outcome.server_errors.append((time.monotonic(), f"{problem.status} {problem.problem_code}"))
                last = str(problem)
            else:
                outcome.accepted.append(body)
                outcome.accepted_at = time.monotonic()
                with self._progress:
                    self.accepted += 1
                    self._progress.notify_all()
                return outcome
            finally:
                with self._progress:
                    self.in_flight -= 1
            if self._closed.is_set() or time.monotonic() > self.deadline:
                outcome.gave_up = last
                return outcome
            self._closed.wait(delay * self._rng.uniform(0.5, 1.5))
            delay = min(0.5, delay * 2)

    def resubmit(self, outcome: Outcome) -> None:
        """Send an answered request once more (same key, same declaration): it must be the same entry."""
        body = self._client(outcome.job.label).submit_declaration(
            outcome.job.declaration, idempotency_key=outcome.job.key
        )
        outcome.accepted.append(body)

    def wait_accepted(self, count: int, *, until: float) -> bool:
        """Block until ``count`` keys have their 202 (``False`` if monotonic time ``until`` passes first)."""
        with self._progress:
            while self.accepted < count:
                left = until - time.monotonic()
                if left <= 0:
                    return False
                self._progress.wait(min(left, 0.5))
            return True

    def map(self, fn: Callable[[Outcome], Any], outcomes: Sequence[Outcome]) -> list[Any]:
        """Run ``fn`` over ``outcomes`` on the pool (with the pool's per-thread clients)."""
        return list(self._pool.map(fn, outcomes))

    def status(self, outcome: Outcome, *, timeout: float) -> dict[str, Any]:
        """Poll the submission's status until it settles (``wait_settled``)."""
        (tracking_id,) = outcome.tracking_ids
        return self._client(outcome.job.label).wait_settled(tracking_id, timeout=timeout, poll=0.2)


# ---------------------------------------------------------------------------------------- chain and node


def submitted_on_chain(rpc_url: str, *, ledger: str, from_block: int) -> list[tuple[str, str]]:
    """Every ``DeclarationSubmitted`` of ``ledger``: (declaration id, declarant address), in chain order."""
    body = {
        "jsonrpc": "2.0", "id": 1, "method": "eth_getLogs",
        "params": [{"address": ledger, "fromBlock": hex(from_block), "toBlock": "latest",
                    "topics": [_DECLARATION_SUBMITTED]}],
    }  # fmt: skip
    with httpx.Client(timeout=120) as http:
        reply = http.post(rpc_url, json=body).json()
    assert "error" not in reply, reply
    return [(log["topics"][1].lower(), "0x" + log["topics"][2][-40:].lower()) for log in reply["result"]]


def _int(value: int | str) -> int:
    return value if isinstance(value, int) else int(value, 16)


def state_dump_consistent(state: Mapping[str, Any]) -> bool:
    """Whether an anvil state dump's accounts agree with its blocks.

    anvil takes the dump while it keeps mining, and the account states can be ahead of the block
    list: a node restarted from such a dump holds the effects of transactions that are in none of
    its blocks (declarations in storage without their transaction, receipt or event). Consistent
    means every transaction of the dump's blocks is there, and each account without code has
    exactly as many of them as its nonce says.
    """
    best = _int(state["best_block_number"])
    mined = [t for t in state["transactions"] if _int(t["block_number"]) <= best]
    if len(mined) != sum(len(block["transactions"]) for block in state["blocks"]):
        return False
    sent = collections.Counter(str(t["info"]["from"]).lower() for t in mined)
    return all(
        _int(account.get("nonce", 0)) == sent[address.lower()]
        for address, account in state["accounts"].items()
        if account.get("code") in (None, "", "0x")
    )


def file_stamp(path: Path) -> tuple[int, int]:
    """(mtime in ns, size) of ``path``: changes as soon as anvil starts rewriting its state file."""
    info = path.stat()
    return info.st_mtime_ns, info.st_size


def wait_for_consistent_state_dump(state_file: Path, *, timeout: float = 60.0) -> tuple[int, int]:
    """Return right after anvil completed a periodic dump of ``state_file`` that is whole and consistent.

    anvil rewrites the file in place every ``--state-interval``: a kill in the middle of a dump
    leaves a file it cannot load, and a whole dump can still be inconsistent (see
    :func:`state_dump_consistent`). A dump is complete once the file is a whole JSON document and
    has stopped changing; the next one is about a second away, so a kill right after is safe.
    Returns (best block number of the dump, inconsistent dumps passed over).
    """
    deadline = time.monotonic() + timeout
    skipped = 0

    def stamp() -> tuple[int, int]:
        return file_stamp(state_file)

    seen = stamp()
    while True:
        while stamp() == seen:  # a new dump begins
            if time.monotonic() > deadline:
                raise AssertionError(f"anvil wrote no consistent dump of {state_file} within {timeout:.0f} s")
            time.sleep(0.005)
        while True:  # ... and ends: the file stops changing and parses
            seen = stamp()
            time.sleep(0.02)
            if stamp() != seen:
                continue
            try:
                state = json.loads(state_file.read_bytes())
            except ValueError:
                continue
            if stamp() == seen:
                break
        if state_dump_consistent(state):
            return _int(state["best_block_number"]), skipped
        skipped += 1
