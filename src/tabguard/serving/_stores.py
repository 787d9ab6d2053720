"""Open the stores a :class:`~tabguard.serving.ServingConfig` names.

The service and the CLI open flags, API keys, the prediction log and the rate limiter through
these functions, so both act on the same state the same way. The configuration itself only
parses and validates (``_config.py``); each store builds itself from its section.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
