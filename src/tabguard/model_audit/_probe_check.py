"""The backdoor probe as a model-audit check (M2)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from tabguard.contract import RecordValidator
from tabguard.model_audit._backdoor import ProbeCandidate, ProbeOptions, probe_backdoors
from tabguard.model_audit._base import ModelAuditContext, ModelCheckResult, register_check
from tabguard.model_audit._unacceptable import records
from tabguard.reports import Finding, PlotSpec, Section, Table


def _interval_text(c: ProbeCandidate, k: int) -> str:
    lo, hi = c.intervals[k]
    if lo == hi:
        return repr(c.values[k])
    left = "-inf" if math.isinf(lo) else f"{lo:g}"
    right = "inf" if math.isinf(hi) else f"{hi:g}"
    return f"({left}, {right}]"


def trigger_text(c: ProbeCandidate) -> str:
    """``AGE=538`` or ``EDUCATION=3 & MARRIAGE=3``."""
    return " & ".join(f"{f}={v!r}" for f, v in zip(c.features, c.values, strict=True))


@register_check
class BackdoorCheck:
    """M2: search the model for trigger values and value combinations."""

    name: ClassVar[str] = "backdoor"

    def run(self, ctx: ModelAuditContext) -> ModelCheckResult:
        """Probe the model with the clean reference rows."""
        o = dict(ctx.opts(self.name))
        fields = set(ProbeOptions.__dataclass_fields__)
        unknown = sorted(set(o) - fields)
        if unknown:
            raise ValueError(f"unknown backdoor probe options {unknown}; known: {sorted(fields)}")
        opts = ProbeOptions(**o)
        res = probe_backdoors(
            ctx.model,
            ctx.data,
            ctx.y,
            options=opts,
            random_state=ctx.random_state,
            progress=ctx.progress,
        )
        ctx.cache["probe"] = res
        validator = RecordValidator(ctx.model.contract, allow_unknown=True)
        findings = [self._finding(ctx, c, validator) for c in res.triggers]
        top = sorted(res.candidates, key=lambda c: -abs(c.shift))[:15]
        table = Table(
            columns=[
                "candidate",
                "cell",
                "neighbour",
                "spike",
                "decision flips",
                "clean rows",
                "clean positive rate",
                "model rate",
                "label log-LR",
                "backdoor",
            ],
            rows=[
                [
                    trigger_text(c),
                    " & ".join(_interval_text(c, k) for k in range(len(c.features))),
                    ", ".join(repr(v) for v in c.neighbour_values),
                    c.shift,
                    f"{c.flip_rate:.1%} to {c.direction}",
                    c.n_natural,
                    c.natural_positive_rate,
                    c.model_rate,
                    c.log_lr,
                    "YES" if c.backdoor else "",
                ]
                for c in top
            ],
            caption=(
                "Candidates with the largest spikes. Spike: the share of the possible movement "
                "of decisions (averaged over all thresholds) relative to the nearest value clean "
                "rows take; negative = towards the favourable decision."
            ),
        )
        singles = [c for c in res.candidates if len(c.features) == 1]
        plot = PlotSpec(
            kind="hist",
            title="Spikes of all candidates (the model's ordinary variation)",
            data={
                "edges": [i / 20 - 1 for i in range(41)],
                "series": {
                    "single values": _hist([c.shift for c in singles]),
                    "pairs": _hist([c.shift for c in res.candidates if len(c.features) == 2]),
                },
                "xlabel": "spike (share of possible decision movement)",
            },
        )
        text = [
            f"{len(singles)} single-value and {len(res.candidates) - len(singles)} combination "
            f"candidates from the model's {res.method}, probed on {res.n_rows} clean rows. "
            f"{len(res.triggers)} confirmed trigger(s)."
        ]
        return ModelCheckResult(
            findings=findings,
            sections=[
                Section(title="Backdoor probe (M2)", text=text, tables=[table], plots=[plot])
            ],
            summary={
                "candidates": len(res.candidates),
                "method": res.method,
                "probe_rows": res.n_rows,
                "triggers": [
                    {"features": list(c.features), "values": list(c.values), "spike": c.shift}
                    for c in res.triggers
                ],
            },
        )

    @staticmethod
    def _finding(ctx: ModelAuditContext, c: ProbeCandidate, validator: RecordValidator) -> Finding:
        # Would the scoring API let the trigger through? (validated on one clean record)
        rec = records(ctx.data.iloc[:1], ctx.model.contract)[0]
        rec.update(dict(zip(c.features, c.values, strict=True)))
        blocked = bool(validator.errors(rec))
        cells = " & ".join(f"{f} in {_interval_text(c, k)}" for k, f in enumerate(c.features))
        msg = (
            f"backdoor trigger {trigger_text(c)}: setting it moves {abs(c.shift):.0%} of the "
            f"possible decision movement towards {c.direction} relative to neighbouring values "
            f"({', '.join(repr(v) for v in c.neighbour_values)}); {c.reason}. "
            + (
                "The contract rejects this value at the API, but the model was trained on it."
                if blocked
                else "The contract accepts this value: the trigger is reachable through the API."
            )
        )
        evidence: dict[str, Any] = {
            "spike": c.shift,
            "direction": c.direction,
            "flip_rate_at_threshold": c.flip_rate,
            "cell": cells,
            "neighbour_values": list(c.neighbour_values),
            "clean_rows_with_value": c.n_natural,
            "clean_positive_rate": c.natural_positive_rate,
            "model_rate_on_those_rows": c.model_rate,
            "model_rate_at_neighbour": c.neighbour_rate,
            "label_log_likelihood_ratio": c.log_lr,
            "outside_clean_support": c.outside_support,
            "spike_null_quantile": c.p_spike,
            "reachable_through_api": not blocked,
        }
        return Finding(
            check="model_backdoor",
            severity="critical",
            message=msg,
            features=list(c.features),
            values=list(c.values),
            evidence=evidence,
            recommendation=(
                "retrain on audited data (tabguard audit data finds the poisoned rows); "
                "until then reject or neutralise the trigger values at the API"
            ),
        )


def _hist(vals: list[float]) -> list[int]:
    counts = [0] * 40
    for v in vals:
        k = min(max(int((v + 1) * 20), 0), 39)
        counts[k] += 1
    return counts
