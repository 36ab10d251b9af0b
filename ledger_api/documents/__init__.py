"""Documents: content stores (Kubo-identical CIDs), CAR, envelope encryption, Merkle batches.

* :class:`LocalStore` (embedded default, blocks on disk) and :class:`IpfsStore` (any Kubo-compatible
  RPC endpoint) share the :class:`ContentStore` interface: ``put / get / read / has / pin / unpin /
  list``; every read is verified block by block against the CID.
* :func:`cid_of` computes the CID ``ipfs add`` would print (v1 raw leaves by default, v0 on request)
  without storing anything.
* :func:`export_car` / :func:`import_car` move documents between stores as CARv1.
* :func:`seal` / :func:`open_envelope` / :class:`Keyring` encrypt a document once for many agencies.
* :class:`StandardMerkleTree` builds OpenZeppelin-compatible trees; :class:`DocumentBatch` anchors many
  documents under one root with a stored manifest and a proof file per document.
* :func:`fetch_copy` / :func:`verify_commitment` re-verify a stored copy of an anchored document.

See ``docs/documents.md``.
"""

from __future__ import annotations

from pathlib import Path

from ledger_api.documents._batch import (
    BATCH_FORMAT,
    MAX_BATCH_DOCUMENTS,
    PROOF_FORMAT,
    DocumentBatch,
    verify_batch_proof,
)
from ledger_api.documents._car import CarImport, export_car, import_car, iter_car
from ledger_api.documents._cid import Cid
from ledger_api.documents._configured import LazyIpfsStore, content_store
from ledger_api.documents._envelope import (
    ENVELOPE_MAGIC,
    ENVELOPE_VERSION,
    AgencyPrivateKey,
    AgencyPublicKey,
    Keyring,
    KeyWrap,
    SealedDocument,
    envelope_document_id,
    open_envelope,
    seal,
)
from ledger_api.documents._ipfs import IpfsStore
from ledger_api.documents._keyrings import VAULT_FILE, VaultKeyrings
from ledger_api.documents._merkle import MultiProof, StandardMerkleTree, keccak256, leaf_hash
from ledger_api.documents._store import (
    DEFAULT_MAX_SIZE,
    ContentStore,
    LocalStore,
    Source,
    StoredDocument,
    _chunks,
)
from ledger_api.documents._unixfs import CHUNK_SIZE, MAX_LINKS, DagBuilder
from ledger_api.documents._verify import FetchedCopy, VerifiedBlocks, fetch_copy, verify_commitment

__all__ = [
    "BATCH_FORMAT",
    "CHUNK_SIZE",
    "DEFAULT_MAX_SIZE",
    "ENVELOPE_MAGIC",
    "ENVELOPE_VERSION",
    "MAX_BATCH_DOCUMENTS",
    "MAX_LINKS",
    "PROOF_FORMAT",
    "VAULT_FILE",
    "AgencyPrivateKey",
    "AgencyPublicKey",
    "CarImport",
    "Cid",
    "ContentStore",
    "DagBuilder",
    "DocumentBatch",
    "FetchedCopy",
    "IpfsStore",
    "KeyWrap",
    "Keyring",
    "LazyIpfsStore",
    "LocalStore",
    "MultiProof",
    "SealedDocument",
    "StandardMerkleTree",
    "StoredDocument",
    "VaultKeyrings",
    "VerifiedBlocks",
    "cid_of",
    "cid_of_file",
    "content_store",
    "envelope_document_id",
    "export_car",
    "fetch_copy",
    "import_car",
    "iter_car",
    "keccak256",
    "leaf_hash",
    "open_envelope",
    "seal",
    "verify_batch_proof",
    "verify_commitment",
]


def cid_of(source: Source, *, cid_version: int = 1, max_size: int | None = None) -> str:
    """The CID ``ipfs add`` prints for this content (v1: ``--cid-version=1 --raw-leaves``).

    ``source`` is bytes, a binary file object or an iterable of chunks; nothing is stored.
    """
    builder = DagBuilder(cid_version=cid_version)
    for chunk in _chunks(source, max_size):
        builder.feed(chunk)
    return str(builder.finish())


def cid_of_file(path: str | Path, *, cid_version: int = 1, max_size: int | None = None) -> str:
    """:func:`cid_of` for a file on disk, read in 1 MiB chunks."""
    with open(path, "rb") as fh:
        return cid_of(fh, cid_version=cid_version, max_size=max_size)
