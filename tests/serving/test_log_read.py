"""The prediction log's read path: a reader with no writer, chunks, watermarks, export."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tabguard.errors import BackendUnavailableError
from tabguard.serving import LOG_COLUMNS, LogReader, PredictionLog, PredictionRecord, Watermark
from tests.serving._tcp_proxy import closed_port

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def record(i: int, second: int, **kw: object) -> PredictionRecord:
    return PredictionRecord(
        decision_id=f"id{i:05d}",
        timestamp=T0 + timedelta(seconds=second),
        client="bank-a" if i % 2 else "bank-b",
        status="accepted" if i % 3 else "rate_limited",
        score=i / 100,
        **kw,  # type: ignore[arg-type]
    )


def fill(url: str, tmp_path: Path, records: list[PredictionRecord]) -> None:
    with PredictionLog(url, spool_dir=tmp_path / "spool", flush_interval=0.05) as plog:
        for r in records:
            plog.append(r)
        assert plog.flush(30)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def log_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'log.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


# Several records share a second, so the order needs the decision id as tie-breaker.
RECORDS = [record(i, second=i // 3) for i in range(25)]


def test_a_reader_needs_no_writer_and_reads_in_timestamp_then_id_order(
    log_url: str, tmp_path: Path
) -> None:
    fill(log_url, tmp_path, list(reversed(RECORDS)))
    with LogReader(log_url) as reader:
        rows = list(reader.iter_rows())
        assert reader.count() == 25
        assert reader.count(status="rate_limited") == 9
        got = reader.get("id00007")
        assert got is not None and got.score == 0.07 and got.timestamp == T0 + timedelta(seconds=2)
        assert reader.get("nope") is None
    assert [r["decision_id"] for r in rows] == [r.decision_id for r in RECORDS]
    assert tuple(rows[0]) == LOG_COLUMNS


def test_chunks_and_watermarks_resume_exactly_after_the_last_row(
    log_url: str, tmp_path: Path
) -> None:
    fill(log_url, tmp_path, RECORDS)
    seen: list[str] = []
    mark: Watermark | None = None
    with LogReader(log_url) as reader:
        # An incremental reader: one chunk per pass, resuming after its watermark.
        for _ in range(10):
            chunk = next(reader.iter_chunks(after=mark, chunk_size=4), [])
            if not chunk:
                break
            assert len(chunk) <= 4
            seen += [r["decision_id"] for r in chunk]
            mark = Watermark.of(chunk[-1])
        sizes = [len(c) for c in reader.iter_chunks(chunk_size=10)]
        window = list(
            reader.iter_rows(since=T0 + timedelta(seconds=2), until=T0 + timedelta(seconds=4))
        )
        one_client = list(reader.iter_rows(client="bank-a", status="accepted"))
    assert seen == [r.decision_id for r in RECORDS]  # nothing skipped, nothing twice
    assert sizes == [10, 10, 5]
    assert [r["decision_id"] for r in window] == [f"id{i:05d}" for i in range(6, 12)]
    assert {r["client"] for r in one_client} == {"bank-a"}
    assert {r["status"] for r in one_client} == {"accepted"}


@settings(max_examples=25, deadline=None)
@given(
    seconds=st.lists(st.integers(0, 5), min_size=1, max_size=30),
    chunk=st.integers(1, 7),
)
def test_watermark_resumption_visits_every_row_once(
    tmp_path_factory: pytest.TempPathFactory, seconds: list[int], chunk: int
) -> None:
    tmp = tmp_path_factory.mktemp("wm")
    url = f"sqlite:///{tmp / 'log.db'}"
    records = [record(i, s) for i, s in enumerate(seconds)]
    fill(url, tmp, records)
    seen: list[str] = []
    mark: Watermark | None = None
    with LogReader(url) as reader:
        while chunk_rows := next(reader.iter_chunks(after=mark, chunk_size=chunk), []):
            seen += [r["decision_id"] for r in chunk_rows]
            mark = Watermark.of(chunk_rows[-1])
    expected = [r.decision_id for r in sorted(records, key=lambda r: (r.timestamp, r.decision_id))]
    assert seen == expected


def test_query_and_export_through_the_reader(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    fill(url, tmp_path, RECORDS[:5])
    with LogReader(url) as reader:
        df = reader.query(limit=3)
        n = reader.export_csv(tmp_path / "out" / "log.csv")
    assert list(df.columns) == list(LOG_COLUMNS) and len(df) == 3
    assert df["timestamp"].iloc[0] == T0 and df["raw"].iloc[0] == {}
    with (tmp_path / "out" / "log.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert n == 5 and len(rows) == 5
    assert rows[0]["timestamp"] == T0.isoformat()


def test_the_writer_reads_through_a_reader_sharing_its_connections(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    with PredictionLog(url, spool_dir=tmp_path / "spool", flush_interval=0.05) as plog:
        assert isinstance(plog.reader, LogReader)
        plog.append(RECORDS[0])
        assert plog.flush(30)
        assert plog.count() == 1 and [r["decision_id"] for r in plog.iter_rows()] == ["id00000"]


def test_an_unreachable_database_is_a_backend_error_naming_the_store() -> None:
    reader = LogReader(f"postgresql://postgres:hunter2@127.0.0.1:{closed_port()}/nope")
    with pytest.raises(BackendUnavailableError) as info:
        reader.count()
    assert "prediction log" in str(info.value) and "hunter2" not in str(info.value)
    with pytest.raises(BackendUnavailableError):
        next(reader.iter_chunks())
    reader.close()


def test_reader_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        LogReader()
    with LogReader(f"sqlite:///{tmp_path / 'log.db'}") as reader, pytest.raises(ValueError):
        next(reader.iter_chunks(chunk_size=0))
