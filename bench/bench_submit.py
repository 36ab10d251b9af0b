"""Declarations anchored per second through LedgerClient + outbox on anvil, against a naive baseline.

Rewrites the ``## Submission`` section of BENCHMARKS.md (only that section).

Run: ``.venv/bin/python bench/bench_submit.py`` (``--count 2000``; ``--quick`` for 400; ``--no-write``
to leave BENCHMARKS.md alone). Starts its own anvil on a free port in a temporary directory and
deploys the default consortium with ``deploy_consortium``. Three measurements in one run:

1. signing: coincurve (``_signing.FastSigner``) vs eth-account's ``sign_transaction``;
2. naive: eth-account sign + web3 ``send_raw_transaction`` + ``wait_for_transaction_receipt`` per
   declaration, one at a time (what ``deploy._Transactor`` does);
3. outbox: every declaration journaled with its own idempotency key (one fsync'd SQLite transaction
   per request, as the API will do) by a producer thread while an ``OutboxWorker`` thread anchors
   them; sustained rate = declarations / (first journal entry → last entry ``final``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _history import local_chain  # noqa: E402
from _report import Goal, publish  # noqa: E402
from eth_account import Account  # noqa: E402
from web3 import Web3  # noqa: E402

from ledger_api.chain import _tx_calls as calls  # noqa: E402
from ledger_api.chain._signing import FastSigner, UnsignedTransaction  # noqa: E402
from ledger_api.chain.client import LedgerClient  # noqa: E402
from ledger_api.chain.deploy import agency_id_bytes  # noqa: E402
from ledger_api.outbox import Outbox, OutboxWorker  # noqa: E402

TJ = agency_id_bytes("CN-TJ-CUSTOMS")


def _call(tag: str, i: int) -> calls.LedgerCall:
    commitment = hashlib.sha256(f"{tag}/{i}".encode()).digest()
    return calls.submit_declaration(
        jurisdiction_id=TJ, local_reference=(i + 1).to_bytes(32, "big"), commitment=commitment,
        cid=bytes.fromhex("01551220") + commitment,
    )  # fmt: skip


def bench_signing(n: int) -> tuple[float, float]:
    """Transactions signed per second: (coincurve, eth-account)."""
    key = os.urandom(32)
    fast, account = FastSigner(private_key=key), Account.from_key(key)
    data = _call("sign", 0).calldata
    to = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    start = time.perf_counter()
    for nonce in range(n):
        fast.sign(UnsignedTransaction(chain_id=31337, nonce=nonce, gas=200_000, to=bytes.fromhex(to[2:]), data=data,
                                      max_fee_per_gas=3 * 10**9, max_priority_fee_per_gas=10**9))  # fmt: skip
    fast_rate = n / (time.perf_counter() - start)
    m = max(100, n // 5)
    start = time.perf_counter()
    for nonce in range(m):
        account.sign_transaction({"chainId": 31337, "nonce": nonce, "gas": 200_000, "to": to, "data": data, "value": 0,
                                  "maxFeePerGas": 3 * 10**9, "maxPriorityFeePerGas": 10**9, "type": 2})  # fmt: skip
    return fast_rate, m / (time.perf_counter() - start)


def bench_naive(w3: Web3, key: bytes, ledger: str, n: int) -> float:
    """Sign + send + wait for the receipt, one declaration at a time (declarations per second)."""
    account = Account.from_key(key)
    nonce = w3.eth.get_transaction_count(account.address, "pending")
    start = time.perf_counter()
    for i in range(n):
        call = _call("naive", i)
        tx: dict[str, Any] = {
            "chainId": 31337, "nonce": nonce + i, "to": ledger, "data": call.calldata, "value": 0, "gas": 300_000,
            "maxFeePerGas": 4 * 10**9, "maxPriorityFeePerGas": 10**9, "type": 2,
        }  # fmt: skip
        tx["gas"] = int(w3.eth.estimate_gas({"from": account.address, "to": ledger, "data": call.calldata}) * 1.25)  # type: ignore[typeddict-item]
        tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.005)
        assert receipt["status"] == 1
    return n / (time.perf_counter() - start)


def bench_outbox(client: LedgerClient, journal: Path, signers: list[str], n: int, group: int) -> dict[str, float]:
    """Journal ``n`` requests (producer thread, ``group`` per fsync'd transaction) while a worker anchors them."""
    outbox = Outbox.open(journal)
    worker = OutboxWorker(outbox=outbox, client=client, batch_size=256, resend_after=10.0)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    intake_done = threading.Event()
    intake: dict[str, float] = {}

    def produce() -> None:
        begin = time.perf_counter()
        for first in range(0, n, group):
            chunk = range(first, min(n, first + group))
            requests = [(f"bench-{i}", _call(f"outbox-{group}", i), signers[i % len(signers)]) for i in chunk]
            if group == 1:
                outbox.submit(key=requests[0][0], call=requests[0][1], signer=requests[0][2])
            else:
                outbox.submit_many(requests)
        intake["seconds"] = time.perf_counter() - begin
        intake_done.set()

    start = time.perf_counter()
    producer = threading.Thread(target=produce)
    producer.start()
    thread.start()
    while outbox.counts().get("final", 0) < n:
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    stop.set()
    thread.join()
    producer.join()
    counts = outbox.counts()
    outbox.close()
    assert counts == {"final": n}, counts
    return {"anchored_per_s": n / elapsed, "intake_per_s": n / intake["seconds"], "seconds": elapsed}


def main() -> None:
    """Run the three measurements and (unless --no-write) rewrite the Submission section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="declarations through the outbox")
    parser.add_argument("--naive", type=int, default=300, help="declarations for the naive baseline")
    parser.add_argument("--group", type=int, default=32, help="requests per group commit")
    parser.add_argument("--quick", action="store_true", help="400 / 100 declarations")
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = parser.parse_args()
    count, naive_count = (400, 100) if args.quick else (args.count, args.naive)

    fast_rate, slow_rate = bench_signing(5000)
    print(f"signing: coincurve {fast_rate:,.0f}/s, eth-account {slow_rate:,.0f}/s ({fast_rate / slow_rate:.1f}x)")
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp_name:
        tmp = Path(tmp_name)
        with local_chain(tmp) as chain:
            node, w3, keystore, deployment = chain.node, chain.w3, chain.keystore, chain.deployment
            keys = [bytes(keystore.signer(label).key) for label in deployment.traders]
            naive_rate = bench_naive(w3, keys[0], deployment.ledger, naive_count)
            print(f"naive sign+send+wait: {naive_rate:,.0f} declarations/s ({naive_count})")
            client = LedgerClient.local(rpc_url=node.rpc_url, deployment=deployment, private_keys=keys)
            signers = list(client.addresses)
            result = bench_outbox(client, tmp / "outbox-group.sqlite3", signers, count, args.group)
            single = bench_outbox(client, tmp / "outbox-single.sqlite3", signers, count, 1)
            client.close()
    ratio = result["anchored_per_s"] / naive_rate
    print(
        f"outbox: {result['anchored_per_s']:,.0f} anchored/s sustained over {count} ({result['seconds']:.1f} s); "
        f"intake {result['intake_per_s']:,.0f} journaled/s; {ratio:.1f}x naive"
    )
    print(f"outbox, one fsync per request: {single['anchored_per_s']:,.0f} anchored/s; "
          f"intake {single['intake_per_s']:,.0f}/s")  # fmt: skip
    section = "\n".join(
        [
            "## Submission",
            "",
            f"Command: `python bench/bench_submit.py --count {count}` — Python {platform.python_version()}, "
            f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}, anvil (automine) on the same machine. One run.",
            "",
            "| measurement | result | note |",
            "|---|---|---|",
            f"| declarations anchored through LedgerClient + outbox, group commit of {args.group} "
            f"| {result['anchored_per_s']:,.0f}/s "
            f"| sustained over {count}: journal (fsync) → estimate → sign → journal → send → receipt → final; "
            "goal >= 500/s |",
            f"| same, one fsync'd journal transaction per request | {single['anchored_per_s']:,.0f}/s "
            f"| intake-bound: {single['intake_per_s']:,.0f} requests journaled/s |",
            f"| naive baseline: sign + send + wait per declaration | {naive_rate:,.0f}/s | {naive_count} declarations, "
            "eth-account + web3 |",
            f"| ratio outbox / naive | {ratio:.1f}x | same run, same anvil |",
            f"| outbox intake, group commit of {args.group} | {result['intake_per_s']:,.0f} requests/s "
            "| concurrent with the worker |",
            f"| signing, coincurve (`_signing.FastSigner`) | {fast_rate:,.0f} tx/s | EIP-1559, byte-identical to "
            "eth-account |",
            f"| signing, eth-account `sign_transaction` | {slow_rate:,.0f} tx/s | "
            f"{fast_rate / slow_rate:.1f}x slower |",
            "",
        ]
    )
    print(section)
    if not args.no_write:
        publish("submission", section, [
            Goal(figure="declarations anchored through the outbox (group commit)", value=result["anchored_per_s"],
                 unit="declarations/s", goal=">= 500/s", met=result["anchored_per_s"] >= 500,
                 baseline="naive sign + send + wait", baseline_value=naive_rate),
            Goal(figure="transaction signing (coincurve)", value=fast_rate, unit="tx/s", goal="faster than eth-account",
                 met=fast_rate > slow_rate, baseline="eth-account sign_transaction", baseline_value=slow_rate),
        ])  # fmt: skip


if __name__ == "__main__":
    main()
