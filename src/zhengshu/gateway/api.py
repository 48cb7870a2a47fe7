"""Control-plane API of the gateway: services, apps and credentials, call logs."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/gateway", tags=["gateway"])
