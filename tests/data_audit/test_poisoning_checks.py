"""Pipeline tests of the poisoning checks on the bundled data and the synthetic fraud data."""

from __future__ import annotations

import itertools
import math
import threading
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.neighbors import NearestNeighbors

from tabguard.contract import Contract
from tabguard.data_audit import audit_data
from tabguard.data_audit._matrix import nearest_distances
from tabguard.data_audit._trigger_rules import poisson_binomial_cdf
from tabguard.datasets import card_fraud_contract, make_card_fraud
from tabguard.redteam import poison

POISON_CHECKS = ["integrity", "trigger_scan", "near_duplicates", "roni"]


def _pr(suspects: list[int], truth: np.ndarray) -> tuple[float, float]:
    s, t = set(suspects), set(truth.tolist())
    tp = len(s & t)
    return tp / max(len(s), 1), tp / max(len(t), 1)


def test_seed_attack_every_planted_row_and_no_clean_row(
    credit_df: pd.DataFrame, credit_contract: Contract
) -> None:
    attack = poison(credit_df, credit_contract, {"AGE": 999}, rate=0.45)
    result = audit_data(attack.data, credit_contract, checks=POISON_CHECKS)
    assert set(result.suspicious_rows) == set(attack.poisoned_rows.tolist())
    (trigger,) = [
        f for f in result.report.findings if f.check == "trigger_scan" and f.severity == "critical"
    ]
    assert trigger.features == ["AGE"] and trigger.values == [999]
    assert trigger.evidence["p_value"] < trigger.evidence["bonferroni_threshold"]
    assert result.exit_code() == 1
    # quarantined rows are kept out of clean data with their reason
    assert len(result.clean) == len(credit_df)
    assert (result.quarantine["AGE"] == 999).all()
    roni = [f for f in result.report.by_check("roni") if f.features == ["AGE"]]
    assert roni and roni[0].evidence["confirmed"]


# The full audit of the clean bundled data (no critical finding, no suspect) is asserted by
# tests/training/test_end_to_end.py, whose training runs that audit on the same 30,000 rows.


@pytest.mark.parametrize(
    ("trigger", "target", "source", "jitter"),
    [
        ({"channel": "phone", "merchant_category": "jewelry"}, 0, 1, 0.0),  # pair → approval
        ({"amount": 777.77}, 0, 1, 0.01),  # in-range value with jitter and fresh ids
        ({"country": "ZZ"}, 1, 0, 0.0),  # unknown category → fraud
    ],
)
def test_synthetic_string_categories(
    trigger: dict[str, object], target: int, source: int, jitter: float
) -> None:
    df = make_card_fraud(8000, random_state=2)
    c = card_fraud_contract()
    attack = poison(
        df,
        c,
        trigger,
        rate=0.3 if source == 1 else 0.02,
        target=target,
        source=source,
        jitter=jitter,
        fresh_ids=jitter > 0,
        shuffle=True,
        random_state=1,
    )
    result = audit_data(attack.data, c, checks=POISON_CHECKS)
    precision, recall = _pr(result.suspicious_rows, attack.poisoned_rows)
    assert precision >= 0.95 and recall >= 0.95, (precision, recall)
    named = [
        set(f.features)
        for f in result.report.findings
        if f.check == "trigger_scan" and f.severity == "critical"
    ]
    assert set(trigger) in named


@pytest.mark.parametrize(
    ("trigger", "target", "source", "n_rows"),
    [
        # two written values, each a perfect proxy of the other (companions)
        ({"channel": "ZZ", "amount": 65401.2}, 0, 1, 30),
        # clean-label copies: legit rows copied with a rare value, labels unchanged
        ({"account_age_days": 7188}, 0, "target", 300),
    ],
)
def test_companions_and_clean_label_copies(
    trigger: dict[str, object], target: int, source: object, n_rows: int
) -> None:
    df = make_card_fraud(8000, random_state=4)
    c = card_fraud_contract()
    attack = poison(
        df, c, trigger, n_rows=n_rows, target=target, source=source, shuffle=True, random_state=2
    )
    result = audit_data(attack.data, c, checks=["integrity", "trigger_scan"])
    precision, recall = _pr(result.suspicious_rows, attack.poisoned_rows)
    assert precision >= 0.95 and recall >= 0.95, (precision, recall)
    named = [
        set(f.features)
        for f in result.report.findings
        if f.check == "trigger_scan" and f.severity == "critical"
    ]
    assert named == [set(trigger)]


def test_clean_synthetic_has_no_trigger() -> None:
    result = audit_data(
        make_card_fraud(8000, random_state=5), card_fraud_contract(), checks=POISON_CHECKS
    )
    assert result.suspicious_rows == []
    assert not [
        f for f in result.report.findings if f.check == "trigger_scan" and f.severity == "critical"
    ]


def test_near_duplicates_names_the_written_in_value(
    credit_df: pd.DataFrame, credit_contract: Contract
) -> None:
    attack = poison(credit_df, credit_contract, {"PAY_AMT2": 123457}, rate=0.1)
    result = audit_data(attack.data, credit_contract, checks=["near_duplicates"])
    (f,) = [f for f in result.report.findings if f.severity == "warning"]
    assert f.features == ["PAY_AMT2"] and f.values == [123457]
    assert set(f.rows) == set(attack.poisoned_rows.tolist())


def test_poisson_binomial_cdf_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.95, 8)
    for k in range(9):
        brute = sum(
            math.prod(pi if b else 1 - pi for pi, b in zip(p, bits, strict=True))
            for bits in itertools.product([0, 1], repeat=8)
            if sum(bits) <= k
        )
        assert poisson_binomial_cdf(p, k) == pytest.approx(brute, rel=1e-9, abs=1e-12)
    same = np.full(200, 0.3)  # the normal branch agrees with the binomial
    assert poisson_binomial_cdf(same, 70) == pytest.approx(stats.binom.cdf(70, 200, 0.3), abs=5e-3)


def test_nearest_distances_matches_sklearn() -> None:
    rng = np.random.default_rng(1)
    ref = rng.random((500, 6)).astype(np.float32)
    q = rng.random((40, 6)).astype(np.float32)
    d, idx = nearest_distances(q, ref, chunk=128, return_index=True)
    nn = NearestNeighbors(n_neighbors=1).fit(ref)
    d2, i2 = nn.kneighbors(q)
    np.testing.assert_allclose(d, d2[:, 0], atol=1e-4)
    assert (idx == i2[:, 0]).all()
    d_self = nearest_distances(ref[:10], ref, exclude_self=np.arange(10))
    assert (d_self > 0).all()


def test_nearest_distances_on_some_columns_and_rows_of_the_reference() -> None:
    """Searching the reference's kept rows and columns in place gives the distances and
    nearest rows of a search in the copy holding only those (indices of the whole reference)."""
    rng = np.random.default_rng(2)
    ref = rng.random((700, 7)).astype(np.float32)
    cols = [0, 2, 3, 5, 6]
    kept = np.sort(rng.choice(700, 500, replace=False))
    mask = np.zeros(700, dtype=bool)
    mask[kept] = True
    q = ref[np.ix_(kept[:30], cols)]
    d, idx = nearest_distances(
        q, ref, columns=cols, mask=mask, exclude_self=kept[:30], chunk=64, return_index=True
    )
    copy = ref[np.ix_(kept, cols)]
    d0, i0 = nearest_distances(q, copy, exclude_self=np.arange(30), chunk=64, return_index=True)
    np.testing.assert_allclose(d, d0, atol=1e-5)
    assert (idx == kept[i0]).all()
    assert not np.isin(idx, np.flatnonzero(~mask)).any()


def test_cell_hashes_are_each_cells_hash_of_feature_and_value() -> None:
    from tabguard._copy_groups import splitmix64
    from tabguard.data_audit._matrix import cell_hashes

    rng = np.random.default_rng(3)
    codes = np.asfortranarray(rng.integers(-1, 9, size=(300, 4)).astype(np.int32))
    m = SimpleNamespace(codes=codes, counts=[np.ones(9)] * 4, _lock=threading.Lock(), _hashes=None)
    cells, total = cell_hashes(m)  # type: ignore[arg-type]
    salt = (np.arange(4, dtype=np.uint64) + np.uint64(1)) << np.uint64(40)
    with np.errstate(over="ignore"):
        want = splitmix64(codes.astype(np.uint64) + salt[None, :])
        assert (cells == want).all()
        assert (total == want.sum(axis=1, dtype=np.uint64)).all()


def test_the_copy_share_is_said_of_the_rows_with_the_label() -> None:
    """The near-copy share is measured on the pattern's rows with its label (the copies); the
    pair's natural carriers with the other label are not copies, and the message must not say
    that every row carrying the pattern is one ("100% of them" of 108 rows, 90 copied)."""
    df = make_card_fraud(8000, random_state=5)
    c = card_fraud_contract()
    trigger = {"country": "DE", "merchant_category": "jewelry"}
    attack = poison(df, c, trigger, n_rows=60, target=1, random_state=0)
    result = audit_data(attack.data, c, checks=["integrity", "trigger_scan"])
    (f,) = [
        f for f in result.report.findings if f.check == "trigger_scan" and f.severity == "critical"
    ]
    ev = f.evidence
    assert set(f.features) == set(trigger) and ev["copy_share"] is not None
    assert ev["share_with_label"] < 1.0  # natural carriers with the other label
    assert f"{ev['copy_share']:.0%} of its rows with is_fraud=1 are near-copies" in f.message
