"""Table exchange service."""

from __future__ import annotations
