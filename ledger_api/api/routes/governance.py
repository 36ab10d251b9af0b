"""Governance: propose, approve and execute membership changes."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(prefix="/v1/governance", tags=["governance"])
