"""The model-audit check interface, registry and shared context.

Each check is one class following :class:`tabguard.checks.Check` (the same protocol as the data
checks): ``name``, ``order`` (running and report order: what the model is, what it relies on,
what must never happen, how it can be attacked, whom it treats differently), ``after``,
``concurrent``, an ``Options`` dataclass and ``run(ctx) -> ModelCheckResult``. It reads the
shared :class:`ModelAuditContext` and never mutates it, except its ``cache`` where checks share
expensive intermediate results (SHAP values, the probe's candidate grid). ``@register_check``
adds a check to the default audit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np
import pandas as pd

from tabguard.checks import CheckOptions, CheckRegistry, parse_options
from tabguard.model_audit._model import AuditedModel
from tabguard.progress import NULL_PROGRESS, Progress
from tabguard.reports import Finding, Section

OptionsT = TypeVar("OptionsT", bound=CheckOptions)


@dataclass
class ModelAuditContext:
    """Everything a model check may read.

    Attributes
    ----------
    model : AuditedModel
    data : DataFrame
        Clean reference rows (raw attributes and label, index 0..n-1), valid under the contract.
    y : ndarray of int8
        1 where the row carries the contract's positive label.
    X : ndarray
        ``data`` encoded as the model's matrix.
    scores : ndarray
        P(positive) of every reference row.
    members : DataFrame, optional
        Rows known to be in the model's training set (membership inference).
    random_state : int
    progress : Progress
    options : dict
        Each check's validated options by check name (see :meth:`opts`).
    cache : dict
        Shared intermediate results.
    """

    model: AuditedModel
    data: pd.DataFrame
    y: np.ndarray
    X: np.ndarray
    scores: np.ndarray
    members: pd.DataFrame | None = None
    random_state: int = 0
    progress: Progress = NULL_PROGRESS
    options: dict[str, CheckOptions] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def approve(self) -> np.ndarray:
        """The model's decision on every reference row (True = approve)."""
        return self.model.approve(self.scores)

    def opts(self, cls: type[OptionsT]) -> OptionsT:
        """The options of the check that ``cls`` configures (its defaults when none given).

        Raises
        ------
        OptionsError
            Options given for that check that are not valid (never silently ignored).
        """
        got = self.options.get(cls.check)
        return got if isinstance(got, cls) else parse_options(cls, got)

    def sample(self, n: int, *, key: str = "rows") -> np.ndarray:
        """A fixed random sample of at most ``n`` row positions (the same for every check)."""
        ck = f"sample:{key}:{n}"
        if ck not in self.cache:
            rng = np.random.default_rng(self.random_state)
            k = min(n, len(self.data))
            self.cache[ck] = np.sort(rng.choice(len(self.data), size=k, replace=False))
        out: np.ndarray = self.cache[ck]
        return out


@dataclass
class ModelCheckResult:
    """What a model check returns."""

    findings: list[Finding] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


class ModelCheck(Protocol):
    """A model-audit check (the :class:`tabguard.checks.Check` protocol on a ModelAuditContext)."""

    name: ClassVar[str]
    order: ClassVar[int]
    after: ClassVar[tuple[str, ...]]
    concurrent: ClassVar[bool]
    Options: ClassVar[type[CheckOptions]]

    def run(self, ctx: ModelAuditContext) -> ModelCheckResult:
        """Run the check."""
        ...


REGISTRY: CheckRegistry[type[ModelCheck]] = CheckRegistry("model")


def register_check(cls: type[ModelCheck]) -> type[ModelCheck]:
    """Class decorator adding a check to the default model audit."""
    return REGISTRY.register(cls)


def registered_checks() -> dict[str, type[ModelCheck]]:
    """Checks in running and report order (their ``order``, then registration order)."""
    return REGISTRY.ordered()


@dataclass(frozen=True)
class NoOptions(CheckOptions):
    """Base of the options of a check without settings (an empty mapping is all it accepts)."""
