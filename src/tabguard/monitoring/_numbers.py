"""The prediction log's ``numbers`` column: each record's raw attributes and model features as
one binary vector, so ``tabguard monitor update`` reads them without parsing JSON.

Parsing the ``raw`` and ``features`` JSON documents was the largest cost of an update (about
190 ns per number with Arrow's bulk parser). The service's log writer (its writer thread, off
the request path) therefore also stores, per row, the numbers the monitor would extract from
those documents, in the order of a :class:`NumberLayout` (the contract's features as raw
attributes, then as model features), with orjson, row by row. The JSON documents stay the
source of truth and stay human-readable; only plain values are coded (finite numbers,
declared categories), and any row holding something else is left to the monitor's own JSON
parser, so both paths give the same columns (a hypothesis test checks it).

Format (little-endian)::

    bytes 0-3    b"TGN1"                          magic and version
    bytes 4-11   layout fingerprint               first 8 bytes of sha256(layout JSON)
    byte  12     flags                            bit 0: raw is an object,
                                                  bit 1: features is a non-empty object
    bytes 13-15  zero
    then         float64 per layout column        number: the value, NaN when missing
                                                  (+inf, read as invalid, is never written);
                                                  category: index of the canonical label in
                                                  the layout's categories, NaN when missing

A row holding anything but plain values gets no vector (``NULL``); so does every row of a
log written without a layout (old logs, a contract with an undeclared category column). The
monitor reads such rows, and rows written under another layout (another contract), from
their JSON, as before.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from tabguard.monitoring._parse import ColumnType, ParsedColumn, canonical_label

MAGIC = b"TGN1"
HEADER_BYTES = 16
#: Bytes of the header that name the layout (magic + fingerprint): a reader asks SQL for the
#: vector only when they match its own layout, and for the JSON documents otherwise.
PREFIX_BYTES = 12
_RAW_OBJECT, _FEATURES_OBJECT = 1, 2
#: Integers of at most this magnitude are exact as float64.
_EXACT = 2**53
_UNREADABLE = object()


def _document(text: str | bytes | None) -> Any:
    """The parsed JSON text (``None`` stays ``None``), or :data:`_UNREADABLE`."""
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return _UNREADABLE


@dataclass(frozen=True)
class LayoutColumn:
    """One column of a :class:`NumberLayout`.

    Attributes
    ----------
    kind : {'raw', 'feature'}
        Which document the value comes from.
    name : str
        Its key in that document.
    type : {'number', 'category'}
    labels : tuple of str
        Category columns: the canonical labels of the declared categories (code = index).
    categories : tuple
        The declared categories as the contract types them (they choose the bulk parser's
        column type: numbers parse as numbers; not part of the fingerprint).
    """

    kind: str
    name: str
    type: ColumnType
    labels: tuple[str, ...] = ()
    categories: tuple[Any, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class NumberLayout:
    """Which numbers a ``numbers`` vector holds, in which order.

    Build it with :meth:`from_contract`: it depends on the contract only, so the writer (the
    service's model) and the monitor (its model directory) agree whichever model of that
    contract each one has (a deployment swaps models under the same contract).
    """

    columns: tuple[LayoutColumn, ...]

    @classmethod
    def from_contract(cls, contract: Any) -> NumberLayout | None:
        """Every contract feature as a raw attribute, then every contract feature as a model
        feature (a model's features are contract features by name; those it does not use,
        protected ones included, are missing in its rows and cost 8 bytes each).

        Returns ``None`` when a category column declares no categories (its labels cannot be
        coded): such a log is read from its JSON.
        """
        names = list(contract.features)
        cols: list[LayoutColumn] = []
        for kind, group in (("raw", names), ("feature", names)):
            for name in group:
                f = contract.features[name]
                if f.is_numeric:
                    cols.append(LayoutColumn(kind, name, "number"))
                    continue
                cats = tuple(f.categories or ()) if f.type == "category" else (True, False)
                if not cats:
                    return None
                labels = tuple(str(canonical_label(c)) for c in cats)
                cols.append(LayoutColumn(kind, name, "category", labels, cats))
        return cls(tuple(cols))

    @property
    def fingerprint(self) -> bytes:
        """8 bytes naming this layout (sha256 of its canonical JSON)."""
        text = json.dumps(
            [[c.kind, c.name, c.type, list(c.labels)] for c in self.columns],
            separators=(",", ":"),
        )
        return hashlib.sha256(text.encode("utf-8")).digest()[:8]

    @property
    def prefix(self) -> bytes:
        """The first :data:`PREFIX_BYTES` bytes of every vector of this layout."""
        return MAGIC + self.fingerprint

    @property
    def row_bytes(self) -> int:
        """Length of one vector."""
        return HEADER_BYTES + 8 * len(self.columns)

    def index(self, kind: str, name: str, type_: ColumnType) -> int | None:
        """Position of a column of this kind, name and type (``None``: not in the layout)."""
        for i, c in enumerate(self.columns):
            if c.kind == kind and c.name == name and c.type == type_:
                return i
        return None

    # ---- writing ----------------------------------------------------------------------------

    def encode(
        self, raw_texts: Sequence[str | bytes | None], feature_texts: Sequence[str | bytes | None]
    ) -> list[bytes | None]:
        """The vector of each row, from the JSON texts the log stores; ``None`` for a row
        holding anything but plain values (a category outside the declared ones, a number
        column holding text, a document orjson refuses): the monitor reads those rows from
        their JSON, with its own parser, so the vector never decides an unusual case.

        Row by row with orjson (a few microseconds per row, in the log's writer thread): the
        bulk parser costs more on the writer's small batches.
        """
        out: list[bytes | None] = []
        head = self.prefix
        pack = struct.Struct(f"<{len(self.columns)}d").pack
        plan = [
            (c.kind == "raw", c.name, {lab: float(i) for i, lab in enumerate(c.labels)})
            if c.type == "category"
            else (c.kind == "raw", c.name, None)
            for c in self.columns
        ]
        nan = math.nan
        for raw_text, feat_text in zip(raw_texts, feature_texts, strict=True):
            raw = _document(raw_text)
            feats = _document(feat_text)
            if raw is _UNREADABLE or feats is _UNREADABLE:
                out.append(None)
                continue
            raw_obj = isinstance(raw, dict)
            feat_obj = isinstance(feats, dict) and len(feats) > 0
            values: list[float] = []
            for is_raw, name, lookup in plan:
                doc = raw if is_raw else feats
                value = doc.get(name) if (raw_obj if is_raw else feat_obj) else None
                if value is None:
                    values.append(nan)
                    continue
                if lookup is None:
                    kind = type(value)
                    if kind is float:
                        number = value if math.isfinite(value) else None
                    elif kind is int and -_EXACT < value < _EXACT:
                        number = float(value)
                    else:
                        number = None
                    if number is None:  # text, a bool, a huge int: the JSON path decides
                        break
                    values.append(number)
                    continue
                if type(value) not in (int, float, str, bool):
                    break
                code = lookup.get(canonical_label(value))  # type: ignore[arg-type]
                if code is None:
                    break  # outside the declared categories
                values.append(code)
            if len(values) != len(plan):
                out.append(None)
                continue
            flags = (_RAW_OBJECT if raw_obj else 0) | (_FEATURES_OBJECT if feat_obj else 0)
            out.append(head + bytes((flags, 0, 0, 0)) + pack(*values))
        return out

    # ---- reading ----------------------------------------------------------------------------

    def decode(
        self,
        blobs: Sequence[bytes] | np.ndarray,
        raw_cols: dict[str, tuple[ColumnType, Any]],
        feat_cols: dict[str, tuple[ColumnType, Any]],
    ) -> tuple[dict[str, ParsedColumn], np.ndarray, dict[str, ParsedColumn], np.ndarray]:
        """Parsed columns (as :func:`parse_objects` gives them) of vectors of this layout.

        Every blob must be a vector of this layout (:meth:`usable_for` checked the columns;
        the reader selected the rows by :attr:`prefix`).

        Returns
        -------
        raw, raw_is_object, features, features_is_object
        """
        n = len(blobs)
        width = self.row_bytes
        joined = b"".join(blobs)
        if len(joined) != n * width:
            raise ValueError(f"numbers vectors of {len(joined)} bytes for {n} rows of {width}")
        table = np.frombuffer(joined, dtype=np.uint8).reshape(n, width)
        flags = table[:, PREFIX_BYTES]
        # One column per row of `values` (a transposed copy): each column is then contiguous,
        # and NaN / infinity are found for the whole batch in two passes, not one per column.
        values = np.ascontiguousarray(
            np.ascontiguousarray(table[:, HEADER_BYTES:]).view("<f8").T
        ).astype(np.float64, copy=False)
        missing = np.isnan(values)
        infinite = np.isinf(values)
        raw_obj = (flags & _RAW_OBJECT).astype(bool)
        feat_obj = (flags & _FEATURES_OBJECT).astype(bool)
        raw = self._columns("raw", values, missing, infinite, raw_cols)
        feats = self._columns("feature", values, missing, infinite, feat_cols)
        return raw, raw_obj, feats, feat_obj

    def usable_for(
        self,
        raw_cols: dict[str, tuple[ColumnType, Any]],
        feat_cols: dict[str, tuple[ColumnType, Any]],
    ) -> bool:
        """Whether every column the monitor extracts is in this layout, with its type."""
        return all(
            self.index(kind, name, type_) is not None
            for kind, cols in (("raw", raw_cols), ("feature", feat_cols))
            for name, (type_, _cats) in cols.items()
        )

    def _columns(
        self,
        kind: str,
        values: np.ndarray,
        missing: np.ndarray,
        infinite: np.ndarray,
        cols: dict[str, tuple[ColumnType, Any]],
    ) -> dict[str, ParsedColumn]:
        """Columns of ``values`` (one layout column per row), with its NaN and infinity masks."""
        out: dict[str, ParsedColumn] = {}
        n = values.shape[1]
        for name, (type_, _cats) in cols.items():
            j = self.index(kind, name, type_)
            if j is None:
                raise ValueError(f"{kind} column {name!r} ({type_}) is not in the layout")
            v = values[j]
            if type_ == "number":
                invalid = infinite[j]
                out[name] = ParsedColumn(
                    numbers=np.where(invalid, np.nan, v) if invalid.any() else v,
                    labels=None,
                    missing=missing[j],
                    invalid=invalid,
                )
                continue
            lookup = np.asarray([*self.columns[j].labels, None], dtype=object)
            # A code that names no category (a hand-edited vector) reads as missing.
            known = (v >= 0) & (v < len(lookup) - 1) & (v == np.floor(v))
            codes = np.where(known, v, len(lookup) - 1).astype(np.int64)
            out[name] = ParsedColumn(
                numbers=None,
                labels=lookup[codes],
                missing=~known,
                invalid=np.zeros(n, dtype=bool),
            )
        return out


def scatter(
    n: int, parts: Sequence[tuple[np.ndarray, dict[str, ParsedColumn], np.ndarray]]
) -> tuple[dict[str, ParsedColumn], np.ndarray]:
    """Columns of ``n`` rows put together from parts parsed apart (vectors and JSON).

    ``parts``: ``(row positions, columns, is_object)`` each; together they cover every row.
    """
    first = parts[0][1]
    out: dict[str, ParsedColumn] = {}
    for name, col in first.items():
        out[name] = ParsedColumn(
            numbers=np.full(n, np.nan) if col.numbers is not None else None,
            labels=np.full(n, None, dtype=object) if col.labels is not None else None,
            missing=np.ones(n, dtype=bool),
            invalid=np.zeros(n, dtype=bool),
        )
    is_object = np.zeros(n, dtype=bool)
    for rows, cols, obj in parts:
        is_object[rows] = obj
        for name, col in cols.items():
            target = out[name]
            target.missing[rows] = col.missing
            target.invalid[rows] = col.invalid
            if target.numbers is not None and col.numbers is not None:
                target.numbers[rows] = col.numbers
            if target.labels is not None and col.labels is not None:
                target.labels[rows] = col.labels
    return out, is_object
