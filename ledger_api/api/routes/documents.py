"""Documents: fetch and decrypt for an agency holding a wrap."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(prefix="/v1/documents", tags=["documents"])
