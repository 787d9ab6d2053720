"""The monitoring step of ``tabguard demo``: at the demo's own size, the rule really detects.

One run of the step (~20 CPU s: two simulated weeks through the scoring service), shared by
the tests; the printed lines are checked on the same run.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from rich.console import Console

from tabguard.cli._demo_monitor import (
    FEATURE,
    SEGMENT,
    MonitorStory,
    StoryOptions,
    print_monitor_story,
    run_monitor_story,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory, vulnerable_model_dir: Path) -> MonitorStory:
    from tabguard.redteam import vulnerable_model

    work = tmp_path_factory.mktemp("demo-monitor")
    return run_monitor_story(work, StoryOptions(), bundle=vulnerable_model(vulnerable_model_dir))


def test_the_rule_fires_on_the_attacked_channel_within_6_hours(story: MonitorStory) -> None:
    assert story.alert is not None, "the attack was not detected"
    assert story.alert.segment == ("channel", SEGMENT)
    assert story.delay is not None and timedelta(0) < story.delay <= timedelta(hours=6)
    assert story.false_alerts == []  # nothing in the clean days (the flag would be on early)


def test_the_flag_is_set_by_the_rule(story: MonitorStory) -> None:
    assert story.flag is not None
    assert FEATURE in story.flag.new and story.flag.actor == "monitor:denial_rate_drop"


def test_the_attack_worked_and_stops_working_once_the_flag_is_on(story: MonitorStory) -> None:
    (under, n_under), (under_ref, _) = story.rates["under"], story.rates["under_ref"]
    (after, n_after), (after_ref, _) = story.rates["after"], story.rates["after_ref"]
    assert n_under >= 100 and n_after >= 1000
    assert under < 0.8 * under_ref  # the attack lowered the denial rate past the rule
    assert after >= 0.8 * after_ref and after > under  # and no longer does


def test_the_step_prints_the_alert_the_flag_and_the_rates(story: MonitorStory) -> None:
    console = Console(width=100, record=True, color_system=None)
    print_monitor_story(story, console)
    text = console.export_text()
    assert "channel=partner" in text and "h after the onset" in text
    assert "actor monitor:denial_rate_drop" in text
    assert "the attack's effect is gone" in text


def test_an_undetected_attack_is_said_so(story: MonitorStory) -> None:
    console = Console(width=100, record=True, color_system=None)
    missed = MonitorStory(story.start, story.onset, story.end, story.requests, None, None, [], None)
    print_monitor_story(missed, console)
    assert "did not fire on channel=partner" in console.export_text()
