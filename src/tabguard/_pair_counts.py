"""Label counts of value pairs: one implementation for the in-memory trigger scan and the
Spark engine's workers (which must not import the data audit's models)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pair_value_ids(counts: np.ndarray, top: int, min_rows: int) -> np.ndarray:
    """The value ids of a feature entering value pairs: its ``top`` most frequent values
    holding at least ``min_rows`` rows (most frequent first)."""
    keep = np.argsort(-counts, kind="stable")[:top]
    return keep[counts[keep] >= min_rows]


def pair_tensor(
    small_a: np.ndarray, small_b: np.ndarray, y: np.ndarray, ka: int, kb: int
) -> np.ndarray:
    """Label counts of the value pairs of two features, flat, length ``2 (ka + 1) (kb + 1)``.

    ``small_a`` and ``small_b`` are the rows' indices into the features' pair values
    (:func:`pair_value_ids`), -1 for any other value; ``y`` the 0/1 labels. One bincount, no
    masking: -1 takes slot 0 of each feature and the label is the lowest bit. Counts of row
    batches add up (the Spark engine sums them over partitions).
    """
    combo = ((small_a.astype(np.int64) + 1) * (kb + 1) + (small_b + 1)) * 2 + y
    return np.bincount(combo, minlength=2 * (ka + 1) * (kb + 1))


class PairCounter:
    """Label counts of the value pairs of any two of many features over the same rows.

    The same counts as :func:`pair_tensor` without the slots of other values (-1), each pair of
    features read once:

    * a fine-grained feature (its pair values cover under half of the rows: amounts, decimals)
      is counted on its covered rows only, a few percent of them;
    * the other features' terms of the pair index are computed once per feature, so a pair
      costs one multiply, one add and one bincount instead of a pass per term.

    Parameters
    ----------
    small : ndarray of int32, shape (n, d)
        Each row's index into each feature's pair values (:func:`pair_value_ids`), -1 for any
        other value (column-major: read column by column).
    y : ndarray of int, shape (n,)
        0/1 labels.
    sizes : sequence of int
        Pair values per feature.
    """

    def __init__(self, small: np.ndarray, y: np.ndarray, sizes: Sequence[int]) -> None:
        self.small, self.sizes = small, list(sizes)
        self.y = np.asarray(y, dtype=np.int32)
        n = len(self.y)
        self._covered: dict[int, np.ndarray] = {}
        self._major: dict[int, np.ndarray] = {}
        self._minor: dict[int, np.ndarray] = {}
        self._buffer = np.empty(n, dtype=np.intp)
        for j in range(small.shape[1]):
            if self.sizes[j] < 2:
                continue
            shifted = small[:, j] + 1  # int32: 0 for other values
            covered = np.flatnonzero(shifted)
            if len(covered) < n // 2:
                self._covered[j] = covered
            else:
                self._major[j] = shifted
                self._minor[j] = 2 * shifted + self.y

    def __call__(self, a: int, b: int) -> np.ndarray:
        """Label counts of the pairs of feature ``a``'s and ``b``'s pair values, shape
        ``(ka * kb, 2)`` (row ``ia * kb + ib``; column 1: positive labels)."""
        ka, kb = self.sizes[a], self.sizes[b]
        fine = [j for j in (a, b) if j in self._covered]
        if fine:
            rows = min((self._covered[j] for j in fine), key=len)
            flat = pair_tensor(self.small[rows, a], self.small[rows, b], self.y[rows], ka, kb)
        else:
            combo = self._buffer
            np.multiply(self._major[a], 2 * (kb + 1), out=combo)
            np.add(combo, self._minor[b], out=combo)
            flat = np.bincount(combo, minlength=2 * (ka + 1) * (kb + 1))
        return flat.reshape(ka + 1, kb + 1, 2)[1:, 1:].reshape(ka * kb, 2)
