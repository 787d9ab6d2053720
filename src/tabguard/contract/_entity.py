"""Whether a column repeats like an entity id (an account id in panel data).

Panel data (an account's row every month) and other repeated records are one unit of evidence
per entity for the trigger scan where the contract names the entity column (``entity:``), and
where it names none but the data holds a column that repeats like one
(:func:`undeclared_unit`, a guess the scan's findings and the model probe's section state).
A column repeats like an id when its values repeat (at least ``_MIN_ENTITIES`` of them, most
rows sharing theirs with other rows) and some other columns are constant within each value,
far more often than rows grouped at random would be: what an account's static attributes (sex,
education, date of birth) do. ``contract infer`` drafts such a column as the entity; the data
audit hints at one the contract leaves out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from tabguard.contract._spec import Contract

#: Distinct values a column needs to be an id (fewer: a category such as a branch or a batch).
_MIN_ENTITIES = 20
#: Rows per value on average from which a column repeats (an id of rows has one). Patients
#: with one to three stays average under two; the constancy test, not this, tells an id.
_MIN_ROWS_PER_ENTITY = 1.5
#: Share of the repeated values within which a feature must hold one value.
_CONSTANT_SHARE = 0.95
#: Share of random groups of the same sizes that may hold one value by chance, at most, for
#: the feature to count (a feature nearly constant over the data tells nothing).
_CHANCE_SHARE = 0.5
#: Values whose rows are read (the groups of a million-row file: a sample of them).
_SAMPLE_ENTITIES = 2_000
#: Design effect of the label (:func:`label_design_effect`) from which a unit's clustering
#: outweighs another's: its rows then count as at least twice as many records as they are,
#: and twice the other unit's.
CLUSTERED = 2.0


@dataclass(frozen=True)
class RepeatedId:
    """A column that repeats like an entity id.

    Attributes
    ----------
    column : str
    rows : int
        Rows with a value of the column.
    entities : int
        Its distinct values.
    constant : tuple of str
        Other columns constant within (nearly) each of its values.
    """

    column: str
    rows: int
    entities: int
    constant: tuple[str, ...]

    def summary(self) -> str:
        """``"N rows over K values, R each; A, B constant within each"``."""
        shown = ", ".join(self.constant[:6]) + (" ..." if len(self.constant) > 6 else "")
        return (
            f"{self.rows} rows over {self.entities} values, {self.rows / self.entities:.1f} "
            f"each; {shown} constant within each"
        )


def repeated_id(
    data: pd.DataFrame, column: str, features: list[str], *, seed: int = 0
) -> RepeatedId | None:
    """``column`` as a :class:`RepeatedId` when it repeats like an entity id (see
    :func:`constant_within_entities`), else None."""
    constant = constant_within_entities(data, column, features, seed=seed)
    if not constant:
        return None
    held = data[column].dropna()
    return RepeatedId(str(column), len(held), int(held.nunique()), constant)


def undeclared_ids(data: pd.DataFrame, contract: Contract, *, seed: int = 0) -> list[RepeatedId]:
    """The columns of ``data`` the contract does not name that repeat like an id of units
    (:func:`repeated_id`), in column order.

    Parameters
    ----------
    data : DataFrame
        Rows with any columns the contract leaves out.
    contract : Contract
    seed : int
        Draw of the values read when a column has more than ``_SAMPLE_ENTITIES`` of them.

    Returns
    -------
    list of RepeatedId
    """
    known = set(contract.columns())
    features = [f for f in contract.features if f in data.columns]
    return [
        r
        for col in data.columns
        if col not in known and (r := repeated_id(data, str(col), features, seed=seed)) is not None
    ]


def undeclared_unit(
    data: pd.DataFrame,
    contract: Contract,
    *,
    seed: int = 0,
    found: list[RepeatedId] | None = None,
) -> RepeatedId | None:
    """The units to count where the contract declares no ``entity`` but the data shows one:
    the finest of :func:`undeclared_ids` (the most values, as ``contract infer`` drafts an
    entity); None when the contract declares an entity or no column repeats like one.

    The model probe counts them in its comparisons of training and reference shares, the
    trigger scan in its evidence (a shipper's rows share its home hub: counted per row, a hub
    of a few large shippers reads as a value whose rows carry one label).

    Parameters
    ----------
    data : DataFrame
    contract : Contract
    seed : int
        Draw of the values read when a column has more than ``_SAMPLE_ENTITIES`` of them.
    found : list of RepeatedId, optional
        ``undeclared_ids(data, contract, seed=seed)`` when the caller has it (the data audit
        computes it once for its integrity check and its trigger scan); computed here
        otherwise.

    Returns
    -------
    RepeatedId or None
    """
    if contract.entity is not None:
        return None
    if found is None:
        found = undeclared_ids(data, contract, seed=seed)
    return max(found, key=lambda r: r.entities) if found else None


def constant_within_entities(
    data: pd.DataFrame, column: str, features: list[str], *, seed: int = 0
) -> tuple[str, ...]:
    """The ``features`` constant within (nearly) every value of ``column``, when ``column``
    repeats like an entity id; an empty tuple when it does not.

    Parameters
    ----------
    data : DataFrame
    column : str
        The candidate id column.
    features : list of str
        Columns whose constancy within the candidate's values is tested.
    seed : int
        Draw of the values read when the column has more than ``_SAMPLE_ENTITIES`` of them.

    Returns
    -------
    tuple of str
        The constant features, in the order given.
    """
    codes, _ = pd.factorize(data[column], use_na_sentinel=True)
    held = codes >= 0
    sizes = np.bincount(codes[held]) if held.any() else np.zeros(0, dtype=np.int64)
    n, k = int(held.sum()), len(sizes)
    if k < _MIN_ENTITIES or n < _MIN_ROWS_PER_ENTITY * k or sizes[sizes > 1].sum() < n / 2:
        return ()
    repeated = np.flatnonzero(sizes > 1)
    if len(repeated) > _SAMPLE_ENTITIES:
        rng = np.random.default_rng(seed)
        repeated = np.sort(rng.choice(repeated, _SAMPLE_ENTITIES, replace=False))
    rows = np.flatnonzero(held & np.isin(codes, repeated))
    group = codes[rows]
    return tuple(
        f for f in features if f != column and _constant_within(data[f].to_numpy()[rows], group)
    )


def _constant_within(values: np.ndarray, group: np.ndarray) -> bool:
    """Whether ``values`` hold one value within at least ``_CONSTANT_SHARE`` of the groups,
    while groups of the same sizes drawn at random would in at most ``_CHANCE_SHARE``."""
    v, _ = pd.factorize(values, use_na_sentinel=False)
    frame = pd.DataFrame({"g": group, "v": v})
    per = frame.groupby("g")["v"].agg(["nunique", "size"])
    if not len(per):
        return False
    share = float((per["nunique"] == 1).mean())
    freq = np.bincount(v) / len(v)
    freq = np.sort(freq)[::-1][:50]
    sizes, groups = np.unique(per["size"].to_numpy(), return_counts=True)
    chance = float(np.sum(groups * (freq[None, :] ** sizes[:, None]).sum(axis=1)) / len(per))
    return share >= _CONSTANT_SHARE and chance <= _CHANCE_SHARE


def unit_codes(values: Any) -> np.ndarray:
    """The contract's entity column as int64 codes, one per entity; a row without an entity
    is a unit of its own (a code after every entity's)."""
    codes = pd.factorize(values, use_na_sentinel=True)[0].astype(np.int64)
    missing = codes < 0
    codes[missing] = codes.max(initial=-1) + 1 + np.arange(int(missing.sum()))
    return codes


def label_design_effect(data: pd.DataFrame, column: str, label: str) -> float:
    """How many rows of one value of ``column`` count as one record of the label: the design
    effect of the label clustered by the column (:func:`design_effect`; the label's rarest
    value against the others).

    Near 1 when the label does not depend on the unit (a marketplace's buyers), large when it
    does and units are big (its sellers: a few sellers' orders carry their own dispute rates).

    Parameters
    ----------
    data : DataFrame
    column : str
    label : str
        The label: its rarest value against the others.

    Returns
    -------
    float
    """
    held = data[[column, label]].dropna()
    if held.empty or held[label].nunique() < 2:
        return 1.0
    y = (held[label] == held[label].value_counts().idxmin()).to_numpy(dtype=np.int64)
    return design_effect(y, pd.factorize(held[column])[0])


def design_effect(codes: np.ndarray, units: np.ndarray) -> float:
    """How many rows of one unit count as one record of a category column: the design effect
    ``1 + (m - 1) * icc`` of its values clustered by the units.

    ``icc`` is the intraclass correlation of the column's indicators within units (the one-way
    analysis-of-variance estimator, its sums of squares pooled over the categories, at least
    0) and ``m`` the size of the unit a row's unit holds, on average over rows
    (``sum n_g^2 / N``). The variance of a category's share in a sample of units is about this
    many times the variance in a sample of as many independent rows: 1 where rows of one unit
    are as varied as any rows, ``m`` where every unit holds one value (a shipper's home hub).
    A binary label's two indicators have the same sums of squares: its design effect is the
    rare value's.

    Parameters
    ----------
    codes : ndarray of int
        The column's category codes (``0 .. K - 1``), one per row.
    units : ndarray of int
        The unit of each row (codes ``0 .. G - 1``).

    Returns
    -------
    float
        At least 1.
    """
    codes = np.asarray(codes, dtype=np.int64)
    units = np.asarray(units, dtype=np.int64)
    total = float(len(codes))
    n = np.bincount(units).astype(float)
    n = n[n > 0]
    g = len(n)
    if g < 2 or g >= total:
        return 1.0
    share = np.bincount(codes) / total
    # sum over units and categories of n_gw^2 / n_g: the pairs (unit, category) and their rows
    pair, rows = np.unique(units * (int(codes.max()) + 1) + codes, return_counts=True)
    size = np.bincount(units).astype(float)[pair // (int(codes.max()) + 1)]
    within_fit = float(np.sum(rows.astype(float) ** 2 / size))
    between = (within_fit - total * float(np.sum(share**2))) / (g - 1)
    within = (total - within_fit) / (total - g)
    n0 = (total - float((n**2).sum()) / total) / (g - 1)
    icc = max(0.0, (between - within) / max(between + (n0 - 1) * within, 1e-12))
    return 1.0 + (float((n**2).sum()) / total - 1.0) * icc


def nested_in(data: pd.DataFrame, fine: str, coarse: str) -> bool:
    """Whether (nearly) every value of ``fine`` lies within one value of ``coarse`` (a
    patient's stays in one hospital), at ``_CONSTANT_SHARE`` of the repeated values."""
    held = data[[fine, coarse]].dropna()
    per = held.groupby(fine, sort=False)[coarse].nunique()
    return bool(len(per)) and float((per <= 1).mean()) >= _CONSTANT_SHARE


def outweighs(data: pd.DataFrame, unit: str, other: str, label: str) -> tuple[float, float] | None:
    """The label's design effects by ``unit`` and by ``other`` when ``unit`` should count the
    rows instead of ``other``, else None: the label clusters by ``unit`` far more (its design
    effect at least ``CLUSTERED`` and ``CLUSTERED`` times ``other``'s) and ``other`` is not
    a part of it (:func:`nested_in`: patients within hospitals stay patients). The rule of
    ``contract infer``'s entity and of the data audit's hint beside a declared one."""
    mine = label_design_effect(data, unit, label)
    theirs = label_design_effect(data, other, label)
    if mine < max(CLUSTERED, CLUSTERED * theirs) or nested_in(data, other, unit):
        return None
    return mine, theirs
