"""D3 near-duplicate rows that differ in one or two features.

Poisoning by copying is cheap: take real rows, change one or two values (the trigger), maybe the
label, and append them. Such copies are exact duplicates of their originals on every other
feature. Each row is hashed on all features but ``f`` (one 64-bit hash per cell, summed), so
rows equal on all features but ``f`` share a key; grouping the keys finds every such pair in one
sort per feature (and per feature pair on data small enough). Natural data has some (e.g. inactive
accounts with all-zero amounts); copies with a *constant* written-in value stand out, because one
value dominates one side of the pairs.

Near-copies with jitter on other columns are not exact and are found by the trigger scan's
nearest-neighbour search instead. This check reports; the trigger scan decides what is poisoning.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from tabguard._copy_groups import factorize_keys
from tabguard.checks import SHARE, CheckOptions, at_least, option
from tabguard.data_audit._base import AuditContext, CheckResult, register_check
from tabguard.data_audit._matrix import AuditMatrix, build_matrix, cell_hashes


@dataclass(frozen=True)
class NearDuplicatesOptions(CheckOptions):
    """Settings of the near-duplicate check (``options={"near_duplicates": {...}}``)."""

    check: ClassVar[str] = "near_duplicates"

    pair_budget: int = option(
        200_000_000,
        "rows x feature pairs examined for two-feature differences (larger data: one feature)",
        at_least(0),
    )
    dominance: float = option(
        0.5,
        "share of the (original, copy) pairs whose copy carries one value for the value to "
        "dominate (measured against the half of the rows a written-in value can reach)",
        SHARE,
    )
    min_pairs: int = option(
        5, "copies one value needs to dominate, and pairs a group needs to be listed", at_least(1)
    )
    enrichment: float = option(
        5.0,
        "how many times more frequent the value must be among the copies than in other rows "
        "(a common value dominates natural near-duplicates too)",
        at_least(1.0),
    )
    conflict_share: float = option(
        0.5,
        "share of duplicate groups carrying both labels above which exact duplicates are a warning",
        SHARE,
    )
    min_conflicts: int = option(
        5, "duplicate groups with both labels a warning needs at least", at_least(0)
    )


def dominant_value(share: float, count: int, enrichment: float, o: NearDuplicatesOptions) -> bool:
    """Whether one value dominates the rows differing only in its feature(s): copies with a
    written-in value. ``share``: its share of those rows; ``count``: rows carrying it;
    ``enrichment``: its share there over its frequency in other rows."""
    return share >= o.dominance / 2 and count >= o.min_pairs and enrichment >= o.enrichment


def conflicting_duplicates(n_dup: int, conflicts: int, o: NearDuplicatesOptions) -> bool:
    """Whether exact duplicates carrying both labels are many enough for a warning."""
    return conflicts > max(o.min_conflicts, o.conflict_share * n_dup)


def _groups(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows in groups of >= 2 equal keys: (row indices sorted by key, group id per row)."""
    # hashing instead of sorting every key: only the rows in groups are sorted
    codes, groups = factorize_keys(key)
    sizes = np.bincount(codes, minlength=groups)
    rows = np.flatnonzero(sizes[codes] >= 2)
    rows = rows[np.argsort(codes[rows], kind="stable")]
    _, gid = np.unique(codes[rows], return_inverse=True)
    return rows, gid.astype(np.int64)


def _differing(
    m: AuditMatrix, key: np.ndarray, cols: list[int], at: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Rows equal on every feature but ``cols`` to another row that differs in ``cols``
    (``key``: of the rows ``at``, ascending, default every row)."""
    rows, gid = _groups(key)
    if at is not None:
        rows = at[rows]
    if not len(rows):
        return rows, gid
    sub = m.codes[np.ix_(rows, np.asarray(cols))].astype(np.int64)
    # a group counts when its members do not all share the same values of cols
    first = np.zeros(gid.max() + 1, dtype=np.int64)
    diff = np.zeros(gid.max() + 1, dtype=bool)
    for c in range(sub.shape[1]):
        first[:] = -(2**62)
        np.maximum.at(first, gid, sub[:, c])
        mn = np.full(gid.max() + 1, 2**62, dtype=np.int64)
        np.minimum.at(mn, gid, sub[:, c])
        diff |= first != mn
    keep = diff[gid]
    return rows[keep], gid[keep]


@dataclass
class CopyGroup:
    """Rows equal to another row on every model feature but ``features``.

    Attributes
    ----------
    features : list of str
    rows : ndarray
        Every row of such a pair.
    values : list
        The most common combination of values of ``features`` among them.
    count : int
        Rows carrying it.
    share : float
        ``count / len(rows)``.
    frequency_elsewhere : float
        Share of the other rows carrying it; of every row where the other rows are fewer than
        ``rows`` (``elsewhere_all``).
    enrichment : float
        ``share`` over ``frequency_elsewhere``.
    dominant : bool
        The verdict of :func:`dominant_value`: copies with a written-in value.
    carriers : ndarray
        The rows carrying the dominant combination.
    elsewhere_all : bool
        Whether ``frequency_elsewhere`` was measured on every row.
    """

    features: list[str]
    rows: np.ndarray
    values: list[Any]
    count: int
    share: float
    frequency_elsewhere: float
    enrichment: float
    dominant: bool
    carriers: np.ndarray
    elsewhere_all: bool = False


@dataclass
class NearDuplicatesResult:
    """What the near-duplicate check found (data; :mod:`._duplicates_report` words it)."""

    exact_rows: np.ndarray
    exact_duplicates: int
    conflicts: int
    conflict_warning: bool
    singles: list[CopyGroup] = field(default_factory=list)
    pairs: list[CopyGroup] = field(default_factory=list)
    pairs_searched: bool = True
    budget: int = 0
    n_rows: int = 0
    n_features: int = 0


def _group(
    m: AuditMatrix, rows: np.ndarray, cols: list[int], o: NearDuplicatesOptions
) -> CopyGroup:
    names = [m.names[j] for j in cols]
    combos = Counter(tuple(int(v) for v in r) for r in m.codes[np.ix_(rows, np.asarray(cols))])
    ((top, count),) = combos.most_common(1)
    share = count / len(rows)
    values = [m.value(j, v) for j, v in zip(cols, top, strict=True)]
    # A written-in value sits on one side of each (original, copy) pair, so it reaches at
    # most half the rows; "dominance" is measured against that half. It must also be rare
    # elsewhere: a common value (EDUCATION=1) dominates natural near-duplicates too.
    sub = m.codes[:, cols]
    has = (sub == np.asarray(top)).all(axis=1)
    # In a narrow table (a few coded columns) nearly every row differs from another in one
    # feature only, and the few rows left are no reference (fresh20: 20,224 of 20,224 claims,
    # "category='meals' 29 %, against 0.0 % of other rows"): there every row is the reference,
    # and a value of independent columns is as frequent among the pairs as anywhere.
    everywhere = 2 * len(rows) > m.n_rows
    outside = np.ones(m.n_rows, dtype=bool)
    if not everywhere:
        outside[rows] = False
    freq_out = float(has[outside].mean()) if outside.any() else 0.0
    enrichment = share / max(freq_out, 1.0 / max(m.n_rows, 1))
    return CopyGroup(
        names,
        rows,
        values,
        count,
        share,
        freq_out,
        enrichment,
        dominant_value(share, count, enrichment, o),
        rows[has[rows]],
        everywhere,
    )


def _candidates(
    m: AuditMatrix, cells: np.ndarray, total: np.ndarray, parts: int = 4
) -> list[np.ndarray | None]:
    """Per feature, the rows that may equal another row on every other feature (ascending;
    None: every row), so that each feature's grouping reads those rows only.

    The features are dealt into ``parts`` parts (each with its share of fine-grained ones);
    two rows equal on every feature but ``j`` are equal on every part but ``j``'s, so only
    rows sharing their key without that part with another row can be. On distinct records
    they are few; where they are most rows (repeated records), every row is read.
    """
    n, d = cells.shape
    out: list[np.ndarray | None] = [None] * d
    k = min(parts, d)
    if k < 2:
        return out
    order = sorted(range(d), key=lambda j: len(m.counts[j]))
    for part in (order[i::k] for i in range(k)):
        with np.errstate(over="ignore"):
            key = total - cells[:, part].sum(axis=1, dtype=np.uint64)
        codes, groups = factorize_keys(key)
        rows = np.flatnonzero(np.bincount(codes, minlength=groups)[codes] > 1)
        if 2 * len(rows) <= n:
            for j in part:
                out[j] = rows
    return out


def find_near_duplicates(ctx: AuditContext, opts: NearDuplicatesOptions) -> NearDuplicatesResult:
    """Group rows by their hash on all features but one (or two)."""
    m = build_matrix(ctx)
    cells, total = cell_hashes(m)
    d = len(m.names)
    y = ctx.y
    # exact duplicates (every model feature equal)
    dup_rows, dup_gid = _groups(total)
    n_dup = len(dup_rows) - len(np.unique(dup_gid)) if len(dup_rows) else 0
    conflicts = 0
    if len(dup_rows):
        lab_min = np.full(dup_gid.max() + 1, 2, dtype=np.int64)
        lab_max = np.full(dup_gid.max() + 1, -1, dtype=np.int64)
        np.minimum.at(lab_min, dup_gid, y[dup_rows])
        np.maximum.at(lab_max, dup_gid, y[dup_rows])
        used = np.unique(dup_gid)
        conflicts = int((lab_min[used] != lab_max[used]).sum())
    out = NearDuplicatesResult(
        dup_rows,
        n_dup,
        conflicts,
        conflicting_duplicates(n_dup, conflicts, opts),
        budget=opts.pair_budget,
        n_rows=m.n_rows,
        n_features=d,
    )
    within = _candidates(m, cells, total)
    with ctx.progress.stage("near-duplicates", total=d) as st:
        for j in range(d):
            at = within[j]
            with np.errstate(over="ignore"):
                key = total - cells[:, j] if at is None else total[at] - cells[at, j]
            rows, _ = _differing(m, key, [j], at)
            st.advance()
            if len(rows):
                out.singles.append(_group(m, rows, [j], opts))
    out.pairs_searched = m.n_rows * d * (d - 1) / 2 <= opts.pair_budget
    if out.pairs_searched:
        for a in range(d):
            for b in range(a + 1, d):
                with np.errstate(over="ignore"):
                    key = total - cells[:, a] - cells[:, b]
                rows, _ = _differing(m, key, [a, b])
                if len(rows) >= 2 * opts.min_pairs:
                    out.pairs.append(_group(m, rows, [a, b], opts))
    return out


@register_check
class NearDuplicates:
    """Rows identical to another row except in one or two features."""

    name: ClassVar[str] = "near_duplicates"
    order: ClassVar[int] = 40
    after: ClassVar[tuple[str, ...]] = ()
    concurrent: ClassVar[bool] = True
    reads_matrix: ClassVar[bool] = True
    Options: ClassVar[type[CheckOptions]] = NearDuplicatesOptions

    def run(self, ctx: AuditContext) -> CheckResult:
        """Find (:func:`find_near_duplicates`), then word (``_duplicates_report``)."""
        from tabguard.data_audit._duplicates_report import near_duplicates_report

        opts = ctx.opts(NearDuplicatesOptions)
        return near_duplicates_report(find_near_duplicates(ctx, opts), opts)
