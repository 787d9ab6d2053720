"""What the training data looked like, per feature: the reference of the probing detector.

A query far from the training distribution is the mark of extraction and membership probing
(seed 000: "monitor data used to query the API and check similarity with training data").
:class:`ReferenceProfile` keeps, for every model feature of the raw attributes, a grid of
quantiles and its tail bounds (numbers) or its rare codes (categories, booleans). A query's
*out count* is how many of its features fall outside the bounds. The number of out features
that marks a query as out of distribution is calibrated on the reference rows themselves:
the smallest count that at most ``rate`` (default 0.1%) of the reference rows reach. So the
detector adapts to the data and the contract; nothing in it names a feature or a value.

The model directory does not ship training rows, so the profile is computed from data given
to ``tabguard serve --reference DATA`` and stored under ``$TABGUARD_HOME/reference/`` keyed by
the model's manifest digest; later starts (and every worker) read it from there.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tabguard.contract import Contract, FeatureTransform, TransformOptions, contract_hash
from tabguard.errors import DataError

PROFILE_FORMAT = "tabguard-reference-profile/1"
#: Quantile levels kept per numeric feature (0, 1, ..., 100 percent).
LEVELS = np.linspace(0.0, 1.0, 101)


def raw_encoder(contract: Contract) -> FeatureTransform:
    """The encoding of raw attributes the detector compares: no clipping, no bins.

    Categories become their index, booleans 0/1, missing nullable values their neutral
    value; protected attributes are left out (they never reach the model).
    """
    return FeatureTransform(contract, TransformOptions(clip=False))


class RawEncoder:
    """:func:`raw_encoder` for one validated JSON record, in a few microseconds.

    The probing detector encodes every request; the general transform (clip, bins, options)
    costs several times more than this direct loop. Both give identical vectors (tested),
    so profiles computed with ``raw_encoder(...).transform_frame`` apply.
    """

    def __init__(self, contract: Contract) -> None:
        from tabguard.contract._validate import _canon

        self._canon = _canon
        transform = raw_encoder(contract)
        self.feature_names = list(transform.feature_names)
        self._plans: list[tuple[str, int, dict[Any, float], float]] = []
        for name in self.feature_names:
            spec = contract.features[name]
            kind = 0 if spec.is_numeric else (1 if spec.type == "category" else 2)
            index = {_canon(c): float(i) for i, c in enumerate(spec.categories or [])}
            neutral = math.nan
            if spec.neutral is not None:
                if kind == 1:
                    neutral = index.get(_canon(spec.neutral), math.nan)
                else:
                    neutral = float(bool(spec.neutral)) if kind == 2 else float(spec.neutral)
            self._plans.append((name, kind, index, neutral))

    def encode(self, record: Mapping[str, Any]) -> np.ndarray:
        """The encoded vector of a validated record (NaN for a missing value without neutral)."""
        out = np.empty(len(self._plans))
        canon = self._canon
        for j, (name, kind, index, neutral) in enumerate(self._plans):
            v = record.get(name)
            if v is None:
                out[j] = neutral
            elif kind == 0:
                out[j] = float(v)
            elif kind == 1:
                out[j] = index.get(canon(v), math.nan)
            else:
                out[j] = float(bool(v))
        return out


@dataclass
class ReferenceProfile:
    """Per-feature quantiles and tails of the reference (training) data.

    Attributes
    ----------
    features : list of str
        Model features in encoder order.
    numeric : list of bool
        Whether each feature is numeric (else category or boolean codes).
    quantiles : ndarray of shape (n_features, 101)
        Values at :data:`LEVELS` (NaN rows for non-numeric features).
    low, high : ndarray of shape (n_features,)
        Tail bounds (quantiles ``tail`` and ``1 - tail``) of numeric features.
    common : list of list of float
        Codes seen in more than ``tail`` of the rows, per non-numeric feature.
    min_out : int
        Out count from which a query is out of distribution (calibrated).
    tail, rate : float
        The tail share and the target false-positive rate used in calibration.
    n_rows : int
        Reference rows used.
    source : dict
        Provenance: data file and SHA-256, contract hash.
    """

    features: list[str]
    numeric: list[bool]
    quantiles: np.ndarray
    low: np.ndarray
    high: np.ndarray
    common: list[list[float]]
    min_out: int
    tail: float = 0.005
    rate: float = 0.001
    n_rows: int = 0
    source: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._common_sets = [set(c) for c in self.common]
        self._num = np.asarray(self.numeric, dtype=bool)
        self._cat_idx = [j for j, is_num in enumerate(self.numeric) if not is_num]

    # ---- building ------------------------------------------------------------------------

    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        contract: Contract,
        *,
        tail: float = 0.005,
        rate: float = 0.001,
        source: Mapping[str, Any] | None = None,
    ) -> ReferenceProfile:
        """Compute the profile of reference rows (rows breaking the contract are left out).

        Parameters
        ----------
        df : DataFrame
            Raw rows with the contract's feature columns (training data).
        contract : Contract
        tail : float, default 0.005
            Share of each tail counted as "outside" (0.5% below, 0.5% above).
        rate : float, default 0.001
            Target share of reference rows flagged out of distribution (calibrates
            ``min_out``).
        source : mapping, optional
            Provenance kept in the profile.

        Raises
        ------
        DataError
            When fewer than 100 valid rows remain.
        """
        from tabguard.contract import validate_frame

        if not 0 < tail < 0.5 or not 0 < rate < 1:
            raise ValueError(f"tail must be in (0, 0.5) and rate in (0, 1); got {tail}, {rate}")
        check = validate_frame(df, contract)
        clean = df.loc[~check.invalid_mask()]
        if len(clean) < 100:
            raise DataError(
                f"reference data: {len(clean)} rows pass the contract (of {len(df)}); "
                "the profile needs at least 100 (pass the training data with --reference)"
            )
        encoder = raw_encoder(contract)
        X = encoder.transform_frame(clean)
        numeric = [contract.features[n].is_numeric for n in encoder.feature_names]
        d = len(numeric)
        quantiles = np.full((d, len(LEVELS)), np.nan)
        low = np.full(d, -np.inf)
        high = np.full(d, np.inf)
        common: list[list[float]] = []
        for j, is_num in enumerate(numeric):
            col = X[:, j]
            col = col[~np.isnan(col)]
            if is_num:
                if len(col):
                    quantiles[j] = np.quantile(col, LEVELS)
                    low[j], high[j] = np.quantile(col, [tail, 1.0 - tail])
                common.append([])
            else:
                values, counts = np.unique(col, return_counts=True)
                share = counts / max(len(col), 1)
                common.append([float(v) for v, s in zip(values, share, strict=True) if s > tail])
        profile = cls(
            features=list(encoder.feature_names),
            numeric=numeric,
            quantiles=quantiles,
            low=low,
            high=high,
            common=common,
            min_out=1,
            tail=tail,
            rate=rate,
            n_rows=len(clean),
            source={**(source or {}), "contract_sha256": contract_hash(contract)},
        )
        counts = profile.out_counts(X)
        profile.min_out = next(
            (k for k in range(1, d + 1) if float(np.mean(counts >= k)) <= rate), d + 1
        )
        return profile

    # ---- use -------------------------------------------------------------------------------

    def out_mask(self, x: np.ndarray) -> np.ndarray:
        """Which features of the encoded query ``x`` lie outside the reference."""
        with np.errstate(invalid="ignore"):
            out = self._num & ((x < self.low) | (x > self.high))
        for j in self._cat_idx:
            v = float(x[j])
            out[j] = not math.isnan(v) and v not in self._common_sets[j]
        return out

    def out_counts(self, X: np.ndarray) -> np.ndarray:
        """Out counts of every row of an encoded matrix."""
        with np.errstate(invalid="ignore"):
            out = self._num & ((self.low > X) | (self.high < X))
        for j in self._cat_idx:
            col = X[:, j]
            out[:, j] = ~np.isnan(col) & ~np.isin(col, np.asarray(self.common[j], dtype=float))
        return np.asarray(out.sum(axis=1), dtype=np.int64)

    def is_out_of_distribution(self, x: np.ndarray) -> bool:
        """Whether an encoded query is out of distribution (out count >= ``min_out``)."""
        return int(self.out_mask(x).sum()) >= self.min_out

    def cdf(self, j: int, value: float) -> float:
        """Share of reference rows at or below ``value`` for numeric feature ``j`` (about)."""
        q = self.quantiles[j]
        if math.isnan(value) or np.isnan(q).all():
            return 0.5
        if value < q[0]:
            return 0.0
        if value >= q[-1]:
            return 1.0
        # Ties (discrete features) span several levels: take the middle of the span.
        lo = int(np.searchsorted(q, value, side="left"))
        hi = int(np.searchsorted(q, value, side="right"))
        if hi > lo:
            return float((LEVELS[lo] + LEVELS[hi - 1]) / 2)
        return float(np.interp(value, q, LEVELS))

    # ---- storage ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (infinities as null)."""

        def clean(a: np.ndarray) -> list[Any]:
            return [None if not np.isfinite(v) else float(v) for v in np.ravel(a)]

        return {
            "format": PROFILE_FORMAT,
            "features": self.features,
            "numeric": self.numeric,
            "quantiles": [clean(row) for row in self.quantiles],
            "low": clean(self.low),
            "high": clean(self.high),
            "common": self.common,
            "min_out": self.min_out,
            "tail": self.tail,
            "rate": self.rate,
            "n_rows": self.n_rows,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        DataError
            When ``data`` is not a reference profile.
        """
        if data.get("format") != PROFILE_FORMAT:
            raise DataError(f"not a tabguard reference profile (format {PROFILE_FORMAT!r})")

        def arr(values: list[Any], fill: float) -> np.ndarray:
            return np.asarray([fill if v is None else v for v in values], dtype=float)

        return cls(
            features=list(data["features"]),
            numeric=[bool(v) for v in data["numeric"]],
            quantiles=np.asarray(
                [arr(row, np.nan) for row in data["quantiles"]], dtype=float
            ).reshape(len(data["features"]), -1),
            low=arr(data["low"], -np.inf),
            high=arr(data["high"], np.inf),
            common=[[float(v) for v in c] for c in data["common"]],
            min_out=int(data["min_out"]),
            tail=float(data["tail"]),
            rate=float(data["rate"]),
            n_rows=int(data["n_rows"]),
            source=dict(data.get("source") or {}),
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the profile as JSON (atomically)."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, out)
        return out

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ReferenceProfile:
        """Read a profile written by :meth:`save`."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"{path}: cannot read the reference profile ({exc})") from None
        return cls.from_dict(data)

    def matches(self, contract: Contract) -> bool:
        """Whether the profile was computed under ``contract``."""
        return bool(self.source.get("contract_sha256") == contract_hash(contract))


def profile_path(home: str | os.PathLike[str], model_digest: str) -> Path:
    """Where the profile of a model directory is kept under ``TABGUARD_HOME``."""
    return Path(home) / "reference" / f"{model_digest[:16]}.json"
