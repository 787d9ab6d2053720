"""The alerting pass wired into the loops that run it live.

* ``tabguard monitor run`` / :func:`~tabguard.monitoring._loop.run_once`: :func:`evaluate`
  after every update (the flag store is the one of ``tabguard.toml`` in the same home);
* the traffic simulator: :class:`SimulationMonitor`, its ``on_step`` hook (update, then
  rules, then actions, at every simulated step, on the service's own flag store);
* ``tabguard serve`` (``[monitor] enabled``): the same :func:`evaluate` through ``run_once``
  in a background task of the service.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tabguard.monitoring._alerting import Alerting, StepResult
from tabguard.monitoring._rules_config import AlertingConfig

if TYPE_CHECKING:
    from tabguard.flags import FlagStore
    from tabguard.monitoring._config import MonitorConfig
    from tabguard.monitoring._store import SqlMonitorStore
    from tabguard.serving import ScoringService

log = logging.getLogger("tabguard.monitoring")


def alerting_config(config: MonitorConfig) -> AlertingConfig:
    """The validated alerting keys of a monitor configuration (empty when it has none)."""
    value = config.alerting
    return value if isinstance(value, AlertingConfig) else AlertingConfig()


def open_flag_store(config: MonitorConfig) -> FlagStore | None:
    """The flag store of ``tabguard.toml`` in the monitor's home (``None`` when unreachable)."""
    from tabguard.serving import load_config
    from tabguard.serving._stores import open_flags

    try:
        return open_flags(load_config(config.home))
    except Exception as exc:  # the rules still run; flag actions are recorded as failed
        log.warning("monitor: no flag store for flag actions: %s", exc)
        return None


def rule_inputs(config: MonitorConfig) -> dict[str, Any]:
    """The drift reference (when a drift rule needs it) and the outcomes' maturity."""
    out: dict[str, Any] = {"maturity": config.outcomes.maturity}
    if any(r.metric == "drift" for r in alerting_config(config).rules):
        from tabguard.monitoring._drift import load_reference

        out["reference"] = load_reference(config)
    return out


def evaluate(
    config: MonitorConfig,
    store: SqlMonitorStore,
    at: datetime,
    *,
    flag_store: FlagStore | None = None,
) -> StepResult | None:
    """One alerting pass of ``monitor run`` at ``at`` (``None`` without rules)."""
    alerting = alerting_config(config)
    if not alerting.rules:
        return None
    own = flag_store is None and any(
        type(a).__name__ == "FlagAction" for r in alerting.rules for a in r.actions
    )
    from tabguard.monitoring._store import UpdaterBusyError

    flags = open_flag_store(config) if own else flag_store
    try:
        # One evaluator at a time across processes and replicas (the updater lock): two
        # passes racing could open the same alert twice. A busy lock means another process is
        # updating or evaluating; its pass covers this time.
        with store.updater_lock():
            return Alerting(store, alerting, flags, **rule_inputs(config)).step(at)
    except UpdaterBusyError:
        log.debug("monitor: another process holds the store; it evaluates the rules")
        return None
    finally:
        if own and flags is not None:
            flags.close()


class SimulationMonitor:
    """The traffic simulator's ``on_step``: update the buckets, evaluate, act — every step.

    Parameters
    ----------
    config : MonitorConfig
        Its log must be the simulated service's prediction log.
    apply : bool
        Apply flag actions on the service's flag store (the proof needs it on).

    Attributes
    ----------
    steps : list of StepResult
        Every alerting pass, in simulated time.
    """

    def __init__(self, config: MonitorConfig, *, apply: bool = True) -> None:
        from tabguard.monitoring._store import open_monitor_store
        from tabguard.monitoring._update import LogReader, load_plan

        self.config = config
        self.apply = apply
        self.store = open_monitor_store(config.store_url(), bucket=config.bucket)
        self.reader = LogReader(config.log_url())
        # The simulated service keeps its model: the plan (the contract's columns) is read
        # once, not at every simulated hour (it was a quarter of a simulation's time).
        self.plan = load_plan(config)
        self.alerting: Alerting | None = None
        self.steps: list[StepResult] = []
        self.rows = 0

    def __call__(self, at: datetime, service: ScoringService) -> None:
        """Bring the store up to ``at`` and run the alerting pass on the service's flags."""
        from tabguard.monitoring._clock import FixedClock
        from tabguard.monitoring._update import update

        result = update(
            self.config, store=self.store, reader=self.reader, plan=self.plan, clock=FixedClock(at)
        )
        self.rows += result.rows
        if self.alerting is None:
            config = alerting_config(self.config)
            if not config.rules:
                return
            # Simulated history is complete up to each step: windows are read once.
            self.alerting = Alerting(
                self.store,
                config,
                service.watcher.store,
                apply=self.apply,
                frozen_history=True,
                **rule_inputs(self.config),
            )
        self.steps.append(self.alerting.step(at))

    @property
    def opened(self) -> list[tuple[datetime, Any]]:
        """``(time, alert)`` of every alert opened during the simulation."""
        return [(s.at, a) for s in self.steps for a in s.opened]

    def close(self) -> None:
        """Release the store and the log reader."""
        self.reader.close()
        self.store.close()
