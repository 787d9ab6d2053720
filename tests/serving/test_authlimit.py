"""Failed-authentication limits, the source address, and the summary of refused requests."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tabguard.flags import Flags, FlagSnapshot
from tabguard.serving import KeyCache, MemoryKeyStore
from tabguard.serving._authlimit import AuthThrottle
from tabguard.serving._guards import guarded_authenticate
from tabguard.serving._limits import AsyncRateLimiter
from tabguard.serving._record import PredictionRecord
from tabguard.serving._refusals import RefusalSummary
from tabguard.serving._source import SourceResolver, source_key

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


# ---- the source address ------------------------------------------------------------------------


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert SourceResolver().source("198.51.100.7", "203.0.113.1") == "198.51.100.7"
    assert SourceResolver().source(None) == "unknown"


def test_behind_trusted_proxies_the_first_untrusted_hop_from_the_right_is_the_source() -> None:
    r = SourceResolver(["10.0.0.0/8", "192.0.2.1"])
    # client -> (spoofed entries) -> edge proxy 192.0.2.1 -> internal proxy 10.1.1.1
    assert r.source("10.1.1.1", "1.1.1.1, 203.0.113.9, 192.0.2.1") == "203.0.113.9"
    assert r.source("10.1.1.1", "203.0.113.9") == "203.0.113.9"
    assert r.source("198.51.100.7", "203.0.113.9") == "198.51.100.7"  # peer not trusted
    assert r.source("10.1.1.1", "garbage, 203.0.113.9") == "203.0.113.9"
    assert r.source("10.1.1.1", "203.0.113.9, not-an-ip") == "10.1.1.1"  # stop at garbage


def test_ipv6_sources_are_counted_per_slash_64() -> None:
    assert (
        source_key("2001:db8:1:2::1") == source_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    )
    assert source_key("2001:db8:1:3::1") != source_key("2001:db8:1:2::1")
    assert source_key("::ffff:203.0.113.5") == "203.0.113.5"


def test_trusted_proxies_are_validated() -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.0/33'"):
        SourceResolver(["10.0.0.0/33"])


# ---- the throttle ------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def throttle(rate: str = "3/minute", clock: Clock | None = None) -> AuthThrottle:
    limiter = AsyncRateLimiter(per_client=rate, per_subject=rate, on_backend_error="fail_open")
    return AuthThrottle(limiter, clock=clock or Clock())


def attempt(keys: KeyCache, t: AuthThrottle, key: str | None, source: str) -> tuple[int, Any]:
    auth = f"Bearer {key}" if key else None
    _, rejection = asyncio.run(guarded_authenticate(keys, t, auth, "decide", source))
    return (200 if rejection is None else rejection.http_status), rejection


def test_a_source_over_the_limit_is_refused_before_its_key_is_looked_up() -> None:
    class Counting(MemoryKeyStore):
        lookups = 0

        def verify(self, key: str) -> Any:
            Counting.lookups += 1
            return super().verify(key)

    keys = KeyCache(Counting())
    t = throttle()
    codes = [attempt(keys, t, f"tg_{i:012x}_wrong", "203.0.113.1")[0] for i in range(10)]
    # 3 failures a minute are allowed; the 4th goes over the limit and starts the block.
    assert codes == [401] * 4 + [429] * 6
    assert Counting.lookups == 4  # the throttled ones never reach the store
    _, rejection = attempt(keys, t, "tg_000000000099_x", "203.0.113.1")
    assert rejection.reason == "auth_throttled" and int(rejection.headers["Retry-After"]) >= 1
    assert attempt(keys, t, "tg_000000000099_x", "198.51.100.2")[0] == 401  # another source


def test_a_known_valid_key_passes_even_from_a_throttled_source_and_its_id_cannot_be_locked() -> (
    None
):
    store = MemoryKeyStore()
    key_id, key = store.create("bank-a", "decide")
    keys = KeyCache(store, ttl=0)  # every check goes to the store: the cache only *knows* it
    t = throttle()
    assert attempt(keys, t, key, "203.0.113.1")[0] == 200
    wrong = f"tg_{key_id}_not-the-secret"
    codes = [attempt(keys, t, wrong, f"198.51.100.{i}")[0] for i in range(6)]
    assert codes == [401] * 4 + [429] * 2  # the key id is throttled for wrong secrets...
    for _ in range(5):  # ... and the source too, but the real key still works from there
        attempt(keys, t, "tg_aaaaaaaaaaaa_x", "203.0.113.1")
    assert attempt(keys, t, key, "203.0.113.1")[0] == 200


def test_wrong_secrets_for_a_key_id_cannot_lock_out_its_owner_after_a_restart() -> None:
    """A fresh process does not know the key yet: a blocked key id still has its keys checked."""
    store = MemoryKeyStore()
    key_id, key = store.create("bank-a", "decide")
    keys = KeyCache(store, ttl=0)  # a restarted process: the cache has never seen the key
    t = throttle()
    wrong = f"tg_{key_id}_not-the-secret"
    codes = [attempt(keys, t, wrong, f"198.51.100.{i}")[0] for i in range(6)]
    assert codes == [401] * 4 + [429] * 2  # the key id is blocked for wrong secrets
    block = t.blocked("203.0.113.9", f"Bearer {wrong}")
    assert block is not None and block.what == "key_id"
    assert keys.known(key) is None
    assert attempt(keys, t, key, "203.0.113.9")[0] == 200  # its owner still gets in
    status, rejection = attempt(keys, t, wrong, "203.0.113.10")
    assert status == 429 and rejection.reason == "auth_throttled"  # wrong secrets still don't


def test_a_revoked_key_is_throttled_like_any_bad_key() -> None:
    store = MemoryKeyStore()
    _, key = store.create("gone", "decide")
    keys = KeyCache(store, ttl=0)
    t = throttle()
    assert attempt(keys, t, key, "203.0.113.1")[0] == 200
    store.revoke("gone")
    codes = [attempt(keys, t, key, "203.0.113.1")[0] for _ in range(5)]
    assert codes == [401] * 4 + [429]


def test_a_block_ends_when_its_window_frees_a_slot() -> None:
    clock = Clock()
    t = throttle(clock=clock)
    keys = KeyCache(MemoryKeyStore())
    for _ in range(4):
        attempt(keys, t, None, "203.0.113.1")
    block = t.blocked("203.0.113.1", None)
    assert block is not None and block.what == "source" and 0 < block.retry_after <= 60
    clock.t += 61
    assert t.blocked("203.0.113.1", None) is None and not t.active


def test_the_block_map_is_bounded() -> None:
    t = throttle("1/minute")
    t.max_blocked = 10
    keys = KeyCache(MemoryKeyStore())
    for i in range(50):
        for _ in range(2):
            attempt(keys, t, None, f"203.0.113.{i}")
    assert len(t._blocked) == 10


def test_a_down_counter_store_counts_nothing_and_blocks_nothing() -> None:
    limiter = AsyncRateLimiter(
        per_client="1/minute",
        per_subject="1/minute",
        storage="redis://127.0.0.1:1/0",
        on_backend_error="fail_open",
        timeout=0.1,
    )
    t = AuthThrottle(limiter)
    keys = KeyCache(MemoryKeyStore())
    assert [attempt(keys, t, None, "203.0.113.1")[0] for _ in range(3)] == [401] * 3


# ---- the summary of refused requests -----------------------------------------------------------


def add(summary: RefusalSummary, source: str, at: datetime, **kw: Any) -> None:
    options: dict[str, Any] = {
        "status": "unauthorized",
        "reason": "invalid_key",
        "message": "invalid or revoked API key",
        "key_id": None,
        "body": b'{"x": 1}',
        "flags": FlagSnapshot(Flags(), 3),
        "latency_ms": 2.0,
        **kw,
    }
    summary.add(source=source, at=at, **options)


def test_one_record_per_source_minute_and_status_says_how_many() -> None:
    out: list[PredictionRecord] = []
    s = RefusalSummary(out.append, samples=2, sample_bytes=8)
    for i in range(300):
        add(s, f"203.0.113.{i % 2}", T0 + timedelta(seconds=i * 0.5), body=b"x" * (i + 1))
    add(s, "203.0.113.0", T0, status="rate_limited", reason="auth_throttled", key_id="ab" * 6)
    assert s.flush(T0 + timedelta(seconds=59)) == 0  # the minute is not over
    assert s.flush(T0 + timedelta(seconds=61)) == 3  # minute 0: two sources + the 429 group
    assert s.flush(everything=True) == 4  # minutes 1 and 2 of two sources
    assert sum(r.guard_actions[0]["requests"] for r in out) == 301 == s.counted
    assert s.pending == 0
    first = next(r for r in out if r.status == "unauthorized")
    summary = first.raw["_summary"]
    assert first.status == "unauthorized" and first.client is None and first.features == {}
    assert summary["samples"] == ["x", "xxx"]  # two kept, each at most 8 bytes
    assert summary["requests"] == first.guard_actions[0]["requests"] == 60
    assert first.errors == [
        {"rule": "invalid_key", "message": "invalid or revoked API key", "count": 60}
    ]
    assert first.flags["version"] == 3 and first.latency_ms == pytest.approx(2.0)
    throttled = next(r for r in out if r.status == "rate_limited")
    assert throttled.raw["_summary"]["key_ids"] == {"ab" * 6: 1}
    longest = max(len(x) for r in out for x in r.raw["_summary"]["samples"])
    assert longest <= 9  # 8 bytes and an ellipsis


def test_memory_stays_bounded_under_many_sources() -> None:
    out: list[PredictionRecord] = []
    s = RefusalSummary(out.append, max_groups=5)
    for i in range(1000):
        add(s, f"198.51.{i // 256}.{i % 256}", T0)
    s.flush(everything=True)
    sources = {r.raw["_summary"]["source"]: r.guard_actions[0]["requests"] for r in out}
    assert len(out) == 6 and sources["(other)"] == 995
    assert sum(sources.values()) == 1000


def test_a_throttled_request_is_held_for_the_tarpit_and_holds_are_bounded() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    limiter = AsyncRateLimiter(per_client="1/minute", per_subject="1/minute")
    t = AuthThrottle(limiter, tarpit=1.5, sleep=sleep)
    keys = KeyCache(MemoryKeyStore())
    codes = [attempt(keys, t, None, "203.0.113.1")[0] for _ in range(4)]
    assert codes == [401, 401, 429, 429] and waits == [1.5, 1.5]
    t.held = t.max_held  # as many requests as allowed are already held: answer at once
    assert attempt(keys, t, None, "203.0.113.1")[0] == 429 and len(waits) == 2
