"""Columnar parsing of the log's JSON documents: the bulk paths (bytes as the log reader gives
them, str, one Arrow block) and the row-by-row path agree on every value, flag and count."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tabguard.monitoring._parse import ParsedColumn, parse_objects

COLUMNS: dict[str, tuple[Any, Any]] = {
    "AGE": ("number", None),
    "LIMIT_BAL": ("number", None),
    "EDUCATION": ("category", (1, 2, 3)),
    "channel": ("category", ("online", "branch")),
    "flag": ("category", (True, False)),
}

_number = st.one_of(
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
)
_value = st.one_of(
    st.none(),
    _number,
    st.booleans(),
    st.text(max_size=8),
    st.lists(st.integers(0, 3), max_size=2),
)
_object = st.dictionaries(
    st.sampled_from([*COLUMNS, "other", "SEX"]), _value, max_size=len(COLUMNS) + 2
)
#: A row: a JSON object (often well formed, sometimes with a wrong type), or text that is no
#: object at all (hand-edited rows).
_row = st.one_of(
    _object.map(lambda o: json.dumps(o, separators=(",", ":"))),
    _object.map(json.dumps),  # spaces after separators
    st.sampled_from(
        [
            "{}",
            "[1,2]",
            "null",
            "{not json",
            "",
            '{"AGE": NaN}',
            '{\n"AGE": 3}',
            '{"AGE":1}{"AGE":2}',
        ]
    ),
)


def _same(a: dict[str, ParsedColumn], b: dict[str, ParsedColumn]) -> None:
    for name in COLUMNS:
        x, y = a[name], b[name]
        np.testing.assert_array_equal(x.missing, y.missing, err_msg=name)
        np.testing.assert_array_equal(x.invalid, y.invalid, err_msg=name)
        if x.numbers is not None:
            np.testing.assert_array_equal(x.numbers, y.numbers, err_msg=name)
        if x.labels is not None:
            assert x.labels.tolist() == y.labels.tolist(), name


def _row_by_row(texts: list[str], *, empty: bool) -> tuple[dict[str, ParsedColumn], np.ndarray]:
    """Each row parsed alone: the reference the bulk paths must match."""
    parts = [parse_objects([t], COLUMNS, empty=empty) for t in texts]
    merged = {
        name: ParsedColumn(
            numbers=None
            if parts[0][0][name].numbers is None
            else np.concatenate([p[0][name].numbers for p in parts]),
            labels=None
            if parts[0][0][name].labels is None
            else np.concatenate([p[0][name].labels for p in parts]),
            missing=np.concatenate([p[0][name].missing for p in parts]),
            invalid=np.concatenate([p[0][name].invalid for p in parts]),
        )
        for name in COLUMNS
    }
    return merged, np.concatenate([p[1] for p in parts])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_row, min_size=1, max_size=40), st.booleans())
def test_bulk_bytes_and_str_match_row_by_row(texts: list[str], empty: bool) -> None:
    reference, ref_objects = _row_by_row(texts, empty=empty)
    as_bytes = np.array([t.encode() for t in texts], dtype=object)
    for given_texts in (as_bytes, texts):
        parsed, is_object, _slow = parse_objects(given_texts, COLUMNS, empty=empty)
        np.testing.assert_array_equal(is_object, ref_objects)
        _same(parsed, reference)


def test_well_formed_rows_take_the_bulk_path() -> None:
    rows = [
        json.dumps({"AGE": 30 + i, "LIMIT_BAL": 1000.5 * i, "EDUCATION": 2}).encode()
        for i in range(500)
    ]
    parsed, is_object, slow = parse_objects(np.array(rows, dtype=object), COLUMNS)
    assert slow == 0 and is_object.all()
    assert parsed["AGE"].numbers is not None
    assert parsed["AGE"].numbers[:3].tolist() == [30.0, 31.0, 32.0]
    assert parsed["EDUCATION"].labels is not None
    assert set(parsed["EDUCATION"].labels.tolist()) == {"2"}


@pytest.mark.parametrize("bad", [b"{not json", b'{"AGE": "thirty"}', b'{"AGE": 1}{"AGE": 2}'])
def test_one_bad_row_costs_only_its_block(bad: bytes) -> None:
    rows = [json.dumps({"AGE": i}).encode() for i in range(1000)]
    rows[500] = bad
    parsed, _is_object, slow = parse_objects(np.array(rows, dtype=object), COLUMNS)
    assert 0 < slow <= 64  # halved down to one small block parsed row by row
    numbers = parsed["AGE"].numbers
    assert numbers is not None and numbers[499] == 499.0 and numbers[501] == 501.0


def test_empty_object_is_outside_the_domain_when_asked() -> None:
    rows = np.array([b"{}", b'{"AGE":3}', b"{ }"], dtype=object)
    assert parse_objects(rows, COLUMNS)[1].tolist() == [True, True, True]
    assert parse_objects(rows, COLUMNS, empty=False)[1].tolist() == [False, True, True]


def test_empty_texts_are_no_objects() -> None:
    parsed, is_object, slow = parse_objects(np.array([b"", b""], dtype=object), COLUMNS)
    assert is_object.tolist() == [False, False] and slow == 0
    assert parsed["AGE"].missing.all()
