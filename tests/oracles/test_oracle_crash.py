"""SIGKILL an oracle at random points while it posts facts: every fact reaches the chain exactly once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from ledger_api.chain.events import EventDecoder
from tests._support.recovery import record_recovery
from tests.oracles._crash_child import subject
from tests.oracles.conftest import Ledger

COUNT = 120
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _life(ledger: Ledger, kill_after_steps: int | None) -> tuple[bool, str]:
    """Start the child; SIGKILL it after ``kill_after_steps`` progress lines (None: let it finish)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.oracles._crash_child", str(ledger.settings.var_dir),
         str(ledger.settings.anvil_port), str(COUNT)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    steps, output = 0, []
    for line in proc.stdout:
        output.append(line)
        if line.startswith("STEP"):
            steps += 1
            if kill_after_steps is not None and steps >= kill_after_steps:
                time.sleep(random.uniform(0, 0.02))  # noqa: S311 - test randomness
                proc.send_signal(signal.SIGKILL)
                break
    proc.wait(timeout=120)
    output.append(proc.stdout.read())
    proc.stdout.close()
    return proc.returncode == -signal.SIGKILL, "".join(output)


@pytest.mark.integration
@pytest.mark.faults
def test_an_oracle_killed_at_random_points_posts_every_fact_exactly_once(ledger: Ledger) -> None:
    random.seed(20261123)
    kills = 0
    for _ in range(4):
        killed, _out = _life(ledger, kill_after_steps=random.randint(1, 3))
        kills += killed
    assert kills >= 3, "the child must be killed mid-run"
    restarted = time.monotonic()
    killed, output = _life(ledger, kill_after_steps=None)
    assert not killed and "DONE" in output, output
    record_recovery("oracle SIGKILLed at random points (last life: every remaining fact posted)",
                    time.monotonic() - restarted, bound=60.0)  # fmt: skip
    logs = ledger.client.rpc.call("eth_getLogs", [{"address": ledger.deployment.ledger, "fromBlock": "0x0",
                                                    "toBlock": "latest"}])  # fmt: skip
    decoder = EventDecoder.for_contracts({ledger.deployment.ledger: "ClearanceLedger"}, hex_bytes=True)
    raised = Counter(e.args["subject"] for e in decoder.decode_all(logs) if e.name == "AlertRaised")
    expected = {"0x" + subject(i).hex() for i in range(COUNT)}
    assert set(raised) == expected
    assert set(raised.values()) == {1}, {s: n for s, n in raised.items() if n != 1}
