"""Wording of RONI: one finding per suspect group and the comparison table."""

from __future__ import annotations

import math
from typing import Any

from tabguard.data_audit._base import CheckResult
from tabguard.data_audit._roni import RoniGroup, RoniOptions, helps
from tabguard.reports import Finding, Section, Table

CHECK = "roni"


def roni_report(groups: list[RoniGroup], opts: RoniOptions | None = None) -> CheckResult:
    """A warning per confirmed group, an info per other group, and the table."""
    opts = opts or RoniOptions()
    res = CheckResult()
    table = []
    for g in groups:
        ev: dict[str, Any] = {
            "rows": len(g.rows),
            "logloss_increase": g.gain,
            "logloss_se": g.se,
            "auc_with": g.auc_with,
            "auc_without": g.auc_without,
        }
        if not math.isnan(g.response_with):
            ev.update(
                {
                    "trigger_response_with": g.response_with,
                    "trigger_response_without": g.response_without,
                }
            )
        ev["confirmed"] = g.confirmed
        msg = (
            f"RONI {g.description}: removing these rows changes held-out log loss by "
            f"{-g.gain:+.4f} (± {g.se:.4f}) and AUC {g.auc_with:.3f} → {g.auc_without:.3f}"
        )
        if g.is_trigger:
            msg += (
                f"; the trigger flips {g.response_with:.1%} of held-out decisions towards its "
                f"label, {g.response_without:.1%} once they are removed"
            )
        helpful = helps(g.gain, g.se, opts)
        ev["rows_help_heldout"] = helpful
        if g.confirmed and helpful:
            # the response says "backdoor", the loss "natural predictor" (or held-out copies of
            # the group's own rows): say both, not "negative impact" while removal costs AUC
            msg += (
                ". Confirmed by the trigger response alone: the rows also help the held-out "
                "predictions, as a natural predictor's rows do (or copies of them among the "
                "held-out rows); review whether the value is a natural cause of the label."
            )
        elif g.confirmed:
            msg += ". Negative impact confirmed."
        elif helpful:
            # a loss that worsens by many standard errors is not "no impact": the rows help
            msg += ". The rows help the held-out predictions: no sign of a negative impact."
        else:
            msg += ". No measurable impact."
        res.findings.append(
            Finding(
                check=CHECK,
                severity="warning" if g.confirmed else "info",
                message=msg,
                features=g.features,
                values=g.values,
                evidence=ev,
            )
        )
        resp = (
            "-"
            if math.isnan(g.response_with)
            else f"{g.response_with:.1%} → {g.response_without:.1%}"
        )
        table.append(
            [
                g.description,
                len(g.rows),
                f"{-g.gain:+.4f}",
                f"{g.auc_with:.3f} → {g.auc_without:.3f}",
                resp,
                "yes" if g.confirmed else "no",
            ]
        )
    res.sections.append(
        Section(
            title="RONI confirmation (D3)",
            text=[
                "Each suspect group is removed from the same training rows; the table shows "
                "what that does on held-out rows drawn from all rows."
            ],
            tables=[
                Table(
                    columns=[
                        "group",
                        "rows",
                        "Δ log loss when removed",
                        "AUC with → without",
                        "trigger response with → without",
                        "confirmed",
                    ],
                    rows=table,
                )
            ],
        )
    )
    res.summary = {"groups": len(groups)}
    return res
