"""The alerting keys of monitor.yaml: the seed's rule as it reads, and one-line errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tabguard.monitoring import MonitorConfigError
from tabguard.monitoring._rules_config import (
    EvaluationOptions,
    FlagAction,
    LogAction,
    WebhookAction,
    parse_alerting,
)
from tests.monitoring.conftest import seed_rule

SEED_RULE = """
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
    actions:
      - {flag: neutralize, value: [PAY_AMT1]}
      - webhook
      - log
notify:
  webhooks: [{name: am, url: "http://127.0.0.1:9093/api/v2/alerts"}]
"""


def _rule(**kw: Any) -> dict[str, Any]:
    return seed_rule(**{"name": "r", "segments": None, **kw})


def test_seed_rule_reads_as_written() -> None:
    cfg = parse_alerting(yaml.safe_load(SEED_RULE))
    r = cfg.rule("denial_rate_drop")
    assert r.metric == "decision_rate" and r.decision == "deny"
    assert r.window == timedelta(hours=6)
    assert r.baseline is not None and r.baseline.weeks_ago == 1
    assert r.change == pytest.approx(0.2) and r.direction == "below"
    assert r.segments == ("all", "channel")
    assert isinstance(r.actions[0], FlagAction) and list(r.actions[0].value) == ["PAY_AMT1"]
    assert isinstance(r.actions[1], WebhookAction) and isinstance(r.actions[2], LogAction)
    assert r.cooldown is None  # defaults to the window
    assert cfg.evaluation == EvaluationOptions()
    assert (cfg.evaluation.alpha, cfg.evaluation.min_volume) == (0.0001, 30)


@pytest.mark.parametrize(
    ("baseline", "weeks_ago", "median"),
    [("last_week", 1, None), ("median_of_3_weeks", None, 3), ({"median_of_weeks": 4}, None, 4)],
)
def test_baseline_shorthands(baseline: Any, weeks_ago: Any, median: Any) -> None:
    r = parse_alerting({"rules": [_rule(baseline=baseline)]}).rules[0]
    assert r.baseline is not None
    assert (r.baseline.weeks_ago, r.baseline.median_of_weeks) == (weeks_ago, median)


@pytest.mark.parametrize(
    ("rule", "key", "text"),
    [
        (_rule(metric="denial_rate"), "rules[r].metric", "must be one of"),
        (_rule(windw="6h"), "rules[r].windw", "unknown key"),
        (_rule(window="6 hours"), "rules[r].window", "must be a duration"),
        (_rule(decision=None), "rules[r]", "needs 'decision'"),
        (_rule(baseline=None), "rules[r]", "compares with a baseline"),
        (_rule(change="-5%"), "rules[r].change", "greater than zero"),
        (_rule(threshold=0.3), "rules[r]", "exactly one of change"),
        (_rule(change=None, threshold=0.3, direction="either"), "rules[r]", "needs direction"),
        (_rule(actions=[{"flag": "treshold", "value": 0.3}]), "rules[r].actions", "unknown flag"),
        (_rule(actions=[{"flag": "threshold", "value": 3}]), "rules[r].actions", "[0, 1]"),
        (_rule(actions=["page"]), "rules[r].actions", "an action is"),
        (_rule(actions=[{"webhook": "pager"}]), "rules[r].actions", "no webhook of that name"),
        (_rule(name="bad name"), "rules[bad name].name", "letters, digits"),
        (_rule(metric="percentile"), "rules[r]", "needs 'column'"),
        (
            _rule(metric="drift", column="AGE", kind="raw", stat="psi"),
            "rules[r]",
            "training reference",
        ),
    ],
)
def test_errors_name_rule_key_and_value(rule: dict[str, Any], key: str, text: str) -> None:
    with pytest.raises(MonitorConfigError) as exc:
        parse_alerting({"rules": [rule]}, Path("monitor.yaml"))
    msg = str(exc.value)
    assert msg.startswith(f"monitor.yaml: {key}"), msg
    assert text in msg and "\n" not in msg


def test_unknown_metric_error_names_the_value() -> None:
    with pytest.raises(
        MonitorConfigError, match=r"rules\[r\]\.metric: must be one of .*got 'denial_rate'"
    ):
        parse_alerting({"rules": [_rule(metric="denial_rate")]}, Path("monitor.yaml"))


def test_duplicate_rule_names_refused() -> None:
    with pytest.raises(MonitorConfigError, match="unique"):
        parse_alerting({"rules": [_rule(), _rule()]})


def test_flag_values_are_canonical_at_load() -> None:
    r = parse_alerting(
        {
            "rules": [
                _rule(
                    actions=[
                        {"flag": "threshold", "value": "0.35"},
                        {"flag": "model", "value": "FALLBACK"},
                    ]
                )
            ]
        }
    )
    values = [a.value for a in r.rules[0].actions if isinstance(a, FlagAction)]
    assert values == [0.35, "fallback"]


def test_calendar_holidays_in_a_time_zone_and_exclusions() -> None:
    cfg = parse_alerting(
        {
            "calendar": {
                "timezone": "Europe/Paris",
                "holidays": ["2026-12-25"],
                "exclude": [
                    {"from": "2026-03-01T00:00", "to": "2026-03-02T00:00", "reason": "campaign"}
                ],
            }
        }
    )
    cal = cfg.calendar
    # Christmas in Paris starts at 23:00 UTC the day before.
    assert cal.overlaps(
        datetime(2026, 12, 24, 22, tzinfo=UTC), datetime(2026, 12, 24, 23, 30, tzinfo=UTC)
    )
    assert (
        cal.overlaps(datetime(2026, 12, 24, 18, tzinfo=UTC), datetime(2026, 12, 24, 23, tzinfo=UTC))
        is None
    )
    assert (
        cal.overlaps(datetime(2026, 3, 1, 6, tzinfo=UTC), datetime(2026, 3, 1, 12, tzinfo=UTC))
        == "campaign"
    )
    with pytest.raises(MonitorConfigError, match=r"calendar\.timezone"):
        parse_alerting({"calendar": {"timezone": "Mars/Olympus"}})


def test_loader_hands_alerting_keys_to_the_parser(tmp_path: Path) -> None:
    from tabguard.monitoring import load_monitor_config

    path = tmp_path / "monitor.yaml"
    path.write_text(SEED_RULE, encoding="utf-8")
    cfg = load_monitor_config(path)
    assert cfg.alerting.rule("denial_rate_drop").change == pytest.approx(0.2)
    path.write_text(SEED_RULE.replace("decision_rate", "decision_rat"), encoding="utf-8")
    with pytest.raises(MonitorConfigError, match=r"rules\[denial_rate_drop\]\.metric"):
        load_monitor_config(path)


def test_window_must_be_whole_buckets() -> None:
    from tabguard.monitoring import Alerting
    from tests.monitoring._fake_store import FakeStore

    cfg = parse_alerting({"rules": [_rule(window="90m")]})
    with pytest.raises(MonitorConfigError, match=r"rules\[r\]\.window: must be a multiple of"):
        Alerting(FakeStore(), cfg)


@pytest.mark.parametrize(
    ("evaluation", "key", "text"),
    [
        ({"alpha": 0}, "evaluation.alpha", "must be in (0, 1)"),
        ({"min_volume": 0.5}, "evaluation.min_volume", "must be int"),
        ({"alfa": 0.01}, "evaluation.alfa", "unknown option"),
    ],
)
def test_evaluation_options_errors(evaluation: dict[str, Any], key: str, text: str) -> None:
    with pytest.raises(MonitorConfigError) as exc:
        parse_alerting({"evaluation": evaluation}, Path("monitor.yaml"))
    assert str(exc.value).startswith(f"monitor.yaml: {key}: ") and text in str(exc.value)


def test_every_evaluation_option_has_a_reason() -> None:
    from tabguard.checks import describe_options

    docs = describe_options(EvaluationOptions)
    assert {d.name for d in docs} == {
        "alpha", "min_volume", "extra_weeks", "dispersion_prior_df", "sequential_hours"
    }  # fmt: skip
    assert all(len(d.reason) > 40 and d.rule for d in docs)


def test_guide_shows_the_evaluation_options_as_declared() -> None:
    from tabguard.checks._options import refresh_option_tables

    guide = Path(__file__).resolve().parents[2] / "docs" / "monitoring.md"
    text = guide.read_text(encoding="utf-8")
    assert "<!-- options:monitor_evaluation -->" in text
    fresh = refresh_option_tables(text, {"monitor_evaluation": EvaluationOptions})
    assert fresh == text, "docs/monitoring.md: the evaluation options table is stale"
