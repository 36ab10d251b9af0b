"""Auditor replay throughput on a real anvil, against web3's own get_logs + decode in the same run.

Generates ``--events`` valid events (alerts, batch anchors, declarations with two documents; see
``bench/_history.py``), then measures:

1. ``ledger_api.audit.replay`` from the deployment block: raw ``eth_getLogs`` pages, ABI-layout
   decoding, state rebuild with every invariant check — events/s of read + decode + rebuild, and
   the view comparison (digest of the contracts' views) timed separately;
2. baseline: web3 ``get_logs`` + ``process_log`` of the same logs (a block range holding up to
   ``--baseline-events`` of them: web3 is ~20x slower, so the whole history would dominate the run).

Rewrites the ``## Audit replay`` section of BENCHMARKS.md (``--no-write``: print only).
Run: ``.venv/bin/python bench/bench_replay.py [--events 100000]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _history import generate_history, local_chain, web3_event_decoders  # noqa: E402
from _report import Goal, publish  # noqa: E402
from web3 import Web3  # noqa: E402

from ledger_api.audit import replay  # noqa: E402
from ledger_api.chain.events import JsonRpc  # noqa: E402


def _web3_baseline(w3: Web3, deployment: Any, first: int, limit: int) -> tuple[int, float, int]:
    """web3 get_logs + process_log over the first blocks holding about ``limit`` events.

    Returns (events, seconds, last block)."""
    decoders = web3_event_decoders(w3, deployment)
    head = w3.eth.block_number
    last = first
    count = 0
    seconds = 0.0
    step = 8
    while last < head and count < limit:
        to_block = min(head, last + step)
        t0 = time.perf_counter()
        logs = w3.eth.get_logs(
            {"address": [deployment.registry, deployment.ledger], "fromBlock": last, "toBlock": to_block}  # type: ignore[typeddict-item]
        )
        for log in logs:
            decoders[(log["address"], bytes(log["topics"][0]))].process_log(log)
        seconds += time.perf_counter() - t0
        count += len(logs)
        last = to_block + 1
    return count, seconds, last - 1


def main() -> None:
    """Generate the history, measure, print and (unless --no-write) publish the section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="events to generate (default 100,000)")
    parser.add_argument("--baseline-events", type=int, default=20_000, help="events decoded by web3 (baseline)")
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-replay-", ignore_cleanup_errors=True) as tmp_name:
        with local_chain(Path(tmp_name), timeout=300) as chain:
            node, w3, keystore, deployment = chain.node, chain.w3, chain.keystore, chain.deployment
            t0 = time.perf_counter()
            with JsonRpc(rpc_url=node.rpc_url, timeout=300) as rpc:
                generate_history(rpc, keystore, deployment.ledger, args.events)
            generated = time.perf_counter() - t0
            report = replay(node.rpc_url, deployment, progress=None, rpc_timeout=300)
            if not report.ok:
                raise SystemExit(f"the replay found problems in a valid history: {sorted(report.codes)}")
            base_events, base_seconds, base_last = _web3_baseline(
                w3, deployment, deployment.deployment_block, args.baseline_events
            )

    t = report.throughput
    rate = t.events_per_second
    base_rate = base_events / base_seconds
    million = 1_000_000 / rate
    rows = [
        ("replay: read + decode + rebuild with invariant checks", f"{rate:,.0f} events/s",
         f"{t.events:,} events in {t.blocks:,} blocks, {t.pages} pages; "
         f"fetch {t.fetch_seconds:.2f} s, decode {t.decode_seconds:.2f} s, rebuild {t.apply_seconds:.2f} s"),
        ("replay: view comparison (digest of the contracts' views)", f"{t.view_seconds:.2f} s",
         f"{report.records:,} records read with eth_call at the last block; digests equal: {report.digest_match}"),
        ("replay: whole run", f"{t.total_seconds:.2f} s", f"{t.events / t.total_seconds:,.0f} events/s incl. views"),
        ("baseline: web3 get_logs + process_log", f"{base_rate:,.0f} events/s",
         f"{base_events:,} events (blocks {deployment.deployment_block}–{base_last}), same chain, same run"),
        ("ratio replay / web3", f"{rate / base_rate:.1f}x", "goal >= 50,000 events/s"),
        ("1M events at this rate", f"{million:.1f} s", "goal <= 30 s without document fetches (extrapolated)"),
    ]  # fmt: skip
    section = "\n".join(
        [
            "## Audit replay",
            "",
            f"Command: `python bench/bench_replay.py --events {args.events}` — anvil on the same machine; "
            f"history of {t.events:,} events generated in {generated:.0f} s (a third each: alerts, batch anchors, "
            "declarations with two supporting documents). One run.",
            "",
            "| measurement | result | note |",
            "|---|---|---|",
            *(f"| {a} | {b} | {c} |" for a, b, c in rows),
            "",
            "The replay rate excludes the view comparison, reported on its own row: it reads one `eth_call` per",
            "record of the digest (about three per event in this history: each declaration, document and",
            "batch has its own record), so it grows with the number of objects, and anvil answering the calls",
            "is most of it. The 1M-event figure is extrapolated from this run's rate (`--events 1000000`",
            "measures it; generating that history takes several minutes).",
            "",
        ]
    )
    print(section)
    if not args.no_write:
        publish(
            "replay",
            section,
            [
                Goal(figure="replay, events/s (read + decode + rebuild)", value=rate, unit="events/s",
                     goal=">= 50,000 events/s", met=rate >= 50_000, baseline="web3 get_logs + process_log",
                     baseline_value=base_rate),
                Goal(figure="replay of 1M events (extrapolated)", value=million, unit="s", goal="<= 30 s",
                     met=million <= 30),
            ],
        )  # fmt: skip


if __name__ == "__main__":
    main()
