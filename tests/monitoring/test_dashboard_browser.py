"""The dashboard in a real browser: Debian's Chromium driven by Playwright (no browser download).

The page is served by the dashboard app on an ephemeral port over four simulated weeks with an
attack (``_dashboard_sim.py``). One browser for the module. Without ``/usr/bin/chromium`` (or
the ``playwright`` package of the dev extra) the tests skip locally with the reason and fail
under ``TABGUARD_REQUIRE_SERVICES=1`` (``.ci/run`` installs the Debian package).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tabguard.monitoring import load_monitor_config
from tabguard.monitoring._dashboard import open_dashboard
from tabguard.monitoring._dashboard_app import create_dashboard_app, key_authorizer
from tabguard.monitoring._window import epoch_seconds
from tabguard.serving import KeyCache, MemoryKeyStore
from tests.conftest import require_module, require_system
from tests.monitoring._dashboard_sim import FEATURE, ONSET

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
#: Flags for a headless, offline, reproducible Chromium (no first-run, sync or update traffic).
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


class Served:
    """The dashboard app under uvicorn in a thread, on a socket bound to an ephemeral port."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})
        self.thread.start()

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


@pytest.fixture(scope="module")
def site(dashboard_sim: Any) -> Iterator[dict[str, Any]]:
    keys = MemoryKeyStore()
    key = keys.create("ops", "monitor")[1]
    data = open_dashboard(load_monitor_config(dashboard_sim.config, home=dashboard_sim.home))
    served = Served(create_dashboard_app(data, key_authorizer(KeyCache(keys))))
    try:
        yield {"url": served.url, "key": key, "data": data}
    finally:
        served.close()
        data.store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_system(CHROMIUM, "chromium", "the dashboard's browser tests")
    sync_api = require_module("playwright.sync_api", "it drives the browser")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, site: dict[str, Any]) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    # The key as a user pastes it into the form: kept in the tab's sessionStorage.
    context.add_init_script(f"sessionStorage.setItem('tabguard.dashboard.key', {site['key']!r});")
    pg = context.new_page()
    pg.problems = []
    pg.on("console", lambda m: pg.problems.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.problems.append(str(e)))
    pg.on(
        "request",
        lambda r: None if r.url.startswith(site["url"]) else pg.problems.append(f"request {r.url}"),
    )
    yield pg
    context.close()


def chart_info(page: Any, chart_id: str) -> dict[str, Any]:
    """Series labels, point count and data of a drawn chart (what uPlot holds)."""
    return page.evaluate(
        """(id) => { const c = window.tgDashboard.charts[id];
            return { series: c.series, points: c.points, labels: c.labels,
                     data: c.plot.data.slice(1), t: c.plot.data[0] }; }""",
        chart_id,
    )


def open_view(page: Any, site: dict[str, Any], query: str, wait_for: str) -> None:
    page.goto(f"{site['url']}/dashboard/?{query}")
    page.wait_for_selector(f"#{wait_for}[data-series]", timeout=30_000)


def test_attacked_feature_chart_series_points_and_no_console_error(
    page: Any, site: dict[str, Any]
) -> None:
    open_view(page, site, f"range=28d&feature={FEATURE}", f"chart-raw-{FEATURE}")
    page.wait_for_selector(f"#chart-feature-{FEATURE}[data-series]")
    raw = chart_info(page, f"chart-raw-{FEATURE}")
    assert raw["labels"] == ["p1", "p10", "p50", "p90", "p99", "mean"]
    assert raw["points"] == 28 * 24  # 28 days of hourly buckets, drawn bucket by bucket
    assert len(raw["t"]) == 28 * 24 and raw["t"][1] - raw["t"][0] == 3600
    p50 = [v for v in raw["data"][2] if v is not None]
    assert len(p50) > 600  # values in almost every hour
    feature = chart_info(page, f"chart-feature-{FEATURE}")
    assert feature["series"] == 6 and feature["points"] == 28 * 24
    # The training reference is drawn as a band: its p10-p90 sit inside the y scale.
    ref = page.evaluate(f"window.tgDashboard.charts['chart-raw-{FEATURE}'].plot.scales.y.max")
    assert ref is not None
    assert page.problems == []


def test_segment_selector_changes_what_is_drawn(page: Any, site: dict[str, Any]) -> None:
    open_view(page, site, f"range=28d&feature={FEATURE}", f"chart-raw-{FEATURE}")
    everyone = chart_info(page, f"chart-raw-{FEATURE}")
    page.select_option("#segment", "channel=*")  # every channel on one chart
    page.wait_for_selector(f"#chart-raw-{FEATURE}[data-series='3']", timeout=30_000)
    per_channel = chart_info(page, f"chart-raw-{FEATURE}")
    assert per_channel["labels"] == ["branch", "online", "partner"]
    page.select_option("#segment", "channel=partner")
    page.wait_for_selector(f"#chart-raw-{FEATURE}[data-series='6']", timeout=30_000)
    partner = chart_info(page, f"chart-raw-{FEATURE}")
    assert partner["labels"] == everyone["labels"]
    assert partner["data"][2] != everyone["data"][2]  # another p50 line: the partner channel's
    page.wait_for_selector("#chart-decisions-channel_partner[data-series]", timeout=30_000)
    assert page.locator("#decisions .chart").count() == 2  # rates and volume of one segment
    assert page.problems == []


def test_alert_annotation_at_the_attack_onset_and_screenshot(
    page: Any, site: dict[str, Any], dashboard_sim: Any, tmp_path: Path
) -> None:
    assert dashboard_sim.opened, "the simulated attack opened no alert"
    open_view(page, site, f"range=28d&segment=channel=partner&feature={FEATURE}&step=21600",
              "chart-decisions-channel_partner")  # fmt: skip
    page.wait_for_selector(f"#chart-raw-{FEATURE}[data-series]", timeout=30_000)
    for chart in ("chart-decisions-channel_partner", f"chart-raw-{FEATURE}"):
        markers = page.locator(f"#{chart} .tg-annotation[data-kind=alert]")
        assert markers.count() >= 1
        times = [int(markers.nth(i).get_attribute("data-time")) for i in range(markers.count())]
        onset = epoch_seconds(ONSET)
        assert any(onset <= t <= onset + 6 * 3600 for t in times), (times, onset)
        # Drawn where the time axis puts that time.
        left, expected = page.evaluate(
            """([id, t]) => { const c = window.tgDashboard.charts[id];
                const m = document.querySelector(`#${id} .tg-annotation[data-time="${t}"]`);
                return [parseFloat(m.style.left), c.plot.valToPos(t, 'x')]; }""",
            [chart, times[0]],
        )
        assert abs(left - expected) < 1
    title = page.locator("#chart-decisions-channel_partner .tg-annotation").first.get_attribute(
        "title"
    )
    assert "denial_rate_drop" in title and "neutralize" in title  # which rule, what it changed
    assert page.locator("#events-table tr[data-kind=alert]").count() >= 1
    # The drift heatmap's time axis too: the window holding the onset carries the alert.
    page.locator("#drift").scroll_into_view_if_needed()
    marked = page.locator("#drift-heatmap th.win[data-kind=alert]")
    marked.first.wait_for(timeout=30_000)
    assert "denial_rate_drop" in (marked.first.get_attribute("title") or "")
    page.locator("#main").evaluate("() => window.scrollTo(0, 0)")
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=False)
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
    assert page.problems == []


def test_without_a_key_the_page_asks_for_one(browser: Any, site: dict[str, Any]) -> None:
    context = browser.new_context()
    pg = context.new_page()
    try:
        pg.goto(f"{site['url']}/dashboard/")
        pg.wait_for_selector("#login:not([hidden])", timeout=30_000)
        assert pg.locator("#main").is_hidden()
        pg.fill("#key", site["key"])
        pg.click("#login button")
        pg.wait_for_selector(".chart[data-series]", timeout=30_000)
    finally:
        context.close()
