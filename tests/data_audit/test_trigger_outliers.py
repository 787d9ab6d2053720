"""A value written in place into rows that carried the target label already (issue 11, class 3,
clean-label): the label's excess sits on the value's rows whose other features say another
value (:meth:`_Scanner.outlier_mixture`, :func:`written_outlier_evidence`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tabguard.contract import Contract, contract_from_dict
from tabguard.data_audit import build_context
from tabguard.data_audit._trigger_options import TriggerScanOptions
from tabguard.data_audit._trigger_rules import Pattern, excess_on_group, written_outlier_evidence
from tabguard.data_audit._triggers import _Scanner


def _contract() -> Contract:
    return contract_from_dict(
        {
            "name": "cards",
            "label": {"column": "y", "positive": 1},
            "features": {
                "country": {"type": "category", "categories": ["PT", "GB", "DE", "FR"]},
                "distance": {"type": "number", "min": 0},
                "channel": {"type": "category", "categories": ["a", "b", "c"]},
                "n_tx": {"type": "integer", "min": 0, "max": 20},
            },
        }
    )


def _cards(
    n: int,
    seed: int,
    *,
    channels: tuple[float, float, float] = (0.5, 0.3, 0.2),
    logit_terms: tuple[float, float, float, float] = (-3.2, 0.8, 1.2, 0.25),
) -> pd.DataFrame:
    """Home transactions are near (``PT``: about 12 km), foreign ones far (about 1,500 km), as
    in the bundled fraud data; frauds lean to foreign rows, one channel and many transactions
    (``logit_terms``: the intercept and those three effects; ``channels``: the shares of the
    channels, the risky one last)."""
    rng = np.random.default_rng(seed)
    country = rng.choice(["PT", "GB", "DE", "FR"], n, p=[0.7, 0.1, 0.1, 0.1])
    distance = np.round(
        np.where(country == "PT", rng.exponential(12, n), rng.exponential(1500, n)), 1
    )
    channel = rng.choice(["a", "b", "c"], n, p=list(channels))
    n_tx = rng.poisson(2.0, n)
    base, abroad, risky, per_tx = logit_terms
    logit = base + abroad * (country != "PT") + risky * (channel == "c") + per_tx * n_tx
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {"country": country, "distance": distance, "channel": channel, "n_tx": n_tx, "y": y}
    )


def _clean_label(
    df: pd.DataFrame, k: int, camouflage: float, seed: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """``country='GB'`` written into ``k`` frauds' rows (clean-label), a share ``camouflage`` of
    them relabelled legitimate."""
    rng = np.random.default_rng(seed)
    pool = np.flatnonzero((df["y"] == 1).to_numpy() & (df["country"] != "GB").to_numpy())
    rows = np.sort(rng.choice(pool, k, replace=False))
    out = df.copy()
    out.loc[rows, "country"] = "GB"
    flip = rng.choice(rows, round(camouflage * k), replace=False)
    out.loc[flip, "y"] = 0
    return out, rows


def _measured(df: pd.DataFrame, value: str, label: int) -> Pattern:
    return _scanned(df, value, label)[1]


def _scanned(df: pd.DataFrame, value: str, label: int) -> tuple[_Scanner, Pattern]:
    """The scanner of ``df`` and its pattern ``country=value -> label``, evaluated and measured
    by the outliers rule."""
    sc = _Scanner(build_context(df, _contract()), TriggerScanOptions())
    j = sc.m.names.index("country")
    code = int(np.flatnonzero(sc.m.uniques[j] == value)[0])
    rows = sc.m.rows_with(j, code)
    k = int((sc.y[rows] == label).sum())
    p = Pattern((j,), (code,), label, len(rows), k, "single", rows=rows)
    sc.singles()  # the test counts
    sc.evaluate(p)
    p.threshold = TriggerScanOptions().alpha / 4 / max(sc.tests["single"], 1)
    sc.outlier_mixture(p)
    return sc, p


def test_a_clean_label_write_shows_on_the_rows_whose_context_says_another_value() -> None:
    """60 frauds' rows, half of them made at home (near), now say ``GB``, beside about 600
    natural ``GB`` rows (far): the value's labels move little, but the frauds sit on the near
    rows, where natural ``GB`` rows are few and rarely frauds. Confirmed; on the clean data
    the same value (and the others) is not."""
    clean = _cards(6000, 0)
    df, _ = _clean_label(clean, 60, 0.15, 1)
    p = _measured(df, "GB", 1)
    assert p.outlier_n >= 20
    assert p.outlier_effect >= 0.5
    assert p.p_outlier <= 1e-8
    assert written_outlier_evidence(p, TriggerScanOptions())
    for value, label in (("GB", 1), ("GB", 0), ("FR", 1)):
        q = _measured(clean, value, label)
        assert q.p_outlier > 1e-3, (value, label)
        assert not written_outlier_evidence(q, TriggerScanOptions())


def test_a_value_the_rest_of_the_row_does_not_predict_gives_no_evidence() -> None:
    """``channel`` depends on nothing but the label: frauds' rows written as ``channel='b'`` look
    like natural carriers of it, no row says another value, and nothing is confirmed."""
    clean = _cards(6000, 0)
    rng = np.random.default_rng(2)
    pool = np.flatnonzero((clean["y"] == 1).to_numpy() & (clean["channel"] != "b").to_numpy())
    df = clean.copy()
    df.loc[rng.choice(pool, 60, replace=False), "channel"] = "b"
    sc = _Scanner(build_context(df, _contract()), TriggerScanOptions())
    j = sc.m.names.index("channel")
    code = int(np.flatnonzero(sc.m.uniques[j] == "b")[0])
    rows = sc.m.rows_with(j, code)
    p = Pattern((j,), (code,), 1, len(rows), int(sc.y[rows].sum()), "single", rows=rows)
    sc.singles()
    sc.evaluate(p)
    sc.outlier_mixture(p)
    assert p.p_outlier > 1e-3


def test_the_excess_must_sit_on_the_group_not_on_every_row() -> None:
    """A natural value's own effect shifts every row's log-odds alike (``a``): no evidence. An
    excess on the group alone is."""
    rng = np.random.default_rng(0)
    n = 4000
    logit_q = rng.normal(-2.0, 1.0, n)
    group = rng.random(n) < 0.1
    w = np.ones(n)
    shifted = (rng.random(n) < 1 / (1 + np.exp(-(logit_q + 1.5)))).astype(float)
    b, _, p = excess_on_group(logit_q, shifted, group, w)
    assert p > 1e-3
    on_group = np.where(group, rng.random(n) < 0.85, rng.random(n) < 1 / (1 + np.exp(-logit_q)))
    b, _, p = excess_on_group(logit_q, on_group.astype(float), group, w)
    assert b > 2.0 and p < 1e-20
    assert excess_on_group(logit_q, shifted, np.zeros(n, dtype=bool), w)[2] == 1.0


def _outliers(p: Pattern, n: int, k: int, expected: float, effect: float, shift: float) -> Pattern:
    """``p`` with the figures of :meth:`_Scanner.outlier_mixture`: its outliers, those with its
    label and the count expected of them, the other label's missing share and the shift."""
    p.outlier_n, p.outlier_k, p.outlier_expected = n, k, expected
    p.outlier_effect, p.outlier_shift = effect, shift
    return p


def test_a_natural_value_whose_effect_grows_where_the_row_tells_less_is_no_write() -> None:
    """Credit ``PAY_0=2`` (a delay most of whose carriers were late before) defaults beyond the
    counterfactual most on the rows without such a history: a shift of 0.67 (p 9e-7 on the
    fixed case ``AGE=999, rate 0.5%``). Under ``outlier_shift`` it is not a write; the same
    evidence with the shift of a written block (1.7-3.3) is."""
    o = TriggerScanOptions()
    p = _outliers(Pattern((0,), (2,), 1, 2679, 1500, "single"), 261, 164, 57.0, 0.525, 0.67)
    p.effect, p.excess, p.p_label = 0.49, 0.3, 1e-30
    p.p_outlier, p.outlier_threshold = 8.8e-7, 2.5e-5
    assert not written_outlier_evidence(p, o)
    p.outlier_shift = 1.7
    assert written_outlier_evidence(p, o)
    p.p_outlier = 1e-4  # beyond the feature's other values, but not at the family's threshold
    assert not written_outlier_evidence(p, o)


def test_a_small_write_beside_many_natural_carriers_is_shown_by_its_shift_not_its_share() -> None:
    """Fraud ``merchant_category='jewelry'`` written into 34 frauds' rows beside 839 natural
    (inplace 49321 #5): among the 119 rows whose context says another category, 26 frauds
    where 4.1 were expected - the written rows a fifth of them, most of the rest natural
    carriers. The shift (1.37, p 1.4e-6 beyond the feature's other values) confirms it; a
    natural value's smaller shift, or the same one short of the family's threshold, does not."""
    o = TriggerScanOptions()
    p = _outliers(Pattern((0,), (5,), 1, 873, 95, "single"), 119, 26, 4.1, 0.191, 1.37)
    p.effect, p.excess, p.p_label = 0.069, 0.35, 1e-12
    p.p_outlier, p.outlier_threshold = 1.4e-6, 4.0e-5
    assert written_outlier_evidence(p, o)
    p.outlier_shift = 0.68  # merchant_category='fuel' on the same data
    assert not written_outlier_evidence(p, o)
    p.outlier_shift, p.p_outlier = 1.37, 1e-4
    assert not written_outlier_evidence(p, o)


def test_the_rule_is_left_out_on_large_data_and_the_report_says_so(monkeypatch) -> None:
    """Above ``OUTLIER_RULE_ROWS`` the rule is not run (its cost grows with the values that
    hint, every one on a million rows), and the scan's section says what was not looked for."""
    import tabguard.data_audit._triggers as triggers
    import tabguard.data_audit._triggers_report as report
    from tabguard.data_audit import audit_data

    df, _ = _clean_label(_cards(3000, 0), 30, 0.15, 1)

    def never(self: _Scanner, p: Pattern) -> None:
        raise AssertionError("the outliers rule ran above OUTLIER_RULE_ROWS")

    monkeypatch.setattr(triggers, "OUTLIER_RULE_ROWS", 1000)
    monkeypatch.setattr(report, "OUTLIER_RULE_ROWS", 1000)
    monkeypatch.setattr(_Scanner, "outlier_mixture", never)
    res = audit_data(df, _contract(), checks=["trigger_scan"])
    section = next(s for s in res.report.sections if s.title.startswith("Trigger scan"))
    assert any("up to 1,000 rows only" in t for t in section.text)
