"""The training report (``report.html`` in the model directory), from ``evaluation.json`` data."""

from __future__ import annotations

from typing import Any

from tabguard.contract import Contract
from tabguard.reports import Finding, PlotSpec, Report, Section, Table, now_iso, render_html
from tabguard.training._evaluate import METRICS

_LABELS = {
    "auc": "AUC",
    "log_loss": "log loss",
    "brier": "Brier score",
    "accuracy": "accuracy @ threshold",
    "precision": "precision @ threshold",
    "recall": "recall @ threshold",
}


_BARS = ("auc", "accuracy", "precision", "recall")


def _metric_sets(ev: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {"main": ev["main"]["metrics"]}
    if ev.get("fallback"):
        out["fallback"] = ev["fallback"]["metrics"]
    return out


def _metric_table(ev: dict[str, Any]) -> Table:
    rows = []
    fb = (ev.get("fallback") or {}).get("metrics")
    for k in METRICS:
        m = ev["main"]["metrics"][k]
        row = [_LABELS[k], m["value"], f"[{m['ci_low']:.4f}, {m['ci_high']:.4f}]"]
        if fb:
            f = fb[k]
            row += [f["value"], f"[{f['ci_low']:.4f}, {f['ci_high']:.4f}]"]
        rows.append(row)
    cols = ["metric", "main", "main 95% CI"]
    if fb:
        cols += ["fallback", "fallback 95% CI"]
    return Table(
        columns=cols,
        rows=rows,
        caption=f"Held-out split ({ev['main']['n']} rows), bootstrap percentile intervals",
    )


def _findings(ev: dict[str, Any], meta: dict[str, Any]) -> list[Finding]:
    out: list[Finding] = []
    main = ev["main"]
    conf = main["conformal"]
    if conf["coverage_ci"][1] < conf["target_coverage"]:
        out.append(
            Finding(
                check="conformal_coverage",
                severity="warning",
                message=(
                    f"measured conformal coverage {conf['coverage']:.3f} is below the target "
                    f"{conf['target_coverage']:.2f} (95% CI {conf['coverage_ci']})"
                ),
                evidence=conf,
                recommendation="use a larger calibration split; check for drift between splits",
            )
        )
    gap = main["train_auc"] - main["metrics"]["auc"]["value"]
    if gap > 0.08:
        out.append(
            Finding(
                check="overfit",
                severity="warning",
                message=(
                    f"train AUC {main['train_auc']:.3f} vs held-out "
                    f"{main['metrics']['auc']['value']:.3f}: "
                    "the model memorises training rows (a membership-inference risk)"
                ),
                evidence={"gap": gap},
                recommendation="train with --preset robust",
            )
        )
    fb = ev.get("fallback")
    if fb:
        drop = main["metrics"]["auc"]["value"] - fb["metrics"]["auc"]["value"]
        out.append(
            Finding(
                check="fallback_cost",
                severity="info",
                message=(
                    f"the fallback model without gameable features {fb['dropped']} loses "
                    f"{drop:.3f} AUC ({fb['metrics']['auc']['value']:.3f} vs "
                    f"{main['metrics']['auc']['value']:.3f})"
                ),
                features=list(fb["dropped"]),
            )
        )
    for note in meta.get("notes", []):
        out.append(Finding(check="training_note", severity="info", message=note))
    return out


def training_report(ev: dict[str, Any], meta: dict[str, Any], contract: Contract) -> str:
    """Render the evaluation as a self-contained HTML page."""
    main = ev["main"]
    conf = main["conformal"]
    disp = main["dispersion"]
    cal = main["calibration"]
    sections: list[Section] = []
    opts = meta.get("options", {})
    sections.append(
        Section(
            title="Metrics with confidence intervals",
            text=[
                f"Model {meta['version']} ({meta['model_kind']}, preset {meta['preset']}); "
                f"threshold {ev['threshold']}; coarse bins {opts.get('bins') or 'none'}; "
                f"noise {opts.get('noise')}; monotone {opts.get('monotone')}; "
                f"gameable features dropped: {opts.get('drop_gameable')}.",
                f"Train AUC {main['train_auc']:.4f} (in-sample) against held-out "
                f"{main['metrics']['auc']['value']:.4f}.",
            ],
            tables=[_metric_table(ev)],
            plots=[
                PlotSpec(
                    kind="bar",
                    title="Held-out metrics (95% CI)",
                    data={
                        "labels": ["AUC", "accuracy", "precision", "recall"],
                        "series": {
                            "main": [
                                main["metrics"][k]["value"]
                                for k in ("auc", "accuracy", "precision", "recall")
                            ],
                            **(
                                {
                                    "fallback": [
                                        ev["fallback"]["metrics"][k]["value"]
                                        for k in ("auc", "accuracy", "precision", "recall")
                                    ]
                                }
                                if ev.get("fallback")
                                else {}
                            ),
                        },
                        "errors": {
                            who: [
                                [m[k]["value"] - m[k]["ci_low"] for k in _BARS],
                                [m[k]["ci_high"] - m[k]["value"] for k in _BARS],
                            ]
                            for who, m in _metric_sets(ev).items()
                        },
                        "ylabel": "value",
                    },
                )
            ],
        )
    )
    sections.append(
        Section(
            title="Calibration: predictions vs reality",
            text=[
                f"Rows sorted by score in {len(cal['bins'])} bins of equal count; expected "
                f"calibration error {cal['ece']:.4f}."
            ],
            plots=[
                PlotSpec(
                    kind="line",
                    title="Mean predicted vs observed rate",
                    data={
                        "x": [b["mean_predicted"] for b in cal["bins"]],
                        "series": {"observed": [b["observed_rate"] for b in cal["bins"]]},
                        "diagonal": [0, max(1e-9, max(b["mean_predicted"] for b in cal["bins"]))],
                        "xlabel": "mean predicted P(positive)",
                        "ylabel": "observed rate",
                    },
                ),
                PlotSpec(
                    kind="hist",
                    title="Score distribution by true label",
                    data={
                        "edges": disp["score_histogram"]["edges"],
                        "series": {
                            "label 0": disp["score_histogram"]["negatives"],
                            "label 1": disp["score_histogram"]["positives"],
                        },
                        "xlabel": "score",
                    },
                ),
            ],
            tables=[
                Table(
                    columns=["n", "score range", "mean predicted", "observed rate"],
                    rows=[
                        [
                            b["n"],
                            f"{b['p_min']:.3f}–{b['p_max']:.3f}",
                            b["mean_predicted"],
                            b["observed_rate"],
                        ]
                        for b in cal["bins"]
                    ],
                )
            ],
        )
    )
    dec = disp["by_score_decile"]
    seg_plots, seg_tables = [], []
    for seg, rows in disp["by_segment"].items():
        seg_plots.append(
            PlotSpec(
                kind="bar",
                title=f"Mean |y - p| by {seg}",
                data={
                    "labels": [r["value"] for r in rows],
                    "series": {"mean |y-p|": [r["mean_abs_error"] for r in rows]},
                    "hline": disp["abs_error"]["mean"],
                    "ylabel": "mean absolute error",
                },
            )
        )
        seg_tables.append(
            Table(
                columns=[
                    "value",
                    "n",
                    "observed rate",
                    "mean predicted",
                    "mean |y-p|",
                    "p90 |y-p|",
                    "AUC",
                ],
                rows=[
                    [
                        r["value"],
                        r["n"],
                        r["observed_rate"],
                        r["mean_predicted"],
                        r["mean_abs_error"],
                        r["p90_abs_error"],
                        r["auc"],
                    ]
                    for r in rows
                ],
                caption=f"Segment {seg}",
            )
        )
    q = disp["abs_error"]
    sections.append(
        Section(
            title="Error dispersion",
            text=[
                "Absolute error |y - p| on held-out rows: "
                + ", ".join(f"{k} {v:.3f}" for k, v in q.items())
                + ". Segments come from the contract's `segments`."
            ],
            plots=[
                PlotSpec(
                    kind="bar",
                    title="Mean |y - p| by score decile",
                    data={
                        "labels": [str(r["decile"]) for r in dec],
                        "series": {
                            "mean |y-p|": [r["mean_abs_error"] for r in dec],
                            "observed rate": [r["observed_rate"] for r in dec],
                        },
                        "ylabel": "value",
                    },
                ),
                *seg_plots,
            ],
            tables=seg_tables,
        )
    )
    big = main["largest_errors"]
    if big:
        cols = list(big[0].keys())
        sections.append(
            Section(
                title="Largest errors",
                text=[
                    f"The {len(big)} held-out rows with the largest |y - p|, with their raw "
                    "attributes."
                ],
                tables=[Table(columns=cols, rows=[[r[c] for c in cols] for r in big])],
            )
        )
    sections.append(
        Section(
            title="Conformal prediction sets (MAPIE)",
            text=[
                f"{conf['method']}; calibrated on {conf['n_calibration']} rows, coverage measured "
                f"on {conf['n_test']} other rows: {conf['coverage']:.4f} "
                f"(95% CI [{conf['coverage_ci'][0]:.4f}, {conf['coverage_ci'][1]:.4f}]) for a "
                f"target of {conf['target_coverage']:.2f}. A row's set holds every label whose "
                "probability is at least 1 - quantile; a two-label set means 'uncertain'."
            ],
            tables=[
                Table(
                    columns=["quantity", "value"],
                    rows=[
                        ["target coverage", conf["target_coverage"]],
                        ["measured coverage", conf["coverage"]],
                        ["coverage, label 0", conf["coverage_by_class"]["0"]],
                        ["coverage, label 1", conf["coverage_by_class"]["1"]],
                        ["mean set size", conf["mean_set_size"]],
                        ["share of single-label sets", conf["share_singleton"]],
                        ["share of two-label sets", conf["share_both_labels"]],
                        ["share of empty sets", conf["share_empty"]],
                        ["LAC quantile", conf["quantile"]],
                    ],
                )
            ],
        )
    )
    data = meta.get("data", {})
    code = meta.get("code", {})
    mlf = meta.get("mlflow", {})
    report = Report(
        kind="training",
        title=f"Training report: {contract.name} ({meta['version']})",
        rows=int(main["n"]),
        findings=_findings(ev, meta),
        summary={"metrics": meta.get("metrics", {})},
        meta={
            "created": now_iso(),
            "version": meta["version"],
            "model": meta["model_kind"],
            "preset": meta["preset"],
            "data_sha256": str(data.get("sha256", ""))[:16],
            "contract_sha256": str(meta.get("contract_sha256", ""))[:16],
            "git_commit": str(code.get("git_commit") or "n/a")[:12],
            "mlflow_run": mlf.get("run_id") or "untracked",
        },
        sections=sections,
    )
    return render_html(report)
