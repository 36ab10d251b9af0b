"""Partner-agency bridge: relay a partner administration's EIP-712-signed stamps to the ledger.

A partner (a foreign customs administration, an inspection agency working off-line) signs stamps
(``IClearanceLedger.SignedStamp``: an export clearance, a lab result …) with its registered key and
delivers them as JSON items, either

* **pushed over HTTP** — ``POST /v1/stamps`` on ``LEDGER_ORACLE_FEED_PORT`` (202 accepted for relay,
  409 replayed, 413 too large, 422 invalid with ``{"reason", "detail"}``, 503 when the chain is down), or
* **dropped as files** — ``*.json`` in ``LEDGER_ORACLE_FEED_DIR`` (default ``<state>/inbox``), moved
  to ``processed/`` or ``rejected/`` (next to a ``<name>.reason.json``) once handled.

Every item is checked locally in the contract's own order (deadline, signing time, window, stamp
values, low-s ECDSA over the EIP-712 digest with chainId + verifyingContract, the signer's next
nonce, the key valid at ``signedAt`` for an active agency holding the stamp type's role), then
simulated with ``eth_call`` when it can be (declaration open, stamp not yet recorded …). A valid item
is journaled once as ``stamp:<digest>`` (:meth:`OracleContext.post`), whatever route delivered it
and however often; an invalid one is refused with a stable reason code
(:class:`ledger_api.errors.AttestationRejected`) and kept in the rejection log
(``python -m oracles bridge rejections``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from coincurve import PublicKey
from eth_abi.abi import encode as abi_encode
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import is_checksum_address, to_checksum_address

from ledger_api.chain import _tx_calls as calls
from ledger_api.chain._tx_rpc import RpcError
from ledger_api.chain.reverts import decode_revert
from ledger_api.documents import keccak256
from ledger_api.errors import AttestationRejected, ChainError, ConfigurationError, ContractRevert
from ledger_api.hashing import strict_json
from ledger_api.outbox import EntryState, OutboxEntry
from oracles._base import (
    DEPENDENCY_ERRORS,
    JsonRequestHandler,
    Oracle,
    OracleContext,
    listen,
    log_event,
    open_context,
)

__all__ = [
    "REASONS",
    "BridgeOracle",
    "Outcome",
    "SignedItem",
    "add_commands",
    "domain_separator",
    "parse_item",
    "recover_signer",
    "stamp_digest",
]

# ------------------------------------------------------------------------------ constants

#: Stamp types (``LedgerTypes.StampType``) and results (``StampResult``), by name.
STAMP_TYPES: dict[str, int] = {
    "DOCUMENT_CHECK": 0, "PHYSICAL_EXAM": 1, "XRAY_SCAN": 2, "LAB_TEST": 3, "QUARANTINE": 4,
    "EXPORT_CLEARANCE": 5, "ORIGIN_VERIFICATION": 6, "SANITARY_CHECK": 7,
}  # fmt: skip
STAMP_RESULTS: dict[str, int] = {"PASS": 1, "FAIL": 2, "INCONCLUSIVE": 3}
EXPORT_CLEARANCE = STAMP_TYPES["EXPORT_CLEARANCE"]
#: Role bits (``LedgerTypes.Role``): EXPORT_CLEARANCE needs PARTNER_CUSTOMS, any other type INSPECTION_AGENCY.
ROLE_INSPECTION_AGENCY = 1 << 1
ROLE_PARTNER_CUSTOMS = 1 << 2
AGENCY_ACTIVE = 1
#: ``ClearanceLedger`` constants mirrored here (the contract is the truth; a test compares them).
MAX_SIGNATURE_WINDOW = 30 * 24 * 3600
MAX_CID_LENGTH = 128
DECLARATION_OPEN = (2, 4)  # ACCEPTED, HELD
#: An item must stay relayable at least this long (s) after it is checked, or it is ``expired``.
DEADLINE_MARGIN = 15
SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0
#: Rejection log cap: past it, rejections are still answered and logged, but not kept as facts.
MAX_REJECTIONS_KEPT = 10_000
#: Files taken from the drop directory per step.
DROP_BATCH = 100

EIP712_NAME = "ClearanceLedger"
EIP712_VERSION = "1"
_DOMAIN_TYPEHASH = keccak256(
    b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)  # fmt: skip
_STAMP_TYPEHASH = keccak256(
    b"Stamp(bytes32 declarationId,uint8 stampType,uint8 result,bytes32 reportSha256,bytes reportCid,"
    b"address signer,uint64 signedAt,uint256 nonce,uint256 deadline)"
)

#: Stable reason codes (what partners see, what the rejection log keeps).
REASONS: dict[str, str] = {
    "too-large": "the item is larger than LEDGER_ORACLE_FEED_MAX_BYTES",
    "malformed": "not a JSON signed-stamp item of the documented format (or a value the contract refuses)",
    "expired": "the deadline has passed (or passes before the relay could be mined)",
    "signed-in-future": "signedAt is later than the chain's (and this host's) time",
    "window-too-long": "deadline - signedAt exceeds the contract's MAX_SIGNATURE_WINDOW (30 days)",
    "bad-signature": "not a low-s secp256k1 signature by `signer` over the item's EIP-712 digest",
    "replayed": "this item was already accepted, or its nonce was already used",
    "nonce-mismatch": "the nonce is ahead of the signer's next nonce (deliver items in nonce order)",
    "unknown-signer": "`signer` is not a registered agency key",
    "key-not-valid-at-signing": "the key was not valid at signedAt, or was reported compromised",
    "agency-inactive": "the signer's agency is suspended or removed",
    "role-missing": "the signer's agency lacks the role the stamp type needs",
    "unknown-declaration": "no such declaration on chain",
    "declaration-not-open": "the declaration is not ACCEPTED or HELD (stamps are refused)",
    "stamp-exists": "a stamp with this report sha256 is already recorded",
    "relay-failed": "the relay transaction failed on chain for another reason",
}

#: Contract custom errors → reason code (a simulation or a failed relay).
_REVERT_REASONS: dict[str, str] = {
    "ClearanceLedgerSignatureExpired": "expired",
    "ClearanceLedgerSignedInFuture": "signed-in-future",
    "ClearanceLedgerSignatureWindowTooLong": "window-too-long",
    "ClearanceLedgerInvalidStampType": "malformed",
    "ClearanceLedgerInvalidStampResult": "malformed",
    "ClearanceLedgerInvalidCid": "malformed",
    "ClearanceLedgerZeroValue": "malformed",
    "ClearanceLedgerInvalidSignature": "bad-signature",
    "ECDSAInvalidSignature": "bad-signature",
    "ECDSAInvalidSignatureS": "bad-signature",
    "ECDSAInvalidSignatureLength": "bad-signature",
    "ClearanceLedgerInvalidNonce": "nonce-mismatch",
    "AgencyRegistryNotASigner": "unknown-signer",
    "AgencyRegistryKeyNotValid": "key-not-valid-at-signing",
    "AgencyRegistryAgencyNotActive": "agency-inactive",
    "AgencyRegistryMissingRole": "role-missing",
    "ClearanceLedgerUnknownDeclaration": "unknown-declaration",
    "ClearanceLedgerInvalidStatus": "declaration-not-open",
    "ClearanceLedgerStampExists": "stamp-exists",
}

_AUTHORIZE_SIGNED = function_signature_to_4byte_selector("authorizeSigned(address,uint16,uint64)")
_FIELDS = (
    "declaration_id", "stamp_type", "result", "report_sha256", "report_cid", "signer", "signed_at", "nonce",
    "deadline", "signature",
)  # fmt: skip
_HEX = re.compile(r"0x([0-9a-fA-F]*)")
_DECIMAL = re.compile(r"[0-9]{1,78}")


# ------------------------------------------------------------------------------ the item


@dataclass(frozen=True, kw_only=True)
class SignedItem:
    """A parsed feed item: the ``SignedStamp`` fields and the 65-byte signature ``r ‖ s ‖ v``."""

    stamp: calls.SignedStampFields
    signature: bytes

    def as_json(self) -> dict[str, Any]:
        """The canonical JSON form of the item (the documented feed format)."""
        s = self.stamp
        return {
            "declaration_id": "0x" + s.declaration_id.hex(), "stamp_type": s.stamp_type, "result": s.result,
            "report_sha256": "0x" + s.report_sha256.hex(), "report_cid": "0x" + s.report_cid.hex(),
            "signer": s.signer, "signed_at": s.signed_at, "nonce": s.nonce, "deadline": s.deadline,
            "signature": "0x" + self.signature.hex(),
        }  # fmt: skip


def _malformed(detail: str) -> AttestationRejected:
    return AttestationRejected("malformed", detail)


def _hex_bytes(item: Mapping[str, Any], name: str, *, size: int | None = None, max_size: int = 0) -> bytes:
    value = item[name]
    match = _HEX.fullmatch(value) if isinstance(value, str) else None
    if match is None or len(match.group(1)) % 2:
        raise _malformed(f"{name} must be a 0x-prefixed hex string of whole bytes")
    raw = bytes.fromhex(match.group(1))
    if size is not None and len(raw) != size:
        raise _malformed(f"{name} must be {size} bytes, got {len(raw)}")
    if max_size and not 0 < len(raw) <= max_size:
        raise _malformed(f"{name} must be 1..{max_size} bytes, got {len(raw)}")
    return raw


def _uint(item: Mapping[str, Any], name: str, bits: int, names: Mapping[str, int] | None = None) -> int:
    value = item[name]
    if isinstance(value, str) and names is not None and value in names:
        return names[value]
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        choices = f" or one of {', '.join(names)}" if names else ""
        raise _malformed(f"{name} must be an unsigned integer{choices}")
    if not 0 <= value < 1 << bits:
        raise _malformed(f"{name} must fit in uint{bits}")
    return value


def parse_item(body: bytes, *, max_bytes: int) -> SignedItem:
    """Parse and validate one feed item; :class:`AttestationRejected` (``too-large`` / ``malformed``) if it is not one.

    Values the contract would refuse regardless of chain state (an undefined stamp type or result,
    a zero report sha256, an empty or over-long CID, a signature that is not 65 bytes) are
    ``malformed`` here, so they never reach the chain.
    """
    if len(body) > max_bytes:
        raise AttestationRejected("too-large", f"{len(body)} bytes > {max_bytes}")
    if body.count(b"{") + body.count(b"[") > 1:  # an item is one flat object: never hand json deep nesting
        raise _malformed("an item is one flat JSON object")
    try:
        item = strict_json(body.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _malformed(f"not JSON: {exc}") from exc
    if not isinstance(item, dict):
        raise _malformed("an item is a JSON object")
    missing = [f for f in _FIELDS if f not in item]
    unknown = sorted(set(item) - set(_FIELDS))
    if missing or unknown:
        raise _malformed(f"missing {missing}, unknown {unknown[:5]}")
    signer_text = item["signer"]
    if not isinstance(signer_text, str) or not re.fullmatch(r"0x[0-9a-fA-F]{40}", signer_text):
        raise _malformed("signer must be a 0x-prefixed 20-byte address")
    body_hex = signer_text[2:]
    if body_hex not in (body_hex.lower(), body_hex.upper()) and not is_checksum_address(signer_text):
        raise _malformed("signer has a wrong EIP-55 checksum")
    stamp = calls.SignedStampFields(
        declaration_id=_hex_bytes(item, "declaration_id", size=32),
        stamp_type=_uint(item, "stamp_type", 8, STAMP_TYPES),
        result=_uint(item, "result", 8, STAMP_RESULTS),
        report_sha256=_hex_bytes(item, "report_sha256", size=32),
        report_cid=_hex_bytes(item, "report_cid", max_size=MAX_CID_LENGTH),
        signer=to_checksum_address(signer_text),
        signed_at=_uint(item, "signed_at", 64),
        nonce=_uint(item, "nonce", 256),
        deadline=_uint(item, "deadline", 256),
    )
    signature = _hex_bytes(item, "signature", size=65)
    if stamp.stamp_type > max(STAMP_TYPES.values()):
        raise _malformed(f"stamp_type {stamp.stamp_type} is not a defined stamp type")
    if stamp.result not in STAMP_RESULTS.values():
        raise _malformed(f"result {stamp.result} is not PASS (1), FAIL (2) or INCONCLUSIVE (3)")
    if stamp.report_sha256 == bytes(32) or stamp.declaration_id == bytes(32):
        raise _malformed("declaration_id and report_sha256 must not be zero")
    return SignedItem(stamp=stamp, signature=signature)


# ------------------------------------------------------------------------------ EIP-712


def domain_separator(chain_id: int, verifying_contract: str) -> bytes:
    """The ledger's EIP-712 domain separator (name ``ClearanceLedger``, version ``1``)."""
    return keccak256(
        abi_encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                _DOMAIN_TYPEHASH,
                keccak256(EIP712_NAME.encode()),
                keccak256(EIP712_VERSION.encode()),
                chain_id,
                verifying_contract,
            ],
        )  # fmt: skip
    )


def stamp_digest(stamp: calls.SignedStampFields, *, domain: bytes) -> bytes:
    """The EIP-712 digest the signer signed: what ``ClearanceLedger.stampDigest`` returns, byte for byte."""
    struct_hash = keccak256(
        abi_encode(
            ["bytes32", "bytes32", "uint8", "uint8", "bytes32", "bytes32", "address", "uint64", "uint256", "uint256"],
            [
                _STAMP_TYPEHASH,
                stamp.declaration_id,
                stamp.stamp_type,
                stamp.result,
                stamp.report_sha256,
                keccak256(stamp.report_cid),
                stamp.signer,
                stamp.signed_at,
                stamp.nonce,
                stamp.deadline,
            ],
        )  # fmt: skip
    )
    return keccak256(b"\x19\x01" + domain + struct_hash)


def recover_signer(digest: bytes, signature: bytes) -> str:
    """The checksummed address that made ``signature`` (``r ‖ s ‖ v``, v ∈ {27, 28}, low-s) over ``digest``.

    Same acceptance rule as OpenZeppelin's ``ECDSA.tryRecover``; ``bad-signature`` otherwise.
    """
    if len(signature) != 65:
        raise AttestationRejected("bad-signature", "a signature is 65 bytes r || s || v")
    r, s, v = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big"), signature[64]
    if s > SECP256K1_HALF_N:
        raise AttestationRejected("bad-signature", "high-s signatures are refused (malleable)")
    if v not in (27, 28) or r == 0 or s == 0:
        raise AttestationRejected("bad-signature", "v must be 27 or 28, r and s non-zero")
    try:
        public = PublicKey.from_signature_and_message(signature[:64] + bytes([v - 27]), digest, hasher=None)
    except Exception as exc:  # coincurve raises plain Exception for unrecoverable input
        raise AttestationRejected("bad-signature", "the signature does not recover to a public key") from exc
    return to_checksum_address(keccak256(public.format(compressed=False)[1:])[-20:])


# ------------------------------------------------------------------------------ outcomes


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """What became of one delivered item: ``accepted`` (journaled for relay), ``replayed`` or ``rejected``."""

    status: str  # accepted | replayed | rejected
    digest: str | None = None  # 0x EIP-712 digest, when the item parsed
    reason: str | None = None
    detail: str | None = None
    stamp_id: str | None = None

    @property
    def http_status(self) -> int:
        """202 accepted for relay, 409 replayed, 413 too large, 422 otherwise."""
        if self.status == "accepted":
            return 202
        if self.reason == "replayed":
            return 409
        return 413 if self.reason == "too-large" else 422

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (what the HTTP feed answers)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


# ------------------------------------------------------------------------------ the oracle


class BridgeOracle(Oracle):
    """Relays partner-signed stamps from an HTTP feed and a drop directory, each item exactly once."""

    name: ClassVar[str] = "bridge"
    default_agency: ClassVar[str] = "NL-RTM-CUSTOMS"
    summary: ClassVar[str] = "relay a partner administration's EIP-712-signed stamps from its feed (HTTP / drop)"

    def __init__(self, ctx: OracleContext) -> None:
        super().__init__(ctx)
        self._lock = threading.RLock()  # one item at a time: HTTP threads and the loop's drop pass
        self._domain = domain_separator(ctx.deployment.chain_id, ctx.deployment.ledger)
        self._domain_checked = False
        self._feed: _FeedServer | None = None
        self.max_bytes = ctx.oracle_settings.feed_max_bytes
        self.inbox = ctx.oracle_settings.feed_dir or ctx.directory / "inbox"
        for sub in (self.inbox, self.inbox / "processed", self.inbox / "rejected"):
            sub.mkdir(parents=True, exist_ok=True)

    # ---- feed endpoint

    @property
    def feed_port(self) -> int | None:
        """Port the HTTP feed listens on (``None`` until started, or when not configured)."""
        return self._feed.port if self._feed is not None else None

    def start_feed(self) -> int | None:
        """Start the HTTP feed when ``LEDGER_ORACLE_FEED_PORT`` is set (idempotent); returns its port."""
        port = self.ctx.oracle_settings.feed_port
        if self._feed is None and port:
            _ = self.ctx.signer, self.ctx.read, self.ctx.outbox  # open shared parts before other threads use them
            self._feed = _FeedServer(self.ctx.oracle_settings.feed_host, port, self)
            log_event(self.ctx.log, "feed listening", port=self._feed.port, max_bytes=self.max_bytes)
        return self.feed_port

    def close(self) -> None:
        """Stop the HTTP feed and wait for a request being handled (journals close after this)."""
        if self._feed is not None:
            self._feed.close()
            self._feed = None
        with self._lock:  # a handler thread inside submit() finishes before the context closes
            pass

    # ---- the loop

    def step(self) -> int:
        """Start the feed, take up to :data:`DROP_BATCH` dropped files, follow relays in flight."""
        self.start_feed()
        work = self._reconcile()
        files = sorted(p for p in self.inbox.glob("*.json") if p.is_file())[:DROP_BATCH]
        for path in files:
            self._take_file(path)
            work += 1
        return work

    def status(self) -> dict[str, Any]:
        """Counts for the status report."""
        with self._lock:
            return {
                "feed_port": self.feed_port,
                "inbox": str(self.inbox),
                "accepted": int(self.ctx.state.get("accepted_count", 0)),
                "relays_in_flight": len(self.ctx.state.get("pending", {})),
                "rejections": int(self.ctx.state.get("rejection_count", 0)),
                "rejections_not_kept": int(self.ctx.state.get("rejections_not_kept", 0)),
            }

    # ---- one item

    def submit(self, body: bytes, *, source: str) -> Outcome:
        """Check one delivered item; journal it for relay once, or refuse it with a reason (logged).

        Dependency failures (node down) raise; they are not the item's fault and nothing is recorded.
        """
        with self._lock:
            digest: bytes | None = None
            item: SignedItem | None = None
            try:
                item = parse_item(body, max_bytes=self.max_bytes)
                digest = stamp_digest(item.stamp, domain=self._domain)
                return self._check_and_post(item, digest, source)
            except AttestationRejected as exc:
                outcome = Outcome(
                    status="replayed" if exc.reason == "replayed" else "rejected",
                    digest=None if digest is None else "0x" + digest.hex(),
                    reason=exc.reason,
                    detail=str(exc).removeprefix(f"{exc.reason}: "),
                    stamp_id=None if item is None else "0x" + item.stamp.report_sha256.hex(),
                )
                self._log_rejection(outcome, item, body, source)
                return outcome

    def _check_and_post(self, item: SignedItem, digest: bytes, source: str) -> Outcome:
        key = "0x" + digest.hex()
        s = item.stamp
        known = self.ctx.state.fact(f"item:{key}")
        if known is not None:
            if known.get("failed"):
                raise AttestationRejected(known["failed"], f"its relay failed on chain: {known.get('error')}")
            raise AttestationRejected("replayed", f"already accepted for relay at {known['accepted_at']:.0f}")
        if self.ctx.posted(f"stamp:{key}") is not None:  # journaled, then a crash before it was recorded
            return self._accept(item, key, source)
        self._check_domain()
        now, on_chain_nonce = self._chain_now_and_nonce(s.signer)
        # The contract's order: deadline, signedAt, window, values (parse_item), signature, nonce, registry.
        if s.deadline < now + DEADLINE_MARGIN:
            raise AttestationRejected("expired", f"deadline {s.deadline} is not after now {now} + {DEADLINE_MARGIN}s")
        if s.signed_at > now:
            raise AttestationRejected("signed-in-future", f"signedAt {s.signed_at} > now {now}")
        if s.deadline - s.signed_at > MAX_SIGNATURE_WINDOW:
            raise AttestationRejected("window-too-long", f"{s.deadline - s.signed_at}s > {MAX_SIGNATURE_WINDOW}s")
        recovered = recover_signer(digest, item.signature)
        if recovered != s.signer:
            raise AttestationRejected("bad-signature", f"signed by another key than {s.signer} (or altered)")
        pending = self._pending()
        in_flight = sorted(p["nonce"] for p in pending.values() if p["signer"] == s.signer)
        expected = on_chain_nonce + sum(1 for n in in_flight if n >= on_chain_nonce)
        if s.nonce < expected:
            raise AttestationRejected("replayed", f"nonce {s.nonce} of {s.signer} is used (next is {expected})")
        if s.nonce > expected:
            raise AttestationRejected("nonce-mismatch", f"nonce {s.nonce} is ahead of {s.signer}'s next {expected}")
        self._check_registry(s)
        if expected == on_chain_nonce:  # nothing of this signer in flight: the chain can judge the whole call
            self._simulate(item, now)
        return self._accept(item, key, source)

    def _accept(self, item: SignedItem, key: str, source: str) -> Outcome:
        """Remember the item as in flight (first), journal its relay now unless an earlier stamp of the
        same signer is still unmined (then :meth:`_reconcile` posts it in nonce order), record the fact."""
        s = item.stamp
        stamp_id = "0x" + s.report_sha256.hex()
        pending = self._pending()
        ahead = any(p["signer"] == s.signer for k, p in pending.items() if k != key)
        pending[key] = {"signer": s.signer, "nonce": s.nonce, "item": item.as_json(), "posted": not ahead}
        self.ctx.state.set("pending", pending)
        if not ahead and self.ctx.posted(f"stamp:{key}") is None:  # journaled before a crash: keep that one
            self.ctx.post(f"stamp:{key}", calls.relay_stamp(stamp=s, signature=item.signature))
        record = {
            "signer": s.signer, "nonce": s.nonce, "stamp_id": stamp_id,
            "declaration_id": "0x" + s.declaration_id.hex(), "stamp_type": s.stamp_type, "source": source,
            "accepted_at": time.time(),
        }  # fmt: skip
        if self.ctx.state.record_fact(f"item:{key}", record):
            self.ctx.state.set("accepted_count", int(self.ctx.state.get("accepted_count", 0)) + 1)
        log_event(self.ctx.log, "stamp accepted for relay", digest=key, signer=s.signer, nonce=s.nonce,
                  stamp_type=s.stamp_type, source=source, held=ahead)  # fmt: skip
        self.ctx.wake()  # send it now, not after the idle interval
        return Outcome(status="accepted", digest=key, stamp_id=stamp_id)

    def _check_registry(self, s: calls.SignedStampFields) -> None:
        """Key known, valid at ``signedAt`` (never compromised), agency active with the stamp's role.

        The read model answers; a "no" is confirmed with the registry's own ``authorizeSigned`` view
        (the read model may lag the chain by a few blocks: a key or role granted just now).
        """
        try:
            self._check_registry_indexed(s)
        except AttestationRejected as indexed:
            role = ROLE_PARTNER_CUSTOMS if s.stamp_type == EXPORT_CLEARANCE else ROLE_INSPECTION_AGENCY
            data = _AUTHORIZE_SIGNED + abi_encode(["address", "uint16", "uint64"], [s.signer, role, s.signed_at])
            tx = {"to": self.ctx.deployment.registry, "data": "0x" + data.hex()}
            try:
                self.ctx.client.rpc.call("eth_call", [tx, "latest"])
            except RpcError as exc:
                decoded = decode_revert(exc.revert_data) if exc.revert_data else None
                if decoded is None:
                    raise ChainError(f"eth_call authorizeSigned: {exc}") from exc
                reason = _REVERT_REASONS.get(decoded.error_name, indexed.reason)
                if reason == indexed.reason:
                    raise indexed from None
                raise AttestationRejected(reason, f"the registry refuses it: {decoded.error_name}") from exc
            log_event(self.ctx.log, "read model behind the registry", level=logging.WARNING, signer=s.signer,
                      indexed=indexed.reason)  # fmt: skip

    def _check_registry_indexed(self, s: calls.SignedStampFields) -> None:
        read = self.ctx.read
        key = read.signer_key(s.signer)
        if key is None:
            raise AttestationRejected("unknown-signer", f"{s.signer} is not a registered agency key")
        if key.compromised_at:
            raise AttestationRejected("key-not-valid-at-signing", f"{s.signer} was reported compromised")
        if not read.key_valid_at(s.signer, key.agency_index, s.signed_at):
            raise AttestationRejected(
                "key-not-valid-at-signing",
                f"{s.signer} is valid [{key.valid_from}, {key.valid_until}), signedAt {s.signed_at}",
            )
        agency = read.agency(key.agency_index)
        if agency is None or agency.status != AGENCY_ACTIVE:
            raise AttestationRejected("agency-inactive", f"agency #{key.agency_index} is not active")
        role, role_name = (
            (ROLE_PARTNER_CUSTOMS, "PARTNER_CUSTOMS") if s.stamp_type == EXPORT_CLEARANCE
            else (ROLE_INSPECTION_AGENCY, "INSPECTION_AGENCY")
        )  # fmt: skip
        if not agency.roles & role:
            raise AttestationRejected("role-missing", f"{agency.code} lacks {role_name} for stamp type {s.stamp_type}")

    # ---- chain reads

    def _eth_call(self, function: str, args: tuple[Any, ...], *, sender: str | None = None) -> bytes:
        tx: dict[str, str] = {"to": self.ctx.deployment.ledger, "data": "0x" + calls.encode_call(function, args).hex()}
        if sender:
            tx["from"] = sender
        try:
            out = self.ctx.client.rpc.call("eth_call", [tx, "latest"])
        except RpcError as exc:
            decoded = decode_revert(exc.revert_data) if exc.revert_data else None
            if decoded is not None:
                raise decoded from exc
            raise ChainError(f"eth_call {function}: {exc}") from exc
        return bytes.fromhex(str(out)[2:])

    def _chain_now_and_nonce(self, signer: str) -> tuple[int, int]:
        """(max(head block time, this host's clock), the signer's next stamp nonce on chain)."""
        data = "0x" + calls.encode_call("nonces", (signer,)).hex()
        block, nonce = self.ctx.client.rpc.batch(
            [("eth_getBlockByNumber", ["latest", False]),
             ("eth_call", [{"to": self.ctx.deployment.ledger, "data": data}, "latest"])]
        )  # fmt: skip
        if isinstance(block, RpcError) or not isinstance(block, dict) or isinstance(nonce, RpcError):
            raise ChainError(f"cannot read the chain head / nonces: {block if isinstance(block, RpcError) else nonce}")
        (value,) = calls.decode_result("nonces", bytes.fromhex(str(nonce)[2:]))
        return max(int(block["timestamp"], 16), int(time.time())), int(value)

    def _check_domain(self) -> None:
        """Once per life: the local digest must equal the contract's ``stampDigest`` (same domain)."""
        if self._domain_checked:
            return
        probe = calls.SignedStampFields(
            declaration_id=b"\x01" * 32, stamp_type=EXPORT_CLEARANCE, result=1, report_sha256=b"\x02" * 32,
            report_cid=b"\x03", signer=self.ctx.deployment.ledger, signed_at=1, nonce=2, deadline=3,
        )  # fmt: skip
        (onchain,) = calls.decode_result("stampDigest", self._eth_call("stampDigest", (_struct(probe),)))
        if bytes(onchain) != stamp_digest(probe, domain=self._domain):
            raise ConfigurationError("the ledger's EIP-712 domain differs from the bridge's (chain id / contract?)")
        self._domain_checked = True

    def _simulate(self, item: SignedItem, now: int) -> None:
        """``eth_call`` the relay: whatever the chain would refuse (declaration state …) is refused here."""
        try:
            self._eth_call("relayStamp", (_struct(item.stamp), item.signature), sender=self.ctx.signer)
        except ContractRevert as exc:
            reason = _REVERT_REASONS.get(exc.error_name, "relay-failed")
            if reason == "signed-in-future" and item.stamp.signed_at <= now:
                return  # an idle chain's last block is older than the host clock; the mined block will not be
            raise AttestationRejected(reason, f"the ledger refuses it: {exc.error_name}") from exc

    # ---- relays in flight

    def _pending(self) -> dict[str, dict[str, Any]]:
        value = self.ctx.state.get("pending", {})
        return dict(value) if isinstance(value, dict) else {}

    def _reconcile(self) -> int:
        """Follow the relays in flight, per signer in nonce order: settle final ones, log failed ones as
        rejections, and post a held item once the one before it is mined (its nonce is then spent)."""
        with self._lock:
            pending = self._pending()
            before = json.dumps(pending, sort_keys=True)
            done = 0
            for signer in sorted({p["signer"] for p in pending.values()}):
                for key, p in sorted(((k, p) for k, p in pending.items() if p["signer"] == signer),
                                     key=lambda kp: int(kp[1]["nonce"])):  # fmt: skip
                    # Reaching an item means every earlier one of this signer is settled or mined. No
                    # journal entry (held, or a crash between remembering it and journaling it): post now.
                    if self.ctx.posted(f"stamp:{key}") is None:
                        item = parse_item(json.dumps(p["item"]).encode(), max_bytes=1 << 20)
                        self.ctx.post(f"stamp:{key}", calls.relay_stamp(stamp=item.stamp, signature=item.signature))
                        p["posted"] = True
                        done += 1
                        break
                    entry = self.ctx.posted(f"stamp:{key}")
                    if entry is None or entry.state not in (*EntryState.TERMINAL, EntryState.MINED):
                        break  # in flight: the next one of this signer waits
                    if entry.state == EntryState.MINED:
                        continue
                    del pending[key]
                    done += 1
                    self._settled(key, entry)
            if json.dumps(pending, sort_keys=True) != before:
                self.ctx.state.set("pending", pending)
            return done

    def _settled(self, key: str, entry: OutboxEntry) -> None:
        """An item's relay reached final (logged) or failed (recorded on the item, logged as a rejection)."""
        if entry.state == EntryState.FINAL:
            log_event(self.ctx.log, "stamp relayed", digest=key, tx=entry.tx_hash,
                      already_on_chain=entry.on_chain_before)  # fmt: skip
            return
        reason = _REVERT_REASONS.get(entry.error_name or "", "relay-failed")
        record: dict[str, Any] = dict(self.ctx.state.fact(f"item:{key}") or {})
        record.update(failed=reason, error=entry.error_name or entry.last_error)
        self.ctx.state.forget_fact(f"item:{key}")
        self.ctx.state.record_fact(f"item:{key}", record)
        outcome = Outcome(status="rejected", digest=key, reason=reason, stamp_id=str(record.get("stamp_id")),
                          detail=f"relay failed on chain: {entry.error_name or entry.last_error}")  # fmt: skip
        self._log_rejection(outcome, None, b"", str(record.get("source", "")))

    def relay_state(self, digest: str) -> dict[str, Any] | None:
        """What is known of item ``digest`` (0x EIP-712 digest): its record and its relay's journal state."""
        record = self.ctx.state.fact(f"item:{digest.lower()}")
        if record is None:
            return None
        entry = self.ctx.posted(f"stamp:{digest.lower()}")
        return {**record, "digest": digest.lower(), "relay": "held" if entry is None else entry.state,
                "tx_hash": None if entry is None else entry.tx_hash}  # fmt: skip

    # ---- rejection log

    def _log_rejection(self, outcome: Outcome, item: SignedItem | None, body: bytes, source: str) -> None:
        ident = outcome.digest or "0x" + hashlib.sha256(body).hexdigest()
        log_event(self.ctx.log, "item refused", level=logging.WARNING, reason=outcome.reason, detail=outcome.detail,
                  digest=ident, source=source)  # fmt: skip
        count = int(self.ctx.state.get("rejection_count", 0))
        value: dict[str, Any] = {**outcome.as_dict(), "id": ident, "source": source, "at": time.time()}
        if item is not None:
            value.update(signer=item.stamp.signer, nonce=item.stamp.nonce)
        if self.ctx.state.record_fact(f"rejected:{ident}:{outcome.reason}", value):
            count += 1
            if count > MAX_REJECTIONS_KEPT:  # keep the newest: a flood of junk cannot hide later rejections
                evicted = self.ctx.state.trim_facts("rejected:", MAX_REJECTIONS_KEPT)
                count -= evicted
                self.ctx.state.set("rejections_not_kept", int(self.ctx.state.get("rejections_not_kept", 0)) + evicted)
            self.ctx.state.set("rejection_count", count)

    def rejections(self) -> list[dict[str, Any]]:
        """The rejection log, oldest first (one entry per item and reason)."""
        return sorted(self.ctx.state.facts("rejected:").values(), key=lambda v: float(v.get("at", 0)))

    # ---- drop directory

    def _take_file(self, path: Path) -> None:
        """Handle one dropped file and move it to ``processed/`` or ``rejected/`` (+ ``.reason.json``)."""
        source = f"drop:{path.name}"
        try:
            # never follow a symlink out of the inbox, never block on a FIFO or device
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:  # taken away meanwhile
            return
        except OSError:  # a symlink (ELOOP) or unreadable: refused like any bad item
            fd = -1
        if fd >= 0:
            with os.fdopen(fd, "rb") as handle:
                regular = stat.S_ISREG(os.fstat(handle.fileno()).st_mode)
                body = handle.read(self.max_bytes + 1) if regular else b""
        else:
            body = b""
        outcome = self.submit(body, source=source)
        if outcome.status == "replayed" and outcome.digest:
            known = self.ctx.state.fact(f"item:{outcome.digest}")
            if known is not None and known.get("source") == source and not known.get("failed"):
                outcome = Outcome(status="accepted", digest=outcome.digest, stamp_id=outcome.stamp_id)  # crash resume
        target_dir = self.inbox / ("processed" if outcome.status == "accepted" else "rejected")
        target = _free_name(target_dir, path.name)
        if outcome.status != "accepted":
            reason_file = target.with_name(target.name.removesuffix(".json") + ".reason.json")
            _write_atomic(reason_file, json.dumps(outcome.as_dict(), indent=2, sort_keys=True).encode())
        os.replace(path, target)


# ------------------------------------------------------------------------------ helpers


def _struct(s: calls.SignedStampFields) -> tuple[Any, ...]:
    return (s.declaration_id, s.stamp_type, s.result, s.report_sha256, s.report_cid, s.signer, s.signed_at, s.nonce,
            s.deadline)  # fmt: skip


def _free_name(directory: Path, name: str) -> Path:
    target = directory / name
    n = 1
    while target.exists() or target.with_name(target.name.removesuffix(".json") + ".reason.json").exists():
        target = directory / f"{name.removesuffix('.json')}.{n}.json"
        n += 1
    return target


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


#: Deliveries handled at once by the HTTP feed; more get 503 + Retry-After.
FEED_MAX_CONCURRENT = 16


class _FeedServer:
    """``POST /v1/stamps`` (one JSON item) and ``GET /v1/stamps/<digest>`` on a thread."""

    def __init__(self, host: str, port: int, oracle: BridgeOracle) -> None:
        bridge = oracle
        slots = threading.BoundedSemaphore(FEED_MAX_CONCURRENT)

        class Handler(JsonRequestHandler):
            server_version = "ledger-bridge"
            sys_version = ""
            timeout = 30  # a slow client cannot hold a thread forever

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.split("?", 1)[0] != "/v1/stamps":
                    self.send_json(404, {"error": "not-found"})
                    return
                length_text = self.headers.get("Content-Length")
                if length_text is None or not re.fullmatch(r"[0-9]{1,12}", length_text):
                    self.send_json(411, {"reason": "malformed", "detail": "Content-Length is required"})
                    return
                length = int(length_text)
                if length > bridge.max_bytes:  # refused before reading the body
                    outcome = Outcome(status="rejected", reason="too-large", detail=f"{length} > {bridge.max_bytes}")
                    log_event(bridge.ctx.log, "item refused", level=logging.WARNING, reason="too-large",
                              source=f"http:{self.client_address[0]}", length=length)  # fmt: skip
                    self.close_connection = True
                    self.send_json(413, outcome.as_dict())
                    return
                if not slots.acquire(blocking=False):  # bounded concurrent work: shed load, never queue unbounded
                    self.close_connection = True
                    self.send_json(503, {"reason": "busy", "detail": "too many concurrent deliveries; retry"})
                    return
                try:
                    body = self.rfile.read(length)
                    outcome = bridge.submit(body, source=f"http:{self.client_address[0]}")
                except DEPENDENCY_ERRORS as exc:
                    log_event(bridge.ctx.log, "feed item deferred", level=logging.WARNING, error=type(exc).__name__)
                    self.send_json(503, {"reason": "unavailable", "detail": "the ledger cannot be reached; retry"})
                    return
                finally:
                    slots.release()
                self.send_json(outcome.http_status, outcome.as_dict())

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                path = self.path.split("?", 1)[0]
                match = re.fullmatch(r"/v1/stamps/(0x[0-9a-fA-F]{64})", path)
                if match is None:
                    self.send_json(404, {"error": "not-found"})
                    return
                with bridge._lock:
                    state = bridge.relay_state(match.group(1))
                self.send_json(200 if state else 404, state or {"error": "not-found"})

        self.server = listen(host, port, Handler, what="partner feed")
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, name="bridge-feed", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------------------ commands


def _with_oracle(action: Callable[[BridgeOracle], int]) -> int:
    ctx = open_context(BridgeOracle.name, default_agency=BridgeOracle.default_agency)
    oracle = BridgeOracle(ctx)
    try:
        return action(oracle)
    finally:
        oracle.close()
        ctx.close()


def _rejections(args: argparse.Namespace) -> int:
    def show(oracle: BridgeOracle) -> int:
        log = oracle.rejections()
        if args.reason:
            log = [r for r in log if r.get("reason") == args.reason]
        for entry in log[-args.limit :] if args.limit else log:
            print(json.dumps(entry, sort_keys=True, default=str))
        return 0

    return _with_oracle(show)


def _submit(args: argparse.Namespace) -> int:
    def check(oracle: BridgeOracle) -> int:
        body = Path(args.file).read_bytes()[: oracle.max_bytes + 1]
        outcome = oracle.submit(body, source=f"cli:{Path(args.file).name}")
        print(json.dumps(outcome.as_dict(), sort_keys=True))
        if outcome.status == "accepted":
            oracle.ctx.worker.drain(timeout=args.timeout)
            oracle._reconcile()
        return 0 if outcome.status == "accepted" else 1

    return _with_oracle(check)


def add_commands(actions: Any) -> None:
    """``bridge rejections [--reason R] [--limit N]`` and ``bridge submit FILE``."""
    parser = actions.add_parser("rejections", help="the rejection log (JSON lines, oldest first)")
    parser.add_argument("--reason", choices=sorted(REASONS), help="only this reason code")
    parser.add_argument("--limit", type=int, default=0, help="only the newest N entries")
    parser.set_defaults(handler=_rejections)
    submit = actions.add_parser("submit", help="check one item file and relay it now (exit 1 if refused)")
    submit.add_argument("file", help="a JSON feed item")
    submit.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the relay to be final")
    submit.set_defaults(handler=_submit)


ORACLE = BridgeOracle
