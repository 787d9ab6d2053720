"""Hourly ``monitor update`` of a growing log: CPU per update and threads started.

A service's monitor (and the tests' simulated month, 672 steps) folds the last hour's rows
into the store every hour: one small batch per update, so the update's fixed cost (opening
the batch, starting threads, merging into the store) is most of it. The script writes
``--days`` days of synthetic log rows (``_monitoring_log``) hour by hour into a SQLite log,
runs one update after each hour (the rows' writing is not timed) and prints the process CPU
of the updates, per update and in all, their wall time, and the threads they started.

Compare two versions by running it alternately on each one's sources, e.g.::

    PYTHONPATH=<other worktree>/src .venv/bin/python benchmarks/monitor_hourly.py
    .venv/bin/python benchmarks/monitor_hourly.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _monitoring_log import T0, frame, insert_rows, rows_for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--per-day", type=int, default=4000, help="The tests' volume.")
    args = parser.parse_args()

    import tabguard
    from tabguard.datasets import credit_default_contract
    from tabguard.monitoring import FixedClock, MonitorConfig, open_monitor_store
    from tabguard.monitoring._aggregate import MonitorPlan
    from tabguard.monitoring._update import LogReader, update
    from tabguard.storage import create_sql_engine, ensure_schema, predictions_table

    work = Path(tempfile.mkdtemp(prefix="tabguard-monitor-hourly-"))
    log_url, store_url = f"sqlite:///{work / 'log.db'}", f"sqlite:///{work / 'mon.db'}"
    config = MonitorConfig.from_dict({"log": log_url, "store": store_url})
    plan = MonitorPlan.from_contract(credit_default_contract(), config.aggregation)
    engine = create_sql_engine(log_url)
    ensure_schema(engine, [predictions_table])
    columns = [c.name for c in predictions_table.columns]
    df = frame(args.days * args.per_day, days=args.days)
    hour = (df["_epoch"] - int(T0.timestamp())) // 3600
    rows = rows_for(df)

    started = 0
    real_start = threading.Thread.start

    def counted(self: threading.Thread) -> None:
        nonlocal started
        started += 1
        real_start(self)

    threading.Thread.start = counted  # type: ignore[method-assign]
    store = open_monitor_store(store_url, bucket=config.bucket)
    reader = LogReader(log_url)
    cpu = wall = 0.0
    updates = folded = 0
    try:
        for h in range(args.days * 24):
            insert_rows(engine, [rows[i] for i in hour[hour == h].index], columns)
            at = T0 + timedelta(hours=h + 1)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            result = update(config, store=store, reader=reader, plan=plan, clock=FixedClock(at))
            cpu += time.process_time() - cpu0
            wall += time.perf_counter() - wall0
            updates += 1
            folded += result.rows
    finally:
        threading.Thread.start = real_start  # type: ignore[method-assign]
        reader.close()
        store.close()
        engine.dispose()
    print(f"tabguard from {Path(tabguard.__file__).parent}")
    print(
        f"{updates} hourly updates, {folded} rows folded: {cpu:.2f} CPU-s "
        f"({1000 * cpu / updates:.1f} ms per update), {wall:.2f} s wall, "
        f"{started} threads started"
    )


if __name__ == "__main__":
    main()
