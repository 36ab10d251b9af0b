"""Governors propose, approve and execute membership changes over HTTP (2-of-3 on a real anvil)."""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from coincurve import PrivateKey
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from ledger_api.api.governance_client import GovernanceClient, decode_registry_call, registry_call
from ledger_api.chain._signing import FastSigner
from ledger_api.chain.identity import RegistryDirectory
from ledger_api.chain.keystore import Keystore
from ledger_api.client import ApiProblem, LedgerHttpClient
from ledger_api.config import Settings
from ledger_api.errors import ChainUnavailable, ConfigurationError
from tests.ledger_api.api.conftest import Service

pytestmark = pytest.mark.integration

PROPOSALS = "/v1/governance/proposals"
SOME_SHA = "0x" + hashlib.sha256(b"nothing anchored").hexdigest()


def _problem(call: Callable[[], Any]) -> tuple[int, str, dict[str, Any]]:
    with pytest.raises(ApiProblem) as refused:
        call()
    body = refused.value.body if isinstance(refused.value.body, dict) else {}
    return refused.value.status, refused.value.problem_code, body


def _passed(service: Service, action: dict[str, Any], *, executor: str = "governor-2") -> dict[str, Any]:
    """Propose (governor-0), approve (governor-1), execute (``executor``); the execution's answer."""
    proposed = service.client("governor-0").post_json(PROPOSALS, action)
    approved = service.client("governor-1").post_json(f"{PROPOSALS}/{proposed['proposal_id']}/approvals", {})
    assert approved["proposal_id"] == proposed["proposal_id"] and approved["events"] == ["ProposalApproved"]
    executed: dict[str, Any] = service.client(executor).post_json(
        f"{PROPOSALS}/{proposed['proposal_id']}/execution", {}
    )
    return executed


def _fresh_key() -> tuple[bytes, str]:
    key = PrivateKey()
    return key.secret, to_checksum_address(keccak(key.public_key.format(compressed=False)[1:])[-20:])


def test_governor_keys_authenticate_as_governors_and_nothing_else(service: Service) -> None:
    directory = RegistryDirectory.connect(
        rpc_url=service.settings.effective_rpc_url, registry=service.deployment.registry
    )
    for label, address in zip(("governor-0", "governor-1", "governor-2"), service.deployment.governors, strict=True):
        assert service.address(label) == address
        identity = directory.identity(address, at=int(time.time()))
        assert identity is not None and identity.kind == "governor" and identity.agency_id is None
    customs = directory.identity(service.deployment.agencies["CN-TJ-CUSTOMS"].signers[0], at=int(time.time()))
    assert customs is not None and customs.kind == "agency"
    governor = service.client("governor-0")
    assert _problem(lambda: governor.verify_hash(SOME_SHA))[:2] == (403, "forbidden")
    assert _problem(governor.declarations)[:2] == (403, "forbidden")


def test_non_governors_are_refused(service: Service) -> None:
    action = {"action": "set_agency_status", "agency_id": "NL-NVWA", "status": "SUSPENDED"}
    for label in ("cn-tj-customs-signer-0", "trader-tj-foods"):
        client = service.client(label)
        assert _problem(lambda c=client: c.post_json(PROPOSALS, action))[:2] == (403, "forbidden")
        assert _problem(lambda c=client: c.post_json(f"{PROPOSALS}/1/approvals", {}))[:2] == (403, "forbidden")
        assert _problem(lambda c=client: c.get_json(f"{PROPOSALS}/1"))[:2] == (403, "forbidden")


def test_bad_actions_are_422_and_unknown_proposals_404(service: Service) -> None:
    governor = service.client("governor-0")
    bad_address = "0x" + "aB" * 20  # mixed case, wrong EIP-55 checksum
    cases: list[dict[str, Any]] = [
        {"action": "register_trader", "account": "0x" + "11" * 20, "aeo": True},  # not governed
        {"action": "raw_call", "target": service.deployment.registry, "call_data": "0x12345678"},
        {"action": "set_agency_status", "agency_id": "NL-NVWA", "status": "DELETED"},
        {"action": "set_agency_status", "agency_id": "nl-nvwa", "status": "SUSPENDED"},
        {"action": "set_agency_status", "agency_id": "NL-NVWA", "status": "SUSPENDED", "call_data": "0x00"},
        {"action": "set_agency_roles", "agency_id": "NL-NVWA", "roles": ["JANITOR"]},
        {"action": "set_agency_roles", "agency_id": "NL-NVWA", "roles": []},
        {"action": "add_signer_key", "agency_id": "NL-NVWA", "signer": bad_address, "valid_until": 2**40},
        {"action": "add_signer_key", "agency_id": "NL-NVWA", "signer": "0x" + "11" * 20, "valid_from": 10,
         "valid_until": 10},
        {"action": "add_agency", "agency_id": "DE-HH-CUSTOMS", "name": "Hamburg", "country": "de",
         "roles": ["CUSTOMS_AUTHORITY"], "encryption_key": "0x" + "11" * 32},
        {"action": "add_agency", "agency_id": "DE-HH-CUSTOMS", "name": "Hamburg", "country": "DE",
         "roles": ["CUSTOMS_AUTHORITY"], "encryption_key": "0x" + "00" * 32},
        {"action": "report_key_compromised", "signer": "0x" + "11" * 20, "compromised_at": -1},
        {},
    ]  # fmt: skip
    for action in cases:
        assert _problem(lambda a=action: governor.post_json(PROPOSALS, a))[:2] == (422, "invalid-request"), action

    assert _problem(lambda: governor.get_json(f"{PROPOSALS}/999999"))[:2] == (404, "proposal-not-found")
    status, code, body = _problem(lambda: governor.post_json(f"{PROPOSALS}/999999/approvals", {}))
    assert (status, code, body["error"]) == (404, "contract-revert", "AgencyRegistryUnknownProposal")
    assert _problem(lambda: governor.post_json(f"{PROPOSALS}/999999/execution", {}))[:2] == (404, "contract-revert")
    assert _problem(lambda: governor.get_json(f"{PROPOSALS}/0"))[:2] == (422, "invalid-request")


def test_two_of_three_add_a_signer_key_end_to_end(service: Service) -> None:
    secret, address = _fresh_key()
    newcomer = LedgerHttpClient(base_url=service.base_url, private_key=secret)
    service.clients.append(newcomer)
    assert _problem(lambda: newcomer.verify_hash(SOME_SHA))[:2] == (401, "unknown-caller")

    now = int(time.time())
    action = {"action": "add_signer_key", "agency_id": "NL-NVWA", "signer": address.lower(), "valid_from": now - 60,
              "valid_until": now + 3600}  # fmt: skip
    proposed = service.client("governor-0").post_json(PROPOSALS, action)
    pid = proposed["proposal_id"]
    assert isinstance(pid, int) and pid >= 1 and proposed["events"] == ["ProposalCreated"]
    assert proposed["tx_hash"].startswith("0x") and proposed["block_number"] > 0

    gov0, gov1, gov2 = (service.client(f"governor-{n}") for n in range(3))
    status, code, body = _problem(lambda: gov0.post_json(f"{PROPOSALS}/{pid}/execution", {}))
    assert (status, code, body["error"]) == (409, "contract-revert", "AgencyRegistryInsufficientApprovals")
    assert body["arguments"] == {"proposalId": str(pid), "approvals": "1", "threshold": "2"}
    status, code, body = _problem(lambda: gov0.post_json(f"{PROPOSALS}/{pid}/approvals", {}))
    assert (status, code, body["error"]) == (409, "contract-revert", "AgencyRegistryAlreadyApproved")

    approved = gov1.post_json(f"{PROPOSALS}/{pid}/approvals", {})
    assert approved["events"] == ["ProposalApproved"]
    executed = gov2.post_json(f"{PROPOSALS}/{pid}/execution", {})
    assert executed["proposal_id"] == pid and executed["events"] == ["ProposalExecuted", "SignerKeyAdded"]
    status, code, body = _problem(lambda: gov0.post_json(f"{PROPOSALS}/{pid}/execution", {}))
    assert (status, code, body["error"]) == (409, "contract-revert", "AgencyRegistryProposalClosed")

    def indexed() -> dict[str, Any] | None:
        try:
            view: dict[str, Any] = gov1.get_json(f"{PROPOSALS}/{pid}")
        except ApiProblem:
            return None
        return view if view["status"] == "executed" else None

    view = service.until(indexed)
    assert view["function"] == "addSignerKey" and view["target"] == service.deployment.registry
    assert view["arguments"] == {"agencyId": "NL-NVWA", "signer": address, "validFrom": now - 60,
                                 "validUntil": now + 3600}  # fmt: skip
    assert view["approved_by"] == [service.address("governor-0"), service.address("governor-1")]
    assert view["approvals"] == 2 and [a["action"] for a in view["actions"]] == ["approved", "executed"]

    # The new key authenticates as an NL-NVWA agency key once the directory's cache (5 s) has expired.
    verdict = service.until(lambda: _verdict_or_none(newcomer), timeout=15)
    assert verdict["status"] == "NOT_ANCHORED"


def _verdict_or_none(client: LedgerHttpClient) -> dict[str, Any] | None:
    try:
        return client.verify_hash(SOME_SHA)
    except ApiProblem as problem:
        assert problem.problem_code == "unknown-caller"
        return None


def test_suspending_an_agency_stops_its_keys_and_a_failing_execution_is_typed(service: Service) -> None:
    auditor = service.client("consortium-audit-signer-0")
    assert auditor.verify_hash(SOME_SHA)["status"] == "NOT_ANCHORED"
    executed = _passed(service, {"action": "set_agency_status", "agency_id": "CONSORTIUM-AUDIT", "status": "SUSPENDED"},
                       executor="governor-0")  # fmt: skip
    assert executed["events"] == ["ProposalExecuted", "AgencyStatusChanged"]

    def refused() -> bool:
        try:
            auditor.verify_hash(SOME_SHA)
        except ApiProblem as problem:
            return problem.status == 401 and problem.problem_code == "unknown-caller"
        return False

    assert service.until(refused, timeout=15)

    # Proposed call data is only checked when executed: the registry's error comes back typed.
    with pytest.raises(ApiProblem) as unknown:
        _passed(service, {"action": "set_agency_status", "agency_id": "XX-NOWHERE", "status": "SUSPENDED"})
    assert (unknown.value.status, unknown.value.problem_code) == (404, "contract-revert")
    assert unknown.value.body["error"] == "AgencyRegistryUnknownAgency"
    assert unknown.value.body["arguments"] == {"agencyId": "0x" + b"XX-NOWHERE".ljust(32, b"\0").hex()}


def _swap_governance(service: Service, replacement: GovernanceClient | None) -> GovernanceClient:
    current: GovernanceClient = service.app.state.governance  # type: ignore[attr-defined]
    service.app.state.governance = replacement  # type: ignore[attr-defined]
    return current


def test_chain_outage_custody_and_missing_governance(service: Service) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    governor = service.client("governor-1")
    key = bytes(service.keystore.signer("governor-1").key)
    action = {"action": "set_agency_status", "agency_id": "NL-NVWA", "status": "SUSPENDED"}
    cases: list[tuple[GovernanceClient | None, int, str]] = [
        (GovernanceClient(rpc_url=dead, registry=service.deployment.registry, signers=[FastSigner(private_key=key)],
                          chain_id=service.deployment.chain_id), 503, "chain-unavailable"),
        (GovernanceClient(rpc_url=service.settings.effective_rpc_url, registry=service.deployment.registry,
                          signers=[]), 403, "no-custody"),
        (None, 500, "configuration"),
    ]  # fmt: skip
    for replacement, status, code in cases:
        original = _swap_governance(service, replacement)
        try:
            with pytest.raises(ApiProblem) as refused:
                governor.post_json(PROPOSALS, action)
            assert (refused.value.status, refused.value.problem_code) == (status, code)
        finally:
            _swap_governance(service, original)
    with pytest.raises(ChainUnavailable):
        GovernanceClient(rpc_url=dead, registry=service.deployment.registry, signers=[FastSigner(private_key=key)],
                         chain_id=service.deployment.chain_id).transact(registry_call("approve", [1]),
                                                                        service.address("governor-1"))  # fmt: skip


def test_governor_keys_are_loaded_never_created(service: Service, tmp_path: Path) -> None:
    held = service.app.state.governance.addresses  # type: ignore[attr-defined]
    assert sorted(held) == sorted(service.deployment.governors)

    empty = Keystore(directory=tmp_path / "keys", password="a-test-password")
    (tmp_path / "keys").mkdir()
    settings = Settings(var_dir=tmp_path, anvil_port=service.settings.anvil_port)
    assert GovernanceClient.from_settings(settings, service.deployment, empty).addresses == ()
    assert not list((tmp_path / "keys").iterdir())
    assert not empty.has_signer("governor-0")

    empty.signer("governor-0")  # a key that is not the deployment's governor-0
    with pytest.raises(ConfigurationError):
        GovernanceClient.from_settings(settings, service.deployment, empty)

    only = service.settings.model_copy(update={"signer_labels": ("governor-1", "trader-tj-foods")})
    restricted = GovernanceClient.from_settings(only, service.deployment, service.keystore)
    assert restricted.addresses == (service.address("governor-1"),)


def test_registry_call_data_round_trips() -> None:
    call = registry_call("setAgencyStatus", [b"NL-NVWA".ljust(32, b"\0"), 2])
    assert decode_registry_call(call.calldata) == (
        "setAgencyStatus", {"agencyId": "0x" + b"NL-NVWA".ljust(32, b"\0").hex(), "status": 2},
    )  # fmt: skip
    assert decode_registry_call(b"\xde\xad\xbe\xef") is None
