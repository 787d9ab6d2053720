"""The alerting pass in the live loops: monitor run's hook, serve's in-process loop, the CLI."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tabguard.cli import app
from tabguard.flags import MemoryFlagStore
from tabguard.monitoring import Alerting, load_monitor_config, open_monitor_store
from tabguard.monitoring._live import evaluate
from tabguard.training import ModelBundle
from tests.monitoring.test_alerts import ONSET, _config, _store
from tests.serving.conftest import write_config

RULES = """
store: sqlite:///{db}
log: sqlite:///{log}
rules:
  - name: drop
    metric: decision_rate
    decision: deny
    window: 6h
    baseline: {{weeks_ago: 1}}
    direction: below
    change: 20%
    segments: [channel]
    actions: [log]
"""


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    write_config(home, '[stores]\nflags = "memory://"\n')
    text = RULES.format(db=tmp_path / "mon.db", log=tmp_path / "log.db")
    (home / "monitor.yaml").write_text(text, encoding="utf-8")
    return home


def _fill_alerts(tmp_path: Path) -> int:
    """Buckets with a drop in the real monitor store, and the alert it opens."""
    store = open_monitor_store(f"sqlite:///{tmp_path / 'mon.db'}")
    fake = _store(f"sqlite:///{tmp_path / 'mon.db'}")
    # The fake computes the frames; the alerts go to the real store's database.
    fake.engine = store.engine
    alerting = Alerting(fake, _config(actions=["log"]))
    ids = [a.id for h in range(1, 8) for a in alerting.step(ONSET + timedelta(hours=h)).opened]
    store.close()
    return ids[0]


def test_alerts_list_ack_and_json(tmp_path: Path) -> None:
    home = _home(tmp_path)
    alert_id = _fill_alerts(tmp_path)
    run = CliRunner().invoke
    res = run(app, ["monitor", "alerts", "--home", str(home)])
    assert res.exit_code == 0, res.output
    assert "channel=online" in res.output and "open" in res.output
    res = run(app, ["monitor", "alerts", "--home", str(home), "ack", str(alert_id), "--by", "ann"])
    assert res.exit_code == 0, res.output
    assert f"alert {alert_id}" in res.output and "acknowledged by ann" in res.output
    res = run(app, ["monitor", "alerts", "--home", str(home), "--state", "all", "--json"])
    assert '"state": "acknowledged"' in res.output and '"acknowledged_by": "ann"' in res.output


def test_alerts_bad_input_exit_2(tmp_path: Path) -> None:
    from tabguard.cli import main

    home = _home(tmp_path)
    _fill_alerts(tmp_path)
    for argv in (
        ["monitor", "alerts", "--home", str(home), "ack", "999", "--by", "ann"],
        ["monitor", "alerts", "--home", str(home), "--state", "opn"],
        ["monitor", "replay", "--home", str(home), "--from", "yesterday", "--to", "2026-01-01"],
    ):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2, argv


def test_replay_cli_lists_alerts_with_times(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tabguard.monitoring._alerting as alerting_mod

    home = _home(tmp_path)
    fake = _store("memory://")
    real_open = open_monitor_store

    class Wrapped:
        """The real store's database for alerts, the fake's buckets for the metrics."""

        def __init__(self, url: str, **kw: Any) -> None:
            self.real = real_open(url, **kw)
            self.engine, self.bucket = self.real.engine, fake.bucket

        def __getattr__(self, name: str) -> Any:
            return getattr(fake, name)

        def __enter__(self) -> Wrapped:
            return self

        def __exit__(self, *exc: object) -> None:
            self.real.close()

    monkeypatch.setattr("tabguard.monitoring.open_monitor_store", Wrapped)
    assert alerting_mod.replay is not None
    t1 = (ONSET - timedelta(days=1)).isoformat()
    t2 = (ONSET + timedelta(days=1)).isoformat()
    res = CliRunner().invoke(
        app, ["monitor", "replay", "--home", str(home), "--from", t1, "--to", t2]
    )
    assert res.exit_code == 0, res.output
    assert "1 alert" in res.output and "channel=online" in res.output
    assert "dry run" in res.output
    opened = (ONSET + timedelta(hours=6)).strftime("%Y-%m-%d")
    assert opened in res.output


def test_evaluate_hook_takes_the_updater_lock(tmp_path: Path) -> None:
    home = _home(tmp_path)
    cfg = load_monitor_config(home / "monitor.yaml", home=home)
    store = open_monitor_store(f"sqlite:///{tmp_path / 'mon.db'}")
    try:
        with store.updater_lock():
            assert evaluate(cfg, store, ONSET) is None  # another process is at it
        result = evaluate(cfg, store, ONSET)
        assert result is not None and result.events == []
    finally:
        store.close()


def test_no_rules_no_pass(tmp_path: Path) -> None:
    home = _home(tmp_path)
    (home / "monitor.yaml").write_text(f"store: sqlite:///{tmp_path / 'm.db'}\n", encoding="utf-8")
    cfg = load_monitor_config(home / "monitor.yaml", home=home)
    with open_monitor_store(cfg.store_url()) as store:
        assert evaluate(cfg, store, ONSET) is None


# ---- tabguard serve's in-process loop ------------------------------------------------------


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> ModelBundle:
    from tabguard.contract import TransformOptions
    from tabguard.datasets import load_credit_default
    from tabguard.training import load_model
    from tests.serving.conftest import model_dir_of

    df = load_credit_default().sample(2000, random_state=0).reset_index(drop=True)
    return load_model(model_dir_of("lightgbm", tmp_path_factory, df, TransformOptions()))


def _service(home: Path, bundle: ModelBundle, toml: str) -> Any:
    from tabguard.serving import MemoryKeyStore, ScoringService, load_config

    write_config(home, toml + '\n[stores]\nflags = "memory://"\nkeys = "memory://"\n')
    return ScoringService(bundle, load_config(home), key_store=MemoryKeyStore(),
                          flag_store=MemoryFlagStore())  # fmt: skip


def test_serve_loop_is_off_by_default(tmp_path: Path, bundle: ModelBundle) -> None:
    service = _service(tmp_path / "h", bundle, "")

    async def go() -> Any:
        await service.astart()
        task = service._monitor
        await service.aclose()
        return task

    assert asyncio.run(go()) is None


def test_serve_loop_runs_turns_and_survives_failures(
    tmp_path: Path, bundle: ModelBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "h"
    service = _service(home, bundle, '[server]\nmonitor = "monitor.yaml"\nmonitor_every = 5\n')
    (home / "monitor.yaml").write_text(RULES.format(db=tmp_path / "m.db", log=tmp_path / "l.db"))
    turns: list[Any] = []

    def fake_run_once(config: Any) -> None:
        turns.append(config)
        if len(turns) == 2:
            raise RuntimeError("database down")

    monkeypatch.setattr("tabguard.monitoring._loop.run_once", fake_run_once)
    waits: list[float] = []

    async def no_wait(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) > 3:
            raise asyncio.CancelledError
        await asyncio.sleep(0)

    async def go() -> None:
        service._sleep = no_wait
        await service.astart()
        assert service._monitor is not None
        with pytest.raises(asyncio.CancelledError):
            await service._monitor
        await service.aclose()

    asyncio.run(go())
    assert len(turns) == 3 and waits == [5.0] * 4  # the failed second turn did not stop it
    assert turns[0].alerting.rules[0].name == "drop"


def test_serve_loop_with_a_bad_monitor_file_stays_off(
    tmp_path: Path, bundle: ModelBundle, caplog: pytest.LogCaptureFixture
) -> None:
    home = tmp_path / "h"
    service = _service(home, bundle, '[server]\nmonitor = "monitor.yaml"\n')
    (home / "monitor.yaml").write_text("rules: [{name: x, metric: nope}]\n")

    async def go() -> None:
        await service.astart()
        assert service._monitor is not None
        await service._monitor  # returns at once: the file is refused
        await service.aclose()

    asyncio.run(go())
    assert "in-process monitor off" in caplog.text and "rules[x].metric" in caplog.text


def test_monitor_run_prints_alert_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    import tabguard.monitoring._loop as loop
    from tabguard.monitoring import AlertStore

    home = _home(tmp_path)
    alert_id = _fill_alerts(tmp_path)
    with open_monitor_store(f"sqlite:///{tmp_path / 'mon.db'}") as store:
        alert = AlertStore.of(store).get(alert_id)
    update = SimpleNamespace(busy=True)
    event = SimpleNamespace(alert=alert, kind="opened")

    def fake_forever(config: Any, every: Any, **kw: Any) -> int:
        kw["on_result"](loop.RunResult(update, SimpleNamespace(events=[event]), ONSET))  # type: ignore[arg-type]
        return 0

    monkeypatch.setattr(loop, "run_forever", fake_forever)
    res = CliRunner().invoke(app, ["monitor", "run", "--home", str(home), "--iterations", "1"])
    assert res.exit_code == 0, res.output
    assert f"alert #{alert_id} opened: [drop] channel=online" in res.output


def test_bad_rule_file_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tabguard.cli import main

    home = _home(tmp_path)
    path = home / "monitor.yaml"
    path.write_text(path.read_text().replace("decision_rate", "denial_rate"), encoding="utf-8")
    for argv in (["monitor", "alerts"], ["monitor", "replay", "--from", "2026-01-01",
                                          "--to", "2026-01-02"]):  # fmt: skip
        with pytest.raises(SystemExit) as exc:
            main([*argv, "--home", str(home)])
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1
        assert "rules[drop].metric" in err and "'denial_rate'" in err


def test_a_live_pass_reading_its_span_at_once_evaluates_as_window_by_window(
    tmp_path: Path,
) -> None:
    """The live pass's one query per span (``prefetch``) gives the evaluations, to the last
    float, that one query per window gives: CUSUM, dispersion, baselines, every metric read
    from counters, around an attack and after late rows fold into past buckets."""
    import numpy as np

    from tabguard.monitoring import ALL, Delta
    from tabguard.monitoring._alerts import AlertStore
    from tabguard.monitoring._rules_config import parse_alerting
    from tabguard.monitoring._store import F_GUARD, F_STATUS_DECISION, bucket_key
    from tabguard.storage import create_sql_engine

    store = open_monitor_store(f"sqlite:///{tmp_path / 'mon.db'}")
    rng = np.random.default_rng(8)
    hour = timedelta(hours=1)
    start = ONSET - timedelta(weeks=4)

    def fill(first: int, hours: int, seq: Any) -> None:
        d = Delta()
        for h in range(first, first + hours):
            at = start + h * hour
            b = bucket_key(at, hour)
            for channel, n, deny in (("online", 60, 0.2), ("partner", 40, 0.3)):
                rate = deny * (0.2 if at >= ONSET and channel == "partner" else 1.0)
                k = int(rng.binomial(n, rate))
                for seg in (ALL, ("channel", channel)):
                    d.count((b, *seg, F_STATUS_DECISION, "accepted|deny"), k)
                    d.count((b, *seg, F_STATUS_DECISION, "accepted|approve"), n - k)
                    d.count((b, *seg, F_GUARD, "sanitise|clip|AGE"), int(rng.integers(0, 5)))
        store.merge(d, watermark=seq, expected=store.watermark())

    fill(0, 4 * 7 * 24 + 12, 1)
    rule = {"window": "6h", "direction": "below", "segments": ["all", "channel"]}
    config = parse_alerting(
        {
            "rules": [
                {"name": "deny", "metric": "decision_rate", "decision": "deny", "change": "20%",
                 "baseline": {"median_of_weeks": 3}, **rule},
                {"name": "clip", "metric": "guard_action_rate", "action": "clip",
                 "change": "30%", "baseline": {"weeks_ago": 1}, **rule},
                {"name": "volume", "metric": "volume", "change": "50%",
                 "baseline": {"weeks_ago": 2}, **rule},
            ],
            # 12 CUSUM hours: the window-by-window passes compared against cost ~1 s each.
            "evaluation": {"sequential_hours": 12},
        }
    )  # fmt: skip

    def passes(prefetch: bool) -> list[Any]:
        alerts = AlertStore(create_sql_engine("memory://"), "scratch")
        alerting = Alerting(store, config, alerts=alerts, prefetch=prefetch)
        return [alerting.step(ONSET + h * hour).evaluations for h in (7,)]

    before = passes(False)
    assert any(e.fired for step in before for e in step)
    assert any(e.cusum for step in before for e in step)
    assert passes(True) == before
    fill(4 * 7 * 24, 6, 2)  # late rows into buckets the windows already covered
    late = passes(False)
    assert late != before and passes(True) == late
    store.close()
