"""Each decision rule of the rule evaluation, on counts chosen for it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tabguard.monitoring import _stats
from tabguard.monitoring._rules import MetricReader, evaluate_rules, rule_window
from tabguard.monitoring._rules_config import AlertingConfig, parse_alerting
from tabguard.monitoring._wording import describe
from tests.monitoring._fake_store import FakeStore
from tests.monitoring.conftest import seed_rule

T0 = datetime(2026, 1, 5, tzinfo=UTC)  # Monday
WEEK = timedelta(weeks=1)
AT = T0 + 3 * WEEK + timedelta(hours=18)  # evaluation time, week 4, Monday 18:00


def _config(rule: dict[str, Any] | None = None, **top: Any) -> AlertingConfig:
    return parse_alerting({"rules": [seed_rule(**(rule or {}))], **top})


def _weeks(store: FakeStore, seg: dict[str, str], n: int, deny: float, weeks: int = 4) -> None:
    for w in range(weeks):
        store.fill(T0 + w * WEEK, 24, seg, n, deny)


def _one(evs: list[Any], value: str) -> Any:
    (ev,) = [e for e in evs if e.segment[1] == value]
    return ev


def test_window_is_complete_buckets_before_the_evaluation_time() -> None:
    rule = _config().rules[0]
    start, end = rule_window(rule, AT + timedelta(minutes=40), timedelta(hours=1))
    assert (start, end) == (AT - timedelta(hours=6), AT)


def test_large_segment_drop_fires_and_names_the_segment() -> None:
    store = FakeStore()
    _weeks(store, {"channel": "online"}, 100, 0.2, weeks=3)
    store.fill(T0 + 3 * WEEK, 24, {"channel": "online"}, 100, 0.1)
    ev = _one(evaluate_rules(store, _config(), AT), "online")
    assert ev.fired and ev.segment == ("channel", "online")
    assert ev.value == pytest.approx(0.1) and ev.baseline == pytest.approx(0.2)
    assert ev.p_value is not None and ev.p_value < ev.alpha
    text = describe(ev, _config().rules[0])
    assert "denial rate 10.0% (60 of 600)" in text and "channel=online" in text
    assert "50% below 20.0% (120 of 600), the same 6 h last week" in text


def test_quiet_segment_same_relative_drop_does_not_fire() -> None:
    store = FakeStore()
    _weeks(store, {"channel": "partner"}, 10, 0.3, weeks=3)
    store.fill(T0 + 3 * WEEK, 24, {"channel": "partner"}, 10, 0.1)  # 30% -> 10%: 18 -> 6 of 60
    ev = _one(evaluate_rules(store, _config(), AT), "partner")
    assert ev.status == "not_significant"
    assert ev.p_value is not None and ev.p_value > ev.alpha


def test_below_min_volume_is_not_evaluated() -> None:
    store = FakeStore()
    _weeks(store, {"channel": "partner"}, 4, 0.5)
    ev = _one(evaluate_rules(store, _config(), AT), "partner")
    assert ev.status == "low_volume" and ev.p_value is None


def test_small_change_is_ok_even_when_significant() -> None:
    store = FakeStore()
    _weeks(store, {"channel": "online"}, 2000, 0.20, weeks=3)
    store.fill(T0 + 3 * WEEK, 24, {"channel": "online"}, 2000, 0.17)  # 15% below: under 20%
    assert _one(evaluate_rules(store, _config(), AT), "online").status == "ok"


def test_rise_does_not_fire_a_below_rule_but_fires_either() -> None:
    store = FakeStore()
    _weeks(store, {"channel": "online"}, 100, 0.1, weeks=3)
    store.fill(T0 + 3 * WEEK, 24, {"channel": "online"}, 100, 0.3)
    assert _one(evaluate_rules(store, _config(), AT), "online").status == "ok"
    either = _config({"direction": "either"})
    assert _one(evaluate_rules(store, either, AT), "online").fired


def test_holiday_last_week_is_skipped_for_an_earlier_week() -> None:
    store = FakeStore()
    _weeks(store, {"channel": "online"}, 100, 0.2)
    holiday = (AT - WEEK).date()
    # last week's day was a holiday with a very different denial rate
    store.rows = [r for r in store.rows if r["bucket"].date() != holiday]
    store.fill(
        datetime(holiday.year, holiday.month, holiday.day, tzinfo=UTC),
        24,
        {"channel": "online"},
        100,
        0.5,
    )
    plain = _one(evaluate_rules(store, _config(), AT), "online")
    # 20% vs the holiday's 50%: past the threshold, but the undeclared holiday also makes the
    # segment's weeks look volatile (dispersion), which keeps this false alert quiet
    assert plain.status == "not_significant" and plain.dispersion > 5
    now, base = plain.current, plain.baseline_obs
    binomial_p = _stats.rate_change_p(now.k, now.n, base.k, base.n, "below")
    assert binomial_p < plain.alpha  # a binomial test alone would have paged
    cal = _config(calendar={"holidays": [holiday.isoformat()]})
    ev = _one(evaluate_rules(store, cal, AT), "online")
    assert ev.status == "ok" and ev.weeks == (2,)


def test_current_window_on_a_holiday_is_excluded() -> None:
    store = FakeStore()
    _weeks(store, {"channel": "online"}, 100, 0.2)
    cal = _config(calendar={"holidays": [AT.date().isoformat()]})
    ev = _one(evaluate_rules(store, cal, AT), "online")
    assert ev.status == "excluded" and "holiday" in ev.note


def test_median_of_weeks_ignores_one_odd_week() -> None:
    store = FakeStore()
    for w, deny in enumerate([0.2, 0.21, 0.5]):  # week 3 (1 week ago) is odd
        store.fill(T0 + w * WEEK, 24, {"channel": "online"}, 100, deny)
    store.fill(T0 + 3 * WEEK, 24, {"channel": "online"}, 100, 0.2)
    last_week = _one(evaluate_rules(store, _config(), AT), "online")
    assert last_week.status == "not_significant" and last_week.dispersion > 5
    median = _config({"baseline": {"median_of_weeks": 3}})
    ev = _one(evaluate_rules(store, median, AT), "online")
    assert ev.status == "ok" and ev.baseline == pytest.approx(0.21) and ev.weeks == (1, 2, 3)


def test_no_history_means_no_baseline() -> None:
    store = FakeStore()
    store.fill(T0 + 3 * WEEK, 24, {"channel": "online"}, 100, 0.1)
    ev = _one(evaluate_rules(store, _config(), AT), "online")
    assert ev.status == "no_baseline"


def _started_at(first: datetime, deny_before: float) -> FakeStore:
    """A store whose history begins at ``first`` (before ``AT``'s week), denying
    ``deny_before`` until the current week and 10 % in it: a 6 h window at 10 % against a
    baseline that holds only the store's first hours at another time of day's rate."""
    store = FakeStore()
    store.fill(first, int((T0 + 3 * WEEK - first) / timedelta(hours=1)), {"channel": "online"},
               100, deny_before)  # fmt: skip
    store.fill(T0 + 3 * WEEK, 24, {"channel": "online"}, 100, 0.1)
    return store


def test_baseline_window_straddling_the_first_bucket_is_no_baseline() -> None:
    # AT's window is Monday 12:00-18:00; last week's starts 2 h before the store's first bucket:
    # 400 requests at 30 % would pass min_volume and fire a 67 % drop.
    store = _started_at(T0 + 2 * WEEK + timedelta(hours=14), 0.3)
    ev = _one(evaluate_rules(store, _config(), AT), "online")
    assert ev.status == "no_baseline" and ev.baseline is None and ev.weeks == ()
    assert "before the store's first bucket (2026-01-19 14:00 UTC)" in ev.note
    assert "history too short" in describe(ev, _config().rules[0])


def test_baseline_window_starting_at_the_first_bucket_is_used() -> None:
    store = _started_at(T0 + 2 * WEEK + timedelta(hours=12), 0.3)
    for view in (store, store.with_counts(T0, AT, ["sd"])):  # frozen history, a live pass
        ev = _one(evaluate_rules(view, _config(), AT), "online")
        assert ev.fired and ev.weeks == (1,) and ev.baseline == pytest.approx(0.3)


def test_reader_kept_across_passes_sees_a_late_row_move_the_first_bucket_back() -> None:
    # Replay and the simulator keep one reader across passes. A late row (a replayed spool)
    # lands 2 h before the store's first bucket, so last week's window is whole now: the
    # next pass must see the new first bucket, not the one its reader asked for before.
    store = _started_at(T0 + 2 * WEEK + timedelta(hours=14), 0.3)
    reader = MetricReader(store)
    ev = _one(evaluate_rules(store, _config(), AT, reader=reader), "online")
    assert ev.status == "no_baseline" and "(2026-01-19 14:00 UTC)" in ev.note
    store.fill(T0 + 2 * WEEK + timedelta(hours=12), 2, {"channel": "online"}, 100, 0.3)
    ev = _one(evaluate_rules(store, _config(), AT, reader=reader), "online")
    assert ev.fired and ev.weeks == (1,) and ev.baseline == pytest.approx(0.3)


def test_reader_asks_the_first_bucket_once_per_pass() -> None:
    store = _started_at(T0 + 2 * WEEK + timedelta(hours=12), 0.3)
    asked: list[datetime | None] = []
    first_bucket = store.first_bucket

    def counted() -> datetime | None:
        asked.append(first_bucket())
        return asked[-1]

    store.first_bucket = counted  # type: ignore[method-assign]
    reader = MetricReader(store)
    two_rules = parse_alerting({"rules": [seed_rule(), seed_rule(name="again")]})
    for hours in (0, 1):
        evaluate_rules(store, two_rules, AT + timedelta(hours=hours), reader=reader)
    assert asked == [T0 + 2 * WEEK + timedelta(hours=12)] * 2


def test_median_of_weeks_skips_the_week_before_the_first_bucket() -> None:
    # Weeks 1 and 2 back are whole; week 3 back's window (Monday 12:00-18:00) starts 2 h
    # before the store's first bucket, and its 4 h at 50 % would be the median's third week;
    # weeks 4 and 5 (extra_weeks) lie before the store entirely.
    store = FakeStore()
    store.fill(T0 + timedelta(hours=14), 10, {"channel": "online"}, 100, 0.5)
    for w, deny in ((1, 0.2), (2, 0.21), (3, 0.2)):
        store.fill(T0 + w * WEEK, 24, {"channel": "online"}, 100, deny)
    median = _config({"baseline": {"median_of_weeks": 3}})
    ev = _one(evaluate_rules(store, median, AT), "online")
    assert ev.status == "ok" and ev.weeks == (1, 2) and ev.baseline == pytest.approx(0.205)
    strict = _config({"baseline": {"median_of_weeks": 3, "min_weeks": 3}})
    ev = _one(evaluate_rules(store, strict, AT), "online")
    assert ev.status == "no_baseline" and "weeks 3-5 back start before" in ev.note


def test_bonferroni_divides_alpha_by_segments_tested() -> None:
    store = FakeStore()
    for ch in ("a", "b", "c", "d"):
        _weeks(store, {"channel": ch}, 100, 0.2)
    evs = evaluate_rules(store, _config(), AT)
    assert len(evs) == 4 and all(e.alpha == pytest.approx(0.0001 / 4) for e in evs)


def test_volume_rule_uses_poisson_counts() -> None:
    store = FakeStore()
    _weeks(store, {"channel": "online"}, 100, 0.2, weeks=3)
    store.fill(T0 + 3 * WEEK, 24, {"channel": "online"}, 40, 0.2)
    cfg = _config({"metric": "volume", "decision": None})
    ev = _one(evaluate_rules(store, cfg, AT), "online")
    assert ev.fired and ev.value == 240 and ev.baseline == 600


def test_absolute_threshold_without_baseline() -> None:
    store = FakeStore()
    store.fill(T0 + 3 * WEEK, 24, {"channel": "online"}, 100, 0.45)
    cfg = _config({"baseline": None, "change": None, "threshold": 0.3, "direction": "above"})
    ev = _one(evaluate_rules(store, cfg, AT), "online")
    assert ev.fired and ev.baseline is None
    assert "is above 30.0%" in describe(ev, cfg.rules[0])


def test_probing_count_rule() -> None:
    store = FakeStore()
    _weeks(store, {"channel": "online"}, 100, 0.2)
    for h in range(6):
        store.add(AT - timedelta(hours=h + 1), {"channel": "online"}, None, 20, status="probing")
    cfg = _config(
        {
            "metric": "probing_count",
            "decision": None,
            "baseline": None,
            "change": None,
            "threshold": 5,
            "direction": "above",
        }
    )
    assert _one(evaluate_rules(store, cfg, AT), "online").fired


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 60),
    k_now=st.floats(0, 1),
    k_base=st.floats(0, 1),
    min_volume=st.integers(1, 80),
)
def test_property_fired_means_volume_threshold_and_significance(
    n: int, k_now: float, k_base: float, min_volume: int
) -> None:
    store = FakeStore()
    store.fill(T0 + 2 * WEEK, 24, {"channel": "x"}, n, k_base)
    store.fill(T0 + 3 * WEEK, 24, {"channel": "x"}, n, k_now)
    # a short CUSUM keeps 60 examples fast; its rule is tested in test_dispersion.py
    cfg = _config({"min_volume": min_volume, "alpha": 0.01}, evaluation={"sequential_hours": 6})
    ev = _one(evaluate_rules(store, cfg, AT), "x")
    if ev.fired:
        assert ev.current.n >= min_volume
        assert ev.value < 0.8 * ev.baseline
        assert ev.p_value is not None and (ev.p_value < 0.01 or ev.by_cusum)
    if 6 * n < min_volume:
        assert ev.status == "low_volume"


class _DriftStore(FakeStore):
    """The fake store plus a drift frame: PSI 0.35 on channel=online from T0 + 3 weeks."""

    def drift(self, start: datetime, end: datetime, reference: Any, **kw: Any) -> Any:
        import pandas as pd

        assert reference == "REF" and kw["column"] == "AGE" and kw["kind"] == "raw"
        psi = 0.35 if start >= T0 + 3 * WEEK else 0.02
        return pd.DataFrame({"segment_key": ["channel"], "segment_value": ["online"],
                             "kind": ["raw"], "column": ["AGE"], "n": [500],
                             "psi": [psi], "js": [0.1]})  # fmt: skip


def test_drift_rule_against_the_reference() -> None:
    from tabguard.monitoring import Alerting, MonitorConfigError

    rule = {"metric": "drift", "decision": None, "column": "AGE", "kind": "raw", "stat": "psi",
            "baseline": None, "change": None, "threshold": 0.2, "direction": "above"}  # fmt: skip
    cfg = _config(rule)
    store = _DriftStore()
    assert _one(evaluate_rules(store, cfg, AT, reference="REF"), "online").fired
    assert _one(evaluate_rules(store, cfg, AT - WEEK, reference="REF"), "online").status == "ok"
    with pytest.raises(MonitorConfigError, match=r"rules\[drop\]\.metric: drift compares"):
        Alerting(store, cfg)  # no reference: said at once, not silently never evaluated
    assert Alerting(store, cfg, reference="REF").step(AT).opened
