"""Incremental update from the prediction log: exact counts, idempotence, crashes, late rows,
bad input, segment explosions, a database that is down, PostgreSQL transactions in flight."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tabguard.contract import Contract
from tabguard.errors import BackendUnavailableError
from tabguard.monitoring import (
    ALL,
    FixedClock,
    MonitorConfig,
    SqlMonitorStore,
    open_monitor_store,
    rank_error,
)
from tabguard.monitoring._aggregate import KEYS, Admission, Aggregator, MonitorPlan
from tabguard.monitoring._loop import run_forever, run_once
from tabguard.monitoring._update import LogReader, SourceMismatchError, update
from tabguard.serving import PredictionLog, PredictionRecord
from tabguard.storage import create_sql_engine, predictions_table

T0 = datetime(2026, 2, 2, tzinfo=UTC)
H = timedelta(hours=1)
CHANNELS = ("online", "branch", "partner")


def make_records(
    df: pd.DataFrame, *, start: datetime = T0, step: timedelta = timedelta(minutes=3), seed: int = 0
) -> list[PredictionRecord]:
    """Log records like the service writes them: accepted, denied, refused, clipped."""
    rng = np.random.default_rng(seed)
    out = []
    rows = df.drop(columns=["DEFAULT"], errors="ignore").to_dict("records")
    for i, raw in enumerate(rows):
        channel = CHANNELS[int(rng.choice(3, p=[0.6, 0.3, 0.1]))]
        refused = i % 11 == 0
        score = float(rng.random())
        features = {k: v for k, v in raw.items() if k != "SEX"}
        actions = []
        if raw["AGE"] > 80:
            features["AGE"] = 80
            actions.append(
                {"step": "sanitise", "action": "clip", "field": "AGE", "from": raw["AGE"], "to": 80}
            )
        out.append(
            PredictionRecord(
                timestamp=start + i * step,
                client="bank-a" if i % 2 else "bank-b",
                subject_id=f"s{i}",
                raw={**raw, "AGE": 999} if refused else raw,
                features={} if refused else features,
                guard_actions=actions
                if not refused
                else [{"step": "validate", "action": "reject", "rules": ["max"]}],
                status="rejected_validation" if refused else "accepted",
                decision=None if refused else ("deny" if score > 0.7 else "approve"),
                score=None if refused else score,
                errors=[{"field": "AGE", "rule": "max", "value": 999}] if refused else [],
                segment={"channel": channel},
                probing=["boundary"] if i % 17 == 0 else [],
                latency_ms=float(rng.gamma(2.0, 0.5)),
            )
        )
    return out


def write(url: str, spool: Path, records: list[PredictionRecord]) -> None:
    with PredictionLog(url, spool_dir=spool, batch_size=500) as log:
        for r in records:
            log.append(r)
        assert log.flush()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def urls(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(log URL, store URL) on one backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'predictions.db'}", f"sqlite:///{tmp_path / 'mon.db'}"
    url = str(request.getfixturevalue("postgres_url"))
    return url, url


@pytest.fixture(scope="module")
def small(credit_contract: Contract) -> tuple[pd.DataFrame, MonitorPlan]:
    from tabguard.datasets import load_credit_default

    df = load_credit_default().head(600).reset_index(drop=True)
    cfg = MonitorConfig()
    return df, MonitorPlan.from_contract(credit_contract, cfg.aggregation)


def config(urls: tuple[str, str], **aggregation: Any) -> MonitorConfig:
    return MonitorConfig.from_dict(
        {"log": urls[0], "store": urls[1], "aggregation": {"batch_rows": 100, **aggregation}}
    )


@pytest.fixture
def store(urls: tuple[str, str]) -> Iterator[SqlMonitorStore]:
    s = open_monitor_store(urls[1])
    yield s
    s.close()


def snapshot(store: SqlMonitorStore, end: datetime) -> dict[str, Any]:
    """What the store answers exactly for [T0, end): counters, row/value counts, sums.

    Percentiles are left out: KLL compaction flips coins, so two merges of the same values
    agree only within the rank error (:func:`same_percentiles` checks that).
    """
    counts = store.counts(T0, end, ["sd", "guard", "violation", "probing", "cat", "client"])
    summary = store.numeric_summary(T0, end)
    exact = summary[["segment_key", "segment_value", "kind", "column", "rows", "n"]].copy()
    exact["mean"] = summary["mean"].round(6).fillna(-1.0)  # NaN != NaN
    exact["missing"] = summary["missing_rate"].round(9).fillna(-1.0)
    return {
        "counts": counts.reset_index(drop=True).to_dict("records"),
        "numeric": exact.reset_index(drop=True).to_dict("records"),
    }


def same_percentiles(a: SqlMonitorStore, b: SqlMonitorStore, end: datetime) -> None:
    """Every percentile of ``a`` has, in ``b``'s sketch, a rank within twice the error."""
    cells = b.numeric_cells(T0, end)
    pct = a.percentiles(T0, end)
    for row in pct.itertuples():
        sketch = cells[(row.segment_key, row.segment_value, row.kind, row.column)].sketch
        tol = 2 * rank_error(200) + 1 / max(row.n, 1)
        below = sketch.rank(float(np.nextafter(row.value, -np.inf)))  # ties: a rank interval
        assert below - tol <= row.q <= sketch.rank(row.value) + tol


def test_counts_match_the_log_exactly(
    urls: tuple[str, str], tmp_path: Path, small: tuple[pd.DataFrame, MonitorPlan]
) -> None:
    df, plan = small
    records = make_records(df)
    write(urls[0], tmp_path / "spool", records)
    # Declared values have their segment from the first row (others wait for admit_min_rows).
    cfg = config(urls, segments={"values": {"channel": list(CHANNELS)}})
    result = update(cfg, plan=plan)
    assert result.rows == len(records) and result.skipped == 0
    # SQLite batches by row count; PostgreSQL never splits one writer transaction.
    assert result.batches == 6 if urls[0].startswith("sqlite") else result.batches >= 1
    end = T0 + 31 * H
    with open_monitor_store(urls[1]) as store:
        counts = store.decision_counts(T0, end)
        frame = pd.DataFrame(
            {
                "channel": [r.segment["channel"] for r in records],
                "decision": [r.decision for r in records],
                "status": [r.status for r in records],
            }
        )
        for channel in CHANNELS:
            got = counts[(counts.segment_value == channel) & (counts.decision == "deny")]
            want = int(((frame.channel == channel) & (frame.decision == "deny")).sum())
            assert got["n"].item() == want
        refused = counts[(counts.segment_key == "all") & (counts.status == "rejected_validation")]
        assert refused["n"].item() == int((frame.status == "rejected_validation").sum())
        # Raw AGE includes the refused 999s; the guarded feature never does.
        raw = store.percentiles(T0, end, column="AGE", kind="raw", q=[1.0], segment=ALL)
        feat = store.percentiles(T0, end, column="AGE", kind="feature", q=[1.0], segment=ALL)
        assert raw["value"].item() == 999 and feat["value"].item() <= 80
        guards = store.guard_action_counts(T0, end, segment=ALL)
        out = guards[guards.action == "out_of_contract"]
        assert out["column"].item() == "AGE" and out["n"].item() == refused["n"].item()
        # Percentiles within the sketch's rank error of the exact ones.
        ages = np.sort(np.array([r.raw["AGE"] for r in records], dtype=float))
        for q in (0.01, 0.5, 0.99):
            value = store.percentiles(T0, end, column="AGE", kind="raw", q=[q], segment=ALL)
            v = value["value"].item()
            below = np.searchsorted(ages, v, side="left") / ages.size
            upto = np.searchsorted(ages, v, side="right") / ages.size  # ties: a rank interval
            assert below - rank_error(200) <= q <= upto + rank_error(200)
        clients = store.probing_by_client(T0, end)
        assert set(clients["client"]) == {"bank-a", "bank-b"}
        assert clients["requests"].sum() == len(records)
        assert clients["boundary"].sum() == sum(1 for r in records if r.probing)


def test_running_twice_counts_nothing_twice(
    urls: tuple[str, str], tmp_path: Path, small: tuple[pd.DataFrame, MonitorPlan]
) -> None:
    df, plan = small
    write(urls[0], tmp_path / "spool", make_records(df))
    cfg = config(urls)
    update(cfg, plan=plan)
    with open_monitor_store(urls[1]) as store:
        before = snapshot(store, T0 + 31 * H)
    again = update(cfg, plan=plan)
    assert again.rows == 0 and again.batches == 0
    with open_monitor_store(urls[1]) as store:
        assert snapshot(store, T0 + 31 * H) == before


def test_crash_in_the_middle_then_rerun_gives_the_same_store(
    urls: tuple[str, str],
    tmp_path: Path,
    small: tuple[pd.DataFrame, MonitorPlan],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    df, plan = small
    write(urls[0], tmp_path / "spool", make_records(df))
    cfg = config(urls)
    original = SqlMonitorStore._put_state
    calls = {"n": 0}

    def crash_on_second_watermark(self: SqlMonitorStore, conn: Any, name: str, value: Any) -> None:
        if name == "watermark":
            calls["n"] += 1
            if calls["n"] == 2:  # after the second batch's counts and sketches were written
                raise KeyboardInterrupt("killed")
        original(self, conn, name, value)

    monkeypatch.setattr(SqlMonitorStore, "_put_state", crash_on_second_watermark)
    with pytest.raises(KeyboardInterrupt):
        update(cfg, plan=plan)
    monkeypatch.setattr(SqlMonitorStore, "_put_state", original)
    with open_monitor_store(urls[1]) as store:
        assert store.watermark() is not None  # one batch committed, the second rolled back
        partial = store.volume(T0, T0 + 31 * H, segment=ALL)["n"].item()
        assert 0 < partial < 600
    update(cfg, plan=plan)
    clean = config((urls[0], f"sqlite:///{tmp_path / 'clean.db'}"))
    update(clean, plan=plan)
    with open_monitor_store(urls[1]) as crashed, open_monitor_store(clean.store_url()) as ref:
        assert snapshot(crashed, T0 + 31 * H) == snapshot(ref, T0 + 31 * H)
        same_percentiles(crashed, ref, T0 + 31 * H)


def test_late_rows_fold_into_their_bucket(
    urls: tuple[str, str], tmp_path: Path, small: tuple[pd.DataFrame, MonitorPlan]
) -> None:
    df, plan = small
    records = make_records(df.head(200), step=timedelta(minutes=1))
    write(urls[0], tmp_path / "spool", records[:150])  # up to 02:30
    cfg = config(urls)
    update(cfg, plan=plan)
    # The spool of a replica replayed after an outage: old request times, committed now.
    write(urls[0], tmp_path / "spool", records[150:] + make_records(df.head(10), seed=5))
    result = update(cfg, plan=plan)
    assert result.rows == 60 and result.late_rows == 10
    with open_monitor_store(urls[1]) as store:
        vol = store.volume(T0, T0 + H, segment=ALL)["n"].item()
        assert vol == 60 + 10  # the first hour got its ten late rows (minutes 0, 3, ..., 27)
        assert store.volume(T0, T0 + 4 * H, segment=ALL)["n"].item() == 210


def test_source_mismatch_is_refused(
    tmp_path: Path, small: tuple[pd.DataFrame, MonitorPlan]
) -> None:
    df, plan = small
    a, b = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    write(a, tmp_path / "spool", make_records(df.head(10)))
    store = f"sqlite:///{tmp_path / 'mon.db'}"
    update(MonitorConfig(log=a, store=store), plan=plan)
    with pytest.raises(SourceMismatchError, match="--reset"):
        update(MonitorConfig(log=b, store=store), plan=plan)


@pytest.mark.parametrize("reading", ["thread", "reader-process"])
def test_corrupt_and_hand_edited_rows_never_crash(
    tmp_path: Path,
    small: tuple[pd.DataFrame, MonitorPlan],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    reading: str,
) -> None:
    """Bad rows are counted as invalid or skipped, and the skip is named in a warning of the
    updating process, whether the batches were read by a thread or by a reader process."""
    import tabguard.monitoring._aggregate as agg
    import tabguard.monitoring._update as upd

    pools: list[Any] = []
    if reading == "reader-process":
        monkeypatch.setattr(agg, "PARALLEL_MIN_ROWS", 50)
        monkeypatch.setattr(upd, "PARALLEL_MIN_ROWS", 50)
        real_pool = upd.ProcessPoolExecutor

        def pool(*args: Any, **kwargs: Any) -> Any:
            pools.append(kwargs.get("initializer"))
            return real_pool(*args, **kwargs)

        monkeypatch.setattr(upd, "ProcessPoolExecutor", pool)
    df, plan = small
    urls = (f"sqlite:///{tmp_path / 'log.db'}", f"sqlite:///{tmp_path / 'mon.db'}")
    records = make_records(df.head(300), step=timedelta(minutes=1))
    write(urls[0], tmp_path / "spool", records)
    engine = create_sql_engine(urls[0])
    ids = [r.decision_id for r in records]
    edits = {
        ids[1]: {"raw": "{not json"},
        ids[2]: {"raw": '{"AGE": "thirty", "LIMIT_BAL": 1e999}'},
        ids[3]: {"raw": "[1, 2, 3]", "segment": "garbage", "guard_actions": "{"},
        ids[250]: {"timestamp": "yesterday-ish"},  # a later batch: the reader process's
        ids[5]: {"features": '{"AGE": NaN}', "errors": "null", "probing": '"boundary"'},
        ids[6]: {"raw": '{\n  "AGE": 41\n}'},
    }
    with engine.begin() as conn:
        for decision_id, values in edits.items():
            sets = ", ".join(f"{k} = :{k}" for k in values)
            conn.execute(
                sa.text(f"UPDATE tg_predictions SET {sets} WHERE decision_id = :id"),
                {**values, "id": decision_id},
            )
    engine.dispose()
    result = update(config(urls, jobs=2), plan=plan)
    assert (upd._feed_start in pools) == (reading == "reader-process")
    assert result.rows == 299 and result.skipped == 1
    assert result.slow_rows > 0
    assert "without a readable timestamp" in caplog.text and ids[250] in caplog.text
    with open_monitor_store(urls[1]) as store:
        summary = store.numeric_summary(T0, T0 + 5 * H, column="AGE", kind="raw", segment=ALL)
        assert summary["invalid_rate"].item() == pytest.approx(1 / summary["rows"].item())
        lim = store.numeric_summary(T0, T0 + 5 * H, column="LIMIT_BAL", kind="raw", segment=ALL)
        assert lim["invalid_rate"].item() > 0  # 1e999 is not a finite number
        assert store.volume(T0, T0 + 5 * H, segment=ALL)["n"].item() == 299


def test_segment_explosion_stays_bounded(
    tmp_path: Path, small: tuple[pd.DataFrame, MonitorPlan]
) -> None:
    df, plan = small
    urls = (f"sqlite:///{tmp_path / 'log.db'}", f"sqlite:///{tmp_path / 'mon.db'}")
    records = make_records(pd.concat([df] * 10, ignore_index=True), step=timedelta(seconds=1))
    for i, r in enumerate(records):
        # every request a new campaign id, plus a steady channel; and junk keys
        r.segment = {"channel": r.segment["channel"], "campaign": f"c{i}", f"junk{i}": 1}
    write(urls[0], tmp_path / "spool", records)
    cfg = config(urls, segments={"top_k": 5}, batch_rows=2000)
    update(cfg, plan=plan)
    with open_monitor_store(urls[1]) as store:
        vol = store.volume(T0, T0 + 3 * H)
        assert set(vol.loc[vol.segment_key == "campaign", "segment_value"]) <= {"other"}
        assert not any(k.startswith("junk") for k in vol["segment_key"])
        assert set(vol.loc[vol.segment_key == "channel", "segment_value"]) == set(CHANNELS)
        engine = store.engine
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT count(*) FROM tg_mon_cells")).scalar_one()
        assert rows < 3 * 30 * 4  # buckets × segment values × kinds, not × 6000 campaigns


def test_log_database_down_keeps_the_watermark(
    tmp_path: Path, small: tuple[pd.DataFrame, MonitorPlan]
) -> None:
    _, plan = small
    store_url = f"sqlite:///{tmp_path / 'mon.db'}"
    down = "postgresql://postgres@127.0.0.1:9/nowhere"  # nothing listens on port 9
    with pytest.raises(BackendUnavailableError, match="prediction log"):
        update(MonitorConfig(log=down, store=store_url), plan=plan)
    with open_monitor_store(store_url) as store:
        assert store.watermark() is None


@pytest.mark.postgres
def test_postgres_rows_of_a_transaction_in_flight_are_read_later(
    postgres_url: str, tmp_path: Path, small: tuple[pd.DataFrame, MonitorPlan]
) -> None:
    """A writer's transaction that started first but commits last is not skipped."""
    from tabguard.serving._log import record_to_row

    df, plan = small
    records = make_records(df.head(30))
    write(postgres_url, tmp_path / "spool", records[:10])
    engine = create_sql_engine(postgres_url)
    slow = engine.connect()
    tx = slow.begin()
    rows = [record_to_row(r) for r in records[10:20]]
    from tabguard.serving._log import _db_row
    from tabguard.storage import predictions_table

    slow.execute(predictions_table.insert(), [_db_row(r) for r in rows])  # not committed yet
    write(postgres_url, tmp_path / "spool", records[20:])  # a later writer, committed first
    cfg = config((postgres_url, postgres_url))
    first = update(cfg, plan=plan)
    assert first.rows == 10  # stops below the open transaction: rows 20-29 wait too
    assert first.waiting == 10  # and says so
    tx.commit()
    slow.close()
    second = update(cfg, plan=plan)
    assert second.rows == 20
    with open_monitor_store(postgres_url) as store:
        assert store.volume(T0, T0 + 2 * H, segment=ALL)["n"].item() == 30
    engine.dispose()


def test_run_forever_survives_a_failed_turn(
    tmp_path: Path, small: tuple[pd.DataFrame, MonitorPlan], monkeypatch: pytest.MonkeyPatch
) -> None:
    df, plan = small
    urls = (f"sqlite:///{tmp_path / 'log.db'}", f"sqlite:///{tmp_path / 'mon.db'}")
    write(urls[0], tmp_path / "spool", make_records(df.head(20)))
    cfg = config(urls)
    import tabguard.monitoring._update as upd

    monkeypatch.setattr(upd, "load_plan", lambda _cfg: plan)
    real = upd.LogReader
    turns = {"n": 0}

    def flaky(url: str, **kw: Any) -> LogReader:
        turns["n"] += 1
        if turns["n"] == 1:
            raise BackendUnavailableError("prediction log: down for the test")
        return real(url, **kw)

    monkeypatch.setattr(upd, "LogReader", flaky)
    sleeps: list[float] = []
    results: list[Any] = []
    errors: list[BaseException] = []
    failures = run_forever(
        cfg,
        timedelta(seconds=60),
        sleep=sleeps.append,
        iterations=3,
        on_result=results.append,
        on_error=errors.append,
    )
    assert failures == 1 and len(errors) == 1 and len(sleeps) == 2
    assert [r.update.rows for r in results] == [20, 0]


def test_run_once_evaluates_at_the_clock_time(
    tmp_path: Path, small: tuple[pd.DataFrame, MonitorPlan], monkeypatch: pytest.MonkeyPatch
) -> None:
    df, plan = small
    urls = (f"sqlite:///{tmp_path / 'log.db'}", f"sqlite:///{tmp_path / 'mon.db'}")
    write(urls[0], tmp_path / "spool", make_records(df.head(5)))
    import tabguard.monitoring._update as upd

    monkeypatch.setattr(upd, "load_plan", lambda _cfg: plan)
    clock = FixedClock(T0 + 5 * H)
    result = run_once(config(urls), clock=clock)
    assert result.at == T0 + 5 * H and result.update.rows == 5


def test_cli_update_is_cron_friendly(
    tmp_path: Path, small: tuple[pd.DataFrame, MonitorPlan], capsys: pytest.CaptureFixture[str]
) -> None:
    from tabguard.cli import main

    df, _ = small
    log_url = f"sqlite:///{tmp_path / 'predictions.db'}"
    write(log_url, tmp_path / "spool", make_records(df.head(50)))
    path = tmp_path / "monitor.yaml"
    path.write_text(json.dumps({"log": log_url}), encoding="utf-8")
    for expected, reset in ((50, []), (0, []), (50, ["--reset"])):
        with pytest.raises(SystemExit) as info:
            main(["monitor", "update", "--config", str(path), "--home", str(tmp_path), *reset])
        assert info.value.code == 0
        out = capsys.readouterr().out
        assert f"read {expected} log rows" in out and "monitoring.db" in out
    path.write_text("aggregation: {bucket: 11m}", encoding="utf-8")
    with pytest.raises(SystemExit) as info:
        main(["monitor", "update", "--config", str(path)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "aggregation.bucket" in err and "11m" in err


def stored_cells(store: SqlMonitorStore) -> list[tuple[Any, ...]]:
    """Every numeric cell row as stored (stats and sketch bytes included)."""
    with store.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.exec_driver_sql(
                "SELECT bucket, seg_key, seg_value, kind, cols, stats, sketches FROM tg_mon_cells "
                "ORDER BY bucket, seg_key, seg_value, kind"
            )
        ]


@pytest.mark.parametrize(
    ("jobs", "share"),
    [(2, None), (2, 0.0), (2, 1.0), (3, 0.5)],
    ids=["balanced", "one-column-to-the-worker", "one-column-kept", "two-workers"],
)
def test_worker_processes_give_the_same_store(
    tmp_path: Path,
    small: tuple[pd.DataFrame, MonitorPlan],
    monkeypatch: pytest.MonkeyPatch,
    jobs: int,
    share: float | None,
) -> None:
    """Large batches share their sketches with worker processes, column by column: whatever
    the split, the store holds the same counts and the same cells, byte for byte (each cell
    holds fewer values than k here, so no compaction coin is flipped)."""
    import tabguard.monitoring._aggregate as agg
    import tabguard.monitoring._update as upd

    df, plan = small
    log = f"sqlite:///{tmp_path / 'log.db'}"
    write(log, tmp_path / "spool", make_records(df))
    monkeypatch.setattr(agg, "PARALLEL_MIN_ROWS", 50)
    monkeypatch.setattr(upd, "PARALLEL_MIN_ROWS", 50)
    if share is not None:

        class Fixed(agg.WorkSplit):
            def observe(self, **_: Any) -> None:
                pass

        monkeypatch.setattr(agg, "WorkSplit", lambda: Fixed(share))
    stores = {}
    for name, n in (("one", 1), ("workers", jobs)):
        cfg = config((log, f"sqlite:///{tmp_path / f'mon-{name}.db'}"), jobs=n)
        assert update(cfg, plan=plan).rows == len(df)
        stores[name] = open_monitor_store(cfg.store_url())
    try:
        assert snapshot(stores["one"], T0 + 31 * H) == snapshot(stores["workers"], T0 + 31 * H)
        assert stored_cells(stores["one"]) == stored_cells(stores["workers"])
    finally:
        for s in stores.values():
            s.close()


def test_only_a_log_another_process_can_open_is_read_by_a_reader_process() -> None:
    from tabguard.monitoring._update import _separate_process_can_read

    assert _separate_process_can_read("sqlite:///var/log/predictions.db")
    assert _separate_process_can_read("postgresql://monitor@db.internal/tabguard")
    assert not _separate_process_can_read("memory://")  # lives in this process's engine
    assert not _separate_process_can_read("sqlite:///:memory:")


def test_one_batch_is_read_without_a_thread(
    tmp_path: Path, small: tuple[pd.DataFrame, MonitorPlan], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An hourly update reads one batch: the caller waits for it at once, so it is read in the
    caller's thread; the reader thread starts with a second batch to read beside the first."""
    from tabguard.monitoring import _update

    df, plan = small
    urls = (f"sqlite:///{tmp_path / 'predictions.db'}", f"sqlite:///{tmp_path / 'mon.db'}")
    started: list[str] = []
    real = _update.ThreadPoolExecutor

    def counted(*args: Any, **kwargs: Any) -> Any:
        started.append(kwargs.get("thread_name_prefix", ""))
        return real(*args, **kwargs)

    monkeypatch.setattr(_update, "ThreadPoolExecutor", counted)
    write(urls[0], tmp_path / "spool", make_records(df.head(60)))
    assert update(config(urls), plan=plan).batches == 1
    assert started == []
    write(urls[0], tmp_path / "spool", make_records(df.iloc[60:300], start=T0 + 3 * H))
    assert update(config(urls), plan=plan).batches == 3
    assert started == ["tabguard-monitor-read"]


def test_the_work_split_moves_columns_to_the_side_that_finished_first() -> None:
    """Workers late by the cost of two columns: about one column (half the step) comes back
    here; a balanced batch moves nothing; the split never leaves a side empty."""
    from tabguard.monitoring._aggregate import WorkSplit

    split = WorkSplit(share=0.5)
    assert split.remote_columns(40) == 20
    # 20 columns each side at 0.1 s per column; the workers finished 0.4 s after this process.
    split.observe(local=(20, 2.0), remote=(20, 2.0), workers=1, imbalance=0.4)
    assert split.remote_columns(40) == 19
    before = split.share
    split.observe(local=(21, 2.1), remote=(19, 1.9), workers=1, imbalance=0.0)
    assert split.share == before
    # This process far behind, several times: the workers take all but one column.
    for _ in range(20):
        split.observe(local=(20, 2.0), remote=(20, 2.0), workers=1, imbalance=-100.0)
    assert split.remote_columns(40) == 39
    for _ in range(20):
        split.observe(local=(20, 2.0), remote=(20, 2.0), workers=1, imbalance=100.0)
    assert split.remote_columns(40) == 1
    assert split.remote_columns(1) == 0


def test_summary_rows_of_unauthenticated_refusals_count_every_request_they_stand_for(
    urls: tuple[str, str], tmp_path: Path, small: tuple[pd.DataFrame, MonitorPlan]
) -> None:
    """The service logs a flood of bad keys as one row per source and minute (``requests``)."""
    from tabguard.flags import Flags, FlagSnapshot
    from tabguard.serving._refusals import RefusalSummary

    df, plan = small
    records = make_records(df.head(60))
    summaries: list[PredictionRecord] = []
    refusals = RefusalSummary(summaries.append, samples=2)
    sent = {"unauthorized": 0, "rate_limited": 0}
    for i in range(1_000):  # 3 sources, 3 minutes: 401 until throttled, then 429
        status = "unauthorized" if i % 50 < 20 else "rate_limited"
        reason = "invalid_key" if status == "unauthorized" else "auth_throttled"
        refusals.add(
            source=f"203.0.113.{i % 3}",
            at=T0 + timedelta(seconds=i * 0.17),
            status=status,
            reason=reason,
            message="",
            key_id=f"{i:012x}",
            body=b'{"subject_id": "x"}',
            flags=FlagSnapshot(Flags(), 0),
            latency_ms=0.5,
        )
        sent[status] += 1
    assert refusals.flush(everything=True) == len(summaries) <= 3 * 3 * 2
    write(urls[0], tmp_path / "spool", records + summaries)
    update(config(urls), plan=plan)
    with open_monitor_store(urls[1]) as store:
        counts = store.decision_counts(T0, T0 + 31 * H)
        by_status = counts[counts.segment_key == "all"].groupby("status")["n"].sum()
        assert by_status["unauthorized"] == sent["unauthorized"]
        assert by_status["rate_limited"] == sent["rate_limited"]
        assert by_status["accepted"] == sum(r.status == "accepted" for r in records)
        guards = store.guard_action_counts(T0, T0 + 31 * H, segment=ALL)
        rejects = guards[(guards.step == "authenticate") & (guards.action == "reject")]
        assert rejects["n"].sum() == 1_000
        clients = store.probing_by_client(T0, T0 + 31 * H)
        assert clients["requests"].sum() == len(records) + 1_000


_text = st.sampled_from(["{", "null", "[1]", "garbage", '"x"', ""])
_raw = st.one_of(
    st.fixed_dictionaries(
        {"AGE": st.one_of(st.integers(18, 999), st.none(), st.just("thirty"))},
        optional={
            "EDUCATION": st.sampled_from([1, 2, 3, 9, "x"]),
            "LIMIT_BAL": st.floats(0, 1e6, allow_nan=False),
        },
    ).map(json.dumps),
    _text,
)
_log_row = st.fixed_dictionaries(
    {
        "minute": st.integers(0, 300),
        "client": st.sampled_from([None, "bank-a", "bank-b"]),
        "status": st.sampled_from(["accepted", "rejected_validation", "delayed"]),
        "decision": st.sampled_from([None, "approve", "deny"]),
        "score": st.one_of(st.none(), st.floats(0, 1)),
        "raw": _raw,
        "features": st.one_of(st.just("{}"), _raw),
        "segment": st.one_of(
            st.sampled_from(['{"channel":"online"}', '{"channel":"branch"}', "{}"]), _text
        ),
        "guard_actions": st.sampled_from(
            ["[]", '[{"step":"sanitise","action":"clip","field":"AGE"}]', "{"]
        ),
        "errors": st.sampled_from(["[]", '[{"field":"AGE","rule":"max"}]', "null"]),
        "probing": st.sampled_from(["[]", '["boundary"]', '"x"']),
        "timestamp_ok": st.sampled_from([True, True, True, False]),
    }
)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_log_row, min_size=1, max_size=25))
def test_bulk_read_counts_what_row_by_row_reads_count(
    tmp_path_factory: pytest.TempPathFactory,
    small: tuple[pd.DataFrame, MonitorPlan],
    rows: list[dict[str, Any]],
) -> None:
    """One batch of every row and one batch per row give the same counters and cells."""
    _df, plan = small
    url = f"sqlite:///{tmp_path_factory.mktemp('log') / 'log.db'}"
    engine = create_sql_engine(url)
    reader = LogReader(url, engine=engine)
    columns = [c.name for c in predictions_table.columns]
    insert = (
        f"INSERT INTO {predictions_table.name} ({', '.join(columns)}) "
        f"VALUES ({', '.join('?' for _ in columns)})"
    )
    records = []
    for i, r in enumerate(rows):
        ts = (T0 + timedelta(minutes=r["minute"])).isoformat(sep=" ")[:19]
        values: dict[str, Any] = dict.fromkeys(columns)
        values.update(
            {k: v for k, v in r.items() if k in columns},
            decision_id=f"d{i}",
            timestamp=ts if r["timestamp_ok"] else "yesterday",
            subject_id=f"s{i}",
            model_name="m",
            model_version="1",
            flags="{}",
            latency_ms=1.5,
        )
        records.append(tuple(values[c] for c in columns))
    with engine.begin() as conn:
        conn.exec_driver_sql(insert, records)
    cfg = MonitorConfig().aggregation

    def totals(batches: list[dict[str, np.ndarray]]) -> tuple[dict[Any, int], dict[Any, tuple]]:
        # Admission pinned (a key or value admitted mid-batch depends on batch sizes by design).
        admission = Admission.load(
            {KEYS: {"channel"}}, {}, cfg, preset={"channel": ["online", "branch"]}
        )
        aggregator = Aggregator(plan, cfg, admission)
        counts: dict[Any, int] = {}
        cells: dict[Any, tuple] = {}
        for batch in batches:
            delta = aggregator.aggregate(batch).delta
            for key, n in delta.counts.items():
                counts[key] = counts.get(key, 0) + n
            for p in delta.packed:
                key, n_rows, n, missing, invalid, total = p[:6]
                old = cells.get(key, (0, 0, 0, 0, 0.0))
                cells[key] = (
                    old[0] + n_rows,
                    old[1] + n,
                    old[2] + missing,
                    old[3] + invalid,
                    old[4] + total,
                )
        return counts, {k: (*v[:4], round(v[4], 6)) for k, v in cells.items()}

    horizon = reader.horizon()
    bulk = totals([reader.read(0, horizon)])
    one_by_one = totals([reader.read(s, s + 1) for s in range(1, horizon)])
    reader.close()
    engine.dispose()
    assert bulk == one_by_one
    if any(r["timestamp_ok"] for r in rows):  # the segment key was counted
        assert any(key[1] == "channel" for key in bulk[0])


def test_the_reader_process_imports_no_pandas() -> None:
    """What a reader process imports (the module of its functions and of the plan it is sent)
    holds no pandas: it starts with the update and must read the second batch soon."""
    code = (
        "import pickle, sys\n"
        "import tabguard.monitoring._read as r\n"
        "sent = (r._feed_start, r._feed_read, r._feed_ready, r.MonitorPlan())\n"
        "pickle.loads(pickle.dumps(sent))\n"
        "print('pandas' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_readers_factorisation_matches_pandas() -> None:
    from tabguard.monitoring._read import _factorize

    values = ['["a",1]', '["b",2]', '["a",1]', "x", '["b",2]', "x", "y"]
    codes, uniques = _factorize(values)
    expected_codes, expected_uniques = pd.factorize(np.asarray(values, dtype=object))
    assert codes.tolist() == expected_codes.tolist()
    assert uniques == list(expected_uniques)


def test_reset_rebuilds_the_store_as_a_new_one(
    urls: tuple[str, str], tmp_path: Path, small: tuple[pd.DataFrame, MonitorPlan]
) -> None:
    """``reset=True`` empties the store beside the update's start: what it holds afterwards is
    what a new store gets from the same log (counts, cells byte for byte, watermark), even
    when the store was filled from another log before."""
    df, plan = small
    other = f"sqlite:///{tmp_path / 'other.db'}"
    write(other, tmp_path / "spool-other", make_records(df.head(300), seed=3))
    update(MonitorConfig(log=other, store=urls[1]), plan=plan)
    write(urls[0], tmp_path / "spool", make_records(df))
    result = update(config(urls), plan=plan, reset=True)
    rows = result.rows
    # Any transaction of this database older than the log's rows (on a loaded CI machine, seen
    # once: an autovacuum ANALYZE is the likely one) holds them back for a pass (``waiting``);
    # the next passes read them, as the monitor's loop does.
    for _ in range(100):
        if not result.waiting:
            break
        time.sleep(0.1)
        result = update(config(urls), plan=plan)
        rows += result.rows
    assert rows == len(df)
    fresh = config((urls[0], f"sqlite:///{tmp_path / 'fresh.db'}"))
    assert update(fresh, plan=plan).rows == len(df)
    with open_monitor_store(urls[1]) as rebuilt, open_monitor_store(fresh.store_url()) as ref:
        assert snapshot(rebuilt, T0 + 31 * H) == snapshot(ref, T0 + 31 * H)
        assert stored_cells(rebuilt) == stored_cells(ref)
        assert rebuilt.get_state("source") == ref.get_state("source")
        assert rebuilt.admitted_segments() == ref.admitted_segments()
    assert update(config(urls), plan=plan).rows == 0  # the watermark moved with the rebuild


def test_reset_of_an_empty_log_empties_the_store(
    tmp_path: Path, small: tuple[pd.DataFrame, MonitorPlan]
) -> None:
    df, plan = small
    log, store = f"sqlite:///{tmp_path / 'log.db'}", f"sqlite:///{tmp_path / 'mon.db'}"
    write(log, tmp_path / "spool", make_records(df.head(50)))
    update(MonitorConfig(log=log, store=store), plan=plan)
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    write(empty, tmp_path / "spool-empty", [])
    assert update(MonitorConfig(log=empty, store=store), plan=plan, reset=True).rows == 0
    with open_monitor_store(store) as s:
        assert s.watermark() is None and s.volume(T0, T0 + 31 * H).empty


def test_reset_while_another_updater_runs_is_refused(
    tmp_path: Path, small: tuple[pd.DataFrame, MonitorPlan]
) -> None:
    from tabguard.monitoring._store import UpdaterBusyError

    df, plan = small
    log, url = f"sqlite:///{tmp_path / 'log.db'}", f"sqlite:///{tmp_path / 'mon.db'}"
    write(log, tmp_path / "spool", make_records(df.head(50)))
    cfg = MonitorConfig(log=log, store=url)
    update(cfg, plan=plan)
    with open_monitor_store(url) as holder, holder.updater_lock():
        with pytest.raises(UpdaterBusyError, match="another updater"):
            update(cfg, plan=plan, reset=True)
        assert update(cfg, plan=plan).busy  # without reset: nothing to do, as before
    with open_monitor_store(url) as s:
        assert s.volume(T0, T0 + 31 * H, segment=ALL)["n"].item() == 50  # nothing emptied


def test_a_failed_reset_writes_nothing_and_is_raised(
    tmp_path: Path, small: tuple[pd.DataFrame, MonitorPlan], monkeypatch: pytest.MonkeyPatch
) -> None:
    df, plan = small
    log, url = f"sqlite:///{tmp_path / 'log.db'}", f"sqlite:///{tmp_path / 'mon.db'}"
    write(log, tmp_path / "spool", make_records(df.head(50)))
    cfg = MonitorConfig(log=log, store=url)
    update(cfg, plan=plan)
    with open_monitor_store(url) as s:
        mark = s.watermark()

    def down(self: SqlMonitorStore) -> None:
        raise BackendUnavailableError("monitor store: reset failed (test)")

    monkeypatch.setattr(SqlMonitorStore, "reset", down)
    write(log, tmp_path / "spool", make_records(df.head(20), seed=9))
    with pytest.raises(BackendUnavailableError, match="reset failed"):
        update(cfg, plan=plan, reset=True)
    with open_monitor_store(url) as s:
        assert s.watermark() == mark  # the new rows were not written over the old store
        assert s.volume(T0, T0 + 31 * H, segment=ALL)["n"].item() == 50
