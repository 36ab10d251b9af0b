"""Risk selectivity: the rule-set model and the PURE evaluation function (no I/O).

The risk oracle (``oracles/risk.py``) and anyone replaying its work (an auditor, a partner
agency) use the same two functions:

* :func:`parse_rule_set` turns rule-set bytes (JSON, format ``ledger-risk-rules-v1``) into a
  validated :class:`RuleSet`; its :attr:`RuleSet.hash` is ``sha256`` of the RFC 8785 canonical
  form — the ``ruleSetHash`` written on chain with every channel.
* :func:`evaluate` maps one declaration's :class:`RiskInputs` to a :class:`RiskResult`
  (channel GREEN=1 / YELLOW=2 / RED=3, the required stamp mask, the matched rules).

:class:`RiskInputs` holds everything the result depends on, and each field is recomputable from
the chain plus the declaration document:

``declaration_id``
    the declaration version's id (= sha256 of its canonical document, the on-chain commitment);
``block_hash``
    hash of the block holding its ``DeclarationSubmitted`` / ``DeclarationAmended`` event
    (the seed of the random sample);
``document``
    the plaintext declaration document, or ``None`` when the evaluator could not read it.
    It only counts if ``sha256(document) == declaration_id``; otherwise it is treated as unreadable;
``trader_aeo``
    the declarant's AEO flag as of the end of the submission block (unregistered: ``False``);
``alerts``
    how many alerts were active at the end of the submission block on the declaration id, on the
    declarant's address, and on the sha256 of any of its supporting documents.

"As of the submission block" makes every input fixed once the declaration is on chain: an alert
raised later does not change the channel (customs can still hold the goods), and a replay at any
later time gives the same answer.

Evaluation (documented in ``docs/oracles/risk.md``): every rule whose conditions all hold
*matches*; the channel is the highest channel among the ``default`` outcome and the matched
outcomes, the required stamps are the union of their stamps. An unreadable document adds the
``on_unreadable`` outcome (rules that need the content cannot match); a readable document the
rules cannot interpret (fields missing or malformed, unknown currency) adds ``on_malformed``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Literal

from ledger_api.documents import keccak256
from ledger_api.errors import CanonicalizationError, RuleSetError
from ledger_api.hashing import canonical_json, strict_json

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "MAX_GOODS",
    "MAX_RULE_SET_BYTES",
    "RULE_SET_BATCH_KIND",
    "RULE_SET_FORMAT",
    "SAMPLE_SCALE",
    "AlertCounts",
    "Channel",
    "Condition",
    "GoodsLine",
    "Outcome",
    "ReplayVerdict",
    "RiskInputs",
    "RiskResult",
    "Rule",
    "RuleSet",
    "StampType",
    "evaluate",
    "parse_declaration",
    "parse_rule_set",
    "replay",
    "sample_draw",
    "stamp_names",
]

#: The ``format`` value of a rule set document.
RULE_SET_FORMAT = "ledger-risk-rules-v1"
#: ``kind`` of the ``anchorBatch`` that publishes a rule set (root = rule-set hash, one leaf,
#: manifest = CID of the canonical rule-set bytes). 0x52 = ASCII "R".
RULE_SET_BATCH_KIND = 0x52
#: Sampling resolution: draws are integers in [0, SAMPLE_SCALE); rates are parts per million.
SAMPLE_SCALE = 1_000_000
#: Largest rule-set file accepted.
MAX_RULE_SET_BYTES = 256 * 1024
#: Largest declaration document evaluated (larger is treated as malformed).
MAX_DOCUMENT_BYTES = 1024 * 1024
#: Most goods lines a declaration may list for the rules to read it.
MAX_GOODS = 1000
_MAX_RULES = 500
_MAX_LIST = 1000
_MAX_DEPTH = 32

_HS = re.compile(r"^[0-9]{2,12}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_RULE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Channel(IntEnum):
    """``Channel`` of LedgerTypes.sol (NONE is never an outcome)."""

    GREEN = 1
    YELLOW = 2
    RED = 3


class StampType(IntEnum):
    """``StampType`` of LedgerTypes.sol; required stamps are the mask ``OR(1 << type)``."""

    DOCUMENT_CHECK = 0
    PHYSICAL_EXAM = 1
    XRAY_SCAN = 2
    LAB_TEST = 3
    QUARANTINE = 4
    EXPORT_CLEARANCE = 5
    ORIGIN_VERIFICATION = 6
    SANITARY_CHECK = 7


AlertSubject = Literal["declaration", "trader", "document"]
_ALERT_SUBJECTS: tuple[AlertSubject, ...] = ("declaration", "trader", "document")


# ------------------------------------------------------------------------------------ model


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """A channel and the stamps it requires (``stamps`` is the bit mask)."""

    channel: Channel
    stamps: int


@dataclass(frozen=True, kw_only=True)
class Condition:
    """What a rule requires; every field that is set must hold (AND), lists match any member (OR)."""

    hs_prefix: tuple[str, ...] | None = None  #: some goods line's HS code starts with one of these
    origin: tuple[str, ...] | None = None  #: some goods line's origin is one of these countries
    line_value_over: float | None = None  #: some line's value (rule currency) is strictly above
    total_value_over: float | None = None  #: the declaration's total value is strictly above
    aeo: bool | None = None  #: the declarant's AEO status equals this
    alerts: tuple[AlertSubject, ...] | None = None  #: an active alert on one of these subjects
    sample_ppm: int | None = None  #: the declaration's draw is below this many parts per million

    @property
    def needs_content(self) -> bool:
        """Whether the condition reads the declaration document."""
        return any(v is not None for v in (self.hs_prefix, self.origin, self.line_value_over, self.total_value_over))


@dataclass(frozen=True, kw_only=True)
class Rule:
    """A named condition and the outcome it contributes when it holds."""

    id: str
    description: str
    when: Condition
    outcome: Outcome


@dataclass(frozen=True, kw_only=True)
class RuleSet:
    """A validated rule set; :attr:`hash` is sha256 of :attr:`canonical` (the on-chain ruleSetHash)."""

    name: str
    version: str
    currency: str
    exchange_rates: Mapping[str, float]
    default: Outcome
    on_unreadable: Outcome
    on_malformed: Outcome
    rules: tuple[Rule, ...]
    canonical: bytes = field(repr=False)
    hash: bytes


@dataclass(frozen=True, kw_only=True)
class GoodsLine:
    """One goods line as the rules read it (value converted to the rule-set currency)."""

    hs_code: str
    origin: str
    value: float


@dataclass(frozen=True, kw_only=True)
class AlertCounts:
    """Alerts active at the end of the submission block, per subject."""

    declaration: int = 0
    trader: int = 0
    document: int = 0

    def on(self, subject: AlertSubject) -> int:
        """Active alerts on ``subject``."""
        return int(getattr(self, subject))


@dataclass(frozen=True, kw_only=True)
class RiskInputs:
    """Everything :func:`evaluate` reads (see the module docstring for where each comes from)."""

    declaration_id: bytes
    block_hash: bytes
    document: bytes | None
    trader_aeo: bool = False
    alerts: AlertCounts = field(default_factory=AlertCounts)

    def __post_init__(self) -> None:
        if len(self.declaration_id) != 32 or len(self.block_hash) != 32:
            raise ValueError("declaration_id and block_hash are 32 bytes")


Basis = Literal["content", "unreadable", "malformed"]


@dataclass(frozen=True, kw_only=True)
class RiskResult:
    """A channel decision and why: the matched rules, the sampling draw, what the content was."""

    channel: Channel
    required_stamps: int
    rule_set_hash: bytes
    matched: tuple[str, ...]  #: ids of matched rules, in rule-set order (+ ``on_unreadable`` / ``on_malformed``)
    draw: int  #: the declaration's sampling draw in [0, SAMPLE_SCALE)
    basis: Basis
    detail: str = ""  #: why the document was malformed (empty otherwise)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "channel": self.channel.name,
            "channel_code": int(self.channel),
            "required_stamps": self.required_stamps,
            "stamps": [t.name for t in StampType if self.required_stamps >> t & 1],
            "rule_set_hash": "0x" + self.rule_set_hash.hex(),
            "matched": list(self.matched),
            "draw": self.draw,
            "basis": self.basis,
            "detail": self.detail,
        }


# ------------------------------------------------------------------------------------ parsing


def _depth_ok(value: Any, depth: int = 0) -> bool:
    if depth > _MAX_DEPTH:
        return False
    if isinstance(value, dict):
        return all(_depth_ok(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return all(_depth_ok(v, depth + 1) for v in value)
    return True


#: The largest amount (value, threshold, rate) the rules take: far above any consignment, and small
#: enough that sums of :data:`MAX_GOODS` lines can never overflow a float.
MAX_AMOUNT = 1e15


def _amount(value: Any) -> float | None:
    """``value`` as a float if it is a JSON number in ``[0, MAX_AMOUNT]``, else ``None`` (never raises:
    huge JSON integers overflow ``float()``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) and 0 <= number <= MAX_AMOUNT else None


def _number(value: Any, where: str) -> float:
    number = _amount(value)
    if number is None:
        raise RuleSetError(f"{where} must be a number between 0 and {MAX_AMOUNT:.0e}")
    return number


def _keys(raw: Mapping[str, Any], allowed: set[str], required: set[str], where: str) -> None:
    unknown = set(raw) - allowed
    if unknown:
        raise RuleSetError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    missing = required - set(raw)
    if missing:
        raise RuleSetError(f"{where}: missing field(s) {', '.join(sorted(missing))}")


def _outcome(raw: Any, where: str, *, conservative: bool = False) -> Outcome:
    if not isinstance(raw, dict):
        raise RuleSetError(f"{where} must be an object")
    _keys(raw, {"channel", "stamps"}, {"channel", "stamps"}, where)
    name = raw["channel"]
    if not isinstance(name, str) or name not in Channel.__members__:
        raise RuleSetError(f"{where}.channel must be one of GREEN, YELLOW, RED")
    channel = Channel[name]
    stamps = raw["stamps"]
    if not isinstance(stamps, list) or not all(isinstance(s, str) and s in StampType.__members__ for s in stamps):
        raise RuleSetError(f"{where}.stamps must list stamp types ({', '.join(StampType.__members__)})")
    mask = 0
    for stamp in stamps:
        mask |= 1 << StampType[stamp]
    if channel != Channel.GREEN and mask == 0:
        raise RuleSetError(f"{where}: a {channel.name} channel needs at least one stamp (the contract refuses none)")
    if conservative and channel == Channel.GREEN:
        raise RuleSetError(f"{where} must be YELLOW or RED (conservative)")
    return Outcome(channel=channel, stamps=mask)


def _string_list(raw: Any, pattern: re.Pattern[str], where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw or len(raw) > _MAX_LIST:
        raise RuleSetError(f"{where} must be a non-empty list of at most {_MAX_LIST} entries")
    if not all(isinstance(v, str) and pattern.match(v) for v in raw):
        raise RuleSetError(f"{where} has an entry that does not match {pattern.pattern}")
    return tuple(raw)


def _condition(raw: Any, where: str) -> Condition:
    if not isinstance(raw, dict) or not raw:
        raise RuleSetError(f"{where} must be a non-empty object")
    allowed = {"hs_prefix", "origin", "line_value_over", "total_value_over", "aeo", "alerts", "sample_ppm"}
    _keys(raw, allowed, set(), where)
    aeo = raw.get("aeo")
    if aeo is not None and not isinstance(aeo, bool):
        raise RuleSetError(f"{where}.aeo must be true or false")
    alerts = raw.get("alerts")
    if alerts is not None and (
        not isinstance(alerts, list) or not alerts or not all(a in _ALERT_SUBJECTS for a in alerts)
    ):
        raise RuleSetError(f"{where}.alerts must list subjects among {', '.join(_ALERT_SUBJECTS)}")
    sample = raw.get("sample_ppm")
    if sample is not None and (
        isinstance(sample, bool) or not isinstance(sample, int) or not 0 <= sample <= SAMPLE_SCALE
    ):
        raise RuleSetError(f"{where}.sample_ppm must be an integer 0..{SAMPLE_SCALE}")
    return Condition(
        hs_prefix=_string_list(raw["hs_prefix"], _HS, f"{where}.hs_prefix") if "hs_prefix" in raw else None,
        origin=_string_list(raw["origin"], _COUNTRY, f"{where}.origin") if "origin" in raw else None,
        line_value_over=_number(raw["line_value_over"], f"{where}.line_value_over")
        if "line_value_over" in raw
        else None,
        total_value_over=_number(raw["total_value_over"], f"{where}.total_value_over")
        if "total_value_over" in raw
        else None,
        aeo=aeo,
        alerts=tuple(alerts) if alerts is not None else None,
        sample_ppm=sample,
    )


def parse_rule_set(data: bytes) -> RuleSet:
    """Parse and validate rule-set bytes (JSON; see docs/oracles/risk.md). Raises :class:`RuleSetError`.

    The hash is taken over the canonical form, so whitespace and key order in the file do not
    change it; duplicate keys, unknown fields and non-finite numbers are refused.
    """
    if len(data) > MAX_RULE_SET_BYTES:
        raise RuleSetError(f"rule set is larger than {MAX_RULE_SET_BYTES} bytes")
    try:
        raw = strict_json(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise RuleSetError(f"rule set is not JSON: {exc}") from None
    if not isinstance(raw, dict) or not _depth_ok(raw):
        raise RuleSetError("rule set must be a JSON object (nesting at most 32 deep)")
    top = {"format", "name", "version", "currency", "exchange_rates", "default", "on_unreadable", "on_malformed",
           "rules", "description"}  # fmt: skip
    _keys(raw, top, top - {"description", "exchange_rates"}, "rule set")
    if raw["format"] != RULE_SET_FORMAT:
        raise RuleSetError(f"rule set format must be {RULE_SET_FORMAT!r}, got {raw['format']!r}")
    for name in ("name", "version"):
        if not isinstance(raw[name], str) or not 0 < len(raw[name]) <= 128:
            raise RuleSetError(f"rule set {name} must be a string of 1-128 characters")
    if not isinstance(raw.get("description", ""), str):
        raise RuleSetError("rule set description must be a string")
    currency = raw["currency"]
    if not isinstance(currency, str) or not _CURRENCY.match(currency):
        raise RuleSetError("rule set currency must be an ISO 4217 code such as 'USD'")
    rates_raw = raw.get("exchange_rates", {})
    if not isinstance(rates_raw, dict) or len(rates_raw) > _MAX_LIST:
        raise RuleSetError("exchange_rates must be an object: currency -> units of the rule currency per unit")
    rates: dict[str, float] = {currency: 1.0}
    for code, rate in rates_raw.items():
        if not _CURRENCY.match(code):
            raise RuleSetError(f"exchange_rates: {code!r} is not a currency code")
        rates[code] = _number(rate, f"exchange_rates.{code}")
    if rates[currency] != 1.0:
        raise RuleSetError("exchange_rates: the rule currency's own rate must be 1")
    rules_raw = raw["rules"]
    if not isinstance(rules_raw, list) or len(rules_raw) > _MAX_RULES:
        raise RuleSetError(f"rules must be a list of at most {_MAX_RULES} rules")
    rules: list[Rule] = []
    for n, item in enumerate(rules_raw):
        where = f"rules[{n}]"
        if not isinstance(item, dict):
            raise RuleSetError(f"{where} must be an object")
        _keys(item, {"id", "description", "when", "outcome"}, {"id", "when", "outcome"}, where)
        rule_id = item["id"]
        if not isinstance(rule_id, str) or not _RULE_ID.match(rule_id) or rule_id in {r.id for r in rules}:
            raise RuleSetError(f"{where}.id must be a unique name matching {_RULE_ID.pattern}")
        if rule_id in ("on_unreadable", "on_malformed"):
            raise RuleSetError(f"{where}.id {rule_id!r} is reserved")
        description = item.get("description", "")
        if not isinstance(description, str):
            raise RuleSetError(f"{where}.description must be a string")
        rules.append(
            Rule(
                id=rule_id,
                description=description,
                when=_condition(item["when"], f"{where}.when"),
                outcome=_outcome(item["outcome"], f"{where}.outcome"),
            )
        )
    try:
        canonical = canonical_json(raw)
    except CanonicalizationError as exc:
        raise RuleSetError(f"rule set has no canonical form: {exc}") from None
    return RuleSet(
        name=raw["name"],
        version=raw["version"],
        currency=currency,
        exchange_rates=rates,
        default=_outcome(raw["default"], "default"),
        on_unreadable=_outcome(raw["on_unreadable"], "on_unreadable", conservative=True),
        on_malformed=_outcome(raw["on_malformed"], "on_malformed", conservative=True),
        rules=tuple(rules),
        canonical=canonical,
        hash=hashlib.sha256(canonical).digest(),
    )


class _Malformed(ValueError):
    """The document is readable but not in the shape the rules read."""


def parse_declaration(document: Any, rule_set: RuleSet) -> tuple[GoodsLine, ...]:
    """The goods lines of a parsed declaration document, values in the rule-set currency.

    Fields read (everything else is ignored): ``currency`` (ISO 4217, optional — the rule-set
    currency when absent; it must be in ``exchange_rates``) and ``goods``: a non-empty list of at
    most :data:`MAX_GOODS` objects ``{"hs_code": "850440", "origin": "CN", "value": 12000.0}``
    (HS code 2-12 digits, dots and spaces ignored; origin ISO 3166-1 alpha-2, case-insensitive;
    value a number in ``[0, MAX_AMOUNT]`` in ``currency``, also after conversion). Raises
    ``ValueError`` when the shape is wrong.
    """
    if not isinstance(document, dict):
        raise _Malformed("the declaration is not a JSON object")
    currency = document.get("currency", rule_set.currency)
    if not isinstance(currency, str) or currency not in rule_set.exchange_rates:
        raise _Malformed(f"currency {currency!r} has no exchange rate in the rule set")
    rate = rule_set.exchange_rates[currency]
    goods = document.get("goods")
    if not isinstance(goods, list) or not goods or len(goods) > MAX_GOODS:
        raise _Malformed(f"'goods' must be a list of 1-{MAX_GOODS} lines")
    lines = []
    for n, line in enumerate(goods):
        if not isinstance(line, dict):
            raise _Malformed(f"goods[{n}] is not an object")
        hs = line.get("hs_code")
        hs = hs.replace(".", "").replace(" ", "") if isinstance(hs, str) else hs
        if not isinstance(hs, str) or not _HS.match(hs):
            raise _Malformed(f"goods[{n}].hs_code must be 2-12 digits")
        origin = line.get("origin")
        origin = origin.upper() if isinstance(origin, str) else origin
        if not isinstance(origin, str) or not _COUNTRY.match(origin):
            raise _Malformed(f"goods[{n}].origin must be an ISO 3166-1 alpha-2 code")
        value = _amount(line.get("value"))
        if value is None or value * rate > MAX_AMOUNT:
            raise _Malformed(f"goods[{n}].value must be a number between 0 and {MAX_AMOUNT:.0e}")
        lines.append(GoodsLine(hs_code=hs, origin=origin, value=value * rate))
    return tuple(lines)


# ------------------------------------------------------------------------------------ evaluation


def sample_draw(block_hash: bytes, declaration_id: bytes) -> int:
    """``uint256(keccak256(blockHash || declarationId)) mod 10**6``: the declaration's sampling draw.

    A rule with ``sample_ppm: r`` matches when the draw is below ``r``. Nobody controls the block
    hash of the submission block in advance (on a QBFT network the proposer could grind it; see the
    docs), and anyone can recompute the draw from the chain.
    """
    return int.from_bytes(keccak256(block_hash + declaration_id), "big") % SAMPLE_SCALE


def _holds(condition: Condition, goods: tuple[GoodsLine, ...] | None, inputs: RiskInputs, draw: int) -> bool:
    if condition.needs_content and goods is None:
        return False
    if condition.aeo is not None and condition.aeo != inputs.trader_aeo:
        return False
    if condition.alerts is not None and not any(inputs.alerts.on(s) > 0 for s in condition.alerts):
        return False
    if condition.sample_ppm is not None and not draw < condition.sample_ppm:
        return False
    if goods is None:
        return True
    if condition.hs_prefix is not None and not any(line.hs_code.startswith(condition.hs_prefix) for line in goods):
        return False
    if condition.origin is not None and not any(line.origin in condition.origin for line in goods):
        return False
    if condition.line_value_over is not None and not any(line.value > condition.line_value_over for line in goods):
        return False
    total = math.fsum(line.value for line in goods)
    return condition.total_value_over is None or total > condition.total_value_over


def _read_document(inputs: RiskInputs, rule_set: RuleSet) -> tuple[Basis, tuple[GoodsLine, ...] | None, str]:
    document = inputs.document
    if document is None or hashlib.sha256(document).digest() != inputs.declaration_id:
        return "unreadable", None, ""
    if len(document) > MAX_DOCUMENT_BYTES:
        return "malformed", None, f"the document is larger than {MAX_DOCUMENT_BYTES} bytes"
    try:
        parsed = json.loads(document)
        if not _depth_ok(parsed):
            raise _Malformed("the document nests too deeply")
        return "content", parse_declaration(parsed, rule_set), ""
    except (UnicodeDecodeError, RecursionError):
        return "malformed", None, "the document is not UTF-8 JSON"
    except _Malformed as exc:
        return "malformed", None, str(exc)
    except ValueError as exc:  # json.JSONDecodeError
        return "malformed", None, f"the document is not JSON: {exc.args[0] if exc.args else exc}"


def evaluate(rule_set: RuleSet, inputs: RiskInputs) -> RiskResult:
    """The channel, required stamps and explanation for one declaration. Pure and deterministic."""
    draw = sample_draw(inputs.block_hash, inputs.declaration_id)
    basis, goods, detail = _read_document(inputs, rule_set)
    outcomes = [rule_set.default]
    matched: list[str] = []
    for rule in rule_set.rules:
        if _holds(rule.when, goods, inputs, draw):
            matched.append(rule.id)
            outcomes.append(rule.outcome)
    if basis == "unreadable":
        matched.append("on_unreadable")
        outcomes.append(rule_set.on_unreadable)
    elif basis == "malformed":
        matched.append("on_malformed")
        outcomes.append(rule_set.on_malformed)
    channel = max(o.channel for o in outcomes)
    stamps = 0
    for outcome in outcomes:
        stamps |= outcome.stamps
    return RiskResult(
        channel=channel,
        required_stamps=stamps,
        rule_set_hash=rule_set.hash,
        matched=tuple(matched),
        draw=draw,
        basis=basis,
        detail=detail,
    )


@dataclass(frozen=True, kw_only=True)
class ReplayVerdict:
    """How an on-chain channel compares with the recomputation.

    ``match``: equal to the evaluation with the given inputs; ``unreadable-fallback``: equal to the
    evaluation without the document (the oracle could not read it — it only ever makes the channel
    stricter); ``rule-set-mismatch``: the chain names another rule set; ``mismatch``: neither.
    """

    verdict: Literal["match", "unreadable-fallback", "rule-set-mismatch", "mismatch"]
    expected: RiskResult

    @property
    def ok(self) -> bool:
        """Whether the on-chain channel is one the rule set produces for these inputs."""
        return self.verdict in ("match", "unreadable-fallback")


def replay(
    rule_set: RuleSet, inputs: RiskInputs, *, channel: int, required_stamps: int, rule_set_hash: bytes
) -> ReplayVerdict:
    """Recompute a declaration's channel and compare it with the on-chain ``ChannelAssigned`` values."""
    expected = evaluate(rule_set, inputs)
    if rule_set_hash != rule_set.hash:
        return ReplayVerdict(verdict="rule-set-mismatch", expected=expected)
    if (int(expected.channel), expected.required_stamps) == (channel, required_stamps):
        return ReplayVerdict(verdict="match", expected=expected)
    if inputs.document is not None:
        blind = evaluate(rule_set, RiskInputs(**{**inputs.__dict__, "document": None}))
        if (int(blind.channel), blind.required_stamps) == (channel, required_stamps):
            return ReplayVerdict(verdict="unreadable-fallback", expected=blind)
    return ReplayVerdict(verdict="mismatch", expected=expected)


def stamp_names(mask: int) -> Sequence[str]:
    """Stamp type names set in ``mask``."""
    return [t.name for t in StampType if mask >> t & 1]
