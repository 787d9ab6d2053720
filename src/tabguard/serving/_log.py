"""The prediction log (S5): every scoring request, accepted or rejected, kept for monitoring.

Writes never sit on the request path: :meth:`PredictionLog.append` puts the record on an
in-memory queue and returns; a writer thread inserts batches (``batch_size`` records, or
whatever arrived within ``flush_interval`` seconds). When the database is unreachable the
batch is written to the spool directory instead (one JSON-lines file per batch, fsync'd and
renamed into place, so a file is either complete or absent) and replayed when the database
answers again, and at start-up. Inserts are idempotent on ``decision_id``, so a replay that is
interrupted and repeated never duplicates a row. A row the database refuses for its content
(not for being down) is retried alone and, if refused again, kept in ``dead-letter.jsonl`` in
the spool directory: nothing is dropped silently.

The spool is shared safely by several worker processes: a file is claimed by renaming it
before replay, and claims of dead processes are taken over at start-up.
"""

from __future__ import annotations

import atexit
import contextlib
import csv
import hashlib
import json
import logging
import math
import os
import queue
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field

from tabguard.storage import (
    backend_errors,
    create_sql_engine,
    ensure_schema,
    is_connectivity_error,
    predictions_table,
    redact_url,
)

if TYPE_CHECKING:
    import pandas as pd

    from tabguard.serving._config import ServingConfig

log = logging.getLogger(__name__)

Status = Literal[
    "accepted",
    "rejected_validation",
    "rate_limited",
    "unauthorized",
    "flow_disabled",
    "delayed",
    "probing_throttled",
    "unavailable",
    "error",
]
DecisionValue = Literal["approve", "deny", "review"]

#: Columns holding JSON text, by record field.
JSON_FIELDS = ("raw", "features", "guard_actions", "flags", "errors", "segment", "probing")
#: Identifier columns are indexed; longer values are cut and suffixed with a hash of the whole
#: value so equal inputs still compare equal (a B-tree index entry has a size limit).
_ID_MAX = 256
_DEAD_LETTER = "dead-letter.jsonl"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return uuid.uuid4().hex


class PredictionRecord(BaseModel):
    """One line of the prediction log.

    Attributes
    ----------
    decision_id : str
        Unique id (the idempotency key of the log; at most 64 characters).
    timestamp : datetime
        When the request arrived (UTC).
    client : str or None
        API client name (``None`` when unauthenticated).
    subject_id : str or None
        The subject (customer) the decision is about.
    raw : Any
        The attributes as received (JSON), before any guard.
    features : dict
        The guarded model features (after clipping, neutral values, bins).
    guard_actions : list
        What the guards did, e.g. ``{"field": "AGE", "action": "clip", "from": 999, "to": 125}``.
    flags : dict
        The flag snapshot in force (``Flags.to_dict()`` plus its version).
    model_name, model_version : str or None
        Which scorer decided (main, fallback, rules) and its version.
    score : float or None
        The model score (also logged when the client may not see it).
    decision : {'approve', 'deny', 'review'} or None
        The decision, when one was made.
    status : str
        ``accepted``, ``rejected_validation``, ``rate_limited``, ``unauthorized``,
        ``flow_disabled``, ``delayed``, ``probing_throttled`` (a client flagged for probing and
        throttled), ``unavailable`` (a fail-closed store was down) or ``error``.
    errors : list
        Validation errors (``FieldError.to_dict()``) or an error description.
    segment : dict
        Segment attributes for monitoring (channel, region, product...).
    probing : list of str
        Probing signals raised for this request (S6).
    latency_ms : float or None
        Time spent in the service.
    available_at : datetime or None
        For delayed decisions: when the answer may be released.
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    decision_id: str = Field(default_factory=_new_id, min_length=1, max_length=64)
    timestamp: datetime = Field(default_factory=_utcnow)
    client: str | None = None
    subject_id: str | None = None
    raw: Any = Field(default_factory=dict)
    features: dict[str, Any] = Field(default_factory=dict)
    guard_actions: list[Any] = Field(default_factory=list)
    flags: dict[str, Any] = Field(default_factory=dict)
    model_name: str | None = None
    model_version: str | None = None
    score: float | None = None
    decision: DecisionValue | None = None
    status: Status = "accepted"
    errors: list[Any] = Field(default_factory=list)
    segment: dict[str, Any] = Field(default_factory=dict)
    probing: list[str] = Field(default_factory=list)
    latency_ms: float | None = None
    available_at: datetime | None = None


# --------------------------------------------------------------------------------------------
# Record <-> row. A row is JSON-safe (str, float, int, None): the same dict goes to the
# database and, when it is down, to the spool.


def _json_safe(value: Any, depth: int = 0) -> Any:
    """Turn any value into something strict JSON can hold, keeping its information."""
    if depth > 64:
        return repr(value)[:1000]
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): _json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(v, depth + 1) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    item = getattr(value, "item", None)  # numpy and pandas scalars
    if callable(item):
        try:
            return _json_safe(item(), depth + 1)
        except (TypeError, ValueError):
            pass
    tolist = getattr(value, "tolist", None)  # numpy arrays
    if callable(tolist):
        with contextlib.suppress(TypeError, ValueError):
            return _json_safe(tolist(), depth + 1)
    return repr(value)


def dumps_json(value: Any) -> str:
    """Serialise ``value`` as strict JSON that every backend accepts.

    NaN and infinities become the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``; numpy
    scalars become numbers; unknown objects their ``repr``. Text that cannot be encoded as
    UTF-8 (lone surrogates) is escaped.
    """
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        text = json.dumps(_json_safe(value), ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(json.loads(text), ensure_ascii=True, separators=(",", ":"))
    return text


def _text(value: Any, limit: int | None = None) -> str | None:
    """A database-safe string: no NUL (PostgreSQL refuses it), valid UTF-8, bounded length."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    if limit is not None and len(text) > limit:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
        text = f"{text[: limit - 26]}…sha256:{digest}"
    return text


def _finite(name: str, value: float | None, notes: list[Any]) -> float | None:
    if value is None or math.isfinite(value):
        return value
    notes.append({"field": name, "rule": "non_finite", "value": str(value)})
    return None


def record_to_row(record: PredictionRecord) -> dict[str, Any]:
    """Return the JSON-safe row stored for ``record`` (datetimes as ISO strings)."""
    notes: list[Any] = []
    score = _finite("score", record.score, notes)
    latency = _finite("latency_ms", record.latency_ms, notes)
    errors = list(record.errors) + notes
    return {
        "decision_id": record.decision_id,
        "timestamp": _iso(record.timestamp),
        "client": _text(record.client, _ID_MAX),
        "subject_id": _text(record.subject_id, _ID_MAX),
        "status": record.status,
        "decision": record.decision,
        "score": score,
        "model_name": _text(record.model_name, _ID_MAX),
        "model_version": _text(record.model_version, _ID_MAX),
        "raw": dumps_json(record.raw),
        "features": dumps_json(record.features),
        "guard_actions": dumps_json(record.guard_actions),
        "flags": dumps_json(record.flags),
        "errors": dumps_json(errors),
        "segment": dumps_json(record.segment),
        "probing": dumps_json(record.probing),
        "latency_ms": latency,
        "available_at": _iso(record.available_at) if record.available_at else None,
    }


def _iso(value: datetime) -> str:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


def _utc(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _db_row(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["timestamp"] = _utc(row["timestamp"])
    out["available_at"] = _utc(row.get("available_at"))
    return out


def row_to_record(row: dict[str, Any] | sa.RowMapping) -> PredictionRecord:
    """Rebuild a :class:`PredictionRecord` from a stored row."""
    data = {k: row[k] for k in row.keys()}  # noqa: SIM118 - RowMapping iterates differently
    for name in JSON_FIELDS:
        data[name] = json.loads(data[name]) if data.get(name) is not None else None
    data["timestamp"] = _utc(data["timestamp"])
    data["available_at"] = _utc(data.get("available_at"))
    return PredictionRecord.model_validate(data)


def _missing_table(exc: sa.exc.DBAPIError) -> bool:
    # PostgreSQL: SQLSTATE 42P01 undefined_table; SQLite: "no such table".
    return getattr(exc.orig, "sqlstate", None) == "42P01" or "no such table" in str(exc)


# --------------------------------------------------------------------------------------------
# The spool: batches that could not reach the database, on local disk.


class Spool:
    """Batches of rows kept on local disk while the database is unreachable.

    Each batch is one ``*.jsonl`` file, written to a temporary name, fsync'd, then renamed
    (atomic), so a visible file is always complete. Replay claims a file by renaming it to
    ``*.claimed-<pid>``; claims of processes that died are released at start-up.

    Parameters
    ----------
    directory : Path
        Where the files live (created on first write).
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._seq = 0
        self._lock = threading.Lock()

    def write(self, rows: Sequence[dict[str, Any]]) -> Path:
        """Write ``rows`` durably as one file; return its path."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._seq += 1
            seq = self._seq
        name = f"{time.time_ns():020d}-{os.getpid()}-{seq:06d}"
        tmp = self.directory / f"{name}.tmp-{os.getpid()}"
        final = self.directory / f"{name}.jsonl"
        with tmp.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=True, allow_nan=False))
                fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        self._fsync_dir()
        return final

    def _fsync_dir(self) -> None:
        # The rename is durable only once the directory entry is (POSIX).
        with contextlib.suppress(OSError):
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def files(self) -> list[Path]:
        """Return the complete, unclaimed batch files, oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("*.jsonl"), key=lambda p: p.name)

    def claim(self, path: Path) -> Path | None:
        """Claim a file for replay; ``None`` when another process got it first."""
        claimed = path.with_name(f"{path.stem}.claimed-{os.getpid()}")
        try:
            os.replace(path, claimed)
        except FileNotFoundError:
            return None
        return claimed

    def release_orphans(self) -> int:
        """Make files of dead processes replayable again; return how many were released.

        A ``.claimed-<pid>`` file whose process is gone goes back to ``.jsonl``; a
        ``.tmp-<pid>`` file (a process died while writing) is released too: its complete lines
        are replayed and a torn last line goes to the dead-letter file.
        """
        if not self.directory.is_dir():
            return 0
        import psutil

        released = 0
        for path in self.directory.iterdir():
            stem, dot, tag = path.name.rpartition(".")
            if not dot or "-" not in tag:
                continue
            kind, _, pid_text = tag.partition("-")
            if kind not in ("claimed", "tmp") or not pid_text.isdigit():
                continue
            pid = int(pid_text)
            if pid == os.getpid() or psutil.pid_exists(pid):
                continue
            with contextlib.suppress(FileNotFoundError):
                os.replace(path, path.with_name(f"{stem}.jsonl"))
                released += 1
        return released

    def read(self, path: Path) -> tuple[list[dict[str, Any]], list[str]]:
        """Return the rows of a file and the lines that could not be parsed."""
        rows: list[dict[str, Any]] = []
        bad: list[str] = []
        with path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    bad.append(line)
                    continue
                if isinstance(row, dict) and "decision_id" in row:
                    rows.append(row)
                else:
                    bad.append(line)
        return rows, bad

    def dead_letter(self, items: Sequence[Any], error: str) -> None:
        """Append rows (or unparsable lines) the database refused, with the reason."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._lock, (self.directory / _DEAD_LETTER).open("a", encoding="utf-8") as fh:
            for item in items:
                fh.write(json.dumps({"error": error, "row": item}, ensure_ascii=True))
                fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())

    def pending_records(self) -> int:
        """Count the rows waiting in spool files (claimed ones included)."""
        if not self.directory.is_dir():
            return 0
        total = 0
        for path in self.directory.iterdir():
            if path.name == _DEAD_LETTER or ".tmp-" in path.name:
                continue
            with contextlib.suppress(FileNotFoundError), path.open("rb") as fh:
                total += sum(1 for line in fh if line.strip())
        return total

    def dead_letter_records(self) -> int:
        """Count the rows in the dead-letter file."""
        path = self.directory / _DEAD_LETTER
        if not path.is_file():
            return 0
        with path.open("rb") as fh:
            return sum(1 for line in fh if line.strip())


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
    """

    appended: int
    written: int
    spooled: int
    replayed: int
    dead_lettered: int
    queued: int
    backend_up: bool


class _Marker:
    """A request to the writer thread, answered by setting ``done``."""

    def __init__(self, kind: Literal["flush", "replay", "stop"]) -> None:
        self.kind = kind
        self.done = threading.Event()


class PredictionLog:
    """The prediction log: non-blocking appends, batched writes, a disk spool for outages.

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
        self._engine = create_sql_engine(url)
        self._queue: queue.SimpleQueue[PredictionRecord | _Marker] = queue.SimpleQueue()
        self._recent: OrderedDict[str, PredictionRecord] = OrderedDict()
        self._recent_max = recent
        self._recent_lock = threading.Lock()
        self._counts = {"appended": 0, "written": 0, "spooled": 0, "replayed": 0, "dead": 0}
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
        )

    # ---- the request path -------------------------------------------------------------------

    def append(self, record: PredictionRecord) -> None:
        """Queue ``record`` for writing and return at once (never raises for backend trouble).

        After :meth:`close`, the record is written straight to the spool (replayed at the next
        start), so a request finishing during shutdown is not lost.
        """
        self._counts["appended"] += 1
        with self._recent_lock:
            self._recent[record.decision_id] = record
            if len(self._recent) > self._recent_max:
                self._recent.popitem(last=False)
        if self._closed:
            self._spool_rows(self._rows([record]))
            return
        self._queue.put(record)

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
                self._queue.put(marker)
                marker.done.wait(timeout)
            self._thread.join(timeout)
        # An append that raced with close() may have queued behind the stop marker.
        leftovers: list[PredictionRecord] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, PredictionRecord):
                leftovers.append(item)
            else:
                item.done.set()
        if leftovers or self._held:
            self._spool_rows(self._rows(leftovers) + self._take_held())
        atexit.unregister(self.close)
        self._engine.dispose()

    def _request(self, kind: Literal["flush", "replay", "stop"], timeout: float | None) -> bool:
        if self._closed or not self._thread.is_alive():
            return True
        marker = _Marker(kind)
        self._queue.put(marker)
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
        )

    # ---- the writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        self._recover(force=True)
        while True:
            markers: list[_Marker] = []
            rows: list[dict[str, Any]] = []
            try:
                records, markers = self._collect()
                rows = self._rows(records) + self._take_held()
                self._write(rows)
                rows = []
                replay_now = any(m.kind in ("replay", "stop") for m in markers)
                if replay_now or not self._backend_up or self._spool_dirty:
                    self._recover(force=replay_now)
            except Exception:  # the writer must outlive any bug, and keep its rows
                log.exception("prediction log writer: unexpected error (continuing)")
                self._held.extend(rows)  # retried next round; a repeat insert is harmless
                time.sleep(self.flush_interval)
            for marker in markers:
                marker.done.set()
            if any(m.kind == "stop" for m in markers):
                return

    def _collect(self) -> tuple[list[PredictionRecord], list[_Marker]]:
        records: list[PredictionRecord] = []
        markers: list[_Marker] = []
        deadline = time.monotonic() + self.flush_interval
        while len(records) < self.batch_size:
            wait = deadline - time.monotonic()
            try:
                item = (
                    self._queue.get(timeout=max(wait, 0.0))
                    if wait > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            if isinstance(item, _Marker):
                markers.append(item)
                break
            records.append(item)
        return records, markers

    def _rows(self, records: list[PredictionRecord]) -> list[dict[str, Any]]:
        rows = []
        for record in records:
            try:
                rows.append(record_to_row(record))
            except Exception as exc:  # a record we cannot even serialise: keep its repr
                log.exception("prediction log: cannot serialise record %s", record.decision_id)
                self.spool.dead_letter([repr(record)[:100_000]], f"serialise: {exc}")
                self._counts["dead"] += 1
        return rows

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
            log.error("prediction log: cannot spool %d rows (%s); holding them", len(rows), exc)
            self._held.extend(rows)

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        if not self._schema_ready:
            ensure_schema(self._engine, [predictions_table], what=self._what)
            self._schema_ready = True
        dialect = self._engine.dialect.name
        stmt: Any
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            stmt = pg_insert(predictions_table).on_conflict_do_nothing(
                index_elements=["decision_id"]
            )
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            stmt = sqlite_insert(predictions_table).on_conflict_do_nothing(
                index_elements=["decision_id"]
            )
        try:
            with self._engine.begin() as conn:
                conn.execute(stmt, [_db_row(r) for r in rows])
        except sa.exc.DBAPIError as exc:
            if not _missing_table(exc):
                raise
            # The table vanished (database recreated): create it again and retry once.
            self._schema_ready = False
            ensure_schema(self._engine, [predictions_table], what=self._what)
            self._schema_ready = True
            with self._engine.begin() as conn:
                conn.execute(stmt, [_db_row(r) for r in rows])

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
                    log.error("prediction log: row %s refused: %s", row.get("decision_id"), exc)
                    self.spool.dead_letter([row], f"{type(exc).__name__}: {exc}"[:2000])
                    self._counts["dead"] += 1

    def _mark_down(self, exc: BaseException) -> None:
        if self._backend_up:
            log.warning("%s unreachable, spooling to %s: %s", self._what, self.spool.directory, exc)
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
                log.error("%s: replay failed: %s", self._what, exc)
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

    # ---- reads (monitoring, export) ---------------------------------------------------------

    def _select(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        client: str | None = None,
        status: str | None = None,
    ) -> sa.Select[Any]:
        t = predictions_table
        query = sa.select(t).order_by(t.c.timestamp, t.c.decision_id)
        if since is not None:
            query = query.where(t.c.timestamp >= _utc(since))
        if until is not None:
            query = query.where(t.c.timestamp < _utc(until))
        if client is not None:
            query = query.where(t.c.client == client)
        if status is not None:
            query = query.where(t.c.status == status)
        return query

    def count(self, *, status: str | None = None) -> int:
        """Return the number of rows in the database (optionally with one ``status``).

        Raises
        ------
        BackendUnavailableError
            When the database cannot be reached.
        """
        t = predictions_table
        query = sa.select(sa.func.count()).select_from(t)
        if status is not None:
            query = query.where(t.c.status == status)
        with backend_errors(self._what, "count rows"):
            ensure_schema(self._engine, [predictions_table], what=self._what)
            with self._engine.connect() as conn:
                return int(conn.execute(query).scalar_one())

    def get(self, decision_id: str) -> PredictionRecord | None:
        """Return one record by id: from this process's recent records, else the database."""
        with self._recent_lock:
            recent = self._recent.get(decision_id)
        if recent is not None:
            return recent
        t = predictions_table
        with backend_errors(self._what, f"read decision {decision_id!r}"):
            ensure_schema(self._engine, [predictions_table], what=self._what)
            with self._engine.connect() as conn:
                row = conn.execute(sa.select(t).where(t.c.decision_id == decision_id)).mappings()
                found = row.first()
        return None if found is None else row_to_record(found)

    def iter_rows(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        client: str | None = None,
        status: str | None = None,
        chunk_size: int = 5000,
    ) -> Iterator[dict[str, Any]]:
        """Yield stored rows oldest first (JSON columns as text), streaming from the database."""
        query = self._select(since, until, client, status)
        with backend_errors(self._what, "read rows"):
            ensure_schema(self._engine, [predictions_table], what=self._what)
            with self._engine.connect() as conn:
                result = conn.execution_options(yield_per=chunk_size).execute(query)
                for row in result.mappings():
                    yield dict(row)

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
            row["timestamp"] = _utc(row["timestamp"])
            row["available_at"] = _utc(row["available_at"])
            rows.append(row)
        return pd.DataFrame(rows, columns=[c.name for c in predictions_table.columns])

    def export_csv(
        self,
        path: str | os.PathLike[str],
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        """Write the log to a CSV file (JSON columns as JSON text); return the row count."""
        columns = [c.name for c in predictions_table.columns]
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        n = 0
        with out.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            for row in self.iter_rows(since, until):
                for key in ("timestamp", "available_at"):
                    value = _utc(row[key])
                    row[key] = value.isoformat() if value else ""
                writer.writerow(row)
                n += 1
        return n
