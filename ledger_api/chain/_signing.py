"""Local transaction signing with libsecp256k1 (coincurve): EIP-1559 and EIP-155 legacy.

eth-account signs in pure Python (eth-keys) at a few hundred transactions per second; with
coincurve's recoverable signatures plus a minimal RLP encoder this module signs several thousand
per second (see BENCHMARKS.md, "Submission"). The encoding is the one of EIP-2718 / EIP-1559
(type 2) and EIP-155 (legacy); the tests check every byte against eth-account's output.
"""

from __future__ import annotations

from dataclasses import dataclass

from coincurve import PrivateKey
from eth_hash.auto import keccak

__all__ = ["FastSigner", "SignedTransaction", "UnsignedTransaction", "rlp_encode"]

_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _rlp_length(length: int, offset: int) -> bytes:
    if length < 56:
        return bytes([offset + length])
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([offset + 55 + len(encoded)]) + encoded


def rlp_encode(item: int | bytes | list[object]) -> bytes:
    """RLP-encode ints (big-endian, no leading zeros), byte strings and nested lists."""
    if isinstance(item, int):
        if item < 0:
            raise ValueError("RLP cannot encode negative integers")
        item = item.to_bytes((item.bit_length() + 7) // 8, "big") if item else b""
    if isinstance(item, bytes):
        if len(item) == 1 and item[0] < 0x80:
            return item
        return _rlp_length(len(item), 0x80) + item
    payload = b"".join(rlp_encode(child) for child in item)  # type: ignore[arg-type]
    return _rlp_length(len(payload), 0xC0) + payload


@dataclass(frozen=True, kw_only=True, slots=True)
class UnsignedTransaction:
    """The fields of a transaction to sign. ``max_fee_per_gas is None`` means legacy (EIP-155)."""

    chain_id: int
    nonce: int
    gas: int
    to: bytes  # 20-byte address
    data: bytes
    value: int = 0
    max_fee_per_gas: int | None = None  # wei; EIP-1559 fee cap
    max_priority_fee_per_gas: int = 0  # wei; EIP-1559 tip
    gas_price: int = 0  # wei; legacy only

    @property
    def effective_fee_cap(self) -> int:
        """The most this transaction pays per gas (fee cap, or legacy gas price)."""
        return self.gas_price if self.max_fee_per_gas is None else self.max_fee_per_gas


@dataclass(frozen=True, kw_only=True, slots=True)
class SignedTransaction:
    """Raw bytes to broadcast and the transaction hash they produce."""

    raw: bytes
    tx_hash: bytes
    nonce: int
    unsigned: UnsignedTransaction


class FastSigner:
    """One secp256k1 key that signs transactions locally (never leaves the process)."""

    __slots__ = ("_key", "address")

    def __init__(self, *, private_key: bytes) -> None:
        if len(private_key) != 32:
            raise ValueError("a secp256k1 private key has 32 bytes")
        self._key = PrivateKey(private_key)
        public = self._key.public_key.format(compressed=False)[1:]
        #: 0x-prefixed EIP-55 checksummed address.
        self.address = _checksum(keccak(public)[-20:])

    def __repr__(self) -> str:
        return f"FastSigner(address={self.address})"

    def _sign(self, digest: bytes) -> tuple[int, int, int]:
        signature = self._key.sign_recoverable(digest, hasher=None)
        r = int.from_bytes(signature[:32], "big")
        s = int.from_bytes(signature[32:64], "big")
        recovery = signature[64]
        if s > _SECP256K1_N // 2:  # libsecp256k1 already normalizes; keep the invariant explicit
            s = _SECP256K1_N - s
            recovery ^= 1
        return recovery, r, s

    def sign(self, tx: UnsignedTransaction) -> SignedTransaction:
        """Sign ``tx`` (type 2 when it has a fee cap, else EIP-155 legacy)."""
        if tx.max_fee_per_gas is not None:
            fields: list[object] = [
                tx.chain_id, tx.nonce, tx.max_priority_fee_per_gas, tx.max_fee_per_gas, tx.gas, tx.to,
                tx.value, tx.data, [],
            ]  # fmt: skip
            recovery, r, s = self._sign(keccak(b"\x02" + rlp_encode(fields)))
            raw = b"\x02" + rlp_encode([*fields, recovery, r, s])
        else:
            fields = [tx.nonce, tx.gas_price, tx.gas, tx.to, tx.value, tx.data]
            recovery, r, s = self._sign(keccak(rlp_encode([*fields, tx.chain_id, 0, 0])))
            raw = rlp_encode([*fields, recovery + 35 + 2 * tx.chain_id, r, s])
        return SignedTransaction(raw=raw, tx_hash=keccak(raw), nonce=tx.nonce, unsigned=tx)


def _checksum(address: bytes) -> str:
    hex_address = address.hex()
    digest = keccak(hex_address.encode()).hex()
    return "0x" + "".join(c.upper() if int(digest[i], 16) >= 8 else c for i, c in enumerate(hex_address))
