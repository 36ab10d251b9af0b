"""Fixtures for replay tests: a real anvil, the default consortium, and a random history generator.

Ledger operations go through :class:`ledger_api.chain.client.LedgerClient`; registry operations
(governance votes, trader updates, key changes) through web3 contract objects, as the tests of
the index do. The generator keeps a rough model of the ledger only to pick operations that are
likely to succeed; an operation the contract refuses is simply skipped (the chain is the truth).
"""

from __future__ import annotations

import hashlib
import random
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from ledger_api.chain import AnvilNode, Deployment, deploy_consortium, load_artifact
from ledger_api.chain import _tx_calls as calls
from ledger_api.chain.client import LedgerClient
from ledger_api.chain.consortium import default_consortium
from ledger_api.chain.deploy import agency_id_bytes
from ledger_api.chain.keystore import Keystore
from ledger_api.errors import LedgerError

# LedgerTypes.sol values.
DOCUMENT_CHECK, PHYSICAL_EXAM, XRAY_SCAN, LAB_TEST, QUARANTINE, EXPORT_CLEARANCE = 0, 1, 2, 3, 4, 5
PASS, FAIL, INCONCLUSIVE = 1, 2, 3
RELEASE, HOLD, REJECT, SEIZE = 0, 1, 2, 3
GREEN, YELLOW, RED = 1, 2, 3
SUBMITTED, ACCEPTED, RELEASED, HELD, REJECTED, SEIZED, SUPERSEDED = 1, 2, 3, 4, 5, 6, 7

CUSTOMS = ("CN-TJ-CUSTOMS", "NL-RTM-CUSTOMS")
INSPECTORS = ("CN-TJ-CIQ-LAB", "NL-NVWA")
ALL_AGENCIES = (*CUSTOMS, *INSPECTORS, "CONSORTIUM-RISK", "CONSORTIUM-AUDIT")


def free_port() -> int:
    """A free TCP port on localhost."""
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
    """A deployed consortium on a real anvil with a LedgerClient holding every agency and trader key."""

    node: AnvilNode
    w3: Web3
    deployment: Deployment
    keystore: Keystore
    client: LedgerClient
    registry: Any
    ledger: Any

    @property
    def rpc_url(self) -> str:
        """The node's JSON-RPC URL."""
        return self.node.rpc_url

    def signer(self, agency_id: str, n: int = 0) -> str:
        """Address of signer ``n`` of ``agency_id``."""
        return self.deployment.agencies[agency_id].signers[n]

    def account(self, label: str) -> LocalAccount:
        """Keystore account ``label``."""
        return self.keystore.signer(label)

    def head(self) -> int:
        """Current block number."""
        return int(self.w3.eth.block_number)

    def ledger_tx(self, call: calls.LedgerCall, signer: str) -> int:
        """Send one ledger call through the LedgerClient and wait; returns its block number."""
        return self.client.wait(self.client.send(call, signer)).block_number

    def web3_tx(self, account: LocalAccount, fn: Any) -> Any:
        """Sign and send a web3 contract call from ``account``; assert success."""
        nonce = self.w3.eth.get_transaction_count(account.address, "pending")
        tx = fn.build_transaction({"from": account.address, "nonce": nonce, "chainId": self.deployment.chain_id})
        signed = account.sign_transaction(tx)
        receipt = self.w3.eth.wait_for_transaction_receipt(self.w3.eth.send_raw_transaction(signed.raw_transaction))
        assert receipt["status"] == 1, receipt
        return receipt

    def govern(self, target: Any, fn: Any) -> None:
        """Run ``fn`` on ``target`` through a 2-of-3 vote."""
        data = fn._encode_transaction_data()
        self.web3_tx(self.account("governor-0"), self.registry.functions.propose(target.address, data))
        proposal_id = int(self.registry.functions.proposalCount().call())
        self.web3_tx(self.account("governor-1"), self.registry.functions.approve(proposal_id))
        self.web3_tx(self.account("governor-2"), self.registry.functions.execute(proposal_id))


def start_chain(tmp: Path) -> Chain:
    """Start anvil under ``tmp`` and deploy + bootstrap the default consortium."""
    node = AnvilNode(state_dir=tmp / "anvil", port=free_port())
    node.start()
    w3 = Web3(Web3.HTTPProvider(node.rpc_url, request_kwargs={"timeout": 30}))
    (tmp / "keys").mkdir(parents=True, exist_ok=True)
    keystore = Keystore(directory=tmp / "keys", password="audit-tests-password")
    deployment = deploy_consortium(w3, spec=default_consortium(), keystore=keystore, fund=True)
    labels = list(deployment.traders)
    for agency_id, record in deployment.agencies.items():
        labels += [f"{agency_id.lower()}-signer-{n}" for n in range(len(record.signers))]
    client = LedgerClient.local(
        rpc_url=node.rpc_url, deployment=deployment, private_keys=[bytes(keystore.signer(x).key) for x in labels]
    )
    registry = w3.eth.contract(address=deployment.registry, abi=load_artifact("AgencyRegistry").abi)
    ledger = w3.eth.contract(address=deployment.ledger, abi=load_artifact("ClearanceLedger").abi)
    return Chain(
        node=node, w3=w3, deployment=deployment, keystore=keystore, client=client, registry=registry, ledger=ledger
    )


@dataclass
class Decl:
    """The generator's rough model of one declaration version."""

    id: bytes
    trader: str
    jurisdiction: str
    status: int = SUBMITTED
    channel: int = 0
    required: int = 0
    mrn: bytes = b""
    stamps: list[tuple[bytes, int, int, str, bool]] = field(default_factory=list)  # id, type, result, agency, revoked


@dataclass
class History:
    """What the generator did: operations that succeeded, checkpoints, and named facts for tampering."""

    ops: int = 0
    skipped: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    checkpoints: list[int] = field(default_factory=list)
    facts: dict[str, bytes] = field(default_factory=dict)


class HistoryGenerator:
    """Drives a random but valid history across every contract feature."""

    def __init__(self, chain: Chain, seed: int) -> None:
        self.chain = chain
        self.rng = random.Random(seed)
        self.decls: list[Decl] = []
        self.alerts: list[tuple[int, str]] = []  # (alert id, agency)
        self.alert_count = 0
        self.history = History()
        self.traders = list(chain.deployment.traders.values())
        self.labels = {address: label for label, address in chain.deployment.traders.items()}
        self.n = 0

    # ------------------------------------------------------------------ helpers

    def _label(self) -> str:
        self.n += 1
        return f"op-{self.n}-{self.rng.getrandbits(32)}"

    def _ok(self, kind: str, thunk: Any) -> bool:
        try:
            thunk()
        except LedgerError:
            self.history.skipped += 1
            return False
        self.history.ops += 1
        self.history.by_kind[kind] = self.history.by_kind.get(kind, 0) + 1
        return True

    def _customs_signer(self, d: Decl) -> str:
        return self.chain.signer(d.jurisdiction, self.rng.randrange(2))

    def _pick(self, *statuses: int) -> Decl | None:
        choices = [d for d in self.decls if d.status in statuses]
        return self.rng.choice(choices) if choices else None

    # ------------------------------------------------------------------ operations

    def submit(self) -> None:
        trader = self.rng.choice(self.traders)
        label = self._label()
        jurisdiction = self.rng.choice(CUSTOMS)
        docs = [
            calls.SupportingDocumentRef(
                document_type=n + 1, sha256=h(f"{label}/doc{n}"), cid=fake_cid(f"{label}/doc{n}")
            )
            for n in range(self.rng.randrange(4))
        ]
        if docs and self.decls and self.rng.random() < 0.1:  # reuse an anchored hash: first anchor wins
            docs[0] = calls.SupportingDocumentRef(document_type=9, sha256=self.decls[0].id, cid=fake_cid("reused"))
        call = calls.submit_declaration(
            jurisdiction_id=agency_id_bytes(jurisdiction),
            local_reference=h(label + "/lrn"),
            commitment=h(label),
            cid=fake_cid(label),
            documents=docs,
        )
        if self._ok("submit", lambda: self.chain.ledger_tx(call, trader)):
            self.decls.append(Decl(id=h(label), trader=trader, jurisdiction=jurisdiction))

    def amend(self) -> None:
        d = self._pick(SUBMITTED, ACCEPTED)
        if d is None:
            return
        label = self._label()
        call = calls.amend_declaration(
            previous_id=d.id,
            commitment=h(label),
            cid=fake_cid(label),
            documents=[
                calls.SupportingDocumentRef(document_type=1, sha256=h(label + "/a"), cid=fake_cid(label + "/a"))
            ],
        )
        if self._ok("amend", lambda: self.chain.ledger_tx(call, d.trader)):
            d.status = SUPERSEDED
            self.decls.append(Decl(id=h(label), trader=d.trader, jurisdiction=d.jurisdiction, mrn=d.mrn))

    def accept(self) -> None:
        d = self._pick(SUBMITTED)
        if d is None:
            return
        mrn = d.mrn or h(self._label() + "/mrn")
        call = calls.accept_declaration(declaration_id=d.id, mrn=mrn)
        if self._ok("accept", lambda: self.chain.ledger_tx(call, self._customs_signer(d))):
            d.mrn = mrn
            d.status = RELEASED if d.channel == GREEN and d.required == 0 else ACCEPTED

    def channel(self) -> None:
        candidates = [d for d in self.decls if d.status in (SUBMITTED, ACCEPTED) and d.channel == 0]
        if not candidates:
            return
        d = self.rng.choice(candidates)
        channel = self.rng.choice((GREEN, GREEN, YELLOW, RED))
        required = 0
        if channel != GREEN or self.rng.random() < 0.3:
            for t in self.rng.sample((DOCUMENT_CHECK, PHYSICAL_EXAM, XRAY_SCAN, LAB_TEST, QUARANTINE), k=2):
                required |= 1 << t
        call = calls.assign_channel(
            declaration_id=d.id,
            channel=channel,
            required_stamps=required,
            rule_set_hash=h(f"rules-v{self.rng.randrange(3)}"),
        )
        if self._ok("channel", lambda: self.chain.ledger_tx(call, self.chain.signer("CONSORTIUM-RISK"))):
            d.channel, d.required = channel, required
            if d.status == ACCEPTED and channel == GREEN and required == 0:
                d.status = RELEASED

    def stamp(self, d: Decl | None = None, stamp_type: int | None = None, result: int | None = None) -> bytes | None:
        d = d or self._pick(ACCEPTED, HELD)
        if d is None:
            return None
        if stamp_type is None:
            wanted = [t for t in range(8) if (d.required >> t) & 1]
            stamp_type = self.rng.choice(wanted) if wanted and self.rng.random() < 0.8 else self.rng.randrange(5)
        if result is None:
            result = self.rng.choice((PASS, PASS, PASS, PASS, FAIL, INCONCLUSIVE))
        agency = self.rng.choice(INSPECTORS)
        label = self._label()
        call = calls.record_stamp(
            declaration_id=d.id,
            stamp_type=stamp_type,
            result=result,
            report_sha256=h(label + "/report"),
            report_cid=fake_cid(label + "/report"),
        )
        if self._ok("stamp", lambda: self.chain.ledger_tx(call, self.chain.signer(agency))):
            d.stamps.append((h(label + "/report"), stamp_type, result, agency, False))
            return h(label + "/report")
        return None

    def revoke(self, prefer_failures: bool = True) -> bytes | None:
        live = [(d, i) for d in self.decls for i, s in enumerate(d.stamps) if not s[4]]
        if prefer_failures and any(d.stamps[i][2] != PASS for d, i in live):
            live = [(d, i) for d, i in live if d.stamps[i][2] != PASS]
        if not live:
            return None
        d, i = self.rng.choice(live)
        stamp_id, t, result, agency, _ = d.stamps[i]
        call = calls.revoke_stamp(stamp_id=stamp_id, reason_code=self.rng.randrange(1, 50))
        if self._ok("revoke", lambda: self.chain.ledger_tx(call, self.chain.signer(agency))):
            d.stamps[i] = (stamp_id, t, result, agency, True)
            return stamp_id
        return None

    def release(self, d: Decl | None = None) -> bool:
        d = d or self._pick(ACCEPTED, HELD)
        if d is None or d.channel == 0:
            return False
        cited: dict[int, bytes] = {}
        for stamp_id, t, result, _, revoked in d.stamps:
            if result == PASS and not revoked and (d.required >> t) & 1:
                cited.setdefault(t, stamp_id)
        call = calls.decide(
            declaration_id=d.id,
            kind=RELEASE,
            reason_code=1,
            report_sha256=h(d.id.hex() + "/rel"),
            pass_stamps=list(cited.values()),
        )
        if self._ok("release", lambda: self.chain.ledger_tx(call, self._customs_signer(d))):
            d.status = RELEASED
            return True
        return False

    def hold(self) -> None:
        d = self._pick(ACCEPTED)
        if d is None:
            return
        call = calls.decide(declaration_id=d.id, kind=HOLD, reason_code=3, report_sha256=b"\0" * 32)
        if self._ok("hold", lambda: self.chain.ledger_tx(call, self._customs_signer(d))):
            d.status = HELD

    def reject(self) -> None:
        d = self._pick(SUBMITTED, ACCEPTED, HELD)
        if d is None:
            return
        call = calls.decide(declaration_id=d.id, kind=REJECT, reason_code=9, report_sha256=h(d.id.hex() + "/rej"))
        if self._ok("reject", lambda: self.chain.ledger_tx(call, self._customs_signer(d))):
            d.status = REJECTED

    def seize(self, cancel_first: bool | None = None) -> None:
        """SEIZE under dual control (2 signers by default): propose, maybe cancel and re-propose, approve."""
        d = self._pick(HELD)
        if d is None:
            return
        s0, s1 = self.chain.signer(d.jurisdiction, 0), self.chain.signer(d.jurisdiction, 1)
        propose = calls.decide(declaration_id=d.id, kind=SEIZE, reason_code=4, report_sha256=h(d.id.hex() + "/sz"))
        if not self._ok("seize-propose", lambda: self.chain.ledger_tx(propose, s0)):
            return
        if cancel_first if cancel_first is not None else self.rng.random() < 0.3:
            cancel = calls.cancel_decision(declaration_id=d.id)
            self._ok("seize-cancel", lambda: self.chain.ledger_tx(cancel, s1))
            if not self._ok("seize-propose", lambda: self.chain.ledger_tx(propose, s1)):
                return
            s0, s1 = s1, s0
        approve = calls.approve_decision(declaration_id=d.id)
        if self._ok("seize-approve", lambda: self.chain.ledger_tx(approve, s1)):
            d.status = SEIZED
            self.history.facts["seized"] = d.id

    def batch(self) -> None:
        label = self._label()
        call = calls.anchor_batch(
            root=h(label + "/root"),
            leaf_count=self.rng.randrange(1, 1000),
            kind=self.rng.randrange(4),
            manifest_cid=fake_cid(label + "/manifest"),
        )
        self._ok("batch", lambda: self.chain.ledger_tx(call, self.chain.signer(self.rng.choice(ALL_AGENCIES))))

    def alert(self) -> None:
        agency = self.rng.choice(ALL_AGENCIES)
        kind = self.rng.randrange(3)
        if kind == 2:
            subject = bytes(12) + bytes.fromhex(self.rng.choice(self.traders)[2:])
        elif kind == 1 and self.decls:
            subject = self.rng.choice(self.decls).id
        else:
            subject, kind = h(self._label() + "/doc"), 0
        call = calls.raise_alert(
            subject_kind=kind,
            subject=subject,
            reason_code=self.rng.randrange(100),
            evidence_sha256=h(self._label()) if self.rng.random() < 0.5 else b"\0" * 32,
        )
        if self._ok("alert", lambda: self.chain.ledger_tx(call, self.chain.signer(agency))):
            self.alert_count += 1
            self.alerts.append((self.alert_count, agency))

    def clear_alert(self) -> None:
        if not self.alerts:
            return
        alert_id, agency = self.alerts.pop(self.rng.randrange(len(self.alerts)))
        call = calls.clear_alert(alert_id=alert_id, reason_code=self.rng.randrange(100))
        self._ok("clear-alert", lambda: self.chain.ledger_tx(call, self.chain.signer(agency)))

    def trader_update(self) -> None:
        label = self.rng.choice(list(self.chain.deployment.traders))
        registrar = "NL-RTM-CUSTOMS" if "rtm" in label else "CN-TJ-CUSTOMS"
        fn = self.chain.registry.functions.updateTrader(
            self.chain.deployment.traders[label], 1, self.rng.random() < 0.5
        )
        self._ok("trader-update", lambda: self.chain.web3_tx(self.chain.account(f"{registrar.lower()}-signer-0"), fn))

    # ------------------------------------------------------------------ the whole history

    def planted(self) -> None:
        """Deterministic facts the tampering tests rely on: a release after a revoked FAIL stamp."""
        before = len(self.decls)
        while len(self.decls) == before:
            self.submit()
        d = self.decls[-1]
        self.accept()
        while d.status == SUBMITTED:
            self.accept()
        if d.channel == 0:
            call = calls.assign_channel(
                declaration_id=d.id, channel=RED, required_stamps=1 << LAB_TEST, rule_set_hash=h("rules-v1")
            )
            assert self._ok("channel", lambda: self.chain.ledger_tx(call, self.chain.signer("CONSORTIUM-RISK")))
            d.channel, d.required = RED, 1 << LAB_TEST
        assert d.status == ACCEPTED, d
        failed = self.stamp(d, LAB_TEST, FAIL)
        assert failed is not None
        call = calls.revoke_stamp(stamp_id=failed, reason_code=7)
        agency = d.stamps[-1][3]
        assert self._ok("revoke", lambda: self.chain.ledger_tx(call, self.chain.signer(agency)))
        d.stamps[-1] = (failed, LAB_TEST, FAIL, agency, True)
        passes = {t: self.stamp(d, t, PASS) for t in range(8) if (d.required >> t) & 1}
        assert all(passes.values())
        assert self.release(d)
        self.history.facts.update(planted=d.id, revoked_fail=failed, cited_pass=passes[LAB_TEST] or b"")

    def run(self, operations: int, *, checkpoints: int = 3) -> History:
        """About ``operations`` operations; remembers ``checkpoints`` block numbers along the way."""
        weights = {
            self.submit: 14,
            self.amend: 3,
            self.accept: 10,
            self.channel: 10,
            self.stamp: 16,
            self.revoke: 3,
            self.release: 8,
            self.hold: 3,
            self.reject: 2,
            self.seize: 2,
            self.batch: 4,
            self.alert: 4,
            self.clear_alert: 2,
            self.trader_update: 1,
        }
        actions, w = list(weights), list(weights.values())
        self.planted()
        every = max(operations // (checkpoints + 1), 1)
        mark = self.history.ops
        while self.history.ops < operations:
            self.rng.choices(actions, w)[0]()
            if self.history.ops - mark >= every and len(self.history.checkpoints) < checkpoints:
                self.history.checkpoints.append(self.chain.head())
                mark = self.history.ops
        self.history.checkpoints.append(self.chain.head())
        return self.history


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    """A fresh anvil with the default consortium deployed; stopped after the module."""
    started = start_chain(tmp_path_factory.mktemp("audit-chain"))
    try:
        yield started
    finally:
        started.client.close()
        started.node.stop()
