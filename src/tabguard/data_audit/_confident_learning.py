"""Confident learning for two labels, in numpy: cleanlab's label issues without its overhead.

:func:`binary_label_issues` returns what ``cleanlab.filter.find_label_issues(labels,
pred_probs, filter_by="prune_by_noise_rate", return_indices_ranked_by="self_confidence")``
returns for 0/1 labels (Northcutt et al., "Confident Learning", 2021), computed with the same
numpy operations in the same order, so the same rows in the same order (a test keeps the two
equal on random, tied and extreme probabilities):

1. per label ``k``, the confident threshold: the mean predicted probability of ``k`` over the
   rows labelled ``k``;
2. the confident joint: rows counted by (given label, the label whose probability reaches its
   threshold, the likelier one when both do), calibrated to the label counts and rounded
   keeping row totals;
3. prune by noise rate: of the rows labelled ``k``, the ``C[j, k]`` with the largest margin
   ``p(j) - p(k)`` are issues (at least one row of each label kept);
4. rows whose given label is (within 1e-6) the likelier one are never issues;
5. issues ranked by the probability of their given label, smallest first.

Why not call cleanlab: at a million rows it spent most of its time validating its input in
Python loops over the labels (three passes of ``isinstance`` and ``set`` over every label),
and importing it brings its Datalab stack (about a second); the computation itself is a few
numpy passes.
"""

from __future__ import annotations

import numpy as np

#: cleanlab's constants (``cleanlab.internal.constants``): fuzzy float comparisons, the lower
#: bound of a confident threshold, and the floor of a divisor.
FLOATING_POINT_COMPARISON = 1e-6
CONFIDENT_THRESHOLDS_LOWER_BOUND = 2 * FLOATING_POINT_COMPARISON
TINY_VALUE = 1e-100


def _round_preserving_sum(floats: np.ndarray) -> np.ndarray:
    """Round to integers whose sum is the rounded sum of ``floats`` (cleanlab's rule: the
    entries with the largest rounding loss are moved by one)."""
    ints = floats.round()
    orig_sum = np.sum(floats).round()
    int_sum = np.sum(ints).round()
    while abs(int_sum - orig_sum) > FLOATING_POINT_COMPARISON:
        diff = np.round(orig_sum - int_sum)
        increment = -1 if int(diff < 0.0) else 1
        changes = min(int(abs(diff)), len(floats))
        for i in np.argsort(floats - ints)[::-increment][:changes]:
            ints[i] = ints[i] + increment
        int_sum = np.sum(ints).round()
    return ints.astype(int)


def _round_rows(matrix: np.ndarray) -> np.ndarray:
    return np.array([_round_preserving_sum(np.asarray(r, dtype=float)) for r in matrix]).astype(int)


def confident_joint(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """Calibrated confident joint ``C[given, true]`` of 0/1 ``labels`` (both present) and
    ``pred_probs`` of shape (n, 2)."""
    counts = np.bincount(labels, minlength=2)
    thresholds = np.clip(
        [np.mean(pred_probs[:, k][labels == k]) for k in (0, 1)],
        a_min=CONFIDENT_THRESHOLDS_LOWER_BOUND,
        a_max=None,
    )
    confident = pred_probs >= thresholds - 1e-6
    n_confident = confident.sum(axis=1)
    guess = np.where(n_confident > 1, pred_probs.argmax(axis=1), confident.argmax(axis=1))
    some = n_confident > 0
    joint = np.bincount(2 * labels[some] + guess[some], minlength=4).reshape(2, 2)
    np.fill_diagonal(joint, joint.diagonal().clip(min=1))
    calibrated = (joint.T / np.clip(joint.sum(axis=1), a_min=TINY_VALUE, a_max=None) * counts).T
    calibrated = (
        calibrated / np.clip(np.sum(calibrated), a_min=TINY_VALUE, a_max=None) * sum(counts)
    )
    return _round_rows(calibrated)


def _prune_counts(joint: np.ndarray) -> np.ndarray:
    """Rows to prune per (true, given) label, keeping at least one row of each label
    (cleanlab's ``_keep_at_least_n_per_class`` with n = 1, all the noise)."""
    prune = joint.T
    diagonal = np.diagonal(prune)
    new_diagonal = np.maximum(diagonal, 1)
    per_col = np.maximum(np.count_nonzero(prune, axis=0) - 1.0, 1.0)
    new = prune - (new_diagonal - diagonal) / per_col
    new[new < 0] = 0
    np.fill_diagonal(new, new_diagonal)
    reduced = new * 1.0
    np.fill_diagonal(reduced, new.diagonal())
    np.fill_diagonal(reduced, new.diagonal() + np.sum(new - reduced, axis=0))
    return _round_rows(reduced.astype(int)).astype(int)


def binary_label_issues(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """Rows whose 0/1 label is a confident-learning issue, most severe first.

    Parameters
    ----------
    labels : ndarray of int (n,)
        0/1 labels; both must occur.
    pred_probs : ndarray (n, 2)
        Out-of-sample probabilities of label 0 and label 1.

    Returns
    -------
    ndarray of int64
        Row positions, ranked by the probability of their given label (smallest first).

    Raises
    ------
    ValueError
        Labels that are not 0/1 with both present, or ``pred_probs`` of another shape.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or pred_probs.shape != (len(labels), 2):
        raise ValueError(
            f"labels (n,) and pred_probs (n, 2) are needed; got {labels.shape} and "
            f"{pred_probs.shape}"
        )
    if not np.isin(labels, (0, 1)).all() or len(np.unique(labels)) != 2:
        raise ValueError("labels must be 0/1 with both present")
    labels = labels.astype(np.int64)
    prune = _prune_counts(confident_joint(labels, pred_probs))
    issues = np.zeros(len(labels), dtype=bool)
    for k in (0, 1):
        given = labels == k
        probs = pred_probs[given]
        mask = np.zeros(len(probs), dtype=bool)
        j = 1 - k
        if len(probs) > 1 and prune[j, k] > 0:
            margin = probs[:, j] - probs[:, k]
            mask[np.argsort(-margin)[: prune[j, k]]] = True
        if len(mask) > 1:
            issues[given] = mask
    # rows whose given label is the likelier one (within 1e-6) are never issues
    nudged = np.copy(pred_probs)
    nudged[np.arange(len(labels)), labels] += FLOATING_POINT_COMPARISON
    issues[nudged.argmax(axis=1) == labels] = False
    rows = np.arange(len(labels))[issues]
    scores = pred_probs[np.arange(len(labels)), labels]
    ranked: np.ndarray = rows[np.argsort(scores[issues])]
    return ranked.astype(np.int64)
