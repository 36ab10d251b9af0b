"""The self-contained HTML report of a replay (``ledger audit replay --html FILE``).

One file, no external resources: inline CSS, inline SVG, no script. Sections: summary (chain,
contracts, block range, events, digest comparison, verdict), anomalies (every finding with a link to
its event — the ``--explorer`` template when given, else block / transaction / log index), checks run
and skipped, the consortium's agencies, a per-declaration timeline (inline SVG: the events of each
declaration along the block axis, for the most recent :data:`TIMELINE_LIMIT` declarations), and
throughput. Everything that comes from the chain (names, endpoints, messages, details) is
HTML-escaped; links are only ever built from the explorer template.

:class:`Timeline` collects the events per declaration during the replay (``replay(on_event=…)``).
"""

from __future__ import annotations

import html
import json
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from ledger_api.audit._findings import Finding, Severity
from ledger_api.audit._replay import ReplayReport
from ledger_api.chain.events import DecodedEvent

__all__ = ["MAX_FINDINGS_SHOWN", "TIMELINE_LIMIT", "Timeline", "render_html", "write_html"]

#: Declarations drawn in the timeline (the most recently submitted ones).
TIMELINE_LIMIT = 200
#: Findings listed in the anomalies table (all of them are in the JSON report).
MAX_FINDINGS_SHOWN = 2_000

#: Event → (timeline category, colour). Colours pass 3:1 against white (WCAG 1.4.11, graphics).
_CATEGORIES: dict[str, tuple[str, str]] = {
    "DeclarationSubmitted": ("submitted / amended", "#1f4e9c"),
    "DeclarationAmended": ("submitted / amended", "#1f4e9c"),
    "DeclarationAccepted": ("accepted / channel", "#6a3d9a"),
    "ChannelAssigned": ("accepted / channel", "#6a3d9a"),
    "StampRecorded": ("stamp", "#1b6e2a"),
    "StampRevoked": ("stamp revoked", "#8a4b00"),
    "DecisionProposed": ("decision", "#b00020"),
    "DecisionApproved": ("decision", "#b00020"),
    "DecisionCancelled": ("decision", "#b00020"),
    "DecisionRecorded": ("decision", "#b00020"),
}
_OTHER = ("other", "#4d4d4d")

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1a1a1a;background:#fff;margin:0;
line-height:1.45}
main{max-width:1200px;margin:0 auto;padding:1.5rem}
h1{font-size:1.6rem;margin:0 0 .5rem}h2{font-size:1.25rem;margin:2rem 0 .5rem;border-bottom:2px solid #1a1a1a}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem;font-size:.9rem}
caption{text-align:left;font-weight:600;padding:.25rem 0}
th,td{border:1px solid #8c8c8c;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#e8e8e8}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.85em;word-break:break-all}
.verdict{display:inline-block;padding:.4rem .8rem;font-weight:700;border-radius:4px;color:#fff}
.ok{background:#1b5e20}.failed{background:#b00020}
.sev-error{color:#fff;background:#b00020;padding:0 .3rem;border-radius:3px}
.sev-warning{color:#1a1a1a;background:#ffd54f;padding:0 .3rem;border-radius:3px}
.note{color:#333;font-size:.9rem}
a{color:#0b4f9c}a:focus{outline:3px solid #1a1a1a}
pre{white-space:pre-wrap;word-break:break-all;margin:0;font-size:.8rem}
svg text{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:10px;fill:#1a1a1a}
"""


_COMPARISON = {True: "equals", False: "does NOT equal", None: "was not compared with"}


def _e(value: Any) -> str:
    """HTML-escape anything (quotes too)."""
    return html.escape(str(value), quote=True)


class Timeline:
    """Events per declaration, for the most recent ``limit`` declarations (bounded memory).

    Call it with each applied event (``replay(on_event=timeline)``); a declaration enters when it is
    submitted or amended, the oldest leaves when more than ``limit`` are held.
    """

    def __init__(self, limit: int = TIMELINE_LIMIT) -> None:
        self.limit = limit
        self.declarations: OrderedDict[str, list[tuple[int, str]]] = OrderedDict()
        self.total = 0

    def __call__(self, event: DecodedEvent) -> None:
        """Record ``event`` if it concerns a declaration being drawn."""
        declaration_id = event.args.get("declarationId")
        if not isinstance(declaration_id, str):
            return
        if event.name in ("DeclarationSubmitted", "DeclarationAmended") and declaration_id not in self.declarations:
            self.total += 1
            self.declarations[declaration_id] = []
            if len(self.declarations) > self.limit:
                self.declarations.popitem(last=False)
        events = self.declarations.get(declaration_id)
        if events is not None:
            events.append((event.block_number, event.name))


def _table(caption: str, headers: Iterable[str], rows: Iterable[Iterable[str]], *, raw: bool = False) -> str:
    """A table; cells are escaped unless ``raw`` (then the caller escaped them)."""
    head = "".join(f'<th scope="col">{_e(h)}</th>' for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c if raw else _e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><caption>{_e(caption)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _kv(caption: str, pairs: Iterable[tuple[str, str]]) -> str:
    """A two-column table of already-escaped values with header cells per row."""
    body = "".join(f'<tr><th scope="row">{_e(k)}</th><td>{v}</td></tr>' for k, v in pairs)
    return f"<table><caption>{_e(caption)}</caption><tbody>{body}</tbody></table>"


def _json(value: Any) -> str:
    return _e(json.dumps(value, indent=1, sort_keys=True, default=str))


def _link(finding: Finding, explorer: str | None) -> str:
    where = []
    if finding.block is not None:
        where.append(f"block {finding.block}")
    if finding.tx is not None:
        where.append(f"tx {finding.tx}")
    if finding.log_index is not None:
        where.append(f"log {finding.log_index}")
    text = _e(" · ".join(where)) if where else "—"
    if explorer is None or (finding.block is None and finding.tx is None):
        return f'<span class="mono">{text}</span>'
    url = explorer.format(tx=finding.tx or "", block=finding.block if finding.block is not None else "")
    label = f"open {finding.event or 'event'} in the block explorer"
    return f'<a class="mono" href="{_e(url)}" aria-label="{_e(label)}">{text}</a>'


def _agency_code(raw: str) -> str:
    try:
        return bytes.fromhex(raw.removeprefix("0x")).rstrip(b"\0").decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return raw


def _timeline_svg(timeline: Timeline, first: int, last: int) -> str:
    rows = list(timeline.declarations.items())
    if not rows:
        return '<p class="note">No declaration events in the replayed blocks.</p>'
    row_h, left, width, top = 14, 130, 1000, 24
    plot = width - left - 10
    height = top + row_h * len(rows) + 10
    span = max(last - first, 1)

    def x(block: int) -> float:
        return left + plot * (min(max(block, first), last) - first) / span

    parts = [
        f'<svg role="img" aria-labelledby="tl-title tl-desc" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">',
        f'<title id="tl-title">Declaration timeline, blocks {first} to {last}</title>',
        f'<desc id="tl-desc">{len(rows)} declarations, one row each, oldest at the top; a mark per event '
        "(submission, acceptance and channel, stamps, revocations, decisions) at its block number. "
        "The same events are listed in the table after the chart.</desc>",
    ]
    for k in range(5):
        block = first + span * k // 4
        parts.append(
            f'<line x1="{x(block):.1f}" y1="{top - 6}" x2="{x(block):.1f}" y2="{height - 8}" '
            'stroke="#c4c4c4" stroke-width="1"/>'
        )
        parts.append(f'<text x="{x(block):.1f}" y="{top - 10}" text-anchor="middle">{block}</text>')
    for n, (declaration_id, events) in enumerate(rows):
        y = top + row_h * n + row_h / 2
        parts.append(f'<text x="4" y="{y + 3:.1f}">{_e(declaration_id[:12])}…</text>')
        if events:
            parts.append(
                f'<line x1="{x(events[0][0]):.1f}" y1="{y:.1f}" x2="{x(events[-1][0]):.1f}" y2="{y:.1f}" '
                'stroke="#8c8c8c" stroke-width="1"/>'
            )
        for block, name in events:
            category, colour = _CATEGORIES.get(name, _OTHER)
            parts.append(
                f'<circle cx="{x(block):.1f}" cy="{y:.1f}" r="3.5" fill="{colour}">'
                f"<title>{_e(name)} at block {block} ({_e(category)})</title></circle>"
            )
    parts.append("</svg>")
    legend = "".join(
        f'<li><svg width="10" height="10" aria-hidden="true"><circle cx="5" cy="5" r="4" fill="{colour}"/></svg> '
        f"{_e(category)}</li>"
        for category, colour in dict(_CATEGORIES.values()).items()
    )
    return "".join(parts) + f'<ul aria-label="legend" class="note">{legend}</ul>'


def render_html(report: ReplayReport, *, explorer: str | None = None, timeline: Timeline | None = None) -> str:
    """The whole report as one self-contained HTML document (no external resources, no script)."""
    data = report.to_json(explorer)
    verdict = "PASSED" if report.ok else "FAILED"
    errors = len(report.errors)
    warnings = len(report.findings) - errors
    summary_rows = [
        ("Verdict", f'<span class="verdict {"ok" if report.ok else "failed"}">{verdict}</span>'),
        ("Chain id", _e(report.chain_id)),
        ("AgencyRegistry", f"<code>{_e(report.registry)}</code>"),
        ("ClearanceLedger", f"<code>{_e(report.ledger)}</code>"),
        ("Blocks replayed", _e(f"{report.from_block} … {report.to_block}")),
        ("Events replayed", _e(report.throughput.events)),
        ("State digest (replay)", f"<code>{_e(report.state_digest)}</code>"),
        ("State digest (views)", f"<code>{_e(report.view_digest or 'not compared')}</code>"),
        ("Digests match", _e({True: "yes", False: "NO", None: "not compared"}[report.digest_match])),
        ("Records compared", _e(report.records)),
        ("Findings", _e(f"{errors} errors, {warnings} warnings")),
    ]
    if report.resumed_from is not None:
        summary_rows.append(
            (
                "Resumed from checkpoint",
                _e(
                    f"block {report.resumed_from['block']} ({report.resumed_from['block_hash']}), "
                    f"{report.resumed_from['events']} events before it"
                ),
            )
        )
    out = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Ledger audit replay: {verdict}</title><style>{_CSS}</style></head><body><main>",
        "<h1>Ledger audit replay</h1>",
        f'<p role="status">The audit <strong>{verdict.lower()}</strong>: {errors} error findings, '
        f"{warnings} warnings; the replayed state digest "
        f"{_COMPARISON[report.digest_match]} the contracts' view digest.</p>",
        '<section aria-labelledby="s-summary"><h2 id="s-summary">Summary</h2>',
        _kv("Replay summary", summary_rows),
        "</section>",
    ]
    # anomalies
    out.append('<section aria-labelledby="s-findings"><h2 id="s-findings">Anomalies</h2>')
    if report.findings:
        by_code = data["summary"]["by_code"]
        out.append(_table("Findings by code", ["code", "count"], ((c, str(n)) for c, n in by_code.items())))
        shown = sorted(report.findings, key=lambda f: (f.severity != Severity.ERROR, f.block or 0))
        rows = []
        for f in shown[:MAX_FINDINGS_SHOWN]:
            rows.append(
                (
                    f'<span class="sev-{_e(f.severity)}">{_e(f.severity)}</span>',
                    f"<code>{_e(f.code)}</code>",
                    _e(f.message),
                    _e(f.event or "—"),
                    _link(f, explorer),
                    f"<pre>{_json(f.details)}</pre>" if f.details else "",
                )
            )
        note = (
            "" if len(shown) <= MAX_FINDINGS_SHOWN else f" — the first {MAX_FINDINGS_SHOWN}; all are in the JSON report"
        )
        out.append(
            _table(
                f"Findings ({errors} errors, {warnings} warnings{note})",
                ["severity", "code", "message", "event", "where", "details"],
                rows,
                raw=True,
            )
        )
    else:
        out.append("<p>No findings.</p>")
    if report.mismatches:
        out.append(
            _table(
                "Records whose replayed value differs from the view",
                ["record", "replay", "views"],
                ((m["record"], json.dumps(m["replay"]), json.dumps(m["views"])) for m in report.mismatches),
            )
        )
    out.append("</section>")
    # checks
    out.append('<section aria-labelledby="s-checks"><h2 id="s-checks">Checks</h2>')
    out.append(
        _table(
            "Checks run",
            ["check", "result"],
            ((name, f"<pre>{_json(summary)}</pre>") for name, summary in report.checks.items()),
            raw=True,
        )
        if report.checks
        else "<p>No optional check was run.</p>"
    )
    if report.checks_skipped:
        out.append(_table("Checks NOT run (never counted as passed)", ["check", "why"], report.checks_skipped.items()))
    out.append(_table("Entities rebuilt", ["entity", "count"], ((k, str(v)) for k, v in report.counts.items())))
    out.append("</section>")
    # agencies (chain strings: escaped)
    agencies = report.state.agencies.values()
    out.append('<section aria-labelledby="s-agencies"><h2 id="s-agencies">Consortium</h2>')
    out.append(
        _table(
            "Agencies as rebuilt from the events",
            ["#", "code", "name", "country", "status", "roles", "IPFS endpoint"],
            (
                (str(a.index), _agency_code(a.id), a.name, a.country, str(a.status), hex(a.roles), a.ipfs_endpoint)
                for a in agencies
            ),
        )
    )
    out.append("</section>")
    # timeline
    out.append('<section aria-labelledby="s-timeline"><h2 id="s-timeline">Declaration timeline</h2>')
    if timeline is None:
        out.append('<p class="note">The timeline was not collected for this report.</p>')
    else:
        drawn = len(timeline.declarations)
        scope = "" if report.resumed_from is None else " (events of the blocks replayed in this run only)"
        out.append(
            f'<p class="note">{drawn} of {timeline.total} declarations drawn: the most recently submitted '
            f"{timeline.limit} at most{_e(scope)}.</p>"
        )
        out.append(_timeline_svg(timeline, report.from_block, report.to_block))
        out.append(
            _table(
                "Timeline data",
                ["declaration", "events (block: event)"],
                ((d, ", ".join(f"{b}: {n}" for b, n in ev)) for d, ev in timeline.declarations.items()),
            )
        )
    out.append("</section>")
    # throughput
    t = report.throughput
    out.append('<section aria-labelledby="s-throughput"><h2 id="s-throughput">Throughput</h2>')
    out.append(
        _kv(
            "Where the time went",
            [
                ("events", _e(t.events)),
                ("blocks", _e(t.blocks)),
                ("log pages", _e(t.pages)),
                ("events per second (read + decode + apply)", _e(f"{t.events_per_second:,.1f}")),
                ("fetch seconds", _e(f"{t.fetch_seconds:.3f}")),
                ("decode seconds", _e(f"{t.decode_seconds:.3f}")),
                ("apply seconds", _e(f"{t.apply_seconds:.3f}")),
                ("view comparison seconds", _e(f"{t.view_seconds:.3f}")),
                ("total seconds", _e(f"{t.total_seconds:.3f}")),
            ],
        )
    )
    out.append("</section></main></body></html>\n")
    return "".join(out)


def write_html(
    report: ReplayReport, path: str, *, explorer: str | None = None, timeline: Timeline | None = None
) -> None:
    """Write :func:`render_html` to ``path``."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(render_html(report, explorer=explorer, timeline=timeline))
