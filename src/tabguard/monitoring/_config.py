"""``monitor.yaml``: what the monitor aggregates, and (in the same file) its alert rules.

One file, one loader. The aggregation keys are validated here; the alerting keys (``rules``,
``calendar``, ``notify``, ``evaluation``) are handed to the rules engine's parser
(``tabguard.monitoring._rules_config.parse_alerting``) when it is installed, else kept as
given. Every problem is a :class:`MonitorConfigError` naming the file, the dotted key, the rule
and the value, on one line.

.. code-block:: yaml

    log: sqlite:///.tabguard/predictions.db    # default: [stores] log of tabguard.toml
    store: sqlite:///.tabguard/monitoring.db   # default: beside the log
    model: models/credit                       # contract + drift reference (optional)
    aggregation:
      bucket: 1h
      sketch_k: 200
      segments:
        request_keys: all                      # keys of the request's `segment` object
        features: [EDUCATION]                  # default: the contract's `segments`
        combinations: [[channel, EDUCATION]]
        top_k: 20
    drift: {bins: 10, min_rows: 50}
    outcomes: {maturity: 90d, score_bands: 10}
"""

from __future__ import annotations

import importlib
import os
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tabguard.errors import TabguardError
from tabguard.monitoring._sketch import DEFAULT_K, MAX_K, MIN_K
from tabguard.storage import redact_url, store_kind
from tabguard.timeutil import DURATION_RULE, parse_duration

#: File name of the monitor configuration inside ``TABGUARD_HOME``.
MONITOR_FILE = "monitor.yaml"
#: Top-level keys owned by the aggregation side (this module).
AGGREGATION_KEYS = ("log", "store", "model", "aggregation", "drift", "outcomes")
#: Top-level keys owned by the alerting side (rules engine).
ALERTING_KEYS = ("rules", "calendar", "notify", "evaluation")
_WEEK = timedelta(weeks=1)


class MonitorConfigError(TabguardError, ValueError):
    """``monitor.yaml`` is unreadable or a key breaks its rule.

    Parameters
    ----------
    path : Path or None
        The file (``None`` for a configuration built in Python).
    key : str
        Dotted key at fault, e.g. ``aggregation.bucket`` or ``rules[2].metric``.
    rule : str
        The rule it breaks and how to fix it.
    value : Any
        The value received (omitted from the message when ``None``).
    """

    def __init__(self, path: Path | None, key: str, rule: str, value: Any = None) -> None:
        self.path, self.key, self.rule, self.value = path, key, rule, value
        got = f"; got {value!r}" if value is not None else ""
        where = f"{path}: " if path is not None else "monitor config: "
        super().__init__(f"{where}{key}: {rule}{got}")


_STRICT = ConfigDict(extra="forbid", frozen=True)
_NAME = r"^[^\s*|=]{1,128}$"


def _duration(value: Any) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError:
        raise ValueError(DURATION_RULE) from None


class SegmentsConfig(BaseModel):
    """``aggregation.segments``: which segments get their own buckets.

    Attributes
    ----------
    request_keys : 'all' or list of str
        Keys of the request's ``segment`` object to track (``all``: every key seen, each
        capped at ``top_k`` values).
    features : list of str or None
        Contract features used as segments (their raw value); ``None``: the contract's
        ``segments``.
    combinations : list of list of str
        Crossed segments, e.g. ``[channel, EDUCATION]`` → key ``channel*EDUCATION``.
    top_k : int
        Values kept per segment key; rarer values are counted under ``other``.
    admit_min_rows : int
        Rows a value needs (counted by a frequent-items sketch) before it gets its own segment.
    values : dict
        Values admitted from the start, per key (they count towards ``top_k``).
    max_keys : int
        Request segment keys tracked at most (later keys are ignored, with a logged note).
    """

    model_config = _STRICT

    request_keys: Literal["all"] | list[str] = "all"
    features: list[str] | None = None
    combinations: list[list[str]] = Field(default_factory=list)
    top_k: int = Field(default=20, ge=1, le=1000)
    admit_min_rows: int = Field(default=20, ge=1)
    values: dict[str, list[str]] = Field(default_factory=dict)
    max_keys: int = Field(default=16, ge=1, le=64)

    @field_validator("combinations")
    @classmethod
    def _combinations(cls, value: list[list[str]]) -> list[list[str]]:
        for combo in value:
            if not 2 <= len(combo) <= 3 or len(set(combo)) != len(combo):
                raise ValueError("each combination lists 2 or 3 distinct segment keys")
        return value


class ColumnsConfig(BaseModel):
    """``aggregation.columns``: which raw attributes and model features are profiled."""

    model_config = _STRICT

    raw: Literal["all"] | list[str] = "all"
    features: Literal["all"] | list[str] = "all"


class AggregationConfig(BaseModel):
    """``aggregation``: buckets, sketches and segments.

    Attributes
    ----------
    bucket : timedelta
        Bucket length (default 1 h); must divide one week so "the same window N weeks ago"
        falls on bucket boundaries.
    sketch_k : int
        KLL parameter (rank error 1.33 % at 200, 0.68 % at 400).
    batch_rows : int
        Log rows read and merged per transaction.
    clients_top_k : int
        API clients tracked for probing counts; others are ``other``.
    jobs : int
        Processes that build sketches of a large batch (the numeric columns are shared out;
        batches under 20,000 rows stay in one process). From 2 on, a large backlog is also
        read and decoded by a reader process of its own (``1``: one process, a reader
        thread).
    """

    model_config = _STRICT

    bucket: timedelta = timedelta(hours=1)
    sketch_k: int = Field(default=DEFAULT_K, ge=MIN_K, le=MAX_K)
    batch_rows: int = Field(default=100_000, ge=100, le=10_000_000)
    segments: SegmentsConfig = SegmentsConfig()
    columns: ColumnsConfig = ColumnsConfig()
    clients_top_k: int = Field(default=50, ge=1, le=10_000)
    jobs: int = Field(default=2, ge=1, le=64)

    @field_validator("bucket", mode="before")
    @classmethod
    def _bucket(cls, value: Any) -> timedelta:
        step = _duration(value)
        if step < timedelta(minutes=1) or _WEEK % step:
            raise ValueError(
                "must be at least 1m and divide one week evenly (e.g. 5m, 15m, 1h, 6h, 1d)"
            )
        return step


class DriftConfig(BaseModel):
    """``drift``: how windows are compared with the training reference.

    Attributes
    ----------
    bins : int
        Quantile bins of the reference per numeric column (PSI's usual 10).
    min_rows : int
        Windows with fewer values report drift as missing (NaN), not as a number.
    reference : Path or None
        A reference file (``tabguard monitor reference``); default ``reference.json`` of
        ``model``.
    """

    model_config = _STRICT

    bins: int = Field(default=10, ge=2, le=100)
    min_rows: int = Field(default=50, ge=1)
    reference: Path | None = None


class OutcomesConfig(BaseModel):
    """``outcomes``: late labels and when they count.

    Attributes
    ----------
    maturity : timedelta
        A decision's label counts once this long has passed since the decision (its
        observation window, e.g. 90 days for a default).
    score_bands : int
        Equal-width score bands for default rate and calibration.
    """

    model_config = _STRICT

    maturity: timedelta = timedelta(days=90)
    score_bands: int = Field(default=10, ge=2, le=100)

    @field_validator("maturity", mode="before")
    @classmethod
    def _maturity(cls, value: Any) -> timedelta:
        return _duration(value)


class MonitorConfig(BaseModel):
    """The whole ``monitor.yaml``, validated.

    Attributes
    ----------
    path : Path or None
        The file it was read from.
    home : Path or None
        ``TABGUARD_HOME`` used to resolve defaults.
    log : str or None
        Prediction log URL (``None``: ``[stores] log`` of ``tabguard.toml``).
    store : str or None
        Monitor store URL (``None``: beside the log).
    model : Path or None
        A model directory: its contract names the columns, its ``reference.json`` is the drift
        reference.
    aggregation, drift, outcomes
        See their classes.
    alerting : Any
        The rules engine's keys (``rules``, ``calendar``, ``notify``, ``evaluation``), parsed
        by ``tabguard.monitoring._rules_config.parse_alerting`` when present, else raw.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    path: Path | None = None
    home: Path | None = None
    log: str | None = None
    store: str | None = None
    model: Path | None = None
    aggregation: AggregationConfig = AggregationConfig()
    drift: DriftConfig = DriftConfig()
    outcomes: OutcomesConfig = OutcomesConfig()
    alerting: Any = None

    @field_validator("log", "store")
    @classmethod
    def _url(cls, value: str | None, info: Any) -> str | None:
        if value is None:
            return None
        try:
            kind = store_kind(value)
        except ValueError:
            raise ValueError("must be a sqlite:///, postgresql:// or memory:// URL") from None
        if kind == "redis":
            raise ValueError(f"the {info.field_name} must be SQL (sqlite://, postgresql://)")
        return value

    @property
    def bucket(self) -> timedelta:
        """The bucket length."""
        return self.aggregation.bucket

    def log_url(self) -> str:
        """The prediction log's URL (``[stores] log`` of ``tabguard.toml`` by default)."""
        if self.log is not None:
            return self.log
        from tabguard.serving import load_config

        return load_config(self.home).stores.log

    def store_url(self) -> str:
        """The monitor store's URL: ``store``, else beside a SQLite log, else the log's DB."""
        if self.store is not None:
            return self.store
        return default_store_url(self.log_url())

    @classmethod
    def from_dict(
        cls, data: Any, *, path: Path | None = None, home: Path | None = None
    ) -> MonitorConfig:
        """Validate a parsed ``monitor.yaml``.

        Raises
        ------
        MonitorConfigError
            Unknown key, wrong type or a value breaking its rule.
        """
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise MonitorConfigError(path, "(file)", "must be a YAML mapping of keys", data)
        known = AGGREGATION_KEYS + ALERTING_KEYS
        for key in data:
            if key not in known:
                raise MonitorConfigError(
                    path, str(key), f"unknown key; the keys are {', '.join(known)}"
                )
        mine = {k: v for k, v in data.items() if k in AGGREGATION_KEYS}
        theirs = {k: v for k, v in data.items() if k in ALERTING_KEYS}
        try:
            config = cls(path=path, home=home, **mine)
        except ValidationError as exc:
            raise _mapped(exc, path) from None
        alerting: Any = theirs or None
        parser = _alerting_parser()
        if parser is not None:
            alerting = parser(theirs, path)
        return config.model_copy(update={"alerting": alerting})


def _alerting_parser() -> Any:
    try:
        module = importlib.import_module("tabguard.monitoring._rules_config")
    except ImportError:
        return None
    return getattr(module, "parse_alerting", None)


def _mapped(exc: ValidationError, path: Path | None) -> MonitorConfigError:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"])
    value = err.get("input")
    if isinstance(value, str) and "://" in value:
        value = redact_url(value)
    if err["type"] == "extra_forbidden":
        rule = "unknown key (check its spelling against docs/monitoring.md)"
    else:
        rule = str(err["msg"]).removeprefix("Value error, ")
    return MonitorConfigError(path, key, rule, None if err["type"] == "missing" else value)


def default_store_url(log_url: str) -> str:
    """The monitor store beside a log: ``monitoring.db`` next to a SQLite file, the same
    PostgreSQL database, a private in-memory store for ``memory://``."""
    kind = store_kind(log_url)
    if kind == "sqlite":
        db = log_url.split(":///", 1)[1] if ":///" in log_url else ""
        parent = Path(db).parent if db else Path(".")
        return f"sqlite:///{parent / 'monitoring.db'}"
    return log_url if kind == "postgresql" else "memory://"


def load_monitor_config(
    path: str | os.PathLike[str] | None = None, *, home: str | os.PathLike[str] | None = None
) -> MonitorConfig:
    """Read ``monitor.yaml`` (``path``, else ``$TABGUARD_HOME/monitor.yaml``; absent → defaults).

    Raises
    ------
    MonitorConfigError
        Unreadable file, invalid YAML, an unknown key or a value breaking its rule.
    """
    from tabguard.serving import tabguard_home

    home_path = tabguard_home(home)
    explicit = path is not None
    file = Path(path) if path is not None else home_path / MONITOR_FILE
    if not file.is_file():
        if explicit:
            raise MonitorConfigError(file, "(file)", "no such file (pass an existing --config)")
        return MonitorConfig(home=home_path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise MonitorConfigError(file, "(file)", f"invalid YAML{where}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MonitorConfigError(file, "(file)", f"cannot be read ({exc})") from None
    return MonitorConfig.from_dict(data, path=file, home=home_path)
