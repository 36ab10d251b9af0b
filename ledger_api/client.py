"""Typed Python client of the HTTP API; every request is signed with the caller's on-chain key.

    client = LedgerHttpClient(base_url="http://127.0.0.1:8000", private_key=key_bytes)
    verdict = client.verify_file(Path("invoice.pdf"))

Errors come back as :class:`ApiProblem` carrying the server's stable problem ``code``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator, Sequence
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
        self, *, base_url: str, private_key: bytes | None = None, token: str | None = None, timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:  # fmt: skip
        """Sign every request with ``private_key`` (RFC 9421), or present an API ``token`` instead."""
        if (private_key is None) == (token is None):
            raise ValueError("give exactly one of private_key and token")
        self._base = base_url.rstrip("/")
        self._key = private_key
        self._token = token
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

    # ------------------------------------------------------------------ declarations (traders)

    def submit_declaration(
        self, declaration: dict[str, Any], documents: Sequence[tuple[int, str, bytes]] = (), *,
        share_with: Sequence[str] = (), idempotency_key: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """``POST /v1/declarations``: the declaration JSON and (type, filename, bytes) documents → 202 body."""
        return self._multipart("/v1/declarations", declaration, documents, share_with, idempotency_key)

    def amend_declaration(
        self, declaration_id: str, declaration: dict[str, Any], documents: Sequence[tuple[int, str, bytes]] = (), *,
        share_with: Sequence[str] = (), idempotency_key: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """``POST /v1/declarations/{id}/amendments``: a new version superseding ``declaration_id``."""
        path = f"/v1/declarations/{declaration_id}/amendments"
        return self._multipart(path, declaration, documents, share_with, idempotency_key)

    def declarations(self) -> list[dict[str, Any]]:
        """``GET /v1/declarations``: the calling trader's own declaration versions."""
        result: list[dict[str, Any]] = self._request("GET", "/v1/declarations")
        return result

    def my_declarations(self, *, limit: int = 50, after: str | None = None) -> dict[str, Any]:
        """``GET /v1/declarations/mine``: one page of the calling trader's declarations (``items``, ``next_after``)."""
        query = httpx.QueryParams({k: v for k, v in {"limit": limit, "after": after}.items() if v})
        return self._json("GET", f"/v1/declarations/mine?{query}")

    def whoami(self) -> dict[str, Any]:
        """``GET /v1/me``: the identity this client's key or token resolves to."""
        return self._json("GET", "/v1/me")

    def audit_report(self) -> dict[str, Any]:
        """``GET /v1/audit/report`` (auditors): the latest replay report and when it was written."""
        return self._json("GET", "/v1/audit/report")

    def verify_cid(self, cid: str) -> dict[str, Any]:
        """``GET /v1/verify/cid/{cid}``: the verdict for the document whose stored copy has this CID."""
        return self._json("GET", f"/v1/verify/cid/{cid}")

    def declaration(self, declaration_id: str) -> dict[str, Any]:
        """``GET /v1/declarations/{id}``."""
        return self._json("GET", f"/v1/declarations/{declaration_id}")

    def timeline(self, declaration_id: str) -> list[dict[str, Any]]:
        """``GET /v1/declarations/{id}/timeline``."""
        result: list[dict[str, Any]] = self._request("GET", f"/v1/declarations/{declaration_id}/timeline")
        return result

    def submission(self, tracking_id: str) -> dict[str, Any]:
        """``GET /v1/submissions/{tracking_id}``: where one of the caller's writes is."""
        return self._json("GET", f"/v1/submissions/{tracking_id}")

    def wait_settled(self, tracking_id: str, *, timeout: float = 30.0, poll: float = 0.05) -> dict[str, Any]:
        """Poll :meth:`submission` until it is ``final`` or ``failed`` (or raise ``TimeoutError``)."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.submission(tracking_id)
            if status["status"] != "pending":
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"submission {tracking_id} still {status['state']} after {timeout} s")
            time.sleep(poll)

    def post_json(self, path: str, payload: Any, *, idempotency_key: str | None = None) -> Any:
        """A signed JSON ``POST`` to ``path`` (the write routes of agencies)."""
        headers = {"content-type": "application/json"}
        if idempotency_key is not None:
            headers["idempotency-key"] = idempotency_key
        return self._request("POST", path, headers=headers, body=json.dumps(payload).encode())

    def get_json(self, path: str) -> Any:
        """A signed ``GET`` of ``path`` returning its JSON body."""
        return self._request("GET", path)

    def _multipart(
        self, path: str, declaration: dict[str, Any], documents: Sequence[tuple[int, str, bytes]],
        share_with: Sequence[str], idempotency_key: str | None,
    ) -> dict[str, Any]:  # fmt: skip
        files = [("declaration", ("declaration.json", json.dumps(declaration).encode(), "application/json"))]
        files += [("documents", (name, content, "application/octet-stream")) for _, name, content in documents]
        data = {"document_types": [str(kind) for kind, _, _ in documents], "share_with": list(share_with)}
        encoded = httpx.Request("POST", self._base + path, files=files, data=data)
        headers = {"content-type": encoded.headers["content-type"]}
        if idempotency_key is not None:
            headers["idempotency-key"] = idempotency_key
        return self._json("POST", path, headers=headers, body=encoded.read())

    def _json(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, content: Any = None,
        body: bytes = b"", content_sha256: bytes | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        result: dict[str, Any] = self._request(
            method, path, headers=headers, content=content, body=body, content_sha256=content_sha256
        )
        return result

    def _request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, content: Any = None,
        body: bytes = b"", content_sha256: bytes | None = None, raw: bool = False,
    ) -> Any:  # fmt: skip
        url = self._base + path
        fields = dict(headers or {})
        if self._key is not None:
            fields |= sign_request(
                method=method, url=url, headers=fields, body=body, private_key=self._key, content_sha256=content_sha256
            )
        else:
            fields["authorization"] = f"Bearer {self._token}"
            if body or content_sha256 is not None or method in ("POST", "PUT", "PATCH"):
                digest = content_sha256 if content_sha256 is not None else hashlib.sha256(body).digest()
                fields["content-digest"] = f"sha-256=:{base64.b64encode(digest).decode()}:"
        response = self._http.request(method, url, headers=fields, content=content if content is not None else body)
        if response.status_code >= 400:
            raise self._problem(response)
        if raw:
            return response.content
        return response.json()

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

    # ------------------------------------------------------------------ stamps (inspection agencies)

    def post_form(
        self, path: str, *, data: dict[str, str | list[str]] | None = None,
        files: Sequence[tuple[str, tuple[str, bytes, str]]] = (), idempotency_key: str | None = None,
    ) -> Any:  # fmt: skip
        """A signed ``multipart/form-data`` ``POST``: text ``data`` fields and ``(field, (filename, bytes,
        content type))`` files (without files httpx sends ``application/x-www-form-urlencoded``)."""
        encoded = httpx.Request("POST", self._base + path, data=data or {}, files=list(files))
        headers = {"content-type": encoded.headers["content-type"]}
        if idempotency_key is not None:
            headers["idempotency-key"] = idempotency_key
        return self._request("POST", path, headers=headers, body=encoded.read())

    def record_stamp(
        self, declaration_id: str, *, stamp_type: str, result: str, report: bytes, filename: str = "report.pdf",
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """``POST /v1/stamps``: stamp ``declaration_id`` (``stamp_type`` / ``result`` by name) with its report → 202."""
        result_body: dict[str, Any] = self.post_form(
            "/v1/stamps", data={"declaration_id": declaration_id, "stamp_type": stamp_type, "result": result},
            files=[("report", (filename, report, "application/octet-stream"))], idempotency_key=idempotency_key,
        )  # fmt: skip
        return result_body

    # ------------------------------------------------------------------ customs authorities

    def accept_declaration(
        self, declaration_id: str, mrn: str, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """``POST /v1/declarations/{id}/acceptance`` with the MRN → 202 tracking body."""
        path = f"/v1/declarations/{declaration_id}/acceptance"
        result: dict[str, Any] = self.post_json(path, {"mrn": mrn}, idempotency_key=idempotency_key)
        return result

    def decide(
        self, declaration_id: str, kind: str, *, reason_code: int = 0, report_sha256: str | None = None,
        pass_stamps: Sequence[str] = (), idempotency_key: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """``POST /v1/declarations/{id}/decisions``: RELEASE / HOLD / REJECT / SEIZE → 202 tracking body."""
        payload: dict[str, Any] = {"kind": kind, "reason_code": reason_code, "pass_stamps": list(pass_stamps)}
        if report_sha256 is not None:
            payload["report_sha256"] = report_sha256
        path = f"/v1/declarations/{declaration_id}/decisions"
        result: dict[str, Any] = self.post_json(path, payload, idempotency_key=idempotency_key)
        return result

    def approve_decision(self, declaration_id: str, *, pass_stamps: Sequence[str] = ()) -> dict[str, Any]:
        """``POST /v1/declarations/{id}/decisions/pending/approvals`` (second signer of a dual-control decision)."""
        path = f"/v1/declarations/{declaration_id}/decisions/pending/approvals"
        result: dict[str, Any] = self.post_json(path, {"pass_stamps": list(pass_stamps)})
        return result

    def cancel_decision(self, declaration_id: str) -> dict[str, Any]:
        """``POST /v1/declarations/{id}/decisions/pending/cancellation``."""
        path = f"/v1/declarations/{declaration_id}/decisions/pending/cancellation"
        result: dict[str, Any] = self._request("POST", path)
        return result

    def customs_declarations(
        self, *, status: str | None = None, limit: int = 100, after: str | None = None
    ) -> dict[str, Any]:
        """``GET /v1/customs/declarations``: one page of the caller's jurisdiction (``items``, ``next_after``)."""
        query = httpx.QueryParams({k: v for k, v in {"status": status, "limit": limit, "after": after}.items() if v})
        result: dict[str, Any] = self._request("GET", f"/v1/customs/declarations?{query}")
        return result

    # ------------------------------------------------------------------ documents (agencies)

    def fetch_document(self, sha256: str) -> bytes:
        """``GET /v1/documents/{sha256}``: the decrypted document (the caller's agency must hold a wrap)."""
        content: bytes = self._request("GET", f"/v1/documents/{sha256}", raw=True)
        return content

    def document_access(self, sha256: str) -> dict[str, Any]:
        """``GET /v1/documents/{sha256}/access``: which agencies hold a key wrap."""
        return self._json("GET", f"/v1/documents/{sha256}/access")

    def grant_access(self, sha256: str, agency_id: str) -> dict[str, Any]:
        """``POST /v1/documents/{sha256}/grants``: wrap the document key for another agency."""
        result: dict[str, Any] = self.post_json(f"/v1/documents/{sha256}/grants", {"agency_id": agency_id})
        return result

    def revoke_access(self, sha256: str, agency_id: str) -> dict[str, Any]:
        """``DELETE /v1/documents/{sha256}/grants/{agency_id}``."""
        return self._json("DELETE", f"/v1/documents/{sha256}/grants/{agency_id}")

    # ------------------------------------------------------------------ governance (governors)

    def propose(self, action: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/governance/proposals`` with one typed membership action (``{"action": …, …}``)."""
        result: dict[str, Any] = self.post_json("/v1/governance/proposals", action)
        return result

    def approve_proposal(self, proposal_id: int) -> dict[str, Any]:
        """``POST /v1/governance/proposals/{id}/approvals``."""
        return self._json("POST", f"/v1/governance/proposals/{proposal_id}/approvals")

    def execute_proposal(self, proposal_id: int) -> dict[str, Any]:
        """``POST /v1/governance/proposals/{id}/execution``."""
        return self._json("POST", f"/v1/governance/proposals/{proposal_id}/execution")

    def proposal(self, proposal_id: int) -> dict[str, Any]:
        """``GET /v1/governance/proposals/{id}``."""
        return self._json("GET", f"/v1/governance/proposals/{proposal_id}")

    # ------------------------------------------------------------------ API tokens

    def mint_token(self, *, ttl_seconds: int = 24 * 3600) -> dict[str, Any]:
        """``POST /v1/tokens`` (signed clients only): a bearer token bound to this identity, shown once."""
        result: dict[str, Any] = self.post_json("/v1/tokens", {"ttl_seconds": ttl_seconds})
        return result

    def tokens(self) -> list[dict[str, Any]]:
        """``GET /v1/tokens``: this identity's tokens, without secrets."""
        result: list[dict[str, Any]] = self._request("GET", "/v1/tokens")
        return result

    def revoke_token(self, token_id: str) -> None:
        """``DELETE /v1/tokens/{token_id}``."""
        self._request("DELETE", f"/v1/tokens/{token_id}", raw=True)
