"""Envelope encryption of documents for the agencies entitled to read them.

Two objects, deliberately separate:

* the **envelope** (immutable; stored in the content store; its CID is what gets anchored)::

      magic   "LDGENV"                    6 bytes
      version 0x01                        1 byte
      hlen    header length               2 bytes, big-endian
      header  RFC 8785 JSON               {"alg": "AES-256-GCM", "documentId": str, "nonce": hex}
      body    AES-256-GCM(data key, nonce, plaintext, aad = magic || version || hlen || header)
              ciphertext || 16-byte tag

  The document id is inside the authenticated header, so an envelope cannot be passed off as
  another document's. :func:`seal` also returns the plaintext's sha256 (the anchored commitment),
  computed on a second core while the first encrypts.

* the **keyring** (mutable; JSON ``ledger-keyring-v1``): one wrap of the 32-byte data key per
  authorized agency. A wrap is ECIES over X25519: a fresh ephemeral key pair, the shared secret
  with the agency's public key, ``HKDF-SHA256(shared, salt = ephemeral_pub || recipient_pub,
  info = "ledger-envelope-v1 key-wrap" || 0x00 || document_id || 0x00 || agency_id)`` as the
  key-encryption key, and AES-256-GCM over the data key with ``aad = document_id || 0x00 ||
  agency_id``.

Granting access re-wraps the data key for another agency (the envelope and its CID do not
change); revoking drops that agency's wrap; crypto-shredding drops every wrap, after which nobody
can open the envelope (the data key exists nowhere else). Revocation cannot take back what an
agency already decrypted; re-encrypt under a new data key (a new envelope, a new CID) for that.

Agency private keys are stored only as password-protected PKCS#8 PEM and never appear in reprs.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ledger_api.errors import (
    AccessRevoked,
    TamperedEnvelope,
    UnsupportedEnvelope,
    WrongKey,
)
from ledger_api.hashing import canonical_json

__all__ = [
    "ENVELOPE_MAGIC",
    "ENVELOPE_VERSION",
    "AgencyPrivateKey",
    "AgencyPublicKey",
    "Keyring",
    "KeyWrap",
    "SealedDocument",
    "envelope_document_id",
    "open_envelope",
    "seal",
]

ENVELOPE_MAGIC = b"LDGENV"
ENVELOPE_VERSION = 1
_ALG = "AES-256-GCM"
_KEYRING_FORMAT = "ledger-keyring-v1"
_WRAP_INFO = b"ledger-envelope-v1 key-wrap"


# --- keys ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AgencyPublicKey:
    """An agency's X25519 public key (what the AgencyRegistry publishes)."""

    raw: bytes  #: 32 raw bytes

    def __post_init__(self) -> None:
        if len(self.raw) != 32:
            raise ValueError("X25519 public keys are 32 bytes")

    @classmethod
    def from_hex(cls, text: str) -> AgencyPublicKey:
        """Parse 64 hex digits (optionally 0x-prefixed)."""
        return cls(raw=bytes.fromhex(text.removeprefix("0x")))

    @property
    def key_id(self) -> str:
        """First 16 hex digits of sha256(raw): names the key without revealing anything."""
        return hashlib.sha256(self.raw).hexdigest()[:16]

    def hex(self) -> str:
        """0x-prefixed hex."""
        return "0x" + self.raw.hex()

    def _key(self) -> X25519PublicKey:
        return X25519PublicKey.from_public_bytes(self.raw)


@dataclass(frozen=True)
class AgencyPrivateKey:
    """An agency's X25519 private key. Its repr never shows key material."""

    _key: X25519PrivateKey = field(repr=False)

    def __repr__(self) -> str:
        return f"AgencyPrivateKey(key_id={self.public_key.key_id!r})"

    @classmethod
    def generate(cls) -> AgencyPrivateKey:
        """A fresh random key."""
        return cls(X25519PrivateKey.generate())

    @property
    def public_key(self) -> AgencyPublicKey:
        """The matching public key."""
        return AgencyPublicKey(
            raw=self._key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        )

    def to_encrypted_pem(self, password: bytes) -> bytes:
        """Password-protected PKCS#8 PEM (the only at-rest form we write)."""
        if len(password) < 8:
            raise ValueError("use a password of at least 8 bytes")
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password),
        )

    @classmethod
    def from_encrypted_pem(cls, pem: bytes, password: bytes) -> AgencyPrivateKey:
        """Load :meth:`to_encrypted_pem` output; :class:`WrongKey` for a wrong password."""
        try:
            key = serialization.load_pem_private_key(pem, password=password)
        except (ValueError, TypeError) as exc:
            raise WrongKey("cannot decrypt the private key: wrong password or not a key") from exc
        if not isinstance(key, X25519PrivateKey):
            raise WrongKey("the PEM holds a key that is not X25519")
        return cls(key)

    def _exchange(self, peer: AgencyPublicKey) -> bytes:
        return self._key.exchange(peer._key())


# --- envelope ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class KeyWrap:
    """The data key wrapped for one agency."""

    agency_id: str  #: the agency the wrap is for
    recipient_key_id: str  #: :attr:`AgencyPublicKey.key_id` of the key it was wrapped to
    ephemeral_public_key: str  #: hex X25519 ephemeral public key
    nonce: str  #: hex 12-byte AES-GCM nonce
    wrapped_key: str = field(repr=False)  #: hex AES-GCM(kek, data key) incl. tag


@dataclass(frozen=True, kw_only=True)
class Keyring:
    """Every wrap of one document's data key. Mutations return a new keyring."""

    document_id: str  #: the document the data key belongs to
    wraps: tuple[KeyWrap, ...] = ()  #: at most one per agency

    @property
    def agencies(self) -> list[str]:
        """Agency ids holding a wrap."""
        return sorted(w.agency_id for w in self.wraps)

    def grant(
        self,
        *,
        envelope: bytes,
        holder_id: str,
        holder_key: AgencyPrivateKey,
        agency_id: str,
        public_key: AgencyPublicKey,
    ) -> Keyring:
        """Re-wrap the data key for ``agency_id`` using a current holder's key.

        The envelope is only read to check the data key opens it; it is not re-encrypted.
        """
        data_key = self.unwrap(holder_id, holder_key)
        _decrypt_body(envelope, data_key, expected_document_id=self.document_id)
        others = tuple(w for w in self.wraps if w.agency_id != agency_id)
        return replace(self, wraps=(*others, _wrap(data_key, self.document_id, agency_id, public_key)))

    def revoke(self, agency_id: str) -> Keyring:
        """Drop ``agency_id``'s wrap (:class:`AccessRevoked` if it had none)."""
        if agency_id not in self.agencies:
            raise AccessRevoked(self.document_id, agency_id)
        return replace(self, wraps=tuple(w for w in self.wraps if w.agency_id != agency_id))

    def shred(self) -> Keyring:
        """Crypto-shred: a keyring without any wrap. Persist it over every copy of the old one."""
        return replace(self, wraps=())

    def unwrap(self, agency_id: str, private_key: AgencyPrivateKey) -> bytes:
        """Recover the data key with an agency's private key."""
        wrap = next((w for w in self.wraps if w.agency_id == agency_id), None)
        if wrap is None:
            raise AccessRevoked(self.document_id, agency_id)
        if wrap.recipient_key_id != private_key.public_key.key_id:
            raise WrongKey(
                f"document {self.document_id!r} was wrapped for key {wrap.recipient_key_id} of"
                f" agency {agency_id!r}, not key {private_key.public_key.key_id}"
            )
        try:
            ephemeral = AgencyPublicKey.from_hex(wrap.ephemeral_public_key)
            kek = _kek(
                private_key._exchange(ephemeral),
                ephemeral,
                private_key.public_key,
                self.document_id,
                agency_id,
            )
            return AESGCM(kek).decrypt(
                bytes.fromhex(wrap.nonce),
                bytes.fromhex(wrap.wrapped_key),
                _wrap_aad(self.document_id, agency_id),
            )
        except (InvalidTag, ValueError) as exc:
            raise TamperedEnvelope(self.document_id, f"key wrap of {agency_id!r} is corrupt") from exc

    def to_json(self) -> str:
        """Serialize (versioned; safe to store next to the envelope: wraps are encrypted)."""
        return canonical_json(
            {
                "format": _KEYRING_FORMAT,
                "documentId": self.document_id,
                "wraps": [
                    {
                        "agencyId": w.agency_id,
                        "recipientKeyId": w.recipient_key_id,
                        "ephemeralPublicKey": w.ephemeral_public_key,
                        "nonce": w.nonce,
                        "wrappedKey": w.wrapped_key,
                    }
                    for w in sorted(self.wraps, key=lambda w: w.agency_id)
                ],
            }
        ).decode()

    @classmethod
    def from_json(cls, text: str | bytes) -> Keyring:
        """Parse :meth:`to_json` output."""
        try:
            raw = json.loads(text)
            if raw.get("format") != _KEYRING_FORMAT:
                raise UnsupportedEnvelope(f"unknown keyring format {raw.get('format')!r}")
            return cls(
                document_id=raw["documentId"],
                wraps=tuple(
                    KeyWrap(
                        agency_id=w["agencyId"],
                        recipient_key_id=w["recipientKeyId"],
                        ephemeral_public_key=w["ephemeralPublicKey"],
                        nonce=w["nonce"],
                        wrapped_key=w["wrappedKey"],
                    )
                    for w in raw["wraps"]
                ),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UnsupportedEnvelope(f"malformed keyring: {exc}") from exc


@dataclass(frozen=True, kw_only=True)
class SealedDocument:
    """Result of :func:`seal`."""

    envelope: bytes = field(repr=False)  #: store this; its CID is anchored
    keyring: Keyring  #: store this (mutable: grant / revoke / shred)
    commitment: bytes  #: sha256 of the plaintext (anchored next to the CID)


def _wrap_aad(document_id: str, agency_id: str) -> bytes:
    return document_id.encode() + b"\0" + agency_id.encode()


def _kek(
    shared: bytes,
    ephemeral: AgencyPublicKey,
    recipient: AgencyPublicKey,
    document_id: str,
    agency_id: str,
) -> bytes:
    if shared == bytes(32):
        raise WrongKey("X25519 produced the all-zero shared secret (invalid public key)")
    return HKDF(
        algorithm=SHA256(),
        length=32,
        salt=ephemeral.raw + recipient.raw,
        info=_WRAP_INFO + b"\0" + _wrap_aad(document_id, agency_id),
    ).derive(shared)


def _wrap(data_key: bytes, document_id: str, agency_id: str, public_key: AgencyPublicKey) -> KeyWrap:
    ephemeral = AgencyPrivateKey.generate()
    kek = _kek(ephemeral._exchange(public_key), ephemeral.public_key, public_key, document_id, agency_id)
    nonce = secrets.token_bytes(12)
    wrapped = AESGCM(kek).encrypt(nonce, data_key, _wrap_aad(document_id, agency_id))
    return KeyWrap(
        agency_id=agency_id,
        recipient_key_id=public_key.key_id,
        ephemeral_public_key=ephemeral.public_key.raw.hex(),
        nonce=nonce.hex(),
        wrapped_key=wrapped.hex(),
    )


def _encrypt_into(data_key: bytes, nonce: bytes, prefix: bytes, plaintext: bytes) -> bytes:
    """``prefix || AES-256-GCM(plaintext, aad=prefix) || tag`` written into one buffer.

    Same bytes as ``prefix + AESGCM(key).encrypt(nonce, plaintext, prefix)`` with one full-size
    copy fewer (large documents are bound by memory traffic, not by AES).
    """
    encryptor = Cipher(algorithms.AES(data_key), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(prefix)
    out = bytearray(len(prefix) + len(plaintext) + 16)
    view = memoryview(out)
    view[: len(prefix)] = prefix
    written = encryptor.update_into(plaintext, view[len(prefix) :])
    encryptor.finalize()
    end = len(prefix) + written
    view[end : end + 16] = encryptor.tag
    view.release()
    return bytes(out)


#: Documents at least this large are hashed on another thread while they are encrypted.
_PARALLEL_HASH_FROM = 1 << 20


def seal(plaintext: bytes, *, document_id: str, recipients: Mapping[str, AgencyPublicKey]) -> SealedDocument:
    """Encrypt ``plaintext`` once under a fresh data key and wrap that key for each recipient."""
    if not document_id:
        raise ValueError("document_id must not be empty")
    data_key = AESGCM.generate_key(bit_length=256)
    nonce = secrets.token_bytes(12)
    header = canonical_json({"alg": _ALG, "documentId": document_id, "nonce": nonce.hex()})
    if len(header) > 0xFFFF:
        raise ValueError("document_id too long")
    prefix = ENVELOPE_MAGIC + bytes((ENVELOPE_VERSION,)) + struct.pack(">H", len(header)) + header
    commitment: list[bytes] = []
    if len(plaintext) < _PARALLEL_HASH_FROM:  # a thread costs more than hashing a small document
        commitment.append(hashlib.sha256(plaintext).digest())
        envelope = _encrypt_into(data_key, nonce, prefix, plaintext)
    else:
        hasher = threading.Thread(target=lambda: commitment.append(hashlib.sha256(plaintext).digest()))
        hasher.start()  # hashlib releases the GIL: the commitment is computed on another core
        try:
            envelope = _encrypt_into(data_key, nonce, prefix, plaintext)
        finally:
            hasher.join()
    keyring = Keyring(
        document_id=document_id,
        wraps=tuple(_wrap(data_key, document_id, a, k) for a, k in sorted(recipients.items())),
    )
    return SealedDocument(envelope=envelope, keyring=keyring, commitment=commitment[0])


def _parse(envelope: bytes) -> tuple[bytes, dict[str, str], bytes]:
    if len(envelope) < 9 or envelope[:6] != ENVELOPE_MAGIC:
        raise UnsupportedEnvelope("not a ledger envelope (bad magic)")
    if envelope[6] != ENVELOPE_VERSION:
        raise UnsupportedEnvelope(f"unsupported envelope version {envelope[6]}")
    (hlen,) = struct.unpack(">H", envelope[7:9])
    if len(envelope) < 9 + hlen + 16:
        raise TamperedEnvelope("?", "envelope is shorter than its header says")
    try:
        header = json.loads(envelope[9 : 9 + hlen])
        if not isinstance(header, dict):
            raise ValueError("header is not an object")
    except ValueError as exc:
        raise TamperedEnvelope("?", "envelope header is not JSON") from exc
    if header.get("alg") != _ALG:
        raise UnsupportedEnvelope(f"unsupported algorithm {header.get('alg')!r}")
    return envelope[: 9 + hlen], header, envelope[9 + hlen :]


def envelope_document_id(envelope: bytes) -> str:
    """The document id recorded in an envelope header (unauthenticated until decrypted)."""
    return str(_parse(envelope)[1].get("documentId"))


def _decrypt_body(envelope: bytes, data_key: bytes, *, expected_document_id: str) -> bytes:
    prefix, header, body = _parse(envelope)
    document_id = str(header.get("documentId"))
    if document_id != expected_document_id:
        raise TamperedEnvelope(expected_document_id, f"envelope is for document {document_id!r}")
    try:
        return AESGCM(data_key).decrypt(bytes.fromhex(str(header.get("nonce"))), body, prefix)
    except (InvalidTag, ValueError) as exc:
        raise TamperedEnvelope(document_id, "ciphertext or header was altered") from exc


def open_envelope(envelope: bytes, keyring: Keyring, *, agency_id: str, private_key: AgencyPrivateKey) -> bytes:
    """Decrypt an envelope as ``agency_id``.

    Raises :class:`AccessRevoked` (no wrap for the agency), :class:`WrongKey` (another key),
    :class:`TamperedEnvelope` (ciphertext, header or wrap altered), :class:`UnsupportedEnvelope`.
    """
    data_key = keyring.unwrap(agency_id, private_key)
    return _decrypt_body(envelope, data_key, expected_document_id=keyring.document_id)
