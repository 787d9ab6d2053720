"""``train()``: data audit → contract transform → main and fallback models → evaluation →
model directory → MLflow run and registered version (requirements T1-T3)."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tabguard.contract import (
    Contract,
    FeatureTransform,
    TransformOptions,
    check_columns,
    contract_hash,
    validate_frame,
)
from tabguard.errors import DataError
from tabguard.io import check_labels, file_sha256, frame_sha256
from tabguard.progress import NULL_PROGRESS, Progress
from tabguard.training._bundle import ModelBundle, check_model_target, load_model, save_model
from tabguard.training._errors import DataAuditRefusedError, TrainingConfigError
from tabguard.training._fit import FitInfo, add_noise, fit_estimator
from tabguard.training._jsonable import jsonable
from tabguard.training._presets import (
    PRESET_NAMES,
    PRESET_OPTIONS,
    PRESETS,
    bin_features,
    monotone_vector,
    preset_params,
)
from tabguard.training._provenance import code_version
from tabguard.training._scorer import MODEL_KINDS, Scorer
from tabguard.training._signing import SigningKey

if TYPE_CHECKING:
    from tabguard.training._tracking import Tracker

_MIN_ROWS_PER_SPLIT = 20


@dataclass(frozen=True)
class TrainConfig:
    """Options of :func:`train` (the ``tabguard train`` flags).

    Attributes
    ----------
    model : {"lightgbm", "random_forest", "logistic"}
    preset : {"default", "robust"}
        Regularisation preset (see ``tabguard.training.PRESETS``). ``robust`` also turns on
        monotone constraints and coarse bins of gameable features unless set explicitly.
    bins : str or sequence of str, optional
        Coarse-binned features: ``None`` (the preset decides), ``"all"``, ``"none"``, or
        feature names (they need ``bins`` in the contract).
    noise : float
        Gaussian noise on gameable numeric features of the training rows only, with standard
        deviation ``noise * std(feature)``. Never applied in serving.
    drop_gameable : bool
        Train the main model without gameable features.
    monotone : bool, optional
        Apply the contract's ``monotone`` keys as constraints (``None``: the preset decides).
    fallback : bool
        Also train the fallback model without gameable features.
    allow_findings : bool
        Train even when the data audit has critical findings (on its clean rows).
    audit : bool
        Run the data audit first (programmatic variants on audited data may skip it; rows
        that break the contract are then still dropped).
    audit_checks : sequence of str, optional
        Data-audit checks to run (default: every registered check).
    seed : int
        Seeds the splits, the noise, the models and the bootstrap.
    test_size, calibration_size, valid_size : float
        Shares of the rows held out for evaluation, conformal calibration and early stopping
        (LightGBM only; other models train on it).
    alpha : float
        Conformal miscoverage (sets target ``1 - alpha`` coverage).
    n_bootstrap : int
        Bootstrap resamples for the confidence intervals.
    params : mapping
        Overrides of the preset's hyper-parameters.
    track : bool
        Log the run in MLflow and register the model version.
    tracking_uri : str, optional
        MLflow store (default ``MLFLOW_TRACKING_URI`` or ``sqlite:///.tabguard/mlflow.db``).
    registry_name, experiment : str, optional
        Registered model and experiment names (default: the contract name, ``tabguard-<name>``).
    threshold : float, optional
        Decision threshold (default: the contract's ``decision.threshold``).
    n_jobs : int, optional
        Threads for model fitting. Default 1: on shared machines LightGBM's OpenMP threads
        spin against other work (measured 0.8 s with 1 thread vs 18 s with 2 on a busy 2-core
        host, bundled data), and one thread makes runs reproducible across hosts. ``None``
        uses the library default.
    report : bool
        Write ``report.html`` into the model directory.
    weight_column : str, optional
        A column of non-negative row weights used when fitting (never in evaluation); it is
        not a feature. ``tabguard retrain`` weights exploit attempts with it.
    """

    model: str = "lightgbm"
    preset: str = "default"
    bins: str | Sequence[str] | None = None
    noise: float = 0.0
    drop_gameable: bool = False
    monotone: bool | None = None
    fallback: bool = True
    allow_findings: bool = False
    audit: bool = True
    audit_checks: Sequence[str] | None = None
    seed: int = 0
    test_size: float = 0.2
    calibration_size: float = 0.1
    valid_size: float = 0.1
    alpha: float = 0.1
    n_bootstrap: int = 200
    params: Mapping[str, Any] = field(default_factory=dict)
    track: bool = True
    tracking_uri: str | None = None
    registry_name: str | None = None
    experiment: str | None = None
    threshold: float | None = None
    n_jobs: int | None = 1
    report: bool = True
    weight_column: str | None = None

    def validate(self) -> None:
        """Raise :class:`TrainingConfigError` on an invalid option."""
        if self.model not in MODEL_KINDS:
            raise TrainingConfigError("model", f"must be one of {list(MODEL_KINDS)}", self.model)
        if self.preset not in PRESET_NAMES:
            raise TrainingConfigError("preset", f"must be one of {list(PRESET_NAMES)}", self.preset)
        if not (math.isfinite(self.noise) and 0.0 <= self.noise <= 5.0):
            raise TrainingConfigError(
                "noise", "must be a number in [0, 5] (a multiple of each feature's std)", self.noise
            )
        for name in ("test_size", "calibration_size"):
            v = getattr(self, name)
            if not 0.0 < v < 0.5:
                raise TrainingConfigError(name, "must lie in (0, 0.5)", v)
        if not 0.0 <= self.valid_size < 0.5:
            raise TrainingConfigError("valid_size", "must lie in [0, 0.5)", self.valid_size)
        if self.test_size + self.calibration_size + self.valid_size >= 0.8:
            raise TrainingConfigError(
                "test_size + calibration_size + valid_size",
                "must leave at least 20% of rows for training",
                self.test_size + self.calibration_size + self.valid_size,
            )
        if not 0.0 < self.alpha < 0.5:
            raise TrainingConfigError("alpha", "must lie in (0, 0.5)", self.alpha)
        if self.n_bootstrap < 0:
            raise TrainingConfigError("n_bootstrap", "must be >= 0", self.n_bootstrap)
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise TrainingConfigError("threshold", "must lie in [0, 1]", self.threshold)
        if self.weight_column is not None and not self.weight_column.strip():
            raise TrainingConfigError("weight_column", "must name a column", self.weight_column)

    def to_params(self) -> dict[str, Any]:
        """The options as flat strings/numbers (for MLflow and ``model.json``)."""
        d = asdict(self)
        d.pop("tracking_uri")
        d["params"] = dict(self.params)
        if not isinstance(self.bins, str | None):
            d["bins"] = ",".join(self.bins)
        if self.audit_checks is not None:
            d["audit_checks"] = ",".join(self.audit_checks)
        return d


@dataclass
class TrainResult:
    """The outcome of :func:`train`.

    Attributes
    ----------
    model_dir : Path
        The written model directory (temporary when ``out`` was not given: it is removed when
        the result is garbage-collected; the loaded :attr:`bundle` stays usable).
    bundle : ModelBundle
        The model directory, loaded back through :func:`load_model` (hash-verified).
    evaluation : dict
        Content of ``evaluation.json``.
    metrics : dict
        Flat metrics (``test_auc``, ``test_auc_ci_low``, ``conformal_coverage``,
        ``fallback_test_auc``...), as logged to MLflow.
    params : dict
        Flat options and resolved hyper-parameters, as logged to MLflow.
    version : str
        ``<registry name>/<version>``, or ``<name>/untracked-<hash>`` without tracking.
    run_id : str or None
        MLflow run id.
    """

    model_dir: Path
    bundle: ModelBundle
    evaluation: dict[str, Any]
    metrics: dict[str, float]
    params: dict[str, Any]
    version: str
    run_id: str | None
    tracking_uri: str | None
    audit_summary: dict[str, Any]
    seconds: float
    timings: dict[str, float]
    notes: list[str]
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def main(self) -> Scorer:
        """The main scorer."""
        return self.bundle.main

    @property
    def fallback(self) -> Scorer | None:
        """The fallback scorer (None with ``fallback=False``)."""
        return self.bundle.fallback


class _Timer:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    def __call__(self, name: str) -> _Lap:
        return _Lap(self, name)


class _Lap:
    def __init__(self, timer: _Timer, name: str) -> None:
        self.timer, self.name = timer, name

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.timer.timings[self.name] = round(time.perf_counter() - self.t0, 3)


def _audit(
    data: pd.DataFrame, contract: Contract, cfg: TrainConfig, progress: Progress
) -> tuple[pd.DataFrame, dict[str, Any], list[str]]:
    notes: list[str] = []
    if not cfg.audit:
        check_columns(data, contract)
        df = data.reset_index(drop=True)
        check_labels(df, contract)
        invalid = validate_frame(df, contract).invalid_mask()
        if invalid.any():
            notes.append(f"{int(invalid.sum())} row(s) breaking the contract were dropped")
        return df.loc[~invalid].reset_index(drop=True), {"ran": False}, notes
    from tabguard.data_audit import audit_data

    result = audit_data(
        data,
        contract,
        checks=list(cfg.audit_checks) if cfg.audit_checks is not None else None,
        random_state=cfg.seed,
        progress=progress,
    )
    report = result.report
    critical = [f for f in report.findings if f.severity == "critical"]
    summary = {
        "ran": True,
        "severity_counts": report.counts(),
        "rows": report.rows,
        "clean_rows": len(result.clean),
        "quarantined_rows": len(result.quarantine),
        "critical": [f"{f.check}: {f.message}" for f in critical],
        "overridden": bool(critical) and cfg.allow_findings,
    }
    if critical and not cfg.allow_findings:
        listed = "; ".join(f"[{f.check}] {f.message.rstrip('.')}" for f in critical[:3])
        more = f" (+{len(critical) - 3} more)" if len(critical) > 3 else ""
        raise DataAuditRefusedError(
            f"training refused: the data audit found {len(critical)} critical finding(s): "
            f"{listed}{more}. Inspect them with `tabguard audit data DATA --contract C --out DIR`"
            "; fix the data, or pass --allow-findings to train on the audit's clean rows",
            critical,
        )
    if critical:
        notes.append(
            f"trained despite {len(critical)} critical data finding(s) (--allow-findings), on "
            f"{len(result.clean)} clean of {report.rows} rows"
        )
    return result.clean.reset_index(drop=True), summary, notes


def _split(y: np.ndarray, cfg: TrainConfig, early_stopping: bool) -> dict[str, np.ndarray]:
    from sklearn.model_selection import train_test_split

    n = len(y)
    idx = np.arange(n)
    counts = np.bincount(y, minlength=2)
    min_class = int(counts.min())
    need = math.ceil(_MIN_ROWS_PER_SPLIT / min(cfg.test_size, cfg.calibration_size))
    if n < need or min_class < 8:
        raise DataError(
            f"too few rows to train and evaluate: {n} usable rows with {min_class} in the rarer "
            f"class; need at least {need} rows and 8 of each class (after the data audit)"
        )
    rest, test = train_test_split(idx, test_size=cfg.test_size, stratify=y, random_state=cfg.seed)
    frac = cfg.calibration_size / (1.0 - cfg.test_size)
    rest, calib = train_test_split(rest, test_size=frac, stratify=y[rest], random_state=cfg.seed)
    valid = np.array([], dtype=int)
    if early_stopping and cfg.valid_size > 0:
        frac = cfg.valid_size / (1.0 - cfg.test_size - cfg.calibration_size)
        rest, valid = train_test_split(
            rest, test_size=frac, stratify=y[rest], random_state=cfg.seed
        )
    return {
        "train": np.sort(rest),
        "valid": np.sort(valid),
        "calib": np.sort(calib),
        "test": np.sort(test),
    }


def _flat_metrics(prefix: str, metrics: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    from tabguard.training._evaluate import METRICS

    out: dict[str, float] = {}
    for k in METRICS:
        m = metrics[k]
        out[f"{prefix}{k}"] = m["value"]
        out[f"{prefix}{k}_ci_low"] = m["ci_low"]
        out[f"{prefix}{k}_ci_high"] = m["ci_high"]
    return out


def _untracked_version(name: str, parts: Sequence[str]) -> str:
    h = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:10]
    return f"{name}/untracked-{h}"


def _evaluate_all(
    main: Scorer,
    fallback: Scorer | None,
    df: pd.DataFrame,
    y_all: np.ndarray,
    split: Mapping[str, np.ndarray],
    contract: Contract,
    cfg: TrainConfig,
    threshold: float,
    timer: _Timer,
    progress: Progress,
) -> tuple[dict[str, Any], dict[str, float]]:
    """Held-out evaluation of both scorers and conformal coverage; returns (evaluation, flat
    metrics)."""
    # Imported here: scipy.stats costs ~1 s and model loading must stay light.
    from tabguard.training._evaluate import evaluate_predictions, metrics_with_ci

    test = df.iloc[split["test"]]
    y_test = y_all[split["test"]]
    with timer("evaluate"), progress.stage("evaluating (bootstrap CIs)", total=3) as st:
        p_test = main.positive_proba(test)
        ev_main = evaluate_predictions(
            y_test,
            p_test,
            test,
            contract,
            threshold=threshold,
            n_bootstrap=cfg.n_bootstrap,
            random_state=cfg.seed,
        )
        st.advance()
        p_train = main.positive_proba(df.iloc[split["train"]])
        ev_main["train_auc"] = metrics_with_ci(
            y_all[split["train"]], p_train, threshold=threshold, n_bootstrap=0
        )["auc"]["value"]
        ev_fb: dict[str, Any] | None = None
        if fallback is not None:
            full = evaluate_predictions(
                y_test,
                fallback.positive_proba(test),
                test,
                contract,
                threshold=threshold,
                n_bootstrap=cfg.n_bootstrap,
                random_state=cfg.seed,
                top_k=0,
            )
            ev_fb = {
                "features": fallback.feature_names,
                "dropped": [
                    g for g in contract.gameable_features() if g not in fallback.feature_names
                ],
                "metrics": full["metrics"],
                "calibration": full["calibration"],
            }
        st.advance()
    with timer("conformal"), progress.stage("conformal prediction sets (MAPIE)", total=None):
        from tabguard.training._conformal import conformal_evaluation

        conformal = conformal_evaluation(
            main,
            main.transform.transform_frame(df.iloc[split["calib"]]),
            y_all[split["calib"]],
            main.transform.transform_frame(test),
            y_test,
            alpha=cfg.alpha,
            random_state=cfg.seed,
        )
    ev_main["conformal"] = conformal
    evaluation: dict[str, Any] = {
        "split": {
            "stratified": True,
            "seed": cfg.seed,
            "rows": {k: len(v) for k, v in split.items()},
        },
        "threshold": threshold,
        "main": ev_main,
        "fallback": ev_fb,
    }
    metrics = _flat_metrics("test_", ev_main["metrics"])
    metrics["train_auc"] = ev_main["train_auc"]
    metrics["calibration_ece"] = ev_main["calibration"]["ece"]
    metrics["conformal_coverage"] = conformal["coverage"]
    metrics["conformal_target_coverage"] = conformal["target_coverage"]
    metrics["conformal_mean_set_size"] = conformal["mean_set_size"]
    if ev_fb is not None:
        metrics.update(_flat_metrics("fallback_test_", ev_fb["metrics"]))

    return evaluation, metrics


def train(
    data: pd.DataFrame,
    contract: Contract,
    config: TrainConfig | None = None,
    *,
    out: str | Path | None = None,
    progress: Progress | None = None,
    data_file: str | Path | None = None,
    signing_key: SigningKey | None = None,
    lineage: Mapping[str, Any] | None = None,
    review: Review | None = None,
) -> TrainResult:
    """Train, evaluate, save and track a model under a feature contract.

    Parameters
    ----------
    data : DataFrame
        Training data with features and label.
    contract : Contract
    config : TrainConfig, optional
    out : str or Path, optional
        Model directory to write (a temporary directory when omitted).
    progress : Progress, optional
    data_file : str or Path, optional
        The file ``data`` was read from (its SHA-256 is recorded too).
    signing_key : SigningKey, optional
        Sign the model's manifest (``tabguard train --sign``); loaders that have the key
        configured refuse models not signed with it.
    lineage : mapping, optional
        Where the model comes from (parent version, data hashes, row counts): stored as
        ``model.json`` ``lineage`` and as ``tabguard.lineage.<key>`` tags of the MLflow run.
    review : callable, optional
        ``review(main, fallback, metadata) -> {file name: content}``, called after evaluation
        and before anything is published: it may add to ``metadata`` (``metrics`` are logged to
        MLflow) and returns extra files for the model directory; an exception it raises stops
        the run (the MLflow run is marked failed, its reserved version deleted, ``out`` is left
        as it was). ``tabguard retrain`` runs its model gate and report here.

    Returns
    -------
    TrainResult

    Raises
    ------
    DataAuditRefusedError
        The data audit found critical problems (and ``allow_findings`` is False).
    TrainingConfigError
        An invalid option.
    DataError
        Unusable data (missing label, too few rows).
    TrackingError
        MLflow failed; nothing is written to ``out`` then.

    Examples
    --------
    >>> from tabguard.datasets import credit_default_contract, load_credit_default
    >>> res = train(load_credit_default(), credit_default_contract(),
    ...             TrainConfig(preset="robust", track=False))  # doctest: +SKIP
    >>> res.metrics["test_auc"]  # doctest: +SKIP
    0.78
    """
    cfg = config or TrainConfig()
    cfg.validate()
    if out is not None:
        check_model_target(Path(out))  # fail before training, not after
    progress = progress or NULL_PROGRESS
    started = time.perf_counter()
    timer = _Timer()

    # -- options ------------------------------------------------------------------------------
    params = preset_params(cfg.model, cfg.preset, cfg.params)
    use_monotone = PRESET_OPTIONS[cfg.preset]["monotone"] if cfg.monotone is None else cfg.monotone
    bins_spec = cfg.bins if isinstance(cfg.bins, str | None) else ",".join(cfg.bins)
    bins = bin_features(contract, bins_spec, cfg.preset)
    gameable = contract.gameable_features()
    drop = tuple(gameable) if cfg.drop_gameable else ()
    main_opts = TransformOptions(bins=tuple(b for b in bins if b not in drop), drop=drop)
    fb_opts = TransformOptions(
        bins=tuple(b for b in bins if b not in gameable), drop=tuple(gameable)
    )
    noise_features = [g for g in gameable if g not in drop and contract.features[g].is_numeric]

    weights = None
    if cfg.weight_column is not None:
        weights = _weights(data, cfg.weight_column)
        data = data.assign(**{_WEIGHT: weights}).drop(columns=[cfg.weight_column])
    tracker: Tracker | None = None
    registry = cfg.registry_name or contract.name
    if cfg.track:
        from tabguard.training._tracking import Tracker

        with timer("tracking_connect"):
            # Fail before minutes of training when the store is unreachable.
            tracker = Tracker(
                cfg.tracking_uri, cfg.experiment or f"tabguard-{contract.name}", registry
            )
            tracker.connect()

    # -- audit and data -----------------------------------------------------------------------
    with timer("audit"):
        df, audit_summary, notes = _audit(data, contract, cfg, progress)
    y_all = check_labels(df, contract).to_numpy().astype(int)
    w_all: np.ndarray | None = None
    if weights is not None:
        w_all = df[_WEIGHT].to_numpy(dtype=float)
        df = df.drop(columns=[_WEIGHT])
        data = data.drop(columns=[_WEIGHT])
    data_sha = frame_sha256(data)
    file_sha = file_sha256(data_file) if data_file is not None else None
    early = cfg.model == "lightgbm"
    split = _split(y_all, cfg, early)
    rng = np.random.default_rng(cfg.seed)
    df_fit = df.iloc[split["train"]]
    sigmas: dict[str, float] = {}
    if cfg.noise > 0 and noise_features:
        df_fit, sigmas = add_noise(df_fit, contract, noise_features, cfg.noise, rng)
    elif cfg.noise > 0:
        notes.append("noise requested but the main model has no gameable numeric feature")

    def fit(name: str, opts: TransformOptions, frame: pd.DataFrame) -> tuple[Scorer, FitInfo]:
        tr = FeatureTransform(contract, opts)
        mono = monotone_vector(contract, tr.feature_names) if use_monotone else None
        X_valid = tr.transform_frame(df.iloc[split["valid"]]) if len(split["valid"]) else None
        native, info = fit_estimator(
            cfg.model,
            params,
            tr,
            tr.transform_frame(frame),
            y_all[split["train"]],
            X_valid,
            y_all[split["valid"]] if len(split["valid"]) else None,
            sample_weight=w_all[split["train"]] if w_all is not None else None,
            monotone=mono,
            seed=cfg.seed,
            n_jobs=cfg.n_jobs,
            progress=progress,
            label=name,
        )
        return Scorer(name, cfg.model, native, tr, params=info.params), info

    with timer("fit_main"):
        main, main_info = fit("main", main_opts, df_fit)
    notes += main_info.notes
    fallback: Scorer | None = None
    fb_info: FitInfo | None = None
    if cfg.fallback:
        with timer("fit_fallback"):
            if set(main_opts.drop) >= set(gameable):
                # The main model already has no gameable feature: the fallback is the same.
                fallback = Scorer("fallback", cfg.model, main.native, main.transform, main.params)
                fb_info = main_info
            else:
                fallback, fb_info = fit("fallback", fb_opts, df.iloc[split["train"]])

    # -- evaluation ---------------------------------------------------------------------------
    threshold = cfg.threshold if cfg.threshold is not None else contract.decision.threshold
    evaluation, metrics = _evaluate_all(
        main, fallback, df, y_all, split, contract, cfg, threshold, timer, progress
    )
    conformal = evaluation["main"]["conformal"]

    # -- provenance, version, directory, tracking ---------------------------------------------
    flat_params: dict[str, Any] = {f"option.{k}": v for k, v in cfg.to_params().items()}
    flat_params.update({f"main.{k}": v for k, v in main_info.params.items()})
    flat_params["resolved.bins"] = ",".join(main_opts.bins)
    flat_params["resolved.monotone"] = bool(main_info.monotone_applied)
    flat_params["resolved.noise_features"] = ",".join(sigmas)
    code = code_version()
    c_sha = contract_hash(contract)
    tags = {
        "tabguard.data_sha256": data_sha,
        "tabguard.data_file_sha256": file_sha,
        "tabguard.clean_data_sha256": frame_sha256(df),
        "tabguard.contract_sha256": c_sha,
        "tabguard.contract": contract.name,
        "tabguard.code_version": code["tabguard_version"],
        "tabguard.git_commit": code["git_commit"],
        "tabguard.git_dirty": code["git_dirty"],
        "tabguard.model_kind": cfg.model,
        "tabguard.preset": cfg.preset,
        "mlflow.source.git.commit": code["git_commit"],
        **{f"tabguard.lineage.{k}": _tag(v) for k, v in (lineage or {}).items()},
    }
    run_id: str | None = None
    if tracker is not None:
        with timer("tracking"), progress.stage("tracking in MLflow", total=None):
            run_id = tracker.start(f"{cfg.model}-{cfg.preset}", tags)
            try:
                version = f"{registry}/{tracker.reserve_version()}"
            except BaseException:
                tracker.abort()  # a failed run, no dangling version
                raise
    else:
        version = _untracked_version(
            registry, [data_sha, c_sha, json.dumps(jsonable(flat_params), sort_keys=True)]
        )
    metadata: dict[str, Any] = {
        "version": version,
        "threshold": threshold,
        "model_kind": cfg.model,
        "preset": cfg.preset,
        "options": {
            "bins": list(main_opts.bins),
            "noise": cfg.noise,
            "noise_sigma": sigmas,
            "drop_gameable": cfg.drop_gameable,
            "monotone": bool(main_info.monotone_applied),
            "fallback": cfg.fallback,
            "seed": cfg.seed,
        },
        "params": flat_params,
        "resolved_params": {
            "main": main_info.params,
            "fallback": fb_info.params if fb_info is not None else None,
        },
        "best_iteration": {
            "main": main_info.best_iteration,
            "fallback": fb_info.best_iteration if fb_info is not None else None,
        },
        "metrics": metrics,
        "conformal": {
            "alpha": conformal["alpha"],
            "score": "lac",
            "quantile": conformal["quantile"],
            "measured_coverage": conformal["coverage"],
        },
        "data": {
            "sha256": data_sha,
            "file": str(data_file) if data_file is not None else None,
            "file_sha256": file_sha,
            "rows": len(data),
            "clean_rows": len(df),
            "clean_sha256": tags["tabguard.clean_data_sha256"],
            "label_base_rate": float(y_all.mean()),
        },
        "audit": audit_summary,
        "split": evaluation["split"],
        "code": code,
        "mlflow": {
            "tracking_uri": tracker.uri if tracker else None,
            "experiment": tracker.experiment if tracker else None,
            "run_id": run_id,
            "registered_model": registry if tracker else None,
            "registered_version": tracker.version if tracker else None,
        },
        "notes": notes,
    }
    if lineage:
        metadata["lineage"] = dict(lineage)
    extra: dict[str, str | bytes] = {
        "evaluation.json": json.dumps(jsonable(evaluation), indent=2) + "\n"
    }
    with timer("drift_reference"):
        # The training rows (before noise) as the service will log them: the monitor's drift
        # reference, raw attributes and model features apart.
        from tabguard.monitoring._drift import REFERENCE_FILE, DriftReference

        extra[REFERENCE_FILE] = DriftReference.from_frame(
            df.iloc[split["train"]],
            contract,
            main.transform,
            source={"data_sha256": data_sha, "split": "train"},
        ).to_json()
    tmp_holder: tempfile.TemporaryDirectory[str] | None = None
    if out is None:
        tmp_holder = tempfile.TemporaryDirectory(prefix="tabguard-model-")
        target = Path(tmp_holder.name) / "model"
    else:
        target = Path(out)
    try:
        if review is not None:
            with timer("review"), progress.stage("reviewing the new model", total=None):
                extra.update(review(main, fallback, metadata))
        if cfg.report:
            from tabguard.training._report import training_report

            with timer("report"):
                extra["report.html"] = training_report(evaluation, metadata, contract)
        metadata["timings"] = {**timer.timings, "total": round(time.perf_counter() - started, 3)}
        bundle = _publish(
            signing_key,
            target,
            main,
            fallback,
            contract,
            metadata,
            extra,
            tracker,
            tags,
            timer,
            progress,
        )
    except BaseException:
        if tracker is not None:
            tracker.abort()
        raise
    return TrainResult(
        model_dir=target,
        bundle=bundle,
        evaluation=evaluation,
        metrics=metrics,
        params=flat_params,
        version=version,
        run_id=run_id,
        tracking_uri=tracker.uri if tracker else None,
        audit_summary=audit_summary,
        seconds=round(time.perf_counter() - started, 3),
        timings=timer.timings,
        notes=notes,
        _tmp=tmp_holder,
    )


#: Called before a trained model is published (see :func:`train`'s ``review``).
Review = Callable[[Scorer, Scorer | None, dict[str, Any]], Mapping[str, str | bytes]]
_WEIGHT = "__tabguard_weight__"


def _weights(data: pd.DataFrame, column: str) -> np.ndarray:
    """The row weights of ``column``: finite, non-negative, not all zero."""
    if column not in data.columns:
        raise DataError(
            f"weight_column {column!r} is not in the data; columns are {list(data.columns)[:12]}"
        )
    w = pd.to_numeric(data[column], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        raise DataError(
            f"weight_column {column!r}: {int(bad.sum())} row(s) without a finite non-negative "
            f"weight (first at row {int(np.flatnonzero(bad)[0])}); weights must be numbers >= 0"
        )
    if not (w > 0).any():
        raise DataError(f"weight_column {column!r}: every weight is 0")
    return w


def _tag(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(jsonable(value), sort_keys=True)


def _publish(
    signing_key: SigningKey | None,
    target: Path,
    main: Scorer,
    fallback: Scorer | None,
    contract: Contract,
    metadata: dict[str, Any],
    extra: Mapping[str, str | bytes],
    tracker: Tracker | None,
    tags: Mapping[str, Any],
    timer: _Timer,
    progress: Progress,
) -> ModelBundle:
    """Write the model directory beside ``target``, upload it to MLflow, then move it in place.

    If tracking fails, nothing reaches ``target`` (an existing model there stays intact).
    """
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging.", dir=_parent(target)))
    staged = staging / "model"
    try:
        save_model(
            staged,
            main=main,
            fallback=fallback,
            contract=contract,
            metadata=metadata,
            version=metadata["version"],
            threshold=metadata["threshold"],
            extra_files=extra,
            signing_key=signing_key,
        )
        bundle = load_model(staged, signing_key=signing_key)
        if tracker is not None:
            with timer("tracking_upload"), progress.stage("uploading to MLflow", total=None):
                tracker.log(
                    metadata["params"],
                    metadata["metrics"],
                    {
                        **tags,
                        "tabguard.manifest_sha256": bundle.digest,
                        "tabguard.version": metadata["version"],
                    },
                )
                tracker.log_model_dir(staged)
                tracker.tag_version(
                    {"manifest_sha256": bundle.digest, "tabguard.model_kind": main.kind}
                )
                tracker.finish(ok=True)
        if target.exists():
            check_model_target(target)  # only a previous tabguard model directory is replaced
            shutil.rmtree(target)
        staged.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return load_model(target, signing_key=signing_key)


def _parent(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    return target.parent


__all__ = ["PRESETS", "TrainConfig", "TrainResult", "train"]
