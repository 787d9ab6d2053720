"""Drift against the training reference: PSI and Jensen–Shannon distance per column.

The reference (``reference.json`` in the model directory, written by ``tabguard train``; or
``tabguard monitor reference`` for an older model) holds, per raw attribute and per model
feature, the bins of the training distribution and their shares:

* numbers: bin edges at the training deciles (``drift.bins``), or one bin per value when the
  training data has at most 20 distinct values (payment statuses, counts);
* categories: one bin per declared category, plus ``other``.

A window's shares come from its merged KLL sketch (``cdf`` at the edges) or its category
counts, so drift is computed from stored buckets, per segment, for any window. Both
distributions are smoothed with half a count per bin (an empty bin would make PSI infinite):

``PSI = Σ (w - r) · ln(w / r)``; ``JS = sqrt(½ KL(w‖m) + ½ KL(r‖m))`` with ``m = (w + r) / 2``
and base-2 logarithms, so JS lies in [0, 1]. Usual reading of PSI: < 0.1 stable, 0.1–0.25
moderate shift, > 0.25 large shift.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tabguard._plain import plain
from tabguard.errors import DataError
from tabguard.monitoring._delta import OTHER
from tabguard.monitoring._parse import canonical_label

REFERENCE_FORMAT = "tabguard-drift-reference/1"
REFERENCE_FILE = "reference.json"
#: Numeric columns with at most this many distinct training values get one bin per value.
DISCRETE_MAX = 20


@dataclass(frozen=True)
class ColumnReference:
    """The training distribution of one column.

    Attributes
    ----------
    kind : {'raw', 'feature'}
    column : str
    numeric : bool
    edges : tuple of float
        Numbers: increasing split points; bin ``i`` holds ``edges[i-1] < x <= edges[i]``.
    labels : tuple of str
        Categories: one bin per label (the last is ``other``).
    shares : tuple of float
        Training share of each bin (``len(edges) + 1`` or ``len(labels)`` of them).
    n : int
        Training values behind the shares.
    """

    kind: str
    column: str
    numeric: bool
    edges: tuple[float, ...] = ()
    labels: tuple[str, ...] = ()
    shares: tuple[float, ...] = ()
    n: int = 0


def numeric_reference(kind: str, column: str, values: np.ndarray, bins: int) -> ColumnReference:
    """Bins and shares of a numeric training column (NaN values left out)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return ColumnReference(kind, column, True, (), (), (1.0,), 0)
    distinct = np.unique(x)
    if distinct.size <= DISCRETE_MAX:
        edges = (distinct[:-1] + distinct[1:]) / 2.0
    else:
        edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, x, side="left"), minlength=edges.size + 1)
    shares = counts / counts.sum()
    return ColumnReference(
        kind, column, True, tuple(float(e) for e in edges), (), tuple(map(float, shares)), x.size
    )


def category_reference(
    kind: str, column: str, values: Sequence[Any], categories: Sequence[Any]
) -> ColumnReference:
    """Shares of each declared category (others as ``other``; missing values left out)."""
    labels = [str(canonical_label(c)) for c in categories] + [OTHER]
    index = {label: i for i, label in enumerate(labels)}
    counts = np.zeros(len(labels))
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        counts[index.get(str(canonical_label(plain(v))), len(labels) - 1)] += 1
    total = counts.sum()
    shares = counts / total if total else np.full(len(labels), 1.0 / len(labels))
    return ColumnReference(
        kind, column, False, (), tuple(labels), tuple(map(float, shares)), int(total)
    )


@dataclass
class DriftReference:
    """Training distributions of raw attributes and model features.

    Attributes
    ----------
    columns : dict
        ``(kind, column) -> ColumnReference``.
    source : dict
        Provenance (rows, contract hash, data hash).
    """

    columns: dict[tuple[str, str], ColumnReference] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        contract: Any,
        transform: Any = None,
        *,
        bins: int = 10,
        source: Mapping[str, Any] | None = None,
    ) -> DriftReference:
        """The reference of training rows.

        Parameters
        ----------
        df : DataFrame
            Raw training rows (the contract's feature columns).
        contract : Contract
        transform : FeatureTransform, optional
            The model's transform: model features are computed through it exactly as the
            service logs them (categories decoded, numbers after clipping and bins). Without
            it only raw attributes get a reference.
        bins : int
            Quantile bins per numeric column.
        """
        from tabguard.contract import contract_hash

        out: dict[tuple[str, str], ColumnReference] = {}
        for name, spec in contract.features.items():
            if name not in df.columns:
                continue
            out[("raw", name)] = _reference_of(
                "raw", name, spec, df[name].to_numpy(), bins, contract
            )
        if transform is not None:
            encoded = transform.transform_frame(df)
            for j, name in enumerate(transform.feature_names):
                spec = contract.features[name]
                col = encoded[:, j]
                if spec.type in ("category", "boolean"):
                    values = [
                        None if math.isnan(v) else transform.decode(name, v) for v in col.tolist()
                    ]
                    out[("feature", name)] = _reference_of(
                        "feature", name, spec, np.asarray(values, dtype=object), bins, contract
                    )
                else:
                    out[("feature", name)] = numeric_reference("feature", name, col, bins)
        meta = {"rows": len(df), "contract_sha256": contract_hash(contract), **(source or {})}
        return cls(out, meta)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "format": REFERENCE_FORMAT,
            "source": self.source,
            "columns": [
                {
                    "kind": c.kind,
                    "column": c.column,
                    "numeric": c.numeric,
                    "edges": list(c.edges),
                    "labels": list(c.labels),
                    "shares": list(c.shares),
                    "n": c.n,
                }
                for c in self.columns.values()
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftReference:
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        DataError
            When ``data`` is not a drift reference.
        """
        if not isinstance(data, Mapping) or data.get("format") != REFERENCE_FORMAT:
            raise DataError(f"not a tabguard drift reference (format {REFERENCE_FORMAT!r})")
        out = {}
        try:
            for c in data["columns"]:
                ref = ColumnReference(
                    str(c["kind"]),
                    str(c["column"]),
                    bool(c["numeric"]),
                    tuple(float(e) for e in c["edges"]),
                    tuple(str(v) for v in c["labels"]),
                    tuple(float(s) for s in c["shares"]),
                    int(c["n"]),
                )
                expected = len(ref.edges) + 1 if ref.numeric else len(ref.labels)
                if len(ref.shares) != expected:
                    raise ValueError(f"{ref.kind}.{ref.column}: {len(ref.shares)} shares")
                out[(ref.kind, ref.column)] = ref
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"corrupt drift reference ({exc})") from None
        return cls(out, dict(data.get("source") or {}))

    def to_json(self) -> str:
        """The JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), indent=1) + "\n"

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the reference as JSON (atomically)."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        tmp.write_text(self.to_json(), encoding="utf-8")
        os.replace(tmp, out)
        return out

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DriftReference:
        """Read a reference written by :meth:`save`.

        Raises
        ------
        DataError
            Unreadable file or not a reference.
        """
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot read the drift reference ({exc})") from None
        return cls.from_dict(data)


def _reference_of(
    kind: str, name: str, spec: Any, values: np.ndarray, bins: int, contract: Any
) -> ColumnReference:
    if spec.is_numeric:
        return numeric_reference(kind, name, pd.to_numeric(values, errors="coerce"), bins)
    cats = spec.categories if spec.type == "category" else [True, False]
    return category_reference(kind, name, list(values), cats or [])


def smoothed(shares: np.ndarray, n: int) -> np.ndarray:
    """Shares with half a count added to every bin (no empty bin)."""
    k = shares.size
    return (shares * n + 0.5) / (n + 0.5 * k)


def psi(window: np.ndarray, reference: np.ndarray) -> float:
    """Population stability index of two smoothed distributions."""
    return float(np.sum((window - reference) * np.log(window / reference)))


def js_distance(window: np.ndarray, reference: np.ndarray) -> float:
    """Jensen–Shannon distance (base 2, in [0, 1]) of two smoothed distributions."""
    m = (window + reference) / 2.0
    div = 0.5 * np.sum(window * np.log2(window / m)) + 0.5 * np.sum(
        reference * np.log2(reference / m)
    )
    return float(math.sqrt(max(div, 0.0)))


def window_shares_numeric(ref: ColumnReference, cdf_at_edges: np.ndarray) -> np.ndarray:
    """Bin shares from a window's CDF evaluated at the reference edges."""
    cdf = np.concatenate([[0.0], np.clip(cdf_at_edges, 0.0, 1.0), [1.0]])
    return np.clip(np.diff(cdf), 0.0, 1.0)


def window_shares_category(
    ref: ColumnReference, counts: Mapping[str, int]
) -> tuple[np.ndarray, int]:
    """Bin shares (and the count behind them) from a window's category counts."""
    index = {label: i for i, label in enumerate(ref.labels)}
    out = np.zeros(len(ref.labels))
    for value, n in counts.items():
        if value == "(missing)":
            continue
        out[index.get(value, len(ref.labels) - 1)] += n
    total = int(out.sum())
    return (out / total if total else out), total


def drift_row(
    ref: ColumnReference, shares: np.ndarray, n: int, min_rows: int
) -> tuple[float, float]:
    """``(psi, js)`` of a window against its reference (NaN below ``min_rows`` values)."""
    if n < min_rows or ref.n == 0:
        return math.nan, math.nan
    w = smoothed(np.asarray(shares, dtype=float), n)
    r = smoothed(np.asarray(ref.shares, dtype=float), ref.n)
    return psi(w, r), js_distance(w, r)


def load_reference(config: Any) -> DriftReference | None:
    """The drift reference of a monitor config: ``drift.reference``, else the model
    directory's ``reference.json`` (verified against its manifest); ``None`` without either.

    Raises
    ------
    DataError
        The file is missing or unreadable (the message says how to create one).
    ArtifactIntegrityError
        The model directory does not match its manifest.
    """
    path = config.drift.reference
    if path is None and config.model is not None:
        from tabguard.training._manifest import verify_manifest

        verified = verify_manifest(config.model)
        if REFERENCE_FILE not in verified.files:
            raise DataError(
                f"{config.model}: no {REFERENCE_FILE} (trained before tabguard wrote one); "
                f"create it with `tabguard monitor reference {config.model} --data TRAINING_DATA` "
                "and set drift.reference in monitor.yaml"
            )
        path = Path(config.model) / REFERENCE_FILE
    if path is None:
        return None
    return DriftReference.load(path)
