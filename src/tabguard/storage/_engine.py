"""SQLAlchemy engines for tabguard's SQL stores (SQLite by default, PostgreSQL by URL)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import StaticPool

from tabguard.errors import MissingDependencyError
from tabguard.storage._url import sqlalchemy_url, store_kind

#: How long a SQLite writer waits for another process's lock before giving up (ms). Several
#: service workers, the CLI and the log writer share one file, so waits are expected.
SQLITE_BUSY_TIMEOUT_MS = 10_000
#: How long a PostgreSQL connection attempt may take (s): a down server must fail fast so the
#: prediction log spools instead of stalling.
PG_CONNECT_TIMEOUT_S = 3

#: Execution option naming the SQLite ``BEGIN`` mode of a transaction (``"IMMEDIATE"`` takes the
#: write lock up front, for read-modify-write transactions such as a flag change).
SQLITE_BEGIN_OPTION = "tabguard_sqlite_begin"


def create_sql_engine(url: str, *, durable: bool = False, **kwargs: Any) -> sa.Engine:
    """Create a SQLAlchemy engine for a store URL.

    SQLite files get WAL journaling, ``synchronous=NORMAL`` and a busy timeout so several worker
    processes can share one file; their parent directory is created. ``memory://`` is a
    private in-memory SQLite database shared by the threads of this process. PostgreSQL uses
    psycopg 3 with a short connect timeout and pre-ping (dead connections are replaced).

    Parameters
    ----------
    url : str
        ``sqlite:///path``, ``postgresql://...`` or ``memory://``.
    durable : bool, default False
        SQLite files: ``synchronous=FULL``, so a commit is on disk when it returns (one fsync
        per transaction). Under ``NORMAL`` a power loss can roll back the transactions since
        the last checkpoint; the prediction log, which deletes its journal once rows are
        committed, needs commits that survive one. PostgreSQL commits are durable anyway.
    **kwargs
        Passed to :func:`sqlalchemy.create_engine`.

    Returns
    -------
    sqlalchemy.Engine

    Raises
    ------
    MissingDependencyError
        When a PostgreSQL URL is given and psycopg is not installed.
    StoreURLError
        When the URL does not select a SQL backend.
    """
    kind = store_kind(url)
    sa_url = sqlalchemy_url(url)
    # Bound parameters never appear in exception messages or SQL echo: the prediction log's
    # INSERT carries applicants' raw attributes and subject ids.
    kwargs.setdefault("hide_parameters", True)
    if kind == "postgresql":
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError(
                "psycopg", "postgres", f"the PostgreSQL store {url.split('@')[-1]!r}"
            ) from exc
        connect_args = {"connect_timeout": PG_CONNECT_TIMEOUT_S, **kwargs.pop("connect_args", {})}
        return sa.create_engine(
            sa_url, pool_pre_ping=True, connect_args=connect_args, future=True, **kwargs
        )
    if kind == "memory":
        engine = sa.create_engine(
            sa_url,
            poolclass=StaticPool,
            connect_args={"check_same_thread": False},
            **kwargs,
        )
    else:
        db_path = sa.make_url(sa_url).database
        if db_path and db_path != ":memory:":
            Path(db_path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            sa_url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
    _configure_sqlite(engine, wal=kind == "sqlite", durable=durable)
    return engine


def _configure_sqlite(engine: sa.Engine, *, wal: bool, durable: bool = False) -> None:
    # pysqlite's own transaction handling defers BEGIN and cannot take the write lock up front;
    # the SQLAlchemy-documented recipe hands BEGIN to us so read-modify-write transactions can
    # use BEGIN IMMEDIATE (no lost update between two processes).
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        if wal:
            _enable_wal(cur)
            cur.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        mode = conn.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def _enable_wal(cur: Any) -> None:
    # Switching a new file to WAL needs its exclusive lock, and SQLite answers "database is
    # locked" at once, without its busy handler, when workers starting together race for it
    # (seen with 4 processes on a fresh file). Retry within the busy timeout; once the file is
    # in WAL mode (persistent) the pragma takes no lock.
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
