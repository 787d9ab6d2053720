"""Cost of the serving state layer on the request path, against same-process baselines.

Each figure is measured next to the simplest thing that does the same job, in the same process
and run, and printed with the ratio:

* ``PredictionLog.append`` vs a bare ``queue.SimpleQueue.put`` (the log's request-path cost);
* prediction-log writer throughput (rows/s into SQLite, and PostgreSQL when reachable);
* ``FlagWatcher.current()`` (cached) vs ``SqlFlagStore.get_all()`` (a database read);
* ``KeyCache.verify`` (cached) vs ``SqlKeyStore.verify`` (one indexed lookup);
* ``RateLimiter.hit`` in memory and, when reachable, ``AsyncRateLimiter.hit`` on Redis.

Run::

    .venv/bin/python benchmarks/state.py
    .venv/bin/python benchmarks/state.py --records 20000 --pg postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import queue
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from tabguard.errors import TabguardError
from tabguard.flags import FlagWatcher, SqlFlagStore
from tabguard.serving import (
    AsyncRateLimiter,
    KeyCache,
    PredictionLog,
    PredictionRecord,
    RateLimiter,
    SqlKeyStore,
)


def per_call_us(fn: Callable[[], object], n: int, repeats: int = 5) -> float:
    """Median over ``repeats`` runs of the mean time per call, in microseconds."""
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(runs)


def record(i: int) -> PredictionRecord:
    return PredictionRecord(
        decision_id=f"b{i:08d}",
        client="bank-a",
        subject_id=f"cust-{i}",
        raw={f"F{j}": j * 1.5 for j in range(23)},
        features={f"F{j}": j * 1.5 for j in range(20)},
        guard_actions=[{"field": "AGE", "action": "clip", "from": 999, "to": 125}],
        flags={"flow": "enabled", "model": "main", "threshold": None, "version": 1},
        model_name="main",
        model_version="3f2a",
        score=0.42,
        decision="approve",
        status="accepted",
        segment={"channel": "web"},
        latency_ms=1.2,
    )


def writer_throughput(url: str, spool: Path, n: int) -> float:
    records = [record(i) for i in range(n)]
    with PredictionLog(url, spool_dir=spool) as plog:
        plog.flush()
        start = time.perf_counter()
        for r in records:
            plog.append(r)
        plog.flush(timeout=600)
        elapsed = time.perf_counter() - start
        if plog.count() != n:
            raise RuntimeError(f"expected {n} rows, found {plog.count()}")
    return n / elapsed


def row(name: str, value: float, unit: str, baseline: str = "", ratio: float | None = None) -> None:
    ratio_text = f"{ratio:8.1f}x" if ratio is not None else ""
    print(f"{name:<44} {value:>12,.1f} {unit:<7} {ratio_text:>9}  {baseline}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tg-bench-state-"))
    print(f"{'measure':<44} {'value':>12} {'unit':<7} {'ratio':>9}  baseline")

    # Prediction log: request-path cost of append() vs a bare queue put.
    q: queue.SimpleQueue[object] = queue.SimpleQueue()
    rec = record(0)
    base = per_call_us(lambda: q.put(rec), 20_000)
    with PredictionLog(f"sqlite:///{tmp / 'append.db'}", spool_dir=tmp / "s0") as plog:
        cost = per_call_us(lambda: plog.append(rec), 20_000)
    row("PredictionLog.append", cost, "us/call", f"SimpleQueue.put {base:.2f} us", cost / base)

    rate = writer_throughput(f"sqlite:///{tmp / 'log.db'}", tmp / "s1", args.records)
    row("log writer -> SQLite", rate, "rows/s")
    try:
        pg_db = f"tgbench_{uuid.uuid4().hex[:8]}"
        import sqlalchemy as sa

        admin = sa.create_engine(
            args.pg.replace("postgresql://", "postgresql+psycopg://", 1),
            isolation_level="AUTOCOMMIT",
        )
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{pg_db}"'))
        try:
            pg_url = f"{args.pg.rsplit('/', 1)[0]}/{pg_db}"
            row(
                "log writer -> PostgreSQL",
                writer_throughput(pg_url, tmp / "s2", args.records),
                "rows/s",
            )
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{pg_db}" WITH (FORCE)'))
            admin.dispose()
    except (TabguardError, ImportError, sa.exc.SQLAlchemyError) as exc:
        print(f"(PostgreSQL skipped: {exc})")

    # Flags: cached watcher read vs a database read.
    flags = SqlFlagStore(f"sqlite:///{tmp / 'state.db'}")
    flags.set("threshold", "0.4", actor="bench")
    db_read = per_call_us(flags.get_all, 2_000)
    with FlagWatcher(flags, interval=0.5) as watcher:
        cached = per_call_us(watcher.current, 200_000)
    row(
        "FlagWatcher.current (background)",
        cached,
        "us/call",
        f"get_all on SQLite {db_read:.1f} us",
        db_read / cached,
    )

    # Keys: cached verify vs an indexed lookup.
    keys = SqlKeyStore(f"sqlite:///{tmp / 'state.db'}")
    _, key = keys.create("bench")
    lookup = per_call_us(lambda: keys.verify(key), 2_000)
    cache = KeyCache(keys, ttl=60)
    hit = per_call_us(lambda: cache.verify(key), 50_000)
    row(
        "KeyCache.verify (hit)", hit, "us/call", f"SqlKeyStore.verify {lookup:.1f} us", lookup / hit
    )

    # Rate limits.
    mem = RateLimiter(per_client="1000000/second", per_subject="1000000/month")
    i = iter(range(10**9))
    row(
        "RateLimiter.hit (memory, 2 limits)",
        per_call_us(lambda: mem.hit("c", str(next(i))), 20_000),
        "us/call",
    )
    try:
        prefix = f"tgbench:{uuid.uuid4().hex[:8]}"
        limiter = AsyncRateLimiter(
            per_client="1000000/second",
            per_subject="1000000/month",
            storage=args.redis,
            key_prefix=prefix,
        )

        async def burst(n: int) -> float:
            start = time.perf_counter()
            for k in range(n):
                d = await limiter.hit("c", f"s{k}")
                if d.degraded:
                    raise RuntimeError("Redis unreachable")
            return (time.perf_counter() - start) / n * 1e6

        row("AsyncRateLimiter.hit (Redis, 2 limits)", asyncio.run(burst(3_000)), "us/call")
        import redis

        client = redis.Redis.from_url(args.redis)
        for k in client.scan_iter(match=f"{prefix}*"):
            client.delete(k)
        client.close()
    except (RuntimeError, TabguardError, ImportError) as exc:
        print(f"(Redis skipped: {exc})")
    flags.close()
    keys.close()


if __name__ == "__main__":
    main()
