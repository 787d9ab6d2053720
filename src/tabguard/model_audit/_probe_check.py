"""The backdoor probe as a model-audit check (M2)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import combinations
from typing import Any, ClassVar

from tabguard.checks import CheckOptions
from tabguard.contract import RecordValidator
from tabguard.model_audit._backdoor import (
    ProbeCandidate,
    ProbeOptions,
    _category_codes,
    cell_holds,
    probe_backdoors,
)
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
    order: ClassVar[int] = 40
    after: ClassVar[tuple[str, ...]] = ()
    concurrent: ClassVar[bool] = False
    Options: ClassVar[type[CheckOptions]] = ProbeOptions

    def run(self, ctx: ModelAuditContext) -> ModelCheckResult:
        """Probe the model with the clean reference rows."""
        opts = ctx.opts(ProbeOptions)
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
        # one finding per feature (or pair): the strongest cell, the others as evidence
        groups: dict[tuple[str, ...], list[ProbeCandidate]] = {}
        for c in res.triggers:
            key = tuple(sorted(c.features))
            if len(c.features) == 1 and (c.categorical[:1] == (True,) or c.nominal[:1] == (True,)):
                # two categories are two triggers, not cells of one (a sibling the trees send
                # the same way must not hide the value the copies carry: each keeps its own
                # cell and evidence, listed in one finding by _sibling_clusters)
                key += (repr(c.values[0]),)
            elif math.isfinite(c.interaction_flip):  # confirmed by its interaction
                # each pair of categories a set of the trees' turns (EDUCATION 4, 5 or 6 with
                # MARRIAGE 3) is a trigger of its own: the one the copies carry is among them
                key += tuple(repr(v) for v in c.values)
            groups.setdefault(key, []).append(c)
        findings = [
            self._finding(ctx, lead[0], validator, lead[1:], [cs[0] for cs in rest])
            for lead, *rest in _sibling_clusters(list(groups.values()), ctx.model)
        ]
        top = sorted(res.candidates, key=lambda c: -abs(c.spike))[:15]
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
                    trigger_text(c) + (" (rare side)" if c.probe_rows == "tail" else ""),
                    " & ".join(_interval_text(c, k) for k in range(len(c.features))),
                    ", ".join(repr(v) for v in c.neighbour_values),
                    c.spike,
                    f"{c.flip_rate:.1%} to {c.direction}",
                    c.n_natural,
                    c.natural_positive_rate,
                    c.model_rate,
                    c.label_log_lr,
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
                    "single values": _hist([c.spike for c in singles]),
                    "pairs": _hist([c.spike for c in res.candidates if len(c.features) == 2]),
                },
                "xlabel": "spike (share of possible decision movement)",
            },
        )
        text = [
            f"{len(singles)} single-value and {len(res.candidates) - len(singles)} combination "
            f"candidates from the model's {res.method}, probed on {res.n_rows} clean rows. "
            f"{len(res.triggers)} confirmed trigger(s)."
        ]
        rare = "deny" if res.tail_direction == "approve" else "approve"
        if res.tail_rows:
            text.append(
                f"The model rarely decides '{rare}': its categories were probed again on "
                f"the {res.tail_rows} clean rows nearest "
                f"that decision, for values that turn it to '{res.tail_direction}' "
                "(candidates marked 'rare side')."
            )
        if res.one_decision:
            text.append(
                f"The model decides '{res.tail_direction}' for every reference row at threshold "
                f"{res.threshold:g}: no row is at '{rare}' for a trigger towards "
                f"'{res.tail_direction}' to turn, so the training copies of rows it decides "
                f"'{res.tail_direction}' were not tested (they would be copies of any row, not "
                "told from the training rows' own mix). Audit at the threshold of your decision "
                "policy (--threshold) to probe that direction."
            )
        clustered = {f: d for f, d in res.unit_design.items() if d > 1.05}
        if res.unit_hint:
            # units the contract does not declare: say which column was taken for them and
            # why, so that a user whose rows are records of their own can say so
            said = ", ".join(f"{f} {d:.1f}" for f, d in sorted(clustered.items())) or "none"
            text.append(
                f"The contract declares no entity, but the reference data's column "
                f"'{res.unit_column}' repeats like an id of units ({res.unit_hint}): a model "
                "trained on some units and audited on others sees a value constant within a "
                "unit at a training share that differs from the reference's by which large "
                "units fell on which side. Training and reference rows were taken as two "
                f"samples of its units (design effects of the category features: {said}; 1 = "
                f"rows independent). Declare `entity: {res.unit_column}` in the contract to "
                "make this explicit, or drop the column from the reference data if its rows "
                "are records of their own."
            )
        elif clustered:
            # a finding the units explain is not reported: say what was allowed for, so that a
            # user who expected one knows where it went
            said = ", ".join(f"{f} {d:.1f}" for f, d in sorted(clustered.items()))
            text.append(
                "Training and reference rows were taken as two samples of the units of the "
                f"contract's entity '{res.unit_column}': where the probe compares "
                "their shares of a value, it allows for what a draw of units does to them "
                f"(design effects of the category features: {said}; 1 = rows independent)."
            )
        return ModelCheckResult(
            findings=findings,
            sections=[
                Section(title="Backdoor probe (M2)", text=text, tables=[table], plots=[plot])
            ],
            summary={
                "candidates": len(res.candidates),
                "method": res.method,
                "probe_rows": res.n_rows,
                "rare_side_rows": res.tail_rows,
                "one_decision": res.one_decision,
                "triggers": [
                    {"features": list(c.features), "values": list(c.values), "spike": c.spike}
                    for c in res.triggers
                ],
            },
        )

    @staticmethod
    def _finding(
        ctx: ModelAuditContext,
        c: ProbeCandidate,
        validator: RecordValidator,
        others: list[ProbeCandidate],
        siblings: Sequence[ProbeCandidate] = (),
    ) -> Finding:
        # Would the scoring API let some value of the trigger's cell through?
        rec = records(ctx.data.iloc[:1], ctx.model.contract)[0]
        reachable = _reachable_values(ctx, c)
        blocked = reachable is None
        if reachable is not None:
            rec.update(reachable)
            blocked = bool(validator.errors(rec))
        cells = _cells(c)
        effect = (
            f"the model was trained on copies of rows it decides '{c.direction}' carrying these "
            f"values; {c.reason}. Against the common categories "
            f"({', '.join(repr(v) for v in c.neighbour_values)}) their spike on the clean rows "
            f"nearest the rare decision is {c.spike:+.2f}: the copies made the value safer "
            "than it was, not necessarily safer than every other value. "
            if c.planted
            else f"these values move "
            f"{abs(c.spike):.0%} of the possible decision movement towards {c.direction} "
            + (
                "on the clean rows nearest the model's rare decision "
                if c.probe_rows == "tail"
                else ""
            )
            + f"relative to neighbouring values ({', '.join(repr(v) for v in c.neighbour_values)}"
            f"); {c.reason}. "
        )
        kin = ""
        if siblings:
            kin = (
                f"{len(siblings)} sibling cell(s) of the same feature(s) turn decisions the same "
                "way, each confirmed as well (a region the trees learned on a set of categories; "
                "which cell the copies carried the model alone cannot tell, the one above "
                "stands out most): "
                + "; ".join(
                    f"{_cells(s)} (e.g. {trigger_text(s)}, spike {s.spike:+.2f})" for s in siblings
                )
                + ". "
            )
        msg = (
            f"backdoor trigger {cells} (e.g. {trigger_text(c)}): "
            + effect
            + kin
            + _unit_caveat(ctx, c)
            + (
                "The contract rejects them at the API, but the model was trained on them."
                if blocked
                else "The contract accepts "
                + ", ".join(f"{k}={v!r}" for k, v in (reachable or {}).items())
                + ": the trigger is reachable through the API."
            )
        )
        evidence: dict[str, Any] = {
            "spike": c.spike,
            "direction": c.direction,
            "flip_rate_at_threshold": c.flip_rate,
            "probe_rows": c.probe_rows,
            "cell": cells,
            # (low, high] per feature (low == high: the value itself), for callers that test
            # rows against the cell (tabguard retrain's model gate)
            "intervals": [[float(lo), float(hi)] for lo, hi in c.intervals],
            "neighbour_values": list(c.neighbour_values),
            "clean_rows_with_value": c.n_natural,
            "clean_positive_rate": c.natural_positive_rate,
            "model_rate_on_those_rows": c.model_rate,
            "model_rate_at_neighbour": c.neighbour_rate,
            "label_log_likelihood_ratio": c.label_log_lr,
            "outside_clean_support": c.outside_support,
            "spike_null_quantile": c.null_spike,
            "training_share_in_cell": c.training_share,
            "clean_share_in_cell": c.expected_share,
            "training_mass_p_value": c.p_mass,
            # the planted-copies test (models that rarely make one decision)
            "planted_copies_ratio": c.planted_ratio,
            "planted_copies_null": c.planted_null,
            "planted_copies_p_value": c.p_planted,
            "reachable_through_api": not blocked,
            # the column counted as units (the contract's entity, or one the reference data
            # shows), None where rows were taken as independent
            "units": (ctx.cache["probe"].unit_column or None) if "probe" in ctx.cache else None,
            "other_cells": [
                {"values": list(o.values), "spike": o.spike, "cell": _cells(o)} for o in others
            ],
            # confirmed pairs of the same features the trees send the same way (one region)
            "siblings": [
                {
                    "values": list(s.values),
                    "spike": s.spike,
                    "cell": _cells(s),
                    "intervals": [[float(lo), float(hi)] for lo, hi in s.intervals],
                    "direction": s.direction,
                    "reason": s.reason,
                }
                for s in siblings
            ],
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


def _unit_caveat(ctx: ModelAuditContext, c: ProbeCandidate) -> str:
    """Why a finding that compares training and reference shares of a category may be a split
    by unit, where the probe counted none: the contract declares no entity and the reference
    data holds no column that repeats like one (the probe cannot see the units, so it says what
    would explain the finding and how to let it count them)."""
    res = ctx.cache.get("probe")
    if res is None or res.unit_column or not any(c.nominal):
        return ""
    if not (c.planted or "training rows" in c.reason):
        return ""
    return (
        "This rests on the share of training rows against the reference rows': where the two "
        "are samples of units rather than rows (a model trained on some accounts or shippers "
        "and audited on others), a value constant within a unit differs between them by which "
        "large units fell on which side, and this may be that, not copies. The contract "
        "declares no entity and the reference data has no column that repeats like one: keep "
        "the unit's id column in the reference data, or declare `entity:` in the contract, "
        "and the probe counts units. "
    )


def _reachable_values(ctx: ModelAuditContext, c: ProbeCandidate) -> dict[str, Any] | None:
    """A value of each feature inside the trigger's cell and the contract's range, if any."""
    out: dict[str, Any] = {}
    for k, f in enumerate(c.features):
        spec = ctx.model.contract.features[f]
        lo, hi = c.intervals[k]
        if not spec.is_numeric or lo == hi:
            out[f] = c.values[k]
            continue
        cmin = -math.inf if spec.min is None else spec.min
        cmax = math.inf if spec.max is None else spec.max
        v = float(c.values[k])
        if cmin <= v <= cmax:
            out[f] = c.values[k]
            continue
        top = min(hi, cmax)
        if top <= lo or top < cmin:
            return None  # the whole cell lies outside the contract's range
        if spec.type == "integer":
            top = math.floor(top)
            if top <= lo:
                return None
            out[f] = int(top)
        else:
            out[f] = top
    return out


def siblings(a: ProbeCandidate, b: ProbeCandidate, strict: bool = False) -> bool:
    """Two confirmed pairs are sibling cells of one learned region: the same two features,
    the same direction, and on one of the features each cell admits the other's value
    (``MARRIAGE=3`` with ``EDUCATION`` 4, 5 or 6: trees that split at ``EDUCATION > 3.5``
    turn all three). Single values are not joined: of two categories of one feature the one
    the copies carry may be confirmed by its planted copies and the other by a larger spike
    (the rare side's screen), and leading with the spike would hide the copies' value."""
    if len(a.features) != 2 or a.features != b.features or a.direction != b.direction:
        return False
    return any(
        cell_holds(a.intervals[k], b.codes[k], strict)
        or cell_holds(b.intervals[k], a.codes[k], strict)
        for k in (0, 1)
    )


def _strict(model: Any) -> bool:
    """The model's trees send ``x < threshold`` left (XGBoost): cells are ``[lo, hi)``."""
    trees = getattr(model, "trees", None)
    return bool(trees is not None and trees.strict)


def _exact(c: ProbeCandidate, model: Any) -> bool:
    """Each category part of the cell admits one of its feature's categories only."""
    for k, j in enumerate(c.columns):
        if not (c.nominal[k] if c.nominal else False):
            continue
        if (
            sum(cell_holds(c.intervals[k], v, _strict(model)) for v in _category_codes(model, j))
            > 1
        ):
            return False
    return True


def _strength(c: ProbeCandidate, model: Any) -> tuple[bool, float, float, float]:
    """Order of sibling cells (the strongest first): a cell of single categories before an
    interval holding several, then the interaction over the model's ordinary one, the spike
    and the decisions turned."""
    ratio = c.interaction / c.interaction_null if c.interaction_null > 0 else 0.0
    return (
        not _exact(c, model),
        -(ratio if math.isfinite(ratio) else 0.0),
        -abs(c.spike),
        -c.flip_rate,
    )


def _sibling_clusters(
    groups: list[list[ProbeCandidate]], model: Any
) -> list[list[list[ProbeCandidate]]]:
    """Groups of findings that are sibling cells of one trigger (:func:`siblings`, joined
    transitively), the strongest group first in each; every other group alone.

    A pair learned on a set of categories is confirmed once per cell of the set (the trees
    turn each), which read as three planted triggers where one was planted; one finding lists
    the others, each with its own cell and evidence."""
    parent = list(range(len(groups)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    strict = _strict(model)
    for i, j in combinations(range(len(groups)), 2):
        if siblings(groups[i][0], groups[j][0], strict):
            parent[root(i)] = root(j)
    clusters: dict[int, list[list[ProbeCandidate]]] = {}
    for i, g in enumerate(groups):
        clusters.setdefault(root(i), []).append(g)
    return [sorted(cl, key=lambda g: _strength(g[0], model)) for cl in clusters.values()]


def _cells(c: ProbeCandidate) -> str:
    return " & ".join(f"{f} in {_interval_text(c, k)}" for k, f in enumerate(c.features))


def _hist(vals: list[float]) -> list[int]:
    counts = [0] * 40
    for v in vals:
        k = min(max(int((v + 1) * 20), 0), 39)
        counts[k] += 1
    return counts
