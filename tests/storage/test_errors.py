"""No driver exception leaks out of a store: each one arrives as BackendUnavailableError.

Every public method of every store is called against a backend that has gone away (a real
PostgreSQL behind a cut connection, a SQLite file that cannot be opened, a Redis port nothing
listens on). The test fails if any call raises a SQLAlchemy, psycopg, sqlite3 or redis type.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis.exceptions
import sqlalchemy.exc as sa_exc

from tabguard.errors import BackendUnavailableError, TabguardError
from tabguard.flags import RedisFlagStore, SqlFlagStore
from tabguard.serving import PredictionLog, SqlKeyStore
from tabguard.storage import backend_errors, driver_exceptions, is_connectivity_error
from tests.serving._tcp_proxy import TcpProxy, closed_port

Call = Callable[[Any], object]

FLAG_CALLS: dict[str, Call] = {
    "get_all": lambda s: s.get_all(),
    "get": lambda s: s.get("flow"),
    "set": lambda s: s.set("flow", "disabled", actor="ops"),
    "history": lambda s: s.history(),
    "version": lambda s: s.version(),
    "snapshot": lambda s: s.snapshot(),
}
KEY_CALLS: dict[str, Call] = {
    "create": lambda s: s.create("bank-b"),
    "verify": lambda s: s.verify("tg_0123456789ab_secret"),
    "list": lambda s: s.list(),
    "revoke": lambda s: s.revoke("bank-a"),
}
LOG_CALLS: dict[str, Call] = {
    "count": lambda s: s.count(),
    "get": lambda s: s.get("not-recent"),
    "query": lambda s: s.query(),
    "iter_rows": lambda s: list(s.iter_rows()),
}


def assert_mapped(call: Call, store: object) -> None:
    with pytest.raises(TabguardError) as info:
        call(store)
    exc = info.value
    assert isinstance(exc, BackendUnavailableError), f"unexpected {type(exc).__name__}: {exc}"
    assert isinstance(exc.__cause__, driver_exceptions())
    assert is_connectivity_error(exc)
    assert "\n" not in str(exc)


@pytest.fixture
def broken_sqlite(tmp_path: Path) -> Callable[[], None]:
    """Stores open on a SQLite file; calling the fixture makes the file unopenable."""
    directory = tmp_path / "db"
    directory.mkdir()

    def breaker() -> None:
        shutil.rmtree(directory)
        directory.write_text("a file where the database directory was")

    return breaker


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'db' / 'state.db'}"


@pytest.mark.parametrize("method", list(FLAG_CALLS))
def test_sql_flag_store_sqlite(
    tmp_path: Path, broken_sqlite: Callable[[], None], method: str
) -> None:
    store = SqlFlagStore(sqlite_url(tmp_path))
    broken_sqlite()
    store.close()  # pooled connections would still reach the deleted file
    assert_mapped(FLAG_CALLS[method], store)


@pytest.mark.parametrize("method", list(KEY_CALLS))
def test_sql_key_store_sqlite(
    tmp_path: Path, broken_sqlite: Callable[[], None], method: str
) -> None:
    store = SqlKeyStore(sqlite_url(tmp_path))
    store.create("bank-a")
    broken_sqlite()
    store.close()
    assert_mapped(KEY_CALLS[method], store)


@pytest.mark.parametrize("method", list(LOG_CALLS))
def test_prediction_log_sqlite(
    tmp_path: Path, broken_sqlite: Callable[[], None], method: str
) -> None:
    plog = PredictionLog(sqlite_url(tmp_path), spool_dir=tmp_path / "spool", flush_interval=0.05)
    try:
        plog.flush()
        broken_sqlite()
        plog._engine.dispose()
        assert_mapped(LOG_CALLS[method], plog)
    finally:
        plog.close()


@pytest.fixture
def cut_postgres(postgres_url: str) -> Iterator[tuple[str, TcpProxy]]:
    parts = urlsplit(postgres_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432).start()
    yield parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}").geturl(), proxy
    proxy.cut()


@pytest.mark.postgres
def test_every_sql_store_method_on_postgres(
    cut_postgres: tuple[str, TcpProxy], tmp_path: Path
) -> None:
    url, proxy = cut_postgres
    flags, keys = SqlFlagStore(url), SqlKeyStore(url)
    keys.create("bank-a")
    plog = PredictionLog(url, spool_dir=tmp_path / "spool", flush_interval=0.05)
    try:
        proxy.cut()
        for call in FLAG_CALLS.values():
            assert_mapped(call, flags)
        for call in KEY_CALLS.values():
            assert_mapped(call, keys)
        for call in LOG_CALLS.values():
            assert_mapped(call, plog)
    finally:
        plog.close()
        flags.close()
        keys.close()


@pytest.mark.parametrize("method", list(FLAG_CALLS))
def test_redis_flag_store(method: str) -> None:
    store = RedisFlagStore(f"redis://127.0.0.1:{closed_port()}/0")
    assert_mapped(FLAG_CALLS[method], store)
    store.close()


@pytest.mark.parametrize(
    "exc",
    [
        sa_exc.OperationalError("select 1", {}, Exception("connection refused")),
        sqlite3.OperationalError("database is locked"),
        redis.exceptions.ConnectionError("Error 111"),
        ConnectionRefusedError(111, "refused"),
    ],
    ids=type,
)
def test_backend_errors_maps_driver_types(exc: BaseException) -> None:
    with (
        pytest.raises(BackendUnavailableError, match="flag store x: read flags failed") as info,
        backend_errors("flag store x", "read flags"),
    ):
        raise exc
    assert info.value.__cause__ is exc


def test_backend_errors_lets_tabguard_errors_and_bugs_through() -> None:
    with pytest.raises(TabguardError, match="own"), backend_errors("s", "a"):
        raise TabguardError("own")
    with pytest.raises(KeyError), backend_errors("s", "a"):
        raise KeyError("a bug is not an outage")


def test_data_errors_are_not_connectivity_errors() -> None:
    integrity = sa_exc.IntegrityError("insert", {}, Exception("duplicate key"))
    assert not is_connectivity_error(integrity)
    assert is_connectivity_error(sa_exc.OperationalError("x", {}, Exception("refused")))
