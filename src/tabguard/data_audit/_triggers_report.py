"""Wording of the trigger scan: findings, quarantine reasons, treatments and the report section.

The computation (:func:`~tabguard.data_audit._triggers.scan_triggers`) returns a
:class:`~tabguard.data_audit._triggers.TriggerScanResult`; this module turns it into what the
audit reports.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tabguard.data_audit._base import AuditContext, CheckResult, Treatment
from tabguard.data_audit._trigger_options import TriggerScanOptions
from tabguard.data_audit._trigger_rules import Pattern
from tabguard.data_audit._triggers import OUTLIER_RULE_ROWS, TriggerScanResult, condition
from tabguard.reports import Finding, PlotSpec, Section, Table

CHECK = "trigger_scan"


def trigger_scan_report(
    ctx: AuditContext, r: TriggerScanResult, opts: TriggerScanOptions
) -> CheckResult:
    """Findings (one critical per trigger, one info summary), quarantine, treatments, section."""
    res = CheckResult()
    for p, rows in zip(r.triggers, r.rows, strict=True):
        finding = _finding(ctx, r, p, rows)
        res.findings.append(finding)
        cond = condition(r.matrix, p, companions=True)
        reason = f"backdoor trigger {cond} -> {ctx.contract.label.column}="
        reason += repr(finding.evidence["label"])
        for row in rows:
            res.quarantine.setdefault(int(row), reason)
        res.treatments.append(
            Treatment(
                "quarantined",
                np.asarray(rows, dtype=np.int64),
                reason,
                CHECK,
                list(finding.features),
            )
        )
    for name, share in r.leaks.items():
        res.findings.append(
            Finding(
                check=CHECK,
                severity="warning",
                message=(
                    f"{name} alone determines the label: it explains {share:.1%} of the "
                    f"label's entropy (leave-one-out; trigger_scan.leak_information "
                    f"{opts.leak_information}). A feature that determines the label is a leak "
                    "(written from the outcome) or a definitional relation, not a backdoor "
                    "trigger: it was left out of the trigger scan and its context model. "
                    "Remove it from the model features, or raise leak_information to scan it."
                ),
                features=[name],
                evidence={"label_information": share, "threshold": opts.leak_information},
            )
        )
    if r.interpolated is not None:
        it = r.interpolated
        label = ctx.contract.label.column
        res.findings.append(
            Finding(
                check=CHECK,
                severity="warning",
                message=(
                    f"The rows with {label}={_label_value(ctx, it.label)!r} look oversampled "
                    f"by interpolation (SMOTE): {it.share:.0%} of them lie between two rows of "
                    f"that label on every numeric feature ({', '.join(it.features[:6])}"
                    f"{', ...' if len(it.features) > 6 else ''}), against {it.other_share:.1%} "
                    f"of the other label's rows (p {format_p(it.p_value)}). Interpolated rows "
                    "carry their label by construction, on values no record holds, so the "
                    "labels speak of the interpolation: no trigger was confirmed on labels "
                    "alone, only by copies or values that break the contract. Audit the data "
                    "before oversampling it."
                ),
                features=list(it.features),
                evidence={
                    "label": _label_value(ctx, it.label),
                    "between_share": it.share,
                    "between_share_other_label": it.other_share,
                    "rows_asked": it.tested,
                    "p_value": it.p_value,
                },
            )
        )
    for p in r.natural:
        res.findings.append(_natural_finding(ctx, r, p, opts))
    for p in r.leaning:
        res.findings.append(_leaning_finding(ctx, r, p, opts))
    suspects = r.suspects
    res.suspicious_rows = suspects
    res.findings.append(
        Finding(
            check=CHECK,
            severity="info",
            message=(
                f"Tested {sum(r.tests.values())} value patterns "
                f"({r.tests['contract']} contract-breaking, {r.tests['single']} single "
                f"values, {r.tests.get('band', 0)} value bands, {r.tests['pair']} value pairs) "
                "at a family-wise error rate of "
                f"{opts.alpha}; {len(r.triggers)} trigger(s) found."
            ),
            evidence={"tests": r.tests, "evaluated": len(r.evaluated), "alpha": opts.alpha},
        )
    )
    res.sections.append(_section(ctx, r, opts))
    res.summary = {
        "tests": r.tests,
        "evaluated": len(r.evaluated),
        "triggers": len(r.triggers),
        "suspicious_rows": len(suspects),
    }
    return res


def _leaning_finding(
    ctx: AuditContext, r: TriggerScanResult, p: Pattern, opts: TriggerScanOptions
) -> Finding:
    """A warning for a value that breaks the contract whose labels hint at a trigger, though
    no rule confirmed one (:attr:`TriggerScanResult.leaning`): what its labels show, and that
    its rows are quarantined by the integrity check, not by the scan."""
    m = r.matrix
    cells = list(zip(p.cols, p.codes, strict=True)) + list(p.companions)
    label_value = _label_value(ctx, p.label)
    label = ctx.contract.label.column
    cond = condition(m, p, companions=True)
    return Finding(
        check=CHECK,
        severity="warning",
        message=(
            f"{cond} breaks the contract and may be a backdoor trigger → {label}="
            f"{label_value!r}: {p.n} rows have it, {p.share:.1%} with that label (base rate "
            f"{r.base(p.label):.1%}; effect {p.effect:.2f}, p {format_p(p.p_label)}, at least "
            f"trigger_scan.copy_effect {opts.copy_effect} under hint_p_contract "
            f"{opts.hint_p_contract}). No rule confirmed it: its rows are not copies, and its "
            "labels alone are short of a trigger's. Its rows are quarantined by the integrity "
            "check. If the value is not a code your data may hold, find who wrote it into "
            "these rows before training on the rest; if it is, add it to the contract and "
            "audit again."
        ),
        features=[m.names[j] for j, _ in cells],
        values=[m.value(j, v) for j, v in cells],
        evidence={
            "label": label_value,
            "rows": p.n,
            "share": p.share,
            "effect": p.effect,
            "p_label": p.p_label,
        },
    )


def _natural_finding(
    ctx: AuditContext, r: TriggerScanResult, p: Pattern, opts: TriggerScanOptions
) -> Finding:
    """A warning for a single value withheld as a natural cause (:meth:`_Scanner.natural_cause`):
    what its labels show, why it is not taken for a write, and what would still hide there."""
    m = r.matrix
    j, v = p.cols[0], p.codes[0]
    label_value = _label_value(ctx, p.label)
    cond = condition(m, p, companions=True)
    label = ctx.contract.label.column
    return Finding(
        check=CHECK,
        severity="warning",
        message=(
            f"{cond} → {label}={label_value!r} is a strong predictor of its label, taken for a "
            f"natural cause, not a backdoor trigger: {p.n} rows have it, {p.share:.1%} with that "
            f"label (base rate {r.base(p.label):.1%}; effect {p.effect:.2f}, p "
            f"{format_p(p.p_label)}: labels alone would have named it). Its labels follow the "
            f"rest of the row (slope {p.follows_slope:.2f} on the context score, natural values "
            f"{p.follows_null:.2f}; p {format_p(p.p_follows)} that labels written into "
            f"{min(max(p.effect, 0.0), 1.0):.0%} of its rows would leave that much), and its "
            f"rows are not the label's rows (mean probability of the label without the value "
            f"{p.drawn_mean:.3f}, where rows drawn by their label would sit at "
            f"{p.drawn_expected:.3f}; p {format_p(p.p_drawn)}; trigger_scan.natural_p "
            f"{opts.natural_p}). Nothing is quarantined. A value whose prevalence rises with "
            "the label's probability as rows chosen by their label would is not told from such "
            "a write without trusted data: if the value could have been written, audit with "
            "--trusted on a vetted sample." + _units_guessed(r)
        ),
        features=[m.names[j]],
        values=[m.value(j, v)],
        evidence={
            "label": label_value,
            "rows": p.n,
            "effect": p.effect,
            "p_label": p.p_label,
            "label_slope": p.follows_slope,
            "natural_slope": p.follows_null,
            "p_follows": p.p_follows,
            "drawn_mean": p.drawn_mean,
            "drawn_expected": p.drawn_expected,
            "p_drawn": p.p_drawn,
            "guessed_units": _guessed_column(r),
        },
    )


def _guessed_column(r: TriggerScanResult) -> str | None:
    """The column counted as units where the contract declares no entity (a guess), for a
    finding's evidence; None where the contract declares one or no column repeats like one."""
    return None if r.guessed_units is None else r.guessed_units.column


def _units_guessed(r: TriggerScanResult) -> str:
    """The caveat of a finding counted by units the scan guessed (the contract declares no
    entity, a column it leaves out repeats like an id of units); empty otherwise."""
    u = r.guessed_units
    if u is None:
        return ""
    return (
        f" Counted by the units of {u.column!r}, a guess: the contract declares no entity, "
        f"and this column it leaves out repeats like an id of units ({u.summary()}), so each "
        "value's rows were counted as one unit of evidence. Declare `entity: "
        f"{u.column}` to make it explicit, or drop the column if its rows are records of "
        "their own."
    )


def _finding(ctx: AuditContext, r: TriggerScanResult, p: Pattern, rows: np.ndarray) -> Finding:
    m = r.matrix
    cells = list(zip(p.cols, p.codes, strict=True)) + list(p.companions)
    feats = [m.names[j] for j, _ in cells]
    vals: list[Any] = [m.value(j, v) for j, v in cells]
    if p.band is not None:  # the range, as a [low, high] pair
        vals[0] = [m.value(p.cols[0], p.band[0]), m.value(p.cols[0], p.band[1])]
    label_value = _label_value(ctx, p.label)
    cond = condition(m, p, companions=True).replace(" & ", " and ")
    broken = [m.names[j] for j, v in cells if m.breaks_contract[j][v]]
    msg = (
        f"Backdoor trigger suspected: {cond} → {ctx.contract.label.column}={label_value!r}. "
        f"{p.n} rows have it, {p.share:.1%} with that label (base rate "
        f"{r.base(p.label):.1%})"
    )
    # the rows the evidence was measured on: the pattern's own, or, for a pair named from a
    # flagged single value (its rows with the label sharing the other value), that value's -
    # counts of the value's rows must not read as the pair's
    n_measured, what = p.n, "these rows"
    if p.measured_on is not None:
        j, v = p.measured_on
        alone = f"{m.names[j]}={m.value(j, v)!r}"
        n_measured, what = p.measured_n, f"the {p.measured_n} rows of {alone}"
        msg += (
            f". It was found as {alone} alone ({p.measured_n} rows, "
            f"{p.measured_k / max(p.measured_n, 1):.1%} with that label), whose rows with "
            "that label mostly share the other value, and the evidence below is that value's"
        )
    msg += (
        f"; without the trigger the rest of {what} would give the other label to "
        f"{p.expected_other:.1f} of them"
        + (f" (estimated on {p.sample_size} scored rows)" if p.sample_size < n_measured else "")
        + f", observed {p.observed_other} (effect {p.effect:.2f})."
    )
    if p.units < 0.95 * n_measured:
        msg += (
            f" Repeated records count once: the {n_measured} rows are about {p.units:.0f} "
            "distinct records, and the counts above are per record."
        )
    if p.twin_share is not None:
        of = "its" if p.measured_on is None else "that value's"
        msg += (
            # measured on the rows with the label (the copies' side: _Scanner._twin_sets), not
            # on every row carrying the pattern, whose natural carriers need not be copies
            f" {p.twin_share:.0%} of {of} rows with "
            f"{ctx.contract.label.column}={label_value!r} are near-copies of rows without the "
            f"trigger (random rows: {p.twin_share_baseline:.1%})."
        )
    if p.hub_counts is not None:
        x, k, x_rest, k_rest = p.hub_counts
        hub = feats[0] if p.measured_on is None else m.names[p.measured_on[0]]
        msg += (
            f" It collects copies of rows elsewhere: {x} of its {k} rows with that label are "
            f"copies of rows with another value of {hub!r} that differ from them in nothing "
            f"else, against {x_rest} of the other values' {k_rest}, which hold the originals "
            f"(p {format_p(p.p)}): the copies keep the label their originals carry, so labels "
            "alone do not show them."
        )
    if p.relabel_counts is not None:
        flipped, twinned, expected = p.relabel_counts
        if p.relabelled_label == p.label:
            msg += (
                f" It holds copies relabelled against their originals: {len(rows)} of its rows "
                "equal a row elsewhere on every other feature (amounts within a few percent), "
                "the row of the other label but for copies camouflaged with their original's. "
                f"Of its {twinned:.0f} records with that label and a twin at another value of "
                f"{feats[0]!r}, {flipped:.0f} are paired with the other label"
            )
        else:
            # most copies keep their originals' label, the target; the relabelled ones are
            # their camouflage, and the test's counts are theirs
            other = _label_value(ctx, 1 - p.label)
            kept = int(np.count_nonzero(ctx.y[rows] == p.label))
            msg += (
                f" It holds copies of rows elsewhere: {len(rows)} of its rows equal a row "
                "elsewhere on every other feature (amounts within a few percent), "
                f"{kept} with that label, their original's, and {len(rows) - kept} camouflaged "
                f"with {ctx.contract.label.column}={other!r}, relabelled against it. Of its "
                f"{twinned:.0f} records with {ctx.contract.label.column}={other!r} and a twin "
                f"at another value of {feats[0]!r}, {flipped:.0f} are paired with the other "
                "label"
            )
        msg += (
            f", against {expected:.1f} expected from the labels of the twins' values "
            f"(p {format_p(p.p)}): the value's labels alone do not show them. Only these "
            "copies are suspects, not the value's natural rows nor the originals."
        )
    by_context = p.written and p.p_context <= p.context_threshold
    if by_context:
        null = (
            f"the rows of the amounts of {feats[0]!r} beside it: {p.context_null:.0%}"
            if p.context_beside
            else f"the other values of {feats[0]!r}: at most {p.context_null:.0%}"
        )
        msg += (
            f" Written in place: {min(p.context_share, 1.0):.0%} of these rows have the other "
            f"features of {p.context_source} ({null}; p {format_p(p.p_context)}); the rows "
            "whose other features predict the value, as its natural carriers', are not among "
            "the suspects."
        )
    by_slope = p.written and p.p_slope <= p.slope_threshold and not by_context
    by_outliers = (
        p.written and p.p_outlier <= p.outlier_threshold and not by_context and not by_slope
    )
    if by_outliers:
        msg += (
            f" Written in place into rows that had this label already: {p.outlier_n} of the "
            f"scored rows have the other features of the rows with "
            f"{ctx.contract.label.column}={label_value!r} rather than of the value's carriers, "
            f"and {p.outlier_k} of them carry that label where the rest of the row gives "
            f"{p.outlier_expected:.1f} (effect {p.outlier_effect:.2f}; log-odds shift "
            f"{p.outlier_shift:.2f} beyond the value's other rows, the feature's other values "
            f"at most {p.outlier_null:.2f}; p {format_p(p.p_outlier)}); the rows whose other "
            "features predict the value, as its natural carriers', are not among the suspects."
        )
    if by_slope:
        msg += (
            f" Written in place: the labels of these rows follow the rest of the row less than "
            f"natural values' do (slope of the label on the context model's score "
            f"{p.label_slope:.2f}, natural values {p.slope_null:.2f}; p {format_p(p.p_slope)}): "
            "rows given their label whatever their other features say; the rows whose other "
            "features predict the value, as its natural carriers', are not among the suspects."
        )
    if p.pieces:
        # the band's p-value is its best piece's (each piece was significant on its own),
        # while the counts above are the whole band's: say whose it is
        best = min(p.pieces, key=lambda t: t[2])
        named = ", ".join(
            f"{_piece(m, p.cols[0], lo, hi)} (p {format_p(q)})" for lo, hi, q in p.pieces
        )
        if p.pieces_are_hubs:
            msg += (
                " Named as one band from touching values that each collect copies (hub test "
                f"p-values: {named}), too few rows each for the copy test to confirm them one "
                "by one. The p-value below is the band's hub test, their copies pooled; its "
                f"labels give p {format_p(p.p_label)}."
            )
        else:
            msg += (
                f" Named as one band from values flagged on their own: {named}. The p-value "
                f"below is {_piece(m, p.cols[0], best[0], best[1])}'s; the band as a whole "
                f"gives p {format_p(p.p_label)} on its labels."
            )
    if broken:
        msg += f" The value(s) of {broken} break the contract."
    threshold = (
        p.context_threshold if by_context else p.outlier_threshold if by_outliers else p.threshold
    )
    msg += f" p {format_p(p.p)} (Bonferroni threshold {threshold:.2g})." + _units_guessed(r)
    return Finding(
        check=CHECK,
        severity="critical",
        message=msg,
        features=feats,
        values=vals,
        rows=[int(r) for r in rows],
        evidence={
            "label": label_value,
            "rows_with_pattern": p.n,
            "share_with_label": p.share,
            "base_rate": r.base(p.label),
            "counterfactual_rate": p.counterfactual_rate,
            "expected_other": p.expected_other,
            "observed_other": p.observed_other,
            "sample": p.sample_size,
            "distinct_records": p.units,
            "effect": p.effect,
            "p_label": p.p_label,
            "p_copies": p.p_twin,
            "copy_share": p.twin_share,
            "copy_share_random_rows": p.twin_share_baseline,
            "p_value": p.p,
            "bonferroni_threshold": threshold,
            "family": p.family,
            # a copy hub's copies and rows of the label, and the other values' (hub test)
            "hub_copies": None
            if p.hub_counts is None
            else dict(
                zip(("copies", "rows", "other_copies", "other_rows"), p.hub_counts, strict=True)
            ),
            # copies relabelled against their originals: records with a twin of the other
            # label, records with a twin, and those expected from the twins' values, and the
            # label those copies carry (the other where they are the target's camouflage)
            "relabelled_copies": None
            if p.relabel_counts is None or p.relabelled_label is None
            else dict(zip(("relabelled", "twinned", "expected"), p.relabel_counts, strict=True))
            | {"label": _label_value(ctx, p.relabelled_label)},
            # the single value the evidence above was measured on, for a pair named from it
            "measured_on": None
            if p.measured_on is None
            else {
                "feature": m.names[p.measured_on[0]],
                "value": m.value(*p.measured_on),
                "rows": p.measured_n,
                "rows_with_label": p.measured_k,
            },
            # a band joined from flagged pieces: each piece and its p-value (the band's
            # p-value is the best piece's)
            "pieces": [
                {"values": _piece_values(m, p.cols[0], lo, hi), "p_value": q}
                for lo, hi, q in p.pieces
            ]
            or None,
            "breaks_contract": bool(broken),
            "band": vals[0] if p.band is not None else None,
            "context_share": None if math.isnan(p.context_share) else p.context_share,
            "context_null": None if math.isnan(p.context_null) else p.context_null,
            "context_source": p.context_source or None,
            "p_context": p.p_context,
            "label_slope": None if math.isnan(p.label_slope) else p.label_slope,
            "label_slope_natural": None if math.isnan(p.slope_null) else p.slope_null,
            "p_slope": p.p_slope,
            "outlier_rows": p.outlier_n or None,
            "outlier_rows_with_label": p.outlier_k if p.outlier_n else None,
            "outlier_expected_with_label": None
            if math.isnan(p.outlier_expected)
            else p.outlier_expected,
            "outlier_shift": None if math.isnan(p.outlier_shift) else p.outlier_shift,
            "outlier_shift_natural": None if math.isnan(p.outlier_null) else p.outlier_null,
            "p_outliers": p.p_outlier,
            # the column counted as units where the contract declares no entity (a guess)
            "guessed_units": _guessed_column(r),
        },
        recommendation="Remove these rows (they are in quarantine.csv), find how they entered "
        "the data, and add the value to the contract's unacceptable cases.",
    )


def _piece_values(m: Any, j: int, lo: int, hi: int) -> Any:
    """A piece of a joined band: its value, or its [low, high] range."""
    return m.value(j, lo) if lo == hi else [m.value(j, lo), m.value(j, hi)]


def _piece(m: Any, j: int, lo: int, hi: int) -> str:
    """A piece of a joined band in words: ``ttme=45`` or ``ttme in [40, 42]``."""
    if lo == hi:
        return f"{m.names[j]}={m.value(j, lo)!r}"
    return f"{m.names[j]} in [{m.value(j, lo)!r}, {m.value(j, hi)!r}]"


def _section(ctx: AuditContext, r: TriggerScanResult, opts: TriggerScanOptions) -> Section:
    m = r.matrix
    evaluated, flagged = r.evaluated, r.triggers
    top = sorted(evaluated, key=lambda p: (not p.flagged, p.p))[:25]
    rows = []
    for p in top:
        cond = condition(m, p)
        rows.append(
            [
                cond,
                _label_value(ctx, p.label),
                p.n,
                f"{p.share:.1%}",
                f"{p.counterfactual_rate:.1%}",
                f"{p.effect:.2f}",
                "-" if p.twin_share is None else f"{p.twin_share:.0%}",
                f"{p.p:.2g}",
                "TRIGGER" if p.flagged else "",
            ]
        )
    plots = []
    if evaluated:
        plots.append(
            PlotSpec(
                kind="scatter",
                title="Candidate patterns: effect vs evidence",
                data={
                    "x": [max(p.effect, -1.0) for p in evaluated if not math.isnan(p.effect)],
                    "y": [
                        min(-math.log10(max(p.p, 1e-300)), 300)
                        for p in evaluated
                        if not math.isnan(p.effect)
                    ],
                    "xlabel": "effect (share of expected other-label rows missing)",
                    "ylabel": "-log10 p",
                    "size": 12,
                    "alpha": 0.7,
                },
                caption="Each dot is a tested value or value pair; triggers: top right.",
            )
        )
    return Section(
        title="Trigger scan (D3)",
        text=[
            "Every value and frequent value pair is tested for rows that carry one label far "
            "beyond what the rest of each row explains, with copies of other rows as extra "
            f"evidence. Family-wise error rate {opts.alpha}; {len(flagged)} trigger(s)."
            + _units_guessed(r),
            *(
                [
                    f"Values written into rows that had their label already (clean-label, "
                    f"shown by rows whose other features say another value) and spikes of "
                    f"amounts written in place (shown by rows unlike those of the amounts "
                    f"beside them) are looked for up to {OUTLIER_RULE_ROWS:,} rows only, for "
                    "their cost; audit a sample of the data to look for them."
                ]
                if ctx.n_rows > OUTLIER_RULE_ROWS
                else []
            ),
        ],
        tables=[
            Table(
                columns=[
                    "pattern",
                    "label",
                    "rows",
                    "share",
                    "expected share",
                    "effect",
                    "near-copies",
                    "p",
                    "",
                ],
                rows=rows,
            )
        ],
        plots=plots,
    )


def format_p(p: float) -> str:
    """``= 3.1e-05``, or ``< 1e-300`` where the value underflows."""
    return "< 1e-300" if p < 1e-300 else f"= {p:.2g}"


def _label_value(ctx: AuditContext, c: int) -> Any:
    lab = ctx.contract.label
    if c == 1:
        return lab.positive
    return lab.negative if lab.negative is not None else f"not {lab.positive!r}"
