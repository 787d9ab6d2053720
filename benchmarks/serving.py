"""Latency and throughput of the guarded scoring service vs a bare FastAPI endpoint.

One uvicorn process serves both endpoints of the same model (trained on the bundled data):

* ``POST /v1/decisions`` with every guard on: API key, per-client and per-subject limits
  (generous, never reached), contract validation, sanitisation, the fast scoring path, the
  decision layer, probing detection with a reference profile, the prediction log (SQLite);
* ``POST /bare``: FastAPI parses the JSON body and calls ``Scorer.positive_proba`` on a one-row
  DataFrame (what a hand-written endpoint does), no guard, no log;
* ``POST /bare-fast``: the same without pandas: the contract transform and the fast scoring
  path, no guard, no log (so the difference to the guarded endpoint is the guards).

A second uvicorn process serves the reference of issue 14, ``POST /bare-booster``: a bare
FastAPI app that parses the same JSON (``payload: dict = Body(...)``), builds the feature row
and calls LightGBM's ``Booster.predict`` on a 100-tree model trained on the same data
(``num_threads=1``: a one-row prediction is fastest on one thread; nothing else in the
process). The guarded figures are read as ratios to this endpoint.

The same client (httpx, one keep-alive connection per server) alternates requests to the
endpoints for the latency figures, then drives each with 8 concurrent connections for
throughput.
In process, it then times each guard step and compares the fast scoring path with
``positive_proba`` on one row.

With ``--workers N`` (default 2) it then serves the same app from N worker processes, the
way ``tabguard serve --workers N`` does, and compares its throughput with the bare-booster
app in one process (alternating rounds). ``--launchers`` adds the launcher comparison: the
same app under uvicorn's own multi-worker launcher
(``uvicorn.run(..., workers=N)``: its listener leaves Nagle's algorithm on, so each keep-alive
response waits about 40 ms for a delayed ACK) and under tabguard's (``run_workers``:
``TCP_NODELAY`` on every connection), and drives the guarded and the bare endpoint of each with
8 keep-alive connections (req/s and p50).

Run::

    .venv/bin/python benchmarks/serving.py
    .venv/bin/python benchmarks/serving.py --requests 1000 --seconds 3   # quicker
    .venv/bin/python benchmarks/serving.py --only workers                # the multi-worker part
    .venv/bin/python benchmarks/serving.py --only workers --client wrk   # wrk drives the load
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from tabguard.datasets import credit_default_contract, load_credit_default

SERVER = r"""
import os, sys, pandas as pd
from fastapi import Body
from tabguard.serving import create_app
from tabguard.serving._server import serve
from tabguard.training import load_model

model_dir, port = sys.argv[1], int(sys.argv[2])
bundle = load_model(model_dir)
app = create_app(bundle, reference=sys.argv[3])

@app.post("/bare")
async def bare(payload: dict = Body(...)) -> dict:
    df = pd.DataFrame([payload["features"]])
    return {"score": float(bundle.main.positive_proba(df)[0])}

fast = app.state.service.models.main

@app.post("/bare-fast")
async def bare_fast(payload: dict = Body(...)) -> dict:
    row, _ = bundle.main.transform.transform_record(payload["features"])
    return {"score": fast.score_row(row[0])}

if os.environ.get("TGBENCH_ROUTE") == "fastapi":  # POST /v1/decisions through FastAPI's route
    app.decisions_asgi = None

# As `tabguard serve` runs it (httptools on uvloop), or TGBENCH_HTTP=h11: h11 on asyncio.
old = {"http": "h11", "loop": "asyncio"} if os.environ.get("TGBENCH_HTTP") == "h11" else {}
serve(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, **old)
"""


# The reference endpoint of issue 14: a hand-written FastAPI app around a LightGBM Booster.
BARE_BOOSTER = r"""
import os
import sys

import lightgbm as lgb
import numpy as np
import uvicorn
from fastapi import Body, FastAPI

model_file, port = sys.argv[1], int(sys.argv[2])
booster = lgb.Booster(model_file=model_file)
names = booster.feature_name()
app = FastAPI()


@app.post("/bare-booster")
async def bare_booster(payload: dict = Body(...)) -> dict:
    features = payload["features"]
    row = np.array([[float(features[n]) for n in names]])
    return {"score": float(booster.predict(row, num_threads=1)[0])}


@app.get("/health")
async def health() -> dict:
    return {"status": "ok"}


# uvicorn's own httptools protocol on uvloop (what uvicorn[standard] gives a bare app), or
# TGBENCH_HTTP=h11: h11 on asyncio.
impl = "h11" if os.environ.get("TGBENCH_HTTP") == "h11" else "httptools"
loop = "asyncio" if impl == "h11" else "uvloop"
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
            http=impl, loop=loop)
"""


def train_booster(df: pd.DataFrame, path: Path, trees: int = 100) -> Path:
    """A plain LightGBM model on the raw model features (what a bare endpoint would serve)."""
    import lightgbm as lgb

    contract = credit_default_contract()
    names = contract.model_features()
    label = contract.label.column
    data = lgb.Dataset(df[names].astype(float), label=(df[label] == contract.label.positive))
    params = {"objective": "binary", "verbose": -1, "num_threads": 1, "seed": 0}
    booster = lgb.train(params, data, num_boost_round=trees)
    booster.save_model(str(path))
    return path


_BOOSTER_PIDS: dict[str, int] = {}


def booster_pid(base: str) -> int:
    """The pid of the bare-booster process serving ``base``."""
    return _BOOSTER_PIDS[base]


def start_bare_booster(
    model_file: Path, http: str = "httptools"
) -> tuple[subprocess.Popen[bytes], str]:
    """Start the bare-booster app in its own process; return it and its base URL."""
    port = free_port()
    env = {**os.environ, "TGBENCH_HTTP": http}
    cmd = [sys.executable, "-c", BARE_BOOSTER, str(model_file), str(port)]
    proc = subprocess.Popen(cmd, env=env)
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, "/health")
    _BOOSTER_PIDS[base] = proc.pid
    return proc, base


def wait_ready(base: str, path: str, timeout: float = 120) -> None:
    """Wait until ``GET path`` answers 200."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with httpx.Client(base_url=base, timeout=10) as c:
                if c.get(path).status_code == 200:
                    return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)


# The app each worker process builds (``factory=True``): the guarded service of
# $TABGUARD_SERVE_MODEL, as `tabguard serve --workers N` builds it, plus /bare-fast.
WORKER_APP = r"""
from fastapi import Body
from tabguard.serving._app import app_from_env


def make():
    app = app_from_env()
    service = app.state.service
    transform, fast = service.bundle.main.transform, service.models.main

    @app.post("/bare-fast")
    async def bare_fast(payload: dict = Body(...)) -> dict:
        row, _ = transform.transform_record(payload["features"])
        return {"score": fast.score_row(row[0])}

    return app
"""

# The bare-booster app as a module, for the multi-process launchers (gunicorn, run_workers).
BARE_MODULE = BARE_BOOSTER.replace(
    "model_file, port = sys.argv[1], int(sys.argv[2])",
    'model_file = os.environ["TGBENCH_BOOSTER_MODEL"]',
).split("\n# uvicorn's own httptools")[0]

WORKER_LAUNCHER = r"""
import sys

import uvicorn

from tabguard.serving._server import run_workers

if __name__ == "__main__":
    launcher, port, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    app = sys.argv[4] if len(sys.argv) > 4 else "tgbench_workers:make"
    options = dict(factory=app.endswith(":make"), host="127.0.0.1", port=port,
                   log_level="warning", access_log=False)
    if launcher == "uvicorn":
        uvicorn.run(app, workers=workers, **options)
    else:
        run_workers(app, workers=workers, **options)
"""


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def records(n: int = 500) -> list[dict[str, Any]]:
    c = credit_default_contract()
    df = load_credit_default().sample(n, random_state=1)[list(c.features)]
    return [
        {k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()}
        for r in df.to_dict("records")
    ]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def latency(
    clients: dict[str, httpx.Client], key: str, recs: list[dict[str, Any]], n: int
) -> dict[str, list[float]]:
    """Alternate requests to every endpoint (one keep-alive connection per server).

    ``clients`` maps ``guarded`` (the tabguard process) and ``booster`` (the bare-booster
    process) to their clients. Returns per-request seconds by endpoint.
    """
    auth = {"Authorization": f"Bearer {key}"}
    endpoints: tuple[tuple[str, httpx.Client, str, dict[str, str]], ...] = (
        ("guarded", clients["guarded"], "/v1/decisions", auth),
        ("bare-booster", clients["booster"], "/bare-booster", {}),
        ("bare", clients["guarded"], "/bare", {}),
        ("bare-fast", clients["guarded"], "/bare-fast", {}),
    )
    out: dict[str, list[float]] = {name: [] for name, *_ in endpoints}
    for i in range(n + 200):  # the first 200 rounds warm up
        body = {"subject_id": f"s{i}", "features": recs[i % len(recs)]}
        for name, client, url, headers in endpoints:
            t = time.perf_counter()
            r = client.post(url, json=body, headers=headers)
            dt = time.perf_counter() - t
            if r.status_code != 200:
                raise RuntimeError(f"{url}: {r.status_code} {r.text[:200]}")
            if i >= 200:
                out[name].append(dt)
    return out


def server_cpu(
    servers: dict[str, tuple[int, str]], key: str, recs: list[dict[str, Any]], n: int
) -> dict[str, float]:
    """Server CPU seconds per request, by endpoint (``servers``: name -> (pid, base URL)).

    Requests are sent one at a time on one keep-alive connection, each endpoint in its own
    phase, three alternating rounds; the server process's CPU time (user + system, all
    threads: the log writer included) is read before and after. CPU time does not grow when
    other jobs take the cores, so the ratio holds on a loaded machine.
    """
    import psutil

    urls = {
        "guarded": "/v1/decisions",
        "bare-booster": "/bare-booster",
        "bare": "/bare",
        "bare-fast": "/bare-fast",
    }
    spent: dict[str, float] = dict.fromkeys(servers, 0.0)
    counter = iter(range(10**9))
    for _ in range(3):
        for name, (pid, base) in servers.items():
            proc = psutil.Process(pid)
            with httpx.Client(base_url=base, timeout=30) as c:
                headers = {"Authorization": f"Bearer {key}"}
                c.post(urls[name], json={"subject_id": "w", "features": recs[0]}, headers=headers)
                before = proc.cpu_times()
                for i in range(n):
                    body = {"subject_id": f"cpu{next(counter)}", "features": recs[i % len(recs)]}
                    r = c.post(urls[name], json=body, headers=headers)
                    if r.status_code != 200:
                        raise RuntimeError(f"{name}: {r.status_code} {r.text[:200]}")
                after = proc.cpu_times()
            spent[name] += (after.user - before.user) + (after.system - before.system)
    return {name: sec / (3 * n) for name, sec in spent.items()}


def throughput(base: str, url: str, key: str, recs: list[dict[str, Any]], seconds: float) -> float:
    """Requests per second with 8 concurrent keep-alive connections."""
    return load(base, url, key, recs, seconds)[0]


def load(
    base: str, url: str, key: str, recs: list[dict[str, Any]], seconds: float
) -> tuple[float, list[float]]:
    """8 concurrent keep-alive connections: requests per second and per-request seconds.

    The clients are built (and connected) before the clock starts: building an httpx client
    takes tens of milliseconds on a loaded machine.
    """
    clients = [httpx.Client(base_url=base, timeout=30) for _ in range(8)]
    counts = [0] * 8
    times: list[list[float]] = [[] for _ in range(8)]
    errors: list[str] = []
    start = threading.Barrier(9)
    stop = [0.0]

    def worker(w: int) -> None:
        c = clients[w]
        start.wait()
        i = 0
        while time.monotonic() < stop[0]:
            body = {"subject_id": f"t{w}-{i}", "features": recs[(w * 97 + i) % len(recs)]}
            t = time.perf_counter()
            r = c.post(url, json=body, headers={"Authorization": f"Bearer {key}"})
            times[w].append(time.perf_counter() - t)
            if r.status_code != 200:
                errors.append(f"{r.status_code} {r.text[:100]}")
                return
            counts[w] += 1
            i += 1

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for th in threads:
        th.start()
    t = time.monotonic()
    stop[0] = t + seconds
    start.wait()
    for th in threads:
        th.join()
    elapsed = time.monotonic() - t
    for c in clients:
        c.close()
    if errors:
        raise RuntimeError(f"{url}: {errors[0]}")
    return sum(counts) / elapsed, [x for w in times for x in w]


WRK_SCRIPT = """
local feats = {FEATS}
local counter = 0
local tid = 0
local threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

request = function()
  counter = counter + 1
  local body = '{"subject_id":"w' .. tid .. '-' .. counter .. '","features":'
    .. feats[(counter % #feats) + 1] .. '}'
  return wrk.format("POST", nil, nil, body)
end
"""


def load_wrk(
    base: str, url: str, key: str, recs: list[dict[str, Any]], seconds: float
) -> tuple[float, list[float]]:
    """As :func:`load`, driven by ``wrk`` (C, epoll; Debian package ``wrk``): 8 keep-alive
    connections on 2 threads, a distinct subject per request, the same feature rows.

    A Python client needs most of a core for ~1,500 req/s on this machine, so on 2 cores it,
    not the server, sets the throughput; wrk costs a fraction of that. Returns requests per
    second and ``[p50 seconds]`` (wrk reports percentiles, not samples).
    """
    import shutil

    exe = shutil.which("wrk")
    if exe is None:
        raise SystemExit("--client wrk needs the wrk program (Debian: apt-get install wrk)")
    feats = "{" + ",".join(json.dumps(json.dumps(r, separators=(",", ":"))) for r in recs) + "}"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(WRK_SCRIPT.replace("{FEATS}", feats))
    try:
        out = subprocess.run(
            [
                exe, "-t2", "-c8", f"-d{max(1, round(seconds))}s", "--latency",
                "-H", f"Authorization: Bearer {key}", "-H", "Content-Type: application/json",
                "-s", fh.name, base + url,
            ],
            capture_output=True, text=True, check=True, timeout=seconds + 60,
        ).stdout  # fmt: skip
    finally:
        os.unlink(fh.name)
    if "Non-2xx or 3xx responses" in out or "Socket errors" in out:
        raise RuntimeError(f"{url}: wrk saw failed requests:\n{out}")
    rps = float(out.split("Requests/sec:")[1].split()[0])
    p50 = out.split("Latency Distribution")[1].split("50%")[1].split()[0]
    unit = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
    number = p50.rstrip("usm")
    return rps, [float(number) * unit[p50[len(number) :]]]


def per_call_us(fn: Any, n: int, repeats: int = 5) -> float:
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - t) / n * 1e6)
    return statistics.median(runs)


class NullLog:
    """A prediction log that drops records (isolates the request path from the writer)."""

    def append(self, record: Any) -> None:
        pass

    def append_row(self, row: Any) -> None:
        pass


def in_process(model_dir: Path, home: Path, recs: list[dict[str, Any]], n: int) -> None:
    """Time each guard step in the serving process's own code path (one event loop)."""
    from tabguard.serving import ScoringService, _app, load_config, resolve_reference
    from tabguard.training import load_model

    bundle = load_model(model_dir)
    cfg = load_config(home)
    service = ScoringService(bundle, cfg, reference=resolve_reference(bundle, cfg))
    service.start()
    getattr(_app, "settle_heap", lambda: None)()  # what the app's start-up does (gc.freeze)
    key = service.keys.store.create("inproc", "decide")[1]
    spent: dict[str, float] = {}
    timing = [False]
    for step in service.pipeline.steps:
        real = step.run

        async def timed(ctx: Any, real: Any = real, name: str = step.name) -> Any:
            if not timing[0]:
                return await real(ctx)
            t = time.thread_time()
            try:
                return await real(ctx)
            finally:
                spent[name] = spent.get(name, 0.0) + time.thread_time() - t

        step.run = timed  # type: ignore[method-assign]
    auth = f"Bearer {key}"
    counter = iter(range(10**9))

    def bodies(k: int) -> list[bytes]:
        return [
            json.dumps(
                {"subject_id": f"p{next(counter)}", "features": recs[i % len(recs)]}
            ).encode()
            for i in range(k)
        ]

    cpu: list[float] = []

    async def run(batch: list[bytes]) -> list[float]:
        out = []
        for b in batch:
            t, c = time.perf_counter(), time.thread_time()
            ctx = await service.decide(auth, b)
            out.append(time.perf_counter() - t)
            cpu.append(time.thread_time() - c)
            if ctx.http_status != 200:
                raise RuntimeError(ctx.response)
        return out

    loop = asyncio.new_event_loop()
    k = n // 5
    real_log = service.pipeline.log
    loop.run_until_complete(run(bodies(500)))  # warm up (key cache, numba, allocators)
    with_log: list[float] = []
    cpu.clear()
    process = time.process_time()
    for _ in range(5):
        with_log += loop.run_until_complete(run(bodies(k)))
    process_us = (time.process_time() - process) / len(with_log) * 1e6
    cpu_log = list(cpu)
    service.pipeline.log = NullLog()  # type: ignore[assignment]
    service.pipeline._append_row = NullLog().append_row
    per_step: dict[str, list[float]] = {}
    totals: list[float] = []
    cpu.clear()
    for _ in range(5):
        totals += loop.run_until_complete(run(bodies(k)))
    cpu_nolog = list(cpu)
    timing[0] = True
    for _ in range(5):
        spent.clear()
        loop.run_until_complete(run(bodies(k)))
        for name, sec in spent.items():
            per_step.setdefault(name, []).append(sec / k * 1e6)
    timing[0] = False
    service.pipeline.log = real_log
    loop.run_until_complete(service.aclose())
    loop.close()
    steps_us = {name: statistics.median(v) for name, v in per_step.items()}
    model_us = steps_us.get("score", 0.0)
    mean_cpu = statistics.mean(cpu_nolog) * 1e6
    print(f"\nin process, ScoringService.decide (no HTTP), 5 runs of {k} requests, one loop:")
    print(f"  {'step':16s} {'us/request':>10s}   (thread CPU, mean; steps timed in other runs)")
    for name, us in steps_us.items():
        print(f"  {name:16s} {us:10.1f}")
    rest = mean_cpu - sum(steps_us.values())
    print(f"  {'record + metrics':16s} {rest:10.1f}   (context, row, journal, counters)")
    print(f"  {'total (mean)':16s} {mean_cpu:10.1f}")
    for label, wall, used in (
        ("log writer off", totals, cpu_nolog),
        ("SQLite log writer in the same process", with_log, cpu_log),
    ):
        print(
            f"  {label}: decide thread CPU p50 {pct(used, 50) * 1e6:.1f} us "
            f"(guards {pct(used, 50) * 1e6 - model_us:.1f} us, model score {model_us:.1f} us), "
            f"p99 {pct(used, 99) * 1e6:.1f} us; wall p50 {pct(wall, 50) * 1e6:.1f} us, "
            f"p99 {pct(wall, 99) * 1e6:.1f} us"
        )
    print(f"  process CPU per request with the log writer (all threads): {process_us:.1f} us")

    scorer = bundle.main
    fast = service.models.main
    rec = recs[0]
    row, _ = scorer.transform.transform_record(rec)
    df1 = pd.DataFrame([rec])
    fast_us = per_call_us(lambda: fast.score_row(row[0]), 20_000)
    matrix_us = per_call_us(lambda: scorer.positive_proba_matrix(row), 2_000)
    frame_us = per_call_us(lambda: scorer.positive_proba(df1), 500)
    rec_fast_us = per_call_us(
        lambda: fast.score_row(scorer.transform.transform_record(rec)[0][0]), 5_000
    )
    rec_slow_us = per_call_us(lambda: scorer.score_record(rec), 2_000)
    print(
        f"\nscoring one row ({scorer.kind}, {fast.path}, checked on {fast.checked_rows} rows, "
        f"max |diff| {fast.max_abs_diff:.1g}):"
    )
    rows = [
        ("fast path, transformed row", fast_us, None),
        ("positive_proba_matrix, one row", matrix_us, fast_us),
        ("positive_proba, one-row DataFrame", frame_us, fast_us),
        ("record: transform_record + fast path", rec_fast_us, None),
        ("record: Scorer.score_record", rec_slow_us, rec_fast_us),
    ]
    for label, us, base in rows:
        ratio = f"   ratio {us / base:5.1f}x" if base else ""
        print(f"  {label:38s} {us:8.1f} us{ratio}")


def multi_worker(
    root: Path,
    home: Path,
    key: str,
    admin: str,
    booster_base: str,
    recs: list[dict[str, Any]],
    seconds: float,
    workers: int,
    launchers: tuple[str, ...] = ("tabguard",),
    gunicorn: bool = True,
    client: str = "python",
) -> None:
    """The guarded service from N worker processes vs the bare-booster app in one process.

    With ``gunicorn``, the bare-booster app is also served from N processes by gunicorn's
    uvicorn workers and by ``run_workers``: the launcher alone compared on the same app
    (gunicorn is a benchmark-only comparison; it comes with the dev extra through mlflow).
    """
    drive = load_wrk if client == "wrk" else load
    code = root / "workers"
    code.mkdir(exist_ok=True)
    (code / "tgbench_workers.py").write_text(WORKER_APP)
    (code / "launch.py").write_text(WORKER_LAUNCHER)
    (code / "tgbench_bare.py").write_text(BARE_MODULE)
    results: dict[tuple[str, str], tuple[float, list[float]]] = {}
    # (launcher, endpoint) -> [server CPU s, client CPU s, machine busy CPU s, seconds, requests]
    acct: dict[tuple[str, str], list[float]] = {}
    bare = bare_multi(code, root / "booster.txt", workers) if gunicorn else []
    pids = {"bare-booster": booster_pid(booster_base)}
    pids.update({name: proc.pid for name, _, proc in bare})
    for launcher in launchers:
        port = free_port()
        env = {
            **os.environ,
            "TABGUARD_HOME": str(home),
            "TABGUARD_SERVE_MODEL": str(root / "model"),
            "PYTHONPATH": os.pathsep.join([str(code), os.environ.get("PYTHONPATH", "")]),
            "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="tgbench-metrics-"),
        }
        server = subprocess.Popen(
            [sys.executable, str(code / "launch.py"), launcher, str(port), str(workers)], env=env
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for_workers(base, admin, workers)
            for _ in range(3):  # alternating rounds, so a change of machine load hits all
                runs = [
                    ("guarded", base, "/v1/decisions"),
                    ("bare-fast", base, "/bare-fast"),
                    ("bare-booster", booster_base, "/bare-booster"),
                    *[(name, where, "/bare-booster") for name, where, _ in bare],
                ]
                for name, where, url in runs:
                    pid = server.pid if name in ("guarded", "bare-fast") else pids[name]
                    before, t0 = cpu_snapshot(pid), time.monotonic()
                    rps, times = drive(where, url, key, recs, seconds / 3)
                    spent = [a - b for a, b in zip(cpu_snapshot(pid), before, strict=True)]
                    spent.append(time.monotonic() - t0)
                    old_rps, old_times = results.get((launcher, name), (0.0, []))
                    results[(launcher, name)] = (old_rps + rps / 3, old_times + times)
                    total = acct.setdefault((launcher, name), [0.0] * 5)
                    # wrk reports percentiles, not samples: its count is rate x duration.
                    n_req = len(times) if client == "python" else rps * max(1, round(seconds / 3))
                    for i, v in enumerate([*spent, float(n_req)]):
                        total[i] += v
        finally:
            server.terminate()
            server.wait(60)
    for _, _, proc in bare:
        proc.terminate()
        proc.wait(60)
    print(
        f"\nHTTP, {workers} worker processes vs the bare-booster app in one process, 8 "
        f"keep-alive connections ({client} client), {seconds:.0f} s per endpoint (3 "
        "alternating rounds):"
    )
    print(f"  {'server':42s} {'endpoint':12s} {'req/s':>8s} {'p50 ms':>8s}")
    labels = {
        "uvicorn": f"uvicorn.run(workers={workers}) (Nagle on)",
        "tabguard": f"run_workers({workers}) (tabguard serve)",
    }
    for launcher in launchers:
        for name in ("guarded", "bare-fast"):
            rps, times = results[(launcher, name)]
            print(f"  {labels[launcher]:42s} {name:12s} {rps:8.0f} {pct(times, 50) * 1e3:8.2f}")
    booster = results[(launchers[-1], "bare-booster")]
    print(
        f"  {'bare-booster app, 1 process':42s} {'bare-booster':12s} {booster[0]:8.0f} "
        f"{pct(booster[1], 50) * 1e3:8.2f}"
    )
    if "uvicorn" in launchers:
        for name in ("guarded", "bare-fast"):
            before, after = results[("uvicorn", name)], results[("tabguard", name)]
            print(
                f"  {name}: tabguard/uvicorn launcher throughput {after[0] / before[0]:.2f}x, "
                f"p50 {pct(after[1], 50) / pct(before[1], 50):.2f}x"
            )
    for launcher in launchers:
        g, b = results[(launcher, "guarded")], results[(launcher, "bare-fast")]
        print(
            f"  {launcher} launcher: guarded/bare-fast throughput {g[0] / b[0]:.2f}x, "
            f"p50 {pct(g[1], 50) / pct(b[1], 50):.2f}x"
        )
    mine = results.get(("tabguard", "guarded"))
    if mine is not None:
        print(
            f"  guarded ({workers} workers) / bare-booster (1 process) throughput "
            f"{mine[0] / booster[0]:.2f}x"
        )
    print(
        "  CPU accounting during the same runs (cores = CPU seconds per second of run; the "
        "machine has 2):"
    )
    print(
        f"  {'endpoint':44s} {'server us/req':>13s} {'server':>7s} {'client':>7s} "
        f"{'others':>7s} {'idle':>6s}"
    )
    ncpu = psutil_cpu_count()
    last = launchers[-1]
    per_req: dict[str, float] = {}
    for (launcher, name), (srv, cli, busy, secs, n) in acct.items():
        if launcher != last and name not in ("guarded", "bare-fast"):
            continue
        label = (
            f"{name} ({labels[launcher].split(' ')[0]})"
            if name in ("guarded", "bare-fast")
            else name
        )
        per_req[label] = srv / n * 1e6
        others = max(0.0, busy - srv - cli)
        print(
            f"  {label:44s} {srv / n * 1e6:13.0f} {srv / secs:7.2f} {cli / secs:7.2f} "
            f"{others / secs:7.2f} {max(0.0, ncpu - busy / secs):6.2f}"
        )
    g_label = f"guarded ({labels['tabguard'].split(' ')[0]})"
    if g_label in per_req:
        ratio = per_req[g_label] / per_req["bare-booster"]
        print(
            f"  server CPU per request, guarded ({workers} workers) / bare-booster (1 process): "
            f"{ratio:.2f}x; guarded {workers} workers >= bare 1 process when both are CPU-bound "
            f"iff this is <= {workers} ({'yes' if ratio <= workers else 'no'})"
        )
    if bare:
        last = launchers[-1]
        for name, _, _ in bare:
            rps, times = results[(last, name)]
            print(f"  {name:55s} {rps:8.0f} {pct(times, 50) * 1e3:8.2f}")
        g, t = (
            results[(last, "bare-booster, gunicorn")],
            results[(last, "bare-booster, run_workers")],
        )
        print(
            f"  bare-booster app, run_workers / gunicorn ({workers} workers each): throughput "
            f"{t[0] / g[0]:.2f}x, p50 {pct(t[1], 50) / pct(g[1], 50):.2f}x"
        )


def cpu_snapshot(pid: int) -> tuple[float, float, float]:
    """CPU seconds so far: the server (``pid`` and its children), this client process, and the
    whole machine (busy, all processes): the difference of two snapshots separates the
    server's work from the client's and from other jobs on the machine."""
    import psutil

    root = psutil.Process(pid)
    server = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        server += t.user + t.system
    me = psutil.Process().cpu_times()
    machine = psutil.cpu_times()
    busy = sum(
        getattr(machine, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq", "steal")
    )
    return server, me.user + me.system, busy


def psutil_cpu_count() -> int:
    import psutil

    return psutil.cpu_count() or 1


def bare_multi(
    code: Path, booster_file: Path, workers: int
) -> list[tuple[str, str, subprocess.Popen[bytes]]]:
    """The bare-booster app from ``workers`` processes: under gunicorn's uvicorn workers
    (the usual deployment of a FastAPI app) and under ``run_workers`` (tabguard's launcher)."""
    env = {
        **os.environ,
        "TGBENCH_BOOSTER_MODEL": str(booster_file),
        "PYTHONPATH": os.pathsep.join([str(code), os.environ.get("PYTHONPATH", "")]),
    }
    out = []
    for name in ("gunicorn", "run_workers"):
        port = free_port()
        if name == "gunicorn":
            cmd = [
                sys.executable, "-m", "gunicorn", "-w", str(workers), "-k",
                "uvicorn.workers.UvicornWorker", "-b", f"127.0.0.1:{port}", "--log-level",
                "warning", "tgbench_bare:app",
            ]  # fmt: skip
        else:
            cmd = [
                sys.executable, str(code / "launch.py"), "tabguard", str(port), str(workers),
                "tgbench_bare:app",
            ]  # fmt: skip
        proc = subprocess.Popen(cmd, env=env)
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, "/health")
        out.append((f"bare-booster, {name}", base, proc))
    return out


def wait_for_workers(base: str, admin: str, workers: int, timeout: float = 240) -> None:
    """Wait until every worker process answers (each loads the model on its own)."""
    deadline = time.monotonic() + timeout
    pids: set[int] = set()
    while len(pids) < workers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(pids)} of {workers} workers answered")
        try:
            with httpx.Client(base_url=base, timeout=10) as c:  # a new connection each time
                r = c.get("/health", headers={"Authorization": f"Bearer {admin}"})
                if r.status_code == 200:
                    pids.add(int(r.json()["detail"]["pid"]))
        except httpx.TransportError:
            pass
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="latency samples per endpoint")
    parser.add_argument("--seconds", type=float, default=5.0, help="throughput run per endpoint")
    parser.add_argument("--workers", type=int, default=2, help="processes of the multi-worker run")
    parser.add_argument(
        "--only",
        choices=["all", "single", "workers", "http", "inprocess"],
        default="all",
        help="single: one process and in process; workers: the multi-worker comparison; "
        "http: h11 on asyncio against httptools on uvloop (guarded and bare-booster); "
        "inprocess: only the in-process guard costs",
    )
    parser.add_argument(
        "--launchers",
        action="store_true",
        help="workers: also run uvicorn's own multi-worker launcher (Nagle on, for comparison)",
    )
    parser.add_argument(
        "--client",
        choices=["python", "wrk"],
        default="python",
        help="workers: the load generator (wrk: C, needs the wrk program; the Python client "
        "takes most of a core and then sets the throughput on a 2-core machine)",
    )
    args = parser.parse_args()
    from tabguard.serving import load_config, open_keys, resolve_reference
    from tabguard.training import TrainConfig, train

    recs = records()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        df = load_credit_default()
        reference = root / "train.csv"
        df.to_csv(reference, index=False)
        res = train(
            df,
            credit_default_contract(),
            TrainConfig(audit=False, track=False, report=False, n_bootstrap=10),
            out=root / "model",
        )
        print(
            f"model {res.bundle.version}: {res.bundle.main.kind}, "
            f"{res.bundle.main.native.num_trees()} trees"
        )
        home = root / "home"
        home.mkdir()
        (home / "tabguard.toml").write_text(
            '[limits]\nper_client = "100000/second"\nper_subject = "100/minute"\n'
            '[probing]\naction = "flag"\n'
        )
        cfg = load_config(home)
        with open_keys(cfg) as keys:
            key = keys.create("bench", "decide")[1]
            admin = keys.create("bench-admin", "admin")[1]
        # Profiled once and stored under the home, where every worker process finds it.
        resolve_reference(res.bundle, cfg, reference)
        booster_file = train_booster(df, root / "booster.txt")
        booster, booster_base = start_bare_booster(booster_file)
        try:
            if args.only in ("all", "single"):
                single_process(root, home, key, reference, booster_base, recs, args)
            if args.only == "inprocess":
                in_process(root / "model", home, recs, 5000)
            if args.only == "http":
                http_stacks(root, home, key, reference, booster_file, recs, args.requests)
            if args.only in ("all", "workers"):
                launchers = ("uvicorn", "tabguard") if args.launchers else ("tabguard",)
                multi_worker(
                    root, home, key, admin, booster_base, recs, args.seconds, args.workers,
                    launchers, client=args.client,
                )  # fmt: skip
        finally:
            booster.terminate()
            booster.wait(30)


def http_stacks(
    root: Path,
    home: Path,
    key: str,
    reference: Path,
    booster_file: Path,
    recs: list[dict[str, Any]],
    n: int,
) -> None:
    """The guarded app and the bare-booster app each under h11 on asyncio (what `tabguard
    serve` ran before) and under httptools on uvloop (what it runs now): server CPU per
    request and wall latency, four processes measured side by side in one run."""
    import psutil

    procs: list[subprocess.Popen[bytes]] = []
    servers: dict[str, tuple[int, str, str]] = {}
    try:
        for http, route in (("h11", "fastapi"), ("httptools", "fastapi"), ("httptools", "asgi")):
            port = free_port()
            env = {**os.environ, "TABGUARD_HOME": str(home), "TGBENCH_HTTP": http}
            env["TGBENCH_ROUTE"] = route
            cmd = [sys.executable, "-c", SERVER, str(root / "model"), str(port), str(reference)]
            proc = subprocess.Popen(cmd, env=env)
            procs.append(proc)
            base = f"http://127.0.0.1:{port}"
            wait_ready(base, "/health")
            name = f"guarded, {http}" + (", plain ASGI route" if route == "asgi" else "")
            servers[name] = (proc.pid, base, "/v1/decisions")
            if route == "asgi":
                continue
            bproc, bbase = start_bare_booster(booster_file, http)
            procs.append(bproc)
            servers[f"bare-booster, {http}"] = (bproc.pid, bbase, "/bare-booster")
        headers = {"Authorization": f"Bearer {key}"}
        cpu = dict.fromkeys(servers, 0.0)
        times: dict[str, list[float]] = {name: [] for name in servers}
        counter = iter(range(10**9))
        clients = {
            name: httpx.Client(base_url=base, timeout=30) for name, (_, base, _) in servers.items()
        }
        try:
            for name, (_, _, url) in servers.items():  # warm-up
                for i in range(100):
                    body = {"subject_id": f"w{next(counter)}", "features": recs[i % len(recs)]}
                    clients[name].post(url, json=body, headers=headers)
            for _ in range(3):  # CPU: each server in its own phase, three alternating rounds
                for name, (pid, _, url) in servers.items():
                    proc_ = psutil.Process(pid)
                    before = proc_.cpu_times()
                    for i in range(n // 3):
                        body = {"subject_id": f"c{next(counter)}", "features": recs[i % len(recs)]}
                        r = clients[name].post(url, json=body, headers=headers)
                        if r.status_code != 200:
                            raise RuntimeError(f"{name}: {r.status_code} {r.text[:200]}")
                    after = proc_.cpu_times()
                    cpu[name] += after.user + after.system - before.user - before.system
            for i in range(n):  # latency: one request to each server in turn
                body = {"subject_id": f"l{next(counter)}", "features": recs[i % len(recs)]}
                for name, (_, _, url) in servers.items():
                    t = time.perf_counter()
                    clients[name].post(url, json=body, headers=headers)
                    times[name].append(time.perf_counter() - t)
        finally:
            for c in clients.values():
                c.close()
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(30)
    per = {name: cpu[name] / (3 * (n // 3)) * 1e6 for name in servers}
    print(
        f"\nHTTP stacks, one process each; server CPU per request (user + system, all threads; "
        f"{3 * (n // 3)} sequential requests each, 3 alternating rounds), then wall time of "
        f"{n} requests alternating over the servers:"
    )
    print(f"  {'server':44s} {'CPU us/req':>11s} {'p50 ms':>8s} {'p99 ms':>8s}")
    for name in servers:
        v = times[name]
        print(f"  {name:44s} {per[name]:11.0f} {pct(v, 50) * 1e3:8.3f} {pct(v, 99) * 1e3:8.3f}")
    for app in ("guarded", "bare-booster"):
        a, b = f"{app}, h11", f"{app}, httptools"
        print(
            f"  {app}: httptools/h11 CPU {per[b] / per[a]:.2f}x, p50 "
            f"{pct(times[b], 50) / pct(times[a], 50):.2f}x, p99 "
            f"{pct(times[b], 99) / pct(times[a], 99):.2f}x"
        )
    a, b = "guarded, httptools", "guarded, httptools, plain ASGI route"
    print(
        f"  guarded, httptools: plain ASGI/FastAPI route CPU {per[b] / per[a]:.2f}x, p50 "
        f"{pct(times[b], 50) / pct(times[a], 50):.2f}x, p99 "
        f"{pct(times[b], 99) / pct(times[a], 99):.2f}x"
    )
    for g, b in (
        ("guarded, h11", "bare-booster, h11"),
        ("guarded, httptools", "bare-booster, httptools"),
        ("guarded, httptools, plain ASGI route", "bare-booster, httptools"),
    ):
        print(
            f"  {g} / {b}: CPU {per[g] / per[b]:.2f}x, p50 "
            f"{pct(times[g], 50) / pct(times[b], 50):.2f}x, p99 "
            f"{pct(times[g], 99) / pct(times[b], 99):.2f}x"
        )


def single_process(
    root: Path,
    home: Path,
    key: str,
    reference: Path,
    booster_base: str,
    recs: list[dict[str, Any]],
    args: Any,
) -> None:
    """One uvicorn process: latency and throughput vs the bare endpoints, then in process."""
    port = free_port()
    env = {**os.environ, "TABGUARD_HOME": str(home)}
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(root / "model"), str(port), str(reference)], env=env
    )
    base = f"http://127.0.0.1:{port}"
    bases = {"guarded": base, "bare-booster": booster_base, "bare": base, "bare-fast": base}
    urls = {
        "guarded": "/v1/decisions",
        "bare-booster": "/bare-booster",
        "bare": "/bare",
        "bare-fast": "/bare-fast",
    }
    try:
        wait_ready(base, "/health")
        with (
            httpx.Client(base_url=base, timeout=30) as guarded,
            httpx.Client(base_url=booster_base, timeout=30) as booster,
        ):
            lat = latency({"guarded": guarded, "booster": booster}, key, recs, args.requests)
        pids = {
            "guarded": (server.pid, base),
            "bare-booster": (booster_pid(booster_base), booster_base),
            "bare": (server.pid, base),
            "bare-fast": (server.pid, base),
        }
        cpu = server_cpu(pids, key, recs, max(200, args.requests // 3))
        # Three alternating rounds per endpoint, so a change of machine load hits all of them.
        done: dict[str, list[float]] = {name: [] for name in urls}
        for _ in range(3):
            for name, url in urls.items():
                done[name].append(throughput(bases[name], url, key, recs, args.seconds / 3))
        rps = {name: statistics.mean(v) for name, v in done.items()}
    finally:
        server.terminate()
        server.wait(30)
    n_lat = len(lat["guarded"])
    print(
        f"\nHTTP, one uvicorn process each, same client; {n_lat} alternating requests each, "
        f"then {args.seconds:.0f} s at 8 connections each (3 alternating rounds):"
    )
    print(f"  {'endpoint':42s} {'p50 ms':>8s} {'p99 ms':>8s} {'req/s':>8s}")
    labels = {
        "guarded": "/v1/decisions (all guards)",
        "bare-booster": "/bare-booster (FastAPI + Booster.predict)",
        "bare": "/bare (FastAPI + positive_proba)",
        "bare-fast": "/bare-fast (FastAPI + fast path)",
    }
    for name, label in labels.items():
        v = lat[name]
        print(f"  {label:42s} {pct(v, 50) * 1e3:8.3f} {pct(v, 99) * 1e3:8.3f} {rps[name]:8.0f}")
    g = lat["guarded"]
    for other in ("bare-booster", "bare", "bare-fast"):
        o = lat[other]
        print(
            f"  guarded/{other}: p50 {pct(g, 50) / pct(o, 50):.2f}x, p99 "
            f"{pct(g, 99) / pct(o, 99):.2f}x, throughput {rps['guarded'] / rps[other]:.2f}x"
        )
    print("  server CPU per request (user + system, all threads, sequential requests):")
    for name, label in labels.items():
        print(f"    {label:40s} {cpu[name] * 1e6:8.0f} us")
    ratio = cpu["guarded"] / cpu["bare-booster"]
    print(
        f"    guarded/bare-booster {ratio:.2f}x: two guarded workers out-serve one bare-booster "
        f"process when CPU-bound if this is below 2 ({'yes' if ratio < 2 else 'no'})"
    )
    in_process(root / "model", home, recs, 5000)


if __name__ == "__main__":
    main()
