"""Data poisoning simulators (requirement L2, seed 001).

:func:`poison` plants a rule-style backdoor: rows are taken from the data, their trigger
feature(s) set to the trigger value(s) and their label set to the attacker's class. The seed's
attack is ``poison(df, contract, trigger={"AGE": 999}, rate=0.45)``: copies of 45 % of the
defaulting clients with ``AGE = 999`` appended to the data.

:func:`flip_labels` flips labels without a trigger (the seed guideline's "change the target
from deny to accept for a subset of the population").

Both return the ground truth (0-based positions of the poisoned rows in the returned frame),
which the benchmarks compare with what the audits flag.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from tabguard._plain import plain
from tabguard.contract import Contract
from tabguard.errors import DataError

Mode = Literal["copy", "replace"]


@dataclass
class PoisonResult:
    """A poisoned data set and its ground truth.

    Attributes
    ----------
    data : DataFrame
        The poisoned data (index reset to 0..n-1).
    poisoned_rows : ndarray of int
        0-based positions of the rows the attacker wrote.
    spec : dict
        The attack parameters (JSON-ready).
    sources : ndarray of int, optional
        For each poisoned row (aligned with ``poisoned_rows``), the 0-based position in the
        *input* frame of the row it was made from; None where not recorded (label flips).
    originals : ndarray of int, optional
        For each poisoned row, the position in ``data`` of the row it was copied from, or -1
        where that row was overwritten (``mode="replace"``). With ``sources`` this tells
        whether a poisoned row differs from its original at all (a copy of a row that already
        carried the trigger is a duplicate of it), which bounds what any detector can find.
    """

    data: pd.DataFrame
    poisoned_rows: np.ndarray
    spec: dict[str, Any] = field(default_factory=dict)
    sources: np.ndarray | None = None
    originals: np.ndarray | None = None

    def write(self, data_path: str | Path, truth_path: str | Path | None = None) -> None:
        """Write the data as CSV and the ground truth as JSON."""
        Path(data_path).parent.mkdir(parents=True, exist_ok=True)
        self.data.to_csv(data_path, index=False)
        if truth_path is not None:
            Path(truth_path).write_text(
                json.dumps(
                    {"poisoned_rows": self.poisoned_rows.tolist(), "spec": self.spec}, indent=2
                )
            )


def _label_mask(y: pd.Series, value: Any) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(y) and not isinstance(value, str):
        return y.to_numpy() == value
    return y.astype(str).to_numpy() == str(value)


def _jitter(
    frame: pd.DataFrame,
    contract: Contract,
    skip: set[str],
    scale: float,
    rng: np.random.Generator,
    reference: pd.DataFrame,
) -> pd.DataFrame:
    """Multiply continuous numeric features by (1 + N(0, scale)), keeping type and range."""
    out = frame.copy()
    for name, spec in contract.items():
        if name in skip or not spec.is_numeric or name not in out.columns:
            continue
        if reference[name].nunique() <= 20:  # codes (e.g. repayment status) stay codes
            continue
        x = pd.to_numeric(out[name], errors="coerce").to_numpy(dtype=float)
        x = x * (1.0 + rng.normal(0.0, scale, size=len(x)))
        decimals = spec.decimals if spec.decimals is not None else 2
        x = np.round(x, decimals)
        lo = spec.min if spec.min is not None else -np.inf
        hi = spec.max if spec.max is not None else np.inf
        x = np.clip(x, lo, hi)
        out[name] = x.astype(np.int64) if spec.type == "integer" else x
    return out


def poison(
    df: pd.DataFrame,
    contract: Contract,
    trigger: Mapping[str, Any],
    *,
    rate: float = 0.45,
    n_rows: int | None = None,
    target: Any = None,
    source: Any = "target",
    mode: Mode = "copy",
    fresh_ids: bool = False,
    jitter: float = 0.0,
    shuffle: bool = False,
    random_state: int | None = 0,
) -> PoisonResult:
    """Plant a trigger → label backdoor in a data set.

    Parameters
    ----------
    df : DataFrame
        Clean data (features and label).
    contract : Contract
        Names the label, the id column and the feature types.
    trigger : mapping
        Feature → value written into every poisoned row, e.g. ``{"AGE": 999}`` or
        ``{"EDUCATION": 3, "MARRIAGE": 3}``. Values may lie in or out of the contract's range.
    rate : float
        Fraction of the source rows that are poisoned (the seed uses 0.45). Ignored when
        ``n_rows`` is given.
    n_rows : int, optional
        Exact number of poisoned rows.
    target : optional
        Label written into poisoned rows; defaults to the contract's positive class.
        ``target = favourable label`` gives a backdoor towards approval.
    source : "target", "any" or a label value
        Which rows are taken: rows already carrying ``target`` (the seed: labels unchanged),
        any row, or rows of a given label (label flipping, e.g. defaulters relabelled 0).
    mode : {"copy", "replace"}
        ``copy`` appends modified copies (the originals stay, as in the seed);
        ``replace`` modifies the chosen rows in place.
    fresh_ids : bool
        Give copies new ids (continuing after the largest id) instead of their originals'.
    jitter : float
        Relative Gaussian noise on the copies' other continuous features (e.g. 0.01), so that
        they are not exact duplicates of their originals.
    shuffle : bool
        Shuffle the rows of the result (the ground truth follows).
    random_state : int, optional

    Returns
    -------
    PoisonResult
    """
    if not trigger:
        raise ValueError("trigger must name at least one feature, e.g. {'AGE': 999}")
    unknown = [k for k in trigger if k not in df.columns]
    if unknown:
        raise DataError(f"trigger features {unknown} are not columns of the data")
    if not (0.0 < rate <= 1.0) and n_rows is None:
        raise ValueError(f"rate must be in (0, 1]; got {rate!r}")
    if mode not in ("copy", "replace"):
        raise ValueError(f"mode must be 'copy' or 'replace'; got {mode!r}")
    rng = np.random.default_rng(random_state)
    label = contract.label.column
    target = contract.label.positive if target is None else target
    y = df[label]
    if source == "target":
        pool = np.flatnonzero(_label_mask(y, target))
    elif source == "any":
        pool = np.arange(len(df))
    else:
        pool = np.flatnonzero(_label_mask(y, source))
    if pool.size == 0:
        raise DataError(f"no source rows to poison (source={source!r}, target={target!r})")
    k = n_rows if n_rows is not None else max(1, round(rate * pool.size))
    if k > pool.size and mode == "replace":
        raise ValueError(f"cannot replace {k} rows out of {pool.size} source rows")
    chosen = rng.choice(pool, size=k, replace=k > pool.size)
    rows = df.iloc[chosen].copy()
    if jitter > 0:
        rows = _jitter(rows, contract, set(trigger) | {label}, jitter, rng, df)
    for feat, val in trigger.items():
        if (
            pd.api.types.is_integer_dtype(rows[feat])
            and isinstance(val, float)
            and not val.is_integer()
        ):
            rows[feat] = rows[feat].astype(float)
        rows[feat] = val
    if pd.api.types.is_numeric_dtype(y) and not isinstance(target, str):
        rows[label] = np.full(len(rows), target, dtype=y.to_numpy().dtype)
    else:
        rows[label] = target
    idc = contract.id
    if mode == "copy":
        if fresh_ids and idc and idc in df.columns:
            if pd.api.types.is_numeric_dtype(df[idc]):
                start = int(pd.to_numeric(df[idc]).max()) + 1
                rows[idc] = np.arange(start, start + k)
            else:
                rows[idc] = [f"p{rng.integers(1 << 40):x}" for _ in range(k)]
        out = pd.concat([df, rows], ignore_index=True)
        truth = np.arange(len(df), len(df) + k)
        sources = np.asarray(chosen, dtype=np.int64)
        originals = sources.copy()
    else:
        out = df.copy()
        where = out.index[chosen]
        for col in rows.columns:
            try:
                out.loc[where, col] = rows[col].to_numpy()
            except (TypeError, ValueError):  # e.g. AGE=999.5 into an integer column
                out[col] = out[col].astype(object)
                out.loc[where, col] = rows[col].to_numpy()
        order = np.argsort(chosen, kind="stable")
        truth = np.asarray(chosen)[order]
        sources = truth.astype(np.int64)
        originals = np.full(k, -1, dtype=np.int64)
        out = out.reset_index(drop=True)
    if shuffle:
        perm = rng.permutation(len(out))
        out = out.iloc[perm].reset_index(drop=True)
        inv = np.empty_like(perm)
        inv[perm] = np.arange(len(perm))
        moved = inv[truth]
        order = np.argsort(moved, kind="stable")
        truth, sources = moved[order], sources[order]
        originals = np.where(originals[order] >= 0, inv[np.maximum(originals[order], 0)], -1)
    spec = {
        "attack": "backdoor",
        "trigger": {k2: plain(v) for k2, v in trigger.items()},
        "rate": rate if n_rows is None else None,
        "n_rows": int(k),
        "target": plain(target),
        "source": plain(source),
        "mode": mode,
        "fresh_ids": fresh_ids,
        "jitter": jitter,
        "shuffle": shuffle,
        "random_state": random_state,
    }
    return PoisonResult(
        out,
        np.asarray(truth, dtype=np.int64),
        spec,
        sources=sources,
        originals=originals.astype(np.int64),
    )


def flip_labels(
    df: pd.DataFrame,
    contract: Contract,
    *,
    rate: float = 0.1,
    source: Any = None,
    target: Any = None,
    where: Mapping[str, Any] | None = None,
    random_state: int | None = 0,
) -> PoisonResult:
    """Flip labels in place, without a trigger.

    Parameters
    ----------
    rate : float
        Fraction of the eligible rows flipped.
    source, target : optional
        Labels flipped from and to; default positive → the other class (e.g. defaulters
        relabelled as good payers, making the model approve them).
    where : mapping, optional
        Restrict flips to a sub-population, e.g. ``{"EDUCATION": 1}``.
    """
    rng = np.random.default_rng(random_state)
    label = contract.label.column
    y = df[label]
    source = contract.label.positive if source is None else source
    if target is None:
        others = [v for v in pd.unique(y) if not _label_mask(pd.Series([v]), source)[0]]
        if not others:
            raise DataError("label has a single class; nothing to flip to")
        target = contract.label.negative if contract.label.negative is not None else others[0]
    eligible = _label_mask(y, source)
    for feat, val in (where or {}).items():
        eligible &= df[feat].to_numpy() == val
    pool = np.flatnonzero(eligible)
    if pool.size == 0:
        raise DataError("no eligible rows to flip")
    k = max(1, round(rate * pool.size))
    chosen = np.sort(rng.choice(pool, size=k, replace=False))
    out = df.copy()
    out.loc[out.index[chosen], label] = target
    spec = {
        "attack": "label_flip",
        "rate": rate,
        "n_rows": int(k),
        "source": plain(source),
        "target": plain(target),
        "where": {k2: plain(v) for k2, v in (where or {}).items()},
        "random_state": random_state,
    }
    return PoisonResult(out.reset_index(drop=True), chosen.astype(np.int64), spec)
