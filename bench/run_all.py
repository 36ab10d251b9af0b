"""Run every benchmark in turn; each rewrites its own section of BENCHMARKS.md and the summary.

Run: ``make bench`` (or ``.venv/bin/python bench/run_all.py [--quick] [--only NAME …]``). Each benchmark
runs in its own process, one after the other (they start their own anvil and, for the API, their own
server and load generator on loopback), so one cannot disturb another's figures. Exit status: the
number of benchmarks that failed (0 when all wrote their section).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent

#: name → (script, extra arguments for --quick)
BENCHMARKS: dict[str, tuple[str, list[str]]] = {
    "documents": ("bench_documents.py", ["--quick"]),
    "anchoring": ("bench_anchoring.py", ["--docs", "20000", "--single", "10"]),
    "submission": ("bench_submit.py", ["--quick"]),
    "index": ("bench_index.py", ["--events", "3000"]),
    "replay": ("bench_replay.py", ["--events", "15000", "--baseline-events", "5000"]),
    "api": ("bench_api.py", ["--quick"]),
}


def main() -> int:
    """Run the chosen benchmarks (default: all) and report which failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (figures less stable)")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), default=None, help="run only these")
    args = parser.parse_args()
    failed: list[str] = []
    for name, (script, quick_args) in BENCHMARKS.items():
        if args.only and name not in args.only:
            continue
        argv = [sys.executable, str(BENCH / script), *(quick_args if args.quick else [])]
        print(f"== {name}: {' '.join(argv[1:])}", flush=True)
        started = time.monotonic()
        code = subprocess.call(argv)
        print(f"== {name}: exit {code} after {time.monotonic() - started:.0f} s", flush=True)
        if code != 0:
            failed.append(name)
    if failed:
        print(f"run_all: failed: {', '.join(failed)}", file=sys.stderr)
    return len(failed)


if __name__ == "__main__":
    sys.exit(main())
