"""The retrain's gates: the data audit on the combined set, the model audit, the holdout AUC.

Each gate returns a :class:`GateResult`: whether it passed, the findings that block (one line
each, naming the check, the features and the values) and what it resolved by itself.

Data gate
    :func:`~tabguard.data_audit.audit_data` on every row the retrain would learn from. A
    critical finding whose rows the audit quarantined (a planted trigger, copied rows, label
    noise confirmed by RONI: the checks of ``RetrainConfig.quarantine_checks``) is *resolved*:
    those rows are left out and the report counts them by source. Any other critical finding
    (rows breaking the contract wholesale, an unlawful feature, an extreme disparity of the
    labels) blocks: no quarantine makes such data fit to learn from.
Model gate
    :func:`~tabguard.model_audit.audit_model` of the challenger and of the champion on the
    same reference rows. A critical finding of the challenger that the champion does not have
    (same check and features; same case for unacceptable cases) blocks; one the champion has too
    is reported as *inherited* (``strict`` blocks on those as well); so is a new trigger whose
    cell holds (almost) only the parent's rows (< 20 % weighted loop rows: not planted through
    the loop, a refit drew a rare cell differently). A new trigger towards
    denial whose cell holds mostly exploit attempts with unfavourable outcomes is the hardening
    the retrain was for (the probed region now gets the decision the outcomes call for): it is
    reported as *learnt from exploits*, not blocked. A planted trigger seeks approvals, or hides
    among ordinary requests, and still blocks; the data gate quarantines rule-style triggers
    whatever their source before training.
Performance gate
    The challenger's AUC on the recent holdout must not fall below the lower bound of the
    champion's 95% bootstrap interval (skipped, and said so, when the holdout has fewer than
    ``min_holdout`` rows or one class).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from tabguard.contract import Contract
    from tabguard.reports import Finding
    from tabguard.retraining._assemble import LoopData


@dataclass
class GateResult:
    """The verdict of one gate.

    Attributes
    ----------
    gate : str
        ``data``, ``model`` or ``performance``.
    passed : bool
    blocking : list of str
        One line per finding that blocks, ``[check] message``.
    resolved : list of dict
        What the gate handled without blocking (quarantined triggers, inherited findings).
    detail : dict
        Counts and numbers behind the verdict.
    """

    gate: str
    passed: bool
    blocking: list[str] = field(default_factory=list)
    resolved: list[dict[str, Any]] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "gate": self.gate,
            "passed": self.passed,
            "blocking": list(self.blocking),
            "resolved": list(self.resolved),
            "detail": self.detail,
        }


def _line(f: Finding) -> str:
    where = ""
    if f.features:
        vals = ", ".join(f"{k}={v}" for k, v in zip(f.features, f.values, strict=False))
        where = f" ({vals or ', '.join(f.features)})"
    return f"[{f.check}]{where} {f.message}"


def _by_source(rows: Sequence[int], meta: pd.DataFrame) -> dict[str, int]:
    if not len(rows):
        return {}
    part = meta.iloc[np.asarray(rows, dtype=int)]
    labels = [
        f"{s}:{e}" if e else str(s)
        for s, e in zip(part["source"], part["exploit"].fillna(""), strict=True)
    ]
    return dict(Counter(labels))


def one_application(rows: set[int], meta: pd.DataFrame) -> str | None:
    """``client/subject`` when every row is a logged exploit attempt of one client about one
    subject (the variants of one probed application), else ``None``."""
    part = meta.iloc[sorted(rows)]
    if not len(part) or (part["source"] != "logged").any():
        return None
    if (part["exploit"].fillna("").astype(str) == "").any():
        return None
    groups = set(zip(part["client"], part["subject_id"], strict=True))
    if len(groups) != 1:
        return None
    client, subject = next(iter(groups))
    return f"{client}/{subject}"


def data_gate(
    loop: LoopData,
    contract: Contract,
    *,
    checks: Sequence[str] | None,
    quarantine_checks: Sequence[str],
    random_state: int = 0,
    options: dict[str, Any] | None = None,
) -> tuple[np.ndarray, GateResult, Any]:
    """Audit the combined set; return the mask of rows to learn from, the verdict, the audit.

    A critical finding whose rows are all the exploit attempts of one client about one subject
    (an attacker's variants of one application: they share every value it did not change and
    carry its one true outcome) is resolved without quarantine, and exploit attempts quarantined
    for lesser reasons (label-noise suspects, near-duplicates) are kept: they are what the
    retrain must learn from. Exploit rows that a critical finding spanning several subjects
    names stay quarantined.

    Returns
    -------
    keep : ndarray of bool
        Rows of ``loop.frame`` that were not quarantined.
    result : GateResult
    audit : DataAuditResult
    """
    from tabguard.data_audit import ROW_COLUMN, audit_data

    audit = audit_data(
        loop.frame,
        contract,
        checks=list(checks) if checks is not None else None,
        random_state=random_state,
        options=options,
        source="retrain: base + matured requests + exploit attempts",
    )
    quarantined = audit.quarantine[ROW_COLUMN].to_numpy(dtype=int)
    keep = np.ones(len(loop.frame), dtype=bool)
    keep[quarantined] = False
    qset = set(quarantined.tolist())
    blocking, resolved = [], []
    others: set[int] = set()  # rows of critical findings that are not one application's variants
    for f in audit.report.findings:
        rows = set(f.rows)
        if f.severity != "critical":
            continue
        if f.check in quarantine_checks and rows and rows <= qset:
            item = {
                "check": f.check,
                "features": list(f.features),
                "values": [str(v) for v in f.values],
                "message": f.message,
                "rows": len(rows),
                "rows_by_source": _by_source(sorted(rows), loop.meta),
            }
            application = one_application(rows, loop.meta)
            if application is not None:
                item["kept"] = True
                item["application"] = application
            else:
                others |= rows
            resolved.append(item)
        else:
            others |= rows
            blocking.append(_line(f))
    # An attacker's variants of one application share every value it did not change and carry
    # its one true outcome: the signature of a trigger (one application's variants), of
    # near-duplicates and of label noise (a label the features contradict) all at once. They
    # are what the retrain must learn from: exploit rows leave quarantine unless a critical
    # finding spanning several subjects (a possible planted trigger) names them.
    exploit_rows = set(np.flatnonzero(loop.is_exploit()).tolist())
    for row in (qset & exploit_rows) - others:
        keep[row] = True
        qset.discard(row)
    detail = {
        "rows": len(loop.frame),
        "quarantined": len(qset),
        "quarantined_by_source": _by_source(sorted(qset), loop.meta),
        "severity_counts": audit.report.counts(),
    }
    return keep, GateResult("data", not blocking, blocking, resolved, detail), audit


def _key(f: Finding) -> tuple[str, ...]:
    if f.check == "unacceptable_case":
        return (f.check, str(f.evidence.get("case")))
    return (f.check, *sorted(f.features))


def in_cell(frame: pd.DataFrame, features: Sequence[str], intervals: Sequence[Any]) -> np.ndarray:
    """Rows of ``frame`` inside a backdoor finding's cell (``(low, high]``, or the value)."""
    mask = np.ones(len(frame), dtype=bool)
    for name, (lo, hi) in zip(features, intervals, strict=True):
        x = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
        mask &= (x == lo) if lo == hi else (x > lo) & (x <= hi)
    return mask


def learnt_from_exploits(
    f: Finding, learnt: pd.DataFrame | None, contract: Contract, *, min_share: float = 0.5
) -> int:
    """Exploit rows that explain a backdoor finding (0: not explained by them).

    A new trigger towards the unfavourable decision is what learning from exploits looks like:
    the region the attackers probed now leads to the decision their true outcomes call for. It
    is explained when exploit attempts carry at least ``min_share`` of the (weighted) training
    rows in the cell and most of them have the unfavourable label. ``learnt`` holds the rows the
    challenger trained on with ``weight``, ``exploit`` (bool) and the label.
    """
    unfavourable = "deny"  # the probe's direction; exploits seek approvals
    intervals = f.evidence.get("intervals")
    if (
        learnt is None
        or f.check != "model_backdoor"
        or f.evidence.get("direction") != unfavourable
        or not intervals
        or len(intervals) != len(f.features)
    ):
        return 0
    cell = in_cell(learnt, f.features, intervals)
    w = learnt["weight"].to_numpy(dtype=float)
    ex = learnt["exploit"].to_numpy(dtype=bool)
    if not (cell & ex).any():
        return 0
    bad = 1 if contract.decision.positive_means == "deny" else 0
    y = learnt[contract.label.column].to_numpy(dtype=int)
    share = w[cell & ex].sum() / w[cell].sum()
    bad_share = float(np.mean(y[cell & ex] == bad))
    return int((cell & ex).sum()) if share >= min_share and bad_share >= 0.5 else 0


def from_parent_data(
    f: Finding, learnt: pd.DataFrame | None, *, max_loop_share: float = 0.2
) -> int:
    """Training rows in a backdoor finding's cell when the loop added (almost) none of them.

    The retrain's model gate stops what the loop brings in. A cell whose (weighted) training
    rows come from the parent's data for at least ``1 - max_loop_share`` was not planted
    through the loop: the parent's data passed its own audit, and a refit may draw a rare cell
    of it differently (a dozen rows with one late-payment status). Returns the cell's rows then,
    else 0. ``learnt`` needs ``weight`` and ``source`` columns.
    """
    intervals = f.evidence.get("intervals")
    if (
        learnt is None
        or f.check != "model_backdoor"
        or "source" not in learnt.columns
        or not intervals
        or len(intervals) != len(f.features)
    ):
        return 0
    cell = in_cell(learnt, f.features, intervals)
    if not cell.any():
        return 0
    w = learnt["weight"].to_numpy(dtype=float)
    loop = learnt["source"].to_numpy(dtype=object) != "base"
    share = w[cell & loop].sum() / w[cell].sum()
    return int(cell.sum()) if share < max_loop_share else 0


def model_gate(
    challenger: Any,
    champion: Any,
    reference: pd.DataFrame,
    contract: Contract,
    *,
    threshold: float,
    checks: Sequence[str],
    strict: bool = False,
    random_state: int = 0,
    learnt: pd.DataFrame | None = None,
) -> tuple[GateResult, dict[str, Any]]:
    """Audit challenger and champion on the same rows; new critical findings block.

    ``learnt`` (the challenger's training rows with ``weight``, ``exploit`` and ``source``) lets
    a new trigger towards denial that the exploit attempts explain pass as the intended
    hardening (:func:`learnt_from_exploits`), and a new trigger in a cell the loop added (almost)
    no rows to pass as not planted through the loop (:func:`from_parent_data`; ``strict``
    blocks it); both are reported, never silent.

    Returns
    -------
    result : GateResult
    reports : dict
        ``{"challenger": Report, "champion": Report}``.
    """
    from tabguard.model_audit import audit_model

    kw: dict[str, Any] = {
        "contract": contract,
        "threshold": threshold,
        "checks": list(checks),
        "random_state": random_state,
    }
    new = audit_model(challenger, reference, **kw).report
    old = audit_model(champion, reference, **kw).report
    old_keys = {_key(f) for f in old.findings if f.severity == "critical"}
    blocking, resolved = [], []
    for f in new.findings:
        if f.severity != "critical":
            continue
        explained = learnt_from_exploits(f, learnt, contract)
        parental = from_parent_data(f, learnt) if not explained else 0
        if _key(f) in old_keys and not strict:
            resolved.append({"check": f.check, "inherited": True, "message": f.message})
        elif explained:
            resolved.append(
                {"check": f.check, "learnt_from_exploits": explained, "message": f.message}
            )
        elif parental and not strict:
            resolved.append({"check": f.check, "from_parent_data": parental, "message": f.message})
        else:
            blocking.append(_line(f))
    detail = {
        "checks": list(checks),
        "reference_rows": len(reference),
        "challenger": new.counts(),
        "champion": old.counts(),
        "backdoors_named": [
            {"features": f.features, "values": [str(v) for v in f.values]}
            for f in new.findings
            if f.check == "model_backdoor"
        ],
    }
    return GateResult("model", not blocking, blocking, resolved, detail), {
        "challenger": new,
        "champion": old,
    }


def performance_gate(comparison: dict[str, Any], *, min_holdout: int) -> GateResult:
    """Block when the challenger's holdout AUC is below the champion's 95% lower bound."""
    hold = comparison.get("holdout") or {}
    n = int(hold.get("rows", 0))
    champ, chall = hold.get("champion", {}).get("auc"), hold.get("challenger", {}).get("auc")
    if n < min_holdout or champ is None or chall is None or champ.get("value") is None:
        return GateResult(
            "performance",
            True,
            detail={"skipped": f"recent holdout of {n} row(s): fewer than {min_holdout} or one "
                    "class, so no AUC comparison"},
        )  # fmt: skip
    low = float(champ["ci_low"])
    value = float(chall["value"])
    detail = {"champion_auc": champ, "challenger_auc": chall, "rows": n}
    if value < low:
        msg = (
            f"[holdout_auc] the challenger's AUC on the {n} most recent matured requests is "
            f"{value:.4f}, below the champion's 95% interval [{low:.4f}, "
            f"{float(champ['ci_high']):.4f}]"
        )
        return GateResult("performance", False, [msg], detail=detail)
    return GateResult("performance", True, detail=detail)
