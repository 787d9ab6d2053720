"""The probing detector's compiled kernels (numba; imported on first use by ``_probing._kernels``).

Top-level functions, not closures: numba's disk cache (``cache=True``) keys a function on its
closure variables, and a closure over another compiled function differs in every process, so
the cache would never be hit. ``ring_observe`` calls the other two as globals instead.
"""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def scan(
    history: np.ndarray,
    start: int,
    count: int,
    x: np.ndarray,
    tol: np.ndarray,
    gameable: np.ndarray,
    max_changed: int,
) -> tuple[bool, bool]:
    # One pass over the live queries: does any differ from x in 1..max_changed features
    # beyond their tolerance (a walk step)? Does any equal x within tolerance on every
    # non-gameable feature and differ on a gameable one the model reads (a variation)?
    walk = False
    variation = False
    size = history.shape[0]
    for k in range(count):
        i = (start + k) % size
        n_diff = 0
        fixed_diff = False
        gameable_diff = False
        for j in range(x.shape[0]):
            a = history[i, j]
            b = x[j]
            if a == b:
                continue
            a_nan = math.isnan(a)
            b_nan = math.isnan(b)
            if a_nan and b_nan:
                continue
            t = tol[j]
            if a_nan or b_nan or abs(a - b) > t:
                n_diff += 1
                if gameable[j]:
                    gameable_diff = True
                else:
                    fixed_diff = True
                if fixed_diff and n_diff > max_changed:
                    break  # neither a walk step nor a variation: the rest cannot matter
            elif gameable[j] and t < math.inf:
                gameable_diff = True  # a small change of a self-declared value counts here
        if 1 <= n_diff <= max_changed:
            walk = True
        if gameable_diff and not fixed_diff:
            variation = True
        if walk and variation:
            break
    return walk, variation


@numba.njit(cache=True, nogil=True)
def out_count(
    x: np.ndarray, numeric: np.ndarray, low: np.ndarray, high: np.ndarray, common: np.ndarray
) -> int:
    # Features outside the reference: numbers beyond the tails, rare category codes.
    n = 0
    width = common.shape[1]
    for j in range(x.shape[0]):
        v = x[j]
        if math.isnan(v):
            continue
        if numeric[j]:
            if v < low[j] or v > high[j]:
                n += 1
        else:
            c = int(v)
            if c != v or c < 0 or c >= width or not common[j, c]:
                n += 1
    return n


@numba.njit(cache=True, nogil=True)
def ring_observe(
    times: np.ndarray,
    vectors: np.ndarray,
    bits: np.ndarray,
    meta: np.ndarray,
    out: np.ndarray,
    now: float,
    window: float,
    x: np.ndarray,
    raw: np.ndarray,
    tol: np.ndarray,
    gameable: np.ndarray,
    max_changed: int,
    split: bool,
    boundary: bool,
    numeric: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    common: np.ndarray,
    min_out: int,
    has_ood: bool,
) -> int:
    # A memory store's whole query in one call, the same steps as load / signals / save:
    # expire the ring, scan it, count out-of-distribution features, then (after `out`
    # holds the counts the flag reads) push the query. meta = start, count, counts.
    size = times.shape[0]
    n_signals = meta.shape[0] - 2
    while meta[1] > 0 and now - times[meta[0]] > window:
        b = bits[meta[0]]
        for s in range(n_signals):
            meta[2 + s] -= (b >> s) & 1
        meta[0] = (meta[0] + 1) % size
        meta[1] -= 1
    this = 0
    if meta[1] > 0:
        walk, variation = scan(vectors, meta[0], meta[1], x, tol, gameable, max_changed)
        if walk:
            this |= 1
        if variation and split:
            this |= 2
    if boundary:
        this |= 4
    if has_ood and out_count(raw, numeric, low, high, common) >= min_out:
        this |= 8
    for s in range(n_signals):
        out[s] = meta[2 + s] + ((this >> s) & 1)
    out[n_signals] = meta[1] + 1
    if meta[1] == size:
        b = bits[meta[0]]
        for s in range(n_signals):
            meta[2 + s] -= (b >> s) & 1
        meta[0] = (meta[0] + 1) % size
        meta[1] -= 1
    pos = (meta[0] + meta[1]) % size
    times[pos] = now
    vectors[pos, :] = x
    bits[pos] = this
    meta[1] += 1
    for s in range(n_signals):
        meta[2 + s] += (this >> s) & 1
    return this
