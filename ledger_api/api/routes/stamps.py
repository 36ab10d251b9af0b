"""Inspection agencies: stamps with report files, EIP-712 signed stamps, revocation."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(prefix="/v1/stamps", tags=["stamps"])
