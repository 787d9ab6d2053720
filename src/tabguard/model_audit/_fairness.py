"""The one module that talks to fairlearn: decision rates and error rates by group."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class GroupRates:
    """Decision and error rates of one protected attribute.

    Attributes
    ----------
    feature : str
    table : DataFrame
        One row per group: ``count``, ``approval_rate``, ``false_approval_rate`` (approved
        although the outcome was unfavourable), ``false_denial_rate`` (denied although the
        outcome was favourable) and ``favourable_rate`` (of the labels).
    ratio : float
        Lowest approval rate divided by the highest (the four-fifths rule wants >= 0.8).
    difference : float
        Highest minus lowest approval rate.
    """

    feature: str
    table: pd.DataFrame
    ratio: float
    difference: float


def group_rates(
    approve: np.ndarray, favourable: np.ndarray, groups: pd.Series, *, min_count: int = 1
) -> GroupRates:
    """Approval and error rates by group with fairlearn's ``MetricFrame``.

    Parameters
    ----------
    approve : ndarray of bool
        Model decision per row (True = favourable decision).
    favourable : ndarray of bool
        Whether the observed outcome was favourable (e.g. no default).
    groups : Series
        The protected attribute.
    min_count : int
        Groups with fewer rows are reported but left out of the ratio.
    """
    from fairlearn.metrics import (
        MetricFrame,
        count,
        false_negative_rate,
        false_positive_rate,
        selection_rate,
    )

    y_true = np.asarray(favourable, dtype=int)
    y_pred = np.asarray(approve, dtype=int)
    sens = groups.astype(str).to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # empty classes in tiny groups
        mf = MetricFrame(
            metrics={
                "count": count,
                "approval_rate": selection_rate,
                "false_approval_rate": false_positive_rate,
                "false_denial_rate": false_negative_rate,
                "favourable_rate": lambda yt, yp: float(np.mean(yt)) if len(yt) else np.nan,
            },
            y_true=y_true,
            y_pred=y_pred,
            sensitive_features=pd.Series(sens, name=groups.name),
        )
    table = mf.by_group.copy()
    table["count"] = table["count"].astype(int)
    big = table[table["count"] >= min_count]["approval_rate"].astype(float)
    hi, lo = (float(big.max()), float(big.min())) if len(big) else (np.nan, np.nan)
    ratio = lo / hi if hi and hi > 0 else float("nan")
    return GroupRates(str(groups.name), table, ratio, hi - lo)
