"""The value-pair label counts shared by the trigger scan and the Spark engine."""

from __future__ import annotations

import numpy as np

from tabguard._pair_counts import PairCounter, pair_tensor


def test_pair_counter_gives_pair_tensors_value_pairs() -> None:
    """Dense features (pair values on most rows) and a fine-grained one (on few rows, counted
    on those only) give the counts of :func:`pair_tensor` without the other-value slots."""
    rng = np.random.default_rng(0)
    n = 2000
    sizes = [3, 4, 5]
    small = np.empty((n, 3), dtype=np.int32, order="F")
    small[:, 0] = rng.integers(0, 3, n)  # every row holds a pair value
    small[:, 1] = rng.integers(-1, 4, n)  # a fifth of the rows hold another value
    small[:, 2] = np.where(rng.random(n) < 0.1, rng.integers(0, 5, n), -1)  # fine-grained
    y = rng.integers(0, 2, n).astype(np.int8)
    count = PairCounter(small, y, sizes)
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        ka, kb = sizes[a], sizes[b]
        full = pair_tensor(small[:, a], small[:, b], y, ka, kb)
        want = full.reshape(ka + 1, kb + 1, 2)[1:, 1:].reshape(ka * kb, 2)
        got = count(a, b)
        np.testing.assert_array_equal(got, want)
        assert got.sum() == ((small[:, a] >= 0) & (small[:, b] >= 0)).sum()
