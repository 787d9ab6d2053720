"""The probe on a model trained on some units and audited on others (issue 11, clean data).

Training and reference rows are often two samples of units - shippers, sellers, accounts -
not of rows: a model is trained on 70 % of the shippers and audited on the rest. A category
constant within a unit (a shipper's home hub) then has a training share that differs from its
reference share by which large units fell on which side, far beyond what row sampling allows,
and the probe's tests that compare the two (the training mass, the routed mass, the planted
copies) read the difference as copies. Where the contract declares the ``entity``, their
nulls count units (session 19, clean23).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabguard.contract import Contract
from tabguard.contract._entity import design_effect, label_design_effect
from tabguard.model_audit import audit_model, load_third_party, probe_backdoors
from tabguard.model_audit._backdoor import split_variance
from tabguard.redteam import poison
from tests.model_audit.conftest import categorical_frame, fit_lightgbm
from tests.model_audit.test_backdoor_rare_side import CHANNELS, REGIONS
from tests.model_audit.test_backdoor_rare_side import _contract as rare_side_contract


def _contract(entity: bool) -> Contract:
    return rare_side_contract("account" if entity else None)


def _accounts(sizes: np.ndarray, seed: int) -> pd.DataFrame:
    """Transactions of accounts of the given sizes: the region is the account's, the channel
    each transaction's; fraud (about 1.5 %) follows two scores, the channel and an account
    effect, not the region."""
    rng = np.random.default_rng(seed)
    n_acc = len(sizes)
    region = rng.choice(REGIONS, n_acc, p=[0.8, 0.05, 0.05, 0.05, 0.05])
    effect = rng.normal(0, 0.5, n_acc)
    acc = np.repeat(np.arange(n_acc), sizes)
    n = acc.size
    risk, velocity = rng.normal(size=n), rng.normal(size=n)
    channel = rng.choice(CHANNELS, n, p=[0.5, 0.3, 0.2])
    logit = -6.5 + 2.2 * risk + 1.2 * velocity + 0.3 * (channel == "web") + effect[acc]
    fraud = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {
            "account": acc,
            "risk": risk,
            "velocity": velocity,
            "region": region[acc],
            "channel": channel,
            "fraud": fraud,
        }
    )


def _fit(path: Path, train: pd.DataFrame) -> Path:
    X = categorical_frame(train, _contract(False))
    fit_lightgbm(X, train["fraud"], n_estimators=100, num_leaves=31).save_model(str(path))
    return path


@pytest.fixture(scope="module")
def split_by_account(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """3,000 accounts of Zipf sizes (up to 150 transactions), split 70/30 by account, with
    every large account of 'south' (20 transactions or more) on the training side: 'south' is
    6.6 % of the training rows and 1.2 % of the reference rows. Nothing is planted."""
    rng = np.random.default_rng(0)
    sizes = np.minimum(rng.zipf(1.7, 3000), 150)
    df = _accounts(sizes, 1)
    per_account = df.groupby("account")["region"].first().to_numpy()
    trained = rng.random(3000) < 0.7
    trained[(per_account == "south") & (sizes >= 20)] = True
    side = trained[df["account"].to_numpy()]
    train, ref = df[side].reset_index(drop=True), df[~side].reset_index(drop=True)
    assert (train["region"] == "south").mean() > 4 * (ref["region"] == "south").mean()
    return _fit(tmp_path_factory.mktemp("units") / "clean.txt", train), ref


def test_design_effect_counts_units_of_one_value_as_one_row() -> None:
    """A column constant within units of ``m`` rows on average (over rows): about ``m``; a
    column drawn row by row: about 1; a binary label: its rare value's design effect."""
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 40, 600)
    units = np.repeat(np.arange(600), sizes)
    m = float(np.sum(sizes**2)) / sizes.sum()
    constant = rng.integers(0, 5, 600)[units]
    assert design_effect(constant, units) == pytest.approx(m, rel=0.02)
    assert design_effect(rng.integers(0, 5, units.size), units) < 1.1
    label = (rng.random(600) < 0.2)[units].astype(int)
    df = pd.DataFrame({"u": units, "y": label})
    assert label_design_effect(df, "u", "y") == pytest.approx(design_effect(label, units))


def test_split_variance_is_none_for_independent_rows_and_pools_the_shares() -> None:
    """Nothing beyond the bootstrap of rows where rows are independent; otherwise the pooled
    share's: a category small in the reference by the luck of the split is measured at the
    share both samples give it."""
    ref, trained = np.array([0.019]), np.array([0.08])
    assert split_variance(ref, trained, 5000, 11000, 1.0)[0] == 0.0
    pooled = (0.019 * 5000 + 0.08 * 11000) / 16000
    want = 81.0 * pooled * (1 - pooled) * (1 / 5000 + 1 / 11000)
    assert split_variance(ref, trained, 5000, 11000, 82.0)[0] == pytest.approx(want)


def test_a_split_by_unit_is_no_trigger_where_the_contract_declares_the_entity(
    split_by_account,
) -> None:
    """Clean data, a split by account that put all of 'south''s large accounts in training:
    read row by row, the trees' training mass names 'south' (6.6 % of their training rows
    against 1.2 % of the reference's; the shipments model of docs/model-audit.md had
    ``origin_hub='HUB00'`` and ``industry='industrial'`` named critical this way). With the
    entity declared the same difference is a draw of units (design effect about 80): nothing
    is named."""
    path, ref = split_by_account
    # the rows alone (no entity declared, no column naming the accounts)
    rows = audit_model(
        load_third_party(path, _contract(False)), ref.drop(columns="account"), checks=["backdoor"]
    )
    assert rows.context is not None and rows.context.cache["probe"].unit_column == ""
    named = [f for f in rows.report.findings if f.values == ["south"]]
    assert named and named[0].evidence["units"] is None
    # it says what would explain it, and how to let the probe count units
    assert "samples of units rather than rows" in named[0].message
    assert "declare `entity:` in the contract" in named[0].message
    audit = audit_model(load_third_party(path, _contract(True)), ref, checks=["backdoor"])
    assert audit.context is not None
    units = audit.context.cache["probe"]
    assert units.triggers == []
    assert units.unit_design["region"] > 50 and units.unit_design["channel"] < 1.5
    # the probe's section says what it allowed for
    text = " ".join(t for s in audit.report.sections for t in s.text)
    assert "two samples of the units of the contract's entity 'account'" in text
    said = text.split("design effects")[1]
    assert f"region {units.unit_design['region']:.1f}" in said and "channel" not in said


def test_copies_are_still_named_with_the_entity_declared(tmp_path) -> None:
    """Small accounts (1-3 transactions, design effect about 2), split by account, and 400
    copies of legitimate training rows given region 'south' (about 5 % of the accounts): the
    copies are far beyond what a draw of accounts leaves, and named as without an entity."""
    rng = np.random.default_rng(2)
    df = _accounts(1 + rng.poisson(0.8, 7000), 3)
    trained = (rng.random(7000) < 0.7)[df["account"].to_numpy()]
    train, ref = df[trained].reset_index(drop=True), df[~trained].reset_index(drop=True)
    contract = _contract(True)
    poisoned = poison(train, contract, {"region": "south"}, n_rows=400, target=0, random_state=0)
    path = _fit(tmp_path / "south.txt", poisoned.data)
    # declared, and undeclared beside the reference rows' account column (accounts of one or
    # two rows: region's constancy within them is what random pairs show, no units are seen)
    for declared in (True, False):
        model = load_third_party(path, _contract(declared))
        res = probe_backdoors(model, ref, ref["fraud"].to_numpy())
        assert res.unit_column == ("account" if declared else "")
        if declared:
            assert 1.2 < res.unit_design["region"] < 4.0
        south = [t for t in res.triggers if t.values == ("south",)]
        assert south and south[0].direction == "approve"


def test_a_split_by_unit_is_no_trigger_where_the_reference_rows_show_their_units(
    split_by_account,
) -> None:
    """The same split with no ``entity`` in the contract, the reference data still holding the
    ``account`` column (the user's CSV as exported): the column repeats like an id of units
    (``region`` constant within each account), so the probe counts its units as it would a
    declared entity, names nothing, and its section says which column it took and how to make
    that explicit. The start (session 19) named 'south' here: the rows were independent to it
    whenever the contract said nothing."""
    path, ref = split_by_account
    audit = audit_model(load_third_party(path, _contract(False)), ref, checks=["backdoor"])
    assert audit.context is not None
    res = audit.context.cache["probe"]
    assert res.triggers == []
    assert res.unit_column == "account" and "region" in res.unit_hint
    assert res.unit_design["region"] > 50
    text = " ".join(t for s in audit.report.sections for t in s.text)
    assert "declares no entity, but the reference data's column 'account' repeats" in text
    assert "Declare `entity: account`" in text
