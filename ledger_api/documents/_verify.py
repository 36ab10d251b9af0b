"""Re-verifying a stored copy of an anchored document: every block against its CID, then the commitment.

Shared by the integrity watch (``oracles/integrity.py``) and the auditor replay
(``ledger_api/audit/_documents.py``):

* :func:`fetch_copy` walks a document's whole DAG in one store, each block verified against its CID
  by the store (:class:`~ledger_api.errors.IntegrityError` names the first bad block), and keeps
  the blocks of documents up to a size limit so the content can be reassembled once
  (:class:`VerifiedBlocks`);
* :func:`verify_commitment` tells whether intact content is what was anchored: its own sha256, or
  — for a ledger envelope this agency can open — the sha256 of the plaintext.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ledger_api.documents._cid import Cid
from ledger_api.documents._envelope import ENVELOPE_MAGIC, AgencyPrivateKey, Keyring, open_envelope
from ledger_api.documents._store import DEFAULT_MAX_SIZE, ContentStore, Source, StoredDocument
from ledger_api.errors import AccessRevoked, DecryptionError, DocumentNotFound, TamperedEnvelope, UnsupportedEnvelope

__all__ = ["FetchedCopy", "VerifiedBlocks", "fetch_copy", "verify_commitment"]


class VerifiedBlocks(ContentStore):
    """Read-only view over blocks already fetched and verified (reassembles a document once)."""

    def __init__(self, blocks: dict[Cid, bytes]) -> None:
        self._blocks = blocks

    def get_block(self, cid: str | Cid) -> bytes:
        """The block as verified when it was fetched."""
        parsed = Cid.parse(cid)
        try:
            return self._blocks[parsed]
        except KeyError as exc:
            raise DocumentNotFound(str(parsed), "not among the fetched blocks") from exc

    def get_block_unverified(self, cid: Cid) -> bytes:
        """Same as :meth:`get_block`."""
        return self.get_block(cid)

    def put(
        self, source: Source, *, max_size: int | None = DEFAULT_MAX_SIZE, cid_version: int = 1, pin: bool = True
    ) -> StoredDocument:
        """Not supported (read-only)."""
        raise NotImplementedError

    def put_block(self, cid: Cid, block: bytes) -> None:
        """Not supported (read-only)."""
        raise NotImplementedError

    def has(self, cid: str | Cid) -> bool:
        """Whether the block was fetched."""
        return Cid.parse(cid) in self._blocks

    def pin(self, cid: str | Cid) -> None:
        """Not supported (read-only)."""
        raise NotImplementedError

    def unpin(self, cid: str | Cid) -> None:
        """Not supported (read-only)."""
        raise NotImplementedError

    def list(self) -> list[str]:
        """Nothing is pinned here."""
        return []


@dataclass(frozen=True, kw_only=True)
class FetchedCopy:
    """One copy whose every block hashed to its CID."""

    cid: Cid
    blocks: tuple[Cid, ...]  #: every block of the DAG, root first
    bytes_read: int
    content: bytes | None  #: the document (``None`` when larger than the retention limit)


def fetch_copy(store: ContentStore, cid: str | Cid, *, retain: int = DEFAULT_MAX_SIZE) -> FetchedCopy:
    """Fetch and verify every block of ``cid`` from ``store``; keep the content if ≤ ``retain`` bytes.

    Raises what the store raises: :class:`~ledger_api.errors.IntegrityError` (a block does not hash
    to its CID), :class:`~ledger_api.errors.DocumentNotFound` (root or part of the DAG gone),
    :class:`~ledger_api.errors.StoreUnavailable`, :class:`~ledger_api.errors.MalformedBlock`.
    """
    parsed = Cid.parse(cid)
    keep = store.size(parsed) <= retain
    blocks: dict[Cid, bytes] = {}
    read = 0
    for block_cid, block in store.dag_cids(parsed):
        read += len(block)
        blocks[block_cid] = block if keep else b""
    content = VerifiedBlocks(blocks).read(parsed, max_size=None) if keep else None
    return FetchedCopy(cid=parsed, blocks=tuple(blocks), bytes_read=read, content=content)


def verify_commitment(
    content: bytes,
    expected_sha256: str,
    *,
    agency: str,
    private_key: AgencyPrivateKey | None,
    keyring: Keyring | None,
) -> tuple[str, str]:
    """``("verified" | "unchecked" | "mismatch", detail)`` for intact ``content`` anchored as ``expected_sha256``.

    Plain content whose sha256 is the anchored one is ``verified``; a ledger envelope is opened with
    ``agency``'s ``private_key`` and ``keyring`` and its plaintext hashed (``mismatch`` when it differs
    or the envelope fails authentication); anything that cannot be opened is ``unchecked``.
    """
    expected = expected_sha256.lower().removeprefix("0x")
    if hashlib.sha256(content).hexdigest() == expected:
        return "verified", "plain content"
    if not content.startswith(ENVELOPE_MAGIC):
        return "unchecked", "not an envelope and not the committed bytes"
    if private_key is None or keyring is None or agency not in keyring.agencies:
        return "unchecked", "no key wrap for this agency"
    try:
        plaintext = open_envelope(content, keyring, agency_id=agency, private_key=private_key)
    except TamperedEnvelope as exc:
        return "mismatch", f"{type(exc).__name__}: {exc}"[:300]
    except (AccessRevoked, DecryptionError, UnsupportedEnvelope) as exc:
        return "unchecked", f"{type(exc).__name__}: {exc}"[:300]
    if hashlib.sha256(plaintext).hexdigest() != expected:
        return "mismatch", "sha256 of the decrypted plaintext differs from the anchored commitment"
    return "verified", "envelope opened, commitment matches"
