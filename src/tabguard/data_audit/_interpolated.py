"""Rows made by interpolation (synthetic oversampling such as SMOTE), found before the trigger
scan.

SMOTE adds rows of one label, each on the segment between a row of that label and one of its
nearest neighbours of the label: on every numeric feature the new row is ``a + t (b - a)`` for
one ``t`` in (0, 1). Such rows are no records of their own, and counted as evidence they make
the trigger scan's labels speak of the interpolation: the interpolated values avoid the exact
values natural rows hold (round credit limits, a country's usual distances), so those values
look depleted of the oversampled label - fraud data oversampled to 0.65 of the legitimate rows
had 7 values named as triggers → legitimate, 649 rows quarantined, with nothing planted.

A row lies *between* two rows of its label when, among its ``_NEIGHBOURS`` nearest rows of the
label (fine-grained numeric features, each scaled by its standard deviation), two rows ``a``
and ``b`` hold it at one ``t`` of ``[_T_MIN, 1 - _T_MIN]`` on every feature, its distance from
the line through them at most ``_TOLERANCE`` of its distance to the nearer one (plus what
rounding to the features' grids explains), and the three rows differ on at least
``_MIN_FEATURES`` features (on one or two features any three rows are nearly on a line).
What is not between two rows: a jittered duplicate (the noise moves it off every line: it is
near one row, at a distance the noise sets, not on a segment), an exact duplicate (no distance
at all), an attacker's copies of rows (exact or jittered, with a trigger written in), and rows
of natural data, in which three rows rarely line up on several features at once.

The label whose rows lie between two rows beyond the other label's share (the null,
measured the same way on the same features) by at least ``_EXCESS`` of its rows, with Fisher's
exact test at ``_P``, is oversampled, and the trigger scan then confirms nothing on labels alone
(only copies, or values that break the contract), and says so in a warning: interpolated rows
carry the label by construction, so labels speak of the interpolation. The decision needs the
share, not every interpolated row: ``_QUERIES`` rows of each label are asked, among at most
``_MAX_ROWS`` (a few tenths of a second on 45,000 rows). Interpolated rows near one end of
their segment, or whose two ends are not among their nearest rows, are not found: on the
benchmark's SMOTE a fifth to a third of the oversampled label's rows are, against at most
0.5 % of the other label's.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import stats

from tabguard.data_audit._matrix import AuditMatrix, _one_blas_thread

#: nearest rows of the label among which the two ends of a row's segment are looked for
_NEIGHBOURS = 10
#: distance from the line through the two ends, as a share of the distance to the nearer end
_TOLERANCE = 0.05
#: a row too near one end of its segment is not told from a jittered copy of that end
_T_MIN = 0.05
#: features on which the three rows must differ (on one or two any three rows nearly line up)
_MIN_FEATURES = 3
#: numeric features with more distinct values than this are used (amounts, not codes)
_FINE_VALUES = 100
#: share of the label's rows between two rows beyond the other label's share
_EXCESS = 0.05
#: Fisher's exact test of the two shares
_P = 1e-6
#: rows of a label searched for the ends of segments (a random sample beyond it)
_MAX_ROWS = 20_000
#: rows of a label asked whether they lie between two others (the share is what decides)
_QUERIES = 1_000


@dataclass
class Interpolated:
    """A label oversampled by interpolation.

    Attributes
    ----------
    label : int
        The label (0 or 1, as ``AuditContext.y``) whose rows were added by interpolation.
    rows : ndarray
        The rows asked that were found between two rows of the label (row positions).
    tested : int
        Rows of the label asked (a sample of its rows finite on the features used).
    share : float
        Share of the rows asked found between two rows.
    other_share : float
        The same share among the other label's rows (the null).
    p_value : float
        Fisher's exact test of the two shares.
    features : list of str
        The features the rows were compared on.
    """

    label: int
    rows: np.ndarray
    tested: int
    share: float
    other_share: float
    p_value: float
    features: list[str]


def fine_features(m: AuditMatrix) -> list[int]:
    """The numeric features with more than ``_FINE_VALUES`` distinct values (amounts): the
    features interpolation writes new values into, and rounding barely moves."""
    return [j for j in range(len(m.names)) if m.ordinal[j] and len(m.counts[j]) > _FINE_VALUES]


#: queries whose candidate neighbours are searched at a time (a block of distances: 4 MB)
_QUERY_BLOCK = 32


def nearest_rows(ref: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``NearestNeighbors(n_neighbors=k).fit(ref).kneighbors(q)`` (scikit-learn, Euclidean),
    bit for bit, in about half its time on a few thousand rows of ten or so features.

    The candidates of each query are found with one matrix product (squared distances up
    to rounding), then their exact squared distances are summed feature by feature, in the
    order and arithmetic of scikit-learn's trees, and the ``k`` smallest are returned with
    their square roots. Every row that can be among the ``k`` nearest is a candidate: a margin
    far wider than the product's rounding is kept. Where two of a query's ``k + 1`` nearest
    rows are at one distance, the order scikit-learn returns them in is its trees', so that
    query is asked of scikit-learn itself.

    Returns
    -------
    (distances, indices) : ndarray (len(q), k) of float64 and of intp
    """
    from sklearn.neighbors import NearestNeighbors

    ref = np.ascontiguousarray(ref, dtype=np.float64)
    q = np.ascontiguousarray(q, dtype=np.float64)
    n, f = ref.shape
    if f > 15 or k >= n // 2:  # scikit-learn then searches by brute force, not its tree: ask it
        return NearestNeighbors(n_neighbors=k).fit(ref).kneighbors(q)
    ref_sq = np.einsum("ij,ij->i", ref, ref)
    q_sq = np.einsum("ij,ij->i", q, q)
    dist = np.empty((len(q), k), dtype=np.float64)
    idx = np.empty((len(q), k), dtype=np.intp)
    ties = np.zeros(len(q), dtype=bool)
    with _one_blas_thread():  # small products: BLAS threads would spin against the other lane
        _nearest_blocks(ref, q, k, ref_sq, q_sq, dist, idx, ties)
    if ties.any():
        nn = NearestNeighbors(n_neighbors=k).fit(ref)
        dist[ties], idx[ties] = nn.kneighbors(q[ties])
    return dist, idx


def _nearest_blocks(
    ref: np.ndarray,
    q: np.ndarray,
    k: int,
    ref_sq: np.ndarray,
    q_sq: np.ndarray,
    dist: np.ndarray,
    idx: np.ndarray,
    ties: np.ndarray,
) -> None:
    """:func:`nearest_rows`' search, a block of queries at a time, into ``dist``, ``idx``
    and ``ties`` (the queries scikit-learn must answer)."""
    f = ref.shape[1]
    for a in range(0, len(q), _QUERY_BLOCK):
        qb = q[a : a + _QUERY_BLOCK]
        m = len(qb)
        approx = qb @ ref.T
        approx *= -2.0
        approx += ref_sq
        approx += q_sq[a : a + m, None]
        # the (k + 1)-th smallest approximate distance, and every row within the margin of it
        # (the product's rounding is ~1e-15 of the squared norms; the margin 1e-9 of them)
        kth = np.partition(approx, k, axis=1)[:, k]
        margin = 1e-9 * (q_sq[a : a + m] + ref_sq.max()) + 1e-300
        qi, ri = np.nonzero(approx <= (kth + 2.0 * margin)[:, None])
        d2 = np.zeros(len(qi), dtype=np.float64)
        diff = np.empty(len(qi), dtype=np.float64)
        for c in range(f):  # summed in scikit-learn's order: d += (x1[c] - x2[c]) ** 2
            np.subtract(qb[qi, c], ref[ri, c], out=diff)
            d2 += diff * diff
        order = np.lexsort((d2, qi))
        qi, ri, d2 = qi[order], ri[order], d2[order]
        first = np.searchsorted(qi, np.arange(m))
        last = np.append(first[1:], len(qi))
        take = first[:, None] + np.arange(k + 1)  # at least k + 1 candidates per query
        near = d2[take]
        # one more candidate beyond the k + 1 nearest, when there is one
        beyond = np.where(first + k + 1 < last, d2[np.minimum(first + k + 1, len(d2) - 1)], np.inf)
        ties[a : a + m] = (np.diff(near, axis=1) <= 0).any(axis=1) | (beyond <= near[:, -1])
        dist[a : a + m] = np.sqrt(near[:, :k])
        idx[a : a + m] = ri[take[:, :k]]


def between_rows(
    x: np.ndarray,
    codes: np.ndarray,
    steps: np.ndarray,
    rng: np.random.Generator,
    entity: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Which rows of one label lie between two others of the label.

    ``x`` holds the rows' fine-grained features, each scaled by its standard deviation: the
    segment is looked for there. ``codes`` holds their other numeric features (raw), which an
    interpolation writes too, rounded to their grid (``steps``: each feature's smallest step
    between values): there the row must be the same point of the segment up to the rounding
    of the three rows (a step and a half). Rows without a missing fine-grained value are
    searched; ``_QUERIES`` of them are asked. With ``entity`` (the contract's entity per row,
    -1 for none), the two ends must belong to entities other than the row's own: an account's
    own rows often line up (a card's frauds in one burst, minutes apart at drifting amounts),
    while SMOTE draws ends among all the label's rows. Returns the positions asked and a mask
    of those found between two of their ``_NEIGHBOURS`` nearest rows (see the module
    docstring)."""
    pool = np.flatnonzero(np.isfinite(x).all(axis=1))
    asked = pool if len(pool) <= _QUERIES else np.sort(rng.choice(pool, _QUERIES, replace=False))
    found = np.zeros(len(asked), dtype=bool)
    if len(pool) < 3 or x.shape[1] < _MIN_FEATURES:
        return asked, found
    # exact duplicates (on the fine-grained features) are one point: a row is not between
    # itself and its twin
    uniq, first = np.unique(x[pool], axis=0, return_index=True)
    cod = codes[pool][first]
    ends_entity = None if entity is None else entity[pool][first]
    own = None if entity is None else entity[asked]
    k = min(_NEIGHBOURS, len(uniq) - 1)
    if k < 2:
        return asked, found
    # rounding to each fine-grained feature's grid moves a row off its segment by at most half
    # a step
    fine_steps = []
    for f in range(uniq.shape[1]):
        d = np.diff(np.unique(uniq[:, f]))
        fine_steps.append(float(d[d > 0].min()) if (d > 0).any() else 0.0)
    slack = 0.5 * float(np.sqrt(np.sum(np.square(fine_steps))))
    q = x[asked]
    qc = codes[asked]
    dist, idx = nearest_rows(uniq, q, k + 1)
    # the query itself (distance 0: it, or its exact twin) is no end of its segment
    idx = np.where(dist[:, :1] == 0, idx[:, 1:], idx[:, :-1])
    for i1, i2 in combinations(range(k), 2):
        ia, ib = idx[:, i1], idx[:, i2]
        a, b = uniq[ia], uniq[ib]
        v, w = b - a, q - a
        vv = np.einsum("ij,ij->i", v, v)
        t = np.einsum("ij,ij->i", w, v) / np.maximum(vv, 1e-300)
        off = np.linalg.norm(w - t[:, None] * v, axis=1)
        near = np.minimum(np.linalg.norm(w, axis=1), np.linalg.norm(q - b, axis=1))
        moved = ((np.abs(v) > 0).sum(axis=1) >= _MIN_FEATURES) & (
            (np.abs(w) > 0).sum(axis=1) >= _MIN_FEATURES
        )
        ok = (
            moved
            & (vv > 0)
            & (t >= _T_MIN)
            & (t <= 1.0 - _T_MIN)
            & (near > 4.0 * slack)
            & (off <= _TOLERANCE * near + slack)
        )
        if cod.shape[1] and ok.any():
            ca, cb = cod[ia], cod[ib]
            err = np.abs(qc - (ca + t[:, None] * (cb - ca)))
            both_nan = np.isnan(qc) & np.isnan(ca) & np.isnan(cb)
            ok &= ((err <= 1.5 * steps + 1e-9) | both_nan).all(axis=1)
        if ends_entity is not None and own is not None:
            # a row without an entity (-1) is a unit of its own
            ok &= (own < 0) | ((ends_entity[ia] != own) & (ends_entity[ib] != own))
        found |= ok
    return asked, found


def find_interpolated(
    m: AuditMatrix, y: np.ndarray, random_state: int = 0, entity: np.ndarray | None = None
) -> Interpolated | None:
    """The label oversampled by interpolation (see the module docstring), or None.

    Parameters
    ----------
    m : AuditMatrix
        The audit's matrix (raw values of the model features).
    y : ndarray
        0/1 per row (``AuditContext.y``).
    random_state : int
        Seed of the sample of rows searched on very large labels.
    entity : ndarray, optional
        The contract's entity per row as integer codes (-1: none); a row between two rows
        of its own entity is not counted (:func:`between_rows`).

    Returns
    -------
    Interpolated or None
    """
    cols = fine_features(m)
    if len(cols) < _MIN_FEATURES:
        return None
    rng = np.random.default_rng(random_state)
    # each label's rows searched at the same density: as many rows of each as the smaller
    # label has (at most _MAX_ROWS; the raw values of a million rows are not copied). Among a
    # label's nearest rows, three line up by chance more often where they are denser (the
    # rounding of a feature's grid is then a larger part of their distances): clean telecom
    # customers, 88 % staying, on three fine-grained features (tenure in whole months) had
    # 36 % of the staying rows between two others against 20 % of the churners' and were
    # called oversampled; at one density 27 % against 19 %. SMOTE raises the smaller label,
    # which keeps its every row.
    size = min(int(np.sum(y == 0)), int(np.sum(y == 1)), _MAX_ROWS)
    pools = {}
    for c in (0, 1):
        rows = np.flatnonzero(y == c)
        if len(rows) > size:
            rows = np.sort(rng.choice(rows, size, replace=False))
        pools[c] = rows
    both = np.concatenate([pools[0], pools[1]])
    sd = np.nanstd(m.raw[np.ix_(both, np.asarray(cols, dtype=np.int64))], axis=0)
    keep = sd > 0
    if int(keep.sum()) < _MIN_FEATURES:
        return None
    fine = [j for j, k in zip(cols, keep, strict=True) if k]
    used = [m.names[j] for j in fine]
    coarse = [j for j in range(len(m.names)) if m.ordinal[j] and j not in cols]
    steps = np.array(
        [float(np.diff(m.uniques[j]).min()) if len(m.uniques[j]) > 1 else 0.0 for j in coarse]
    )
    per: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for c in (0, 1):
        rows = pools[c]
        x = m.raw[np.ix_(rows, np.asarray(fine, dtype=np.int64))] / sd[keep]
        codes = m.raw[np.ix_(rows, np.asarray(coarse, dtype=np.int64))].astype(float)
        ent = None if entity is None else entity[rows]
        tested, found = between_rows(x, codes, steps, rng, ent)
        per[c] = (rows[tested], found)
    best: Interpolated | None = None
    for c in (0, 1):
        rows, found = per[c]
        other_rows, other_found = per[1 - c]
        if not len(rows) or not len(other_rows):
            continue
        k, n = int(found.sum()), len(rows)
        ko, no = int(other_found.sum()), len(other_rows)
        share, null = k / n, ko / no
        if share - null < _EXCESS:
            continue
        p = float(stats.fisher_exact([[k, n - k], [ko, no - ko]], alternative="greater")[1])
        if p > _P:
            continue
        if best is None or share - null > best.share - best.other_share:
            best = Interpolated(c, rows[found], n, share, null, p, used)
    return best
