"""Who an address is, according to the AgencyRegistry: an agency key (with roles), a trader or a governor.

Backs request authentication (:class:`ledger_api.api.auth.IdentityDirectory`). Answers are cached
for a few seconds: a suspended agency or revoked key stops working within that time.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from web3 import Web3

from ledger_api.chain.artifacts import load_artifact
from ledger_api.chain.consortium import Role
from ledger_api.models import Identity

__all__ = ["RegistryDirectory"]

_ACTIVE = 1


class RegistryDirectory:
    """Resolve callers from the registry's views, with a short TTL cache."""

    def __init__(self, *, w3: Web3, registry: str, ttl: float = 5.0) -> None:
        self._registry = w3.eth.contract(
            address=Web3.to_checksum_address(registry), abi=load_artifact("AgencyRegistry").abi
        )
        self._ttl = ttl
        self._cache: dict[str, tuple[float, Identity | None]] = {}
        self._lock = threading.Lock()

    @classmethod
    def connect(cls, *, rpc_url: str, registry: str, ttl: float = 5.0) -> RegistryDirectory:
        """A directory reading the registry at ``registry`` through the JSON-RPC endpoint ``rpc_url``."""
        return cls(w3=Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 10})), registry=registry, ttl=ttl)

    def identity(self, address: str, *, at: int) -> Identity | None:
        """The identity of ``address`` at unix time ``at``: a currently valid agency key, an active trader, or
        (when it is neither) a current governor."""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(address)
        if cached is not None and cached[0] > now:
            return cached[1]
        identity = self._lookup(Web3.to_checksum_address(address), at)
        with self._lock:
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
