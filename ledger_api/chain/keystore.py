"""Encrypted signing keys and X25519 encryption keys of the embedded consortium.

Signer keys are Web3 Secret Storage files (eth-account, scrypt); X25519 document-encryption keys are
password-protected PKCS#8 PEM (cryptography). Private keys are never logged or printed.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger_api.config import Settings
from ledger_api.errors import ConfigurationError

__all__ = ["Keystore"]

_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: scrypt cost for keyfiles: 2**15 keeps unlocking ~0.1 s while still memory-hard.
_SCRYPT_N = 2**15


class Keystore:
    """A directory of encrypted keys, unlocked with one password."""

    def __init__(self, *, directory: Path, password: str) -> None:
        if len(password) < 12:
            raise ConfigurationError("keystore password must have at least 12 characters")
        self._directory = directory
        self._password = password

    @classmethod
    def from_settings(cls, settings: Settings) -> Keystore:
        """Open ``<var_dir>/keys`` with ``LEDGER_KEYSTORE_PASSWORD``; in development only, generate
        a random password once and keep it in ``keys/.password`` (mode 0600)."""
        directory = settings.var_dir / "keys"
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if settings.keystore_password is not None:
            return cls(directory=directory, password=settings.keystore_password.get_secret_value())
        if settings.environment != "development":
            raise ConfigurationError("LEDGER_KEYSTORE_PASSWORD is not set")
        password_file = directory / ".password"
        if not password_file.exists():
            fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(32))
        return cls(directory=directory, password=password_file.read_text().strip())

    def signer(self, label: str) -> LocalAccount:
        """Load signer key ``label``, creating it (random) on first use."""
        path = self._path(label, ".json")
        if path.exists():
            try:
                key = Account.decrypt(json.loads(path.read_text()), self._password)
            except ValueError as exc:
                raise ConfigurationError(f"cannot unlock key {label!r}: wrong keystore password?") from exc
            unlocked: LocalAccount = Account.from_key(key)
            return unlocked
        account: LocalAccount = Account.create()
        keyfile = Account.encrypt(account.key, self._password, kdf="scrypt", iterations=_SCRYPT_N)
        self._write(path, json.dumps(keyfile).encode())
        return account

    def has_signer(self, label: str) -> bool:
        """True when signer key ``label`` exists (without creating it)."""
        return self._path(label, ".json").exists()

    def has_encryption_key(self, label: str) -> bool:
        """True when X25519 key ``label`` exists (without creating it)."""
        return self._path(label, ".x25519.pem").exists()

    def encryption_key(self, label: str) -> X25519PrivateKey:
        """Load X25519 key ``label`` (encrypted PKCS#8), creating it on first use."""
        path = self._path(label, ".x25519.pem")
        if path.exists():
            try:
                key = serialization.load_pem_private_key(path.read_bytes(), self._password.encode())
            except ValueError as exc:
                raise ConfigurationError(f"cannot unlock encryption key {label!r}") from exc
            if not isinstance(key, X25519PrivateKey):
                raise ConfigurationError(f"{path} does not hold an X25519 key")
            return key
        key = X25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self._password.encode()),
        )
        self._write(path, pem)
        return key

    def _path(self, label: str, suffix: str) -> Path:
        if not _LABEL.match(label):
            raise ConfigurationError(f"invalid key label {label!r}")
        return self._directory / f"{label}{suffix}"

    @staticmethod
    def _write(path: Path, content: bytes) -> None:
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
