"""The exceptions tabguard raises.

Every error tabguard raises on purpose derives from :class:`TabguardError`, so a caller can
catch one class. The hierarchy::

    TabguardError
    ├── ContractError          a contract file or object breaks a contract rule
    ├── OptionsError           a check's option is unknown, of the wrong type or out of range
    ├── UnknownCheckError      a check name that no audit has
    ├── DataError              input data cannot be used at all (missing file, no label, ...)
    ├── RecordValidationError  one scoring request breaks the contract (carries FieldErrors)
    ├── ArtifactIntegrityError a model artifact is missing, unsafe or does not match its hash
    ├── BackendUnavailableError a storage backend (database, Redis) cannot be reached
    └── MissingDependencyError an optional package is needed ("install tabguard[redis]")

Messages name the thing at fault (key, column, field), the rule it breaks, the value received
and how to fix it, on one line. Backend driver errors are mapped to
:class:`BackendUnavailableError` with ``raise ... from exc`` so callers never see a driver type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class TabguardError(Exception):
    """Base class of every error tabguard raises on purpose."""


class ContractError(TabguardError, ValueError):
    """A feature contract is invalid.

    Parameters
    ----------
    key : str
        Dotted path of the offending key, e.g. ``features.AGE.neutral``.
    rule : str
        The rule that is broken, e.g. ``neutral must lie within [min, max]``.
    value : Any
        The value received.
    fix : str, optional
        How to fix it.
    show_value : bool
        Whether the message shows ``value``; not when it is the whole contract (a rule across
        keys: the rule names the keys, and the contract's text would fill the screen).
    """

    def __init__(
        self,
        key: str,
        rule: str,
        value: Any = None,
        fix: str | None = None,
        *,
        show_value: bool = True,
    ) -> None:
        self.key, self.rule, self.value, self.fix = key, rule, value, fix
        msg = f"{key}: {rule}; got {value!r}" if show_value else f"{key}: {rule}"
        if fix:
            msg += f". Fix: {fix}"
        super().__init__(msg)


class OptionsError(TabguardError, ValueError):
    """An option of a data or model check is unknown, of the wrong type or out of range.

    Parameters
    ----------
    check : str
        The check the option belongs to, e.g. ``trigger_scan``.
    key : str or None
        The option, e.g. ``alpha`` (None: the options as a whole).
    rule : str
        The rule that is broken, e.g. ``must be in (0, 1)``.
    value : Any
        The value received.
    """

    def __init__(self, check: str, key: str | None, rule: str, value: Any = None) -> None:
        self.check, self.key, self.rule, self.value = check, key, rule, value
        where = f"options.{check}" + (f".{key}" if key is not None else "")
        super().__init__(f"{where}: {rule}; got {value!r}")


class UnknownCheckError(TabguardError, ValueError):
    """A data or model check name that the audit does not have.

    Parameters
    ----------
    kind : str
        ``data`` or ``model``.
    names : list of str
        The unknown names.
    valid : list of str
        Every check of that audit, in running order.
    """

    def __init__(self, kind: str, names: list[str], valid: list[str]) -> None:
        self.kind, self.names, self.valid = kind, names, valid
        unknown = ", ".join(repr(n) for n in names)
        super().__init__(f"unknown {kind} check(s) {unknown}; valid checks: {', '.join(valid)}")


class DataError(TabguardError, ValueError):
    """Input data cannot be used (bad file, missing label column, NaN labels, wrong types)."""


@dataclass(frozen=True)
class FieldError:
    """One violation of the contract by one field of one record.

    Attributes
    ----------
    field : str
        The feature (or ``label``/``__record__``) at fault.
    rule : str
        Machine-readable rule id: ``required``, ``type``, ``min``, ``max``, ``category``,
        ``precision``, ``missing``, ``unknown_field`` or ``rule:<name>`` for a combination rule.
    value : Any
        The value received (JSON-serialisable).
    message : str
        One sentence for people: the rule, the value and the allowed values.
    """

    field: str
    rule: str
    value: Any
    message: str

    def to_dict(self) -> dict[str, Any]:
        """Return the error as a JSON-ready dict (the API's ``errors[]`` item)."""
        return {
            "field": self.field,
            "rule": self.rule,
            "value": self.value,
            "message": self.message,
        }


class RecordValidationError(TabguardError, ValueError):
    """A single record (scoring request) breaks the contract."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        head = "; ".join(e.message for e in errors[:3])
        more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
        super().__init__(f"record breaks the contract: {head}{more}")


class ArtifactIntegrityError(TabguardError):
    """A model artifact is missing, in an unsafe format, or does not match its manifest hash."""


class BackendUnavailableError(TabguardError):
    """A storage backend (SQL database, Redis) cannot be reached or failed."""


class MissingDependencyError(TabguardError, ImportError):
    """An optional dependency is not installed."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the '{package}' package; install it with "
            f"`pip install 'tabguard[{extra}]'`"
        )
