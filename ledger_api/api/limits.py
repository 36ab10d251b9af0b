"""Request size limits enforced before a body is read (ASGI middleware)."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger_api.api.problems import PROBLEM_MEDIA_TYPE, Problem

__all__ = ["BodySizeLimit"]


class _TooLarge(BaseException):
    """Raised inside the app's receive; a BaseException so body parsers that turn any ``Exception``
    into a 400 let it through to this middleware."""


class BodySizeLimit:
    """Refuse request bodies over ``max_bytes`` with 413 problem+json.

    A declared ``Content-Length`` over the limit is refused before any byte is read; a chunked body
    is counted as it streams and cut off the moment it passes the limit, so an oversized upload is
    never buffered whole.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        problem = Problem(
            status=413,
            code="request-too-large",
            title="Request body too large",
            detail=f"request bodies are limited to {self.max_bytes} bytes",
            extensions={"limit": self.max_bytes},
        )
        body = json.dumps(problem.body()).encode()
        headers: list[Any] = [
            (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
