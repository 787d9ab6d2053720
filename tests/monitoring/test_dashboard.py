"""The dashboard's data and JSON API (the page itself: test_dashboard_browser.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from tabguard.monitoring import load_monitor_config
from tabguard.monitoring._dashboard import (
    MAX_POINTS,
    DashboardError,
    _clean,
    plan_grid,
    reference_band,
)
from tabguard.monitoring._dashboard import open_dashboard as open_data
from tabguard.monitoring._dashboard_app import CSP, create_dashboard_app, key_authorizer, static_dir
from tabguard.monitoring._drift import numeric_reference
from tabguard.monitoring._window import epoch_seconds
from tabguard.serving import KeyCache, MemoryKeyStore
from tests.monitoring._dashboard_sim import FEATURE, ONSET, START

ROOT = Path(__file__).resolve().parents[2]
H = timedelta(hours=1)


# ---- the time axis ---------------------------------------------------------------------------


@given(
    start=st.integers(0, 10**6),
    hours=st.integers(1, 24 * 400),
    max_points=st.integers(50, 2000),
)
@settings(max_examples=200, deadline=None)
def test_grid_covers_the_range_within_max_points(start: int, hours: int, max_points: int) -> None:
    lo = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=start)
    hi = lo + hours * H
    grid = plan_grid(H, lo, hi, max_points=max_points)
    assert grid.start <= lo and grid.end >= hi  # rounded out, never cut
    assert grid.step % H == timedelta(0)
    assert grid.size <= max_points + 2  # at most one partial step at each end
    assert grid.t == sorted(grid.t) and len(grid.t) == grid.size


def test_grid_keeps_28_days_of_hours_and_coarsens_beyond() -> None:
    lo = datetime(2026, 1, 5, tzinfo=UTC)
    assert plan_grid(H, lo, lo + timedelta(days=28)).step == H
    assert plan_grid(H, lo, lo + timedelta(days=28)).size == 672 <= MAX_POINTS
    assert plan_grid(H, lo, lo + timedelta(days=90)).step == 3 * H
    with pytest.raises(DashboardError, match="start < end"):
        plan_grid(H, lo, lo)
    with pytest.raises(DashboardError, match="multiple of the"):
        plan_grid(H, lo, lo + H, step=timedelta(minutes=90))


@given(
    st.lists(
        st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=64)),
        max_size=60,
    )
)
@settings(max_examples=300, deadline=None)
def test_clean_keeps_six_significant_digits_and_drops_non_finite(values: list[Any]) -> None:
    out = _clean(values)
    assert len(out) == len(values)
    for v, o in zip(values, out, strict=True):
        if v is None or not np.isfinite(v):
            assert o is None
        else:
            assert o == pytest.approx(float(f"{v:.6g}"), rel=1e-9, abs=0)
    json.dumps(out, allow_nan=False)  # what the API sends


def test_reference_band_is_the_training_deciles() -> None:
    values = np.arange(1, 1001, dtype=float)
    ref = numeric_reference("raw", "X", values, bins=10)
    band = reference_band(ref)
    assert band is not None
    assert band.p10 == pytest.approx(np.quantile(values, 0.1), rel=1e-6)
    assert band.p50 == pytest.approx(np.quantile(values, 0.5), rel=1e-6)
    assert band.p90 == pytest.approx(np.quantile(values, 0.9), rel=1e-6)
    assert band.n == 1000
    assert reference_band(numeric_reference("raw", "X", np.array([]), 10)) is None


# ---- the data over the simulated weeks ----------------------------------------------------------


@pytest.fixture(scope="module")
def data(dashboard_sim: Any) -> Iterator[Any]:
    d = open_data(load_monitor_config(dashboard_sim.config, home=dashboard_sim.home))
    yield d
    d.store.close()


def _range(data: Any, days: int = 28) -> Any:
    end = data.store.latest()
    return data.grid(end - timedelta(days=days), end)


def test_meta_lists_segments_and_raw_and_feature_columns(data: Any) -> None:
    meta = data.meta()
    assert meta.segments["channel"] == ["branch", "online", "partner"]
    cols = {c.name: c for c in meta.columns}
    assert cols[FEATURE].raw == "numeric" and cols[FEATURE].feature == "numeric"
    assert cols["EDUCATION"].raw == "category"
    assert "SEX" in cols and cols["SEX"].feature is None  # protected: never a model input
    assert meta.reference and meta.rules == ["denial_rate_drop"]
    assert data.meta() is meta  # cached until the store moves


def test_bands_follow_the_stored_buckets(data: Any) -> None:
    grid = _range(data)
    panel = data.feature(FEATURE, "raw", grid)
    assert [ln.name for ln in panel.lines] == ["p01", "p10", "p50", "p90", "p99", "mean"]
    series = data.store.series(
        grid.start, grid.end, column=FEATURE, kind="raw", segment=("all", "all")
    )
    i = int((series["bucket"].iloc[10] - grid.start) / H)
    assert panel.t[i] == epoch_seconds(series["bucket"].iloc[10].to_pydatetime())
    assert panel.lines[2].values[i] == pytest.approx(series["p50"].iloc[10], rel=1e-5)
    assert panel.n[i] == series["n"].iloc[10]
    assert panel.reference is not None and panel.reference.p10 <= panel.reference.p90


def test_coarse_steps_merge_sketches_instead_of_averaging(data: Any) -> None:
    grid = data.grid(START, START + timedelta(days=7), step=timedelta(hours=6))
    panel = data.feature("LIMIT_BAL", "raw", grid)
    lo, hi = grid.windows()[5]
    levels = (0.47, 0.5, 0.53)
    exact = data.store.percentiles(lo, hi, "LIMIT_BAL", "raw", levels, segment=("all", "all"))
    below, above = exact.loc[exact["q"].isin([levels[0], levels[-1]]), "value"]
    assert panel.step == 6 * 3600 and len(panel.t) == 28
    merged = panel.lines[2].values[5]
    # KLL merges are randomised, so two merges of the same window may return neighbouring
    # values: compare within the store's rank error (1 %, here 3 %), not for equality.
    assert below <= merged <= above
    # A merged sketch returns one of the stream's values (LIMIT_BAL is in steps of 10,000);
    # an average of the hourly medians almost never does.
    assert merged % 10_000 == 0
    assert panel.n[5] == exact["n"].iloc[0]


def test_every_value_of_a_key_on_one_chart(data: Any) -> None:
    panel = data.feature(FEATURE, "feature", _range(data), segment_key="channel",
                         segment_value=None, stat="p90")  # fmt: skip
    assert [ln.name for ln in panel.lines] == ["branch", "online", "partner"]
    assert panel.segment_value is None and panel.stat == "p90"
    with pytest.raises(DashboardError, match="stat must be one of"):
        data.feature(FEATURE, "raw", _range(data), stat="p42")


def test_category_columns_give_shares(data: Any) -> None:
    panel = data.feature("EDUCATION", "raw", _range(data))
    assert panel.type == "category"
    totals = np.nansum(
        [[v if v is not None else np.nan for v in ln.values] for ln in panel.lines], axis=0
    )
    assert np.allclose(totals[np.array(panel.n) > 0], 1.0)


def _rate(rates: list[float | None], volume: list[int]) -> float:
    """The rate of several steps together (each step weighted by its requests)."""
    pairs = [(r, v) for r, v in zip(rates, volume, strict=True) if r is not None]
    return sum(r * v for r, v in pairs) / sum(v for _, v in pairs)


def test_decision_rates_with_last_week_and_the_attack(data: Any, dashboard_sim: Any) -> None:
    """The partner chart shows what the rule saw: over the 6 h before its alert, denials more
    than 20 % below the same hours a week earlier (the dashed line)."""
    fired = min(t for t, segment in dashboard_sim.opened if segment == ("channel", "partner"))
    grid = data.grid(fired - timedelta(days=14), fired, step=H)
    panel = data.decisions(grid, segment_key="channel")
    assert [g.segment for g in panel.groups] == [
        "channel=branch",
        "channel=online",
        "channel=partner",
    ]
    partner = panel.groups[2]
    names = [(ln.name, ln.dashed) for ln in partner.rates]
    assert names[:5] == [(n, False) for n in ("approve", "deny", "review", "delayed", "refused")]
    assert names[5:] == [(n, True) for n in ("approve", "deny", "review", "delayed", "refused")]
    deny, deny_before = partner.rates[1].values, partner.rates[6].values
    assert grid.t[-1] == epoch_seconds(fired - H)  # the last hour before the alert
    # The week-earlier line is this chart's line one week (168 hourly steps) back.
    assert deny_before[-1] == pytest.approx(deny[-1 - 168])
    assert partner.volume_last_week[-1] == partner.volume[-1 - 168]
    now = _rate(deny[-6:], partner.volume[-6:])
    before = _rate(deny_before[-6:], partner.volume_last_week[-6:])
    assert now < 0.8 * before
    assert len(partner.volume_last_week) == len(grid.t)


def test_annotations_name_the_rule_the_segment_and_the_flag(data: Any, dashboard_sim: Any) -> None:
    items = data.annotations(_range(data)).items
    alerts = [a for a in items if a.kind == "alert"]
    partner = [a for a in alerts if a.segment == "channel=partner"]
    assert partner and partner[0].actor == "monitor:denial_rate_drop"
    assert "neutralize" in partner[0].detail
    onset = epoch_seconds(ONSET)
    assert onset <= partner[0].time <= onset + 6 * 3600


def test_flag_changes_are_annotations_with_who_and_what() -> None:
    from tabguard.flags import MemoryFlagStore
    from tabguard.monitoring import open_monitor_store
    from tabguard.monitoring._dashboard import DashboardData, Grid

    flags = MemoryFlagStore()
    change = flags.set("threshold", 0.4, actor="alice", reason="stricter after the alert")
    with_flags = DashboardData(open_monitor_store("memory://"), flag_store=flags)
    at = change.changed_at
    items = with_flags.annotations(Grid(at - H, at + H, H)).items
    (flag,) = [a for a in items if a.kind == "flag"]
    assert flag.actor == "alice" and flag.detail == "stricter after the alert"
    assert "threshold" in flag.label and "0.4" in flag.label
    assert abs(flag.time - at.timestamp()) < 1
    assert not [
        a for a in with_flags.annotations(Grid(at + H, at + 2 * H, H)).items if a.kind == "flag"
    ]


def test_drift_guards_probing_performance_panels(data: Any) -> None:
    grid = _range(data)
    drift = data.drift(grid)
    assert FEATURE in drift.columns and len(drift.windows) >= 28
    row = drift.values[drift.columns.index(FEATURE)]
    assert max(v for v in row if v is not None) > 0.1  # the attack moves the feature
    guards = data.guards(grid)
    assert any(ln.name == "sanitise neutralize" for ln in guards.lines)  # the flag at work
    assert guards.table and 0 < guards.table[0].rate <= 1
    probing = data.probing(grid)
    assert probing.table and probing.table[0].requests > 0
    perf = data.performance(grid)
    assert perf.note is not None and "outcomes import" in perf.note  # no labels imported


# ---- the HTTP API ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(data: Any) -> Iterator[tuple[TestClient, dict[str, str]]]:
    keys = MemoryKeyStore()
    made = {
        scopes: keys.create(name, scopes)[1]
        for name, scopes in (("ops", "monitor"), ("root", "admin"), ("app", "decide"))
    }
    with TestClient(create_dashboard_app(data, key_authorizer(KeyCache(keys)))) as c:
        yield c, made


def test_api_needs_a_key_with_the_monitor_scope(client: tuple[TestClient, dict[str, str]]) -> None:
    c, keys = client
    r = c.get("/dashboard/api/v1/meta")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = c.get("/dashboard/api/v1/meta", headers={"Authorization": f"Bearer {keys['decide']}"})
    assert r.status_code == 403 and "'monitor' scope" in r.json()["error"]
    for scopes in ("monitor", "admin"):
        r = c.get("/dashboard/api/v1/meta", headers={"Authorization": f"Bearer {keys[scopes]}"})
        assert r.status_code == 200 and r.json()["bucket"] == 3600


def test_api_routes_answer_typed_json(client: tuple[TestClient, dict[str, str]], data: Any) -> None:
    c, keys = client
    auth = {"Authorization": f"Bearer {keys['monitor']}"}
    end = epoch_seconds(data.store.latest())
    q = {"start": end - 7 * 86400, "end": end}
    for path in (f"features/raw/{FEATURE}", "decisions", "drift", "guards", "probing",
                 "annotations", "performance", "features/latency_ms/latency_ms"):  # fmt: skip
        r = c.get(f"/dashboard/api/v1/{path}", params=q, headers=auth)
        assert r.status_code == 200, (path, r.text)
        assert r.headers["cache-control"] == "no-store"
    r = c.get("/dashboard/api/v1/decisions", params={"start": end, "end": end - 3600}, headers=auth)
    assert r.status_code == 400 and "start < end" in r.json()["error"]
    r = c.get("/dashboard/api/v1/features/bogus/AGE", headers=auth)
    assert r.status_code == 422
    r = c.get("/dashboard/api/v1/decisions", params={**q, "step": 5400}, headers=auth)
    assert r.status_code == 400 and "multiple of the" in r.json()["error"]
    spec = c.get("/dashboard/api/openapi.json").json()
    assert "/dashboard/api/v1/features/{kind}/{column}" in spec["paths"]
    assert "FeaturePanel" in spec["components"]["schemas"]


def test_the_page_loads_nothing_from_elsewhere(client: tuple[TestClient, dict[str, str]]) -> None:
    c, _ = client
    r = c.get("/dashboard/")
    assert r.status_code == 200 and r.headers["content-security-policy"] == CSP
    assert c.get("/dashboard/static/vendor/uplot/uPlot.iife.min.js").status_code == 200
    assert c.get("/", follow_redirects=False).headers["location"] == "/dashboard/"
    for name in ("index.html", "dashboard.js", "dashboard.css"):
        text = (static_dir() / name).read_text(encoding="utf-8")
        assert not re.search(r"(src|href)=[\"']?(https?:)?//", text), name


def test_vendored_chart_library_matches_its_pin() -> None:
    pin = json.loads((static_dir() / "vendor" / "uplot" / "VENDOR.json").read_text())
    assert pin["package"] == "uplot" and pin["integrity"].startswith("sha512-")
    assert (static_dir() / "vendor" / "uplot" / "LICENSE").read_text().startswith("The MIT License")
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "vendor_js.py")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "3 files match" in out.stdout


def test_cli_refuses_open_access_beyond_loopback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from tabguard.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["monitor", "dashboard", "--open", "--host", "0.0.0.0", "--home", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--open" in err and "loopback" in err and "'monitor' scope" in err
