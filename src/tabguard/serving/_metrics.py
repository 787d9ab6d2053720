"""Prometheus metrics of the scoring service (O2, O4): the one module that wraps prometheus-client.

Counters are updated on the request path (a labelled ``inc`` costs about a microsecond);
gauges of state (flags in force, prediction-log queue and spool) are refreshed once a second
by the service. Each app gets its own registry, so several apps in one process (tests) do not
collide. With ``tabguard serve --workers N`` the CLI sets ``PROMETHEUS_MULTIPROC_DIR`` before
the workers start: every worker writes its values to that directory and ``GET /metrics``
answers with the sum over workers (gauges: the live workers' sum, max or most recent value,
per metric).
"""

from __future__ import annotations

import bisect
import os
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

if TYPE_CHECKING:
    from tabguard.flags import FlagSnapshot
    from tabguard.serving._log import LogStats

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Latency buckets (seconds): the service answers in about a millisecond; the tail matters.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
#: Score buckets: twenty equal bands of the positive-class probability (a decision threshold
#: between two edges is still answered by ``histogram_quantile`` within one band).
SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))
#: The segment of the whole traffic (every request counts there once).
ALL_SEGMENT = ("all", "all")
OTHER, MISSING = "other", "(missing)"


class SegmentLabels:
    """Bounded ``segment_key`` / ``segment_value`` labels for the per-segment metrics.

    Only declared keys get labels: the contract's category ``segments`` features (values: the
    contract's categories) and the request ``segment`` keys of ``[server] metrics_segments``
    (values: the ones listed). Any other value is ``other``, an absent one ``(missing)``; so a
    key has at most ``len(values) + 2`` label values, whatever clients send (a flood of random
    channel names costs one series). Every request also counts under ``all``/``all``.

    Parameters
    ----------
    features : mapping of str to sequence
        Contract segment features and their categories.
    request : mapping of str to sequence of str
        Request segment keys and the values that get their own label.
    """

    def __init__(
        self,
        features: dict[str, tuple[str, ...]] | None = None,
        request: dict[str, tuple[str, ...]] | None = None,
    ) -> None:
        # The monitor's spelling of values (2 and 2.0 are "2"), so labels match its segments.
        from tabguard.monitoring._parse import canonical_label

        self._text = canonical_label
        self.features = {k: frozenset(v) for k, v in (features or {}).items()}
        self.request = {k: frozenset(v) for k, v in (request or {}).items()}
        self._cache: dict[tuple[Any, ...], tuple[tuple[str, str], ...]] = {}

    def _label(self, value: Any, allowed: frozenset[str]) -> str:
        text = self._text(value)
        if text is None:
            return MISSING
        return text if text in allowed else OTHER

    def of(
        self, features: dict[str, Any] | None, segment: dict[str, Any] | None
    ) -> list[tuple[str, str]]:
        """``(segment_key, segment_value)`` of one request, ``all`` first."""
        out = [ALL_SEGMENT]
        for key, allowed in self.features.items():
            out.append((key, self._label((features or {}).get(key), allowed)))
        for key, allowed in self.request.items():
            out.append((key, self._label((segment or {}).get(key), allowed)))
        return out

    def labels(
        self, features: dict[str, Any] | None, segment: dict[str, Any] | None
    ) -> tuple[tuple[str, str], ...]:
        """:meth:`of` as a tuple, remembered per distinct value (the request path's form).

        Values are remembered with their type (``2``, ``2.0`` and ``True`` are equal keys of
        a dict but not the same label); unhashable values are labelled afresh.
        """
        f = features or {}
        s = segment or {}
        try:
            key = (
                tuple((type(v), v) for v in map(f.get, self.features)),
                tuple((type(v), v) for v in map(s.get, self.request)),
            )
            found = self._cache.get(key)
        except TypeError:  # an unhashable value (a list or an object)
            return tuple(self.of(features, segment))
        if found is None:
            if len(self._cache) > 4096:
                self._cache.clear()
            found = self._cache[key] = tuple(self.of(features, segment))
        return found

    def cardinality(self) -> int:
        """Label pairs this declaration can produce (for the docs and a test)."""
        return 1 + sum(len(v) + 2 for v in (*self.features.values(), *self.request.values()))


def multiprocess_mode() -> bool:
    """Whether metrics are shared by worker processes (``PROMETHEUS_MULTIPROC_DIR`` is set)."""
    return bool(os.environ.get(MULTIPROC_ENV))


class ServiceMetrics:
    """The service's metrics, in their own registry.

    Parameters
    ----------
    registry : CollectorRegistry, optional
        Where to register (a new one by default). Ignored in multi-process mode, where values
        go to ``PROMETHEUS_MULTIPROC_DIR`` and :meth:`render` aggregates every worker.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self._fast: dict[tuple[Any, ...], Any] = {}
        self._plans: dict[tuple[Any, ...], tuple[list[Any], list[Any], Any]] = {}
        self.multiprocess = multiprocess_mode()
        reg: CollectorRegistry | None
        if self.multiprocess:
            from prometheus_client import multiprocess

            reg = None  # values go to the shared directory; exposition collects them
            self.registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(self.registry)
        else:
            reg = registry if registry is not None else CollectorRegistry()
            self.registry = reg

        def gauge(
            name: str, doc: str, labels: tuple[str, ...] = (), mode: Any = "livemax"
        ) -> Gauge:
            return Gauge(name, doc, labels, registry=reg, multiprocess_mode=mode)

        self.requests = Counter(
            "tabguard_requests",
            "Decision requests by log status, decision and segment.",
            ("status", "decision", "segment"),
            registry=reg,
        )
        self.decisions = Counter(
            "tabguard_decisions",
            "Decision requests by segment (declared keys only, values capped with 'other'; every "
            "request also counts under segment_key='all'), log status and decision.",
            ("segment_key", "segment_value", "status", "decision"),
            registry=reg,
        )
        self.scores = Histogram(
            "tabguard_score",
            "Model score (positive-class probability) of scored requests, by segment.",
            ("segment_key", "segment_value"),
            buckets=SCORE_BUCKETS,
            registry=reg,
        )
        self.latency = Histogram(
            "tabguard_request_latency_seconds",
            "Time spent in the service per decision request, by log status.",
            ("status",),
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.guard_actions = Counter(
            "tabguard_guard_actions",
            "What the guards did (clip, bin, neutralize, reject, override...), by step.",
            ("step", "action"),
            registry=reg,
        )
        self.probing_signals = Counter(
            "tabguard_probing_signals",
            "Queries showing a probing signal.",
            ("signal",),
            registry=reg,
        )
        self.probing_flagged = Counter(
            "tabguard_probing_flagged_requests",
            "Requests of clients flagged for probing, by the action applied.",
            ("action",),
            registry=reg,
        )
        self.rate_limit_denials = Counter(
            "tabguard_rate_limit_denials",
            "Requests denied by a rate limit (client_limit, subject_limit, probing_throttle, "
            "backend_unavailable).",
            ("reason",),
            registry=reg,
        )
        self.backend_errors = Counter(
            "tabguard_backend_errors",
            "Requests that met an unreachable backend (limits, keys, probing, log).",
            ("backend",),
            registry=reg,
        )
        self.flag_flow_enabled = gauge("tabguard_flag_flow_enabled", "1 when the flow is enabled.")
        self.flag_model = gauge(
            "tabguard_flag_model", "1 for the scorer the model flag selects.", ("model",)
        )
        self.flag_threshold = gauge(
            "tabguard_flag_threshold", "Decision threshold in force (flag or model default)."
        )
        self.flag_threshold_set = gauge(
            "tabguard_flag_threshold_set", "1 when the threshold flag overrides the model's."
        )
        self.flag_neutralized = gauge(
            "tabguard_flag_neutralized_features", "Features the neutralize flag replaces."
        )
        self.flag_delay = gauge("tabguard_flag_delay_seconds", "Delay of decisions in force.")
        self.flags_version = gauge("tabguard_flags_version", "Flag store version in force.")
        self.flags_stale = gauge(
            "tabguard_flags_stale", "1 while the flag store is unreachable (last flags kept)."
        )
        self.log_queue = gauge(
            "tabguard_log_queue_records",
            "Prediction-log records waiting in memory.",
            mode="livesum",
        )
        self.log_spool = gauge(
            "tabguard_log_spool_records", "Prediction-log records spooled on disk (database down)."
        )
        self.log_backend_up = gauge(
            "tabguard_log_backend_up", "1 when the log database answered last.", mode="livemin"
        )
        self.log_dead_letter = gauge(
            "tabguard_log_dead_letter_records", "Rows the log database refused (kept on disk)."
        )
        self.model_info = gauge(
            "tabguard_model_info",
            "The model served: version, scorer and scoring path.",
            ("version", "scorer", "path"),
        )

    def inc(self, metric: Counter, *labels: str) -> None:
        """``metric.labels(*labels).inc()`` for the request path (the child looked up once)."""
        key = (id(metric), *labels)
        value = self._fast.get(key)
        if value is None:
            value = self._fast_child(key, metric, labels, histogram=False)
        value.inc(1)

    def observe(self, metric: Histogram, amount: float, *labels: str) -> None:
        """``metric.labels(*labels).observe(amount)`` for the request path.

        The bucket is found by bisection and the child's sum and bucket counters are updated
        directly (prometheus-client's own ``observe`` scans the buckets in Python); a client
        release without those attributes gets the public ``observe``.
        """
        key = (id(metric), *labels)
        parts = self._fast.get(key)
        if parts is None:
            parts = self._fast_child(key, metric, labels, histogram=True)
        total, bounds, buckets = parts
        if buckets is None:
            total.observe(amount)
            return
        i = bisect.bisect_left(bounds, amount)
        total.inc(amount)
        if i < len(buckets):
            buckets[i].inc(1)

    def count_request(
        self,
        status: str,
        decision: str,
        segment: str,
        labels: tuple[tuple[str, str], ...] | None,
        score: float | None,
        latency: float,
    ) -> None:
        """The per-request counters and histograms of one finished decision request.

        The same updates as ``inc(requests, status, decision, segment)``, then per segment
        label ``inc(decisions, ...)`` and ``observe(scores, score, ...)``, then
        ``observe(latency, latency, status)``; the children of each label combination are
        looked up once and kept, and the score's bucket is found once for every segment
        (one histogram, one set of bounds).
        """
        key = (status, decision, segment, labels, score is not None)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plan(key)
        counters, scores, latency_parts = plan
        for value in counters:
            value.inc(1)
        if scores and score is not None:
            total, bounds, buckets = scores[0]
            if buckets is None:
                for child, _, _ in scores:
                    child.observe(score)
            else:
                i = bisect.bisect_left(bounds, score)
                for total, _, buckets in scores:
                    total.inc(score)
                    if i < len(buckets):
                        buckets[i].inc(1)
        total, bounds, buckets = latency_parts
        if buckets is None:
            total.observe(latency)
        else:
            total.inc(latency)
            i = bisect.bisect_left(bounds, latency)
            if i < len(buckets):
                buckets[i].inc(1)

    def _plan(self, key: tuple[Any, ...]) -> tuple[list[Any], list[Any], Any]:
        status, decision, segment, labels, scored = key
        if len(self._plans) > 10_000:  # label sets are bounded; a guard all the same
            self._plans.clear()
        counters = [self._child(self.requests, (status, decision, segment), histogram=False)]
        scores = []
        for seg_key, seg_value in labels or ():
            counters.append(
                self._child(self.decisions, (seg_key, seg_value, status, decision), histogram=False)
            )
            if scored:  # a score series exists once a score was observed in it
                scores.append(self._child(self.scores, (seg_key, seg_value), histogram=True))
        plan = (counters, scores, self._child(self.latency, (status,), histogram=True))
        self._plans[key] = plan
        return plan

    def _child(self, metric: Any, labels: tuple[str, ...], histogram: bool) -> Any:
        key = (id(metric), *labels)
        found = self._fast.get(key)
        return found if found is not None else self._fast_child(key, metric, labels, histogram)

    def _fast_child(self, key: tuple[Any, ...], metric: Any, labels: Any, histogram: bool) -> Any:
        if len(self._fast) > 100_000:  # label sets are bounded; a guard all the same
            self._fast.clear()
        child = metric.labels(*labels)
        value = getattr(child, "_value", None)
        if histogram:
            total = getattr(child, "_sum", None)
            bounds = getattr(child, "_upper_bounds", None)
            buckets = getattr(child, "_buckets", None)
            if total is None or bounds is None or buckets is None or len(bounds) != len(buckets):
                parts: Any = (child, None, None)
            else:
                parts = (total, list(bounds), list(buckets))
        else:
            parts = value if value is not None and hasattr(value, "inc") else child
        self._fast[key] = parts
        return parts

    def observe_flags(
        self, snap: FlagSnapshot, threshold: float, delay: float, stale: bool
    ) -> None:
        """Refresh the flag gauges."""
        flags = snap.flags
        self.flag_flow_enabled.set(1 if flags.flow == "enabled" else 0)
        for name in ("main", "fallback", "rules"):
            self.flag_model.labels(name).set(1 if flags.model == name else 0)
        self.flag_threshold.set(threshold)
        self.flag_threshold_set.set(0 if flags.threshold is None else 1)
        self.flag_neutralized.set(len(flags.neutralize))
        self.flag_delay.set(delay)
        self.flags_version.set(snap.version)
        self.flags_stale.set(1 if stale else 0)

    def observe_log(self, stats: LogStats, spooled: int, dead: int) -> None:
        """Refresh the prediction-log gauges."""
        self.log_queue.set(stats.queued)
        self.log_spool.set(spooled)
        self.log_backend_up.set(1 if stats.backend_up else 0)
        self.log_dead_letter.set(dead)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
