"""Prometheus: per-segment metrics on /metrics, and the rules generated from monitor.yaml.

The generated rules are checked by promtool (Debian's ``prometheus`` package): ``check rules``
validates them, ``test rules`` runs the seed's rule over four weeks of seasonal counters — the
series with an attack fires on the attacked segment, the same series without it never does.
Without ``/usr/bin/promtool`` these tests skip locally and fail under
``TABGUARD_REQUIRE_SERVICES=1`` (``.ci/run`` installs the package).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tabguard.monitoring import parse_alerting
from tabguard.monitoring._prometheus import prometheus_rules, to_yaml
from tabguard.serving._metrics import SegmentLabels
from tests.conftest import require_system
from tests.monitoring.conftest import seed_rule

PROMTOOL = "/usr/bin/promtool"
SEED_RULE = seed_rule(
    name="denial_rate_drop",
    description="the denial rate of the last 6 h is more than 20 % below the same 6 h last week",
    segments=["all", "channel"],
    severity="critical",
)
MEDIAN_RULE = {**SEED_RULE, "name": "denial_rate_drop_median", "baseline": "median_of_3_weeks"}
STEP_MIN = 15
DAYS = 28
ONSET_MIN = (24 * 24 + 10) * 60  # day 24 (a Friday) at 10:00


def rules_for(*specs: dict[str, Any]) -> Any:
    return prometheus_rules(parse_alerting({"rules": list(specs)}))


# ---- the translation -------------------------------------------------------------------------


def test_seed_rule_reads_as_promql_with_offset_volume_and_test() -> None:
    rules = rules_for(SEED_RULE)
    (alert,) = rules.alerts
    expr = alert["expr"]
    assert alert["alert"] == "denial_rate_drop" and alert["labels"]["severity"] == "critical"
    assert "offset 1w" in expr and "< 0.8 * (" in expr
    assert expr.count(">= 30") == 2  # minimum volume now and last week
    assert 'segment_key=~"all|channel"' in expr and 'decision="deny"' in expr
    assert "sqrt(" in expr and "<= -3.7190" in expr  # z-test at alpha 1e-4, one-sided


def test_median_of_weeks_baseline_uses_quantile_over_offsets() -> None:
    expr = rules_for(MEDIAN_RULE).alerts[0]["expr"]
    assert "quantile by (segment_key, segment_value) (0.5," in expr
    for k in (1, 2, 3):
        assert f"offset {k}w" in expr and f'"week", "{k}"' in expr


def test_rules_prometheus_cannot_see_are_left_out_with_the_reason() -> None:
    rules = rules_for(
        SEED_RULE,
        {"name": "age_drift", "metric": "drift", "column": "AGE", "kind": "raw", "stat": "psi",
         "window": "1d", "threshold": 0.25, "direction": "above"},
        {"name": "age_p99", "metric": "percentile", "column": "AGE", "kind": "raw", "q": 0.99,
         "window": "6h", "baseline": "last_week", "change": "10%"},
        {"name": "latency", "metric": "latency", "q": 0.99, "window": "1h", "threshold": 50,
         "direction": "above", "segments": ["channel"]},
    )  # fmt: skip
    assert [a["alert"] for a in rules.alerts] == ["denial_rate_drop", "latency"]
    skipped = dict(rules.skipped)
    assert "YAML engine" in skipped["age_drift"] and "not on /metrics" in skipped["age_p99"]
    assert "whole traffic" in rules.alerts[1]["annotations"]["note"]
    text = to_yaml(rules)
    assert "# left out: age_drift" in text and yaml.safe_load(text)["groups"][0]["rules"]


def test_segment_labels_are_bounded() -> None:
    labels = SegmentLabels({"EDUCATION": ("1", "2")}, {"channel": ("online", "partner")})
    assert labels.of({"EDUCATION": 2.0}, {"channel": "online"}) == [
        ("all", "all"), ("EDUCATION", "2"), ("channel", "online"),
    ]  # fmt: skip
    seen = {pair for i in range(1000) for pair in labels.of({"EDUCATION": i}, {"channel": f"x{i}"})}
    assert len(seen) <= labels.cardinality() == 9
    assert ("channel", "other") in seen and ("EDUCATION", "other") in seen
    assert labels.of(None, {})[1:] == [("EDUCATION", "(missing)"), ("channel", "(missing)")]


# ---- promtool ---------------------------------------------------------------------------------


def counters(attack: bool, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative deny / approve counts of one segment every 15 min over four weeks.

    Daily seasonality (quiet, riskier nights), weekly seasonality (quieter weekends with another
    denial rate), Poisson noise; with ``attack`` the denial rate halves from the onset.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(DAYS * 24 * 60 // STEP_MIN) * STEP_MIN  # minutes since Monday 00:00
    hour = (t // 60) % 24
    dow = (t // (24 * 60)) % 7
    daily = 0.25 + np.exp(-0.5 * ((hour - 14) / 4.0) ** 2)
    weekly = np.where(dow == 5, 0.6, np.where(dow == 6, 0.5, 1.0))
    volume = 30 * daily * weekly
    deny_share = 0.22 + 0.10 * (daily < 0.5) + 0.05 * (dow >= 5)
    if attack:
        deny_share = np.where(t >= ONSET_MIN, deny_share * 0.5, deny_share)
    n = rng.poisson(volume)
    deny = rng.binomial(n, deny_share)
    return np.cumsum(deny), np.cumsum(n - deny)


def _series(values: np.ndarray) -> str:
    return " ".join(str(int(v)) for v in values)


def _at(minutes: int) -> str:
    return f"{minutes // (24 * 60)}d{(minutes // 60) % 24}h{minutes % 60}m"


def _test_case(attack: bool, evals: list[tuple[int, bool]]) -> dict[str, Any]:
    deny, approve = counters(attack)
    seg = 'segment_key="channel",segment_value="partner",status="accepted"'
    rule = rules_for(SEED_RULE).alerts[0]
    summary = rule["annotations"]["summary"].replace(
        "{{ $labels.segment_key }}={{ $labels.segment_value }}", "channel=partner"
    )
    firing = {
        "exp_labels": {"severity": "critical", "source": "tabguard", "segment_key": "channel",
                       "segment_value": "partner"},
        "exp_annotations": {**rule["annotations"], "summary": summary},
    }  # fmt: skip
    return {
        "name": "attack" if attack else "weekly seasonality only",
        "interval": f"{STEP_MIN}m",
        "input_series": [
            {
                "series": f'tabguard_decisions_total{{{seg},decision="deny"}}',
                "values": _series(deny),
            },
            {
                "series": f'tabguard_decisions_total{{{seg},decision="approve"}}',
                "values": _series(approve),
            },
        ],
        "alert_rule_test": [
            {
                "eval_time": _at(m),
                "alertname": "denial_rate_drop",
                "exp_alerts": [firing] if fires else [],
            }
            for m, fires in evals
        ],
    }


@pytest.fixture
def promtool() -> str:
    require_system(PROMTOOL, "prometheus", "promtool checks the generated alerting rules")
    return PROMTOOL


def test_promtool_checks_the_generated_rules(promtool: str, tmp_path: Path) -> None:
    path = tmp_path / "tabguard.rules.yml"
    path.write_text(to_yaml(rules_for(SEED_RULE, MEDIAN_RULE)), encoding="utf-8")
    out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 2 rules found" in out.stdout


def test_promtool_the_attack_fires_and_weekly_seasonality_alone_does_not(
    promtool: str, tmp_path: Path
) -> None:
    # The seed's rule as the command writes it, evaluated hourly (promtool evaluates every
    # step of four weeks; 15 min would only make the test four times slower).
    rules = rules_for(SEED_RULE).group()
    rules["groups"][0]["interval"] = "1h"
    rules_file = tmp_path / "tabguard.rules.yml"
    rules_file.write_text(yaml.safe_dump(rules, width=10**9), encoding="utf-8")
    # Every hour from the second week on: nights, weekends and Mondays against last week.
    hours = list(range(8 * 24 * 60, DAYS * 24 * 60 - 60, 60))
    before = [(m, False) for m in hours if m < ONSET_MIN]
    test = {
        "rule_files": [str(rules_file)],
        "evaluation_interval": "1h",
        "tests": [
            _test_case(True, [*before, (ONSET_MIN + 6 * 60, True), (ONSET_MIN + 8 * 60, True)]),
            _test_case(False, [(m, False) for m in hours]),
        ],
    }
    path = tmp_path / "test.yml"
    path.write_text(yaml.safe_dump(test, width=10**9), encoding="utf-8")
    out = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout
    # Not vacuous: the clean weeks' expectations fail on the attacked series.
    test["tests"] = [_test_case(True, [(m, False) for m in hours if m >= ONSET_MIN])]
    path.write_text(yaml.safe_dump(test, width=10**9), encoding="utf-8")
    out = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True)
    assert out.returncode != 0 and "denial_rate_drop" in out.stdout + out.stderr


def test_cli_writes_the_rule_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from tabguard.cli import main

    drift = {"name": "age_drift", "metric": "drift", "column": "AGE", "kind": "raw",
             "stat": "psi", "window": "1d", "threshold": 0.25, "direction": "above"}  # fmt: skip
    config = tmp_path / "monitor.yaml"
    config.write_text(yaml.safe_dump({"rules": [SEED_RULE, drift]}), encoding="utf-8")
    out = tmp_path / "rules.yml"
    with pytest.raises(SystemExit) as exc:
        main(["monitor", "prometheus-rules", "--config", str(config), "--home", str(tmp_path),
              "--out", str(out)])  # fmt: skip
    assert exc.value.code == 0
    captured = capsys.readouterr()
    assert "1 alerting rules written" in captured.out and "left out: age_drift" in captured.out
    assert "left out age_drift" in captured.err
    assert yaml.safe_load(out.read_text())["groups"][0]["rules"][0]["alert"] == "denial_rate_drop"
