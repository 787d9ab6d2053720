"""Store URLs and SQL engines: backend choice, normalisation, SQLite tuned for several processes."""

from __future__ import annotations

import multiprocessing as mp
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from tabguard.errors import MissingDependencyError
from tabguard.storage import (
    METADATA,
    StoreURLError,
    create_redis_client,
    create_sql_engine,
    ensure_schema,
    flags_table,
    predictions_table,
    redact_url,
    sqlalchemy_url,
    store_kind,
)


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("sqlite:///.tabguard/state.db", "sqlite"),
        ("sqlite:////abs/state.db", "sqlite"),
        ("postgresql://u@h:5432/db", "postgresql"),
        ("postgres://u@h/db", "postgresql"),
        ("postgresql+psycopg://u@h/db", "postgresql"),
        ("redis://127.0.0.1:6379/0", "redis"),
        ("rediss://h:6380/1", "redis"),
        ("memory://", "memory"),
        ("MEMORY://", "memory"),
    ],
)
def test_store_kind(url: str, kind: str) -> None:
    assert store_kind(url) == kind


@pytest.mark.parametrize("url", ["mysql://x", "state.db", "", "http://example.com"])
def test_unknown_scheme_is_a_clear_error(url: str) -> None:
    with pytest.raises(StoreURLError, match="scheme must be one of sqlite://, postgresql://"):
        store_kind(url)


def test_postgres_urls_use_psycopg3() -> None:
    assert sqlalchemy_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert sqlalchemy_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert sqlalchemy_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert sqlalchemy_url("memory://") == "sqlite://"
    with pytest.raises(StoreURLError, match="needs a SQL database"):
        sqlalchemy_url("redis://h:6379/0")


def test_redact_url_hides_passwords() -> None:
    assert redact_url("postgresql://u:s3cret@h/db") == "postgresql://u:***@h/db"
    assert redact_url("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
    assert redact_url("sqlite:///x.db") == "sqlite:///x.db"


def test_sqlite_engine_uses_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    engine = create_sql_engine(f"sqlite:///{tmp_path / 'a' / 'b' / 'state.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0) >= 5000
    engine.dispose()
    assert (tmp_path / "a" / "b" / "state.db").is_file()


def test_memory_engine_is_shared_by_threads() -> None:
    engine = create_sql_engine("memory://")
    ensure_schema(engine, [flags_table])

    def insert() -> None:
        with engine.begin() as conn:
            conn.execute(
                flags_table.insert().values(
                    name="flow", value='"disabled"', updated_at=sa.func.now(), updated_by="t"
                )
            )

    t = threading.Thread(target=insert)
    t.start()
    t.join()
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(flags_table)).scalar() == 1


def _writer(url: str, start: int, n: int) -> None:
    from tabguard.storage import create_sql_engine, predictions_table

    engine = create_sql_engine(url)
    for i in range(start, start + n):
        with engine.begin() as conn:  # one transaction per row: many lock hand-overs
            conn.execute(
                predictions_table.insert().values(
                    decision_id=f"p{i}",
                    timestamp=sa.func.now(),
                    status="accepted",
                    raw="{}",
                    features="{}",
                    guard_actions="[]",
                    flags="{}",
                    errors="[]",
                    segment="{}",
                    probing="[]",
                )
            )
    engine.dispose()


def test_several_processes_write_one_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    engine = create_sql_engine(url)
    ensure_schema(engine, [predictions_table])
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(url, k * 1000, 150)) for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0  # no "database is locked"
    with engine.connect() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(predictions_table)).scalar() == 450
        )
    engine.dispose()


@pytest.mark.postgres
def test_schema_creation_is_idempotent_and_race_safe(postgres_url: str) -> None:
    engines = [create_sql_engine(postgres_url) for _ in range(3)]
    errors: list[BaseException] = []

    def create(e: sa.Engine) -> None:
        try:
            ensure_schema(e, list(METADATA.tables.values()))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ensure_schema(engines[0], list(METADATA.tables.values()))
    assert errors == []
    names = set(sa.inspect(engines[0]).get_table_names())
    assert {"tg_flags", "tg_flag_history", "tg_api_keys", "tg_predictions"} <= names
    for e in engines:
        e.dispose()


def test_missing_postgres_driver_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(MissingDependencyError, match=r"tabguard\[postgres\]"):
        create_sql_engine("postgresql://u@h/db")


def test_missing_redis_driver_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(MissingDependencyError, match=r"tabguard\[redis\]"):
        create_redis_client("redis://127.0.0.1:6379/0")
