"""``tabguard monitor update --engine spark --source ARCHIVE``: the bucket store from Parquet.

The archive that ``tabguard log export --format parquet`` writes is read by Spark; the
executors count and sketch, the driver merges the small result into the same bucket store as
the in-process engine (:mod:`tabguard.monitoring._update`):

* counts per bucket and segment of ``status|decision``, guard actions, validation errors,
  probing signals and categories of categorical columns (weighted, like the in-process
  engine, by the requests a summary row of the service stands for);
* per numeric raw attribute, model feature, score and latency: rows, missing, invalid, sum and
  a KLL sketch built by Spark's ``kll_sketch_agg_double`` — the DataSketches serialisation the
  Python engine stores, so both engines' sketches merge (``tests/spark``).

Segments follow the in-process rules: ``all``, the request's segment keys, the contract's
segment features and declared combinations; which values earn their own segment is decided
by the same :class:`~tabguard.monitoring._aggregate.Admission` (frequent-items sketch), fed
with the value counts Spark returns.

Incremental and idempotent: the store's watermark is the log's commit order (``ingest_seq``)
that the archive also keeps; a run reads ``[store watermark, archive watermark)`` and merges
it in one transaction that refuses to run if the stored watermark moved. Rows of an export
still in progress (above the archive's watermark) wait for the next run.

Not summarised by this engine (the in-process engine does): the per-client probing counts
(``tabguard monitor show``'s clients table).
"""

from __future__ import annotations

import functools
import json
import logging
import operator
import time
from pathlib import Path
from typing import Any

from tabguard.errors import DataError
from tabguard.monitoring._aggregate import _FIELD_ACTIONS, KEYS, Admission, MonitorPlan
from tabguard.monitoring._clock import Clock, SystemClock
from tabguard.monitoring._config import MonitorConfig
from tabguard.monitoring._delta import MISSING, OTHER, SUMMARY_LEVELS, Delta
from tabguard.monitoring._parse import canonical_label
from tabguard.monitoring._sketch import QuantileSketch
from tabguard.monitoring._store import (
    F_CATEGORY,
    F_GUARD,
    F_PROBING,
    F_STATUS_DECISION,
    F_VIOLATION,
    SqlMonitorStore,
    open_monitor_store,
)
from tabguard.monitoring._update import (
    SourceMismatchError,
    UpdateResult,
    load_plan,
    run_exclusive,
)
from tabguard.monitoring._window import from_epoch
from tabguard.spark._session import functions, spark_session

log = logging.getLogger("tabguard.monitoring")

#: The archive's state file (watermark), see :mod:`tabguard.archive._export`.
_STATE_FILE = "_tabguard_archive.json"
_PURPOSE = "`tabguard monitor update --engine spark`"


def archive_watermark(source: Path) -> int:
    """The archive's commit-order position: every row below it is in the archive.

    Raises
    ------
    DataError
        ``source`` is not an archive written by ``tabguard log export --format parquet``.
    """
    state_path = source / _STATE_FILE
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
        return int(state["watermark"])
    except FileNotFoundError:
        raise DataError(
            f"{source}: no {_STATE_FILE}; --source must be an archive written by "
            "`tabguard log export --format parquet`"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{state_path}: unreadable archive state ({exc})") from None


def update_from_archive(
    config: MonitorConfig,
    source: str | Path,
    *,
    store: SqlMonitorStore | None = None,
    plan: MonitorPlan | None = None,
    master: str | None = None,
    clock: Clock | None = None,
    reset: bool = False,
) -> UpdateResult:
    """Fold the archived rows above the store's watermark into the store, with Spark.

    Parameters
    ----------
    config : MonitorConfig
        The store, the bucket width, the sketch ``k`` and the segment rules.
    source : path
        The Parquet archive (``tabguard log export --format parquet``).
    store : SqlMonitorStore, optional
        Default: ``config.store_url()``.
    plan : MonitorPlan, optional
        Default: from ``config.model`` (must be the model the archive was exported with).
    master : str, optional
        Spark master (default: the active session's, else ``local[*]``).
    clock : Clock, optional
        Time of segment admissions.
    reset : bool, default False
        Empty the store and rebuild it from the whole archive, under one hold of the updater
        lock (no other updater can write between the emptying and the rebuild).

    Returns
    -------
    UpdateResult
        ``busy=True`` when another updater holds the store's lock (without ``reset``).

    Raises
    ------
    UpdaterBusyError
        With ``reset``: another updater holds the lock (nothing was emptied).
    SourceMismatchError
        The store was filled from another log or archive.
    DataError
        ``source`` is not an archive.
    """
    started = time.perf_counter()
    root = Path(source).resolve()
    high = archive_watermark(root)
    clock = clock or SystemClock()
    own_store = store is None
    store = store or open_monitor_store(config.store_url(), bucket=config.bucket)
    try:
        plan = plan or load_plan(config)

        def run() -> UpdateResult:
            return _run(config, store, plan, root, high, clock, master, started)

        if reset:
            # A rebuild that cannot take the lock is refused, not "nothing to do".
            with store.updater_lock():
                store.reset()
                return run()
        return run_exclusive(store, started, run)
    finally:
        if own_store:
            store.close()


def _run(
    config: MonitorConfig,
    store: SqlMonitorStore,
    plan: MonitorPlan,
    root: Path,
    high: int,
    clock: Clock,
    master: str | None,
    started: float,
) -> UpdateResult:
    source = f"archive:{root}"
    known = store.get_state("source")
    if known is not None and known != source:
        raise SourceMismatchError(
            f"{store.what} was filled from {known}, not {source}; use another store, or "
            "rebuild this one with `tabguard monitor update --engine spark --reset`"
        )
    watermark = store.watermark()
    low = int(watermark["seq"]) if isinstance(watermark, dict) else 0
    bucket = int(config.bucket.total_seconds())
    newest = store.get_state("max_timestamp")
    if low >= high:
        latest = None if newest is None else from_epoch((int(newest) // bucket) * bucket)
        return UpdateResult(
            watermark=watermark, seconds=time.perf_counter() - started, latest=latest
        )
    agg = config.aggregation
    admission = Admission.load(
        store.admitted_segments(),
        store.state_items("frequent:"),
        agg,
        preset={**plan.preset_values(), **agg.segments.values},
    )
    spark = spark_session(master, purpose=_PURPOSE)
    sf = functions(_PURPOSE)
    frame = spark.read.option("basePath", str(root)).parquet(str(root))
    frame = frame.where((sf.col("ingest_seq") >= low) & (sf.col("ingest_seq") < high))
    frame = frame.withColumn("_epoch", sf.unix_timestamp("timestamp"))
    frame = frame.withColumn("_bucket", sf.floor(sf.col("_epoch") / bucket) * bucket)
    columns = set(frame.columns)
    segments = _segment_columns(sf, frame, plan, config, admission, columns)
    frame = frame.withColumn(
        "_seg",
        sf.explode(
            sf.array(
                *(sf.struct(sf.lit(key).alias("k"), value.alias("v")) for key, value in segments)
            )
        ),
    )
    delta, per_bucket, lo_epoch, hi_epoch = _delta(sf, frame, plan, agg.sketch_k, columns)
    rows = sum(per_bucket.values())
    late = 0
    if newest is not None and lo_epoch is not None:
        # Buckets start on multiples of the width: a row is late when its bucket is older.
        cut = (int(newest) // bucket) * bucket
        late = sum(n for b, n in per_bucket.items() if b < cut)
    if hi_epoch is not None:
        newest = hi_epoch if newest is None else max(int(newest), hi_epoch)
    state: dict[str, Any] = {**admission.state(), "source": source}
    if newest is not None:
        state["max_timestamp"] = int(newest)
    new_mark = {"seq": high}
    store.merge(
        delta,
        watermark=new_mark,
        expected=watermark,
        state=state,
        admitted=list(admission.new),
        at=clock.now(),
    )
    latest = None if newest is None else from_epoch((int(newest) // bucket) * bucket)
    return UpdateResult(
        rows=rows,
        late_rows=late,
        batches=1,
        watermark=new_mark,
        seconds=time.perf_counter() - started,
        latest=latest,
    )


def _label(sf: Any, frame: Any, column: str) -> Any:
    """A raw attribute as the segment label the in-process engine uses (``2.0`` -> ``"2"``)."""
    kind = dict(frame.dtypes)[column]
    col = sf.col(column)
    if kind == "string":
        return col
    whole = sf.isnotnull(col) & (col == sf.floor(col)) & (sf.abs(col) < 2**53)
    return sf.when(whole, col.cast("bigint").cast("string")).otherwise(col.cast("string"))


def _counts(frame: Any, value: Any, sf: Any) -> dict[str, int]:
    """Rows per non-null value of ``value``."""
    rows = frame.select(value.alias("v")).where(sf.col("v").isNotNull()).groupBy("v").count()
    return {str(r["v"]): int(r["count"]) for r in rows.collect()}


def _mapped(sf: Any, value: Any, admitted: set[str]) -> Any:
    """``value`` if admitted, ``other`` if not, ``(missing)`` when null (Admission.map)."""
    keep = sorted(admitted)
    return (
        sf.when(value.isNull(), sf.lit(MISSING))
        .when(value.isin(keep) if keep else sf.lit(False), value)
        .otherwise(sf.lit(OTHER))
    )


def _segment_columns(
    sf: Any,
    frame: Any,
    plan: MonitorPlan,
    config: MonitorConfig,
    admission: Admission,
    columns: set[str],
) -> list[tuple[str, Any]]:
    """``(segment key, column expression)`` pairs, values admitted as the in-process engine
    would for one batch of these rows (the counts come from Spark, the rule is Admission's)."""
    features = list(plan.segment_features)
    # A segment feature without its own typed column (columns.raw leaves it out) is among the
    # attributes the archive keeps as JSON text in raw_other.
    other = sf.from_json(sf.col("raw_other"), "map<string,string>")
    labels = {
        name: _label(sf, frame, f"raw_{name}")
        if f"raw_{name}" in columns
        else sf.element_at(other, sf.lit(name))
        for name in features
    }
    # One pass over the rows counts every request key's and segment feature's values.
    entries = sf.transform(
        sf.map_entries("segment"),
        lambda e: sf.struct(
            sf.lit("key").alias("t"),
            sf.substring(e["key"], 1, 128).alias("k"),
            e["value"].alias("v"),
        ),
    )
    labelled = sf.array(
        *(
            sf.struct(sf.lit("feature").alias("t"), sf.lit(n).alias("k"), labels[n].alias("v"))
            for n in features
        )
    )
    pairs = (
        frame.select(sf.explode(sf.concat(entries, labelled)).alias("e"))
        .groupBy(sf.col("e.t").alias("t"), sf.col("e.k").alias("k"), sf.col("e.v").alias("v"))
        .count()
        .collect()
    )
    values: dict[tuple[str, str], dict[str, int]] = {}
    key_counts: dict[str, int] = {}
    for r in pairs:
        if r["t"] == "key":
            key_counts[r["k"]] = key_counts.get(r["k"], 0) + int(r["count"])
        if r["v"] is not None:
            values.setdefault((r["t"], r["k"]), {})[str(r["v"])] = int(r["count"])
    wanted = config.aggregation.segments.request_keys
    if wanted == "all":
        # Admit request keys by how many rows carry them (a flood of random keys stays out).
        tracked = sorted(admission.observe(KEYS, key_counts))
    else:
        tracked = list(wanted)
    raw_values: dict[str, Any] = {key: sf.element_at("segment", sf.lit(key)) for key in tracked}
    counted: dict[str, dict[str, int]] = {k: values.get(("key", k), {}) for k in tracked}
    for name in features:
        if name not in raw_values:  # a request key of the same name wins
            raw_values[name] = labels[name]
            counted[name] = values.get(("feature", name), {})
    out: list[tuple[str, Any]] = [("all", sf.lit("all"))]
    for key, value in raw_values.items():
        have = admission.observe(key, counted[key])
        out.append((key, _mapped(sf, value, have)))
    for combo in plan.combinations:
        parts = [raw_values.get(k) for k in combo]
        if any(p is None for p in parts):
            continue
        joined = sf.concat_ws("*", *(sf.coalesce(p, sf.lit(MISSING)) for p in parts))
        key = "*".join(combo)
        have = admission.observe(key, _counts(frame, joined, sf))
        out.append((key, _mapped(sf, joined, have)))
    return out


def _numeric(
    sf: Any, plan: MonitorPlan, columns: set[str]
) -> list[tuple[str, str, Any, Any, Any, Any]]:
    """``(kind, column, value, domain, missing, invalid)`` expressions of each numeric column.

    Raw attributes: every row is in the domain; a value of the wrong type is null in its typed
    column and kept in ``raw_other`` (invalid), an absent one is missing. Model features: rows
    with any feature (refused requests have none). Score and latency: every row.
    """
    out = []
    raw_other = (
        sf.from_json(sf.col("raw_other"), "map<string,string>")
        if "raw_other" in columns
        else sf.create_map().cast("map<string,string>")
    )
    yes = sf.lit(True)
    for spec in plan.raw:
        name = f"raw_{spec.name}"
        if spec.type != "number" or name not in columns:
            continue
        value = sf.col(name)
        invalid = sf.coalesce(sf.map_contains_key(raw_other, sf.lit(spec.name)), sf.lit(False))
        out.append(("raw", spec.name, value, yes, value.isNull() & ~invalid, invalid))
    has_features = _has_features(sf, plan, columns)
    for spec in plan.features:
        name = f"feature_{spec.name}"
        if spec.type != "number" or name not in columns:
            continue
        value = sf.col(name)
        out.append(
            (
                "feature",
                spec.name,
                value,
                has_features,
                value.isNull() & has_features,
                sf.lit(False),
            )
        )
    for name in ("score", "latency_ms"):
        value = sf.col(name)
        bad = value.isNotNull() & (sf.isnan(value) | (sf.abs(value) == float("inf")))
        out.append((name, name, value, yes, value.isNull(), bad))
    return out


def _weight(sf: Any, columns: set[str]) -> Any:
    """Requests a row stands for: a summary row of the service (unauthenticated refusals per
    source and minute) carries ``requests`` in a guard action; other rows are 1."""
    if "guard_actions" not in columns:
        return sf.lit(1).cast("long")
    counts = sf.filter(
        sf.transform("guard_actions", lambda a: a["requests"].try_cast("long")),
        lambda n: n.isNotNull() & (n >= 1) & (n <= 2**40),
    )
    return sf.coalesce(sf.get(counts, 0), sf.lit(1).cast("long"))


def _count_keys(sf: Any, plan: MonitorPlan, columns: set[str]) -> Any:
    """Per row, the ``(family, key)`` counters it adds to: the in-process engine's keys
    (``status|decision``, guard ``step|action|field``, validation ``field|rule`` with the
    out-of-contract guard once per field, probing signals, ``kind|column|category``)."""

    def pair(family: str, key: Any) -> Any:
        return sf.struct(sf.lit(family).alias("f"), key.alias("k"))

    decision = sf.coalesce(sf.col("decision"), sf.lit(""))
    parts = [sf.array(pair(F_STATUS_DECISION, sf.concat_ws("|", sf.col("status"), decision)))]
    if "guard_actions" in columns:

        def guard_key(a: Any) -> Any:
            action = sf.substring(sf.coalesce(a["action"], sf.lit("?")), 1, 64)
            field = sf.when(
                action.isin(*_FIELD_ACTIONS) & a["field"].isNotNull(),
                sf.substring(a["field"], 1, 128),
            ).otherwise(sf.lit(""))
            step = sf.substring(sf.coalesce(a["step"], sf.lit("?")), 1, 64)
            return pair(F_GUARD, sf.concat_ws("|", step, action, field))

        parts.append(sf.transform(sf.coalesce("guard_actions", sf.array()), guard_key))
    fields = sorted({c.name for c in plan.raw} | set(plan.segment_features))
    if "errors" in columns and fields:
        known = sf.filter(sf.coalesce("errors", sf.array()), lambda e: e["field"].isin(*fields))

        def violation(e: Any) -> Any:
            rule = sf.substring(sf.coalesce(e["rule"], sf.lit("None")), 1, 64)
            return pair(F_VIOLATION, sf.concat_ws("|", e["field"], rule))

        parts.append(sf.transform(known, violation))
        parts.append(
            sf.transform(
                sf.array_distinct(sf.transform(known, lambda e: e["field"])),
                lambda f: pair(F_GUARD, sf.concat(sf.lit("validate|out_of_contract|"), f)),
            )
        )
    if "probing" in columns:
        signals = sf.array_distinct(
            sf.transform(sf.coalesce("probing", sf.array()), lambda x: sf.substring(x, 1, 64))
        )
        parts.append(sf.transform(signals, lambda x: pair(F_PROBING, x)))
    cats = []
    has_features = _has_features(sf, plan, columns)
    for kind, prefix, specs, domain in (
        ("raw", "raw_", plan.raw, sf.lit(True)),
        ("feature", "feature_", plan.features, has_features),
    ):
        for spec in specs:
            name = f"{prefix}{spec.name}"
            if spec.type != "category" or name not in columns:
                continue
            allowed = sorted({str(canonical_label(c)) for c in spec.categories or ()})
            value = sf.col(name)
            label = sf.when(value.isNull(), sf.lit(MISSING))
            if allowed:
                label = label.when(~value.isin(*allowed), sf.lit(OTHER))
            label = label.otherwise(value)
            key = sf.concat_ws("|", sf.lit(kind), sf.lit(spec.name), label)
            cats.append(sf.when(domain, pair(F_CATEGORY, key)))
    if cats:
        parts.append(sf.filter(sf.array(*cats), lambda x: x.isNotNull()))
    return sf.concat(*parts)


def _has_features(sf: Any, plan: MonitorPlan, columns: set[str]) -> Any:
    """Rows with a model input (refused requests log none)."""
    feature_cols = [f"feature_{s.name}" for s in plan.features if f"feature_{s.name}" in columns]
    return functools.reduce(
        operator.or_, (sf.col(c).isNotNull() for c in feature_cols), sf.lit(False)
    )


def _delta(
    sf: Any, frame: Any, plan: MonitorPlan, k: int, columns: set[str]
) -> tuple[Delta, dict[int, int], int | None, int | None]:
    """The delta of the exploded rows, log rows per bucket, and their oldest/newest epoch."""
    delta = Delta(k=k)
    keys = [sf.col("_bucket"), sf.col("_seg.k").alias("sk"), sf.col("_seg.v").alias("sv")]
    weight = _weight(sf, columns)
    counted = (
        frame.select(
            *keys, weight.alias("w"), sf.explode(_count_keys(sf, plan, columns)).alias("c")
        )
        .groupBy("_bucket", "sk", "sv", sf.col("c.f").alias("f"), sf.col("c.k").alias("k"))
        .agg(sf.sum("w").alias("n"))
    )
    for r in counted.collect():
        delta.count((int(r["_bucket"]), r["sk"], r["sv"], r["f"], r["k"]), int(r["n"]))
    if not delta.counts:
        return delta, {}, None, None
    numeric = _numeric(sf, plan, columns)
    aggs = [
        sf.count(sf.lit(1)).alias("rows"),
        sf.min("_epoch").alias("lo"),
        sf.max("_epoch").alias("hi"),
    ]
    rows = 0
    per_bucket: dict[int, int] = {}
    lo_epoch: int | None = None
    hi_epoch: int | None = None
    for i, (_kind, _column, value, domain, missing, invalid) in enumerate(numeric):
        finite = sf.when(
            value.isNotNull() & ~sf.isnan(value) & (sf.abs(value) != float("inf")), value
        )
        aggs += [
            sf.sum(domain.cast("long")).alias(f"r{i}"),
            sf.sum((missing & domain).cast("long")).alias(f"m{i}"),
            sf.sum(invalid.cast("long")).alias(f"i{i}"),
            sf.sum(finite).alias(f"t{i}"),
            sf.kll_sketch_agg_double(sf.when(domain, finite), k).alias(f"s{i}"),
        ]
    for r in frame.groupBy(*keys).agg(*aggs).collect():
        b, sk, sv = int(r["_bucket"]), r["sk"], r["sv"]
        if sk == "all":
            rows += int(r["rows"])
            per_bucket[b] = int(r["rows"])
            lo_epoch = int(r["lo"]) if lo_epoch is None else min(lo_epoch, int(r["lo"]))
            hi_epoch = int(r["hi"]) if hi_epoch is None else max(hi_epoch, int(r["hi"]))
        for i, (kind, column, *_exprs) in enumerate(numeric):
            n_rows = int(r[f"r{i}"] or 0)
            if not n_rows:
                continue
            blob = bytes(r[f"s{i}"]) if r[f"s{i}"] is not None else b""
            sketch = QuantileSketch.from_bytes(blob) if blob else None
            if sketch is None or sketch.empty:
                blob, n, stats = b"", 0, [float("nan")] * (2 + len(SUMMARY_LEVELS))
            else:
                n, stats = sketch.n, sketch.summary(SUMMARY_LEVELS)
            delta.packed.append(
                (
                    (b, sk, sv, kind, column),
                    n_rows,
                    n,
                    int(r[f"m{i}"] or 0),
                    int(r[f"i{i}"] or 0),
                    float(r[f"t{i}"] or 0.0),
                    stats,
                    blob,
                )
            )
    delta.rows = rows
    return delta, per_bucket, lo_epoch, hi_epoch
