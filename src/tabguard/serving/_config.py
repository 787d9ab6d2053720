"""The service's configuration: ``$TABGUARD_HOME/tabguard.toml``.

State lives under ``TABGUARD_HOME`` (default ``./.tabguard``). Every section and key is
optional; an absent file means the defaults below. Store URLs choose the backends.

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

    [decisions]
    delay_seconds = 0
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tabguard.errors import TabguardError

if TYPE_CHECKING:
    from tabguard.flags import BaseFlagStore
    from tabguard.serving._keys import MemoryKeyStore, SqlKeyStore
    from tabguard.serving._limits import AsyncRateLimiter
    from tabguard.serving._log import PredictionLog
from tabguard.storage import StoreURLError, redact_url, store_kind
from tabguard.storage._url import StoreKind

#: Environment variable naming the state directory.
HOME_ENV = "TABGUARD_HOME"
#: The state directory when TABGUARD_HOME is not set (relative to the working directory).
DEFAULT_HOME = Path(".tabguard")
#: File name of the configuration inside the home.
CONFIG_FILE = "tabguard.toml"

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
    """

    def __init__(self, path: Path, key: str, rule: str, value: Any = None) -> None:
        self.path, self.key, self.rule, self.value = path, key, rule, value
        got = f"; got {value!r}" if value is not None else ""
        super().__init__(f"{path}: {key}: {rule}{got}")


def tabguard_home(home: str | os.PathLike[str] | None = None) -> Path:
    """Return the state directory: ``home``, else ``$TABGUARD_HOME``, else ``./.tabguard``."""
    if home is not None:
        return Path(home)
    env = os.environ.get(HOME_ENV)
    return Path(env) if env else DEFAULT_HOME


_STRICT = ConfigDict(extra="forbid", frozen=True)


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
    """

    model_config = _STRICT

    per_client: str | None = "100/second"
    per_subject: str | None = None
    strategy: Literal["moving-window", "fixed-window", "sliding-window"] = "moving-window"
    storage: str = "memory://"
    on_backend_error: Literal["fail_closed", "fail_open"] = "fail_closed"
    key_prefix: str = "tabguard"
    timeout: float = Field(default=0.5, gt=0, le=30)

    @field_validator("per_client", "per_subject", mode="before")
    @classmethod
    def _rate(cls, value: Any) -> Any:
        from tabguard.serving._limits import RATE_RULE, parse_rate

        if value is None or (isinstance(value, str) and value.strip().lower() in _OFF):
            return None
        if not isinstance(value, str):
            raise ValueError("must be a rate string such as '100/second' or 'off'")
        try:
            parse_rate(value)
        except ValueError:
            raise ValueError(RATE_RULE) from None
        return value.strip()

    @field_validator("storage")
    @classmethod
    def _storage(cls, value: str) -> str:
        kind = _kind(value)
        if kind not in ("memory", "redis"):
            raise ValueError("must be memory:// or redis://host:port/db")
        return value


_OFF = frozenset({"off", "none", "disabled", ""})


def _kind(url: str) -> StoreKind:
    try:
        return store_kind(url)
    except StoreURLError:
        raise ValueError(
            "scheme must be one of sqlite://, postgresql://, redis://, memory://"
        ) from None


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
    """

    model_config = _STRICT

    batch_size: int = Field(default=200, ge=1, le=100_000)
    flush_interval: float = Field(default=0.5, gt=0, le=60)
    spool_dir: Path
    retry_interval: float = Field(default=2.0, gt=0, le=3600)


class DecisionsConfig(BaseModel):
    """``[decisions]``: the decision layer (S4). Extra keys are kept for the app."""

    model_config = ConfigDict(extra="allow", frozen=True)

    delay_seconds: float = Field(default=0.0, ge=0)


class ServingConfig(BaseModel):
    """The whole ``tabguard.toml``, validated, with defaults filled in.

    ``probing`` and ``server`` are kept as generic tables for the service to interpret.
    """

    model_config = _STRICT

    home: Path
    path: Path
    from_file: bool
    limits: LimitsConfig = LimitsConfig()
    stores: StoresConfig
    log: LogConfig
    decisions: DecisionsConfig = DecisionsConfig()
    probing: dict[str, Any] = Field(default_factory=dict)
    server: dict[str, Any] = Field(default_factory=dict)

    # Factories, so the service and the CLI open the stores the same way. Imports are local:
    # the stores import this module's types.

    def open_flag_store(self) -> BaseFlagStore:
        """Open ``[stores] flags`` (with ``redis_prefix`` for Redis)."""
        from tabguard.flags import open_flag_store

        return open_flag_store(self.stores.flags, redis_prefix=self.stores.redis_prefix)

    def open_key_store(self) -> SqlKeyStore | MemoryKeyStore:
        """Open ``[stores] keys``."""
        from tabguard.serving._keys import open_key_store

        return open_key_store(self.stores.keys)

    def open_prediction_log(self) -> PredictionLog:
        """Open ``[stores] log`` with the ``[log]`` settings (starts its writer thread)."""
        from tabguard.serving._log import PredictionLog

        return PredictionLog.from_config(self)

    def rate_limiter(self) -> AsyncRateLimiter:
        """Build the asyncio rate limiter of ``[limits]`` (call inside the serving process)."""
        from tabguard.serving._limits import AsyncRateLimiter

        limiter: AsyncRateLimiter = AsyncRateLimiter.from_config(self.limits)
        return limiter


_SECTIONS = ("limits", "stores", "log", "decisions", "probing", "server")


def default_config_values(home: Path) -> dict[str, Any]:
    """Return the defaults that depend on the home (store URLs, spool directory)."""
    return {
        "stores": {
            "flags": f"sqlite:///{home / 'state.db'}",
            "keys": f"sqlite:///{home / 'state.db'}",
            "log": f"sqlite:///{home / 'predictions.db'}",
        },
        "log": {"spool_dir": str(home / "spool")},
    }


def load_config(home: str | os.PathLike[str] | None = None) -> ServingConfig:
    """Read and validate ``tabguard.toml`` from the home (defaults when the file is absent).

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
    >>> cfg.limits.per_client, cfg.limits.on_backend_error
    ('100/second', 'fail_closed')
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
        if section not in _SECTIONS:
            raise ConfigError(
                path, section, f"unknown section; known sections: {', '.join(_SECTIONS)}"
            )
        if not isinstance(value, dict):
            raise ConfigError(path, section, "must be a table ([section])", value)
    merged: dict[str, Any] = {k: dict(v) for k, v in data.items()}
    for section, defaults in default_config_values(home_path).items():
        merged[section] = {**defaults, **merged.get(section, {})}
    try:
        return ServingConfig(home=home_path, path=path, from_file=from_file, **merged)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        value = err.get("input")
        if isinstance(value, str) and "://" in value:
            value = redact_url(value)  # never print a password from a store URL
        rule = _rule_text(err)
        raise ConfigError(path, key, rule, None if err["type"] == "missing" else value) from None


def _rule_text(err: Any) -> str:
    msg = str(err["msg"])
    if err["type"] == "extra_forbidden":
        return "unknown key (check its spelling against docs/operations.md)"
    return msg.removeprefix("Value error, ")
