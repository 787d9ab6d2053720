"""Columnar parsing of the log's JSON text columns.

The log stores raw attributes and guarded features as one JSON object per row. Parsing them
row by row in Python caps an update at a few ten thousand rows per second, so objects are
parsed in bulk by Apache Arrow's JSON reader against a schema built from the contract
(numbers as float64, categories as their declared type). A block Arrow refuses — a
hand-edited row, a value of the wrong type in a refused request, ``"NaN"`` written for a
non-finite number — is re-parsed row by row with the standard library, so one bad row costs
its block the slow path, never the update.

Short, repetitive JSON columns (segment, guard actions, probing signals, errors) are parsed
once per distinct text (:func:`parse_distinct`).
"""

from __future__ import annotations

import io
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from tabguard._plain import plain

log = logging.getLogger("tabguard.monitoring")

ColumnType = Literal["number", "category"]
#: A block Arrow refuses is split in halves down to this many rows, then parsed row by row:
#: one bad row costs about this many rows of slow parsing.
_RETRY_BLOCK = 64
#: Arrow parses the JSON lines in blocks of this size on its thread pool.
_BLOCK_BYTES = 4 << 20


@dataclass
class ParsedColumn:
    """One column of a JSON-object column, parsed.

    Attributes
    ----------
    numbers : ndarray of float64 or None
        Numeric columns: the value, NaN when missing or invalid.
    labels : ndarray of object or None
        Category columns: the canonical text of the value (``None`` when missing).
    missing : ndarray of bool
        The key is absent or null.
    invalid : ndarray of bool
        A value of the wrong type (numbers: not a finite number).
    """

    numbers: np.ndarray | None
    labels: np.ndarray | None
    missing: np.ndarray
    invalid: np.ndarray


def canonical_label(value: Any) -> str | None:
    """Text of a category or segment value: ``2`` and ``2.0`` are ``"2"``, ``True`` is
    ``"true"``; ``None`` stays ``None``."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value) and abs(value) < 2**53:
            return str(int(value))
        return repr(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))[:256]


_OPEN = ("{", b"{")
_EMPTY = ("{}", b"{}")


def object_flags(texts: Sequence[Any] | np.ndarray, *, empty: bool = True) -> np.ndarray:
    """Per row, whether the text (str or bytes) starts like a JSON object; with
    ``empty=False``, the empty object ``{}`` does not count."""
    if empty:
        flags = (isinstance(t, str | bytes) and t[:1] in _OPEN for t in texts)
    else:
        flags = (isinstance(t, str | bytes) and t[:1] in _OPEN and t not in _EMPTY for t in texts)
    return np.fromiter(flags, dtype=bool, count=len(texts))


def _not_empty(texts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Rows other than the empty object ``{}`` (checked only where the length is 2)."""
    out = np.ones(len(texts), dtype=bool)
    two = np.flatnonzero(lengths == 2)
    if two.size:
        out[two] = [t not in _EMPTY for t in texts[two]]
    return out


def _arrow_type(kind: ColumnType, categories: Sequence[Any] | None) -> Any:
    import pyarrow as pa

    if kind == "number":
        return pa.float64()
    cats = list(categories or [])
    if cats and all(isinstance(c, bool) for c in cats):
        return pa.bool_()
    if cats and all(isinstance(c, int | float) and not isinstance(c, bool) for c in cats):
        return pa.float64()
    return pa.string()


def parse_objects(
    texts: Sequence[str | bytes | None] | np.ndarray,
    columns: Mapping[str, tuple[ColumnType, Sequence[Any] | None]],
    *,
    empty: bool = True,
) -> tuple[dict[str, ParsedColumn], np.ndarray, int]:
    """Parse a column of JSON objects into typed columns.

    Parameters
    ----------
    texts : sequence of str, bytes or None
        One JSON text per row (UTF-8 bytes, as the log reader gives them, or str).
    columns : dict
        ``name -> (type, categories)``: which keys to extract and how.
    empty : bool, default True
        Whether the empty object ``{}`` counts as an object (refused requests log ``{}`` as
        their features: no model input at all).

    Returns
    -------
    columns : dict of ParsedColumn
    is_object : ndarray of bool
        Rows whose text is a JSON object (others count for no column).
    slow_rows : int
        Rows parsed one by one because their block could not be parsed in bulk.
    """
    n = len(texts)
    arr = texts if isinstance(texts, np.ndarray) else np.asarray(texts, dtype=object)
    out = {
        name: ParsedColumn(
            numbers=np.full(n, np.nan) if kind == "number" else None,
            labels=np.full(n, None, dtype=object) if kind == "category" else None,
            missing=np.ones(n, dtype=bool),
            invalid=np.zeros(n, dtype=bool),
        )
        for name, (kind, _cats) in columns.items()
    }
    whole = _lines(arr)
    if whole is None:  # str or missing texts: flags row by row
        is_object = object_flags(arr, empty=empty)
        body = None
    else:
        body, is_object, lengths = whole
        if not empty:
            is_object &= _not_empty(arr, lengths)
    idx = np.flatnonzero(is_object)
    slow = 0
    if idx.size and columns:
        # Every row an object (the usual case): the lines already joined are parsed as they are.
        ready = body if body is not None and idx.size == n else None
        slow = _parse_block(arr, idx, columns, out, is_object, ready)
    return out, is_object, slow


def _lines(arr: np.ndarray) -> tuple[bytes, np.ndarray, np.ndarray] | None:
    """When every text is bytes: the texts as lines, which of them start with ``{``, and
    their lengths."""
    n = len(arr)
    try:
        lengths = np.fromiter(map(len, arr), dtype=np.int64, count=n)
        body = b"\n".join(arr)
    except TypeError:
        return None
    if not body:  # no rows, or only empty texts
        return body, np.zeros(n, dtype=bool), lengths
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(lengths[:-1] + 1, out=starts[1:])
    # An empty last text starts one past the end: its length (0) already says "no object".
    first = np.frombuffer(body, dtype=np.uint8)[np.minimum(starts, len(body) - 1)]
    return body, (lengths > 0) & (first == ord("{")), lengths


def _parse_block(
    arr: np.ndarray,
    idx: np.ndarray,
    columns: Mapping[str, tuple[ColumnType, Sequence[Any] | None]],
    out: dict[str, ParsedColumn],
    is_object: np.ndarray,
    body: bytes | None = None,
) -> int:
    table = _arrow_parse(arr[idx] if body is None else body, len(idx), columns)
    if table is not None:
        _fill_from_arrow(table, idx, columns, out)
        return 0
    if idx.size > _RETRY_BLOCK:
        half = idx.size // 2
        return _parse_block(arr, idx[:half], columns, out, is_object) + _parse_block(
            arr, idx[half:], columns, out, is_object
        )
    _fill_slowly(arr, idx, columns, out, is_object)
    return int(idx.size)


def _arrow_parse(
    texts: np.ndarray | bytes, rows: int, columns: Mapping[str, tuple[ColumnType, Any]]
) -> Any:
    import pyarrow as pa
    import pyarrow.json as pj

    # Line-delimited input: a row holding a newline would be split (at a block boundary, or
    # into two rows), which the parse error or the row count below detects (the block then
    # takes the slow path). Blocks of a few MB are parsed by Arrow's threads in parallel.
    body = texts if isinstance(texts, bytes) else _joined(texts)
    schema = pa.schema([(name, _arrow_type(k, c)) for name, (k, c) in columns.items()])
    try:
        table = pj.read_json(
            io.BytesIO(body),
            read_options=pj.ReadOptions(block_size=_BLOCK_BYTES),
            parse_options=pj.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="ignore"
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeError):
        return None
    if table.num_rows != rows:
        return None
    return table


def _joined(texts: np.ndarray) -> bytes:
    """The texts as UTF-8 lines (bytes are taken as they are)."""
    try:
        return b"\n".join(texts)
    except TypeError:
        lines = (t if isinstance(t, bytes) else t.encode("utf-8", "surrogatepass") for t in texts)
        return b"\n".join(lines)


def _fill_from_arrow(
    table: Any,
    idx: np.ndarray,
    columns: Mapping[str, tuple[ColumnType, Any]],
    out: dict[str, ParsedColumn],
) -> None:
    import pyarrow as pa

    for name, (kind, _cats) in columns.items():
        col = table.column(name)
        target = out[name]
        nulls = col.is_null().to_numpy(zero_copy_only=False)
        target.missing[idx] = nulls
        if kind == "number":
            values = col.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
            finite = np.isfinite(values)
            if target.numbers is not None:
                target.numbers[idx] = np.where(finite, values, np.nan)
            target.invalid[idx] = ~finite & ~nulls
            continue
        if target.labels is None:
            continue
        values = col.to_numpy(zero_copy_only=False)
        if pa.types.is_string(col.type):
            labels = values
        else:
            import pandas as pd  # here only: a reader process parses JSON without pandas

            # Few distinct values: canonicalise each once.
            codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
            mapped = np.array([canonical_label(plain(u)) for u in uniques] + [None], dtype=object)
            labels = mapped[codes]
        target.labels[idx] = np.where(nulls, None, labels)


def _fill_slowly(
    arr: np.ndarray,
    idx: np.ndarray,
    columns: Mapping[str, tuple[ColumnType, Any]],
    out: dict[str, ParsedColumn],
    is_object: np.ndarray,
) -> None:
    for i in idx:
        try:
            obj = json.loads(arr[i])
        except (ValueError, RecursionError):
            obj = None
        if not isinstance(obj, dict):
            is_object[i] = False
            continue
        for name, (kind, _cats) in columns.items():
            value = obj.get(name)
            target = out[name]
            if value is None:
                continue
            target.missing[i] = False
            if kind == "number":
                number = _finite_number(value)
                if number is None:
                    target.invalid[i] = True
                elif target.numbers is not None:
                    target.numbers[i] = number
            elif target.labels is not None:
                target.labels[i] = canonical_label(value)


def _finite_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def parse_distinct(
    texts: Sequence[str | None] | np.ndarray, parse: Callable[[Any], Any]
) -> tuple[np.ndarray, list[Any]]:
    """Parse each distinct JSON text once.

    Returns
    -------
    codes : ndarray of int
        Per row, the index of its text in ``parsed`` (missing texts map to the entry for
        ``None``).
    parsed : list
        ``parse(json.loads(text))`` per distinct text (``parse(None)`` when the text is not
        JSON).
    """
    import pandas as pd  # in the updating process only (see _read.py)

    values: Any = np.asarray(texts, dtype=object)
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=False)
    parsed = []
    for text in uniques:
        try:
            value = json.loads(text) if isinstance(text, str) else None
        except (ValueError, RecursionError):
            value = None
        parsed.append(parse(value))
    return np.asarray(codes, dtype=np.int64), parsed
