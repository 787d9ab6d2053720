"""Wording of the white-hat attacks (M3): gameability and surrogate extraction.

The computations (:func:`~tabguard.model_audit._attacks.minimal_flips`,
:func:`~tabguard.model_audit._attacks.extraction_curve`) return a
:class:`~tabguard.model_audit._attacks.GameabilityResult` and a fidelity curve; this module
words and draws them.
"""

from __future__ import annotations

import numpy as np

from tabguard.model_audit._attacks import GameabilityResult
from tabguard.model_audit._base import ModelCheckResult
from tabguard.reports import Finding, PlotSpec, Section, Table


def gameability_report(res: GameabilityResult, warning_rate: float) -> ModelCheckResult:
    """The gameability finding (warning from ``warning_rate``), the cheapest flips, the plot."""
    findings: list[Finding] = []
    if res.features and res.denied:
        findings.append(gameability_finding(res, warning_rate))
    examples = sorted(res.flips, key=lambda fl: fl.cost)[:15]
    table = Table(
        columns=["row", "change", "cost (quantiles)", "score before", "score after"],
        rows=[
            [
                fl.row,
                "; ".join(f"{f}: {a!r} → {b!r}" for f, (a, b) in fl.changes.items()),
                fl.cost,
                fl.score_before,
                fl.score_after,
            ]
            for fl in examples
        ],
        caption="The cheapest flips found (quantile distance summed over changed features).",
    )
    plots = []
    if res.by_feature:
        items = sorted(res.by_feature.items(), key=lambda kv: -kv[1])
        plots.append(
            PlotSpec(
                kind="barh",
                title="Gameable features used by the cheapest flips",
                data={
                    "labels": [k for k, _ in items],
                    "values": [v for _, v in items],
                    "xlabel": "denied applicants",
                },
            )
        )
    text = [
        f"Gameable model features: {', '.join(res.features) or 'none'}. Searched "
        f"{res.denied} denied applicants; gameability rate {res.rate:.1%} "
        f"(one feature: {res.single_rate:.1%})."
    ]
    return ModelCheckResult(
        findings=findings,
        sections=[
            Section(
                title="White-hat attack: minimal flips (M3)",
                text=text,
                tables=[table] if examples else [],
                plots=plots,
            )
        ],
        summary={
            "gameability_rate": res.rate,
            "single_feature_rate": res.single_rate,
            "denied_searched": res.denied,
            "by_feature": res.by_feature,
        },
    )


def gameability_finding(res: GameabilityResult, warning_rate: float) -> Finding:
    """How many denied applicants can flip, and with which features."""
    sev = "warning" if res.rate >= warning_rate else "info"
    top = sorted(res.by_feature.items(), key=lambda kv: -kv[1])
    return Finding(
        check="gameability",
        severity=sev,
        message=(
            f"{res.rate:.1%} of {res.denied} denied applicants can turn their denial into an "
            f"approval by changing one or two gameable features within the contract "
            f"({res.single_rate:.1%} with one feature); most used: "
            + ", ".join(f"{f} ({k})" for f, k in top[:3])
            + "."
        ),
        features=[f for f, _ in top],
        rows=[fl.row for fl in res.flips[:200]],
        evidence={
            "gameability_rate": res.rate,
            "single_feature_rate": res.single_rate,
            "denied_searched": res.denied,
            "median_cost_quantiles": float(np.median([f.cost for f in res.flips]))
            if res.flips
            else None,
            "by_feature": res.by_feature,
        },
        recommendation="coarse bins, clip ranges, neutral values, stronger regularisation or "
        "the fallback model reduce the rate"
        if sev == "warning"
        else None,
    )


def extraction_report(curve: list[dict[str, float]], eval_rows: int) -> ModelCheckResult:
    """The fidelity reached with the largest budget, the curve's table and plot."""
    last = curve[-1]
    finding = Finding(
        check="surrogate_extraction",
        severity="info",
        message=(
            f"With {last['queries']} queries a surrogate reproduces "
            f"{last['fidelity_scores']:.1%} of the model's decisions from score answers and "
            f"{last['fidelity_decisions']:.1%} from decision-only answers (always answering "
            f"the majority decision: {last['baseline']:.1%})."
        ),
        evidence={"curve": curve},
        recommendation="answer with decisions only, authenticate clients and throttle them",
    )
    plot = PlotSpec(
        kind="line",
        title="Surrogate fidelity vs number of queries",
        data={
            "x": [c["queries"] for c in curve],
            "series": {
                "score answers": [c["fidelity_scores"] for c in curve],
                "decision-only answers": [c["fidelity_decisions"] for c in curve],
            },
            "hline": last["baseline"],
            "logx": True,
            "xlabel": "queries",
            "ylabel": "agreement with the model's decisions",
        },
        caption="Dashed: always answering the majority decision.",
    )
    return ModelCheckResult(
        findings=[finding],
        sections=[
            Section(
                title="White-hat attack: surrogate extraction (M3)",
                text=[
                    "Queries are synthetic applicants drawn from each feature's clean "
                    f"distribution independently; fidelity is measured on {eval_rows} real "
                    "reference applicants."
                ],
                tables=[
                    Table(
                        columns=["queries", "fidelity (scores)", "fidelity (decisions)"],
                        rows=[
                            [c["queries"], c["fidelity_scores"], c["fidelity_decisions"]]
                            for c in curve
                        ],
                    )
                ],
                plots=[plot],
            )
        ],
        summary={"curve": curve},
    )
