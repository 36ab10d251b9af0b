"""Raw event reading: paginated ``eth_getLogs`` over plain JSON-RPC and a fast ABI-layout decoder.

web3's ``get_logs`` + ``process_log`` decode 5–13k events/s; this module talks JSON-RPC with httpx,
keeps logs as parsed JSON, and decodes them by the ABI layout:

* indexed fields come from the topics (static types are the 32-byte word itself);
* when every non-indexed field is static, each is sliced from the data at a fixed 32-byte offset
  and converted directly from hex (no generic decoder in the loop);
* dynamic fields (``bytes``, ``string``, ``SupportingDocument[]``, ``bytes32[]``) are read from the
  ABI head/tail layout (offset → length → payload) by readers built once per event; only shapes
  our contracts do not use (fixed-size arrays, multi-word static tuples) go through ``eth_abi``.

The fast paths trust what our own contracts emit: they check lengths and offsets against the data
(a malformed log raises :class:`EventDecodeError`) but not the zero padding inside a word, which
``eth_abi`` would reject.

Values have the types web3 would give, normalised for storage: integers as ``int``, ``bool``,
addresses as checksummed ``str``, fixed and dynamic bytes as ``bytes`` (or 0x-hex ``str`` with
``hex_bytes=True``), strings as ``str``, tuples as ``dict`` (by component name), arrays as ``tuple``.

:func:`fetch_logs` paginates adaptively: a page that fails with a "too many results" / "range too
large" / response-size error or a timeout is split in half and retried; pages that come back small
grow the range for the next request. Transient transport errors are retried with exponential
backoff; a node that stays unreachable raises :class:`~ledger_api.errors.ChainUnavailable`.
"""

from __future__ import annotations

import itertools
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

import httpx
from eth_abi.abi import decode as abi_decode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from ledger_api.chain.artifacts import canonical_type, load_artifact
from ledger_api.errors import ChainUnavailable, EventDecodeError, LogQueryError, redact_url

__all__ = [
    "DecodedEvent",
    "EventDecoder",
    "EventSpec",
    "JsonRpc",
    "RawLog",
    "fetch_logs",
    "prefetched",
]

#: A log as returned by ``eth_getLogs`` (parsed JSON; hex strings).
RawLog = Mapping[str, Any]

#: Messages nodes use when a log query is too large (geth, Besu, anvil, Infura, Alchemy, QuickNode).
_TOO_LARGE = re.compile(
    r"too many|limit exceeded|exceeds? (the )?(max|limit)|query returned more than|response size|"
    r"block range|range (is )?too (large|wide)|timeout|timed out|max results|response too large",
    re.IGNORECASE,
)


# ================================================================================ JSON-RPC client


class JsonRpc:
    """A minimal JSON-RPC client over httpx with retries for transient failures.

    Transport errors (connection refused, reset, timeouts) and HTTP 429/5xx are retried
    ``retries`` times with exponential backoff starting at ``backoff`` seconds; after that
    :class:`ChainUnavailable` is raised. JSON-RPC error objects are returned to the caller as
    :class:`LogQueryError` (they are answers, not outages).
    """

    def __init__(self, *, rpc_url: str, timeout: float = 30.0, retries: int = 4, backoff: float = 0.2) -> None:
        self.rpc_url = rpc_url
        self._client = httpx.Client(timeout=timeout)
        self._retries = retries
        self._backoff = backoff
        self._ids = itertools.count(1)

    def close(self) -> None:
        """Close the underlying HTTP connection pool."""
        self._client.close()

    def __enter__(self) -> JsonRpc:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _post(self, payload: object) -> Any:
        delay = self._backoff
        for attempt in range(self._retries + 1):
            try:
                response = self._client.post(self.rpc_url, json=payload)
                if response.status_code == 429 or response.status_code >= 500:
                    raise httpx.HTTPStatusError(
                        f"HTTP {response.status_code}", request=response.request, response=response
                    )
                return response.json()
            except httpx.TimeoutException as exc:
                if attempt == self._retries:
                    raise LogQueryError(f"request to {redact_url(self.rpc_url)} timed out") from exc
            except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                if attempt == self._retries:
                    raise ChainUnavailable(self.rpc_url, str(exc) or type(exc).__name__) from exc
            except ValueError as exc:  # not JSON
                if attempt == self._retries:
                    raise ChainUnavailable(self.rpc_url, f"invalid JSON-RPC response: {exc}") from exc
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")  # pragma: no cover

    def call(self, method: str, params: Sequence[object] = ()) -> Any:
        """Call ``method`` and return its ``result``; a JSON-RPC error raises :class:`LogQueryError`."""
        answer = self._post({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)})
        if not isinstance(answer, dict):
            raise ChainUnavailable(self.rpc_url, f"unexpected JSON-RPC answer to {method}")
        if "error" in answer:
            error = answer["error"]
            message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
            raise LogQueryError(f"{method} failed: {message}")
        return answer.get("result")

    def batch(self, calls: Sequence[tuple[str, Sequence[object]]]) -> list[Any]:
        """Send several calls in one JSON-RPC batch; results in the order of ``calls``."""
        if not calls:
            return []
        first = next(self._ids)
        payload = [
            {"jsonrpc": "2.0", "id": first + n, "method": method, "params": list(params)}
            for n, (method, params) in enumerate(calls)
        ]
        for _ in range(len(calls) - 1):
            next(self._ids)
        answers = self._post(payload)
        if not isinstance(answers, list):
            raise ChainUnavailable(self.rpc_url, "unexpected answer to a JSON-RPC batch")
        by_id = {a.get("id"): a for a in answers if isinstance(a, dict)}
        results: list[Any] = []
        for n, (method, _) in enumerate(calls):
            answer = by_id.get(first + n)
            if answer is None or "error" in answer:
                raise LogQueryError(f"{method} failed in a batch: {answer and answer.get('error')}")
            results.append(answer.get("result"))
        return results

    def block_number(self) -> int:
        """The node's head block number."""
        return int(self.call("eth_blockNumber"), 16)


# ================================================================================ paginated logs


def fetch_logs(
    rpc_url: str | JsonRpc,
    addresses: Sequence[str],
    from_block: int,
    to_block: int,
    *,
    initial_range: int = 2_000,
    max_range: int = 100_000,
    target_results: int = 10_000,
    result_limit: int | None = None,
    topics: Sequence[object] | None = None,
) -> Iterator[list[RawLog]]:
    """Yield the logs of ``addresses`` in ``[from_block, to_block]``, one page (list) at a time.

    Pages are block ranges sized adaptively: a page that the node refuses as too large (or that
    times out, or that returns more than ``result_limit`` logs when given, emulating a provider
    cap) is halved and retried; a page with fewer than ``target_results / 4`` logs doubles the next
    range, up to ``max_range``. Pages are yielded in block order, so a consumer can commit its
    cursor after each page. Raises :class:`ChainUnavailable` when the node cannot be reached and
    :class:`LogQueryError` when even a single block cannot be fetched.
    """
    if initial_range < 1 or max_range < 1:
        raise ValueError("block ranges must be at least 1")
    own = not isinstance(rpc_url, JsonRpc)
    rpc = JsonRpc(rpc_url=rpc_url) if isinstance(rpc_url, str) else rpc_url
    try:
        span = min(initial_range, max_range)
        start = from_block
        address_param: str | list[str] = list(addresses) if len(addresses) != 1 else addresses[0]
        while start <= to_block:
            end = min(start + span - 1, to_block)
            query: dict[str, object] = {"address": address_param, "fromBlock": hex(start), "toBlock": hex(end)}
            if topics is not None:
                query["topics"] = list(topics)
            try:
                page = rpc.call("eth_getLogs", [query])
                if not isinstance(page, list):
                    raise LogQueryError(f"eth_getLogs returned {type(page).__name__}, not a list")
                if result_limit is not None and len(page) > result_limit and end > start:
                    raise LogQueryError(f"query returned more than {result_limit} results")
            except LogQueryError as exc:
                if end == start or not _TOO_LARGE.search(str(exc)):
                    raise
                span = max(1, (end - start + 1) // 2)
                continue
            yield cast(list[RawLog], page)
            start = end + 1
            if len(page) < target_results // 4:
                span = min(span * 2, max_range)
            elif len(page) > target_results:
                span = max(1, span // 2)
    finally:
        if own:
            rpc.close()


_DONE = object()


def prefetched(pages: Iterator[list[Any]], depth: int = 2) -> Iterator[list[Any]]:
    """Iterate ``pages`` while a background thread already fetches the next ones.

    The node's response time for page n+1 overlaps with decoding and writing page n. Order is kept;
    an exception in the fetching thread is re-raised here, at the position it happened.
    """
    channel: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                channel.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def worker() -> None:
        try:
            for page in pages:
                if not put(page):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, re-raised there
            put(exc)

    thread = threading.Thread(target=worker, name="logs-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = channel.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join(timeout=60)


# ================================================================================ decoding


class DecodedEvent(NamedTuple):
    """One decoded log: where it came from and its arguments by name.

    An immutable named tuple rather than a dataclass: constructing a frozen dataclass costs more
    than decoding a fixed-layout event, and decoding runs once per log.
    """

    contract: str  # contract name: "AgencyRegistry" / "ClearanceLedger"
    name: str  # event name, e.g. "DeclarationSubmitted"
    address: str  # emitting contract address (checksummed)
    block_number: int
    block_hash: str  # 0x-hex
    tx_hash: str  # 0x-hex
    log_index: int
    args: Mapping[str, Any]


def _convert_word(abi_type: str, hex_bytes: bool = False) -> Callable[[str], Any]:
    """A converter from one 64-hex-digit ABI word to the Python value of a static ``abi_type``."""
    if abi_type.startswith("uint"):
        return lambda word: int(word, 16)
    if abi_type.startswith("int"):
        bits = int(abi_type[3:] or "256")

        def signed(word: str) -> int:
            value = int(word, 16) & ((1 << bits) - 1)
            return value - (1 << bits) if value >> (bits - 1) else value

        return signed
    if abi_type == "address":
        return lambda word: _checksum(word[24:])
    if abi_type == "bool":
        return lambda word: word[-1] != "0"
    if abi_type.startswith("bytes") and abi_type != "bytes":
        size = int(abi_type[5:])
        if hex_bytes:
            return lambda word: "0x" + word[: size * 2].lower()
        return lambda word: bytes.fromhex(word[: size * 2])
    raise ValueError(f"not a static ABI type: {abi_type}")


_CHECKSUMS: dict[str, str] = {}


def _checksum(hex40: str) -> str:
    """Checksummed address of 40 hex digits (cached: a ledger has few distinct accounts)."""
    known = _CHECKSUMS.get(hex40)
    if known is None:
        known = to_checksum_address("0x" + hex40)
        if len(_CHECKSUMS) < 100_000:
            _CHECKSUMS[hex40] = known
    return known


def _is_static(abi_type: str) -> bool:
    return not (abi_type in ("bytes", "string") or abi_type.endswith("]") or abi_type.startswith("("))


def _normalizer(param: Mapping[str, Any], hex_bytes: bool = False) -> Callable[[Any], Any] | None:
    """Post-processing of an eth_abi value to our conventions (``None`` = keep as is)."""
    abi_type = str(param["type"])
    if abi_type.endswith("]"):
        inner = dict(param)
        inner["type"] = abi_type[: abi_type.rindex("[")]
        element = _normalizer(inner, hex_bytes)
        if element is None:
            return tuple
        return lambda values: tuple(element(v) for v in values)
    if abi_type == "tuple":
        names = [str(c["name"]) for c in param["components"]]
        converters = [_normalizer(c, hex_bytes) for c in param["components"]]

        def to_dict(value: Sequence[Any]) -> dict[str, Any]:
            return {n: (v if f is None else f(v)) for n, f, v in zip(names, converters, value, strict=True)}

        return to_dict
    if abi_type == "address":
        return lambda value: _checksum(str(value)[2:].lower())
    if hex_bytes and abi_type.startswith("bytes"):
        return lambda value: "0x" + bytes(value).hex()
    return None


_Reader = Callable[[bytes, int], Any]


def _scalar_reader(abi_type: str, hex_bytes: bool = False) -> _Reader | None:
    """Reader of one static 32-byte ABI value at ``pos`` of a byte buffer."""
    if abi_type.startswith("uint"):
        return lambda buf, pos: int.from_bytes(buf[pos : pos + 32], "big")
    if abi_type.startswith("int"):
        return lambda buf, pos: int.from_bytes(buf[pos : pos + 32], "big", signed=True)
    if abi_type == "address":
        return lambda buf, pos: _checksum(buf[pos + 12 : pos + 32].hex())
    if abi_type == "bool":
        return lambda buf, pos: buf[pos + 31] != 0
    if abi_type.startswith("bytes") and abi_type != "bytes":
        size = int(abi_type[5:])
        if hex_bytes:
            return lambda buf, pos: "0x" + buf[pos : pos + size].hex()
        return lambda buf, pos: buf[pos : pos + size]
    return None


def _layout_reader(param: Mapping[str, Any], hex_bytes: bool = False) -> tuple[bool, _Reader] | None:
    """``(dynamic, reader)`` decoding ``param`` straight from the ABI head/tail layout.

    Supports what our events use: 32-byte scalars, ``bytes``, ``string``, ``T[]`` and tuples of
    those. ``None`` for anything else (fixed-size arrays, multi-word static tuples): eth_abi decodes
    those. Readers raise ``ValueError`` when an offset or length points outside the data.
    """
    abi_type = str(param["type"])
    if abi_type.endswith("[]"):
        inner = dict(param)
        inner["type"] = abi_type[:-2]
        element = _layout_reader(inner, hex_bytes)
        if element is None:
            return None
        element_dynamic, read_element = element

        def read_array(buf: bytes, pos: int) -> tuple[Any, ...]:
            count = int.from_bytes(buf[pos : pos + 32], "big")
            base = pos + 32
            if base + 32 * count > len(buf):
                raise ValueError("array runs past the end of the data")
            if element_dynamic:
                return tuple(
                    read_element(buf, base + int.from_bytes(buf[base + 32 * i : base + 32 * i + 32], "big"))
                    for i in range(count)
                )
            return tuple(read_element(buf, base + 32 * i) for i in range(count))

        return True, read_array
    if abi_type.endswith("]"):
        return None
    if abi_type in ("bytes", "string"):
        as_text = abi_type == "string"

        def read_bytes(buf: bytes, pos: int) -> Any:
            length = int.from_bytes(buf[pos : pos + 32], "big")
            end = pos + 32 + length
            if end > len(buf):
                raise ValueError("bytes run past the end of the data")
            value = buf[pos + 32 : end]
            if as_text:
                return value.decode("utf-8")
            return "0x" + value.hex() if hex_bytes else value

        return True, read_bytes
    if abi_type == "tuple":
        parts = [_layout_reader(c, hex_bytes) for c in param["components"]]
        if any(p is None for p in parts):
            return None
        readers = [p for p in parts if p is not None]
        if not any(dynamic for dynamic, _ in readers):
            return None  # a static tuple spans several words: leave it to eth_abi
        names = [str(c["name"]) for c in param["components"]]

        def read_tuple(buf: bytes, pos: int) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for k, (name, (dynamic, read)) in enumerate(zip(names, readers, strict=True)):
                head = pos + 32 * k
                if head + 32 > len(buf):
                    raise ValueError("tuple head runs past the end of the data")
                out[name] = (
                    read(buf, pos + int.from_bytes(buf[head : head + 32], "big")) if dynamic else read(buf, head)
                )
            return out

        return True, read_tuple
    scalar = _scalar_reader(abi_type, hex_bytes)
    return None if scalar is None else (False, scalar)


@dataclass(frozen=True, kw_only=True)
class EventSpec:
    """How to decode one event: its topic0 and the layout of its fields."""

    contract: str
    name: str
    signature: str  # e.g. "AgencyRolesChanged(bytes32,uint16)"
    topic0: str  # 0x-hex keccak of the signature
    indexed: tuple[tuple[str, Callable[[str], Any]], ...]  # name, converter of the topic word
    static_data: tuple[tuple[str, Callable[[str], Any]], ...] | None  # fixed layout, or None if dynamic
    data_names: tuple[str, ...]
    data_types: tuple[str, ...]
    data_normalizers: tuple[Callable[[Any], Any] | None, ...]
    field_order: tuple[str, ...]  # ABI order of all fields
    # Head/tail layout readers when the data has dynamic fields we can read directly (else eth_abi).
    dynamic_data: tuple[tuple[str, bool, _Reader], ...] | None = None

    @classmethod
    def from_abi(cls, contract: str, entry: Mapping[str, Any], *, hex_bytes: bool = False) -> EventSpec:
        """Build the spec of one ABI ``event`` entry (``hex_bytes``: bytes values as 0x-hex strings)."""
        inputs = list(entry["inputs"])
        signature = f"{entry['name']}({','.join(canonical_type(p) for p in inputs)})"
        indexed = []
        for p in inputs:
            if p["indexed"]:
                t = canonical_type(p)
                # An indexed dynamic value is only its keccak in the topic: keep the 32 bytes.
                indexed.append((str(p["name"]), _convert_word(t if _is_static(t) else "bytes32", hex_bytes)))
        data = [p for p in inputs if not p["indexed"]]
        types = tuple(canonical_type(p) for p in data)
        static = all(_is_static(t) for t in types)
        layout = [_layout_reader(p, hex_bytes) for p in data]
        dynamic_data = (
            tuple((str(p["name"]), r[0], r[1]) for p, r in zip(data, layout, strict=True) if r is not None)
            if not static and all(r is not None for r in layout)
            else None
        )
        return cls(
            contract=contract,
            name=str(entry["name"]),
            signature=signature,
            topic0="0x" + keccak(text=signature).hex(),
            indexed=tuple(indexed),
            static_data=tuple((str(p["name"]), _convert_word(t, hex_bytes)) for p, t in zip(data, types, strict=True))
            if static
            else None,
            data_names=tuple(str(p["name"]) for p in data),
            data_types=types,
            data_normalizers=tuple(_normalizer(p, hex_bytes) for p in data),
            field_order=tuple(str(p["name"]) for p in inputs),
            dynamic_data=dynamic_data,
        )

    def decode_args(self, topics: Sequence[str], data: str) -> dict[str, Any]:
        """Decode the arguments from a log's topics (0x-hex) and data (0x-hex)."""
        if len(topics) != len(self.indexed) + 1:
            raise EventDecodeError(f"{self.name}: expected {len(self.indexed) + 1} topics, got {len(topics)}")
        args: dict[str, Any] = {}
        for (name, convert), topic in zip(self.indexed, topics[1:], strict=True):
            args[name] = convert(topic[2:])
        if self.static_data is not None:
            if len(data) != 2 + 64 * len(self.static_data):
                raise EventDecodeError(f"{self.name}: data has {len(data) // 2 - 1} bytes, not a fixed layout")
            offset = 2
            for name, convert in self.static_data:
                args[name] = convert(data[offset : offset + 64])
                offset += 64
        elif self.dynamic_data is not None:
            buf = bytes.fromhex(data[2:])
            if len(buf) < 32 * len(self.dynamic_data):
                raise EventDecodeError(f"{self.name}: data shorter than its head")
            try:
                for k, (name, dynamic, read) in enumerate(self.dynamic_data):
                    head = 32 * k
                    args[name] = read(buf, int.from_bytes(buf[head : head + 32], "big")) if dynamic else read(buf, head)
            except (ValueError, IndexError, UnicodeDecodeError) as exc:
                raise EventDecodeError(f"{self.name}: cannot decode data: {exc}") from exc
        else:
            try:
                values = abi_decode(self.data_types, bytes.fromhex(data[2:]))
            except Exception as exc:  # eth_abi raises several unrelated types
                raise EventDecodeError(f"{self.name}: cannot decode data: {exc}") from exc
            for name, normalize, value in zip(self.data_names, self.data_normalizers, values, strict=True):
                args[name] = value if normalize is None else normalize(value)
        return args


class EventDecoder:
    """Decodes raw logs of known contracts by topic0 into :class:`DecodedEvent` values.

    Build it with :meth:`for_contracts` (addresses → contract names, ABIs from the committed
    artifacts). Logs of other addresses, or with an unknown topic0, are skipped by :meth:`decode_all`
    and rejected by :meth:`decode`.
    """

    def __init__(self, *, contracts: Mapping[str, str], specs: Iterable[EventSpec]) -> None:
        self._contracts = {address.lower(): name for address, name in contracts.items()}
        self._checksummed = {address.lower(): to_checksum_address(address) for address in contracts}
        self._specs: dict[tuple[str, str], EventSpec] = {(s.contract, s.topic0): s for s in specs}

    @classmethod
    def for_contracts(cls, contracts: Mapping[str, str], *, hex_bytes: bool = False) -> EventDecoder:
        """A decoder for ``{address: contract name}`` using the committed ABIs of those contracts.

        ``hex_bytes=True`` gives bytes values as lowercase 0x-hex strings (JSON-ready, what the
        index stores) instead of ``bytes``; it saves a conversion per value.
        """
        specs = [
            EventSpec.from_abi(name, entry, hex_bytes=hex_bytes)
            for name in sorted(set(contracts.values()))
            for entry in load_artifact(name).abi
            if entry.get("type") == "event" and not entry.get("anonymous", False)
        ]
        return cls(contracts=contracts, specs=specs)

    @property
    def specs(self) -> tuple[EventSpec, ...]:
        """Every event this decoder knows."""
        return tuple(self._specs.values())

    @property
    def addresses(self) -> tuple[str, ...]:
        """The contract addresses this decoder reads (checksummed)."""
        return tuple(self._checksummed.values())

    def decode(self, log: RawLog) -> DecodedEvent:
        """Decode one raw log; raises :class:`EventDecodeError` for logs it does not know."""
        event = self._decode(log)
        if event is None:
            raise EventDecodeError(f"unknown log: address {log.get('address')} topic0 {(log.get('topics') or [''])[0]}")
        return event

    def decode_all(self, logs: Iterable[RawLog]) -> list[DecodedEvent]:
        """Decode many logs, skipping logs of unknown contracts or events."""
        decoded = []
        for log in logs:
            event = self._decode(log)
            if event is not None:
                decoded.append(event)
        return decoded

    def _decode(self, log: RawLog) -> DecodedEvent | None:
        address = str(log["address"]).lower()
        contract = self._contracts.get(address)
        topics = log["topics"]
        if contract is None or not topics:
            return None
        spec = self._specs.get((contract, topics[0]))
        if spec is None:
            spec = self._specs.get((contract, str(topics[0]).lower()))
            if spec is None:
                return None
        return DecodedEvent(
            contract=contract,
            name=spec.name,
            address=self._checksummed[address],
            block_number=int(log["blockNumber"], 16),
            block_hash=log["blockHash"],
            tx_hash=log["transactionHash"],
            log_index=int(log["logIndex"], 16),
            args=spec.decode_args(topics, log["data"]),
        )
