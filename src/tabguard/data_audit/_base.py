"""The data-audit check interface and registry.

Each check is one class in one module following :class:`tabguard.checks.Check`: a ``name``, an
``order`` (running order), ``after`` (checks whose results it reads: RONI reads the trigger scan's
and label noise's), ``concurrent``, an ``Options`` dataclass and ``run(ctx) -> CheckResult``. It
reads the shared :class:`AuditContext` and never mutates it, except for the ``cache`` where checks
share expensive intermediate results (e.g. out-of-fold probabilities). ``@register_check`` adds a
check to the default audit.

On large data the audit runs checks in two lanes (threads: the heavy parts are LightGBM and
numpy, which release the GIL). A check with ``concurrent = True`` reads only the data and its
own cache entries and may run in the second lane; a check lists the checks whose results it
reads in ``after`` and waits for them. ``reads_matrix`` says whether it reads the shared
:class:`~tabguard.data_audit._matrix.AuditMatrix`: while the first check asking builds it, the
second lane runs checks that do not. A check that must wait for a main-lane check may also have
a ``prepare(ctx)`` step doing the part of its work that does not (results left in the
``cache``, which ``run`` reads or computes itself when nothing prepared them), listing the
checks that step reads in ``prepare_after``: when those all run in the second lane, the step
runs there too (RONI fits its models that do not depend on the trigger scan beside the scan).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np
import pandas as pd

from tabguard.checks import CheckOptions, CheckRegistry, parse_options
from tabguard.contract import Contract, FeatureTransform, FrameValidation
from tabguard.data_audit._spare import Spare
from tabguard.progress import NULL_PROGRESS, Progress
from tabguard.reports import Finding, Section


@dataclass
class AuditContext:
    """Everything a data check may read.

    Attributes
    ----------
    data : DataFrame
        The data as read (all rows, original columns, index 0..n-1).
    contract : Contract
    y : ndarray of int8
        1 where the row carries the contract's positive label, else 0.
    validation : FrameValidation
        Contract violations of every row (D1).
    valid : ndarray of bool
        Rows that satisfy the contract (the checks that fit models use only these).
    transform : FeatureTransform
        The contract transform without options (model features, encoded).
    random_state : int
    progress : Progress
    options : dict
        Each check's validated options by check name (see :meth:`opts`).
    cache : dict
        Shared intermediate results between checks.
    trusted : DataFrame, optional
        A vetted sample (labels reviewed), validated against the contract; the label-noise
        check tests the audited labels against it.
    spare : Spare
        Where a check lends pure parts of its work to the audit's other lane while that lane
        is idle (:mod:`~tabguard.data_audit._spare`; without lanes they run in place).
    """

    data: pd.DataFrame
    contract: Contract
    y: np.ndarray
    validation: FrameValidation
    valid: np.ndarray
    transform: FeatureTransform
    random_state: int = 0
    progress: Progress = NULL_PROGRESS
    options: dict[str, CheckOptions] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)
    trusted: pd.DataFrame | None = None
    spare: Spare = field(default_factory=Spare, repr=False, compare=False)

    def opts(self, cls: type[OptionsT]) -> OptionsT:
        """The options of the check that ``cls`` configures (its defaults when none given)."""
        got = self.options.get(cls.check)
        return got if isinstance(got, cls) else parse_options(cls, got)

    @property
    def n_rows(self) -> int:
        """Number of rows audited."""
        return len(self.data)

    @property
    def base_rate(self) -> float:
        """Share of the positive label over all rows."""
        return float(self.y.mean()) if len(self.y) else 0.0

    def encoded(self) -> np.ndarray:
        """Model matrix of every row (contract transform; cached)."""
        if "X" not in self.cache:
            self.cache["X"] = self.transform.transform_frame(self.data)
        X: np.ndarray = self.cache["X"]
        return X


@dataclass
class Treatment:
    """One documented treatment of rows (D5): dropped, clipped, imputed or quarantined."""

    action: str
    rows: np.ndarray
    reason: str
    check: str
    features: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (row positions truncated to the first 1000)."""
        return {
            "action": self.action,
            "count": len(self.rows),
            "reason": self.reason,
            "check": self.check,
            "features": self.features,
            "rows": [int(r) for r in self.rows[:1000]],
        }


@dataclass
class CheckResult:
    """What a check returns.

    Attributes
    ----------
    findings : list of Finding
    sections : list of Section
        Tables and plot data for the HTML report.
    suspicious_rows : ndarray of int
        Rows suspected of poisoning (evidence of an attack, not mere oddity).
    quarantine : dict of int to str
        Rows to keep out of ``clean.csv``, with the reason.
    treatments : list of Treatment
    """

    findings: list[Finding] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    suspicious_rows: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    quarantine: dict[int, str] = field(default_factory=dict)
    treatments: list[Treatment] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


class DataCheck(Protocol):
    """A data-audit check (the :class:`tabguard.checks.Check` protocol on an AuditContext)."""

    name: ClassVar[str]
    order: ClassVar[int]
    after: ClassVar[tuple[str, ...]]
    concurrent: ClassVar[bool]
    reads_matrix: ClassVar[bool]
    Options: ClassVar[type[CheckOptions]]

    def run(self, ctx: AuditContext) -> CheckResult:
        """Run the check on the context."""
        ...


REGISTRY: CheckRegistry[type[DataCheck]] = CheckRegistry("data")
OptionsT = TypeVar("OptionsT", bound=CheckOptions)


def register_check(cls: type[DataCheck]) -> type[DataCheck]:
    """Class decorator adding a check to the default data audit."""
    return REGISTRY.register(cls)


def registered_checks() -> dict[str, type[DataCheck]]:
    """Checks in running order (their ``order``, then registration order)."""
    return REGISTRY.ordered()
