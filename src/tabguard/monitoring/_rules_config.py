"""The alerting half of ``monitor.yaml``: ``rules``, ``calendar``, ``notify``, ``evaluation``.

Validated once, by :func:`parse_alerting` (called from the one loader,
:func:`~tabguard.monitoring.load_monitor_config`), into frozen objects; evaluation lives in
``_rules.py`` and wording in ``_wording.py``. The seed's rule, as it reads — *the denial rate of
the last 6 h is more than 20 % below the same 6 h last week*:

.. code-block:: yaml

    rules:
      - name: denial_rate_drop
        metric: decision_rate
        decision: deny
        window: 6h
        baseline: {weeks_ago: 1}        # or {median_of_weeks: 3}
        direction: below
        change: 20%
        segments: [all, channel]        # evaluated per value of each key
        actions:
          - {flag: neutralize, value: [PAY_AMT1]}
          - webhook
    calendar:
      holidays: [2026-12-25]
      exclude: [{from: 2026-03-01T00:00, to: 2026-03-03T00:00, reason: campaign}]
    notify:
      webhooks: [{name: alertmanager, url: http://127.0.0.1:9093/api/v2/alerts}]
    evaluation: {alpha: 0.0001}

Every threshold has a named default with its reason (:class:`EvaluationOptions` in the
house check shape, and :data:`DEFAULTS`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tabguard.checks import (
    PROBABILITY_OPEN,
    CheckOptions,
    at_least,
    interval,
    option,
    parse_options,
)
from tabguard.errors import OptionsError
from tabguard.flags import FLAG_SPECS, FlagError, parse_flag
from tabguard.monitoring._config import MonitorConfigError
from tabguard.timeutil import DURATION_RULE, parse_duration, parse_time

#: Metrics a rule can watch, and what each one reads from the bucket store.
METRICS: dict[str, str] = {
    "decision_rate": "share of decided requests with `decision` (approve | deny | review)",
    "volume": "requests in the window (every status)",
    "percentile": "the `q` quantile of `column` (kind raw | feature | score | latency_ms)",
    "latency": "the `q` quantile of the service latency in ms",
    "guard_action_rate": "share of requests on which a guard took `action` (on `column`)",
    "probing_count": "requests carrying the probing `signal` (default client_flagged)",
    "drift": "PSI or Jensen-Shannon distance of `column` against the training reference",
    "performance": "AUC, default rate or Brier score of matured outcomes",
}


@dataclass(frozen=True)
class EvaluationOptions(CheckOptions):
    """``evaluation``: the thresholds every rule shares (a rule may override alpha/min_volume).

    Declared in the house check shape: each option has its default, its rule and the reason for
    the default (``describe_options(EvaluationOptions)`` prints them for docs/monitoring.md).
    """

    check: ClassVar[str] = "monitor.evaluation"

    alpha: float = option(
        0.0001,
        "significance level per rule and evaluation, divided by the segment values tested "
        "(Bonferroni); hourly evaluations of overlapping 6 h windows are ~700 correlated tests "
        "per segment in four weeks, and 1e-4 keeps chance alerts near 0.1 a month per segment "
        "value on binomial traffic (0.001 gave about one a month in the simulated weeks)",
        PROBABILITY_OPEN,
    )
    min_volume: int = option(
        30,
        "requests behind the metric needed now and in each baseline week: below ~30 a rate moves "
        "by 3 points per request and no exact test at 1e-4 can be significant: a quiet night "
        "never pages",
        at_least(1),
    )
    extra_weeks: int = option(
        2,
        "baseline weeks looked at beyond the rule's own, to replace excluded (holiday) or thin "
        "ones, so a holiday never becomes 'last week'",
        interval(0, 8),
    )
    dispersion_prior_df: float = option(
        4.0,
        "weight, in degrees of freedom, of the binomial value 1 when a rate rule estimates its "
        "segment's dispersion from the baseline weeks (the 6 h windows of the last week, week "
        "against week); in the third week of history a few thin or excluded cells can leave "
        "only a handful of df, and 4 keeps such an estimate near 1 until the data speak",
        interval(0.5, 1000),
    )
    sequential_hours: int = option(
        48,
        "hours of hourly counts a rate rule's CUSUM looks back over (0 turns it off): an attack "
        "too small for one window's test accumulates evidence hour by hour; two days cover a "
        "night and a second working day of a small segment",
        interval(0, 24 * 14),
    )


#: Defaults that are not evaluation options, with their reasons (documented with them).
DEFAULTS: dict[str, tuple[Any, str]] = {
    "min_weeks": (
        1,
        "baseline weeks that must have data; the median of 3 weeks is robust once 3 exist, and "
        "alerts still work in the second week of history",
    ),
    "cooldown": (
        "the rule's window",
        "after an alert opens, the same rule and segment cannot open another until the window "
        "has rolled over completely (no flapping on overlapping windows)",
    ),
    "severity": ("warning", "critical is for rules whose actions change decisions"),
    "webhook_timeout": ("5s", "an unreachable receiver must not hold the evaluation loop"),
    "webhook_retries": (3, "rides out a receiver restart; then the failure is logged"),
}

_RULE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_STRICT = ConfigDict(extra="forbid", frozen=True)


def _duration(value: Any) -> timedelta:
    try:
        d = parse_duration(value)
    except ValueError:
        raise ValueError(DURATION_RULE) from None
    if d <= timedelta(0):
        raise ValueError(f"{DURATION_RULE} (greater than zero)")
    return d


def _fraction(value: Any) -> float:
    """``"20%"`` → 0.2; a number is taken as a fraction (0.2)."""
    if isinstance(value, bool):
        raise ValueError("must be a fraction such as 0.2 or a percentage such as '20%'")
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            raise ValueError(
                "must be a fraction such as 0.2 or a percentage such as '20%'"
            ) from None
    elif isinstance(value, int | float):
        number = float(value)
    else:
        raise ValueError("must be a fraction such as 0.2 or a percentage such as '20%'")
    if not math.isfinite(number) or number <= 0:
        raise ValueError("must be greater than zero (e.g. '20%')")
    return number


class Baseline(BaseModel):
    """What the current window is compared with: the same window some weeks back.

    Attributes
    ----------
    weeks_ago : int, optional
        The same window ``N`` weeks ago (the seed's rule: 1).
    median_of_weeks : int, optional
        The median of the same window over the last ``k`` weeks (robust to one odd week, such
        as a holiday).
    min_weeks : int
        Baseline weeks that must have data (and enough volume) for the rule to be evaluated.
    """

    model_config = _STRICT

    weeks_ago: int | None = Field(default=None, ge=1, le=52)
    median_of_weeks: int | None = Field(default=None, ge=2, le=12)
    min_weeks: int = Field(default=DEFAULTS["min_weeks"][0], ge=1, le=12)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip().lower().replace("-", "_").replace(" ", "_")
            if text in ("last_week", "same_window_last_week", "1w"):
                return {"weeks_ago": 1}
            m = re.fullmatch(r"median_of_(\d+)_weeks", text)
            if m:
                return {"median_of_weeks": int(m.group(1))}
            raise ValueError(
                "must be {weeks_ago: N}, {median_of_weeks: K}, 'last_week' or 'median_of_K_weeks'"
            )
        return value

    @model_validator(mode="after")
    def _one(self) -> Baseline:
        if (self.weeks_ago is None) == (self.median_of_weeks is None):
            raise ValueError("give exactly one of weeks_ago or median_of_weeks")
        if self.min_weeks > self.n_weeks:
            raise ValueError(f"min_weeks must be at most {self.n_weeks}")
        return self

    @property
    def n_weeks(self) -> int:
        """Weeks the baseline combines."""
        return self.median_of_weeks or 1

    def describe(self) -> str:
        """``"the same 6 h last week"``-style wording (without the window)."""
        if self.weeks_ago is not None:
            return "last week" if self.weeks_ago == 1 else f"{self.weeks_ago} weeks ago"
        return f"median of the last {self.median_of_weeks} weeks"


class FlagAction(BaseModel):
    """``{flag: NAME, value: V}``: set a runtime flag (actor ``monitor:<rule>``).

    ``neutralize`` adds its features to those already neutralised; the other flags are set to
    the value. Values are checked against the flag's rule when the file is loaded.
    """

    model_config = _STRICT

    flag: str
    value: Any = None

    @model_validator(mode="after")
    def _valid(self) -> FlagAction:
        if self.flag not in FLAG_SPECS:
            raise ValueError(f"unknown flag {self.flag!r}; flags: {', '.join(FLAG_SPECS)}")
        try:
            canonical = parse_flag(self.flag, self.value)
        except FlagError as exc:
            raise ValueError(exc.rule) from None
        object.__setattr__(self, "value", canonical)
        return self


class WebhookAction(BaseModel):
    """``webhook`` (every receiver of ``notify.webhooks``) or ``{webhook: NAME}``."""

    model_config = _STRICT

    webhook: str = "*"


class LogAction(BaseModel):
    """``log``: a log line at the alert's severity (always done; listing it is explicit)."""

    model_config = _STRICT

    log: bool = True


Action = FlagAction | WebhookAction | LogAction


def _action(value: Any) -> Action:
    if value == "log":
        return LogAction()
    if value == "webhook":
        return WebhookAction()
    if isinstance(value, dict):
        if "flag" in value:
            return FlagAction.model_validate(value)
        if "webhook" in value:
            return WebhookAction.model_validate(value)
        if "log" in value:
            return LogAction.model_validate(value)
    raise ValueError("an action is 'log', 'webhook', {webhook: NAME} or {flag: NAME, value: V}")


class RuleSpec(BaseModel):
    """One alert rule (see the module docstring and docs/monitoring.md).

    A rule fires for a segment value when, at an evaluation time, the metric over the last
    ``window`` (complete buckets) crosses the threshold against its baseline **and** the
    counts behind it make the change significant (p < ``alpha`` divided by the number of
    segment values tested, Bonferroni), with at least ``min_volume`` requests now and in the
    baseline.
    """

    model_config = _STRICT

    name: str
    description: str = ""
    enabled: bool = True
    metric: Literal[
        "decision_rate",
        "volume",
        "percentile",
        "latency",
        "guard_action_rate",
        "probing_count",
        "drift",
        "performance",
    ]
    decision: Literal["approve", "deny", "review"] | None = None
    column: str | None = None
    kind: Literal["raw", "feature", "score", "latency_ms"] | None = None
    q: float | None = Field(default=None, gt=0, lt=1)
    action: str | None = None
    step: str | None = None
    signal: str | None = None
    stat: Literal["psi", "js", "auc", "default_rate", "brier"] | None = None
    window: timedelta
    baseline: Baseline | None = None
    change: float | None = None
    difference: float | None = Field(default=None, gt=0)
    threshold: float | None = None
    direction: Literal["below", "above", "either"] = "either"
    min_volume: int | None = Field(default=None, ge=1)
    alpha: float | None = Field(default=None, gt=0, lt=1)
    segments: tuple[str, ...] = ("all",)
    cooldown: timedelta | None = None
    severity: Literal["info", "warning", "critical"] = DEFAULTS["severity"][0]
    actions: tuple[Action, ...] = (LogAction(),)
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _RULE_NAME.fullmatch(value):
            raise ValueError("must be 1-64 letters, digits, '_', '.', ':' or '-'")
        return value

    @field_validator("window", "cooldown", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        return None if value is None else _duration(value)

    @field_validator("change", mode="before")
    @classmethod
    def _change(cls, value: Any) -> Any:
        return None if value is None else _fraction(value)

    @field_validator("segments", mode="before")
    @classmethod
    def _segments(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple) or not value:
            raise ValueError("must be a list of segment keys, e.g. [all, channel]")
        return tuple(str(v) for v in value)

    @field_validator("actions", mode="before")
    @classmethod
    def _actions(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple):
            value = [value]
        return tuple(_action(v) for v in value)

    @model_validator(mode="after")
    def _consistent(self) -> RuleSpec:
        m = self.metric
        need = {
            "decision_rate": ("decision",),
            "percentile": ("column", "kind", "q"),
            "latency": ("q",),
            "guard_action_rate": ("action",),
            "drift": ("column", "kind", "stat"),
            "performance": ("stat",),
        }.get(m, ())
        for key in need:
            if getattr(self, key) is None:
                raise ValueError(f"metric {m} needs {key!r} ({METRICS[m]})")
        allowed_stats = {"drift": ("psi", "js"), "performance": ("auc", "default_rate", "brier")}
        if self.stat is not None and self.stat not in allowed_stats.get(m, ()):
            raise ValueError(f"stat {self.stat!r} does not apply to metric {m}")
        given = [k for k in ("change", "difference", "threshold") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of change (relative to the baseline, e.g. 20%), difference "
                "(absolute, against the baseline) or threshold (an absolute level)"
            )
        if given[0] in ("change", "difference") and self.baseline is None:
            raise ValueError(f"{given[0]} compares with a baseline: add baseline: {{weeks_ago: 1}}")
        if m == "drift" and self.baseline is not None:
            raise ValueError(
                "drift compares with the training reference: use threshold, no baseline"
            )
        if given[0] == "threshold" and self.direction == "either":
            raise ValueError("a threshold needs direction: above or below")
        return self

    @property
    def test(self) -> str:
        """The significance test behind the metric (wording and docs)."""
        return {
            "decision_rate": "Fisher exact (rates)",
            "guard_action_rate": "Fisher exact (rates)",
            "volume": "conditional binomial (Poisson counts)",
            "probing_count": "conditional binomial (Poisson counts)",
            "percentile": "order-statistic interval",
            "latency": "order-statistic interval",
        }.get(self.metric, "none (volume floor only)")


class Exclusion(BaseModel):
    """A declared period the rules neither evaluate nor use as a baseline."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    start: datetime = Field(alias="from")
    end: datetime = Field(alias="to")
    reason: str = ""

    @field_validator("start", "end", mode="before")
    @classmethod
    def _time(cls, value: Any) -> datetime:
        return parse_time(value)

    @model_validator(mode="after")
    def _order(self) -> Exclusion:
        if self.end <= self.start:
            raise ValueError("'to' must be after 'from'")
        return self


class CalendarSpec(BaseModel):
    """``calendar``: holidays (whole days in ``timezone``) and declared exclusions."""

    model_config = _STRICT

    timezone: str = "UTC"
    holidays: tuple[date, ...] = ()
    exclude: tuple[Exclusion, ...] = ()

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be an IANA time zone such as UTC or Europe/Paris") from None
        return value

    def periods(self) -> list[tuple[datetime, datetime, str]]:
        """Every excluded period as aware UTC ``(start, end, reason)``."""
        tz = ZoneInfo(self.timezone)
        out = []
        for day in self.holidays:
            start = datetime(day.year, day.month, day.day, tzinfo=tz)
            out.append(
                (
                    start.astimezone(UTC),
                    (start + timedelta(days=1)).astimezone(UTC),
                    f"holiday {day.isoformat()}",
                )
            )
        out.extend((e.start, e.end, e.reason or "declared exclusion") for e in self.exclude)
        return out

    @cached_property
    def _periods(self) -> list[tuple[datetime, datetime, str]]:
        # A pass asks about ~170 windows per rule: the periods are built once (frozen model).
        return self.periods()

    def overlaps(self, start: datetime, end: datetime) -> str | None:
        """The reason the window ``[start, end)`` is excluded, or ``None``."""
        for lo, hi, reason in self._periods:
            if start < hi and lo < end:
                return reason
        return None


class WebhookSpec(BaseModel):
    """One Alertmanager-compatible receiver (``POST`` a JSON list of alerts)."""

    model_config = _STRICT

    name: str = "default"
    url: str
    timeout: timedelta = Field(default=parse_duration(DEFAULTS["webhook_timeout"][0]))
    retries: int = Field(default=DEFAULTS["webhook_retries"][0], ge=0, le=10)
    backoff: timedelta = timedelta(seconds=1)
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("timeout", "backoff", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        return parse_duration(value) if not isinstance(value, timedelta) else value


class NotifySpec(BaseModel):
    """``notify``: where alerts are sent."""

    model_config = _STRICT

    webhooks: tuple[WebhookSpec, ...] = ()


class AlertingConfig(BaseModel):
    """The alerting keys of ``monitor.yaml``, validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    rules: tuple[RuleSpec, ...] = ()
    calendar: CalendarSpec = CalendarSpec()
    notify: NotifySpec = NotifySpec()
    evaluation: EvaluationOptions = EvaluationOptions()

    def rule(self, name: str) -> RuleSpec:
        """The rule called ``name`` (KeyError naming the known ones)."""
        for r in self.rules:
            if r.name == name:
                return r
        raise KeyError(f"no rule {name!r}; rules: {', '.join(r.name for r in self.rules)}")


def parse_alerting(data: dict[str, Any] | None, path: Path | None = None) -> AlertingConfig:
    """Validate ``rules``, ``calendar``, ``notify`` and ``evaluation`` of ``monitor.yaml``.

    Raises
    ------
    MonitorConfigError
        One line naming the file, the key (``rules[denial_drop].metric``), the rule broken
        and the value received.
    """
    data = dict(data or {})
    rules = data.get("rules") or []
    if not isinstance(rules, list):
        raise MonitorConfigError(path, "rules", "must be a list of rules", type(rules).__name__)
    for i, r in enumerate(rules):
        if not isinstance(r, dict):
            raise MonitorConfigError(path, f"rules[{i}]", "a rule is a mapping of keys", r)
    try:
        data["evaluation"] = parse_options(EvaluationOptions, data.get("evaluation"))
    except OptionsError as exc:
        key = "evaluation" + (f".{exc.key}" if exc.key else "")
        raise MonitorConfigError(path, key, exc.rule, exc.value) from None
    try:
        config = AlertingConfig.model_validate(data)
    except ValidationError as exc:
        raise _config_error(exc, rules, path) from None
    names = [r.name for r in config.rules]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise MonitorConfigError(path, f"rules[{i}].name", "rule names must be unique", name)
    hooks = {w.name for w in config.notify.webhooks}
    for r in config.rules:
        for a in r.actions:
            if isinstance(a, WebhookAction) and a.webhook != "*" and a.webhook not in hooks:
                raise MonitorConfigError(
                    path,
                    f"rules[{r.name}].actions",
                    "no webhook of that name in notify.webhooks "
                    f"({', '.join(sorted(hooks)) or 'none'})",
                    a.webhook,
                )
    return config


def _config_error(exc: ValidationError, rules: list[Any], path: Path | None) -> MonitorConfigError:
    err = exc.errors()[0]
    loc = list(err["loc"])
    parts: list[str] = []
    if loc[:1] == ["rules"] and len(loc) > 1 and isinstance(loc[1], int):
        i = loc[1]
        name = rules[i].get("name") if i < len(rules) else None
        parts.append(f"rules[{name}]" if isinstance(name, str) and name else f"rules[{i}]")
        loc = loc[2:]
    # pydantic adds the union member / validator names to the location: keep the user's keys
    for p in loc:
        if isinstance(p, int):
            parts[-1:] = [f"{parts[-1] if parts else ''}[{p}]"]
        elif p not in ("FlagAction", "WebhookAction", "LogAction", "function-after[_one()]"):
            parts.append(str(p))
    key = ".".join(parts) or "(file)"
    rule = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    value = err.get("input")
    if err["type"] == "extra_forbidden":
        rule = "unknown key (see docs/monitoring.md for the keys of a rule)"
        value = None
    elif err["type"] == "literal_error":
        rule = f"must be one of {err.get('ctx', {}).get('expected', '')}"
    elif err["type"] == "missing":
        rule = "is required"
        value = None
    if isinstance(value, dict) and err["type"] not in ("literal_error",):
        value = None  # a whole rule or mapping is not a useful "got"
    return MonitorConfigError(path, key, rule, value)
