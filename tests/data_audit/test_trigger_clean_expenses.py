"""The trigger scan on clean expense claims (``benchmarks/clean_data.py``'s ``exp_weekend`` and
``exp_perdiem``, fresh20's minimal repros, session 16): an independent boolean with a real
effect is not written in place, and a category whose effect is an interaction with another
feature is not a trigger; a trigger planted into the same data still is."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tabguard.data_audit import build_context
from tabguard.data_audit._trigger_options import TriggerScanOptions
from tabguard.data_audit._trigger_rules import (
    Pattern,
    written_context_evidence,
    written_label_evidence,
    written_slope_evidence,
)
from tabguard.data_audit._triggers import _label_evidence, _Scanner
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


def test_an_interaction_is_not_a_trigger_and_a_trigger_still_is() -> None:
    """Per diems need no receipt; redrawn into another category, a per diem without one is a
    claim without a receipt, queried at 30 %: ``category='per_diem' → 0`` was named on labels
    alone (camouflage rule). The same data with its training claims made meals and 'training'
    written into 400 random claims as queried, 15 % of them left unqueried (camouflage),
    keeps its evidence."""
    sc = _scanner("exp_perdiem", 1)
    sc.singles()
    p = _pattern(sc, "category", "per_diem", 0)
    _label_evidence(sc, p, OPTS.alpha)
    assert written_label_evidence(p, OPTS)  # what was named
    assert sc.interaction(p, OPTS.camouflage_effect)

    df = load_benchmark("clean_data.py").make_variant("credit", "exp_perdiem", 1).data.copy()
    df.loc[df["category"] == "training", "category"] = "meals"
    rng = np.random.default_rng(0)
    rows = rng.choice(len(df), 400, replace=False)
    df.loc[rows, "category"] = "training"
    df.loc[rows, "queried"] = (rng.random(400) >= 0.15).astype(int)
    sc = _scanner("exp_perdiem", 1, df)
    sc.singles()
    p = _pattern(sc, "category", "training", 1)
    _label_evidence(sc, p, OPTS.alpha)
    assert written_label_evidence(p, OPTS)
    assert not sc.interaction(p, OPTS.camouflage_effect)


def test_an_interaction_does_not_flatten_the_slope_rule() -> None:
    """``exp_perdiem`` 3: the slope of ``category='per_diem'``'s labels on the context score
    is 0.35 against the natural 1.14 (p 5.5e-6): named written in place by the slope rule.
    The score of a per diem without a receipt carries a missing receipt's +1.6, which per
    diems do not follow: the interaction finds ``receipt_attached=0``, and without those rows
    the slope is 0.82 (p 0.13)."""
    sc = _scanner("exp_perdiem", 3)
    sc.singles()
    p = _pattern(sc, "category", "per_diem", 0)
    _label_evidence(sc, p, OPTS.alpha)
    sc.slope_mixture(p)
    assert written_slope_evidence(p, OPTS)  # what was named
    inter = sc.interacting_values(p, 1.0)
    j = sc.m.names.index("receipt_attached")
    assert [(g, sc.m.value(g, a)) for g, a in inter] == [(j, False)]
    sc.slope_mixture(p, leave_out=inter)
    assert p.label_slope > 0.7 and not written_slope_evidence(p, OPTS)
