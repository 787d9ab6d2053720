"""Evaluation beyond one number (T3): metrics with bootstrap confidence intervals, error
dispersion (by score decile and by contract segment), the largest errors, and calibration.

Everything is computed on a held-out split from ``y`` (0/1) and ``p`` (P(positive)). Rendering
lives in :mod:`tabguard.training._report`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from tabguard.contract import Contract

METRICS = ("auc", "log_loss", "brier", "accuracy", "precision", "recall")
_EPS = 1e-15


def _metric_rows(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """Each metric for every row of ``y``/``p`` (shape (B, n)), vectorised over B."""
    y = y.astype(float)
    n1 = y.sum(axis=1)
    n0 = y.shape[1] - n1
    ranks = rankdata(p, axis=1)  # average ranks for ties, as the Mann-Whitney AUC needs
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = ((ranks * y).sum(axis=1) - n1 * (n1 + 1) / 2) / (n1 * n0)
        pc = np.clip(p, _EPS, 1 - _EPS)
        log_loss = -(y * np.log(pc) + (1 - y) * np.log(1 - pc)).mean(axis=1)
        brier = ((p - y) ** 2).mean(axis=1)
        pred = p >= threshold
        tp = (pred & (y == 1)).sum(axis=1)
        accuracy = (pred == (y == 1)).mean(axis=1)
        precision = tp / pred.sum(axis=1)
        recall = tp / n1
    return {
        "auc": auc,
        "log_loss": log_loss,
        "brier": brier,
        "accuracy": accuracy,
        "precision": precision,
        "recall": recall,
    }


def metrics_with_ci(
    y: np.ndarray,
    p: np.ndarray,
    *,
    threshold: float,
    n_bootstrap: int = 200,
    random_state: int = 0,
    level: float = 0.95,
) -> dict[str, dict[str, float]]:
    """Point estimates and percentile-bootstrap confidence intervals.

    Returns
    -------
    dict
        ``{metric: {"value", "ci_low", "ci_high"}}`` for AUC, log loss, Brier score, and
        accuracy / precision / recall at ``threshold``.
    """
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    point = {k: float(v[0]) for k, v in _metric_rows(y[None, :], p[None, :], threshold).items()}
    out: dict[str, dict[str, float]] = {}
    if n_bootstrap > 0 and len(y) > 1:
        rng = np.random.default_rng(random_state)
        stats: dict[str, list[np.ndarray]] = {k: [] for k in METRICS}
        # Chunks keep memory at ~50 x n floats whatever the number of resamples.
        for start in range(0, n_bootstrap, 50):
            b = min(50, n_bootstrap - start)
            idx = rng.integers(0, len(y), size=(b, len(y)))
            for k, v in _metric_rows(y[idx], p[idx], threshold).items():
                stats[k].append(v)
        q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
        for k in METRICS:
            arr = np.concatenate(stats[k])
            arr = arr[np.isfinite(arr)]
            lo, hi = np.percentile(arr, q) if len(arr) else (math.nan, math.nan)
            out[k] = {"value": point[k], "ci_low": float(lo), "ci_high": float(hi)}
    else:
        out = {k: {"value": v, "ci_low": math.nan, "ci_high": math.nan} for k, v in point.items()}
    return out


def calibration_table(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> dict[str, Any]:
    """Predictions vs reality in bins of equal count, and the expected calibration error."""
    order = np.argsort(p, kind="stable")
    rows = []
    ece = 0.0
    for chunk in np.array_split(order, min(n_bins, max(len(p), 1))):
        if len(chunk) == 0:
            continue
        mp, obs = float(p[chunk].mean()), float(y[chunk].mean())
        rows.append(
            {
                "n": len(chunk),
                "p_min": float(p[chunk].min()),
                "p_max": float(p[chunk].max()),
                "mean_predicted": mp,
                "observed_rate": obs,
            }
        )
        ece += len(chunk) / len(p) * abs(mp - obs)
    return {"bins": rows, "ece": ece}


def _group_errors(
    y: np.ndarray, p: np.ndarray, err: np.ndarray, mask: np.ndarray
) -> dict[str, Any]:
    yy, pp, ee = y[mask], p[mask], err[mask]
    auc = math.nan
    if 0 < yy.sum() < len(yy):
        auc = float(_metric_rows(yy[None, :], pp[None, :], 0.5)["auc"][0])
    return {
        "n": int(mask.sum()),
        "observed_rate": float(yy.mean()),
        "mean_predicted": float(pp.mean()),
        "mean_abs_error": float(ee.mean()),
        "p90_abs_error": float(np.percentile(ee, 90)),
        "auc": auc,
    }


def _segment_keys(col: pd.Series, contract: Contract, name: str) -> pd.Series:
    spec = contract.features.get(name)
    if spec is not None and spec.is_numeric:
        x = pd.to_numeric(col, errors="coerce")
        if spec.bins:
            edges = np.asarray(spec.bins, dtype=float)
            i = np.clip(np.searchsorted(edges, x.to_numpy(), side="right") - 1, 0, len(edges) - 2)
            labels = [f"[{edges[j]:g}, {edges[j + 1]:g})" for j in range(len(edges) - 1)]
            return pd.Series([labels[j] for j in i], index=col.index)
        if x.nunique() > 12:
            return pd.qcut(x, 5, duplicates="drop").astype(str)
    return col.astype(str)


def error_dispersion(
    y: np.ndarray, p: np.ndarray, frame: pd.DataFrame, contract: Contract, segments: Sequence[str]
) -> dict[str, Any]:
    """Distribution of ``|y - p|`` overall, by decile of score and by segment."""
    err = np.abs(y - p)
    qs = [50, 75, 90, 95, 99]
    overall = {f"p{q}": float(np.percentile(err, q)) for q in qs}
    overall["mean"] = float(err.mean())
    overall["max"] = float(err.max())
    deciles = []
    order = np.argsort(p, kind="stable")
    for d, chunk in enumerate(np.array_split(order, 10)):
        if len(chunk) == 0:
            continue
        mask = np.zeros(len(p), dtype=bool)
        mask[chunk] = True
        deciles.append({"decile": d + 1, **_group_errors(y, p, err, mask)})
    by_segment: dict[str, list[dict[str, Any]]] = {}
    for seg in segments:
        if seg not in frame.columns:
            continue
        keys = _segment_keys(frame[seg], contract, seg).to_numpy()
        rows = []
        for k in pd.unique(keys):
            mask = keys == k
            rows.append({"value": str(k), **_group_errors(y, p, err, mask)})
        by_segment[seg] = sorted(rows, key=lambda r: -r["n"])
    hist_edges = np.linspace(0, 1, 21)
    hist = {
        "edges": hist_edges.tolist(),
        "negatives": np.histogram(p[y == 0], bins=hist_edges)[0].tolist(),
        "positives": np.histogram(p[y == 1], bins=hist_edges)[0].tolist(),
    }
    return {
        "abs_error": overall,
        "by_score_decile": deciles,
        "by_segment": by_segment,
        "score_histogram": hist,
    }


def largest_errors(
    y: np.ndarray, p: np.ndarray, frame: pd.DataFrame, contract: Contract, k: int = 20
) -> list[dict[str, Any]]:
    """The ``k`` rows with the largest ``|y - p|``, with their raw attributes."""
    err = np.abs(y - p)
    top = np.argsort(-err, kind="stable")[:k]
    cols = [c for c in contract.columns() if c in frame.columns]
    out = []
    for i in top:
        row = {c: frame.iloc[int(i)][c] for c in cols}
        out.append({"label": int(y[i]), "score": float(p[i]), "abs_error": float(err[i]), **row})
    return out


def evaluate_predictions(
    y: np.ndarray,
    p: np.ndarray,
    frame: pd.DataFrame,
    contract: Contract,
    *,
    threshold: float,
    n_bootstrap: int = 200,
    random_state: int = 0,
    top_k: int = 20,
) -> dict[str, Any]:
    """Every held-out figure of one scorer (see the module docstring)."""
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    frame = frame.reset_index(drop=True)
    return {
        "n": len(y),
        "positives": int(y.sum()),
        "base_rate": float(y.mean()),
        "threshold": threshold,
        "metrics": metrics_with_ci(
            y, p, threshold=threshold, n_bootstrap=n_bootstrap, random_state=random_state
        ),
        "calibration": calibration_table(y, p),
        "dispersion": error_dispersion(y, p, frame, contract, contract.segments),
        "largest_errors": largest_errors(y, p, frame, contract, top_k),
    }
