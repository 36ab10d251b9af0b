"""Fixtures that start real daemons on loopback for the integration tests.

IPFS: two js-ipfs 0.66.1 daemons (``scripts/ipfs``, installed by ``scripts/ipfs/setup.sh``), each
with a temporary repo, free ports for API / gateway / gRPC / swarm bound to 127.0.0.1, no
bootstrap peers and no MDNS; they are connected to each other before the tests run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
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


def _free_port() -> int:
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
        [str(JSIPFS), "init", "--profile", "test"],
        env=_env(repo),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _configure(repo: Path) -> dict[str, int]:
    ports = {k: _free_port() for k in ("swarm", "api", "gateway", "rpc")}
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
    return ports


def _stop(process: subprocess.Popen[bytes]) -> None:
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


@pytest.fixture(scope="session")
def ipfs_daemons(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[IpfsDaemon]]:
    """Two connected js-ipfs daemons on loopback (session-wide: they take ~10 s to start)."""
    if shutil.which("node") is None or not JSIPFS.exists():
        pytest.fail(
            "js-ipfs is not installed: run scripts/ipfs/setup.sh (needs node >= 20 and npm)",
            pytrace=False,
        )
    base = tmp_path_factory.mktemp("ipfs")
    names = ["agency-a", "agency-b"]
    repos = [base / n for n in names]
    inits = [_init_repo(r) for r in repos]  # in parallel: each init takes a few seconds
    for name, init in zip(names, inits, strict=True):
        out, _ = init.communicate(timeout=120)
        if init.returncode != 0:
            raise RuntimeError(f"jsipfs init for {name} failed:\n{out.decode(errors='replace')}")
    started: list[tuple[str, Path, dict[str, int], subprocess.Popen[bytes], Path]] = []
    try:
        for name, repo in zip(names, repos, strict=True):
            ports = _configure(repo)
            log = base / f"{name}.log"
            with open(log, "wb") as log_fh:
                process = subprocess.Popen(
                    [str(JSIPFS), "daemon"],
                    env=_env(repo),
                    stdout=log_fh,
                    stderr=subprocess.STDOUT,
                )
            started.append((name, repo, ports, process, log))
        daemons = []
        for name, repo, ports, process, log in started:
            api_url = f"http://127.0.0.1:{ports['api']}"
            _wait_ready(name, api_url, process, log)
            api = f"/ip4/127.0.0.1/tcp/{ports['api']}/http"
            store = IpfsStore(api, fetch_timeout=30)
            peer = store.peer_id()
            daemons.append(
                IpfsDaemon(
                    name=name,
                    repo=repo,
                    api=api,
                    api_url=api_url,
                    swarm=f"/ip4/127.0.0.1/tcp/{ports['swarm']}/p2p/{peer}",
                    store=store,
                    process=process,
                    log=log,
                )
            )
        daemons[1].store.swarm_connect(daemons[0].swarm)
        yield daemons
        for daemon in daemons:
            daemon.store.close()
    finally:
        for _name, _repo, _ports, process, _log in started:
            _stop(process)
