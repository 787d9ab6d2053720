"""The feature contract: one declaration of a model's inputs, used everywhere.

The contract is a set of pydantic models. Validation errors are turned into one-line
:class:`~tabguard.errors.ContractError` messages that name the key, the rule and the value.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FeatureType = Literal["integer", "number", "category", "boolean"]
Scalar = int | float | str | bool
# "smart": each value keeps its own type when it has one of these ('01' stays text, 1 an
# integer, true a boolean); only a value of another type (1.0) is converted.
CategoryValue = Annotated[int | str | bool, Field(union_mode="smart")]


def _n(v: float | None) -> str:
    """A number as people write it (18, not 18.0)."""
    if v is None:
        return "none"
    return str(int(v)) if float(v).is_integer() else repr(v)


class _Strict(BaseModel):
    # forbid: a misspelt key ("gamable") is an error, never silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(_Strict):
    """A condition on one field, used by combination rules.

    All given operators must hold. ``lte``/``gte``/``lt``/``gt`` accept a number or the
    name of another feature (cross-field comparison).
    """

    min: float | None = None
    max: float | None = None
    equals: Scalar | None = None
    in_: list[Scalar] | None = Field(default=None, alias="in")
    not_in: list[Scalar] | None = None
    lt: float | str | None = None
    lte: float | str | None = None
    gt: float | str | None = None
    gte: float | str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _not_empty(self) -> Condition:
        if not self.model_dump(exclude_none=True):
            raise ValueError(
                "a condition needs at least one of min, max, equals, in, not_in, lt, lte, gt, gte"
            )
        return self

    def referenced_fields(self) -> set[str]:
        """Names of other features this condition compares against."""
        return {v for v in (self.lt, self.lte, self.gt, self.gte) if isinstance(v, str)}


class Rule(_Strict):
    """An impossible combination of values (requirement D1).

    When every condition of ``when`` holds, every condition of ``require`` must hold too.
    Without ``require``, the combination in ``when`` is forbidden outright.
    """

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$")
    description: str | None = None
    when: dict[str, Condition] = Field(default_factory=dict)
    require: dict[str, Condition] | None = None

    @model_validator(mode="after")
    def _has_conditions(self) -> Rule:
        if not self.when and not self.require:
            raise ValueError("a rule needs 'when' conditions, 'require' conditions or both")
        return self

    def fields(self) -> set[str]:
        """Every feature the rule reads."""
        out: set[str] = set()
        for conds in (self.when, self.require or {}):
            for name, cond in conds.items():
                out.add(name)
                out |= cond.referenced_fields()
        return out


class UnacceptableCase(_Strict):
    """A case the system must never get wrong (requirement M2).

    ``case`` overrides feature values on top of reference rows; ``expect`` is what must happen:
    ``reject`` (never reaches the model), ``deny``, ``approve`` or ``not_approve``.
    """

    name: str
    case: dict[str, Scalar]
    expect: Literal["reject", "deny", "approve", "not_approve"]
    description: str | None = None


class LabelSpec(_Strict):
    """The label column and its positive class (the class the score estimates)."""

    column: str
    positive: CategoryValue = 1
    negative: CategoryValue | None = None
    favorable: CategoryValue | None = Field(
        default=None,
        description="Label value that is good for the subject (defaults to the negative class "
        "when the positive class means deny).",
    )


class DecisionSpec(_Strict):
    """How a score (probability of the positive class) becomes a decision (S4)."""

    positive_means: Literal["deny", "approve"] = "deny"
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    review_band: tuple[float, float] | None = None

    @field_validator("review_band")
    @classmethod
    def _band(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not (0.0 <= v[0] <= v[1] <= 1.0):
            raise ValueError("review_band must be [low, high] with 0 <= low <= high <= 1")
        return v


class FeatureSpec(_Strict):
    """One input attribute of the model.

    Parameters
    ----------
    type : {"integer", "number", "category", "boolean"}
    min, max : float, optional
        Valid range (inclusive). Values outside are rejected at the API and are contract
        violations in data.
    clip : [low, high], optional
        Soft range inside ``[min, max]``: valid values beyond it are clipped (floor/ceiling)
        before reaching the model.
    categories : list, optional
        The allowed values of a category (required for ``type: category``).
    precision : int, optional
        Maximum number of decimals of a ``number``.
    nullable : bool
        Whether a missing value is allowed (replaced by ``neutral`` before the model when set).
    protected : bool
        Legally protected attribute: audited for disparate impact, never a model input.
    gameable : bool
        The end user controls the value.
    neutral : optional
        A value with ~zero average effect on the score (used to neutralise the feature).
    bins : list of float, optional
        Strictly increasing edges of a coarse encoding.
    monotone : {"increasing", "decreasing"}, optional
        Expected direction of the effect on the positive-class score (monotone constraint).
    """

    type: FeatureType
    description: str | None = None
    min: float | None = None
    max: float | None = None
    clip: tuple[float, float] | None = None
    categories: list[CategoryValue] | None = None
    precision: int | None = Field(default=None, ge=0, le=12)
    nullable: bool = False
    protected: bool = False
    gameable: bool = False
    neutral: CategoryValue | float | None = None
    bins: list[float] | None = None
    monotone: Literal["increasing", "decreasing"] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> FeatureSpec:
        numeric = self.type in ("integer", "number")
        for key in ("min", "max"):
            v = getattr(self, key)
            if v is not None and not math.isfinite(v):
                raise ValueError(f"{key} must be a finite number; got {v!r}")
        if not numeric:
            for key in ("min", "max", "clip", "bins", "precision"):
                if getattr(self, key) is not None:
                    raise ValueError(
                        f"{key} only applies to integer/number features, not type '{self.type}'"
                    )
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min must be <= max; got min={_n(self.min)} > max={_n(self.max)}")
        if self.type == "category":
            if not self.categories:
                raise ValueError("a category feature needs a non-empty 'categories' list")
            if len({repr(c) for c in self.categories}) != len(self.categories):
                raise ValueError(f"categories must be unique; got {self.categories!r}")
        elif self.categories is not None:
            raise ValueError(f"categories only apply to type 'category', not '{self.type}'")
        if self.clip is not None:
            lo, hi = self.clip
            if lo > hi:
                raise ValueError(
                    f"clip must be [low, high] with low <= high; got {list(self.clip)}"
                )
            if (self.min is not None and lo < self.min) or (self.max is not None and hi > self.max):
                raise ValueError(
                    f"clip must lie within [min, max] = [{_n(self.min)}, {_n(self.max)}]; "
                    f"got {list(self.clip)}"
                )
        if self.bins is not None:
            if len(self.bins) < 2:
                raise ValueError(f"bins need at least two edges; got {self.bins!r}")
            if any(b >= a for a, b in zip(self.bins[1:], self.bins[:-1], strict=True)):
                raise ValueError(
                    "bins must be strictly increasing; got ["
                    + ", ".join(_n(b) for b in self.bins)
                    + "]"
                )
        if self.neutral is not None:
            self._check_neutral()
        if self.monotone is not None and not numeric and self.type != "boolean":
            raise ValueError("monotone only applies to integer, number or boolean features")
        if self.protected and self.gameable:
            # Not contradictory in law, but a protected attribute never reaches the model,
            # so calling it gameable would mislead the blast-radius audit.
            raise ValueError(
                "a feature cannot be both protected (never a model input) and gameable"
            )
        return self

    def _check_neutral(self) -> None:
        v = self.neutral
        if self.type == "category":
            if v not in (self.categories or []):
                raise ValueError(
                    f"neutral must be one of the categories {self.categories!r}; got {v!r}"
                )
            return
        if self.type == "boolean":
            if not isinstance(v, bool) and v not in (0, 1):
                raise ValueError(f"neutral of a boolean must be true or false; got {v!r}")
            return
        if isinstance(v, str | bool):
            raise ValueError(f"neutral of a {self.type} feature must be a number; got {v!r}")
        if v is None:
            return
        lo = -math.inf if self.min is None else self.min
        hi = math.inf if self.max is None else self.max
        fv = float(v)
        if not lo <= fv <= hi:
            raise ValueError(
                f"neutral must lie within [min, max] = [{_n(self.min)}, {_n(self.max)}]; got {v!r}"
            )
        if self.type == "integer" and not fv.is_integer():
            raise ValueError(f"neutral of an integer feature must be a whole number; got {v!r}")

    @property
    def is_numeric(self) -> bool:
        """True for integer and number features."""
        return self.type in ("integer", "number")

    @property
    def decimals(self) -> int | None:
        """Maximum number of decimals allowed (0 for integers, None when unconstrained)."""
        return 0 if self.type == "integer" else self.precision


class Contract(_Strict):
    """A model's feature contract.

    Examples
    --------
    >>> from tabguard.contract import Contract
    >>> c = Contract.model_validate({
    ...     "name": "toy", "label": {"column": "y"},
    ...     "features": {"age": {"type": "integer", "min": 18, "max": 125}},
    ... })
    >>> c.model_features()
    ['age']
    """

    name: str
    version: str | None = None
    description: str | None = None
    id: str | None = None
    entity: str | None = None
    label: LabelSpec
    features: dict[str, FeatureSpec]
    rules: list[Rule] = Field(default_factory=list)
    unacceptable: list[UnacceptableCase] = Field(default_factory=list)
    decision: DecisionSpec = Field(default_factory=DecisionSpec)
    segments: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _cross_checks(self) -> Contract:
        if not self.features:
            raise ValueError("features must declare at least one feature")
        if self.label.column in self.features:
            raise ValueError(f"the label column {self.label.column!r} cannot also be a feature")
        if self.id is not None and self.id in self.features:
            raise ValueError(f"the id column {self.id!r} is an identifier, never a feature")
        if self.id is not None and self.id == self.label.column:
            raise ValueError(f"the id column {self.id!r} cannot be the label column")
        if self.entity is not None and self.entity in self.features:
            raise ValueError(
                f"the entity column {self.entity!r} groups rows (an account id), never a feature"
            )
        if self.entity is not None and self.entity == self.label.column:
            raise ValueError(f"the entity column {self.entity!r} cannot be the label column")
        if not any(not f.protected for f in self.features.values()):
            raise ValueError(
                "at least one feature must not be protected (else the model has no input)"
            )
        for i, rule in enumerate(self.rules):
            unknown = sorted(rule.fields() - set(self.features))
            if unknown:
                raise ValueError(f"rules[{i}] ({rule.name}) refers to unknown features {unknown}")
        for i, case in enumerate(self.unacceptable):
            unknown = sorted(set(case.case) - set(self.features))
            if unknown:
                raise ValueError(
                    f"unacceptable[{i}] ({case.name}) refers to unknown features {unknown}"
                )
        names = [r.name for r in self.rules]
        if len(set(names)) != len(names):
            raise ValueError(f"rule names must be unique; got {names}")
        return self

    # -- views -------------------------------------------------------------------------------
    def model_features(self) -> list[str]:
        """Features that may reach the model (every feature that is not protected)."""
        return [n for n, f in self.features.items() if not f.protected]

    def protected_features(self) -> list[str]:
        """Protected attributes (audited, never model inputs)."""
        return [n for n, f in self.features.items() if f.protected]

    def gameable_features(self) -> list[str]:
        """Model features whose value the end user controls."""
        return [n for n, f in self.features.items() if f.gameable and not f.protected]

    def columns(self) -> list[str]:
        """Every column the contract names: id, entity, features, label."""
        cols = list(dict.fromkeys(c for c in (self.id, self.entity) if c))
        return [*cols, *self.features, self.label.column]

    def items(self) -> Iterator[tuple[str, FeatureSpec]]:
        """Iterate over ``(name, spec)`` pairs of every feature."""
        return iter(self.features.items())

    @property
    def favorable_label(self) -> Any:
        """The label value that is good for the subject (for disparate-impact audits)."""
        if self.label.favorable is not None:
            return self.label.favorable
        if self.decision.positive_means == "approve":
            return self.label.positive
        return self.label.negative

    def neutral_record(self) -> dict[str, Any]:
        """A record with every feature at its neutral value (else mid-range / first category)."""
        out: dict[str, Any] = {}
        for name, spec in self.features.items():
            if spec.neutral is not None:
                out[name] = spec.neutral
            elif spec.type == "category":
                out[name] = spec.categories[0] if spec.categories else None
            elif spec.type == "boolean":
                out[name] = False
            else:
                lo = spec.min if spec.min is not None else 0.0
                hi = spec.max if spec.max is not None else lo
                mid = (lo + hi) / 2
                out[name] = int(mid) if spec.type == "integer" else mid
        return out

    def with_updates(self, **features: Mapping[str, Any]) -> Contract:
        """Return a copy with some feature specs updated (validated again)."""
        data = self.model_dump(by_alias=True, exclude_none=True)
        for name, upd in features.items():
            data["features"][name] = {**data["features"].get(name, {}), **upd}
        return Contract.model_validate(data)
