"""Wording of the label-noise check: the finding and the diagnostic section."""

from __future__ import annotations

import numpy as np

from tabguard.data_audit._base import CheckResult
from tabguard.data_audit._label_noise import LabelNoiseOptions, LabelNoiseResult, TrustedResult
from tabguard.reports import Finding, PlotSpec, Section, Table

CHECK = "label_noise"


def trusted_severity(t: TrustedResult, z_critical: float) -> str:
    """critical when more rows are flagged than the level explains (z >= ``z_critical``):
    labels were changed; warning when rows are flagged at the expected rate (each one is
    improbable, as ``level`` of clean rows are); info when none is."""
    if t.z >= z_critical and len(t.flagged) > 0:
        return "critical"
    return "warning" if len(t.flagged) else "info"


def _segment(d: dict[str, object]) -> str:
    return "all rows" if not d["feature"] else f"{d['feature']}={d['value']!r}"


def shift_finding(t: TrustedResult) -> Finding:
    """A warning naming the segments whose label rate differs from the trusted sample's."""
    parts = [
        f"{_segment(d)}: {float(d['rate']):.1%} against {float(d['trusted_rate']):.1%} in "  # type: ignore[arg-type]
        f"{d['trusted_rows']} trusted rows (z = {float(d['z']):.1f})"  # type: ignore[arg-type]
        for d in t.shifts[:5]
    ]
    named = [d for d in t.shifts if d["feature"]]
    return Finding(
        check=CHECK,
        severity="warning",
        message=(
            "The positive-label rate differs from the trusted sample: " + "; ".join(parts) + ". "
            "Labels flipped at random or inside a segment show here although no row is "
            "improbable enough to flag; a trusted sample from another period or population "
            "does too."
        ),
        features=[str(d["feature"]) for d in named[:5]],
        values=[d["value"] for d in named[:5]],
        evidence={"label_rate_shifts": t.shifts[:20]},
        recommendation=(
            "If the trusted sample is representative, review how the rows of these segments "
            "were labelled (the flips cannot be told apart row by row)."
        ),
    )


def overlap_finding(t: TrustedResult) -> Finding:
    """A warning that rows of the data are also in the trusted sample (they are not scored)."""
    among = (
        f"{t.overlap} of the {t.overlap_scope:,} rows scored (the driver sample's random rows) are"
        if t.overlap_scope
        else f"{t.overlap} rows of the data are"
    )
    return Finding(
        check=CHECK,
        severity="warning",
        message=(
            f"{among} also in the trusted sample (matched by "
            f"{t.overlap_by}): they count as vetted and were not tested. Expected when the "
            "trusted sample is a reviewed slice of this data; otherwise the trusted sample was "
            "drawn from the data under audit and vouches for nothing it contains."
        ),
        evidence={
            "rows_in_trusted": t.overlap,
            "matched_by": t.overlap_by,
            **({"rows_scored": t.overlap_scope} if t.overlap_scope else {}),
        },
        recommendation=(
            "Pass a trusted sample vetted independently of this data (a reviewed slice, last "
            "year's audited rows); labels of rows copied from the data are not evidence."
        ),
    )


def trusted_report(t: TrustedResult, opts: LabelNoiseOptions) -> CheckResult:
    """The finding (flagged rows are suspects, quarantined with why) and its section."""
    res = CheckResult()
    sev = trusted_severity(t, opts.trusted_z)
    n = len(t.pvalues)
    k = len(t.flagged)
    why = f"label improbable under the trusted sample (conformal p <= {t.level:g})"
    # z's unit of evidence is named where the contract has one
    zs = f"z = {t.z:.1f}" + (f", each {t.entity} one unit" if t.entity else "")
    raised = (
        f" The level was raised from {t.nominal_level:g}: at {t.level:g} an estimated "
        f"{(k - t.expected) / k:.0%} of the flags are flips."
        if t.level > t.nominal_level and k
        else ""
    )
    if sev == "critical":
        message = (
            f"{k} rows ({k / n:.1%}) carry a label that models of the {t.n_trusted} trusted "
            f"rows find improbable (p <= {t.level:g}); clean data gives about "
            f"{t.expected:.0f} ({zs}): labels were changed.{raised}"
        )
        rec = (
            "Review the flagged rows (most improbable first) and the data's provenance; "
            "relabel or drop confirmed flips before training."
        )
    elif sev == "warning":
        # more flags than expected but not significantly so: with an entity, they gather in
        # a few entities, whose rows share the entity's own effect
        as_many = (
            f"more than clean data gives ({t.expected:.0f}) but not significantly ({zs}): they "
            f"gather in a few {t.entity} values, whose rows share their own effect"
            if t.entity and k > 1.5 * t.expected
            else f"about as many as clean data gives ({t.expected:.0f}, {zs})"
        )
        message = (
            f"{k} rows ({k / n:.1%}) carry a label that models of the {t.n_trusted} trusted "
            f"rows find improbable (p <= {t.level:g}), {as_many}: no evidence that labels "
            f"were changed. A share {t.level:g} of clean rows is flagged by design; they are "
            "listed for review, not suspected or quarantined."
        )
        rec = "Review the listed rows if you wish; lower label_noise.trusted_level to list fewer."
    else:
        message = (
            f"No row's label is improbable at p <= {t.level:g} against the {t.n_trusted} "
            "trusted rows."
        )
        rec = None
    res.findings.append(
        Finding(
            check=CHECK,
            severity=sev,
            message=message,
            rows=[int(x) for x in t.flagged],
            evidence={
                "trusted_rows": t.n_trusted,
                "level": t.level,
                "nominal_level": t.nominal_level,
                "flagged": k,
                "expected": round(t.expected, 1),
                "z": round(t.z, 2),
                "labels": t.labels,
                "min_pvalue": float(np.min(t.pvalues)) if n else 1.0,
            },
            recommendation=rec,
        )
    )
    if t.shifts:
        res.findings.append(shift_finding(t))
    if t.overlap:
        res.findings.append(overlap_finding(t))
    if sev == "critical":
        # Without an excess the flags are the share of clean rows flagged by design: listed
        # in the finding for review, not suspects - a clean file would lose 1 % of its rows.
        res.suspicious_rows = np.sort(t.flagged).astype(np.int64)
        res.quarantine = {int(r): why for r in t.flagged}
    res.sections.append(
        Section(
            title="Labels against the trusted sample",
            text=[
                f"Models fitted on the {t.n_trusted} trusted rows only (5-fold cross-fitting) "
                "score each row by the probability of the other label; the score is compared "
                "with held-out trusted rows of the same label (conformal p-value). A row is "
                f"flagged at p <= {t.nominal_level:g} (on clean data that share of rows is "
                "flagged). More flags than that, beyond the trusted sample's own sampling "
                "error (z), mean labels were changed; the level is then raised (up to "
                "label_noise.trusted_max_level) while an estimated half of the flags are "
                f"flips. Flagged here at p <= {t.level:g}. A label whose trusted rows number "
                "fewer than 1/level - 1 cannot be flagged at all (achievable level 0)."
            ],
            tables=[
                Table(
                    columns=["label", "rows", "flagged", "trusted rows", "achievable level"],
                    rows=[
                        [
                            str(d["label"]),
                            d["rows"],
                            d["flagged"],
                            d["trusted"],
                            f"{float(d['achievable']):.4f}",  # type: ignore[arg-type]
                        ]
                        for d in t.labels
                    ],
                ),
                Table(
                    columns=["level", "flagged", "expected on clean data", "z"],
                    rows=[
                        [c["level"], int(c["flagged"]), round(c["expected"], 1), round(c["z"], 2)]
                        for c in t.curve
                    ],
                ),
            ],
            plots=[
                PlotSpec(
                    kind="line",
                    title="Rows flagged against the trusted sample: observed vs clean data",
                    data={
                        "x": [c["level"] for c in t.curve],
                        "series": {
                            "flagged": [c["flagged"] for c in t.curve],
                            "expected on clean data": [c["expected"] for c in t.curve],
                        },
                        "xlabel": "level (conformal p-value at most)",
                        "ylabel": "rows",
                    },
                )
            ],
        )
    )
    res.summary = {"trusted_flagged": k, "trusted_expected": t.expected, "trusted_z": t.z}
    return res


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
    if r.trusted is not None:
        t = trusted_report(r.trusted, opts)
        res.findings += t.findings
        res.sections += t.sections
        res.suspicious_rows = t.suspicious_rows
        res.quarantine = t.quarantine
        res.summary.update(t.summary)
    return res
