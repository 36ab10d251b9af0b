"""The committed ABI + bytecode are exactly what the sources compile to (real solc-js via py-solc-x)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger_api.chain._solc import CONTRACTS, compile_artifacts, render_artifact
from ledger_api.chain.artifacts import load_artifact

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_committed_artifacts_are_reproducible_byte_for_byte() -> None:
    fresh = compile_artifacts(REPO)
    assert set(fresh) == set(CONTRACTS)
    for name, artifact in fresh.items():
        committed = (REPO / "ledger_api" / "chain" / "artifacts" / f"{name}.json").read_text()
        assert render_artifact(artifact) == committed, f"{name}: run `make artifacts` and commit"


def test_artifacts_load_with_runtime_code_and_pinned_compiler() -> None:
    for name in CONTRACTS:
        artifact = load_artifact(name)
        assert artifact.compiler_version.startswith("0.8.37+commit.")
        assert len(artifact.deployed_bytecode) > 2_000
        # EIP-170: runtime code must stay under 24 KiB on every EVM we target.
        assert (len(artifact.deployed_bytecode) - 2) // 2 < 24_576
        assert any(item["type"] == "error" for item in artifact.abi)
