"""Open-data API (public; registered users by API key)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1/open", tags=["opendata"])
