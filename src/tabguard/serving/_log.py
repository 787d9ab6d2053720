"""The prediction log's write path (S5): every scoring request, accepted or rejected, kept.

Database writes never sit on the request path: :meth:`PredictionLog.append` turns the record
into its row, writes the row to the local journal (:class:`~tabguard.serving._journal.Journal`:
one ``write(2)``, so the record survives the death of the process once the call returns),
puts it on an in-memory queue and returns; a writer thread inserts batches (``batch_size``
records, or whatever arrived within ``flush_interval`` seconds). When the database is
unreachable the batch is written to the spool directory instead
(:class:`~tabguard.serving._spool.Spool`: one JSON-lines file per batch, fsync'd and renamed
into place, so a file is either complete or absent) and replayed when the database answers
again, and at start-up. Inserts are idempotent on ``decision_id``, so a replay that is
interrupted and repeated never duplicates a row. A row the database refuses for its content
(not for being down) is retried alone and, if refused again, kept in ``dead-letter.jsonl`` in
the spool directory: nothing is dropped silently.

Journal segments whose rows are all stored are deleted; the journals of processes that died
are replayed at start-up and every few seconds by any live process (idempotent as well).

The record and its row form live in ``_record.py``, the spool in ``_spool.py``, the journal in
``_journal.py``, reads in ``_log_read.py`` (:class:`~tabguard.serving._log_read.LogReader`,
which this log uses with its own connection pool).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

import sqlalchemy as sa

from tabguard.serving._journal import FsyncPolicy, Journal
from tabguard.serving._log_read import LogReader
from tabguard.serving._record import (
    JSON_FIELDS,
    DecisionValue,
    PredictionRecord,
    Status,
    dumps_json,
    dumps_line,
    loads_line,
    record_to_row,
    row_to_record,
    to_utc,
)
from tabguard.serving._spool import Spool
from tabguard.storage import (
    create_sql_engine,
    driver_exceptions,
    driver_message,
    ensure_schema,
    is_connectivity_error,
    predictions_table,
    redact_url,
)
from tabguard.storage._schema import NUMBERS, predictions_write_table

if TYPE_CHECKING:
    import pandas as pd

    from tabguard.monitoring._numbers import NumberLayout
    from tabguard.serving._config import ServingConfig

log = logging.getLogger(__name__)

#: Seconds between two looks for the journals of dead processes (also done at start-up).
ORPHAN_INTERVAL = 5.0

__all__ = [
    "JSON_FIELDS",
    "DecisionValue",
    "LogStats",
    "PredictionLog",
    "PredictionRecord",
    "Spool",
    "Status",
    "dumps_json",
    "record_to_row",
    "row_to_record",
]


def _missing_table(exc: sa.exc.DBAPIError) -> bool:
    # PostgreSQL: SQLSTATE 42P01 undefined_table; SQLite: "no such table".
    return getattr(exc.orig, "sqlstate", None) == "42P01" or "no such table" in str(exc)


def _db_row(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["timestamp"] = to_utc(row["timestamp"])
    out["available_at"] = to_utc(row.get("available_at"))
    return out


# --------------------------------------------------------------------------------------------
# The log.


@dataclass(frozen=True)
class LogStats:
    """Counters of one :class:`PredictionLog` (this process only).

    Attributes
    ----------
    appended : int
        Records handed to :meth:`PredictionLog.append`.
    written : int
        Rows sent to the database directly (inserted or already there).
    spooled : int
        Rows written to the spool because the database was unreachable.
    replayed : int
        Spooled rows sent to the database after it came back.
    dead_lettered : int
        Rows the database refused for their content (kept in ``dead-letter.jsonl``).
    queued : int
        Records waiting in memory.
    backend_up : bool
        Whether the last database operation succeeded.
    recovered : int
        Rows replayed from the journals of processes that died.
    journaled : int
        Rows in this process's journal not yet stored (database or spool).
    """

    appended: int
    written: int
    spooled: int
    replayed: int
    dead_lettered: int
    queued: int
    backend_up: bool
    recovered: int = 0
    journaled: int = 0


class _Marker:
    """A request to the writer thread, answered by setting ``done``."""

    def __init__(self, kind: Literal["flush", "replay", "stop"]) -> None:
        self.kind = kind
        self.done = threading.Event()


#: What the writer thread receives: a row and its journal segment (0: not journaled).
_Item = tuple[dict[str, Any], int]


class _Inbox:
    """The writer thread's queue, woken per batch rather than per record.

    A queue whose ``put`` wakes a waiting consumer costs two thread switches (and two GIL
    hand-overs) per record: the writer wakes for each row, takes it, and sleeps again while
    the request path waits for the GIL. Here appends only wake the writer once a batch is
    full or a marker (flush, replay, stop) arrives; otherwise it wakes on its own every
    ``flush_interval``. ``deque.append`` and ``popleft`` are atomic, so the request path takes
    no lock.
    """

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self._items: deque[_Item | _Marker] = deque()
        self._wake = threading.Event()
        self._markers = 0
        self._marker_lock = threading.Lock()  # markers are rare; rows take no lock

    def put(self, item: _Item) -> None:
        self._items.append(item)
        if len(self._items) >= self.batch_size:
            self._wake.set()

    def put_marker(self, marker: _Marker) -> None:
        with self._marker_lock:
            self._markers += 1
            self._items.append(marker)
        self._wake.set()

    def wait(self, timeout: float) -> None:
        """Sleep until a batch is ready, a marker came, or ``timeout`` seconds passed."""
        if len(self._items) < self.batch_size and self._markers <= 0:
            self._wake.wait(timeout)
        self._wake.clear()

    def take(self, limit: int) -> tuple[list[_Item], list[_Marker]]:
        """Up to ``limit`` items, stopping after the first marker."""
        items: list[_Item] = []
        markers: list[_Marker] = []
        while len(items) < limit:
            try:
                item = self._items.popleft()
            except IndexError:
                break
            if isinstance(item, _Marker):
                with self._marker_lock:
                    self._markers -= 1
                markers.append(item)
                break
            items.append(item)
        return items, markers

    def qsize(self) -> int:
        return len(self._items)


class PredictionLog:
    """The prediction log: journaled appends, batched writes, a disk spool for outages.

    Parameters
    ----------
    url : str
        ``sqlite:///path`` (default store), ``postgresql://...`` or ``memory://``.
    spool_dir : path-like
        Where batches go while the database is unreachable.
    batch_size : int, default 200
        Rows per insert.
    flush_interval : float, default 0.5
        Longest time (s) a record waits in memory.
    retry_interval : float, default 2.0
        Seconds between reconnection attempts while the database is down.
    recent : int, default 10000
        Records of this process kept in memory for :meth:`get` before they are written.
    journal_dir : path-like, optional
        Where the journal lives (see :mod:`tabguard.serving._journal`); ``None``: no journal
        (a killed process then loses the records not yet written).
    fsync : {'interval', 'always', 'never'}, default 'interval'
        When the journal reaches the disk.
    fsync_interval : float, default 1.0
        Seconds between journal fsyncs under ``interval``.

    Notes
    -----
    Create one log per process (after forking worker processes). :meth:`close` drains the
    queue; it also runs at interpreter exit.

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> plog = PredictionLog(f"sqlite:///{d}/log.db", spool_dir=f"{d}/spool")
    >>> plog.append(PredictionRecord(status="accepted", decision="approve", score=0.1))
    >>> plog.flush()
    True
    >>> plog.count()
    1
    >>> plog.close()
    """

    def __init__(
        self,
        url: str,
        *,
        spool_dir: str | os.PathLike[str],
        batch_size: int = 200,
        flush_interval: float = 0.5,
        retry_interval: float = 2.0,
        recent: int = 10_000,
        journal_dir: str | os.PathLike[str] | None = None,
        fsync: FsyncPolicy = "interval",
        fsync_interval: float = 1.0,
    ) -> None:
        if batch_size < 1 or flush_interval <= 0 or retry_interval <= 0:
            raise ValueError(
                "PredictionLog needs batch_size >= 1, flush_interval > 0 and retry_interval > 0; "
                f"got {batch_size}, {flush_interval}, {retry_interval}"
            )
        self.url = url
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.retry_interval = retry_interval
        self.spool = Spool(spool_dir)
        self._what = f"prediction log {redact_url(url)}"
        # Durable commits: a journal segment is deleted once its rows are committed.
        self._engine = create_sql_engine(url, durable=True)
        #: Reads of the stored log (shares this log's connection pool).
        self.reader = LogReader(engine=self._engine, what=self._what)
        self.journal = (
            Journal(journal_dir, fsync=fsync, fsync_interval=fsync_interval)
            if journal_dir is not None
            else None
        )
        self._queue = _Inbox(batch_size)
        self._recent: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._recent_max = recent
        self._recent_lock = threading.Lock()
        self._counts = {
            "appended": 0, "written": 0, "spooled": 0, "replayed": 0, "dead": 0, "recovered": 0,
        }  # fmt: skip
        self._next_orphans = 0.0
        #: When set (the service sets its model's), each written row also stores its raw
        #: attributes and features as a binary vector the monitor reads without JSON parsing.
        self.number_layout: NumberLayout | None = None
        self._held: list[dict[str, Any]] = []  # rows neither the DB nor the disk took
        self._schema_ready = False
        self._backend_up = True
        self._spool_dirty = True  # check the spool at start-up
        self._next_retry = 0.0
        self._closed = False
        self._close_lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._run, name="tabguard-prediction-log", daemon=True
        )
        self._thread.start()
        atexit.register(self.close)

    @classmethod
    def from_config(cls, config: ServingConfig) -> PredictionLog:
        """Open the log configured in ``tabguard.toml`` (``[stores] log`` and ``[log]``)."""
        return cls(
            config.stores.log,
            spool_dir=config.log.spool_dir,
            batch_size=config.log.batch_size,
            flush_interval=config.log.flush_interval,
            retry_interval=config.log.retry_interval,
            journal_dir=config.log.journal_dir if config.log.journal else None,
            fsync=config.log.fsync,
            fsync_interval=config.log.fsync_interval,
        )

    # ---- the request path -------------------------------------------------------------------

    def append(self, record: PredictionRecord) -> None:
        """Journal ``record`` and queue it for writing (never raises for backend trouble).

        When this returns the record is in the journal (handed to the kernel): a process
        killed afterwards loses nothing. After :meth:`close`, the record is written straight
        to the spool (replayed at the next start), so a request finishing during shutdown is
        not lost.
        """
        try:
            row = record_to_row(record)
        except Exception as exc:  # a record we cannot even serialise: keep its repr
            log.exception("prediction log: cannot serialise record %s", record.decision_id)
            self._counts["appended"] += 1
            self.spool.dead_letter([repr(record)[:100_000]], f"serialise: {exc}")
            self._counts["dead"] += 1
            return
        self.append_row(row)

    def append_row(self, row: dict[str, Any]) -> None:
        """:meth:`append` for a row already in stored form (:func:`record_to_row`'s output).

        The guards pipeline builds rows directly (no :class:`PredictionRecord` on the request
        path).
        """
        self._counts["appended"] += 1
        with self._recent_lock:
            self._recent[row["decision_id"]] = row
            if len(self._recent) > self._recent_max:
                self._recent.popitem(last=False)
        if self._closed:
            self._spool_rows([row])
            return
        seq = 0
        if self.journal is not None:
            try:
                seq = self.journal.append(dumps_line(row))
            except (OSError, RuntimeError) as exc:  # disk full, or closed by a racing close()
                log.error("prediction log: journal write failed (%s); record kept in memory", exc)
        self._queue.put((row, seq))

    # ---- control ----------------------------------------------------------------------------

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until every record appended so far is in the database or the spool.

        Returns
        -------
        bool
            False when ``timeout`` passed first.
        """
        return self._request("flush", timeout)

    def replay(self, timeout: float | None = 60.0) -> bool:
        """Write queued records, then try the database now and replay the spool into it.

        Returns
        -------
        bool
            True when the spool is empty afterwards (everything is in the database).
        """
        self._request("replay", timeout)
        return not self.spool.files() and not self._held

    def close(self, timeout: float | None = 60.0) -> None:
        """Drain the queue (database or spool), stop the writer and release connections."""
        with self._close_lock:
            if self._closed:
                return
            # From here on append() spools directly; the writer drains what is queued.
            self._closed = True
            if self._thread.is_alive():
                marker = _Marker("stop")
                self._queue.put_marker(marker)
                marker.done.wait(timeout)
            self._thread.join(timeout)
        # An append that raced with close() may have queued behind the stop marker.
        leftovers: list[dict[str, Any]] = []
        while True:
            items, markers = self._queue.take(1 << 30)
            if not items and not markers:
                break
            for marker in markers:
                marker.done.set()
            leftovers += [row for row, _ in items]
        if leftovers or self._held:
            self._spool_rows(leftovers + self._take_held())
        if self.journal is not None:
            # Everything is in the database or the spool unless the disk refused it too;
            # then the journal stays for the next start to replay.
            self.journal.close(drained=not self._held and not self._thread.is_alive())
        atexit.unregister(self.close)
        self._engine.dispose()

    def _request(self, kind: Literal["flush", "replay", "stop"], timeout: float | None) -> bool:
        if self._closed or not self._thread.is_alive():
            return True
        marker = _Marker(kind)
        self._queue.put_marker(marker)
        return marker.done.wait(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def stats(self) -> LogStats:
        """This process's counters."""
        c = self._counts
        return LogStats(
            appended=c["appended"],
            written=c["written"],
            spooled=c["spooled"],
            replayed=c["replayed"],
            dead_lettered=c["dead"],
            queued=self._queue.qsize(),
            backend_up=self._backend_up,
            recovered=c["recovered"],
            journaled=self.journal.pending() if self.journal is not None else 0,
        )

    # ---- the writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        self._replay_orphans()
        self._recover(force=True)
        while True:
            markers: list[_Marker] = []
            rows: list[dict[str, Any]] = []
            try:
                items, markers = self._collect()
                rows = [row for row, _ in items] + self._take_held()
                self._write(rows)
                rows = []
                self._stored(items)
                replay_now = any(m.kind in ("replay", "stop") for m in markers)
                if replay_now or not self._backend_up or self._spool_dirty:
                    self._recover(force=replay_now)
                if time.monotonic() >= self._next_orphans:
                    self._replay_orphans()
            except Exception as exc:  # the writer must outlive any bug, and keep its rows
                if isinstance(exc, driver_exceptions()):  # no traceback: it holds the INSERT
                    log.error("prediction log writer: %s (continuing)", driver_message(exc))
                else:
                    log.exception("prediction log writer: unexpected error (continuing)")
                self._held.extend(rows)  # retried next round; a repeat insert is harmless
                time.sleep(self.flush_interval)
            for marker in markers:
                marker.done.set()
            if any(m.kind == "stop" for m in markers):
                if self.journal is not None:
                    self.journal.sync()
                return

    def _collect(self) -> tuple[list[_Item], list[_Marker]]:
        wait_max = self.flush_interval
        if self.journal is not None:
            wait_max = min(wait_max, self.journal.sync_due())
        self._queue.wait(max(wait_max, 0.0))
        return self._queue.take(self.batch_size)

    def _stored(self, items: list[_Item]) -> None:
        """Tell the journal which of its rows are now in the database or the spool."""
        if self.journal is None or not items or self._held:
            return  # rows held in memory keep their segments (replayed at the next start)
        counts: dict[int, int] = {}
        for _, seq in items:
            if seq:
                counts[seq] = counts.get(seq, 0) + 1
        if counts:
            self.journal.mark_stored(counts)

    def _replay_orphans(self) -> None:
        """Replay the journals of processes that died into the database (or the spool)."""
        self._next_orphans = time.monotonic() + ORPHAN_INTERVAL
        if self.journal is None:
            return
        for orphan in self.journal.orphans():
            rows: list[dict[str, Any]] = []
            bad: list[str] = []
            for line in orphan.lines():
                row = loads_line(line)
                if row is None:
                    bad.append(line.decode("utf-8", "replace"))
                else:
                    rows.append(row)
            for start in range(0, len(rows), self.batch_size):
                self._write(rows[start : start + self.batch_size])
            if self._held:
                return  # neither the database nor the disk took them: keep the journal
            if bad:
                self.spool.dead_letter(bad, f"unparsable journal line in {orphan.lock_path.name}")
                self._counts["dead"] += len(bad)
            self._counts["recovered"] += len(rows)
            orphan.release()
            if rows:
                log.warning(
                    "prediction log: %d records recovered from the journal of a process that "
                    "stopped without writing them",
                    len(rows),
                )

    def _take_held(self) -> list[dict[str, Any]]:
        held, self._held = self._held, []
        return held

    def _write(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        if self._backend_up:
            try:
                self._insert(rows)
                self._counts["written"] += len(rows)
                return
            except Exception as exc:
                if is_connectivity_error(exc):
                    self._mark_down(exc)
                else:
                    self._insert_each(rows, "written")
                    return
        self._spool_rows(rows)

    def _spool_rows(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        try:
            self.spool.write(rows)
            self._counts["spooled"] += len(rows)
            self._spool_dirty = True
        except OSError as exc:  # disk full or unwritable: keep them in memory and retry
            log.error(
                "prediction log: cannot spool %d rows (%s); holding them", len(rows), exc.strerror
            )
            self._held.extend(rows)

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        if not self._schema_ready:
            ensure_schema(self._engine, [predictions_table], what=self._what)
            self._schema_ready = True
        dialect = self._engine.dialect.name
        table, values = self._with_numbers(rows)
        stmt: Any
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            stmt = pg_insert(table).on_conflict_do_nothing(index_elements=["decision_id"])
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            stmt = sqlite_insert(table).on_conflict_do_nothing(index_elements=["decision_id"])
        try:
            with self._engine.begin() as conn:
                conn.execute(stmt, values)
        except sa.exc.DBAPIError as exc:
            if not _missing_table(exc):
                raise
            # The table vanished (database recreated): create it again and retry once.
            self._schema_ready = False
            ensure_schema(self._engine, [predictions_table], what=self._what)
            self._schema_ready = True
            with self._engine.begin() as conn:
                conn.execute(stmt, values)

    def _with_numbers(self, rows: list[dict[str, Any]]) -> tuple[sa.Table, list[dict[str, Any]]]:
        """The table to insert into and the database rows, with their ``numbers`` vectors when
        a layout is set (computed here, in the writer thread, from the JSON being stored)."""
        values = [_db_row(r) for r in rows]
        layout = self.number_layout
        if layout is None:
            return predictions_table, values
        try:
            vectors = layout.encode([r["raw"] for r in rows], [r["features"] for r in rows])
        except Exception:  # never lose rows over the vectors: the monitor reads the JSON
            log.exception("prediction log: cannot compute the numbers vectors of a batch")
            vectors = [None] * len(rows)
        for value, vector in zip(values, vectors, strict=True):
            value[NUMBERS] = vector
        return predictions_write_table, values

    def _insert_each(self, rows: list[dict[str, Any]], counter: str) -> None:
        """Insert rows one by one after a batch was refused; refused rows go to dead-letter."""
        for row in rows:
            try:
                self._insert([row])
                self._counts[counter] += 1
            except Exception as exc:
                if is_connectivity_error(exc):
                    self._mark_down(exc)
                    self._spool_rows([row])
                else:
                    # Never the driver's full text: it holds the INSERT's parameters (applicant
                    # attributes, subject ids). The row itself is kept in the dead-letter file.
                    reason = driver_message(exc)
                    log.error("prediction log: row %s refused: %s", row.get("decision_id"), reason)
                    self.spool.dead_letter([row], reason)
                    self._counts["dead"] += 1

    def _mark_down(self, exc: BaseException) -> None:
        if self._backend_up:
            log.warning(
                "%s unreachable, spooling to %s: %s",
                self._what,
                self.spool.directory,
                driver_message(exc),
            )
        self._backend_up = False
        self._schema_ready = False
        self._next_retry = time.monotonic() + self.retry_interval

    def _recover(self, *, force: bool = False) -> None:
        """Reconnect if due, then replay every spool file into the database."""
        if not force and not self._backend_up and time.monotonic() < self._next_retry:
            return
        try:
            self.spool.release_orphans()
            ensure_schema(self._engine, [predictions_table], what=self._what)
            self._schema_ready = True
            for path in self.spool.files():
                claimed = self.spool.claim(path)
                if claimed is None:
                    continue
                try:
                    self._replay_file(claimed)
                except BaseException:
                    # Give the file back so it is replayed later (idempotent).
                    with contextlib.suppress(OSError):
                        os.replace(claimed, path)
                    raise
            if not self._backend_up:
                log.warning("%s reachable again; spool replayed", self._what)
            self._backend_up = True
            self._spool_dirty = False
        except Exception as exc:
            if not is_connectivity_error(exc):
                log.error("%s: replay failed: %s", self._what, driver_message(exc))
            self._mark_down(exc)

    def _replay_file(self, path: Path) -> None:
        rows, bad = self.spool.read(path)
        if bad:
            self.spool.dead_letter(bad, f"unparsable spool line in {path.name}")
            self._counts["dead"] += len(bad)
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start : start + self.batch_size]
            try:
                self._insert(chunk)
                self._counts["replayed"] += len(chunk)
            except Exception as exc:
                if is_connectivity_error(exc):
                    raise
                self._insert_each(chunk, "replayed")
                if not self._backend_up:
                    raise RuntimeError("database went down during replay") from exc
        path.unlink(missing_ok=True)

    # ---- reads (through the read path, sharing this log's connections) ---------------------

    def count(self, *, status: str | None = None) -> int:
        """Return the number of rows in the database (optionally with one ``status``).

        Raises
        ------
        BackendUnavailableError
            When the database cannot be reached.
        """
        return self.reader.count(status=status)

    def get(self, decision_id: str) -> PredictionRecord | None:
        """Return one record by id: from this process's recent records, else the database."""
        with self._recent_lock:
            recent = self._recent.get(decision_id)
        if recent is not None:
            return row_to_record(recent)
        return self.reader.get(decision_id)

    def iter_rows(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        client: str | None = None,
        status: str | None = None,
        chunk_size: int = 5000,
    ) -> Iterator[dict[str, Any]]:
        """Yield stored rows oldest first (see :meth:`LogReader.iter_rows`)."""
        return self.reader.iter_rows(since, until, client, status, chunk_size)

    def query(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        client: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        parse_json: bool = True,
    ) -> pd.DataFrame:
        """Return stored rows as a DataFrame, oldest first (see :meth:`LogReader.query`)."""
        return self.reader.query(since, until, client, status, limit, parse_json)

    def export_csv(
        self,
        path: str | os.PathLike[str],
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        """Write the log to a CSV file (JSON columns as JSON text); return the row count."""
        return self.reader.export_csv(path, since, until)
