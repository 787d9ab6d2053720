"""Secrets and applicant data stay out of logs, errors and answers, through a real outage.

A real ``tabguard serve`` logs to PostgreSQL through a TCP proxy that is cut mid-burst (the
log writer's INSERT fails with applicants' attributes bound to it) while its rate limits point
at a Redis that is down; store URLs carry passwords. Nothing the process printed, nor
``/health`` for an admin key, may hold a password, a subject id or an applicant's value.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tabguard.serving import load_config, open_keys
from tests.serving._service import RealService, free_port
from tests.serving._tcp_proxy import TcpProxy
from tests.serving.conftest import body_of, write_config
from tests.serving.test_backends import rows_in

PG_PASSWORD = "pg-Secret-4711"
REDIS_PASSWORD = "redis-Secret-0815"


@pytest.mark.postgres
@pytest.mark.slow
def test_a_real_outage_logs_no_password_and_no_applicant_value(
    model_dir: Path, postgres_url: str, tmp_path: Path, sample_records: list[dict[str, Any]]
) -> None:
    parts = urlsplit(postgres_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432).start()
    # The shared server trusts local connections: the password is sent and ignored.
    netloc = f"{parts.username}:{PG_PASSWORD}@127.0.0.1:{proxy.port}"
    log_url = parts._replace(netloc=netloc).geturl()
    redis_url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{free_port()}/0"  # nothing listens
    home = tmp_path / "home"
    write_config(
        home,
        f'[stores]\nlog = "{log_url}"\nkeys = "sqlite:///{home}/state.db"\n'
        f'[limits]\nper_client = "off"\nstorage = "{redis_url}"\n'
        'on_backend_error = "fail_open"\ntimeout = 0.2\n'
        "[log]\nbatch_size = 20\nflush_interval = 0.05\nretry_interval = 0.2\n",
    )
    with open_keys(load_config(home)) as keys:
        key = keys.create("bank-a", "decide")[1]
        admin = keys.create("ops", "admin")[1]
    # Values no log line may show: unique subject ids and attribute values.
    bodies = [
        body_of(
            {**sample_records[i % 50], "BILL_AMT1": 900_000 + 7 * i},
            subject=f"applicant-{i:05d}-zq",
        )
        for i in range(400)
    ]
    auth = {"Authorization": f"Bearer {key}"}

    def send(chunk: list[dict[str, Any]]) -> list[int]:
        with httpx.Client(base_url=service.base, timeout=30) as c:
            return [c.post("/v1/decisions", json=b, headers=auth).status_code for b in chunk]

    service = RealService(model_dir, home)
    try:
        service.wait_ready()
        with ThreadPoolExecutor(4) as pool:
            codes = [
                c for part in pool.map(send, [bodies[i:200:4] for i in range(4)]) for c in part
            ]
            proxy.cut()  # the log database goes away mid-burst
            later = pool.map(send, [bodies[200 + i :: 4] for i in range(4)])
            codes += [c for part in later for c in part]
        time.sleep(1.0)  # let the writer meet the outage (its flush interval is 0.05 s)
        health = httpx.get(
            f"{service.base}/health", headers={"Authorization": f"Bearer {admin}"}, timeout=10
        ).text
        proxy.start()
        deadline = time.monotonic() + 30
        while rows_in(postgres_url)[0] < 200 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        out = service.stop()
        proxy.cut()
    assert codes == [200] * 400, out
    assert "unreachable, spooling" in out, out  # the outage was met and logged
    assert rows_in(postgres_url)[:2] == (400, 400)  # and nothing was lost
    assert '"backend_up":false' in health.replace(" ", "")
    for text in (out, health):
        assert PG_PASSWORD not in text and REDIS_PASSWORD not in text
        assert "applicant-" not in text, "a subject id leaked"
        assert "INSERT INTO" not in text and "parameters" not in text
        for i in range(400):
            assert str(900_000 + 7 * i) not in text, "an applicant's value leaked"
    assert ":***@" in health  # the URLs are shown, masked
