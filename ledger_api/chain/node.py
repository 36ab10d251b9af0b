"""The embedded EVM node: an anvil process supervised by the project, state kept under var/.

anvil loads ``state.json`` at start and dumps it on exit and every ``state_interval`` seconds, so
the chain (blocks, contracts, balances) survives restarts of the ledger.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from ledger_api.errors import ChainUnavailable, ToolchainError

__all__ = ["AnvilNode"]

#: Chain id of the embedded development chain.
EMBEDDED_CHAIN_ID = 31337

#: Handles of nodes started by this process, kept so they are reaped (not garbage-collected while
#: running); a node started by an earlier process is found through its pidfile instead.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class AnvilNode:
    """Start, reuse, stop and probe the embedded anvil."""

    def __init__(self, *, state_dir: Path, port: int, binary: Path | None = None, state_interval: int = 1) -> None:
        self.state_dir = state_dir
        self.port = port
        self.binary = binary or Path(__file__).resolve().parents[2] / "node_modules" / ".bin" / "anvil"
        self.state_interval = state_interval

    @property
    def rpc_url(self) -> str:
        """JSON-RPC endpoint of the node."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def _pidfile(self) -> Path:
        return self.state_dir / "anvil.pid"

    def pid(self) -> int | None:
        """PID of the running node started by us, or ``None``."""
        try:
            pid = int(self._pidfile.read_text())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def chain_id(self) -> int | None:
        """The node's chain id, or ``None`` when nothing answers on the port."""
        try:
            response = httpx.post(
                self.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=2
            )
            return int(response.json()["result"], 16)
        except (httpx.HTTPError, KeyError, ValueError):
            return None

    def start(self, *, timeout: float = 30.0) -> bool:
        """Ensure the node runs; returns ``True`` if it was started now, ``False`` if reused."""
        existing = self.chain_id()
        if existing is not None:
            if existing != EMBEDDED_CHAIN_ID or self.pid() is None:
                raise ChainUnavailable(self.rpc_url, f"port {self.port} is taken by another node (chain id {existing})")
            return False
        if not os.access(self.binary, os.X_OK):
            raise ToolchainError(f"anvil not found at {self.binary}")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.state_dir / "anvil.log", "ab")  # noqa: SIM115 - handed to the child
        command = [
            str(self.binary), "--host", "127.0.0.1", "--port", str(self.port),
            "--chain-id", str(EMBEDDED_CHAIN_ID), "--state", str(self.state_dir / "state.json"),
            "--state-interval", str(self.state_interval), "--accounts", "0", "--silent",
        ]  # fmt: skip
        process = subprocess.Popen(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        _CHILDREN[process.pid] = process
        self._pidfile.write_text(str(process.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ChainUnavailable(
                    self.rpc_url, f"anvil exited with {process.returncode}; see {self.state_dir}/anvil.log"
                )
            if self.chain_id() == EMBEDDED_CHAIN_ID:
                return True
            time.sleep(0.1)
        raise ChainUnavailable(self.rpc_url, f"anvil did not answer within {timeout:.0f}s")

    def stop(self, *, timeout: float = 15.0) -> bool:
        """Stop the node gracefully (anvil dumps its state on SIGTERM); ``True`` if one was running."""
        pid = self.pid()
        if pid is None:
            return False
        # node_modules/.bin/anvil is a Node wrapper around the native binary: signal the whole process
        # group (the node runs in its own session) so the real anvil dumps its state and exits too.
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid() is not None:
            child = _CHILDREN.get(pid)
            if child is not None:
                child.poll()  # reaps our own child so the pid disappears
            time.sleep(0.1)
        if self.pid() is not None:
            _signal_group(pid, signal.SIGKILL)
        child = _CHILDREN.pop(pid, None)
        if child is not None:
            child.wait(timeout=timeout)
        self._pidfile.unlink(missing_ok=True)
        return True


def _signal_group(pid: int, signum: int) -> None:
    """Signal the process group led by ``pid`` (falls back to the process alone)."""
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

