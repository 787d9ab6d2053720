"""Several worker processes creating the same SQLite schema at once (``serve --workers N``)."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from tabguard.storage import (
    create_sql_engine,
    ensure_schema,
    flag_history_table,
    flags_table,
    predictions_table,
)
from tabguard.storage._engine import _enable_wal

WORKERS = 4


def _create(url: str, barrier: mp.synchronize.Barrier, errors: mp.Queue) -> None:  # type: ignore[type-arg]
    engine = create_sql_engine(url)
    barrier.wait()
    try:
        ensure_schema(engine, [flags_table, flag_history_table, predictions_table])
    except Exception as exc:  # reported to the parent, which fails the test with it
        errors.put(f"{type(exc).__name__}: {exc}")
    finally:
        engine.dispose()


def test_workers_starting_together_all_create_the_schema(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    for attempt in range(10):
        url = f"sqlite:///{tmp_path / f'state-{attempt}.db'}"
        barrier, errors = ctx.Barrier(WORKERS), ctx.Queue()
        procs = [ctx.Process(target=_create, args=(url, barrier, errors)) for _ in range(WORKERS)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0] * WORKERS
        failures = []
        while not errors.empty():
            failures.append(errors.get())
        assert failures == [], failures
        engine = create_sql_engine(url)
        assert {"tg_flags", "tg_predictions"} <= set(sa.inspect(engine).get_table_names())
        engine.dispose()


class _LockedTwice:
    """A cursor whose first two ``journal_mode`` switches lose the race for the file's lock."""

    def __init__(self) -> None:
        self.calls = 0

    def execute(self, sql: str) -> None:
        self.calls += 1
        if self.calls <= 2:
            raise sqlite3.OperationalError("database is locked")


def test_the_switch_to_wal_is_retried_when_another_worker_holds_the_lock() -> None:
    # SQLite reports this race at once, without its busy handler (4 processes on a fresh file).
    cur = _LockedTwice()
    _enable_wal(cur)
    assert cur.calls == 3


def test_other_errors_of_the_switch_to_wal_are_not_retried() -> None:
    class _Broken:
        def execute(self, sql: str) -> None:
            raise sqlite3.OperationalError("disk I/O error")

    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        _enable_wal(_Broken())
