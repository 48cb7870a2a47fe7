"""Open-data portal pages (public, no login)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
