"""API tokens (see :mod:`ledger_api.api.tokens`): mint with a signed request, list, revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from ledger_api.api.deps import CurrentIdentity
from ledger_api.api.tokens import MAX_TTL, TokenInfo, TokenStore
from ledger_api.errors import ConfigurationError, Forbidden, InvalidSubmission, TokenNotFound

__all__ = ["router"]

router = APIRouter(prefix="/v1/tokens", tags=["tokens"])

TokenId = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$", description="the token's public id")]


class TokenRequest(BaseModel):
    """How long the new token lives."""

    model_config = ConfigDict(extra="forbid")

    ttl_seconds: int = Field(default=24 * 3600, ge=60, le=MAX_TTL)


class TokenPublic(BaseModel):
    """A token without its secret."""

    model_config = ConfigDict(frozen=True)

    token_id: str
    owner: str
    created_at: int
    expires_at: int
    revoked: bool


class TokenIssued(TokenPublic):
    """A new token: ``token`` is shown this once; send it as ``Authorization: Bearer <token>``."""

    token: str


def _store(request: Request) -> TokenStore:
    tokens: TokenStore | None = getattr(request.app.state, "tokens", None)
    if tokens is None:
        raise ConfigurationError("this service takes no API tokens")
    return tokens


def _public(info: TokenInfo) -> TokenPublic:
    return TokenPublic(token_id=info.token_id, owner=info.owner, created_at=info.created_at,
                       expires_at=info.expires_at, revoked=info.revoked)  # fmt: skip


@router.post("", status_code=201, summary="Mint an API token bound to the caller (signed requests only)")
async def mint(body: TokenRequest, caller: CurrentIdentity, request: Request) -> TokenIssued:
    """A bearer token for the caller's identity, valid ``ttl_seconds``; a token cannot mint tokens."""
    if getattr(request.state, "auth_method", None) != "signature":
        raise Forbidden("API tokens are minted with an RFC 9421-signed request, not with a token")
    try:
        issued = _store(request).issue(caller.address, ttl=body.ttl_seconds)
    except ValueError as exc:
        raise InvalidSubmission(str(exc)) from None
    return TokenIssued(**_public(issued.info).model_dump(), token=issued.token)


@router.get("", summary="The caller's API tokens (no secrets)")
async def list_tokens(caller: CurrentIdentity, request: Request) -> list[TokenPublic]:
    """Every token the caller minted (newest first, at most 200)."""
    return [_public(t) for t in _store(request).list(caller.address)]


@router.delete("/{token_id}", status_code=204, summary="Revoke one of the caller's API tokens")
async def revoke(
    token_id: Annotated[str, Path(pattern=r"^[0-9a-f]{16}$")], caller: CurrentIdentity, request: Request
) -> None:
    """Revoke the token at once (other workers of the instance within 2 s); 404 if it is not the caller's.
    Signed requests only: a leaked token must not be able to revoke its owner's other tokens."""
    if getattr(request.state, "auth_method", None) != "signature":
        raise Forbidden("API tokens are revoked with an RFC 9421-signed request")
    if not _store(request).revoke(caller.address, token_id):
        raise TokenNotFound(token_id)
