"""A real ``tabguard serve`` process on loopback, for the attack and fault tests."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest


def free_port() -> int:
    """A port nothing listens on now (bound to 127.0.0.1 and released), below the kernel's
    ephemeral range.

    A port the kernel hands out for ``bind(0)`` comes from the range it also uses for outgoing
    connections; the burst tests open thousands of those while a service is starting, and one
    could take the released port before the service binds it.
    """
    low = _ephemeral_low()
    rng = random.Random()
    for _ in range(100):
        port = rng.randrange(max(1024, low - 12_000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port in [{low - 12_000}, {low})")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


class RealService:
    """``tabguard serve MODEL --port P [--workers N]`` with ``TABGUARD_HOME=home``.

    Output (stdout and stderr, merged) goes to ``home/serve.out``; :meth:`stop` sends SIGTERM
    (a graceful shutdown drains the log) and returns it.
    """

    def __init__(
        self,
        model_dir: Path,
        home: Path,
        *,
        workers: int = 1,
        log_level: str = "info",
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.home = home
        self.out_path = home / "serve.out"
        full_env = {**os.environ, "TABGUARD_HOME": str(home), **(env or {})}
        full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        tabguard = str(Path(sys.executable).parent / "tabguard")
        cmd = [tabguard, "serve", str(model_dir), "--port", str(self.port)]
        cmd += ["--workers", str(workers), "--log-level", log_level, *args]
        self._out = self.out_path.open("w")
        self.proc = subprocess.Popen(cmd, env=full_env, stdout=self._out, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 120) -> None:
        """Wait until ``/readyz`` answers 200 (fail the test if the process dies first)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the service exited: {self.output()}")
            try:
                if httpx.get(f"{self.base}/readyz", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        pytest.fail(f"the service did not become ready: {self.output()}")

    def output(self) -> str:
        """What the process printed so far."""
        if not self._out.closed:
            self._out.flush()
        return self.out_path.read_text(errors="replace")

    def stop(self) -> str:
        """SIGTERM, wait, and return the whole output."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        return self.out_path.read_text(errors="replace")

    def __enter__(self) -> RealService:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class Burst:
    """8 clients sending bounded bursts of decision requests; the ids answered with 200.

    Used by the journal and worker-fault tests and by ``benchmarks/hardening.py``. A client
    whose connection fails (a killed process or worker) reconnects and goes on with its next
    request, so the other worker, or a restarted one, may answer it.

    Parameters
    ----------
    base : str
        The service's base URL.
    key : str
        An API key with the ``decide`` scope.
    records : list of dict
        Feature records; client ``c`` sends ``records[(c * 31 + i) % len(records)]`` as its
        ``i``-th request, with subject ``s{c}-{i}``.
    """

    def __init__(self, base: str, key: str, records: list[dict[str, Any]]) -> None:
        self.base, self.key, self.records = base, key, records
        self.answered: list[str] = []
        self.sent = 0
        self._lock = threading.Lock()

    def run(self, per_client: int, on_answered: Callable[[int], None]) -> None:
        """Send ``per_client`` requests from each of 8 clients; call ``on_answered(n)`` after
        the ``n``-th answered decision (to inject a fault at a given point)."""

        def client(c: int) -> None:
            http = httpx.Client(base_url=self.base, timeout=10)
            headers = {"Authorization": f"Bearer {self.key}"}
            try:
                for i in range(per_client):
                    features = self.records[(c * 31 + i) % len(self.records)]
                    body = {"subject_id": f"s{c}-{i}", "features": dict(features)}
                    with self._lock:
                        self.sent += 1
                    try:
                        r = http.post("/v1/decisions", json=body, headers=headers)
                    except httpx.TransportError:  # a killed process or worker: reconnect
                        http.close()
                        http = httpx.Client(base_url=self.base, timeout=10)
                        continue
                    if r.status_code == 200:
                        with self._lock:
                            self.answered.append(r.json()["decision_id"])
                            n = len(self.answered)
                        on_answered(n)
            finally:
                http.close()

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(client, range(8)))


def recorded(home: Path) -> Counter[str]:
    """decision_id -> rows in the log of ``home``, after a start of the log.

    Opening the log replays what a killed process left (its journal) and the spool, as the
    next start of the service would.
    """
    from tabguard.serving import load_config, open_log
    from tabguard.serving._log_read import LogReader

    cfg = load_config(home)
    plog = open_log(cfg)
    try:
        assert plog.flush(60)
        assert plog.replay(60)
    finally:
        plog.close()
    reader = LogReader(cfg.stores.log)
    try:
        return Counter(reader.query(parse_json=False)["decision_id"])
    finally:
        reader.close()
