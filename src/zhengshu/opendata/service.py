"""Open-data service."""

from __future__ import annotations
