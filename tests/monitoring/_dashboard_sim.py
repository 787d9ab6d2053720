"""A small simulated store for the dashboard tests: four weeks with an attack at a known time.

Built once per test session (``dashboard_sim`` in ``conftest.py``): 28 days × 500 requests per
day through the real scoring service, the monitor in the loop every simulated hour (the seed's
rule against the same 6 h last week, at a test-sized alpha so it fires on small volumes), a
drift reference. ~1 min on 2 cores.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tabguard.datasets import load_credit_default
from tabguard.flags import MemoryFlagStore
from tabguard.monitoring import load_monitor_config
from tabguard.monitoring._drift import DriftReference
from tabguard.monitoring._live import SimulationMonitor
from tabguard.redteam import AttackSpec, Channel, TrafficOptions, simulate_traffic, vulnerable_model
from tabguard.serving import load_config
from tests.serving.conftest import write_config

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
ONSET = START + timedelta(days=25, hours=10)
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
rules:
  - name: denial_rate_drop
    description: the denial rate of the last 6 h is more than 20 % below the same 6 h last week
    metric: decision_rate
    decision: deny
    window: 6h
    baseline: {{weeks_ago: 1}}
    direction: below
    change: 20%
    segments: [all, channel]
    alpha: {alpha}
    severity: critical
    actions: [{{flag: neutralize, value: [PAY_AMT2]}}, log]
"""


@dataclass(frozen=True)
class SimulatedHome:
    """A TABGUARD_HOME whose monitor store holds the simulated weeks."""

    home: Path
    config: Path
    opened: list[tuple[datetime, tuple[str, str]]]


def build(
    work: Path, per_day: int = 500, alpha: float = 0.01, model: Path | None = None
) -> SimulatedHome:
    """Simulate the weeks into ``work/home`` (monitor store, alerts, reference).

    ``alpha`` 0.01 makes the rule fire within 6 h on the test's small volumes; at a few
    thousand requests a day the default 1e-4 keeps the clean weeks free of false alerts (whose
    action would neutralise the feature before the attack).
    """
    model = model or work / "model"
    bundle = vulnerable_model(model)
    home = work / "home"
    write_config(home, "[log]\nflush_interval = 0.05\n")
    reference = home / "reference.drift.json"
    DriftReference.from_frame(
        load_credit_default().sample(5000, random_state=0), bundle.contract, bundle.main.transform
    ).save(reference)
    config = home / "monitor.yaml"
    text = MONITOR.format(model=model, reference=reference, alpha=alpha)
    config.write_text(text, encoding="utf-8")
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
        attack=AttackSpec(onset=ONSET - START, segment=ATTACKED[1], feature=FEATURE, share=1.0),
        seed=11,
    )
    try:
        simulate_traffic(
            bundle,
            load_config(home),
            options,
            flag_store=MemoryFlagStore(),
            on_step=monitor,
        )
    finally:
        monitor.close()
    return SimulatedHome(home, config, [(t, a.segment) for t, a in monitor.opened])
