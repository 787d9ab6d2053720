"""Rows equal on every feature but a few: one hashing for the in-memory data audit and the Spark
engine's workers (which must not import the data audit's models).

A row's key on every feature but ``cols`` is the sum (wrapping, 64 bits) of one hash per cell
minus the cells of ``cols``: two rows with equal keys are exact copies of each other except
(maybe) in ``cols``. The Spark engine groups every row by such keys and hands the driver each
group's composition (rows per value of ``cols`` and label, :class:`CopyGroups`), so that the
copy rules count originals that are not among the driver's rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd


def splitmix64(x: np.ndarray, step: int = 1) -> np.ndarray:
    """The splitmix64 output of each element as a state ``step`` increments on (uint64 in,
    uint64 out): ``step`` picks an independent stream, as a seed does."""
    z = np.asarray(x, dtype=np.uint64) + np.uint64(step * 0x9E3779B97F4A7C15 % 2**64)
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


def factorize_keys(keys: np.ndarray) -> tuple[np.ndarray, int]:
    """``pd.factorize(keys)`` of 64-bit hashes (uint64) most of which are distinct: the codes
    (groups numbered in order of first appearance, bit for bit pandas') and the number of
    groups.

    A key whose low bits no other key shares is a group of its own: only the others (a
    fifth of the rows at a million distinct keys) go through the hash table, which costs
    twice what the low bits' count and the numbering take (the copy checks' groupings at a
    million rows)."""
    n = len(keys)
    if n < 65_536 or keys.dtype != np.uint64:
        codes, uniq = pd.factorize(keys)
        return codes, len(uniq)
    bits = min(max(int(n).bit_length() + 2, 16), 23)
    low = (keys & np.uint64((1 << bits) - 1)).astype(np.intp)
    maybe = np.flatnonzero(np.bincount(low, minlength=1 << bits)[low] > 1)
    sub = pd.factorize(keys[maybe])[0]
    # each row's group's first row: its own, or the first of its keys among ``maybe`` (whose
    # groups pandas numbers in order of first appearance: where the running maximum rises)
    top = np.maximum.accumulate(sub) if len(sub) else sub
    firsts = maybe[np.flatnonzero(np.r_[True, top[1:] > top[:-1]])] if len(sub) else maybe
    first = np.arange(n)
    first[maybe] = firsts[sub]
    starts = first == np.arange(n)
    codes = (np.cumsum(starts) - 1)[first]
    return codes, int(starts.sum())


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

    Only the groups holding at least two rows (among every counted row, held or not) are
    stored; a held row outside them is a group of one, itself, whose value and label are read
    from the held rows' own ``codes`` and ``labels`` when asked. So the driver stores nothing
    per held row without a copy: on data of distinct records a feature set costs a few
    entries, not one per held row (a 2M-row resample held 36M such entries over 135 sets).

    Attributes
    ----------
    cols : tuple of int
        The features left out of the key (sorted).
    codes : ndarray of int32, shape (held, d)
        The held rows' value ids (shared with the caller, not copied).
    labels : ndarray of int
        The held rows' labels (shared).
    members : ndarray of int64
        The held rows in a stored group (ascending).
    member_group : ndarray of int64
        Per member, its stored group.
    group_rows : ndarray of int64
        Per stored group, its rows among every counted row (at least two).
    entry_group, entry_label, entry_rows : ndarray of int64
        The stored groups' composition, one entry per group, label and values of ``cols``:
        its rows.
    entry_cells : ndarray of int32, shape (entries, len(cols))
        The values of ``cols`` of each entry.
    """

    cols: tuple[int, ...]
    codes: np.ndarray
    labels: np.ndarray
    members: np.ndarray
    member_group: np.ndarray
    group_rows: np.ndarray
    entry_group: np.ndarray
    entry_label: np.ndarray
    entry_rows: np.ndarray
    entry_cells: np.ndarray

    @property
    def stored(self) -> int:
        """Entries the driver holds for this set (compositions and members)."""
        return len(self.entry_group) + len(self.members)

    @property
    def group(self) -> np.ndarray:
        """Per held row, its group: a stored group, or ``len(group_rows) + row`` (alone)."""
        g = np.arange(len(self.labels), dtype=np.int64) + len(self.group_rows)
        g[self.members] = self.member_group
        return g

    @property
    def size(self) -> np.ndarray:
        """Per group of :attr:`group`, its rows among every counted row."""
        return np.concatenate([self.group_rows, np.ones(len(self.labels), dtype=np.int64)])

    def rows_where(self, allowed: dict[int, np.ndarray], label: int | None = None) -> np.ndarray:
        """Per group of :attr:`group`, its rows whose value of each feature ``j`` of
        ``allowed`` is one of ``allowed[j]`` (and whose label is ``label``)."""
        mask = np.ones(len(self.entry_group), dtype=bool)
        alone = np.ones(len(self.labels), dtype=bool)
        for j, ids in allowed.items():
            mask &= np.isin(self.entry_cells[:, self.cols.index(j)], ids)
            alone &= np.isin(self.codes[:, j], ids)
        if label is not None:
            mask &= self.entry_label == label
            alone &= self.labels == label
        stored = np.bincount(
            self.entry_group[mask], weights=self.entry_rows[mask], minlength=len(self.group_rows)
        ).astype(np.int64)
        return np.concatenate([stored, alone.astype(np.int64)])


class CopySource(Protocol):
    """The copy groups of held rows over every counted row (``AuditMatrix.copies``)."""

    def __call__(self, cols: tuple[int, ...]) -> CopyGroups:
        """The groups on every feature but ``cols`` (sorted)."""
        ...

    def prefetch(self, sets: Sequence[tuple[int, ...]]) -> None:
        """Prepare the groups of several feature sets at once (one pass over the data)."""
        ...


@dataclass
class GroupEntries:
    """Compositions of copy groups holding at least two rows, for one feature set: per entry
    its group's ``key`` (uint64), ``label``, values of the set (``cells``, int32 (m, k)) and
    rows ``n``."""

    key: np.ndarray
    label: np.ndarray
    cells: np.ndarray
    n: np.ndarray

    def __len__(self) -> int:
        return len(self.key)


def copy_groups(
    cols: tuple[int, ...],
    keys: np.ndarray,
    codes: np.ndarray,
    labels: np.ndarray,
    entries: GroupEntries,
) -> CopyGroups:
    """The :class:`CopyGroups` of held rows with keys ``keys`` (on every feature but ``cols``),
    value ids ``codes`` and labels ``labels``, from the compositions of the groups holding at
    least two rows (``entries``). A held row whose key has no entry is a group of one, not
    stored."""
    ukeys, egroup = np.unique(entries.key, return_inverse=True)
    egroup = egroup.astype(np.int64).reshape(-1)
    pos = np.minimum(np.searchsorted(ukeys, keys), max(len(ukeys) - 1, 0))
    hit = (ukeys[pos] == keys) if len(ukeys) else np.zeros(len(keys), dtype=bool)
    members = np.flatnonzero(hit).astype(np.int64)
    erows = np.asarray(entries.n, dtype=np.int64)
    return CopyGroups(
        cols,
        codes,
        labels,
        members,
        pos[members].astype(np.int64),
        np.bincount(egroup, weights=erows, minlength=len(ukeys)).astype(np.int64),
        egroup,
        np.asarray(entries.label, dtype=np.int64),
        erows,
        np.asarray(entries.cells, dtype=np.int32).reshape(len(erows), len(cols)),
    )


def sample_entries(
    keys: np.ndarray, codes: np.ndarray, labels: np.ndarray, cols: tuple[int, ...]
) -> GroupEntries:
    """The :class:`GroupEntries` of the held rows' own groups of two or more (the copies
    among the held rows only)."""
    uniq, inv, cnt = np.unique(keys, return_inverse=True, return_counts=True)
    inv = inv.reshape(-1)
    rows = np.flatnonzero(cnt[inv] >= 2)
    if not len(rows):
        return GroupEntries(
            np.empty(0, dtype=np.uint64),
            np.empty(0, dtype=np.int64),
            np.empty((0, len(cols)), dtype=np.int32),
            np.empty(0, dtype=np.int64),
        )
    frame = pd.DataFrame({"g": inv[rows], "label": np.asarray(labels)[rows].astype(np.int64)})
    for k, j in enumerate(cols):
        frame[f"c{k}"] = codes[rows, j]
    agg = frame.groupby(list(frame.columns), sort=True).size().reset_index(name="n")
    return GroupEntries(
        uniq[agg["g"].to_numpy()],
        agg["label"].to_numpy(dtype=np.int64),
        agg[[f"c{k}" for k in range(len(cols))]].to_numpy(dtype=np.int32).reshape(-1, len(cols)),
        agg["n"].to_numpy(dtype=np.int64),
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
