"""The monitoring step of ``tabguard demo``: an attack in production, caught and stopped.

Two simulated weeks of applications go through the real scoring service
(:func:`~tabguard.redteam.simulate_traffic`: authentication, contract validation, guards, the
decision layer, the prediction log), with the monitor in the loop every simulated hour
(:class:`~tabguard.monitoring._live.SimulationMonitor`: bucket update, the seed's rule, its
actions on the service's flag store). From a known time the applicants of one channel declare
the PAY_AMT2 that gets them approved; the rule fires on that channel, neutralises the feature,
and the channel's denial rate comes back. :func:`run_monitor_story` returns the figures (the
test reads them), :func:`print_monitor_story` prints them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

#: The seed's rule, as it reads, with the action that ends the attack. Defaults everywhere
#: else (significance level, minimum volume, dispersion, CUSUM), as a deployment would start.
MONITOR_YAML = """\
aggregation:
  bucket: 1h
  segments: {request_keys: [channel], features: []}
  columns: {raw: [PAY_AMT2], features: [PAY_AMT2]}
rules:
  - name: denial_rate_drop
    description: the denial rate of the last 6 h is more than 20 % below the same 6 h last week
    metric: decision_rate
    decision: deny
    window: 6h
    baseline: {weeks_ago: 1}
    direction: below
    change: 20%
    segments: [all, channel]
    severity: critical
    actions: [{flag: neutralize, value: [PAY_AMT2]}]
"""

FEATURE = "PAY_AMT2"
SEGMENT = "partner"


@dataclass(frozen=True)
class StoryOptions:
    """The size of the simulation (the demo's defaults keep the step to ~20 CPU seconds).

    Attributes
    ----------
    days : int
        Simulated days; the first week is the rule's baseline.
    per_day : float
        Mean applications on a weekday, both channels.
    onset : timedelta
        Start of the attack after the first request (default: Thursday 10:00 of week 2).
    population : int
        Applicants drawn from the bundled data (seeded sample); each attacker's best value is
        searched over the model, so this bounds the set-up cost.
    seed : int
    """

    days: int = 14
    per_day: float = 2000.0
    onset: timedelta = timedelta(days=10, hours=10)
    population: int = 10000
    seed: int = 11


@dataclass
class MonitorStory:
    """What the monitoring step measured.

    Attributes
    ----------
    start, onset, end : datetime
        Simulated start, attack onset, end.
    requests : int
        Requests sent (all channels).
    alert_at : datetime or None
        The first alert on the attacked segment (``None``: not detected).
    alert : Alert or None
    false_alerts : list of (datetime, Alert)
        Alerts opened before the onset.
    flag : FlagChange or None
        The ``neutralize`` change the alert made.
    rates : dict
        The attacked channel's denial rate and volume, ``(rate, n)``: ``under`` (onset to the
        flag), ``after`` (flag to the end), and ``under_ref`` / ``after_ref``, the same hours
        one week earlier.
    """

    start: datetime
    onset: datetime
    end: datetime
    requests: int
    alert_at: datetime | None
    alert: Any
    false_alerts: list[tuple[datetime, Any]]
    flag: Any
    rates: dict[str, tuple[float, int]] = field(default_factory=dict)

    @property
    def delay(self) -> timedelta | None:
        """Time from the onset to the alert."""
        return None if self.alert_at is None else self.alert_at - self.onset


def run_monitor_story(
    work: Path, options: StoryOptions | None = None, *, bundle: Any = None
) -> MonitorStory:
    """Simulate the traffic with the attack and the monitor in the loop, in ``work``.

    Parameters
    ----------
    work : Path
        Directory of the simulated home (prediction log, monitor store, alert history) and,
        unless ``bundle`` is given, of the vulnerable model.
    options : StoryOptions, optional
    bundle : ModelBundle, optional
        The served model (default: :func:`~tabguard.redteam.vulnerable_model`).

    Returns
    -------
    MonitorStory
    """
    from tabguard.datasets import load_credit_default
    from tabguard.flags import MemoryFlagStore
    from tabguard.monitoring import load_monitor_config
    from tabguard.monitoring._live import SimulationMonitor
    from tabguard.redteam import (
        AttackSpec,
        Channel,
        TrafficOptions,
        simulate_traffic,
        vulnerable_model,
    )
    from tabguard.serving import load_config

    opts = options or StoryOptions()
    work.mkdir(parents=True, exist_ok=True)
    bundle = bundle if bundle is not None else vulnerable_model(work / "model")
    home = work / "home"
    home.mkdir(exist_ok=True)
    # The simulated service's own home: its log and stores never mix with TABGUARD_HOME's. The
    # log is flushed at every simulated hour; the short interval only bounds real-time waits.
    (home / "tabguard.toml").write_text("[log]\nflush_interval = 0.05\n", encoding="utf-8")
    (home / "monitor.yaml").write_text(MONITOR_YAML, encoding="utf-8")
    start = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
    traffic = TrafficOptions(
        start=start,
        days=opts.days,
        per_day=opts.per_day,
        channels=(Channel("online", 0.5, 1.1, 0.0), Channel(SEGMENT, 0.5, 0.7, 0.4)),
        holidays=(),
        attack=AttackSpec(onset=opts.onset, segment=SEGMENT, feature=FEATURE, share=1.0),
        seed=opts.seed,
    )
    population = load_credit_default().sample(opts.population, random_state=opts.seed)
    flags = MemoryFlagStore()
    monitor = SimulationMonitor(load_monitor_config(home / "monitor.yaml", home=home))
    try:
        result = simulate_traffic(
            bundle,
            load_config(home),
            traffic,
            population=population,
            flag_store=flags,
            on_step=monitor,
        )
    finally:
        monitor.close()
    onset, end = start + opts.onset, traffic.end
    opened = monitor.opened
    on_segment = [(t, a) for t, a in opened if t >= onset and a.segment == ("channel", SEGMENT)]
    alert_at, alert = on_segment[0] if on_segment else (None, None)
    history = flags.history(limit=1, name="neutralize")
    story = MonitorStory(
        start=start,
        onset=onset,
        end=end,
        requests=len(result.requests),
        alert_at=alert_at,
        alert=alert,
        false_alerts=[(t, a) for t, a in opened if t < onset],
        flag=history[0] if history else None,
    )
    week = timedelta(weeks=1)
    flag_on = alert_at or end
    for name, (s, e) in {"under": (onset, flag_on), "after": (flag_on, end)}.items():
        story.rates[name] = result.denial_rate(s, e, SEGMENT)
        story.rates[f"{name}_ref"] = result.denial_rate(s - week, e - week, SEGMENT)
    return story


def print_monitor_story(story: MonitorStory, console: Any) -> None:
    """The step's few lines: the setting, the alert, the flag, the denial rates."""
    from rich.markup import escape

    days = (story.end - story.start).days
    console.print(
        f"{days} simulated days, {story.requests:,} applications through the guarded scoring "
        f"service of a model trained without the robust preset; every simulated hour the "
        f"monitor updates its buckets and evaluates the seed's rule: [bold]the denial rate of "
        f"the last 6 h more than 20 % below the same 6 h last week[/], per channel, action: "
        f"neutralise {FEATURE}."
    )
    console.print(
        f"From {story.onset:%a %Y-%m-%d %H:%M} UTC, every {SEGMENT} applicant declares the "
        f"{FEATURE} that gets them approved."
    )
    if story.alert is None or story.delay is None:
        console.print(f"[bold red]The rule did not fire on channel={SEGMENT}.[/]")
        return
    hours = story.delay.total_seconds() / 3600
    console.print(
        f"[bold red]Alert[/] at {story.alert_at:%a %H:%M} ({hours:.0f} h after the onset): "
        f"{escape(story.alert.message)}"
    )
    flag = story.flag
    if flag is not None:
        console.print(
            f"Flag set: neutralize = {escape(str(flag.new))}, actor {escape(flag.actor)}; "
            f"alerts in the {(story.onset - story.start).days} clean days before: "
            f"{len(story.false_alerts)}."
        )
    (u, nu), (ur, _) = story.rates["under"], story.rates["under_ref"]
    (a, na), (ar, _) = story.rates["after"], story.rates["after_ref"]
    # "Gone" in the rule's own terms: no longer more than 20 % below a week earlier.
    verdict = "the attack's effect is gone" if a >= 0.8 * ar else "the effect is reduced"
    console.print(
        f"{SEGMENT} denial rate under attack [bold red]{u:.1%}[/] ({nu:,} decisions; "
        f"{ur:.1%} the same hours a week earlier); once the flag is on [bold green]{a:.1%}[/] "
        f"({na:,} decisions; {ar:.1%} a week earlier): {verdict}."
    )
