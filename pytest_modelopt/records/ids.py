"""Run ids and timestamps: a leaf with no import of its own, so that the pytest glue can
name a run (and hand its id to xdist workers) before anything else is loaded."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone


def new_run_id() -> str:
    """Sortable by time and unique across parallel CI jobs."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{secrets.token_hex(3)}"


def utcnow() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
