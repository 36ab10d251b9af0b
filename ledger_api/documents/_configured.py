"""Content stores chosen by settings: the embedded store under ``var_dir`` or an IPFS node.

:class:`LazyIpfsStore` connects on first use (and again after an outage), so a service or an
oracle can start — and report its store as down — while the daemon is unreachable.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from ledger_api.config import Settings
from ledger_api.documents._cid import Cid
from ledger_api.documents._ipfs import IpfsStore
from ledger_api.documents._store import DEFAULT_MAX_SIZE, ContentStore, LocalStore, Source, StoredDocument
from ledger_api.errors import StoreUnavailable

__all__ = ["LazyIpfsStore", "content_store"]

_T = TypeVar("_T")


class LazyIpfsStore(ContentStore):
    """An :class:`IpfsStore` connected on first use and again after an outage.

    ``IpfsStore`` talks to its daemon when constructed; the service must start (and report the
    store as down in its health) while the daemon is unreachable, so the connection is deferred.
    """

    def __init__(self, api: str) -> None:
        self._api = api
        self._store: IpfsStore | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"IpfsStore({self._api!r}, lazy)"

    def _connected(self) -> IpfsStore:
        with self._lock:
            if self._store is None:
                self._store = IpfsStore(self._api)  # raises StoreUnavailable while the daemon is down
            return self._store

    def _use(self, action: Callable[[IpfsStore], _T]) -> _T:
        store = self._connected()
        try:
            return action(store)
        except StoreUnavailable:
            with self._lock:
                self._store = None  # reconnect next time
            raise

    def put(
        self, source: Source, *, max_size: int | None = DEFAULT_MAX_SIZE, cid_version: int = 1, pin: bool = True
    ) -> StoredDocument:
        """See :meth:`ContentStore.put`."""
        return self._use(lambda s: s.put(source, max_size=max_size, cid_version=cid_version, pin=pin))

    def get_block_unverified(self, cid: Cid) -> bytes:
        """See :meth:`ContentStore.get_block_unverified`."""
        return self._use(lambda s: s.get_block_unverified(cid))

    def put_block(self, cid: Cid, block: bytes) -> None:
        """See :meth:`ContentStore.put_block`."""
        self._use(lambda s: s.put_block(cid, block))

    def has(self, cid: str | Cid) -> bool:
        """See :meth:`ContentStore.has`."""
        return self._use(lambda s: s.has(cid))

    def pin(self, cid: str | Cid) -> None:
        """See :meth:`ContentStore.pin`."""
        self._use(lambda s: s.pin(cid))

    def unpin(self, cid: str | Cid) -> None:
        """See :meth:`ContentStore.unpin`."""
        self._use(lambda s: s.unpin(cid))

    def list(self) -> list[str]:
        """See :meth:`ContentStore.list`."""
        return self._use(lambda s: s.list())


def content_store(settings: Settings) -> ContentStore:
    """The configured content store: an IPFS (Kubo RPC) node, or the embedded store under var_dir."""
    if settings.ipfs_api:
        return LazyIpfsStore(settings.ipfs_api)
    return LocalStore(settings.var_dir / "store")
