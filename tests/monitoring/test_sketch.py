"""The DataSketches wrapper: accuracy, merge, serialisation format, corrupt bytes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tabguard.monitoring import FrequentValues, QuantileSketch, SketchError, merge_bytes, rank_error
from tabguard.monitoring._sketch import KLL_FAMILY_ID


def test_exact_below_k() -> None:
    s = QuantileSketch(200)
    s.update(np.array([5.0, 1.0, 3.0, np.nan, np.inf]))
    assert s.n == 3  # NaN and inf are skipped
    assert s.min == 1.0 and s.max == 5.0
    assert s.quantiles([0.0, 0.5, 1.0]) == [1.0, 3.0, 5.0]


def test_empty_sketch_answers_nan() -> None:
    s = QuantileSketch()
    assert s.empty and s.n == 0
    assert all(np.isnan(s.quantiles([0.5, 0.9])))
    assert np.isnan(s.min)
    assert np.isnan(s.cdf([0.0])).all()


def test_rank_error_within_bound_on_merged_buckets() -> None:
    rng = np.random.default_rng(3)
    parts = [rng.lognormal(3, 1, size=int(n)) for n in rng.integers(50, 5000, size=48)]
    merged = merge_bytes(QuantileSketch_from(p).to_bytes() for p in parts)
    exact = np.sort(np.concatenate(parts))
    for level in (0.01, 0.99):
        value = merged.quantiles([level])[0]
        true_rank = np.searchsorted(exact, value, side="right") / exact.size
        assert abs(true_rank - level) <= rank_error(200)


def QuantileSketch_from(values: np.ndarray) -> QuantileSketch:  # noqa: N802
    s = QuantileSketch(200)
    s.update(values)
    return s


def test_serialised_header_is_the_datasketches_kll_format() -> None:
    """Bytes laid out as DataSketches KLL (what Spark's kll_sketch_agg_double returns)."""
    s = QuantileSketch(200)
    s.update(np.arange(1000, dtype=float))
    raw = s.to_bytes()
    assert raw[0] == 5  # preamble ints of a sketch with more than one item
    assert raw[1] == 1  # serial version of the compact (empty/full) form
    assert raw[2] == KLL_FAMILY_ID
    assert int.from_bytes(raw[4:6], "little") == 200  # k
    assert raw[6] == 8  # m
    assert int.from_bytes(raw[8:16], "little") == 1000  # n
    back = QuantileSketch.from_bytes(raw)
    assert back.n == 1000 and back.quantiles([0.5]) == s.quantiles([0.5])


@pytest.mark.parametrize(
    "blob", [b"", b"\x00" * 4, b"\x05\x01\x0e\x00" + b"\x00" * 20, b"\x05\x01\x0f\x00\xc8\x00\x07"]
)
def test_corrupt_bytes_raise_sketch_error(blob: bytes) -> None:
    with pytest.raises(SketchError):
        QuantileSketch.from_bytes(blob)


def test_truncated_sketch_raises_sketch_error() -> None:
    s = QuantileSketch_from(np.arange(5000, dtype=float))
    with pytest.raises(SketchError):
        QuantileSketch.from_bytes(s.to_bytes()[:40])


def test_k_out_of_range() -> None:
    with pytest.raises(ValueError, match="k must be in"):
        QuantileSketch(4)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.floats(-1e6, 1e6), max_size=60), min_size=1, max_size=6))
def test_merge_equals_one_sketch_below_k(chunks: list[list[float]]) -> None:
    """Under k values in total, merging parts gives the exact same answers as one sketch."""
    whole = QuantileSketch_from(np.array([v for c in chunks for v in c], dtype=float))
    merged = merge_bytes(QuantileSketch_from(np.array(c, dtype=float)).to_bytes() for c in chunks)
    assert merged.n == whole.n
    if whole.n:
        levels = [0.0, 0.1, 0.5, 0.9, 1.0]
        assert merged.quantiles(levels) == whole.quantiles(levels)


def test_frequent_values_round_trip() -> None:
    f = FrequentValues(6)
    for i in range(2000):
        f.update(f"junk-{i}")
    f.update("online", 500)
    back = FrequentValues.from_text(f.to_text())
    assert back.estimate("online") >= 500
    assert back.total == 2500
    with pytest.raises(SketchError):
        FrequentValues.from_text("bm90IGEgc2tldGNo")
