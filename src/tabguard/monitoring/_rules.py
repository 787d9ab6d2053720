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
   further back, so a holiday never becomes "last week"; a baseline window starting before
   the store's first bucket is skipped too, see :func:`covered`);
3. the metric crosses the threshold in the rule's direction (``change`` relative to the
   baseline, ``difference`` against it, or an absolute ``threshold``);
4. the counts make it significant: p < ``alpha / m`` where ``m`` is the number of segment
   values the rule tested at this time (Bonferroni), with the test of ``_stats.py`` against
   the baseline weeks' pooled counts (from three weeks on, the one farthest from the median is
   left out: one odd week neither pages nor hides a change). Rate tests divide the counts by
   the segment's **dispersion**, estimated from its own baseline weeks (:func:`dispersion`),
   so a segment whose rate varies more between weeks than binomial counts needs more evidence.

In 4, a rate rule with a baseline also counts as significant when the **CUSUM** of the
segment's hourly counts over the last ``sequential_hours`` (log-likelihood ratio of the rule's
threshold rate against the baseline rate of each hour, divided by the dispersion and the
baseline's own noise) has reached ``log(m / alpha)`` over a run whose rate crosses the
threshold too (:func:`cusum_limit`, :class:`_History`): a change too small for one window's
counts accumulates evidence over the following hours instead of waiting for a lucky window.
Condition 3 still holds the alert open: once the window no longer crosses, it resolves, however
long the CUSUM takes to come down.

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
    dispersion : float
        The segment's dispersion the rate test divided its counts by (1 = binomial).
    cusum : float or None
        The CUSUM statistic (rate rules with a baseline and ``sequential_hours`` > 0).
    cusum_limit : float or None
        The value at which the CUSUM fires the rule (``log(m / alpha)``).
    cusum_run : CusumRun or None
        The CUSUM's run (since its last zero): its buckets, counts and baseline rate.
    by_cusum : bool
        The CUSUM reached its limit and the run's rate crosses the rule's threshold against
        the run's baseline (so a significant 15 % drop does not fire a 20 % rule).
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
    dispersion: float = 1.0
    cusum: float | None = None
    cusum_limit: float | None = None
    cusum_run: _stats.CusumRun | None = None
    by_cusum: bool = False

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
    kept where late rows can still change past buckets (the live loop). The store's first
    bucket is asked again at every pass (:meth:`begin_pass`).

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
        max_entries: int = 16384,
        maturity: timedelta | None = None,
    ) -> None:
        self.store = store
        self.reference = reference
        self.max_entries = max_entries
        self.maturity = maturity
        self._cache: OrderedDict[tuple[Any, ...], pd.DataFrame] = OrderedDict()
        self._observed: OrderedDict[tuple[Any, ...], dict[Segment, Observation]] = OrderedDict()
        self._series: dict[int, CounterSeries | None] = {}
        self._first: datetime | None = None
        self._first_asked = False

    def begin_pass(self) -> None:
        """Start an evaluation pass: what may have changed since the last one is asked again.

        The first bucket is kept for one pass only. History does not only grow forward: a
        late row (a spool replayed after an outage, a batched writer) can land in a bucket
        before the store's first one, and a reader kept across passes would otherwise go on
        refusing baselines that now exist. The windows' caches stay (frozen history).
        """
        self._first = None
        self._first_asked = False

    def first_bucket(self) -> datetime | None:
        """The store's first bucket (:meth:`SqlMonitorStore.first_bucket`): baseline windows
        starting before it are no baselines. One query per pass (:meth:`begin_pass`).
        ``None`` for an empty store, or a store that cannot tell (every window is then taken
        as covered)."""
        if not self._first_asked:
            ask = getattr(self.store, "first_bucket", None)
            self._first = ask() if ask is not None else None
            self._first_asked = True
        return self._first

    def _series_of(self, rule: RuleSpec) -> CounterSeries | None:
        """The rule's :class:`CounterSeries` when the store is a pass's view of its counters."""
        key = id(rule)
        if key not in self._series:
            snapshot = getattr(self.store, "counts_snapshot", None)
            families = COUNT_FAMILIES.get(rule.metric)
            ok = (
                snapshot is not None
                and families is not None
                and snapshot.families.issuperset(families)
            )
            self._series[key] = CounterSeries(rule, snapshot, self.store.bucket) if ok else None
        return self._series[key]

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

    def observations(
        self, rule: RuleSpec, start: datetime, end: datetime
    ) -> dict[Segment, Observation]:
        """``READERS[rule.metric](self, rule, start, end)``, once per rule and window (a rule's
        CUSUM reads the same hourly and baseline windows at every evaluation)."""
        key = (rule.name, id(rule), start, end)  # a rule (frozen, held by its config)
        if key in self._observed:
            self._observed.move_to_end(key)
            return self._observed[key]
        series = self._series_of(rule)
        value = series.window(start, end) if series is not None else None
        if value is None:
            value = READERS[rule.metric](self, rule, start, end)
        self._observed[key] = value
        while len(self._observed) > self.max_entries:
            self._observed.popitem(last=False)
        return value


class CounterSeries:
    """A counter metric of one rule for every segment value, bucket by bucket, summed into any
    window of the pass's span by prefix sums.

    What the metric's reader (:data:`READERS`) computes from a window's frame, number for
    number: the same segments (those with requests in the window), the same integer sums,
    hence the same observations. A pass's ~170 windows per rate rule then cost a subtraction
    each instead of a query and a frame.

    Parameters
    ----------
    rule : RuleSpec
        A ``decision_rate``, ``volume``, ``guard_action_rate`` or ``probing_count`` rule.
    snapshot : BucketCounts
        The pass's counters (:meth:`~tabguard.monitoring._store.SqlMonitorStore.with_counts`).
    bucket : timedelta
    """

    def __init__(self, rule: RuleSpec, snapshot: Any, bucket: timedelta) -> None:
        self.metric = rule.metric
        self.step = int(bucket.total_seconds())
        self.lo, self.hi = int(snapshot.lo), int(snapshot.hi)
        groups = snapshot.groups
        self.segments = sorted({(str(k), str(v)) for k, v, _, _ in groups})
        index = {seg: i for i, seg in enumerate(self.segments)}
        # Per group: its segment, whether it counts requests (presence, volume), and what it
        # adds to the numerator and denominator of the metric.
        seg = np.array([index[(str(k), str(v))] for k, v, _, _ in groups], dtype=np.int64)
        requests = np.zeros(len(groups), dtype=np.int64)
        num = np.zeros(len(groups), dtype=np.int64)
        den = np.zeros(len(groups), dtype=np.int64)
        for i, (_, _, family, text) in enumerate(groups):
            if family == "sd":
                requests[i] = 1
                status, _, decision = str(text).partition("|")
                if rule.metric == "decision_rate" and status in DECIDED and decision:
                    den[i] = 1
                    num[i] = int(decision == rule.decision)
            elif family == "guard" and rule.metric == "guard_action_rate":
                parts = str(text).split("|", 2)
                num[i] = int(
                    len(parts) > 1
                    and parts[1] == rule.action
                    and (rule.step is None or parts[0] == rule.step)
                    and (rule.column is None or (parts[2] if len(parts) > 2 else "") == rule.column)
                )
            elif family == "probing" and rule.metric == "probing_count":
                num[i] = int(text == (rule.signal or "client_flagged"))
        b, g, n = snapshot.rows
        cells = (b - self.lo) // self.step + 1
        shape = ((self.hi - self.lo) // self.step + 1, len(self.segments))

        def cumulative(weight: np.ndarray, values: np.ndarray) -> np.ndarray:
            out = np.zeros(shape, dtype=np.int64)
            np.add.at(out, (cells, seg[g]), weight[g] * values)
            return np.cumsum(out, axis=0)

        ones = np.ones_like(n)
        self._present = cumulative(requests, ones)
        self._requests = cumulative(requests, n)
        self._num = cumulative(num, n)
        self._den = cumulative(den, n)

    def window(self, start: datetime, end: datetime) -> dict[Segment, Observation] | None:
        """The observations over ``[start, end)``; ``None`` outside the span (ask the store)."""
        from tabguard.monitoring._window import epoch_seconds

        lo, hi = epoch_seconds(start), epoch_seconds(end)
        if lo < self.lo or hi > self.hi or (lo - self.lo) % self.step or (hi - lo) % self.step:
            return None
        i, j = (lo - self.lo) // self.step, (hi - self.lo) // self.step
        present = self._present[j] - self._present[i]
        requests = (self._requests[j] - self._requests[i]).tolist()
        num = (self._num[j] - self._num[i]).tolist()
        den = (self._den[j] - self._den[i]).tolist()
        out: dict[Segment, Observation] = {}
        for s in np.flatnonzero(present).tolist():
            seg, v = self.segments[s], requests[s]
            if self.metric == "decision_rate":
                k, n = num[s], den[s]
                out[seg] = Observation(k / n if n else math.nan, n, k)
            elif self.metric == "volume":
                out[seg] = Observation(float(v), v, v)
            elif self.metric == "guard_action_rate":
                k = min(num[s], v)
                out[seg] = Observation(k / v if v else math.nan, v, k)
            else:  # probing_count
                out[seg] = Observation(float(num[s]), v, num[s])
        return out


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
    since = reader.first_bucket() if rule.baseline is not None and current else None
    before: list[int] = []  # weeks back whose window starts before the store's history
    if rule.baseline is not None:
        first = rule.baseline.weeks_ago or 1
        for w in range(first, first + rule.baseline.n_weeks + config.evaluation.extra_weeks):
            ws, we = start - w * WEEK, end - w * WEEK
            if not covered(ws, since):
                before.append(w)
            elif config.calendar.overlaps(ws, we) is None:
                weeks.append((w, read(reader, rule, ws, we)))
    tested = [s for s, o in current.items() if o.n >= min_volume and not _nan(o.value)]
    level = alpha / max(1, len(tested))
    history = _History(
        rule, reader, config, start, end, [w for w, _ in weeks], min_volume, bucket, since
    )
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
                note = f"{len(usable)} usable baseline weeks"
                if before and since is not None:
                    note += (
                        f"; {_weeks_back(before)} before the store's first bucket "
                        f"({since:%Y-%m-%d %H:%M} UTC): history too short"
                    )
                out.append(replace(ev, status="no_baseline", note=note))
                continue
            values = [o.value for _, o in usable]
            baseline_value = float(np.median(values))
            baseline_obs = pooled([o for _, o in usable], baseline_value)
            used = tuple(w for w, _ in usable)
        ev = replace(ev, baseline=baseline_value, baseline_obs=baseline_obs, weeks=used)
        if history.enabled:
            phi = history.dispersion(seg)
            run = history.cusum(seg, phi, baseline_obs)
            limit = cusum_limit(rule, level)
            by_cusum = run.stat >= limit and run.n > 0 and crosses(rule, run.rate, run.baseline)
            ev = replace(ev, dispersion=phi, cusum=run.stat, cusum_limit=limit, cusum_run=run,
                         by_cusum=by_cusum)  # fmt: skip
        if not crosses(rule, obs.value, baseline_value):
            out.append(replace(ev, status="ok"))
            continue
        p = significance(rule, obs, baseline_obs, reader, start, end, seg, level, ev.dispersion)
        status = "fired" if p is None or p < level or ev.by_cusum else "not_significant"
        out.append(replace(ev, status=status, p_value=p))
    return out


def cusum_limit(rule: RuleSpec, level: float) -> float:
    """The CUSUM's limit: ``log(1 / level)``, plus ``log 2`` for two one-sided CUSUMs.

    ``level`` is the window test's ``alpha / m``: by Ville's inequality a run starting at any
    given hour reaches the limit with probability at most ``level`` under the baseline rate,
    the same bound per hour and segment as the window test's.
    """
    return math.log(1.0 / level) + (math.log(2.0) if rule.direction == "either" else 0.0)


class _History:
    """What a rate rule reads beyond its window, for one evaluation: the segment's dispersion
    across the baseline weeks and its hourly CUSUM (cached across the segments)."""

    #: Clock positions compared week against week for the dispersion: the windows ending at
    #: the window's end and before it, covering the last week (28 for a 6 h window): with two
    #: baseline weeks that is 28 degrees of freedom, enough to see a 1.3x standard deviation
    #: (a day's 4 cells gave 4, which the prior rightly mostly ignored).
    SPAN = timedelta(weeks=1)

    def __init__(
        self,
        rule: RuleSpec,
        reader: MetricReader,
        config: AlertingConfig,
        start: datetime,
        end: datetime,
        weeks: list[int],
        min_volume: int,
        bucket: timedelta,
        since: datetime | None = None,
    ) -> None:
        self.rule, self.reader, self.config = rule, reader, config
        self.start, self.end, self.weeks = start, end, weeks
        self.min_volume, self.bucket, self.since = min_volume, bucket, since
        self.read = READERS[rule.metric]
        self.enabled = (
            rule.metric in _RATES and rule.baseline is not None and rule.threshold is None
        )
        self.hours = config.evaluation.sequential_hours
        self._cells: list[list[dict[Segment, Observation]]] | None = None
        self._hourly: list[tuple[bool, dict[Segment, Observation]]] | None = None
        self._baselines: dict[datetime, list[dict[Segment, Observation]]] = {}

    def _window(self, s: datetime, e: datetime) -> dict[Segment, Observation] | None:
        """The metric over ``[s, e)``; ``None`` when the calendar excludes it or it starts
        before the store's history (:func:`covered`: a partial window is no baseline)."""
        if not covered(s, self.since) or self.config.calendar.overlaps(s, e) is not None:
            return None
        return self.reader.observations(self.rule, s, e)

    def dispersion(self, seg: Segment) -> float:
        """The segment's dispersion (:func:`_stats.dispersion`) over the baseline weeks."""
        if self._cells is None:
            n_cells = max(1, self.SPAN // self.rule.window)
            self._cells = []
            for j in range(n_cells):
                row = []
                for w in self.weeks:
                    shift = j * self.rule.window + w * WEEK
                    got = self._window(self.start - shift, self.end - shift)
                    row.append(got or {})
                self._cells.append(row)
        k = [[float(c[seg].k or 0) if seg in c else 0.0 for c in row] for row in self._cells]
        n = [[float(c[seg].n) if seg in c else 0.0 for c in row] for row in self._cells]
        phi, _ = _stats.dispersion(
            k, n, prior_df=self.config.evaluation.dispersion_prior_df, min_n=self.min_volume
        )
        return phi

    def cusum(self, seg: Segment, phi: float, baseline: Observation | None) -> _stats.CusumRun:
        """The CUSUM of the segment's hourly counts against each hour's baseline rate."""
        if self.hours <= 0 or baseline is None or not self.weeks:
            return _stats.CusumRun()
        steps = int(timedelta(hours=self.hours) // self.bucket)
        if self._hourly is None:
            self._hourly = []
            for i in range(steps, 0, -1):
                e = self.end - (i - 1) * self.bucket
                got = self._window(e - self.bucket, e)
                self._hourly.append((got is not None, got or {}))
        k, n, p0, p1 = [], [], [], []
        assert self.rule.baseline is not None
        for i, (open_, got) in enumerate(self._hourly):
            obs = got.get(seg)
            if not open_ or obs is None or obs.k is None or obs.n <= 0:
                continue
            e = self.end - (steps - 1 - i) * self.bucket
            base = self._baseline_rate(seg, e)
            if base is None:
                continue
            k.append(float(obs.k))
            n.append(float(obs.n))
            p0.append(base)
            p1.append(_alternative(self.rule, base))
        # The baseline is an estimate from ``weeks`` windows of the same length: the variance
        # of a long run's rate against it is (1 + 1/weeks) times the run's own.
        scale = phi * (1.0 + 1.0 / max(1, baseline.weeks))
        if self.rule.direction == "either":
            up = [_alternative(self.rule, b, "above") for b in p0]
            down = [_alternative(self.rule, b, "below") for b in p0]
            runs = [_stats.rate_cusum(k, n, p0, alt, scale=scale) for alt in (up, down)]
            return _best_run(runs)
        return _best_run([_stats.rate_cusum(k, n, p0, p1, scale=scale)])

    def _baseline_rate(self, seg: Segment, e: datetime) -> float | None:
        """The baseline rate for the bucket ending at ``e``: the rule's window ending there,
        pooled over the baseline weeks as the window test pools them."""
        if e not in self._baselines:
            rows = []
            for w in self.weeks:
                got = self._window(e - self.rule.window - w * WEEK, e - w * WEEK)
                if got is not None:
                    rows.append(got)
            self._baselines[e] = rows
        assert self.rule.baseline is not None
        usable = [
            r[seg]
            for r in self._baselines[e]
            if seg in r and r[seg].n >= self.min_volume and not _nan(r[seg].value)
        ][: self.rule.baseline.n_weeks]
        if len(usable) < self.rule.baseline.min_weeks:
            return None
        b = pooled(usable, float(np.median([o.value for o in usable])))
        return b.value if 0 < b.value < 1 else None


def covered(start: datetime, first_bucket: datetime | None) -> bool:
    """Whether a baseline window starting at ``start`` lies wholly inside the store's history.

    A window starting before the first bucket holds only the hours since then (a store
    started at midnight gives "the same 6 h last week" 1-5 h of data in its second week):
    its counts would pass ``min_volume`` and its rate would be another time of day's. It is
    no baseline, not a partial one. ``first_bucket`` ``None`` (unknown) covers everything.
    """
    return first_bucket is None or start >= first_bucket


def _weeks_back(weeks: Sequence[int]) -> str:
    """``week 1 back`` / ``weeks 1-3 back`` (consecutive: the weeks a rule looks at)."""
    if len(weeks) == 1:
        return f"week {weeks[0]} back starts"
    return f"weeks {min(weeks)}-{max(weeks)} back start"


def _best_run(runs: list[_stats.CusumRun]) -> _stats.CusumRun:
    return max(runs, key=lambda r: r.stat)


def _alternative(rule: RuleSpec, p0: float, direction: str | None = None) -> float:
    """The rate the rule is looking for when the baseline is ``p0`` (kept inside (0, 1))."""
    direction = direction or rule.direction
    sign = -1.0 if direction == "below" else 1.0
    if rule.change is not None:
        p = p0 * (1 + sign * rule.change)
    else:
        assert rule.difference is not None
        p = p0 + sign * rule.difference
    return min(max(p, 1e-6), 1 - 1e-6)


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
    dispersion: float = 1.0,
) -> float | None:
    """The p-value of the change (``None`` for metrics without a count-based test).

    ``dispersion`` divides the counts of rate tests (quasi-binomial, see ``_stats``).
    """
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
            int(obs.k or 0), obs.n, int(baseline.k or 0), baseline.n, direction,
            dispersion=dispersion,
        )  # fmt: skip
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


#: The counter families each metric's windows read (the other metrics read sketches, drift
#: and outcomes, which stay one query per window).
COUNT_FAMILIES: dict[str, tuple[str, ...]] = {
    "decision_rate": ("sd",),
    "volume": ("sd",),
    "guard_action_rate": ("guard", "sd"),
    "probing_count": ("probing", "sd"),
}


def counts_span(
    config: AlertingConfig, at: datetime, bucket: timedelta
) -> tuple[datetime, datetime, tuple[str, ...]] | None:
    """The span and counter families one pass at ``at`` reads (``None``: no counter rules).

    Covers each counter rule's window, its baseline weeks (with the spare weeks that replace
    excluded ones), the dispersion's week of cells and the CUSUM's hours with their
    baselines. A window outside it is still answered, by its own query.
    """
    lo: datetime | None = None
    hi: datetime | None = None
    families: set[str] = set()
    hours = timedelta(hours=config.evaluation.sequential_hours)
    for rule in config.rules:
        if not rule.enabled or rule.metric not in COUNT_FAMILIES:
            continue
        start, end = rule_window(rule, at, bucket)
        back = timedelta(0)
        if rule.baseline is not None:
            first = rule.baseline.weeks_ago or 1
            back = (first + rule.baseline.n_weeks + config.evaluation.extra_weeks - 1) * WEEK
        reach = start - back - max(_History.SPAN, hours + rule.window)
        lo = reach if lo is None else min(lo, reach)
        hi = end if hi is None else max(hi, end)
        families.update(COUNT_FAMILIES[rule.metric])
    if lo is None or hi is None:
        return None
    return lo, hi, tuple(sorted(families))


def pass_reader(
    store: Any,
    config: AlertingConfig,
    at: datetime,
    reference: Any = None,
    maturity: timedelta | None = None,
) -> MetricReader:
    """The reader of one live evaluation pass: the counters of its whole span read at once
    (:meth:`~tabguard.monitoring._store.SqlMonitorStore.with_counts`) when the store can."""
    span = counts_span(config, at, store.bucket)
    if span is not None and hasattr(store, "with_counts"):
        store = store.with_counts(*span)
    return MetricReader(store, reference, maturity=maturity)


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
    reader = reader or pass_reader(store, config, at, reference)
    reader.begin_pass()
    out: list[RuleEvaluation] = []
    for rule in config.rules:
        if not rule.enabled or (rules is not None and rule.name not in rules):
            continue
        out.extend(evaluate_rule(rule, reader, at, config, store.bucket))
    return out
