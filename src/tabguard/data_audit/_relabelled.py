"""Copies relabelled against their originals on a value that occurs naturally (issue 11).

An attacker copies rows of one label, writes a trigger value into the copies and gives them the
other label. Where the value is common, its natural rows dilute the copies: fraud
``customer_age=34 → 0``, 135 copies of frauds among 464 natural rows, leaves the value's share of
legitimate rows at 96 % (base 97 %), and no test of the value's labels or of its share of copies
can see 22 such copies among 5,392 natural rows of ``n_tx_24h=2``. What the copies keep is
their original: a row equal to each of them on every other feature (up to the jitter of the
copying) that carries the other label.

Such label-disagreeing twins occur in clean data too: natural look-alikes of both labels
(credit's inactive accounts, every amount 0), and rows equal on the rest whose labels follow
the feature itself (credit's ``PAY_0``: a row at -2 and its twin at 2 default at the rates of
-2 and 2). The test (:func:`relabel_hubs`) counts, per feature, value and label, the records
with a twin at another value of the feature (equal on every other feature, fine-grained values
within ``RELABEL_TOLERANCE``, one unit per record), and how many of their twins carry the
other label against the count the twins' values give. The attacker's value collects copies
whose twins all carry the other label although their values rarely do (frauds' rows: 3 % of
any age's rows are frauds); the suspects are those copies alone
(:func:`relabelled_copies`), not the value's natural rows nor the originals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats

from tabguard._copy_groups import splitmix64
from tabguard.data_audit._matrix import relative_apart
from tabguard.data_audit._trigger_rules import NO_ROWS

if TYPE_CHECKING:
    from tabguard.data_audit._trigger_rules import Pattern
    from tabguard.data_audit._triggers import _Scanner

#: Rows of a group of look-alikes (equal on every feature but one, fine-grained values up to
#: their bucket) from which it is a cluster of natural look-alikes whose pairs are not compared
#: (credit's inactive accounts, every amount 0): an attacker's copy is a group with its original.
RELABEL_GROUP = 64

#: Relative difference under which two values of a fine-grained feature are a copy's and its
#: original's: the jitter of copying (a few percent). Natural look-alikes lie farther apart: at
#: ``unit_tolerance`` (15 %) the fraud data's rows of a value have twins in dozens (56 of
#: ``n_tx_24h=2``'s legitimate rows beside 10 relabelled copies), at 5 % in ones.
RELABEL_TOLERANCE = 0.05

#: The largest share of natural rows expected among a relabelled value's camouflaged copies
#: for them to be taken (:func:`relabelled_copies`).
_CAMOUFLAGE_FDR = 0.1

#: The overdispersion of a feature's values is the median squared deviate of its other values
#: over this, the median of a chi-square with one degree of freedom.
_CHI2_MEDIAN = 0.455


@dataclass(frozen=True)
class RelabelHub:
    """A value whose rows of ``label`` hold copies relabelled against their originals.

    Attributes
    ----------
    feature, value, label : int
        The feature's index, the value's id and the copies' label.
    p_value : float
        The test's one-sided p-value (:func:`relabel_hubs`).
    copies : float
        The value's records of ``label`` whose twins carry the other label (a record with
        twins of both labels counts their share).
    rows : float
        The value's records of ``label`` with a twin.
    expected : float
        The copies expected: per record, the share of its twins' values' rows carrying the
        other label.
    phi : float
        The feature's overdispersion the counts were divided by (1: binomial).
    """

    feature: int
    value: int
    label: int
    p_value: float
    copies: float
    rows: float
    expected: float
    phi: float


def _fine(sc: _Scanner) -> list[int]:
    """The fine-grained numeric features (compared within ``unit_tolerance``)."""
    m = sc.m
    return [i for i in range(len(m.names)) if sc.fine[i] and not m.raw_is_code[i]]


def _tight(sc: _Scanner, j: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Which pairs of rows ``(a, b)`` (equal on every coded feature but ``j``) are within
    ``unit_tolerance`` on every fine-grained feature but ``j``; pairs beyond it on one feature
    are not compared on the next."""
    dist = np.zeros(len(a))
    live = np.arange(len(a))
    for i in _fine(sc):
        if i == j or not len(live):
            continue
        u = sc.m.raw[a[live], i].astype(float)
        w = sc.m.raw[b[live], i].astype(float)
        dist[live] = np.maximum(dist[live], relative_apart(u, w))
        live = live[dist[live] <= RELABEL_TOLERANCE]
    tight: np.ndarray = dist <= RELABEL_TOLERANCE
    return tight


def _moved(sc: _Scanner, j: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Which pairs of rows ``(a, b)`` hold two values of ``j``: other value ids, and for a
    fine-grained feature values more than ``RELABEL_TOLERANCE`` apart (the jitter of copying
    moves a copy's amount by a few percent)."""
    m = sc.m
    moved: np.ndarray = m.codes[a, j] != m.codes[b, j]
    if sc.fine[j] and not m.raw_is_code[j]:
        u, w = m.raw[a, j].astype(float), m.raw[b, j].astype(float)
        moved &= relative_apart(u, w) > RELABEL_TOLERANCE
    return moved


def twin_pairs(sc: _Scanner, j: int) -> tuple[np.ndarray, np.ndarray]:
    """The pairs of twins on feature ``j``: rows of two entities equal on every feature but
    ``j``, fine-grained values within ``RELABEL_TOLERANCE``, at two values of ``j``
    (:func:`_moved`; the pairs :meth:`~._triggers._Scanner._tight_partners` compared, one grid
    of buckets)."""
    if j not in sc._partners:
        return NO_ROWS, NO_ROWS
    sc._tight_partners(j)
    pa, pb, dist = sc.tight_pairs[j]
    m = sc.m
    keep = (dist <= RELABEL_TOLERANCE) & _moved(sc, j, pa, pb)
    keep &= (m.codes[pa, j] >= 0) & (m.codes[pb, j] >= 0)  # a missing value is no value
    return pa[keep], pb[keep]


def originals_side(sc: _Scanner, j: int, value: int, label: int) -> bool:
    """Whether the rows of ``label`` on value id ``value`` of feature ``j`` that are paired with
    the other label are the originals of copies elsewhere, not copies.

    The copies of an attack sit on the one value written, their originals on values spread
    like the feature's: an original's twins lie on the written value, a copy's on the
    originals' values. Where the twins of this side lie mostly on one value, and that value's
    rows of the other label have their twins here less often, this side holds the originals
    (as :meth:`~._triggers._Scanner.flip_hubs` decides)."""
    pa, pb = twin_pairs(sc, j)
    flip = sc.y[pa] != sc.y[pb]
    a, b = np.concatenate([pa[flip], pb[flip]]), np.concatenate([pb[flip], pa[flip]])
    code = sc.m.codes[:, j]
    mine = (code[a] == value) & (sc.y[a] == label)
    if not mine.any():
        return False
    counts = np.bincount(code[b[mine]])
    top = int(counts.argmax())
    share = counts[top] / mine.sum()
    back = (code[a] == top) & (sc.y[a] != label)
    back_share = float(np.count_nonzero(code[b[back]] == value)) / max(int(back.sum()), 1)
    return bool(share > back_share)


def twinned_rows(sc: _Scanner, j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The rows with twins on feature ``j`` (ascending) and, per row, its evidence: rows of
    another entity equal to it on every feature but ``j``, fine-grained values within
    ``RELABEL_TOLERANCE``, at another value of ``j`` (:func:`_moved`; the pairs
    :meth:`~._triggers._Scanner._tight_partners` compared, one grid of buckets). Per row: its
    weight, the share of its twins carrying the other label and the share expected to (per
    twin, the other label's share among the rows of the twin's value), each weighed by one
    over the rows of its record (one unit of evidence per record: the contract's entity's rows
    at one value, else rows equal on every feature up to their buckets; of one label)."""
    pa, pb = twin_pairs(sc, j)
    if not len(pa):
        return NO_ROWS, np.empty(0), np.empty(0), np.empty(0)
    m = sc.m
    rows, inv = np.unique(np.concatenate([pa, pb]), return_inverse=True)
    a, b = inv[: len(pa)], inv[len(pa) :]
    n = len(rows)
    # a twin's label follows its own value of j (credit's PAY_0: a row at -2 and its twin at 2,
    # equal on the rest, default at the rates of -2 and 2): the chance that the twin of a row
    # of label c carries the other label is the other label's share among its value's rows
    cnt = m.counts[j].astype(float)
    share1 = np.asarray(sc.positives(j), dtype=float) / np.maximum(cnt, 1.0)
    ya, yb = sc.y[pa], sc.y[pb]
    ea = np.where(ya == 1, 1.0 - share1[m.codes[pb, j]], share1[m.codes[pb, j]])
    eb = np.where(yb == 1, 1.0 - share1[m.codes[pa, j]], share1[m.codes[pa, j]])
    twins = np.bincount(a, minlength=n) + np.bincount(b, minlength=n)
    flip = (ya != yb).astype(float)
    flips = np.bincount(a, weights=flip, minlength=n) + np.bincount(b, weights=flip, minlength=n)
    expect = np.bincount(a, weights=ea, minlength=n) + np.bincount(b, weights=eb, minlength=n)
    t = np.maximum(twins, 1)
    # one unit of evidence per record: a record's repeats (resampled rows, an account's
    # months) repeat its look-alikes' pairs (credit panel: two inactive accounts of two labels
    # paired in each of their months): an entity's rows at one value, else rows equal on every
    # feature up to their buckets, of one label
    with np.errstate(over="ignore"):
        if sc.entity is None:
            rec = sc.tolerant_row_key()[rows]
        else:
            rec = splitmix64(sc.entity[rows].astype(np.uint64)) + sc._tolerant_cell(j, rows)
        unit = pd.factorize(rec * np.uint64(3) + sc.y[rows].astype(np.uint64))[0]
    weight = 1.0 / np.bincount(unit)[unit]
    return rows, weight, flips / t * weight, expect / t * weight


def relabel_hubs(sc: _Scanner, threshold: float) -> list[RelabelHub]:
    """The values whose records of a label are paired with the other label beyond what their
    twins' values give (see the module docstring), at p-values up to ``threshold``.

    Per feature, value and label: the records with twins at another value of the feature
    (:func:`twinned_rows`), the records among them paired with the other label (a record with
    twins of both labels counts their share), and the pairings expected, per twin the other
    label's share among the rows of its value (a natural twin's label follows its own value:
    credit's ``PAY_0``). Tested as a binomial of the records' mean chance, every count divided
    by the feature's overdispersion (the median squared deviate of its other values with
    ``min_rows`` records over its expectation; 1 with fewer than 4 such values), where at least
    ``min_rows`` are paired and most of the records beyond the expected ones are
    (``copy_share``: copies are relabelled whenever they were copied). Where both labels of a
    value pass, the side with the smaller p-value holds the copies; a side holding the originals
    of copies elsewhere (:func:`originals_side`) is not a hub. Leaks are left out; none on a
    sample of the rows (the Spark engine: originals may not be held)."""
    m = sc.m
    if m.population is not None or not sc.n:
        return []
    sc.near_copies()
    found: dict[tuple[int, int], RelabelHub] = {}
    for j in range(len(m.names)):
        if j in sc.leaks():
            continue
        rows, units, relabelled, expected = twinned_rows(sc, j)
        if relabelled.sum() < sc.o.min_rows:
            continue
        code = m.codes[rows, j]
        size = len(m.counts[j])
        for c in (0, 1):
            mine = sc.y[rows] == c
            t = np.bincount(code[mine], weights=units[mine], minlength=size)
            x = np.bincount(code[mine], weights=relabelled[mine], minlength=size)
            e = np.bincount(code[mine], weights=expected[mine], minlength=size)
            q = np.clip(e / np.maximum(t, 1e-9), 1e-9, 1 - 1e-9)
            ref = np.flatnonzero(t >= sc.o.min_rows)
            # copies are relabelled whenever they were copied: most twinned records beyond
            # the expected ones carry the other label (clean expenses, weekend=0: 739 of
            # 4,358 against 601 expected, a lean of the look-alikes' labels, no copies)
            cand = (x >= sc.o.min_rows) & (x - e >= sc.o.copy_share * np.maximum(t - e, 1e-9))
            for v in np.flatnonzero(cand):
                others = ref[ref != v]
                phi = 1.0
                if len(others) >= 4:
                    z2 = (x[others] - e[others]) ** 2 / (t[others] * q[others] * (1.0 - q[others]))
                    phi = max(1.0, float(np.median(z2)) / _CHI2_MEDIAN)
                # a binomial of the rows' mean chance: wider than the rows' own (Poisson-
                # binomial) spread, so no smaller a p-value
                pv = float(stats.binom.sf(math.ceil(x[v] / phi) - 1, math.ceil(t[v] / phi), q[v]))
                if pv > threshold or originals_side(sc, j, int(v), c):
                    continue
                hub = RelabelHub(j, int(v), c, pv, float(x[v]), float(t[v]), float(e[v]), phi)
                other = found.get((j, int(v)))
                if other is None or pv < other.p_value:
                    found[(j, int(v))] = hub
    return sorted(found.values(), key=lambda h: h.p_value)


def _twins_on_grids(
    sc: _Scanner, j: int, query: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of ``query`` (ascending), whether it has a twin (equal on every feature but
    ``j``, fine-grained values within ``RELABEL_TOLERANCE``, another entity's) of the other
    label, one of its own label at another value of ``j`` (:func:`_moved`), and an earlier
    row of its own label at the same value (a repeat), on any grid of buckets (a jittered copy
    and its original may lie on two sides of a bucket's edge on one of them)."""
    other = np.zeros(len(query), dtype=bool)
    own_moved = np.zeros(len(query), dtype=bool)
    repeat = np.zeros(len(query), dtype=bool)
    for q_pos, a, b in sc._grid_pairs((j,), query, largest=RELABEL_GROUP):
        tight = _tight(sc, j, a, b)
        q_pos, a, b = q_pos[tight], a[tight], b[tight]
        flip = sc.y[a] != sc.y[b]
        moved = _moved(sc, j, a, b)
        other[q_pos[flip]] = True
        own_moved[q_pos[~flip & moved]] = True
        repeat[q_pos[~flip & ~moved & (b < a)]] = True
    return other, own_moved, repeat


def _natural_few(found: int, natural: int, of: int, rows: int) -> bool:
    """Whether ``found`` rows of ``rows`` with a twin are copies: ``natural`` of ``of`` rows
    of the value's other label have such a twin (natural look-alikes), and at that rate
    under ``_CAMOUFLAGE_FDR`` of the ``found`` would be natural."""
    return bool(found) and natural / max(of, 1) * rows <= _CAMOUFLAGE_FDR * found


def relabelled_copies(sc: _Scanner, j: int, value: int, label: int) -> np.ndarray:
    """The copies on value id ``value`` of feature ``j`` (ascending).

    Its rows of ``label`` with a twin of the other label equal on every other feature
    (fine-grained values within ``RELABEL_TOLERANCE``; ``j``'s value may be the same: a copy
    of a row that held it already). The value's natural rows have no such twin; the originals
    carry the other label.

    An attacker who camouflages gives some copies their original's label: rows of the other
    label with a twin of their own label at another value of ``j`` (the value written). They
    are taken where the value's rows of ``label`` that have such a twin (natural look-alikes:
    they are not relabelled copies) predict under ``_CAMOUFLAGE_FDR`` of them natural (fraud
    ``n_tx_24h=2 → 0``: 3 camouflaged copies; 1 of 5,250 legitimate rows with such a twin);
    where look-alikes are common (credit's inactive accounts), none are. Copies that keep
    their original's label where the original held the value already repeat it: the later
    row of each pair of rows of the other label equal at the value (which of the two is the
    copy cannot be told), taken on the same condition (credit ``PAY_3=-1 → 1``, copies of
    defaulters kept as defaulters: 25 such rows among 1,096 defaulters, 24 of a copy's pair,
    against 9 among the 5,046 good payers)."""
    rows = sc.m.rows_with(j, value)
    mine = np.sort(rows[sc.y[rows] == label])
    rest = np.sort(rows[sc.y[rows] != label])
    relabelled, own_moved, own_repeat = _twins_on_grids(sc, j, mine)
    taken = mine[relabelled]
    if not len(rest):
        return taken
    untaken = len(mine) - len(taken)
    _, camouflaged, repeat = _twins_on_grids(sc, j, rest)
    for found, alike in ((camouflaged, own_moved), (repeat, own_repeat)):
        n_alike = int(np.count_nonzero(alike & ~relabelled))
        if _natural_few(int(np.count_nonzero(found)), n_alike, untaken, len(rest)):
            taken = np.union1d(taken, rest[found])
    return taken


def jittered_repeats(sc: _Scanner, p: Pattern) -> np.ndarray:
    """The rows with its label of a value collecting copies (``p.p_hub``) that repeat an
    earlier row with the label at the value up to the jitter of copying (ascending), where the
    value's rows of the other label that do so predict under ``_CAMOUFLAGE_FDR`` of them
    natural; none elsewhere.

    Copies of rows that held the value already equal their original on every feature and
    label: neither the hub test (which counts copies at another value) nor its exact repeats
    (:meth:`~._triggers._Scanner.hub_repeats`) see them once their amounts are jittered
    (credit ``PAY_3=-1 → 1``, 204 copies of defaulters with 1 % jitter: 18 such rows among
    the 27 the hub left out, R 0.868). Against the feature's other values the count is no
    test (the inactive accounts of ``PAY_3=-2`` repeat each other); the value's other label
    is the null, as for :func:`relabelled_copies`. Which row of a pair is the copy cannot be
    told: the later one is taken. None on a sample of the rows (the Spark engine)."""
    if p.p_hub is None or len(p.cols) != 1 or sc.m.population is not None:
        return NO_ROWS
    rows = sc.m.rows_with(p.cols[0], p.codes[0])
    mine = np.sort(rows[sc.y[rows] == p.label])
    rest = np.sort(rows[sc.y[rows] != p.label])
    repeat = _twins_on_grids(sc, p.cols[0], mine)[2]
    natural = int(np.count_nonzero(_twins_on_grids(sc, p.cols[0], rest)[2]))
    if not _natural_few(int(np.count_nonzero(repeat)), natural, len(rest), len(mine)):
        return NO_ROWS
    return mine[repeat]


def target_label(sc: _Scanner, copies: np.ndarray, label: int) -> int:
    """The attacker's target label on a value whose copies (:func:`relabelled_copies`) are
    relabelled against their originals with ``label``: the label most of the copies carry.

    Copies of rows of the target label keep it, and only those camouflaged with the other
    label are relabelled against their originals: credit ``PAY_3=-1 → 1``, 204 copies of
    defaulters, 34 camouflaged as good payers, the relabelled side is 0 and 146 of the 182
    copies taken carry 1. Copies of the other label's rows relabelled as the target are the
    relabelled side themselves; a tie keeps ``label``."""
    own = int(np.count_nonzero(sc.y[copies] == label))
    return label if 2 * own >= len(copies) else 1 - label


def heaped_copies(sc: _Scanner, p: Pattern) -> np.ndarray | None:
    """The copies among the rows with its label of a value (or band) named on its labels whose
    natural rows are many though the values beside it hold few, where the copies explain its
    label excess (ascending); None otherwise (the values beside it say that few of its rows
    with the label are natural, and every one stays a suspect:
    :meth:`~._triggers._Scanner.few_natural`).

    The values beside a value predict its natural rows
    (:meth:`~._triggers._Scanner.natural_carriers`), except where the value is a heap: a round
    amount holds a hundred rows while the amounts beside it hold a few each (credit
    ``PAY_AMT5=1100``: 125 natural rows, its neighbours 1-7 each). Copies written onto a heap
    leave its natural rows with the label among the suspects (fresh natural 27666 #5: 111
    relabelled copies of good payers beside 42 natural defaulters, P 0.725). The heap shows in
    the value's rows of the other label that are no copies (no twin on the grids,
    :func:`_twins_on_grids`): more than the neighbours give (Poisson, at ``copy_p``). The rows
    with the label that have a twin (of the other label: relabelled; of their own label at
    another value: copies that keep their label; an earlier equal row at the value: a repeat)
    are the copies, and the suspects where, less the share of the other label's rows with
    such a twin (natural look-alikes), they reach the label's excess over the counterfactual
    (its upper bound, ``camouflage_z`` standard errors): the rows left out are no more than
    the value's natural rows with the label. Rows written in place have no such twin: the
    value keeps every row. None on a sample of the rows (the Spark engine: originals may not
    be held)."""
    if len(p.cols) != 1 or p.written or math.isnan(p.expected_other) or sc.m.population is not None:
        return None
    natural_other = sc.natural_carriers(p, 1 - p.label)
    if math.isnan(natural_other):
        return None
    j = p.cols[0]
    mine = np.sort(p.rows[sc.y[p.rows] == p.label])
    rest = np.sort(p.rows[sc.y[p.rows] != p.label])
    if not len(mine) or not len(rest):
        return None
    alike = np.logical_or.reduce(_twins_on_grids(sc, j, rest))
    plain = int(np.count_nonzero(~alike))
    if stats.poisson.sf(plain - 1, max(natural_other, 1.0)) > sc.o.copy_p:
        return None  # no heap: the neighbours' few natural rows stand
    copied = np.logical_or.reduce(_twins_on_grids(sc, j, mine))
    lookalikes = np.count_nonzero(alike) / len(rest) * len(mine)
    excess = p.expected_other + sc.o.camouflage_z * p.expected_se - p.observed_other
    if np.count_nonzero(copied) - lookalikes < max(excess, 1.0):
        return None
    return mine[copied]
