"""Table exchange API."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/exchange/sync-jobs", tags=["exchange"])
