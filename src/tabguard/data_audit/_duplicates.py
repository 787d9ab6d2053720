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
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from tabguard.checks import SHARE, CheckOptions, at_least, option
from tabguard.data_audit._base import AuditContext, CheckResult, register_check
from tabguard.data_audit._matrix import AuditMatrix, build_matrix, cell_hashes
from tabguard.reports import Finding, Section, Table


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
    codes, uniq = pd.factorize(key)
    sizes = np.bincount(codes, minlength=len(uniq))
    rows = np.flatnonzero(sizes[codes] >= 2)
    rows = rows[np.argsort(codes[rows], kind="stable")]
    _, gid = np.unique(codes[rows], return_inverse=True)
    return rows, gid.astype(np.int64)


def _differing(m: AuditMatrix, key: np.ndarray, cols: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Rows equal on every feature but ``cols`` to another row that differs in ``cols``."""
    rows, gid = _groups(key)
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


@register_check
class NearDuplicates:
    """Rows identical to another row except in one or two features."""

    name: ClassVar[str] = "near_duplicates"
    order: ClassVar[int] = 40
    after: ClassVar[tuple[str, ...]] = ()
    concurrent: ClassVar[bool] = True
    Options: ClassVar[type[CheckOptions]] = NearDuplicatesOptions

    def run(self, ctx: AuditContext) -> CheckResult:
        """Group rows by their hash on all features but one (or two)."""
        opts = ctx.opts(NearDuplicatesOptions)
        res = CheckResult()
        m = build_matrix(ctx)
        cells, total = cell_hashes(m)
        d = len(m.names)
        y = ctx.y
        table: list[list[Any]] = []
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
        if n_dup:
            res.findings.append(
                Finding(
                    check=self.name,
                    severity="warning"
                    if conflicting_duplicates(n_dup, conflicts, opts)
                    else "info",
                    message=(
                        f"{n_dup} row(s) duplicate another row on every model feature; "
                        f"{conflicts} duplicate group(s) carry both labels."
                    ),
                    rows=[int(r) for r in dup_rows[:2000]],
                    evidence={"duplicate_rows": n_dup, "groups_with_both_labels": conflicts},
                )
            )
        with ctx.progress.stage("near-duplicates", total=d) as st:
            for j in range(d):
                with np.errstate(over="ignore"):
                    key = total - cells[:, j]
                rows, _ = _differing(m, key, [j])
                st.advance()
                if len(rows):
                    self._report(res, table, m, rows, [j], opts)
        budget = opts.pair_budget
        if m.n_rows * d * (d - 1) / 2 <= budget:
            for a in range(d):
                for b in range(a + 1, d):
                    with np.errstate(over="ignore"):
                        key = total - cells[:, a] - cells[:, b]
                    rows, _ = _differing(m, key, [a, b])
                    if len(rows) >= 2 * opts.min_pairs:
                        self._report(res, table, m, rows, [a, b], opts, pairs_only=True)
        else:
            res.findings.append(
                Finding(
                    check=self.name,
                    severity="info",
                    message=(
                        f"Two-feature near-duplicates were not searched on {m.n_rows} rows x "
                        f"{d} features (budget {budget:.0e} row-pairs); single-feature ones "
                        "were."
                    ),
                )
            )
        res.sections.append(
            Section(
                title="Near-duplicates (D3)",
                text=[
                    f"{n_dup} exact duplicate rows. Rows below are identical to another row on "
                    "every model feature except the one(s) named; a single dominating value on one "
                    "side suggests copies with a written-in value."
                ],
                tables=[
                    Table(
                        columns=["differs in", "rows", "dominant value", "share"],
                        rows=sorted(table, key=lambda r: -int(r[1]))[:40],
                    )
                ],
            )
        )
        res.summary = {"exact_duplicates": n_dup, "near_duplicate_groups": len(table)}
        return res

    @staticmethod
    def _report(
        res: CheckResult,
        table: list[list[Any]],
        m: AuditMatrix,
        rows: np.ndarray,
        cols: list[int],
        opts: NearDuplicatesOptions,
        pairs_only: bool = False,
    ) -> None:
        names = [m.names[j] for j in cols]
        combos = Counter(tuple(int(v) for v in r) for r in m.codes[np.ix_(rows, np.asarray(cols))])
        ((top, count),) = combos.most_common(1)
        share = count / len(rows)
        values = [m.value(j, v) for j, v in zip(cols, top, strict=True)]
        table.append([" & ".join(names), len(rows), " & ".join(map(repr, values)), f"{share:.0%}"])
        n_pairs = len(rows) // 2
        # A written-in value sits on one side of each (original, copy) pair, so it reaches at
        # most half the rows; "dominance" is measured against that half. It must also be rare
        # elsewhere: a common value (EDUCATION=1) dominates natural near-duplicates too.
        sub = m.codes[:, cols]
        has = (sub == np.asarray(top)).all(axis=1)
        outside = np.ones(m.n_rows, dtype=bool)
        outside[rows] = False
        freq_out = float(has[outside].mean()) if outside.any() else 0.0
        enrichment = share / max(freq_out, 1.0 / max(m.n_rows, 1))
        dominant = dominant_value(share, count, enrichment, opts)
        if pairs_only:
            # Two-feature differences are common among low-information rows (inactive accounts
            # with all-zero amounts); they are listed in the table, and the trigger scan tests
            # value pairs with labels. Only the single-feature view raises findings.
            return
        if dominant:
            sel = rows[has[rows]]
            res.findings.append(
                Finding(
                    check="near_duplicates",
                    severity="warning",
                    message=(
                        f"{count} rows are copies of other rows except for "
                        f"{' and '.join(f'{a}={b!r}' for a, b in zip(names, values, strict=True))}"
                        f" ({share:.0%} of the {len(rows)} rows that differ only in "
                        f"{', '.join(names)}, against {freq_out:.1%} of other rows): copies "
                        "with a written-in value."
                    ),
                    features=names,
                    values=values,
                    rows=[int(r) for r in sel],
                    evidence={
                        "rows_differing_only_here": len(rows),
                        "dominant_share": share,
                        "frequency_elsewhere": freq_out,
                    },
                    recommendation="Check where these copies came from; see the trigger scan for "
                    "whether their labels make them a backdoor.",
                )
            )
        elif n_pairs >= opts.min_pairs:
            res.findings.append(
                Finding(
                    check="near_duplicates",
                    severity="info",
                    message=(
                        f"{len(rows)} rows are identical to another row except in "
                        f"{', '.join(names)} (no dominant value)."
                    ),
                    features=names,
                    rows=[int(r) for r in rows[:2000]],
                    evidence={"rows": len(rows), "dominant_share": share},
                )
            )
