"""File exchange and ferry API."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/exchange/packages", tags=["exchange"])
