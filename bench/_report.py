"""Shared by every benchmark: goal figures, machine facts, and rewriting BENCHMARKS.md.

Each ``bench/bench_*.py`` measures its figures *and a baseline in the same run* and calls
:func:`publish` with its Markdown section and its :class:`Goal` rows. ``publish`` replaces that
section of BENCHMARKS.md (other sections stay as they were), stores the goal rows in
``bench/results/<slug>.json`` and regenerates the header of BENCHMARKS.md: the machine facts and
one summary table of every goal across all sections (figure, baseline, ratio, goal, met).
``bench/run_all.py`` (``make bench``) runs every benchmark in turn.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "BENCHMARKS.md"
RESULTS = REPO / "bench" / "results"

__all__ = ["BENCHMARKS", "Goal", "machine_facts", "publish", "replace_section"]


@dataclass(frozen=True, kw_only=True)
class Goal:
    """One figure with a goal: its value, the baseline measured in the same run, and the verdict."""

    figure: str  # what was measured, e.g. "replay, events/s"
    value: float  # the measured figure, in ``unit``
    unit: str  # "events/s", "ms", "gas", …
    goal: str  # the goal as written in the issue, e.g. ">= 50,000 events/s"
    met: bool | None  # None: the figure has no absolute goal (ratio only)
    baseline: str = ""  # what the baseline is, e.g. "web3 get_logs + process_log"
    baseline_value: float | None = None  # the baseline's figure, same unit, same run

    @property
    def ratio(self) -> float | None:
        """``value / baseline_value`` (None without a baseline)."""
        if self.baseline_value in (None, 0):
            return None
        return self.value / float(self.baseline_value)  # type: ignore[arg-type]


def _run(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine_facts() -> dict[str, Any]:
    """The facts that make figures comparable: CPU, cores, memory, load, versions, commit, date."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, IndexError, ValueError):
        pass
    anvil = shutil.which("anvil", path=f"{REPO / 'node_modules' / '.bin'}:{os.environ.get('PATH', '')}")
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": cpu or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "memory": memory,
        "load_average": round(os.getloadavg()[0], 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "node": _run(["node", "--version"]),
        "anvil": _run([anvil, "--version"]).splitlines()[0] if anvil else "",
        "commit": _run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
    }


def replace_section(text: str, section: str) -> str:
    """Replace the ``## Title`` section that ``section`` starts with (or append it)."""
    title = section.splitlines()[0]
    match = re.search(rf"^{re.escape(title)}\s*$", text, flags=re.M)
    body = section.rstrip("\n") + "\n"
    if match is None:
        return text.rstrip("\n") + "\n\n" + body
    end = text.find("\n## ", match.end())
    rest = "" if end == -1 else text[end:]
    return text[: match.start()] + body + rest


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def _ratio(ratio: float | None) -> str:
    if ratio is None:
        return "—"
    return f"{ratio:.2f}x" if ratio >= 0.01 else f"{ratio:.1e}x"


def _header(facts: dict[str, Any]) -> str:
    rows: list[str] = []
    for path in sorted(RESULTS.glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        for goal in record["goals"]:
            g = Goal(**goal)
            ratio = g.ratio
            verdict = "—" if g.met is None else ("met" if g.met else "**missed**")
            rows.append(
                f"| {record['title']} | {g.figure} | {_fmt(g.value)} {g.unit} | "
                f"{g.baseline or '—'}{'' if g.baseline_value is None else ': ' + _fmt(g.baseline_value)} | "
                f"{_ratio(ratio)} | {g.goal} | {verdict} | {record['date']} |"
            )
    return "\n".join(
        [
            "# Benchmarks",
            "",
            "Written by `make bench` (`bench/run_all.py`); each `bench/bench_*.py` rewrites its own section",
            "and its rows of the summary. Machines here are shared and noisy: every figure comes with a",
            "baseline measured in the same run, and the ratio is the portable number.",
            "",
            f"Last written on: {facts['cpu']}, {facts['cores']} cores, {facts['memory']} RAM, {facts['os']}, "
            f"Python {facts['python']}, Node {facts['node']}, {facts['anvil']}; commit {facts['commit']}, "
            f"{facts['date']}, load average {facts['load_average']}.",
            "",
            "## Summary of goals",
            "",
            "| section | figure | result | baseline (same run) | ratio | goal | status | measured |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    )


def publish(slug: str, section: str, goals: list[Goal], *, path: Path = BENCHMARKS) -> None:
    """Rewrite ``section`` of BENCHMARKS.md, store ``goals`` as ``bench/results/<slug>.json``, and
    regenerate the header (machine facts + summary of every section's goals)."""
    facts = machine_facts()
    title = section.splitlines()[0].removeprefix("## ").strip()
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {"title": title, "date": facts["date"][:10], "machine": facts, "goals": [asdict(g) for g in goals]}
    (RESULTS / f"{slug}.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    text = replace_section(text, section)
    first_section = re.search(r"^## (?!Summary of goals)", text, flags=re.M)
    sections = text[first_section.start() :] if first_section else ""
    path.write_text(_header(facts) + "\n" + sections.rstrip("\n") + "\n", encoding="utf-8")
