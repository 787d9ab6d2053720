"""D3 label-noise suspects (cleanlab confident learning on out-of-fold probabilities).

Every real label set is noisy: in credit data many clients who look safe default. cleanlab's
:func:`cleanlab.filter.find_label_issues` lists the rows whose label disagrees with what the rest
of the data predicts; on clean credit data it lists thousands. Those rows are reported for review
and handed to RONI, but they are **not** poisoning suspects on that ground alone.

Why not: labels flipped in place, at random within a class or a segment, leave data that is
distributed exactly like data whose outcome rate is lower in that region: ``P(y | x)`` changes,
nothing else does. Without a trusted reference no statistic of ``(x, y)`` can tell the two apart,
and a test calibrated on the same data absorbs the flips. Flips are detectable when they come
with evidence: a trigger (the trigger scan), or copies of rows with the opposite label (the
near-duplicate check). The table below still compares rows with an unlikely label to what the
model's probabilities expect, as a diagnostic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from tabguard.checks import CheckOptions, at_least, interval, option
from tabguard.data_audit._base import AuditContext, CheckResult, register_check
from tabguard.data_audit._context_model import instrument_rounds, out_of_fold_proba
from tabguard.data_audit._matrix import build_matrix
from tabguard.reports import Finding, PlotSpec, Section, Table


@dataclass(frozen=True)
class LabelNoiseOptions(CheckOptions):
    """Settings of the label-noise check (``options={"label_noise": {...}}``)."""

    check: ClassVar[str] = "label_noise"

    thresholds: tuple[float, ...] = option(
        (0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4),
        "probabilities of the given label under which rows are counted in the diagnostic "
        "table (observed against expected)",
        interval(0.0, 0.5, "left"),
    )
    listed: int = option(
        2000, "label issues listed in the finding (all are handed to RONI)", at_least(0)
    )


def oof_probabilities(ctx: AuditContext) -> np.ndarray:
    """Out-of-fold P(positive) for every row (cached for RONI and reports)."""
    if "oof" not in ctx.cache:
        m = build_matrix(ctx)
        cat = [j for j in range(len(m.names)) if not m.ordinal[j]]
        rounds, lr = instrument_rounds(ctx.n_rows, 120)
        ctx.cache["oof"] = out_of_fold_proba(
            m.raw,
            ctx.y.astype(float),
            cat,
            max_train_rows=60_000,
            rounds=rounds,
            learning_rate=lr,
            random_state=ctx.random_state,
        )
    oof: np.ndarray = ctx.cache["oof"]
    return oof


def excess_disagreement(
    p: np.ndarray, y: np.ndarray, thresholds: Sequence[float]
) -> list[dict[str, float]]:
    """Observed vs expected count of rows whose label's probability is below each threshold."""
    s = np.where(y == 1, p, 1.0 - p)
    out = []
    for t in thresholds:
        pi = p * (p < t) + (1.0 - p) * ((1.0 - p) < t)
        obs = float((s < t).sum())
        exp = float(pi.sum())
        var = float((pi * (1.0 - pi)).sum())
        z = (obs - exp) / math.sqrt(var) if var > 0 else 0.0
        out.append(
            {
                "threshold": t,
                "observed": obs,
                "expected": exp,
                "z": z,
                "precision": (obs - exp) / obs if obs else 0.0,
            }
        )
    return out


@register_check
class LabelNoise:
    """Rows whose label disagrees with the rest of the data (cleanlab)."""

    name: ClassVar[str] = "label_noise"
    order: ClassVar[int] = 50
    after: ClassVar[tuple[str, ...]] = ()
    concurrent: ClassVar[bool] = True
    Options: ClassVar[type[CheckOptions]] = LabelNoiseOptions

    def run(self, ctx: AuditContext) -> CheckResult:
        """List label issues and compare them with what the probabilities expect."""
        from cleanlab.filter import find_label_issues

        opts = ctx.opts(LabelNoiseOptions)
        res = CheckResult()
        y = ctx.y.astype(int)
        if y.min() == y.max():
            return res
        with ctx.progress.stage("label noise: out-of-fold model", total=1) as st:
            p = oof_probabilities(ctx)
            st.advance()
        probs = np.column_stack([1.0 - p, p])
        # n_jobs=1: cleanlab's default forks a multiprocessing pool, and forking while the
        # other lane's thread holds a lock (BLAS, the allocator) deadlocked a million-row audit
        ranked = find_label_issues(
            labels=y, pred_probs=probs, return_indices_ranked_by="self_confidence", n_jobs=1
        )
        issues = np.asarray(ranked, dtype=np.int64)
        curve = excess_disagreement(p, y, opts.thresholds)
        n = len(y)
        res.findings.append(
            Finding(
                check=self.name,
                severity="info",
                message=(
                    f"cleanlab lists {len(issues)} rows ({len(issues) / n:.1%}) whose label "
                    "disagrees with the rest of the data (out-of-fold model). Natural noise "
                    "produces such rows; they are not suspected of poisoning on that ground."
                ),
                rows=[int(r) for r in issues[: opts.listed]],
                evidence={"label_issues": len(issues), "listed": min(len(issues), opts.listed)},
                recommendation="Review the top-ranked rows; relabel or drop confirmed errors.",
            )
        )
        ctx.cache["label_issues"] = issues
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
