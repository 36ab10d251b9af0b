"""Typed Python client of the HTTP API; every request is signed with the caller's on-chain key.

    client = LedgerHttpClient(base_url="http://127.0.0.1:8000", private_key=key_bytes)
    verdict = client.verify_file(Path("invoice.pdf"))

Errors come back as :class:`ApiProblem` carrying the server's stable problem ``code``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from ledger_api.api.auth import sign_request
from ledger_api.errors import LedgerError

__all__ = ["ApiProblem", "LedgerHttpClient"]

_CHUNK = 1024 * 1024


class ApiProblem(LedgerError):
    """The service answered with an RFC 9457 problem (or an unexpected status)."""

    code = "api-problem"

    def __init__(self, *, status: int, problem_code: str, title: str, detail: str = "", body: Any = None) -> None:
        self.status = status
        self.problem_code = problem_code
        self.body = body
        super().__init__(f"HTTP {status} {problem_code}: {title}" + (f" — {detail}" if detail else ""))

    def diagnostics(self) -> str:
        return f"{self}\nSee docs/api.md for what `{self.problem_code}` means."


class LedgerHttpClient:
    """A signed-request client for one caller (an agency key or a trader account)."""

    def __init__(
        self, *, base_url: str, private_key: bytes, timeout: float = 30.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self._base = base_url.rstrip("/")
        self._key = private_key
        self._http = httpx.Client(timeout=timeout, transport=transport)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> LedgerHttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def health(self) -> dict[str, Any]:
        """``GET /health`` (unsigned); returns the report even when the service says it is down."""
        response = self._http.get(f"{self._base}/health")
        if response.status_code not in (200, 503):
            raise self._problem(response)
        result: dict[str, Any] = response.json()
        return result

    def verify_hash(self, sha256: str) -> dict[str, Any]:
        """``GET /v1/verify/{sha256}``: the verdict for a document hashed by the caller."""
        return self._json("GET", f"/v1/verify/{sha256}")

    def verify_file(self, path: Path) -> dict[str, Any]:
        """``POST /v1/verify`` with the file's bytes, streamed twice (hash, then upload), never held whole."""
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(chunk)

        def chunks() -> Iterator[bytes]:
            with path.open("rb") as handle:
                yield from iter(lambda: handle.read(_CHUNK), b"")

        headers = {"content-type": "application/octet-stream"}
        return self._json("POST", "/v1/verify", headers=headers, content=chunks(), content_sha256=digest.digest())

    def _json(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, content: Any = None,
        body: bytes = b"", content_sha256: bytes | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        url = self._base + path
        fields = dict(headers or {})
        fields |= sign_request(
            method=method, url=url, headers=fields, body=body, private_key=self._key, content_sha256=content_sha256
        )
        response = self._http.request(method, url, headers=fields, content=content if content is not None else body)
        if response.status_code >= 400:
            raise self._problem(response)
        result: dict[str, Any] = response.json()
        return result

    @staticmethod
    def _problem(response: httpx.Response) -> ApiProblem:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and "code" in body:
            return ApiProblem(
                status=response.status_code, problem_code=str(body["code"]), title=str(body.get("title", "")),
                detail=str(body.get("detail", "")), body=body,
            )  # fmt: skip
        return ApiProblem(status=response.status_code, problem_code=f"http-{response.status_code}", title="unexpected")
