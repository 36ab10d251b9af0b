"""The channel check: every channel equals what the anchored rule set gives (docs/audit.md).

:class:`RuleSetChannelCheck` is a :data:`~ledger_api.audit.ChannelRuleCheck` built on the risk
oracle's own pure function (:mod:`ledger_api.verify.risk`) and input gathering
(:mod:`ledger_api.verify.risk_inputs`), fed from the replayed state (:class:`ReplayFacts`) instead of
an index:

1. the rule set is fetched from a content store by the manifest CID of the batch anchored under the
   channel's ``ruleSetHash`` (kind 82), and its hash checked — a rule set that cannot be found or
   verified is an error finding (``channel-rule-set-unverifiable``), never a pass;
2. the inputs are taken as of the end of the submission block: its hash (from the logs), the
   declarant's AEO flag, the active alerts on the declaration, the declarant and its documents;
3. the declaration plaintext is read when the auditor holds a decryption key and the keyring
   (:class:`DeclarationReader`); otherwise it is ``None``;
4. :func:`ledger_api.verify.risk.replay` compares: ``match`` and ``unreadable-fallback`` pass,
   anything else is a ``channel-rule-set`` error.

Without the plaintext the auditor can still check everything that does not depend on it: a channel
equal to the evaluation without the document passes (the oracle could not read it either, or the
content changed nothing); otherwise the channel must be at least what the content-free rules give
(an error if not), and is reported as ``channel-content-unverified`` (warning) — the content rules
could not be re-run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ledger_api.audit._findings import Severity
from ledger_api.audit._state import ChannelAssignment, ChannelProblem, LedgerState
from ledger_api.documents import AgencyPrivateKey, ContentStore
from ledger_api.errors import DocumentError, RuleSetError
from ledger_api.verify.risk import RuleSet, evaluate, replay, stamp_names
from ledger_api.verify.risk_inputs import DocumentLater, KeyringSource, gather, read_declaration, rule_set_from_store

__all__ = ["DeclarationReader", "ReplayFacts", "RuleSetChannelCheck"]


class ReplayFacts:
    """:class:`ledger_api.verify.risk_inputs.RiskFacts` answered from a replayed :class:`LedgerState`.

    Block hashes are known for every block that holds an event of the deployment (the submission
    block always does); AEO flags and alerts from their history in the state.
    """

    def __init__(self, state: LedgerState) -> None:
        self.state = state

    def block_hash(self, block: int) -> bytes:
        """Hash of ``block`` as the logs gave it."""
        try:
            return bytes.fromhex(self.state.block_hashes[block].removeprefix("0x"))
        except KeyError:
            raise LookupError(f"no log of block {block} was replayed: its hash is unknown") from None

    def trader_aeo_at(self, trader: str, block: int) -> bool:
        """The trader's AEO flag at the end of ``block`` (``False`` if not registered then)."""
        aeo = False
        for at, flag in self.state.aeo_history.get(trader.lower(), ()):
            if at > block:
                break
            aeo = flag
        return aeo

    def alert_spans(self, subject: str) -> Sequence[tuple[int, int | None]]:
        """``(raised block, cleared block)`` of every alert on ``subject``."""
        alerts = self.state.alerts
        return [
            (alerts[i].raised_block, alerts[i].cleared_block)
            for i in self.state.alerts_by_subject.get(subject.lower(), ())
        ]

    def rule_set_batch(self, root: str) -> tuple[int, str] | None:
        """``(kind, manifest CID)`` of the batch anchored under ``root``."""
        batch = self.state.batches.get(root.lower())
        return None if batch is None else (batch.kind, batch.manifest_cid)


@dataclass(frozen=True, kw_only=True)
class DeclarationReader:
    """How the auditor opens declaration envelopes: an agency's X25519 key and where keyrings are."""

    agency: str
    private_key: AgencyPrivateKey | None
    keyrings: KeyringSource


#: The plaintext of a declaration by id, from anywhere the auditor holds it (``None``: not held).
PlaintextSource = Callable[[str], bytes | None]


class RuleSetChannelCheck:
    """Re-derives every channel from its anchored rule set (a :data:`~ledger_api.audit.ChannelRuleCheck`).

    ``store`` holds the rule sets (and the envelopes, for ``reader``); ``reader`` opens envelopes;
    ``plaintexts`` is an alternative source of declaration plaintexts (tried first). After the
    replay, :meth:`summary` tells how many channels were checked and with which verdicts.
    """

    def __init__(
        self,
        store: ContentStore,
        *,
        reader: DeclarationReader | None = None,
        plaintexts: PlaintextSource | None = None,
    ) -> None:
        self.store = store
        self.reader = reader
        self.plaintexts = plaintexts
        self.verdicts: dict[str, int] = {}
        self.documents: dict[str, int] = {}
        self._rule_sets: dict[str, RuleSet | str] = {}

    # ---- pieces

    def rule_set(self, facts: ReplayFacts, rule_set_hash: str) -> RuleSet | str:
        """The verified rule set anchored under ``rule_set_hash``, or why there is none (cached)."""
        key = rule_set_hash.lower()
        if key not in self._rule_sets:
            try:
                self._rule_sets[key] = rule_set_from_store(facts, self.store, key)
            except (RuleSetError, DocumentError) as exc:
                self._rule_sets[key] = f"{exc.code}: {exc}"
        return self._rule_sets[key]

    def document(self, assignment: ChannelAssignment) -> tuple[bytes | None, str]:
        """The declaration plaintext and how it was obtained, or ``(None, why not)``."""
        d = assignment.declaration
        if self.plaintexts is not None:
            held = self.plaintexts(d.id)
            if held is not None:
                return held, "read"
        if self.reader is None:
            return None, "no-decryption-key"
        try:
            return read_declaration(
                cid=d.cid, declaration_id=d.id, store=self.store, keyrings=self.reader.keyrings,
                agency=self.reader.agency, private_key=self.reader.private_key,
            )  # fmt: skip
        except DocumentLater:
            return None, "unavailable"
        except DocumentError as exc:
            return None, exc.code

    def _count(self, verdict: str) -> None:
        self.verdicts[verdict] = self.verdicts.get(verdict, 0) + 1

    # ---- the check

    def __call__(self, assignment: ChannelAssignment) -> list[str | ChannelProblem]:
        """The problems of one channel (empty: it is what the anchored rule set gives)."""
        if assignment.state is None:
            self._count("unchecked")
            return [
                ChannelProblem(
                    message="no replayed state to gather the inputs from", code="channel-rule-set-unverifiable"
                )
            ]
        facts = ReplayFacts(assignment.state)
        rule_set = self.rule_set(facts, assignment.rule_set_hash)
        if isinstance(rule_set, str):
            self._count("rule-set-unverifiable")
            return [
                ChannelProblem(
                    message=f"rule set {assignment.rule_set_hash} cannot be found or verified ({rule_set})",
                    code="channel-rule-set-unverifiable",
                )
            ]
        d = assignment.declaration
        document, how = self.document(assignment)
        self.documents[how] = self.documents.get(how, 0) + 1
        try:
            inputs = gather(
                facts, declaration_id=d.id, declarant=d.declarant, documents=[str(x["sha256"]) for x in d.documents],
                block=d.block, document=document,
            )  # fmt: skip
        except (LookupError, ValueError) as exc:
            self._count("inputs-unavailable")
            return [
                ChannelProblem(message=f"risk inputs cannot be gathered: {exc}", code="channel-rule-set-unverifiable")
            ]
        verdict = replay(
            rule_set, inputs, channel=assignment.channel, required_stamps=assignment.required_stamps,
            rule_set_hash=bytes.fromhex(assignment.rule_set_hash.removeprefix("0x")),
        )  # fmt: skip
        on_chain = {"channel": assignment.channel, "required_stamps": assignment.required_stamps,
                    "stamps": list(stamp_names(assignment.required_stamps))}  # fmt: skip
        if verdict.ok:
            self._count(verdict.verdict if document is not None else "match-without-document")
            return []
        if document is not None or verdict.verdict == "rule-set-mismatch":
            self._count(verdict.verdict)
            return [
                ChannelProblem(
                    message=f"{verdict.verdict}: on chain {on_chain['channel']} / {assignment.required_stamps:#x}, "
                    f"the rule set gives {int(verdict.expected.channel)} / {verdict.expected.required_stamps:#x}",
                    details={
                        "verdict": verdict.verdict,
                        "on_chain": on_chain,
                        "expected": verdict.expected.as_dict(),
                        "document": how,
                    },
                )  # fmt: skip
            ]
        # Not readable by the auditor, and not the no-document outcome: only the content-free part is checkable.
        floor = evaluate(dataclasses.replace(rule_set, on_unreadable=rule_set.default), inputs)
        floor_json = {**floor.as_dict(), "matched": [m for m in floor.matched if m != "on_unreadable"]}
        if (
            assignment.channel < floor.channel
            or assignment.required_stamps & floor.required_stamps != floor.required_stamps
        ):
            self._count("mismatch")
            return [
                ChannelProblem(
                    message=f"mismatch: on chain {assignment.channel} / {assignment.required_stamps:#x} is below what "
                    f"the rules give whatever the document says ({int(floor.channel)} / {floor.required_stamps:#x})",
                    details={"verdict": "mismatch", "on_chain": on_chain, "at_least": floor_json, "document": how},
                )  # fmt: skip
            ]
        self._count("content-unverified")
        return [
            ChannelProblem(
                message=f"the declaration is not readable by the auditor ({how}); the content-free rules hold, the "
                "content rules were not re-run",
                code="channel-content-unverified",
                severity=Severity.WARNING,
                details={"on_chain": on_chain, "at_least": floor_json, "document": how},
            )  # fmt: skip
        ]

    def summary(self) -> dict[str, Any]:
        """Channels checked by verdict, how the documents were obtained, the rule sets used."""
        return {
            "checked": sum(self.verdicts.values()),
            "verdicts": dict(sorted(self.verdicts.items())),
            "documents": dict(sorted(self.documents.items())),
            "rule_sets": {h: ("verified" if isinstance(r, RuleSet) else r) for h, r in sorted(self._rule_sets.items())},
        }
