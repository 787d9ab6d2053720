"""Monitoring update of a large Parquet log archive on Spark, checked against Python sketches.

Writes an archive like ``tabguard log export --format parquet`` does (one part file per hour,
generated hour by hour: the rows are never all in memory), runs ``tabguard monitor update
--engine spark`` on it, then checks every hourly percentile of segment ``all`` against the
exact percentile of the same rows (NumPy, one hour at a time) and against a KLL sketch built
in Python from the same values (the baseline: the in-process engine's sketch work alone, no
log reading or JSON parsing), timed in the same run.

Run::

    .venv/bin/python benchmarks/spark_monitor.py --rows 10000000 --master 'local[2]'
    .venv/bin/python benchmarks/spark_monitor.py --rows 200000            # a quick look
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tabguard.archive import archive_schema
from tabguard.datasets import credit_default_contract
from tabguard.monitoring import MonitorConfig, open_monitor_store, rank_error
from tabguard.monitoring._aggregate import MonitorPlan
from tabguard.monitoring._sketch import QuantileSketch

T0 = datetime(2026, 3, 2, tzinfo=UTC)
HOURS = 168
RAW = ("LIMIT_BAL", "AGE", "PAY_0", "BILL_AMT1", "EDUCATION", "MARRIAGE")
FEATURES = ("LIMIT_BAL", "AGE", "BILL_AMT1")
LEVELS = (0.01, 0.10, 0.50, 0.90, 0.99)


def plan() -> MonitorPlan:
    full = MonitorPlan.from_contract(credit_default_contract(), MonitorConfig().aggregation)
    return dataclasses.replace(
        full,
        raw=tuple(c for c in full.raw if c.name in RAW),
        features=tuple(c for c in full.features if c.name in FEATURES),
    )


def hour_values(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Numeric values of one hour's rows (skewed like the credit data)."""
    return {
        "LIMIT_BAL": np.round(rng.lognormal(11.8, 0.8, n), -3),
        "AGE": rng.integers(21, 75, n).astype(float),
        "PAY_0": rng.choice(
            [-2.0, -1.0, 0.0, 1.0, 2.0, 3.0], n, p=[0.1, 0.2, 0.5, 0.1, 0.07, 0.03]
        ),
        "BILL_AMT1": rng.gamma(1.2, 40_000, n) - 2_000,
        "score": rng.beta(2, 5, n),
        "latency_ms": rng.gamma(2.0, 0.6, n),
    }


def write_archive(out: Path, rows: int, schema: pa.Schema, seed: int) -> None:
    """One part file per hour; ``ingest_seq`` in time order (as an export of a live log)."""
    rng = np.random.default_rng(seed)
    per_hour = np.full(HOURS, rows // HOURS)
    per_hour[: rows % HOURS] += 1
    seq = 1
    for h, n in enumerate(per_hour.tolist()):
        ts = T0 + timedelta(hours=h)
        v = hour_values(rng, n)
        refused = rng.random(n) < 0.03
        status = np.where(refused, "rejected_validation", "accepted").astype(object)
        decision = np.where(v["score"] > 0.5, "deny", "approve").astype(object)
        decision[refused] = None
        score = np.where(refused, np.nan, v["score"])
        epoch = int(ts.timestamp() * 1e6) + np.sort(rng.integers(0, 3_600_000_000, n))
        data: dict[str, object] = {
            "ingest_seq": np.arange(seq, seq + n, dtype=np.int64),
            "decision_id": [f"d{seq + i}" for i in range(n)],
            "timestamp": pa.array(epoch, pa.timestamp("us", tz="UTC")),
            "client": np.where(rng.random(n) < 0.5, "bank-a", "bank-b").astype(object),
            "subject_id": None,
            "status": status,
            "decision": decision,
            "score": pa.array(score, mask=np.isnan(score)),
            "model_name": "credit",
            "model_version": "1",
            "latency_ms": v["latency_ms"],
            "available_at": None,
            "raw_other": None,
            "raw_EDUCATION": rng.choice(["1", "2", "3", "4"], n, p=[0.35, 0.47, 0.16, 0.02]),
            "raw_MARRIAGE": rng.choice(["1", "2", "3"], n, p=[0.45, 0.53, 0.02]),
            "segment": [[("channel", c)] for c in rng.choice(["online", "branch", "partner"], n)],
            "guard_actions": [[] for _ in range(n)],
            "errors": [[] for _ in range(n)],
            "probing": [[] for _ in range(n)],
            "flags": [[] for _ in range(n)],
        }
        for name in ("LIMIT_BAL", "AGE", "PAY_0", "BILL_AMT1"):
            data[f"raw_{name}"] = v[name]
        for name in FEATURES:
            feat = np.where(refused, np.nan, v[name])
            data[f"feature_{name}"] = pa.array(feat, mask=np.isnan(feat))
        columns = []
        for f in schema:
            value = data[f.name]
            if value is None or isinstance(value, str):
                columns.append(pa.array([value] * n, f.type))
            else:
                columns.append(
                    pa.array(value, f.type) if not isinstance(value, pa.Array) else value
                )
        table = pa.Table.from_arrays(columns, schema=schema)
        part = out / f"date={ts:%Y-%m-%d}" / f"hour={ts:%H}"
        part.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, part / f"part-{seq:020d}-{seq + n:020d}.parquet")
        seq += n
    (out / "_tabguard_archive.json").write_text(json.dumps({"format": 1, "watermark": seq}))


def _cpu_seconds() -> float:
    """CPU time of this process and its children still running (Spark's JVM: local mode runs
    the executors in it), user + system."""
    import psutil

    me = psutil.Process()
    total = 0.0
    for proc in [me, *me.children(recursive=True)]:
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--reuse", action="store_true", help="Keep an archive already in --workdir (same --rows)."
    )
    args = parser.parse_args()
    from tabguard.spark import spark_session, update_from_archive

    work = args.workdir or Path(tempfile.mkdtemp(prefix="tg-spark-monitor-"))
    the_plan = plan()
    archive = work / "archive"
    if not (args.reuse and (archive / "_tabguard_archive.json").exists()):
        shutil.rmtree(archive, ignore_errors=True)
        t = time.perf_counter()
        write_archive(archive, args.rows, archive_schema(the_plan), args.seed)
        print(f"archive: {args.rows:,} rows written in {time.perf_counter() - t:.1f} s")
    store_url = f"sqlite:///{work / 'monitor.db'}"
    if (work / "monitor.db").exists():
        (work / "monitor.db").unlink()
    cfg = MonitorConfig.from_dict({"log": f"sqlite:///{work / 'unused.db'}", "store": store_url})
    spark_session(args.master, conf={"spark.ui.enabled": "false", "spark.driver.memory": "2g"})
    cpu0 = _cpu_seconds()
    load0 = os.getloadavg()[0]
    t = time.perf_counter()
    result = update_from_archive(cfg, archive, plan=the_plan, master=args.master)
    spark_s = time.perf_counter() - t
    cpu = _cpu_seconds() - cpu0
    print(
        f"spark update ({args.master}): {result.rows:,} rows in {spark_s:.1f} s wall "
        f"({result.rows / spark_s:,.0f} rows/s), {cpu:.1f} CPU-s of the driver and its JVM "
        f"({result.rows / max(cpu, 1e-9):,.0f} rows per CPU-second); load "
        f"{load0:.1f} -> {os.getloadavg()[0]:.1f}"
    )
    # The check, hour by hour: exact percentiles (NumPy) and a Python KLL sketch of the same
    # values, against the store's Spark-built cells of segment `all`.
    eps = rank_error(200)
    worst = 0.0
    checked = 0
    python_s = 0.0
    with open_monitor_store(store_url) as store:
        for path in sorted(archive.rglob("*.parquet")):
            table = pq.read_table(path)
            hour = table.column("timestamp")[0].as_py().replace(minute=0, second=0, microsecond=0)
            cells = store.numeric_cells(hour, hour + timedelta(hours=1), segment=("all", "all"))
            for (_sk, _sv, kind, column), cell in cells.items():
                name = {"raw": f"raw_{column}", "feature": f"feature_{column}"}.get(kind, column)
                values = table.column(name).to_numpy(zero_copy_only=False).astype(float)
                values = np.sort(values[np.isfinite(values)])
                t = time.perf_counter()
                mine = QuantileSketch()
                mine.update(values)
                python_s += time.perf_counter() - t
                assert cell.sketch.n == values.size == mine.n, (hour, kind, column)
                for q, v in zip(LEVELS, cell.sketch.quantiles(LEVELS), strict=True):
                    lo = np.searchsorted(values, v, "left") / values.size
                    hi = np.searchsorted(values, v, "right") / values.size
                    miss = max(0.0, lo - q, q - hi)  # 0 when v's rank interval holds q
                    worst = max(worst, miss)
                    checked += 1
    print(
        f"percentiles checked: {checked:,} (5 levels x columns x {HOURS} hours of segment all); "
        f"worst rank distance {worst:.4%} vs the sketch's error {eps:.2%} "
        f"({'within' if worst <= eps else 'OUTSIDE'})"
    )
    print(
        f"baseline: Python KLL sketches of the same cells (segment all only) {python_s:.1f} s; "
        f"spark did every segment ({result.rows:,} rows x 4 segment keys) in {spark_s:.1f} s"
    )


if __name__ == "__main__":
    main()
