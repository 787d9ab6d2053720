"""The monitor loop: update the store, then evaluate the alert rules, every period.

``run_once`` is what ``tabguard monitor run``, the traffic simulator and (optionally) the
scoring service call. The rules engine plugs in at :func:`_evaluate_rules`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tabguard.errors import TabguardError
from tabguard.monitoring._clock import Clock, SystemClock
from tabguard.monitoring._config import MonitorConfig
from tabguard.monitoring._store import SqlMonitorStore, open_monitor_store
from tabguard.monitoring._update import LogReader, UpdateResult, update

log = logging.getLogger("tabguard.monitoring")


@dataclass(frozen=True)
class RunResult:
    """One turn of the loop: the update and whatever the rules returned."""

    update: UpdateResult
    evaluation: Any = None
    at: datetime | None = None


def _evaluate_rules(config: MonitorConfig, store: SqlMonitorStore, at: datetime) -> Any:
    """Evaluate the alert rules of ``config`` on the store at ``at``, and act on new alerts.

    Returns the :class:`~tabguard.monitoring.StepResult` (``None`` without rules).
    """
    from tabguard.monitoring._live import evaluate

    return evaluate(config, store, at)


def run_once(
    config: MonitorConfig,
    *,
    at: datetime | None = None,
    clock: Clock | None = None,
    store: SqlMonitorStore | None = None,
    reader: LogReader | None = None,
) -> RunResult:
    """Update the store from the log, then evaluate the rules at ``at`` (default: now)."""
    clock = clock or SystemClock()
    own = store is None
    store = store or open_monitor_store(config.store_url(), bucket=config.bucket)
    try:
        result = update(config, store=store, reader=reader, clock=clock)
        when = at or clock.now()
        evaluation = _evaluate_rules(config, store, when)
        return RunResult(result, evaluation, when)
    finally:
        if own:
            store.close()


def run_forever(
    config: MonitorConfig,
    every: timedelta,
    *,
    clock: Clock | None = None,
    sleep: Callable[[float], None] = time.sleep,
    iterations: int | None = None,
    on_result: Callable[[RunResult], None] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
) -> int:
    """Call :func:`run_once` every ``every``; never stops on a failed turn.

    A turn that fails (database down, a store error) is reported through ``on_error`` (default:
    a logged line) and the next turn tries again: the watermark only moves with committed
    batches, so nothing is lost or counted twice.

    Returns
    -------
    int
        Turns that failed (when ``iterations`` is given; otherwise it runs until interrupted).
    """
    if every <= timedelta(0):
        raise ValueError(f"--every must be a positive duration; got {every}")
    failures = 0
    turn = 0
    while iterations is None or turn < iterations:
        turn += 1
        started = time.monotonic()
        try:
            result = run_once(config, clock=clock)
        except TabguardError as exc:
            failures += 1
            (on_error or _log_error)(exc)
        else:
            if on_result is not None:
                on_result(result)
        if iterations is not None and turn >= iterations:
            break
        sleep(max(every.total_seconds() - (time.monotonic() - started), 0.0))
    return failures


def _log_error(exc: BaseException) -> None:
    log.error("monitor: this turn failed, the next one retries: %s", exc)
