"""The committed contract artifacts (ABI + creation and runtime bytecode).

They are produced by ``scripts/build_artifacts.py`` and a test proves they are what the sources
compile to, byte for byte; the application never compiles at run time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from ledger_api.errors import ToolchainError

__all__ = ["ContractArtifact", "canonical_type", "load_artifact"]


@dataclass(frozen=True, kw_only=True)
class ContractArtifact:
    """ABI and bytecode of one contract, as committed."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str  # creation code, 0x-prefixed hex
    deployed_bytecode: str  # runtime code, 0x-prefixed hex
    compiler_version: str


@cache
def load_artifact(name: str) -> ContractArtifact:
    """Load the committed artifact of contract ``name`` (``AgencyRegistry`` / ``ClearanceLedger``)."""
    try:
        text = resources.files("ledger_api.chain").joinpath("artifacts", f"{name}.json").read_text()
    except FileNotFoundError as exc:
        raise ToolchainError(f"no committed artifact for contract {name!r}") from exc
    raw = json.loads(text)
    return ContractArtifact(
        name=raw["contractName"],
        abi=raw["abi"],
        bytecode=raw["bytecode"],
        deployed_bytecode=raw["deployedBytecode"],
        compiler_version=raw["compiler"]["version"],
    )


def canonical_type(param: dict[str, Any] | Any) -> str:
    """Canonical ABI type of an ABI parameter, tuples expanded: ``(uint8,bytes32,bytes)[]``
    (what selectors and topic hashes are computed over)."""
    abi_type = str(param["type"])
    if abi_type.startswith("tuple"):
        inner = ",".join(canonical_type(c) for c in param["components"])
        return f"({inner}){abi_type[5:]}"
    return abi_type

