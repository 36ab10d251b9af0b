"""LedgerClient on a real anvil: fast signing, pipelining, reverts, drop/stuck repair, confirmations."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from web3 import Web3

from ledger_api.chain import _tx_calls as calls
from ledger_api.chain._signing import FastSigner, UnsignedTransaction
from ledger_api.chain.client import LedgerClient, TxHandle, bump_fees
from ledger_api.chain.consortium import default_consortium
from ledger_api.chain.deploy import Deployment, agency_id_bytes, deploy_consortium
from ledger_api.chain.keystore import Keystore
from ledger_api.chain.node import AnvilNode
from ledger_api.config import Settings
from ledger_api.errors import (
    ChainUnavailable,
    ContractRevert,
    GasLimitExceeded,
    TransactionTimeout,
    UnknownSigner,
)

PASSWORD = "client-test-password"
TJ = agency_id_bytes("CN-TJ-CUSTOMS")
CID = bytes.fromhex("01551220") + b"\x11" * 32  # a binary CIDv1 (raw, sha2-256)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, kw_only=True)
class Chain:
    """A deployed consortium on a private anvil."""

    node: AnvilNode
    var_dir: Path
    deployment: Deployment
    keys: dict[str, bytes]  # keystore label -> private key

    def rpc(self, method: str, params: list[Any]) -> Any:
        """Raw JSON-RPC (test controls such as evm_mine)."""
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        return httpx.post(self.node.rpc_url, json=body, timeout=10).json()

    def address(self, label: str) -> str:
        """Address of keystore label ``label``."""
        return str(Account.from_key(self.keys[label]).address)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    """anvil + the default consortium, deployed with deploy_consortium."""
    var_dir = tmp_path_factory.mktemp("client-var")
    (var_dir / "keys").mkdir()
    node = AnvilNode(state_dir=var_dir / "anvil", port=_free_port())
    node.start()
    try:
        keystore = Keystore(directory=var_dir / "keys", password=PASSWORD)
        w3 = Web3(Web3.HTTPProvider(node.rpc_url))
        deployment = deploy_consortium(w3, spec=default_consortium(), keystore=keystore, fund=True)
        labels = [*deployment.traders, "cn-tj-customs-signer-0", "cn-tj-customs-signer-1", "consortium-risk-signer-0",
                  "cn-tj-ciq-lab-signer-0", "consortium-audit-signer-0"]  # fmt: skip
        keys = {label: bytes(keystore.signer(label).key) for label in labels}
        yield Chain(node=node, var_dir=var_dir, deployment=deployment, keys=keys)
    finally:
        node.stop()


@pytest.fixture
def client(chain: Chain) -> Iterator[LedgerClient]:
    """A client holding every test key, confirmations 0."""
    ledger_client = LedgerClient.local(
        rpc_url=chain.node.rpc_url, deployment=chain.deployment, private_keys=chain.keys.values()
    )
    yield ledger_client
    ledger_client.close()


@pytest.fixture
def manual_mining(chain: Chain) -> Iterator[None]:
    """Automine off for the test (transactions wait in the pool until evm_mine)."""
    chain.rpc("evm_setAutomine", [False])
    try:
        yield
    finally:
        chain.rpc("evm_setAutomine", [True])


def _declaration(commitment: bytes | None = None) -> calls.LedgerCall:
    return calls.submit_declaration(
        jurisdiction_id=TJ,
        local_reference=b"REF".ljust(32, b"\0"),
        commitment=commitment or os.urandom(32),
        cid=CID,
    )


def _status(client: LedgerClient, declaration_id: bytes) -> int:
    (record,) = calls.decode_result(
        "declaration",
        bytes.fromhex(
            str(
                client.rpc.call(
                    "eth_call",
                    [
                        {
                            "to": client.ledger_address,
                            "data": "0x" + calls.encode_call("declaration", (declaration_id,)).hex(),
                        },
                        "latest",
                    ],
                )  # fmt: skip
            )[2:]
        ),
    )
    return int(record[2])


# ---------------------------------------------------------------------------------------- signing


@pytest.mark.parametrize("legacy", [False, True])
def test_fast_signer_is_byte_identical_to_eth_account(legacy: bool) -> None:
    key = os.urandom(32)
    account = Account.from_key(key)
    signer = FastSigner(private_key=key)
    assert signer.address == account.address
    to = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    data = os.urandom(333)
    for nonce in (0, 1, 127, 128, 70_000):
        unsigned = UnsignedTransaction(
            chain_id=31337, nonce=nonce, gas=250_000, to=bytes.fromhex(to[2:]), data=data,
            max_fee_per_gas=None if legacy else 3_000_000_007, max_priority_fee_per_gas=1_000_000_000,
            gas_price=2_000_000_000,
        )  # fmt: skip
        fields: dict[str, Any] = {"chainId": 31337, "nonce": nonce, "gas": 250_000, "to": to, "data": data, "value": 0}
        if legacy:
            fields["gasPrice"] = 2_000_000_000
        else:
            fields.update(maxFeePerGas=3_000_000_007, maxPriorityFeePerGas=1_000_000_000, type=2)
        expected = account.sign_transaction(fields)
        signed = signer.sign(unsigned)
        assert signed.raw == bytes(expected.raw_transaction)
        assert signed.tx_hash == bytes(expected.hash)


def test_fee_bump_is_at_least_twelve_and_a_half_percent() -> None:
    assert bump_fees(1_000, 100) == (1_125, 113)
    assert bump_fees(1, 1) == (2, 2)  # never equal to the old fee
    assert bump_fees(8, 0) == (9, 0)


# ---------------------------------------------------------------------------------------- sending


@pytest.mark.integration
def test_pipelined_submission_of_300_declarations_all_mined_with_consecutive_nonces(
    chain: Chain, client: LedgerClient
) -> None:
    traders = [chain.address(label) for label in chain.deployment.traders]
    start = {t: client.nonce_of(t) for t in traders}
    items = [(_declaration(), traders[i % 3]) for i in range(300)]
    handles = client.send_many(items)
    assert all(isinstance(h, TxHandle) for h in handles)
    sent = [h for h in handles if isinstance(h, TxHandle)]
    for trader in traders:
        nonces = [h.nonce for h in sent if h.signer == trader]
        assert nonces == list(range(start[trader], start[trader] + 100))
    receipts = {h.tx_hash: client.wait(h, timeout=30) for h in sent}
    assert all(r.status == 1 for r in receipts.values())
    for trader in traders:
        assert client.nonce_of(trader) == start[trader] + 100
    assert all(_status(client, call.anchor.id) == 1 for call, _ in items if call.anchor)  # SUBMITTED


@pytest.mark.integration
def test_revert_at_estimate_time_is_the_precise_domain_error(chain: Chain, client: LedgerClient) -> None:
    trader = chain.address("trader-tj-electronics")
    commitment = os.urandom(32)
    client.wait(client.send(_declaration(commitment), trader))
    nonce_before = client.nonce_of(trader)
    with pytest.raises(ContractRevert) as caught:
        client.send(_declaration(commitment), trader)
    assert caught.value.error_name == "ClearanceLedgerDeclarationExists"
    assert caught.value.args_by_name == {"declarationId": "0x" + commitment.hex()}
    other = chain.address("trader-tj-foods")
    with pytest.raises(ContractRevert) as amend:
        client.amend_declaration(signer=other, previous_id=commitment, commitment=os.urandom(32), cid=CID)
    assert amend.value.error_name == "ClearanceLedgerNotDeclarant"
    assert amend.value.args_by_name == {"declarationId": "0x" + commitment.hex(), "caller": other}
    assert client.nonce_of(trader) == nonce_before  # nothing was sent, no nonce burnt
    (again,) = client.send_many([(_declaration(), trader)])
    assert isinstance(again, TxHandle) and again.nonce == nonce_before  # the nonce book did not skip


@pytest.mark.integration
def test_failed_receipt_is_replayed_into_the_domain_error(chain: Chain, client: LedgerClient) -> None:
    trader = chain.address("trader-tj-electronics")
    commitment = os.urandom(32)
    client.wait(client.send(_declaration(commitment), trader))
    doomed = client.send(_declaration(commitment), trader, gas=200_000)  # skip estimation: mined with status 0
    with pytest.raises(ContractRevert) as caught:
        client.wait(doomed)
    assert caught.value.error_name == "ClearanceLedgerDeclarationExists"
    assert caught.value.args_by_name["declarationId"] == "0x" + commitment.hex()
    assert client.receipts([doomed.tx_hash])[doomed.tx_hash].status == 0


@pytest.mark.integration
def test_gas_cap_and_unknown_signer_are_refused_before_sending(chain: Chain) -> None:
    capped = LedgerClient.local(
        rpc_url=chain.node.rpc_url, deployment=chain.deployment, private_keys=chain.keys.values()
    )
    capped.gas_cap = 30_000
    trader = chain.address("trader-tj-electronics")
    try:
        with pytest.raises(GasLimitExceeded) as caught:
            capped.send(_declaration(), trader)
        assert caught.value.function == "submitDeclaration" and caught.value.estimate > 30_000
        with pytest.raises(UnknownSigner):
            capped.send(_declaration(), Account.create().address)
    finally:
        capped.close()


@pytest.mark.integration
@pytest.mark.usefixtures("manual_mining")
def test_dropped_transaction_is_resubmitted_with_the_same_nonce(chain: Chain, client: LedgerClient) -> None:
    trader = chain.address("trader-rtm-importer")
    call = calls.submit_declaration(
        jurisdiction_id=agency_id_bytes("NL-RTM-CUSTOMS"), local_reference=b"R".ljust(32, b"\0"),
        commitment=os.urandom(32), cid=CID,
    )  # fmt: skip
    handle = client.send(call, trader)
    assert client.states([handle.tx_hash])[handle.tx_hash].where == "pending"
    chain.rpc("anvil_dropTransaction", [handle.tx_hash])
    assert client.states([handle.tx_hash])[handle.tx_hash].where == "unknown"
    again = client.resubmit(handle)
    assert (again.tx_hash, again.nonce) == (handle.tx_hash, handle.nonce)  # identical bytes
    chain.rpc("evm_mine", [])
    receipt = client.wait(again, timeout=10)
    assert receipt.status == 1
    assert client.nonce_of(trader) == handle.nonce + 1


@pytest.mark.integration
@pytest.mark.usefixtures("manual_mining")
def test_stuck_transaction_is_replaced_by_a_fee_bump(chain: Chain, client: LedgerClient) -> None:
    trader = chain.address("trader-tj-foods")
    handle = client.send(_declaration(), trader)
    replacement = client.bump(handle)
    assert replacement.nonce == handle.nonce and replacement.tx_hash != handle.tx_hash
    assert replacement.fee_cap * 1000 >= handle.fee_cap * 1125
    assert replacement.priority_fee * 1000 >= handle.priority_fee * 1125
    pool = chain.rpc("txpool_content", [])["result"]["pending"]
    pooled = {tx["hash"] for by_nonce in pool.values() for tx in by_nonce.values()}
    assert replacement.tx_hash in pooled and handle.tx_hash not in pooled
    chain.rpc("evm_mine", [])
    assert client.wait(replacement, timeout=10).status == 1
    assert client.receipts([handle.tx_hash]) == {}  # the original never mines


@pytest.mark.integration
def test_confirmation_depth_is_waited_for(chain: Chain) -> None:
    deep = LedgerClient(
        rpc_url=chain.node.rpc_url, ledger_address=chain.deployment.ledger, confirmations=3,
        signers=[FastSigner(private_key=chain.keys["trader-tj-electronics"])],
    )  # fmt: skip
    handle = deep.send(_declaration(), chain.address("trader-tj-electronics"))
    with pytest.raises(TransactionTimeout):
        deep.wait(handle, timeout=0.5)  # mined, but nothing built on top yet
    chain.rpc("evm_mine", [])
    chain.rpc("evm_mine", [])
    with pytest.raises(TransactionTimeout):
        deep.wait(handle, timeout=0.3)  # 2 of 3
    chain.rpc("evm_mine", [])
    receipt = deep.wait(handle, timeout=5)
    assert deep.head() - receipt.block_number == 3
    deep.close()


@pytest.mark.integration
def test_typed_methods_drive_a_declaration_through_its_lifecycle(chain: Chain, client: LedgerClient) -> None:
    trader = chain.address("trader-tj-electronics")
    customs, customs2 = chain.address("cn-tj-customs-signer-0"), chain.address("cn-tj-customs-signer-1")
    risk, lab = chain.address("consortium-risk-signer-0"), chain.address("cn-tj-ciq-lab-signer-0")
    auditor = chain.address("consortium-audit-signer-0")
    first, second = os.urandom(32), os.urandom(32)
    client.wait(client.submit_declaration(signer=trader, jurisdiction_id=TJ, local_reference=b"L".ljust(32, b"\0"),
                                          commitment=first, cid=CID))  # fmt: skip
    amended = client.amend_declaration(
        signer=trader, previous_id=first, commitment=second, cid=CID,
        documents=[calls.SupportingDocumentRef(document_type=1, sha256=hashlib.sha256(b"invoice").digest(), cid=CID)],
    )  # fmt: skip
    client.wait(amended)
    assert (_status(client, first), _status(client, second)) == (7, 1)  # SUPERSEDED, SUBMITTED
    client.wait(client.accept_declaration(signer=customs, declaration_id=second, mrn=b"MRN-1".ljust(32, b"\0")))
    client.wait(client.assign_channel(signer=risk, declaration_id=second, channel=2, required_stamps=1,
                                      rule_set_hash=b"\x01" * 32))  # fmt: skip  # YELLOW, DOCUMENT_CHECK
    fail_report, pass_report = os.urandom(32), os.urandom(32)
    client.wait(client.record_stamp(signer=lab, declaration_id=second, stamp_type=0, result=2,
                                    report_sha256=fail_report, report_cid=CID))  # fmt: skip
    with pytest.raises(ContractRevert) as blocked:
        client.decide(signer=customs, declaration_id=second, kind=0, reason_code=0, report_sha256=b"\0" * 32,
                      pass_stamps=[fail_report])  # fmt: skip
    assert blocked.value.error_name.startswith("ClearanceLedgerStamp")
    client.wait(client.revoke_stamp(signer=lab, stamp_id=fail_report, reason_code=9))
    client.wait(client.record_stamp(signer=lab, declaration_id=second, stamp_type=0, result=1,
                                    report_sha256=pass_report, report_cid=CID))  # fmt: skip
    client.wait(client.decide(signer=customs, declaration_id=second, kind=1, reason_code=5,
                              report_sha256=b"\0" * 32))  # fmt: skip  # HOLD
    assert _status(client, second) == 4  # HELD
    client.wait(client.decide(signer=customs, declaration_id=second, kind=3, reason_code=7,
                              report_sha256=b"\0" * 32))  # fmt: skip  # SEIZE is dual-control: pending
    client.wait(client.cancel_decision(signer=customs, declaration_id=second))
    client.wait(client.decide(signer=customs, declaration_id=second, kind=0, reason_code=0, report_sha256=b"\0" * 32,
                              pass_stamps=[pass_report]))  # fmt: skip
    assert _status(client, second) == 3  # RELEASED
    root = os.urandom(32)
    client.wait(client.anchor_batch(signer=auditor, root=root, leaf_count=4, kind=1, manifest_cid=CID))
    assert client.anchored([calls.Anchor(kind=calls.AnchorKind.BATCH, id=root)]) == [True]
    assert client.anchored([calls.Anchor(kind=calls.AnchorKind.STAMP, id=pass_report)]) == [True]
    client.wait(client.raise_alert(signer=auditor, subject_kind=1, subject=second, reason_code=3,
                                   evidence_sha256=os.urandom(32)))  # fmt: skip
    with pytest.raises(ContractRevert) as not_issuer:
        client.clear_alert(signer=customs2, alert_id=1, reason_code=0)
    assert not_issuer.value.error_name == "ClearanceLedgerNotAlertIssuer"
    client.wait(client.clear_alert(signer=auditor, alert_id=1, reason_code=0))
    with pytest.raises(ContractRevert) as none_pending:
        client.approve_decision(signer=customs2, declaration_id=second)
    assert none_pending.value.error_name == "ClearanceLedgerNoPendingDecision"


@pytest.mark.integration
def test_from_settings_loads_the_deployment_keys_from_the_keystore(chain: Chain) -> None:
    settings = Settings(var_dir=chain.var_dir, rpc_url=chain.node.rpc_url, keystore_password=PASSWORD, confirmations=0)
    keystore = Keystore.from_settings(settings)
    client = LedgerClient.from_settings(settings, chain.deployment, keystore, labels=["trader-tj-foods"])
    assert client.addresses == (chain.deployment.traders["trader-tj-foods"],)
    assert client.chain_id == chain.deployment.chain_id
    handle = client.send(_declaration(), client.addresses[0])
    assert client.wait(handle).status == 1
    client.close()


@pytest.mark.integration
def test_a_node_without_the_ledger_is_refused(chain: Chain) -> None:
    elsewhere = LedgerClient(
        rpc_url=chain.node.rpc_url, ledger_address="0x" + "42" * 20, chain_id=chain.deployment.chain_id,
        signers=[FastSigner(private_key=chain.keys["trader-tj-foods"])],
    )  # fmt: skip
    wrong_chain = LedgerClient(
        rpc_url=chain.node.rpc_url, ledger_address=chain.deployment.ledger, chain_id=1,
        signers=[FastSigner(private_key=chain.keys["trader-tj-foods"])],
    )  # fmt: skip
    try:
        with pytest.raises(ChainUnavailable, match="no ClearanceLedger code"):
            elsewhere.ensure_ledger()
        with pytest.raises(ChainUnavailable, match="expected 1"):
            wrong_chain.ensure_ledger()
    finally:
        elsewhere.close()
        wrong_chain.close()
    unreachable = LedgerClient(
        rpc_url=f"http://127.0.0.1:{_free_port()}", ledger_address=chain.deployment.ledger, chain_id=31337, signers=[]
    )
    with pytest.raises(ChainUnavailable):
        unreachable.head()
    unreachable.close()
