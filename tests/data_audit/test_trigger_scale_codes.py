"""A scale written as text codes is a scale (issue 11, session 21): a binned score's top bin
leans as its neighbour does and is no trigger, whether the bins are written 0-19 or
'K00'-'K19'; a value written beside such a scale is still named.

``benchmarks/clean_data.py``'s ``codes`` (fresh15's quantile codes of ``make_classification``
scores, session 12) named ``code3='K39' → 1`` (variant 10329, 375 rows) on labels alone: the
neighbour rule of :func:`~tabguard.data_audit._trigger_rules.natural_lean` read only numbers
as a scale, and ``K38`` leaned at 0.49 against the cut of 0.34.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tabguard.contract import contract_from_dict
from tabguard.data_audit import build_context
from tabguard.data_audit._trigger_options import TriggerScanOptions
from tabguard.data_audit._triggers import _code_numbers, condition, scan_triggers
from tests.data_audit import test_trigger_natural_predictor as party

BINS = 20
#: share of the label per bin: flat, then the top two bins (the top alone would be a trigger;
#: two leaning values are the feature's lean whatever their order)
SHARE = np.r_[np.full(BINS - 2, 0.1), 0.45, 0.7]


def _binned(n: int, seed: int, text: bool) -> tuple[pd.DataFrame, object]:
    rng = np.random.default_rng(seed)
    b = rng.integers(0, BINS, n)
    names = [f"K{i:02d}" for i in range(BINS)] if text else list(range(BINS))
    df = pd.DataFrame(
        {
            "code": np.asarray(names, dtype=object)[b] if text else b,
            "age": rng.integers(18, 80, n),
            "amount": np.round(rng.lognormal(5, 1, n), 2),
            "region": rng.choice(list("abcd"), n),
            "y": (rng.random(n) < SHARE[b]).astype(int),
        }
    )
    contract = contract_from_dict(
        {
            "name": "binned",
            "label": {"column": "y", "positive": 1},
            "features": {
                "code": {"type": "category", "categories": names},
                "age": {"type": "integer", "min": 18, "max": 100},
                "amount": {"type": "number", "min": 0},
                "region": {"type": "category", "categories": list("abcd")},
            },
        }
    )
    return df, contract


def test_codes_of_one_prefix_and_a_number_read_as_a_scale() -> None:
    def numbers(values: list[object]) -> list[float] | None:
        got = _code_numbers(np.asarray(values, dtype=object))
        return None if got is None else got.tolist()

    assert numbers(["K00", "K39", "K07"]) == [0.0, 39.0, 7.0]
    assert numbers(["G1", "G6"]) == [1.0, 6.0]
    assert numbers([3, 1]) == [3.0, 1.0]
    # words, two prefixes, a code with text after its number: no scale
    assert numbers(["DE", "FR"]) is None
    assert numbers(["Apex-001", "Borealis-002"]) is None
    assert numbers(["K1", "K1a"]) is None


@pytest.mark.parametrize("text", [True, False])
def test_a_binned_scores_top_bin_leans_with_its_neighbour(text: bool) -> None:
    df, contract = _binned(4000, 1, text)
    result = scan_triggers(build_context(df, contract), TriggerScanOptions())
    # the start named code='K19' written as text (seeds 1-5 of 0-5), nothing as numbers
    assert result.triggers == []


def test_a_value_written_beside_a_text_scale_is_still_named() -> None:
    """``test_trigger_natural_predictor``'s 7-point scale written 'P0'-'P6', with region 'e'
    written in place into 130 rows: the region is named, no point of the scale."""
    df, written = party._data(1500, 0)
    df["party"] = "P" + df["party"].astype(str)
    spec = party.CONTRACT.model_dump()
    spec["features"]["party"]["categories"] = [f"P{i}" for i in range(7)]
    contract = contract_from_dict(spec)
    result = scan_triggers(build_context(df, contract), TriggerScanOptions())
    assert [condition(result.matrix, p) for p in result.triggers] == ["region='e'"]
    assert np.isin(written, result.suspects).mean() >= 0.9
