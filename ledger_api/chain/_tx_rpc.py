"""A minimal JSON-RPC 2.0 transport over httpx with batch requests (the client's hot path).

web3's provider stack costs about a millisecond per call; the write path needs batches of a few
hundred ``eth_sendRawTransaction`` / ``eth_getTransactionReceipt`` calls in one HTTP round trip.
Connection failures become :class:`ChainUnavailable`; JSON-RPC error objects become
:class:`RpcError` values (returned from :meth:`JsonRpc.batch`, raised from :meth:`JsonRpc.call`).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from ledger_api.errors import ChainUnavailable

__all__ = ["JsonRpc", "RpcError"]


@dataclass(frozen=True, kw_only=True, slots=True)
class RpcError(Exception):
    """A JSON-RPC error object returned by the node (not a transport failure)."""

    code: int
    message: str
    data: object = None

    def __str__(self) -> str:
        return f"JSON-RPC error {self.code}: {self.message}"

    @property
    def revert_data(self) -> bytes | None:
        """The revert bytes carried in ``data`` (``0x``-hex string), if any."""
        data = self.data
        if isinstance(data, dict):  # some nodes nest it: {"data": "0x..."}
            data = data.get("data")
        if isinstance(data, str) and data.startswith("0x"):
            try:
                return bytes.fromhex(data[2:])
            except ValueError:
                return None
        return None


class JsonRpc:
    """Thread-safe JSON-RPC client for one endpoint."""

    def __init__(self, *, url: str, timeout: float = 10.0) -> None:
        self.url = url
        self._http = httpx.Client(timeout=timeout, limits=httpx.Limits(max_connections=16))
        self._ids = itertools.count(1)
        self._id_lock = threading.Lock()

    def close(self) -> None:
        """Close the underlying connection pool."""
        self._http.close()

    def _post(self, body: object) -> Any:
        try:
            response = self._http.post(self.url, json=body)
            response.raise_for_status()
            return response.json()
        except (httpx.TransportError, httpx.HTTPStatusError, ValueError) as exc:
            raise ChainUnavailable(self.url, type(exc).__name__ + (f": {exc}" if str(exc) else "")) from exc

    def _next_ids(self, n: int) -> list[int]:
        with self._id_lock:
            return [next(self._ids) for _ in range(n)]

    def call(self, method: str, params: Sequence[object]) -> Any:
        """Call ``method``; return its result or raise :class:`RpcError`."""
        (request_id,) = self._next_ids(1)
        reply = self._post({"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)})
        if not isinstance(reply, dict):
            raise ChainUnavailable(self.url, f"malformed JSON-RPC reply to {method}")
        if "error" in reply:
            error = reply["error"]
            raise RpcError(
                code=int(error.get("code", 0)), message=str(error.get("message", "")), data=error.get("data")
            )
        return reply.get("result")

    def batch(self, calls: Sequence[tuple[str, Sequence[object]]], *, chunk: int = 500) -> list[Any | RpcError]:
        """Send ``calls`` as JSON-RPC batches of ``chunk``; results in order, errors as :class:`RpcError`."""
        results: list[Any | RpcError] = []
        for start in range(0, len(calls), chunk):
            part = calls[start : start + chunk]
            ids = self._next_ids(len(part))
            body = [
                {"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)} for i, (m, p) in zip(ids, part, strict=True)
            ]
            replies = self._post(body)
            if not isinstance(replies, list):
                raise ChainUnavailable(self.url, "malformed JSON-RPC batch reply")
            by_id = {r.get("id"): r for r in replies if isinstance(r, dict)}
            for i in ids:
                reply = by_id.get(i)
                if reply is None:
                    results.append(RpcError(code=-32603, message="no reply in batch"))
                elif "error" in reply:
                    e = reply["error"]
                    results.append(
                        RpcError(code=int(e.get("code", 0)), message=str(e.get("message", "")), data=e.get("data"))
                    )
                else:
                    results.append(reply.get("result"))
        return results
