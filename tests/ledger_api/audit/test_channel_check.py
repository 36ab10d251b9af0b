"""The replay's channel check on a real chain: channels posted by the real risk oracle re-derive from the
anchored rule set; a forged channel, forged stamps or an unanchored rule set are findings."""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ledger_api._cli import audit as audit_cli
from ledger_api.audit import DeclarationReader, ReplayReport, RuleSetChannelCheck, replay
from ledger_api.chain.events import EventDecoder, fetch_logs
from ledger_api.documents import AgencyPrivateKey, VaultKeyrings, content_store
from oracles._base import OracleContext
from oracles.risk import RiskOracle
from tests.oracles.conftest import Ledger, contexts, ledger  # noqa: F401  (fixtures)
from tests.oracles.test_risk import RISK, TJ, Declarant, Submitted, _alert, _drive_to_completion, _line

pytestmark = pytest.mark.integration

Logs = list[dict[str, Any]]
# ChannelAssigned data words: channel, requiredStamps, ruleSetHash, signer, released.
CHANNEL, REQUIRED, RULE_SET = 0, 1, 2


def _channelled(ledger: Ledger, contexts: Callable[..., OracleContext]) -> list[Submitted]:  # noqa: F811
    """A few declarations of every kind, channelled by the real risk oracle."""
    declarant = Declarant(ledger)
    foods, electronics = "trader-tj-foods", "trader-tj-electronics"
    _alert(ledger, 2, bytes(12) + bytes.fromhex(ledger.address(foods)[2:]))
    submitted = [
        declarant.submit(electronics, [_line("850440")]),  # GREEN unless sampled
        declarant.submit(electronics, [_line("930100", "US")]),  # weapons: RED
        declarant.submit(electronics, [_line("020110", "NL", 200_000)], currency="EUR"),  # food: YELLOW
        declarant.submit(electronics, [_line("850440")], share=False),  # unreadable → on_unreadable
        declarant.submit(electronics, [{"hs_code": "??"}]),  # malformed
        declarant.submit(foods, [_line("160100", "CN", 5000)]),  # watch-listed trader
    ]
    declarant.close()
    ctx = contexts("risk", RISK)
    _drive_to_completion(ctx, RiskOracle(ctx), expected=len(submitted))
    return submitted


def _reader(ledger: Ledger, agency: str) -> DeclarationReader:  # noqa: F811
    key = AgencyPrivateKey(ledger.keystore.encryption_key(agency.lower()))
    return DeclarationReader(agency=agency, private_key=key, keyrings=VaultKeyrings.for_settings(ledger.settings))


def _real_logs(ledger: Ledger, to_block: int) -> Logs:  # noqa: F811
    d = ledger.deployment
    rpc = ledger.settings.effective_rpc_url
    return [dict(log) for page in fetch_logs(rpc, [d.registry, d.ledger], d.deployment_block, to_block) for log in page]


def _channel_logs(ledger: Ledger, logs: Logs) -> dict[str, int]:  # noqa: F811
    """Declaration id → index of its ChannelAssigned log."""
    decoder = EventDecoder.for_contracts({ledger.deployment.registry: "AgencyRegistry",
                                          ledger.deployment.ledger: "ClearanceLedger"})  # fmt: skip
    topic = next(s.topic0 for s in decoder.specs if s.name == "ChannelAssigned")
    return {log["topics"][1].lower(): i for i, log in enumerate(logs) if log["topics"][0] == topic}


def _word(log: dict[str, Any], n: int) -> int:
    return int(log["data"][2 + 64 * n : 2 + 64 * (n + 1)], 16)


def _set_word(log: dict[str, Any], n: int, value: int | str) -> None:
    word = value[2:].lower().rjust(64, "0") if isinstance(value, str) else format(value, "064x")
    data = log["data"][2:]
    log["data"] = "0x" + data[: 64 * n] + word + data[64 * (n + 1) :]


def _channel_findings(report: ReplayReport) -> list[dict[str, Any]]:
    return [f.to_json() for f in report.findings if f.code.startswith("channel-")]


def test_oracle_channels_replay_clean_and_forged_channels_are_findings(
    ledger: Ledger,  # noqa: F811
    contexts: Callable[..., OracleContext],  # noqa: F811
    tmp_path: Path,
) -> None:
    submitted = _channelled(ledger, contexts)
    rpc = ledger.settings.effective_rpc_url
    store = content_store(ledger.settings)

    # the customs of the jurisdiction can open every declaration: each channel is re-derived in full
    report = replay(rpc, ledger.deployment, rule_store=store, reader=_reader(ledger, TJ), progress=None)
    assert report.ok, [f.to_json() for f in report.errors[:5]]
    assert _channel_findings(report) == []
    assert not any(name.startswith("channel") for name in report.checks_skipped)
    summary = report.checks["channel-rule-set"]
    assert summary["checked"] == len(submitted)
    # the one not shared with the risk agency got on_unreadable: a fallback the auditor can tell apart
    assert summary["verdicts"] == {"match": len(submitted) - 1, "unreadable-fallback": 1}
    assert summary["documents"] == {"read": len(submitted)}
    assert list(summary["rule_sets"].values()) == ["verified"]

    # as the risk agency: it reads what the oracle read, nothing more — every channel still checks out
    as_risk = replay(rpc, ledger.deployment, to_block=report.to_block, rule_store=store,
                     reader=_reader(ledger, RISK), progress=None)  # fmt: skip
    assert as_risk.ok and _channel_findings(as_risk) == []
    assert as_risk.checks["channel-rule-set"]["documents"] == {"not-shared": 1, "read": len(submitted) - 1}

    # without any key: channels equal to the no-document outcome pass, the others are content-unverified
    # warnings whose content-free part holds (never silently passed)
    blind = replay(rpc, ledger.deployment, to_block=report.to_block, rule_store=store, progress=None)
    assert blind.ok and not [f for f in _channel_findings(blind) if f["severity"] == "error"]
    verdicts = blind.checks["channel-rule-set"]["verdicts"]
    assert sum(verdicts.values()) == len(submitted) and set(verdicts) <= {"match-without-document",
                                                                          "content-unverified"}  # fmt: skip
    unverified = [f for f in _channel_findings(blind) if f["code"] == "channel-content-unverified"]
    assert len(unverified) == verdicts.get("content-unverified", 0) > 0
    assert "channel-content" in blind.checks_skipped

    # forged histories: the views are the real contracts', so these are also digest mismatches — but the
    # channel check names the channel itself
    real = _real_logs(ledger, report.to_block)
    index = _channel_logs(ledger, real)
    weapons, food = submitted[1].declaration_id, submitted[2].declaration_id

    def forged(change: Callable[[Logs], None], check: RuleSetChannelCheck | None = None) -> ReplayReport:
        logs = copy.deepcopy(real)
        change(logs)
        assert logs != real
        return replay(rpc, ledger.deployment, to_block=report.to_block, logs=[logs], channel_check=check,
                      rule_store=store, reader=_reader(ledger, TJ), progress=None)  # fmt: skip

    def downgrade(logs: Logs) -> None:  # weapons RED → YELLOW, stamps kept
        assert _word(logs[index[weapons]], CHANNEL) == 3
        _set_word(logs[index[weapons]], CHANNEL, 2)

    def fewer_stamps(logs: Logs) -> None:  # weapons: drop one required stamp
        required = _word(logs[index[weapons]], REQUIRED)
        assert bin(required).count("1") >= 2
        _set_word(logs[index[weapons]], REQUIRED, required & (required - 1))

    def unanchored(logs: Logs) -> None:  # a rule set nobody anchored
        _set_word(logs[index[food]], RULE_SET, "0x" + hashlib.sha256(b"secret rules").hexdigest())

    for change, declaration_id, code in ((downgrade, weapons, "channel-rule-set"),
                                         (fewer_stamps, weapons, "channel-rule-set"),
                                         (unanchored, food, "channel-rule-set-unverifiable")):  # fmt: skip
        bad = forged(change)
        assert not bad.ok
        found = _channel_findings(bad)
        assert [(f["code"], f["severity"]) for f in found] == [(code, "error")], found
        assert declaration_id in found[0]["message"] and found[0]["event"] == "ChannelAssigned"
        assert found[0]["tx"] == real[index[declaration_id]]["transactionHash"]
        if code == "channel-rule-set":
            assert found[0]["details"]["verdict"] == "mismatch"
            assert found[0]["details"]["expected"]["channel_code"] == _word(real[index[declaration_id]], CHANNEL)
    # the same forgery of a content-based channel, checked by an auditor without keys: still caught,
    # because the content-free rules (here: the watch-listed trader's alert → RED) already exceed it
    watched = submitted[5].declaration_id

    def watched_to_green(logs: Logs) -> None:
        _set_word(logs[index[watched]], CHANNEL, 1)
        _set_word(logs[index[watched]], REQUIRED, 0)

    logs = copy.deepcopy(real)
    watched_to_green(logs)
    keyless = replay(rpc, ledger.deployment, to_block=report.to_block, logs=[logs], rule_store=store, progress=None)
    errors = [f for f in _channel_findings(keyless) if f["severity"] == "error"]
    assert len(errors) == 1 and watched in errors[0]["message"] and errors[0]["details"]["verdict"] == "mismatch"

    # the command: checks channels with the embedded store by default, --agency opens the declarations
    out = tmp_path / "report.json"
    parser = argparse.ArgumentParser()
    audit_cli.register(parser.add_subparsers(dest="command"))
    record = ledger.settings.var_dir / "deployment.json"
    base = ["audit", "replay", "--deployment", str(record), "--rpc-url", rpc, "--to-block", str(report.to_block),
            "--report", str(out), "--quiet", "--store", str(ledger.settings.var_dir / "store")]  # fmt: skip
    monkey = pytest.MonkeyPatch()
    try:
        monkey.setenv("LEDGER_VAR_DIR", str(ledger.settings.var_dir))
        monkey.setenv("LEDGER_ANVIL_PORT", str(ledger.settings.anvil_port))
        args = parser.parse_args([*base, "--agency", TJ])
        assert args.handler(args) == 0
        data = json.loads(out.read_text())
        assert data["ok"] and data["checks"]["channel-rule-set"]["checked"] == len(submitted)
        assert "channel-rule-set" not in data["checks_skipped"]
    finally:
        monkey.undo()
