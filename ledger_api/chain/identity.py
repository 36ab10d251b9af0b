"""Who an address is, according to the AgencyRegistry: an agency key (with roles), a trader or a governor.

Backs request authentication (:class:`ledger_api.api.auth.IdentityDirectory`). Answers are cached
for a few seconds: a suspended agency or revoked key stops working within that time. While the node
is unreachable the last answer is served for up to ``max_stale`` seconds (2 minutes) (the service keeps taking
writes into its outbox and serving reads); a caller never seen before gets ``ChainUnavailable``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from web3 import Web3

from ledger_api.chain.artifacts import load_artifact
from ledger_api.chain.consortium import Role
from ledger_api.errors import ChainUnavailable
from ledger_api.models import Identity

__all__ = ["RegistryDirectory"]

_ACTIVE = 1


class RegistryDirectory:
    """Resolve callers from the registry's views, with a short TTL cache."""

    def __init__(
        self, *, w3: Web3, registry: str, ttl: float = 5.0, max_stale: float = 120.0, max_entries: int = 50_000
    ) -> None:
        self._registry = w3.eth.contract(
            address=Web3.to_checksum_address(registry), abi=load_artifact("AgencyRegistry").abi
        )
        self._ttl = ttl
        self._max_stale = max_stale
        self._max_entries = max_entries
        #: Named in errors (the JSON-RPC endpoint when built by :meth:`connect`).
        self.endpoint = "the registry's node"
        self._cache: dict[str, tuple[float, Identity | None]] = {}
        self._lock = threading.Lock()

    @classmethod
    def connect(cls, *, rpc_url: str, registry: str, ttl: float = 5.0) -> RegistryDirectory:
        """A directory reading the registry at ``registry`` through the JSON-RPC endpoint ``rpc_url``."""
        directory = cls(w3=Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 3})), registry=registry, ttl=ttl)
        directory.endpoint = rpc_url
        return directory

    def identity(self, address: str, *, at: int) -> Identity | None:
        """The identity of ``address`` at unix time ``at``: a currently valid agency key, an active trader, or
        (when it is neither) a current governor."""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(address)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            identity = self._lookup(Web3.to_checksum_address(address), at)
        except Exception as exc:  # noqa: BLE001 - web3 / requests raise many types for an unreachable node
            if cached is not None and now - cached[0] < self._max_stale:
                return cached[1]  # the last answer, while the node is down (bounded)
            raise ChainUnavailable(self.endpoint, f"registry lookup failed ({type(exc).__name__})") from exc
        with self._lock:
            if len(self._cache) >= self._max_entries:  # bounded: drop what has expired, else start over
                self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
                if len(self._cache) >= self._max_entries:
                    self._cache.clear()
            self._cache[address] = (now + self._ttl, identity)
        return identity

    def _lookup(self, address: str, at: int) -> Identity | None:
        functions: Any = self._registry.functions
        agency_index, valid_from, valid_until, compromised_at = functions.signerKey(address).call()
        if agency_index:
            if not (valid_from <= at < valid_until) or (compromised_at and at >= compromised_at):
                return None
            agency = functions.agencyByIndex(agency_index).call()
            agency_id, status, roles = agency[0], agency[2], agency[3]
            if status != _ACTIVE:
                return None
            return Identity(
                address=address,
                kind="agency",
                agency_id=agency_id.rstrip(b"\0").decode("ascii"),
                roles=frozenset(role.name for role in Role if roles & (1 << role)),
            )
        _registrar, trader_status, aeo = functions.trader(address).call()
        if trader_status == _ACTIVE:
            return Identity(address=address, kind="trader", aeo=bool(aeo))
        if functions.isGovernor(address).call():
            return Identity(address=address, kind="governor")
        return None
