"""Benchmark the event reader, decoder and indexer on a real anvil.

Generates a few thousand events quickly (client-side signed raw transactions sent in JSON-RPC
batches, mined in large blocks), then measures:

* raw ``eth_getLogs`` (httpx + JSON) vs web3 ``get_logs``;
* decode throughput of :class:`ledger_api.chain.events.EventDecoder` vs web3 ``process_log`` on
  the same logs, in the same run (the ratio is the portable figure);
* indexer catch-up from the deployment block into a fresh SQLite file (events/s end to end).

Run: ``.venv/bin/python bench/bench_index.py [--events 6000]``; rewrites the ``## Index`` section of
BENCHMARKS.md (``--no-write``: print only).
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

from _history import LocalChain, generate_history, local_chain, web3_event_decoders  # noqa: E402
from _report import Goal, publish  # noqa: E402

from ledger_api.chain.events import EventDecoder, JsonRpc, fetch_logs  # noqa: E402
from ledger_api.index import Indexer  # noqa: E402


def main() -> None:
    """Run the benchmark and print a Markdown table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=6_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp_name, local_chain(Path(tmp_name)) as chain:
        _run(chain, Path(tmp_name), options.events, options.repeat, not options.no_write)


def _best(fn: Any, repeat: int, clock: Any = time.process_time) -> float:
    """Best of ``repeat`` runs. Default clock: this process's CPU time, which other load on a shared
    2-core machine disturbs far less than wall time (decoding is pure CPU work in this process)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = clock()
        fn()
        best = min(best, clock() - t0)
    return best


def _run(chain: LocalChain, tmp: Path, events: int, repeat: int, write: bool) -> None:
    node, w3, keystore, deployment = chain.node, chain.w3, chain.keystore, chain.deployment
    rpc = JsonRpc(rpc_url=node.rpc_url, timeout=120)
    t0 = time.perf_counter()
    generate_history(rpc, keystore, deployment.ledger, events)
    generated = time.perf_counter() - t0
    head = w3.eth.block_number
    addresses = [deployment.registry, deployment.ledger]
    first = deployment.deployment_block

    raw: list[Any] = []

    def fetch_raw() -> None:
        raw.clear()
        for page in fetch_logs(rpc, addresses, first, head, initial_range=100_000):
            raw.extend(page)

    t_raw = _best(fetch_raw, 3, time.perf_counter)
    web3_logs: list[Any] = []

    def fetch_web3() -> None:
        web3_logs[:] = w3.eth.get_logs({"address": addresses, "fromBlock": first, "toBlock": head})  # type: ignore[typeddict-item]

    t_web3_fetch = _best(fetch_web3, 1, time.perf_counter)
    n = len(raw)
    assert n == len(web3_logs)

    decoder = EventDecoder.for_contracts({deployment.registry: "AgencyRegistry", deployment.ledger: "ClearanceLedger"})
    t_decode = _best(lambda: decoder.decode_all(raw), repeat)
    static_names = {s.topic0 for s in decoder.specs if s.static_data is not None}
    static_logs = [log for log in raw if log["topics"][0] in static_names]
    dynamic_logs = [log for log in raw if log["topics"][0] not in static_names]
    t_static = _best(lambda: decoder.decode_all(static_logs), repeat)
    t_dynamic = _best(lambda: decoder.decode_all(dynamic_logs), repeat)

    by_topic = web3_event_decoders(w3, deployment)

    def web3_decode() -> None:
        for log in web3_logs:
            by_topic[(log["address"], bytes(log["topics"][0]))].process_log(log)

    t_web3_decode = _best(web3_decode, 1)

    database = tmp / "index.db"
    indexer = Indexer.for_deployment(deployment, database=database, rpc_url=node.rpc_url)
    t0, c0 = time.perf_counter(), time.process_time()
    indexed = indexer.poll()
    t_index, c_index = time.perf_counter() - t0, time.process_time() - c0
    stats = indexer.last_poll
    assert stats is not None
    indexer.close()

    rate = lambda count, seconds: f"{count / seconds:,.0f} events/s"  # noqa: E731
    own = stats.decode_seconds + stats.apply_seconds
    rows = [
        ("decode, ours (`EventDecoder`), all logs", rate(n, t_decode),
         f"**{t_web3_decode / t_decode:.1f} x web3** `process_log`; CPU time, best of {repeat}; goal >= 50k/s"),
        ("decode, ours, fixed-layout events only", rate(len(static_logs), t_static), "topics + 32-byte words"),
        ("decode, ours, events with dynamic fields", rate(len(dynamic_logs), t_dynamic), "head/tail layout readers"),
        ("decode, web3 `process_log`, all logs", rate(n, t_web3_decode), "baseline, same logs, same run"),
        ("`eth_getLogs` raw (httpx + JSON), all logs", rate(n, t_raw), "wall, best of 3, includes anvil"),
        ("web3 `get_logs` (formatted), all logs", rate(n, t_web3_fetch), "wall, baseline"),
        ("indexer catch-up, end to end (fresh SQLite WAL file)", rate(indexed, t_index),
         f"wall: {indexed:,} events in {t_index:.2f} s; goal >= 50k/s"),
        ("indexer catch-up, CPU time of the indexing process", rate(indexed, c_index), f"{c_index:.2f} s CPU"),
        ("of which", f"fetch {stats.fetch_seconds:.2f} s, decode {stats.decode_seconds:.2f} s, "
         f"apply {stats.apply_seconds:.2f} s", f"{stats.pages} page(s); our side {rate(indexed, own)}"),
    ]  # fmt: skip
    section = "\n".join(
        [
            "## Index",
            "",
            f"Command: `python bench/bench_index.py --events {events}` — anvil on the same machine; {n:,} logs "
            f"({len(static_logs):,} fixed-layout, {len(dynamic_logs):,} with dynamic fields) in {head - first + 1} "
            f"blocks, generated in {generated:.1f} s. Decode figures are CPU time of the benchmark process (the "
            "shared machine disturbs it far less than wall time); ratios are the portable figures.",
            "",
            "| measurement | result | note |",
            "|---|---|---|",
            *(f"| {a} | {b} | {c} |" for a, b, c in rows),
            "",
            "Per event the indexer writes the raw event (JSON args) and the rows of the tables it touches (a",
            "declaration with two documents is 8 rows across 6 tables); Python + SQLite cost ~50 µs per event",
            "for that, which is what keeps catch-up under the 50k/s goal. Done: batched `executemany` per",
            "statement and page, bytes decoded straight to hex, the `events` table keyed by its rowid, indexes",
            "only where queries need them, the next page prefetched while the current one is applied.",
            "",
        ]
    )
    print(section)
    if write:
        publish("index", section, [
            Goal(figure="event decoding (ours)", value=n / t_decode, unit="events/s", goal=">= 50,000 events/s",
                 met=n / t_decode >= 50_000, baseline="web3 process_log", baseline_value=n / t_web3_decode),
            Goal(figure="indexer catch-up, end to end", value=indexed / t_index, unit="events/s",
                 goal=">= 50,000 events/s", met=indexed / t_index >= 50_000,
                 baseline="web3 get_logs alone (no decode, no writes)", baseline_value=n / t_web3_fetch),
        ])  # fmt: skip


if __name__ == "__main__":
    main()
