"""The service's configuration: ``$TABGUARD_HOME/tabguard.toml``, parsed and validated once.

A leaf: this module reads and checks settings and nothing else. It opens no store (that is
:mod:`tabguard.serving._stores`) and imports no other part of the service, so every part can
import it. :func:`load_config` validates every section of the file in one pass, and every
problem goes through one error mapper (:class:`ConfigError`: file, dotted key, rule, value).

State lives under ``TABGUARD_HOME`` (default ``./.tabguard``). Every section and key is
optional; an absent file means the defaults below. Store URLs choose the backends.

Every key can also come from the environment as ``TABGUARD_<SECTION>_<KEY>`` (upper case),
e.g. ``TABGUARD_STORES_LOG``, ``TABGUARD_LIMITS_STORAGE``, ``TABGUARD_SERVER_PORT``, so
database and Redis URLs with passwords need not live in the file. Precedence: environment,
then file, then default. A variable with an empty value is ignored; a variable naming a
section but no key of it is an error (a typo must not silently fall back to the file).

.. code-block:: toml

    [limits]
    per_client = "100/second"        # or "off"
    per_subject = "1/month"          # or "off" (the default)
    strategy = "moving-window"       # fixed-window | moving-window | sliding-window
    storage = "memory://"            # or "redis://127.0.0.1:6379/0" (shared by replicas)
    on_backend_error = "fail_closed" # or "fail_open"

    [stores]
    flags = "sqlite:///.tabguard/state.db"   # postgresql://..., redis://..., memory://
    keys = "sqlite:///.tabguard/state.db"    # postgresql://..., memory://
    log = "sqlite:///.tabguard/predictions.db"  # postgresql://...

    [log]
    batch_size = 200
    flush_interval = 0.5
    spool_dir = ".tabguard/spool"
    journal_dir = ".tabguard/journal"  # every record written here before its response
    fsync = "interval"                  # or "always", "never" (what a power loss can lose)

    [decisions]
    delay_seconds = 0

    [server]      # how `tabguard serve` runs (host, port, workers...)
    [probing]     # probing detection (S6)
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from tabguard._home import DEFAULT_HOME, HOME_ENV, tabguard_home
from tabguard.errors import TabguardError
from tabguard.storage import StoreURLError, redact_url, store_kind
from tabguard.storage._url import StoreKind

#: File name of the configuration inside the home.
CONFIG_FILE = "tabguard.toml"
#: Largest accepted request body by default (bytes); larger bodies get 413.
DEFAULT_MAX_BODY_BYTES = 64 * 1024

#: Backends each store accepts.
STORE_BACKENDS: dict[str, tuple[StoreKind, ...]] = {
    "flags": ("sqlite", "postgresql", "redis", "memory"),
    "keys": ("sqlite", "postgresql", "memory"),
    "log": ("sqlite", "postgresql", "memory"),
}


class ConfigError(TabguardError, ValueError):
    """``tabguard.toml`` is unreadable or a key breaks its rule.

    Parameters
    ----------
    path : Path
        The configuration file.
    key : str
        Dotted key at fault, e.g. ``limits.per_client``.
    rule : str
        The rule it breaks.
    value : Any
        The value received.
    variable : str, optional
        The environment variable the value came from (it is named instead of the file).
    """

    def __init__(
        self, path: Path, key: str, rule: str, value: Any = None, variable: str | None = None
    ) -> None:
        self.path, self.key, self.rule, self.value = path, key, rule, value
        self.variable = variable
        got = f"; got {value!r}" if value is not None else ""
        where = f"environment variable {variable} ({key})" if variable else f"{path}: {key}"
        super().__init__(f"{where}: {rule}{got}")


_STRICT = ConfigDict(extra="forbid", frozen=True)
_OFF = frozenset({"off", "none", "disabled", ""})


def _kind(url: str) -> StoreKind:
    try:
        return store_kind(url)
    except StoreURLError:
        raise ValueError(
            "scheme must be one of sqlite://, postgresql://, redis://, memory://"
        ) from None


def _memory_or_redis(value: str) -> str:
    try:
        kind = store_kind(value)
    except StoreURLError:
        kind = None
    if kind not in ("memory", "redis"):
        raise ValueError("must be memory:// or redis://host:port/db")
    return value


def _check_rate(value: str) -> None:
    # The rate syntax is the limits library's; _limits.py is the one module that imports it.
    from tabguard.serving._limits import RATE_RULE, parse_rate

    try:
        parse_rate(value)
    except ValueError:
        raise ValueError(RATE_RULE) from None


class LimitsConfig(BaseModel):
    """``[limits]``: throttling per API client and per subject (S1).

    Attributes
    ----------
    per_client : str or None
        Rate per API key, e.g. ``"100/second"``; ``None`` (``"off"``) disables it.
    per_subject : str or None
        Rate per subject (customer), e.g. ``"1/month"``; off by default.
    strategy : {'moving-window', 'fixed-window', 'sliding-window'}
        Counting strategy of the ``limits`` library.
    storage : str
        ``memory://`` (per process) or ``redis://...`` (shared by replicas and workers).
    on_backend_error : {'fail_closed', 'fail_open'}
        What to do when Redis is unreachable: deny (429/503 with a distinct reason) or allow
        (counted in the result so metrics can show it).
    key_prefix : str
        Prefix of the counters in Redis.
    timeout : float
        Redis connect/read timeout in seconds.
    auth_failures : str or None
        Failed authentications allowed per source address and per key id (e.g.
        ``"20/minute"``); beyond it their requests get 429 ``auth_throttled`` without a key
        check. ``None`` (``"off"``) disables it.
    auth_tarpit : float
        Seconds a throttled request is held before its 429 (at most ``1024`` at once per
        process): a flooding client's connections each get one answer per this interval. 0
        answers at once.
    """

    model_config = _STRICT

    per_client: str | None = "100/second"
    per_subject: str | None = None
    auth_failures: str | None = "20/minute"
    auth_tarpit: float = Field(default=1.0, ge=0, le=60)
    strategy: Literal["moving-window", "fixed-window", "sliding-window"] = "moving-window"
    storage: str = "memory://"
    on_backend_error: Literal["fail_closed", "fail_open"] = "fail_closed"
    key_prefix: str = "tabguard"
    timeout: float = Field(default=0.5, gt=0, le=30)

    @field_validator("per_client", "per_subject", "auth_failures", mode="before")
    @classmethod
    def _rate(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.strip().lower() in _OFF):
            return None
        if not isinstance(value, str):
            raise ValueError("must be a rate string such as '100/second' or 'off'")
        _check_rate(value)
        return value.strip()

    @field_validator("storage")
    @classmethod
    def _storage(cls, value: str) -> str:
        return _memory_or_redis(value)


class StoresConfig(BaseModel):
    """``[stores]``: where flags, API keys and the prediction log live (URLs).

    Defaults are SQLite files under the home (``state.db`` for flags and keys,
    ``predictions.db`` for the log, so the log's write load never delays a flag change).
    """

    model_config = _STRICT

    flags: str
    keys: str
    log: str
    redis_prefix: str = "tabguard:"

    @field_validator("flags", "keys", "log")
    @classmethod
    def _backend(cls, value: str, info: Any) -> str:
        kind = _kind(value)
        allowed = STORE_BACKENDS[info.field_name]
        if kind not in allowed:
            raise ValueError(
                f"the {info.field_name} store supports "
                f"{', '.join(a + '://' for a in allowed)}, not {kind}://"
            )
        return value


class LogConfig(BaseModel):
    """``[log]``: batching and spooling of the prediction log (S5).

    Attributes
    ----------
    batch_size : int
        Records written per database round trip.
    flush_interval : float
        Longest time (s) a record waits in memory before it is written.
    spool_dir : Path
        Where batches go (JSON lines, fsync'd) while the database is unreachable.
    retry_interval : float
        Seconds between reconnection attempts while the database is down.
    journal : bool
        Write every record to the local journal before its response leaves (a killed
        process then loses no answered decision).
    journal_dir : Path
        Where the journal lives (local disk; shared by the workers of one deployment).
    fsync : {'interval', 'always', 'never'}
        When the journal reaches the disk: every ``fsync_interval`` seconds off the request
        path, before every response, or when the kernel decides. Bounds what a power loss
        (not a killed process) can lose.
    fsync_interval : float
        Seconds between journal fsyncs under ``interval``.
    refusal_samples : int
        Request bodies kept per source and minute in the summary of unauthenticated
        refusals (the others are counted, not stored).
    refusal_sample_bytes : int
        Longest sample body kept (bytes).
    """

    model_config = _STRICT

    batch_size: int = Field(default=200, ge=1, le=100_000)
    flush_interval: float = Field(default=0.5, gt=0, le=60)
    spool_dir: Path
    retry_interval: float = Field(default=2.0, gt=0, le=3600)
    journal: bool = True
    journal_dir: Path
    fsync: Literal["interval", "always", "never"] = "interval"
    fsync_interval: float = Field(default=1.0, gt=0, le=60)
    refusal_samples: int = Field(default=3, ge=0, le=100)
    refusal_sample_bytes: int = Field(default=1024, ge=0, le=65536)


class DecisionsConfig(BaseModel):
    """``[decisions]``: the decision layer (S4) and the rule policy.

    Attributes
    ----------
    delay_seconds : float
        Default delay before a decision is released (the ``delay`` flag, when above 0, wins).
    rules_default : {'review', 'deny', 'approve'}
        The rule policy's decision when no rule applies.
    rules_deny_above : float
        Monotone risk at or above which the rule policy denies.
    rules_approve_below : float, optional
        Monotone risk below which the rule policy approves (off by default).
    """

    model_config = _STRICT

    delay_seconds: float = Field(default=0.0, ge=0)
    rules_default: Literal["review", "deny", "approve"] = "review"
    rules_deny_above: float = Field(default=0.9, ge=0, le=1)
    rules_approve_below: float | None = Field(default=None, ge=0, le=1)


class ServerConfig(BaseModel):
    """``[server]``: how ``tabguard serve`` runs, and app-level options.

    Attributes
    ----------
    host, port, workers
        Defaults of ``tabguard serve``.
    reference : str, optional
        Reference data for the probing detector and the rule policy (as ``--reference``).
    max_body_bytes : int
        Largest request body; larger ones get 413.
    max_head_bytes : int
        Largest request line plus headers while incomplete; larger ones get 431 and the
        connection is closed (h11's limit; enforced by the HTTP protocol, see
        ``tabguard.serving._http``).
    request_timeout : float
        Seconds a request (head and body) may take to arrive from the connection or its first
        byte (slowloris): an idle new connection is closed, an incomplete head gets 408.
    key_cache_ttl : float
        Seconds a key check is cached (a revocation takes effect within this).
    flag_interval : float
        Seconds between flag-store polls (changes take effect within this).
    metrics_require_key : bool
        Require an ``admin`` key on ``/metrics`` (else it is open, for the scraper).
    monitor : str, optional
        A ``monitor.yaml`` (relative to ``TABGUARD_HOME``) to run in-process: every
        ``monitor_every`` seconds the service updates the monitor store and evaluates the alert
        rules (``tabguard monitor run`` in a background thread). Off by default.
    monitor_every : float
        Seconds between in-process monitor turns.
    model_interval : float
        Seconds between checks of ``$TABGUARD_HOME/models.json``, the deployment pointer that
        ``tabguard models promote|rollback`` rewrite (a promoted model goes live within this,
        without a restart); 0 turns the watch off.
    trusted_proxies : list of str
        Addresses or networks of reverse proxies whose ``X-Forwarded-For`` names the source
        address (for the failed-authentication limits); empty: the TCP peer is the source.
    metrics_segments : dict
        Request ``segment`` keys that label ``tabguard_decisions_total`` and
        ``tabguard_score``, each with the values that get their own label (others are
        ``other``): ``{channel = ["online", "branch", "partner"]}``. The contract's category
        ``segments`` features label them too, with their categories.
    dashboard : str, optional
        A ``monitor.yaml`` (relative to ``TABGUARD_HOME``) whose store ``/dashboard`` shows,
        to API keys with the ``monitor`` scope. Off by default.
    """

    model_config = _STRICT

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    reference: str | None = None
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024, le=16 * 1024 * 1024)
    max_head_bytes: int = Field(default=16 * 1024, ge=4096, le=1024 * 1024)
    request_timeout: float = Field(default=10.0, ge=0.1, le=300)
    key_cache_ttl: float = Field(default=5.0, ge=0, le=3600)
    flag_interval: float = Field(default=0.5, gt=0, le=1.0)
    metrics_require_key: bool = False
    monitor: str | None = None
    monitor_every: float = Field(default=60.0, ge=1, le=86400)
    model_interval: float = Field(default=2.0, ge=0, le=3600)
    trusted_proxies: list[str] = Field(default_factory=list)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxies(cls, value: Any) -> Any:
        from tabguard.serving._source import parse_networks  # a leaf (ipaddress only)

        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list):
            raise ValueError("must be a list of IP addresses or networks")
        items = [str(v).strip() for v in items if str(v).strip()]
        parse_networks(items)
        return items

    metrics_segments: dict[
        Annotated[str, StringConstraints(min_length=1, max_length=64)],
        Annotated[list[Annotated[str, StringConstraints(max_length=128)]], Field(max_length=50)],
    ] = Field(default_factory=dict, max_length=8)
    dashboard: str | None = None


class ProbingConfig(BaseModel):
    """``[probing]``: probing detection (S6).

    Attributes
    ----------
    enabled : bool
        Run the detector at all.
    action : {'flag', 'throttle', 'review', 'deny'}
        What happens to a flagged client's requests during ``cooldown``.
    storage : str
        ``memory://`` (per process) or ``redis://host:port/db`` (shared).
    key_prefix : str
        Prefix of the Redis keys.
    window : float
        Seconds of history that count.
    history : int
        Most recent queries kept per client.
    max_changed : int
        A query differing from an earlier one in 1..max_changed features is a walk step.
    tolerance : float
        Share of a number's spread (reference 0.5-99.5% range, else its clip or valid range)
        up to which two values are the same value to the detector: nudges, jitter and
        rounding below it do not hide a walk (docs/serving.md, probing detection).
    walk_min, gameable_min, boundary_min, ood_min : int
        Queries with the signal, within the window, that flag the client.
    boundary_margin : float
        |score - threshold| below which a query is near the boundary.
    boundary_share : float
        Share of the window's queries that must be near the boundary too (a busy client sees
        some scores near the threshold by chance; an attacker sees mostly those).
    cooldown : float
        Seconds a flag lasts after the last flagged query.
    throttle : str
        The flagged client's rate when ``action = "throttle"``.
    timeout : float
        Redis connect/read timeout in seconds.
    """

    model_config = _STRICT

    enabled: bool = True
    action: Literal["flag", "throttle", "review", "deny"] = "flag"
    storage: str = "memory://"
    key_prefix: str = "tabguard"
    window: float = Field(default=600.0, gt=0, le=30 * 86400)
    history: int = Field(default=100, ge=2, le=10_000)
    max_changed: int = Field(default=1, ge=1, le=10)
    tolerance: float = Field(default=0.005, ge=0, le=0.2)
    walk_min: int = Field(default=5, ge=1)
    gameable_min: int = Field(default=3, ge=1)
    boundary_min: int = Field(default=8, ge=1)
    boundary_margin: float = Field(default=0.03, ge=0, le=0.5)
    boundary_share: float = Field(default=0.25, ge=0, le=1)
    ood_min: int = Field(default=5, ge=1)
    cooldown: float = Field(default=600.0, ge=0)
    throttle: str = "1/minute"
    timeout: float = Field(default=0.5, gt=0, le=30)

    @field_validator("storage")
    @classmethod
    def _storage(cls, value: str) -> str:
        return _memory_or_redis(value)

    @field_validator("throttle")
    @classmethod
    def _rate(cls, value: str) -> str:
        _check_rate(value)
        return value


class ServingConfig(BaseModel):
    """The whole ``tabguard.toml``, validated, with defaults filled in.

    Built by :func:`load_config`; stores are opened from it by :mod:`tabguard.serving._stores`
    (``open_flags(cfg)``, ``open_keys(cfg)``, ``open_log(cfg)``...).
    """

    model_config = _STRICT

    home: Path
    path: Path
    from_file: bool
    #: Keys set by environment variables: dotted key -> variable name.
    environment: dict[str, str] = Field(default_factory=dict)
    limits: LimitsConfig = LimitsConfig()
    stores: StoresConfig
    log: LogConfig
    decisions: DecisionsConfig = DecisionsConfig()
    probing: ProbingConfig = ProbingConfig()
    server: ServerConfig = ServerConfig()


#: The sections of ``tabguard.toml``, in the order the docs list them.
SECTIONS = ("limits", "stores", "log", "decisions", "probing", "server")
_SECTION_MODELS: dict[str, type[BaseModel]] = {
    "limits": LimitsConfig,
    "stores": StoresConfig,
    "log": LogConfig,
    "decisions": DecisionsConfig,
    "probing": ProbingConfig,
    "server": ServerConfig,
}
#: Prefix of the settings given by environment variable (``TABGUARD_<SECTION>_<KEY>``).
ENV_PREFIX = "TABGUARD_"


def env_variable(section: str, key: str) -> str:
    """The variable of a setting: ``env_variable("stores", "log") == "TABGUARD_STORES_LOG"``."""
    return f"{ENV_PREFIX}{section.upper()}_{key.upper()}"


def environment_settings(
    path: Path, environ: dict[str, str] | None = None
) -> dict[tuple[str, str], tuple[str, str]]:
    """The settings given by ``TABGUARD_<SECTION>_<KEY>`` variables.

    Returns
    -------
    dict
        ``{(section, key): (variable, value)}``; empty values are left out.

    Raises
    ------
    ConfigError
        A variable names a section but none of its keys.
    """
    env = os.environ if environ is None else environ
    found: dict[tuple[str, str], tuple[str, str]] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or value == "":
            continue
        rest = name[len(ENV_PREFIX) :]
        for section in SECTIONS:
            head = f"{section.upper()}_"
            if not rest.startswith(head):
                continue
            key = rest[len(head) :].lower()
            fields = _SECTION_MODELS[section].model_fields
            if key not in fields:
                known = ", ".join(env_variable(section, k) for k in fields)
                raise ConfigError(
                    path,
                    f"{section}.{key}",
                    f"unknown setting; the variables of [{section}] are {known}",
                    variable=name,
                )
            found[(section, key)] = (name, value)
    return found


def default_config_values(home: Path) -> dict[str, Any]:
    """Return the defaults that depend on the home (store URLs, spool directory)."""
    return {
        "stores": {
            "flags": f"sqlite:///{home / 'state.db'}",
            "keys": f"sqlite:///{home / 'state.db'}",
            "log": f"sqlite:///{home / 'predictions.db'}",
        },
        "log": {"spool_dir": str(home / "spool"), "journal_dir": str(home / "journal")},
    }


def load_config(home: str | os.PathLike[str] | None = None) -> ServingConfig:
    """Read and validate ``tabguard.toml`` from the home (defaults when the file is absent).

    Every section is checked here, once; the service, the CLI and the stores take the result
    as it is.

    Parameters
    ----------
    home : path-like, optional
        The state directory; default ``$TABGUARD_HOME`` or ``./.tabguard``.

    Returns
    -------
    ServingConfig

    Raises
    ------
    ConfigError
        Invalid TOML, an unknown section or key, or a value breaking its rule; the message
        names the file, the dotted key, the rule and the value, on one line.

    Examples
    --------
    >>> import tempfile
    >>> cfg = load_config(tempfile.mkdtemp())
    >>> cfg.limits.per_client, cfg.limits.on_backend_error, cfg.server.port
    ('100/second', 'fail_closed', 8000)
    """
    home_path = tabguard_home(home)
    path = home_path / CONFIG_FILE
    data: dict[str, Any] = {}
    from_file = path.is_file()
    if from_file:
        try:
            with path.open("rb") as fh:
                data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(path, "(file)", f"invalid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(path, "(file)", f"cannot be read: {exc.strerror}") from None
    for section, value in data.items():
        if section not in SECTIONS:
            raise ConfigError(
                path, section, f"unknown section; known sections: {', '.join(SECTIONS)}"
            )
        if not isinstance(value, dict):
            raise ConfigError(path, section, "must be a table ([section])", value)
    merged: dict[str, Any] = {k: dict(v) for k, v in data.items()}
    for section, defaults in default_config_values(home_path).items():
        merged[section] = {**defaults, **merged.get(section, {})}
    from_env = environment_settings(path)
    for (section, key), (_, value) in from_env.items():
        merged.setdefault(section, {})[key] = value
    variables = {f"{section}.{key}": name for (section, key), (name, _) in from_env.items()}
    try:
        return ServingConfig(
            home=home_path, path=path, from_file=from_file, environment=variables, **merged
        )
    except ValidationError as exc:
        raise _config_error(path, exc, variables) from None


def _config_error(path: Path, exc: ValidationError, variables: dict[str, str]) -> ConfigError:
    """The one mapping of a validation error to a :class:`ConfigError` (first problem)."""
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"])
    value = None if err["type"] == "missing" else err.get("input")
    if isinstance(value, str) and "://" in value:
        value = redact_url(value)  # never print a password from a store URL
    if err["type"] == "extra_forbidden":
        rule = "unknown key (check its spelling against docs/operations.md)"
    else:
        rule = str(err["msg"]).removeprefix("Value error, ")
    return ConfigError(path, key, rule, value, variable=variables.get(key))


def redacted(config: BaseModel) -> dict[str, Any]:
    """A section as a dict for display, with passwords in URLs masked."""
    return {
        k: redact_url(v) if isinstance(v, str) and "://" in v else v
        for k, v in config.model_dump().items()
    }


__all__ = [
    "CONFIG_FILE",
    "DEFAULT_HOME",
    "ENV_PREFIX",
    "HOME_ENV",
    "ConfigError",
    "DecisionsConfig",
    "LimitsConfig",
    "LogConfig",
    "ProbingConfig",
    "ServerConfig",
    "ServingConfig",
    "StoresConfig",
    "env_variable",
    "load_config",
    "redacted",
    "tabguard_home",
]
