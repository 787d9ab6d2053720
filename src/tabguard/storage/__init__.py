"""Storage plumbing shared by tabguard's stores (flags, API keys, prediction log).

A store URL chooses the backend: ``sqlite:///path`` (the default, one file shared by worker
processes), ``postgresql://...`` (psycopg 3), ``redis://...`` and ``memory://``.
:func:`create_sql_engine` builds a SQLAlchemy engine tuned for several processes,
:func:`ensure_schema` creates tables, and :func:`backend_errors` maps every driver exception to
:class:`~tabguard.errors.BackendUnavailableError`.
"""

from typing import TYPE_CHECKING

from tabguard._lazy import attach

if TYPE_CHECKING:  # the public names; imported on first use (tabguard._lazy)
    from tabguard.storage._engine import SQLITE_BEGIN_OPTION, create_sql_engine
    from tabguard.storage._errors import (
        backend_errors,
        driver_exceptions,
        driver_message,
        is_connectivity_error,
    )
    from tabguard.storage._redis import REDIS_TIMEOUT_S, create_redis_client
    from tabguard.storage._schema import (
        METADATA,
        api_keys_table,
        ensure_schema,
        flag_history_table,
        flags_table,
        predictions_table,
    )
    from tabguard.storage._url import (
        STORE_KINDS,
        StoreKind,
        StoreURLError,
        redact_text,
        redact_url,
        sqlalchemy_url,
        store_kind,
    )

__getattr__, __dir__ = attach(__name__, __file__)

__all__ = [
    "METADATA",
    "REDIS_TIMEOUT_S",
    "SQLITE_BEGIN_OPTION",
    "STORE_KINDS",
    "StoreKind",
    "StoreURLError",
    "api_keys_table",
    "backend_errors",
    "create_redis_client",
    "create_sql_engine",
    "driver_exceptions",
    "driver_message",
    "ensure_schema",
    "flag_history_table",
    "flags_table",
    "is_connectivity_error",
    "predictions_table",
    "redact_text",
    "redact_url",
    "sqlalchemy_url",
    "store_kind",
]
