"""Checkpoint witness: accumulator, EIP-712 checkpoints, cross-agency compare, rewritten history (real anvil)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_utils.crypto import keccak

from ledger_api.chain._tx_rpc import RpcError
from ledger_api.chain.events import fetch_logs as library_fetch_logs
from ledger_api.errors import CheckpointError, LogQueryError
from oracles._base import OracleContext, run
from oracles.witness import (
    HistoryRewritten,
    NodeBehind,
    WitnessOracle,
    accumulate,
    compare_sources,
    fetch_logs,
    parse_checkpoint,
    recover_signer,
    sign_checkpoint,
)
from tests.oracles.conftest import Ledger

AUDIT = "CONSORTIUM-AUDIT"
RTM = "NL-RTM-CUSTOMS"
EVERY = 5
H32 = "0x" + "11" * 32


# ------------------------------------------------------------------------------ unit: pure parts


def _log(block: int, index: int, address: str, topics: list[str], data: str) -> dict[str, Any]:
    return {"blockNumber": hex(block), "logIndex": hex(index), "address": address, "topics": topics, "data": data}


def test_accumulator_follows_its_definition() -> None:
    a = "0x" + "aa" * 20
    logs = [_log(7, 0, a, [H32], "0x"), _log(7, 3, a, [], "0x" + "11" * 32)]
    acc, n = accumulate(b"\0" * 32, logs)
    expected = b"\0" * 32
    for block, index, topics, data in ((7, 0, bytes.fromhex("11" * 32), b""), (7, 3, b"", bytes.fromhex("11" * 32))):
        payload = keccak(bytes([len(topics) // 32]) + topics + data)
        expected = keccak(
            expected + block.to_bytes(8, "big") + index.to_bytes(4, "big") + bytes.fromhex("aa" * 20) + payload
        )
    assert n == 2 and acc == expected
    # the topic count separates topics from data: same bytes, different split -> different accumulator
    assert accumulate(b"\0" * 32, logs[1:])[0] != accumulate(b"\0" * 32, [_log(7, 3, a, [H32], "0x")])[0]


def _signed(account: Any, **changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "agency": AUDIT, "chain_id": 31337, "registry": "0x" + "01" * 20, "ledger": "0x" + "02" * 20,
        "block_number": 100, "block_hash": H32, "accumulator": "0x" + "22" * 32, "event_count": 3, "signed_at": 1,
    }  # fmt: skip
    fields.update(changes)
    return sign_checkpoint(account, **fields).as_json()


def test_checkpoint_signature_round_trip_and_tamper() -> None:
    account = Account.create()
    doc = _signed(account)
    checkpoint = parse_checkpoint(json.dumps(doc))
    assert recover_signer(checkpoint) == checkpoint.signer == account.address
    tampered = parse_checkpoint({**doc, "accumulator": "0x" + "33" * 32})
    assert recover_signer(tampered) != account.address
    high_s = bytearray(bytes.fromhex(doc["signature"][2:]))
    s = int.from_bytes(high_s[32:64], "big")
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    high_s[32:64] = (n - s).to_bytes(32, "big")
    with pytest.raises(CheckpointError, match="canonical"):
        recover_signer(parse_checkpoint({**doc, "signature": "0x" + high_s.hex()}))
    with pytest.raises(CheckpointError, match="does not recover"):  # no key recovers: an error, not a crash
        recover_signer(parse_checkpoint({**doc, "signature": "0x" + "00" * 64 + "1b"}))
    for bad in (b"[]", b"{", json.dumps({**doc, "extra": 1}), json.dumps({**doc, "block_number": -1}),
                json.dumps({**doc, "block_hash": "0x12"}), b"x" * 20_000):  # fmt: skip
        with pytest.raises(CheckpointError):
            parse_checkpoint(bad)


class _RangeLimitedNode:
    """Unit stand-in for a node that refuses ``eth_getLogs`` ranges wider than ``limit`` blocks."""

    def __init__(self, limit: int, logs_at: set[int]) -> None:
        self.limit, self.logs_at = limit, logs_at
        self.queries: list[tuple[int, int]] = []

    def call(self, method: str, params: list[Any]) -> Any:
        assert method == "eth_getLogs"
        first, last = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
        self.queries.append((first, last))
        if last - first + 1 > self.limit:
            raise RpcError(code=-32602, message="query exceeds max block range 4")
        return [_log(b, 0, "0x" + "aa" * 20, [H32], "0x") for b in sorted(self.logs_at) if first <= b <= last][::-1]


def test_log_pages_shrink_when_the_node_refuses_a_range() -> None:
    node = _RangeLimitedNode(limit=4, logs_at={3, 9, 10, 31})
    pages = list(fetch_logs(node, ["0x" + "aa" * 20], 1, 40, initial_range=32))  # type: ignore[arg-type]
    blocks = [int(log["blockNumber"], 16) for page in pages for log in page]
    assert blocks == [3, 9, 10, 31]  # each page sorted into chain order, nothing lost or repeated
    served = [q for q in node.queries if q[1] - q[0] + 1 <= 4]
    assert served[0][0] == 1 and served[-1][1] == 40
    assert all(b[0] == a[1] + 1 for a, b in zip(served, served[1:], strict=False))  # contiguous coverage
    with pytest.raises(LogQueryError):  # a refusal that is not about size is an error, not a retry loop
        list(fetch_logs(_Broken(), ["0x" + "aa" * 20], 1, 5))  # type: ignore[arg-type]


class _Broken:
    """A node that answers every query with an error unrelated to its size."""

    def call(self, method: str, params: list[Any]) -> Any:
        raise RpcError(code=-32000, message="header not found")


# ------------------------------------------------------------------------------ integration helpers


def _rpc(ledger: Ledger, method: str, *params: object) -> Any:
    return ledger.client.rpc.call(method, list(params))


def _head(ledger: Ledger) -> int:
    return int(_rpc(ledger, "eth_blockNumber"), 16)


def _mine_to(ledger: Ledger, height: int) -> None:
    missing = height - _head(ledger)
    if missing > 0:
        _rpc(ledger, "anvil_mine", hex(missing))
    assert _head(ledger) >= height


def _alert(ledger: Ledger, agency: str, subject: bytes) -> None:
    handle = ledger.client.raise_alert(
        signer=ledger.address(f"{agency.lower()}-signer-0"), subject_kind=0, subject=subject, reason_code=9,
        evidence_sha256=keccak(subject),
    )  # fmt: skip
    ledger.client.wait(handle)


@pytest.fixture
def witnesses(contexts: Callable[..., OracleContext]) -> Iterator[Callable[[str], WitnessOracle]]:
    """Factory of witness oracles (checkpoint every ``EVERY`` blocks); closed after the test."""
    made: list[WitnessOracle] = []

    def make(agency: str) -> WitnessOracle:
        made.append(WitnessOracle(contexts("witness", agency, checkpoint_every=EVERY)))
        return made[-1]

    yield make
    for oracle in made:
        oracle.close()


def _catch_up(oracle: WitnessOracle) -> None:
    """Step until nothing is due (bounded)."""
    for _ in range(50):
        if oracle.step() == 0:
            return
    raise AssertionError("witness did not catch up")


def _heights(oracle: WitnessOracle) -> list[int]:
    return [int(e["checkpoint"]["block_number"]) for e in oracle.checkpoints()]


def _export(oracle: WitnessOracle, directory: Path) -> list[Path]:
    """Write each checkpoint, as fetched back from the agency's content store, to ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for entry in oracle.checkpoints():
        data = b"".join(oracle.ctx.store.get(entry["cid"]))
        assert json.loads(data) == entry["checkpoint"]
        path = directory / f"{entry['checkpoint']['block_number']}.json"
        path.write_bytes(data)
        paths.append(path)
    return paths


def _recompute(ledger: Ledger, height: int) -> tuple[str, int]:
    """The accumulator at ``height`` from raw logs, read by the library's own (independent) pager."""
    d = ledger.deployment
    logs = [log for page in library_fetch_logs(ledger.settings.effective_rpc_url, [d.registry, d.ledger], 0, height)
            for log in page]  # fmt: skip
    acc, n = accumulate(b"\0" * 32, logs)
    return "0x" + acc.hex(), n


# ------------------------------------------------------------------------------ integration


@pytest.mark.integration
def test_two_agencies_agree_and_a_tampered_checkpoint_is_invalid(
    ledger: Ledger, witnesses: Callable[[str], WitnessOracle], tmp_path: Path
) -> None:
    _alert(ledger, AUDIT, b"\x01" * 32)
    _mine_to(ledger, _head(ledger) + 2 * EVERY)
    audit, rtm = witnesses(AUDIT), witnesses(RTM)
    status = run(audit, once=True)
    assert status.state == "stopped" and status.details["checkpoints"] >= 2
    _catch_up(audit)
    _alert(ledger, RTM, b"\x02" * 32)
    _mine_to(ledger, _head(ledger) + EVERY)
    audit.close()
    audit = witnesses(AUDIT)  # a new process life on the same state: resumes from the stored accumulator
    queries: list[tuple[int, int]] = []
    real_call = audit._rpc.call

    def spy(method: str, params: Any) -> Any:
        if method == "eth_getLogs":
            queries.append((int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)))
        return real_call(method, params)

    audit._rpc.call = spy  # type: ignore[method-assign]
    before = _heights(audit)
    _catch_up(audit)
    assert queries and min(q[0] for q in queries) == before[-1] + 1  # history is not re-read
    _catch_up(rtm)
    assert _heights(audit) == _heights(rtm) and len(_heights(audit)) >= 3
    assert all(h % EVERY == 0 for h in _heights(audit))
    last = audit.checkpoints()[-1]["checkpoint"]
    # anyone can recompute the accumulator from raw logs
    assert _recompute(ledger, last["block_number"]) == (last["accumulator"], last["event_count"])
    assert last["event_count"] > 2

    report = compare_sources(audit.ctx, [audit.ctx.directory, rtm.ctx.directory])
    assert report["divergences"] == [] and report["invalid"] == []
    assert report["agreed_heights"] == len(_heights(audit)) and report["checkpoints"] == 2 * len(_heights(audit))

    files = _export(rtm, tmp_path / "rtm")
    forged = json.loads(files[0].read_text())
    forged["accumulator"] = "0x" + "99" * 32
    files[0].write_text(json.dumps(forged))
    impostor = _signed(ledger.keystore.signer("nl-rtm-customs-signer-0"), agency=AUDIT)  # RTM key claiming AUDIT
    (tmp_path / "rtm" / "impostor.json").write_text(json.dumps(impostor))
    (tmp_path / "rtm" / "garbage.json").write_text("{not json")
    report = compare_sources(audit.ctx, [audit.ctx.directory, tmp_path / "rtm"])
    invalid = {Path(i["source"]).name: i["error"] for i in report["invalid"]}
    assert set(invalid) == {files[0].name, "impostor.json", "garbage.json"}
    assert "not the claimed signer" in invalid[files[0].name]
    assert "another deployment" in invalid["impostor.json"]
    assert report["divergences"] == []
    d = ledger.deployment
    impostor = _signed(ledger.keystore.signer("nl-rtm-customs-signer-0"), agency=AUDIT, chain_id=d.chain_id,
                       registry=d.registry, ledger=d.ledger)  # fmt: skip
    (tmp_path / "rtm" / "impostor.json").write_text(json.dumps(impostor))
    report = compare_sources(audit.ctx, [tmp_path / "rtm" / "impostor.json"])
    assert "not a valid key of CONSORTIUM-AUDIT" in report["invalid"][0]["error"]


@pytest.mark.integration
def test_rewritten_history_is_a_divergence_and_the_witness_reports_it(
    ledger: Ledger, witnesses: Callable[[str], WitnessOracle], tmp_path: Path
) -> None:
    audit, rtm = witnesses(AUDIT), witnesses(RTM)
    _mine_to(ledger, _head(ledger) + EVERY)
    _catch_up(audit)
    _catch_up(rtm)
    common = _heights(audit)
    assert common and common == _heights(rtm)
    height = common[-1] + EVERY

    snapshot = _rpc(ledger, "evm_snapshot")
    _alert(ledger, AUDIT, b"\xaa" * 32)  # history A
    _mine_to(ledger, height)
    _catch_up(audit)
    assert _heights(audit)[-1] == height
    signed_a = audit.checkpoints()[-1]["checkpoint"]

    assert _rpc(ledger, "evm_revert", snapshot) is True
    ledger.client.resync_nonces()
    # right after the revert the node is merely behind A's last checkpoint: no finding yet
    with pytest.raises(NodeBehind):
        audit.step()
    assert audit.findings() == []
    _alert(ledger, RTM, b"\xbb" * 32)  # history B: a different transaction at the same heights
    _mine_to(ledger, height)
    _catch_up(rtm)
    signed_b = rtm.checkpoints()[-1]["checkpoint"]
    assert signed_b["block_number"] == height and signed_b["block_hash"] != signed_a["block_hash"]
    assert signed_b["accumulator"] != signed_a["accumulator"]

    report = compare_sources(rtm.ctx, [audit.ctx.directory, rtm.ctx.directory])
    assert [d["block_number"] for d in report["divergences"]] == [height]
    divergence = report["divergences"][0]
    assert divergence["kind"] == "block-hash" and divergence["equivocation"] == []
    views = {v["agencies"][0]: v for v in divergence["views"]}
    assert views[AUDIT]["block_hash"] == signed_a["block_hash"] and views[RTM]["block_hash"] == signed_b["block_hash"]
    assert report["agreed_heights"] == len(common)

    # witness A does not silently re-sign: it reports that its checkpoint no longer matches the chain
    with pytest.raises(HistoryRewritten):
        audit.step()
    (finding,) = audit.findings()
    assert finding["block_number"] == height and finding["signed_block_hash"] == signed_a["block_hash"]
    assert finding["node_block_hash"] == signed_b["block_hash"]
    status = run(audit, once=True)
    assert status.state == "degraded" and status.last_error and "HistoryRewritten" in status.last_error
    assert audit.checkpoints()[-1]["checkpoint"] == signed_a  # nothing rewritten
    assert _heights(audit) == [*common, height]

    # the command line: exit 1 on the divergence, the JSON report on stdout; `list` shows the finding
    env = dict(os.environ)
    env.update(
        LEDGER_VAR_DIR=str(ledger.settings.var_dir),
        LEDGER_ANVIL_PORT=str(ledger.settings.anvil_port),
        LEDGER_ORACLE_STATE_DIR=str(ledger.settings.var_dir / "oracles"),
    )
    cmd = [sys.executable, "-m", "oracles", "witness"]
    out = subprocess.run([*cmd, "compare", str(audit.ctx.directory), str(rtm.ctx.directory)], env=env,
                         capture_output=True, timeout=120)  # fmt: skip
    assert out.returncode == 1, out.stderr
    assert [d["block_number"] for d in json.loads(out.stdout)["divergences"]] == [height]
    listing = subprocess.run([*cmd, "list", "--json"], env=env, capture_output=True, timeout=120)
    assert listing.returncode == 1, listing.stderr  # this agency (CONSORTIUM-AUDIT) has a finding
    assert json.loads(listing.stdout)["findings"][0]["block_number"] == height
    agree = subprocess.run([*cmd, "compare", str(rtm.ctx.directory)], env=env, capture_output=True, timeout=120)
    assert agree.returncode == 0, agree.stderr
