"""The risk oracle on a real chain: declarations sealed like the API seals them, channels recomputed
from chain data + the anchored rule set, restarts, unavailable documents, the commands."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ledger_api.api.writes import DocumentVault
from ledger_api.chain import _tx_calls as calls
from ledger_api.chain.deploy import agency_id_bytes
from ledger_api.documents import AgencyPublicKey, Cid, ContentStore, LocalStore, content_store
from ledger_api.hashing import canonical_json
from ledger_api.index import DeclarationStatus, Indexer, ReadModel
from ledger_api.outbox import EntryState
from ledger_api.verify.risk import RULE_SET_BATCH_KIND, Channel, parse_rule_set, replay
from oracles._base import OracleContext, run
from oracles.risk import DEFAULT_RULES, RiskOracle, anchored_rule_set, gather_inputs, load_rule_set
from tests.oracles.conftest import Ledger

TJ = "CN-TJ-CUSTOMS"
RISK = "CONSORTIUM-RISK"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Submitted:
    """A declaration the test submitted, with what only its holders know."""

    declaration_id: str
    plaintext: bytes
    shared_with_risk: bool


class Declarant:
    """Seals declarations through the API's real vault and anchors them with the chain client."""

    def __init__(self, ledger: Ledger, store: ContentStore | None = None) -> None:
        self.ledger = ledger
        self.vault = DocumentVault(
            ledger.settings.var_dir / "api" / "documents.db", store or content_store(ledger.settings)
        )
        self.count = 0

    def key(self, agency: str) -> AgencyPublicKey:
        return AgencyPublicKey.from_hex(self.ledger.deployment.agencies[agency].encryption_public_key)

    def submit(
        self, trader: str, goods: Any, *, share: bool = True, currency: str = "USD", documents: tuple[bytes, ...] = ()
    ) -> Submitted:
        self.count += 1
        document = {"jurisdiction": TJ, "local_reference": f"LRN-{self.count}", "currency": currency, "goods": goods}
        canonical = canonical_json(document)
        commitment = hashlib.sha256(canonical).digest()
        recipients = {TJ: self.key(TJ), **({RISK: self.key(RISK)} if share else {})}
        envelope = self.vault.seal_and_store(canonical, recipients=recipients, sha256=commitment)
        refs = [calls.SupportingDocumentRef(document_type=1, sha256=hashlib.sha256(d).digest(),
                                            cid=envelope.cid_bytes()) for d in documents]  # fmt: skip
        client = self.ledger.client
        client.wait(client.submit_declaration(
            signer=self.ledger.address(trader), jurisdiction_id=agency_id_bytes(TJ),
            local_reference=hashlib.sha256(document["local_reference"].encode()).digest(), commitment=commitment,
            cid=envelope.cid_bytes(), documents=refs,
        ))  # fmt: skip
        return Submitted("0x" + commitment.hex(), canonical, share)

    def close(self) -> None:
        self.vault.close()


def _line(hs: str, origin: str = "CN", value: float = 1000.0) -> dict[str, Any]:
    return {"hs_code": hs, "origin": origin, "value": value}


def _alert(ledger: Ledger, subject_kind: int, subject: bytes) -> None:
    client = ledger.client
    client.wait(client.raise_alert(signer=ledger.address("consortium-audit-signer-0"), subject_kind=subject_kind,
                                   subject=subject, reason_code=3, evidence_sha256=b"\x00" * 32))  # fmt: skip


def _auditor_model(ledger: Ledger, path: Path) -> tuple[Indexer, ReadModel]:
    """An index of the auditor's own, built from the chain alone."""
    indexer = Indexer.for_deployment(
        ledger.deployment, database=path, rpc_url=ledger.settings.effective_rpc_url, confirmations=0
    )
    while indexer.poll():
        pass
    return indexer, ReadModel.open(path)


def _drive_to_completion(ctx: OracleContext, oracle: RiskOracle, expected: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run(oracle, max_steps=1)
        ctx.worker.drain(timeout=30)
        if len(ctx.state.facts("channel:")) >= expected:
            return
    raise AssertionError(f"only {len(ctx.state.facts('channel:'))} of {expected} declarations channelled")


@pytest.mark.integration
@pytest.mark.slow
def test_channels_recompute_from_chain_and_rule_set_across_a_restart(
    ledger: Ledger, contexts: Callable[..., OracleContext], tmp_path: Path
) -> None:
    declarant = Declarant(ledger)
    foods, electronics = "trader-tj-foods", "trader-tj-electronics"  # not AEO / AEO
    submitted: list[Submitted] = []
    flagged_invoice = b"invoice with a forged stamp"
    _alert(ledger, 2, bytes(12) + bytes.fromhex(ledger.address(foods)[2:]))  # a watch-listed trader
    _alert(ledger, 0, hashlib.sha256(flagged_invoice).digest())  # a flagged supporting document
    plans: list[tuple[str, Any, dict[str, Any]]] = [
        (electronics, [_line("850440")], {}),
        (electronics, [_line("847130", "NL", 300_000)], {}),
        (electronics, [_line("930100", "US")], {}),
        (electronics, [_line("850440", "IR")], {}),
        (electronics, [_line("020110", "NL", 200_000)], {"currency": "EUR"}),
        (electronics, [_line("850440")], {"share": False}),
        (electronics, [{"hs_code": "??"}], {}),
        (electronics, [_line("850440")], {"documents": (flagged_invoice,)}),
        (foods, [_line("160100", "CN", 5000)], {}),
        (foods, [_line("850440")], {"share": False}),
    ]
    for n in range(30):
        trader, goods, options = plans[n] if n < len(plans) else (electronics, [_line("8504" + f"{n:02d}", "CN",
                                                                                          100.0 * n)], {})  # fmt: skip
        submitted.append(declarant.submit(trader, goods, **options))
    declarant.close()
    # raised after every submission: as of their submission blocks it did not exist, so it counts nowhere
    _alert(ledger, 2, bytes(12) + bytes.fromhex(ledger.address(electronics)[2:]))
    accepted = {s.declaration_id for s in submitted[20:25]}  # customs accepted these before any channel
    customs = ledger.address("cn-tj-customs-signer-0")
    for n, declaration_id in enumerate(sorted(accepted)):
        ledger.client.wait(ledger.client.accept_declaration(
            signer=customs, declaration_id=bytes.fromhex(declaration_id[2:]), mrn=f"MRN-{n}".encode().ljust(32, b"\0")
        ))  # fmt: skip

    # life 1: one pass over the first 10 declarations, then the process "dies" (context closed)
    ctx = contexts("risk", RISK)
    first = RiskOracle(ctx)
    first.batch_size = 10
    run(first, max_steps=1)
    assert len(ctx.state.facts("channel:")) == 10
    ctx.close()
    # life 2: as if it crashed before saving its cursor — it reconsiders everything from the start
    ctx = contexts("risk", RISK)
    ctx.state.set("cursor", [-1, -1])
    second = RiskOracle(ctx)
    second.batch_size = 7
    _drive_to_completion(ctx, second, expected=30)
    status = second.status()
    assert status["channelled"] == 30 and status["waiting"] == 0

    # the journal: one entry per declaration + the rule set anchor, all final
    entries = ctx.outbox.entries([*EntryState.ACTIVE, *EntryState.TERMINAL])
    keys = [e.idempotency_key for e in entries]
    assert len(keys) == len(set(keys)) == 31
    assert sorted(k for k in keys if k.startswith("risk:channel:")) == sorted(
        f"risk:channel:{s.declaration_id}" for s in submitted
    )
    assert ctx.outbox.counts() == {EntryState.FINAL: 31}

    # the auditor: its own index, the rule set fetched by the hash the chain carries, and the plaintexts
    indexer, model = _auditor_model(ledger, tmp_path / "auditor.db")
    try:
        events = model.events(name="ChannelAssigned")
        assert sorted(e.args["declarationId"] for e in events) == sorted(s.declaration_id for s in submitted)
        rule_set_hash = {e.args["ruleSetHash"] for e in events}
        assert rule_set_hash == {"0x" + load_rule_set(None).hash.hex()}
        (root,) = rule_set_hash
        batch = model.batch(root)
        assert batch is not None and batch["kind"] == RULE_SET_BATCH_KIND and batch["leaf_count"] == 1
        anchor_block = batch["block_number"]
        assert all(e.block_number >= anchor_block for e in events)  # anchored before the first channel using it
        rule_set = anchored_rule_set(model, content_store(ledger.settings), root)
        assert rule_set.canonical == canonical_json(DEFAULT_RULES)
        verdicts: dict[str, str] = {}
        channels: dict[str, int] = {}
        for event in events:
            holding = next(s for s in submitted if s.declaration_id == event.args["declarationId"])
            view = model.declaration(holding.declaration_id)
            assert view is not None
            inputs = gather_inputs(model, view, holding.plaintext)  # the auditor holds every plaintext
            assert inputs.trader_aeo == (view.declarant == ledger.address(electronics))
            assert inputs.alerts.trader == (view.declarant == ledger.address(foods))
            verdict = replay(rule_set, inputs, channel=event.args["channel"],
                             required_stamps=event.args["requiredStamps"],
                             rule_set_hash=bytes.fromhex(event.args["ruleSetHash"][2:]))  # fmt: skip
            verdicts[holding.declaration_id] = verdict.verdict
            channels[holding.declaration_id] = event.args["channel"]
            # exactly what the oracle saw: the plaintext only where it was shared with it
            seen = gather_inputs(model, view, holding.plaintext if holding.shared_with_risk else None)
            assert replay(rule_set, seen, channel=event.args["channel"], required_stamps=event.args["requiredStamps"],
                          rule_set_hash=rule_set.hash).verdict == "match"  # fmt: skip
            if holding.declaration_id in accepted:
                released = event.args["released"]
                assert released == (event.args["channel"] == 1 and event.args["requiredStamps"] == 0)
                assert view.status == (DeclarationStatus.RELEASED if released else DeclarationStatus.ACCEPTED)
        by = [s.declaration_id for s in submitted]
        # not shared with the risk agency: the on_unreadable outcome (for the watch-listed trader the
        # content-based channel happens to be the same RED, so that one is a plain match)
        assert {d for d, v in verdicts.items() if v == "unreadable-fallback"} == {by[5]}
        assert all(v == "match" for d, v in verdicts.items() if d != by[5])
        assert channels[by[2]] == channels[by[3]] == Channel.RED  # weapons, sanctioned origin
        assert channels[by[5]] == channels[by[9]] == Channel.RED  # unreadable → on_unreadable
        assert channels[by[8]] == Channel.RED  # watch-listed trader
        assert channels[by[6]] == channels[by[7]] == Channel.YELLOW  # malformed goods, flagged invoice
        assert Channel.GREEN in channels.values()
    finally:
        model.close()
        indexer.close()


@pytest.mark.integration
def test_an_unavailable_envelope_waits_then_gets_the_unreadable_channel(
    ledger: Ledger, contexts: Callable[..., OracleContext], tmp_path: Path
) -> None:
    # sealed into a store the oracle cannot reach (the other agency's node), so the envelope is not found
    elsewhere = LocalStore(tmp_path / "elsewhere")
    declarant = Declarant(ledger, store=elsewhere)
    missing = declarant.submit("trader-tj-electronics", [_line("850440")])
    declarant.close()
    ctx = contexts("risk", RISK)
    oracle = RiskOracle(ctx)
    oracle.unreadable_grace = 1.0
    started = time.monotonic()
    run(oracle, max_steps=1)
    assert ctx.posted(f"channel:{missing.declaration_id}") is None
    assert oracle.status()["waiting"] == 1
    deadline = time.monotonic() + 30
    while ctx.posted(f"channel:{missing.declaration_id}") is None and time.monotonic() < deadline:
        run(oracle, max_steps=1)
    assert time.monotonic() - started >= 1.0
    ctx.worker.drain(timeout=30)
    fact = ctx.state.fact(f"channel:{missing.declaration_id}")
    assert fact["document"] == "unavailable" and fact["basis"] == "unreadable" and fact["channel"] == "RED"
    assert oracle.status()["waiting"] == 0
    ctx.sync()
    view = ctx.read.declaration(missing.declaration_id)
    assert view is not None and view.channel == Channel.RED
    assert view.rule_set_hash == "0x" + oracle.rule_set.hash.hex()


@pytest.mark.integration
@pytest.mark.faults
def test_a_store_outage_backs_off_and_never_turns_a_declaration_red(
    ledger: Ledger, contexts: Callable[..., OracleContext]
) -> None:
    ctx = contexts("risk", RISK, interval=0.05, backoff_max=0.2)
    oracle = RiskOracle(ctx)
    oracle.unreadable_grace = 0.2
    ctx.sync()
    oracle.step()  # anchors the rule set while the store is up
    ctx.worker.drain(timeout=30)
    declarant = Declarant(ledger)
    item = declarant.submit("trader-tj-electronics", [_line("850440")])
    declarant.close()
    real_store = ctx.store
    from ledger_api.documents import LazyIpfsStore
    from tests._support.ipfs import free_port

    ctx.__dict__["store"] = LazyIpfsStore(f"/ip4/127.0.0.1/tcp/{free_port()}/http")  # a node that is down
    started = time.monotonic()
    while time.monotonic() - started < 1.5:  # far longer than the grace
        status = run(oracle, once=True)
        assert status.state == "degraded" and "StoreUnavailable" in (status.last_error or "")
    assert ctx.posted(f"channel:{item.declaration_id}") is None and oracle.status()["waiting"] == 0
    ctx.__dict__["store"] = real_store  # the node is back
    run(oracle, max_steps=2)
    ctx.worker.drain(timeout=30)
    fact = ctx.state.fact(f"channel:{item.declaration_id}")
    assert fact["document"] == "read" and fact["basis"] != "unreadable"


@pytest.mark.integration
def test_a_configured_rule_set_is_anchored_and_used(
    ledger: Ledger, contexts: Callable[..., OracleContext], tmp_path: Path
) -> None:
    custom = dict(DEFAULT_RULES, name="strict", version="7", rules=[
        {"id": "all-electronics", "when": {"hs_prefix": ["85"]}, "outcome": {"channel": "YELLOW",
                                                                             "stamps": ["XRAY_SCAN"]}},
    ])  # fmt: skip
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(custom, indent=2))
    declarant = Declarant(ledger)
    item = declarant.submit("trader-tj-electronics", [_line("850440")])
    declarant.close()
    ctx = contexts("risk", RISK, rules=path)
    oracle = RiskOracle(ctx)
    _drive_to_completion(ctx, oracle, expected=1)
    ctx.sync()
    view = ctx.read.declaration(item.declaration_id)
    expected = parse_rule_set(path.read_bytes())
    assert view is not None and (view.channel, view.required_stamps) == (Channel.YELLOW, 1 << 2)
    assert view.rule_set_hash == "0x" + expected.hash.hex()
    batch = ctx.read.batch(expected.hash)
    assert batch is not None
    cid = Cid.from_bytes(bytes.fromhex(batch["manifest_cid"][2:]))
    assert ctx.store.read(cid) == canonical_json(custom)
    env = {**os.environ, "LEDGER_VAR_DIR": str(ledger.settings.var_dir),
           "LEDGER_ANVIL_PORT": str(ledger.settings.anvil_port)}  # fmt: skip
    out = subprocess.run([sys.executable, "-m", "oracles", "risk", "explain", item.declaration_id], env=env,
                         capture_output=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    explained = json.loads(out.stdout)
    assert explained["verdict"] == "match" and explained["document"] == "read"
    assert explained["expected"]["matched"] == ["all-electronics"]


def test_the_documented_example_is_the_built_in_rule_set() -> None:
    example = ROOT / "docs" / "oracles" / "risk-rules.example.json"
    assert json.loads(example.read_text()) == DEFAULT_RULES
    assert load_rule_set(example).hash == load_rule_set(None).hash


def test_rules_command_prints_the_hash_and_refuses_yaml(tmp_path: Path) -> None:
    env = {**os.environ, "LEDGER_VAR_DIR": str(tmp_path / "var")}
    example = ROOT / "docs" / "oracles" / "risk-rules.example.json"
    out = subprocess.run([sys.executable, "-m", "oracles", "risk", "rules", "--file", str(example)], env=env,
                         capture_output=True, timeout=60, check=True)  # fmt: skip
    assert json.loads(out.stdout)["rule_set_hash"] == "0x" + load_rule_set(None).hash.hex()
    yaml = tmp_path / "rules.yaml"
    yaml.write_text("format: ledger-risk-rules-v1\n")
    bad = subprocess.run([sys.executable, "-m", "oracles", "risk", "rules", "--file", str(yaml)], env=env,
                         capture_output=True, timeout=60)  # fmt: skip
    assert bad.returncode == 1 and b"not JSON" in bad.stderr


@pytest.mark.integration
def test_a_channel_refused_because_the_declaration_moved_on_is_not_a_standing_problem(
    ledger: Ledger, contexts: Callable[..., OracleContext]
) -> None:
    ctx = contexts("risk", RISK)
    oracle = RiskOracle(ctx)
    trader = ledger.address("trader-tj-electronics")
    old = os.urandom(32)
    ledger.client.wait(ledger.client.submit_declaration(
        signer=trader, jurisdiction_id=agency_id_bytes(TJ), local_reference=b"L".ljust(32, b"\0"), commitment=old,
        cid=Cid.for_block(b"x", codec=0x55).to_bytes(),
    ))  # fmt: skip
    ledger.client.wait(ledger.client.amend_declaration(signer=trader, previous_id=old, commitment=os.urandom(32),
                                                       cid=Cid.for_block(b"y", codec=0x55).to_bytes()))  # fmt: skip
    # a channel journaled for the version that was superseded meanwhile: refused, and that is an outcome
    ctx.post("channel:0x" + old.hex(), calls.assign_channel(declaration_id=old, channel=1, required_stamps=0,
                                                            rule_set_hash=oracle.rule_set.hash))  # fmt: skip
    ctx.worker.drain(timeout=30)
    assert ctx.outbox.counts() == {EntryState.FAILED: 1}
    assert oracle.problems() == []
    # a refusal that is a fault (here: a declaration the ledger does not know) is one
    ctx.post("channel:bogus", calls.assign_channel(declaration_id=os.urandom(32), channel=1, required_stamps=0,
                                                   rule_set_hash=b"\x01" * 32))  # fmt: skip
    ctx.worker.drain(timeout=30)
    assert oracle.problems() == ["1 journaled rule-set anchor / channel write(s) failed"]
