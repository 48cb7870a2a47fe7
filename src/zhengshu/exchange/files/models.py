"""File exchange tables: packages, files, recipients, receipts, ferry bundles, node keys."""

from __future__ import annotations
