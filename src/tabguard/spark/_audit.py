"""The data audit on Apache Spark: ``tabguard audit data DATA --engine spark``.

What runs where
---------------
Spark (executors; Python workers run tabguard's own per-batch code, so values are read,
canonicalised and validated exactly as in memory):

1. a row number per row (its position in the order Spark reads the data);
2. one pass that validates every row against the contract (D1: each violation with its row)
   and counts, per feature, every value's rows and positive labels, among every row and among
   the rows that break the contract (the descriptive statistics of the valid rows are their
   difference: :mod:`tabguard.spark._describe`);
3. one pass that counts the labels of value pairs (the trigger scan's pairs, over each
   feature's most frequent values);
4. one pass that keeps the **driver sample**: every row of every candidate pattern of the
   trigger scan holding at most ``keep_rows`` rows (contract-breaking values, the best single
   values, bands and pairs, chosen by the scan's own candidate rules from the counts of every
   row) plus a uniform random share of the rest (``driver_rows`` rows in all, at least
   ``RANDOM_SHARE`` of them random, which the candidates never crowd out);
5. passes that group every row by its values on every feature but a pattern's features
   (exact copies, hashed as in memory) and sum the groups of the driver sample's rows per
   label and values of those features (:class:`_SparkCopies`): one pass per decision round
   of the trigger scan, for the patterns that reach a copy check;
6. writing ``clean.parquet`` and ``quarantine.parquet``.

The driver: the trigger scan's decision rules (the same code as in memory, fed with the
counts of every row: :class:`tabguard.data_audit._matrix.AuditMatrix` with ``population``
and ``copies``), the model-based stages on the sample (counterfactual scoring with the context
model, the copy checks' nearest-neighbour searches, label noise, RONI, near-duplicates,
disparate impact and the descriptive check's rank statistics on the sample), the descriptive
statistics of every row from the counts, the report. Its memory is bounded
by ``driver_rows`` and the number of distinct values per feature (rare values of features with
more than ``max_values`` distinct values are merged into runs holding fewer than ``min_rows``
rows, which are never candidates).

When the data holds at most ``driver_rows`` rows, the sample is every row and the results are
those of the in-memory engine.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tabguard._copy_groups import (
    CopyGroups,
    GroupEntries,
    copy_groups,
    hash_cells,
    keys_without,
    sample_entries,
)
from tabguard.contract import Contract, check_columns
from tabguard.contract._validate import FrameValidation, ViolationGroup, _canon
from tabguard.data_audit import (
    REGISTRY,
    AuditContext,
    CheckResult,
    DataCheck,
    LabelNoiseOptions,
    Treatment,
    build_context,
)
from tabguard.data_audit._audit import (
    REASON_COLUMN,
    ROW_COLUMN,
    AuditOutcome,
    _run_checks,
)
from tabguard.data_audit._descriptive import PopulationStats
from tabguard.data_audit._label_noise import TRUSTED_SCOPE, prepare_trusted
from tabguard.data_audit._matrix import AuditMatrix, pair_value_ids
from tabguard.data_audit._trigger_options import TriggerScanOptions
from tabguard.data_audit._trigger_rules import Pattern
from tabguard.data_audit._triggers import _Scanner, _top
from tabguard.errors import DataError
from tabguard.progress import NULL_PROGRESS, Progress
from tabguard.reports import Report, Section, write_report
from tabguard.spark._batches import (
    COPY_SCHEMA,
    COUNT_SCHEMA,
    KEY,
    ROW,
    Keep,
    Spec,
    Vocabulary,
    _uniform,
    copy_partition,
    count_partition,
    keep_partition,
    numeric_features,
    pair_partition,
    pattern_partition,
)
from tabguard.spark._session import functions, spark_session

#: Rows of the driver sample (every candidate pattern's rows, then random rows up to this).
DRIVER_ROWS = 100_000
#: The rows of candidate patterns the driver keeps, in multiples of ``driver_rows``: past it
#: each candidate is sampled down to about the same number of rows (:func:`_keep_level`).
KEEP_FACTOR = 3
#: The share of ``driver_rows`` reserved for random rows, whatever the candidates hold: the
#: descriptive check's rank statistics and ``--trusted``'s label scores need a uniform sample
#: of the data, which the candidates' rows (first in the sample) are not.
RANDOM_SHARE = 0.25
#: Distinct values per feature from which rare ones are merged into runs on the driver.
MAX_VALUES = 100_000
#: Copy-group entries the driver stores over every feature set (:class:`_SparkCopies`: one per
#: group of two or more rows, label and values of the set, and one per driver row in such a
#: group; a row without a copy costs nothing). Past it the copy checks of the sets asked for
#: next use the sample's own groups, and the report says so.
COPY_GROUP_ENTRIES = 6_000_000


@dataclass
class SparkAuditResult:
    """The outcome of :func:`audit_data_spark`.

    Attributes
    ----------
    report : Report
        Findings and sections (row numbers are positions in the order Spark read the data).
    rows : int
        Rows audited.
    sample_rows : int
        Rows of the driver sample the model-based stages ran on.
    quarantine : DataFrame
        ``tabguard_row`` and ``tabguard_reason`` of every quarantined row.
    treatments : list of Treatment
    paths : dict of str to Path
        What was written (``clean``, ``quarantine``, ``report``, ``findings``, ``treatments``).
    """

    report: Report
    rows: int
    sample_rows: int
    quarantine: pd.DataFrame
    treatments: list[Treatment] = field(default_factory=list)
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def suspicious_rows(self) -> list[int]:
        """Row numbers suspected of poisoning."""
        return self.report.suspicious_rows

    def exit_code(self) -> int:
        """0 without critical findings, 1 with at least one."""
        return self.report.exit_code()


# -- the driver ------------------------------------------------------------------------------


def _read(spark: Any, source: str) -> Any:
    path = Path(source)
    if path.exists():
        return spark.read.parquet(str(path))
    if "/" in source or source.endswith(".parquet"):
        raise DataError(f"DATA {source!r}: no such Parquet file or directory")
    return spark.table(source)


def _shipped(spark: Any, value: Any) -> Any:
    """``value`` as a broadcast variable for the per-batch code (read as ``.value``).

    A value a ``mapInPandas`` closure captures is pickled into the stage's task binary, which
    every task of the stage sends to its Python worker to unpickle: the vocabulary (every value
    of every feature, up to ``max_values`` each), the keep rules and the driver rows' keys are
    megabytes on large data (~1 MB per stage already on 3,300 rows). A broadcast variable is
    sent once per executor and unpickled once per Python worker; the task binary keeps the
    contract and a handle (~10 KB). The caller destroys it (``destroy()``) when its passes are
    done.
    """
    return spark.sparkContext.broadcast(value)


def _with_row_numbers(spark: Any, df: Any) -> Any:
    """The data with a row number: its position in the order Spark reads it (partition by
    partition; for one Parquet file, the file's order)."""
    sf = functions()
    tagged = df.withColumn("_tg_mid", sf.monotonically_increasing_id())
    sizes = (
        tagged.select((sf.col("_tg_mid") / sf.lit(2**33)).cast("long").alias("part"))
        .groupBy("part")
        .count()
        .collect()
    )
    offsets, total = {}, 0
    for r in sorted(sizes, key=lambda r: r["part"]):
        offsets[int(r["part"])] = total
        total += int(r["count"])
    table = spark.createDataFrame(list(offsets.items()) or [(0, 0)], "part long, offset long")
    joined = tagged.withColumn("part", (sf.col("_tg_mid") / sf.lit(2**33)).cast("long")).join(
        sf.broadcast(table), "part"
    )
    row = sf.col("offset") + (sf.col("_tg_mid") - sf.col("part") * sf.lit(2**33))
    return joined.withColumn(ROW, row).drop("_tg_mid", "part", "offset"), total


def _vocabulary(counts_dir: Path, contract: Contract, min_rows: int, max_values: int) -> Vocabulary:
    """The values of every feature from the aggregated counts (rare runs merged)."""
    import pyarrow.parquet as pq

    names = contract.model_features()
    numeric = numeric_features(contract)
    ordinal = [
        numeric[j] and contract.features[name].type != "boolean" for j, name in enumerate(names)
    ]
    vocab = Vocabulary(names, numeric, ordinal, [], [], [], [], [], [])
    for j, name in enumerate(names):
        spec = contract.features[name]
        t = pq.read_table(counts_dir, filters=[("j", "=", j)], columns=["num", "key", "n", "pos"])
        part = t.to_pandas()
        del t
        edges: np.ndarray | None = None
        lookup: dict[Any, int] = {}
        if numeric[j]:
            part = part.sort_values("num", kind="stable")
            u = part["num"].to_numpy(dtype=float)
            n = part["n"].to_numpy(dtype=np.int64)
            pos = part["pos"].to_numpy(dtype=np.int64)
            if len(u) > max_values:
                u, n, pos, edges = _merge_rare(u, n, pos, min_rows)
            lo = -math.inf if spec.min is None else spec.min
            hi = math.inf if spec.max is None else spec.max
            brk = (u < lo) | (u > hi)
            if spec.type == "integer":
                brk |= u != np.round(u)
        else:
            keys = [tuple(json.loads(k)) for k in part["key"]]
            n_by: dict[Any, int] = {}
            pos_by: dict[Any, int] = {}
            for k, a, b in zip(keys, part["n"], part["pos"], strict=True):
                n_by[k] = n_by.get(k, 0) + int(a)
                pos_by[k] = pos_by.get(k, 0) + int(b)
            order = sorted(n_by, key=repr)
            lookup = {k: i for i, k in enumerate(order)}
            u = np.array([k[1] for k in order], dtype=object)
            n = np.array([n_by[k] for k in order], dtype=np.int64)
            pos = np.array([pos_by[k] for k in order], dtype=np.int64)
            allowed = {_canon(c) for c in spec.categories or []}
            brk = np.array([k not in allowed for k in order], dtype=bool)
        vocab.uniques.append(u)
        vocab.counts.append(n)
        vocab.positives.append(pos.astype(float))
        vocab.breaks.append(brk)
        vocab.edges.append(edges)
        vocab.lookup.append(lookup)
    return vocab


def _merge_rare(
    u: np.ndarray, n: np.ndarray, pos: np.ndarray, min_rows: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Merge runs of neighbouring values holding fewer than ``min_rows`` rows each into one id
    holding fewer than ``min_rows`` rows (never a candidate); frequent values stay alone.

    Returns the ids' values (a run's first value), counts, positives and first values (the
    edges a value is looked up in).
    """
    starts = np.zeros(len(u), dtype=bool)
    run = 0
    counts = n.tolist()
    for i, c in enumerate(counts):
        if i == 0 or c >= min_rows or counts[i - 1] >= min_rows or run + c >= min_rows:
            starts[i] = True
            run = c
        else:
            run += c
    ids = np.cumsum(starts) - 1
    k = int(ids[-1]) + 1 if len(ids) else 0
    first = u[starts]
    return (
        first,
        np.bincount(ids, weights=n, minlength=k).astype(np.int64),
        np.bincount(ids, weights=pos, minlength=k),
        first,
    )


def _candidates(
    vocab: Vocabulary, n: int, opts: TriggerScanOptions, pairs: dict[tuple[int, int], np.ndarray]
) -> list[Pattern]:
    """The trigger scan's candidate patterns from the counts of every row (its own rules:
    single values, bands and pairs before any is flagged, a superset of those it tests)."""
    m = _population_matrix(vocab, n, np.empty((0, len(vocab.names)), dtype=np.int32), {}, pairs)
    base1 = float(vocab.positives[0].sum()) / max(n, 1) if vocab.positives else 0.0
    sc = _Scanner.without_rows(m, n, base1, opts)  # the candidate rules read counts only
    out = _top(sc.without_leaks(sc.singles()), opts.max_candidates)
    out += _top(sc.without_leaks(sc.bands(set())), opts.max_bands) if opts.max_bands else []
    out += _top(sc.without_leaks(sc.pairs(set())), opts.max_candidates)
    return out


class _SparkCopies:
    """``AuditMatrix.copies`` of the Spark engine: every row grouped by its values on every
    feature but a few, as the driver's rows see it.

    Spark hashes every row as :func:`tabguard.data_audit._matrix.cell_hashes` does (the same
    value ids, so the same groups as in memory), keeps the rows whose key is one of the driver
    rows' keys, and sums their rows per group, label and values of the left-out features; the
    driver collects the groups holding at least two rows (counts, not rows) and stores nothing
    for a driver row without a copy (:class:`tabguard._copy_groups.CopyGroups`). Sets are
    grouped when the trigger scan asks: the sets of the patterns of one decision round in one
    pass (:meth:`prefetch`), a set asked for alone in a pass of its own.

    The driver stores at most ``budget`` entries (compositions and the held rows in them) over
    every set. A pass that would go past it is not stored: its sets, and every set asked for
    afterwards, use the sample's own groups (copies among the held rows only), and
    :attr:`fallback` names them for the report.
    """

    def __init__(
        self,
        feed: Any,
        contract: Contract,
        vocab: Vocabulary,
        codes: np.ndarray,
        y: np.ndarray,
        budget: int,
        shipped_vocab: Any = None,
    ):
        self.feed, self.contract, self.vocab = feed, contract, vocab
        # the vocabulary as a broadcast variable (its owner destroys it), else in the closure
        self.shipped_vocab = shipped_vocab
        self.codes, self.y = codes, np.asarray(y)
        self.cells, self.total = hash_cells(codes)
        self.groups: dict[tuple[int, ...], CopyGroups] = {}
        self.budget = budget
        self.stored = 0
        self.passes = 0
        self.fallback: list[tuple[int, ...]] = []
        self._lock = threading.RLock()

    @property
    def over_budget(self) -> bool:
        """Whether some feature set uses the sample's own groups."""
        return bool(self.fallback)

    def prefetch(self, sets: Sequence[tuple[int, ...]]) -> None:
        """Group every row on every feature but each of ``sets``, in one pass."""
        with self._lock:
            todo = sorted({tuple(sorted(c)) for c in sets} - set(self.groups))
            if not todo:
                return
            room = self.budget - self.stored
            keys = [keys_without(self.cells, self.total, c) for c in todo]
            built: list[CopyGroups] | None = None
            if not self.fallback and room > 0:
                found = self._collect(todo, keys, room)
                if found is not None:
                    built = [
                        copy_groups(c, k, self.codes, self.y, e)
                        for c, k, e in zip(todo, keys, found, strict=True)
                    ]
                    if sum(g.stored for g in built) > room:
                        built = None  # the held rows in the groups do not fit either
            if built is None:
                # past the budget: the sample's own groups (bounded by the sample, as in memory)
                built = [
                    copy_groups(c, k, self.codes, self.y, sample_entries(k, self.codes, self.y, c))
                    for c, k in zip(todo, keys, strict=True)
                ]
                self.fallback += todo
            for c, g in zip(todo, built, strict=True):
                self.groups[c] = g
                self.stored += g.stored

    def _collect(
        self, todo: list[tuple[int, ...]], keys: list[np.ndarray], room: int
    ) -> list[GroupEntries] | None:
        """One pass over every row: per set of ``todo``, the groups holding a driver row (of
        ``keys``) and at least two rows; None past ``room`` entries."""
        sf = functions()
        from pyspark.sql import Window

        contract = self.contract
        spark = self.feed.sparkSession
        vocab = self.shipped_vocab or _shipped(spark, self.vocab)
        # the driver rows' keys: megabytes when the sample is large (see _shipped)
        wanted = _shipped(spark, [np.unique(k) for k in keys])
        try:
            raw = self.feed.mapInPandas(
                lambda it: copy_partition(it, contract, vocab.value, todo, wanted.value),
                COPY_SCHEMA,
            )
            entries = raw.groupBy("s", "key", "label", "cells").agg(sf.sum("n").alias("n"))
            size = sf.sum("n").over(Window.partitionBy("s", "key"))
            entries = entries.withColumn("size", size).where("size >= 2").drop("size")
            # (Arrow: no Python object per entry on the driver)
            table = entries.limit(room + 1).toArrow()
        finally:
            wanted.destroy()
            if vocab is not self.shipped_vocab:
                vocab.destroy()
        self.passes += 1
        if table.num_rows > room:
            return None
        return _entries_by_set(table, [len(c) for c in todo])

    def __call__(self, cols: tuple[int, ...]) -> CopyGroups:
        with self._lock:
            self.prefetch([cols])
            return self.groups[tuple(sorted(cols))]


def _entries_by_set(table: Any, widths: list[int]) -> list[GroupEntries]:
    """Split collected copy-group entries (Arrow: ``s``, ``key``, ``label``, ``cells`` (int32
    bytes), ``n``) by feature set, without a Python object per entry."""
    s = table.column("s").to_numpy()
    key = table.column("key").to_numpy().astype(np.int64).view(np.uint64)
    label = table.column("label").to_numpy().astype(np.int64)
    n = table.column("n").to_numpy().astype(np.int64)
    cells = table.column("cells").combine_chunks()
    off, data = (
        (np.zeros(1, dtype=np.int64), np.empty(0, dtype=np.uint8))
        if len(cells) == 0
        else (
            np.frombuffer(cells.buffers()[1], dtype=np.int32)[
                cells.offset : cells.offset + len(cells) + 1
            ].astype(np.int64),
            np.frombuffer(cells.buffers()[2], dtype=np.uint8),
        )
    )
    out = []
    for i, w in enumerate(widths):
        rows = np.flatnonzero(s == i)
        at = off[rows][:, None] + np.arange(4 * w, dtype=np.int64)[None, :]
        vals = np.ascontiguousarray(data[at]).view("<i4").reshape(len(rows), w)
        out.append(GroupEntries(key[rows], label[rows], vals.astype(np.int32), n[rows]))
    return out


def _population_matrix(
    vocab: Vocabulary,
    n: int,
    codes: np.ndarray,
    raw_numeric: Mapping[str, np.ndarray],
    pairs: dict[tuple[int, int], np.ndarray],
    copies: _SparkCopies | None = None,
) -> AuditMatrix:
    """An :class:`AuditMatrix` of the sample rows ``codes`` with every row's counts."""
    d = len(vocab.names)
    k = len(codes)
    raw = np.empty((k, d), dtype=np.float64)
    rank = np.empty((k, d), dtype=np.float32)
    is_code = np.array([not x for x in vocab.numeric], dtype=bool)
    ordinal = np.array(vocab.ordinal, dtype=bool)
    for j, name in enumerate(vocab.names):
        c = codes[:, j]
        cnt = vocab.counts[j]
        mid = ((np.cumsum(cnt) - cnt / 2.0) / max(n, 1)).astype(np.float32)
        rank[:, j] = np.where(c >= 0, mid[np.maximum(c, 0)] if len(mid) else 0.0, -1.0)
        if is_code[j]:
            raw[:, j] = np.where(c >= 0, c, np.nan)
        else:
            x = raw_numeric.get(name, np.full(k, np.nan))
            raw[:, j] = np.where(np.isfinite(x), x, np.nan)
    return AuditMatrix(
        list(vocab.names),
        np.asfortranarray(codes),
        vocab.uniques,
        vocab.counts,
        ordinal,
        vocab.breaks,
        raw,
        rank,
        is_code,
        population=n,
        positives=vocab.positives,
        pair_counts=pairs,
        copies=copies,
    )


#: Valid rows of the driver sample's uniform share below which the descriptive check's rank
#: statistics read the whole driver sample (candidate patterns' rows first: not uniform).
MIN_UNIFORM_ROWS = 1_000


def _describe_every_row(counts_dir: Path, contract: Contract, parsed: Any) -> PopulationStats:
    """The descriptive statistics of every valid row, from the counting pass's counts."""
    from tabguard.data_audit._descriptive import DescriptiveOptions
    from tabguard.spark._describe import population_stats, totals

    opts = parsed.get(DescriptiveOptions.check)
    n_bins = opts.n_bins if isinstance(opts, DescriptiveOptions) else DescriptiveOptions().n_bins
    n, pos, bad, bad_pos = totals(counts_dir / "raw")
    stats = population_stats(counts_dir, contract, n - bad, pos - bad_pos, n_bins)
    return PopulationStats(n - bad, pos - bad_pos, n, stats, np.zeros(0, dtype=bool))


def _trusted_scope(ctx: AuditContext, uniform: np.ndarray, n: int) -> list[str]:
    """Score the labels of the driver sample's uniform share against the trusted sample (the
    rest of the sample, every candidate pattern's rows, is no sample of the data: its flag
    counts and label rates would be compared with the trusted rows' as if it were); what the
    report says of it."""
    if ctx.trusted is None:
        return []
    k = int(uniform.sum())
    if k == len(uniform) and k == n:
        return []  # the sample is every row: as in memory
    if k < MIN_UNIFORM_ROWS:
        ctx.trusted = None
        return [
            f"The labels were not scored against the trusted sample: the driver sample's "
            f"random rows number {k:,} (fewer than {MIN_UNIFORM_ROWS:,}; the rest of the sample "
            "is the trigger scan's candidate patterns, not a sample of the data). Raise "
            "--driver-rows, or audit with --engine python."
        ]
    ctx.cache[TRUSTED_SCOPE] = uniform
    return [
        f"The labels of the driver sample's {k:,} random rows (a uniform sample of the {n:,} "
        f"rows) were scored against the {len(ctx.trusted):,} trusted rows: the flagged share "
        "and its excess over clean data estimate those of every row; flipped rows among the "
        "other rows are not named."
    ]


def _with_uniform(
    described: PopulationStats, uniform: np.ndarray, valid: np.ndarray
) -> PopulationStats:
    """``described`` with the driver sample's uniform share (the rows drawn at random by
    :func:`tabguard.spark._batches.keep_partition`, whatever else kept them)."""
    if int((uniform & valid).sum()) >= MIN_UNIFORM_ROWS:
        return replace(described, uniform=uniform)
    return replace(
        described,
        uniform=np.ones(len(uniform), dtype=bool),
        uniform_text=(
            "the driver sample (every row of the trigger scan's candidate patterns first, so not "
            "uniform: its random share held too few rows)"
        ),
    )


def _keep_level(keys: np.ndarray, budget: int) -> float:
    """The level below which the driver keeps a candidate's row (:class:`Keep`'s keys): the
    rows kept of the candidates (keys >= 0; random rows, -1, are always kept) number at most
    ``budget``. ``inf`` when every candidate's rows fit, so every candidate is whole."""
    held = keys[keys >= 0]
    if len(held) <= budget:
        return math.inf
    return float(np.partition(held, budget)[budget])


def _level_text(level: float, held: int, keep_rows: int, keep_total: int) -> list[str]:
    """What the report says of candidates sampled down (nothing when every one is whole)."""
    if math.isinf(level):
        return []
    return [
        f"The candidate patterns of at most {keep_rows:,} rows held {held:,} rows, more than "
        f"the {keep_total:,} the driver keeps of them: each candidate was sampled down to about "
        f"{level:,.0f} of its rows (those smaller stayed whole). Triggers whose labels decide "
        "got their other rows from Spark; a diluted trigger's copies were looked for among its "
        "sampled rows."
    ]


def _keep_rules(
    vocab: Vocabulary, candidates: list[Pattern], keep_rows: int, share: float, seed: int
) -> Keep:
    """The keep keys' inputs: per value id and pair, the rows of its smallest candidate holding
    at most ``keep_rows`` rows (larger ones: the random share holds enough of their rows)."""
    values = [np.zeros(len(c), dtype=np.float64) for c in vocab.counts]
    pairs: list[tuple[int, int, int, int, int]] = []

    def smallest(v: np.ndarray, n: int) -> np.ndarray:
        return np.where(v > 0, np.minimum(v, n), n)

    for p in candidates:
        if p.n > keep_rows:
            continue
        if p.band is not None:
            j, lo, hi = p.cols[0], p.band[0], p.band[1] + 1
            values[j][lo:hi] = smallest(values[j][lo:hi], p.n)
        elif len(p.cols) == 1:
            j, c = p.cols[0], p.codes[0]
            values[j][c] = smallest(values[j][c : c + 1], p.n)[0]
        else:
            pairs.append((p.cols[0], p.codes[0], p.cols[1], p.codes[1], max(p.n, 1)))
    return Keep(values, pairs, share, seed)


def _complete_triggers(
    feed: Any,
    contract: Contract,
    vocab: Vocabulary,
    triggers: list[Pattern],
    opts: TriggerScanOptions,
    results: dict[str, CheckResult],
    shipped_vocab: Any = None,
) -> None:
    """Every row of a trigger larger than its rows in the driver sample, from Spark.

    ``shipped_vocab``: ``vocab`` as a broadcast variable (:func:`_shipped`), if there is one.

    A trigger whose labels alone decide (its suspects are every row with its label; with the
    other label too where a value breaks the contract, as :meth:`_Scanner.suspect_rows`) gets
    its suspects from a pass over every row. A diluted trigger's suspects are its copies: those
    the sample holds (see docs/spark.md).
    """
    res = results["trigger_scan"]
    specs: list[Spec] = []
    which: list[int] = []
    for i, p in enumerate(triggers):
        if p.n <= len(p.rows) or not (p.effect >= opts.strong_effect or p.twin_share is None):
            continue
        if p.copies_only:  # natural carriers share its label: its copies alone (in the sample)
            continue
        cells = [
            (j, *(p.band if p.band is not None and k == 0 else (c, c)))
            for k, (j, c) in enumerate(zip(p.cols, p.codes, strict=True))
        ]
        breaks = any(
            vocab.breaks[j][c] for j, c in [*zip(p.cols, p.codes, strict=True), *p.companions]
        )
        specs.append((tuple(cells), None if breaks else p.label))
        which.append(i)
    if not specs:
        return
    shipped = shipped_vocab or _shipped(feed.sparkSession, vocab)
    try:
        found = feed.mapInPandas(
            lambda it: pattern_partition(it, contract, shipped.value, specs), "row long, spec int"
        ).toPandas()
    finally:
        if shipped is not shipped_vocab:
            shipped.destroy()
    extra: set[int] = set()
    for k, i in enumerate(which):
        got = found.loc[found["spec"] == k, "row"].to_numpy(dtype=np.int64)
        finding, treatment = res.findings[i], res.treatments[i]
        reason = treatment.reason
        new = np.setdiff1d(got, np.asarray(finding.rows, dtype=np.int64))
        finding.rows = sorted([*finding.rows, *new.tolist()])
        treatment.rows = np.union1d(treatment.rows, new)
        for r in new.tolist():
            res.quarantine.setdefault(int(r), reason)
        extra.update(new.tolist())
    res.suspicious_rows = np.union1d(
        np.asarray(res.suspicious_rows, dtype=np.int64), np.array(sorted(extra), dtype=np.int64)
    )


def _run_checks_lean(
    ctx: AuditContext, checks: Mapping[str, type[DataCheck]]
) -> tuple[dict[str, CheckResult], dict[str, float]]:
    """The sample's checks one after the other, as ``_run_checks(ctx, checks, 1)``, but the
    columns the descriptive check prepared (a float copy of every numeric feature of the valid
    rows, cached for the bias check) are dropped when it is done: the bias check, last,
    prepares them again (the same columns: the same results), so they are not held through
    the trigger scan, where the driver peaks (docs/spark.md, "Memory").
    """
    results: dict[str, CheckResult] = {}
    timings: dict[str, float] = {}
    for name, check in checks.items():
        got, took = _run_checks(ctx, {name: check}, 1)
        results.update(got)
        timings.update(took)
        if name == "descriptive":
            ctx.cache.pop("columns", None)
    return results, timings


def _remap(result: CheckResult, rows: np.ndarray) -> CheckResult:
    """A sample check's result with row numbers of the whole data."""
    for f in result.findings:
        f.rows = [int(rows[r]) for r in f.rows]
    result.suspicious_rows = rows[np.asarray(result.suspicious_rows, dtype=np.int64)]
    result.quarantine = {int(rows[r]): why for r, why in result.quarantine.items()}
    for t in result.treatments:
        t.rows = rows[np.asarray(t.rows, dtype=np.int64)]
    return result


def _read_sample(sample_dir: Path, level: float = math.inf) -> pd.DataFrame:
    """The driver sample Spark wrote (the rows whose keep key is below ``level``), in row
    order, as a frame.

    Read filtered (batch by batch: the rows above the level are never held), sorted as an
    Arrow table (a permutation, skipped when Spark wrote the rows in order), then converted
    column by column with each Arrow column freed once converted: the driver never holds the
    table and the whole frame, nor two frames (sorting a frame copies it).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(sample_dir, filters=[(KEY, "<", level)])
    table = table.drop_columns([KEY]) if KEY in table.column_names else table
    row = table.column(ROW).to_numpy()
    if len(row) > 1 and not bool(np.all(row[1:] > row[:-1])):
        table = table.take(pa.array(np.argsort(row, kind="stable")))
    del row
    frame = table.to_pandas(self_destruct=True, split_blocks=True)
    del table
    pa.default_memory_pool().release_unused()  # the table's buffers, freed above
    return frame


def _integrity(contract: Contract, counts_dir: Path, n: int, options: Any) -> CheckResult:
    """The integrity check of every row, from the violations Spark found."""
    import pyarrow.parquet as pq

    from tabguard.data_audit._integrity import IntegrityCheck

    t = pq.read_table(
        counts_dir, filters=[("kind", "=", "x")], columns=["row", "field", "rule", "message", "key"]
    ).to_pandas()
    val = FrameValidation(n_rows=n)
    for (fld, rule), g in t.groupby(["field", "rule"], sort=False):
        examples: list[Any] = []
        for e in g["key"].dropna():
            examples += json.loads(e)
        val.groups.append(
            ViolationGroup(
                str(fld),
                str(rule),
                np.sort(g["row"].to_numpy(dtype=np.int64)),
                examples[:5],
                str(g["message"].iloc[0]),
            )
        )
    ctx = AuditContext(
        data=pd.DataFrame(index=pd.RangeIndex(n)),
        contract=contract,
        y=np.empty(0, dtype=np.int8),
        validation=val,
        valid=np.empty(0, dtype=bool),
        transform=None,  # type: ignore[arg-type]  # unused by the integrity check
        options=options,
    )
    return IntegrityCheck().run(ctx)


def audit_data_spark(
    source: str | Path,
    contract: Contract,
    out_dir: str | Path,
    *,
    master: str | None = None,
    checks: Sequence[str] | None = None,
    random_state: int = 0,
    options: Mapping[str, Any] | None = None,
    driver_rows: int = DRIVER_ROWS,
    keep_rows: int | None = None,
    keep_total: int | None = None,
    max_values: int = MAX_VALUES,
    progress: Progress | None = None,
    trusted: pd.DataFrame | None = None,
) -> SparkAuditResult:
    """Audit a Parquet data set (or a table) with Spark; see the module docstring.

    Parameters
    ----------
    source : str or path
        A Parquet file or directory, or the name of a table of the session's catalog.
    contract : Contract
    out_dir : path
        Where ``findings.json``, ``report.html``, ``treatments.json``, ``clean.parquet`` and
        ``quarantine.parquet`` (Parquet directories written by Spark) go.
    master : str, optional
        Spark master (``local[2]``, ``spark://host:7077``, ``yarn``); default: the active
        session's, else ``local[*]``.
    checks, random_state, options
        As :func:`tabguard.data_audit.audit_data`.
    driver_rows : int
        Rows of the driver sample (candidate patterns' rows first, then random rows; at least
        ``RANDOM_SHARE`` of them are random rows whatever the candidates hold, on top of
        ``keep_total``).
    keep_rows : int, optional
        Candidate patterns with at most this many rows are kept whole in the sample (default
        a quarter of ``driver_rows``); larger ones are represented by the random rows.
    keep_total : int, optional
        The rows of those candidates the driver keeps (default ``KEEP_FACTOR`` times
        ``driver_rows``): past it each candidate is sampled down to about the same number of
        rows (the smaller ones stay whole), so the driver's memory is bounded whatever the
        data's candidates hold. Triggers whose labels decide get their rows beyond the sample from
        Spark; a diluted trigger's copies are found among its sampled rows (docs/spark.md).
    max_values : int
        Distinct values of a feature from which rare values are merged on the driver.
    progress : Progress, optional
    trusted : DataFrame, optional
        Rows whose labels were vetted (as :func:`tabguard.data_audit.audit_data`): the labels
        of the driver sample's random rows (a uniform sample of the data) are scored against
        them; flips among the other rows are not named (docs/spark.md).

    Returns
    -------
    SparkAuditResult

    Raises
    ------
    DataError
        Missing columns, a missing source, data without rows.
    MissingDependencyError, SparkUnavailableError
        No PySpark or no Java.
    """
    started = time.perf_counter()
    progress = progress or NULL_PROGRESS
    selected = REGISTRY.select(checks)
    parsed = REGISTRY.options(REGISTRY.ordered(), options)
    if trusted is not None:  # before Spark's work: a bad trusted sample fails at once
        lopts = parsed.get(LabelNoiseOptions.check)
        lopts = lopts if isinstance(lopts, LabelNoiseOptions) else LabelNoiseOptions()
        prepare_trusted(trusted, contract, lopts)
    spark = spark_session(
        master,
        purpose="tabguard audit data --engine spark",
        conf={"spark.sql.execution.arrow.maxRecordsPerBatch": "50000"},
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="tabguard-spark-", dir=out))
    shipped: list[Any] = []  # broadcast variables, destroyed at the end
    try:
        df = _read(spark, str(source))
        check_columns(pd.DataFrame(columns=df.columns), contract)
        with progress.stage("spark: row numbers"):
            data, n = _with_row_numbers(spark, df)
        if n == 0:
            raise DataError("data has no rows")
        sel = list(dict.fromkeys([*contract.columns(), contract.label.column, ROW]))
        sel = [c for c in sel if c in data.columns]
        feed = data.select(*sel)
        with progress.stage("spark: integrity and value counts"):
            counts_dir = work / "counts"
            feed.mapInPandas(lambda it: count_partition(it, contract), COUNT_SCHEMA).write.parquet(
                str(counts_dir / "raw")
            )
            raw = spark.read.parquet(str(counts_dir / "raw"))
            raw.where("kind = 'v'").groupBy("j", "num", "key").agg(
                functions().sum("n").alias("n"), functions().sum("pos").alias("pos")
            ).write.partitionBy("j").parquet(str(counts_dir / "values"))
            if "descriptive" in selected:  # (the rows breaking the contract, described apart)
                raw.where("kind = 'i'").groupBy("j", "num", "key").agg(
                    functions().sum("n").alias("n"), functions().sum("pos").alias("pos")
                ).write.partitionBy("j").parquet(str(counts_dir / "invalid"))
        described = None
        if "descriptive" in selected:
            with progress.stage("descriptive statistics of every row"):
                described = _describe_every_row(counts_dir, contract, parsed)
        opts = parsed.get(TriggerScanOptions.check)
        topts = opts if isinstance(opts, TriggerScanOptions) else TriggerScanOptions()
        vocab = _vocabulary(counts_dir / "values", contract, topts.min_rows, max_values)
        maps = [pair_value_ids(c, topts.pair_values, topts.min_rows) for c in vocab.counts]
        # every pass below reads the vocabulary: sent to the executors once (see _shipped)
        shipped.append(vocab_b := _shipped(spark, vocab))
        with progress.stage("spark: value pairs"):
            pairs: dict[tuple[int, int], np.ndarray] = {}
            pair_rows = feed.mapInPandas(
                lambda it: pair_partition(it, contract, vocab_b.value, maps),
                "a int, b int, counts binary",
            ).toLocalIterator()
            for r in pair_rows:
                t = np.frombuffer(r["counts"], dtype=np.int64)
                key = (int(r["a"]), int(r["b"]))
                pairs[key] = t if key not in pairs else pairs[key] + t
        candidates = _candidates(vocab, n, topts, pairs)
        keep_rows = driver_rows // 4 if keep_rows is None else keep_rows
        keep_total = KEEP_FACTOR * driver_rows if keep_total is None else keep_total
        kept = min(sum(p.n for p in candidates if p.n <= keep_rows), keep_total)
        # random rows: the rest of driver_rows, at least its reserved share (on top of the
        # candidates' budget, so the candidates can never crowd them out)
        share = min(max(driver_rows - kept, RANDOM_SHARE * driver_rows) / n, 1.0)
        keep = _keep_rules(vocab, candidates, keep_rows, share, random_state)
        with progress.stage("spark: driver sample"):
            sample_dir = work / "sample"
            import pyarrow.parquet as pq
            from pyspark.sql.types import DoubleType, StructField, StructType

            # (a new schema: StructType.add would change the one feed caches)
            schema = StructType([*feed.schema.fields, StructField(KEY, DoubleType())])
            shipped.append(keep_b := _shipped(spark, keep))
            feed.mapInPandas(
                lambda it: keep_partition(it, contract, vocab_b.value, keep_b.value), schema
            ).write.parquet(str(sample_dir))

            keys = pq.read_table(sample_dir, columns=[KEY]).column(KEY).to_numpy()
            level = _keep_level(keys, keep_total)
            notes = _level_text(level, int((keys >= 0).sum()), keep_rows, keep_total)
            del keys
            sample = _read_sample(sample_dir, level)
        rows = sample.pop(ROW).to_numpy(dtype=np.int64)
        integrity = (
            _integrity(contract, counts_dir / "raw", n, parsed) if "integrity" in selected else None
        )
        ctx = build_context(
            sample,
            contract,
            random_state=random_state,
            progress=progress,
            options=options,
            trusted=trusted if "label_noise" in selected else None,
        )
        # the sample's numbers as build_context validated them (validated once: each
        # validation is a transient copy of every numeric column, at the driver's peak)
        numeric = {
            str(c): ctx.validation.numeric[c].to_numpy(dtype=float) for c in ctx.validation.numeric
        }
        # in the matrix's layout (column-major), so the matrix and the copy groups share it
        codes = np.asfortranarray(vocab.codes(ctx.data, contract, numeric))
        # the rows keep_partition drew at random (whatever else kept them): a uniform sample
        uniform = _uniform(rows, random_state) < share
        if described is not None:
            ctx.cache["descriptive_population"] = _with_uniform(described, uniform, ctx.valid)
        notes += _trusted_scope(ctx, uniform, n)
        # Copy groups over every row, built when the trigger scan's decisions ask for them
        # (the sets of the patterns that reach a copy check), not for every candidate.
        copies = (
            _SparkCopies(feed, contract, vocab, codes, ctx.y, COPY_GROUP_ENTRIES, vocab_b)
            if len(sample) < n
            else None
        )
        ctx.cache["matrix"] = matrix = _population_matrix(vocab, n, codes, numeric, pairs, copies)
        del numeric
        if copies is not None:  # the same cells' hashes (of the same codes), held once
            matrix._hashes = (copies.cells, copies.total)
        rest = {k: v for k, v in selected.items() if k != "integrity"}
        results, timings = _run_checks_lean(ctx, rest)
        results = {k: _remap(v, rows) for k, v in results.items()}
        if "trigger_scan" in results:
            with progress.stage("spark: rows of large triggers"):
                _complete_triggers(
                    feed,
                    contract,
                    vocab,
                    ctx.cache.get("trigger_patterns", []),
                    topts,
                    results,
                    vocab_b,
                )
        if integrity is not None:
            results = {"integrity": integrity, **results}
        report, quarantine, treatments = _assemble(
            results,
            timings,
            contract,
            n,
            source,
            random_state,
            started,
            vocab,
            len(sample),
            copies,
            notes,
        )
        paths = _write(spark, data, quarantine, out)
        paths.update(write_report(report, out))
        paths["treatments"] = out / "treatments.json"
        paths["treatments"].write_text(json.dumps([t.to_dict() for t in treatments], indent=2))
        return SparkAuditResult(report, n, len(sample), quarantine, treatments, paths)
    finally:
        for b in shipped:
            b.destroy()
        shutil.rmtree(work, ignore_errors=True)


def _assemble(
    results: dict[str, CheckResult],
    timings: dict[str, float],
    contract: Contract,
    n: int,
    source: str | Path,
    random_state: int,
    started: float,
    vocab: Vocabulary,
    n_sample: int,
    copies: _SparkCopies | None = None,
    notes: Sequence[str] = (),
) -> tuple[Report, pd.DataFrame, list[Treatment]]:
    """The report, quarantine and treatments, as :func:`tabguard.data_audit.audit_data`.

    ``copies`` is read here, after every check ran: a set grouped late (a pattern with
    companion values, a refined band) can be the one that went past the budget.
    """
    outcome = AuditOutcome.of(results)
    qrows = outcome.rows
    quarantine = pd.DataFrame(
        {ROW_COLUMN: qrows, REASON_COLUMN: [outcome.quarantine[int(r)] for r in qrows]}
    )
    spark_section = Section(
        title="Spark engine",
        text=[
            f"{n} rows were validated and counted by Spark; the model-based stages ran on "
            f"a driver sample of {n_sample} rows (every row of each candidate pattern of the "
            "trigger scan, then random rows). The descriptive statistics count every valid row "
            "(their rank statistics use the sample's random rows); the near-duplicate, "
            "label-noise and disparate-impact checks describe the sample.",
            *_copy_text(copies),
            *notes,
        ],
    )
    report = outcome.report(
        contract,
        n,
        results,
        timings,
        base_rate=float(vocab.positives[0].sum()) / max(n, 1) if vocab.positives else 0.0,
        summary={"engine": "spark", "driver_sample_rows": n_sample},
        meta={
            "source": str(source),
            "random_state": random_state,
            "elapsed_seconds": round(time.perf_counter() - started, 2),
        },
        sections=[spark_section],
    )
    return report, quarantine, outcome.treatments


def _copy_text(copies: _SparkCopies | None) -> list[str]:
    """What the report says of the copy groups (nothing when none were asked for)."""
    if copies is None or not copies.groups:
        return []
    n_sets = len(copies.groups)
    text = (
        f"Exact copies were counted over every row for {n_sets - len(copies.fallback)} of the "
        f"{n_sets} feature sets the copy checks asked for ({copies.passes} passes over the data; "
        f"{copies.stored:,} group entries held by the driver)."
    )
    if not copies.fallback:
        return [text]
    sets = "; ".join(" & ".join(copies.vocab.names[j] for j in c) for c in copies.fallback[:5])
    more = f" and {len(copies.fallback) - 5} more" if len(copies.fallback) > 5 else ""
    return [
        text,
        f"For {len(copies.fallback)} of them (every feature but {sets}{more}), exact copies were "
        "looked for among the sample's rows only: their groups over every row would have taken "
        f"the driver past {COPY_GROUP_ENTRIES:,} entries (copy groups of data made of repeated "
        "records). A copy whose original is not in the sample can be missed there.",
    ]


def _write(spark: Any, data: Any, quarantine: pd.DataFrame, out: Path) -> dict[str, Path]:
    """``clean.parquet`` and ``quarantine.parquet`` (directories), written by Spark."""
    sf = functions()
    q = spark.createDataFrame(
        quarantine.rename(columns={ROW_COLUMN: ROW}).astype({ROW: "int64"})
        if len(quarantine)
        else pd.DataFrame({ROW: pd.Series([], dtype="int64"), REASON_COLUMN: []}),
        f"{ROW} long, {REASON_COLUMN} string",
    )
    q = sf.broadcast(q) if len(quarantine) <= 1_000_000 else q
    clean = data.join(q, ROW, "left_anti").drop(ROW)
    paths = {"clean": out / "clean.parquet", "quarantine": out / "quarantine.parquet"}
    clean.write.mode("overwrite").parquet(str(paths["clean"]))
    held = data.join(q, ROW, "inner")
    held = held.select(
        sf.col(ROW).alias(ROW_COLUMN),
        *[c for c in data.columns if c != ROW],
        REASON_COLUMN,
    )
    held.write.mode("overwrite").parquet(str(paths["quarantine"]))
    return paths
