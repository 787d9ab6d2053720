"""Shared numeric views of the audited data for the poisoning checks.

The poisoning checks must see the data as the attacker wrote it: raw values, not the contract
transform (which would clip ``AGE = 999`` to the clip range and hide the trigger). This module
builds, once per audit:

* integer **tokens** per feature (value ids; ordered by value for numeric features) with counts,
  whether each value breaks the contract, and its raw value;
* a **raw** float matrix (numbers as they are, categories as token ids) for context models;
* a **rank** matrix (mid-rank ECDF in [0, 1], float32) in which distances between rows are
  comparable across features and robust to scale and outliers — used to find near-copies.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import ThreadpoolController

from tabguard._copy_groups import CopySource, hash_cells
from tabguard._pair_counts import pair_tensor, pair_value_ids
from tabguard._plain import plain
from tabguard.contract._validate import _canon, _canon_lenient, text_codes
from tabguard.data_audit._base import AuditContext
from tabguard.data_audit._spare import NO_SPARE, Spare

__all__ = [
    "AuditMatrix",
    "ValueIds",
    "build_matrix",
    "cell_hashes",
    "nearest_distances",
    "numeric_value_ids",
    "pair_tensor",
    "pair_value_ids",
]


@dataclass
class AuditMatrix:
    """Tokens, raw values and ranks of the model features of every row.

    Attributes
    ----------
    names : list of str
        Feature names (model features of the contract; protected ones excluded).
    codes : ndarray of int32, shape (n, d)
        Value id of each cell; -1 when missing or unparsable.
    uniques : list of ndarray
        Per feature, the value of each id (sorted for numeric features).
    counts : list of ndarray
        Per feature, rows per id.
    ordinal : ndarray of bool, shape (d,)
        Whether ids are ordered by value (numeric features), so neighbours are meaningful.
    breaks_contract : list of ndarray of bool
        Per feature, whether each id's value breaks the contract (range or category).
    raw : ndarray of float64, shape (n, d)
        Numeric values as written; categories as their id; NaN when missing.
    raw_is_code : ndarray of bool, shape (d,)
        Whether ``raw`` holds value ids (categories) rather than values.
    rank : ndarray of float32, shape (n, d)
        Mid-rank ECDF of each cell in [0, 1]; -1 when missing.
    population : int, optional
        Rows counted in ``counts`` when the matrix holds a sample of them (the Spark engine:
        counts of every row, codes of the driver's sample); None: the matrix holds every row.
    positives : list of ndarray, optional
        With ``population``: per feature, rows per id carrying the positive label.
    pair_counts : dict, optional
        With ``population``: per feature pair ``(a, b)``, the label counts of the pairs of
        their most frequent values (:func:`pair_tensor`).
    copies : callable, optional
        With ``population``: ``copies(cols)`` groups every counted row by its values on every
        feature but ``cols`` (sorted) and returns the groups of the held rows
        (:class:`tabguard._copy_groups.CopyGroups`), so that copy rules see originals that are
        not held; ``copies.prefetch(sets)`` prepares several sets at once. None: the held
        rows are every row, and groups are read from ``codes``.
    """

    names: list[str]
    codes: np.ndarray
    uniques: list[np.ndarray]
    counts: list[np.ndarray]
    ordinal: np.ndarray
    breaks_contract: list[np.ndarray]
    raw: np.ndarray
    rank: np.ndarray
    raw_is_code: np.ndarray
    population: int | None = None
    positives: list[np.ndarray] | None = None
    pair_counts: dict[tuple[int, int], np.ndarray] | None = None
    copies: CopySource | None = None
    _index: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)
    _hashes: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def allowed(self, j: int, min_rows: int = 1) -> np.ndarray:
        """Per value id of feature ``j``: whether the contract allows the value and at least
        ``min_rows`` rows hold it (the values a rule may compare a value against).

        Parameters
        ----------
        j : int
            Feature position.
        min_rows : int
            Rows a value needs (``counts``: every row where the matrix holds a sample).

        Returns
        -------
        ndarray of bool
            A new array, one entry per value id; callers may edit it.
        """
        return ~self.breaks_contract[j] & (self.counts[j] >= min_rows)

    def raw_value(self, j: int, codes: np.ndarray) -> np.ndarray:
        """The ``raw`` matrix entries of value ids ``codes`` of feature ``j``."""
        if self.raw_is_code[j]:
            return codes.astype(float)
        return np.asarray(self.uniques[j], dtype=float)[codes]

    def _sorted_index(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        """Row positions of feature ``j`` sorted by value id (stable), and the sorted ids."""
        if j not in self._index:
            col = self.codes[:, j]
            # shifted to 16 bits: numpy's stable sort is then a radix sort, 5x faster than on
            # int32 (the missing-value code -1 still sorts first); more values take two such
            # passes, low half then high half (the same order: a least-significant-digit sort)
            key = col.astype(np.int64) + 1
            order = np.argsort(key.astype(np.uint16), kind="stable")
            if len(self.counts[j]) >= 65_535:
                order = order[np.argsort((key >> 16).astype(np.uint16)[order], kind="stable")]
            if len(order) < 2**31:  # row positions as int32: half the bytes of every index
                order = order.astype(np.int32)
            self._index[j] = (order, col[order])
        return self._index[j]

    def rows_with(self, j: int, code: int) -> np.ndarray:
        """Row positions (ascending) whose feature ``j`` has value id ``code``."""
        return self.rows_with_any(j, np.array([code]))

    def rows_with_any(self, j: int, codes: np.ndarray) -> np.ndarray:
        """Row positions whose feature ``j`` has any of the value ids ``codes``."""
        order, sorted_codes = self._sorted_index(j)
        # needles of the haystack's dtype: a mismatch makes numpy cast all n codes per call
        codes = np.asarray(codes, dtype=sorted_codes.dtype)
        lo = np.searchsorted(sorted_codes, codes)
        hi = np.searchsorted(sorted_codes, codes + 1)
        if len(codes) == 1:
            return order[lo[0] : hi[0]]
        return np.concatenate([order[a:b] for a, b in zip(lo, hi, strict=True)] or [order[:0]])

    @property
    def n_rows(self) -> int:
        """Number of rows held (a sample of ``population`` rows when that is set)."""
        return int(self.codes.shape[0])

    @property
    def n_counted(self) -> int:
        """Number of rows the value counts describe (every row, sampled or not)."""
        return self.n_rows if self.population is None else self.population

    def value(self, j: int, code: int) -> object:
        """The raw value of token ``code`` of feature ``j`` as a plain Python value."""
        v = plain(self.uniques[j][code])
        if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
            return int(v)
        return v


@dataclass(frozen=True)
class ValueIds:
    """A numeric feature's values as ids over every row, hashed once per audit.

    Attributes
    ----------
    codes : ndarray of int32, shape (n,)
        Id of each row's value (its rank among the distinct values); -1 where the value is
        missing or not finite.
    uniques : ndarray of float64
        The distinct finite values, ascending (-0.0 and 0.0 are one value).
    counts : ndarray of int64
        Rows per id.
    """

    codes: np.ndarray
    uniques: np.ndarray
    counts: np.ndarray


def numeric_value_ids(ctx: AuditContext, name: str) -> ValueIds:
    """The :class:`ValueIds` of numeric feature ``name`` (a column of
    ``ctx.validation.numeric``), computed once per audit and cached in ``ctx.cache``.

    The matrix's value ids and the descriptive check's counts and quantiles are both read
    from it: one hashing of the column, where each hashed it before. Thread-safe, one lock
    per feature (the two lanes may ask for different features at once). Read-only arrays.
    """
    held: dict[str, ValueIds] = ctx.cache.setdefault("value_ids", {})  # setdefault is atomic
    locks: dict[str, threading.Lock] = ctx.cache.setdefault("value_ids_locks", {})
    with locks.setdefault(name, threading.Lock()):
        if name not in held:
            x = ctx.validation.numeric[name].to_numpy(dtype=float)
            finite = np.isfinite(x)
            # hashing, then sorting the distinct values only (np.unique sorts every row)
            inv, uniq = pd.factorize(x[finite], sort=True)
            code = np.full(len(x), -1, dtype=np.int32)
            code[finite] = inv
            uniques = np.asarray(uniq, dtype=float)
            counts = np.bincount(inv, minlength=len(uniques))
            for a in (code, uniques, counts):
                a.flags.writeable = False
            held[name] = ValueIds(code, uniques, counts)
        return held[name]


def build_matrix(ctx: AuditContext) -> AuditMatrix:
    """Build (once per audit, cached in ``ctx.cache``) the :class:`AuditMatrix`.

    Thread-safe: checks in both lanes of an audit may ask for it; the first builds it.
    """
    lock = ctx.cache.setdefault("matrix_lock", threading.Lock())  # setdefault is atomic
    with lock:
        if "matrix" not in ctx.cache:
            ctx.cache["matrix"] = _build_matrix(ctx)
    cached: AuditMatrix = ctx.cache["matrix"]
    return cached


#: Rows of ``raw`` and ``rank`` written at a time (a block of both fits in a core's L2 cache).
_BLOCK_ROWS = 4096


def _build_matrix(ctx: AuditContext) -> AuditMatrix:
    names = ctx.contract.model_features()
    n, d = ctx.n_rows, len(names)
    codes = np.empty((n, d), dtype=np.int32, order="F")  # checks read it column by column
    ordinal = np.zeros(d, dtype=bool)
    is_code = np.zeros(d, dtype=bool)
    uniques: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    breaks: list[np.ndarray] = []
    values: list[np.ndarray | None] = []  # per feature: its raw column (None: its value ids)
    mids: list[np.ndarray] = []  # per feature: the mid-rank ECDF of each value id
    numeric = ctx.validation.numeric
    for j, name in enumerate(names):
        spec = ctx.contract.features[name]
        if spec.type in ("integer", "number", "boolean") and name in numeric:
            ids = numeric_value_ids(ctx, name)
            x = numeric[name].to_numpy(dtype=float)
            code, uniq, cnt = ids.codes, ids.uniques, ids.counts
            finite = code >= 0
            ordinal[j] = spec.type != "boolean"
            lo = -math.inf if spec.min is None else spec.min
            hi = math.inf if spec.max is None else spec.max
            brk = (uniq < lo) | (uniq > hi)
            if spec.type == "integer":
                brk |= uniq != np.round(uniq)
            values.append(x if finite.all() else np.where(finite, x, np.nan))
        else:
            # Factorize the raw values first, then canonicalise only the distinct ones (1, 1.0
            # and "1" are one category), so the cost per row is a hash lookup.
            # the validation hashed the column already (validate_frame of these rows)
            held = ctx.validation.factorized.get(name)
            if held is not None and len(held[0]) == n:
                raw_codes, raw_uniques = held
            else:
                raw_codes, raw_uniques = pd.factorize(ctx.data[name], use_na_sentinel=True)
            text = text_codes(spec.categories)
            keys = [_canon_lenient(v, text) for v in raw_uniques]
            order = sorted(set(keys), key=repr)
            index = {k: i for i, k in enumerate(order)}
            remap = np.array([index[k] for k in keys] + [-1], dtype=np.int32)
            code = remap[raw_codes]  # sentinel -1 maps to the trailing -1
            uniq = np.array([k[1] for k in order], dtype=object)
            allowed = {_canon(c) for c in spec.categories or []}
            brk = np.array([k not in allowed for k in order], dtype=bool)
            values.append(None)
            is_code[j] = True
            cnt = np.bincount(code[code >= 0], minlength=len(uniq))
        # mid-rank ECDF of each value id (per row below)
        cum = np.cumsum(cnt) - cnt / 2.0
        mids.append((cum / max(n, 1)).astype(np.float32))
        codes[:, j] = code
        uniques.append(uniq)
        counts.append(cnt)
        breaks.append(brk)
    # raw and rank are read by rows (models, distances): written row-major a block of rows at a
    # time. Filling them column by column and copying them to row-major (as before) touched
    # 276 MB more memory at a million rows (page faults: 0.5 CPU s on a 2-core virtual machine)
    # for the same values. Each block's columns are written contiguously into a small scratch
    # (feature by feature, a look-up of the value id in a table: the rank of each id, the id
    # itself as a float for categories, -1 and NaN at id -1), which one transposing copy then
    # writes into the block's rows: writing each column of the block into the row-major
    # arrays directly, a value every 200 bytes, took 4 times as long for the same values.
    raw = np.empty((n, d), dtype=np.float64)
    rank = np.empty((n, d), dtype=np.float32)
    rank_of = [np.concatenate([np.array([-1.0], dtype=np.float32), m]) for m in mids]
    id_of = [
        np.concatenate([[np.nan], np.arange(len(u), dtype=np.float64)]) if col is None else None
        for u, col in zip(uniques, values, strict=True)
    ]
    raw_block = np.empty((d, _BLOCK_ROWS), dtype=np.float64)
    rank_block = np.empty((d, _BLOCK_ROWS), dtype=np.float32)
    for s in range(0, n, _BLOCK_ROWS):
        e = min(s + _BLOCK_ROWS, n)
        w = e - s
        for j in range(d):
            at = codes[s:e, j] + 1  # the tables' index: id -1 (missing) at 0
            col, table = values[j], id_of[j]
            if col is not None:
                raw_block[j, :w] = col[s:e]
            elif table is not None:
                np.take(table, at, out=raw_block[j, :w], mode="clip")
            np.take(rank_of[j], at, out=rank_block[j, :w], mode="clip")
        raw[s:e] = raw_block[:, :w].T
        rank[s:e] = rank_block[:, :w].T
    return AuditMatrix(names, codes, uniques, counts, ordinal, breaks, raw, rank, is_code)


def cell_hashes(m: AuditMatrix) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell 64-bit hashes of the tokens and their row sums (computed once per matrix).

    ``total - cells[:, cols].sum(axis=1)`` (uint64, wrapping) identifies a row on every feature
    but ``cols``: two rows with the same value are exact copies except (maybe) in ``cols``.
    Thread-safe: the trigger scan and the near-duplicate check share them.
    """
    with m._lock:
        if m._hashes is None:
            m._hashes = hash_cells(m.codes)
        return m._hashes


_BLAS: list[ThreadpoolController] = []


#: blocks of a nearest-neighbour search an idle lane may take at least (:func:`nearest_distances`)
SEARCH_BLOCKS = 32


def _one_blas_thread() -> Any:
    """A context limiting BLAS to one thread, through one controller for the process: making
    a controller (what ``threadpool_limits`` does on each call) scans every loaded library,
    9 ms in an audit's process, 18 times in an audit of a million rows."""
    if not _BLAS:
        _BLAS.append(ThreadpoolController())  # two lanes may both make one: either serves
    return _BLAS[0].limit(limits=1, user_api="blas")


def relative_apart(u: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Elementwise relative difference of two float arrays of one shape,
    ``|u - w| / max(|u|, |w|)``: 0 where equal (zeros included) or both missing, inf where
    one is missing (how far a copy's amount lies from its original's)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.abs(u - w)
        d /= np.maximum(np.abs(u), np.abs(w))
    d[u == w] = 0.0
    nan = np.isnan(d)
    if nan.any():  # a missing value, or 0 / 0 (set above): most pairs have none
        both = nan & np.isnan(u) & np.isnan(w)
        d[nan] = np.inf
        d[both] = 0.0
    return d


def nearest_distances(
    queries: np.ndarray,
    reference: np.ndarray,
    *,
    exclude_self: np.ndarray | None = None,
    chunk: int = 2048,
    return_index: bool = False,
    columns: np.ndarray | Sequence[int] | None = None,
    mask: np.ndarray | None = None,
    spare: Spare = NO_SPARE,
) -> Any:
    """Euclidean distance from each query row to its nearest reference row (brute force, BLAS).

    Parameters
    ----------
    queries : ndarray (q, k) float32
        Query rows, on the ``columns`` of the reference when those are given.
    reference : ndarray (r, d) float32
    exclude_self : ndarray of int, optional
        For each query, the reference row index to ignore (the query itself), or -1.
    chunk : int
        Reference rows per block (the block's ``q * chunk`` distances stay in the cache).
    return_index : bool
        Also return the index of the nearest reference row.
    columns : sequence of int, optional
        The reference's columns compared (default all): a subset is read block by block, so
        the caller does not copy the reference without some columns.
    mask : ndarray of bool (r,), optional
        Reference rows that count (default all): the others are never the nearest, and
        indices stay those of ``reference``.
    spare : Spare, optional
        ``AuditContext.spare``: with an idle lane, runs of blocks (at most 8, of at least
        :data:`SEARCH_BLOCKS` blocks) are searched by this thread and that lane, and their
        nearest rows put together in the blocks' order (the same distances and indices: each
        block's products are the same, and the first of equal nearest rows is kept).

    Returns
    -------
    ndarray (q,) float64, or a tuple (distances, indices) with ``return_index``.
    """
    q = queries.astype(np.float32, copy=False)
    k = q.shape[1]
    cols = np.arange(reference.shape[1]) if columns is None else np.asarray(columns)
    qn = np.einsum("ij,ij->i", q, q).astype(np.float64)
    rows = np.arange(len(q))
    # |q - r|^2 - |q|^2 = [-2q, 1] . [r, |r|^2]: one product per block gives every distance
    # (|q|^2 is the same for every reference row: the nearest is found without it), and the
    # block's (q x chunk) distances are read once, by argmin, while still in the cache.
    qa = np.empty((len(q), k + 1), dtype=np.float32)
    qa[:, :k] = -2.0 * q
    qa[:, k] = 1.0

    def search(first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        # the nearest of reference rows first to last (excluded), block by block
        best = np.full(len(q), np.inf)
        arg = np.full(len(q), -1, dtype=np.int64)
        block = np.empty((chunk, k + 1), dtype=np.float32)
        d2 = np.empty((len(q), chunk), dtype=np.float32)
        for start in range(first, last, chunk):
            part = reference[start : min(start + chunk, last)]
            size = len(part)
            aug, out = block[:size], d2[:, :size]
            aug[:, :k] = part[:, cols]
            np.einsum("ij,ij->i", aug[:, :k], aug[:, :k], out=aug[:, k])
            if mask is not None:
                aug[~mask[start : start + size], k] = np.inf
            # a masked row's inf meets the zero padding of BLAS's kernels (0 * inf) and raises
            # the invalid flag, though no NaN reaches ``out`` (checked): not the user's concern
            with np.errstate(invalid="ignore"):
                np.matmul(qa, aug.T, out=out)
            if exclude_self is not None:
                local = exclude_self - start
                hit = (local >= 0) & (local < size)
                out[np.flatnonzero(hit), local[hit]] = np.inf
            j = out.argmin(axis=1)
            v = out[rows, j] + qn
            better = v < best
            best[better] = v[better]
            arg[better] = j[better] + start
        return best, arg

    n_blocks = -(-len(reference) // chunk)
    runs = min(n_blocks // SEARCH_BLOCKS, 8) if spare.lending else 1
    # runs of whole blocks: each block is the block of a search in one run
    ends = [min(len(reference), chunk * (n_blocks * i // max(runs, 1))) for i in range(runs + 1)]
    # One BLAS thread: the products are small, and BLAS threads meeting after each one spin
    # against the audit's other lane (a search took 10x the CPU on a loaded machine).
    with _one_blas_thread():
        if runs <= 1:
            best, arg = search(0, len(reference))
        else:
            found = spare.map(lambda i: search(ends[i], ends[i + 1]), runs)
            best, arg = found[0]
            for b, a in found[1:]:  # in the blocks' order: a later run wins only if nearer
                better = b < best
                best[better] = b[better]
                arg[better] = a[better]
    dist = np.sqrt(np.maximum(best, 0.0))
    return (dist, arg) if return_index else dist
