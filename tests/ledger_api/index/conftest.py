"""Fixtures for read-model tests: a real anvil, the default consortium, and a driver for transactions."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from ledger_api.chain import AnvilNode, Deployment, deploy_consortium, load_artifact
from ledger_api.chain.consortium import default_consortium
from ledger_api.chain.keystore import Keystore

# Stamp types / results / decision kinds of LedgerTypes.sol.
DOCUMENT_CHECK, PHYSICAL_EXAM, LAB_TEST = 0, 1, 3
PASS, FAIL = 1, 2
RELEASE, HOLD, REJECT, SEIZE = 0, 1, 2, 3
GREEN, YELLOW, RED = 1, 2, 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def h(label: str) -> bytes:
    """A deterministic sha256 standing in for a document's hash."""
    return hashlib.sha256(label.encode()).digest()


def fake_cid(label: str) -> bytes:
    """A binary CIDv1 (raw, sha2-256) for ``label``."""
    return bytes([0x01, 0x55, 0x12, 0x20]) + h(label)


@dataclass
class Chain:
    """A deployed consortium on a real anvil, and helpers that send real signed transactions."""

    node: AnvilNode
    w3: Web3
    deployment: Deployment
    keystore: Keystore
    registry: Any
    ledger: Any
    nonces: dict[str, int] = field(default_factory=dict)

    @property
    def rpc_url(self) -> str:
        return self.node.rpc_url

    def account(self, label: str) -> LocalAccount:
        return self.keystore.signer(label)

    def agency_signer(self, agency_id: str, n: int = 0) -> LocalAccount:
        return self.keystore.signer(default_consortium().agency(agency_id).signer_label(n))

    def send(self, account: LocalAccount, call: Any) -> Any:
        """Sign and send ``call`` from ``account``; wait for the receipt; assert success."""
        nonce = self.w3.eth.get_transaction_count(account.address, "pending")
        tx = call.build_transaction({"from": account.address, "nonce": nonce, "chainId": self.deployment.chain_id})
        signed = account.sign_transaction(tx)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
        assert receipt["status"] == 1, receipt
        return receipt

    def rpc(self, method: str, params: list[Any]) -> Any:
        response = self.w3.provider.make_request(method, params)  # type: ignore[arg-type]
        assert "error" not in response, response
        return response["result"]

    def submit(self, trader: str, label: str, documents: int = 2, jurisdiction: str = "CN-TJ-CUSTOMS") -> bytes:
        """Submit declaration ``label`` with ``documents`` supporting documents; return its id."""
        from ledger_api.chain.deploy import agency_id_bytes

        declaration_id = h(label)
        docs = [(n + 1, h(f"{label}/doc{n}"), fake_cid(f"{label}/doc{n}")) for n in range(documents)]
        self.send(
            self.account(trader),
            self.ledger.functions.submitDeclaration(
                agency_id_bytes(jurisdiction), h(f"{label}/lrn"), declaration_id, fake_cid(label), docs
            ),
        )
        return declaration_id

    def govern(self, target: Any, call: Any) -> int:
        """Run ``call`` on ``target`` through a 2-of-3 governance vote; return the proposal id."""
        data = call._encode_transaction_data()
        self.send(self.account("governor-0"), self.registry.functions.propose(target.address, data))
        proposal_id = int(self.registry.functions.proposalCount().call())
        self.send(self.account("governor-1"), self.registry.functions.approve(proposal_id))
        self.send(self.account("governor-2"), self.registry.functions.execute(proposal_id))
        return proposal_id

    def stamp(self, agency: str, declaration_id: bytes, stamp_type: int, result: int, label: str) -> bytes:
        report = h(label)
        self.send(
            self.agency_signer(agency),
            self.ledger.functions.recordStamp(declaration_id, stamp_type, result, report, fake_cid(label)),
        )
        return report


def start_chain(tmp: Path) -> Chain:
    """Start anvil under ``tmp`` and deploy + bootstrap the default consortium."""
    node = AnvilNode(state_dir=tmp / "anvil", port=_free_port())
    node.start()
    w3 = Web3(Web3.HTTPProvider(node.rpc_url, request_kwargs={"timeout": 30}))
    (tmp / "keys").mkdir(parents=True, exist_ok=True)
    keystore = Keystore(directory=tmp / "keys", password="index-tests-password")
    deployment = deploy_consortium(w3, spec=default_consortium(), keystore=keystore, fund=True)
    registry = w3.eth.contract(address=deployment.registry, abi=load_artifact("AgencyRegistry").abi)
    ledger = w3.eth.contract(address=deployment.ledger, abi=load_artifact("ClearanceLedger").abi)
    return Chain(node=node, w3=w3, deployment=deployment, keystore=keystore, registry=registry, ledger=ledger)


@dataclass
class Scenario:
    """What :func:`run_scenario` did, for the assertions."""

    released: bytes = b""  # D1: accepted, RED, stamps incl. a revoked FAIL, released
    original: bytes = b""  # D2 v1: accepted, then superseded by an amendment
    amended: bytes = b""  # D2 v2: held, then seized under dual control (after a cancelled round)
    rejected: bytes = b""  # D3: rejected while submitted
    stamps: dict[str, bytes] = field(default_factory=dict)
    batch_root: bytes = b""
    blocks: dict[str, int] = field(default_factory=dict)  # moment → block number after it
    proposal_id: int = 0
    compromised: str = ""
    pending: bytes = b""  # D4: a SEIZE proposal with 2 of 3 approvals, still open
    third_signer: str = ""


def run_scenario(chain: Chain) -> Scenario:
    """Drive every kind of event through real transactions."""
    from ledger_api.chain.deploy import agency_id_bytes

    s = Scenario()
    ledger, registry = chain.ledger, chain.registry
    customs0, customs1 = chain.agency_signer("CN-TJ-CUSTOMS", 0), chain.agency_signer("CN-TJ-CUSTOMS", 1)
    risk = chain.agency_signer("CONSORTIUM-RISK")
    audit = chain.agency_signer("CONSORTIUM-AUDIT")

    # D1: full happy path with a revoked FAIL stamp.
    s.released = chain.submit("trader-tj-electronics", "D1", documents=3)
    chain.send(customs0, ledger.functions.acceptDeclaration(s.released, h("MRN-1")))
    chain.send(
        risk, ledger.functions.assignChannel(s.released, RED, (1 << DOCUMENT_CHECK) | (1 << LAB_TEST), h("rules-v1"))
    )
    s.stamps["doc_pass"] = chain.stamp("CN-TJ-CIQ-LAB", s.released, DOCUMENT_CHECK, PASS, "D1/doc-check")
    s.stamps["lab_fail"] = chain.stamp("CN-TJ-CIQ-LAB", s.released, LAB_TEST, FAIL, "D1/lab-1")
    s.blocks["d1_before_revocation"] = chain.w3.eth.block_number
    chain.send(chain.agency_signer("CN-TJ-CIQ-LAB"), ledger.functions.revokeStamp(s.stamps["lab_fail"], 7))
    s.stamps["lab_pass"] = chain.stamp("CN-TJ-CIQ-LAB", s.released, LAB_TEST, PASS, "D1/lab-2")
    s.blocks["d1_before_release"] = chain.w3.eth.block_number
    chain.send(
        customs0,
        ledger.functions.decide(
            s.released, RELEASE, 1, h("D1/release-report"), [s.stamps["doc_pass"], s.stamps["lab_pass"]]
        ),
    )
    s.blocks["d1_released"] = chain.w3.eth.block_number

    # D2: accepted, amended (MRN carried over), held, then seized by dual control after a cancelled round.
    s.original = chain.submit("trader-tj-foods", "D2", documents=1)
    chain.send(customs0, ledger.functions.acceptDeclaration(s.original, h("MRN-2")))
    s.amended = h("D2v2")
    chain.send(
        chain.account("trader-tj-foods"),
        ledger.functions.amendDeclaration(
            s.original,
            s.amended,
            fake_cid("D2v2"),
            [(1, h("D2v2/doc0"), fake_cid("D2v2/doc0")), (2, h("D1/doc0"), fake_cid("x"))],
        ),
    )
    chain.send(risk, ledger.functions.assignChannel(s.amended, YELLOW, 1 << PHYSICAL_EXAM, h("rules-v1")))
    chain.send(customs0, ledger.functions.acceptDeclaration(s.amended, h("MRN-2")))
    chain.send(customs0, ledger.functions.decide(s.amended, HOLD, 3, h("D2/hold"), []))
    chain.send(customs0, ledger.functions.decide(s.amended, SEIZE, 4, h("D2/seize-1"), []))
    chain.send(customs1, ledger.functions.cancelDecision(s.amended))
    chain.send(customs1, ledger.functions.decide(s.amended, SEIZE, 5, h("D2/seize-2"), []))
    chain.send(customs0, ledger.functions.approveDecision(s.amended, []))

    # D3: rejected straight away (jurisdiction NL, trader registered by NL).
    s.rejected = chain.submit("trader-rtm-importer", "D3", documents=0, jurisdiction="NL-RTM-CUSTOMS")
    chain.send(chain.agency_signer("NL-RTM-CUSTOMS"), ledger.functions.decide(s.rejected, REJECT, 9, b"\0" * 32, []))

    # Batch, alerts.
    s.batch_root = h("batch-1")
    chain.send(
        chain.agency_signer("NL-NVWA"), ledger.functions.anchorBatch(s.batch_root, 12, 2, fake_cid("manifest-1"))
    )
    chain.send(audit, ledger.functions.raiseAlert(1, s.released, 11, h("evidence-1")))
    chain.send(audit, ledger.functions.raiseAlert(0, h("D1/doc1"), 12, b"\0" * 32))
    chain.send(audit, ledger.functions.clearAlert(2, 13))

    # Keys: a compromise reported by a peer key; governance: change the auditor's roles by 2-of-3 vote.
    rtm0, rtm1 = chain.agency_signer("NL-RTM-CUSTOMS", 0), chain.agency_signer("NL-RTM-CUSTOMS", 1)
    now = chain.w3.eth.get_block("latest")["timestamp"]
    chain.send(rtm0, registry.functions.reportKeyCompromised(rtm1.address, now))
    s.compromised = rtm1.address
    s.proposal_id = chain.govern(
        registry, registry.functions.setAgencyRoles(agency_id_bytes("CONSORTIUM-AUDIT"), (1 << 4) | (1 << 2))
    )

    # A third customs key (added by vote), a shortened key expiry, SEIZE needing 3 approvals, and a
    # SEIZE proposal left open with 2 of 3; a trader update by its registrar.
    third = chain.agency_signer("CN-TJ-CUSTOMS", 2)
    chain.rpc("anvil_setBalance", [third.address, hex(10**20)])
    customs_id = agency_id_bytes("CN-TJ-CUSTOMS")
    chain.govern(registry, registry.functions.addSignerKey(customs_id, third.address, now, now + 10**7))
    chain.govern(registry, registry.functions.setSignerKeyExpiry(third.address, now + 10**6))
    chain.govern(ledger, ledger.functions.setApprovalsRequired(SEIZE, 3))
    s.third_signer = third.address
    s.pending = chain.submit("trader-tj-electronics", "D4", documents=1)
    chain.send(customs0, ledger.functions.acceptDeclaration(s.pending, h("MRN-4")))
    chain.send(customs0, ledger.functions.decide(s.pending, HOLD, 3, b"\0" * 32, []))
    chain.send(third, ledger.functions.decide(s.pending, SEIZE, 6, h("D4/seize"), []))
    chain.send(customs1, ledger.functions.approveDecision(s.pending, []))
    trader = chain.account("trader-tj-foods").address
    chain.send(chain.agency_signer("CN-TJ-CUSTOMS"), registry.functions.updateTrader(trader, 2, True))

    # An EIP-712 signed stamp on D4, signed by an NVWA inspector and relayed by a governor account.
    inspector = chain.agency_signer("NL-NVWA")
    # Signed 5 s before the latest block; advance chain time first so that moment is never before the
    # key's validFrom (deployment time) when the scenario ran within 5 s of deployment.
    chain.rpc("evm_increaseTime", [10])
    chain.rpc("evm_mine", [])
    signed_at = chain.w3.eth.get_block("latest")["timestamp"] - 5
    signed = (
        s.pending, PHYSICAL_EXAM, PASS, h("D4/relayed-report"), fake_cid("D4/relayed-report"), inspector.address,
        signed_at, ledger.functions.nonces(inspector.address).call(), signed_at + 3600,
    )  # fmt: skip
    digest = ledger.functions.stampDigest(signed).call()
    signature = inspector.unsafe_sign_hash(digest).signature
    chain.send(chain.account("governor-0"), ledger.functions.relayStamp(signed, signature))
    s.stamps["relayed"] = h("D4/relayed-report")
    s.blocks["end"] = chain.w3.eth.block_number
    return s


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    """A fresh anvil with the default consortium deployed; stopped after the module."""
    tmp = tmp_path_factory.mktemp("chain")
    started = start_chain(tmp)
    yield started
    started.node.stop()


@pytest.fixture(scope="module")
def scenario(chain: Chain) -> Scenario:
    """The scenario, run once per module on ``chain``."""
    return run_scenario(chain)
