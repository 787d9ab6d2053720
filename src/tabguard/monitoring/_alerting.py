"""The alerting pass of a monitor: evaluate the rules, move alerts, run their actions.

:class:`Alerting` is what ``tabguard monitor run``, the in-process loop of ``tabguard serve``,
the traffic simulator and ``tabguard monitor replay`` call after the bucket store is up to
date: ``step(at)`` → :class:`StepResult` (the evaluations, the alert transitions, the
actions' outcomes). :func:`replay` steps it over stored history.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

from tabguard.monitoring._actions import ActionRunner
from tabguard.monitoring._alerts import Alert, AlertEvent, AlertStore, AlertTracker
from tabguard.monitoring._rules import (
    MetricReader,
    RuleEvaluation,
    counts_span,
    evaluate_rules,
    pass_reader,
)
from tabguard.monitoring._rules_config import AlertingConfig
from tabguard.storage import create_sql_engine
from tabguard.timeutil import floor_time

if TYPE_CHECKING:
    from tabguard.flags import FlagStore

log = logging.getLogger("tabguard.monitoring")


@dataclass
class StepResult:
    """One alerting pass at ``at``."""

    at: datetime
    evaluations: list[RuleEvaluation]
    events: list[AlertEvent]
    actions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def opened(self) -> list[Alert]:
        """Alerts opened at this step."""
        return [e.alert for e in self.events if e.kind == "opened"]


class Alerting:
    """Rules → evaluations → alert history → actions, over one bucket store.

    Parameters
    ----------
    store : MonitorStore
        The bucket store (its database also holds the alert history).
    config : AlertingConfig
    flag_store : FlagStore, optional
        Where flag actions go (the scoring service's store).
    apply : bool
        Make flag changes; ``False`` records what would have been done.
    alerts : AlertStore, optional
        Default: beside the bucket store.
    reference : ReferenceProfile, optional
        Training reference for drift rules.
    http, sleep
        Passed to :class:`ActionRunner` (tests).
    frozen_history : bool
        The buckets behind past windows no longer change (replay, simulation): windows read
        once are reused by later passes (last week's window is this week's baseline).
    prefetch : bool
        Otherwise (the live loop), each pass reads the counters of its whole span in one query
        and sums its windows in memory (``False``: one query per window, as before; kept for
        the benchmark's comparison).
    """

    def __init__(
        self,
        store: Any,
        config: AlertingConfig,
        flag_store: FlagStore | None = None,
        *,
        apply: bool = True,
        alerts: AlertStore | None = None,
        reference: Any = None,
        http: httpx.Client | None = None,
        sleep: Callable[[float], None] | None = None,
        frozen_history: bool = False,
        maturity: timedelta | None = None,
        prefetch: bool = True,
    ) -> None:
        check_windows(config, store.bucket)
        check_inputs(config, reference)
        self.maturity = maturity
        self.prefetch = prefetch
        self.reader = MetricReader(store, reference, maturity=maturity) if frozen_history else None
        self.store = store
        self.config = config
        self.reference = reference
        self.alerts = alerts or AlertStore.of(store)
        self.tracker = AlertTracker(self.alerts, config)
        extra = {"sleep": sleep} if sleep is not None else {}
        self.runner = ActionRunner(config, self.alerts, flag_store, apply=apply, http=http, **extra)

    def step(self, at: datetime) -> StepResult:
        """Evaluate every rule at ``at``, update the alerts, run the actions of new ones."""
        reader = self.reader
        if reader is None and self.prefetch:
            reader = pass_reader(self.store, self.config, at, self.reference, self.maturity)
        elif reader is None:
            reader = MetricReader(self.store, self.reference, maturity=self.maturity)
        evaluations = evaluate_rules(self.store, self.config, at, reader=reader)
        events = self.tracker.process(evaluations)
        actions = self.runner.run(events) if events else []
        for e in events:
            log.info("alert %s %s: [%s] %s", e.alert.id, e.kind, e.alert.rule, e.alert.message)
        return StepResult(at, evaluations, events, actions)


def check_windows(config: AlertingConfig, bucket: timedelta) -> None:
    """Rules read whole buckets: a window (and the evaluation step) must be a multiple of one.

    Raises
    ------
    MonitorConfigError
        Naming the rule, the key and the value.
    """
    from tabguard.monitoring._config import MonitorConfigError
    from tabguard.timeutil import format_duration

    for rule in config.rules:
        if rule.window % bucket:
            raise MonitorConfigError(
                None,
                f"rules[{rule.name}].window",
                f"must be a multiple of aggregation.bucket ({format_duration(bucket)})",
                format_duration(rule.window),
            )


def check_inputs(config: AlertingConfig, reference: Any) -> None:
    """Drift rules need the training reference; say so once, naming the rule.

    Raises
    ------
    MonitorConfigError
    """
    from tabguard.monitoring._config import MonitorConfigError

    for rule in config.rules:
        if rule.metric == "drift" and reference is None:
            raise MonitorConfigError(
                None,
                f"rules[{rule.name}].metric",
                "drift compares with the training reference: set model: (a directory with "
                "reference.json) or drift.reference in monitor.yaml",
                "drift",
            )


#: Longest replay whose counters are read in one query; a longer one reads its windows one
#: by one (a replay of months would otherwise hold every counter row in memory at once).
REPLAY_SPAN_LIMIT = timedelta(weeks=16)


def _replay_view(store: Any, config: AlertingConfig, first: datetime, last: datetime) -> Any:
    """The store, or a view with the counters of the whole replay read at once: replayed
    history no longer changes, so one read serves every step."""
    spans = [counts_span(config, at, store.bucket) for at in (first, max(first, last))]
    if spans[0] is None or spans[1] is None or not hasattr(store, "with_counts"):
        return store
    lo, hi = spans[0][0], spans[1][1]
    if hi - lo > REPLAY_SPAN_LIMIT:
        return store
    return store.with_counts(lo, hi, sorted({*spans[0][2], *spans[1][2]}))


@dataclass
class ReplayResult:
    """Alerts a replay produced, with every transition and action (recorded or applied)."""

    start: datetime
    end: datetime
    step: timedelta
    steps: list[StepResult]
    alerts: list[Alert]
    applied: bool

    def actions_of(self, alert_id: int) -> list[dict[str, Any]]:
        """The actions recorded for one alert."""
        return [a for s in self.steps for a in s.actions if a["alert_id"] == alert_id]


def replay(
    store: Any,
    config: AlertingConfig,
    start: datetime,
    end: datetime,
    *,
    step: timedelta | None = None,
    apply: bool = False,
    flag_store: FlagStore | None = None,
    reference: Any = None,
    http: httpx.Client | None = None,
    maturity: timedelta | None = None,
) -> ReplayResult:
    """Evaluate the rules over stored history, step by step, as if live.

    Parameters
    ----------
    store : MonitorStore
        Buckets covering ``[start - longest baseline, end)``.
    config : AlertingConfig
    start, end : datetime
        The evaluations run at ``start + step``, ``start + 2·step`` … up to ``end``.
    step : timedelta, optional
        Default: the store's bucket.
    apply : bool
        ``False`` (default): alerts go to a scratch history and flag changes are recorded,
        not made; webhooks are not sent. ``True``: alerts go to the store's history, flags are
        set and webhooks sent, as the live loop would have.
    flag_store : FlagStore, optional
        Needed to apply flag actions (and to read the current ``neutralize`` list).

    Returns
    -------
    ReplayResult
    """
    step = step or store.bucket
    if step <= timedelta(0):
        raise ValueError(f"the replay step must be positive; got {step}")
    if apply:
        alerts = AlertStore.of(store)
        run_config = config
    else:
        alerts = AlertStore(create_sql_engine("memory://"), "replay alert history")
        # A dry run posts nothing: webhook actions are recorded as not sent.
        run_config = config.model_copy(
            update={"notify": config.notify.model_copy(update={"webhooks": ()})}
        )
    at = floor_time(start, store.bucket) + step
    alerting = Alerting(
        _replay_view(store, config, at, end), run_config, flag_store, apply=apply,
        alerts=alerts, reference=reference, http=http, frozen_history=True,
    )  # fmt: skip
    steps = []
    opened: list[int] = []
    while at <= end:
        result = alerting.step(at)
        steps.append(result)
        opened += [a.id for a in result.opened]
        at += step
    alerts_out = [alerts.get(i) for i in opened]
    return ReplayResult(start, end, step, steps, alerts_out, apply)
