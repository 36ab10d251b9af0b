"""Frozen domain values shared across packages (API, chain, oracles)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Identity"]


@dataclass(frozen=True, kw_only=True)
class Identity:
    """An authenticated caller: an agency signer key, a trader account or a governor key."""

    address: str  # checksummed address (the request signature's keyid)
    kind: Literal["agency", "trader", "governor"]
    agency_id: str | None = None  # for agency keys
    roles: frozenset[str] = field(default_factory=frozenset)  # Role names, for agency keys
    aeo: bool = False  # for traders: Authorised Economic Operator

    def has_role(self, role: str) -> bool:
        """True for an agency key whose agency holds ``role`` (e.g. ``"CUSTOMS_AUTHORITY"``)."""
        return self.kind == "agency" and role in self.roles
