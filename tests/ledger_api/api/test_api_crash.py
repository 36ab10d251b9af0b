"""Crash tests of the HTTP service: SIGKILL the service (then the node) during ≥ 1,000 concurrent
submissions, restart it, and prove that nothing was lost and nothing was anchored twice.

The service runs as a separate process (``python -m ledger_api.cli serve``) in its own process group
on a fresh embedded ledger. Clients submit distinct declarations from the three traders, each under
a fixed ``Idempotency-Key``, retrying with the same key after a connection error or a 5xx until
they get their 202, as a real client would. Kill points are chosen by progress (after the k-th 202,
k drawn from a seeded RNG; the seed is in every assertion message), never by wall-clock alone, so a
fast machine cannot finish before the kills.

Proved at the end: every key answered 202 has exactly one tracking id (also after the restarts,
and when sent once more); every submission settles ``final``; the chain holds exactly one
``DeclarationSubmitted`` per expected commitment and no other; the journal has one ``final`` entry
per request and none failed. At every service kill, each 202 already received is in the journal.

The node test SIGKILLs anvil's process group between two periodic state dumps, right after a
consistent one (anvil dumps while it mines, and a whole dump can hold account states ahead of its
blocks: a node restarted from it has declarations in storage without transaction or event), once
blocks were mined after it, so the restarted node has lost them and the outbox must anchor them
again. It also proves the service keeps journaling (202 pending) while the node is down, including
after its caches of chain answers expired (checked last).

``CRASH_TEST_SEED=n`` replays the random choices of a run (not its timing).
"""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger_api.chain.deploy import Deployment, ensure_deployed
from ledger_api.chain.keystore import Keystore
from ledger_api.chain.node import AnvilNode
from ledger_api.config import Settings
from ledger_api.outbox import EntryState, Outbox
from tests._support.recovery import record_recovery
from tests.ledger_api.api._api_crash_support import (
    TRADERS,
    Driver,
    Job,
    Outcome,
    ServiceProcess,
    file_stamp,
    free_port,
    make_jobs,
    state_dump_consistent,
    submitted_on_chain,
    wait_for_consistent_state_dump,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]

SUBMISSIONS = 1000
WORKERS = 48
SERVICE_KILLS = 4
NODE_KILLS = 3
#: One node outage lasts longer than the service's caches of chain answers (identity TTL 5 s).
LONG_OUTAGE = 8.0
#: Dump periods to wait for blocks mined after a consistent dump before a node kill.
DUMPS = 4
#: Bound on one whole test; everything waits on progress or on deadlines derived from this.
BUDGET = 300.0
#: Stated recovery (docs/reliability.md): every entry final within this many seconds of the last restart.
RECOVERY_BOUND = 90.0
ALL_STATES = [*EntryState.ACTIVE, *EntryState.TERMINAL]


class UnavailableWhileNodeDown(AssertionError):
    """The service refused writes (5xx) while the node was down instead of journaling them (202)."""


@dataclass
class CrashLedger:
    """A fresh embedded ledger, its service process and the submitting clients."""

    settings: Settings
    deployment: Deployment
    service: ServiceProcess
    driver: Driver
    addresses: dict[str, str]  # trader label -> lower-case address
    seed: int
    rng: random.Random
    deadline: float

    @property
    def journal_path(self) -> Path:
        return self.settings.var_dir / "api" / "outbox.db"

    def journal_key(self, job: Job) -> str:
        """The outbox key of a job (the service namespaces client keys by caller)."""
        return f"{self.addresses[job.label]}/{job.key}"

    def head(self) -> int:
        reply = httpx.post(
            self.settings.effective_rpc_url,
            json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []},
            timeout=10,
        ).json()
        return int(reply["result"], 16)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[CrashLedger]:
    """A deployed default consortium under tmp_path, the service running as its own process group."""
    seed = int(os.environ.get("CRASH_TEST_SEED") or random.randrange(1 << 30))  # timing still varies
    settings = Settings(var_dir=tmp_path / "var", anvil_port=free_port(), rate_limit_enabled=False)
    node = AnvilNode(state_dir=settings.var_dir / "anvil", port=settings.anvil_port)
    service: ServiceProcess | None = None
    driver: Driver | None = None
    try:
        record, _ = ensure_deployed(settings)
        keystore = Keystore.from_settings(settings)
        keys = {label: bytes(keystore.signer(label).key) for label in TRADERS}
        addresses = {label: str(keystore.signer(label).address).lower() for label in TRADERS}
        service = ServiceProcess(settings=settings, port=free_port(), log=tmp_path / "service.log")
        service.start()
        deadline = time.monotonic() + BUDGET
        driver = Driver(base_url=service.base_url, keys=keys, workers=WORKERS, deadline=deadline, seed=seed)
        yield CrashLedger(settings=settings, deployment=record, service=service, driver=driver,
                          addresses=addresses, seed=seed, rng=random.Random(seed), deadline=deadline)  # fmt: skip
    finally:
        if driver is not None:
            driver.close()
        if service is not None:
            service.kill()
        node.stop()


# ---------------------------------------------------------------------------------------- the tests


@pytest.mark.faults
def test_service_sigkilled_during_concurrent_submissions_loses_none_and_anchors_each_once(
    ledger: CrashLedger,
) -> None:
    seed, rng = ledger.seed, ledger.rng
    jobs = make_jobs(tag=f"svc{seed}", count=SUBMISSIONS)
    futures = ledger.driver.submit(jobs)
    # Kill after the k-th 202 (plus a few ms), k increasing and well before the last request.
    targets = sorted(rng.sample(range(SUBMISSIONS // 10, SUBMISSIONS * 8 // 10, 25), SERVICE_KILLS))
    kills = []
    for target in targets:
        assert ledger.driver.wait_accepted(target, until=ledger.deadline), f"seed {seed}: stalled before {target}"
        time.sleep(rng.uniform(0.0, 0.03))
        in_flight, answered_at_kill = ledger.driver.in_flight, ledger.driver.accepted
        ledger.service.kill()
        kills.append((answered_at_kill, in_flight, *_journal_at_kill(ledger, jobs)))
        ledger.service.start()
    restarted = time.monotonic()
    for future in futures:
        future.result(timeout=max(1.0, ledger.deadline - time.monotonic()))

    assert len(kills) >= 3 and all(answered < SUBMISSIONS for answered, *_ in kills), f"seed {seed}: {kills}"
    server_errors = [e for o in ledger.driver.outcomes for e in o.server_errors]
    assert not server_errors, f"seed {seed}: 5xx answers {collections.Counter(c for _, c in server_errors)}"
    report = _verify(ledger, jobs, fault="API service SIGKILLed during 1,000 submissions", fault_ended=restarted)
    unanswered = sum(u for *_, u in kills)
    print(
        f"\nseed {seed}: {SUBMISSIONS} submissions, {len(kills)} service kills "
        f"(202s so far, requests in flight, journaled, journaled but unanswered): {kills}; "
        f"{unanswered} journaled-but-unanswered requests were retried onto their entry; {report}"
    )


@pytest.mark.faults
def test_node_sigkilled_and_restarted_from_its_state_loses_none_and_anchors_each_once(
    ledger: CrashLedger,
) -> None:
    seed, rng, driver = ledger.seed, ledger.rng, ledger.driver
    node = AnvilNode(state_dir=ledger.settings.var_dir / "anvil", port=ledger.settings.anvil_port)
    state_file = node.state_dir / "state.json"
    jobs = make_jobs(tag=f"node{seed}", count=SUBMISSIONS)
    long_one = rng.randrange(NODE_KILLS)
    # Admission bounds how far the run gets around each kill, so that every kill lands mid-run on
    # any machine: per kill at most 100 (75 later) + WORKERS + AHEAD + DUMPS * AFTER_DUMP + DURING, LATE once.
    ahead, after_dump, during, late = 50, 15, 60, 30
    budget = 100 + 75 * (NODE_KILLS - 1) + NODE_KILLS * (WORKERS + ahead + DUMPS * after_dump + during) + late
    assert budget < SUBMISSIONS
    driver.admit(0)
    futures = driver.submit(jobs)
    outages: list[dict[str, Any]] = []
    for n in range(NODE_KILLS):
        # Kill after a random number of 202s since the node (re)started, with requests in flight.
        target = driver.accepted + (rng.randrange(50, 100) if n == 0 else rng.randrange(25, 75))
        driver.admit(target + WORKERS)
        assert driver.wait_accepted(target, until=ledger.deadline), f"seed {seed}: stalled before {target}"
        driver.admit(driver.started + ahead)
        _, head_before, skipped = _kill_point(ledger, state_file, lambda: driver.admit(driver.started + after_dump))
        pid = node.pid()
        assert pid is not None, f"seed {seed}: the node is not running"
        os.killpg(pid, signal.SIGKILL)  # the group: node_modules/.bin/anvil is a wrapper of the binary
        down_at = time.monotonic()
        outage: dict[str, Any] = {"answered_at_kill": driver.accepted, "in_flight": driver.in_flight,
                                  "inconsistent_dumps_skipped": skipped}  # fmt: skip
        driver.admit(driver.started + during)  # submissions go on while the node is down
        node.stop()  # reaps the killed process; no final dump happens
        kept = json.loads(state_file.read_bytes())  # what the node restarts from: whole and consistent
        assert state_dump_consistent(kept), f"seed {seed}: anvil dumped again before the kill, inconsistently"
        outage["lost_blocks"] = head_before - kept["best_block_number"]  # (a later dump than `dumped`: rare)
        held = LONG_OUTAGE if n == long_one else rng.uniform(1.5, 3.0)
        if n == long_one:
            # Past the service's caches of chain answers (identity TTL 5 s), new submissions begin.
            time.sleep(max(0.0, down_at + LONG_OUTAGE - 2.0 - time.monotonic()))
            outage["late_from"] = time.monotonic()
            driver.admit(driver.started + late)
        time.sleep(max(0.0, down_at + held - time.monotonic()))
        restart_at = time.monotonic()
        node.start()  # from its state file; answers once the state is loaded
        up_at = time.monotonic()
        outage |= {"down": down_at, "restart": restart_at, "up": up_at, "restart_s": round(up_at - restart_at, 1)}
        outages.append(outage)
    driver.admit(None)
    for future in futures:
        future.result(timeout=max(1.0, ledger.deadline - time.monotonic()))

    # Integrity first: 0 lost, 0 double-anchored, whatever the availability checks below find.
    outcomes = driver.outcomes
    windows = [(o["down"], o["up"] + 1.0) for o in outages]
    stray = [(o.job.key, code) for o in outcomes for at, code in o.server_errors
             if not any(a <= at <= b for a, b in windows)]  # fmt: skip
    assert not stray, f"seed {seed}: 5xx answers while the node was up: {stray[:5]}"
    report = _verify(ledger, jobs, fault="anvil SIGKILLed during 1,000 submissions and restarted",
                     fault_ended=outages[-1]["up"])
    for outage in outages:
        down, restart, up = outage.pop("down"), outage.pop("restart"), outage.pop("up")
        outage["held_s"] = round(restart - down, 1)  # the node cannot answer before it is started again
        outage["accepted_while_down"] = sum(1 for o in outcomes if o.accepted_at and down <= o.accepted_at <= restart)
        if "late_from" in outage:
            late_from = outage.pop("late_from")
            outage["accepted_late_while_down"] = sum(
                1 for o in outcomes if o.accepted_at and late_from <= o.accepted_at <= restart
            )
        outage["refused_5xx"] = sum(1 for o in outcomes for at, _ in o.server_errors if down <= at <= up + 1.0)
    print(f"\nseed {seed}: {SUBMISSIONS} submissions, {len(outages)} node kills {outages}; {report}")
    assert sum(o["lost_blocks"] for o in outages) > 0, f"seed {seed}: no kill lost blocks: {outages}"

    # Availability: the service journals writes (202 pending) all the time the node is down, also
    # after its caches of chain answers expired; it answers no 5xx.
    refusals = collections.Counter(code for o in outcomes for _, code in o.server_errors)
    unavailable = [o for o in outages if not o["accepted_while_down"] or o.get("accepted_late_while_down") == 0]
    if refusals or unavailable:
        raise UnavailableWhileNodeDown(
            f"seed {seed}: while the node was down, writes were answered {dict(refusals)}; outages {outages}"
        )


def _kill_point(ledger: CrashLedger, state_file: Path, admit_more: Callable[[], None]) -> tuple[int, int, int]:
    """Wait for the moment to kill the node: between two periodic dumps (anvil rewrites state.json in
    place: a kill during a dump leaves a file it cannot load), right after a consistent one (anvil
    dumps while it mines: accounts can be ahead of blocks), once blocks were mined after it (the
    restarted node has lost them). Tries DUMPS dump periods; returns (dump's block, head, inconsistent
    dumps passed over)."""
    passed_over = 0
    for _ in range(DUMPS):
        dumped, skipped = wait_for_consistent_state_dump(state_file)
        passed_over += skipped
        stamp = file_stamp(state_file)
        admit_more()
        wanted = dumped + ledger.rng.randint(1, 4)
        while file_stamp(state_file) == stamp:  # until the next dump begins
            if (head := ledger.head()) >= wanted:
                return dumped, head, passed_over
            time.sleep(0.01)
    dumped, skipped = wait_for_consistent_state_dump(state_file)  # nothing mined: kill, nothing is lost
    return dumped, ledger.head(), passed_over + skipped


# ---------------------------------------------------------------------------------------- proofs


def _journal_at_kill(ledger: CrashLedger, jobs: list[Job]) -> tuple[int, int]:
    """With the service dead: every 202 received so far is journaled (nothing acknowledged is lost).

    Returns (journaled, journaled but not answered): the latter were committed when the kill hit,
    before their response left; their clients retry and must get the same entry."""
    journal = Outbox.open(ledger.journal_path)
    try:
        entries = {e.idempotency_key: e.id for e in journal.entries(ALL_STATES)}
    finally:
        journal.close()
    answered = {ledger.journal_key(o.job): o for o in ledger.driver.outcomes if o.accepted}
    missing = sorted(set(answered) - set(entries))
    assert not missing, f"seed {ledger.seed}: {len(missing)} requests answered 202 are not journaled: {missing[:5]}"
    for key, outcome in answered.items():
        assert outcome.tracking_ids == {str(entries[key])}, f"seed {ledger.seed}: {key} {outcome.accepted}"
    ours = {ledger.journal_key(j) for j in jobs}
    assert set(entries) <= ours, f"seed {ledger.seed}: unknown journal keys {sorted(set(entries) - ours)[:5]}"
    return len(entries), len(set(entries) - set(answered))


def _verify(ledger: CrashLedger, jobs: list[Job], *, fault: str, fault_ended: float) -> str:
    """0 lost, 0 double-anchored: through the API, on chain and in the journal. Returns a summary.

    Also records the recovery time: from ``fault_ended`` (the last restart) until every entry is final."""
    seed, driver = ledger.seed, ledger.driver
    outcomes = driver.outcomes
    assert len(outcomes) == len(jobs)

    # Every request was answered 202 (none refused, none given up), under exactly one tracking id.
    refused = [(o.job.key, str(o.refused)) for o in outcomes if o.refused is not None]
    assert not refused, f"seed {seed}: refused {refused[:5]}"
    gave_up = [(o.job.key, o.gave_up) for o in outcomes if not o.accepted]
    assert not gave_up, f"seed {seed}: {len(gave_up)} requests never got a 202: {gave_up[:5]}"
    # Sent once more after the restarts (a sample), a request is still the same entry.
    again = ledger.rng.sample(outcomes, len(outcomes) // 10)
    driver.map(driver.resubmit, again)
    for outcome in outcomes:
        assert len(outcome.tracking_ids) == 1, f"seed {seed}: {outcome.job.key} got {outcome.accepted}"
        assert {b["declaration_id"] for b in outcome.accepted} == {outcome.job.commitment}, f"seed {seed}"
    tracking = [next(iter(o.tracking_ids)) for o in outcomes]
    assert len(set(tracking)) == len(jobs), f"seed {seed}: two requests share a tracking id"

    # Everything settles, and each one settles final.
    until = time.monotonic() + 120
    while any((backlog := ledger.service.health()["checks"]["outbox"]["backlog"]).values()):
        assert time.monotonic() < until, f"seed {seed}: the outbox did not drain: {backlog}"
        time.sleep(0.25)
    settled = driver.map(lambda o: driver.status(o, timeout=60), outcomes)
    not_final = [(o.job.key, s) for o, s in zip(outcomes, settled, strict=True) if s["status"] != "final"]
    assert not not_final, f"seed {seed}: {len(not_final)} not final: {not_final[:3]}"
    record_recovery(fault, time.monotonic() - fault_ended, bound=RECOVERY_BOUND)
    for outcome, status in zip(outcomes, settled, strict=True):
        assert status["state"] == "final" and status["function"] == "submitDeclaration", f"seed {seed}: {status}"
        assert status["anchor"] == outcome.job.commitment, f"seed {seed}: {outcome.job.key} {status}"

    # On chain: each commitment exactly once, by its trader, and nothing else.
    logs = submitted_on_chain(
        ledger.settings.effective_rpc_url,
        ledger=ledger.deployment.ledger,
        from_block=ledger.deployment.deployment_block,
    )
    per_id = collections.Counter(declaration_id for declaration_id, _ in logs)
    declarant = dict(logs)
    for job in jobs:
        assert per_id[job.commitment] == 1, f"seed {seed}: {job.key} anchored {per_id[job.commitment]} times"
        assert declarant[job.commitment] == ledger.addresses[job.label], f"seed {seed}: {job.key}"
    assert len(logs) == len(jobs) == len(per_id), f"seed {seed}: {len(logs)} anchors for {len(jobs)} requests"

    # The journal (after a graceful stop): one final entry per request, under its tracking id; none failed.
    ledger.service.stop()
    journal = Outbox.open(ledger.journal_path)
    try:
        counts = journal.counts()
        entries = {e.idempotency_key: e for e in journal.entries(ALL_STATES)}
    finally:
        journal.close()
    assert counts == {EntryState.FINAL: len(jobs)}, f"seed {seed}: journal {counts}"
    for outcome, tracking_id in zip(outcomes, tracking, strict=True):
        entry = entries[ledger.journal_key(outcome.job)]
        assert str(entry.id) == tracking_id and entry.state == EntryState.FINAL, f"seed {seed}: {entry}"

    _totals = _retry_totals(outcomes)
    return (
        f"{len(jobs)} final, {len(logs)} anchors on chain (each commitment once), journal {counts}; "
        f"client retries: {_totals}"
    )


def _retry_totals(outcomes: list[Outcome]) -> dict[str, int]:
    return {
        "attempts": sum(o.attempts for o in outcomes),
        "retried_requests": sum(1 for o in outcomes if o.attempts > 1),
        "transport_errors": sum(o.transport_errors for o in outcomes),
        "server_errors": sum(len(o.server_errors) for o in outcomes),
        "resubmitted": sum(1 for o in outcomes if len(o.accepted) > 1),
    }
