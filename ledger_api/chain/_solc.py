"""Compile the contracts with the pinned solc-js through py-solc-x (build-time only).

Used by ``scripts/build_artifacts.py`` (which writes the committed artifacts) and by the test that
proves those artifacts are reproducible from source. The application never compiles at run time:
it deploys and talks to contracts from :mod:`ledger_api.chain.artifacts`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import solcx
import solcx.wrapper

from ledger_api.errors import ToolchainError

__all__ = ["COMPILER_SETTINGS", "CONTRACTS", "SOLC_VERSION", "compile_artifacts", "render_artifact"]

#: The compiler release pinned in package.json and brownie-config.yaml.
SOLC_VERSION = "0.8.37"

#: Contracts the Python side deploys; each becomes ``ledger_api/chain/artifacts/<name>.json``.
CONTRACTS = {"AgencyRegistry": "contracts/AgencyRegistry.sol", "ClearanceLedger": "contracts/ClearanceLedger.sol"}

#: Settings shared with brownie-config.yaml (optimizer, via-IR, EVM version, remapping).
COMPILER_SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "viaIR": True,
    "evmVersion": "cancun",
    "remappings": ["@openzeppelin/=node_modules/@openzeppelin/"],
    "metadata": {"bytecodeHash": "ipfs"},
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
}


def _standard_input(repo_root: Path) -> dict[str, Any]:
    sources = {
        path.relative_to(repo_root).as_posix(): {"urls": [path.relative_to(repo_root).as_posix()]}
        for path in sorted((repo_root / "contracts").rglob("*.sol"))
    }
    return {"language": "Solidity", "sources": sources, "settings": COMPILER_SETTINGS}


def compile_artifacts(repo_root: Path, solc_binary: Path | None = None) -> dict[str, dict[str, Any]]:
    """Compile ``contracts/`` of the checkout at ``repo_root``; return one artifact per contract.

    ``solc_binary`` defaults to the repository's solc-js wrapper (``scripts/toolchain/solc.js``).
    Raises :class:`ToolchainError` when the compiler is missing or reports an error.
    """
    binary = solc_binary or repo_root / "scripts" / "toolchain" / "solc.js"
    if not binary.is_file() or not (repo_root / "node_modules" / "solc").is_dir():
        raise ToolchainError(f"solc wrapper or npm module missing under {repo_root}")
    try:
        output = solcx.compile_standard(
            _standard_input(repo_root),
            solc_binary=str(binary),
            base_path=str(repo_root),
            allow_paths=[str(repo_root)],
        )
        version = str(solcx.wrapper.get_solc_version(binary, with_commit_hash=True))
    except solcx.exceptions.SolcError as exc:
        raise ToolchainError(f"compilation failed: {exc.message}") from exc
    artifacts: dict[str, dict[str, Any]] = {}
    for name, source in CONTRACTS.items():
        unit = output["contracts"][source][name]
        artifacts[name] = {
            "contractName": name,
            "sourceName": source,
            "compiler": {"version": version, "settings": COMPILER_SETTINGS},
            "abi": unit["abi"],
            "bytecode": "0x" + unit["evm"]["bytecode"]["object"],
            "deployedBytecode": "0x" + unit["evm"]["deployedBytecode"]["object"],
        }
    return artifacts


def render_artifact(artifact: dict[str, Any]) -> str:
    """Serialize an artifact deterministically (the committed byte-for-byte form)."""
    return json.dumps(artifact, indent=1, sort_keys=True) + "\n"
