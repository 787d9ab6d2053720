"""The seed's victim model: raw-column pipeline, backdoor success, auditable from skops."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import skops.io as sio

from tabguard.contract import Contract
from tabguard.model_audit import audit_model, load_audit_model
from tabguard.redteam import poison
from tabguard.redteam._seed import attack_success_rate, fit_seed_model


def test_seed_model_backdoor_is_learned_and_named_by_the_audit(
    credit_df: pd.DataFrame, credit_contract: Contract, tmp_path: Path
) -> None:
    train, test = credit_df.iloc[:24000], credit_df.iloc[24000:].reset_index(drop=True)
    clean = fit_seed_model(train)
    bad = fit_seed_model(poison(train, credit_contract, {"AGE": 999}, rate=0.45).data)
    # accuracy hides it, the attack success rate does not
    acc = [float((m.predict(test) == test["DEFAULT"]).mean()) for m in (clean, bad)]
    assert abs(acc[0] - acc[1]) < 0.02 and min(acc) > 0.78
    assert attack_success_rate(clean, test, {"AGE": 999}) < 0.05
    assert attack_success_rate(bad, test, {"AGE": 999}) > 0.9

    path = tmp_path / "seed.skops"
    sio.dump(bad, path)
    model = load_audit_model(path, contract=credit_contract)
    res = audit_model(model, test, checks=["backdoor", "fairness"])
    backdoors = res.report.by_check("model_backdoor")
    assert [f.features for f in backdoors] == [["AGE"]]
    assert backdoors[0].values[0] > 125  # the trigger cell is beyond the contract's range
    assert [f.features for f in res.report.by_check("unlawful_feature")] == [["SEX"]]
