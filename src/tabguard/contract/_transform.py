"""Contract-driven feature transform: the one code path shared by training and serving.

Raw attributes (as validated by the contract) become the model's feature matrix through the
same ordered steps in :meth:`FeatureTransform.transform_frame` (training, batch audits) and
:meth:`FeatureTransform.transform_record` (one request):

1. missing values of nullable features take the neutral value (or stay NaN);
2. neutralised features (training option or runtime flag) take their neutral value;
3. numeric values are clipped to the feature's ``clip`` range (else ``[min, max]``);
4. coarse-binned features are replaced by the left edge of their bin;
5. categories become their index in the contract's ``categories``; booleans 0/1;
6. protected, id, label and dropped columns never reach the model.

A property test checks both paths give identical matrices (train/serve parity).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tabguard.contract._spec import Contract, FeatureSpec
from tabguard.contract._validate import (
    _canon,
    _canon_lenient,
    _coerce_bool,
    _coerce_numeric,
    map_distinct,
)
from tabguard.errors import ContractError


@dataclass(frozen=True)
class TransformOptions:
    """Options of the contract transform (saved with every model).

    Attributes
    ----------
    clip : bool
        Clip numeric values to the ``clip`` range (else ``[min, max]``) of the contract.
    bins : tuple of str
        Features replaced by their coarse bin (they need ``bins`` in the contract).
    neutralize : tuple of str
        Features always replaced by their neutral value.
    drop : tuple of str
        Model features removed from the input (e.g. gameable features for a fallback model).
    """

    clip: bool = True
    bins: tuple[str, ...] = ()
    neutralize: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "clip": self.clip,
            "bins": list(self.bins),
            "neutralize": list(self.neutralize),
            "drop": list(self.drop),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TransformOptions:
        """Inverse of :meth:`to_dict`."""
        return cls(
            clip=bool(d.get("clip", True)),
            bins=tuple(d.get("bins", ())),
            neutralize=tuple(d.get("neutralize", ())),
            drop=tuple(d.get("drop", ())),
        )


@dataclass
class _Plan:
    name: str
    spec: FeatureSpec
    lo: float
    hi: float
    edges: np.ndarray | None
    cat_index: dict[Any, int] = field(default_factory=dict)
    neutral_encoded: float = math.nan


class FeatureTransform:
    """Turn validated raw attributes into the model's feature matrix.

    Parameters
    ----------
    contract : Contract
    options : TransformOptions, optional

    Attributes
    ----------
    feature_names : list of str
        Column order of the produced matrix.
    categorical_features : list of str
        Columns that hold category indices (for models with native categorical support).
    """

    def __init__(self, contract: Contract, options: TransformOptions | None = None) -> None:
        self.contract = contract
        self.options = options or TransformOptions()
        o = self.options
        for key, names in (("bins", o.bins), ("neutralize", o.neutralize), ("drop", o.drop)):
            for n in names:
                if n not in contract.features:
                    raise ContractError(
                        f"transform.{key}",
                        "must name features of the contract",
                        n,
                        f"choose among {list(contract.features)[:10]}",
                    )
        for n in o.bins:
            if not contract.features[n].bins:
                raise ContractError(
                    f"features.{n}.bins",
                    "coarse binning needs bin edges",
                    None,
                    f"add 'bins: [...]' to {n} in the contract",
                )
        for n in o.neutralize:
            if contract.features[n].neutral is None:
                raise ContractError(
                    f"features.{n}.neutral",
                    "neutralising needs a neutral value",
                    None,
                    f"add 'neutral: ...' to {n} in the contract",
                )
        self.feature_names = [n for n in contract.model_features() if n not in set(o.drop)]
        if not self.feature_names:
            raise ContractError(
                "transform.drop", "must leave at least one model feature", list(o.drop)
            )
        self.categorical_features = [
            n for n in self.feature_names if contract.features[n].type == "category"
        ]
        self._plans = [self._plan(n) for n in self.feature_names]
        self._neutral_always = set(o.neutralize)

    def _plan(self, name: str) -> _Plan:
        spec = self.contract.features[name]
        lo, hi = -math.inf, math.inf
        if spec.is_numeric and self.options.clip:
            if spec.clip is not None:
                lo, hi = spec.clip
            else:
                lo = -math.inf if spec.min is None else spec.min
                hi = math.inf if spec.max is None else spec.max
        edges = np.asarray(spec.bins, dtype=float) if name in self.options.bins else None
        plan = _Plan(name, spec, lo, hi, edges)
        if spec.type == "category":
            plan.cat_index = {_canon(c): i for i, c in enumerate(spec.categories or [])}
        if spec.neutral is not None:
            plan.neutral_encoded = self._encode_scalar(plan, spec.neutral)
        return plan

    # -- scalar path -----------------------------------------------------------------------
    def _encode_scalar(self, p: _Plan, v: Any) -> float:
        t = p.spec.type
        if v is None:
            return math.nan
        if t == "category":
            return float(p.cat_index.get(_canon_lenient(v), math.nan))
        if t == "boolean":
            if isinstance(v, str):
                return 1.0 if v.strip().lower() in ("true", "1", "yes", "t", "y") else 0.0
            return float(bool(v))
        x = float(v)
        if math.isnan(x):
            return x
        x = min(max(x, p.lo), p.hi)
        if p.edges is not None:
            i = int(np.searchsorted(p.edges, x, side="right")) - 1
            x = float(p.edges[min(max(i, 0), len(p.edges) - 2)])
        return x

    def transform_record(
        self, record: Mapping[str, Any], neutralize: Iterable[str] = ()
    ) -> tuple[np.ndarray, list[str]]:
        """Transform one validated record.

        Parameters
        ----------
        record : mapping
            Raw attributes (validated against the contract beforehand).
        neutralize : iterable of str
            Extra features to neutralise (runtime flag), on top of the options.

        Returns
        -------
        row : ndarray of shape (1, n_features)
        actions : list of str
            Guard actions taken, e.g. ``clip:AGE``, ``bin:AGE``, ``neutralize:PAY_AMT1``.
        """
        extra = set(neutralize)
        out = np.empty(len(self._plans), dtype=float)
        actions: list[str] = []
        for j, p in enumerate(self._plans):
            v = record.get(p.name)
            if p.name in self._neutral_always or (p.name in extra and p.spec.neutral is not None):
                out[j] = p.neutral_encoded
                actions.append(f"neutralize:{p.name}")
                continue
            if v is None:
                out[j] = p.neutral_encoded
                actions.append(f"impute:{p.name}")
                continue
            if p.spec.is_numeric and not isinstance(v, bool):
                x = float(v)
                if x < p.lo or x > p.hi:
                    actions.append(f"clip:{p.name}")
                if p.edges is not None:
                    actions.append(f"bin:{p.name}")
            out[j] = self._encode_scalar(p, v)
        return out.reshape(1, -1), actions

    # -- vectorised path ---------------------------------------------------------------------
    def transform_frame(self, df: pd.DataFrame, neutralize: Iterable[str] = ()) -> np.ndarray:
        """Transform a frame of validated rows into the model matrix (same result as per row)."""
        extra = set(neutralize)
        out = np.empty((len(df), len(self._plans)), dtype=float)
        for j, p in enumerate(self._plans):
            if p.name in self._neutral_always or (p.name in extra and p.spec.neutral is not None):
                out[:, j] = p.neutral_encoded
                continue
            col = df[p.name]
            t = p.spec.type
            if t == "category":
                x = map_distinct(
                    col,
                    lambda v, idx=p.cat_index: idx.get(_canon_lenient(v), math.nan),
                    missing=math.nan,
                    dtype=float,
                )
            elif t == "boolean":
                x = _coerce_bool(col).to_numpy(dtype=float, copy=True)
            else:
                x = _coerce_numeric(col).to_numpy(dtype=float).copy()
                nan = np.isnan(x)
                np.clip(x, p.lo, p.hi, out=x)
                if p.edges is not None:
                    i = np.searchsorted(p.edges, x, side="right") - 1
                    i = np.clip(i, 0, len(p.edges) - 2)
                    x = p.edges[i]
                x[nan] = np.nan
            missing = np.isnan(x) & col.isna().to_numpy()
            x[missing] = p.neutral_encoded
            out[:, j] = x
        return out

    def frame(self, df: pd.DataFrame, neutralize: Iterable[str] = ()) -> pd.DataFrame:
        """Like :meth:`transform_frame` but returns a DataFrame with ``feature_names``."""
        return pd.DataFrame(
            self.transform_frame(df, neutralize), columns=self.feature_names, index=df.index
        )

    def decode(self, name: str, encoded: float) -> Any:
        """Map an encoded value back to the raw value (category index → category)."""
        spec = self.contract.features[name]
        if spec.type == "category" and not math.isnan(encoded):
            return (spec.categories or [])[int(encoded)]
        if spec.type == "boolean":
            return bool(encoded)
        return encoded
