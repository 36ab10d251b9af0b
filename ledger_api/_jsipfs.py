"""A local js-ipfs daemon for ``ledger run --ipfs``: repo under ``var/ipfs``, loopback only.

js-ipfs 0.66 is installed by ``scripts/ipfs/setup.sh`` (``make dev``) into ``scripts/ipfs``. The repo
is created once (profile ``test``: no bootstrap peers, no MDNS) and its addresses are rewritten on
every start so the daemon listens on the ports ``ledger run`` chose, on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ledger_api.errors import ToolchainError

__all__ = ["JsIpfs"]

_TOOL_DIR = Path(__file__).resolve().parents[1] / "scripts" / "ipfs"


@dataclass(frozen=True, kw_only=True)
class JsIpfs:
    """One js-ipfs daemon: its repo and its four loopback ports (API, gateway, RPC, swarm)."""

    repo: Path
    api_port: int
    gateway_port: int
    rpc_port: int
    swarm_port: int
    tool_dir: Path = _TOOL_DIR

    @property
    def binary(self) -> Path:
        """The ``jsipfs`` command."""
        return self.tool_dir / "node_modules" / ".bin" / "jsipfs"

    @property
    def api(self) -> str:
        """Kubo-RPC multiaddr of the daemon (``LEDGER_IPFS_API``)."""
        return f"/ip4/127.0.0.1/tcp/{self.api_port}/http"

    @property
    def api_url(self) -> str:
        """HTTP base URL of the RPC API."""
        return f"http://127.0.0.1:{self.api_port}"

    def env(self) -> dict[str, str]:
        """Environment the ``jsipfs`` command needs (repo path, the Node polyfill)."""
        return {"IPFS_PATH": str(self.repo), "NODE_OPTIONS": f"--require={self.tool_dir / 'polyfill.cjs'}"}

    def argv(self) -> tuple[str, ...]:
        """The daemon's command line."""
        return (str(self.binary), "daemon")

    def prepare(self, *, timeout: float = 180.0) -> bool:
        """Create the repo once and write the addresses; returns ``True`` when the repo was created now."""
        if shutil.which("node") is None or not self.binary.exists():
            raise ToolchainError(f"js-ipfs is not installed at {self.binary}: run scripts/ipfs/setup.sh (make dev)")
        created = False
        if not (self.repo / "config").exists():
            self.repo.parent.mkdir(parents=True, exist_ok=True)
            done = subprocess.run(
                [str(self.binary), "init", "--profile", "test"], env={**os.environ, **self.env()},
                capture_output=True, timeout=timeout, check=False,
            )  # fmt: skip
            if done.returncode != 0:
                raise ToolchainError(f"jsipfs init failed: {done.stdout.decode(errors='replace')[-500:]}")
            created = True
        config_path = self.repo / "config"
        config = json.loads(config_path.read_text())
        config["Addresses"] = {
            "Swarm": [f"/ip4/127.0.0.1/tcp/{self.swarm_port}"],
            "Announce": [],
            "NoAnnounce": [],
            "API": f"/ip4/127.0.0.1/tcp/{self.api_port}",
            "Gateway": f"/ip4/127.0.0.1/tcp/{self.gateway_port}",
            "RPC": f"/ip4/127.0.0.1/tcp/{self.rpc_port}",
            "Delegates": [],
        }
        config["Bootstrap"] = []
        config.setdefault("Discovery", {})["MDNS"] = {"Enabled": False, "Interval": 10}
        config["Discovery"]["webRTCStar"] = {"Enabled": False}
        config_path.write_text(json.dumps(config, indent=2))
        return created

    def block_file(self, block_key: str) -> Path | None:
        """The repo file holding the block with storage key ``block_key`` (base32 multihash), if any."""
        for path in (self.repo / "blocks").glob(f"*/{block_key}.data"):
            return path
        return None
