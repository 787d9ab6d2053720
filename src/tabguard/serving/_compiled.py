"""The contract compiled for one request: validation, encoding and transform in a few µs.

:class:`~tabguard.contract.RecordValidator` and :meth:`FeatureTransform.transform_record` are
the reference: general (nullable features, lenient encodings, every error named) and shared
with training. On the request path almost every record is an ordinary one — every feature
present, with its JSON type, inside its range — and for those the same answer costs a single
pass over precomputed tuples and a few array operations:

* :class:`CompiledRecord` decides whether a record is such an ordinary valid record and, if it
  is, returns its raw encoding (categories as their index, booleans 0/1, numbers as given, no
  clipping): the vector the probing detector compares and the transform starts from. For any
  other record it returns ``None`` and the caller asks the reference (which names every error).
* :class:`CompiledTransform` applies a model's transform (neutral values, clipping, coarse bins)
  to that vector and lists the same guard actions as ``transform_record``.

Nothing is trusted: :func:`compile_contract` runs both on a check sample (random valid records
and records sitting on every range, clip and bin edge) and compares them with the reference;
on any difference the service keeps the reference path and says why, as the fast scoring
path does (``_scoring.py``). Property tests compare them on arbitrary records.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from tabguard.contract import Contract, FeatureTransform, RecordValidator
from tabguard.contract._validate import as_float, decimals_ok, rule_broken

_NUM, _CAT, _BOOL, _SLOW = 0, 1, 2, 3


class CompiledRecord:
    """One-pass validation and raw encoding of ordinary records.

    Parameters
    ----------
    contract : Contract

    Attributes
    ----------
    feature_names : list of str
        The model features, in the order of the encoded vector (``contract.model_features()``).
    """

    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        self.feature_names = contract.model_features()
        index = {n: j for j, n in enumerate(self.feature_names)}
        self._n = len(contract.features)
        self._rules = list(contract.rules)
        plan: list[tuple[str, int, float, float, bool, int | None, dict[Any, float] | None, int]]
        plan = []
        for name, spec in contract.items():
            j = index.get(name, -1)
            lo = -math.inf if spec.min is None else float(spec.min)
            hi = math.inf if spec.max is None else float(spec.max)
            table: dict[Any, float] | None = None
            if spec.is_numeric:
                kind = _NUM
            elif spec.type == "boolean":
                kind = _BOOL
            else:
                cats = spec.categories or []
                # A bool category would match the number 1 in a dict (True == 1): such
                # contracts keep the reference path for that feature.
                kind = _SLOW if any(isinstance(c, bool) for c in cats) else _CAT
                table = {c: float(i) for i, c in enumerate(cats)}
                if len(table) != len(cats):  # 1 and 1.0 both declared: let the reference decide
                    kind = _SLOW
            decimals = spec.precision if spec.type == "number" else None
            plan.append((name, kind, lo, hi, spec.type == "integer", decimals, table, j))
        self._plan = plan

    def encode(self, record: Any) -> np.ndarray | None:
        """The raw encoding of an ordinary valid record, else ``None`` (ask the reference).

        Ordinary: a dict holding exactly the contract's features, none missing or null, each of
        its JSON type and within its range, precision and categories, breaking no combination
        rule. Such a record has no error under :class:`RecordValidator`, and the vector equals
        ``RawEncoder.encode(record)``.
        """
        if type(record) is not dict or len(record) != self._n:
            return None
        out = [0.0] * len(self.feature_names)
        x: float
        for name, kind, lo, hi, integral, decimals, table, j in self._plan:
            v: Any = record.get(name)
            t = type(v)
            if kind == _NUM:
                if t is float:
                    x = v
                    if not (lo <= x <= hi) or x - x != 0.0:  # NaN and infinities fail too
                        return None
                    if integral and not x.is_integer():
                        return None
                elif t is int:
                    fx = as_float(v)
                    if fx is None or not (lo <= fx <= hi):
                        return None
                    x = fx
                else:
                    return None
                if decimals is not None:
                    try:
                        if not decimals_ok(x, decimals):
                            return None
                    except (OverflowError, ValueError):
                        return None
            elif kind == _CAT:
                if t is bool or v is None or table is None:
                    return None
                try:
                    found = table.get(v)
                except TypeError:  # unhashable: a list or an object
                    return None
                if found is None:
                    return None
                x = found
            elif kind == _BOOL:
                if t is not bool:
                    return None
                x = 1.0 if v else 0.0
            else:
                return None
            if j >= 0:
                out[j] = x
        for rule in self._rules:
            if rule_broken(rule, record):
                return None
        return np.array(out)


class CompiledTransform:
    """A model's contract transform applied to the raw encoding of :class:`CompiledRecord`.

    Parameters
    ----------
    transform : FeatureTransform
        The model's transform (its options: clip, bins, neutral values, dropped features).
    raw_names : sequence of str
        The order of the raw vector (``CompiledRecord.feature_names``).
    """

    def __init__(self, transform: FeatureTransform, raw_names: Sequence[str]) -> None:
        self.transform = transform
        names = list(transform.feature_names)
        self.feature_names = names
        where = {n: j for j, n in enumerate(raw_names)}
        self._select = np.asarray([where[n] for n in names], dtype=np.intp)
        self._identity = list(raw_names) == names
        plans = transform._plans
        self._lo = np.asarray([p.lo for p in plans], dtype=float)
        self._hi = np.asarray([p.hi for p in plans], dtype=float)
        self._numeric = [p.spec.is_numeric for p in plans]
        # Every feature's bounds (infinite ones too: a NaN fails any comparison, and clip()
        # reports it moved).
        self._bounded = [
            (j, float(lo), float(hi))
            for j, (lo, hi) in enumerate(zip(self._lo, self._hi, strict=True))
        ]
        self._neutral = [p.neutral_encoded for p in plans]
        self._has_neutral = {p.name for p in plans if p.spec.neutral is not None}
        self._always = set(transform.options.neutralize)
        self._bins = [
            (j, [float(e) for e in p.edges]) for j, p in enumerate(plans) if p.edges is not None
        ]
        self._bin_actions = [f"bin:{names[j]}" for j, _ in self._bins]
        self._decode: list[tuple[int, str, list[Any] | None]] = []
        for j, p in enumerate(plans):
            if p.spec.type == "category":
                self._decode.append((j, p.name, list(p.spec.categories or [])))
            elif p.spec.type == "boolean":
                self._decode.append((j, p.name, None))

    def apply(
        self, raw: np.ndarray, neutralize: Iterable[str] = ()
    ) -> tuple[np.ndarray, list[str]]:
        """The model row of shape ``(1, n_features)`` and the guard actions.

        The same as ``transform.transform_record(record, neutralize)`` for the record whose
        raw encoding is ``raw``.
        """
        x = raw.copy() if self._identity else raw[self._select]
        neutral = (
            self._always | {n for n in neutralize if n in self._has_neutral}
            if neutralize
            else self._always
        )
        if not neutral:
            # The ordinary request: nothing to neutralise; a value to clip (or a NaN) sends it
            # to the general case below (np.clip costs more than these comparisons).
            values = x.tolist()
            for j, low, high in self._bounded:
                if not low <= values[j] <= high:  # NaN is "moved" too, as clip() != x says
                    break
            else:
                for j, edges in self._bins:
                    x[j] = _bin(edges, values[j])
                return x.reshape(1, -1), list(self._bin_actions)
        lo, hi = self._lo, self._hi
        clipped = np.clip(x, lo, hi)
        moved = clipped != x
        # The general case (neutral values, clipped values): actions in feature order.
        names = self.feature_names
        binned = dict(self._bins)
        actions: list[str] = []
        for j, name in enumerate(names):
            if name in neutral:
                clipped[j] = self._neutral[j]
                actions.append(f"neutralize:{name}")
                continue
            if self._numeric[j]:
                if moved[j]:
                    actions.append(f"clip:{name}")
                cut = binned.get(j)
                if cut is not None:
                    actions.append(f"bin:{name}")
                    clipped[j] = _bin(cut, clipped[j])
        return clipped.reshape(1, -1), actions

    def features(self, row: np.ndarray) -> dict[str, Any] | None:
        """The model input in raw units for the log (categories back to their values).

        ``None`` when the row holds a missing value (the caller decodes it the general way).
        """
        values = row.tolist()
        out = dict(zip(self.feature_names, values, strict=True))
        for j, name, cats in self._decode:
            v = values[j]
            if v != v:
                return None
            out[name] = cats[int(v)] if cats is not None else bool(v)
        for v in values:
            if v != v:
                return None
        return out


def _bin(edges: list[float], x: float) -> float:
    # np.searchsorted(edges, x, side="right") - 1, kept inside the first and last bins.
    i = bisect.bisect_right(edges, x) - 1
    return edges[min(max(i, 0), len(edges) - 2)]


def check_records(contract: Contract, n: int = 200, seed: int = 0) -> list[dict[str, Any]]:
    """Records to check a compiled contract on: random valid ones and every edge value.

    Edges: each numeric feature at its min, max, clip edges, bin edges (and one unit either
    side), neutral value; each category and boolean value; one record per edge, the rest of it
    taken from a random valid record.
    """
    from tabguard.serving._scoring import random_records

    base = random_records(contract, n, seed=seed)
    if not base:
        return []
    out = list(base)
    template = base[0]
    for name, spec in contract.items():
        values: list[Any] = []
        if spec.is_numeric:
            for v in (spec.min, spec.max, *(spec.clip or ()), *(spec.bins or ()), spec.neutral):
                if v is None or isinstance(v, bool | str):
                    continue
                for d in (-1.0, 0.0, 1.0):
                    x = float(v) + d
                    values.append(int(x) if spec.type == "integer" and x.is_integer() else x)
        elif spec.type == "category":
            values = list(spec.categories or [])
        elif spec.type == "boolean":
            values = [False, True]
        out += [{**template, name: v} for v in values]
    return out


def compile_contract(
    contract: Contract,
    transforms: Sequence[FeatureTransform],
    records: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[CompiledRecord | None, list[CompiledTransform | None], str | None]:
    """Compile the record check and each transform, checked against the reference.

    Parameters
    ----------
    contract : Contract
    transforms : sequence of FeatureTransform
        The served models' transforms (main, fallback).
    records : sequence of mapping, optional
        The check sample (default :func:`check_records`).

    Returns
    -------
    record : CompiledRecord or None
        ``None`` when it differs from the reference on the sample (then nothing is compiled).
    transforms : list of CompiledTransform or None
        One per transform (``None``: it differs from ``transform_record``).
    reason : str or None
        Why something stays on the reference path.
    """
    from tabguard.serving._reference import RawEncoder

    sample = list(records) if records is not None else check_records(contract)
    compiled = CompiledRecord(contract)
    validator = RecordValidator(contract)
    encoder = RawEncoder(contract)
    vectors: list[tuple[Mapping[str, Any], np.ndarray]] = []
    for record in sample:
        vector = compiled.encode(dict(record))
        valid = not validator.errors(record)
        if vector is None:
            continue  # the reference decides: always right
        if not valid:
            return None, [None] * len(transforms), "the compiled check accepted an invalid record"
        if not np.array_equal(vector, encoder.encode(record), equal_nan=True):
            return None, [None] * len(transforms), "the compiled encoding differs"
        vectors.append((record, vector))
    if not vectors:
        return None, [None] * len(transforms), "no check record took the compiled path"
    out: list[CompiledTransform | None] = []
    reasons: list[str] = []
    for transform in transforms:
        ct: CompiledTransform | None = CompiledTransform(transform, compiled.feature_names)
        flags: list[tuple[str, ...]] = [(), tuple(transform.feature_names[:2])]
        for record, vector in vectors:
            for extra in flags:
                row, actions = ct.apply(vector, extra)  # type: ignore[union-attr]
                want_row, want_actions = transform.transform_record(record, extra)
                same = np.array_equal(row, want_row, equal_nan=True) and actions == want_actions
                if same:
                    from tabguard.serving._guards import guarded_features

                    decoded = ct.features(row[0])  # type: ignore[union-attr]
                    same = decoded is None or decoded == guarded_features(transform, row[0])
                if not same:
                    reasons.append(f"the compiled transform differs on {sorted(record)[:1]}")
                    ct = None
                    break
            if ct is None:
                break
        out.append(ct)
    return compiled, out, "; ".join(reasons) or None
