"""Documents: agencies holding a key wrap fetch the decrypted plaintext, see and extend who holds one.

The service keeps every sealed document it stored in its :class:`~ledger_api.api.writes.DocumentVault`
(envelope CID + keyring, by plaintext sha256) and holds the X25519 keys of the agencies whose signer
keys it has custody of. Reading decrypts with the caller agency's key and re-checks the plaintext
against the requested (anchored) sha256. Traders never read here: they have their originals.

Access rules (kept deliberately simple):

* read / list access / grant: the caller's agency holds a wrap, and (read, grant) this service holds
  that agency's decryption key;
* grant to: any ACTIVE agency with a registered encryption key;
* revoke: only the customs authority of the jurisdiction of a declaration anchoring the document (as
  its declaration or a supporting document, per the read model), and never its own wrap.
"""

from __future__ import annotations

import base64
import threading
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from ledger_api.api.deps import CurrentAgency, ReadModelDep
from ledger_api.api.routes.submissions import writes_of
from ledger_api.api.writes import StoredEnvelope, WriteService
from ledger_api.documents import AgencyPrivateKey, AgencyPublicKey, open_envelope
from ledger_api.errors import (
    DocumentNotFound,
    Forbidden,
    IntegrityError,
    InvalidSubmission,
    NoCustody,
    TamperedEnvelope,
)
from ledger_api.hashing import sha256_bytes
from ledger_api.index import AnchorKind, ReadModel
from ledger_api.models import Identity

__all__ = ["DocumentAccess", "GrantRequest", "router"]

router = APIRouter(prefix="/v1/documents", tags=["documents"])

Sha256Hex = Annotated[
    str, Path(pattern=r"^0x[0-9a-fA-F]{64}$", description="sha256 of the plaintext document (anchored), 0x-hex")
]
AgencyCode = Annotated[str, Path(pattern=r"^[A-Z0-9][A-Z0-9-]{1,31}$", description="agency code")]

_ACTIVE = 1  # AgencyStatus.ACTIVE
_CUSTOMS_AUTHORITY = "CUSTOMS_AUTHORITY"
#: An envelope is its plaintext plus a small header and the 16-byte GCM tag.
_ENVELOPE_OVERHEAD = 64 * 1024
#: Keyring changes are read-modify-write of one vault row: one at a time in this process.
_KEYRING_LOCK = threading.Lock()


class DocumentAccess(BaseModel):
    """Which agencies hold a key wrap of a stored document."""

    model_config = ConfigDict(frozen=True)

    sha256: str = Field(description="sha256 of the plaintext (anchored)")
    cid: str = Field(description="CID of the sealed envelope in the content store")
    agencies: list[str] = Field(description="agency codes holding a wrap, sorted")


class GrantRequest(BaseModel):
    """Grant another agency a wrap of the document's data key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agency_id: str = Field(pattern=r"^[A-Z0-9][A-Z0-9-]{1,31}$", description="code of an ACTIVE agency")


def _held(writes: WriteService, sha256: str, caller: Identity) -> tuple[StoredEnvelope, str]:
    """An envelope of ``sha256`` holding a wrap for the caller's agency, and that agency's code.

    404 ``document-not-found`` whether the document is unknown or the caller's agency holds no wrap:
    an agency without access learns nothing about which documents exist.
    """
    agency_id = caller.agency_id or ""
    envelope = writes.vault.for_agency(bytes.fromhex(sha256[2:]), agency_id) if agency_id else None
    if envelope is None:
        raise DocumentNotFound(sha256.lower(), "no sealed copy this agency holds a key wrap of")
    return envelope, agency_id


def _decryption_key(writes: WriteService, agency_id: str) -> AgencyPrivateKey:
    key = writes.decryption_keys.get(agency_id)
    if key is None:
        raise NoCustody(f"this service holds no decryption key of {agency_id}")
    return key


def _access(envelope: StoredEnvelope) -> DocumentAccess:
    return DocumentAccess(sha256="0x" + envelope.sha256.hex(), cid=envelope.cid, agencies=envelope.keyring.agencies)


def _read_envelope(writes: WriteService, envelope: StoredEnvelope) -> bytes:
    return writes.vault.store.read(envelope.cid, max_size=writes.max_document + _ENVELOPE_OVERHEAD)


@router.get(
    "/{sha256}",
    summary="Fetch and decrypt a stored document (agencies holding a wrap)",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}},
)
async def get_document(sha256: Sha256Hex, caller: CurrentAgency, request: Request) -> Response:
    """The plaintext, decrypted with the caller agency's key and re-checked against ``sha256``."""
    writes = writes_of(request)
    envelope, agency_id = _held(writes, sha256, caller)
    key = _decryption_key(writes, agency_id)

    def open_it() -> bytes:
        raw = _read_envelope(writes, envelope)
        try:
            return open_envelope(raw, envelope.keyring, agency_id=agency_id, private_key=key)
        except TamperedEnvelope as exc:
            raise IntegrityError(envelope.cid, "the stored envelope failed authentication") from exc

    plaintext = await run_in_threadpool(open_it)
    digest = sha256_bytes(plaintext)
    if digest != envelope.sha256:
        raise IntegrityError(envelope.cid, f"decrypted content does not hash to {sha256.lower()}")
    encoded = base64.b64encode(digest).decode()
    return Response(
        content=plaintext,
        media_type="application/octet-stream",
        headers={
            "Content-Digest": f"sha-256=:{encoded}:",
            "Digest": f"sha-256={encoded}",
            "Ledger-Sha256": "0x" + digest.hex(),
            "Cache-Control": "no-store",
        },
    )


@router.get("/{sha256}/access", summary="Which agencies hold a key wrap (for an agency holding one)")
async def document_access(sha256: Sha256Hex, caller: CurrentAgency, request: Request) -> DocumentAccess:
    """The agencies holding a wrap; only agencies that hold one themselves may ask."""
    envelope, _ = _held(writes_of(request), sha256, caller)
    return _access(envelope)


def _grantee_key(model: ReadModel, code: str) -> AgencyPublicKey:
    view = model.agency(code)
    if view is None or view.status != _ACTIVE:
        raise InvalidSubmission(f"{code} is not an active agency of this ledger")
    key = bytes.fromhex(view.encryption_key.removeprefix("0x"))
    if len(key) != 32 or not any(key):
        raise InvalidSubmission(f"{code} has no document encryption key registered")
    return AgencyPublicKey(raw=key)


@router.post("/{sha256}/grants", summary="Grant another active agency access (an agency holding a wrap)")
async def grant_access(
    sha256: Sha256Hex, grant: GrantRequest, caller: CurrentAgency, model: ReadModelDep, request: Request
) -> DocumentAccess:
    """Re-wrap the document's data key for ``agency_id`` with the caller agency's key (idempotent)."""
    writes = writes_of(request)
    _, holder = _held(writes, sha256, caller)
    holder_key = _decryption_key(writes, holder)
    public_key = _grantee_key(model, grant.agency_id)

    def change() -> StoredEnvelope:
        with _KEYRING_LOCK:
            current, _ = _held(writes, sha256, caller)
            keyring = current.keyring.grant(
                envelope=_read_envelope(writes, current), holder_id=holder, holder_key=holder_key,
                agency_id=grant.agency_id, public_key=public_key,
            )  # fmt: skip
            writes.vault.update_keyring(current.cid, keyring)
            refreshed = writes.vault.by_cid(current.cid)
            assert refreshed is not None
            return refreshed

    return _access(await run_in_threadpool(change))


def _jurisdictions(model: ReadModel, sha256: str) -> set[int]:
    """Agency indices of the jurisdictions of declarations anchoring ``sha256`` (itself or as a document)."""
    out = set()
    for anchor in model.document(sha256.lower()):
        if anchor.kind in (AnchorKind.DECLARATION, AnchorKind.SUPPORTING_DOCUMENT):
            declaration = model.declaration(anchor.ref)
            if declaration is not None:
                out.add(declaration.jurisdiction)
    return out


@router.delete(
    "/{sha256}/grants/{agency_id}",
    summary="Revoke an agency's access (the customs authority of an anchoring declaration's jurisdiction)",
)
async def revoke_access(
    sha256: Sha256Hex, agency_id: AgencyCode, caller: CurrentAgency, model: ReadModelDep, request: Request
) -> DocumentAccess:
    """Drop ``agency_id``'s wraps (every envelope of the document); revoking an agency that holds
    none changes nothing. The customs authority of any jurisdiction whose declaration anchors the
    document keeps its access: one jurisdiction cannot lock another out."""
    writes = writes_of(request)
    own = model.agency(caller.agency_id or "")
    jurisdictions = _jurisdictions(model, sha256)
    if not caller.has_role(_CUSTOMS_AUTHORITY) or own is None or own.agency_index not in jurisdictions:
        raise Forbidden("only the customs authority of a declaration anchoring this document revokes access")
    if not writes.vault.envelopes(bytes.fromhex(sha256[2:])):
        raise DocumentNotFound(sha256.lower(), "no sealed copy stored by this service")
    target = model.agency(agency_id)
    if agency_id == caller.agency_id or (target is not None and target.agency_index in jurisdictions):
        raise InvalidSubmission("the customs authority of an anchoring declaration keeps its access")

    def change() -> StoredEnvelope:
        with _KEYRING_LOCK:
            envelopes = writes.vault.envelopes(bytes.fromhex(sha256[2:]))
            for current in envelopes:
                if agency_id in current.keyring.agencies:
                    writes.vault.update_keyring(current.cid, current.keyring.revoke(agency_id))
            return next(
                (
                    e
                    for e in writes.vault.envelopes(bytes.fromhex(sha256[2:]))
                    if caller.agency_id in e.keyring.agencies
                ),
                envelopes[0],
            )

    return _access(await run_in_threadpool(change))
