"""Anomalies the chain itself cannot prevent — a forged history, a different deployment — are each reported.

The replay is fed the real logs of a real history, modified one way per test (a log dropped,
inserted, reordered, or one field rewritten), while the views it compares against are the real
contracts'. Each modification must produce its specific finding and a failed report.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ledger_api.audit import ReplayReport, replay
from ledger_api.chain.events import EventDecoder, fetch_logs

from .conftest import Chain, History, HistoryGenerator, start_chain

pytestmark = pytest.mark.integration

Logs = list[dict[str, Any]]


@pytest.fixture(scope="module")
def history(chain: Chain) -> History:
    """A random history of about 150 operations, with the planted release-after-revoked-FAIL facts."""
    return HistoryGenerator(chain, seed=99).run(150, checkpoints=1)


@pytest.fixture(scope="module")
def real_logs(chain: Chain, history: History) -> Logs:
    """Every raw log of the deployment up to the last checkpoint."""
    addresses = [chain.deployment.registry, chain.deployment.ledger]
    return [
        dict(log)
        for page in fetch_logs(chain.rpc_url, addresses, chain.deployment.deployment_block, history.checkpoints[-1])
        for log in page
    ]


@pytest.fixture(scope="module")
def topic0(chain: Chain) -> dict[str, str]:
    """Event name → topic0."""
    decoder = EventDecoder.for_contracts(
        {chain.deployment.registry: "AgencyRegistry", chain.deployment.ledger: "ClearanceLedger"}
    )
    return {spec.name: spec.topic0 for spec in decoder.specs}


def _word(value: int | str) -> str:
    if isinstance(value, str):  # 0x address or bytes32
        return value[2:].lower().rjust(64, "0")
    return format(value, "064x")


def _set_word(log: dict[str, Any], n: int, value: int | str) -> None:
    data = log["data"][2:]
    log["data"] = "0x" + data[: 64 * n] + _word(value) + data[64 * (n + 1) :]


def _get_word(log: dict[str, Any], n: int) -> str:
    return str(log["data"][2 + 64 * n : 2 + 64 * (n + 1)])


def _find(logs: Logs, topic: str, *, topic1: bytes | str | None = None) -> list[int]:
    want = None if topic1 is None else "0x" + (topic1.hex() if isinstance(topic1, bytes) else topic1[2:]).lower()
    return [
        i
        for i, log in enumerate(logs)
        if log["topics"][0] == topic and (want is None or log["topics"][1].lower() == want.rjust(66, "0"))
    ]


def _replay_forged(chain: Chain, history: History, logs: Logs) -> ReplayReport:
    return replay(chain.rpc_url, chain.deployment, to_block=history.checkpoints[-1], logs=[logs], progress=None)


def _forge(real_logs: Logs, change: Callable[[Logs], None]) -> Logs:
    logs = copy.deepcopy(real_logs)
    change(logs)
    assert logs != real_logs
    return logs


def test_unmodified_logs_pass(chain: Chain, history: History, real_logs: Logs) -> None:
    report = _replay_forged(chain, history, copy.deepcopy(real_logs))
    assert report.ok, [f.to_json() for f in report.findings[:5]]
    assert report.digest_match is True


def test_dropped_revocation_is_a_release_with_an_open_failure(
    chain: Chain, history: History, real_logs: Logs, topic0: dict[str, str]
) -> None:
    def drop(logs: Logs) -> None:
        (i,) = _find(logs, topic0["StampRevoked"], topic1=history.facts["revoked_fail"])
        del logs[i]

    report = _replay_forged(chain, history, _forge(real_logs, drop))
    assert not report.ok
    assert {"release-with-open-failure", "digest-mismatch"} <= report.codes()
    (finding,) = [f for f in report.findings if f.code == "release-with-open-failure"]
    assert finding.event == "DecisionRecorded" and finding.tx and finding.block
    assert any(m["record"] == f"ledger.stamp/0x{history.facts['revoked_fail'].hex()}" for m in report.mismatches)


def test_dropped_pass_stamp_is_a_release_without_its_stamp(
    chain: Chain, history: History, real_logs: Logs, topic0: dict[str, str]
) -> None:
    def drop(logs: Logs) -> None:
        (i,) = _find(logs, topic0["StampRecorded"], topic1=history.facts["cited_pass"])
        del logs[i]

    report = _replay_forged(chain, history, _forge(real_logs, drop))
    assert {"release-cites-invalid-stamp", "release-without-pass-stamp", "digest-mismatch"} <= report.codes()


def test_same_signer_twice_breaks_four_eyes(
    chain: Chain, history: History, real_logs: Logs, topic0: dict[str, str]
) -> None:
    seized = history.facts["seized"]

    def same_signer(logs: Logs) -> None:
        proposals = _find(logs, topic0["DecisionProposed"], topic1=seized)
        recorded = _find(logs, topic0["DecisionRecorded"], topic1=seized)
        proposer = "0x" + _get_word(logs[proposals[-1]], 4)[24:]
        _set_word(logs[recorded[-1]], 4, proposer)  # the closing approval "by" the proposer

    report = _replay_forged(chain, history, _forge(real_logs, same_signer))
    assert "four-eyes" in report.codes()
    assert not report.ok


def test_dropped_proposal_is_a_decision_closing_no_round(
    chain: Chain, history: History, real_logs: Logs, topic0: dict[str, str]
) -> None:
    seized = history.facts["seized"]

    def drop(logs: Logs) -> None:
        del logs[_find(logs, topic0["DecisionProposed"], topic1=seized)[-1]]

    report = _replay_forged(chain, history, _forge(real_logs, drop))
    assert {"four-eyes", "digest-mismatch"} <= report.codes()


def test_action_by_a_suspended_agency(chain: Chain, history: History, real_logs: Logs, topic0: dict[str, str]) -> None:
    lab_index = chain.deployment.agencies["CN-TJ-CIQ-LAB"].index
    lab_id = "0x" + b"CN-TJ-CIQ-LAB".ljust(32, b"\0").hex()

    def suspend(logs: Logs) -> None:
        stamps = [i for i in _find(logs, topic0["StampRecorded"]) if int(logs[i]["topics"][3], 16) == lab_index]
        target = stamps[len(stamps) // 2]
        before = logs[target - 1]
        assert int(before["blockNumber"], 16) < int(logs[target]["blockNumber"], 16)
        forged = dict(before)
        forged.update(
            address=chain.deployment.registry,
            topics=[topic0["AgencyStatusChanged"], lab_id],
            data="0x" + _word(2),  # SUSPENDED
            logIndex=hex(int(before["logIndex"], 16) + 1),
        )
        logs.insert(target, forged)

    report = _replay_forged(chain, history, _forge(real_logs, suspend))
    assert {"inactive-agency-action", "governance-bypassed", "digest-mismatch"} <= report.codes()
    inactive = [f for f in report.findings if f.code == "inactive-agency-action"]
    assert all(f.event in ("StampRecorded", "StampRevoked", "BatchAnchored", "AlertRaised") for f in inactive)


def test_stamp_by_a_key_not_valid_at_signing_time(
    chain: Chain, history: History, real_logs: Logs, topic0: dict[str, str]
) -> None:
    lab_signer = chain.signer("CN-TJ-CIQ-LAB")

    def postdate(logs: Logs) -> None:
        added = _find(logs, topic0["SignerKeyAdded"])
        (i,) = [j for j in added if logs[j]["topics"][2][-40:] == lab_signer[2:].lower()]
        _set_word(logs[i], 0, 2**40)  # validFrom far in the future

    report = _replay_forged(chain, history, _forge(real_logs, postdate))
    assert {"key-not-valid", "digest-mismatch"} <= report.codes()
    assert any(f.code == "key-not-valid" and f.event == "StampRecorded" for f in report.findings)
    assert any(m["record"] == f"registry.signerKey/{lab_signer.lower()}" for m in report.mismatches)


def test_stamp_by_an_unregistered_signer(
    chain: Chain, history: History, real_logs: Logs, topic0: dict[str, str]
) -> None:
    intruder = "0x" + "ab" * 20

    def forge_signer(logs: Logs) -> None:
        _set_word(logs[_find(logs, topic0["StampRecorded"])[-1]], 0, intruder)

    report = _replay_forged(chain, history, _forge(real_logs, forge_signer))
    assert {"unknown-signer", "digest-mismatch"} <= report.codes()


def test_broken_amendment_chain(chain: Chain, history: History, real_logs: Logs, topic0: dict[str, str]) -> None:
    def bump_version(logs: Logs) -> None:
        i = _find(logs, topic0["DeclarationAmended"])[0]
        _set_word(logs[i], 0, int(_get_word(logs[i], 0), 16) + 5)

    report = _replay_forged(chain, history, _forge(real_logs, bump_version))
    assert {"amendment-chain", "digest-mismatch"} <= report.codes()


def test_reordered_logs(chain: Chain, history: History, real_logs: Logs) -> None:
    def swap(logs: Logs) -> None:
        logs[-1], logs[-2] = logs[-2], logs[-1]

    report = _replay_forged(chain, history, _forge(real_logs, swap))
    assert "log-order" in report.codes()
    assert not report.ok


def test_history_of_another_deployment(chain: Chain, history: History, real_logs: Logs, tmp_path: Path) -> None:
    """The views of another deployment (another node) do not match this history's state."""
    other = start_chain(tmp_path)
    try:
        missing = history.checkpoints[-1] - other.head()
        if missing > 0:  # the other node must have the blocks the logs name (for their timestamps)
            other.w3.provider.make_request("anvil_mine", [hex(missing)])  # type: ignore[arg-type]
        report = replay(
            other.rpc_url,
            chain.deployment,
            to_block=history.checkpoints[-1],
            logs=[copy.deepcopy(real_logs)],
            progress=None,
        )
    finally:
        other.client.close()
        other.node.stop()
    assert "digest-mismatch" in report.codes()
    assert report.digest_match is False and not report.ok
    assert report.mismatches


def test_logs_without_block_timestamps_take_them_from_the_headers(
    chain: Chain, history: History, real_logs: Logs
) -> None:
    """Nodes that omit ``blockTimestamp`` in logs (older geth, Besu): times come from the block headers."""
    stripped = [{k: v for k, v in log.items() if k != "blockTimestamp"} for log in real_logs]
    with_times = _replay_forged(chain, history, copy.deepcopy(real_logs))
    without = _replay_forged(chain, history, stripped)
    assert without.ok, [f.to_json() for f in without.findings[:5]]
    assert without.state_digest == with_times.state_digest
