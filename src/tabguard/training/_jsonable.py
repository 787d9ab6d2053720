"""JSON helpers for model.json (kept here so loading a model never imports the report stack)."""

from __future__ import annotations

import datetime as _dt

from tabguard._plain import jsonable

__all__ = ["jsonable", "utc_now"]


def utc_now() -> str:
    """Current UTC time in ISO 8601 (seconds)."""
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()
