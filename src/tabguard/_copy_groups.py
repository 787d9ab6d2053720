"""Rows equal on every feature but a few: one hashing for the in-memory data audit and the Spark
engine's workers (which must not import the data audit's models).

A row's key on every feature but ``cols`` is the sum (wrapping, 64 bits) of one hash per cell
minus the cells of ``cols``: two rows with equal keys are exact copies of each other except
(maybe) in ``cols``. The Spark engine groups every row by such keys and hands the driver each
group's composition (rows per value of ``cols`` and label, :class:`CopyGroups`), so that the
copy rules count originals that are not among the driver's rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser of each element (uint64 in, uint64 out)."""
    z = np.asarray(x, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def hash_cells(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell 64-bit hashes of value ids ``codes`` (n, d) and their row sums."""
    n, d = codes.shape
    cells = np.empty((n, d), dtype=np.uint64, order="F")  # read a feature (or two) at a time
    with np.errstate(over="ignore"):
        for j in range(d):
            # a cell's hash depends on its feature and value id only: hash each feature's ids
            # once and look the rows' up (the missing-value id -1 wraps, consistently)
            top = int(codes[:, j].max()) if n else -1
            ids = np.arange(-1, top + 1, dtype=np.int64).astype(np.uint64)
            table = splitmix64(ids + (np.uint64(j + 1) << np.uint64(40)))
            np.take(table, codes[:, j].astype(np.int64) + 1, out=cells[:, j])
        total = cells.sum(axis=1, dtype=np.uint64)
    return cells, total


def keys_without(
    cells: np.ndarray, total: np.ndarray, cols: tuple[int, ...], rows: np.ndarray | None = None
) -> np.ndarray:
    """A 64-bit key per row (of ``rows``, default all) on every feature but ``cols``."""
    with np.errstate(over="ignore"):
        if rows is None:
            return total - cells[:, list(cols)].sum(axis=1, dtype=np.uint64)
        return total[rows] - cells[np.ix_(rows, np.asarray(cols, dtype=np.int64))].sum(
            axis=1, dtype=np.uint64
        )


@dataclass
class CopyGroups:
    """Every row grouped by its values on every feature but ``cols``, seen from the held rows.

    Attributes
    ----------
    cols : tuple of int
        The features left out of the key (sorted).
    group : ndarray of int64
        Per held row, its group.
    size : ndarray of int64
        Per group, its rows among every counted row (held or not).
    entry_group, entry_label, entry_rows : ndarray of int64
        The groups' composition, one entry per group, label and values of ``cols``: its
        rows.
    entry_cells : ndarray of int32, shape (entries, len(cols))
        The values of ``cols`` of each entry.
    """

    cols: tuple[int, ...]
    group: np.ndarray
    size: np.ndarray
    entry_group: np.ndarray
    entry_label: np.ndarray
    entry_rows: np.ndarray
    entry_cells: np.ndarray

    def rows_where(self, allowed: dict[int, np.ndarray], label: int | None = None) -> np.ndarray:
        """Per group, its rows whose value of each feature ``j`` of ``allowed`` is one of
        ``allowed[j]`` (and whose label is ``label``)."""
        mask = np.ones(len(self.entry_group), dtype=bool)
        for j, ids in allowed.items():
            mask &= np.isin(self.entry_cells[:, self.cols.index(j)], ids)
        if label is not None:
            mask &= self.entry_label == label
        return np.bincount(
            self.entry_group[mask], weights=self.entry_rows[mask], minlength=len(self.size)
        ).astype(np.int64)


def copy_groups(
    cols: tuple[int, ...],
    keys: np.ndarray,
    held_cells: np.ndarray,
    held_labels: np.ndarray,
    entries: pd.DataFrame,
) -> CopyGroups:
    """The :class:`CopyGroups` of held rows with keys ``keys`` (on every feature but ``cols``),
    values ``held_cells`` of ``cols`` and labels ``held_labels``, from the compositions of the
    groups holding at least two rows (``entries``: columns ``key``, ``label``, ``cells`` (int32
    bytes), ``n``). A held row whose key has no entry is a group of one: itself.
    """
    uniq, first, group = np.unique(keys, return_index=True, return_inverse=True)
    ekeys = entries["key"].to_numpy(dtype=np.int64).view(np.uint64)
    pos = np.minimum(np.searchsorted(uniq, ekeys), max(len(uniq) - 1, 0))
    ok = (uniq[pos] == ekeys) if len(uniq) else np.zeros(len(ekeys), dtype=bool)
    egroup = pos[ok].astype(np.int64)
    erows = entries["n"].to_numpy(dtype=np.int64)[ok]
    cells = (
        np.frombuffer(b"".join(entries["cells"][ok]), dtype="<i4").reshape(-1, len(cols))
        if cols
        else np.empty((int(ok.sum()), 0), dtype=np.int32)
    )
    labels = entries["label"].to_numpy(dtype=np.int64)[ok]
    size = np.bincount(egroup, weights=erows, minlength=len(uniq)).astype(np.int64)
    alone = np.flatnonzero(size == 0)
    size[alone] = 1
    return CopyGroups(
        cols,
        group.astype(np.int64).reshape(-1),
        size,
        np.concatenate([egroup, alone]),
        np.concatenate([labels, held_labels[first[alone]].astype(np.int64)]),
        np.concatenate([erows, np.ones(len(alone), dtype=np.int64)]),
        np.concatenate([cells.astype(np.int32), held_cells[first[alone]].astype(np.int32)]),
    )


def copy_entries(
    codes: np.ndarray,
    y: np.ndarray,
    sets: list[tuple[int, ...]],
    wanted: list[np.ndarray],
) -> pd.DataFrame:
    """The compositions of a batch's copy groups whose key is in ``wanted[s]`` (sorted uint64
    keys of the held rows) for each feature set ``sets[s]``: columns ``s``, ``key`` (int64
    bits), ``label``, ``cells`` (the values of the set, int32 bytes) and ``n`` (rows)."""
    cells, total = hash_cells(codes)
    out = []
    for s, cols in enumerate(sets):
        key = keys_without(cells, total, cols)
        want = wanted[s]
        if not len(want):
            continue
        pos = np.minimum(np.searchsorted(want, key), len(want) - 1)
        hit = np.flatnonzero(want[pos] == key)
        if not len(hit):
            continue
        sub = np.ascontiguousarray(codes[np.ix_(hit, np.asarray(cols, dtype=np.int64))], "<i4")
        frame = pd.DataFrame(
            {
                "key": key[hit].view(np.int64),
                "label": y[hit].astype(np.int64),
                "cells": [r.tobytes() for r in sub],
            }
        )
        agg = frame.groupby(["key", "label", "cells"], sort=False).size().reset_index(name="n")
        agg.insert(0, "s", s)
        out.append(agg)
    if not out:
        return pd.DataFrame(
            {
                "s": pd.Series([], dtype="int64"),
                "key": pd.Series([], dtype="int64"),
                "label": pd.Series([], dtype="int64"),
                "cells": pd.Series([], dtype="object"),
                "n": pd.Series([], dtype="int64"),
            }
        )
    return pd.concat(out, ignore_index=True)
