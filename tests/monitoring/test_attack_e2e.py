"""The proof on simulated traffic: the seasonal rule catches the attack and the flag ends it.

Four weeks of applications through the real scoring service, the monitor in the loop every
simulated hour (bucket update, rules, actions on the service's flag store), then applicants of
one channel start gaming PAY_AMT2. The rule is the seed's, as it reads, with the median of the
last three weeks as the baseline and the default significance level. The simulated month is the
one the dashboard tests read (``_dashboard_sim.py``, built once per session).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tabguard.flags import MemoryFlagStore
from tests.monitoring._dashboard_sim import HOLIDAY, ONSET, SimulatedHome

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def proof(dashboard_sim: SimulatedHome) -> dict[str, Any]:
    return {
        "result": dashboard_sim.result,
        "monitor": dashboard_sim.monitor,
        "flags": dashboard_sim.flags,
        "posts": dashboard_sim.posts,
    }


def test_no_alert_in_the_clean_weeks(proof: dict[str, Any]) -> None:
    opened = proof["monitor"].opened
    assert opened, "the attack was not detected"
    assert all(t >= ONSET for t, _ in opened), [(t, a.message) for t, a in opened]
    evaluated = [e for s in proof["monitor"].steps if s.at < ONSET for e in s.evaluations]
    statuses = {e.status for e in evaluated}
    assert "ok" in statuses and "excluded" in statuses  # evaluated, and the holiday skipped
    skipped = {e.start.date() for e in evaluated if e.status == "excluded"}
    assert skipped <= {HOLIDAY, HOLIDAY - timedelta(days=1)}  # (a window ending on it)


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
