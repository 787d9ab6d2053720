"""Map driver exceptions (SQLAlchemy, psycopg, sqlite3, redis, limits) to tabguard's own.

Callers of tabguard's stores see :class:`~tabguard.errors.BackendUnavailableError` (with the
driver exception as ``__cause__``), never a driver type. The mapping lives here, in one place,
and ``tests/storage/test_errors.py`` fails if a store lets a driver error through.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import sqlalchemy.exc as sa_exc

from tabguard.errors import BackendUnavailableError, TabguardError
from tabguard.storage._url import redact_text


@cache
def driver_exceptions() -> tuple[type[BaseException], ...]:
    """Return the exception types that mean "the backend failed" (optional drivers included)."""
    types: list[type[BaseException]] = [sa_exc.SQLAlchemyError, sqlite3.Error, OSError]
    try:
        import redis.exceptions

        types.append(redis.exceptions.RedisError)
    except ImportError:  # the redis extra is optional
        pass
    try:
        import psycopg

        types.append(psycopg.Error)
    except ImportError:  # the postgres extra is optional
        pass
    try:
        import limits.errors

        types.append(limits.errors.StorageError)
    except ImportError:  # pragma: no cover - limits is a core dependency
        pass
    return tuple(types)


def is_connectivity_error(exc: BaseException) -> bool:
    """Whether ``exc`` means "cannot reach the database now" rather than "bad data".

    Connection refused, a dropped database, a pool timeout or a locked SQLite file are
    transient: the caller should keep the data and retry later. Integrity or data errors are
    about one statement and will fail again on retry.
    """
    cause = exc.__cause__ if isinstance(exc, BackendUnavailableError) and exc.__cause__ else exc
    if isinstance(
        cause,
        sa_exc.OperationalError
        | sa_exc.InterfaceError
        | sa_exc.DisconnectionError
        | sa_exc.TimeoutError,
    ):
        return True
    if isinstance(cause, sa_exc.DBAPIError) and cause.connection_invalidated:
        return True
    return isinstance(cause, OSError | sqlite3.OperationalError) or type(
        cause
    ).__module__.startswith(("redis", "limits"))


def driver_message(exc: BaseException) -> str:
    """One line about a driver error, safe to log: no SQL, no bound parameters, no password.

    SQLAlchemy's messages append the statement and its parameters (an INSERT into the
    prediction log carries applicants' attributes and subject ids); only the driver's own
    first line is kept, with URL passwords masked.
    """
    if isinstance(exc, TabguardError):  # already worded by tabguard (without the SQL)
        lines = str(exc).strip().splitlines()
        return redact_text(lines[0][:600]) if lines else type(exc).__name__
    cause: BaseException = exc
    if isinstance(exc, sa_exc.StatementError) and exc.orig is not None:
        cause = exc.orig
    lines = str(cause).strip().splitlines()
    text = lines[0][:300] if lines else ""
    return f"{type(cause).__name__}: {redact_text(text)}" if text else type(cause).__name__


@contextmanager
def backend_errors(backend: str, action: str) -> Iterator[None]:
    """Translate driver exceptions raised inside the block to :class:`BackendUnavailableError`.

    Parameters
    ----------
    backend : str
        What failed, for the message, e.g. ``"flag store sqlite:///.tabguard/state.db"``.
    action : str
        What was being done, e.g. ``"set flag 'threshold'"``.

    Examples
    --------
    >>> with backend_errors("flag store memory://", "read flags"):
    ...     pass
    """
    try:
        yield
    except TabguardError:
        raise
    except driver_exceptions() as exc:
        raise BackendUnavailableError(
            f"{backend}: {action} failed ({driver_message(exc)}); check that "
            "the server is running and the URL in tabguard.toml [stores]/[limits] is right"
        ) from exc
