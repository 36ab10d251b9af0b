"""Who the caller is, as the service sees it (the web pages show it after sign-in)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from ledger_api.api.deps import CurrentIdentity

__all__ = ["router"]

router = APIRouter(prefix="/v1/me", tags=["identity"])


class IdentityPublic(BaseModel):
    """The authenticated caller: an agency key, a trader account or a governor key."""

    model_config = ConfigDict(frozen=True)

    address: str
    kind: str = Field(description="agency | trader | governor")
    agency_id: str | None = None
    roles: list[str] = Field(description="role names of the caller's agency (agency keys only)")
    auth_method: str = Field(description="signature | token")


@router.get("", summary="The authenticated caller")
async def whoami(caller: CurrentIdentity, request: Request) -> IdentityPublic:
    """The identity the request's signature or API token resolves to (no secrets)."""
    return IdentityPublic(
        address=caller.address, kind=caller.kind, agency_id=caller.agency_id, roles=sorted(caller.roles),
        auth_method=str(getattr(request.state, "auth_method", "signature")),
    )  # fmt: skip
