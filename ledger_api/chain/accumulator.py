"""The event accumulator: one 32-byte value committing to every log of the consortium contracts, in order.

Anyone can recompute it from raw ``eth_getLogs`` output. The checkpoint witness (``oracles/witness.py``)
co-signs it with block hashes; the auditor replay (``ledger_api.audit``) records it in its checkpoints::

    acc_0 = 32 zero bytes
    for every log of {registry, ledger} in chain order (blockNumber, logIndex), from genesis up to and
    including the checkpoint block:
        payload_i = keccak256( uint8(len(topics)) || topic_0 || ... || topic_k || data )
        acc_i     = keccak256( acc_{i-1} || uint64_be(blockNumber) || uint32_be(logIndex)
                               || address (20 bytes) || payload_i )
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from eth_utils.crypto import keccak

from ledger_api.errors import LogQueryError

__all__ = ["ZERO_ACCUMULATOR", "accumulate", "log_position"]

#: The accumulator before the first log.
ZERO_ACCUMULATOR = b"\0" * 32


def _bytes(value: object, size: int | None, what: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise LogQueryError(f"log field {what} is not 0x-hex")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError as exc:
        raise LogQueryError(f"log field {what} is not 0x-hex") from exc
    if size is not None and len(raw) != size:
        raise LogQueryError(f"log field {what} has {len(raw)} bytes, expected {size}")
    return raw


def log_position(log: Mapping[str, Any]) -> tuple[int, int]:
    """``(block number, log index)`` of a raw log."""
    return int(log["blockNumber"], 16), int(log["logIndex"], 16)


def accumulate(acc: bytes, logs: Iterable[Mapping[str, Any]]) -> tuple[bytes, int]:
    """Fold raw ``eth_getLogs`` entries (in chain order) into ``acc``; returns (accumulator, logs folded).

    See the module docstring for the definition; a malformed log raises :class:`LogQueryError`.
    """
    count = 0
    for log in logs:
        number, index = log_position(log)
        topics = log.get("topics")
        if not isinstance(topics, list) or len(topics) > 4:
            raise LogQueryError("log topics must be a list of at most 4 words")
        payload = keccak(
            bytes([len(topics)]) + b"".join(_bytes(t, 32, "topic") for t in topics) + _bytes(log["data"], None, "data")
        )
        acc = keccak(
            acc + number.to_bytes(8, "big") + index.to_bytes(4, "big") + _bytes(log["address"], 20, "address") + payload
        )
        count += 1
    return acc, count
