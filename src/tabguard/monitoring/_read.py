"""Reading the prediction log into batches of columns: what a reader process imports.

:class:`LogReader` reads log rows by commit order; :class:`BatchParser` decodes a batch's
``numbers`` vectors (or parses its JSON documents). Both run in a **reader process** during a
large update (``_update._batch_feed``), so this module keeps to NumPy, SQLAlchemy, orjson and
the decoders: no pandas, no store, no aggregation. The process starts with the update and reads
the second batch while the first is aggregated; pandas alone doubled its imports (~0.4 CPU-s
before it could read a row).
"""

from __future__ import annotations

import gc
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from itertools import repeat
from operator import is_not, itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa

from tabguard.monitoring._numbers import NumberLayout, scatter
from tabguard.monitoring._parse import (
    ColumnType,
    ParsedColumn,
    canonical_label,
    parse_objects,
)
from tabguard.storage import (
    backend_errors,
    create_sql_engine,
    ensure_schema,
    predictions_table,
    redact_url,
)
from tabguard.storage._schema import INGEST_SEQ, NUMBERS

if TYPE_CHECKING:
    from tabguard.monitoring._config import AggregationConfig

#: The columns a batch is made of (in this order, as read from the log).
BATCH_COLUMNS = (
    "seq",
    "epoch",
    "decision_id",
    "client",
    "status",
    "decision",
    "score",
    "latency_ms",
    "raw",
    "features",
    "guard_actions",
    "errors",
    "segment",
    "probing",
)


@dataclass(frozen=True)
class ColumnSpec:
    """One monitored column: its name, its type and its declared categories."""

    name: str
    type: ColumnType
    categories: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class MonitorPlan:
    """What the aggregation extracts from each row.

    Attributes
    ----------
    raw, features : tuple of ColumnSpec
        Raw attributes (as received) and guarded model features to profile.
    segment_features : tuple of str
        Contract features whose raw value names a segment.
    combinations : tuple of tuple of str
        Crossed segment keys.
    """

    raw: tuple[ColumnSpec, ...] = ()
    features: tuple[ColumnSpec, ...] = ()
    segment_features: tuple[str, ...] = ()
    combinations: tuple[tuple[str, ...], ...] = ()
    preset: tuple[tuple[str, tuple[str, ...]], ...] = ()
    layout: NumberLayout | None = None

    def preset_values(self) -> dict[str, list[str]]:
        """Segment values admitted from the start (declared categories of segment features)."""
        return {key: list(values) for key, values in self.preset}

    @classmethod
    def from_contract(
        cls,
        contract: Any,
        config: AggregationConfig,
        feature_names: Sequence[str] | None = None,
    ) -> MonitorPlan:
        """The plan for a contract (``feature_names``: the model's inputs, default every
        non-protected feature)."""

        def spec(name: str) -> ColumnSpec:
            f = contract.features[name]
            if f.is_numeric:
                return ColumnSpec(name, "number")
            cats = tuple(f.categories or ()) if f.type == "category" else (True, False)
            return ColumnSpec(name, "category", cats)

        names = list(contract.features)
        model = (
            list(feature_names)
            if feature_names is not None
            else [n for n in names if not contract.features[n].protected]
        )
        cols = config.columns
        raw = names if cols.raw == "all" else [n for n in names if n in cols.raw]
        feats = model if cols.features == "all" else [n for n in model if n in cols.features]
        seg_feats = config.segments.features
        if seg_feats is None:
            seg_feats = list(contract.segments)
        seg_feats = [n for n in seg_feats if n in contract.features]
        preset = []
        for name in seg_feats:
            cats = spec(name).categories or ()
            if 0 < len(cats) <= config.segments.top_k:
                preset.append((name, tuple(str(canonical_label(c)) for c in cats)))
        return cls(
            raw=tuple(spec(n) for n in raw),
            features=tuple(spec(n) for n in feats if n in contract.features),
            segment_features=tuple(seg_feats),
            combinations=tuple(tuple(c) for c in config.segments.combinations),
            preset=tuple(preset),
            layout=NumberLayout.from_contract(contract),
        )


@dataclass
class PreparedBatch:
    """A batch with its JSON columns parsed (see :meth:`Aggregator.prepare`)."""

    batch: dict[str, np.ndarray]
    raw: dict[str, ParsedColumn]
    raw_is_obj: np.ndarray
    feats: dict[str, ParsedColumn]
    feat_is_obj: np.ndarray
    skipped: int
    slow_rows: int
    json_rows: int = 0
    #: Decision ids of some skipped rows (for the warning :meth:`Aggregator.start` logs).
    skipped_ids: tuple[Any, ...] = ()

    def without_documents(self) -> PreparedBatch:
        """The same batch without the columns parsing used up (the JSON documents and the
        ``numbers`` vectors): what a reader process sends back (a fraction of the bytes)."""
        spent = ("raw", "features", "numbers")
        batch = {k: v for k, v in self.batch.items() if k not in spent}
        return replace(self, batch=batch)


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
                unreadable = not all_ids and None in map(_EPOCH, rows)
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


#: A fetched row's epoch (``None``: the timestamp is unreadable), and a test for a value:
#: ``map`` and ``filter`` over 100k rows run in C, a generator expression costs ~0.3 µs a row.
_EPOCH = itemgetter(1)
_NOT_NONE = partial(is_not, None)
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
    codes, uniques = _factorize(columns[4])
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


def _factorize(values: Sequence[Any]) -> tuple[np.ndarray, list[Any]]:
    """Per value, the index of its first occurrence among the distinct values, and those values
    in that order (as ``pandas.factorize``, for hashable values; no pandas in a reader)."""
    uniques = list(dict.fromkeys(values))
    index = {value: i for i, value in enumerate(uniques)}
    codes = np.fromiter(map(index.__getitem__, values), dtype=np.intp, count=len(values))
    return codes, uniques


def _floats(values: Sequence[Any]) -> np.ndarray:
    """Numbers (None as NaN) as float64."""
    return np.array(values, dtype=np.float64)


def _objects(values: Sequence[Any]) -> np.ndarray:
    """Python objects as an object array, one element each (never a nested shape)."""
    return np.fromiter(values, dtype=object, count=len(values))


def _documents(values: Sequence[Any]) -> np.ndarray:
    """JSON documents as bytes (psycopg may hand ``bytea`` over as memoryview)."""
    sample = next(filter(_NOT_NONE, values), None)
    if sample is not None and not isinstance(sample, bytes):
        return _objects([bytes(v) if v is not None else None for v in values])
    return _objects(values)


class BatchParser:
    """The columns a plan reads from a batch of log rows (:meth:`prepare`): no state beyond
    the plan, so it runs wherever the batch is read (a thread, or a reader process).

    Parameters
    ----------
    plan : MonitorPlan
    """

    def __init__(self, plan: MonitorPlan) -> None:
        self.plan = plan
        self.raw_cols: dict[str, tuple[ColumnType, Any]] = {
            c.name: (c.type, c.categories) for c in plan.raw
        }
        for name in plan.segment_features:
            if name not in self.raw_cols:
                self.raw_cols[name] = ("category", None)
        self.feat_cols = {c.name: (c.type, c.categories) for c in plan.features}
        #: The layout of the log's ``numbers`` vectors this plan can read (``None``: JSON only).
        self.layout = (
            plan.layout
            if plan.layout is not None and plan.layout.usable_for(self.raw_cols, self.feat_cols)
            else None
        )

    def prepare(self, batch: dict[str, np.ndarray]) -> PreparedBatch:
        """Drop unusable rows and parse the JSON columns (no state is touched: this part runs
        in another thread or process while the previous batch is aggregated)."""
        epoch = batch["epoch"]
        usable = epoch >= 0
        skipped = int((~usable).sum())
        skipped_ids: tuple[Any, ...] = ()
        if skipped:
            skipped_ids = tuple(batch["decision_id"][~usable][:5].tolist())
            batch = {k: v[usable] for k, v in batch.items()}
        vectors = batch.get("numbers")
        has = (
            np.fromiter(map(is_not, vectors, repeat(None)), dtype=bool, count=len(vectors))
            if vectors is not None and self.layout is not None
            else np.zeros(len(batch["epoch"]), dtype=bool)
        )
        if has.all() and len(has):
            assert self.layout is not None and vectors is not None
            raw, raw_is_obj, feats, feat_is_obj = self.layout.decode(
                vectors, self.raw_cols, self.feat_cols
            )
            return PreparedBatch(
                batch, raw, raw_is_obj, feats, feat_is_obj, skipped, 0, skipped_ids=skipped_ids
            )
        json_rows = np.flatnonzero(~has)
        whole = len(json_rows) == len(has)
        raw, raw_is_obj, slow_raw = parse_objects(
            batch["raw"] if whole else batch["raw"][json_rows], self.raw_cols
        )
        # Refused requests log ``{}`` as features: they carry no model input at all.
        feats, feat_is_obj, slow_feat = parse_objects(
            batch["features"] if whole else batch["features"][json_rows],
            self.feat_cols,
            empty=False,
        )
        if not whole:
            assert self.layout is not None and vectors is not None
            vec_rows = np.flatnonzero(has)
            v_raw, v_raw_obj, v_feats, v_feat_obj = self.layout.decode(
                vectors[vec_rows], self.raw_cols, self.feat_cols
            )
            n = len(has)
            raw, raw_is_obj = scatter(
                n, [(json_rows, raw, raw_is_obj), (vec_rows, v_raw, v_raw_obj)]
            )
            feats, feat_is_obj = scatter(
                n, [(json_rows, feats, feat_is_obj), (vec_rows, v_feats, v_feat_obj)]
            )
        return PreparedBatch(
            batch,
            raw,
            raw_is_obj,
            feats,
            feat_is_obj,
            skipped,
            slow_raw + slow_feat,
            len(json_rows),
            skipped_ids,
        )


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


def _feed_ready() -> bool:
    """Nothing: submitted when the reader process is created, so it starts (imports, opens
    the log) while the first batch is read by a thread of the updating process."""
    return True
