"""Errors of the training pipeline (all :class:`~tabguard.errors.TabguardError`)."""

from __future__ import annotations

from typing import Any

from tabguard.errors import TabguardError


class TrainingError(TabguardError):
    """Base class of training errors."""


class TrainingConfigError(TrainingError, ValueError):
    """A training option is invalid (names the option, the rule, the value and a fix)."""

    def __init__(self, option: str, rule: str, value: Any, fix: str | None = None) -> None:
        self.option, self.rule, self.value, self.fix = option, rule, value, fix
        msg = f"{option}: {rule}; got {value!r}"
        if fix:
            msg += f". Fix: {fix}"
        super().__init__(msg)


class DataAuditRefusedError(TrainingError):
    """The data audit found critical problems and training was refused (CLI exit code 1).

    Attributes
    ----------
    findings : list of Finding
        The critical findings.
    """

    def __init__(self, message: str, findings: list[Any]) -> None:
        super().__init__(message)
        self.findings = findings


class TrackingError(TrainingError):
    """MLflow tracking or registration failed; the message says what and where."""
