"""Offline verification of evidence bundles (``customs-ledger-evidence/1``, docs/evidence.md).

:func:`verify_bundle` is pure: it takes the bundle's bytes (or its parsed JSON), the hash of a block
the caller trusts, and optionally the document's bytes; it reads nothing else (no network, no files
— the contracts' event ABIs are the committed artifacts, loaded once with the package) and either
returns an :class:`EvidenceReport` or raises an :class:`~ledger_api.errors.EvidenceError` naming the
numbered step that failed.

A bundle carries only chain data that hashes into the block headers — header fields, raw
transactions, consensus receipts — plus the subject (a sha256, and a Merkle proof when batched).
Everything a person reads (the declaration, stamps, decisions, the registry facts as of each
action, the verdict) is *re-derived* here from the proven logs and must equal what the exporter
wrote; :func:`derive` is the same function the exporter uses to write them.

The checklist:

1. **format** — size limit, strict JSON (no duplicate keys), canonical bytes, exact schema, hex forms.
2. **headers** — each header's hash is ``keccak(rlp(fields))``; numbers are consecutive from the
   deployment block; each ``parentHash`` is the previous header's hash.
3. **trusted block** — the last header's hash is the block hash the caller trusts (and, when the
   caller gives its deployment record, the bundle's chain id, contracts and deployment block are it).
4. **transactions** — each included block's raw transactions rebuild its ``transactionsRoot``;
   typed transactions carry the bundle's chain id.
5. **receipts** — each included block's receipts rebuild its ``receiptsRoot`` (one per transaction).
6. **events** — every log of the two contracts decodes against the committed ABIs.
7. **completeness** — every header whose ``logsBloom`` may hold a log of the registry, or of the
   ledger with a topic of the subject, has its transactions and receipts in the bundle (a bloom has
   no false negatives: a block left out provably holds no such log).
8. **subject** — the sha256 is anchored by a proven event (first anchor, the contract's precedence),
   or is a leaf of a proven batch root by an OpenZeppelin StandardMerkleTree proof.
9. **state** — Merkle-Patricia proofs (``eth_getProof``) against the trusted block's ``stateRoot``
   show the ledger's storage agrees with the derived facts: the declaration's packed slot
   (declarant, jurisdiction, status, channel, required stamps, version), a supporting document's
   owner (the contract's first anchor), and each stamp's declaration, signer, agency, type, result,
   revoked flag and signing time.
10. **signatures** — every relayed stamp's transaction calls ``relayStamp`` on the ledger with the
   stamp's fields, and its EIP-712 signature (low-s) recovers the stamp's signer.
11. **facts** — the facts re-derived from the proven events equal the bundle's ``facts``.
12. **verdict** — the verification checklist (:func:`ledger_api.verify.verify`) over those facts
    gives the bundle's ``verdict``.
13. **document** — when a document is given, its sha256 is the subject.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import rlp  # type: ignore[import-untyped]
from eth_abi.abi import decode as abi_decode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from trie.hexary import HexaryTrie

from ledger_api.chain.artifacts import load_artifact
from ledger_api.chain.events import DecodedEvent, EventDecoder, EventSpec
from ledger_api.chain.typed_data import recover_typed_data, stamp_typed_data
from ledger_api.documents import StandardMerkleTree
from ledger_api.errors import BundleTooLarge, EvidenceInvalid, LedgerError, MalformedBundle
from ledger_api.hashing import strict_json
from ledger_api.index import (
    AlertView,
    AnchorKind,
    AnchorView,
    DecisionEventView,
    DeclarationStatus,
    DeclarationView,
    StampView,
    SupportingDocumentView,
)
from ledger_api.verify._verifier import StampFacts, VerificationFacts
from ledger_api.verify._verifier import verify as run_checklist

__all__ = [
    "FORMAT",
    "MAX_BUNDLE_BYTES",
    "EvidenceReport",
    "STEPS",
    "TrustedDeployment",
    "canonical_bundle",
    "derive",
    "header_hash",
    "parse_bundle",
    "read_bundle_zip",
    "bloom_may_contain",
    "needs_contents",
    "subject_topics",
    "receipt_bytes",
    "state_slots",
    "trie_root",
    "verify_bundle",
]

#: The bundle format this module reads and the exporter writes.
FORMAT = "customs-ledger-evidence/1"
#: Bundles larger than this are refused before parsing.
MAX_BUNDLE_BYTES = 64 * 1024 * 1024

#: The checklist, by step number.
STEPS: dict[int, str] = {
    1: "format", 2: "headers", 3: "trusted block", 4: "transactions", 5: "receipts", 6: "events",
    7: "completeness", 8: "subject", 9: "state", 10: "signatures", 11: "facts", 12: "verdict", 13: "document",
}  # fmt: skip

_Q = re.compile(r"0x(0|[1-9a-f][0-9a-f]*)")
_DATA = re.compile(r"0x([0-9a-f]{2})*")
_RELAY_SELECTOR = keccak(text="relayStamp((bytes32,uint8,uint8,bytes32,bytes,address,uint64,uint256,uint256),bytes)")[
    :4
]
_RELAY_TYPES = ["(bytes32,uint8,uint8,bytes32,bytes,address,uint64,uint256,uint256)", "bytes"]
_ZERO_ADDRESS = "0x" + "00" * 20

# Header fields in RLP order: (name, kind); the trailing ones appear by fork (London … Prague).
_HEADER_FIELDS: tuple[tuple[str, str], ...] = (
    ("parentHash", "h32"), ("sha3Uncles", "h32"), ("miner", "h20"), ("stateRoot", "h32"),
    ("transactionsRoot", "h32"), ("receiptsRoot", "h32"), ("logsBloom", "h256"), ("difficulty", "q"),
    ("number", "q"), ("gasLimit", "q"), ("gasUsed", "q"), ("timestamp", "q"), ("extraData", "data"),
    ("mixHash", "h32"), ("nonce", "h8"),
)  # fmt: skip
_HEADER_TRAILING: tuple[tuple[str, str], ...] = (
    ("baseFeePerGas", "q"), ("withdrawalsRoot", "h32"), ("blobGasUsed", "q"), ("excessBlobGas", "q"),
    ("parentBeaconBlockRoot", "h32"), ("requestsHash", "h32"),
)  # fmt: skip
_SIZES = {"h8": 8, "h20": 20, "h32": 32, "h256": 256}


def _fail(step: int, message: str) -> EvidenceInvalid:
    return EvidenceInvalid(message, step=step, check=STEPS[step])


# ================================================================================ format (step 1)


def canonical_bundle(bundle: Mapping[str, Any]) -> bytes:
    """The canonical bytes of a bundle: compact JSON, keys sorted, ASCII only, one trailing newline."""
    return (json.dumps(bundle, sort_keys=True, separators=(",", ":"), ensure_ascii=True) + "\n").encode("ascii")


def parse_bundle(data: bytes) -> dict[str, Any]:
    """Parse a bundle's bytes (step 1): size limit, strict JSON, canonical form, schema, hex forms."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleTooLarge(limit=MAX_BUNDLE_BYTES, seen=len(data))
    try:
        parsed = strict_json(data)
    except (ValueError, RecursionError) as exc:
        raise MalformedBundle(f"not strict JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise MalformedBundle("a bundle is a JSON object")
    _check_schema(parsed)
    if canonical_bundle(parsed) != data:
        raise MalformedBundle("the bytes are not the bundle's canonical form (compact, sorted keys, ASCII, newline)")
    return parsed


def _keys(value: Any, where: str, required: Iterable[str], optional: Iterable[str] = ()) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedBundle(f"{where} must be an object")
    required, optional = set(required), set(optional)
    missing = required - value.keys()
    extra = value.keys() - required - optional
    if missing or extra:
        raise MalformedBundle(f"{where}: missing {sorted(missing)}, unknown {sorted(extra)}")
    return value


def _hex(value: Any, where: str, kind: str) -> str:
    if not isinstance(value, str):
        raise MalformedBundle(f"{where} must be a 0x-hex string")
    if kind == "q":
        if not _Q.fullmatch(value):
            raise MalformedBundle(f"{where} must be a canonical 0x quantity (lowercase, no leading zeros)")
    elif not _DATA.fullmatch(value) or (kind in _SIZES and len(value) != 2 + 2 * _SIZES[kind]):
        raise MalformedBundle(
            f"{where} must be lowercase 0x-hex" + (f" of {_SIZES[kind]} bytes" if kind in _SIZES else "")
        )
    return value


def _int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MalformedBundle(f"{where} must be a non-negative integer")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise MalformedBundle(f"{where} must be an array")
    return value


def _check_schema(bundle: dict[str, Any]) -> None:
    _keys(bundle, "bundle", ("format", "chain_id", "contracts", "deployment_block", "subject", "blocks", "state",
                             "facts", "verdict"))  # fmt: skip
    if bundle["format"] != FORMAT:
        raise MalformedBundle(f"unknown format {bundle['format']!r} (this reader knows {FORMAT})")
    _int(bundle["chain_id"], "chain_id")
    _int(bundle["deployment_block"], "deployment_block")
    contracts = _keys(bundle["contracts"], "contracts", ("registry", "ledger"))
    for name in ("registry", "ledger"):
        _hex(contracts[name], f"contracts.{name}", "h20")
    subject = _keys(bundle["subject"], "subject", ("sha256", "batch"))
    _hex(subject["sha256"], "subject.sha256", "h32")
    if subject["batch"] is not None:
        batch = _keys(subject["batch"], "subject.batch", ("root", "leaf_encoding", "value", "proof"))
        _hex(batch["root"], "subject.batch.root", "h32")
        encoding = _list(batch["leaf_encoding"], "subject.batch.leaf_encoding")
        if not all(isinstance(t, str) for t in encoding):
            raise MalformedBundle("subject.batch.leaf_encoding must be ABI type names")
        if len(_list(batch["value"], "subject.batch.value")) != len(encoding):
            raise MalformedBundle("subject.batch.value must have one value per leaf type")
        for n, node in enumerate(_list(batch["proof"], "subject.batch.proof")):
            _hex(node, f"subject.batch.proof[{n}]", "h32")
    blocks = _list(bundle["blocks"], "blocks")
    if not blocks:
        raise MalformedBundle("blocks must not be empty")
    for b, block in enumerate(blocks):
        _keys(block, f"blocks[{b}]", ("header", "transactions", "receipts"))
        _header_fields(block["header"], f"blocks[{b}].header")
        if (block["transactions"] is None) != (block["receipts"] is None):
            raise MalformedBundle(f"blocks[{b}]: transactions and receipts go together")
        if block["transactions"] is None:
            continue
        for t, raw in enumerate(_list(block["transactions"], f"blocks[{b}].transactions")):
            _hex(raw, f"blocks[{b}].transactions[{t}]", "data")
        for r, receipt in enumerate(_list(block["receipts"], f"blocks[{b}].receipts")):
            where = f"blocks[{b}].receipts[{r}]"
            _keys(receipt, where, ("type", "status", "cumulativeGasUsed", "logsBloom", "logs"))
            for name in ("type", "status", "cumulativeGasUsed"):
                _hex(receipt[name], f"{where}.{name}", "q")
            _hex(receipt["logsBloom"], f"{where}.logsBloom", "h256")
            for n, log in enumerate(_list(receipt["logs"], f"{where}.logs")):
                _keys(log, f"{where}.logs[{n}]", ("address", "topics", "data"))
                _hex(log["address"], f"{where}.logs[{n}].address", "h20")
                _hex(log["data"], f"{where}.logs[{n}].data", "data")
                for k, topic in enumerate(_list(log["topics"], f"{where}.logs[{n}].topics")):
                    _hex(topic, f"{where}.logs[{n}].topics[{k}]", "h32")
    if bundle["state"] is not None:
        state = _keys(bundle["state"], "state", ("account_proof", "storage"))
        for n, node in enumerate(_list(state["account_proof"], "state.account_proof")):
            _hex(node, f"state.account_proof[{n}]", "data")
        for n, entry in enumerate(_list(state["storage"], "state.storage")):
            _keys(entry, f"state.storage[{n}]", ("slot", "value", "proof"))
            _hex(entry["slot"], f"state.storage[{n}].slot", "h32")
            _hex(entry["value"], f"state.storage[{n}].value", "q")
            for k, node in enumerate(_list(entry["proof"], f"state.storage[{n}].proof")):
                _hex(node, f"state.storage[{n}].proof[{k}]", "data")
    if not isinstance(bundle["facts"], dict) or not isinstance(bundle["verdict"], dict):
        raise MalformedBundle("facts and verdict must be objects")


def _header_fields(header: Any, where: str) -> list[tuple[str, str]]:
    if not isinstance(header, dict):
        raise MalformedBundle(f"{where} must be an object")
    fields = list(_HEADER_FIELDS)
    for name, kind in _HEADER_TRAILING:  # trailing fields: a prefix of the list, as forks added them
        if name not in header:
            break
        fields.append((name, kind))
    _keys(header, where, (name for name, _ in fields))
    for name, kind in fields:
        _hex(header[name], f"{where}.{name}", kind)
    return fields


# ================================================================================ hashing (steps 2–5)


def _bytes(value: str) -> bytes:
    return bytes.fromhex(value[2:])


def header_hash(header: Mapping[str, Any]) -> str:
    """``keccak(rlp(header))`` of a JSON-RPC block header (0x-hex), trailing fork fields included."""
    fields = _header_fields(dict(header), "header")
    items = [int(header[name], 16) if kind == "q" else _bytes(header[name]) for name, kind in fields]
    return "0x" + keccak(rlp.encode(items)).hex()


def receipt_bytes(receipt: Mapping[str, Any]) -> bytes:
    """A receipt's consensus encoding: ``rlp([status, cumulativeGasUsed, logsBloom, logs])``, typed ones prefixed."""
    logs = [
        [_bytes(log["address"]), [_bytes(t) for t in log["topics"]], _bytes(log["data"])] for log in receipt["logs"]
    ]
    body: bytes = rlp.encode(
        [int(receipt["status"], 16), int(receipt["cumulativeGasUsed"], 16), _bytes(receipt["logsBloom"]), logs]
    )
    kind = int(receipt["type"], 16)
    return body if kind == 0 else bytes([kind]) + body


def trie_root(values: Sequence[bytes]) -> str:
    """Root of the Merkle-Patricia trie ``{rlp(index): value}`` (transactions / receipts tries)."""
    trie = HexaryTrie(db={})
    for index, value in enumerate(values):
        trie[rlp.encode(index)] = value
    return "0x" + bytes(trie.root_hash).hex()


def _tx_fields(raw: bytes) -> tuple[int | None, bytes, bytes]:
    """``(chain id or None, to, input)`` of a raw transaction (legacy, 2930, 1559, 4844, 7702)."""
    if raw and raw[0] >= 0xC0:
        items = rlp.decode(raw)
        v = int.from_bytes(items[6], "big")
        return ((v - 35) // 2 if v >= 35 else None), items[3], items[5]
    if not raw or raw[0] not in (1, 2, 3, 4):
        raise ValueError(f"unknown transaction type {raw[:1].hex()}")
    items = rlp.decode(raw[1:])
    chain_id = int.from_bytes(items[0], "big")
    if raw[0] == 1:
        return chain_id, items[4], items[6]
    return chain_id, items[5], items[7]


# ================================================================================ the proven chain


@dataclass(frozen=True, kw_only=True)
class _Proven:
    """What steps 2–6 proved: block hashes and times by number, decoded events in chain order, raw txs by hash."""

    hashes: dict[int, str]
    timestamps: dict[int, int]
    events: list[DecodedEvent]
    transactions: dict[str, bytes]  # tx hash → raw transaction
    included: set[int]


#: The event layouts of both contracts, from the committed ABIs, read once when this module is imported:
#: verifying a bundle reads nothing.
_SPECS: tuple[EventSpec, ...] = tuple(
    EventSpec.from_abi(name, entry, hex_bytes=True)
    for name in ("AgencyRegistry", "ClearanceLedger")
    for entry in load_artifact(name).abi
    if entry.get("type") == "event" and not entry.get("anonymous", False)
)


def _decoder(registry: str, ledger: str) -> EventDecoder:
    return EventDecoder(contracts={registry: "AgencyRegistry", ledger: "ClearanceLedger"}, specs=_SPECS)


def _prove_chain(
    bundle: Mapping[str, Any], trusted_block: str | None, deployment: TrustedDeployment | None = None
) -> _Proven:
    blocks = bundle["blocks"]
    hashes: dict[int, str] = {}
    timestamps: dict[int, int] = {}
    previous: str | None = None
    expected_number = bundle["deployment_block"]
    # 2. headers: hash, consecutive numbers from the deployment block, parent links.
    for block in blocks:
        header = block["header"]
        number = int(header["number"], 16)
        if number != expected_number:
            raise _fail(2, f"header number {number} where block {expected_number} was expected")
        if previous is not None and header["parentHash"] != previous:
            raise _fail(2, f"block {number}'s parentHash is not the hash of block {number - 1}")
        previous = header_hash(header)
        hashes[number] = previous
        timestamps[number] = int(header["timestamp"], 16)
        expected_number += 1
    # 3. trusted block.
    last = expected_number - 1
    if trusted_block is not None and previous != trusted_block.lower():
        where = [n for n, h in hashes.items() if h == trusted_block.lower()]
        detail = f" (it is block {where[0]}, not the bundle's last block)" if where else ""
        raise _fail(3, f"the bundle's last block {last} hashes to {previous}, not the trusted {trusted_block}{detail}")
    if deployment is not None:
        claimed = (bundle["chain_id"], bundle["contracts"]["registry"], bundle["contracts"]["ledger"],
                   bundle["deployment_block"])  # fmt: skip
        known = (deployment.chain_id, deployment.registry.lower(), deployment.ledger.lower(),
                 deployment.deployment_block)  # fmt: skip
        if claimed != known:
            raise _fail(3, f"the bundle is about chain {claimed[0]}, registry {claimed[1]}, ledger {claimed[2]} "
                           f"from block {claimed[3]}: not the trusted deployment {known}")  # fmt: skip
    chain_id = bundle["chain_id"]
    registry, ledger = bundle["contracts"]["registry"], bundle["contracts"]["ledger"]
    decoder = _decoder(registry, ledger)
    events: list[DecodedEvent] = []
    transactions: dict[str, bytes] = {}
    included: set[int] = set()
    for block in blocks:
        if block["transactions"] is None:
            continue
        header = block["header"]
        number = int(header["number"], 16)
        included.add(number)
        raws = [_bytes(t) for t in block["transactions"]]
        # 4. transactions root; typed transactions name the bundle's chain.
        if trie_root(raws) != header["transactionsRoot"]:
            raise _fail(4, f"block {number}'s transactions do not rebuild its transactionsRoot")
        for raw in raws:
            try:
                tx_chain, _, _ = _tx_fields(raw)
            except (ValueError, TypeError, rlp.exceptions.DecodingError, IndexError) as exc:
                raise _fail(4, f"block {number}: undecodable transaction: {exc}") from exc
            if tx_chain is not None and tx_chain != chain_id:
                raise _fail(4, f"block {number}: a transaction signed for chain {tx_chain}, not {chain_id}")
        # 5. receipts root.
        receipts = block["receipts"]
        if len(receipts) != len(raws):
            raise _fail(5, f"block {number} has {len(raws)} transactions but {len(receipts)} receipts")
        if trie_root([receipt_bytes(r) for r in receipts]) != header["receiptsRoot"]:
            raise _fail(5, f"block {number}'s receipts do not rebuild its receiptsRoot")
        # 6. decode the contracts' logs.
        log_index = 0
        for raw, receipt in zip(raws, receipts, strict=True):
            tx_hash = "0x" + keccak(raw).hex()
            transactions[tx_hash] = raw
            for log in receipt["logs"]:
                if log["address"] in (registry, ledger) and int(receipt["status"], 16) == 1:
                    raw_log = {
                        "address": log["address"], "topics": log["topics"], "data": log["data"],
                        "blockNumber": hex(number), "blockHash": hashes[number], "transactionHash": tx_hash,
                        "logIndex": hex(log_index),
                    }  # fmt: skip
                    try:
                        event = decoder.decode(raw_log)
                    except LedgerError as exc:
                        raise _fail(6, f"block {number} log {log_index}: {exc}") from exc
                    events.append(event)
                log_index += 1
    return _Proven(
        hashes=hashes, timestamps=timestamps, events=events, transactions=transactions,
        included=included,
    )  # fmt: skip


# ================================================================================ blooms (step 7)


def _bloom_bits(value: bytes) -> list[int]:
    digest = keccak(value)
    return [((digest[i] << 8) | digest[i + 1]) & 2047 for i in (0, 2, 4)]


def bloom_may_contain(bloom: bytes, value: bytes) -> bool:
    """Whether a 2048-bit logs bloom may contain ``value`` (an address or a topic): no false negatives."""
    return all(bloom[255 - bit // 8] >> (bit % 8) & 1 for bit in _bloom_bits(value))


def needs_contents(header: Mapping[str, Any], registry: str, ledger: str, subject_topics: Iterable[str]) -> bool:
    """Whether a block must be in the bundle with its contents: its bloom may hold a registry log, or a
    ledger log with one of ``subject_topics`` (0x-hex 32-byte words)."""
    bloom = _bytes(header["logsBloom"])
    if bloom_may_contain(bloom, _bytes(registry)):
        return True
    if not bloom_may_contain(bloom, _bytes(ledger)):
        return False
    return any(bloom_may_contain(bloom, _bytes(t)) for t in subject_topics)


# ================================================================================ derivation


def _pad(address: str) -> str:
    return "0x" + "00" * 12 + address.lower()[2:]


def _agency_code(agency_id: str) -> str:
    return _bytes(agency_id).rstrip(b"\0").decode("ascii", "replace")


def subject_topics(events: Sequence[DecodedEvent], sha256: str, batch_root: str | None = None) -> set[str]:
    """The 32-byte words whose ledger logs concern the subject: its sha256, the declaration versions
    it belongs to (the amendment chain both ways), the declarant (alerts) and the batch root — the
    closure over ``events``, computed with a worklist (linear in the events, however long the
    amendment chain)."""
    edges: list[set[str]] = []  # what an event adds once any of its trigger words concerns the subject
    by_trigger: dict[str, list[int]] = {}
    for e in events:
        if e.contract != "ClearanceLedger":
            continue
        args = e.args
        if e.name in ("DeclarationSubmitted", "DeclarationAmended"):
            ids = {i for i in (args["declarationId"], args.get("previousId", "")) if i}
            triggers = ids | {d["sha256"] for d in args["documents"]}
            adds = ids | {_pad(args["declarant"])}
        elif e.name == "StampRecorded":
            triggers, adds = {args["stampId"]}, {args["declarationId"]}
        else:
            continue
        edges.append(adds)
        for word in triggers:
            by_trigger.setdefault(word, []).append(len(edges) - 1)
    words = {sha256} | ({batch_root} if batch_root else set())
    pending = list(words)
    fired: set[int] = set()
    while pending:
        for edge in by_trigger.get(pending.pop(), ()):
            if edge in fired:
                continue
            fired.add(edge)
            for word in edges[edge] - words:
                words.add(word)
                pending.append(word)
    return words


class _Registry:
    """Registry state replayed from proven events, queried as of a position ``(block, log index)``."""

    def __init__(self, events: Sequence[DecodedEvent]) -> None:
        self.index_of: dict[str, int] = {}
        self.agency_history: dict[int, list[tuple[tuple[int, int], int, int]]] = {}  # pos, roles, status
        self.key_history: dict[
            str, list[tuple[tuple[int, int], int, int, int, int]]
        ] = {}  # pos, agency, from, until, compromised
        self.trader_history: dict[str, list[tuple[tuple[int, int], int, bool]]] = {}  # pos, status, aeo
        self.codes: dict[int, str] = {}
        for e in events:
            if e.contract != "AgencyRegistry":
                continue
            pos, a = (e.block_number, e.log_index), e.args
            if e.name == "AgencyAdded":
                index = int(a["agencyIndex"])
                self.index_of[a["agencyId"]] = index
                self.codes[index] = _agency_code(a["agencyId"])
                self.agency_history[index] = [(pos, int(a["roles"]), 1)]
            elif e.name in ("AgencyRolesChanged", "AgencyStatusChanged") and a["agencyId"] in self.index_of:
                history = self.agency_history[self.index_of[a["agencyId"]]]
                _, roles, status = history[-1]
                if e.name == "AgencyRolesChanged":
                    roles = int(a["roles"])
                else:
                    status = int(a["status"])
                history.append((pos, roles, status))
            elif e.name == "SignerKeyAdded":
                signer = str(a["signer"]).lower()
                agency = self.index_of.get(a["agencyId"], 0)
                self.key_history.setdefault(signer, []).append(
                    (pos, agency, int(a["validFrom"]), int(a["validUntil"]), 0)
                )
            elif e.name in ("SignerKeyExpiryChanged", "SignerKeyCompromised"):
                signer = str(a["signer"]).lower()
                keys = self.key_history.get(signer)
                if keys:
                    _, agency, valid_from, valid_until, compromised = keys[-1]
                    if e.name == "SignerKeyExpiryChanged":
                        valid_until = int(a["validUntil"])
                    else:
                        compromised = int(a["compromisedAt"])
                    keys.append((pos, agency, valid_from, valid_until, compromised))
            elif e.name in ("TraderRegistered", "TraderUpdated"):
                trader = str(a["trader"]).lower()
                status = 1 if e.name == "TraderRegistered" else int(a["status"])
                self.trader_history.setdefault(trader, []).append((pos, status, bool(a["aeo"])))

    @staticmethod
    def _as_of(history: Sequence[Any], pos: tuple[int, int]) -> Any:
        last = None
        for entry in history:
            if entry[0] < pos:
                last = entry
        return last

    def agency(self, index: int, pos: tuple[int, int]) -> dict[str, Any]:
        """An agency's code, roles and status as of ``pos`` (roles 0 / status 0 when unknown then)."""
        entry = self._as_of(self.agency_history.get(index, []), pos)
        return {"index": index, "code": self.codes.get(index, ""), "roles": entry[1] if entry else 0,
                "status": entry[2] if entry else 0}  # fmt: skip

    def key(self, signer: str, pos: tuple[int, int]) -> dict[str, Any] | None:
        """A signer key's agency and window as known at ``pos``."""
        entry = self._as_of(self.key_history.get(signer.lower(), []), pos)
        if entry is None:
            return None
        return {"agency_index": entry[1], "valid_from": entry[2], "valid_until": entry[3], "compromised_at": entry[4]}

    def trader(self, trader: str, pos: tuple[int, int]) -> dict[str, Any] | None:
        """A trader's status and AEO flag as of ``pos``."""
        entry = self._as_of(self.trader_history.get(trader.lower(), []), pos)
        return None if entry is None else {"status": entry[1], "aeo": entry[2]}


def _key_valid(key: Mapping[str, Any] | None, agency_index: int, time: int) -> bool:
    return bool(
        key is not None and key["agency_index"] == agency_index and agency_index != 0
        and key["valid_from"] <= time < key["valid_until"]
        and (key["compromised_at"] == 0 or time < key["compromised_at"])
    )  # fmt: skip


def _where(e: DecodedEvent, timestamps: Mapping[int, int]) -> dict[str, Any]:
    return {"block": e.block_number, "tx": e.tx_hash.lower(), "log_index": e.log_index,
            "timestamp": timestamps[e.block_number]}  # fmt: skip


def derive(bundle: Mapping[str, Any], *, proven: _Proven | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``(facts, verdict)`` a bundle's proven events give (the exporter writes exactly these).

    Raises :class:`EvidenceInvalid` (step 8 **subject**) when the subject is not anchored by a
    proven event, and the errors of steps 2–6 when ``proven`` is not given and the chain data is bad.
    """
    if proven is None:
        proven = _prove_chain(bundle, None)
    facts, verification, _ = _derive(bundle, proven)
    verdict = run_checklist(verification)
    return facts, {
        "status": verdict.status,
        "anchored_as": verdict.anchored_as,
        "declaration_status": verdict.declaration_status,
        "checks": [{"step": c.step, "name": c.name, "outcome": c.outcome, "detail": c.detail} for c in verdict.checks],
    }


def _derive(bundle: Mapping[str, Any], proven: _Proven) -> tuple[dict[str, Any], VerificationFacts, list[DecodedEvent]]:
    sha256 = bundle["subject"]["sha256"]
    batch = bundle["subject"]["batch"]
    events, times = proven.events, proven.timestamps
    registry = _Registry(events)
    ledger_events = [e for e in events if e.contract == "ClearanceLedger"]
    # 8. The subject: first anchor by the contract's precedence, or a Merkle leaf of a proven batch.
    anchor: dict[str, Any] | None = None
    declaration_id: str | None = None
    batch_fact: dict[str, Any] | None = None
    if batch is not None:
        try:
            StandardMerkleTree.verify(batch["root"], batch["leaf_encoding"], batch["value"], batch["proof"])
        except (LedgerError, ValueError, TypeError, OverflowError, KeyError, IndexError) as exc:
            raise _fail(8, f"the Merkle proof does not lead to the batch root: {exc}") from exc
        leaf_words = [str(v).lower() for t, v in zip(batch["leaf_encoding"], batch["value"], strict=True)
                      if t == "bytes32"]  # fmt: skip
        if sha256 not in leaf_words:
            raise _fail(8, "the batch leaf does not hold the subject's sha256 as a bytes32 value")
        anchored = [e for e in ledger_events if e.name == "BatchAnchored" and e.args["root"] == batch["root"]]
        if not anchored:
            raise _fail(8, f"no proven BatchAnchored event for root {batch['root']}")
        e = anchored[0]
        batch_fact = {
            "root": batch["root"], "agency": registry.agency(int(e.args["agencyIndex"]), (e.block_number, e.log_index)),
            "leaf_count": int(e.args["leafCount"]), "kind": int(e.args["kind"]), "manifest_cid": e.args["manifestCid"],
            "signer": e.args["signer"].lower(), **_where(e, times),
        }  # fmt: skip
        anchor = {"kind": "batch_leaf", "ref": batch["root"], "cid": None, **_where(e, times)}
    else:
        candidates: list[tuple[int, DecodedEvent, str, str | None]] = []  # precedence, event, ref, cid
        for e in ledger_events:
            a = e.args
            if e.name in ("DeclarationSubmitted", "DeclarationAmended"):
                if a["declarationId"] == sha256:
                    candidates.append((0, e, sha256, a["cid"]))
                for d in a["documents"]:
                    if d["sha256"] == sha256:
                        candidates.append((1, e, a["declarationId"], d["cid"]))
            elif e.name == "StampRecorded" and a["stampId"] == sha256:
                candidates.append((2, e, a["declarationId"], a["reportCid"]))
            elif e.name == "BatchAnchored" and a["root"] == sha256:
                candidates.append((3, e, sha256, a["manifestCid"]))
        if not candidates:
            raise _fail(8, f"{sha256} is not anchored by any proven event")
        rank, e, ref, cid = min(candidates, key=lambda c: (c[0], c[1].block_number, c[1].log_index))
        kind = ("declaration", "supporting_document", "stamp_report", "batch_root")[rank]
        anchor = {"kind": kind, "ref": ref, "cid": cid, **_where(e, times)}
        if rank < 3:
            declaration_id = ref
        else:
            batch_fact = {
                "root": sha256, "agency": registry.agency(int(e.args["agencyIndex"]), (e.block_number, e.log_index)),
                "leaf_count": int(e.args["leafCount"]), "kind": int(e.args["kind"]),
                "manifest_cid": e.args["manifestCid"], "signer": e.args["signer"].lower(), **_where(e, times),
            }  # fmt: skip

    anchor_kind = {"declaration": AnchorKind.DECLARATION, "supporting_document": AnchorKind.SUPPORTING_DOCUMENT,
                   "stamp_report": AnchorKind.STAMP_REPORT, "batch_root": AnchorKind.BATCH_ROOT,
                   "batch_leaf": AnchorKind.BATCH_ROOT}[anchor["kind"]]  # fmt: skip
    anchor_view = AnchorView(
        sha256=sha256, kind=anchor_kind, ref=anchor["ref"], cid=anchor["cid"], block_number=anchor["block"],
        log_index=anchor["log_index"], timestamp=anchor["timestamp"],
    )  # fmt: skip
    alert_subjects = {sha256}
    facts: dict[str, Any] = {"anchor": anchor, "batch": batch_fact, "declaration": None, "declarant": None,
                             "stamps": [], "decisions": [], "alerts": []}  # fmt: skip
    verification = VerificationFacts(sha256=sha256, anchors=(anchor_view,))

    if declaration_id is not None:
        decl, declaration_view, stamps, decisions, declarant = _declaration(
            declaration_id, ledger_events, registry, times
        )
        alert_subjects |= {declaration_id, _pad(declaration_view.declarant)}
        facts.update(declaration=decl, declarant=declarant, stamps=[s for s, _ in stamps], decisions=decisions)
        verification = VerificationFacts(
            sha256=sha256, anchors=(anchor_view,), declaration=declaration_view,
            declarant_registered=declarant["registered"], stamps=tuple(f for _, f in stamps),
            decisions=tuple(
                DecisionEventView(
                    declaration_id=declaration_id, round=d["round"], action=d["action"], kind=d["kind"],
                    status=d["status"], reason_code=d["reason_code"], report_sha256=d["report_sha256"],
                    signer=d["signer"], approvals=None, approvals_required=None, pass_stamps=tuple(d["pass_stamps"]),
                    block_number=d["block"], log_index=d["log_index"], timestamp=d["timestamp"],
                )
                for d in decisions
            ),
        )  # fmt: skip
    alerts = _alerts(ledger_events, alert_subjects, times)
    facts["alerts"] = alerts
    verification = VerificationFacts(
        sha256=verification.sha256, anchors=verification.anchors, declaration=verification.declaration,
        declarant_registered=verification.declarant_registered, stamps=verification.stamps,
        decisions=verification.decisions,
        alerts=tuple(
            AlertView(alert_id=a["alert_id"], subject=a["subject"], subject_kind=a["subject_kind"],
                      agency_index=a["agency"]["index"], reason_code=a["reason_code"],
                      evidence_sha256=a["evidence_sha256"], signer=a["signer"], block_number=a["block"],
                      raised_at=a["timestamp"], active=a["cleared"] is None, cleared_block=None)
            for a in alerts if a["cleared"] is None
        ),
    )  # fmt: skip
    return facts, verification, ledger_events


def _declaration(
    declaration_id: str, events: Sequence[DecodedEvent], registry: _Registry, times: Mapping[int, int]
) -> tuple[dict[str, Any], DeclarationView, list[tuple[dict[str, Any], StampFacts]], list[dict[str, Any]],
           dict[str, Any]]:  # fmt: skip
    """The declaration version's lifecycle, stamps and decisions, each with its registry facts."""
    mine = [
        e for e in events if e.args.get("declarationId") == declaration_id or e.args.get("previousId") == declaration_id
    ]
    created = next((e for e in mine if e.name in ("DeclarationSubmitted", "DeclarationAmended")
                    and e.args["declarationId"] == declaration_id), None)  # fmt: skip
    if created is None:
        raise _fail(8, f"declaration {declaration_id} has no proven DeclarationSubmitted / DeclarationAmended event")
    a = created.args
    pos = (created.block_number, created.log_index)
    previous = a.get("previousId")
    mrn: str | None = None
    if previous:  # an amendment carries its predecessor's MRN
        for e in events:
            if e.name == "DeclarationAccepted" and e.args["declarationId"] == previous:
                mrn = e.args["mrn"]
    jurisdiction = int(a["jurisdiction"]) if "jurisdiction" in a else None
    if jurisdiction is None:  # amendments keep the first version's jurisdiction
        chain = {e.args["declarationId"]: e for e in events if e.name in ("DeclarationSubmitted", "DeclarationAmended")}
        ancestor = created
        while "jurisdiction" not in ancestor.args and ancestor.args.get("previousId") in chain:
            ancestor = chain[ancestor.args["previousId"]]
        jurisdiction = int(ancestor.args.get("jurisdiction", 0))
    status, channel, required, rule_set, superseded_by = DeclarationStatus.SUBMITTED, 0, 0, None, None
    stamps: list[tuple[dict[str, Any], StampFacts]] = []
    stamp_index: dict[str, int] = {}
    decisions: list[dict[str, Any]] = []
    lifecycle: list[dict[str, Any]] = []
    head = (max(times) + 1, 0)
    for e in mine:
        x, where = e.args, _where(e, times)
        epos = (e.block_number, e.log_index)
        if e.name == "DeclarationAmended" and x["previousId"] == declaration_id:
            status, superseded_by = DeclarationStatus.SUPERSEDED, x["declarationId"]
            lifecycle.append({"event": "amended", "by": x["declarationId"], **where})
        elif e.name == "DeclarationAccepted":
            mrn = x["mrn"]
            status = DeclarationStatus.RELEASED if x["released"] else DeclarationStatus.ACCEPTED
            lifecycle.append({"event": "accepted", "mrn": mrn, "released": bool(x["released"]),
                              **_actor(x["signer"], registry, epos, e.block_number, times), **where})  # fmt: skip
        elif e.name == "ChannelAssigned":
            channel, required, rule_set = int(x["channel"]), int(x["requiredStamps"]), x["ruleSetHash"]
            if x["released"]:
                status = DeclarationStatus.RELEASED
            lifecycle.append({"event": "channel", "channel": channel, "required_stamps": required,
                              "rule_set_hash": rule_set, "released": bool(x["released"]),
                              **_actor(x["signer"], registry, epos, e.block_number, times), **where})  # fmt: skip
        elif e.name == "StampRecorded":
            signer = str(x["signer"]).lower()
            agency_index = int(x["agencyIndex"])
            key = registry.key(signer, head)  # judged with everything known at the bundle's head
            relayed = x["relayer"].lower() != _ZERO_ADDRESS
            stamp = {
                "stamp_id": x["stampId"], "stamp_type": int(x["stampType"]), "result": int(x["result"]),
                "signer": signer, "signed_at": int(x["signedAt"]), "report_cid": x["reportCid"],
                "relayer": x["relayer"].lower(), "agency": registry.agency(agency_index, epos),
                "key": key, "key_valid_at_signing": _key_valid(key, agency_index, int(x["signedAt"])),
                "signature": "eip712-verified" if relayed else "direct", "revoked": None, **where,
            }  # fmt: skip
            stamp_index[x["stampId"]] = len(stamps)
            stamps.append((stamp, StampFacts(stamp=StampView(
                stamp_id=x["stampId"], declaration_id=declaration_id, agency_index=agency_index, signer=signer,
                stamp_type=int(x["stampType"]), result=int(x["result"]), signed_at=int(x["signedAt"]),
                report_cid=x["reportCid"], relayer=x["relayer"].lower(), block_number=e.block_number,
                timestamp=times[e.block_number], revoked=False, revoked_block=None, revocation_reason=None,
            ), key_valid_at_signing=stamp["key_valid_at_signing"])))  # fmt: skip
        elif e.name == "StampRevoked" and x["stampId"] in stamp_index:
            n = stamp_index[x["stampId"]]
            stamp, stamp_facts = stamps[n]
            stamp["revoked"] = {"reason_code": int(x["reasonCode"]), "signer": str(x["signer"]).lower(), **where}
            old = stamp_facts.stamp
            stamps[n] = (stamp, StampFacts(stamp=StampView(**{
                **old.__dict__, "revoked": True, "revoked_block": e.block_number,
                "revocation_reason": int(x["reasonCode"]),
            }), key_valid_at_signing=stamp_facts.key_valid_at_signing))  # fmt: skip
        elif e.name in ("DecisionProposed", "DecisionApproved", "DecisionCancelled", "DecisionRecorded"):
            action = e.name[len("Decision") :].lower()
            signer = str(x.get("signer") or x.get("proposer")).lower()
            if e.name == "DecisionRecorded":
                status = DeclarationStatus(int(x["status"]))
            decisions.append({
                "action": action, "round": int(x["round"]), "kind": int(x["kind"]) if "kind" in x else None,
                "status": int(x["status"]) if "status" in x else None,
                "reason_code": int(x["reasonCode"]) if "reasonCode" in x else None,
                "report_sha256": x.get("reportSha256"), "pass_stamps": list(x.get("passStamps", ())),
                "signer": signer, **_actor(signer, registry, epos, e.block_number, times), **where,
            })  # fmt: skip
    declarant = str(a["declarant"]).lower()
    trader = registry.trader(declarant, pos)
    declarant_facts = {
        "address": declarant, "registered": trader is not None,
        "status": trader["status"] if trader else 0, "aeo": trader["aeo"] if trader else False,
    }  # fmt: skip
    documents = [{"position": n, "document_type": int(d["documentType"]), "sha256": d["sha256"], "cid": d["cid"]}
                 for n, d in enumerate(a["documents"])]  # fmt: skip
    decl = {
        "declaration_id": declaration_id, "declarant": declarant,
        "jurisdiction": registry.agency(jurisdiction, pos), "version": int(a.get("version", 1)),
        "previous_id": previous, "local_reference": a.get("localReference"), "cid": a["cid"],
        "status": status.name, "channel": channel, "required_stamps": required, "mrn": mrn,
        "rule_set_hash": rule_set, "superseded_by": superseded_by, "documents": documents,
        "created": _where(created, times), "lifecycle": lifecycle,
    }  # fmt: skip
    view = DeclarationView(
        declaration_id=declaration_id, declarant=declarant, jurisdiction=jurisdiction, version=decl["version"],
        previous_id=previous, local_reference=decl["local_reference"] or "", cid=a["cid"], status=status,
        channel=channel, required_stamps=required, mrn=mrn, rule_set_hash=rule_set, superseded_by=superseded_by,
        documents=tuple(SupportingDocumentView(position=d["position"], document_type=d["document_type"],
                                               sha256=d["sha256"], cid=d["cid"]) for d in documents),
        submitted_block=created.block_number, submitted_at=times[created.block_number], tx_hash=created.tx_hash,
        as_of_block=max(times),
    )  # fmt: skip
    return decl, view, stamps, decisions, declarant_facts


def _actor(
    signer: str, registry: _Registry, pos: tuple[int, int], block: int, times: Mapping[int, int]
) -> dict[str, Any]:
    """Registry facts of an acting key at an event: its agency (roles, status) then, key valid at block time."""
    key = registry.key(signer, pos)
    agency_index = key["agency_index"] if key else 0
    return {"actor": {"signer": signer.lower(), "agency": registry.agency(agency_index, pos), "key": key,
                      "key_valid": _key_valid(key, agency_index, times[block])}}  # fmt: skip


def _alerts(events: Sequence[DecodedEvent], subjects: set[str], times: Mapping[int, int]) -> list[dict[str, Any]]:
    alerts: dict[int, dict[str, Any]] = {}
    for e in events:
        x = e.args
        if e.name == "AlertRaised" and x["subject"] in subjects:
            alerts[int(x["alertId"])] = {
                "alert_id": int(x["alertId"]), "subject": x["subject"], "subject_kind": int(x["subjectKind"]),
                "agency": {"index": int(x["agencyIndex"])}, "reason_code": int(x["reasonCode"]),
                "evidence_sha256": x["evidenceSha256"], "signer": str(x["signer"]).lower(), "cleared": None,
                **_where(e, times),
            }  # fmt: skip
        elif e.name == "AlertCleared" and int(x["alertId"]) in alerts:
            alerts[int(x["alertId"])]["cleared"] = {"reason_code": int(x["reasonCode"]), **_where(e, times)}
    return list(alerts.values())


# ================================================================================ state (step 9)

# ClearanceLedger's storage layout (solc, inheritance EIP712 → Nonces → ClearanceLedger): EIP712's
# _nameFallback / _versionFallback take slots 0–1, Nonces._nonces 2, then _declarations 3, _byMrn 4,
# _supportingOwner 5, _stamps 6. tests/ledger_api/audit/test_evidence.py proves them on a node.
DECLARATIONS_SLOT = 3
SUPPORTING_OWNER_SLOT = 5
STAMPS_SLOT = 6


def _mapping_slot(key: str, slot: int, offset: int = 0) -> str:
    base = int.from_bytes(keccak(_bytes(key) + slot.to_bytes(32, "big")), "big") + offset
    return "0x" + base.to_bytes(32, "big").hex()


def state_slots(facts: Mapping[str, Any], sha256: str) -> list[tuple[str, int, str]]:
    """The ledger storage slots step 9 proves for ``facts`` of subject ``sha256``: ``(slot, expected
    value, what)``, in order.

    First what the contract's ``anchorOf(sha256)`` reads, in its order of precedence (declaration,
    supporting-document owner, stamp, batch): the slots that rank above the anchor the bundle derives
    must be empty, so a bundle that leaves out the block of an earlier, higher-ranked anchor (a
    supporting document of a seized declaration passed off as a batch root, say) is refused. A Merkle
    leaf subject must not be anchored directly at all. Then the declaration and its stamps.

    The declaration's first struct slot packs declarant (bits 0–159), jurisdiction (160–191),
    status (192–199), channel (200–207), requiredStamps (208–223) and version (224–255); a stamp's
    second slot packs signer (0–159), agencyIndex (160–191), stampType (192–199), result (200–207),
    revoked (208–215) and signedAt (216–255) — LedgerTypes.sol's field order.
    """
    kind = facts["anchor"]["kind"]
    declaration = facts.get("declaration")
    slots: list[tuple[str, int, str]] = []
    if kind != "declaration":
        slots.append((_mapping_slot(sha256, DECLARATIONS_SLOT), 0, f"no declaration {sha256}"))
    if kind == "supporting_document" and declaration:
        slots.append((_mapping_slot(sha256, SUPPORTING_OWNER_SLOT), int(declaration["declaration_id"], 16),
                      f"owner of supporting document {sha256}"))  # fmt: skip
    elif kind != "declaration":
        slots.append((_mapping_slot(sha256, SUPPORTING_OWNER_SLOT), 0, f"no supporting document {sha256}"))
    if kind in ("batch_root", "batch_leaf"):
        slots.append((_mapping_slot(sha256, STAMPS_SLOT), 0, f"no stamp report {sha256}"))
    if not declaration:
        return slots
    declaration_id = declaration["declaration_id"]
    packed = (
        int(declaration["declarant"], 16) | declaration["jurisdiction"]["index"] << 160
        | int(DeclarationStatus[declaration["status"]]) << 192 | declaration["channel"] << 200
        | declaration["required_stamps"] << 208 | declaration["version"] << 224
    )  # fmt: skip
    slots.append((_mapping_slot(declaration_id, DECLARATIONS_SLOT), packed, f"declaration {declaration_id}"))
    for stamp in facts["stamps"]:
        slots.append((_mapping_slot(stamp["stamp_id"], STAMPS_SLOT), int(declaration_id, 16),
                      f"stamp {stamp['stamp_id']} declaration"))  # fmt: skip
        packed_stamp = (
            int(stamp["signer"], 16) | stamp["agency"]["index"] << 160 | stamp["stamp_type"] << 192
            | stamp["result"] << 200 | (1 if stamp["revoked"] else 0) << 208 | stamp["signed_at"] << 216
        )  # fmt: skip
        slots.append((_mapping_slot(stamp["stamp_id"], STAMPS_SLOT, 1), packed_stamp, f"stamp {stamp['stamp_id']}"))
    return slots


def _proof_value(root: bytes, key: bytes, proof: Sequence[str]) -> bytes:
    nodes = [rlp.decode(_bytes(node)) for node in proof]
    return bytes(HexaryTrie.get_from_proof(root, keccak(key), nodes))  # type: ignore[no-untyped-call]


def _check_state(bundle: Mapping[str, Any], facts: Mapping[str, Any]) -> int:
    expected = state_slots(facts, bundle["subject"]["sha256"])
    state = bundle["state"]
    if not expected:
        if state is not None:
            raise _fail(9, "the bundle carries storage proofs its subject does not call for")
        return 0
    if state is None:
        raise _fail(9, "the bundle carries no storage proofs of the subject's anchor, its declaration and stamps")
    if [entry["slot"] for entry in state["storage"]] != [slot for slot, _, _ in expected]:
        raise _fail(9, "the bundle's storage slots are not the subject's anchor slots, its declaration's and stamps'")
    header = bundle["blocks"][-1]["header"]
    ledger = bundle["contracts"]["ledger"]
    try:
        account = _proof_value(_bytes(header["stateRoot"]), _bytes(ledger), state["account_proof"])
        fields = rlp.decode(account)
        storage_root = bytes(fields[2])
    except Exception as exc:  # a forged proof fails in trie / rlp in several ways
        raise _fail(9, f"the ledger account proof does not hold against the trusted block's stateRoot: {exc}") from exc
    for entry, (slot, value, what) in zip(state["storage"], expected, strict=True):
        try:
            raw = _proof_value(storage_root, _bytes(slot), entry["proof"])
            proven = int.from_bytes(rlp.decode(raw), "big") if raw else 0
        except Exception as exc:  # idem
            raise _fail(9, f"the storage proof of {what} does not hold: {exc}") from exc
        if proven != int(entry["value"], 16):
            raise _fail(9, f"the storage proof of {what} proves {hex(proven)}, not the bundle's {entry['value']}")
        if proven != value:
            raise _fail(9, f"the ledger's storage for {what} is {hex(proven)} at the trusted block; the events give "
                           f"{hex(value)}")  # fmt: skip
    return len(expected)


# ================================================================================ signatures (step 10)


def _check_relayed_stamps(bundle: Mapping[str, Any], proven: _Proven, facts: Mapping[str, Any]) -> int:
    ledger = bundle["contracts"]["ledger"]
    checked = 0
    for stamp in facts["stamps"]:
        if stamp["relayer"] == _ZERO_ADDRESS:
            continue
        raw = proven.transactions.get(stamp["tx"])
        if raw is None:
            raise _fail(10, f"the transaction {stamp['tx']} of relayed stamp {stamp['stamp_id']} is not in the bundle")
        _, to, data = _tx_fields(raw)
        if "0x" + to.hex() != ledger or data[:4] != _RELAY_SELECTOR:
            raise _fail(10, f"transaction {stamp['tx']} is not a relayStamp call to the ledger")
        try:
            fields, signature = abi_decode(_RELAY_TYPES, data[4:])
        except Exception as exc:  # eth_abi raises several unrelated types
            raise _fail(10, f"transaction {stamp['tx']}: relayStamp arguments do not decode: {exc}") from exc
        declaration_id, stamp_type, result, report_sha256, report_cid, signer, signed_at, nonce, deadline = fields
        claimed = (facts["declaration"]["declaration_id"], stamp["stamp_type"], stamp["result"], stamp["stamp_id"],
                   stamp["report_cid"], stamp["signer"], stamp["signed_at"])  # fmt: skip
        called = ("0x" + declaration_id.hex(), stamp_type, result, "0x" + report_sha256.hex(), "0x" + report_cid.hex(),
                  str(signer).lower(), signed_at)  # fmt: skip
        if called != claimed:
            raise _fail(10, f"relayed stamp {stamp['stamp_id']}: the signed fields differ from the recorded stamp")
        typed = stamp_typed_data(chain_id=bundle["chain_id"], ledger=to_checksum_address(ledger), message={
            "declarationId": declaration_id, "stampType": stamp_type, "result": result,
            "reportSha256": report_sha256, "reportCid": report_cid, "signer": to_checksum_address(signer),
            "signedAt": signed_at, "nonce": nonce, "deadline": deadline,
        })  # fmt: skip
        try:
            recovered = recover_typed_data(typed, "0x" + bytes(signature).hex()).lower()
        except ValueError as exc:  # malformed or non-canonical (high s, bad v) signature
            raise _fail(10, f"relayed stamp {stamp['stamp_id']}: {exc}") from exc
        if recovered != stamp["signer"]:
            raise _fail(10, f"relayed stamp {stamp['stamp_id']}: the EIP-712 signature is not by {stamp['signer']}")
        checked += 1
    return checked


# ================================================================================ the checklist


@dataclass(frozen=True, kw_only=True)
class EvidenceReport:
    """What a verified bundle proves."""

    sha256: str
    anchored_as: str
    declaration_id: str | None
    verdict_status: str
    chain_id: int
    registry: str
    ledger: str
    trusted_block: int
    trusted_hash: str
    blocks: int
    blocks_with_contents: int
    events: int
    relayed_signatures: int
    storage_slots: int
    document_checked: bool
    steps: tuple[str, ...]
    facts: Mapping[str, Any]
    verdict: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        """JSON form (``ledger evidence verify --json``)."""
        return {
            "ok": True, "sha256": self.sha256, "anchored_as": self.anchored_as, "declaration_id": self.declaration_id,
            "verdict": self.verdict_status, "chain_id": self.chain_id,
            "contracts": {"registry": self.registry, "ledger": self.ledger},
            "trusted_block": {"number": self.trusted_block, "hash": self.trusted_hash}, "blocks": self.blocks,
            "blocks_with_contents": self.blocks_with_contents, "events": self.events,
            "relayed_signatures": self.relayed_signatures, "storage_slots": self.storage_slots,
            "document_checked": self.document_checked,
            "steps": list(self.steps),
        }  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class TrustedDeployment:
    """The deployment an auditor knows independently (its own record): chain id, contracts, first block."""

    chain_id: int
    registry: str
    ledger: str
    deployment_block: int

    @classmethod
    def of(cls, record: Any) -> TrustedDeployment:
        """From anything with ``chain_id``, ``registry``, ``ledger``, ``deployment_block`` (a Deployment)."""
        return cls(chain_id=int(record.chain_id), registry=str(record.registry).lower(),
                   ledger=str(record.ledger).lower(), deployment_block=int(record.deployment_block))  # fmt: skip


def verify_bundle(
    bundle: bytes | Mapping[str, Any],
    *,
    trusted_block: str,
    document: bytes | None = None,
    deployment: TrustedDeployment | None = None,
) -> EvidenceReport:
    """Run the checklist (module docstring) over ``bundle``; raise :class:`EvidenceError` at the first failure.

    ``bundle``: the canonical bytes (recommended: step 1 then also checks the canonical form) or the
    parsed JSON. ``trusted_block``: the 0x-hex hash of the block the caller trusts (from its own node,
    a checkpoint witness or a partner). ``document``: the document's bytes, checked against the subject.
    ``deployment``: the chain id, contract addresses and deployment block the caller knows; without
    it they are the bundle's claims (the report shows them: compare them with your record).
    """
    if isinstance(bundle, bytes | bytearray):
        parsed = parse_bundle(bytes(bundle))
    else:
        try:
            parsed = json.loads(json.dumps(bundle, allow_nan=False))  # a private copy, JSON values only
        except (TypeError, ValueError, RecursionError) as exc:
            raise MalformedBundle(f"not a JSON value: {exc}") from exc
        if not isinstance(parsed, dict):
            raise MalformedBundle("a bundle is a JSON object")
        _check_schema(parsed)
    if not isinstance(trusted_block, str) or not re.fullmatch(r"0x[0-9a-fA-F]{64}", trusted_block):
        raise _fail(3, f"the trusted block must be a 32-byte 0x-hex hash, not {trusted_block!r}")
    proven = _prove_chain(parsed, trusted_block, deployment)  # steps 2-6
    # 7. completeness.
    sha256, batch = parsed["subject"]["sha256"], parsed["subject"]["batch"]
    words = subject_topics(proven.events, sha256, batch["root"] if batch else None)
    registry, ledger = parsed["contracts"]["registry"], parsed["contracts"]["ledger"]
    for block in parsed["blocks"]:
        number = int(block["header"]["number"], 16)
        if number not in proven.included and needs_contents(block["header"], registry, ledger, sorted(words)):
            raise _fail(7, f"block {number}'s logs bloom may hold a log of the registry or of the subject, "
                           "but its receipts are not in the bundle")  # fmt: skip
    # 8. subject (and the derivation used by 9 to 12).
    facts, verdict = derive(parsed, proven=proven)
    # 9. the contract's storage at the trusted block.
    proven_slots = _check_state(parsed, facts)
    # 10. signatures of relayed stamps.
    relayed = _check_relayed_stamps(parsed, proven, facts)
    # 11. facts.
    if facts != parsed["facts"]:
        raise _fail(11, "the bundle's facts differ from what its proven events give: " + _first_difference(
            facts, parsed["facts"]))  # fmt: skip
    # 12. verdict.
    if verdict != parsed["verdict"]:
        raise _fail(12, "the bundle's verdict differs from the checklist's: " + _first_difference(
            verdict, parsed["verdict"]))  # fmt: skip
    # 13. document.
    if document is not None:
        actual = "0x" + hashlib.sha256(document).hexdigest()
        if actual != sha256:
            raise _fail(13, f"the document hashes to {actual}, not the subject {sha256}")
    last = max(proven.hashes)
    return EvidenceReport(
        sha256=sha256, anchored_as=facts["anchor"]["kind"],
        declaration_id=facts["declaration"]["declaration_id"] if facts["declaration"] else None,
        verdict_status=verdict["status"], chain_id=parsed["chain_id"], registry=registry, ledger=ledger,
        trusted_block=last, trusted_hash=proven.hashes[last], blocks=len(parsed["blocks"]),
        blocks_with_contents=len(proven.included), events=len(proven.events), relayed_signatures=relayed,
        storage_slots=proven_slots,
        document_checked=document is not None,
        steps=tuple(STEPS[n] for n in range(1, 13 if document is None else 14)), facts=facts, verdict=verdict,
    )  # fmt: skip


def _first_difference(expected: Any, actual: Any, path: str = "") -> str:
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in sorted(set(expected) | set(actual)):
            if expected.get(key, _MISSING) != actual.get(key, _MISSING):
                return _first_difference(expected.get(key, _MISSING), actual.get(key, _MISSING), f"{path}.{key}")
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        for n, (a, b) in enumerate(zip(expected, actual, strict=True)):
            if a != b:
                return _first_difference(a, b, f"{path}[{n}]")
    shown = "missing" if actual is _MISSING else json.dumps(actual)[:80]
    derived = "nothing" if expected is _MISSING else json.dumps(expected)[:80]
    return f"{path.lstrip('.') or 'value'} is {shown}, the events give {derived}"


_MISSING: Any = object()


def read_bundle_zip(data: bytes, *, max_document_bytes: int = MAX_BUNDLE_BYTES) -> tuple[bytes, bytes | None]:
    """``(bundle bytes, document bytes or None)`` of the zip variant, read in memory with size limits.

    Exactly one ``bundle.json`` and at most one ``document/<name>``; any other member, or a member
    whose declared or actual size is over the limit, is refused (:class:`MalformedBundle`).
    """
    if len(data) > MAX_BUNDLE_BYTES + max_document_bytes:
        raise BundleTooLarge(limit=MAX_BUNDLE_BYTES + max_document_bytes, seen=len(data))
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            names = [m.filename for m in members]
            documents = [m for m in members if m.filename.startswith("document/") and not m.is_dir()]
            if names.count("bundle.json") != 1 or len(documents) > 1 or len(members) != 1 + len(documents):
                raise MalformedBundle(f"a bundle zip holds bundle.json and at most one document/<name>, not {names}")

            def read(member: zipfile.ZipInfo, limit: int) -> bytes:
                if member.file_size > limit:
                    raise BundleTooLarge(limit=limit, seen=member.file_size)
                with archive.open(member) as handle:
                    content = handle.read(limit + 1)
                if len(content) > limit:
                    raise BundleTooLarge(limit=limit, seen=len(content))
                return content

            bundle = read(archive.getinfo("bundle.json"), MAX_BUNDLE_BYTES)
            document = read(documents[0], max_document_bytes) if documents else None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        if isinstance(exc, LedgerError):
            raise
        raise MalformedBundle(f"not a readable bundle zip: {exc}") from exc
    return bundle, document
