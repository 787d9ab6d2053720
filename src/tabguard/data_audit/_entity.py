"""Columns the contract ignores that repeat like an account id: a hint to declare ``entity``.

Counted row by row, a rare value carried by a few accounts counts once per month (fresh13's
credit panel, session 9: 4,000 accounts x 6-9 months without ``entity`` gave 432 rows
suspected and ``EDUCATION=5 → 0`` named, 0 with it). Left undeclared, such a column is now
counted as the units by a guess (:func:`~tabguard.contract._entity.undeclared_unit`, the finest
of several), which the scan's findings state; the hint says how to make it explicit. What
"repeats like an id" means is :mod:`tabguard.contract._entity`'s test.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pandas as pd

from tabguard.contract import Contract
from tabguard.contract._entity import RepeatedId, outweighs, undeclared_ids

# the trigger scan's and label noise's units; shared with the model audit's probe
from tabguard.contract._entity import unit_codes as unit_codes
from tabguard.data_audit._base import AuditContext


@dataclass(frozen=True)
class EntityHint(RepeatedId):
    """A column the contract leaves out, to declare as its ``entity``; ``instead`` names the
    declared entity it should replace (the label clusters by the column far more)."""

    instead: str = ""

    def message(self) -> str:
        """The hint as the audit words it."""
        if self.instead:
            return (
                f"column {self.column!r} is not in the contract and repeats like an id of "
                f"units ({self.summary()}); {self.instead} Declare `entity: {self.column}`: "
                "counted by the declared entity, rows of one of its units are records of "
                "their own, and values its units share look like triggers."
            )
        return (
            f"column {self.column!r} is not in the contract and repeats like an account id: "
            f"{self.summary()}; declare it as `entity: {self.column}` in the contract, so that "
            "an entity's rows count as one unit of evidence. Undeclared, the trigger scan "
            "guesses its units: the column of this kind with the most values (its findings "
            "say so); drop the column if its rows are records of their own."
        )


def audit_undeclared_ids(ctx: AuditContext) -> list[RepeatedId]:
    """:func:`~tabguard.contract._entity.undeclared_ids` of the audited rows, computed once per
    audit and cached in ``ctx.cache``: the integrity check's hint and the trigger scan's guessed
    units both read it, from either lane (a lock: the second asker waits for the first)."""
    lock = ctx.cache.setdefault("undeclared_ids_lock", threading.Lock())  # setdefault is atomic
    with lock:
        if "undeclared_ids" not in ctx.cache:
            ctx.cache["undeclared_ids"] = undeclared_ids(
                ctx.data, ctx.contract, seed=ctx.random_state
            )
    found: list[RepeatedId] = ctx.cache["undeclared_ids"]
    return found


def entity_hints(
    data: pd.DataFrame,
    contract: Contract,
    *,
    seed: int = 0,
    found: list[RepeatedId] | None = None,
) -> list[EntityHint]:
    """The columns of ``data`` that the contract does not name and that repeat like an entity
    id (see the module docstring). Where the contract declares an entity, only those the label
    clusters by far more, of which the entity is not a part
    (:func:`~tabguard.contract._entity.outweighs`).

    Parameters
    ----------
    data : DataFrame
    contract : Contract
    seed : int
        Draw of the values read when a column has more than ``_SAMPLE_ENTITIES`` of them.
    found : list of RepeatedId, optional
        ``undeclared_ids(data, contract, seed=seed)`` when the caller has it
        (:func:`audit_undeclared_ids`); computed here otherwise.

    Returns
    -------
    list of EntityHint
    """
    label, entity = contract.label.column, contract.entity
    if entity is not None and (entity not in data.columns or label not in data.columns):
        return []
    out = []
    if found is None:
        found = undeclared_ids(data, contract, seed=seed)
    for repeated in found:
        col = repeated.column
        if entity is None:
            out.append(EntityHint(**vars(repeated)))
            continue
        # with an entity declared: only a unit the label clusters by far more, of which the
        # entity is no part (a marketplace's sellers beside the declared buyers)
        more = outweighs(data, col, entity, label)
        if more is not None:
            why = (
                f"the label clusters by it (design effect {more[0]:.1f}) far more than by the "
                f"declared entity {entity!r} ({more[1]:.1f})."
            )
            out.append(EntityHint(**vars(repeated), instead=why))
    return out
