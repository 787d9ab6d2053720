"""The model-audit check interface, registry and shared context.

Each check is one class with a ``name`` and ``run(ctx) -> ModelCheckResult``. It reads the
shared :class:`ModelAuditContext` and never mutates it, except its ``cache`` where checks share
expensive intermediate results (SHAP values, the probe's candidate grid). ``@register_check``
adds a check to the default audit, in registration order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
import pandas as pd

from tabguard.model_audit._model import AuditedModel
from tabguard.progress import NULL_PROGRESS, Progress
from tabguard.reports import Finding, Section


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
        Per-check options, e.g. ``{"backdoor": {"n_rows": 600}}``.
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
    options: dict[str, Any] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def approve(self) -> np.ndarray:
        """The model's decision on every reference row (True = approve)."""
        return self.model.approve(self.scores)

    def opts(self, check: str) -> Mapping[str, Any]:
        """Options given for one check."""
        o = self.options.get(check, {})
        return o if isinstance(o, Mapping) else {}

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
    """A model-audit check."""

    name: ClassVar[str]

    def run(self, ctx: ModelAuditContext) -> ModelCheckResult:
        """Run the check."""
        ...


_REGISTRY: dict[str, type[ModelCheck]] = {}
# Report order: what the model is, what it relies on, what must never happen, how it can be
# attacked, whom it treats differently.
CHECK_ORDER = (
    "performance",
    "importance",
    "unacceptable",
    "backdoor",
    "gameability",
    "extraction",
    "membership",
    "fairness",
)


def register_check(cls: type[ModelCheck]) -> type[ModelCheck]:
    """Class decorator adding a check to the default model audit."""
    _REGISTRY[cls.name] = cls
    return cls


def registered_checks() -> dict[str, type[ModelCheck]]:
    """Checks in :data:`CHECK_ORDER` (others after them, in registration order)."""
    rank = {n: i for i, n in enumerate(CHECK_ORDER)}
    names = sorted(_REGISTRY, key=lambda n: rank.get(n, len(rank)))
    return {n: _REGISTRY[n] for n in names}
