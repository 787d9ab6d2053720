"""Prometheus alerting rules equivalent to the YAML rules of ``monitor.yaml``.

``tabguard monitor prometheus-rules`` turns each rule the service's ``/metrics`` can express
into a PromQL alert over ``tabguard_decisions_total`` and ``tabguard_score`` (labelled by
``segment_key`` / ``segment_value``), the request latency histogram and the guard and probing
counters. The seed's rule — *the denial rate of the last 6 h is more than 20 % below the same
6 h last week* — becomes, per segment value::

    rate_now < 0.8 * rate_offset_1w            (or the median of k weeks, with quantile())
    and decided_now >= min_volume and decided_1w_ago >= min_volume
    and z <= -z_crit                            (two-proportion z-test on the counts)

What PromQL cannot express is said in the file and in docs/dashboard.md: the YAML engine's
exact tests (Fisher, conditional binomial) become their normal approximations; the Bonferroni
division by the segment values tested, the calendar (holidays, exclusions) and replacing a thin
or excluded baseline week by an older one are not expressed; rules on raw attributes, model
features, drift and outcomes are left out (``/metrics`` does not carry those distributions).

Computation returns data (:class:`PrometheusRules`); ``to_yaml`` renders it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

from tabguard.monitoring._rules_config import AlertingConfig, RuleSpec
from tabguard.timeutil import format_duration

#: Evaluation interval of the generated group (the YAML engine evaluates every bucket).
INTERVAL = "15m"
DECIDED = 'status=~"accepted|delayed",decision!="none"'
SEG = "segment_key, segment_value"


@dataclass(frozen=True)
class PrometheusRules:
    """The generated rule group and what was left out (with the reason)."""

    alerts: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def group(self) -> dict[str, Any]:
        """The Prometheus rule file's content."""
        return {
            "groups": [{"name": "tabguard-monitor", "interval": INTERVAL, "rules": self.alerts}]
        }


def _dur(value: Any) -> str:
    text = format_duration(value)
    return text.replace(" ", "")


def _keys(rule: RuleSpec) -> str:
    return "|".join(sorted(set(rule.segments)))


def _offset(weeks: int) -> str:
    return f" offset {weeks}w" if weeks else ""


def _z_crit(alpha: float, direction: str) -> float:
    """One-sided (or two-sided) normal critical value of ``alpha``."""
    tail = alpha / 2 if direction == "either" else alpha
    return NormalDist().inv_cdf(1 - tail)


class _Decisions:
    """PromQL of one rule over ``tabguard_decisions_total`` (rates and volume)."""

    def __init__(self, rule: RuleSpec) -> None:
        self.rule = rule
        self.w = _dur(rule.window)
        self.sel = f'segment_key=~"{_keys(rule)}"'

    def count(self, matchers: str, weeks: int) -> str:
        return (
            f"sum by ({SEG}) (increase(tabguard_decisions_total{{{self.sel},{matchers}}}"
            f"[{self.w}]{_offset(weeks)}))"
        )

    def hits(self, weeks: int) -> str:
        r = self.rule
        if r.metric == "decision_rate":
            return self.count(f'status=~"accepted|delayed",decision="{r.decision}"', weeks)
        return self.count('status=~".+"', weeks)

    def base(self, weeks: int) -> str:
        return self.count(DECIDED, weeks)


def _weeks(rule: RuleSpec) -> list[int]:
    b = rule.baseline
    if b is None:
        return []
    if b.weeks_ago is not None:
        return [b.weeks_ago]
    return list(range(1, (b.median_of_weeks or 1) + 1))


def _median(expr: Any, weeks: list[int]) -> str:
    """The median over weeks: one series per week (label ``week``), then ``quantile(0.5)``."""
    if len(weeks) == 1:
        return expr(weeks[0])
    parts = " or ".join(f'label_replace({expr(k)}, "week", "{k}", "", "")' for k in weeks)
    return f"quantile by ({SEG}) (0.5, {parts})"


def _pooled(expr: Any, weeks: list[int]) -> str:
    return " + ".join(f"({expr(k)})" for k in weeks) if len(weeks) > 1 else expr(weeks[0])


def _crosses(now: str, base: str, rule: RuleSpec) -> str:
    """``now`` crosses the rule's threshold against ``base`` in its direction."""
    if rule.threshold is not None:
        op = "<" if rule.direction == "below" else ">"
        return f"({now}) {op} {rule.threshold:g}"
    if rule.change is not None:
        lo, hi = f"{1 - rule.change:g} * ({base})", f"{1 + rule.change:g} * ({base})"
    else:
        d = rule.difference or 0.0
        lo, hi = f"({base}) - {d:g}", f"({base}) + {d:g}"
    if rule.direction == "below":
        return f"({now}) < {lo}"
    if rule.direction == "above":
        return f"({now}) > {hi}"
    return f"(({now}) < {lo} or ({now}) > {hi})"


def _significant(z: str, crit: float, direction: str) -> str:
    if direction == "below":
        return f"({z}) <= -{crit:.4f}"
    if direction == "above":
        return f"({z}) >= {crit:.4f}"
    return f"abs({z}) >= {crit:.4f}"


def _decision_alert(rule: RuleSpec, config: AlertingConfig) -> str:
    q = _Decisions(rule)
    weeks = _weeks(rule)
    alpha = rule.alpha or config.evaluation.alpha
    min_volume = rule.min_volume or config.evaluation.min_volume
    if rule.metric == "decision_rate":
        now = f"({q.hits(0)}) / ({q.base(0)})"
        volume_now = q.base(0)
    else:
        now = q.hits(0)
        volume_now = now
    if not weeks:  # an absolute threshold: no baseline, no test
        return f"{_crosses(now, '', rule)}\nand {volume_now} >= {min_volume}"
    if rule.metric == "decision_rate":
        base = _median(lambda k: f"({q.hits(k)}) / ({q.base(k)})", weeks)
        x0, n0 = _pooled(q.hits, weeks), _pooled(q.base, weeks)
        x1, n1 = q.hits(0), q.base(0)
        pooled = f"(({x1}) + ({x0})) / (({n1}) + ({n0}))"
        z = (
            f"(({x1}) / ({n1}) - ({x0}) / ({n0})) / sqrt(({pooled}) * (1 - ({pooled})) "
            f"* (1 / ({n1}) + 1 / ({n0})) + 1e-12)"
        )
        volumes = [f"{q.base(k)} >= {min_volume}" for k in (0, *weeks)]
    else:  # volume: Poisson counts now vs the baseline weeks' mean, conditional binomial
        base = _median(q.hits, weeks)
        x1, x0 = q.hits(0), _pooled(q.hits, weeks)
        # Under no change x1 | x1 + x0 ~ Binomial(x1 + x0, 1 / (k + 1)).
        p = 1 / (len(weeks) + 1)
        n = f"(({x1}) + ({x0}))"
        z = f"(({x1}) - {n} * {p:.6g}) / sqrt({n} * {p * (1 - p):.6g} + 1e-12)"
        volumes = [f"{q.hits(w)} >= {min_volume}" for w in (0, *weeks)]
    crit = _z_crit(alpha, rule.direction)
    return "\n".join(
        [
            _crosses(now, base, rule),
            *(f"and {v}" for v in volumes),
            f"and {_significant(z, crit, rule.direction)}",
        ]
    )


def _histogram_alert(rule: RuleSpec, config: AlertingConfig) -> tuple[str, str | None]:
    """Score percentiles (per segment) and latency (whole traffic) from the histograms."""
    w = _dur(rule.window)
    q = rule.q
    min_volume = rule.min_volume or config.evaluation.min_volume
    if rule.metric == "latency" or rule.kind == "latency_ms":
        by, sel, scale, name = "le", "", " * 1000", "tabguard_request_latency_seconds"
        note = None if set(rule.segments) == {"all"} else "latency is not labelled by segment"
    else:
        by, sel, scale, name = f"{SEG}, le", f'segment_key=~"{_keys(rule)}"', "", "tabguard_score"
        note = None

    def quantile(weeks: int) -> str:
        return (
            f"histogram_quantile({q}, sum by ({by}) (increase({name}_bucket{{{sel}}}"
            f"[{w}]{_offset(weeks)}))){scale}"
        )

    def count(weeks: int) -> str:
        grouping = "" if by == "le" else f"by ({SEG}) "
        return f"sum {grouping}(increase({name}_count{{{sel}}}[{w}]{_offset(weeks)}))"

    weeks = _weeks(rule)
    base = _median(quantile, weeks) if weeks else ""
    lines = [_crosses(quantile(0), base, rule)]
    lines += [f"and {count(k)} >= {min_volume}" for k in (0, *weeks)]
    return "\n".join(lines), note


def _counter_alert(rule: RuleSpec, config: AlertingConfig) -> tuple[str, str | None]:
    """Guard-action rates and probing counts (whole traffic: those counters have no segment)."""
    w = _dur(rule.window)
    min_volume = rule.min_volume or config.evaluation.min_volume

    def requests(k: int) -> str:
        return f"sum(increase(tabguard_requests_total[{w}]{_offset(k)}))"

    def value(k: int) -> str:
        o = _offset(k)
        if rule.metric == "guard_action_rate":
            step = f',step="{rule.step}"' if rule.step else ""
            sel = f'action="{rule.action}"{step}'
            hit = f"sum(increase(tabguard_guard_actions_total{{{sel}}}[{w}]{o}))"
            return f"({hit}) / ({requests(k)})"
        if rule.signal in (None, "client_flagged"):
            return f"sum(increase(tabguard_probing_flagged_requests_total[{w}]{o}))"
        return f'sum(increase(tabguard_probing_signals_total{{signal="{rule.signal}"}}[{w}]{o}))'

    weeks = _weeks(rule)
    base = ""
    if len(weeks) > 1:  # label-free series: the median over weeks keeps no grouping label
        parts = " or ".join(f'label_replace({value(k)}, "week", "{k}", "", "")' for k in weeks)
        base = f"quantile(0.5, {parts})"
    elif weeks:
        base = value(weeks[0])
    lines = [_crosses(value(0), base, rule)]
    lines += [f"and {requests(k)} >= {min_volume}" for k in (0, *weeks)]
    note = None if set(rule.segments) == {"all"} else "these counters are not labelled by segment"
    return "\n".join(lines), note


def prometheus_rules(config: AlertingConfig) -> PrometheusRules:
    """Translate the alerting rules of ``monitor.yaml`` into Prometheus alerting rules.

    Returns
    -------
    PrometheusRules
        ``alerts`` (Prometheus rule dicts) and ``skipped`` (``(rule, reason)``) for rules
        ``/metrics`` cannot express.
    """
    out = PrometheusRules()
    for rule in config.rules:
        if not rule.enabled:
            out.skipped.append((rule.name, "disabled in monitor.yaml"))
            continue
        note: str | None = None
        if rule.metric in ("decision_rate", "volume"):
            expr = _decision_alert(rule, config)
        elif rule.metric == "latency" or (
            rule.metric == "percentile" and rule.kind in ("score", "latency_ms")
        ):
            expr, note = _histogram_alert(rule, config)
        elif rule.metric == "percentile":
            out.skipped.append(
                (
                    rule.name,
                    f"percentiles of {rule.kind} columns are not on /metrics "
                    "(the bucket store keeps them; the YAML engine evaluates this rule)",
                )
            )
            continue
        elif rule.metric in ("guard_action_rate", "probing_count"):
            if rule.metric == "guard_action_rate" and rule.column:
                out.skipped.append(
                    (rule.name, "guard actions per column are not on /metrics (YAML engine only)")
                )
                continue
            expr, note = _counter_alert(rule, config)
        else:
            out.skipped.append(
                (
                    rule.name,
                    f"{rule.metric} needs the bucket store (training reference, "
                    "outcomes); Prometheus does not see it (YAML engine only)",
                )
            )
            continue
        annotations = {
            "summary": (
                f"{rule.description or rule.name} "
                "on {{ $labels.segment_key }}={{ $labels.segment_value }}"
            ),
            "description": (
                f"tabguard rule {rule.name} ({rule.metric}, window {_dur(rule.window)}, "
                f"baseline {rule.baseline.describe() if rule.baseline else 'none'}); "
                "generated by `tabguard monitor prometheus-rules` from monitor.yaml"
            ),
        }
        if note:
            annotations["note"] = f"evaluated on the whole traffic only: {note}"
        out.alerts.append(
            {
                "alert": rule.name,
                "expr": expr,
                "labels": {"severity": rule.severity, "source": "tabguard", **rule.labels},
                "annotations": annotations,
            }
        )
    return out


def to_yaml(rules: PrometheusRules) -> str:
    """The rule file as YAML, with the rules left out listed in a header comment."""
    import yaml

    class _Block(yaml.SafeDumper):
        pass

    def block(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Block.add_representer(str, block)
    head = [
        "# Prometheus alerting rules generated by `tabguard monitor prometheus-rules` from",
        "# monitor.yaml; check with `promtool check rules FILE`. Differences from the YAML",
        "# engine: normal-approximation tests, no Bonferroni, no calendar (docs/dashboard.md).",
    ]
    for name, reason in rules.skipped:
        head.append(f"# left out: {name}: {reason}")
    body = yaml.dump(rules.group(), Dumper=_Block, sort_keys=False, width=1000)
    return "\n".join(head) + "\n" + body
