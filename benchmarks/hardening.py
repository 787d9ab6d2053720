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

``faults``: 8 clients send a bounded burst; the process is SIGKILLed, or one of two workers,
or PostgreSQL (the log database, behind a TCP proxy that is cut) goes away and then the
process is SIGKILLed; the log is opened again (which replays journals and spool). Requests
sent, answered with 200, recorded, answered without a record and recorded twice, with the
journal (the default) and without it (``[log] journal = false``) for comparison.

``journal``: the latency cost of the journal: one client sends requests one after another to
four services running side by side (journal off, and ``fsync`` ``interval``, ``always``,
``never``), alternating rounds; client p50/p99 and the server's CPU time per request.

Run::

    .venv/bin/python benchmarks/hardening.py                  # everything
    .venv/bin/python benchmarks/hardening.py --only flood --requests 300 --rounds 3
    .venv/bin/python benchmarks/hardening.py --only faults --rounds 2
    .venv/bin/python benchmarks/hardening.py --only journal --requests 500 --rounds 3

The PostgreSQL fault needs the server at ``TABGUARD_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``); each run creates its own database and drops it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa

from tabguard.datasets import credit_default_contract, load_credit_default

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' TCP proxy and burst client (tests/serving/)

ATTACKERS = 8
POSTGRES = os.environ.get("TABGUARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


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
        self.proc = subprocess.Popen(  # its own session: a SIGKILL can reach every process
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
            start_new_session=True,
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

    def kill(self) -> None:
        """SIGKILL every process of the service (no shutdown, no drain)."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
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


def attackers(base: str, body: bytes, running: Any, stop: Any, out: Any) -> None:
    """The attackers, in a process of their own (they do not take the measuring client's GIL).

    Each of :data:`ATTACKERS` threads sends random keys from its own address until ``stop``;
    ``running`` is set once all of them were answered once; the status counts go to ``out``.
    """
    codes: Counter[int] = Counter()
    lock = threading.Lock()
    first = threading.Barrier(ATTACKERS, action=running.set)

    def one(i: int) -> None:
        mine: Counter[int] = Counter()
        headers = {"X-Forwarded-For": f"203.0.113.{i}", "Content-Type": "application/json"}
        with httpx.Client(base_url=base, timeout=30) as c:
            while True:
                auth = f"Bearer tg_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
                r = c.post(
                    "/v1/decisions", content=body, headers={**headers, "Authorization": auth}
                )
                mine[r.status_code] += 1
                if sum(mine.values()) == 1:
                    first.wait()
                if stop.is_set():
                    break
        with lock:
            codes.update(mine)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(ATTACKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(dict(codes))


def flood(root: Path, model: Path, recs: list[dict[str, Any]], n: int, rounds: int) -> None:
    body = json.dumps({"subject_id": "x", "features": recs[0]}).encode() + b" " * 7000
    mp = multiprocessing.get_context("spawn")
    print(f"\nflood: 1 worker; a legitimate client sends {n} requests one after another, idle and "
          f"while {ATTACKERS} attackers (threads of another process) send random keys (7.6 KiB "
          f"bodies) from their own addresses; {rounds} alternating rounds")  # fmt: skip
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
                running, stop, out = mp.Event(), mp.Event(), mp.Queue()
                proc = mp.Process(target=attackers, args=(service.base, body, running, stop, out))
                proc.start()
                if not running.wait(120):
                    raise RuntimeError("the attackers did not start")
                started = time.perf_counter()
                time.sleep(0.5)  # the flood is on
                busy += legit_latencies(service.base, key, recs, n)
                stop.set()
                codes.update(out.get(timeout=120))
                proc.join(60)
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


def keys_timing(root: Path, model: Path, n: int) -> None:
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

    # One call of each kind after the other, many times: wall time and this thread's CPU time
    # (SQLite runs in the calling thread; under a loaded machine the CPU time is the stable
    # figure, the wall time mostly measures waiting for a core).
    kinds = {"unknown key id": unknown, "known id, wrong secret": wrong}
    wall: dict[str, list[float]] = {k: [] for k in kinds}
    cpu: dict[str, list[float]] = {k: [] for k in kinds}
    for i in range(n):
        for name, make in list(kinds.items())[:: 1 if i % 2 else -1]:  # both orders
            key = make()
            t, c = time.perf_counter_ns(), time.thread_time_ns()
            found = store.verify(key)
            cpu[name].append((time.thread_time_ns() - c) / 1e3)
            wall[name].append((time.perf_counter_ns() - t) / 1e3)
            if found is not None:
                raise RuntimeError("a made-up key verified")
    store.close()
    print(f"\nkeys: SqlKeyStore.verify (SQLite, 201 keys), {n:,} calls of each kind, alternating")
    print(f"  {'':28s} {'CPU p50 us':>10s} {'CPU mean us':>11s} {'wall p50 us':>11s}")
    for name in kinds:
        c_med, c_mean = pct(cpu[name], 50), sum(cpu[name]) / len(cpu[name])
        print(f"  {name:28s} {c_med:10.1f} {c_mean:11.1f} {pct(wall[name], 50):11.1f}")
    gap = pct(cpu["unknown key id"], 50) - pct(cpu["known id, wrong secret"], 50)
    print(f"  CPU p50 difference (unknown - wrong secret): {gap:+.1f} us")

    home = root / "keys-home"
    home.mkdir()
    (home / "tabguard.toml").write_text('[limits]\nper_client = "off"\nauth_failures = "off"\n')
    with open_keys(load_config(home)) as ks:
        known_id = ks.create("bank-a", "decide")[0]
    service = Service(model, home)
    service.wait_ready()
    http: dict[str, list[float]] = {k: [] for k in kinds}
    server_cpu: dict[str, float] = dict.fromkeys(kinds, 0.0)
    body = json.dumps({"subject_id": "x", "features": {}}).encode()
    block, blocks = 20, n // 20
    try:
        import psutil

        server = psutil.Process(service.proc.pid)
        with httpx.Client(base_url=service.base, timeout=30) as c:
            for i in range(blocks + 3):  # blocks of each kind in turn; 3 warm-up rounds
                for name, make in list(kinds.items())[:: 1 if i % 2 else -1]:
                    before = server.cpu_times()
                    for _ in range(block):
                        headers = {"Authorization": f"Bearer {make()}"}
                        t = time.perf_counter()
                        r = c.post("/v1/decisions", content=body, headers=headers)
                        if i >= 3:
                            http[name].append(time.perf_counter() - t)
                        if r.status_code != 401:
                            raise RuntimeError(f"expected 401, got {r.status_code}")
                    after = server.cpu_times()
                    if i >= 3:
                        server_cpu[name] += after.user + after.system - before.user - before.system
    finally:
        service.stop()
    count = len(http["unknown key id"])
    print(
        f"  HTTP 401 through tabguard serve, {count} requests each, alternating blocks of {block}:"
    )
    for name, values in http.items():
        p50, p90 = pct(values, 50) * 1e3, pct(values, 90) * 1e3
        per = server_cpu[name] / count * 1e6
        print(f"  {name:28s} p50 {p50:7.3f} ms   p90 {p90:7.3f} ms   server CPU {per:6.0f} us/req")
    ratio = pct(http["unknown key id"], 50) / pct(http["known id, wrong secret"], 50)
    cpu_ratio = server_cpu["unknown key id"] / server_cpu["known id, wrong secret"]
    print(f"  unknown/wrong secret: p50 ratio {ratio:.3f}, server CPU ratio {cpu_ratio:.3f}")


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
                died = log_path.read_text().count(" died")
                return f"2 workers not ready within 240 s of the start ({died} killed and replaced)"
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


# ---- faults --------------------------------------------------------------------------------------


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database on the shared server, dropped afterwards."""
    admin = sa.create_engine(
        POSTGRES.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    name = f"tg_bench_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{POSTGRES.rsplit('/', 1)[0]}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def recorded(home: Path) -> tuple[int, Counter[str]]:
    """Rows and decision_id -> rows, after opening the log (which replays journals, spool)."""
    from tabguard.serving import load_config, open_log
    from tabguard.serving._log_read import LogReader

    cfg = load_config(home)
    plog = open_log(cfg)
    try:
        plog.flush(120)
        plog.replay(120)
    finally:
        plog.close()
    reader = LogReader(cfg.stores.log)
    try:
        ids = reader.query(parse_json=False)["decision_id"].tolist()
    finally:
        reader.close()
    return len(ids), Counter(ids)


def fault_once(
    root: Path, model: Path, recs: list[dict[str, Any]], fault: str, journal: bool,
    per_client: int, pg_url: str | None,
) -> dict[str, Any]:  # fmt: skip
    """One burst under one fault; what was sent, answered and recorded."""
    from tests.serving._service import Burst  # the same 8-client burst as the journal tests
    from tests.serving._tcp_proxy import TcpProxy

    from tabguard.serving import load_config, open_keys

    home = root / f"fault-{fault}-{journal}-{uuid.uuid4().hex[:6]}"
    home.mkdir()
    proxy = None
    toml = f'[limits]\nper_client = "off"\n[log]\njournal = {str(journal).lower()}\n'
    if fault == "postgres":
        parts = urlsplit(pg_url or "")
        proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432).start()
        url = parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}").geturl()
        toml = f'[stores]\nlog = "{url}"\n' + toml
    (home / "tabguard.toml").write_text(toml)
    cfg = load_config(home)
    with open_keys(cfg) as keys:
        key = keys.create("bank-a", "decide")[1]
        admin = keys.create("ops", "admin")[1]
    service = Service(model, home, workers=2 if fault == "worker" else 1)
    try:
        service.wait_ready()
        victim = None
        if fault == "worker":
            health = httpx.get(
                f"{service.base}/health", headers={"Authorization": f"Bearer {admin}"}, timeout=10
            )
            victim = int(health.json()["detail"]["pid"])
        burst = Burst(service.base, key, recs)
        killed = threading.Event()
        cut_at, kill_at = per_client * 8 // 6, per_client * 8 * 5 // 12

        def on_answered(n: int) -> None:
            if proxy is not None and n == cut_at:
                proxy.cut()  # the database host goes away mid-burst
            if n >= kill_at and not killed.is_set():
                killed.set()
                if victim is not None:
                    os.kill(victim, signal.SIGKILL)
                else:
                    service.kill()

        burst.run(per_client, on_answered)
        service.stop()  # with a killed worker: the survivor drains on a graceful stop
        if proxy is not None:
            proxy.start()
        rows, ids = recorded(home)
    finally:
        service.stop()
        if proxy is not None:
            proxy.cut()
    answered = set(burst.answered)
    return {
        "sent": burst.sent,
        "answered": len(answered),
        "recorded": rows,
        "missing": len(answered - set(ids)),
        "duplicated": sum(n - 1 for n in ids.values() if n > 1),
    }


def faults(
    root: Path, model: Path, recs: list[dict[str, Any]], rounds: int, per_client: int
) -> None:
    print(
        f"\nfaults: 8 clients x {per_client} requests; the fault strikes after 5/12 of the "
        "requests were answered (PostgreSQL cut after 1/6); log opened again afterwards"
    )
    print(
        f"  {'fault':40s} {'journal':7s} {'sent':>6s} {'answered':>9s} {'recorded':>9s} "
        f"{'answered, no record':>20s} {'duplicated':>10s}"
    )
    labels = {
        "process": "SIGKILL of the process (1 worker)",
        "worker": "SIGKILL of one of two workers",
        "postgres": "PostgreSQL down, then SIGKILL",
    }
    for fault in ("process", "worker", "postgres"):
        for journal in (True, False):
            for _ in range(rounds):
                try:
                    if fault == "postgres":
                        with postgres_database() as url:
                            res = fault_once(root, model, recs, fault, journal, per_client, url)
                    else:
                        res = fault_once(root, model, recs, fault, journal, per_client, None)
                except sa.exc.OperationalError as exc:
                    print(f"  {labels[fault]:40s} skipped: PostgreSQL unavailable ({exc})")
                    break
                print(
                    f"  {labels[fault]:40s} {'on' if journal else 'off':7s} {res['sent']:6,d} "
                    f"{res['answered']:9,d} {res['recorded']:9,d} {res['missing']:20,d} "
                    f"{res['duplicated']:10,d}",
                    flush=True,
                )


# ---- journal cost --------------------------------------------------------------------------------


def in_process_append(root: Path, recs: list[dict[str, Any]], n: int = 5000) -> None:
    """What the journal adds to the request path: one serialised row and one write(2)."""
    from tabguard.serving import PredictionRecord
    from tabguard.serving._journal import Journal
    from tabguard.serving._record import dumps_line, record_to_row

    rows = [
        record_to_row(
            PredictionRecord(
                decision_id=uuid.uuid4().hex, status="accepted", raw=recs[i % len(recs)],
                features=recs[i % len(recs)], score=0.42, decision="approve", client="bench",
            )
        )
        for i in range(n)
    ]  # fmt: skip
    results: dict[str, list[float]] = {"serialise (orjson)": []}
    for policy in ("never", "interval", "always"):
        results[f"serialise + append, fsync {policy}"] = []
    for r in range(5):  # alternating runs
        t = time.perf_counter()
        for row in rows:
            dumps_line(row)
        results["serialise (orjson)"].append((time.perf_counter() - t) / n * 1e6)
        for policy in ("never", "interval", "always"):
            j = Journal(root / f"append-{policy}-{r}", fsync=policy)  # type: ignore[arg-type]
            count = n if policy != "always" else n // 10
            t = time.perf_counter()
            for row in rows[:count]:
                j.append(dumps_line(row))
            results[f"serialise + append, fsync {policy}"].append(
                (time.perf_counter() - t) / count * 1e6
            )
            j.close(drained=True)
    size = sum(len(dumps_line(row)) for row in rows) / n
    print(f"\njournal, in process: median of 5 alternating runs ({n} rows of ~{size:.0f} bytes)")
    for name, values in results.items():
        print(f"  {name:36s} {sorted(values)[2]:9.1f} us/record")


def journal_cost(root: Path, model: Path, recs: list[dict[str, Any]], n: int, rounds: int) -> None:
    """Latency and server CPU per request with the journal off and under each fsync policy."""
    import psutil

    from tabguard.serving import load_config, open_keys

    settings = {
        "journal off": "journal = false",
        "journal, fsync interval (default)": 'fsync = "interval"',
        "journal, fsync always": 'fsync = "always"',
        "journal, fsync never": 'fsync = "never"',
    }
    services: dict[str, tuple[Service, str]] = {}
    try:
        for name, line in settings.items():
            home = root / f"journal-{len(services)}"
            home.mkdir()
            (home / "tabguard.toml").write_text(f'[limits]\nper_client = "off"\n[log]\n{line}\n')
            with open_keys(load_config(home)) as keys:
                key = keys.create("bench", "decide")[1]
            services[name] = (Service(model, home), key)
        for service, key in services.values():
            service.wait_ready()
            legit_latencies(service.base, key, recs, 100)  # warm up
        lat: dict[str, list[float]] = {k: [] for k in services}
        cpu: dict[str, float] = dict.fromkeys(services, 0.0)
        for _ in range(rounds):  # alternating, so load changes hit every setting
            for name, (service, key) in services.items():
                proc = psutil.Process(service.proc.pid)
                before = proc.cpu_times()
                lat[name] += legit_latencies(service.base, key, recs, n)
                after = proc.cpu_times()
                cpu[name] += (after.user + after.system) - (before.user + before.system)
    finally:
        for service, _ in services.values():
            service.stop()
    in_process_append(root, recs)
    print(
        f"\njournal: 1 worker each, 4 services side by side; one client, {n} requests one after "
        f"another per service and round, {rounds} alternating rounds (journal on {root})"
    )
    base = pct(lat["journal off"], 50)
    base_cpu = cpu["journal off"]
    print(f"  {'setting':36s} {'p50 ms':>7s} {'p99 ms':>7s} {'p50 ratio':>9s} "
          f"{'server CPU us/req':>17s} {'CPU ratio':>9s}")  # fmt: skip
    for name in services:
        total = n * rounds
        print(
            f"  {name:36s} {pct(lat[name], 50) * 1e3:7.2f} {pct(lat[name], 99) * 1e3:7.2f} "
            f"{pct(lat[name], 50) / base:9.2f} {cpu[name] / total * 1e6:17.0f} "
            f"{cpu[name] / base_cpu:9.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only", choices=["all", "flood", "keys", "workers", "faults", "journal"], default="all"
    )
    parser.add_argument("--requests", type=int, default=300, help="legitimate requests per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-client", type=int, default=60, help="burst size per client (faults)")
    args = parser.parse_args()
    from tabguard.training import TrainConfig, train

    recs = records()
    # On the project's disk, not a tmpfs: fsync must cost what it costs in production.
    with tempfile.TemporaryDirectory(dir=ROOT, prefix=".bench-hardening-") as tmp:
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
        if args.only in ("all", "faults"):
            faults(root, root / "model", recs, args.rounds, args.per_client)
        if args.only in ("all", "journal"):
            journal_cost(root, root / "model", recs, args.requests, args.rounds)


if __name__ == "__main__":
    main()
