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
