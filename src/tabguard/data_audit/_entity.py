"""Columns the contract ignores that repeat like an account id: a hint to declare ``entity``.

Panel data (an account's row every month) and other repeated records are one unit of evidence
per entity for the trigger scan only when the contract names the entity column (``entity:``).
Left undeclared, the column is only reported as ignored, and a rare value carried by a few
accounts counts once per month (fresh13's credit panel, session 9: 4,000 accounts x 6-9 months
without ``entity`` gave 432 rows suspected and ``EDUCATION=5 → 0`` named, 0 with it). A column
is hinted when its values repeat (at least ``_MIN_ENTITIES`` of them, most rows sharing theirs
with other rows) and some declared features are constant within each value, far more often
than rows grouped at random would be: what an account's static attributes (sex, education,
date of birth) do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tabguard.contract import Contract

#: Distinct values a column needs to be an id (fewer: a category such as a branch or a batch).
_MIN_ENTITIES = 20
#: Rows per value on average from which a column repeats (an id of rows has one).
_MIN_ROWS_PER_ENTITY = 2.0
#: Share of the repeated values within which a declared feature must hold one value.
_CONSTANT_SHARE = 0.95
#: Share of random groups of the same sizes that may hold one value by chance, at most, for
#: the feature to count (a feature nearly constant over the data tells nothing).
_CHANCE_SHARE = 0.5
#: Values whose rows are read (the groups of a million-row file: a sample of them).
_SAMPLE_ENTITIES = 2_000


@dataclass(frozen=True)
class EntityHint:
    """A column to declare as the contract's ``entity``.

    Attributes
    ----------
    column : str
    rows : int
        Rows with a value of the column.
    entities : int
        Its distinct values.
    constant : tuple of str
        Declared features constant within (nearly) each of its values.
    """

    column: str
    rows: int
    entities: int
    constant: tuple[str, ...]

    def message(self) -> str:
        """The hint as the audit words it."""
        shown = ", ".join(self.constant[:6]) + (" ..." if len(self.constant) > 6 else "")
        return (
            f"column {self.column!r} is not in the contract and repeats like an account id: "
            f"{self.rows} rows over {self.entities} values ({self.rows / self.entities:.1f} "
            f"each), {shown} constant within each; declare it as `entity: {self.column}` in "
            "the contract, so that an entity's rows count as one unit of evidence (undeclared, "
            "the trigger scan counts each of its rows as a record of its own)."
        )


def entity_hints(data: pd.DataFrame, contract: Contract, *, seed: int = 0) -> list[EntityHint]:
    """The columns of ``data`` that the contract does not name and that repeat like an entity
    id (see the module docstring); none when the contract declares an entity.

    Parameters
    ----------
    data : DataFrame
    contract : Contract
    seed : int
        Draw of the values read when a column has more than ``_SAMPLE_ENTITIES`` of them.

    Returns
    -------
    list of EntityHint
    """
    if contract.entity is not None:
        return []
    known = set(contract.columns())
    features = [f for f in contract.features if f in data.columns]
    out = []
    for col in data.columns:
        if col in known:
            continue
        codes, _ = pd.factorize(data[col], use_na_sentinel=True)
        held = codes >= 0
        sizes = np.bincount(codes[held]) if held.any() else np.zeros(0, dtype=np.int64)
        n, k = int(held.sum()), len(sizes)
        if k < _MIN_ENTITIES or n < _MIN_ROWS_PER_ENTITY * k or sizes[sizes > 1].sum() < n / 2:
            continue
        repeated = np.flatnonzero(sizes > 1)
        rng = np.random.default_rng(seed)
        if len(repeated) > _SAMPLE_ENTITIES:
            repeated = np.sort(rng.choice(repeated, _SAMPLE_ENTITIES, replace=False))
        rows = np.flatnonzero(held & np.isin(codes, repeated))
        group = codes[rows]
        constant = tuple(f for f in features if _constant_within(data[f].to_numpy()[rows], group))
        if constant:
            out.append(EntityHint(str(col), n, k, constant))
    return out


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
