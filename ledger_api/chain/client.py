"""The write path to the ClearanceLedger: local signing, nonces, pipelining, receipts, resubmission.

:class:`LedgerClient` talks to any EVM JSON-RPC endpoint (anvil here, Besu in production):

- signs **locally** with libsecp256k1 (:mod:`ledger_api.chain._signing`); keys never leave the process;
- keeps **one nonce book per signing key** (thread-safe; starts from the node's ``pending`` count and
  never below a floor the outbox sets from its journal);
- **pipelines**: :meth:`LedgerClient.send_many` estimates, signs and broadcasts hundreds of calls in
  three JSON-RPC batch round trips and returns before anything is mined;
- tracks **receipts** and confirmation depth (``confirmations`` = blocks built on top of the
  transaction's block: 0 on anvil, N on a consortium);
- estimates gas with headroom and refuses estimates above ``gas_cap`` (:class:`GasLimitExceeded`);
- **resubmits** a dropped transaction with its identical raw bytes (same nonce) and **replaces** a
  stuck one with the same nonce and fees raised by at least 12.5 % (:meth:`LedgerClient.bump`);
- maps **custom-error reverts** to :class:`ContractRevert` via :func:`decode_revert`, both at
  estimate time and for a failed receipt (the call is replayed at the receipt's block).

The ABI encoding lives in :mod:`ledger_api.chain._tx_calls`; the typed methods here
(:meth:`LedgerClient.submit_declaration`, ...) are thin wrappers returning a :class:`TxHandle`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ledger_api.chain import _tx_calls as calls
from ledger_api.chain._signing import FastSigner, SignedTransaction, UnsignedTransaction
from ledger_api.chain._tx_calls import Anchor, LedgerCall, SignedStampFields, SupportingDocumentRef
from ledger_api.chain._tx_rpc import JsonRpc, RpcError
from ledger_api.chain.deploy import Deployment
from ledger_api.chain.keystore import Keystore
from ledger_api.chain.reverts import decode_revert
from ledger_api.config import Settings
from ledger_api.errors import (
    ChainUnavailable,
    ConfigurationError,
    GasLimitExceeded,
    LedgerError,
    TransactionError,
    TransactionFailed,
    TransactionRejected,
    TransactionTimeout,
    UnknownSigner,
)

__all__ = [
    "Anchor",
    "LedgerCall",
    "LedgerClient",
    "SignedStampFields",
    "SupportingDocumentRef",
    "TxHandle",
    "TxReceipt",
    "TxState",
    "bump_fees",
]

#: Minimum replacement bump accepted by geth/Besu pools (10 %) and anvil/reth (12.5 %): use the larger.
REPLACEMENT_BUMP_NUMERATOR, REPLACEMENT_BUMP_DENOMINATOR = 1125, 1000


@dataclass(frozen=True, kw_only=True, slots=True)
class TxHandle:
    """A signed transaction that was (or is about to be) broadcast."""

    tx_hash: str  # 0x-hex
    nonce: int
    signer: str  # checksummed address
    call: LedgerCall
    raw: bytes  # the exact signed bytes; rebroadcasting them is idempotent
    gas: int
    fee_cap: int  # maxFeePerGas (or legacy gasPrice), wei
    priority_fee: int  # maxPriorityFeePerGas, wei (0 for legacy)


@dataclass(frozen=True, kw_only=True, slots=True)
class TxReceipt:
    """What the node says about a mined transaction."""

    tx_hash: str
    block_number: int
    block_hash: str
    status: int  # 1 success, 0 reverted
    gas_used: int


@dataclass(frozen=True, kw_only=True, slots=True)
class TxState:
    """Where a transaction is: ``mined`` (with receipt), ``pending`` in the pool, or ``unknown`` to the node."""

    where: str  # "mined" | "pending" | "unknown"
    receipt: TxReceipt | None = None


def bump_fees(fee_cap: int, priority_fee: int) -> tuple[int, int]:
    """Fees for a same-nonce replacement: both raised by 12.5 % (rounded up), at least +1 wei."""

    def up(value: int) -> int:
        return max(value + 1, -(-value * REPLACEMENT_BUMP_NUMERATOR // REPLACEMENT_BUMP_DENOMINATOR))

    return up(fee_cap), up(priority_fee) if priority_fee else 0


#: Functions whose gas use is fixed by the call-data shape (new slots written, no state-dependent
#: branches), so one estimate serves all calls of the same length. Others are estimated every time.
_SHAPE_DETERMINES_GAS = frozenset({"submitDeclaration", "anchorBatch"})


class _NonceBook:
    """Next nonce of one signer; thread-safe; lazily read from the node's pending count."""

    __slots__ = ("_lock", "_next", "_floor")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: int | None = None
        self._floor = 0

    def allocate(self, fetch: object, count: int = 1) -> list[int]:
        with self._lock:
            if self._next is None:
                assert callable(fetch)
                self._next = max(int(fetch()), self._floor)
            start = self._next
            self._next += count
            return list(range(start, start + count))

    def raise_floor(self, floor: int) -> None:
        with self._lock:
            self._floor = max(self._floor, floor)
            if self._next is not None:
                self._next = max(self._next, floor)

    def release(self, nonce: int) -> bool:
        """Give back ``nonce`` if it was the last one handed out (the tx never reached the node)."""
        with self._lock:
            if self._next is not None and self._next == nonce + 1:
                self._next = nonce
                return True
            return False

    def forget(self) -> None:
        with self._lock:
            self._next = None


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _int(value: object) -> int:
    return int(str(value), 16)


class LedgerClient:
    """Signs and sends ClearanceLedger transactions for the keys it holds (see the module docstring)."""

    def __init__(
        self,
        *,
        rpc_url: str,
        ledger_address: str,
        signers: Iterable[FastSigner],
        chain_id: int | None = None,
        confirmations: int = 0,
        gas_cap: int = 5_000_000,
        gas_headroom: float = 1.25,
        timeout: float = 10.0,
        fee_cache_seconds: float = 1.0,
        estimate_cache_seconds: float = 30.0,
    ) -> None:
        if confirmations < 0:
            raise ConfigurationError("confirmations must be >= 0")
        self.rpc = JsonRpc(url=rpc_url, timeout=timeout)
        self.ledger_address = ledger_address
        self._to = bytes.fromhex(ledger_address[2:])
        self._signers = {s.address.lower(): s for s in signers}
        self._nonces = {address: _NonceBook() for address in self._signers}
        self._chain_id = chain_id
        self.confirmations = confirmations
        self.gas_cap = gas_cap
        self.gas_headroom = gas_headroom
        self._fee_cache_seconds = fee_cache_seconds
        self._fees: tuple[float, int | None, int] | None = None  # (fetched_at, fee_cap or None=legacy, tip/gasPrice)
        self._fee_lock = threading.Lock()
        self.estimate_cache_seconds = estimate_cache_seconds
        self._gas_cache: dict[tuple[str, int], tuple[float, int]] = {}  # (function, len) -> (when, gas)

    # ------------------------------------------------------------------ factories

    @classmethod
    def from_settings(
        cls, settings: Settings, deployment: Deployment, keystore: Keystore, *, labels: Iterable[str] | None = None
    ) -> LedgerClient:
        """A client for ``settings.effective_rpc_url`` holding the deployment's keys from ``keystore``.

        ``labels`` selects keystore labels (default: every agency signer and trader of the
        deployment). Each key must match the address the deployment recorded.
        """
        expected: dict[str, str] = dict(deployment.traders)
        for agency_id, agency in deployment.agencies.items():
            for n, address in enumerate(agency.signers):
                expected[f"{agency_id.lower()}-signer-{n}"] = address
        chosen = list(labels) if labels is not None else sorted(expected)
        signers = []
        for label in chosen:
            account = keystore.signer(label)
            if label in expected and account.address != expected[label]:
                raise ConfigurationError(f"key {label!r} is {account.address}, deployment says {expected[label]}")
            signers.append(FastSigner(private_key=bytes(account.key)))
        return cls(
            rpc_url=settings.effective_rpc_url,
            ledger_address=deployment.ledger,
            signers=signers,
            chain_id=deployment.chain_id,
            confirmations=settings.confirmations,
        )

    @classmethod
    def local(cls, *, rpc_url: str, deployment: Deployment, private_keys: Iterable[bytes]) -> LedgerClient:
        """A client on ``rpc_url`` with raw private keys (tests, benchmarks, embedded tooling)."""
        return cls(
            rpc_url=rpc_url,
            ledger_address=deployment.ledger,
            signers=[FastSigner(private_key=k) for k in private_keys],
            chain_id=deployment.chain_id,
        )

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self.rpc.close()

    # ------------------------------------------------------------------ basics

    @property
    def addresses(self) -> tuple[str, ...]:
        """Checksummed addresses of the keys this client signs with."""
        return tuple(s.address for s in self._signers.values())

    @property
    def chain_id(self) -> int:
        """Chain id of the node (read once)."""
        if self._chain_id is None:
            self._chain_id = _int(self._call("eth_chainId", []))
        return self._chain_id

    def _call(self, method: str, params: Sequence[object]) -> object:
        try:
            return self.rpc.call(method, params)
        except RpcError as exc:
            raise TransactionError(f"{method}: {exc}") from exc

    def _signer(self, address: str) -> FastSigner:
        signer = self._signers.get(address.lower())
        if signer is None:
            raise UnknownSigner(address)
        return signer

    def ensure_ledger(self) -> None:
        """Refuse to work against a node without the ledger: wrong chain id or no contract code.

        A node restarted without its state (or still loading it) answers, but sending there would
        waste nonces on a chain that does not hold the ledger; raised as :class:`ChainUnavailable`
        so callers back off and try again.
        """
        chain_id, code = self.rpc.batch([("eth_chainId", []), ("eth_getCode", [self.ledger_address, "latest"])])
        if isinstance(chain_id, RpcError) or _int(chain_id) != self.chain_id:
            raise ChainUnavailable(self.rpc.url, f"node serves chain {chain_id}, expected {self.chain_id}")
        if isinstance(code, RpcError) or code in (None, "0x", ""):
            raise ChainUnavailable(self.rpc.url, f"no ClearanceLedger code at {self.ledger_address} (state lost?)")

    def head(self) -> int:
        """Current block number."""
        return _int(self._call("eth_blockNumber", []))

    def block_hashes(self, numbers: Sequence[int]) -> dict[int, str | None]:
        """Canonical hash of each block number (``None`` above the head)."""
        replies = self.rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers])
        out: dict[int, str | None] = {}
        for number, reply in zip(numbers, replies, strict=True):
            out[number] = str(reply["hash"]) if isinstance(reply, dict) else None
        return out

    def nonce_of(self, address: str, block: str = "latest") -> int:
        """The node's transaction count of ``address`` at ``block`` (``latest`` or ``pending``)."""
        return _int(self._call("eth_getTransactionCount", [address, block]))

    def nonces_of(self, addresses: Sequence[str], block: str = "latest") -> dict[str, int]:
        """:meth:`nonce_of` for many addresses in one batch."""
        replies = self.rpc.batch([("eth_getTransactionCount", [a, block]) for a in addresses])
        out = {}
        for address, reply in zip(addresses, replies, strict=True):
            if isinstance(reply, RpcError):
                raise TransactionError(f"eth_getTransactionCount: {reply}")
            out[address] = _int(reply)
        return out

    def raise_nonce_floor(self, address: str, floor: int) -> None:
        """Never hand out a nonce below ``floor`` for ``address`` (the outbox's journal knows used ones)."""
        self._nonces[self._signer(address).address.lower()].raise_floor(floor)

    def resync_nonces(self) -> None:
        """Forget cached nonces; the next allocation re-reads the node (after a node restart)."""
        for book in self._nonces.values():
            book.forget()

    def _fee_quote(self) -> tuple[int | None, int]:
        """(fee cap or ``None`` for legacy, priority fee or legacy gas price), cached briefly."""
        with self._fee_lock:
            now = time.monotonic()
            if self._fees is not None and now - self._fees[0] < self._fee_cache_seconds:
                return self._fees[1], self._fees[2]
            block, tip = self.rpc.batch([("eth_getBlockByNumber", ["latest", False]), ("eth_maxPriorityFeePerGas", [])])
            if isinstance(block, RpcError) or not isinstance(block, dict):
                raise TransactionError(f"cannot read the latest block: {block}")
            base = block.get("baseFeePerGas")
            if base is None:  # pre-London / free-gas network: legacy pricing
                price = _int(self._call("eth_gasPrice", []))
                self._fees = (now, None, price)
            else:
                priority = 0 if isinstance(tip, RpcError) else _int(tip)
                self._fees = (now, 2 * _int(base) + priority, priority)
            return self._fees[1], self._fees[2]

    # ------------------------------------------------------------------ estimate / sign / broadcast

    def _revert_from(self, error: RpcError, function: str) -> LedgerError:
        data = error.revert_data
        decoded = decode_revert(data) if data else None
        if decoded is not None:
            return decoded
        return TransactionError(f"{function} reverted: {error.message}")

    def estimate_many(self, items: Sequence[tuple[LedgerCall, str]]) -> list[int | LedgerError]:
        """Gas limit (estimate × headroom) for each (call, signer), or the domain error it reverts with.

        ``eth_estimateGas`` runs the call several times (a binary search); calls of the same function
        and call-data length as one estimated within ``estimate_cache_seconds`` are only *simulated*
        (for functions whose gas the call-data shape determines: ``submitDeclaration``, ``anchorBatch``)
        once with ``eth_call`` (still catching every revert) and reuse that estimate. Should such a
        transaction run out of gas anyway, the outbox re-estimates and sends it again.
        """
        now = time.monotonic()
        shapes = [(call.function, len(call.calldata)) for call, _ in items]
        cached = [
            hit[1]
            if shape[0] in _SHAPE_DETERMINES_GAS
            and (hit := self._gas_cache.get(shape))
            and now - hit[0] < self.estimate_cache_seconds
            else None
            for shape in shapes
        ]
        requests = []
        for (call, signer), gas in zip(items, cached, strict=True):
            tx = {"from": signer, "to": self.ledger_address, "data": _hex(call.calldata)}
            requests.append(("eth_estimateGas", [tx]) if gas is None else ("eth_call", [tx, "latest"]))
        replies = self.rpc.batch(requests)
        out: list[int | LedgerError] = []
        for (call, _), shape, gas, reply in zip(items, shapes, cached, replies, strict=True):
            if isinstance(reply, RpcError):
                out.append(self._revert_from(reply, call.function))
                continue
            estimate = gas if gas is not None else _int(reply)
            if gas is None:
                self._gas_cache[shape] = (now, estimate)
            if estimate > self.gas_cap:
                out.append(GasLimitExceeded(function=call.function, estimate=estimate, cap=self.gas_cap))
            else:
                out.append(min(self.gas_cap, int(estimate * self.gas_headroom)))
        return out

    def forget_estimate(self, call: LedgerCall) -> None:
        """Drop the cached estimate for ``call``'s shape (after an out-of-gas receipt)."""
        self._gas_cache.pop((call.function, len(call.calldata)), None)

    def estimate(self, call: LedgerCall, signer: str) -> int:
        """Gas limit for ``call`` from ``signer``; raises :class:`ContractRevert` / :class:`GasLimitExceeded`."""
        (result,) = self.estimate_many([(call, signer)])
        if isinstance(result, LedgerError):
            raise result
        return result

    def _sign(
        self, signer: FastSigner, call: LedgerCall, *, nonce: int, gas: int, fees: tuple[int | None, int]
    ) -> TxHandle:
        fee_cap, tip = fees
        unsigned = UnsignedTransaction(
            chain_id=self.chain_id, nonce=nonce, gas=gas, to=self._to, data=call.calldata,
            max_fee_per_gas=fee_cap, max_priority_fee_per_gas=tip if fee_cap is not None else 0,
            gas_price=tip if fee_cap is None else 0,
        )  # fmt: skip
        signed: SignedTransaction = signer.sign(unsigned)
        return TxHandle(
            tx_hash=_hex(signed.tx_hash), nonce=nonce, signer=signer.address, call=call, raw=signed.raw, gas=gas,
            fee_cap=unsigned.effective_fee_cap, priority_fee=unsigned.max_priority_fee_per_gas,
        )  # fmt: skip

    def sign_many(self, items: Sequence[tuple[LedgerCall, str, int]]) -> list[TxHandle]:
        """Allocate nonces (in order, per signer) and sign each (call, signer, gas); nothing is sent."""
        fees = self._fee_quote()
        handles = []
        for call, address, gas in items:
            signer = self._signer(address)
            (nonce,) = self._nonces[signer.address.lower()].allocate(
                lambda a=signer.address: self.nonce_of(a, "pending")
            )
            handles.append(self._sign(signer, call, nonce=nonce, gas=gas, fees=fees))
        return handles

    def broadcast_many(self, raws: Sequence[bytes]) -> list[str | TransactionRejected]:
        """Send raw transactions in one batch; the hash of each accepted one or why it was refused.

        "already known" / "nonce too low" for a transaction the node already has are reported as
        accepted: rebroadcasting identical bytes is idempotent, receipts tell the rest.
        """
        from eth_hash.auto import keccak

        replies = self.rpc.batch([("eth_sendRawTransaction", [_hex(raw)]) for raw in raws])
        out: list[str | TransactionRejected] = []
        for raw, reply in zip(raws, replies, strict=True):
            tx_hash = _hex(keccak(raw))
            if isinstance(reply, RpcError):
                text = reply.message.lower()
                if "already known" in text or "already imported" in text or "known transaction" in text:
                    out.append(tx_hash)
                else:
                    out.append(TransactionRejected(tx_hash=tx_hash, reason=reply.message))
            else:
                out.append(str(reply))
        return out

    def send_many(self, items: Sequence[tuple[LedgerCall, str]]) -> list[TxHandle | LedgerError]:
        """Pipelined: estimate all, sign all, broadcast all; return without waiting for receipts.

        Each result is the :class:`TxHandle` of a broadcast transaction or the domain error of that
        item (revert at estimate time, gas cap, rejection by the node).
        """
        gases = self.estimate_many(items)
        ready = [(c, s, g) for (c, s), g in zip(items, gases, strict=True) if isinstance(g, int)]
        handles = iter(self.sign_many(ready))
        signed: list[TxHandle | LedgerError] = [next(handles) if isinstance(g, int) else g for g in gases]
        sent = [h for h in signed if isinstance(h, TxHandle)]
        results = dict(zip((h.tx_hash for h in sent), self.broadcast_many([h.raw for h in sent]), strict=True))
        out: list[TxHandle | LedgerError] = []
        for item in signed:
            if isinstance(item, TxHandle) and isinstance(results[item.tx_hash], TransactionRejected):
                self._nonces[item.signer.lower()].release(item.nonce)
                out.append(results[item.tx_hash])  # type: ignore[arg-type]
            else:
                out.append(item)
        return out

    def send(self, call: LedgerCall, signer: str, *, gas: int | None = None) -> TxHandle:
        """Estimate (unless ``gas``), sign and broadcast one call; raise its domain error if any."""
        self._signer(signer)
        if gas is None:
            gas = self.estimate(call, signer)
        (handle,) = self.sign_many([(call, signer, gas)])
        (result,) = self.broadcast_many([handle.raw])
        if isinstance(result, TransactionRejected):
            self._nonces[handle.signer.lower()].release(handle.nonce)
            raise result
        return handle

    # ------------------------------------------------------------------ receipts and repair

    @staticmethod
    def _receipt(reply: object) -> TxReceipt | None:
        if not isinstance(reply, dict) or reply.get("blockNumber") is None:
            return None
        return TxReceipt(
            tx_hash=str(reply["transactionHash"]), block_number=_int(reply["blockNumber"]),
            block_hash=str(reply["blockHash"]), status=_int(reply["status"]), gas_used=_int(reply["gasUsed"]),
        )  # fmt: skip

    def receipts(self, tx_hashes: Sequence[str]) -> dict[str, TxReceipt]:
        """Receipts of the mined ones among ``tx_hashes`` (one batch)."""
        replies = self.rpc.batch([("eth_getTransactionReceipt", [h]) for h in tx_hashes])
        out = {}
        for tx_hash, reply in zip(tx_hashes, replies, strict=True):
            receipt = self._receipt(reply)
            if receipt is not None:
                out[tx_hash] = receipt
        return out

    def states(self, tx_hashes: Sequence[str]) -> dict[str, TxState]:
        """Mined / pending / unknown for each hash (two batches)."""
        mined = self.receipts(tx_hashes)
        rest = [h for h in tx_hashes if h not in mined]
        known = self.rpc.batch([("eth_getTransactionByHash", [h]) for h in rest]) if rest else []
        out = {h: TxState(where="mined", receipt=r) for h, r in mined.items()}
        for tx_hash, reply in zip(rest, known, strict=True):
            out[tx_hash] = TxState(where="pending" if isinstance(reply, dict) else "unknown")
        return out

    def revert_reason(self, *, call: LedgerCall, signer: str, block_number: int) -> LedgerError:
        """Replay a failed ``call`` from ``signer`` at ``block_number`` to recover its custom error."""
        for block in (block_number, block_number - 1):
            try:
                self.rpc.call(
                    "eth_call", [{"from": signer, "to": self.ledger_address, "data": _hex(call.calldata)}, hex(block)]
                )
            except RpcError as exc:
                return self._revert_from(exc, call.function)
        return TransactionFailed(
            tx_hash="", block_number=block_number, detail=f"{call.function} no longer reverts on replay"
        )

    def is_final(self, receipt: TxReceipt, head: int | None = None) -> bool:
        """``confirmations`` blocks are built on top of the receipt's block."""
        return (self.head() if head is None else head) - receipt.block_number >= self.confirmations

    def wait(self, handle: TxHandle, *, timeout: float = 30.0, poll: float = 0.05) -> TxReceipt:
        """Wait until ``handle`` is mined and final; raise its domain error if it reverted."""
        deadline = time.monotonic() + timeout
        while True:
            receipt = self.receipts([handle.tx_hash]).get(handle.tx_hash)
            if receipt is not None:
                if receipt.status != 1:
                    error = self.revert_reason(
                        call=handle.call, signer=handle.signer, block_number=receipt.block_number
                    )
                    if isinstance(error, TransactionFailed):
                        raise TransactionFailed(
                            tx_hash=handle.tx_hash, block_number=receipt.block_number, detail=str(error)
                        )
                    raise error
                if self.is_final(receipt):
                    return receipt
            if time.monotonic() > deadline:
                raise TransactionTimeout(tx_hash=handle.tx_hash, seconds=timeout)
            time.sleep(poll)

    def resubmit(self, handle: TxHandle) -> TxHandle:
        """Rebroadcast ``handle``'s identical bytes (a dropped transaction; same nonce, same hash).

        If the node refuses them as underpriced, replace with bumped fees (:meth:`bump`).
        """
        (result,) = self.broadcast_many([handle.raw])
        if isinstance(result, TransactionRejected):
            if "underpriced" in result.reason.lower() or "fee" in result.reason.lower():
                return self.bump(handle)
            raise result
        return handle

    def replacement_for(self, handle: TxHandle, *, gas: int | None = None) -> TxHandle:
        """Sign (do not send) a replacement of ``handle``: same nonce, fees raised ≥ 12.5 % and to at
        least today's quote. The outbox journals it before broadcasting."""
        fee_cap, tip = bump_fees(handle.fee_cap, handle.priority_fee)
        quote_cap, quote_tip = self._fee_quote()
        if quote_cap is None:
            fees: tuple[int | None, int] = (None, max(fee_cap, quote_tip))
        else:
            fees = (max(fee_cap, quote_cap), max(tip, quote_tip))
        signer = self._signer(handle.signer)
        return self._sign(signer, handle.call, nonce=handle.nonce, gas=gas or handle.gas, fees=fees)

    def bump(self, handle: TxHandle, *, gas: int | None = None) -> TxHandle:
        """Replace a stuck transaction (:meth:`replacement_for`) and broadcast the replacement."""
        replacement = self.replacement_for(handle, gas=gas)
        (result,) = self.broadcast_many([replacement.raw])
        if isinstance(result, TransactionRejected):
            raise result
        return replacement

    def re_sign(self, handle: TxHandle) -> TxHandle:
        """The same call with a fresh nonce and current fees (the old nonce was taken by another tx)."""
        (fresh,) = self.sign_many([(handle.call, handle.signer, handle.gas)])
        return fresh

    def anchored(self, anchors: Sequence[Anchor]) -> list[bool]:
        """Whether each anchor (declaration / stamp / batch id) already exists on chain (one batch)."""
        replies = self.rpc.batch(
            [("eth_call", [{"to": self.ledger_address, "data": _hex(calls.anchor_view(a))}, "latest"]) for a in anchors]
        )
        out = []
        for anchor, reply in zip(anchors, replies, strict=True):
            if isinstance(reply, RpcError):
                raise TransactionError(f"anchor lookup failed: {reply}")
            out.append(calls.anchor_exists(anchor, bytes.fromhex(str(reply)[2:])))
        return out

    # ------------------------------------------------------------------ typed ledger functions

    def submit_declaration(
        self, *, signer: str, jurisdiction_id: bytes, local_reference: bytes, commitment: bytes, cid: bytes,
        documents: Sequence[SupportingDocumentRef] = (),
    ) -> TxHandle:  # fmt: skip
        """Trader ``signer`` anchors declaration ``commitment`` under ``jurisdiction_id``."""
        return self.send(
            calls.submit_declaration(
                jurisdiction_id=jurisdiction_id,
                local_reference=local_reference,
                commitment=commitment,
                cid=cid,
                documents=documents,
            ),  # fmt: skip
            signer,
        )

    def amend_declaration(
        self, *, signer: str, previous_id: bytes, commitment: bytes, cid: bytes,
        documents: Sequence[SupportingDocumentRef] = (),
    ) -> TxHandle:  # fmt: skip
        """Declarant ``signer`` anchors an amendment of ``previous_id``."""
        return self.send(
            calls.amend_declaration(previous_id=previous_id, commitment=commitment, cid=cid, documents=documents),
            signer,
        )

    def accept_declaration(self, *, signer: str, declaration_id: bytes, mrn: bytes) -> TxHandle:
        """Customs authority ``signer`` accepts a declaration with its MRN."""
        return self.send(calls.accept_declaration(declaration_id=declaration_id, mrn=mrn), signer)

    def assign_channel(
        self, *, signer: str, declaration_id: bytes, channel: int, required_stamps: int, rule_set_hash: bytes
    ) -> TxHandle:
        """Risk oracle ``signer`` assigns the selectivity channel."""
        return self.send(
            calls.assign_channel(
                declaration_id=declaration_id,
                channel=channel,
                required_stamps=required_stamps,
                rule_set_hash=rule_set_hash,
            ),  # fmt: skip
            signer,
        )

    def record_stamp(
        self, *, signer: str, declaration_id: bytes, stamp_type: int, result: int, report_sha256: bytes,
        report_cid: bytes,
    ) -> TxHandle:  # fmt: skip
        """Inspection agency ``signer`` records a stamp."""
        return self.send(
            calls.record_stamp(
                declaration_id=declaration_id,
                stamp_type=stamp_type,
                result=result,
                report_sha256=report_sha256,
                report_cid=report_cid,
            ),  # fmt: skip
            signer,
        )

    def relay_stamp(self, *, signer: str, stamp: SignedStampFields, signature: bytes) -> TxHandle:
        """``signer`` relays an EIP-712 stamp signed off-chain by ``stamp.signer``."""
        return self.send(calls.relay_stamp(stamp=stamp, signature=signature), signer)

    def revoke_stamp(self, *, signer: str, stamp_id: bytes, reason_code: int) -> TxHandle:
        """The issuing agency's ``signer`` revokes a stamp."""
        return self.send(calls.revoke_stamp(stamp_id=stamp_id, reason_code=reason_code), signer)

    def decide(
        self, *, signer: str, declaration_id: bytes, kind: int, reason_code: int, report_sha256: bytes,
        pass_stamps: Sequence[bytes] = (),
    ) -> TxHandle:  # fmt: skip
        """The jurisdiction's ``signer`` decides (or proposes a dual-control decision)."""
        return self.send(
            calls.decide(
                declaration_id=declaration_id,
                kind=kind,
                reason_code=reason_code,
                report_sha256=report_sha256,
                pass_stamps=pass_stamps,
            ),  # fmt: skip
            signer,
        )

    def approve_decision(self, *, signer: str, declaration_id: bytes, pass_stamps: Sequence[bytes] = ()) -> TxHandle:
        """Another jurisdiction signer approves the pending decision."""
        return self.send(calls.approve_decision(declaration_id=declaration_id, pass_stamps=pass_stamps), signer)

    def cancel_decision(self, *, signer: str, declaration_id: bytes) -> TxHandle:
        """Withdraw the pending decision."""
        return self.send(calls.cancel_decision(declaration_id=declaration_id), signer)

    def anchor_batch(self, *, signer: str, root: bytes, leaf_count: int, kind: int, manifest_cid: bytes) -> TxHandle:
        """Agency ``signer`` anchors a Merkle batch root."""
        return self.send(
            calls.anchor_batch(root=root, leaf_count=leaf_count, kind=kind, manifest_cid=manifest_cid), signer
        )

    def raise_alert(
        self, *, signer: str, subject_kind: int, subject: bytes, reason_code: int, evidence_sha256: bytes
    ) -> TxHandle:
        """Agency ``signer`` raises an alert."""
        return self.send(
            calls.raise_alert(
                subject_kind=subject_kind, subject=subject, reason_code=reason_code, evidence_sha256=evidence_sha256
            ),
            signer,
        )

    def clear_alert(self, *, signer: str, alert_id: int, reason_code: int) -> TxHandle:
        """The raising agency's ``signer`` clears an alert."""
        return self.send(calls.clear_alert(alert_id=alert_id, reason_code=reason_code), signer)
