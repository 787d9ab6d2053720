"""numpy/pandas values to plain Python values (one place for the conversions many modules need).

Kept free of the report and training stacks (numpy only), so the scoring path and model loading
can use it without importing them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def plain(value: Any) -> Any:
    """A numpy scalar as the Python scalar it holds (``np.int64(2)`` -> ``2``); other values as
    they are.

    Parameters
    ----------
    value : Any
        A value read from a numpy array or a pandas column.

    Returns
    -------
    Any
        ``value.item()`` for numpy scalars, ``value`` itself otherwise.
    """
    return value.item() if isinstance(value, np.generic) else value


def jsonable(value: Any) -> Any:
    """numpy/pandas scalars and containers as plain JSON values (non-finite floats -> ``None``).

    Parameters
    ----------
    value : Any
        A scalar, a dict, a list/tuple/set or a numpy array of them.

    Returns
    -------
    Any
        ``None``, bool, int, float, str, or lists/dicts of them; other objects as their text.
    """
    if isinstance(value, dict):
        return {str(k): jsonable(x) for k, x in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(x) for x in value]
    if isinstance(value, np.ndarray):
        return [jsonable(x) for x in value.tolist()]
    value = plain(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
