"""What one batch of log rows adds to the store: counts and sketches per bucket and segment.

A :class:`Delta` is plain data built by the aggregation and merged into a store in one
transaction (:meth:`MonitorStore.merge`). Keeping it apart from the store lets every backend
share one merge rule, and lets tests build deltas by hand.
"""

from __future__ import annotations

import json
import struct
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from tabguard.monitoring._cells import PackedCell
from tabguard.monitoring._sketch import DEFAULT_K, QuantileSketch, SketchError

#: Percentile levels kept as plain numbers per bucket (dashboards read them without merging).
SUMMARY_LEVELS = (0.01, 0.10, 0.50, 0.90, 0.99)
SUMMARY_COLUMNS = ("p01", "p10", "p50", "p90", "p99")
#: The numbers stored per column and bucket, in this order (``tg_mon_cells.stats``).
STAT_FIELDS = ("rows", "n", "missing", "invalid", "total", "vmin", "vmax", *SUMMARY_COLUMNS)
_NSTATS = len(STAT_FIELDS)

#: A segment: (key, value); ``("all", "all")`` is every request.
Segment = tuple[str, str]
ALL: Segment = ("all", "all")
#: Values beyond a key's top-k, and requests without the key.
OTHER, MISSING = "other", "(missing)"


@dataclass
class NumericCell:
    """One numeric column in one bucket and segment.

    Attributes
    ----------
    rows : int
        Rows that could carry a value (e.g. requests with a parsed ``features`` object).
    missing : int
        Of those, rows without a value.
    invalid : int
        Of those, rows whose value was not a finite number.
    total : float
        Sum of the numeric values (the mean is ``total / sketch.n``).
    sketch : QuantileSketch
        The values themselves (``sketch.n`` of them).
    """

    rows: int = 0
    missing: int = 0
    invalid: int = 0
    total: float = 0.0
    sketch: QuantileSketch = field(default_factory=QuantileSketch)

    def merge(self, other: NumericCell) -> None:
        """Add ``other`` into this cell."""
        self.rows += other.rows
        self.missing += other.missing
        self.invalid += other.invalid
        self.total += other.total
        self.sketch.merge(other.sketch)

    def stats(self) -> list[float]:
        """The numbers stored beside the sketch, in :data:`STAT_FIELDS` order (NaN: none)."""
        sk = self.sketch
        return [
            self.rows,
            sk.n,
            self.missing,
            self.invalid,
            self.total,
            *sk.summary(SUMMARY_LEVELS),
        ]


def pack_packed(cells: list[PackedCell]) -> tuple[str, bytes, bytes]:
    """Like :func:`pack_cells`, straight from the cells of one row (bucket, segment, kind) as
    the aggregation builds them, put in column order: no sketch is deserialised, and each
    matrix is one ``struct`` call (a 1M-record update writes ~120k new cells, all in the
    updating process)."""
    ordered = sorted(cells, key=_column_name)
    flat: list[float] = []
    for _key, rows, n, missing, invalid, total, stats, _blob in ordered:
        flat += (rows, n, missing, invalid, total)
        flat += stats
    if len(flat) != len(ordered) * _NSTATS:
        raise ValueError(f"cells of {len(flat)} numbers for {len(ordered)} columns")
    blobs = [cell[7] for cell in ordered]
    return (
        json.dumps([cell[0][4] for cell in ordered]),
        struct.pack(f"<{len(flat)}d", *flat),
        struct.pack(f"<{len(blobs)}I", *map(len, blobs)) + b"".join(blobs),
    )


def _column_name(cell: PackedCell) -> str:
    return cell[0][4]


def packed_cell(cell: PackedCell, k: int = DEFAULT_K) -> NumericCell:
    """A worker's cell as a :class:`NumericCell` (to merge with a stored one)."""
    _key, rows, _n, missing, invalid, total, _stats, blob = cell
    sketch = QuantileSketch.from_bytes(blob) if blob else QuantileSketch.fresh(k)
    return NumericCell(rows, missing, invalid, total, sketch)


def pack_cells(cells: list[tuple[str, NumericCell]]) -> tuple[str, bytes, bytes]:
    """Columns of one bucket, segment and kind as ``(names JSON, stats, sketches)``.

    ``stats`` is a little-endian float64 matrix (one row of :data:`STAT_FIELDS` per column);
    ``sketches`` is one little-endian uint32 length per column followed by the DataSketches
    serialisations (length 0: no value). Each sketch stays a plain DataSketches KLL doubles
    sketch, so another engine (Spark) can write the same container.
    """
    names = [name for name, _ in cells]
    stats = np.asarray([cell.stats() for _, cell in cells], dtype="<f8").reshape(-1, _NSTATS)
    blobs = [b"" if cell.sketch.empty else cell.sketch.to_bytes() for _, cell in cells]
    lengths = np.asarray([len(b) for b in blobs], dtype="<u4")
    return json.dumps(names), stats.tobytes(), lengths.tobytes() + b"".join(blobs)


def unpack_stats(names_json: str, stats: bytes) -> tuple[list[str], np.ndarray]:
    """Column names and their stats matrix (shape ``(n_columns, len(STAT_FIELDS))``).

    Raises
    ------
    SketchError
        When the row is corrupt (sizes disagree).
    """
    try:
        names = json.loads(names_json)
        matrix = np.frombuffer(stats, dtype="<f8").reshape(len(names), _NSTATS)
    except (ValueError, TypeError) as exc:
        raise SketchError(f"corrupt cell row ({exc})") from None
    return names, matrix


def unpack_sketches(count: int, sketches: bytes) -> list[bytes]:
    """The ``count`` serialised sketches of a cell row (``b""`` for an empty column).

    Raises
    ------
    SketchError
        When the lengths do not add up.
    """
    head = 4 * count
    if len(sketches) < head:
        raise SketchError(f"corrupt cell row: {len(sketches)} bytes for {count} sketches")
    lengths = struct.unpack_from(f"<{count}I", sketches)
    if head + sum(lengths) != len(sketches):
        raise SketchError("corrupt cell row: sketch lengths do not add up")
    out = []
    pos = head
    for n in lengths:
        out.append(sketches[pos : pos + n])
        pos += n
    return out


def cell_from(stats: np.ndarray, blob: bytes, k: int = DEFAULT_K) -> NumericCell:
    """A cell rebuilt from its stored stats row and sketch bytes."""
    sketch = QuantileSketch.from_bytes(blob) if blob else QuantileSketch(k)
    return NumericCell(
        rows=int(stats[0]),
        missing=int(stats[2]),
        invalid=int(stats[3]),
        total=float(stats[4]),
        sketch=sketch,
    )


#: (bucket, seg_key, seg_value, kind, column)
NumericKey = tuple[int, str, str, str, str]
#: (bucket, seg_key, seg_value, family, key)
CountKey = tuple[int, str, str, str, str]


@dataclass
class Delta:
    """Counts and numeric cells to add to the store.

    Attributes
    ----------
    counts : dict
        ``(bucket, seg_key, seg_value, family, key) -> n``.
    numeric : dict
        ``(bucket, seg_key, seg_value, kind, column) -> NumericCell``.
    rows : int
        Log rows this delta summarises.
    k : int
        KLL parameter of new sketches.
    """

    counts: dict[CountKey, int] = field(default_factory=lambda: defaultdict(int))
    numeric: dict[NumericKey, NumericCell] = field(default_factory=dict)
    rows: int = 0
    k: int = DEFAULT_K
    packed: list[PackedCell] = field(default_factory=list)

    def count(self, key: CountKey, n: int = 1) -> None:
        """Add ``n`` to one counter."""
        if n:
            self.counts[key] += int(n)

    def cell(self, key: NumericKey) -> NumericCell:
        """The numeric cell at ``key`` (created empty)."""
        cell = self.numeric.get(key)
        if cell is None:
            cell = self.numeric[key] = NumericCell(sketch=QuantileSketch(self.k))
        return cell

    def add_values(
        self, key: NumericKey, values: np.ndarray, *, rows: int, missing: int, invalid: int
    ) -> None:
        """Add finite ``values`` (NaN entries are ignored) and the row counts to a cell."""
        cell = self.cell(key)
        cell.rows += int(rows)
        cell.missing += int(missing)
        cell.invalid += int(invalid)
        finite = values[np.isfinite(values)]
        if finite.size:
            cell.total += float(finite.sum())
            cell.sketch.update(finite)

    @property
    def buckets(self) -> list[int]:
        """The bucket keys touched, sorted."""
        keys = {k[0] for k in self.counts} | {k[0] for k in self.numeric}
        keys |= {p[0][0] for p in self.packed}
        return sorted(keys)
