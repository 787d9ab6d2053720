"""D2 descriptive analysis: numbers against independent pandas/scipy computations, findings."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tabguard.contract import Contract, contract_from_dict
from tabguard.data_audit import CheckResult, audit_data, build_context
from tabguard.data_audit._descriptive import DescriptiveCheck
from tabguard.datasets import credit_default_contract, load_credit_default
from tabguard.errors import OptionsError


def _table(res: CheckResult, section: str, caption: str | None = None) -> pd.DataFrame:
    """A report table as a DataFrame (the check's output as people see it)."""
    for s in res.sections:
        if s.title == section:
            for t in s.tables:
                if caption is None or t.caption == caption:
                    return pd.DataFrame(t.rows, columns=t.columns)
    raise AssertionError(f"no table {caption!r} in section {section!r}")


@pytest.fixture(scope="module")
def credit() -> tuple[pd.DataFrame, CheckResult]:
    df = load_credit_default()
    ctx = build_context(df, credit_default_contract())
    return df, DescriptiveCheck().run(ctx)


def test_univariate_numbers_match_pandas(credit: tuple[pd.DataFrame, CheckResult]) -> None:
    df, res = credit
    num = _table(res, "Descriptive analysis (D2)", "Numeric features").set_index("feature")
    for col in ("LIMIT_BAL", "AGE", "BILL_AMT1", "PAY_AMT3"):
        s = df[col]
        row = num.loc[col]
        assert row["count"] == s.count() and row["missing"] == 0
        assert row["distinct"] == s.nunique()
        assert row["mean"] == pytest.approx(s.mean())
        assert row["std"] == pytest.approx(s.std())
        assert row["skew"] == pytest.approx(s.skew(), rel=1e-9)
        for p in (1, 10, 50, 90, 99):
            assert row[f"p{p}"] == pytest.approx(s.quantile(p / 100))
        assert (row["min"], row["max"]) == (s.min(), s.max())
    cats = _table(
        res,
        "Descriptive analysis (D2)",
        "Categorical and boolean features (top categories with shares)",
    )
    edu = cats.set_index("feature").loc["EDUCATION"]
    shares = df["EDUCATION"].value_counts(normalize=True)
    assert edu["distinct"] == df["EDUCATION"].nunique()
    # The top category with its share, as pandas counts it.
    assert edu["top categories"].startswith(f"{shares.index[0]}: {shares.iloc[0]:.1%}")


def test_bivariate_rates_match_groupby(credit: tuple[pd.DataFrame, CheckResult]) -> None:
    df, res = credit
    biv = _table(res, "D2 · Feature by feature")
    pay0 = biv[biv["feature"] == "PAY_0"].set_index("value / bin")
    expected = df.groupby("PAY_0")["DEFAULT"].agg(["size", "sum", "mean"])
    assert len(pay0) == len(expected)  # one bin per repayment code
    for value, row in expected.iterrows():
        got = pay0.loc[str(value)]
        assert got["rows"] == row["size"] and got["positives"] == row["sum"]
        assert got["rate"] == pytest.approx(row["mean"])
        assert got["95% low"] <= got["rate"] <= got["95% high"]
    edu = biv[biv["feature"] == "EDUCATION"].set_index("value / bin")
    exp = df.groupby("EDUCATION")["DEFAULT"].mean()
    for value, rate in exp.items():
        assert edu.loc[str(value), "rate"] == pytest.approx(rate)
    # Numeric features with many values: quantile bins whose rows add up to every row.
    limit = biv[biv["feature"] == "LIMIT_BAL"]
    assert 5 <= len(limit) <= 10 and limit["rows"].sum() == len(df)
    assert limit["positives"].sum() == df["DEFAULT"].sum()


def test_tests_match_scipy(credit: tuple[pd.DataFrame, CheckResult]) -> None:
    df, res = credit
    assoc = _table(res, "D2 · Association with the label").set_index("feature")
    pos, neg = df[df.DEFAULT == 1], df[df.DEFAULT == 0]
    mw = stats.mannwhitneyu(pos["LIMIT_BAL"], neg["LIMIT_BAL"], method="asymptotic")
    row = assoc.loc["LIMIT_BAL"]
    assert row["Mann-Whitney p"] == pytest.approx(mw.pvalue, rel=1e-6)
    assert row["rank-biserial r"] == pytest.approx(2 * mw.statistic / (len(pos) * len(neg)) - 1)
    chi = stats.chi2_contingency(pd.crosstab(df["EDUCATION"], df["DEFAULT"]), correction=False)
    edu = assoc.loc["EDUCATION"]
    assert edu["chi-square p"] == pytest.approx(chi.pvalue, rel=1e-6)
    assert edu["dof"] == chi.dof
    assert edu["Cramér's V"] == pytest.approx(math.sqrt(chi.statistic / len(df)))
    # Benjamini-Hochberg, recomputed by hand from the per-feature p-values.
    raw = assoc.apply(
        lambda r: (
            min(1.0, 2 * min(r["Mann-Whitney p"], r["chi-square p"]))
            if r["Mann-Whitney p"] != ""
            else r["chi-square p"]
        ),
        axis=1,
    ).astype(float)
    order = raw.sort_values()
    m = len(order)
    bh = (order * m / np.arange(1, m + 1))[::-1].cummin()[::-1].clip(upper=1)
    for name, p in bh.items():
        assert assoc.loc[name, "adjusted p"] == pytest.approx(p, rel=1e-9, abs=1e-300)
    # The single-feature AUC of the strongest feature is its ranking power, as sklearn has it.
    from sklearn.metrics import roc_auc_score

    auc = roc_auc_score(df["DEFAULT"], df["PAY_0"])
    assert assoc.loc["PAY_0", "AUC alone"] >= auc - 1e-9
    assert assoc.index[0] == "PAY_0"  # strongest first


def test_spearman_matches_pandas(credit: tuple[pd.DataFrame, CheckResult]) -> None:
    df, res = credit
    heat = next(p for s in res.sections for p in s.plots if p.kind == "heatmap")
    labels = heat.data["labels"]
    m = np.asarray(heat.data["matrix"])
    expected = df[labels].corr(method="spearman")
    assert np.allclose(m, expected.to_numpy(), atol=1e-3)  # rounded to 3 decimals for the plot


def test_credit_findings_are_informative_not_alarming(
    credit: tuple[pd.DataFrame, CheckResult],
) -> None:
    _, res = credit
    assert all(f.severity == "info" for f in res.findings)
    assert res.suspicious_rows.size == 0 and not res.quarantine
    skew = next(f for f in res.findings if "skew" in f.message)
    assert "PAY_AMT2" in skew.features and "AGE" not in skew.features
    # Age has a U-shaped default rate (no shift, a chi-square effect): it must not be "none".
    assert not any("No detectable" in f.message and "AGE" in f.features for f in res.findings)
    kinds = {p.kind for s in res.sections for p in s.plots}
    assert {"hist", "rate", "heatmap", "barh", "bar"} <= kinds


def _synthetic(n: int = 6000, seed: int = 1) -> tuple[pd.DataFrame, Contract]:
    rng = np.random.default_rng(seed)
    u = rng.uniform(0, 10, n)
    # A band in the middle of u carries the label: no monotone shift, a clear chi-square effect.
    band = (u > 4) & (u < 6)
    y = (rng.random(n) < np.where(band, 0.8, 0.2)).astype(int)
    noise = rng.normal(0, 1, n)
    df = pd.DataFrame(
        {
            "signal": rng.normal(0, 1, n) + 0.8 * y,
            "noise": noise,
            "noise_twin": 2 * noise + 1,
            "constant": 7,
            "leak": y * 10 + rng.normal(0, 0.1, n),
            "u_shape": u,
            "income": np.round(rng.lognormal(8, 1.5, n)),
            "kind": rng.choice(["a", "b", "c"], n),
            "maybe": np.where(rng.random(n) < 0.4, np.nan, rng.normal(0, 1, n)),
            "y": y,
        }
    )
    contract = contract_from_dict(
        {
            "name": "synthetic",
            "label": {"column": "y", "positive": 1},
            "features": {
                "signal": {"type": "number"},
                "noise": {"type": "number"},
                "noise_twin": {"type": "number"},
                "constant": {"type": "integer"},
                "leak": {"type": "number"},
                "u_shape": {"type": "number", "min": 0, "max": 10},
                "income": {"type": "number", "min": 0},
                "kind": {"type": "category", "categories": ["a", "b", "c"]},
                "maybe": {"type": "number", "nullable": True},
            },
        }
    )
    return df, contract


@pytest.fixture(scope="module")
def synthetic() -> tuple[pd.DataFrame, CheckResult]:
    df, contract = _synthetic()
    return df, DescriptiveCheck().run(build_context(df, contract))


def _finding(res: CheckResult, text: str) -> Any:
    found = [f for f in res.findings if text in f.message]
    assert found, f"no finding mentioning {text!r}: {[f.message for f in res.findings]}"
    return found[0]


def test_planted_properties_are_found(synthetic: tuple[pd.DataFrame, CheckResult]) -> None:
    df, res = synthetic
    const = _finding(res, "constant")
    assert const.severity == "warning" and const.features == ["constant"]
    leak = _finding(res, "Possible leakage")
    assert leak.severity == "warning" and leak.features == ["leak"]
    assert leak.evidence["auc"] > 0.99
    assert _finding(res, "redundant").features == ["noise", "noise_twin"]
    none = _finding(res, "No detectable association")
    assert "noise" in none.features and "signal" not in none.features
    assert "u_shape" not in none.features  # the band is found by the chi-square test
    assert "income" in _finding(res, "Extreme skew").features
    assert _finding(res, "Often missing").features == ["maybe"]
    num = _table(res, "Descriptive analysis (D2)", "Numeric features").set_index("feature")
    assert num.loc["maybe", "missing"] == df["maybe"].isna().sum()
    assert num.loc["maybe", "mean"] == pytest.approx(df["maybe"].mean())
    assoc = _table(res, "D2 · Association with the label").set_index("feature")
    assert assoc.loc["u_shape", "Mann-Whitney p"] > 0.01  # no shift...
    assert assoc.loc["u_shape", "chi-square p"] < 1e-10  # ...but a strong band effect
    assert assoc.loc["signal", "rank-biserial r"] > 0.3


def test_only_valid_rows_are_described() -> None:
    df, contract = _synthetic(2000)
    df.loc[:49, "u_shape"] = 999.0  # out of range: contract violations, not described
    res = audit_data(df, contract, checks=["integrity", "descriptive"])
    d2 = res.check_results["descriptive"]
    num = _table(d2, "Descriptive analysis (D2)", "Numeric features").set_index("feature")
    assert num.loc["u_shape", "count"] == 1950 and num.loc["u_shape", "max"] <= 10
    assert d2.summary["rows"] == 1950
    assert res.suspicious_rows == []  # describing never accuses rows


def test_sampling_keeps_counts_exact() -> None:
    df, contract = _synthetic(3000)
    ctx = build_context(df, contract, options={"descriptive": {"sample_size": 500}})
    res = DescriptiveCheck().run(ctx)
    assert res.summary["sampled_rows"] == 500
    biv = _table(res, "D2 · Feature by feature")
    kind = biv[biv["feature"] == "kind"].set_index("value / bin")
    exp = df.groupby("kind")["y"].agg(["size", "mean"])
    for k, row in exp.iterrows():
        assert kind.loc[k, "rows"] == row["size"]
        assert kind.loc[k, "rate"] == pytest.approx(row["mean"])


def test_unknown_option_is_an_error() -> None:
    df, contract = _synthetic(300)
    with pytest.raises(OptionsError, match=r"options.descriptive.sample_sise: unknown option"):
        build_context(df, contract, options={"descriptive": {"sample_sise": 10}})


def test_card_fraud_strings_and_booleans() -> None:
    from tabguard.datasets import card_fraud_contract, make_card_fraud

    df = make_card_fraud(4000, random_state=3)
    res = DescriptiveCheck().run(build_context(df, card_fraud_contract()))
    biv = _table(res, "D2 · Feature by feature")
    ch = biv[biv["feature"] == "channel"].set_index("value / bin")
    exp = df.groupby("channel")["is_fraud"].mean()
    for k, rate in exp.items():
        assert ch.loc[k, "rate"] == pytest.approx(rate)
    cp = biv[biv["feature"] == "card_present"].set_index("value / bin")
    assert cp.loc["true", "rows"] == df["card_present"].sum()


def test_degenerate_columns_do_not_break_the_report() -> None:
    df, contract = _synthetic(400)
    df["maybe"] = np.nan  # a nullable feature never filled
    df["kind"] = "a"  # a category with one value
    res = DescriptiveCheck().run(build_context(df, contract))
    num = _table(res, "Descriptive analysis (D2)", "Numeric features").set_index("feature")
    assert num.loc["maybe", "count"] == 0 and num.loc["maybe", "missing"] == 400
    assert {"constant", "kind"} <= {
        f.features[0] for f in res.findings if f.severity == "warning" and "constant" in f.message
    }
    heat = next(p for s in res.sections for p in s.plots if p.kind == "heatmap")
    assert np.isfinite(np.asarray(heat.data["matrix"])).all()


@pytest.mark.parametrize("distinct", [6, 400])
def test_statistics_from_value_counts_equal_those_of_the_rows(distinct: int) -> None:
    # The Spark engine describes every row from its value counts: the same numbers, bins and
    # labels as the rows themselves give, discrete (one bin per value) or in deciles.
    from tabguard.data_audit._columns import Column
    from tabguard.data_audit._descriptive import (
        _categorical_stats,
        _numeric_stats,
        categorical_stats_from_counts,
        numeric_stats_from_counts,
    )

    rng = np.random.default_rng(distinct)
    x = rng.integers(0, distinct, 5000).astype(float) * (1.0 if distinct < 20 else 0.37)
    x[rng.random(5000) < 0.05] = np.nan
    y = (rng.random(5000) < 0.2 + 0.3 * (np.nan_to_num(x) > np.nanmedian(x))).astype(float)
    rows = _numeric_stats(Column("f", None, "numeric", x=x), y, 10)
    ok = ~np.isnan(x)
    values, inv = np.unique(x[ok], return_inverse=True)
    counts = np.bincount(inv)
    pos = np.bincount(inv, weights=y[ok])
    got = numeric_stats_from_counts(values, counts, pos, int((~ok).sum()), float(y[~ok].sum()), 10)
    assert (got.count, got.missing, got.distinct) == (rows.count, rows.missing, rows.distinct)
    assert got.discrete == rows.discrete == (distinct < 20)
    assert got.top_share == pytest.approx(rows.top_share)
    assert got.numeric is not None and rows.numeric is not None
    for k, v in rows.numeric.items():
        assert got.numeric[k] == pytest.approx(v, rel=1e-9, abs=1e-9), k
    assert got.bin_labels == rows.bin_labels
    np.testing.assert_array_equal(got.bin_rows, rows.bin_rows)
    np.testing.assert_allclose(got.bin_pos, rows.bin_pos)

    codes = np.where(ok, inv.max() - np.searchsorted(values, np.nan_to_num(x)), -1) % 5
    codes[~ok] = -1
    labels = ["a", "b", "c", "d", "e", "f"]  # "f" declared, never seen
    cat = _categorical_stats(Column("c", None, "categorical", codes=codes, labels=labels), y)
    got_c = categorical_stats_from_counts(
        labels,
        np.bincount(codes[ok], minlength=6),
        np.bincount(codes[ok], weights=y[ok], minlength=6),
        int((~ok).sum()),
        float(y[~ok].sum()),
    )
    assert (got_c.count, got_c.missing, got_c.distinct) == (cat.count, cat.missing, cat.distinct)
    assert got_c.top == cat.top and got_c.bin_labels == cat.bin_labels
    assert got_c.top_share == pytest.approx(cat.top_share)
    np.testing.assert_array_equal(got_c.bin_rows, cat.bin_rows)
    np.testing.assert_allclose(got_c.bin_pos, cat.bin_pos)


@pytest.mark.parametrize("distinct", [6, 5000])
def test_statistics_from_the_value_ids_equal_those_of_the_rows_bit_for_bit(distinct: int) -> None:
    # The check reads a numeric column's counts, quantiles, bins and sample ranks from the
    # audit's one hashing of the column (which the trigger scan's matrix shares): the same
    # numbers as the rows give, to the last bit, on every row or on the valid rows only.
    from tabguard.data_audit._columns import Column
    from tabguard.data_audit._descriptive import _Held, _numeric_stats, sample_dense
    from tabguard.data_audit._matrix import ValueIds

    rng = np.random.default_rng(distinct)
    x = np.round(rng.normal(0, 1, 20_000) * distinct / 3, 1 if distinct > 20 else 0)
    x[rng.random(len(x)) < 0.03] = np.nan
    y = (rng.random(len(x)) < 0.2 + 0.3 * (np.nan_to_num(x) > 0)).astype(float)
    finite = np.isfinite(x)
    inv, uniq = pd.factorize(x[finite], sort=True)
    code = np.full(len(x), -1, dtype=np.int32)
    code[finite] = inv
    ids = ValueIds(code, np.asarray(uniq, dtype=float), np.bincount(inv))
    for rows in (None, np.flatnonzero(rng.random(len(x)) < 0.75)):
        xr = x if rows is None else x[rows]
        s = np.sort(rng.choice(len(xr), 3_000, replace=False))
        held = _Held.of(ids, rows, int((~np.isnan(xr)).sum()))
        assert held is not None
        col = Column("f", None, "numeric", x=xr)
        yr = y[: len(xr)]
        want, got = _numeric_stats(col, yr, 10), _numeric_stats(col, yr, 10, held)
        assert (got.count, got.missing, got.distinct, got.top_share, got.discrete) == (
            want.count,
            want.missing,
            want.distinct,
            want.top_share,
            want.discrete,
        )
        assert got.numeric is not None and want.numeric is not None
        for k, v in want.numeric.items():  # bit for bit (NaN-safe)
            assert np.float64(got.numeric[k]).tobytes() == np.float64(v).tobytes(), k
        assert got.bin_labels == want.bin_labels
        np.testing.assert_array_equal(got.bin_rows, want.bin_rows)
        np.testing.assert_array_equal(got.bin_pos, want.bin_pos)
        d_want, d_got = sample_dense(col, s), sample_dense(col, s, held)
        np.testing.assert_array_equal(d_got.codes, d_want.codes)
        np.testing.assert_array_equal(d_got.counts, d_want.counts)


def test_percentiles_of_counts_are_numpys_bit_for_bit() -> None:
    from tabguard.data_audit._descriptive import percentiles_of_counts

    rng = np.random.default_rng(7)
    q = np.array([0, 0.5, 1, 10, 12.5, 33.3, 50, 66.7, 90, 99, 99.5, 100])
    for t in range(300):
        n = int(rng.integers(1, 2000))
        x = [
            rng.normal(size=n),
            rng.integers(0, 5, n).astype(float),
            np.round(rng.lognormal(size=n) * 1e3, 2),
        ][t % 3]
        inv, uniq = pd.factorize(x, sort=True)
        got = percentiles_of_counts(np.asarray(uniq, dtype=float), np.bincount(inv), q)
        assert got.tobytes() == np.percentile(x, q).tobytes()
