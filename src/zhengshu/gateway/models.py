"""Gateway tables: services, apps, credentials, call log."""

from __future__ import annotations
