"""``ledger run`` + ``ledger demo`` end to end: real subprocesses, free ports, a temporary var dir.

Starts the supervised consortium, runs the whole demo scenario against it through the HTTP API,
stops it with SIGINT (no process left behind), starts it again (same deployment, the demo's
declarations still there) and stops it again.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger_api.chain.keystore import Keystore
from ledger_api.client import LedgerHttpClient
from ledger_api.config import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
READY = "ledger run: ready"


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _free_range(size: int) -> int:
    """A base port with ``size`` consecutive free ports, below the kernel's ephemeral range (outgoing
    connections take ports from that range at any moment: a block chosen there was taken once)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32_768
    for _ in range(200):
        base = random.randrange(10_000, max(10_001, low - size))
        if all(_free(base + i) for i in range(size)):
            return base
    raise RuntimeError("no free port range")


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Run:
    """One ``ledger run`` subprocess and its log."""

    def __init__(
        self, var: Path, *, api_port: int, anvil_port: int, oracle_base: int, log: Path, extra: tuple[str, ...] = ()
    ) -> None:
        self.log = log
        self.env = {**os.environ, "LEDGER_VAR_DIR": str(var), "LEDGER_ANVIL_PORT": str(anvil_port),
                    "PYTHONPATH": str(REPO), "LEDGER_RPC_URL": ""}  # fmt: skip
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ledger_api.cli", "run", "--port", str(api_port),
                 "--oracle-ports", str(oracle_base), *extra],
                stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=REPO,
            )  # fmt: skip

    def output(self) -> str:
        """Everything it printed so far."""
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 180.0) -> None:
        """Until it prints that it is ready (fails if it exits first)."""
        deadline = time.monotonic() + timeout
        while READY not in self.output():
            assert self.process.poll() is None, f"ledger run exited {self.process.returncode}:\n{self.output()}"
            assert time.monotonic() < deadline, f"ledger run not ready in {timeout} s:\n{self.output()}"
            time.sleep(0.5)

    def interrupt(self) -> set[int]:
        """SIGINT (a Ctrl-C); returns the processes it had started, after it exited."""
        family = _descendants(self.process.pid)
        self.commands = {pid: _cmdline(pid) for pid in family}
        self.process.send_signal(signal.SIGINT)
        assert self.process.wait(timeout=90) == 0, self.output()
        return family


@pytest.fixture
def system(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Ports and a var dir for ``ledger run``; whatever is still running at the end is stopped."""
    var = tmp_path / "var"
    var.mkdir()
    ports = {"api_port": _free_port(), "anvil_port": _free_port(), "oracle_base": _free_range(14)}
    runs: list[Run] = []
    yield {"var": var, "ports": ports, "runs": runs, "tmp": tmp_path}
    for run in runs:
        if run.process.poll() is None:
            run.process.send_signal(signal.SIGINT)
            try:
                run.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                run.process.kill()
                run.process.wait()


def _addresses(output: str) -> dict[str, str]:
    found = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("AgencyRegistry", "ClearanceLedger"):
            found[parts[0]] = parts[1]
    return found


def test_run_demo_stop_and_resume(system: dict[str, Any]) -> None:
    var: Path = system["var"]
    ports = system["ports"]
    started = time.monotonic()

    first = Run(var, **ports, log=system["tmp"] / "run1.log")
    system["runs"].append(first)
    first.wait_ready()
    assert "consortium deployed and bootstrapped" in first.output()
    addresses = _addresses(first.output())
    assert set(addresses) == {"AgencyRegistry", "ClearanceLedger"}
    for label in (
        "cn-tj-customs-signer-0",
        "cn-tj-ciq-lab-signer-0",
        "nl-rtm-customs-signer-0",
        "nl-nvwa-signer-0",
        "consortium-risk-signer-0",
        "consortium-audit-signer-0",
        "trader-tj-electronics",
        "trader-tj-foods",
    ):
        assert label in first.output()
    assert "PRIVATE" not in first.output().upper()
    assert Keystore.from_settings(Settings(var_dir=var))._password not in first.output()  # noqa: SLF001

    # ---- the demo, through the HTTP API
    steps_file = system["tmp"] / "steps.json"
    demo = subprocess.run(
        [sys.executable, "-m", "ledger_api.cli", "demo", "--json", str(steps_file)],
        env=first.env, cwd=REPO, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stdout + demo.stderr
    steps = json.loads(steps_file.read_text())
    lines = demo.stdout.splitlines()
    assert all(f"[{s['number']:02d}]" in demo.stdout for s in steps) and "all" in lines[-1]

    def step(action_prefix: str, actor: str | None = None) -> dict[str, Any]:
        matches = [s for s in steps if s["action"].startswith(action_prefix) and actor in (None, s["actor"])]
        assert matches, f"no step {action_prefix!r} in {lines}"
        return matches[-1]

    fish = step("declares FISH")
    assert fish["status"] == "SUBMITTED" and fish["ref"].startswith("0x")
    channel = step(f"channels {fish['ref'][:10]}")
    assert channel["facts"]["channel"] in ("YELLOW", "RED") and "SANITARY_CHECK" in channel["facts"]["required"]
    assert step(f"accepts {fish['ref'][:10]}")["status"] == "ACCEPTED"
    assert step("signs SANITARY_CHECK PASS off-line")["status"] == "accepted"
    assert step("relays it on chain")["status"] == "recorded"
    assert step("releases, citing")["status"] == "RELEASED"
    green = [s for s in steps if s["actor"] == "risk oracle" and s["status"] == "GREEN"]
    assert green, lines
    assert any(s["status"] == "RELEASED" and s["action"].startswith("accepts") for s in steps)  # released on acceptance
    assert step("holds the consignment")["status"] == "HELD"
    assert step("proposes SEIZE")["status"] == "HELD"  # one signer is not enough
    assert step("approves the seizure")["status"] == "SEIZED"
    amend = step("amends")
    assert "SUPERSEDED" in amend["action"] and amend["status"] == "SUBMITTED"
    assert step("flips byte")["status"] == "tampered on disk"
    assert "active alert" in step("raises an alert")["ref"]
    assert step("GET /status")["facts"]["finding"].startswith("finding:tampered:")
    assert step("fetches the document")["status"].startswith("HTTP 5")
    audit = step("replays")
    assert audit["status"] == "FAILED" and audit["facts"]["errors"] == ["document-tampered"]  # exactly the attack
    assert audit["facts"]["tampered_found"] is True and step("verdict:")["status"] == "as expected"
    channels = audit["facts"]["channels"]
    assert channels.get("match", 0) >= 4 and set(channels) <= {"match"}, channels  # shared with the auditor
    assert (var / "audit" / "report.json").exists()

    # ---- the supervisor reports the integrity watch's health change after the simulated attack
    deadline = time.monotonic() + 60
    while "oracle-integrity is degraded (was ok" not in first.output():
        assert time.monotonic() < deadline, first.output()
        time.sleep(0.5)

    # ---- a bearer token for a demo identity, from the command line
    token = subprocess.run(
        [sys.executable, "-m", "ledger_api.cli", "api", "--url", f"http://127.0.0.1:{ports['api_port']}",
         "--as", "trader-tj-electronics", "token"],
        env=first.env, cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert token.returncode == 0, token.stderr
    with LedgerHttpClient(base_url=f"http://127.0.0.1:{ports['api_port']}", token=token.stdout.strip()) as c:
        assert len(c.declarations()) >= 4

    # ---- a component that dies is restarted
    recorded = json.loads((var / "run.json").read_text())
    os.kill(recorded["children"]["oracle-risk"], signal.SIGKILL)
    deadline = time.monotonic() + 60
    while "oracle-risk restarted" not in first.output():
        assert time.monotonic() < deadline, first.output()
        time.sleep(0.5)
    while json.loads((var / "run.json").read_text())["children"]["oracle-risk"] == recorded["children"]["oracle-risk"]:
        assert time.monotonic() < deadline, "run.json not updated after the restart"
        time.sleep(0.5)
    risk_health = recorded["oracles"]["risk"]
    while True:
        try:
            if httpx.get(risk_health, timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline + 60, first.output()
        time.sleep(0.5)

    # ---- the node dies (the native anvil under its Node wrapper): restarted from its saved state
    wrapper = int((var / "anvil" / "anvil.pid").read_text())
    for native in _descendants(wrapper):
        os.kill(native, signal.SIGKILL)
    while "restarting it from its saved state" not in first.output():
        assert time.monotonic() < deadline + 90, first.output()
        time.sleep(0.5)
    while httpx.get(f"http://127.0.0.1:{ports['api_port']}/health", timeout=5).json()["status"] != "ok":
        assert time.monotonic() < deadline + 150, first.output()
        time.sleep(0.5)

    # ---- Ctrl-C: everything stops, nothing is left behind
    family = first.interrupt()
    assert len(family) >= 6, family  # anvil (+ its native binary), the API and four oracles
    assert not [pid for pid in family if _alive(pid)]
    assert "ledger run: stopped" in first.output()
    assert not (var / "run.json").exists()

    # ---- again: same deployment, same state
    second = Run(var, **ports, log=system["tmp"] / "run2.log")
    system["runs"].append(second)
    second.wait_ready()
    assert "consortium resumed" in second.output()
    assert _addresses(second.output()) == addresses
    key = bytes(Keystore.from_settings(Settings(var_dir=var)).signer("trader-tj-foods").key)
    with LedgerHttpClient(base_url=f"http://127.0.0.1:{ports['api_port']}", private_key=key) as trader:
        mine = {d["declaration_id"]: d["status"] for d in trader.declarations()}
    assert mine.get(fish["ref"]) == "RELEASED"
    # ---- a second `ledger run` on the same var dir is refused while one runs
    twice = subprocess.run(
        [sys.executable, "-m", "ledger_api.cli", "run", "--port", str(_free_port()), "--oracle-ports",
         str(_free_range(5))],
        env=second.env, cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert twice.returncode == 1 and "already running" in twice.stderr

    # ---- the supervisor is SIGKILLed: the next run stops what it left and resumes
    orphans = _descendants(second.process.pid)
    second.process.kill()
    second.process.wait()
    assert [pid for pid in orphans if _alive(pid)]  # its components outlive it (own sessions)
    third = Run(var, **ports, log=system["tmp"] / "run3.log")
    system["runs"].append(third)
    third.wait_ready()
    assert "left by an earlier run that was killed" in third.output() and "consortium resumed" in third.output()
    family = third.interrupt()
    assert not [pid for pid in family | orphans if _alive(pid)]
    assert time.monotonic() - started < 300


def test_run_with_js_ipfs_demo_stop_and_resume(system: dict[str, Any]) -> None:
    """``--ipfs``: a js-ipfs daemon is the content store (started first, stopped after the API and oracles)."""
    var: Path = system["var"]
    ports = system["ports"]
    first = Run(var, **ports, log=system["tmp"] / "run1.log", extra=("--ipfs",))
    system["runs"].append(first)
    first.wait_ready()
    assert f"/ip4/127.0.0.1/tcp/{ports['oracle_base'] + 10}/http" in first.output()
    steps_file = system["tmp"] / "steps.json"
    demo = subprocess.run(
        [sys.executable, "-m", "ledger_api.cli", "demo", "--json", str(steps_file)],
        env=first.env, cwd=REPO, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stdout + demo.stderr
    steps = json.loads(steps_file.read_text())
    tamper = next(s for s in steps if s["action"].startswith("flips byte"))
    assert "/ipfs/repo/blocks/" in tamper["ref"] and not (var / "store" / "pins").exists()
    audit = next(s for s in steps if s["action"].startswith("replays"))
    assert audit["facts"]["errors"] == ["document-tampered"] and set(audit["facts"]["channels"]) == {"match"}
    fish = next(s for s in steps if s["action"].startswith("declares FISH"))
    family = first.interrupt()
    assert "ipfs" in {cmd.split()[0] for cmd in first.commands.values() if cmd}, (
        first.commands
    )  # js-ipfs sets its title
    assert not [pid for pid in family if _alive(pid)]

    refused = subprocess.run(
        [sys.executable, "-m", "ledger_api.cli", "run", "--port", str(ports["api_port"]),
         "--oracle-ports", str(ports["oracle_base"])],
        env=first.env, cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 1 and "with --ipfs" in refused.stderr

    second = Run(var, **ports, log=system["tmp"] / "run2.log", extra=("--ipfs",))
    system["runs"].append(second)
    second.wait_ready()
    assert "consortium resumed" in second.output()
    key = bytes(Keystore.from_settings(Settings(var_dir=var)).signer("cn-tj-customs-signer-0").key)
    with LedgerHttpClient(base_url=f"http://127.0.0.1:{ports['api_port']}", private_key=key) as customs:
        view = customs.declaration(fish["ref"])
        packing = next(d for d in view["documents"] if d["document_type"] == 2)
        assert customs.fetch_document(packing["sha256"]).startswith(b"%PDF packing list")  # from the daemon's repo
    family = second.interrupt()
    assert not [pid for pid in family if _alive(pid)]
