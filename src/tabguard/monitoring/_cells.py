"""Numeric cells of one segment key: the sketch-heavy part of an update, runnable in a worker.

Kept free of tabguard's heavier modules (NumPy and DataSketches only), so a worker process
starts quickly. :func:`key_cells` returns plain data (counts, stats and serialised sketches)
that pickles cheaply.
"""

from __future__ import annotations

from collections.abc import Sequence

import datasketches
import numpy as np

#: (kind, column, values, domain, missing, invalid) of one numeric column.
NumericColumn = tuple[str, str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
#: ((bucket, seg_key, seg_value, kind, column), rows, n, missing, invalid, total, stats, sketch)
PackedCell = tuple[tuple[int, str, str, str, str], int, int, int, int, float, list[float], bytes]

_LEVELS = [0.0, 1.0, 0.01, 0.10, 0.50, 0.90, 0.99]


def key_cells(
    names: Sequence[tuple[int, str, str]],
    group: np.ndarray,
    numeric: Sequence[NumericColumn],
    k: int,
    keep: dict[tuple[int, str, str, str, str], object] | None = None,
) -> list[PackedCell]:
    """Cells of every (bucket, value) group of one segment key, serialised.

    ``stats`` is ``[min, max, p1, p10, p50, p90, p99]`` (NaN when the cell has no value).
    ``keep``, when given, receives the sketch objects too (the caller merges them further
    without reading the bytes back).
    """
    ngroups = len(names)
    codes = group.astype(np.uint16 if ngroups < 1 << 16 else np.int64)
    order = np.argsort(codes, kind="stable")
    g_sorted = group[order]
    zeros = np.zeros(ngroups, dtype=np.int64)
    nan_stats = [float("nan")] * len(_LEVELS)
    out: list[PackedCell] = []
    for kind, column, values, domain, missing, invalid in numeric:
        rows = np.bincount(group[domain], minlength=ngroups)
        miss = np.bincount(group[missing], minlength=ngroups) if missing.any() else zeros
        inv = np.bincount(group[invalid], minlength=ngroups) if invalid.any() else zeros
        v = values[order]
        finite = np.isfinite(v)
        v_fin = v[finite]
        g_fin = g_sorted[finite]
        total = np.bincount(g_fin, weights=v_fin, minlength=ngroups)
        bounds = np.zeros(ngroups + 1, dtype=np.int64)
        np.cumsum(np.bincount(g_fin, minlength=ngroups), out=bounds[1:])
        present = np.flatnonzero(rows)
        for g, n_rows, n_miss, n_inv, tot, lo, hi in zip(
            present.tolist(),
            rows[present].tolist(),
            miss[present].tolist(),
            inv[present].tolist(),
            total[present].tolist(),
            bounds[present].tolist(),
            bounds[present + 1].tolist(),
            strict=True,
        ):
            b, sk, sv = names[g]
            if hi > lo:
                sketch = datasketches.kll_doubles_sketch(k)
                sketch.update(v_fin[lo:hi])
                stats = [float(x) for x in sketch.get_quantiles(_LEVELS)]
                blob = bytes(sketch.serialize())
                if keep is not None:
                    keep[(b, sk, sv, kind, column)] = sketch
            else:
                stats, blob = nan_stats, b""
            out.append(
                ((b, sk, sv, kind, column), n_rows, hi - lo, n_miss, n_inv, tot, stats, blob)
            )
    return out


def many_key_cells(
    keys: Sequence[tuple[Sequence[tuple[int, str, str]], np.ndarray]],
    numeric: Sequence[NumericColumn],
    k: int,
    keep: dict[tuple[int, str, str, str, str], object] | None = None,
) -> list[PackedCell]:
    """:func:`key_cells` for several segment keys (one task: the columns are sent once)."""
    out: list[PackedCell] = []
    for names, group in keys:
        out.extend(key_cells(names, group, numeric, k, keep))
    return out
