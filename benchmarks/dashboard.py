"""The dashboard's bar: first chart drawn in under 2 s in headless Chromium, on a store of four
weeks of hourly buckets × 30 features × 20 segments. Not a timed test: figures printed with
their conditions.

What is measured is what a user does: ``tabguard monitor dashboard`` (a subprocess, the real
CLI) serving the page over a store filled by ``tabguard monitor update`` from a synthetic
prediction log, and Debian's Chromium (``/usr/bin/chromium``, driven by Playwright, a fresh
browser context per load, so no cache) opening the page with the API key in the tab:

* **first chart**: ``performance.mark("tg-first-chart")`` set by the page when its first chart
  is drawn, in ms since navigation start (page, scripts, the ``meta``, ``annotations`` and
  ``decisions`` API calls, uPlot drawing);
* **view complete**: every chart the viewport shows drawn (the pinned feature's raw and model
  pair included) and no API call pending;
* the server's CPU time for the page load (``/proc/PID/stat`` of the dashboard process).

Views: the default (7 days, all traffic); 28 days, all traffic; 28 days with the 20 values of
the segment key on one chart each (the heaviest: 20 decision panels, 20 lines per feature
chart); 28 days of one segment value. Baseline in the same run and browser: the same views of
a small store (one week × 5 features × 2 segment values), so the ratio says what the 28-day ×
30 × 20 store costs beyond the page itself.

The log: 30 numeric raw attributes ``X01``…``X30`` (lognormal, normal, uniform, integer
counts) and 30 model features of the same names (clipped), a request segment ``region`` with
20 declared values of unequal sizes (the smallest still has rows most hours), decisions,
scores, latencies, a few guard actions and probing signals, with a daily cycle.

Run::

    .venv/bin/python benchmarks/dashboard.py                   # 200,000 rows, 5 loads per view
    .venv/bin/python benchmarks/dashboard.py --rows 100000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TABGUARD = ROOT / ".venv" / "bin" / "tabguard"
CHROMIUM = "/usr/bin/chromium"
T0 = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
FEATURES = 30
REGIONS = 20
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync"]  # fmt: skip


# ---- the synthetic log -----------------------------------------------------------------------


def columns(n: int) -> list[str]:
    return [f"X{i + 1:02d}" for i in range(n)]


def draw_values(rng: np.random.Generator, rows: int, n_features: int) -> np.ndarray:
    """``rows × n_features`` raw values of four shapes (amounts, scores, shares, counts)."""
    out = np.empty((rows, n_features))
    for j in range(n_features):
        shape = j % 4
        if shape == 0:
            out[:, j] = np.round(rng.lognormal(8 + j % 3, 1.0, rows), 0)
        elif shape == 1:
            out[:, j] = np.round(rng.normal(50 + j, 10, rows), 2)
        elif shape == 2:
            out[:, j] = np.round(rng.random(rows), 3)
        else:
            out[:, j] = rng.poisson(2 + j % 5, rows)
    return out


def build_log(url: str, rows: int, days: int, n_features: int, n_regions: int, seed: int) -> None:
    """Write ``rows`` prediction-log rows (the service's row shape) over ``days`` days."""
    from tabguard.storage import create_sql_engine, ensure_schema, predictions_table

    rng = np.random.default_rng(seed)
    names = columns(n_features)
    regions = np.array([f"r{i + 1:02d}" for i in range(n_regions)], dtype=object)
    weights = 1.0 / np.arange(1, n_regions + 1) ** 0.6  # unequal sizes, none empty
    hour_w = 0.3 + np.exp(-0.5 * ((np.arange(24) - 14) / 4.0) ** 2)
    hours = rng.choice(24, size=rows, p=hour_w / hour_w.sum())
    seconds = np.sort(
        rng.integers(0, days, rows) * 86400 + hours * 3600 + rng.integers(0, 3600, rows)
    )
    region = regions[rng.choice(n_regions, size=rows, p=weights / weights.sum())]
    raw = draw_values(rng, rows, n_features)
    caps = np.quantile(raw, 0.99, axis=0)
    feats = np.minimum(raw, caps)
    score = rng.beta(2, 5, rows)
    latency = rng.gamma(2.0, 0.4, rows)
    probing = rng.random(rows) < 0.01
    engine = create_sql_engine(url)
    ensure_schema(engine, [predictions_table])
    cols = [c.name for c in predictions_table.columns]
    sql = (
        f"INSERT INTO {predictions_table.name} ({', '.join(cols)}) "
        f"VALUES ({', '.join('?' for _ in cols)})"
    )
    t0 = int(T0.timestamp())
    batch: list[tuple[Any, ...]] = []
    for i in range(rows):
        clipped = [j for j in range(n_features) if raw[i, j] > caps[j]]
        actions = [
            {"step": "sanitise", "action": "clip", "field": names[j], "to": float(caps[j])}
            for j in clipped[:2]
        ]
        s = float(score[i])
        row = {
            "decision_id": uuid.UUID(int=(seed << 64) | i).hex,
            "timestamp": datetime.fromtimestamp(t0 + int(seconds[i]), UTC)
            .isoformat(sep=" ")
            .replace("+00:00", ""),
            "client": f"client-{i % 7}",
            "subject_id": f"s{i}",
            "status": "accepted",
            "decision": "deny" if s > 0.5 else ("review" if s > 0.42 else "approve"),
            "score": s,
            "model_name": "main",
            "model_version": "bench/1",
            "raw": json.dumps(dict(zip(names, raw[i].tolist(), strict=True))),
            "features": json.dumps(dict(zip(names, feats[i].tolist(), strict=True))),
            "guard_actions": json.dumps(actions),
            "flags": '{"flow":"enabled","version":0}',
            "errors": "[]",
            "segment": json.dumps({"region": region[i]}),
            "probing": '["boundary"]' if probing[i] else "[]",
            "latency_ms": float(latency[i]),
            "available_at": None,
        }
        batch.append(tuple(row[c] for c in cols))
        if len(batch) == 20_000:
            with engine.begin() as conn:
                conn.exec_driver_sql(sql, batch)
            batch = []
    if batch:
        with engine.begin() as conn:
            conn.exec_driver_sql(sql, batch)
    engine.dispose()


def make_model(home: Path, n_features: int) -> Path:
    """A model directory for the log's columns: contract, a small LightGBM, drift reference."""
    import lightgbm as lgb
    import pandas as pd

    from tabguard.contract import FeatureTransform, TransformOptions, contract_from_dict
    from tabguard.monitoring._drift import DriftReference
    from tabguard.training import Scorer, save_model

    names = columns(n_features)
    contract = contract_from_dict(
        {
            "name": "bench",
            "label": {"column": "Y", "positive": 1},
            "features": {c: {"type": "number"} for c in names},
        }
    )
    rng = np.random.default_rng(1)
    df = pd.DataFrame(draw_values(rng, 3000, n_features), columns=names)
    df["Y"] = (rng.random(len(df)) < 0.2).astype(int)
    tr = FeatureTransform(contract, TransformOptions())
    ds = lgb.Dataset(tr.transform_frame(df), df["Y"].to_numpy())
    params = {"objective": "binary", "verbose": -1, "num_threads": 1, "seed": 0}
    target = home / "model"
    save_model(target, main=Scorer("main", "lightgbm", lgb.train(params, ds, 10), tr),
               contract=contract, version="bench/1")  # fmt: skip
    reference = home / "reference.drift.json"
    DriftReference.from_frame(df, contract, tr).save(reference)
    return target


def make_store(
    work: Path, name: str, rows: int, days: int, n_features: int, n_regions: int
) -> Path:
    """Log + ``tabguard monitor update`` into a store (built once per shape); the config."""
    home = work / name
    config = home / "monitor.yaml"
    store = home / "monitoring.db"
    if store.is_file() and config.is_file():
        return config
    home.mkdir(parents=True, exist_ok=True)
    model = make_model(home, n_features)
    log = home / "predictions.db"
    store.unlink(missing_ok=True)
    if not log.is_file():
        t = time.perf_counter()
        tmp = home / ".predictions.db"
        tmp.unlink(missing_ok=True)
        build_log(f"sqlite:///{tmp}", rows, days, n_features, n_regions, seed=7)
        tmp.rename(log)
        print(f"{name}: log of {rows:,} rows built in {time.perf_counter() - t:.0f} s", flush=True)
    regions = [f"r{i + 1:02d}" for i in range(n_regions)]
    config.write_text(
        json.dumps(
            {
                "log": f"sqlite:///{log}",
                "store": f"sqlite:///{store}",
                "model": str(model),
                "drift": {"reference": str(home / "reference.drift.json")},
                "aggregation": {
                    "bucket": "1h",
                    "segments": {"request_keys": ["region"], "values": {"region": regions}},
                },
            }
        ),
        encoding="utf-8",
    )
    t = time.perf_counter()
    proc = subprocess.run(
        [str(TABGUARD), "monitor", "update", "--config", str(config), "--home", str(home)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode not in (0, 1):
        raise SystemExit(f"monitor update failed ({proc.returncode}): {proc.stderr[-800:]}")
    print(
        f"{name}: tabguard monitor update {time.perf_counter() - t:.0f} s: "
        f"{(proc.stdout + proc.stderr).strip().splitlines()[-1][:160]}",
        flush=True,
    )
    return config


# ---- serving and loading the page ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Dashboard:
    """``tabguard monitor dashboard`` in a subprocess, with a ``monitor`` key of its home."""

    def __init__(self, config: Path) -> None:
        home = config.parent
        self.key = self._key(home)
        self.port = free_port()
        self.proc = subprocess.Popen(
            [str(TABGUARD), "monitor", "dashboard", "--port", str(self.port), "--config",
             str(config), "--home", str(home)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.url = f"http://127.0.0.1:{self.port}/dashboard/"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise SystemExit(f"dashboard exited: {self.proc.stdout.read()}") from None  # type: ignore[union-attr]
                time.sleep(0.2)
        raise SystemExit("the dashboard did not start in 120 s")

    @staticmethod
    def _key(home: Path) -> str:
        proc = subprocess.run(
            [str(TABGUARD), "keys", "create", f"bench-{uuid.uuid4().hex[:6]}", "--scopes",
             "monitor"],
            capture_output=True, text=True, check=True,
            env={**os.environ, "TABGUARD_HOME": str(home)},
        )  # fmt: skip
        return proc.stdout.split()[-1]  # the key is the last word of the output

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def load_once(browser: Any, site: Dashboard, query: str, pinned: str) -> dict[str, float]:
    """One page load in a fresh context: first chart, view complete, server CPU."""
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    context.add_init_script(f"sessionStorage.setItem('tabguard.dashboard.key', {site.key!r});")
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Performance.enable")
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    cpu = site.cpu_seconds()
    page.goto(site.url + ("?" + query if query else ""))
    page.wait_for_selector(".chart[data-series], #login:not([hidden])", timeout=120_000)
    if page.locator("#login").is_visible():
        raise SystemExit(f"the dashboard refused the key: {page.inner_text('#login-error')}")
    page.wait_for_function("() => performance.getEntriesByName('tg-first-chart').length > 0",
                           timeout=120_000)  # fmt: skip
    page.wait_for_selector(f"#chart-feature-{pinned}[data-series]", timeout=120_000)
    # Complete: nothing pending and nothing drawn or asked for during the last second (the
    # lazy panels in view are asked for once the decisions are drawn).
    page.wait_for_function(
        "() => window.tgDashboard.pending === 0 "
        "&& performance.now() - window.tgDashboard.busyAt > 1000",
        timeout=120_000,
    )
    first = page.evaluate("performance.getEntriesByName('tg-first-chart')[0].startTime")
    done = page.evaluate(
        "Math.max(...Object.values(window.tgDashboard.charts).map((c) => c.drawnAt || 0))"
    )
    charts = page.evaluate("Object.keys(window.tgDashboard.charts).length")
    server_cpu = site.cpu_seconds() - cpu
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    context.close()
    if problems:
        raise SystemExit(f"console errors on {query!r}: {problems}")
    # The renderer's main thread busy time (script, style, layout, paint) for the whole view.
    return {"first": first, "done": done, "cpu": server_cpu, "charts": charts,
            "main": metrics["TaskDuration"]}  # fmt: skip


VIEWS = [
    ("default (7 d, all traffic)", "feature={pinned}"),
    ("28 d, all traffic", "range=28d&feature={pinned}"),
    ("28 d, every region on one chart", "range=28d&segment=region=*&feature={pinned}"),
    ("28 d, one region (the smallest)", "range=28d&segment=region={region}&feature={pinned}"),
]


def measure(
    browser: Any, config: Path, repeats: int, pinned: str, region: str
) -> dict[str, dict[str, Any]]:
    site = Dashboard(config)
    out: dict[str, dict[str, Any]] = {}
    try:
        # Warm the server (imports, the meta cache) as a user's second visit would find it.
        load_once(browser, site, VIEWS[0][1].format(pinned=pinned, region=region), pinned)
        for name, query in VIEWS:
            print(f"  {config.parent.name}: {name}", flush=True)
            runs = [
                load_once(browser, site, query.format(pinned=pinned, region=region), pinned)
                for _ in range(repeats)
            ]
            out[name] = {
                k: statistics.median(r[k] for r in runs) for k in ("first", "done", "cpu", "main")
            }
            out[name]["charts"] = runs[-1]["charts"]
            out[name]["first_max"] = max(r["first"] for r in runs)
    finally:
        site.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--work", type=Path, default=Path("/tmp/tabguard-bench-dashboard"))
    args = parser.parse_args()
    if not os.path.exists(CHROMIUM):
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)
    big = make_store(work, f"big-{args.rows}", args.rows, 28, FEATURES, REGIONS)
    small = make_store(work, "small", 12_000, 7, 5, 2)
    store = big.parent / "monitoring.db"
    print(f"store: {store.stat().st_size / 1e6:.0f} MB", flush=True)
    pinned = "X30"  # the last column: drawn first only because the URL pins it
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            base = measure(browser, small, args.repeats, "X05", "r02")
            result = measure(browser, big, args.repeats, pinned, f"r{REGIONS:02d}")
        finally:
            browser.close()
    print(f"median of {args.repeats} loads per view (fresh browser context each); "
          f"load average now {os.getloadavg()[0]:.1f}")  # fmt: skip
    for name, _ in VIEWS:
        r, b = result[name], base[name]
        print(
            f"{name}: first chart {r['first']:.0f} ms (worst {r['first_max']:.0f}; small store "
            f"{b['first']:.0f} ms, x{r['first'] / b['first']:.2f}); view complete "
            f"{r['done']:.0f} ms ({r['charts']} charts; small x{r['done'] / b['done']:.2f}); "
            f"server CPU {1000 * r['cpu']:.0f} ms (small {1000 * b['cpu']:.0f} ms); browser "
            f"main thread {1000 * r['main']:.0f} ms (small {1000 * b['main']:.0f} ms)",
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
