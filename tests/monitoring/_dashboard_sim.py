"""A small simulated store for the dashboard tests: four weeks with an attack at a known time.

Built once per test session (``dashboard_sim`` in ``conftest.py``): 28 days × 4,000 requests per
day through the real scoring service, the monitor in the loop every simulated hour (the seed's
rule against the same 6 h last week, with the default alpha), a drift reference. ~85-110 CPU-s
(the monitor reads its plan once per simulation now; 500 requests a day took ~50).

What makes the story hold on any draw, not only on this seed's (``benchmarks/
dashboard_simulation.py`` runs it on others):

* the default alpha (1e-4, Bonferroni over the segment values): chance alerts in the three
  clean weeks are rare by design (500 requests a day needed a test-only alpha of 0.01, which
  opened false alerts before the attack on other draws);
* 4,000 requests a day: the partner channel's 6 h window after the onset holds ~500 requests;
  its fall in denials is significant at that alpha within 6 h on this seed, within 6–15 h on
  others (``docs/benchmarks.md``);
* ``min_volume: 200``: the simulated history starts at midnight, so in the second week the
  first "same 6 h last week" windows hold only the first few hours of the first night (at most
  ~120 requests); the rule's own volume guard leaves them, and every night window, out of the
  comparison (a day window holds over 1,000 requests, a partner one over 350).
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
    min_volume: 200
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
    config = home / "monitor.yaml"
    text = MONITOR.format(model=model, reference=reference)
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
        seed=seed,
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
