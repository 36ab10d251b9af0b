"""RegistryDirectory while the node is unreachable: last answers served (bounded), unknown callers 503."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from ledger_api.chain.identity import RegistryDirectory
from ledger_api.errors import ChainUnavailable
from ledger_api.models import Identity

TRADER = "0x" + "ab" * 20


class _Flaky(RegistryDirectory):
    def __init__(self, **kwargs: Any) -> None:  # no web3 contract: _lookup is replaced
        self._ttl, self._max_stale, self._max_entries = kwargs["ttl"], kwargs["max_stale"], 1000
        self._cache = {}
        import threading

        self._lock = threading.Lock()
        self.endpoint = "http://node.test"
        self.up = True
        self.lookups = 0

    def _lookup(self, address: str, at: int) -> Identity | None:
        self.lookups += 1
        if not self.up:
            raise requests.ConnectionError("connection refused")
        return Identity(address=address, kind="trader")


def test_the_last_answer_is_served_while_the_node_is_down_then_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("ledger_api.chain.identity.time.monotonic", lambda: clock[0])
    directory = _Flaky(ttl=5.0, max_stale=60.0)
    assert directory.identity(TRADER, at=0) is not None and directory.lookups == 1
    directory.up = False
    clock[0] += 10  # cache expired: the node is asked, fails, the last answer stands
    served = directory.identity(TRADER, at=0)
    assert served is not None and served.kind == "trader" and directory.lookups == 2
    clock[0] += 100  # beyond max_stale: no more guessing
    with pytest.raises(ChainUnavailable):
        directory.identity(TRADER, at=0)
    with pytest.raises(ChainUnavailable):  # never seen: nothing to fall back on
        directory.identity("0x" + "cd" * 20, at=0)
    directory.up = True
    assert directory.identity(TRADER, at=0) is not None
