"""The Grafana dashboard of docs/grafana: its queries name metrics the service exports, parse as
PromQL (promtool) and compute what their titles say (promtool on counters with known rates)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tabguard.serving._metrics import ServiceMetrics
from tests.conftest import require_system

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docs" / "grafana" / "tabguard-dashboard.json"
PROMTOOL = "/usr/bin/promtool"
#: Grafana variables as a user would pick them.
VARIABLES = {
    "$segment_key": "channel",
    "$segment_value": ".+",
    "$decision": "deny",
    "$window": "1h",
    "$__rate_interval": "5m",
}


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def expressions() -> list[tuple[str, str]]:
    """``(panel title, PromQL with the variables substituted)`` of every query."""
    out = []
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name in sorted(VARIABLES, key=len, reverse=True):
                expr = expr.replace(name, VARIABLES[name])
            out.append((panel["title"], expr))
    for ann in dashboard()["annotations"]["list"]:
        out.append((ann["name"], ann["expr"]))
    return out


def exported_families() -> set[str]:
    """Metric family names of the scoring service's registry."""
    return {m.name for m in ServiceMetrics().registry.collect()}


def test_queries_name_only_metrics_the_service_exports() -> None:
    families = exported_families()
    suffix = re.compile(r"_(total|bucket|sum|count)$")
    used = set()
    for _, expr in expressions():
        for name in re.findall(r"\b(tabguard_[a-z_]+)", expr):
            used.add(name)
            assert suffix.sub("", name) in families, (name, sorted(families))
    assert {"tabguard_decisions_total", "tabguard_score_bucket"} <= used
    assert all("$" not in e for _, e in expressions())  # every variable is declared
    declared = {v["name"] for v in dashboard()["templating"]["list"]}
    assert {"segment_key", "segment_value", "decision", "window"} <= declared


def test_seasonal_baseline_and_annotations_are_there() -> None:
    rates = next(p for p in dashboard()["panels"] if p["title"] == "Decision rates")
    exprs = [t["expr"] for t in rates["targets"]]
    assert sum("offset 1w" in e for e in exprs) == 1
    assert rates["fieldConfig"]["overrides"][0]["properties"][0]["value"]["fill"] == "dash"
    names = {a["name"] for a in dashboard()["annotations"]["list"]}
    assert names == {"tabguard alerts", "flag changes"}


@pytest.fixture
def promtool() -> str:
    require_system(PROMTOOL, "prometheus", "promtool checks the Grafana dashboard's queries")
    return PROMTOOL


def test_promtool_parses_every_query(promtool: str, tmp_path: Path) -> None:
    rules = [
        {"record": f"tabguard:grafana_{i}", "expr": expr}
        for i, (_, expr) in enumerate(expressions())
    ]
    path = tmp_path / "grafana.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "grafana", "rules": rules}]}))
    out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(rules)} rules found" in out.stdout


def test_promtool_decision_rate_and_last_week_on_known_counters(
    promtool: str, tmp_path: Path
) -> None:
    rates = next(p for p in dashboard()["panels"] if p["title"] == "Decision rates")
    now, last_week = [e for t, e in expressions() if t == "Decision rates"]  # in panel order
    assert "offset 1w" in last_week and len(rates["targets"]) == 2
    # Partner: 1 denial and 3 approvals a minute for two weeks, then 1 in 8 denied this week.
    minutes = 14 * 24 * 60
    week = 7 * 24 * 60
    deny = [i if i < week else week + (i - week) // 4 for i in range(0, minutes, 5)]
    approve = [3 * i if i < week else 3 * week + (i - week) * 7 // 4 for i in range(0, minutes, 5)]
    seg = 'segment_key="channel",segment_value="partner",status="accepted"'
    test = {
        "rule_files": [],
        "evaluation_interval": "5m",
        "tests": [
            {
                "interval": "5m",
                "input_series": [
                    {
                        "series": f'tabguard_decisions_total{{{seg},decision="deny"}}',
                        "values": " ".join(map(str, deny)),
                    },
                    {
                        "series": f'tabguard_decisions_total{{{seg},decision="approve"}}',
                        "values": " ".join(map(str, approve)),
                    },
                ],
                "promql_expr_test": [
                    {
                        "expr": expr,
                        "eval_time": "13d12h",
                        "exp_samples": [
                            {"labels": '{decision="deny", segment_value="partner"}', "value": v}
                        ],
                    }
                    for expr, v in ((now, 0.125), (last_week, 0.25))
                ],
            }
        ],
    }
    path = tmp_path / "test.yml"
    path.write_text(yaml.safe_dump(test, width=10**9))
    out = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
