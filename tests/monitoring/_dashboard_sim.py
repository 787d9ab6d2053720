"""The simulated month of the monitoring proof and the dashboard tests: four weeks with an attack.

Built once per test session (``dashboard_sim`` in ``conftest.py``) and read by both
``test_attack_e2e.py`` (the proof: the rule catches the attack, the flag ends it) and the
dashboard tests (``test_dashboard*.py``): one simulation for both, ~100-120 CPU-s (two, with
different stories, cost twice that until session 10). 28 days × 4,000 requests per day through
the real scoring service, three channels, a public holiday (2026-01-15), the applicants the
model was not fitted on; the monitor in the loop every simulated hour with the seed's rule, its
baseline the median of the same 6 h over the last three weeks, the default alpha, the
holiday in its calendar, a webhook, a drift reference. From the onset, every applicant of the
partner channel games ``PAY_AMT2``.

What makes the story hold on any draw, not only on this seed's (``benchmarks/
dashboard_simulation.py`` runs it on others):

* the default alpha (1e-4, Bonferroni over the segment values): chance alerts in the three
  clean weeks are rare by design (500 requests a day needed a test-only alpha of 0.01, which
  opened false alerts before the attack on other draws);
* 4,000 requests a day: the partner channel's 6 h window after the onset holds ~500 requests;
  its fall in denials is significant at that alpha within 6 h on this seed (``docs/
  benchmarks.md``);
* ``min_volume: 200``: night windows and the first hours of the history are left out of the
  comparison (a day window holds over 1,000 requests, a partner one over 350);
* the holiday is in the calendar: its windows are excluded, not compared with ordinary
  Thursdays (its traffic is a weekend's, in volume and mix).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from tabguard.datasets import load_credit_default
from tabguard.flags import MemoryFlagStore
from tabguard.monitoring import load_monitor_config
from tabguard.monitoring._drift import DriftReference
from tabguard.monitoring._live import SimulationMonitor
from tabguard.redteam import (
    AttackSpec,
    Channel,
    TrafficOptions,
    TrafficResult,
    simulate_traffic,
    vulnerable_model,
)
from tabguard.serving import load_config
from tests.monitoring.conftest import unseen_applicants
from tests.monitoring.test_alerts import Receiver
from tests.serving.conftest import write_config

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
ONSET = START + timedelta(days=25, hours=10)  # a Friday morning in the fourth week
HOLIDAY = date(2026, 1, 15)  # a Thursday in the second week
ATTACKED = ("channel", "partner")
FEATURE = "PAY_AMT2"

MONITOR = """
model: {model}
drift: {{reference: {reference}}}
aggregation:
  bucket: 1h
  segments:
    request_keys: [channel]
    features: [EDUCATION]
    values: {{channel: [online, branch, partner]}}
calendar: {{holidays: [{holiday}]}}
notify: {{webhooks: [{{name: am, url: "{url}", retries: 0}}]}}
rules:
  - name: denial_rate_drop
    description: the last 6 h's denial rate is over 20 % below its median of the last 3 weeks
    metric: decision_rate
    decision: deny
    window: 6h
    baseline: {{median_of_weeks: 3}}
    direction: below
    change: 20%
    segments: [all, channel]
    min_volume: 200
    severity: critical
    actions: [{{flag: neutralize, value: [PAY_AMT2]}}, webhook, log]
"""


@dataclass(frozen=True)
class SimulatedHome:
    """A TABGUARD_HOME whose monitor store holds the simulated weeks, and what happened.

    Attributes
    ----------
    home, config : Path
        The home and its ``monitor.yaml``.
    opened : list
        ``(time, segment)`` of every alert opened.
    monitor : SimulationMonitor
        The monitor of the loop (closed): its alerting passes (``steps``) and ``opened`` alerts.
    result : TrafficResult
        Every request sent, and its decision.
    flags : MemoryFlagStore
        The service's flag store (the rule's action set ``neutralize``).
    posts : list
        The webhook's posts.
    """

    home: Path
    config: Path
    opened: list[tuple[datetime, tuple[str, str]]]
    monitor: SimulationMonitor
    result: TrafficResult
    flags: MemoryFlagStore
    posts: list[Any]


def build(
    work: Path, per_day: int = 4000, model: Path | None = None, seed: int = 11
) -> SimulatedHome:
    """Simulate the weeks into ``work/home`` (monitor store, alerts, reference).

    ``seed`` draws the traffic (the tests use one; ``benchmarks/dashboard_simulation.py``
    checks the story on others).
    """
    model = model or work / "model"
    bundle = vulnerable_model(model)
    home = work / "home"
    write_config(home, "[log]\nflush_interval = 0.05\n")
    reference = home / "reference.drift.json"
    DriftReference.from_frame(
        load_credit_default().sample(5000, random_state=0), bundle.contract, bundle.main.transform
    ).save(reference)
    receiver = Receiver()
    config = home / "monitor.yaml"
    text = MONITOR.format(model=model, reference=reference, holiday=HOLIDAY, url=receiver.url)
    config.write_text(text, encoding="utf-8")
    flags = MemoryFlagStore()
    monitor = SimulationMonitor(load_monitor_config(config, home=home))
    options = TrafficOptions(
        start=START,
        days=28,
        per_day=per_day,
        channels=(
            Channel("online", 0.5, 1.1, 0.0),
            Channel("partner", 0.3, 0.7, 0.4),
            Channel("branch", 0.2, 0.2, -0.3),
        ),
        holidays=(HOLIDAY,),
        attack=AttackSpec(onset=ONSET - START, segment=ATTACKED[1], feature=FEATURE, share=1.0),
        seed=seed,
    )
    try:
        # Applicants the model never saw: on its own training rows the overfit model is too
        # sure to be gamed much.
        result = simulate_traffic(
            bundle,
            load_config(home),
            options,
            population=unseen_applicants(),
            flag_store=flags,
            on_step=monitor,
        )
    finally:
        monitor.close()
        receiver.close()
    return SimulatedHome(
        home,
        config,
        [(t, a.segment) for t, a in monitor.opened],
        monitor,
        result,
        flags,
        receiver.posts,
    )
