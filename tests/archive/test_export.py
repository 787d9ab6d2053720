"""The Parquet archive of the prediction log: typed columns, partitions, idempotent and
resumable export (SIGKILL mid-export), verified prune."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pytest

from tabguard.archive import archive_schema, export_parquet, prune_log
from tabguard.errors import DataError
from tabguard.monitoring._aggregate import MonitorPlan
from tabguard.serving import LogReader, PredictionRecord
from tests.monitoring.test_update import T0, make_records, small, write

__all__ = ["small"]  # the module fixture: 600 bundled rows and their monitoring plan


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def log_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'predictions.db'}"
    return str(request.getfixturevalue("postgres_url"))


def archived(out: Path) -> pd.DataFrame:
    return ds.dataset(out, format="parquet", partitioning="hive").to_table().to_pandas()


def odd_record() -> PredictionRecord:
    """A refused request whose attributes do not fit the contract's types."""
    return PredictionRecord(
        timestamp=T0 + timedelta(minutes=1),
        raw={"AGE": "forty", "LIMIT_BAL": 5000, "EXTRA": [1, 2]},
        status="rejected_validation",
        errors=[{"field": "AGE", "rule": "type", "value": "forty"}],
        segment={"channel": "online"},
    )


def test_export_writes_typed_partitioned_columns(
    tmp_path: Path, small: tuple[pd.DataFrame, MonitorPlan], log_url: str
) -> None:
    df, plan = small
    records = make_records(df.head(120), step=timedelta(minutes=2))
    write(log_url, tmp_path / "spool", [*records, odd_record()])
    out = tmp_path / "archive"

    done = export_parquet(log_url, out, plan, batch_rows=50)

    assert done.rows == 121 and not done.resumed
    table = archived(out)
    assert table["decision_id"].is_unique
    assert {r.decision_id for r in records} < set(table["decision_id"])
    schema = archive_schema(plan)
    assert str(schema.field("raw_AGE").type) == "double"
    assert "feature_LIMIT_BAL" in table.columns and "raw" not in table.columns
    # 120 rows two minutes apart from T0: four hours, partitioned by date and hour.
    assert sorted(set(table["hour"])) == [0, 1, 2, 3]
    assert {p.parent.name for p in out.rglob("*.parquet")} == {
        "hour=00",
        "hour=01",
        "hour=02",
        "hour=03",
    }
    first = records[1]  # accepted
    row = table.set_index("decision_id").loc[first.decision_id]
    assert row["raw_AGE"] == first.raw["AGE"]
    assert row["decision"] == first.decision and row["score"] == pytest.approx(first.score)
    assert dict(row["segment"]) == first.segment
    odd = table[table["raw_other"].notna() & table["raw_other"].str.contains("forty")]
    assert len(odd) == 1  # the wrong-typed value and the unknown key are kept as JSON
    assert pd.isna(odd["raw_AGE"].iloc[0]) and "EXTRA" in odd["raw_other"].iloc[0]
    assert dict(odd["errors"].iloc[0][0])["rule"] == "type"


def test_rerun_is_idempotent_and_picks_up_new_rows(
    tmp_path: Path, small: tuple[pd.DataFrame, MonitorPlan]
) -> None:
    df, plan = small
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    write(url, tmp_path / "spool", make_records(df.head(100)))
    out = tmp_path / "archive"
    assert export_parquet(url, out, plan).rows == 100
    assert export_parquet(url, out, plan).rows == 0
    # A late row (a replayed spool) with an old timestamp lands in its old hour next time.
    late = make_records(df.iloc[100:130], start=T0 - timedelta(hours=5), seed=3)
    write(url, tmp_path / "spool2", late)
    assert export_parquet(url, out, plan).rows == 30
    table = archived(out)
    assert len(table) == 130 and table["decision_id"].is_unique
    assert (table["date"].astype(str) == (T0 - timedelta(hours=5)).strftime("%Y-%m-%d")).sum() >= 30


def test_scope_is_part_of_the_archive(
    tmp_path: Path, small: tuple[pd.DataFrame, MonitorPlan]
) -> None:
    df, plan = small
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    write(url, tmp_path / "spool", make_records(df.head(100), step=timedelta(minutes=6)))
    out = tmp_path / "archive"
    done = export_parquet(
        url, out, plan, since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=2)
    )
    assert done.rows == 10 and done.skipped == 90
    with pytest.raises(DataError, match="--since"):
        export_parquet(url, out, plan)


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from tabguard.archive import export_parquet
    from tabguard.datasets import credit_default_contract
    from tabguard.monitoring import MonitorConfig
    from tabguard.monitoring._aggregate import MonitorPlan

    url, out, kill_after = sys.argv[1], sys.argv[2], int(sys.argv[3])
    plan = MonitorPlan.from_contract(credit_default_contract(), MonitorConfig().aggregation)
    seen = []

    def after_part(rel):
        seen.append(rel)
        if len(seen) == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    export_parquet(url, out, plan, batch_rows=40, after_part=after_part)
    """
)


def test_sigkill_mid_export_leaves_no_duplicate_and_no_gap(
    tmp_path: Path, small: tuple[pd.DataFrame, MonitorPlan]
) -> None:
    df, plan = small
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    records = make_records(df.head(300), step=timedelta(minutes=1))
    write(url, tmp_path / "spool", records)
    out = tmp_path / "archive"
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    proc = subprocess.run(
        [sys.executable, str(script), url, str(out), "3"],
        capture_output=True,
        check=False,
    )
    assert proc.returncode == -9, proc.stderr.decode()
    assert (out / "_pending.json").exists()
    with pytest.raises(DataError, match="did not finish"):
        prune_log(url, out, keep=timedelta(0))

    done = export_parquet(url, out, plan, batch_rows=40)

    assert done.resumed and not (out / "_pending.json").exists()
    table = archived(out)
    assert table["decision_id"].is_unique
    assert set(table["decision_id"]) == {r.decision_id for r in records}
    assert export_parquet(url, out, plan).rows == 0


def test_prune_deletes_only_verified_archived_rows(
    tmp_path: Path, small: tuple[pd.DataFrame, MonitorPlan]
) -> None:
    df, plan = small
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    records = make_records(df.head(120), step=timedelta(minutes=2))
    write(url, tmp_path / "spool", records)
    out = tmp_path / "archive"
    export_parquet(url, out, plan)
    tampered = sorted(out.rglob("*.parquet"))[0]
    kept = len(archived(out).query(f"hour == {int(tampered.parent.name[5:])}"))
    tampered.write_bytes(tampered.read_bytes()[:-9] + b"corrupted")

    # Nothing is old enough with a long keep.
    assert prune_log(url, out, keep=timedelta(days=10_000)).deleted == 0
    result = prune_log(url, out, keep=timedelta(0))

    assert result.refused_parts == [str(tampered.relative_to(out))]
    assert result.deleted == 120 - kept
    with LogReader(url) as reader:
        assert reader.count() == kept
