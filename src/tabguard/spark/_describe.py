"""The descriptive statistics of every row, from the Spark engine's value counts.

The counting pass (:func:`tabguard.spark._batches.count_partition`) counts, per feature of the
contract, every value's rows and positive labels (kind ``v``) and the same among the rows that
break the contract (kind ``i``). Their difference is the value counts of the valid rows, which
is what the in-memory descriptive check describes: counts, missing values, distinct values,
category frequencies, exact percentiles, mean, standard deviation and skewness, and the
bivariate tables (rows and positives per category, value or decile bin) with their chi-square
tests. The check's rank statistics (Mann-Whitney tests, AUCs, Spearman) need rows: they run on
the driver sample's uniform share (:class:`tabguard.data_audit._descriptive.PopulationStats`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tabguard.contract import Contract
from tabguard.contract._validate import _canon
from tabguard.data_audit._descriptive import (
    FeatureStats,
    categorical_stats_from_counts,
    numeric_stats_from_counts,
)
from tabguard.spark._batches import counted_features


def _read(where: Path, j: int) -> pd.DataFrame:
    """The aggregated counts of feature ``j`` (empty when none were written)."""
    import pyarrow.parquet as pq

    if not any(where.glob(f"j={j}/*.parquet")):
        return pd.DataFrame({"num": [], "key": [], "n": [], "pos": []})
    return pq.read_table(where / f"j={j}", columns=["num", "key", "n", "pos"]).to_pandas()


def _valid_counts(values: pd.DataFrame, invalid: pd.DataFrame, by: str) -> pd.DataFrame:
    """Rows and positives per value among the valid rows (every row less the invalid ones)."""
    if not len(invalid):
        return values.groupby(by, sort=False)[["n", "pos"]].sum().reset_index()
    both = pd.concat([values, invalid.assign(n=-invalid["n"], pos=-invalid["pos"])])
    return both.groupby(by, sort=False)[["n", "pos"]].sum().reset_index()


def _label(key: tuple[Any, ...]) -> str:
    v = key[1] if len(key) > 1 else key
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def population_stats(
    counts_dir: Path, contract: Contract, rows: int, positives: int, n_bins: int
) -> dict[str, FeatureStats]:
    """Per contract feature, the descriptive statistics of the valid rows (``rows`` of them,
    ``positives`` positive) from the aggregated counts under ``counts_dir`` (``values`` and
    ``invalid``, partitioned by feature index ``j``)."""
    out: dict[str, FeatureStats] = {}
    for j, name in enumerate(counted_features(contract)):
        spec = contract.features[name]
        values = _read(counts_dir / "values", j)
        invalid = _read(counts_dir / "invalid", j)
        numeric = spec.type in ("integer", "number", "boolean")
        if numeric and not values["key"].isna().all():
            continue  # not parsed as numbers: described on the sample
        if not numeric and values["key"].isna().any():
            continue
        by = "num" if numeric else "key"
        valid = _valid_counts(values, invalid, by)
        valid = valid[valid["n"] > 0]
        counted = int(valid["n"].sum())
        missing, missing_pos = rows - counted, float(positives - valid["pos"].sum())
        if numeric:
            valid = valid.sort_values("num", kind="stable")
            x = valid["num"].to_numpy(dtype=float)
            n = valid["n"].to_numpy(dtype=np.int64)
            pos = valid["pos"].to_numpy(dtype=float)
            if spec.type == "boolean":
                ok = np.isin(x, [0.0, 1.0])
                cnt = np.bincount(x[ok].astype(np.int64), weights=n[ok], minlength=2)
                ps = np.bincount(x[ok].astype(np.int64), weights=pos[ok], minlength=2)
                out[name] = categorical_stats_from_counts(
                    ["false", "true"], cnt.astype(np.int64), ps, missing, missing_pos
                )
            else:
                out[name] = numeric_stats_from_counts(x, n, pos, missing, missing_pos, n_bins)
            continue
        # categories in the order of the in-memory engine's codes: the contract's, then others
        cats = list(spec.categories or [])
        order = {_canon(c): i for i, c in enumerate(cats)}
        keys = [tuple(json.loads(k)) for k in valid["key"]]
        n_by: dict[tuple[Any, ...], int] = {}
        pos_by: dict[tuple[Any, ...], float] = {}
        for k, a, b in zip(keys, valid["n"], valid["pos"], strict=True):
            n_by[k] = n_by.get(k, 0) + int(a)
            pos_by[k] = pos_by.get(k, 0.0) + float(b)
        extra = sorted((k for k in n_by if k not in order), key=repr)
        labels = [str(c) for c in cats] + [_label(k) for k in extra]
        slots = [_canon(c) for c in cats] + extra
        out[name] = categorical_stats_from_counts(
            labels,
            np.array([n_by.get(k, 0) for k in slots], dtype=np.int64),
            np.array([pos_by.get(k, 0.0) for k in slots], dtype=float),
            missing,
            missing_pos,
        )
    return out


def totals(raw_dir: Path) -> tuple[int, int, int, int]:
    """Rows, positives, invalid rows and their positives, from the counting pass."""
    import pyarrow.parquet as pq

    t = pq.read_table(raw_dir, filters=[("kind", "in", ["t", "u"])], columns=["kind", "n", "pos"])
    frame = t.to_pandas().groupby("kind")[["n", "pos"]].sum()
    got = [
        int(frame.loc[k, c]) if k in frame.index else 0
        for k, c in (("t", "n"), ("t", "pos"), ("u", "n"), ("u", "pos"))
    ]
    return got[0], got[1], got[2], got[3]
