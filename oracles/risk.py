"""Risk selectivity oracle: assigns GREEN / YELLOW / RED and the required inspections.

For every declaration version that is SUBMITTED or ACCEPTED without a channel, the oracle gathers
the inputs of :func:`ledger_api.verify.risk.evaluate` — all fixed by the chain as of the
declaration's submission block, plus the declaration document when this agency can open its
envelope — evaluates the configured rule set and posts ``assignChannel`` signed by its agency
(CONSORTIUM-RISK by default). Before the first channel that names a rule set, the canonical rule
set is put in the agency's content store and anchored once with ``anchorBatch(root=ruleSetHash,
leafCount=1, kind=RULE_SET_BATCH_KIND, manifestCid=<its CID>)``, so anyone can fetch it by the hash
the chain carries and recompute every channel (``python -m oracles risk explain <id>``).

Reading the document: the envelope CID is on chain; the key wraps (keyring) live with the service
that sealed it — in the embedded deployment its vault ``<var_dir>/api/documents.db``, read here
read-only (:class:`VaultKeyrings`). Not shared with this agency, no keyring, a tampered envelope,
or bytes whose sha256 is not the declaration id: the rule set's ``on_unreadable`` outcome applies at
once. The envelope not (yet) found in a reachable store: the declaration waits up to
:attr:`RiskOracle.unreadable_grace` seconds, then ``on_unreadable`` applies. A store that is down is
an outage, not a fact about the document: the oracle backs off and the grace does not run.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from ledger_api.chain import _tx_calls as calls
from ledger_api.documents import AgencyPrivateKey, Cid, VaultKeyrings
from ledger_api.errors import RuleSetError
from ledger_api.index import DeclarationStatus, DeclarationView
from ledger_api.outbox import EntryState
from ledger_api.verify.risk import MAX_RULE_SET_BYTES, RULE_SET_BATCH_KIND, RuleSet, evaluate, parse_rule_set, replay
from ledger_api.verify.risk_inputs import (
    DocumentLater,
    KeyringSource,
    alert_counts_at,
    anchored_rule_set,
    gather_inputs,
    read_declaration,
    submission_block_hash,
    trader_aeo_at,
)
from oracles._base import Oracle, OracleContext, log_event, open_context

__all__ = [
    "DEFAULT_RULES",
    "ORACLE",
    "KeyringSource",
    "RiskOracle",
    "VaultKeyrings",
    "add_commands",
    "alert_counts_at",
    "anchored_rule_set",
    "gather_inputs",
    "load_rule_set",
    "submission_block_hash",
    "trader_aeo_at",
]

#: The built-in rule set (``docs/oracles/risk-rules.example.json`` is the same document).
DEFAULT_RULES: dict[str, Any] = {
    "format": "ledger-risk-rules-v1",
    "name": "consortium-default",
    "version": "2026.1",
    "description": "Built-in demo rule set of the embedded consortium: strict on weapons, sanctioned origins "
    "and flagged parties, sanitary checks on food, documentary checks on high values, random sampling.",
    "currency": "USD",
    "exchange_rates": {"CNY": 0.14, "EUR": 1.08, "GBP": 1.27},
    "default": {"channel": "GREEN", "stamps": []},
    "on_unreadable": {"channel": "RED", "stamps": ["DOCUMENT_CHECK", "PHYSICAL_EXAM"]},
    "on_malformed": {"channel": "YELLOW", "stamps": ["DOCUMENT_CHECK"]},
    "rules": [
        {
            "id": "weapons",
            "description": "HS chapter 93: arms and ammunition",
            "when": {"hs_prefix": ["93"]},
            "outcome": {"channel": "RED", "stamps": ["DOCUMENT_CHECK", "PHYSICAL_EXAM", "XRAY_SCAN"]},
        },
        {
            "id": "sanctioned-origin",
            "description": "goods originating in a sanctioned country",
            "when": {"origin": ["IR", "KP", "SY"]},
            "outcome": {"channel": "RED", "stamps": ["DOCUMENT_CHECK", "PHYSICAL_EXAM", "ORIGIN_VERIFICATION"]},
        },
        {
            "id": "food-sanitary",
            "description": "meat, fish, dairy, vegetables, fruit, prepared food",
            "when": {"hs_prefix": ["02", "03", "04", "07", "08", "16"]},
            "outcome": {"channel": "YELLOW", "stamps": ["SANITARY_CHECK"]},
        },
        {
            "id": "food-non-aeo-lab",
            "description": "food declared by a trader without AEO certification is lab-tested",
            "when": {"hs_prefix": ["02", "03", "04", "16"], "aeo": False},
            "outcome": {"channel": "YELLOW", "stamps": ["LAB_TEST", "SANITARY_CHECK"]},
        },
        {
            "id": "high-value-line",
            "description": "one goods line above 250,000 USD",
            "when": {"line_value_over": 250000},
            "outcome": {"channel": "YELLOW", "stamps": ["DOCUMENT_CHECK"]},
        },
        {
            "id": "high-value-non-aeo",
            "description": "total above 100,000 USD from a trader without AEO certification",
            "when": {"total_value_over": 100000, "aeo": False},
            "outcome": {"channel": "YELLOW", "stamps": ["DOCUMENT_CHECK"]},
        },
        {
            "id": "alert-party",
            "description": "an active alert on the declaration or its declarant",
            "when": {"alerts": ["declaration", "trader"]},
            "outcome": {"channel": "RED", "stamps": ["DOCUMENT_CHECK", "PHYSICAL_EXAM"]},
        },
        {
            "id": "alert-document",
            "description": "an active alert on one of its supporting documents",
            "when": {"alerts": ["document"]},
            "outcome": {"channel": "YELLOW", "stamps": ["DOCUMENT_CHECK"]},
        },
        {
            "id": "sample-aeo",
            "description": "random documentary check: 1% of AEO declarations",
            "when": {"aeo": True, "sample_ppm": 10000},
            "outcome": {"channel": "YELLOW", "stamps": ["DOCUMENT_CHECK"]},
        },
        {
            "id": "sample-non-aeo",
            "description": "random documentary check: 5% of other declarations",
            "when": {"aeo": False, "sample_ppm": 50000},
            "outcome": {"channel": "YELLOW", "stamps": ["DOCUMENT_CHECK"]},
        },
        {
            "id": "sample-physical",
            "description": "random physical examination: 0.5% of all declarations",
            "when": {"sample_ppm": 5000},
            "outcome": {"channel": "RED", "stamps": ["PHYSICAL_EXAM"]},
        },
    ],
}

_OPEN = (DeclarationStatus.SUBMITTED, DeclarationStatus.ACCEPTED)
_WAITING = "waiting:"


# ---------------------------------------------------------------------------------- rule sets


def load_rule_set(path: Path | None) -> RuleSet:
    """The rule set in JSON file ``path`` (at most 256 KiB), or the built-in :data:`DEFAULT_RULES`."""
    if path is None:
        return parse_rule_set(json.dumps(DEFAULT_RULES).encode())
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_RULE_SET_BYTES + 1)
    except OSError as exc:
        raise RuleSetError(f"cannot read rule set {path}: {exc.strerror or exc}") from None
    return parse_rule_set(data)


# ---------------------------------------------------------------------------------- documents


# ---------------------------------------------------------------------------------- oracle


#: Refusals that are outcomes, not faults: the declaration moved on (amended, rejected) before its
#: channel was mined, or another risk oracle channelled it first.
_EXPECTED_REFUSALS = frozenset({"ClearanceLedgerInvalidStatus", "ClearanceLedgerChannelAlreadySet"})


class RiskOracle(Oracle):
    """Channels open declarations from the configured rule set (anchored once, before use)."""

    name = "risk"
    default_agency = "CONSORTIUM-RISK"
    summary = "assign selectivity channels (GREEN / YELLOW / RED + required stamps) from an anchored rule set"

    #: Seconds a declaration whose envelope cannot be fetched (store down / not found) waits
    #: before the rule set's ``on_unreadable`` outcome applies.
    unreadable_grace: float = 120.0
    #: New declarations considered per pass.
    batch_size: int = 200

    def __init__(
        self,
        ctx: OracleContext,
        *,
        rule_set: RuleSet | None = None,
        keyrings: KeyringSource | None = None,
    ) -> None:
        super().__init__(ctx)
        self.rule_set = rule_set or load_rule_set(ctx.oracle_settings.rules)
        self.keyrings: KeyringSource = keyrings or ctx.on_close(VaultKeyrings.for_settings(ctx.settings))
        self._private_key: AgencyPrivateKey | None = None
        self._key_loaded = False
        self._anchored = False
        self._next_cursor: list[int] | None = None

    # ---- rule set

    @property
    def rule_set_key(self) -> str:
        """Journal key of the rule set's anchor."""
        return f"ruleset:0x{self.rule_set.hash.hex()}"

    def _anchor_rule_set(self) -> int:
        """Store the canonical rule set and journal its anchor (once per rule set; before any channel)."""
        if self._anchored:
            return 0
        stored = self.ctx.store.put(self.rule_set.canonical, max_size=MAX_RULE_SET_BYTES)
        fresh = self.ctx.posted(self.rule_set_key) is None
        self.ctx.post(
            self.rule_set_key,
            calls.anchor_batch(
                root=self.rule_set.hash,
                leaf_count=1,
                kind=RULE_SET_BATCH_KIND,
                manifest_cid=Cid.parse(stored.cid).to_bytes(),
            ),
        )
        self._anchored = True
        if fresh:
            log_event(self.ctx.log, "rule set anchored", rule_set_hash="0x" + self.rule_set.hash.hex(),
                      name=self.rule_set.name, version=self.rule_set.version, cid=stored.cid)  # fmt: skip
        return int(fresh)

    # ---- documents

    def _decryption_key(self) -> AgencyPrivateKey | None:
        if not self._key_loaded:
            label = self.ctx.agency.lower()
            keystore = self.ctx.keystore
            if keystore.has_encryption_key(label):
                self._private_key = AgencyPrivateKey(keystore.encryption_key(label))
            else:
                log_event(self.ctx.log, "no decryption key: every declaration is unreadable", level=logging.WARNING,
                          agency=self.ctx.agency)  # fmt: skip
            self._key_loaded = True
        return self._private_key

    def read_document(self, view: DeclarationView) -> tuple[bytes | None, str]:
        """The declaration's plaintext, or ``(None, reason)``; raises :class:`DocumentLater` when it may come later."""
        return read_declaration(cid=view.cid, declaration_id=view.declaration_id, store=self.ctx.store,
                                keyrings=self.keyrings, agency=self.ctx.agency,
                                private_key=self._decryption_key())  # fmt: skip

    # ---- the pass

    def _candidates(self) -> list[str]:
        """Declarations after the cursor (chain order, at most a batch) and those waiting for their document."""
        block, log_index = self.ctx.state.get("cursor", [-1, -1])
        rows = self.ctx.read._db.execute(
            "SELECT declaration_id, block_number, log_index FROM declarations "
            "WHERE block_number > ? OR (block_number = ? AND log_index > ?) "
            "ORDER BY block_number, log_index LIMIT ?",
            (block, block, log_index, self.batch_size),
        ).fetchall()
        waiting = [key[len(_WAITING) :] for key in self.ctx.state.facts(_WAITING)]
        self._next_cursor = [rows[-1][1], rows[-1][2]] if rows else None
        return waiting + [str(r[0]) for r in rows]

    def step(self) -> int:
        """Anchor the rule set (once), then channel every open declaration not channelled yet."""
        work = self._anchor_rule_set()
        for declaration_id in self._candidates():
            work += self._channel(declaration_id)
        if self._next_cursor is not None:
            self.ctx.state.set("cursor", self._next_cursor)
        return work

    def _channel(self, declaration_id: str) -> int:
        key = f"channel:{declaration_id}"
        view = self.ctx.read.declaration(declaration_id)
        if view is None or view.status not in _OPEN or view.channel != 0 or self.ctx.posted(key) is not None:
            self.ctx.state.forget_fact(_WAITING + declaration_id)
            return 0
        try:
            document, reason = self.read_document(view)
        except DocumentLater as exc:
            if exc.store_error is not None:  # the store is down: back off; the outage does not count as grace
                raise exc.store_error from None
            self.ctx.state.record_fact(_WAITING + declaration_id, {"since": time.time()})
            since = float(self.ctx.state.fact(_WAITING + declaration_id)["since"])
            if time.time() - since < self.unreadable_grace:
                log_event(self.ctx.log, "declaration document not available yet", level=logging.WARNING,
                          declaration_id=declaration_id, error=str(exc))  # fmt: skip
                return 0
            document, reason = None, "unavailable"
        result = evaluate(self.rule_set, gather_inputs(self.ctx.read, view, document))
        self.ctx.post(
            key,
            calls.assign_channel(
                declaration_id=bytes.fromhex(declaration_id.removeprefix("0x")),
                channel=int(result.channel),
                required_stamps=result.required_stamps,
                rule_set_hash=result.rule_set_hash,
            ),
        )
        self.ctx.state.record_fact(key, {**result.as_dict(), "document": reason})
        self.ctx.state.forget_fact(_WAITING + declaration_id)
        log_event(self.ctx.log, "channel assigned", declaration_id=declaration_id, channel=result.channel.name,
                  required_stamps=result.required_stamps, matched=list(result.matched), basis=result.basis,
                  document=reason)  # fmt: skip
        return 1

    def problems(self) -> list[str]:
        """Failed journal entries (a refused anchor or channel) and a missing decryption key."""
        found = []
        failed = 0
        if "outbox" in self.ctx.__dict__ and self.ctx.outbox.counts().get(EntryState.FAILED, 0):
            failed = sum(
                1
                for entry in self.ctx.outbox.entries([EntryState.FAILED], limit=10_000)
                if entry.error_name not in _EXPECTED_REFUSALS
            )
        if failed:
            found.append(f"{failed} journaled rule-set anchor / channel write(s) failed")
        if self._key_loaded and self._private_key is None:
            found.append(f"no decryption key for {self.ctx.agency}: every declaration gets on_unreadable")
        return found

    def status(self) -> dict[str, Any]:
        """Rule set in force, channels posted by channel, declarations waiting for their document."""
        facts = self.ctx.state.facts("channel:")
        by_channel: dict[str, int] = {}
        for fact in facts.values():
            by_channel[fact["channel"]] = by_channel.get(fact["channel"], 0) + 1
        return {
            "rule_set_hash": "0x" + self.rule_set.hash.hex(),
            "rule_set": f"{self.rule_set.name} {self.rule_set.version}",
            "channelled": len(facts),
            "by_channel": by_channel,
            "unreadable": sum(1 for f in facts.values() if f["basis"] == "unreadable"),
            "waiting": len(self.ctx.state.facts(_WAITING)),
        }


ORACLE = RiskOracle


# ---------------------------------------------------------------------------------- commands


def _rules(args: argparse.Namespace) -> int:
    from oracles.config import OracleSettings

    path = Path(args.file) if args.file else OracleSettings().rules
    rule_set = load_rule_set(path)
    if args.canonical:
        sys.stdout.buffer.write(rule_set.canonical + b"\n")
        return 0
    summary = {
        "rule_set_hash": "0x" + rule_set.hash.hex(),
        "name": rule_set.name,
        "version": rule_set.version,
        "rules": [r.id for r in rule_set.rules],
        "batch_kind": RULE_SET_BATCH_KIND,
    }
    print(json.dumps(summary, indent=2))
    return 0


def _explain(args: argparse.Namespace) -> int:
    ctx = open_context(RiskOracle.name, default_agency=RiskOracle.default_agency)
    try:
        ctx.sync()
        oracle = RiskOracle(ctx)
        view = ctx.read.declaration(args.declaration_id)
        if view is None:
            print(f"oracles: unknown declaration {args.declaration_id}", file=sys.stderr)
            return 1
        rule_set = anchored_rule_set(ctx.read, ctx.store, view.rule_set_hash) if view.rule_set_hash else oracle.rule_set
        try:
            document, reason = oracle.read_document(view)
        except DocumentLater as exc:
            document, reason = None, f"unavailable ({exc})"
        inputs = gather_inputs(ctx.read, view, document)
        out: dict[str, Any] = {"declaration_id": view.declaration_id, "document": reason}
        if view.channel and view.rule_set_hash:
            verdict = replay(rule_set, inputs, channel=view.channel, required_stamps=view.required_stamps,
                             rule_set_hash=bytes.fromhex(view.rule_set_hash[2:]))  # fmt: skip
            out.update(on_chain={"channel": view.channel, "required_stamps": view.required_stamps},
                       verdict=verdict.verdict, expected=verdict.expected.as_dict())  # fmt: skip
        else:
            out.update(on_chain=None, expected=evaluate(rule_set, inputs).as_dict())
        print(json.dumps(out, indent=2))
        return 0 if out.get("verdict", "match") in ("match", "unreadable-fallback") else 1
    finally:
        ctx.close()


def add_commands(actions: Any) -> None:
    """``risk rules [--file F] [--canonical]`` and ``risk explain <declaration_id>``."""
    rules = actions.add_parser("rules", help="validate a rule set and print its hash (or its canonical bytes)")
    rules.add_argument("--file", help="rule set JSON file (default: LEDGER_ORACLE_RULES or the built-in one)")
    rules.add_argument("--canonical", action="store_true", help="print the canonical (hashed) bytes")
    rules.set_defaults(handler=_rules)
    explain = actions.add_parser("explain", help="recompute a declaration's channel and compare it with the chain")
    explain.add_argument("declaration_id", help="0x-hex declaration id")
    explain.set_defaults(handler=_explain)
