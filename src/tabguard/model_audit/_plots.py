"""Plot kinds of the model audit, registered with :func:`tabguard.reports.register_renderer`.

* ``beeswarm`` - SHAP values per feature, one dot per row, coloured by the feature's value
  (low blue, high red), features by importance from the top.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tabguard.reports import register_renderer


def _swarm_offsets(x: np.ndarray, width: float = 0.38, bins: int = 40) -> np.ndarray:
    """Vertical offsets that spread dots of similar x (a cheap beeswarm)."""
    if x.size == 0:
        return x
    lo, hi = float(np.min(x)), float(np.max(x))
    if hi <= lo:
        hi = lo + 1.0
    idx = np.clip(((x - lo) / (hi - lo) * bins).astype(int), 0, bins - 1)
    offsets = np.zeros_like(x, dtype=float)
    counts = np.bincount(idx, minlength=bins)
    peak = max(int(counts.max()), 1)
    seen = np.zeros(bins, dtype=int)
    for i in np.argsort(idx, kind="stable"):
        b = idx[i]
        k = seen[b]
        seen[b] += 1
        # alternate above/below the line, scaled by the bin's crowding
        step = (k + 1) // 2 * (1 if k % 2 else -1)
        offsets[i] = step / peak * width
    return offsets


@register_renderer("beeswarm")
def _beeswarm(ax: Any, d: dict[str, Any]) -> None:
    features: list[str] = list(d["features"])
    shap = [np.asarray(v, dtype=float) for v in d["shap"]]
    colors = [np.asarray(v, dtype=float) for v in d["color"]]
    n = len(features)
    for i, (sv, cv) in enumerate(zip(shap, colors, strict=True)):
        y = n - 1 - i
        ok = np.isfinite(sv)
        sc = ax.scatter(
            sv[ok],
            y + _swarm_offsets(sv[ok]),
            c=np.nan_to_num(cv[ok], nan=0.5),
            cmap="coolwarm",
            vmin=0.0,
            vmax=1.0,
            s=6,
            alpha=0.8,
            linewidths=0,
        )
    ax.axvline(0.0, color="#888", linewidth=0.8)
    ax.set_yticks(range(n), features[::-1], fontsize=8)
    ax.set_xlabel(d.get("xlabel", "SHAP value"))
    if n:
        cb = ax.figure.colorbar(sc, ax=ax, fraction=0.04, pad=0.02)
        cb.set_ticks([0, 1], labels=["low", "high"])
        cb.set_label("feature value", fontsize=8)
