"""Monitoring fixtures: one store fixture parametrised over every backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tabguard.monitoring import SqlMonitorStore, open_monitor_store


def seed_rule(**overrides: Any) -> dict[str, Any]:
    """The seed's rule as a ``rules:`` item — the denial rate of the last 6 h more than 20 %
    below the same 6 h last week, per channel — with ``overrides`` (``None`` drops a key)."""
    rule: dict[str, Any] = {
        "name": "drop",
        "metric": "decision_rate",
        "decision": "deny",
        "window": "6h",
        "baseline": {"weeks_ago": 1},
        "direction": "below",
        "change": "20%",
        "segments": ["channel"],
    }
    rule.update(overrides)
    return {k: v for k, v in rule.items() if v is not None}


def unseen_applicants() -> pd.DataFrame:
    """The 10,000 rows of the bundled data ``vulnerable_model`` was not fitted on: applicants
    it never saw (on its own training rows the overfit model is too sure to be gamed much),
    and a third of the up-front search for each applicant's best value."""
    from tabguard.datasets import load_credit_default

    df = load_credit_default()
    return df.drop(df.sample(20000, random_state=0).index).reset_index(drop=True)


BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh monitor-store URL on one backend."""
    kind = request.param
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'monitoring.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[SqlMonitorStore]:
    """An empty store with 1 h buckets."""
    s = open_monitor_store(store_url)
    yield s
    s.close()


@pytest.fixture(scope="session")
def dashboard_sim(tmp_path_factory: pytest.TempPathFactory, vulnerable_model_dir: Path) -> object:
    """Four simulated weeks with an attack, built once per session: the monitoring proof
    (``test_attack_e2e.py``) and the dashboard tests read the same month."""
    from tests.monitoring._dashboard_sim import build

    return build(tmp_path_factory.mktemp("dashboard-sim"), model=vulnerable_model_dir)
