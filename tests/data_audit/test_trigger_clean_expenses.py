"""The trigger scan on clean expense claims (``benchmarks/clean_data.py``'s ``exp_weekend`` and
``exp_perdiem``, fresh20's minimal repros, session 16): an independent boolean with a real
effect is not written in place."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tabguard.data_audit import build_context
from tabguard.data_audit._triggers import (
    Pattern,
    TriggerScanOptions,
    _label_evidence,
    _Scanner,
    written_context_evidence,
)
from tests._benchmarks import load_benchmark

OPTS = TriggerScanOptions()


def _scanner(kind: str, seed: int, df: pd.DataFrame | None = None) -> _Scanner:
    v = load_benchmark("clean_data.py").make_variant("credit", kind, seed)
    return _Scanner(build_context(v.data if df is None else df, v.contract), OPTS)


def _pattern(sc: _Scanner, feature: str, value: str, label: int) -> Pattern:
    j = sc.m.names.index(feature)
    code = int(np.flatnonzero(sc.m.uniques[j].astype(str) == value)[0])
    rows = sc.m.rows_with(j, code)
    k = int((sc.y[rows] == label).sum())
    return Pattern((j,), (code,), label, len(rows), k, "single", rows=rows)


def test_an_independent_boolean_with_an_effect_is_not_written_in_place() -> None:
    """``weekend`` (12 % of the claims, drawn independently of the row) raises the log-odds of
    a query by 0.5; its one other value measured 0.90 against weekend's rows with label 0,
    weekend=1 1.01 against weekend=0's: named written in place (p 7.6e-6, all 2,324 rows)
    before the null's own error counted."""
    sc = _scanner("exp_weekend", 1)
    sc.singles()  # the test counts
    p = _pattern(sc, "weekend", "1.0", 1)
    _label_evidence(sc, p, OPTS.alpha)
    sc.context_mixture(p)
    assert p.context_null < 0.92 and p.context_share > 1.0  # the figures named
    assert p.p_context > p.context_threshold
    assert not written_context_evidence(p, OPTS)
