"""The pure risk evaluation: rule-set parsing and hashing, each condition, combination, sampling, replay."""

from __future__ import annotations

import copy
import hashlib
import json
import random
from typing import Any

import pytest
from eth_utils.crypto import keccak

from ledger_api.errors import RuleSetError
from ledger_api.hashing import canonical_json
from ledger_api.verify.risk import (
    RULE_SET_FORMAT,
    SAMPLE_SCALE,
    AlertCounts,
    Channel,
    RiskInputs,
    RuleSet,
    StampType,
    evaluate,
    parse_rule_set,
    replay,
    sample_draw,
)

BLOCK = bytes.fromhex("aa" * 32)
DOC, PHYS, XRAY, LAB, ORIGIN, SANITARY = (1 << t for t in (0, 1, 2, 3, 6, 7))


def _rules(*rules: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {
        "format": RULE_SET_FORMAT,
        "name": "test",
        "version": "1",
        "currency": "USD",
        "exchange_rates": {"EUR": 2.0},
        "default": {"channel": "GREEN", "stamps": []},
        "on_unreadable": {"channel": "RED", "stamps": ["PHYSICAL_EXAM"]},
        "on_malformed": {"channel": "YELLOW", "stamps": ["DOCUMENT_CHECK"]},
        "rules": list(rules),
        **top,
    }


def _rule(rule_id: str, when: dict[str, Any], channel: str = "YELLOW", stamps: tuple[str, ...] = ("DOCUMENT_CHECK",)):
    return {"id": rule_id, "when": when, "outcome": {"channel": channel, "stamps": list(stamps)}}


def _parse(raw: dict[str, Any]) -> RuleSet:
    return parse_rule_set(json.dumps(raw).encode())


def _doc(goods: list[dict[str, Any]], **extra: Any) -> bytes:
    return canonical_json({"jurisdiction": "CN-TJ-CUSTOMS", "local_reference": "L-1", "goods": goods, **extra})


def _inputs(document: bytes | None, *, aeo: bool = False, alerts: AlertCounts | None = None, **kw: Any) -> RiskInputs:
    declaration_id = kw.pop("declaration_id", None) or hashlib.sha256(document or b"x").digest()
    return RiskInputs(declaration_id=declaration_id, block_hash=kw.pop("block_hash", BLOCK), document=document,
                      trader_aeo=aeo, alerts=alerts or AlertCounts())  # fmt: skip


def _line(hs: str = "850440", origin: str = "CN", value: float = 100.0) -> dict[str, Any]:
    return {"hs_code": hs, "origin": origin, "value": value}


# ---------------------------------------------------------------------------------- rule sets


def test_the_hash_is_sha256_of_the_canonical_form_whatever_the_layout() -> None:
    raw = _rules(_rule("a", {"hs_prefix": ["93"]}))
    compact = parse_rule_set(json.dumps(raw, separators=(",", ":")).encode())
    pretty = parse_rule_set(json.dumps(dict(reversed(list(raw.items()))), indent=4).encode())
    assert compact.hash == pretty.hash == hashlib.sha256(canonical_json(raw)).digest()
    assert compact.canonical == canonical_json(raw)
    changed = _parse(_rules(_rule("a", {"hs_prefix": ["94"]})))
    assert changed.hash != compact.hash


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.update(format="other"), "format"),
        (lambda r: r.update(extra=1), "unknown field"),
        (lambda r: r.pop("on_unreadable"), "missing field"),
        (lambda r: r.update(on_unreadable={"channel": "GREEN", "stamps": []}), "conservative"),
        (lambda r: r["rules"].append(_rule("y", {"aeo": True}, "YELLOW", ())), "at least one stamp"),
        (lambda r: r["rules"].append(_rule("s", {"aeo": True}, "RED", ("NO_SUCH",))), "stamp types"),
        (lambda r: r["rules"].append(_rule("a", {"aeo": True})), "unique"),
        (lambda r: r["rules"].append(_rule("on_unreadable", {"aeo": True})), "reserved"),
        (lambda r: r["rules"].append(_rule("h", {"hs_prefix": ["8a"]})), "hs_prefix"),
        (lambda r: r["rules"].append(_rule("o", {"origin": ["cn"]})), "origin"),
        (lambda r: r["rules"].append(_rule("v", {"total_value_over": -1})), "between 0 and"),
        (lambda r: r["rules"].append(_rule("p", {"sample_ppm": 1.5})), "sample_ppm"),
        (lambda r: r["rules"].append(_rule("p", {"sample_ppm": SAMPLE_SCALE + 1})), "sample_ppm"),
        (lambda r: r["rules"].append(_rule("l", {"alerts": ["nobody"]})), "alerts"),
        (lambda r: r["rules"].append(_rule("e", {})), "non-empty"),
        (lambda r: r.update(exchange_rates={"USD": 2.0}), "own rate"),
    ],
)
def test_malformed_rule_sets_are_refused(mutate: Any, message: str) -> None:
    raw = _rules(_rule("a", {"hs_prefix": ["93"]}))
    mutate(raw)
    with pytest.raises(RuleSetError, match=message):
        _parse(raw)


def test_duplicate_keys_non_json_and_oversized_rule_sets_are_refused() -> None:
    with pytest.raises(RuleSetError, match="duplicate key"):
        parse_rule_set(b'{"format": "a", "format": "b"}')
    with pytest.raises(RuleSetError, match="not JSON"):
        parse_rule_set(b"format: yaml")
    with pytest.raises(RuleSetError, match="larger than"):
        parse_rule_set(b" " * (256 * 1024 + 1))
    with pytest.raises(RuleSetError, match="nesting"):
        parse_rule_set(("[" * 40 + "]" * 40).encode())


# ---------------------------------------------------------------------------------- conditions


def test_value_thresholds_are_strict_and_converted_to_the_rule_currency() -> None:
    rs = _parse(_rules(_rule("line", {"line_value_over": 1000}), _rule("total", {"total_value_over": 1500}, "RED",
                                                                           ("PHYSICAL_EXAM",))))  # fmt: skip
    at = evaluate(rs, _inputs(_doc([_line(value=1000), _line(value=500)])))
    assert (at.channel, at.matched) == (Channel.GREEN, ())  # 1000 is not over 1000; total 1500 is not over 1500
    over = evaluate(rs, _inputs(_doc([_line(value=1000.5), _line(value=500)])))
    assert over.matched == ("line", "total") and over.channel == Channel.RED and over.required_stamps == DOC | PHYS
    euros = evaluate(rs, _inputs(_doc([_line(value=600), _line(value=200)], currency="EUR")))  # 1200 + 400 USD
    assert euros.matched == ("line", "total")
    unknown = evaluate(rs, _inputs(_doc([_line()], currency="JPY")))
    assert unknown.basis == "malformed" and unknown.matched == ("on_malformed",) and "JPY" in unknown.detail


def test_hs_prefix_and_origin_lists_match_any_line() -> None:
    rs = _parse(_rules(_rule("arms", {"hs_prefix": ["93", "8710"]}, "RED", ("XRAY_SCAN",)),
                       _rule("origin", {"origin": ["KP", "IR"]}, "RED", ("ORIGIN_VERIFICATION",)),
                       _rule("both", {"hs_prefix": ["85"], "origin": ["CN"]})))  # fmt: skip
    assert evaluate(rs, _inputs(_doc([_line("9301.10"), _line("010101")]))).matched == ("arms",)
    assert evaluate(rs, _inputs(_doc([_line("871000")]))).matched == ("arms",)
    assert evaluate(rs, _inputs(_doc([_line("871100")]))).matched == ()
    result = evaluate(rs, _inputs(_doc([_line("010101", "ir")])))
    assert result.matched == ("origin",) and result.required_stamps == ORIGIN
    # "both" needs an 85 line and a CN line (conditions AND, lists OR — not necessarily the same line)
    assert evaluate(rs, _inputs(_doc([_line("850440", "DE"), _line("010101", "CN")]))).matched == ("both",)
    assert evaluate(rs, _inputs(_doc([_line("850440", "DE")]))).matched == ()


def test_aeo_status_selects_rules() -> None:
    rs = _parse(_rules(_rule("non-aeo-food", {"hs_prefix": ["02"], "aeo": False}, "YELLOW", ("LAB_TEST",)),
                       _rule("aeo-only", {"aeo": True}, "GREEN", ())))  # fmt: skip
    food = _doc([_line("020110")])
    assert evaluate(rs, _inputs(food, aeo=False)).matched == ("non-aeo-food",)
    aeo = evaluate(rs, _inputs(food, aeo=True))
    assert aeo.matched == ("aeo-only",) and (aeo.channel, aeo.required_stamps) == (Channel.GREEN, 0)


def test_alerts_on_each_subject() -> None:
    rs = _parse(_rules(_rule("party", {"alerts": ["declaration", "trader"]}, "RED", ("PHYSICAL_EXAM",)),
                       _rule("paper", {"alerts": ["document"]})))  # fmt: skip
    doc = _doc([_line()])
    assert evaluate(rs, _inputs(doc)).matched == ()
    assert evaluate(rs, _inputs(doc, alerts=AlertCounts(trader=1))).matched == ("party",)
    assert evaluate(rs, _inputs(doc, alerts=AlertCounts(declaration=2))).matched == ("party",)
    both = evaluate(rs, _inputs(doc, alerts=AlertCounts(trader=1, document=1)))
    assert both.matched == ("party", "paper") and both.channel == Channel.RED and both.required_stamps == PHYS | DOC


def test_outcomes_combine_as_the_highest_channel_and_the_union_of_stamps() -> None:
    rs = _parse(_rules(_rule("a", {"hs_prefix": ["02"]}, "YELLOW", ("SANITARY_CHECK",)),
                       _rule("b", {"origin": ["CN"]}, "GREEN", ("LAB_TEST",)),
                       default={"channel": "GREEN", "stamps": ["DOCUMENT_CHECK"]}))  # fmt: skip
    result = evaluate(rs, _inputs(_doc([_line("020110", "CN")])))
    assert result.channel == Channel.YELLOW and result.required_stamps == SANITARY | LAB | DOC
    assert result.as_dict()["stamps"] == ["DOCUMENT_CHECK", "LAB_TEST", "SANITARY_CHECK"]


def test_unreadable_documents_get_on_unreadable_and_the_rules_that_need_no_content() -> None:
    rs = _parse(_rules(_rule("food", {"hs_prefix": ["02"]}), _rule("flagged", {"alerts": ["trader"]}, "RED",
                                                                        ("XRAY_SCAN",))))  # fmt: skip
    blind = evaluate(rs, _inputs(None, declaration_id=b"\x01" * 32, alerts=AlertCounts(trader=1)))
    assert blind.basis == "unreadable" and blind.matched == ("flagged", "on_unreadable")
    assert blind.channel == Channel.RED and blind.required_stamps == XRAY | PHYS
    # bytes that are not the committed document count as unreadable, never as content
    forged = _inputs(_doc([_line("020110")]), declaration_id=b"\x02" * 32)
    assert evaluate(rs, forged).basis == "unreadable"


@pytest.mark.parametrize(
    "document",
    [
        b"not json",
        b"[1, 2]",
        _doc([]),
        _doc([{"hs_code": "02", "origin": "CN"}]),
        _doc([_line(origin="CHN")]),
        _doc([_line(value=True)]),
        _doc([_line(hs="x")]),
        canonical_json({"goods": "many"}),
        _doc([_line(value=1e308), _line(value=1e308)]),  # the sum would overflow
        b'{"goods":[{"hs_code":"850440","origin":"CN","value":1' + b"0" * 400 + b'}]}',  # no float holds it
        _doc([_line(value=2e15)]),  # above MAX_AMOUNT
    ],  # fmt: skip
)
def test_readable_documents_the_rules_cannot_read_are_malformed(document: bytes) -> None:
    rs = _parse(_rules(_rule("food", {"hs_prefix": ["02"]})))
    result = evaluate(rs, _inputs(document))
    assert result.basis == "malformed" and result.matched == ("on_malformed",) and result.detail
    assert (result.channel, result.required_stamps) == (Channel.YELLOW, DOC)


# ---------------------------------------------------------------------------------- sampling


def test_the_draw_is_keccak_of_block_hash_and_declaration_id_mod_a_million() -> None:
    declaration_id = hashlib.sha256(b"d").digest()
    expected = int.from_bytes(keccak(BLOCK + declaration_id), "big") % 10**6
    assert sample_draw(BLOCK, declaration_id) == expected
    assert evaluate(_parse(_rules()), _inputs(None, declaration_id=declaration_id)).draw == expected
    assert sample_draw(b"\xbb" * 32, declaration_id) != expected  # another block, another draw


def test_sampling_is_deterministic_and_hits_the_rate() -> None:
    rs = _parse(_rules(_rule("sample", {"sample_ppm": 50_000})))
    rng = random.Random(7)
    n, hits = 20_000, 0
    for _ in range(n):
        inputs = _inputs(None, declaration_id=rng.randbytes(32), block_hash=rng.randbytes(32))
        first, second = evaluate(rs, inputs), evaluate(rs, inputs)
        assert first == second
        sampled = "sample" in first.matched
        assert sampled == (first.draw < 50_000)
        hits += sampled
    # binomial(20000, 0.05): mean 1000, sd ~30.8; 5 sd either side
    assert 846 <= hits <= 1154, hits
    never = _parse(_rules(_rule("sample", {"sample_ppm": 0})))
    always = _parse(_rules(_rule("sample", {"sample_ppm": SAMPLE_SCALE})))
    probe = _inputs(_doc([_line()]))
    assert evaluate(never, probe).matched == () and evaluate(always, probe).matched == ("sample",)


# ---------------------------------------------------------------------------------- replay


def _random_inputs(rng: random.Random) -> RiskInputs:
    kind = rng.random()
    goods = [
        _line(rng.choice(["020110", "030211", "850440", "930100", "847130", "160100"]),
              rng.choice(["CN", "NL", "IR", "US", "KP", "de"]), round(rng.uniform(0, 300_000), 2))
        for _ in range(rng.randint(1, 5))
    ]  # fmt: skip
    document: bytes | None
    if kind < 0.1:
        document = None
    elif kind < 0.15:
        document = _doc([{"hs_code": "bad"}])
    else:
        document = _doc(goods, currency=rng.choice(["USD", "EUR", "CNY"]))
    return RiskInputs(
        declaration_id=hashlib.sha256(document).digest() if document else rng.randbytes(32),
        block_hash=rng.randbytes(32),
        document=document,
        trader_aeo=rng.random() < 0.5,
        alerts=AlertCounts(
            declaration=int(rng.random() < 0.05), trader=int(rng.random() < 0.05), document=int(rng.random() < 0.05)
        ),  # fmt: skip
    )


def test_rule_set_replays_give_identical_channels_for_1000_random_declarations() -> None:
    from oracles.risk import DEFAULT_RULES

    rule_set = parse_rule_set(json.dumps(DEFAULT_RULES).encode())
    # an auditor's copy: fetched as canonical bytes, re-parsed
    reparsed = parse_rule_set(rule_set.canonical)
    assert reparsed.hash == rule_set.hash
    rng = random.Random(20261123)
    seen: dict[Channel, int] = {}
    for _ in range(1000):
        inputs = _random_inputs(rng)
        result = evaluate(rule_set, inputs)
        assert evaluate(rule_set, inputs) == result == evaluate(reparsed, copy.deepcopy(inputs))
        # what the contract accepts: YELLOW / RED need a stamp; only known stamp types
        assert result.required_stamps & ~0xFF == 0
        assert result.channel == Channel.GREEN or result.required_stamps != 0
        verdict = replay(reparsed, inputs, channel=int(result.channel), required_stamps=result.required_stamps,
                         rule_set_hash=rule_set.hash)  # fmt: skip
        assert verdict.verdict == "match" and verdict.ok
        seen[result.channel] = seen.get(result.channel, 0) + 1
    assert set(seen) == {Channel.GREEN, Channel.YELLOW, Channel.RED}, seen


def test_replay_tells_fallbacks_mismatches_and_other_rule_sets_apart() -> None:
    rs = _parse(_rules(_rule("food", {"hs_prefix": ["02"]})))
    inputs = _inputs(_doc([_line("850440")]))
    assert replay(rs, inputs, channel=1, required_stamps=0, rule_set_hash=rs.hash).verdict == "match"
    # the oracle could not read the document: the stricter on_unreadable outcome is accepted as such
    fallback = replay(rs, inputs, channel=3, required_stamps=PHYS, rule_set_hash=rs.hash)
    assert fallback.verdict == "unreadable-fallback" and fallback.ok
    wrong = replay(rs, inputs, channel=2, required_stamps=DOC, rule_set_hash=rs.hash)
    assert wrong.verdict == "mismatch" and not wrong.ok
    other = replay(rs, inputs, channel=1, required_stamps=0, rule_set_hash=b"\x00" * 32)
    assert other.verdict == "rule-set-mismatch" and not other.ok
    assert StampType.PHYSICAL_EXAM == 1


@pytest.mark.parametrize("amount", [10**400, 1e300, -1, float("inf")])
def test_rule_set_amounts_out_of_range_are_refused_not_crashing(amount: Any) -> None:
    raw = _rules(_rule("big", {"total_value_over": 1}))
    raw["rules"][0]["when"]["total_value_over"] = amount
    with pytest.raises(RuleSetError):
        parse_rule_set(json.dumps(raw).encode())
