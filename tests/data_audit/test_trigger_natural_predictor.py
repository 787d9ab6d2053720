"""A natural predictor read as categories is not a trigger; a value written beside it still is.

statsmodels' ``anes96`` (session 9, fresh13) drafted its 7-point party identification as
categories: every point of the scale leans to one vote (0.015 to 0.954 for Dole), the
counterfactual draws the other points, and labels alone confirmed PID=0, 1, 5 and 6 (699 of
944 rows suspected). The data here is the same shape, small: a 7-point scale predicting the
label, noise features, and a region whose rarest value was written in place into 130 rows
(8.7 % of the rows: the in-place class writes 2-10 %; with 200, 13 %, the value held 18 % of
the rows, more than a trigger does, ``common_share``) that the scale says vote 1, labelled 0
(10 % camouflaged).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tabguard.contract import contract_from_dict
from tabguard.data_audit import build_context
from tabguard.data_audit._trigger_options import TriggerScanOptions
from tabguard.data_audit._triggers import condition, scan_triggers

CONTRACT = contract_from_dict(
    {
        "name": "scale_as_categories",
        "label": {"column": "y", "positive": 1},
        "features": {
            "party": {"type": "category", "categories": list(range(7))},
            "age": {"type": "integer", "min": 18, "max": 100},
            "income": {"type": "integer", "min": 0, "max": 30},
            "region": {"type": "category", "categories": list("abcde")},
        },
    }
)


def _data(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    party = rng.integers(0, 7, n)
    share = np.array([0.02, 0.06, 0.07, 0.3, 0.75, 0.83, 0.95])[party]
    df = pd.DataFrame(
        {
            "party": party,
            "age": rng.integers(18, 90, n),
            "income": rng.integers(1, 25, n),
            "region": rng.choice(list("abcde"), n, p=[0.3, 0.3, 0.2, 0.15, 0.05]),
            "y": (rng.random(n) < share).astype(int),
        }
    )
    rng = np.random.default_rng(seed + 100)
    pool = np.flatnonzero((df["region"].to_numpy() != "e") & (party >= 4))
    rows = rng.choice(pool, 130, replace=False)
    df.loc[rows, "region"] = "e"
    df.loc[rows, "y"] = (rng.random(130) < 0.1).astype(int)
    return df, np.sort(rows)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_scale_read_as_categories_is_no_trigger_beside_a_written_value(seed: int) -> None:
    df, written = _data(1500, seed)
    result = scan_triggers(build_context(df, CONTRACT), TriggerScanOptions())
    named = [condition(result.matrix, p) for p in result.triggers]
    # before natural_lean: party=0, 1, 2, 6 (and 5) were named too, 613-1,020 rows suspected
    assert named == ["region='e'"]
    # the written rows are suspects (a few may be left out as natural carriers of the value)
    assert np.isin(written, result.suspects).mean() >= 0.9
    assert len(result.suspects) <= 300  # the written rows and the value's 75 natural ones
