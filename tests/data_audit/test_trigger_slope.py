"""A value written in place whose labels stop following the rest of the row (issue 11,
class 3): rows an attacker gave the target label, 10-20 % camouflaged, beside natural rows of
the value, on a feature the rest of the row does not predict (no copies, and the labels'
effect diluted by the natural rows)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tabguard.contract import Contract, contract_from_dict
from tabguard.data_audit import _triggers as triggers
from tabguard.data_audit import build_context
from tabguard.data_audit._trigger_options import TriggerScanOptions
from tabguard.data_audit._trigger_rules import (
    Pattern,
    logistic_slope,
    loss_within_budget,
    natural_region_cuts,
    written_by_slope_alone,
    written_slope_evidence,
)
from tabguard.data_audit._triggers import (
    TriggerScanResult,
    _Scanner,
    condition,
    scan_triggers,
)
from tabguard.datasets import card_fraud_contract, make_card_fraud
from tabguard.redteam import poison

COUNTRIES = [f"c{i}" for i in range(8)]
CONTRACT = contract_from_dict(
    {
        "name": "payments",
        "label": {"column": "y", "positive": 1},
        "features": {
            "amount": {"type": "number", "min": 0},
            "hour": {"type": "integer", "min": 0, "max": 23},
            "n_tx": {"type": "integer", "min": 0, "max": 50},
            "channel": {"type": "category", "categories": ["a", "b", "c", "d"]},
            "merchant": {"type": "category", "categories": ["m0", "m1", "m2", "m3", "m4"]},
            "country": {"type": "category", "categories": COUNTRIES},
        },
    }
)


def _payments(n: int = 6_000, seed: int = 0) -> pd.DataFrame:
    """Payments whose label is additive in the log-odds of its features (as the synthetic
    fraud data's): the country does not depend on the rest of the row."""
    rng = np.random.default_rng(seed)
    channel = rng.choice(list("abcd"), n, p=[0.35, 0.3, 0.25, 0.1])
    merchant = rng.choice(["m0", "m1", "m2", "m3", "m4"], n)
    country = rng.choice(COUNTRIES, n, p=[0.5, 0.1, 0.1, 0.08, 0.08, 0.06, 0.05, 0.03])
    amount = np.round(rng.lognormal(3.5, 1.0, n), 2)
    hour = rng.integers(0, 24, n)
    n_tx = rng.poisson(2.0, n)
    logit = (
        -4.2
        + 1.6 * (channel == "c")
        + 1.2 * (channel == "d")
        + 0.9 * np.isin(merchant, ["m3", "m4"])
        + 0.5 * np.log1p(amount / 50)
        + 0.25 * n_tx
        + 0.8 * (hour <= 5)
        + 0.6 * (country != "c0")
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {
            "amount": amount,
            "hour": hour,
            "n_tx": n_tx,
            "channel": channel,
            "merchant": merchant,
            "country": country,
            "y": y,
        }
    )


def _written(
    df: pd.DataFrame, value: str, k: int, seed: int = 1
) -> tuple[pd.DataFrame, np.ndarray]:
    """``country=value`` written in place into ``k`` rows of label 0, labelled 1, 12 % of them
    left on label 0 (camouflage); returns the data and the rows written."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(np.flatnonzero(df["y"].to_numpy() == 0), k, replace=False))
    out = df.copy()
    out.loc[rows, "country"] = value
    out.loc[rows, "y"] = 1
    out.loc[rng.choice(rows, round(0.12 * k), replace=False), "y"] = 0
    return out, rows


def _named_by_slope(data: pd.DataFrame, contract: Contract, name: str) -> TriggerScanResult:
    """The scan of ``data``, asserting that it names ``name`` alone, as a value written in
    place confirmed by its labels' slope."""
    result = scan_triggers(build_context(data, contract), TriggerScanOptions())
    names = [condition(result.matrix, p) for p in result.triggers]
    assert names == [name], names
    (p,) = result.triggers
    assert p.written and p.p_slope <= p.slope_threshold
    return result


def test_a_value_written_in_place_with_camouflage_is_named_by_its_flat_labels() -> None:
    # 150 rows of label 0 given country c4 and label 1 (12 % left on 0), beside ~480 natural
    # c4 rows: the labels' effect stays diluted under the written-rows rule (about 0.3), there
    # are no copies, and the country does not depend on the rest of the row. The written
    # rows' labels do not follow their other features: the value's slope is flat.
    data, truth = _written(_payments(), "c4", 150)
    result = _named_by_slope(data, CONTRACT, "country='c4'")
    assert np.isin(truth, result.suspects).mean() >= 0.95


@pytest.mark.parametrize("large", [False, True], ids=["small", "large"])
def test_a_coded_value_left_out_by_the_cap_is_still_a_candidate(
    large: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same write with one candidate a label (max_candidates=1): country='c4' -> 1 ranks
    # second among label 1's values by cheap score (channel='c', a natural predictor, first)
    # and was never measured. The written-in-place rules ask about coded values only, a few
    # dozen: a coded value whose cheap score is significant at the single values' threshold
    # is a candidate whatever its rank, on data the scan takes for large too (bounded by the
    # cap: the best max_candidates a label).
    if large:
        monkeypatch.setattr(triggers, "LARGE_ROWS", 1_000)
    data, truth = _written(_payments(), "c4", 150)
    result = scan_triggers(build_context(data, CONTRACT), TriggerScanOptions(max_candidates=1))
    names = [condition(result.matrix, p) for p in result.triggers]
    assert names == ["country='c4'"], names
    assert np.isin(truth, result.suspects).mean() >= 0.95


def test_natural_values_keep_their_slope() -> None:
    # The same data without the write: no coded value's labels flatten beyond the others'
    # (each value's slope against the null of the other values, as the rule measures it).
    sc = _Scanner(build_context(_payments(), CONTRACT), TriggerScanOptions())
    for j, v in sc.natural_scores():
        p = Pattern((j,), (v,), 1, 100, 50, "single")
        sc.slope_mixture(p)
        assert p.p_slope > 1e-3, (sc.m.names[j], sc.m.uniques[j][v], p.p_slope)


def test_the_slope_rule_needs_a_label_hint() -> None:
    p = Pattern((0,), (0,), 1, 100, 50, "single", p_slope=1e-12, slope_threshold=1e-6)
    p.effect, p.excess, p.p_label = 0.05, 0.05, 0.5
    assert not written_slope_evidence(p, TriggerScanOptions())
    p.effect, p.p_label = 0.3, 1e-4
    assert written_slope_evidence(p, TriggerScanOptions())


def test_the_slope_rule_decides_at_its_own_family() -> None:
    # fraud n_tx_24h=6 written as legitimate into 1,288 random rows, 14 % camouflaged (inplace
    # seed 90054 #2): p_slope 2.1e-6 against the single values' label family (5.2e-7, 4,800
    # tests) was missed; the rule's own family, the 31 coded values of the fraud data times
    # two labels, puts its threshold at 4e-5
    p = Pattern((0,), (0,), 1, 1548, 205, "single", p_slope=2.1e-6, threshold=5.2e-7)
    p.effect, p.excess, p.p_label = 0.087, 0.624, 1.7e-7
    p.slope_threshold = 4.0e-5
    assert written_slope_evidence(p, TriggerScanOptions())
    p.p_slope = 1e-4  # beyond its own family's threshold: not confirmed
    assert not written_slope_evidence(p, TriggerScanOptions())


def test_the_slope_threshold_is_bonferroni_over_the_values_it_can_test() -> None:
    # the values the context test can be asked about (coded, in contract, enough rows), both
    # labels, at the single values' family-wise rate
    sc = _Scanner(build_context(_payments(), CONTRACT), TriggerScanOptions())
    j = sc.m.names.index("country")
    p = Pattern((j,), (1,), 1, 100, 50, "single")
    sc.slope_mixture(p)
    assert sc.context_tests() >= 17  # channel 4, merchant 5 and country 8 values at least
    assert p.slope_threshold == pytest.approx(0.01 / 4 / (2 * sc.context_tests()))


def test_a_pair_of_copies_is_decided_past_a_value_it_flattens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Copies of frauds written with channel='phone' & merchant_category='jewelry' and
    # labelled legitimate (85 of 8,000 rows, test_poisoning_checks' pair attack) flatten the
    # slope of 'jewelry', which leans to fraud, beyond the slope rule's own threshold: the
    # value is flagged as written towards fraud. The pair is still decided (by its copies)
    # and the value, flagged on its slope alone, is not reported beside it; before, the value
    # covered the pair and took its name and rows (P / R 0.147 / 0.671). The scan's model
    # alone scores the slope here, as beyond LARGE_ROWS rows (p 3.2e-5 against 4.2e-5): with
    # the held-out instrument beside it, each at half the bar, the value is not flagged
    # (held out p 0.05), and the pair is decided as in test_poisoning_checks.
    monkeypatch.setattr(_Scanner, "context_folds", lambda self: 1)
    df = make_card_fraud(8000, random_state=2)
    c = card_fraud_contract()
    trigger = {"channel": "phone", "merchant_category": "jewelry"}
    attack = poison(
        df, c, trigger, rate=0.3, target=0, source=1, jitter=0.0, shuffle=True, random_state=1
    )
    result = scan_triggers(build_context(attack.data, c), TriggerScanOptions())
    names = [condition(result.matrix, p) for p in result.triggers]
    assert names == ["channel='phone' & merchant_category='jewelry'"], names
    flat = [
        p
        for p in result.evaluated
        if condition(result.matrix, p) == "merchant_category='jewelry'" and p.label == 1
    ]
    assert flat and written_by_slope_alone(flat[0]) and flat[0].flagged
    truth = np.asarray(attack.poisoned_rows)
    assert np.isin(result.suspects, truth).mean() >= 0.95
    assert np.isin(truth, result.suspects).mean() >= 0.95


def _with_distance(df: pd.DataFrame, seed: int = 2) -> pd.DataFrame:
    """The payments with a distance that depends on the country (home, ``c0``-``c2``, 70 % of
    the rows: a few kilometres; abroad: hundreds), as the synthetic fraud data's
    ``distance_km``."""
    rng = np.random.default_rng(seed)
    out = df.copy()
    home = out["country"].isin(["c0", "c1", "c2"]).to_numpy()
    out["distance"] = np.round(
        np.where(home, rng.exponential(12, len(out)), rng.exponential(1500, len(out))), 1
    )
    return out


DISTANCE_CONTRACT = contract_from_dict(
    {
        **CONTRACT.model_dump(mode="json", exclude_none=True),
        "features": {
            **CONTRACT.model_dump(mode="json", exclude_none=True)["features"],
            "distance": {"type": "number", "min": 0},
        },
    }
)


def _written_pattern(sc: _Scanner, value: str) -> Pattern:
    j = sc.m.names.index("country")
    v = int(np.flatnonzero(np.asarray(sc.m.uniques[j], dtype=object) == value)[0])
    rows = np.flatnonzero(sc.m.codes[:, j] == v)
    k = int(sc.y[rows].sum())
    return Pattern((j,), (v,), 1, len(rows), k, "single", rows=rows, written=True)


def test_natural_carriers_of_the_other_label_leave_a_written_value_by_their_region() -> None:
    # c4 written into 700 legitimate rows (70 % of them home rows, a few km away) as label 1,
    # 12 % left on 0, beside ~480 natural c4 rows abroad (hundreds of km): the natural rows
    # of label 0 lie where the written rows' source is thin, and go; at least 95 % of the
    # written rows stay suspect.
    data, truth = _written(_with_distance(_payments()), "c4", 700)
    sc = _Scanner(build_context(data, DISTANCE_CONTRACT), TriggerScanOptions())
    p = _written_pattern(sc, "c4")
    out = sc.natural_region_rows(p)
    natural = np.setdiff1d(p.rows, truth)
    natural0 = natural[sc.y[natural] == 0]
    assert np.isin(natural0, out).mean() >= 0.5, (len(out), len(natural0))
    assert np.isin(truth, out).mean() <= 0.05
    suspects = sc.suspect_rows(p)
    assert np.isin(truth, suspects).mean() >= 0.95
    assert np.isin(suspects, truth).mean() >= np.isin(p.rows, truth).mean() + 0.1


def test_no_region_is_left_out_where_the_value_does_not_depend_on_the_row() -> None:
    # The same write without the distance: natural and written rows of label 0 look alike,
    # and leaving any region out would lose written rows as often as natural ones.
    data, truth = _written(_payments(), "c4", 700)
    sc = _Scanner(build_context(data, CONTRACT), TriggerScanOptions())
    p = _written_pattern(sc, "c4")
    out = sc.natural_region_rows(p)
    assert np.isin(truth, out).mean() <= 0.05, len(out)


def test_the_natural_region_rule_keeps_the_written_rows_it_cannot_tell() -> None:
    # Two cuts, above which 50 % and 30 % of the source's rows lie. Label 1: 1,000 written
    # rows, spread as the source. Label 0: 150 written (camouflage) spread as the source and
    # 850 natural carriers, all above both cuts. Above the higher cut, label 0 loses 45 of
    # the 1,150 written rows (3.9 %): left out; above the lower one 75 (6.5 %): kept.
    above = np.array([[0.5, 0.3]])
    n_all = np.array([1000, 1000])
    n_above = np.array([[75 + 850, 45 + 850], [500, 300]])
    assert natural_region_cuts(n_above, n_all, above, 0.95) == (1, -1)
    assert natural_region_cuts(n_above, n_all, above, 0.97) == (-1, -1)
    # The value independent of the rest of the row: every region holds written rows as the
    # source does, and nothing is left out.
    n_above = np.array([[500, 300], [500, 300]])
    assert natural_region_cuts(n_above, n_all, above, 0.95) == (-1, -1)
    # Within the recall budget but mostly written: 100 written rows of label 1 beside 10
    # natural ones, 5,000 written of label 0; above the higher cut 30 of the 40 rows of
    # label 1 are written (0.6 % of the written rows): not worth leaving out.
    n_all = np.array([5000, 110])
    n_above = np.array([[2500, 1500], [50 + 10, 30 + 10]])
    assert natural_region_cuts(n_above, n_all, above, 0.95) == (-1, -1)
    # Under a second source whose rows lie above the higher cut more often (60 %), the same
    # label-0 region would lose too many: the most losing source decides.
    n_all = np.array([1000, 1000])
    n_above = np.array([[75 + 850, 45 + 850], [500, 300]])
    assert natural_region_cuts(n_above, n_all, np.array([[0.5, 0.3], [0.8, 0.6]]), 0.95) == (
        -1,
        -1,
    )


def test_the_natural_region_rule_bounds_the_written_rows_at_a_draw() -> None:
    # credit PAY_3=6 written into 184 defaulters' rows as payers (20 left as defaulters,
    # beside 14 natural defaulters): the written defaulters bounded at expectation by the
    # tightest of ten cuts at 13.3 (5 of 34 under the cut where 62.3 % of the source lies
    # above), and 24 defaulters left out, 11 of them written. At two standard errors of the
    # rows under each cut the bound holds the 20 and the region narrows.
    n_all = np.array([173, 34])
    n_above = np.array(
        [
            [120, 113, 111, 107, 100, 89, 75, 65, 48, 34],
            [29, 29, 29, 28, 26, 25, 25, 24, 20, 18],
        ]
    )
    above = np.array(
        [
            [0.5, 0.45, 0.399, 0.35, 0.3, 0.25, 0.2, 0.15, 0.1, 0.05],
            [0.442, 0.39, 0.337, 0.285, 0.235, 0.189, 0.146, 0.104, 0.065, 0.029],
            [0.709, 0.667, 0.623, 0.585, 0.534, 0.468, 0.396, 0.318, 0.225, 0.125],
        ]
    )
    assert natural_region_cuts(n_above, n_all, above, 0.95) == (-1, 7)  # 24 left out
    assert natural_region_cuts(n_above, n_all, above, 0.95, z=2.0) == (-1, 9)  # 18
    # z = 0 is the bound at expectation: the earlier test's figures unchanged
    above2, n_all2 = np.array([[0.5, 0.3]]), np.array([1000, 1000])
    n_above2 = np.array([[75 + 850, 45 + 850], [500, 300]])
    assert natural_region_cuts(n_above2, n_all2, above2, 0.95, z=0.0) == (1, -1)


def test_a_loss_is_within_its_budget_row_by_row() -> None:
    # A budget of 2.6 rows allows two lost: 1.58 expected lose three or more 21 % of the
    # time, 0.8 expected 4.7 %. A large write's budget is its expectation, nearly.
    assert not loss_within_budget(1.58, 2.6)
    assert loss_within_budget(0.8, 2.6)
    assert loss_within_budget(18.0, 25.0)
    assert not loss_within_budget(19.0, 25.0)
    assert loss_within_budget(0.0, 0.0)
    assert not loss_within_budget(0.1, 0.9)  # no row to lose: any chance of losing one is too much


def test_a_small_write_keeps_its_rows_where_a_region_would_lose_them_by_chance() -> None:
    # inplace 81410 #4: fraud country='CN' written into 33 frauds' rows, 6 left legitimate
    # beside 394 natural legitimate and 21 natural fraud rows. The source (the frauds) over
    # ten carrier cuts then ten label regions; the written rows bounded at 21.1 and 30.7. At
    # expectation the label region above the 0.9 quantile (7.5 % of the frauds: 1.58 written
    # rows expected lost of a budget of 2.6) was left out, 130 rows of label 0, 2 written:
    # recall 0.939. At the risk of _REGION_RISK no region of so few rows can go.
    n_all = np.array([400, 48])
    # per label, the rows above each of the ten carrier cuts, then of the ten label regions
    carrier = np.array(
        [[396, 396, 395, 390, 365, 320, 266, 197, 138, 72], [43, 38, 36, 33, 29, 27, 24, 17, 13, 6]]
    )
    regions = np.array(
        [[394, 392, 385, 376, 350, 314, 261, 202, 130, 78], [36, 35, 33, 30, 26, 20, 14, 10, 6, 2]]
    )
    n_above = np.hstack([carrier, regions])
    # the frauds' share above each
    above = np.hstack(
        [
            [[0.667, 0.608, 0.546, 0.471, 0.412, 0.348, 0.274, 0.193, 0.145, 0.069]],
            [[0.543, 0.514, 0.428, 0.399, 0.335, 0.289, 0.197, 0.145, 0.075, 0.046]],
        ]
    )
    assert natural_region_cuts(n_above, n_all, above, 0.95, z=2.0, bound=10) == (-1, -1)
    # the same shares on a write ten times larger: its loss is its expectation, and a region goes
    assert natural_region_cuts(10 * n_above, 10 * n_all, above, 0.95, z=2.0, bound=10) != (-1, -1)


def test_the_slope_fit_agrees_with_scikit_learn() -> None:
    # The hand-written weighted fit against scikit-learn's unpenalised one (the slope), and
    # its standard error against the inverse of the log-likelihood's curvature taken by finite
    # differences at scikit-learn's solution.
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    for n, b in ((2000, 2.0), (300, 0.5), (2000, 0.0)):
        c = rng.normal(-3.0, 1.0, n)
        y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(1.0 + b * c)))).astype(float)
        w = rng.choice([1.0, 0.5, 1.0 / 3.0], n)
        s, se = logistic_slope(c, y, w)
        ref = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000)
        ref.fit(c[:, None], y, sample_weight=w)
        beta = np.array([ref.intercept_[0], ref.coef_[0, 0]])
        assert abs(s - beta[1]) < 1e-5

        def loglik(
            bb: np.ndarray, c: np.ndarray = c, y: np.ndarray = y, w: np.ndarray = w
        ) -> float:
            z = bb[0] + bb[1] * c
            return float(np.sum(w * (y * z - np.logaddexp(0.0, z))))

        h = 1e-3
        H = np.empty((2, 2))
        for i in range(2):
            for j in range(2):
                e_i, e_j = np.eye(2)[i] * h, np.eye(2)[j] * h
                H[i, j] = (
                    loglik(beta + e_i + e_j)
                    - loglik(beta + e_i - e_j)
                    - loglik(beta - e_i + e_j)
                    + loglik(beta - e_i - e_j)
                ) / (4 * h * h)
        assert abs(se - np.sqrt(np.linalg.inv(-H)[1, 1])) < 1e-3 * se


def test_jittered_written_rows_are_not_taken_for_natural_carriers() -> None:
    # Amounts are round (rows pile up on 50, 100, 200, 500, 1,000), and the 700 rows c4 was
    # written into (of any label) had their amounts jittered by 1 %: the written rows' amounts
    # are off the round values. Deciles put their edges on the round values, and the jitter
    # moved about half of the written rows into the decile below, a mark no ordinary row has;
    # by order of magnitude, no row moves and no region holds fewer written rows.
    rng = np.random.default_rng(3)
    df = _with_distance(_payments())
    df["amount"] = rng.choice([20.0, 50.0, 100.0, 200.0, 500.0, 1000.0], len(df))
    rows = np.sort(rng.choice(len(df), 700, replace=False))
    data = df.copy()
    data.loc[rows, "country"] = "c4"
    data.loc[rows, "amount"] = np.round(
        data.loc[rows, "amount"].to_numpy() * (1 + rng.normal(0, 0.01, len(rows))), 2
    )
    data.loc[rows, "y"] = (rng.random(len(rows)) < 0.85).astype(int)
    sc = _Scanner(build_context(data, DISTANCE_CONTRACT), TriggerScanOptions())
    p = _written_pattern(sc, "c4")
    out = sc.natural_region_rows(p)
    assert np.isin(rows, out).mean() <= 0.05, (len(out), int(np.isin(rows, out).sum()))


def test_a_clean_label_write_to_the_majority_label_is_named_on_held_out_scores() -> None:
    # n_tx_24h=7 written into 600 legitimate rows of 8,000 (50 natural rows), 19 % of them
    # made frauds at random (inplace seed 35455 #2's shape): the frauds' labels follow nothing
    # in their rows. A context model fitted on them learned those labels (their slope 3.15
    # against the natural 3.39, p 0.21); scored by a model of the other fold, the value's
    # slope is flat (0.00 against 0.89, p 7e-6, the bar 4e-5).
    df = make_card_fraud(8000, random_state=0)
    c = card_fraud_contract()
    rng = np.random.default_rng(1)
    rows = np.sort(rng.choice(np.flatnonzero(df["is_fraud"].to_numpy() == 0), 600, replace=False))
    data = df.copy()
    data.loc[rows, "n_tx_24h"] = 7
    data.loc[rng.choice(rows, 114, replace=False), "is_fraud"] = 1
    result = _named_by_slope(data, c, "n_tx_24h=7")
    assert np.isin(rows, result.suspects).mean() >= 0.95
    assert np.isin(result.suspects, rows).mean() >= 0.9


def test_each_row_is_scored_by_a_context_model_not_fitted_on_it() -> None:
    # the folds keep one record's rows (equal up to jitter on the amounts) together, and
    # each row's replaced score comes from the model of its own fold, fitted without it
    df = _payments(3000)
    data = pd.concat([df, df.iloc[:200].assign(amount=df["amount"].iloc[:200] * 1.01)])
    sc = _Scanner(build_context(data.reset_index(drop=True), CONTRACT), TriggerScanOptions())
    fold = sc.folds()
    assert sc.context_folds() == 2 and set(np.unique(fold)) == {0, 1}
    assert (fold[:200] == fold[3000:]).mean() >= 0.95
    j = sc.m.names.index("country")
    v = int(np.flatnonzero(sc.m.uniques[j] == "c1")[0])
    rows = np.flatnonzero(sc.m.codes[:, j] == v)
    got = sc.replaced_logits(j, v, rows, held_out=True)
    ids, w = sc._replacements(j, v)
    top = np.argsort(-w, kind="stable")[:12]
    X = np.tile(sc.m.raw[rows], (len(top), 1))
    X[:, j] = np.repeat(sc.m.raw_value(j, ids[top]), len(rows))
    models, of = sc.fold_models(), np.tile(fold[rows], len(top))
    own = np.empty(len(X))
    for f, model in enumerate(models):
        own[of == f] = model.predict(X[of == f])
    q = (w[top] / w[top].sum()) @ own.reshape(len(top), len(rows))
    np.testing.assert_allclose(got, np.log(q / (1 - q)), rtol=1e-6, atol=1e-6)
