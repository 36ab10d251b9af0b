"""EIP-712 signing and recovery of off-chain documents with eth-account (checkpoints, attestations).

:func:`sign_typed_data` signs a full EIP-712 message with a keystore account (eth-account produces
low-s signatures); :func:`recover_typed_data` returns the signer of a 65-byte ``r || s || v``
signature and refuses non-canonical ones (high s, v not 27/28), so a signature has one form only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_keys.exceptions import BadSignature
from eth_utils.address import to_checksum_address

__all__ = ["EIP712_DOMAIN_TYPE", "STAMP_TYPES", "recover_typed_data", "sign_typed_data", "stamp_typed_data"]

#: The ``EIP712Domain`` type every off-chain document of the ledger uses: bound to the chain and to a
#: contract (the registry), so a signature is valid for exactly one deployment.
EIP712_DOMAIN_TYPE: list[dict[str, str]] = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]

#: EIP-712 types of a stamp relayed by anyone (ClearanceLedger's ``_STAMP_TYPEHASH``).
STAMP_TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": EIP712_DOMAIN_TYPE,
    "Stamp": [
        {"name": "declarationId", "type": "bytes32"}, {"name": "stampType", "type": "uint8"},
        {"name": "result", "type": "uint8"}, {"name": "reportSha256", "type": "bytes32"},
        {"name": "reportCid", "type": "bytes"}, {"name": "signer", "type": "address"},
        {"name": "signedAt", "type": "uint64"}, {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ],
}  # fmt: skip


def stamp_typed_data(*, chain_id: int, ledger: str, message: Mapping[str, Any]) -> dict[str, Any]:
    """The full EIP-712 document of a relayed stamp for the ClearanceLedger at ``ledger`` on ``chain_id``
    (domain ``ClearanceLedger`` / ``1``): what an inspector signs and what ``relayStamp`` recovers."""
    return {
        "types": STAMP_TYPES,
        "primaryType": "Stamp",
        "domain": {"name": "ClearanceLedger", "version": "1", "chainId": chain_id, "verifyingContract": ledger},
        "message": dict(message),
    }

_SECP256K1_HALF_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141 // 2


def sign_typed_data(account: LocalAccount, typed: Mapping[str, Any]) -> str:
    """Sign the EIP-712 message ``typed`` (``types``, ``primaryType``, ``domain``, ``message``); 0x-hex r||s||v."""
    signed = account.sign_message(encode_typed_data(full_message=dict(typed)))
    return "0x" + bytes(signed.signature).hex()


def recover_typed_data(typed: Mapping[str, Any], signature: str) -> str:
    """The checksummed address that signed ``typed``; ``ValueError`` for a malformed or non-canonical signature."""
    try:
        raw = bytes.fromhex(signature.removeprefix("0x"))
    except ValueError as exc:
        raise ValueError("signature is not hex") from exc
    if len(raw) != 65:
        raise ValueError(f"signature has {len(raw)} bytes, not 65")
    if int.from_bytes(raw[32:64], "big") > _SECP256K1_HALF_N or raw[64] not in (27, 28):
        raise ValueError("signature is not canonical (high s or bad v)")
    try:
        message = encode_typed_data(full_message=dict(typed))
        return to_checksum_address(Account.recover_message(message, signature=raw))
    except (ValueError, TypeError, BadSignature) as exc:
        raise ValueError(f"signature does not recover: {exc}") from exc
