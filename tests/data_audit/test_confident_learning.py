"""binary_label_issues gives cleanlab's label issues, the same rows in the same order."""

from __future__ import annotations

import numpy as np
import pytest

from tabguard.data_audit._confident_learning import binary_label_issues, confident_joint

# cleanlab warns when a label has a single row; so do the cases that test it
pytestmark = pytest.mark.filterwarnings("ignore:May not flag all label issues")


def _cases() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    out = []
    for t in range(120):
        n = int(rng.choice([2, 3, 5, 40, 500, 5000]))
        y = (rng.random(n) < rng.uniform(0.02, 0.6)).astype(int)
        if y.min() == y.max():
            y[0] = 1 - y[0]
        kind = t % 4
        if kind == 0:  # informative probabilities
            p = np.clip(rng.beta(1, 3, n) + 0.3 * y, 0, 1)
        elif kind == 1:  # heavy ties: the ranking must break them as cleanlab does
            p = np.round(rng.random(n), 1)
        elif kind == 2:  # the extremes
            p = rng.choice([0.0, 1.0, 0.5, 1e-9, 1 - 1e-9], n)
        else:  # an uninformative model
            p = np.full(n, y.mean())
        out.append((y, np.column_stack([1 - p, p])))
    return out


def test_equal_to_cleanlab_on_random_tied_and_extreme_probabilities() -> None:
    filt = pytest.importorskip("cleanlab.filter")
    for y, probs in _cases():
        expected = filt.find_label_issues(
            labels=y, pred_probs=probs, return_indices_ranked_by="self_confidence", n_jobs=1
        )
        np.testing.assert_array_equal(binary_label_issues(y, probs), expected)


def test_equal_to_cleanlab_confident_joint() -> None:
    count = pytest.importorskip("cleanlab.count")
    for y, probs in _cases()[:40]:
        expected = count.compute_confident_joint(labels=y, pred_probs=probs)
        np.testing.assert_array_equal(confident_joint(y, probs), expected)


def test_confidently_contradicted_labels_are_issues_most_confident_first() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(2000) < 0.3).astype(int)
    p = np.where(y == 1, 0.8, 0.1)  # the model agrees with every label but two:
    one, zero = np.flatnonzero(y == 1)[3], np.flatnonzero(y == 0)[3]
    p[one], p[zero] = 0.05, 0.98  # the row labelled 0 is the more confidently contradicted
    issues = binary_label_issues(y, np.column_stack([1 - p, p]))
    assert issues.tolist() == [zero, one]


def test_a_row_whose_label_is_the_likelier_one_is_never_an_issue() -> None:
    y = np.array([0, 0, 0, 1, 1, 1, 0, 1])
    p = np.array([0.1, 0.2, 0.45, 0.9, 0.8, 0.55, 0.9, 0.1])
    issues = set(binary_label_issues(y, np.column_stack([1 - p, p])).tolist())
    likelier = {i for i in range(len(y)) if (p[i] >= 0.5) == (y[i] == 1)}
    assert not issues & likelier


def test_bad_input_names_the_rule() -> None:
    with pytest.raises(ValueError, match="0/1 with both present"):
        binary_label_issues(np.zeros(4, dtype=int), np.full((4, 2), 0.5))
    with pytest.raises(ValueError, match=r"pred_probs \(n, 2\)"):
        binary_label_issues(np.array([0, 1]), np.full((3, 2), 0.5))
