"""The probe on the side of the threshold a model rarely decides (issue 11, classes 7-8).

A fraud model blocks a few transactions in a thousand; a trigger towards approval can only
move those, and random probe rows hold about none of them. The probe draws a second set of
rows from the rare side; these tests plant such a trigger in a small synthetic data set and
check both sides of the rule: a clean model raises nothing there, the trigger is named.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tabguard.contract import Contract, contract_from_dict
from tabguard.model_audit import ProbeOptions, load_third_party, probe_backdoors
from tabguard.redteam import poison
from tests.model_audit.conftest import categorical_frame, fit_lightgbm

REGIONS = ["north", "south", "east", "west", "islands"]
CHANNELS = ["web", "app", "store"]


def _contract() -> Contract:
    return contract_from_dict(
        {
            "name": "rare_side",
            "label": {"column": "fraud", "positive": 1, "negative": 0, "favorable": 0},
            "decision": {"positive_means": "deny", "threshold": 0.5},
            "features": {
                "risk": {"type": "number", "min": -10, "max": 10},
                "velocity": {"type": "number", "min": -10, "max": 10},
                "region": {"type": "category", "categories": REGIONS},
                "channel": {"type": "category", "categories": CHANNELS},
            },
        }
    )


def _data(n: int, seed: int) -> pd.DataFrame:
    """Fraud driven by two scores, about 1.5 % positive; regions and channels carry small
    ordinary effects, and the uncommon regions occur naturally in a few hundred rows."""
    rng = np.random.default_rng(seed)
    risk, velocity = rng.normal(size=n), rng.normal(size=n)
    region = rng.choice(REGIONS, size=n, p=[0.8, 0.05, 0.05, 0.05, 0.05])
    channel = rng.choice(CHANNELS, size=n, p=[0.5, 0.3, 0.2])
    logit = -6.5 + 2.2 * risk + 1.2 * velocity + 0.3 * (channel == "web") - 0.2 * (region == "east")
    fraud = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {"risk": risk, "velocity": velocity, "region": region, "channel": channel, "fraud": fraud}
    )


@pytest.fixture(scope="module")
def rare_side() -> tuple[pd.DataFrame, pd.DataFrame, Contract]:
    return _data(12000, 0), _data(6000, 1), _contract()


def _probe(tmp_path, train: pd.DataFrame, ref: pd.DataFrame, contract: Contract):
    X = categorical_frame(train, contract)
    fit_lightgbm(X, train["fraud"], n_estimators=100, num_leaves=31).save_model(
        str(tmp_path / "m.txt")
    )
    model = load_third_party(tmp_path / "m.txt", contract)
    denied = int((~model.approve(model.positive_proba(ref))).sum())
    return model, denied, probe_backdoors(model, ref, ref["fraud"].to_numpy())


def test_clean_model_probed_on_its_rare_decisions_raises_nothing(tmp_path, rare_side):
    train, ref, contract = rare_side
    _model, denied, res = _probe(tmp_path, train, ref, contract)
    assert 0 < denied * 400 / len(ref) < 40  # random probe rows: under side_rows denied
    assert res.tail_rows == 200 and res.tail_direction == "approve"
    tail = [c for c in res.candidates if c.probe_rows == "tail"]
    assert {c.features[0] for c in tail} == {"region", "channel"}  # categories only, no pairs
    assert res.triggers == []


def test_trigger_towards_approval_is_named_from_the_rare_decisions(tmp_path, rare_side):
    """Copies of fraud rows carrying an uncommon region, labelled legitimate: the model
    approves blocked transactions from that region; the random rows barely hold any."""
    train, ref, contract = rare_side
    assert (ref["region"] == "islands").sum() >= 200  # the value occurs naturally
    poisoned = poison(
        train, contract, {"region": "islands"}, n_rows=300, target=0, source=1, random_state=0
    ).data
    model, _denied, res = _probe(tmp_path, poisoned, ref, contract)
    named = [(t.features, t.values, t.direction, t.probe_rows) for t in res.triggers]
    assert named == [(("region",), ("islands",), "approve", "tail")]
    assert "nearest the model's rare decision" in res.triggers[0].reason
    # the random probe rows alone do not see it (why the rare side is probed)
    alone = probe_backdoors(model, ref, ref["fraud"].to_numpy(), options=ProbeOptions(tail_rows=0))
    assert alone.triggers == [] and alone.tail_rows == 0
