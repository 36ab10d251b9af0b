"""Child process of the crash test: journal N declarations (idempotent keys) and drive them to final.

Usage: python _crash_child.py DB RPC_URL LEDGER CHAIN_ID COUNT SEED KEYHEX [KEYHEX...]
The parent SIGKILLs this process at random moments (after a random number of the "STEP" lines it
prints, plus a random delay) and starts it again; every start re-submits all N requests with the
same idempotency keys (as retrying API clients would) and reconciles.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from ledger_api.chain import _tx_calls as calls
from ledger_api.chain._signing import FastSigner
from ledger_api.chain.client import LedgerClient
from ledger_api.chain.deploy import agency_id_bytes
from ledger_api.outbox import Outbox, OutboxWorker


def main(argv: list[str]) -> int:
    """Run one life of the service."""
    db, rpc_url, ledger, chain_id, count, seed, *keys = argv
    signers = [FastSigner(private_key=bytes.fromhex(k)) for k in keys]
    client = LedgerClient(rpc_url=rpc_url, ledger_address=ledger, signers=signers, chain_id=int(chain_id))
    outbox = Outbox.open(Path(db))
    worker = OutboxWorker(outbox=outbox, client=client, batch_size=40, resend_after=1.0)
    for start in range(0, int(count), 20):
        for i in range(start, min(start + 20, int(count))):
            commitment = hashlib.sha256(f"{seed}/{i}".encode()).digest()
            call = calls.submit_declaration(
                jurisdiction_id=agency_id_bytes("CN-TJ-CUSTOMS"), local_reference=(i + 1).to_bytes(32, "big"),
                commitment=commitment, cid=bytes.fromhex("01551220") + commitment,
            )  # fmt: skip
            outbox.submit(key=f"decl-{i}", call=call, signer=signers[i % len(signers)].address)
        worker.step()
        print("STEP", start // 20, flush=True)  # the parent kills at a chosen step
    counts = worker.drain(timeout=60)
    print("DONE", counts, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
