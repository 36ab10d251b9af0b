"""Evidence export: collect from a node everything an offline verifier needs about one document.

:func:`export_bundle` reads the node with raw JSON-RPC only (``eth_getBlockByNumber``,
``eth_getLogs``, ``eth_getBlockReceipts``, ``eth_getRawTransactionByBlockNumberAndIndex``) and
writes a ``customs-ledger-evidence/1`` bundle (docs/evidence.md):

* every block header from the deployment block to the head (or ``to_block``): the chain of parent
  hashes an auditor checks against one block hash it trusts;
* the raw transactions and consensus receipts of every block whose logs bloom may hold a registry
  log, or a ledger log about the subject — exactly the blocks the verifier's completeness step asks
  for (:func:`ledger_api.verify.evidence.needs_contents`);
* the subject (its sha256 and, for a batched document, the OpenZeppelin Merkle proof);
* ``eth_getProof`` storage proofs, at the last block, of the ledger slots that hold the
  declaration, a supporting document's owner and each stamp (:func:`ledger_api.verify.evidence.state_slots`);
* the facts and verdict that :func:`ledger_api.verify.evidence.derive` gives over those proven
  events — the same function the verifier re-runs.

The exporter verifies what it wrote before returning it (against the head it read), so a bundle
it hands out has passed the offline checklist once.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any

from ledger_api.audit._replay import DeploymentLike
from ledger_api.chain.events import EventDecoder, JsonRpc, fetch_logs
from ledger_api.documents import PROOF_FORMAT, verify_batch_proof
from ledger_api.errors import EvidenceError, EvidenceExportError, LedgerError, LogQueryError
from ledger_api.verify.evidence import (
    FORMAT,
    canonical_bundle,
    derive,
    header_hash,
    needs_contents,
    state_slots,
    subject_topics,
    verify_bundle,
)

__all__ = ["BUNDLE_NAME", "bundle_zip", "export_bundle"]

#: The bundle's name inside the zip variant.
BUNDLE_NAME = "bundle.json"
_HEADER_NAMES = (
    "parentHash", "sha3Uncles", "miner", "stateRoot", "transactionsRoot", "receiptsRoot", "logsBloom", "difficulty",
    "number", "gasLimit", "gasUsed", "timestamp", "extraData", "mixHash", "nonce", "baseFeePerGas",
    "withdrawalsRoot", "blobGasUsed", "excessBlobGas", "parentBeaconBlockRoot", "requestsHash",
)  # fmt: skip
_BATCH = 200


def _quantity(value: Any) -> str:
    return hex(int(str(value), 16))


def _header(block: Mapping[str, Any]) -> dict[str, str]:
    """The consensus fields of a JSON-RPC block, in canonical hex (quantities without leading zeros)."""
    quantities = {"difficulty", "number", "gasLimit", "gasUsed", "timestamp", "baseFeePerGas", "blobGasUsed",
                  "excessBlobGas"}  # fmt: skip
    header: dict[str, str] = {}
    for name in _HEADER_NAMES:
        if name not in block or block[name] is None:
            continue
        header[name] = _quantity(block[name]) if name in quantities else str(block[name]).lower()
    return header


def _receipt(receipt: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-RPC receipt reduced to its consensus fields."""
    return {
        "type": _quantity(receipt.get("type", "0x0")),
        "status": _quantity(receipt["status"]),
        "cumulativeGasUsed": _quantity(receipt["cumulativeGasUsed"]),
        "logsBloom": str(receipt["logsBloom"]).lower(),
        "logs": [
            {"address": str(log["address"]).lower(), "topics": [str(t).lower() for t in log["topics"]],
             "data": str(log["data"]).lower()}
            for log in receipt["logs"]
        ],
    }  # fmt: skip


def _batch_subject(proof: Mapping[str, Any], subject: str) -> dict[str, Any]:
    """The bundle's ``subject.batch`` from a document batch's proof file (``customs-ledger-batch-proof/1``,
    as ``ledger batch anchor --proofs`` writes it) or a ``ledger merkle proof`` answer
    (``{root, leafEncoding, value, proof}``)."""
    if proof.get("format") == PROOF_FORMAT:
        try:
            checked = verify_batch_proof(dict(proof), bytes.fromhex(subject[2:]))
        except LedgerError as exc:
            raise EvidenceExportError(f"the batch proof file is not the subject's: {exc}") from exc
        return {"root": checked["root"], "leaf_encoding": ["bytes32"], "value": [checked["sha256"]],
                "proof": list(checked["proof"])}  # fmt: skip
    try:
        encoding = [str(t) for t in proof.get("leafEncoding", proof.get("leaf_encoding", []))]
        value = [str(v).lower() if isinstance(v, str) else v for v in proof["value"]]
        return {"root": str(proof["root"]).lower(), "leaf_encoding": encoding, "value": value,
                "proof": [str(p).lower() for p in proof["proof"]]}  # fmt: skip
    except (KeyError, TypeError) as exc:
        raise EvidenceExportError(f"not a Merkle proof ({{root, leafEncoding, value, proof}}): {exc}") from exc


def export_bundle(
    rpc_url: str,
    deployment: DeploymentLike,
    sha256: str,
    *,
    to_block: int | None = None,
    merkle_proof: Mapping[str, Any] | None = None,
    rpc_timeout: float = 30.0,
) -> dict[str, Any]:
    """Build the evidence bundle of ``sha256`` (a document's sha256 or a declaration id, 0x-hex).

    ``merkle_proof``: for a document anchored in a Merkle batch, its proof file
    (``customs-ledger-batch-proof/1``, from ``ledger batch anchor --proofs``) or its proof as
    ``ledger merkle proof`` prints it. ``to_block``: the last block (default: the head); the verifier is then given that
    block's hash as its trusted block. Raises :class:`EvidenceExportError` when ``sha256`` is not
    anchored, and :class:`~ledger_api.errors.ChainUnavailable` when the node cannot be reached.
    """
    subject = sha256.lower() if sha256.startswith("0x") else "0x" + sha256.lower()
    if len(subject) != 66 or any(c not in "0123456789abcdef" for c in subject[2:]):
        raise EvidenceExportError(f"{sha256!r} is not a 32-byte hex sha256 / declaration id")
    batch = _batch_subject(merkle_proof, subject) if merkle_proof is not None else None
    registry, ledger = deployment.registry.lower(), deployment.ledger.lower()
    with JsonRpc(rpc_url=rpc_url, timeout=rpc_timeout) as rpc:
        last = rpc.block_number() if to_block is None else to_block
        first = deployment.deployment_block
        if last < first:
            raise EvidenceExportError(f"block {last} is before the deployment block {first}")
        headers: list[dict[str, str]] = []
        for start in range(first, last + 1, _BATCH):
            numbers = range(start, min(start + _BATCH, last + 1))
            for number, block in zip(
                numbers, rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers]), strict=True
            ):
                if block is None:
                    raise EvidenceExportError(f"the node has no block {number}")
                header = _header(block)
                if header_hash(header) != str(block["hash"]).lower():
                    raise EvidenceExportError(
                        f"block {number}: keccak(rlp(header)) differs from the node's hash (a header field this "
                        "exporter does not know?)"
                    )
                headers.append(header)
        decoder = EventDecoder.for_contracts({registry: "AgencyRegistry", ledger: "ClearanceLedger"}, hex_bytes=True)
        events = [e for page in fetch_logs(rpc, decoder.addresses, first, last) for e in decoder.decode_all(page)]
        words = sorted(subject_topics(events, subject, batch["root"] if batch else None))
        blocks: list[dict[str, Any]] = []
        for header in headers:
            entry: dict[str, Any] = {"header": header, "transactions": None, "receipts": None}
            if needs_contents(header, registry, ledger, words):
                entry["transactions"], entry["receipts"] = _contents(rpc, header)
            blocks.append(entry)
        chain_id = int(rpc.call("eth_chainId"), 16)
    if chain_id != deployment.chain_id:
        raise EvidenceExportError(f"the node is chain {chain_id}, the deployment record says {deployment.chain_id}")
    bundle: dict[str, Any] = {
        "format": FORMAT, "chain_id": chain_id, "contracts": {"registry": registry, "ledger": ledger},
        "deployment_block": first, "subject": {"sha256": subject, "batch": batch}, "blocks": blocks,
        "state": None, "facts": {}, "verdict": {},
    }  # fmt: skip
    try:
        facts, verdict = derive(bundle)
    except LedgerError as exc:
        raise EvidenceExportError(f"cannot export {subject}: {exc}") from exc
    bundle["facts"], bundle["verdict"] = facts, verdict
    slots = [slot for slot, _, _ in state_slots(json.loads(json.dumps(facts)), subject)]
    if slots:
        with JsonRpc(rpc_url=rpc_url, timeout=rpc_timeout) as rpc:
            proof = rpc.call("eth_getProof", [ledger, slots, hex(last)])
        if not isinstance(proof, dict) or len(proof.get("storageProof", ())) != len(slots):
            raise EvidenceExportError(f"eth_getProof answered without the {len(slots)} storage proofs asked")
        bundle["state"] = {
            "account_proof": [str(node).lower() for node in proof["accountProof"]],
            "storage": [
                {"slot": slot, "value": _quantity(entry["value"]), "proof": [str(n).lower() for n in entry["proof"]]}
                for slot, entry in zip(slots, proof["storageProof"], strict=True)
            ],
        }
    bundle = json.loads(canonical_bundle(bundle))  # the JSON form the verifier will see
    try:
        verify_bundle(canonical_bundle(bundle), trusted_block=header_hash(headers[-1]))
    except EvidenceError as exc:  # the node's answers disagree with each other (a reorg while exporting?)
        raise EvidenceExportError(f"the exported bundle does not verify, export again: {exc}") from exc
    return bundle


def _contents(rpc: JsonRpc, header: Mapping[str, str]) -> tuple[list[str], list[dict[str, Any]]]:
    """A block's raw transactions and consensus receipts.

    ``eth_getBlockReceipts`` and ``eth_getRawTransactionByBlockNumberAndIndex`` when the node has
    them (anvil, geth, Besu 24+); otherwise one ``eth_getTransactionReceipt`` /
    ``eth_getRawTransactionByHash`` per transaction of the block.
    """
    number = header["number"]
    hashes: list[str] | None = None

    def tx_hashes() -> list[str]:
        block = rpc.call("eth_getBlockByNumber", [number, False])
        if not isinstance(block, dict):
            raise EvidenceExportError(f"the node has no block {int(number, 16)}")
        return [str(t) for t in block["transactions"]]

    try:
        receipts = rpc.call("eth_getBlockReceipts", [number])
    except LogQueryError:
        hashes = tx_hashes()
        receipts = rpc.batch([("eth_getTransactionReceipt", [t]) for t in hashes])
    if not isinstance(receipts, list) or any(not isinstance(r, dict) for r in receipts):
        raise EvidenceExportError(f"block {int(number, 16)}: the node did not return every receipt")
    try:
        raws: Sequence[Any] = rpc.batch(
            [("eth_getRawTransactionByBlockNumberAndIndex", [number, hex(i)]) for i in range(len(receipts))]
        )
    except LogQueryError:
        hashes = hashes or tx_hashes()
        raws = rpc.batch([("eth_getRawTransactionByHash", [t]) for t in hashes])
    if len(raws) != len(receipts) or any(not isinstance(r, str) for r in raws):
        raise EvidenceExportError(f"block {int(number, 16)}: the node did not return every raw transaction")
    return [str(r).lower() for r in raws], [_receipt(r) for r in receipts]


def bundle_zip(bundle: Mapping[str, Any], *, document: bytes | None = None, document_name: str = "document") -> bytes:
    """The zip variant: ``bundle.json`` (canonical bytes) and, when given, the document under ``document/<name>``.

    The document's sha256 must be the bundle's subject (refused otherwise).
    """
    if document is not None and "0x" + hashlib.sha256(document).hexdigest() != bundle["subject"]["sha256"]:
        raise EvidenceExportError("the document's sha256 is not the bundle's subject")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(BUNDLE_NAME, canonical_bundle(bundle))
        if document is not None:
            safe = document_name.replace("/", "_").replace("\\", "_") or "document"
            archive.writestr(f"document/{safe}", document)
    return buffer.getvalue()
