"""Wording of the near-duplicate check: findings and the report section."""

from __future__ import annotations

from typing import Any

from tabguard.data_audit._base import CheckResult
from tabguard.data_audit._duplicates import CopyGroup, NearDuplicatesOptions, NearDuplicatesResult
from tabguard.reports import Finding, Section, Table

CHECK = "near_duplicates"


def near_duplicates_report(r: NearDuplicatesResult, opts: NearDuplicatesOptions) -> CheckResult:
    """Exact duplicates, copies with a written-in value (warning), other single-feature
    near-duplicate groups (info); two-feature groups only in the table."""
    res = CheckResult()
    if r.exact_duplicates:
        res.findings.append(
            Finding(
                check=CHECK,
                severity="warning" if r.conflict_warning else "info",
                message=(
                    f"{r.exact_duplicates} row(s) duplicate another row on every model feature; "
                    f"{r.conflicts} duplicate group(s) carry both labels."
                ),
                rows=[int(x) for x in r.exact_rows[:2000]],
                evidence={
                    "duplicate_rows": r.exact_duplicates,
                    "groups_with_both_labels": r.conflicts,
                },
            )
        )
    for g in r.singles:
        finding = _finding(g, opts)
        if finding is not None:
            res.findings.append(finding)
    if not r.pairs_searched:
        res.findings.append(
            Finding(
                check=CHECK,
                severity="info",
                message=(
                    f"Two-feature near-duplicates were not searched on {r.n_rows} rows x "
                    f"{r.n_features} features (budget {r.budget:.0e} row-pairs); single-feature "
                    "ones were."
                ),
            )
        )
    # Two-feature differences are common among low-information rows (inactive accounts with
    # all-zero amounts); they are listed in the table, and the trigger scan tests value pairs
    # with labels. Only the single-feature view raises findings.
    table: list[list[Any]] = [
        [" & ".join(g.features), len(g.rows), " & ".join(map(repr, g.values)), f"{g.share:.0%}"]
        for g in [*r.singles, *r.pairs]
    ]
    res.sections.append(
        Section(
            title="Near-duplicates (D3)",
            text=[
                f"{r.exact_duplicates} exact duplicate rows. Rows below are identical to another "
                "row on every model feature except the one(s) named; a single dominating value "
                "on one side suggests copies with a written-in value."
            ],
            tables=[
                Table(
                    columns=["differs in", "rows", "dominant value", "share"],
                    rows=sorted(table, key=lambda row: -int(row[1]))[:40],
                )
            ],
        )
    )
    res.summary = {
        "exact_duplicates": r.exact_duplicates,
        "near_duplicate_groups": len(table),
    }
    return res


def _finding(g: CopyGroup, opts: NearDuplicatesOptions) -> Finding | None:
    names, values = g.features, g.values
    if g.dominant:
        written = " and ".join(f"{a}={b!r}" for a, b in zip(names, values, strict=True))
        return Finding(
            check=CHECK,
            severity="warning",
            message=(
                f"{g.count} rows are copies of other rows except for {written} ({g.share:.0%} of "
                f"the {len(g.rows)} rows that differ only in {', '.join(names)}, against "
                f"{g.frequency_elsewhere:.1%} of {'all' if g.elsewhere_all else 'other'} "
                "rows): copies with a written-in value."
            ),
            features=names,
            values=values,
            rows=[int(x) for x in g.carriers],
            evidence={
                "rows_differing_only_here": len(g.rows),
                "dominant_share": g.share,
                "frequency_elsewhere": g.frequency_elsewhere,
            },
            recommendation="Check where these copies came from; see the trigger scan for "
            "whether their labels make them a backdoor.",
        )
    if len(g.rows) // 2 >= opts.min_pairs:
        return Finding(
            check=CHECK,
            severity="info",
            message=(
                f"{len(g.rows)} rows are identical to another row except in "
                f"{', '.join(names)} (no dominant value)."
            ),
            features=names,
            rows=[int(x) for x in g.rows[:2000]],
            evidence={"rows": len(g.rows), "dominant_share": g.share},
        )
    return None
