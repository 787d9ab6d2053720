"""The prediction log's ingest_seq column: set at insert, in commit order, migrated in old logs."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from tabguard.serving import PredictionLog, PredictionRecord
from tabguard.storage import create_sql_engine, ensure_schema, predictions_table
from tabguard.storage._schema import INGEST_SEQ, has_ingest_seq


def _seqs(url: str) -> list[int | None]:
    engine = create_sql_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(f"SELECT {INGEST_SEQ} FROM tg_predictions ORDER BY {INGEST_SEQ}")
        ).all()
    engine.dispose()
    return [r[0] for r in rows]


def _write(url: str, tmp_path: Path, n: int) -> None:
    with PredictionLog(url, spool_dir=tmp_path / "spool") as log:
        for _ in range(n):
            log.append(PredictionRecord(status="accepted", decision="approve", score=0.2))
        assert log.flush()


def test_sqlite_sequence_is_gap_free(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    _write(url, tmp_path, 5)
    _write(url, tmp_path, 3)
    assert _seqs(url) == list(range(1, 9))


def _old_log(engine: sa.Engine) -> None:
    """A log written before the column existed (plain table, three rows)."""
    from tabguard.storage import METADATA

    METADATA.create_all(engine, tables=[predictions_table])
    row = {
        "timestamp": sa.func.now(),
        "status": "accepted",
        "raw": "{}",
        "features": "{}",
        "guard_actions": "[]",
        "flags": "{}",
        "errors": "[]",
        "segment": "{}",
        "probing": "[]",
    }
    with engine.begin() as conn:
        for i in range(3):
            conn.execute(predictions_table.insert().values(decision_id=f"old{i}", **row))


def test_sqlite_migration_of_an_existing_log(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    engine = create_sql_engine(url)
    _old_log(engine)
    assert not has_ingest_seq(engine)
    ensure_schema(engine, [predictions_table])
    ensure_schema(engine, [predictions_table])  # idempotent
    assert has_ingest_seq(engine)
    _write(url, tmp_path, 2)
    seqs = _seqs(url)
    assert seqs == [1, 2, 3, 4, 5]  # old rows first, new rows after, no gap
    engine.dispose()


def test_sequence_survives_an_emptied_log(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    _write(url, tmp_path, 3)
    engine = create_sql_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM tg_predictions"))
    engine.dispose()
    _write(url, tmp_path, 1)
    assert _seqs(url) == [4]  # never reused: a watermark at 3 still sees the new row


@pytest.mark.postgres
def test_postgres_sequence_and_migration(postgres_url: str, tmp_path: Path) -> None:
    engine = create_sql_engine(postgres_url)
    _old_log(engine)
    ensure_schema(engine, [predictions_table])
    assert _seqs(postgres_url) == [1, 1, 1]
    _write(postgres_url, tmp_path, 4)
    seqs = _seqs(postgres_url)
    assert len(seqs) == 7 and all(s is not None for s in seqs)
    assert min(seqs[3:]) > 1  # transaction ids of the writer, after the migrated rows
    # Committed rows are below the updater's horizon (no transaction of this database runs).
    from tabguard.monitoring._update import LogReader

    reader = LogReader(postgres_url)
    assert max(seqs) < reader.horizon()
    reader.close()
    engine.dispose()


def test_records_never_show_the_column(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    _write(url, tmp_path, 1)
    with PredictionLog(url, spool_dir=tmp_path / "spool") as log:
        df = log.query()
        assert INGEST_SEQ not in df.columns
        assert log.get(df["decision_id"].iloc[0]) is not None
