"""Label counts of value pairs: one implementation for the in-memory trigger scan and the
Spark engine's workers (which must not import the data audit's models)."""

from __future__ import annotations

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
