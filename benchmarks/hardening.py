"""The service under attack and fault, measured through a real ``tabguard serve`` (loopback).

``flood``: a legitimate client's latency while 8 attackers send random API keys as fast as
they can (each from its own address, behind a trusted proxy), against the same client on an
idle service, with the failed-authentication limit on (``[limits] auth_failures``, default
``20/minute``) and off; then what the log holds: requests sent, answered (by status), log
rows, requests the rows account for, bytes stored.

``keys``: the cost of rejecting an unknown key id against a wrong secret for a known key id
(``SqlKeyStore.verify`` and a whole HTTP request, alternating, many repeats).

``workers``: SIGKILL one of two workers during a burst; seconds until both workers answer
again, with each way of readying a replacement.

Run::

    .venv/bin/python benchmarks/hardening.py                  # everything
    .venv/bin/python benchmarks/hardening.py --only flood --seconds 10
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from tabguard.datasets import credit_default_contract, load_credit_default

ATTACKERS = 8


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def records(n: int = 200) -> list[dict[str, Any]]:
    df = load_credit_default().head(n)
    names = list(credit_default_contract().features)
    return [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}
        for r in df[names].to_dict("records")
    ]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


class Service:
    """``tabguard serve`` in a subprocess."""

    def __init__(
        self, model: Path, home: Path, workers: int = 1, env: dict[str, str] | None = None
    ):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        full = {**os.environ, "TABGUARD_HOME": str(home), **(env or {})}
        full.pop("PROMETHEUS_MULTIPROC_DIR", None)
        tabguard = str(Path(sys.executable).parent / "tabguard")
        self.proc = subprocess.Popen(
            [
                tabguard,
                "serve",
                str(model),
                "--port",
                str(self.port),
                "--workers",
                str(workers),
                "--log-level",
                "warning",
            ],
            env=full,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait_ready(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/readyz", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the service did not start")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ---- flood ---------------------------------------------------------------------------------------


def legit_latencies(base: str, key: str, recs: list[dict[str, Any]], n: int) -> list[float]:
    out = []
    headers = {"Authorization": f"Bearer {key}", "X-Forwarded-For": "198.51.100.1"}
    with httpx.Client(base_url=base, timeout=30) as c:
        for i in range(n):
            body = {"subject_id": f"s{i}", "features": recs[i % len(recs)]}
            t = time.perf_counter()
            r = c.post("/v1/decisions", json=body, headers=headers)
            out.append(time.perf_counter() - t)
            if r.status_code != 200:
                raise RuntimeError(f"the legitimate client got {r.status_code}: {r.text}")
    return out


def attack(base: str, i: int, stop: threading.Event, body: bytes, codes: Counter[int]) -> None:
    headers = {"X-Forwarded-For": f"203.0.113.{i}", "Content-Type": "application/json"}
    with httpx.Client(base_url=base, timeout=30) as c:
        while not stop.is_set():
            auth = f"Bearer tg_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
            r = c.post("/v1/decisions", content=body, headers={**headers, "Authorization": auth})
            codes[r.status_code] += 1


def flood(root: Path, model: Path, recs: list[dict[str, Any]], n: int, rounds: int) -> None:
    body = json.dumps({"subject_id": "x", "features": recs[0]}).encode() + b" " * 7000
    print(f"\nflood: 1 worker; a legitimate client sends {n} requests one after another, idle and "
          f"while {ATTACKERS} attackers send random keys (7.6 KiB bodies) from their own "
          f"addresses; {rounds} alternating rounds")  # fmt: skip
    rows = []
    for setting, tarpit in (("20/minute", 1.0), ("20/minute", 0.0), ("off", 0.0)):
        name = f"{setting}, tarpit {tarpit:g} s" if setting != "off" else "off"
        home = root / f"flood-{setting.replace('/', '-')}-{tarpit}"
        home.mkdir()
        (home / "tabguard.toml").write_text(
            f'[limits]\nper_client = "off"\nauth_failures = "{setting}"\n'
            f"auth_tarpit = {tarpit}\n"
            '[server]\ntrusted_proxies = ["127.0.0.1"]\n'
        )
        from tabguard.serving import load_config, open_keys

        cfg = load_config(home)
        with open_keys(cfg) as keys:
            key = keys.create("bench", "decide")[1]
        service = Service(model, home)
        service.wait_ready()
        idle: list[float] = []
        busy: list[float] = []
        codes: Counter[int] = Counter()
        seconds = 0.0
        try:
            legit_latencies(service.base, key, recs, 50)  # warm up
            for _ in range(rounds):
                idle += legit_latencies(service.base, key, recs, n)
                stop = threading.Event()
                threads = [
                    threading.Thread(target=attack, args=(service.base, i, stop, body, codes))
                    for i in range(ATTACKERS)
                ]
                started = time.perf_counter()
                for t in threads:
                    t.start()
                time.sleep(0.5)  # the flood is on
                busy += legit_latencies(service.base, key, recs, n)
                stop.set()
                for t in threads:
                    t.join()
                seconds += time.perf_counter() - started
        finally:
            service.stop()
        engine = sa.create_engine(cfg.stores.log)
        with engine.connect() as conn:
            logged = conn.execute(
                sa.text("select status, guard_actions, length(raw) from tg_predictions")
            ).all()
        engine.dispose()
        weighted: Counter[str] = Counter()
        stored = 0
        for status, actions, size in logged:
            w = [a["requests"] for a in json.loads(actions) if "requests" in a]
            weighted[status] += w[0] if w else 1
            stored += int(size)
        sent = sum(codes.values())
        legit_sent = (n * 2) * rounds + 50
        rows.append((name, idle, busy, codes, sent, seconds, logged, weighted, stored, legit_sent))
    print(f"  {'auth_failures':24s} {'idle p50':>9s} {'flood p50':>10s} {'ratio':>6s} "
          f"{'p99 idle/flood ms':>18s} {'attack req/s':>12s}  attackers answered")  # fmt: skip
    for setting, idle, busy, codes, sent, seconds, *_ in rows:
        print(
            f"  {setting:24s} {pct(idle, 50) * 1e3:8.2f}  {pct(busy, 50) * 1e3:9.2f} "
            f"{pct(busy, 50) / pct(idle, 50):6.2f} "
            f"{pct(idle, 99) * 1e3:8.1f}/{pct(busy, 99) * 1e3:<8.1f} "
            f"{sent / seconds:12.0f}  {dict(sorted(codes.items()))}"
        )
    print("  the log (a summary row stands for `requests` refused requests):")
    for setting, _, _, codes, sent, _, logged, weighted, stored, legit_sent in rows:
        print(
            f"  {setting:24s} sent {sent + legit_sent:,} (attackers {sent:,}), answered "
            f"{sum(codes.values()) + legit_sent:,}; {len(logged):,} log rows account for "
            f"{sum(weighted.values()):,} requests {dict(sorted(weighted.items()))}; raw column "
            f"{stored / 1024:,.0f} KiB ({stored / max(sent, 1):,.0f} B per attacker request)"
        )


# ---- keys ----------------------------------------------------------------------------------------


def keys_timing(root: Path, model: Path, n: int, repeats: int = 7) -> None:
    """An unknown key id against a wrong secret for a known id: store call and HTTP request."""
    from tabguard.serving import SqlKeyStore, load_config, open_keys

    store = SqlKeyStore(f"sqlite:///{root / 'keys.db'}")
    for i in range(200):
        store.create(f"client-{i}", "decide")
    known_id = store.create("bank-a", "decide")[0]

    def unknown() -> str:
        return f"tg_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"

    def wrong() -> str:
        return f"tg_{known_id}_{secrets.token_urlsafe(32)}"

    def per_call(make: Any) -> float:
        keys = [make() for _ in range(n)]
        t = time.perf_counter()
        for k in keys:
            if store.verify(k) is not None:
                raise RuntimeError("a made-up key verified")
        return (time.perf_counter() - t) / n * 1e6

    timings: dict[str, list[float]] = {"unknown key id": [], "known id, wrong secret": []}
    for _ in range(repeats):  # alternating, so load changes hit both
        timings["unknown key id"].append(per_call(unknown))
        timings["known id, wrong secret"].append(per_call(wrong))
    store.close()
    print(f"\nkeys: SqlKeyStore.verify (SQLite), median of {repeats} alternating runs of {n} calls")
    med = {k: sorted(v)[len(v) // 2] for k, v in timings.items()}
    for name, value in med.items():
        runs = ", ".join(f"{x:.0f}" for x in timings[name])
        print(f"  {name:28s} {value:8.1f} us/call  (runs: {runs})")
    gap = med["unknown key id"] - med["known id, wrong secret"]
    print(f"  difference (unknown - wrong secret): {gap:+.1f} us")

    home = root / "keys-home"
    home.mkdir()
    (home / "tabguard.toml").write_text('[limits]\nper_client = "off"\nauth_failures = "off"\n')
    with open_keys(load_config(home)) as ks:
        known_id = ks.create("bank-a", "decide")[0]
    service = Service(model, home)
    service.wait_ready()
    http: dict[str, list[float]] = {"unknown key id": [], "known id, wrong secret": []}
    body = json.dumps({"subject_id": "x", "features": {}}).encode()
    try:
        with httpx.Client(base_url=service.base, timeout=30) as c:
            for i in range(4 * n // 10):
                for name, make in (("unknown key id", unknown), ("known id, wrong secret", wrong)):
                    headers = {"Authorization": f"Bearer {make()}"}
                    t = time.perf_counter()
                    r = c.post("/v1/decisions", content=body, headers=headers)
                    if i >= 50:  # warm-up left out
                        http[name].append(time.perf_counter() - t)
                    if r.status_code != 401:
                        raise RuntimeError(f"expected 401, got {r.status_code}")
    finally:
        service.stop()
    count = len(http["unknown key id"])
    print(f"  HTTP 401 through tabguard serve, {count} alternating requests each:")
    for name, values in http.items():
        p50, p90 = pct(values, 50) * 1e3, pct(values, 90) * 1e3
        print(f"  {name:28s} p50 {p50:7.3f} ms   p90 {p90:7.3f} ms")
    ratio = pct(http["unknown key id"], 50) / pct(http["known id, wrong secret"], 50)
    print(f"  p50 ratio unknown/wrong secret: {ratio:.3f}")


# ---- workers -------------------------------------------------------------------------------------

#: Runs 2 workers of the service under a chosen supervisor; with HEAVY=1 the launcher (the
#: spawned workers' main module) imports the service stack first, as `tabguard serve` did
#: before the CLI imported it lazily.
LAUNCHER = """
import os, sys
if os.environ.get("HEAVY") == "1":
    import tabguard.serving._app  # FastAPI, numba, LightGBM: what each spawned worker re-ran
from uvicorn.supervisors import Multiprocess
from tabguard.serving._server import NoDelayConfig, Supervisor

if __name__ == "__main__":
    mode, port = sys.argv[1], int(sys.argv[2])
    config = NoDelayConfig("tabguard.serving._app:app_from_env", factory=True, workers=2,
                           port=port, log_level="info", access_log=False, proxy_headers=False)
    sock = config.bind_socket()
    if mode == "uvicorn":
        Multiprocess(config, sockets=[sock]).run()
    else:
        Supervisor(config, [sock], startup_timeout=120).run()
"""


def worker_pids(pid: int) -> list[int]:
    import psutil

    out = []
    for c in psutil.Process(pid).children():
        cmd = " ".join(c.cmdline())
        if "spawn_main" in cmd and "resource_tracker" not in cmd:
            out.append(c.pid)
    return sorted(out)


def restart_once(root: Path, model: Path, mode: str, heavy: bool, key: str, home: Path) -> str:
    """SIGKILL one of two workers under a burst; how long until a new worker is ready."""
    launcher = root / "launch_workers.py"
    launcher.write_text(LAUNCHER)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = root / f"workers-{mode}-{heavy}.log"
    env = {
        **os.environ,
        "TABGUARD_HOME": str(home),
        "TABGUARD_SERVE_MODEL": str(model),
        "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="tgbench-metrics-"),
        "HEAVY": "1" if heavy else "0",
    }
    with log_path.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(launcher), mode, str(port)], env=env, stdout=out, stderr=out
        )
    done = threading.Event()
    answered: Counter[int] = Counter()
    recs = records()

    def burst(i: int) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        j = 0
        while not done.is_set():
            try:
                with httpx.Client(base_url=base, timeout=10) as c:
                    while not done.is_set():
                        body = {"subject_id": f"b{i}-{j}", "features": recs[j % len(recs)]}
                        answered[
                            c.post("/v1/decisions", json=body, headers=headers).status_code
                        ] += 1
                        j += 1
            except httpx.TransportError:
                answered[-1] += 1
                time.sleep(0.01)

    try:
        deadline = time.monotonic() + 240
        while log_path.read_text().count("Application startup complete.") < 2:
            if time.monotonic() > deadline:
                return "did not start"
            time.sleep(0.1)
        pids = worker_pids(proc.pid)
        threads = [threading.Thread(target=burst, args=(i,), daemon=True) for i in range(8)]
        for t in threads:
            t.start()
        time.sleep(2.0)  # the burst is on
        killed_at = time.monotonic()
        os.kill(pids[0], signal.SIGKILL)
        ready = None
        while time.monotonic() - killed_at < 120:
            if log_path.read_text().count("Application startup complete.") >= 3:
                ready = time.monotonic() - killed_at
                break
            time.sleep(0.05)
        done.set()
        for t in threads:
            t.join(30)
        text = log_path.read_text()
        died = text.count(" died")
        outcome = f"{ready:6.1f} s" if ready is not None else "not within 120 s"
        return f"{outcome}; workers replaced {died} time(s); burst answers {answered[200]:,}"
    finally:
        done.set()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


def workers(root: Path, model: Path, repeats: int) -> None:
    from tabguard.serving import load_config, open_keys

    home = root / "workers-home"
    home.mkdir()
    (home / "tabguard.toml").write_text('[limits]\nper_client = "off"\n')
    with open_keys(load_config(home)) as keys:
        key = keys.create("bench", "decide")[1]
    print(
        "\nworkers: 2 workers, 8 clients bursting; SIGKILL one worker; seconds until its "
        "replacement has started (uvicorn 'Application startup complete.')"
    )
    variants = [
        ("uvicorn supervisor, heavy main module (before)", "uvicorn", True),
        ("uvicorn supervisor, light main module", "uvicorn", False),
        ("tabguard Supervisor (startup grace), light", "tabguard", False),
    ]
    for label, mode, heavy in variants:
        for r in range(repeats):
            print(f"  {label:48s} run {r + 1}: {restart_once(root, model, mode, heavy, key, home)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["all", "flood", "keys", "workers"], default="all")
    parser.add_argument("--requests", type=int, default=300, help="legitimate requests per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from tabguard.training import TrainConfig, train

    recs = records()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        res = train(
            load_credit_default(),
            credit_default_contract(),
            TrainConfig(audit=False, track=False, report=False, n_bootstrap=10),
            out=root / "model",
        )
        print(f"model {res.bundle.version}: {res.bundle.main.native.num_trees()} trees")
        if args.only in ("all", "flood"):
            flood(root, root / "model", recs, args.requests, args.rounds)
        if args.only in ("all", "keys"):
            keys_timing(root, root / "model", 2000)
        if args.only in ("all", "workers"):
            workers(root, root / "model", args.rounds)


if __name__ == "__main__":
    main()
