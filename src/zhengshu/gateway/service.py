"""Gateway control plane: register services and apps, issue and rotate credentials."""

from __future__ import annotations
