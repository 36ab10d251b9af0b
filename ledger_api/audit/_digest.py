"""The state digest: the same records computed from the replayed state and read from the contract views.

A *record* is ``(key, values)``: ``key`` names a view call (``ledger.declaration/0x…``), ``values``
the normalised tuple it returns. :func:`plan` lists, for a replayed :class:`LedgerState`, every
record both sides can enumerate — each with the call that reads it from the chain and the value
the replay expects. :func:`state_records` keeps the expected values; :func:`view_records` performs
the ``eth_call``s at one block number. :func:`digest` hashes a record set (definition in
docs/audit.md). Normalisation (:func:`norm`): bytes and hex strings → lowercase 0x-hex, booleans
stay booleans, integers stay integers, nested tuples are flattened one level (structs).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_utils.abi import function_signature_to_4byte_selector

from ledger_api.audit._state import ZERO32, ZERO_ADDRESS, LedgerState
from ledger_api.chain import _tx_calls
from ledger_api.chain.artifacts import canonical_type, load_artifact
from ledger_api.chain.events import JsonRpc
from ledger_api.errors import LogQueryError

__all__ = ["DIGEST_VERSION", "ViewCall", "digest", "norm", "plan", "state_records", "view_records"]

#: First line of the digested text; bump when the record set or its encoding changes.
DIGEST_VERSION = "customs-ledger-state-digest/1"

_HEX = re.compile(r"^0x[0-9a-fA-F]*$")

Values = tuple[Any, ...]


def norm(value: Any) -> Any:
    """Normalise one decoded value (see the module docstring)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, str):
        return value.lower() if _HEX.match(value) else value
    if isinstance(value, tuple | list):
        return [norm(v) for v in value]
    raise TypeError(f"cannot normalise {type(value).__name__}")


def _flat(values: Sequence[Any]) -> Values:
    if len(values) == 1 and isinstance(values[0], tuple | list):
        values = values[0]
    return tuple(norm(v) for v in values)


@cache
def _registry_functions() -> dict[str, tuple[bytes, tuple[str, ...], tuple[str, ...]]]:
    table: dict[str, tuple[bytes, tuple[str, ...], tuple[str, ...]]] = {}
    for item in load_artifact("AgencyRegistry").abi:
        if item["type"] == "function":
            inputs = tuple(canonical_type(i) for i in item["inputs"])
            outputs = tuple(canonical_type(o) for o in item.get("outputs", []))
            selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(inputs)})")
            table[str(item["name"])] = (selector, inputs, outputs)
    return table


@dataclass(frozen=True, slots=True)
class ViewCall:
    """One view call: which contract, which function, which arguments."""

    contract: str  # "registry" / "ledger"
    function: str
    args: tuple[Any, ...]

    def calldata(self) -> bytes:
        """Selector + ABI-encoded arguments."""
        if self.contract == "ledger":
            return _tx_calls.encode_call(self.function, self.args)
        selector, inputs, _ = _registry_functions()[self.function]
        return selector + abi_encode(list(inputs), list(self.args))

    def decode(self, output: bytes) -> Values:
        """Decode and normalise the return data."""
        if self.contract == "ledger":
            return _flat(_tx_calls.decode_result(self.function, output))
        _, _, outputs = _registry_functions()[self.function]
        return _flat(tuple(abi_decode(list(outputs), output)))


def _b(hex32: str) -> bytes:
    return bytes.fromhex(hex32[2:])


def plan(state: LedgerState) -> list[tuple[str, ViewCall, Values]]:
    """Every record of the digest: ``(key, view call, value the replay expects)``, in key order."""
    s = state
    out: list[tuple[str, ViewCall, Values]] = []

    def add(key: str, contract: str, function: str, args: tuple[Any, ...], values: tuple[Any, ...]) -> None:
        out.append((key, ViewCall(contract, function, args), tuple(norm(v) for v in values)))

    # ---- registry
    add("registry.agencyCount", "registry", "agencyCount", (), (len(s.agencies),))
    for index, a in s.agencies.items():
        add(f"registry.agency/{index}", "registry", "agencyByIndex", (index,),
            (a.id, a.index, a.status, a.roles, a.country, a.encryption_key, a.name, a.ipfs_endpoint))  # fmt: skip
    for address in sorted(set(s.keys) | s.signers_seen):
        k = s.keys.get(address)
        values = (k.agency_index, k.valid_from, k.valid_until, k.compromised_at) if k else (0, 0, 0, 0)
        add(f"registry.signerKey/{address}", "registry", "signerKey", (address,), values)
    for address, t in s.traders.items():
        add(f"registry.trader/{address}", "registry", "trader", (address,), (t.registrar_index, t.status, t.aeo))
    for address, is_governor in s.governors.items():
        add(f"registry.isGovernor/{address}", "registry", "isGovernor", (address,), (is_governor,))
    add("registry.governance", "registry", "governance", (), (s.governor_count, s.threshold, s.epoch, s.lifetime))
    add("registry.bootstrapping", "registry", "bootstrapping", (), (s.bootstrapping,))
    for address, allowed in s.targets.items():
        add(f"registry.isGovernedTarget/{address}", "registry", "isGovernedTarget", (address,), (allowed,))
    add("registry.proposalCount", "registry", "proposalCount", (), (len(s.proposals),))
    for pid, p in s.proposals.items():
        add(f"registry.proposal/{pid}", "registry", "proposal", (pid,),
            (p.proposer, p.target, p.expires_at, p.epoch, p.approvals, p.executed, p.cancelled,
             p.call_data))  # fmt: skip
        for governor in sorted(p.approvers):
            add(f"registry.hasApproved/{pid}/{governor}", "registry", "hasApproved", (pid, governor), (True,))

    # ---- ledger
    for kind in range(4):
        add(f"ledger.approvalsRequired/{kind}", "ledger", "approvalsRequired", (kind,), (s.required(kind),))
    for did, d in s.declarations.items():
        add(f"ledger.declaration/{did}", "ledger", "declaration", (_b(did),),
            (d.declarant, d.jurisdiction, d.status, d.channel, d.required_stamps, d.version, d.mrn, d.rule_set_hash,
             d.previous_id, d.superseded_by))  # fmt: skip
        pd = d.pending
        pending = (
            (pd.kind, pd.approvals, pd.approvals_required, pd.reason_code, d.round, pd.proposer, pd.report_sha256)
            if pd is not None
            else (0, 0, 0, 0, d.round, ZERO_ADDRESS, ZERO32)
        )
        add(f"ledger.pendingDecision/{did}", "ledger", "pendingDecision", (_b(did),), pending)
        for round_, approvers in d.approvers.items():
            for signer in approvers:
                add(f"ledger.hasApprovedDecision/{did}/{round_}/{signer}", "ledger", "hasApprovedDecision",
                    (_b(did), round_, signer), (True,))  # fmt: skip
        for fact in d.decisions:
            if fact.round:  # the final approval closes the round without a stored flag
                add(f"ledger.hasApprovedDecision/{did}/{fact.round}/{fact.signer}", "ledger", "hasApprovedDecision",
                    (_b(did), fact.round, fact.signer), (False,))  # fmt: skip
    for did in sorted(s.declarations_referenced - s.declarations.keys()):
        add(f"ledger.declaration/{did}", "ledger", "declaration", (_b(did),),
            (ZERO_ADDRESS, 0, 0, 0, 0, 0, ZERO32, ZERO32, ZERO32, ZERO32))  # fmt: skip
    for sid in sorted(s.stamps_referenced - s.stamps.keys()):
        add(f"ledger.stamp/{sid}", "ledger", "stamp", (_b(sid),), (ZERO32, ZERO_ADDRESS, 0, 0, 0, False, 0))
    for mrn, did in s.by_mrn.items():
        add(f"ledger.declarationByMrn/{mrn}", "ledger", "declarationByMrn", (_b(mrn),), (did,))
    for sid, st in s.stamps.items():
        add(f"ledger.stamp/{sid}", "ledger", "stamp", (_b(sid),),
            (st.declaration_id, st.signer, st.agency_index, st.stamp_type, st.result, st.revoked,
             st.signed_at))  # fmt: skip
    for (did, stamp_type), count in s.open_failures.items():
        add(f"ledger.openFailures/{did}/{stamp_type}", "ledger", "openFailures", (_b(did), stamp_type), (count,))
    for root, b in s.batches.items():
        add(
            f"ledger.batch/{root}",
            "ledger",
            "batch",
            (_b(root),),
            (b.agency_index, b.leaf_count, b.kind, b.anchored_at),
        )
    add("ledger.alertCount", "ledger", "alertCount", (), (len(s.alerts),))
    for aid, al in s.alerts.items():
        add(f"ledger.alert/{aid}", "ledger", "alert", (aid,),
            (al.subject, al.subject_kind, al.agency_index, al.reason_code, al.active, al.raised_at,
             al.evidence_sha256))  # fmt: skip
    for subject, count in s.active_alerts.items():
        add(f"ledger.activeAlertCount/{subject}", "ledger", "activeAlertCount", (_b(subject),), (count,))
    for signer, count in s.nonces.items():
        add(f"ledger.nonces/{signer}", "ledger", "nonces", (signer,), (count,))
    for sha in sorted(set(s.declarations) | set(s.supporting_owner) | set(s.stamps) | set(s.batches)):
        if sha == ZERO32:
            continue
        if sha in s.declarations:
            anchor: tuple[Any, ...] = (1, sha)
        elif sha in s.supporting_owner:
            anchor = (2, s.supporting_owner[sha])
        elif sha in s.stamps:
            anchor = (3, s.stamps[sha].declaration_id)
        else:
            anchor = (4, sha)
        add(f"ledger.anchorOf/{sha}", "ledger", "anchorOf", (_b(sha),), anchor)
    out.sort(key=lambda item: item[0])
    return out


def state_records(planned: Sequence[tuple[str, ViewCall, Values]]) -> dict[str, Values]:
    """The replay's side: ``{key: expected values}``."""
    return {key: values for key, _, values in planned}


def view_records(
    rpc: JsonRpc,
    planned: Sequence[tuple[str, ViewCall, Values]],
    *,
    registry: str,
    ledger: str,
    block: int,
    chunk: int = 500,
    workers: int = 4,
) -> dict[str, Values]:
    """The contracts' side: every planned view read with ``eth_call`` at ``block`` (batches of ``chunk``,
    ``workers`` batches in flight).

    A call that reverts is recorded as ``("revert", message)`` — it then differs from the replay.
    """
    addresses = {"registry": registry, "ledger": ledger}
    tag = hex(block)

    def read(part: Sequence[tuple[str, ViewCall, Values]]) -> list[Any]:
        calls = [
            ("eth_call", [{"to": addresses[call.contract], "data": "0x" + call.calldata().hex()}, tag])
            for _, call, _ in part
        ]
        try:
            return rpc.batch(calls)
        except LogQueryError:  # some call reverted: ask one by one to know which
            results: list[Any] = []
            for method, params in calls:
                try:
                    results.append(rpc.call(method, params))
                except LogQueryError as exc:
                    results.append(exc)
            return results

    parts = [planned[start : start + chunk] for start in range(0, len(planned), chunk)]
    out: dict[str, Values] = {}
    # Several batches in flight: the node answers one while this process decodes another.
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="audit-views") as pool:
        for part, results in zip(parts, pool.map(read, parts), strict=True):
            for (key, call, _), result in zip(part, results, strict=True):
                if isinstance(result, LogQueryError):
                    out[key] = ("revert", str(result))
                    continue
                try:
                    out[key] = call.decode(bytes.fromhex(str(result)[2:]))
                except Exception as exc:  # eth_abi raises several unrelated types; an empty answer too
                    out[key] = ("undecodable", f"{type(exc).__name__}: {exc}")
    return out


def digest(records: dict[str, Values]) -> str:
    """sha256 (0x-hex) of the canonical text of ``records`` (definition in docs/audit.md)."""
    h = hashlib.sha256()
    h.update(DIGEST_VERSION.encode() + b"\n")
    for key in sorted(records):
        h.update(key.encode() + b"\t" + json.dumps(list(records[key]), separators=(",", ":")).encode() + b"\n")
    return "0x" + h.hexdigest()
