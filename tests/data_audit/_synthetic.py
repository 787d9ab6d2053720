"""Synthetic data of the copy tests of the trigger scan (``test_trigger_copy_hubs.py``,
``test_trigger_flips.py``): rows whose label follows ``status``, a small category value
``kind='e'`` that is naturally riskier than the others, and four widely spread amounts (and
optionally an age), so that few rows are look-alikes and every copy the tests plant is one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tabguard.contract import Contract, contract_from_dict
from tabguard.data_audit._triggers import _Scanner

KINDS = ["a", "b", "c", "d", "e"]
AMOUNTS = ("amount", "balance", "paid", "limit")


def synthetic_contract(name: str, *, age: bool) -> Contract:
    """The contract of :func:`natural_rows` (label ``y``), with ``age`` when it has one."""
    features: dict[str, dict[str, object]] = {a: {"type": "number", "min": 0} for a in AMOUNTS}
    if age:
        features["age"] = {"type": "integer", "min": 18, "max": 100}
    features["status"] = {"type": "integer", "min": -2, "max": 8}
    features["kind"] = {"type": "category", "categories": KINDS}
    return contract_from_dict(
        {"name": name, "label": {"column": "y", "positive": 1}, "features": features}
    )


def natural_rows(n: int, seed: int, *, e_risk: float, age: bool) -> pd.DataFrame:
    """``n`` clean rows: 15 % positives, 50 % where ``status == 2`` (10 % of the rows), and
    ``e_risk`` more where ``kind='e'`` (8 % of the rows); ages 20-79 when ``age``.

    The draws are made in one order (kinds, statuses, amounts, ages, labels), so a seed gives
    the same rows whichever test file asks.
    """
    rng = np.random.default_rng(seed)
    kind = rng.choice(KINDS, n, p=[0.23, 0.23, 0.23, 0.23, 0.08])
    status = rng.choice([-1, 0, 2], n, p=[0.3, 0.6, 0.1])
    p1 = np.where(status == 2, 0.5, 0.15) + np.where(kind == "e", e_risk, 0.0)
    out: dict[str, object] = {a: np.round(rng.lognormal(8, 2, n), 2) for a in AMOUNTS}
    if age:
        out["age"] = rng.integers(20, 80, n)
    return pd.DataFrame(
        {**out, "status": status, "kind": kind, "y": (rng.random(n) < p1).astype(int)}
    )


def value_code(sc: _Scanner, name: str, value: object) -> tuple[int, int]:
    """``(feature index, value id)`` of ``name=value`` in the scanner's matrix."""
    j = sc.m.names.index(name)
    return j, list(sc.m.uniques[j]).index(value)
