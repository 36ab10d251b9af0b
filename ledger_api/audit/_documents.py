"""The document check: every anchored document fetched from the content stores and re-verified.

:func:`anchored_documents` lists what the replayed state anchors — declaration envelopes (by the
declaration's CID, commitment = the declaration id), supporting documents (their sha256 and CID),
stamp reports (stamp id = report sha256, report CID) and batch manifests (root, manifest CID).
:class:`DocumentCheck` fetches each from every store it is given (the configured store, ``--store``,
one or more ``--ipfs`` nodes) with :func:`ledger_api.documents.fetch_copy` — the same verification
the integrity watch runs — and then:

* every block must hash to its CID, else ``document-tampered`` (error);
* no store holds it (all of them reachable), or only a partial DAG, ``document-missing`` (error);
* intact content must be what was anchored (:func:`ledger_api.documents.verify_commitment`: its
  own sha256, or the plaintext of an envelope the auditor can open with ``--agency``), else
  ``document-commitment-mismatch`` (error); envelopes the auditor cannot open are counted as
  ``unchecked`` commitments;
* a batch manifest's root is re-derived when its format allows: a rule set (kind 82) must hash to
  the root, a ``standard-v1`` Merkle tree dump must have that root and the anchored leaf count;
  other manifests are CID-verified only (``root-unchecked``);
* a store that cannot be reached is one ``document-store-unavailable`` error (the documents only it
  could have answered for are counted ``unchecked``): an audit that could not check is not a pass.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

from ledger_api.audit._channels import DeclarationReader
from ledger_api.audit._findings import Finding, Severity
from ledger_api.audit._state import LedgerState
from ledger_api.documents import (
    BATCH_FORMAT,
    DEFAULT_MAX_SIZE,
    ENVELOPE_MAGIC,
    Cid,
    ContentStore,
    DocumentBatch,
    StandardMerkleTree,
    fetch_copy,
    verify_commitment,
)
from ledger_api.errors import (
    DocumentError,
    DocumentNotFound,
    DocumentTooLarge,
    IntegrityError,
    InvalidCid,
    MalformedBlock,
    RuleSetError,
    StoreUnavailable,
)
from ledger_api.verify.risk import MAX_RULE_SET_BYTES, RULE_SET_BATCH_KIND, parse_rule_set

__all__ = ["AnchoredDocument", "DocumentCheck", "anchored_documents", "manifest_root"]

#: Longest error detail kept in a finding.
_DETAIL_MAX = 300


@dataclass(frozen=True, kw_only=True)
class AnchoredDocument:
    """One anchored document: what it must hash to, where its bytes are, and the event that anchored it."""

    kind: str  #: declaration | supporting-document | stamp-report | batch-manifest
    sha256: str  #: anchored commitment (0x-hex): declaration id, document sha256, stamp id, or batch root
    cid: str  #: binary CID as on chain, 0x-hex
    ref: str  #: declaration id (batch root for manifests)
    block: int
    event: str
    tx: str | None = None
    batch_kind: int | None = None
    leaf_count: int | None = None


def anchored_documents(state: LedgerState) -> list[AnchoredDocument]:
    """Every document the replayed state anchors, once per ``(sha256, CID)``, in anchoring order."""
    out: dict[tuple[str, str], AnchoredDocument] = {}

    def add(doc: AnchoredDocument) -> None:
        if doc.cid.lower() in ("", "0x", "0x00"):
            return
        out.setdefault((doc.sha256.lower(), doc.cid.lower()), doc)

    for d in state.declarations.values():
        event = "DeclarationSubmitted" if d.version == 1 else "DeclarationAmended"
        add(AnchoredDocument(kind="declaration", sha256=d.id, cid=d.cid, ref=d.id, block=d.block, event=event))
        for item in d.documents:
            add(AnchoredDocument(kind="supporting-document", sha256=str(item["sha256"]), cid=str(item["cid"]),
                                 ref=d.id, block=d.block, event=event))  # fmt: skip
    for s in state.stamps.values():
        add(AnchoredDocument(kind="stamp-report", sha256=s.id, cid=s.report_cid, ref=s.declaration_id,
                             block=s.block, tx=s.tx, event="StampRecorded"))  # fmt: skip
    for b in state.batches.values():
        add(AnchoredDocument(kind="batch-manifest", sha256=b.root, cid=b.manifest_cid, ref=b.root, block=b.block,
                             event="BatchAnchored", batch_kind=b.kind, leaf_count=b.leaf_count))  # fmt: skip
    return sorted(out.values(), key=lambda doc: doc.block)


def _short(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:_DETAIL_MAX]


def manifest_root(doc: AnchoredDocument, content: bytes) -> tuple[str, str]:
    """``("verified" | "mismatch" | "root-unchecked", detail)``: re-derive a batch root from its manifest."""
    if doc.batch_kind == RULE_SET_BATCH_KIND:
        if len(content) > MAX_RULE_SET_BYTES:
            return "mismatch", f"the rule-set manifest has {len(content)} bytes, over the {MAX_RULE_SET_BYTES} limit"
        try:
            rule_set = parse_rule_set(content)
        except RuleSetError as exc:
            return "mismatch", f"the rule-set manifest does not parse: {_short(exc)}"
        if "0x" + rule_set.hash.hex() != doc.sha256.lower():
            return "mismatch", f"the rule set hashes to 0x{rule_set.hash.hex()}, not the anchored root"
        return "verified", "rule set hashes to the anchored root"
    try:
        dump = json.loads(content)
    except (ValueError, RecursionError):
        dump = None
    if isinstance(dump, dict) and dump.get("format") == BATCH_FORMAT:  # `ledger batch anchor` (DocumentBatch)
        try:
            tree = DocumentBatch.from_manifest(content).tree
        except DocumentError as exc:
            return "mismatch", f"the {BATCH_FORMAT} manifest is not valid: {_short(exc)}"
    elif isinstance(dump, dict) and dump.get("format") == "standard-v1":
        try:
            tree = StandardMerkleTree.load(dump)
        except (ValueError, KeyError, TypeError) as exc:
            return "mismatch", f"the standard-v1 manifest is not a valid tree: {_short(exc)}"
    else:
        return (
            "root-unchecked",
            "manifest is neither a document batch nor a standard-v1 tree: the root cannot be re-derived",
        )
    if tree.root.lower() != doc.sha256.lower() or (doc.leaf_count is not None and len(tree) != doc.leaf_count):
        return "mismatch", f"the manifest's tree has root {tree.root} and {len(tree)} leaves, not the anchored ones"
    return "verified", "manifest tree re-derives the anchored root and leaf count"


class DocumentCheck:
    """Fetches every anchored document from ``stores`` (name → store) and re-verifies it.

    ``reader`` opens envelopes (the ``--agency`` key and the vault keyrings); ``max_size`` is the
    largest document whose content is reassembled for the commitment check (larger ones are CID-checked
    only). Call it with the replayed state; :meth:`summary` gives the counts for the report. Progress
    (documents done, documents/s, ETA) goes to ``progress`` at most every ``interval`` seconds.
    """

    def __init__(
        self,
        stores: Mapping[str, ContentStore],
        *,
        reader: DeclarationReader | None = None,
        max_size: int = DEFAULT_MAX_SIZE,
        progress: IO[str] | None = None,
        interval: float = 0.5,
    ) -> None:
        if not stores:
            raise ValueError("the document check needs at least one content store")
        self.stores = dict(stores)
        self.reader = reader
        self.max_size = max_size
        self.unavailable: dict[str, str] = {}
        self.outcomes: dict[str, int] = {}
        self.copies: dict[str, int] = {}
        self.commitments: dict[str, int] = {}
        self.by_kind: dict[str, int] = {}
        self.bytes_read = 0
        self._unchecked_by_store: dict[str, int] = {}
        self._progress, self._interval = progress, interval

    @staticmethod
    def _bump(counter: dict[str, int], key: str) -> None:
        counter[key] = counter.get(key, 0) + 1

    def _finding(self, code: str, doc: AnchoredDocument, message: str, **details: Any) -> Finding:
        return Finding(
            code=code, severity=Severity.ERROR, message=message, block=doc.block, tx=doc.tx, event=doc.event,
            details={"kind": doc.kind, "sha256": doc.sha256, "cid": doc.cid, "ref": doc.ref, **details},
        )  # fmt: skip

    def _commitment(self, doc: AnchoredDocument, cid: Cid, content: bytes) -> tuple[str, str]:
        if doc.kind == "batch-manifest":
            return manifest_root(doc, content)
        reader = self.reader
        envelope = reader is not None and content.startswith(ENVELOPE_MAGIC)
        keyring = reader.keyrings.keyring(str(cid)) if reader is not None and envelope else None
        return verify_commitment(
            content, doc.sha256, agency=reader.agency if reader else "", keyring=keyring,
            private_key=reader.private_key if reader else None,
        )  # fmt: skip

    def check(self, doc: AnchoredDocument) -> list[Finding]:
        """Fetch and verify one document from every store; the findings it gives."""
        self._bump(self.by_kind, doc.kind)
        try:
            cid = Cid.from_bytes(bytes.fromhex(doc.cid.removeprefix("0x")))
        except (InvalidCid, ValueError) as exc:
            self._bump(self.outcomes, "missing")
            return [self._finding("document-missing", doc, f"{doc.kind} {doc.sha256}: the anchored CID is not a CID",
                                  error=_short(exc))]  # fmt: skip
        findings: list[Finding] = []
        intact: tuple[str, bytes | None] | None = None
        partial: list[str] = []
        skipped: list[str] = []
        unverifiable: list[str] = []
        for name, store in self.stores.items():
            if name in self.unavailable:
                skipped.append(name)
                continue
            try:
                if not store.has(cid):
                    self._bump(self.copies, "absent")
                    continue
                copy = fetch_copy(store, cid, retain=self.max_size)
            except StoreUnavailable as exc:
                self.unavailable[name] = _short(exc)
                skipped.append(name)
                continue
            except IntegrityError as exc:
                self._bump(self.copies, "tampered")
                findings.append(self._finding(
                    "document-tampered", doc, f"{doc.kind} {doc.sha256}: the bytes in store {name} do not hash to "
                    f"the anchored CID {cid}", store=name, bad_block=exc.cid, error=_short(exc),
                ))  # fmt: skip
                continue
            except DocumentNotFound as exc:
                self._bump(self.copies, "partial")
                partial.append(f"{name}: {_short(exc)}")
                continue
            except (MalformedBlock, DocumentTooLarge) as exc:
                self._bump(self.copies, "unverifiable")
                unverifiable.append(f"{name}: {_short(exc)}")
                continue
            self._bump(self.copies, "ok")
            self.bytes_read += copy.bytes_read
            if intact is None:
                intact = (name, copy.content)
        if findings:
            self._bump(self.outcomes, "tampered")
        if intact is None:
            if findings:
                return findings
            if skipped:
                for name in skipped:
                    self._unchecked_by_store[name] = self._unchecked_by_store.get(name, 0) + 1
                self._bump(self.outcomes, "unchecked")
                return findings
            if unverifiable and not partial:
                self._bump(self.outcomes, "unverifiable")
                findings.append(Finding(
                    code="document-unverifiable", severity=Severity.WARNING, block=doc.block, tx=doc.tx,
                    event=doc.event, message=f"{doc.kind} {doc.sha256}: its blocks hash to the CID but do not "
                    "decode as a document", details={"cid": doc.cid, "stores": unverifiable},
                ))  # fmt: skip
                return findings
            self._bump(self.outcomes, "missing")
            findings.append(self._finding(
                "document-missing", doc, f"{doc.kind} {doc.sha256} (CID {cid}) is in none of the content stores",
                stores=sorted(self.stores), partial=partial,
            ))  # fmt: skip
            return findings
        store_name, content = intact
        if content is None:
            self._bump(self.commitments, "too-large")
            if not findings:
                self._bump(self.outcomes, "ok")
            return findings
        state, detail = self._commitment(doc, cid, content)
        self._bump(self.commitments, state)
        if state == "mismatch":
            if not findings:
                self._bump(self.outcomes, "commitment-mismatch")
            findings.append(self._finding(
                "document-commitment-mismatch", doc, f"{doc.kind} {doc.sha256}: {detail}", store=store_name,
            ))  # fmt: skip
        elif not findings:
            self._bump(self.outcomes, "ok")
        return findings

    def __call__(self, state: LedgerState) -> list[Finding]:
        """Check every anchored document of ``state``; the findings (one per unreachable store too)."""
        findings: list[Finding] = []
        documents = anchored_documents(state)
        started = shown = time.perf_counter()
        for n, doc in enumerate(documents, 1):
            findings.extend(self.check(doc))
            now = time.perf_counter()
            if self._progress is not None and (now - shown >= self._interval or n == len(documents)):
                shown = now
                rate = n / max(now - started, 1e-9)
                self._progress.write(f"audit documents: {n}/{len(documents)}  {rate:,.1f} documents/s  "
                                     f"ETA {(len(documents) - n) / rate:4.1f}s\n")  # fmt: skip
                self._progress.flush()
        for name, error in self.unavailable.items():
            findings.append(
                Finding(
                    code="document-store-unavailable",
                    severity=Severity.ERROR,
                    message=f"content store {name} could not be reached: "
                    f"{self._unchecked_by_store.get(name, 0)} documents could not be checked there",
                    details={"store": name, "error": error, "unchecked": self._unchecked_by_store.get(name, 0)},
                )
            )
        return findings

    def summary(self) -> dict[str, Any]:
        """Counts for the report: documents by kind and outcome, copies, commitments, stores, bytes read."""
        return {
            "checked": sum(self.by_kind.values()),
            "by_kind": dict(sorted(self.by_kind.items())),
            "outcomes": dict(sorted(self.outcomes.items())),
            "copies": dict(sorted(self.copies.items())),
            "commitments": dict(sorted(self.commitments.items())),
            "stores": {
                name: ("unavailable: " + self.unavailable[name]) if name in self.unavailable else "reachable"
                for name in self.stores
            },  # fmt: skip
            "bytes_read": self.bytes_read,
        }
