"""``retrain()``: assemble → data gate → train with the parent's preset → model and performance
gates → champion/challenger report → MLflow run with lineage and a registered version.

Nothing is published unless every gate passes: a blocked retrain leaves ``out`` as it was,
marks its MLflow run failed (its reserved version deleted) and writes its report beside
``out`` in ``<out>.blocked/``.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tabguard.errors import DataError, TabguardError
from tabguard.progress import NULL_PROGRESS, Progress
from tabguard.retraining._assemble import (
    BaseData,
    LoopData,
    assemble,
    find_base_data,
    logged_rows,
    read_redteam,
)
from tabguard.retraining._gates import GateResult, data_gate, model_gate, performance_gate
from tabguard.retraining._options import RetrainOptions
from tabguard.retraining._report import render

if TYPE_CHECKING:
    from tabguard.monitoring import MonitorConfig
    from tabguard.training import ModelBundle, Scorer, TrainConfig, TrainResult
    from tabguard.training._signing import SigningKey

#: Options of the parent's ``tabguard train`` run that the retrain keeps.
INHERITED_OPTIONS = (
    "model",
    "preset",
    "bins",
    "noise",
    "drop_gameable",
    "monotone",
    "fallback",
    "seed",
    "test_size",
    "calibration_size",
    "valid_size",
    "alpha",
    "params",
    "threshold",
    "registry_name",
    "experiment",
)
_WEIGHT = "__retrain_weight__"


class RetrainBlockedError(TabguardError):
    """A gate refused the retrain (exit status 1).

    Attributes
    ----------
    gate : str
        ``data``, ``model`` or ``performance``.
    lines : list of str
        The blocking findings, one line each.
    report_dir : Path or None
        Where the blocked retrain's report was written.
    """

    def __init__(self, gate: str, lines: list[str], report_dir: Path | None = None) -> None:
        self.gate, self.lines, self.report_dir = gate, list(lines), report_dir
        more = f" (+{len(lines) - 1} more)" if len(lines) > 1 else ""
        where = f"; report in {report_dir}" if report_dir is not None else ""
        super().__init__(
            f"retrain blocked by the {gate} gate: {lines[0] if lines else '?'}{more}{where}"
        )


@dataclass
class RetrainResult:
    """A retrain that passed its gates.

    Attributes
    ----------
    model_dir : Path
        The challenger's model directory (``retrain.json``/``retrain.html`` inside).
    version : str
        Its version (the registered MLflow version when tracked).
    digest : str
        Its manifest digest (what ``tabguard models promote`` pins).
    summary : dict
        The content of ``retrain.json``: counts, hashes, gates, comparison, lineage.
    train : TrainResult
    quarantined : DataFrame
        The rows the data gate left out: their provenance (``source``, ``exploit``,
        ``decision_id``, ``client``, ``subject_id``, ``timestamp``) and the audit's reason.
    """

    model_dir: Path
    version: str
    digest: str
    summary: dict[str, Any]
    train: TrainResult = field(repr=False)
    quarantined: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)


def parent_config(parent: ModelBundle, **overrides: Any) -> TrainConfig:
    """The parent's ``tabguard train`` options (:data:`INHERITED_OPTIONS`), then ``overrides``."""
    from tabguard.training import TrainConfig

    params = parent.metadata.get("params") or {}
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    given: dict[str, Any] = {"model": parent.main.kind}
    for key, value in params.items():
        name = str(key).removeprefix("option.")
        if str(key).startswith("option.") and name in INHERITED_OPTIONS and name in known:
            given[name] = value
    if isinstance(given.get("params"), str):
        given["params"] = json.loads(given["params"])
    given.update(overrides)
    return TrainConfig(**given)


def _import_outcomes(path: str | Path, monitor: MonitorConfig, contract: Any) -> dict[str, int]:
    from tabguard.monitoring._outcomes import (
        describe,
        import_outcomes,
        label_mapper,
        read_outcomes,
    )

    report = import_outcomes(read_outcomes(path), monitor, contract=contract, source=str(path))
    if report.refused:
        lines = describe(report, label_mapper(contract)[1])
        detail = "; ".join(line.strip() for line in lines[1:])
        raise DataError(
            f"outcomes {path}: {report.refused} of {report.rows} row(s) refused: {detail}. The "
            f"{report.imported + report.already + report.relabelled} valid row(s) are stored; "
            "fix or drop the refused rows and run again"
        )
    return {"imported": report.imported, "already": report.already}


def _reference(
    loop: LoopData, keep: np.ndarray, contract: Any, rows: int, seed: int
) -> pd.DataFrame:
    """Clean rows for the model audit: the holdout first, then a sample of base rows."""
    cols = [*contract.features, contract.label.column]
    hold = loop.holdout[cols] if len(loop.holdout) else pd.DataFrame(columns=cols)
    base = loop.frame[(loop.meta["source"] == "base").to_numpy() & keep]
    need = max(0, rows - len(hold))
    if need and len(base):
        base = base.sample(min(need, len(base)), random_state=seed)
    else:
        base = base.iloc[:0]
    return pd.concat([hold.astype(object), base[cols].astype(object)], ignore_index=True).pipe(
        _like, loop.frame
    )


def _like(frame: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    for name in frame.columns:
        if like[name].dtype.kind in "iufb":
            frame[name] = pd.to_numeric(frame[name], errors="coerce")
    return frame


def retrain(
    model_dir: str | Path,
    out: str | Path,
    *,
    data: pd.DataFrame | str | Path | None = None,
    monitor: MonitorConfig | None = None,
    outcomes: str | Path | None = None,
    redteam: str | Path | pd.DataFrame | None = None,
    as_of: datetime | None = None,
    options: RetrainOptions | Mapping[str, Any] | None = None,
    track: bool = True,
    tracking_uri: str | None = None,
    signing_key: SigningKey | None = None,
    progress: Progress | None = None,
) -> RetrainResult:
    """Retrain a model on its data, matured production requests and exploit attempts.

    Parameters
    ----------
    model_dir : path
        The current (champion) model directory; verified before anything is read.
    out : path
        The challenger's model directory (written only when every gate passes).
    data : DataFrame or path, optional
        The parent's training data (default: the file its ``model.json`` names, checked by
        its SHA-256).
    monitor : MonitorConfig, optional
        Where the prediction log, the outcomes and the alerts are (``monitor.yaml``); without
        it only the base data and ``redteam`` are used.
    outcomes : path, optional
        An outcomes file to import first (as ``tabguard outcomes import``); a refused row is
        bad input.
    redteam : path or DataFrame, optional
        Adversarial inputs found by the red team, with the contract's label column.
    as_of : datetime, optional
        The time outcomes are matured at (default now).
    options : RetrainOptions or mapping, optional
    track, tracking_uri : optional
        MLflow run and registered version (as ``tabguard train``).
    signing_key : SigningKey, optional
        Sign the challenger's manifest.
    progress : Progress, optional

    Returns
    -------
    RetrainResult

    Raises
    ------
    RetrainBlockedError
        A gate refused (exit status 1 of ``tabguard retrain``).
    DataError
        Bad input: refused outcomes, labels outside the contract, no matured outcome,
        missing or changed base data (exit status 2).
    """
    from tabguard.checks._options import parse_options
    from tabguard.serving._decision import DecisionPolicy
    from tabguard.training import load_model, train

    opts = options if isinstance(options, RetrainOptions) else parse_options(
        RetrainOptions, options
    )  # fmt: skip
    progress = progress or NULL_PROGRESS
    as_of = (as_of or datetime.now(UTC)).astimezone(UTC)
    out = Path(out)
    parent = load_model(Path(model_dir), signing_key=signing_key)
    contract = parent.contract
    base: BaseData = find_base_data(parent, data)
    imported: dict[str, int] = {}
    if outcomes is not None:
        if monitor is None:
            raise DataError("--outcomes needs the prediction log: pass --config monitor.yaml")
        imported = _import_outcomes(outcomes, monitor, contract)
    with progress.stage("reading matured requests and exploit attempts", total=None):
        if monitor is not None:
            logged, counts = logged_rows(monitor, contract, as_of=as_of)
        else:
            logged, counts = pd.DataFrame(columns=["exploit", "timestamp"]), {"matured": 0}
        red = None
        if redteam is not None:
            red = redteam if isinstance(redteam, pd.DataFrame) else read_redteam(redteam, contract)
        loop = assemble(contract, base, logged, red, holdout=opts.holdout, counts=counts)
    from tabguard.retraining._compare import shadow_comparison

    shadow = shadow_comparison(logged, contract, n_bootstrap=opts.n_bootstrap)
    loop.counts.update({f"outcomes_{k}": v for k, v in imported.items()})
    summary: dict[str, Any] = {
        "status": "running",
        "parent": {
            "version": parent.version,
            "digest": parent.digest,
            "run_id": (parent.metadata.get("mlflow") or {}).get("run_id"),
            "base_data": base.origin,
            "base_verified": base.verified,
        },
        "as_of": as_of.isoformat(),
        "counts": loop.counts,
        "hashes": loop.hashes,
        "notes": list(loop.notes),
        "options": dataclasses.asdict(opts),
        "gates": [],
        "shadow": shadow,
    }
    blocked_dir = out.parent / f"{out.name}.blocked"

    def blocked(gate: GateResult) -> RetrainBlockedError:
        summary["status"] = f"blocked ({gate.gate} gate)"
        blocked_dir.mkdir(parents=True, exist_ok=True)
        for name, text in render(summary).items():
            (blocked_dir / name).write_text(text, encoding="utf-8")
        return RetrainBlockedError(gate.gate, gate.blocking, blocked_dir)

    with progress.stage("data gate (audit of the combined set)", total=None):
        keep, dgate, audit = data_gate(
            loop,
            contract,
            checks=opts.data_checks,
            quarantine_checks=opts.quarantine_checks,
            random_state=int((parent.metadata.get("options") or {}).get("seed", 0) or 0),
        )
    summary["gates"].append(dgate.to_dict())
    if not dgate.passed:
        raise blocked(dgate)
    exploit = loop.is_exploit()
    clean = loop.frame[keep].reset_index(drop=True)
    clean[_WEIGHT] = np.where(exploit[keep], opts.exploit_weight, 1.0)
    cfg = parent_config(
        parent,
        audit=False,
        track=track,
        tracking_uri=tracking_uri,
        weight_column=_WEIGHT,
        n_bootstrap=opts.n_bootstrap,
    )
    champion_policy = DecisionPolicy.from_contract(contract.decision, parent.threshold)
    exploits = loop.exploits()
    quarantined_exploit = int((exploit & ~keep).sum())
    lineage = {
        "parent_version": parent.version,
        "parent_digest": parent.digest,
        "parent_run_id": summary["parent"]["run_id"],
        **{f"{k}_sha256": v for k, v in loop.hashes.items() if v},
        "rows": dict(loop.counts),
        "exploit_rows": int(exploit.sum()),
        "exploit_rows_quarantined": quarantined_exploit,
        "quarantined_rows": int((~keep).sum()),
        "outcomes_as_of": as_of.isoformat(),
    }
    summary["lineage"] = lineage
    failure: list[RetrainBlockedError] = []

    def review(main: Scorer, fallback: Scorer | None, metadata: dict[str, Any]) -> dict[str, str]:
        from tabguard.retraining._compare import compare

        challenger_policy = DecisionPolicy.from_contract(contract.decision, metadata["threshold"])
        comparison = compare(
            parent.main.positive_proba,
            main.positive_proba,
            champion_policy,
            challenger_policy,
            loop.holdout,
            exploits,
            contract,
            n_bootstrap=opts.n_bootstrap,
            seed=cfg.seed,
        )
        summary["comparison"] = comparison
        perf = performance_gate(comparison, min_holdout=opts.min_holdout)
        summary["gates"].append(perf.to_dict())
        if not perf.passed:
            failure.append(blocked(perf))
            raise failure[-1]
        reference = _reference(loop, keep, contract, opts.reference_rows, cfg.seed)
        mgate, _reports = model_gate(
            main,
            parent.main,
            reference,
            contract,
            threshold=float(metadata["threshold"]),
            checks=opts.model_checks,
            strict=opts.strict_model_audit,
            random_state=cfg.seed,
            learnt=clean.assign(
                weight=clean[_WEIGHT],
                exploit=exploit[keep],
                source=loop.meta["source"].to_numpy(dtype=object)[keep],
            ),
        )
        summary["gates"].append(mgate.to_dict())
        if not mgate.passed:
            failure.append(blocked(mgate))
            raise failure[-1]
        summary["status"] = "ready"
        summary["version"] = metadata["version"]
        hold = comparison.get("holdout") or {}
        ex = comparison.get("exploits") or {}
        extra_metrics = {
            "retrain_quarantined_rows": float((~keep).sum()),
            "retrain_exploit_rows": float(exploit.sum()),
        }
        if hold.get("rows"):
            extra_metrics["holdout_auc_champion"] = hold["champion"]["auc"]["value"]
            extra_metrics["holdout_auc_challenger"] = hold["challenger"]["auc"]["value"]
        if ex.get("all", {}).get("n"):
            extra_metrics["exploit_success_before"] = ex["all"]["before"]
            extra_metrics["exploit_success_after"] = ex["all"]["after"]
        metadata["metrics"].update(extra_metrics)
        metadata["retrain"] = {
            "parent": summary["parent"],
            "gates": [g["gate"] + (": passed" if g["passed"] else ": blocked") for g in
                      summary["gates"]],
        }  # fmt: skip
        return render(summary)

    try:
        result = train(
            clean,
            contract,
            cfg,
            out=out,
            progress=progress,
            signing_key=signing_key,
            lineage=lineage,
            review=review,
        )
    except RetrainBlockedError:
        raise
    if blocked_dir.is_dir():
        shutil.rmtree(blocked_dir, ignore_errors=True)  # an earlier blocked attempt's report
    from tabguard.data_audit import REASON_COLUMN, ROW_COLUMN

    reasons = dict(
        zip(audit.quarantine[ROW_COLUMN].astype(int), audit.quarantine[REASON_COLUMN], strict=True)
    )
    rows = np.flatnonzero(~keep)
    quarantined = loop.meta.iloc[rows].reset_index(drop=True)
    quarantined["reason"] = [reasons.get(int(r)) for r in rows]
    return RetrainResult(
        model_dir=result.model_dir,
        version=result.version,
        digest=result.bundle.digest,
        summary=summary,
        train=result,
        quarantined=quarantined,
    )
