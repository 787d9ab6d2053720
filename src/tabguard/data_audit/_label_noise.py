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


@dataclass
class LabelNoiseResult:
    """What the label-noise check found (data; :mod:`._label_noise_report` words it).

    Attributes
    ----------
    issues : ndarray
        cleanlab's label issues, most confident first.
    curve : list of dict
        :func:`excess_disagreement` at each threshold.
    n_rows : int
    """

    issues: np.ndarray
    curve: list[dict[str, float]]
    n_rows: int


def find_label_issues(ctx: AuditContext, opts: LabelNoiseOptions) -> LabelNoiseResult | None:
    """cleanlab's label issues on out-of-fold probabilities, and the diagnostic curve; None
    when the data has a single label."""
    from cleanlab.filter import find_label_issues as cleanlab_issues

    y = ctx.y.astype(int)
    if y.min() == y.max():
        return None
    with ctx.progress.stage("label noise: out-of-fold model", total=1) as st:
        p = oof_probabilities(ctx)
        st.advance()
    probs = np.column_stack([1.0 - p, p])
    # n_jobs=1: cleanlab's default forks a multiprocessing pool, and forking while the
    # other lane's thread holds a lock (BLAS, the allocator) deadlocked a million-row audit
    ranked = cleanlab_issues(
        labels=y, pred_probs=probs, return_indices_ranked_by="self_confidence", n_jobs=1
    )
    issues = np.asarray(ranked, dtype=np.int64)
    return LabelNoiseResult(issues, excess_disagreement(p, y, opts.thresholds), len(y))


@register_check
class LabelNoise:
    """Rows whose label disagrees with the rest of the data (cleanlab)."""

    name: ClassVar[str] = "label_noise"
    order: ClassVar[int] = 50
    after: ClassVar[tuple[str, ...]] = ()
    concurrent: ClassVar[bool] = True
    Options: ClassVar[type[CheckOptions]] = LabelNoiseOptions

    def run(self, ctx: AuditContext) -> CheckResult:
        """Find (:func:`find_label_issues`), then word (``_label_noise_report``)."""
        from tabguard.data_audit._label_noise_report import label_noise_report

        opts = ctx.opts(LabelNoiseOptions)
        result = find_label_issues(ctx, opts)
        if result is None:
            return CheckResult()
        ctx.cache["label_issues"] = result.issues
        return label_noise_report(result, opts)
