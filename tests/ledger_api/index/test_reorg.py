"""Reorgs on a real anvil (evm_snapshot/evm_revert and anvil_reorg): the index rolls back and re-indexes."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import pytest

from ledger_api.index import DeclarationStatus, Indexer
from tests._support.recovery import record_recovery

pytestmark = pytest.mark.integration

_DUMP = (
    "SELECT block_number, log_index, block_hash, name, args FROM events ORDER BY 1, 2",
    "SELECT * FROM declaration_states ORDER BY 1, 2, 3",
    "SELECT * FROM declarations ORDER BY 1",
    "SELECT * FROM anchors ORDER BY 1, 5, 6, 2",
    "SELECT * FROM stamps ORDER BY 1",
)


def _h(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def _dump(indexer: Indexer) -> list[list[Any]]:
    return [indexer._db.execute(sql).fetchall() for sql in _DUMP]


def _fresh(chain: Any, tmp: Path, name: str) -> Indexer:
    return Indexer.for_deployment(chain.deployment, database=tmp / f"{name}.db", rpc_url=chain.rpc_url)


@pytest.mark.faults
def test_revert_to_snapshot_then_a_different_fork_rolls_back(chain: Any, tmp_path: Path) -> None:
    indexer = _fresh(chain, tmp_path, "live")
    indexer.poll()
    snapshot = chain.rpc("evm_snapshot", [])
    customs = chain.agency_signer("CN-TJ-CUSTOMS")
    lost = chain.submit("trader-tj-electronics", "fork-A")
    chain.send(customs, chain.ledger.functions.acceptDeclaration(lost, _h("MRN-A")))
    chain.stamp("CN-TJ-CIQ-LAB", lost, 0, 1, "fork-A/stamp")
    assert indexer.poll() == 3
    assert indexer.model.declaration(lost).status is DeclarationStatus.ACCEPTED
    cursor_a = indexer.cursor[0]

    assert chain.rpc("evm_revert", [snapshot]) is True
    kept = chain.submit("trader-tj-electronics", "fork-B")  # same height as fork A's first block, other hash
    assert chain.w3.eth.block_number < cursor_a

    assert indexer.poll() == 1
    assert indexer.rollbacks and indexer.rollbacks[-1][0] == cursor_a
    assert indexer.model.declaration(lost) is None
    assert indexer.model.document(lost) == [] and indexer.model.stamps(lost) == []
    assert indexer.model.timeline(lost) == []
    assert indexer.model.declaration(kept).status is DeclarationStatus.SUBMITTED
    assert indexer.cursor == (chain.w3.eth.block_number, chain.w3.eth.get_block("latest")["hash"].to_0x_hex())
    fresh = _fresh(chain, tmp_path, "fresh-1")
    try:
        fresh.poll()
        assert _dump(indexer) == _dump(fresh)
    finally:
        fresh.close()
        indexer.close()


@pytest.mark.faults
@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
def test_anvil_reorg_replaces_recent_blocks_and_the_index_follows(chain: Any, tmp_path: Path, depth: int) -> None:
    indexer = _fresh(chain, tmp_path, f"live-{depth}")
    for n in range(5):
        chain.submit("trader-tj-foods", f"reorg-{depth}-{n}", documents=1)
    indexer.poll()
    before = {
        b: chain.w3.eth.get_block(b)["hash"] for b in range(indexer.cursor[0] - depth + 1, indexer.cursor[0] + 1)
    }
    # Replace the last `depth` blocks; re-include one new transaction in the replacement chain.
    trader = chain.account("trader-tj-foods")
    from ledger_api.chain.deploy import agency_id_bytes

    tx = chain.ledger.functions.submitDeclaration(
        agency_id_bytes("CN-TJ-CUSTOMS"), _h("lrn"), _h(f"reorg-new-{depth}"), b"\x01\x55", []
    ).build_transaction(
        {
            "from": trader.address,
            "nonce": chain.w3.eth.get_transaction_count(trader.address) - depth,
            "chainId": chain.deployment.chain_id,
            "gas": 500_000,
        }
    )
    raw = trader.sign_transaction(tx).raw_transaction.to_0x_hex()
    chain.rpc("anvil_reorg", [depth, [[raw, 0]]])
    after = {b: chain.w3.eth.get_block(b)["hash"] for b in before}
    assert all(before[b] != after[b] for b in before)

    reorged = time.monotonic()
    indexer.poll()
    record_recovery(f"anvil_reorg of depth {depth} during indexing", time.monotonic() - reorged, bound=10.0)
    assert indexer.rollbacks, "the divergence was not detected"
    assert indexer.rollbacks[-1][1] < min(before)
    fresh = _fresh(chain, tmp_path, "fresh-2")
    try:
        fresh.poll()
        assert _dump(indexer) == _dump(fresh)
        for n in range(5):
            on_chain = chain.ledger.functions.declaration(_h(f"reorg-{depth}-{n}")).call()[2]
            view = indexer.model.declaration(_h(f"reorg-{depth}-{n}"))
            assert (0 if view is None else int(view.status)) == on_chain
        assert indexer.model.declaration(_h(f"reorg-new-{depth}")) is not None
    finally:
        fresh.close()
        indexer.close()


def test_a_reorg_within_the_confirmation_depth_is_never_seen(chain: Any, tmp_path: Path) -> None:
    indexer = Indexer.for_deployment(
        chain.deployment, database=tmp_path / "confirmed.db", rpc_url=chain.rpc_url, confirmations=3
    )
    try:
        for n in range(3):
            chain.submit("trader-tj-electronics", f"shallow-{n}", documents=0)
        indexer.poll()
        assert indexer.model.declaration(_h("shallow-0")) is None  # still within the 3 unconfirmed blocks
        chain.rpc("anvil_reorg", [2, []])
        chain.rpc("evm_mine", [])
        indexer.poll()
        assert indexer.rollbacks == []
        assert indexer.cursor[0] == chain.w3.eth.block_number - 3
    finally:
        indexer.close()
