"""From a batch of log rows to a :class:`Delta`: buckets × segments × counters and sketches.

Everything is columnar: rows are grouped by (bucket, segment value) codes with NumPy, counters
are ``np.unique`` over combined codes, and each group's values go to its sketch in one call.
Short JSON columns (segment, guard actions, probing, errors) are parsed once per distinct text.

Segments: ``all``; each key of the request's ``segment`` object; each contract segment feature
(its raw value); declared combinations (``channel*EDUCATION`` = ``online*2``). A key's values
earn their own segment once a frequent-items sketch has counted ``admit_min_rows`` rows of them,
up to ``top_k`` values; the rest are ``other``, so 100k distinct values cost 1 segment, not
100k. Requests without the key are ``(missing)``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tabguard.monitoring._cells import ColumnCells, NumericColumn, column_cells
from tabguard.monitoring._config import AggregationConfig
from tabguard.monitoring._delta import ALL, MISSING, OTHER, Delta
from tabguard.monitoring._parse import (
    ParsedColumn,
    canonical_label,
    parse_distinct,
    parse_objects,
)
from tabguard.monitoring._read import (
    BATCH_COLUMNS,
    BatchParser,
    ColumnSpec,
    MonitorPlan,
    PreparedBatch,
)
from tabguard.monitoring._sketch import FrequentValues, SketchError
from tabguard.monitoring._store import (
    F_CATEGORY,
    F_CLIENT,
    F_GUARD,
    F_PROBING,
    F_STATUS_DECISION,
    F_VIOLATION,
)

log = logging.getLogger("tabguard.monitoring")

#: Batches at least this large share their sketch work with a worker process.
PARALLEL_MIN_ROWS = 20_000

#: Pseudo segment key whose "values" are the request segment keys (admission of keys).
KEYS = "__keys__"
#: Pseudo segment key of API clients (probing counts per client).
CLIENTS = "__clients__"
#: Sanitise actions that name a field.
_FIELD_ACTIONS = ("clip", "neutralize", "impute", "bin")


@dataclass
class Admission:
    """Which segment values have their own segment; updated as rows arrive.

    Parameters
    ----------
    admitted : dict
        Values already admitted per key (from the store and the config).
    frequent : dict
        Frequent-items sketch per key (serialised in the store's state).
    top_k, min_rows, max_keys, clients_top_k : int
        Caps from ``aggregation``.
    """

    admitted: dict[str, set[str]]
    frequent: dict[str, FrequentValues]
    top_k: int
    min_rows: int
    max_keys: int
    clients_top_k: int
    new: list[tuple[str, str]] = field(default_factory=list)
    dirty: set[str] = field(default_factory=set)
    frozen: bool = False

    def cap(self, key: str) -> int:
        """How many values ``key`` may admit."""
        return {KEYS: self.max_keys, CLIENTS: self.clients_top_k}.get(key, self.top_k)

    def observe(self, key: str, counts: dict[str, int]) -> set[str]:
        """Count values of ``key`` and admit the frequent ones; return the admitted set.

        A frozen admission (outcome import) maps values without counting or admitting.
        """
        if self.frozen:
            return self.admitted.setdefault(key, set())
        sketch = self.frequent.get(key)
        if sketch is None:
            sketch = self.frequent[key] = FrequentValues()
        for value, count in counts.items():
            if value != MISSING:
                sketch.update(value, count)
        self.dirty.add(key)
        have = self.admitted.setdefault(key, set())
        candidates = [
            (sketch.lower_bound(v), v)
            for v in counts
            if v not in have and v not in (MISSING, OTHER)
        ]
        for bound, value in sorted(candidates, key=lambda c: (-c[0], c[1])):
            if len(have) >= self.cap(key):
                break
            if bound >= self.min_rows:
                have.add(value)
                self.new.append((key, value))
        return have

    def map(self, key: str, values: np.ndarray) -> np.ndarray:
        """Map per-row values (``None`` = absent) to admitted values, ``other`` or missing."""
        codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
        names = [str(u) for u in uniques]
        counts = np.bincount(codes[codes >= 0], minlength=len(names))
        have = self.observe(key, dict(zip(names, counts.tolist(), strict=True)))
        lookup = np.asarray(
            [v if v in have or v == MISSING else OTHER for v in names] + [MISSING], dtype=object
        )
        out: np.ndarray = lookup[codes]
        return out

    def state(self) -> dict[str, str]:
        """Serialised sketches of the keys touched (for ``tg_mon_state``)."""
        return {f"frequent:{k}": self.frequent[k].to_text() for k in sorted(self.dirty)}

    @classmethod
    def load(
        cls,
        admitted: dict[str, set[str]],
        state: dict[str, Any],
        config: AggregationConfig,
        preset: dict[str, Sequence[Any]] | None = None,
    ) -> Admission:
        """Rebuild from the store (corrupt sketches restart empty, with a logged note)."""
        frequent: dict[str, FrequentValues] = {}
        for name, text in state.items():
            if not name.startswith("frequent:") or not isinstance(text, str):
                continue
            try:
                frequent[name.removeprefix("frequent:")] = FrequentValues.from_text(text)
            except SketchError as exc:
                log.warning("monitor store: %s is corrupt (%s); counting it again", name, exc)
        values = {k: set(v) for k, v in admitted.items()}
        for key, vals in {**(preset or {})}.items():
            values.setdefault(key, set()).update(str(v) for v in vals)
        seg = config.segments
        return cls(
            admitted=values,
            frequent=frequent,
            top_k=seg.top_k,
            min_rows=seg.admit_min_rows,
            max_keys=seg.max_keys,
            clients_top_k=config.clients_top_k,
        )


@dataclass
class StartedBatch:
    """A batch between :meth:`Aggregator.start` and :meth:`Aggregator.finish`."""

    prepared: PreparedBatch
    n: int
    #: Bucket start of each row (epoch seconds).
    bucket: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    #: (segment key, (bucket, key, value) per group code, group code per row)
    grouped: list[tuple[str, list[tuple[int, str, str]], np.ndarray]] = field(default_factory=list)
    keys: list[tuple[list[tuple[int, str, str]], np.ndarray]] = field(default_factory=list)
    base: int | None = None
    numeric: list[NumericColumn] = field(default_factory=list)
    remote: int = 0
    futures: list[Future[ColumnCells]] = field(default_factory=list)
    #: Seconds this process spent on its columns (for :class:`WorkSplit`).
    local_seconds: float = 0.0


@dataclass
class WorkSplit:
    """How many numeric columns of a batch the worker processes sketch (this process takes
    the rest), balanced batch by batch so both sides finish together.

    After each batch, the worker's finishing time is compared with this process's (one
    system-wide monotonic clock), and the columns are moved by that gap divided by what one
    column costs on either side (measured on the same batch). Half the step is taken, so one
    noisy batch (a busy machine) cannot swing the split. The split only decides which
    process builds a cell: the cells are the same either way.

    Attributes
    ----------
    share : float
        Fraction of the columns for the workers. The first batch gives them two thirds: this
        process also counts, merges the previous batch into the store, and shares its
        interpreter with the thread reading the next batch.
    """

    share: float = 2 / 3

    def remote_columns(self, columns: int) -> int:
        """Columns for the workers out of ``columns``: at least one each side (from two
        columns on), so both sides keep being measured."""
        if columns < 2:
            return 0
        return max(1, min(columns - 1, round(self.share * columns)))

    def observe(
        self,
        *,
        local: tuple[int, float],
        remote: tuple[int, float],
        workers: int,
        imbalance: float,
    ) -> None:
        """Move the split after a batch.

        Parameters
        ----------
        local, remote : (columns, seconds)
            Columns sketched here and in the workers, and the seconds they took (the
            workers' seconds summed).
        workers : int
            Worker processes that took part.
        imbalance : float
            Seconds the workers finished after this process (negative: before).
        """
        here_cols, here_s = local
        there_cols, there_s = remote
        total = here_cols + there_cols
        if total == 0 or there_cols == 0:
            return
        there = there_s / there_cols / max(workers, 1)
        here = here_s / here_cols if here_cols else there * max(workers, 1)
        step = imbalance / max(here + there, 1e-9)
        target = min(max(there_cols - step, 0.0), float(total))
        self.share += 0.5 * (target / total - self.share)


@dataclass
class BatchResult:
    """What one batch produced.

    Attributes
    ----------
    delta : Delta
    skipped : int
        Rows left out because they are unusable (no parsable timestamp).
    slow_rows : int
        Rows whose JSON needed the row-by-row parser.
    max_epoch : int or None
        Newest request time in the batch (epoch seconds).
    min_epoch : int or None
        Oldest request time in the batch.
    json_rows : int
        Rows read from their JSON documents (no usable ``numbers`` vector).
    """

    delta: Delta
    skipped: int
    slow_rows: int
    max_epoch: int | None
    min_epoch: int | None
    json_rows: int = 0


def _guard_keys_weight(actions: Any) -> tuple[list[str], int]:
    """The guard keys of a row and how many requests it stands for (1, or a summary's count)."""
    weight = 1
    if isinstance(actions, list):
        for a in actions:
            n = a.get("requests") if isinstance(a, dict) else None
            if isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 2**40:
                weight = n
                break
    return _guard_keys(actions), weight


def _guard_keys(actions: Any) -> list[str]:
    out: list[str] = []
    if not isinstance(actions, list):
        return out
    for a in actions:
        if not isinstance(a, dict):
            continue
        step, action = str(a.get("step", "?"))[:64], str(a.get("action", "?"))[:64]
        column = a.get("field") if action in _FIELD_ACTIONS else None
        out.append(f"{step}|{action}|{str(column)[:128] if column is not None else ''}")
    return out


def _violation_keys(errors: Any, fields: frozenset[str]) -> list[str]:
    out: list[str] = []
    if not isinstance(errors, list):
        return out
    seen: set[str] = set()
    for e in errors:
        if not isinstance(e, dict):
            continue
        name, rule = e.get("field"), e.get("rule")
        if not isinstance(name, str) or name not in fields:
            continue
        out.append(f"{name}|{str(rule)[:64]}")
        if name not in seen:
            seen.add(name)
            out.append(f"\x00{name}")  # marks "out of contract" once per field and row
    return out


def _signals(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return sorted({str(s)[:64] for s in value if isinstance(s, str)})


def _segment_object(value: Any) -> dict[str, str | None]:
    if not isinstance(value, dict):
        return {}
    return {str(k)[:128]: canonical_label(v) for k, v in list(value.items())[:64]}


class Aggregator:
    """Turns batches of log rows into deltas (stateless apart from segment admission).

    Parameters
    ----------
    plan : MonitorPlan
    config : AggregationConfig
    admission : Admission
    executor : concurrent.futures.Executor, optional
        Worker processes that build the sketches of some numeric columns of large batches.
    workers : int, default 1
        How many processes ``executor`` runs (each gets a part of the workers' columns).
    """

    def __init__(
        self,
        plan: MonitorPlan,
        config: AggregationConfig,
        admission: Admission,
        executor: Executor | None = None,
        workers: int = 1,
    ) -> None:
        self.plan = plan
        self.executor = executor
        self.workers = max(1, workers)
        self.split = WorkSplit()
        self.config = config
        self.admission = admission
        self.bucket_seconds = int(config.bucket.total_seconds())
        self.parser = BatchParser(plan)
        self._raw_cols = self.parser.raw_cols
        self._fields = frozenset(c.name for c in plan.raw) | frozenset(plan.segment_features)
        #: The layout of the log's ``numbers`` vectors this plan can read (``None``: JSON only).
        self.layout = self.parser.layout

    # ---- segments -----------------------------------------------------------------------------

    def segments_of(self, batch: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
        """Per segment key, the segment value of every row of ``batch`` (as buckets use)."""
        raw, _is_obj, _slow = parse_objects(batch["raw"], self._raw_cols)
        return self._segments(batch, raw)

    def _segments(
        self, batch: dict[str, np.ndarray], raw: dict[str, ParsedColumn]
    ) -> list[tuple[str, np.ndarray]]:
        """Per segment key, the (mapped) value of every row."""
        n = len(batch["seq"])
        adm = self.admission
        seg_codes, seg_parsed = parse_distinct(batch["segment"], _segment_object)
        key_counts: dict[str, int] = {}
        for code, count in zip(*np.unique(seg_codes, return_counts=True), strict=True):
            for key in seg_parsed[int(code)]:
                key_counts[key] = key_counts.get(key, 0) + int(count)
        wanted = self.config.segments.request_keys
        if wanted == "all":
            # Admit request keys by how many rows carry them (a flood of random keys stays out).
            tracked = sorted(adm.observe(KEYS, key_counts))
        else:
            tracked = list(wanted)
        raw_values: dict[str, np.ndarray] = {}
        for key in tracked:
            per_code = np.asarray([p.get(key) for p in seg_parsed], dtype=object)
            raw_values[key] = per_code[seg_codes]
        for name in self.plan.segment_features:
            if name in raw_values:
                continue  # a request key of the same name wins
            labels = raw[name].labels
            raw_values[name] = labels if labels is not None else np.full(n, None, dtype=object)
        out: list[tuple[str, np.ndarray]] = [("all", np.full(n, "all", dtype=object))]
        for key, values in raw_values.items():
            out.append((key, adm.map(key, values)))
        for combo in self.plan.combinations:
            parts = [raw_values.get(k) for k in combo]
            if any(p is None for p in parts):
                continue
            joined = np.asarray(
                [
                    "*".join(MISSING if v is None else str(v) for v in row)
                    for row in zip(*parts, strict=True)
                ],
                dtype=object,
            )
            out.append(("*".join(combo), adm.map("*".join(combo), joined)))
        return out

    # ---- the batch ----------------------------------------------------------------------------

    def prepare(self, batch: dict[str, np.ndarray]) -> PreparedBatch:
        """Drop unusable rows and parse the JSON columns (:meth:`BatchParser.prepare`)."""
        return self.parser.prepare(batch)

    def aggregate(self, batch: dict[str, np.ndarray] | PreparedBatch) -> BatchResult:
        """Summarise one batch (columns of :data:`BATCH_COLUMNS`, or :meth:`prepare`'s output)."""
        started = self.start(batch)
        return self.collect(started, self.finish(started))

    def start(self, batch: dict[str, np.ndarray] | PreparedBatch) -> StartedBatch:
        """Map the batch's segments and hand the workers their share of the sketches.

        :meth:`finish` and :meth:`collect` do the rest; in between, the caller may do other
        work (merge the previous batch, start the next) while the workers build their
        sketches. Segment admission is updated here and in :meth:`finish`: batches are
        started and finished in order.
        """
        prepared = batch if isinstance(batch, PreparedBatch) else self.prepare(batch)
        if prepared.skipped:
            log.warning(
                "monitor: %d log rows without a readable timestamp skipped (e.g. %s)",
                prepared.skipped,
                ", ".join(map(str, prepared.skipped_ids)),
            )
        data = prepared.batch
        n = len(data["epoch"])
        started = StartedBatch(prepared, n)
        if n == 0:
            return started
        b = self.bucket_seconds
        started.bucket = (data["epoch"] // b) * b
        bucket_codes, bucket_uniques = pd.factorize(started.bucket, sort=True)
        sizes: dict[str, int] = {}
        for key, values in self._segments(data, prepared.raw):
            value_codes, value_uniques = pd.factorize(values)
            nv = len(value_uniques)
            if key != "all":
                sizes[key] = nv
            group = bucket_codes.astype(np.int64) * nv + value_codes
            names = [
                (int(bucket_uniques[g // nv]), key, str(value_uniques[g % nv]))
                for g in range(len(bucket_uniques) * nv)
            ]
            started.grouped.append((key, names, group))
        base = min(sizes, key=lambda k: (sizes[k], k)) if sizes else None
        # Sketches: `all` is merged from the key with the fewest values (a few merges per
        # bucket and column instead of one more update per value).
        kept = [item for item in started.grouped if item[0] != "all" or base is None]
        started.keys = [(names, group) for _key, names, group in kept]
        names_kept = [key for key, _names, _group in kept]
        started.base = names_kept.index(base) if base is not None else None
        numeric = self._numeric_columns(
            data, prepared.raw, prepared.raw_is_obj, prepared.feats, prepared.feat_is_obj
        )
        k = self.config.sketch_k
        if self.executor is not None and n >= PARALLEL_MIN_ROWS and numeric:
            # The workers take the first columns, this process the rest (while it also counts,
            # and its caller merges the previous batch): the split is balanced batch by batch.
            remote = self.split.remote_columns(len(numeric))
            chunks = [numeric[i : remote : self.workers] for i in range(self.workers)]
            started.futures = [
                self.executor.submit(column_cells, started.keys, started.base, chunk, k)
                for chunk in chunks
                if chunk
            ]
            started.remote = remote
            numeric = numeric[remote:]
        started.numeric = numeric
        return started

    def finish(self, started: StartedBatch) -> BatchResult:
        """Count and build this process's sketches; :meth:`collect` adds the workers'."""
        prepared = started.prepared
        batch = prepared.batch
        delta = Delta(k=self.config.sketch_k)
        delta.rows = started.n
        if started.n == 0:
            return BatchResult(delta, prepared.skipped, 0, None, None)
        sd_codes, sd_keys = _status_decision(batch["status"], batch["decision"])
        guard_codes, guard_items = parse_distinct(batch["guard_actions"], _guard_keys_weight)
        guard_parsed = [keys for keys, _ in guard_items]
        # A summary row of the service (unauthenticated refusals per source and minute)
        # stands for `requests` requests: every count of that row is weighted by it.
        code_weights = np.array([w for _, w in guard_items], dtype=np.int64)
        weights = code_weights[guard_codes] if (code_weights != 1).any() else None
        fields = self._fields
        err_codes, err_parsed = parse_distinct(
            batch["errors"], lambda e: _violation_keys(e, fields)
        )
        probe_codes, probe_parsed = parse_distinct(batch["probing"], _signals)
        categorical = self._category_columns(
            prepared.raw, prepared.raw_is_obj, prepared.feats, prepared.feat_is_obj
        )
        for _key, names, group in started.grouped:
            self._count(delta, names, group, sd_codes, sd_keys, F_STATUS_DECISION, weights)
            self._count(delta, names, group, guard_codes, guard_parsed, F_GUARD, weights)
            self._count_violations(delta, names, group, err_codes, err_parsed, weights)
            self._count(delta, names, group, probe_codes, probe_parsed, F_PROBING, weights)
            for kind, name, codes, labels in categorical:
                self._count_categories(delta, names, group, kind, name, codes, labels, weights)
        self._clients(delta, batch, started.bucket, probe_codes, probe_parsed, weights)
        k = self.config.sketch_k
        mine = column_cells(started.keys, started.base, started.numeric, k)
        delta.packed.extend(mine.cells)
        started.local_seconds = mine.seconds
        epoch = batch["epoch"]
        return BatchResult(
            delta,
            prepared.skipped,
            prepared.slow_rows,
            int(epoch.max()),
            int(epoch.min()),
            prepared.json_rows,
        )

    def collect(self, started: StartedBatch, result: BatchResult) -> BatchResult:
        """Add the workers' cells of a finished batch to its delta (waits for them).

        Called as late as the caller can (before it writes the batch): meanwhile this process
        finishes the batch, and reads and starts the next one, so the workers may take more
        of the columns. The split is balanced on that moment.
        """
        if not started.futures:
            return result
        here_done = time.monotonic()
        theirs = [future.result() for future in started.futures]
        started.futures = []
        for part in theirs:
            result.delta.packed.extend(part.cells)
        self.split.observe(
            local=(len(started.numeric), started.local_seconds),
            remote=(started.remote, sum(part.seconds for part in theirs)),
            workers=len(theirs),
            imbalance=max(part.done_at for part in theirs) - here_done,
        )
        return result

    # ---- counters -----------------------------------------------------------------------------

    @staticmethod
    def _count(
        delta: Delta,
        names: list[tuple[int, str, str]],
        group: np.ndarray,
        codes: np.ndarray,
        keys_per_code: list[list[str]],
        family: str,
        weights: np.ndarray | None = None,
    ) -> None:
        width = max(len(keys_per_code), 1)
        for c, count in _combined_counts(group, codes, width, len(names), weights):
            g, code = divmod(c, width)
            b, sk, sv = names[g]
            for key in keys_per_code[code]:
                delta.count((b, sk, sv, family, key), count)

    def _count_violations(
        self,
        delta: Delta,
        names: list[tuple[int, str, str]],
        group: np.ndarray,
        codes: np.ndarray,
        parsed: list[list[str]],
        weights: np.ndarray | None = None,
    ) -> None:
        width = max(len(parsed), 1)
        for c, count in _combined_counts(group, codes, width, len(names), weights):
            g, code = divmod(c, width)
            b, sk, sv = names[g]
            for key in parsed[code]:
                if key.startswith("\x00"):
                    guard = f"validate|out_of_contract|{key[1:]}"
                    delta.count((b, sk, sv, F_GUARD, guard), count)
                else:
                    delta.count((b, sk, sv, F_VIOLATION, key), count)

    @staticmethod
    def _count_categories(
        delta: Delta,
        names: list[tuple[int, str, str]],
        group: np.ndarray,
        kind: str,
        column: str,
        codes: np.ndarray,
        uniques: list[str],
        weights: np.ndarray | None = None,
    ) -> None:
        valid = codes >= 0
        width = max(len(uniques), 1)
        w = weights[valid] if weights is not None else None
        for c, count in _combined_counts(group[valid], codes[valid], width, len(names), w):
            g, code = divmod(c, width)
            b, sk, sv = names[g]
            delta.count((b, sk, sv, F_CATEGORY, f"{kind}|{column}|{uniques[code]}"), count)

    def _clients(
        self,
        delta: Delta,
        batch: dict[str, np.ndarray],
        bucket: np.ndarray,
        probe_codes: np.ndarray,
        probe_parsed: list[list[str]],
        weights: np.ndarray | None = None,
    ) -> None:
        clients = np.where(pd.isna(batch["client"]), "(none)", batch["client"]).astype(object)
        mapped = self.admission.map(CLIENTS, clients)
        frame = pd.DataFrame({"bucket": bucket, "client": mapped, "probe": probe_codes})
        if weights is None:
            counted = frame.value_counts(sort=False)
        else:
            frame["n"] = weights
            counted = frame.groupby(["bucket", "client", "probe"], sort=False)["n"].sum()
        for b, client, code, count in zip(
            counted.index.get_level_values(0),
            counted.index.get_level_values(1),
            counted.index.get_level_values(2),
            counted.to_numpy(),
            strict=True,
        ):
            signals = probe_parsed[int(code)]
            key = (int(b), "all", "all", F_CLIENT)
            delta.count((*key, f"{client}|requests"), int(count))
            if "client_flagged" in signals:
                delta.count((*key, f"{client}|flagged"), int(count))
            others = [s for s in signals if s != "client_flagged"]
            if others:
                delta.count((*key, f"{client}|probing"), int(count))
            for s in others:
                delta.count((*key, f"{client}|{s}"), int(count))

    # ---- columns ------------------------------------------------------------------------------

    def _numeric_columns(
        self,
        batch: dict[str, np.ndarray],
        raw: dict[str, ParsedColumn],
        raw_is_obj: np.ndarray,
        feats: dict[str, ParsedColumn],
        feat_is_obj: np.ndarray,
    ) -> list[tuple[str, str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """(kind, column, values, domain, missing, invalid) of every numeric column."""
        out = []
        for kind, specs, parsed, domain in (
            ("raw", self.plan.raw, raw, raw_is_obj),
            ("feature", self.plan.features, feats, feat_is_obj),
        ):
            for spec in specs:
                col = parsed[spec.name]
                if col.numbers is None:
                    continue
                out.append(
                    (kind, spec.name, col.numbers, domain, col.missing & domain, col.invalid)
                )
        n = len(batch["seq"])
        everything = np.ones(n, dtype=bool)
        for name in ("score", "latency_ms"):
            values = np.asarray(batch[name], dtype=np.float64)
            missing = np.isnan(values)
            invalid = ~missing & ~np.isfinite(values)
            out.append((name, name, values, everything, missing, invalid))
        return out

    def _category_columns(
        self,
        raw: dict[str, ParsedColumn],
        raw_is_obj: np.ndarray,
        feats: dict[str, ParsedColumn],
        feat_is_obj: np.ndarray,
    ) -> list[tuple[str, str, np.ndarray, list[str]]]:
        """(kind, column, codes, labels) of every category column: a code per row (-1 outside
        the column's rows), values capped to the contract's categories (others: ``other``)."""
        out = []
        for kind, specs, parsed, domain in (
            ("raw", self.plan.raw, raw, raw_is_obj),
            ("feature", self.plan.features, feats, feat_is_obj),
        ):
            for spec in specs:
                col = parsed[spec.name]
                if col.labels is None:
                    continue
                allowed = {canonical_label(c) for c in spec.categories or ()}
                codes, uniques = pd.factorize(
                    pd.Series(col.labels, dtype=object), use_na_sentinel=True
                )
                labels = [u if (not allowed or u in allowed) else OTHER for u in uniques]
                labels.append(MISSING)
                final, merged = pd.factorize(pd.Series(labels, dtype=object))
                row_codes = final[np.where(codes < 0, len(uniques), codes)]
                row_codes[~domain] = -1
                out.append((kind, spec.name, row_codes.astype(np.int64), [str(m) for m in merged]))
        return out


def _status_decision(
    status: np.ndarray, decision: np.ndarray
) -> tuple[np.ndarray, list[list[str]]]:
    """Per row, a code of ``status|decision`` (decision ``""`` when none), and the key of each
    code (factorised column by column: no string is built per row)."""
    st_codes, st_uniques = pd.factorize(np.asarray(status, dtype=object), use_na_sentinel=False)
    de_codes, de_uniques = pd.factorize(np.asarray(decision, dtype=object), use_na_sentinel=False)
    width = max(len(de_uniques), 1)
    combined, inverse = np.unique(st_codes * width + de_codes, return_inverse=True)
    decisions = ["" if pd.isna(d) else str(d) for d in de_uniques]
    keys = [[f"{st_uniques[c // width]}|{decisions[c % width]}"] for c in combined.tolist()]
    return inverse.reshape(-1).astype(np.int64), keys


def _combined_counts(
    group: np.ndarray,
    codes: np.ndarray,
    width: int,
    ngroups: int,
    weights: np.ndarray | None = None,
) -> list[tuple[int, int]]:
    """``(group * width + code, count)`` of the pairs present (a bincount: no sort).

    With ``weights``, a row counts as that many requests (summary rows of the service).
    """
    counts = np.bincount(group * width + codes, weights=weights, minlength=ngroups * width)
    if weights is not None:
        counts = np.rint(counts).astype(np.int64)
    present = np.flatnonzero(counts)
    return list(zip(present.tolist(), counts[present].tolist(), strict=True))


__all__ = [
    "ALL",
    "BATCH_COLUMNS",
    "Admission",
    "Aggregator",
    "BatchParser",
    "BatchResult",
    "ColumnSpec",
    "MonitorPlan",
]
