"""Governance transactions to the AgencyRegistry, sent with the governor keys this service holds.

Governance is rare and interactive: a governor proposes, approves or executes one membership change
and wants to know at once whether it went through. So, unlike ledger writes (outbox, 202), these
transactions are sent synchronously: estimate (a revert comes back as the registry's typed custom
error), sign, broadcast, wait for the receipt, and decode the registry's events from it.

The registry's ABI comes from the committed artifact: :func:`registry_call` encodes a governed
function's call data and :func:`decode_registry_call` reads it back (for proposals in the read model).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address

from ledger_api.chain._signing import FastSigner
from ledger_api.chain._tx_calls import LedgerCall
from ledger_api.chain._tx_rpc import RpcError
from ledger_api.chain.artifacts import canonical_type, load_artifact
from ledger_api.chain.client import LedgerClient
from ledger_api.chain.deploy import Deployment
from ledger_api.chain.events import DecodedEvent, EventDecoder
from ledger_api.chain.keystore import Keystore
from ledger_api.config import Settings
from ledger_api.errors import ConfigurationError, NoCustody, TransactionError

__all__ = [
    "GovernanceClient",
    "GovernanceReceipt",
    "MAX_GOVERNOR_LABELS",
    "decode_registry_call",
    "registry_call",
]

#: Keystore labels ``governor-0`` … ``governor-31`` are looked for (a consortium has at most 32 governors).
MAX_GOVERNOR_LABELS = 32


@cache
def _registry_functions() -> dict[str, tuple[bytes, tuple[str, ...], tuple[str, ...]]]:
    """Function name → (selector, argument names, canonical argument types) of the AgencyRegistry."""
    table: dict[str, tuple[bytes, tuple[str, ...], tuple[str, ...]]] = {}
    for item in load_artifact("AgencyRegistry").abi:
        if item["type"] != "function":
            continue
        types = tuple(canonical_type(i) for i in item["inputs"])
        names = tuple(str(i["name"]) for i in item["inputs"])
        selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})")
        table[str(item["name"])] = (selector, names, types)
    return table


def registry_call(function: str, args: Sequence[object]) -> LedgerCall:
    """A call of AgencyRegistry ``function`` with ``args`` (ABI-encoded from the committed artifact)."""
    selector, _, types = _registry_functions()[function]
    return LedgerCall(function=function, calldata=selector + abi_encode(list(types), list(args)))


def _render(abi_type: str, value: object) -> object:
    if abi_type == "address":
        return to_checksum_address(str(value))
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return value


def decode_registry_call(calldata: bytes) -> tuple[str, dict[str, object]] | None:
    """(function name, arguments by name) of AgencyRegistry call data; ``None`` if it is not one."""
    for name, (selector, names, types) in _registry_functions().items():
        if calldata[:4] != selector:
            continue
        try:
            values = abi_decode(list(types), calldata[4:])
        except Exception:  # noqa: BLE001 - eth_abi raises several unrelated types; undecodable is "not one"
            return None
        return name, {n: _render(t, v) for n, t, v in zip(names, types, values, strict=True)}
    return None


@dataclass(frozen=True, kw_only=True, slots=True)
class GovernanceReceipt:
    """A mined, successful governance transaction and the registry events it emitted."""

    tx_hash: str
    block_number: int
    events: tuple[DecodedEvent, ...]

    def event(self, name: str) -> DecodedEvent | None:
        """The first event called ``name``, if any."""
        return next((e for e in self.events if e.name == name), None)


class GovernanceClient:
    """Signs and sends AgencyRegistry transactions for the governor keys it holds, one at a time.

    Each transaction uses a fresh :class:`LedgerClient` aimed at the registry (its nonce is read from
    the node's pending count), closed once the receipt is in: nothing stays open between the rare
    governance requests, and a lock keeps two of them from racing for the same nonce.
    """

    def __init__(
        self, *, rpc_url: str, registry: str, signers: Iterable[FastSigner], chain_id: int | None = None,
        confirmations: int = 0, timeout: float = 30.0,
    ) -> None:  # fmt: skip
        self.rpc_url = rpc_url
        self.registry = to_checksum_address(registry)
        self._signers = {s.address.lower(): s for s in signers}
        self._chain_id = chain_id
        self._confirmations = confirmations
        self._timeout = timeout
        self._lock = threading.Lock()
        self._decoder = EventDecoder.for_contracts({self.registry: "AgencyRegistry"}, hex_bytes=True)

    @classmethod
    def from_settings(cls, settings: Settings, deployment: Deployment, keystore: Keystore) -> GovernanceClient:
        """A client holding every ``governor-N`` key the keystore already has (none is created).

        With ``settings.signer_labels`` set, only governor labels listed there are loaded. A key
        named like a governor of the deployment record must have that governor's address.
        """
        signers = []
        for n in range(MAX_GOVERNOR_LABELS):
            label = f"governor-{n}"
            if not keystore.has_signer(label):
                continue
            if settings.signer_labels is not None and label not in settings.signer_labels:
                continue
            account = keystore.signer(label)
            if n < len(deployment.governors) and account.address.lower() != deployment.governors[n].lower():
                raise ConfigurationError(
                    f"key {label!r} is {account.address}, deployment says {deployment.governors[n]}"
                )
            signers.append(FastSigner(private_key=bytes(account.key)))
        return cls(
            rpc_url=settings.effective_rpc_url, registry=deployment.registry, signers=signers,
            chain_id=deployment.chain_id, confirmations=settings.confirmations,
        )  # fmt: skip

    @property
    def addresses(self) -> tuple[str, ...]:
        """Checksummed addresses of the governor keys held."""
        return tuple(s.address for s in self._signers.values())

    def require_custody(self, address: str) -> None:
        """Raise :class:`NoCustody` unless this service holds governor key ``address``."""
        if address.lower() not in self._signers:
            raise NoCustody(f"this service holds no governor key for {address}")

    def transact(self, call: LedgerCall, signer: str) -> GovernanceReceipt:
        """Send ``call`` to the registry from governor ``signer`` and wait for its receipt (blocking).

        Raises the registry's custom error as :class:`~ledger_api.errors.ContractRevert` (at estimate
        time, or replayed for a failed receipt), ``ChainUnavailable`` when the node cannot be reached,
        ``TransactionTimeout`` when it is not mined in time.
        """
        self.require_custody(signer)
        with self._lock:
            client = LedgerClient(
                rpc_url=self.rpc_url, ledger_address=self.registry, signers=self._signers.values(),
                chain_id=self._chain_id, confirmations=self._confirmations,
            )  # fmt: skip
            try:
                handle = client.send(call, signer)
                receipt = client.wait(handle, timeout=self._timeout)
                try:
                    raw = client.rpc.call("eth_getTransactionReceipt", [handle.tx_hash])
                except RpcError as exc:
                    raise TransactionError(f"eth_getTransactionReceipt: {exc}") from exc
            finally:
                client.close()
        if not isinstance(raw, Mapping) or not isinstance(raw.get("logs"), list):
            raise TransactionError(f"no receipt logs for {handle.tx_hash}")
        logs: list[Any] = raw["logs"]
        return GovernanceReceipt(
            tx_hash=handle.tx_hash, block_number=receipt.block_number, events=tuple(self._decoder.decode_all(logs))
        )
