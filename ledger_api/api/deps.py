"""FastAPI dependencies, as ``Annotated`` aliases routes declare (``CurrentIdentity``, …)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from ledger_api.api.auth import RequestAuthenticator
from ledger_api.api.ratelimit import RateLimiter
from ledger_api.api.tokens import TokenStore
from ledger_api.errors import AuthenticationError, ConfigurationError, Forbidden, SignatureMissing
from ledger_api.index import ReadModel
from ledger_api.models import Identity

__all__ = [
    "CurrentAgency",
    "CurrentIdentity",
    "ReadModelDep",
    "StreamingAgency",
    "authenticate",
    "authenticate_streaming",
    "read_model",
    "require_role",
    "target_uri",
]


def _rate_limited(request: Request, verify: Callable[[], Identity]) -> Identity:
    """Run ``verify`` under ``app.state.rate_limiter`` (if any): a failed authentication is counted
    against the client address (429 once it has too many), a verified caller is charged its own budget."""
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is None:
        return verify()
    try:
        identity = verify()
    except AuthenticationError:
        limiter.check_failure(request.client.host if request.client else None)
        raise
    limiter.check_caller(identity.address, request.method)
    return identity


def _bearer_token(request: Request) -> str | None:
    """The API token of a request that presents one instead of a signature (see ledger_api.api.tokens)."""
    value = request.headers.get("authorization", "")
    if value[:7].lower() != "bearer " or "signature" in request.headers:
        return None
    return value[7:].strip()


def _token_identity(request: Request, authenticator: RequestAuthenticator, token: str) -> Identity:
    tokens: TokenStore | None = getattr(request.app.state, "tokens", None)
    if tokens is None:
        raise SignatureMissing("this service takes no API tokens: sign the request (RFC 9421)")
    identity = authenticator.identity_of(tokens.owner_of(token))
    request.state.auth_method = "token"
    return identity


def _unsigned() -> Identity:
    raise SignatureMissing("the request is not signed (RFC 9421 Signature / Signature-Input) and has no API token")


def target_uri(request: Request) -> str:
    """The request's absolute URI as the client sent it (``@target-uri`` of RFC 9421).

    Starlette's ``request.url`` is rebuilt from the *decoded* path, so a path with percent-escapes
    would not match what the client signed; the raw path and query string are used instead.
    """
    raw: bytes | None = request.scope.get("raw_path")
    path = raw.decode("latin-1") if raw else request.url.path
    query: bytes = request.scope.get("query_string", b"")
    return f"{request.url.scheme}://{request.url.netloc}{path}" + (f"?{query.decode('latin-1')}" if query else "")


async def authenticate(request: Request) -> Identity:
    """Verify the request's RFC 9421 signature (or its API token) and return the caller (rate limited
    per caller).

    The body (already bounded by the size-limit middleware) is read so its Content-Digest can be
    checked; routes that stream large uploads will verify the digest while streaming instead.
    """
    authenticator: RequestAuthenticator | None = getattr(request.app.state, "authenticator", None)
    if authenticator is None:
        raise ConfigurationError("no request authenticator configured")
    token = _bearer_token(request)
    if token is not None:
        return await run_in_threadpool(_rate_limited, request, lambda: _token_identity(request, authenticator, token))
    if "signature" not in request.headers or "signature-input" not in request.headers:
        # Refused before the body is read: an unsigned request never makes the service buffer it.
        return await run_in_threadpool(_rate_limited, request, lambda: _unsigned())
    body = await request.body()
    headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.raw]
    request.state.auth_method = "signature"
    # In a worker thread: a registry lookup on a cache miss is a network call (never on the event loop).
    return await run_in_threadpool(
        _rate_limited,
        request,
        lambda: authenticator.authenticate(method=request.method, url=target_uri(request), headers=headers, body=body),
    )


CurrentIdentity = Annotated[Identity, Depends(authenticate)]


async def authenticate_streaming(request: Request) -> Identity:
    """Like :func:`authenticate` without reading the body: the signature must cover
    ``content-digest`` and the route checks the streamed body against it."""
    authenticator: RequestAuthenticator | None = getattr(request.app.state, "authenticator", None)
    if authenticator is None:
        raise ConfigurationError("no request authenticator configured")
    token = _bearer_token(request)
    if token is not None:  # the route still checks the streamed body against the Content-Digest header
        return await run_in_threadpool(_rate_limited, request, lambda: _token_identity(request, authenticator, token))
    headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.raw]
    request.state.auth_method = "signature"
    return await run_in_threadpool(
        _rate_limited,
        request,
        lambda: authenticator.authenticate(method=request.method, url=target_uri(request), headers=headers, body=None),
    )


async def _streaming_agency(identity: Annotated[Identity, Depends(authenticate_streaming)]) -> Identity:
    if identity.kind != "agency":
        raise Forbidden("this operation is for agency keys")
    return identity


StreamingAgency = Annotated[Identity, Depends(_streaming_agency)]


async def _agency(identity: CurrentIdentity) -> Identity:
    if identity.kind != "agency":
        raise Forbidden("this operation is for agency keys")
    return identity


CurrentAgency = Annotated[Identity, Depends(_agency)]


async def read_model(request: Request) -> ReadModel:
    """The service's read model (opened by the service lifespan)."""
    model: ReadModel | None = getattr(request.app.state, "read_model", None)
    if model is None:
        raise ConfigurationError("no read model configured")
    return model


ReadModelDep = Annotated[ReadModel, Depends(read_model)]


def require_role(identity: Identity, role: str) -> None:
    """Raise :class:`Forbidden` unless ``identity`` is an agency key whose agency holds ``role``."""
    if not identity.has_role(role):
        raise Forbidden(f"requires the {role} role")
