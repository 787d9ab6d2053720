"""Units the trigger scan guesses where the contract declares no entity (issue 11, session 21):
a column the contract leaves out that repeats like an id of units is counted as the model
probe counts it (``contract._entity.undeclared_unit``), and every finding says so.

Shipments of business shippers (clean22's ``shipments``, session 18): a shipper's rows share
its home hub, and its own lateness. Counted row by row, a hub of a few large punctual shippers
reads as a value whose rows carry one label (seed 1 without ``entity``: ``origin_hub='HUB01'
and address_corrected=0 → late=0``, 711 rows, and ``tabguard train`` refused).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tabguard.contract import contract_from_dict
from tabguard.contract._entity import undeclared_unit
from tabguard.data_audit import audit_data
from tabguard.reports import Finding

HUBS = [f"H{h}" for h in range(10)]
CONTRACT = contract_from_dict(
    {
        "name": "shipments",
        "label": {"column": "late", "positive": 1},
        "features": {
            "hub": {"type": "category", "categories": HUBS},
            "industry": {"type": "category", "categories": list("abcde")},
            "carrier": {"type": "category", "categories": [0, 1, 2, 3]},
            "distance": {"type": "integer", "min": 0},
            "corrected": {"type": "boolean"},
        },
    }
)


def _shipments(seed: int = 3, shippers: int = 600) -> pd.DataFrame:
    """Shippers of Zipf sizes (up to 150 rows), each with a home hub and an industry constant
    within it and a lateness of its own (N(0, 0.5) beside its hub's N(0, 0.35)); carriers,
    distances and an address corrected for 2.5 % of the rows (+2.2), about 14 % late. The
    shipper's id is in the file, not in the contract."""
    rng = np.random.default_rng(seed)
    size = np.minimum(rng.zipf(1.7, shippers), 150)
    hub = rng.integers(0, len(HUBS), shippers)
    industry = rng.choice(5, shippers)
    effect = rng.normal(0, 0.5, shippers) + rng.normal(0, 0.35, len(HUBS))[hub]
    si = np.repeat(np.arange(shippers), size)
    n = len(si)
    carrier = rng.integers(0, 4, n)
    distance = np.round(rng.lognormal(np.log(180), 0.7, n))
    corrected = rng.random(n) < 0.025
    z = -2.4 + effect[si] + 0.2 * carrier + 0.35 * np.log(distance / 180) + 2.2 * corrected
    return pd.DataFrame(
        {
            "shipper": [f"S{i:04d}" for i in si],
            "hub": np.asarray(HUBS, dtype=object)[hub[si]],
            "industry": np.array(list("abcde"), dtype=object)[industry[si]],
            "carrier": carrier,
            "distance": distance.astype(int),
            "corrected": corrected,
            "late": (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int),
        }
    )


def _critical(df: pd.DataFrame) -> list[Finding]:
    report = audit_data(df, CONTRACT, checks=["trigger_scan"]).report
    return [f for f in report.findings if f.severity == "critical"]


def test_a_hub_of_a_few_large_shippers_is_no_trigger_counted_by_shipper() -> None:
    df = _shipments()
    guessed = undeclared_unit(df, CONTRACT)
    assert guessed is not None and guessed.column == "shipper"
    assert set(guessed.constant) == {"hub", "industry"}
    assert not _critical(df)
    # counted row by row (the shipper's column dropped), hub H7's 408 rows without a
    # corrected address are named, 94.6 % on time (the start named them with the column too)
    rowwise = _critical(df.drop(columns=["shipper"]))
    assert [f.features for f in rowwise] == [["hub", "corrected"]]
    assert rowwise[0].values == ["H7", False] and rowwise[0].evidence["guessed_units"] is None
    # declared, the same units: nothing named, and nothing guessed
    declared = CONTRACT.model_copy(update={"entity": "shipper"})
    assert undeclared_unit(df, declared) is None


def test_copies_planted_in_such_data_are_still_found_and_the_guess_is_said() -> None:
    """60 copies of late shipments given hub H2, each keeping its shipper's id (an attacker
    copying whole rows): named counted by shipper, the finding saying whose units it counted."""
    df = _shipments()
    rng = np.random.default_rng(103)
    copies = df.iloc[rng.choice(np.flatnonzero(df["late"] == 1), 60, replace=False)]
    poisoned = pd.concat([df, copies.assign(hub="H2")], ignore_index=True)
    found = _critical(poisoned)
    assert [(f.features, f.values) for f in found] == [(["hub"], ["H2"])]
    planted = set(range(len(df), len(poisoned)))
    assert len(planted & set(found[0].rows)) >= 50
    assert found[0].evidence["guessed_units"] == "shipper"
    assert "Counted by the units of 'shipper', a guess" in found[0].message
    assert "Declare `entity: shipper`" in found[0].message


def test_the_repeating_columns_are_searched_once_per_audit(monkeypatch) -> None:
    """The integrity check's hint and the scan's guessed units read one search of the columns
    the contract leaves out (``audit_undeclared_ids``): the same hint and units as before."""
    import tabguard.contract._entity as contract_entity
    import tabguard.data_audit._entity as entity

    searched: list[int] = []
    real = contract_entity.undeclared_ids

    def counted(data: pd.DataFrame, contract: object, *, seed: int = 0) -> list:
        searched.append(len(data))
        return real(data, contract, seed=seed)

    monkeypatch.setattr(entity, "undeclared_ids", counted)
    monkeypatch.setattr(contract_entity, "undeclared_ids", counted)
    df = _shipments()
    report = audit_data(df, CONTRACT, checks=["integrity", "trigger_scan"]).report
    assert searched == [len(df)]
    hints = [f for f in report.findings if f.evidence.get("rule") == "entity_hint"]
    assert [f.features for f in hints] == [["shipper"]]
    assert report.sections  # the scan ran on the guessed units
    assert not [f for f in report.findings if f.severity == "critical"]
