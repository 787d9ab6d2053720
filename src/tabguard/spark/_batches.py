"""Per-batch code of the Spark data audit, run by Spark's Python workers (``mapInPandas``).

Kept apart from :mod:`tabguard.spark._audit` so that a worker imports the contract, numpy and
pandas only, not the data audit's models (LightGBM, SciPy): a worker starts in a fraction of
the time and memory. Values are parsed, canonicalised and validated by the contract's own code,
so they are exactly those of the in-memory engine.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tabguard._copy_groups import copy_entries, splitmix64
from tabguard._pair_counts import pair_tensor
from tabguard.contract import Contract, validate_frame
from tabguard.contract._validate import _canon_lenient
from tabguard.io import check_labels

ROW = "_tabguard_row"
_NUMERIC = ("integer", "number", "boolean")


def numeric_features(contract: Contract) -> list[bool]:
    return [contract.features[n].type in _NUMERIC for n in contract.model_features()]


def counted_features(contract: Contract) -> list[str]:
    """The features the counting pass counts: the model features (their index ``j`` is the
    trigger scan's), then the others (protected), which only the descriptive check reads."""
    model = contract.model_features()
    return [*model, *(n for n in contract.features if n not in model)]


def _value_counts(
    frame: pd.DataFrame, name: str, numeric: bool, x: np.ndarray | None, y: np.ndarray
) -> pd.DataFrame:
    """Rows and positives per value of one feature (``num`` for numeric values, else ``key``:
    the canonical value as JSON)."""
    if numeric and x is not None:
        ok = np.isfinite(x)
        part = pd.DataFrame({"num": x[ok], "pos": y[ok]})
        g2 = part.groupby("num", sort=False)["pos"].agg(["size", "sum"]).reset_index()
        return pd.DataFrame({"num": g2["num"], "key": None, "n": g2["size"], "pos": g2["sum"]})
    codes, uniq = pd.factorize(frame[name], use_na_sentinel=True)
    ok = codes >= 0
    n = np.bincount(codes[ok], minlength=len(uniq))
    pos = np.bincount(codes[ok], weights=y[ok], minlength=len(uniq)).astype(np.int64)
    keys = [json.dumps(list(_canon_lenient(v))) for v in uniq]
    return pd.DataFrame({"num": np.nan, "key": keys, "n": n, "pos": pos})


def _merged(parts: list[pd.DataFrame], numeric: bool, kind: str, j: int) -> pd.DataFrame:
    allv = pd.concat(parts, ignore_index=True)
    by = "num" if numeric and allv["key"].isna().all() else "key"
    merged = allv.groupby(by, sort=False, dropna=False)[["n", "pos"]].sum().reset_index()
    if by == "num":
        merged["key"] = None
    else:
        merged["num"] = np.nan
    merged["kind"] = kind
    merged["j"] = j
    return merged


def count_partition(batches: Iterator[pd.DataFrame], contract: Contract) -> Iterator[pd.DataFrame]:
    """Validate a partition's rows and count its values (pass 2 of the module docstring).

    Yields rows of kind ``t`` (rows and positives of the partition), ``u`` (rows and
    positives of the rows that break the contract), ``x`` (one per violation: row, field,
    rule, message; the group's examples on its first row), ``v`` (per feature ``j`` of
    :func:`counted_features` and value: rows ``n``, positives ``pos``) and ``i`` (the same
    counts among the rows that break the contract: the descriptive check describes the others).
    """
    names = counted_features(contract)
    numeric = [contract.features[n].type in _NUMERIC for n in names]
    acc: list[list[pd.DataFrame]] = [[] for _ in names]
    bad_acc: list[list[pd.DataFrame]] = [[] for _ in names]
    out: list[pd.DataFrame] = []
    n_rows = n_pos = n_bad = bad_pos = 0
    for batch in batches:
        rows = batch.pop(ROW).to_numpy(dtype=np.int64)
        frame = batch.reset_index(drop=True)
        y = check_labels(frame, contract).to_numpy().astype(np.int64)
        n_rows += len(y)
        n_pos += int(y.sum())
        val = validate_frame(frame, contract)
        bad = np.asarray(val.invalid_mask(), dtype=bool)
        n_bad += int(bad.sum())
        bad_pos += int(y[bad].sum())
        for g in val.groups:
            k = len(g.rows)
            out.append(
                pd.DataFrame(
                    {
                        "kind": "x",
                        "row": rows[g.rows],
                        "field": g.field,
                        "rule": g.rule,
                        "message": g.message,
                        "key": [json.dumps(g.examples[:5], default=str)] + [None] * (k - 1),
                    }
                )
            )
        for j, name in enumerate(names):
            x = (
                val.numeric[name].to_numpy(dtype=float)
                if numeric[j] and name in val.numeric
                else None
            )
            acc[j].append(_value_counts(frame, name, numeric[j], x, y))
            if bad.any():
                sub = frame.loc[bad].reset_index(drop=True)
                bad_acc[j].append(
                    _value_counts(sub, name, numeric[j], None if x is None else x[bad], y[bad])
                )
    for j in range(len(names)):
        if acc[j]:
            out.append(_merged(acc[j], numeric[j], "v", j))
        if bad_acc[j]:
            out.append(_merged(bad_acc[j], numeric[j], "i", j))
    out.append(pd.DataFrame({"kind": ["t"], "n": [n_rows], "pos": [n_pos]}))
    out.append(pd.DataFrame({"kind": ["u"], "n": [n_bad], "pos": [bad_pos]}))
    for frame_out in out:
        yield _typed(frame_out)


_STRINGS = ("kind", "key", "field", "rule", "message")
_COUNT_COLUMNS = ["kind", "j", "num", "key", "n", "pos", "row", "field", "rule", "message"]
COUNT_SCHEMA = (
    "kind string, j long, num double, key string, n long, pos long, row long, field string, "
    "rule string, message string"
)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """The output columns with the types Arrow maps to the schema: strings as Python objects
    (None when absent), integers nullable."""
    out = frame.reindex(columns=_COUNT_COLUMNS)
    for c in _COUNT_COLUMNS:
        col = out[c]
        if c in _STRINGS:
            values: list[Any] = [None if pd.isna(v) else str(v) for v in col.tolist()]
            out[c] = pd.Series(values, index=out.index, dtype="object")
        elif c != "num":
            out[c] = col.astype("Int64")
    return out


@dataclass
class Vocabulary:
    """Per feature, the values of every row: sorted ids, counts, positives (the driver's)."""

    names: list[str]
    numeric: list[bool]
    ordinal: list[bool]  # numeric and not boolean: ids ordered by value
    uniques: list[np.ndarray]
    counts: list[np.ndarray]
    positives: list[np.ndarray]
    breaks: list[np.ndarray]
    edges: list[np.ndarray | None]  # numeric ids are runs starting at these values (merged)
    lookup: list[dict[Any, int]]  # category key -> id

    def codes(
        self,
        frame: pd.DataFrame,
        contract: Contract,
        numeric: Mapping[str, np.ndarray] | None = None,
    ) -> np.ndarray:
        """Value ids of a frame's rows (int32, -1 when missing or unparsable).

        ``numeric``: the frame's numeric view (:func:`validate_numeric`) when the caller has
        validated it already (the driver sample: validating it again costs a transient copy
        of every numeric column).
        """
        val_numeric = validate_numeric(frame, contract) if numeric is None else numeric
        out = np.full((len(frame), len(self.names)), -1, dtype=np.int32)
        for j, name in enumerate(self.names):
            if self.numeric[j]:
                x = val_numeric[name]
                ok = np.isfinite(x)
                edges = self.edges[j]
                ref = self.uniques[j] if edges is None else edges
                idx = np.searchsorted(ref, x[ok], side="right" if edges is not None else "left")
                if edges is not None:
                    idx = idx - 1
                out[ok, j] = np.clip(idx, 0, max(len(ref) - 1, 0))
            else:
                codes, uniq = pd.factorize(frame[name], use_na_sentinel=True)
                remap = np.array(
                    [self.lookup[j].get(_canon_lenient(v), -1) for v in uniq] + [-1],
                    dtype=np.int32,
                )
                out[:, j] = remap[codes]
        return out


def validate_numeric(frame: pd.DataFrame, contract: Contract) -> dict[str, np.ndarray]:
    """The numeric view of a frame's numeric features, as the contract validation reads them."""
    numeric = validate_frame(frame, contract).numeric
    return {n: numeric[n].to_numpy(dtype=float) for n in numeric.columns}


def pair_partition(
    batches: Iterator[pd.DataFrame], contract: Contract, vocab: Vocabulary, maps: list[np.ndarray]
) -> Iterator[pd.DataFrame]:
    """Label counts of value pairs of a partition (summed on the driver)."""
    d = len(vocab.names)
    luts = []
    for j in range(d):
        lut = np.full(len(vocab.counts[j]) + 1, -1, dtype=np.int32)
        lut[maps[j]] = np.arange(len(maps[j]), dtype=np.int32)
        luts.append(lut)
    acc: dict[tuple[int, int], np.ndarray] = {}
    for batch in batches:
        batch = batch.drop(columns=[ROW]).reset_index(drop=True)
        y = check_labels(batch, contract).to_numpy().astype(np.int64)
        codes = vocab.codes(batch, contract)
        small = np.stack([luts[j][codes[:, j]] for j in range(d)], axis=1)
        for a in range(d):
            for b in range(a + 1, d):
                ka, kb = len(maps[a]), len(maps[b])
                if ka < 2 or kb < 2:
                    continue
                t = pair_tensor(small[:, a], small[:, b], y, ka, kb)
                acc[(a, b)] = t if (a, b) not in acc else acc[(a, b)] + t
    yield pd.DataFrame(
        {
            "a": [a for a, _ in acc],
            "b": [b for _, b in acc],
            "counts": [v.astype(np.int64).tobytes() for v in acc.values()],
        }
    )


#: Column of :func:`keep_partition`'s output: the row's keep key (see :class:`Keep`).
KEY = "_tabguard_keep"


@dataclass
class Keep:
    """Which rows the driver sample keeps: per feature the rows of each value id's smallest
    candidate pattern (0: no candidate), pairs with their rows, a random share of every row.

    Every row of a candidate and every random row is written with a keep key: -1 for a random
    row (``u < share``, ``u`` the row's uniform number, :func:`_uniform`), else ``u * m``, ``m``
    the rows of the smallest candidate holding it. The driver keeps the rows whose key is
    below a level ``L`` (:func:`tabguard.spark._audit._keep_level`): a candidate of ``n`` rows
    keeps a uniform ``min(1, L / n)`` of them, so every candidate keeps about ``L`` rows or all
    of its rows, and ``L`` is chosen from the keys so that the rows kept number at most the
    driver's budget (``inf``: every candidate whole).
    """

    values: list[np.ndarray]  # rows of the smallest candidate per value id (0: none)
    pairs: list[tuple[int, int, int, int, int]]  # (feature, id, feature, id, rows)
    share: float
    seed: int


def keep_partition(
    batches: Iterator[pd.DataFrame], contract: Contract, vocab: Vocabulary, keep: Keep
) -> Iterator[pd.DataFrame]:
    """The rows of a partition that are a candidate's or random (every column and
    :data:`KEY`)."""
    for batch in batches:
        rows = batch[ROW].to_numpy(dtype=np.int64)
        codes = vocab.codes(batch.drop(columns=[ROW]).reset_index(drop=True), contract)
        m = np.full(len(batch), np.inf)
        for j, size in enumerate(keep.values):
            c = codes[:, j]
            got = np.where(c >= 0, size[np.maximum(c, 0)], 0.0)
            m = np.where(got > 0, np.minimum(m, got), m)
        for a, va, b, vb, n in keep.pairs:
            held = (codes[:, a] == va) & (codes[:, b] == vb)
            m = np.where(held, np.minimum(m, float(n)), m)
        # by row number: the same rows and keys whatever the partitioning
        u = _uniform(rows, keep.seed)
        key = np.full(len(batch), np.inf)
        held = np.isfinite(m)  # (u * inf is nan where u is 0: row 0 of seed 0)
        key[held] = u[held] * m[held]
        key[u < keep.share] = -1.0
        mask = np.isfinite(key)
        if mask.any():
            yield batch.loc[mask].assign(**{KEY: key[mask]})


#: Spark schema of :func:`copy_partition`'s output.
COPY_SCHEMA = "s long, key long, label long, cells binary, n long"


def copy_partition(
    batches: Iterator[pd.DataFrame],
    contract: Contract,
    vocab: Vocabulary,
    sets: list[tuple[int, ...]],
    wanted: list[np.ndarray],
) -> Iterator[pd.DataFrame]:
    """The compositions of the copy groups of a partition's rows whose key (on every feature
    but ``sets[s]``) is one of the driver's rows' keys ``wanted[s]``
    (:func:`tabguard._copy_groups.copy_entries`; summed by Spark)."""
    for batch in batches:
        frame = batch.drop(columns=[ROW]).reset_index(drop=True)
        codes = vocab.codes(frame, contract)
        y = check_labels(frame, contract).to_numpy().astype(np.int64)
        out = copy_entries(codes, y, sets, wanted)
        if len(out):
            yield out


#: A pattern for :func:`pattern_partition`: per cell (feature, first id, last id), the label
#: its rows must carry (None: any).
Spec = tuple[tuple[tuple[int, int, int], ...], int | None]


def pattern_partition(
    batches: Iterator[pd.DataFrame], contract: Contract, vocab: Vocabulary, specs: list[Spec]
) -> Iterator[pd.DataFrame]:
    """Row numbers of the rows of each pattern ``specs[i]`` (column ``spec``)."""
    for batch in batches:
        rows = batch[ROW].to_numpy(dtype=np.int64)
        frame = batch.drop(columns=[ROW]).reset_index(drop=True)
        codes = vocab.codes(frame, contract)
        y = check_labels(frame, contract).to_numpy().astype(np.int64)
        for i, (cells, label) in enumerate(specs):
            mask = np.ones(len(frame), dtype=bool) if label is None else y == label
            for j, lo, hi in cells:
                mask &= (codes[:, j] >= lo) & (codes[:, j] <= hi)
            if mask.any():
                yield pd.DataFrame({"row": rows[mask], "spec": i})


def _uniform(rows: np.ndarray, seed: int) -> np.ndarray:
    """A uniform number in [0, 1) per row number (splitmix64 of the number and the seed)."""
    z = splitmix64(rows, step=seed)
    return (z >> np.uint64(11)).astype(np.float64) / float(2**53)
