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
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tabguard.errors import DataError, TabguardError
from tabguard.monitoring._aggregate import (
    PARALLEL_MIN_ROWS,
    Admission,
    Aggregator,
    BatchResult,
    StartedBatch,
)
from tabguard.monitoring._clock import Clock, SystemClock
from tabguard.monitoring._config import MonitorConfig
from tabguard.monitoring._read import (
    BatchParser,
    LogReader,
    MonitorPlan,
    PreparedBatch,
    _feed_read,
    _feed_ready,
    _feed_start,
)
from tabguard.monitoring._store import (
    SqlMonitorStore,
    UpdaterBusyError,
    open_monitor_store,
)
from tabguard.monitoring._window import from_epoch
from tabguard.storage import (
    redact_url,
    store_kind,
)

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


def _separate_process_can_read(url: str) -> bool:
    """Whether another process can open this log (a file or a server, not ``memory://``)."""
    kind = store_kind(url)
    if kind == "postgresql":
        return True
    path = sa.make_url(url).database if kind == "sqlite" else None
    return bool(path) and path != ":memory:"


@contextmanager
def _batch_feed(
    reader: LogReader, parser: BatchParser, horizon: int, limit: int, *, separate: bool
) -> Iterator[Callable[[int], Future[tuple[int, PreparedBatch]]]]:
    """``submit(lo)``: read and parse the next batch from ``lo`` while the caller aggregates.

    The first batch is read in the caller's thread (a future already done): the caller waits
    for it at once, so a thread would overlap nothing. The batches after it are read in a
    thread, started with the second batch: an update with one batch to read (a service's
    hourly update; each of the simulated month's 672 steps) starts no thread (it started and
    joined one per update). With ``separate`` (a backlog of several large batches, workers
    running) and a log another process can open, every batch after the first is read in a
    **reader process** of its own instead: reading rows from SQLite and decoding them took
    the updating process about a third of its CPU, under the same interpreter lock as the
    counting and the store merge (the bottleneck of a large update). The first batch is read
    while that process starts (its start-up would otherwise delay the first batch). The
    reader process sends each batch back without its JSON documents and vectors (~50 MB of
    arrays per 100,000 rows, a few tens of milliseconds to receive).
    """
    thread: ThreadPoolExecutor | None = None
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
        nonlocal calls, thread
        calls += 1
        if calls == 1:
            done: Future[tuple[int, PreparedBatch]] = Future()
            try:
                done.set_result(fetch(lo))
            except Exception as exc:  # raised by result(), as the thread's future would
                done.set_exception(exc)
            return done
        if process is not None:
            return process.submit(_feed_read, lo, horizon, limit)
        if thread is None:
            thread = ThreadPoolExecutor(1, thread_name_prefix="tabguard-monitor-read")
        return thread.submit(fetch, lo)

    try:
        yield submit
    finally:
        if thread is not None:
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
    reset: bool = False,
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
    reset : bool, default False
        Empty the store first (:meth:`SqlMonitorStore.reset`) and rebuild it from the whole
        log (``tabguard monitor update --reset``). The store is emptied under the updater lock,
        beside the start of the update (a large store takes a while to empty), and before the
        first batch is written.

    Returns
    -------
    UpdateResult
        ``busy=True`` when another updater holds the lock (without ``reset``).

    Raises
    ------
    UpdaterBusyError
        With ``reset``: another updater holds the lock (nothing was emptied).
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

            def run() -> UpdateResult:
                return _run(config, store, reader, plan, clock, max_batches, started, reset)

            if reset:
                # A rebuild that cannot take the lock is refused, not "nothing to do".
                with store.updater_lock():
                    return run()
            return run_exclusive(store, started, run)
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
    reset: bool = False,
) -> UpdateResult:
    source = redact_url(reader.url)
    emptied: _Emptying | None = None
    if reset:
        # What the store holds once emptied is known (no watermark, segment, count or
        # state): the update starts at once, and waits for the emptying before its first write.
        emptied = _Emptying(store)
        watermark: Any = None
        admitted: dict[str, set[str]] = {}
        frequent: dict[str, Any] = {}
        newest: Any = None
    else:
        known = store.get_state("source")
        if known is not None and known != source:
            raise SourceMismatchError(
                f"{store.what} was filled from the log {known}, not {source}; point the monitor "
                "at that log, use another store, or rebuild this one with `tabguard monitor "
                "update --reset`"
            )
        watermark = store.watermark()
        admitted = store.admitted_segments()
        frequent = store.state_items("frequent:")
        newest = store.get_state("max_timestamp")
    try:
        seq = int(watermark["seq"]) if isinstance(watermark, dict) else 0
        admission = Admission.load(
            admitted,
            frequent,
            config.aggregation,
            preset={**plan.preset_values(), **config.aggregation.segments.values},
        )
        horizon = reader.horizon()
        with _gc_paused(), _sketch_workers(config, reader, seq, horizon) as (executor, workers):
            aggregator = Aggregator(plan, config.aggregation, admission, executor, workers)
            # Set before the reader thread starts; rows of other layouts are read from JSON.
            if aggregator.layout is not None:
                reader.numbers_prefix = aggregator.layout.prefix
                reader.numbers_width = aggregator.layout.row_bytes
            result = _batches(
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
                newest,
                emptied,
            )
        if emptied is not None:
            emptied.wait()  # an empty log wrote nothing: the emptying's error is still raised
        return result
    finally:
        if emptied is not None:
            emptied.join()  # however the update ended, never return with the store half-emptied


class _Emptying:
    """:meth:`SqlMonitorStore.reset` in a thread of its own, started at once.

    Emptying a large store is slow: SQLite builds that zero every freed page
    (``SQLITE_SECURE_DELETE``, the default of Debian's and Ubuntu's SQLite) write the whole file
    again, ~0.8 s for a 265 MB store. It runs beside the start of the update (the worker and
    reader processes starting, the first batch read) and :meth:`wait` is called before the
    first write to the store.
    """

    def __init__(self, store: SqlMonitorStore) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="tabguard-monitor-reset")
        self._future = self._pool.submit(store.reset)
        self._waited = False

    def wait(self) -> None:
        """Block until the store is empty; raise the emptying's error (once)."""
        if not self._waited:
            self._waited = True
            self._future.result()

    def join(self) -> None:
        """Block until the emptying has ended, without raising its error."""
        self._pool.shutdown(wait=True)


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
    newest: Any,
    emptied: _Emptying | None = None,
) -> UpdateResult:
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
        if emptied is not None:
            emptied.wait()
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
