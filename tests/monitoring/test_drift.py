"""Drift against the training reference: the reference itself, PSI/JS rules, windows from the
store, and the model directory's reference.json."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tabguard.contract import Contract, FeatureTransform, TransformOptions
from tabguard.errors import DataError
from tabguard.monitoring import ALL, MonitorConfig, open_monitor_store
from tabguard.monitoring._aggregate import MonitorPlan
from tabguard.monitoring._compare import compare_windows
from tabguard.monitoring._drift import (
    DriftReference,
    category_reference,
    drift_row,
    js_distance,
    numeric_reference,
    psi,
    smoothed,
)
from tabguard.monitoring._update import update
from tabguard.monitoring._window import Window
from tests.monitoring.test_update import T0, make_records, write

H = timedelta(hours=1)


def test_numeric_reference_uses_deciles_or_values() -> None:
    rng = np.random.default_rng(0)
    cont = numeric_reference("raw", "x", rng.normal(size=10_000), bins=10)
    assert len(cont.edges) == 9 and np.allclose(cont.shares, 0.1, atol=0.01)
    discrete = numeric_reference("raw", "pay", rng.integers(-2, 9, size=5000), bins=10)
    assert discrete.edges == tuple(v + 0.5 for v in range(-2, 8))  # one bin per value
    assert sum(discrete.shares) == pytest.approx(1.0)


def test_category_reference_counts_others() -> None:
    ref = category_reference("raw", "EDU", [1, 2, 2, "9", None], [1, 2, 3])
    assert ref.labels == ("1", "2", "3", "other")
    assert ref.shares == pytest.approx((0.25, 0.5, 0.0, 0.25))
    assert ref.n == 4


def test_psi_and_js_rules() -> None:
    r = smoothed(np.array([0.25, 0.25, 0.25, 0.25]), 10_000)
    assert psi(r, r) == 0.0 and js_distance(r, r) == 0.0
    w = smoothed(np.array([0.7, 0.1, 0.1, 0.1]), 10_000)
    assert psi(w, r) > 0.25  # a large shift by the usual reading
    assert 0 < js_distance(w, r) < 1
    disjoint = js_distance(np.array([1.0, 1e-12]), np.array([1e-12, 1.0]))
    assert disjoint == pytest.approx(1.0, abs=1e-6)


def test_small_windows_report_no_drift() -> None:
    ref = numeric_reference("raw", "x", np.arange(1000.0), bins=10)
    assert all(np.isnan(drift_row(ref, np.full(10, 0.1), 10, min_rows=50)))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=2, max_size=12), st.integers(1, 10**6))
def test_psi_is_never_negative(weights: list[float], n: int) -> None:
    w = np.asarray(weights) + 1e-9
    w = smoothed(w / w.sum(), n)
    r = smoothed(np.full(len(weights), 1.0 / len(weights)), 1000)
    assert psi(w, r) >= 0 and 0 <= js_distance(w, r) <= 1


def test_reference_round_trip(tmp_path: Path, credit_contract: Contract) -> None:
    from tabguard.datasets import load_credit_default

    df = load_credit_default().head(2000)
    transform = FeatureTransform(credit_contract, TransformOptions(bins=("AGE",)))
    ref = DriftReference.from_frame(df, credit_contract, transform)
    assert ("raw", "SEX") in ref.columns and ("feature", "SEX") not in ref.columns
    assert ref.columns[("feature", "EDUCATION")].labels[-1] == "other"
    back = DriftReference.load(ref.save(tmp_path / "ref.json"))
    assert back.columns == ref.columns
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    with pytest.raises(DataError, match="not a tabguard drift reference"):
        DriftReference.load(tmp_path / "bad.json")


def test_store_drift_sees_a_shift_and_not_the_same_data(
    tmp_path: Path, credit_contract: Contract
) -> None:
    from tabguard.datasets import load_credit_default

    df = load_credit_default()
    train, live = df.iloc[:10_000], df.iloc[10_000:12_400].reset_index(drop=True)
    features = [n for n in credit_contract.features if n != "SEX"]
    ref = DriftReference.from_frame(
        train, credit_contract, FeatureTransform(credit_contract, TransformOptions())
    )
    shifted = live.copy()
    shifted.loc[1200:, "LIMIT_BAL"] = shifted.loc[1200:, "LIMIT_BAL"] * 3  # hours 20-39
    shifted.loc[1200:, "EDUCATION"] = 1
    log = f"sqlite:///{tmp_path / 'log.db'}"
    write(log, tmp_path / "spool", make_records(shifted, step=timedelta(minutes=1)))
    cfg = MonitorConfig(log=log, store=f"sqlite:///{tmp_path / 'mon.db'}")
    update(cfg, plan=MonitorPlan.from_contract(credit_contract, cfg.aggregation, features))
    with open_monitor_store(cfg.store_url()) as store:
        clean = store.drift(T0, T0 + 20 * H, ref, segment=ALL)
        moved = store.drift(T0 + 20 * H, T0 + 40 * H, ref, segment=ALL)
        both = clean.merge(moved, on=["kind", "column"], suffixes=("_clean", "_moved"))
        lim = both[(both.kind == "raw") & (both.column == "LIMIT_BAL")].iloc[0]
        assert lim.psi_clean < 0.05 and lim.psi_moved > 0.5
        edu = both[(both.kind == "feature") & (both.column == "EDUCATION")].iloc[0]
        assert edu.psi_clean < 0.05 and edu.psi_moved > 0.5 and edu.js_moved > edu.js_clean
        stable = both[~both.column.isin(["LIMIT_BAL", "EDUCATION", "AGE"])]
        assert (stable.psi_moved < 0.1).all()  # the other columns did not move
        per_segment = store.drift(T0 + 20 * H, T0 + 40 * H, ref, column="LIMIT_BAL", kind="raw")
        assert set(per_segment.segment_key) >= {"all", "EDUCATION", "MARRIAGE"}
        table = compare_windows(
            store, Window(T0 + 20 * H, T0 + 40 * H), Window(T0, T0 + 20 * H), reference=ref
        ).table
        row = table[table.metric == "raw LIMIT_BAL PSI"].iloc[0]
        assert row.section == "drift" and row.now > 0.5 > row.before
