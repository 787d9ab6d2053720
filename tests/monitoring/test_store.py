"""The bucket store, on every backend: merge, watermark guard, window queries, the one updater."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from tabguard.monitoring import (
    ALL,
    Delta,
    SqlMonitorStore,
    StoreStateError,
    UpdaterBusyError,
    WatermarkMovedError,
    open_monitor_store,
)
from tabguard.monitoring._rules_config import parse_alerting
from tabguard.monitoring._store import F_GUARD, F_STATUS_DECISION, bucket_key
from tabguard.storage import StoreURLError

H = timedelta(hours=1)
T0 = datetime(2026, 2, 2, tzinfo=UTC)  # a Monday


def _delta(hour: int, *, deny: int, approve: int, values: np.ndarray, seg: str = "online") -> Delta:
    d = Delta()
    b = bucket_key(T0 + hour * H, H)
    for sk, sv in (ALL, ("channel", seg)):
        d.count((b, sk, sv, F_STATUS_DECISION, "accepted|deny"), deny)
        d.count((b, sk, sv, F_STATUS_DECISION, "accepted|approve"), approve)
        d.count((b, sk, sv, F_STATUS_DECISION, "rejected_validation|"), 1)
        d.count((b, sk, sv, F_GUARD, "sanitise|clip|AGE"), 2)
        d.add_values((b, sk, sv, "raw", "AGE"), values, rows=len(values) + 1, missing=1, invalid=0)
    return d


def test_merge_and_window_counts(store: SqlMonitorStore) -> None:
    wm = None
    for hour in range(6):
        d = _delta(hour, deny=hour, approve=10, values=np.arange(10.0) + hour)
        store.merge(d, watermark={"seq": hour + 1}, expected=wm)
        wm = {"seq": hour + 1}
    counts = store.decision_counts(T0, T0 + 6 * H, segment=("channel", "online"))
    deny = counts[(counts.status == "accepted") & (counts.decision == "deny")]["n"].item()
    assert deny == sum(range(6))
    refused = counts[counts.status == "rejected_validation"]
    assert refused["decision"].isna().all() and refused["n"].item() == 6
    vol = store.volume(T0, T0 + 6 * H)
    assert set(vol["segment_key"]) == {"all", "channel"}
    assert vol.loc[vol.segment_key == "all", "n"].item() == 6 * 10 + sum(range(6)) + 6
    guards = store.guard_action_counts(T0, T0 + 2 * H)
    row = guards[(guards.segment_key == "all") & (guards.action == "clip")]
    assert row["column"].item() == "AGE" and row["n"].item() == 4
    assert row["n_requests"].item() == 2 * 10 + 1 + 2


def test_percentiles_merge_buckets(store: SqlMonitorStore) -> None:
    rng = np.random.default_rng(0)
    parts = [rng.normal(40, 10, size=300) for _ in range(3)]
    wm = None
    for hour, values in enumerate(parts):
        store.merge(_delta(hour, deny=1, approve=1, values=values), watermark=hour, expected=wm)
        wm = hour
    pct = store.percentiles(T0, T0 + 3 * H, column="AGE", kind="raw", segment=ALL)
    exact = np.quantile(np.concatenate(parts), [0.01, 0.1, 0.5, 0.9, 0.99])
    assert pct["n"].unique().tolist() == [900]
    assert np.allclose(pct["value"].to_numpy(), exact, atol=2.0)
    summary = store.numeric_summary(T0, T0 + 3 * H, column="AGE", kind="raw", segment=ALL)
    assert summary["rows"].item() == 903
    assert summary["missing_rate"].item() == pytest.approx(3 / 903)
    assert summary["mean"].item() == pytest.approx(np.concatenate(parts).mean())


def test_late_rows_merge_into_an_existing_bucket(store: SqlMonitorStore) -> None:
    store.merge(
        _delta(0, deny=1, approve=1, values=np.array([1.0, 2.0])), watermark=1, expected=None
    )
    store.merge(_delta(0, deny=2, approve=0, values=np.array([100.0])), watermark=2, expected=1)
    pct = store.percentiles(T0, T0 + H, column="AGE", kind="raw", q=[0.0, 1.0], segment=ALL)
    assert pct["value"].tolist() == [1.0, 100.0] and pct["n"].iloc[0] == 3
    series = store.series(T0, T0 + H, column="AGE", kind="raw", segment=ALL)
    assert series["n"].item() == 3 and series["vmax"].item() == 100.0
    counts = store.decision_counts(T0, T0 + H, segment=ALL)
    assert counts.loc[counts.decision == "deny", "n"].item() == 3


def test_stale_watermark_writes_nothing(store: SqlMonitorStore) -> None:
    store.merge(_delta(0, deny=1, approve=0, values=np.array([1.0])), watermark=5, expected=None)
    with pytest.raises(WatermarkMovedError, match="two updaters"):
        store.merge(_delta(0, deny=1, approve=0, values=np.array([1.0])), watermark=9, expected=3)
    counts = store.decision_counts(T0, T0 + H, segment=ALL)
    assert counts.loc[counts.decision == "deny", "n"].item() == 1
    assert store.watermark() == 5


def test_windows_must_be_bucket_aligned(store: SqlMonitorStore) -> None:
    with pytest.raises(ValueError, match="bucket boundary"):
        store.volume(T0 + timedelta(minutes=30), T0 + 2 * H)


def test_latest_is_the_bucket_of_the_newest_record(store: SqlMonitorStore) -> None:
    assert store.latest() is None
    store.set_state("max_timestamp", int((T0 + timedelta(hours=5, minutes=10)).timestamp()))
    assert store.latest() == T0 + 5 * H


def test_first_bucket_bounds_the_baselines_a_rule_uses(store: SqlMonitorStore) -> None:
    """The store's history begins Monday 14:00; at the next Monday 18:00 "the same 6 h last
    week" (12:00-18:00) holds 4 h: no baseline, on the live pass's view and on the store. A
    late row at 12:00 moves the first bucket back, and the week becomes a baseline."""
    from tabguard.monitoring._rules import evaluate_rules
    from tests.monitoring.conftest import seed_rule

    assert store.first_bucket() is None
    d = Delta()
    for hour in range(14, 7 * 24 + 24):
        deny = 30 if hour < 7 * 24 else 10
        for seg in (ALL, ("channel", "online")):
            d.count((bucket_key(T0 + hour * H, H), *seg, F_STATUS_DECISION, "accepted|deny"), deny)
            d.count((bucket_key(T0 + hour * H, H), *seg, F_STATUS_DECISION, "accepted|approve"),
                    100 - deny)  # fmt: skip
    store.merge(d, watermark={"seq": 1}, expected=None)
    assert store.first_bucket() == T0 + 14 * H
    config = parse_alerting({"rules": [seed_rule()]})
    at = T0 + 7 * 24 * H + 18 * H
    (ev,) = [e for e in evaluate_rules(store, config, at) if e.segment == ("channel", "online")]
    assert ev.status == "no_baseline" and "(2026-02-02 14:00 UTC)" in ev.note
    late = Delta()
    for seg in (ALL, ("channel", "online")):
        late.count((bucket_key(T0 + 12 * H, H), *seg, F_STATUS_DECISION, "accepted|deny"), 30)
        late.count((bucket_key(T0 + 12 * H, H), *seg, F_STATUS_DECISION, "accepted|approve"), 70)
    store.merge(late, watermark={"seq": 2}, expected={"seq": 1})
    assert store.first_bucket() == T0 + 12 * H
    (ev,) = [e for e in evaluate_rules(store, config, at) if e.segment == ("channel", "online")]
    assert ev.fired and ev.weeks == (1,)


def test_bucket_length_is_fixed_per_store(store_url: str) -> None:
    if store_url == "memory://":
        pytest.skip("a memory store is private to its instance")
    open_monitor_store(store_url, bucket=timedelta(minutes=15)).close()
    with pytest.raises(StoreStateError, match="0:15:00 buckets") as err:
        open_monitor_store(store_url, bucket=H)
    # The fix offered must be one that works: a reset keeps the bucket length.
    assert "new store" in str(err.value) and "--reset keeps" in str(err.value).replace("`", "")
    assert open_monitor_store(store_url).bucket == timedelta(minutes=15)


def test_one_updater_at_a_time(store_url: str) -> None:
    a = open_monitor_store(store_url)
    b = a if store_url == "memory://" else open_monitor_store(store_url)
    with (
        a.updater_lock(),
        pytest.raises(UpdaterBusyError, match="another updater"),
        b.updater_lock(),
    ):
        pass
    with b.updater_lock():  # released
        pass


def test_reset_keeps_only_the_bucket_length(store: SqlMonitorStore) -> None:
    store.merge(_delta(0, deny=1, approve=0, values=np.array([1.0])), watermark=5, expected=None)
    store.reset()
    assert store.watermark() is None
    assert store.volume(T0, T0 + H).empty
    assert store.bucket == H


def test_redis_url_is_refused() -> None:
    with pytest.raises(StoreURLError, match="SQL"):
        open_monitor_store("redis://localhost:6379/0")


def test_probing_by_client_and_categories(store: SqlMonitorStore) -> None:
    d = Delta()
    b = bucket_key(T0, H)
    d.count((b, "all", "all", F_STATUS_DECISION, "accepted|approve"), 5)
    d.count((b, "all", "all", "client", "bank-a|requests"), 4)
    d.count((b, "all", "all", "client", "bank-a|flagged"), 2)
    d.count((b, "all", "all", "client", "bank-a|boundary"), 3)
    d.count((b, "all", "all", "client", "(none)|requests"), 1)
    d.count((b, "all", "all", "cat", "raw|EDUCATION|2"), 3)
    d.count((b, "all", "all", "probing", "boundary"), 3)
    store.merge(d, watermark=1, expected=None)
    clients = store.probing_by_client(T0, T0 + H)
    assert clients.iloc[0].to_dict() == {
        "client": "bank-a",
        "requests": 4,
        "probing": 0,
        "flagged": 2,
        "boundary": 3,
    }
    cats = store.category_counts(T0, T0 + H, column="EDUCATION")
    assert cats[["kind", "value", "n"]].values.tolist() == [["raw", "2", 3]]
    probing = store.probing_counts(T0, T0 + H)
    assert probing[["signal", "n", "n_requests"]].values.tolist() == [["boundary", 3, 5]]


def test_a_pass_view_sums_the_same_windows_as_the_database(store: SqlMonitorStore) -> None:
    """``with_counts``: one read of the span, every window (and segment filter) row for row
    as ``counts`` returns it; a view made before late rows does not see them, a new one does."""
    from pandas.testing import assert_frame_equal

    rng = np.random.default_rng(3)
    fams = [F_STATUS_DECISION, F_GUARD]
    wm = None
    for seq, hour in enumerate(rng.permutation(48)[:40]):  # gaps, out of order
        d = Delta()
        b = bucket_key(T0 + int(hour) * H, H)
        for sk, sv in (ALL, ("channel", str(rng.choice(["online", "partner", "Ärger", "b"])))):
            for key in ("accepted|deny", "accepted|approve", "rejected_validation|"):
                d.count((b, sk, sv, F_STATUS_DECISION, key), int(rng.integers(0, 4)))
            d.count((b, sk, sv, F_GUARD, "sanitise|clip|AGE"), int(rng.integers(0, 3)))
        store.merge(d, watermark={"seq": seq}, expected=wm)
        wm = {"seq": seq}
    view = store.with_counts(T0, T0 + 48 * H, fams)
    windows = [(T0 + s * H, T0 + (s + w) * H) for s in (0, 5, 17, 40) for w in (1, 6, 8)]
    for start, end in [*windows, (T0, T0 + 48 * H), (T0 + 47 * H, T0 + 48 * H)]:
        for f in ([F_STATUS_DECISION], [F_GUARD], fams):
            for seg in (None, ("channel", "partner"), ("channel", "none")):
                got = view.counts(start, end, f, seg)
                assert_frame_equal(got, store.counts(start, end, f, seg))
                assert got["n"].dtype == "int64"
    assert_frame_equal(view.decision_counts(T0, T0 + 6 * H), store.decision_counts(T0, T0 + 6 * H))
    late = Delta()
    late.count(
        (bucket_key(T0 + 2 * H, H), "channel", "late", F_STATUS_DECISION, "accepted|deny"), 5
    )
    store.merge(late, watermark={"seq": 99}, expected=wm)
    assert "late" not in set(view.counts(T0, T0 + 6 * H, fams)["segment_value"])
    fresh = store.with_counts(T0, T0 + 48 * H, fams)
    assert_frame_equal(fresh.counts(T0, T0 + 6 * H, fams), store.counts(T0, T0 + 6 * H, fams))
    # outside the span or another family: the database answers
    assert_frame_equal(
        view.counts(T0 - H, T0 + 6 * H, fams), store.counts(T0 - H, T0 + 6 * H, fams)
    )


def test_cells_packed_as_the_aggregation_built_them_are_packed_as_from_their_sketches() -> None:
    """New rows are packed straight from the aggregation's cells (no sketch read back): the
    same names, stats and sketch bytes as packing the cells' sketches, columns in order, empty
    columns (no finite value) included."""
    from tabguard.monitoring._cells import key_cells
    from tabguard.monitoring._delta import pack_cells, pack_packed, packed_cell

    rng = np.random.default_rng(4)
    n = 3000
    group = rng.integers(0, 3, n)
    names = [(7200, "channel", v) for v in ("online", "branch", "partner")]
    domain = rng.random(n) < 0.9
    numeric = []
    for column in ("PAY_2", "AGE", "LIMIT_BAL", "EMPTY"):
        values = np.round(rng.normal(50, 20, n), 1) if column != "EMPTY" else np.full(n, np.nan)
        values[rng.random(n) < 0.1] = np.nan
        missing = np.isnan(values) & domain
        numeric.append(("raw", column, values, domain, missing, np.zeros(n, dtype=bool)))
    cells = key_cells(names, group, numeric, 200)
    for name in names:
        mine = [c for c in cells if c[0][:3] == name]
        rng.shuffle(mine)  # the aggregation's order is not the stored order
        expected = pack_cells(sorted((c[0][4], packed_cell(c)) for c in mine))
        assert pack_packed(mine) == expected
