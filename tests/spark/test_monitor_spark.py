"""The monitor's Spark engine: Spark's KLL sketches are DataSketches' (they merge with the
Python ones both ways), and one archived log through both engines gives the same store.

Every test here shares the session-scoped ``spark`` fixture (one JVM, local[2]).
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from tabguard.archive import export_parquet
from tabguard.monitoring import MonitorConfig, UpdaterBusyError, open_monitor_store, rank_error
from tabguard.monitoring._aggregate import MonitorPlan
from tabguard.monitoring._delta import unpack_sketches, unpack_stats
from tabguard.monitoring._sketch import QuantileSketch
from tabguard.monitoring._update import SourceMismatchError, update
from tabguard.spark import update_from_archive
from tabguard.storage import create_sql_engine
from tests.monitoring.test_update import T0, make_records, small, write

__all__ = ["small"]  # the module fixture: 600 bundled rows and their monitoring plan


def test_spark_sketches_are_datasketches_kll_both_ways(spark: Any) -> None:
    from tabguard.spark import functions

    sf = functions()
    values = spark.range(1000).selectExpr("cast(id as double) as v")
    blob = values.agg(sf.kll_sketch_agg_double("v", 200)).collect()[0][0]
    built_by_spark = QuantileSketch.from_bytes(bytes(blob))
    assert built_by_spark.n == 1000 and built_by_spark.k == 200
    built_here = QuantileSketch()
    built_here.update(np.arange(1000, 2000, dtype=float))
    # Python merges Spark's sketch ...
    merged = QuantileSketch.from_bytes(bytes(blob))
    merged.merge(built_here)
    assert merged.n == 2000 and merged.min == 0 and merged.max == 1999
    assert abs(merged.quantiles([0.5])[0] - 1000) <= 2000 * rank_error(200)
    # ... and Spark merges Python's.
    both = spark.createDataFrame(
        [(bytearray(blob),), (bytearray(built_here.to_bytes()),)], "s binary"
    ).agg(sf.kll_merge_agg_double("s"))
    from_spark = QuantileSketch.from_bytes(bytes(both.collect()[0][0]))
    assert from_spark.n == 2000
    assert abs(from_spark.quantiles([0.9])[0] - 1800) <= 2000 * rank_error(200)


def _dump(url: str) -> tuple[dict[tuple[Any, ...], int], dict[tuple[Any, ...], Any]]:
    """Counts (every family but per-client ones) and numeric cells (stats row, sketch bytes)
    of a store, by key."""
    engine = create_sql_engine(url)
    with engine.connect() as conn:
        counts = {
            tuple(r[:5]): int(r[5])
            for r in conn.execute(
                sa.text(
                    "SELECT bucket, seg_key, seg_value, family, key, n FROM tg_mon_counts "
                    "WHERE family != 'client'"
                )
            )
        }
        cells = {}
        for b, sk, sv, kind, names_json, stats, blobs in conn.execute(
            sa.text(
                "SELECT bucket, seg_key, seg_value, kind, cols, stats, sketches FROM tg_mon_cells"
            )
        ):
            names, matrix = unpack_stats(names_json, stats)
            sketches = unpack_sketches(len(names), blobs)
            for i, name in enumerate(names):
                cells[(int(b), sk, sv, kind, name)] = (matrix[i], sketches[i])
    engine.dispose()
    return counts, cells


def _config(tmp_path: Path, store: str) -> MonitorConfig:
    return MonitorConfig.from_dict(
        {
            "log": f"sqlite:///{tmp_path / 'predictions.db'}",
            "store": f"sqlite:///{tmp_path / store}",
            # One in-process batch for the whole log: segment admission sees the same counts.
            "aggregation": {"batch_rows": 10_000, "jobs": 1},
        }
    )


def _archived(
    tmp_path: Path,
    small: tuple[pd.DataFrame, MonitorPlan],
    rows: int,
    raw: tuple[str, ...],
    features: tuple[str, ...],
) -> tuple[MonitorPlan, str, Path]:
    """The plan narrowed to a few columns (keeps Spark's plan, and the test, small), a SQLite
    log of the first ``rows`` bundled rows two minutes apart, and its Parquet archive:
    (plan, log URL, archive)."""
    df, full = small
    plan = dataclasses.replace(
        full,
        raw=tuple(c for c in full.raw if c.name in raw),
        features=tuple(c for c in full.features if c.name in features),
    )
    log_url = f"sqlite:///{tmp_path / 'predictions.db'}"
    write(log_url, tmp_path / "spool", make_records(df.head(rows), step=timedelta(minutes=2)))
    archive = tmp_path / "archive"
    export_parquet(log_url, archive, plan)
    return plan, log_url, archive


def test_one_archive_through_both_engines_gives_the_same_store(
    spark: Any, tmp_path: Path, small: tuple[pd.DataFrame, MonitorPlan]
) -> None:
    df = small[0]
    plan, log_url, archive = _archived(
        tmp_path, small, 240, ("AGE", "LIMIT_BAL", "EDUCATION", "PAY_0"), ("AGE", "BILL_AMT1")
    )
    python_cfg, spark_cfg = _config(tmp_path, "python.db"), _config(tmp_path, "spark.db")

    assert update(python_cfg, plan=plan).rows == 240
    done = update_from_archive(spark_cfg, archive, plan=plan)

    assert done.rows == 240 and done.latest == T0 + timedelta(hours=7)
    py_counts, py_cells = _dump(python_cfg.store_url())
    sp_counts, sp_cells = _dump(spark_cfg.store_url())
    assert sp_counts == py_counts
    assert {k[3] for k in sp_counts} == {"sd", "guard", "violation", "probing", "cat"}
    assert {k[2] for k in sp_counts if k[1] == "channel"} == {"online", "branch", "partner"}
    assert sp_cells.keys() == py_cells.keys()
    eps = rank_error(200)
    for key, (py_stats, _) in py_cells.items():
        sp_stats, sp_blob = sp_cells[key]
        # rows, n, missing, invalid exactly; the sum to rounding; min and max exactly.
        np.testing.assert_array_equal(sp_stats[:4], py_stats[:4], err_msg=str(key))
        assert sp_stats[4] == pytest.approx(py_stats[4], rel=1e-9, abs=1e-9)
        np.testing.assert_array_equal(sp_stats[5:7], py_stats[5:7], err_msg=str(key))
        if not sp_blob:
            continue
        # Percentiles: the same value or one within the sketch's rank error of it.
        sketch = QuantileSketch.from_bytes(sp_blob)
        for q, value in zip((0.01, 0.10, 0.50, 0.90, 0.99), py_stats[7:], strict=True):
            assert abs(sketch.rank(value) - q) <= eps + 1 / sketch.n or sketch.quantiles([q])[
                0
            ] == pytest.approx(value), (key, q)
    # Incremental and idempotent: nothing new, nothing counted; new rows, only they.
    assert update_from_archive(spark_cfg, archive, plan=plan).rows == 0
    write(log_url, tmp_path / "spool2", make_records(df.iloc[240:300], seed=4))
    export_parquet(log_url, archive, plan)
    assert update_from_archive(spark_cfg, archive, plan=plan).rows == 60
    again, _ = _dump(spark_cfg.store_url())
    assert sum(n for k, n in again.items() if k[1] == "all" and k[3] == "sd") == 300
    # The store remembers its source: the live log is another one.
    with pytest.raises(SourceMismatchError):
        update(spark_cfg, plan=plan)


def test_a_spark_reset_rebuilds_under_one_lock_and_a_busy_store_refuses_it(
    spark: Any, tmp_path: Path, small: tuple[pd.DataFrame, MonitorPlan]
) -> None:
    plan, _, archive = _archived(tmp_path, small, 120, ("AGE", "PAY_0"), ("AGE",))
    cfg = _config(tmp_path, "spark.db")
    assert update_from_archive(cfg, archive, plan=plan).rows == 120
    before, _ = _dump(cfg.store_url())

    # Another updater holds the lock: the reset is refused and nothing is emptied.
    other = open_monitor_store(cfg.store_url())
    with other.updater_lock(), pytest.raises(UpdaterBusyError):
        update_from_archive(cfg, archive, plan=plan, reset=True)
    other.close()
    assert _dump(cfg.store_url())[0] == before

    # A rebuild counts every archived row once, as the first fill did.
    assert update_from_archive(cfg, archive, plan=plan, reset=True).rows == 120
    assert _dump(cfg.store_url())[0] == before
