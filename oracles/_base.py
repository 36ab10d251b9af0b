"""What every oracle shares: context (chain, index, store, journal), persisted state, the run loop.

An oracle is a class with a :meth:`Oracle.step` that does one bounded pass of work and returns
how much it did. :func:`run` calls it in a loop and adds everything the issue asks of all oracles:

* **configuration** from :class:`ledger_api.config.Settings` + :class:`oracles.config.OracleSettings`;
* **a persisted cursor**: :class:`OracleState` (SQLite, WAL) under ``<state_dir>/<agency>/<name>/``
  keeps cursors, facts already acted on, and the last status; a restart resumes where it stopped;
* **idempotent actions**: on-chain facts are posted through a private :class:`ledger_api.outbox.Outbox`
  journal under a deterministic idempotency key (:meth:`OracleContext.post`): the same fact is
  journaled once and sent once, whatever crashes when;
* **exponential backoff** (with jitter, capped) while a dependency (node, content store) fails;
* **graceful shutdown** on SIGTERM / SIGINT: the current step finishes, journals are closed;
* **health**: an optional HTTP endpoint (``GET /health``, ``GET /status``) and ``status`` command;
* **structured logs**: one JSON object per line on stderr (:func:`log_event`).

Each oracle keeps its own read model (an :class:`ledger_api.index.Indexer` on its own SQLite file),
so it never depends on an API process being up.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import signal
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from ledger_api.chain._tx_calls import LedgerCall
from ledger_api.chain.client import LedgerClient
from ledger_api.chain.deploy import Deployment, ensure_deployed
from ledger_api.chain.keystore import Keystore
from ledger_api.config import Settings
from ledger_api.documents import ContentStore, LazyIpfsStore, content_store
from ledger_api.errors import ChainError, ConfigurationError, DocumentError, ReadModelError
from ledger_api.index import Indexer, ReadModel
from ledger_api.outbox import EntryState, Outbox, OutboxEntry, OutboxWorker
from oracles.config import OracleSettings

__all__ = [
    "JsonRequestHandler",
    "Oracle",
    "OracleContext",
    "OracleState",
    "RunStatus",
    "configure_logging",
    "listen",
    "log_event",
    "open_context",
    "read_status",
    "run",
]

_log = logging.getLogger("oracles")

#: Errors that mean "a dependency is down or misbehaving": back off and retry, never exit.
DEPENDENCY_ERRORS: tuple[type[Exception], ...] = (ChainError, DocumentError, ReadModelError, OSError)


# ---------------------------------------------------------------------------------- logging


class _JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, event, and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info and record.exc_info[1] is not None:
            entry["error"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        return json.dumps(entry, default=str, separators=(",", ":"))


def configure_logging(level: int = logging.INFO) -> None:
    """Send the ``oracles`` loggers to stderr as JSON lines (idempotent)."""
    root = logging.getLogger("oracles")
    if not any(isinstance(h.formatter, _JsonFormatter) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(_JsonFormatter())
        root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


def log_event(logger: logging.Logger, event: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log ``event`` with structured ``fields`` (never pass secrets: fields are written as they are)."""
    logger.log(level, event, extra={"fields": fields})


# ---------------------------------------------------------------------------------- state


class OracleState:
    """An oracle's durable memory: key/value cursors, facts acted on, last status (SQLite, WAL).

    Thread-safe (one connection, a lock): the health endpoint reads while the loop writes.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS facts (
                key TEXT PRIMARY KEY, value TEXT NOT NULL, recorded_at REAL NOT NULL
            );
            """
        )

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def get(self, key: str, default: Any = None) -> Any:
        """The JSON value stored under ``key`` (``default`` when absent)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable ``value`` under ``key`` (durable when this returns)."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, json.dumps(value, sort_keys=True)))

    def fact(self, key: str) -> Any:
        """The value recorded with fact ``key``, or None if it was never recorded."""
        with self._lock:
            row = self._db.execute("SELECT value FROM facts WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def record_fact(self, key: str, value: Any) -> bool:
        """Record fact ``key`` once; True if it is new, False if it was already recorded."""
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO facts VALUES (?, ?, ?)", (key, json.dumps(value, sort_keys=True), time.time())
            )
        return cur.rowcount == 1

    def forget_fact(self, key: str) -> None:
        """Drop fact ``key`` (e.g. a condition that was repaired may be reported again later)."""
        with self._lock:
            self._db.execute("DELETE FROM facts WHERE key = ?", (key,))

    def trim_facts(self, prefix: str, keep: int) -> int:
        """Drop the oldest facts under ``prefix`` beyond the newest ``keep``; returns how many went."""
        with self._lock:
            cur = self._db.execute(
                "DELETE FROM facts WHERE key IN (SELECT key FROM facts WHERE substr(key, 1, ?) = ? "
                "ORDER BY recorded_at DESC, key DESC LIMIT -1 OFFSET ?)",
                (len(prefix), prefix, keep),
            )
        return cur.rowcount

    def facts(self, prefix: str = "") -> dict[str, Any]:
        """Every recorded fact whose key starts with ``prefix``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT key, value FROM facts WHERE substr(key, 1, ?) = ? ORDER BY key", (len(prefix), prefix)
            ).fetchall()
        return {key: json.loads(value) for key, value in rows}


# ---------------------------------------------------------------------------------- context


class OracleContext:
    """Everything an oracle talks to, opened lazily: chain client, journal, read model, stores.

    ``name`` is the oracle's name; ``agency`` the agency it acts for (its facts are signed by that
    agency's key ``signer`` from the keystore). Files live in :attr:`directory`.
    """

    def __init__(
        self,
        *,
        name: str,
        settings: Settings,
        oracle_settings: OracleSettings,
        deployment: Deployment,
        agency: str,
        keystore: Keystore | None = None,
    ) -> None:
        if agency not in deployment.agencies:
            raise ConfigurationError(f"agency {agency!r} is not in the deployment ({', '.join(deployment.agencies)})")
        self.name = name
        self.settings = settings
        self.oracle_settings = oracle_settings
        self.deployment = deployment
        self.agency = agency
        self._keystore = keystore
        base = oracle_settings.state_dir or settings.var_dir / "oracles"
        self.directory = base / agency.lower() / name
        self.directory.mkdir(parents=True, exist_ok=True)
        self.state = OracleState(self.directory / "state.db")
        self.log = logging.getLogger(f"oracles.{name}")
        #: Set by :meth:`wake` (e.g. a feed thread that journaled new work) to end an idle wait early.
        self.wakeup = threading.Event()
        self._closers: list[Any] = [self.state]

    # ---- identities

    @property
    def signer_label(self) -> str:
        """Keystore label of the key this oracle signs with."""
        return self.oracle_settings.signer or f"{self.agency.lower()}-signer-0"

    @cached_property
    def keystore(self) -> Keystore:
        """The agency's keystore (password from the environment)."""
        return self._keystore or Keystore.from_settings(self.settings)

    @cached_property
    def client(self) -> LedgerClient:
        """A chain client holding only this oracle's signing key."""
        client = LedgerClient.from_settings(self.settings, self.deployment, self.keystore, labels=[self.signer_label])
        self._closers.append(client)
        return client

    @property
    def signer(self) -> str:
        """Address this oracle signs with."""
        return self.client.addresses[0]

    # ---- journal

    @cached_property
    def outbox(self) -> Outbox:
        """This oracle's private write journal."""
        outbox = Outbox.open(self.directory / "outbox.db")
        self._closers.append(outbox)
        return outbox

    @cached_property
    def worker(self) -> OutboxWorker:
        """Drives :attr:`outbox` entries to final (stepped by :func:`run`)."""
        return OutboxWorker(outbox=self.outbox, client=self.client, idle_sleep=0.0)

    def post(self, key: str, call: LedgerCall) -> OutboxEntry:
        """Journal ``call`` as fact ``key`` (namespaced by the oracle's name): once, whatever happens.

        The same key again returns the existing entry; :func:`run` drives the entry to the chain.
        """
        return self.outbox.submit(key=f"{self.name}:{key}", call=call, signer=self.signer)

    def posted(self, key: str) -> OutboxEntry | None:
        """The journal entry of fact ``key``, if it was posted."""
        return self.outbox.find(f"{self.name}:{key}")

    def drive(self) -> int:
        """Advance journaled facts towards final (only when something was ever posted)."""
        if "outbox" not in self.__dict__:
            return 0
        counts = self.outbox.counts()
        if not any(counts.get(s, 0) for s in EntryState.ACTIVE):
            return 0
        return self.worker.step()

    # ---- read model

    @cached_property
    def indexer(self) -> Indexer:
        """This oracle's own indexer (its SQLite file in :attr:`directory`)."""
        indexer = Indexer.for_deployment(
            self.deployment,
            database=self.directory / "index.db",
            rpc_url=self.settings.effective_rpc_url,
            confirmations=self.settings.confirmations,
        )
        self._closers.append(indexer)
        return indexer

    @cached_property
    def read(self) -> ReadModel:
        """Queries over this oracle's read model (opened after the indexer created the file)."""
        _ = self.indexer
        model = ReadModel.open(self.directory / "index.db")
        self._closers.append(model)
        return model

    def sync(self) -> int:
        """Bring the read model up to the chain head; returns the number of events applied."""
        return self.indexer.poll()

    # ---- content stores

    @cached_property
    def store(self) -> ContentStore:
        """This agency's content store (the configured IPFS node, or the embedded store)."""
        node = self.oracle_settings.ipfs_nodes.get(self.agency)
        return LazyIpfsStore(node) if node else content_store(self.settings)

    @cached_property
    def stores(self) -> dict[str, ContentStore]:
        """Every agency's content store the oracle knows (``LEDGER_ORACLE_IPFS_NODES``), by agency id.

        Without that setting: only this agency's own store.
        """
        nodes = self.oracle_settings.ipfs_nodes
        if not nodes:
            return {self.agency: self.store}
        return {agency: (self.store if agency == self.agency else LazyIpfsStore(api)) for agency, api in nodes.items()}

    def wake(self) -> None:
        """Start the next pass now instead of after the idle interval (thread-safe)."""
        self.wakeup.set()

    # ---- lifecycle

    def on_close(self, resource: Any) -> Any:
        """Close ``resource`` (anything with ``close()``) with the context; returns it."""
        self._closers.append(resource)
        return resource

    def close(self) -> None:
        """Close everything opened (newest first)."""
        for item in reversed(self._closers):
            with contextlib.suppress(Exception):
                item.close()
        self._closers.clear()


def open_context(
    name: str,
    *,
    default_agency: str,
    settings: Settings | None = None,
    oracle_settings: OracleSettings | None = None,
    deployment: Deployment | None = None,
) -> OracleContext:
    """The context of oracle ``name`` from the environment (deploys the embedded default if needed)."""
    try:
        settings = settings or Settings()
        oracle_settings = oracle_settings or OracleSettings()
    except ValueError as exc:  # pydantic's ValidationError
        raise ConfigurationError(str(exc).splitlines()[0] if str(exc) else "invalid settings") from exc
    if deployment is None:
        deployment, _ = ensure_deployed(settings)
    return OracleContext(
        name=name,
        settings=settings,
        oracle_settings=oracle_settings,
        deployment=deployment,
        agency=oracle_settings.agency or default_agency,
    )


# ---------------------------------------------------------------------------------- oracle


class Oracle(ABC):
    """One oracle. Subclasses set :attr:`name` and :attr:`default_agency` and implement :meth:`step`."""

    #: ``python -m oracles <name>``
    name: ClassVar[str]
    #: The agency of the embedded demo consortium this oracle acts for unless configured otherwise.
    default_agency: ClassVar[str]
    #: One line for ``--help``.
    summary: ClassVar[str] = ""

    def __init__(self, ctx: OracleContext) -> None:
        self.ctx = ctx

    @abstractmethod
    def step(self) -> int:
        """Do one bounded pass of work; return how much was done (0 = idle). Dependency failures
        raise (a :data:`DEPENDENCY_ERRORS` member) and are retried by :func:`run` with backoff."""

    def status(self) -> dict[str, Any]:
        """Oracle-specific figures for the status report (counts, last findings)."""
        return {}

    def problems(self) -> list[str]:
        """Standing problems the oracle found (tamper, under-replication, a rewritten history):
        while any is listed the run status is ``degraded`` (health 503) although every pass succeeds."""
        return []

    def close(self) -> None:
        """Release what the oracle opened itself (the context is closed by the caller)."""
        return None


# ---------------------------------------------------------------------------------- run loop


@dataclass
class RunStatus:
    """What the health endpoint and ``status`` command report."""

    oracle: str
    agency: str
    state: str = "starting"  # starting | ok | degraded | stopped
    started_at: float = field(default_factory=time.time)
    last_step_at: float | None = None
    last_success_at: float | None = None
    steps: int = 0
    work_done: int = 0
    consecutive_failures: int = 0
    backoff_seconds: float = 0.0
    last_error: str | None = None
    index_block: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


def _backoff(failures: int, *, base: float, cap: float) -> float:
    """Exponential backoff with full jitter: uniform in [base/2, min(cap, base * 2**(n-1))]."""
    ceiling = min(cap, base * (2 ** max(0, failures - 1)))
    return random.uniform(min(base / 2, ceiling), ceiling)  # noqa: S311 - jitter, not security


class JsonRequestHandler(BaseHTTPRequestHandler):
    """A quiet ``http.server`` handler answering JSON (503 answers carry ``Retry-After``)."""

    def send_json(self, code: int, body: dict[str, Any]) -> None:
        """Send ``body`` as the whole JSON response with status ``code``."""
        data = json.dumps(body, default=str).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if code == 503:
            self.send_header("Retry-After", "5")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        """Requests are not logged (the oracles log structured events instead)."""
        return


def listen(host: str, port: int, handler: type[BaseHTTPRequestHandler], *, what: str) -> ThreadingHTTPServer:
    """An HTTP server bound to ``host:port``; a port that is taken (or an address that cannot be bound)
    is a ConfigurationError saying which endpoint and what to change, not a traceback."""
    try:
        return ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot listen on {host}:{port} for the {what}: {exc.strerror or exc} (choose another port)"
        ) from exc


class _HealthServer:
    """``GET /health`` (200 ok / 503 degraded) and ``GET /status`` (full report) on loopback."""

    def __init__(self, host: str, port: int, report: Any) -> None:
        reporter = report

        class Handler(JsonRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                path = self.path.split("?", 1)[0]
                if path not in ("/health", "/status"):
                    self.send_json(404, {"error": "not-found"})
                    return
                status = reporter()
                code = 200 if status["state"] in ("ok", "starting") else 503
                body = status if path == "/status" else {k: status[k] for k in ("oracle", "agency", "state")}
                self.send_json(code, body)

        self.server = listen(host, port, Handler, what="health endpoint")
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, name="oracle-health", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def _signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM / SIGINT set ``stop`` (main thread only; elsewhere the caller owns ``stop``)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handler(signum: int, _frame: object) -> None:
        stop.set()

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _idle(stop: threading.Event, wakeup: threading.Event, seconds: float) -> None:
    """Wait up to ``seconds``, ending early when ``stop`` or ``wakeup`` is set (wakeup is consumed)."""
    deadline = time.monotonic() + seconds
    while not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0 or wakeup.wait(min(left, 0.2)):
            break
    wakeup.clear()


def run(
    oracle: Oracle,
    *,
    stop: threading.Event | None = None,
    once: bool = False,
    max_steps: int | None = None,
) -> RunStatus:
    """Run ``oracle`` until ``stop`` is set (or SIGTERM / SIGINT), or for one pass with ``once``.

    Each iteration: sync the read model, :meth:`Oracle.step`, drive the journal. Dependency errors
    back off exponentially (jittered, capped by ``LEDGER_ORACLE_BACKOFF_MAX``); any other error is a
    bug and ends the run (raised). The status is persisted after every iteration.
    """
    ctx = oracle.ctx
    config = ctx.oracle_settings
    stop = stop or threading.Event()
    status = RunStatus(oracle=oracle.name, agency=ctx.agency)
    lock = threading.Lock()

    def report() -> dict[str, Any]:
        with lock:
            return status.as_dict()

    health = _HealthServer(config.health_host, config.health_port, report) if config.health_port else None
    if health is not None:
        status.details["health_port"] = health.port
    log_event(ctx.log, "oracle started", oracle=oracle.name, agency=ctx.agency, health_port=health and health.port)
    steps = 0
    try:
        with _signals(stop):
            while not stop.is_set():
                work = 0
                try:
                    work += ctx.sync()
                    work += oracle.step()
                    work += ctx.drive()
                except DEPENDENCY_ERRORS as exc:
                    with lock:
                        status.consecutive_failures += 1
                        status.state = "degraded"
                        status.last_error = f"{type(exc).__name__}: {exc}"
                        status.backoff_seconds = _backoff(
                            status.consecutive_failures, base=min(1.0, config.interval), cap=config.backoff_max
                        )
                        delay = status.backoff_seconds
                    log_event(
                        ctx.log, "dependency failing, backing off", level=logging.WARNING,
                        error=status.last_error, code=getattr(exc, "code", None), backoff=round(delay, 2),
                    )  # fmt: skip
                    ctx.state.set("status", report())
                    if once:
                        return status
                    stop.wait(delay)
                    continue
                now = time.time()
                problems = oracle.problems()
                with lock:
                    status.state = "degraded" if problems else "ok"
                    status.details["problems"] = problems
                    status.steps += 1
                    status.work_done += work
                    status.last_step_at = status.last_success_at = now
                    status.consecutive_failures = 0
                    status.backoff_seconds = 0.0
                    status.last_error = None
                    status.index_block = ctx.indexer.cursor[0] if "indexer" in ctx.__dict__ else None
                    status.details.update(oracle.status())
                ctx.state.set("status", report())
                steps += 1
                if once or (max_steps is not None and steps >= max_steps):
                    break
                if work == 0:
                    _idle(stop, ctx.wakeup, config.interval)
    finally:
        with lock:
            if not (once and status.state == "degraded"):
                status.state = "stopped"
        with contextlib.suppress(Exception):
            ctx.state.set("status", report())
        log_event(ctx.log, "oracle stopped", oracle=oracle.name, steps=status.steps, work=status.work_done)
        if health is not None:
            health.close()
    return status


def read_status(ctx: OracleContext) -> dict[str, Any] | None:
    """The status an oracle last persisted (for ``python -m oracles <name> status``)."""
    value = ctx.state.get("status")
    return value if isinstance(value, dict) else None
