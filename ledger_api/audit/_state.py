"""Rebuild the whole ledger state from its events, checking the business invariants as it goes.

:class:`Rebuilder` applies decoded events in chain order. Every handler first checks what must
have been true *at that moment* (the acting key valid then, its agency ACTIVE and holding the
role then, the transition allowed, a RELEASE backed by PASS stamps, K distinct approvers, …),
records a :class:`~ledger_api.audit.Finding` for anything that was not, and then applies the event
exactly as the contracts would have changed their storage. :meth:`Rebuilder.finish` runs the
checks that need the whole history (amendment chains, signatures voided by a later compromise
report).

The contracts enforce most of these rules themselves; the replay re-checks them because an
auditor must not trust the contracts' code either, and because a history that did *not* come from
these contracts (a forged node, a modified log list, the wrong deployment) must be caught.
Values are kept as the decoder gives them with ``hex_bytes=True``: bytes as lowercase 0x-hex,
addresses checksummed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ledger_api.audit._findings import Finding, Severity
from ledger_api.chain.events import DecodedEvent

__all__ = ["ChannelAssignment", "ChannelProblem", "ChannelRuleCheck", "LedgerState", "Rebuilder"]

ZERO32 = "0x" + "00" * 32
ZERO_ADDRESS = "0x" + "00" * 20

# AgencyStatus, TraderStatus, DeclarationStatus, Channel, StampResult, DecisionKind (LedgerTypes.sol).
AGENCY_ACTIVE, AGENCY_SUSPENDED, AGENCY_REMOVED = 1, 2, 3
TRADER_ACTIVE = 1
SUBMITTED, ACCEPTED, RELEASED, HELD, REJECTED, SEIZED, SUPERSEDED = 1, 2, 3, 4, 5, 6, 7
GREEN = 1
PASS = 1
RELEASE, HOLD, REJECT, SEIZE = 0, 1, 2, 3
EXPORT_CLEARANCE = 5
ALL_STAMP_TYPES = (1 << 8) - 1
# Role bits.
CUSTOMS_AUTHORITY, INSPECTION_AGENCY, PARTNER_CUSTOMS, RISK_ORACLE, TRADER_REGISTRAR = 1, 2, 4, 8, 32
ANY_ROLE = 63

#: DecisionKind → (statuses it may be taken from, status it leads to).
TRANSITIONS: dict[int, tuple[frozenset[int], int]] = {
    RELEASE: (frozenset({ACCEPTED, HELD}), RELEASED),
    HOLD: (frozenset({ACCEPTED}), HELD),
    REJECT: (frozenset({SUBMITTED, ACCEPTED, HELD}), REJECTED),
    SEIZE: (frozenset({HELD}), SEIZED),
}

#: Registry / ledger events that only governance may cause (a passed proposal, or the bootstrapper).
GOVERNED = frozenset(
    {
        "AgencyAdded", "AgencyRolesChanged", "AgencyStatusChanged", "AgencyProfileUpdated", "SignerKeyAdded",
        "SignerKeyExpiryChanged", "GovernorAdded", "GovernorRemoved", "ThresholdChanged",
        "ProposalLifetimeChanged", "GovernedTargetSet", "ApprovalsRequiredChanged",
    }
)  # fmt: skip


# ================================================================================ state


@dataclass(slots=True)
class AgencyState:
    """An agency as the registry stores it, plus its status / role history."""

    id: str
    index: int
    status: int
    roles: int
    country: str
    encryption_key: str
    name: str
    ipfs_endpoint: str
    history: list[tuple[int, str, Any]] = field(default_factory=list)  # (block, field, new value)


@dataclass(slots=True)
class KeyState:
    """A signer key with its validity window and the history of that window."""

    address: str
    agency_index: int
    valid_from: int
    valid_until: int
    compromised_at: int = 0
    history: list[tuple[int, str, int]] = field(default_factory=list)  # (block, field, new value)

    def valid_at(self, time: int) -> bool:
        """The registry's ``_validAt``: inside the window and before any compromise time."""
        return self.valid_from <= time < self.valid_until and (self.compromised_at == 0 or time < self.compromised_at)


@dataclass(slots=True)
class TraderState:
    """A trader account."""

    registrar_index: int
    status: int
    aeo: bool


@dataclass(slots=True)
class ProposalState:
    """A governance proposal."""

    id: int
    proposer: str
    target: str
    call_data: str
    expires_at: int
    epoch: int
    approvals: int = 1
    executed: bool = False
    cancelled: bool = False
    approvers: set[str] = field(default_factory=set)


@dataclass(slots=True)
class PendingState:
    """An open dual-control decision."""

    kind: int
    approvals: int
    approvals_required: int
    reason_code: int
    round: int
    proposer: str
    report_sha256: str


@dataclass(slots=True)
class DecisionFact:
    """A decision that took effect."""

    kind: int
    status: int
    signer: str
    round: int
    approvers: tuple[str, ...]
    pass_stamps: tuple[str, ...]
    block: int
    tx: str


@dataclass(slots=True)
class DeclarationState:
    """One declaration version: the contract's struct plus what only the events carry."""

    id: str
    declarant: str
    jurisdiction: int
    version: int
    previous_id: str
    local_reference: str
    cid: str
    documents: tuple[Any, ...]
    block: int
    status: int = SUBMITTED
    channel: int = 0
    required_stamps: int = 0
    mrn: str = ZERO32
    rule_set_hash: str = ZERO32
    superseded_by: str = ZERO32
    round: int = 0
    pending: PendingState | None = None
    stamps: list[str] = field(default_factory=list)
    decisions: list[DecisionFact] = field(default_factory=list)
    approvers: dict[int, list[str]] = field(default_factory=dict)  # round → proposer + intermediate approvers


@dataclass(slots=True)
class StampState:
    """One stamp."""

    id: str
    declaration_id: str
    signer: str
    agency_index: int
    stamp_type: int
    result: int
    signed_at: int
    relayer: str
    block: int
    tx: str
    revoked: bool = False
    report_cid: str = "0x"  # the stored report's binary CID, 0x-hex


@dataclass(slots=True)
class BatchState:
    """A Merkle batch anchor."""

    root: str
    agency_index: int
    leaf_count: int
    kind: int
    anchored_at: int
    manifest_cid: str
    block: int = 0


@dataclass(slots=True)
class AlertState:
    """An alert."""

    id: int
    subject: str
    subject_kind: int
    agency_index: int
    reason_code: int
    raised_at: int
    evidence_sha256: str
    active: bool = True
    raised_block: int = 0
    cleared_block: int | None = None


@dataclass(slots=True)
class LedgerState:
    """Everything the replay rebuilt: registry and ledger, keyed the way the views are.

    Addresses used as keys are lowercase; bytes32 keys are lowercase 0x-hex.
    """

    agencies: dict[int, AgencyState] = field(default_factory=dict)
    agency_index: dict[str, int] = field(default_factory=dict)  # agency id → index
    keys: dict[str, KeyState] = field(default_factory=dict)
    traders: dict[str, TraderState] = field(default_factory=dict)
    governors: dict[str, bool] = field(default_factory=dict)
    governor_count: int = 0
    threshold: int = 0
    epoch: int = 0
    lifetime: int = 0
    bootstrapping: bool = True
    targets: dict[str, bool] = field(default_factory=dict)
    proposals: dict[int, ProposalState] = field(default_factory=dict)
    declarations: dict[str, DeclarationState] = field(default_factory=dict)
    by_mrn: dict[str, str] = field(default_factory=dict)
    supporting_owner: dict[str, str] = field(default_factory=dict)
    stamps: dict[str, StampState] = field(default_factory=dict)
    open_failures: dict[tuple[str, int], int] = field(default_factory=dict)
    approvals_required: dict[int, int] = field(default_factory=dict)
    batches: dict[str, BatchState] = field(default_factory=dict)
    alerts: dict[int, AlertState] = field(default_factory=dict)
    active_alerts: dict[str, int] = field(default_factory=dict)
    nonces: dict[str, int] = field(default_factory=dict)  # relayed stamps per signer
    # history the risk inputs need "as of the submission block" (ledger_api.verify.risk_inputs):
    block_hashes: dict[int, str] = field(default_factory=dict)  # every block that holds an event
    aeo_history: dict[str, list[tuple[int, bool]]] = field(default_factory=dict)  # trader → (block, aeo)
    alerts_by_subject: dict[str, list[int]] = field(default_factory=dict)  # subject → alert ids
    signers_seen: set[str] = field(default_factory=set)  # every acting address named by an event
    # ids named by an event without being created by one (a cited or revoked stamp, a decided declaration …):
    # the digest reads them too, so a history that hides their creation differs from the views.
    stamps_referenced: set[str] = field(default_factory=set)
    declarations_referenced: set[str] = field(default_factory=set)

    def required(self, kind: int) -> int:
        """Distinct signers decision ``kind`` needs (the contract's ``_required``)."""
        return self.approvals_required.get(kind, 0) or 1

    def counts(self) -> dict[str, int]:
        """Entity counts for the report."""
        return {
            "agencies": len(self.agencies),
            "signer_keys": len(self.keys),
            "traders": len(self.traders),
            "governors": self.governor_count,
            "proposals": len(self.proposals),
            "declarations": len(self.declarations),
            "amendments": sum(1 for d in self.declarations.values() if d.version > 1),
            "stamps": len(self.stamps),
            "revoked_stamps": sum(1 for s in self.stamps.values() if s.revoked),
            "decisions": sum(len(d.decisions) for d in self.declarations.values()),
            "batches": len(self.batches),
            "alerts": len(self.alerts),
        }


# ================================================================================ channel hook


@dataclass(frozen=True, kw_only=True)
class ChannelAssignment:
    """What a risk oracle assigned, for :data:`ChannelRuleCheck`."""

    declaration_id: str
    channel: int
    required_stamps: int
    rule_set_hash: str
    agency_index: int
    signer: str
    block: int
    block_time: int
    tx: str
    declaration: DeclarationState
    #: The replayed state when the check runs (after the last event of the channel's block): its
    #: histories answer "as of the submission block" (:class:`ledger_api.audit.ReplayFacts`).
    state: LedgerState | None = None


@dataclass(frozen=True, kw_only=True)
class ChannelProblem:
    """A problem a :data:`ChannelRuleCheck` found, when it is not a plain error (a bare string is one)."""

    message: str
    code: str = "channel-rule-set"
    severity: str = Severity.ERROR
    details: Mapping[str, Any] = field(default_factory=dict)


#: Re-derives a channel from the anchored rule set: returns the problems found (empty = it matches),
#: each a string (an error, code ``channel-rule-set``) or a :class:`ChannelProblem`. The replay runs
#: it once the channel's block has ended (the inputs are "as of the end of the submission block",
#: and the two may be the same block). :class:`ledger_api.audit.RuleSetChannelCheck` wraps the risk
#: oracle's own function (``ledger_api/verify/risk.py``); the replay reports ``channel-rule-set`` as
#: *skipped* when no check is given — never as passed.
ChannelRuleCheck = Callable[[ChannelAssignment], Iterable[str | ChannelProblem]]


# ================================================================================ rebuilder


def _lower(address: str) -> str:
    return address.lower()


class Rebuilder:
    """Applies events to a :class:`LedgerState` and collects :class:`Finding` values.

    ``registry`` / ``ledger`` are the contract addresses (governance calls come from the registry);
    ``deployer`` is the bootstrapper when known. ``channel_check`` is the rule-set hook.
    """

    def __init__(
        self,
        *,
        registry: str,
        ledger: str,
        deployer: str | None = None,
        channel_check: ChannelRuleCheck | None = None,
    ) -> None:
        self.state = LedgerState()
        self.findings: list[Finding] = []
        self.channel_checks = 0
        self.channels_unchecked = 0
        self._registry = registry.lower()
        self._ledger = ledger.lower()
        self._deployer = deployer.lower() if deployer else None
        self._channel_check = channel_check
        self._creation_tx: str | None = None  # the registry's deployment transaction
        self._governance_txs: set[str] = set()  # transactions in which a proposal was executed
        self._handlers: dict[str, Callable[[DecodedEvent, Mapping[str, Any], int], None]] = {
            name[3:]: getattr(self, name) for name in dir(self) if name.startswith("_on")
        }
        self._time = 0
        self._event: DecodedEvent | None = None
        self._channels_due: list[tuple[ChannelAssignment, DecodedEvent]] = []  # checks waiting for their block's end

    # ------------------------------------------------------------------ plumbing

    @property
    def creation_tx(self) -> str | None:
        """The registry's deployment transaction (its first event's), once seen."""
        return self._creation_tx

    def resume(self, state: LedgerState, *, creation_tx: str | None, findings: list[Finding],
               channel_checks: int = 0, channels_unchecked: int = 0) -> None:  # fmt: skip
        """Continue after a checkpoint: the state, findings and counters a replay up to a block's end left."""
        self.state, self.findings, self._creation_tx = state, findings, creation_tx
        self.channel_checks, self.channels_unchecked = channel_checks, channels_unchecked

    def apply(self, event: DecodedEvent, block_time: int) -> None:
        """Check and apply one event (in chain order); ``block_time`` is its block's timestamp."""
        handler = self._handlers.get(event.name)
        if handler is None:
            if event.name != "EIP712DomainChanged":
                self._flag("unknown-event", f"no replay rule for event {event.name}", event)
            return
        if self._channels_due and event.block_number > self._channels_due[0][1].block_number:
            self._run_channel_checks()
        self._time = block_time
        self._event = event
        self.state.block_hashes[event.block_number] = event.block_hash
        if event.contract == "AgencyRegistry" and self._creation_tx is None:
            self._creation_tx = event.tx_hash
        handler(event, event.args, block_time)

    def _flag(
        self, code: str, message: str, event: DecodedEvent | None = None, *, severity: str = Severity.ERROR,
        **details: Any,
    ) -> None:  # fmt: skip
        ev = event if event is not None else self._event
        self.findings.append(
            Finding(
                code=code,
                severity=severity,
                message=message,
                block=ev.block_number if ev else None,
                tx=ev.tx_hash if ev else None,
                log_index=ev.log_index if ev else None,
                event=ev.name if ev else None,
                details=details,
            )
        )

    def _governed(self, event: DecodedEvent) -> None:
        if event.tx_hash == self._creation_tx or self.state.bootstrapping:
            return
        if event.tx_hash not in self._governance_txs:
            self._flag("governance-bypassed", f"{event.name} outside an executed proposal after bootstrap", event)

    def _actor(
        self, event: DecodedEvent, signer: str, role_mask: int, *, at: int | None = None, agency: int | None = None
    ) -> KeyState | None:
        """Check that ``signer`` was a valid key of an ACTIVE agency holding ``role_mask`` at ``at``."""
        address = _lower(signer)
        self.state.signers_seen.add(address)
        key = self.state.keys.get(address)
        time = self._time if at is None else at
        if key is None:
            self._flag("unknown-signer", f"{event.name} by {signer}, not a registered signer key", event, signer=signer)
            return None
        if not key.valid_at(time):
            self._flag(
                "key-not-valid", f"{event.name} by key {signer} outside its validity at {time}", event,
                signer=signer, time=time, valid_from=key.valid_from, valid_until=key.valid_until,
                compromised_at=key.compromised_at,
            )  # fmt: skip
        acting = self.state.agencies.get(key.agency_index)
        if acting is None:
            self._flag("unknown-agency", f"key {signer} belongs to unknown agency #{key.agency_index}", event)
            return key
        if acting.status != AGENCY_ACTIVE:
            self._flag(
                "inactive-agency-action", f"{event.name} by agency {acting.id} while its status was {acting.status}",
                event, agency=acting.id, status=acting.status,
            )  # fmt: skip
        if acting.roles & role_mask == 0:
            self._flag(
                "missing-role", f"{event.name} by agency {acting.id} without role mask {role_mask:#x}", event,
                agency=acting.id, roles=acting.roles, required=role_mask,
            )  # fmt: skip
        if agency is not None and key.agency_index != agency:
            self._flag(
                "wrong-agency", f"{event.name} by a key of agency #{key.agency_index}, expected #{agency}", event,
                signer=signer, key_agency=key.agency_index, expected=agency,
            )  # fmt: skip
        return key

    def _declaration(self, event: DecodedEvent, declaration_id: str) -> DeclarationState | None:
        self.state.declarations_referenced.add(declaration_id)
        d = self.state.declarations.get(declaration_id)
        if d is None:
            self._flag("unknown-declaration", f"{event.name} on unknown declaration {declaration_id}", event)
        return d

    # ------------------------------------------------------------------ registry: agencies and keys

    def _onAgencyAdded(self, e: DecodedEvent, a: Mapping[str, Any], t: int) -> None:
        self._governed(e)
        s = self.state
        if a["agencyId"] in s.agency_index or a["agencyIndex"] != len(s.agencies) + 1:
            self._flag("agency-index", f"agency {a['agencyId']} added as #{a['agencyIndex']}", e)
        s.agency_index[a["agencyId"]] = a["agencyIndex"]
        s.agencies[a["agencyIndex"]] = AgencyState(
            id=a["agencyId"], index=a["agencyIndex"], status=AGENCY_ACTIVE, roles=a["roles"], country=a["country"],
            encryption_key=a["encryptionKey"], name=a["name"], ipfs_endpoint=a["ipfsEndpoint"],
            history=[(e.block_number, "added", a["roles"])],
        )  # fmt: skip

    def _live_agency(self, e: DecodedEvent, agency_id: str) -> AgencyState | None:
        index = self.state.agency_index.get(agency_id)
        agency = self.state.agencies.get(index) if index else None
        if agency is None:
            self._flag("unknown-agency", f"{e.name} on unknown agency {agency_id}", e)
            return None
        if agency.status == AGENCY_REMOVED:
            self._flag("removed-agency-changed", f"{e.name} on removed agency {agency_id}", e)
        return agency

    def _onAgencyRolesChanged(self, e: DecodedEvent, a: Mapping[str, Any], t: int) -> None:
        self._governed(e)
        agency = self._live_agency(e, a["agencyId"])
        if agency is not None:
            agency.roles = a["roles"]
            agency.history.append((e.block_number, "roles", a["roles"]))

    def _onAgencyStatusChanged(self, e: DecodedEvent, a: Mapping[str, Any], t: int) -> None:
        self._governed(e)
        agency = self._live_agency(e, a["agencyId"])
        if agency is None:
            return
        to = a["status"]
        allowed = to == AGENCY_REMOVED or (agency.status, to) in ((AGENCY_ACTIVE, AGENCY_SUSPENDED),
                                                                   (AGENCY_SUSPENDED, AGENCY_ACTIVE))  # fmt: skip
        if not allowed:
            self._flag("invalid-agency-status", f"agency {agency.id} status {agency.status} → {to}", e)
        agency.status = to
        agency.history.append((e.block_number, "status", to))

    def _onAgencyProfileUpdated(self, e: DecodedEvent, a: Mapping[str, Any], t: int) -> None:
        self._governed(e)
        agency = self._live_agency(e, a["agencyId"])
        if agency is not None:
            agency.name, agency.encryption_key, agency.ipfs_endpoint = a["name"], a["encryptionKey"], a["ipfsEndpoint"]

    def _onSignerKeyAdded(self, e: DecodedEvent, a: Mapping[str, Any], t: int) -> None:
        self._governed(e)
        agency = self._live_agency(e, a["agencyId"])
        address = _lower(a["signer"])
        if address in self.state.keys or address in self.state.traders:
            self._flag("key-reused", f"signer key {a['signer']} registered twice or also a trader", e)
        if a["validFrom"] >= a["validUntil"]:
            self._flag("invalid-key-validity", f"key {a['signer']} with an empty validity window", e)
        self.state.keys[address] = KeyState(
            address=address, agency_index=agency.index if agency else 0, valid_from=a["validFrom"],
            valid_until=a["validUntil"], history=[(e.block_number, "added", a["validFrom"]),
                                                  (e.block_number, "valid_until", a["validUntil"])],
        )  # fmt: skip

    def _onSignerKeyExpiryChanged(self, e: DecodedEvent, a: Mapping[str, Any], t: int) -> None:
        self._governed(e)
        key = self.state.keys.get(_lower(a["signer"]))
        if key is None:
            self._flag("unknown-signer", f"expiry of unknown key {a['signer']}", e)
            return
        key.valid_until = a["validUntil"]
        key.history.append((e.block_number, "valid_until", a["validUntil"]))

    def _onSignerKeyCompromised(self, e: DecodedEvent, a: Mapping[str, Any], t: int) -> None:
        key = self.state.keys.get(_lower(a["signer"]))
        if key is None:
            self._flag("unknown-signer", f"compromise of unknown key {a['signer']}", e)
            return
        reporter = _lower(a["reportedBy"])
        governance = reporter == self._registry or (self.state.bootstrapping and reporter == self._deployer)
        if not governance:
            peer = self.state.keys.get(reporter)
            if peer is None or reporter == key.address or peer.agency_index != key.agency_index or not peer.valid_at(t):
                self._flag("invalid-compromise-report", f"key {a['signer']} reported compromised by {reporter}", e)
        at = a["compromisedAt"]
        if at < key.valid_from or at > t or (key.compromised_at and at >= key.compromised_at):
            self._flag("invalid-compromise-time", f"key {a['signer']} compromised at {at}", e)
        key.compromised_at = at
        key.history.append((e.block_number, "compromised_at", at))

    # ------------------------------------------------------------------ registry: traders

    def _onTraderRegistered(self, e: DecodedEvent, a: Mapping[str, Any], t: int) -> None:
        address = _lower(a["trader"])
        self._registrar_active(e, a["registrarIndex"])
        if address in self.state.traders or address in self.state.keys:
            self._flag("trader-reused", f"trader {a['trader']} registered twice or also a signer key", e)
        self.state.traders[address] = TraderState(
            registrar_index=a["registrarIndex"], status=TRADER_ACTIVE, aeo=a["aeo"]
        )
        self.state.aeo_history.setdefault(address, []).append((e.block_number, bool(a["aeo"])))

    def _registrar_active(self, e: DecodedEvent, index: int) -> None:
        agency = self.state.agencies.get(index)
        if agency is None or agency.status != AGENCY_ACTIVE or agency.roles & TRADER_REGISTRAR == 0:
            self._flag("inactive-agency-action", f"{e.name} by registrar #{index}, not an active registrar", e)

    def _onTraderUpdated(self, e: DecodedEvent, a: Mapping[str, Any], t: int) -> None:
        trader = self.state.traders.get(_lower(a["trader"]))
        if trader is None:
            self._flag("unknown-trader", f"update of unknown trader {a['trader']}", e)
            return
        self._registrar_active(e, trader.registrar_index)
        trader.status, trader.aeo = a["status"], a["aeo"]
        self.state.aeo_history.setdefault(_lower(a["trader"]), []).append((e.block_number, bool(a["aeo"])))

    # ------------------------------------------------------------------ registry: governance

    def _onGovernorAdded(self, e: DecodedEvent, a: Mapping[str, Any], t: int) -> None:
        self._governed(e)
        address = _lower(a["governor"])
        if self.state.governors.get(address):
            self._flag("governor-exists", f"governor {a['governor']} added twice", e)
        self.state.governors[address] = True
        self.state.governor_count += 1
        if e.tx_hash != self._creation_tx:
            self.state.epoch += 1

    def _onGovernorRemoved(self, e: DecodedEvent, a: Mapping[str, Any], t: int) -> None:
        self._governed(e)
        self.state.governors[_lower(a["governor"])] = False
        self.state.governor_count -= 1
        self.state.epoch += 1

    def _onThresholdChanged(self, e: DecodedEvent, a: Mapping[str, Any], t: int) -> None:
        self._governed(e)
        self.state.threshold = a["threshold"]
        if e.tx_hash != self._creation_tx:
            self.state.epoch += 1

    def _onProposalLifetimeChanged(self, e: DecodedEvent, a: Mapping[str, Any], t: int) -> None:
        self._governed(e)
        self.state.lifetime = a["lifetime"]

    def _onGovernedTargetSet(self, e: DecodedEvent, a: Mapping[str, Any], t: int) -> None:
        self._governed(e)
        self.state.targets[_lower(a["target"])] = a["allowed"]

    def _onBootstrapFinished(self, e: DecodedEvent, a: Mapping[str, Any], t: int) -> None:
        if not self.state.bootstrapping:
            self._flag("bootstrap-finished-twice", "BootstrapFinished after bootstrap", e)
        self.state.bootstrapping = False

    def _onProposalCreated(self, e: DecodedEvent, a: Mapping[str, Any], t: int) -> None:
        s = self.state
        proposer = _lower(a["proposer"])
        if not s.governors.get(proposer):
            self._flag("not-a-governor", f"proposal {a['proposalId']} by non-governor {a['proposer']}", e)
        if a["proposalId"] != len(s.proposals) + 1 or a["epoch"] != s.epoch:
            self._flag("proposal-sequence", f"proposal {a['proposalId']} epoch {a['epoch']} (replay: {s.epoch})", e)
        s.proposals[a["proposalId"]] = ProposalState(
            id=a["proposalId"], proposer=proposer, target=a["target"], call_data=a["callData"],
            expires_at=a["expiresAt"], epoch=a["epoch"], approvers={proposer},
        )  # fmt: skip

    def _open_proposal(self, e: DecodedEvent, proposal_id: int, t: int) -> ProposalState | None:
        p = self.state.proposals.get(proposal_id)
        if p is None:
            self._flag("unknown-proposal", f"{e.name} on unknown proposal {proposal_id}", e)
            return None
        if p.executed or p.cancelled or t >= p.expires_at or p.epoch != self.state.epoch:
            self._flag("proposal-closed", f"{e.name} on closed, expired or stale proposal {proposal_id}", e)
        return p

    def _onProposalApproved(self, e: DecodedEvent, a: Mapping[str, Any], t: int) -> None:
        p = self._open_proposal(e, a["proposalId"], t)
        governor = _lower(a["governor"])
        if not self.state.governors.get(governor):
            self._flag("not-a-governor", f"proposal {a['proposalId']} approved by non-governor {a['governor']}", e)
        if p is None:
            return
        if governor in p.approvers or a["approvals"] != p.approvals + 1:
            self._flag("proposal-approvals", f"proposal {p.id}: approval {a['approvals']} by {a['governor']}", e)
        p.approvers.add(governor)
        p.approvals = a["approvals"]

    def _onProposalExecuted(self, e: DecodedEvent, a: Mapping[str, Any], t: int) -> None:
        p = self._open_proposal(e, a["proposalId"], t)
        if not self.state.governors.get(_lower(a["executor"])):
            self._flag("not-a-governor", f"proposal {a['proposalId']} executed by non-governor", e)
        self._governance_txs.add(e.tx_hash)
        if p is None:
            return
        if len(p.approvers) < self.state.threshold:
            self._flag(
                "governance-threshold", f"proposal {p.id} executed with {len(p.approvers)} of {self.state.threshold}",
                e, approvers=sorted(p.approvers),
            )  # fmt: skip
        p.executed = True

    def _onProposalCancelled(self, e: DecodedEvent, a: Mapping[str, Any], t: int) -> None:
        p = self.state.proposals.get(a["proposalId"])
        if p is None or p.executed or p.cancelled:
            self._flag("proposal-closed", f"cancel of unknown or closed proposal {a['proposalId']}", e)
            return
        p.cancelled = True

    # ------------------------------------------------------------------ ledger: declarations

    def _submitter(self, e: DecodedEvent, declarant: str, jurisdiction: int) -> None:
        trader = self.state.traders.get(_lower(declarant))
        if trader is None or trader.status != TRADER_ACTIVE:
            self._flag("inactive-trader", f"{e.name} by {declarant}, not an active trader", e, declarant=declarant)
        agency = self.state.agencies.get(jurisdiction)
        if agency is None or agency.status != AGENCY_ACTIVE or agency.roles & CUSTOMS_AUTHORITY == 0:
            self._flag("inactive-agency-action", f"{e.name} to jurisdiction #{jurisdiction}, not an active customs", e)

    def _new_declaration(self, e: DecodedEvent, a: Mapping[str, Any], jurisdiction: int, version: int,
                         previous: str, reference: str) -> DeclarationState:  # fmt: skip
        s = self.state
        declaration_id = a["declarationId"]
        if declaration_id in s.declarations:
            self._flag("declaration-exists", f"declaration {declaration_id} anchored twice", e)
        d = DeclarationState(
            id=declaration_id, declarant=a["declarant"], jurisdiction=jurisdiction, version=version,
            previous_id=previous, local_reference=reference, cid=a["cid"], documents=tuple(a["documents"]),
            block=e.block_number,
        )  # fmt: skip
        s.declarations[declaration_id] = d
        for doc in a["documents"]:
            s.supporting_owner.setdefault(doc["sha256"], declaration_id)
        return d

    def _onDeclarationSubmitted(self, e: DecodedEvent, a: Mapping[str, Any], t: int) -> None:
        self._submitter(e, a["declarant"], a["jurisdiction"])
        self._new_declaration(e, a, a["jurisdiction"], 1, ZERO32, a["localReference"])

    def _onDeclarationAmended(self, e: DecodedEvent, a: Mapping[str, Any], t: int) -> None:
        previous = self._declaration(e, a["previousId"])
        if previous is None:
            self._new_declaration(e, a, 0, a["version"], a["previousId"], ZERO32)
            return
        if _lower(previous.declarant) != _lower(a["declarant"]):
            self._flag("amendment-chain", f"amendment of {previous.id} by another declarant {a['declarant']}", e)
        if previous.status not in (SUBMITTED, ACCEPTED):
            self._flag(
                "amendment-of-closed", f"amendment of {previous.id} in status {previous.status}", e,
                previous=previous.id, status=previous.status,
            )  # fmt: skip
        if a["version"] != previous.version + 1:
            self._flag("amendment-chain", f"amendment version {a['version']} after {previous.version}", e)
        self._submitter(e, a["declarant"], previous.jurisdiction)
        d = self._new_declaration(e, a, previous.jurisdiction, a["version"], previous.id, previous.local_reference)
        d.mrn = previous.mrn
        previous.status = SUPERSEDED
        previous.superseded_by = d.id

    def _onDeclarationAccepted(self, e: DecodedEvent, a: Mapping[str, Any], t: int) -> None:
        d = self._declaration(e, a["declarationId"])
        if d is None:
            return
        self._actor(e, a["signer"], CUSTOMS_AUTHORITY, agency=d.jurisdiction)
        if d.status != SUBMITTED:
            self._flag("invalid-transition", f"accept of {d.id} in status {d.status}", e)
        mrn = a["mrn"]
        if mrn == ZERO32 or (mrn != d.mrn if d.mrn != ZERO32 else mrn in self.state.by_mrn):
            self._flag("invalid-mrn", f"MRN {mrn} of {d.id} reused or changed (kept {d.mrn})", e)
        d.mrn = mrn
        self.state.by_mrn[mrn] = d.id
        auto = d.channel == GREEN and d.required_stamps == 0
        if a["released"] != auto:
            self._flag("release-flag", f"accept of {d.id}: released={a['released']}, rules say {auto}", e)
        if a["released"]:
            self._check_release(e, d, None)
        d.status = RELEASED if a["released"] else ACCEPTED

    def _onChannelAssigned(self, e: DecodedEvent, a: Mapping[str, Any], t: int) -> None:
        d = self._declaration(e, a["declarationId"])
        if d is None:
            return
        key = self._actor(e, a["signer"], RISK_ORACLE)
        if key is not None and key.agency_index != a["agencyIndex"]:
            self._flag("wrong-agency", f"channel by key of #{key.agency_index} credited to #{a['agencyIndex']}", e)
        if d.status not in (SUBMITTED, ACCEPTED) or d.channel != 0:
            self._flag("invalid-transition", f"channel on {d.id} in status {d.status} / channel {d.channel}", e)
        channel, required = a["channel"], a["requiredStamps"]
        if not 1 <= channel <= 3 or required & ~ALL_STAMP_TYPES or (channel != GREEN and required == 0):
            self._flag("invalid-channel", f"channel {channel} with required stamps {required:#x}", e)
        d.channel, d.required_stamps, d.rule_set_hash = channel, required, a["ruleSetHash"]
        auto = d.status == ACCEPTED and channel == GREEN and required == 0
        if a["released"] != auto:
            self._flag("release-flag", f"channel on {d.id}: released={a['released']}, rules say {auto}", e)
        if a["released"]:
            self._check_release(e, d, None)
            d.status = RELEASED
        if self._channel_check is None:
            self.channels_unchecked += 1
            return
        self.channel_checks += 1
        assignment = ChannelAssignment(
            declaration_id=d.id, channel=channel, required_stamps=required, rule_set_hash=a["ruleSetHash"],
            agency_index=a["agencyIndex"], signer=a["signer"], block=e.block_number, block_time=t, tx=e.tx_hash,
            declaration=d, state=self.state,
        )  # fmt: skip
        self._channels_due.append((assignment, e))

    def _run_channel_checks(self) -> None:
        """Run the channel checks queued until the end of their block."""
        due, self._channels_due = self._channels_due, []
        assert self._channel_check is not None
        for assignment, e in due:
            for problem in self._channel_check(assignment):
                if isinstance(problem, ChannelProblem):
                    self._flag(
                        problem.code, f"channel of {assignment.declaration_id}: {problem.message}", e,
                        severity=problem.severity, rule_set=assignment.rule_set_hash, **problem.details,
                    )  # fmt: skip
                else:
                    self._flag("channel-rule-set", f"channel of {assignment.declaration_id}: {problem}", e,
                               rule_set=assignment.rule_set_hash)  # fmt: skip

    # ------------------------------------------------------------------ ledger: stamps

    def _onStampRecorded(self, e: DecodedEvent, a: Mapping[str, Any], t: int) -> None:
        s = self.state
        stamp_id, signer, signed_at = a["stampId"], a["signer"], a["signedAt"]
        relayed = _lower(a["relayer"]) != ZERO_ADDRESS
        role = PARTNER_CUSTOMS if a["stampType"] == EXPORT_CLEARANCE else INSPECTION_AGENCY
        key = self._actor(e, signer, role, at=signed_at, agency=a["agencyIndex"])
        if relayed:
            if signed_at > t:
                self._flag("stamp-signed-in-future", f"stamp {stamp_id} signed at {signed_at} > block time {t}", e)
            if key is not None and key.compromised_at:
                self._flag("stamp-by-compromised-key", f"relayed stamp {stamp_id} by a key reported compromised", e)
            s.nonces[_lower(signer)] = s.nonces.get(_lower(signer), 0) + 1
        elif signed_at != t:
            self._flag("stamp-time", f"direct stamp {stamp_id} signedAt {signed_at} ≠ block time {t}", e)
        if stamp_id in s.stamps:
            self._flag("stamp-exists", f"stamp {stamp_id} recorded twice", e)
        if not 0 <= a["stampType"] <= 7 or not 1 <= a["result"] <= 3:
            self._flag("invalid-stamp", f"stamp {stamp_id} type {a['stampType']} result {a['result']}", e)
        d = self._declaration(e, a["declarationId"])
        if d is not None:
            if d.status not in (ACCEPTED, HELD):
                self._flag("stamp-on-closed", f"stamp {stamp_id} on {d.id} in status {d.status}", e)
            d.stamps.append(stamp_id)
        s.stamps[stamp_id] = StampState(
            id=stamp_id, declaration_id=a["declarationId"], signer=_lower(signer), agency_index=a["agencyIndex"],
            stamp_type=a["stampType"], result=a["result"], signed_at=signed_at, relayer=a["relayer"],
            block=e.block_number, tx=e.tx_hash, report_cid=a["reportCid"],
        )  # fmt: skip
        if a["result"] != PASS:
            k = (a["declarationId"], a["stampType"])
            s.open_failures[k] = s.open_failures.get(k, 0) + 1

    def _onStampRevoked(self, e: DecodedEvent, a: Mapping[str, Any], t: int) -> None:
        self.state.stamps_referenced.add(a["stampId"])
        stamp = self.state.stamps.get(a["stampId"])
        if stamp is None:
            self._flag("unknown-stamp", f"revocation of unknown stamp {a['stampId']}", e)
            self._actor(e, a["signer"], ANY_ROLE)
            return
        self._actor(e, a["signer"], ANY_ROLE, agency=stamp.agency_index)
        if stamp.revoked or stamp.declaration_id != a["declarationId"]:
            self._flag("invalid-revocation", f"stamp {stamp.id} revoked twice or for another declaration", e)
            return
        stamp.revoked = True
        if stamp.result != PASS:
            k = (stamp.declaration_id, stamp.stamp_type)
            self.state.open_failures[k] = self.state.open_failures.get(k, 0) - 1

    # ------------------------------------------------------------------ ledger: decisions

    def _check_transition(self, e: DecodedEvent, d: DeclarationState, kind: int) -> int:
        allowed, to = TRANSITIONS.get(kind, (frozenset(), 0))
        if d.status not in allowed:
            self._flag("invalid-transition", f"decision {kind} on {d.id} in status {d.status}", e, kind=kind)
        return to

    def _check_release(self, e: DecodedEvent, d: DeclarationState, cited: tuple[str, ...] | None) -> None:
        """The RELEASE invariant, against the state at this event."""
        s = self.state
        if d.channel == 0:
            self._flag("release-without-channel", f"release of {d.id} without a channel", e)
        usable: dict[int, str] = {}
        candidates = cited if cited is not None else tuple(d.stamps)
        s.stamps_referenced.update(candidates)
        for stamp_id in candidates:
            stamp = s.stamps.get(stamp_id)
            key = s.keys.get(stamp.signer) if stamp else None
            ok = (
                stamp is not None and stamp.declaration_id == d.id and stamp.result == PASS and not stamp.revoked
                and key is not None and key.agency_index == stamp.agency_index and key.valid_at(stamp.signed_at)
            )  # fmt: skip
            if ok and stamp is not None:
                usable.setdefault(stamp.stamp_type, stamp_id)
            elif cited is not None:
                self._flag("release-cites-invalid-stamp", f"release of {d.id} cites unusable stamp {stamp_id}", e,
                           stamp=stamp_id)  # fmt: skip
        for t in range(16):
            if not (d.required_stamps >> t) & 1:
                continue
            if t not in usable:
                self._flag(
                    "release-without-pass-stamp", f"release of {d.id} without a valid PASS stamp of type {t}", e,
                    declaration=d.id, stamp_type=t,
                )  # fmt: skip
            if s.open_failures.get((d.id, t), 0):
                self._flag("release-with-open-failure", f"release of {d.id} with an open failure of type {t}", e)

    def _onDecisionProposed(self, e: DecodedEvent, a: Mapping[str, Any], t: int) -> None:
        d = self._declaration(e, a["declarationId"])
        if d is None:
            return
        self._actor(e, a["proposer"], CUSTOMS_AUTHORITY, agency=d.jurisdiction)
        kind, required = a["kind"], a["approvalsRequired"]
        if d.pending is not None or a["round"] != d.round + 1:
            self._flag("four-eyes", f"proposal round {a['round']} on {d.id} while round {d.round} open", e)
        if required != self.state.required(kind) or required < 2:
            self._flag("four-eyes", f"decision {kind} on {d.id} proposed needing {required} approvals", e)
        self._check_transition(e, d, kind)
        d.round = a["round"]
        d.pending = PendingState(
            kind=kind, approvals=1, approvals_required=required, reason_code=a["reasonCode"], round=a["round"],
            proposer=_lower(a["proposer"]), report_sha256=a["reportSha256"],
        )  # fmt: skip
        d.approvers[a["round"]] = [_lower(a["proposer"])]

    def _onDecisionApproved(self, e: DecodedEvent, a: Mapping[str, Any], t: int) -> None:
        d = self._declaration(e, a["declarationId"])
        if d is None:
            return
        self._actor(e, a["signer"], CUSTOMS_AUTHORITY, agency=d.jurisdiction)
        signer = _lower(a["signer"])
        if d.pending is None or d.pending.round != a["round"]:
            self._flag("four-eyes", f"approval of round {a['round']} on {d.id} with no such round open", e)
            return
        approvers = d.approvers.setdefault(a["round"], [])
        if signer in approvers or a["approvals"] != len(approvers) + 1:
            self._flag("four-eyes", f"approval {a['approvals']} of {d.id} by {a['signer']} is not distinct", e)
        approvers.append(signer)
        d.pending.approvals = a["approvals"]

    def _onDecisionCancelled(self, e: DecodedEvent, a: Mapping[str, Any], t: int) -> None:
        d = self._declaration(e, a["declarationId"])
        if d is None:
            return
        self._actor(e, a["signer"], CUSTOMS_AUTHORITY, agency=d.jurisdiction)
        if d.pending is None or d.pending.round != a["round"]:
            self._flag("four-eyes", f"cancel of round {a['round']} on {d.id} with no such round open", e)
        d.pending = None

    def _onDecisionRecorded(self, e: DecodedEvent, a: Mapping[str, Any], t: int) -> None:
        d = self._declaration(e, a["declarationId"])
        if d is None:
            return
        signer, kind, round_ = _lower(a["signer"]), a["kind"], a["round"]
        self._actor(e, signer, CUSTOMS_AUTHORITY, agency=d.jurisdiction)
        if round_ == 0:
            approvers: tuple[str, ...] = (signer,)
            if d.pending is not None:
                self._flag("four-eyes", f"single-signer decision on {d.id} while a round is open", e)
            if self.state.required(kind) > 1:
                self._flag(
                    "four-eyes", f"decision {kind} on {d.id} by one signer; {self.state.required(kind)} required", e,
                    required=self.state.required(kind), approvers=[signer],
                )  # fmt: skip
        else:
            earlier = d.approvers.get(round_, [])
            approvers = (*earlier, signer)
            pending = d.pending
            if pending is None or pending.round != round_ or pending.kind != kind:
                self._flag("four-eyes", f"decision on {d.id} closes round {round_} that was not open", e)
            required = pending.approvals_required if pending is not None else self.state.required(kind)
            distinct = {x for x in approvers if (k := self.state.keys.get(x)) and k.agency_index == d.jurisdiction}
            if signer in earlier or len(set(approvers)) != len(approvers) or len(distinct) < max(required, 2):
                self._flag(
                    "four-eyes", f"decision {kind} on {d.id}: {len(distinct)} distinct approvers, {required} required",
                    e, approvers=list(approvers), required=required,
                )  # fmt: skip
        to = self._check_transition(e, d, kind)
        if a["status"] != to:
            self._flag("invalid-transition", f"decision {kind} on {d.id} led to status {a['status']}, not {to}", e)
        passes = tuple(a["passStamps"])
        if kind == RELEASE:
            self._check_release(e, d, passes)
        d.pending = None
        d.status = a["status"]
        d.decisions.append(
            DecisionFact(
                kind=kind,
                status=a["status"],
                signer=signer,
                round=round_,
                approvers=approvers,
                pass_stamps=passes,
                block=e.block_number,
                tx=e.tx_hash,
            )  # fmt: skip
        )

    # ------------------------------------------------------------------ ledger: batches, alerts, settings

    def _onBatchAnchored(self, e: DecodedEvent, a: Mapping[str, Any], t: int) -> None:
        self._actor(e, a["signer"], ANY_ROLE, agency=a["agencyIndex"])
        root = a["root"]
        if root in self.state.batches or root == ZERO32 or a["leafCount"] == 0:
            self._flag("invalid-batch", f"batch {root} anchored twice or empty", e)
        self.state.batches[root] = BatchState(
            root=root, agency_index=a["agencyIndex"], leaf_count=a["leafCount"], kind=a["kind"], anchored_at=t,
            manifest_cid=a["manifestCid"], block=e.block_number,
        )  # fmt: skip

    def _onAlertRaised(self, e: DecodedEvent, a: Mapping[str, Any], t: int) -> None:
        s = self.state
        self._actor(e, a["signer"], ANY_ROLE, agency=a["agencyIndex"])
        if a["alertId"] != len(s.alerts) + 1 or a["subjectKind"] > 2:
            self._flag("invalid-alert", f"alert {a['alertId']} out of sequence or of unknown kind", e)
        s.alerts[a["alertId"]] = AlertState(
            id=a["alertId"], subject=a["subject"], subject_kind=a["subjectKind"], agency_index=a["agencyIndex"],
            reason_code=a["reasonCode"], raised_at=t, evidence_sha256=a["evidenceSha256"], raised_block=e.block_number,
        )  # fmt: skip
        s.active_alerts[a["subject"]] = s.active_alerts.get(a["subject"], 0) + 1
        s.alerts_by_subject.setdefault(a["subject"], []).append(a["alertId"])

    def _onAlertCleared(self, e: DecodedEvent, a: Mapping[str, Any], t: int) -> None:
        alert = self.state.alerts.get(a["alertId"])
        signer = _lower(a["signer"])
        governance = signer == self._registry or (self.state.bootstrapping and signer == self._deployer)
        if alert is None or not alert.active or alert.subject != a["subject"]:
            self._flag("invalid-alert", f"clear of unknown or inactive alert {a['alertId']}", e)
            return
        if not governance:
            self._actor(e, signer, ANY_ROLE, agency=alert.agency_index)
        alert.active = False
        alert.cleared_block = e.block_number
        self.state.active_alerts[alert.subject] -= 1

    def _onApprovalsRequiredChanged(self, e: DecodedEvent, a: Mapping[str, Any], t: int) -> None:
        self._governed(e)
        if not 0 <= a["kind"] <= 3 or not 1 <= a["approvals"] <= 5:
            self._flag("invalid-approvals", f"approvals required {a['approvals']} for kind {a['kind']}", e)
        self.state.approvals_required[a["kind"]] = a["approvals"]

    # ------------------------------------------------------------------ whole-history checks

    def finish(self) -> None:
        """Checks that need the whole history: amendment chains; signatures voided by a later compromise.

        Also runs the channel checks still waiting for the end of the last block (:meth:`settle`).
        """
        self.settle()
        s = self.state
        for d in s.declarations.values():
            if d.previous_id != ZERO32:
                previous = s.declarations.get(d.previous_id)
                if previous is None or previous.superseded_by != d.id or previous.version + 1 != d.version:
                    self._finding_at(
                        d, "amendment-chain", f"version {d.version} ({d.id}) does not follow {d.previous_id}"
                    )
                elif previous.mrn != ZERO32 and d.mrn != previous.mrn:
                    self._finding_at(d, "amendment-chain", f"{d.id} lost the MRN of {previous.id}")
            elif d.version != 1:
                self._finding_at(d, "amendment-chain", f"{d.id} is version {d.version} without a previous version")
            if d.superseded_by != ZERO32 and d.status != SUPERSEDED:
                self._finding_at(d, "amendment-chain", f"{d.id} superseded but in status {d.status}")
        for stamp in s.stamps.values():
            key = s.keys.get(stamp.signer)
            if key is not None and key.compromised_at and stamp.signed_at >= key.compromised_at:
                released = [
                    f.tx for f in s.declarations[stamp.declaration_id].decisions
                    if f.kind == RELEASE and stamp.id in f.pass_stamps
                ] if stamp.declaration_id in s.declarations else []  # fmt: skip
                self.findings.append(
                    Finding(
                        code="stamp-voided-by-compromise",
                        severity=Severity.WARNING,
                        message=f"stamp {stamp.id} was signed at {stamp.signed_at}, after its key's reported "
                        f"compromise time {key.compromised_at}",
                        block=stamp.block,
                        tx=stamp.tx,
                        event="StampRecorded",
                        details={"signer": stamp.signer, "releases_citing_it": released},
                    )  # fmt: skip
                )

    def settle(self) -> None:
        """Run the channel checks still waiting for the end of their block (the history ends here)."""
        if self._channels_due:
            self._run_channel_checks()

    def _finding_at(self, d: DeclarationState, code: str, message: str) -> None:
        self.findings.append(
            Finding(code=code, severity=Severity.ERROR, message=message, block=d.block, details={"declaration": d.id})
        )
