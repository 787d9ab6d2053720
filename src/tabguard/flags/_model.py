"""Runtime feature flags: their names, rules, defaults, and the records of their changes.

Flags change the service's behaviour without a deploy (requirement S3):

=============  ==========================  ============================================
flag           values                      effect
=============  ==========================  ============================================
``flow``       ``enabled`` | ``disabled``  ``disabled`` answers 503 to every decision
``model``      ``main`` | ``fallback`` |   which scorer decides: the main model, the
               ``rules``                   fallback model without gameable features, or
                                           the rule-based policy
``threshold``  float in [0, 1] or unset    decision threshold; unset = the model default
``neutralize`` feature names               replace these features by their neutral value
``delay``      seconds >= 0                answer later (202 + ``GET /v1/decisions/{id}``)
=============  ==========================  ============================================

Adding a flag is one :class:`FlagSpec` in :data:`FLAG_SPECS` and one field on :class:`Flags`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from tabguard.errors import TabguardError

#: Words that reset a flag to its default from the command line (``flags set threshold unset``).
UNSET_WORDS = frozenset({"unset", "default", "none", "null", ""})


class FlagError(TabguardError, ValueError):
    """A flag name or value breaks a flag rule.

    Parameters
    ----------
    flag : str
        The flag at fault.
    rule : str
        The rule it breaks, with the allowed values.
    value : Any
        The value received.
    """

    def __init__(self, flag: str, rule: str, value: Any) -> None:
        self.flag, self.rule, self.value = flag, rule, value
        super().__init__(f"flag {flag!r}: {rule}; got {value!r}")


class Flags(BaseModel):
    """The effective value of every flag (defaults where a flag was never set).

    Immutable: a running service shares one instance between requests.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    flow: Literal["enabled", "disabled"] = "enabled"
    model: Literal["main", "fallback", "rules"] = "main"
    threshold: float | None = None
    neutralize: tuple[str, ...] = ()
    delay: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return the flags as a JSON-ready dict (the prediction log's flag snapshot)."""
        return {
            "flow": self.flow,
            "model": self.model,
            "threshold": self.threshold,
            "neutralize": list(self.neutralize),
            "delay": self.delay,
        }


def _choice(name: str, choices: tuple[str, ...]) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value).strip().lower() if isinstance(value, str) else value
        if text not in choices:
            raise FlagError(name, f"must be one of {', '.join(choices)}", value)
        return str(text)

    return parse


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _parse_threshold(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in UNSET_WORDS):
        return None
    number = _number(value)
    if number is None or not math.isfinite(number) or not 0.0 <= number <= 1.0:
        raise FlagError(
            "threshold", "must be a number in [0, 1], or 'unset' for the model default", value
        )
    return number


def _parse_delay(value: Any) -> float:
    if value is None or (isinstance(value, str) and value.strip().lower() in UNSET_WORDS):
        return 0.0
    number = _number(value)
    if number is None or not math.isfinite(number) or number < 0:
        raise FlagError("delay", "must be a number of seconds >= 0", value)
    return number


def _parse_neutralize(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        if value.strip().lower() in UNSET_WORDS:
            return ()
        items: list[Any] = value.split(",")
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise FlagError(
            "neutralize", "must be feature names, comma-separated (e.g. AGE,PAY_AMT1)", value
        )
    names: list[str] = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise FlagError(
                "neutralize",
                "must be non-empty feature names, comma-separated (e.g. AGE,PAY_AMT1)",
                value,
            )
        name = item.strip()
        if name not in names:  # keep the operator's order, drop repeats
            names.append(name)
    return tuple(names)


@dataclass(frozen=True)
class FlagSpec:
    """How one flag is parsed and documented.

    Attributes
    ----------
    name : str
        The flag name.
    values : str
        The allowed values, for help texts.
    help : str
        What the flag does.
    parse : Callable[[Any], Any]
        Turns a CLI string or a Python value into the canonical value; raises FlagError.
    """

    name: str
    values: str
    help: str
    parse: Callable[[Any], Any]

    @property
    def default(self) -> Any:
        """The value when the flag was never set."""
        return Flags().to_dict()[self.name]


FLAG_SPECS: dict[str, FlagSpec] = {
    spec.name: spec
    for spec in (
        FlagSpec(
            "flow",
            "enabled|disabled",
            "disabled: every decision request gets 503",
            _choice("flow", ("enabled", "disabled")),
        ),
        FlagSpec(
            "model",
            "main|fallback|rules",
            "the scorer: main model, fallback model (no gameable features) or rule policy",
            _choice("model", ("main", "fallback", "rules")),
        ),
        FlagSpec(
            "threshold",
            "FLOAT in [0,1] | unset",
            "decision threshold on the score; unset uses the model's default",
            _parse_threshold,
        ),
        FlagSpec(
            "neutralize",
            "FEATURE[,FEATURE...] | none",
            "features replaced by their contract neutral value before scoring",
            _parse_neutralize,
        ),
        FlagSpec(
            "delay",
            "SECONDS >= 0",
            "answer decisions after this delay (202 + poll) instead of immediately",
            _parse_delay,
        ),
    )
}


def parse_flag(name: str, value: Any) -> Any:
    """Validate a flag value and return its canonical JSON-ready form.

    Parameters
    ----------
    name : str
        A flag name from :data:`FLAG_SPECS`.
    value : Any
        A command-line string (``"0.4"``, ``"AGE,PAY_AMT1"``, ``"unset"``) or a Python value.

    Returns
    -------
    Any
        ``str`` for ``flow``/``model``, ``float | None`` for ``threshold``, ``list[str]`` for
        ``neutralize``, ``float`` for ``delay``.

    Raises
    ------
    FlagError
        Unknown flag, or a value that breaks the flag's rule.

    Examples
    --------
    >>> parse_flag("threshold", "0.35")
    0.35
    >>> parse_flag("neutralize", "AGE, PAY_AMT1")
    ['AGE', 'PAY_AMT1']
    """
    spec = FLAG_SPECS.get(name)
    if spec is None:
        raise FlagError(name, f"unknown flag; known flags: {', '.join(FLAG_SPECS)}", value)
    parsed = spec.parse(value)
    return list(parsed) if isinstance(parsed, tuple) else parsed


def flags_from_values(values: dict[str, Any]) -> Flags:
    """Build :class:`Flags` from stored canonical values, ignoring unknown or invalid entries.

    A store may hold a flag this version does not know (written by a newer tabguard) or a value
    edited by hand; the service must keep running on defaults for those rather than crash.
    """
    clean: dict[str, Any] = {}
    for name, value in values.items():
        if name not in FLAG_SPECS:
            continue
        try:
            clean[name] = FLAG_SPECS[name].parse(value)
        except FlagError:
            continue
    return Flags(**clean)


def encode_value(value: Any) -> str:
    """Encode a canonical flag value for storage (JSON)."""
    return json.dumps(value, separators=(",", ":"))


def decode_value(text: str | None) -> Any:
    """Decode a stored flag value; ``None`` stays ``None``."""
    return None if text is None else json.loads(text)


@dataclass(frozen=True)
class FlagChange:
    """One entry of the flag audit trail.

    Attributes
    ----------
    version : int
        Monotonic id of the change within its store (the store version after it).
    name : str
        The flag changed.
    old : Any
        The previous effective value (the default if the flag had never been set).
    new : Any
        The new value.
    actor : str
        Who changed it.
    reason : str or None
        Why, as given by the actor.
    changed_at : datetime
        When (UTC).
    """

    version: int
    name: str
    old: Any
    new: Any
    actor: str
    reason: str | None
    changed_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """Return the change as a JSON-ready dict."""
        return {
            "version": self.version,
            "name": self.name,
            "old": self.old,
            "new": self.new,
            "actor": self.actor,
            "reason": self.reason,
            "changed_at": self.changed_at.isoformat(),
        }


@dataclass(frozen=True)
class FlagSnapshot:
    """The flags in force and the store version they were read at."""

    flags: Flags
    version: int
