"""Signed replay checkpoints: resume an audit from a block whose state was already rebuilt and verified.

A checkpoint (``ledger audit replay --checkpoint FILE``) is one JSON document holding where a replay
ended — chain id, contracts, deployment block, block number and block hash, the number of events and
their accumulator (:mod:`ledger_api.chain.accumulator`, the witness oracle's definition), the state
digest — and what a replay needs to continue as if it had never stopped: the rebuilt
:class:`~ledger_api.audit.LedgerState` (serialised by its type annotations, :func:`encode_state`), the
findings up to that block, the event counts by name, the last log position and the registry's
creation transaction. It is signed by the auditor's key (EIP-712, :mod:`ledger_api.chain.typed_data`)
over the headline fields and the sha256 of the whole payload.

:func:`load_checkpoint` checks, in this order, before anything in it is used: size and shape; the
signature and that its signer is the expected key (an unsigned checkpoint is refused unless allowed);
then :func:`resume_point` checks that it is about this chain and these contracts, that the node's
block hash at its height is the recorded one (the checkpoint is a prefix of the current history),
decodes the state and recomputes its digest. Each refusal is a typed
:class:`~ledger_api.errors.AuditCheckpointError`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import time
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Union

from eth_account.signers.local import LocalAccount
from eth_utils.address import is_hex_address, to_checksum_address

from ledger_api.audit._digest import DIGEST_VERSION, digest, plan, state_records
from ledger_api.audit._findings import Finding
from ledger_api.audit._state import LedgerState
from ledger_api.chain.events import JsonRpc
from ledger_api.chain.typed_data import EIP712_DOMAIN_TYPE, recover_typed_data, sign_typed_data
from ledger_api.errors import (
    AuditCheckpointError,
    CheckpointForeign,
    CheckpointNotPrefix,
    CheckpointTampered,
    CheckpointUnsigned,
)

__all__ = [
    "CHECKPOINT_KIND",
    "MAX_CHECKPOINT_BYTES",
    "ReplayCheckpoint",
    "ResumePoint",
    "decode_state",
    "encode_state",
    "load_checkpoint",
    "open_checkpoint",
    "resume_point",
    "write_checkpoint",
]

CHECKPOINT_KIND = "ledger-audit-checkpoint"
FORMAT_VERSION = 1
#: Largest checkpoint file read (the state snapshot grows with the ledger: ~1 KiB per declaration).
MAX_CHECKPOINT_BYTES = 1024 * 1024 * 1024
DOMAIN_NAME = "LedgerAuditCheckpoint"
DOMAIN_VERSION = "1"
CHECKPOINT_TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": EIP712_DOMAIN_TYPE,
    "AuditCheckpoint": [
        {"name": "registry", "type": "address"},
        {"name": "ledger", "type": "address"},
        {"name": "deploymentBlock", "type": "uint64"},
        {"name": "blockNumber", "type": "uint64"},
        {"name": "blockHash", "type": "bytes32"},
        {"name": "eventCount", "type": "uint64"},
        {"name": "accumulator", "type": "bytes32"},
        {"name": "stateDigest", "type": "bytes32"},
        {"name": "payloadSha256", "type": "bytes32"},
    ],
}
_HEX32 = re.compile(r"^0x[0-9a-f]{64}$")
_UINT64 = (1 << 64) - 1


# ================================================================================ state codec


class _Malformed(ValueError):
    """A snapshot value does not have the type its annotation says."""


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _encode(value: Any, hint: Any) -> Any:
    """JSON form of ``value`` typed ``hint``: dataclasses → objects, dicts → [key, value] pairs, sets sorted."""
    if hint is Any:
        return _plain(value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        hints = _hints(hint)
        return {f.name: _encode(getattr(value, f.name), hints[f.name]) for f in dataclasses.fields(hint)}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None:
            return None
        return _encode(value, next(a for a in args if a is not type(None)))
    if origin is dict:
        return [[_encode(k, args[0]), _encode(v, args[1])] for k, v in value.items()]
    if origin is list:
        return [_encode(v, args[0]) for v in value]
    if origin is set:
        return sorted(_encode(v, args[0]) for v in value)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return [_encode(v, args[0]) for v in value]
        return [_encode(v, t) for v, t in zip(value, args, strict=True)]
    if hint in (int, str, bool):
        return value
    raise TypeError(f"no snapshot encoding for {hint!r}")


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | str):
        return value
    raise TypeError(f"no snapshot encoding for a {type(value).__name__} value")


def _decode(doc: Any, hint: Any, where: str) -> Any:
    """Inverse of :func:`_encode`, checking every type on the way (:class:`_Malformed`)."""
    if hint is Any:
        return doc
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        hints = _hints(hint)
        names = [f.name for f in dataclasses.fields(hint)]
        if not isinstance(doc, dict) or set(doc) != set(names):
            raise _Malformed(f"{where}: expected the fields of {hint.__name__}")
        return hint(**{n: _decode(doc[n], hints[n], f"{where}.{n}") for n in names})
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if doc is None and type(None) in args:
            return None
        return _decode(doc, next(a for a in args if a is not type(None)), where)
    if origin in (dict, list, set, tuple) and not isinstance(doc, list):
        raise _Malformed(f"{where}: expected a list")
    if origin is dict:
        out: dict[Any, Any] = {}
        for pair in doc:
            if not isinstance(pair, list) or len(pair) != 2:
                raise _Malformed(f"{where}: expected [key, value] pairs")
            out[_decode(pair[0], args[0], where)] = _decode(pair[1], args[1], where)
        return out
    if origin is list:
        return [_decode(v, args[0], where) for v in doc]
    if origin is set:
        return {_decode(v, args[0], where) for v in doc}
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(v, args[0], where) for v in doc)
        if len(doc) != len(args):
            raise _Malformed(f"{where}: expected {len(args)} items")
        return tuple(_decode(v, t, where) for v, t in zip(doc, args, strict=True))
    if hint is bool:
        if not isinstance(doc, bool):
            raise _Malformed(f"{where}: expected a boolean")
        return doc
    if hint is int:
        if isinstance(doc, bool) or not isinstance(doc, int):
            raise _Malformed(f"{where}: expected an integer")
        return doc
    if hint is str:
        if not isinstance(doc, str):
            raise _Malformed(f"{where}: expected a string")
        return doc
    raise _Malformed(f"{where}: no snapshot decoding for {hint!r}")


def encode_state(state: LedgerState) -> dict[str, Any]:
    """The JSON snapshot of a rebuilt state (every field, by its type annotation; no pickle)."""
    out: dict[str, Any] = _encode(state, LedgerState)
    return out


def decode_state(doc: Any) -> LedgerState:
    """The state of a snapshot; :class:`~ledger_api.errors.CheckpointTampered` if it is malformed."""
    try:
        state: LedgerState = _decode(doc, LedgerState, "state")
    except (_Malformed, TypeError, ValueError, KeyError) as exc:
        raise CheckpointTampered(f"the state snapshot is malformed: {exc}") from exc
    return state


# ================================================================================ the checkpoint


@dataclass(kw_only=True)
class ResumePoint:
    """Where a replay stands at the end of ``block_number``: what the next replay continues from."""

    block_number: int
    block_hash: str | None
    event_count: int
    accumulator: str  # 0x-hex
    last_log: tuple[int, int]
    events_by_name: dict[str, int]
    findings: list[Finding]  # found up to this block, before the end-of-history checks
    creation_tx: str | None
    channel_checks: int
    channels_unchecked: int
    state: LedgerState


@dataclass(frozen=True, kw_only=True)
class ReplayCheckpoint:
    """A parsed checkpoint document; ``signer`` / ``signature`` are ``None`` when it is unsigned."""

    payload: Mapping[str, Any]
    signer: str | None
    signature: str | None

    @property
    def block_number(self) -> int:
        """The last block the checkpointed replay covered."""
        return int(self.payload["block_number"])

    @property
    def block_hash(self) -> str:
        """That block's hash as the node gave it when the checkpoint was written."""
        return str(self.payload["block_hash"])

    @property
    def state_digest(self) -> str:
        """The state digest at that block (equal to the views' digest when it was written)."""
        return str(self.payload["state_digest"])

    def to_document(self) -> dict[str, Any]:
        """The JSON document (payload plus ``signature``)."""
        signature = None if self.signature is None else {"scheme": "eip712", "signer": self.signer,
                                                          "value": self.signature}  # fmt: skip
        return {**self.payload, "signature": signature}


def _payload_bytes(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def _typed(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "types": CHECKPOINT_TYPES,
        "primaryType": "AuditCheckpoint",
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": payload["chain_id"],
            "verifyingContract": payload["ledger"],
        },  # fmt: skip
        "message": {
            "registry": payload["registry"],
            "ledger": payload["ledger"],
            "deploymentBlock": payload["deployment_block"],
            "blockNumber": payload["block_number"],
            "blockHash": bytes.fromhex(payload["block_hash"][2:]),
            "eventCount": payload["event_count"],
            "accumulator": bytes.fromhex(payload["accumulator"][2:]),
            "stateDigest": bytes.fromhex(payload["state_digest"][2:]),
            "payloadSha256": hashlib.sha256(_payload_bytes(payload)).digest(),
        },
    }


def block_hash_at(rpc: JsonRpc, number: int) -> str | None:
    """The node's hash of block ``number`` (lower-case 0x-hex), ``None`` when it has no such block."""
    header = rpc.call("eth_getBlockByNumber", [hex(number), False])
    return None if not isinstance(header, dict) else str(header["hash"]).lower()


def write_checkpoint(
    path: str | os.PathLike[str],
    point: ResumePoint,
    *,
    chain_id: int,
    registry: str,
    ledger: str,
    deployment_block: int,
    state_digest: str,
    signer: LocalAccount | None,
) -> ReplayCheckpoint:
    """Write the checkpoint of ``point`` to ``path`` (atomically), signed by ``signer`` unless ``None``."""
    if point.block_hash is None:
        raise AuditCheckpointError(f"the node has no block {point.block_number}: nothing to checkpoint")
    payload: dict[str, Any] = {
        "kind": CHECKPOINT_KIND,
        "version": FORMAT_VERSION,
        "digest_version": DIGEST_VERSION,
        "chain_id": chain_id,
        "registry": to_checksum_address(registry),
        "ledger": to_checksum_address(ledger),
        "deployment_block": deployment_block,
        "block_number": point.block_number,
        "block_hash": point.block_hash.lower(),
        "event_count": point.event_count,
        "accumulator": point.accumulator.lower(),
        "state_digest": state_digest.lower(),
        "created_at": int(time.time()),
        "last_log": list(point.last_log),
        "events_by_name": dict(sorted(point.events_by_name.items())),
        "creation_tx": point.creation_tx,
        "channel_checks": point.channel_checks,
        "channels_unchecked": point.channels_unchecked,
        "findings": [_encode(f, Finding) for f in point.findings],
        "state": encode_state(point.state),
    }
    payload = json.loads(_payload_bytes(payload))  # exactly what a reader will parse
    checkpoint = ReplayCheckpoint(
        payload=payload,
        signer=None if signer is None else to_checksum_address(signer.address),
        signature=None if signer is None else sign_typed_data(signer, _typed(payload)),
    )
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(checkpoint.to_document(), separators=(",", ":")) + "\n", encoding="utf-8")
    os.replace(tmp, target)
    return checkpoint


def _field(payload: Mapping[str, Any], name: str, kind: str) -> None:
    value = payload.get(name)
    ok = {
        "uint64": isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _UINT64,
        "hex32": isinstance(value, str) and bool(_HEX32.match(value)),
        "address": isinstance(value, str) and is_hex_address(value),
    }[kind]
    if not ok:
        raise CheckpointTampered(f"checkpoint field {name!r} is not a valid {kind}")


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    expected_signer: str | None,
    allow_unsigned: bool = False,
    max_bytes: int = MAX_CHECKPOINT_BYTES,
) -> ReplayCheckpoint:
    """Read a checkpoint and verify its signature and signer — before anything in it is used.

    The signature must recover (canonical, EIP-712 over the headline fields and the payload's sha256)
    to the signer it names, and that signer must be ``expected_signer``. An unsigned checkpoint, or a
    signed one without an ``expected_signer``, is accepted only with ``allow_unsigned``.
    """
    try:
        with open(path, "rb") as handle:
            raw = handle.read(max_bytes + 1)
    except OSError as exc:
        raise AuditCheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    if len(raw) > max_bytes:
        raise CheckpointTampered(f"checkpoint {path} is larger than {max_bytes} bytes")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise CheckpointTampered(f"checkpoint {path} is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("kind") != CHECKPOINT_KIND or doc.get("version") != FORMAT_VERSION:
        raise CheckpointTampered(f"{path} is not a {CHECKPOINT_KIND} v{FORMAT_VERSION} document")
    signature = doc.pop("signature", None)
    for name, kind in (("chain_id", "uint64"), ("registry", "address"), ("ledger", "address"),
                       ("deployment_block", "uint64"), ("block_number", "uint64"), ("block_hash", "hex32"),
                       ("event_count", "uint64"), ("accumulator", "hex32"), ("state_digest", "hex32")):  # fmt: skip
        _field(doc, name, kind)
    if signature is None:
        if not allow_unsigned:
            raise CheckpointUnsigned(f"checkpoint {path} is not signed")
        return ReplayCheckpoint(payload=doc, signer=None, signature=None)
    if not isinstance(signature, dict) or set(signature) != {"scheme", "signer", "value"}:
        raise CheckpointTampered("the checkpoint's signature is malformed")
    if signature["scheme"] != "eip712" or not isinstance(signature["value"], str):
        raise CheckpointTampered("the checkpoint's signature is not an EIP-712 signature")
    claimed = signature["signer"]
    if not isinstance(claimed, str) or not is_hex_address(claimed):
        raise CheckpointTampered("the checkpoint's signer is not an address")
    try:
        recovered = recover_typed_data(_typed(doc), signature["value"])
    except ValueError as exc:
        raise CheckpointTampered(f"the checkpoint's signature does not hold: {exc}") from exc
    if recovered.lower() != claimed.lower():
        raise CheckpointTampered(
            f"the checkpoint was altered after signing (the signature recovers to {recovered}, not {claimed})"
        )
    if expected_signer is None:
        if not allow_unsigned:
            raise CheckpointUnsigned("no expected signer given: the checkpoint's signature proves nothing")
    elif recovered.lower() != expected_signer.lower():
        raise CheckpointTampered(f"the checkpoint is signed by {recovered}, not the expected key {expected_signer}")
    return ReplayCheckpoint(payload=doc, signer=recovered, signature=signature["value"])


def resume_point(checkpoint: ReplayCheckpoint, rpc: JsonRpc, deployment: Any) -> ResumePoint:
    """Check that ``checkpoint`` is about this deployment and a prefix of the node's history; decode it.

    ``deployment`` has ``chain_id``, ``registry``, ``ledger`` and ``deployment_block``. Raises
    :class:`CheckpointForeign`, :class:`CheckpointNotPrefix` or :class:`CheckpointTampered`.
    """
    p = checkpoint.payload
    node_chain = int(rpc.call("eth_chainId"), 16)
    if (p["chain_id"], p["registry"].lower(), p["ledger"].lower(), p["deployment_block"]) != (
        deployment.chain_id, deployment.registry.lower(), deployment.ledger.lower(), deployment.deployment_block,
    ) or node_chain != p["chain_id"]:  # fmt: skip
        raise CheckpointForeign(
            f"the checkpoint is about chain {p['chain_id']}, contracts {p['registry']} / {p['ledger']} from block "
            f"{p['deployment_block']}; this audit is of chain {deployment.chain_id} (node: {node_chain}), "
            f"{deployment.registry} / {deployment.ledger} from block {deployment.deployment_block}"
        )
    if p.get("digest_version") != DIGEST_VERSION:
        raise CheckpointForeign(f"the checkpoint's state digest is {p.get('digest_version')}, not {DIGEST_VERSION}")
    now = block_hash_at(rpc, checkpoint.block_number)
    if now != checkpoint.block_hash:
        raise CheckpointNotPrefix(
            f"the node's block {checkpoint.block_number} is {now or 'missing'}, the checkpoint recorded "
            f"{checkpoint.block_hash}: the history after the checkpoint was rewritten (or this node is behind)"
        )
    state = decode_state(p.get("state"))
    if digest(state_records(plan(state))) != checkpoint.state_digest:
        raise CheckpointTampered("the checkpoint's state snapshot does not have the state digest it records")
    try:
        findings = [_decode(f, Finding, "findings") for f in p["findings"]]
        last = p["last_log"]
        events_by_name = {str(k): int(v) for k, v in dict(p["events_by_name"]).items()}
        point = ResumePoint(
            block_number=checkpoint.block_number, block_hash=checkpoint.block_hash, event_count=p["event_count"],
            accumulator=p["accumulator"], last_log=(int(last[0]), int(last[1])), events_by_name=events_by_name,
            findings=findings, creation_tx=p["creation_tx"], channel_checks=int(p["channel_checks"]),
            channels_unchecked=int(p["channels_unchecked"]), state=state,
        )  # fmt: skip
    except (_Malformed, KeyError, TypeError, ValueError, IndexError) as exc:
        raise CheckpointTampered(f"the checkpoint's replay position is malformed: {exc}") from exc
    if sum(events_by_name.values()) > point.event_count or (point.creation_tx is not None
                                                              and not isinstance(point.creation_tx, str)):  # fmt: skip
        raise CheckpointTampered("the checkpoint's event counts are inconsistent")
    return point


def open_checkpoint(
    path: str | os.PathLike[str],
    rpc_url: str,
    deployment: Any,
    *,
    expected_signer: str | None,
    allow_unsigned: bool = False,
    max_bytes: int = MAX_CHECKPOINT_BYTES,
) -> ResumePoint:
    """:func:`load_checkpoint`, then :func:`resume_point` against ``rpc_url``: what ``replay(resume=…)`` takes."""
    checkpoint = load_checkpoint(path, expected_signer=expected_signer, allow_unsigned=allow_unsigned,
                                 max_bytes=max_bytes)  # fmt: skip
    with JsonRpc(rpc_url=rpc_url) as rpc:
        return resume_point(checkpoint, rpc, deployment)
