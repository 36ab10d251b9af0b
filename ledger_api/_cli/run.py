"""``ledger run``: the whole embedded consortium in one command, supervised until Ctrl-C.

Starts (or resumes) the embedded anvil under ``var/anvil``, deploys and bootstraps the demo
consortium once, then runs the API (``ledger serve``) and the oracles that make sense on one
embedded content store (integrity, risk, bridge, witness) as child processes with their logs under
``var/logs``; restarts any that dies (backoff), restarts anvil if it dies, and on Ctrl-C / SIGTERM
stops everything in reverse order, anvil last with its state saved. ``var/run.json`` records the
URLs while it runs (``ledger demo`` reads it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from ledger_api._cli._common import load_settings
from ledger_api._jsipfs import JsIpfs
from ledger_api._supervisor import ChildSpec, Supervisor
from ledger_api.chain.consortium import ConsortiumSpec, default_consortium
from ledger_api.chain.deploy import Deployment, ensure_deployed
from ledger_api.chain.node import AnvilNode
from ledger_api.config import Settings
from ledger_api.errors import ConfigurationError

__all__ = ["RUN_FILE", "ORACLE_PLAN", "register"]

#: Where a running ``ledger run`` records its URLs, relative to ``var_dir``.
RUN_FILE = "run.json"


@dataclass(frozen=True)
class _OraclePlan:
    name: str
    agency: str  # the oracle's default agency; its signer 0 sends the oracle's transactions
    port_offset: int  # health port = base + offset


#: The oracles ``ledger run`` supervises on the embedded store. Replication is left out: with one
#: shared store there is nothing to replicate to (see docs/oracles/replication.md).
ORACLE_PLAN = (
    _OraclePlan("integrity", "CONSORTIUM-AUDIT", 1),
    _OraclePlan("risk", "CONSORTIUM-RISK", 2),
    _OraclePlan("bridge", "NL-RTM-CUSTOMS", 3),
    _OraclePlan("witness", "CONSORTIUM-AUDIT", 4),
)
#: Seconds between oracle polls when idle (the oracles' default is 5 s; the demo wants quicker answers).
_ORACLE_INTERVAL = "2"
#: Full re-check period of the integrity watch under ``ledger run`` (the default is 300 s).
_INTEGRITY_RECHECK = "60"


def register(subparsers: Any) -> None:
    """Add ``run`` to the ``ledger`` command."""
    run = subparsers.add_parser(
        "run",
        help="run the whole embedded consortium (anvil, API, oracles) until Ctrl-C",
        description="Start or resume the embedded consortium under LEDGER_VAR_DIR and supervise it until Ctrl-C.",
    )
    run.add_argument("--host", default="127.0.0.1", help="interface of the API (default %(default)s)")
    run.add_argument("--port", type=int, default=8000, help="API port (default %(default)s)")
    run.add_argument(
        "--oracle-ports",
        type=int,
        default=9100,
        metavar="BASE",
        help="bridge feed on BASE, oracle health endpoints on BASE+1..BASE+4 (default %(default)s)",
    )
    run.add_argument("--health-timeout", type=float, default=120.0, help="seconds each component may take to start")
    run.add_argument(
        "--ipfs",
        action="store_true",
        help="content store: a local js-ipfs daemon (repo var/ipfs, API on BASE+10) instead of var/store",
    )
    run.set_defaults(handler=_run)


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _labels(spec: ConsortiumSpec, record: Deployment) -> dict[str, tuple[str, str, str]]:
    """Keystore label -> (address, what it is, who holds it) for every demo identity."""
    oracle_keys: dict[str, list[str]] = {}
    for plan in ORACLE_PLAN:
        oracle_keys.setdefault(f"{plan.agency.lower()}-signer-0", []).append(plan.name)
    identities: dict[str, tuple[str, str, str]] = {}
    for agency in spec.agencies:
        roles = ",".join(role.name for role in agency.roles)
        for n, address in enumerate(record.agencies[agency.agency_id].signers):
            label = agency.signer_label(n)
            holders = oracle_keys.get(label)
            custody = "oracle " + "+".join(holders) if holders else "API"
            identities[label] = (address, f"{agency.agency_id} ({roles})", custody)
    for trader in spec.traders:
        kind = "trader" + (", AEO" if trader.aeo else "") + f", registered by {trader.registrar}"
        identities[trader.label] = (record.traders[trader.label], kind, "API")
    for n, address in enumerate(record.governors):
        identities[f"governor-{n}"] = (address, f"governor ({record.threshold}-of-{len(record.governors)})", "API")
    return identities


def _api_signer_labels(identities: dict[str, tuple[str, str, str]]) -> list[str]:
    """Keys the API signs with: every agency signer and trader key except those an oracle sends with
    (one journal per signing key, docs/outbox.md). Governor keys are the keystore's, not the outbox's."""
    return sorted(
        label for label, (_, _, custody) in identities.items() if custody == "API" and not label.startswith("governor-")
    )


def _banner(
    settings: Settings,
    record: Deployment,
    created: bool,
    urls: dict[str, Any],
    identities: dict[str, tuple[str, str, str]],
) -> str:
    var = settings.var_dir
    lines = [
        "",
        f"ledger run: consortium {'deployed and bootstrapped' if created else 'resumed'} on chain {record.chain_id} "
        f"(state in {var}/anvil, logs in {var}/logs)",
        f"  AgencyRegistry   {record.registry}",
        f"  ClearanceLedger  {record.ledger}",
        "",
        f"  {'component':<18} URL",
        f"  {'anvil (JSON-RPC)':<18} {urls['rpc']}",
        f"  {'API':<18} {urls['api']}",
        f"  {'OpenAPI':<18} {urls['api']}/openapi.json   (health {urls['api']}/health)",
        f"  {'web pages':<18} {urls['api']}/   (sign in with an API token, below)",
    ]
    for name, url in urls["oracles"].items():
        lines.append(f"  {'oracle ' + name:<18} {url}")
    lines.append(f"  {'bridge feed':<18} {urls['feed']}/v1/stamps   (partners POST EIP-712-signed stamps)")
    store = f"js-ipfs {urls['ipfs_api']} (repo {urls['ipfs_repo']})" if "ipfs_api" in urls else f"embedded, {var}/store"
    lines.append(f"  {'content store':<18} {settings.ipfs_api or store}")
    lines += ["", f"  {'identity (keystore label)':<28} {'address':<43} {'what':<66} signs via"]
    for label, (address, kind, custody) in identities.items():
        lines.append(f"  {label:<28} {address:<43} {kind:<66} {custody}")
    lines += [
        "",
        f"  Keys are encrypted in {var}/keys (development password in {var}/keys/.password; never printed).",
        "  Every request is signed with one of these keys (docs/api.md); for an API token (web pages, curl):",
        f"    ledger api --url {urls['api']} --as trader-tj-electronics token",
        f"  Scenario: ledger demo --base-url {urls['api']}        Stop: Ctrl-C (state is kept; run again to resume)",
        "",
    ]
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    settings = load_settings()
    if not settings.embedded:
        raise ConfigurationError(
            "`ledger run` runs the embedded consortium; against an external node (LEDGER_RPC_URL) start each "
            "component on its own: `ledger serve`, `ledger oracle NAME run` (docs/operations.md)"
        )
    var = settings.var_dir.resolve()
    base = args.oracle_ports
    ports = {"API": (args.host, args.port), "bridge feed": ("127.0.0.1", base)}
    ports |= {f"{p.name} health": ("127.0.0.1", base + p.port_offset) for p in ORACLE_PLAN}
    ipfs: JsIpfs | None = None
    if args.ipfs:
        if settings.ipfs_api:
            raise ConfigurationError("--ipfs starts its own daemon; unset LEDGER_IPFS_API (or drop --ipfs to use it)")
        ipfs = JsIpfs(repo=var / "ipfs" / "repo", api_port=base + 10, gateway_port=base + 11, rpc_port=base + 12,
                      swarm_port=base + 13)  # fmt: skip
        ports |= {f"js-ipfs {what}": ("127.0.0.1", base + 10 + i) for i, what in enumerate(("API", "gateway", "RPC"))}
        ports["js-ipfs swarm"] = ("127.0.0.1", base + 13)
    if not settings.ipfs_api:
        _check_store_mode(var, "ipfs" if args.ipfs else "embedded")
    _stop_leftovers(var / RUN_FILE)
    busy = [f"{what} {host}:{port}" for what, (host, port) in ports.items() if not _port_free(host, port)]
    if busy:
        raise ConfigurationError(f"port(s) in use: {', '.join(busy)} (choose others with --port / --oracle-ports)")

    stopping: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    node = AnvilNode(state_dir=var / "anvil", port=settings.anvil_port, binary=settings.anvil_binary)
    supervisor: Supervisor | None = None
    run_file = var / RUN_FILE
    try:
        print(f"ledger run: starting the embedded anvil on {node.rpc_url} (state in {var}/anvil)", flush=True)
        node.start()
        record, created = ensure_deployed(settings)
        spec = default_consortium()
        identities = _labels(spec, record)
        env = {
            "LEDGER_VAR_DIR": str(var),
            "LEDGER_ANVIL_PORT": str(settings.anvil_port),
            "LEDGER_RPC_URL": "",
            "PYTHONUNBUFFERED": "1",
        }
        api_url = f"http://{args.host}:{args.port}"
        urls: dict[str, Any] = {"rpc": node.rpc_url, "api": api_url, "feed": f"http://127.0.0.1:{base}", "oracles": {}}
        specs = []
        if ipfs is not None:
            print(f"ledger run: preparing the js-ipfs repo in {ipfs.repo}", flush=True)
            ipfs.prepare()
            env["LEDGER_IPFS_API"] = ipfs.api
            urls |= {"ipfs_api": ipfs.api, "ipfs_repo": str(ipfs.repo)}
            specs.append(
                ChildSpec(
                    name="ipfs",
                    log=var / "logs" / "ipfs.log",
                    health_url=f"{ipfs.api_url}/api/v0/id",
                    argv=ipfs.argv(),
                    env=ipfs.env(),
                    any_status_healthy=True,
                )
            )
        specs += [
            ChildSpec(
                name="api",
                log=var / "logs" / "api.log",
                health_url=f"{api_url}/health",
                argv=(sys.executable, "-m", "ledger_api.cli", "serve", "--host", args.host, "--port", str(args.port)),
                env=env | {"LEDGER_SIGNER_LABELS": json.dumps(_api_signer_labels(identities))},
            )
        ]
        for plan in ORACLE_PLAN:
            port = base + plan.port_offset
            extra = {"LEDGER_ORACLE_INTERVAL": _ORACLE_INTERVAL}
            if plan.name == "bridge":
                extra["LEDGER_ORACLE_FEED_PORT"] = str(base)
            if plan.name == "integrity":
                extra["LEDGER_ORACLE_INTEGRITY_RECHECK"] = _INTEGRITY_RECHECK
            urls["oracles"][plan.name] = f"http://127.0.0.1:{port}/health"
            specs.append(
                ChildSpec(
                    name=f"oracle-{plan.name}",
                    log=var / "logs" / f"oracle-{plan.name}.log",
                    health_url=urls["oracles"][plan.name],
                    env=env | extra,
                    argv=(sys.executable, "-m", "oracles", plan.name, "run", "--health-port", str(port)),
                )
            )
        supervisor = Supervisor(specs, log=lambda line: print(line, flush=True))
        what = ("js-ipfs, " if ipfs is not None else "") + f"the API and {len(ORACLE_PLAN)} oracles"
        print(f"ledger run: starting {what} (logs in {var}/logs)", flush=True)
        supervisor.start(health_timeout=args.health_timeout, stop=lambda: bool(stopping))

        def record_run() -> None:
            children = {c.spec.name: c.pid for c in supervisor.children}
            _write_atomic(run_file, json.dumps({**urls, "pid": os.getpid(), "children": children}, indent=2) + "\n")

        record_run()
        print(_banner(settings, record, created, urls, identities), flush=True)
        print("ledger run: ready", flush=True)
        _watch(supervisor, node, stopping, on_restart=record_run)
    except KeyboardInterrupt:
        pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        print("ledger run: stopping (API and oracles, then anvil with its state saved)", flush=True)
        if supervisor is not None:
            supervisor.stop()
        run_file.unlink(missing_ok=True)
        node.stop()
        print("ledger run: stopped", flush=True)
    return 0


def _watch(supervisor: Supervisor, node: AnvilNode, stopping: list[int], *, on_restart: Callable[[], None]) -> None:
    """Until a signal: restart dead children (backoff) and the node when it stops answering; report
    changes of a component's health (every 10 s); ``on_restart`` after a child got a new pid."""
    node_failures = 0
    next_node_check = next_health_check = 0.0
    health: dict[str, str] = {}
    pids = [c.pid for c in supervisor.children]
    while not stopping:
        supervisor.poll()
        if [c.pid for c in supervisor.children] != pids:
            pids = [c.pid for c in supervisor.children]
            if all(pid is not None for pid in pids):
                on_restart()
        now = time.monotonic()
        if now >= next_health_check:
            next_health_check = now + 10.0
            current = supervisor.health()
            for name, state in current.items():
                if health and state != health.get(name):
                    log = next(c.spec.log for c in supervisor.children if c.spec.name == name)
                    print(f"ledger run: {name} is {state} (was {health.get(name)}; log: {log})", flush=True)
            health = current
        if now >= next_node_check:
            next_node_check = now + 2.0
            node_failures = 0 if node.chain_id() is not None else node_failures + 1
            if node_failures >= 2:
                print(
                    "ledger run: the embedded anvil stopped answering; restarting it from its saved state", flush=True
                )
                node.stop(timeout=5)
                node.start()
                node_failures = 0
        time.sleep(0.25)


def _stop_leftovers(run_file: Path, *, timeout: float = 15.0) -> None:
    """After a supervisor that was killed (``run.json`` left behind, its pid gone): stop the components
    it had started, which still run in their own sessions. Raises when that supervisor still runs."""
    try:
        recorded = json.loads(run_file.read_text())
    except (FileNotFoundError, ValueError):
        return
    supervisor_pid = int(recorded.get("pid", 0))
    if _is_running(supervisor_pid) and " run" in _cmdline(supervisor_pid):
        raise ConfigurationError(f"`ledger run` is already running for this var dir (pid {recorded['pid']})")
    leftovers = []
    for pid in (int(p) for p in recorded.get("children", {}).values() if p):
        try:
            ours = any(mark in _cmdline(pid) for mark in ("ledger_api.cli serve", "-m oracles", "ipfs"))
            if _is_running(pid) and os.getpgid(pid) == pid and ours:  # still the session leader we started
                os.killpg(pid, signal.SIGTERM)
                leftovers.append(pid)
        except (ProcessLookupError, PermissionError):
            continue
    deadline = time.monotonic() + timeout
    while any(_is_running(pid) for pid in leftovers) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    if leftovers:
        print(f"ledger run: stopped {len(leftovers)} component(s) left by an earlier run that was killed", flush=True)
    run_file.unlink(missing_ok=True)


def _cmdline(pid: int) -> str:
    """The command line of ``pid`` (empty when unknown)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _is_running(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    if pid <= 0:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return state != "Z"


def _check_store_mode(var: Path, mode: str) -> None:
    """Refuse to switch one var dir between the embedded store and js-ipfs: documents live in one of them."""
    marker = var / "content-store"
    if marker.exists():
        recorded = marker.read_text().strip()
        if recorded != mode:
            flag = "with --ipfs" if recorded == "ipfs" else "without --ipfs"
            raise ConfigurationError(f"{var} keeps its documents in the {recorded} store: run `ledger run` {flag}")
        return
    if mode == "ipfs" and (var / "api" / "documents.db").exists():
        raise ConfigurationError(
            f"{var} already holds documents in the embedded store: run `ledger run` without --ipfs"
        )
    var.mkdir(parents=True, exist_ok=True)
    marker.write_text(mode + "\n")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
