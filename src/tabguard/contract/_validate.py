"""Validation of data frames and single records against a contract (requirement D1, S2).

Two entry points share one set of rule definitions:

* :func:`validate_frame` is vectorised (training data, audits, up to millions of rows) and
  parses loosely, as a CSV reader would;
* :class:`RecordValidator` checks one JSON record on the request path in microseconds and is
  strict about JSON types (a string is never a number, ``true`` is never ``1``).

Both report the same rule ids: ``required``/``missing``, ``type``, ``min``, ``max``,
``category``, ``precision``, ``unknown_field`` and ``rule:<name>`` for combination rules.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tabguard.contract._spec import Condition, Contract, FeatureSpec, Rule
from tabguard.errors import DataError, FieldError

_TRUE = {"true", "1", "yes", "t", "y"}
_FALSE = {"false", "0", "no", "f", "n"}


#: Integers longer than this many digits are shown shortened in errors (an attacker's
#: ``10**4000`` must not be echoed back, or logged, in full).
_INT_DIGITS_SHOWN = 24


def _fmt(v: Any) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    if isinstance(v, int) and not isinstance(v, bool):
        return _int_text(v)
    return repr(v) if isinstance(v, str) else str(v)


def _int_text(v: int) -> str:
    """An integer as text, shortened when it is longer than :data:`_INT_DIGITS_SHOWN` digits."""
    text = str(v)
    if len(text) <= _INT_DIGITS_SHOWN:
        return text
    digits = len(text) - (text[0] == "-")
    return f"{text[:12]}... ({digits} digits)"


def as_float(v: Any) -> float | None:
    """``float(v)``, or ``None`` for an integer beyond float range (``10**400``)."""
    try:
        return float(v)
    except OverflowError:
        return None


def _json_value(v: Any) -> Any:
    """Make a value JSON-safe for error payloads (numpy scalars, NaN, arbitrary objects)."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) > 2**53:
        return _int_text(v)  # beyond exact float (and JavaScript) integers: text
    if v is None or isinstance(v, bool | int | float | str):
        return v
    return repr(v)


def range_text(spec: FeatureSpec) -> str:
    """Human text of a feature's valid range, e.g. ``[18, 125]``."""
    lo = "-inf" if spec.min is None else _fmt(spec.min)
    hi = "inf" if spec.max is None else _fmt(spec.max)
    return f"[{lo}, {hi}]"


def decimals_ok(x: float, decimals: int) -> bool:
    """Whether ``x`` has at most ``decimals`` decimal places (tolerant to float noise)."""
    scaled = x * 10**decimals
    return abs(scaled - round(scaled)) <= 1e-6 * max(1.0, abs(scaled))


def message(name: str, spec: FeatureSpec, rule: str, value: Any) -> str:
    """The one-sentence message for a broken feature rule."""
    v = _fmt(value) if not isinstance(value, str) else repr(value)
    if rule in ("required", "missing"):
        return f"{name} is required (not nullable); got no value. Send a {spec.type}."
    if rule == "type":
        kind = {
            "integer": "a whole number",
            "number": "a finite number",
            "boolean": "true or false",
            "category": "one of the categories",
        }[spec.type]
        return f"{name} must be {kind}; got {v}."
    if rule == "min":
        return f"{name} must be >= {_fmt(spec.min)} (valid range {range_text(spec)}); got {v}."
    if rule == "max":
        return f"{name} must be <= {_fmt(spec.max)} (valid range {range_text(spec)}); got {v}."
    if rule == "category":
        return f"{name} must be one of {spec.categories!r}; got {v}."
    if rule == "precision":
        return f"{name} allows at most {spec.precision} decimal(s); got {v}."
    return f"{name} breaks rule {rule}; got {v}."


# --------------------------------------------------------------------------------------------
# Category canonicalisation: the same key for 1, 1.0 and the category 1; "a" for "a".
# --------------------------------------------------------------------------------------------
def _canon(v: Any) -> Any:
    if isinstance(v, bool | np.bool_):
        return ("b", bool(v))
    if isinstance(v, int | float | np.integer | np.floating):
        f = as_float(v)
        return ("n", f) if f is not None and math.isfinite(f) else ("x", repr(v))
    if isinstance(v, str):
        return ("s", v)
    return ("x", repr(v))


def map_distinct(
    col: pd.Series,
    fn: Any,
    missing: Any = None,
    dtype: Any = object,
    factorized: tuple[np.ndarray, Any] | None = None,
) -> np.ndarray:
    """Apply ``fn`` to each distinct value of ``col`` and spread the results to every row.

    The cost per row is one hash lookup (``pd.factorize``), not one Python call: validation of
    a million-row category column calls ``fn`` once per category. ``factorized``: ``col``'s
    ``pd.factorize(col, use_na_sentinel=True)`` when the caller has it.
    """
    codes, uniques = pd.factorize(col, use_na_sentinel=True) if factorized is None else factorized
    mapped = np.array([fn(v) for v in uniques] + [missing], dtype=dtype)
    return mapped[codes]  # the sentinel -1 picks the trailing ``missing``


def _canon_lenient(v: Any, text: frozenset[str] = frozenset()) -> Any:
    """CSV-style canonical key: numeric strings match numeric categories.

    A string listed in ``text`` (the contract's own text codes: ``'1e5'``, ``'007'``) keeps
    its text key, so it matches that code and not the number it also spells.
    """
    if isinstance(v, str):
        if v in text:
            return ("s", v)
        s = v.strip()
        try:
            f = float(s)
        except ValueError:
            return ("s", v)
        return ("n", f) if math.isfinite(f) else ("s", v)
    return _canon(v)


def text_codes(values: Any) -> frozenset[str]:
    """The text values among a contract's listed values (categories, a condition's ``in``)."""
    return frozenset(v for v in values or () if isinstance(v, str))


# --------------------------------------------------------------------------------------------
# Conditions of combination rules
# --------------------------------------------------------------------------------------------
def _cond_scalar(cond: Condition, x: Any, rec: Mapping[str, Any]) -> bool | None:
    """Evaluate a condition on one value; None when it cannot be evaluated (missing values)."""
    if x is None:
        return None
    key = _canon(x)
    if cond.equals is not None and key != _canon(cond.equals):
        return False
    if cond.in_ is not None and key not in {_canon(v) for v in cond.in_}:
        return False
    if cond.not_in is not None and key in {_canon(v) for v in cond.not_in}:
        return False
    numeric_ops = (cond.min, cond.max, cond.lt, cond.lte, cond.gt, cond.gte)
    if any(op is not None for op in numeric_ops):
        if key[0] != "n":
            return None
        fx = key[1]
        for op, test in (
            (cond.min, np.greater_equal),
            (cond.max, np.less_equal),
            (cond.lt, np.less),
            (cond.lte, np.less_equal),
            (cond.gt, np.greater),
            (cond.gte, np.greater_equal),
        ):
            if op is None:
                continue
            ref = rec.get(op) if isinstance(op, str) else op
            if ref is None or _canon(ref)[0] != "n":
                return None
            if not test(fx, float(ref)):
                return False
    return True


def _cond_frame(
    cond: Condition, col: pd.Series, num: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised condition: (holds, evaluable) boolean arrays."""
    n = len(col)
    holds = np.ones(n, dtype=bool)
    ok = col.notna().to_numpy(copy=True)
    x = num[col.name].to_numpy(dtype=float) if col.name in num else np.full(n, np.nan)

    def keys(values: list[Any]) -> set[Any]:
        return {_canon(v) for v in values}

    if cond.equals is not None or cond.in_ is not None or cond.not_in is not None:
        text = text_codes([cond.equals, *(cond.in_ or ()), *(cond.not_in or ())])

        def matches(pred: Any) -> np.ndarray:
            return map_distinct(
                col, lambda v: pred(_canon_lenient(v, text)), missing=False, dtype=bool
            )

        if cond.equals is not None:
            target = _canon(cond.equals)
            holds &= matches(lambda k: k == target)
        if cond.in_ is not None:
            inside = keys(cond.in_)
            holds &= matches(lambda k: k in inside)
        if cond.not_in is not None:
            outside = keys(cond.not_in)
            holds &= ~matches(lambda k: k in outside)
    ops = (
        (cond.min, np.greater_equal),
        (cond.max, np.less_equal),
        (cond.lt, np.less),
        (cond.lte, np.less_equal),
        (cond.gt, np.greater),
        (cond.gte, np.greater_equal),
    )
    for op, test in ops:
        if op is None:
            continue
        ref = num[op].to_numpy(dtype=float) if isinstance(op, str) else float(op)
        with np.errstate(invalid="ignore"):
            holds &= test(x, ref)
        ok &= ~np.isnan(x) & (~np.isnan(ref) if isinstance(ref, np.ndarray) else True)
    return holds, ok


def rule_message(rule: Rule) -> str:
    """One sentence describing a combination rule."""
    if rule.description:
        return rule.description

    def fmt(conds: Mapping[str, Condition]) -> str:
        parts = []
        for k, c in conds.items():
            ops = c.model_dump(by_alias=True, exclude_none=True).items()
            parts.append(f"{k} {', '.join(f'{op}={v!r}' for op, v in ops)}")
        return " and ".join(parts)

    if rule.require is None:
        return f"the combination {fmt(rule.when)} is impossible"
    pre = f"when {fmt(rule.when)}, " if rule.when else ""
    return f"{pre}{fmt(rule.require)} is required"


# --------------------------------------------------------------------------------------------
# Frame validation
# --------------------------------------------------------------------------------------------
@dataclass
class ViolationGroup:
    """All rows breaking one rule on one field."""

    field: str
    rule: str
    rows: np.ndarray
    examples: list[Any]
    message: str

    @property
    def count(self) -> int:
        """Number of rows breaking the rule."""
        return len(self.rows)


@dataclass
class FrameValidation:
    """The result of :func:`validate_frame`.

    Attributes
    ----------
    n_rows : int
    groups : list of ViolationGroup
        One group per (field, rule) with the 0-based row positions.
    unknown_columns : list of str
        Columns of the data the contract does not name.
    numeric : DataFrame
        Numeric view of numeric/boolean features (NaN where missing or unparsable).
    factorized : dict
        Per text or category feature, ``pd.factorize(column, use_na_sentinel=True)`` of the
        rows validated (codes and distinct values): the data audit's matrix reads its value
        ids from it instead of hashing the column again.
    """

    n_rows: int
    groups: list[ViolationGroup] = field(default_factory=list)
    row_offset: int = 0
    unknown_columns: list[str] = field(default_factory=list)
    numeric: pd.DataFrame = field(default_factory=pd.DataFrame)
    factorized: dict[str, tuple[np.ndarray, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no row breaks the contract."""
        return not self.groups

    def invalid_mask(self) -> np.ndarray:
        """Boolean mask of rows breaking at least one rule."""
        mask = np.zeros(self.n_rows, dtype=bool)
        for g in self.groups:
            mask[g.rows - self.row_offset] = True
        return mask

    def reasons(self) -> dict[int, list[str]]:
        """Map each invalid row position to its reasons (``field:rule``)."""
        out: dict[int, list[str]] = {}
        for g in self.groups:
            for r in g.rows.tolist():
                out.setdefault(r, []).append(f"{g.field}:{g.rule}")
        return out


def _coerce_numeric(col: pd.Series, factorized: tuple[np.ndarray, Any] | None = None) -> pd.Series:
    if pd.api.types.is_bool_dtype(col):
        return col.astype(float)
    if pd.api.types.is_numeric_dtype(col):
        return col.astype(float)
    return pd.to_numeric(
        pd.Series(
            map_distinct(col, _numeric_input, missing=np.nan, factorized=factorized),
            index=col.index,
        ),
        errors="coerce",
    ).astype(float)


def _numeric_input(v: Any) -> Any:
    if isinstance(v, str):
        return v.strip()
    if isinstance(v, int) and not isinstance(v, bool) and as_float(v) is None:
        return math.inf if v > 0 else -math.inf  # beyond float range: a type error, as 1e400
    return v


def _coerce_bool(col: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(col):
        return col.astype(float)

    def conv(v: Any) -> float:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return math.nan
        if isinstance(v, bool | np.bool_):
            return float(v)
        if isinstance(v, int | float | np.integer | np.floating):
            return float(v) if v in (0, 1) else math.nan
        s = str(v).strip().lower()
        return 1.0 if s in _TRUE else 0.0 if s in _FALSE else math.nan

    return col.map(conv).astype(float)


def _examples(col: pd.Series, rows: np.ndarray, k: int = 5) -> list[Any]:
    vals = pd.unique(col.iloc[rows[:1000]])
    return [_json_value(v) for v in vals[:k]]


def _spelled_otherwise(wanted: list[str], columns: Any) -> dict[str, str]:
    """The data's columns that name a ``wanted`` column but for case, spaces, ``-`` or ``_``.

    An extract renamed by a warehouse (``limit_bal`` for ``LIMIT_BAL``) is the usual reason a
    contract's columns are all missing; the error names the column under its other spelling.
    """

    def key(name: object) -> str:
        return "".join(ch for ch in str(name).lower() if ch.isalnum())

    found: dict[str, str] = {}
    for c in columns:
        found.setdefault(key(c), str(c))
    return {w: found[key(w)] for w in wanted if key(w) in found}


def _names(names: list[Any], shown: int) -> str:
    # A list cut at ``shown`` names says so, or the count and the list disagree (11 vs 8 names).
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"{names[:shown]}{more}"


def check_columns(df: pd.DataFrame, contract: Contract, *, require_label: bool = True) -> None:
    """Raise :class:`DataError` when columns the contract needs are absent."""
    missing = [c for c in contract.features if c not in df.columns]
    if missing:
        other = _spelled_otherwise(missing, df.columns)
        hint = "add them or fix the contract"
        if other:
            pairs = [f"{w!r} as {c!r}" for w, c in other.items()]
            hint = (
                f"the data has {len(other)} of them spelled otherwise ({', '.join(pairs[:3])}"
                f"{', ...' if len(pairs) > 3 else ''}): rename the data's columns or the "
                "contract's features"
            )
        raise DataError(
            f"data is missing {len(missing)} column(s) declared in contract "
            f"'{contract.name}': {_names(missing, 8)}; {hint}"
        )
    if require_label and contract.label.column not in df.columns:
        raise missing_label_error(contract.label.column, df.columns)


def missing_label_error(label: str, columns: Any) -> DataError:
    """The error for a label column the data lacks: the column under another spelling if the
    data has one, and the data's columns (the list's cut said)."""
    other = _spelled_otherwise([label], columns)
    seen = f" (the data has {other[label]!r})" if other else ""
    return DataError(
        f"label column {label!r} (contract label.column) is not in the data{seen}; "
        f"columns are {_names(list(columns), 12)}"
    )


#: What ``contract infer`` writes into a text column's description when it cut the column's
#: code list (:func:`tabguard.contract._infer._long_code_list`), read back by
#: :func:`category_message`.
DRAFT_CUT_NOTE = "categories lists only the first"


def category_message(name: str, spec: FeatureSpec) -> str:
    """The category rule of ``name`` in words, for a violation.

    A list ``contract infer`` cut (its description still says so: :data:`DRAFT_CUT_NOTE`) is
    named as the draft's cut, with its first values only: the rows outside it are mostly the
    values the draft left out, not bad data, and a critical finding quoting 50 values as the
    rule read as if the data had broken a list someone wrote.

    Examples
    --------
    >>> from tabguard.contract import FeatureSpec
    >>> category_message("store", FeatureSpec(type="category", categories=["a", "b"]))
    "store must be one of ['a', 'b']"
    """
    cats = list(spec.categories or [])
    desc = spec.description or ""
    if DRAFT_CUT_NOTE not in desc:
        return f"{name} must be one of {cats!r}"
    first = ", ".join(repr(c) for c in cats[:5])
    return (
        f"{name} must be one of the {len(cats)} values listed ({first}, ...), a list "
        f"`contract infer` cut from the data's distinct values (the description says so): "
        "complete the list in the contract, or leave the column out"
    )


def validate_frame(df: pd.DataFrame, contract: Contract, *, row_offset: int = 0) -> FrameValidation:
    """Check every row of a frame against the contract (vectorised).

    Parameters
    ----------
    df : DataFrame
        The data; must contain every declared feature column.
    contract : Contract
    row_offset : int
        Added to row positions (for chunked validation of large files).

    Returns
    -------
    FrameValidation
    """
    check_columns(df, contract, require_label=False)
    n = len(df)
    res = FrameValidation(n_rows=n, row_offset=row_offset)
    known = set(contract.columns())
    res.unknown_columns = [c for c in df.columns if c not in known]
    num: dict[str, pd.Series] = {}

    def add(name: str, rule: str, mask: np.ndarray, col: pd.Series, msg: str) -> None:
        rows = np.flatnonzero(mask)
        if rows.size:
            res.groups.append(
                ViolationGroup(name, rule, rows + row_offset, _examples(col, rows), msg)
            )

    for name, spec in contract.items():
        col = df[name]
        missing = col.isna().to_numpy(copy=True)
        text_col = col.dtype == object or pd.api.types.is_string_dtype(col)
        # one hashing of the column for each look at its distinct values below (a million
        # rows of text: 50 ms a hashing)
        fz = (
            pd.factorize(col, use_na_sentinel=True) if text_col or spec.type == "category" else None
        )
        if fz is not None:
            res.factorized[name] = fz
        if text_col:
            missing |= map_distinct(
                col,
                lambda v: isinstance(v, str) and not v.strip(),
                missing=False,
                dtype=bool,
                factorized=fz,
            )
        if not spec.nullable:
            add(name, "missing", missing, col, message(name, spec, "missing", None))
        if spec.type == "category":
            allowed = {_canon(c) for c in spec.categories or []}
            text = text_codes(spec.categories)
            member = map_distinct(
                col,
                lambda v, allowed=allowed, text=text: _canon_lenient(v, text) in allowed,
                missing=False,
                dtype=bool,
                factorized=fz,
            )
            bad = ~member & ~missing
            add(name, "category", bad, col, category_message(name, spec))
            if all(
                isinstance(c, int | float) and not isinstance(c, bool)
                for c in spec.categories or []
            ):
                num[name] = _coerce_numeric(col, fz)
            continue
        x = _coerce_bool(col) if spec.type == "boolean" else _coerce_numeric(col, fz)
        num[name] = x
        xv = x.to_numpy(copy=True)
        unparsable = np.isnan(xv) & ~missing
        if spec.is_numeric:
            unparsable |= np.isinf(xv)
        add(name, "type", unparsable, col, message(name, spec, "type", "<value>").split(";")[0])
        if not spec.is_numeric:
            continue
        # One error per field and row, in the record validator's order: type, min, max,
        # precision (so both validators always agree).
        valid = np.isfinite(xv)
        if spec.type == "integer":
            with np.errstate(invalid="ignore"):
                frac = valid & (np.abs(xv - np.round(xv)) > 1e-9)
            add(name, "type", frac, col, f"{name} must be a whole number")
            valid &= ~frac
        with np.errstate(invalid="ignore"):
            if spec.min is not None:
                low = valid & (xv < spec.min)
                add(
                    name,
                    "min",
                    low,
                    col,
                    f"{name} must be >= {_fmt(spec.min)} (valid range {range_text(spec)})",
                )
                valid &= ~low
            if spec.max is not None:
                high = valid & (xv > spec.max)
                add(
                    name,
                    "max",
                    high,
                    col,
                    f"{name} must be <= {_fmt(spec.max)} (valid range {range_text(spec)})",
                )
                valid &= ~high
            if spec.type == "number" and spec.precision is not None:
                scaled = xv * 10**spec.precision
                bad = valid & (
                    np.abs(scaled - np.round(scaled)) > 1e-6 * np.maximum(1.0, np.abs(scaled))
                )
                add(
                    name,
                    "precision",
                    bad,
                    col,
                    f"{name} allows at most {spec.precision} decimal(s)",
                )

    # one block per column, not one stacked block: readers take a column at a time, and
    # stacking a million rows of every column cost 0.3-0.5 CPU-s before the audit starts
    numdf = pd.DataFrame(num, index=df.index, copy=False)
    res.numeric = numdf
    for rule in contract.rules:
        holds = np.ones(n, dtype=bool)
        evaluable = np.ones(n, dtype=bool)
        for fname, cond in rule.when.items():
            h, ok = _cond_frame(cond, df[fname], numdf)
            holds &= h
            evaluable &= ok
        if rule.require is not None:
            req = np.ones(n, dtype=bool)
            for fname, cond in rule.require.items():
                h, ok = _cond_frame(cond, df[fname], numdf)
                req &= h
                evaluable &= ok
            broken = holds & ~req & evaluable
        else:
            broken = holds & evaluable
        first = next(iter(rule.fields()))
        rows = np.flatnonzero(broken)
        if rows.size:
            ex = [{f: _json_value(df[f].iloc[r]) for f in sorted(rule.fields())} for r in rows[:3]]
            res.groups.append(
                ViolationGroup(
                    first if len(rule.fields()) == 1 else ",".join(sorted(rule.fields())),
                    f"rule:{rule.name}",
                    rows + row_offset,
                    ex,
                    rule_message(rule),
                )
            )
    return res


# --------------------------------------------------------------------------------------------
# Record validation (request path)
# --------------------------------------------------------------------------------------------
class RecordValidator:
    """Fast, strict validation of one JSON record against a contract.

    Parameters
    ----------
    contract : Contract
    allow_unknown : bool
        Accept (and ignore) fields the contract does not declare. Off by default: an API that
        silently drops fields hides client bugs and probing.

    Examples
    --------
    >>> from tabguard.datasets import credit_default_contract
    >>> v = RecordValidator(credit_default_contract())
    >>> [e.rule for e in v.errors({**credit_default_contract().neutral_record(), "AGE": 999})]
    ['max']
    """

    def __init__(self, contract: Contract, *, allow_unknown: bool = False) -> None:
        self.contract = contract
        self.allow_unknown = allow_unknown
        self._specs = list(contract.items())
        self._cats = {
            n: {_canon(c) for c in s.categories or []}
            for n, s in self._specs
            if s.type == "category"
        }

    def _check(self, name: str, spec: FeatureSpec, v: Any) -> FieldError | None:
        def err(rule: str) -> FieldError:
            return FieldError(name, rule, _json_value(v), message(name, spec, rule, v))

        if v is None:
            return None if spec.nullable else err("required")
        t = spec.type
        if t == "boolean":
            return None if isinstance(v, bool) else err("type")
        if t == "category":
            if isinstance(v, bool) and not any(isinstance(c, bool) for c in spec.categories or []):
                return err("category")
            return None if _canon(v) in self._cats[name] else err("category")
        # integer / number: JSON numbers only; bool is an int subclass in Python, refuse it.
        if isinstance(v, bool) or not isinstance(v, int | float):
            return err("type")
        fv = as_float(v)
        if fv is None:  # an integer beyond float range, like 1e400 (inf): not a number here
            return FieldError(
                name,
                "type",
                _json_value(v),
                f"{name} must be a number within float range (|x| < 1.8e308); got {_fmt(v)}.",
            )
        if not math.isfinite(fv):
            return err("type")
        if t == "integer" and not fv.is_integer():
            return err("type")
        if spec.min is not None and fv < spec.min:
            return err("min")
        if spec.max is not None and fv > spec.max:
            return err("max")
        if t == "number" and spec.precision is not None and not decimals_ok(fv, spec.precision):
            return err("precision")
        return None

    def errors(self, record: Mapping[str, Any]) -> list[FieldError]:
        """Every contract violation of ``record`` (empty when valid)."""
        out: list[FieldError] = []
        if not isinstance(record, Mapping):
            return [
                FieldError(
                    "__record__", "type", _json_value(record), "features must be a JSON object"
                )
            ]
        for name, spec in self._specs:
            if name not in record:
                if not spec.nullable:
                    out.append(
                        FieldError(name, "required", None, message(name, spec, "required", None))
                    )
                continue
            e = self._check(name, spec, record[name])
            if e is not None:
                out.append(e)
        if not self.allow_unknown:
            for k in record:
                if k not in self.contract.features:
                    out.append(
                        FieldError(
                            str(k),
                            "unknown_field",
                            None,
                            f"{k} is not a feature of contract '{self.contract.name}'; remove it",
                        )
                    )
        if not out:
            for rule in self.contract.rules:
                if rule_broken(rule, record):
                    fields = sorted(rule.fields())
                    out.append(
                        FieldError(
                            ",".join(fields),
                            f"rule:{rule.name}",
                            {f: _json_value(record.get(f)) for f in fields},
                            rule_message(rule),
                        )
                    )
        return out


def rule_broken(rule: Rule, record: Mapping[str, Any]) -> bool:
    """Whether one record breaks a combination rule (False when it cannot be evaluated)."""
    for fname, cond in rule.when.items():
        h = _cond_scalar(cond, record.get(fname), record)
        if h is not True:
            return False
    if rule.require is None:
        return True
    for fname, cond in rule.require.items():
        h = _cond_scalar(cond, record.get(fname), record)
        if h is None:
            return False
        if h is False:
            return True
    return False
