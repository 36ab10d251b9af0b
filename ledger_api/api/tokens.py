"""API tokens: a bearer credential bound to an on-chain identity, minted with a signed request.

A caller that cannot sign every request (a partner's verification desk, a script behind a proxy)
mints a token with one RFC 9421-signed ``POST /v1/tokens`` and sends ``Authorization: Bearer
<token>`` afterwards. A token:

* is bound to the address that minted it and carries no rights of its own: every use resolves
  that address through the registry again (cached seconds), so a suspended agency, an expired or
  compromised key, or a deactivated trader stops its tokens at once;
* expires (at most 30 days), can be revoked by its owner, and cannot mint tokens;
* is stored only as its sha-256 (a leaked database does not leak usable tokens) and is shown once.

Token format: ``clt_<id>_<secret>`` (id: 16 hex digits; secret: 43 URL-safe characters, 256 bits).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger_api.errors import SignatureInvalid

__all__ = ["MAX_TTL", "TOKEN_PREFIX", "IssuedToken", "TokenInfo", "TokenStore"]

TOKEN_PREFIX = "clt_"
#: Longest lifetime of a token (seconds).
MAX_TTL = 30 * 24 * 3600
#: Live tokens one identity may hold.
MAX_TOKENS_PER_OWNER = 20
_FORMAT = re.compile(r"^clt_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True, kw_only=True)
class TokenInfo:
    """A token without its secret."""

    token_id: str
    owner: str
    created_at: int
    expires_at: int
    revoked: bool


@dataclass(frozen=True, kw_only=True)
class IssuedToken:
    """A freshly minted token: the only time its secret exists outside the caller."""

    info: TokenInfo
    token: str


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii")).digest()


class TokenStore:
    """Tokens in SQLite (``var/api/tokens.db``), shared by the workers of one service instance."""

    def __init__(self, path: Path, *, clock: Any = time.time, cache_seconds: float = 2.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._local = threading.local()
        self._cache: dict[bytes, tuple[float, str, int]] = {}  # digest -> (cached until, owner, expires_at)
        self._cache_lock = threading.Lock()
        self._db().executescript(
            "PRAGMA journal_mode=WAL;"
            "CREATE TABLE IF NOT EXISTS tokens (token_id TEXT PRIMARY KEY, digest BLOB NOT NULL UNIQUE, "
            "owner TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, "
            "revoked INTEGER NOT NULL DEFAULT 0);"
            "CREATE INDEX IF NOT EXISTS tokens_owner ON tokens(owner);"
        )

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self._path, timeout=5, isolation_level=None)
            db.execute("PRAGMA synchronous=FULL")
            self._local.db = db
        return db

    def issue(self, owner: str, *, ttl: int) -> IssuedToken:
        """Mint a token for ``owner`` valid ``ttl`` seconds (1 s .. :data:`MAX_TTL`)."""
        if not 1 <= ttl <= MAX_TTL:
            raise ValueError(f"ttl must be 1..{MAX_TTL} seconds")
        now = int(self._clock())
        live = (
            self._db()
            .execute(
                "SELECT count(*) FROM tokens WHERE owner = ? AND revoked = 0 AND expires_at > ?", (owner.lower(), now)
            )
            .fetchone()[0]
        )
        if live >= MAX_TOKENS_PER_OWNER:
            raise ValueError(f"at most {MAX_TOKENS_PER_OWNER} live tokens per identity; revoke one first")
        token_id = secrets.token_hex(8)
        token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        self._db().execute(
            "INSERT INTO tokens (token_id, digest, owner, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
            (token_id, _digest(token), owner.lower(), now, now + ttl),
        )
        info = TokenInfo(token_id=token_id, owner=owner, created_at=now, expires_at=now + ttl, revoked=False)
        return IssuedToken(info=info, token=token)

    def owner_of(self, token: str) -> str:
        """The address a presented token is bound to; :class:`SignatureInvalid` when it is malformed,
        unknown, expired or revoked (the four are not told apart)."""
        if not _FORMAT.match(token):
            raise SignatureInvalid("malformed API token")
        digest, now = _digest(token), self._clock()
        with self._cache_lock:
            cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            owner, expires_at = cached[1], cached[2]
        else:
            row = (
                self._db()
                .execute("SELECT owner, expires_at FROM tokens WHERE digest = ? AND revoked = 0", (digest,))
                .fetchone()
            )
            if row is None:
                raise SignatureInvalid("unknown, expired or revoked API token")
            owner, expires_at = str(row[0]), int(row[1])
            with self._cache_lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[digest] = (now + self._cache_seconds, owner, expires_at)
        if expires_at <= now:
            raise SignatureInvalid("unknown, expired or revoked API token")
        return owner

    def list(self, owner: str) -> list[TokenInfo]:
        """``owner``'s tokens (live and past), newest first, without secrets."""
        rows = (
            self._db()
            .execute(
                "SELECT token_id, owner, created_at, expires_at, revoked FROM tokens WHERE owner = ? "
                "ORDER BY created_at DESC, token_id LIMIT 200",
                (owner.lower(),),
            )
            .fetchall()
        )
        return [
            TokenInfo(token_id=r[0], owner=owner, created_at=r[2], expires_at=r[3], revoked=bool(r[4])) for r in rows
        ]

    def revoke(self, owner: str, token_id: str) -> bool:
        """Revoke ``owner``'s token ``token_id``; False if it has none by that id. Takes effect in
        this process at once and in others within the cache time (2 s)."""
        changed = (
            self._db()
            .execute("UPDATE tokens SET revoked = 1 WHERE token_id = ? AND owner = ?", (token_id, owner.lower()))
            .rowcount
        )
        with self._cache_lock:
            self._cache.clear()
        return bool(changed)
