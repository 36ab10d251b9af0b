"""The read model built from a real anvil chain agrees with the contracts' own views."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from ledger_api.chain.deploy import agency_id_bytes
from ledger_api.index import AnchorKind, DeclarationStatus, Indexer

pytestmark = pytest.mark.integration

ZERO = "0x" + "00" * 32


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _opt(value: bytes) -> str | None:
    return None if value == b"\0" * 32 else _hex(value)


@pytest.fixture(scope="module")
def indexer(chain: Any, scenario: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    ix = Indexer.for_deployment(
        chain.deployment, database=tmp_path_factory.mktemp("index") / "index.db", rpc_url=chain.rpc_url
    )
    assert ix.poll() > 0
    yield ix
    ix.close()


def _all_declarations(scenario: Any) -> list[bytes]:
    return [scenario.released, scenario.original, scenario.amended, scenario.rejected, scenario.pending]


def test_declarations_match_the_contract_view(chain: Any, scenario: Any, indexer: Any) -> None:
    for declaration_id in _all_declarations(scenario):
        on_chain = chain.ledger.functions.declaration(declaration_id).call()
        view = indexer.model.declaration(declaration_id)
        assert view is not None
        assert (
            view.declarant, view.jurisdiction, int(view.status), view.channel, view.required_stamps, view.version,
            view.mrn, view.rule_set_hash, view.previous_id, view.superseded_by,
        ) == (
            on_chain[0], on_chain[1], on_chain[2], on_chain[3], on_chain[4], on_chain[5],
            _opt(on_chain[6]), _opt(on_chain[7]), _opt(on_chain[8]), _opt(on_chain[9]),
        )  # fmt: skip
    assert indexer.model.declaration(scenario.released).status is DeclarationStatus.RELEASED
    assert indexer.model.declaration(scenario.original).status is DeclarationStatus.SUPERSEDED
    assert indexer.model.declaration(scenario.amended).status is DeclarationStatus.SEIZED
    assert indexer.model.declaration(scenario.rejected).status is DeclarationStatus.REJECTED
    assert indexer.model.declaration(b"\x01" * 32) is None


def test_amendment_links_versions_and_keeps_mrn_and_reference(scenario: Any, indexer: Any) -> None:
    old, new = indexer.model.declaration(scenario.original), indexer.model.declaration(scenario.amended)
    assert new.version == 2 and new.previous_id == old.declaration_id and old.superseded_by == new.declaration_id
    assert new.mrn == old.mrn is not None
    assert new.local_reference == old.local_reference and new.jurisdiction == old.jurisdiction
    assert [d.document_type for d in new.documents] == [1, 2]


def test_declarations_of_a_trader(chain: Any, scenario: Any, indexer: Any) -> None:
    foods = chain.account("trader-tj-foods").address
    assert [v.declaration_id for v in indexer.model.declarations_of(foods)] == [
        _hex(scenario.original), _hex(scenario.amended),
    ]  # fmt: skip
    assert [v.declaration_id for v in indexer.model.declarations_of(foods.lower())] == [
        _hex(scenario.original), _hex(scenario.amended),
    ]  # fmt: skip
    assert indexer.model.declarations_of(chain.account("governor-0").address) == []


def test_stamps_match_the_contract_including_revocation(chain: Any, scenario: Any, indexer: Any) -> None:
    stamps = indexer.model.stamps(scenario.released)
    assert [s.stamp_id for s in stamps] == [_hex(scenario.stamps[k]) for k in ("doc_pass", "lab_fail", "lab_pass")]
    for stamp in stamps:
        on_chain = chain.ledger.functions.stamp(stamp.stamp_id).call()
        assert (stamp.signer, stamp.agency_index, stamp.stamp_type, stamp.result, stamp.revoked, stamp.signed_at) == (
            on_chain[1], on_chain[2], on_chain[3], on_chain[4], on_chain[5], on_chain[6],
        )  # fmt: skip
    revoked = stamps[1]
    assert revoked.revoked and revoked.revocation_reason == 7 and revoked.revoked_block is not None


def _h(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def test_a_relayed_stamp_records_signer_time_and_relayer(chain: Any, scenario: Any, indexer: Any) -> None:
    (stamp,) = indexer.model.stamps(scenario.pending)
    on_chain = chain.ledger.functions.stamp(scenario.stamps["relayed"]).call()
    assert (stamp.signer, stamp.agency_index, stamp.signed_at) == (on_chain[1], on_chain[2], on_chain[6])
    assert stamp.relayer == chain.account("governor-0").address
    assert stamp.signed_at < stamp.timestamp  # signed before the block that recorded it
    direct = indexer.model.stamps(scenario.released)[0]
    assert int(direct.relayer, 16) == 0  # recorded directly, no relayer


def test_anchor_of_agrees_with_the_contract_for_every_hash(chain: Any, scenario: Any, indexer: Any) -> None:
    hashes = [*_all_declarations(scenario), *scenario.stamps.values(), scenario.batch_root, _h("never anchored")]
    hashes += [_h(f"D1/doc{n}") for n in range(3)] + [_h("D2/doc0"), _h("D2v2/doc0")]
    for sha in hashes:
        kind, ref = chain.ledger.functions.anchorOf(sha).call()
        assert indexer.model.anchor_of(sha) == (AnchorKind(kind), _hex(ref)), sha.hex()
    # D1/doc0 is anchored twice (D1 and the amendment D2v2); the contract keeps the first, the index both.
    anchors = indexer.model.document(_h("D1/doc0"))
    assert [(a.kind, a.ref) for a in anchors] == [
        (AnchorKind.SUPPORTING_DOCUMENT, _hex(scenario.released)),
        (AnchorKind.SUPPORTING_DOCUMENT, _hex(scenario.amended)),
    ]
    assert anchors[0].cid == "0x" + (bytes([1, 0x55, 0x12, 0x20]) + _h("D1/doc0")).hex()
    assert indexer.model.documents_by_cid(anchors[0].cid)[0].ref == _hex(scenario.released)
    batch = indexer.model.document(scenario.batch_root)
    assert [a.kind for a in batch] == [AnchorKind.BATCH_ROOT]
    assert indexer.model.document(_h("never anchored")) == []


def test_timeline_lists_every_event_of_a_declaration_in_order(scenario: Any, indexer: Any) -> None:
    names = [e.name for e in indexer.model.timeline(scenario.released)]
    assert names == [
        "DeclarationSubmitted", "DeclarationAccepted", "ChannelAssigned", "StampRecorded", "StampRecorded",
        "StampRevoked", "StampRecorded", "DecisionRecorded", "AlertRaised",
    ]  # fmt: skip
    timeline = indexer.model.timeline(scenario.released)
    assert [(e.block_number, e.log_index) for e in timeline] == sorted((e.block_number, e.log_index) for e in timeline)
    assert all(e.timestamp > 0 for e in timeline)
    assert timeline[0].args["declarationId"] == _hex(scenario.released)
    assert len(timeline[0].args["documents"]) == 3
    amended = [e.name for e in indexer.model.timeline(scenario.original)]
    assert amended == ["DeclarationSubmitted", "DeclarationAccepted", "DeclarationAmended"]


def test_decisions_include_dual_control_rounds(chain: Any, scenario: Any, indexer: Any) -> None:
    steps = indexer.model.decisions(scenario.amended)
    assert [(s.action, s.round, s.kind) for s in steps] == [
        ("recorded", 0, 1), ("proposed", 1, 3), ("cancelled", 1, None), ("proposed", 2, 3), ("recorded", 2, 3),
    ]  # fmt: skip
    assert steps[1].approvals_required == 2 and steps[-1].status == int(DeclarationStatus.SEIZED)
    assert indexer.model.pending_decision(scenario.amended) is None
    assert chain.ledger.functions.pendingDecision(scenario.amended).call()[1] == 0  # no approvals pending on chain
    release = indexer.model.decisions(scenario.released)
    assert release[0].pass_stamps == (_hex(scenario.stamps["doc_pass"]), _hex(scenario.stamps["lab_pass"]))


def test_an_open_dual_control_round_is_pending(chain: Any, scenario: Any, indexer: Any) -> None:
    pending = indexer.model.pending_decision(scenario.pending)
    kind, approvals, required, reason, round_, proposer, report = chain.ledger.functions.pendingDecision(
        scenario.pending
    ).call()
    assert pending is not None
    assert (pending.kind, pending.approvals_required, pending.reason_code, pending.round, pending.signer) == (
        kind, required, reason, round_, proposer,
    )  # fmt: skip
    steps = indexer.model.decisions(scenario.pending)
    assert [s.action for s in steps] == ["recorded", "proposed", "approved"]
    assert steps[-1].approvals == approvals == 2
    assert indexer.model.declaration(scenario.pending).status is DeclarationStatus.HELD


def test_alerts_batches_and_active_counts(chain: Any, scenario: Any, indexer: Any) -> None:
    on_declaration = indexer.model.alerts(scenario.released)
    assert [(a.alert_id, a.active, a.reason_code) for a in on_declaration] == [(1, True, 11)]
    doc_alerts = indexer.model.alerts(_h("D1/doc1"))
    assert [(a.alert_id, a.active) for a in doc_alerts] == [(2, False)]
    for subject in (scenario.released, _h("D1/doc1")):
        assert (
            len(indexer.model.alerts(subject, active_only=True))
            == chain.ledger.functions.activeAlertCount(subject).call()
        )
    batch = indexer.model.batch(scenario.batch_root)
    on_chain = chain.ledger.functions.batch(scenario.batch_root).call()
    assert (batch["agency_index"], batch["leaf_count"], batch["kind"]) == (on_chain[0], on_chain[1], on_chain[2])


def test_agencies_keys_and_traders_match_the_registry(chain: Any, scenario: Any, indexer: Any) -> None:
    for code, record in chain.deployment.agencies.items():
        on_chain = chain.registry.functions.agency(agency_id_bytes(code)).call()
        view = indexer.model.agency(code)
        assert view is not None and view.code == code
        assert (view.agency_index, view.status, view.roles, view.country, view.name, view.ipfs_endpoint) == (
            on_chain[1], on_chain[2], on_chain[3], on_chain[4].decode(), on_chain[6], on_chain[7],
        )  # fmt: skip
        assert view.signers[: len(record.signers)] == record.signers
        assert indexer.model.agency(record.index) == view
        for signer in record.signers:
            key = indexer.model.signer_key(signer)
            assert (key.agency_index, key.valid_from, key.valid_until, key.compromised_at) == tuple(
                chain.registry.functions.signerKey(signer).call()
            )
    third = indexer.model.signer_key(scenario.third_signer)
    assert [h["change"] for h in third.history] == ["added", "expiry"]
    assert third.valid_until == chain.registry.functions.signerKey(scenario.third_signer).call()[2]
    assert indexer.model.agency("CN-TJ-CUSTOMS").signers[-1] == scenario.third_signer
    audit = indexer.model.agency("CONSORTIUM-AUDIT")
    assert [h["change"] for h in audit.history] == ["added", "roles"]  # changed by the governance vote
    for label, address in chain.deployment.traders.items():
        trader = indexer.model.trader(address)
        registrar, status, aeo = chain.registry.functions.trader(address).call()
        assert (trader["registrar_index"], trader["status"], trader["aeo"]) == (registrar, status, aeo), label


def test_key_valid_at_matches_was_valid_signer(chain: Any, scenario: Any, indexer: Any) -> None:
    key = indexer.model.signer_key(scenario.compromised)
    assert key.compromised_at > 0 and [h["change"] for h in key.history] == ["added", "compromised"]
    rtm = chain.deployment.agencies["NL-RTM-CUSTOMS"]
    lab = chain.deployment.agencies["CN-TJ-CIQ-LAB"]
    for signer in (scenario.compromised, rtm.signers[0], lab.signers[0]):
        k = indexer.model.signer_key(signer)
        for t in (k.valid_from - 1, k.valid_from, key.compromised_at - 1, key.compromised_at, k.valid_until):
            for agency_index in (rtm.index, lab.index):
                expected = chain.registry.functions.wasValidSigner(signer, agency_index, t).call()
                assert indexer.model.key_valid_at(signer, agency_index, t) is expected, (signer, agency_index, t)
    # What was known before the compromise report: the key was still valid then.
    before_report = key.history[1]["block_number"] - 1
    assert indexer.model.key_valid_at(scenario.compromised, "NL-RTM-CUSTOMS", key.compromised_at, block=before_report)
    assert not indexer.model.key_valid_at(scenario.compromised, "NL-RTM-CUSTOMS", key.compromised_at)


def test_governance_proposal(chain: Any, scenario: Any, indexer: Any) -> None:
    proposal = indexer.model.proposal(scenario.proposal_id)
    on_chain = chain.registry.functions.proposal(scenario.proposal_id).call()
    assert proposal["proposer"] == on_chain[0] and proposal["target"] == on_chain[1]
    assert proposal["executed"] is on_chain[5] is True
    assert [a["action"] for a in proposal["actions"]] == ["approved", "executed"]
    assert proposal["call_data"] == "0x" + on_chain[7].hex()


def test_as_of_block_and_time(chain: Any, scenario: Any, indexer: Any) -> None:
    model = indexer.model
    before = model.declaration_as_of(scenario.released, block=scenario.blocks["d1_before_revocation"])
    assert before.status is DeclarationStatus.ACCEPTED
    assert [(s.stamp_type, s.result, s.revoked) for s in before.stamps] == [(0, 1, False), (3, 2, False)]
    at_release = model.declaration_as_of(scenario.released, block=scenario.blocks["d1_before_release"])
    assert at_release.status is DeclarationStatus.ACCEPTED
    assert [(s.stamp_type, s.result, s.revoked) for s in at_release.stamps] == [
        (0, 1, False),
        (3, 2, True),
        (3, 1, False),
    ]
    after = model.declaration_as_of(scenario.released, block=scenario.blocks["d1_released"])
    assert after.status is DeclarationStatus.RELEASED
    assert model.declaration_as_of(scenario.amended, block=scenario.blocks["d1_released"]) is None  # not yet submitted
    # By time: the timestamp of the release block answers RELEASED; one second before the
    # submission answers None.
    release_time = chain.w3.eth.get_block(scenario.blocks["d1_released"])["timestamp"]
    assert model.declaration_as_of(scenario.released, time=release_time).status is DeclarationStatus.RELEASED
    submitted = model.declaration(scenario.released).submitted_at
    assert model.declaration_as_of(scenario.released, time=submitted - 1) is None
    with pytest.raises(ValueError):
        model.declaration_as_of(scenario.released)


def test_poll_is_incremental_and_lag_is_zero_when_caught_up(chain: Any, scenario: Any, indexer: Any) -> None:
    assert indexer.poll() == 0
    assert indexer.lag() == 0
    chain.send(
        chain.agency_signer("CONSORTIUM-AUDIT"), chain.ledger.functions.raiseAlert(2, scenario.released, 1, ZERO)
    )
    assert indexer.lag() == 1
    assert indexer.poll() == 1
    assert indexer.last_poll is not None and (indexer.last_poll.events, indexer.last_poll.blocks) == (1, 1)
    assert indexer.cursor == (chain.w3.eth.block_number, chain.w3.eth.get_block("latest")["hash"].to_0x_hex())
    assert indexer.model.event_count() == len(indexer.model.events())


def test_a_reopened_index_resumes_from_its_cursor(chain: Any, indexer: Any, tmp_path: Any) -> None:
    count, cursor = indexer.model.event_count(), indexer.cursor
    # A second indexer on a copy of the database picks up where the first stopped.
    import sqlite3

    copy = tmp_path / "copy.db"
    with sqlite3.connect(copy) as target:
        indexer._db.backup(target)
    reopened = Indexer.for_deployment(chain.deployment, database=copy, rpc_url=chain.rpc_url)
    try:
        assert reopened.cursor == cursor
        assert reopened.poll() == 0 and reopened.model.event_count() == count
    finally:
        reopened.close()


def test_tiny_pages_and_a_result_cap_build_the_same_index(chain: Any, indexer: Any, tmp_path: Any) -> None:
    small = Indexer.for_deployment(
        chain.deployment, database=tmp_path / "small.db", rpc_url=chain.rpc_url,
        initial_range=1, max_range=4, result_limit=2,
    )  # fmt: skip
    try:
        indexer.poll()
        small.poll()
        dump = "SELECT block_number, log_index, name, args FROM events ORDER BY 1, 2"
        assert small._db.execute(dump).fetchall() == indexer._db.execute(dump).fetchall()
        states = "SELECT * FROM declaration_states ORDER BY 1, 2, 3"
        assert small._db.execute(states).fetchall() == indexer._db.execute(states).fetchall()
    finally:
        small.close()


def test_confirmation_depth_holds_back_recent_blocks(chain: Any, tmp_path: Any) -> None:
    held = Indexer.for_deployment(
        chain.deployment, database=tmp_path / "held.db", rpc_url=chain.rpc_url, confirmations=3
    )
    try:
        held.poll()
        head = chain.w3.eth.block_number
        assert held.cursor[0] == head - 3
        assert held.lag() == 3
        assert all(e.block_number <= head - 3 for e in held.model.events())
    finally:
        held.close()


def test_an_index_of_another_deployment_is_refused(chain: Any, indexer: Any, tmp_path: Any) -> None:
    import dataclasses
    import sqlite3

    from ledger_api.errors import IndexMismatch

    copy = tmp_path / "other.db"
    with sqlite3.connect(copy) as target:
        indexer._db.backup(target)
    other = dataclasses.replace(chain.deployment, ledger="0x" + "12" * 20)
    with pytest.raises(IndexMismatch):
        Indexer.for_deployment(other, database=copy, rpc_url=chain.rpc_url)


def test_anchors_after_walks_every_anchor_once_in_chain_order_whatever_the_page_size(indexer: Any) -> None:
    everything = indexer.model.anchors_after(limit=10_000)
    assert everything, "the scenario anchors documents"
    positions = [(a.block_number, a.log_index, a.seq) for a in everything]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    # a declaration and its supporting documents share one event position
    assert len({(a.block_number, a.log_index) for a in everything}) < len(everything)
    for page in (1, 2, 3, 7):
        walked, cursor = [], (-1, -1, -1)
        while batch := indexer.model.anchors_after(cursor, limit=page):
            walked += batch
            cursor = batch[-1].cursor
        assert walked == everything
