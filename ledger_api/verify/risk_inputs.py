"""Gathering what :func:`ledger_api.verify.risk.evaluate` reads — shared by the risk oracle and the auditor.

:mod:`ledger_api.verify.risk` is pure; this module fetches its inputs (``docs/oracles/risk.md``,
"Nothing hidden") from a :class:`RiskFacts` source — the chain facts *as of a block*:

* the hash of the submission block (the sampling seed);
* the declarant's AEO flag at the end of that block;
* the alerts raised on a subject, with the block each was raised and cleared in;
* the rule-set batch anchored under a root (kind, manifest CID).

Two sources exist: :class:`ReadModelFacts` (an index built by :mod:`ledger_api.index`, what the
oracle and ``oracles risk explain`` use) and the audit replay's rebuilt state
(``ledger_api.audit``). The rule set itself and the declaration plaintext come from a content
store: :func:`rule_set_from_store` (fetch by the anchored manifest CID and check the hash) and
:func:`read_declaration` (open the envelope with an agency's X25519 key and a keyring).

This module never imports ``oracles``; ``oracles/risk.py`` re-exports the read-model helpers
(:func:`gather_inputs`, :func:`anchored_rule_set`, :func:`trader_aeo_at`, :func:`alert_counts_at`,
:func:`submission_block_hash`) under their old names.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

from eth_utils.address import to_checksum_address

from ledger_api.documents import AgencyPrivateKey, Cid, ContentStore, Keyring, open_envelope
from ledger_api.errors import (
    DocumentNotFound,
    DocumentTooLarge,
    EnvelopeError,
    IntegrityError,
    InvalidCid,
    ReadModelError,
    RuleSetError,
    StoreUnavailable,
)
from ledger_api.verify.risk import (
    MAX_DOCUMENT_BYTES,
    MAX_RULE_SET_BYTES,
    RULE_SET_BATCH_KIND,
    AlertCounts,
    RiskInputs,
    RuleSet,
    parse_rule_set,
)

if TYPE_CHECKING:
    from ledger_api.index import DeclarationView, ReadModel

__all__ = [
    "ENVELOPE_OVERHEAD",
    "DocumentLater",
    "KeyringSource",
    "ReadModelFacts",
    "RiskFacts",
    "active_at",
    "alert_counts",
    "alert_counts_at",
    "anchored_rule_set",
    "gather",
    "gather_inputs",
    "read_declaration",
    "rule_set_from_store",
    "submission_block_hash",
    "trader_aeo_at",
    "trader_subject",
]

#: Bytes an envelope may add to the plaintext it seals (header, key wraps, tag).
ENVELOPE_OVERHEAD = 64 * 1024


# ---------------------------------------------------------------------------------- sources


class RiskFacts(Protocol):
    """Chain facts the risk inputs are made of, answerable as of any past block."""

    def block_hash(self, block: int) -> bytes:
        """Hash of block ``block`` (raises when unknown)."""
        ...

    def trader_aeo_at(self, trader: str, block: int) -> bool:
        """The trader's AEO flag at the end of ``block`` (``False`` if it was not registered then)."""
        ...

    def alert_spans(self, subject: str) -> Sequence[tuple[int, int | None]]:
        """``(raised block, cleared block or None)`` of every alert on ``subject`` (0x-hex bytes32)."""
        ...

    def rule_set_batch(self, root: str) -> tuple[int, str] | None:
        """``(kind, manifest CID as 0x-hex)`` of the batch anchored under ``root``, or ``None``."""
        ...


def trader_subject(address: str) -> str:
    """The alert subject of a trader: its address left-padded to bytes32, lowercase 0x-hex."""
    return "0x" + address.lower().removeprefix("0x").rjust(64, "0")


def active_at(spans: Iterable[tuple[int, int | None]], block: int) -> int:
    """How many of these alert spans were active at the end of ``block``."""
    return sum(1 for raised, cleared in spans if raised <= block and (cleared is None or cleared > block))


def alert_counts(
    facts: RiskFacts, *, declaration_id: str, declarant: str, documents: Iterable[str], block: int
) -> AlertCounts:
    """Alerts active at the end of ``block`` on the declaration, its declarant and its documents' sha256."""
    return AlertCounts(
        declaration=active_at(facts.alert_spans(declaration_id.lower()), block),
        trader=active_at(facts.alert_spans(trader_subject(declarant)), block),
        document=sum(active_at(facts.alert_spans(d.lower()), block) for d in documents),
    )


def gather(
    facts: RiskFacts,
    *,
    declaration_id: str,
    declarant: str,
    documents: Iterable[str],
    block: int,
    document: bytes | None,
) -> RiskInputs:
    """The :class:`RiskInputs` of the declaration submitted (or amended) in ``block``."""
    return RiskInputs(
        declaration_id=bytes.fromhex(declaration_id.removeprefix("0x")),
        block_hash=facts.block_hash(block),
        document=document,
        trader_aeo=facts.trader_aeo_at(declarant, block),
        alerts=alert_counts(
            facts, declaration_id=declaration_id, declarant=declarant, documents=documents, block=block
        ),  # fmt: skip
    )


# ---------------------------------------------------------------------------------- rule sets


def rule_set_from_store(facts: RiskFacts, store: ContentStore, rule_set_hash: str | bytes) -> RuleSet:
    """The rule set anchored under ``rule_set_hash``: batch → manifest CID → bytes → hash check.

    Raises :class:`RuleSetError` when no such batch is anchored, it is not a rule-set batch, or the
    stored bytes are not that rule set; content store errors propagate (``DocumentError``).
    """
    root = rule_set_hash if isinstance(rule_set_hash, str) else "0x" + rule_set_hash.hex()
    batch = facts.rule_set_batch(root)
    if batch is None:
        raise RuleSetError(f"no rule set is anchored under {root}")
    kind, manifest_cid = batch
    if kind != RULE_SET_BATCH_KIND:
        raise RuleSetError(f"batch {root} is of kind {kind}, not a rule set ({RULE_SET_BATCH_KIND})")
    try:
        cid = Cid.from_bytes(bytes.fromhex(str(manifest_cid).removeprefix("0x")))
    except (InvalidCid, ValueError) as exc:
        raise RuleSetError(f"rule set {root} has an unreadable manifest CID: {exc}") from None
    rule_set = parse_rule_set(store.read(cid, max_size=MAX_RULE_SET_BYTES))
    if "0x" + rule_set.hash.hex() != root.lower():
        raise RuleSetError(f"the rule set stored under {cid} hashes to 0x{rule_set.hash.hex()}, not {root}")
    return rule_set


# ---------------------------------------------------------------------------------- documents


class KeyringSource(Protocol):
    """Where the key wraps of a stored envelope are found."""

    def keyring(self, cid: str) -> Keyring | None:
        """The keyring of the envelope stored under ``cid`` (string form), or ``None``."""


class DocumentLater(Exception):
    """The document may become readable later (store down, envelope not found yet).

    ``store_error`` is the :class:`StoreUnavailable` when the store itself is down (a dependency
    outage, not a property of the document), else ``None``.
    """

    def __init__(self, message: str, *, store_error: StoreUnavailable | None = None) -> None:
        super().__init__(message)
        self.store_error = store_error


def read_declaration(
    *,
    cid: str,
    declaration_id: str,
    store: ContentStore,
    keyrings: KeyringSource,
    agency: str,
    private_key: AgencyPrivateKey | None,
) -> tuple[bytes | None, str]:
    """The declaration's plaintext and ``"read"``, or ``(None, reason)``.

    ``cid`` is the envelope CID as on chain (0x-hex of the binary CID). Reasons: ``invalid-cid``,
    ``no-decryption-key``, ``no-keyring``, ``not-shared`` (the keyring has no wrap for ``agency``),
    an integrity / size / envelope error code, ``commitment-mismatch`` (sha256 of the plaintext is
    not ``declaration_id``). Raises :class:`DocumentLater` when the store is unavailable or does
    not hold the envelope (yet).
    """
    try:
        parsed = Cid.from_bytes(bytes.fromhex(cid.removeprefix("0x")))
    except (InvalidCid, ValueError):
        return None, "invalid-cid"
    if private_key is None:
        return None, "no-decryption-key"
    keyring = keyrings.keyring(str(parsed))
    if keyring is None:
        return None, "no-keyring"
    if agency not in keyring.agencies:
        return None, "not-shared"
    try:
        envelope = store.read(parsed, max_size=MAX_DOCUMENT_BYTES + ENVELOPE_OVERHEAD)
    except StoreUnavailable as exc:
        raise DocumentLater(f"{type(exc).__name__}: {exc}", store_error=exc) from exc
    except DocumentNotFound as exc:
        raise DocumentLater(f"{type(exc).__name__}: {exc}") from exc
    except (IntegrityError, DocumentTooLarge) as exc:
        return None, exc.code
    try:
        plaintext = open_envelope(envelope, keyring, agency_id=agency, private_key=private_key)
    except EnvelopeError as exc:
        return None, exc.code
    if "0x" + hashlib.sha256(plaintext).hexdigest() != declaration_id.lower():
        return None, "commitment-mismatch"
    return plaintext, "read"


# ---------------------------------------------------------------------------------- read model


class ReadModelFacts:
    """:class:`RiskFacts` from an index (:class:`ledger_api.index.ReadModel`)."""

    def __init__(self, read: ReadModel) -> None:
        self.read = read

    def block_hash(self, block: int) -> bytes:
        """Hash of ``block`` from the index's block table."""
        row = self.read._db.execute("SELECT block_hash FROM blocks WHERE block_number = ?", (block,)).fetchone()
        if row is None:
            raise ReadModelError(f"the index holds no hash of block {block}")
        return bytes.fromhex(str(row[0]).removeprefix("0x"))

    def trader_aeo_at(self, trader: str, block: int) -> bool:
        """The trader's AEO flag at the end of ``block`` from the trader state history."""
        row = self.read._db.execute(
            "SELECT aeo FROM trader_states WHERE trader = ? AND block_number <= ? "
            "ORDER BY block_number DESC, log_index DESC LIMIT 1",
            (to_checksum_address(trader), block),
        ).fetchone()
        return bool(row and row[0])

    def alert_spans(self, subject: str) -> Sequence[tuple[int, int | None]]:
        """Alerts on ``subject`` with their raising and clearing blocks."""
        return [(a.block_number, a.cleared_block) for a in self.read.alerts(subject)]

    def rule_set_batch(self, root: str) -> tuple[int, str] | None:
        """The batch anchored under ``root``."""
        batch = self.read.batch(root)
        return None if batch is None else (int(batch["kind"]), str(batch["manifest_cid"]))


def submission_block_hash(read: ReadModel, view: DeclarationView) -> bytes:
    """Hash of the block holding the declaration's submission (or amendment) event."""
    return ReadModelFacts(read).block_hash(view.submitted_block)


def trader_aeo_at(read: ReadModel, trader: str, block: int) -> bool:
    """The trader's AEO flag at the end of ``block`` (``False`` if it was not registered then)."""
    return ReadModelFacts(read).trader_aeo_at(trader, block)


def alert_counts_at(read: ReadModel, view: DeclarationView, block: int) -> AlertCounts:
    """Alerts active at the end of ``block`` on the declaration, its declarant and its documents."""
    return alert_counts(
        ReadModelFacts(read), declaration_id=view.declaration_id, declarant=view.declarant,
        documents=[d.sha256 for d in view.documents], block=block,
    )  # fmt: skip


def gather_inputs(read: ReadModel, view: DeclarationView, document: bytes | None) -> RiskInputs:
    """The :class:`RiskInputs` of a declaration from a read model (what an auditor recomputes too)."""
    return gather(
        ReadModelFacts(read), declaration_id=view.declaration_id, declarant=view.declarant,
        documents=[d.sha256 for d in view.documents], block=view.submitted_block, document=document,
    )  # fmt: skip


def anchored_rule_set(read: ReadModel, store: ContentStore, rule_set_hash: str | bytes) -> RuleSet:
    """The rule set anchored under ``rule_set_hash`` according to a read model (see :func:`rule_set_from_store`)."""
    return rule_set_from_store(ReadModelFacts(read), store, rule_set_hash)
