"""Wording of the label-noise check: the finding and the diagnostic section."""

from __future__ import annotations

from tabguard.data_audit._base import CheckResult
from tabguard.data_audit._label_noise import LabelNoiseOptions, LabelNoiseResult
from tabguard.reports import Finding, PlotSpec, Section, Table

CHECK = "label_noise"


def label_noise_report(r: LabelNoiseResult, opts: LabelNoiseOptions) -> CheckResult:
    """One info finding listing the issues (never suspects), and the observed-vs-expected table."""
    issues, curve, n = r.issues, r.curve, r.n_rows
    res = CheckResult()
    res.findings.append(
        Finding(
            check=CHECK,
            severity="info",
            message=(
                f"cleanlab lists {len(issues)} rows ({len(issues) / n:.1%}) whose label "
                "disagrees with the rest of the data (out-of-fold model). Natural noise "
                "produces such rows; they are not suspected of poisoning on that ground."
            ),
            rows=[int(x) for x in issues[: opts.listed]],
            evidence={"label_issues": len(issues), "listed": min(len(issues), opts.listed)},
            recommendation="Review the top-ranked rows; relabel or drop confirmed errors.",
        )
    )
    res.sections.append(
        Section(
            title="Label noise (D3)",
            text=[
                f"cleanlab confident learning lists {len(issues)} label issues. The table "
                "compares rows with an unlikely label to what the out-of-fold probabilities "
                "expect (a diagnostic: boosted models are over-confident in the tails, so some "
                "excess is normal)."
            ],
            tables=[
                Table(
                    columns=["threshold", "observed", "expected", "z", "excess share"],
                    rows=[
                        [
                            c["threshold"],
                            int(c["observed"]),
                            round(c["expected"], 1),
                            round(c["z"], 2),
                            f"{c['precision']:.0%}",
                        ]
                        for c in curve
                    ],
                )
            ],
            plots=[
                PlotSpec(
                    kind="line",
                    title="Rows with an unlikely label: observed vs expected",
                    data={
                        "x": [c["threshold"] for c in curve],
                        "series": {
                            "observed": [c["observed"] for c in curve],
                            "expected (calibrated noise)": [c["expected"] for c in curve],
                        },
                        "xlabel": "probability of the given label below",
                        "ylabel": "rows",
                    },
                )
            ],
        )
    )
    res.summary = {"label_issues": len(issues), "max_z": max(c["z"] for c in curve)}
    return res
