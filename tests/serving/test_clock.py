"""The request clock: injected through the Python API only; nothing a client sends moves it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tabguard.redteam import SimulatedClock
from tabguard.serving import ConfigError, ScoringService, load_config, service_settings
from tabguard.training import ModelBundle
from tests.serving.conftest import body_of, write_config

SIM = datetime(2020, 3, 2, 9, 30, tzinfo=UTC)


def test_service_clock_sets_log_timestamp_and_release_time(
    harness_factory: Any, sample_records: list[dict[str, Any]]
) -> None:
    clock = SimulatedClock(SIM)
    h = harness_factory(clock=clock)
    h.set_flag("delay", 3600)
    r = h.post(body_of(sample_records[0]))
    assert r.status_code == 202
    assert r.json()["available_at"] == (SIM + timedelta(hours=1)).isoformat()
    clock.set(SIM + timedelta(hours=2))
    h.post(body_of(sample_records[1], subject="cust-2"))
    df = h.records().sort_values("timestamp")
    assert [t.to_pydatetime() for t in df["timestamp"]] == [SIM, SIM + timedelta(hours=2)]
    # Reading the delayed decision back compares with the service clock, not the wall clock.
    first = df["decision_id"].iloc[0]
    got = h.client.get(f"/v1/decisions/{first}", headers={"Authorization": f"Bearer {h.key}"})
    assert got.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Date": "Wed, 01 Jan 2031 00:00:00 GMT"},
        {"X-Tabguard-Time": "2031-01-01T00:00:00Z"},
        {"X-Simulated-Time": "2031-01-01T00:00:00Z", "X-Clock": "2031-01-01"},
    ],
)
def test_no_header_moves_the_clock(
    harness_factory: Any, sample_records: list[dict[str, Any]], headers: dict[str, str]
) -> None:
    h = harness_factory(clock=SimulatedClock(SIM))
    r = h.post(body_of(sample_records[0]), headers=headers)
    assert r.status_code == 200
    assert h.records()["timestamp"].iloc[0].to_pydatetime() == SIM


def test_no_body_field_moves_the_clock(
    harness_factory: Any, sample_records: list[dict[str, Any]]
) -> None:
    h = harness_factory(clock=SimulatedClock(SIM))
    for field in ("timestamp", "time", "clock", "now"):
        r = h.post({**body_of(sample_records[0]), field: "2031-01-01T00:00:00Z"})
        assert r.status_code == 422  # an unknown field of the body, refused and logged
    segment = {"channel": "online", "timestamp": "2031-01-01T00:00:00Z"}
    assert h.post(body_of(sample_records[0], segment=segment)).status_code == 200
    stamps = {t.to_pydatetime() for t in h.records()["timestamp"]}
    assert stamps == {SIM}


def test_default_clock_is_real_time_whatever_the_request_says(
    harness_factory: Any, sample_records: list[dict[str, Any]]
) -> None:
    h = harness_factory()
    before = datetime.now(UTC)
    h.post({**body_of(sample_records[0])}, headers={"Date": "Wed, 01 Jan 2031 00:00:00 GMT"})
    stamp = h.records()["timestamp"].iloc[0].to_pydatetime()
    assert before <= stamp <= datetime.now(UTC)


@pytest.mark.parametrize("section", ["server", "decisions"])
def test_no_configuration_key_sets_a_clock(tmp_path: Path, section: str) -> None:
    write_config(tmp_path, f'[{section}]\nclock = "2031-01-01T00:00:00Z"\n')
    with pytest.raises(ConfigError, match="clock"):
        service_settings(load_config(tmp_path))


def test_service_default_clock_is_the_system_clock(tmp_path: Path, bundle: ModelBundle) -> None:
    from tabguard.serving import system_clock

    write_config(tmp_path)
    assert ScoringService(bundle, load_config(tmp_path)).clock is system_clock
