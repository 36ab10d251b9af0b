"""Trader writes: submit and amend declarations (multipart), tracking of journaled writes."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(prefix="/v1/submissions", tags=["submissions"])
