"""The prediction log's read path: look-ups, streaming in chunks, DataFrames, CSV export.

:class:`LogReader` opens the log's database and nothing else: no writer thread, no spool, so
monitoring jobs, exports and the CLI read the log without touching what the service writes.
:class:`~tabguard.serving.PredictionLog` reads through one that shares its connection pool.

Rows come oldest first in one total order, ``(timestamp, decision_id)``: a reader that
remembers the last row it processed as a :class:`Watermark` resumes right after it
(``after=``), in chunks as large as it likes (:meth:`LogReader.iter_chunks`, one list of rows
per database round trip, the shape a columnar writer wants). ``timestamp`` is the request's
arrival time, and rows reach the database late: up to ``[log] flush_interval`` normally, and
after an outage a replayed spool brings rows whose timestamps lie before any watermark taken
meanwhile. A reader that must see every row either stays that far behind the present or keys on
the order rows were committed in (the ``ingest_seq`` column, see ``tabguard.storage._schema``).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Self

import sqlalchemy as sa

from tabguard.serving._record import JSON_FIELDS, PredictionRecord, row_to_record, to_utc
from tabguard.storage import (
    backend_errors,
    create_sql_engine,
    ensure_schema,
    predictions_table,
    redact_url,
)

if TYPE_CHECKING:
    import pandas as pd

#: Columns of a stored row, in table order (the CSV header, the DataFrame's columns).
LOG_COLUMNS: tuple[str, ...] = tuple(c.name for c in predictions_table.columns)


class Watermark(NamedTuple):
    """A position in the log's ``(timestamp, decision_id)`` order: the last row processed.

    Attributes
    ----------
    timestamp : datetime
        The row's ``timestamp`` (UTC).
    decision_id : str
        The row's ``decision_id`` (breaks ties between rows of the same instant).
    """

    timestamp: datetime
    decision_id: str

    @classmethod
    def of(cls, row: dict[str, Any]) -> Watermark:
        """The watermark of a stored row (as yielded by :meth:`LogReader.iter_rows`)."""
        ts = to_utc(row["timestamp"])
        if ts is None:
            raise ValueError("a log row without a timestamp has no watermark")
        return cls(ts, str(row["decision_id"]))


class LogReader:
    """Read the prediction log in its database (SQLite, PostgreSQL).

    Parameters
    ----------
    url : str, optional
        The log's URL (``[stores] log``); the reader then owns its connections
        (:meth:`close` releases them).
    engine : sqlalchemy.Engine, optional
        An engine to share instead (the writer's); not disposed by :meth:`close`.
    what : str, optional
        How errors name the store (default ``prediction log <redacted url>``).

    Raises
    ------
    BackendUnavailableError
        From every read, when the database cannot be reached.

    Examples
    --------
    >>> import tempfile
    >>> reader = LogReader(f"sqlite:///{tempfile.mkdtemp()}/log.db")
    >>> reader.count(), list(reader.iter_chunks())
    (0, [])
    >>> reader.close()
    """

    def __init__(
        self, url: str | None = None, *, engine: sa.Engine | None = None, what: str | None = None
    ) -> None:
        if (url is None) == (engine is None):
            raise ValueError("LogReader needs exactly one of url= and engine=")
        self._owned = engine is None
        self._engine = engine if engine is not None else create_sql_engine(str(url))
        shown = redact_url(url) if url is not None else self._engine.url.render_as_string()
        self._what = what or f"prediction log {shown}"

    # ---- queries ----------------------------------------------------------------------------

    def _ready(self) -> None:
        ensure_schema(self._engine, [predictions_table], what=self._what)

    @staticmethod
    def select(
        since: datetime | None = None,
        until: datetime | None = None,
        client: str | None = None,
        status: str | None = None,
        after: Watermark | tuple[datetime, str] | None = None,
    ) -> sa.Select[Any]:
        """The rows matching the filters, in ``(timestamp, decision_id)`` order.

        ``since``/``until`` bound ``timestamp`` (``[since, until)``); ``after`` keeps only the
        rows past a watermark.
        """
        t = predictions_table
        query = sa.select(t).order_by(t.c.timestamp, t.c.decision_id)
        if since is not None:
            query = query.where(t.c.timestamp >= to_utc(since))
        if until is not None:
            query = query.where(t.c.timestamp < to_utc(until))
        if client is not None:
            query = query.where(t.c.client == client)
        if status is not None:
            query = query.where(t.c.status == status)
        if after is not None:
            ts, decision_id = after
            query = query.where(
                sa.tuple_(t.c.timestamp, t.c.decision_id) > sa.tuple_(to_utc(ts), decision_id)
            )
        return query

    def count(self, *, status: str | None = None) -> int:
        """Return the number of rows (optionally with one ``status``)."""
        t = predictions_table
        query = sa.select(sa.func.count()).select_from(t)
        if status is not None:
            query = query.where(t.c.status == status)
        with backend_errors(self._what, "count rows"):
            self._ready()
            with self._engine.connect() as conn:
                return int(conn.execute(query).scalar_one())

    def get(self, decision_id: str) -> PredictionRecord | None:
        """Return one stored record by id, or ``None``."""
        t = predictions_table
        with backend_errors(self._what, f"read decision {decision_id!r}"):
            self._ready()
            with self._engine.connect() as conn:
                row = conn.execute(sa.select(t).where(t.c.decision_id == decision_id)).mappings()
                found = row.first()
        return None if found is None else row_to_record(found)

    def iter_chunks(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        client: str | None = None,
        status: str | None = None,
        *,
        after: Watermark | tuple[datetime, str] | None = None,
        chunk_size: int = 5000,
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield the matching rows oldest first, ``chunk_size`` at a time.

        Rows are dicts of :data:`LOG_COLUMNS` as stored (JSON columns as text); the database
        streams them (a server-side cursor on PostgreSQL), so memory holds one chunk.
        """
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1; got {chunk_size}")
        query = self.select(since, until, client, status, after)
        with backend_errors(self._what, "read rows"):
            self._ready()
            with self._engine.connect() as conn:
                result = conn.execution_options(yield_per=chunk_size).execute(query)
                for part in result.mappings().partitions(chunk_size):
                    yield [dict(row) for row in part]

    def iter_rows(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        client: str | None = None,
        status: str | None = None,
        chunk_size: int = 5000,
        *,
        after: Watermark | tuple[datetime, str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield stored rows oldest first (JSON columns as text), streaming from the database."""
        for chunk in self.iter_chunks(
            since, until, client, status, after=after, chunk_size=chunk_size
        ):
            yield from chunk

    def query(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        client: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        parse_json: bool = True,
    ) -> pd.DataFrame:
        """Return stored rows as a DataFrame (one column per record field), oldest first.

        Parameters
        ----------
        since, until : datetime, optional
            Time window ``[since, until)`` on ``timestamp``.
        client, status : str, optional
            Keep one client's or one status's rows.
        limit : int, optional
            At most this many rows (the oldest).
        parse_json : bool, default True
            Decode the JSON columns (``raw``, ``features``, ...) into Python objects.
        """
        import pandas as pd

        rows = []
        for i, row in enumerate(self.iter_rows(since, until, client, status)):
            if limit is not None and i >= limit:
                break
            if parse_json:
                for name in JSON_FIELDS:
                    row[name] = json.loads(row[name]) if row[name] is not None else None
            row["timestamp"] = to_utc(row["timestamp"])
            row["available_at"] = to_utc(row["available_at"])
            rows.append(row)
        return pd.DataFrame(rows, columns=list(LOG_COLUMNS))

    def export_csv(
        self,
        path: str | os.PathLike[str],
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        """Write the log to a CSV file (JSON columns as JSON text); return the row count."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        n = 0
        with out.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(LOG_COLUMNS))
            writer.writeheader()
            for chunk in self.iter_chunks(since, until):
                for row in chunk:
                    for key in ("timestamp", "available_at"):
                        value = to_utc(row[key])
                        row[key] = value.isoformat() if value else ""
                writer.writerows(chunk)
                n += len(chunk)
        return n

    # ---- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Release the connections this reader opened (a shared engine is left alone)."""
        if self._owned:
            self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
