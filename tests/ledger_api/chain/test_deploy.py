"""Deploy + bootstrap on a real anvil, idempotent re-runs, restart persistence, revert decoding."""

from __future__ import annotations

import dataclasses

import pytest
from web3 import Web3

from ledger_api.chain import AnvilNode, Deployment, ensure_deployed, load_artifact
from ledger_api.chain.consortium import Role, default_consortium
from ledger_api.chain.deploy import agency_id_bytes
from ledger_api.chain.keystore import Keystore
from ledger_api.chain.reverts import decode_revert
from ledger_api.config import Settings
from ledger_api.errors import DeploymentError

pytestmark = pytest.mark.integration


def _contracts(settings: Settings, record: Deployment) -> tuple[Web3, object, object]:
    w3 = Web3(Web3.HTTPProvider(settings.effective_rpc_url))
    registry = w3.eth.contract(address=record.registry, abi=load_artifact("AgencyRegistry").abi)
    ledger = w3.eth.contract(address=record.ledger, abi=load_artifact("ClearanceLedger").abi)
    return w3, registry, ledger


def test_first_run_deploys_and_bootstraps_the_default_consortium(embedded_settings: Settings) -> None:
    record, created = ensure_deployed(embedded_settings)
    assert created
    w3, registry, ledger = _contracts(embedded_settings, record)
    spec = default_consortium()
    assert registry.functions.agencyCount().call() == len(spec.agencies)
    assert registry.functions.bootstrapping().call() is False
    assert registry.functions.isGovernedTarget(record.ledger).call() is True
    governor_count, threshold, _, _ = registry.functions.governance().call()
    assert (governor_count, threshold) == (spec.governors, spec.threshold)
    customs = registry.functions.agency(agency_id_bytes("CN-TJ-CUSTOMS")).call()
    assert customs[3] == (1 << Role.CUSTOMS_AUTHORITY) | (1 << Role.TRADER_REGISTRAR)
    assert customs[4] == b"CN"
    for agency_id, agency in record.agencies.items():
        for signer in agency.signers:
            key = registry.functions.signerKey(signer).call()
            assert key[0] == agency.index, agency_id
    for address in record.traders.values():
        assert registry.functions.trader(address).call()[1] == 1  # ACTIVE
    assert ledger.functions.approvalsRequired(3).call() == 2  # SEIZE is dual-control
    assert ledger.functions.registry().call() == record.registry


def test_second_run_reuses_the_deployment(embedded_settings: Settings) -> None:
    first = Deployment.load(embedded_settings.var_dir / "deployment.json")
    again, created = ensure_deployed(embedded_settings)
    assert not created
    assert again == first


def test_state_survives_a_node_restart(embedded_settings: Settings) -> None:
    node = AnvilNode(state_dir=embedded_settings.var_dir / "anvil", port=embedded_settings.anvil_port)
    before, _ = ensure_deployed(embedded_settings)
    w3 = Web3(Web3.HTTPProvider(embedded_settings.effective_rpc_url))
    height = w3.eth.block_number
    assert node.stop()
    assert node.chain_id() is None
    after, created = ensure_deployed(embedded_settings)  # starts anvil again from state.json
    assert not created and after == before
    assert w3.eth.block_number == height


def test_a_record_that_does_not_match_the_chain_is_refused(embedded_settings: Settings) -> None:
    record, _ = ensure_deployed(embedded_settings)
    path = embedded_settings.var_dir / "deployment.json"
    original = path.read_text()
    try:
        dataclasses.replace(record, ledger_codehash="0x" + "00" * 32).save(path)
        with pytest.raises(DeploymentError, match="does not match the deployment record"):
            ensure_deployed(embedded_settings)
    finally:
        path.write_text(original)


def test_governed_call_after_bootstrap_reverts_with_decoded_custom_error(embedded_settings: Settings) -> None:
    record, _ = ensure_deployed(embedded_settings)
    w3, registry, _ = _contracts(embedded_settings, record)
    deployer = Keystore.from_settings(embedded_settings).signer("deployer")
    call = registry.functions.addAgency(agency_id_bytes("XX-ROGUE"), "Rogue", b"XX", 1, b"\0" * 32, "")
    with pytest.raises(Exception) as info:
        call.call({"from": deployer.address})
    data = info.value.data  # type: ignore[attr-defined]
    decoded = decode_revert(bytes.fromhex(data[2:]))
    assert decoded is not None
    assert decoded.error_name == "AgencyRegistryNotGovernance"
    assert decoded.args_by_name == {"caller": deployer.address}


def test_stopping_the_node_leaves_no_native_anvil_behind(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import socket
    import subprocess

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    node = AnvilNode(state_dir=tmp_path, port=port)
    node.start()
    try:
        marker = f"--port {port} "
        running = subprocess.run(["pgrep", "-f", "--", marker], capture_output=True, text=True).stdout.split()
        assert len(running) >= 2  # the node wrapper and the native binary
        node.stop()
        assert subprocess.run(["pgrep", "-f", "--", marker], capture_output=True, text=True).stdout.split() == []
        assert (tmp_path / "state.json").exists()  # the native anvil dumped its state on SIGTERM
    finally:
        node.stop()  # idempotent: also when an assertion above failed
