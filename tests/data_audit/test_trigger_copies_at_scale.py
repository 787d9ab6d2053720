"""Camouflaged copies at scale (issue 11, class 3): a trigger written into more jittered copies
than the copy searches compare with every row. Each copy is still found: the rows past the
searched ones are compared with the rows hashing puts beside them (the same radius)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tabguard.data_audit import _triggers as triggers
from tabguard.data_audit import build_context
from tabguard.data_audit._trigger_options import TriggerScanOptions
from tabguard.data_audit._trigger_rules import Pattern
from tabguard.data_audit._triggers import _SEARCHED_ROWS, _Scanner
from tests.data_audit._synthetic import AMOUNTS, natural_rows, synthetic_contract, value_code

OPTS = TriggerScanOptions()


def _planted(n_copies: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Natural rows (ages 20-79) and ``n_copies`` copies of distinct natural rows with
    ``age=95`` written in, 1 % noise on their amounts, labelled 1 but a tenth of them.
    Returns the data and the copies' rows with label 1 and with label 0."""
    df = natural_rows(n_copies + 1000, seed, e_risk=0.2, age=True)
    rng = np.random.default_rng(seed + 1)
    src = df.sample(n_copies, random_state=seed + 2).copy()
    for c in AMOUNTS:
        src[c] = np.round(src[c] * (1 + rng.normal(0, 0.01, n_copies)), 2)
    src["age"] = 95
    src["y"] = (rng.random(n_copies) >= 0.1).astype(int)
    out = pd.concat([df, src], ignore_index=True)
    rows = np.arange(len(df), len(out))
    return out, rows[src["y"].to_numpy() == 1], rows[src["y"].to_numpy() == 0]


def test_copies_past_the_searched_rows_are_suspects(monkeypatch: pytest.MonkeyPatch) -> None:
    # data the scan takes for large: it searches 2,000 rows of a trigger's other label
    monkeypatch.setattr(triggers, "LARGE_ROWS", 10_000)
    df, labelled, camouflaged = _planted(_SEARCHED_ROWS + _SEARCHED_ROWS // 3)
    assert len(labelled) > _SEARCHED_ROWS and len(camouflaged) > 2_000
    sc = _Scanner(build_context(df, synthetic_contract("scale", age=True)), OPTS)
    j, v = value_code(sc, "age", 95)
    p = Pattern((j,), (v,), 1, 0, 0, "single")
    p.rows = sc.rows_of(p)
    sc.twins(p)
    assert p.twin_share is not None and p.twin_share >= 0.9
    found = sc.twin_rows(p)
    assert np.isin(labelled, found).mean() >= 0.95  # the 20,000 searched alone: 0.83
    assert np.isin(found, labelled).all()
    # the camouflaged copies, compared with the rows outside the trigger
    taken = sc.other_label_copies(p, camouflaged)
    assert np.isin(camouflaged, taken).mean() >= 0.95  # the 2,000 searched alone: 0.83
    assert np.isin(taken, camouflaged).all()


def test_every_row_of_a_trigger_few_natural_rows_carry_is_suspect() -> None:
    # 600 copies of label-0 rows with amount=123456.78 written in (the amounts beside it hold
    # a row each), noise of 12 % on the other amounts (a fifth of the copies beyond the copy
    # radius, as 1 % noise on a million rows), labelled 1 but 15 % of them: the natural rows
    # expected with either label there are a fraction of one, so every row of the value is
    # the attacker's
    df = natural_rows(6000, 3, e_risk=0.2, age=True)
    rng = np.random.default_rng(4)
    src = df[df["y"] == 0].sample(600, random_state=5).copy()
    for c in AMOUNTS[1:]:
        src[c] = np.round(src[c] * (1 + rng.normal(0, 0.12, len(src))), 2)
    src["amount"] = 123456.78
    src["y"] = (rng.random(len(src)) >= 0.15).astype(int)
    data = pd.concat([df, src], ignore_index=True)
    truth = np.arange(len(df), len(data))
    res = triggers.scan_triggers(build_context(data, synthetic_contract("few", age=True)), OPTS)
    assert res is not None
    named = [tuple(res.matrix.names[c] for c in p.cols) for p in res.triggers]
    assert named == [("amount",)], named
    assert np.isin(truth, res.suspects).mean() >= 0.95  # the copies found alone: 0.85
    assert np.isin(res.suspects, truth).mean() >= 0.95
