"""Unit tests of the trigger scan's decision rule, one threshold at a time (both sides)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tabguard.data_audit._trigger_options import TriggerScanOptions
from tabguard.data_audit._trigger_rules import (
    Pattern,
    borrowed_written_evidence,
    copies_beyond_chance,
    copies_within_fdr,
    copy_decision,
    label_hint,
    leaning_the_other_way,
    natural_lean,
    neighbour_hint,
    retest_exclusions,
    strong_label_evidence,
    wants_copy_check,
    written_block,
    written_context_evidence,
    written_label_evidence,
)
from tabguard.data_audit._triggers import interaction_p, share_error

OPTS = TriggerScanOptions()


def pattern(**kw: Any) -> Pattern:
    """A single-value pattern with strong label evidence unless told otherwise."""
    base: dict[str, Any] = {
        "cols": (0,),
        "codes": (1,),
        "label": 1,
        "n": 100,
        "k": 100,
        "family": "single",
    }
    evidence = {
        "effect": 0.95,
        "excess": 0.95,
        "expected_other": 20.0,
        "p_label": 1e-12,
        "threshold": 1e-4,
        "p_twin": None,
        "twin_share": None,
        "twin_share_baseline": None,
    }
    for key in list(kw):
        if key in base:
            base[key] = kw.pop(key)
    evidence.update(kw)
    p = Pattern(**base)
    for key, v in evidence.items():
        setattr(p, key, v)
    return p


def test_strong_label_evidence_each_threshold() -> None:
    assert strong_label_evidence(pattern(), OPTS)
    assert strong_label_evidence(pattern(effect=OPTS.strong_effect), OPTS)
    assert not strong_label_evidence(pattern(effect=OPTS.strong_effect - 1e-9), OPTS)
    assert strong_label_evidence(pattern(expected_other=OPTS.min_expected_other), OPTS)
    assert not strong_label_evidence(pattern(expected_other=OPTS.min_expected_other - 0.1), OPTS)
    assert strong_label_evidence(pattern(p_label=1e-4, threshold=1e-4), OPTS)
    assert not strong_label_evidence(pattern(p_label=2e-4, threshold=1e-4), OPTS)


def test_written_label_evidence_each_threshold() -> None:
    """In-place camouflage: a large share of many expected other-label rows missing, without
    copies; a contract-breaking value: a label hint with a significant label test."""
    camo = {"effect": OPTS.camouflage_effect, "expected_other": OPTS.camouflage_expected}
    assert written_label_evidence(pattern(**camo), OPTS)
    assert not written_label_evidence(pattern(**{**camo, "effect": 0.59}), OPTS)
    assert not written_label_evidence(pattern(**{**camo, "expected_other": 29.0}), OPTS)
    assert not written_label_evidence(pattern(**camo, p_label=2e-4, threshold=1e-4), OPTS)
    # the expected count scaled from a sample: the effect must hold at its lower bound
    # (expected 300 +- 20: 0.61 measured is 1 - 0.39 * 300 / 260 = 0.55 at two errors)
    noisy = {"effect": 0.61, "expected_other": 300.0}
    assert written_label_evidence(pattern(**noisy), OPTS)
    assert not written_label_evidence(pattern(**noisy, expected_se=20.0), OPTS)
    assert written_label_evidence(pattern(**noisy, expected_se=20.0), replace(OPTS, camouflage_z=0))
    assert written_label_evidence(pattern(effect=0.8, expected_other=300.0, expected_se=20.0), OPTS)
    # contract-breaking: any label hint (here an excess in the other direction of the base)
    breaking = {"family": "contract", "effect": 0.08, "excess": 0.67, "expected_other": 1600.0}
    assert written_label_evidence(pattern(**breaking), OPTS)
    assert not written_label_evidence(pattern(**{**breaking, "excess": 0.19}), OPTS)
    assert not written_label_evidence(pattern(**breaking, p_label=2e-4, threshold=1e-4), OPTS)
    assert not written_label_evidence(pattern(**{**breaking, "family": "single"}), OPTS)


def test_label_hint_each_threshold() -> None:
    assert label_hint(pattern(effect=OPTS.copy_effect, excess=0.0, p_label=0.01), OPTS)
    assert label_hint(pattern(effect=0.0, excess=OPTS.copy_effect, p_label=0.01), OPTS)
    assert not label_hint(pattern(effect=0.19, excess=0.19, p_label=0.01), OPTS)
    # the label p-value cut: looser for contract-breaking values
    assert label_hint(pattern(effect=0.5, p_label=OPTS.hint_p), OPTS)
    assert not label_hint(pattern(effect=0.5, p_label=0.06), OPTS)
    assert label_hint(pattern(effect=0.5, p_label=0.06, family="contract"), OPTS)
    assert label_hint(pattern(effect=0.5, p_label=OPTS.hint_p_contract, family="contract"), OPTS)
    assert not label_hint(pattern(effect=0.5, p_label=0.21, family="contract"), OPTS)


def test_wants_copy_check_for_label_pure_patterns_without_a_hint() -> None:
    no_hint = {"effect": 0.0, "excess": 0.0, "p_label": 0.9}
    assert wants_copy_check(pattern(n=100, k=99, **no_hint), OPTS)  # share 0.99
    assert not wants_copy_check(pattern(n=100, k=98, **no_hint), OPTS)
    assert wants_copy_check(pattern(n=100, k=10, effect=0.3, p_label=0.01), OPTS)  # hint
    # a contract-breaking value always (camouflage: a share of its copies keep the other label)
    assert wants_copy_check(pattern(n=100, k=85, family="contract", **no_hint), OPTS)
    assert not wants_copy_check(pattern(n=100, k=85, **no_hint), OPTS)


@pytest.mark.parametrize(
    ("p_twin", "share", "baseline", "expected"),
    [
        (1e-3, 0.5, 0.0, True),  # every threshold met exactly
        (1.1e-3, 0.9, 0.0, False),  # copy test not significant
        (1e-9, 0.49, 0.0, False),  # too few copies
        (1e-9, 0.55, 0.45, False),  # look-alikes: (0.55-0.45)/0.55 = 0.18 beyond the baseline
        (1e-9, 0.71, 0.6, True),  # (0.71-0.6)/0.4 = 0.275 beyond the baseline
        (1e-9, 0.69, 0.6, False),  # 0.225
    ],
)
def test_copies_beyond_chance_each_threshold(
    p_twin: float, share: float, baseline: float, expected: bool
) -> None:
    assert copies_beyond_chance(p_twin, share, baseline, OPTS) is expected


def test_copy_decision_combines_label_and_copy_evidence() -> None:
    # a label hint (effect 0.3, p 0.01) and strong copies: Fisher's combination is significant
    p = pattern(
        effect=0.3, excess=0.3, p_label=0.01, p_twin=1e-12, twin_share=0.8, twin_share_baseline=0.02
    )
    pv, flagged = copy_decision(p, OPTS, base_rate=0.3)
    assert flagged and pv <= p.threshold
    # the same evidence without copies beyond chance is not a trigger
    pv2, flagged2 = copy_decision(dataclasses.replace(p, twin_share=0.3), OPTS, base_rate=0.3)
    assert not flagged2 and pv2 == pv
    # without a label hint the label side is the pattern's purity against the base rate
    pure = pattern(
        n=40,
        k=40,
        effect=0.0,
        excess=0.0,
        p_label=0.9,
        p_twin=1e-3,
        twin_share=0.9,
        twin_share_baseline=0.01,
    )
    pv3, flagged3 = copy_decision(pure, OPTS, base_rate=0.3)
    assert flagged3
    # where nearly every row has the label, purity is no evidence and weak copies do not suffice
    pv4, flagged4 = copy_decision(pure, OPTS, base_rate=0.99)
    assert not flagged4 and pv4 > pv3


def test_thresholds_are_options() -> None:
    p = pattern(effect=0.85)
    assert not strong_label_evidence(p, OPTS)
    assert strong_label_evidence(p, TriggerScanOptions(strong_effect=0.8))
    assert not copies_beyond_chance(1e-9, 0.4, 0.0, OPTS)
    assert copies_beyond_chance(1e-9, 0.4, 0.0, TriggerScanOptions(copy_share=0.4))


probability = st.floats(0.0, 1.0)


@given(
    effect=probability,
    bump=st.floats(0.0, 1.0),
    expected=st.floats(0.0, 100.0),
    p_label=st.floats(1e-300, 1.0),
    threshold=st.floats(1e-6, 1.0),
)
def test_strong_evidence_is_monotone_in_the_evidence(
    effect: float, bump: float, expected: float, p_label: float, threshold: float
) -> None:
    weaker = pattern(effect=effect, expected_other=expected, p_label=p_label, threshold=threshold)
    stronger = pattern(
        effect=min(1.0, effect + bump),
        expected_other=expected + bump,
        p_label=p_label * (1 - bump),
        threshold=threshold,
    )
    assert strong_label_evidence(stronger, OPTS) >= strong_label_evidence(weaker, OPTS)


@given(
    p_twin=st.floats(0.0, 1.0),
    share=probability,
    baseline=probability,
    more=st.floats(0.0, 1.0),
    less_base=st.floats(0.0, 1.0),
)
def test_copy_evidence_is_monotone(
    p_twin: float, share: float, baseline: float, more: float, less_base: float
) -> None:
    """More copies, a smaller baseline or a smaller p-value never turn copies into no copies."""
    before = copies_beyond_chance(p_twin, share, baseline, OPTS)
    after = copies_beyond_chance(
        p_twin * (1 - more), min(1.0, share + more * (1 - share)), baseline * (1 - less_base), OPTS
    )
    assert after >= before


@given(p_label=probability, effect=st.floats(-1.0, 1.0), excess=st.floats(-1.0, 1.0))
def test_contract_values_get_a_copy_check_whenever_in_contract_ones_do(
    p_label: float, effect: float, excess: float
) -> None:
    single = pattern(family="single", p_label=p_label, effect=effect, excess=excess)
    contract = pattern(family="contract", p_label=p_label, effect=effect, excess=excess)
    assert label_hint(contract, OPTS) >= label_hint(single, OPTS)
    assert not math.isnan(effect)


def test_camouflage_copies_are_taken_where_natural_look_alikes_stay_few() -> None:
    # 20 copies near their originals (0.001) and 980 natural rows; random rows' nearest
    # distances: 1 % under 0.05, the rest from 0.2 on. Within 0.05, 9.8 natural rows are
    # expected against the 25 rows there: too many; within 0.001, none: the 20 copies.
    d = np.r_[np.full(20, 0.001), np.full(5, 0.04), np.linspace(0.2, 1.0, 975)]
    null = np.sort(np.r_[np.full(3, 0.03), np.linspace(0.2, 1.0, 297)])
    taken = copies_within_fdr(d, null, 0.05, 0.05)
    assert taken.sum() == 20 and taken[:20].all()
    # a tolerance of 40 % takes the look-alikes too (9.8 <= 0.4 * 25)
    assert copies_within_fdr(d, null, 0.05, 0.4).sum() == 25
    # never beyond the radius
    assert copies_within_fdr(d, null, 0.0005, 0.4).sum() == 0


def test_camouflage_copies_none_when_every_radius_holds_mostly_natural_rows() -> None:
    d = np.linspace(0.0, 1.0, 1000)
    null = np.linspace(0.0, 1.0, 300)  # natural rows are spread like random rows
    assert copies_within_fdr(d, null, 0.1, 0.05).sum() == 0
    assert copies_within_fdr(d, np.empty(0), 0.1, 0.05).sum() == int((d <= 0.1).sum())


def test_written_single_sharing_a_feature_with_a_copied_pair_is_not_reported() -> None:
    written = pattern(cols=(1,), codes=(1,), written=True)
    copied_pair = pattern(cols=(0, 1), codes=(2, 0), written=False)
    elsewhere = pattern(cols=(0, 2), codes=(2, 0), written=False)
    written_pair = pattern(cols=(0, 1), codes=(2, 0), written=True)
    assert borrowed_written_evidence(written, [written, copied_pair])
    assert not borrowed_written_evidence(written, [written, elsewhere])  # no shared feature
    assert not borrowed_written_evidence(written, [written, written_pair])  # both in place
    # a pattern confirmed by copies is never dropped
    assert not borrowed_written_evidence(copied_pair, [copied_pair, written])


def test_written_context_evidence_each_side() -> None:
    """Written in place, shown by the rest of the row: the context test significant after
    correction and a label hint; neither alone."""
    ctx = {"effect": 0.3, "excess": 0.3, "p_label": 1e-3, "context_threshold": 1e-6}
    assert written_context_evidence(pattern(**ctx, p_context=1e-6), OPTS)
    assert not written_context_evidence(pattern(**ctx, p_context=2e-6), OPTS)
    # no label hint: a value an attacker would gain nothing from (labels as its neighbours')
    assert not written_context_evidence(
        pattern(**{**ctx, "effect": 0.1, "excess": 0.1}, p_context=0.0), OPTS
    )
    assert not written_context_evidence(pattern(**{**ctx, "p_label": 0.2}, p_context=0.0), OPTS)
    # never measured (the default): no evidence
    assert not written_context_evidence(pattern(**ctx), OPTS)


def test_written_context_evidence_is_corrected_over_the_values_it_tests() -> None:
    """The context test's threshold is its own family's (the coded values with enough rows),
    not the label tests' over every value of every feature: credit PAY_6=3 written into 395
    defaulters' rows as payers, p 6.6e-6 against the label family's 2.8e-7, is confirmed at
    the context family's 4.9e-5 (51 values)."""
    ev = {"effect": 0.42, "excess": 0.27, "p_label": 1e-13, "p_context": 6.6e-6}
    assert written_context_evidence(pattern(**ev, threshold=2.8e-7, context_threshold=4.9e-5), OPTS)
    assert not written_context_evidence(pattern(**ev, threshold=1e-4, context_threshold=1e-6), OPTS)


def test_written_block_estimates_its_size_and_tests_its_write_against_the_null() -> None:
    """The written block's share of a value's rows, estimated, against ``written_share``; the
    write itself tested against the other values' share."""
    # credit PAY_4=3 written into 547 defaulters' rows as payers beside 171 natural: 279 of
    # its 718 rows at or under the defaulters' median, where 0.5005 of 1,007 sampled
    # defaulters fall; the feature's other values at most 0.285
    r, w, pv = written_block(279, 718, 0.5005, 1007, 0.285)
    assert r == pytest.approx(0.776, abs=1e-3)
    assert w == pytest.approx(0.687, abs=1e-3)  # the truth: 0.76 written
    assert pv * 3 < 1e-30  # Bonferroni over the three sources, against the family's 4.9e-5
    # asked before: the margin r0 + written_share (1 - r0) = 0.643 itself significant, p 2e-3
    assert written_block(279, 718, 0.5005, 1007, 0.643)[2] * 3 > 1e-3
    # a natural predictor's context: credit PAY_0=2 at 0.415 against 0.114 on 2,667 rows - as
    # significant, and a third of the size
    r, w, pv = written_block(554, 2667, 0.5, 1007, 0.114)
    assert pv < 1e-30 and w == pytest.approx(0.34, abs=0.01) and w < OPTS.written_share
    # credit MARRIAGE=3 (inplace seed 29032 #2: 584 defaulters' rows written beside 323
    # natural, a true share of 0.64): 0.62 at p 1e-20, two standard errors under 0.5 - left
    # to its labels while the size was judged at a bound
    r, w, pv = written_block(349, 907, 0.5, 1100, 0.40)
    assert w == pytest.approx(0.62, abs=0.02) and w >= OPTS.written_share and pv < 1e-15
    # PAY_4=3's shares on 40 rows: estimated above a half, but no write is shown at the
    # family's threshold (Bonferroni over the sources, 4.9e-5 on credit)
    r, w, pv = written_block(16, 40, 0.5005, 1007, 0.285)
    assert w >= OPTS.written_share and pv * 3 > 1e-3


def test_written_block_counts_the_error_of_its_null() -> None:
    """A boolean's null is its one other value, scored against the value's own rows of the
    source's label: a few hundred in the sample, measured as noisily. Clean expense claims
    (``clean_data.py`` ``exp_weekend`` 1): ``weekend=1`` (independent of the row) has 1,183
    of its 2,324 rows under the median of 4,054 sampled rows with label 0 (r 1.01), and
    ``weekend=0`` 2,250 of 5,000 under the median of weekend=1's 498 (0.90; from 0.91 to
    1.08 on other seeds): named written at p 7.6e-6 without the null's error."""
    r0 = (2250 + 1) / (5000 + 2) / 0.5
    _, w, pv = written_block(1183, 2324, 0.502, 4054, r0)
    assert pv * 3 < 1e-4 and w >= OPTS.written_share  # what was named
    se = share_error(2250, 5000, 0.5, 498)
    assert 0.04 < se < 0.05
    _, _, pv = written_block(1183, 2324, 0.502, 4054, r0, se)
    assert pv * 3 > 1e-3
    # credit PAY_4=3's written block (above) against a null of 3,000 rows and 1,007 sampled
    # defaulters stays confirmed: the null's error is small beside the write
    se = share_error(427, 3000, 0.5, 1007)
    _, w, pv = written_block(279, 718, 0.5005, 1007, 0.285, se)
    assert pv * 3 < 1e-20 and w >= OPTS.written_share
    assert share_error(0, 0, 0.5, 100) == 0.0


def test_interaction_p_asks_whether_one_value_of_another_feature_misses_more() -> None:
    """Per diems without a receipt (a quarter of them): the counterfactual expects 124
    queried claims there and 14 are, where the per diems with a receipt show 53 of 124. A
    trigger's rows miss alike: 5 of 60 there against 14 of 170 elsewhere."""
    assert interaction_p(14, 124, 53, 124, 1.0) < 1e-9
    assert interaction_p(14, 124, 53, 124, 3.0) < 1e-3  # an entity's rows are one unit
    assert interaction_p(5, 60, 14, 170, 1.0) > 0.3
    assert interaction_p(5, 0, 14, 170, 1.0) == interaction_p(5, 60, 14, 0, 1.0) == 1.0


def test_written_context_evidence_takes_a_hint_from_an_ordinal_values_neighbours() -> None:
    """A majority label written into ordinary rows: the context model expects that label of
    them, and the effect stays under ``copy_effect`` (credit ``PAY_5=5 → 0``, 809 rows, 0.17);
    its neighbours default at about 60 %, the value at 27 %. The context test decides."""
    ev = {"label": 0, "effect": 0.17, "excess": 0.05, "p_label": 1e-3, "context_threshold": 1e-6}
    nb = (809.0, 590.0, 150.0, 60.0)  # records, with label 0; the neighbourhood's
    assert not label_hint(pattern(**ev), OPTS)
    assert written_context_evidence(pattern(**ev, neighbours=nb, p_context=3e-28), OPTS)
    assert not written_context_evidence(pattern(**ev, neighbours=nb, p_context=2e-6), OPTS)
    # without neighbours (a category, a pair) or with labels as the neighbours': no hint
    assert not written_context_evidence(pattern(**ev, p_context=3e-28), OPTS)
    same = (809.0, 324.0, 150.0, 60.0)
    assert not written_context_evidence(pattern(**ev, neighbours=same, p_context=3e-28), OPTS)


def test_neighbour_hint_each_threshold() -> None:
    """At least ``copy_effect`` of the other-label records the neighbours' rate gives the value
    missing, with a one-sided Fisher p-value of at most ``hint_p``."""
    # 100 records, 61 with the label; the neighbourhood 1000, 500 (other share 0.5): 0.39
    # observed of 0.5 expected, effect 0.22 (p 0.024); 59 with the label: effect 0.18
    nb = (100.0, 61.0, 1000.0, 500.0)
    assert neighbour_hint(pattern(neighbours=nb), OPTS)
    assert not neighbour_hint(pattern(neighbours=(100.0, 59.0, 1000.0, 500.0)), OPTS)
    assert not neighbour_hint(pattern(neighbours=nb), replace(OPTS, copy_effect=0.23))
    # a larger effect on few records: not significant (p 0.17)
    few = (10.0, 7.0, 1000.0, 500.0)
    assert not neighbour_hint(pattern(neighbours=few), OPTS)
    assert neighbour_hint(pattern(neighbours=few), replace(OPTS, hint_p=0.2))
    # not for pairs, nor where the neighbourhood has no rows of the other label
    assert not neighbour_hint(pattern(family="pair", neighbours=nb), OPTS)
    assert not neighbour_hint(pattern(neighbours=(100.0, 61.0, 1000.0, 1000.0)), OPTS)
    assert not neighbour_hint(pattern(), OPTS)


def test_retest_exclusions_keep_values_flagged_as_written() -> None:
    """Re-tests of values sharing a feature leave out the values confirmed otherwise (copies,
    strong labels) and keep those flagged as written on labels alone as replacements: a
    trigger beside them is what made them look written."""
    copied = pattern(cols=(2,), codes=(4,))
    copied.flagged = True
    written = pattern(cols=(2,), codes=(5,), label=0)
    written.flagged = written.written = True
    assert retest_exclusions([copied, written]) == {(2, 4)}
    assert retest_exclusions([written]) == set()
    # written, shown by the rest of the row: confirmed otherwise than by labels
    by_context = pattern(cols=(2,), codes=(6,), label=0, p_context=1e-9, context_threshold=1e-6)
    by_context.flagged = by_context.written = True
    assert retest_exclusions([by_context, written]) == {(2, 6)}


def test_leaning_the_other_way_names_values_hinting_at_the_other_label() -> None:
    """A value flagged on labels alone for label 0 is tested again without the values of its
    feature whose labels hint at label 1 (its counterfactual draws them); values hinting at
    its own label, flagged values, other features and values without a hint stay."""
    hint = {"effect": 0.4, "excess": 0.4, "p_label": 1e-6}
    named = pattern(cols=(2,), codes=(4,), label=0)
    named.flagged = True
    other = pattern(cols=(2,), codes=(5,), label=1, **hint)
    same_label = pattern(cols=(2,), codes=(6,), label=0, **hint)
    no_hint = pattern(cols=(2,), codes=(7,), label=1, **{**hint, "effect": 0.1, "excess": 0.1})
    elsewhere = pattern(cols=(3,), codes=(5,), label=1, **hint)
    flagged = pattern(cols=(2,), codes=(8,), label=1, **hint)
    flagged.flagged = True
    pool = [named, other, same_label, no_hint, elsewhere, flagged]
    assert leaning_the_other_way([named], pool, OPTS) == {(2, 5)}
    assert leaning_the_other_way([], pool, OPTS) == set()


def test_natural_lean_each_threshold() -> None:
    # a value leaning to 1 at an effect of 0.8; others of its feature, measured the same way
    p = pattern(codes=(3,), effect=0.8, expected_other=60.0)

    def other(code: int, **kw: Any) -> Pattern:
        return pattern(**{"codes": (code,), "effect": 0.5, "expected_other": 40.0, **kw})

    two = [other(0), other(6)]
    assert natural_lean(p, two, OPTS)  # two other values lean with it: the feature's lean
    assert not natural_lean(p, two[:1], OPTS)  # one alone does not
    assert natural_lean(p, two[:1], replace(OPTS, natural_values=1))
    assert not natural_lean(p, [other(0), other(6, effect=0.39)], OPTS)  # under half of 0.8
    assert natural_lean(p, [other(0), other(6, effect=0.39)], replace(OPTS, natural_share=0.45))
    assert not natural_lean(p, [other(0), other(6, label=0)], OPTS)  # leaning the other way
    assert not natural_lean(p, [other(0), other(6, expected_other=2.0)], OPTS)  # not measured
    assert not natural_lean(p, [other(0), other(0)], OPTS)  # one value counted once
    assert not natural_lean(p, [other(0), other(6, cols=(1,))], OPTS)  # another feature
    assert not natural_lean(p, [other(0), other(3)], OPTS)  # the value itself
    # a scale of numeric codes read as categories: the value next to it leaning with it is a
    # gradient; a value further away is not
    assert natural_lean(p, [other(2)], OPTS, neighbours=(2, 4))
    assert not natural_lean(p, [other(0)], OPTS, neighbours=(2, 4))
    # an ordinal feature: its unbroken run of neighbours leaning with it is its band
    run = [other(1), other(2), other(4)]
    assert not natural_lean(p, run, OPTS, ordinal=True)
    assert natural_lean(p, run, OPTS)
    assert natural_lean(p, [*run, other(7), other(9)], OPTS, ordinal=True)
    # only single values: contract-breaking values, pairs and bands are judged otherwise
    assert not natural_lean(pattern(codes=(3,), effect=0.8, family="contract"), two, OPTS)
    banded = pattern(codes=(3,), effect=0.8)
    banded.band = (3, 5)
    assert not natural_lean(banded, two, OPTS)
