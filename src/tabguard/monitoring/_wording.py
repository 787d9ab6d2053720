"""How alerts read: one sentence per evaluation, from the data of ``_rules.py``."""

from __future__ import annotations

import math

from tabguard.monitoring._rules import RuleEvaluation
from tabguard.monitoring._rules_config import RuleSpec
from tabguard.timeutil import format_duration


def metric_name(rule: RuleSpec) -> str:
    """``denial rate``, ``p99 of raw AGE``, ``volume`` …"""
    m = rule.metric
    if m == "decision_rate":
        return {"deny": "denial", "approve": "approval", "review": "review"}[
            str(rule.decision)
        ] + " rate"
    if m == "percentile":
        return f"p{_pct(rule.q)} of {rule.kind} {rule.column}"
    if m == "latency":
        return f"p{_pct(rule.q)} latency (ms)"
    if m == "guard_action_rate":
        on = f" on {rule.column}" if rule.column else ""
        return f"{rule.action} rate{on}"
    if m == "probing_count":
        return f"requests with probing signal {rule.signal or 'client_flagged'}"
    if m == "drift":
        return f"{str(rule.stat).upper()} drift of {rule.kind} {rule.column}"
    if m == "performance":
        return str(rule.stat).replace("_", " ")
    return "volume"


def _pct(q: float | None) -> str:
    v = 100 * float(q or 0)
    return f"{v:g}"


def _fmt(rule: RuleSpec, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if rule.metric in ("decision_rate", "guard_action_rate") or rule.stat == "default_rate":
        return f"{100 * value:.1f}%"
    if rule.metric in ("volume", "probing_count"):
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _counts(rule: RuleSpec, k: int | None, n: int) -> str:
    if rule.metric in ("decision_rate", "guard_action_rate") and k is not None:
        return f" ({k:,} of {n:,})"
    if rule.metric in ("percentile", "latency", "drift", "performance"):
        return f" (n={n:,})"
    return ""


def describe(ev: RuleEvaluation, rule: RuleSpec) -> str:
    """One sentence saying what the rule saw, e.g.

    ``denial rate 8.1% (6 of 74) in the 6 h to 2026-02-11 17:00 UTC on channel=partner is
    62% below 21.4% (16 of 75), the same 6 h last week (Fisher exact p = 0.0004 < 0.0002)``.
    """
    seg = "all traffic" if ev.segment[0] == "all" else f"{ev.segment[0]}={ev.segment[1]}"
    window = format_duration(rule.window).replace("h", " h").replace("d", " d").replace("w", " w")
    head = f"{metric_name(rule)} {_fmt(rule, ev.value)}"
    if ev.current is not None:
        head += _counts(rule, ev.current.k, ev.current.n)
    head += f" in the {window} to {ev.end:%Y-%m-%d %H:%M} UTC on {seg}"
    if ev.status == "excluded":
        return f"{head}: not evaluated ({ev.note})"
    if ev.status == "low_volume":
        return f"{head}: too few requests to judge"
    if ev.status == "no_baseline":
        return f"{head}: no usable baseline ({ev.note})"
    if rule.threshold is not None and ev.baseline is None:
        comp = f"is {rule.direction} {_fmt(rule, rule.threshold)}"
    else:
        change = ev.change
        rel = ""
        if change is not None:
            rel = f"{abs(change) * 100:.0f}% {'below' if change < 0 else 'above'} "
        base = _fmt(rule, ev.baseline)
        b = ev.baseline_obs
        if b is not None:
            counts = _counts(rule, b.k, b.n)
            if counts and b.weeks > 1:
                counts = counts[:-1] + f" pooled over {b.weeks} weeks)"
            base += counts
        assert rule.baseline is not None
        weeks = (
            f"the same {window} {rule.baseline.describe()}"
            if rule.baseline.weeks_ago is not None
            else f"the {rule.baseline.describe()} for the same {window}"
        )
        comp = f"is {rel}{base}, {weeks}"
    parts = []
    if ev.p_value is not None:
        rel_op = "<" if ev.p_value < ev.alpha else ">="
        parts.append(f"{rule.test} p = {ev.p_value:.2g} {rel_op} {ev.alpha:.2g}")
    if ev.dispersion > 1.0:
        parts.append(f"dispersion {ev.dispersion:.2f}")
    run = ev.cusum_run
    if ev.by_cusum and run is not None:
        parts.append(
            f"CUSUM {run.stat:.1f} >= {ev.cusum_limit:.1f}: {_fmt(rule, run.rate)}"
            f"{_counts(rule, run.k, run.n)} against {_fmt(rule, run.baseline)} over the last "
            f"{run.buckets} buckets"
        )
    tail = f" ({'; '.join(parts)})" if parts else ""
    return f"{head} {comp}{tail}"
