"""The guarded real-time scoring service (requirements S1-S6).

This package holds the service's state layer — configuration (:func:`load_config`), API keys
(:class:`KeyStore`), rate limits (:class:`AsyncRateLimiter`), the prediction log
(:class:`PredictionLog`) — and the FastAPI app with its guards pipeline built on them.
Flags live in :mod:`tabguard.flags`, storage plumbing in :mod:`tabguard.storage`.
"""

from tabguard.serving._config import (
    CONFIG_FILE,
    HOME_ENV,
    ConfigError,
    DecisionsConfig,
    LimitsConfig,
    LogConfig,
    ServingConfig,
    StoresConfig,
    load_config,
    tabguard_home,
)
from tabguard.serving._keys import (
    DEFAULT_SCOPES,
    SCOPES,
    ApiClient,
    ApiKeyError,
    KeyCache,
    KeyStore,
    MemoryKeyStore,
    SqlKeyStore,
    open_key_store,
    parse_scopes,
)
from tabguard.serving._limits import AsyncRateLimiter, RateDecision, RateLimiter, parse_rate
from tabguard.serving._log import (
    LogStats,
    PredictionLog,
    PredictionRecord,
    Spool,
    dumps_json,
    record_to_row,
    row_to_record,
)

__all__ = [
    "CONFIG_FILE",
    "DEFAULT_SCOPES",
    "HOME_ENV",
    "SCOPES",
    "ApiClient",
    "ApiKeyError",
    "AsyncRateLimiter",
    "ConfigError",
    "DecisionsConfig",
    "KeyCache",
    "KeyStore",
    "LimitsConfig",
    "LogConfig",
    "LogStats",
    "MemoryKeyStore",
    "PredictionLog",
    "PredictionRecord",
    "RateDecision",
    "RateLimiter",
    "ServingConfig",
    "Spool",
    "SqlKeyStore",
    "StoresConfig",
    "dumps_json",
    "load_config",
    "open_key_store",
    "parse_rate",
    "parse_scopes",
    "record_to_row",
    "row_to_record",
    "tabguard_home",
]
