"""Champion / challenger comparison: the recent holdout, the exploit set, shadow scores.

Computation only (numbers in dicts); :mod:`tabguard.retraining._report` words and renders them.

* **Holdout**: AUC, Brier score and log loss of both models with 95% percentile-bootstrap
  intervals, and the paired bootstrap interval of the AUC difference (the same resamples for
  both models).
* **Decision rates by segment**: approve / review / deny shares of both models on the holdout,
  per value of the contract's ``segments`` features and of the request's ``segment`` keys.
* **Exploit set**: the share of known exploit inputs that get the favourable decision
  (*attack success*) under each model, per kind, for every exploit and for those whose true
  label is the unfavourable one (the attacks that would have cost money). The challenger
  trained on these rows: its figure says whether it learnt them, not how it generalises.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from tabguard.contract import Contract
    from tabguard.serving._decision import DecisionPolicy

Scores = Callable[[pd.DataFrame], np.ndarray]


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if len(np.unique(y)) < 2:
        return math.nan
    return float(roc_auc_score(y, p))


def paired_auc(
    y: np.ndarray, p_old: np.ndarray, p_new: np.ndarray, *, n_bootstrap: int, seed: int
) -> dict[str, float]:
    """AUC of both score vectors and of their difference, with paired bootstrap intervals."""
    rng = np.random.default_rng(seed)
    old, new = _auc(y, p_old), _auc(y, p_new)
    diffs, olds, news = [], [], []
    for _ in range(n_bootstrap):
        idx = rng.integers(0, len(y), len(y))
        a, b = _auc(y[idx], p_old[idx]), _auc(y[idx], p_new[idx])
        if math.isfinite(a) and math.isfinite(b):
            olds.append(a)
            news.append(b)
            diffs.append(b - a)

    def ci(values: list[float], point: float) -> dict[str, float]:
        if not values:
            return {"value": point, "ci_low": math.nan, "ci_high": math.nan}
        lo, hi = np.percentile(values, [2.5, 97.5])
        return {"value": point, "ci_low": float(lo), "ci_high": float(hi)}

    return {
        "champion": ci(olds, old),  # type: ignore[dict-item]
        "challenger": ci(news, new),  # type: ignore[dict-item]
        "difference": ci(diffs, new - old),  # type: ignore[dict-item]
    }


def _decisions(policy: DecisionPolicy, p: np.ndarray) -> np.ndarray:
    return np.array([policy.decide(float(s)) for s in p], dtype=object)


def _segments(frame: pd.DataFrame, contract: Contract) -> list[tuple[str, np.ndarray]]:
    """``(key, values)`` of every segment key: contract segments, request segment keys."""
    from tabguard.monitoring._parse import canonical_label

    out = [("all", np.array(["all"] * len(frame), dtype=object))]
    for name in contract.segments:
        if name in frame.columns:
            out.append((name, np.array([canonical_label(v) for v in frame[name]], dtype=object)))
    if "segment" in frame.columns:
        keys = sorted({k for s in frame["segment"] if isinstance(s, dict) for k in s})
        for k in keys:
            vals = [
                canonical_label(s.get(k)) if isinstance(s, dict) else None for s in frame.segment
            ]
            out.append((k, np.array(vals, dtype=object)))
    return out


def decision_rates(
    frame: pd.DataFrame, contract: Contract, old: np.ndarray, new: np.ndarray
) -> list[dict[str, Any]]:
    """Decision shares of both models by segment value (``None`` values left out)."""
    rows = []
    for key, values in _segments(frame, contract):
        for value in sorted({v for v in values if v is not None}, key=str):
            mask = values == value
            n = int(mask.sum())
            row: dict[str, Any] = {"segment": key, "value": value, "n": n}
            for who, dec in (("champion", old), ("challenger", new)):
                for d in ("approve", "review", "deny"):
                    row[f"{who}_{d}"] = float((dec[mask] == d).mean()) if n else math.nan
            rows.append(row)
    return rows


def exploit_success(
    exploits: pd.DataFrame,
    contract: Contract,
    old: np.ndarray,
    new: np.ndarray,
) -> dict[str, Any]:
    """Attack success (favourable decision) of the known exploit inputs before and after."""
    label = contract.label.column
    bad_label = 1 if contract.decision.positive_means == "deny" else 0
    y = exploits[label].to_numpy(dtype=int) if len(exploits) else np.array([], dtype=int)
    kinds = exploits["exploit"].astype(str).to_numpy() if len(exploits) else np.array([])
    out: dict[str, Any] = {}
    groups = {"all": np.ones(len(exploits), dtype=bool)}
    for kind in ("probing", "alert", "redteam"):
        mask = np.array([kind in k.split(",") for k in kinds], dtype=bool)
        if mask.any():
            groups[kind] = mask
    for name, mask in groups.items():
        bad = mask & (y == bad_label)
        out[name] = {
            "n": int(mask.sum()),
            "before": float((old[mask] == "approve").mean()) if mask.any() else math.nan,
            "after": float((new[mask] == "approve").mean()) if mask.any() else math.nan,
            "n_unfavourable_label": int(bad.sum()),
            "before_unfavourable": float((old[bad] == "approve").mean()) if bad.any() else math.nan,
            "after_unfavourable": float((new[bad] == "approve").mean()) if bad.any() else math.nan,
        }
    was = old == "approve"
    out["previously_successful"] = {
        "n": int(was.sum()),
        "no_longer": float((new[was] != "approve").mean()) if was.any() else math.nan,
    }
    return out


def shadow_comparison(
    logged: pd.DataFrame, contract: Contract, *, n_bootstrap: int = 200, seed: int = 0
) -> list[dict[str, Any]]:
    """The model in shadow against the live model on the matured requests both scored.

    Both scores were logged in real time, before either model saw these outcomes: a fair
    comparison of the challenger that was in shadow (``tabguard models promote --stage
    shadow``) with the champion, per shadow version.
    """
    if "shadow_score" not in logged.columns or not len(logged):
        return []
    label = contract.label.column
    rows = []
    scored = logged[logged["shadow_score"].notna() & logged["score"].notna()]
    for version, part in scored.groupby("shadow_version", sort=True):
        y = part[label].to_numpy(dtype=int)
        live = part["score"].to_numpy(dtype=float)
        shadow = part["shadow_score"].to_numpy(dtype=float)
        auc = paired_auc(y, live, shadow, n_bootstrap=n_bootstrap, seed=seed)
        rows.append(
            {
                "version": str(version),
                "rows": len(part),
                "positives": int(y.sum()),
                "live_auc": auc["champion"],
                "shadow_auc": auc["challenger"],
                "auc_difference": auc["difference"],
                "decision_agreement": float(
                    (part["decision"].astype(str) == part["shadow_decision"].astype(str)).mean()
                ),
            }
        )
    return rows


def compare(
    champion: Scores,
    challenger: Scores,
    champion_policy: DecisionPolicy,
    challenger_policy: DecisionPolicy,
    holdout: pd.DataFrame,
    exploits: pd.DataFrame,
    contract: Contract,
    *,
    n_bootstrap: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """The champion / challenger numbers (see the module docstring)."""
    label = contract.label.column
    out: dict[str, Any] = {}
    if len(holdout):
        y = holdout[label].to_numpy(dtype=int)
        p_old, p_new = champion(holdout), challenger(holdout)
        auc = paired_auc(y, p_old, p_new, n_bootstrap=n_bootstrap, seed=seed)
        brier = {
            "champion": float(np.mean((p_old - y) ** 2)),
            "challenger": float(np.mean((p_new - y) ** 2)),
        }
        out["holdout"] = {
            "rows": len(holdout),
            "positives": int(y.sum()),
            "champion": {"auc": auc["champion"], "brier": brier["champion"]},
            "challenger": {"auc": auc["challenger"], "brier": brier["challenger"]},
            "auc_difference": auc["difference"],
            "decision_rates": decision_rates(
                holdout,
                contract,
                _decisions(champion_policy, p_old),
                _decisions(challenger_policy, p_new),
            ),
        }
    else:
        out["holdout"] = {"rows": 0}
    if len(exploits):
        old = _decisions(champion_policy, champion(exploits))
        new = _decisions(challenger_policy, challenger(exploits))
        out["exploits"] = exploit_success(exploits, contract, old, new)
    else:
        out["exploits"] = {"all": {"n": 0}}
    return out
