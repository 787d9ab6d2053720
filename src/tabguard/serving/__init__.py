"""The guarded real-time scoring service (requirements S1-S6).

This package holds the service's state layer — configuration (:func:`load_config`, a leaf that
only parses and validates ``tabguard.toml``), the store factories (:func:`open_flags`,
:func:`open_keys`, :func:`open_log`, :func:`open_log_reader`, :func:`open_limiter`), API keys
(:class:`KeyStore`), rate limits (:class:`AsyncRateLimiter`), the prediction log (written by
:class:`PredictionLog`, read by :class:`LogReader`) — and the FastAPI app with its guards
pipeline built on them (:func:`create_app`, :class:`ScoringService`, :class:`GuardPipeline`),
the fast scoring path (:func:`compile_scorer`), the decision layer (:class:`DecisionPolicy`),
the rule-based fallback (:class:`RulePolicy`) and probing detection (:class:`ProbingDetector`).
Flags live in :mod:`tabguard.flags`, storage plumbing in :mod:`tabguard.storage`.
"""

from typing import TYPE_CHECKING

from tabguard._lazy import attach

if TYPE_CHECKING:  # the public names; imported on first use (tabguard._lazy)
    from tabguard.serving._app import (
        MODEL_ENV,
        DecisionSettings,
        ScoringService,
        ServerSettings,
        app_from_env,
        create_app,
        resolve_reference,
        service_settings,
    )
    from tabguard.serving._config import (
        CONFIG_FILE,
        HOME_ENV,
        ConfigError,
        DecisionsConfig,
        LimitsConfig,
        LogConfig,
        ProbingConfig,
        ServerConfig,
        ServingConfig,
        StoresConfig,
        load_config,
        tabguard_home,
    )
    from tabguard.serving._decision import DecisionPolicy, DelayedDecisions, StoredDecision
    from tabguard.serving._guards import (
        Authenticate,
        ClientLimit,
        Clock,
        Decide,
        DetectProbing,
        FlowGate,
        Guard,
        GuardPipeline,
        Models,
        ParseBody,
        Rejection,
        RequestContext,
        Respond,
        Sanitise,
        Score,
        SubjectLimit,
        Validate,
        system_clock,
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
    from tabguard.serving._log import LogStats, PredictionLog
    from tabguard.serving._log_read import LOG_COLUMNS, LogReader, Watermark
    from tabguard.serving._metrics import ServiceMetrics
    from tabguard.serving._probing import (
        SIGNALS,
        MemoryProbingStore,
        ProbingDetector,
        ProbingResult,
        ProbingStore,
        RedisProbingStore,
    )
    from tabguard.serving._record import PredictionRecord, dumps_json, record_to_row, row_to_record
    from tabguard.serving._reference import ReferenceProfile
    from tabguard.serving._rules import RuleOutcome, RulePolicy
    from tabguard.serving._scoring import FastScorer, compile_scorer, random_records
    from tabguard.serving._spool import Spool
    from tabguard.serving._stores import (
        open_flags,
        open_keys,
        open_limiter,
        open_log,
        open_log_reader,
    )

__getattr__, __dir__ = attach(__name__, __file__)

__all__ = [
    "CONFIG_FILE",
    "DEFAULT_SCOPES",
    "HOME_ENV",
    "LOG_COLUMNS",
    "MODEL_ENV",
    "SCOPES",
    "SIGNALS",
    "ApiClient",
    "ApiKeyError",
    "AsyncRateLimiter",
    "Authenticate",
    "ClientLimit",
    "Clock",
    "ConfigError",
    "Decide",
    "DecisionPolicy",
    "DecisionSettings",
    "DecisionsConfig",
    "DelayedDecisions",
    "DetectProbing",
    "FastScorer",
    "FlowGate",
    "Guard",
    "GuardPipeline",
    "KeyCache",
    "KeyStore",
    "LimitsConfig",
    "LogConfig",
    "LogReader",
    "LogStats",
    "MemoryKeyStore",
    "MemoryProbingStore",
    "Models",
    "ParseBody",
    "PredictionLog",
    "PredictionRecord",
    "ProbingConfig",
    "ProbingDetector",
    "ProbingResult",
    "ProbingStore",
    "RateDecision",
    "RateLimiter",
    "RedisProbingStore",
    "ReferenceProfile",
    "Rejection",
    "RequestContext",
    "Respond",
    "RuleOutcome",
    "RulePolicy",
    "Sanitise",
    "Score",
    "ScoringService",
    "ServerConfig",
    "ServerSettings",
    "ServiceMetrics",
    "ServingConfig",
    "Spool",
    "SqlKeyStore",
    "StoredDecision",
    "StoresConfig",
    "SubjectLimit",
    "Validate",
    "Watermark",
    "app_from_env",
    "compile_scorer",
    "create_app",
    "dumps_json",
    "load_config",
    "open_flags",
    "open_key_store",
    "open_keys",
    "open_limiter",
    "open_log",
    "open_log_reader",
    "parse_rate",
    "parse_scopes",
    "random_records",
    "record_to_row",
    "resolve_reference",
    "row_to_record",
    "service_settings",
    "system_clock",
    "tabguard_home",
]
