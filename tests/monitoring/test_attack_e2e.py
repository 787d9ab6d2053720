"""The proof on simulated traffic: the seasonal rule catches the attack and the flag ends it.

Four weeks of applications through the real scoring service, the monitor in the loop every
simulated hour (bucket update, rules, actions on the service's flag store), then applicants of
one channel start gaming PAY_AMT2. The rule is the seed's, as it reads, with the median of the
last three weeks as the baseline and the default significance level.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tabguard.flags import MemoryFlagStore
from tabguard.monitoring import load_monitor_config
from tabguard.monitoring._live import SimulationMonitor
from tabguard.redteam import AttackSpec, Channel, TrafficOptions, simulate_traffic, vulnerable_model
from tabguard.serving import load_config
from tests.monitoring.conftest import unseen_applicants
from tests.monitoring.test_alerts import Receiver
from tests.serving.conftest import write_config

pytestmark = pytest.mark.slow

START = datetime(2026, 1, 5, tzinfo=UTC)
ONSET = START + timedelta(days=24, hours=10)  # a Thursday morning in the fourth week

MONITOR = """
aggregation:
  bucket: 1h
  segments: {{request_keys: [channel], features: []}}
  columns: {{raw: [PAY_AMT2], features: [PAY_AMT2]}}
calendar: {{holidays: [2026-01-15]}}
notify: {{webhooks: [{{name: am, url: "{url}", retries: 0}}]}}
rules:
  - name: denial_rate_drop
    description: the denial rate of the last 6 h is more than 20 % below the same 6 h last week
    metric: decision_rate
    decision: deny
    window: 6h
    baseline: {{median_of_weeks: 3}}
    direction: below
    change: 20%
    segments: [all, channel]
    severity: critical
    actions: [{{flag: neutralize, value: [PAY_AMT2]}}, webhook, log]
"""


@pytest.fixture(scope="module")
def proof(tmp_path_factory: pytest.TempPathFactory, vulnerable_model_dir: Path) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("attack-e2e")
    bundle = vulnerable_model(vulnerable_model_dir)
    home = work / "home"
    write_config(home, "[log]\nflush_interval = 0.05\n")
    receiver = Receiver()
    (home / "monitor.yaml").write_text(MONITOR.format(url=receiver.url), encoding="utf-8")
    flags = MemoryFlagStore()
    monitor = SimulationMonitor(load_monitor_config(home / "monitor.yaml", home=home))
    options = TrafficOptions(
        start=START,
        days=28,
        per_day=3000,
        channels=(Channel("online", 0.5, 1.1, 0.0), Channel("partner", 0.5, 0.7, 0.4)),
        holidays=(date(2026, 1, 15),),
        attack=AttackSpec(onset=ONSET - START, segment="partner", feature="PAY_AMT2", share=1.0),
        seed=11,
    )
    try:
        population = unseen_applicants()
        result = simulate_traffic(bundle, load_config(home), options, population=population,
                                  flag_store=flags, on_step=monitor)  # fmt: skip
    finally:
        monitor.close()
        receiver.close()
    return {"result": result, "monitor": monitor, "flags": flags, "posts": receiver.posts}


def test_no_alert_in_the_clean_weeks(proof: dict[str, Any]) -> None:
    opened = proof["monitor"].opened
    assert opened, "the attack was not detected"
    assert all(t >= ONSET for t, _ in opened), [(t, a.message) for t, a in opened]
    evaluated = [e for s in proof["monitor"].steps if s.at < ONSET for e in s.evaluations]
    statuses = {e.status for e in evaluated}
    assert "ok" in statuses and "excluded" in statuses  # evaluated, and the holiday skipped


def test_rule_fires_within_6_hours_and_names_the_segment(proof: dict[str, Any]) -> None:
    at, alert = proof["monitor"].opened[0]
    assert at - ONSET <= timedelta(hours=6)
    assert alert.segment == ("channel", "partner") or any(
        a.segment == ("channel", "partner") and t - ONSET <= timedelta(hours=6)
        for t, a in proof["monitor"].opened
    )
    assert "denial rate" in alert.message and "below" in alert.message


def test_flag_set_with_the_rule_as_actor_and_webhook_sent(proof: dict[str, Any]) -> None:
    flags: MemoryFlagStore = proof["flags"]
    assert "PAY_AMT2" in flags.get("neutralize")
    change = flags.history(limit=5, name="neutralize")[-1]
    assert change.actor == "monitor:denial_rate_drop"
    assert proof["posts"] and proof["posts"][0][0]["labels"]["alertname"] == "denial_rate_drop"


def test_attack_effect_drops_once_the_flag_is_on(proof: dict[str, Any]) -> None:
    result = proof["result"]
    df = result.requests
    flag_version = df.loc[df["time"] >= ONSET, "flags_version"].max()
    flag_on = df.loc[df["flags_version"] == flag_version, "time"].min()
    week = timedelta(weeks=1)
    before, _ = result.denial_rate(ONSET - week, flag_on - week, "partner")
    under, n_under = result.denial_rate(ONSET, flag_on, "partner")
    after, n_after = result.denial_rate(flag_on, flag_on + timedelta(days=2), "partner")
    assert n_under >= 30 and n_after >= 100
    assert under < 0.8 * before  # the attack worked
    assert after > under and after >= 0.8 * before  # and stopped working
