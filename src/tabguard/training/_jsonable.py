"""JSON helpers for model.json (kept here so loading a model never imports the report stack)."""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

import numpy as np


def jsonable(v: Any) -> Any:
    """numpy/pandas scalars and containers to plain JSON values (non-finite floats → None)."""
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple | set):
        return [jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return [jsonable(x) for x in v.tolist()]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if v is None or isinstance(v, bool | int | float | str):
        return v
    return str(v)


def utc_now() -> str:
    """Current UTC time in ISO 8601 (seconds)."""
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()
