"""The monitor store: buckets of counts and sketches, merged into windows at query time.

One SQL implementation serves every backend the URL names: ``sqlite:///path`` (default, beside
the prediction log), ``postgresql://...`` (several replicas) and ``memory://`` (in-process
SQLite, for tests). Tables (``storage/_schema.py``):

``tg_mon_counts``   (bucket, segment key, segment value, family, key) → n
``tg_mon_cells``    (bucket, segment key, segment value, kind) → for each column: rows, n,
                    missing, invalid, sum, min, max, p1…p99 and the KLL sketch (one row per
                    kind packs its columns: a million-row update writes ~20× fewer rows)
``tg_mon_segments`` segment values that earned their own segment (top-k)
``tg_mon_state``    watermark, bucket length, frequent-value sketches, source log
``tg_mon_outcomes`` late labels joined to their decision

A window ``[start, end)`` is answered by one SQL aggregate over its buckets (counts) and by
merging the buckets' sketches (percentiles); the log is never read by a query.
"""

from __future__ import annotations

import contextlib
import copy
import json
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from tabguard.errors import TabguardError

if TYPE_CHECKING:
    from tabguard.monitoring._drift import DriftReference
from tabguard.monitoring._delta import (
    STAT_FIELDS,
    Delta,
    NumericCell,
    Segment,
    cell_from,
    pack_cells,
    pack_packed,
    packed_cell,
    unpack_sketches,
    unpack_stats,
)
from tabguard.monitoring._sketch import (
    DEFAULT_K,
    QuantileSketch,
    SketchError,
    native_from_bytes,
)
from tabguard.monitoring._window import Window, epoch_seconds, from_epoch
from tabguard.storage import (
    SQLITE_BEGIN_OPTION,
    backend_errors,
    create_sql_engine,
    ensure_schema,
    redact_url,
    store_kind,
)
from tabguard.storage._schema import (
    MONITOR_TABLES,
    monitor_cells_table,
    monitor_counts_table,
    monitor_segments_table,
    monitor_state_table,
)

#: Any constant: the PostgreSQL advisory lock held by the one updater of a store.
_PG_UPDATER_LOCK = 0x7A6F_0B5E
#: Families of ``tg_mon_counts``.
F_STATUS_DECISION = "sd"  # key "status|decision" (decision "" when none)
F_GUARD = "guard"  # key "step|action|column"
F_VIOLATION = "violation"  # key "field|rule" (validation errors)
F_PROBING = "probing"  # key signal
F_CATEGORY = "cat"  # key "kind|column|value"
F_CLIENT = "client"  # key "client|metric" (segment all only)
DEFAULT_LEVELS = (0.01, 0.10, 0.50, 0.90, 0.99)


class StoreStateError(TabguardError, ValueError):
    """The store was filled under other settings (bucket length, source log)."""


class UpdaterBusyError(TabguardError):
    """Another updater holds the store's lock."""


class WatermarkMovedError(TabguardError):
    """The watermark changed under a running update (another updater bypassed the lock)."""


def _seg_filter(segment: Segment | None) -> tuple[str, str] | None:
    if segment is None:
        return None
    key, value = segment
    return str(key), str(value)


class SqlMonitorStore:
    """Buckets in SQL tables (SQLite, PostgreSQL, or in-memory SQLite).

    Parameters
    ----------
    url : str
        ``sqlite:///path``, ``postgresql://...`` or ``memory://``.
    bucket : timedelta, optional
        Bucket length. A new store records it; an existing store must match it (a store
        cannot be re-bucketed: use a new one).

    Raises
    ------
    StoreStateError
        When ``bucket`` differs from the one the store was filled with.
    BackendUnavailableError
        When the database cannot be reached.
    """

    def __init__(self, url: str, *, bucket: timedelta | None = None) -> None:
        self.url = url
        self.kind = store_kind(url)
        self._what = f"monitor store {redact_url(url)}"
        self.engine = create_sql_engine(url)
        self._local_lock = threading.Lock()
        #: Set on a view only (:meth:`with_counts`): counters read once for a whole pass.
        self._counts_cache: BucketCounts | None = None
        ensure_schema(self.engine, MONITOR_TABLES, what=self._what)
        stored = self.get_state("bucket_seconds")
        if stored is None:
            seconds = int((bucket or timedelta(hours=1)).total_seconds())
            self.set_state("bucket_seconds", seconds)
            self.bucket = timedelta(seconds=seconds)
        else:
            self.bucket = timedelta(seconds=int(stored))
            if bucket is not None and bucket != self.bucket:
                raise StoreStateError(
                    f"{self._what}: aggregation.bucket is {bucket}, but the store holds "
                    f"{self.bucket} buckets; keep aggregation.bucket: {self.bucket}, or point "
                    "`store:` in monitor.yaml at a new store and run `tabguard monitor update` "
                    "to fill it from the log (`--reset` keeps the bucket length)"
                )

    # ---- state ------------------------------------------------------------------------------

    def get_state(self, name: str, conn: sa.Connection | None = None) -> Any:
        """A JSON value of ``tg_mon_state`` (``None`` when absent)."""
        t = monitor_state_table
        query = sa.select(t.c.value).where(t.c.name == name)
        with backend_errors(self._what, f"read {name}"):
            if conn is not None:
                value = conn.execute(query).scalar_one_or_none()
            else:
                with self.engine.connect() as c:
                    value = c.execute(query).scalar_one_or_none()
        return None if value is None else json.loads(value)

    def state_items(self, prefix: str) -> dict[str, Any]:
        """Every state value whose name starts with ``prefix`` (corrupt JSON skipped)."""
        t = monitor_state_table
        query = sa.select(t.c.name, t.c.value).where(t.c.name.startswith(prefix, autoescape=True))
        with backend_errors(self._what, f"read {prefix}*"), self.engine.connect() as conn:
            rows = conn.execute(query).all()
        out: dict[str, Any] = {}
        for name, value in rows:
            with contextlib.suppress(ValueError):
                out[name] = json.loads(value)
        return out

    @property
    def what(self) -> str:
        """How messages name this store (URL without password)."""
        return self._what

    def set_state(self, name: str, value: Any, conn: sa.Connection | None = None) -> None:
        """Write a JSON value of ``tg_mon_state`` (in ``conn``'s transaction when given)."""
        if conn is None:
            with backend_errors(self._what, f"write {name}"), self.transaction() as c:
                self._put_state(c, name, value)
        else:
            self._put_state(conn, name, value)

    def _put_state(self, conn: sa.Connection, name: str, value: Any) -> None:
        t = monitor_state_table
        row = {"name": name, "value": json.dumps(value), "updated_at": datetime.now(UTC)}
        stmt = self._insert(t).values(row)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["name"],
                set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
            )
        )

    def _insert(self, table: sa.Table) -> Any:
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """A write transaction (SQLite: ``BEGIN IMMEDIATE``, the write lock up front)."""
        with (
            self.engine.connect().execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"}) as conn,
            conn.begin(),
        ):
            yield conn

    # ---- the one updater --------------------------------------------------------------------

    @contextlib.contextmanager
    def updater_lock(self) -> Iterator[None]:
        """Hold the store's updater lock, or raise :class:`UpdaterBusyError` at once.

        PostgreSQL: a session advisory lock (held by a dedicated connection, released when it
        closes, also if the process dies). SQLite: an ``flock`` on ``<database>.update-lock``
        (released by the kernel when the process dies). Memory: a process-local lock.
        """
        if self.kind == "postgresql":
            with backend_errors(self._what, "take the updater lock"):
                conn = self.engine.connect()
            try:
                with backend_errors(self._what, "take the updater lock"):
                    got = conn.execute(
                        sa.select(sa.func.pg_try_advisory_lock(_PG_UPDATER_LOCK))
                    ).scalar_one()
                    conn.commit()
                if not got:
                    raise UpdaterBusyError(f"{self._what}: another updater is running")
                try:
                    yield
                finally:
                    with contextlib.suppress(Exception):
                        conn.execute(sa.select(sa.func.pg_advisory_unlock(_PG_UPDATER_LOCK)))
                        conn.commit()
            finally:
                conn.close()
            return
        if self.kind == "sqlite":
            from tabguard._files import file_lock

            db = sa.make_url(self.engine.url).database or ""
            lock_path = Path(f"{db}.update-lock")

            def busy() -> UpdaterBusyError:
                return UpdaterBusyError(
                    f"{self._what}: another updater is running (lock {lock_path})"
                )

            with file_lock(lock_path, busy):
                yield
            return
        if not self._local_lock.acquire(blocking=False):
            raise UpdaterBusyError(f"{self._what}: another updater is running")
        try:
            yield
        finally:
            self._local_lock.release()

    # ---- writes -----------------------------------------------------------------------------

    def merge(
        self,
        delta: Delta,
        *,
        watermark: Any,
        expected: Any,
        state: dict[str, Any] | None = None,
        admitted: Iterable[Segment] = (),
        at: datetime | None = None,
    ) -> None:
        """Add ``delta`` and move the watermark, in one transaction.

        Parameters
        ----------
        delta : Delta
            Counts and numeric cells to add.
        watermark : Any
            The new watermark (JSON).
        expected : Any
            The watermark this delta was computed from; if the stored one differs, nothing is
            written (:class:`WatermarkMovedError`), so a delta can never be counted twice.
        state : dict, optional
            Further state rows to write in the same transaction.
        admitted : iterable of (key, value)
            Segment values admitted while computing the delta.
        at : datetime, optional
            Time of the admission (default now).
        """
        with backend_errors(self._what, "merge a batch"), self.transaction() as conn:
            current = self.get_state("watermark", conn)
            if current != expected:
                raise WatermarkMovedError(
                    f"{self._what}: the watermark moved from {expected!r} to {current!r} during "
                    "the update (two updaters?); the batch was not written"
                )
            self._merge_counts(conn, delta)
            self._merge_numeric(conn, delta)
            rows = [
                {"seg_key": k, "seg_value": v, "admitted_at": at or datetime.now(UTC)}
                for k, v in admitted
            ]
            if rows:
                stmt = self._insert(monitor_segments_table).on_conflict_do_nothing()
                conn.execute(stmt, rows)
            for name, value in (state or {}).items():
                self._put_state(conn, name, value)
            self._put_state(conn, "watermark", watermark)

    def _upsert_sql(self, table: sa.Table, keys: Sequence[str], update: str) -> str:
        """``INSERT … ON CONFLICT (keys) DO UPDATE SET update`` in the driver's paramstyle."""
        cols = [c.name for c in table.columns]
        mark = "?" if self.engine.dialect.name == "sqlite" else "%s"
        # Table and column names are the schema's constants; values are bound parameters.
        return (
            f"INSERT INTO {table.name} ({', '.join(cols)}) "  # noqa: S608
            f"VALUES ({', '.join(mark for _ in cols)}) "
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {update}"
        )

    def _merge_counts(self, conn: sa.Connection, delta: Delta) -> None:
        if not delta.counts:
            return
        t = monitor_counts_table
        # Plain driver executemany: the SQLAlchemy statement layer costs more than SQLite here.
        sql = self._upsert_sql(
            t, ["bucket", "seg_key", "seg_value", "family", "key"], f"n = {t.name}.n + excluded.n"
        )
        rows = [(b, sk, sv, f, k, int(n)) for (b, sk, sv, f, k), n in delta.counts.items() if n]
        for start in range(0, len(rows), 20_000):
            conn.exec_driver_sql(sql, rows[start : start + 20_000])

    def _merge_numeric(self, conn: sa.Connection, delta: Delta) -> None:
        if not delta.numeric and not delta.packed:
            return
        t = monitor_cells_table
        groups: dict[tuple[int, str, str, str], list[tuple[str, NumericCell]]] = defaultdict(list)
        for (b, sk, sv, kind, col), cell in delta.numeric.items():
            groups[(b, sk, sv, kind)].append((col, cell))
        packed_by_group: dict[tuple[int, str, str, str], list[Any]] = defaultdict(list)
        for packed in delta.packed:
            b, sk, sv, kind, _col = packed[0]
            packed_by_group[(b, sk, sv, kind)].append(packed)
        # Rows already stored for the touched buckets are merged with the new cells.
        touched = set(groups) | set(packed_by_group)
        buckets = sorted({key[0] for key in touched})
        for chunk_start in range(0, len(buckets), 500):
            chunk = buckets[chunk_start : chunk_start + 500]
            query = sa.select(
                t.c.bucket, t.c.seg_key, t.c.seg_value, t.c.kind, t.c.cols, t.c.stats, t.c.sketches
            ).where(t.c.bucket.in_(chunk))
            for b, sk, sv, kind, names_json, stats, blobs in conn.execute(query):
                key = (int(b), sk, sv, kind)
                if key not in touched:
                    continue
                new = groups.get(key, []) + [
                    (p[0][4], packed_cell(p, delta.k)) for p in packed_by_group.pop(key, [])
                ]
                names, matrix = unpack_stats(names_json, stats)
                sketches = unpack_sketches(len(names), blobs)
                merged = {
                    name: cell_from(matrix[i], sketches[i], delta.k) for i, name in enumerate(names)
                }
                for name, cell in new:
                    old = merged.get(name)
                    if old is None:
                        merged[name] = cell
                    else:
                        old.merge(cell)
                groups[key] = sorted(merged.items())
        sql = self._upsert_sql(
            t,
            ["bucket", "seg_key", "seg_value", "kind"],
            "cols = excluded.cols, stats = excluded.stats, sketches = excluded.sketches",
        )
        rows = []
        for (b, sk, sv, kind), objs in groups.items():
            rows.append((b, sk, sv, kind, *pack_cells(sorted(objs, key=lambda c: c[0]))))
        for (b, sk, sv, kind), cells in packed_by_group.items():  # new rows: no deserialising
            rows.append((b, sk, sv, kind, *pack_packed(cells)))
        for start in range(0, len(rows), 2000):
            conn.exec_driver_sql(sql, rows[start : start + 2000])

    def reset(self) -> None:
        """Delete every bucket, admitted segment and state row except the bucket length."""
        with backend_errors(self._what, "reset"), self.transaction() as conn:
            for table in (monitor_counts_table, monitor_cells_table, monitor_segments_table):
                conn.execute(table.delete())
            conn.execute(
                monitor_state_table.delete().where(monitor_state_table.c.name != "bucket_seconds")
            )

    # ---- segments ---------------------------------------------------------------------------

    def admitted_segments(self) -> dict[str, set[str]]:
        """Segment values with their own segment, by key."""
        t = monitor_segments_table
        out: dict[str, set[str]] = defaultdict(set)
        with backend_errors(self._what, "read segments"), self.engine.connect() as conn:
            for key, value in conn.execute(sa.select(t.c.seg_key, t.c.seg_value)):
                out[key].add(value)
        return dict(out)

    # ---- reads ------------------------------------------------------------------------------

    def _keys(self, start: datetime, end: datetime) -> tuple[int, int]:
        return Window(start, end).bucket_keys(self.bucket)

    def latest(self) -> datetime | None:
        """End of the last complete bucket: the start of the bucket holding the newest record.

        ``None`` when the store is empty.
        """
        newest = self.get_state("max_timestamp")
        if newest is None:
            return None
        b = int(self.bucket.total_seconds())
        return from_epoch((int(newest) // b) * b)

    def first_bucket(self) -> datetime | None:
        """Start of the oldest bucket holding a request: where the store's history begins.

        ``None`` when the store is empty. One query answered from the counters' primary key
        (``bucket`` leads it), on SQLite and PostgreSQL alike; the rules ask it once per pass
        (:meth:`~tabguard.monitoring._rules.MetricReader.first_bucket`).
        """
        sql = f"SELECT min(bucket) FROM {monitor_counts_table.name}"  # noqa: S608 - constant
        rows = self._driver_rows(sql, (), "read the first bucket")
        first = rows[0][0] if rows else None
        return None if first is None else from_epoch(int(first))

    def watermark(self) -> Any:
        """The log position the store has read up to (``None`` before the first update)."""
        return self.get_state("watermark")

    def counts(
        self,
        start: datetime,
        end: datetime,
        families: Sequence[str],
        segment: Segment | None = None,
    ) -> pd.DataFrame:
        """Counters summed over the window: ``segment_key, segment_value, family, key, n``."""
        lo, hi = self._keys(start, end)
        cache = self._counts_cache
        if cache is not None and cache.covers(lo, hi, families):
            return cache.window(lo, hi, families, _seg_filter(segment))
        pg = self.engine.dialect.name == "postgresql"
        mark = "%s" if pg else "?"
        fams = list(families)
        where = (
            f"bucket >= {mark} AND bucket < {mark} AND family IN ({', '.join(mark for _ in fams)})"
        )
        params: list[Any] = [lo, hi, *fams]
        seg = _seg_filter(segment)
        if seg is not None:
            where += f" AND seg_key = {mark} AND seg_value = {mark}"
            params += list(seg)
        # Code-point order (Python's str order): SQLite's binary collation gives it, PostgreSQL
        # needs COLLATE "C"; the frame then needs no sort. Plain SQL: window queries run every
        # minute, and building the statement cost more than the aggregate itself.
        order = ", ".join(
            f'{c} COLLATE "C"' if pg else c for c in ("seg_key", "seg_value", "family", "key")
        )
        sql = (
            "SELECT seg_key, seg_value, family, key, sum(n) "  # noqa: S608 - constant names
            f"FROM {monitor_counts_table.name} WHERE {where} "
            f"GROUP BY seg_key, seg_value, family, key ORDER BY {order}"
        )
        rows = self._driver_rows(sql, tuple(params), "read counts")
        df = pd.DataFrame(rows, columns=["segment_key", "segment_value", "family", "key", "n"])
        df["n"] = df["n"].astype("int64")
        return df

    def with_counts(
        self, start: datetime, end: datetime, families: Sequence[str]
    ) -> SqlMonitorStore:
        """A view of this store whose counter windows inside ``[start, end)`` are summed from
        one read of the per-bucket rows of ``families``.

        An alerting pass reads ~170 windows per rate rule (baselines, the dispersion's week of
        cells, the CUSUM's hours and their baselines): one query for the whole span replaces
        one query per window. The view is a snapshot: it is made for one pass and dropped
        (late rows fold into past buckets, so a view kept longer would miss them). Windows
        outside the span, other families and every other read go to the database as before.
        """
        lo, hi = self._keys(start, end)
        fams = sorted(set(families))
        pg = self.engine.dialect.name == "postgresql"
        mark = "%s" if pg else "?"
        sql = (
            "SELECT bucket, seg_key, seg_value, family, key, n "  # noqa: S608 - constant names
            f"FROM {monitor_counts_table.name} WHERE bucket >= {mark} AND bucket < {mark} "
            f"AND family IN ({', '.join(mark for _ in fams)}) ORDER BY bucket"
        )
        rows = self._driver_rows(sql, (lo, hi, *fams), "read counts")
        view = copy.copy(self)
        view._counts_cache = BucketCounts(lo, hi, fams, rows)
        return view

    @property
    def counts_snapshot(self) -> BucketCounts | None:
        """The counters a :meth:`with_counts` view read (``None`` on the store itself)."""
        return self._counts_cache

    def _driver_rows(self, sql: str, params: tuple[Any, ...], action: str) -> list[tuple[Any, ...]]:
        """Rows of a read through the DB-API cursor, as plain tuples (SQLAlchemy's row objects
        cost more than the query here, and pandas builds frames from them ~40x slower)."""
        with backend_errors(self._what, action), self.engine.connect() as conn:
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute(sql, params)
                return [tuple(r) for r in cursor.fetchall()]
            finally:
                cursor.close()

    def decision_counts(
        self, start: datetime, end: datetime, segment: Segment | None = None
    ) -> pd.DataFrame:
        """Requests by status and decision: ``segment_key, segment_value, status, decision, n``.

        ``decision`` is ``None`` for requests without one (refused, errors). Every status is
        listed, refused requests included.
        """
        df = self.counts(start, end, [F_STATUS_DECISION], segment)
        parts = df["key"].str.split("|", n=1, expand=True) if len(df) else None
        out = pd.DataFrame(
            {
                "segment_key": df["segment_key"].to_numpy(),
                "segment_value": df["segment_value"].to_numpy(),
                "status": parts[0].to_numpy() if parts is not None else [],
                "decision": [d or None for d in parts[1].tolist()] if parts is not None else [],
                "n": df["n"].to_numpy(),
            }
        )
        return out.reset_index(drop=True)

    def volume(
        self, start: datetime, end: datetime, segment: Segment | None = None
    ) -> pd.DataFrame:
        """Requests per segment (every status): ``segment_key, segment_value, n``."""
        df = self.decision_counts(start, end, segment)
        out = df.groupby(["segment_key", "segment_value"], as_index=False, sort=True)["n"].sum()
        out["n"] = out["n"].astype("int64")
        return pd.DataFrame(out)

    def _with_requests(
        self, df: pd.DataFrame, start: datetime, end: datetime, segment: Segment | None
    ) -> pd.DataFrame:
        vol = self.volume(start, end, segment).rename(columns={"n": "n_requests"})
        out = df.merge(vol, on=["segment_key", "segment_value"], how="left")
        out["n_requests"] = out["n_requests"].fillna(0).astype("int64")
        return out.reset_index(drop=True)

    def guard_action_counts(
        self, start: datetime, end: datetime, segment: Segment | None = None
    ) -> pd.DataFrame:
        """Guard actions: ``segment_key, segment_value, step, action, column, n, n_requests``.

        Per-field actions (``clip``, ``neutralize``, ``impute``, ``bin`` of the sanitise step,
        ``out_of_contract`` of the validate step) name the field in ``column``; others have
        ``column == ""``.
        """
        df = self.counts(start, end, [F_GUARD], segment)
        parts = (
            df["key"].str.split("|", n=2, expand=True).reindex(columns=[0, 1, 2])
            if len(df)
            else pd.DataFrame({0: [], 1: [], 2: []})
        )
        out = pd.DataFrame(
            {
                "segment_key": df["segment_key"].to_numpy(),
                "segment_value": df["segment_value"].to_numpy(),
                "step": parts[0].to_numpy(),
                "action": parts[1].to_numpy(),
                "column": parts[2].fillna("").to_numpy(),
                "n": df["n"].to_numpy(),
            }
        )
        return self._with_requests(out, start, end, segment)

    def violation_counts(
        self, start: datetime, end: datetime, segment: Segment | None = None
    ) -> pd.DataFrame:
        """Contract violations of refused requests: ``…, field, rule, n, n_requests``."""
        df = self.counts(start, end, [F_VIOLATION], segment)
        parts = (
            df["key"].str.split("|", n=1, expand=True).reindex(columns=[0, 1])
            if len(df)
            else pd.DataFrame({0: [], 1: []})
        )
        out = pd.DataFrame(
            {
                "segment_key": df["segment_key"].to_numpy(),
                "segment_value": df["segment_value"].to_numpy(),
                "field": parts[0].to_numpy(),
                "rule": parts[1].to_numpy(),
                "n": df["n"].to_numpy(),
            }
        )
        return self._with_requests(out, start, end, segment)

    def probing_counts(
        self, start: datetime, end: datetime, segment: Segment | None = None
    ) -> pd.DataFrame:
        """Probing signals: ``segment_key, segment_value, signal, n, n_requests``."""
        df = self.counts(start, end, [F_PROBING], segment)
        out = df.rename(columns={"key": "signal"})[["segment_key", "segment_value", "signal", "n"]]
        return self._with_requests(out, start, end, segment)

    def probing_by_client(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Per API client (top-k, then ``other``): ``client, requests, probing, flagged, …``.

        One column per probing signal seen. Unauthenticated requests are client ``(none)``.
        """
        df = self.counts(start, end, [F_CLIENT], ("all", "all"))
        if not len(df):
            return pd.DataFrame(columns=["client", "requests", "probing", "flagged"])
        parts = df["key"].str.rsplit("|", n=1, expand=True)
        wide = (
            pd.DataFrame({"client": parts[0], "metric": parts[1], "n": df["n"]})
            .pivot_table(index="client", columns="metric", values="n", aggfunc="sum", fill_value=0)
            .reset_index()
        )
        wide.columns.name = None
        for col in ("requests", "probing", "flagged"):
            if col not in wide:
                wide[col] = 0
        first = ["client", "requests", "probing", "flagged"]
        rest = sorted(c for c in wide.columns if c not in first)
        return (
            wide[first + rest]
            .sort_values("requests", ascending=False, kind="stable")
            .reset_index(drop=True)
        )

    def category_counts(
        self,
        start: datetime,
        end: datetime,
        column: str | None = None,
        kind: str | None = None,
        segment: Segment | None = None,
    ) -> pd.DataFrame:
        """Category frequencies: ``segment_key, segment_value, kind, column, value, n``."""
        df = self.counts(start, end, [F_CATEGORY], segment)
        parts = (
            df["key"].str.split("|", n=2, expand=True).reindex(columns=[0, 1, 2])
            if len(df)
            else pd.DataFrame({0: [], 1: [], 2: []})
        )
        out = pd.DataFrame(
            {
                "segment_key": df["segment_key"].to_numpy(),
                "segment_value": df["segment_value"].to_numpy(),
                "kind": parts[0].to_numpy(),
                "column": parts[1].to_numpy(),
                "value": parts[2].to_numpy(),
                "n": df["n"].to_numpy(),
            }
        )
        if column is not None:
            out = out[out["column"] == column]
        if kind is not None:
            out = out[out["kind"] == kind]
        return out.reset_index(drop=True)

    def numeric_cells(
        self,
        start: datetime,
        end: datetime,
        column: str | None = None,
        kind: str | None = None,
        segment: Segment | None = None,
    ) -> dict[tuple[str, str, str, str], NumericCell]:
        """Merged numeric cells of the window by ``(seg_key, seg_value, kind, column)``.

        Raises
        ------
        SketchError
            When a stored sketch is corrupt (the message names the bucket and column).
        """
        lo, hi = self._keys(start, end)
        mark = "%s" if self.engine.dialect.name == "postgresql" else "?"
        where = f"bucket >= {mark} AND bucket < {mark}"
        params: list[Any] = [lo, hi]
        if kind is not None:
            where += f" AND kind = {mark}"
            params.append(kind)
        seg = _seg_filter(segment)
        if seg is not None:
            where += f" AND seg_key = {mark} AND seg_value = {mark}"
            params += list(seg)
        sql = (
            "SELECT bucket, seg_key, seg_value, kind, cols, stats, sketches "  # noqa: S608
            f"FROM {monitor_cells_table.name} WHERE {where}"
        )
        rows = self._driver_rows(sql, tuple(params), "read sketches")
        # Hot loop of every window query: native sketches merged in place (the first bucket's
        # sketch is the accumulator), counters summed in plain lists, wrappers built once.
        sums: dict[tuple[str, str, str, str], list[float]] = {}
        merged: dict[tuple[str, str, str, str], Any] = {}
        known: dict[str, list[str]] = {}  # each kind's column list is one JSON text
        for b, sk, sv, kd, names_json, stats, blobs in rows:
            try:
                names = known.get(names_json)
                if names is None:
                    names = known[names_json] = unpack_stats(names_json, stats)[0]
                matrix = np.frombuffer(stats, dtype="<f8")
                if matrix.size != len(names) * len(STAT_FIELDS):
                    raise SketchError(f"corrupt cell row ({matrix.size} stats for {len(names)})")
                sketches = unpack_sketches(len(names), blobs)
                # rows, missing, invalid, total of each column
                counts = matrix.reshape(len(names), -1)[:, [0, 2, 3, 4]].tolist()
                for i, name in enumerate(names):
                    if column is not None and name != column:
                        continue
                    key = (sk, sv, kd, name)
                    add = counts[i]
                    have = sums.get(key)
                    if have is None:
                        sums[key] = add
                    else:
                        have[0] += add[0]
                        have[1] += add[1]
                        have[2] += add[2]
                        have[3] += add[3]
                    if sketches[i]:
                        native = native_from_bytes(sketches[i])
                        acc = merged.get(key)
                        if acc is None:
                            merged[key] = native
                        else:
                            acc.merge(native)
            except SketchError as exc:
                raise SketchError(
                    f"{self._what}: bucket {from_epoch(b).isoformat()} {sk}={sv} {kd}: {exc}"
                ) from None
        out: dict[tuple[str, str, str, str], NumericCell] = {}
        for key, (n_rows, missing, invalid, total) in sums.items():
            native = merged.get(key)
            out[key] = NumericCell(
                rows=int(n_rows),
                missing=int(missing),
                invalid=int(invalid),
                total=total,
                sketch=QuantileSketch.fresh(DEFAULT_K)
                if native is None
                else QuantileSketch(_sketch=native),
            )
        return out

    def percentiles(
        self,
        start: datetime,
        end: datetime,
        column: str | None = None,
        kind: str | None = None,
        q: Sequence[float] = DEFAULT_LEVELS,
        segment: Segment | None = None,
    ) -> pd.DataFrame:
        """Percentiles merged over the window (long form).

        Returns
        -------
        DataFrame
            ``segment_key, segment_value, kind, column, q, value, n`` (``n`` numeric values).
        """
        cells = self.numeric_cells(start, end, column, kind, segment)
        records = []
        for (sk, sv, kd, col), cell in sorted(cells.items()):
            values = cell.sketch.quantiles(q)
            for level, value in zip(q, values, strict=True):
                records.append((sk, sv, kd, col, float(level), value, cell.sketch.n))
        return pd.DataFrame(
            records,
            columns=["segment_key", "segment_value", "kind", "column", "q", "value", "n"],
        )

    def numeric_summary(
        self,
        start: datetime,
        end: datetime,
        column: str | None = None,
        kind: str | None = None,
        q: Sequence[float] = DEFAULT_LEVELS,
        segment: Segment | None = None,
    ) -> pd.DataFrame:
        """One row per segment and column: rows, n, missing/invalid rates, mean, percentiles.

        Percentile columns are named ``p1``, ``p10``, ``p50``… after ``q``.
        """
        cells = self.numeric_cells(start, end, column, kind, segment)
        names = [_qname(level) for level in q]
        records = []
        for (sk, sv, kd, col), cell in sorted(cells.items()):
            n = cell.sketch.n
            records.append(
                (
                    sk,
                    sv,
                    kd,
                    col,
                    cell.rows,
                    n,
                    cell.missing / cell.rows if cell.rows else np.nan,
                    cell.invalid / cell.rows if cell.rows else np.nan,
                    cell.total / n if n else np.nan,
                    *cell.sketch.quantiles(q),
                )
            )
        cols = ["segment_key", "segment_value", "kind", "column", "rows", "n"]
        cols += ["missing_rate", "invalid_rate", "mean", *names]
        return pd.DataFrame(records, columns=cols)

    def drift(
        self,
        start: datetime,
        end: datetime,
        reference: DriftReference,
        column: str | None = None,
        kind: str | None = None,
        segment: Segment | None = None,
        min_rows: int = 50,
    ) -> pd.DataFrame:
        """PSI and Jensen–Shannon distance of the window against the training reference.

        Returns
        -------
        DataFrame
            ``segment_key, segment_value, kind, column, n, psi, js`` for every column the
            reference knows; ``psi``/``js`` are NaN below ``min_rows`` values.
        """
        from tabguard.monitoring._drift import (
            drift_row,
            window_shares_category,
            window_shares_numeric,
        )

        records = []
        for (sk, sv, kd, col), cell in self.numeric_cells(
            start, end, column, kind, segment
        ).items():
            ref = reference.columns.get((kd, col))
            if ref is None or not ref.numeric:
                continue
            n = cell.sketch.n
            shares = (
                window_shares_numeric(ref, cell.sketch.cdf(list(ref.edges)))
                if n
                else np.zeros(len(ref.shares))
            )
            records.append((sk, sv, kd, col, n, *drift_row(ref, shares, n, min_rows)))
        cats = self.category_counts(start, end, column, kind, segment)
        for key, part in cats.groupby(
            ["segment_key", "segment_value", "kind", "column"], sort=False
        ):
            sk, sv, kd, col = (str(v) for v in key)
            ref = reference.columns.get((kd, col))
            if ref is None or ref.numeric:
                continue
            shares, n = window_shares_category(
                ref, dict(zip(part["value"], part["n"], strict=True))
            )
            records.append((sk, sv, kd, col, n, *drift_row(ref, shares, n, min_rows)))
        out = pd.DataFrame(
            records, columns=["segment_key", "segment_value", "kind", "column", "n", "psi", "js"]
        )
        return out.sort_values(
            ["segment_key", "segment_value", "kind", "column"], kind="stable"
        ).reset_index(drop=True)

    def performance(
        self,
        start: datetime,
        end: datetime,
        *,
        as_of: datetime,
        maturity: timedelta = timedelta(days=90),
        segment: Segment | None = None,
    ) -> pd.DataFrame:
        """AUC, default rate, Brier score on the matured labels of decisions in the window.

        ``segment_key, segment_value, n_labelled, positives, default_rate, auc, brier,
        mean_score``; see :func:`tabguard.monitoring._outcomes.performance`.
        """
        from tabguard.monitoring._outcomes import performance

        return performance(self, start, end, as_of=as_of, maturity=maturity, segment=segment)

    def performance_bands(
        self,
        start: datetime,
        end: datetime,
        *,
        as_of: datetime,
        maturity: timedelta = timedelta(days=90),
        bands: int = 10,
        segment: Segment | None = None,
    ) -> pd.DataFrame:
        """Default rate and mean score by score band (calibration), per segment."""
        from tabguard.monitoring._outcomes import performance_bands

        return performance_bands(
            self, start, end, as_of=as_of, maturity=maturity, bands=bands, segment=segment
        )

    def latency(
        self,
        start: datetime,
        end: datetime,
        q: Sequence[float] = (0.5, 0.99),
        segment: Segment | None = None,
    ) -> pd.DataFrame:
        """Latency percentiles (ms): the :meth:`percentiles` shape, kind ``latency_ms``."""
        return self.percentiles(start, end, "latency_ms", "latency_ms", q, segment)

    def series(
        self,
        start: datetime,
        end: datetime,
        *,
        column: str,
        kind: str,
        segment: Segment | None = None,
    ) -> pd.DataFrame:
        """Per-bucket summaries of one column, read as stored (no sketch merge): for charts.

        Returns
        -------
        DataFrame
            ``bucket`` (datetime), ``segment_key, segment_value, rows, n, missing, invalid,
            vmin, vmax, p01, p10, p50, p90, p99, mean``.
        """
        lo, hi = self._keys(start, end)
        t = monitor_cells_table
        query = (
            sa.select(t.c.bucket, t.c.seg_key, t.c.seg_value, t.c.cols, t.c.stats)
            .where(t.c.bucket >= lo, t.c.bucket < hi, t.c.kind == kind)
            .order_by(t.c.bucket, t.c.seg_key, t.c.seg_value)
        )
        seg = _seg_filter(segment)
        if seg is not None:
            query = query.where(t.c.seg_key == seg[0], t.c.seg_value == seg[1])
        with backend_errors(self._what, "read series"), self.engine.connect() as conn:
            rows = conn.execute(query).all()
        keys, values = [], []
        for b, sk, sv, names_json, stats in rows:
            names, matrix = unpack_stats(names_json, stats)
            if column in names:
                keys.append((b, sk, sv))
                values.append(matrix[names.index(column)])
        df = pd.DataFrame(keys, columns=["bucket", "segment_key", "segment_value"])
        stats_df = pd.DataFrame(
            np.asarray(values).reshape(-1, len(STAT_FIELDS)), columns=list(STAT_FIELDS)
        )
        df = pd.concat([df, stats_df], axis=1)
        df["bucket"] = pd.to_datetime(df["bucket"].astype("int64"), unit="s", utc=True)
        for name in ("rows", "n", "missing", "invalid"):
            df[name] = df[name].astype("int64")
        df["mean"] = df["total"] / df["n"].where(df["n"] > 0)
        return df.drop(columns=["total"])

    def count_series(
        self,
        start: datetime,
        end: datetime,
        *,
        family: str = F_STATUS_DECISION,
        segment: Segment | None = None,
    ) -> pd.DataFrame:
        """Per-bucket counters of one family: ``bucket, segment_key, segment_value, key, n``."""
        lo, hi = self._keys(start, end)
        t = monitor_counts_table
        query = (
            sa.select(t.c.bucket, t.c.seg_key, t.c.seg_value, t.c.key, t.c.n)
            .where(t.c.bucket >= lo, t.c.bucket < hi, t.c.family == family)
            .order_by(t.c.bucket)
        )
        seg = _seg_filter(segment)
        if seg is not None:
            query = query.where(t.c.seg_key == seg[0], t.c.seg_value == seg[1])
        with backend_errors(self._what, "read series"), self.engine.connect() as conn:
            # Plain tuples: pandas probes SQLAlchemy rows attribute by attribute (10x slower).
            rows = [tuple(r) for r in conn.execute(query)]
        df = pd.DataFrame(rows, columns=["bucket", "segment_key", "segment_value", "key", "n"])
        df["bucket"] = pd.to_datetime(df["bucket"].astype("int64"), unit="s", utc=True)
        return df

    def segments(self, start: datetime, end: datetime) -> list[Segment]:
        """Segments with at least one request in the window."""
        vol = self.volume(start, end)
        return list(zip(vol["segment_key"], vol["segment_value"], strict=True))

    def close(self) -> None:
        """Dispose of the connection pool."""
        self.engine.dispose()

    def __enter__(self) -> SqlMonitorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: The protocol name callers type against (one SQL implementation today).
MonitorStore = SqlMonitorStore


class BucketCounts:
    """Per-bucket counter rows of a span, summed into any window inside it in memory.

    What :meth:`SqlMonitorStore.counts` returns, row for row: the same groups (those with a
    stored row in the window), the same sums and the same code-point order.

    Parameters
    ----------
    lo, hi : int
        Bucket keys of the span ``[lo, hi)``.
    families : sequence of str
        The families read.
    rows : list of tuple
        ``(bucket, seg_key, seg_value, family, key, n)`` ordered by bucket.
    """

    _COLUMNS = ("segment_key", "segment_value", "family", "key")

    def __init__(
        self, lo: int, hi: int, families: Sequence[str], rows: list[tuple[Any, ...]]
    ) -> None:
        self.lo, self.hi = lo, hi
        self.families = frozenset(families)
        groups = sorted({tuple(r[1:5]) for r in rows})
        index = {g: i for i, g in enumerate(groups)}
        self._group = np.array([index[tuple(r[1:5])] for r in rows], dtype=np.int64)
        self._bucket = np.array([int(r[0]) for r in rows], dtype=np.int64)
        self._n = np.array([int(r[5]) for r in rows], dtype=np.int64)
        columns = list(zip(*groups, strict=True)) if groups else [(), (), (), ()]
        self._labels = [np.array(c, dtype=object) for c in columns]
        self._family = self._labels[2]
        self._segments = [(str(k), str(v)) for k, v, *_ in groups]

    @property
    def groups(self) -> list[tuple[str, str, str, str]]:
        """``(segment_key, segment_value, family, key)`` of each group, in code-point order."""
        return list(zip(*(lab.tolist() for lab in self._labels), strict=True))

    @property
    def rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per stored row: its bucket key, its group's index in :attr:`groups`, its count."""
        return self._bucket, self._group, self._n

    def covers(self, lo: int, hi: int, families: Sequence[str]) -> bool:
        """Whether the window ``[lo, hi)`` and ``families`` lie inside what was read."""
        return self.lo <= lo and hi <= self.hi and self.families.issuperset(families)

    def window(
        self, lo: int, hi: int, families: Sequence[str], segment: tuple[str, str] | None
    ) -> pd.DataFrame:
        """``segment_key, segment_value, family, key, n`` summed over ``[lo, hi)``."""
        i0, i1 = np.searchsorted(self._bucket, [lo, hi], side="left")
        size = len(self._segments)
        groups = self._group[i0:i1]
        n = np.bincount(groups, weights=self._n[i0:i1], minlength=size)
        present = np.bincount(groups, minlength=size) > 0
        if set(families) != self.families:
            present &= np.isin(self._family, list(families))
        if segment is not None:
            present &= np.array([s == segment for s in self._segments], dtype=bool)
        keep = np.flatnonzero(present)
        df = pd.DataFrame(
            {c: lab[keep] for c, lab in zip(self._COLUMNS, self._labels, strict=True)}
        )
        df["n"] = np.rint(n[keep]).astype("int64")
        return df


def _qname(level: float) -> str:
    pct = level * 100
    return f"p{pct:g}"


def _read_sketch(blob: bytes | None, k: int) -> QuantileSketch:
    if not blob:
        return QuantileSketch(k)
    return QuantileSketch.from_bytes(blob)


def open_monitor_store(url: str, *, bucket: timedelta | None = None) -> SqlMonitorStore:
    """Open the monitor store a URL names (``memory://``, ``sqlite:///…``, ``postgresql://…``).

    Raises
    ------
    StoreURLError
        Unknown scheme, or ``redis://`` (the store needs SQL).
    StoreStateError
        ``bucket`` differs from the existing store's.
    BackendUnavailableError
        The database cannot be reached.
    """
    from tabguard.storage import sqlalchemy_url

    sqlalchemy_url(url)  # raises StoreURLError for redis:// and unknown schemes
    return SqlMonitorStore(url, bucket=bucket)


def bucket_key(ts: datetime, bucket: timedelta) -> int:
    """The bucket key (epoch seconds of its start) holding ``ts``."""
    b = int(bucket.total_seconds())
    return (epoch_seconds(ts) // b) * b
