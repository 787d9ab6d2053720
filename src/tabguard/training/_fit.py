"""Fitting one estimator of each family on the contract transform's matrix."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tabguard.contract import Contract, FeatureTransform
from tabguard.progress import NULL_PROGRESS, Progress


@dataclass
class FitInfo:
    """What happened while fitting (recorded in ``model.json``)."""

    params: dict[str, Any]
    best_iteration: int | None = None
    monotone_applied: bool = False
    notes: list[str] = field(default_factory=list)


def fit_estimator(
    kind: str,
    params: Mapping[str, Any],
    transform: FeatureTransform,
    X: np.ndarray,
    y: np.ndarray,
    X_valid: np.ndarray | None = None,
    y_valid: np.ndarray | None = None,
    *,
    sample_weight: np.ndarray | None = None,
    monotone: Sequence[int] | None = None,
    seed: int = 0,
    n_jobs: int | None = None,
    progress: Progress = NULL_PROGRESS,
    label: str = "main",
) -> tuple[Any, FitInfo]:
    """Fit an estimator of ``kind`` with resolved hyper-parameters.

    Parameters
    ----------
    kind : {"lightgbm", "random_forest", "logistic"}
    params : mapping
        Resolved preset parameters (see :mod:`tabguard.training._presets`).
    transform : FeatureTransform
        The transform that produced ``X`` (feature names, categorical columns).
    X, y : arrays
        Training matrix and 0/1 labels.
    X_valid, y_valid : arrays, optional
        Early-stopping split (LightGBM only).
    sample_weight : array, optional
        Row weights of ``X`` (default: every row counts once).
    monotone : sequence of int, optional
        +1/-1/0 per feature; ``None`` or all zeros for no constraint.
    """
    mono = list(monotone) if monotone is not None and any(monotone) else None
    if kind == "lightgbm":
        return _fit_lightgbm(
            params, transform, X, y, X_valid, y_valid, mono, seed, n_jobs, progress, label,
            sample_weight,
        )  # fmt: skip
    if kind == "random_forest":
        return _fit_forest(params, X, y, mono, seed, n_jobs, progress, label, sample_weight)
    if kind == "logistic":
        return _fit_logistic(params, transform, X, y, mono, seed, progress, label, sample_weight)
    raise ValueError(f"unknown model kind {kind!r}")


def _fit_lightgbm(
    params: Mapping[str, Any],
    transform: FeatureTransform,
    X: np.ndarray,
    y: np.ndarray,
    X_valid: np.ndarray | None,
    y_valid: np.ndarray | None,
    mono: list[int] | None,
    seed: int,
    n_jobs: int | None,
    progress: Progress,
    label: str,
    sample_weight: np.ndarray | None = None,
) -> tuple[Any, FitInfo]:
    import lightgbm as lgb

    p = dict(params)
    rounds = int(p.pop("num_boost_round"))
    stop = int(p.pop("early_stopping_rounds"))
    lgb_params: dict[str, Any] = {
        "objective": "binary",
        "verbose": -1,
        "seed": seed,
        # Same data + seed + thread count → the same model (T1 reproducibility).
        "deterministic": True,
        "force_col_wise": True,
        **p,
    }
    if n_jobs is not None:
        lgb_params["num_threads"] = n_jobs
    info = FitInfo(params={"num_boost_round": rounds, "early_stopping_rounds": stop, **lgb_params})
    if mono is not None:
        lgb_params["monotone_constraints"] = mono
        lgb_params["monotone_constraints_method"] = "intermediate"
        info.monotone_applied = True
        info.params["monotone_constraints"] = mono
    names = transform.feature_names
    cats = list(transform.categorical_features)
    ds = lgb.Dataset(
        X, y, weight=sample_weight, feature_name=names, categorical_feature=cats or "auto"
    )
    valid_sets: list[Any] = []
    callbacks: list[Any] = []
    if X_valid is not None and y_valid is not None and len(X_valid) and stop > 0:
        valid_sets = [lgb.Dataset(X_valid, y_valid, reference=ds)]
        callbacks.append(lgb.early_stopping(stop, first_metric_only=True, verbose=False))
    with progress.stage(f"training {label} (lightgbm)", total=rounds) as st:

        def _tick(env: Any) -> None:
            st.advance(1)

        callbacks.append(_tick)
        booster = lgb.train(
            lgb_params, ds, num_boost_round=rounds, valid_sets=valid_sets, callbacks=callbacks
        )
    best = int(booster.best_iteration or booster.current_iteration())
    info.best_iteration = best
    # Re-read the text model: the object scored in evaluation is exactly what gets saved
    # (best iteration only), and the training Dataset is released.
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=best)), info


def _fit_forest(
    params: Mapping[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    mono: list[int] | None,
    seed: int,
    n_jobs: int | None,
    progress: Progress,
    label: str,
    sample_weight: np.ndarray | None = None,
) -> tuple[Any, FitInfo]:
    from sklearn.ensemble import RandomForestClassifier

    info = FitInfo(params=dict(params))
    kw: dict[str, Any] = dict(params)
    if mono is not None:
        if np.isnan(X).any():
            info.notes.append(
                "monotone constraints not applied: scikit-learn forests refuse them with "
                "missing values; give the nullable features a neutral value"
            )
        else:
            kw["monotonic_cst"] = mono
            info.monotone_applied = True
            info.params["monotonic_cst"] = mono
    est = RandomForestClassifier(**kw, random_state=seed, n_jobs=n_jobs)
    with progress.stage(f"training {label} (random forest)", total=None):
        est.fit(X, y, sample_weight=sample_weight)
    est.n_jobs = None  # the saved model must not carry the training machine's thread count
    return est, info


def _fit_logistic(
    params: Mapping[str, Any],
    transform: FeatureTransform,
    X: np.ndarray,
    y: np.ndarray,
    mono: list[int] | None,
    seed: int,
    progress: Progress,
    label: str,
    sample_weight: np.ndarray | None = None,
) -> tuple[Any, FitInfo]:
    from sklearn.compose import ColumnTransformer
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    names = transform.feature_names
    cat_idx = [names.index(n) for n in transform.categorical_features]
    num_idx = [i for i in range(len(names)) if i not in set(cat_idx)]
    parts: list[tuple[str, Any, list[int]]] = []
    if cat_idx:
        # A category index is not a quantity: a linear model needs one column per category.
        parts.append(("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), cat_idx))
    if num_idx:
        num = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
        parts.append(("num", num, num_idx))
    p = dict(params)
    l1 = float(p.get("l1_ratio", 0.0))
    solver = "saga" if l1 > 0 else "lbfgs"
    clf = LogisticRegression(
        C=float(p["C"]), l1_ratio=l1, solver=solver, max_iter=int(p["max_iter"]), random_state=seed
    )
    est = Pipeline([("features", ColumnTransformer(parts)), ("clf", clf)])
    info = FitInfo(params={**p, "solver": solver})
    if mono is not None:
        info.notes.append(
            "monotone constraints are not enforced by the logistic model; the signs of its "
            "coefficients are reported in model.json instead"
        )
    with (
        progress.stage(f"training {label} (logistic)", total=None),
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always", ConvergenceWarning)
        est.fit(X, y, clf__sample_weight=sample_weight)
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            info.notes.append(f"logistic regression did not fully converge: {w.message}")
    if mono is not None and num_idx:
        coefs = est.named_steps["clf"].coef_.reshape(-1)[-len(num_idx) :]
        signs = {names[i]: float(c) for i, c in zip(num_idx, coefs, strict=True) if mono[i]}
        wrong = [n for n, c in signs.items() if c * mono[names.index(n)] < 0]
        info.params["monotone_coefficients"] = signs
        if wrong:
            info.notes.append(f"coefficients against the contract's monotone direction: {wrong}")
    return est, info


def add_noise(
    df: pd.DataFrame,
    contract: Contract,
    features: Sequence[str],
    scale: float,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Data-centric regularisation: Gaussian noise on numeric features (training rows only).

    The noise of feature ``f`` has standard deviation ``scale * std(f)`` (over these rows);
    integers are rounded and values stay inside the contract's ``[min, max]``, so the noisy
    rows are still valid. Serving never adds noise.

    Returns
    -------
    DataFrame
        A copy with noisy columns.
    dict
        The standard deviation of the noise added per feature.
    """
    out = df.copy()
    sigmas: dict[str, float] = {}
    for name in features:
        spec = contract.features[name]
        if not spec.is_numeric or name not in out.columns:
            continue
        x = pd.to_numeric(out[name], errors="coerce").to_numpy(dtype=float, copy=True)
        present = ~np.isnan(x)
        sigma = float(np.nanstd(x)) * scale if present.any() else 0.0
        if sigma <= 0:
            continue
        x[present] += rng.normal(0.0, sigma, size=int(present.sum()))
        lo = -np.inf if spec.min is None else spec.min
        hi = np.inf if spec.max is None else spec.max
        x = np.clip(x, lo, hi)
        if spec.type == "integer":
            x = np.round(x)
        out[name] = x
        sigmas[name] = sigma
    return out, sigmas
