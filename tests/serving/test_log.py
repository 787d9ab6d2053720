"""The prediction log: batching, odd content, spooling while the database is down, replay."""

from __future__ import annotations

import csv
import json
import math
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from tabguard.errors import BackendUnavailableError
from tabguard.serving import (
    PredictionLog,
    PredictionRecord,
    dumps_json,
    load_config,
    record_to_row,
)
from tabguard.storage import sqlalchemy_url
from tests.serving._tcp_proxy import TcpProxy, closed_port


def rec(i: int, **kw: object) -> PredictionRecord:
    base: dict[str, object] = {
        "decision_id": f"d{i:07d}",
        "client": "bank-a",
        "subject_id": f"cust-{i}",
        "raw": {"AGE": 30 + i % 40, "LIMIT_BAL": 1000.0 * i},
        "features": {"AGE": 30 + i % 40},
        "guard_actions": [],
        "flags": {"flow": "enabled", "version": 3},
        "model_name": "main",
        "model_version": "abc123",
        "score": (i % 100) / 100,
        "decision": "approve" if i % 3 else "deny",
        "status": "accepted",
        "segment": {"channel": "web"},
        "latency_ms": 1.5,
    }
    base.update(kw)
    return PredictionRecord(**base)  # type: ignore[arg-type]


@pytest.fixture
def make_log(tmp_path: Path) -> Iterator[Callable[..., PredictionLog]]:
    logs: list[PredictionLog] = []

    def factory(url: str | None = None, **kw: object) -> PredictionLog:
        options: dict[str, object] = {
            "spool_dir": tmp_path / "spool",
            "flush_interval": 0.05,
            "retry_interval": 0.1,
        }
        options.update(kw)
        plog = PredictionLog(url or f"sqlite:///{tmp_path / 'log.db'}", **options)  # type: ignore[arg-type]
        logs.append(plog)
        return plog

    yield factory
    for plog in logs:
        plog.close()


def distinct_ids(url: str) -> tuple[int, int]:
    """(rows, distinct decision ids) straight from the database."""
    engine = sa.create_engine(sqlalchemy_url(url))
    with engine.connect() as conn:
        rows, distinct = conn.execute(
            sa.text("select count(*), count(distinct decision_id) from tg_predictions")
        ).one()
    engine.dispose()
    return int(rows), int(distinct)


# ---- SQLite (the default store) ---------------------------------------------------------------


def test_append_flush_count_get(make_log: Callable[..., PredictionLog]) -> None:
    plog = make_log(batch_size=7)
    for i in range(50):
        plog.append(rec(i))
    assert plog.flush()
    assert plog.count() == 50
    assert plog.count(status="accepted") == 50
    got = plog.get("d0000003")
    assert got is not None and got.subject_id == "cust-3" and got.decision == "deny"
    assert plog.stats.written == 50 and plog.stats.spooled == 0


def test_get_reads_the_database_from_another_instance(
    make_log: Callable[..., PredictionLog],
) -> None:
    writer = make_log()
    writer.append(rec(1, available_at="2030-01-01T00:00:00+00:00", status="delayed"))
    writer.flush()
    reader = make_log()
    got = reader.get("d0000001")
    assert got is not None and got.status == "delayed"
    assert got.available_at is not None and got.available_at.year == 2030
    assert got.timestamp.tzinfo is not None
    assert reader.get("nope") is None


def test_appending_the_same_decision_twice_keeps_one_row(
    make_log: Callable[..., PredictionLog],
) -> None:
    plog = make_log()
    for _ in range(3):
        plog.append(rec(1))
    plog.flush()
    plog.append(rec(1))
    plog.flush()
    assert plog.count() == 1


def test_query_and_export(make_log: Callable[..., PredictionLog], tmp_path: Path) -> None:
    plog = make_log()
    for i in range(20):
        plog.append(rec(i, status="accepted" if i % 2 else "rejected_validation"))
    plog.flush()
    df = plog.query(status="accepted")
    assert len(df) == 10
    assert df["segment"].iloc[0] == {"channel": "web"}
    assert str(df["timestamp"].dt.tz) == "UTC"
    assert len(plog.query(limit=3)) == 3
    out = tmp_path / "out" / "log.csv"
    assert plog.export_csv(out) == 20
    with out.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 20
    assert json.loads(rows[0]["raw"]) == {"AGE": 30, "LIMIT_BAL": 0.0}
    assert rows[0]["timestamp"].endswith("+00:00")


def odd_records() -> list[PredictionRecord]:
    huge = "x" * 2_000_000
    return [
        rec(1, raw={"AGE": math.nan, "LIMIT_BAL": math.inf, "PAY": -math.inf}),
        rec(2, score=math.nan, latency_ms=math.inf),
        rec(3, raw={"note": huge}, subject_id="s" * 5000, client="c" * 1000),
        rec(
            4, raw={"名前": "Zoë 👩‍💻", "nul": "a\x00b", "lone": "\ud800"}, subject_id="ü\x00\ud800"
        ),
        rec(5, raw={"np": np.float32(1.5), "arr": np.arange(3), "i": np.int64(7), "obj": object()}),
        rec(6, raw=["not", "a", "dict"], guard_actions=[{"field": "AGE", "action": "clip"}]),
        rec(7, raw={1: "int key", None: "none key"}, errors=[{"field": "AGE", "value": math.nan}]),
    ]


def check_odd_content(plog: PredictionLog) -> None:
    for r in odd_records():
        plog.append(r)
    assert plog.flush()
    assert plog.count() == 7
    assert plog.stats.dead_lettered == 0
    df = plog.query().set_index("decision_id")
    assert df.loc["d0000001", "raw"] == {"AGE": "NaN", "LIMIT_BAL": "Infinity", "PAY": "-Infinity"}
    assert df.loc["d0000002", "errors"][0]["rule"] == "non_finite"
    assert len(df.loc["d0000003", "raw"]["note"]) == 2_000_000
    assert len(df.loc["d0000003", "subject_id"]) <= 256
    assert df.loc["d0000004", "raw"]["名前"] == "Zoë 👩‍💻"
    assert "\x00" not in df.loc["d0000004", "subject_id"]
    assert df.loc["d0000005", "raw"]["arr"] == [0, 1, 2]
    assert df.loc["d0000006", "raw"] == ["not", "a", "dict"]
    assert df.loc["d0000007", "raw"] == {"1": "int key", "null": "none key"}


def test_odd_content_is_stored_not_lost_sqlite(make_log: Callable[..., PredictionLog]) -> None:
    check_odd_content(make_log())


def test_close_drains_and_late_appends_are_spooled(
    make_log: Callable[..., PredictionLog], tmp_path: Path
) -> None:
    plog = make_log(flush_interval=10, batch_size=1000)
    for i in range(100):
        plog.append(rec(i))
    plog.close()  # no flush(): close must drain
    plog.append(rec(100))  # a request finishing during shutdown
    assert plog.spool.pending_records() == 1
    reopened = make_log()
    assert reopened.flush()
    assert reopened.count() == 101
    assert reopened.spool.pending_records() == 0


def test_from_config(tmp_path: Path) -> None:
    cfg = load_config(tmp_path)
    with PredictionLog.from_config(cfg) as plog:
        plog.append(rec(1))
        plog.flush()
        assert plog.count() == 1
    assert (tmp_path / "predictions.db").is_file()


def test_unwritable_database_spools_and_replays(
    make_log: Callable[..., PredictionLog], tmp_path: Path
) -> None:
    # The database path's directory is a file: SQLite cannot open it.
    blocker = tmp_path / "blocked"
    blocker.mkdir()
    plog = make_log(f"sqlite:///{blocker / 'log.db'}")
    # Let the writer finish its start-up recovery (schema and migration): a connection it still
    # holds would survive dispose() and keep writing to the unlinked file.
    assert plog.flush()
    plog._engine.dispose()  # drop the pooled connection to the old file
    # The writer thread may still be creating SQLite's side files (journal): retry until the
    # directory is really gone (a single rmtree raced with it once under load).
    for _ in range(100):
        shutil.rmtree(blocker, ignore_errors=True)
        if not blocker.exists():
            break
        time.sleep(0.05)
    blocker.write_text("not a directory")
    for i in range(30):
        plog.append(rec(i))
    assert plog.flush()
    assert plog.stats.spooled == 30 and not plog.stats.backend_up
    with pytest.raises(BackendUnavailableError):
        plog.count()
    blocker.unlink()
    blocker.mkdir()
    assert plog.replay()
    assert plog.count() == 30


def test_replaying_the_same_spool_twice_adds_no_duplicates(
    make_log: Callable[..., PredictionLog],
) -> None:
    plog = make_log(f"postgresql://postgres@127.0.0.1:{closed_port()}/x")
    for i in range(40):
        plog.append(rec(i))
    plog.flush()
    files = plog.spool.files()
    assert files
    copies = [f.read_text() for f in files]
    plog.close()
    good = make_log()
    good.flush()
    assert good.count() == 40
    # A crash between a committed replay and the file's removal replays the file again.
    for n, text in enumerate(copies):
        (good.spool.directory / f"9{n:019d}-1-000001.jsonl").write_text(text)
    assert good.replay()
    assert good.count() == 40


def test_unparsable_spool_lines_are_kept_in_the_dead_letter_file(
    make_log: Callable[..., PredictionLog], tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    good_line = json.dumps(record_to_row(rec(1)))
    (spool / "00000000000000000001-1-000001.jsonl").write_text(good_line + "\n{torn")
    plog = make_log()
    plog.flush()
    assert plog.count() == 1
    assert plog.spool.dead_letter_records() == 1
    assert plog.stats.dead_lettered == 1


# ---- PostgreSQL ---------------------------------------------------------------------------------


@pytest.mark.postgres
def test_pg_10000_records_leave_exactly_10000_rows(
    make_log: Callable[..., PredictionLog], postgres_url: str
) -> None:
    plog = make_log(postgres_url, batch_size=200)
    for i in range(10_000):
        plog.append(rec(i))
    assert plog.flush(timeout=120)
    assert plog.count() == 10_000
    assert distinct_ids(postgres_url) == (10_000, 10_000)
    assert plog.stats.spooled == 0


@pytest.mark.postgres
def test_pg_odd_content_is_stored_not_lost(
    make_log: Callable[..., PredictionLog], postgres_url: str
) -> None:
    check_odd_content(make_log(postgres_url))


@pytest.mark.postgres
def test_pg_unreachable_at_start_then_replayed_at_start_up(
    make_log: Callable[..., PredictionLog], postgres_url: str
) -> None:
    down = make_log(f"postgresql://postgres@127.0.0.1:{closed_port()}/x")
    for i in range(1_000):
        down.append(rec(i))
    assert down.flush()
    assert down.stats.spooled == 1_000 and down.stats.written == 0
    down.close()
    up = make_log(postgres_url)  # same spool directory: replays at start-up
    assert up.flush()
    assert up.count() == 1_000
    assert up.stats.replayed == 1_000
    assert up.spool.pending_records() == 0


@pytest.mark.postgres
def test_pg_down_mid_run_loses_nothing_and_duplicates_nothing(
    make_log: Callable[..., PredictionLog], postgres_url: str
) -> None:
    parts = urlsplit(postgres_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432).start()
    url = parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}").geturl()
    plog = make_log(url, batch_size=100)
    try:
        for i in range(3_000):
            plog.append(rec(i))
        assert plog.flush()
        proxy.cut()  # the database host goes away mid-run
        for i in range(3_000, 7_000):
            plog.append(rec(i))
        assert plog.flush()
        assert plog.stats.spooled >= 4_000 - 100  # a batch in flight may have landed first
        assert not plog.stats.backend_up
        proxy.start()  # back: the writer reconnects on its own and replays the spool
        deadline = time.monotonic() + 30
        while (plog.spool.files() or not plog.stats.backend_up) and time.monotonic() < deadline:
            plog.flush()
            time.sleep(0.05)
        for i in range(7_000, 8_000):
            plog.append(rec(i))
        assert plog.flush()
        assert plog.count() == 8_000
        assert distinct_ids(postgres_url) == (8_000, 8_000)
        s = plog.stats
        assert s.written + s.replayed >= 8_000 and s.dead_lettered == 0
    finally:
        proxy.cut()


def test_a_dropped_table_is_recreated(
    make_log: Callable[..., PredictionLog], tmp_path: Path
) -> None:
    plog = make_log()
    plog.append(rec(1))
    plog.flush()
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'log.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("drop table tg_predictions"))
    engine.dispose()
    for i in range(2, 12):
        plog.append(rec(i))
    assert plog.flush()
    assert plog.count() == 10
    assert plog.stats.spooled == 0


@pytest.mark.postgres
def test_pg_database_dropped_mid_run_then_back(
    make_log: Callable[..., PredictionLog], postgres_url: str, postgres_server_url: str
) -> None:
    name = postgres_url.rsplit("/", 1)[1]
    admin = sa.create_engine(sqlalchemy_url(postgres_server_url), isolation_level="AUTOCOMMIT")
    plog = make_log(postgres_url, batch_size=50)
    try:
        for i in range(500):
            plog.append(rec(i))
        assert plog.flush()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        for i in range(500, 1_000):
            plog.append(rec(i))
        assert plog.flush()
        assert plog.stats.spooled == 500 and not plog.stats.backend_up
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        assert plog.replay()
        # The first 500 rows went down with the dropped database; every spooled one is back.
        ids = set(plog.query(parse_json=False)["decision_id"])
        assert ids == {f"d{i:07d}" for i in range(500, 1_000)}
        assert distinct_ids(postgres_url) == (500, 500)
    finally:
        admin.dispose()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values)
def test_dumps_json_always_gives_strict_utf8_json(value: object) -> None:
    text = dumps_json(value)
    text.encode("utf-8")  # storable in PostgreSQL text and SQLite
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict constant {c}"))


@given(st.text(), st.text())
def test_identifier_columns_are_always_storable(client: str, subject: str) -> None:
    row = record_to_row(PredictionRecord(client=client, subject_id=subject))
    for col in ("client", "subject_id"):
        value = row[col]
        assert "\x00" not in value and len(value) <= 256
        value.encode("utf-8")
    clean = len(subject) <= 256 and not any(
        c == "\x00" or 0xD800 <= ord(c) <= 0xDFFF for c in subject
    )
    assert (row["subject_id"] == subject) == clean  # clean values are stored unchanged


def test_appends_racing_with_close_are_not_lost(
    make_log: Callable[..., PredictionLog], tmp_path: Path
) -> None:
    import threading

    plog = make_log(flush_interval=10)
    stop = threading.Event()
    sent: list[int] = []

    def producer() -> None:
        i = 0
        while not stop.is_set() or i < 200:
            plog.append(rec(i))
            sent.append(i)
            i += 1

    t = threading.Thread(target=producer)
    t.start()
    time.sleep(0.05)
    plog.close()
    stop.set()
    t.join()
    reopened = make_log()
    assert reopened.flush()
    assert reopened.count() == len(sent)


def test_a_started_service_writes_the_numbers_vectors_its_model_monitor_reads(
    harness_factory: Any, sample_records: list[dict[str, Any]], model_dir: Path
) -> None:
    """The service sets its model's layout on the log: the monitor of the same model directory
    reads every plain request from its vector, the unusual one from its JSON."""
    from tabguard.monitoring import MonitorConfig
    from tabguard.monitoring._update import plan_for_model, update
    from tests.serving.conftest import body_of

    h = harness_factory()
    for i, record in enumerate(sample_records[:6]):
        body = body_of(record, subject=f"c{i}")
        if i == 0:
            body["features"]["AGE"] = "thirty"  # refused; text in a number column: JSON only
        h.post(body)
    assert len(h.records()) == 6
    plan = plan_for_model(model_dir, MonitorConfig())
    assert plan.layout is not None and h.log.number_layout == plan.layout
    cfg = MonitorConfig.from_dict(
        {"log": h.log.url, "store": f"sqlite:///{h.home / 'mon.db'}", "model": str(model_dir)}
    )
    result = update(cfg)
    assert result.rows == 6 and result.json_rows == 1
