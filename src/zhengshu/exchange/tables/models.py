"""Table exchange tables: targets, sync jobs, runs, checkpoints, quarantine."""

from __future__ import annotations
