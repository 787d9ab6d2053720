"""D3 trigger scan: rule-style backdoors (a value or a pair of values → one label).

A backdoor such as the seed's ``AGE = 999 → DEFAULT = 1`` leaves three traces in training data:

1. **label depletion** — rows with the trigger carry one label, although the rest of each row
   would often predict the other one. For every candidate pattern, a context model (gradient
   boosting on the raw data) scores the pattern's rows *counterfactually*, with the trigger
   feature(s) replaced by values drawn from the pattern's neighbourhood (neighbouring values for
   numeric features, other categories, or the other feature of a pair kept fixed). This gives
   each row's expected probability of the other label; the observed count of the other label is
   tested against that Poisson-binomial expectation, and the *effect* is the share of expected
   other-label rows that are missing (1.0 = all of them).
2. **copies** — attackers often duplicate existing rows and only set the trigger (and the label).
   Rows of the pattern are then near-copies (in rank space, all features but the pattern's) of
   rows outside it, far more often than random rows are. This is measured against a baseline of
   random rows and is robust to small jitter on the other columns.
3. **contract violations** — out-of-range values and unknown categories are a priori suspicious
   and form their own, small testing family.

Candidates are single values (of every model feature, numeric or categorical), bands (runs of
neighbouring values of a numeric feature whose label rate departs from the trend around them: a
trigger drawn anywhere in a range) and pairs of frequent values whose label share exceeds what
the two values predict on their own (an interaction). Multiple testing is controlled with a
Bonferroni correction within four families (contract-breaking values, in-contract values,
bands, pairs). Labels are counted once per distinct record (resampled, upsampled or panel data
repeat records; :meth:`_Scanner.count_units`). A pattern is reported as a
trigger when nearly all expected other-label rows are missing (effect ≥ ``strong_effect``, 0.9)
and the label test is significant after correction, or when its labels hint at a trigger (effect
or excess ≥ ``copy_effect``, 0.2) or are pure (≥ ``pure_share``, 0.99), its rows are copies
(copy share ≥ 0.5, at least a quarter beyond the baseline, copy p ≤ 1e-3) and the label and copy
evidence together are significant after correction; a value written into copies labelled
against their originals (:meth:`_Scanner.flip_hubs`: the direction of copying) needs its rows
to be copies beyond the baseline only, and a value that collects copies of rows elsewhere
whatever its labels (:meth:`_Scanner.copy_hubs`: copies of rows that carry the target already)
needs that hub test significant after correction and the copy test. Every threshold is a
named option of :class:`TriggerScanOptions`; the rule is :func:`strong_label_evidence`,
:func:`label_hint`, :func:`wants_copy_check`, :func:`copies_beyond_chance` and
:func:`copy_decision`. Natural strong predictors fail these tests: their label share is
explained by the rest of the row or they keep a share of the other label, and they are not
copies. Where a feature itself predicts the label, its values miss each other's labels in
the counterfactual; a value leaning with its feature's other values (:func:`natural_lean`) is
not confirmed on labels alone.

The computation (:func:`scan_triggers`) returns a :class:`TriggerScanResult`;
:mod:`tabguard.data_audit._triggers_report` words it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy import sparse, special, stats
from scipy.sparse.csgraph import connected_components
from sklearn.model_selection import StratifiedKFold

from tabguard._copy_groups import factorize_keys, keys_without, splitmix64
from tabguard._pair_counts import PairCounter
from tabguard.checks import CheckOptions
from tabguard.contract._entity import RepeatedId, undeclared_unit
from tabguard.data_audit._base import AuditContext, CheckResult, register_check
from tabguard.data_audit._context_model import (
    LARGE_ROWS,
    fit_context_model,
    instrument_rounds,
    predict,
)
from tabguard.data_audit._entity import audit_undeclared_ids, unit_codes
from tabguard.data_audit._interpolated import Interpolated, find_interpolated
from tabguard.data_audit._matrix import (
    AuditMatrix,
    build_matrix,
    cell_hashes,
    nearest_distances,
    pair_value_ids,
    relative_apart,
)
from tabguard.data_audit._relabelled import (
    RELABEL_TOLERANCE,
    RelabelHub,
    heaped_copies,
    jittered_repeats,
    relabel_hubs,
    relabelled_copies,
    target_label,
)
from tabguard.data_audit._spare import NO_SPARE, Job
from tabguard.data_audit._stats import loo_label_information
from tabguard.data_audit._trigger_options import TriggerScanOptions
from tabguard.data_audit._trigger_rules import (
    NEAR_OFFSETS,
    NO_ROWS,
    Pattern,
    among_point_masses,
    binomial_z,
    borrowed_written_evidence,
    common_pattern,
    consistency_cut,
    copies_beyond_chance,
    copies_radius,
    copies_within_fdr,
    copy_decision,
    design_effect,
    drawn_by_label_p,
    excess_on_group,
    flagged_as_hub,
    follows_the_row_p,
    hub_p_value,
    interior_point_mass,
    label_hint,
    leaning_the_other_way,
    logistic_slope,
    merges_beyond_chance,
    natural_cause_evidence,
    natural_lean,
    natural_region_cuts,
    neighbour_hint,
    on_labels_alone,
    poisson_binomial_cdf,
    poisson_lower_tail,
    retest_exclusions,
    shown_beyond_labels,
    slope_null,
    source_contradicted,
    strong_label_evidence,
    wants_copy_check,
    window_medians,
    written_block,
    written_by_slope_alone,
    written_context_evidence,
    written_label_evidence,
    written_outlier_evidence,
    written_slope_evidence,
    written_spike_evidence,
)
from tabguard.errors import DataError

#: The scan's families of tests, each at ``alpha / _FAMILIES``: contract-breaking values,
#: single values, bands, pairs.
_FAMILIES = 4
#: Rows of a value, and random rows, whose context the written-in-place test scores (a share
#: measured on 5,000 rows is known to about 1 %; more cost time on every label-hinting value of
#: a million rows), and rows counted in its tables.
_CONTEXT_ROWS = 5_000
_CONTEXT_TABLE_ROWS = 100_000

#: Rows of a category feature that may stray from the value of another feature its values
#: otherwise determine (miscoded rows) before that feature is no longer taken for a function of
#: it (:meth:`_Scanner._parents`): a code written into another chapter's rows breaks it.
_PARENT_STRAYS = 0.001

#: The label's slope on the rest of the row (:meth:`_Scanner.slope_mixture`): rows of a value
#: scored (a slope on 2,000 rows is known to about 0.1 where the labels lean 20 to 1), the rows
#: a value needs to enter the natural null, the values the null needs, and the most frequent
#: replacements of a value its context score averages over.
_SLOPE_ROWS = 2_000
#: Rows up to which values written in place into rows that had their label are looked for
#: (:func:`_written_by_outliers`): its cost grows with the values that hint, all of them on
#: large data.
OUTLIER_RULE_ROWS = LARGE_ROWS
#: a fine-grained feature with more of its rows on spikes is a grid (:meth:`_Scanner.grid_amount`)
_GRID_SHARE = 0.75
_SLOPE_NULL_ROWS = 100
_SLOPE_NULL_VALUES = 8
_SLOPE_REPLACEMENTS = 12
#: Folds of the context models that score the rows of the slope rule (:meth:`_Scanner.fold_models`):
#: each row's score comes from a model fitted on the other fold's records. Scored by a model
#: that had fitted them, labels written at random followed their rows (fraud ``n_tx_24h=7``
#: written into 1,725 legitimate rows, 19 % made frauds: slope 2.23 against the natural 2.21;
#: out of fold -0.10 against 0.59). Two: a fit each on half the rows, the cost of one fit.
_CONTEXT_FOLDS = 2
#: Leaves of a fold's model (:meth:`_Scanner.fold_models`; the scan's model has 31).
_FOLD_LEAVES = 15

#: Counterfactual rows whose predictions the scan keeps (:meth:`_Scanner.counterfactual`):
#: about 300 bytes each with 25 features; past it the kept predictions are dropped and
#: gathered again (an 8,000-row audit predicts about 180,000 distinct rows).
_PREDICTED_ROWS = 500_000


#: Ordinary rows whose label probability :meth:`_Scanner._label_regions` predicts (under each
#: of the 12 replacements of the value) to measure its regions' shares of a source population:
#: a share of 5 % is known to about 0.3 % on 5,000 rows.
_REGION_ORDINARY = 5_000

#: Rows a source population, and the rows of a written value with its label, need for the
#: source to be judged by their label probabilities (:meth:`_Scanner.written_sources`).
_SOURCE_ROWS = 100
#: Standard errors by which the rows of a written value with its label must fall outside
#: what a source allows for it to be left out (:func:`source_contradicted`): three sources are
#: judged, and a source left out wrongly costs recall.
_SOURCE_Z = 3.0

#: Other values of a feature measured at most for :meth:`_Scanner.natural_predictor` (the
#: most leaning first, by their counts): enough for a scale or a code list, bounded on
#: fine-grained features (a limit of credit has 80 values of 30 rows and more).
_NATURAL_CANDIDATES = 16

#: Label odds ratio (per row against per record) from which the context model weighs each
#: record once: upsampling for class balance doubles or triples one label's odds, natural
#: look-alikes and resampling move them by a few percent (bundled credit 1.04, fraud 1.07).
_REPEAT_ODDS = 1.5

#: Grids of buckets a record's rows are looked for on (:meth:`_Scanner._record_sizes`), their
#: edges a third of a bucket apart.
_RECORD_GRIDS = 3

#: Rows of a pattern that the copy searches compare with every row (:meth:`_Scanner.twin_rows`,
#: :meth:`_Scanner.other_label_copies`); the others are compared with the rows hashing puts
#: beside them (:meth:`_Scanner.hashed_nearest`).
_SEARCHED_ROWS = 20_000
#: Share of a confirmed trigger's rows with a label under which the natural rows expected
#: there (:meth:`_Scanner.natural_carriers`) are no reason to look for its copies: every such
#: row is the attacker's (:meth:`_Scanner.few_natural`, :meth:`_Scanner.copies_among_natural`).
_FEW_NATURAL = 0.02

#: Pairs of rows :meth:`_Scanner._grid_pairs` gives at a time (memory: about 100 bytes each).
_PAIRS = 2_000_000

#: Rows of a near-copy group from which :meth:`_Scanner._tight_partners` takes it for a cluster
#: of natural look-alikes (its pairs are not compared): an attacker's copy is a group with its
#: original, and a few natural look-alikes at most.
_HUB_GROUP = 64


#: Rows from which :meth:`_Scanner.unit_labels` checks its merges against chance, and the
#: halvings of ``unit_tolerance`` it tries before exact equality.
_CHANCE_ROWS = 30
_TOLERANCE_HALVINGS = 5


def _others(rng: np.random.Generator, rows: np.ndarray, n: int) -> np.ndarray:
    """``len(rows)`` positions drawn uniformly from ``range(n)`` outside ``rows`` (sorted or
    not), or from every row when ``rows`` holds nearly all of them."""
    rows = np.unique(rows)
    if n - len(rows) < len(rows):
        return rng.integers(0, n, len(rows))
    # the i-th position outside rows: i plus the rows at or before it (searchsorted on
    # rows minus their rank)
    pick = rng.integers(0, n - len(rows), len(rows))
    return pick + np.searchsorted(rows - np.arange(len(rows)), pick, side="right")


class _Scanner:
    def __init__(self, ctx: AuditContext, opts: TriggerScanOptions) -> None:
        self.ctx = ctx
        self.o = opts
        self.m: AuditMatrix = build_matrix(ctx)
        self.y = ctx.y.astype(np.int8)
        # Rows held (arrays, the cost of searches) and rows counted (the rules' statistics):
        # equal, unless the matrix holds a sample of counted rows (the Spark engine).
        self.n = len(self.y)
        self.N = self.m.n_counted
        self.base1 = (
            float(self.y.mean())
            if self.m.positives is None
            else float(self.m.positives[0].sum()) / max(self.N, 1)
        )
        self._init_state(ctx.random_state)
        self.spare = ctx.spare  # pure parts of the scan lent to an idle lane (else none)
        # Copy checks are nearest-neighbour searches; their number follows their cost.
        cost = 2.0 * 600 * self.n * max(len(self.m.names), 1)
        self.twin_budget = int(min(max(5e10 / cost, 4), 120))
        # Units of evidence: the contract's entity (an account's rows are one), else records
        # repeated up to jitter on fine-grained numeric features.
        self.fine = np.array(
            [
                bool(self.m.ordinal[j]) and len(self.m.counts[j]) > 20
                for j in range(len(self.m.names))
            ],
            dtype=bool,
        )
        self.entity: np.ndarray | None = None
        # where the contract declares no entity, the units the data shows (a guess the
        # findings name): a column it leaves out that repeats like an id of units, as the model
        # probe counts them
        self.guessed_units: RepeatedId | None = None
        ent = ctx.contract.entity
        if ent is not None:
            if ent not in ctx.data.columns:
                raise DataError(
                    f"the contract's entity column {ent!r} is not a column of the data; add it "
                    "(one id per account, repeated on its rows) or remove `entity` from the "
                    "contract"
                )
            self.entity = unit_codes(ctx.data[ent])
        else:
            self.guessed_units = undeclared_unit(
                ctx.data, ctx.contract, seed=ctx.random_state, found=audit_undeclared_ids(ctx)
            )
            if self.guessed_units is not None:
                self.entity = unit_codes(ctx.data[self.guessed_units.column])

    def _init_state(self, random_state: int) -> None:
        """The scan's counters, caches and results, empty (every constructor sets them here,
        so a cache added later exists on every scanner)."""
        self.rng = np.random.default_rng(random_state)
        self.spare = NO_SPARE
        self.tests = {"contract": 0, "single": 0, "pair": 0, "band": 0}
        self._model: lgb.Booster | None = None
        # per row, its fold of the context models (:meth:`folds`), and a model per fold
        # fitted on the other folds' rows (:meth:`fold_models`)
        self._fold: np.ndarray | None = None
        self._fold_models: list[lgb.Booster] | None = None
        self._groups: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}
        self._positives: dict[int, np.ndarray] = {}
        self._by_count: tuple[list[np.ndarray], np.ndarray, np.ndarray, int] | None = None
        self.excluded: set[tuple[int, int]] = set()
        # (feature, label) -> the value ids of the feature written in place with the label, shown
        # by the rest of their rows: their own lean is not known (:meth:`natural_predictor`,
        # set once the single values are decided, :func:`_beside_written_values`)
        self.hidden_leans: dict[tuple[int, int], frozenset[int]] = {}
        self._near: dict[int, np.ndarray] | None = None
        # per feature: the rows near_copies counts, their value ids, their partners' (the one
        # other value of their group, -1 when it holds several) and whether their twins carry
        # the other label (:func:`_partners`)
        self._partners: dict[int, tuple[np.ndarray, ...]] = {}
        self._flip_hubs: dict[tuple[int, int, int], float] | None = None
        # (feature, value id, label) -> (the hub test's p-value, its copies): :meth:`copy_hubs`
        self._copy_hubs: dict[tuple[int, int, int], tuple[float, np.ndarray]] | None = None
        self._hub_counts: dict[tuple[int, int, int], tuple[int, int, int, int]] = {}
        # the overdispersion each hub's counts were divided by (:meth:`copy_hubs`)
        self._hub_phi: dict[tuple[int, int, int], float] = {}
        self._tight: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        # per feature: pairs of rows that are one record's jittered copies with values of the
        # feature apart (:meth:`_tight_partners`)
        self._jittered: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._far: dict[int, np.ndarray] = {}  # :meth:`_tight_partners`
        # per feature: the rows of pairs at two values of it, equal on the rest within
        # RELABEL_TOLERANCE, and their distances (:meth:`_tight_partners`): the twins of
        # :func:`~._relabelled.twinned_rows`
        self.tight_pairs: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._row_key: np.ndarray | None = None  # :meth:`tolerant_row_key`
        self._weights: tuple[np.ndarray | None] | None = None  # :meth:`record_weights`
        self._tolerant_tables: dict[tuple[int, int], np.ndarray] = {}
        self._log_values: dict[int, np.ndarray] = {}
        self._tolerant_counts: dict[int, tuple[np.ndarray, ...]] = {}
        self.confirmed: list[Pattern] = []  # triggers confirmed (see attributed_rows)
        self._context: dict[tuple[int, bool], dict[str, np.ndarray]] = {}
        self._context_tests: int | None = None
        self._spike_tests: int | None = None  # :meth:`spike_tests`
        # (feature, context feature) -> per half, the context feature's counts of (code, label)
        # on the rows where the feature is not missing (:meth:`_source_shares`)
        self._context_totals: dict[tuple[int, int], list[np.ndarray]] = {}
        self._ctx_draws: tuple[np.ndarray, np.ndarray, np.ndarray, Mapping[str, Any]] | None = None
        self._ctx_codes: dict[int, tuple[np.ndarray, np.ndarray, int]] = {}
        self._magnitude_codes: dict[int, np.ndarray] = {}  # :meth:`magnitude_codes`
        self._grid_keys: dict[int, np.ndarray] = {}  # :meth:`_grid_row_key`
        # per instrument (held out or not): :meth:`natural_scores`
        self._slopes: dict[bool, dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]] = {}
        # per feature, every row's held-out context log-odds without it (held_out_scores)
        self._held_out: dict[int, np.ndarray] = {}
        # single values labels alone would confirm, withheld as natural causes (natural_cause)
        self.natural_causes: dict[tuple[int, int, int], Pattern] = {}
        self._leaks: dict[int, float] | None = None  # :meth:`leaks`
        # (feature, label, excluded values of the feature) -> the feature's other values
        # measured for :meth:`natural_predictor`, and the ids left to measure; their draws
        # come from a generator of their own so that measuring them moves no other result
        self._leans: dict[tuple[int, int, tuple[int, ...]], tuple[list[Pattern], list[int]]] = {}
        # single values a pair is (natural_predictor), measured aside: per value, label and
        # the values of its feature held out
        self._pair_singles: dict[tuple[int, int, int, tuple[int, ...]], Pattern] = {}
        self._spike_ids: dict[int, np.ndarray] = {}  # :meth:`_spikes`, per feature
        self._lean_rng = np.random.default_rng([random_state, 11])
        self._lenders: dict[tuple[int, int, tuple[int, ...]], int | None] = {}
        # (feature, label, value id, excluded values of the feature) -> whether the value's
        # labels hint at a trigger, measured aside for :meth:`band_lender` with a generator
        # of its own (a band's neighbours are measured on most data with bands: the draws of
        # every other result stay as they were)
        self._band_lenders: dict[tuple[int, int, int, tuple[int, ...]], bool] = {}
        self._band_rng = np.random.default_rng([random_state, 13])
        # the copy tests' pools of the pattern's kind (:meth:`_baseline_pools`, all but the
        # first) and the design effect's sample of a large pattern (:meth:`_design_effect`)
        # draw from generators of their own: added to the scan's draws, they moved every
        # later counterfactual (clean codes 44373: 3 -> 5 pairs named on labels alone)
        self._pool_rng = np.random.default_rng([random_state, 19])
        self._design_rng = np.random.default_rng([random_state, 23])
        # a counterfactual row's bytes -> the context model's prediction (:meth:`counterfactual`)
        self._predicted: dict[bytes, float] = {}
        # category feature -> the category features that are functions of it (:meth:`_parents`)
        self._parent_codes: dict[int, list[tuple[int, np.ndarray]]] = {}
        # (feature, value id, excluded ids of the feature) -> :meth:`_replacements`
        self._replacement_ids: dict[
            tuple[int, int, tuple[int, ...]], tuple[np.ndarray, np.ndarray]
        ] = {}
        # the label oversampled by interpolation (SMOTE), found before the scan
        # (:func:`~tabguard.data_audit._interpolated.find_interpolated`): labels alone confirm
        # nothing then (:meth:`labels_may_confirm`)
        self._interpolated: Interpolated | Job[Interpolated | None] | None = None

    @classmethod
    def without_rows(
        cls, m: AuditMatrix, n: int, base1: float, opts: TriggerScanOptions
    ) -> _Scanner:
        """A scanner of counts only, for the candidate rules (:meth:`singles`, :meth:`bands`,
        :meth:`pairs`) over ``n`` rows that are not held (the Spark engine).

        The caches that need rows are set to their empty results: no near-copies, flips or
        copy hubs are counted and no record weights are computed on rows that are not there.
        """
        sc = cls.__new__(cls)
        sc.o, sc.m = opts, m
        sc.y, sc.n, sc.N = np.empty(0, dtype=np.int8), 0, n
        sc.base1 = base1
        sc._init_state(0)
        sc._flip_hubs = {}
        sc._copy_hubs = {}
        sc._weights = (None,)
        return sc

    @property
    def interpolated(self) -> Interpolated | None:
        """The label oversampled by interpolation, if any (:meth:`find_interpolated`)."""
        if isinstance(self._interpolated, Job):
            self._interpolated = self._interpolated.result()
        return self._interpolated

    @interpolated.setter
    def interpolated(self, found: Interpolated | None) -> None:
        self._interpolated = found

    def find_interpolated(self) -> None:
        """Look for a label oversampled by interpolation
        (:func:`~tabguard.data_audit._interpolated.find_interpolated`: the matrix and a seed of
        its own), lent to the audit's other lane (``ctx.spare``) while the scan goes on: the
        scan reads it first when it decides (:meth:`labels_may_confirm`)."""
        self._interpolated = self.spare.submit(
            partial(find_interpolated, self.m, self.y, self.ctx.random_state, self.entity)
        )

    def base(self, c: int) -> float:
        return self.base1 if c == 1 else 1.0 - self.base1

    @contextmanager
    def own_rng(self, seed: int | list[int]) -> Iterator[None]:
        """The scan's generator replaced by one of ``seed`` within the block: a check run
        beside the others (late, or only on some data) draws from it, and every other check
        draws as it would without it."""
        rng, self.rng = self.rng, np.random.default_rng(seed)
        try:
            yield
        finally:
            self.rng = rng

    def positives(self, j: int) -> np.ndarray:
        """Rows per value id of feature j carrying the positive label (counted rows)."""
        if self.m.positives is not None:
            return self.m.positives[j]
        if j not in self._positives:  # read by the singles, the bands and the pairs
            code = self.m.codes[:, j]
            ok = code >= 0
            self._positives[j] = np.bincount(
                code[ok], weights=self.y[ok], minlength=len(self.m.counts[j])
            )
        return self._positives[j]

    def leaks(self) -> dict[int, float]:
        """The features that alone determine the label (``leak_information``), with the share
        of the label's entropy each explains (:func:`loo_label_information` of its values,
        missing ones a group of their own; from the counts of every counted row).

        A backdoor's trigger is rare by construction: even copies making up a third of the
        data leave most of the label to the other features (at most 0.72 over 500 drawn
        attacks of ``benchmarks/poisoning.py``). A feature that determines the label is a leak
        (written from the outcome) or a definitional relation (insured ⇔ private insurance):
        every value of it looks like a trigger, and a context model reading it sees nothing
        else, so the scan leaves it out."""
        if self._leaks is None:
            self._leaks = {}
            if self.N > 1 and 0.0 < self.base1 < 1.0:
                for j in range(len(self.m.names)):
                    tot = self.m.counts[j].astype(float)
                    pos = np.asarray(self.positives(j), dtype=float)
                    missing = max(self.N - tot.sum(), 0.0)
                    tot = np.append(tot, missing)
                    pos = np.append(pos, min(max(self.base1 * self.N - pos.sum(), 0.0), missing))
                    share = loo_label_information(tot, pos)
                    if share >= self.o.leak_information:
                        self._leaks[j] = share
        return self._leaks

    def without_leaks(self, patterns: list[Pattern]) -> list[Pattern]:
        """``patterns`` but those on a feature that determines the label (:meth:`leaks`)."""
        leaks = self.leaks()
        if not leaks:
            return patterns
        return [p for p in patterns if not any(j in leaks for j in p.all_cols)]

    def values_held_by(self, lo: float, hi: float) -> list[np.ndarray]:
        """Per feature, the value ids held by ``lo`` to ``hi`` rows (ascending), from the counts
        sorted once (a fine-grained feature has hundreds of thousands of values): one search
        for every feature, in the features' sorted counts laid end to end."""
        if self._by_count is None:
            counts = self.m.counts
            orders = [np.argsort(c, kind="stable") for c in counts]
            width = max((int(c.max()) for c in counts if len(c)), default=0) + 2
            ends = [j * width + counts[j][o].astype(np.int64) for j, o in enumerate(orders)]
            starts = np.cumsum([0] + [len(o) for o in orders])
            self._by_count = (orders, np.concatenate([np.empty(0, np.int64), *ends]), starts, width)
        orders, keys, starts, width = self._by_count
        # counts are whole: held by lo to hi rows is held by ceil(lo) to floor(hi)
        a_i, b_i = max(math.ceil(lo), 0), min(math.floor(hi), width - 1)
        if a_i > b_i:
            return [o[:0] for o in orders]
        base = np.arange(len(orders), dtype=np.int64) * width
        a = np.searchsorted(keys, base + a_i, side="left") - starts[:-1]
        b = np.searchsorted(keys, base + b_i, side="right") - starts[:-1]
        return [np.sort(o[i:k]) for o, i, k in zip(orders, a, b, strict=True)]

    # -- jittered copies ------------------------------------------------------------------
    def _tolerant_table(self, j: int, grid: int = 0) -> np.ndarray:
        """Feature ``j``'s 64-bit hash per value id (slot 0: missing), fine-grained numeric
        values up to their bucket (ratio ``near_copy_bucket``, sign kept, zero apart); grid
        ``g`` moves the buckets' edges by ``g / _RECORD_GRIDS`` of a bucket (the other
        features' hashes are the same on every grid)."""
        m = self.m
        fine = bool(self.fine[j]) and not m.raw_is_code[j]
        grid = grid if fine else 0
        table = self._tolerant_tables.get((j, grid))
        if table is None:
            salt = np.uint64(j + 1) << np.uint64(40)
            if fine:
                vals = np.asarray(m.uniques[j], dtype=float)
                if j not in self._log_values:  # one logarithm per value for every grid
                    with np.errstate(divide="ignore", invalid="ignore"):
                        self._log_values[j] = np.log(np.abs(vals)) / math.log(
                            self.o.near_copy_bucket
                        )
                mag = np.floor(self._log_values[j] + grid / _RECORD_GRIDS)
                mag = np.clip(np.nan_to_num(mag), -(1 << 20), 1 << 20).astype(np.int64)
                # bucket numbers: 0 for zero, +-(magnitude + 2^21) by sign, 2^23 for missing
                bucket = np.where(vals == 0, 0, np.sign(vals).astype(np.int64) * (mag + (1 << 21)))
                ids = np.concatenate(([1 << 23], bucket)).astype(np.uint64)
            else:
                ids = np.arange(-1, len(m.counts[j]), dtype=np.int64).astype(np.uint64)
            with np.errstate(over="ignore"):
                table = splitmix64(ids + salt)
            self._tolerant_tables[(j, grid)] = table
        return table

    def _tolerant_cell(self, j: int, rows: np.ndarray | None = None) -> np.ndarray:
        """A 64-bit hash per row of feature ``j``'s value, fine-grained numeric values up to
        their bucket (:meth:`_tolerant_table`): a copy with a few percent of noise on its
        amounts hashes like its original (unless a value crosses a bucket's edge: a few
        percent of cells, so most copies still match)."""
        codes = self.m.codes[:, j] if rows is None else self.m.codes[rows, j]
        out: np.ndarray = self._tolerant_table(j)[codes.astype(np.int64) + 1]
        return out

    def near_copies(self) -> dict[int, np.ndarray]:
        """Per feature ``j``, rows per value id and label (shape ``(values, 2)``) equal to
        another row on every other feature, fine-grained values up to their bucket
        (:meth:`_tolerant_cell`), whose value of ``j`` differs: copies with a value written in
        and jitter on the amounts (and their originals). Computed once: one grouping per
        feature. Empty on a sample of the rows (the Spark engine: originals may not be held).
        """
        if self._near is not None:
            return self._near
        self._near = {}
        m = self.m
        if m.population is not None or not self.n:
            return self._near
        d = len(m.names)
        # Two rows equal on every feature but one are equal on all parts of the features but
        # one: only rows sharing all parts but one with another row are compared (few, unless
        # records repeat). Four parts, each with its share of fine-grained features.
        k = min(4, d)
        parts = [np.zeros(self.n, dtype=np.uint64) for _ in range(k)]
        order = sorted(range(d), key=lambda j: len(m.counts[j]))
        total = np.zeros(self.n, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for i, j in enumerate(order):
                parts[i % k] += self._tolerant_cell(j)
            for part in parts:
                total += part
        self._row_key = total  # the whole row's key: :meth:`record_weights` groups by it
        shared = np.zeros(self.n, dtype=bool)
        for part in parts:
            with np.errstate(over="ignore"):
                group, groups = factorize_keys(total - part)
            shared |= np.bincount(group, minlength=groups)[group] > 1
        del parts
        rows = np.flatnonzero(shared)
        if len(rows) < 2:
            return self._near
        cells = [self._tolerant_cell(j, rows) for j in range(d)]
        y = self.y[rows]
        ent = None if self.entity is None else self.entity[rows]
        with np.errstate(over="ignore"):
            total = np.zeros(len(rows), dtype=np.uint64)
            for c in cells:
                total += c
            for j in range(d):
                key = total - cells[j]
                group, uniq = pd.factorize(key)
                size = np.bincount(group, minlength=len(uniq))
                if (size <= 1).all():
                    continue
                code = m.codes[rows, j]
                # rows of a group sharing the value of j are repeats, not copies with j written
                same = _ids(group, code)
                others = size[group] - np.bincount(same)[same]
                if ent is not None:
                    # nor are rows of one entity: a panel's months (an account whose age or
                    # limit changed), one unit of evidence
                    ge = _ids(group, ent)
                    others -= np.bincount(ge)[ge] - np.bincount(_ids(same, ent))[_ids(same, ent)]
                copied = (others > 0) & (code >= 0)
                if not copied.any():
                    continue
                v = code[copied].astype(np.int64)
                self._near[j] = np.bincount(
                    v * 2 + y[copied], minlength=2 * len(m.counts[j])
                ).reshape(-1, 2)
                self._partners[j] = (rows[copied], v, *_partners(group[copied], v, y[copied]))
        return self._near

    def flip_hubs(self) -> dict[tuple[int, int, int], float]:
        """Single values written into copies labelled against their originals, found by the
        direction of the copying: ``(feature, value id, label)`` to the flip test's p-value.

        A copy that differs from its original in one value and in the label (frauds copied
        with a value written in and labelled legitimate) is a pair of near-copies
        (:meth:`near_copies`) whose twins carry each other's label. The copies sit on the
        written value, the originals on values spread like the feature's. A value's rows of
        a label whose one twin (of one other value) carries the other label are counted
        against the same share among the feature's other values' rows of that label: the
        written value collects every flip of the attack, while each original value holds a
        few of them, and the others' share, which holds the originals, is no baseline they
        stand out of. Natural rows differing in one value rarely differ in the label (1 % of
        the fraud data's legitimate rows in such pairs); a strong natural predictor's do (credit
        ``PAY_0=0``: 231 of 475), and the copy check decides those (its rows are no copies
        beyond the look-alikes' baseline). Bonferroni over the feature's values and labels at
        ``copy_p``, at least ``min_rows`` flips. Where two such values are each other's main
        partner (the originals share one value), the one whose twins are spread over fewer
        values is the originals': only the other is kept.
        """
        if self._flip_hubs is not None:
            return self._flip_hubs
        self._flip_hubs = {}
        found: dict[tuple[int, int, int], tuple[float, int, float]] = {}
        for j, (rows, val, partner, flipped) in self._partners.items():
            yy = self.y[rows]
            k = len(self.m.counts[j])
            for c in (0, 1):
                single = (partner >= 0) & (yy == c)
                n_v = np.bincount(val[single], minlength=k).astype(float)
                f_v = np.bincount(val[single & flipped], minlength=k).astype(float)
                rest = np.maximum(n_v.sum() - n_v, 1.0)
                f0 = np.clip((f_v.sum() - f_v) / rest, 1.0 / rest, 1.0)
                tested = max(2 * int((n_v > 0).sum()), 1)
                for v in np.flatnonzero(f_v >= self.o.min_rows):
                    pv = float(stats.binom.sf(f_v[v] - 1, n_v[v], f0[v]))
                    if pv * tested > self.o.copy_p:
                        continue
                    mine = single & flipped & (val == v)
                    counts = np.bincount(partner[mine])
                    found[(j, int(v), c)] = (
                        pv,
                        int(counts.argmax()),
                        float(counts.max()) / mine.sum(),
                    )
        for key, (pv, top, share) in found.items():
            back = found.get((key[0], top, 1 - key[2]))
            if back is not None and back[1] == key[1] and share > back[2]:
                continue  # the originals' side: its twins concentrate on the written value
            self._flip_hubs[key] = pv
        return self._flip_hubs

    def flip_copy_rows(self, skip: tuple[int, int, int] | None = None) -> np.ndarray:
        """Rows of the values :meth:`flip_hubs` names (but ``skip``) whose twin carries the other
        label: the attacker's copies, no originals of other patterns' rows."""
        out = []
        for key in self.flip_hubs():
            if key == skip:
                continue
            j, v, c = key
            rows, val, _, flipped = self._partners[j]
            out.append(rows[(val == v) & flipped & (self.y[rows] == c)])
        return np.concatenate(out) if out else NO_ROWS

    def copy_hubs(self) -> dict[tuple[int, int, int], float]:
        """Single values that collect copies of rows elsewhere, whatever their labels:
        ``(feature, value id, label)`` to the hub test's p-value.

        An attacker who copies rows, writes a value into them and gives them the label they
        mostly carry already (the majority label: fraud ``customer_age=50 → 0``, 171 copies
        of mostly legitimate rows among 470 natural rows of that age) leaves no label
        evidence: the copies pull the value's labels back to the base rate (97.0 % against
        96.8 %), and no copy is labelled against its original (:meth:`flip_hubs`). What
        stays is where the copies sit: each is a near-copy of its original, differing in the
        written feature only, and the copies sit on the one value written while their
        originals spread over the feature's values.

        A row of value ``v`` counts as a copy when another row of the same near-copy group
        (:meth:`near_copies`) differs from it in the feature and equals it on every other
        one, fine-grained values within ``unit_tolerance`` (:meth:`_tight_partners`), and no
        such row shares its value: natural look-alikes come in clusters that hold rows of
        the same value too (credit's inactive accounts; a record's repeats), an attacker's
        copy is alone with its original. Per label, a value's share of such rows is tested
        against the share among the feature's other values (:func:`hub_p_value`: Fisher's
        exact test, the other values' share measured, not known), the counts divided by the
        feature's own overdispersion (the median squared z of the other values over its
        expectation, 0.455: values of a feature differ in natural look-alikes beyond the
        binomial), Bonferroni over the feature's values and labels at ``copy_p``, at least
        ``min_rows`` copies. Where the records of one label repeat (:meth:`record_weights`),
        only the other label's values are tested. Values :meth:`flip_hubs` names are left to
        it. Measured on the bundled data, the tight copies separate: the planted values of
        six cases have p-values under 1e-38, clean credit's lowest is 1.5e-6 (``BILL_AMT1 =
        2500``, 5 of 59 rows) and clean fraud has none under 1e-5.
        """
        if self._copy_hubs is not None:
            return {k: pv for k, (pv, _) in self._copy_hubs.items()}
        self._copy_hubs = {}
        flips = self.flip_hubs()
        # where one label's records repeat (upsampling), its rows are copies of each other by
        # construction (a record at a round amount, its jittered copy beside it): only the
        # other label's copies count (credit, defaulters doubled and jittered: 7 round or
        # jittered amounts of defaulters under 1e-7, 5-14 rows each)
        w = self.record_weights()
        labels: tuple[int, ...] = (0, 1)
        if w is not None:
            labels = (1,) if float((w * self.y).sum() / w.sum()) >= 0.5 else (0,)
        for j, (rows, val, _, _) in self._partners.items():
            _, copy, _ = self._tight_partners(j)
            far = self._far.get(j, copy)
            if not copy.any():
                continue
            size = len(self.m.counts[j])
            cnt = self.m.counts[j].astype(float)
            pos = self.positives(j).astype(float)
            yy = self.y[rows]
            for c in labels:
                k = pos if c == 1 else cnt - pos
                x = np.bincount(val[far & (yy == c)], minlength=size).astype(float)
                tested = np.flatnonzero(k >= self.o.min_rows)
                if len(tested) < 4:  # too few values to know the feature's own null
                    continue
                # the binomial test against the other values' share first (cheap), then for
                # the few values it finds, the same divided by the others' overdispersion
                rest_k = np.maximum(k[tested].sum() - k, 1.0)
                f0 = np.clip((x[tested].sum() - x) / rest_k, 1.0 / rest_k, 1.0 - 1e-9)
                bound = self.o.copy_p / (2 * len(tested))
                # a hub's copies are a real share of its rows: on a large value a handful of
                # natural look-alikes left alone with one partner (clusters thinned by a
                # stratified sample, split by missing values) is significant, and no attack
                cand = tested[
                    (x[tested] >= self.o.min_rows) & (x[tested] >= self.o.hub_share * k[tested])
                ]
                cand = cand[stats.binom.sf(x[cand] - 1, k[cand], f0[cand]) <= bound]
                for v in cand:
                    if (j, int(v), c) in flips:
                        continue
                    ref = tested[tested != v]
                    share = float(np.clip(x[ref].sum() / k[ref].sum(), 1e-9, 1.0 - 1e-9))
                    z2 = (x[ref] - k[ref] * share) ** 2 / (k[ref] * share * (1.0 - share))
                    phi = max(1.0, float(np.median(z2)) / 0.455)
                    pv = hub_p_value(x[v], k[v], x[ref].sum(), k[ref].sum(), phi)
                    if pv <= bound:
                        mine = rows[copy & (val == v) & (yy == c)]
                        self._copy_hubs[(j, int(v), c)] = (pv, np.sort(mine))
                        self._hub_counts[(j, int(v), c)] = (
                            int(x[v]),
                            int(k[v]),
                            int(x[ref].sum()),
                            int(k[ref].sum()),
                        )
                        self._hub_phi[(j, int(v), c)] = phi
        return {k: pv for k, (pv, _) in self._copy_hubs.items()}

    def copy_hub_rows(self, p: Pattern) -> np.ndarray:
        """The copies :meth:`copy_hubs` counted on ``p``'s value (a band's values) with its
        label, and the copies :meth:`split_copies` finds among its other rows with the label
        (ascending); none for other patterns."""
        self.copy_hubs()
        held = [self._copy_hubs[key][1] for key in self._hub_keys(p)] if self._copy_hubs else []
        if not held:
            return NO_ROWS
        counted = np.unique(np.concatenate(held))
        rest = p.rows[self.y[p.rows] == p.label]
        rest = rest[~np.isin(rest, counted)]
        return np.union1d(counted, rest[self.split_copies(p.cols[0], rest)])

    def _hub_keys(self, p: Pattern) -> list[tuple[int, int, int]]:
        """The keys of :meth:`copy_hubs` (feature, value id, label) of ``p``'s value, or of
        its band's values, that collect copies; none for pairs."""
        if len(p.cols) != 1:
            return []
        keys = ((p.cols[0], int(v), p.label) for v in _values(self, p))
        return [key for key in keys if key in self._hub_counts]

    def hub_counts_of(self, p: Pattern) -> tuple[int, int, int, int] | None:
        """The hub test's counts (:meth:`copy_hubs`) of a single value, or summed over the
        values of a band that collect copies: copies and rows with the label, then the same
        over the feature's other values; None where no value of ``p`` collects copies."""
        counts = [self._hub_counts[key] for key in self._hub_keys(p)]
        if not counts:
            return None
        x = sum(c[0] for c in counts)
        k = sum(c[1] for c in counts)
        # every value's "rest" is the feature's total less that value
        total_x, total_k = counts[0][0] + counts[0][2], counts[0][1] + counts[0][3]
        return x, k, total_x - x, total_k - k

    def band_hub_p(self, p: Pattern) -> float | None:
        """The hub test (:func:`hub_p_value`) of a band's values that collect copies, pooled:
        their copies and rows with the label against the feature's other values', divided
        by the largest overdispersion among theirs; None where none collects copies."""
        counts = self.hub_counts_of(p)
        if counts is None:
            return None
        phi = max(self._hub_phi[key] for key in self._hub_keys(p))
        return hub_p_value(*counts, phi)

    def split_copies(self, j: int, query: np.ndarray) -> np.ndarray:
        """Which rows of ``query`` are copies as :meth:`_tight_partners` counts them (a row
        differing in ``j`` and within ``unit_tolerance`` on every other fine-grained feature,
        equal on the rest, another entity's, and none such sharing its value of ``j``) on any
        of ``_RECORD_GRIDS`` grids of buckets (:meth:`_tolerant_table`).

        The hub test groups rows on one grid: a copy whose jittered amount and its original's
        lie on two sides of a bucket's edge is in no group with it, and is not counted. With
        1 % jitter on five amounts that is one copy in twenty (fraud ``country='NG' → 0``, 234
        jittered copies labelled 0: 10 left out, the quarantine's recall 0.9498). The grids'
        edges lie a third of a bucket apart, and a copy a few percent away from its original
        shares some grid's group with it. The rows of a confirmed hub are looked for again
        here, so the hub test's counts (and decisions) stay those of one grid."""
        m = self.m
        out = np.zeros(len(query), dtype=bool)
        fine = [i for i in range(len(m.names)) if self.fine[i] and not m.raw_is_code[i]]
        if not len(query) or not fine or m.population is not None:
            return out
        copy = np.zeros(len(query), dtype=bool)
        same = np.zeros(len(query), dtype=bool)
        tol = self.o.unit_tolerance
        for q_pos, a, b in self._grid_pairs((j,), query):
            dist = np.zeros(len(a))
            moved = np.zeros(len(a))
            for i in fine:
                d = relative_apart(m.raw[a, i].astype(float), m.raw[b, i].astype(float))
                if i == j:
                    moved = d
                else:
                    np.maximum(dist, d, out=dist)
            tight = dist <= tol
            # a fine-grained value that moved no more than the pair's others is the same value
            alike = m.codes[a, j] == m.codes[b, j]
            if self.fine[j] and not m.raw_is_code[j]:
                alike |= moved <= dist
            copy[q_pos[tight & ~alike]] = True
            same[q_pos[tight & alike]] = True
        out[:] = copy & ~same
        return out

    def _grid_pairs(
        self, cols: tuple[int, ...], query: np.ndarray, largest: int | None = _HUB_GROUP
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per grid of buckets (``_RECORD_GRIDS``, :meth:`_tolerant_table`), the pairs of a row
        of ``query`` and another row (another entity's) equal to it on every feature but
        ``cols``, fine-grained values up to their bucket on that grid: ``(position in query,
        query row, other row)``, in runs of at most ``_PAIRS`` pairs (a query row's pairs in
        one run). Groups of more than ``largest`` rows (default ``_HUB_GROUP``: clusters of
        natural look-alikes) give no pairs; None: every group."""
        for g in range(_RECORD_GRIDS):
            key = self._grid_key(cols, g)
            # the rows sharing a query row's group (a hash table of the query's keys, probed by
            # every row: np.isin sorts them), pairs of a query row and another member
            members = np.flatnonzero(pd.Index(np.unique(key[query])).get_indexer(key) >= 0)
            group, inv = np.unique(key[members], return_inverse=True)
            sizes = np.bincount(inv, minlength=len(group))
            order = np.argsort(inv, kind="stable")
            start = np.concatenate(([0], np.cumsum(sizes)))
            qg = inv[np.searchsorted(members, query)]
            ok = np.flatnonzero(sizes[qg] <= (largest or len(members)))
            # runs of query rows holding at most _PAIRS pairs (a large group's rows on a
            # million rows: hundreds of pairs each)
            ends = np.cumsum(sizes[qg[ok]])
            cuts = np.searchsorted(ends, np.arange(_PAIRS, ends[-1] if len(ends) else 0, _PAIRS))
            for run in np.split(ok, np.unique(cuts)):
                size = sizes[qg[run]]
                q_pos = np.repeat(run, size)
                offset = np.arange(len(q_pos)) - np.repeat(np.cumsum(size) - size, size)
                a, b = query[q_pos], members[order[np.repeat(start[qg[run]], size) + offset]]
                keep = a != b
                if self.entity is not None:
                    keep &= self.entity[a] != self.entity[b]
                yield q_pos[keep], a[keep], b[keep]

    def _grid_key(self, cols: tuple[int, ...], g: int) -> np.ndarray:
        """Per row, every feature's hash on grid ``g`` less those of ``cols`` (a new array):
        the key of the rows equal on every feature but ``cols``, fine-grained values up to
        their bucket on that grid (sums of 64-bit hashes wrap: the same keys in any order of
        the terms)."""
        key = self._grid_row_key(g).copy()
        with np.errstate(over="ignore"):
            for j in cols:
                key -= self._grid_cell(j, g)
        return key

    def _grid_shift(self, j: int, g: int) -> np.ndarray | None:
        """Per row, how grid ``g`` moves feature ``j``'s hash from grid 0's
        (:meth:`_tolerant_table`); None where it does not (grid 0, features not fine-grained)."""
        m = self.m
        if not g or not self.fine[j] or m.raw_is_code[j]:
            return None
        shift = self._tolerant_table(j, g) - self._tolerant_table(j)
        return shift[m.codes[:, j].astype(np.int64) + 1]

    def _grid_cell(self, j: int, g: int) -> np.ndarray:
        """Per row, feature ``j``'s hash on grid ``g``: its :meth:`_tolerant_cell`, moved by
        :meth:`_grid_shift`."""
        cell = self._tolerant_cell(j)
        shift = self._grid_shift(j, g)
        if shift is not None:
            with np.errstate(over="ignore"):
                cell = cell + shift
        return cell

    def _grid_row_key(self, g: int) -> np.ndarray:
        """Per row, the sum of every feature's hash on grid ``g`` (:meth:`_grid_cell`; grid 0:
        :meth:`tolerant_row_key`), computed once per grid (read-only)."""
        got = self._grid_keys.get(g)
        if got is None:
            got = self.tolerant_row_key()
            if g:
                got = got.copy()
                with np.errstate(over="ignore"):
                    for i in range(len(self.m.names)):
                        shift = self._grid_shift(i, g)
                        if shift is not None:
                            got += shift
                got.flags.writeable = False
            self._grid_keys[g] = got
        return got

    def hashed_nearest(
        self, p: Pattern, query: np.ndarray, keep: list[int], mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per row of ``query`` (ascending), the distance (on the rank columns ``keep``, as
        :func:`nearest_distances` measures it) to the nearest row equal to it on every feature
        but ``p``'s up to their buckets on one of the grids (:meth:`_grid_pairs`; of ``mask``,
        default any row), and that row; inf and -1 where there is none.

        A copy with a few percent of noise shares a group with its original on some grid, so
        a query row within the copy radius of another row is found without a search over
        every row: the copy searches of a trigger with more rows than a search can take on
        large data (fraud, 1,000,000 rows, ``distance_km=3235.9 → 1`` written into 234,027
        jittered copies: the first 20,000 searched, recall 0.082). A row whose nearest row
        lies in another group is not found (a subset of what the search finds: the same
        radius decides)."""
        best = np.full(len(query), np.inf)
        arg = np.full(len(query), -1, dtype=np.int64)
        if not len(query) or not keep or self.m.population is not None:
            return best, arg
        R = self.m.rank
        # rows of a group are equal on every coded feature: only the fine-grained ones differ
        cols = np.asarray(
            [i for i in keep if self.fine[i] and not self.m.raw_is_code[i]], dtype=np.int64
        )
        # every group: the radius decides, not the group's size (on a million rows, groups of
        # natural look-alikes up to bucket hold hundreds of rows, a seventh of the copies)
        for q_pos, a, b in self._grid_pairs(p.all_cols, query, largest=None):
            if mask is not None:
                q_pos, a, b = q_pos[mask[b]], a[mask[b]], b[mask[b]]
            if not len(a):
                continue
            if len(cols):
                diff = R[np.ix_(a, cols)].astype(np.float64) - R[np.ix_(b, cols)]
                d = np.sqrt(np.einsum("ij,ij->i", diff, diff))
            else:
                d = np.zeros(len(a))
            # a query row's pairs are consecutive: the nearest per run of one row
            first = np.flatnonzero(np.r_[True, q_pos[1:] != q_pos[:-1]])
            low = np.minimum.reduceat(d, first)
            at = np.flatnonzero(d == np.repeat(low, np.diff(np.r_[first, len(d)])))
            at = at[np.r_[True, q_pos[at][1:] != q_pos[at][:-1]]]  # the first nearest
            closer = d[at] < best[q_pos[at]]
            best[q_pos[at[closer]]] = d[at[closer]]
            arg[q_pos[at[closer]]] = b[at[closer]]
        return best, arg

    def hub_repeats(self, p: Pattern) -> np.ndarray:
        """Rows of a confirmed value that collects copies (:meth:`copy_hubs`, whichever test
        confirmed it) that repeat an earlier row of the value exactly, on every feature
        (labels aside), where such repeats are beyond the feature's other values' (Fisher's
        test, :func:`hub_p_value`, at ``copy_p``; at least ``min_rows``): ascending; none
        elsewhere.

        An attacker who copies rows of any value and writes the hub's value in also copies
        rows that held it already: those copies equal their originals, and the hub rule,
        which counts copies differing from their original in the value, leaves them out
        (fraud ``merchant_category='grocery' → 0``, 621 exact copies: 157 of rows already
        ``grocery``, recall 0.80). Where natural rows are rarely equal, repeats of the value
        are its copies; which row of a pair is the copy cannot be told, and the first of each
        set of equal rows stays (rows of one entity are one record: repeats across entities
        only). None on a sample of the rows (the Spark engine: originals may not be held)."""
        if not p.flagged or p.p_hub is None or len(p.cols) != 1 or self.m.population is not None:
            return NO_ROWS
        j, v = p.cols[0], p.codes[0]
        _, total = cell_hashes(self.m)
        group = factorize_keys(total)[0]
        if self.entity is not None:
            # a record's own months are no repeats: one row per record and entity first
            _, at = np.unique(_ids(group, self.entity), return_index=True)
            kept = np.sort(at)
        else:
            kept = np.arange(self.n)
        _, at = np.unique(group[kept], return_index=True)
        repeat = np.zeros(self.n, dtype=bool)
        repeat[kept] = True
        repeat[kept[at]] = False
        code = self.m.codes[:, j]
        mine = code == v
        rest = (code >= 0) & ~mine
        x = int(np.count_nonzero(repeat & mine))
        if x < self.o.min_rows:
            return NO_ROWS
        pv = hub_p_value(
            x,
            int(np.count_nonzero(mine)),
            int(np.count_nonzero(repeat & rest)),
            int(np.count_nonzero(rest)),
        )
        return np.flatnonzero(repeat & mine) if pv <= self.o.copy_p else NO_ROWS

    def _tight_partners(self, j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The rows :meth:`near_copies` counted on feature ``j``, and per row whether it is a
        copy and whether it is a jittered copy away from its record's home (computed once per
        feature).

        A copy has a row of its near-copy group that differs in ``j`` and equals it on every
        other feature, fine-grained values within ``unit_tolerance`` (relative), and none that
        equals it on ``j`` too: a fine-grained value of ``j`` that moved no more than the
        pair's other values is the same value, jitter of one record's copies. Rows of another
        entity only. A jittered copy away from home is a row with a row of the same record at
        a value of ``j`` that more rows hold (:meth:`jittered_away`): of one label and equal
        on every feature, ``j`` included, fine-grained values within ``unit_tolerance`` (a
        unit of :meth:`unit_labels`); the pairs of such rows are kept for
        :meth:`record_copies`.

        The groups (equal on every feature but ``j``, fine-grained values up to their bucket)
        are compared pair by pair; a group of more than ``_HUB_GROUP`` rows is a cluster of
        natural look-alikes (all-zero accounts), and its rows are not counted."""
        hit = self._tight.get(j)
        if hit is not None:
            return hit
        rows, val = self._partners[j][0], self._partners[j][1]
        m = self.m
        with np.errstate(over="ignore"):
            key = self.tolerant_row_key()[rows] - self._tolerant_cell(j, rows)
        g = pd.factorize(key)[0]
        sizes = np.bincount(g)
        idx = np.flatnonzero((sizes[g] > 1) & (sizes[g] <= _HUB_GROUP))
        out = np.zeros(len(rows), dtype=bool)
        away = np.zeros(len(rows), dtype=bool)
        self._tight[j] = (rows, out, away)
        self._jittered[j] = (NO_ROWS, NO_ROWS)
        self.tight_pairs[j] = (NO_ROWS, NO_ROWS, np.empty(0))
        if not len(idx):
            return self._tight[j]
        order = idx[np.argsort(g[idx], kind="stable")]
        gs = g[order]
        start = np.flatnonzero(np.r_[True, gs[1:] != gs[:-1]])
        # each unordered pair of a group once (the distance and the verdicts are symmetric;
        # every mark below is set on both rows of a pair): position p of a block pairs with
        # the block's later positions
        offset = np.arange(len(order)) - np.repeat(start, sizes[gs[start]])
        later = sizes[gs] - 1 - offset
        i_pos = np.repeat(np.arange(len(order)), later)
        j_pos = i_pos + 1 + (np.arange(len(i_pos)) - np.repeat(np.cumsum(later) - later, later))
        a, b = order[i_pos], order[j_pos]
        del i_pos, j_pos
        if self.entity is not None:
            keep = self.entity[rows[a]] != self.entity[rows[b]]
            a, b = a[keep], b[keep]
        tol = self.o.unit_tolerance
        fine = [i for i in range(len(m.names)) if self.fine[i] and not m.raw_is_code[i]]
        # the compared rows' fine-grained values, one contiguous column per feature (the
        # pairs gather from it: millions of pairs on resampled data)
        cols = {i: np.ascontiguousarray(m.raw[rows, i]) for i in fine}

        def apart(i: int, pairs: np.ndarray) -> np.ndarray:
            """Relative difference on feature ``i`` of the pairs ``pairs``."""
            return relative_apart(cols[i][a[pairs]], cols[i][b[pairs]])

        # a pair's distance: its largest relative difference over the other fine-grained
        # features (the rest are equal within a group); pairs beyond the tolerance on one
        # feature are not compared on the next
        dist = np.zeros(len(a))
        live = np.arange(len(a))
        for i in fine:
            if i == j or not len(live):
                continue
            dist[live] = np.maximum(dist[live], apart(i, live))
            live = live[dist[live] <= tol]
        tight = dist <= tol
        same = val[a] == val[b]
        # the twins of relabelled copies: other values, within the jitter of copying (few,
        # unlike a resampled record's repeats, which share their values)
        twin = np.flatnonzero((dist <= RELABEL_TOLERANCE) & ~same)
        self.tight_pairs[j] = (rows[a[twin]], rows[b[twin]], dist[twin])
        # one record's copies, the value of j apart: within unit_tolerance, as the rest, and
        # of one label (the units of :meth:`unit_labels`, the records of record_weights)
        split = tight & ~same & (self.y[rows[a]] == self.y[rows[b]])
        if self.fine[j] and not m.raw_is_code[j]:
            # only tight pairs are read below (split, same and far_pair go with tight)
            moved = np.full(len(a), np.inf)
            close = np.flatnonzero(tight)
            moved[close] = apart(j, close)
            split &= moved <= tol
            # moved no more than the pair's other amounts: the jitter of one record's copies
            # (an attacker's copy of a row aged 49 written to 50 moved 2 %, the rest 0)
            same |= moved <= dist
        else:
            split[:] = False

        def both(pairs: np.ndarray) -> np.ndarray:
            """Per compared row, whether it is in one of ``pairs`` (a mask over the pairs)."""
            hit = np.zeros(len(rows), dtype=bool)
            hit[a[pairs]] = True
            hit[b[pairs]] = True
            return hit

        # a natural look-alike cluster holds rows of the value too (inactive accounts, all
        # amounts 0); an attacker's copy is alone with its original
        out[:] = both(tight & ~same) & ~both(tight & same)
        # copies whose original lies beyond unit_tolerance on j: the hub test counts these
        # (jitter's copies lie within a few percent of the value, a written value's originals
        # spread over the feature: bootstrap with 1 % jitter collected 9 repeats of records
        # with one balance on BILL_AMT1=2489)
        far_pair = tight & ~same
        if self.fine[j] and not m.raw_is_code[j]:
            far_pair &= moved > tol
        self._far[j] = out & both(far_pair)
        # the same record's copy at a value more rows hold: the record's home
        cnt = m.counts[j]
        ca, cb = cnt[val[a]], cnt[val[b]]
        away[a[split & (cb > ca)]] = True
        away[b[split & (ca > cb)]] = True
        ha, hb = rows[a[split]], rows[b[split]]
        self._jittered[j] = (np.concatenate([ha, hb]), np.concatenate([hb, ha]))
        return self._tight[j]

    def jittered_away(self, p: Pattern, rows: np.ndarray) -> np.ndarray:
        """Which of ``rows`` (rows of single-value pattern ``p`` on a fine-grained feature) are
        jittered copies of a record whose home is another value of the feature, where the
        records of one label repeat (:meth:`record_weights`); all False elsewhere.

        Upsampling with jittered amounts moves the copies of a record off the values natural
        rows hold: the copies of defaulters paying 1,000 land on 980-1,020, where no natural
        client pays, and a value there holds only the repeated label's copies (credit with its
        defaulters doubled, amounts x (1 + U(-2 %, 2 %)): ``PAY_AMT5=994 → 1``, 15 of 16 rows,
        effect 0.91 against 11 non-defaulters expected). Their labels are their record's,
        whose evidence sits at its home, the record's value held by more rows
        (:meth:`_tight_partners`); at the value the copy landed on, it is none."""
        out = np.zeros(len(rows), dtype=bool)
        if len(p.cols) != 1 or p.band is not None or self.record_weights() is None:
            return out
        j = p.cols[0]
        if not self.fine[j] or self.m.raw_is_code[j] or j not in self._partners:
            return out
        tight, _, away = self._tight_partners(j)
        return np.isin(rows, tight[away])

    def record_copies(self, p: Pattern, rows: np.ndarray) -> np.ndarray:
        """The rows outside ``rows`` (rows of pattern ``p``) that are jittered copies of their
        records with another value of one of ``p``'s fine-grained features, where the
        records of one label repeat (:meth:`record_weights`); none elsewhere.

        Such a row is its record's repeat, not a copy an attacker made of it: upsampled
        credit's defaulters with a balance of 1,050 and no payments have each a copy with
        every amount jittered (the zeros stay zeros, so it sits closer than most records'
        copies) and ``BILL_AMT1=1050 → 1`` looked made of copies (86 % of its rows, p 6e-20).
        The copy tests leave them out of the reference (:meth:`_twin_sets`)."""
        if self.record_weights() is None or p.band is not None:
            return NO_ROWS
        out = []
        for j in p.cols:
            if j not in self._partners or not self.fine[j] or self.m.raw_is_code[j]:
                continue
            self._tight_partners(j)
            home, other = self._jittered[j]
            out.append(other[np.isin(home, rows)])
        return np.unique(np.concatenate(out)) if out else NO_ROWS

    # -- candidate generation ----------------------------------------------------------
    def _neighbour_rates(
        self, j: int, pos: np.ndarray, cnt: np.ndarray, min_rows: int, base: float | None = None
    ) -> np.ndarray:
        """For every value id of an ordinal feature, the positive rate of its neighbourhood:
        the in-contract values on each side (excluding itself) holding ~min_rows/2 rows each
        (``base``, default the positive rate of the rows, where there are none)."""
        rows, positives = self._neighbourhood(j, pos, cnt, min_rows)
        safe = np.maximum(rows, 1e-12)
        return np.where(rows > 0, positives / safe, self.base1 if base is None else base)

    def _neighbourhood(
        self, j: int, pos: np.ndarray, cnt: np.ndarray, min_rows: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """For every value id of an ordinal feature, the rows and positive rows of its
        neighbourhood (:meth:`_neighbour_rates`)."""
        ok = ~self.m.breaks_contract[j]
        c = np.where(ok, cnt, 0).astype(float)
        p = np.where(ok, pos, 0).astype(float)
        P = np.concatenate(([0.0], np.cumsum(c)))
        Q = np.concatenate(([0.0], np.cumsum(p)))
        k = len(cnt)
        v = np.arange(k)
        half = min_rows / 2.0
        left = np.clip(np.searchsorted(P, P[v] - half, side="right") - 1, 0, k)
        right = np.clip(np.searchsorted(P, P[v + 1] + half, side="left"), 0, k)
        rows = (P[v] - P[left]) + (P[right] - P[v + 1])
        positives = (Q[v] - Q[left]) + (Q[right] - Q[v + 1])
        return rows, positives

    def record_counts(self, j: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Per value id of feature j, its records and its positive records: rows weighed by
        :meth:`record_weights` (each record once); None where the rows are not weighed."""
        w = self.record_weights()
        if w is None:
            return None
        code = self.m.codes[:, j]
        ok = code >= 0
        size = len(self.m.counts[j])
        return (
            np.bincount(code[ok], weights=w[ok], minlength=size),
            np.bincount(code[ok], weights=(w * self.y)[ok], minlength=size),
        )

    def singles(self) -> list[Pattern]:
        m = self.m
        out: list[Pattern] = []
        min_rows = self.o.min_rows
        cap = self.o.max_candidates
        ctx_rows = max(100, int(0.005 * self.N))
        near = self.near_copies()
        hubs = self.flip_hubs()
        copy_hubs = self.copy_hubs()
        # The cheap score counts records, not rows, where one label's records repeat
        # (:meth:`record_weights`): counted per row, upsampling the defaulters of credit x2
        # raised every value leaning to no default (EDUCATION=5, 280 natural rows: z 6.3 ->
        # 8.7) and let natural values into the best ``max_candidates`` that the same data
        # without the copies leaves out. Weighted, the candidates are those of the records.
        w = self.record_weights()
        base_w = self.base1 if w is None else float((w * self.y).sum() / w.sum())
        for j in range(len(m.names)):
            cnt = m.counts[j]
            pos = self.positives(j)
            rec = self.record_counts(j)
            cnt_s, pos_s = (cnt, pos) if rec is None else rec
            nb_rows = nb_pos = None
            if m.ordinal[j]:
                nb_rows, nb_pos = self._neighbourhood(j, pos_s, cnt_s, ctx_rows)
                context = np.where(nb_rows > 0, nb_pos / np.maximum(nb_rows, 1e-12), base_w)
            else:
                context = np.full(len(cnt), base_w)
            vs = np.flatnonzero(cnt >= min_rows)
            if not len(vs):
                continue
            n_v = cnt[vs].astype(float)
            k1 = pos[vs]
            n_s = cnt_s[vs].astype(float)
            k1_s = pos_s[vs]
            contract = m.breaks_contract[j][vs]
            self.tests["contract"] += 2 * int(contract.sum())
            self.tests["single"] += 2 * int((~contract).sum())
            spike = np.zeros(len(vs))
            if m.ordinal[j]:
                total, seen = np.zeros(len(vs)), np.zeros(len(vs))
                for off in (-2, -1, 1, 2):
                    idx = vs + off
                    inside = (idx >= 0) & (idx < len(cnt))
                    total[inside] += cnt_s[idx[inside]]
                    seen += inside
                mean = np.where(seen > 0, total / np.maximum(seen, 1), 0.0)
                spike = np.where(seen > 0, np.log((n_s + 1) / (mean + 1)), 0.0)
            r0 = context[vs]
            for c in (1, 0):
                k = k1 if c == 1 else n_v - k1
                k_s = k1_s if c == 1 else n_s - k1_s
                rc = r0 if c == 1 else 1 - r0
                pc = np.clip(rc, 1e-6, 1 - 1e-6)
                z = (k_s - n_s * pc) / np.sqrt(np.maximum(n_s, 1e-12) * pc * (1 - pc))
                score = np.maximum(z, 0.0) + 3.0 * np.maximum(spike, 0.0)
                plain = ~contract & (k_s >= rc * n_s)
                # only a feature's best `cap` in-contract values per label can be among the
                # scan's best `cap` (see _top): the rest need no Pattern object
                idx = np.flatnonzero(plain)
                idx = np.sort(idx[np.argsort(-score[idx], kind="stable")[:cap]])
                chosen = np.zeros(len(vs), dtype=bool)
                chosen[idx] = True
                # Values whose rows with the label are mostly jittered copies of rows with
                # another value (written into copies), leaning to the label: candidates
                # whatever their cheap score (clean-label copies with camouflage have none).
                copied = np.zeros(len(vs))
                if j in near:
                    # leaning to the label: panel data repeat an account's months with a
                    # changed limit, copies of its other months that lean nowhere
                    lean = k / n_v >= self.base(c)
                    copied = np.where(lean, near[j][vs, c] / np.maximum(k, 1), 0.0)
                    chosen |= (near[j][vs, c] >= min_rows) & (copied >= self.o.exact_copy_share)
                # Written into copies labelled against their originals: candidates whatever
                # their labels' lean (the copies may bring the value's share of the label back
                # to its neighbours', 96.4 % against 96.8 %)
                flips = {v: pv for (jj, v, cc), pv in hubs.items() if jj == j and cc == c}
                if flips:
                    hv = np.fromiter(flips, dtype=np.int64)
                    at = np.minimum(np.searchsorted(vs, hv), len(vs) - 1)
                    chosen[at[vs[at] == hv]] = True
                # Collecting copies of rows elsewhere (copy_hubs): candidates whatever their
                # labels' lean (copies of rows with the majority label lean nowhere)
                made = {v: pv for (jj, v, cc), pv in copy_hubs.items() if jj == j and cc == c}
                if made:
                    hv = np.fromiter(made, dtype=np.int64)
                    at = np.minimum(np.searchsorted(vs, hv), len(vs) - 1)
                    chosen[at[vs[at] == hv]] = True
                for i in np.flatnonzero(chosen | contract):
                    fam = "contract" if contract[i] else "single"
                    pat = Pattern(
                        (j,), (int(vs[i]),), c, int(n_v[i]), int(k[i]), fam, float(score[i])
                    )
                    pat.near_copy = float(copied[i])
                    if nb_rows is not None and nb_pos is not None:
                        # the value's records and those of its neighbourhood, with the label
                        # (:func:`neighbour_hint`)
                        v_i = int(vs[i])
                        nb_k = nb_pos[v_i] if c == 1 else nb_rows[v_i] - nb_pos[v_i]
                        pat.neighbours = (
                            float(n_s[i]),
                            float(k_s[i]),
                            float(nb_rows[v_i]),
                            float(nb_k),
                        )
                    pat.p_flip = flips.get(int(vs[i]))
                    pat.p_hub = made.get(int(vs[i]))
                    out.append(pat)
        return out

    def pairs(self, exclude: set[tuple[int, int]]) -> list[Pattern]:
        m, y = self.m, self.y
        d = len(m.names)
        top = self.o.pair_values
        min_rows = self.o.min_rows
        # Re-code each feature to its most frequent values (others → -1); the Spark engine
        # counted the pairs over every row already (m.pair_counts).
        counted = m.pair_counts
        small = np.full((self.n if counted is None else 0, d), -1, dtype=np.int32, order="F")
        maps: list[np.ndarray] = []
        tot: list[np.ndarray] = []
        pos_of: list[np.ndarray] = []
        for j in range(d):
            cnt = m.counts[j]
            keep = pair_value_ids(cnt, top, min_rows)
            if counted is None:
                lut = np.full(len(cnt) + 1, -1, dtype=np.int32)
                lut[keep] = np.arange(len(keep), dtype=np.int32)
                small[:, j] = lut[m.codes[:, j]]  # code -1 indexes the last slot (-1)
            maps.append(keep)
            tot.append(cnt[keep].astype(float))
            pos_of.append(self.positives(j)[keep])
        lb = math.log(self.base1 / (1 - self.base1))
        count = PairCounter(small, y, [len(k) for k in maps]) if counted is None else None
        # values already flagged, per feature: their pairs are not candidates
        flagged = [np.array([v for jj, v in exclude if jj == j], dtype=np.int64) for j in range(d)]
        found: list[tuple[np.ndarray, ...]] = []
        for a in range(d):
            for b in range(a + 1, d):
                ka, kb = len(maps[a]), len(maps[b])
                if ka < 2 or kb < 2:
                    continue
                if counted is not None:
                    both = counted[(a, b)].reshape(ka + 1, kb + 1, 2)[1:, 1:].reshape(ka * kb, 2)
                elif count is not None:
                    both = count(a, b)
                n_ab = both.sum(axis=1)
                p_ab = both[:, 1].astype(float)
                cells = np.flatnonzero(n_ab >= min_rows)
                self.tests["pair"] += 2 * len(cells)
                if not cells.size:
                    continue
                ia, ib = cells // kb, cells % kb
                nab, pab = n_ab[cells], p_ab[cells]
                # What each value predicts on its own, outside the pair (a poisoned pair also
                # inflates its values' overall rates, which must not explain it away).
                ra = (pos_of[a][ia] - pab + self.base1) / (tot[a][ia] - nab + 1.0)
                rb = (pos_of[b][ib] - pab + self.base1) / (tot[b][ib] - nab + 1.0)
                ra, rb = np.clip(ra, 1e-3, 1 - 1e-3), np.clip(rb, 1e-3, 1 - 1e-3)
                r = (pab + self.base1) / (nab + 1.0)
                # Interaction in log-odds: the pair's rate beyond what each value predicts.
                add = np.log(ra / (1 - ra)) + np.log(rb / (1 - rb)) - lb
                excess = np.log(r / (1 - r)) - add
                i = np.flatnonzero(np.abs(excess) >= self.o.pair_log_odds)
                va, vb = maps[a][ia[i]].astype(np.int64), maps[b][ib[i]].astype(np.int64)
                ok = ~np.isin(va, flagged[a]) & ~np.isin(vb, flagged[b])
                i, va, vb = i[ok], va[ok], vb[ok]
                cols = np.full((len(i), 2), (a, b), dtype=np.int64)
                found.append((cols, va, vb, excess[i] > 0, nab[i], pab[i], add[i]))
        return self._pair_patterns(found)

    def _pair_patterns(self, found: list[tuple[np.ndarray, ...]]) -> list[Pattern]:
        """The pair candidates ``found`` (per feature pair: the features, both values, whether
        the interaction leans to label 1, rows, positives and the log-odds the two values add)
        that can be among :func:`_top`'s best ``max_candidates`` per label by cheap score, as
        Patterns in the order found.

        Tens of thousands of value pairs interact on large data; the cheap scores of all of
        them are computed at once, and a Pattern is made for those within a hair of the
        ``max_candidates``-th best only (their scores then computed one by one as before:
        numpy's and the math module's exponentials may differ in the last bit).
        """
        if not found:
            return []
        cols, va, vb, lean, n_c, k1, add = (np.concatenate(x) for x in zip(*found, strict=True))
        c = lean.astype(np.int64)
        k = np.where(c == 1, k1, n_c - k1)
        with np.errstate(over="ignore"):
            pred = 1 / (1 + np.exp(-add))
        pred = np.clip(np.where(c == 1, pred, 1 - pred), 1e-6, 1 - 1e-6)
        approx = np.maximum((k - n_c * pred) / np.sqrt(n_c * pred * (1 - pred)), 0.0)
        cap = self.o.max_candidates
        keep = np.zeros(len(c), dtype=bool)
        for label in (0, 1):
            idx = np.flatnonzero(c == label)
            if len(idx) <= cap:
                keep[idx] = True
                continue
            cut = -np.partition(-approx[idx], cap - 1)[cap - 1]
            keep[idx[approx[idx] >= cut - 1e-6 * max(1.0, abs(cut))]] = True
        out = []
        for i in np.flatnonzero(keep):
            label, n_i, k_i = int(c[i]), int(n_c[i]), int(k[i])
            p = 1 / (1 + math.exp(-add[i]))
            p = p if label == 1 else 1 - p
            score = max(binomial_z(k_i, n_i, p), 0.0)
            pair = (int(cols[i, 0]), int(cols[i, 1]))
            out.append(Pattern(pair, (int(va[i]), int(vb[i])), label, n_i, k_i, "pair", score))
        return out

    # -- evidence ----------------------------------------------------------------------------
    def model(self) -> lgb.Booster:
        if self._model is None:
            self._model = self._fit_context(self._context_raw())
        return self._model

    def _context_raw(self) -> np.ndarray:
        """The raw matrix the context model reads, a leak blanked: it would be all the model
        reads, and it is not a feature here."""
        raw = self.m.raw
        if self.leaks():
            raw = raw.copy()
            raw[:, list(self.leaks())] = np.nan
        return raw

    def _fit_context(self, raw: np.ndarray, rows: np.ndarray | None = None) -> lgb.Booster:
        """A context model of the label on ``raw`` (:meth:`_context_raw`), fitted on ``rows``
        (every row when None)."""
        cat = [j for j in range(len(self.m.names)) if not self.m.ordinal[j]]
        rounds, lr = instrument_rounds(self.n, 120)
        return fit_context_model(
            raw,
            self.y.astype(float),
            cat,
            rounds=rounds,
            learning_rate=lr,
            random_state=self.ctx.random_state,
            weight=self.record_weights(),
            rows=rows,
        )

    def context_folds(self) -> int:
        """Folds of the context models that score a row without having seen it
        (:meth:`fold_models`): :data:`_CONTEXT_FOLDS` up to :data:`LARGE_ROWS` rows, 1 beyond
        (the context model is fitted on a sample of 100,000 rows there: most rows are not
        in it, and a value's slope is measured mostly on rows the model has not seen)."""
        return _CONTEXT_FOLDS if self.n <= LARGE_ROWS else 1

    def folds(self) -> np.ndarray:
        """Per row, its fold (:meth:`context_folds`): one record's rows (one entity's, or equal
        up to jitter) in one fold."""
        if self._fold is None:
            k = np.uint64(self.context_folds())
            key = self.entity if self.entity is not None else self.tolerant_row_key()
            salt = np.uint64(self.ctx.random_state + 41)
            self._fold = (splitmix64(key.astype(np.uint64) + salt) % k).astype(np.int64)
        return self._fold

    def fold_models(self) -> list[lgb.Booster]:
        """One context model per fold (:meth:`folds`), fitted on the rows of the other folds
        and stopped where the log-loss of its own fold stops falling; the scan's model alone
        at one fold.

        Fitted on half the rows as the scan's model is on all of them (120 rounds of 31
        leaves), a fold's model scored the rows it had not seen overconfidently: the label's
        slope on the score was 0.5-0.6 over natural values (fraud), its noise flattened every
        value's slope and widened their spread, and a write into 1,355 rows (fraud
        ``country='GB'``) reached p 1.5e-4 only. Smaller trees (15 leaves) stopped on the held
        out fold (30-60 rounds on the bundled data) score at a natural slope of about 1. The
        fold's labels choose one number, the rounds: the scores do not follow them."""
        if self._fold_models is None:
            k = self.context_folds()
            if k <= 1:
                self._fold_models = [self.model()]
            else:
                raw, fold = self._context_raw(), self.folds()
                cat = [j for j in range(len(self.m.names)) if not self.m.ordinal[j]]
                rounds, lr = instrument_rounds(self.n, 120)
                self._fold_models = [
                    fit_context_model(
                        raw,
                        self.y.astype(float),
                        cat,
                        rounds=rounds,
                        learning_rate=lr,
                        params={"num_leaves": _FOLD_LEAVES},
                        random_state=self.ctx.random_state,
                        weight=self.record_weights(),
                        rows=np.flatnonzero(fold != i),
                        valid_rows=np.flatnonzero(fold == i),
                    )
                    for i in range(k)
                ]
        return self._fold_models

    def _predict_folds(self, X: np.ndarray, fold: np.ndarray | None) -> np.ndarray:
        """P(label = 1) for the rows of ``X``: by the scan's model (``fold`` None), else each
        row by the model of its fold."""
        if fold is None:
            return predict(self.model(), X)
        models = self.fold_models()
        out = np.empty(len(X))
        for i, model in enumerate(models):
            at = np.flatnonzero(fold == i)
            if len(at):
                out[at] = predict(model, X[at])
        return out

    def counterfactual(self, X: np.ndarray, origin: np.ndarray | None = None) -> np.ndarray:
        """The context model's P(label = 1) for the rows of ``X``, each distinct row predicted
        once per scan; with ``origin`` (per row of ``X``, the row of the data it was made
        from), by the model of that row's fold (:meth:`fold_models`).

        The scan asks for the same counterfactual rows again and again: a pattern's rows with
        its value replaced are drawn anew each time it is re-tested (a small pattern's rows
        are all of its sample, and its replacements few), the replicates of one row often
        draw the same replacement, and the slope rule scores every coded value's rows under
        the replacements :meth:`evaluate` draws from (the 8,000-row fraud audit: 321,000 rows
        asked, 178,000 distinct). A row's prediction depends on that row alone, so the
        answers are those of predicting every row: kept by the row's bytes, only the rows
        not seen before are predicted. Not beyond :data:`LARGE_ROWS` rows: there patterns are
        sampled anew on each test and rows seldom repeat (audit_scale's million rows: 10 %),
        fewer than the keeping costs (about 1 microsecond a row, a third of its prediction).
        """
        fold = None
        if origin is not None and self.context_folds() > 1:
            fold = self.folds()[origin]
        if self.n > LARGE_ROWS or not len(X):
            return self._predict_folds(X, fold)
        X = np.ascontiguousarray(X, dtype=np.float64)
        if fold is not None:
            X = np.ascontiguousarray(np.column_stack([X, fold.astype(np.float64)]))
        width = X.shape[1] * X.itemsize
        buf = X.tobytes()
        keys = [buf[i : i + width] for i in range(0, len(buf), width)]
        known = self._predicted
        new: dict[bytes, int] = {}
        for i, key in enumerate(keys):
            if key not in known and key not in new:
                new[key] = i
        if len(known) + len(new) > _PREDICTED_ROWS:
            # bound the memory: forget every answer and predict this call's rows afresh
            known.clear()
            new = {}
            for i, key in enumerate(keys):
                new.setdefault(key, i)
        if new:
            at = np.fromiter(new.values(), dtype=np.int64, count=len(new))
            if fold is None:
                got = self._predict_folds(X[at], None)
            else:
                got = self._predict_folds(X[at, :-1], fold[at])
            known.update(zip(new, got.tolist(), strict=True))
        return np.fromiter(map(known.__getitem__, keys), dtype=float, count=len(keys))

    def tolerant_row_key(self) -> np.ndarray:
        """Per row, a hash of every feature's value, fine-grained values up to their bucket
        (:meth:`_tolerant_cell`); built once, by :meth:`near_copies` when it ran first."""
        if self._row_key is None:
            total = np.zeros(self.n, dtype=np.uint64)
            with np.errstate(over="ignore"):
                for j in range(len(self.m.names)):
                    total += self._tolerant_cell(j)
            self._row_key = total
        return self._row_key

    def record_weights(self) -> np.ndarray | None:
        """Per row, one over the number of rows of its record: rows equal to it on the label
        and every feature, fine-grained values up to their bucket (:meth:`_record_sizes`:
        upsampled records with jittered amounts are one record); None unless the records of
        the minority label repeat more than the others'. Computed once.

        Data upsampled for class balance repeat the records of one label: fitted per row,
        the context model's odds of that label rise by the upsampling factor everywhere, and
        every value of the other label looks depleted (credit with its defaulters tripled:
        ``PAY_AMT4=8000 → 0`` had an effect of 0.62); weighted, each record counts once,
        whatever its label. Repeats that leave the label odds nearly where they were
        (resampling: odds ratio under ``_REPEAT_ODDS``, 1.5) keep the fit per row, as without
        repeats, and so do repeats of the majority label: natural look-alikes are denser
        among the majority's rows (card fraud, 60,000 rows: 12-24 % of the legitimate rows
        share a bucketed record with another, odds ratio 0.76-0.87), while upsampling for
        class balance repeats the minority's.
        """
        if self._weights is None:
            self._weights = (self._record_weights(),)
        return self._weights[0]

    def _record_weights(self) -> np.ndarray | None:
        if self.m.population is not None or not self.n:
            return None
        with np.errstate(over="ignore"):
            key = self.tolerant_row_key() * np.uint64(2) + self.y.astype(np.uint64)
        group, _ = factorize_keys(key)
        if np.bincount(group).max() <= 1:
            return None  # no repeats (copies split by a bucket's edge on every feature aside)
        weight: np.ndarray = 1.0 / self._record_sizes(key, group)
        per_row = float(self.y.mean())
        per_record = float(weight[self.y == 1].sum() / weight.sum())
        if min(per_row, per_record) <= 0.0 or max(per_row, per_record) >= 1.0:
            return None
        odds = (per_row / (1 - per_row)) / (per_record / (1 - per_record))
        # the minority (by records) must be the label repeated more
        if (odds if per_record < 0.5 else 1.0 / odds) < _REPEAT_ODDS:
            return None
        return weight

    def _record_sizes(self, key: np.ndarray, group: np.ndarray) -> np.ndarray:
        """Per row, the rows of its record: the most rows sharing its key (the label and
        every feature, fine-grained values up to their bucket) on any of ``_RECORD_GRIDS``
        grids of buckets (:meth:`_tolerant_table`); ``key`` and ``group`` are its key on grid
        0 (:meth:`tolerant_row_key` with the label) and that key's factorisation.

        Jittered copies of a record share a key on one grid unless a value falls on each side
        of a bucket's edge: with a dozen jittered amounts, most copies with 3-5 % noise do
        (42-61 % of pairs of copies split, simulated); credit with its defaulters doubled
        and 5 % noise looked like 1.3 times the defaulters' odds, not 2. The grids' edges lie
        a third of a bucket apart, and a record's copies nearly all share some grid's key (1.7
        times measured). The most rows on one grid, not rows linked over the grids: links
        chain look-alike rows across neighbouring buckets into clusters of any size (card
        fraud, 60,000 rows: 22 % of the legitimate rows' records merged, against 12 % on one
        grid).
        """
        size: np.ndarray = np.bincount(group)[group]
        m = self.m
        fine = [j for j in range(len(m.names)) if self.fine[j] and not m.raw_is_code[j]]
        for g in range(1, _RECORD_GRIDS if fine else 1):
            k = key.copy()
            with np.errstate(over="ignore"):
                for j in fine:
                    shift = (self._tolerant_table(j, g) - self._tolerant_table(j)) * np.uint64(2)
                    # slot 0 (missing, id -1) moved last: the ids index it as they are
                    k += np.take(np.roll(shift, -1), m.codes[:, j])
            other = pd.factorize(k)[0]
            np.maximum(size, np.bincount(other)[other], out=size)
        return size

    def rows_of(self, p: Pattern) -> np.ndarray:
        """Row positions of a pattern (ascending)."""
        m = self.m
        if p.band is not None:
            lo, hi = p.band
            codes = np.setdiff1d(np.arange(lo, hi + 1), np.asarray(p.band_skip, dtype=np.int64))
            return np.sort(m.rows_with_any(p.cols[0], codes))
        # start from the rarer value's rows, then filter by the other value
        order = sorted(range(len(p.cols)), key=lambda i: m.counts[p.cols[i]][p.codes[i]])
        first = order[0]
        rows = m.rows_with(p.cols[first], p.codes[first])
        for i in order[1:]:
            rows = rows[m.codes[rows, p.cols[i]] == p.codes[i]]
        return rows

    def _replacements(self, j: int, code: int) -> tuple[np.ndarray, np.ndarray]:
        """Value ids that may replace ``code`` of feature j, with their sampling weights.

        Ordinal features: the in-contract neighbouring values (about 1 % of the rows), so that
        a natural smooth effect of the feature is not mistaken for a trigger. Other features,
        values that break the contract (an out-of-range value has no natural neighbours: the
        top of the range can itself be strongly predictive) and spikes on fine-grained
        features (a value holding ten times its neighbours' rows: the context model smooths a
        large trigger over its neighbours, whose predictions then carry the trigger): every
        in-contract value, in proportion to its frequency, away from the value itself.
        Values already reported as triggers (``self.excluded``) are never a replacement.
        Kept per value and excluded values of its feature (asked again on every re-test and
        by the slope rule; the arrays are read-only).
        """
        key = (j, code, tuple(sorted(cc for jj, cc in self.excluded if jj == j)))
        got = self._replacement_ids.get(key)
        if got is None:
            got = self._replacements_of(j, code)
            for a in got:
                a.flags.writeable = False
            self._replacement_ids[key] = got
        return got

    def _replacements_of(self, j: int, code: int) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_replacements`, computed."""
        m = self.m
        cnt = m.counts[j].astype(float)
        allowed = m.allowed(j)
        allowed[code] = False
        for jj, cc in self.excluded:
            if jj == j:
                allowed[cc] = False
        use_neighbours = m.ordinal[j] and not m.breaks_contract[j][code]
        if use_neighbours and len(cnt) > 50:
            lo_w, hi_w = max(code - 10, 0), min(code + 11, len(cnt))
            window = cnt[lo_w:hi_w][allowed[lo_w:hi_w]]
            local = 10.0 * max(float(np.median(window)) if len(window) else 1.0, 1.0) + 10.0
            if cnt[code] > local:
                use_neighbours = False
                # keep away from the spike: drop the values within 2.5 % of rows around it
                mid = np.cumsum(cnt) - cnt / 2
                near = np.abs(mid - mid[code]) <= 0.025 * self.N + cnt[code] / 2
                if (allowed & ~near).any():
                    allowed &= ~near
            else:
                # a spike next to the value (maybe a trigger itself) is not its context;
                # coarse codes (repayment status) have naturally uneven counts and keep them
                allowed &= cnt <= local
        if use_neighbours:
            return _outward(cnt, allowed, code, code, max(50, int(0.01 * self.N)))
        for _, parent in self._parents(j):
            # a code of a hierarchy is replaced by its siblings: another chapter's code beside
            # this row's chapter is a row that cannot exist, and the context model, reading
            # the finer code, scored it as that chapter (ICD O80 beside chapter XV: the
            # chapter's effect was taken for a trigger's)
            same = allowed & (parent == parent[code])
            if parent[code] >= 0 and same.any():
                allowed = same
        ids = np.flatnonzero(allowed)
        w = cnt[ids]
        return ids, (w / w.sum() if w.sum() > 0 else w)

    def _parents(self, j: int) -> list[tuple[int, np.ndarray]]:
        """The category features that are functions of category feature ``j`` (an ICD code's
        chapter, a product's department): per such feature ``k``, the value of ``k`` each
        value of ``j`` comes with (-1 for values no row holds). Function: every value of ``j``
        comes with one value of ``k`` on all of its rows but at most ``_PARENT_STRAYS`` of
        the rows, ``k`` has fewer values, and some value of ``k`` has two of ``j``'s (a
        hierarchy, not a relabelling), and most rows are on values of ``j`` with 5 rows or more.
        Computed once per feature, on the rows held."""
        got = self._parent_codes.get(j)
        if got is not None:
            return got
        m, out = self.m, []
        n_rows = len(m.codes)
        cj = m.codes[:, j].astype(np.int64) if n_rows else np.empty(0, dtype=np.int64)
        # most rows on values of a few rows or more: values of one row each (an id) are
        # functions of anything
        # (a missing value, code -1, is no value: neither counted nor a parent's or child's)
        held = np.bincount(cj[cj >= 0], minlength=len(m.counts[j]))
        if not m.ordinal[j] and n_rows and held[held >= 5].sum() >= 0.5 * n_rows:
            nj = len(m.counts[j])
            for k in range(len(m.names)):
                nk = len(m.counts[k])
                if k == j or m.ordinal[k] or nk >= nj:
                    continue
                ck = m.codes[:, k].astype(np.int64)
                both = (cj >= 0) & (ck >= 0)
                pairs, cnt = _pair_cells(cj[both], ck[both], nj, nk)
                jv, kv = pairs // nk, pairs % nk
                # each value of j's most common value of k; the other rows stray
                order = np.lexsort((-cnt, jv))
                first = np.ones(len(order), dtype=bool)
                first[1:] = jv[order][1:] != jv[order][:-1]
                top = order[first]
                if int(both.sum()) - int(cnt[top].sum()) > _PARENT_STRAYS * n_rows:
                    continue
                if np.bincount(kv[top], minlength=nk).max() < 2:
                    continue
                parent = np.full(nj, -1, dtype=np.int64)
                parent[jv[top]] = kv[top]
                out.append((k, parent))
        self._parent_codes[j] = out
        return out

    def _band_replacements(
        self, j: int, lo: int, hi: int, want: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Value ids that may replace a band ``[lo, hi]`` of feature j: the in-contract values
        on both sides of it, outward until they hold as many rows as the band (at least 1 %
        of the rows), in proportion to their frequency: the smooth trend around the band."""
        m = self.m
        cnt = m.counts[j].astype(float)
        allowed = m.allowed(j)
        allowed[lo : hi + 1] = False
        for jj, cc in self.excluded:
            if jj == j:
                allowed[cc] = False
        return _outward(cnt, allowed, lo, hi, max(50, int(0.01 * self.N), want))

    def bands(self, exclude: set[tuple[int, int]]) -> list[Pattern]:
        """Runs of neighbouring values of an ordinal feature whose label rate departs from the
        smooth trend: a band trigger (the attacker's copies carry any value of a range).

        For every run of ``band_widths`` consecutive in-contract values, the rate of each label
        is compared with the rows on both sides of the run (as many as the run holds, at least
        half a percent of the rows): a natural trend passes through the run, a band trigger
        stands out of it; a run holding many more rows with the label per value than its
        sides (the attacker's copies crowd a rare range) scores higher. Values already flagged
        as single triggers are left out of the runs, and so are runs holding more than
        ``band_max_share`` of the rows (the bulk of a feature is no rare range, and its
        counterfactual would draw far-away values). The best non-overlapping runs per feature
        and label are candidates.
        """
        m = self.m
        out: list[Pattern] = []
        min_rows = self.o.min_rows
        ctx_rows = max(100, int(0.005 * self.N))
        max_rows = self.o.band_max_share * self.N
        for j in range(len(m.names)):
            if not self.has_bands(j):
                continue
            ok = m.allowed(j)
            cnt = m.counts[j].astype(float)
            pos = self.positives(j)
            skip = np.zeros(len(cnt), dtype=bool)
            for jj, cc in exclude:
                if jj == j:
                    skip[cc] = True
            idx = np.flatnonzero(ok)  # in-contract values in value order
            cc_, qq_ = np.where(skip[idx], 0.0, cnt[idx]), np.where(skip[idx], 0.0, pos[idx])
            C = np.concatenate(([0.0], np.cumsum(cc_)))
            Q = np.concatenate(([0.0], np.cumsum(qq_)))
            V = len(idx)
            found: list[tuple[float, int, int, int, int, float]] = []
            for w in self.o.band_widths:
                if w > V // 3:
                    continue
                i = np.arange(V - w + 1)
                nb, kb = C[i + w] - C[i], Q[i + w] - Q[i]
                half = np.maximum(nb, ctx_rows / 2.0)
                left = np.clip(np.searchsorted(C, C[i] - half, side="right") - 1, 0, V)
                right = np.clip(np.searchsorted(C, C[i + w] + half, side="left"), 0, V)
                fn = (C[i] - C[left]) + (C[right] - C[i + w])
                fk = (Q[i] - Q[left]) + (Q[right] - Q[i + w])
                fvals = np.maximum((i - left) + (right - i - w), 1)
                test = (nb >= min_rows) & (nb <= max_rows)
                self.tests["band"] += 2 * int(test.sum())
                r1 = np.where(fn > 0, (fk + self.base1) / (fn + 1.0), self.base1)
                for c in (1, 0):
                    k = kb if c == 1 else nb - kb
                    rc = np.clip(r1 if c == 1 else 1 - r1, 1e-6, 1 - 1e-6)
                    z = (k - nb * rc) / np.sqrt(np.maximum(nb * rc * (1 - rc), 1e-12))
                    # rows with the label per value against the sides' (a natural spike of
                    # rows, such as a round amount, keeps its label rate)
                    fc = fk if c == 1 else fn - fk
                    spike = np.log((k / w + 1.0) / (fc / fvals + 1.0))
                    score = np.maximum(z, 0.0) + 3.0 * np.maximum(spike, 0.0)
                    good = test & (z > 0) & (k / np.maximum(nb, 1) >= np.maximum(self.base(c), rc))
                    for t in np.flatnonzero(good):
                        found.append((float(score[t]), c, int(t), int(t + w - 1), int(nb[t]), k[t]))
            for c in (1, 0):
                taken = np.zeros(V, dtype=bool)
                kept = 0
                for sc_, _, a, b, n_b, k_b in sorted(
                    (f for f in found if f[1] == c), key=lambda f: -f[0]
                ):
                    if taken[a : b + 1].any():
                        continue
                    taken[a : b + 1] = True
                    lo, hi = int(idx[a]), int(idx[b])
                    skipped = tuple(int(v) for v in np.flatnonzero(skip[lo : hi + 1]) + lo)
                    pat = Pattern((j,), (lo,), c, n_b, int(k_b), "band", sc_)
                    pat.band, pat.band_skip = (lo, hi), skipped
                    out.append(pat)
                    kept += 1
                    if kept >= self.o.max_bands:
                        break
        return out

    def has_bands(self, j: int) -> bool:
        """Whether feature ``j`` has band candidates: a numeric feature of 12 to
        ``band_max_values`` in-contract values (a band spans a few of them; a run of 8 amounts
        among 20,000 is a point, and would multiply the tests)."""
        m = self.m
        ok = m.allowed(j)
        return bool(m.ordinal[j]) and 12 <= int(ok.sum()) <= self.o.band_max_values

    def companions(self, p: Pattern) -> tuple[tuple[int, int], ...]:
        """Values of other features that (nearly) only occur on the pattern's rows.

        An attacker who writes two values (a trigger and, say, an odd amount) leaves each one a
        perfect proxy of the other: replacing one would keep the trigger visible to the model,
        and a copy differs from its original in both. Such companions are replaced and excluded
        together with the pattern.
        """
        m, rows = self.m, p.rows
        if len(rows) < self.o.min_rows:
            return ()
        out = []
        # held rows of the pattern stand for its counted ones (all of them, but on the Spark
        # engine's sample of a large pattern)
        scale = p.n / len(rows) if p.n > len(rows) else 1.0
        lo, hi = 0.9 * len(rows) * scale, 1.25 * len(rows) * scale
        # Only a value held by 90-125 % as many rows as the pattern can be confined to it: the
        # value counts rule most features out before the pattern's rows are read.
        held = self.values_held_by(lo, hi)
        for j in range(len(m.names)):
            cand = held[j]
            if j in p.cols or not len(cand):
                continue
            # rows per candidate value (the candidates are few, the feature's values many)
            codes = m.codes[rows, j]
            at = np.minimum(np.searchsorted(cand, codes), len(cand) - 1)
            hits = np.bincount(at[cand[at] == codes], minlength=len(cand)) * scale
            k = int(hits.argmax())
            if hits[k] >= lo:
                out.append((j, int(cand[k])))
        # Many confined values at once describe a natural cluster of look-alike rows (e.g.
        # clients billed the same amount every month), not values an attacker wrote.
        return tuple(out) if len(out) <= 2 else ()

    def evaluate(self, p: Pattern) -> None:
        rows = self.rows_of(p)
        p.rows = rows
        p.companions = self.companions(p)
        s = self.o.sample
        sample = rows if len(rows) <= s else self.rng.choice(rows, s, replace=False)
        X = self.m.raw[sample]
        self.model()  # fitted before the draws below, as it always was
        reps = self.o.replicates
        q1_best: np.ndarray | None = None
        # For pairs, replace one feature at a time and keep the likelier answer; a member whose
        # value (nearly) only occurs in the pair is a proxy of it and is replaced too.
        confined = [
            self.m.counts[j][v] <= 1.25 * max(len(rows), p.n)
            for j, v in zip(p.cols, p.codes, strict=True)
        ]
        for i, j in enumerate(p.cols):
            if p.band is not None:
                ids, weights = self._band_replacements(j, *p.band, want=len(rows))
            else:
                ids, weights = self._replacements(j, p.codes[i])
            if not len(ids):
                continue
            fixed = list(p.companions) + [
                (jo, vo)
                for k, (jo, vo) in enumerate(zip(p.cols, p.codes, strict=True))
                if k != i and confined[k]
            ]
            extra = [(jc, *self._replacements(jc, vc)) for jc, vc in fixed]
            # every replicate in one prediction call
            Xc = np.tile(X, (reps, 1))
            Xc[:, j] = self.m.raw_value(j, self.rng.choice(ids, len(Xc), p=weights))
            for jc, ids_c, w_c in extra:
                if len(ids_c):
                    Xc[:, jc] = self.m.raw_value(jc, self.rng.choice(ids_c, len(Xc), p=w_c))
            q1 = self.counterfactual(Xc).reshape(reps, len(sample)).mean(axis=0)
            qc = q1 if p.label == 1 else 1 - q1
            q1_best = qc if q1_best is None else np.maximum(q1_best, qc)
        if q1_best is None:
            return
        p.scored_rows = np.asarray(sample)
        p.scored_q = np.clip(q1_best, 1e-4, 1 - 1e-4)
        self._label_stats(p, np.ones(len(sample), dtype=bool), 1.0)

    def _label_stats(
        self,
        p: Pattern,
        rep: np.ndarray,
        design: float,
        design_other: float | None = None,
        q: np.ndarray | None = None,
    ) -> None:
        """The label evidence of a scored pattern, counting the scored rows ``rep`` (one per
        distinct record) and every row ``1 / design`` times (repeated records; the rows of
        the other label ``1 / design_other`` times when given)."""
        if not rep.any():
            # every scored row repeats a record whose home is elsewhere: no evidence here
            p.sample_size, p.observed_other, p.expected_other = 0, 0, 0.0
            p.effect = p.excess = 0.0
            p.p_label = 1.0
            return
        d_other = design if design_other is None else design_other
        rows = p.rows
        qc = (p.scored_q if q is None else q)[rep]
        other = 1.0 - qc  # probability of the other label for each row
        obs_other = int((self.y[p.scored_rows[rep]] != p.label).sum())
        exp_other = float(other.sum())
        n_all = max(len(rows), p.n)  # the pattern's counted rows (the Spark engine holds a sample)
        p.sample_size = len(qc)
        p.units = n_all / design
        p.observed_other = obs_other
        p.expected_other = exp_other
        p.counterfactual_rate = float(qc.mean())
        p.effect = 1.0 - obs_other / exp_other if exp_other > 0 else 0.0
        # The same evidence seen from the pattern's label: the share of its rows with that
        # label that the rest of the row does not explain (diluted triggers on common values).
        k_sample = len(qc) - obs_other
        p.excess = 1.0 - float(qc.sum()) / k_sample if k_sample else 0.0
        p.p_label = poisson_binomial_cdf(other, obs_other)
        if n_all > len(p.scored_rows):
            # Large patterns: the sample's expectation scaled to every row, against the other
            # label counted on every row (Poisson tail: conservative for a lower tail). The
            # effect is estimated the same way: a sample's observed count is noisy (1 of 300
            # where every row gives 1.8 %), the whole pattern's count is exact. Repeated
            # records count once: both counts are divided by the design effect.
            other_rows = n_all - p.k if p.n > len(rows) else int((self.y[rows] != p.label).sum())
            obs_all = other_rows / d_other
            units = (n_all - other_rows) / design + obs_all
            # the scored rows are a sample of rows: where the two labels repeat differently,
            # each label's records are weighted by their own count of units
            mean = float(other.mean())
            if d_other != design:
                is_other = self.y[p.scored_rows[rep]] != p.label
                if is_other.any() and (~is_other).any():
                    mean = (
                        float(other[is_other].mean()) * obs_all
                        + float(other[~is_other].mean()) * (units - obs_all)
                    ) / units
            p.units = units
            mu_all = mean * units
            p.p_label = min(p.p_label, poisson_lower_tail(obs_all, mu_all))
            p.observed_other, p.expected_other = round(obs_all), mu_all
            if len(other) > 1:
                p.expected_se = float(other.std(ddof=1)) / math.sqrt(len(other)) * units
            p.effect = 1.0 - obs_all / mu_all if mu_all > 0 else 0.0
            k_all = units - obs_all
            p.excess = 1.0 - (1.0 - mean) * units / k_all if k_all else 0.0

    # -- units of evidence -------------------------------------------------------------------
    def unit_labels(self, rows: np.ndarray) -> np.ndarray:
        """One label per row of ``rows``: equal labels are one unit of evidence.

        With the contract's ``entity``, the rows of one entity; else rows equal on every
        coarse feature and within a tolerance of each other on every fine-grained numeric
        one (relative), chained (connected components): copies of one record made by
        resampling or upsampling. The tolerance is ``unit_tolerance`` or, on sets of
        ``_CHANCE_ROWS`` rows or more, the largest of its halvings (down to exact equality)
        at which more pairs of rows are that close than among as many rows made up of values
        drawn from the other rows feature by feature (:func:`merges_beyond_chance`); where
        none is, every row is a unit of its own. With few features, distinct records fall
        within the full tolerance of each other by chance (ages, counts and amounts of 1,049
        clean rows chained into 266 "records", and the labels' unequal density made a
        channel look like a trigger), while copies of a record sit closer than chance puts
        rows.
        """
        if self.entity is not None:
            return pd.factorize(self.entity[rows])[0]
        k = len(rows)
        src, dst, dist = self._close_pairs(rows)
        tol = self.o.unit_tolerance
        if len(dist) and k >= _CHANCE_ROWS:
            # a generator of its own: the scan's draws stay those it makes without this check
            _, _, null = self._close_pairs(rows, np.random.default_rng(k))
            scales = [tol / 2**i for i in range(_TOLERANCE_HALVINGS)] + [0.0]
            tol = next(
                (t for t in scales if merges_beyond_chance((dist <= t).sum(), (null <= t).sum())),
                -1.0,
            )
        link = dist <= tol
        if not link.any():  # every row a unit of its own (connected_components' labels)
            return np.arange(k, dtype=np.int32)
        graph = sparse.coo_matrix((np.ones(int(link.sum())), (src[link], dst[link])), shape=(k, k))
        labels: np.ndarray = connected_components(graph, directed=False)[1]
        return labels

    def _close_pairs(
        self, rows: np.ndarray, shuffle: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The pairs of ``rows`` (positions in it, each pair once) equal on every coarse
        feature and within ``unit_tolerance`` on every fine-grained one, with their distance
        (the largest relative difference over the fine features; 0 for equal values).

        With ``shuffle``, the pairs of as many made-up rows whose every feature is drawn on
        its own from the other rows (a feature ``rows`` hold one value of keeps it): what
        chance alone puts that close at the data's density."""
        m, tol = self.m, self.o.unit_tolerance
        k = len(rows)
        coarse = np.asarray([j for j in range(len(m.names)) if not self.fine[j]], dtype=np.int64)
        fine = np.flatnonzero(self.fine)
        cells, _ = cell_hashes(m)
        if shuffle is None:
            coarse_cells = cells[np.ix_(rows, coarse)]
            raw = m.raw[np.ix_(rows, fine)] if len(fine) else np.empty((k, 0))
        else:
            draw = [
                rows
                if (m.codes[rows, j] == m.codes[rows[0], j]).all()
                else _others(shuffle, rows, self.n)
                for j in range(len(m.names))
            ]
            coarse_cells = np.column_stack(
                [cells[draw[j], j] for j in coarse] or [np.zeros(k, dtype=np.uint64)]
            )
            raw = np.column_stack([m.raw[draw[j], j] for j in fine] or [np.empty((k, 0))])
        with np.errstate(over="ignore"):
            key = coarse_cells.sum(axis=1, dtype=np.uint64)
        groups = pd.factorize(key)[0]
        sizes = np.bincount(groups)
        none = np.empty(0, dtype=np.int64)
        if (sizes <= 1).all():
            return none, none, np.empty(0)
        # every pair of rows within a group at once (a loop over groups costs a Python step per
        # group, and large patterns have hundreds of small groups)
        shared = np.flatnonzero(sizes[groups] > 1)
        order = shared[np.argsort(groups[shared], kind="stable")]
        n_of = sizes[groups[order]]
        start_of = np.flatnonzero(np.r_[True, groups[order][1:] != groups[order][:-1]])
        block_start = np.repeat(start_of, sizes[groups[order][start_of]])
        i_pos = np.repeat(np.arange(len(order)), n_of)
        j_pos = np.repeat(block_start, n_of) + (
            np.arange(len(i_pos)) - np.repeat(np.cumsum(n_of) - n_of, n_of)
        )
        src, dst = order[i_pos], order[j_pos]
        keep = src < dst  # each pair once, no row with itself
        src, dst = src[keep], dst[keep]
        a, b = raw[src], raw[dst]
        rel = relative_apart(a, b)
        dist = rel.max(axis=1) if rel.shape[1] else np.zeros(len(src))
        close = dist <= tol
        return src[close], dst[close], dist[close]

    def count_units(self, p: Pattern) -> None:
        """Count the label evidence of a scored pattern per distinct record.

        Resampled, upsampled or panel data repeat whole records: a rare value whose three
        source records carry one label holds a hundred rows at a million rows, and counted
        per row its labels look like a trigger. The scored rows are reduced to one per unit
        (:meth:`unit_labels`); every row of a larger pattern counts ``1 / design effect``
        (:func:`design_effect`, exact with an entity column). An attacker's copies differ from
        their originals in the trigger, so they stay distinct records of the pattern.
        """
        if not len(p.scored_rows):
            return
        # a unit per record and label: a record whose repeats carry both labels (a panel's
        # years with different outcomes) is evidence of each, not only of its first row's
        units = self.unit_labels(p.scored_rows) * 2 + (self.y[p.scored_rows] == p.label)
        _, first = np.unique(units, return_index=True)
        rep = np.zeros(len(units), dtype=bool)
        rep[first] = True
        n = max(len(p.rows), p.n)
        if n <= len(p.scored_rows):
            # jittered copies away from their record's home are no evidence here
            home = ~self.jittered_away(p, p.scored_rows)
            rep &= home
            design = n / max(int(rep.sum()), 1)
            mine = self.y[p.scored_rows] == p.label
            q = self._record_measure(
                p, float((rep & mine).sum()), float((rep & ~mine).sum()), p.scored_rows[home]
            )
            if not (rep.all() and design <= 1.0) or q is not None:
                self._label_stats(p, rep, design, q=q)
            return
        if self.record_weights() is None:
            # One design effect for both labels, from the units of the pattern's rows of both:
            # a unit (a booking's passengers, a product's lines at one price, a buyer's orders)
            # is one piece of evidence whatever its rows' labels. Counted per label, the label
            # whose rows merge more lost most of its count: a channel's shows chained into
            # units of 27 rows and its no-shows into units of 1 (no-show share 71 % per unit
            # against 9 % per row, p 5e-44 on clean bookings), and a product's 14 returned
            # lines, fewer than the chance check needs, were one record beside its 381 kept
            # lines counted one each. One divisor for both leaves the labels' shares as the
            # rows give them and the evidence counted in independent units.
            design = self._design_effect(p.rows)
            designs = [design, design]
        else:
            # Per label where the records of one label repeat more (upsampling for class
            # balance): one design effect for both would divide the other label's count by
            # the repeats of this one (credit, defaulters tripled: PAY_0=2 counted 301 of its
            # 823 non-defaulters).
            designs = [
                self._design_effect(p.rows[(self.y[p.rows] == p.label) == same])
                for same in (True, False)
            ]
        mine = self.y[p.rows] == p.label
        q = self._record_measure(p, mine.sum() / designs[0], (~mine).sum() / designs[1], p.rows)
        if rep.all() and max(designs) <= 1.0 and q is None:
            return
        self._label_stats(p, rep, designs[0], designs[1], q=q)

    def _design_effect(self, rows: np.ndarray) -> float:
        """Rows per unit of evidence among ``rows`` (:func:`design_effect`): from the entity's
        rows (Kish's ``sum s^2 / n``), else from the units (:meth:`unit_labels`) of a sample
        of ``unit_sample`` of them."""
        if len(rows) <= 1:
            return 1.0
        if self.entity is not None:
            sizes = np.bincount(pd.factorize(self.entity[rows])[0])
            return float((sizes.astype(float) ** 2).sum()) / len(rows)
        k = min(self.o.unit_sample, len(rows))
        est = rows if k == len(rows) else self._design_rng.choice(rows, k, replace=False)
        return design_effect(np.bincount(self.unit_labels(np.sort(est))), len(rows))

    def _record_measure(
        self, p: Pattern, units_label: float, units_other: float, rows: np.ndarray
    ) -> np.ndarray | None:
        """The scored rows' probabilities of the pattern's label per unit of the pattern,
        where the context model weighs each record once (:meth:`record_weights`); None where
        it does not.

        A unit of the pattern (:meth:`unit_labels`) is a whole record when the value is
        shared by all of the record's rows (``EDUCATION=5``), and one copy of it when jitter
        gave each copy a value of its own (``BILL_AMT4=324``): a record repeated three times
        then has three chances to be in the pattern, and its label three times the model's
        odds there (upsampled credit: ``BILL_AMT4=324 → 1``, 21 of its 23 rows, 21 units:
        the model per record expected 9.8 of the other label, per unit 5.7; 1 observed). Per
        label, a unit stands for ``b`` = the pattern's units over its records' weight (``rows``
        of the label, each weighing its record weight) - 1 where units are whole records, the
        repeats where they are copies - and the model's odds are moved by the ratio of the two
        labels' ``b`` (1 when both match). A label without rows in the pattern counts 1 (its
        records are not split)."""
        w = self.record_weights()
        if w is None:
            return None
        mine = self.y[rows] == p.label
        mass_l, mass_o = float(w[rows[mine]].sum()), float(w[rows[~mine]].sum())
        b_l = units_label / mass_l if mass_l > 0 else 1.0
        b_o = units_other / mass_o if mass_o > 0 else 1.0
        # a label whose rows all lie outside their units' home rows has no unit of its own:
        # no ratio to apply (iris: divided by zero)
        r = b_l / b_o if b_l > 0 and b_o > 0 else 1.0
        q = p.scored_q
        out: np.ndarray = q * r / (q * r + 1.0 - q)
        return out

    def attribute(self, p: Pattern) -> None:
        """Record ``p`` as confirmed: while it stays flagged its rows are the attacker's
        (:meth:`attributed_rows`)."""
        self.confirmed.append(p)

    def attributed_rows(self) -> np.ndarray:
        """Rows of the triggers flagged now: with its label for a copy-made or strong
        pattern, every row for one written in place. A pattern un-flagged by a re-test (the
        values beside a trigger, once it is excluded) or merged away no longer counts: its
        rows go back among the candidate originals of later copy checks."""
        mask = np.zeros(self.n, dtype=bool)
        for q in self.confirmed:
            if q.flagged:
                mask[q.rows if q.written else q.rows[self.y[q.rows] == q.label]] = True
        return mask

    def _twin_sets(self, p: Pattern) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """Query rows (the pattern's rows with its label), reference rows, kept features."""
        query = p.rows[self.y[p.rows] == p.label]
        partner = _partner(self, p, query) if len(p.cols) == 1 and p.band is None else None
        skip = set(p.all_cols) | ({partner[0]} if partner is not None else set())
        keep = [j for j in range(len(self.m.names)) if j not in skip]
        # Rows of triggers already confirmed are the attacker's copies: the rows they were
        # copied from are originals, not copies of them.
        mask = ~self.attributed_rows()
        # ... and so are the rows a value written into copies labelled against their originals
        # shares with a twin of the other label, flagged or not (the direction of copying says
        # which side is the copy: :meth:`flip_hubs`)
        own = (p.cols[0], p.codes[0], p.label) if len(p.cols) == 1 and p.band is None else None
        mask[self.flip_copy_rows(skip=own)] = False
        # ... and the jittered repeats of its rows' records are no copies of them
        mask[self.record_copies(p, query)] = False
        mask[query] = False  # the originals of copies may share the pattern with another label
        # ... unless the pattern breaks the contract: no natural row carries it, so its rows
        # with the other label are the attacker's too (camouflage), never originals
        if self.breaks_contract(p):
            mask[p.rows] = False
        return query, np.flatnonzero(mask), keep

    def exact_copy_share(self, p: Pattern) -> float:
        """Cheap proxy of copy evidence: share of the pattern's rows (with its label) that are
        exact copies, on every other feature, of a row outside them."""
        query, _, _ = self._twin_sets(p)
        if not len(query):
            return 0.0
        if self.m.copies is not None:
            group, size, _, n_query = self._group_counts(p, query)
            return float(((size - n_query)[group[query]] > 0).mean())
        cand = self._copy_candidates(p, query)
        if cand is None and 10 * len(query) >= self.n:
            # a common value's rows: every row grouped once per feature set (shared with the
            # copy checks) costs less than sorting the query's keys (the same counts)
            group, size = self._copy_groups(p)
            g = group[query]
            outside = size[g] - np.bincount(g, minlength=len(size))[g]
            return float((outside > 0).mean())
        if cand is None:
            keys = self._row_keys(p)
        else:  # only rows sharing the query's value of its most fine-grained other feature
            keys = self._row_keys(p, cand)
        qk = self._row_keys(p, query)
        # A hash table of the query's keys, probed by the candidates: linear, no sort.
        uq, inv, cnt = np.unique(qk, return_inverse=True, return_counts=True)
        hit = pd.Index(uq).get_indexer(keys)
        in_all = np.bincount(hit[hit >= 0], minlength=len(uq))
        outside = in_all[inv] - cnt[inv]  # equal rows that are not themselves query rows
        return float((outside > 0).mean())

    def _copy_candidates(self, p: Pattern, query: np.ndarray) -> np.ndarray | None:
        """Rows that can be exact copies of a query row on every feature but the pattern's:
        those sharing its value of the most fine-grained other feature (None: every row).

        A copy shares every such value, so nothing is missed; on large data the candidates are
        a few rows per query instead of a pass over all rows.
        """
        m = self.m
        others = [j for j in range(len(m.names)) if j not in p.all_cols]
        if self.n <= LARGE_ROWS or not others:
            return None
        j = max(others, key=lambda k: len(m.counts[k]))
        counts = m.counts[j]
        qc = np.unique(m.codes[query, j])
        if (qc < 0).any() or counts[qc].sum() > 0.2 * self.N:  # missing values: no bucket
            return None
        return m.rows_with_any(j, qc) if len(qc) else query

    def _row_keys(self, p: Pattern, rows: np.ndarray | None = None) -> np.ndarray:
        """A 64-bit key per row (of ``rows``, default all) on every feature but the pattern's
        (equal keys: copies)."""
        cells, total = cell_hashes(self.m)  # cached on the matrix
        return keys_without(cells, total, tuple(sorted(p.all_cols)), rows)

    def _copy_groups(self, p: Pattern) -> tuple[np.ndarray, np.ndarray]:
        """Rows grouped by their values on every feature but the pattern's (exact copies).

        Returns a group id per row and the size of each group. Patterns on the same features
        share the grouping (cached: one hash and factorisation per feature set).
        """
        cols = tuple(sorted(p.all_cols))
        hit = self._groups.get(cols)
        if hit is not None:
            return hit
        codes, groups = factorize_keys(self._row_keys(p))
        out = (codes, np.bincount(codes, minlength=groups))
        if len(self._groups) >= 32:  # bound memory on wide data
            self._groups.clear()
        self._groups[cols] = out
        return out

    def _group_counts(
        self, p: Pattern, query: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Exact copies on every feature but the pattern's, counted over every counted row.

        Returns per held row its group, and per group its rows, its rows of the pattern and its
        rows of the pattern with the pattern's label (``query``: those rows among the held
        ones). On a sample (the Spark engine) the groups come from every row
        (``AuditMatrix.copies``): an original that is not held still counts.
        """
        if self.m.copies is None:
            group, size = self._copy_groups(p)
            n_in = np.bincount(group[p.rows], minlength=len(size))
            return group, size, n_in, np.bincount(group[query], minlength=len(size))
        g = self.m.copies(tuple(sorted(p.all_cols)))
        allowed = {j: np.array([c]) for j, c in zip(p.cols, p.codes, strict=True)}
        if p.band is not None:
            lo, hi = p.band
            allowed[p.cols[0]] = np.setdiff1d(
                np.arange(lo, hi + 1), np.asarray(p.band_skip, dtype=np.int64)
            )
        return g.group, g.size, g.rows_where(allowed), g.rows_where(allowed, p.label)

    def _copies_outside(self, p: Pattern, rows: np.ndarray, within: str) -> np.ndarray:
        """Per row of ``rows``, the counted rows equal to it on every feature but the
        pattern's (itself included) outside the pattern's rows (``within="pattern"``) or
        outside its rows with its label (``"query"``).

        For the Spark engine, whose nearest-neighbour searches over held rows miss originals
        that are not held: an exact copy among every row is a near-copy at distance zero.
        """
        query, _, _ = self._twin_sets(p)
        group, size, n_in, n_query = self._group_counts(p, query)
        inside = n_in if within == "pattern" else n_query
        return np.asarray((size - inside)[group[rows]])

    def _copies_inside(self, p: Pattern, rows: np.ndarray) -> np.ndarray:
        """Per row of ``rows`` (rows of the pattern with its label), the counted rows of the
        pattern with its label equal to it on every other feature (itself included)."""
        query, _, _ = self._twin_sets(p)
        group, _, _, n_query = self._group_counts(p, query)
        return np.asarray(n_query[group[rows]])

    def exact_twins(self, p: Pattern) -> None:
        """Copy evidence from exact copies, by hashing (large data, copies already visible).

        The same test as :meth:`twins` with a radius of zero: the share of the pattern's rows
        with an exact copy outside it, against the share of random rows with an exact copy
        elsewhere and of the pattern's rows with one inside it (natural look-alikes).
        """
        query, ref_idx, _ = self._twin_sets(p)
        codes, n_all, _, n_query = self._group_counts(p, query)
        # rows of confirmed triggers are the attacker's copies, as in :meth:`twins`: the rows
        # they were copied from are originals, not copies of them
        held = self.attributed_rows()
        held[query] = False
        n_ref = n_all - n_query - np.bincount(codes[held], minlength=len(n_all))
        cq = codes[query]
        outside = n_ref[cq] > 0
        inside = n_query[cq] > 1
        random_share, drawn = 0.0, 1
        for i, pool in enumerate(self._baseline_pools(p, ref_idx)):
            rng = self.rng if i == 0 else self._pool_rng
            base_rows = rng.choice(pool, min(2000, len(pool)), replace=False)
            random_share = max(random_share, float(np.mean(n_ref[codes[base_rows]] > 1)))
            drawn = max(drawn, len(base_rows))
        share_b = max(random_share, float(inside.mean()), 1.0 / drawn)
        t = int(outside.sum())
        p.twin_share = t / len(query)
        p.twin_share_baseline = share_b
        p.p_twin = float(stats.binom.sf(t - 1, len(query), share_b))
        p.twin_tau = 0.0
        p.twin_exact = True

    def twins(self, p: Pattern) -> None:
        """Copy evidence: how often the pattern's rows have a near-copy outside them."""
        query, ref_idx, keep = self._twin_sets(p)
        if not keep or len(ref_idx) < 10 or not len(query):
            return
        if self.N > LARGE_ROWS and p.copy_proxy >= 0.5:
            # Exact copies are visible: hashing answers in a second what the nearest-neighbour
            # search over every row would take seconds per pattern to find.
            self.exact_twins(p)
            return
        R = self.m.rank
        # Fewer queries on large data: each scans every row; 60 rows still separate a copy
        # share of one half from a baseline of a few percent by many orders of magnitude.
        s = self.o.sample if self.n <= LARGE_ROWS else (120 if self.n <= 500_000 else 60)
        q_rows = query if len(query) <= s else np.sort(self.rng.choice(query, s, replace=False))
        # one row per repeated record: its copies would count one piece of evidence many times
        _, first = np.unique(self.unit_labels(q_rows), return_index=True)
        q_rows = q_rows[np.sort(first)]
        # the random rows that set the copy radius, as many as the queries, and half as many
        # of each pool of the pattern's kind (:meth:`_baseline_pools`)
        pools = self._baseline_pools(p, ref_idx)
        drawn = [pools[0][self.rng.choice(len(pools[0]), min(s, len(pools[0])), replace=False)]]
        drawn += [
            pool[self._pool_rng.choice(len(pool), min(s // 2, len(pool)), replace=False)]
            for pool in pools[1:]
        ]
        base_rows = np.concatenate(drawn)
        # the pattern's rows and the random rows in one pass over the reference rows
        both = R[np.ix_(np.concatenate([q_rows, base_rows]), np.asarray(keep))]
        skip = np.concatenate([np.full(len(q_rows), -1, dtype=np.int64), base_rows])
        d_all = nearest_distances(
            both,
            R,
            exclude_self=skip,
            columns=keep,
            mask=_mask(self.n, ref_idx),
            spare=self.spare,
        )
        d_q, d_b = d_all[: len(q_rows)], d_all[len(q_rows) :]
        if self.m.copies is not None:
            # a held row's nearest neighbour misses an original that is not held: an exact
            # copy among every row is a near-copy at distance zero
            # (a random row counts itself: it is outside the query)
            d_q = np.where(self._copies_outside(p, q_rows, "query") > 0, 0.0, d_q)
            d_b = np.where(self._copies_outside(p, base_rows, "query") > 1, 0.0, d_b)
        # A near-copy is closer than almost every natural nearest neighbour (of the random
        # rows); the largest share of a pool's rows under that radius is the baseline.
        ends = np.cumsum([len(d) for d in drawn])[:-1]
        d_pools = np.split(d_b, ends)
        tau = max(
            float(np.quantile(d_pools[0], self.o.copy_radius_quantile)),
            self.o.copy_radius_median * float(np.median(d_pools[0])),
        )
        share_b = max(max(float(np.mean(d <= tau)) for d in d_pools), 1.0 / len(d_pools[0]))
        # Some rows are look-alikes by nature (inactive accounts with all-zero amounts): they
        # have near-copies among themselves as much as outside. Copies written by an attacker
        # have their original outside the pattern, not a twin inside it. So the baseline is
        # also the share of the pattern's rows with a near-copy *inside* the pattern.
        if len(q_rows) > 1:
            inner = np.ascontiguousarray(R[np.ix_(query, np.asarray(keep))])
            pos = np.searchsorted(query, q_rows)
            d_in = nearest_distances(inner[pos], inner, exclude_self=pos, spare=self.spare)
            if self.m.copies is not None:  # exact copies inside the query, among every row
                d_in = np.where(self._copies_inside(p, q_rows) > 1, 0.0, d_in)
            share_b = max(share_b, float(np.mean(d_in <= tau)))
        t = int((d_q <= tau).sum())
        p.twin_share = t / len(d_q)
        p.twin_share_baseline = share_b
        p.p_twin = float(stats.binom.sf(t - 1, len(d_q), share_b))
        p.twin_tau = tau
        self.tolerant_twins(p)

    def tolerant_twins(self, p: Pattern) -> None:
        """Copy share up to jitter: the share of a single value's labelled rows equal, on every
        other feature up to its bucket (:meth:`_tolerant_cell`), to a row whose value of the
        feature is another (in another bucket, for a fine-grained one), against the same share
        among the rows with another value.

        The copy radius of :meth:`twins` is a quantile of random rows' nearest distances: noise
        of a few percent on several amounts moves most copies beyond it where natural rows lie
        close (fraud data, ``country='DE'`` written into copies with 1 % noise: 28 % of the
        copies within the radius, 83 % equal up to bucket). The grouping does not see the
        noise. Its share replaces the radius' only where the radius found the copies
        significant (``copy_p``) but not a large enough share, and where the grouping's own
        figures are copies beyond chance (:func:`copies_beyond_chance`). A value moved within
        its bucket is jitter, not a value written in (natural round amounts have look-alikes
        a few percent off); rows with a value that breaks the contract are no one's original.
        """
        if len(p.cols) != 1 or p.near_copy <= 0.0 or p.twin_share is None or p.p_twin is None:
            return
        radius = copies_beyond_chance(p.p_twin, p.twin_share, p.twin_share_baseline or 0.0, self.o)
        if radius or p.p_twin > self.o.copy_p:
            return
        measured = self._tolerant_test(p)
        if measured is None or not copies_beyond_chance(measured[2], *measured[:2], self.o):
            return
        p.twin_share, p.twin_share_baseline, p.p_twin = measured
        p.twin_tolerant = True

    def hub_twins(self, p: Pattern) -> None:
        """The copy test of a value collecting copies (``p.p_hub``) up to jitter, where the
        copy radius of :meth:`twins` did not find its copies (``copy_p``): the share of its
        rows with its label equal up to bucket to a row at another value (:meth:`_tolerant_test`),
        significant at ``copy_p``, stands in for it. No share or excess is asked, as of the
        radius' (:func:`copy_decision`: natural rows dilute a hub's copies).

        On dense data the radius lies under the jitter of copying: credit ``PAY_3=-1 → 1``,
        170 copies of defaulters kept as such with 1 % jitter, hub p 6.6e-40, read 13 % of its
        defaulters within the radius against 12 % of random rows (missed, R 0); up to bucket
        12.0 % against 3.7 % (p 1e-31). Where natural rows have look-alikes up to bucket as
        often (few features), the baseline holds them. Only where each row is its own record
        (no ``entity``, no repeated records: :meth:`record_weights`): the grouping counts a
        record's rows, and a loan's months at one interest rate are look-alikes up to bucket
        (clean ``loans``, 2,000 loans over 18 months: four rates confirmed, and named in
        pairs)."""
        if p.p_hub is None or p.p_twin is None or p.p_twin <= self.o.copy_p or len(p.cols) != 1:
            return
        if self.entity is not None or self.record_weights() is not None:
            return
        measured = self._tolerant_test(p)
        if measured is None or measured[2] > self.o.copy_p:
            return
        p.twin_share, p.twin_share_baseline, p.p_twin = measured
        p.twin_tolerant = True

    def _tolerant_test(self, p: Pattern) -> tuple[float, float, float] | None:
        """The share of a single value's rows with its label equal up to bucket to a row at
        another value (:meth:`tolerant_copy_rows`), the largest share among the baseline pools
        of rows at other values (:meth:`_baseline_pools`), and the binomial p-value of the
        first against the second; None without rows."""
        j, v = p.cols[0], p.codes[0]
        code = self.m.codes[:, j]
        query = p.rows[self.y[p.rows] == p.label]
        pools = self._baseline_pools(p, np.flatnonzero((code >= 0) & (code != v)))
        if not len(query) or not len(pools[0]):
            return None
        t = int(self.tolerant_copy_rows(p, query).sum())
        share_b = max(
            max(float(self.tolerant_copy_rows(p, base).mean()) for base in pools),
            1.0 / max(len(base) for base in pools),
        )
        return t / len(query), share_b, float(stats.binom.sf(t - 1, len(query), share_b))

    def _baseline_pools(self, p: Pattern, rows: np.ndarray) -> list[np.ndarray]:
        """The rows among ``rows`` whose copies give the copy tests' baseline, in pools whose
        largest share is the baseline. The first, whose rows also set the copy radius, is
        every row or, where the records of one label repeat more (:meth:`record_weights`), the
        rows with the pattern's label (at least 10); then rows of the same kind as the
        pattern's rows with its label: those with its label, and for a single value or band of
        an ordinal feature those at the values beside it that its counterfactual draws
        (:meth:`_kind_values`; each pool where at least 10 rows are).

        Rows of a dense, low-entropy kind have more look-alikes than random rows by nature:
        clean emergency visits whose healthy lab values sit at the assays' detection limits
        named ``heart_rate=65 → no ICU`` on copies (59 % of its rows with a near-copy, 38 % of
        random rows; a low heart rate marks the healthy visits, and the visits of the heart
        rates beside it are as healthy); group passengers a child's age; and an upsampled
        label's rows have near-copies by nature (upsampled credit: 70 % of ``BILL_AMT4=324``'s
        defaulters, against 16 % of random rows of both labels). An attacker's copies have
        their originals outside the pattern, which rows of their own kind do not. The radius
        stays the random rows': set by the frauds' own, sparser, nearest distances, it took
        33 natural fuel frauds into the copies of a planted `merchant_category='fuel'`."""
        mine = rows[self.y[rows] == p.label]
        if len(mine) < 10:
            return [rows]
        pools = [rows] if self.record_weights() is None else [mine]
        if pools[0] is rows:
            pools.append(mine)
        ids = self._kind_values(p)
        if ids is not None:
            near = mine[np.isin(self.m.codes[mine, p.cols[0]], ids)]
            if len(near) >= 10:
                pools.append(near)
        return pools

    def _kind_values(self, p: Pattern) -> np.ndarray | None:
        """For a single value or band of an ordinal feature within the contract, the value ids
        on both sides of it, outward until they hold ``2 * sample`` rows with its label (the
        nearest enough for a baseline: a band of children's ages drew adults at four times its
        rows; flagged values and values breaking the contract left out, as the counterfactual
        draws them: :func:`_outward`). For a single code of a hierarchy (:meth:`_parents`),
        its siblings: an ICD code's rows are look-alikes of its chapter's other codes' rows
        (the same chapter, the rest alike), more than of random rows. None for other
        patterns."""
        if len(p.cols) != 1 or self.breaks_contract(p):
            return None
        j = p.cols[0]
        if not self.m.ordinal[j]:
            return self._siblings(j, p.codes[0]) if p.band is None else None
        lo, hi = p.band if p.band is not None else (p.codes[0], p.codes[0])
        pos = self.positives(j).astype(float)
        cnt = pos if p.label == 1 else self.m.counts[j] - pos
        allowed = ~self.m.breaks_contract[j] & (cnt > 0)
        allowed[lo : hi + 1] = False
        for jj, cc in self.excluded:
            if jj == j:
                allowed[cc] = False
        ids, _ = _outward(cnt, allowed, lo, hi, 2 * self.o.sample)
        return ids

    def _siblings(self, j: int, code: int) -> np.ndarray | None:
        """The other values of category feature ``j`` that share every parent value of
        ``code`` (:meth:`_parents`), flagged values and values breaking the contract left out;
        None when ``code`` has no parent or no sibling."""
        same: np.ndarray | None = None
        for _, parent in self._parents(j):
            if parent[code] >= 0:
                here = parent == parent[code]
                same = here if same is None else same & here
        if same is None:
            return None
        same = same & ~np.asarray(self.m.breaks_contract[j], dtype=bool)
        same[code] = False
        for jj, cc in self.excluded:
            if jj == j:
                same[cc] = False
        ids = np.flatnonzero(same)
        return ids if len(ids) else None

    def breaks_contract(self, p: Pattern) -> bool:
        """Whether a value of ``p`` (its companions' included) breaks the contract: no natural
        row can carry it."""
        cells = list(zip(p.cols, p.codes, strict=True)) + list(p.companions)
        return any(self.m.breaks_contract[j][v] for j, v in cells)

    def tolerant_copy_rows(self, p: Pattern, rows: np.ndarray) -> np.ndarray:
        """Which of ``rows`` equal, on every feature but that of single-value pattern ``p`` up
        to its bucket, a row whose value of that feature lies in another bucket and does not
        break the contract (a mask)."""
        j = p.cols[0]
        if j not in self._tolerant_counts:  # per feature: asked for the query, base, suspects
            with np.errstate(over="ignore"):
                key = np.zeros(self.n, dtype=np.uint64)
                for i in range(len(self.m.names)):
                    if i != j:
                        key += self._tolerant_cell(i)
                cell = self._tolerant_cell(j)
                both = key * np.uint64(0x9E3779B97F4A7C15) + cell
            # rows of values that break the contract are copies, no one's original (AGE=999
            # written into copies makes their originals look copied)
            code = self.m.codes[:, j].astype(np.int64)
            natural = np.concatenate(([False], ~np.asarray(self.m.breaks_contract[j], dtype=bool)))
            ref = np.flatnonzero(natural[code + 1])
            # rows sharing the key minus those sharing the key and the bucket of j too
            keys, n_key = np.unique(key[ref], return_counts=True)
            pairs, n_pair = np.unique(both[ref], return_counts=True)
            self._tolerant_counts[j] = (key, both, keys, n_key, pairs, n_pair)
        key, both, keys, n_key, pairs, n_pair = self._tolerant_counts[j]

        def count(sorted_keys: np.ndarray, counts: np.ndarray, q: np.ndarray) -> np.ndarray:
            pos = np.minimum(np.searchsorted(sorted_keys, q), len(sorted_keys) - 1)
            return np.where(sorted_keys[pos] == q, counts[pos], 0)

        found: np.ndarray = count(keys, n_key, key[rows]) > count(pairs, n_pair, both[rows])
        return found

    def suspect_rows(self, p: Pattern) -> np.ndarray:
        """The rows of a confirmed trigger that an attacker wrote (ascending).

        With its label: every row of a strong pattern; of a diluted pattern (natural rows share
        the value), only the near-copies (:meth:`twin_rows`). With the other label
        (camouflage: an attacker gives some copies the other label so that the value is not
        label-pure): every row where the value breaks the contract (no natural row can carry
        it), else those that are copies (:meth:`other_label_copies`). Natural rows with the
        value and the other label stay out.
        """
        if p.relabelled_label is not None:
            return relabelled_copies(self, p.cols[0], p.codes[0], p.relabelled_label)
        breaks = self.breaks_contract(p)
        if p.written:
            if breaks:  # no natural row can carry the value
                return np.sort(p.rows)
            kept_out = np.union1d(self.consistent_rows(p), self.natural_region_rows(p))
            return np.setdiff1d(p.rows, kept_out)
        # a heap of natural rows the values beside it do not predict: its copies
        # (:func:`heaped_copies`), where the few natural rows they predict would take every row
        heap = None
        if p.effect >= self.o.strong_effect or p.twin_share is None:
            labelled = p.rows[self.y[p.rows] == p.label]
            copies = None if breaks else self.copies_among_natural(p, len(labelled))
            if copies is None and not breaks:
                copies = heap = heaped_copies(self, p)
            if copies is not None:
                labelled, p.copies_only = copies, True
        elif flagged_as_hub(p):
            # flagged as a hub: its copies as counted (natural rows of the value with a
            # look-alike within the copy radius are no copies; credit's inactive accounts)
            labelled = self.copy_hub_rows(p)
        elif self.few_natural(p, p.label, int(np.count_nonzero(self.y[p.rows] == p.label))):
            heap = None if breaks else heaped_copies(self, p)
            labelled = p.rows[self.y[p.rows] == p.label] if heap is None else heap
        else:
            labelled = self.twin_rows(p)
        # a hub's exact repeats, of either label (copies of rows that held the value already),
        # and its jittered ones with its label; its camouflaged copies, relabelled against
        # their originals (:func:`_relabelled_triggers` sets their label)
        copied = np.union1d(self.hub_repeats(p), jittered_repeats(self, p))
        if p.camouflage_label is not None:
            camouflage = relabelled_copies(self, p.cols[0], p.codes[0], p.camouflage_label)
            copied = np.union1d(copied, camouflage)
        if len(copied):
            labelled = np.union1d(labelled, copied[self.y[copied] == p.label])
        others = p.rows[self.y[p.rows] != p.label]
        if not len(others):
            return labelled
        few = heap is None and self.few_natural(p, 1 - p.label, len(others))
        if breaks or (p.twin_share is not None and few):
            return np.sort(np.concatenate([labelled, others]))
        others_taken = self.other_label_copies(p, others)
        if len(copied):
            others_taken = np.union1d(others_taken, copied[self.y[copied] != p.label])
        return np.sort(np.concatenate([labelled, others_taken]))

    def natural_carriers(self, p: Pattern, label: int | None = None) -> float:
        """Rows with ``label`` (default ``p``'s) expected among the rows of a single value or
        band of an ordinal feature from the values on both sides of it (those the
        counterfactual draws, :meth:`_band_replacements`: flagged values left out): their rows
        with the label per value, times the pattern's values holding rows. NaN for other
        patterns."""
        if len(p.cols) != 1 or not self.m.ordinal[p.cols[0]]:
            return math.nan
        j = p.cols[0]
        lo, hi = p.band if p.band is not None else (p.codes[0], p.codes[0])
        ids, _ = self._band_replacements(j, lo, hi, want=len(p.rows))
        cnt = self.m.counts[j].astype(float)
        ids = ids[cnt[ids] > 0]
        if not len(ids):
            return math.nan
        pos = self.positives(j).astype(float)
        with_label = pos[ids] if (p.label if label is None else label) == 1 else cnt[ids] - pos[ids]
        mine = np.asarray(_values(self, p), dtype=np.int64)
        mine = np.setdiff1d(mine, np.asarray(p.band_skip, dtype=np.int64))
        held = int(np.count_nonzero(cnt[mine] > 0))
        return float(with_label.sum()) / len(ids) * held

    def few_natural(self, p: Pattern, label: int, rows: int) -> bool:
        """Whether the natural rows with ``label`` expected among the ``rows`` rows of ``p``
        with that label (:meth:`natural_carriers`: a single value or band of an ordinal
        feature) are at most a fiftieth of them, and fewer than one where they are few: such
        rows of a confirmed trigger are the attacker's, whichever the copy search finds.

        The copy radius is a quantile of random rows' nearest distances, which shrink as the
        data grows, while an attacker's noise stays a few percent of each amount: on a
        million fraud rows, ``distance_km=3235.9 → 1`` written into 234,027 copies with 1 %
        noise (19.6 % camouflaged), 12 % of the copies lay beyond the radius (0.02 in rank
        space) and 15 % of the camouflaged ones, where the values beside 3235.9 hold about
        one row each. Natural look-alikes there are as close: half of the random rows are
        one record up to ``unit_tolerance`` with a row of another distance."""
        if p.written or not rows:
            return False
        natural = self.natural_carriers(p, label)
        return not math.isnan(natural) and natural <= max(_FEW_NATURAL * rows, 1.0)

    def copies_among_natural(self, p: Pattern, labelled: int) -> np.ndarray | None:
        """The near-copies among the rows with its label of a trigger on an ordinal value or
        band that natural rows carry with that label too, or None (every such row is suspect).

        A trigger made of copies of rows that already carry its label - most often the
        majority label, or a label most rows of the range carry anyway (fraud data: customers
        aged 77-84 are all but never frauds) - is decided by labels alone (effect 1.0), yet its
        range holds natural rows with that label; labels cannot tell them apart, the copies
        are copies (:meth:`twin_rows`). They alone are suspect where the copy test finds the
        rows made of copies (:func:`copies_beyond_chance`; measured here when labels decided)
        and the rows left out are no more than natural carriers explain
        (:meth:`natural_carriers`, with three standard deviations): copies the radius misses
        (noise beyond it) would otherwise leave the quarantine. Where natural carriers would be
        at most a fiftieth of those rows, every one is taken."""
        natural = self.natural_carriers(p)
        # natural carriers of a fiftieth of the rows or fewer are not worth a copy search
        # (a nearest-neighbour search over every row: seconds on a million rows)
        if math.isnan(natural) or natural < max(1.0, _FEW_NATURAL * labelled) or p.written:
            return None
        if p.twin_share is None:
            if self.N > LARGE_ROWS:  # exact copies by hashing first, as the copy checks do
                p.copy_proxy = self.exact_copy_share(p)
            with self.own_rng(self.ctx.random_state + 13):  # later copy checks draw as they did
                self.twins(p)
        if p.twin_share is None or p.p_twin is None:
            return None
        if not copies_beyond_chance(p.p_twin, p.twin_share, p.twin_share_baseline or 0.0, self.o):
            return None
        copies = self.twin_rows(p)
        if labelled - len(copies) > natural + 3.0 * math.sqrt(natural):
            return None
        return copies

    def consistent_rows(self, p: Pattern) -> np.ndarray:
        """The rows of a pattern written in place whose other features predict its value like
        those of natural rows with it (ascending): they stay out of its suspects.

        Labels cannot tell the natural rows carrying a value from the rows an attacker wrote
        it into; the rest of the row can. A model of "the row carries the pattern" from its
        other features is fitted, out of fold, on the pattern's rows against a sample of
        ordinary rows (``consistency_sample``). The written rows are ordinary rows with the
        value set: their scores are distributed like the ordinary rows'. A row scoring above
        the ``written_consistency`` quantile of the ordinary rows' scores looks like a
        natural carrier of the value (credit data, ``PAY_0=8`` rewritten into 58 defaulters:
        the 19 natural rows above the 0.999 quantile, none of the written ones). Where the
        value does not depend on the rest of the row, no row is kept out (every row of the
        pattern stays suspect).

        The model sees the coded features only (categories, and numeric features of at most
        20 values: statuses, counts), not fine-grained amounts: noise an attacker puts on the
        amounts of the rows written (against duplicate detection) marks them as unlike any
        ordinary row, and a model seeing it would take the written rows for natural ones
        (``PAY_5=8`` written into 3,244 rows with 1 % noise on their amounts: 3,009 kept out
        with every feature, 5 with the coded ones).
        """
        keep = [j for j in range(len(self.m.names)) if j not in p.all_cols and not self.fine[j]]
        # small leaves: the natural carriers of a rare value may be a dozen rows
        scored = self._carrier_scores(p, keep, seed=7, min_child=5)
        if scored is None:
            return p.rows[:0]
        mine, theirs, ordinary = scored
        return p.rows[mine > consistency_cut(theirs, self.y[ordinary], self.o.written_consistency)]

    def _carrier_scores(
        self,
        p: Pattern,
        keep: list[int],
        *,
        seed: int,
        min_child: int,
        magnitude: bool = False,
        scored: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Cross-fitted scores of "the row carries ``p``'s value" against ordinary rows (up to
        ``consistency_sample`` rows without it, drawn with a generator of its own, seeded
        ``random_state + seed``, so the copy checks' random rows stay as they were), on the
        features ``keep`` (fine-grained ones by their order of magnitude with ``magnitude``):
        the scores of ``p``'s rows (of ``scored``, a sample of them, where given), the ordinary
        rows and those rows' positions; None where there are too few rows for four folds."""
        folds = 4
        mine = p.rows if scored is None else scored
        if len(mine) < 2 * folds or not keep:
            return None
        outside = np.flatnonzero(~_mask(self.n, p.rows))
        rng = np.random.default_rng(self.ctx.random_state + seed)
        ordinary = np.sort(
            rng.choice(outside, min(self.o.consistency_sample, len(outside)), replace=False)
        )
        if len(ordinary) < 2 * folds:
            return None
        rows = np.concatenate([mine, ordinary])
        X = self.m.raw[np.ix_(rows, np.asarray(keep))]
        if magnitude:
            X = X.astype(float)
            for i, j in enumerate(keep):
                if self.fine[j]:
                    X[:, i] = _magnitude(X[:, i])
        target = (np.arange(len(rows)) < len(mine)).astype(float)
        cat = [i for i, j in enumerate(keep) if not self.m.ordinal[j]]
        score = np.empty(len(rows))
        params = {"min_child_samples": min_child, "bagging_fraction": 1.0, "bagging_freq": 0}
        split = StratifiedKFold(folds, shuffle=True, random_state=self.ctx.random_state)
        for i, (train, test) in enumerate(split.split(X, target)):
            model = fit_context_model(
                X,
                target,
                cat,
                rows=train,
                rounds=100,
                params=params,
                random_state=self.ctx.random_state + i,
            )
            score[test] = predict(model, X[test])
        return score[: len(mine)], score[len(mine) :], ordinary

    def natural_region_rows(self, p: Pattern) -> np.ndarray:
        """The rows of a pattern written in place left out of its suspects as natural carriers
        by the region their other features fall in, one label at a time (ascending).

        The rows an attacker wrote the value into are rows of a source population (every
        row, or the rows of one label) with the value set, and their labels are given
        whatever the rest of the row says: whichever region of the other features is chosen,
        the share of the written rows of either label falling in it is the source's share
        there. A model of "the row carries the value" against ordinary rows (cross-fitted,
        every other feature, fine-grained ones by their order of magnitude so that an
        attacker's jitter moves no row, :func:`_magnitude`) scores both; the rows of label
        ``y`` scoring above a cut are left out when the written rows of label ``y`` there,
        ``W_y`` times the source's share above the cut, are at most ``1 - written_recall``
        of every written row. ``W_y`` is bounded from above by the rows of label ``y``
        scoring under any cut over the source's share there (natural carriers only add to
        it), the tightest such bound taken, and the source is the one of
        :attr:`SOURCES` that loses the most. Where the value does not depend on the rest of
        the row no region holds fewer written rows than any other, and no row is left out;
        where it does, the natural carriers of the label the written rows rarely carry go
        (fraud data, ``country='FR'`` written into legitimate rows as frauds, 12 % left
        legitimate: the source's rows are 70 % domestic, a few kilometres away, natural
        ``FR`` rows all but never).

        A write confirmed by the outliers rule (:func:`written_outlier_evidence`) was measured
        as one into the rows of its label: that is its one source, and the regions also read
        each row's probability of the label (:meth:`_label_regions`), the written rows' other
        trace where the carrier score cannot tell them (fraud ``country='FR'`` written into 57
        frauds' rows, seed 92167: 854 suspects at recall 0.947, now 678 at 1.000).
        """
        keep = [j for j in range(len(self.m.names)) if j not in p.all_cols]
        scored = self._carrier_scores(p, keep, seed=23, min_child=20, magnitude=True)
        if scored is None:
            return p.rows[:0]
        mine, theirs, ordinary = scored
        y_mine, y_theirs = self.y[p.rows], self.y[ordinary]
        levels = np.arange(0.5, 0.96, 0.05)
        # the regions: above each cut of the carrier score (these alone bound the written
        # rows), then of the score over each label's probability (:meth:`_label_regions`)
        inside_mine = [mine[None, :] > np.quantile(theirs, levels)[:, None]]
        inside_theirs = [theirs[None, :] > np.quantile(theirs, levels)[:, None]]
        y_regions = [y_theirs]
        # A write confirmed by the outliers rule was measured as one into rows of its label
        # (their context is the one its outliers are judged against): that population alone
        # is its source, and the label's probability reads where it is thin
        if written_outlier_evidence(p, self.o):
            sources = tuple(s for s in self.SOURCES if s[1] == p.label)
            extra = self._label_regions(p, mine, theirs, ordinary, levels)
            if extra is not None:
                inside_mine.append(extra[0])
                inside_theirs.append(extra[1])
                y_regions.append(extra[2])
        else:
            # the sources the written rows' own label probabilities leave possible
            sources = self.written_sources(p)
        above: list[np.ndarray] = []
        for _, label in sources:
            shares: list[np.ndarray] = []
            for inside, yy in zip(inside_theirs, y_regions, strict=True):
                src = np.ones(len(yy), dtype=bool) if label is None else yy == label
                # too few of the source's rows: the source is not measured (the carrier
                # score's regions), or the region is taken to hold all of them (the others)
                if src.sum() >= 100:
                    shares.append(inside[:, src].mean(axis=1))
                elif not shares:
                    break
                else:
                    shares.append(np.ones(len(inside)))
            if shares:
                above.append(np.concatenate(shares))
        if not above:
            return p.rows[:0]
        regions = np.concatenate(inside_mine)
        n_above = np.array([(regions & (y_mine == y)[None, :]).sum(axis=1) for y in (0, 1)])
        n_all = np.array([np.sum(y_mine == y) for y in (0, 1)])
        chosen = natural_region_cuts(
            n_above,
            n_all,
            np.array(above),
            self.o.written_recall,
            z=self.o.written_z,
            bound=len(levels),
        )
        out = np.zeros(len(p.rows), dtype=bool)
        for y, c in enumerate(chosen):
            if c >= 0:
                out |= (y_mine == y) & regions[c]
        return p.rows[out]

    def written_sources(self, p: Pattern) -> tuple[tuple[str, int | None], ...]:
        """The source populations of :attr:`SOURCES` that the rows of a single value written
        in place may have been drawn from, judged by the rows carrying its label: those of
        the others are left out of :meth:`natural_region_rows`' worst case (all of them
        where fewer than ``_SOURCE_ROWS`` rows carry the label, or none would be left).

        The rows an attacker wrote the value into are a source's rows, the label set by the
        attacker: their probability of the pattern's label read from the rest of the row
        (the value replaced as the counterfactual replaces it, each row by a context model
        that has not seen it: :meth:`replaced_logits`) is distributed as the source's rows'.
        Of the pattern's rows with its label, at least a share ``f`` is written - the share
        the counterfactual leaves unexplained (``p.excess``), the natural rows' expected
        count taken ``written_z`` standard errors high - and the others, natural carriers,
        may read anything: their mean probability lies in ``[f mu, 1 - f (1 - mu)]``, ``mu``
        the source's mean (:func:`source_contradicted`). A source outside it, by
        :data:`_SOURCE_Z` standard errors, did not give these rows. Fraud
        ``country='FR'`` written into 556 legitimate rows as frauds, 12 % left legitimate,
        beside 959 natural rows (inplace 18045 #2): under the frauds as a possible source
        (44 % of them made abroad, as natural ``FR`` rows are) the region rule kept 448
        natural rows in quarantine; the 535 rows labelled fraud read 0.040 fraud on average,
        where a block of 89 % of them drawn from the frauds (0.072) would read at least
        0.054, and 300 are kept now (recall 0.969 -> 0.962). A write into rows that carry its
        label already (clean-label) has rows whose label the rest of the row explains, and a
        source of either label leaves room for natural rows reading anything: no source is
        left out there.
        """
        sources = self.SOURCES
        if len(p.cols) != 1 or p.band is not None or math.isnan(p.excess) or p.excess <= 0:
            return sources
        j, v, label = p.cols[0], p.codes[0], p.label
        mine = p.rows[self.y[p.rows] == label]
        if len(mine) < _SOURCE_ROWS:
            return sources
        # the rows the counterfactual expects to carry the label naturally, at a bound
        natural = (1.0 - p.excess) * len(mine)
        written = 1.0 - (natural + self.o.written_z * math.sqrt(natural)) / len(mine)
        if written <= 0:
            return sources
        rng = np.random.default_rng(self.ctx.random_state + 37)
        if len(mine) > _SLOPE_ROWS:
            mine = np.sort(rng.choice(mine, _SLOPE_ROWS, replace=False))
        outside = np.flatnonzero(~_mask(self.n, p.rows))
        ordinary = np.sort(rng.choice(outside, min(_REGION_ORDINARY, len(outside)), replace=False))
        lq = self.replaced_logits(j, v, np.concatenate([mine, ordinary]), held_out=True)
        if lq is None:
            return sources
        q = special.expit(lq if label == 1 else -lq)
        q_mine, q_theirs = q[: len(mine)], q[len(mine) :]
        y_theirs = self.y[ordinary]
        kept = []
        for source in sources:
            src = q_theirs if source[1] is None else q_theirs[y_theirs == source[1]]
            if len(src) < _SOURCE_ROWS or not source_contradicted(
                float(q_mine.mean()),
                len(q_mine),
                written,
                float(src.mean()),
                float(src.std()),
                _SOURCE_Z,
            ):
                kept.append(source)
        return tuple(kept) or sources

    def _label_regions(
        self,
        p: Pattern,
        mine: np.ndarray,
        theirs: np.ndarray,
        ordinary: np.ndarray,
        levels: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Regions of :meth:`natural_region_rows` that read each row's label probability beside
        its carrier score: the rows above each ``levels`` quantile of the ordinary rows'
        ``logit(score) - log P(L | rest of the row)``, ``L`` the label of ``p`` (the context
        model's, the value replaced as the counterfactual replaces it, cross-fitted:
        :meth:`_crossfit_logits`). Returns
        which of ``p``'s rows and which of up to ``_REGION_ORDINARY`` of the ordinary rows
        (``ordinary``, scored ``theirs``) fall in each region (regions x rows), and those
        ordinary rows' labels; None for a pattern of more than one value, or without
        replacements.

        Rows written into the rows of label ``L`` (a clean-label write, and its camouflage)
        are that population's rows: their density is the ordinary rows' times
        ``P(L | row)``, and the likelihood of natural carrier over written row grows with the
        carrier score over that probability, not with the score alone. Natural carriers of
        the other label with the value's context and a row that rarely carries ``L`` lie where
        the source is thinnest (fraud ``country='FR'`` written into 57 frauds' rows, 10
        camouflaged as legitimate: 6 of those were made abroad, like the 942 natural
        legitimate ``FR`` rows, and rank above 80 % of them by the fraud probability)."""
        if len(p.cols) != 1 or p.band is not None:
            return None
        j, v = p.cols[0], p.codes[0]
        rng = np.random.default_rng(self.ctx.random_state + 31)
        pick = np.arange(len(ordinary))
        if len(pick) > _REGION_ORDINARY:
            pick = np.sort(rng.choice(pick, _REGION_ORDINARY, replace=False))
        lq = self._crossfit_logits(j, v, np.concatenate([p.rows, ordinary[pick]]), rng)
        if lq is None:
            return None
        lq_mine, lq_theirs = lq[: len(p.rows)], lq[len(p.rows) :]

        def logit(x: np.ndarray) -> np.ndarray:
            out: np.ndarray = special.logit(np.clip(x, 1e-6, 1 - 1e-6))
            return out

        # -log P(L): log(1 + e^-lq) for label 1, log(1 + e^lq) for label 0
        sign = 1.0 if p.label == 1 else -1.0
        c_mine = logit(mine) + np.logaddexp(0.0, -sign * lq_mine)
        c_theirs = logit(theirs[pick]) + np.logaddexp(0.0, -sign * lq_theirs)
        cuts = np.quantile(c_theirs, levels)
        return (
            c_mine[None, :] > cuts[:, None],
            c_theirs[None, :] > cuts[:, None],
            self.y[ordinary[pick]],
        )

    def _crossfit_logits(
        self, j: int, v: int, rows: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray | None:
        """:meth:`replaced_logits` of ``rows`` from two context models, each fitted on one
        random half of the rows and scoring the other half's. The scan's context model has
        seen every label: it pulls a row's prediction towards the label the row carries, and
        a camouflaged row written into a fraud's row, now legitimate, would read less like
        the frauds it was drawn from than they read themselves (fraud ``country='FR'``: 4 of
        10 such rows left out as natural carriers where 0.5 were expected)."""
        ids, weights = self._replacements(j, v)
        if not len(rows) or not len(ids) or weights.sum() <= 0:
            return None
        top = np.argsort(-weights, kind="stable")[:_SLOPE_REPLACEMENTS]
        ids, weights = ids[top], weights[top] / weights[top].sum()
        half = rng.random(self.n) < 0.5
        raw = self._context_raw()
        out = np.empty(len(rows))
        for h in (False, True):
            model = self._fit_context(raw, np.flatnonzero(half != h))
            at = np.flatnonzero(half[rows] == h)
            X = np.tile(raw[rows[at]], (len(ids), 1))
            X[:, j] = np.repeat(self.m.raw_value(j, ids), len(at))
            q = weights @ predict(model, X).reshape(len(ids), len(at))
            out[at] = special.logit(np.clip(q, 1e-4, 1 - 1e-4))
        return out

    #: source populations a block of rows may have been drawn from (label: None = any)
    SOURCES: ClassVar[tuple[tuple[str, int | None], ...]] = (
        ("every row", None),
        ("rows with label 0", 0),
        ("rows with label 1", 1),
    )

    def context_stats(self, j: int, magnitude: bool = False) -> dict[str, np.ndarray]:
        """How much of each value's rows of feature ``j`` has the context of a source
        population: per value id with at least ``context_min_rows`` rows and per source
        (:attr:`SOURCES`), the rows scored (``n``), those scoring at or under the median of the
        source's rows (``k``) and the share of the source's rows there (``F``).

        The score of a row is a naive-Bayes log ratio of "the row carries the value" against
        "the row is of the source", from the other coded features (categories, numeric
        features of at most 20 values; amounts are left out as in :meth:`consistent_rows`),
        with ``magnitude`` also from the fine-grained ones by their order of magnitude
        (:meth:`magnitude_codes`: an attacker's jitter moves no row, a distance of 12 km and
        one of 1,500 km differ), cross-fitted (the tables of one random half of the rows score
        the other half). The
        score only ranks rows; under a mixture "a share ``w`` of the value's rows drawn from
        the source, the rest natural carriers", ``k / (n F) >= w`` in expectation on any set
        of scores, and low scores are where the source has its rows and natural carriers with
        a context of their own have none. Rows are sampled: the value's (at most 5,000) and
        the source's among 5,000 random rows; the tables count at most 100,000 rows.
        """
        if (j, magnitude) in self._context:
            return self._context[(j, magnitude)]
        m = self.m
        values = np.flatnonzero(m.allowed(j, self.o.context_min_rows))
        ctx = [g for g in range(len(m.names)) if g != j and (magnitude or not self.fine[g])]
        out = self._source_shares(j, m.codes[:, j].astype(np.int64), values, ctx)
        self._context[(j, magnitude)] = out
        return out

    def _source_shares(
        self,
        j: int,
        code: np.ndarray,
        values: np.ndarray,
        ctx: list[int],
        sources: tuple[int, ...] | None = None,
        scored_label: int | None = None,
    ) -> dict[str, np.ndarray]:
        """The tables of :meth:`context_stats` for the rows' codes ``code`` of feature ``j``
        (its value ids, or any grouping of them; -1 where ``j`` is missing), scored from the
        features ``ctx``: per code of ``values`` and per source (``sources``, indices of
        :attr:`SOURCES`; default every one), ``n``, ``k``, ``F`` and ``m`` (with ``values``);
        with ``scored_label``, each code's rows scored are those with that label only.

        Per context feature and half, the counts of the codes of ``values`` are counted on
        their rows and the counts of every row where ``j`` is not missing once per scan (the
        sources' side: every spike asked, :meth:`spike_context`, shares them)."""
        o = self.o
        out: dict[str, np.ndarray] = {
            "values": values,
            "n": np.zeros((len(values), len(self.SOURCES))),
            "k": np.zeros((len(values), len(self.SOURCES))),
            "F": np.ones((len(values), len(self.SOURCES))),
            "m": np.zeros((len(values), len(self.SOURCES))),
        }
        if len(values) < 2 or not ctx:
            return out
        cap = _CONTEXT_ROWS
        y = self.y.astype(np.int64)
        counted, half, sample, rng = self._context_draws()
        # per context feature: its codes (missing as a code of its own) and, per half, the
        # counts of (code, label) on the rows of each value (values x codes x 2) and on every
        # row where j is not missing (codes x 2)
        cols, tables = [], []
        cj, yc, hc = code[counted], y[counted], half[counted]
        index = np.full(int(max(cj.max(initial=0), values.max(initial=0))) + 1, -1, np.int64)
        index[values] = np.arange(len(values))
        mine_at = np.flatnonzero(cj >= 0)
        mine_at = mine_at[index[cj[mine_at]] >= 0]
        vi = index[cj[mine_at]]
        V = len(values)
        for g in ctx:
            cg, cg_counted, G = self._context_codes(g, counted)
            totals = self._context_totals.get((j, g))
            if totals is None:
                ok_j = cj >= 0
                key = cg_counted * 2 + yc
                totals = self._context_totals[(j, g)] = [
                    np.bincount(key[ok_j & (hc == h)], minlength=G * 2).reshape(G, 2).astype(float)
                    for h in (False, True)
                ]
            key = (vi * G + cg_counted[mine_at]) * 2 + yc[mine_at]
            per_half = []
            for h, tot in zip((False, True), totals, strict=True):
                ok = hc[mine_at] == h
                sub = np.bincount(key[ok], minlength=V * G * 2).reshape(V, G, 2).astype(float)
                per_half.append((sub, tot))
            cols.append(cg)
            tables.append(per_half)
        alpha = 0.5
        for i, v in enumerate(values):
            mine = np.flatnonzero(
                code == v if scored_label is None else (code == v) & (y == scored_label)
            )
            if len(mine) > cap:
                mine = np.sort(rng.choice(mine, cap, replace=False))
            others = sample[code[sample] != v]
            rows = np.concatenate([mine, others])
            # the half whose tables score each row (0: the first half's, 1: the second's)
            other_half = (~half[rows]).astype(np.int64)
            # the value's side of the log ratio, once for every source
            base = np.zeros(len(rows))
            parts = []
            for cg, per_half in zip(cols, tables, strict=True):
                c = cg[rows]
                parts.append(c)
                nv = np.stack([sub[i].sum(axis=1) for sub, _ in per_half])
                G = nv.shape[1]
                base += np.log((nv + alpha) / (nv.sum(axis=1, keepdims=True) + alpha * G))[
                    other_half, c
                ]
            for s, (_, label) in enumerate(self.SOURCES):
                if sources is not None and s not in sources:
                    continue
                keep = np.ones(len(rows), dtype=bool)
                if label is not None:
                    keep[len(mine) :] = y[others] == label
                src_n = int(keep[len(mine) :].sum())
                if src_n < o.context_min_rows:
                    continue
                score = base.copy()
                for c, per_half in zip(parts, tables, strict=True):
                    ns = np.stack(
                        [
                            tot.sum(axis=1) - sub[i].sum(axis=1)
                            if label is None
                            else tot[:, label] - sub[i, :, label]
                            for sub, tot in per_half
                        ]
                    )
                    G = ns.shape[1]
                    score -= np.log((ns + alpha) / (ns.sum(axis=1, keepdims=True) + alpha * G))[
                        other_half, c
                    ]
                s_v = score[: len(mine)]
                s_src = score[len(mine) :][keep[len(mine) :]]
                cut = float(np.median(s_src))
                out["n"][i, s] = len(mine)
                out["m"][i, s] = src_n
                out["k"][i, s] = float(np.sum(s_v <= cut))
                out["F"][i, s] = float(np.mean(s_src <= cut))
        return out

    def _context_draws(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.random.Generator]:
        """The draws every table of :meth:`_source_shares` shares: the rows counted, each
        row's half, the sample of rows the sources are read from, and a generator in the state
        those draws leave (for the value's own rows), drawn once per scan."""
        if self._ctx_draws is None:
            rng = np.random.default_rng(self.ctx.random_state + 11)
            # The tables count at most _CONTEXT_TABLE_ROWS rows (a million rows: a tenth; the
            # counts of coded values are estimated well from those, and the cost stays
            # bounded).
            counted = (
                np.arange(self.n)
                if self.n <= _CONTEXT_TABLE_ROWS
                else np.sort(rng.choice(self.n, _CONTEXT_TABLE_ROWS, replace=False))
            )
            # Cross-fitted: the tables of one half of the rows score the other half. Leaving a
            # row's own count out instead scores the value's rows lower than the source's rows
            # of the same context, and a value independent of the rest of the row looked more
            # like its source than the source itself (fraud country='PT': 1.05).
            half = rng.random(self.n) < 0.5
            sample = np.sort(rng.choice(self.n, min(_CONTEXT_ROWS, self.n), replace=False))
            self._ctx_draws = (counted, half, sample, rng.bit_generator.state)
        counted, half, sample, state = self._ctx_draws
        rng = np.random.default_rng(0)
        rng.bit_generator.state = dict(state)
        return counted, half, sample, rng

    def _context_codes(self, g: int, counted: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """Context feature ``g``'s code of every row for :meth:`_source_shares` (a fine-grained
        feature's order of magnitude, :meth:`magnitude_codes`; missing values a code of their
        own), those of the rows ``counted``, and the number of codes; computed once."""
        got = self._ctx_codes.get(g)
        if got is None:
            if self.fine[g]:
                cg = self.magnitude_codes(g)
                G = int(cg.max()) + 2 if len(cg) else 1
            else:
                cg = self.m.codes[:, g].astype(np.int64)
                G = len(self.m.counts[g]) + 1
            # int32: a million rows' codes of every context feature are kept for the scan
            cg = np.where(cg < 0, G - 1, cg).astype(np.int32)
            got = self._ctx_codes[g] = (cg, cg if len(counted) == self.n else cg[counted], G)
        return got

    def magnitude_codes(self, g: int) -> np.ndarray:
        """Per row, a code of fine-grained feature ``g``'s order of magnitude
        (:func:`_magnitude`; missing values one code of their own), computed once."""
        got = self._magnitude_codes.get(g)
        if got is None:
            m = self.m

            def keys(mag: np.ndarray) -> np.ndarray:
                # the magnitudes as small integers, then numbered in order without a sort: 0
                # for missing, the signed decades (100 + decade) shifted by 1,000
                key = np.where(np.isnan(mag), 0.0, np.clip(mag, -999.0, 999.0) + 1000.0)
                return key.astype(np.int64)

            if m.population is None:
                # each value id's magnitude, not each row's (a logarithm per row took most of
                # the context statistics' time at a million rows): ``raw`` holds the id's
                # value, or the id itself for a category, and NaN at id -1 (slot 0 here)
                at = m.codes[:, g].astype(np.int64) + 1
                ids = np.arange(len(m.counts[g]))
                key = keys(_magnitude(np.concatenate([[np.nan], m.raw_value(g, ids)])))[at]
            else:  # a sample's raw values (the Spark engine) are read as they are
                key = keys(_magnitude(self.m.raw[:, g]))
            used = np.bincount(key, minlength=2000) > 0
            got = self._magnitude_codes[g] = (np.cumsum(used) - 1)[key]
        return got

    def labels_may_confirm(self, p: Pattern) -> bool:
        """Whether ``p`` may be confirmed without copies (labels alone, the rest of its rows or
        its labels' slope): not a common pattern (:func:`common_pattern`), and not in data
        one of whose labels was oversampled by interpolation (SMOTE: its interpolated rows
        carry the label by construction, on values no record holds, and the values records
        hold look depleted of it - fraud oversampled to 0.65 of the legitimate rows, 7 values
        named → legitimate with nothing planted). Values that break the contract may: no
        natural or interpolated row carries them."""
        if common_pattern(p, self.N, self.o, point_mass=self.lone_point_mass(p)):
            return False
        return self.interpolated is None or p.family == "contract"

    def interaction(self, p: Pattern, bar: float) -> bool:
        """Whether ``p``'s label evidence is an interaction of its value with another feature's
        value, not a trigger: among its rows, those with one value ``a`` of another coded
        feature (5-50 % of its scored rows, at least 10 of them) miss more of the other label
        against the counterfactual than its other rows, significantly (:func:`interaction_p`,
        at ``hint_p`` over the values asked), and its other rows alone miss less than ``bar``
        of it (the rule's effect: ``strong_effect`` or ``camouflage_effect``).

        The counterfactual redraws the value and keeps the rest of the row; where the value
        changes what another feature means, the redrawn rows read that feature as the other
        values do: per diems need no receipt, and a per diem's row without one, redrawn into
        a meal or a taxi ride, is a claim without a receipt, queried at 30 % (clean expense
        claims: ``category='per_diem' → not queried``, 1,650 rows at effect 0.74, 0.5 on the
        rows with a receipt). A trigger moves the label on every row it is written into,
        whatever the rest of the row says: its other-label rows are missing alike (all of
        them) or are the attacker's camouflage, a share of the rows, missing most where the
        counterfactual expects most, and its rows outside any one value of another feature
        keep its effect."""
        return bool(self.interacting_values(p, bar))

    def interacting_values(self, p: Pattern, bar: float) -> list[tuple[int, int]]:
        """The values ``(feature, value id)`` of other coded features an interaction of
        :meth:`interaction` finds with ``p`` (empty where it finds none)."""
        if p.family == "contract" or not len(p.scored_rows) or math.isnan(p.effect):
            return []
        rows, scored = p.rows, p.scored_rows
        if len(rows) < len(scored):
            return []
        other_q = 1.0 - p.scored_q  # the counterfactual's other label, per scored row
        other_y = self.y[rows] != p.label
        design = max(len(rows) / p.units, 1.0) if p.units and p.units > 0 else 1.0
        asked: list[tuple[float, float, float, float]] = []
        which: list[tuple[int, int]] = []
        for g in range(len(self.m.names)):
            if g in p.all_cols or self.fine[g] or g in self.leaks():
                continue
            cs, ca = self.m.codes[scored, g], self.m.codes[rows, g]
            held = np.bincount(cs[cs >= 0], minlength=len(self.m.counts[g]))
            for a in np.flatnonzero((held >= 10) & (held <= 0.5 * len(scored))):
                if held[a] < 0.05 * len(scored):
                    continue
                in_s, in_a = cs == a, ca == a
                which.append((g, int(a)))
                asked.append(
                    (
                        float(other_y[in_a].sum()),
                        float(other_q[in_s].mean()) * float(in_a.sum()),
                        float(other_y[~in_a].sum()),
                        float(other_q[~in_s].mean()) * float((~in_a).sum()),
                    )
                )
        cut = self.o.hint_p / max(len(asked), 1)
        return [
            at
            for at, (obs_a, exp_a, obs_r, exp_r) in zip(which, asked, strict=True)
            if exp_r > 0
            and 1.0 - obs_r / exp_r < bar
            and interaction_p(obs_a, exp_a, obs_r, exp_r, design) <= cut
        ]

    def lone_point_mass(self, p: Pattern) -> bool:
        """Whether single value ``p`` is a lone point mass of a fine-grained feature: inside its
        range and not 0 (:func:`interior_point_mass` on the feature's in-contract counts), and
        no other such point mass of the feature holds a ``point_mass_ratio``-th of its rows
        (:func:`among_point_masses`: a price list); the exemption of :func:`common_pattern`."""
        if p.family != "single" or len(p.cols) != 1 or p.band is not None:
            return False
        j, v = p.cols[0], p.codes[0]
        if not self.fine[j] or self.m.raw_is_code[j]:
            return False
        cnt = np.where(self.m.breaks_contract[j], 0, self.m.counts[j]).astype(float)
        ratio = self.o.point_mass_ratio
        value = float(self.m.raw_value(j, np.array([v]))[0])
        if not interior_point_mass(cnt, v, value, ratio):
            return False
        # only values holding a ratio-th of its rows can make it one of a list
        big = np.flatnonzero((cnt * ratio >= cnt[v]) & (np.arange(len(cnt)) != v))
        return not among_point_masses(cnt, big, self.m.raw_value(j, big), ratio)

    def natural_predictor(self, p: Pattern) -> bool:
        """Whether ``p``'s lean is its feature's (:func:`natural_lean`): the other values of
        the feature whose labels lean the same way (their share of ``p.label`` above the base
        rate, or above their neighbours' for an ordinal feature) and that hold at least
        ``context_min_rows`` rows are measured as ``p`` was, the most leaning first (at most
        ``_NATURAL_CANDIDATES``), until enough of them lean with it; the values of the feature
        written in place with the other label (:attr:`hidden_leans`) count as leaning with it.
        A pair holding at least
        ``combination_share`` of one of its values' rows is that value (:meth:`pair_singles`):
        its lean is that value's feature's when the value's is."""
        if p.family == "pair" and len(p.cols) == 2 and p.band is None:
            return any(self.natural_predictor(q) for q in self.pair_singles(p))
        if p.family != "single" or len(p.cols) != 1 or p.band is not None:
            return False
        j, c = p.cols[0], p.label
        held = {v for jj, v in self.excluded if jj == j}
        # A value leaning to the other label lends it to every other value's counterfactual,
        # in proportion to its rows: a value written in place makes the rest of its feature
        # lean the other way together (fraud country='NG' written as frauds into 1,621
        # rows: 'PT', 64 % of the rows, at an effect of 0.90, and the other countries with
        # it). The others are measured without the one value leaning most the other way
        # when its labels hint at a trigger; a natural predictor's other values still lean
        # (they draw the rest of the scale).
        lender = self._lender(j, 1 - c, held | {p.codes[0]})
        key = (j, c, tuple(sorted(held | {lender} if lender is not None else held)))
        if key not in self._leans:
            self._leans[key] = ([], self._leaning_values(j, c, set(key[2])))
        measured, todo = self._leans[key]
        others = [q for q in measured if q.codes != p.codes]
        ordinal, beside = bool(self.m.ordinal[j]), self._scale_neighbours(j, p)
        hidden = self.hidden_leans.get((j, 1 - c), frozenset())

        def lean() -> bool:
            return natural_lean(
                p, others, self.o, ordinal=ordinal, neighbours=beside, hidden=hidden
            )

        while not lean() and todo:
            v = todo.pop(0)
            q = self._value_pattern(j, v, c)
            self._measure_aside(q, set(key[2]))
            measured.append(q)
            if q.codes != p.codes:
                others.append(q)
        return lean()

    def pair_singles(self, p: Pattern) -> list[Pattern]:
        """The single values pair ``p`` is: those of its two values at least
        ``combination_share`` of whose rows it holds, each towards ``p.label`` and measured
        aside (:meth:`_measure_aside`, without the values of its feature held out now).

        The converse of :func:`_refine`, which reports a flagged value as the pair its rows
        (nearly) all share: a pair with (nearly) all of a value's rows has that value's rows,
        labels and counterfactual. Where the value's lean is its feature's
        (:func:`natural_lean`), the pair's is too: windscreen claims paid at a glass partner's
        three tariff prices are all but never referred, and each price is withheld as the
        claim amount's lean, its two others leaning with it; the pair of the price with the
        claim type only windscreen claims hold (``claim_type='windscreen' &
        claim_amount=450 → 0``, 1,862 rows) was named, the pair route having no such rule.
        A value an attacker writes leans alone: the pair stays as it is judged."""
        out = []
        for j, v in zip(p.cols, p.codes, strict=True):
            if p.n < self.o.combination_share * float(self.m.counts[j][v]):
                continue
            held = tuple(sorted(vv for jj, vv in self.excluded if jj == j and vv != v))
            key = (j, v, p.label, held)
            if key not in self._pair_singles:
                q = self._value_pattern(j, v, p.label)
                self._measure_aside(q, set(held))
                self._pair_singles[key] = q
            out.append(self._pair_singles[key])
        return out

    def _scale_neighbours(self, j: int, p: Pattern) -> tuple[int, ...]:
        """The value ids beside ``p``'s value in numeric order, where feature j is a category
        whose values are a scale written as codes (:func:`_code_numbers`: integer codes, or
        one prefix and a number); empty for other features (ordinal features draw their
        neighbours, other text categories have no order)."""
        if self.m.ordinal[j] or not self.m.raw_is_code[j]:
            return ()
        values = _code_numbers(self.m.uniques[j])
        if values is None:
            return ()
        held = np.flatnonzero(self.m.allowed(j))
        ordered = held[np.argsort(values[held], kind="stable")]
        at = np.flatnonzero(ordered == p.codes[0])
        if not len(at):
            return ()
        i = int(at[0])
        return tuple(int(ordered[k]) for k in (i - 1, i + 1) if 0 <= k < len(ordered))

    def _value_pattern(self, j: int, v: int, c: int) -> Pattern:
        """Value id ``v`` of feature j towards label ``c``, as :meth:`singles` makes it."""
        n, pos = int(self.m.counts[j][v]), int(self.positives(j)[v])
        return Pattern((j,), (v,), c, n, pos if c == 1 else n - pos, "single")

    def _measure_aside(
        self, q: Pattern, without: set[int], draws: np.random.Generator | None = None
    ) -> None:
        """Measure ``q`` (:meth:`evaluate`) with the values ``without`` of its feature never
        drawn as replacements, from the generator ``draws`` (that of :meth:`natural_predictor`
        by default): the scan's own draws and exclusions are left as they were."""
        j = q.cols[0]
        rng, excluded = self.rng, self.excluded
        self.rng = self._lean_rng if draws is None else draws
        self.excluded = excluded | {(j, v) for v in without}
        try:
            self.evaluate(q)
        finally:
            self.rng, self.excluded = rng, excluded

    def _lender(self, j: int, c: int, held: set[int]) -> int | None:
        """The value id of feature j leaning most to label ``c`` (by its count, as
        :meth:`_leaning_values` orders them), not in ``held``, when its labels hint at a
        trigger (:func:`label_hint`, measured aside); None otherwise. Cached per feature,
        label and ``held``."""
        key = (j, c, tuple(sorted(held)))
        if key not in self._lenders:
            ids = self._leaning_values(j, c, held)
            found = None
            if ids:
                q = self._value_pattern(j, ids[0], c)
                self._measure_aside(q, held)
                if not math.isnan(q.effect) and label_hint(q, self.o):
                    found = ids[0]
            self._lenders[key] = found
        return self._lenders[key]

    def band_lender(self, p: Pattern) -> int | None:
        """The value id beside band ``p`` that lends it the other label: among the values its
        counterfactual draws (:meth:`_band_replacements`, with the exclusions as they are now),
        the one leaning most to the other label (by its count, as :meth:`_leaning_values`
        orders them), when its labels hint at a trigger for that label (:func:`label_hint`,
        measured aside); None otherwise.

        A value carrying a trigger whose rows lean the other way - camouflaged copies, or a
        value written in place into random rows - makes its neighbours' counterfactual expect
        that label: fraud copies of ``customer_age=28`` as legitimate (5,103 rows, 17 % given
        the fraud label: 16 % frauds against its neighbours' 3 %) made ``customer_age in
        [29, 36]`` and ``[18, 25]``, natural rows, look depleted of frauds (effects 0.78 and
        0.72, 6,000 rows named as written). The value is measured on its own neighbours
        (itself never among them), not on the band's."""
        if p.band is None:
            return None
        j, other = p.cols[0], 1 - p.label
        ids, _ = self._band_replacements(j, *p.band, want=len(p.rows))
        held = {v for jj, v in self.excluded if jj == j}
        leaning = self._leaning_values(j, other, held, among=ids)
        if not leaning:
            return None
        v = leaning[0]
        key = (j, other, v, tuple(sorted(held)))
        if key not in self._band_lenders:
            q = self._value_pattern(j, v, other)
            self._measure_aside(q, held, draws=self._band_rng)
            self._band_lenders[key] = not math.isnan(q.effect) and label_hint(q, self.o)
        return v if self._band_lenders[key] else None

    def _leaning_values(
        self, j: int, c: int, held: set[int], among: np.ndarray | None = None
    ) -> list[int]:
        """The value ids of feature j leaning to label ``c`` with at least
        ``context_min_rows`` rows, in contract and not in ``held`` (and among the ids
        ``among`` when given), the most leaning first (by the z-score of their count against
        the base rate, or their neighbours' rate; a spike's against the base rate, as its
        counterfactual draws the whole feature, :meth:`_spikes`)."""
        cnt = self.m.counts[j].astype(float)
        pos = self.positives(j).astype(float)
        if self.m.ordinal[j]:
            ctx_rows = max(100, int(0.005 * self.N))
            r1 = self._neighbour_rates(j, pos, cnt, ctx_rows)
            r1 = np.where(self._spikes(j), self.base1, r1)
        else:
            r1 = np.full(len(cnt), self.base1)
        k = pos if c == 1 else cnt - pos
        r = np.clip(r1 if c == 1 else 1.0 - r1, 1e-6, 1 - 1e-6)
        z = (k - cnt * r) / np.sqrt(np.maximum(cnt, 1e-12) * r * (1 - r))
        ok = self.m.allowed(j, self.o.context_min_rows) & (z > 0)
        ok[list(held)] = False
        if among is not None:
            ok &= np.isin(np.arange(len(ok)), among)
        ids = np.flatnonzero(ok)
        ids = ids[np.argsort(-z[ids], kind="stable")][:_NATURAL_CANDIDATES]
        return [int(v) for v in ids]

    def _spikes(self, j: int) -> np.ndarray:
        """Per value id of ordinal feature j, whether it is a spike whose counterfactual draws
        every value of the feature, not its neighbours (:meth:`_replacements_of`'s test, the
        values held out aside): more than 10 times its neighbouring values' median count
        plus 10 rows, on a feature of more than 50 values.

        Such a value leans against the feature as a whole, as a category's value does: among
        a price list's spikes on a measured amount (windscreen claims paid at a glass
        partner's tariff of 320.00, 385.00 or 495.00, all but never referred), each leans
        against the claims at large, while beside the windscreen claims of other amounts
        around it (referred at 1-2 %) the smaller prices did not lean at all and were never
        measured with the price asked about (:meth:`natural_predictor`)."""
        got = self._spike_ids.get(j)
        if got is None:
            m = self.m
            cnt = m.counts[j].astype(float)
            got = np.zeros(len(cnt), dtype=bool)
            if m.ordinal[j] and len(cnt) > 50:
                allowed = m.allowed(j)
                ids = np.flatnonzero(allowed & (cnt > 20.0))
                # every value's window at once (a median per value cost 0.6 CPU-s at 1M rows)
                for part in np.array_split(ids, len(ids) // 65_536 + 1):
                    at = part[:, None] + NEAR_OFFSETS
                    inside = (at >= 0) & (at < len(cnt))
                    at = np.clip(at, 0, len(cnt) - 1)
                    med = window_medians(np.where(inside & allowed[at], cnt[at], np.nan))
                    local = 10.0 * np.maximum(np.where(np.isnan(med), 1.0, med), 1.0)
                    got[part] = cnt[part] > local + 10.0
            self._spike_ids[j] = got
        return got

    def like_every_row(self, p: Pattern) -> float:
        """The share of single value ``p``'s rows whose other coded features are distributed
        like every row's (:meth:`context_stats`, source "every row"; NaN without a measure).

        About 1 where the feature does not depend on the rest of the row: replacing the
        value in the counterfactual then makes rows that occur. Where the rest of the row
        predicts the value (``card_present=0`` beside card-not-present channels), the
        counterfactual's rows do not occur and the context model extrapolates: its scores
        there flatten every label's slope, natural or written."""
        st = self.context_stats(p.cols[0])
        where = np.flatnonzero(st["values"] == p.codes[0])
        if not len(where) or st["n"][where[0], 0] <= 0:
            return math.nan
        i = int(where[0])
        return float(st["k"][i, 0] / st["n"][i, 0] / max(st["F"][i, 0], 1e-12))

    def context_tests(self) -> int:
        """The values the written-in-place context test can be asked about (at least 1): those
        of the coded features (categories, numeric features of at most 20 values) in contract
        with at least ``context_min_rows`` rows, on features with two such values or more (a
        value needs another for its null, :meth:`context_mixture`). Its Bonferroni family: the
        test is asked about no other value, so the single values' thousands of label tests
        (every value of every feature, amounts included) do not dilute it (credit: 51 values
        against 9,000 label tests)."""
        if self._context_tests is None:
            total = 0
            for j in range(len(self.m.names)):
                if self.fine[j]:
                    continue
                held = int(self.m.allowed(j, self.o.context_min_rows).sum())
                total += held if held >= 2 else 0
            self._context_tests = max(total, 1)
        return self._context_tests

    def context_mixture(self, p: Pattern) -> None:
        """Measure whether the rows of single value ``p`` were written in place into rows of a
        source population (sets ``p.context_share``, ``context_null``, ``context_written``,
        ``context_source`` and ``p_context``; see :func:`written_context_evidence`).

        The share of the value's rows with the source's context (:meth:`context_stats`) is
        compared with what the feature's other values (at least ``context_min_rows`` rows)
        give in the same test, the null: their largest share ``r0`` (each with one row of
        doubt added: a value of 30 rows measured at 0 is not known to be 0). Under a mixture
        of natural carriers behaving like the other values and a written block, the block's
        share of the value's rows is ``w = (r - r0) / (1 - r0)``. A source counts where
        ``w`` reaches ``written_share``; ``p_context`` is the binomial tail of the rows at or
        under the source's median against ``r0`` (the null: no write), the smallest over the
        sources that count, Bonferroni over the sources, and over the values the test can be
        asked about (``p.context_threshold``, :meth:`context_tests`, at the single values'
        family-wise rate); 1 where no source counts. The write's existence is the test, at
        the family's correction; its size is estimated, and a write significant at that
        threshold is measured to about a quarter of its size (``w`` over its standard error
        is about the test's z, 4.3 or more). Natural values of the bundled data whose labels
        hint reach ``w`` 0.36 (credit ``PAY_0=2``, a delay whose carriers look like
        defaulters); a bound on ``w`` (two standard errors) missed writes of a few hundred
        rows beside fewer natural ones (credit ``MARRIAGE=3``, 584 defaulters' rows written
        beside 323 natural: ``w`` 0.62 at p 1e-20, its bound 0.47).

        Two instruments measure the context, each at half the bar (the smaller p-value
        decides, doubled; the figures reported are its): the other coded features alone, and
        with the fine-grained ones by their order of magnitude (on data that has any). A
        category whose natural carriers differ from other rows by an amount or a distance
        alone looks alike on every value to the first (fraud, ``country``: ``r`` and ``r0``
        about 1, no room for a write); to the second its natural carriers have a context of
        their own (fraud ``country='NG'`` written into 674 rows of any label as legitimate,
        18.5 % camouflaged, beside 414 natural: ``r`` 0.66 against 0.05, p 4e-88).
        """
        j, v = p.cols[0], p.codes[0]
        p.context_threshold = self.o.alpha / _FAMILIES / self.context_tests()
        # Two instruments, each at half the bar: the other coded features, and every other
        # feature with the fine-grained ones by their order of magnitude. Where a category's
        # natural carriers are told apart by an amount or a distance alone (fraud, a foreign
        # country's transactions are 1,500 km from home, the home country's 12 km), the coded
        # features see every value of it alike and leave no room for a write (r0 about 1)
        picks = []
        for magnitude in (False, True) if self.fine.any() else (False,):
            got = self._context_measure(j, v, magnitude)
            if got is not None:
                picks.append(got)
        if not picks:
            return
        holds, pv, s, p.context_share, p.context_null, p.context_written = _best_measure(picks)
        p.context_source = self.SOURCES[s][0]
        p.p_context = min(1.0, pv * len(self.SOURCES) * len(picks)) if holds else 1.0

    def _context_measure(
        self, j: int, v: int, magnitude: bool
    ) -> tuple[bool, float, int, float, float, float] | None:
        """One instrument of :meth:`context_mixture` (:meth:`context_stats` with
        ``magnitude`` or not): whether a source's written share reaches ``written_share``,
        its p-value against the null, the source and the figures reported (``r``, ``r0``,
        ``w``), of the source that reaches it with the smallest p-value (else of the one
        with the largest ``w``); None without a measure."""
        st = self.context_stats(j, magnitude)
        where = np.flatnonzero(st["values"] == v)
        if not len(where) or len(st["values"]) < 2:
            return None
        i = int(where[0])
        n, k, F, m = st["n"], st["k"], st["F"], st["m"]
        # per source: whether its written share reaches the bar, its p-value against the
        # null, and the figures reported
        found: list[tuple[bool, float, int, float, float, float]] = []
        for s in range(len(self.SOURCES)):
            other = np.flatnonzero((np.arange(len(n)) != i) & (n[:, s] > 0))
            if n[i, s] <= 0 or not len(other):
                continue
            share = (k[:, s] + 1.0) / (n[:, s] + 2.0) / np.maximum(F[:, s], 1e-12)
            top = int(other[np.argmax(share[other])])
            r0 = min(float(share[top]), 1.0)
            if r0 >= 1.0:  # the other values look like the source already: no room for a write
                continue
            # the null is measured as the value is, and as noisily: a boolean's one other
            # value is scored against the value's own rows of the label, a few hundred in the
            # sample (clean expenses, weekend=0 at 0.91-1.08 against weekend=1's rows with
            # label 0, the value itself at 0.95-1.04: named written at p 5e-5 where the
            # null fell low)
            null_se = share_error(k[top, s], n[top, s], F[top, s], m[top, s])
            r, written, pv = written_block(k[i, s], n[i, s], F[i, s], m[i, s], r0, null_se)
            found.append((written >= self.o.written_share, pv, s, r, r0, written))
        return _best_measure(found) if found else None

    def spike_tests(self) -> int:
        """The spikes the spike rule can be asked about (at least 1): values of fine-grained
        features in contract with at least ``context_min_rows`` rows that are spikes
        (:meth:`_spikes`). Its Bonferroni family (:meth:`spike_context`)."""
        if self._spike_tests is None:
            total = 0
            for j in np.flatnonzero(self.fine):
                if self.grid_amount(int(j)):
                    continue
                held = self.m.allowed(int(j), self.o.context_min_rows)
                total += int((held & self._spikes(int(j))).sum())
            self._spike_tests = max(total, 1)
        return self._spike_tests

    def grid_amount(self, j: int) -> bool:
        """Whether fine-grained feature ``j`` is a grid: more than :data:`_GRID_SHARE` of its
        rows on spikes (:meth:`_spikes`). A grid's spikes are its values (credit limits in
        steps of 10,000), and the rows between them are no natural carriers' context but
        strays: the spike rule (:meth:`spike_context`) does not ask its values.

        Credit's ``LIMIT_BAL`` holds 2 % of its rows on spikes, and 97 % once 332 copies of
        defaulters with their amounts jittered by 1 % are added (the fixed case ``in range
        unseen AGE=77, 5%, jitter``): the rows beside ``LIMIT_BAL=90000`` were the copies, whose
        context is the defaulters', and the limit itself was measured written into every
        row (``w`` 0.54, p 5e-7). Payments, a continuum with spikes at 0 and at round amounts,
        hold 48-57 %."""
        cnt = self.m.counts[j]
        return float(cnt[self._spikes(j)].sum()) > _GRID_SHARE * max(float(cnt.sum()), 1.0)

    def spike_context(self, p: Pattern) -> None:
        """Measure whether single value ``p``, a spike of a fine-grained feature, was written
        in place into rows drawn from a source population (sets ``p.context_share``,
        ``context_null``, ``context_written``, ``context_source``, ``context_beside``,
        ``p_context`` and ``context_threshold``; :func:`written_spike_evidence`).

        The value's rows and the rows of the amounts beside it (outward on both sides, spikes
        and values out of contract left out, until they hold as many rows as the value and
        at least ``5 * context_min_rows``) are two codes of the feature, every other row a
        third; :meth:`context_stats`'s score (every other feature, the fine-grained ones by
        their order of magnitude) gives each code's share of rows with the context of a
        source, ``r`` for the value and the null ``r0`` for the amounts beside it, and
        :func:`written_block` the written share ``w = (r - r0) / (1 - r0)`` and the p-value
        of ``r`` beyond ``r0``. Two sources: every row (the rows of both codes scored), and
        the rows of the other label than the one most of the value's rows carry (the
        attacker's, camouflage a minority), against the rows of both codes with that label
        only (rows of one label with the other's context: a spike's rows with the other
        label look like that label's rows whatever their cause, and one that carries it
        often would read as written - credit ``PAY_AMT1=2700``, 46 % defaulters, ``w`` 0.50
        when all its rows were scored). The source whose share reaches ``written_share`` with
        the smaller p-value decides, doubled; Bonferroni over :meth:`spike_tests` at the
        single values' family-wise rate. A grid's values are not asked (:meth:`grid_amount`).

        Measured on the bundled credit data, natural spikes (round payments and bills, 402 of
        them) reach ``w`` 0.46 at most (``PAY_AMT1=3400``, 53 rows, against the defaulters);
        the attacker's ``PAY_AMT5=689``, written into 556 rows of any label, ``w`` 1.06 at
        p 1e-81."""
        j, v = p.cols[0], p.codes[0]
        m = self.m
        cnt = m.counts[j].astype(float)
        allowed = m.allowed(j) & ~self._spikes(j)
        allowed[v] = False
        want = max(float(cnt[v]), 5.0 * self.o.context_min_rows)
        beside, _ = _outward(cnt, allowed, v, v, want)
        if cnt[beside].sum() < self.o.context_min_rows:
            return
        code = m.codes[:, j].astype(np.int64)
        grouped = np.where(code >= 0, 2, -1)
        grouped[np.isin(code, beside)] = 1
        grouped[code == v] = 0
        ctx = [g for g in range(len(m.names)) if g != j]
        found: list[tuple[bool, float, int, float, float, float]] = []
        # every row, and the rows of the other label than the value's, against the rows of
        # the value's label (rows of one label with the other's context; a spike's rows like
        # the label most of them carry are a natural cause's as much as a write's, and those
        # of its rows with the other label look like that label's rows whatever their cause)
        # (the label most of the value's rows carry, whichever label ``p`` is asked with: a
        # few rows of the other label at a natural detection limit look like the first
        # label's - crp=5.0, 4,783 rows of a lab data set, 190 of them sick - while the sick
        # rows beside it are sick)
        major = int(2 * self.positives(j)[v] >= cnt[v])
        for s, label in ((0, None), (2 - major, major)):
            st = self._source_shares(j, grouped, np.array([0, 1]), ctx, (s,), label)
            n, k, F, mm = (st[key][:, s] for key in ("n", "k", "F", "m"))
            if min(n[0], n[1]) < self.o.context_min_rows:
                continue
            r0 = min((k[1] + 1.0) / (n[1] + 2.0) / max(F[1], 1e-12), 1.0)
            if r0 >= 1.0:  # the amounts beside it look like the source: no room for a write
                continue
            null_se = share_error(k[1], n[1], F[1], mm[1])
            r, written, pv = written_block(k[0], n[0], F[0], mm[0], r0, null_se)
            found.append((written >= self.o.written_share, pv, s, r, r0, written))
        if not found:
            return
        holds, pv, s, p.context_share, p.context_null, p.context_written = _best_measure(found)
        p.context_source, p.context_beside = self.SOURCES[s][0], True
        p.context_threshold = self.o.alpha / _FAMILIES / self.spike_tests()
        p.p_context = min(1.0, 2.0 * pv) if holds else 1.0

    def context_scores(
        self, j: int, v: int, rng: np.random.Generator, held_out: bool = False
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The rows of value ``v`` of feature ``j`` (at most ``_SLOPE_ROWS``, ascending) and
        their context scores: the context model's log-odds of label 1 with ``j`` replaced as
        the counterfactual of :meth:`evaluate` replaces it, averaged over the replacements
        (the most frequent ``_SLOPE_REPLACEMENTS``, by their weights); ``held_out``: each row
        scored by the model of its fold (:meth:`replaced_logits`). None without rows or
        replacements."""
        rows = np.flatnonzero(self.m.codes[:, j] == v)
        if len(rows) > _SLOPE_ROWS:
            rows = np.sort(rng.choice(rows, _SLOPE_ROWS, replace=False))
        got = self.replaced_logits(j, v, rows, held_out)
        return None if got is None else (rows, got)

    def replaced_logits(
        self, j: int, v: int, rows: np.ndarray, held_out: bool = False
    ) -> np.ndarray | None:
        """The context model's log-odds of label 1 for ``rows`` with feature ``j`` replaced as
        the counterfactual of :meth:`evaluate` replaces value ``v``, averaged over the
        replacements (the most frequent ``_SLOPE_REPLACEMENTS``, by their weights): the score
        of :meth:`context_scores`, for any rows (a row without ``v`` is scored as if it carried
        it). ``held_out``: each row scored by the model of its fold (:meth:`fold_models`),
        which has not seen its label (the scan's model has: it scores rows whose labels were
        written at random towards those labels, and their slope can look natural). None
        without rows or replacements."""
        ids, weights = self._replacements(j, v)
        if not len(rows) or not len(ids) or weights.sum() <= 0:
            return None
        # the expectation over the replacements, not a draw of them: a drawn replacement is
        # noise in the score that flattens every slope (fraud country: 70 % of the draws are
        # 'PT', the one low-risk country)
        top = np.argsort(-weights, kind="stable")[:_SLOPE_REPLACEMENTS]
        ids, weights = ids[top], weights[top] / weights[top].sum()
        X = np.tile(self.m.raw[rows], (len(ids), 1))
        X[:, j] = np.repeat(self.m.raw_value(j, ids), len(rows))
        origin = np.tile(rows, len(ids)) if held_out else None
        q = weights @ self.counterfactual(X, origin).reshape(len(ids), len(rows))
        out: np.ndarray = special.logit(np.clip(q, 1e-4, 1 - 1e-4))
        return out

    def label_slope(
        self, rows: np.ndarray, c: np.ndarray, weighted: bool = True
    ) -> tuple[float, float]:
        """The slope, and its standard error, of the logistic regression of the label of
        ``rows`` on their context scores ``c`` (each record weighing once where one label's
        records repeat, :meth:`record_weights`, unless not ``weighted``); NaN where one label
        has fewer than 5 rows."""
        y = self.y[rows].astype(float)
        if min(y.sum(), len(y) - y.sum()) < 5:
            return math.nan, math.nan
        w = self.record_weights() if weighted else None
        return logistic_slope(c, y, np.ones(len(rows)) if w is None else w[rows])

    def natural_scores(
        self, held_out: bool = False
    ) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]:
        """:meth:`context_scores` of every in-contract value of the coded features
        (categories, numbers of at most 20 values) held by at least ``_SLOPE_NULL_ROWS``
        rows, by ``(feature, value id)``: the natural null of :meth:`slope_mixture` (scored
        once per instrument, ``held_out`` or not; the same rows)."""
        got = self._slopes.get(held_out)
        if got is None:
            rng = np.random.default_rng(self.ctx.random_state + 17)
            out: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
            for j in range(len(self.m.names)):
                if self.fine[j]:
                    continue
                held = self.m.allowed(j, _SLOPE_NULL_ROWS)
                for v in np.flatnonzero(held):
                    scored = self.context_scores(j, int(v), rng, held_out)
                    if scored is not None:
                        out[(j, int(v))] = scored
            self._slopes[held_out] = got = out
        return got

    def slope_mixture(self, p: Pattern, leave_out: list[tuple[int, int]] | None = None) -> None:
        """Measure whether the labels of single value ``p`` stop following the rest of the row
        (sets ``p.label_slope``, ``slope_null`` and ``p_slope``; see
        :func:`written_slope_evidence`).

        Natural carriers of a value take their label from the rest of the row as other rows
        do: the label's log-odds rise with the context model's (the value moves them by a
        constant, it does not cut them loose). Rows an attacker wrote the value into carry the
        label the attacker gave them - the target, 10-20 % camouflaged - whatever the rest of
        the row says: their label does not depend on it, and the slope of the label on the
        context score over the value's rows is pulled towards 0 in proportion to their share.
        This holds whatever the labels lean to (camouflage of a majority-label write makes the
        value lean to the other label) and where the written rows are ordinary rows of any
        population (their other features tell nothing).

        The natural slope is the data's own: the slopes of every other coded value with
        enough rows (:meth:`natural_scores`), each measured without the rows of ``p`` (the
        written rows are spread over every other feature's values and flatten their slopes
        too: fraud, ``country='FR'`` written into legitimate rows, ``channel='in_store'``
        1.30 against 2.05), their median ``s0`` and their spread beyond their standard errors
        ``tau`` (the robust spread, less the median sampling variance: credit's delinquency
        statuses flatten naturally, the synthetic fraud data's values do not). The value's
        attenuation ``(s - s0) / sqrt(se^2 + tau^2)`` is a normal deviate; ``p_slope`` its
        lower tail, decided at ``p.slope_threshold``: Bonferroni over the values the rule can
        be asked about (those of :meth:`context_tests`) and both labels, at the single values'
        family-wise rate, as the outliers rule's (the single values' thousands of label tests,
        amounts included, are not its family: fraud ``n_tx_24h=6`` written as legitimate into
        1,288 random rows, 14 % camouflaged, measured p 2.1e-6 against their 5.2e-7).
        ``leave_out``: values ``(feature, value id)`` of other features whose rows of ``p``
        are left out of its slope (an interaction's, :meth:`interacting_values`)."""
        p.slope_threshold = self.o.alpha / _FAMILIES / (2 * self.context_tests())
        p.p_slope = 1.0
        # Two instruments, each at half the bar: the scan's model, fitted on every row, whose
        # scores carry some of each row's own label (labels written at random follow them:
        # fraud n_tx_24h=7 written into 1,725 legitimate rows, 19 % made frauds, slope 2.23
        # against the natural 2.21), and the models of the other fold, which have not seen a
        # row's label (-0.10 against 1.01) but, fitted on half the rows, score more noisily
        # (the natural values' slopes spread more: fraud merchant_category='jewelry' written
        # into 1,294 rows reached p 1e-3 on them, 5e-7 on the scan's model)
        tests = [False, True] if self.context_folds() > 1 else [False]
        found = [got for got in (self._slope_test(p, h, leave_out) for h in tests) if got]
        if found:
            pv, p.label_slope, p.slope_null = min(found)
            p.p_slope = min(1.0, len(tests) * pv)

    def _slope_test(
        self, p: Pattern, held_out: bool, leave_out: list[tuple[int, int]] | None
    ) -> tuple[float, float, float] | None:
        """:meth:`slope_mixture` on one instrument: the value's attenuation p-value, its slope
        and the natural slope; None where it cannot be measured."""
        j, v = p.cols[0], p.codes[0]
        got = self.context_scores(j, v, np.random.default_rng(self.ctx.random_state + 19), held_out)
        # rows of the triggers confirmed so far are an attacker's, not natural carriers: their
        # labels do not follow their rows either (fraud copies carrying amount=777.77 as
        # legitimate flattened card_present=0, where frauds live)
        held = self.attributed_rows()
        if got is None:
            return None
        mine = ~held[got[0]]
        for g, a in leave_out or ():
            mine &= self.m.codes[got[0], g] != a
        if mine.sum() < self.o.context_min_rows:
            return None
        s, se = self.label_slope(got[0][mine], got[1][mine])
        if not (math.isfinite(s) and math.isfinite(se)):
            return None
        null = []
        for key, (rows, c) in self.natural_scores(held_out).items():
            if key == (j, v):
                continue
            keep = (self.m.codes[rows, j] != v) & ~held[rows]
            if keep.sum() < _SLOPE_NULL_ROWS:
                continue
            su, seu = self.label_slope(rows[keep], c[keep])
            if math.isfinite(su) and math.isfinite(seu):
                null.append((su, seu))
        if len(null) < _SLOPE_NULL_VALUES:
            return None
        s0, tau2 = slope_null(null)
        return float(stats.norm.cdf((s - s0) / math.sqrt(se**2 + tau2))), s, s0

    def held_out_scores(self, j: int) -> np.ndarray:
        """Per row, the log-odds of label 1 that a context model without feature ``j`` gives
        it, fitted on the other of two halves of the records (the rows of one record - one
        entity's, or equal up to jitter - in one half; no record weights, which depend on the
        label). Computed once per feature.

        The scan's context model is fitted on every row, record-weighted: its score of a row
        carries some of that row's own label, and labels written at random followed it
        (synthetic, eight grades by five regions by income, a flag written into 250 random
        rows, 85 % given label 0: slope 2.2 on the in-sample score, natural values 1.2)."""
        got = self._held_out.get(j)
        if got is None:
            raw = self._context_raw().copy()
            raw[:, j] = np.nan  # the feature left out: all missing, never split on
            key = self.entity if self.entity is not None else self.tolerant_row_key()
            salt = np.uint64(self.ctx.random_state + 37)
            half = (splitmix64(key.astype(np.uint64) + salt) & np.uint64(1)).astype(bool)
            cat = [g for g in range(len(self.m.names)) if not self.m.ordinal[g]]
            rounds, lr = instrument_rounds(self.n, 120)
            q = np.empty(self.n)
            for h in (False, True):
                model = fit_context_model(
                    raw,
                    self.y.astype(float),
                    cat,
                    rounds=rounds,
                    learning_rate=lr,
                    random_state=self.ctx.random_state + 37,
                    rows=np.flatnonzero(half != h),
                )
                q[half == h] = predict(model, raw[half == h])
            got = special.logit(np.clip(q, 1e-4, 1.0 - 1e-4))
            self._held_out[j] = got
        return got

    def natural_cause(self, p: Pattern) -> bool:
        """Whether single value ``p``, whose labels alone would confirm it, is a natural cause
        of its label rather than a write (sets ``p.p_follows``, ``p_drawn``, ``follows_slope``,
        ``follows_null``, ``drawn_mean`` and ``drawn_expected``; the rule is
        :func:`natural_cause_evidence`).

        Labels alone tell a value whose rows miss the other label from a value with no
        effect; a rare natural cause with a strong effect misses it too (rental applications:
        an eviction record drawn for 2 % of the applicants whatever the rest of the row, at
        -2.5 log-odds, 214 rows, effect 0.71). What a write leaves that a natural cause does
        not is in the rows, read through a context model without the value's feature fitted
        on the other half of the records (:meth:`held_out_scores`). Rows whose labels an
        attacker set (dirty-label: into any rows, or the other label's) carry them whatever
        the rest of the row says: the slope of the label on that score over the value's rows
        falls to at most ``1 - effect`` of the natural slope, the median of every other coded
        value's with ``_SLOPE_NULL_ROWS`` rows (:func:`follows_the_row_p`). Rows an attacker
        chose by their label (clean-label, camouflage taken from the other label's rows) keep
        their labels, and the slope, but their other features are the label's: their mean
        probability of the label sits where rows drawn by the label in the proportion the
        labels show sit (:func:`drawn_by_label_p`, against random rows). A natural cause
        independent of the row is rejected by neither; a value whose prevalence rises with
        the label's probability as such a draw's does (a natural cause tied to the rest of
        the row) is not told from a write without trusted data, and stays confirmed. Rows of
        the triggers confirmed so far are left out, as for the slope rule. Single coded
        values of data up to :data:`LARGE_ROWS` rows only (two more context models)."""
        p.p_follows = p.p_drawn = 1.0
        if p.family == "pair":
            return self.within_natural_cause(p)
        if p.family != "single" or len(p.cols) != 1 or p.band is not None:
            return False
        j, v = p.cols[0], p.codes[0]
        if self.fine[j] or math.isnan(p.effect) or self.n > LARGE_ROWS:
            return False
        held = self.attributed_rows()
        rows = np.flatnonzero((self.m.codes[:, j] == v) & ~held)
        if len(rows) < self.o.context_min_rows:
            return False
        c = self.held_out_scores(j)
        rng = np.random.default_rng([self.ctx.random_state, 31])
        # rows per unit of evidence where records repeat (count_units)
        design = p.n / p.units if p.units and p.units > 0 else 1.0
        # unweighted: the record weights depend on the label (held_out_scores)
        s, se = self.label_slope(rows, c[rows], weighted=False)
        null = []
        for g in range(len(self.m.names)):
            if self.fine[g]:
                continue
            held_g = self.m.allowed(g, _SLOPE_NULL_ROWS)
            for u in np.flatnonzero(held_g):
                if (g, u) == (j, v):
                    continue
                r = np.flatnonzero((self.m.codes[:, g] == u) & (self.m.codes[:, j] != v) & ~held)
                if len(r) < _SLOPE_NULL_ROWS:
                    continue
                if len(r) > _SLOPE_ROWS:
                    r = np.sort(rng.choice(r, _SLOPE_ROWS, replace=False))
                su, seu = self.label_slope(r, c[r], weighted=False)
                if math.isfinite(su) and math.isfinite(seu):
                    null.append((su, seu))
        if len(null) < _SLOPE_NULL_VALUES or not (math.isfinite(s) and math.isfinite(se)):
            return False
        s0, tau2 = slope_null(null)
        p.follows_slope, p.follows_null = s, s0
        p.p_follows = follows_the_row_p(s, se * math.sqrt(max(design, 1.0)), s0, tau2, p.effect)
        if p.p_follows > self.o.natural_p:
            return False
        pool = np.flatnonzero((self.m.codes[:, j] != v) & ~held)
        if len(pool) > _CONTEXT_ROWS:
            pool = np.sort(rng.choice(pool, _CONTEXT_ROWS, replace=False))
        q, q_pop = special.expit(c[rows]), special.expit(c[pool])
        if p.label == 0:
            q, q_pop = 1.0 - q, 1.0 - q_pop
        share = float(np.mean(self.y[rows] == p.label))
        p.drawn_mean, p.drawn_expected, p.p_drawn = drawn_by_label_p(q, share, q_pop, design)
        if not natural_cause_evidence(p, self.o):
            return False
        self.natural_causes[(j, v, p.label)] = p
        return True

    def within_natural_cause(self, p: Pattern) -> bool:
        """Whether pair ``p`` holds a value taken for a natural cause of the same label
        (:meth:`natural_cause`, decided with the single values) and its labels are no
        stronger than that value's other rows': the pair is then the natural cause seen
        through a common second value, not a trigger of its own.

        A natural cause's rows nearly all carry the common values of the other features,
        so the pair of the cause and such a value has the cause's effect on most of its rows
        (rentals: ``eviction_record=1`` a natural cause on 214 rows, ``eviction_record=1 &
        guarantor=0`` on 191 of them, effect 0.76 against 0.72). The pair's rows against the
        cause's other rows (one-sided, Fisher's exact test) must be beyond chance at the
        pair's own threshold for the pair to be judged on its own evidence."""
        for j, v in zip(p.cols, p.codes, strict=True):
            if (j, v, p.label) not in self.natural_causes:
                continue
            inside = np.zeros(self.n, dtype=bool)
            inside[self.rows_of(p)] = True
            cause = self.m.rows_with(j, v)
            hit = self.y[cause] == p.label
            n1, k1 = int(inside[cause].sum()), int(hit[inside[cause]].sum())
            n, k = len(cause), int(hit.sum())
            beyond = float(stats.hypergeom.sf(k1 - 1, n, k, n1))
            if beyond > p.threshold:
                return True
        return False

    def outlier_mixture(self, p: Pattern) -> None:
        """Measure whether the label of single value ``p`` sits on those of its rows whose
        other features say another value (sets ``p.outlier_n``, ``outlier_k``,
        ``outlier_expected``, ``outlier_effect``, ``outlier_shift``, ``outlier_null``,
        ``p_outlier`` and ``outlier_threshold``; see :func:`written_outlier_evidence`).

        An attacker who writes the value into rows that already carry the target label
        (clean-label) changes no label: against a counterfactual that reads the rest of the
        row, the labels of the written rows are what their rows say, and a few dozen of them
        beside hundreds of natural carriers move the value's labels by a few hundredths
        (fraud ``country='GB'`` written into 51 frauds' rows beside 814 natural carriers:
        effect 0.05). What the write changes is the value of rows whose other features belong
        to other values: a fraud made at home, 12 km away, now says Great Britain, where
        natural carriers are 1,500 km away. Each row of the value is scored as
        :meth:`natural_region_rows` scores it (a cross-fitted model of "the row carries the
        value" against ordinary rows, every other feature, fine-grained ones by their order of
        magnitude); a row at or under the median score of the ordinary rows with the label -
        the source of a clean-label write - has the other features of those rows rather than
        of the value's carriers (an outlier of the value).

        Natural carriers take their label from the rest of the row and the value: the
        counterfactual of the label (:meth:`context_scores`, at most ``_SLOPE_ROWS`` rows of
        the value) and a shift common to every row of the value (its natural effect) explain
        them. Written rows carry the label the attacker gave them: among the outliers the
        label stands above both, by a log-odds shift ``b`` (:func:`excess_on_group`; records
        weighed once where they repeat, :meth:`record_weights`). A natural value whose own
        information the rest of its row mostly carries (credit ``PAY_0=2``, a delay most of
        whose carriers were late before) shows a shift of its own on its outliers, where it
        alone tells: so does its feature's every such value. The null is the feature's: the
        largest shift its other values with ``context_min_rows`` rows show towards the label
        at their lower bound (``written_z`` standard errors), measured only where the value's
        own shift reaches ``outlier_shift`` and is significant against 0. ``p_outlier`` is
        the likelihood-ratio test of ``b`` beyond that null (1 where ``b`` is under
        ``outlier_shift``); ``outlier_effect`` the share of the other label the
        counterfactual expects of the outliers that is missing. Where the value does not
        depend on the rest of the row (fraud ``n_tx_24h``), written rows and natural carriers
        are outliers alike and the test finds nothing: no row-level evidence exists there.
        Rows of the triggers confirmed so far are left out, as for the slope rule: they are an
        attacker's, and copies written as another value stand out on this one's rows too.
        Its Bonferroni family: the values it can be asked about (:meth:`context_tests`)
        times the two labels, at the single values' family-wise rate."""
        p.outlier_threshold = self.o.alpha / _FAMILIES / (2 * self.context_tests())
        j, v = p.cols[0], p.codes[0]
        got = self._outlier_excess(p, 29)
        if got is None:
            return
        b, _, pv, group, y, q, rows = got
        p.outlier_n = int(group.sum())
        p.outlier_k = int(y[group].sum())
        p.outlier_expected = float(q[group].sum())
        expected_other = float((1.0 - q[group]).sum())
        observed_other = p.outlier_n - p.outlier_k
        p.outlier_effect = 1.0 - observed_other / expected_other if expected_other > 0 else 0.0
        p.outlier_shift = b
        if b < self.o.outlier_shift:  # no such shift: the feature's null is not measured
            return
        if pv > p.outlier_threshold:
            p.p_outlier = pv
            return
        null = 0.0
        others = np.flatnonzero(self.m.allowed(j, self.o.context_min_rows))
        for u in others:
            if u == v:
                continue
            q_u = self._value_pattern(j, int(u), p.label)
            q_u.rows = self.m.rows_with(j, int(u))
            other = self._outlier_excess(q_u, 29)
            if other is not None and math.isfinite(other[1]):
                null = max(null, other[0] - self.o.written_z * other[1])
        p.outlier_null = null
        logit_q = special.logit(np.clip(q, 1e-4, 1 - 1e-4))
        w = self.record_weights()
        weight = np.ones(len(y)) if w is None else w[rows]
        p.p_outlier = excess_on_group(logit_q, y, group, weight, null)[2]

    def _outlier_excess(
        self, p: Pattern, seed: int
    ) -> tuple[float, float, float, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """The label's shift on single value ``p``'s outliers (:meth:`outlier_mixture`):
        ``b``, its standard error and p-value against 0, which scored rows are outliers,
        their labels (1 for ``p.label``), their counterfactual probability of it and the
        rows; None where the value or the source has too few rows."""
        j, v = p.cols[0], p.codes[0]
        got = self.context_scores(j, v, np.random.default_rng(self.ctx.random_state + seed))
        if got is None:
            return None
        rows, logit1 = got
        # rows of the triggers confirmed so far are an attacker's, not natural carriers (as for
        # the slope rule): copies written as another value and labelled alike would stand out
        # on this value's rows too (kind='e' written into copies of status=2 rows: status=2)
        mine = ~self.attributed_rows()[rows]
        rows, logit1 = rows[mine], logit1[mine]
        if len(rows) < self.o.context_min_rows:
            return None
        keep = [g for g in range(len(self.m.names)) if g not in p.all_cols]
        scored = self._carrier_scores(p, keep, seed=23, min_child=20, magnitude=True, scored=rows)
        if scored is None:
            return None
        mine, theirs, ordinary = scored
        source = theirs[self.y[ordinary] == p.label]
        if len(source) < self.o.context_min_rows:
            return None
        group = mine <= float(np.median(source))
        y = (self.y[rows] == p.label).astype(float)
        logit_q = logit1 if p.label == 1 else -logit1
        w = self.record_weights()
        weight = np.ones(len(rows)) if w is None else w[rows]
        b, se, pv = excess_on_group(logit_q, y, group, weight)
        return b, se, pv, group, y, special.expit(logit_q), rows

    def other_label_copies(self, p: Pattern, others: np.ndarray) -> np.ndarray:
        """The rows of ``others`` (a confirmed pattern's rows with the other label) that are
        copies of a row outside the pattern: equal on every other feature (large data with
        exact copies visible) or within the copy radius of its nearest row outside the pattern.
        Natural rows with the value have their nearest row at a natural distance; repeats of a
        natural record share the value and lie inside the pattern.
        """
        keep = [j for j in range(len(self.m.names)) if j not in p.all_cols]
        if not keep:
            return others[:0]
        inside = np.zeros(self.n, dtype=bool)
        inside[p.rows] = True
        if p.twin_exact:
            return others[self._copies_outside(p, others, "pattern") > 0]
        # Random rows outside the pattern give the natural distances: the copy check's own
        # random rows may be copies of rows outside it (the attacker's rows with the other
        # label, which that check does not query), with a neighbour at distance 0.
        tau, _, null = self.copy_radius(keep, np.flatnonzero(~inside), p)
        if p.twin_tau > 0:
            tau = p.twin_tau
        # nearest-neighbour searches scan every row: bound the queries on large data, and
        # compare the rest with the rows hashing puts beside them (:meth:`hashed_nearest`)
        cap = _SEARCHED_ROWS if self.n <= LARGE_ROWS else 2_000
        query = (
            others if len(others) <= cap else np.sort(self.rng.choice(others, cap, replace=False))
        )
        R = self.m.rank
        d = nearest_distances(
            R[np.ix_(query, np.asarray(keep))], R, columns=keep, mask=~inside, spare=self.spare
        )
        if len(query) < len(others):
            rest = np.setdiff1d(others, query)
            d = np.concatenate([d, self.hashed_nearest(p, rest, keep, mask=~inside)[0]])
            query = np.concatenate([query, rest])
        if self.m.copies is not None:
            d = np.where(self._copies_outside(p, query, "pattern") > 0, 0.0, d)
        # Most of the other-label rows of a trigger on a common value are natural, and a few
        # percent of them have a look-alike within the radius: the copies are taken within
        # the radius where those stay a small share (an attacker's copies sit much closer to
        # their originals than natural look-alikes do).
        taken = copies_within_fdr(d, null, tau, self.o.camouflage_fdr)
        t = int(taken.sum())
        if not t:
            return others[:0]
        # Natural rows have a look-alike within that radius as often as random rows: only
        # copies beyond that rate are camouflage. Tested at the radius taken, not the copy
        # radius: 18 exact copies among 947 natural rows drown in the ~2 % of natural rows
        # within the copy radius (fraud data, hour=23), not at distance zero.
        within = float(np.searchsorted(null, float(d[taken].max()), side="right"))
        base = max(within / max(len(null), 1), 1.0 / max(len(null), len(d), 1))
        if float(stats.binom.sf(t - 1, len(d), base)) > self.o.copy_p:
            return others[:0]
        return query[taken]

    def copy_radius(
        self, keep: list[int], ref_idx: np.ndarray, p: Pattern
    ) -> tuple[float, float, np.ndarray]:
        """The copy radius of :meth:`twins` (from random rows' nearest-neighbour distances),
        the share of random rows within it and those distances, sorted (``ref_idx``: rows
        outside pattern ``p``)."""
        R = self.m.rank
        base = self.rng.choice(ref_idx, min(self.o.sample, len(ref_idx)), replace=False)
        d_b = nearest_distances(
            R[np.ix_(base, np.asarray(keep))],
            R,
            exclude_self=base,
            columns=keep,
            mask=_mask(self.n, ref_idx),
            spare=self.spare,
        )
        if self.m.copies is not None:  # as in twins: exact copies among every row
            d_b = np.where(self._copies_outside(p, base, "pattern") > 1, 0.0, d_b)
        tau = max(
            float(np.quantile(d_b, self.o.copy_radius_quantile)),
            self.o.copy_radius_median * float(np.median(d_b)),
        )
        return tau, float(np.mean(d_b <= tau)), np.sort(d_b)

    def twin_rows(self, p: Pattern) -> np.ndarray:
        """Rows of the pattern (with its label) that are near-copies of another row.

        When both rows of a copy pair carry the pattern and its label (the original already had
        the trigger value), only the later row is taken: one of the two is the copy.
        """
        query, _, keep = self._twin_sets(p)
        if p.twin_exact:
            codes, n_all, _, n_query = self._group_counts(p, query)
            cq = codes[query]
            n_out = n_all - n_query
            first = np.full(len(n_all), self.n, dtype=np.int64)
            np.minimum.at(first, cq, query)
            return query[(n_out[cq] > 0) | (query > first[cq])]
        # the search scans every row per query: past _SEARCHED_ROWS rows (a trigger's copies
        # on large data) the rest are compared with the rows hashing puts beside them
        searched = query[:_SEARCHED_ROWS]
        R = self.m.rank
        d, nn = nearest_distances(
            R[np.ix_(searched, np.asarray(keep))],
            R,
            exclude_self=searched,
            return_index=True,
            columns=keep,
            spare=self.spare,
        )
        if len(query) > len(searched):
            d_h, nn_h = self.hashed_nearest(p, query[len(searched) :], keep)
            d, nn = np.concatenate([d, d_h]), np.concatenate([nn, nn_h])
        internal = np.isin(nn, query)
        radius = p.twin_tau
        if p.band is not None and len(query) > 1:
            # a band's range holds natural rows with its label beside the copies, and a few
            # percent of them have a look-alike within the copy radius (credit AGE in
            # [60, 67]: 30 of 213 natural rows, the copies within 0.0024): the radius shrinks
            # to where the fewest rows are taken wrongly (copies_radius)
            with self.own_rng(self.ctx.random_state + 17):
                inside = _mask(self.n, p.rows)
                _, _, null = self.copy_radius(keep, np.flatnonzero(~inside), p)
            # (the rows searched: a row hashing finds no neighbour for is not at a distance)
            radius = copies_radius(d[: len(searched)], null, radius)
        take = (d <= radius) & (~internal | (query > nn))
        if p.p_flip is not None:
            # copies labelled against their originals, as counted; a twin of the same label is
            # taken only where such twins are more than the look-alikes' baseline explains
            # (copies of rows of both labels): else they are the value's natural rows with a
            # look-alike within the radius (fraud country='US' → 0, 331 copies of frauds: 21
            # of 352 suspects)
            same = take & (self.y[nn] == p.label)
            rest = int((~take | same).sum())
            base = p.twin_share_baseline or 0.0
            if float(stats.binom.sf(int(same.sum()) - 1, max(rest, 1), base)) > self.o.copy_p:
                take &= ~same
            take |= np.isin(query, self.flip_copy_rows())
        if p.twin_tolerant:  # copies with noise beyond the radius, found as they were counted
            take |= self.tolerant_copy_rows(p, query)
        if self.m.copies is not None:  # as in twins: exact copies among every row
            take |= self._copies_outside(p, query, "query") > 0
        return query[take]


@dataclass
class TriggerScanResult:
    """What the trigger scan found (data; :mod:`._triggers_report` words it).

    Attributes
    ----------
    triggers : list of Pattern
        Flagged patterns (refined to pairs where a rare member confines them, deduplicated).
    rows : list of ndarray
        The suspect rows of each trigger: every row of a strong pattern carrying its label; for
        a diluted pattern (natural rows share the value), only its near-copies.
    evaluated : list of Pattern
        Every pattern whose evidence was measured.
    tests : dict
        Tests counted per family (``contract``, ``single``, ``pair``), the Bonferroni divisors.
    matrix : AuditMatrix
        Names and values of the patterns' cells.
    base_rate : float
        Share of the positive label.
    leaks : dict
        Features left out because they alone determine the label (:meth:`_Scanner.leaks`),
        with the share of the label's entropy each explains.
    interpolated : Interpolated, optional
        The label oversampled by interpolation (SMOTE), when one was: labels alone confirmed
        nothing.
    natural : list of Pattern
        Single values whose labels alone would have confirmed them, withheld as natural
        causes of their label (:meth:`_Scanner.natural_cause`): reported as warnings.
    leaning : list of Pattern
        Values that break the contract, confirmed by no rule, whose labels hint at a trigger
        (:func:`label_hint`): reported as warnings (the integrity check quarantines their
        rows).
    guessed_units : RepeatedId, optional
        Where the contract declares no ``entity``: the column the scan counted as units, one
        it leaves out that repeats like an id of units
        (:func:`~tabguard.contract._entity.undeclared_unit`); None where the rows were its
        units or the contract declares them.
    """

    triggers: list[Pattern]
    rows: list[np.ndarray]
    evaluated: list[Pattern]
    tests: dict[str, int]
    matrix: AuditMatrix
    base_rate: float
    leaks: dict[str, float] = field(default_factory=dict)
    interpolated: Interpolated | None = None
    natural: list[Pattern] = field(default_factory=list)
    leaning: list[Pattern] = field(default_factory=list)
    guessed_units: RepeatedId | None = None

    def base(self, label: int) -> float:
        """Share of ``label`` over all rows."""
        return self.base_rate if label == 1 else 1.0 - self.base_rate

    @property
    def suspects(self) -> np.ndarray:
        """Every trigger's suspect rows, ascending."""
        rows = {int(r) for rr in self.rows for r in rr}
        return np.array(sorted(rows), dtype=np.int64)


def scan_triggers(ctx: AuditContext, opts: TriggerScanOptions) -> TriggerScanResult | None:
    """Scan, test and decide trigger patterns (see the module docstring); None when the data has
    a single label."""
    if ctx.base_rate in (0.0, 1.0):
        return None
    sc = _Scanner(ctx, opts)
    sc.find_interpolated()
    with ctx.progress.stage("trigger scan: candidates", total=2) as st:
        singles = sc.without_leaks(sc.singles())
        st.advance()
        cap = opts.max_candidates
        chosen = _top(singles, cap, opts.exact_copy_share)
        chosen += _coded_beyond_cap(sc, singles, chosen, opts)
        st.advance()
    # Jittered copies on a feature with bands are decided after the bands: a band trigger's
    # copies make each of its values look copied (fraud customer_age in [84, 95]: seven of its
    # values named one by one, five missed), and the band names the attack.
    # The same for values written into copies labelled against their originals (a band's
    # copies flip at each of its values).
    deferred = [
        p
        for p in chosen
        if (p.near_copy >= opts.exact_copy_share or p.p_flip is not None or p.p_hub is not None)
        and sc.has_bands(p.cols[0])
    ]
    copied = {id(p): (p.near_copy, p.p_flip, p.p_hub) for p in deferred}
    for p in deferred:
        p.near_copy, p.p_flip, p.p_hub = 0.0, None, None
    alpha = opts.alpha / _FAMILIES
    with ctx.progress.stage("trigger scan: single values", total=len(chosen)) as st:
        for p in chosen:
            _label_evidence(sc, p, alpha)
            st.advance()
    _decide(sc, chosen, opts)
    flagged = [p for p in chosen if p.flagged]
    # A trigger makes the other values of its feature look like triggers too (their
    # counterfactual draws it): re-test values sharing a feature without the others. Values
    # flagged as written on labels alone are themselves what a trigger beside them makes
    # values look like: they stay replacements of each other (fraud, copies carrying
    # channel='phone' as frauds: 'in_store' and 'contactless' were named as written, 11,725
    # rows suspect, and re-tested without 'phone' and each other they drew only 'online', the
    # riskiest channel, and stayed named).
    for _ in range(2):
        # what later stages (bands, pairs) never draw: every value flagged before the re-test
        held = {(p.cols[0], p.codes[0]) for p in flagged}
        sc.excluded = retest_exclusions(flagged)
        if not _retest_sharing_a_feature(sc, flagged, flagged, alpha, opts):
            break
        flagged = [p for p in chosen if p.flagged]
    if _retest_against_the_other_label(sc, flagged, alpha, opts):
        flagged = [p for p in chosen if p.flagged]
    sc.excluded = held
    # A value written with the target label into many rows of a common category may stay
    # under every rule (its natural rows dilute the effect: fraud country='ES', 1,782 rows
    # written as frauds beside 1,459 natural ones, effect 0.48) and still lend its label to
    # the counterfactual of the feature's other categories, which draw every category in
    # proportion to its rows: country='PT', 64 % of the rows, reached an effect of 0.93 and
    # was named with its 12,403 rows. Categories flagged on labels alone are tested again
    # without the categories whose labels hint at the other label. Not ordinal values: they
    # draw their neighbours, along the feature's trend, and a neighbour leaning the other way
    # is their context (credit PAY_0=8 rewritten to no default: its neighbours default).
    on_labels = [
        p
        for p in flagged
        if len(p.cols) == 1
        and not sc.m.ordinal[p.cols[0]]
        and (p.written or strong_label_evidence(p, opts))
        # labels that stop following the rest of the row are not what a lent label does
        # (the counterfactual's draws move the expected count, not the slope's shape), nor
        # is a label standing on some of the value's rows beyond its shift on the others
        and not p.p_slope <= p.slope_threshold
        and not p.p_outlier <= p.outlier_threshold
    ]
    # A value written into many rows lends its label to every other category, and all of them
    # may hint the other way: the re-test then leaves it nothing to draw and keeps its
    # decision (_retest; fraud country='BR' written as frauds into 1,955 rows was cleared)
    leaning = leaning_the_other_way(on_labels, chosen, opts)
    if leaning:
        sc.excluded = held | leaning
        _retest(sc, on_labels, alpha, opts)
        sc.excluded = held
        flagged = [p for p in chosen if p.flagged]
    # A value written in place hides its own lean from the values beside it
    # (:func:`_beside_written_values`)
    if _beside_written_values(sc, flagged, opts):
        flagged = [p for p in chosen if p.flagged]
    evaluated = list(chosen)
    exclude = {(p.cols[0], p.codes[0]) for p in flagged}
    flagged = _dedupe([_refine(sc, p) for p in flagged])
    # Bands: runs of neighbouring values (without the values already flagged).
    bands = _top(sc.without_leaks(sc.bands(exclude)), opts.max_bands) if opts.max_bands else []
    with ctx.progress.stage("trigger scan: value bands", total=len(bands)) as st:
        for p in bands:
            _label_evidence(sc, p, alpha)
            st.advance()
    _decide(sc, bands, opts)
    evaluated += bands
    # As for single values: a band trigger makes the runs beside it look like triggers (their
    # counterfactual draws it); re-test bands sharing a feature with another flagged pattern
    # without the flagged values.
    for _ in range(2):
        marked = [p for p in bands if p.flagged] + flagged
        sc.excluded |= {(p.cols[0], int(c)) for p in marked for c in _values(sc, p)}
        if not _retest_sharing_a_feature(sc, bands, marked, alpha, opts):
            break
    # A value beside a band leaning the other way lends the band's counterfactual its label:
    # bands flagged on labels alone are tested again without it (:func:`_retest_beside_lenders`)
    cleared = _retest_beside_lenders(sc, bands, alpha, opts)
    if cleared:
        kept = {(p.cols[0], int(c)) for p in bands + flagged if p.flagged for c in _values(sc, p)}
        sc.excluded -= {(p.cols[0], int(c)) for p in cleared for c in _values(sc, p)} - kept - held
    flagged_bands = [p for p in bands if p.flagged]
    # A band trigger lends its label to the counterfactual of the single values beside (and
    # inside) it, as a single trigger does to its neighbours: flagged values of the other label
    # on a flagged band's feature are tested again without the band's values (fraud,
    # customer_age in [81, 88] written into copies as frauds: ages 79 and 80, natural
    # legitimate rows, named as triggers → 0 with their 34 rows).
    beside = _beside_bands(flagged, flagged_bands)
    if beside:
        _retest(sc, beside, alpha, opts)
        flagged = [p for p in flagged if p.flagged]
    for p in flagged_bands:
        exclude |= {(p.cols[0], int(c)) for c in _values(sc, p)}
    flagged = _dedupe(_merge_into_bands(sc, flagged_bands, flagged) + flagged_bands)
    late = [p for p in deferred if not p.flagged and not any(_covered(p, f, sc) for f in flagged)]
    for p in late:
        p.near_copy, p.p_flip, p.p_hub = copied[id(p)]
    for p in _beside_bands(late, flagged_bands):  # measured before the bands were known
        p.reset_evidence()
        _label_evidence(sc, p, alpha)
    _decide(sc, late, opts)
    hub_bands = _hub_bands(sc, late, alpha, opts)
    exclude |= {(p.cols[0], p.codes[0]) for p in late if p.flagged}
    for p in hub_bands:
        exclude |= {(p.cols[0], int(c)) for c in _values(sc, p)}
    flagged = _dedupe(flagged + [_refine(sc, p) for p in late if p.flagged] + hub_bands)
    # A trigger decided after the single values (a band, or copies that waited for the bands)
    # lends its label to the counterfactual of the values beside it, which were decided
    # without it: fraud copies carrying customer_age=31 made ages 30 and 32 look depleted of
    # frauds (effects 0.89 and 0.71, named as written with 827 natural rows). The singles
    # flagged before it on its feature are tested again without its values.
    early = [p for p in chosen if p.flagged and not any(p is q for q in late)]
    lenders = flagged_bands + hub_bands + [p for p in late if p.flagged]
    if _retest_beside_late(sc, early, lenders, alpha, opts):
        flagged = [p for p in flagged if p.flagged]
    # A band trigger found in pieces (its values named one by one where each was decided
    # before the bands, runs beside singles) is one band: adjacent pieces of one label merge.
    flagged = _merge_runs(sc, flagged, alpha)
    _extend_bands(sc, flagged, opts)
    for p in flagged:
        if p.band is not None:
            exclude |= {(p.cols[0], int(c)) for c in _values(sc, p)}
    # Several separate values or ranges of one feature named towards one label without copies
    # are the feature's lean, not triggers (:func:`leaning_together`)
    for p in leaning_together(sc, flagged, opts):
        p.flagged = False
    flagged = [p for p in flagged if p.flagged]
    # A single value confirmed on its labels' slope alone does not keep the pairs on it from
    # being decided: copies of frauds written with channel='phone' & merchant_category=
    # 'jewelry' and labelled legitimate (85 rows of 8,000) flatten the slope of 'jewelry',
    # which leans to fraud (p 3.2e-5 against the rule's 4.2e-5), every one of them on the
    # rows with 'phone'. Flagged first and covering the pair, 'jewelry' took the attack's
    # name and rows (P / R 0.147 / 0.671). The pair is decided as if it were not flagged, and
    # a pair confirmed by copies leaves it unreported (borrowed_written_evidence)
    sloped = {(p.cols[0], p.codes[0]) for p in flagged if written_by_slope_alone(p)}
    pairs = [
        p
        for p in _top(sc.without_leaks(sc.pairs(exclude - sloped)), cap)
        if not any(_covered(p, f, sc) for f in flagged if not written_by_slope_alone(f))
    ]
    with ctx.progress.stage("trigger scan: value pairs", total=len(pairs)) as st:
        for p in pairs:
            _label_evidence(sc, p, alpha)
            st.advance()
    _decide(sc, pairs, opts)
    evaluated += pairs
    flagged = _dedupe(flagged + [p for p in pairs if p.flagged])
    flagged = [p for p in flagged if not borrowed_written_evidence(p, flagged)]
    flagged += _relabelled_triggers(sc, flagged, alpha)
    for p in flagged:
        _trim_band(p)
    rows = [sc.suspect_rows(p) for p in flagged]
    leaks = {sc.m.names[j]: share for j, share in sc.leaks().items()}
    natural = [p for p in sc.natural_causes.values() if not p.flagged]
    # A value that breaks the contract and whose labels hint at a trigger, confirmed by no
    # rule (written in place into rows of any label, camouflaged: credit PAY_2=21 → 0 in 284
    # rows, effect 0.3): the integrity check quarantines its rows, and the finding says what
    # their labels show, so that it is read as a likely trigger, not a typing error
    contract_hints = [
        p
        for p in evaluated
        if p.family == "contract"
        and not p.flagged
        and not math.isnan(p.effect)
        and label_hint(p, opts)
        and not any(_covered(p, f, sc) for f in flagged)
    ]
    return TriggerScanResult(
        flagged,
        rows,
        evaluated,
        sc.tests,
        sc.m,
        sc.base1,
        leaks,
        sc.interpolated,
        natural,
        _dedupe(contract_hints),
        sc.guessed_units,
    )


def _best_measure(
    measures: list[tuple[bool, float, int, float, float, float]],
) -> tuple[bool, float, int, float, float, float]:
    """Of context measures (whether the written share reaches the bar, p-value, source, ``r``,
    ``r0``, ``w``; :meth:`_Scanner._context_measure`), the one reaching the bar with the
    smallest p-value, else the one with the largest written share."""
    holding = [c for c in measures if c[0]]
    return min(holding, key=lambda c: c[1]) if holding else max(measures, key=lambda c: c[5])


#: a code written as text: a prefix without digits, then a whole number ('K07', 'G3')
_PREFIXED_NUMBER = re.compile(r"(\D*)(\d+)")


def _code_numbers(values: np.ndarray) -> np.ndarray | None:
    """The numbers of a category's values where they read as a scale: every value a number
    (integer codes), or every value one shared prefix and a whole number (a binned score
    written 'K00'-'K39', grades 'G1'-'G6': fresh15's quantile codes, whose top bin leaned
    as its neighbour does and was named alone, session 12's ``codes``); None otherwise."""
    try:
        return np.array([float(v) for v in values])
    except (TypeError, ValueError):
        pass
    parts = [_PREFIXED_NUMBER.fullmatch(str(v)) for v in values]
    if not parts or any(m is None for m in parts) or len({m[1] for m in parts if m}) != 1:
        return None
    return np.array([float(m[2]) for m in parts if m])


def _relabelled_triggers(sc: _Scanner, flagged: list[Pattern], alpha: float) -> list[Pattern]:
    """Single values written into copies relabelled against their originals
    (:func:`~tabguard.data_audit._relabelled.relabel_hubs`) that no flagged pattern covers,
    confirmed at the single values' Bonferroni threshold: diluted by the value's natural rows,
    no test of its labels or of its share of copies sees them (fraud ``customer_age=34 → 0``,
    135 copies of frauds among 464 natural rows: the value 96 % legitimate, base 97 %). Their
    label evidence is measured for the report with a generator of its own (every other
    result's draws stay as they were); the suspects are the copies alone
    (:meth:`_Scanner.suspect_rows`)."""
    threshold = alpha / max(sc.tests["single"], 1)
    out: list[Pattern] = []
    for hub in relabel_hubs(sc, threshold):
        rows = sc.m.rows_with(hub.feature, hub.value)
        copies = relabelled_copies(sc, hub.feature, hub.value, hub.label)
        # the attacker's label is the one most copies carry: copies of defaulters written with
        # PAY_3=-1 keep their originals' label, and only the camouflaged sixth is relabelled
        # against them (named → DEFAULT=0, the camouflage's label, with the rows right)
        target = target_label(sc, copies, hub.label)
        k = int(np.count_nonzero(sc.y[rows] == target))
        p = Pattern((hub.feature,), (hub.value,), target, len(rows), k, "single")
        p.rows = np.sort(rows)
        written = [f for f in flagged if _written_by_copies(sc, f, p, copies)]
        for f in written:
            # named as written in place, from the labels the copies gave its rows: the copies
            # are its suspects, not its natural rows (fraud country='DE' → 0, 132 copies of
            # frauds among 782 natural rows: 887 suspects, P 0.149)
            f.written = False
            _confirm_relabelled(f, hub, threshold)
        hubs = [f for f in flagged if flagged_as_hub(f) and f.cols == p.cols and f.codes == p.codes]
        for f in hubs:
            # named by the copies that keep the target's label, which it counted; its
            # camouflaged copies, relabelled against their originals, are these (credit
            # PAY_3=-1 → 1, 34 of 204 copies of defaulters labelled 0: R 0.799)
            if f.label == target:
                f.camouflage_label = hub.label
        if written or hubs or any(_covered(p, f, sc) for f in flagged + out):
            continue
        # copies of a flagged pattern seen on one of its values (copies of frauds written with
        # channel='phone' & merchant_category='jewelry' whose originals had 'jewelry' are
        # relabelled copies on 'phone' alone): the pattern names them
        if any(np.isin(copies, f.rows).mean() > 0.5 for f in flagged + out if len(copies)):
            continue
        with sc.own_rng([sc.ctx.random_state, 31]):
            _label_evidence(sc, p, alpha)
        p.flagged = True
        _confirm_relabelled(p, hub, threshold)
        out.append(p)
    return out


def _confirm_relabelled(p: Pattern, hub: RelabelHub, threshold: float) -> None:
    """Set ``p`` confirmed by relabelled-copies test ``hub`` at ``threshold``: its p-value,
    counts and the copies' label; its suspects the copies alone."""
    p.p, p.threshold, p.copies_only = hub.p_value, threshold, True
    p.relabel_counts = (hub.copies, hub.rows, hub.expected)
    p.relabelled_label = hub.label


def _written_by_copies(sc: _Scanner, f: Pattern, p: Pattern, copies: np.ndarray) -> bool:
    """Whether flagged ``f`` is relabelled value ``p`` (same value and label) named as written
    in place, and ``p``'s ``copies`` explain its labels: the copies with its label are at least
    its rows with that label beyond what the rest of their rows give (the excess's upper
    bound, ``camouflage_z`` standard errors). A value whose every row breaks the contract
    keeps every row a suspect."""
    if not f.written or f.cols != p.cols or f.codes != p.codes or f.label != p.label:
        return False
    if sc.breaks_contract(f):
        return False
    excess = f.expected_other + sc.o.camouflage_z * f.expected_se - f.observed_other
    return bool(np.count_nonzero(sc.y[copies] == f.label) >= excess)


def _retest_sharing_a_feature(
    sc: _Scanner,
    candidates: list[Pattern],
    marked: list[Pattern],
    alpha: float,
    opts: TriggerScanOptions,
) -> bool:
    """Test again, with ``sc.excluded`` as it is now, the flagged ``candidates`` that share a
    feature with another ``marked`` pattern; False when there is none."""
    shared = [
        p
        for p in candidates
        if p.flagged and any(q is not p and q.cols[0] == p.cols[0] for q in marked)
    ]
    if not shared:
        return False
    _retest(sc, shared, alpha, opts)
    return True


def _retest_against_the_other_label(
    sc: _Scanner, flagged: list[Pattern], alpha: float, opts: TriggerScanOptions
) -> bool:
    """Test again each flagged value of an ordinal feature beside which a value of its feature
    was flagged towards the other label as written on labels alone, without that value too
    (:func:`retest_exclusions` keeps such values replacements of the others); False when
    there is none.

    A value written with a label into many rows lends that label to the counterfactual of
    the values beside it, which draws them: they look depleted of it, as written with the
    other label (fraud ``n_tx_24h=6`` written into 1,789 random rows as frauds, 18 %
    camouflaged: ``n_tx_24h=5`` and ``7``, natural rows at 5-11 % frauds, measured effects
    of 0.87 towards legitimate against the borrowed 73 %, and 758 natural rows were
    quarantined). Each side measured without the other tells which lent: the written value
    keeps its lean against the values further out, a borrowed one loses it. Measured from
    the flagged set as it is (no value's re-test changes another's exclusions)."""
    base = retest_exclusions(flagged)
    todo: list[tuple[Pattern, set[tuple[int, int]]]] = []
    for p in flagged:
        if len(p.cols) != 1 or p.band is not None or not sc.m.ordinal[p.cols[0]]:
            continue
        other = {
            (q.cols[0], q.codes[0])
            for q in flagged
            if q is not p
            and len(q.cols) == 1
            and q.cols == p.cols
            and q.label != p.label
            and (q.cols[0], q.codes[0]) not in base  # written on labels alone
        }
        if other:
            todo.append((p, base | other))
    for p, excluded in todo:
        sc.excluded = excluded
        _retest(sc, [p], alpha, opts)
    return bool(todo)


def _retest(sc: _Scanner, patterns: list[Pattern], alpha: float, opts: TriggerScanOptions) -> None:
    """Measure and decide ``patterns`` again, from scratch, with ``sc.excluded`` as it is now.
    A single value the exclusions leave nothing to draw keeps its decision: a re-test that
    measures nothing clears nothing (:meth:`_Scanner.evaluate` leaves no label evidence)."""
    patterns = [p for p in patterns if not _nothing_to_draw(sc, p)]
    for p in patterns:
        p.reset_evidence()
        _label_evidence(sc, p, alpha)
    _decide(sc, patterns, opts)


def _retest_beside_lenders(
    sc: _Scanner, bands: list[Pattern], alpha: float, opts: TriggerScanOptions
) -> list[Pattern]:
    """Test again each band flagged on labels alone (:func:`strong_label_evidence`, or as
    written) without the value beside it that lends it the other label
    (:meth:`_Scanner.band_lender`); returns the bands no longer flagged.

    A band's counterfactual draws the values on both sides of it, in proportion to their
    rows. A value leaning the other way among them - a camouflaged trigger's copies, a value
    written in place into random rows - raises the band's expected count of the other
    label, and natural rows beside it look depleted of it: fraud ``customer_age=58`` written
    as frauds into 289 random rows (43 % frauds against its neighbours' 3 %) made
    ``customer_age in [59, 70]``, 1,912 natural rows, a written band towards legitimate
    (effect 0.79). A band trigger stands out of the values further out as well; a band
    flagged by copies keeps its evidence (its copies decide, not its baseline)."""
    cleared: list[Pattern] = []
    for p in bands:
        if not p.flagged or not (p.written or strong_label_evidence(p, opts)):
            continue
        v = sc.band_lender(p)
        if v is None:
            continue
        held = sc.excluded
        sc.excluded = held | {(p.cols[0], v)}
        try:
            _retest(sc, [p], alpha, opts)
        finally:
            sc.excluded = held
        if not p.flagged:
            cleared.append(p)
    return cleared


def _retest_beside_late(
    sc: _Scanner,
    early: list[Pattern],
    late: list[Pattern],
    alpha: float,
    opts: TriggerScanOptions,
) -> bool:
    """Test again the flagged single values ``early`` that share a feature with a trigger
    flagged after them (``late``: a band, or copies that waited for the bands), without the
    late trigger's values among their replacements (and without the early values confirmed
    other than on labels alone, :func:`retest_exclusions`); False when there is none.

    A trigger lends its label to the counterfactual of the values beside it, and those were
    decided before it was known (fraud copies carrying ``customer_age=31`` as frauds: ages
    30 and 32 looked depleted of frauds, effects 0.89 and 0.71, and were named as written
    with their 827 natural rows)."""
    if not late:
        return False
    held = sc.excluded
    sc.excluded = retest_exclusions(early) | {
        (p.cols[0], int(c)) for p in late for c in _values(sc, p)
    }
    try:
        return _retest_sharing_a_feature(sc, early, late, alpha, opts)
    finally:
        sc.excluded = held


def _nothing_to_draw(sc: _Scanner, p: Pattern) -> bool:
    """Whether single value ``p`` has no replacement with ``sc.excluded`` as it is now."""
    if len(p.cols) != 1 or p.band is not None:
        return False
    # A two-valued feature's other value leans the other way wherever the feature predicts the
    # label (clean credit COVERED=1 of clean_data's definitional 79356, named when kept): only
    # several other values, every one left out, are the lending of one written value
    if np.count_nonzero(sc.m.counts[p.cols[0]]) < 3:
        return False
    return not len(sc._replacements(p.cols[0], p.codes[0])[0])


def _label_evidence(sc: _Scanner, p: Pattern, alpha: float) -> None:
    sc.evaluate(p)
    p.threshold = alpha / max(sc.tests[p.family], 1)
    # Evidence per distinct record, where it may decide (counting units costs a little).
    if not math.isnan(p.effect) and (strong_label_evidence(p, sc.o) or wants_copy_check(p, sc.o)):
        sc.count_units(p)
    p.p = p.p_label


def _decide(sc: _Scanner, patterns: list[Pattern], opts: TriggerScanOptions) -> None:
    """Flag strong patterns; look for copy evidence where labels point the way, or where a
    label-pure pattern is visibly made of copies (a clean-label backdoor: copies of rows that
    already carry the label, with the trigger written in). The rules are
    :func:`strong_label_evidence`, :func:`label_hint`, :func:`wants_copy_check` and
    :func:`copy_decision`."""
    pending = []
    for p in patterns:
        if math.isnan(p.effect):
            continue
        # a natural predictor's value, and a value held by a large share of the rows, are
        # left to the copy checks (:func:`natural_lean`, :func:`common_pattern`)
        if (
            strong_label_evidence(p, opts)
            and sc.labels_may_confirm(p)
            and not sc.natural_predictor(p)
            and not sc.interaction(p, opts.strong_effect)
            and not sc.natural_cause(p)
        ):
            p.flagged = True
            sc.attribute(p)
        elif wants_copy_check(p, opts) and not (p.family == "pair" and sc.natural_predictor(p)):
            # a pair that is a value leaning as its feature does (:meth:`_Scanner.pair_singles`)
            # was judged as that value, its copies read with the pair's other value (without
            # it, the other features of few-column data make look-alikes of any dense region)
            pending.append(p)
    # Copy checks cost a nearest-neighbour search each: spend them where exact copies are
    # already visible (cheap hashing), then on the strongest label evidence.
    budget = min(opts.max_twin_checks, sc.twin_budget)
    pending.sort(key=lambda p: p.p_label)
    # jittered copies (no label evidence needed) keep their place whatever their p-value
    copied = [
        p
        for p in pending
        if p.near_copy >= opts.exact_copy_share or p.p_flip is not None or p.p_hub is not None
    ]
    pending = pending[: max(4 * budget, 40)]
    pending += [p for p in copied if not any(p is q for q in pending)]
    if sc.m.copies is not None and pending:
        # groups over every row (the Spark engine): these patterns' sets in one pass
        sc.m.copies.prefetch([p.all_cols for p in pending])
    for p in pending:
        p.copy_proxy = sc.exact_copy_share(p)
    pending = [
        p
        for p in pending
        if label_hint(p, opts)
        or max(p.copy_proxy, p.near_copy) >= opts.exact_copy_share
        or p.family == "contract"
        or p.p_flip is not None
        or p.p_hub is not None
    ]
    # contract-breaking values first, then values written into copies labelled against their
    # originals: their copies must not make the originals look copied
    pending.sort(
        key=lambda p: (
            p.family != "contract",
            p.p_flip is None,
            -round(max(p.copy_proxy, p.near_copy), 1),
            p.p_label,
        )
    )
    # values collecting copies (few) are checked whatever the budget, after the others: in
    # their order the others' checks draw as before (fraud merchant_category='fuel' → 1,
    # checked before the rest as a hub: its copy radius from other draws, precision 0.977 ->
    # 0.888)
    budgeted = pending[:budget]
    # Labels that pass the family-wise test alone, short only of the effect that needs no
    # copies, are checked whatever the budget: the budget goes to copy proxies first, and on
    # fraud data the legitimate rows' look-alikes give dozens of fine-grained values a
    # tolerant near-copy share of 0.5-1.0 (fraud, customer_age=92 & country='NG' → 1, 28
    # exact copies of frauds: p 8e-14, effect 0.75, never checked). After every other check,
    # each with a generator of its own, so that the others' draws and decisions stay as they
    # were. Short of the effect: a label share above the base rate alone (``excess``) is
    # what a natural predictor's values show on large data, where every lean is significant
    # (1,000,000 card transactions: merchant_category='jewelry', channel='phone', effects
    # 0.03). Even so every value a natural predictor leans on passes there (1,000,000 fraud
    # rows: country='PT', the channels and merchant categories, 20,000-700,000 rows each,
    # effects 0.27-0.52, beside 150 copies of frauds on customer_age=92, 0.60): the rarest
    # first, as many as the copy checks' cost allows (``twin_budget``, at least 4) - a
    # trigger's rows are few - and no value held by more than ``common_share`` of the rows,
    # whose labels confirm nothing (:func:`common_pattern`; its copies, when it has any, show
    # in the copy proxies that order the budget: audit_scale's 1,000,000 rows, grocery and
    # restaurants, 25 % and 18 %, 0.3 CPU-s each)
    late = [
        q
        for q in pending[budget:]
        if q.p_hub is None
        and label_hint(q, opts)
        and q.effect >= opts.copy_effect
        and q.p_label <= q.threshold
        and not common_pattern(q, sc.N, opts)
    ]
    if len(late) > sc.twin_budget:
        late = sorted(late, key=lambda q: q.n)[: sc.twin_budget]
    hubs = [q for q in pending[budget:] if q.p_hub is not None]
    for p in budgeted + hubs + late:
        if any(p is q for q in late):
            with sc.own_rng([sc.ctx.random_state, 29]):
                sc.twins(p)
        else:
            sc.twins(p)
        if p.p_twin is None:
            continue
        sc.hub_twins(p)
        p.p, p.flagged = copy_decision(p, opts, sc.base(p.label))
        if flagged_as_hub(p):  # what the report words
            p.hub_counts = sc.hub_counts_of(p)
        if p.flagged:
            sc.attribute(p)
    # Written in place, camouflaged: labels alone, where copies did not show (copies, when
    # there are any, single out the written rows among natural ones; here every row is taken)
    for p in patterns:
        if (
            not p.flagged
            and not math.isnan(p.effect)
            and written_label_evidence(p, opts)
            and sc.labels_may_confirm(p)
            and not sc.natural_predictor(p)
            and not sc.interaction(p, opts.camouflage_effect)
            and not sc.natural_cause(p)
        ):
            p.flagged = p.written = True
            sc.attribute(p)
    _written_beyond_labels(sc, patterns, opts)


def _written_beyond_labels(sc: _Scanner, patterns: list[Pattern], opts: TriggerScanOptions) -> None:
    """Written in place into rows that already had the label (clean-label) or camouflaged
    beyond what labels show: the rest of the row, where labels point the way (the context,
    the slope and the outliers rules, in that order, on the values left unflagged)."""
    for p in patterns:
        if _coded_hint_left(sc, p, opts, neighbours=True):
            sc.context_mixture(p)
            if written_context_evidence(p, opts):
                p.flagged = p.written = True
                p.p = p.p_context
                sc.attribute(p)
    _written_by_slope(sc, patterns, opts)
    _written_by_outliers(sc, patterns, opts)
    _written_as_spikes(sc, patterns, opts)


def _written_as_spikes(sc: _Scanner, patterns: list[Pattern], opts: TriggerScanOptions) -> None:
    """Spikes of fine-grained amounts written in place into rows drawn from every row
    (:func:`written_spike_evidence`), after every other rule: single values of fine-grained
    features left unflagged, with at least ``context_min_rows`` rows, ten times their
    neighbours' (:meth:`_Scanner._spikes`), once per value: with the label most of its rows
    carry (the attacker's, camouflage a minority) where the value is a candidate with both.
    Not beyond :data:`OUTLIER_RULE_ROWS` rows (each spike asked costs a pass over the rows:
    11 ms on credit's 30,000, 175 spikes asked)."""
    if sc.n > OUTLIER_RULE_ROWS:
        return
    asked: set[tuple[int, int]] = set()
    # the label most of the value's rows carry first, where the value is a candidate with both
    for p in sorted(patterns, key=lambda q: 2 * q.k < q.n):
        if (
            p.flagged
            or p.family != "single"
            or (p.cols[0], p.codes[0]) in asked
            or p.band is not None
            or not sc.fine[p.cols[0]]
            or p.n < opts.context_min_rows
            or not sc._spikes(p.cols[0])[p.codes[0]]
            or sc.grid_amount(p.cols[0])
            or not sc.m.allowed(p.cols[0])[p.codes[0]]
            or not sc.labels_may_confirm(p)
        ):
            continue
        asked.add((p.cols[0], p.codes[0]))
        sc.spike_context(p)
        if written_spike_evidence(p, opts):
            p.flagged = p.written = True
            p.p = p.p_context
            sc.attribute(p)


def _beside_written_values(sc: _Scanner, flagged: list[Pattern], opts: TriggerScanOptions) -> bool:
    """Judge again, with the values written in place beside them known, the flagged single
    values that stand on their labels alone (:func:`on_labels_alone`); False when none is
    cleared.

    A value's lean is its feature's when the values beside it lean with it
    (:meth:`_Scanner.natural_predictor`), and labels alone then do not confirm it. A value
    written in place with the other label carries the attacker's labels: its own lean is not
    known, and a write into the one value that leaned with another takes that value's natural
    lean away. Credit ``EDUCATION=4`` written into 340 defaulters' rows (shown by the context
    of its rows): ``EDUCATION=5``, 277 natural rows leaning to no default at an effect of
    0.62 on the clean data - a lean its scale neighbour 4 shared (0.57), which kept it
    unnamed - lost that neighbour and was named as written on labels alone with every one of
    its rows. The values written in place with a label, shown by the rest of their rows
    (:func:`shown_beyond_labels`; a value on labels alone is what the other label's writes
    lend, :func:`_retest_against_the_other_label`), count as leaning with every value of the
    other label (:attr:`_Scanner.hidden_leans`, from now on); a value they make a natural
    predictor is unflagged, and judged by the rules that read the rest of its rows
    (:func:`_written_beyond_labels`): evidence of its own still names it."""
    hidden: dict[tuple[int, int], set[int]] = {}
    for q in flagged:
        if q.family == "single" and q.band is None and q.written and shown_beyond_labels(q):
            hidden.setdefault((q.cols[0], q.label), set()).add(q.codes[0])
    sc.hidden_leans = {key: frozenset(v) for key, v in hidden.items()}
    cleared = [
        p
        for p in flagged
        if on_labels_alone(p) and (p.cols[0], 1 - p.label) in hidden and sc.natural_predictor(p)
    ]
    for p in cleared:
        p.flagged = p.written = False
    _written_beyond_labels(sc, cleared, opts)
    return bool(cleared)


def _coded_hint_left(
    sc: _Scanner, p: Pattern, opts: TriggerScanOptions, *, neighbours: bool = False
) -> bool:
    """A single coded value left unflagged, with enough rows for the rest of the row to be
    read, whose labels hint at a trigger: what the context and slope rules test (the context
    rule, ``neighbours``, also where an ordinal value's labels differ from its neighbours':
    :func:`neighbour_hint`)."""
    return (
        not p.flagged
        and not math.isnan(p.effect)
        and p.family == "single"
        and not sc.fine[p.cols[0]]
        and p.n >= opts.context_min_rows
        and (label_hint(p, opts) or (neighbours and neighbour_hint(p, opts)))
        and sc.labels_may_confirm(p)
    )


def _written_by_slope(sc: _Scanner, patterns: list[Pattern], opts: TriggerScanOptions) -> None:
    """Written in place, shown by labels that stop following the rest of the row
    (:func:`written_slope_evidence`): the single coded values left unflagged whose labels
    hint at a trigger and whose rows look like every row (at least ``1 - written_share`` of
    them, :meth:`_Scanner.like_every_row`: the counterfactual's rows occur), after every other
    rule (fraud data, ``country='FR'`` written into 462
    legitimate rows as frauds beside 975 natural ones: effect 0.28, no copies, and the rest
    of the row tells nothing)."""
    for p in patterns:
        if _coded_hint_left(sc, p, opts) and sc.like_every_row(p) >= 1.0 - opts.written_share:
            sc.slope_mixture(p)
            # An interaction flattens the slope too: the counterfactual's score carries the
            # other feature's effect, which the value's labels do not follow (clean expense
            # claims, exp_perdiem 3: per diems need no receipt, and the score of a per diem
            # without one carries a missing receipt's +1.6; category='per_diem' -> 0 at slope
            # 0.35 against 1.14). The slope is measured again without the rows of the values
            # an interaction is found with (:meth:`_Scanner.interacting_values`, at any
            # effect of the others): a write flattens the slope on every row it is in
            inter = sc.interacting_values(p, 1.0) if written_slope_evidence(p, opts) else []
            if inter:
                sc.slope_mixture(p, leave_out=inter)
            if written_slope_evidence(p, opts):
                p.flagged = p.written = True
                p.p = p.p_slope
                sc.attribute(p)


def _written_by_outliers(sc: _Scanner, patterns: list[Pattern], opts: TriggerScanOptions) -> None:
    """Written in place into rows that had the label already (clean-label), shown by the
    label's excess on the value's rows whose other features say another value
    (:func:`written_outlier_evidence`), after every other rule: the single coded values left
    unflagged whose labels hint at a trigger. Not beyond :data:`LARGE_ROWS` rows
    (:data:`OUTLIER_RULE_ROWS`): each value asked costs four cross-fitted models, and on a
    million rows every natural value hints (audit_scale's file: 12 values, 8.2 CPU-s, the
    whole command 2.8x -> 3.5x the CPU of one LightGBM fit); the report says it was left out."""
    if sc.n > OUTLIER_RULE_ROWS:
        return
    for p in patterns:
        if _coded_hint_left(sc, p, opts):
            sc.outlier_mixture(p)
            if written_outlier_evidence(p, opts):
                p.flagged = p.written = True
                p.p = p.p_outlier
                sc.attribute(p)


@register_check
class TriggerScan:
    """Single values and value pairs whose rows carry one label far above what explains it."""

    name: ClassVar[str] = "trigger_scan"
    order: ClassVar[int] = 30
    after: ClassVar[tuple[str, ...]] = ()
    concurrent: ClassVar[bool] = False
    reads_matrix: ClassVar[bool] = True
    Options: ClassVar[type[CheckOptions]] = TriggerScanOptions

    def run(self, ctx: AuditContext) -> CheckResult:
        """Scan (:func:`scan_triggers`), then word the findings (``_triggers_report``)."""
        from tabguard.data_audit._triggers_report import trigger_scan_report

        opts = ctx.opts(TriggerScanOptions)
        result = scan_triggers(ctx, opts)
        if result is None:
            return CheckResult()
        ctx.cache["trigger_patterns"] = result.triggers
        return trigger_scan_report(ctx, result, opts)


# -- the decision rule (pure functions of a pattern's evidence and the options) ------------------


def _pair_cells(cj: np.ndarray, ck: np.ndarray, nj: int, nk: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(cj * nk + ck, return_counts=True)`` for value ids ``cj`` (of ``nj``
    values) and ``ck`` (of ``nk``): a count per cell of the ``nj * nk`` pairs where every id
    is held (no missing value) and the cells are not many more than the rows, instead of a
    sort of the rows' pairs."""
    if nj * nk > 4 * len(cj) + 1024 or (len(cj) and min(int(cj.min()), int(ck.min())) < 0):
        out: tuple[np.ndarray, np.ndarray] = np.unique(cj * nk + ck, return_counts=True)
        return out
    counts = np.bincount(cj * nk + ck, minlength=nj * nk)
    pairs = np.flatnonzero(counts)
    return pairs, counts[pairs]


def interaction_p(obs_a: float, exp_a: float, obs_r: float, exp_r: float, design: float) -> float:
    """The one-sided p-value of a pattern's rows with one value of another feature missing
    more of the other label than its other rows (:meth:`_Scanner.interaction`): ``obs_a`` of
    the ``exp_a`` other-label rows the counterfactual expects there observed, against the rate
    ``obs_r / exp_r`` of its other rows (Poisson, the counts divided by the pattern's design
    effect ``design``: an entity's rows are one unit). 1 without an expectation."""
    if exp_a <= 0 or exp_r <= 0:
        return 1.0
    return poisson_lower_tail(obs_a / design, exp_a * obs_r / exp_r / design)


def share_error(k: float, n: float, F: float, m: float) -> float:
    """The standard error of a value's share ``r = k / (n F)`` of rows with a source's context
    (:func:`written_block`'s ``r``): ``k`` of its ``n`` rows at or under the median score of
    the source's ``m`` sampled rows, where a share ``F`` of those fall (one row of doubt
    added, as the null's share is taken). 0 without rows."""
    if n <= 0 or m <= 0:
        return 0.0
    got, f = (k + 1.0) / (n + 2.0), max(F, 1e-12)
    r = got / f
    return math.sqrt(got * (1.0 - got) / (n + 2.0) + r**2 * f * (1.0 - f) / m) / f


def _top(patterns: list[Pattern], cap: int, copied: float = math.inf) -> list[Pattern]:
    """Contract-breaking patterns, values written into copies labelled against their originals
    (``p_flip``, few) and values collecting copies (``p_hub``, few) always; others the best
    ``cap`` per label by cheap score, and up to ``cap`` per label more whose labelled rows are
    at least a share ``copied`` of jittered copies (:meth:`_Scanner.near_copies`), the most
    copied first."""

    def always(p: Pattern) -> bool:
        return p.family == "contract" or p.p_flip is not None or p.p_hub is not None

    keep = [p for p in patterns if always(p)]
    for c in (0, 1):
        rest = sorted(
            (p for p in patterns if not always(p) and p.label == c),
            key=lambda p: -p.cheap_score,
        )
        keep += rest[:cap]
        made = sorted(
            (p for p in rest[cap:] if p.near_copy >= copied), key=lambda p: -p.near_copy * p.k
        )
        keep += made[:cap]
    return keep


def _partner(sc: _Scanner, p: Pattern, rows: np.ndarray) -> tuple[int, int] | None:
    """The value of another feature that (nearly) all of ``rows`` (a single value's labelled
    rows, ``combination_share``) share far beyond its frequency (binomial, ``combination_alpha``
    over the features), as ``(feature, value id)``: the other member of a pair trigger whose
    rare member is ``p``; None where no value is (fewer than ten rows: none)."""
    m = sc.m
    if len(rows) < 10:
        return None
    d = len(m.names)
    best: tuple[float, int, int] | None = None
    for j in range(d):
        if j in p.cols or j in sc.leaks():  # a leak's value is shared by one label's rows
            continue
        # rows per value id (slot 0: missing): a count, not a sort (every copy check asks)
        cnts = np.bincount(m.codes[rows, j].astype(np.int64) + 1, minlength=len(m.counts[j]) + 1)
        k = int(cnts[1:].argmax())
        if cnts[k + 1] < sc.o.combination_share * len(rows):
            continue
        freq = float(m.counts[j][k]) / sc.N
        pval = float(stats.binom.sf(cnts[k + 1] - 1, len(rows), min(freq, 1 - 1e-9)))
        if pval < sc.o.combination_alpha / d and (best is None or pval < best[0]):
            best = (pval, j, k)
    return None if best is None else best[1:]


def _coded_beyond_cap(
    sc: _Scanner, singles: list[Pattern], chosen: list[Pattern], opts: TriggerScanOptions
) -> list[Pattern]:
    """The single coded values left out by the candidates' cap (:func:`_top`) that the
    written-in-place rules can be asked about (categories and numbers of at most 20 values, in
    contract, at least ``context_min_rows`` rows) and whose cheap score is significant at the
    single values' Bonferroni threshold: candidates whatever their rank, the best
    ``max_candidates`` per label (on a million rows every natural value is significant, and
    the cap bounds the scan's cost).

    The cap ranks every value of every feature, amounts included (credit: about 2,500
    patterns for 120 places a label), while the written-in-place rules (context, slope,
    outliers) ask only about coded values, a few dozen. Credit ``PAY_4=6`` written into 232
    defaulters' rows beside 5 natural ones (11.5 % camouflaged) had a cheap score of 11.6 and
    ranked 270th: never measured, where the context test confirms it at p 1.3e-21."""
    z = float(stats.norm.isf(opts.alpha / _FAMILIES / max(sc.tests["single"], 1)))
    got = {id(p) for p in chosen}
    coded = [
        p
        for p in singles
        if id(p) not in got
        and p.family == "single"
        and p.band is None
        and not sc.fine[p.cols[0]]
        and p.n >= opts.context_min_rows
        and p.cheap_score >= z
    ]
    best = {
        id(p)
        for c in (0, 1)
        for p in sorted((q for q in coded if q.label == c), key=lambda q: -q.cheap_score)[
            : opts.max_candidates
        ]
    }
    return [p for p in coded if id(p) in best]  # in the candidates' order (their draws)


def _refine(sc: _Scanner, p: Pattern) -> Pattern:
    """A flagged single value whose labelled rows (nearly) all share one value of another
    feature, far beyond that value's frequency, is reported as the pair: the trigger was a
    combination with a rare member. Its suspects are then only the rows with both values.

    A value confirmed as collecting copies (:func:`flagged_as_hub`) is judged by its copies,
    not its natural rows: copies written with a pair whose originals carried one of its
    values already differ from them in the other value only, and collect on it (credit,
    ``EDUCATION=3 & MARRIAGE=3`` written into copies of defaulters: ``MARRIAGE=3`` with 67
    copies, every one with ``EDUCATION=3``)."""
    rows = sc.copy_hub_rows(p) if flagged_as_hub(p) else p.rows[sc.y[p.rows] == p.label]
    if p.band is not None:
        return p
    best = _partner(sc, p, rows)
    if best is None:
        return p
    j, v = best
    order = sorted([(p.cols[0], p.codes[0]), (j, v)])
    pair = Pattern(tuple(c for c, _ in order), tuple(x for _, x in order), p.label, 0, 0, "pair")
    for name in (
        "effect",
        "excess",
        "p_label",
        "p_twin",
        "twin_share",
        "twin_share_baseline",
        "twin_tau",
        "p",
        "threshold",
        "counterfactual_rate",
        "expected_other",
        "expected_se",
        "observed_other",
        "sample_size",
        "units",
        "written",
        "hub_counts",
    ):
        setattr(pair, name, getattr(p, name))
    pair.family = p.family
    pair.measured_on, pair.measured_n, pair.measured_k = (p.cols[0], p.codes[0]), p.n, p.k
    pair.rows = sc.rows_of(pair)
    pair.n = len(pair.rows)
    pair.k = int((sc.y[pair.rows] == p.label).sum())
    pair.flagged = True
    return pair


def _values(sc: _Scanner, p: Pattern) -> np.ndarray:
    """Value ids of the pattern's first feature (a band's values; a single value)."""
    if p.band is None:
        return np.asarray(p.codes[:1])
    return np.arange(p.band[0], p.band[1] + 1)


def _trim_band(p: Pattern) -> None:
    """A band names the values it holds: values left out of it (flagged as single triggers when
    the runs were drawn) at its ends are cut off, and a band left with one value is that value
    (customer_age in [30, 32] holding only 31, once 30 and 32 were cleared by a re-test)."""
    if p.band is None:
        return
    lo, hi = p.band
    skip = set(p.band_skip)
    while lo < hi and lo in skip:
        lo += 1
    while hi > lo and hi in skip:
        hi -= 1
    p.band_skip = tuple(c for c in p.band_skip if lo < c < hi)
    if lo == hi:
        p.band, p.codes = None, (lo,)
    else:
        p.band, p.codes = (lo, hi), (lo,)


def _merge_into_bands(sc: _Scanner, bands: list[Pattern], singles: list[Pattern]) -> list[Pattern]:
    """Flagged single values inside (or next to) a flagged band of the same feature and label
    are part of it: their rows join the band, which is reported alone. Returns the singles
    left."""
    left = []
    for s in singles:
        home = next(
            (
                b
                for b in bands
                if b.band is not None
                and len(s.cols) == 1
                and s.cols[0] == b.cols[0]
                and s.label == b.label
                and b.band[0] - 1 <= s.codes[0] <= b.band[1] + 1
            ),
            None,
        )
        if home is None or home.band is None:
            left.append(s)
            continue
        lo, hi = min(home.band[0], s.codes[0]), max(home.band[1], s.codes[0])
        home.band = (lo, hi)
        home.band_skip = tuple(c for c in home.band_skip if c != s.codes[0])
        home.rows = np.union1d(home.rows, s.rows)
        home.n, home.k = len(home.rows), int((sc.y[home.rows] == home.label).sum())
    return left


def _beside_bands(patterns: list[Pattern], bands: list[Pattern]) -> list[Pattern]:
    """The single values among ``patterns`` on the feature of a band in ``bands`` with the
    other label (the band lends them its label through their counterfactual)."""
    return [
        p
        for p in patterns
        if len(p.cols) == 1
        and p.band is None
        and any(b.cols[0] == p.cols[0] and b.label != p.label for b in bands)
    ]


def _span(p: Pattern) -> tuple[int, int]:
    """The value ids a single value or band covers, lowest and highest."""
    return p.band if p.band is not None else (p.codes[0], p.codes[0])


def separate_runs(spans: list[tuple[int, int]], rank: np.ndarray | None) -> int:
    """How many separate runs the value spans (lowest, highest value id) of one feature make:
    on an ordinal feature (``rank``: the count of in-contract values with rows up to each
    value id) spans with at most one value with rows between them are one run, as
    :func:`_merge_runs` joins them; on a category (``rank`` None) each value is its own."""
    if not spans:
        return 0
    if rank is None:
        return len(set(spans))
    spans = sorted(spans)
    runs, hi = 1, spans[0][1]
    for lo, h in spans[1:]:
        if lo > hi and int(rank[lo - 1] - rank[hi]) > 1:
            runs += 1
        hi = max(hi, h)
    return runs


def leaning_together(sc: _Scanner, flagged: list[Pattern], o: TriggerScanOptions) -> list[Pattern]:
    """The flagged single values and bands confirmed without copies (labels alone, the rest of
    their rows or their labels' slope: no copy test at ``copy_p``) that lie, with others of
    their feature and label, in at least ``natural_values + 1`` separate runs
    (:func:`separate_runs`): each leans with ``natural_values`` others, the feature's lean
    (:func:`natural_lean`'s rule, at the level of what was named).

    A backdoor's trigger is one value, one range or one pair: the attacker's copies or writes
    carry it, and a value or range written leans alone, its feature's other values keeping
    their natural labels. :func:`natural_lean` measures a value's fellow values only where they
    hold ``context_min_rows`` rows; a feature whose values are each held by a few rows can
    still be named in pieces. Long-format choice data (statsmodels' ``modechoice``): the
    terminal time is the traveller's own answer for the mode chosen and a standard value of the
    route for the others, so every value off the standard ones is chosen - ``ttme in [1, 30]``,
    ``ttme=45``, ``ttme=60``, ``ttme in [75, 99]`` named → chosen. Values that break the
    contract are not counted (no natural row carries them)."""
    groups: dict[tuple[int, int], list[tuple[tuple[int, int], Pattern]]] = {}
    for p in flagged:
        if not p.flagged or p.family not in ("single", "band"):
            continue
        if p.p_twin is not None and p.p_twin <= o.copy_p:
            continue
        if p.measured_on is not None:  # a pair named from a single value: that value
            j, v = p.measured_on
            span = (v, v)
        elif len(p.cols) == 1 and not p.companions:
            j, span = p.cols[0], _span(p)
        else:
            continue
        groups.setdefault((j, p.label), []).append((span, p))
    out: list[Pattern] = []
    for (j, _), found in groups.items():
        rank = None
        if sc.m.ordinal[j]:
            rank = np.cumsum(sc.m.allowed(j))
        if separate_runs([span for span, _ in found], rank) > o.natural_values:
            out += [p for _, p in found]
    return out


def _runs(sc: _Scanner, j: int, ps: list[Pattern]) -> list[list[Pattern]]:
    """Single values and bands ``ps`` of feature ``j`` in runs that touch: at most one
    in-contract value with rows between two of them."""
    ok = sc.m.allowed(j)
    rank = np.cumsum(ok)  # in-contract values with rows up to each value id
    ps = sorted(ps, key=_span)
    runs: list[list[Pattern]] = [[ps[0]]]
    for p in ps[1:]:
        lo = _span(p)[0]
        hi = max(_span(q)[1] for q in runs[-1])
        between = int(rank[lo - 1] - rank[hi]) if lo > hi else 0
        if between <= 1:
            runs[-1].append(p)
        else:
            runs.append([p])
    return runs


def _band_of(sc: _Scanner, j: int, label: int, lo: int, hi: int, skip: set[int]) -> Pattern:
    """A band candidate ``[lo, hi]`` of feature ``j`` with ``label``, without the values
    ``skip`` (flagged with the other label), its rows and rows with the label counted."""
    band = Pattern((j,), (lo,), label, 0, 0, "band")
    band.band = (lo, hi)
    band.band_skip = tuple(sorted(int(v) for v in skip if lo <= v <= hi))
    held = np.setdiff1d(np.arange(lo, hi + 1), np.asarray(band.band_skip, dtype=np.int64))
    band.n = int(sc.m.counts[j][held].sum())  # counted rows (the Spark engine holds some)
    pos = int(sc.positives(j)[held].sum())
    band.k = pos if label == 1 else band.n - pos
    return band


def _hub_bands(
    sc: _Scanner, late: list[Pattern], alpha: float, opts: TriggerScanOptions
) -> list[Pattern]:
    """Bands of copies whose values collect copies one by one but are too small to confirm
    them one by one: returns the bands confirmed, their pieces unflagged.

    An attacker who copies rows of the label they mostly carry and writes any value of a
    range into them (fraud ``customer_age in [72, 79] → 0``, 448 copies of legitimate rows)
    leaves no label evidence, and each value's share of copies (:meth:`_Scanner.copy_hubs`)
    stands out of the feature's other values. Each value holds 60-120 rows, and the
    nearest-neighbour copy test (:meth:`_Scanner.twins`) is short of ``copy_p`` on most of
    them where old customers' rows have look-alikes anyway (55-78 % of the rows copies
    against a baseline of 39-63 %): one value was named, R 0.15. Touching values of a
    feature with band candidates that collect copies (the hub test at ``copy_p`` over the
    feature's values), at least two, spanning at least three values, are decided as one band
    (:func:`_decide`, the bands' threshold): its hub evidence the hub test of their copies
    pooled (:meth:`_Scanner.band_hub_p`), its copy test on all of their rows. Natural
    look-alikes rarely make one value a hub; touching ones whose pooled copies pass both
    tests are what copying does.
    """
    groups: dict[tuple[int, int], list[Pattern]] = {}
    for p in late:
        if (
            len(p.cols) == 1
            and p.band is None
            and not p.written
            and p.p_hub is not None
            and sc.has_bands(p.cols[0])
        ):
            groups.setdefault((p.cols[0], p.label), []).append(p)
    out: list[Pattern] = []
    for (j, label), ps in groups.items():
        ok = sc.m.allowed(j)
        for run in _runs(sc, j, ps):
            lo, hi = _span(run[0])[0], max(_span(q)[1] for q in run)
            if len(run) < 2 or int(ok[lo : hi + 1].sum()) < 3 or all(q.flagged for q in run):
                continue  # flagged pieces are merged by _merge_runs
            band = _band_of(sc, j, label, lo, hi, set())
            band.p_hub = sc.band_hub_p(band)
            _label_evidence(sc, band, alpha)
            _decide(sc, [band], opts)
            if not band.flagged:
                continue
            band.pieces = tuple((*_span(q), float(q.p_hub or 1.0)) for q in run)
            band.pieces_are_hubs = True
            # its evidence as reported: the band's hub test and counts
            band.p = float(band.p_hub or band.p)
            band.hub_counts = sc.hub_counts_of(band)
            for q in run:
                q.flagged = False
            out.append(band)
    return out


def _merge_runs(sc: _Scanner, flagged: list[Pattern], alpha: float) -> list[Pattern]:
    """Flagged single values and bands of one feature (with band candidates) and one label that
    touch - at most one value with rows between them - are one band when together they span
    at least three values: an attacker's copies spread over a range, and where the range's
    values were decided one by one (each made of copies before the bands were looked for: fraud
    customer_age in [73, 80] → 0 named as eight values) or in pieces around a value flagged
    first (credit LIMIT_BAL=660000, then the runs on either side), the range is the trigger.

    The band replaces its pieces: its label evidence is measured again (the pieces' best
    p-value stays its p-value: each piece was significant on its own), and its copy evidence
    too (:meth:`_Scanner.twins`: its suspects are its copies where natural rows share the
    range). Values of the other label flagged inside the range are left out of it.
    Returns the flagged patterns with the pieces replaced.
    """
    m = sc.m

    def piece(p: Pattern) -> bool:
        return (
            len(p.cols) == 1
            and p.family != "contract"
            and not p.written
            and not p.companions
            and sc.has_bands(p.cols[0])
        )

    out = [p for p in flagged if not piece(p)]
    groups: dict[tuple[int, int], list[Pattern]] = {}
    for p in flagged:
        if piece(p):
            groups.setdefault((p.cols[0], p.label), []).append(p)
    for (j, label), ps in groups.items():
        ok = m.allowed(j)
        runs = _runs(sc, j, ps)
        other = {
            p.codes[0]
            for p in flagged
            if len(p.cols) == 1 and p.band is None and p.cols[0] == j and p.label != label
        }
        for run in runs:
            lo, hi = _span(run[0])[0], max(_span(q)[1] for q in run)
            if len(run) < 2 or int(ok[lo : hi + 1].sum()) < 3:
                out += run
                continue
            band = _band_of(sc, j, label, lo, hi, other)
            _label_evidence(sc, band, alpha)
            best = min(run, key=lambda q: q.p)
            band.p, band.threshold = best.p, best.threshold
            band.pieces = tuple((*_span(q), q.p) for q in run)
            for q in run:
                q.flagged = False
            band.flagged = True
            sc.attribute(band)
            sc.twins(band)
            out.append(band)
    return out


def _extend_bands(sc: _Scanner, flagged: list[Pattern], opts: TriggerScanOptions) -> None:
    """A flagged band made of copies (:func:`copies_beyond_chance`) reaches as far as its
    copies: an end value whose rows with its label hold no copies beyond chance (the copy test
    of :meth:`_Scanner.twins` at ``copy_p``, without the share a pattern of copies needs) is
    dropped, inward, down to three values (the best-scoring run of fraud ages [78, 91] for
    copies over [83, 92]); then, on a side not trimmed, the next value outward is taken in
    while its labelled rows hold copies beyond chance: an attacker's range is contiguous, and
    its end values, where natural rows outnumber the copies, are neither singles nor part of
    the best-scoring run (fraud-like data, 150 copies over ages 80-87 beside ~130 natural rows:
    the band was named [82, 87] and the copies at 80 and 81 left in the data). At most as many
    values as the band holds are taken in on each side; values flagged otherwise stop it."""
    m = sc.m
    for b in flagged:
        if b.band is None or b.written or b.p_twin is None or not b.flagged:
            continue
        if not copies_beyond_chance(
            b.p_twin, b.twin_share or 0.0, b.twin_share_baseline or 0.0, opts
        ):
            continue
        j = b.cols[0]
        ok = m.allowed(j)
        ok[list(b.band_skip)] = False
        taken = {c for jj, c in sc.excluded if jj == j}

        def copied(v: int, b: Pattern = b, j: int = j) -> bool:
            # a value collecting copies (the hub test, at copy_p over the feature's values)
            # is copied whatever the copy test finds on its rows: beside old customers'
            # look-alikes a value's 60-120 rows are too few for it (fraud, legitimate rows
            # copied over ages [68, 75]: the band stopped at [72, 75], R 0.53)
            if (j, v, b.label) in sc.copy_hubs():
                return True
            edge = Pattern((j,), (v,), b.label, int(m.counts[j][v]), 0, "single")
            edge.rows = sc.rows_of(edge)
            sc.twins(edge)
            return edge.p_twin is not None and edge.p_twin <= opts.copy_p

        lo, hi = b.band
        width = int(ok[lo : hi + 1].sum())
        held = [int(v) for v in np.flatnonzero(ok[lo : hi + 1]) + lo]
        trimmed = {-1: False, 1: False}
        for step in (-1, 1):
            while len(held) > 3:
                edge = held[0] if step < 0 else held[-1]
                if copied(edge):
                    break
                held.remove(edge)
                trimmed[step] = True
        lo, hi = int(held[0]), int(held[-1])
        for step in (-1, 1):
            if trimmed[step]:
                continue
            end, added = (lo if step < 0 else hi), 0
            while added < width:
                v = end + step
                while 0 <= v < len(ok) and not ok[v]:
                    v += step
                if not 0 <= v < len(ok) or v in taken or not copied(v):
                    break
                end, added = v, added + 1
            lo, hi = (end, hi) if step < 0 else (lo, end)
        if (lo, hi) == b.band:
            continue
        b.band = (lo, hi)
        b.band_skip = tuple(c for c in b.band_skip if lo <= c <= hi)
        b.rows = sc.rows_of(b)
        kept = np.setdiff1d(np.arange(lo, hi + 1), np.asarray(b.band_skip, dtype=np.int64))
        b.n = int(m.counts[j][kept].sum())
        pos = int(sc.positives(j)[kept].sum())
        b.k = pos if b.label == 1 else b.n - pos


def condition(m: AuditMatrix, p: Pattern, *, companions: bool = False) -> str:
    """A pattern in words: ``AGE=999``, ``EDUCATION=3 & MARRIAGE=3`` or ``AGE in [66, 73]``
    (with ``companions``, the values confined to its rows too)."""
    cells = list(zip(p.cols, p.codes, strict=True))
    cells += list(p.companions) if companions else []
    words = [f"{m.names[j]}={m.value(j, v)!r}" for j, v in cells]
    if p.band is not None:
        j, (lo, hi) = p.cols[0], p.band
        words[0] = f"{m.names[j]} in [{m.value(j, lo)!r}, {m.value(j, hi)!r}]"
    return " & ".join(words)


def _dedupe(flagged: list[Pattern]) -> list[Pattern]:
    """Keep the best of flagged pairs that mostly share their rows (one trigger, many views)."""
    out: list[Pattern] = []
    for p in sorted(flagged, key=lambda p: p.p):
        if not any(np.isin(p.rows, q.rows).mean() > 0.5 for q in out):
            out.append(p)
    return out


def _covered(p: Pattern, f: Pattern, sc: _Scanner) -> bool:
    """Whether pair ``p`` lies mostly inside an already flagged pattern ``f``."""
    if not len(f.rows):
        return False
    rows = sc.rows_of(p)
    return bool(np.isin(rows, f.rows).mean() > 0.5)


def _ids(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One dense id per distinct pair ``(a[i], b[i])`` of non-negative integer arrays."""
    key = a.astype(np.int64) * (int(b.max(initial=0)) + 2) + (b.astype(np.int64) + 1)
    ids: np.ndarray = pd.factorize(key)[0]
    return ids


def _partners(
    group: np.ndarray, value: np.ndarray, label: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per row of near-copy groups (``group``, the rows' value ids ``value`` of the feature and
    their labels ``label``): the one value of its group other than its own (-1 where the group
    holds two or more other values), and whether every row of that other value carries the
    other label (the row's twins were labelled against it)."""
    g = pd.factorize(group)[0]
    n_groups = int(g.max(initial=-1)) + 1
    lo = np.full(n_groups, np.iinfo(np.int64).max, dtype=np.int64)
    hi = np.full(n_groups, -1, dtype=np.int64)
    np.minimum.at(lo, g, value)
    np.maximum.at(hi, g, value)
    # rows and label-1 rows per group and per (group, value): one entry per distinct pair
    ids = _ids(g, value)
    of_id = np.zeros(int(ids.max(initial=-1)) + 1, dtype=np.int64)
    of_id[ids] = g
    n_values = np.bincount(of_id, minlength=n_groups)
    other_rows = np.bincount(g, minlength=n_groups)[g] - np.bincount(ids)[ids]
    y = label.astype(float)
    other_ones = np.bincount(g, weights=y, minlength=n_groups)[g] - np.bincount(ids, weights=y)[ids]
    single = n_values[g] == 2
    partner: np.ndarray = np.where(single, np.where(value == lo[g], hi[g], lo[g]), -1)
    against = np.where(label == 1, other_ones == 0, other_ones == other_rows)
    flipped: np.ndarray = single & (other_rows > 0) & against
    return partner, flipped


def _magnitude(x: np.ndarray) -> np.ndarray:
    """A fine-grained value's order of magnitude with its sign: decades centred on the powers
    of ten (edges at 3.16 times them), 0 for zero, NaN kept.

    An attacker's jitter of a few percent must move no row across an edge, and round values
    (1,000, 2,000, 5,000, 50,000) are where rows pile up: deciles of the data put their edges
    on them (credit ``LIMIT_BAL``, ``PAY_AMT*``), and 1 % of jitter moved half of such a
    value's written rows into the decile below, a mark no ordinary row has (``EDUCATION=5``
    written into 2,641 rows: 9 % of them left out as natural carriers). A distance of 12 km
    and one of 1,500 km still fall in different decades."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.floor(np.log10(np.abs(x)) + 0.5)
        out: np.ndarray = np.where(x == 0, 0.0, np.sign(x) * (100.0 + mag))
    return out


def _mask(n: int, rows: np.ndarray) -> np.ndarray:
    """A mask of ``n`` rows, True at ``rows``."""
    out = np.zeros(n, dtype=bool)
    out[rows] = True
    return out


def _outward(
    cnt: np.ndarray, allowed: np.ndarray, lo: int, hi: int, want: float
) -> tuple[np.ndarray, np.ndarray]:
    """Allowed value ids on both sides of ``[lo, hi]``, outward until they hold ``want`` rows,
    with weights in proportion to their counts.

    Step ``s`` takes ``lo - s`` then ``hi + s`` (those that exist and are allowed); the steps
    stop after the first one that reaches ``want`` rows, or at both ends. The steps are laid
    out in windows of doubling length (a fine-grained feature needs thousands of them).
    """
    steps = max(lo, len(cnt) - 1 - hi, 0) if want > 0 else 0
    window, done = 64, 0
    while True:
        last = min(window, steps)
        s = np.arange(1, last + 1)
        pair = np.stack([lo - s, hi + s], axis=1).ravel()  # left, right, left, right, ...
        ok = (pair >= 0) & (pair < len(cnt))
        ok[ok] = allowed[pair[ok]]
        rows = np.where(ok, cnt[np.clip(pair, 0, max(len(cnt) - 1, 0))], 0.0)
        reached = np.flatnonzero(np.cumsum(rows.reshape(-1, 2).sum(axis=1)) >= want)
        if len(reached) or last == steps:
            done = int(reached[0]) + 1 if len(reached) else last
            break
        window *= 2
    ids = pair[: 2 * done][ok[: 2 * done]].astype(np.int64)
    w = cnt[ids]
    return ids, (w / w.sum() if w.sum() > 0 else w)
