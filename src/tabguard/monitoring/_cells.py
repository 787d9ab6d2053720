"""Numeric cells of one segment key: the sketch-heavy part of an update, runnable in a worker.

Kept free of tabguard's heavier modules (NumPy and DataSketches only), so a worker process
starts quickly. :func:`column_cells` returns plain data (counts, stats and serialised
sketches) that pickles cheaply.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import NamedTuple

import datasketches
import numpy as np

#: (kind, column, values, domain, missing, invalid) of one numeric column.
NumericColumn = tuple[str, str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
#: ((bucket, seg_key, seg_value, kind, column), rows, n, missing, invalid, total, stats, sketch)
PackedCell = tuple[tuple[int, str, str, str, str], int, int, int, int, float, list[float], bytes]

_LEVELS = [0.0, 1.0, 0.01, 0.10, 0.50, 0.90, 0.99]


class ColumnCells(NamedTuple):
    """What :func:`column_cells` returns (plain data: it pickles cheaply)."""

    cells: list[PackedCell]
    seconds: float
    done_at: float


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
    # The columns of a kind share their domain array, and most columns have a value in every
    # row: the rows per group, and the group bounds of a column without a gap, are counted
    # once per key rather than once per column.
    domain_rows: dict[int, np.ndarray] = {}
    every_bound = np.zeros(ngroups + 1, dtype=np.int64)
    np.cumsum(np.bincount(g_sorted, minlength=ngroups), out=every_bound[1:])
    for kind, column, values, domain, missing, invalid in numeric:
        rows = domain_rows.get(id(domain))
        if rows is None:
            rows = domain_rows[id(domain)] = np.bincount(group[domain], minlength=ngroups)
        miss = np.bincount(group[missing], minlength=ngroups) if missing.any() else zeros
        inv = np.bincount(group[invalid], minlength=ngroups) if invalid.any() else zeros
        v = values[order]
        finite = np.isfinite(v)
        if finite.all():
            v_fin, g_fin, bounds = v, g_sorted, every_bound
        else:
            v_fin = v[finite]
            g_fin = g_sorted[finite]
            bounds = np.zeros(ngroups + 1, dtype=np.int64)
            np.cumsum(np.bincount(g_fin, minlength=ngroups), out=bounds[1:])
        total = np.bincount(g_fin, weights=v_fin, minlength=ngroups)
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
                stats = sketch.get_quantiles(_LEVELS)  # a list of floats (pybind11)
                blob = bytes(sketch.serialize())
                if keep is not None:
                    keep[(b, sk, sv, kind, column)] = sketch
            else:
                stats, blob = nan_stats, b""
            out.append(
                ((b, sk, sv, kind, column), n_rows, hi - lo, n_miss, n_inv, tot, stats, blob)
            )
    return out


def column_cells(
    keys: Sequence[tuple[Sequence[tuple[int, str, str]], np.ndarray]],
    base: int | None,
    numeric: Sequence[NumericColumn],
    k: int,
) -> ColumnCells:
    """Cells of these numeric columns for every segment key, and the cells of ``all``.

    ``keys`` are ``(names, group)`` per segment key. With ``base`` (an index into ``keys``),
    the cells of ``all`` are the merge of that key's cells of each bucket and column (a few
    merges instead of one more sketch update per value); without it, ``keys`` holds ``all``
    itself. Runs in the updating process or in a worker: which columns go where changes
    nothing in the cells.

    Returns
    -------
    ColumnCells
        The cells, the seconds spent, and ``time.monotonic()`` at the end (system-wide on
        every supported platform: the caller compares it with its own clock to balance
        the next batch).
    """
    started = time.perf_counter()
    out: list[PackedCell] = []
    native: dict[tuple[int, str, str, str, str], object] = {}
    for i, (names, group) in enumerate(keys):
        cells = key_cells(names, group, numeric, k, native if i == base else None)
        if i == base:
            out.extend(_merged_into_all(cells, native, k))
        out.extend(cells)
    return ColumnCells(out, time.perf_counter() - started, time.monotonic())


def _merged_into_all(
    cells: Sequence[PackedCell], native: dict[tuple[int, str, str, str, str], object], k: int
) -> list[PackedCell]:
    """Cells of segment ``all``: per bucket and column, the merge of one key's cells."""
    merged: dict[tuple[int, str, str, str, str], list] = {}
    for cell in cells:
        (b, _sk, _sv, kind, column), rows, _n, missing, invalid, total, _stats, _blob = cell
        key = (b, "all", "all", kind, column)
        acc = merged.get(key)
        if acc is None:
            acc = merged[key] = [0, 0, 0, 0.0, datasketches.kll_doubles_sketch(k)]
        acc[0] += rows
        acc[1] += missing
        acc[2] += invalid
        acc[3] += total
        sketch = native.get(cell[0])
        if sketch is not None:
            acc[4].merge(sketch)
    out: list[PackedCell] = []
    nan_stats = [float("nan")] * len(_LEVELS)
    for key, (rows, missing, invalid, total, sketch) in merged.items():
        if sketch.is_empty():
            stats, blob = nan_stats, b""
        else:
            stats = sketch.get_quantiles(_LEVELS)
            blob = bytes(sketch.serialize())
        out.append((key, rows, int(sketch.n), missing, invalid, total, stats, blob))
    return out


def ready() -> bool:
    """Nothing: submitted once when a worker pool starts, so the worker process starts (and
    imports this module) while the first batch is read."""
    return True
