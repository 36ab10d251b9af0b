"""Child process of the oracle crash test: an oracle that posts COUNT alert facts, 10 per pass.

Usage: python -m tests.oracles._crash_child VAR_DIR ANVIL_PORT COUNT
Each pass posts the next ten facts (deterministic keys) and prints ``STEP n``; the parent SIGKILLs
the process after a random number of steps and starts it again on the same state directory. A
restarted life resumes from the persisted cursor and re-posts from there (as a real oracle would
after a crash between journaling a fact and saving its cursor).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from ledger_api.chain import _tx_calls as calls
from ledger_api.chain.deploy import Deployment
from ledger_api.config import Settings
from oracles._base import Oracle, OracleContext, run
from oracles.config import OracleSettings


def subject(i: int) -> bytes:
    """The alert subject of fact ``i``."""
    return hashlib.sha256(f"crash-subject-{i}".encode()).digest()


class _Poster(Oracle):
    name = "crashprobe"
    default_agency = "CONSORTIUM-AUDIT"

    def __init__(self, ctx: OracleContext, count: int) -> None:
        super().__init__(ctx)
        self.count = count

    def step(self) -> int:
        start = int(self.ctx.state.get("next", 0))
        if start >= self.count:
            return 0
        for i in range(start, min(start + 10, self.count)):
            call = calls.raise_alert(subject_kind=0, subject=subject(i), reason_code=9, evidence_sha256=subject(i))
            self.ctx.post(f"alert:{i}", call)
        self.ctx.drive()
        self.ctx.state.set("next", start + 10)
        print("STEP", start // 10, flush=True)
        return 1


def main(argv: list[str]) -> int:
    """One life of the oracle."""
    var_dir, port, count = Path(argv[0]), int(argv[1]), int(argv[2])
    settings = Settings(var_dir=var_dir, anvil_port=port)
    deployment = Deployment.load(var_dir / "deployment.json")
    ctx = OracleContext(
        name="crashprobe", settings=settings, oracle_settings=OracleSettings(interval=0.05),
        deployment=deployment, agency="CONSORTIUM-AUDIT",
    )  # fmt: skip
    oracle = _Poster(ctx, count)
    while int(ctx.state.get("next", 0)) < count:
        run(oracle, max_steps=1)
    counts = ctx.worker.drain(timeout=60)
    print("DONE", counts, flush=True)
    ctx.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
