"""Rule evaluation: a rule, the bucket store and a time in, one :class:`RuleEvaluation` per
segment value out (data only; wording in ``_wording.py``, state and actions in ``_alerts.py``
and ``_actions.py``).

At time ``at`` a rule looks at the last ``window`` of **complete** buckets
(``[floor(at) - window, floor(at))``), per value of each segment key it names, and at the same
window ``weeks_ago`` weeks back (or the median over ``median_of_weeks`` weeks). It fires for a
segment value when all of these hold:

1. the window is not excluded by the calendar (holidays, declared periods);
2. the current window has at least ``min_volume`` requests behind the metric, and so does each
   baseline week used (baseline weeks that are excluded or too thin are skipped, reaching
   further back, so a holiday never becomes "last week");
3. the metric crosses the threshold in the rule's direction (``change`` relative to the
   baseline, ``difference`` against it, or an absolute ``threshold``);
4. the counts make it significant: p < ``alpha / m`` where ``m`` is the number of segment
   values the rule tested at this time (Bonferroni), with the test of ``_stats.py`` against
   the baseline weeks' pooled counts (from three weeks on, the one farthest from the median is
   left out: one odd week neither pages nor hides a change).

Metrics are read through one small registry (:data:`READERS`), each returning the number and
the counts behind it for every segment value of a window.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tabguard.monitoring import _stats
from tabguard.monitoring._rules_config import AlertingConfig, RuleSpec
from tabguard.timeutil import floor_time

if TYPE_CHECKING:
    from tabguard.monitoring._store import SqlMonitorStore

WEEK = timedelta(weeks=1)
Segment = tuple[str, str]
#: Statuses whose requests got a decision (the denominator of a decision rate).
DECIDED = ("accepted", "delayed")


@dataclass(frozen=True)
class Observation:
    """A metric over one window for one segment value, with the counts behind it.

    Attributes
    ----------
    value : float
        The metric (a rate, a count, a quantile, a drift distance…).
    n : int
        Volume behind it (decided requests, requests, numeric values, labelled outcomes).
    k : int or None
        For rates: the numerator (``value = k / n``); for counts: the count.
    weeks : int
        Windows pooled into it (baselines): a pooled count covers ``weeks`` windows.
    """

    value: float
    n: int
    k: int | None = None
    weeks: int = 1


@dataclass(frozen=True)
class RuleEvaluation:
    """The outcome of one rule for one segment value at one time.

    Attributes
    ----------
    rule : str
    at : datetime
        Evaluation time; the window is ``[start, end)`` (complete buckets before ``at``).
    start, end : datetime
    segment : tuple of str
        ``(key, value)``, e.g. ``("channel", "partner")``; ``("all", "all")`` for everything.
    status : str
        ``fired``; or why not: ``ok`` (within threshold), ``not_significant``,
        ``low_volume``, ``no_baseline``, ``excluded`` (calendar), ``no_data``.
    current : Observation or None
    baseline : float or None
        The baseline value (the median over the weeks used).
    baseline_obs : Observation or None
        The pooled baseline counts the test used (:func:`pooled`).
    weeks : tuple of int
        Weeks back that formed the baseline.
    p_value : float or None
    alpha : float
        The level the p-value was compared with (``alpha / m``).
    note : str
        Detail for ``excluded`` / ``no_baseline`` (e.g. the holiday).
    """

    rule: str
    at: datetime
    start: datetime
    end: datetime
    segment: Segment
    status: str
    current: Observation | None = None
    baseline: float | None = None
    baseline_obs: Observation | None = None
    weeks: tuple[int, ...] = ()
    p_value: float | None = None
    alpha: float = 0.0
    note: str = ""

    @property
    def fired(self) -> bool:
        """Whether the rule fires for this segment value."""
        return self.status == "fired"

    @property
    def value(self) -> float | None:
        """The current value of the metric."""
        return None if self.current is None else self.current.value

    @property
    def change(self) -> float | None:
        """Relative change against the baseline (``-0.25`` = 25 % below)."""
        if self.value is None or self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline - 1.0


# --------------------------------------------------------------------------------------------
# Reading metrics from the store (cached per evaluation: rules share windows)


class MetricReader:
    """The store's window queries, cached.

    A reader made for one evaluation pass caches within it (rules share windows). A reader
    kept across passes (``tabguard monitor replay``, the traffic simulator: history that no
    longer changes) also reuses last week's windows as this week's baselines; it must not be
    kept where late rows can still change past buckets (the live loop).

    Parameters
    ----------
    store : MonitorStore
    reference : DriftReference, optional
        For drift rules (``load_reference(config)``).
    max_entries : int
        Windows kept (least recently used dropped).
    maturity : timedelta, optional
        When an outcome counts, for performance rules (``outcomes.maturity``).
    """

    def __init__(
        self,
        store: SqlMonitorStore,
        reference: Any = None,
        max_entries: int = 4096,
        maturity: timedelta | None = None,
    ) -> None:
        self.store = store
        self.reference = reference
        self.max_entries = max_entries
        self.maturity = maturity
        self._cache: OrderedDict[tuple[Any, ...], pd.DataFrame] = OrderedDict()

    def frame(self, method: str, start: datetime, end: datetime, **kw: Any) -> pd.DataFrame:
        """``store.<method>(start, end, **kw)``, once per distinct call."""
        key = (method, start, end, tuple(sorted((k, _hashable(v)) for k, v in kw.items())))
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        value = getattr(self.store, method)(start, end, **kw)
        self._cache[key] = value
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
        return value


def _rows(df: pd.DataFrame) -> Iterable[Any]:
    """Rows as attribute tuples (typed loosely: store frames mix ints, floats and strings)."""
    rows: Iterable[Any] = df.itertuples()
    return rows


def _hashable(v: Any) -> Any:
    return tuple(v) if isinstance(v, list | tuple) else v


Reader = Callable[[MetricReader, RuleSpec, datetime, datetime], dict[Segment, Observation]]


def _by_segment(df: pd.DataFrame) -> Iterable[tuple[Segment, pd.DataFrame]]:
    if df.empty:
        return []
    return (
        ((str(k), str(v)), g)
        for (k, v), g in df.groupby(["segment_key", "segment_value"], sort=True)
    )


def _decision_rate(
    r: MetricReader, rule: RuleSpec, start: datetime, end: datetime
) -> dict[Segment, Observation]:
    df = r.frame("decision_counts", start, end)
    totals: dict[Segment, list[int]] = {}
    # Plain loops over the columns: the frame has a few rows per segment, and pandas' per-group
    # overhead would dominate an evaluation pass.
    for key, value, status, decision, n in zip(
        df["segment_key"].tolist(), df["segment_value"].tolist(), df["status"].tolist(),
        df["decision"].tolist(), df["n"].tolist(), strict=True,
    ):  # fmt: skip
        seg = (str(key), str(value))
        t = totals.setdefault(seg, [0, 0])
        if status in DECIDED and decision is not None and decision == decision:  # not NaN
            t[1] += int(n)
            if decision == rule.decision:
                t[0] += int(n)
    return {seg: Observation(k / n if n else math.nan, n, k) for seg, (k, n) in totals.items()}


def _volume(
    r: MetricReader, rule: RuleSpec, start: datetime, end: datetime
) -> dict[Segment, Observation]:
    df = r.frame("volume", start, end)
    return {
        (str(row.segment_key), str(row.segment_value)): Observation(
            float(row.n), int(row.n), int(row.n)
        )
        for row in _rows(df)
    }


def _guard_action_rate(
    r: MetricReader, rule: RuleSpec, start: datetime, end: datetime
) -> dict[Segment, Observation]:
    df = r.frame("guard_action_counts", start, end)
    vol = r.frame("volume", start, end)
    out = {}
    for row in _rows(vol):
        seg = (str(row.segment_key), str(row.segment_value))
        n = int(row.n)
        m = (
            (df["segment_key"] == seg[0])
            & (df["segment_value"] == seg[1])
            & (df["action"] == rule.action)
        )
        if rule.step is not None:
            m &= df["step"] == rule.step
        if rule.column is not None:
            m &= df["column"] == rule.column
        # One request can carry the action on several fields; the rate counts actions, capped
        # at one per request when no column is named.
        k = min(int(df.loc[m, "n"].sum()), n)
        out[seg] = Observation(k / n if n else math.nan, n, k)
    return out


def _probing_count(
    r: MetricReader, rule: RuleSpec, start: datetime, end: datetime
) -> dict[Segment, Observation]:
    df = r.frame("probing_counts", start, end)
    vol = r.frame("volume", start, end)
    signal = rule.signal or "client_flagged"
    out = {}
    for row in _rows(vol):
        seg = (str(row.segment_key), str(row.segment_value))
        m = (
            (df["segment_key"] == seg[0])
            & (df["segment_value"] == seg[1])
            & (df["signal"] == signal)
        )
        c = int(df.loc[m, "n"].sum())
        out[seg] = Observation(float(c), int(row.n), c)
    return out


def _percentile(
    r: MetricReader, rule: RuleSpec, start: datetime, end: datetime
) -> dict[Segment, Observation]:
    column, kind = (
        (rule.column, rule.kind) if rule.metric == "percentile" else ("latency_ms", "latency_ms")
    )
    assert rule.q is not None  # checked by RuleSpec
    df = r.frame("percentiles", start, end, column=column, kind=kind, q=(rule.q,))
    out = {}
    for seg, g in _by_segment(df):
        value = float(g["value"].iloc[0]) if g["value"].notna().any() else math.nan
        out[seg] = Observation(value, int(g["n"].iloc[0]))
    return out


def _drift(
    r: MetricReader, rule: RuleSpec, start: datetime, end: datetime
) -> dict[Segment, Observation]:
    if r.reference is None or not hasattr(r.store, "drift"):
        return {}
    df = r.frame("drift", start, end, reference=r.reference, column=rule.column, kind=rule.kind)
    return {
        (str(row.segment_key), str(row.segment_value)): Observation(
            float(getattr(row, str(rule.stat))), int(row.n)
        )
        for row in _rows(df)
    }


def _performance(
    r: MetricReader, rule: RuleSpec, start: datetime, end: datetime
) -> dict[Segment, Observation]:
    if not hasattr(r.store, "performance"):
        return {}
    kw = {"maturity": r.maturity} if r.maturity is not None else {}
    df = r.frame("performance", start, end, as_of=end, **kw)
    out = {}
    for row in _rows(df):
        n = int(row.n_labelled)
        k = int(row.positives) if rule.stat == "default_rate" else None
        out[(str(row.segment_key), str(row.segment_value))] = Observation(
            float(getattr(row, str(rule.stat))), n, k
        )
    return out


#: How each metric is read from the store.
READERS: dict[str, Reader] = {
    "decision_rate": _decision_rate,
    "volume": _volume,
    "guard_action_rate": _guard_action_rate,
    "probing_count": _probing_count,
    "percentile": _percentile,
    "latency": _percentile,
    "drift": _drift,
    "performance": _performance,
}
_RATES = ("decision_rate", "guard_action_rate")
_COUNTS = ("volume", "probing_count")


# --------------------------------------------------------------------------------------------
# Evaluation


def rule_window(rule: RuleSpec, at: datetime, bucket: timedelta) -> tuple[datetime, datetime]:
    """The window a rule reads at ``at``: complete buckets only."""
    end = floor_time(at, bucket)
    return end - rule.window, end


def evaluate_rule(
    rule: RuleSpec,
    reader: MetricReader,
    at: datetime,
    config: AlertingConfig,
    bucket: timedelta,
) -> list[RuleEvaluation]:
    """Evaluate ``rule`` at ``at`` for every segment value of the keys it names."""
    start, end = rule_window(rule, at, bucket)
    base = RuleEvaluation(rule.name, at, start, end, ("all", "all"), "no_data")
    excluded = config.calendar.overlaps(start, end)
    read = READERS[rule.metric]
    current = {s: o for s, o in read(reader, rule, start, end).items() if s[0] in rule.segments}
    if excluded is not None:
        return [
            replace(base, segment=s, status="excluded", current=o, note=excluded)
            for s, o in current.items()
        ]
    min_volume = rule.min_volume or config.evaluation.min_volume
    alpha = rule.alpha or config.evaluation.alpha
    weeks: list[tuple[int, dict[Segment, Observation]]] = []
    if rule.baseline is not None:
        first = rule.baseline.weeks_ago or 1
        for w in range(first, first + rule.baseline.n_weeks + config.evaluation.extra_weeks):
            ws, we = start - w * WEEK, end - w * WEEK
            if config.calendar.overlaps(ws, we) is None:
                weeks.append((w, read(reader, rule, ws, we)))
    tested = [s for s, o in current.items() if o.n >= min_volume and not _nan(o.value)]
    level = alpha / max(1, len(tested))
    out = []
    for seg, obs in sorted(current.items()):
        ev = replace(base, segment=seg, current=obs, alpha=level)
        if obs.n < min_volume or _nan(obs.value):
            out.append(replace(ev, status="low_volume"))
            continue
        baseline_value, baseline_obs = None, None
        usable: list[tuple[int, Observation]] = []
        used: tuple[int, ...] = ()
        if rule.baseline is not None:
            usable = [
                (w, b[seg])
                for w, b in weeks
                if seg in b and b[seg].n >= min_volume and not _nan(b[seg].value)
            ]
            usable = usable[: rule.baseline.n_weeks]
            if len(usable) < rule.baseline.min_weeks:
                out.append(
                    replace(ev, status="no_baseline", note=f"{len(usable)} usable baseline weeks")
                )
                continue
            values = [o.value for _, o in usable]
            baseline_value = float(np.median(values))
            baseline_obs = pooled([o for _, o in usable], baseline_value)
            used = tuple(w for w, _ in usable)
        ev = replace(ev, baseline=baseline_value, baseline_obs=baseline_obs, weeks=used)
        if not crosses(rule, obs.value, baseline_value):
            out.append(replace(ev, status="ok"))
            continue
        p = significance(rule, obs, baseline_obs, reader, start, end, seg, level)
        status = "fired" if p is None or p < level else "not_significant"
        out.append(replace(ev, status=status, p_value=p))
    return out


def pooled(weeks: Sequence[Observation], median: float) -> Observation:
    """The counts the significance test compares with: the baseline weeks pooled.

    Pooling gives the test the baseline's whole sample (three weeks know last week's rate
    better than one). From three weeks on, the week farthest from the median is left out of
    the pool, so one odd week (an undeclared holiday, a campaign) can neither page nor hide a
    change; with two weeks both count.
    """
    keep = list(weeks)
    if len(keep) >= 3:
        keep.remove(max(keep, key=lambda o: abs(o.value - median)))
    n = sum(o.n for o in keep)
    if all(o.k is not None for o in keep):
        k = sum(int(o.k or 0) for o in keep)
        rate_like = all(o.k is not None and o.n and abs(o.value * o.n - o.k) < 1e-6 for o in keep)
        value = k / n if rate_like and n else k / len(keep)
        return Observation(value, n, k, len(keep))
    return Observation(float(np.median([o.value for o in keep])), n, None, len(keep))


def _nan(v: float) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def crosses(rule: RuleSpec, value: float, baseline: float | None) -> bool:
    """Whether ``value`` is past the rule's threshold in its direction (effect size only)."""
    if rule.threshold is not None:
        return value < rule.threshold if rule.direction == "below" else value > rule.threshold
    assert baseline is not None  # change/difference rules have a baseline (RuleSpec)
    if rule.change is not None:
        lo, hi = baseline * (1 - rule.change), baseline * (1 + rule.change)
    else:
        assert rule.difference is not None
        lo, hi = baseline - rule.difference, baseline + rule.difference
    if rule.direction == "below":
        return value < lo
    if rule.direction == "above":
        return value > hi
    return value < lo or value > hi


def significance(
    rule: RuleSpec,
    obs: Observation,
    baseline: Observation | None,
    reader: MetricReader,
    start: datetime,
    end: datetime,
    segment: Segment,
    level: float,
) -> float | None:
    """The p-value of the change (``None`` for metrics without a count-based test)."""
    direction = rule.direction
    if rule.threshold is not None or baseline is None:
        t = rule.threshold
        if t is None:
            return None
        if rule.metric in _RATES or (rule.metric == "performance" and obs.k is not None):
            return _stats.rate_level_p(int(obs.k or 0), obs.n, t, direction)
        if rule.metric in _COUNTS:
            return _stats.count_level_p(int(obs.k or 0), t, direction)
        if rule.metric in ("percentile", "latency"):
            return _quantile_p(rule, reader, start, end, segment, t, level)
        return None
    if direction == "either":
        direction = "below" if obs.value < baseline.value else "above"
    if rule.metric in _RATES:
        return _stats.rate_change_p(
            int(obs.k or 0), obs.n, int(baseline.k or 0), baseline.n, direction
        )
    if rule.metric in _COUNTS:
        return _stats.count_change_p(
            int(obs.k or 0), int(baseline.k or 0), direction, weeks=baseline.weeks
        )
    if rule.metric in ("percentile", "latency"):
        return _quantile_p(rule, reader, start, end, segment, baseline.value, level)
    if rule.metric == "performance" and obs.k is not None and baseline.k is not None:
        return _stats.rate_change_p(obs.k, obs.n, baseline.k, baseline.n, direction)
    return None


def _quantile_p(
    rule: RuleSpec,
    reader: MetricReader,
    start: datetime,
    end: datetime,
    segment: Segment,
    reference: float,
    level: float,
) -> float:
    """0 when ``reference`` lies outside the current quantile's interval at ``level``, else 1.

    The sketch gives quantiles, not ranks, so the test is the interval itself: the reported
    p-value says only on which side of ``level`` it falls.
    """
    assert rule.q is not None
    obs = READERS[rule.metric](reader, rule, start, end)[segment]
    lo_q, hi_q = _stats.quantile_bounds(rule.q, obs.n, level)
    column, kind = (
        (rule.column, rule.kind) if rule.metric == "percentile" else ("latency_ms", "latency_ms")
    )
    df = reader.store.percentiles(
        start, end, column=column, kind=kind, q=(lo_q, hi_q), segment=segment
    )
    if df.empty:
        return 1.0
    lo, hi = float(df["value"].iloc[0]), float(df["value"].iloc[-1])
    outside = reference < lo or reference > hi
    return 0.0 if outside else 1.0


def evaluate_rules(
    store: SqlMonitorStore,
    config: AlertingConfig,
    at: datetime,
    *,
    rules: Sequence[str] | None = None,
    reference: Any = None,
    reader: MetricReader | None = None,
) -> list[RuleEvaluation]:
    """Evaluate every enabled rule (or those named) at ``at`` against the bucket store.

    Parameters
    ----------
    store : MonitorStore
        The bucket store (``decision_counts``, ``volume``, ``percentiles`` … over windows).
    config : AlertingConfig
    at : datetime
        Evaluation time (aware); windows end at the last bucket boundary before it.
    rules : sequence of str, optional
        Only these rules.
    reference : ReferenceProfile, optional
        The training reference for ``drift`` rules.
    reader : MetricReader, optional
        A reader kept across passes over frozen history (replay, simulation).

    Returns
    -------
    list of RuleEvaluation
        One per rule and segment value (fired or, with the reason, not).
    """
    reader = reader or MetricReader(store, reference)
    out: list[RuleEvaluation] = []
    for rule in config.rules:
        if not rule.enabled or (rules is not None and rule.name not in rules):
            continue
        out.extend(evaluate_rule(rule, reader, at, config, store.bucket))
    return out
