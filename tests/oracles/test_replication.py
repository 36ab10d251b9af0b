"""Replication oracle on real js-ipfs daemons and a real anvil chain.

Three agency nodes (module-scoped: the tests stop and restart them). Documents are stored on one
node, their CIDs anchored on chain by a trader; the oracle must bring each to k pins by copying
verified blocks, report what it cannot repair, and repair it when a node returns.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger_api.chain import _tx_calls as calls
from ledger_api.chain.deploy import agency_id_bytes
from ledger_api.documents import Cid, ContentStore, LocalStore, cid_of
from ledger_api.errors import InvalidCid
from oracles import cli
from oracles._base import OracleContext, run
from oracles.replication import ReplicationOracle, parse_anchor_cid, rank_nodes
from tests._support.ipfs import IpfsDaemon, restart_daemon, start_daemons, stop_all, stop_daemon
from tests._support.recovery import record_recovery
from tests.oracles.conftest import Ledger

AGENCIES = ("CN-TJ-CUSTOMS", "NL-RTM-CUSTOMS", "CONSORTIUM-AUDIT")
ORIGIN = "CN-TJ-CUSTOMS"  # where documents are first stored
TJ = agency_id_bytes("CN-TJ-CUSTOMS")


# ------------------------------------------------------------------------------------ unit


def test_parse_anchor_cid_accepts_binary_cids_and_refuses_the_rest() -> None:
    v1 = Cid.for_block(b"x", codec=0x55)
    v0 = Cid.for_block(b"y", codec=0x70, version=0)
    assert parse_anchor_cid("0x" + v1.to_bytes().hex()) == v1
    assert parse_anchor_cid("0x" + v0.to_bytes().hex()) == v0
    assert parse_anchor_cid(None) is None and parse_anchor_cid("0x") is None and parse_anchor_cid("") is None
    for bad in ("0xzz", "0x" + "01" * 3, "0x01551220" + "00" * 31, "0x" + "00" * 129, "0x017112200000"):
        with pytest.raises(InvalidCid):
            parse_anchor_cid(bad)


def test_rank_nodes_is_deterministic_and_independent_of_configuration_order() -> None:
    cids = [Cid.for_block(bytes([i]), codec=0x55) for i in range(64)]
    firsts = set()
    for cid in cids:
        ranked = rank_nodes(cid, AGENCIES)
        assert sorted(ranked) == sorted(AGENCIES)
        assert rank_nodes(cid, reversed(AGENCIES)) == ranked
        assert rank_nodes(cid.to_v1(), AGENCIES) == ranked
        firsts.add(ranked[0])
    assert firsts == set(AGENCIES)  # spread: every node ranks first for some document


# ------------------------------------------------------------------------------------ integration


class Nodes:
    """The module's daemons by agency; tests stop / restart them, :meth:`heal` brings all back."""

    def __init__(self, daemons: list[IpfsDaemon]) -> None:
        self.by_agency = dict(zip(AGENCIES, daemons, strict=True))
        self.down: set[str] = set()

    def stop(self, agency: str) -> None:
        stop_daemon(self.by_agency[agency])
        self.down.add(agency)

    def restart(self, agency: str) -> None:
        peers = [d for a, d in self.by_agency.items() if a != agency and a not in self.down]
        self.by_agency[agency] = restart_daemon(self.by_agency[agency], peers=peers)
        self.down.discard(agency)

    def heal(self) -> None:
        for agency in sorted(self.down):
            self.restart(agency)

    def settings(self) -> dict[str, str]:
        return {agency: daemon.api for agency, daemon in self.by_agency.items()}

    def pinned_on(self, cid: Cid) -> set[str]:
        """Agencies (up) whose node pins ``cid``."""
        return {a for a, d in self.by_agency.items() if a not in self.down and str(cid.to_v1()) in _pins(d)}


def _pins(daemon: IpfsDaemon) -> set[str]:
    return {str(Cid.parse(c).to_v1()) for c in daemon.store.list()}


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nodes]:
    daemons = start_daemons(tmp_path_factory.mktemp("replication-ipfs"), ["tj", "rtm", "audit"])
    handle = Nodes(daemons)
    try:
        yield handle
    finally:
        stop_all(list(handle.by_agency.values()))


@pytest.fixture
def all_up(nodes: Nodes) -> Iterator[Nodes]:
    nodes.heal()
    yield nodes
    nodes.heal()


def _anchor(ledger: Ledger, nodes: Nodes | ContentStore, documents: list[bytes], ref: bytes) -> list[Cid]:
    """Store ``documents`` on the origin node (or ``store``) and anchor them as one declaration
    (the first as its envelope, the others as supporting documents)."""
    store = nodes.by_agency[ORIGIN].store if isinstance(nodes, Nodes) else nodes
    cids = [Cid.parse(store.put(doc).cid) for doc in documents]
    trader = ledger.address("trader-tj-electronics")
    supporting = [
        calls.SupportingDocumentRef(document_type=i + 1, sha256=hashlib.sha256(doc).digest(), cid=cid.to_bytes())
        for i, (doc, cid) in enumerate(zip(documents[1:], cids[1:], strict=True))
    ]
    handle = ledger.client.submit_declaration(
        signer=trader, jurisdiction_id=TJ, local_reference=ref.ljust(32, b"\0"),
        commitment=hashlib.sha256(documents[0]).digest(), cid=cids[0].to_bytes(), documents=supporting,
    )  # fmt: skip
    ledger.client.wait(handle)
    return cids


def _docs(n: int, *, big: bool = False) -> list[bytes]:
    docs = [os.urandom(1000 + i) for i in range(n)]
    if big:
        docs[0] = os.urandom(700 * 1024)  # several 256 KiB leaves under a dag-pb root
    return docs


def _pass(oracle: ReplicationOracle) -> dict[str, Any]:
    status = run(oracle, once=True)
    assert status.state != "degraded" and status.last_error is None, status.last_error
    return status.details


def _report(ledger: Ledger, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
    """``python -m oracles replication report`` (in process) → (exit code, JSON)."""
    monkeypatch.setenv("LEDGER_VAR_DIR", str(ledger.settings.var_dir))
    monkeypatch.setenv("LEDGER_ANVIL_PORT", str(ledger.settings.anvil_port))
    capsys.readouterr()
    code = cli.main(["replication", "report"])
    return code, json.loads(capsys.readouterr().out)


def _oracle(contexts: Callable[..., OracleContext], nodes: Nodes, replicas: int) -> ReplicationOracle:
    ctx = contexts("replication", "CONSORTIUM-AUDIT", ipfs_nodes=nodes.settings(), replicas=replicas, interval=0.2)
    return ReplicationOracle(ctx)


@pytest.mark.integration
@pytest.mark.slow
def test_replicates_each_anchored_cid_to_k_ranked_nodes_once(
    ledger: Ledger, contexts: Callable[..., OracleContext], all_up: Nodes
) -> None:
    nodes = all_up
    docs = _docs(3, big=True)
    cids = _anchor(ledger, nodes, docs, b"REPL-1")
    oracle = _oracle(contexts, nodes, replicas=2)

    details = _pass(oracle)
    assert details["documents"] == 3 and details["under_replicated_count"] == 0
    assert details["copied_last_pass"] == 3 and details["copies_total"] == 3
    assert details["nodes"] == dict.fromkeys(AGENCIES, "up")
    for doc, cid in zip(docs, cids, strict=True):
        expected_target = next(a for a in rank_nodes(cid, AGENCIES) if a != ORIGIN)
        assert nodes.pinned_on(cid) == {ORIGIN, expected_target}
        assert nodes.by_agency[expected_target].store.read(cid) == doc  # the copy reads back verified

    # further passes — and a fresh oracle on the same state — copy nothing and post nothing
    again = _pass(oracle)
    assert again["copied_last_pass"] == 0 and again["copies_total"] == 3 and again["under_replicated_count"] == 0
    oracle.ctx.close()
    fresh = _oracle(contexts, nodes, replicas=2)
    later = _pass(fresh)
    assert later["copied_last_pass"] == 0 and later["copies_total"] == 3 and later["documents"] == 3
    assert "outbox" not in fresh.ctx.__dict__ and not (fresh.ctx.directory / "outbox.db").exists()
    assert ledger.client.nonce_of(ledger.address("consortium-audit-signer-0")) == 0
    assert all(len(nodes.pinned_on(cid)) == 2 for cid in cids)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.faults
def test_a_down_node_is_reported_and_repaired_when_it_returns(
    ledger: Ledger,
    contexts: Callable[..., OracleContext],
    all_up: Nodes,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    nodes = all_up
    absent = "CONSORTIUM-AUDIT"  # also the oracle's own agency: its own node being down is no exception
    nodes.stop(absent)
    docs = _docs(2, big=True)
    cids = _anchor(ledger, nodes, docs, b"REPL-2")
    oracle = _oracle(contexts, nodes, replicas=3)

    details = _pass(oracle)  # the oracle stays ok: a down node is a finding, not an oracle failure
    assert details["nodes"][absent].startswith("down") and details["under_replicated_count"] == 2
    for item in details["under_replicated"]:
        assert item["replicas"] == 2 and item["required"] == 3 and item["reason"] == "too few nodes up"
        assert item["holders"] == sorted(set(AGENCIES) - {absent})
    assert {item["cid"] for item in details["under_replicated"]} == {str(c.to_v1()) for c in cids}
    assert all(nodes.pinned_on(cid) == set(AGENCIES) - {absent} for cid in cids)
    code, report = _report(ledger, monkeypatch, capsys)
    assert code == 1 and report["under_replicated_count"] == 2 and report["complete"] is True
    assert report["nodes"][absent].startswith("down")

    nodes.restart(absent)  # same repo and ports
    restarted = time.monotonic()
    details = _pass(oracle)
    assert details["under_replicated_count"] == 0 and details["copied_last_pass"] == 2
    record_recovery("IPFS daemon stopped and restarted (replicas repaired)", time.monotonic() - restarted, bound=30.0)
    assert details["nodes"] == dict.fromkeys(AGENCIES, "up")
    for doc, cid in zip(docs, cids, strict=True):
        assert nodes.pinned_on(cid) == set(AGENCIES)
        assert nodes.by_agency[absent].store.read(cid) == doc
    code, report = _report(ledger, monkeypatch, capsys)
    assert code == 0 and report["under_replicated_count"] == 0
    assert _pass(oracle)["copied_last_pass"] == 0


@pytest.mark.integration
@pytest.mark.slow
def test_copies_around_a_down_holder_and_keeps_pins_across_restarts(
    ledger: Ledger,
    contexts: Callable[..., OracleContext],
    all_up: Nodes,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    nodes = all_up
    # anchor an unparseable CID too: it is listed, never fatal
    trader = ledger.address("trader-tj-electronics")
    ledger.client.wait(
        ledger.client.submit_declaration(
            signer=trader, jurisdiction_id=TJ, local_reference=b"REPL-BAD".ljust(32, b"\0"),
            commitment=os.urandom(32), cid=b"\x01\x71\x12\x20" + b"\0" * 32,  # dag-cbor: not ours
        )
    )  # fmt: skip
    (cid,) = _anchor(ledger, nodes, _docs(1), b"REPL-3")
    oracle = _oracle(contexts, nodes, replicas=2)
    details = _pass(oracle)
    assert details["under_replicated_count"] == 0
    first, second = [a for a in rank_nodes(cid, AGENCIES) if a != ORIGIN]
    assert nodes.pinned_on(cid) == {ORIGIN, first}

    nodes.stop(first)  # a holder goes away: the pass copies to the next node in rank order at once
    details = _pass(oracle)
    assert details["copied_last_pass"] == 1 and details["under_replicated_count"] == 0
    assert nodes.pinned_on(cid) == {ORIGIN, second}

    nodes.stop(second)  # now only the origin pins it: reported, nothing to copy to
    details = _pass(oracle)
    assert details["copied_last_pass"] == 0 and details["under_replicated_count"] == 1
    (item,) = details["under_replicated"]
    assert item["holders"] == [ORIGIN] and item["replicas"] == 1 and item["kind"] == "declaration"
    code, report = _report(ledger, monkeypatch, capsys)
    assert code == 1 and len(report["invalid_cids"]) == 1

    nodes.heal()  # both return with their repos: their pins survived, k is restored without a copy
    details = _pass(oracle)
    assert details["under_replicated_count"] == 0 and details["copied_last_pass"] == 0
    assert nodes.pinned_on(cid) == set(AGENCIES)
    code, _report_after = _report(ledger, monkeypatch, capsys)
    assert code == 0


@pytest.mark.integration
@pytest.mark.slow
def test_every_node_down_degrades_then_recovers(
    ledger: Ledger, contexts: Callable[..., OracleContext], all_up: Nodes
) -> None:
    nodes = all_up
    (cid,) = _anchor(ledger, nodes, _docs(1), b"REPL-4")
    oracle = _oracle(contexts, nodes, replicas=2)
    for agency in AGENCIES:
        nodes.stop(agency)
    status = run(oracle, once=True)
    assert status.state == "degraded" and "no agency node answers" in (status.last_error or "")
    nodes.heal()
    details = _pass(oracle)
    assert details["under_replicated_count"] == 0 and len(nodes.pinned_on(cid)) == 2


@pytest.mark.integration
def test_a_corrupt_holder_is_skipped_for_a_verified_one(
    ledger: Ledger, contexts: Callable[..., OracleContext], tmp_path: Path
) -> None:
    """Real on-disk stores as the agency nodes; one holder's block file is altered on disk."""
    stores = {agency: LocalStore(tmp_path / agency.lower()) for agency in AGENCIES}
    doc = os.urandom(700 * 1024)
    cid = Cid.parse(cid_of(doc))
    bad, good, target = rank_nodes(cid, AGENCIES)
    for agency in (bad, good):
        assert Cid.parse(stores[agency].put(doc).cid) == cid
    leaf = [c for c, _block in stores[good].dag_cids(cid)][-1]
    path = stores[bad]._block_path(leaf)
    path.write_bytes(bytes(len(path.read_bytes())))  # same size, wrong bytes
    ledger.client.wait(
        ledger.client.submit_declaration(
            signer=ledger.address("trader-tj-electronics"), jurisdiction_id=TJ,
            local_reference=b"REPL-5".ljust(32, b"\0"), commitment=hashlib.sha256(doc).digest(), cid=cid.to_bytes(),
        )
    )  # fmt: skip
    ctx = contexts("replication", "CONSORTIUM-AUDIT", replicas=3)
    assert not stores[target].has(cid)
    ctx.__dict__["stores"] = stores  # the agency nodes: real stores on disk instead of IPFS daemons
    details = _pass(ReplicationOracle(ctx))
    assert details["copied_last_pass"] == 1 and details["under_replicated_count"] == 0
    assert stores[target].read(cid) == doc and str(cid) in stores[target].list()
