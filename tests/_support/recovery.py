"""Recovery figures of the fault-injection suite (docs/reliability.md).

A fault test calls :func:`record_recovery` with the time from the end of its fault (the killed
process restarted, the node back, the reorg done) to the system being whole again (journal drained,
every entry final, the index consistent). The figure must be within the bound the docs state; it is
also appended to ``reports/recovery.jsonl`` so the figures last measured can be read after a run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

REPORTS = Path(__file__).resolve().parents[2] / "reports"

__all__ = ["record_recovery"]


def record_recovery(fault: str, seconds: float, *, bound: float) -> None:
    """Assert that recovering from ``fault`` took at most ``bound`` seconds, and log the figure."""
    REPORTS.mkdir(exist_ok=True)
    line = {"fault": fault, "seconds": round(seconds, 2), "bound": bound, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                           time.gmtime())}  # fmt: skip
    with (REPORTS / "recovery.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")
    assert seconds <= bound, f"{fault}: recovered in {seconds:.1f} s, the stated bound is {bound} s"
