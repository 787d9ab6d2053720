"""Check options: frozen dataclasses whose fields declare their default, rule and reason.

Every data and model check takes its settings as one frozen dataclass deriving from
:class:`CheckOptions`. Each field is declared with :func:`option`, which records the default, the
rule the value must satisfy (:class:`Rule`) and one line saying why the default is what it is.
The same declaration validates a value (in ``__post_init__``, whichever way the object is built),
parses a user's mapping (:func:`parse_options`) and documents the option
(:func:`describe_options`): one declaration, many uses, as scikit-learn's parameter constraints.

A bad option raises :class:`~tabguard.errors.OptionsError` naming the check, the key, the rule and
the value received; the CLI turns it into exit status 2.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from tabguard.errors import OptionsError


@dataclass(frozen=True)
class Rule:
    """A constraint on one option value.

    Attributes
    ----------
    text : str
        The rule for people, e.g. ``"in (0, 1)"``.
    test : callable
        True when the value satisfies the rule.
    """

    text: str
    test: Callable[[Any], bool]

    def __call__(self, value: Any) -> bool:
        """Whether ``value`` satisfies the rule."""
        try:
            return bool(self.test(value))
        except TypeError:
            return False


def interval(lo: float | None = None, hi: float | None = None, closed: str = "both") -> Rule:
    """Values between ``lo`` and ``hi`` (None: unbounded); ``closed`` in both/left/right/neither.

    For a tuple option the rule applies to each element.
    """
    lo_in = closed in ("both", "left")
    hi_in = closed in ("both", "right")

    def one(v: float) -> bool:
        if isinstance(v, float) and math.isnan(v):
            return False
        if lo is not None and (v < lo or (v == lo and not lo_in)):
            return False
        return not (hi is not None and (v > hi or (v == hi and not hi_in)))

    def test(v: Any) -> bool:
        return all(one(x) for x in v) if isinstance(v, tuple) else one(v)

    left = "-inf" if lo is None else f"{lo:g}"
    right = "inf" if hi is None else f"{hi:g}"
    text = ("[" if lo_in and lo is not None else "(") + f"{left}, {right}"
    text += "]" if hi_in and hi is not None else ")"
    return Rule(f"in {text}", test)


PROBABILITY_OPEN = interval(0.0, 1.0, "neither")
SHARE = interval(0.0, 1.0)
POSITIVE = interval(0.0, None, "neither")
NON_NEGATIVE = interval(0.0, None)


def at_least(lo: float) -> Rule:
    """Values ``>= lo``."""
    return interval(lo, None)


def non_empty() -> Rule:
    """A non-empty tuple."""
    return Rule("not empty", lambda v: len(v) > 0)


_META = "tabguard_option"


@dataclass(frozen=True)
class _OptionMeta:
    reason: str
    rule: Rule | None


def option(default: Any, reason: str, rule: Rule | None = None) -> Any:
    """Declare one option field: its default, why that default, and the rule values obey.

    Parameters
    ----------
    default : Any
        The default (immutable: a number, a string, a bool or a tuple).
    reason : str
        One line saying what the option does and why the default is what it is.
    rule : Rule, optional
        The constraint a value must satisfy (the type is checked from the annotation).
    """
    return dataclasses.field(default=default, metadata={_META: _OptionMeta(reason, rule)})


@dataclass(frozen=True)
class OptionDoc:
    """One option as documented: name, type, default, rule and reason."""

    name: str
    type: str
    default: Any
    rule: str
    reason: str


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is tuple:
        (inner, *_) = typing.get_args(tp)
        return f"tuple of {_type_name(inner)}"
    return getattr(tp, "__name__", str(tp))


def _coerce(tp: Any, v: Any) -> tuple[bool, Any]:
    """(ok, value converted to the declared type)."""
    if tp is bool:
        return isinstance(v, bool), v
    if tp is int:
        if isinstance(v, bool):
            return False, v
        if isinstance(v, int):
            return True, v
        if isinstance(v, float) and v.is_integer():  # 1e6 from YAML or JSON
            return True, int(v)
        return False, v
    if tp is float:
        if isinstance(v, bool) or not isinstance(v, int | float):
            return False, v
        return True, float(v)
    if tp is str:
        return isinstance(v, str), v
    if typing.get_origin(tp) is tuple:
        (inner, *_) = typing.get_args(tp)
        if isinstance(v, str) or not isinstance(v, list | tuple):
            return False, v
        out = []
        for x in v:
            ok, x2 = _coerce(inner, x)
            if not ok:
                return False, v
            out.append(x2)
        return True, tuple(out)
    return True, v  # Literal and other annotations: the rule checks them


class CheckOptions:
    """Base of every check's options dataclass (declare it ``@dataclass(frozen=True)``).

    Subclasses set ``check`` (the name of the check they configure) and declare each field with
    :func:`option`. Values are validated on construction; :meth:`validate` may be extended with
    rules that relate several fields (call ``super().validate()``).
    """

    check: ClassVar[str] = "?"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field's type and rule (raises OptionsError)."""
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            ok, v2 = _coerce(hints[f.name], v)
            if not ok:
                raise OptionsError(self.check, f.name, f"must be {_type_name(hints[f.name])}", v)
            if v2 is not v:
                object.__setattr__(self, f.name, v2)
            meta: _OptionMeta | None = f.metadata.get(_META)
            if meta is not None and meta.rule is not None and not meta.rule(v2):
                raise OptionsError(self.check, f.name, f"must be {meta.rule.text}", v)

    def fail(self, key: str, rule: str) -> None:
        """Raise the error of a rule relating several fields, naming ``key``."""
        raise OptionsError(self.check, key, rule, getattr(self, key))


OptionsT = TypeVar("OptionsT", bound=CheckOptions)


def parse_options(cls: type[OptionsT], given: object) -> OptionsT:
    """Build ``cls`` from a user's mapping (None: the defaults).

    Raises
    ------
    OptionsError
        ``given`` is not a mapping, a key is unknown (a misspelt key is never ignored), a value
        has the wrong type or breaks its rule.
    """
    if given is None:
        return cls()
    if isinstance(given, cls):
        return given
    if not isinstance(given, Mapping):
        raise OptionsError(
            cls.check, None, "options must be a mapping of option names to values", given
        )
    known = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    for key in given:
        if key not in known:
            raise OptionsError(
                cls.check, str(key), f"unknown option; known: {', '.join(known)}", given[key]
            )
    return cls(**dict(given))


def describe_options(cls: type[CheckOptions]) -> list[OptionDoc]:
    """Every option of ``cls`` with its type, default, rule and reason (for docs and tests)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        meta: _OptionMeta | None = f.metadata.get(_META)
        out.append(
            OptionDoc(
                f.name,
                _type_name(hints[f.name]),
                f.default,
                "" if meta is None or meta.rule is None else meta.rule.text,
                "" if meta is None else meta.reason,
            )
        )
    return out


def options_markdown(cls: type[CheckOptions]) -> str:
    """The options of ``cls`` as a Markdown table (the guides embed it; a test keeps them equal).

    Examples
    --------
    >>> from tabguard.data_audit import RoniOptions
    >>> print(options_markdown(RoniOptions).splitlines()[0])
    | option | default | rule | what it does and why the default |
    """
    lines = [
        "| option | default | rule | what it does and why the default |",
        "|---|---|---|---|",
    ]
    for d in describe_options(cls):
        default = (
            ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in d.default)
            if isinstance(d.default, tuple)
            else (f"{d.default:g}" if isinstance(d.default, float) else str(d.default))
        )
        rule = d.rule or d.type
        reason = d.reason.replace("|", "\\|")
        lines.append(f"| `{d.name}` | {default} | {rule} | {reason} |")
    return "\n".join(lines)


_MARKER = re.compile(r"(<!-- options:(?P<name>[a-z_]+) -->\n)(.*?)(<!-- /options -->)", re.S)


def refresh_option_tables(text: str, options: Mapping[str, type[CheckOptions]]) -> str:
    """Rewrite every ``<!-- options:NAME -->`` ... ``<!-- /options -->`` block of a Markdown
    guide with the table of ``options[NAME]`` (how the guides stay equal to the code)."""

    def table(m: re.Match[str]) -> str:
        cls = options[m.group("name")]
        return m.group(1) + options_markdown(cls) + "\n" + m.group(4)

    return _MARKER.sub(table, text)
