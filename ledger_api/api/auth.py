"""Who is calling: RFC 9421 HTTP message signatures made with on-chain keys, replay-protected.

Every request is signed by an on-chain identity: a currently valid signer key of an ACTIVE agency,
or an ACTIVE trader account. Keys are Ethereum secp256k1 keys, so the signature algorithm is
``ecdsa-secp256k1-keccak256``: the RFC 9421 signature base is hashed with keccak256 and signed
with a 65-byte recoverable signature ``r ‖ s ‖ v`` (low-s only); the ``keyid`` is the key's
checksummed address and verification recovers the address from the signature. Parsing, the
signature base and Content-Digest (RFC 9530) come from the ``http-message-signatures`` library.

A request must sign ``@method``, ``@target-uri`` and, when it has a body, ``content-digest``;
carry ``created`` within :data:`MAX_AGE` of the server clock, a ``nonce`` never seen before in that
window, and the tag :data:`SIGNATURE_TAG` (so a signature made for another service is not accepted).
"""

from __future__ import annotations

import base64
import datetime
import functools
import hashlib
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from coincurve import PrivateKey, PublicKey
from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureAlgorithm,
    HTTPSignatureKeyResolver,
    InvalidSignature,
)

from ledger_api.documents._merkle import keccak256 as keccak
from ledger_api.errors import SignatureInvalid, SignatureMissing, SignatureReplayed, UnknownCaller
from ledger_api.models import Identity

__all__ = [
    "ALGORITHM_ID",
    "MAX_AGE",
    "SIGNATURE_TAG",
    "Identity",
    "IdentityDirectory",
    "MemoryNonceStore",
    "NonceStore",
    "RequestAuthenticator",
    "Secp256k1Keccak256",
    "SqliteNonceStore",
    "content_sha256",
    "sign_request",
]

ALGORITHM_ID = "ecdsa-secp256k1-keccak256"
#: Application tag every signature for this service must carry.
SIGNATURE_TAG = "customs-ledger"
#: How old (or how far in the future, for clock skew) a signature's ``created`` may be.
MAX_AGE = datetime.timedelta(minutes=5)
_SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0


_HEX = frozenset("0123456789abcdef")


@functools.lru_cache(maxsize=8192)
def to_checksum_address(address: str | bytes) -> str:
    """EIP-55 form of a 20-byte address given as bytes or (0x-)hex of any case; ``ValueError`` otherwise.

    Cached and hashed with the native keccak: it runs several times per authenticated request.
    """
    text = address.hex() if isinstance(address, bytes) else address.lower().removeprefix("0x")
    if len(text) != 40 or not _HEX.issuperset(text):
        raise ValueError(f"not an address: {address!r}")
    digest = keccak(text.encode()).hex()
    return "0x" + "".join(c.upper() if int(digest[i], 16) >= 8 else c for i, c in enumerate(text))


def _address_of(public_key: PublicKey) -> str:
    return to_checksum_address(keccak(public_key.format(compressed=False)[1:])[-20:])


class Secp256k1Keccak256(HTTPSignatureAlgorithm):
    """``ecdsa-secp256k1-keccak256`` for ``http-message-signatures``.

    ``public_key`` is the expected signer address; ``private_key`` the 32-byte secret (signing only).
    """

    algorithm_id = ALGORITHM_ID

    def __init__(self, public_key: str | None = None, private_key: bytes | None = None) -> None:
        self.address = public_key
        self.private_key = private_key

    def sign(self, message: bytes) -> bytes:
        """A recoverable signature ``r ‖ s ‖ v`` (coincurve emits low-s) over keccak256(message)."""
        if self.private_key is None:
            raise InvalidSignature("no private key to sign with")
        signature: bytes = PrivateKey(self.private_key).sign_recoverable(keccak(message), hasher=None)
        return signature

    def verify(self, signature: bytes, message: bytes) -> None:
        """Recover the signer and compare it with the expected address; raise if it differs."""
        if len(signature) != 65 or signature[64] > 1:
            raise InvalidSignature("a secp256k1 signature is 65 bytes r || s || v with v in {0, 1}")
        if int.from_bytes(signature[32:64], "big") > _SECP256K1_HALF_N:
            raise InvalidSignature("high-s signatures are not accepted")
        try:
            recovered = _address_of(PublicKey.from_signature_and_message(signature, keccak(message), hasher=None))
        except Exception as exc:  # coincurve raises plain exceptions for unrecoverable input
            raise InvalidSignature("signature does not recover to a public key") from exc
        if self.address is None or recovered != to_checksum_address(self.address):
            raise InvalidSignature("signature was made by another key")


class IdentityDirectory(Protocol):
    """Resolves an address to a current identity (backed by the registry or the index)."""

    def identity(self, address: str, *, at: int) -> Identity | None:
        """The identity of ``address`` at unix time ``at``; ``None`` if it is not a valid caller then."""
        ...


class NonceStore(Protocol):
    """Remembers used nonces until their signatures expire."""

    def use(self, key_id: str, nonce: str, *, expires_at: float) -> bool:
        """Record the nonce; ``False`` if this key already used it (a replay)."""
        ...


class MemoryNonceStore:
    """Nonces of one process (tests, single-worker deployments)."""

    def __init__(self, *, clock: Any = time.time) -> None:
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def use(self, key_id: str, nonce: str, *, expires_at: float) -> bool:
        """See :meth:`NonceStore.use`."""
        now = self._clock()
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen = {k: v for k, v in self._seen.items() if v > now}
            key = (key_id, nonce)
            if key in self._seen and self._seen[key] > now:
                return False
            self._seen[key] = expires_at
            return True


class SqliteNonceStore:
    """Nonces shared by every worker process of one service instance (SQLite, WAL).

    One connection per thread; ``synchronous=NORMAL``: a used nonce survives a killed process
    (the WAL is in the OS page cache), only a power loss within the last moments could forget
    one — the same window in which the signature's 5-minute validity makes replay pointless to
    defend against harder than the service's own state. Expired nonces are pruned at most once
    per ``prune_every`` seconds.
    """

    def __init__(self, path: Path, *, clock: Any = time.time, prune_every: float = 5.0) -> None:
        self._path = path
        self._clock = clock
        self._prune_every = prune_every
        self._pruned_at = 0.0
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        db = self._connect()
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS nonces (key_id TEXT NOT NULL, nonce TEXT NOT NULL, "
            "expires_at REAL NOT NULL, PRIMARY KEY (key_id, nonce))"
        )
        db.execute("CREATE INDEX IF NOT EXISTS nonces_expiry ON nonces(expires_at)")

    def _connect(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self._path, timeout=5, isolation_level=None, check_same_thread=True)
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    def use(self, key_id: str, nonce: str, *, expires_at: float) -> bool:
        """See :meth:`NonceStore.use`."""
        now = self._clock()
        db = self._connect()
        if now - self._pruned_at >= self._prune_every:
            self._pruned_at = now
            db.execute("DELETE FROM nonces WHERE expires_at <= ?", (now,))
        # One autocommit statement: a new nonce is inserted; a known one counts again only if its
        # row expired (rows linger until the next prune); otherwise nothing changes → a replay.
        changed = db.execute(
            "INSERT INTO nonces VALUES (?, ?, ?) ON CONFLICT(key_id, nonce) DO UPDATE "
            "SET expires_at = excluded.expires_at WHERE nonces.expires_at <= ?",
            (key_id, nonce, expires_at, now),
        ).rowcount
        return changed == 1


@dataclass(frozen=True)
class _Message:
    """What ``http-message-signatures`` needs of a request: method, URL and header fields."""

    method: str
    url: str
    headers: _Headers


class _Headers:
    """Read-only header view that keeps repeated fields (RFC 9421 joins them)."""

    def __init__(self, fields: Iterable[tuple[str, str]]) -> None:
        self._fields = [(name.lower(), value) for name, value in fields]

    def items(self) -> list[tuple[str, str]]:
        return list(self._fields)

    def __iter__(self) -> Any:
        return iter(dict.fromkeys(name for name, _ in self._fields))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(n == name.lower() for n, _ in self._fields)

    def __getitem__(self, name: str) -> str:
        values = [v for n, v in self._fields if n == name.lower()]
        if not values:
            raise KeyError(name)
        return ", ".join(values)

    def get(self, name: str, default: str | None = None) -> str | None:
        return self[name] if name in self else default

    def __setitem__(self, name: str, value: str) -> None:
        self._fields = [(n, v) for n, v in self._fields if n != name.lower()] + [(name.lower(), value)]

    def __delitem__(self, name: str) -> None:
        self._fields = [(n, v) for n, v in self._fields if n != name.lower()]


class _AddressResolver(HTTPSignatureKeyResolver):
    """keyid → the address itself (the signature recovers the signer; the directory decides who it is)."""

    def resolve_public_key(self, key_id: str) -> str | None:
        try:
            return to_checksum_address(key_id)
        except ValueError:
            return None

    def resolve_private_key(self, key_id: str) -> Any:
        raise InvalidSignature("the server does not sign requests")


class RequestAuthenticator:
    """Verifies a request's signature and maps its key to an :class:`Identity`."""

    def __init__(
        self, *, directory: IdentityDirectory, nonces: NonceStore, max_age: datetime.timedelta = MAX_AGE,
        clock: Any = time.time,
    ) -> None:  # fmt: skip
        self._directory = directory
        self._nonces = nonces
        self._max_age = max_age
        self._clock = clock
        self._verifier = HTTPMessageVerifier(signature_algorithm=Secp256k1Keccak256, key_resolver=_AddressResolver())

    def identity_of(self, address: str) -> Identity:
        """The current identity of ``address`` (for API tokens, which are bound to one); raises
        :class:`UnknownCaller` when it is no longer a valid agency key, trader or governor."""
        key_id = to_checksum_address(address)
        identity = self._directory.identity(key_id, at=int(self._clock()))
        if identity is None:
            raise UnknownCaller(f"{key_id} is not a valid agency key or active trader")
        return identity

    def authenticate(
        self, *, method: str, url: str, headers: Iterable[tuple[str, str]], body: bytes | None
    ) -> Identity:
        """Return the caller, or raise an :class:`~ledger_api.errors.AuthenticationError` subclass.

        ``body=None`` is the streaming mode: the signature must cover ``content-digest`` and the caller
        checks the streamed body against it (:func:`content_sha256`) before trusting it.
        """
        message = _Message(method=method.upper(), url=url, headers=_Headers(headers))
        if "signature" not in message.headers or "signature-input" not in message.headers:
            raise SignatureMissing("the request is not signed (RFC 9421 Signature / Signature-Input)")
        required = ["@method", "@target-uri"] + (["content-digest"] if body is None or body else [])
        try:
            results = self._verifier.verify(
                message, max_age=self._max_age, expect_tag=SIGNATURE_TAG, require_components=required,
                body=body or None,
            )  # fmt: skip
        except InvalidSignature as exc:
            raise SignatureInvalid(f"request signature rejected: {exc}") from exc
        except Exception as exc:  # malformed structured fields and the like
            raise SignatureInvalid("request signature could not be parsed") from exc
        if len(results) != 1:
            raise SignatureInvalid("exactly one signature tagged for this service is expected")
        params: Mapping[str, Any] = results[0].parameters
        now = self._clock()
        created = int(params.get("created", 0))
        if abs(now - created) > self._max_age.total_seconds():
            raise SignatureInvalid("signature created outside the accepted clock window")
        nonce = results[0].nonce
        if not nonce or len(str(nonce)) < 16 or len(str(nonce)) > 128:
            raise SignatureInvalid("a nonce of 16..128 characters is required")
        key_id = to_checksum_address(str(params["keyid"]))
        identity = self._directory.identity(key_id, at=int(now))
        if identity is None:
            raise UnknownCaller(f"{key_id} is not a valid agency key or active trader")
        if not self._nonces.use(key_id, str(nonce), expires_at=created + self._max_age.total_seconds() * 2):
            raise SignatureReplayed("this request signature was already used")
        return identity


def content_sha256(headers: Iterable[tuple[str, str]]) -> bytes:
    """The sha-256 value of a request's ``Content-Digest`` (RFC 9530); raises SignatureInvalid if absent."""
    for name, value in headers:
        if name.lower() != "content-digest":
            continue
        for member in value.split(","):
            algorithm, _, encoded = member.strip().partition("=")
            if algorithm.strip() == "sha-256" and encoded.startswith(":") and encoded.endswith(":"):
                try:
                    digest = base64.b64decode(encoded[1:-1], validate=True)
                except ValueError:
                    break
                if len(digest) == 32:
                    return digest
    raise SignatureInvalid("a signed Content-Digest with a sha-256 value is required")


def sign_request(
    *, method: str, url: str, headers: Mapping[str, str], body: bytes, private_key: bytes,
    created: int | None = None, nonce: str | None = None, content_sha256: bytes | None = None,
) -> dict[str, str]:  # fmt: skip
    """Headers to add to a request so this service accepts it (``Signature``, ``Signature-Input``
    and, with a body, ``Content-Digest``). Used by the typed client and the tests.

    For a body streamed from a file, pass ``body=b""`` and its ``content_sha256`` (hashed beforehand):
    the digest is signed without the body in memory."""
    address = _address_of(PrivateKey(private_key).public_key)

    class _Keys(HTTPSignatureKeyResolver):
        def resolve_private_key(self, key_id: str) -> bytes:
            return private_key

        def resolve_public_key(self, key_id: str) -> str:
            return address

    fields = dict(headers)
    if not body and content_sha256 is None and method.upper() in ("POST", "PUT", "PATCH"):
        # A method that carries a body covers its digest even when the body is empty (the streaming
        # upload routes always require one).
        content_sha256 = hashlib.sha256(b"").digest()
    if content_sha256 is not None:
        fields["content-digest"] = f"sha-256=:{base64.b64encode(content_sha256).decode()}:"
    message = _Message(method=method.upper(), url=url, headers=_Headers(fields.items()))
    has_content = bool(body) or content_sha256 is not None
    components = ["@method", "@target-uri"] + (["content-digest"] if has_content else [])
    HTTPMessageSigner(signature_algorithm=Secp256k1Keccak256, key_resolver=_Keys()).sign(
        message,
        key_id=address,
        created=datetime.datetime.fromtimestamp(created if created is not None else time.time(), datetime.UTC),
        nonce=nonce or secrets.token_urlsafe(24),
        tag=SIGNATURE_TAG,
        covered_component_ids=components,
        body=body if body else None,
        use_existing_digest=content_sha256 is not None,
    )
    wanted = ("signature", "signature-input", "content-digest")
    return {name: value for name, value in message.headers.items() if name in wanted}
