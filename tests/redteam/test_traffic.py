"""The traffic simulator: seasonality, segments, a holiday, an attack, through the real service."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from tabguard.cli import app
from tabguard.contract import TransformOptions
from tabguard.datasets import load_credit_default
from tabguard.flags import MemoryFlagStore
from tabguard.redteam import (
    AttackSpec,
    SimulatedClock,
    TrafficError,
    TrafficOptions,
    TrafficResult,
    attack_value,
    simulate_traffic,
)
from tabguard.serving import PredictionLog, ScoringService, load_config
from tabguard.timeutil import format_duration, parse_duration, parse_time
from tabguard.training import ModelBundle, load_model
from tests.serving.conftest import model_dir_of, write_config

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
ONSET = timedelta(days=24, hours=10)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> ModelBundle:
    df = load_credit_default().sample(2000, random_state=0).reset_index(drop=True)
    return load_model(model_dir_of("lightgbm", tmp_path_factory, df, TransformOptions()))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, model: ModelBundle) -> dict[str, Any]:
    """28 simulated days, ~5k requests, the monitor hook recording what the log holds."""
    home = tmp_path_factory.mktemp("traffic-home")
    write_config(home, "[log]\nflush_interval = 0.05\n")
    config = load_config(home)
    flags = MemoryFlagStore()
    log = PredictionLog.from_config(config)
    seen: list[tuple[datetime, int]] = []

    def on_step(at: datetime, service: ScoringService) -> None:
        seen.append((at, service.log.count()))
        if at == START + ONSET + timedelta(hours=3):
            flags.set("neutralize", ["PAY_AMT1"], actor="monitor:test")

    options = TrafficOptions(
        start=START,
        days=28,
        per_day=250,
        holidays=(date(2026, 1, 15),),
        attack=AttackSpec(onset=ONSET, segment="partner", feature="PAY_AMT1", share=0.8),
        seed=3,
    )
    result = simulate_traffic(
        model, config, options, flag_store=flags, prediction_log=log, on_step=on_step
    )
    records = log.query()
    log.close()
    return {"result": result, "records": records, "seen": seen, "flags": flags}


def test_every_request_went_through_the_service_and_its_log(run: dict[str, Any]) -> None:
    result: TrafficResult = run["result"]
    df, records = result.requests, run["records"]
    assert len(df) > 4000
    assert set(df["decision_id"]) == set(records["decision_id"])
    assert (df["status"] == "accepted").all()
    logged = records.set_index("decision_id")["timestamp"]
    times = pd.to_datetime(df.set_index("decision_id")["time"], utc=True)
    assert (logged.loc[times.index] == times).all()  # the log holds the simulated times
    assert df["time"].is_monotonic_increasing
    assert df["time"].min() >= START and df["time"].max() < START + timedelta(days=28)
    segments = records["segment"].map(lambda s: s["channel"])
    assert segments.value_counts().index.tolist() == ["online", "branch", "partner"]


def test_daily_weekly_and_holiday_patterns(run: dict[str, Any]) -> None:
    df = run["result"].requests
    t = pd.to_datetime(df["time"])
    night = (t.dt.hour < 6).sum() / 6
    day = ((t.dt.hour >= 9) & (t.dt.hour < 18)).sum() / 9
    assert night < day / 3
    branch = df["channel"] == "branch"
    weekday = t.dt.day_of_week < 5
    holiday = t.dt.date == date(2026, 1, 15)
    per_weekday = (branch & weekday & ~holiday).sum() / 19
    per_weekend = (branch & ~weekday).sum() / 8
    assert per_weekend < per_weekday / 2
    assert holiday.sum() < 0.5 * (weekday & ~holiday).sum() / 19
    # Riskier applicants at night: the denial rate has a daily pattern too.
    decided = df[df["decision"].notna()]
    tt = pd.to_datetime(decided["time"])
    deny = decided["decision"] == "deny"
    assert deny[tt.dt.hour < 6].mean() > deny[(tt.dt.hour >= 9) & (tt.dt.hour < 18)].mean()


def test_attack_only_in_its_segment_after_onset_and_it_lowers_denials(
    run: dict[str, Any],
) -> None:
    result: TrafficResult = run["result"]
    df, truth = result.requests, result.truth
    onset = START + ONSET
    assert truth["onset"] == onset.isoformat()
    assert truth["segment"] == {"channel": "partner"} and truth["feature"] == "PAY_AMT1"
    attacked = df[df["attacked"]]
    assert len(attacked) == truth["attacked_requests"] > 0
    assert (attacked["channel"] == "partner").all() and (attacked["time"] >= onset).all()
    raw = run["records"].set_index("decision_id")["raw"]
    values = {raw[i]["PAY_AMT1"] for i in attacked["decision_id"]}
    assert truth["value"].startswith("per applicant") and len(values) > 1
    flag_on = onset + timedelta(hours=3)
    before, _ = result.denial_rate(onset - timedelta(days=7), onset, "partner")
    during, n = result.denial_rate(onset, flag_on, "partner", attacked_only=True)
    assert n > 0 and during < before
    # Neutralising the feature (set by the hook at onset + 3 h) takes the effect away.
    after, m = result.denial_rate(
        flag_on, flag_on + timedelta(days=3), "partner", attacked_only=True
    )
    assert m > 20 and after > during


def test_hook_runs_every_simulated_hour_on_a_flushed_log(run: dict[str, Any]) -> None:
    result: TrafficResult = run["result"]
    seen = run["seen"]
    assert [at for at, _ in seen] == [START + timedelta(hours=h) for h in range(1, 28 * 24 + 1)]
    times = result.requests["time"]
    for at, count in seen[::50]:
        assert count == int((times < at).sum())


def test_flag_set_by_the_hook_is_in_force_from_the_next_request(run: dict[str, Any]) -> None:
    df = run["result"].requests
    flag_on = START + ONSET + timedelta(hours=3)
    assert df.loc[df["time"] < flag_on, "flags_version"].max() == 0
    assert (df.loc[df["time"] >= flag_on, "flags_version"] == 1).all()
    actions = run["records"].set_index("decision_id")["guard_actions"]
    later = df.loc[(df["time"] >= flag_on), "decision_id"]
    assert all(any(a["action"] == "neutralize" for a in actions[i]) for i in later[:50])


def test_same_seed_same_traffic(tmp_path: Path, model: ModelBundle) -> None:
    write_config(tmp_path)
    opts = TrafficOptions(days=28, per_day=20, seed=5, attack=None)
    a = simulate_traffic(model, load_config(tmp_path), opts, flag_store=MemoryFlagStore())
    b = simulate_traffic(model, load_config(tmp_path), opts, flag_store=MemoryFlagStore())
    cols = ["time", "channel", "decision", "score"]
    pd.testing.assert_frame_equal(a.requests[cols], b.requests[cols])
    assert a.truth["onset"] is None and a.truth["attacked_requests"] == 0


def test_best_values_are_each_applicants_best(model: ModelBundle) -> None:
    from tabguard.redteam._traffic import _candidates, best_values

    pop = load_credit_default().sample(200, random_state=2).reset_index(drop=True)
    best = best_values(model, pop, "PAY_AMT1")
    chosen = pop.assign(PAY_AMT1=best)
    s_best = model.main.positive_proba(chosen)
    assert (s_best <= model.main.positive_proba(pop) + 1e-12).all()
    for v in _candidates(model.contract, pop, "PAY_AMT1"):
        assert (s_best <= model.main.positive_proba(pop.assign(PAY_AMT1=v)) + 1e-12).all()


def test_attack_value_lowers_scores_most(model: ModelBundle) -> None:
    pop = load_credit_default().sample(300, random_state=1)
    best = attack_value(model, pop, "PAY_AMT1", sample=300)
    mean = {}
    for v in (0, 1000, best, 5000):
        trial = pop.copy()
        trial["PAY_AMT1"] = v
        mean[v] = float(np.mean(model.main.positive_proba(trial)))
    assert mean[best] == min(mean.values())


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"days": 10}, "days"),
        ({"per_day": 0}, "per_day"),
        ({"start": datetime(2026, 1, 5)}, "start"),
        ({"hourly": (1.0,) * 23}, "hourly"),
        ({"attack": AttackSpec(timedelta(days=2), "nowhere", "AGE")}, "attack.segment"),
        ({"attack": AttackSpec(timedelta(days=99), "online", "AGE")}, "attack.onset"),
        ({"attack": AttackSpec(timedelta(days=2), "online", "AGE", share=0)}, "attack.share"),
    ],
)
def test_options_are_validated(kwargs: dict[str, Any], option: str) -> None:
    with pytest.raises(TrafficError, match=f"traffic option '{option}'"):
        TrafficOptions(**kwargs)


def test_simulated_clock_never_goes_back() -> None:
    clock = SimulatedClock(START)
    clock.set(START + timedelta(hours=1))
    assert clock() == START + timedelta(hours=1)
    with pytest.raises(ValueError, match="cannot go back"):
        clock.set(START)


@given(st.integers(min_value=0, max_value=10**8))
def test_format_duration_round_trips(seconds: int) -> None:
    d = timedelta(seconds=seconds)
    assert parse_duration(format_duration(d)) == d


@pytest.mark.parametrize(
    ("text", "expected"),
    [("6h", timedelta(hours=6)), ("1w", timedelta(weeks=1)), ("1d12h", timedelta(days=1.5)),
     ("90m", timedelta(minutes=90)), (60, timedelta(seconds=60)), ("2.5h", timedelta(hours=2.5))],
)  # fmt: skip
def test_parse_duration(text: Any, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "6", "h", "6x", "-1h", True, -5, "6h30"])
def test_parse_duration_errors_name_the_rule(text: Any) -> None:
    with pytest.raises(ValueError, match="must be a duration"):
        parse_duration(text)


def test_parse_time_defaults_to_utc() -> None:
    assert parse_time("2026-02-11T11:00") == datetime(2026, 2, 11, 11, tzinfo=UTC)
    assert parse_time("2026-02-11T12:00+01:00") == datetime(2026, 2, 11, 11, tzinfo=UTC)
    with pytest.raises(ValueError, match="ISO time"):
        parse_time("yesterday")


def test_cli_writes_log_and_truth(tmp_path: Path, model: ModelBundle) -> None:
    home = tmp_path / "home"
    write_config(home, '[stores]\nflags = "memory://"\nkeys = "memory://"\n')
    assert model.path is not None
    res = CliRunner().invoke(
        app,
        ["redteam", "traffic", str(model.path), "--home", str(home), "--days", "28",
         "--per-day", "15", "--onset", "20d", "--attack-segment", "online", "--seed", "2"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    truth = json.loads((home / "traffic.truth.json").read_text())
    assert truth["segment"] == {"channel": "online"} and truth["feature"] == "PAY_AMT1"
    assert truth["onset"] == "2026-01-25T00:00:00+00:00"
    log = PredictionLog.from_config(load_config(home))
    try:
        assert log.count() == truth["requests"] > 0
    finally:
        log.close()
    assert "ground truth in" in res.output


def test_cli_bad_option_is_one_line_exit_2(tmp_path: Path, model: ModelBundle) -> None:
    from tabguard.cli import main

    write_config(tmp_path)
    assert model.path is not None
    with pytest.raises(SystemExit) as exc:
        main(["redteam", "traffic", str(model.path), "--home", str(tmp_path), "--onset", "soon"])
    assert exc.value.code == 2


def test_cli_runs_the_monitor_in_the_loop(tmp_path: Path, model: ModelBundle) -> None:
    from tabguard.monitoring import open_monitor_store

    home = tmp_path / "home"
    write_config(home, '[stores]\nflags = "memory://"\nkeys = "memory://"\n')
    (home / "monitor.yaml").write_text(
        "aggregation: {segments: {request_keys: [channel], features: []},"
        " columns: {raw: [AGE], features: [AGE]}}\n"
        "rules: [{name: drop, metric: decision_rate, decision: deny, window: 6h,"
        " baseline: last_week, direction: below, change: 20%, segments: [channel]}]\n",
        encoding="utf-8",
    )
    assert model.path is not None
    res = CliRunner().invoke(
        app,
        ["redteam", "traffic", str(model.path), "--home", str(home), "--days", "28",
         "--per-day", "10", "--no-attack", "--monitor", str(home / "monitor.yaml")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "alert #" not in res.output  # ten requests a day: nothing can page
    store = open_monitor_store(f"sqlite:///{home / 'monitoring.db'}")
    try:
        volume = store.volume(START, START + timedelta(days=28))
        assert int(volume.loc[volume["segment_key"] == "all", "n"].sum()) > 150
    finally:
        store.close()
