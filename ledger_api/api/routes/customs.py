"""Customs authority: accept, decide, approve decisions, its jurisdiction's declarations."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(prefix="/v1/customs", tags=["customs"])
