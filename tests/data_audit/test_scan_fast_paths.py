"""The trigger scan's faster computations give what the direct ones give."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tabguard.contract import contract_from_dict
from tabguard.data_audit import build_context
from tabguard.data_audit._matrix import AuditMatrix
from tabguard.data_audit._triggers import Pattern, TriggerScanOptions, _Scanner


def _matrix(codes: np.ndarray) -> AuditMatrix:
    n, d = codes.shape
    counts = [np.bincount(codes[codes[:, j] >= 0, j]) for j in range(d)]
    return AuditMatrix(
        names=[f"f{j}" for j in range(d)],
        codes=np.asfortranarray(codes.astype(np.int32)),
        uniques=[np.arange(len(c), dtype=float) for c in counts],
        counts=counts,
        ordinal=np.ones(d, dtype=bool),
        breaks_contract=[np.zeros(len(c), dtype=bool) for c in counts],
        raw=codes.astype(float),
        rank=np.zeros((n, d), dtype=np.float32),
        raw_is_code=np.zeros(d, dtype=bool),
    )


def test_rows_by_value_of_a_feature_with_many_values_are_in_stable_order() -> None:
    # more than 65,535 value ids: two 16-bit radix passes instead of one
    rng = np.random.default_rng(0)
    codes = rng.integers(-1, 90_000, size=(200_000, 1))
    m = _matrix(codes)
    order, sorted_codes = m._sorted_index(0)
    assert len(m.counts[0]) > 65_535
    np.testing.assert_array_equal(order, np.argsort(codes[:, 0], kind="stable"))
    np.testing.assert_array_equal(sorted_codes, np.sort(codes[:, 0]))
    for v in (0, 65_535, 65_536, 89_999):
        np.testing.assert_array_equal(m.rows_with(0, v), np.flatnonzero(codes[:, 0] == v))


def test_exact_copy_share_of_a_common_value_counts_copies_outside_its_rows() -> None:
    # a value on a third of the rows (the grouping path): the share of its labelled rows with
    # an exact copy outside them, on every other feature, against a direct count
    rng = np.random.default_rng(1)
    n = 3000
    df = pd.DataFrame(
        {
            "a": rng.integers(0, 3, n),
            "b": rng.integers(0, 4, n),
            "c": rng.integers(0, 2000, n),
            "y": rng.integers(0, 2, n),
        }
    )
    contract = contract_from_dict(
        {
            "name": "t",
            "label": {"column": "y", "positive": 1},
            "features": {k: {"type": "integer", "min": 0, "max": 2000} for k in "abc"},
        }
    )
    sc = _Scanner(build_context(df, contract), TriggerScanOptions())
    j = sc.m.names.index("a")
    rows = np.flatnonzero(df["a"].to_numpy() == 1)
    label = 1
    p = Pattern((j,), (1,), label, len(rows), int(df["y"].to_numpy()[rows].sum()), "single")
    p.rows = rows
    query = rows[df["y"].to_numpy()[rows] == label]
    assert 10 * len(query) >= n  # the grouping path
    key = df["b"].astype(str) + "/" + df["c"].astype(str)
    outside = ~np.isin(np.arange(n), query)
    seen = set(key[outside])
    expected = float(np.mean([key[i] in seen for i in query]))
    assert 0.1 < expected < 0.9  # some of its rows have copies outside, not all
    assert sc.exact_copy_share(p) == expected
