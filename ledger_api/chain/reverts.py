"""Map revert data of our contracts' custom errors to :class:`ContractRevert`, by selector.

This is the one place where revert bytes become domain errors; everything else raises what
:func:`decode_revert` returns.
"""

from __future__ import annotations

from functools import cache

from eth_abi.abi import decode as abi_decode
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address

from ledger_api.chain.artifacts import canonical_type, load_artifact
from ledger_api.errors import ContractRevert

__all__ = ["decode_revert", "error_selectors"]


@cache
def error_selectors() -> dict[bytes, tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """Selector → (error name, argument names, argument ABI types) for both contracts' errors."""
    table: dict[bytes, tuple[str, tuple[str, ...], tuple[str, ...]]] = {}
    for contract in ("AgencyRegistry", "ClearanceLedger"):
        for item in load_artifact(contract).abi:
            if item["type"] != "error":
                continue
            types = tuple(canonical_type(i) for i in item["inputs"])
            names = tuple(str(i["name"]) for i in item["inputs"])
            selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})")
            table[selector] = (str(item["name"]), names, types)
    return table


def decode_revert(data: bytes) -> ContractRevert | None:
    """Decode revert ``data``; ``None`` when it is not one of our (or OpenZeppelin's) custom errors."""
    entry = error_selectors().get(bytes(data[:4]))
    if entry is None:
        return None
    name, names, types = entry
    try:
        values = abi_decode(list(types), bytes(data[4:]))
    except Exception:  # malformed arguments: still name the error
        return ContractRevert(name, {})
    rendered = {n: _render(t, v) for n, t, v in zip(names, types, values, strict=True)}
    return ContractRevert(name, rendered)


def _render(abi_type: str, value: object) -> object:
    if abi_type == "address":
        return to_checksum_address(str(value))
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return value
