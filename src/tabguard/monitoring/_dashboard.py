"""The monitoring dashboard's data: one function per panel, each returning a typed model.

The page (``static/dashboard.js``) only draws what these return; every number comes from the
bucket store's public queries (``series``, ``count_series``, ``numeric_cells``, ``drift``,
``performance``…), the alert history and the flag audit trail. Computation lives here, the
HTTP layer in ``_dashboard_app.py``, drawing in the browser.

Time axes are dense grids of step starts (epoch seconds) with ``None`` where a bucket holds no
value, so gaps stay visible. A range of more than :data:`MAX_POINTS` buckets is drawn on a
coarser step, and the coarser points are **recomputed, not thinned**: counts and rates are
summed over the step's buckets, percentiles come from the step's merged KLL sketches (the
accuracy of any window), never from averaging hourly percentiles.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from pydantic import BaseModel, Field

from tabguard.monitoring._compare import DECIDED
from tabguard.monitoring._delta import ALL as ALL_SEGMENT
from tabguard.monitoring._delta import OTHER
from tabguard.monitoring._store import F_CLIENT, F_GUARD, F_PROBING, F_STATUS_DECISION, F_VIOLATION
from tabguard.monitoring._window import epoch_seconds, from_epoch

if TYPE_CHECKING:
    from tabguard.flags import FlagStore
    from tabguard.monitoring._clock import Clock
    from tabguard.monitoring._drift import ColumnReference, DriftReference
    from tabguard.monitoring._store import SqlMonitorStore

#: Most points a time axis gets before the step is coarsened (a 28-day range of hourly buckets,
#: 672 points, is drawn bucket by bucket).
MAX_POINTS = 800
#: Step multiples tried, in buckets (coarser steps stay on day boundaries).
_STEP_FACTORS = (1, 2, 3, 4, 6, 8, 12, 24, 48, 72, 96, 168, 336, 672)
#: Percentile columns of ``store.series``, and their names on the page.
STATS = ("p01", "p10", "p50", "p90", "p99")
_LEVELS = (0.01, 0.10, 0.50, 0.90, 0.99)
#: The statistics a per-segment chart can show.
SEGMENT_STATS = (*STATS, "mean")
#: Decision-layer rates: approve / deny / review over decided requests (what the alert rules
#: read); delayed and refused over all requests.
DECISION_RATES = ("approve", "deny", "review", "delayed", "refused")
#: Range presets of the page (seconds).
RANGES = {"24h": 86_400, "7d": 7 * 86_400, "28d": 28 * 86_400}
#: Category values drawn per chart (the rest summed as ``other``).
TOP_CATEGORIES = 8
#: Clients drawn on the probing chart (the table lists every stored client).
TOP_CLIENTS = 8

#: The segment key of the whole traffic.
ALL_KEY = ALL_SEGMENT[0]

Kind = Literal["raw", "feature", "score", "latency_ms"]


class DashboardError(ValueError):
    """A query the dashboard cannot answer (bad range, unknown column); the API's 400/404."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# ---- response models ---------------------------------------------------------------------


class Line(BaseModel):
    """One drawn series: values on the panel's time axis (``None`` = no data)."""

    name: str = Field(description="What the line is: p50, a segment value, a decision, a client")
    segment: str = Field(description="`all` or `key=value`")
    values: list[float | None]
    dashed: bool = Field(False, description="The same period one week earlier")


class ReferenceBand(BaseModel):
    """The training reference's p10–p90 (and median), interpolated from its bins."""

    p10: float
    p50: float
    p90: float
    n: int = Field(description="Training values behind the reference")


class ColumnInfo(BaseModel):
    """A monitored column: the raw attribute and/or the model feature of that name."""

    name: str
    raw: Literal["numeric", "category"] | None = None
    feature: Literal["numeric", "category"] | None = None


class Meta(BaseModel):
    """What the page needs before drawing anything."""

    store: str = Field(description="The store's URL without password")
    bucket: int = Field(description="Bucket length in seconds")
    latest: int | None = Field(description="End of the last complete bucket (epoch s)")
    ranges: dict[str, int]
    max_points: int
    segments: dict[str, list[str]] = Field(description="Segment keys and their values")
    columns: list[ColumnInfo]
    stats: list[str]
    reference: bool = Field(description="A training reference is configured")
    rules: list[str]


class FeaturePanel(BaseModel):
    """Percentiles (or category shares) of one column over time."""

    column: str
    kind: Kind
    type: Literal["numeric", "category", "empty"]
    segment_key: str
    segment_value: str | None = Field(description="None: every value of the key, one line each")
    stat: str
    step: int
    t: list[int]
    lines: list[Line]
    n: list[int] = Field(description="Values behind each point (summed over drawn segments)")
    reference: ReferenceBand | None = None
    note: str | None = None


class DecisionGroup(BaseModel):
    """The decision layer of one segment value."""

    segment: str
    rates: list[Line] = Field(description="Rates this period and (dashed) one week earlier")
    volume: list[int]
    volume_last_week: list[int]


class DecisionPanel(BaseModel):
    step: int
    t: list[int]
    segment_key: str
    groups: list[DecisionGroup]


class DriftPanel(BaseModel):
    """Drift against the training reference, feature × window (a heatmap)."""

    kind: Kind
    stat: Literal["psi", "js"]
    segment: str
    window: int
    windows: list[int]
    columns: list[str]
    values: list[list[float | None]] = Field(description="values[column][window]")
    n: list[list[int]]
    note: str | None = None


class GuardRow(BaseModel):
    step: str
    action: str
    column: str
    n: int
    rate: float


class GuardPanel(BaseModel):
    """What the guards did, as rates of the requests of each step."""

    step: int
    t: list[int]
    volume: list[int]
    lines: list[Line]
    table: list[GuardRow]


class ClientRow(BaseModel):
    client: str
    requests: int
    probing: int
    flagged: int
    signals: dict[str, int]


class ProbingPanel(BaseModel):
    step: int
    t: list[int]
    signals: list[Line] = Field(description="Requests carrying each probing signal")
    clients: list[Line] = Field(description="Requests with a probing signal, per top client")
    table: list[ClientRow]


class Annotation(BaseModel):
    """An event drawn on every time axis: an alert, or a flag change (who changed what)."""

    time: int
    end: int | None = None
    kind: Literal["alert", "flag"]
    label: str
    detail: str
    actor: str
    severity: str | None = None
    segment: str | None = None
    state: str | None = None


class Annotations(BaseModel):
    items: list[Annotation]


class BandRow(BaseModel):
    band: int
    low: float
    high: float
    n: int
    positives: int
    default_rate: float | None
    mean_score: float | None


class PerformancePanel(BaseModel):
    """Performance on matured outcomes: per window, and by score band over the range."""

    as_of: int
    maturity: int
    segment: str
    windows: list[int]
    window: int
    auc: list[float | None]
    default_rate: list[float | None]
    n_labelled: list[int]
    bands: list[BandRow]
    note: str | None = None


# ---- time grid ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Grid:
    """A dense time axis ``[start, end)`` of ``step`` (a multiple of the bucket)."""

    start: datetime
    end: datetime
    step: timedelta

    @property
    def size(self) -> int:
        return int((self.end - self.start) / self.step)

    @property
    def t(self) -> list[int]:
        s0, d = epoch_seconds(self.start), int(self.step.total_seconds())
        return [s0 + i * d for i in range(self.size)]

    def positions(self, epochs: ArrayLike) -> np.ndarray:
        """Index of the step holding each bucket start."""
        s0, d = epoch_seconds(self.start), int(self.step.total_seconds())
        return (np.asarray(epochs, dtype="int64") - s0) // d

    def windows(self) -> list[tuple[datetime, datetime]]:
        return [
            (self.start + i * self.step, self.start + (i + 1) * self.step) for i in range(self.size)
        ]

    def shifted(self, delta: timedelta) -> Grid:
        return Grid(self.start - delta, self.end - delta, self.step)


def plan_grid(
    bucket: timedelta,
    start: datetime,
    end: datetime,
    *,
    max_points: int = MAX_POINTS,
    step: timedelta | None = None,
) -> Grid:
    """The time axis of a range: ends rounded out to buckets, the step coarsened as needed.

    Raises
    ------
    DashboardError
        ``end <= start``, or a ``step`` that is not a multiple of the bucket.
    """
    if end <= start:
        raise DashboardError(
            f"the range needs start < end; got {start.isoformat()} .. {end.isoformat()}"
        )
    if step is None:
        n = math.ceil((end - start) / bucket)
        factor = next((f for f in _STEP_FACTORS if n / f <= max_points), None)
        if factor is None:
            factor = math.ceil(n / max_points / 672) * 672
        step = bucket * factor
    elif step <= timedelta(0) or step % bucket:
        raise DashboardError(f"step must be a multiple of the {bucket} bucket; got {step}")
    s0 = epoch_seconds(start)
    d = int(step.total_seconds())
    lo = from_epoch(s0 - s0 % d)
    e0 = epoch_seconds(end)
    hi = from_epoch(e0 + (-e0) % d)
    return Grid(lo, hi, step)


def _clean(values: Iterable[Any]) -> list[float | None]:
    """JSON-ready values: 6 significant digits (short payloads), ``None`` for missing/inf."""
    x = np.array([np.nan if v is None else v for v in values], dtype=float)
    ok = np.isfinite(x) & (x != 0)
    if ok.any():
        # Round each magnitude at once (a few distinct decimals), not value by value.
        decimals = 5 - np.floor(np.log10(np.abs(x[ok]))).astype(int)
        rounded = x[ok]
        for d in np.unique(decimals):
            m = decimals == d
            if abs(d) < 290:
                rounded[m] = np.round(rounded[m], int(d))
            else:  # 10**d would overflow: the rare extreme magnitudes one by one
                rounded[m] = [float(f"{v:.6g}") for v in rounded[m]]
        x[ok] = rounded
    return [v if v == v and abs(v) != math.inf else None for v in x.tolist()]


def _dense(grid: Grid, epochs: ArrayLike, values: ArrayLike) -> list[float | None]:
    out = np.full(grid.size, np.nan)
    if np.size(epochs):
        pos = grid.positions(epochs)
        ok = (pos >= 0) & (pos < grid.size)
        out[pos[ok]] = np.asarray(values, dtype=float)[ok]
    return _clean(out)


def _summed(grid: Grid, epochs: ArrayLike, values: ArrayLike) -> np.ndarray:
    out = np.zeros(grid.size)
    if np.size(epochs):
        pos = grid.positions(epochs)
        ok = (pos >= 0) & (pos < grid.size)
        np.add.at(out, pos[ok], np.asarray(values, dtype=float)[ok])
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> list[float | None]:
    with np.errstate(divide="ignore", invalid="ignore"):
        return _clean(np.where(den > 0, num / np.where(den > 0, den, 1), np.nan))


def segment_text(key: str, value: str) -> str:
    """``all`` or ``key=value``."""
    return ALL_KEY if key == ALL_KEY else f"{key}={value}"


def _epochs(col: pd.Series) -> np.ndarray:
    """Epoch seconds of a datetime column, whatever its resolution (s, ms, us, ns)."""
    if not len(col):
        return np.zeros(0, dtype="int64")
    return ((col - _EPOCH) // pd.Timedelta(seconds=1)).to_numpy(dtype="int64")


_EPOCH = pd.Timestamp(0, tz="UTC")


# ---- the data source ---------------------------------------------------------------------


class DashboardData:
    """Every panel of the dashboard, from one monitor store.

    Parameters
    ----------
    store : SqlMonitorStore
    reference : DriftReference, optional
        The training reference (bands on feature charts, the drift heatmap).
    flag_store : FlagStore, optional
        Its audit trail gives the flag-change annotations.
    rules : sequence of str
        Names of the configured alert rules (listed by the page).
    maturity : timedelta
        Outcome maturity for the performance panel.
    clock : Clock, optional
        "Now" of the performance panel (labels mature relative to it); default the system
        clock.
    max_points : int
        Points per time axis before the step is coarsened.
    """

    def __init__(
        self,
        store: SqlMonitorStore,
        *,
        reference: DriftReference | None = None,
        flag_store: FlagStore | None = None,
        rules: Sequence[str] = (),
        maturity: timedelta = timedelta(days=90),
        clock: Clock | None = None,
        max_points: int = MAX_POINTS,
    ) -> None:
        from tabguard.monitoring._alerts import AlertStore
        from tabguard.monitoring._clock import SystemClock

        self.store = store
        self.reference = reference
        self.flag_store = flag_store
        self.rules = list(rules)
        self.maturity = maturity
        self.clock = clock or SystemClock()
        self.max_points = max_points
        self.alerts = AlertStore.of(store)
        self._meta: tuple[Any, Meta] | None = None

    # ---- ranges ----

    def grid(
        self, start: datetime | None, end: datetime | None, step: timedelta | None = None
    ) -> Grid:
        """The axis of a query: default the last 24 h of complete buckets."""
        bucket = self.store.bucket
        if end is None:
            latest = self.store.latest()
            end = latest if latest is not None else from_epoch(epoch_seconds(self.clock.now()))
        if start is None:
            start = end - timedelta(days=1)
        if end - start > timedelta(days=3660):
            raise DashboardError("the range may span at most 10 years")
        return plan_grid(bucket, start, end, max_points=self.max_points, step=step)

    # ---- meta ----

    def meta(self) -> Meta:
        """Store, bucket, latest time, segments and columns (cached until new data arrive)."""
        latest = self.store.latest()
        watermark = self.store.watermark()
        if self._meta is not None and self._meta[0] == (latest, watermark):
            return self._meta[1]
        bucket = self.store.bucket
        segments: dict[str, list[str]] = {}
        columns: dict[str, ColumnInfo] = {}
        if latest is not None:
            end = latest + bucket  # the bucket in progress too: a new segment shows at once
            start = end - timedelta(days=28)
            for key, value in sorted(self.store.segments(start, end)):
                if key != ALL_KEY:
                    segments.setdefault(key, []).append(value)
            recent = max(start, end - timedelta(days=1))
            cells = self.store.numeric_cells(recent, end, segment=ALL_SEGMENT)
            for _sk, _sv, kind, col in cells:
                if kind in ("raw", "feature"):
                    info = columns.setdefault(col, ColumnInfo(name=col))
                    setattr(info, kind, "numeric")
            cats = self.store.category_counts(recent, end, segment=ALL_SEGMENT)
            for kind, col in cats[["kind", "column"]].drop_duplicates().itertuples(index=False):
                if kind in ("raw", "feature"):
                    info = columns.setdefault(str(col), ColumnInfo(name=str(col)))
                    if getattr(info, kind) is None:
                        setattr(info, kind, "category")
        for values in segments.values():
            values.sort(key=lambda v: (v == OTHER, v))
        meta = Meta(
            store=self.store.what.removeprefix("monitor store "),
            bucket=int(bucket.total_seconds()),
            latest=None if latest is None else epoch_seconds(latest),
            ranges=RANGES,
            max_points=self.max_points,
            segments=segments,
            columns=[columns[c] for c in sorted(columns)],
            stats=list(SEGMENT_STATS),
            reference=self.reference is not None,
            rules=self.rules,
        )
        self._meta = ((latest, watermark), meta)
        return meta

    # ---- features ----

    def feature(
        self,
        column: str,
        kind: Kind,
        grid: Grid,
        *,
        segment_key: str = ALL_KEY,
        segment_value: str | None = ALL_KEY,
        stat: str = "p50",
    ) -> FeaturePanel:
        """Percentile bands (one segment) or one statistic per segment value (every value).

        A category column gives the share of its most frequent values instead (one segment).
        """
        if stat not in SEGMENT_STATS:
            raise DashboardError(f"stat must be one of {', '.join(SEGMENT_STATS)}; got {stat!r}")
        if segment_key == ALL_KEY:
            segment_value = ALL_KEY
        seg = None if segment_value is None else (segment_key, segment_value)
        series = self._numeric_series(column, kind, grid, seg)
        if segment_value is None and len(series):
            series = series[series["segment_key"] == segment_key]
        base = {
            "column": column,
            "kind": kind,
            "segment_key": segment_key,
            "segment_value": segment_value,
            "stat": stat,
            "step": int(grid.step.total_seconds()),
            "t": grid.t,
        }
        if not len(series):
            return self._category(column, kind, grid, seg, base)
        epochs = _epochs(series["bucket"])
        lines: list[Line] = []
        if segment_value is not None:
            label = segment_text(segment_key, segment_value)
            for name in STATS:
                lines.append(
                    Line(name=name, segment=label, values=_dense(grid, epochs, series[name]))
                )
            lines.append(
                Line(name="mean", segment=label, values=_dense(grid, epochs, series["mean"]))
            )
        else:
            for value, part in series.groupby("segment_value", sort=True):
                e = _epochs(part["bucket"])
                lines.append(
                    Line(
                        name=str(value),
                        segment=segment_text(segment_key, str(value)),
                        values=_dense(grid, e, part[stat]),
                    )
                )
            lines.sort(key=lambda ln: (ln.name == OTHER, ln.name))
        n = _summed(grid, epochs, series["n"]).astype(int).tolist()
        ref = None
        if self.reference is not None and kind in ("raw", "feature"):
            col_ref = self.reference.columns.get((kind, column))
            if col_ref is not None and col_ref.numeric:
                ref = reference_band(col_ref)
        return FeaturePanel(type="numeric", lines=lines, n=n, reference=ref, **base)

    def _numeric_series(
        self, column: str, kind: str, grid: Grid, segment: tuple[str, str] | None
    ) -> pd.DataFrame:
        """Per-step ``bucket, segment_key, segment_value, n, p01…p99, mean``."""
        if grid.step == self.store.bucket:
            return self.store.series(
                grid.start, grid.end, column=column, kind=kind, segment=segment
            )
        # Coarser steps: percentiles of each step's merged sketches, never averaged percentiles.
        records = []
        for lo, hi in grid.windows():
            for (sk, sv, _kd, _col), cell in self.store.numeric_cells(
                lo, hi, column, kind, segment
            ).items():
                n = cell.sketch.n
                qs = cell.sketch.quantiles(_LEVELS) if n else [np.nan] * len(_LEVELS)
                records.append((pd.Timestamp(lo), sk, sv, n, *qs, cell.total / n if n else np.nan))
        return pd.DataFrame(
            records, columns=["bucket", "segment_key", "segment_value", "n", *STATS, "mean"]
        )

    def _category(
        self,
        column: str,
        kind: str,
        grid: Grid,
        segment: tuple[str, str] | None,
        base: dict[str, Any],
    ) -> FeaturePanel:
        if segment is None:
            # Every segment value of a category column would be values × categories lines.
            segment = ALL_SEGMENT
            note = "category column: shares of the whole traffic (pick one segment value)"
        else:
            note = None
        counts = self.store.count_series(grid.start, grid.end, family="cat", segment=segment)
        prefix = f"{kind}|{column}|"
        counts = counts[counts["key"].str.startswith(prefix, na=False)]
        if not len(counts):
            return FeaturePanel(type="empty", lines=[], n=[0] * grid.size, note="no values", **base)
        counts = counts.assign(value=counts["key"].str.slice(len(prefix)))
        epochs = _epochs(counts["bucket"])
        total = _summed(grid, epochs, counts["n"])
        order = counts.groupby("value")["n"].sum().sort_values(ascending=False, kind="stable")
        top = [str(v) for v in order.index[:TOP_CATEGORIES]]
        label = segment_text(*segment)
        lines = []
        for value in top:
            part = counts[counts["value"] == value]
            lines.append(
                Line(
                    name=value,
                    segment=label,
                    values=_ratio(_summed(grid, _epochs(part["bucket"]), part["n"]), total),
                )
            )
        rest = counts[~counts["value"].isin(top)]
        if len(rest):
            lines.append(
                Line(
                    name="(others)",
                    segment=label,
                    values=_ratio(_summed(grid, _epochs(rest["bucket"]), rest["n"]), total),
                )
            )
        base = {**base, "segment_key": segment[0], "segment_value": segment[1], "stat": "share"}
        return FeaturePanel(
            type="category", lines=lines, n=total.astype(int).tolist(), note=note, **base
        )

    # ---- decisions ----

    def decisions(
        self, grid: Grid, *, segment_key: str = ALL_KEY, segment_value: str | None = None
    ) -> DecisionPanel:
        """Decision rates and volume per segment value, with the same steps one week earlier."""
        seg = (
            None
            if segment_value is None or segment_key == ALL_KEY
            else (segment_key, segment_value)
        )
        if segment_key == ALL_KEY:
            seg = ALL_SEGMENT
        week = timedelta(weeks=1)
        # One read covers both periods (they overlap when the range is longer than a week).
        df = self.store.count_series(
            grid.start - week, grid.end, family=F_STATUS_DECISION, segment=seg
        )
        df = df[df["segment_key"] == segment_key]
        now = self._decision_frame(grid, df)
        before = self._decision_frame(grid.shifted(week), df)
        groups = []
        for value in sorted(set(now) | set(before), key=lambda v: (v == OTHER, v)):
            label = segment_text(segment_key, value)
            cur, old = now.get(value), before.get(value)
            rates = []
            for frame, dashed in ((cur, False), (old, True)):
                for name in DECISION_RATES:
                    values = frame[name] if frame is not None else [None] * grid.size
                    rates.append(Line(name=name, segment=label, values=values, dashed=dashed))
            groups.append(
                DecisionGroup(
                    segment=label,
                    rates=rates,
                    volume=cur["volume"] if cur is not None else [0] * grid.size,
                    volume_last_week=old["volume"] if old is not None else [0] * grid.size,
                )
            )
        return DecisionPanel(
            step=int(grid.step.total_seconds()), t=grid.t, segment_key=segment_key, groups=groups
        )

    @staticmethod
    def _decision_frame(grid: Grid, df: pd.DataFrame) -> dict[str, dict[str, Any]]:
        """Rates and volume per segment value on ``grid`` (rows outside it are ignored)."""
        out: dict[str, dict[str, Any]] = {}
        if not len(df):
            return out
        # Vectorised over every value of the key at once (20 segments × 672 hours is ~30k
        # rows): one bincount per measure on (value, step), the keys split once per distinct key.
        size = grid.size
        pos = grid.positions(_epochs(df["bucket"]))
        ok = (pos >= 0) & (pos < size)
        vcodes, values = pd.factorize(df["segment_value"], sort=False)
        kcodes, keys = pd.factorize(df["key"], sort=False)
        split = [str(k).split("|", 1) for k in keys]
        status = np.array([p[0] for p in split], dtype=object)
        decision = np.array([p[1] if len(p) > 1 else "" for p in split], dtype=object)
        is_decided = np.isin(status, DECIDED) & (decision != "")
        masks = {
            "decided": is_decided,
            "approve": is_decided & (decision == "approve"),
            "deny": is_decided & (decision == "deny"),
            "review": is_decided & (decision == "review"),
            "delayed": status == "delayed",
            "refused": ~np.isin(status, DECIDED),
        }
        if not ok.any():
            return out
        idx = (vcodes * size + pos)[ok]
        kc = kcodes[ok]
        n = df["n"].to_numpy(dtype=float)[ok]
        shape = (len(values), size)

        def total(key_mask: np.ndarray | None) -> np.ndarray:
            m = slice(None) if key_mask is None else key_mask[kc]
            return np.bincount(idx[m], weights=n[m], minlength=shape[0] * size).reshape(shape)

        volume = total(None)
        sums = {name: total(mask) for name, mask in masks.items()}
        for i, value in enumerate(values):
            if not volume[i].any():
                continue  # a value seen only outside this grid
            entry: dict[str, Any] = {"volume": volume[i].astype(int).tolist()}
            for name in ("approve", "deny", "review"):
                entry[name] = _ratio(sums[name][i], sums["decided"][i])
            entry["delayed"] = _ratio(sums["delayed"][i], volume[i])
            entry["refused"] = _ratio(sums["refused"][i], volume[i])
            out[str(value)] = entry
        return out

    # ---- drift ----

    def drift(
        self,
        grid: Grid,
        *,
        kind: Kind = "feature",
        stat: Literal["psi", "js"] = "psi",
        window: timedelta | None = None,
        segment: tuple[str, str] = ALL_SEGMENT,
        min_rows: int = 50,
    ) -> DriftPanel:
        """PSI or Jensen–Shannon distance per column and window against the reference."""
        bucket = self.store.bucket
        if window is None:
            window = timedelta(days=1) if grid.end - grid.start >= timedelta(days=3) else bucket
            window = max(window, bucket)
        if window % bucket:
            raise DashboardError(f"window must be a multiple of the {bucket} bucket; got {window}")
        axis = plan_grid(bucket, grid.start, grid.end, step=window, max_points=10**6)
        base = {
            "kind": kind,
            "stat": stat,
            "segment": segment_text(*segment),
            "window": int(window.total_seconds()),
            "windows": axis.t,
        }
        if self.reference is None:
            return DriftPanel(columns=[], values=[], n=[], note="no training reference", **base)
        table: dict[str, list[float | None]] = defaultdict(lambda: [None] * axis.size)
        counts: dict[str, list[int]] = defaultdict(lambda: [0] * axis.size)
        for i, (lo, hi) in enumerate(axis.windows()):
            df = self.store.drift(
                lo, hi, self.reference, kind=kind, segment=segment, min_rows=min_rows
            )
            for col, n, value in df[["column", "n", stat]].itertuples(index=False):
                table[str(col)][i] = _clean([value])[0]
                counts[str(col)][i] = int(n)
        cols = sorted(table)
        return DriftPanel(
            columns=cols, values=[table[c] for c in cols], n=[counts[c] for c in cols], **base
        )

    # ---- guards, probing, latency ----

    def guards(self, grid: Grid, *, segment: tuple[str, str] = ALL_SEGMENT) -> GuardPanel:
        """Guard actions (clip, neutralize, impute, bin…) and refusals by contract rule."""
        volume = self._volume(grid, segment)
        g = self.store.count_series(grid.start, grid.end, family=F_GUARD, segment=segment)
        lines: list[Line] = []
        label = segment_text(*segment)
        table: list[GuardRow] = []
        total = float(volume.sum())
        if len(g):
            parts = g["key"].str.split("|", n=2, expand=True).reindex(columns=[0, 1, 2])
            g = g.assign(step=parts[0], action=parts[1], column=parts[2].fillna(""))
            for (step, action), part in g.groupby(["step", "action"], sort=True):
                if step == "validate" and action == "out_of_contract":
                    continue  # drawn per contract rule below
                lines.append(
                    Line(
                        name=f"{step} {action}",
                        segment=label,
                        values=_ratio(_summed(grid, _epochs(part["bucket"]), part["n"]), volume),
                    )
                )
            for (step, action, column), part in g.groupby(["step", "action", "column"], sort=True):
                n = int(part["n"].sum())
                table.append(
                    GuardRow(
                        step=str(step),
                        action=str(action),
                        column=str(column),
                        n=n,
                        rate=n / total if total else 0.0,
                    )
                )
        v = self.store.count_series(grid.start, grid.end, family=F_VIOLATION, segment=segment)
        if len(v):
            rules = v["key"].str.split("|", n=1).str[1].fillna("")
            for rule, part in v.groupby(rules, sort=True):
                lines.append(
                    Line(
                        name=f"refused: {rule}",
                        segment=label,
                        values=_ratio(_summed(grid, _epochs(part["bucket"]), part["n"]), volume),
                    )
                )
        table.sort(key=lambda r: -r.n)
        return GuardPanel(
            step=int(grid.step.total_seconds()),
            t=grid.t,
            volume=volume.astype(int).tolist(),
            lines=lines,
            table=table[:50],
        )

    def _volume(self, grid: Grid, segment: tuple[str, str]) -> np.ndarray:
        sd = self.store.count_series(
            grid.start, grid.end, family=F_STATUS_DECISION, segment=segment
        )
        return _summed(grid, _epochs(sd["bucket"]), sd["n"])

    def probing(self, grid: Grid) -> ProbingPanel:
        """Probing signals over time, per top client, and the per-client table."""
        p = self.store.count_series(grid.start, grid.end, family=F_PROBING, segment=ALL_SEGMENT)
        signals = [
            Line(
                name=str(sig),
                segment=ALL_KEY,
                values=_clean(_summed(grid, _epochs(part["bucket"]), part["n"])),
            )
            for sig, part in p.groupby("key", sort=True)
        ]
        c = self.store.count_series(grid.start, grid.end, family=F_CLIENT, segment=ALL_SEGMENT)
        clients: list[Line] = []
        if len(c):
            parts = c["key"].str.rsplit("|", n=1, expand=True)
            c = c.assign(client=parts[0], metric=parts[1])
            probing = c[c["metric"] == "probing"]
            top = probing.groupby("client")["n"].sum().sort_values(ascending=False, kind="stable")
            for client in top.index[:TOP_CLIENTS]:
                part = probing[probing["client"] == client]
                clients.append(
                    Line(
                        name=str(client),
                        segment=ALL_KEY,
                        values=_clean(_summed(grid, _epochs(part["bucket"]), part["n"])),
                    )
                )
        table = []
        by_client = self.store.probing_by_client(grid.start, grid.end)
        fixed = {"client", "requests", "probing", "flagged"}
        for row in by_client.to_dict("records"):
            table.append(
                ClientRow(
                    client=str(row["client"]),
                    requests=int(row["requests"]),
                    probing=int(row["probing"]),
                    flagged=int(row["flagged"]),
                    signals={k: int(v) for k, v in row.items() if k not in fixed and v},
                )
            )
        return ProbingPanel(
            step=int(grid.step.total_seconds()),
            t=grid.t,
            signals=signals,
            clients=clients,
            table=table,
        )

    # ---- annotations ----

    def annotations(self, grid: Grid) -> Annotations:
        """Alerts (opened, with their actions; acknowledged; resolved) and flag changes."""
        lo, hi = grid.start, grid.end
        items: list[Annotation] = []
        for alert in self.alerts.list(limit=10_000):
            if alert.opened_at >= hi or (alert.resolved_at or alert.opened_at) < lo:
                continue
            actions = []
            for ev in self.alerts.events(alert.id):
                d = ev["detail"]
                if ev["kind"] == "action" and d.get("action") == "flag":
                    verb = "set" if d.get("applied") else "would set"
                    actions.append(f"{verb} {d.get('flag')}={d.get('value')}")
            detail = alert.message + (f" — actions: {'; '.join(actions)}" if actions else "")
            items.append(
                Annotation(
                    time=epoch_seconds(alert.opened_at),
                    end=None if alert.resolved_at is None else epoch_seconds(alert.resolved_at),
                    kind="alert",
                    label=f"{alert.rule} on {alert.segment_text}",
                    detail=detail,
                    actor=f"monitor:{alert.rule}",
                    severity=alert.severity,
                    segment=alert.segment_text,
                    state=alert.state,
                )
            )
        if self.flag_store is not None:
            for change in self.flag_store.history(limit=1000):
                if lo <= change.changed_at < hi:
                    items.append(
                        Annotation(
                            time=epoch_seconds(change.changed_at),
                            kind="flag",
                            label=f"{change.name}: {change.old!r} → {change.new!r}",
                            detail=change.reason or "",
                            actor=change.actor,
                        )
                    )
        items.sort(key=lambda a: a.time)
        return Annotations(items=items)

    # ---- performance ----

    def performance(
        self, grid: Grid, *, segment: tuple[str, str] = ALL_SEGMENT, window: timedelta | None = None
    ) -> PerformancePanel:
        """AUC and default rate per window on matured labels; default rate by score band."""
        bucket = self.store.bucket
        if window is None:
            window = (
                timedelta(weeks=1)
                if grid.end - grid.start > timedelta(days=7)
                else timedelta(days=1)
            )
        window = max(window, bucket)
        axis = plan_grid(bucket, grid.start, grid.end, step=window, max_points=10**6)
        as_of = self.clock.now()
        auc: list[float | None] = []
        rate: list[float | None] = []
        n: list[int] = []
        for lo, hi in axis.windows():
            df = self.store.performance(
                lo, hi, as_of=as_of, maturity=self.maturity, segment=segment
            )
            df = df[(df["segment_key"] == segment[0]) & (df["segment_value"] == segment[1])]
            if len(df):
                row = df.iloc[0]
                auc.append(_clean([row["auc"]])[0])
                rate.append(_clean([row["default_rate"]])[0])
                n.append(int(row["n_labelled"]))
            else:
                auc.append(None)
                rate.append(None)
                n.append(0)
        bands_df = self.store.performance_bands(
            grid.start, grid.end, as_of=as_of, maturity=self.maturity, segment=segment
        )
        if "segment_key" in bands_df:
            bands_df = bands_df[
                (bands_df["segment_key"] == segment[0]) & (bands_df["segment_value"] == segment[1])
            ]
        bands = [
            BandRow(
                band=int(r["band"]),
                low=float(r["low"]),
                high=float(r["high"]),
                n=int(r["n"]),
                positives=int(r["positives"]),
                default_rate=_clean([r["default_rate"]])[0],
                mean_score=_clean([r["mean_score"]])[0],
            )
            for r in bands_df.to_dict("records")
        ]
        note = None
        if not any(n):
            note = (
                f"no matured outcomes in this range (labels count {int(self.maturity.days)} days "
                "after the decision; import them with `tabguard outcomes import`)"
            )
        return PerformancePanel(
            as_of=epoch_seconds(as_of),
            maturity=int(self.maturity.total_seconds()),
            segment=segment_text(*segment),
            windows=axis.t,
            window=int(window.total_seconds()),
            auc=auc,
            default_rate=rate,
            n_labelled=n,
            bands=bands,
            note=note,
        )


def reference_band(ref: ColumnReference) -> ReferenceBand | None:
    """p10, p50, p90 of a numeric reference column, from its binned CDF.

    The reference keeps bin edges and shares (deciles for continuous columns, so p10…p90 are
    edges exactly); between edges the CDF is interpolated linearly. ``None`` without edges.
    """
    edges = np.asarray(ref.edges, dtype=float)
    if edges.size == 0:
        return None
    cum = np.cumsum(np.asarray(ref.shares, dtype=float))[: edges.size]
    out = []
    for q in (0.1, 0.5, 0.9):
        out.append(float(np.interp(q, cum, edges)))
    return ReferenceBand(p10=out[0], p50=out[1], p90=out[2], n=int(ref.n))


def open_dashboard(config: Any, *, clock: Clock | None = None) -> DashboardData:
    """The dashboard's data source for a ``monitor.yaml`` (its store, reference, flags, rules).

    A reference that cannot be loaded is logged and left out (the bands and the heatmap say
    so); the flag store of ``tabguard.toml`` in the same home gives the flag annotations.
    """
    import logging

    from tabguard.monitoring._drift import load_reference
    from tabguard.monitoring._live import alerting_config, open_flag_store
    from tabguard.monitoring._store import open_monitor_store

    log = logging.getLogger("tabguard.monitoring")
    store = open_monitor_store(config.store_url(), bucket=config.bucket)
    try:
        reference = load_reference(config)
    except Exception as exc:  # the charts still draw without the training band
        log.warning("dashboard: no training reference: %s", exc)
        reference = None
    return DashboardData(
        store,
        reference=reference,
        flag_store=open_flag_store(config),
        rules=[r.name for r in alerting_config(config).rules],
        maturity=config.outcomes.maturity,
        clock=clock,
    )
