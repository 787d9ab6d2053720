"""A window against the same window earlier (``tabguard monitor show``): computation only.

:func:`compare_windows` returns one row per metric with the value now, the value in the
baseline window, the relative change and the counts behind both; rendering is the CLI's job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tabguard.monitoring._delta import ALL, Segment
from tabguard.monitoring._drift import DriftReference
from tabguard.monitoring._store import F_GUARD, F_PROBING, F_STATUS_DECISION, SqlMonitorStore
from tabguard.monitoring._window import Window

#: Statuses that mean the request got a decision (decided now, or later for delayed ones).
DECIDED = ("accepted", "delayed")
COLUMNS = ["section", "metric", "now", "before", "change", "n_now", "n_before"]
#: Sections whose metrics are rates over the requests of the window.
RATE_SECTIONS = ("decisions", "refused", "guards", "probing")


@dataclass(frozen=True)
class Comparison:
    """The comparison of two windows for one segment.

    Attributes
    ----------
    window, baseline : Window
    segment : (str, str)
    table : DataFrame
        ``section, metric, now, before, change, n_now, n_before``; ``change`` is relative
        (``now / before - 1``) for rates, counts and percentiles, NaN when ``before`` is 0.
    """

    window: Window
    baseline: Window
    segment: Segment
    table: pd.DataFrame


def _rates(
    store: SqlMonitorStore, w: Window, segment: Segment
) -> dict[tuple[str, str], tuple[float, int]]:
    out: dict[tuple[str, str], tuple[float, int]] = {}
    # One aggregate query for every counter family of the window.
    counts = store.counts(w.start, w.end, [F_STATUS_DECISION, F_GUARD, F_PROBING], segment)
    sd = counts[counts["family"] == F_STATUS_DECISION]
    status = sd["key"].str.split("|", n=1).str[0]
    decision = sd["key"].str.split("|", n=1).str[1]
    total = int(sd["n"].sum())
    out[("volume", "requests")] = (float(total), total)
    decided = decision != ""
    n_decided = int(sd.loc[decided, "n"].sum())
    by_decision: dict[Any, Any] = sd[decided].groupby(decision[decided])["n"].sum().to_dict()
    for name, n in by_decision.items():
        out[("decisions", f"{name} rate")] = (n / n_decided if n_decided else np.nan, n_decided)
    refused = int(sd.loc[~status.isin(DECIDED), "n"].sum())
    out[("decisions", "refused rate")] = (refused / total if total else np.nan, total)
    by_status: dict[Any, Any] = sd.groupby(status)["n"].sum().to_dict()
    for name, n in by_status.items():
        if name not in DECIDED:
            out[("refused", f"{name} rate")] = (n / total if total else np.nan, total)
    for key, n in counts.loc[counts["family"] == F_GUARD, ["key", "n"]].itertuples(index=False):
        step, action, column = [*str(key).split("|", 2), "", ""][:3]
        name = f"{step} {action}" + (f" {column}" if column else "")
        out[("guards", f"{name} rate")] = (n / total if total else np.nan, total)
    for key, n in counts.loc[counts["family"] == F_PROBING, ["key", "n"]].itertuples(index=False):
        out[("probing", f"{key} per 1k")] = (1000 * n / total if total else np.nan, total)
    return out


def _percentiles(
    store: SqlMonitorStore,
    w: Window,
    segment: Segment,
    kinds: Sequence[str],
    columns: Sequence[str] | None,
    q: Sequence[float],
) -> dict[tuple[str, str], tuple[float, int]]:
    out: dict[tuple[str, str], tuple[float, int]] = {}
    summary = store.numeric_summary(w.start, w.end, q=q, segment=segment)
    names = [f"p{level * 100:g}" for level in q]
    for row in summary.to_dict("records"):
        if row["kind"] not in kinds or (columns is not None and row["column"] not in columns):
            continue
        label = (
            row["column"]
            if row["kind"] in ("score", "latency_ms")
            else (f"{row['kind']} {row['column']}")
        )
        section = row["kind"]
        for name in names:
            out[(section, f"{label} {name}")] = (row[name], int(row["n"]))
        if row["kind"] in ("raw", "feature") and row["rows"]:
            out[(section, f"{label} missing rate")] = (row["missing_rate"], int(row["rows"]))
            if row["invalid_rate"]:
                out[(section, f"{label} invalid rate")] = (row["invalid_rate"], int(row["rows"]))
    return out


def compare_windows(
    store: SqlMonitorStore,
    window: Window,
    baseline: Window,
    *,
    segment: Segment = ALL,
    kinds: Sequence[str] = ("score", "latency_ms", "raw", "feature"),
    columns: Sequence[str] | None = None,
    q: Sequence[float] = (0.01, 0.5, 0.99),
    reference: DriftReference | None = None,
    min_rows: int = 50,
) -> Comparison:
    """Every metric of ``window`` next to the same metric in ``baseline``.

    Parameters
    ----------
    store : SqlMonitorStore
    window, baseline : Window
        Both on bucket boundaries (e.g. the last 6 h and the same 6 h a week earlier).
    segment : (key, value)
        One segment (default ``all``).
    kinds : sequence of str
        Numeric kinds to include (``score``, ``latency_ms``, ``raw``, ``feature``).
    columns : sequence of str, optional
        Restrict raw attributes and features to these names.
    q : sequence of float
        Percentile levels.
    reference : DriftReference, optional
        Adds the PSI of each raw attribute and feature against the training reference, in
        both windows (section ``drift``).
    min_rows : int
        Fewest values for a drift figure.
    """
    now = {**_rates(store, window, segment)}
    now.update(_percentiles(store, window, segment, kinds, columns, q))
    before = {**_rates(store, baseline, segment)}
    before.update(_percentiles(store, baseline, segment, kinds, columns, q))
    if reference is not None:
        for w, into in ((window, now), (baseline, before)):
            drift = store.drift(w.start, w.end, reference, segment=segment, min_rows=min_rows)
            for rec in drift.to_dict("records"):
                if columns is None or rec["column"] in columns:
                    key = ("drift", f"{rec['kind']} {rec['column']} PSI")
                    into[key] = (float(rec["psi"]), int(rec["n"]))
    order = {"volume": 0, "decisions": 1, "refused": 2, "guards": 3, "probing": 4}
    order.update({"score": 5, "latency_ms": 6, "drift": 7, "raw": 8, "feature": 9})
    records = []
    volume_now = now[("volume", "requests")][1]
    volume_before = before[("volume", "requests")][1]
    for key in sorted(set(now) | set(before), key=lambda k: (order.get(k[0], 9), k[1])):
        # A rate absent from one window is a zero rate there (nothing of that kind happened).
        zero_now = (0.0, volume_now) if key[0] in RATE_SECTIONS and volume_now else (np.nan, 0)
        zero_before = (
            (0.0, volume_before) if key[0] in RATE_SECTIONS and volume_before else (np.nan, 0)
        )
        v_now, n_now = now.get(key, zero_now)
        v_before, n_before = before.get(key, zero_before)
        change = (
            v_now / v_before - 1.0
            if np.isfinite(v_now) and np.isfinite(v_before) and v_before != 0
            else np.nan
        )
        records.append((key[0], key[1], v_now, v_before, change, n_now, n_before))
    return Comparison(window, baseline, segment, pd.DataFrame(records, columns=COLUMNS))
