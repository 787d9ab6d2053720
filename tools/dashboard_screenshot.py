"""Take the dashboard screenshot of the README and docs/dashboard.md (``docs/img/dashboard.png``).

The picture is of a simulated attack, reproducibly: the dashboard tests' simulator
(``tests/monitoring/_dashboard_sim.py``: four weeks through the real scoring service, the
monitor and its seed rule in the loop every simulated hour, the partner channel attacked through
``PAY_AMT2`` on day 26), with the tests' settings (the rule's default ``alpha``, 4,000
requests a day), so the rates are readable at a 3 h step. The store is served by the real
command, ``tabguard monitor dashboard --open`` on a loopback port, and Debian's Chromium
(Playwright, no browser download) opens the view of the last seven days of the attacked segment
with the attacked feature first.

Usage (from the repository root, in the dev virtualenv)::

    .venv/bin/python tools/dashboard_screenshot.py                 # ~10 min the first time
    .venv/bin/python tools/dashboard_screenshot.py --out /tmp/d.png --query 'range=28d'

The simulated home is kept under ``--work`` and reused by later runs.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TABGUARD = ROOT / ".venv" / "bin" / "tabguard"
CHROMIUM = "/usr/bin/chromium"
VIEW = "range=7d&segment=channel=partner&feature=PAY_AMT2&step=10800"


def simulated_home(work: Path, per_day: int) -> Path:
    """The monitor.yaml of a simulated home (built once per ``work`` directory)."""
    from tests.monitoring._dashboard_sim import build

    done = work / "built"
    config = work / "home" / "monitor.yaml"
    if not done.is_file():
        work.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        sim = build(work, per_day=per_day)
        print(f"simulated 28 days x {per_day} requests in {time.perf_counter() - t:.0f} s; "
              f"alerts opened: {[(str(at), seg) for at, seg in sim.opened]}")  # fmt: skip
        done.write_text("ok\n", encoding="utf-8")
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "dashboard.png")
    default_work = Path(tempfile.gettempdir()) / "tabguard-dashboard-shot"
    parser.add_argument("--work", type=Path, default=default_work)
    parser.add_argument("--per-day", type=int, default=4000)
    parser.add_argument("--query", default=VIEW, help="The view, as the page's URL query.")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=960)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    config = simulated_home(args.work, args.per_day)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(  # noqa: S603  # our own CLI, arguments built here
        [str(TABGUARD), "monitor", "dashboard", "--open", "--port", str(port),
         "--config", str(config), "--home", str(config.parent)],
    )  # fmt: skip
    try:
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(f"http://127.0.0.1:{port}/dashboard/?{args.query}")
            page.wait_for_selector(".chart[data-series]", timeout=120_000)
            page.wait_for_function(
                "() => window.tgDashboard.pending === 0 "
                "&& performance.now() - window.tgDashboard.busyAt > 1500",
                timeout=120_000,
            )
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out))
            browser.close()
        if errors:
            raise SystemExit(f"console errors: {errors}")
        print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes)")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
