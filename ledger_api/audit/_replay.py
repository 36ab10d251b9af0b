"""The replay: read every event from the deployment block, rebuild, compare with the views, report."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from ledger_api.audit._channels import DeclarationReader, RuleSetChannelCheck
from ledger_api.audit._checkpoint import ResumePoint, block_hash_at
from ledger_api.audit._digest import DIGEST_VERSION, digest, plan, state_records, view_records
from ledger_api.audit._findings import AuditError, Finding, Severity
from ledger_api.audit._state import ChannelRuleCheck, LedgerState, Rebuilder
from ledger_api.chain.accumulator import ZERO_ACCUMULATOR, accumulate
from ledger_api.chain.events import DecodedEvent, EventDecoder, JsonRpc, RawLog, fetch_logs, prefetched
from ledger_api.documents import ContentStore

__all__ = ["DeploymentLike", "Progress", "ReplayReport", "Throughput", "replay", "write_report"]

#: How many differing records the report lists when the digests differ.
MAX_LISTED_MISMATCHES = 50


class DeploymentLike(Protocol):
    """What the replay needs of a deployment record (:class:`ledger_api.chain.Deployment` fits)."""

    @property
    def chain_id(self) -> int: ...  # noqa: D102
    @property
    def registry(self) -> str: ...  # noqa: D102
    @property
    def ledger(self) -> str: ...  # noqa: D102
    @property
    def deployment_block(self) -> int: ...  # noqa: D102


@dataclass(frozen=True, kw_only=True)
class Throughput:
    """Where the replay's time went (seconds) and its rate."""

    events: int
    blocks: int
    pages: int
    fetch_seconds: float
    decode_seconds: float
    apply_seconds: float
    view_seconds: float
    total_seconds: float

    @property
    def events_per_second(self) -> float:
        """Events read, decoded and applied per second (view comparison excluded)."""
        busy = self.fetch_seconds + self.decode_seconds + self.apply_seconds
        return self.events / busy if busy > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "events": self.events, "blocks": self.blocks, "pages": self.pages,
            "fetch_seconds": round(self.fetch_seconds, 4), "decode_seconds": round(self.decode_seconds, 4),
            "apply_seconds": round(self.apply_seconds, 4), "view_seconds": round(self.view_seconds, 4),
            "total_seconds": round(self.total_seconds, 4), "events_per_second": round(self.events_per_second, 1),
        }  # fmt: skip


@dataclass(kw_only=True)
class ReplayReport:
    """The outcome of :func:`replay`. ``ok`` is false when any error finding exists or the digests differ."""

    chain_id: int
    registry: str
    ledger: str
    from_block: int
    to_block: int
    state_digest: str
    view_digest: str | None
    records: int
    mismatches: list[dict[str, Any]]
    findings: list[Finding]
    counts: dict[str, int]
    events_by_name: dict[str, int]
    checks_skipped: dict[str, str]
    throughput: Throughput
    state: LedgerState = field(repr=False)
    checks: dict[str, Any] = field(default_factory=dict)
    #: Where the next replay can continue from (with ``track=True`` or ``resume``): see ``--checkpoint``.
    resume_point: ResumePoint | None = field(default=None, repr=False)
    #: ``{"block", "block_hash", "events"}`` of the checkpoint this replay resumed from.
    resumed_from: dict[str, Any] | None = None

    @property
    def digest_match(self) -> bool | None:
        """Replayed state digest == view digest (``None`` when the views were not compared)."""
        return None if self.view_digest is None else self.view_digest == self.state_digest

    @property
    def errors(self) -> list[Finding]:
        """Findings of severity ``error``."""
        return [f for f in self.findings if f.severity == Severity.ERROR]

    @property
    def ok(self) -> bool:
        """True when nothing is wrong: no error finding and (if compared) equal digests."""
        return not self.errors and self.digest_match is not False

    def codes(self) -> set[str]:
        """The distinct finding codes (handy in tests and summaries)."""
        return {f.code for f in self.findings}

    def to_json(self, explorer: str | None = None) -> dict[str, Any]:
        """The JSON report; ``explorer`` is a URL template (``{tx}``, ``{block}``) for finding links."""
        return {
            "report": "ledger-audit-replay/1",
            "ok": self.ok,
            "chain_id": self.chain_id,
            "contracts": {"AgencyRegistry": self.registry, "ClearanceLedger": self.ledger},
            "blocks": {"from": self.from_block, "to": self.to_block},
            "digest": {
                "version": DIGEST_VERSION,
                "replay": self.state_digest,
                "views": self.view_digest,
                "match": self.digest_match,
                "records": self.records,
                "mismatches": self.mismatches,
            },
            "summary": {
                "errors": len(self.errors),
                "warnings": len(self.findings) - len(self.errors),
                "by_code": _count(f.code for f in self.findings),
            },
            "findings": [f.to_json(explorer) for f in self.findings],
            "counts": self.counts,
            "events": self.events_by_name,
            "checks": self.checks,
            "checks_skipped": self.checks_skipped,
            "throughput": self.throughput.to_json(),
            **({"resumed_from": self.resumed_from} if self.resumed_from is not None else {}),
            **(
                {
                    "history": {
                        "events": self.resume_point.event_count,
                        "accumulator": self.resume_point.accumulator,
                        "block_hash": self.resume_point.block_hash,
                    }
                }
                if self.resume_point is not None
                else {}
            ),
        }


def _count(items: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return dict(sorted(out.items()))


class Progress:
    """Progress on a text stream: blocks done, events, events/s and ETA, at most every ``interval`` s."""

    def __init__(self, stream: IO[str] | None, *, first: int, last: int, interval: float = 0.5) -> None:
        self._stream = stream
        self._first, self._last = first, last
        self._interval = interval
        self._started = time.perf_counter()
        self._shown = 0.0
        self._tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())

    def update(self, block: int, events: int, *, final: bool = False) -> None:
        """Report that blocks up to ``block`` are done, ``events`` events so far."""
        if self._stream is None:
            return
        now = time.perf_counter()
        if not final and now - self._shown < self._interval:
            return
        self._shown = now
        elapsed = max(now - self._started, 1e-9)
        total = max(self._last - self._first + 1, 1)
        done = min(max(block - self._first + 1, 0), total)
        rate = events / elapsed
        eta = elapsed * (total - done) / done if done else float("nan")
        line = (
            f"audit replay: block {block}/{self._last} ({100 * done / total:5.1f}%)  {events} events  "
            f"{rate:,.0f} events/s  ETA {eta:4.1f}s"
        )
        if self._tty:
            self._stream.write("\r" + line + ("\n" if final else ""))
        else:
            self._stream.write(line + "\n")
        self._stream.flush()


def _block_times(rpc: JsonRpc, logs: Sequence[RawLog], known: dict[int, int]) -> None:
    """Fill ``known`` with ``{block number: timestamp}`` for these logs (``blockTimestamp`` or headers)."""
    missing: list[int] = []
    for log in logs:
        number = int(log["blockNumber"], 16)
        if number in known:
            continue
        stamp = log.get("blockTimestamp")
        if stamp is None:
            if number not in missing:
                missing.append(number)
        else:
            known[number] = int(stamp, 16)
    for start in range(0, len(missing), 500):
        part = missing[start : start + 500]
        headers = rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in part])
        for number, header in zip(part, headers, strict=True):
            if header is None:
                raise AuditError(f"block {number} of a log is not on this node")
            known[number] = int(header["timestamp"], 16)


def replay(
    rpc_url: str,
    deployment: DeploymentLike,
    *,
    to_block: int | None = None,
    logs: Iterable[Sequence[RawLog]] | None = None,
    compare_views: bool = True,
    channel_check: ChannelRuleCheck | None = None,
    rule_store: ContentStore | None = None,
    reader: DeclarationReader | None = None,
    document_check: Callable[[LedgerState], Iterable[Finding]] | None = None,
    resume: ResumePoint | None = None,
    track: bool = False,
    on_event: Callable[[DecodedEvent], None] | None = None,
    progress: IO[str] | None = sys.stderr,
    initial_range: int = 128,
    max_range: int = 100_000,
    result_limit: int | None = None,
    rpc_timeout: float = 30.0,
) -> ReplayReport:
    """Replay every event of ``deployment`` up to ``to_block`` (default: the head) and audit it.

    Reads the logs with raw ``eth_getLogs`` (adaptive pages, :func:`ledger_api.chain.events.fetch_logs`)
    — or takes them from ``logs`` (pages of raw logs, e.g. a modified history under test) — decodes
    them by ABI layout, rebuilds the state while checking the invariants, then (``compare_views``)
    reads every record of the digest from the contract views at ``to_block`` and compares.
    ``channel_check`` re-derives channels from the rule set; ``rule_store`` (the content store holding
    the anchored rule sets and the envelopes) asks for the standard one, :class:`RuleSetChannelCheck`,
    which opens declarations with ``reader`` when given. Without either, that check is reported as
    skipped. ``document_check`` (e.g. :class:`ledger_api.audit.DocumentCheck`) fetches and re-verifies
    every anchored document once the state is rebuilt. ``resume`` continues from a checkpoint
    (:func:`ledger_api.audit.resume_point`: its state, findings and counts; only later blocks are read);
    ``track`` (implied by ``resume``) folds the event accumulator and leaves the report's
    ``resume_point`` for the next checkpoint. ``on_event`` sees every applied event (e.g. the HTML
    report's :class:`ledger_api.audit.Timeline`). Progress goes to ``progress`` (``None``: silent).
    """
    started = time.perf_counter()
    if channel_check is None and rule_store is not None:
        channel_check = RuleSetChannelCheck(rule_store, reader=reader)
    deployer = getattr(deployment, "deployer", None)
    decoder = EventDecoder.for_contracts(
        {deployment.registry: "AgencyRegistry", deployment.ledger: "ClearanceLedger"}, hex_bytes=True
    )
    rebuilder = Rebuilder(
        registry=deployment.registry, ledger=deployment.ledger, deployer=deployer, channel_check=channel_check
    )
    track = track or resume is not None
    with JsonRpc(rpc_url=rpc_url, timeout=rpc_timeout) as rpc:
        last = rpc.block_number() if to_block is None else to_block
        first = deployment.deployment_block if resume is None else resume.block_number + 1
        if last < first - (resume is not None):
            raise AuditError(f"--to-block {last} is before the first block to replay {first}")
        meter = Progress(progress, first=first, last=last)
        hash_before = block_hash_at(rpc, last) if track else None  # a reorg during the read must not be certified
        pages: Iterable[Sequence[RawLog]] = (
            logs
            if logs is not None
            else prefetched(fetch_logs(
                rpc,
                decoder.addresses,
                first,
                last,
                initial_range=initial_range,
                max_range=max_range,
                result_limit=result_limit,
            ))  # fmt: skip
        )
        times: dict[int, int] = {}
        by_name: dict[str, int] = {}
        events = pages_seen = 0
        fetch = decode = apply = 0.0
        previous: tuple[int, int] = (-1, -1)
        acc, history_events = ZERO_ACCUMULATOR, 0
        if resume is not None:
            rebuilder.resume(
                resume.state, creation_tx=resume.creation_tx, findings=list(resume.findings),
                channel_checks=resume.channel_checks, channels_unchecked=resume.channels_unchecked,
            )  # fmt: skip
            by_name, previous = dict(resume.events_by_name), resume.last_log
            acc, history_events = bytes.fromhex(resume.accumulator[2:]), resume.event_count
        mark = time.perf_counter()
        for page in pages:
            t0 = time.perf_counter()
            fetch += t0 - mark
            decoded = decoder.decode_all(page)
            t1 = time.perf_counter()
            decode += t1 - t0
            if track:
                acc, folded = accumulate(acc, (log for log in page if int(log["blockNumber"], 16) <= last))
                history_events += folded
            _block_times(rpc, page, times)
            for event in decoded:
                if event.block_number > last:
                    continue
                position = (event.block_number, event.log_index)
                if position <= previous:
                    rebuilder.findings.append(
                        Finding(
                            code="log-order",
                            severity=Severity.ERROR,
                            message=f"log at {position} after {previous}",
                            block=event.block_number,
                            tx=event.tx_hash,
                            log_index=event.log_index,
                            event=event.name,
                        )  # fmt: skip
                    )
                previous = position
                by_name[event.name] = by_name.get(event.name, 0) + 1
                rebuilder.apply(event, times[event.block_number])
                if on_event is not None:
                    on_event(event)
            events += len(decoded)
            pages_seen += 1
            mark = time.perf_counter()
            apply += mark - t1
            meter.update(int(page[-1]["blockNumber"], 16) if page else first, events)
        meter.update(last, events, final=True)
        rebuilder.settle()
        if track and block_hash_at(rpc, last) != hash_before:
            raise AuditError(f"block {last} changed while it was replayed (a reorg): replay again")
        point = (
            ResumePoint(
                block_number=last,
                block_hash=hash_before,
                event_count=history_events,
                accumulator="0x" + acc.hex(),
                last_log=previous,
                events_by_name=dict(by_name),
                findings=list(rebuilder.findings),
                creation_tx=rebuilder.creation_tx,
                channel_checks=rebuilder.channel_checks,
                channels_unchecked=rebuilder.channels_unchecked,
                state=rebuilder.state,
            )
            if track
            else None
        )
        rebuilder.finish()
        if document_check is not None:
            rebuilder.findings.extend(document_check(rebuilder.state))
        planned = plan(rebuilder.state)
        expected = state_records(planned)
        state_digest = digest(expected)
        view_digest: str | None = None
        mismatches: list[dict[str, Any]] = []
        t_views = time.perf_counter()
        if compare_views:
            actual = view_records(rpc, planned, registry=deployment.registry, ledger=deployment.ledger, block=last)
            view_digest = digest(actual)
            for key in sorted(expected):
                if expected[key] != actual.get(key) and len(mismatches) < MAX_LISTED_MISMATCHES:
                    mismatches.append(
                        {"record": key, "replay": list(expected[key]), "views": list(actual.get(key, ()))}
                    )
            if view_digest != state_digest:
                rebuilder.findings.append(
                    Finding(
                        code="digest-mismatch",
                        severity=Severity.ERROR,
                        message=f"replayed state digest {state_digest} ≠ view digest {view_digest} at block {last}",
                        block=last,
                        details={"differing_records": sum(1 for k in expected if expected[k] != actual.get(k))},
                    )  # fmt: skip
                )
        view_seconds = time.perf_counter() - t_views
    checks_skipped: dict[str, str] = {}
    checks: dict[str, Any] = {}
    if document_check is None:
        checks_skipped["document-fetch"] = "documents were not fetched (no --documents)"
    else:
        doc_summary = getattr(document_check, "summary", None)
        checks["document-fetch"] = doc_summary() if callable(doc_summary) else {}
    if channel_check is None:
        checks_skipped["channel-rule-set"] = (
            f"no rule-set check given (ledger_api/verify/risk.py): {rebuilder.channels_unchecked} channels NOT checked"
        )
    else:
        summary = getattr(channel_check, "summary", None)
        checks["channel-rule-set"] = summary() if callable(summary) else {"checked": rebuilder.channel_checks}
        unverified = checks["channel-rule-set"].get("verdicts", {}).get("content-unverified", 0)
        if unverified:
            checks_skipped["channel-content"] = (
                f"{unverified} channels depend on declaration content the auditor could not read: only their "
                "content-free rules were checked (give a decryption key: --agency)"
            )
    return ReplayReport(
        chain_id=deployment.chain_id,
        registry=deployment.registry,
        ledger=deployment.ledger,
        from_block=first,
        to_block=last,
        state_digest=state_digest,
        view_digest=view_digest,
        records=len(expected),
        mismatches=mismatches,
        findings=rebuilder.findings,
        counts=rebuilder.state.counts(),
        events_by_name=dict(sorted(by_name.items())),
        checks_skipped=checks_skipped,
        throughput=Throughput(
            events=events,
            blocks=last - first + 1,
            pages=pages_seen,
            fetch_seconds=fetch,
            decode_seconds=decode,
            apply_seconds=apply,
            view_seconds=view_seconds,
            total_seconds=time.perf_counter() - started,
        ),  # fmt: skip
        state=rebuilder.state,
        checks=checks,
        resume_point=point,
        resumed_from=None
        if resume is None
        else {"block": resume.block_number, "block_hash": resume.block_hash, "events": resume.event_count},
    )


def write_report(report: ReplayReport, path: str, *, explorer: str | None = None) -> None:
    """Write the JSON report to ``path`` (``-`` for stdout)."""
    text = json.dumps(report.to_json(explorer), indent=2, sort_keys=False) + "\n"
    if path == "-":
        sys.stdout.write(text)
    else:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
