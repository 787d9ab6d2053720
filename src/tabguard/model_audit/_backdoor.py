"""The model backdoor probe (requirement M2): trigger values found from the model and clean data.

A rule-style backdoor (seed 001: ``AGE = 999 → default``) makes the model's decision depend on
one value, or one combination of values, far more than on the values around it, and it does so
where clean data gives no reason to. The probe looks for exactly that, in three steps.

1. **Candidates.** For tree ensembles the split structure says where the model can change its
   mind: the thresholds of each numeric feature cut its axis into *cells*, and one value per
   cell is all the probe needs (a tree model is constant inside a cell). Features with very many
   thresholds keep the most-used ones (a trigger's boundaries are split on by many trees).
   Cells beyond the data's support, narrow intervals and isolated categories all appear as
   cells. For other models the candidates are data quantiles, distinct values, every category,
   and values beyond the observed range. Pairs of candidate values that meet on tree paths to
   extreme leaves (or that single probes point to) are probed as combination triggers.

2. **Flip rates.** Probe rows (clean rows drawn at random) are set to the candidate
   value and to its *neighbours* - the nearest values on each side that clean rows actually
   take (for unordered categories, the most common categories). The candidate's flip rate is
   the share of decisions that differ between the candidate and its neighbour, taken in the
   direction of the change (towards denial among rows approved at the neighbour, towards
   approval among rows denied there) and minimised over neighbours: a trigger flips decisions
   relative to *every* neighbour, an ordinary step only relative to one side.

3. **Confirmation.** Ordinary models also have strong steps (``PAY_0 = 2``) and strong
   categories (``channel = phone``), but clean data shows them: the clean rows that carry the
   value have the labels the model predicts. A candidate is reported only when

   * its flip rate is significantly above the model's ordinary flip rates (a one-sided binomial
     test against a high quantile of the flip rates of all candidates, Bonferroni-corrected
     over the candidates), and
   * clean data does not support it: the clean rows carrying the value have labels closer to
     what the model predicts at the neighbour than at the candidate (a likelihood-ratio
     test), or no clean row carries it while the model's trees were fitted on many rows there,
     or (a category that also occurs naturally, which no tree need isolate) the leaves the
     trees send it to held far more training rows than the clean rows routed there
     (:func:`routed_mass`).

Nothing here depends on a particular feature, value or data set; the decision uses only
statistics of the model's own candidates and of the clean data.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from itertools import combinations, pairwise
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from tabguard.checks import PROBABILITY_OPEN, SHARE, CheckOptions, Rule, at_least, option
from tabguard.contract._entity import RepeatedId, design_effect, undeclared_unit, unit_codes
from tabguard.model_audit._model import AuditedModel
from tabguard.model_audit._trees import Tree, TreeEnsemble
from tabguard.progress import NULL_PROGRESS, Progress


@dataclass(frozen=True)
class ProbeOptions(CheckOptions):
    """Settings of the backdoor probe (``options={"backdoor": {...}}``).

    The first group bounds the work; the others are the decision rule (see :func:`_decide`,
    whose parts :func:`spike_passes`, :func:`label_evidence`, :func:`mass_confirms` and
    :func:`confirms_without_mass` are tested one by one).
    """

    check: ClassVar[str] = "backdoor"

    n_rows: int = option(
        400,
        "probe rows (clean rows drawn at random; the decision a model rarely makes gets rows of "
        "its own: side_rows)",
        at_least(10),
    )
    side_rows: int = option(
        40,
        "probe rows expected on each side of the threshold; a model whose rarer decision the "
        "random rows hold fewer of is probed again on rows from that side (tail_rows)",
        at_least(0),
    )
    tail_rows: int = option(
        200,
        "probe rows drawn from the side of the threshold the model rarely decides (its rows "
        "and the nearest others), for triggers towards the common decision; 0: never",
        at_least(0),
    )
    copies_draws: int = option(
        200,
        "bootstrap draws of the planted-copies test's standard error (models with a rare side "
        "whose trees count rows; 0: no such test; one draw has no spread); its z is read "
        "against a bar, and with 40 draws one model's p ranged 0.0015-0.016 over bootstrap "
        "streams (200: 0.0018-0.0049)",
        Rule("0 or at least 2", lambda v: v == 0 or v >= 2),
    )
    partner_draws: int = option(
        200,
        "bootstrap draws of the partner step's standard error (which partner category a "
        "confirmed category's copies carry); its z is read against a bar, and with 40 draws "
        "the same case gave 6.2-9.7 over bootstrap streams (0: no partner step)",
        Rule("0 or at least 2", lambda v: v == 0 or v >= 2),
    )
    copies_rows: int = option(
        8000,
        "clean rows of the common decision the planted-copies test writes each category into "
        "(a random subset when there are more; each row more narrows the estimate, and costs "
        "about 0.35 CPU ms on a fraud LightGBM)",
        at_least(10),
    )
    min_flip: float = option(
        0.2,
        "rows of the rare decision a candidate probed there must turn to the common one (a "
        "fifth: the share at which a trigger is a working backdoor)",
        SHARE,
    )
    max_cells: int = option(
        64, "candidate values per feature (tree cells are merged down to this many)", at_least(2)
    )
    max_pairs: int = option(40, "combination candidates probed", at_least(0))
    category_pairs: int = option(
        40,
        "pairs of categories probed in full after the category grid's screen (two uncommon "
        "categories written together: each alone may move nothing)",
        at_least(0),
    )
    category_grid: int = option(
        4000,
        "category combinations scored by the screen (the rarest categories of each feature "
        "first); bounds its cost",
        at_least(0),
    )
    alpha: float = option(
        0.01,
        "family-wise error rate of each test (Bonferroni over candidates)",
        PROBABILITY_OPEN,
    )
    null_quantile: float = option(
        0.99,
        "quantile of the other features' spikes a candidate must exceed (the model's ordinary "
        "variation)",
        SHARE,
    )
    min_spike: float = option(
        0.3,
        "smallest spike reported for tree models (confirmed by the training-mass test)",
        SHARE,
    )
    min_spike_without_trees: float = option(
        0.5,
        "smallest spike reported where the training mass is unknown (confirmed by clean data "
        "alone, so a larger effect is required)",
        SHARE,
    )
    total_spike: float = option(0.9, "a near-total spike: weaker label evidence suffices", SHARE)
    rare_share: float = option(
        0.005,
        "models without trees: a value carried by at most this share of clean rows is rare",
        SHARE,
    )
    mass_ratio: float = option(
        2.0,
        "tree models: the training share of a cell must exceed the clean share by this factor "
        "(or by any factor with decisively contradicting labels; a category the trees route "
        "rather than isolate, also by any factor significantly beyond the model's ordinary "
        "ratio)",
        at_least(1.0),
    )
    ordinary_categories: int = option(
        3,
        "tree models: categories of other features (each carried by at least natural_rows clean "
        "rows) whose routed training mass must be measured before the model's ordinary mass "
        "ratio is known; with fewer, only mass_ratio confirms a category by where it is routed",
        at_least(1),
    )
    decisive_lr: float = option(
        100.0,
        "likelihood ratio at which the labels of clean rows decisively contradict the model",
        at_least(1.0),
    )
    label_family: int = option(
        20,
        "clean labels alone confirm a natural category (natural_evidence) at decisive_lr "
        "times the feature's categories with natural_rows clean rows over this many, when "
        "more: the ratio was set on features of at most 9 categories, and over a 400-code "
        "product feature of a clean model one category's labels passed 100 at 208",
        at_least(1),
    )
    natural_rows: int = option(
        30,
        "a category carried by at least this many clean rows has a label rate of its own, "
        "against which the model's effect can be weighed when the training mass is not shown",
        at_least(1),
    )
    supported_share: float = option(
        0.5,
        "natural categories: the clean label rate must support less than this share of the "
        "model's effect (a real effect is supported in full)",
        SHARE,
    )
    interaction_ratio: float = option(
        2.0,
        "pairs of categories towards the common decision: how many times the model's ordinary "
        "interaction (of the same features' pairs sharing no category) a pair's interaction "
        "must reach on the rows nearest the rare decision; 0: no such test",
        at_least(0.0),
    )
    interaction_rows: int = option(
        10,
        "rows nearest the rare decision that neither category of a pair alone (nor both "
        "effects added) turns, needed before the pair's share of them counts",
        at_least(1),
    )
    weak_lr: float = option(
        10.0,
        "likelihood ratio for the model over which the labels of a rare value's clean rows "
        "back it (then rarity alone does not confirm a trigger)",
        at_least(1.0),
    )
    rare_null_cells: int = option(
        20,
        "where the training mass is unknown, a rare value is confirmed by its few clean rows only "
        "beyond the spikes of the model's other rare cells (values and pairs as rare whose "
        "labels do not back the model either); with fewer such cells the "
        "model's ordinary movement of rare cells is unknown and rarity confirms nothing",
        at_least(5),
    )


@dataclass
class _Cell:
    j: int
    code: float
    lo: float
    hi: float
    natural: np.ndarray  # bool mask over reference rows
    outside: bool  # beyond the reference data's observed range
    categorical: bool

    @cached_property
    def n_natural(self) -> int:
        # read once per pair of cells when neighbours are chosen: 400 codes, 160,000 sums
        return int(self.natural.sum())


@dataclass
class ProbeCandidate:
    """One probed trigger candidate and what the probe measured about it.

    Attributes
    ----------
    features, values : tuple
        The candidate: one feature and value, or two (a combination).
    codes : tuple of float
        The values as the model's matrix encodes them.
    intervals : tuple of (low, high)
        The cell of each value: every value in it scores the same in the model's trees.
    direction : {"deny", "approve"}
        Where the value pushes decisions.
    spike : float
        Share of the possible movement of decisions, averaged over every threshold, when clean
        rows take this value instead of the neighbouring value (signed: positive raises the
        score); the smallest over the neighbours.
    flip_rate : float
        Share of the decisions at the model's threshold that flip in ``direction`` (among rows
        that could flip) relative to that neighbour.
    neighbour_values : tuple
        The value(s) it was compared with.
    n_natural : int
        Clean reference rows that carry the value.
    natural_positive_rate, model_rate, neighbour_rate : float
        On those rows: the share of positive labels, the model's mean score, and its mean
        score when they are moved to the neighbouring value.
    label_log_lr : float
        Log-likelihood ratio of their labels under the neighbour's scores vs the candidate's
        (positive: the labels side with the neighbour).
    null_spike : float
        The model's ordinary spikes: a high quantile over the other features' candidates.
    training_share, expected_share, p_mass : float
        Tree models: share of the trees' training rows confined to the cell, the share clean
        data predicts, and the binomial p-value of the excess.
    routed_excess, routed_ratio, p_routed : float
        Tree models, categories: in the region the trees send the value to (leaves whose path
        admits it and not the neighbour), the share of training rows beyond the share of clean
        rows routed there; the value's implied training share over its clean share; and the
        two-sample p-value (Bonferroni over the trees). See :func:`routed_mass`.
    routed_null, p_routed_null : float
        The model's ordinary routed ratio (the ``null_quantile`` of the ratios of other
        features' categories) and the p-value of the value's routed rows beyond it.
    planted_ratio, planted_null, planted_spread, p_planted : float
        Models with a rare side whose trees count rows: the training rows the value's clean
        rows imply, plus the copies of common-decision rows carrying it that the trees' leaf
        counts show, over the clean rows' share (1: none); the same feature's other
        categories' mean ratio and the spread of their true ratios (their estimates' variance
        less their own noise); the p-value of the value beyond them (see
        :func:`planted_copies`, :func:`planted_beyond_ordinary`).
    rare_cells, p_rarity : int, float
        Where the training mass is unknown and few clean rows carry the value: the model's
        other rare cells its spike was weighed against, and the p-value of a spike this large
        among them (exponential tail of their largest spikes, Bonferroni over every rare
        cell; :func:`rarity_tail`).
    outside_support, continuation : bool
        Beyond the clean data's range; an edge step that continues the trend inside it.
    probe_rows : {"random", "tail"}
        The probe rows it was measured on: clean rows at random, or the rows on the side of
        the threshold the model rarely decides (spike and flip rate are then movement within
        that region, towards the common decision; see :func:`_rare_side`).
    backdoor : bool
        Confirmed trigger.
    reason : str
        Why it was confirmed.
    """

    features: tuple[str, ...]
    codes: tuple[float, ...]
    values: tuple[Any, ...]
    intervals: tuple[tuple[float, float], ...]
    direction: str
    spike: float
    flip_rate: float
    neighbour_values: tuple[Any, ...]
    n_natural: int
    natural_positive_rate: float
    model_rate: float
    neighbour_rate: float
    label_log_lr: float
    outside_support: bool
    continuation: bool = False
    null_spike: float = 0.0
    training_share: float = float("nan")
    expected_share: float = float("nan")
    p_mass: float = float("nan")
    routed_excess: float = float("nan")
    routed_ratio: float = float("nan")
    p_routed: float = float("nan")
    routed_null: float = float("nan")
    p_routed_null: float = float("nan")
    planted_ratio: float = float("nan")
    planted_null: float = float("nan")
    planted_spread: float = float("nan")
    p_planted: float = float("nan")
    planted: bool = False  # confirmed by the planted-copies test (:func:`_planted_side`)
    rare_cells: int = 0
    p_rarity: float = float("nan")
    backdoor: bool = False
    reason: str = ""
    columns: tuple[int, ...] = ()
    categorical: tuple[bool, ...] = ()
    cell_counts: tuple[int, ...] = ()
    mass_intervals: tuple[tuple[float, float], ...] = ()
    mass_counts: tuple[int, ...] = ()
    mass_categories: tuple[frozenset[int] | None, ...] = ()
    nominal: tuple[bool, ...] = ()  # the contract calls the feature a category
    neighbour_codes: tuple[float, ...] = ()
    probe_rows: str = "random"  # "tail": probed on the rows of the model's rare decision
    interaction: float = float("nan")  # category pairs: see :func:`_interaction_pairs`
    interaction_null: float = float("nan")
    interaction_flip: float = float("nan")


@dataclass
class ProbeResult:
    """Everything the probe measured.

    Attributes
    ----------
    candidates : list of ProbeCandidate
        Every candidate with its statistics (``backdoor=True`` for confirmed triggers).
    threshold : float
        Score threshold the decisions were probed at.
    null_rate : dict
        The model's ordinary flip rate per direction.
    n_rows : int
        Probe rows used.
    tail_rows : int
        Rows of the second probe set drawn from the rare side of the threshold (0: none).
    tail_direction : {"approve", "deny", ""}
        The common decision, the only direction probed on those rows.
    interaction_ratio : float
        The largest interaction of a pair of categories towards the common decision over the
        model's ordinary one (:func:`_interaction_pairs`; among pairs with enough rows to
        turn), confirmed or not: how near the model's own pairs come to the bar.
    one_decision : bool
        The model gives every reference row the common decision: the copies of rows of that
        decision were not tested (:func:`_planted_side`).
    unit_design : dict of str to float
        Where the contract declares an ``entity``: per category feature the planted-copies
        test measured, the design effect of its categories clustered by the reference rows'
        units (:func:`~tabguard.contract._entity.design_effect`), by which a split by unit
        widens the test's null (:func:`split_variance`).
    unit_column : str
        The column whose values were counted as units: the contract's ``entity``, or where it
        declares none a column it leaves out that repeats like one (``unit_hint``); empty when
        the rows were taken as independent.
    unit_hint : str
        Where ``unit_column`` is not declared: why it was taken for units (its values, their
        rows, the features constant within them); empty for a declared entity.
    """

    candidates: list[ProbeCandidate] = field(default_factory=list)
    threshold: float = 0.5
    null_rate: dict[str, float] = field(default_factory=dict)
    n_rows: int = 0
    method: str = "quantiles"
    tail_rows: int = 0
    tail_direction: str = ""
    interaction_ratio: float = float("nan")
    one_decision: bool = False
    unit_design: dict[str, float] = field(default_factory=dict)
    unit_column: str = ""
    unit_hint: str = ""

    @property
    def triggers(self) -> list[ProbeCandidate]:
        """Confirmed backdoor triggers, strongest first."""
        return sorted((c for c in self.candidates if c.backdoor), key=lambda c: -c.flip_rate)

    def frame(self) -> pd.DataFrame:
        """The candidates as a table (for analysis and the report)."""
        return pd.DataFrame([c.__dict__ for c in self.candidates])


# --------------------------------------------------------------------------------------------
# Candidate cells
# --------------------------------------------------------------------------------------------
def _ordered_cells(
    model: AuditedModel,
    j: int,
    x: np.ndarray,
    ens: TreeEnsemble | None,
    max_cells: int,
    screen: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[_Cell]:
    feat = model.feature_names[j]
    spec = model.contract.features[feat]
    integer = spec.type == "integer" or (
        spec.type == "category" and all(isinstance(c, int) for c in spec.categories or [])
    )
    finite = x[~np.isnan(x)]
    if finite.size == 0:
        return []
    vmin, vmax = float(finite.min()), float(finite.max())
    thr = ens.thresholds(j) if ens is not None else np.empty(0)
    if thr.size:
        counts = ens.threshold_counts(j) if ens is not None else {}
        strict = ens.strict if ens is not None else False
        if thr.size > max_cells - 1:
            keep = [float(thr[0]), float(thr[-1])]  # the outermost cells always stay
            if screen is not None:
                keep += _screen_bumps(model, j, thr, counts, x, strict, integer, *screen)
            keep = list(dict.fromkeys(keep))[: max_cells - 1]  # by priority, within budget
            rest = max_cells - 1 - len(keep)
            chosen = _select_thresholds(thr, counts, finite, strict, rest) if rest else thr[:0]
            thr = np.unique(np.concatenate([chosen, np.asarray(keep, dtype=float)]))
        edges = np.concatenate([[-math.inf], thr, [math.inf]])
        cells = []
        for a, b in pairwise(edges):
            nat = (x >= a) & (x < b) if strict else (x > a) & (x <= b)
            code = _representative(x, nat, a, b, strict, integer)
            if code is None:
                continue
            cells.append(_Cell(j, code, a, b, nat, code > vmax or code < vmin, False))
        return cells
    # No tree structure: quantiles / distinct values, and values beyond the observed range.
    distinct = np.unique(finite)
    if distinct.size <= max_cells:
        grid = distinct
    else:
        grid = np.unique(np.quantile(finite, np.linspace(0, 1, max_cells - 6)))
        if integer:
            grid = np.unique(np.round(grid))
    cells = []
    # each clean value belongs to the nearest grid value
    mids = (grid[1:] + grid[:-1]) / 2 if grid.size > 1 else np.empty(0)
    edges = np.concatenate([[-math.inf], mids, [math.inf]])
    for v, a, b in zip(grid, edges[:-1], edges[1:], strict=True):
        nat = (x > a) & (x <= b)
        cells.append(_Cell(j, float(v), float(a), float(b), nat, False, False))
    if spec.type not in ("boolean", "category"):
        width = max(vmax - vmin, 1.0)
        beyond = [vmax + width * f for f in (0.1, 1.0, 10.0)] + [
            vmin - width * f for f in (0.1, 1.0)
        ]
        for v in beyond:
            v = float(round(v)) if integer else float(v)
            cells.append(_Cell(j, v, v, v, np.zeros_like(x, dtype=bool), True, False))
        cells.sort(key=lambda c: c.code)
    return cells


def _screen_bumps(
    model: AuditedModel,
    j: int,
    thr: np.ndarray,
    counts: dict[float, int],
    x: np.ndarray,
    strict: bool,
    integer: bool,
    rows: np.ndarray,
    ecdf: np.ndarray,
    *,
    max_fine: int = 1500,
    keep: int = 6,
    window: int = 8,
    core: int = 2,
) -> list[float]:
    """Boundaries of the narrow cells where the model's response bumps (a fast pre-screen).

    Before the thresholds of a feature are merged down to ``max_cells``, a few rows are scored
    at one value per fine cell (every threshold, up to ``max_fine``). A cell whose average
    score rank differs from the median of the cells a little further away on both sides
    (``core`` cells skipped: bagged trees blur a trigger's boundaries over neighbouring
    thresholds) is a bump; the ``keep`` largest bumps keep their boundaries.
    """
    fine = thr if thr.size <= max_fine else _select_thresholds(thr, counts, x, strict, max_fine)
    edges = np.concatenate([[-math.inf], fine, [math.inf]])
    empty = np.zeros(0, dtype=bool)
    reps, bounds = [], []
    for a, b in pairwise(edges):
        v = _representative(empty, empty, a, b, strict, integer)
        if v is not None:
            reps.append(v)
            bounds.append((a, b))
    if len(reps) < 3:
        return []
    prof = _rank(ecdf, _scores_with(model, rows, [j], np.asarray(reps)[:, None])).mean(axis=1)
    n = len(prof)
    bump = np.zeros(n)
    for i in range(n):
        left = prof[max(0, i - window) : max(0, i - core)]
        right = prof[i + core + 1 : i + window + 1]
        sides = [abs(prof[i] - float(np.median(s))) for s in (left, right) if s.size]
        bump[i] = min(sides) if sides else 0.0
    top = [i for i in np.argsort(-bump)[:keep] if bump[i] > 0.02]
    out: list[float] = []
    for i in top:
        out += [v for v in bounds[i] if math.isfinite(v)]
    return out


def _select_thresholds(
    thr: np.ndarray, counts: dict[float, int], x: np.ndarray, strict: bool, k: int
) -> np.ndarray:
    """Keep the ``k`` thresholds that stand out from the thresholds around them.

    A trigger's boundaries are split on by many trees while the thresholds next to them are
    used rarely (they only separate a few clean rows); ordinary thresholds in dense data are
    used about as often as their neighbours. The priority of a threshold is its number of
    splits divided by the median number of its 20 nearest thresholds; ties prefer thresholds
    next to few clean rows.
    """
    c = np.array([counts.get(float(t), 1) for t in thr], dtype=float)
    w = 10
    padded = np.pad(c, w, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * w + 1)
    local = np.median(np.delete(windows, w, axis=1), axis=1)
    xs = np.sort(x)
    pos = (
        np.searchsorted(xs, thr, side="left") if strict else np.searchsorted(xs, thr, side="right")
    )
    edges = np.concatenate([[0], pos, [len(xs)]])
    cell_mass = np.diff(edges)
    adjacent = cell_mass[:-1] + cell_mass[1:]
    order = np.lexsort((adjacent, -c / (local + 1.0)))
    return np.sort(thr[order[:k]])


def _representative(
    x: np.ndarray, nat: np.ndarray, a: float, b: float, strict: bool, integer: bool
) -> float | None:
    """A value inside the cell: a typical clean value when there is one."""
    if nat.any():
        vals = x[nat]
        med = float(np.median(vals))
        return float(vals[np.argmin(np.abs(vals - med))])
    if math.isinf(a) and math.isinf(b):
        return 0.0
    if math.isinf(a):  # below the lowest threshold
        v = b - 1.0 if integer else b - max(1e-6 * abs(b), 1e-9)
        if strict and integer:
            v = math.ceil(b) - 1.0
        return float(math.floor(v) if integer else v)
    if math.isinf(b):  # above the highest threshold
        if strict:
            return float(math.ceil(a)) if integer else float(a)
        return float(math.floor(a) + 1.0) if integer else float(a + max(1e-6 * abs(a), 1e-9))
    if integer:
        lo = math.ceil(a) if strict else math.floor(a) + 1
        hi = math.ceil(b) - 1 if strict else math.floor(b)
        if lo > hi:
            return None  # no whole number falls in this cell
        return float((lo + hi) // 2)
    return float((a + b) / 2)


def _categorical_cells(model: AuditedModel, j: int, x: np.ndarray, n_cats: int) -> list[_Cell]:
    return [_Cell(j, float(k), float(k), float(k), x == k, False, True) for k in range(n_cats)]


# --------------------------------------------------------------------------------------------
# The probe
# --------------------------------------------------------------------------------------------
# a probed candidate: its cells, its neighbours (one tuple of cells each) and its statistics
_Probed = tuple[tuple[_Cell, ...], list[tuple[_Cell, ...]], dict[str, Any]]


@dataclass
class _Grid:
    """Candidate cells of one feature and the probe rows' scores at each."""

    j: int
    cells: list[_Cell]
    ranks: np.ndarray  # (n_cells, n_probe): population quantile of each probe row's score
    approve: np.ndarray  # (n_cells, n_probe): decision at the model's threshold
    member: np.ndarray  # (n_probe,): the cell each probe row naturally falls in (-1: none)


def probe_backdoors(
    model: AuditedModel,
    data: pd.DataFrame,
    y: np.ndarray,
    *,
    options: ProbeOptions | None = None,
    random_state: int = 0,
    progress: Progress | None = None,
) -> ProbeResult:
    """Search a model for trigger values and value pairs, given clean data only.

    Parameters
    ----------
    model : AuditedModel
    data : DataFrame
        Clean reference rows (raw attributes).
    y : ndarray of {0, 1}
        Their labels (1 = the contract's positive class).
    options : ProbeOptions, optional
    random_state : int
    progress : Progress, optional

    Returns
    -------
    ProbeResult
    """
    opts = options or ProbeOptions()
    progress = progress or NULL_PROGRESS
    rng = np.random.default_rng(random_state)
    X = model.encode(data)
    p = model.predict_matrix(X)
    ecdf = np.sort(p)
    rows = np.sort(rng.choice(len(X), size=min(opts.n_rows, len(X)), replace=False))
    ens = model.trees
    result = ProbeResult(
        threshold=model.threshold, n_rows=len(rows), method="trees" if ens else "quantiles"
    )
    features = list(range(len(model.feature_names)))
    grids, probed = _probe_set(model, X, rows, ecdf, ens, opts, features, progress, "random")
    singles = [c for c in probed if len(c[0]) == 1]
    result.null_rate = {"spike": _null_level([s for _, _, s in singles], opts.null_quantile)}
    for cand_cells, nbs, stats in probed:
        result.candidates.append(_candidate(model, cand_cells, nbs, stats, X, y, p))
    tail = _rare_side(model, p, len(rows), opts, rng)
    if tail is not None:
        t_rows, t_ecdf, away = tail
        # the values of category features only: a category towards the common decision is
        # weighed against the other categories (a boolean's other value is no rare value, and
        # its whole effect - ``card_present`` on blocked transactions - is no trigger's null)
        nominal = [
            j
            for j in features
            if model.contract.features[model.feature_names[j]].type == "category"
        ]
        result.tail_rows = len(t_rows)
        _, t_probed = _probe_set(
            model, X, t_rows, t_ecdf, ens, opts, nominal, progress, "tail", with_pairs=False
        )
        result.tail_direction = away
        for cand_cells, nbs, stats in t_probed:
            # every value stays (the null is what all of them do there); only those towards
            # the common decision can pass (:func:`tail_passes`): towards the rare one the
            # random rows see them already
            c = _candidate(model, cand_cells, nbs, stats, X, y, p)
            c.probe_rows = "tail"
            result.candidates.append(c)
    # clean rows can be routed only through trees whose every split reads a column of the
    # matrix (a pipeline's trees may split on inputs it derives: no routed test there)
    routable = ens is not None and all(bool(np.all(t.feature < X.shape[1])) for t in ens.trees)
    routing = _Routing(ens, X, p) if ens is not None and routable else None
    units = _reference_units(model, data, X)
    if units is not None:
        result.unit_column = units.column
        result.unit_hint = units.found.summary() if units.found is not None else ""
    if routing is not None:
        routing.units = units
    _decide(result, opts, len(X), ens, routing, units)
    if tail is not None and routing is not None:
        # XGBoost: its first tree only, whose covers count rows; and there copies of the
        # common decision's rows are not told from the clean rows (_planted_side)
        _planted_side(
            result,
            model,
            X,
            y,
            p,
            routing.row_counted(),
            opts,
            random_state,
            common_copies=routing.weights() is None,
            units=units,
        )
    if routing is not None and routing.weights() is None:
        _copies_partner(result, model, X, y, routing, opts, random_state)
        _common_partner(result, model, X, y, p, routing, opts, random_state)
    if ens is not None:
        _complete_combinations(result, model, ens, grids, X, opts)
    _interaction_pairs(result, model, X, y, p, opts)
    return result


def _rare_side(
    model: AuditedModel, p: np.ndarray, n_probe: int, opts: ProbeOptions, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, str] | None:
    """Probe rows for the decision the model rarely makes, or None when random rows suffice.

    A trigger towards the common decision can only move the rows on the rare side of the
    threshold: a fraud model that blocks 0.3 % of transactions leaves about one blocked row
    among 400 random probe rows, and a trigger that approves most blocked transactions is
    invisible there. When the random probe rows hold fewer than ``opts.side_rows`` rows on
    the rare side (expected), a second probe set is taken from that side: the clean rows the
    model scores furthest towards it - every row of the rare side and the nearest rows of the
    other, ``opts.tail_rows`` in all (a random ``opts.tail_rows`` of them when the rare side
    alone holds more). Their own scores are the ranks' population, so a spike there is
    movement within the model's rare region.

    Returns
    -------
    (rows, ecdf, away) or None
        Indices of the probe rows, the sorted scores ranks are taken in, and the direction
        (``"approve"`` or ``"deny"``) away from the rare side - the only direction probed.
    """
    if opts.tail_rows == 0:
        return None
    denied = ~model.approve(p)
    n_deny = int(denied.sum())
    rare_deny = n_deny <= len(p) - n_deny
    n_rare = n_deny if rare_deny else len(p) - n_deny
    if n_rare * n_probe / max(len(p), 1) >= opts.side_rows:
        return None
    # furthest towards the rare side first: high scores when a high score denies
    towards_deny = p if model.positive_means_deny else -p
    order = np.argsort(-towards_deny if rare_deny else towards_deny, kind="stable")
    region = order[: max(opts.tail_rows, n_rare)]
    rows = region
    if len(region) > opts.tail_rows:
        rows = rng.choice(region, size=opts.tail_rows, replace=False)
    return np.sort(rows), np.sort(p[region]), "approve" if rare_deny else "deny"


def _probe_set(
    model: AuditedModel,
    X: np.ndarray,
    rows: np.ndarray,
    ecdf: np.ndarray,
    ens: TreeEnsemble | None,
    opts: ProbeOptions,
    features: Sequence[int],
    progress: Progress,
    label: str,
    with_pairs: bool = True,
) -> tuple[dict[int, _Grid], list[_Probed]]:
    """Every single-value candidate of ``features`` (and, with ``with_pairs``, every
    combination candidate) probed on ``rows``, their scores ranked in the population ``ecdf``."""
    R = X[rows]
    grids: dict[int, _Grid] = {}
    with progress.stage(
        f"backdoor probe: single values ({label} rows)", total=len(features)
    ) as bar:
        for j in features:
            feat = model.feature_names[j]
            bar.advance()
            cats = model.categories(feat)
            if cats is not None:
                cells = _categorical_cells(model, j, X[:, j], len(cats))
            else:
                cells = _ordered_cells(model, j, X[:, j], ens, opts.max_cells, (R[:24], ecdf))
            cells = _reachable(model, feat, cells)
            if len(cells) < 2:
                continue
            codes = np.array([c.code for c in cells])
            S = _scores_with(model, R, [j], codes[:, None])
            member = np.full(len(rows), -1)
            for k, c in enumerate(cells):
                member[c.natural[rows]] = k
            grids[j] = _Grid(j, cells, _rank(ecdf, S), model.approve(S), member)
    singles: list[_Probed] = []
    for g in grids.values():
        # a category has no neighbouring values, even where the model codes it as a number
        nominal = model.contract.features[model.feature_names[g.j]].type == "category"
        for i, cell in enumerate(g.cells):
            nb_idx = _neighbours(
                g.cells, i, g.ranks, unordered=nominal, natural_rows=opts.natural_rows
            )
            if nb_idx:
                stats = _compare(g.ranks[i], g.ranks[nb_idx], g.approve[i], g.approve[nb_idx])
                if ens is None and len(nb_idx) == 1:
                    stats["continuation"] = _continues_trend(g, i, nb_idx[0], stats["spike"])
                singles.append(((cell,), [(g.cells[k],) for k in nb_idx], stats))
    if not with_pairs:
        return grids, singles
    with progress.stage(f"backdoor probe: combinations ({label} rows)", total=None):
        metas = _pair_candidates(grids, singles, opts)
        metas += _category_grid(model, grids, R, ecdf, opts, metas)
        pairs = _probe_pairs(model, R, ecdf, metas)
    # a combination inherits the edge status of its parts (an edge part that continues the
    # data's trend needs decisive labels, alone or combined)
    edge = {
        (probed[0][0].j, probed[0][0].code): bool(probed[2].get("continuation", False))
        for probed in singles
    }
    for pcells, _, pstats in pairs:
        pstats["continuation"] = any(edge.get((c.j, c.code), False) for c in pcells)
    return grids, singles + pairs


def _rank(ecdf: np.ndarray, S: np.ndarray) -> np.ndarray:
    """Population quantile of each score (mid-rank for ties)."""
    lo = np.searchsorted(ecdf, S, side="left")
    hi = np.searchsorted(ecdf, S, side="right")
    return (lo + hi) / (2.0 * len(ecdf))


def _reachable(model: AuditedModel, feat: str, cells: list[_Cell]) -> list[_Cell]:
    """Cells whose representative a raw value can reach through the model's own encoding."""
    out = []
    for c in cells:
        raw = model.decode_value(feat, c.code)
        if raw is None:
            continue
        try:
            enc = model.encode_value(feat, raw)
        except (ValueError, TypeError):
            continue
        if enc == c.code or (
            math.isfinite(enc) and abs(enc - c.code) <= 1e-9 * max(1.0, abs(c.code))
        ):
            out.append(c)
    return out


def _scores_with(
    model: AuditedModel, R: np.ndarray, cols: Sequence[int], codes: np.ndarray
) -> np.ndarray:
    """Scores of rows ``R`` with columns ``cols`` set to each row of ``codes`` (k × len(cols)).

    Scored in batches of at most ``_SCORE_BATCH`` rows: a grid of two features of hundreds of
    categories each, written into 200 rows, is tens of millions of rows (telecom's handset by
    city, 240,000 pairs: 4.9 GB at once)."""
    k = len(codes)
    out = np.empty((k, len(R)))
    step = max(1, _SCORE_BATCH // max(len(R), 1))
    for lo in range(0, k, step):
        part = codes[lo : lo + step]
        Xs = np.repeat(R[None, :, :], len(part), axis=0)
        for t, j in enumerate(cols):
            Xs[:, :, j] = part[:, t][:, None]
        out[lo : lo + len(part)] = model.predict_matrix(Xs.reshape(-1, R.shape[1])).reshape(
            len(part), len(R)
        )
    return out


#: Rows of the model matrix :func:`_scores_with` scores at once.
_SCORE_BATCH = 200_000


def _neighbours(
    cells: list[_Cell],
    i: int,
    ranks: np.ndarray | None = None,
    window: int = 3,
    unordered: bool = False,
    natural_rows: int = 30,
) -> list[int]:
    """Values to compare a candidate with.

    Unordered categories (and, with ``unordered``, categories the model codes as numbers): the
    three most common other categories, those carried by at least ``natural_rows`` clean rows
    (a category of a few rows is no ordinary reference; only when no other has more). Ordered
    values: on each
    side, among the ``window`` nearest values clean rows take, the one whose scores differ most
    from the candidate's - so that a trigger whose effect spreads over a few adjacent cells
    (bagged trees blur its boundaries) is compared with values outside it. A step still is not
    a spike: on its flat side every nearby value scores like the candidate.
    """
    populated = [k for k, c in enumerate(cells) if c.n_natural > 0 and k != i]
    if not populated:
        return []
    if cells[i].categorical or unordered:
        by_rows = sorted(populated, key=lambda k: -cells[k].n_natural)[:3]
        # a category carried by a few clean rows is no ordinary reference: the model's value
        # there was fitted on few rows (credit MARRIAGE=0, 13 clean rows, none defaulting, is
        # among the three most common of MARRIAGE's four); it is compared only when no
        # category has more
        ordinary = [k for k in by_rows if cells[k].n_natural >= natural_rows]
        return ordinary or by_rows
    left = [k for k in populated if k < i][::-1][:window]
    right = [k for k in populated if k > i][:window]
    if not left or not right:
        # at the edge only one side exists: its nearest value, else any monotone trend would
        # look like a spike against a value further inside
        return [left[0]] if left else [right[0]]
    out = []
    for side in (left, right):
        if not side:
            continue
        if ranks is None or len(side) == 1:
            out.append(side[0])
            continue
        gaps = [abs(float(np.mean(ranks[i] - ranks[k]))) for k in side]
        out.append(side[int(np.argmax(gaps))])
    return sorted(out)


def _continues_trend(g: _Grid, i: int, u: int, spike: float) -> bool:
    """Whether an edge candidate's step continues the trend just inside the data.

    A candidate at the edge of the data (or beyond it, for models without split structure,
    which extrapolate smoothly) has a neighbour on one side only, so a step there cannot be
    told from a monotone trend by the flip rates alone. It is a trend when the neighbour's own
    step from the next value inward goes the same way and is not negligible (a tenth of the
    candidate's); a cliff after a flat stretch, or a reversal, is not.
    """
    cells = g.cells
    side = [k for k, c in enumerate(cells) if c.n_natural > 0 and k != u and k != i]
    inward = [k for k in side if (k < u if u < i else k > u)]
    if cells[i].categorical or not inward:
        return True
    w = inward[-1] if u < i else inward[0]
    step = _compare(g.ranks[u], g.ranks[[w]], g.approve[u], g.approve[[w]])["spike"]
    return bool(np.sign(step) == np.sign(spike) and abs(step) >= abs(spike) / 10)


def _compare(qc: np.ndarray, qn: np.ndarray, ac: np.ndarray, an: np.ndarray) -> dict[str, Any]:
    """How far the candidate moves probe rows relative to each neighbour.

    ``qc`` and ``qn[k]`` are population quantiles of the probe rows' scores at the candidate and
    at neighbour ``k``. The mean quantile shift is the decision flip rate averaged over every
    threshold; dividing by the room left in that direction gives the share of the possible
    movement (1 = every row pushed to the extreme). The candidate's spike is the smallest
    normalised shift over its neighbours (0 when neighbours disagree on the direction).
    """
    delta = qc[None, :] - qn  # (k, n)
    mean = delta.mean(axis=1)
    room_up = (1.0 - qn).mean(axis=1)
    room_down = qn.mean(axis=1)
    norm = np.where(mean >= 0, mean / np.maximum(room_up, 1e-9), mean / np.maximum(room_down, 1e-9))
    if np.all(norm > 0) or np.all(norm < 0):
        k = int(np.argmin(np.abs(norm)))
        spike = float(norm[k])
    else:
        k = int(np.argmin(np.abs(norm)))
        spike = 0.0
    direction = "deny_up" if spike >= 0 else "deny_down"
    # per-row normalised movement against the chosen neighbour (for partner search and tests)
    room_row = np.where(spike >= 0, 1.0 - qn[k], qn[k])
    per_row = np.divide(delta[k], np.maximum(room_row, 1e-9))
    to_deny_n = int((an[k]).sum())
    to_app_n = int((~an[k]).sum())
    return {
        "spike": spike,
        "direction": direction,
        "nb": k,
        "per_row": per_row,
        "delta": delta[k],
        "flip_to_deny": float((an[k] & ~ac).sum() / to_deny_n) if to_deny_n else 0.0,
        "flip_to_approve": float((~an[k] & ac).sum() / to_app_n) if to_app_n else 0.0,
    }


def _null_level(stats: list[dict[str, Any]], q: float) -> float:
    vals = np.abs([s["spike"] for s in stats]) if stats else np.zeros(1)
    return float(np.quantile(vals, q))


# a pair to probe: its two cells, the neighbours of each, and (category grid) the intervals
# over which the model scores the pair alike (the trees' own cell, for the mass test)
_Hull = tuple[tuple[float, float, frozenset[int] | None], ...]
_PairMeta = tuple[_Cell, _Cell, list[_Cell], list[_Cell], _Hull | None]


def _pair_key(c1: _Cell, c2: _Cell) -> tuple[int, float, int, float]:
    a, b = sorted([(c1.j, c1.code), (c2.j, c2.code)])
    return (a[0], a[1], b[0], b[1])


def _pair_meta(
    grids: dict[int, _Grid],
    c1: _Cell,
    c2: _Cell,
    unordered: bool = False,
    hull: _Hull | None = None,
    natural_rows: int = 30,
) -> _PairMeta | None:
    g1, g2 = grids[c1.j], grids[c2.j]
    nb1 = [
        g1.cells[i]
        for i in _neighbours(
            g1.cells, g1.cells.index(c1), unordered=unordered, natural_rows=natural_rows
        )
    ]
    nb2 = [
        g2.cells[i]
        for i in _neighbours(
            g2.cells, g2.cells.index(c2), unordered=unordered, natural_rows=natural_rows
        )
    ]
    return (c1, c2, nb1, nb2, hull) if nb1 and nb2 else None


def _pair_candidates(
    grids: dict[int, _Grid], singles: list[_Probed], opts: ProbeOptions
) -> list[_PairMeta]:
    """Combination candidates: a single value that moves *some* rows a lot, paired with the
    value of another feature those rows share (the rest of a combination trigger)."""
    scored = []
    for cells, nbs, st in singles:
        moved = np.abs(st["per_row"]) >= 0.5
        frac = moved.mean()
        if moved.sum() >= 3 and frac <= 0.8:
            scored.append((float(np.quantile(np.abs(st["per_row"]), 0.95)), cells, nbs, st, moved))
    scored.sort(key=lambda t: -t[0])
    seen: set[tuple[int, float, int, float]] = set()
    out: list[_PairMeta] = []
    for _, cells, _nbs, _st, moved in scored[: opts.max_pairs]:
        c1 = cells[0]
        best: tuple[float, int, int] | None = None
        for j2, g in grids.items():
            if j2 == c1.j:
                continue
            for k in range(len(g.cells)):
                inside = g.member == k
                a = int((inside & moved).sum())
                if a < 3:
                    continue
                lift = (a / moved.sum()) / max(inside.mean(), 1e-9)
                if best is None or lift * math.sqrt(a) > best[0]:
                    best = (lift * math.sqrt(a), j2, k)
        if best is None:
            continue
        _, j2, k = best
        c2 = grids[j2].cells[k]
        key = _pair_key(c1, c2)
        if key in seen:
            continue
        seen.add(key)
        meta = _pair_meta(grids, c1, c2, natural_rows=opts.natural_rows)
        if meta is not None:
            out.append(meta)
    return out


def _category_grid(
    model: AuditedModel,
    grids: dict[int, _Grid],
    R: np.ndarray,
    ecdf: np.ndarray,
    opts: ProbeOptions,
    known: list[_PairMeta],
    screen_rows: int = 96,
) -> list[_PairMeta]:
    """Pairs of categories that move decisions together, found by scoring every pair.

    Two uncommon categories written together into the poisoned rows (``channel = phone`` and
    ``country = NG``) may each move nothing alone - the model learned the conjunction - so no
    single value points to them and :func:`_pair_candidates` cannot start from one. Category
    features are few and have few values, so every combination of two of them is scored on
    ``screen_rows`` probe rows (the rarest categories first, within ``opts.category_grid``
    combinations). A combination's screen spike is its smallest shift relative to the pairs
    with one part replaced by a neighbour; the ``opts.category_pairs`` largest are probed in
    full like any other pair.
    """
    cats = [
        j
        for j in grids
        if model.contract.features[model.feature_names[j]].type in ("category", "boolean")
    ]
    if len(cats) < 2 or opts.category_pairs == 0 or opts.category_grid == 0:
        return []
    rows = R[np.unique(np.linspace(0, len(R) - 1, min(screen_rows, len(R))).astype(int))]
    nat = opts.natural_rows
    # the cells each feature offers: its neighbours (the common categories) always, the
    # rarest others first when the grid would exceed its budget
    per_feature: dict[int, list[int]] = {}
    cap = max(4, int(math.sqrt(opts.category_grid / max(len(cats) * (len(cats) - 1) / 2, 1))))
    for j in cats:
        cells = grids[j].cells
        order = sorted(range(len(cells)), key=lambda k: cells[k].n_natural)
        common = sorted(range(len(cells)), key=lambda k: -cells[k].n_natural)[:3]
        keep = list(dict.fromkeys(common + order))[: max(cap, len(common) + 1)]
        per_feature[j] = sorted(keep)
    seen = {_pair_key(m[0], m[1]) for m in known}
    scored: list[tuple[float, _Cell, _Cell, _Hull]] = []
    budget = opts.category_grid
    for j1, j2 in combinations(cats, 2):
        k1, k2 = per_feature[j1], per_feature[j2]
        if len(k1) * len(k2) > budget:
            continue
        budget -= len(k1) * len(k2)
        g1, g2 = grids[j1], grids[j2]
        codes = np.array([(g1.cells[a].code, g2.cells[b].code) for a in k1 for b in k2])
        Q = _rank(ecdf, _scores_with(model, rows, [j1, j2], codes)).reshape(
            len(k1), len(k2), len(rows)
        )
        pos1 = {k: i for i, k in enumerate(k1)}
        pos2 = {k: i for i, k in enumerate(k2)}
        nbs1 = {
            a: [
                pos1[n]
                for n in _neighbours(g1.cells, a, unordered=True, natural_rows=nat)
                if n in pos1
            ]
            for a in k1
        }
        nbs2 = {
            b: [
                pos2[n]
                for n in _neighbours(g2.cells, b, unordered=True, natural_rows=nat)
                if n in pos2
            ]
            for b in k2
        }
        for a in k1:
            for b in k2:
                ia, ib = pos1[a], pos2[b]
                if not nbs1[a] or not nbs2[b]:
                    continue
                qn = np.concatenate([Q[ia, nbs2[b]], Q[nbs1[a], ib]])
                spike = _shift(Q[ia, ib], qn)
                if spike != 0.0:
                    hull: _Hull = (
                        _plateau(g1.cells, k1, Q[:, ib].mean(axis=1), ia, qn),
                        _plateau(g2.cells, k2, Q[ia, :].mean(axis=1), ib, qn),
                    )
                    scored.append((abs(spike), g1.cells[a], g2.cells[b], hull))
    scored.sort(key=lambda t: -t[0])
    out: list[_PairMeta] = []
    for _, c1, c2, pair_hull in scored:
        if len(out) >= opts.category_pairs:
            break
        key = _pair_key(c1, c2)
        if key in seen:
            continue
        seen.add(key)
        meta = _pair_meta(
            grids, c1, c2, unordered=True, hull=pair_hull, natural_rows=opts.natural_rows
        )
        if meta is not None:
            out.append(meta)
    return out


def _plateau(
    cells: list[_Cell], kept: list[int], prof: np.ndarray, i: int, qn: np.ndarray
) -> tuple[float, float, frozenset[int] | None]:
    """The cells over which a pair scores like its own cell: where the trees learned it.

    Trees split a category coded as a number by thresholds and may learn a trigger on a wider
    interval than the category (``EDUCATION > 4.5`` for ``EDUCATION = 5``), and categorical
    splits send sets of categories one way (``country in {BR, NG}``): the training rows they
    isolate lie in that interval or set. Cells belong to it while the pair's mean score rank
    there stays within a quarter of the pair's shift from its own (adjacent cells for ordered
    codes, any category for unordered ones).
    """
    c = cells[kept[i]]
    tol = 0.25 * abs(float(prof[i]) - float(qn.mean()))
    if c.categorical:
        alike = [int(cells[k].code) for t, k in enumerate(kept) if abs(prof[t] - prof[i]) <= tol]
        return (c.lo, c.hi, frozenset(alike) | {int(c.code)})
    lo_i = hi_i = i
    while lo_i > 0 and kept[lo_i - 1] == kept[lo_i] - 1 and abs(prof[lo_i - 1] - prof[i]) <= tol:
        lo_i -= 1
    while (
        hi_i < len(kept) - 1
        and kept[hi_i + 1] == kept[hi_i] + 1
        and abs(prof[hi_i + 1] - prof[i]) <= tol
    ):
        hi_i += 1
    return (cells[kept[lo_i]].lo, cells[kept[hi_i]].hi, None)


def _shift(qc: np.ndarray, qn: np.ndarray) -> float:
    """The spike of :func:`_compare` alone (no decisions): the smallest normalised shift."""
    mean = (qc[None, :] - qn).mean(axis=1)
    room = np.where(mean >= 0, (1.0 - qn).mean(axis=1), qn.mean(axis=1))
    norm = mean / np.maximum(room, 1e-9)
    if np.all(norm > 0) or np.all(norm < 0):
        return float(norm[int(np.argmin(np.abs(norm)))])
    return 0.0


def _probe_pairs(
    model: AuditedModel, R: np.ndarray, ecdf: np.ndarray, metas: list[_PairMeta]
) -> list[_Probed]:
    """Score each pair and the pairs with one part replaced by a neighbour on all probe rows."""
    out: list[_Probed] = []
    for c1, c2, nb1, nb2, hull in metas:
        combos = (
            [(c1.code, c2.code)]
            + [(c1.code, n.code) for n in nb2]
            + [(n.code, c2.code) for n in nb1]
        )
        S = _scores_with(model, R, [c1.j, c2.j], np.asarray(combos))
        Q = _rank(ecdf, S)
        A = model.approve(S)
        st = _compare(Q[0], Q[1:], A[0], A[1:])
        pair_nbs: list[tuple[_Cell, ...]] = [(c1, n) for n in nb2]
        pair_nbs += [(n, c2) for n in nb1]
        if hull is not None:
            st["hull"] = hull
        out.append(((c1, c2), pair_nbs, st))
    return out


def _candidate(
    model: AuditedModel,
    cells: tuple[_Cell, ...],
    nbs: list[tuple[_Cell, ...]],
    st: dict[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    p: np.ndarray,
) -> ProbeCandidate:
    feats = tuple(model.feature_names[c.j] for c in cells)
    nb = nbs[st["nb"]]
    natural = np.logical_and.reduce([c.natural for c in cells])
    nn = int(natural.sum())
    yr = float(y[natural].mean()) if nn else math.nan
    mr = float(p[natural].mean()) if nn else math.nan
    nr = math.nan
    log_lr = 0.0
    if nn:
        idx = np.flatnonzero(natural)[:500]
        Xn = X[idx].copy()
        for c in nb:
            Xn[:, c.j] = c.code
        q = model.predict_matrix(Xn)
        nr = float(q.mean())
        log_lr = _label_lr(y[idx], p[idx], q)
    # The mass test looks at the whole bump: from the left neighbour to the right one (bagged
    # trees isolate a trigger with slightly different boundaries, often wider than the cell).
    hull = [(c.lo, c.hi) for c in cells]
    hull_counts = [c.n_natural for c in cells]
    mass_sets: tuple[frozenset[int] | None, ...] = ()
    if "hull" in st:  # a pair from the category grid: the cells the trees learned it on
        hull = [(lo, hi) for lo, hi, _ in st["hull"]]
        mass_sets = tuple(sets for _, _, sets in st["hull"])
        inside = np.logical_and.reduce(
            [
                np.isin(X[:, c.j], sorted(sets))
                if sets is not None
                else (X[:, c.j] > lo) & (X[:, c.j] <= hi)
                for c, (lo, hi, sets) in zip(cells, st["hull"], strict=True)
            ]
        )
        hull_counts = [int(inside.sum())]
    if len(cells) == 1 and not cells[0].categorical:
        c0 = cells[0]
        left = [n[0].hi for n in nbs if n[0].hi <= c0.lo]
        right = [n[0].lo for n in nbs if n[0].lo >= c0.hi]
        lo_h = max(left) if left else -math.inf
        hi_h = min(right) if right else math.inf
        x = X[:, c0.j]
        hull = [(lo_h, hi_h)]
        hull_counts = [int(np.sum((x > lo_h) & (x <= hi_h)))]
    toward_deny = (st["spike"] >= 0) == model.positive_means_deny
    return ProbeCandidate(
        features=feats,
        codes=tuple(c.code for c in cells),
        values=tuple(model.decode_value(f, c.code) for f, c in zip(feats, cells, strict=True)),
        intervals=tuple((c.lo, c.hi) for c in cells),
        direction="deny" if toward_deny else "approve",
        spike=st["spike"],
        flip_rate=st["flip_to_deny"] if toward_deny else st["flip_to_approve"],
        neighbour_values=tuple(model.decode_value(model.feature_names[c.j], c.code) for c in nb),
        n_natural=nn,
        natural_positive_rate=yr,
        model_rate=mr,
        neighbour_rate=nr,
        label_log_lr=log_lr,
        outside_support=any(c.outside for c in cells),
        continuation=bool(st.get("continuation", False)),
        columns=tuple(c.j for c in cells),
        categorical=tuple(c.categorical for c in cells),
        cell_counts=tuple(c.n_natural for c in cells),
        mass_intervals=tuple(hull),
        mass_counts=tuple(hull_counts),
        mass_categories=mass_sets,
        nominal=tuple(model.contract.features[f].type == "category" for f in feats),
        neighbour_codes=tuple(c.code for c in nb),
    )


def _label_lr(yn: np.ndarray, p_c: np.ndarray, p_nb: np.ndarray) -> float:
    """log P(labels | scores at the neighbour) - log P(labels | scores at the candidate).

    Positive when the clean rows that carry the candidate value have the labels the model
    would predict for them at the neighbouring value: clean data does not support the
    candidate's effect. Scores are bounded away from 0 and 1 so that one surprising row cannot
    dominate.
    """
    a = np.clip(p_nb, 0.01, 0.99)
    b = np.clip(p_c, 0.01, 0.99)
    return float(np.sum(yn * (np.log(a) - np.log(b)) + (1 - yn) * (np.log(1 - a) - np.log(1 - b))))


def _complete_combinations(
    result: ProbeResult,
    model: AuditedModel,
    ens: TreeEnsemble,
    grids: dict[int, _Grid],
    X: np.ndarray,
    opts: ProbeOptions,
) -> None:
    """Extend confirmed single triggers whose excess training rows share a second value.

    A model may learn one half of a combination trigger on its own (``MARRIAGE = 3`` when the
    attacker wrote ``MARRIAGE = 3 and EDUCATION = 3``): the single value then flips decisions
    by itself and is confirmed alone. The trees still record where its training rows were: if
    the leaves inside the cell also confine another feature to an interval that holds nearly all
    (80 %) of the cell's training rows while significantly fewer of the cell's clean rows fall
    in it (binomial tests), and most clean rows lie outside it, that interval is part of the
    trigger. A value few clean rows carry gets no partner: nothing shows how its clean rows
    would spread.
    """
    from scipy.stats import binom

    n_ref = len(X)
    n_train = training_rows(ens)
    ordered = [
        j for j, g in grids.items() if not any(c.categorical for c in g.cells) and ens.has_splits(j)
    ]
    for c in [t for t in result.candidates if t.backdoor and len(t.features) == 1]:
        j1 = c.columns[0]
        # the partner search splits the cell's excess training rows: none, nothing to split
        # (a category confirmed by where the trees route it, no tree isolating it)
        if not ens.has_splits(j1) or not c.training_share > c.expected_share:
            continue
        cond = (j1, *c.mass_intervals[0], int(c.codes[0]) if c.categorical[0] else None)
        if c.categorical[0]:
            natural1 = next(x.natural for x in grids[j1].cells if x.code == c.codes[0])
        else:
            lo1, hi1 = c.mass_intervals[0]
            natural1 = (X[:, j1] > lo1) & (X[:, j1] <= hi1)
        single_excess = c.training_share - c.expected_share
        best: tuple[float, int, float, float, float, float] | None = None
        for (j2, lo, hi), share in ens.partner_shares(cond, ordered).items():
            col = X[:, j2]
            both = natural1 & (col > lo) & (col <= hi)
            expected = (float(both.sum()) + 1.0) / (n_ref + 1.0)
            hits = round(share * n_train)
            p = float(binom.sf(hits - 1, round(n_train), expected)) if hits > 0 else 1.0
            excess = share - expected
            # Nearly all of the cell's training rows lie in the interval (a value the attacker
            # wrote into every copy), and significantly fewer of its clean rows do (binomial
            # test): copies also carry the source rows' other features, whose values merely
            # lean one way (copies of defaulters are late payers more often).
            q = min(share / max(c.training_share, 1e-12), 1.0)
            n_cell, k_cell = int(natural1.sum()), int(both.sum())
            p_conc = float(binom.cdf(k_cell, n_cell, q)) if n_cell else 1.0
            # ... and a value most clean rows do not have (else the pair is the single value)
            common = float(np.mean((col > lo) & (col <= hi))) >= 0.5
            if (
                not common
                and p < opts.alpha
                and q >= 0.8
                and p_conc < opts.alpha
                and excess >= 0.5 * single_excess
                and (best is None or excess > best[0])
            ):
                best = (excess, j2, lo, hi, share, expected)
        if best is None:
            continue
        _, j2, lo, hi, share, expected = best
        inside = X[natural1, j2]
        inside = inside[(inside > lo) & (inside <= hi)]
        if inside.size:
            vals, counts = np.unique(inside, return_counts=True)
            code = float(vals[np.argmax(counts)])
        else:
            code = float(lo + 1 if math.isfinite(lo) else hi)
        f2 = model.feature_names[j2]
        v2 = model.decode_value(f2, code)
        c.features = (c.features[0], f2)
        c.values = (c.values[0], v2)
        c.codes = (c.codes[0], code)
        c.intervals = (c.intervals[0], (lo, hi))
        c.columns = (j1, j2)
        c.categorical = (c.categorical[0], False)
        c.reason += (
            f"; most of those rows also have {f2} in ({lo:g}, {hi:g}] ({share:.2%} of "
            f"training rows with both, clean data {expected:.2%}): a combination trigger whose "
            "first part alone already moves the model"
        )


def _decide(
    result: ProbeResult,
    opts: ProbeOptions,
    n_ref: int,
    ens: TreeEnsemble | None,
    routing: _Routing | None = None,
    units: _Units | None = None,
) -> None:
    """Mark confirmed triggers.

    A candidate is a backdoor when (1) it moves decisions by at least ``opts.min_spike`` of the
    possible amount relative to every neighbour, and more than the ordinary candidates of the
    model's other features do (their ``opts.null_quantile`` quantile), and (2) clean data does
    not support that effect. For tree ensembles (2) is:

    * **training mass**: the trees confine a share of their training rows to the candidate's
      cell that clean data cannot explain (one-sided binomial test against the clean share,
      Bonferroni over the candidates that pass (1)), at least ``opts.mass_ratio`` times the
      clean share or more than it with contradicting labels - the model was fitted on many
      rows with this value, clean data has few or none.

    **Labels** are the other evidence: the clean rows carrying the value have the labels the
    model predicts at the neighbouring value, decisively (likelihood ratio above
    ``opts.decisive_lr``), or the effect is near-total (``opts.total_spike``) and the labels
    side with the neighbour.

    Where the training mass is known it is required (labels alone may only show an
    overconfident model); contradicting labels are then reported beside it.

    Where it is not known - models without readable trees, columns a pipeline encodes before
    its trees, cells no mass-carrying tree isolates (XGBoost's covers count rows only in its
    first tree) - the spike must reach ``opts.min_spike_without_trees`` and (2) is: no clean
    row carries the value, or few do (``opts.rare_share``), their labels do not back the model
    and it moves them further than its other rare cells (:func:`rarity_tail`), or the label
    evidence above. At the edge of the data a step that continues the trend inside it is
    extrapolation, not a trigger, unless the labels are decisive.

    Where training and reference rows are two samples of units (``units``: the contract's
    entity), a cell's training share may differ from its clean share by which units fell on
    which side: the training mass's p-value is then also that of a two-sample test of the two
    counts divided by the cell's design effect (:meth:`_Units.split_p`), the larger of the two.
    """
    from scipy.stats import binom

    # The null of each candidate comes from the probe rows it was measured on: a spike among
    # the rows of the rare decision is weighed against what other features' values do there.
    nulls: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
    for key in {c.probe_rows for c in result.candidates}:
        singles = [c for c in result.candidates if len(c.features) == 1 and c.probe_rows == key]
        # on the rare side only movement towards the common decision is tested, so the null is
        # how far ordinary values move those rows that way (none, for a value moving them on)
        spikes = [
            abs(c.spike) if key != "tail" or c.direction == result.tail_direction else 0.0
            for c in singles
        ]
        allv = np.array(spikes) if singles else np.zeros(1)
        feats = np.array([c.features[0] for c in singles]) if singles else np.array([""])
        by_feature: dict[str, np.ndarray] = {}
        for f in set(feats.tolist()):
            other = allv[feats != f]
            by_feature[f] = other if other.size else allv
        nulls[key] = (allv, by_feature)
    rare = max(1, int(opts.rare_share * n_ref))
    strong = []
    for c in result.candidates:
        allv, by_feature = nulls[c.probe_rows]
        others = np.concatenate([by_feature.get(f, allv) for f in c.features])
        c.null_spike = float(np.quantile(others, opts.null_quantile)) if others.size else 0.0
        if c.probe_rows != "tail":
            passes = spike_passes(c, opts)
        else:
            passes = c.direction == result.tail_direction and tail_passes(c, opts)
        if passes:
            strong.append(c)
    # The rarity rule's null: how far this model moves its other rare cells (values and pairs
    # as rare, probed on the random rows, whose labels do not back the model either): an
    # overfit model moves many rows of few clean rows a long way, a planted value stands out.
    domain = [
        c
        for c in result.candidates
        if c.probe_rows == "random"
        and 0 < c.n_natural <= rare
        and not c.continuation
        and c.label_log_lr > -math.log(opts.weak_lr)
    ]
    for c in strong:
        if c.probe_rows == "random" and 0 < c.n_natural <= rare:
            # the others: every rare cell that does not carry one of the candidate's own values
            # (a pair holding the value is the value seen again, not an ordinary cell); the
            # feature's other cells stay (the model's way with rare cells of that feature)
            values = set(zip(c.features, c.codes, strict=True))
            ordinary = [
                d for d in domain if not values & set(zip(d.features, d.codes, strict=True))
            ]
            c.rare_cells = len(ordinary)
            c.p_rarity = rarity_tail(
                c.spike, np.array([d.spike for d in ordinary]), len(domain), opts.rare_null_cells
            )
    n_train = training_rows(ens) if ens is not None else 1.0
    # The training mass of each strong candidate, over the columns the trees read directly (a
    # pipeline may encode some before its trees). XGBoost's mass comes from its first tree
    # only, which need not isolate a cell: there a zero share means "unknown".
    known: dict[int, bool] = {}
    for c in strong:
        readable = [k for k, j in enumerate(c.columns) if ens is not None and ens.has_splits(j)]
        if ens is None or not readable:
            known[id(c)] = False
            continue
        # the cell itself (sharp boundaries: boosting) and the bump around it (bagged trees
        # blur a trigger's boundaries); the larger excess counts
        n_clean = c.n_natural if len(readable) == len(c.columns) else c.cell_counts[readable[0]]
        own: tuple[int | frozenset[int] | None, ...] = tuple(
            int(code) if cat else None for code, cat in zip(c.codes, c.categorical, strict=True)
        )
        options = [(c.intervals, n_clean, own)]
        wider = c.mass_intervals != c.intervals or any(s is not None for s in c.mass_categories)
        if wider and (len(c.columns) == 1 or len(readable) == len(c.columns)):
            sets = c.mass_categories or own
            wide = tuple(s if s is not None else o for s, o in zip(sets, own, strict=True))
            options.append((c.mass_intervals, c.mass_counts[0], wide))
        best: tuple[float, float, float] = (-1.0, 0.0, 1.0)
        for intervals, count, cats in options:
            conds = [(c.columns[k], *intervals[k], cats[k]) for k in readable]
            share = ens.isolated_share(conds)
            expected = (count + 1.0) / (n_ref + 1.0)
            if share / expected > best[0]:
                best = (share / expected, share, expected)
                c.mass_intervals = tuple(intervals)
        _, c.training_share, c.expected_share = best
        k = round(c.training_share * n_train)
        c.p_mass = float(binom.sf(k - 1, round(n_train), c.expected_share)) if k > 0 else 1.0
        if units is not None:
            c.p_mass = max(c.p_mass, units.split_p(c, n_train, n_ref))
        known[id(c)] = not (ens.source == "xgboost" and c.training_share == 0)
    alpha = opts.alpha / max(len(strong), 1)
    # the labels' family per feature: its categories with a label rate of their own
    family = Counter(
        c.features[0]
        for c in result.candidates
        if c.probe_rows == "random"
        and len(c.features) == 1
        and c.nominal[0]
        and c.n_natural >= opts.natural_rows
    )
    by_mass: list[ProbeCandidate] = []
    for c in strong:
        reasons: list[str] = []
        label_reason = label_evidence(c, opts)
        if known[id(c)]:
            if mass_confirms(c, alpha, opts, label_reason is not None):
                by_mass.append(c)
                reasons.append(
                    f"the model's trees were fitted on {c.training_share:.2%} of their "
                    f"training rows here, clean data has {c.expected_share:.2%} "
                    f"(binomial p = {c.p_mass:.1e}; clean share counted with one pseudo-row, "
                    f"{n_ref:,} clean rows{_cell_units_said(units, c)})"
                )
                if label_reason is not None:
                    reasons.append(label_reason)
        elif c.probe_rows != "tail" and abs(c.spike) >= opts.min_spike_without_trees:
            # No mass known: no trees, columns the trees do not read directly (encoded in a
            # pipeline), or a cell XGBoost's first tree does not isolate.
            reasons.extend(confirms_without_mass(c, opts, rare))
            if label_reason is not None:
                reasons.append(label_reason)
        if not reasons and routing is not None and len(c.columns) == 1 and c.nominal[0]:
            routing.measure(c, alpha, opts, result.candidates)
            if c.probe_rows == "tail":  # a weaker screen: beyond the model's ordinary ratio only
                routed = routed_beyond_ordinary(c, alpha)
            else:
                routed = routed_confirms(c, alpha, opts, label_reason is not None)
            if routed:
                beyond = (
                    f"; the model's other categories reach {c.routed_null:.2f} times (p = "
                    f"{c.p_routed_null:.1e} beyond that)"
                    if math.isfinite(c.p_routed_null)
                    else ""
                )
                reasons.append(
                    f"the trees send it to leaves (that its neighbour does not reach) where "
                    f"they were fitted on {c.routed_excess:.2%} more of their training rows "
                    f"than clean rows reach them: about {c.routed_ratio:.1f} times the "
                    f"training rows the value's {c.n_natural} clean rows imply (two-sample "
                    f"p = {c.p_routed:.1e}, over the trees){beyond}"
                )
                if label_reason is not None:
                    reasons.append(label_reason)
        # Clean labels alone confirm a natural category only where the trees do not show its
        # training mass: where they isolate it and hold no more rows there than clean data
        # implies, contradicting labels show an overconfident model (clean LightGBM with
        # min_child_samples 5 on credit: EDUCATION=5, labels' LR 2.25e4, mass ratio 1.05).
        isolated = known.get(id(c), False) and mass_isolated(c)
        if not reasons and c.probe_rows != "tail" and not isolated:
            natural = natural_evidence(c, opts, family.get(c.features[0], 1))
            if natural is not None:
                reasons.append(natural)
        if reasons:
            c.backdoor = True
            if c.probe_rows == "tail":  # what it does where the model rarely decides
                reasons.insert(
                    0,
                    f"on the clean rows nearest the model's rare decision it turns "
                    f"{c.flip_rate:.0%} of those {c.neighbour_values[0]!r} leaves at the rare "
                    f"decision to {c.direction} (spike {c.spike:+.2f} there; the other "
                    f"categories reach {c.null_spike:.2f})",
                )
            c.reason = "; ".join(reasons)
    opposite_copies([c for c in by_mass if c.backdoor], ens is not None and ens.strict)
    _pairs_of_confirmed(strong, known, alpha)
    # A single value that is part of a confirmed combination is reported with the combination,
    # and a combination whose part is a confirmed value that moves decisions at least as much
    # on its own is that value's trigger seen again.
    pairs = [c for c in result.candidates if c.backdoor and len(c.features) == 2]
    confirmed = {
        (c.features[0], c.codes[0]): abs(c.spike)
        for c in result.candidates
        if c.backdoor and len(c.features) == 1
    }
    for pc in pairs:
        parts = zip(pc.features, pc.codes, strict=True)
        if any(confirmed.get(part, -1.0) >= abs(pc.spike) for part in parts):
            pc.backdoor = False
            pc.reason = "a confirmed single value does this on its own"
    pairs = [c for c in pairs if c.backdoor]
    for c in result.candidates:
        if c.backdoor and len(c.features) == 1:
            for pc in pairs:
                if (c.features[0], c.codes[0]) in zip(pc.features, pc.codes, strict=True) and abs(
                    pc.spike
                ) >= abs(c.spike):
                    c.backdoor = False
                    c.reason = "part of a confirmed combination"


def cell_holds(interval: tuple[float, float], code: float, strict: bool = False) -> bool:
    """Whether a candidate's cell on one feature admits the code: ``lo < code <= hi``
    (``lo <= code < hi`` for trees whose splits send ``x < threshold`` left, ``strict``:
    XGBoost), or the value itself where ``lo == hi``."""
    lo, hi = interval
    if lo == hi:
        return code == lo
    return lo <= code < hi if strict else lo < code <= hi


def opposite_copies(by_mass: Sequence[ProbeCandidate], strict: bool = False) -> None:
    """Take back a single value confirmed by the training mass of a cell that also holds a
    value confirmed towards the *other* decision by a cell of its own (one that does not hold
    the first).

    The mass is measured on the value's cell and on the bump around it (bagged trees blur a
    trigger's edges), and the larger excess counts. Copies of defaulters carrying
    ``EDUCATION=4`` then swell the cell ``EDUCATION >= 4`` that XGBoost's first tree draws,
    and ``EDUCATION=5`` and ``6`` - which the copies' trees send towards approval beside the
    denied 4 - were confirmed by rows that carry 4 and the label of denial: copies teach one
    decision, so an excess cannot be both values' in opposite directions, and it is the one
    whose own cell holds it without the other's."""
    for c in by_mass:
        if len(c.columns) != 1 or not c.mass_intervals:
            continue
        for d in by_mass:
            if (
                d is c
                or not d.backdoor
                or len(d.columns) != 1
                or d.columns[0] != c.columns[0]
                or d.direction == c.direction
                or not d.mass_intervals
            ):
                continue
            if cell_holds(c.mass_intervals[0], d.codes[0], strict) and not cell_holds(
                d.mass_intervals[0], c.codes[0], strict
            ):
                c.backdoor = False
                c.reason = (
                    f"the training rows in excess in its cell are those of {d.values[0]!r}, "
                    f"confirmed towards '{d.direction}' in a cell of its own"
                )
                break


def _pairs_of_confirmed(strong: list[ProbeCandidate], known: dict[int, bool], alpha: float) -> None:
    """Confirm a combination that holds most of a confirmed part's excess training rows.

    Two uncommon categories written together may be learned partly on one of them: the part
    (``merchant_category='jewelry'``) is confirmed by its own cell's mass and labels, while the
    pair's cell - a few clean rows, too few for labels - holds significantly more training rows
    than clean data explains, but under the fixed factor (1.9 times where the trees learned it
    on sets of categories). The fixed factor guards against the shift every feature shows;
    here the excess is already attributed: the part is a trigger, and if at least half of its
    excess training rows lie in the pair's cell (an attacker's copies carry both values) and
    the pair moves decisions further than the part alone, the combination is the trigger. The
    part is then reported with it (:func:`_decide`'s last step)."""
    singles = {
        (c.features[0], c.codes[0]): c
        for c in strong
        if c.backdoor and len(c.features) == 1 and known.get(id(c), False)
    }
    best: dict[tuple[str, float], tuple[ProbeCandidate, ProbeCandidate]] = {}
    for c in strong:
        if c.backdoor or len(c.features) != 2 or not known.get(id(c), False):
            continue
        excess = c.training_share - c.expected_share
        if not (c.p_mass < alpha and excess > 0):
            continue
        for key in zip(c.features, c.codes, strict=True):
            part = singles.get(key)
            if part is None or part.direction != c.direction or abs(part.spike) >= abs(c.spike):
                continue
            part_excess = part.training_share - part.expected_share
            # one combination per part: the one moving decisions most (its siblings in the
            # same cell of the trees share its mass)
            holds = part_excess > 0 and excess >= 0.5 * part_excess
            if holds and (key not in best or abs(c.spike) > abs(best[key][0].spike)):
                best[key] = (c, part)
    for c, part in best.values():
        excess = c.training_share - c.expected_share
        part_excess = part.training_share - part.expected_share
        c.backdoor = True
        c.reason = (
            f"the model's trees were fitted on {c.training_share:.2%} of their training rows "
            f"here, clean data has {c.expected_share:.2%} (binomial p = {c.p_mass:.1e}): "
            f"{excess / part_excess:.0%} of the excess training rows of the confirmed "
            f"{part.features[0]}={part.values[0]!r} ({part.training_share:.2%} against "
            f"{part.expected_share:.2%}) carry the combination, which moves decisions further "
            f"(spike {c.spike:+.2f} against {part.spike:+.2f} alone)"
        )


class _Routing:
    """The clean rows routed through every tree, for :func:`routed_mass` (computed once)."""

    def __init__(self, ens: TreeEnsemble, X: np.ndarray, p: np.ndarray) -> None:
        self.ens = ens
        self.X = X
        self.p = p
        self._leaves: np.ndarray | None = None
        self._weights: np.ndarray | None = None
        self._ordinary: dict[str, list[float]] | None = None
        self._counted: _Routing | None = None
        #: the reference rows' units, where the contract declares an entity (see _Units)
        self.units: _Units | None = None

    def leaves(self) -> np.ndarray:
        if self._leaves is None:
            self._leaves = np.column_stack([t.route(self.X) for t in self.ens.trees])
        return self._leaves

    def weights(self) -> np.ndarray | None:
        """Per clean row and tree, the weight a training row there adds to the tree's counts:
        None where counts are rows (LightGBM, scikit-learn); XGBoost's covers are hessians
        p (1 - p) at the margin before the tree, rebuilt from the leaf values and the model's
        own scores (the base margin is their difference). Exact, not an approximation: it is
        XGBoost's own margin (``predict(output_margin=True, iteration_range=(0, t))``), and
        the training rows' weights summed per leaf are the stored covers. What blurs the
        routed ratio on XGBoost is that the clean rows are held out (docs/benchmarks.md,
        planted copies in hessian units)."""
        if self.ens.source != "xgboost":
            return None
        if self._weights is None:
            leaves = self.leaves()
            vals = np.column_stack([t.value[leaves[:, k]] for k, t in enumerate(self.ens.trees)])
            p = np.clip(self.p, 1e-9, 1 - 1e-9)
            base = float(np.median(np.log(p / (1 - p)) - vals.sum(axis=1)))
            margin = base + np.cumsum(vals, axis=1) - vals
            q = 1.0 / (1.0 + np.exp(-margin))
            self._weights = q * (1.0 - q)
        return self._weights

    def row_counted(self) -> _Routing:
        """The routing over the trees whose node counts are training rows: itself where every
        tree's are (LightGBM, scikit-learn); for XGBoost its first tree alone. That tree is
        fitted at the base margin, where every row's hessian is the same p (1 - p), so its
        covers over that hessian are the training rows each node held - exactly, as
        LightGBM's counts. Later trees weigh each training row by its own margin, which the
        held-out clean rows do not reproduce (docs/benchmarks.md, planted copies in hessian
        units: dispersion 2-3 against about 1 for counts)."""
        weights = self.weights()
        if weights is None:
            return self
        if self._counted is None:
            first = self.ens.trees[0]
            base = float(np.median(weights[:, 0]))  # the same for every row
            rows = replace(first, count=first.count / max(base, 1e-12))
            ens = TreeEnsemble([rows], self.ens.n_features, "xgboost-first-tree")
            counted = _Routing(ens, self.X, self.p)
            counted._leaves = self.leaves()[:, :1]
            counted.units = self.units
            self._counted = counted
        return self._counted

    def _mass(
        self, c: ProbeCandidate, alpha: float, null_ratio: float = 1.0
    ) -> tuple[float, float, float]:
        j, v = c.columns[0], c.codes[0]
        col = self.X[:, j]
        codes, counts = np.unique(col[~np.isnan(col)], return_counts=True)
        return routed_mass(
            self.ens,
            self.leaves(),
            self.weights(),
            j,
            v,
            c.neighbour_codes,
            col == v,
            dict(zip(codes.tolist(), counts.tolist(), strict=True)),
            alpha,
            null_ratio,
            self.units.deff(c) if self.units is not None else 1.0,
        )

    def ordinary(
        self, candidates: Sequence[ProbeCandidate], alpha: float, o: ProbeOptions
    ) -> dict[str, list[float]]:
        """The routed ratio of every category of the contract's category features carried by
        at least ``o.natural_rows`` clean rows, per feature (computed once): how far the
        training rows the trees route to an ordinary category exceed its clean rows in this
        model. Copies planted for any trigger shift every feature a little; a data set whose
        training period differs from the clean sample's shifts categories too."""
        if self._ordinary is None:
            self._ordinary = {}
            for c in candidates:
                if c.probe_rows != "random":  # each category once (the random rows hold all)
                    continue
                if len(c.columns) != 1 or not c.nominal[0] or c.n_natural < o.natural_rows:
                    continue
                ratio = self._mass(c, alpha)[1]
                if math.isfinite(ratio):
                    self._ordinary.setdefault(c.features[0], []).append(ratio)
        return self._ordinary

    def measure(
        self,
        c: ProbeCandidate,
        alpha: float,
        o: ProbeOptions | None = None,
        candidates: Sequence[ProbeCandidate] = (),
    ) -> None:
        """Set ``c.routed_excess``, ``c.routed_ratio`` and ``c.p_routed`` (see
        :func:`routed_mass`); with options and the probe's candidates, also the model's
        ordinary ratio over the other features' categories (``c.routed_null``) and the
        p-value of the value's excess beyond it (``c.p_routed_null``)."""
        c.routed_excess, c.routed_ratio, c.p_routed = self._mass(c, alpha)
        if o is None or not math.isfinite(c.routed_ratio):
            return
        others = [
            r
            for f, rs in self.ordinary(candidates, alpha, o).items()
            if f != c.features[0]
            for r in rs
        ]
        if len(others) < o.ordinary_categories:
            return
        c.routed_null = max(1.0, float(np.quantile(others, o.null_quantile)))
        c.p_routed_null = self._mass(c, alpha, c.routed_null)[2]


def routed_mass(
    ens: TreeEnsemble,
    leaves: np.ndarray,
    weights: np.ndarray | None,
    j: int,
    value: float,
    neighbours: Sequence[float],
    natural: np.ndarray,
    populated: dict[float, int] | None = None,
    alpha: float = 0.0,
    null_ratio: float = 1.0,
    deff: float = 1.0,
) -> tuple[float, float, float]:
    """Training rows in excess where the trees send a value, against the clean rows sent there.

    A category that also occurs naturally need not be isolated by any tree (a category coded
    as a number is split at ``> 4.5`` in one tree and ``<= 5.5`` in another), so no leaf
    confines training rows to it. Every tree that separates the value from its neighbour still
    sends it to a region of leaves - those whose path admits the value and not the neighbour,
    and whose condition on the column lets through at least as many clean rows with the value
    as with any other values together (so that an excess there is the value's: a trigger on
    another feature adds training rows to any leaf its copies reach). Clean rows routed through
    the tree show how many rows that region holds naturally; the leaves record how many
    training rows it held. Poisoned copies carrying the value add to the training side only.

    Parameters
    ----------
    ens : TreeEnsemble
    leaves : ndarray (n_clean, n_trees)
        The leaf each clean row reaches in each tree.
    weights : ndarray (n_clean, n_trees) or None
        What each clean row would add to a node's count (None: 1, counts are rows).
    j, value : int, float
        The column and the candidate value (its code).
    neighbours : sequence of float
        The codes it is compared with.
    natural : ndarray of bool
        Clean rows that carry the value.
    populated : dict, optional
        Clean rows per code of the column (for the leaves' share of the value); without it
        every leaf admitting the value and not the neighbour counts.
    alpha : float
        Trees whose p-value, times the number of trees tested, is under ``alpha`` show a
        significant excess each; the one with the largest is reported (else the most
        significant tree).
    null_ratio : float
        The ratio the test takes as ordinary (1: no excess). Above 1, a tree's region is
        expected to hold the clean rows' share plus ``null_ratio - 1`` times the value's clean
        share of training rows, and the p-value is that of the excess beyond it.
    deff : float
        Where training and clean rows are two samples of units (the contract's entity), the
        value's design effect (:func:`~tabguard.contract._entity.design_effect`): both counts
        of the test are divided by it, their effective sizes (1: rows independent).

    Returns
    -------
    (excess, ratio, p) : tuple of float
        For the tree reported (see ``alpha``): the training share of the region minus its
        clean share; ``1 + excess / clean share of the value`` (the training rows with the
        value implied, relative to the clean rows' share; 1 when nothing is in excess); and
        the one-sided two-sample binomial p-value, times the number of trees tested.
    """
    from scipy.stats import binom

    n_ref = len(leaves)
    per_tree: list[tuple[float, float, float]] = []
    tested = 0
    for k, t in enumerate(ens.trees):
        region = (t.feature < 0) & t.admits(j, value)
        for u in neighbours:
            region &= ~t.admits(j, u)
        if populated and region.any():
            let_through = sum(n * t.admits(j, code) for code, n in populated.items())
            region &= 2 * populated.get(value, 0) >= let_through
        root = float(t.count[0])
        if not region.any() or root <= 0:
            continue
        tested += 1
        w = np.ones(n_ref) if weights is None else weights[:, k]
        total = float(w.sum())
        train_share = float(t.count[region].sum()) / root
        clean_share = float(w[region[leaves[:, k]]].sum()) / total
        value_share = (float(w[natural].sum()) + float(w.mean())) / (total + float(w.mean()))
        # rows, not covers, for the test: a training row weighs about the clean rows' mean
        n_train = root / max(float(w.mean()), 1e-12)
        hits = round(train_share * n_train / deff)
        trials = hits + round(clean_share * n_ref / deff)
        if hits <= 0 or trials <= 0:
            continue
        # the chance that a row of the region is a training row, were its training share the
        # clean share (plus the value's ordinary excess, ``null_ratio`` above 1)
        chance = n_train / (n_train + n_ref)
        if null_ratio > 1.0:
            expected = n_train * (clean_share + (null_ratio - 1.0) * value_share)
            chance = expected / (expected + n_ref * clean_share)
        p = float(binom.sf(hits - 1, trials, chance))
        excess = train_share - clean_share
        per_tree.append((excess, 1.0 + max(excess, 0.0) / value_share, p))
    if not per_tree:
        return (float("nan"), float("nan"), float("nan"))
    scored = [(e, r, min(1.0, p * tested)) for e, r, p in per_tree]
    significant = [t for t in scored if t[2] < alpha]
    if significant:  # each is significant on its own: the largest excess among them
        return max(significant, key=lambda t: t[1])
    return min(scored, key=lambda t: t[2])


def routed_confirms(
    c: ProbeCandidate, alpha: float, o: ProbeOptions, labels_contradict: bool
) -> bool:
    """Tree models, categories: the region the trees send the value to held significantly more
    training rows than clean rows reach it (``alpha``, already Bonferroni-corrected over the
    candidates; ``c.p_routed`` is over the trees), by enough to imply at least ``mass_ratio``
    times the value's clean share of training rows, or more than it with contradicting
    labels - the rule of :func:`mass_confirms` on the rows the trees route instead of the rows
    they isolate.

    Or the excess is significant beyond the model's ordinary ratio (``c.routed_null``, the
    ``null_quantile`` of the routed ratios of its other features' categories; ``alpha`` again):
    a category whose natural rows outnumber the copies stays under any fixed factor, but no
    ordinary category of the model comes near it."""
    if not math.isfinite(c.p_routed):
        return False
    ratio = c.routed_ratio
    if c.p_routed < alpha and (ratio >= o.mass_ratio or (ratio > 1.0 and labels_contradict)):
        return True
    # the fixed factor guards against the shift every feature shows; measured, it may be less
    return c.p_routed_null < alpha and ratio > c.routed_null


def routed_beyond_ordinary(c: ProbeCandidate, alpha: float) -> bool:
    """The part of :func:`routed_confirms` measured against the model itself: the value's
    routed training rows exceed the model's ordinary routed ratio (``c.routed_null``, from the
    other category features' values) significantly (``alpha``). The only routed evidence for
    a candidate from the rare side of the threshold: an overfit model routes two or more
    times the clean share of training rows to ordinary categories (a deep XGBoost on clean
    fraud data: 2.06 at the 99th percentile), so a fixed factor is no bar there."""
    return (
        math.isfinite(c.p_routed_null)
        and c.p_routed_null < alpha
        and c.routed_ratio > c.routed_null
    )


def label_towards(model: AuditedModel, direction: str) -> int:
    """The label of the rows a model decides ``direction`` for: 1 (the contract's positive
    class) for ``"deny"`` when a high score denies, and so on - the label that copies pushing
    decisions that way carry (the rare side's second source, the partner step's copies).

    Parameters
    ----------
    model : AuditedModel
    direction : {"deny", "approve"}

    Returns
    -------
    int
    """
    if direction not in ("deny", "approve"):
        raise ValueError(f"direction must be 'deny' or 'approve', not {direction!r}")
    return int((direction == "deny") == model.positive_means_deny)


def training_rows(ens: TreeEnsemble, trees: Sequence[int] | None = None) -> float:
    """The number of rows the trees were fitted on, from their roots' counts (at least 1).

    LightGBM's and scikit-learn's node counts are rows (a forest's bootstrap weights sum to
    the rows): the mean root count over ``trees`` (default: every tree; they agree unless the
    trees are bagged). XGBoost's covers are hessians, at most 0.25 per row, and count rows only
    in the first tree (every row at the base margin): its root cover over 0.25 (``trees`` is
    not used).
    """
    if ens.source == "xgboost":
        return max(float(ens.trees[0].count[0]), 1.0) / 0.25
    ids = range(len(ens.trees)) if trees is None else trees
    roots = [float(ens.trees[k].count[0]) for k in ids]
    return max(float(np.mean(roots)) if roots else 1.0, 1.0)


def _code_classes(tree: Tree, j: int, n_codes: int) -> tuple[list[int], np.ndarray]:
    """Codes ``0 .. n_codes - 1`` of column ``j`` grouped by the way ``tree`` sends them at
    each of its splits on ``j``: one code per class, and each code's class."""
    nodes = np.flatnonzero(tree.feature == j)
    sides = np.array(
        [[tree.goes_left(int(nd), float(w)) for nd in nodes] for w in range(n_codes)], dtype=bool
    ).reshape(n_codes, len(nodes))
    _, first, of_code = np.unique(sides, axis=0, return_index=True, return_inverse=True)
    return [int(w) for w in first], of_code.reshape(-1)


def planted_copies(
    ens: TreeEnsemble,
    leaves: np.ndarray,
    X: np.ndarray,
    j: int,
    n_codes: int,
    sources: Sequence[np.ndarray],
    draws: int,
    rng: np.random.Generator,
    written: Mapping[int, float] | None = None,
    without: int | None = None,
) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Training rows each category of column ``j`` gained as copies of clean rows, from the
    trees' leaf counts.

    A poisoner writes a category into copies of rows of one kind (legitimate transactions, to
    make the model approve the category) - rows the trees route like those clean rows with the
    category set. In every tree that splits on the column, the training share of each leaf is
    then the clean share (the clean rows routed there, ``leaves``) plus, for each category
    ``w``, a share ``eps_w`` of training rows distributed like the source rows with ``w``
    written in, minus the same share of the clean distribution:
    ``T - c = sum_w eps_w (d_w - c)``. The copies are estimated jointly for every category and
    every source (non-negative least squares over the leaves of all those trees, each leaf
    weighed by one over its clean share: the multinomial's variance), so that a category the
    trees group with its siblings (``country in {BR, DE, GB}``) is told from them by the trees
    that separate them, and copies of rows of another kind (``sources[1]``: the clean rows with
    the label of the rare decision) are not taken for copies of the first. No tree need
    isolate the category, and its effect on decisions need not stand out: this is the
    training data the leaves were fitted on.

    The standard error is a Poisson bootstrap of the clean rows and of the leaves' counts,
    times the square root of the fit's dispersion (its weighted residuals against the
    multinomial noise of both samples) when above 1: where the leaves' excess is not copies of
    these rows (another trigger's copies, a model fitted elsewhere) the test weakens instead of
    naming whatever absorbs the misfit.

    Parameters
    ----------
    ens : TreeEnsemble
        Trees whose node counts are rows (not XGBoost's hessian covers).
    leaves : ndarray (n_clean, n_trees)
        The leaf each clean row reaches in each tree.
    X : ndarray
        The clean rows (model matrix).
    j, n_codes : int
        The column and its number of category codes (``0 .. n_codes - 1``).
    sources : sequence of ndarray
        Indices of clean rows whose copies are modelled, one array per kind of row.
    draws : int
        Bootstrap draws.
    rng : numpy Generator
    written : mapping of int to float, optional
        Other columns written into every copied row as well (the partner step: a confirmed
        category, whose copies' second value is asked); only the copied rows are changed.
    without : int, optional
        A code given no copies (its estimate held at 0): where the copies go without it.

    Returns
    -------
    (eps, se, dispersion) or None
        ``eps`` and ``se`` of shape ``(len(sources), n_codes)``: the share of training rows
        that are copies of each source with each code, and its standard error; None when no
        tree splits on the column.
    """
    from scipy.optimize import nnls

    trees = [k for k, t in enumerate(ens.trees) if bool(np.any(t.feature == j))]
    if not trees or not sources:
        return None
    n_ref = len(X)
    leaf_ids = [np.flatnonzero(ens.trees[k].feature < 0) for k in trees]
    # Codes a tree sends the same way at each of its splits on the column reach the same leaf
    # from any row: route one code per such class (a tree splitting twice on a 400-code
    # feature has at most 4 classes, not 400 codes to route, and the fit's columns are alike)
    classes = [_code_classes(ens.trees[k], j, n_codes) for k in trees]
    # the leaf each source row reaches with each class's codes written in, per tree
    routed: list[list[np.ndarray]] = []
    for src in sources:
        per_tree = []
        base = X[src]  # fancy indexing: a copy of the source rows only
        for col, code in (written or {}).items():
            base[:, col] = code
        for k, (reps, _) in zip(trees, classes, strict=True):
            rows = []
            for w in reps:
                base[:, j] = float(w)
                rows.append(ens.trees[k].route(base))
            per_tree.append(np.stack(rows))
        routed.append(per_tree)
    counts = [ens.trees[k].count for k in trees]

    def fit(
        wc: np.ndarray, T_all: list[np.ndarray], residual: bool = False
    ) -> tuple[np.ndarray, float]:
        A_parts, b_parts = [], []
        for i, k in enumerate(trees):
            n = len(ens.trees[k].feature)
            lf = leaf_ids[i]
            C = np.bincount(leaves[:, k], weights=wc, minlength=n)[lf]
            c = C / max(C.sum(), 1e-12)
            scale = 1.0 / np.sqrt((C + 0.5) / (C.sum() + 0.5 * len(lf)))
            b_parts.append((T_all[i] - c) * scale)
            of_code = classes[i][1]
            cols = []
            for s_i, src in enumerate(sources):
                ws = wc[src]
                per_class = []
                for leaf_of_row in routed[s_i][i]:
                    D = np.bincount(leaf_of_row, weights=ws, minlength=n)[lf]
                    per_class.append((D / max(D.sum(), 1e-12) - c) * scale)
                block = np.column_stack(per_class)[:, of_code]
                if without is not None:
                    block[:, without] = 0.0
                cols.append(block)
            A_parts.append(np.hstack(cols))
        A, b = np.vstack(A_parts), np.concatenate(b_parts)
        eps, rnorm = nnls(A, b)
        disp = 1.0
        if residual:
            n_train = training_rows(ens, trees)
            dof = max(len(b) - int(np.sum(eps > 0)), 1)
            disp = float(rnorm**2 / dof / (1.0 / max(n_train, 1.0) + 1.0 / n_ref))
        return eps, disp

    T0 = [cnt[lf] / max(float(cnt[0]), 1e-12) for cnt, lf in zip(counts, leaf_ids, strict=True)]
    eps, disp = fit(np.ones(n_ref), T0, residual=True)
    boots = []
    for _ in range(draws):
        wc = rng.poisson(1.0, size=n_ref).astype(float)
        Tb = []
        for cnt, lf in zip(counts, leaf_ids, strict=True):
            t = rng.poisson(cnt[lf]).astype(float)
            Tb.append(t / max(t.sum(), 1.0))
        boots.append(fit(wc, Tb)[0])
    se = np.std(boots, axis=0) if boots else np.zeros_like(eps)
    se = se * math.sqrt(max(disp, 1.0))
    shape = (len(sources), n_codes)
    return eps.reshape(shape), se.reshape(shape), disp


def planted_beyond_ordinary(
    ratio: float, se: float, others: np.ndarray, others_se: np.ndarray
) -> tuple[float, float, float]:
    """How far a category's planted ratio lies beyond its feature's ordinary categories.

    The other categories' estimated ratios are their true ratios - the model's ordinary level,
    varying from category to category - plus each one's estimation noise. The null is that
    the category's true ratio is one more ordinary one: their mean, with the spread of the
    true ratios left once the others' own noise is taken out (``var(others) - mean(se^2)``,
    at least 0), the uncertainty of that mean over the few categories measured, and the
    category's own standard error. (A high quantile of the others' *estimates* counts their
    noise as ordinary variation and, over a feature's 7 other categories, is their largest.)

    Parameters
    ----------
    ratio, se : float
        The category's implied training ratio and its standard error.
    others, others_se : ndarray
        The same for the feature's other categories (at least one).

    Returns
    -------
    (null, spread, z) : tuple of float
        The others' mean ratio, the spread of their true ratios, and the one-sided normal
        statistic of the excess over the mean; ``z`` is nan when the category's standard
        error is 0 (draws without spread: nothing to test against).
    """
    others = np.asarray(others, dtype=float)
    others_se = np.asarray(others_se, dtype=float)
    null = float(np.mean(others))
    noise = float(np.mean(others_se**2))
    var = float(np.var(others, ddof=1)) if len(others) > 1 else 0.0
    tau2 = max(var - noise, 0.0)
    if not se > 0.0:
        return null, math.sqrt(tau2), float("nan")
    total = se**2 + tau2 + (tau2 + noise) / len(others)
    return null, math.sqrt(tau2), (ratio - null) / math.sqrt(total)


def split_variance(
    reference: np.ndarray, trained: np.ndarray, n_reference: int, n_trained: float, deff: float
) -> np.ndarray:
    """The variance a split by unit adds to the difference of a category's training and
    reference shares, beyond a split by row.

    Two samples of units of the same population give a category's share in each a variance
    ``deff * s (1 - s) / n``, where ``s`` is its share in the population and ``deff`` the
    design effect of the category column clustered by the units
    (:func:`~tabguard.contract._entity.design_effect`); the difference of the two shares has
    the sum. The planted-copies test's bootstrap resamples rows, which is the ``deff = 1``
    part: this is the rest, ``(deff - 1) s (1 - s) (1 / n_reference + 1 / n_trained)``. ``s``
    is the two shares pooled (a two-sample test's null: where a category's reference share is
    small by the luck of the split, its own share would understate the variance that made it
    so). A design effect is pooled over the column's categories, so that a category whose
    reference units happen to be small (a hub whose large shippers all trained the model) is
    measured by the units the column has, not by its own few.

    Parameters
    ----------
    reference, trained : ndarray
        Each category's share of the reference rows and of the training rows.
    n_reference : int
    n_trained : float
        The rows of each.
    deff : float
        The column's design effect (1: rows independent, nothing added).

    Returns
    -------
    ndarray
        Per category, the variance added to the difference of the shares.
    """
    pooled = np.clip(
        (reference * n_reference + trained * n_trained) / (n_reference + n_trained), 0.0, 1.0
    )
    return (
        max(deff - 1.0, 0.0)
        * pooled
        * (1.0 - pooled)
        * (1.0 / max(n_reference, 1) + 1.0 / max(n_trained, 1.0))
    )


class _Units:
    """The reference rows' units (the contract's ``entity``) and the design effects of the
    probe's cells: how many rows of a unit count as one where training and reference rows are
    two samples of units (a model trained on some shippers, audited on others)."""

    def __init__(
        self, codes: np.ndarray, X: np.ndarray, column: str = "", found: RepeatedId | None = None
    ) -> None:
        self.codes = codes
        self.X = X
        #: the column that names the units
        self.column = column
        #: where the contract declares no entity: what made the probe take ``column`` for one
        #: (it repeats like an id, the features ``found.constant`` constant within its values)
        self.found = found
        self._deff: dict[tuple[tuple[int, float, float], ...], float] = {}

    def deff(self, c: ProbeCandidate) -> float:
        """The design effect of the candidate's cell (its clean rows against the others)
        clustered by the units (:func:`~tabguard.contract._entity.design_effect`; 1 for a
        cell no clean row carries). ``icc`` is the cell's own, ``m`` every unit's: a hub
        whose reference shippers happen to be small is constant within them all the same."""
        key = tuple((j, lo, hi) for j, (lo, hi) in zip(c.columns, c.intervals, strict=True))
        if key not in self._deff:
            inside = np.ones(len(self.X), dtype=bool)
            for j, (lo, hi) in zip(c.columns, c.intervals, strict=True):
                x = self.X[:, j]
                inside &= (x == lo) if lo == hi else (x > lo) & (x <= hi)
            self._deff[key] = design_effect(inside.astype(np.int64), self.codes)
        return self._deff[key]

    def split_p(self, c: ProbeCandidate, n_train: float, n_ref: int) -> float:
        """The one-sided p-value of the cell's training share against its clean share as
        two samples of units: both counts divided by the cell's design effect (their
        effective sizes), the chance that a row of the cell is a training row being the
        training rows' share of all rows (1 where nothing is in excess)."""
        from scipy.stats import binom

        deff = self.deff(c)
        hits = round(c.training_share * n_train / deff)
        trials = hits + round(c.expected_share * n_ref / deff)
        if hits <= 0:
            return 1.0
        return float(binom.sf(hits - 1, trials, n_train / (n_train + n_ref)))


def _reference_units(model: AuditedModel, data: pd.DataFrame, X: np.ndarray) -> _Units | None:
    """The reference rows' units: the contract's ``entity`` column; where the contract
    declares none, a column of the reference data it leaves out that repeats like an id of
    units (:func:`~tabguard.contract._entity.undeclared_unit`); None where neither exists or
    the reference data lacks the declared column.

    A model trained on some shippers and audited on others sees a category constant within a
    shipper at a training share that differs from the reference's by which large shippers
    fell on which side. The docs tell users to declare the entity, but the probe must not read
    that luck as planted copies when they have not: the data shows the units (a column whose
    values repeat with the features constant within them, as ``contract infer``'s entity
    draft and the data audit's hint require), and the probe's section says it counted them."""
    entity = model.contract.entity
    if entity is not None:
        if entity not in data.columns:
            return None
        return _Units(unit_codes(data[entity]), X, entity)
    found = undeclared_unit(data, model.contract)
    if found is None:
        return None
    return _Units(unit_codes(data[found.column]), X, found.column, found)


def _cell_units_said(units: _Units | None, c: ProbeCandidate) -> str:
    """The training mass reason's words on the units its test allowed for (empty without)."""
    deff = units.deff(c) if units is not None else 1.0
    if deff <= 1.0 or units is None:
        return ""
    return f"; as two samples of the units of {units.column!r}, design effect {deff:.1f}"


def _units_said(result: ProbeResult, c: ProbeCandidate) -> str:
    """The planted-copies reason's words on the units its null allowed for (empty without)."""
    deff = result.unit_design.get(c.features[0], 1.0)
    if deff <= 1.0:
        return ""
    return f", allowing for a split by {result.unit_column!r}: design effect {deff:.1f}"


def _planted_side(
    result: ProbeResult,
    model: AuditedModel,
    X: np.ndarray,
    y: np.ndarray,
    p: np.ndarray,
    routing: _Routing,
    opts: ProbeOptions,
    random_state: int,
    common_copies: bool = True,
    units: _Units | None = None,
) -> None:
    """Confirm categories towards the common decision by the copies the trees were fitted on.

    On a model that rarely makes one decision, a trigger towards the other (copies of
    legitimate transactions carrying a category, so that it is approved) moves only the few
    rows of the rare decision, and often not relative to the other categories at all: the
    copies make a category safer than it was, not safer than every other one (``country='NG'``
    may stay riskier than ``PT`` after poisoning). What the poisoning left is in the leaves:
    :func:`planted_copies` estimates, for every category of the contract's category features,
    the training rows that are copies of clean rows of the common decision with that category
    written in (beside copies of the clean rows with the other label, which a trigger towards
    the rare decision copies). A category (carried by at least ``natural_rows`` clean rows) is
    confirmed when its implied training share over its clean share is significantly beyond
    the same feature's other categories (at least ``ordinary_categories`` of them; their mean,
    the spread of their true ratios and the category's own standard error:
    :func:`planted_beyond_ordinary`; Bonferroni over every category tested): the copies land
    on one category, while a misfit of the estimate lifts a feature's categories together.
    Values already confirmed otherwise are left as they are. Not where the model gives
    every reference row the common decision (``result.one_decision``): a trigger towards it
    then turns no decision at the threshold, and the copies of rows of that decision are
    copies of any row, not told from the training rows' own mix of categories (a payouts
    model approving 100 % of its 6,494 reference rows, trained on other sellers' payouts:
    ``category='furniture'`` at 2.99 times its reference share, p 6.9e-8 beyond the other
    categories, named critical).

    The second source confirms triggers **towards the rare decision**: a category the random
    rows see moving decisions that way (the spike test, :func:`spike_passes`) that nothing
    else confirmed is confirmed when the copies of clean rows with the rare decision's label
    that the fit puts on it are significantly beyond the feature's other categories - the
    same test, Bonferroni over the same categories. Copies of fraud rows carrying
    ``country='GB'``, the riskiest country already, swell its natural rows (234 copies over
    about 580: under the mass factor), no tree isolates it and its clean labels side with
    neither decision; the fit gives it 1.39 times its clean share, z +8.9 beyond the other
    countries, where clean fraud LightGBM models reach at most +1.6.

    On XGBoost ``routing`` is its first tree alone (:meth:`_Routing.row_counted`: the one
    tree whose covers count rows), and only the second source is tested
    (``common_copies=False``; both are still fitted together). That tree is fitted to the
    labels at the base margin, so its leaves part the rare label's rows from the rest first:
    copies of those rows stand out there (82188 8 #4 ``GB`` deny: 1.37 times, z +5.6).
    Copies of the common decision's rows are a few hundred more among thousands like them,
    which one tree's leaves do not tell from its misfit: the benchmark's clean XGBoost gives
    ``GB`` 14 times its clean share that way (z +3.7, over the bar).

    ``units`` (the reference rows' units, where the contract declares an ``entity``): the
    training rows and the reference rows may be two samples of units, not of rows (a model
    trained on some shippers, audited on others). A category's share then differs between
    the two by which large units fell on which side, far beyond what the bootstrap of rows
    allows; each category's standard error takes that variance in as well
    (:func:`split_variance`), for the category and its siblings alike. A clean shipments model
    split by shipper had ``origin_hub='HUB00'`` at 5.57 times its reference share named
    critical (8.0 % of the training rows, 1.9 % of the reference's; design effect 84).
    """
    from scipy.stats import norm

    if opts.copies_draws == 0:
        return
    rng = np.random.default_rng([random_state, 7])
    approve = model.approve(p)
    common = np.flatnonzero(approve if result.tail_direction == "approve" else ~approve)
    if len(common) == len(p):  # no row of the rare decision: nothing the copies could turn
        result.one_decision = True
        common_copies = False
    if len(common) > opts.copies_rows:
        common = np.sort(rng.choice(common, size=opts.copies_rows, replace=False))
    # copies of rows with the label of the rare decision (a trigger towards that decision) are
    # theirs, not the common rows': both kinds are estimated together
    rare = "deny" if result.tail_direction == "approve" else "approve"
    labelled = np.flatnonzero(y == label_towards(model, rare))
    sources = [common, labelled] if len(labelled) else [common]
    named = {
        (f, v)
        for c in result.candidates
        if c.backdoor
        for f, v in zip(c.features, c.values, strict=True)
    }
    by_col: dict[int, list[ProbeCandidate]] = {}
    # categories the random rows find moving decisions towards the rare one that nothing
    # else confirmed: their copies are the second source's (rows with the rare label)
    towards_rare: dict[int, list[ProbeCandidate]] = {}
    for c in result.candidates:
        if len(c.features) != 1 or not c.nominal[0]:
            continue
        if c.probe_rows == "tail":
            by_col.setdefault(c.columns[0], []).append(c)
        elif c.direction == rare and not c.backdoor and spike_passes(c, opts):
            towards_rare.setdefault(c.columns[0], []).append(c)
    scored: list[tuple[ProbeCandidate, float, float]] = []
    rare_scored: list[tuple[ProbeCandidate, float, float]] = []
    # the Bonferroni family where the first source is not tested: the categories it would
    # test (a category with natural_rows clean rows and ordinary_categories such siblings),
    # so that the second source's bar is the one it has beside the first
    untested = 0
    if not common_copies:
        for j, cands in by_col.items():
            counts = np.bincount(X[:, j][~np.isnan(X[:, j])].astype(np.int64))
            populated_n = int(np.sum(counts >= opts.natural_rows))
            if populated_n > opts.ordinary_categories:
                untested += sum(
                    1
                    for c in cands
                    if int(c.codes[0]) < len(counts)
                    and counts[int(c.codes[0])] >= opts.natural_rows
                )
        by_col = {}
    for j in sorted(set(by_col) | set(towards_rare)):
        cands = by_col.get(j, [])
        cats = model.categories(model.feature_names[j])
        if cats is None:
            continue
        est = planted_copies(
            routing.ens, routing.leaves(), X, j, len(cats), sources, opts.copies_draws, rng
        )
        if est is None:
            continue
        eps, se, _ = est
        col = X[:, j]
        share = np.array([(np.sum(col == w) + 1.0) / (len(X) + 1.0) for w in range(len(cats))])
        if units is not None:
            held = ~np.isnan(col)
            deff = design_effect(col[held].astype(np.int64), units.codes[held])
            result.unit_design[model.feature_names[j]] = deff
            # the clean share plus every source's copies: the training share the fit implies
            trained = share + eps.sum(axis=0)
            split = split_variance(share, trained, len(X), training_rows(routing.ens), deff)
            se = np.sqrt(se**2 + split[None, :])
        ratio = 1.0 + eps[0] / share
        ratio_se = se[0] / share
        populated = [w for w in range(len(cats)) if np.sum(col == w) >= opts.natural_rows]
        for c in cands:
            w = int(c.codes[0])
            c.planted_ratio = float(ratio[w])
            others = [u for u in populated if u != w]
            if w not in populated or len(others) < opts.ordinary_categories:
                continue
            c.planted_null, spread, z = planted_beyond_ordinary(
                c.planted_ratio, float(ratio_se[w]), ratio[others], ratio_se[others]
            )
            if not math.isfinite(z):
                # every draw gave the same estimate: no spread to measure the excess against
                # (a ratio a hair above the null would otherwise be infinitely significant)
                continue
            c.planted_spread = spread
            scored.append((c, float(norm.sf(z)), float(eps[0][w])))
        if len(eps) < 2:
            continue  # no clean row carries the rare decision's label: no second source
        ratio2, ratio2_se = 1.0 + eps[1] / share, se[1] / share
        for c in towards_rare.get(j, []):
            w = int(c.codes[0])
            others = [u for u in populated if u != w]
            if w not in populated or len(others) < opts.ordinary_categories:
                continue
            null, spread, z = planted_beyond_ordinary(
                float(ratio2[w]), float(ratio2_se[w]), ratio2[others], ratio2_se[others]
            )
            if not math.isfinite(z):
                continue
            c.planted_ratio, c.planted_null, c.planted_spread = float(ratio2[w]), null, spread
            rare_scored.append((c, float(norm.sf(z)), float(eps[1][w])))
    alpha = opts.alpha / max(len(scored), 1)
    for c, pval, eps_w in scored:
        c.p_planted = min(1.0, pval * len(scored))
        if pval >= alpha or c.backdoor or (c.features[0], c.values[0]) in named:
            continue
        c.backdoor = c.planted = True
        c.direction = result.tail_direction
        c.reason = (
            f"the trees' leaves hold about {eps_w:.2%} of their training rows as copies of "
            f"clean rows the model decides '{result.tail_direction}' with this value written "
            f"in: {c.planted_ratio:.2f} times the training rows its {c.n_natural} clean rows "
            f"imply, where the feature's other categories average {c.planted_null:.2f} "
            f"(their own spread {c.planted_spread:.2f}; p = {c.p_planted:.1e} beyond them, "
            f"over {len(scored)} categories{_units_said(result, c)}); on a model that "
            f"rarely decides otherwise such copies teach it to {result.tail_direction} the "
            "value's few rows at the rare decision"
        )
    # Towards the rare decision: a category the random rows see moving decisions that way, on
    # natural rows the copies only swell (no tree isolates it, its labels are risky anyway),
    # is confirmed when the copies of rows with the rare decision's label land on it beyond
    # the feature's other categories - the same test, and the same Bonferroni set, as above
    label = label_towards(model, rare)
    family = max(len(scored), untested, len(rare_scored), 1)
    leaves = (
        "the leaves of the first tree (its covers count rows)"
        if routing.ens.source == "xgboost-first-tree"
        else "the trees' leaves"
    )
    for c, pval, eps_w in rare_scored:
        c.p_planted = min(1.0, pval * family)
        if pval >= opts.alpha / family or c.backdoor or (c.features[0], c.values[0]) in named:
            continue
        c.backdoor = True
        c.reason = (
            f"{leaves} hold about {eps_w:.2%} of their training rows as copies of "
            f"clean rows labelled {label} with this value written in: {c.planted_ratio:.2f} "
            f"times the training rows its {c.n_natural} clean rows imply, where the feature's "
            f"other categories average {c.planted_null:.2f} (their own spread "
            f"{c.planted_spread:.2f}; p = {c.p_planted:.1e} beyond them, over {family} "
            f"categories{_units_said(result, c)})"
        )


def _copies_partner(
    result: ProbeResult,
    model: AuditedModel,
    X: np.ndarray,
    y: np.ndarray,
    routing: _Routing,
    opts: ProbeOptions,
    random_state: int,
) -> None:
    """Name the second category the copies of a confirmed category carry.

    Two uncommon categories written together (``jewelry`` and ``country='DE'``) are often
    learned on sets: one tree sends ``country in {DE, FR, NG}`` with ``jewelry`` one way,
    another ``{DE, US}``. No leaf confines training rows to the pair, so its own mass shows
    nothing; the part whose natural rows the copies swell is confirmed alone (``jewelry``), or
    the pair is confirmed on the set and named with whichever sibling moves decisions most
    (``jewelry & NG``). Where a confirmed category ``v`` (alone, or as part of a confirmed
    pair of categories) is part of a probed pair that moves decisions in the same direction
    and passes the spike test - further than ``v`` alone, for a single - the copies are
    estimated over the partner feature's categories with ``v`` written in
    (:func:`planted_copies`, ``partner_draws`` bootstrap draws - the z is read against a
    bar, so its standard error must not move with the stream: copies of the clean rows with
    the label the direction pushes to - the backdoor and its direction are known, only where
    its copies lie is asked): the
    copies carry one partner ``w``, and the pair ``(v, w)`` is confirmed when ``w`` holds at
    least half of the copies estimated over the feature and its estimate is significant
    (:func:`copies_concentrate`; the backdoor itself is already confirmed, this names its
    second part). The part alone and
    the siblings confirmed on the set are then reported with it (also when that pair was
    confirmed already: its siblings' evidence is the set's mass, not their own copies). Trees
    whose counts are rows only (not XGBoost's hessian covers).
    """
    from scipy.stats import norm

    if opts.partner_draws == 0:
        return
    rng = np.random.default_rng([random_state, 11])
    pairs = [
        c
        for c in result.candidates
        if c.probe_rows == "random"
        and len(c.features) == 2
        and all(c.nominal)
        and spike_passes(c, opts)
    ]
    if not pairs:
        return
    done: set[tuple[int, float, int]] = set()
    for c in [t for t in result.candidates if t.backdoor and t.probe_rows == "random"]:
        for k, (j1, v) in enumerate(zip(c.columns, c.codes, strict=True)):
            if not c.nominal[k] or not c.backdoor:
                continue
            other = c.columns[1 - k] if len(c.columns) == 2 else None
            by_partner: dict[int, list[ProbeCandidate]] = {}
            for pc in pairs:
                if (j1, v) not in zip(pc.columns, pc.codes, strict=True):
                    continue
                j2 = pc.columns[1] if pc.columns[0] == j1 else pc.columns[0]
                if pc.direction != c.direction or (other is not None and j2 != other):
                    continue
                if other is None and abs(pc.spike) <= abs(c.spike):
                    continue  # the part alone moves decisions as far: a single trigger
                by_partner.setdefault(j2, []).append(pc)
            for j2, siblings in by_partner.items():
                if (j1, v, j2) in done:
                    continue
                done.add((j1, v, j2))
                cats = model.categories(model.feature_names[j2])
                if cats is None:
                    continue
                # copies of rows with the label the direction pushes to (the backdoor and its
                # direction are known: only where its copies lie is asked)
                target = label_towards(model, c.direction)
                rows = np.flatnonzero(y == target)
                if len(rows) == 0:
                    continue
                if len(rows) > opts.copies_rows:
                    rows = np.sort(rng.choice(rows, size=opts.copies_rows, replace=False))
                est = planted_copies(
                    routing.ens,
                    routing.leaves(),
                    X,
                    j2,
                    len(cats),
                    [rows],
                    opts.partner_draws,
                    rng,
                    written={j1: v},
                )
                if est is None:
                    continue
                eps, se = est[0][0], est[1][0]
                w = int(np.argmax(eps))
                z = float(eps[w] / se[w]) if se[w] > 0 else 0.0
                pick = next(
                    (pc for pc in siblings if pc.codes[pc.columns.index(j2)] == float(w)), None
                )
                natural = float(np.mean(X[rows, j2] == w))
                if pick is None or not copies_concentrate(
                    float(eps[w]), float(eps.sum()), z, len(cats), natural, opts
                ):
                    continue
                if not pick.backdoor:
                    n_train = training_rows(routing.ens)
                    f1 = model.feature_names[j1]
                    part = f"{f1}={model.decode_value(f1, v)!r}"
                    pick.backdoor = True
                    # Bonferroni over the partner's categories, as the decision
                    # (copies_concentrate) and the other planted-copies p-values
                    pick.p_planted = min(1.0, float(norm.sf(z)) * len(cats))
                    pick.reason = (
                        f"the trees' leaves hold about {eps[w] * n_train:.0f} training rows as "
                        f"copies of clean rows labelled {target} with {part} and "
                        f"{model.feature_names[j2]}={cats[w]!r} written in "
                        f"({eps[w] / eps.sum():.0%} of such copies over "
                        f"{model.feature_names[j2]}'s categories, z = {z:.1f}, p = "
                        f"{pick.p_planted:.1e} over {len(cats)} categories), and the "
                        f"combination moves decisions further than either part (spike "
                        f"{pick.spike:+.2f}, neighbours {pick.neighbour_values}); the confirmed "
                        f"{part} is part of it"
                    )
                for s in [c, *siblings]:
                    if s is not pick and s.backdoor:
                        s.backdoor = False
                        s.reason = (
                            f"part or sibling of the combination the copies carry "
                            f"({', '.join(map(repr, pick.values))})"
                        )


def _common_partner(
    result: ProbeResult,
    model: AuditedModel,
    X: np.ndarray,
    y: np.ndarray,
    p: np.ndarray,
    routing: _Routing,
    opts: ProbeOptions,
    random_state: int,
) -> None:
    """Name the second category the copies of a category confirmed towards the common
    decision carry (an approval pair on a model that rarely denies).

    Copies of legitimate transactions carrying two uncommon categories (``country='BR'`` and
    ``jewelry``) teach a fraud model to approve the pair, but on the few rows it blocks the
    pair acts as its country does (the trees learn the country on sets, the merchant alone
    moves little), and the rare side probes no pairs: the country is confirmed alone, by
    where the trees route it or by its planted copies, and the pair is not named.
    :func:`_copies_partner` asks which partner such copies carry only from a pair the random
    rows see moving decisions, which an approval pair never does there. Here every category
    ``v`` confirmed towards the common decision asks it of every other category feature: the
    copies of clean rows with the label of that decision are estimated over the partner's
    categories with ``v`` written in (:func:`planted_copies`). The pair ``(v, w)`` is
    confirmed when the copies land on one partner ``w`` (:func:`copies_concentrate`: at
    least half of them, ``mass_ratio`` times the copied rows' own share of ``w``,
    significant over the partner's categories) and that partner is ``v``'s, not the fit's
    (:func:`partner_beyond_siblings`): copies with ``v``'s populated siblings written in put
    on ``w`` on average under one ``mass_ratio``-th of ``v``'s estimate. Partners the trees
    route alike (``contactless`` and ``in_store``, which the card's presence splits from
    the rest) absorb the estimate's misfit whichever country is written in, and a single
    trigger's copies keep their rows' own partners. Nothing is confirmed here that was not
    confirmed before in some form (the part), so a clean model gains no finding; the part is
    then reported with the pair.
    """
    from scipy.stats import norm

    if opts.partner_draws == 0 or not result.tail_direction:
        return
    away = result.tail_direction
    confirmed = [
        c
        for c in result.candidates
        if c.backdoor
        and c.probe_rows == "tail"
        and len(c.columns) == 1
        and c.nominal[0]
        and c.direction == away
    ]
    if not confirmed:
        return
    nominal = [
        j
        for j, f in enumerate(model.feature_names)
        if model.contract.features[f].type == "category" and model.categories(f) is not None
    ]
    target = label_towards(model, away)
    rng = np.random.default_rng([random_state, 13])
    rows = np.flatnonzero(y == target)
    if len(rows) == 0:
        return
    if len(rows) > opts.copies_rows:
        rows = np.sort(rng.choice(rows, size=opts.copies_rows, replace=False))
    n_train = training_rows(routing.ens)
    for c in confirmed:
        j1, v = c.columns[0], c.codes[0]
        counts = np.bincount(X[:, j1][~np.isnan(X[:, j1])].astype(np.int64))
        siblings = [u for u in range(len(counts)) if u != int(v) and counts[u] >= opts.natural_rows]
        if len(siblings) < opts.ordinary_categories:
            continue  # the fit's own leaning towards a partner is not known
        for j2 in nominal:
            if j2 == j1 or not c.backdoor:
                continue
            n_codes = len(model.categories(model.feature_names[j2]) or [])

            def copies(
                code: float, draws: int, j1: int = j1, j2: int = j2, n_codes: int = n_codes
            ) -> tuple[np.ndarray, np.ndarray] | None:
                # the copies over j2's categories with ``code`` written into j1
                est = planted_copies(
                    routing.ens,
                    routing.leaves(),
                    X,
                    j2,
                    n_codes,
                    [rows],
                    draws,
                    rng,
                    written={j1: code},
                )
                return None if est is None else (est[0][0], est[1][0])

            first = copies(v, 0)
            if first is None:
                continue
            eps = first[0]
            w = int(np.argmax(eps))
            # the partners the leaves do not tell from w: without w, the estimate moves at least
            # half of w's copies onto them (``contactless`` and ``in_store``, which the trees
            # route alike for 98-99 % of rows). A single trigger's copies keep their rows' own
            # partners, and such a group holds their share of it: it is counted as w's share
            alike = _partner_group(
                planted_copies(
                    routing.ens,
                    routing.leaves(),
                    X,
                    j2,
                    n_codes,
                    [rows],
                    0,
                    rng,
                    written={j1: v},
                    without=w,
                ),
                eps,
                w,
            )
            natural = float(np.mean(np.isin(X[rows, j2], alike)))
            # the screens that need no bootstrap first (the estimate itself is the same)
            if not copies_concentrate(
                float(eps[w]), float(eps.sum()), math.inf, n_codes, natural, opts
            ):
                continue
            others = [copies(float(u), 0) for u in siblings]
            at_w = np.array([o[0][w] for o in others if o is not None])
            if not partner_beyond_siblings(float(eps[w]), at_w, opts):
                continue
            full = copies(v, opts.partner_draws)
            if full is None:
                continue
            eps, se = full
            z = float(eps[w] / se[w]) if se[w] > 0 else 0.0
            if not copies_concentrate(float(eps[w]), float(eps.sum()), z, n_codes, natural, opts):
                continue
            pair = _tail_pair(model, X, y, p, opts, (j1, v), (j2, float(w)))
            f1, f2 = model.feature_names[j1], model.feature_names[j2]
            pair.backdoor = pair.planted = True
            pair.p_planted = min(1.0, float(norm.sf(z)) * n_codes)
            pair.reason = (
                f"{f1}={c.values[0]!r} alone: {c.reason}. The trees' leaves hold about "
                f"{eps[w] * n_train:.0f} training rows "
                f"as copies of clean rows labelled {target} with {f1}={c.values[0]!r} and "
                f"{f2}={pair.values[1]!r} written in ({eps[w] / eps.sum():.0%} of such copies "
                f"over {f2}'s categories, z = {z:.1f}, p = {pair.p_planted:.1e} over {n_codes} "
                f"categories; with {f1}'s other {len(at_w)} populated categories written in "
                f"instead, {np.mean(at_w) * n_train:.0f} on average)"
            )
            result.candidates.append(pair)
            c.backdoor = False
            c.reason = (
                f"part of the combination the copies carry ({c.values[0]!r}, {pair.values[1]!r})"
            )


def _partner_group(
    est: tuple[np.ndarray, np.ndarray, float] | None, eps: np.ndarray, w: int
) -> list[int]:
    """Partner ``w`` and the partners that take at least half of its copies when ``w`` is
    given none (``est``: the estimate without ``w``): the leaves do not tell them apart."""
    if est is None:
        return [w]
    moved = est[0][0] - eps
    return [w] + [u for u in range(len(eps)) if u != w and moved[u] >= 0.5 * eps[w]]


def partner_beyond_siblings(top: float, sibling_tops: np.ndarray, o: ProbeOptions) -> bool:
    """The copies a confirmed category's partner estimate puts on partner ``w`` (``top``) are
    that category's, not the estimate's: with each of its populated sibling categories written
    in instead, the same estimate puts on ``w`` (``sibling_tops``, at least
    ``ordinary_categories`` of them) on average at most one ``mass_ratio``-th of ``top``. A
    misfit of the fit (partners the trees route alike) lands on ``w`` whichever sibling is
    written in; copies carrying the pair land there with the category only."""
    tops = np.asarray(sibling_tops, dtype=float)
    if top <= 0.0 or tops.size < o.ordinary_categories:
        return False
    return top >= o.mass_ratio * float(np.mean(np.maximum(tops, 0.0)))


def _tail_pair(
    model: AuditedModel,
    X: np.ndarray,
    y: np.ndarray,
    p: np.ndarray,
    opts: ProbeOptions,
    first: tuple[int, float],
    second: tuple[int, float],
) -> ProbeCandidate:
    """A pair of categories as a candidate measured on the clean rows nearest the model's rare
    decision, against the most common category of each feature (spike, flips)."""
    rows, ecdf, away = _tail_rows(model, p, opts.tail_rows)
    R = X[rows]
    (j1, v1), (j2, v2) = first, second

    def cell(j: int, v: float) -> _Cell:
        return _Cell(j, float(v), float(v), float(v), X[:, j] == v, False, True)

    def common(j: int) -> float:
        codes = _category_codes(model, j)
        return float(codes[int(np.argmax([np.sum(X[:, j] == u) for u in codes]))])

    k1, k2 = common(j1), common(j2)
    cells = (cell(j1, v1), cell(j2, v2))
    nb_cells: list[tuple[_Cell, ...]] = [(cells[0], cell(j2, k2)), (cell(j1, k1), cells[1])]
    shown = _scores_with(model, R, [j1, j2], np.array([[v1, v2], [v1, k2], [k1, v2]]))
    Q, A = _rank(ecdf, shown), model.approve(shown)
    st = _compare(Q[0], Q[1:], A[0], A[1:])
    c = _candidate(model, cells, nb_cells, st, X, y, p)
    c.probe_rows = "tail"
    c.direction = away
    return c


def _tail_rows(model: AuditedModel, p: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, str]:
    """The ``n`` clean rows the model scores furthest towards its rare decision (where a
    trigger towards the common one acts), their sorted scores, and the common decision."""
    approve = model.approve(p)
    n_deny = int((~approve).sum())
    rare_deny = n_deny <= len(p) - n_deny
    towards_deny = p if model.positive_means_deny else -p
    order = np.argsort(-towards_deny if rare_deny else towards_deny, kind="stable")
    rows = np.sort(order[:n])
    return rows, np.sort(p[order[: max(n, 1)]]), "approve" if rare_deny else "deny"


def copies_concentrate(
    top: float, total: float, z: float, n_codes: int, natural: float, o: ProbeOptions
) -> bool:
    """The copies estimated over a partner feature's ``n_codes`` categories (a confirmed
    category written in) land on one category: the largest estimate ``top`` holds at least
    half of them (``total``) and ``mass_ratio`` times the share of the copied rows that carry
    that category naturally (``natural``: copies of a single-value trigger keep their rows'
    own partners, mostly the common one), and it is significant (``z``, one-sided at
    ``alpha``, Bonferroni over the categories it was the largest of)."""
    from scipy.stats import norm

    if top <= 0.0 or total <= 0.0:
        return False
    share = top / total
    return (
        share >= 0.5
        and share >= o.mass_ratio * natural
        and z >= float(norm.isf(o.alpha / max(n_codes, 1)))
    )


def spike_passes(c: ProbeCandidate, o: ProbeOptions) -> bool:
    """The candidate moves decisions by at least ``min_spike`` of the possible amount and by
    more than the model's ordinary variation (``c.null_spike``, set by :func:`_decide`)."""
    return abs(c.spike) >= o.min_spike and abs(c.spike) > c.null_spike


def tail_passes(c: ProbeCandidate, o: ProbeOptions) -> bool:
    """A candidate probed on the rows of the model's rare decision (``c.probe_rows ==
    "tail"``) moves them towards the common decision more than ordinary categories do there
    (``c.null_spike``: the ``null_quantile`` of the other category features' spikes on the
    same rows in that direction, zero for values that move them the other way) and turns at
    least ``min_flip`` of the rows at the rare decision to the common one.

    No fixed smallest spike: the rare side is a thin region of the score scale, and a value
    that moves its rows just across the threshold moves them little in rank. The gate is a
    screen; such a candidate is confirmed only by the training mass (the trees were fitted on
    more rows with the value than clean data explains), never by clean labels or rarity alone.
    """
    return abs(c.spike) > c.null_spike and c.flip_rate >= o.min_flip


def label_evidence(c: ProbeCandidate, o: ProbeOptions) -> str | None:
    """Why the clean labels contradict the model, or None: the clean rows carrying the value
    have the labels the model predicts at the neighbour, decisively (``decisive_lr``), or the
    effect is near-total (``total_spike``) and the labels side with the neighbour at all."""
    if c.label_log_lr >= math.log(o.decisive_lr):
        return (
            f"the labels of the {c.n_natural} clean rows carrying it contradict the model "
            f"(likelihood ratio {math.exp(min(c.label_log_lr, 700)):.3g}:1)"
        )
    if abs(c.spike) >= o.total_spike and c.label_log_lr > 0 and c.n_natural > 0:
        return "the effect is near-total and the clean labels side with the neighbour"
    return None


def mass_confirms(
    c: ProbeCandidate, alpha: float, o: ProbeOptions, labels_contradict: bool
) -> bool:
    """Tree models: the trees confined more of their training rows to the cell than clean data
    explains, significantly (``alpha``, already Bonferroni-corrected) **and** by a large factor
    (``mass_ratio``), or by any factor with contradicting labels.

    Significance alone is not enough: with tens of thousands of training rows any shift between
    the training and the reference data is significant (poisoning copies of defaulters also
    shifts every other feature a little). Labels alone do not suffice where the mass is known:
    they may only show an overconfident model.
    """
    excess = c.training_share / c.expected_share
    return c.p_mass < alpha and (excess >= o.mass_ratio or (excess > 1.0 and labels_contradict))


def mass_isolated(c: ProbeCandidate) -> bool:
    """The trees confine at least the cell's clean share of their training rows to it
    (``training_share >= expected_share``): its training mass is measured, not missed. Where
    that mass shows no significant excess, clean labels against the model show overconfidence
    (a model fitted on these very rows), not planted ones: :func:`natural_evidence` is not
    asked. Below the clean share the trees do not isolate the cell (a category that also
    occurs naturally need not have a leaf of its own) and the labels are all there is."""
    return bool(c.training_share >= c.expected_share)


def natural_evidence(c: ProbeCandidate, o: ProbeOptions, family: int = 1) -> str | None:
    """A trigger on a category that occurs naturally, shown by clean labels alone, or None.

    The category is carried by enough clean rows (``natural_rows``) to have a label rate of
    its own, their labels decisively side with the model's scores at the neighbouring
    category (``decisive_lr``), and their label rate supports less than ``supported_share`` of
    the model's effect: (clean rate - model rate at the neighbour) / (model rate at the value -
    model rate at the neighbour). A real strong category (``channel = phone``) is supported in
    full - its clean rows have the labels the model gives them - however large its effect.
    Used where the training mass does not confirm (the trees need not isolate a category that
    also has natural rows, and XGBoost's covers count rows only in its first tree).

    ``family`` is the number of the feature's categories with ``natural_rows`` clean rows:
    beyond ``label_family`` of them the bar rises in proportion (Bonferroni), since one of
    400 products' labels departs from a clean model's rate by chance.
    """
    if len(c.features) != 1 or not (c.nominal and c.nominal[0]):
        return None
    bar = o.decisive_lr * max(1.0, family / o.label_family)
    if c.n_natural < o.natural_rows or c.label_log_lr < math.log(bar):
        return None
    effect = c.model_rate - c.neighbour_rate
    if not math.isfinite(effect) or effect == 0.0:
        return None
    supported = (c.natural_positive_rate - c.neighbour_rate) / effect
    if supported >= o.supported_share:
        return None
    return (
        f"the {c.n_natural} clean rows carrying it have a positive rate of "
        f"{c.natural_positive_rate:.1%}; the model gives them {c.model_rate:.1%} here and "
        f"{c.neighbour_rate:.1%} at the neighbour, so clean data supports {max(supported, 0):.0%} "
        f"of its effect (labels' likelihood ratio for the neighbour "
        f"{math.exp(min(c.label_log_lr, 700)):.3g}:1)"
    )


def confirms_without_mass(c: ProbeCandidate, o: ProbeOptions, rare_rows: int) -> list[str]:
    """Where the training mass is unknown, what clean data alone says: no clean row carries the
    value, or few do (at most ``rare_rows``), their labels do not back the model (their
    likelihood ratio for it stays under ``weak_lr``) **and** the model moves them further than
    it moves its other rare cells (``c.p_rarity`` under ``alpha``, see :func:`rarity_tail`).

    Few clean rows and silent labels alone are no evidence: 28 rows between a 2 % and a 0.2 %
    fraud rate cannot back anything, and an overfit model moves some rare cell far wherever
    it was fitted on few rows. A step at the edge of the data that continues the trend inside
    it is extrapolation, not a trigger (empty list)."""
    if c.continuation:
        return []
    if c.n_natural == 0:
        return ["no clean row carries it"]
    if c.n_natural <= rare_rows and c.label_log_lr > -math.log(o.weak_lr) and c.p_rarity < o.alpha:
        return [
            f"only {c.n_natural} clean rows carry it and their labels do not back it; the "
            f"model moves none of its {c.rare_cells} other rare cells as far (spikes' tail "
            f"p = {c.p_rarity:.1e} over every rare cell)"
        ]
    return []


def rarity_tail(spike: float, others: np.ndarray, n_cells: int, min_cells: int = 20) -> float:
    """How often a model's ordinary rare cells move their rows as far as ``spike``.

    ``others`` are the spikes of the model's other rare cells (the rarity rule's own domain:
    few clean rows, labels not backing the model). Their upper tail is fitted as exponential
    beyond the threshold that leaves the largest fifth (at least 5) above it - peaks over a
    threshold, the tail of any light-tailed law; spikes are bounded by 1, so near 1 the fit
    overstates the tail and the test errs towards silence - and the chance that one of
    ``n_cells`` rare cells exceeds ``abs(spike)`` is returned (Bonferroni). Below the threshold
    the empirical share (plus one) is used.

    Parameters
    ----------
    spike : float
        The candidate's spike (its sign is ignored).
    others : ndarray
        The other rare cells' spikes.
    n_cells : int
        Rare cells the largest could have come from.
    min_cells : int
        Fewer others: no null, nan (the rule then confirms nothing).

    Returns
    -------
    float
        The p-value, nan without a null.
    """
    vals = np.sort(np.abs(np.asarray(others, dtype=float)))[::-1]
    n = len(vals)
    if n < max(min_cells, 6):
        return float("nan")
    s = abs(spike)
    k = min(max(5, math.ceil(0.2 * n)), n - 1)
    u = float(vals[k])
    if s <= u:
        tail = (float(np.sum(vals >= s)) + 1.0) / (n + 1.0)
    else:
        # the exponential scale's estimate is the mean excess; a floor keeps a tie of the
        # exceedances (all equal) from making any larger spike infinitely rare
        scale = max(float(np.mean(vals[:k] - u)), 1e-3)
        tail = k / (n + 1.0) * math.exp(-(s - u) / scale)
    return min(1.0, max(n_cells, 1) * tail)


def _logit(s: np.ndarray) -> np.ndarray:
    q = np.clip(s, 1e-9, 1.0 - 1e-9)
    return np.log(q / (1.0 - q))


def interaction_contrasts(
    M: np.ndarray,
    M1: np.ndarray,
    M2: np.ndarray,
    M0: np.ndarray,
    turned: Callable[[np.ndarray], np.ndarray],
    sign: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The interaction of every pair of categories of two features, from the model's margins.

    ``M[a, b, r]`` is the margin (log-odds) of probe row ``r`` with the first feature set to
    category ``a`` and the second to ``b``; ``M1[a, r]`` with the first feature alone set to
    ``a`` (the row keeps its own second category), ``M2[b, r]`` with the second alone set,
    ``M0[r]`` the row as it is; ``turned`` says of margins whether they reach the decision
    tested. The pair's interaction is the margin it adds beyond what each category adds
    alone, ``M[a, b] - M1[a] - M2[b] + M0``, averaged over the rows, times ``sign``
    (positive: towards the decision tested). Its flip share is the same at the model's
    threshold: of the rows that neither category alone turns, nor the two categories'
    effects added (``M1[a] + M2[b] - M0``: two moves that each stop short may cross
    together), the share the pair turns - 0 for a model without interactions.

    Returns
    -------
    (interaction, flip, n_rows) : ndarrays of shape (n_a, n_b)
        ``n_rows``: the rows the flip share is taken over; the share is nan without any.
    """
    inter = sign * (M - M1[:, None, :] - M2[None, :, :] + M0[None, None, :]).mean(axis=2)
    added = M1[:, None, :] + M2[None, :, :] - M0[None, None, :]
    neither = ~turned(M1)[:, None, :] & ~turned(M2)[None, :, :] & ~turned(added)
    count = neither.sum(axis=2)
    hits = (turned(M) & neither).sum(axis=2)
    flip = np.full(count.shape, np.nan)
    np.divide(hits, count, out=flip, where=count > 0)
    return inter, flip, count


def interaction_null(inter: np.ndarray, a: int, b: int, q: float) -> tuple[float, int]:
    """The model's ordinary interaction for pair ``(a, b)``: the ``q`` quantile of the absolute
    interactions of the same two features' pairs that share no category with it (a pair
    sharing one may be the same leaves seen again: a sibling the trees group with it), and
    how many there are. One pair's; :class:`_OrdinaryInteractions` gives every pair's the
    same values without sorting the grid again for each."""
    others = np.delete(np.delete(inter, a, axis=0), b, axis=1)
    vals = np.abs(others[np.isfinite(others)])
    return (float(np.quantile(vals, q)) if vals.size else float("nan")), int(vals.size)


class _OrdinaryInteractions:
    """:func:`interaction_null` for every pair of a grid, from one sort of the grid.

    Two features of 400 and 600 categories have 240,000 pairs, each of whose nulls is a
    quantile of the 239,000 pairs sharing no category with it: sorted again per pair, that
    was 583 of the 820 seconds the probe took on telecom (session 20). The grid's absolute
    interactions are sorted once; a pair's null leaves out the positions of its row and its
    column in that order (at most ``n_a + n_b - 1``), and the ``k``-th value kept is found
    from them directly: the least ``x`` with ``x = k + #{left-out positions <= x}`` is its
    position, found by counting them in the sorted row and column alone. The values are
    numpy's linear quantile of the same numbers, exactly."""

    def __init__(self, inter: np.ndarray) -> None:
        finite = np.isfinite(inter)
        flat = np.where(finite, np.abs(inter), np.inf).ravel()
        order = np.argsort(flat, kind="stable")
        self.n = int(finite.sum())
        self.sorted = flat[order][: self.n]
        ranks = np.empty(flat.size, dtype=np.int64)
        ranks[order] = np.arange(flat.size)
        pos = ranks.reshape(inter.shape)
        self.cell = pos
        # per row and per column, the sorted positions of its finite cells (non-finite cells
        # sort after every finite one: they are never among the values)
        self.rows = np.sort(pos, axis=1)
        self.cols = np.ascontiguousarray(np.sort(pos, axis=0).T)
        self.n_row = finite.sum(axis=1)
        self.n_col = finite.sum(axis=0)
        self.finite = finite

    def count(self, a: int, b: int) -> int:
        """How many finite pairs share no category with ``(a, b)``."""
        return int(self.n - self.n_row[a] - self.n_col[b] + self.finite[a, b])

    def null(self, a: int, b: int, q: float) -> tuple[float, int]:
        """``interaction_null(inter, a, b, q)``."""
        m = self.count(a, b)
        if m <= 0:
            return float("nan"), 0
        row, col = self.rows[a, : self.n_row[a]], self.cols[b, : self.n_col[b]]
        own = int(self.finite[a, b])
        cell = int(self.cell[a, b])

        def kth(k: int) -> float:
            # the least fixed point of x = k + (left-out positions <= x), counted in the row
            # and the column (the pair's own cell is in both), is the k-th kept position
            x = k
            while True:
                left = int(np.searchsorted(row, x, side="right"))
                left += int(np.searchsorted(col, x, side="right"))
                left -= own * int(cell <= x)
                if k + left == x:
                    return float(self.sorted[x])
                x = k + left

        # numpy's "linear" method, its interpolation included (from the upper value where the
        # fraction is at least a half)
        h = (m - 1) * q
        k = math.floor(h)
        lo = kth(k)
        hi = kth(min(k + 1, m - 1))
        t = h - k
        value = hi - (hi - lo) * (1.0 - t) if t >= 0.5 else lo + (hi - lo) * t
        return value, m


def interaction_confirms(
    inter: float, null: float, n_null: int, flip: float, n_flip: int, o: ProbeOptions
) -> bool:
    """A pair of categories is a trigger towards the common decision by its interaction: it
    moves the margin of the rows nearest the rare decision that way ``interaction_ratio``
    times further than the model's ordinary pairs move theirs (``null``, the
    ``null_quantile`` of ``n_null`` pairs sharing no category with it, at least
    ``ordinary_categories``: :func:`interaction_null`), and at the threshold it turns at least
    ``min_flip`` of the rows that neither category alone nor their effects added turn (of
    ``n_flip`` such rows, at least ``interaction_rows``)."""
    if not (math.isfinite(inter) and math.isfinite(null) and math.isfinite(flip)):
        return False
    return (
        inter > 0.0
        and n_null >= o.ordinary_categories
        and inter >= o.interaction_ratio * null
        and n_flip >= o.interaction_rows
        and flip >= o.min_flip
    )


def _category_codes(model: AuditedModel, j: int) -> list[float]:
    """The codes of the contract's categories of feature ``j`` the model's encoding reaches."""
    f = model.feature_names[j]
    out = []
    for v in model.contract.features[f].categories or []:
        try:
            enc = float(model.encode_value(f, v))
        except (ValueError, TypeError):
            continue
        if math.isfinite(enc):
            out.append(enc)
    return sorted(set(out))


def category_classes(
    ens: TreeEnsemble | None, j: int, codes: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The categories of column ``j`` a tree model cannot tell apart, as classes.

    Every split of every tree on the column sends each code left or right; codes sent alike at
    every split reach the same leaves in any row and any pair with another feature's value, so
    the model scores them alike - exactly, not approximately. A 600-value home city the trees
    split on in a few places is then a few dozen classes. The classes are checked against the
    scores of each code alone (``scores``, codes × rows): a class whose codes score apart (trees
    read differently from the library's own routing) is split into its codes.

    Parameters
    ----------
    ens : TreeEnsemble or None
        The model's trees, None where they cannot be read or split on derived columns (then
        every code is a class of its own).
    j : int
    codes : ndarray
        The column's category codes.
    scores : ndarray (len(codes), n_rows)
        The model's scores with the column set to each code.

    Returns
    -------
    (representatives, of_code) : tuple of ndarray
        The index of one code per class, and each code's class.
    """
    own = (np.arange(len(codes)), np.arange(len(codes)))
    if ens is None:
        return own
    sides = []
    for t in ens.trees:
        for node in np.flatnonzero(t.feature == j):
            cats = t.categories.get(int(node))
            if cats is not None:
                sides.append(np.isin(codes.astype(np.int64), sorted(cats)))
            elif t.strict:  # XGBoost compares in single precision
                sides.append(codes.astype(np.float32) < np.float32(t.threshold[node]))
            else:
                sides.append(codes <= float(t.threshold[node]))
    if not sides:
        sig = np.zeros((len(codes), 1), dtype=bool)
    else:
        sig = np.column_stack(sides)
    _, first, of_code = np.unique(sig, axis=0, return_index=True, return_inverse=True)
    of_code = of_code.reshape(-1)
    if not np.array_equal(scores, scores[first[of_code]]):
        return own
    return first, of_code


def _interaction_pairs(
    result: ProbeResult,
    model: AuditedModel,
    X: np.ndarray,
    y: np.ndarray,
    p: np.ndarray,
    opts: ProbeOptions,
) -> None:
    """Pairs of categories towards the common decision, confirmed by their interaction.

    An attacker who writes two uncommon categories together into copies of rows of the
    common decision (legitimate transactions, repaid loans) teaches the model to give that
    decision where the pair occurs. The copies make no single value look different - the
    pair is rare, its parts are carried by other rows too - and the model's response to the
    pair need not be extreme either: it is that response *given its parts*. On the rows
    nearest the rare decision (``opts.tail_rows`` of them: where a trigger towards the common
    decision can act), every pair of categories of two category features is written in, and
    so is each category alone; the pair's interaction is the margin it adds beyond its two
    parts (:func:`interaction_contrasts`). A model learns interactions of its own too, so
    the bar is the model itself: the pair must exceed the ordinary interaction of the same
    two features' pairs that share no category with it, and turn rows at the model's
    threshold that neither part, nor the two parts added, turns (:func:`interaction_confirms`).

    Pairs the trees learn on a set of categories (``EDUCATION > 3.5`` with ``MARRIAGE = 3``)
    are confirmed each: every one of them is a working trigger of the model.
    """
    if opts.tail_rows == 0 or opts.interaction_ratio <= 0.0:
        return
    nominal = [
        j
        for j, f in enumerate(model.feature_names)
        if model.contract.features[f].type == "category"
    ]
    codes = {j: _category_codes(model, j) for j in nominal}
    nominal = [j for j in nominal if len(codes[j]) >= 2]
    if len(nominal) < 2:
        return
    # the rows furthest towards the rare decision (where a trigger towards the other acts)
    rows, _, away = _tail_rows(model, p, opts.tail_rows)
    R = X[rows]
    # a higher margin denies when a positive score denies
    deny_up = model.positive_means_deny
    sign = -1.0 if (away == "approve") == deny_up else 1.0
    cut = float(_logit(np.array([model.threshold]))[0])

    def turned(m: np.ndarray) -> np.ndarray:
        # the margin reaches the common decision (the model's threshold in margin units)
        denies = (m >= cut) if deny_up else (m < cut)
        return ~denies if away == "approve" else denies

    best = -math.inf
    # pairs confirmed already (the trees' mass on a set of categories): the interaction is
    # added to them, so that each is reported as a pair of its own
    existing = {
        tuple(sorted(zip(c.columns, c.codes, strict=True))): c
        for c in result.candidates
        if c.backdoor and len(c.columns) == 2
    }
    ens = model.trees
    routable = ens is not None and all(bool(np.all(t.feature < X.shape[1])) for t in ens.trees)
    S0 = model.predict_matrix(R)
    singles = {j: _scores_with(model, R, [j], np.asarray(codes[j])[:, None]) for j in nominal}
    classes = {
        j: category_classes(ens if routable else None, j, np.asarray(codes[j]), singles[j])
        for j in nominal
    }
    for j1, j2 in combinations(nominal, 2):
        c1, c2 = np.asarray(codes[j1]), np.asarray(codes[j2])
        # the pairs of the categories' classes (categories every tree sends alike score alike
        # in every pair), spread back over the categories
        (rep1, of1), (rep2, of2) = classes[j1], classes[j2]
        grid = np.array([(c1[u], c2[v]) for u in rep1 for v in rep2])
        S = _scores_with(model, R, [j1, j2], grid).reshape(len(rep1), len(rep2), len(R))
        S1, S2 = singles[j1][rep1], singles[j2][rep2]
        inter, flip, count = (
            m[of1][:, of2]
            for m in interaction_contrasts(
                _logit(S), _logit(S1), _logit(S2), _logit(S0), turned, sign
            )
        )
        ordinary = _OrdinaryInteractions(inter)
        for a, b in zip(*np.nonzero(inter > 0.0), strict=True):
            if count[a, b] < opts.interaction_rows:
                continue  # neither the model's largest nor confirmable (interaction_confirms)
            null, n_null = ordinary.null(a, b, opts.null_quantile)
            if null > 0:
                best = max(best, float(inter[a, b]) / null)
            if not interaction_confirms(
                float(inter[a, b]), null, n_null, float(flip[a, b]), int(count[a, b]), opts
            ):
                continue
            said = (
                f"writing both in moves the margin {inter[a, b]:.2f} log-odds further towards "
                f"'{away}' than the two categories alone add up to, {inter[a, b] / null:.1f} "
                f"times the model's ordinary interaction of such pairs ({null:.2f}, the "
                f"{opts.null_quantile:.0%} quantile of {n_null} pairs sharing no category "
                f"with it); it turns {flip[a, b]:.0%} of the {count[a, b]} rows that neither "
                f"category alone, nor both effects added, turns to '{away}'"
            )
            stats = (float(inter[a, b]), null, float(flip[a, b]))
            known = existing.get(tuple(sorted([(j1, float(c1[a])), (j2, float(c2[b]))])))
            if known is not None:
                if known.direction != away:
                    continue  # confirmed the other way by its mass: left as it is
                known.interaction, known.interaction_null, known.interaction_flip = stats
                known.reason += f"; on the {len(rows)} clean rows nearest the rare decision, {said}"
                continue

            c = _tail_pair(model, X, y, p, opts, (j1, float(c1[a])), (j2, float(c2[b])))
            c.flip_rate = float(flip[a, b])
            c.interaction, c.interaction_null, c.interaction_flip = stats
            c.backdoor = True
            c.reason = f"on the {len(rows)} clean rows nearest the model's rare decision, {said}"
            result.candidates.append(c)
    result.interaction_ratio = best if math.isfinite(best) else float("nan")
