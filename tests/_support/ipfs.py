"""Real js-ipfs daemons on loopback for tests (integration, oracles, faults).

js-ipfs 0.66.1 (``scripts/ipfs``, installed by ``scripts/ipfs/setup.sh``), each daemon with a
temporary repo, free ports for API / gateway / gRPC / swarm bound to 127.0.0.1, no bootstrap
peers and no MDNS. :func:`start_daemons` starts several in parallel and connects them;
:func:`stop_daemon` / :func:`restart_daemon` take one down and bring it back on the same repo
and ports (its pins survive, as a Kubo node's would).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ledger_api.documents import IpfsStore

REPO_ROOT = Path(__file__).resolve().parents[2]
IPFS_TOOL_DIR = REPO_ROOT / "scripts" / "ipfs"
JSIPFS = IPFS_TOOL_DIR / "node_modules" / ".bin" / "jsipfs"
POLYFILL = IPFS_TOOL_DIR / "polyfill.cjs"
START_TIMEOUT = 90.0


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, kw_only=True)
class IpfsDaemon:
    """A running js-ipfs daemon and an :class:`IpfsStore` talking to it."""

    name: str
    repo: Path
    api: str  # RPC multiaddr
    api_url: str  # http://127.0.0.1:PORT
    swarm: str  # swarm multiaddr incl. /p2p/<peer id>
    store: IpfsStore
    process: subprocess.Popen[bytes]
    log: Path


def _env(repo: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["IPFS_PATH"] = str(repo)
    env["NODE_OPTIONS"] = f"--require={POLYFILL}"
    env.pop("IPFS_API", None)
    return env


def _init_repo(repo: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(JSIPFS), "init", "--profile", "test"], env=_env(repo), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def _configure(repo: Path) -> None:
    ports = {k: free_port() for k in ("swarm", "api", "gateway", "rpc")}
    config_path = repo / "config"
    config = json.loads(config_path.read_text())
    config["Addresses"] = {
        "Swarm": [f"/ip4/127.0.0.1/tcp/{ports['swarm']}"],
        "Announce": [],
        "NoAnnounce": [],
        "API": f"/ip4/127.0.0.1/tcp/{ports['api']}",
        "Gateway": f"/ip4/127.0.0.1/tcp/{ports['gateway']}",
        "RPC": f"/ip4/127.0.0.1/tcp/{ports['rpc']}",
        "Delegates": [],
    }
    config["Bootstrap"] = []
    config.setdefault("Discovery", {})["MDNS"] = {"Enabled": False, "Interval": 10}
    config["Discovery"]["webRTCStar"] = {"Enabled": False}
    config_path.write_text(json.dumps(config, indent=2))


def _ports(repo: Path) -> dict[str, int]:
    addresses = json.loads((repo / "config").read_text())["Addresses"]
    return {"api": int(addresses["API"].rsplit("/", 1)[1]), "swarm": int(addresses["Swarm"][0].rsplit("/", 1)[1])}


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _wait_ready(name: str, api_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"IPFS daemon {name} exited early:\n{log.read_text()[-3000:]}")
        try:
            if httpx.post(f"{api_url}/api/v0/id", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"IPFS daemon {name} not ready after {START_TIMEOUT}s:\n{log.read_text()[-3000:]}")


def _launch(name: str, repo: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as log_fh:
        return subprocess.Popen([str(JSIPFS), "daemon"], env=_env(repo), stdout=log_fh, stderr=subprocess.STDOUT)


def _attach(name: str, repo: Path, log: Path, process: subprocess.Popen[bytes]) -> IpfsDaemon:
    ports = _ports(repo)
    api_url = f"http://127.0.0.1:{ports['api']}"
    _wait_ready(name, api_url, process, log)
    api = f"/ip4/127.0.0.1/tcp/{ports['api']}/http"
    store = IpfsStore(api, fetch_timeout=30)
    peer = store.peer_id()
    return IpfsDaemon(
        name=name, repo=repo, api=api, api_url=api_url, swarm=f"/ip4/127.0.0.1/tcp/{ports['swarm']}/p2p/{peer}",
        store=store, process=process, log=log,
    )  # fmt: skip


def require_jsipfs() -> None:
    """Fail the test (not skip) when js-ipfs is not installed: CI must run these tests."""
    if shutil.which("node") is None or not JSIPFS.exists():
        pytest.fail("js-ipfs is not installed: run scripts/ipfs/setup.sh (needs node >= 20 and npm)", pytrace=False)


def start_daemons(base: Path, names: list[str]) -> list[IpfsDaemon]:
    """Start one daemon per name under ``base`` (in parallel) and connect each to the first."""
    require_jsipfs()
    repos = [base / n for n in names]
    inits = [_init_repo(r) for r in repos]  # in parallel: each init takes a few seconds
    for name, init in zip(names, inits, strict=True):
        out, _ = init.communicate(timeout=120)
        if init.returncode != 0:
            raise RuntimeError(f"jsipfs init for {name} failed:\n{out.decode(errors='replace')}")
    launched: list[tuple[str, Path, Path, subprocess.Popen[bytes]]] = []
    daemons: list[IpfsDaemon] = []
    try:
        for name, repo in zip(names, repos, strict=True):
            _configure(repo)
            log = base / f"{name}.log"
            launched.append((name, repo, log, _launch(name, repo, log)))
        for name, repo, log, process in launched:
            daemons.append(_attach(name, repo, log, process))
        for daemon in daemons[1:]:
            daemon.store.swarm_connect(daemons[0].swarm)
    except BaseException:
        for *_rest, process in launched:
            _terminate(process)
        raise
    return daemons


def stop_daemon(daemon: IpfsDaemon) -> None:
    """Stop ``daemon`` (SIGTERM, then SIGKILL); its repo is kept."""
    daemon.store.close()
    _terminate(daemon.process)


def restart_daemon(daemon: IpfsDaemon, *, peers: Sequence[IpfsDaemon] = ()) -> IpfsDaemon:
    """Start ``daemon`` again on its repo and ports; reconnect it to ``peers``. Returns the new handle."""
    process = _launch(daemon.name, daemon.repo, daemon.log)
    fresh = _attach(daemon.name, daemon.repo, daemon.log, process)
    for peer in peers:
        fresh.store.swarm_connect(peer.swarm)
    return fresh


def stop_all(daemons: list[IpfsDaemon]) -> None:
    """Stop every daemon (ignores ones already stopped)."""
    for daemon in daemons:
        try:
            daemon.store.close()
        except Exception:  # noqa: BLE001, S110 - best effort at teardown
            pass
        _terminate(daemon.process)
