"""Read-only access to the key wraps a sealing service recorded for the envelopes it stored.

The API's :class:`ledger_api.api.writes.DocumentVault` keeps, per stored envelope CID, the
:class:`Keyring` (one X25519 key wrap per entitled agency) in ``<var_dir>/api/documents.db``, table
``sealed(cid, sha256, keyring, created_at)``. Oracles on the same deployment (integrity watch,
risk selectivity) read the wraps meant for their agency from here without importing the HTTP layer.
A wrap is useless without the agency's private key, so this is metadata, not a secret.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from ledger_api.config import Settings
from ledger_api.documents._envelope import Keyring
from ledger_api.errors import EnvelopeError

__all__ = ["VAULT_FILE", "VaultKeyrings"]

#: The vault database, relative to ``var_dir``.
VAULT_FILE = Path("api") / "documents.db"


class VaultKeyrings:
    """Keyrings by envelope CID from a vault database (opened read-only on first use; thread-safe)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_settings(cls, settings: Settings) -> VaultKeyrings:
        """The vault of the service configured by ``settings``."""
        return cls(settings.var_dir / VAULT_FILE)

    def keyring(self, cid: str) -> Keyring | None:
        """The keyring recorded for envelope ``cid`` (string form); ``None`` when there is no vault
        (yet), no row for it, or the row does not parse."""
        with self._lock:
            if self._db is None:
                if not self.path.exists():
                    return None
                self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False, timeout=10)
            try:
                row = self._db.execute("SELECT keyring FROM sealed WHERE cid = ?", (cid,)).fetchone()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):  # a vault that has not stored anything yet
                    return None
                raise
        if row is None:
            return None
        try:
            return Keyring.from_json(row[0])
        except EnvelopeError:
            return None

    __call__ = keyring

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
