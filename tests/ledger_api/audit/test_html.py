"""The self-contained HTML report on a real anvil: it parses, names every finding, links only to the explorer,
needs nothing external, and escapes a malicious string planted on chain."""

from __future__ import annotations

import argparse
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ledger_api._cli import audit as audit_cli
from ledger_api.audit import ChannelAssignment, ChannelProblem, ReplayReport, Timeline, render_html, replay
from ledger_api.chain.deploy import agency_id_bytes

from .conftest import Chain, History, HistoryGenerator

pytestmark = pytest.mark.integration

EXPLORER = "https://explorer.example/tx/{tx}"
EVIL_NAME = "<script>alert('pwned')</script><img src=x onerror=alert(1)>\"' &amp;"
EVIL_ENDPOINT = "javascript:alert(document.cookie)"
VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr", "source", "track", "embed", "param"}


class _Checker(HTMLParser):
    """Collects tags, attributes and text; asserts that elements nest and close properly."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.style = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if self.stack and self.stack[-1] == "style":
            self.style += data
        self.text.append(data)


@pytest.fixture(scope="module")
def history(chain: Chain) -> History:
    """A short random history, then a governance vote that renames an agency to an HTML payload."""
    made = HistoryGenerator(chain, seed=31337).run(60, checkpoints=1)
    key = bytes.fromhex(chain.deployment.agencies["NL-NVWA"].encryption_public_key.removeprefix("0x"))
    fn = chain.registry.functions.updateAgencyProfile(agency_id_bytes("NL-NVWA"), EVIL_NAME, key, EVIL_ENDPOINT)
    chain.govern(chain.registry, fn)
    made.checkpoints.append(chain.head())
    return made


def flag_channels(assignment: ChannelAssignment) -> list[str | ChannelProblem]:
    """Findings with chain-derived text: an error and a warning per channel."""
    return [
        f"channel {assignment.declaration_id} flagged <b>by the test</b>",
        ChannelProblem(message="also a warning", code="test-warning", severity="warning"),
    ]


def _parse(text: str) -> _Checker:
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert checker.stack == [], checker.stack
    return checker


def _check_self_contained(text: str, checker: _Checker, report: ReplayReport, *, explorer: bool) -> None:
    assert text.startswith("<!DOCTYPE html>") and ("html", {"lang": "en"}) in checker.tags
    # nothing external: no script, no stylesheet link, no src, no url() in CSS; http(s) only in explorer links
    names = {tag for tag, _ in checker.tags}
    assert not names & {"script", "link", "img", "iframe", "object", "embed"}
    assert all("src" not in attrs for _, attrs in checker.tags)
    assert "url(" not in checker.style and "@import" not in checker.style
    links = [attrs.get("href") or "" for tag, attrs in checker.tags if tag == "a"]
    assert all(link.startswith("https://explorer.example/tx/0x") for link in links)
    assert text.count("http://") == 0 and text.count("https://") == len(links)
    assert (len(links) > 0) == explorer
    # every finding's code, headings, captions, an accessible chart
    body = "".join(checker.text)
    for code in report.codes():
        assert code in body, code
    assert {"h1", "h2", "caption", "svg"} <= names
    tables = sum(1 for tag, _ in checker.tags if tag == "table")
    assert tables == sum(1 for tag, _ in checker.tags if tag == "caption")
    svg = next(attrs for tag, attrs in checker.tags if tag == "svg" and attrs.get("role") == "img")
    assert svg.get("aria-labelledby")
    # the planted strings are shown as text, never as markup
    assert EVIL_NAME in body and EVIL_ENDPOINT in body and "<b>by the test</b>" in body
    assert "<script" not in text and "<img" not in text and "<b>" not in text


def test_html_report_is_self_contained_and_escapes_chain_strings(chain: Chain, history: History) -> None:
    timeline = Timeline(limit=10)
    report = replay(
        chain.rpc_url,
        chain.deployment,
        to_block=history.checkpoints[-1],
        channel_check=flag_channels,
        on_event=timeline,
        progress=None,
    )
    assert report.digest_match is True
    assert {"channel-rule-set", "test-warning"} <= report.codes()
    text = render_html(report, explorer=EXPLORER, timeline=timeline)
    _check_self_contained(text, _parse(text), report, explorer=True)
    assert "FAILED" in text  # error findings: the verdict says so
    assert len(timeline.declarations) == 10 < timeline.total  # the most recent ones, with a note
    assert f"10 of {timeline.total} declarations drawn" in text
    plain = render_html(report, timeline=timeline)  # without --explorer: block / tx / log index, no links
    _check_self_contained(plain, _parse(plain), report, explorer=False)
    assert "log " in plain


def test_cli_writes_the_html_report(
    chain: Chain, history: History, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "deployment.json"
    chain.deployment.save(record)
    monkeypatch.setenv("LEDGER_VAR_DIR", str(tmp_path / "var"))
    parser = argparse.ArgumentParser()
    audit_cli.register(parser.add_subparsers(dest="command"))
    out = tmp_path / "report.html"
    args = parser.parse_args(
        [
            "audit",
            "replay",
            "--deployment",
            str(record),
            "--rpc-url",
            chain.rpc_url,
            "--quiet",
            "--to-block",
            str(history.checkpoints[-1]),
            "--no-channel-check",
            "--html",
            str(out),
            "--explorer",
            EXPLORER,
            "--report",
            str(tmp_path / "report.json"),
        ]
    )
    assert args.handler(args) == 0
    text = out.read_text(encoding="utf-8")
    checker = _parse(text)
    assert "PASSED" in text and "No findings." in text
    body = "".join(checker.text)
    assert EVIL_NAME in body and "<script" not in text
    assert "Declaration timeline" in body and "events per second" in body
    # every event of every declaration is a mark (fewer than 200 declarations: all drawn), plus 5 in the legend
    events = json.loads((tmp_path / "report.json").read_text())["events"]
    of_declarations = sum(
        n for name, n in events.items() if name.startswith(("Declaration", "Channel", "Stamp", "Decision"))
    )
    assert sum(1 for tag, _ in checker.tags if tag == "circle") == of_declarations + 5 > 5
