"""`tabguard serve --workers 2`: a real multi-process service sharing Redis and SQLite.

Two uvicorn worker processes behind one port must enforce a per-subject limit *exactly*
(the counters live in Redis), log every request (one SQLite log shared by both), and report
metrics summed over both workers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tabguard.serving import load_config, open_keys, open_log
from tests.serving.conftest import body_of, write_config


def stop(proc: subprocess.Popen[str]) -> str:
    """SIGTERM the service (a graceful shutdown drains the log); return its output."""
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.redis
@pytest.mark.slow
def test_two_workers_share_redis_and_enforce_a_per_subject_limit_exactly(
    model_dir: Path,
    tmp_path: Path,
    redis_server_url: str,
    redis_prefix: str,
    sample_records: list[dict[str, Any]],
) -> None:
    home = tmp_path / "home"
    write_config(
        home,
        '[limits]\nper_client = "off"\nper_subject = "5/minute"\n'
        f'storage = "{redis_server_url}"\nkey_prefix = "{redis_prefix}"\n'
        "[log]\nflush_interval = 0.1\n",
    )
    cfg = load_config(home)
    with open_keys(cfg) as keys:
        key = keys.create("bank-a", "decide")[1]
        admin = keys.create("ops", "admin")[1]
    port = free_port()
    env = {**os.environ, "TABGUARD_HOME": str(home)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    tabguard = str(Path(sys.executable).parent / "tabguard")
    cmd = [tabguard, "serve", str(model_dir), "--workers", "2"]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        pids: set[int] = set()
        with httpx.Client(base_url=base, timeout=10) as client:
            while time.monotonic() < deadline:
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.3)
            else:
                pytest.fail("the service did not start")

        def health_pid(_: int) -> int:
            # a new connection per call, so the kernel spreads them over both workers
            with httpx.Client(base_url=base, timeout=10) as c:
                r = c.get("/health", headers={"Authorization": f"Bearer {admin}"})
                return int(r.json()["detail"]["pid"])

        def decide(i: int) -> int:
            with httpx.Client(base_url=base, timeout=10) as c:
                r = c.post(
                    "/v1/decisions",
                    json=body_of(sample_records[i % 20], subject="one-customer"),
                    headers={"Authorization": f"Bearer {key}"},
                )
                return r.status_code

        with ThreadPoolExecutor(8) as pool:
            # Both workers must be up and answering before the load (the second one may still
            # be loading the model when the first answers; on a busy 2-core machine that took
            # over a minute once).
            deadline = time.monotonic() + 180
            while len(pids) < 2 and time.monotonic() < deadline:
                pids |= set(pool.map(health_pid, range(16)))
                time.sleep(0.2)
            codes = Counter(pool.map(decide, range(40)))
        assert len(pids) == 2, f"only workers {pids} answered"
        assert codes == {200: 5, 429: 35}
        with httpx.Client(base_url=base, timeout=10) as client:
            metrics = client.get("/metrics").text
        # summed over both workers (multi-process metrics)
        assert (
            'tabguard_requests_total{decision="none",segment="",status="rate_limited"} 35.0'
            in metrics
        )
    finally:
        out = stop(proc)
    assert proc.returncode == 0, out
    assert "with 2 worker(s)" in out
    plog = open_log(cfg)
    try:
        assert plog.flush(10)
        df = plog.query()
    finally:
        plog.close()
    assert len(df) == 40  # every request of both workers, drained at shutdown
    assert Counter(df["status"]) == {"accepted": 5, "rate_limited": 35}


def _socket_of(pid: int, fd: int) -> socket.socket:
    """A duplicate of another process's socket (``pidfd_getfd``: Linux >= 5.6, ptrace rights)."""
    import ctypes

    from tests.conftest import REQUIRE_SERVICES

    libc = ctypes.CDLL(None, use_errno=True)
    try:
        pidfd = os.pidfd_open(pid)
        dup = libc.syscall(438, pidfd, fd, 0)  # SYS_pidfd_getfd, the same number on every arch
        err = ctypes.get_errno()
        os.close(pidfd)
    except (AttributeError, OSError) as exc:
        dup, err = -1, getattr(exc, "errno", 0) or 0
    if dup < 0:
        msg = f"cannot read another process's socket options (pidfd_getfd: {os.strerror(err)})"
        if REQUIRE_SERVICES:
            pytest.fail(f"{msg}; TABGUARD_REQUIRE_SERVICES=1 forbids skipping")
        pytest.skip(msg)
    return socket.socket(fileno=dup)


@pytest.mark.slow
def test_two_workers_answer_keep_alive_connections_with_tcp_nodelay(
    model_dir: Path, tmp_path: Path
) -> None:
    """uvicorn's own multi-worker listener leaves Nagle on (a 40 ms wait per response)."""
    import http.client

    import psutil

    home = tmp_path / "home"
    write_config(home, "[log]\nflush_interval = 0.1\n")
    port = free_port()
    env = {**os.environ, "TABGUARD_HOME": str(home)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    tabguard = str(Path(sys.executable).parent / "tabguard")
    proc = subprocess.Popen(
        [tabguard, "serve", str(model_dir), "--workers", "2", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("the service did not start")
                time.sleep(0.3)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for _ in range(2):  # the second request reuses the connection
            conn.request("GET", "/health")
            response = conn.getresponse()
            assert response.status == 200
            assert response.getheader("connection", "keep-alive").lower() != "close"
            response.read()
        assert conn.sock is not None
        client_port = conn.sock.getsockname()[1]
        accepted: list[tuple[int, int]] = []
        for worker in psutil.Process(proc.pid).children(recursive=True):
            for c in worker.net_connections(kind="tcp"):
                if c.laddr.port == port and c.raddr and c.raddr.port == client_port:
                    accepted.append((worker.pid, c.fd))
        assert len(accepted) == 1, accepted
        server_side = _socket_of(*accepted[0])
        try:
            assert server_side.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        finally:
            server_side.close()
            conn.close()
    finally:
        out = stop(proc)
    assert proc.returncode == 0, out
