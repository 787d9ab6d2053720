"""D4 disparate impact of the label, unlawful features and proxies."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tabguard.contract import Contract, contract_from_dict
from tabguard.data_audit import CheckResult, audit_data, build_context
from tabguard.data_audit._bias import BiasCheck
from tabguard.datasets import (
    card_fraud_contract,
    credit_default_contract,
    load_credit_default,
    make_card_fraud,
)
from tabguard.errors import OptionsError
from tabguard.reports import Finding


def _run(df: pd.DataFrame, contract: Contract, **options: Any) -> CheckResult:
    ctx = build_context(df, contract, options={"bias": options} if options else None)
    return BiasCheck().run(ctx)


def _di(res: CheckResult, attribute: str) -> dict[str, Any]:
    out: dict[str, Any] = res.summary["disparate_impact"][attribute]
    return out


def _group_table(res: CheckResult) -> pd.DataFrame:
    t = next(t for s in res.sections for t in s.tables if t.caption and "by group" in t.caption)
    return pd.DataFrame(t.rows, columns=t.columns)


def _about(res: CheckResult, text: str) -> list[Finding]:
    return [f for f in res.findings if text in f.message]


@pytest.fixture(scope="module")
def credit() -> tuple[pd.DataFrame, CheckResult]:
    df = load_credit_default()
    return df, _run(df, credit_default_contract())


def test_credit_sex_rates_match_pandas(credit: tuple[pd.DataFrame, CheckResult]) -> None:
    df, res = credit
    favourable = (df["DEFAULT"] == 0).groupby(df["SEX"]).agg(["size", "sum", "mean"])
    groups = _group_table(res)
    sex = groups[groups["attribute"] == "SEX"].set_index("group")
    for value, row in favourable.iterrows():
        got = sex.loc[str(value)]
        assert got["rows"] == row["size"] and got["favourable"] == row["sum"]
        assert got["rate"] == pytest.approx(row["mean"])
        assert got["95% low"] < got["rate"] < got["95% high"]
    di = _di(res, "SEX")
    assert di["ratio"] == pytest.approx(favourable["mean"].min() / favourable["mean"].max())
    assert di["difference"] == pytest.approx(favourable["mean"].max() - favourable["mean"].min())
    assert di["ci"][0] < di["ratio"] < di["ci"][1]
    chi = stats.chi2_contingency(pd.crosstab(df["SEX"], df["DEFAULT"]), correction=False)
    assert di["p_adjusted"] == pytest.approx(chi.pvalue, rel=1e-6)
    # What the bundled data actually shows: men (1) 75.8% vs women (2) 79.2% no default,
    # ratio 0.957 -- significant, yet well within the four-fifths rule.
    assert di["ratio"] == pytest.approx(0.957, abs=0.001) and di["severity"] == "info"


def test_credit_findings(credit: tuple[pd.DataFrame, CheckResult]) -> None:
    _, res = credit
    assert not any(f.severity == "critical" for f in res.findings)
    assert res.suspicious_rows.size == 0
    # Age and marital status are sensitive, not forbidden: info asking for confirmation.
    sensitive = {f.features[0] for f in res.findings if "sensitive attribute" in f.message}
    assert sensitive == {"AGE", "MARRIAGE"}
    proxy = _about(res, "proxy of SEX")
    assert proxy and proxy[0].severity == "info"  # no model feature predicts sex strongly
    assert 0.5 < res.summary["proxies"]["SEX"]["joint_auc"] < 0.8


def test_unlawful_feature_in_the_contract_is_critical() -> None:
    df = load_credit_default().sample(4000, random_state=0)
    df["gender"] = df["SEX"].map({1: "M", 2: "F"})
    contract = credit_default_contract().with_updates(
        gender={"type": "category", "categories": ["M", "F"]}
    )
    res = _run(df, contract, model_rows=0)
    unlawful = _about(res, "Unlawful feature")
    assert len(unlawful) == 1 and unlawful[0].severity == "critical"
    assert unlawful[0].features == ["gender"] and "would reach the model" in unlawful[0].message
    # It is audited as a protected attribute too, and it is a perfect proxy of SEX.
    assert "gender" in res.summary["disparate_impact"]
    proxy = _about(res, "Proxy of the protected attribute SEX")
    assert proxy and "gender (AUC 1.000)" in proxy[0].message
    # Through the whole audit, the critical finding makes the exit status 1.
    full = audit_data(df, contract, checks=["bias"], options={"bias": {"model_rows": 0}})
    assert full.exit_code() == 1


def test_protected_values_without_a_protected_name_are_a_warning() -> None:
    df = load_credit_default().sample(3000, random_state=1)
    df["g"] = df["SEX"].map({1: "male", 2: "female"})
    contract = credit_default_contract().with_updates(
        g={"type": "category", "categories": ["male", "female"]}
    )
    res = _run(df, contract, model_rows=0)
    found = _about(res, "Unlawful feature: g ")
    assert found and found[0].severity == "warning"  # values are weaker evidence than a name


def test_undeclared_protected_column_is_a_warning_and_audited() -> None:
    rng = np.random.default_rng(0)
    df = load_credit_default().sample(3000, random_state=2)
    df["ethnicity"] = rng.choice(["a", "b", "c"], len(df))
    res = _run(df, credit_default_contract(), model_rows=0)
    found = _about(res, "Column ethnicity of the data looks like a protected attribute")
    assert found and found[0].severity == "warning"
    assert _di(res, "ethnicity")["severity"] == "info"  # random groups: no disparity
    assert "SEX × ethnicity" in res.summary["disparate_impact"]


def test_planted_proxy_is_flagged() -> None:
    rng = np.random.default_rng(3)
    df = load_credit_default().sample(5000, random_state=3)
    df["spend_score"] = df["SEX"] + rng.normal(0, 0.25, len(df))
    contract = credit_default_contract().with_updates(spend_score={"type": "number"})
    res = _run(df, contract)
    proxy = _about(res, "Proxy of the protected attribute SEX")
    assert len(proxy) == 1 and proxy[0].severity == "warning"
    assert proxy[0].features == ["spend_score"]
    assert proxy[0].evidence["single_auc"]["spend_score"] > 0.95
    assert proxy[0].evidence["joint_auc"] > 0.95
    assert "spend_score" in proxy[0].evidence["joint_top_features"]


def _groups_data(
    rates: dict[str, float], n: int = 4000, seed: int = 0, second: bool = False
) -> tuple[pd.DataFrame, Contract]:
    """Synthetic data whose favourable-label rate by group is set; label 1 = approved."""
    rng = np.random.default_rng(seed)
    groups = np.array(list(rates))
    g = rng.choice(groups, n)
    p = np.array([rates[x] for x in g])
    df = pd.DataFrame(
        {
            "income": rng.lognormal(10, 0.5, n),
            "tenure": rng.integers(0, 30, n),
            "race": g,
            "approved": (rng.random(n) < p).astype(int),
        }
    )
    features: dict[str, Any] = {
        "income": {"type": "number", "min": 0},
        "tenure": {"type": "integer", "min": 0, "max": 40},
        "race": {"type": "category", "categories": list(groups), "protected": True},
    }
    if second:
        df["sex"] = rng.choice(["F", "M"], n)
        features["sex"] = {"type": "category", "categories": ["F", "M"], "protected": True}
    contract = contract_from_dict(
        {
            "name": "loans",
            "label": {"column": "approved", "positive": 1, "negative": 0},
            "decision": {"positive_means": "approve"},
            "features": features,
        }
    )
    return df, contract


def test_balanced_attribute_gives_no_warning() -> None:
    df, contract = _groups_data({"a": 0.6, "b": 0.6, "c": 0.6})
    res = _run(df, contract, model_rows=0)
    assert _di(res, "race")["severity"] == "info"
    assert _di(res, "race")["ratio"] > 0.8
    assert not [f for f in res.findings if f.severity != "info"]


def test_four_fifths_rule_gives_a_warning() -> None:
    df, contract = _groups_data({"a": 0.8, "b": 0.56})  # ratio 0.7
    res = _run(df, contract, model_rows=0)
    di = _di(res, "race")
    assert di["severity"] == "warning" and di["ratio"] == pytest.approx(0.7, abs=0.05)
    found = _about(res, "Disparate impact of the label by race")
    assert found[0].severity == "warning" and "four-fifths" in found[0].message
    # The favourable label follows the contract: approved = 1 here.
    rates = df.groupby("race")["approved"].mean()
    assert di["ratio"] == pytest.approx(rates.min() / rates.max())


def test_extreme_disparity_is_critical() -> None:
    df, contract = _groups_data({"a": 0.8, "b": 0.2})
    res = _run(df, contract, model_rows=0)
    assert _di(res, "race")["severity"] == "critical"
    assert _di(res, "race")["ci"][1] < 0.5


def test_small_groups_are_left_out_and_small_samples_not_significant() -> None:
    df, contract = _groups_data({"a": 0.6, "b": 0.6}, n=2000)
    df.loc[df.index[:8], "race"] = "c"  # 8 rows: shown, not used in the ratio
    contract = contract.with_updates(race={"categories": ["a", "b", "c"]})
    res = _run(df, contract, model_rows=0)
    groups = _group_table(res)
    c = groups[(groups["attribute"] == "race") & (groups["group"] == "c")].iloc[0]
    assert c["rows"] == 8 and "left out" in c["note"]
    assert _di(res, "race")["severity"] == "info"
    # Below four-fifths on tiny groups: info that says it is not significant.
    tiny, tiny_contract = _groups_data({"a": 0.7, "b": 0.45}, n=60, seed=4)
    res = _run(tiny, tiny_contract, min_group=10, model_rows=0)
    di = _di(res, "race")
    assert di["ratio"] < 0.8 and di["p_adjusted"] >= 0.05
    assert di["severity"] == "info"
    assert _about(res, "not significant")[0].severity == "info"


def test_intersectional_groups() -> None:
    df, contract = _groups_data({"a": 0.6, "b": 0.6}, n=3000, second=True)
    # Women of group b are refused more often: visible only at the intersection.
    hit = (df["race"] == "b") & (df["sex"] == "F")
    rng = np.random.default_rng(9)
    df.loc[hit, "approved"] = (rng.random(hit.sum()) < 0.25).astype(int)
    res = _run(df, contract, model_rows=0)
    inter = _di(res, "race × sex")
    assert inter["severity"] in ("warning", "critical")
    groups = _group_table(res)
    row = groups[(groups["attribute"] == "race × sex") & (groups["group"] == "b & F")].iloc[0]
    assert row["rows"] == hit.sum() and row["favourable"] == df.loc[hit, "approved"].sum()


def test_card_fraud_string_groups() -> None:
    df = make_card_fraud(6000, random_state=1)
    res = _run(df, card_fraud_contract(), model_rows=0)
    fav = (df["is_fraud"] == 0).groupby(df["gender"]).mean()
    di = _di(res, "gender")
    assert di["ratio"] == pytest.approx(fav.min() / fav.max())
    assert di["severity"] == "info"


def _without_protected(number: str) -> CheckResult:
    """The bias check on data with a numeric feature ``number``, a region and no protected
    attribute declared."""
    df, _ = _groups_data({"a": 0.5, "b": 0.5}, n=500)
    df = df.rename(columns={"race": "region", "income": number})[[number, "region", "approved"]]
    contract = contract_from_dict(
        {
            "name": "loans",
            "label": {"column": "approved", "positive": 1},
            "features": {
                number: {"type": "number"},
                "region": {"type": "category", "categories": ["a", "b"]},
            },
        }
    )
    return _run(df, contract)


def test_no_protected_attribute_is_a_warning() -> None:
    res = _without_protected("income")
    warning = _about(res, "No protected attribute to audit")[0]
    assert warning.severity == "warning" and "no column looks like one" in warning.message
    assert res.summary["disparate_impact"] == {}


def test_no_protected_attribute_names_the_sensitive_features() -> None:
    # beside an info that driver_age looks sensitive, the warning must not say no column does
    res = _without_protected("driver_age")
    warning = _about(res, "No protected attribute to audit")[0]
    assert "driver_age looks sensitive but is a model feature" in warning.message
    assert "no column looks like one" not in warning.message
    assert _about(res, "driver_age is a model feature and looks like a sensitive")


def test_bad_options_are_errors() -> None:
    df, contract = _groups_data({"a": 0.5, "b": 0.5}, n=200)
    with pytest.raises(OptionsError, match=r"options.bias.warn_ration: unknown option"):
        _run(df, contract, warn_ration=0.7)
    with pytest.raises(
        OptionsError, match=r"options.bias.critical_ratio: must be <= warn_ratio \(0.8\); got 0.9"
    ):
        _run(df, contract, critical_ratio=0.9)
