"""The indexer: cursor, paginated catch-up, reorg detection and rollback."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger_api.chain.events import EventDecoder, JsonRpc, fetch_logs, prefetched
from ledger_api.errors import ChainError, IndexMismatch, ReorgTooDeep
from ledger_api.index._apply import Applier
from ledger_api.index._queries import ReadModel
from ledger_api.index._schema import DDL, DERIVED_TABLES, SCHEMA_VERSION

if TYPE_CHECKING:
    from ledger_api.chain.deploy import Deployment

__all__ = ["Indexer", "PollStats", "connect"]

#: How many remembered blocks below the cursor each poll re-checks against the chain.
DEFAULT_REORG_WINDOW = 64


@dataclass(frozen=True, kw_only=True)
class PollStats:
    """Where the time of the last :meth:`Indexer.poll` went (seconds), for metrics and benchmarks."""

    events: int
    blocks: int  # blocks covered (cursor movement)
    pages: int
    fetch_seconds: float  # eth_getLogs round trips + JSON parsing
    decode_seconds: float
    apply_seconds: float  # building rows + SQLite writes + commits
    total_seconds: float


def connect(database: Path | str) -> sqlite3.Connection:
    """Open (and create) an index database in WAL mode with the schema in place."""
    if str(database) != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(str(database), isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA foreign_keys=OFF")
    connection.executescript(DDL)
    return connection


class Indexer:
    """Builds and maintains the read model of one deployment from its events.

    ``poll()`` processes the blocks between the cursor and ``head - confirmations``; before that it
    re-checks the hashes of the last remembered blocks and, if the chain diverged, rolls every
    table back to the common ancestor. Queries are on :attr:`model` (a :class:`ReadModel` on the
    same database).
    """

    def __init__(
        self,
        *,
        database: Path | str,
        rpc_url: str,
        registry: str,
        ledger: str,
        deployment_block: int,
        chain_id: int | None = None,
        confirmations: int = 0,
        initial_range: int = 2_000,
        max_range: int = 100_000,
        result_limit: int | None = None,
        reorg_window: int = DEFAULT_REORG_WINDOW,
        rpc_timeout: float = 30.0,
        rpc_retries: int = 4,
    ) -> None:
        self._rpc = JsonRpc(rpc_url=rpc_url, timeout=rpc_timeout, retries=rpc_retries)
        self._decoder = EventDecoder.for_contracts(
            {registry: "AgencyRegistry", ledger: "ClearanceLedger"}, hex_bytes=True
        )
        self._db = connect(database)
        self._applier = Applier(self._db)
        self._deployment_block = deployment_block
        self._confirmations = confirmations
        self._initial_range = initial_range
        self._max_range = max_range
        self._result_limit = result_limit
        self._reorg_window = reorg_window
        self._check_meta(
            {
                "schema_version": str(SCHEMA_VERSION),
                "registry": registry.lower(),
                "ledger": ledger.lower(),
                "deployment_block": str(deployment_block),
                **({"chain_id": str(chain_id)} if chain_id is not None else {}),
            }
        )
        self.model = ReadModel(self._db)
        #: ``(from cursor, to ancestor)`` of every rollback this indexer performed, oldest first.
        self.rollbacks: list[tuple[int, int]] = []
        #: Timings of the last poll that processed blocks.
        self.last_poll: PollStats | None = None

    @classmethod
    def for_deployment(
        cls,
        deployment: Deployment,
        *,
        database: Path | str,
        rpc_url: str,
        confirmations: int = 0,
        **options: Any,
    ) -> Indexer:
        """An indexer for a :class:`ledger_api.chain.Deployment` record."""
        return cls(
            database=database,
            rpc_url=rpc_url,
            registry=deployment.registry,
            ledger=deployment.ledger,
            deployment_block=deployment.deployment_block,
            chain_id=deployment.chain_id,
            confirmations=confirmations,
            **options,
        )

    def close(self) -> None:
        """Close the database and the RPC client."""
        self._rpc.close()
        self._db.close()

    def __enter__(self) -> Indexer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ meta / cursor

    def _check_meta(self, expected: dict[str, str]) -> None:
        stored = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        for key, value in expected.items():
            if key in stored and stored[key] != value:
                raise IndexMismatch(f"index database was built for {key}={stored[key]}, not {value}")
        self._db.execute("BEGIN")
        self._db.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)", expected.items())
        self._db.execute("INSERT OR IGNORE INTO cursor VALUES (1, ?, NULL)", (self._deployment_block - 1,))
        self._db.execute("COMMIT")

    @property
    def cursor(self) -> tuple[int, str | None]:
        """The last fully processed block: ``(number, hash)``."""
        row = self._db.execute("SELECT block_number, block_hash FROM cursor WHERE id = 1").fetchone()
        return int(row[0]), row[1]

    def head(self) -> int:
        """The node's head block number."""
        return self._rpc.block_number()

    def lag(self) -> int:
        """Blocks between the chain head and the cursor (0 when caught up); for health checks."""
        return max(0, self.head() - self.cursor[0])

    # ------------------------------------------------------------------ polling

    def poll(self) -> int:
        """Roll back a reorg if there was one, then index up to ``head - confirmations``.

        Returns the number of events processed.
        """
        self._rollback_if_diverged()
        target = self.head() - self._confirmations
        start = self.cursor[0] + 1
        if target < start:
            return 0
        processed = pages_seen = 0
        fetch = decode = apply = 0.0
        started = time.perf_counter()
        pages = prefetched(
            fetch_logs(
                self._rpc,
                self._decoder.addresses,
                start,
                target,
                initial_range=self._initial_range,
                max_range=self._max_range,
                result_limit=self._result_limit,
            )
        )
        mark = time.perf_counter()
        for page in pages:
            t0 = time.perf_counter()
            fetch += t0 - mark
            events = self._decoder.decode_all(page)
            blocks = self._block_times(page)
            t1 = time.perf_counter()
            decode += t1 - t0
            try:
                self._db.execute("BEGIN")
                self._applier.apply_all(events, {number: ts for number, (_, ts) in blocks.items()})
                self._applier.flush()
                self._db.executemany(
                    "INSERT OR REPLACE INTO blocks VALUES (?, ?, ?)",
                    [(number, h, ts) for number, (h, ts) in blocks.items()],
                )
                if blocks:
                    last = max(blocks)
                    self._db.execute(
                        "UPDATE cursor SET block_number = ?, block_hash = ? WHERE id = 1", (last, blocks[last][0])
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._applier.reset()
                raise
            processed += len(events)
            pages_seen += 1
            mark = time.perf_counter()
            apply += mark - t1
        header = self._rpc.call("eth_getBlockByNumber", [hex(target), False])
        if header is not None:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT OR REPLACE INTO blocks VALUES (?, ?, ?)", (target, header["hash"], int(header["timestamp"], 16))
            )
            self._db.execute(
                "UPDATE cursor SET block_number = ?, block_hash = ? WHERE id = 1", (target, header["hash"])
            )
            self._db.execute("COMMIT")
        self.last_poll = PollStats(
            events=processed,
            blocks=target - start + 1,
            pages=pages_seen,
            fetch_seconds=fetch,
            decode_seconds=decode,
            apply_seconds=apply,
            total_seconds=time.perf_counter() - started,
        )
        return processed

    def follow(
        self,
        *,
        stop: threading.Event,
        interval: float = 1.0,
        on_error: Callable[[ChainError], None] | None = None,
    ) -> None:
        """Poll until ``stop`` is set: at once again while there is work, every ``interval`` seconds
        when caught up. Chain errors (node down, refused queries) go to ``on_error`` and are retried
        after ``interval``; read-model errors (``ReorgTooDeep``, ``IndexMismatch``) end the loop.

        Run it in its own thread with its own :class:`Indexer`; readers elsewhere use
        :meth:`ReadModel.open` on the same database file (WAL lets them read while it writes).
        """
        while not stop.is_set():
            try:
                processed = self.poll()
            except ChainError as exc:
                if on_error is not None:
                    on_error(exc)
                processed = 0
            if processed == 0:
                stop.wait(interval)

    def _block_times(self, logs: Sequence[Any]) -> dict[int, tuple[str, int]]:
        """``{block number: (hash, timestamp)}`` of the blocks these logs are in."""
        blocks: dict[int, tuple[str, int]] = {}
        missing: list[int] = []
        for log in logs:
            number = int(log["blockNumber"], 16)
            if number in blocks:
                continue
            stamp = log.get("blockTimestamp")
            if stamp is None:
                missing.append(number)
                blocks[number] = (log["blockHash"], 0)
            else:
                blocks[number] = (log["blockHash"], int(stamp, 16))
        if missing:
            headers = self._rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in missing])
            for number, header in zip(missing, headers, strict=True):
                if header is None or header["hash"] != blocks[number][0]:
                    raise ReorgTooDeep(f"block {number} changed while it was being indexed; poll again")
                blocks[number] = (header["hash"], int(header["timestamp"], 16))
        return blocks

    # ------------------------------------------------------------------ reorgs

    def _chain_hashes(self, numbers: Sequence[int]) -> list[str | None]:
        headers = self._rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers])
        return [None if h is None else str(h["hash"]) for h in headers]

    def _rollback_if_diverged(self) -> int | None:
        """Compare remembered block hashes with the chain; roll back if they differ.

        Returns the common-ancestor block rolled back to, or ``None`` when nothing diverged.
        """
        cursor, _ = self.cursor
        recent = self._db.execute(
            "SELECT block_number, block_hash FROM blocks WHERE block_number > ? ORDER BY block_number DESC",
            (cursor - self._reorg_window,),
        ).fetchall()
        if not recent:
            return None
        chain = self._chain_hashes([n for n, _ in recent])
        diverged = [n for (n, stored), now in zip(recent, chain, strict=True) if stored != now]
        if not diverged:
            return None
        lowest_bad = min(diverged)
        ancestor = self._find_ancestor(lowest_bad)
        self.rollbacks.append((cursor, ancestor))
        self.rollback(ancestor)
        return ancestor

    def _find_ancestor(self, below: int) -> int:
        """The highest remembered block below ``below`` whose hash the chain still has."""
        while True:
            rows = self._db.execute(
                "SELECT block_number, block_hash FROM blocks WHERE block_number < ? "
                "ORDER BY block_number DESC LIMIT 64",
                (below,),
            ).fetchall()
            if not rows:
                if below <= self._deployment_block:
                    raise ReorgTooDeep(f"the chain diverged at or below the deployment block {self._deployment_block}")
                return self._deployment_block - 1
            chain = self._chain_hashes([n for n, _ in rows])
            for (number, stored), now in zip(rows, chain, strict=True):
                if stored == now:
                    return int(number)
            below = int(rows[-1][0])

    def rollback(self, block_number: int) -> None:
        """Delete everything derived from blocks after ``block_number`` and move the cursor there."""
        row = self._db.execute("SELECT block_hash FROM blocks WHERE block_number = ?", (block_number,)).fetchone()
        self._db.execute("BEGIN")
        try:
            for table in DERIVED_TABLES:
                if table == "events":  # keyed by position = block << 20 | log index: a rowid range
                    self._db.execute("DELETE FROM events WHERE position >= ?", ((block_number + 1) << 20,))
                else:
                    self._db.execute(f"DELETE FROM {table} WHERE block_number > ?", (block_number,))  # noqa: S608
            self._db.execute(
                "UPDATE cursor SET block_number = ?, block_hash = ? WHERE id = 1",
                (block_number, row[0] if row else None),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        finally:
            self._applier.reset()
