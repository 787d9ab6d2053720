"""Export the prediction log to a Parquet archive partitioned by date and hour.

Layout of an archive directory::

    OUT/_tabguard_archive.json                 watermark, scope, schema fingerprint
    OUT/_pending.json                          only while an export runs (its bounds)
    OUT/date=2026-12-04/hour=13/part-<lo>-<hi>.parquet
    OUT/date=2026-12-04/hour=13/_manifest.json rows and SHA-256 of every part file

Why it cannot duplicate or lose rows:

* Rows are taken in the log's commit order (``ingest_seq``, the monitor's watermark, see
  :mod:`tabguard.storage._schema`) up to a horizon below which every transaction has
  finished, so a late row (a replayed spool) is exported by the next run, never skipped.
* An export first records its bounds ``[lo, hi)`` in ``_pending.json``; every part file is
  named after the batch's own bounds, written to a temporary name, flushed and renamed. A run
  that was killed is redone by the next one with the same bounds and batch boundaries, so it
  rewrites the same file names: no duplicate, no gap. Only then does the watermark move
  (atomic rename of ``_tabguard_archive.json``).
* ``prune`` deletes from the live log only the rows of part files whose bytes still match the
  manifest's SHA-256 and row count, below the archive's watermark.

A power loss after the rename but before the file system journals it can lose an archived file
that the watermark already counts; ``prune`` then finds no matching file and keeps the rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from tabguard._files import atomic_write_text, file_lock
from tabguard.errors import DataError
from tabguard.monitoring._aggregate import MonitorPlan
from tabguard.monitoring._parse import canonical_label, parse_objects
from tabguard.serving._record import to_utc
from tabguard.storage import backend_errors, predictions_table
from tabguard.storage._schema import INGEST_SEQ

STATE_FILE = "_tabguard_archive.json"
PENDING_FILE = "_pending.json"
MANIFEST_FILE = "_manifest.json"
FORMAT_VERSION = 1
#: Rows per part file at most (one read of the log, one Arrow table in memory).
BATCH_ROWS = 200_000

_TEXT_COLUMNS = ("decision_id", "client", "subject_id", "status", "decision")
_MODEL_COLUMNS = ("model_name", "model_version")
_STR_MAP = pa.map_(pa.string(), pa.string())


@dataclass
class ExportResult:
    """What one export did.

    Attributes
    ----------
    rows : int
        Rows written by this run.
    skipped : int
        Rows outside the archive's ``since``/``until`` scope.
    parts : list of str
        Part files written (relative to the archive).
    watermark : int
        The archive's commit-order position after the run.
    resumed : bool
        The run finished an export that an earlier run had left unfinished.
    """

    rows: int = 0
    skipped: int = 0
    parts: list[str] = field(default_factory=list)
    watermark: int = 0
    resumed: bool = False


@dataclass
class PruneResult:
    """What ``prune`` did: rows deleted from the live log, part files verified or refused."""

    deleted: int = 0
    verified_parts: int = 0
    refused_parts: list[str] = field(default_factory=list)


def archive_schema(plan: MonitorPlan) -> pa.Schema:
    """The archive's typed columns for a monitoring plan (contract attributes and features)."""

    def typed(prefix: str, spec: Any) -> pa.Field:
        kind = pa.float64() if spec.type == "number" else pa.string()
        return pa.field(f"{prefix}{spec.name}", kind)

    fields = [
        pa.field("ingest_seq", pa.int64(), nullable=False),
        pa.field("decision_id", pa.string(), nullable=False),
        pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("client", pa.string()),
        pa.field("subject_id", pa.string()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("decision", pa.string()),
        pa.field("score", pa.float64()),
        pa.field("model_name", pa.string()),
        pa.field("model_version", pa.string()),
        pa.field("latency_ms", pa.float64()),
        pa.field("available_at", pa.timestamp("us", tz="UTC")),
        *(typed("raw_", s) for s in plan.raw),
        # Attributes as received that the typed columns cannot hold (unknown keys, values of
        # the wrong type in refused requests): kept as JSON so the archive loses nothing.
        pa.field("raw_other", pa.string()),
        *(typed("feature_", s) for s in plan.features),
        pa.field("segment", _STR_MAP),
        pa.field("guard_actions", pa.list_(_STR_MAP)),
        pa.field("errors", pa.list_(_STR_MAP)),
        pa.field("probing", pa.list_(pa.string())),
        pa.field("flags", _STR_MAP),
    ]
    return pa.schema(fields)


def _fingerprint(schema: pa.Schema) -> str:
    text = json.dumps([(f.name, str(f.type)) for f in schema], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---- reading the log ---------------------------------------------------------------------


def _read_rows(engine: sa.Engine, what: str, lo: int, hi: int) -> list[dict[str, Any]]:
    t = predictions_table
    seq: sa.ColumnClause[Any] = sa.literal_column(INGEST_SEQ)
    query = (
        sa.select(seq.label("ingest_seq"), *t.columns)
        .select_from(t)
        .where(seq >= lo, seq < hi)
        .order_by(seq, t.c.decision_id)
    )
    with backend_errors(what, "read rows to archive"), engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def _loads(text: Any) -> Any:
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _str_map(value: Any) -> list[tuple[str, str]] | None:
    if not isinstance(value, dict):
        return None
    out = []
    for k, v in value.items():
        text = v if isinstance(v, str) else json.dumps(v, separators=(",", ":"), default=str)
        out.append((str(k), text))
    return out


def _map_list(value: Any) -> list[list[tuple[str, str]]]:
    if not isinstance(value, list):
        return []
    out = []
    for item in value:
        mapped = _str_map(item if isinstance(item, dict) else {"value": item})
        out.append(mapped or [])
    return out


def _raw_other(text: Any, plan: MonitorPlan, typed: dict[str, Any], row: int) -> str | None:
    """The attributes of one row that the typed raw columns do not hold, as JSON."""
    value = _loads(text)
    if not isinstance(value, dict):
        return text if isinstance(text, str) and text not in ("", "{}") else None
    known = {s.name for s in plan.raw}
    rest = {k: v for k, v in value.items() if k not in known}
    for name in known & value.keys():
        col = typed[name]
        if col.invalid[row]:
            rest[name] = value[name]
    return json.dumps(rest, separators=(",", ":"), default=str) if rest else None


def to_table(rows: Sequence[dict[str, Any]], plan: MonitorPlan, schema: pa.Schema) -> pa.Table:
    """Flatten stored log rows into the archive's typed columns."""
    n = len(rows)
    data: dict[str, Any] = {"ingest_seq": [int(r["ingest_seq"]) for r in rows]}
    for name in (*_TEXT_COLUMNS, *_MODEL_COLUMNS):
        data[name] = [r[name] for r in rows]
    data["timestamp"] = [to_utc(r["timestamp"]) for r in rows]
    data["available_at"] = [to_utc(r["available_at"]) for r in rows]
    for name in ("score", "latency_ms"):
        data[name] = [r[name] for r in rows]

    def specs(items: Sequence[Any]) -> dict[str, tuple[Any, Any]]:
        return {s.name: (s.type, s.categories) for s in items}

    raw_texts = np.asarray([r["raw"] for r in rows], dtype=object)
    raw, _, _ = parse_objects(raw_texts, specs(plan.raw))
    feats, _, _ = parse_objects(
        np.asarray([r["features"] for r in rows], dtype=object), specs(plan.features)
    )
    for prefix, spec_list, parsed in (("raw_", plan.raw, raw), ("feature_", plan.features, feats)):
        for spec in spec_list:
            col = parsed[spec.name]
            if spec.type == "number":
                values = np.array(col.numbers, dtype=np.float64)
                values[col.missing | col.invalid] = np.nan
                data[f"{prefix}{spec.name}"] = pa.array(values, mask=np.isnan(values))
            else:
                labels = col.labels if col.labels is not None else [None] * n
                data[f"{prefix}{spec.name}"] = [
                    None if (m or bad) else canonical_label(v)
                    for v, m, bad in zip(labels, col.missing, col.invalid, strict=True)
                ]
    data["raw_other"] = [_raw_other(raw_texts[i], plan, raw, i) for i in range(n)]
    data["segment"] = [_str_map(_loads(r["segment"])) or [] for r in rows]
    data["guard_actions"] = [_map_list(_loads(r["guard_actions"])) for r in rows]
    data["errors"] = [_map_list(_loads(r["errors"])) for r in rows]
    data["probing"] = [
        [str(s) for s in p] if isinstance(p := _loads(r["probing"]), list) else [] for r in rows
    ]
    data["flags"] = [_str_map(_loads(r["flags"])) or [] for r in rows]
    return pa.Table.from_pydict({f.name: data[f.name] for f in schema}, schema=schema)


# ---- files -------------------------------------------------------------------------------


def _write_json(path: Path, value: Any) -> None:
    atomic_write_text(path, json.dumps(value, indent=1, sort_keys=True))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise DataError(
            f"{path}: not valid JSON ({exc}); the archive's bookkeeping was edited or torn — "
            "restore it from a backup or export into a new directory"
        ) from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    out.mkdir(parents=True, exist_ok=True)

    def busy() -> DataError:
        return DataError(f"{out}: another export or prune is running on this archive; wait for it")

    with file_lock(out / ".lock", busy):
        yield


def _write_part(out: Path, rel: str, table: pa.Table) -> dict[str, Any]:
    path = out / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    with tmp.open("rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    manifest_path = path.parent / MANIFEST_FILE
    manifest = _read_json(manifest_path) or {"parts": {}}
    manifest["parts"][path.name] = {"rows": table.num_rows, "sha256": _sha256(path)}
    manifest["rows"] = sum(p["rows"] for p in manifest["parts"].values())
    _write_json(manifest_path, manifest)
    return {"rows": table.num_rows}


# ---- export ------------------------------------------------------------------------------


def _scope(since: datetime | None, until: datetime | None) -> dict[str, str | None]:
    return {
        "since": to_utc(since).isoformat() if since else None,  # type: ignore[union-attr]
        "until": to_utc(until).isoformat() if until else None,  # type: ignore[union-attr]
    }


def export_parquet(
    log_url: str,
    out_dir: str | os.PathLike[str],
    plan: MonitorPlan,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    batch_rows: int = BATCH_ROWS,
    engine: sa.Engine | None = None,
    after_part: Callable[[str], None] | None = None,
) -> ExportResult:
    """Append the log's new rows to a Parquet archive (incremental, idempotent, resumable).

    Parameters
    ----------
    log_url : str
        The prediction log (``sqlite:///…``, ``postgresql://…``).
    out_dir : path
        The archive directory (created if missing).
    plan : MonitorPlan
        Which raw attributes and features become typed columns (from the model's contract).
    since, until : datetime, optional
        Keep only rows with ``since <= timestamp < until``. The scope is recorded with the
        archive: later runs into the same directory must pass the same one.
    batch_rows : int
        Rows per part file at most.
    engine : sqlalchemy.Engine, optional
        Share an engine (a ``memory://`` log lives in its engine).
    after_part : callable, optional
        Called with each part's path once it is in place (tests stop an export there).

    Raises
    ------
    DataError
        The directory holds another kind of archive, another scope or schema, or another
        export is running on it.
    """
    from tabguard.monitoring._update import LogReader as CommitOrderReader

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: is a file; the archive is a directory")
    schema = archive_schema(plan)
    scope = _scope(since, until)
    reader = CommitOrderReader(log_url, engine=engine)
    result = ExportResult()
    try:
        with _locked(out):
            state = _read_json(out / STATE_FILE) or {
                "format": FORMAT_VERSION,
                "watermark": 0,
                "scope": scope,
                "schema": _fingerprint(schema),
            }
            _check_state(out, state, scope, schema)
            if not (out / STATE_FILE).exists():
                _write_json(out / STATE_FILE, state)
            pending = _read_json(out / PENDING_FILE)
            if pending is not None:
                lo, hi = int(pending["lo"]), int(pending["hi"])
                result.resumed = True
            else:
                lo, hi = int(state["watermark"]), reader.horizon()
                if hi <= lo:
                    result.watermark = lo
                    return result
                _write_json(out / PENDING_FILE, {"lo": lo, "hi": hi})
            since_u, until_u = to_utc(since), to_utc(until)
            start = lo
            while start < hi:
                stop = reader.boundary(start, hi, batch_rows)
                rows = _read_rows(reader.engine, reader.what, start, stop)
                kept = [
                    r
                    for r in rows
                    if (since_u is None or to_utc(r["timestamp"]) >= since_u)  # type: ignore[operator]
                    and (until_u is None or to_utc(r["timestamp"]) < until_u)  # type: ignore[operator]
                ]
                result.skipped += len(rows) - len(kept)
                for rel, table in _partitions(kept, plan, schema, start, stop):
                    _write_part(out, rel, table)
                    result.rows += table.num_rows
                    result.parts.append(rel)
                    if after_part is not None:
                        after_part(rel)
                start = stop
            state["watermark"] = hi
            _write_json(out / STATE_FILE, state)
            (out / PENDING_FILE).unlink()
            result.watermark = hi
            return result
    finally:
        reader.close()


def _check_state(
    out: Path, state: dict[str, Any], scope: dict[str, str | None], schema: pa.Schema
) -> None:
    if state.get("format") != FORMAT_VERSION:
        raise DataError(
            f"{out}/{STATE_FILE}: format {state.get('format')!r} is not this tabguard's "
            f"archive format {FORMAT_VERSION}; export into a new directory"
        )
    if state.get("scope") != scope:
        raise DataError(
            f"{out}: this archive holds --since {state['scope']['since']} --until "
            f"{state['scope']['until']}; got --since {scope['since']} --until {scope['until']} "
            "(pass the archive's own scope, or export into a new directory)"
        )
    if state.get("schema") != _fingerprint(schema):
        raise DataError(
            f"{out}: the archive's columns were made from another contract (schema "
            f"{state.get('schema')}); export this model's log into a new directory"
        )


def _partitions(
    rows: list[dict[str, Any]], plan: MonitorPlan, schema: pa.Schema, lo: int, hi: int
) -> Iterator[tuple[str, pa.Table]]:
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        ts = to_utc(r["timestamp"]) or datetime(1970, 1, 1, tzinfo=UTC)  # NOT NULL column
        groups.setdefault((ts.strftime("%Y-%m-%d"), ts.hour), []).append(r)
    for (day, hour), part in sorted(groups.items()):
        rel = f"date={day}/hour={hour:02d}/part-{lo:020d}-{hi:020d}.parquet"
        yield rel, to_table(part, plan, schema)


# ---- prune -------------------------------------------------------------------------------


def prune_log(
    log_url: str,
    out_dir: str | os.PathLike[str],
    *,
    keep: timedelta,
    now: datetime | None = None,
    engine: sa.Engine | None = None,
) -> PruneResult:
    """Delete from the live log the rows the archive verifiably holds, older than ``keep``.

    A part file counts only when its bytes match the SHA-256 and row count of its partition's
    manifest; the rows deleted are those of its decision ids below the archive's watermark.

    Raises
    ------
    DataError
        The directory is not an archive, or an export is unfinished (run the export again).
    """
    from tabguard.storage import create_sql_engine

    out = Path(out_dir)
    state = _read_json(out / STATE_FILE)
    if state is None:
        raise DataError(f"{out}: no archive here ({STATE_FILE} missing); export first")
    cutoff = (now or datetime.now(UTC)) - keep
    result = PruneResult()
    owned = engine is None
    eng = engine if engine is not None else create_sql_engine(log_url)
    what = "prediction log"
    try:
        with _locked(out):
            if (out / PENDING_FILE).exists():
                raise DataError(
                    f"{out}: an export did not finish; run `tabguard log export` again "
                    "before pruning"
                )
            watermark = int(state["watermark"])
            for manifest_path in sorted(out.glob(f"date=*/hour=*/{MANIFEST_FILE}")):
                manifest = _read_json(manifest_path) or {"parts": {}}
                for name, info in sorted(manifest["parts"].items()):
                    path = manifest_path.parent / name
                    rel = str(path.relative_to(out))
                    if not path.exists() or _sha256(path) != info["sha256"]:
                        result.refused_parts.append(rel)
                        continue
                    table = pq.read_table(path, columns=["decision_id", "timestamp"])
                    if table.num_rows != info["rows"]:
                        result.refused_parts.append(rel)
                        continue
                    result.verified_parts += 1
                    ids = [
                        d
                        for d, ts in zip(
                            table.column("decision_id").to_pylist(),
                            table.column("timestamp").to_pylist(),
                            strict=True,
                        )
                        if ts < cutoff
                    ]
                    result.deleted += _delete(eng, what, ids, watermark)
    finally:
        if owned:
            eng.dispose()
    return result


def _delete(engine: sa.Engine, what: str, ids: list[str], watermark: int) -> int:
    t = predictions_table
    seq: sa.ColumnClause[Any] = sa.literal_column(INGEST_SEQ)
    deleted = 0
    with backend_errors(what, "delete archived rows"), engine.begin() as conn:
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            stmt = sa.delete(t).where(t.c.decision_id.in_(chunk), seq < watermark)
            deleted += conn.execute(stmt).rowcount or 0
    return deleted
