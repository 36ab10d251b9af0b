"""Faults: the node goes down and comes back; errors while pages are prefetched; concurrent readers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger_api.chain.events import prefetched
from ledger_api.errors import ChainUnavailable, LogQueryError
from ledger_api.index import DeclarationStatus, Indexer, ReadModel

pytestmark = pytest.mark.integration


def test_prefetched_pages_keep_their_order_and_errors_arrive_in_place() -> None:
    def pages() -> Iterator[list[Any]]:
        yield [1]
        yield [2, 3]
        raise LogQueryError("eth_getLogs failed: boom")

    seen: list[list[Any]] = []
    with pytest.raises(LogQueryError, match="boom"):
        for page in prefetched(pages()):
            seen.append(page)
    assert seen == [[1], [2, 3]]
    # A consumer that stops early does not leave the fetching thread blocked.
    before = threading.active_count()
    for page in prefetched(iter([[n] for n in range(100)]), depth=1):
        if page == [3]:
            break
    assert threading.active_count() <= before


@pytest.mark.faults
def test_node_down_then_back(chain: Any, tmp_path: Path) -> None:
    indexer = Indexer.for_deployment(
        chain.deployment, database=tmp_path / "index.db", rpc_url=chain.rpc_url, rpc_retries=1
    )
    try:
        indexer.poll()
        cursor = indexer.cursor
        declaration_id = chain.submit("trader-tj-electronics", "while-down")
        assert chain.node.stop()
        with pytest.raises(ChainUnavailable):
            indexer.poll()
        assert indexer.cursor == cursor  # nothing half-applied
        # Reads keep working from the index while the node is down.
        assert indexer.model.event_count() > 0
        chain.node.start()
        assert indexer.poll() == 1
        assert indexer.model.declaration(declaration_id).status is DeclarationStatus.SUBMITTED
    finally:
        indexer.close()


def test_a_reader_in_another_thread_sees_consistent_state_while_indexing(chain: Any, tmp_path: Path) -> None:
    database = tmp_path / "shared.db"
    indexer = Indexer.for_deployment(chain.deployment, database=database, rpc_url=chain.rpc_url, initial_range=1)
    reader = ReadModel.open(database)
    errors: list[BaseException] = []
    stop = threading.Event()
    trader = chain.account("trader-tj-foods").address

    def read_loop() -> None:
        try:
            while not stop.is_set():
                for view in reader.declarations_of(trader):
                    assert view.status in DeclarationStatus
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=read_loop)
    thread.start()
    try:
        for n in range(3):
            chain.submit("trader-tj-foods", f"concurrent-{n}", documents=1)
            indexer.poll()
    finally:
        stop.set()
        thread.join()
        indexer.close()
    try:
        assert errors == []
        assert len(reader.declarations_of(trader)) >= 3
    finally:
        reader.close()


def test_follow_keeps_the_index_current_and_survives_errors(chain: Any, tmp_path: Path) -> None:
    database = tmp_path / "follow.db"
    indexer = Indexer.for_deployment(chain.deployment, database=database, rpc_url=chain.rpc_url, rpc_retries=0)
    reader = ReadModel.open(database)
    stop = threading.Event()
    errors: list[Exception] = []
    thread = threading.Thread(target=lambda: indexer.follow(stop=stop, interval=0.05, on_error=errors.append))
    thread.start()
    try:
        declaration_id = chain.submit("trader-tj-electronics", "followed")
        deadline = time.monotonic() + 20
        while reader.declaration(declaration_id) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reader.declaration(declaration_id) is not None
        assert chain.node.stop()
        deadline = time.monotonic() + 20
        while not errors and time.monotonic() < deadline:
            time.sleep(0.05)
        assert errors and isinstance(errors[0], ChainUnavailable)  # reported, loop still running
        assert thread.is_alive()
        chain.node.start()
        later = chain.submit("trader-tj-electronics", "followed-after-restart")
        deadline = time.monotonic() + 20
        while reader.declaration(later) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reader.declaration(later) is not None
    finally:
        stop.set()
        thread.join(timeout=30)
        indexer.close()
        reader.close()
    assert not thread.is_alive()
