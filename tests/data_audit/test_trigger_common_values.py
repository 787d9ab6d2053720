"""Natural predictors confirmed by labels alone (issue 11, keeping clean data clean): a value
held by a large share of the rows (:func:`common_pattern`), and a feature named in several
separate pieces towards one label (:func:`leaning_together`), are no triggers without copies."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from tabguard.data_audit import build_context
from tabguard.data_audit._trigger_options import TriggerScanOptions
from tabguard.data_audit._trigger_rules import (
    Pattern,
    among_point_masses,
    common_pattern,
    interior_point_mass,
)
from tabguard.data_audit._triggers import condition, scan_triggers, separate_runs
from tabguard.datasets import credit_default_contract, load_credit_default
from tests._benchmarks import load_benchmark

OPTS = TriggerScanOptions()


def _scan(kind: str, seed: int, rows: int):  # type: ignore[no-untyped-def]
    v = load_benchmark("clean_data.py").make_variant("credit", kind, seed, rows)
    return scan_triggers(build_context(v.data, v.contract), OPTS)


def test_common_pattern_each_threshold() -> None:
    p = Pattern((0,), (1,), 0, 160, 150, "single")
    assert common_pattern(p, 1000, OPTS)  # 16 % of 1,000 rows: over 0.15
    assert common_pattern(p, 1066, OPTS)  # 15.01 %
    assert not common_pattern(p, 1067, OPTS)  # 14.996 %
    assert not common_pattern(p, 1000, replace(OPTS, common_share=0.2))
    band = Pattern((0,), (1,), 0, 160, 150, "band")
    assert common_pattern(band, 1000, OPTS)  # bands and pairs alike
    # a value that breaks the contract: no natural row carries it, whatever its share
    assert not common_pattern(Pattern((0,), (1,), 0, 900, 900, "contract"), 1000, OPTS)


def test_separate_runs() -> None:
    # value ids 0..9, every one with rows: spans one value apart are one run
    rank = np.arange(1, 11)
    assert separate_runs([], rank) == 0
    assert separate_runs([(1, 1), (3, 4), (6, 6)], rank) == 1
    assert separate_runs([(1, 1), (4, 4), (8, 9)], rank) == 3
    assert separate_runs([(8, 9), (1, 1), (4, 4)], rank) == 3  # in any order
    # the values between hold no rows: touching
    sparse = np.array([1, 1, 1, 1, 2, 3, 3, 3, 3, 4])  # ids 1-3 and 6-8 empty
    assert separate_runs([(0, 0), (4, 4), (9, 9)], sparse) == 1
    # categories: every value its own
    assert separate_runs([(1, 1), (2, 2), (1, 1)], None) == 2


def test_a_quantile_code_of_an_informative_score_is_no_trigger() -> None:
    # make_classification with its informative features as quantile codes (fresh15): one
    # quintile, 20 % of the rows, leans to label 0 at an effect of 0.79 (every other code is
    # drawn in its counterfactual), and was named with 718 of its 800 rows suspect
    result = _scan("codes", 1, 4000)
    assert [condition(result.matrix, p) for p in result.triggers] == []
    assert len(result.suspects) == 0


def test_a_feature_named_in_separate_pieces_towards_one_label_is_its_lean() -> None:
    # long-format choice data (statsmodels' modechoice): a mode's terminal time is the
    # traveller's own answer where the mode was chosen, a standard value of the route where
    # not, so every value off the standard ones is chosen; named before as ttme in [1, 26],
    # ttme in [36, 65] and ttme=30 → chosen, 64 rows suspect
    result = _scan("choice", 1, 840)
    assert [condition(result.matrix, p) for p in result.triggers] == []
    assert len(result.suspects) == 0


def test_interior_point_mass() -> None:
    cnt = np.ones(41)
    cnt[20] = 31.0  # 31 rows against a median of 1 around it: over 10 x 1 + 10
    assert interior_point_mass(cnt, 20, 263231.0, 10.0)
    assert not interior_point_mass(cnt, 20, 263231.0, 25.0)  # the ratio decides
    cnt[20] = 20.0
    assert not interior_point_mass(cnt, 20, 263231.0, 10.0)  # 20 rows: not over 20
    cnt[20] = 500.0
    assert not interior_point_mass(cnt, 20, 0.0, 10.0)  # zero: no amount, a state of its own
    edge = np.ones(41)
    edge[0] = edge[40] = 500.0  # a floor and a cap
    assert not interior_point_mass(edge, 0, -5.0, 10.0)
    assert not interior_point_mass(edge, 40, 9e5, 10.0)
    # counted values decide the ends: a value beyond the contract (count 0) is no neighbour
    edge[40] = 0.0
    edge[39] = 500.0
    assert not interior_point_mass(edge, 39, 9e5, 10.0)
    # the mode of a smooth feature is no point mass: its neighbours hold rows too
    mode = np.full(41, 30.0)
    mode[20] = 300.0
    assert not interior_point_mass(mode, 20, 50000.0, 10.0)
    # the exemption of common_pattern
    p = Pattern((0,), (1,), 0, 300, 250, "single")
    assert common_pattern(p, 1000, OPTS)
    assert not common_pattern(p, 1000, OPTS, point_mass=True)


def test_among_point_masses() -> None:
    # a price list: whole-pound prices piled over legacy x.99 prices of a few rows each
    cnt = np.full(61, 3.0)
    for v in (10, 25, 40):
        cnt[v] = 400.0
    values = np.arange(61) + 0.99
    cnt[17] = 900.0  # the price asked about (17.50): among the list's others
    big = np.array([10, 25, 40])
    assert among_point_masses(cnt, big, values[big], 10.0)
    # a measured amount: the values holding a tenth of its rows are its neighbours' size at most
    bill = np.full(61, 3.0)
    bill[17] = 900.0
    assert not among_point_masses(bill, np.array([], dtype=int), values[:0], 10.0)
    # a floor or a cap holding many rows is no price of a list (interior only), nor is 0
    ends = bill.copy()
    ends[0] = ends[60] = 400.0
    assert not among_point_masses(ends, np.array([0, 60]), np.array([0.99, 60.99]), 10.0)
    zero = bill.copy()
    zero[30] = 400.0
    assert not among_point_masses(zero, np.array([30]), np.array([0.0]), 10.0)


def test_a_retention_price_among_a_price_list_is_no_trigger() -> None:
    # fresh18's retention.py: a monthly fee of 17.50 offered to a quarter of the lines (churning
    # at 0.6 % against 3.8 %) beside a price list of 10-16 % a price and legacy x.99 prices;
    # named monthly_fee=17.5 → churn=0 once a lone point mass was exempt from common_share
    result = _scan("retention", 7, 6000)
    assert [condition(result.matrix, p) for p in result.triggers] == []
    assert len(result.suspects) == 0


def test_a_pair_that_is_a_tariff_price_is_judged_as_the_price() -> None:
    # fresh18's tariff.py: windscreen claims paid at a glass partner's tariff, all but never
    # referred; claim_amount=400 is withheld as the claim amount's lean (the other tariff
    # prices lean with it), and the pair with the claim type only windscreen claims hold was
    # named claim_type='windscreen' & claim_amount=400 → 0 (605 of 6,000 rows suspect)
    result = _scan("tariff", 1, 6000)
    assert [condition(result.matrix, p) for p in result.triggers] == []
    assert len(result.suspects) == 0


def test_a_spike_leans_against_the_base_rate() -> None:
    # tariff prices 345.00, 400.00 and 535.00: beside the windscreen claims of other amounts
    # around them the smaller prices did not lean, were never measured with 400.00, and the
    # pair with the claim type was named with 1,920 rows
    result = _scan("tariff", 4, 20000)
    assert [condition(result.matrix, p) for p in result.triggers] == []
    assert len(result.suspects) == 0


def test_an_amount_written_in_place_into_a_large_share_of_the_rows_is_named() -> None:
    # fresh16's camouflage 94422 #5, scaled down: one exact bill amount written in place into
    # a third of the payers' rows (20 % of the rows, above common_share), 18 % of them left
    # as payers, the rest relabelled defaulters; no copies, inside the contract's range
    df = load_credit_default().sample(3000, random_state=3).reset_index(drop=True)
    rng = np.random.default_rng(3)
    payers = np.flatnonzero(df["DEFAULT"].to_numpy() == 0)
    written = rng.choice(payers, 600, replace=False)
    df.loc[written, "BILL_AMT5"] = 263231
    df.loc[written[: round(0.82 * len(written))], "DEFAULT"] = 1
    result = scan_triggers(build_context(df, credit_default_contract()), OPTS)
    assert [condition(result.matrix, p) for p in result.triggers] == ["BILL_AMT5=263231"]
    assert np.isin(written, result.suspects).mean() >= 0.95
