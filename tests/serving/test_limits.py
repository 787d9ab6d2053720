"""Rate limits: per client and per subject, in memory and in Redis shared by processes."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import socket
from collections.abc import Iterator

import pytest

from tabguard.serving import AsyncRateLimiter, LimitsConfig, RateDecision, RateLimiter, parse_rate
from tests.serving._tcp_proxy import closed_port

STRATEGIES = ["moving-window", "fixed-window", "sliding-window"]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_subject_limit_allows_exactly_n(strategy: str) -> None:
    limiter = RateLimiter(per_client=None, per_subject="3/minute", strategy=strategy)  # type: ignore[arg-type]
    results = [limiter.hit("bank-a", "cust-1") for _ in range(10)]
    assert [r.allowed for r in results] == [True] * 3 + [False] * 7
    denied = results[-1]
    assert denied.reason == "subject_limit" and denied.limit == "3 per 1 minute"
    assert 0 < denied.retry_after <= 60
    assert 1 <= int(denied.retry_after_header) <= 60
    # Other subjects have their own allowance.
    assert limiter.hit("bank-a", "cust-2").allowed


def test_client_limit_is_checked_first_and_spares_the_subject() -> None:
    limiter = RateLimiter(per_client="2/minute", per_subject="1/month")
    assert limiter.hit("bank-a", "s1").allowed
    assert limiter.hit("bank-a", "s2").allowed
    denied = limiter.hit("bank-a", "s3")
    assert (denied.allowed, denied.reason) == (False, "client_limit")
    # s3 was not counted: another client can still get its one decision this month.
    assert limiter.hit("bank-b", "s3").allowed
    assert limiter.hit("bank-b", "s3").reason == "subject_limit"


def test_month_limit_retry_after_is_about_a_month() -> None:
    limiter = RateLimiter(per_client=None, per_subject="1/month")
    limiter.hit("c", "s")
    denied = limiter.hit("c", "s")
    assert 27 * 86400 < denied.retry_after <= 31 * 86400


def test_several_rates_all_hold() -> None:
    limiter = RateLimiter(per_client="5/second;6/minute", per_subject=None)
    assert sum(limiter.hit("c").allowed for _ in range(10)) == 5
    assert parse_rate("5/second;6/minute")[1].amount == 6


def test_limits_off_allow_everything() -> None:
    limiter = RateLimiter(per_client=None, per_subject=None)
    assert all(limiter.hit("c", "s").allowed for _ in range(100))


def test_reset_clears_counters() -> None:
    limiter = RateLimiter(per_client=None, per_subject="1/day")
    limiter.hit("c", "s")
    assert not limiter.hit("c", "s").allowed
    limiter.reset(subject_id="s")
    assert limiter.hit("c", "s").allowed


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"per_client": "100/sec"}, "N/unit"),
        ({"per_subject": "0/day"}, "N >= 1"),
        ({"strategy": "leaky"}, "strategy"),
        ({"on_backend_error": "maybe"}, "fail_closed"),
        ({"storage": "sqlite:///x.db"}, "memory:// or redis://"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, str], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        RateLimiter(**kwargs)  # type: ignore[arg-type]


def test_from_config() -> None:
    cfg = LimitsConfig(per_client="1/second", per_subject="1/month", on_backend_error="fail_open")
    limiter = RateLimiter.from_config(cfg)
    assert limiter.on_backend_error == "fail_open"
    assert [str(i) for i in limiter.subject_items] == ["1 per 1 month"]


def test_async_limiter_in_memory() -> None:
    async def main() -> list[RateDecision]:
        limiter = AsyncRateLimiter(per_client=None, per_subject="2/minute")
        return [await limiter.hit("c", "s") for _ in range(4)]

    assert [r.allowed for r in asyncio.run(main())] == [True, True, False, False]


# ---- Redis -----------------------------------------------------------------------------------


def _subject_worker(url: str, prefix: str, barrier: object, out: object) -> None:
    limiter = RateLimiter(per_client=None, per_subject="5/minute", storage=url, key_prefix=prefix)
    barrier.wait()  # type: ignore[attr-defined]
    allowed = sum(limiter.hit("bank-a", "cust-42").allowed for _ in range(20))
    out.put(allowed)  # type: ignore[attr-defined]


@pytest.mark.redis
@pytest.mark.parametrize("strategy", ["moving-window", "fixed-window"])
def test_two_processes_sharing_redis_enforce_the_subject_limit_exactly(
    redis_server_url: str, redis_prefix: str, strategy: str
) -> None:
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    prefix = f"{redis_prefix}{strategy}"
    procs = [
        ctx.Process(target=_subject_worker, args=(redis_server_url, prefix, barrier, out))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    counts = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert sum(counts) == 5  # 2 processes x 20 attempts, limit 5/minute
    # The counters really are in the shared Redis: a third limiter here sees them used up.
    third = RateLimiter(
        per_client=None, per_subject="5/minute", storage=redis_server_url, key_prefix=prefix
    )
    assert third.hit("bank-a", "cust-42").reason == "subject_limit"


@pytest.mark.redis
def test_async_limiter_on_redis(redis_server_url: str, redis_prefix: str) -> None:
    async def main() -> list[bool]:
        limiter = AsyncRateLimiter(
            per_client="3/minute",
            per_subject=None,
            storage=redis_server_url,
            key_prefix=redis_prefix,
        )
        return [(await limiter.hit("bank-a")).allowed for _ in range(5)]

    assert asyncio.run(main()) == [True, True, True, False, False]


@pytest.mark.parametrize("cls", [RateLimiter, AsyncRateLimiter])
def test_redis_down_fail_closed_denies_with_a_distinct_reason(cls: type) -> None:
    limiter = cls(
        per_subject="1/month", storage=f"redis://127.0.0.1:{closed_port()}/0", timeout=0.3
    )
    decision = _hit(limiter, "bank-a", "s1")
    assert (decision.allowed, decision.reason, decision.degraded) == (
        False,
        "backend_unavailable",
        True,
    )
    assert decision.retry_after > 0
    assert limiter.backend_errors == 1


@pytest.mark.parametrize("cls", [RateLimiter, AsyncRateLimiter])
def test_redis_down_fail_open_allows_and_counts(cls: type) -> None:
    limiter = cls(
        per_subject="1/month",
        storage=f"redis://127.0.0.1:{closed_port()}/0",
        on_backend_error="fail_open",
        timeout=0.3,
    )
    decisions = [_hit(limiter, "bank-a", "s1") for _ in range(3)]
    assert all(d.allowed and d.degraded and d.reason == "ok" for d in decisions)
    assert limiter.backend_errors == 3


def _hit(limiter: RateLimiter | AsyncRateLimiter, client: str, subject: str) -> RateDecision:
    if isinstance(limiter, AsyncRateLimiter):
        return asyncio.run(limiter.hit(client, subject))
    return limiter.hit(client, subject)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections but never answers (a hung Redis)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield server.getsockname()[1]
    server.close()


def test_a_hung_redis_does_not_block_the_event_loop(silent_server: int) -> None:
    async def main() -> tuple[RateDecision, int]:
        limiter = AsyncRateLimiter(
            per_subject="1/month", storage=f"redis://127.0.0.1:{silent_server}/0", timeout=0.5
        )
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        task = asyncio.create_task(ticker())
        decision = await limiter.hit("bank-a", "s1")
        done.set()
        await task
        return decision, ticks

    decision, ticks = asyncio.run(main())
    assert decision.reason == "backend_unavailable"
    # Other coroutines kept running while the limiter waited on Redis.
    assert ticks >= 5


def test_odd_identifiers_get_their_own_counters() -> None:
    limiter = RateLimiter(per_client=None, per_subject="1/day")
    odd = ["a/1", "a", "a/1/1/day", "x" * 10_000, "ü", "", "a b"]
    assert all(limiter.hit("c", s).allowed for s in odd)
    assert not any(limiter.hit("c", s).allowed for s in odd)
