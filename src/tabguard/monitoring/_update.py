"""``tabguard monitor update``: fold new prediction-log rows into the bucket store.

Incremental and idempotent:

* The watermark is a position in the log's commit order (``ingest_seq``, see
  ``storage/_schema.py``), not a request time: rows that arrive late (a batched writer, a spool
  replayed after an outage) are read when they are committed and folded into the bucket of
  their own ``timestamp``.
* Each batch (``aggregation.batch_rows`` rows) is merged and the watermark moved in **one
  transaction**; a crash in the middle leaves the store as it was after the previous batch,
  and the rerun reads from there. The merge refuses to write if the stored watermark is not
  the one the batch started from, so no batch is ever counted twice.
* One updater at a time (PostgreSQL advisory lock, SQLite file lock): a second one returns at
  once with ``busy=True``.
* On PostgreSQL the batch ends below the snapshot's ``xmin``: rows of transactions still in
  flight are read by a later run, never skipped.
"""

from __future__ import annotations

import gc
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from tabguard.errors import DataError, TabguardError
from tabguard.monitoring._aggregate import (
    BATCH_COLUMNS,
    PARALLEL_MIN_ROWS,
    Admission,
    Aggregator,
    BatchParser,
    BatchResult,
    MonitorPlan,
    PreparedBatch,
    StartedBatch,
)
from tabguard.monitoring._clock import Clock, SystemClock
from tabguard.monitoring._config import MonitorConfig
from tabguard.monitoring._store import (
    SqlMonitorStore,
    UpdaterBusyError,
    open_monitor_store,
)
from tabguard.monitoring._window import from_epoch
from tabguard.storage import (
    backend_errors,
    create_sql_engine,
    ensure_schema,
    predictions_table,
    redact_url,
    store_kind,
)
from tabguard.storage._schema import INGEST_SEQ, NUMBERS

log = logging.getLogger("tabguard.monitoring")


class SourceMismatchError(TabguardError, ValueError):
    """The store was filled from another prediction log."""


@dataclass(frozen=True)
class UpdateResult:
    """What one ``update`` did.

    Attributes
    ----------
    rows : int
        Log rows read and folded in.
    skipped : int
        Rows left out as unusable (unreadable timestamp), logged with their ids.
    slow_rows : int
        Rows whose JSON needed the row-by-row parser (hand-edited or unusual rows).
    json_rows : int
        Rows read from their JSON documents rather than their ``numbers`` vector (rows
        written before the column existed, or under another contract).
    late_rows : int
        Rows whose request time fell before the newest bucket already in the store (folded
        into their own, older bucket).
    batches : int
        Transactions committed.
    waiting : int
        PostgreSQL: committed rows left for a later run because an older write transaction of
        the log's database is still open (they are read once it ends).
    watermark : Any
        The log position reached.
    busy : bool
        Another updater held the lock; nothing was done.
    seconds : float
        Wall time.
    latest : datetime or None
        End of the last complete bucket after the update.
    """

    rows: int = 0
    skipped: int = 0
    slow_rows: int = 0
    json_rows: int = 0
    late_rows: int = 0
    batches: int = 0
    waiting: int = 0
    watermark: Any = None
    busy: bool = False
    seconds: float = 0.0
    latest: datetime | None = None


@dataclass(frozen=True)
class _Finished:
    """An aggregated batch waiting for its merge: its end, delta and state rows."""

    hi: int
    result: BatchResult
    state: dict[str, Any]
    admitted: list[tuple[str, str]]
    #: The workers' cells still to collect (:meth:`Aggregator.collect`).
    started: StartedBatch


#: 32-bit ids of the write transactions running in this database (prepared ones included).
_PG_RUNNING = sa.text(
    "SELECT backend_xid::text::bigint FROM pg_stat_activity "
    "WHERE datname = current_database() AND backend_xid IS NOT NULL "
    "UNION ALL SELECT transaction::text::bigint FROM pg_prepared_xacts "
    "WHERE database = current_database()"
)


class LogReader:
    """Reads prediction-log rows by commit order (``ingest_seq``), in batches.

    Parameters
    ----------
    url : str
        The prediction log (``sqlite:///…``, ``postgresql://…``, ``memory://``).
    engine : sqlalchemy.Engine, optional
        Share an engine (a ``memory://`` log lives in its engine).
    """

    def __init__(self, url: str, *, engine: sa.Engine | None = None) -> None:
        self.url = url
        self.what = f"prediction log {redact_url(url)}"
        self.engine = engine if engine is not None else create_sql_engine(url)
        self._owned = engine is None
        self.dialect = self.engine.dialect.name
        ensure_schema(self.engine, [predictions_table], what=self.what)
        #: The :attr:`NumberLayout.prefix` of the vectors :meth:`read` takes instead of the JSON
        #: documents (``None``: the documents of every row).
        self.numbers_prefix: bytes | None = None
        self.numbers_width = 0

    def horizon(self) -> int:
        """One past the last ``ingest_seq`` that is safe to read now.

        SQLite: everything committed (one writer at a time, sequence in commit order).
        PostgreSQL: the oldest transaction still running *in this database* (or the
        snapshot's ``xmax`` when none is): rows below it are all committed, or never will be.
        Transactions of other databases on the same server do not hold the monitor back.
        """
        if self.dialect != "postgresql":
            query = sa.text(
                f"SELECT coalesce(max({INGEST_SEQ}), 0) + 1 FROM {predictions_table.name}"  # noqa: S608
            )
            with backend_errors(self.what, "read the log position"), self.engine.connect() as c:
                return int(c.execute(query).scalar_one())
        with backend_errors(self.what, "read the log position"), self.engine.connect() as conn:
            xmax = int(
                conn.execute(
                    sa.text("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint")
                ).scalar_one()
            )
            running = conn.execute(_PG_RUNNING).scalars().all()
        # pg_stat_activity shows 32-bit ids; widen them to the 64-bit ids the log stores.
        horizon = xmax
        for xid32 in running:
            wide = (xmax & ~0xFFFFFFFF) | int(xid32)
            if wide >= xmax:
                wide -= 1 << 32
            horizon = min(horizon, wide)
        return horizon

    def waiting(self, horizon: int) -> int:
        """Committed rows at or above ``horizon`` (held back by an older open transaction)."""
        if self.dialect != "postgresql":
            return 0
        t = predictions_table.name
        query = sa.text(f"SELECT count(*) FROM {t} WHERE {INGEST_SEQ} >= :h")  # noqa: S608
        with backend_errors(self.what, "count waiting rows"), self.engine.connect() as conn:
            return int(conn.execute(query, {"h": horizon}).scalar_one())

    def backlog_at_least(self, lo: int, hi: int, rows: int) -> bool:
        """Whether at least ``rows`` rows wait in ``[lo, hi)`` (one index probe)."""
        t = predictions_table.name
        probe = sa.text(
            f"SELECT 1 FROM {t} WHERE {INGEST_SEQ} >= :lo AND {INGEST_SEQ} < :hi "  # noqa: S608
            "LIMIT 1 OFFSET :n"
        )
        with backend_errors(self.what, "plan a batch"), self.engine.connect() as conn:
            return conn.execute(probe, {"lo": lo, "hi": hi, "n": rows - 1}).first() is not None

    def boundary(self, lo: int, hi: int, limit: int) -> int:
        """End of the next batch: about ``limit`` rows from ``lo``, on a sequence boundary."""
        t = predictions_table.name
        where = f"FROM {t} WHERE {INGEST_SEQ} >= :lo AND {INGEST_SEQ} < :hi"
        nth = sa.text(f"SELECT {INGEST_SEQ} {where} ORDER BY {INGEST_SEQ} LIMIT 1 OFFSET :limit")
        first = sa.text(f"SELECT min({INGEST_SEQ}) {where}")
        params = {"lo": lo, "hi": hi, "limit": limit}
        with backend_errors(self.what, "plan a batch"), self.engine.connect() as conn:
            found = conn.execute(nth, params).scalar_one_or_none()
            if found is None:
                return hi
            start = conn.execute(first, params).scalar_one()
        # Rows of one PostgreSQL transaction share a sequence value: never split them (a
        # transaction larger than a batch is read whole).
        return int(found) + 1 if int(found) == int(start) else int(found)

    @property
    def _epoch(self) -> str:
        """Request time as epoch seconds (NULL when the timestamp is unreadable)."""
        if self.dialect == "postgresql":
            return "floor(extract(epoch from timestamp))::bigint"
        if sqlite3.sqlite_version_info >= (3, 38):
            return "CAST(unixepoch(timestamp) AS INTEGER)"  # strftime('%s') at half the cost
        return "CAST(strftime('%s', timestamp) AS INTEGER)"

    def read(self, lo: int, hi: int) -> dict[str, np.ndarray]:
        """Rows with ``lo <= ingest_seq < hi`` as columns (:data:`BATCH_COLUMNS`)."""
        m = self._mark
        return self._read(f"{INGEST_SEQ} >= {m} AND {INGEST_SEQ} < {m}", (lo, hi))

    def read_ids(self, ids: list[str]) -> dict[str, np.ndarray]:
        """The rows of these decision ids (any order), as columns."""
        parts = []
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ", ".join(self._mark for _ in chunk)
            parts.append(self._read(f"decision_id IN ({marks})", tuple(chunk), all_ids=True))
        if not parts:
            parts.append(self._read("1 = 0", (), all_ids=True))
        return {name: np.concatenate([p[name] for p in parts]) for name in BATCH_COLUMNS}

    @property
    def _mark(self) -> str:
        """The driver's parameter marker (reads bypass SQLAlchemy's row objects)."""
        return "%s" if self.dialect == "postgresql" else "?"

    def decisions_of_subjects(self, subjects: list[str]) -> list[tuple[str, str, int]]:
        """``(subject_id, decision_id, epoch)`` of every decided request of these subjects."""
        t = predictions_table.name
        query = sa.text(
            f"SELECT subject_id, decision_id, coalesce({self._epoch}, -1) FROM {t} "  # noqa: S608
            "WHERE subject_id IN :ids AND decision IS NOT NULL"
        ).bindparams(sa.bindparam("ids", expanding=True))
        out: list[tuple[str, str, int]] = []
        with backend_errors(self.what, "find decisions"), self.engine.connect() as conn:
            for i in range(0, len(subjects), 500):
                rows = conn.execute(query, {"ids": subjects[i : i + 500]}).all()
                out.extend((str(a), str(b), int(c)) for a, b, c in rows)
        return out

    def _read(
        self, where: str, params: tuple[Any, ...], *, all_ids: bool = False
    ) -> dict[str, np.ndarray]:
        """Rows matching ``where`` as columns; ``decision_id`` only for rows without a readable
        timestamp, unless ``all_ids``."""
        t = predictions_table.name
        pg = self.dialect == "postgresql"
        # The short text columns travel as one JSON array per row (one string instead of
        # seven; their few distinct values are split once per batch), the JSON documents as
        # bytes on SQLite (handed to Arrow without a decode and re-encode). Every SQL
        # function costs a call per row: the rest is done in Python.
        meta = ", ".join(_META_COLUMNS)
        packed = f"json_build_array({meta})::text" if pg else f"json_array({meta})"
        doc = "convert_to({0}, 'UTF8')" if pg else "CAST({0} AS BLOB)"
        prefix = None if all_ids else self.numbers_prefix
        docs = f"{doc.format('raw')}, {doc.format('features')}"
        selected = params
        if prefix is not None:
            # Rows with a vector of the monitor's layout send it instead of their documents;
            # the others (old rows, another layout, uncodable values) send their documents.
            # A vector of another length (hand-edited) is not one either.
            m, size, width = self._mark, len(prefix), self.numbers_width
            length, head = (
                (f"octet_length({NUMBERS})", f"substring({NUMBERS} from 1 for {size})")
                if pg
                else (f"length({NUMBERS})", f"substr({NUMBERS}, 1, {size})")
            )
            ok = f"{length} = {width} AND {head} = {m}"
            vec = f"CASE WHEN {ok} THEN NULL ELSE {{0}} END"
            docs = (
                f"{vec.format(doc.format('raw'))}, {vec.format(doc.format('features'))}, "
                f"CASE WHEN {ok} THEN {NUMBERS} END"
            )
            selected = (prefix, prefix, prefix, *params)
        sql = (
            f"SELECT {INGEST_SEQ}, {self._epoch}, score, latency_ms, {packed}, "  # noqa: S608
            f"{docs}{', decision_id' if all_ids else ''} FROM {t} WHERE {where}"
        )
        # The plain DB-API cursor: SQLAlchemy's row objects cost more than SQLite's own fetch.
        with backend_errors(self.what, "read rows"), self.engine.connect() as conn:
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute(sql, selected)
                rows = cursor.fetchall()
                unreadable = not all_ids and any(r[1] is None for r in rows)
                ids = self._unreadable_ids(cursor, where, params) if unreadable else {}
            finally:
                cursor.close()
        return _columns(rows, ids, all_ids=all_ids, numbers=prefix is not None)

    def _unreadable_ids(self, cursor: Any, where: str, params: tuple[Any, ...]) -> dict[int, list]:
        """``ingest_seq -> decision ids`` of the rows without a readable timestamp (for the
        skip's log line: only those rows carry their id)."""
        t = predictions_table.name
        cursor.execute(
            f"SELECT {INGEST_SEQ}, decision_id FROM {t} "  # noqa: S608
            f"WHERE ({where}) AND {self._epoch} IS NULL",
            params,
        )
        out: dict[int, list] = {}
        for seq, decision_id in cursor.fetchall():
            out.setdefault(int(seq), []).append(decision_id)
        return out

    def close(self) -> None:
        """Dispose of the engine (when this reader created it)."""
        if self._owned:
            self.engine.dispose()


#: The short text columns of a log row, read together (see :meth:`LogReader._read`).
_META_COLUMNS = ("client", "status", "decision", "guard_actions", "errors", "segment", "probing")


def _columns(
    rows: list[Any], ids: dict[int, list], *, all_ids: bool, numbers: bool = False
) -> dict[str, np.ndarray]:
    """:data:`BATCH_COLUMNS` from the fetched rows.

    The short text columns become object arrays whose equal values are one shared object,
    so later factorisations hash each distinct value once.
    """
    n = len(rows)
    if not n:
        empty: dict[str, np.ndarray] = {
            name: np.zeros(0, dtype=np.int64) for name in ("seq", "epoch")
        }
        empty.update({name: np.zeros(0) for name in ("score", "latency_ms")})
        for name in BATCH_COLUMNS:
            empty.setdefault(name, np.zeros(0, dtype=object))
        return empty
    # Columns by zip: NumPy's discovery of a shape over 100k tuples costs twice as much.
    columns = list(zip(*rows, strict=True))
    out = {
        "seq": np.array(columns[0], dtype=np.int64),
        # None (unreadable timestamp, no score) becomes NaN; epochs are exact in float64.
        "epoch": np.nan_to_num(_floats(columns[1]), nan=-1.0).astype(np.int64),
        "score": _floats(columns[2]),
        "latency_ms": _floats(columns[3]),
        "raw": _documents(columns[5]),
        "features": _documents(columns[6]),
    }
    if numbers:
        out["numbers"] = _objects(columns[7])
    codes, uniques = pd.factorize(_objects(columns[4]), use_na_sentinel=False)
    parsed = [json.loads(text) for text in uniques]
    for i, name in enumerate(_META_COLUMNS):
        values = np.empty(len(parsed), dtype=object)
        values[:] = [p[i] for p in parsed]
        out[name] = values[codes]
    if all_ids:
        out["decision_id"] = _objects(columns[7])
        return out
    decision_ids = np.full(n, None, dtype=object)
    if ids:
        for pos in np.flatnonzero(out["epoch"] < 0).tolist():
            found = ids.get(int(out["seq"][pos]))
            if found:
                decision_ids[pos] = found.pop(0)
    out["decision_id"] = decision_ids
    return out


def _floats(values: Sequence[Any]) -> np.ndarray:
    """Numbers (None as NaN) as float64."""
    return np.array(values, dtype=np.float64)


def _objects(values: Sequence[Any]) -> np.ndarray:
    """Python objects as an object array, one element each (never a nested shape)."""
    return np.fromiter(values, dtype=object, count=len(values))


def _documents(values: Sequence[Any]) -> np.ndarray:
    """JSON documents as bytes (psycopg may hand ``bytea`` over as memoryview)."""
    sample = next((v for v in values if v is not None), None)
    if sample is not None and not isinstance(sample, bytes):
        return _objects([bytes(v) if v is not None else None for v in values])
    return _objects(values)


def load_plan(config: MonitorConfig) -> MonitorPlan:
    """The columns to profile: from the model directory's contract (verified by its manifest)
    and its scorer's inputs; without a model, none (decisions, guards, probing, score and
    latency are still monitored)."""
    if config.model is None:
        return MonitorPlan(
            combinations=tuple(tuple(c) for c in config.aggregation.segments.combinations)
        )
    return plan_for_model(config.model, config)


def plan_for_model(model_dir: Path, config: MonitorConfig) -> MonitorPlan:
    """The plan of a model directory (contract + main scorer's features)."""
    import json

    from tabguard.contract import load_contract
    from tabguard.training._manifest import verify_manifest

    verify_manifest(model_dir)
    contract = load_contract(Path(model_dir) / "contract.yaml")
    try:
        meta = json.loads((Path(model_dir) / "model.json").read_text(encoding="utf-8"))
        names = meta["scorers"]["main"]["feature_names"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{model_dir}: model.json has no main scorer features ({exc})") from None
    return MonitorPlan.from_contract(contract, config.aggregation, names)


@contextmanager
def _sketch_workers(
    config: MonitorConfig, reader: LogReader, seq: int, horizon: int
) -> Iterator[tuple[Executor | None, int]]:
    """Worker processes for the sketches when the backlog is large, and how many (started
    with ``spawn``: safe beside the reader thread and Arrow's threads)."""
    jobs = config.aggregation.jobs
    if jobs < 2 or not reader.backlog_at_least(seq, horizon, PARALLEL_MIN_ROWS):
        yield None, 0
        return
    import multiprocessing

    from tabguard.monitoring._cells import ready

    pool = ProcessPoolExecutor(jobs - 1, mp_context=multiprocessing.get_context("spawn"))
    try:
        # A process starts on its first task: start them now, so their start-up (an
        # interpreter and its imports) overlaps the reading of the first batch.
        for _ in range(jobs - 1):
            pool.submit(ready)
        yield pool, jobs - 1
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Python's cycle collector off while batches are read and aggregated.

    A batch makes hundreds of thousands of short-lived tuples and arrays (SQLite's rows, the
    cells); each allocation burst set off collections that walked every live object, about
    5 % of an update's CPU. Reference counting still frees all of it: the update makes no
    cycles worth collecting. The collector is process-wide, so a service running the update
    in its own process (``[monitor] enabled``) goes without it for the update's seconds; it
    is switched back on (if it was on) however the update ends.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


#: The reader process's log reader and parser (:func:`_feed_start`).
_FEED: tuple[LogReader, BatchParser] | None = None


def _feed_start(url: str, prefix: bytes | None, width: int, plan: MonitorPlan) -> None:
    """Set up the reader process (:func:`_batch_feed`): its own connection to the log."""
    global _FEED
    gc.disable()  # it only reads and parses: nothing it makes holds a cycle (_gc_paused)
    reader = LogReader(url)
    reader.numbers_prefix, reader.numbers_width = prefix, width
    _FEED = (reader, BatchParser(plan))


def _feed_read(lo: int, horizon: int, limit: int) -> tuple[int, PreparedBatch]:
    """In the reader process: the next batch from ``lo``, read and parsed."""
    if _FEED is None:
        raise RuntimeError("the monitor's reader process was not set up (_feed_start)")
    reader, parser = _FEED
    hi = reader.boundary(lo, horizon, limit)
    return hi, parser.prepare(reader.read(lo, hi)).without_documents()


def _separate_process_can_read(url: str) -> bool:
    """Whether another process can open this log (a file or a server, not ``memory://``)."""
    kind = store_kind(url)
    if kind == "postgresql":
        return True
    path = sa.make_url(url).database if kind == "sqlite" else None
    return bool(path) and path != ":memory:"


def _feed_ready() -> bool:
    """Nothing: submitted when the reader process is created, so it starts (imports, opens
    the log) while the first batch is read by a thread of the updating process."""
    return True


@contextmanager
def _batch_feed(
    reader: LogReader, parser: BatchParser, horizon: int, limit: int, *, separate: bool
) -> Iterator[Callable[[int], Future[tuple[int, PreparedBatch]]]]:
    """``submit(lo)``: read and parse the next batch from ``lo`` while the caller aggregates.

    In a thread by default. With ``separate`` (a backlog of several large batches, workers
    running) and a log another process can open, every batch after the first is read in a
    **reader process** of its own: reading rows from SQLite and decoding them took the
    updating process about a third of its CPU, under the same interpreter lock as the
    counting and the store merge (the bottleneck of a large update). The first batch is read
    by the thread while that process starts (its start-up would otherwise delay the first
    batch), and the updating process has nothing else to do then. The reader process sends
    each batch back without its JSON documents and vectors (~50 MB of arrays per 100,000
    rows, a few tens of milliseconds to receive).
    """
    thread = ThreadPoolExecutor(1, thread_name_prefix="tabguard-monitor-read")
    process: ProcessPoolExecutor | None = None
    if separate and _separate_process_can_read(reader.url):
        import multiprocessing

        process = ProcessPoolExecutor(
            1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_feed_start,
            initargs=(reader.url, reader.numbers_prefix, reader.numbers_width, parser.plan),
        )
        process.submit(_feed_ready)

    def fetch(lo: int) -> tuple[int, PreparedBatch]:
        hi = reader.boundary(lo, horizon, limit)
        return hi, parser.prepare(reader.read(lo, hi))

    calls = 0

    def submit(lo: int) -> Future[tuple[int, PreparedBatch]]:
        nonlocal calls
        calls += 1
        if process is not None and calls > 1:
            return process.submit(_feed_read, lo, horizon, limit)
        return thread.submit(fetch, lo)

    try:
        yield submit
    finally:
        thread.shutdown(wait=True, cancel_futures=True)
        if process is not None:
            process.shutdown(wait=True, cancel_futures=True)


def run_exclusive(
    store: SqlMonitorStore, started: float, run: Callable[[], UpdateResult]
) -> UpdateResult:
    """Run an update holding the store's updater lock (one updater at a time, whatever its
    engine: the in-process one and Spark's share it).

    Returns ``run()``'s result, or ``busy=True`` at once when another updater holds the lock
    (``started``: ``time.perf_counter()`` when the update began, for its ``seconds``).
    """
    try:
        with store.updater_lock():
            return run()
    except UpdaterBusyError as exc:
        log.info("%s", exc)
        return UpdateResult(busy=True, seconds=time.perf_counter() - started)


def update(
    config: MonitorConfig,
    *,
    store: SqlMonitorStore | None = None,
    reader: LogReader | None = None,
    plan: MonitorPlan | None = None,
    clock: Clock | None = None,
    max_batches: int | None = None,
) -> UpdateResult:
    """Fold the log rows committed since the watermark into the store.

    Parameters
    ----------
    config : MonitorConfig
    store : SqlMonitorStore, optional
        Default: ``config.store_url()``.
    reader : LogReader, optional
        Default: ``config.log_url()``.
    plan : MonitorPlan, optional
        Default: from ``config.model``.
    clock : Clock, optional
        Time of segment admissions (default: the system clock).
    max_batches : int, optional
        Stop after this many batches (the rest is read by the next run).

    Returns
    -------
    UpdateResult
        ``busy=True`` when another updater holds the lock.

    Raises
    ------
    BackendUnavailableError
        The log or the store cannot be reached (the watermark is where the last committed
        batch left it).
    SourceMismatchError
        The store was filled from another log.
    """
    started = time.perf_counter()
    clock = clock or SystemClock()
    own_store = store is None
    own_reader = reader is None
    store = store or open_monitor_store(config.store_url(), bucket=config.bucket)
    try:
        reader = reader or LogReader(config.log_url())
        try:
            plan = plan or load_plan(config)
            return run_exclusive(
                store,
                started,
                lambda: _run(config, store, reader, plan, clock, max_batches, started),
            )
        finally:
            if own_reader:
                reader.close()
    finally:
        if own_store:
            store.close()


def _run(
    config: MonitorConfig,
    store: SqlMonitorStore,
    reader: LogReader,
    plan: MonitorPlan,
    clock: Clock,
    max_batches: int | None,
    started: float,
) -> UpdateResult:
    source = redact_url(reader.url)
    known = store.get_state("source")
    if known is not None and known != source:
        raise SourceMismatchError(
            f"{store.what} was filled from the log {known}, not {source}; point the monitor at "
            "that log, use another store, or rebuild this one with `tabguard monitor update "
            "--reset`"
        )
    watermark = store.watermark()
    seq = int(watermark["seq"]) if isinstance(watermark, dict) else 0
    admission = Admission.load(
        store.admitted_segments(),
        store.state_items("frequent:"),
        config.aggregation,
        preset={**plan.preset_values(), **config.aggregation.segments.values},
    )
    horizon = reader.horizon()
    with _gc_paused(), _sketch_workers(config, reader, seq, horizon) as (executor, workers):
        aggregator = Aggregator(plan, config.aggregation, admission, executor, workers)
        # Set before the reader thread starts; rows of other layouts are read from their JSON.
        if aggregator.layout is not None:
            reader.numbers_prefix = aggregator.layout.prefix
            reader.numbers_width = aggregator.layout.row_bytes
        return _batches(
            config,
            store,
            reader,
            aggregator,
            admission,
            clock,
            max_batches,
            started,
            watermark,
            seq,
            horizon,
            source,
        )


def _batches(
    config: MonitorConfig,
    store: SqlMonitorStore,
    reader: LogReader,
    aggregator: Aggregator,
    admission: Admission,
    clock: Clock,
    max_batches: int | None,
    started: float,
    watermark: Any,
    seq: int,
    horizon: int,
    source: str,
) -> UpdateResult:
    newest: Any = store.get_state("max_timestamp")
    bucket = int(config.bucket.total_seconds())
    totals = {"rows": 0, "skipped": 0, "slow": 0, "json": 0, "late": 0, "batches": 0}
    limit = config.aggregation.batch_rows

    def finished(
        hi: int, prepared: PreparedBatch, result: BatchResult, started_batch: StartedBatch
    ) -> _Finished:
        """What batch ``hi`` writes, fixed before the next batch touches the admission."""
        nonlocal newest
        epoch = prepared.batch["epoch"]
        if newest is not None and result.min_epoch is not None:
            cut = (int(newest) // bucket) * bucket
            totals["late"] += int((epoch[epoch >= 0] < cut).sum())
        if result.max_epoch is not None:
            newest = result.max_epoch if newest is None else max(int(newest), result.max_epoch)
        state: dict[str, Any] = {**admission.state(), "source": source}
        if newest is not None:
            state["max_timestamp"] = int(newest)
        done = _Finished(hi, result, state, list(admission.new), started_batch)
        admission.new.clear()
        admission.dirty.clear()
        return done

    def merge(done: _Finished) -> None:
        nonlocal watermark
        aggregator.collect(done.started, done.result)
        new_mark = {"seq": done.hi}
        store.merge(
            done.result.delta,
            watermark=new_mark,
            expected=watermark,
            state=done.state,
            admitted=done.admitted,
            at=clock.now(),
        )
        watermark = new_mark
        totals["rows"] += done.result.delta.rows
        totals["skipped"] += done.result.skipped
        totals["slow"] += done.result.slow_rows
        totals["json"] += done.result.json_rows
        totals["batches"] += 1

    # The next batch is read and parsed in a second thread or process (_batch_feed) while
    # this one is aggregated and merged. A batch's merge waits until the next
    # batch has been started: the workers' cells of a batch are collected just before it is
    # written, and they build the next batch's while this thread writes. Nothing is written
    # anywhere else: the watermark still moves only with a committed merge, batch after batch.
    ready: _Finished | None = None
    taken = 0
    # A reader process pays off from the second batch on (the first is read by a thread).
    separate = aggregator.executor is not None and reader.backlog_at_least(seq, horizon, limit + 1)
    with _batch_feed(reader, aggregator.parser, horizon, limit, separate=separate) as submit:
        pending = submit(seq) if seq < horizon else None
        while pending is not None:
            hi, prepared = pending.result()
            pending = None
            if not len(prepared.batch["seq"]) and not prepared.skipped:
                break  # nothing committed since (PostgreSQL's horizon moves with any transaction)
            taken += 1
            if hi < horizon and (max_batches is None or taken < max_batches):
                pending = submit(hi)
            started_batch = aggregator.start(prepared)
            if ready is not None:
                merge(ready)
            ready = finished(hi, prepared, aggregator.finish(started_batch), started_batch)
        if ready is not None:
            merge(ready)
    latest = None if newest is None else from_epoch((int(newest) // bucket) * bucket)
    waiting = reader.waiting(horizon)
    if waiting:
        log.warning(
            "monitor: %d committed log rows wait for an older write transaction of the log's "
            "database to end (see pg_stat_activity: state 'idle in transaction')",
            waiting,
        )
    return UpdateResult(
        waiting=waiting,
        rows=totals["rows"],
        skipped=totals["skipped"],
        slow_rows=totals["slow"],
        json_rows=totals["json"],
        late_rows=totals["late"],
        batches=totals["batches"],
        watermark=watermark,
        seconds=time.perf_counter() - started,
        latest=latest,
    )
