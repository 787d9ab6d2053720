"""Draft a contract from data (``tabguard contract infer``).

The draft is a starting point for people, not a policy: ranges are the observed ones rounded
outward, protected attributes are guessed from column names, and nothing is marked gameable.
Each guess is stated in the feature's ``description`` so a reviewer sees what to confirm.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tabguard._plain import plain
from tabguard.contract._entity import RepeatedId, label_design_effect, outweighs, repeated_id
from tabguard.contract._io import contract_from_dict
from tabguard.contract._protected import looks_protected, name_tokens
from tabguard.contract._spec import Contract
from tabguard.contract._validate import DRAFT_CUT_NOTE, _names, _spelled_otherwise
from tabguard.errors import DataError

_MAX_CATEGORIES = 50
#: A text column whose values repeat like codes (at least ``_ROWS_PER_CODE`` rows per distinct
#: value on average) is drafted with every code listed, up to this many: 400 product codes or
#: 120 rating territories are categories, and listing 50 of them broke the contract on 80 % of
#: the rows. Values that hardly repeat are free text or an id, and their list is cut.
_MAX_LISTED_CODES = 5000
_ROWS_PER_CODE = 10
_SMALL_INT_CARDINALITY = 8
#: A scale (a rating from 1 to 5, a 7-point party identification from 0 to 6) has at least
#: this many consecutive codes, each held by at least ``_SCALE_MIN_SHARE`` of the rows: every
#: point of a scale is used, while a list of named codes often ends with rare "other" or
#: "unknown" codes (credit EDUCATION 0 and 4-6: 14 to 280 of 30,000 rows). Three codes are
#: as often names (regions) as an order, and stay categories.
_SCALE_MIN_CODES = 4
_SCALE_MIN_SHARE = 0.01


#: Words of the names of columns that identify a unit (an account, a loan, a person): only
#: such a column is drafted as the entity. A static attribute repeats within an account too (a
#: date of birth in a panel passes the repeat test), and it is a feature.
_ID_WORDS = frozenset(
    {"id", "ids", "key", "account", "acct", "customer", "client", "user", "member", "person"}
    | {"individual", "subject", "patient", "entity", "loan", "policy", "contract", "card"}
    | {"household", "firm"}
    # a hospital's medical record number, an airline's passenger name record (fresh19)
    | {"mrn", "pnr"}
)


#: Words of a label's name saying its positive class is a favourable decision (fresh21: a
#: rental's ``approved`` drafted as a denial reported an approval rate of 41 % for 59 %).
_APPROVAL_WORDS = frozenset({"approved", "approval", "approve", "accepted", "granted", "funded"})
_NEGATION_WORDS = frozenset({"not", "no", "non", "denied", "rejected", "declined", "refused"})
_AFFIRMATIVE = frozenset({"1", "true", "yes", "y", "approved", "accepted", "granted", "funded"})


def _names_an_approval(label: str, positive: Any) -> bool:
    """Whether ``label`` is named as an approval (``approved``, ``loanApproval``; not
    ``not_approved``) and its ``positive`` class reads as yes (1, True, "yes", "approved")."""
    words = set(name_tokens(label))
    affirmative = str(plain(positive)).strip().lower() in _AFFIRMATIVE
    return bool(words & _APPROVAL_WORDS) and not words & _NEGATION_WORDS and affirmative


def _names_a_unit(column: str) -> bool:
    """Whether a column's name ends with a word of ``_ID_WORDS`` (``loan_id``, ``customerID``,
    ``Account``; not ``customer_age`` or ``paid``), or with such a word and a numbering word
    (``account_no``, ``policy_number``, ``customer_nr``; not ``invoice_no``)."""
    words = name_tokens(column)
    if len(words) >= 2 and words[-1] in _ROW_ID_WORDS:
        # a numbering word says "the number of" what the word before names (fresh20: telecom's
        # account_no, 8.6 monthly rows per subscriber, was drafted as a category of 50 values)
        return words[-2] in _ID_WORDS
    return bool(words) and words[-1] in _ID_WORDS


@dataclass(frozen=True)
class EntityGuess(RepeatedId):
    """A column ``contract infer`` drafts as the contract's ``entity``; ``why`` says why it
    was chosen over a finer one, if it was."""

    why: str = ""

    def message(self) -> str:
        """The guess as ``contract infer`` reports it."""
        return (
            f"entity: {self.column} drafted from its name and its repeats ({self.summary()})"
            f"{self.why}: "
            "the data audit counts an entity's rows as one unit of evidence. Remove the line "
            "if each row is a record of its own."
        )


def guess_entity(df: pd.DataFrame, label: str, id_column: str | None = None) -> EntityGuess | None:
    """The column of ``df`` that names the unit its rows belong to, if one does.

    A column is a candidate when its name reads as an identifier (``loan_id``, ``account``,
    ``individual``), it holds integers or text, and it repeats like an entity id: at least 20
    values, most rows sharing theirs, with other columns constant within them far more often
    than random groups would be (:func:`~tabguard.contract._entity.constant_within_entities`).
    Of several, the one with the most values (the finest unit) is drafted.

    Parameters
    ----------
    df : DataFrame
    label : str
    id_column : str, optional
        The row identifier, never the entity here (a unique column does not repeat).

    Returns
    -------
    EntityGuess or None
    """
    return _pick_entity(df, label, named_entities(df, label, id_column))


def _pick_entity(df: pd.DataFrame, label: str, found: list[RepeatedId]) -> EntityGuess | None:
    """Of the candidates, the finest unit (the most values), unless the label clusters far
    more by another that is not a grouping of it (:func:`outweighs`): a marketplace's orders
    have buyers (15,000, three orders each, the dispute nothing to do with them) and sellers
    (1,584, whose orders carry each seller's own dispute rate). Counted by buyer, a big
    seller's orders were thousands of records of evidence: 3-13 critical triggers on data
    with none; by seller, 0. Patients within hospitals stay patients: their stays are one
    hospital's rows as well."""
    if not found:
        return None
    finest = max(found, key=lambda f: f.entities)
    if len(found) > 1:
        best = max(found, key=lambda f: label_design_effect(df, f.column, label))
        more = None if best is finest else outweighs(df, best.column, finest.column, label)
        if more is not None:
            note = (
                f"; the label clusters by it (design effect {more[0]:.1f}) far more than by "
                f"{finest.column} ({more[1]:.1f})"
            )
            return EntityGuess(**vars(best), why=note)
    return EntityGuess(**vars(finest))


def named_entities(df: pd.DataFrame, label: str, id_column: str | None = None) -> list[RepeatedId]:
    """Every column of ``df`` named as an identifier that repeats like an entity id (the
    candidates of :func:`guess_entity`), in column order."""
    out = []
    for col in df.columns:
        if col in (label, id_column) or not _names_a_unit(str(col)) or not _holds_ids(df[col]):
            continue
        others = [c for c in df.columns if c not in (label, id_column, col)]
        found = repeated_id(df, col, others)
        if found is not None:
            out.append(found)
    return out


#: The row ids recognised by name alone, before any column named like an id is considered.
_ROW_ID_NAMES = ("id", "row_id", "customer_id", "subject_id")
#: Last words of the names of row ids beside ``_ID_WORDS`` (``invoice_no``, ``order_ref``,
#: ``unit_serial``, ``employee_number``): a unique column so named is a row id, never an entity.
_ROW_ID_WORDS = frozenset({"no", "nr", "num", "number", "ref", "serial", "uuid", "guid"})


def _holds_ids(s: pd.Series) -> bool:
    """Whether a column holds identifiers by type: integers or text, never fractions or flags."""
    return not (pd.api.types.is_float_dtype(s) or pd.api.types.is_bool_dtype(s))


def guess_id(df: pd.DataFrame, label: str) -> str | None:
    """The column of ``df`` that identifies its rows, if one does.

    A row id is unique, holds integers or text, and is named as one: ``id``, ``row_id``,
    ``customer_id`` and ``subject_id`` first, then any name ending with a word naming a unit
    (``order_id``, ``tx_id``, ``application_id``, ``account``) or with ``no``, ``nr``, ``num``,
    ``number``, ``ref``, ``serial``, ``uuid`` or ``guid`` (``invoice_no``, ``order_ref``).
    Drafted as a feature, a row number would be a model input that means nothing.

    Parameters
    ----------
    df : DataFrame
    label : str

    Returns
    -------
    str or None
    """
    for col in df.columns:
        if col != label and str(col).lower() in _ROW_ID_NAMES and df[col].is_unique:
            return str(col)
    for col in df.columns:
        s = df[col]
        words = name_tokens(str(col))
        named = _names_a_unit(str(col)) or (bool(words) and words[-1] in _ROW_ID_WORDS)
        if col == label or not named or not _holds_ids(s):
            continue
        if len(s) >= 2 and s.notna().all() and s.is_unique:
            return str(col)
    return None


#: Text read as a date or a time stamp: ISO (2026-01-15, 2026-01-15T10:00), day or month first
#: with slashes or dots (15/01/2026, 1.15.26), months (2024-01, 2024/01, 01/2024: a billing
#: month drafted as a category broke the contract on every new month) and ISO weeks (2026-W01,
#: 2026W01, 2026-W01-3: fresh21's weekly payouts, 26 weeks drafted as 26 codes).
_DATE_TEXT = re.compile(
    r"^\s*(\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[/.]\d{1,2}[/.]\d{2,4}"
    r"|(?:19|20)\d{2}[-/](?:0[1-9]|1[0-2])|(?:0[1-9]|1[0-2])/(?:19|20)\d{2}"
    r"|(?:19|20)\d{2}-?W(?:0[1-9]|[1-4]\d|5[0-3])(?:-?[1-7])?)([ T].*)?$"
)


def date_columns(df: pd.DataFrame, label: str) -> list[str]:
    """The columns of ``df`` holding dates or time stamps (a datetime type, or text of which
    at least 95 % of a sample reads as dates).

    A contract has no date type, and drafted as categories the dates of a few days break the
    contract on every other day (93-100 % of the rows of a user's file): ``contract infer``
    leaves them out and says so, as the contract leaves out any column it does not name.
    Derive the features a model may use (an hour of the day, days since an event) instead.

    Parameters
    ----------
    df : DataFrame
    label : str

    Returns
    -------
    list of str
    """
    out = []
    for col in df.columns:
        if col == label:
            continue
        s = df[col]
        if pd.api.types.is_datetime64_any_dtype(s):
            out.append(str(col))
            continue
        if pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s):
            sample = s.dropna().astype(str).head(200)
            if len(sample) and sample.str.match(_DATE_TEXT).mean() >= 0.95:
                out.append(str(col))
    return out


def unnamed_entities(
    df: pd.DataFrame, label: str, skip: tuple[str | None, ...] = ()
) -> list[RepeatedId]:
    """Columns that repeat like an entity id although their names do not read as one.

    They are not drafted as the entity (a date of birth in a panel repeats the same way), but
    ``contract infer`` names them, so that a person id called ``zper`` is not drafted as a
    feature in silence. A candidate holds integers or text and has at least one value per 20
    rows: a code with few values (a region, a plan) is a feature.

    Parameters
    ----------
    df : DataFrame
    label : str
    skip : tuple of str
        Columns already drafted as the id or the entity.

    Returns
    -------
    list of RepeatedId
    """
    out = []
    for col in df.columns:
        s = df[col]
        if col == label or col in skip or _names_a_unit(str(col)) or not _holds_ids(s):
            continue
        if s.nunique() * 20 < len(s):
            continue
        others = [c for c in df.columns if c not in (label, col, *skip)]
        found = repeated_id(df, col, others)
        if found is not None:
            out.append(found)
    return out


#: Significant digits of a drafted bound: one digit widened an hour's observed 23 to 30 and an
#: age's 18 to 10 (up to 2x the range); two widen by at most a tenth and still read as round.
_BOUND_DIGITS = 2


def _grid(x: float) -> int:
    """The exponent of the last of ``_BOUND_DIGITS`` significant digits of ``x`` > 0."""
    e = math.floor(math.log10(x)) - (_BOUND_DIGITS - 1)
    # log10 rounds up just below a power of ten (log10(999999999.9999999) is 9.0)
    return e - 1 if x < 10 ** (e + _BOUND_DIGITS - 1) else e


def _nice_floor(x: float) -> float:
    """``x`` rounded down to two significant digits (0 below 10): a readable lower bound."""
    if x < 0:
        return -_nice_ceil(-x) + 0.0
    if x < 10:
        return 0.0
    e = _grid(x)
    # the tolerance keeps a value that is already round (3000 / 100 = 29.999...) where it is;
    # a bound past the value would make the value itself break the contract
    n = math.floor(x / 10**e + 1e-9)
    bound = round(n * 10**e, max(0, -e))
    return float(bound if bound <= x else round((n - 1) * 10**e, max(0, -e)))


def _nice_ceil(x: float) -> float:
    """``x`` rounded up to two significant digits: a readable upper bound (0.27, not
    0.27000000000000002)."""
    if x <= 0:
        return -_nice_floor(-x) + 0.0  # + 0.0: no -0.0 in a contract
    e = _grid(x)
    # rounded to the digits' decimals: 27 * 0.01 is 0.27000000000000002 in binary
    n = math.ceil(x / 10**e - 1e-9)
    bound = round(n * 10**e, max(0, -e))
    return float(bound if bound >= x else round((n + 1) * 10**e, max(0, -e)))


def _decimals(values: np.ndarray, cap: int = 8) -> int | None:
    """Decimals needed by every value, or None when more than ``cap`` (no constraint)."""
    for d in range(cap + 1):
        scaled = values * 10**d
        if np.all(np.abs(scaled - np.round(scaled)) <= 1e-6 * np.maximum(1.0, np.abs(scaled))):
            return d
    return None


def looks_like_scale(values: pd.Series) -> bool:
    """Whether small integer codes read as an ordinal scale rather than named categories.

    True for at least ``_SCALE_MIN_CODES`` consecutive integers (``0..6``, ``1..5``), each held
    by at least ``_SCALE_MIN_SHARE`` of the non-missing rows. Drafted as ``integer``, the
    audits treat neighbouring points as neighbours: read as categories, every point of a scale
    that predicts the label (a party identification predicting the vote) is a value whose
    label the rest of the row cannot reproduce, and the trigger scan names it.

    Parameters
    ----------
    values : Series
        The column's non-missing integral values.

    Returns
    -------
    bool
    """
    counts = values.value_counts()
    codes = np.sort(counts.index.to_numpy(dtype=float))
    if len(codes) < _SCALE_MIN_CODES or codes[-1] - codes[0] != len(codes) - 1:
        return False
    return bool(counts.min() >= _SCALE_MIN_SHARE * counts.sum())


def looks_like_count(values: pd.Series) -> bool:
    """Whether small integer codes read as a count (witnesses, support calls) rather than
    named categories.

    True for at least ``_SCALE_MIN_CODES`` consecutive integers from 0 or 1 whose rows pile up
    on the first or second value and thin out from there (each value held by no more rows than
    the one before it), the last held by under ``_SCALE_MIN_SHARE`` of the rows: a count's
    tail. Drafted as categories, a count's next higher value breaks the contract (claims'
    witnesses 0..6, a churn set's support calls 0..6). A list of named codes with rare codes
    in the middle or a mode further up (credit EDUCATION, MARRIAGE) is not a count.

    Parameters
    ----------
    values : Series
        The column's non-missing integral values.

    Returns
    -------
    bool
    """
    counts = values.value_counts().sort_index()
    codes = counts.index.to_numpy(dtype=float)
    if len(codes) < _SCALE_MIN_CODES or codes[0] not in (0, 1):
        return False
    if codes[-1] - codes[0] != len(codes) - 1:
        return False
    held = counts.to_numpy()
    mode = int(np.argmax(held))
    return bool(
        mode <= 1 and np.all(np.diff(held[mode:]) <= 0) and held[-1] < _SCALE_MIN_SHARE * held.sum()
    )


#: Parts of a date held as integers, by the word naming them in a column's name (a singular
#: word: ``months``, ``n_days`` are durations), with the ranges they are written in.
_CALENDAR_PARTS: dict[str, tuple[str, list[tuple[int, int]]]] = {
    "month": ("month of the year", [(1, 12), (0, 11)]),
    "quarter": ("quarter of the year", [(1, 4)]),
    "week": ("week of the year", [(1, 53), (0, 53)]),
    "weekday": ("day of the week", [(0, 6), (1, 7)]),
    "dow": ("day of the week", [(0, 6), (1, 7)]),
    "day": ("day of the month", [(1, 31)]),
    "hour": ("hour of the day", [(0, 23)]),
    "minute": ("minute of the hour", [(0, 59)]),
}


def calendar_part(name: str, values: np.ndarray) -> tuple[str, int, int] | None:
    """The part of a date an integer column holds, by its name and values, with its range.

    A month observed from 1 to 12 was drafted with ``min: 0`` (the observed range rounded
    down), so a month 0 would pass; a month seen only from 1 to 6 was drafted as six codes, and
    July would break the contract. A column named with a calendar word whose values all lie in
    that part's range is drafted with the whole range.

    Parameters
    ----------
    name : str
        The column's name (``loss_month``, ``LossMonth``, ``day_of_week``).
    values : ndarray
        Its non-missing values, whole numbers.

    Returns
    -------
    (str, int, int) or None
        The part in words and its first and last value.

    Examples
    --------
    >>> import numpy as np
    >>> calendar_part("loss_month", np.array([1.0, 12.0]))
    ('month of the year', 1, 12)
    >>> calendar_part("tenure_months", np.array([1.0, 12.0])) is None
    True
    """
    tokens = name_tokens(name)
    if "day" in tokens and "week" in tokens:
        tokens = ["weekday"]
    elif "day" in tokens and "year" in tokens:
        return None  # a day of the year: 1..366, rarely an integer feature; the observed range
    lo, hi = float(values.min()), float(values.max())
    for word in tokens:
        if word in _CALENDAR_PARTS:
            part, ranges = _CALENDAR_PARTS[word]
            for first, last in ranges:
                if first <= lo and hi <= last:
                    return part, first, last
    return None


def _long_code_list(spec: dict[str, Any], rows: int) -> str:
    """Keep or cut the drafted code list of a text column of many values, and say which."""
    codes = spec["categories"]
    if len(codes) <= _MAX_LISTED_CODES and rows >= _ROWS_PER_CODE * len(codes):
        return (
            f"{len(codes)} codes, all listed ({rows / len(codes):.0f} rows per code on "
            "average); a code not listed breaks the contract: add new codes as they appear"
        )
    # The list is cut: say so, or the other values break the contract unseen (600 store
    # ids: 28 % of the rows were contract violations).
    spec["categories"] = codes[:_MAX_CATEGORIES]
    return (
        f"{len(codes)} distinct text values, {rows / len(codes):.1f} rows each on average: "
        f"probably free text or an id; {DRAFT_CUT_NOTE} {_MAX_CATEGORIES}: "
        "complete it or leave the column out, or rows with the others break the contract"
    )


def infer_contract(
    df: pd.DataFrame,
    label: str,
    *,
    name: str = "inferred",
    id_column: str | None = None,
    positive: Any = None,
    entity: str | None = None,
    find_entity: bool = True,
    notes: list[str] | None = None,
) -> Contract:
    """Draft a contract from a data frame.

    Parameters
    ----------
    df : DataFrame
    label : str
        The label column.
    name : str
        Contract name.
    id_column : str, optional
        Row identifier; guessed with :func:`guess_id` when omitted.
    positive : optional
        Positive class; defaults to ``1`` for 0/1 labels, else the rarer class.
    entity : str, optional
        Column naming the unit a row belongs to (an account id in panel data); drafted as
        ``entity`` and left out of the features. Guessed with :func:`guess_entity` when
        omitted and ``find_entity`` is true.
    find_entity : bool
        Guess the entity column when ``entity`` is omitted.
    notes : list of str, optional
        Receives what a reviewer should know of the draft, one sentence each: the id and the
        entity guessed, columns that repeat like an id without an id's name
        (:func:`unnamed_entities`), dates left out (:func:`date_columns`), a label with other
        than two values (``contract infer`` prints them on stderr).

    Returns
    -------
    Contract
    """
    if label not in df.columns:
        other = _spelled_otherwise([label], df.columns)
        seen = f" (the data has {other[label]!r})" if other else ""
        raise DataError(
            f"label column {label!r} is not in the data{seen}; columns are "
            f"{_names(list(df.columns), 12)}; give --label one of them"
        )
    y = df[label]
    if y.isna().any():
        raise DataError(
            f"label column {label!r} has {int(y.isna().sum())} missing value(s); "
            "drop or fix those rows"
        )
    said: list[str] = [] if notes is None else notes
    if id_column is None:
        id_column = guess_id(df, label)
        if id_column is not None:
            said.append(
                f"id: {id_column} drafted: unique and named as an identifier, so not a model "
                "feature. Give --id to name another column."
            )
    # ids of other units (a seller beside the buyer drafted as the entity) are left out: as
    # categories they would list 50 of their thousands of values and break on most rows
    other_ids: list[str] = []
    if find_entity:
        named = named_entities(df, label, id_column)
        guess = _pick_entity(df, label, named) if entity is None else None
        if guess is not None:
            entity = guess.column
            said.append(guess.message())
        for found in named:
            if found.column != entity:
                other_ids.append(found.column)
                said.append(
                    f"left out: {found.column} repeats like an id of another unit "
                    f"({found.summary()}); an id is not a feature. To count its rows as one "
                    f"unit instead, draft again with --entity {found.column}."
                )
        if notes is not None:  # the search costs a pass per column: only when asked
            said.extend(
                f"{found.column} repeats like an id of units ({found.summary()}) and is drafted "
                f"as a feature; if its rows are one person, account or policy, draft again with "
                f"--entity {found.column}."
                for found in unnamed_entities(df, label, (id_column, entity, *other_ids))
            )
    if entity is not None and entity not in df.columns:
        raise DataError(
            f"entity column {entity!r} is not in the data; columns are {list(df.columns)[:12]}"
        )
    classes = sorted(pd.unique(y).tolist(), key=str)
    if positive is None:
        if set(classes) <= {0, 1} and 1 in classes:
            positive = 1
        else:
            positive = plain(y.value_counts().idxmin())
    if y.nunique() != 2:
        said.append(
            f"label {label}: {y.nunique()} values; a contract's label is a yes/no decision, its "
            "positive value against all the others (the draft's label.positive). Check it, or "
            "derive a two-valued label."
        )
    features: dict[str, dict[str, Any]] = {}
    dates = date_columns(df, label)
    if dates:
        said.append(
            f"left out as dates: {', '.join(dates)} (a contract has no date type; drafted as "
            "categories, every other day would break it). Derive features from them, such as "
            "an hour of the day or days since an event."
        )
    for col in df.columns:
        if col in (label, id_column, entity) or col in dates or col in other_ids:
            continue
        s = df[col]
        nonnull = s.dropna()
        spec: dict[str, Any] = {}
        hints: list[str] = []
        if s.isna().any():
            spec["nullable"] = True
        if pd.api.types.is_bool_dtype(s):
            spec["type"] = "boolean"
        elif pd.api.types.is_numeric_dtype(s):
            vals = nonnull.to_numpy(dtype=float)
            integral = bool(vals.size == 0 or np.all(np.round(vals) == vals))
            nunique = int(nonnull.nunique())
            cycle = calendar_part(col, vals) if integral and vals.size else None
            if cycle is not None:
                part, first, last = cycle
                spec.update(type="integer", min=first, max=last)
                hints.append(
                    f"read as the {part} ({first}..{last}) from its name and its values "
                    f"{int(vals.min())}..{int(vals.max())}"
                )
            elif integral and nunique <= _SMALL_INT_CARDINALITY and looks_like_scale(nonnull):
                first, last = int(vals.min()), int(vals.max())
                spec.update(type="integer", min=first, max=last)
                hints.append(
                    f"{nunique} consecutive integer codes {first}..{last} read as an ordinal scale "
                    "(integer: neighbouring codes are neighbours); declare it a category if "
                    "the codes name groups without an order"
                )
            elif integral and nunique <= _SMALL_INT_CARDINALITY and looks_like_count(nonnull):
                first, last = int(vals.min()), int(vals.max())
                spec.update(type="integer", min=first, max=int(_nice_ceil(2 * last)))
                hints.append(
                    f"integers {first}..{last} with a thinning tail read as a count (integer, "
                    f"up to twice the largest seen); set its realistic maximum, or declare it "
                    "a category if the codes name groups"
                )
            elif integral and nunique <= _SMALL_INT_CARDINALITY:
                spec["type"] = "category"
                spec["categories"] = sorted(int(v) for v in pd.unique(nonnull))
                hints.append(f"{nunique} integer codes read as categories")
            else:
                spec["type"] = "integer" if integral else "number"
                if vals.size:
                    lo, hi = float(vals.min()), float(vals.max())
                    spec["min"] = _nice_floor(lo)
                    spec["max"] = _nice_ceil(hi) if hi > 0 else hi
                    hints.append(f"observed range [{lo:g}, {hi:g}]; set the realistic range")
                    decimals = None if integral else _decimals(vals)
                    if decimals is not None:
                        spec["precision"] = decimals
        else:
            lowered = nonnull.astype(str).str.strip().str.lower()
            if len(nonnull) and lowered.isin(["true", "false"]).all():
                spec["type"] = "boolean"
            else:
                cats = pd.unique(nonnull.astype(str))
                spec["type"] = "category"
                spec["categories"] = sorted(str(c) for c in cats) or ["?"]
                if len(cats) > _MAX_CATEGORIES:
                    hints.append(_long_code_list(spec, len(nonnull)))
        if looks_protected(col):
            spec["protected"] = True
            hints.append("marked protected from its name; confirm")
        if hints:
            spec["description"] = "inferred: " + "; ".join(hints)
        features[col] = spec
    label_spec: dict[str, Any] = {"column": label, "positive": plain(positive)}
    others = [c for c in classes if c != positive]
    if len(others) == 1:
        # findings then name the other label by its value (`→ y=0`), not as "not 1"
        label_spec["negative"] = plain(others[0])
    data: dict[str, Any] = {"name": name, "label": label_spec, "features": features}
    if _names_an_approval(label, positive):
        data["decision"] = {"positive_means": "approve"}
        said.append(
            f"decision.positive_means: approve drafted: the label {label!r} is named as an "
            f"approval and its positive class is {plain(positive)!r}, so a score above "
            "decision.threshold approves. Write deny there if that class is a refusal."
        )
    if id_column:
        data["id"] = id_column
    if entity:
        data["entity"] = entity
    return contract_from_dict(data)
