"""Production monitoring (O1-O3): the prediction log summarised into mergeable buckets.

The prediction log is the source of truth (refused requests included). ``tabguard monitor
update`` reads it incrementally, from a watermark on the log's commit order, into a bucket
store (:class:`MonitorStore`): per bucket (default 1 h) and per segment value, counts by
status and decision, guard actions, probing signals, category frequencies, and a DataSketches
KLL sketch per numeric column, for raw attributes and model features separately, plus score
and latency. Windows of any length are answered by merging buckets, never by rescanning the
log.

Examples
--------
>>> from tabguard.monitoring import open_monitor_store
>>> store = open_monitor_store("memory://")
>>> store.bucket
datetime.timedelta(seconds=3600)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tabguard.monitoring._alerting import Alerting, ReplayResult, StepResult, replay
    from tabguard.monitoring._alerts import Alert, AlertError, AlertEvent, AlertStore, AlertTracker
    from tabguard.monitoring._clock import Clock, FixedClock, SystemClock
    from tabguard.monitoring._config import (
        AggregationConfig,
        ColumnsConfig,
        DriftConfig,
        MonitorConfig,
        MonitorConfigError,
        OutcomesConfig,
        SegmentsConfig,
        default_store_url,
        load_monitor_config,
    )
    from tabguard.monitoring._delta import ALL, MISSING, OTHER, Delta, NumericCell, Segment
    from tabguard.monitoring._rules import Observation, RuleEvaluation, evaluate_rules
    from tabguard.monitoring._rules_config import (
        METRICS,
        AlertingConfig,
        Baseline,
        CalendarSpec,
        RuleSpec,
        parse_alerting,
    )
    from tabguard.monitoring._sketch import (
        DEFAULT_K,
        FrequentValues,
        QuantileSketch,
        SketchError,
        merge_bytes,
        rank_error,
    )
    from tabguard.monitoring._store import (
        MonitorStore,
        SqlMonitorStore,
        StoreStateError,
        UpdaterBusyError,
        WatermarkMovedError,
        open_monitor_store,
    )
    from tabguard.monitoring._window import WEEK, Window

# Submodules are imported on first use: `tabguard monitor update` (and its sketch worker)
# needs the store and the aggregation only, not the rules engine with SciPy and httpx (about
# 2.5 CPU-seconds of imports per process).
_LAZY = {
    "ALL": "tabguard.monitoring._delta",
    "AggregationConfig": "tabguard.monitoring._config",
    "Alert": "tabguard.monitoring._alerts",
    "AlertError": "tabguard.monitoring._alerts",
    "AlertEvent": "tabguard.monitoring._alerts",
    "AlertStore": "tabguard.monitoring._alerts",
    "AlertTracker": "tabguard.monitoring._alerts",
    "Alerting": "tabguard.monitoring._alerting",
    "AlertingConfig": "tabguard.monitoring._rules_config",
    "Baseline": "tabguard.monitoring._rules_config",
    "CalendarSpec": "tabguard.monitoring._rules_config",
    "Clock": "tabguard.monitoring._clock",
    "ColumnsConfig": "tabguard.monitoring._config",
    "DEFAULT_K": "tabguard.monitoring._sketch",
    "Delta": "tabguard.monitoring._delta",
    "DriftConfig": "tabguard.monitoring._config",
    "FixedClock": "tabguard.monitoring._clock",
    "FrequentValues": "tabguard.monitoring._sketch",
    "METRICS": "tabguard.monitoring._rules_config",
    "MISSING": "tabguard.monitoring._delta",
    "MonitorConfig": "tabguard.monitoring._config",
    "MonitorConfigError": "tabguard.monitoring._config",
    "MonitorStore": "tabguard.monitoring._store",
    "NumericCell": "tabguard.monitoring._delta",
    "OTHER": "tabguard.monitoring._delta",
    "Observation": "tabguard.monitoring._rules",
    "OutcomesConfig": "tabguard.monitoring._config",
    "QuantileSketch": "tabguard.monitoring._sketch",
    "ReplayResult": "tabguard.monitoring._alerting",
    "RuleEvaluation": "tabguard.monitoring._rules",
    "RuleSpec": "tabguard.monitoring._rules_config",
    "Segment": "tabguard.monitoring._delta",
    "SegmentsConfig": "tabguard.monitoring._config",
    "SketchError": "tabguard.monitoring._sketch",
    "SqlMonitorStore": "tabguard.monitoring._store",
    "StepResult": "tabguard.monitoring._alerting",
    "StoreStateError": "tabguard.monitoring._store",
    "SystemClock": "tabguard.monitoring._clock",
    "UpdaterBusyError": "tabguard.monitoring._store",
    "WEEK": "tabguard.monitoring._window",
    "WatermarkMovedError": "tabguard.monitoring._store",
    "Window": "tabguard.monitoring._window",
    "default_store_url": "tabguard.monitoring._config",
    "evaluate_rules": "tabguard.monitoring._rules",
    "load_monitor_config": "tabguard.monitoring._config",
    "merge_bytes": "tabguard.monitoring._sketch",
    "open_monitor_store": "tabguard.monitoring._store",
    "parse_alerting": "tabguard.monitoring._rules_config",
    "rank_error": "tabguard.monitoring._sketch",
    "replay": "tabguard.monitoring._alerting",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "ALL",
    "DEFAULT_K",
    "METRICS",
    "MISSING",
    "OTHER",
    "WEEK",
    "AggregationConfig",
    "Alert",
    "AlertError",
    "AlertEvent",
    "AlertStore",
    "AlertTracker",
    "Alerting",
    "AlertingConfig",
    "Baseline",
    "CalendarSpec",
    "Clock",
    "ColumnsConfig",
    "Delta",
    "DriftConfig",
    "FixedClock",
    "FrequentValues",
    "MonitorConfig",
    "MonitorConfigError",
    "MonitorStore",
    "NumericCell",
    "Observation",
    "OutcomesConfig",
    "QuantileSketch",
    "ReplayResult",
    "RuleEvaluation",
    "RuleSpec",
    "Segment",
    "SegmentsConfig",
    "SketchError",
    "SqlMonitorStore",
    "StepResult",
    "StoreStateError",
    "SystemClock",
    "UpdaterBusyError",
    "WatermarkMovedError",
    "Window",
    "default_store_url",
    "evaluate_rules",
    "load_monitor_config",
    "merge_bytes",
    "open_monitor_store",
    "parse_alerting",
    "rank_error",
    "replay",
]
