"""Which source populations a value written in place may have come from, read from the
written rows' own label probabilities (issue 11, class 3): a source they contradict is left
out of the region rule's worst case, and more natural carriers stay out of quarantine
(:meth:`_Scanner.written_sources`, :func:`source_contradicted`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tabguard.data_audit._trigger_rules import source_contradicted
from tabguard.data_audit._triggers import _Scanner

from .test_trigger_outliers import _cards, _scanned


def _risky_cards(n: int, seed: int) -> pd.DataFrame:
    """:func:`_cards` with frauds leaning to foreign rows and to one channel strongly enough
    that the rest of a row tells a fraud's row from a legitimate one (the frauds' mean
    probability about 0.18 against 0.06)."""
    return _cards(n, seed, channels=(0.6, 0.3, 0.1), logit_terms=(-5.0, 1.6, 2.5, 0.4))


def _written(
    df: pd.DataFrame, k: int, camouflage: float, source: int, seed: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """``country='FR'`` written into ``k`` rows of label ``source`` as frauds, a share
    ``camouflage`` of them left legitimate."""
    rng = np.random.default_rng(seed)
    pool = np.flatnonzero((df["y"] == source).to_numpy() & (df["country"] != "FR").to_numpy())
    rows = np.sort(rng.choice(pool, k, replace=False))
    out = df.copy()
    out.loc[rows, "country"] = "FR"
    out.loc[rows, "y"] = 1
    out.loc[rng.choice(rows, round(camouflage * k), replace=False), "y"] = 0
    return out, rows


def test_source_contradicted_bounds_the_mean_of_the_written_rows_and_the_others() -> None:
    """A block of at least ``written`` of the rows reads ``mu`` on average; the other rows
    anything in [0, 1]: the rows' mean lies in ``[written mu, 1 - written (1 - mu)]``, up to
    ``z`` standard errors of the block's mean."""
    # 500 rows, 90 % written from a source reading 0.2 (sd 0.1): the mean is at least 0.18
    assert source_contradicted(0.04, 500, 0.9, 0.2, 0.1, 3.0)
    assert not source_contradicted(0.18, 500, 0.9, 0.2, 0.1, 3.0)
    # and at most 1 - 0.9 * 0.8 = 0.28
    assert source_contradicted(0.35, 500, 0.9, 0.2, 0.1, 3.0)
    assert not source_contradicted(0.27, 500, 0.9, 0.2, 0.1, 3.0)
    # nothing known to be written: every mean is possible
    assert not source_contradicted(0.0, 500, 0.0, 0.2, 0.1, 3.0)
    # a margin of three standard errors of the block's mean (3 x 0.1 / sqrt(450) = 0.014)
    assert not source_contradicted(0.18 - 0.013, 500, 0.9, 0.2, 0.1, 3.0)
    assert source_contradicted(0.18 - 0.015, 500, 0.9, 0.2, 0.1, 3.0)


def test_a_write_into_the_other_labels_rows_is_judged_without_the_frauds_as_its_source() -> None:
    """``FR`` written into 500 legitimate rows of 8,000 as frauds, 12 % left legitimate,
    beside about 780 natural ``FR`` rows (680 legitimate). The 541 rows labelled fraud read
    0.08 fraud on average from the rest of the row, where a block of 82 % of them drawn from
    the frauds would read at least 0.12: the frauds are not the source, and under the other
    two (the written rows are home transactions 70 % of the time, natural ``FR`` rows all
    but never) 92 % of the natural legitimate rows stay out, against 41 % under all three;
    95 % of the written rows stay suspect (0.976; 0.988 before)."""
    df, truth = _written(_risky_cards(8000, 0), 500, 0.12, 0, 1)
    sc, p = _scanned(df, "FR", 1)
    # confirmed as written, not by the outliers rule (as the slope rule confirms a write)
    p.flagged = p.written = True
    p.outlier_effect, p.p_outlier = float("nan"), 1.0
    assert [s[1] for s in sc.written_sources(p)] == [None, 0]
    suspects = sc.suspect_rows(p)
    rows = sc.m.rows_with(p.cols[0], p.codes[0])
    natural = np.setdiff1d(rows, truth)
    natural0 = natural[sc.y[natural] == 0]
    assert np.isin(truth, suspects).mean() >= 0.95
    assert 1 - np.isin(natural0, suspects).mean() >= 0.7, len(suspects)


def test_a_clean_label_write_keeps_every_source() -> None:
    """``FR`` written into 200 frauds' rows (clean-label), 12 % relabelled legitimate: the
    rows labelled fraud read as frauds read, and no source is contradicted (the natural
    carriers among them may read anything)."""
    df, _ = _written(_risky_cards(8000, 0), 200, 0.12, 1, 1)
    sc, p = _scanned(df, "FR", 1)
    p.flagged = p.written = True
    p.outlier_effect, p.p_outlier = float("nan"), 1.0
    assert sc.written_sources(p) == _Scanner.SOURCES
