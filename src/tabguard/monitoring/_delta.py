"""What one batch of log rows adds to the store: counts and sketches per bucket and segment.

A :class:`Delta` is plain data built by the aggregation and merged into a store in one
transaction (:meth:`MonitorStore.merge`). Keeping it apart from the store lets every backend
share one merge rule, and lets tests build deltas by hand.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from tabguard.monitoring._sketch import DEFAULT_K, QuantileSketch

#: Percentile levels kept as plain numbers per bucket (dashboards read them without merging).
SUMMARY_LEVELS = (0.01, 0.10, 0.50, 0.90, 0.99)
SUMMARY_COLUMNS = ("p01", "p10", "p50", "p90", "p99")

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

    def summary(self) -> dict[str, float | int | None]:
        """The plain-number columns stored beside the sketch."""
        sk = self.sketch
        qs = sk.quantiles(SUMMARY_LEVELS) if not sk.empty else [None] * len(SUMMARY_LEVELS)
        return {
            "rows": self.rows,
            "n": sk.n,
            "missing": self.missing,
            "invalid": self.invalid,
            "total": float(self.total),
            "vmin": None if sk.empty else sk.min,
            "vmax": None if sk.empty else sk.max,
            **dict(zip(SUMMARY_COLUMNS, qs, strict=True)),
        }


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
        return sorted(keys)
