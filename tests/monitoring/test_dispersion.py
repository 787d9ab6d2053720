"""The two decision rules that make a rate rule honest about real traffic, on hand-built counts.

* dispersion: a segment whose rate varies between weeks more than binomial counts needs more
  evidence (quasi-binomial estimate from the baseline weeks, shrunk towards 1);
* the CUSUM: a change too small for one window's test fires once its hourly evidence reaches
  ``log(m / alpha)``, and not one hour before.

The evaluation time is passed in (no clock is read), and every count is stated by the test.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from tabguard.monitoring import _stats
from tabguard.monitoring._rules import evaluate_rules
from tabguard.monitoring._rules_config import AlertingConfig, parse_alerting
from tabguard.monitoring._wording import describe
from tests.monitoring._fake_store import FakeStore
from tests.monitoring.conftest import seed_rule

T0 = datetime(2026, 1, 5, tzinfo=UTC)  # Monday
WEEK = timedelta(weeks=1)
HOUR = timedelta(hours=1)
AT = T0 + 3 * WEEK + timedelta(hours=18)  # week 4, Monday 18:00


def _config(calendar: dict[str, Any] | None = None, **evaluation: Any) -> AlertingConfig:
    rules = [seed_rule()]
    return parse_alerting({"rules": rules, "evaluation": evaluation, "calendar": calendar or {}})


def _online(evs: list[Any]) -> Any:
    (ev,) = [e for e in evs if e.segment == ("channel", "online")]
    return ev


# --------------------------------------------------------------------------------------------
# Dispersion


def test_dispersion_of_steady_weeks_is_one() -> None:
    phi, df = _stats.dispersion([[20, 20, 20]], [[100, 100, 100]], prior_df=4)
    assert (phi, df) == (1.0, 2)  # (0 + 4) / (2 + 4) < 1: never below the binomial value


def test_dispersion_is_pearson_over_df_shrunk_towards_one() -> None:
    # p = 0.2, n p (1-p) = 16: chi2 = (10^2 + 0 + 10^2) / 16 = 12.5 on 2 df
    phi, df = _stats.dispersion([[10, 20, 30]], [[100, 100, 100]], prior_df=4)
    assert df == 2 and phi == pytest.approx((12.5 + 4) / (2 + 4))
    # the same spread in four cells: 8 df speak louder against the same prior
    phi4, df4 = _stats.dispersion([[10, 20, 30]] * 4, [[100, 100, 100]] * 4, prior_df=4)
    assert df4 == 8 and phi4 == pytest.approx((50 + 4) / (8 + 4))
    assert phi4 > phi


def test_dispersion_leaves_out_thin_weeks() -> None:
    phi, df = _stats.dispersion([[10, 20, 0]], [[100, 100, 5]], prior_df=4, min_n=30)
    # weeks 1-2 only: p = 0.15, chi2 = (5^2 + 5^2) / 12.75 on 1 df
    assert df == 1 and phi == pytest.approx((50 / 12.75 + 4) / (1 + 4))
    assert _stats.dispersion([[10]], [[100]], prior_df=4) == (1.0, 0)  # one week: no estimate


def test_rate_test_divides_the_counts_by_the_dispersion() -> None:
    p = _stats.rate_change_p(60, 600, 120, 600, "below", dispersion=2.0)
    expected = sps.fisher_exact([[30, 270], [60, 240]], alternative="less").pvalue
    assert p == pytest.approx(expected)
    assert _stats.rate_change_p(60, 600, 120, 600, "below") < p


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.lists(st.tuples(st.integers(0, 200), st.integers(1, 200)), min_size=1, max_size=6),
        min_size=1,
        max_size=4,
    ),
    prior=st.floats(0.5, 50),
)
def test_property_dispersion_at_least_one_and_order_free(
    rows: list[list[tuple[int, int]]], prior: float
) -> None:
    k = [[min(a, b) for a, b in r] for r in rows]
    n = [[b for _, b in r] for r in rows]
    width = min(len(r) for r in k)
    k, n = [r[:width] for r in k], [r[:width] for r in n]
    phi, df = _stats.dispersion(k, n, prior_df=prior)
    assert phi >= 1.0 and df <= len(k) * (width - 1)
    rev = _stats.dispersion([r[::-1] for r in k], [r[::-1] for r in n], prior_df=prior)
    assert rev[0] == pytest.approx(phi) and rev[1] == df


def _history(store: FakeStore, deny_by_week: list[float], n: int = 100) -> None:
    for w, deny in enumerate(deny_by_week):
        store.fill(T0 + w * WEEK, 24, {"channel": "online"}, n, deny)


def test_dispersed_segment_needs_more_evidence_at_the_threshold() -> None:
    # Current: 11% (66 of 600) against 20% a week ago. Binomial weeks make it significant;
    # weeks that swing between 14% and 26% (the same last week) make the same counts ordinary.
    steady, swinging = FakeStore(), FakeStore()
    _history(steady, [0.2, 0.2, 0.2])
    _history(swinging, [0.26, 0.14, 0.2])
    for s in (steady, swinging):
        s.fill(T0 + 3 * WEEK, 24, {"channel": "online"}, 100, 0.11)
    cfg = _config(sequential_hours=0)
    plain = _online(evaluate_rules(steady, cfg, AT))
    dispersed = _online(evaluate_rules(swinging, cfg, AT))
    assert plain.fired and plain.dispersion == 1.0
    assert plain.p_value is not None and plain.p_value < plain.alpha
    # weeks 1..3 at 20/14/26 %: per 6 h cell chi2 = (36^2 + 36^2) / 96 = 27, on 2 df in the
    # three cells of Monday 00-18 h, and on 1 df in the cell of the week before that reaches
    # back to the Mondays 18-24 h of the two oldest weeks (14 % and 26 %)
    assert dispersed.dispersion == pytest.approx((4 * 27 + 4) / (7 + 4))
    assert dispersed.status == "not_significant"
    assert dispersed.p_value == pytest.approx(
        _stats.rate_change_p(66, 600, 120, 600, "below", dispersion=dispersed.dispersion)
    )
    assert dispersed.p_value > dispersed.alpha
    assert "dispersion 10.18" in describe(dispersed, cfg.rules[0])


def test_declared_holiday_week_is_left_out_of_the_dispersion() -> None:
    store = FakeStore()
    _history(store, [0.2, 0.5, 0.2])  # week 2 (two weeks ago) is a holiday with odd rates
    store.fill(T0 + 3 * WEEK, 24, {"channel": "online"}, 100, 0.2)
    holiday = (AT - 2 * WEEK).date().isoformat()
    odd = _online(evaluate_rules(store, _config(), AT))
    declared = _online(evaluate_rules(store, _config({"holidays": [holiday]}), AT))
    assert odd.dispersion > 5  # an undeclared odd week reads as a volatile segment
    assert declared.dispersion == 1.0


# --------------------------------------------------------------------------------------------
# CUSUM


def test_cusum_increment_is_the_log_likelihood_ratio() -> None:
    run = _stats.rate_cusum([10], [100], [0.2], [0.16])
    assert run.stat == pytest.approx(10 * math.log(0.8) + 90 * math.log(0.84 / 0.8))
    assert (run.buckets, run.k, run.n) == (1, 10, 100) and run.baseline == pytest.approx(0.2)


def test_cusum_restarts_at_zero() -> None:
    # hour 1 at the baseline rate drives it to zero; the run is hour 2 alone
    run = _stats.rate_cusum([20, 10], [100, 100], [0.2, 0.2], [0.16, 0.16])
    assert run.buckets == 1 and run.k == 10 and run.n == 100


@settings(max_examples=60, deadline=None)
@given(
    hours=st.lists(st.tuples(st.integers(0, 50), st.integers(1, 50)), min_size=1, max_size=30),
    scale=st.floats(1.0, 10.0),
)
def test_property_cusum_scales_and_never_negative(
    hours: list[tuple[int, int]], scale: float
) -> None:
    k = [min(a, b) for a, b in hours]
    n = [b for _, b in hours]
    p0, p1 = [0.3] * len(k), [0.24] * len(k)
    one = _stats.rate_cusum(k, n, p0, p1)
    scaled = _stats.rate_cusum(k, n, p0, p1, scale=scale)
    assert one.stat >= 0 and scaled.stat == pytest.approx(one.stat / scale, abs=1e-9)


def _drop_for(hours: int) -> FakeStore:
    """40 decided requests an hour at 30 % denials since T0, 22.5 % (9 of 40) for the last
    ``hours`` before AT: 25 % below, too little for any one 6 h window at alpha 1e-4."""
    store = FakeStore()
    store.fill(T0, int((AT - T0) / HOUR) - hours, {"channel": "online"}, 40, 0.3)
    store.fill(AT - hours * HOUR, hours, {"channel": "online"}, 40, 9 / 40)
    return store


# Each hour at 9 of 40 against p0 = 0.3, p1 = 0.24, divided by 2 (one baseline week):
PER_HOUR = (9 * math.log(0.24 / 0.3) + 31 * math.log(0.76 / 0.7)) / 2
LIMIT = math.log(1 / 1e-4)  # one segment tested: alpha / 1
HOURS_AT_LIMIT = math.ceil(LIMIT / PER_HOUR)  # 35


def test_cusum_fires_at_its_limit_and_not_one_hour_before() -> None:
    cfg = _config()
    before = _online(evaluate_rules(_drop_for(HOURS_AT_LIMIT - 1), cfg, AT))
    at_limit = _online(evaluate_rules(_drop_for(HOURS_AT_LIMIT), cfg, AT))
    assert before.cusum == pytest.approx((HOURS_AT_LIMIT - 1) * PER_HOUR)
    assert before.cusum < before.cusum_limit == pytest.approx(LIMIT)
    assert before.status == "not_significant"  # the window's own test: p ~ 0.04
    assert at_limit.cusum == pytest.approx(HOURS_AT_LIMIT * PER_HOUR)
    assert at_limit.cusum >= LIMIT
    assert at_limit.fired and at_limit.by_cusum
    assert at_limit.p_value is not None and at_limit.p_value > at_limit.alpha
    run = at_limit.cusum_run
    assert run is not None and (run.buckets, run.k, run.n) == (HOURS_AT_LIMIT, 315, 1400)
    text = describe(at_limit, cfg.rules[0])
    stat = f"{HOURS_AT_LIMIT * PER_HOUR:.1f}"
    assert f"CUSUM {stat} >= 9.2: 22.5% (315 of 1,400) against 30.0%" in text


def test_cusum_needs_the_run_to_cross_the_rule_threshold() -> None:
    # 15 % below for two days at 2,000 an hour: overwhelming evidence of a change the rule
    # (20 %) does not ask about
    store = FakeStore()
    store.fill(T0, int((AT - T0) / HOUR) - 48, {"channel": "online"}, 2000, 0.2)
    store.fill(AT - 48 * HOUR, 48, {"channel": "online"}, 2000, 0.17)
    ev = _online(evaluate_rules(store, _config(), AT))
    assert ev.cusum is not None and ev.cusum > 10 * (ev.cusum_limit or 0)
    assert not ev.by_cusum and ev.status == "ok"


def test_sequential_hours_zero_turns_the_cusum_off() -> None:
    ev = _online(evaluate_rules(_drop_for(48), _config(sequential_hours=0), AT))
    assert ev.cusum == 0.0 and not ev.fired
