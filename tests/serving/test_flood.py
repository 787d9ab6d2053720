"""An unauthenticated flood against a real ``tabguard serve`` (loopback, bounded).

Eight attackers behind a trusted proxy (each with its own ``X-Forwarded-For`` address) send
random keys while a legitimate client keeps asking for decisions. Each attacker's address is
throttled after ``[limits] auth_failures``; the legitimate client is always answered; the log
holds one summary row per source and minute instead of every attacker's body, and still
accounts for every request.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tabguard.serving import load_config, open_keys
from tests.serving._service import RealService
from tests.serving.conftest import body_of, write_config

ATTACKERS, PER_ATTACKER, LEGIT = 8, 150, 80


@pytest.mark.slow
def test_a_flood_of_random_keys_is_throttled_summarised_and_fully_accounted_for(
    model_dir: Path, tmp_path: Path, sample_records: list[dict[str, Any]]
) -> None:
    home = tmp_path / "home"
    write_config(
        home,
        '[limits]\nper_client = "off"\nauth_failures = "10/minute"\nauth_tarpit = 0.01\n'
        '[server]\ntrusted_proxies = ["127.0.0.1"]\n[log]\nflush_interval = 0.05\n',
    )
    cfg = load_config(home)
    with open_keys(cfg) as keys:
        key = keys.create("bank-a", "decide")[1]
    big = json.dumps(body_of(sample_records[0])) + " " * 6000  # an attacker's padded body

    def attack(i: int) -> Counter[int]:
        codes: Counter[int] = Counter()
        headers = {"X-Forwarded-For": f"203.0.113.{i}"}
        with httpx.Client(base_url=service.base, timeout=30) as c:
            for _ in range(PER_ATTACKER):
                auth = f"Bearer tg_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
                r = c.post("/v1/decisions", content=big, headers={**headers, "Authorization": auth})
                codes[r.status_code] += 1
        return codes

    def legit(_: int) -> Counter[int]:
        codes: Counter[int] = Counter()
        headers = {"Authorization": f"Bearer {key}", "X-Forwarded-For": "198.51.100.1"}
        with httpx.Client(base_url=service.base, timeout=30) as c:
            for j in range(LEGIT):
                body = body_of(sample_records[j % 50], subject=f"s{j}")
                codes[c.post("/v1/decisions", json=body, headers=headers).status_code] += 1
        return codes

    service = RealService(model_dir, home, log_level="warning")
    try:
        service.wait_ready()
        with ThreadPoolExecutor(ATTACKERS + 1) as pool:
            legit_done = pool.submit(legit, 0)
            attacks = list(pool.map(attack, range(ATTACKERS)))
            good = legit_done.result()
    finally:
        service.stop()
    assert good == {200: LEGIT}, good
    for codes in attacks:
        # 10 failures allowed a minute per source, the 11th starts the block
        assert codes[401] == 11 and codes[429] == PER_ATTACKER - 11, codes
    engine = sa.create_engine(cfg.stores.log)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("select status, guard_actions, raw from tg_predictions")).all()
    engine.dispose()
    by_status: Counter[str] = Counter()
    stored = 0
    for status, actions, raw in rows:
        weight = [a["requests"] for a in json.loads(actions) if "requests" in a]
        by_status[status] += weight[0] if weight else 1
        stored += len(raw)
    assert by_status == {
        "accepted": LEGIT,
        "unauthorized": 11 * ATTACKERS,
        "rate_limited": (PER_ATTACKER - 11) * ATTACKERS,
    }
    # One summary per attacker, minute and status (the run may cross a minute boundary).
    assert len(rows) <= LEGIT + ATTACKERS * 2 * 2
    # The attackers' 1,200 bodies of 6 KiB are not stored: 3 samples of 1 KiB per group.
    assert stored < LEGIT * 2_000 + ATTACKERS * 2 * 2 * 3 * 1_100
