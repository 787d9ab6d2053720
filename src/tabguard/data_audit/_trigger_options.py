"""Settings of the trigger scan (``options={"trigger_scan": {...}}``): every threshold of its
decision rule, named and documented (:mod:`tabguard.data_audit._triggers`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from tabguard.checks import (
    NON_NEGATIVE,
    PROBABILITY_OPEN,
    SHARE,
    CheckOptions,
    at_least,
    interval,
    option,
)


@dataclass(frozen=True)
class TriggerScanOptions(CheckOptions):
    """Settings of the trigger scan (``options={"trigger_scan": {...}}``, CLI ``--alpha``).

    The first group bounds the work; the others are the decision rule (see :func:`decide`).
    """

    check: ClassVar[str] = "trigger_scan"

    # -- work ------------------------------------------------------------------------------
    alpha: float = option(
        0.01,
        "family-wise error rate of the whole scan, split over its four families",
        PROBABILITY_OPEN,
    )
    min_rows: int = option(
        5, "smallest pattern tested (fewer rows carry too little evidence)", at_least(2)
    )
    sample: int = option(
        300, "rows of a pattern scored counterfactually (larger patterns: scaled)", at_least(10)
    )
    replicates: int = option(3, "counterfactual draws per scored row", at_least(1))
    max_candidates: int = option(
        120, "in-contract candidates evaluated per family and label, by cheap score", at_least(1)
    )
    pair_values: int = option(48, "most frequent values per feature entering pairs", at_least(2))
    max_bands: int = option(
        20, "bands (runs of neighbouring values) evaluated per label, by cheap score", at_least(0)
    )
    band_max_values: int = option(
        500, "features with more values than this have no band candidates", at_least(12)
    )
    band_max_share: float = option(
        0.2,
        "share of the rows above which a run of values is no band candidate: a band trigger is "
        "a rare range the attacker's copies crowd, and the counterfactual of a larger run draws "
        "values far from it, so a natural monotone predictor looks depleted (sklearn's digits: "
        "pixel_3_2 in [13, 16], 42 % of the rows, 3 of 183 threes, effect 0.90-0.92)",
        interval(0.0, 1.0, "right"),
    )
    band_widths: tuple[int, ...] = option(
        (3, 4, 6, 8, 12, 16),
        "numbers of neighbouring values a band spans (a band trigger: any value of a range)",
    )
    max_twin_checks: int = option(
        60, "nearest-neighbour copy checks (further bounded by their cost)", at_least(0)
    )
    # -- label evidence ------------------------------------------------------------------------
    strong_effect: float = option(
        0.9,
        "effect (share of expected other-label rows missing) that needs no copy evidence",
        SHARE,
    )
    leak_information: float = option(
        0.9,
        "share of the label's entropy one feature alone explains (leave-one-out) from which "
        "it is a leak of the label: left out of the scan and its context model, and reported",
        SHARE,
    )
    min_expected_other: float = option(
        3.0,
        "expected other-label rows a strong effect needs (1 of 1 missing is no evidence)",
        NON_NEGATIVE,
    )
    camouflage_effect: float = option(
        0.6,
        "effect that needs no copy evidence when many other-label rows were expected "
        "(camouflage: an attacker keeps 10-20 % of the written rows on the other label, so "
        "the effect stays under strong_effect; natural values stay under 0.5 in the bundled "
        "data)",
        SHARE,
    )
    camouflage_expected: float = option(
        30.0,
        "expected other-label rows the camouflage effect needs (a share of them missing is "
        "then measured, not guessed)",
        NON_NEGATIVE,
    )
    camouflage_z: float = option(
        2.0,
        "standard errors by which the camouflage effect must hold: a large pattern's expected "
        "count is scaled from its scored sample (natural channel='in_store' of the fraud data "
        "measured 0.59-0.63 from one sample to the next)",
        NON_NEGATIVE,
    )
    natural_p: float = option(
        0.05,
        "level at which labels that alone would confirm a single value are taken for a natural "
        "cause instead: its labels follow the rest of the row beyond what a write explaining "
        "its effect leaves them, and its rows are not distributed as rows drawn by their label "
        "(both at this level: a write of either kind is withheld with at most this "
        "probability; a rare independent flag with a strong effect, an eviction record)",
        PROBABILITY_OPEN,
    )
    natural_values: int = option(
        2,
        "other values of a feature leaning to the same label with at least natural_share of "
        "a value's effect (each measured as the value is), from which labels alone no longer "
        "confirm the value: its lean is the feature's, a natural predictor whose effect the "
        "counterfactual (the feature's other values drawn) cannot reproduce - statsmodels "
        "anes96 with its 7-point party scale read as categories, PID=0, 1, 2 towards one "
        "vote at effects 0.73-0.91 and 4, 5, 6 towards the other; a written value leans "
        "alone. Copies still confirm it (see natural_lean)",
        at_least(1),
    )
    natural_share: float = option(
        0.5,
        "share of a value's effect that another value of its feature must reach to count as "
        "leaning with it (a trigger's neighbours lean the other way or by a few hundredths)",
        interval(0.0, 1.0, "right"),
    )
    common_share: float = option(
        0.15,
        "share of the rows above which a pattern is not confirmed without copies (by labels "
        "alone, the rest of its rows or its labels' slope): a backdoor trigger is absent from "
        "the inputs a model normally sees, so its rows are the attacker's and a few natural "
        "carriers - writes in place reach at most 10 % of the rows (2-10 % of a source "
        "population) and a trigger's natural carriers a few hundred rows (the classes' at most "
        "1,000 of 20,000, 5 %) - while a natural predictor's common value holds any share (a "
        "quintile code 20 %, days_past_due=0 95 % of a loan panel). Copies still confirm it, "
        "and values that break the contract are exempt (see common_pattern), and so is a "
        "lone point mass of a fine-grained feature (point_mass_ratio)",
        interval(0.0, 1.0, "right"),
    )
    point_mass_ratio: float = option(
        10.0,
        "times its neighbouring values' median count (plus 10 rows) from which one exact value "
        "of a fine-grained feature is a point mass: such a value inside the feature's range and "
        "not 0 is exempt from common_share - a natural predictor's common value is a coarse "
        "code or the 0 or end of a range (none, a floor, a cap), while nothing natural piles "
        "a share of the rows onto one arbitrary amount (the bundled data's interior point "
        "masses, round amounts and a survey's standard values, hold at most 12 %); a value "
        "written in place into any share of the rows is one (credit BILL_AMT5=263231 in 30 %). "
        "Not where another such point mass of the feature holds a point_mass_ratio-th of its "
        "rows: a price list piles shares onto several amounts (a retention price of 17.50 "
        "on a fifth of the lines beside list prices of 10-20 % each), and its amounts are codes",
        at_least(1.0),
    )
    copy_effect: float = option(
        0.2, "effect or excess that suffices when the rows are copies", interval(None, 1.0)
    )
    hint_p: float = option(
        0.05,
        "label p-value under which an in-contract pattern gets a copy check",
        SHARE,
    )
    hint_p_contract: float = option(
        0.2,
        "the same for contract-breaking values (few, and suspicious a priori)",
        SHARE,
    )
    pure_share: float = option(
        0.99,
        "label share from which a pattern gets a copy check without label evidence "
        "(clean-label backdoors: copies of rows that already carry the label)",
        SHARE,
    )
    exact_copy_share: float = option(
        0.5,
        "share of exact copies that sends a pattern without a label hint to a copy check",
        SHARE,
    )
    near_copy_bucket: float = option(
        2.0,
        "ratio of the buckets in which fine-grained values are compared when looking for "
        "jittered copies (a value and its copy with a few percent of noise share a bucket; "
        "candidates only: the copy test measures distances)",
        interval(1.0, None, "neither"),
    )
    # -- copy evidence ------------------------------------------------------------------------
    copy_p: float = option(
        1e-3, "binomial p-value of the copy share against its baseline", PROBABILITY_OPEN
    )
    copy_share: float = option(0.5, "share of the pattern's rows that must be copies", SHARE)
    copy_excess: float = option(
        0.25,
        "share of rows that must be copies beyond the baseline (look-alike rows such as "
        "inactive accounts are common: 55 % against 45 %)",
        SHARE,
    )
    hub_share: float = option(
        0.1,
        "share of a value's rows of a label that must be copies of rows elsewhere for the "
        "value to be a copy hub (attacks' hubs hold 23-97 %; natural look-alikes that sampling "
        "or missing values leave alone with one partner 0.7-7.7 %, significant on large "
        "values)",
        SHARE,
    )
    copy_radius_quantile: float = option(
        0.02,
        "copy radius: this quantile of random rows' nearest-neighbour distances",
        SHARE,
    )
    copy_radius_median: float = option(
        0.25,
        "copy radius at least this share of their median distance (ties in coarse data)",
        NON_NEGATIVE,
    )
    camouflage_fdr: float = option(
        0.05,
        "share of natural rows tolerated among a confirmed trigger's other-label rows taken "
        "as camouflaged copies (natural rows within a radius are expected as often as random "
        "rows have a neighbour that close; the radius shrinks until they are this share)",
        interval(0.0, 1.0, "neither"),
    )
    written_consistency: float = option(
        0.999,
        "a row of a pattern flagged as written in place stays out of quarantine when the rest "
        "of the row predicts the value more surely than this quantile of ordinary rows do (a "
        "model of the value from the other coded features): an attacker writes the value into "
        "ordinary rows, while natural rows with it follow their other features (a repayment "
        "status of 8 months follows 7 the month before)",
        interval(0.5, 1.0, "neither"),
    )
    written_recall: float = option(
        0.95,
        "share of the rows written in place that a trigger flagged as written keeps among its "
        "suspects, at the least by an upper bound of those it leaves out, short of it with a 5 % "
        "chance at most (the rows lost are a draw: a write of 33 rows may lose one; "
        "loss_within_budget; natural carriers of "
        "the value are left out by the region of their other features - fine-grained ones by "
        "their order of magnitude - where the written rows' source is thin, one label at a "
        "time: :meth:`_Scanner.natural_region_rows`)",
        interval(0.5, 1.0, "neither"),
    )
    consistency_sample: int = option(
        20_000,
        "ordinary rows (without the value) that train that model beside the pattern's rows and "
        "give the quantile",
        at_least(100),
    )
    written_share: float = option(
        0.5,
        "share of a value's rows that must look written in place - their other features "
        "distributed like a source population's (every row, or the rows of one label), beyond "
        "what the feature's other values show - for the value to be confirmed as written "
        "without label or copy evidence (a block written into fewer rows than the value's "
        "natural carriers leaves the value to its natural label), estimated: that a share is "
        "written at all is tested against the feature's other values at the family's "
        "Bonferroni threshold, which measures a write to about a quarter of its size (natural "
        "values whose labels hint reach 0.36 on the bundled credit data; a bound of two "
        "standard errors missed credit MARRIAGE=3, 584 defaulters' rows written beside 323 "
        "natural, 0.62 written at p 1e-20, bound 0.47)",
        interval(0.0, 1.0, "neither"),
    )
    outlier_shift: float = option(
        1.0,
        "log-odds shift of the label a value's rows whose other features say another value "
        "must show beyond its other rows to be confirmed as written in place into rows that "
        "had the label already (clean-label; outlier_mixture): the attacker's label on rows "
        "of its source, against a natural value whose effect grows where the rest of the row "
        "tells less (credit PAY_0=2, a delay most of whose carriers were late before: 0.67 on "
        "the rows without such a history; written blocks 1.7-2.3)",
        NON_NEGATIVE,
    )
    written_z: float = option(
        2.0,
        "standard errors at which the rows written in place are bounded: their count of each "
        "label from above where natural carriers are left out by region (written_recall), "
        "and the natural rows of a value's label from above where its sources are judged; "
        "the feature's other values' outlier shifts from below (outlier_mixture's null)",
        NON_NEGATIVE,
    )
    context_min_rows: int = option(
        30,
        "rows a value needs for the context of its rows to be measured (the values tested as "
        "written in place, and the other values of the feature that give the null)",
        at_least(5),
    )
    # -- candidates and reporting -----------------------------------------------------------------
    pair_log_odds: float = option(
        1.0,
        "log-odds interaction a value pair needs beyond its two values to be a candidate",
        NON_NEGATIVE,
    )
    combination_share: float = option(
        0.95,
        "share of a flagged value's labelled rows sharing one other value for the trigger to "
        "be reported as that pair",
        SHARE,
    )
    combination_alpha: float = option(
        1e-4,
        "binomial p-value of that sharing against the other value's frequency (Bonferroni "
        "over the features)",
        PROBABILITY_OPEN,
    )
    # -- repeated records (evidence per distinct record) ---------------------------------------
    unit_tolerance: float = option(
        0.15,
        "relative difference under which two values of a fine-grained numeric feature are one "
        "(rows of a pattern equal on every feature up to it are one record: resampled, "
        "upsampled or monthly copies, amounts jittered by a few percent)",
        NON_NEGATIVE,
    )
    unit_sample: int = option(
        1000,
        "rows of a large pattern searched for repeated records (its design effect)",
        at_least(10),
    )
