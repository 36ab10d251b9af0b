"""Integrity watch on real parts: anvil, the embedded store on disk, real js-ipfs daemons, real crypto."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ledger_api.api.writes import DocumentVault, StoredEnvelope
from ledger_api.chain import _tx_calls as calls
from ledger_api.chain.deploy import agency_id_bytes
from ledger_api.documents import AgencyPublicKey, Cid, ContentStore, LocalStore, cid_of
from ledger_api.hashing import canonical_json
from oracles._base import OracleContext, read_status, run
from oracles.integrity import (
    REASON_COMMITMENT_MISMATCH,
    REASON_MISSING,
    REASON_TAMPERED,
    IntegrityOracle,
    _fingerprint,
    _fingerprint_changed,
)
from tests._support.ipfs import IpfsDaemon
from tests.oracles.conftest import Ledger

TRADER = "trader-tj-electronics"
JURISDICTION = "CN-TJ-CUSTOMS"
AUDIT = "CONSORTIUM-AUDIT"
BIG = 700 * 1024  # three 256 KiB leaves under a dag-pb root


# ---------------------------------------------------------------------------------- helpers


def _alert_count(ledger: Ledger) -> int:
    data = "0x" + calls.encode_call("alertCount", ()).hex()
    out = ledger.client.rpc.call("eth_call", [{"to": ledger.deployment.ledger, "data": data}, "latest"])
    return int(out, 16)


def _recipients(ledger: Ledger, *agencies: str) -> dict[str, AgencyPublicKey]:
    return {a: AgencyPublicKey.from_hex(ledger.deployment.agencies[a].encryption_public_key) for a in agencies}


def _vault(ledger: Ledger, store: ContentStore) -> DocumentVault:
    """The API's document vault (where the oracle finds key wraps), on ``store``."""
    return DocumentVault(ledger.settings.var_dir / "api" / "documents.db", store)


def _seal(ledger: Ledger, store: ContentStore, plaintext: bytes) -> StoredEnvelope:
    vault = _vault(ledger, store)
    try:
        return vault.seal_and_store(
            plaintext, recipients=_recipients(ledger, JURISDICTION, AUDIT), sha256=hashlib.sha256(plaintext).digest()
        )
    finally:
        vault.close()


def _anchor(
    ledger: Ledger, commitment: bytes, cid: str, documents: list[calls.SupportingDocumentRef] | None = None
) -> None:
    """The trader anchors a declaration under CN-TJ-CUSTOMS (mined before this returns)."""
    ledger.client.wait(
        ledger.client.submit_declaration(
            signer=ledger.address(TRADER), jurisdiction_id=agency_id_bytes(JURISDICTION),
            local_reference=os.urandom(8).ljust(32, b"\0"), commitment=commitment,
            cid=Cid.parse(cid).to_bytes(), documents=documents or [],
        )
    )  # fmt: skip


def _declare(ledger: Ledger, store: ContentStore, plaintext: bytes, *supporting: bytes) -> list[StoredEnvelope]:
    """Seal and store a declaration and its supporting documents, anchor them; returns the envelopes."""
    main = _seal(ledger, store, plaintext)
    docs = [_seal(ledger, store, content) for content in supporting]
    refs = [calls.SupportingDocumentRef(document_type=1, sha256=d.sha256, cid=d.cid_bytes()) for d in docs]
    _anchor(ledger, main.sha256, main.cid, refs)
    return [main, *docs]


def _local(ledger: Ledger) -> LocalStore:
    return LocalStore(ledger.settings.var_dir / "store")


def _block_file(root: Path, cid: Cid) -> Path:
    """The file holding block ``cid`` under a store / IPFS repo directory."""
    (found,) = [p for p in root.rglob("*") if p.is_file() and p.name.split(".")[0] == cid.block_key]
    return found


def _leaves(store: ContentStore, cid: str) -> list[Cid]:
    return [c for c, _ in store.dag_cids(cid) if c.codec == 0x55]


def _flip_bit(path: Path, offset: int = 1000) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)[0]
        fh.seek(offset)
        fh.write(bytes((byte ^ 0x01,)))


def _run(ctx: OracleContext, steps: int = 2, **kwargs: Any) -> IntegrityOracle:
    oracle = IntegrityOracle(ctx, **kwargs)
    try:
        run(oracle, max_steps=steps)
        if "outbox" in ctx.__dict__:
            ctx.worker.drain(timeout=30)
    finally:
        oracle.close()
    return oracle


def _poll(condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _doc_states(ctx: OracleContext) -> dict[str, int]:
    status = read_status(ctx) or {}
    return dict(status.get("details", {}).get("documents", {}))


def _idle_step(ctx: OracleContext) -> dict[str, int] | None:
    last = (read_status(ctx) or {}).get("details", {}).get("last_step", {})
    return dict(last) if last and last.get("verified") == 0 and last.get("anchors") == 0 else None


def _findings(ctx: OracleContext) -> dict[str, Any]:
    return ctx.state.facts("finding:")


# ---------------------------------------------------------------------------------- embedded store


@pytest.mark.integration
def test_intact_documents_are_verified_and_raise_no_alert(
    ledger: Ledger, contexts: Callable[..., OracleContext]
) -> None:
    store = _local(ledger)
    envelopes = _declare(ledger, store, b'{"declaration": "intact"}', os.urandom(BIG), b"packing list")
    ctx = contexts("integrity", AUDIT)
    _run(ctx)
    details = (read_status(ctx) or {})["details"]
    assert details["documents"] == {"ok": 3}
    assert details["commitments"] == {"verified": 3}  # all three envelopes opened with the auditor's wrap
    assert details["findings"] == 0 and _findings(ctx) == {}
    assert details["problems"] == []
    assert _alert_count(ledger) == 0
    assert len(envelopes) == 3


@pytest.mark.integration
def test_a_flipped_bit_is_alerted_once_within_one_interval_and_never_again(
    ledger: Ledger, contexts: Callable[..., OracleContext]
) -> None:
    store = _local(ledger)
    (main, invoice) = _declare(ledger, store, b'{"declaration": "flip"}', os.urandom(BIG))
    interval = 0.5
    ctx = contexts("integrity", AUDIT, interval=interval, integrity_recheck=3600)
    oracle = IntegrityOracle(ctx)
    stop = threading.Event()
    thread = threading.Thread(target=run, args=(oracle,), kwargs={"stop": stop})
    thread.start()
    try:
        _poll(lambda: _doc_states(ctx).get("ok") == 2, timeout=60, what="both documents verified")
        # an idle step reads no content: it stats the 5 block files (1 + root and 3 leaves) and stops
        idle = _poll(lambda: _idle_step(ctx), timeout=30, what="an idle step")
        assert idle == {"anchors": 0, "verified": 0, "bytes_read": 0, "blocks_statted": 5, "changed": 0}
        leaf = _leaves(store, invoice.cid)[1]
        _flip_bit(_block_file(store.root / "blocks", leaf))
        flipped = time.monotonic()
        _poll(lambda: _findings(ctx), timeout=30, what="a finding")
        latency = time.monotonic() - flipped
        # the full re-check is an hour away: only the per-step stat scan can have seen it
        assert latency <= interval + 2.0, latency
        _poll(lambda: _alert_count(ledger) == 1, timeout=60, what="the alert on chain")
    finally:
        stop.set()
        thread.join(timeout=60)
        oracle.close()
    (key,) = _findings(ctx)
    finding = _findings(ctx)[key]["finding"]
    assert finding["reason"] == "tampered" and finding["bad_block"] == str(leaf)
    assert finding["sha256"] == "0x" + invoice.sha256.hex() and finding["store"] == AUDIT
    ctx.sync()
    (alert,) = ctx.read.alerts(invoice.sha256)
    assert alert.reason_code == REASON_TAMPERED and alert.subject_kind == 0
    assert alert.evidence_sha256 == "0x" + hashlib.sha256(canonical_json(finding)).hexdigest()
    assert ctx.read.alerts(main.sha256) == []
    ctx.close()

    for _life in range(2):  # restarts on the same state: the finding stands, nothing is posted again
        again = contexts("integrity", AUDIT, interval=interval, integrity_recheck=0.1)
        _run(again, steps=3)
        assert _doc_states(again) == {"ok": 1, "tampered": 1}
        again.close()
    assert _alert_count(ledger) == 1


@pytest.mark.integration
def test_new_anchors_are_checked_in_the_step_after_they_are_indexed(
    ledger: Ledger, contexts: Callable[..., OracleContext]
) -> None:
    store = _local(ledger)
    ctx = contexts("integrity", AUDIT, interval=0.3, integrity_recheck=3600)
    oracle = IntegrityOracle(ctx)
    stop = threading.Event()
    thread = threading.Thread(target=run, args=(oracle,), kwargs={"stop": stop})
    thread.start()
    try:
        _poll(lambda: (read_status(ctx) or {}).get("state") == "ok", timeout=60, what="the oracle running")
        _declare(ledger, store, b"late arrival", b"its invoice")
        anchored = time.monotonic()
        _poll(lambda: _doc_states(ctx).get("ok") == 2, timeout=30, what="the new anchors verified")
        assert time.monotonic() - anchored <= 0.3 + 2.0
    finally:
        stop.set()
        thread.join(timeout=60)
        oracle.close()
    assert _alert_count(ledger) == 0


def test_the_per_step_scan_of_10000_block_files_is_cheap(tmp_path: Path) -> None:
    """The every-step check of embedded copies is one stat per block file: 10,000 blocks well under 1 s."""
    store = LocalStore(tmp_path / "store", durable=False)
    cids = [Cid.parse(store.put(os.urandom(32) + i.to_bytes(4, "big")).cid) for i in range(10_000)]
    fingerprint = _fingerprint(store, cids)
    started = time.perf_counter()
    assert not _fingerprint_changed(fingerprint)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, elapsed
    _flip_bit(_block_file(store.root / "blocks", cids[4321]), offset=3)
    assert _fingerprint_changed(fingerprint)


@pytest.mark.integration
def test_deleted_blocks_are_missing(ledger: Ledger, contexts: Callable[..., OracleContext]) -> None:
    store = _local(ledger)
    small, big, intact = _declare(ledger, store, b'{"declaration": "loss"}', os.urandom(BIG), b"certificate")
    ctx = contexts("integrity", AUDIT)
    _run(ctx)
    assert _doc_states(ctx) == {"ok": 3}
    # a whole single-block document lost after it was seen, and one leaf of a multi-block one
    _block_file(store.root / "blocks", Cid.parse(small.cid)).unlink()
    _block_file(store.root / "blocks", _leaves(store, big.cid)[0]).unlink()
    _run(ctx, steps=2)
    assert _doc_states(ctx) == {"ok": 1, "missing": 2}
    status = read_status(ctx) or {}
    assert status["details"]["problems"] == ["2 stored copies missing"]  # health answers 503 while running
    reasons = {v["finding"]["sha256"]: v["finding"]["reason"] for v in _findings(ctx).values()}
    assert reasons == {"0x" + small.sha256.hex(): "missing", "0x" + big.sha256.hex(): "missing"}
    assert _alert_count(ledger) == 2
    ctx.sync()
    for envelope in (small, big):
        (alert,) = ctx.read.alerts(envelope.sha256)
        assert alert.reason_code == REASON_MISSING
    assert ctx.read.alerts(intact.sha256) == []


@pytest.mark.integration
def test_a_leaf_gone_before_the_first_check_is_missing_but_never_stored_content_is_not(
    ledger: Ledger, contexts: Callable[..., OracleContext]
) -> None:
    store = _local(ledger)
    (partial,) = _declare(ledger, store, os.urandom(BIG))
    _block_file(store.root / "blocks", _leaves(store, partial.cid)[2]).unlink()
    random_cid = cid_of(os.urandom(64))  # anchored, stored nowhere (as tests and scripts do)
    _anchor(ledger, os.urandom(32), random_cid)
    ctx = contexts("integrity", AUDIT)
    _run(ctx, steps=2, never_stored_grace=0)
    assert _doc_states(ctx) == {"missing": 1, "unavailable": 1}
    assert [v["finding"]["sha256"] for v in _findings(ctx).values()] == ["0x" + partial.sha256.hex()]
    assert _alert_count(ledger) == 1


@pytest.mark.integration
def test_an_envelope_that_does_not_open_to_its_commitment_is_alerted(
    ledger: Ledger, contexts: Callable[..., OracleContext]
) -> None:
    store = _local(ledger)
    honest = _seal(ledger, store, b"the real invoice")
    forged = hashlib.sha256(b"a different invoice").digest()
    _anchor(ledger, forged, honest.cid)  # the envelope's CID under someone else's commitment
    ctx = contexts("integrity", AUDIT)
    _run(ctx)
    (value,) = _findings(ctx).values()
    assert value["finding"]["reason"] == "commitment-mismatch" and value["finding"]["sha256"] == "0x" + forged.hex()
    ctx.sync()
    (alert,) = ctx.read.alerts(forged)
    assert alert.reason_code == REASON_COMMITMENT_MISMATCH
    # an agency without a key wrap cannot check the commitment: it verifies the CID only, no alert
    other = contexts("integrity", "NL-RTM-CUSTOMS")
    _run(other)
    assert _findings(other) == {}
    assert (read_status(other) or {})["details"]["commitments"] == {"unchecked": 1}


@pytest.mark.integration
def test_findings_command_prints_the_evidence(ledger: Ledger, contexts: Callable[..., OracleContext]) -> None:
    store = _local(ledger)
    (doc,) = _declare(ledger, store, b"findings command")
    _flip_bit(_block_file(store.root / "blocks", Cid.parse(doc.cid)), offset=20)
    ctx = contexts("integrity", AUDIT)
    _run(ctx)
    env = dict(os.environ)
    env.update(LEDGER_VAR_DIR=str(ledger.settings.var_dir), LEDGER_ANVIL_PORT=str(ledger.settings.anvil_port))
    out = subprocess.run(
        [sys.executable, "-m", "oracles", "integrity", "findings", "--fail-on-findings"],
        env=env, capture_output=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    (finding,) = json.loads(out.stdout)
    assert finding["reason"] == "tampered" and finding["sha256"] == "0x" + doc.sha256.hex()
    assert finding["alert"]["state"] == "final"
    raw = {k: v for k, v in finding.items() if k not in ("detected_at", "evidence_sha256", "alert")}
    assert finding["evidence_sha256"] == "0x" + hashlib.sha256(canonical_json(raw)).hexdigest()


# ---------------------------------------------------------------------------------- IPFS


@pytest.mark.integration
@pytest.mark.slow
def test_documents_on_ipfs_are_checked_and_tampering_is_found_by_the_recheck(
    ledger: Ledger, contexts: Callable[..., OracleContext], ipfs_pair: list[IpfsDaemon]
) -> None:
    customs_node, audit_node = ipfs_pair
    nodes = {JURISDICTION: customs_node.api, AUDIT: audit_node.api}
    (intact, target) = _declare(ledger, customs_node.store, b'{"declaration": "on ipfs"}', os.urandom(BIG))
    ctx = contexts("integrity", AUDIT, ipfs_nodes=nodes, integrity_recheck=1.0, interval=0.3)
    _run(ctx)
    states = _doc_states(ctx)
    assert states == {"ok": 2}, states
    assert _alert_count(ledger) == 0
    details = (read_status(ctx) or {})["details"]
    assert details["commitments"].get("unchecked", 0) == 0  # every copy's commitment was opened

    leaf = _leaves(customs_node.store, target.cid)[1]
    _flip_bit(_block_file(customs_node.repo / "blocks", leaf))
    ctx.close()
    ctx = contexts("integrity", AUDIT, ipfs_nodes=nodes, integrity_recheck=1.0, interval=0.3)
    oracle = IntegrityOracle(ctx)
    stop = threading.Event()
    thread = threading.Thread(target=run, args=(oracle,), kwargs={"stop": stop})
    thread.start()
    try:
        _poll(lambda: _findings(ctx), timeout=60, what="the re-check round to find the flipped bit")
        _poll(lambda: _alert_count(ledger) == 1, timeout=60, what="the alert on chain")
    finally:
        stop.set()
        thread.join(timeout=120)
        oracle.close()
    (value,) = _findings(ctx).values()
    finding = value["finding"]
    assert finding["reason"] == "tampered" and finding["store"] == JURISDICTION
    assert finding["sha256"] == "0x" + target.sha256.hex()
    ctx.sync()
    assert ctx.read.alerts(intact.sha256) == []


@pytest.mark.integration
def test_never_stored_content_is_missing_only_after_the_grace_when_the_anchoring_store_is_watched(
    ledger: Ledger, contexts: Callable[..., OracleContext], ipfs_pair: list[IpfsDaemon]
) -> None:
    customs_node, audit_node = ipfs_pair
    commitment, cid = os.urandom(32), cid_of(os.urandom(100))  # anchored under CN-TJ-CUSTOMS, stored nowhere
    _anchor(ledger, commitment, cid)
    watched = {JURISDICTION: customs_node.api, AUDIT: audit_node.api}
    # the anchoring agency's node is not watched: nobody can say the content should be here
    blind = contexts("integrity-blind", AUDIT, ipfs_nodes={AUDIT: audit_node.api}, integrity_recheck=0.1)
    _run(blind, steps=2, never_stored_grace=0)
    assert _doc_states(blind) == {"unavailable": 1} and _findings(blind) == {}
    # watched, within the grace: not yet
    ctx = contexts("integrity", AUDIT, ipfs_nodes=watched, integrity_recheck=0.1)
    _run(ctx, steps=2, never_stored_grace=3600)
    assert _doc_states(ctx) == {"unavailable": 1} and _findings(ctx) == {}
    assert _alert_count(ledger) == 0
    # past the grace: MISSING, once
    _run(ctx, steps=3, never_stored_grace=0)
    (value,) = _findings(ctx).values()
    assert value["finding"]["reason"] == "missing" and value["finding"]["store"] == JURISDICTION
    assert _alert_count(ledger) == 1
    ctx.sync()
    (alert,) = ctx.read.alerts(commitment)
    assert alert.reason_code == REASON_MISSING
