"""Running the model audit: model + clean reference data → checks → report."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tabguard import __version__
from tabguard.contract import Contract, check_columns, contract_hash, load_contract, validate_frame
from tabguard.errors import DataError
from tabguard.io import check_labels, frame_sha256
from tabguard.model_audit._base import REGISTRY, ModelAuditContext, ModelCheckResult
from tabguard.model_audit._model import AuditedModel, as_audited_model
from tabguard.progress import NULL_PROGRESS, Progress
from tabguard.reports import Report, Section, now_iso, write_report


@dataclass
class ModelAuditResult:
    """The outcome of :func:`audit_model`.

    Attributes
    ----------
    report : Report
        Findings (``findings.json``) and sections (``report.html``).
    check_results : dict
        Each check's result (findings, sections, summary).
    context : ModelAuditContext
        Shared state, including cached intermediate results (``cache["probe"]``...).
    """

    report: Report
    check_results: dict[str, ModelCheckResult] = field(default_factory=dict)
    context: ModelAuditContext | None = None

    def exit_code(self) -> int:
        """0 without critical findings, 1 with at least one."""
        return self.report.exit_code()


def build_model_context(
    model: Any,
    data: pd.DataFrame,
    *,
    contract: Contract | None = None,
    threshold: float | None = None,
    members: pd.DataFrame | None = None,
    random_state: int = 0,
    progress: Progress | None = None,
    options: Mapping[str, Any] | None = None,
) -> ModelAuditContext:
    """Validate the options, adapt the model, validate the reference data and score it.

    Raises
    ------
    OptionsError, UnknownCheckError
        Invalid options, or options of a check the audit does not have.
    DataError
        Unusable reference data.
    """
    parsed = REGISTRY.options(REGISTRY.ordered(), options)
    m: AuditedModel = as_audited_model(model, contract, threshold)
    c = m.contract
    if len(data) == 0:
        raise DataError("reference data has no rows")
    check_columns(data, c)
    df = data.reset_index(drop=True)
    check_labels(df, c)
    invalid = validate_frame(df, c).invalid_mask()
    if invalid.all():
        raise DataError(
            f"every reference row breaks contract '{c.name}'; the model audit needs clean rows "
            "(run `tabguard audit data` and use its clean.csv)"
        )
    df = df.loc[~invalid].reset_index(drop=True)
    y = check_labels(df, c).to_numpy()
    if y.min() == y.max():
        raise DataError(
            f"reference data has a single label value in {c.label.column!r}; the audit needs "
            "both classes"
        )
    X = m.encode(df)
    scores = m.predict_matrix(X)
    if members is not None:
        check_columns(members, c)
        members = members.reset_index(drop=True)
        members = members.loc[~validate_frame(members, c).invalid_mask()].reset_index(drop=True)
    ctx = ModelAuditContext(
        model=m,
        data=df,
        y=y,
        X=X,
        scores=scores,
        members=members,
        random_state=random_state,
        progress=progress or NULL_PROGRESS,
        options=parsed,
    )
    ctx.cache["dropped_invalid_rows"] = int(invalid.sum())
    return ctx


def audit_model(
    model: Any,
    data: pd.DataFrame,
    *,
    contract: Contract | None = None,
    threshold: float | None = None,
    members: pd.DataFrame | None = None,
    checks: Sequence[str] | None = None,
    random_state: int = 0,
    progress: Progress | None = None,
    options: Mapping[str, Any] | None = None,
    source: str | None = None,
    n_jobs: int | None = 1,
) -> ModelAuditResult:
    """Audit a model with clean reference data (requirements M1-M4).

    Parameters
    ----------
    model : object
        A tabguard model bundle or scorer, an :class:`AuditedModel` (e.g. from
        :func:`load_audit_model`), or any object with ``predict_proba(df_raw)`` (then pass
        ``contract``).
    data : DataFrame
        Clean reference rows with features and label (rows breaking the contract are left out).
    contract : Contract, optional
        Required for models that do not carry one.
    threshold : float, optional
        Decision threshold (default: the model's, else the contract's).
    members : DataFrame, optional
        The model's training rows, for membership inference.
    checks : sequence of str, optional
        Checks to run (default: all), in this order whatever the order given: ``performance``,
        ``importance``, ``unacceptable``, ``backdoor``, ``gameability``, ``extraction``,
        ``membership``, ``fairness``.
    random_state : int
    progress : Progress, optional
    options : mapping, optional
        Per-check options, e.g. ``{"backdoor": {"n_rows": 600}, "importance": {"shap_rows":
        500}}``.
    source : str, optional
        Where the data came from (shown in the report).
    n_jobs : int or None
        Threads of the native libraries (LightGBM, XGBoost, scikit-learn's OpenMP) while the
        audit runs. The default 1 keeps the audit predictable on shared machines, where OpenMP
        threads spin against other work (an extraction step took 339 s with the library
        defaults under load vs a few seconds single-threaded); None leaves the defaults.

    Returns
    -------
    ModelAuditResult

    Raises
    ------
    UnknownCheckError
        A check name (in ``checks`` or ``options``) the audit does not have.
    OptionsError
        An option that is unknown, of the wrong type or out of range.
    DataError
        Unusable reference data (missing columns or label, one class, every row invalid).
    """
    import sklearn  # noqa: F401  (loads its OpenMP runtime, see below)
    from threadpoolctl import threadpool_limits

    # threadpool_limits sets the pools of the libraries loaded now only: scikit-learn's OpenMP
    # runtime is loaded with it above, else a check importing it later (extraction, membership)
    # would run with the defaults.
    limits = threadpool_limits(limits=n_jobs) if n_jobs is not None else None
    try:
        return _audit(
            model,
            data,
            contract,
            threshold,
            members,
            checks,
            random_state,
            progress,
            options,
            source,
        )
    finally:
        if limits is not None:
            limits.restore_original_limits()


def _audit(
    model: Any,
    data: pd.DataFrame,
    contract: Contract | None,
    threshold: float | None,
    members: pd.DataFrame | None,
    checks: Sequence[str] | None,
    random_state: int,
    progress: Progress | None,
    options: Mapping[str, Any] | None,
    source: str | None,
) -> ModelAuditResult:
    started = time.perf_counter()
    selected = REGISTRY.select(checks)
    ctx = build_model_context(
        model,
        data,
        contract=contract,
        threshold=threshold,
        members=members,
        random_state=random_state,
        progress=progress,
        options=options,
    )
    results: dict[str, ModelCheckResult] = {}
    timings: dict[str, float] = {}
    for name, check in selected.items():  # one lane: `after` holds by the running order
        t0 = time.perf_counter()
        results[name] = check().run(ctx)
        timings[name] = round(time.perf_counter() - t0, 3)
    m = ctx.model
    findings = [f for r in results.values() for f in r.findings]
    sections: list[Section] = [_overview(ctx, results)]
    for r in results.values():
        sections.extend(r.sections)
    report = Report(
        kind="model_audit",
        title=f"Model security audit: {m.name} ({m.contract.name})",
        rows=len(ctx.data),
        suspicious_rows=[],
        findings=findings,
        summary={
            "model": m.name,
            "threshold": m.threshold,
            "approval_rate": float(ctx.approve.mean()),
            "dropped_invalid_rows": ctx.cache.get("dropped_invalid_rows", 0),
            "checks": {k: v.summary for k, v in results.items()},
            "seconds": timings,
        },
        meta={
            "tabguard_version": __version__,
            "created": now_iso(),
            "model": m.name,
            "model_source": m.source,
            "contract": m.contract.name,
            "contract_sha256": contract_hash(m.contract),
            "data_sha256": frame_sha256(ctx.data),
            "source": source or "<frame>",
            "random_state": random_state,
            "elapsed_seconds": round(time.perf_counter() - started, 2),
        },
        sections=sections,
    )
    return ModelAuditResult(report, results, ctx)


def _overview(ctx: ModelAuditContext, results: Mapping[str, ModelCheckResult]) -> Section:
    m = ctx.model
    text = [
        f"Model {m.name} from {m.source}: {len(m.feature_names)} inputs, decision threshold "
        f"{m.threshold:g} on P({m.contract.label.column}={m.contract.label.positive!r}), a "
        f"high score means {m.contract.decision.positive_means}.",
        f"Reference data: {len(ctx.data)} clean rows"
        + (
            f" ({ctx.cache['dropped_invalid_rows']} rows breaking the contract left out)"
            if ctx.cache.get("dropped_invalid_rows")
            else ""
        )
        + f"; the model approves {ctx.approve.mean():.1%} of them.",
    ]
    if m.trees is not None:
        text.append(
            f"Tree structure read: {len(m.trees.trees)} trees ({m.trees.source}); the backdoor "
            "probe uses their split thresholds and categories."
        )
    return Section(title="Model", text=text)


def load_audit_model(
    path: str | Path,
    *,
    contract: Contract | str | Path | None = None,
    threshold: float | None = None,
    scorer: str = "main",
) -> AuditedModel:
    """Load a tabguard model directory or a third-party model file for the audit.

    Parameters
    ----------
    path : str or Path
        A tabguard model directory, or a LightGBM text / XGBoost JSON / skops model trained on
        the contract's raw columns.
    contract : Contract or path, optional
        Required for third-party files; for a tabguard directory it replaces the saved contract
        in the audit (e.g. with stricter unacceptable cases).
    threshold : float, optional
    scorer : {"main", "fallback"}
        Which model of a tabguard directory.

    Raises
    ------
    ArtifactIntegrityError
        Unreadable, unsafe or tampered model.
    ContractError
        A third-party model without ``contract``, or inputs that do not match it.
    """
    from tabguard.errors import ContractError
    from tabguard.model_audit._thirdparty import load_third_party, sniff_model_file

    p = Path(path)
    c = load_contract(contract) if isinstance(contract, str | Path) else contract
    kind = sniff_model_file(p)
    if kind == "tabguard":
        from tabguard.training import load_model

        bundle = load_model(p)
        try:
            sc = bundle.scorer(scorer)
        except KeyError as exc:
            raise ContractError("--scorer", str(exc).strip("'\""), scorer) from None
        thr = threshold if threshold is not None else bundle.threshold
        name = f"{bundle.version} ({scorer})"
        return as_audited_model(sc, c or bundle.contract, thr, name=name, source=str(p))
    if scorer != "main":
        raise ContractError(
            "--scorer",
            "only tabguard model directories have a fallback scorer",
            scorer,
            f"drop --scorer for the model file {p.name}",
        )
    if c is None:
        raise ContractError(
            "--contract",
            "a third-party model file needs the contract of its raw columns",
            None,
            f"pass --contract CONTRACT.yaml with {p.name}",
        )
    return load_third_party(p, c, threshold=threshold)


def write_model_audit(result: ModelAuditResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``findings.json`` and ``report.html`` into ``out_dir`` and return their paths."""
    return write_report(result.report, out_dir)
