"""Monitoring fixtures: one store fixture parametrised over every backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tabguard.monitoring import SqlMonitorStore, open_monitor_store

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
def dashboard_sim(tmp_path_factory: pytest.TempPathFactory) -> object:
    """Four simulated weeks with an attack, built once per session (dashboard tests)."""
    from tests.monitoring._dashboard_sim import build

    return build(tmp_path_factory.mktemp("dashboard-sim"))
