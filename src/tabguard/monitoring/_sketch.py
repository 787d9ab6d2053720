"""Mergeable quantile sketches: the one module that imports Apache DataSketches.

Numeric columns are summarised per bucket and segment by a KLL *doubles* sketch
(``datasketches.kll_doubles_sketch``). Its binary form is the DataSketches serialisation shared
by the C++, Java and Python libraries, which is also what Spark >= 4.1's
``kll_sketch_agg_double`` returns: a sketch built by Spark and one built here merge with each
other (``tests/monitoring/test_sketch.py`` pins the header layout of the format).

KLL with parameter ``k`` answers a rank query within ``rank_error(k)`` of the true rank with
99 % confidence, whatever the number of values and however many sketches were merged:
1.33 % for k = 200 (Spark's default), 0.68 % for k = 400.

The heavy-hitter sketch of segment values (``frequent_strings_sketch``) lives here too, so no
other module imports the library.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from typing import Any

import datasketches
import numpy as np

from tabguard.errors import TabguardError

#: The default KLL parameter: Spark's ``kll_sketch_agg_double`` default, so sketches from both
#: engines have the same accuracy when merged (a merge keeps the smaller k).
DEFAULT_K = 200
#: Bounds DataSketches accepts for k.
MIN_K, MAX_K = 8, 65535
#: DataSketches family id of KLL sketches (byte 2 of the serialised form).
KLL_FAMILY_ID = 15


class SketchError(TabguardError, ValueError):
    """Bytes that do not hold a KLL doubles sketch (corrupt or hand-edited store row)."""


def _ds() -> Any:
    return datasketches


def rank_error(k: int = DEFAULT_K) -> float:
    """Normalised rank error of a single quantile query (99 % confidence) for KLL ``k``."""
    return float(_ds().kll_doubles_sketch.get_normalized_rank_error(int(k), False))


class QuantileSketch:
    """A KLL doubles sketch of one numeric column (DataSketches).

    Parameters
    ----------
    k : int, default 200
        Accuracy/size parameter (8 to 65535); rank error ~ 1.33 % at 200, 0.68 % at 400.

    Examples
    --------
    >>> s = QuantileSketch()
    >>> s.update(np.arange(1000, dtype=float))
    >>> s.n
    1000
    >>> round(s.quantiles([0.5])[0])
    500
    """

    __slots__ = ("_sk",)

    def __init__(self, k: int = DEFAULT_K, *, _sketch: Any = None) -> None:
        if _sketch is not None:
            self._sk = _sketch
            return
        if not MIN_K <= int(k) <= MAX_K:
            raise ValueError(f"sketch k must be in [{MIN_K}, {MAX_K}]; got {k!r}")
        self._sk = _ds().kll_doubles_sketch(int(k))

    # ---- building --------------------------------------------------------------------------

    def update(self, values: np.ndarray) -> None:
        """Add finite values (NaN and infinities are skipped: count them apart)."""
        arr = np.asarray(values, dtype=np.float64)
        if arr.size == 0:
            return
        finite = np.isfinite(arr)
        if not finite.all():
            arr = arr[finite]
            if arr.size == 0:
                return
        self._sk.update(np.ascontiguousarray(arr))

    @classmethod
    def fresh(cls, k: int) -> QuantileSketch:
        """An empty sketch without argument checks (hot path; ``k`` already validated)."""
        out = cls.__new__(cls)
        out._sk = datasketches.kll_doubles_sketch(k)
        return out

    def summary(self, levels: Sequence[float]) -> list[float]:
        """``[min, max, *quantiles(levels)]`` in one library call (NaN when empty)."""
        if self._sk.is_empty():
            return [math_nan()] * (2 + len(levels))
        values = self._sk.get_quantiles([0.0, 1.0, *levels])
        return [float(v) for v in values]

    def update_finite(self, values: np.ndarray) -> None:
        """Add values known to be finite float64 (the caller filtered them; no check)."""
        self._sk.update(values)

    def merge_native(self, other: Any) -> None:
        """Fold a ``datasketches.kll_doubles_sketch`` (built by :mod:`._cells`) into this one."""
        self._sk.merge(other)

    def merge(self, other: QuantileSketch) -> None:
        """Fold ``other`` into this sketch (the result summarises both value sets)."""
        self._sk.merge(other._sk)

    # ---- reading ---------------------------------------------------------------------------

    @property
    def k(self) -> int:
        """The sketch's k."""
        return int(self._sk.k)

    @property
    def n(self) -> int:
        """Number of values summarised."""
        return int(self._sk.n)

    @property
    def empty(self) -> bool:
        """Whether no value was added."""
        return bool(self._sk.is_empty())

    @property
    def min(self) -> float:
        """Smallest value (exact); NaN when empty."""
        return math_nan() if self.empty else float(self._sk.get_min_value())

    @property
    def max(self) -> float:
        """Largest value (exact); NaN when empty."""
        return math_nan() if self.empty else float(self._sk.get_max_value())

    def quantiles(self, levels: Sequence[float]) -> list[float]:
        """Values at the given ranks in [0, 1] (NaN when empty)."""
        if self.empty:
            return [math_nan()] * len(levels)
        return [float(v) for v in self._sk.get_quantiles(list(levels))]

    def cdf(self, split_points: Sequence[float]) -> np.ndarray:
        """Share of values ``<= s`` for each split point (increasing); empty → NaN."""
        if self.empty:
            return np.full(len(split_points), np.nan)
        if len(split_points) == 0:
            return np.zeros(0)
        out = np.asarray(self._sk.get_cdf(list(split_points), True), dtype=float)
        return out[:-1]  # the last entry is the total mass (1.0)

    def rank(self, value: float) -> float:
        """Share of values ``<= value`` (about)."""
        return float(self._sk.get_rank(float(value), True)) if not self.empty else math_nan()

    # ---- storage ---------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The DataSketches serialisation (compatible with Java/C++ and Spark)."""
        return bytes(self._sk.serialize())

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> QuantileSketch:
        """Read a serialised KLL doubles sketch.

        Raises
        ------
        SketchError
            When the bytes are not a KLL sketch (checked before the library parses them).
        """
        return cls(_sketch=native_from_bytes(data))


def native_from_bytes(data: bytes | bytearray | memoryview) -> Any:
    """The ``datasketches.kll_doubles_sketch`` of serialised bytes (hot path of window queries:
    no wrapper).

    Raises
    ------
    SketchError
        When the bytes are not a KLL sketch (checked before the library parses them).
    """
    raw = data if isinstance(data, bytes) else bytes(data)
    if len(raw) < 8 or raw[2] != KLL_FAMILY_ID:
        raise SketchError(
            f"not a DataSketches KLL sketch ({len(raw)} bytes, family id "
            f"{raw[2] if len(raw) > 2 else None}, expected {KLL_FAMILY_ID})"
        )
    try:
        return datasketches.kll_doubles_sketch.deserialize(raw)
    except (RuntimeError, ValueError, IndexError) as exc:
        raise SketchError(f"corrupt KLL sketch ({len(raw)} bytes): {exc}") from None


def math_nan() -> float:
    """A float NaN (one spelling for the module)."""
    return float("nan")


def merge_bytes(blobs: Iterable[bytes | None], k: int = DEFAULT_K) -> QuantileSketch:
    """Merge serialised sketches into one (``None`` entries are skipped).

    Raises
    ------
    SketchError
        When one of the blobs is corrupt.
    """
    out = QuantileSketch(k)
    for blob in blobs:
        if blob:
            out.merge(QuantileSketch.from_bytes(blob))
    return out


class FrequentValues:
    """Approximate counts of the most frequent strings (DataSketches frequent items).

    Used to decide which segment values earn their own segment: bounded memory whatever the
    number of distinct values (a flood of random values cannot grow it), and mergeable.

    Parameters
    ----------
    lg_max_k : int, default 10
        log2 of the number of counters (1024 by default).
    """

    __slots__ = ("_sk",)

    def __init__(self, lg_max_k: int = 10, *, _sketch: Any = None) -> None:
        self._sk = _sketch if _sketch is not None else _ds().frequent_strings_sketch(lg_max_k)

    def update(self, value: str, weight: int = 1) -> None:
        """Count ``weight`` occurrences of ``value``."""
        self._sk.update(value, int(weight))

    def estimate(self, value: str) -> int:
        """Estimated count of ``value`` (an upper bound within the sketch's error)."""
        return int(self._sk.get_estimate(value))

    def lower_bound(self, value: str) -> int:
        """A count ``value`` certainly reached."""
        return int(self._sk.get_lower_bound(value))

    @property
    def total(self) -> int:
        """Total weight counted."""
        weight = self._sk.total_weight
        return int(weight() if callable(weight) else weight)

    def to_text(self) -> str:
        """Base64 of the DataSketches serialisation."""
        return base64.b64encode(bytes(self._sk.serialize())).decode("ascii")

    @classmethod
    def from_text(cls, text: str) -> FrequentValues:
        """Inverse of :meth:`to_text`.

        Raises
        ------
        SketchError
            When the text is not a serialised frequent-items sketch.
        """
        try:
            raw = base64.b64decode(text.encode("ascii"), validate=True)
            return cls(_sketch=_ds().frequent_strings_sketch.deserialize(raw))
        except (ValueError, RuntimeError, IndexError) as exc:
            raise SketchError(f"corrupt frequent-items sketch: {exc}") from None
