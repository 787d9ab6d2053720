"""Open the stores a :class:`~tabguard.serving.ServingConfig` names.

The service and the CLI open flags, API keys, the prediction log and the rate limiter through
these functions, so both act on the same state the same way. The configuration itself only
parses and validates (``_config.py``); each store builds itself from its section.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tabguard.errors import MissingDependencyError
from tabguard.storage import redact_url, store_kind

if TYPE_CHECKING:
    from tabguard.flags import BaseFlagStore
    from tabguard.serving._config import ServingConfig
    from tabguard.serving._keys import MemoryKeyStore, SqlKeyStore
    from tabguard.serving._limits import AsyncRateLimiter
    from tabguard.serving._log import PredictionLog
    from tabguard.serving._log_read import LogReader


def open_flags(config: ServingConfig) -> BaseFlagStore:
    """Open ``[stores] flags`` (with ``redis_prefix`` for Redis)."""
    from tabguard.flags import open_flag_store

    return open_flag_store(config.stores.flags, redis_prefix=config.stores.redis_prefix)


def open_keys(config: ServingConfig) -> SqlKeyStore | MemoryKeyStore:
    """Open ``[stores] keys``."""
    from tabguard.serving._keys import open_key_store

    return open_key_store(config.stores.keys)


def open_log(config: ServingConfig) -> PredictionLog:
    """Open ``[stores] log`` for writing, with the ``[log]`` settings (starts its writer)."""
    from tabguard.serving._log import PredictionLog

    return PredictionLog.from_config(config)


def open_log_reader(config: ServingConfig) -> LogReader:
    """Open ``[stores] log`` for reading only (no writer thread, no spool replay)."""
    from tabguard.serving._log_read import LogReader

    return LogReader(config.stores.log)


def open_limiter(config: ServingConfig, **overrides: Any) -> AsyncRateLimiter:
    """The asyncio rate limiter of ``[limits]`` (create it inside the serving process)."""
    from tabguard.serving._limits import AsyncRateLimiter

    limiter: AsyncRateLimiter = AsyncRateLimiter.from_config(config.limits, **overrides)
    return limiter


#: The driver module each store kind needs: (module, package, extra).
_DRIVERS = {"redis": ("redis", "redis", "redis"), "postgresql": ("psycopg", "psycopg", "postgres")}


def require_drivers(config: ServingConfig) -> None:
    """Check that the driver of every configured store is installed, before anything starts.

    ``tabguard serve`` calls it first, so a ``redis://`` store without the ``redis`` package
    is one line naming the extra instead of a traceback in every worker.

    Raises
    ------
    MissingDependencyError
        Naming the setting, its URL (password masked), the package and the extra.
    """
    urls = {
        "[stores] flags": config.stores.flags,
        "[stores] keys": config.stores.keys,
        "[stores] log": config.stores.log,
        "[limits] storage": config.limits.storage,
    }
    if config.probing.enabled:
        urls["[probing] storage"] = config.probing.storage
    for setting, url in urls.items():
        driver = _DRIVERS.get(store_kind(url))
        if driver is None:
            continue
        module, package, extra = driver
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise MissingDependencyError(package, extra, f"{setting} {redact_url(url)!r}") from exc
