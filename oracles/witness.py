"""Checkpoint witness: every N blocks, sign (chain, contracts, block, block hash, event accumulator).

Every ``LEDGER_ORACLE_CHECKPOINT_EVERY`` blocks the witness of an agency computes an **event
accumulator** over every log the two consortium contracts (registry + ledger) ever emitted up to and
including the checkpoint block, signs a :class:`Checkpoint` as EIP-712 typed data with the agency's key,
publishes it to the agency's content store as canonical JSON and indexes it in its state. Auditors run
``witness compare`` over the checkpoints of several agencies: two valid checkpoints that disagree
about the same height (block hash or accumulator) are a split view or a rewritten history.

The accumulator (:mod:`ledger_api.chain.accumulator`, shared with the auditor replay; anyone can
recompute it from raw ``eth_getLogs`` output)::

    acc_0 = 32 zero bytes
    for every log of {registry, ledger} in chain order (blockNumber, logIndex), from genesis up to and
    including the checkpoint block:
        payload_i = keccak256( uint8(len(topics)) || topic_0 || ... || topic_k || data )
        acc_i     = keccak256( acc_{i-1} || uint64_be(blockNumber) || uint32_be(logIndex)
                               || address (20 bytes) || payload_i )

``eventCount`` is the number of logs folded. The witness keeps ``(height, hash, acc, count)`` of its
last checkpoint in its state and only reads the logs after it (adaptive ``eth_getLogs`` pages).

A witness never rewrites what it signed: when the node's block hash at a height it checkpointed no
longer matches (reorg below the checkpoint, a node reset to an older state, a rewritten history), it
records a ``rewritten`` finding per affected checkpoint, stops checkpointing, and every step raises
:class:`HistoryRewritten` so the run status is ``degraded`` until the chain agrees again.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sqlite3
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils.address import is_hex_address, to_checksum_address

from ledger_api.chain._tx_rpc import JsonRpc, RpcError
from ledger_api.chain.accumulator import accumulate
from ledger_api.chain.accumulator import log_position as _log_position
from ledger_api.chain.typed_data import EIP712_DOMAIN_TYPE, recover_typed_data
from ledger_api.errors import ChainError, CheckpointError, LogQueryError
from ledger_api.hashing import canonical_json
from ledger_api.index import ReadModel
from oracles._base import Oracle, OracleContext, log_event, open_context

__all__ = [
    "CHECKPOINT_TYPES",
    "Checkpoint",
    "HistoryRewritten",
    "WitnessOracle",
    "accumulate",
    "add_commands",
    "compare_checkpoints",
    "compare_sources",
    "load_sources",
    "parse_checkpoint",
    "sign_checkpoint",
    "verify_checkpoint",
]

ZERO32 = b"\0" * 32
#: EIP-712 domain name / version of witness checkpoints (distinct from the ledger's own domain, so a
#: checkpoint signature can never be replayed as an on-chain stamp or the reverse).
DOMAIN_NAME = "LedgerCheckpointWitness"
DOMAIN_VERSION = "1"
CHECKPOINT_TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": EIP712_DOMAIN_TYPE,
    "Checkpoint": [
        {"name": "agency", "type": "bytes32"},
        {"name": "registry", "type": "address"},
        {"name": "ledger", "type": "address"},
        {"name": "blockNumber", "type": "uint64"},
        {"name": "blockHash", "type": "bytes32"},
        {"name": "accumulator", "type": "bytes32"},
        {"name": "eventCount", "type": "uint64"},
        {"name": "signedAt", "type": "uint64"},
    ],
}
KIND = "ledger-checkpoint"
FORMAT_VERSION = 1
#: Largest checkpoint document accepted (a real one is ~700 bytes).
MAX_CHECKPOINT_BYTES = 16 * 1024
#: Most checkpoint files / state entries read from one compare source.
MAX_CHECKPOINTS_PER_SOURCE = 100_000
#: Most checkpoints signed in one step (catching up on a long chain continues in the next steps).
MAX_CHECKPOINTS_PER_STEP = 32
#: A log page larger than this is split (bounds memory on busy ranges).
PAGE_RESULT_LIMIT = 10_000
_UINT64 = (1 << 64) - 1
_HEX32 = re.compile(r"^0x[0-9a-f]{64}$")
_HEX_SIG = re.compile(r"^0x[0-9a-f]{130}$")
_TOO_LARGE = re.compile(
    r"too many|limit exceeded|exceeds? (the )?(max|limit)|query returned more than|response size|"
    r"block range|range (is )?too (large|wide)|timeout|timed out|max results|response too large",
    re.IGNORECASE,
)
_FIELDS = frozenset(
    {
        "kind", "version", "agency", "chain_id", "registry", "ledger", "block_number", "block_hash",
        "accumulator", "event_count", "signed_at", "signer", "signature",
    }
)  # fmt: skip
_CHECKPOINT_PREFIX = "checkpoint:"
_FINDING_PREFIX = "finding:rewritten:"


class HistoryRewritten(ChainError):
    """The node's block hash at a height this witness checkpointed no longer matches what it signed."""

    code = "history-rewritten"


class NodeBehind(ChainError):
    """The node has not reached the height of this witness's last checkpoint (a lagging replica, or a
    node restarted from an older state that has not mined that far yet): nothing to compare yet."""

    code = "node-behind"


# ================================================================================ checkpoint value


@dataclass(frozen=True, kw_only=True)
class Checkpoint:
    """One signed checkpoint (the canonical JSON form is :meth:`as_json`)."""

    agency: str  # agency code, e.g. "CONSORTIUM-AUDIT"
    chain_id: int
    registry: str  # checksummed
    ledger: str  # checksummed
    block_number: int
    block_hash: str  # 0x-hex, lower case
    accumulator: str  # 0x-hex, lower case
    event_count: int
    signed_at: int  # unix seconds
    signer: str  # checksummed
    signature: str  # 0x-hex, 65 bytes r || s || v

    def as_json(self) -> dict[str, Any]:
        """The published JSON object (``kind`` / ``version`` added)."""
        return {"kind": KIND, "version": FORMAT_VERSION, **asdict(self)}

    def canonical(self) -> bytes:
        """RFC 8785 canonical bytes, as stored in the content store."""
        return canonical_json(self.as_json())

    @property
    def view(self) -> tuple[str, str, int]:
        """What two witnesses must agree on at a height: block hash, accumulator, event count."""
        return (self.block_hash, self.accumulator, self.event_count)


def _agency_bytes32(agency: str) -> bytes:
    raw = agency.encode("ascii")
    if not raw or len(raw) > 32:
        raise CheckpointError(f"agency code {agency!r} is not 1-32 ASCII characters")
    return raw.ljust(32, b"\0")


def typed_data(
    *,
    agency: str,
    chain_id: int,
    registry: str,
    ledger: str,
    block_number: int,
    block_hash: str,
    accumulator: str,
    event_count: int,
    signed_at: int,
) -> dict[str, Any]:
    """The EIP-712 message of a checkpoint (domain: witness name/version, chain id, ledger address)."""
    return {
        "types": CHECKPOINT_TYPES,
        "primaryType": "Checkpoint",
        "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id, "verifyingContract": ledger},
        "message": {
            "agency": _agency_bytes32(agency),
            "registry": registry,
            "ledger": ledger,
            "blockNumber": block_number,
            "blockHash": bytes.fromhex(block_hash[2:]),
            "accumulator": bytes.fromhex(accumulator[2:]),
            "eventCount": event_count,
            "signedAt": signed_at,
        },
    }


def sign_checkpoint(
    account: LocalAccount,
    *,
    agency: str,
    chain_id: int,
    registry: str,
    ledger: str,
    block_number: int,
    block_hash: str,
    accumulator: str,
    event_count: int,
    signed_at: int,
) -> Checkpoint:
    """Sign a checkpoint with ``account`` (EIP-712; eth-account produces low-s signatures)."""
    fields: dict[str, Any] = {
        "agency": agency,
        "chain_id": chain_id,
        "registry": to_checksum_address(registry),
        "ledger": to_checksum_address(ledger),
        "block_number": block_number,
        "block_hash": block_hash.lower(),
        "accumulator": accumulator.lower(),
        "event_count": event_count,
        "signed_at": signed_at,
    }
    message = encode_typed_data(full_message=typed_data(**fields))
    signed = account.sign_message(message)
    return Checkpoint(
        **fields, signer=to_checksum_address(account.address), signature="0x" + bytes(signed.signature).hex()
    )


def _int_field(doc: Mapping[str, Any], name: str, *, maximum: int = _UINT64) -> int:
    value = doc.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise CheckpointError(f"field {name!r} must be an integer in [0, {maximum}]")
    return value


def _hex32_field(doc: Mapping[str, Any], name: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str) or not _HEX32.match(value):
        raise CheckpointError(f"field {name!r} must be 0x + 64 lower-case hex digits")
    return value


def _address_field(doc: Mapping[str, Any], name: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str) or not is_hex_address(value):
        raise CheckpointError(f"field {name!r} must be an address")
    return to_checksum_address(value)


def parse_checkpoint(raw: bytes | str | Mapping[str, Any]) -> Checkpoint:
    """Parse a checkpoint document (bytes / text / decoded JSON); :class:`CheckpointError` if malformed.

    Only the shape is checked here; :func:`verify_checkpoint` checks the signature and the signer.
    """
    if isinstance(raw, bytes | str):
        if len(raw) > MAX_CHECKPOINT_BYTES:
            raise CheckpointError(f"checkpoint larger than {MAX_CHECKPOINT_BYTES} bytes")
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise CheckpointError(f"not JSON: {exc}") from exc
    else:
        doc = raw
    if not isinstance(doc, Mapping):
        raise CheckpointError("a checkpoint is a JSON object")
    if set(doc) != _FIELDS:
        missing, extra = sorted(_FIELDS - set(doc)), sorted(set(doc) - _FIELDS)
        raise CheckpointError(f"checkpoint fields differ (missing {missing}, unexpected {extra})")
    if doc["kind"] != KIND or doc["version"] != FORMAT_VERSION:
        raise CheckpointError(f"not a {KIND} v{FORMAT_VERSION} document")
    agency = doc["agency"]
    if not isinstance(agency, str):
        raise CheckpointError("field 'agency' must be a string")
    _agency_bytes32(agency)
    signature = doc["signature"]
    if not isinstance(signature, str) or not _HEX_SIG.match(signature):
        raise CheckpointError("field 'signature' must be 0x + 130 lower-case hex digits")
    return Checkpoint(
        agency=agency,
        chain_id=_int_field(doc, "chain_id"),
        registry=_address_field(doc, "registry"),
        ledger=_address_field(doc, "ledger"),
        block_number=_int_field(doc, "block_number"),
        block_hash=_hex32_field(doc, "block_hash"),
        accumulator=_hex32_field(doc, "accumulator"),
        event_count=_int_field(doc, "event_count"),
        signed_at=_int_field(doc, "signed_at"),
        signer=_address_field(doc, "signer"),
        signature=signature,
    )


def recover_signer(checkpoint: Checkpoint) -> str:
    """The address that signed ``checkpoint`` (low-s, v ∈ {27, 28} enforced); :class:`CheckpointError`."""
    fields = asdict(checkpoint)
    del fields["signer"], fields["signature"]
    try:
        return recover_typed_data(typed_data(**fields), checkpoint.signature)
    except ValueError as exc:  # non-canonical, or no key recovers (eth-keys' BadSignature included)
        raise CheckpointError(str(exc)) from exc


def verify_checkpoint(checkpoint: Checkpoint, read: ReadModel, *, chain_id: int, registry: str, ledger: str) -> str:
    """Check ``checkpoint``'s signature and signer; return the signer. :class:`CheckpointError` if not.

    It must be about this deployment (chain id, registry, ledger), recover to its claimed ``signer``,
    and that signer must have been a valid key of the claimed agency at ``signed_at`` (registry facts
    from ``read``; a later compromise report voids it).
    """
    if (checkpoint.chain_id, checkpoint.registry.lower(), checkpoint.ledger.lower()) != (
        chain_id,
        registry.lower(),
        ledger.lower(),
    ):
        raise CheckpointError("checkpoint is about another deployment (chain id / contract addresses)")
    signer = recover_signer(checkpoint)
    if signer != checkpoint.signer:
        raise CheckpointError(f"signature recovers to {signer}, not the claimed signer {checkpoint.signer}")
    if read.signer_key(signer) is None:
        raise CheckpointError(f"{signer} is not a registered signer key")
    if not read.key_valid_at(signer, checkpoint.agency, checkpoint.signed_at):
        raise CheckpointError(f"{signer} was not a valid key of {checkpoint.agency} at {checkpoint.signed_at}")
    return signer


# ================================================================================ accumulator


def fetch_logs(
    rpc: JsonRpc,
    addresses: Sequence[str],
    first: int,
    last: int,
    *,
    initial_range: int = 2_000,
    max_range: int = 100_000,
    result_limit: int = PAGE_RESULT_LIMIT,
) -> Iterator[list[dict[str, Any]]]:
    """Yield the logs of ``addresses`` in ``[first, last]`` page by page, each page in chain order.

    Raw ``eth_getLogs``: a range the node refuses as too large (or that returns more than
    ``result_limit`` logs) is halved and retried; small pages double the next range.
    """
    span = max(1, min(initial_range, max_range))
    start = first
    while start <= last:
        end = min(start + span - 1, last)
        query = {"address": list(addresses), "fromBlock": hex(start), "toBlock": hex(end)}
        try:
            page = rpc.call("eth_getLogs", [query])
        except RpcError as exc:
            if end > start and _TOO_LARGE.search(exc.message):
                span = max(1, (end - start + 1) // 2)
                continue
            raise LogQueryError(f"eth_getLogs [{start}, {end}] failed: {exc}") from exc
        if not isinstance(page, list):
            raise LogQueryError(f"eth_getLogs returned {type(page).__name__}, not a list")
        if len(page) > result_limit and end > start:
            span = max(1, (end - start + 1) // 2)
            continue
        logs = cast(list[dict[str, Any]], page)
        if any(not isinstance(entry, dict) or entry.get("removed") for entry in logs):
            raise LogQueryError("eth_getLogs returned a malformed or removed log")
        logs.sort(key=_log_position)
        yield logs
        start = end + 1
        if len(logs) < result_limit // 4:
            span = min(span * 2, max_range)


# ================================================================================ the oracle


class WitnessOracle(Oracle):
    """Signs a checkpoint every ``checkpoint_every`` blocks and reports a rewritten history."""

    name = "witness"
    default_agency = "CONSORTIUM-AUDIT"
    summary = "sign periodic checkpoints (block hash + event accumulator); compare them across agencies"

    def __init__(self, ctx: OracleContext) -> None:
        super().__init__(ctx)
        self._rpc = JsonRpc(url=ctx.settings.effective_rpc_url, timeout=30.0)
        self._account: LocalAccount | None = None
        d = ctx.deployment
        self._addresses = [to_checksum_address(d.registry), to_checksum_address(d.ledger)]

    def close(self) -> None:
        """Close the JSON-RPC connection."""
        self._rpc.close()

    # ---- state

    def _acc_state(self) -> dict[str, Any]:
        """The accumulator after the last checkpoint: block, its hash, acc, event count."""
        value = self.ctx.state.get("accumulator")
        if isinstance(value, dict):
            return value
        return {
            "block": self.ctx.deployment.deployment_block - 1,
            "hash": None,
            "acc": "0x" + ZERO32.hex(),
            "events": 0,
        }

    def checkpoints(self) -> list[dict[str, Any]]:
        """This witness's checkpoints (index entries: the checkpoint, its CID), by height."""
        return list(self.ctx.state.facts(_CHECKPOINT_PREFIX).values())

    def findings(self) -> list[dict[str, Any]]:
        """Every ``rewritten`` finding recorded (one per checkpoint whose block hash the node lost)."""
        return list(self.ctx.state.facts(_FINDING_PREFIX).values())

    # ---- chain

    def _hashes(self, numbers: Sequence[int]) -> list[str | None]:
        """Block hashes at ``numbers`` (None where the node has no such block), one batch round trip."""
        if not numbers:
            return []
        replies = self._rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers])
        hashes: list[str | None] = []
        for number, reply in zip(numbers, replies, strict=True):
            if isinstance(reply, RpcError):
                raise LogQueryError(f"eth_getBlockByNumber {number} failed: {reply}")
            hashes.append(None if reply is None else str(reply["hash"]).lower())
        return hashes

    def _check_history(self) -> None:
        """Raise :class:`HistoryRewritten` (recording findings) if a checkpointed block hash changed.

        A block hash commits to all its ancestors, so the newest checkpoint matching means every
        older one does; when it does not, older checkpoints are compared back to the newest match.
        """
        last = self.ctx.state.get("last_checkpoint")
        if not isinstance(last, dict):
            return
        (now,) = self._hashes([int(last["block_number"])])
        if now is None:  # behind, not (yet) different: degraded and retried, no finding
            raise NodeBehind(f"the node has no block {last['block_number']} (this witness's last checkpoint) yet")
        if now == last["block_hash"]:
            if self.ctx.state.get("rewritten"):
                self.ctx.state.set("rewritten", None)
                log_event(self.ctx.log, "checkpointed history matches the chain again", level=logging.WARNING)
            return
        entries = sorted(self.checkpoints(), key=lambda e: -int(e["checkpoint"]["block_number"]))
        bad: list[tuple[dict[str, Any], str | None]] = []
        for start in range(0, len(entries), 128):
            chunk = entries[start : start + 128]
            hashes = self._hashes([int(e["checkpoint"]["block_number"]) for e in chunk])
            matched = False
            for entry, chain_hash in zip(chunk, hashes, strict=True):
                if chain_hash is None:  # not reached (yet): no evidence either way
                    continue
                if chain_hash == entry["checkpoint"]["block_hash"]:
                    matched = True
                    break
                bad.append((entry, chain_hash))
            if matched:
                break
        for entry, chain_hash in bad:
            cp = entry["checkpoint"]
            finding = {
                "kind": "rewritten",
                "block_number": cp["block_number"],
                "signed_block_hash": cp["block_hash"],
                "node_block_hash": chain_hash,
                "accumulator": cp["accumulator"],
                "cid": entry.get("cid"),
                "detected_at": int(time.time()),
            }
            if self.ctx.state.record_fact(f"{_FINDING_PREFIX}{cp['block_number']:012d}:{cp['block_hash']}", finding):
                log_event(
                    self.ctx.log, "checkpointed block rewritten", level=logging.ERROR,
                    block_number=cp["block_number"], signed_block_hash=cp["block_hash"], node_block_hash=chain_hash,
                )  # fmt: skip
        lowest = min(int(e["checkpoint"]["block_number"]) for e, _ in bad)
        summary = {"checkpoints": len(bad), "lowest": lowest, "highest": int(last["block_number"])}
        self.ctx.state.set("rewritten", summary)
        raise HistoryRewritten(
            f"the node's history differs from {len(bad)} signed checkpoint(s), heights {lowest}..{last['block_number']}"
        )

    # ---- checkpointing

    def _signer(self) -> LocalAccount:
        if self._account is None:
            self._account = self.ctx.keystore.signer(self.ctx.signer_label)
        return self._account

    def _next_height(self, after: int) -> int:
        every = self.ctx.oracle_settings.checkpoint_every
        first = max(after + 1, self.ctx.deployment.deployment_block)
        return -(-first // every) * every

    def _checkpoint(self, height: int, acc_state: dict[str, Any], now: int) -> dict[str, Any] | None:
        """Fold the logs up to ``height``, sign, publish and index; None if the chain moved meanwhile."""
        acc_block = int(acc_state["block"])
        (before,) = self._hashes([height])
        if before is None:
            return None
        acc = bytes.fromhex(str(acc_state["acc"])[2:])
        events = int(acc_state["events"])
        every = self.ctx.oracle_settings.checkpoint_every
        for page in fetch_logs(self._rpc, self._addresses, acc_block + 1, height, initial_range=min(every, 2_000)):
            numbers = sorted({int(log["blockNumber"], 16) for log in page})
            canonical = dict(zip(numbers, self._hashes(numbers), strict=True))
            if any(canonical[int(log["blockNumber"], 16)] != str(log["blockHash"]).lower() for log in page):
                return None  # a log from another fork: the chain moved while reading
            acc, n = accumulate(acc, page)
            events += n
        check = [height] if acc_state["hash"] is None else [height, acc_block]
        after = self._hashes(check)
        if after[0] != before or (len(after) > 1 and after[1] != acc_state["hash"]):
            return None
        checkpoint = sign_checkpoint(
            self._signer(),
            agency=self.ctx.agency,
            chain_id=self.ctx.deployment.chain_id,
            registry=self.ctx.deployment.registry,
            ledger=self.ctx.deployment.ledger,
            block_number=height,
            block_hash=before,
            accumulator="0x" + acc.hex(),
            event_count=events,
            signed_at=now,
        )
        key = f"{_CHECKPOINT_PREFIX}{height:012d}"
        existing = self.ctx.state.fact(key)
        if existing is None:
            stored = self.ctx.store.put(checkpoint.canonical())
            entry: dict[str, Any] = {"checkpoint": checkpoint.as_json(), "cid": stored.cid}
            self.ctx.state.record_fact(key, entry)
        else:  # signed before a crash that lost the accumulator update: it must be the same view
            entry = existing
            old = parse_checkpoint(existing["checkpoint"])
            if old.view != checkpoint.view:
                finding = {
                    "kind": "rewritten", "block_number": height, "signed_block_hash": old.block_hash,
                    "node_block_hash": before, "accumulator": old.accumulator, "cid": existing.get("cid"),
                    "detected_at": int(time.time()),
                }  # fmt: skip
                self.ctx.state.record_fact(f"{_FINDING_PREFIX}{height:012d}:{old.block_hash}", finding)
                self.ctx.state.set("rewritten", {"checkpoints": 1, "lowest": height, "highest": height})
                raise HistoryRewritten(f"checkpoint {height} was signed with another block hash / accumulator")
        signed = entry["checkpoint"]
        self.ctx.state.set(
            "accumulator", {"block": height, "hash": before, "acc": signed["accumulator"], "events": events}
        )
        self.ctx.state.set(
            "last_checkpoint",
            {"block_number": height, "block_hash": before, "accumulator": signed["accumulator"], "cid": entry["cid"]},
        )
        log_event(
            self.ctx.log, "checkpoint signed", block_number=height, block_hash=before,
            accumulator=signed["accumulator"], events=events, cid=entry["cid"],
        )  # fmt: skip
        return entry

    def step(self) -> int:
        """Check the signed history against the node, then sign the checkpoints that are due."""
        self._check_history()
        latest = self._rpc.call("eth_getBlockByNumber", ["latest", False])
        if not isinstance(latest, dict):
            raise LogQueryError("the node has no latest block")
        head = int(latest["number"], 16)
        # key validity windows are in chain time: sign at the later of the wall clock and the chain's clock
        now = max(int(time.time()), int(latest["timestamp"], 16))
        safe = head - self.ctx.settings.confirmations
        done = 0
        while done < MAX_CHECKPOINTS_PER_STEP:
            acc_state = self._acc_state()
            height = self._next_height(int(acc_state["block"]))
            if height > safe:
                break
            if self._checkpoint(height, acc_state, now) is None:
                log_event(self.ctx.log, "chain moved while checkpointing; retrying", block_number=height)
                break
            done += 1
        return done

    def status(self) -> dict[str, Any]:
        """Checkpoint count, last checkpoint, rewritten-history findings."""
        return {
            "checkpoints": len(self.ctx.state.facts(_CHECKPOINT_PREFIX)),
            "last_checkpoint": self.ctx.state.get("last_checkpoint"),
            "rewritten": self.ctx.state.get("rewritten"),
            "findings": len(self.ctx.state.facts(_FINDING_PREFIX)),
        }


ORACLE = WitnessOracle


# ================================================================================ compare


@dataclass(frozen=True, kw_only=True)
class _Loaded:
    source: str
    checkpoint: Checkpoint | None
    error: str | None = None


def _read_state_dir(directory: Path) -> Iterator[tuple[str, Any]]:
    """Checkpoints indexed in another witness's state database (opened read-only)."""
    uri = f"file:{(directory / 'state.db').resolve()}?mode=ro"
    db = sqlite3.connect(uri, uri=True, timeout=30)
    try:
        rows = db.execute(
            "SELECT key, value FROM facts WHERE substr(key, 1, ?) = ? ORDER BY key LIMIT ?",
            (len(_CHECKPOINT_PREFIX), _CHECKPOINT_PREFIX, MAX_CHECKPOINTS_PER_SOURCE),
        ).fetchall()
    finally:
        db.close()
    for key, value in rows:
        entry = json.loads(value)
        yield f"{directory}#{key}", entry.get("checkpoint") if isinstance(entry, dict) else entry


def _read_file(path: Path) -> bytes:
    with path.open("rb") as handle:
        data = handle.read(MAX_CHECKPOINT_BYTES + 1)
    if len(data) > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"checkpoint larger than {MAX_CHECKPOINT_BYTES} bytes")
    return data


def load_sources(sources: Sequence[str | Path]) -> list[_Loaded]:
    """Parse every checkpoint of ``sources``: JSON files, directories of them, witness state dirs.

    Malformed checkpoints are returned with their error (reported, not fatal); an unreadable
    source (missing path) raises :class:`CheckpointError`.
    """
    loaded: list[_Loaded] = []

    def add(name: str, raw: bytes | Mapping[str, Any]) -> None:
        try:
            loaded.append(_Loaded(source=name, checkpoint=parse_checkpoint(raw)))
        except CheckpointError as exc:
            loaded.append(_Loaded(source=name, checkpoint=None, error=str(exc)))

    for source in sources:
        path = Path(source)
        if path.is_dir() and (path / "state.db").is_file():
            for name, doc in _read_state_dir(path):
                add(name, doc)
        elif path.is_dir():
            files = sorted(p for p in path.glob("*.json") if p.is_file())[:MAX_CHECKPOINTS_PER_SOURCE]
            for file in files:
                try:
                    add(str(file), _read_file(file))
                except CheckpointError as exc:
                    loaded.append(_Loaded(source=str(file), checkpoint=None, error=str(exc)))
        elif path.is_file():
            try:
                add(str(path), _read_file(path))
            except CheckpointError as exc:
                loaded.append(_Loaded(source=str(path), checkpoint=None, error=str(exc)))
        else:
            raise CheckpointError(f"no such checkpoint source: {path}")
    return loaded


def compare_checkpoints(loaded: Sequence[_Loaded], ctx: OracleContext) -> dict[str, Any]:
    """Verify every checkpoint, then report heights where valid checkpoints disagree.

    A divergence lists each distinct view (block hash, accumulator, event count) of one height with
    the agencies and sources that signed it; ``equivocation`` is set when one agency signed two
    views. ``kind`` is ``block-hash`` when the block hashes differ, else ``accumulator``.
    """
    d = ctx.deployment
    invalid: list[dict[str, Any]] = []
    seen: set[str] = set()
    by_height: dict[int, dict[tuple[str, str, int], dict[str, Any]]] = {}
    valid = 0
    for item in loaded:
        if item.checkpoint is None:
            invalid.append({"source": item.source, "error": item.error})
            continue
        cp = item.checkpoint
        try:
            verify_checkpoint(cp, ctx.read, chain_id=d.chain_id, registry=d.registry, ledger=d.ledger)
        except CheckpointError as exc:
            invalid.append(
                {"source": item.source, "agency": cp.agency, "block_number": cp.block_number, "error": str(exc)}
            )
            continue
        if cp.signature in seen:  # the same checkpoint from two sources
            continue
        seen.add(cp.signature)
        valid += 1
        view = by_height.setdefault(cp.block_number, {}).setdefault(
            cp.view,
            {"block_hash": cp.block_hash, "accumulator": cp.accumulator, "event_count": cp.event_count,
             "agencies": [], "sources": []},
        )  # fmt: skip
        if cp.agency not in view["agencies"]:
            view["agencies"].append(cp.agency)
        view["sources"].append(item.source)
    divergences = []
    for height in sorted(by_height):
        views = list(by_height[height].values())
        if len(views) < 2:
            continue
        agencies = [a for v in views for a in v["agencies"]]
        divergences.append(
            {
                "block_number": height,
                "kind": "block-hash" if len({v["block_hash"] for v in views}) > 1 else "accumulator",
                "equivocation": sorted({a for a in agencies if agencies.count(a) > 1}),
                "views": views,
            }
        )
    agreed = [
        h for h, views in by_height.items() if len(views) == 1 and len(next(iter(views.values()))["agencies"]) > 1
    ]
    return {
        "checkpoints": valid,
        "heights": len(by_height),
        "agreed_heights": len(agreed),
        "invalid": invalid,
        "divergences": divergences,
    }


def compare_sources(ctx: OracleContext, sources: Sequence[str | Path]) -> dict[str, Any]:
    """Bring ``ctx``'s read model up to date, then :func:`compare_checkpoints` over ``sources``."""
    ctx.sync()
    return compare_checkpoints(load_sources(sources), ctx)


# ================================================================================ commands


def _open(args: argparse.Namespace) -> OracleContext:
    return open_context(WitnessOracle.name, default_agency=WitnessOracle.default_agency)


def _compare(args: argparse.Namespace) -> int:
    ctx = _open(args)
    try:
        report = compare_sources(ctx, args.sources)
    finally:
        ctx.close()
    print(json.dumps(report, indent=2))
    if report["divergences"]:
        return 1
    return 1 if args.strict and report["invalid"] else 0


def _list(args: argparse.Namespace) -> int:
    ctx = _open(args)
    try:
        entries = list(ctx.state.facts(_CHECKPOINT_PREFIX).values())
        findings = list(ctx.state.facts(_FINDING_PREFIX).values())
    finally:
        ctx.close()
    if args.json:
        print(json.dumps({"checkpoints": entries, "findings": findings}, indent=2))
    else:
        for entry in entries:
            cp = entry["checkpoint"]
            line = f"{cp['block_number']:>10}  {cp['block_hash']}  acc={cp['accumulator']}"
            print(f"{line}  events={cp['event_count']}  {entry['cid']}")
        for finding in findings:
            print(
                f"REWRITTEN {finding['block_number']}: signed {finding['signed_block_hash']}, "
                f"node {finding['node_block_hash']}",
                file=sys.stderr,
            )
    return 1 if findings else 0


def add_commands(actions: Any) -> None:
    """``witness compare SOURCES…`` and ``witness list``."""
    compare = actions.add_parser(
        "compare", help="verify checkpoints from several agencies and report heights they disagree about (JSON)"
    )
    compare.add_argument("sources", nargs="+", help="checkpoint JSON file, directory of them, or a witness state dir")
    compare.add_argument("--strict", action="store_true", help="exit 1 on invalid checkpoints too")
    compare.set_defaults(handler=_compare, oracle_cls=WitnessOracle)
    listing = actions.add_parser("list", help="this agency's checkpoints (and rewritten-history findings)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_list, oracle_cls=WitnessOracle)
