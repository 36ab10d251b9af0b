"""Stateful test: long random sequences of governance, declarations, amendments, channels, stamps
(direct and EIP-712 relayed), revocations, decisions (incl. dual control), batches and alerts.

Every rule *predicts* from the replayed state whether its action must succeed or revert, and checks
it. After every step the invariants run:

(a) no declaration is RELEASED without, at its release transaction, a non-revoked PASS stamp of
    each required type by a key valid when it signed, and no open FAIL / INCONCLUSIVE of that type
    (checked inside the replay, as of each release event);
(b) a SUPERSEDED or RELEASED declaration's view never changes afterwards;
(c) every successful state-changing transaction emitted exactly one event — except a governance
    ``execute``, which emits ProposalExecuted plus the executed function's own one event;
(d) a pure-Python replay of ALL events of both contracts (eth_getLogs up to the deployed
    consortium, then the logs of every receipt collected here — and the two are checked to be the
    complete log set) rebuilds exactly the state the views return.
"""

from __future__ import annotations

import collections
import itertools
import os
from typing import Any

import brownie.test
import eth_abi
import pytest
import requests
from brownie import accounts, web3
from eth_utils import keccak, to_checksum_address
from hypothesis import HealthCheck
from hypothesis import strategies as st
from testkit import (
    AGENCY_ACTIVE,
    AGENCY_SUSPENDED,
    CH_GREEN,
    CH_NONE,
    DOCUMENT_CHECK,
    EXPORT_CLEARANCE,
    FAIL,
    HOLD,
    INCONCLUSIVE,
    LAB_TEST,
    PASS,
    PHYSICAL_EXAM,
    REJECT,
    RELEASE,
    SEIZE,
    ST_ACCEPTED,
    ST_HELD,
    ST_REJECTED,
    ST_RELEASED,
    ST_SEIZED,
    ST_SUBMITTED,
    ST_SUPERSEDED,
    TRADER_ACTIVE,
    TRADER_SUSPENDED,
    ZERO32,
    ZERO_ADDRESS,
    b32,
    cid,
    docs,
    now,
    pin_next_timestamp,
    plain,
    revert_data,
    sha,
    sign_stamp,
    stamp_tuple,
)

USED_TYPES = (DOCUMENT_CHECK, PHYSICAL_EXAM, LAB_TEST, EXPORT_CLEARANCE)
RELEASE_FROM = {
    RELEASE: (ST_ACCEPTED, ST_HELD),
    HOLD: (ST_ACCEPTED,),
    REJECT: (ST_SUBMITTED, ST_ACCEPTED, ST_HELD),
    SEIZE: (ST_HELD,),
}
NEXT_STATUS = {RELEASE: ST_RELEASED, HOLD: ST_HELD, REJECT: ST_REJECTED, SEIZE: ST_SEIZED}
ANY_ROLE = 0x3F
CUSTOMS_ROLE, INSPECTION_ROLE, PARTNER_ROLE = 1, 2, 4


# ==================================================================================== state_machine


def _brownie_state_machine() -> Any:
    """brownie's ``state_machine`` helper.

    eth-brownie 1.22.2 ships ``brownie/test/stateful.py`` compiled with mypyc, and the compiled
    ``_BrownieStateMachine`` is ``@final``: the subclass brownie itself generates is rejected
    ("_BrownieStateMachine object expected; got ...BrownieStateMachine"). The wheel also ships the
    pure-Python source next to the extension; load that source so the very same helper runs
    interpreted."""
    import importlib.util
    from pathlib import Path

    source = Path(brownie.test.__file__).with_name("stateful.py")
    spec = importlib.util.spec_from_file_location("brownie_test_stateful_source", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.state_machine


state_machine = _brownie_state_machine()


# ==================================================================================== event codec


def _type_string(param: dict[str, Any]) -> str:
    if param["type"].startswith("tuple"):
        inner = ",".join(_type_string(p) for p in param["components"])
        return f"({inner}){param['type'][5:]}"
    return param["type"]


class EventCodec:
    """Decodes raw logs of both contracts from their ABIs (topic0 → event)."""

    def __init__(self, contracts: list[Any]) -> None:
        self.events: dict[bytes, tuple[str, list[dict[str, Any]]]] = {}
        for contract in contracts:
            for item in contract.abi:
                if item["type"] != "event":
                    continue
                signature = f"{item['name']}({','.join(_type_string(i) for i in item['inputs'])})"
                self.events[keccak(text=signature)] = (item["name"], item["inputs"])

    def decode(self, log: Any) -> tuple[str, dict[str, Any]]:
        topics = [bytes(t) for t in log["topics"]]
        name, inputs = self.events[topics[0]]
        indexed = [i for i in inputs if i["indexed"]]
        plain_inputs = [i for i in inputs if not i["indexed"]]
        values: dict[str, Any] = {}
        for param, topic in zip(indexed, topics[1:], strict=True):
            values[param["name"]] = eth_abi.decode([_type_string(param)], topic)[0]
        decoded = eth_abi.decode([_type_string(i) for i in plain_inputs], bytes(log["data"]))
        for param, value in zip(plain_inputs, decoded, strict=True):
            values[param["name"]] = value
        for k, v in values.items():
            if isinstance(v, str) and v.startswith("0x") and len(v) == 42:
                values[k] = to_checksum_address(v)
        return name, values


# ==================================================================================== replay


class Replay:
    """State rebuilt from events alone (plus each log's block timestamp and the deploy tx)."""

    def __init__(self, registry: str, ledger: str, deploy_tx: str, deployer: str) -> None:
        self.registry, self.ledger, self.deploy_tx = registry, ledger, deploy_tx
        self.agencies: dict[int, dict[str, Any]] = {}
        self.index_of: dict[bytes, int] = {}
        self.keys: dict[str, list[int]] = {}  # signer → [agencyIndex, validFrom, validUntil, compromisedAt]
        self.traders: dict[str, list[Any]] = {}  # account → [registrarIndex, status, aeo]
        self.governors: set[str] = set()
        self.threshold = 0
        self.epoch = 0
        self.lifetime = 0
        self.bootstrapper = deployer
        self.targets: set[str] = set()
        self.proposals: dict[int, dict[str, Any]] = {}
        self.approved: set[tuple[int, str]] = set()
        self.decls: dict[bytes, dict[str, Any]] = {}
        self.by_mrn: dict[bytes, bytes] = {}
        self.supporting: dict[bytes, bytes] = {}
        self.stamps: dict[bytes, dict[str, Any]] = {}
        self.failures: dict[tuple[bytes, int], int] = {}
        self.pending: dict[bytes, dict[str, Any]] = {}
        self.rounds: dict[bytes, int] = {}
        self.decision_approvals: set[tuple[bytes, int, str]] = set()
        self.required: dict[int, int] = {}
        self.batches: dict[bytes, tuple[int, int, int, int]] = {}
        self.alerts: dict[int, dict[str, Any]] = {}
        self.active_alerts: dict[bytes, int] = {}
        self.nonces: dict[str, int] = {}
        self.violations: list[str] = []

    # -- helpers shared with predictions -------------------------------------------------------
    def valid_at(self, signer: str, time: int) -> bool:
        k = self.keys.get(signer)
        return bool(k) and k[1] <= time < k[2] and (k[3] == 0 or time < k[3])

    def was_valid_signer(self, signer: str, agency_index: int, time: int) -> bool:
        k = self.keys.get(signer)
        return agency_index != 0 and bool(k) and k[0] == agency_index and self.valid_at(signer, time)

    def release_problem(self, did: bytes, cited: list[bytes]) -> str | None:
        """Why a RELEASE citing `cited` must fail now (None when it must pass)."""
        d = self.decls[did]
        if d["channel"] == CH_NONE:
            return "ChannelNotSet"
        if len(cited) > 16:
            return "TooMany"
        covered = 0
        for stamp_id in cited:
            s = self.stamps.get(stamp_id)
            if (
                not s
                or s["declarationId"] != did
                or s["result"] != PASS
                or s["revoked"]
                or not self.was_valid_signer(s["signer"], s["agencyIndex"], s["signedAt"])
            ):
                return f"StampInvalid {stamp_id.hex()[:8]}"
            covered |= 1 << s["stampType"]
        for t in range(16):
            if d["requiredStamps"] >> t & 1:
                if not covered >> t & 1:
                    return f"StampMissing {t}"
                if self.failures.get((did, t), 0):
                    return f"FailureOpen {t}"
        return None

    # -- apply ---------------------------------------------------------------------------------
    def apply(self, name: str, e: dict[str, Any], tx_hash: str, timestamp: int) -> None:
        getattr(self, f"_on_{name}")(e, tx_hash, timestamp)

    # registry
    def _on_AgencyAdded(self, e, tx, ts):
        self.agencies[e["agencyIndex"]] = {
            "id": e["agencyId"],
            "index": e["agencyIndex"],
            "status": AGENCY_ACTIVE,
            "roles": e["roles"],
            "country": e["country"],
            "encryptionKey": e["encryptionKey"],
            "name": e["name"],
            "ipfsEndpoint": e["ipfsEndpoint"],
        }
        self.index_of[e["agencyId"]] = e["agencyIndex"]

    def _on_AgencyRolesChanged(self, e, tx, ts):
        self.agencies[self.index_of[e["agencyId"]]]["roles"] = e["roles"]

    def _on_AgencyStatusChanged(self, e, tx, ts):
        self.agencies[self.index_of[e["agencyId"]]]["status"] = e["status"]

    def _on_AgencyProfileUpdated(self, e, tx, ts):
        a = self.agencies[self.index_of[e["agencyId"]]]
        a.update(name=e["name"], encryptionKey=e["encryptionKey"], ipfsEndpoint=e["ipfsEndpoint"])

    def _on_SignerKeyAdded(self, e, tx, ts):
        self.keys[e["signer"]] = [self.index_of[e["agencyId"]], e["validFrom"], e["validUntil"], 0]

    def _on_SignerKeyExpiryChanged(self, e, tx, ts):
        self.keys[e["signer"]][2] = e["validUntil"]

    def _on_SignerKeyCompromised(self, e, tx, ts):
        self.keys[e["signer"]][3] = e["compromisedAt"]

    def _on_TraderRegistered(self, e, tx, ts):
        self.traders[e["trader"]] = [e["registrarIndex"], TRADER_ACTIVE, e["aeo"]]

    def _on_TraderUpdated(self, e, tx, ts):
        self.traders[e["trader"]][1:] = [e["status"], e["aeo"]]

    def _bump_epoch(self, tx):
        if tx != self.deploy_tx:  # the constructor sets up governance without an epoch change
            self.epoch += 1

    def _on_GovernorAdded(self, e, tx, ts):
        self.governors.add(e["governor"])
        self._bump_epoch(tx)

    def _on_GovernorRemoved(self, e, tx, ts):
        self.governors.discard(e["governor"])
        self._bump_epoch(tx)

    def _on_ThresholdChanged(self, e, tx, ts):
        self.threshold = e["threshold"]
        self._bump_epoch(tx)

    def _on_ProposalLifetimeChanged(self, e, tx, ts):
        self.lifetime = e["lifetime"]

    def _on_GovernedTargetSet(self, e, tx, ts):
        (self.targets.add if e["allowed"] else self.targets.discard)(e["target"])

    def _on_BootstrapFinished(self, e, tx, ts):
        self.bootstrapper = ZERO_ADDRESS

    def _on_ProposalCreated(self, e, tx, ts):
        self.proposals[e["proposalId"]] = {
            "proposer": e["proposer"],
            "target": e["target"],
            "expiresAt": e["expiresAt"],
            "epoch": e["epoch"],
            "approvals": 1,
            "executed": False,
            "cancelled": False,
            "callData": e["callData"],
        }
        self.approved.add((e["proposalId"], e["proposer"]))

    def _on_ProposalApproved(self, e, tx, ts):
        self.proposals[e["proposalId"]]["approvals"] = e["approvals"]
        self.approved.add((e["proposalId"], e["governor"]))

    def _on_ProposalExecuted(self, e, tx, ts):
        self.proposals[e["proposalId"]]["executed"] = True

    def _on_ProposalCancelled(self, e, tx, ts):
        self.proposals[e["proposalId"]]["cancelled"] = True

    # ledger
    def _new_declaration(self, did, declarant, jurisdiction, version, previous, mrn, documents):
        self.decls[did] = {
            "declarant": declarant,
            "jurisdiction": jurisdiction,
            "status": ST_SUBMITTED,
            "channel": CH_NONE,
            "requiredStamps": 0,
            "version": version,
            "mrn": mrn,
            "ruleSetHash": ZERO32,
            "previousId": previous,
            "supersededBy": ZERO32,
        }
        for _, document_sha, _ in documents:
            self.supporting.setdefault(document_sha, did)

    def _on_DeclarationSubmitted(self, e, tx, ts):
        self._new_declaration(e["declarationId"], e["declarant"], e["jurisdiction"], 1, ZERO32, ZERO32, e["documents"])

    def _on_DeclarationAmended(self, e, tx, ts):
        previous = self.decls[e["previousId"]]
        self._new_declaration(
            e["declarationId"],
            e["declarant"],
            previous["jurisdiction"],
            e["version"],
            e["previousId"],
            previous["mrn"],
            e["documents"],
        )
        previous.update(status=ST_SUPERSEDED, supersededBy=e["declarationId"])

    def _check_auto_release(self, did):
        d = self.decls[did]
        if not (d["channel"] == CH_GREEN and d["requiredStamps"] == 0):
            self.violations.append(f"auto-release of {did.hex()[:8]} without GREEN/no stamps")

    def _on_DeclarationAccepted(self, e, tx, ts):
        d = self.decls[e["declarationId"]]
        d["mrn"] = e["mrn"]
        self.by_mrn[e["mrn"]] = e["declarationId"]
        d["status"] = ST_RELEASED if e["released"] else ST_ACCEPTED
        if e["released"]:
            self._check_auto_release(e["declarationId"])

    def _on_ChannelAssigned(self, e, tx, ts):
        d = self.decls[e["declarationId"]]
        d.update(channel=e["channel"], requiredStamps=e["requiredStamps"], ruleSetHash=e["ruleSetHash"])
        if e["released"]:
            d["status"] = ST_RELEASED
            self._check_auto_release(e["declarationId"])

    def _on_StampRecorded(self, e, tx, ts):
        self.stamps[e["stampId"]] = {
            "declarationId": e["declarationId"],
            "signer": e["signer"],
            "agencyIndex": e["agencyIndex"],
            "stampType": e["stampType"],
            "result": e["result"],
            "revoked": False,
            "signedAt": e["signedAt"],
        }
        if e["result"] != PASS:
            key = (e["declarationId"], e["stampType"])
            self.failures[key] = self.failures.get(key, 0) + 1
        if e["relayer"] != ZERO_ADDRESS:
            self.nonces[e["signer"]] = self.nonces.get(e["signer"], 0) + 1

    def _on_StampRevoked(self, e, tx, ts):
        s = self.stamps[e["stampId"]]
        s["revoked"] = True
        if s["result"] != PASS:
            self.failures[(s["declarationId"], s["stampType"])] -= 1

    def _on_DecisionProposed(self, e, tx, ts):
        did = e["declarationId"]
        self.pending[did] = {
            "kind": e["kind"],
            "approvals": 1,
            "approvalsRequired": e["approvalsRequired"],
            "reasonCode": e["reasonCode"],
            "round": e["round"],
            "proposer": e["proposer"],
            "reportSha256": e["reportSha256"],
        }
        self.rounds[did] = e["round"]
        self.decision_approvals.add((did, e["round"], e["proposer"]))

    def _on_DecisionApproved(self, e, tx, ts):
        self.pending[e["declarationId"]]["approvals"] = e["approvals"]
        self.decision_approvals.add((e["declarationId"], e["round"], e["signer"]))

    def _on_DecisionCancelled(self, e, tx, ts):
        del self.pending[e["declarationId"]]

    def _on_DecisionRecorded(self, e, tx, ts):
        did = e["declarationId"]
        if e["kind"] == RELEASE:  # invariant (a), as of this very event
            problem = self.release_problem(did, list(e["passStamps"]))
            if problem:
                self.violations.append(f"RELEASE of {did.hex()[:8]} in tx {tx}: {problem}")
        self.decls[did]["status"] = e["status"]
        if e["round"] != 0:  # the final approval closes the round; the contract keeps no flag for it
            self.pending.pop(did, None)

    def _on_BatchAnchored(self, e, tx, ts):
        self.batches[e["root"]] = (e["agencyIndex"], e["leafCount"], e["kind"], ts)

    def _on_AlertRaised(self, e, tx, ts):
        self.alerts[e["alertId"]] = {
            "subject": e["subject"],
            "subjectKind": e["subjectKind"],
            "agencyIndex": e["agencyIndex"],
            "reasonCode": e["reasonCode"],
            "active": True,
            "raisedAt": ts,
            "evidenceSha256": e["evidenceSha256"],
        }
        self.active_alerts[e["subject"]] = self.active_alerts.get(e["subject"], 0) + 1

    def _on_AlertCleared(self, e, tx, ts):
        self.alerts[e["alertId"]]["active"] = False
        self.active_alerts[e["subject"]] -= 1

    def _on_ApprovalsRequiredChanged(self, e, tx, ts):
        self.required[e["kind"]] = e["approvals"]

    def anchor_of(self, h: bytes) -> tuple[int, bytes]:
        if h == ZERO32:
            return (0, ZERO32)
        if h in self.decls:
            return (1, h)
        if h in self.supporting:
            return (2, self.supporting[h])
        if h in self.stamps:
            return (3, self.stamps[h]["declarationId"])
        if h in self.batches:
            return (4, h)
        return (0, ZERO32)


# ==================================================================================== batched views


class ViewBatch:
    """Many eth_calls in one JSON-RPC batch request (keeps the per-step check fast)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, list[Any], Any]] = []

    def add(self, method: Any, args: list[Any], expected: Any) -> None:
        self.calls.append((method, args, expected))

    def check(self) -> None:
        uri = web3.provider.endpoint_uri
        payload = [
            {
                "jsonrpc": "2.0",
                "id": i,
                "method": "eth_call",
                "params": [{"to": m._address, "data": m.encode_input(*args)}, "latest"],
            }
            for i, (m, args, _) in enumerate(self.calls)
        ]
        responses = {r["id"]: r for r in requests.post(uri, json=payload, timeout=60).json()}
        mismatches = []
        for i, (method, args, expected) in enumerate(self.calls):
            result = responses[i].get("result")
            assert result is not None, f"{method._name}{args}: {responses[i]}"
            actual = plain(method.decode_output(result))
            if actual != plain(expected):
                mismatches.append(f"{method._name}({args}) view={actual} replay={plain(expected)}")
        assert not mismatches, "replay differs from views:\n" + "\n".join(mismatches[:10])


# ==================================================================================== machine


class LedgerMachine:
    st_pick = st.integers(min_value=0, max_value=10**6)
    st_flag = st.booleans()
    st_docs = st.integers(min_value=0, max_value=3)
    st_kind = st.sampled_from([RELEASE, RELEASE, HOLD, REJECT, SEIZE])
    st_channel = st.sampled_from([1, 1, 2, 3])
    st_mask = st.sampled_from(
        [0, 0, 1 << DOCUMENT_CHECK, 1 << LAB_TEST, (1 << DOCUMENT_CHECK) | (1 << LAB_TEST), 1 << EXPORT_CLEARANCE]
    )
    st_type = st.sampled_from(USED_TYPES)
    st_result = st.sampled_from([PASS, PASS, PASS, FAIL, INCONCLUSIVE])
    st_approvals = st.integers(min_value=1, max_value=3)
    st_mode = st.sampled_from(["valid", "valid", "valid", "none", "all"])
    st_seconds = st.integers(min_value=1, max_value=2 * 86400)

    def __init__(cls, c: Any, codec: EventCodec, baseline: list[tuple[str, dict, str, int]], base_block: int) -> None:
        cls.c = c
        cls.codec = codec
        cls.baseline = baseline
        cls.base_block = base_block
        cls.counter = itertools.count()
        cls.stats = STATS

    # -- per example ---------------------------------------------------------------------------
    def setup(self) -> None:
        c = self.c
        self.receipts: list[Any] = []
        self.frozen: dict[bytes, dict[str, Any]] = {}
        self.replay = self.rebuild()
        self.cn_keys = [c.keys.cn, c.keys.cn2, c.keys.cn3]
        self.governor_pool = [*c.governors, accounts[4], accounts[5]]
        self.jurisdiction_keys = {c.index["CN"]: self.cn_keys, c.index["NL"]: [c.keys.nl]}
        self.traders = [c.traders.t1, c.traders.t2]

    def rebuild(self) -> Replay:
        c = self.c
        replay = Replay(c.reg.address, c.led.address, c.reg.tx.txid, c.reg.tx.sender.address)
        for name, values, tx_hash, ts in self.baseline:
            replay.apply(name, values, tx_hash, ts)
        for receipt in self.receipts:
            for log in receipt.logs:
                name, values = self.codec.decode(log)
                replay.apply(name, values, receipt.txid, receipt.timestamp)
        return replay

    # -- transaction helpers -------------------------------------------------------------------
    def send(self, method: Any, args: list[Any], sender: Any, expect_ok: bool, why: str = "") -> Any:
        """Send when the model says it must succeed; otherwise check that it reverts (no tx).

        The next block's timestamp is pinned to latest + 1 — the time the predictions assumed."""
        pin_next_timestamp()
        if not expect_ok:
            revert_data(method, args, sender)  # raises if the call would succeed
            self.stats["refused " + method.abi["name"]] += 1
            return None
        tx = method(*args, {"from": sender})
        assert tx.status == 1
        decoded = [self.codec.decode(log) for log in tx.logs]
        names = [name for name, _ in decoded]
        for name, values in decoded:
            if name == "StampRecorded" and values["relayer"] != ZERO_ADDRESS:
                self.stats["relayed stamp"] += 1
            if name == "DecisionRecorded" and values["kind"] == RELEASE:
                self.stats["release decision" + (" (dual control)" if values["round"] else "")] += 1
        # invariant (c): one event per change; a governance execute adds ProposalExecuted in front
        if method.abi["name"] == "execute":
            assert len(names) == 2 and names[0] == "ProposalExecuted", names
            # the first event is the registry's, the second the executed function's, from its target
            target = self.replay.proposals[args[0]]["target"]
            assert to_checksum_address(tx.logs[0]["address"]) == self.c.reg.address
            assert to_checksum_address(tx.logs[1]["address"]) == target
        else:
            assert len(names) == 1, (method._name, names)
        self.receipts.append(tx)
        self.stats.update(names)
        self.replay = self.rebuild()
        return tx

    def fresh(self, prefix: str) -> str:
        return f"{prefix}-{next(self.counter)}"

    def pick(self, items: list[Any], pick: int) -> Any:
        return items[pick % len(items)] if items else None

    def key_ok(self, key: Any, role_mask: int) -> bool:
        """AgencyRegistry.authorize(key, mask) would pass in the next block."""
        r = self.replay
        k = r.keys.get(key.address)
        if not k or not r.valid_at(key.address, now() + 1):
            return False
        agency = r.agencies[k[0]]
        return agency["status"] == AGENCY_ACTIVE and agency["roles"] & role_mask != 0

    def agency_of(self, key: Any) -> int:
        return self.replay.keys[key.address][0]

    # -- seed ----------------------------------------------------------------------------------
    def initialize_declarations(self, n_docs="st_docs", flag="st_flag"):
        """Every run starts with a submitted and an accepted declaration to act on."""
        c = self.c
        for i in range(2):
            label = self.fresh("sm-seed")
            self.send(
                c.led.submitDeclaration,
                [c.agencies["CN"], b32(label), sha(label), cid(label), docs(label, n_docs)],
                self.traders[i],
                True,
            )
        did = sorted(self.replay.decls)[0]
        self.send(c.led.acceptDeclaration, [did, b32(self.fresh("MRN"))], c.keys.cn, True)
        if flag:
            self.send(c.led.assignChannel, [did, 2, 1 << LAB_TEST, sha("seed-rules")], c.keys.oracle, True)

    def initialize_dual_control(self, approvals="st_approvals"):
        """Most runs put RELEASE under dual control (K = 2 or 3 distinct CN signers)."""
        if approvals > 1:
            self.govern(self.c.led.setApprovalsRequired, [RELEASE, approvals])

    # -- governance ----------------------------------------------------------------------------
    def govern(self, method: Any, args: list[Any], expect_ok: bool = True) -> None:
        c, r = self.c, self.replay
        governors = self.live_governors()
        data = method.encode_input(*args)
        tx = self.send(c.reg.propose, [method._address, data], governors[0], True)
        pid = tx.events["ProposalCreated"]["proposalId"]
        for g in governors[1 : r.threshold]:
            self.send(c.reg.approve, [pid], g, True)
        self.send(c.reg.execute, [pid], governors[0], expect_ok)
        if not expect_ok:  # the refused call leaves the proposal open: withdraw it
            self.send(c.reg.cancel, [pid], governors[0], True)

    def rule_set_dual_control(self, kind="st_kind", approvals="st_approvals"):
        self.govern(self.c.led.setApprovalsRequired, [kind, approvals])

    def rule_toggle_lab_agency(self, pick="st_pick"):
        """Suspend the lab now and then (rarely, so inspections mostly go through); reactivate it."""
        r, c = self.replay, self.c
        if r.agencies[c.index["LAB"]]["status"] == AGENCY_SUSPENDED:
            self.govern(c.reg.setAgencyStatus, [c.agencies["LAB"], AGENCY_ACTIVE])
        elif pick % 3 == 0:
            self.govern(c.reg.setAgencyStatus, [c.agencies["LAB"], AGENCY_SUSPENDED])

    def rule_threshold(self, flag="st_flag"):
        threshold = 3 if flag else 2
        self.govern(self.c.reg.setThreshold, [threshold], expect_ok=threshold <= len(self.replay.governors))

    def rule_open_proposal(self, flag="st_flag"):
        c = self.c
        method = c.reg.setProposalLifetime if flag else c.led.setApprovalsRequired
        args = [7200 + next(self.counter)] if flag else [SEIZE, 2]
        self.send(c.reg.propose, [method._address, method.encode_input(*args)], self.live_governors()[-1], True)

    def rule_finish_open_proposal(self, pick="st_pick", flag="st_flag"):
        """Approve / execute a proposal left open, possibly after it expired or went stale."""
        c, r = self.c, self.replay
        open_ids = [p for p, v in r.proposals.items() if not v["executed"] and not v["cancelled"]]
        pid = self.pick(open_ids, pick)
        if pid is None:
            return
        p = r.proposals[pid]
        live = now() + 1 < p["expiresAt"] and p["epoch"] == r.epoch
        approver = next((g for g in self.live_governors() if (pid, g.address) not in r.approved), None)
        if flag and approver is not None:
            self.send(c.reg.approve, [pid], approver, live)
        else:
            executor = self.live_governors()[0]
            self.send(c.reg.execute, [pid], executor, live and r.proposals[pid]["approvals"] >= r.threshold)

    def rule_cancel_open_proposal(self, pick="st_pick"):
        c, r = self.c, self.replay
        open_ids = [p for p, v in r.proposals.items() if not v["executed"] and not v["cancelled"]]
        pid = self.pick(open_ids, pick)
        if pid is not None:
            proposer = next(g for g in self.governor_pool if g.address == r.proposals[pid]["proposer"])
            self.send(c.reg.cancel, [pid], proposer, True)

    def rule_compromise_lab2(self, seconds="st_seconds"):
        c, r = self.c, self.replay
        k = r.keys[c.keys.lab2.address]
        at = max(k[1], now() - seconds % 600)
        ok = r.valid_at(c.keys.lab.address, now() + 1) and (k[3] == 0 or at < k[3])
        self.send(c.reg.reportKeyCompromised, [c.keys.lab2, at], c.keys.lab, ok)

    def rule_toggle_trader(self):
        c, r = self.c, self.replay
        t2 = c.traders.t2.address
        status = TRADER_SUSPENDED if r.traders[t2][1] == TRADER_ACTIVE else TRADER_ACTIVE
        self.send(c.reg.updateTrader, [t2, status, False], c.keys.registrar, True)

    def rule_sleep(self, seconds="st_seconds"):
        web3.provider.make_request("evm_setNextBlockTimestamp", [now() + seconds])
        web3.provider.make_request("evm_mine", [])

    def rule_rotate_key(self, pick="st_pick", seconds="st_seconds"):
        """Governance moves a key's end of validity (shortening it to soon, or extending it)."""
        c = self.c
        key = self.pick([c.keys.lab2, c.keys.cn3, c.keys.partner], pick)
        self.govern(c.reg.setSignerKeyExpiry, [key, now() + 1 + seconds % 7200])

    def rule_governors(self, pick="st_pick", flag="st_flag"):
        """Add a governor, or remove one (refused when fewer than the threshold would remain)."""
        c, r = self.c, self.replay
        live = self.live_governors()
        if flag:
            candidate = next((a for a in self.governor_pool if a.address not in r.governors), None)
            if candidate is not None:
                self.govern(c.reg.addGovernor, [candidate])
        else:
            self.govern(c.reg.removeGovernor, [self.pick(live, pick)], expect_ok=len(live) - 1 >= r.threshold)

    def live_governors(self) -> list[Any]:
        return [g for g in self.governor_pool if g.address in self.replay.governors]

    # -- declarations --------------------------------------------------------------------------
    def rule_submit(self, pick="st_pick", n_docs="st_docs", flag="st_flag"):
        c, r = self.c, self.replay
        trader = self.pick(self.traders, pick)
        label = self.fresh("sm-decl")
        jurisdiction = c.agencies["CN" if flag or pick % 3 else "NL"]
        documents = docs(label, n_docs)
        if n_docs == 3:
            documents[0] = docs("shared", 1)[0]  # a document several declarations carry
        ok = r.traders[trader.address][1] == TRADER_ACTIVE
        self.send(
            c.led.submitDeclaration, [jurisdiction, b32(label[-30:]), sha(label), cid(label), documents], trader, ok
        )

    def rule_amend(self, pick="st_pick", flag="st_flag"):
        c, r = self.c, self.replay
        did = self.pick(sorted(r.decls), pick)
        if did is None:
            return
        d = r.decls[did]
        sender = (
            next(t for t in self.traders if t.address == d["declarant"]) if flag else self.pick(self.traders, pick + 1)
        )
        label = self.fresh("sm-amend")
        ok = (
            sender.address == d["declarant"]
            and d["status"] in (ST_SUBMITTED, ST_ACCEPTED)
            and r.traders[sender.address][1] == TRADER_ACTIVE
        )
        self.send(c.led.amendDeclaration, [did, sha(label), cid(label), docs(label, pick % 3)], sender, ok)

    def rule_accept(self, pick="st_pick", flag="st_flag"):
        c, r = self.c, self.replay
        did = self.pick(sorted(r.decls), pick)
        if did is None:
            return
        d = r.decls[did]
        key = self.jurisdiction_keys[d["jurisdiction"]][0]
        if flag or d["mrn"] != ZERO32 and pick % 2:
            mrn = d["mrn"] if d["mrn"] != ZERO32 else b32(self.fresh("MRN"))
        else:
            mrn = self.pick(sorted(r.by_mrn), pick) or b32(self.fresh("MRN"))
        mrn_ok = mrn != ZERO32 and (mrn == d["mrn"] if d["mrn"] != ZERO32 else mrn not in r.by_mrn)
        ok = d["status"] == ST_SUBMITTED and mrn_ok
        self.send(c.led.acceptDeclaration, [did, mrn], key, ok)

    def rule_channel(self, pick="st_pick", channel="st_channel", mask="st_mask"):
        c, r = self.c, self.replay
        did = self.pick(sorted(r.decls), pick)
        if did is None:
            return
        d = r.decls[did]
        ok = (
            d["status"] in (ST_SUBMITTED, ST_ACCEPTED)
            and d["channel"] == CH_NONE
            and (channel == CH_GREEN or mask != 0)
        )
        self.send(c.led.assignChannel, [did, channel, mask, sha(f"rules-{channel}-{mask}")], c.keys.oracle, ok)

    # -- stamps --------------------------------------------------------------------------------
    def _stamp_target(self, pick):
        r = self.replay
        live = [d for d, v in sorted(r.decls.items()) if v["status"] in (ST_ACCEPTED, ST_HELD)]
        return self.pick(live, pick) if live and pick % 5 else self.pick(sorted(r.decls), pick)

    def rule_stamp(self, pick="st_pick", stamp_type="st_type", result="st_result", flag="st_flag"):
        c, r = self.c, self.replay
        did = self._stamp_target(pick)
        if did is None:
            return
        role = PARTNER_ROLE if stamp_type == EXPORT_CLEARANCE else INSPECTION_ROLE
        key = c.keys.partner if stamp_type == EXPORT_CLEARANCE else (c.keys.lab if flag else c.keys.lab2)
        report = sha(self.fresh("sm-report"))
        ok = self.key_ok(key, role) and r.decls[did]["status"] in (ST_ACCEPTED, ST_HELD)
        self.send(c.led.recordStamp, [did, stamp_type, result, report, cid(report.hex())], key, ok)

    def rule_relay_stamp(self, pick="st_pick", stamp_type="st_type", result="st_result", flag="st_flag"):
        c, r = self.c, self.replay
        did = self._stamp_target(pick)
        if did is None:
            return
        role = PARTNER_ROLE if stamp_type == EXPORT_CLEARANCE else INSPECTION_ROLE
        key = c.keys.partner if stamp_type == EXPORT_CLEARANCE else (c.keys.lab if flag else c.keys.lab2)
        report = self.fresh("sm-signed")
        message = {
            "declarationId": did,
            "stampType": stamp_type,
            "result": result,
            "reportSha256": sha(report),
            "reportCid": cid(report),
            "signer": key.address,
            "signedAt": now() - 5,
            "nonce": r.nonces.get(key.address, 0),
            "deadline": now() + 3600,
        }
        signature = sign_stamp(key, message, ledger=c.led)
        k = r.keys[key.address]
        agency = r.agencies[k[0]]
        ok = (
            k[3] == 0
            and r.valid_at(key.address, message["signedAt"])
            and agency["status"] == AGENCY_ACTIVE
            and agency["roles"] & role
            and r.decls[did]["status"] in (ST_ACCEPTED, ST_HELD)
        )
        self.send(c.led.relayStamp, [stamp_tuple(message), signature], c.outsider, bool(ok))

    def rule_revoke(self, pick="st_pick", flag="st_flag"):
        c, r = self.c, self.replay
        stamp_id = self.pick(sorted(r.stamps), pick)
        if stamp_id is None:
            return
        s = r.stamps[stamp_id]
        issuer_keys = {c.index["LAB"]: c.keys.lab, c.index["PARTNER"]: c.keys.partner}
        key = issuer_keys[s["agencyIndex"]] if flag else c.keys.auditor
        ok = self.key_ok(key, ANY_ROLE) and self.agency_of(key) == s["agencyIndex"] and not s["revoked"]
        self.send(c.led.revokeStamp, [stamp_id, pick % 100], key, ok)

    # -- decisions -----------------------------------------------------------------------------
    def _cite(self, did, mode):
        r = self.replay
        stamps = sorted(r.stamps.items())
        if mode == "none":
            return []
        if mode == "all":
            return [sid for sid, s in stamps if s["declarationId"] == did][:16]
        cited, covered = [], 0
        for sid, s in stamps:
            if (
                s["declarationId"] == did
                and s["result"] == PASS
                and not s["revoked"]
                and not covered >> s["stampType"] & 1
                and r.was_valid_signer(s["signer"], s["agencyIndex"], s["signedAt"])
            ):
                cited.append(sid)
                covered |= 1 << s["stampType"]
        return cited

    def _decision_ok(self, did, kind, cited):
        r = self.replay
        d = r.decls[did]
        if d["status"] not in RELEASE_FROM[kind]:
            return False
        return kind != RELEASE or r.release_problem(did, cited) is None

    def rule_decide(self, pick="st_pick", kind="st_kind", mode="st_mode"):
        c, r = self.c, self.replay
        fitting = [d for d, v in sorted(r.decls.items()) if v["status"] in RELEASE_FROM[kind]]
        did = self.pick(fitting, pick) if fitting and pick % 4 else self.pick(sorted(r.decls), pick)
        if did is None:
            return
        key = self.pick(self.jurisdiction_keys[r.decls[did]["jurisdiction"]], pick)
        cited = self._cite(did, mode)
        ok = self.key_ok(key, CUSTOMS_ROLE) and did not in r.pending and self._decision_ok(did, kind, cited)
        self.send(c.led.decide, [did, kind, pick % 50, sha(f"decision-{pick}"), cited], key, ok)

    def rule_inspect_and_release(self, pick="st_pick", flag="st_flag", mask="st_mask"):
        """The happy path: accept, channel, PASS stamps for every missing required type, RELEASE."""
        c = self.c
        r = self.replay
        ready = [
            d
            for d, v in sorted(r.decls.items())
            if v["status"] in (ST_SUBMITTED, ST_ACCEPTED, ST_HELD) and d not in r.pending
        ]
        did = self.pick(ready, pick)
        if did is None:
            return
        d = r.decls[did]
        customs = self.jurisdiction_keys[d["jurisdiction"]][0]
        if d["channel"] == CH_NONE:
            if d["status"] == ST_HELD:  # held before any channel: it can no longer get one
                return
            channel = CH_GREEN if mask == 0 else 2 + pick % 2
            self.send(c.led.assignChannel, [did, channel, mask, sha("rules-happy")], c.keys.oracle, True)
        if self.replay.decls[did]["status"] == ST_SUBMITTED:
            mrn = d["mrn"] if d["mrn"] != ZERO32 else b32(self.fresh("MRN"))
            self.send(c.led.acceptDeclaration, [did, mrn], customs, True)
        r = self.replay
        if r.decls[did]["status"] == ST_RELEASED:  # GREEN without stamps: released on acceptance
            return
        have = 0
        for sid in self._cite(did, "valid"):
            have |= 1 << r.stamps[sid]["stampType"]
        for t in USED_TYPES:
            if r.decls[did]["requiredStamps"] >> t & 1 and not have >> t & 1:
                key = c.keys.partner if t == EXPORT_CLEARANCE else (c.keys.lab if flag else c.keys.lab2)
                role = PARTNER_ROLE if t == EXPORT_CLEARANCE else INSPECTION_ROLE
                report = sha(self.fresh("sm-pass"))
                ok = self.key_ok(key, role)
                self.send(c.led.recordStamp, [did, t, PASS, report, cid(report.hex())], key, ok)
                if not ok:
                    return
        cited = self._cite(did, "valid")
        key = self.pick(self.jurisdiction_keys[r.decls[did]["jurisdiction"]], pick)
        ok = self.key_ok(key, CUSTOMS_ROLE) and self._decision_ok(did, RELEASE, cited)
        self.send(c.led.decide, [did, RELEASE, 1, sha("release"), cited], key, ok)
        if did in self.replay.pending:  # dual control: a second, distinct signer completes it
            p = self.replay.pending[did]
            for other in self.jurisdiction_keys[r.decls[did]["jurisdiction"]]:
                if did not in self.replay.pending:
                    break
                if (did, p["round"], other.address) not in self.replay.decision_approvals:
                    ok = self.key_ok(other, CUSTOMS_ROLE) and self._decision_ok(did, RELEASE, cited)
                    self.send(c.led.approveDecision, [did, cited], other, ok)

    def rule_approve_decision(self, pick="st_pick", mode="st_mode"):
        c, r = self.c, self.replay
        did = self.pick(sorted(r.pending), pick)
        if did is None:
            return
        p = r.pending[did]
        key = self.pick(self.jurisdiction_keys[r.decls[did]["jurisdiction"]], pick)
        cited = self._cite(did, mode)
        fresh_signer = (did, p["round"], key.address) not in r.decision_approvals
        final = p["approvals"] + 1 >= p["approvalsRequired"]
        ok = self.key_ok(key, CUSTOMS_ROLE) and fresh_signer and (not final or self._decision_ok(did, p["kind"], cited))
        self.send(c.led.approveDecision, [did, cited], key, ok)

    def rule_cancel_decision(self, pick="st_pick"):
        c, r = self.c, self.replay
        did = self.pick(sorted(r.decls), pick)
        if did is None:
            return
        key = self.jurisdiction_keys[r.decls[did]["jurisdiction"]][-1]
        self.send(c.led.cancelDecision, [did], key, self.key_ok(key, CUSTOMS_ROLE) and did in r.pending)

    # -- batches & alerts ----------------------------------------------------------------------
    def rule_batch(self, pick="st_pick", flag="st_flag"):
        c, r = self.c, self.replay
        root = self.pick(sorted(r.batches), pick) if flag and r.batches else sha(self.fresh("sm-root"))
        key = self.pick([c.keys.lab, c.keys.auditor, c.keys.cn, c.keys.partner], pick)
        ok = root not in r.batches and self.key_ok(key, ANY_ROLE)
        self.send(c.led.anchorBatch, [root, 1 + pick % 1000, pick % 4, cid(root.hex())], key, ok)

    def rule_raise_alert(self, pick="st_pick"):
        c, r = self.c, self.replay
        subjects = [(1, d) for d in sorted(r.decls)] + [
            (0, sha("shared/doc0")),
            (2, bytes(12) + bytes.fromhex(c.traders.t2.address[2:])),
        ]
        kind, subject = self.pick(subjects, pick)
        key = self.pick([c.keys.auditor, c.keys.cn, c.keys.lab], pick)
        self.send(
            c.led.raiseAlert, [kind, subject, pick % 10, sha(f"evidence-{pick}")], key, self.key_ok(key, ANY_ROLE)
        )

    def rule_clear_alert(self, pick="st_pick", flag="st_flag"):
        c, r = self.c, self.replay
        alert_id = self.pick(sorted(r.alerts), pick)
        if alert_id is None:
            return
        a = r.alerts[alert_id]
        if flag and pick % 3 == 0:
            self.govern(c.led.clearAlert, [alert_id, 1], expect_ok=a["active"])
            return
        key = self.pick([c.keys.auditor, c.keys.cn, c.keys.lab], pick)
        ok = a["active"] and self.key_ok(key, ANY_ROLE) and self.agency_of(key) == a["agencyIndex"]
        self.send(c.led.clearAlert, [alert_id, 2], key, ok)

    # -- invariants ----------------------------------------------------------------------------
    def invariant_release_rule(self):
        """(a): the replay checks every release as of its own event."""
        assert not self.replay.violations, self.replay.violations

    def invariant_complete_event_log(self):
        """(d) input: the collected receipts hold every log both contracts emitted."""
        latest = web3.eth.block_number
        logs = (
            []
            if latest <= self.base_block
            else web3.eth.get_logs(
                {
                    "fromBlock": self.base_block + 1,
                    "toBlock": latest,
                    "address": [self.c.reg.address, self.c.led.address],
                }
            )
        )
        collected = [(bytes(log["transactionHash"]), log["logIndex"]) for tx in self.receipts for log in tx.logs]
        assert [(bytes(log["transactionHash"]), log["logIndex"]) for log in logs] == collected

    def invariant_final_declarations_frozen(self):
        """(b): SUPERSEDED / RELEASED declarations never change afterwards."""
        for did, d in self.replay.decls.items():
            if d["status"] in (ST_SUPERSEDED, ST_RELEASED):
                view = plain(self.c.led.declaration(did).dict())
                assert self.frozen.setdefault(did, view) == view, did.hex()

    def invariant_replay_matches_views(self):
        """(d): the pure-Python replay equals what the views return."""
        c, r = self.c, self.replay
        batch = ViewBatch()
        reg, led = c.reg, c.led
        batch.add(reg.agencyCount, [], len(r.agencies))
        for index, agency in r.agencies.items():
            batch.add(reg.agencyByIndex, [index], tuple(agency.values()))
        for signer, key in r.keys.items():
            batch.add(reg.signerKey, [signer], tuple(key))
        for account in list(r.traders) + [c.traders.unregistered.address]:
            batch.add(reg.trader, [account], tuple(r.traders.get(account, [0, 0, False])))
        batch.add(reg.governance, [], (len(r.governors), r.threshold, r.epoch, r.lifetime))
        batch.add(reg.bootstrapping, [], r.bootstrapper != ZERO_ADDRESS)
        batch.add(reg.bootstrapper, [], r.bootstrapper)
        batch.add(reg.isGovernedTarget, [led], led.address in r.targets)
        for g in [*self.governor_pool, c.outsider]:
            batch.add(reg.isGovernor, [g], g.address in r.governors)
        batch.add(reg.proposalCount, [], len(r.proposals))
        for pid, p in r.proposals.items():
            batch.add(reg.proposal, [pid], tuple(p.values()))
            for g in self.governor_pool:
                batch.add(reg.hasApproved, [pid, g], (pid, g.address) in r.approved)
        for did, d in r.decls.items():
            batch.add(led.declaration, [did], tuple(d.values()))
            for t in USED_TYPES:
                batch.add(led.openFailures, [did, t], r.failures.get((did, t), 0))
            p = r.pending.get(did)
            expected_pending = tuple(p.values()) if p else (0, 0, 0, 0, 0, ZERO_ADDRESS, ZERO32)
            expected_pending = expected_pending[:4] + (r.rounds.get(did, 0),) + expected_pending[5:]
            batch.add(led.pendingDecision, [did], expected_pending)
            round_ = r.rounds.get(did, 0)
            for key in self.cn_keys:
                batch.add(
                    led.hasApprovedDecision, [did, round_, key], (did, round_, key.address) in r.decision_approvals
                )
            batch.add(led.anchorOf, [did], r.anchor_of(did))
        for mrn, did in r.by_mrn.items():
            batch.add(led.declarationByMrn, [mrn], did)
        for sid, s in r.stamps.items():
            batch.add(led.stamp, [sid], tuple(s.values()))
            batch.add(led.anchorOf, [sid], r.anchor_of(sid))
        for document_sha in r.supporting:
            batch.add(led.anchorOf, [document_sha], r.anchor_of(document_sha))
        for root, b in r.batches.items():
            batch.add(led.batch, [root], b)
            batch.add(led.anchorOf, [root], r.anchor_of(root))
        batch.add(led.alertCount, [], len(r.alerts))
        for alert_id, a in r.alerts.items():
            batch.add(led.alert, [alert_id], tuple(a.values()))
        for subject, n in r.active_alerts.items():
            batch.add(led.activeAlertCount, [subject], n)
        for kind in range(4):
            batch.add(led.approvalsRequired, [kind], r.required.get(kind, 1))
        for key in (c.keys.lab, c.keys.lab2, c.keys.partner):
            batch.add(led.nonces, [key], r.nonces.get(key.address, 0))
        batch.check()


STATS: collections.Counter[str] = collections.Counter()  # events emitted / refusals checked, all examples


@pytest.mark.slow
def test_stateful(c, AgencyRegistry, ClearanceLedger):
    STATS.clear()
    codec = EventCodec([AgencyRegistry, ClearanceLedger])
    base_block = web3.eth.block_number
    raw = web3.eth.get_logs({"fromBlock": 0, "toBlock": base_block, "address": [c.reg.address, c.led.address]})
    timestamps = {n: web3.eth.get_block(n)["timestamp"] for n in {log["blockNumber"] for log in raw}}
    baseline = [
        (*codec.decode(log), "0x" + bytes(log["transactionHash"]).hex(), timestamps[log["blockNumber"]]) for log in raw
    ]
    assert c.reg.tx.txid in {tx for _, _, tx, _ in baseline}  # the deployment's own events are included
    state_machine(
        LedgerMachine,
        c,
        codec,
        baseline,
        base_block,
        settings={
            "derandomize": os.environ.get("LEDGER_STATEFUL_RANDOM") is None,
            "max_examples": int(os.environ.get("LEDGER_STATEFUL_EXAMPLES", 30)),
            "stateful_step_count": int(os.environ.get("LEDGER_STATEFUL_STEPS", 40)),
            "suppress_health_check": list(HealthCheck),
            "database": None,
        },
    )
    stats = STATS
    print("\nstateful run:", dict(sorted(stats.items())))
    # the run really exercised the ledger (not just early returns)
    for name in (
        "SignerKeyExpiryChanged",
        "GovernorAdded",
        "GovernorRemoved",
        "DeclarationSubmitted",
        "DeclarationAmended",
        "DeclarationAccepted",
        "ChannelAssigned",
        "StampRecorded",
        "relayed stamp",
        "StampRevoked",
        "DecisionRecorded",
        "release decision",
        "DecisionProposed",
        "release decision (dual control)",
        "ProposalExecuted",
        "BatchAnchored",
        "AlertRaised",
        "AlertCleared",
        "SignerKeyCompromised",
    ):
        assert stats[name] > 0, name
    assert sum(v for k, v in stats.items() if k.startswith("refused")) > 0
