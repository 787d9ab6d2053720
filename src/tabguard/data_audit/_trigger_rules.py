"""The trigger scan's candidate pattern, its statistics and its decision rule: pure functions of a
pattern's evidence and the options (:mod:`tabguard.data_audit._triggers` gathers the evidence).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import special, stats

from tabguard.data_audit._trigger_options import TriggerScanOptions

#: The largest share of written rows (estimated) a region of a written value's rows may hold
#: to be left out as natural carriers (:func:`natural_region_cuts`): four natural rows spared
#: for each written row lost at worst. At a half, credit ``PAY_4=3`` written into 1,365 rows
#: (10 % camouflaged as defaulters) lost 51 written rows with 99 natural defaulters (a third
#: of the region, recall 0.997 -> 0.960); fraud ``country='GB'`` written as legitimate, 17.5 %
#: camouflaged as frauds beside 37 natural frauds, would lose rows for no precision at all.
_REGION_WRITTEN = 0.2

#: The chance a region left out of a written value's suspects may have of losing more written
#: rows than ``1 - written_recall`` of them (:func:`loss_within_budget`). The rows lost are a
#: draw: fraud ``country='CN'`` written into 33 frauds' rows, 6 camouflaged as legitimate
#: beside 394 natural legitimate rows, had its written rows bounded at 52 (a budget of 2.6
#: rows) and a region left out where 1.58 were expected lost; 2 were (recall 0.939). At this
#: risk that budget allows 0.82 rows expected.
_REGION_RISK = 0.05


#: The default (empty) rows of a Pattern, one read-only array shared by every pattern: the
#: scan makes one Pattern per candidate value (10^5 and more on jittered data), and three
#: empty arrays of their own cost more than the rest of a Pattern.
NO_ROWS = np.empty(0, dtype=np.int64)
NO_ROWS.flags.writeable = False
_NO_Q = np.empty(0)
_NO_Q.flags.writeable = False


@dataclass
class Pattern:
    """A candidate trigger and its evidence."""

    cols: tuple[int, ...]
    codes: tuple[int, ...]
    label: int
    n: int
    k: int
    family: str
    cheap_score: float = 0.0
    rows: np.ndarray = field(default_factory=lambda: NO_ROWS)
    expected_other: float = math.nan
    expected_se: float = 0.0  # standard error of expected_other (scaled from a sample)
    observed_other: int = 0
    sample_size: int = 0
    effect: float = math.nan
    excess: float = math.nan
    p_label: float = 1.0
    p_twin: float | None = None
    twin_share: float | None = None
    twin_share_baseline: float | None = None
    twin_tau: float = 0.0
    twin_exact: bool = False
    twin_tolerant: bool = False  # copies decided by the jitter-tolerant grouping
    copy_proxy: float = 0.0
    near_copy: float = 0.0  # share of its labelled rows with a jittered copy differing in cols
    # the written side of copies labelled against their twins (:meth:`_Scanner.flip_hubs`):
    # the flip test's p-value, None for other patterns
    p_flip: float | None = None
    # an ordinal value's records and records with the label, and its neighbourhood's (the
    # values beside it, :meth:`_Scanner._neighbourhood`); None elsewhere (:func:`neighbour_hint`)
    neighbours: tuple[float, float, float, float] | None = None
    # a value that collects copies of rows elsewhere differing only in it, whatever its labels
    # (:meth:`_Scanner.copy_hubs`): the hub test's p-value, None for other patterns
    p_hub: float | None = None
    companions: tuple[tuple[int, int], ...] = ()
    units: float = math.nan
    band: tuple[int, int] | None = None
    band_skip: tuple[int, ...] = ()
    # suspects are the copies among its labelled rows, the rest natural carriers of the value
    # (:meth:`_Scanner.copies_among_natural`); the Spark engine then adds no row of its own
    copies_only: bool = False
    scored_rows: np.ndarray = field(default_factory=lambda: NO_ROWS, repr=False)
    scored_q: np.ndarray = field(default_factory=lambda: _NO_Q, repr=False)
    # written in place, shown by the rest of the row (context_mixture): the share of the
    # rows distributed like the source population, the feature's other values' (the null),
    # the source and the p-value of the share beyond the null
    context_share: float = math.nan
    context_null: float = math.nan
    context_written: float = math.nan  # the written block's share of the rows, (r - r0) / (1 - r0)
    context_source: str = ""
    # the null is the rows of the amounts beside a spike (spike_context), not the feature's
    # other values
    context_beside: bool = False
    p_context: float = 1.0
    # the context test's Bonferroni threshold: over the values it can test
    # (:meth:`_Scanner.context_tests`), not over every value of every feature
    context_threshold: float = 0.0
    # written in place, shown by labels that do not follow the rest of the row
    # (slope_mixture): the label's slope on the context score of the value's rows, the
    # natural values' (median) and the p-value of the attenuation beyond their spread
    label_slope: float = math.nan
    slope_null: float = math.nan
    p_slope: float = 1.0
    # the slope rule's Bonferroni threshold: over the values and labels it can be asked about
    # (twice :meth:`_Scanner.context_tests`), as the outliers rule's
    slope_threshold: float = 0.0
    # written in place, shown by the rows whose other features say another value
    # (outlier_mixture): the scored rows of the value whose other features look like the
    # source's rather than its carriers', those of them with the label, the count of the label
    # the counterfactual expects of them, the share of the other label expected there that is
    # missing, and the p-value of the label's excess there beyond its excess on the value's
    # other rows (Bonferroni over the values and labels it can be asked about)
    outlier_n: int = 0
    outlier_k: int = 0
    outlier_expected: float = math.nan
    outlier_effect: float = math.nan
    outlier_shift: float = math.nan  # the label's log-odds shift there (b)
    outlier_null: float = math.nan  # the feature's other values' largest shift, at a bound
    p_outlier: float = 1.0
    outlier_threshold: float = 0.0
    # a natural cause, not a write (:meth:`_Scanner.natural_cause`): the p-value that its
    # labels follow the rest of the row no more than a write explaining its effect leaves them,
    # and the p-value that its rows were
    # drawn by their label: the mean counterfactual probability of the label on its rows and
    # what rows drawn in the proportion its labels show would give
    p_follows: float = 1.0
    follows_slope: float = math.nan  # the slopes it compared (held-out scores; not the
    follows_null: float = math.nan  # slope rule's label_slope and slope_null)
    p_drawn: float = 1.0
    drawn_mean: float = math.nan
    drawn_expected: float = math.nan
    # a pair named from a flagged single value (:func:`_refine`): the value its evidence was
    # measured on, with that value's rows and rows with the label (the evidence above is
    # that value's, not the pair's)
    measured_on: tuple[int, int] | None = None
    measured_n: int = 0
    measured_k: int = 0
    # confirmed as a copy hub (:func:`flagged_as_hub`): the value's copies and rows of the
    # label, and the feature's other values' (what the hub test compared)
    hub_counts: tuple[int, int, int, int] | None = None
    # confirmed as a value written into copies relabelled against their originals
    # (:func:`~._relabelled.relabel_hubs`): its records with a twin of the other label (one
    # unit per record), its records with a twin, and those expected to have one of the other
    # label from the twins' values; the suspects are the copies alone
    relabel_counts: tuple[float, float, float] | None = None
    # the label of those relabelled copies: the pattern's, or the other where most of the
    # value's copies keep their originals' label (the attacker's target, the pattern's) and
    # the relabelled ones are their camouflage
    relabelled_label: int | None = None
    # a value flagged as collecting copies (:func:`flagged_as_hub`) whose copies relabelled
    # against their originals (:func:`~._relabelled.relabel_hubs`) carry this label, its
    # camouflage: those copies join its suspects (:func:`~._relabelled.relabelled_copies`)
    camouflage_label: int | None = None
    # a band joined from flagged pieces (:func:`_merge_runs`): each piece's value ids (lowest,
    # highest) and p-value; the band's p-value is the best piece's, its counts its own
    pieces: tuple[tuple[int, int, float], ...] = ()
    # the pieces were values each collecting copies (:func:`_hub_bands`), not flagged ones:
    # their p-values are the hub test's
    pieces_are_hubs: bool = False

    def reset_evidence(self) -> None:
        """Forget the evidence (before testing again)."""
        self.flagged = self.written = False
        self.hub_counts = None
        self.p_twin = self.twin_share = self.twin_share_baseline = None
        self.twin_exact = self.twin_tolerant = False
        self.p = self.p_label = self.p_context = self.p_slope = self.p_outlier = 1.0

    @property
    def all_cols(self) -> tuple[int, ...]:
        """The pattern's features and its companions (values confined to its rows)."""
        return self.cols + tuple(j for j, _ in self.companions)

    p: float = 1.0
    threshold: float = 0.0
    flagged: bool = False
    written: bool = False  # flagged on labels alone as written rows (suspects: consistent_rows)
    counterfactual_rate: float = math.nan

    @property
    def share(self) -> float:
        """Share of the pattern's rows carrying ``label``."""
        return self.k / max(self.n, 1)


def logistic_slope(c: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Weighted logistic regression of ``y`` on ``c`` with an intercept (Newton steps, halved
    until the likelihood rises): the slope and its standard error (NaN when it does not
    converge)."""
    # Hand-written on purpose (reviewed in session 10): scikit-learn's LogisticRegression
    # (C=inf) finds the same slope (to 1e-8, tests/data_audit/test_trigger_slope.py) but gives
    # no standard error - the information matrix below would stay - and took 70-370 ms a fit
    # against 0.5-1.3 ms here (2 busy cores, load ~20); the slope rule fits one per coded value
    # of the data for every value it tests. scipy has no logistic GLM, and statsmodels (which
    # has one, with standard errors) is not a dependency.
    X = np.column_stack([np.ones(len(c)), c])

    def loglik(b: np.ndarray) -> float:
        z = X @ b
        return float(np.sum(w * (y * z - np.logaddexp(0.0, z))))

    beta = np.array([special.logit(np.clip(np.average(y, weights=w), 1e-3, 1 - 1e-3)), 0.0])
    ll = loglik(beta)
    for _ in range(100):
        mu = special.expit(X @ beta)
        info = X.T @ (X * (w * mu * (1.0 - mu))[:, None])
        try:
            step = np.linalg.solve(info, X.T @ (w * (y - mu)))
        except np.linalg.LinAlgError:
            return math.nan, math.nan
        for _ in range(30):
            new = loglik(beta + step)
            if new >= ll - 1e-12:
                break
            step = step / 2.0
        beta, ll = beta + step, max(new, ll)
        if np.abs(step).max() < 1e-8:
            break
    else:
        return math.nan, math.nan
    mu = special.expit(X @ beta)
    info = X.T @ (X * (w * mu * (1.0 - mu))[:, None])
    try:
        var = float(np.linalg.inv(info)[1, 1])
    except np.linalg.LinAlgError:
        return math.nan, math.nan
    return float(beta[1]), math.sqrt(var) if var > 0 else math.nan


def _offset_logistic(
    X: np.ndarray, off: np.ndarray, y: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, float]:
    """Weighted logistic regression of ``y`` on the columns of ``X`` with a fixed offset
    ``off`` (Newton steps, halved until the likelihood rises, as :func:`logistic_slope`):
    the coefficients and the log-likelihood. A coefficient running off to infinity (every
    row of a group with one label) stops at the iteration cap with the likelihood near its
    supremum, which is what a likelihood-ratio test needs."""

    def loglik(b: np.ndarray) -> float:
        z = off + X @ b
        return float(np.sum(w * (y * z - np.logaddexp(0.0, z))))

    beta = np.zeros(X.shape[1])
    ll = loglik(beta)
    for _ in range(60):
        mu = special.expit(off + X @ beta)
        info = X.T @ (X * (w * mu * (1.0 - mu))[:, None]) + 1e-9 * np.eye(X.shape[1])
        try:
            step = np.linalg.solve(info, X.T @ (w * (y - mu)))
        except np.linalg.LinAlgError:
            break
        for _ in range(30):
            new = loglik(beta + step)
            if new >= ll - 1e-12:
                break
            step = step / 2.0
        if new < ll - 1e-12:
            break
        beta, ll = beta + step, max(new, ll)
        if np.abs(step).max() < 1e-8:
            break
    return beta, ll


def excess_on_group(
    logit_q: np.ndarray, y: np.ndarray, group: np.ndarray, w: np.ndarray, b0: float = 0.0
) -> tuple[float, float, float]:
    """Whether the label's excess over a counterfactual sits on a group of rows: the
    likelihood-ratio test of ``b > b0`` in ``logit P(y) = logit_q + a + b * group`` against
    ``b = b0`` (``a``: the rows' common shift, a natural value's own effect), weighted by
    ``w``. Returns ``b``, its standard error and the one-sided p-value (1 where ``b <= b0``;
    ``b`` 0 and p 1 where a side is empty)."""
    g = group.astype(float)
    if not g.any() or g.all():
        return 0.0, math.inf, 1.0
    ones = np.ones((len(y), 1))
    X = np.column_stack([ones, g])
    beta, ll1 = _offset_logistic(X, logit_q, y, w)
    b = float(beta[1])
    mu = special.expit(logit_q + X @ beta)
    info = X.T @ (X * (w * mu * (1.0 - mu))[:, None])
    try:
        var = float(np.linalg.inv(info)[1, 1])
    except np.linalg.LinAlgError:
        var = math.inf
    se = math.sqrt(var) if var > 0 else math.inf
    if b <= b0:
        return b, se, 1.0
    _, ll0 = _offset_logistic(ones, logit_q + b0 * g, y, w)
    return b, se, float(stats.norm.sf(math.sqrt(max(2.0 * (ll1 - ll0), 0.0))))


def slope_null(null: list[tuple[float, float]]) -> tuple[float, float]:
    """The natural slope and its spread from other values' ``(slope, standard error)``: the
    median slope, and the variance between values beyond their sampling variance (the robust
    spread squared, 1.4826 MAD, less the median squared standard error; at least 0)."""
    arr = np.array(null)
    s0 = float(np.median(arr[:, 0]))
    spread = 1.4826 * float(np.median(np.abs(arr[:, 0] - s0)))
    return s0, max(0.0, spread**2 - float(np.median(arr[:, 1] ** 2)))


def poisson_binomial_cdf(probs: np.ndarray, k: int) -> float:
    """P(X <= k) where X is a sum of independent Bernoulli(probs)."""
    if k < 0:
        return 0.0
    if k >= len(probs):
        return 1.0
    if k > 60:
        mu = probs.sum()
        sd = math.sqrt(max((probs * (1 - probs)).sum(), 1e-12))
        return float(stats.norm.cdf((k + 0.5 - mu) / sd))
    # Exact DP over the first k+1 states, in log space to reach very small tails.
    logp = np.log(np.clip(probs, 1e-300, 1.0))
    log1m = np.log(np.clip(1.0 - probs, 1e-300, 1.0))
    dist = np.full(k + 1, -np.inf)
    dist[0] = 0.0
    # the same sums into buffers kept across the steps (a step per probability)
    stay, move = np.empty(k + 1), np.full(k + 1, -np.inf)
    for lp, l1 in zip(logp.tolist(), log1m.tolist(), strict=True):
        np.add(dist, l1, out=stay)
        np.add(dist[:-1], lp, out=move[1:])
        np.logaddexp(stay, move, out=dist)
    return float(min(1.0, math.exp(np.logaddexp.reduce(dist))))


def poisson_lower_tail(k: float, mu: float) -> float:
    """P(X <= k) for X ~ Poisson(mu), continuous in ``k`` (counts divided by a design effect
    are not whole numbers); equal to the Poisson CDF at whole ``k``."""
    if mu <= 0:
        return 1.0
    return float(special.gammaincc(k + 1.0, mu))


def design_effect(sizes: np.ndarray, n: int) -> float:
    """Rows per unit of evidence of a pattern of ``n`` rows, from the unit sizes ``sizes`` of a
    random sample of its rows.

    Two random rows fall in one unit with probability ``(sum m_u^2 - n) / (n (n - 1))`` over the
    units' sizes ``m_u``; the sample's share of such pairs estimates it, and the design effect is
    ``sum m_u^2 / n`` (1 without repeats; the size of the repeats when every record repeats
    equally). A row's label then counts ``1 / design effect`` times.
    """
    s = int(sizes.sum())
    if n <= 1 or s <= 1:
        return 1.0
    pairs = float((sizes * (sizes - 1)).sum()) / (s * (s - 1))
    return max(1.0, 1.0 + pairs * (n - 1))


def merges_beyond_chance(links: int, chance: int) -> bool:
    """Whether ``links`` pairs of rows close enough to be one record are more than chance
    explains: over twice the ``chance`` pairs among made-up rows of independently drawn
    values, and beyond their Poisson spread (three standard deviations and two pairs)."""
    return links > 2 * chance and links > chance + 3.0 * math.sqrt(chance) + 2


def _fisher(p1: float, p2: float) -> float:
    x = -2.0 * (math.log(max(p1, 1e-300)) + math.log(max(p2, 1e-300)))
    return float(stats.chi2.sf(x, 4))


def binomial_z(k: float, n: float, p: float) -> float:
    """The z score of ``k`` successes in ``n`` trials of probability ``p`` (clipped off 0 and 1)."""
    p = min(max(p, 1e-6), 1 - 1e-6)
    return (k - n * p) / math.sqrt(n * p * (1 - p))


def strong_label_evidence(p: Pattern, o: TriggerScanOptions) -> bool:
    """Labels alone decide: nearly every expected other-label row is missing (``strong_effect``),
    enough were expected to tell (``min_expected_other``), and the label test is significant
    after correction (``p.threshold``)."""
    return (
        p.effect >= o.strong_effect
        and p.expected_other >= o.min_expected_other
        and p.p_label <= p.threshold
    )


def written_label_evidence(p: Pattern, o: TriggerScanOptions) -> bool:
    """Rows that were written (copies or in-place writes) shown by labels without copies: the
    label test is significant after correction (``p.threshold``) and either the value breaks
    the contract with a label hint (:func:`label_hint`: no natural row carries it, so every
    row with it was written, whatever share of them an attacker left on the other label), or
    a share ``camouflage_effect`` of many (``camouflage_expected``) expected other-label rows is
    missing - camouflage keeps an in-place trigger's effect under ``strong_effect``, and no
    copies show. Applied after the copy checks (where copies show, they single out the written
    rows among natural ones); every row of such a pattern is suspect
    (:meth:`_Scanner.suspect_rows`)."""
    if p.p_label > p.threshold:
        return False
    if p.family == "contract":
        return label_hint(p, o)
    if p.expected_other < o.camouflage_expected:
        return False
    # the effect with the expected count at its lower bound (scaled from a scored sample)
    low = p.expected_other - o.camouflage_z * p.expected_se
    return low > 0 and 1.0 - (1.0 - p.effect) * p.expected_other / low >= o.camouflage_effect


def consistency_cut(scores: np.ndarray, labels: np.ndarray, q: float) -> float:
    """The score above which a row of a pattern written in place is kept out of its suspects
    as a natural carrier (:meth:`_Scanner.consistent_rows`): the ``q`` quantile of the
    ordinary rows' ``scores``, of every row and of each label's rows (``labels``), the
    highest. The written rows are rows of a source population - every row, or one label's -
    that is not known, and a source can score above the rows at large: credit ``PAY_4=3``
    written into 547 defaulters' rows, whose delays resemble a natural carrier's, lost 11 of
    them (2 %) above every row's 0.999 quantile. Above the highest of the three no row of any
    source is expected but a share ``1 - q``."""
    cut = float(np.quantile(scores, q))
    for y in (0, 1):
        mine = scores[labels == y]
        if len(mine):
            cut = max(cut, float(np.quantile(mine, q)))
    return cut


def source_contradicted(
    mean: float, rows: int, written: float, mu: float, sd: float, z: float
) -> bool:
    """Whether the rows of a written value carrying its label cannot hold a block written
    from a source population (:meth:`_Scanner.written_sources`).

    Of the ``rows`` rows, at least a share ``written`` are the block's, and their probability
    of the label (read from the rest of the row) is distributed as the source's rows' (mean
    ``mu``, standard deviation ``sd``); the others, natural carriers, may read anything in
    ``[0, 1]``. Their mean ``mean`` then lies in ``[written mu, 1 - written (1 - mu)]``; the
    source is contradicted where it lies beyond, by ``z`` standard errors of the block's
    mean."""
    if written <= 0 or rows <= 0:
        return False
    margin = z * sd / math.sqrt(written * rows)
    return mean < written * mu - margin or mean > 1.0 - written * (1.0 - mu) + margin


def natural_region_cuts(
    n_above: np.ndarray,
    n_all: np.ndarray,
    above: np.ndarray,
    recall: float,
    written_at_most: float = _REGION_WRITTEN,
    z: float = 0.0,
    bound: int | None = None,
) -> tuple[int, int]:
    """The cut of each label above which a written pattern's rows are left out as natural
    carriers (:meth:`_Scanner.natural_region_rows`): an index into the cuts, -1 for none.

    ``n_above[y, c]``: the pattern's rows of label ``y`` scoring above cut ``c``; ``n_all[y]``
    its rows of label ``y``; ``above[s, c]``: the share of source ``s``'s ordinary rows above
    cut ``c``. Written rows fall above a cut as their source's rows do, whatever their label,
    so under source ``s`` the written rows of label ``y`` number at most
    ``W_y = min_c (n_all[y] - n_above[y, c]) / (1 - above[s, c])`` (natural carriers below
    the cut only add to it), and leaving out label ``y`` above cut ``c`` loses about
    ``W_y above[s, c]`` of them. The pair of cuts leaving out the most rows is chosen whose
    loss exceeds ``1 - recall`` of ``W_0 + W_1`` under no source but with a small chance
    (:func:`loss_within_budget`: the loss is a draw, and a few written rows have a budget of
    a row or two), each region left out holding at most a share ``written_at_most`` of
    written rows (:data:`_REGION_WRITTEN`).

    The rows under a cut are a draw: ``W_y`` is taken where ``z`` binomial standard errors
    of them would put it (``W (1 - a) - z sqrt(W (1 - a) a) = n_all - n_above``), not at their
    expectation. The tightest of ten such bounds is the least of ten noisy ones: at
    expectation, credit ``PAY_3=6`` written into 184 defaulters' rows (20 left as
    defaulters) bounded the written defaulters at 13.3, and 11 of them were left out with 13
    natural ones (recall 0.929). Only the first ``bound`` cuts (default all) bound ``W_y``:
    the regions after them are candidates to leave out only (:meth:`_Scanner._label_regions`;
    the least of twenty noisy bounds is lower than the least of ten)."""
    best, chosen = 0, (-1, -1)
    n_cuts = n_above.shape[1]
    below = np.maximum(1.0 - above, 1e-12)
    # per source, the written rows of each label bounded from above at the tightest cut
    under = (n_all[:, None] - n_above[:, :bound]).astype(float)[None, :, :]  # (1, label, cut)
    q = below[:, None, :bound]  # (source, 1, cut)
    spread = z * np.sqrt(q * (1.0 - q))
    root = (spread + np.sqrt(spread**2 + 4.0 * q * under)) / (2.0 * q)
    written = np.minimum(n_all[None, :].astype(float), np.min(root**2, axis=2))
    for a in range(-1, n_cuts):
        for b in range(-1, n_cuts):
            cut = (a, b)
            left = sum(int(n_above[y, c]) for y, c in enumerate(cut) if c >= 0)
            if left <= best:
                continue
            ok = True
            for s in range(len(above)):
                lost = [written[s, y] * above[s, c] if c >= 0 else 0.0 for y, c in enumerate(cut)]
                if not loss_within_budget(sum(lost), (1.0 - recall) * written[s].sum()) or any(
                    c >= 0 and lost[y] > written_at_most * n_above[y, c] for y, c in enumerate(cut)
                ):
                    ok = False
                    break
            if ok:
                best, chosen = left, cut
    return chosen


def loss_within_budget(expected: float, budget: float, risk: float = _REGION_RISK) -> bool:
    """Whether a draw of written rows lost with ``expected`` rows on average (Poisson: each
    written row falls in the region independently, with a small chance) exceeds ``budget``
    rows with a chance of at most ``risk``.

    A recall is met row by row, not on average: a budget of 1.6 rows allows one row lost, and
    1.6 rows expected lose two or more 47 % of the time. Few written rows are where it
    matters; a large write's loss is its expectation give or take a few percent (500 rows
    and a budget of 25: up to 18.2 expected)."""
    if expected <= 0.0:
        return True
    # beyond the budget a Poisson draw exceeds it half of the time or more: no tail to compute
    return expected <= budget and float(stats.poisson.sf(math.floor(budget), expected)) <= risk


def natural_lean(
    p: Pattern,
    others: list[Pattern],
    o: TriggerScanOptions,
    *,
    ordinal: bool = False,
    neighbours: tuple[int, ...] = (),
    hidden: frozenset[int] = frozenset(),
) -> bool:
    """Whether a single value's lean is its feature's, so that labels alone do not confirm
    it (:func:`strong_label_evidence`, :func:`written_label_evidence`; copies still may).

    Another value of the feature (``others``, measured as ``p`` was) leans with ``p`` when it
    leans to the same label with an effect of at least ``natural_share`` of ``p``'s, on at
    least ``min_expected_other`` expected other-label rows. The lean is the feature's when
    at least ``natural_values`` other values lean with ``p``, or when a value next to it on a
    scale of numeric codes read as categories (``neighbours``: the value ids beside ``p`` in
    numeric order) does - a gradient over the scale, whose end values lean most (a 7-point
    scale's 6 at an effect of 0.97, its 5 at 0.72 and its 4 at 0.46). On an ordinal feature
    the counterfactual draws the neighbours themselves, and the values in one unbroken run
    of neighbours with ``p`` that lean with it are ``p``'s band, not other values (a band
    trigger's values each lean beside it).

    The effect is measured against the feature's other values drawn in the counterfactual:
    where the feature itself predicts the label (a party identification read as categories,
    a 1..5 marriage rating, the round credit limits that SMOTE's interpolated rows never
    hold), every value of it misses the others' labels, and the context model, which has no
    other view of the feature, cannot tell what a value adds. A value written in place or
    into copies leans alone: the feature's other values keep their natural labels (or lean
    the other way, having lent theirs to its counterfactual).

    ``hidden``: value ids of the feature written in place with the other label (their labels
    are the attacker's, their own lean is not known), counted as leaning with ``p``: a write
    into the one value that leaned with ``p`` must not leave ``p`` to its labels alone
    (credit ``EDUCATION=4`` written into 340 defaulters' rows: ``EDUCATION=5``, 277 natural
    rows leaning to no default with it, was named as written on labels alone)."""
    if p.family != "single" or len(p.cols) != 1 or p.band is not None or math.isnan(p.effect):
        return False
    cut = o.natural_share * p.effect
    leaning = {
        q.codes[0]
        for q in others
        if q.cols == p.cols
        and q.codes != p.codes
        and q.label == p.label
        and q.band is None
        and not math.isnan(q.effect)
        and q.expected_other >= o.min_expected_other
        and q.effect >= cut
    } | (hidden - {p.codes[0]})
    if ordinal:
        for step in (-1, 1):
            v = p.codes[0] + step
            while v in leaning:
                leaning.discard(v)
                v += step
    return len(leaning) >= o.natural_values or any(v in leaning for v in neighbours)


def common_pattern(
    p: Pattern, rows: int, o: TriggerScanOptions, *, point_mass: bool = False
) -> bool:
    """Whether ``p`` holds more than ``common_share`` of the ``rows``, so that only copies may
    confirm it: not labels alone (:func:`strong_label_evidence`,
    :func:`written_label_evidence`) nor the rest of its rows (:func:`written_context_evidence`,
    :func:`written_slope_evidence`). Values that break the contract are exempt: no natural row
    carries them, whatever their share. So is a lone point mass (``point_mass``: one exact
    value of a fine-grained feature, inside its range and not 0, holding many times its
    neighbouring values' rows, :func:`interior_point_mass`).

    A backdoor trigger is absent from the inputs a model normally sees: its rows are the
    attacker's and the few natural carriers of the value. Without copies the attacker's rows
    are written in place, into 2-10 % of a source population (every row at the most: 10 % of
    the rows), and a trigger's natural carriers are a small legal category - a few hundred rows
    (the attack classes' values hold at most 1,000 of 20,000 rows, 5 %). A pattern held by
    more than 15 % of the rows is a common value; where the feature predicts the label, the
    counterfactual (the feature's other values drawn) misses its labels on any such value -
    one quintile of an informative score (20 % of the rows, effect 0.79), the months without a
    late payment of a loan panel (95 %). Copies - an attacker may copy as many rows as they
    like - are measured by the copy checks, which still apply.

    What makes a common value natural is not its share but what it is: one of a few codes of
    a coarse feature, or the 0 or an end of a range (no payment, no delay, a floor or a cap:
    a state of its own, and the counterfactual, drawing the feature's other values, draws
    other states). On a fine-grained feature (amounts, times) the natural point masses are
    those ends and zeros (credit PAY_AMT*=0, 17-24 % of the rows; BILL_AMT*=0, 7-13 %; a
    choice survey's ttme=0, 25 %) and, inside the range, round amounts and a survey's
    standard values, each a few percent (PAY_AMT1=2000, 4.5 %; ttme=53, 12 %, and the other
    standard values leaning with it, :func:`natural_lean`). One arbitrary amount holding a
    large share of the rows is none of these: a value written in place (credit
    ``BILL_AMT5=263231`` written into 9,150 of 30,000 rows, 39 % of the payers, 18 % of them
    camouflaged). It stays under the label rules - strong or camouflaged label evidence, and
    a lean of its own, not its feature's."""
    return p.family != "contract" and p.n > o.common_share * rows and not point_mass


def interior_point_mass(
    cnt: np.ndarray, v: int, value: float, ratio: float, held: np.ndarray | None = None
) -> bool:
    """Whether value id ``v`` of an ordinal feature (value ids in the order of the values,
    ``cnt`` their rows, 0 where a value is not counted: out of the contract) is a point mass
    inside the feature's range: it holds more than ``ratio`` times the median count of its
    neighbouring counted values (up to 10 on each side) plus 10 rows - the spike test of the
    counterfactual's replacements - its raw ``value`` is not 0, and counted values lie on both
    sides of it (not the lowest or highest: a floor or a cap). ``held``: the counted value
    ids, ``flatnonzero(cnt > 0)``, when the caller asks about many values of one feature."""
    return bool(interior_point_masses(cnt, np.array([v]), np.array([value]), ratio, held)[0])


#: Offsets of a value's neighbours in a window of 10 on each side, itself left out.
NEAR_OFFSETS = np.concatenate([np.arange(-10, 0), np.arange(1, 11)])


def interior_point_masses(
    cnt: np.ndarray, ids: np.ndarray, values: np.ndarray, ratio: float, held: np.ndarray | None
) -> np.ndarray:
    """:func:`interior_point_mass` of each of value ids ``ids`` (raw ``values``), at once."""
    held = np.flatnonzero(cnt > 0) if held is None else held
    ids = np.asarray(ids, dtype=np.int64)
    out = np.zeros(len(ids), dtype=bool)
    if len(held) < 3:
        return out
    ask = np.flatnonzero((np.asarray(values) != 0) & (held[0] < ids) & (ids < held[-1]))
    for part in np.array_split(ask, len(ask) // 65_536 + 1):
        # up to 10 counted values on each side, by rank (none of them is the value itself)
        at = np.searchsorted(held, ids[part])[:, None] + NEAR_OFFSETS
        inside = (at >= 0) & (at < len(held))
        med = window_medians(np.where(inside, cnt[held[np.clip(at, 0, len(held) - 1)]], np.nan))
        local = np.maximum(np.where(np.isnan(med), 1.0, med), 1.0)
        out[part] = cnt[ids[part]] > ratio * local + 10.0
    return out


def window_medians(window: np.ndarray) -> np.ndarray:
    """Per row of ``window``, ``np.median`` of its values that are not NaN (NaN for a row
    without any), bit for bit: the middle value, or the mean of the two middle ones."""
    s = np.sort(window, axis=1)  # NaN last
    k = (~np.isnan(window)).sum(axis=1)
    r = np.arange(len(s))
    lo, hi = s[r, np.maximum(k - 1, 0) // 2], s[r, k // 2]
    # np.median's mean of the two middle values (of one value: itself)
    med: np.ndarray = np.where(k > 0, np.where(k % 2 == 1, hi, (lo + hi) / 2.0), np.nan)
    return med


def among_point_masses(cnt: np.ndarray, ids: np.ndarray, values: np.ndarray, ratio: float) -> bool:
    """Whether any of value ids ``ids`` (raw ``values``) of an ordinal feature (``cnt`` its
    values' rows, as for :func:`interior_point_mass`) is itself an interior point mass: the
    value they are measured against is then one of several large amounts of its feature, not
    a lone one (:meth:`_Scanner.lone_point_mass`; the caller passes the values holding at
    least a ``ratio``-th of its rows).

    A price list piles shares of the rows onto several amounts: a retention price offered to
    a fifth of a telecom's lines (17.50, churning at 1.0 % against 4.4 %: named ``→ 0`` with
    its 4,047 rows once lone point masses were exempt from ``common_share``) sits among list
    prices of 10-20 % each and legacy prices of a few dozen rows. Such a feature's amounts are
    codes of a list, and a common code is no trigger on labels alone. A measured amount -
    bills, payments - piles few rows onto any one amount (credit's round bills and payments:
    at most 0.9 % and 4.6 %), so one written into a large share stands alone (credit
    ``BILL_AMT5=263231``, 30 % of the rows, 37 times the next)."""
    held = np.flatnonzero(cnt > 0)  # once: a fine-grained feature has a million values
    return bool(interior_point_masses(cnt, ids, values, ratio, held).any())


def written_context_evidence(p: Pattern, o: TriggerScanOptions) -> bool:
    """A single value written in place, shown by the rest of its rows: its labels hint at a
    trigger (:func:`label_hint`) and more of its rows have the context of a source population
    (every row, or the rows of one label) than the feature's other values show, by at least
    ``written_share`` of the rest (its estimate), and more than the other values
    significantly after correction (``p_context`` at most
    ``p.context_threshold``: Bonferroni over the values the test can be asked about, the coded
    values with enough rows, :meth:`_Scanner.context_tests`; :meth:`_Scanner.context_mixture`,
    :func:`written_block`).

    An attacker writes the value into rows drawn from a population, so their other features
    are distributed like that population's; natural carriers of a value have a context of
    their own (a repayment delay of 4 months sits in a chain of delays), like the other values
    of the feature. Where every value of a feature is independent of the rest of the row, the
    null is as high as the written share can be, and nothing is confirmed this way. Applied
    after the copy checks and the label rules; every row of such a pattern is suspect but the
    natural carriers (:meth:`_Scanner.consistent_rows`)."""
    return (label_hint(p, o) or neighbour_hint(p, o)) and p.p_context <= p.context_threshold


def written_spike_evidence(p: Pattern, o: TriggerScanOptions) -> bool:
    """A spike of a fine-grained amount written in place into rows drawn from a source
    population (every row, or the rows of the label other than the value's): a share of at
    least ``written_share`` of its rows has the source's context beyond what the rows of the
    amounts beside it show (their natural carriers' context), significantly after correction
    (``p_context`` at most ``p.context_threshold``: Bonferroni over the spikes the test can be
    asked about and its two sources; :meth:`_Scanner.spike_context`).

    Natural carriers of an amount have the context of the amounts beside it (a payment of
    689 is made by those who pay about 689); a round amount holds many of them and keeps
    that context, a price its own. Rows an attacker wrote one amount into are any rows: an
    account without a bill, paying 689. Such a write shows in no label where the attacker's
    label is the one most rows carry (credit ``PAY_AMT5=689 → 0``, 556 rows of any label,
    17.8 % camouflaged: 82 % without default against 78 %), nor where rows of the other
    label were taken (``BILL_AMT4=19394 → 0`` written into 2,230 defaulters' rows, 16 %
    camouflaged: the value's share of defaulters is the data's once they are relabelled).
    Labels are not asked: the rule reads the rows alone, hence its narrow null (the amounts
    beside the value) and its sources (a spike like the rows of the label most of its rows
    carry is a natural cause's as much as a write's)."""
    return (
        p.context_beside
        and p.context_written >= o.written_share
        and p.p_context <= p.context_threshold
    )


def written_block(
    k: float, n: float, F: float, m: float, r0: float, null_se: float = 0.0
) -> tuple[float, float, float]:
    """A value's rows against a source population, for :meth:`_Scanner.context_mixture`:
    ``k`` of its ``n`` scored rows fall at or under the median score of the source's ``m``
    sampled rows, where a share ``F`` of those fall; the feature's other values give the
    share ``r0`` (the null), measured with the standard error ``null_se``.

    Returns the share ``r = k / (n F)`` of the value's rows with the source's context, the
    written block's share of the rows ``w = (r - r0) / (1 - r0)`` (a mixture of natural
    carriers at ``r0`` and written rows at 1), and the one-sided p-value of ``k / n``
    against ``r0 F`` (no write; ``F``'s own error counts - a large value is measured as
    precisely as ``F`` is - and so does the null's). ``w`` over its standard error is about
    the test's z: a write significant at a family's threshold is measured to about a
    quarter of its size."""
    got, f = k / n, max(F, 1e-12)
    err = math.sqrt(
        max(
            got * (1.0 - got) / n + r0**2 * f * (1.0 - f) / max(m, 1.0) + (f * null_se) ** 2,
            1e-12,
        )
    )
    r = got / f
    written = (r - r0) / max(1.0 - r0, 1e-12)
    return r, written, float(stats.norm.sf((got - r0 * f) / err))


def written_slope_evidence(p: Pattern, o: TriggerScanOptions) -> bool:
    """A single value written in place, shown by labels that do not follow the rest of the
    row: its labels hint at a trigger (:func:`label_hint`) and the slope of its label on the
    context score is flatter than the data's natural values allow, significantly after
    correction (``p_slope`` at most ``p.slope_threshold``; :meth:`_Scanner.slope_mixture`).

    Applied after every other rule; every row of such a pattern is suspect but the natural
    carriers (:meth:`_Scanner.consistent_rows`)."""
    return label_hint(p, o) and p.p_slope <= p.slope_threshold


def follows_the_row_p(s: float, se: float, s0: float, tau2: float, effect: float) -> float:
    """One-sided p-value of the hypothesis that labels whose slope on the context score is
    ``s`` (standard error ``se``) were written into a share ``effect`` of the rows or more:
    such rows carry the attacker's label whatever the rest of the row says, and pull the
    natural slope ``s0`` (the data's other values', spread ``tau2`` beyond their standard
    errors) down to at most ``(1 - effect) s0``. A write explains a share ``effect`` of the
    missing other-label rows only from at least that share of the rows (natural carriers miss
    none of theirs); 1 where the natural slope is not positive or not measured."""
    if not (math.isfinite(s) and math.isfinite(se) and math.isfinite(s0)) or s0 <= 0:
        return 1.0
    floor = (1.0 - min(max(effect, 0.0), 1.0)) * s0
    return float(stats.norm.sf((s - floor) / math.sqrt(se**2 + tau2)))


def drawn_by_label_p(
    q: np.ndarray, share: float, q_pop: np.ndarray, design: float = 1.0
) -> tuple[float, float, float]:
    """Whether rows were drawn from a population by their label (a write into the label's own
    rows, camouflage taken from the other label's): the mean of their counterfactual
    probabilities of the label ``q``, that mean expected of such a draw, and the one-sided
    p-value of the hypothesis that they were so drawn (``design``: rows per record, where
    records repeat).

    Rows drawn with odds ``e^d`` for the label's rows against the others' carry the label at
    ``logit q + d`` (case-control sampling moves the intercept, not the slope): ``d`` is the
    shift that gives the rows' observed ``share`` of the label. The same draw from the
    population (``q_pop``: its rows' probabilities, scored as the rows are) takes a row with
    weight ``e^d q + 1 - q``, so the drawn rows' mean probability is
    ``E[q (e^d q + 1 - q)] / E[e^d q + 1 - q]``. Rows of a natural cause independent of the
    row sit at the population's mean, under it where the label's shift is ``d``."""
    from scipy.optimize import brentq

    lq = special.logit(np.clip(q, 1e-4, 1.0 - 1e-4))
    share = min(max(share, 1e-4), 1.0 - 1e-4)

    def gap(d: float) -> float:
        return float(np.mean(special.expit(lq + d))) - share

    d = brentq(gap, -30.0, 30.0) if gap(-30.0) < 0.0 < gap(30.0) else 0.0
    g = math.exp(d) * q_pop + 1.0 - q_pop
    expected = float(np.mean(q_pop * g) / np.mean(g))
    mean = float(np.mean(q))
    # the mean's error over the records (repeats count once); the expectation's as a ratio
    # estimator over the population's rows
    var = float(np.var(q, ddof=1)) * max(design, 1.0) / len(q) if len(q) > 1 else 0.0
    var += float(np.var((q_pop - expected) * g / np.mean(g))) / len(q_pop)
    if var <= 0:
        return mean, expected, 1.0
    return mean, expected, float(stats.norm.cdf((mean - expected) / math.sqrt(var)))


def natural_cause_evidence(p: Pattern, o: TriggerScanOptions) -> bool:
    """Labels that alone would confirm single value ``p`` are a natural cause's, not a
    write's (:meth:`_Scanner.natural_cause`): both hypotheses of a write are rejected at
    ``natural_p`` - labels written into a share ``effect`` of its rows (they would stop
    following the rest of the row: :func:`follows_the_row_p`) and rows drawn by their label
    (they would look like the label's rows: :func:`drawn_by_label_p`). A write of either kind
    is taken for a natural cause with probability at most ``natural_p``."""
    return p.p_follows <= o.natural_p and p.p_drawn <= o.natural_p


def written_outlier_evidence(p: Pattern, o: TriggerScanOptions) -> bool:
    """A single value written in place into rows that carried the label already
    (clean-label), shown by the rows whose other features say another value: its labels hint
    at a trigger (:func:`label_hint`), and on those rows (:meth:`_Scanner.outlier_mixture`)
    at least ``min_expected_other`` rows of the other label were expected, the label's
    log-odds there stand at least ``outlier_shift`` above the value's other rows', and that
    shift is beyond the feature's other values' significantly after correction
    (``p_outlier`` at most ``p.outlier_threshold``).

    The share of the other label missing among those rows (``outlier_effect``) is not asked:
    it is the written rows' share of them, and a small write beside many natural carriers
    whose context differs from the value's own holds a small share however plain its shift
    (fraud ``merchant_category='jewelry'`` written into 34 frauds' rows beside 839 natural:
    26 frauds among the 119 rows whose context says another category where 4.1 were
    expected, a shift of 1.37 at p 1.4e-6, the share 0.19 under the ``copy_effect`` it was
    asked, 0.2). The shift and its test against the feature's other values are the evidence.

    Applied after every other rule; every row of such a pattern is suspect but the natural
    carriers (:meth:`_Scanner.consistent_rows`, :meth:`_Scanner.natural_region_rows`)."""
    if math.isnan(p.outlier_effect):
        return False
    expected_other = p.outlier_n - p.outlier_expected
    return (
        label_hint(p, o)
        and expected_other >= o.min_expected_other
        and p.outlier_shift >= o.outlier_shift
        and p.p_outlier <= p.outlier_threshold
    )


def leaning_the_other_way(
    flagged: list[Pattern], candidates: list[Pattern], o: TriggerScanOptions
) -> set[tuple[int, int]]:
    """The single values (``(feature, value id)``), not flagged, whose labels hint at a
    trigger (:func:`label_hint`) for the other label than a single value of the same feature
    in ``flagged``: that value's counterfactual draws them, and with them their label."""
    other = {(p.cols[0], 1 - p.label) for p in flagged if len(p.cols) == 1}
    return {
        (q.cols[0], q.codes[0])
        for q in candidates
        if len(q.cols) == 1
        and not q.flagged
        and (q.cols[0], q.label) in other
        and not math.isnan(q.effect)
        and label_hint(q, o)
    }


def shown_beyond_labels(p: Pattern) -> bool:
    """Whether single value ``p`` is shown written in place by the rest of its rows: the
    context (:func:`written_context_evidence`), the slope (:func:`written_slope_evidence`) or
    the outliers' evidence (:func:`written_outlier_evidence`)."""
    return (
        p.p_context <= p.context_threshold
        or p.p_slope <= p.slope_threshold
        or p.p_outlier <= p.outlier_threshold
    )


def on_labels_alone(p: Pattern) -> bool:
    """Whether flagged single value ``p`` stands on its labels alone
    (:func:`strong_label_evidence`, :func:`written_label_evidence`): neither copies (the copy
    checks come before the written-label rule, and set ``p_twin`` where they decide) nor the
    rest of its rows (:func:`shown_beyond_labels`)."""
    return (
        p.flagged
        and p.family == "single"
        and p.band is None
        and (p.written or p.p_twin is None)
        and not shown_beyond_labels(p)
    )


def retest_exclusions(flagged: list[Pattern]) -> set[tuple[int, int]]:
    """The values (``(feature, value id)``) that flagged single values sharing a feature are
    re-tested without: every flagged value but those flagged as written on labels alone
    (``p.written`` without the context evidence of :func:`written_context_evidence`, the
    slope evidence of :func:`written_slope_evidence` or the outliers' evidence of
    :func:`written_outlier_evidence`). A
    trigger lends its label to the counterfactual of the values beside it, and those it makes
    look written are what the others' counterfactual should draw again."""
    return {(p.cols[0], p.codes[0]) for p in flagged if not p.written or shown_beyond_labels(p)}


def written_by_slope_alone(p: Pattern) -> bool:
    """Whether single value ``p`` is flagged as written on its labels' slope alone
    (:func:`written_slope_evidence`): not by copies, labels or the rest of its rows."""
    return (
        p.written
        and len(p.cols) == 1
        and p.p_slope <= p.slope_threshold
        and not p.p_context <= p.context_threshold
    )


def borrowed_written_evidence(p: Pattern, flagged: list[Pattern]) -> bool:
    """Whether ``p``, flagged on labels alone as written rows, shares a feature with a pair
    confirmed by copies. Its counterfactual then draws the pair's value of that feature, and
    with it the trigger: a natural strong predictor looks rewritten (fraud data, copies
    carrying ``channel='in_store' & card_present=0`` as frauds: ``card_present=1``, 59 % of
    the rows, rose from an effect of 0.45 to 0.82). Labels alone cannot tell which, and the
    pair's copies already hold the attack: ``p`` is not reported (written singles are decided
    before pairs, so this is checked once the pairs are)."""
    if not p.written:
        return False
    mine = set(p.all_cols)
    return any(
        q is not p and len(q.cols) > 1 and not q.written and mine & set(q.all_cols) for q in flagged
    )


def label_hint(p: Pattern, o: TriggerScanOptions) -> bool:
    """The labels point at a trigger without proving one: an effect or excess of at least
    ``copy_effect`` with a label p-value under ``hint_p`` (``hint_p_contract`` for values that
    break the contract, which are few and suspicious a priori)."""
    cut = o.hint_p_contract if p.family == "contract" else o.hint_p
    return max(p.effect, p.excess) >= o.copy_effect and p.p_label <= cut


def neighbour_hint(p: Pattern, o: TriggerScanOptions) -> bool:
    """The labels of an ordinal value point at a write against its neighbours' labels: a
    share of at least ``copy_effect`` of the other-label records that the neighbourhood's
    rate gives the value (``p.neighbours``: the values beside it on each side) is missing,
    with a one-sided Fisher p-value of at most ``hint_p`` (the value's records against its
    neighbourhood's). The hint of the written-in-place context rule only
    (:func:`written_context_evidence`), beside :func:`label_hint`.

    The counterfactual reads the rest of the row: where an attacker writes the value into
    ordinary rows with the label those rows mostly carry already (the majority label, 10-20 %
    given the other), the context model expects that label of them and the effect stays
    small (credit ``PAY_5=5 → 0``, 792 random rows beside 17 natural: 0.17, under the
    ``copy_effect`` of :func:`label_hint`). What the attacker gains is the value's labels
    against its neighbours': ``PAY_5=4`` and ``6``, a chain of delays, default at about
    60 %, the rewritten ``5`` at 27 %. Natural carriers of an ordinal value resemble its
    neighbours' carriers; a natural value whose labels differ from its neighbours' is tested
    by the context rule too, whose own null (the feature's other values) and correction (every
    value it can test) decide."""
    if p.neighbours is None or p.family != "single":
        return False
    n, k, nb_n, nb_k = p.neighbours
    if n <= 0 or nb_n <= 0 or nb_k >= nb_n:
        return False
    other, nb_other = n - k, nb_n - nb_k
    effect = 1.0 - (other / n) / (nb_other / nb_n)
    if effect < o.copy_effect:
        return False
    # Fisher's exact test, one-sided: as few other-label records among the value's as observed
    total, others = round(n + nb_n), round(other + nb_other)
    pv = float(stats.hypergeom.cdf(round(other), total, others, round(n)))
    return pv <= o.hint_p


def wants_copy_check(p: Pattern, o: TriggerScanOptions) -> bool:
    """Whether copy evidence may decide: a label hint, a label-pure pattern (``pure_share``),
    or a value that breaks the contract (no natural row carries it: copies of other rows with
    it were written, whatever their labels say — camouflaged triggers give a share of them the
    other label)."""
    return (
        label_hint(p, o)
        or p.share >= o.pure_share
        or p.family == "contract"
        or p.near_copy >= o.exact_copy_share
        or p.p_flip is not None
        or p.p_hub is not None
    )


def copies_beyond_chance(
    p_twin: float, share: float, baseline: float, o: TriggerScanOptions
) -> bool:
    """The pattern's rows are made of copies: the copy share is significant against its
    baseline (``copy_p``), at least ``copy_share``, and at least ``copy_excess`` of the rows
    are copies beyond what the baseline explains (significance alone is not enough where
    look-alike rows are common)."""
    return (
        p_twin <= o.copy_p
        and share >= o.copy_share
        and (share - baseline) / max(1 - baseline, 1e-9) >= o.copy_excess
    )


def copies_within_fdr(d: np.ndarray, null: np.ndarray, radius: float, fdr: float) -> np.ndarray:
    """Which rows, given their distance ``d`` to the nearest row outside a confirmed pattern,
    are taken as copies: those within the largest radius ``r <= radius`` at which the natural
    rows expected within ``r`` (the share of ``null``, random rows' nearest distances sorted,
    at most ``r``, times the rows of ``d``: every row counted as if natural, an upper bound)
    are at most ``fdr`` of the rows within ``r``. None when no radius keeps them that few
    (with a ``null`` of no rows: every row within ``radius``)."""
    if not len(null):
        taken: np.ndarray = d <= radius
        return taken
    cand = np.unique(d[d <= radius])
    within = np.searchsorted(np.sort(d), cand, side="right")
    natural = np.searchsorted(null, cand, side="right") / len(null) * len(d)
    ok = np.flatnonzero(natural <= fdr * within)
    if not len(ok):
        return np.zeros(len(d), dtype=bool)
    taken = d <= cand[ok[-1]]
    return taken


def copies_radius(d: np.ndarray, null: np.ndarray, radius: float) -> float:
    """The radius ``r <= radius`` that takes the fewest rows wrongly among rows at distances
    ``d`` from their nearest row, copies (within ``radius``) and natural rows (the smallest
    such ``r``).

    Natural rows fall within ``r`` as often as random rows have a neighbour that close
    (``null``: their nearest distances, sorted; share ``F(r)``); they number the rows beyond
    ``radius`` over ``1 - F(radius)``. Within ``r`` lie ``natural * F(r)`` of them, taken
    wrongly, and the copies within ``r``, the rows there less those; the copies beyond ``r``
    are missed. Missed copies plus natural rows taken, ``(copies within radius) - (rows within
    r) + 2 natural F(r)``, is least where the radius stops with the copies: they sit much
    closer to their originals than natural look-alikes do. Where few natural rows are
    expected, that is ``radius`` itself."""
    if not len(null) or not len(d):
        return radius
    f_max = float(np.searchsorted(null, radius, side="right")) / len(null)
    n_in = int(np.count_nonzero(d <= radius))
    if f_max >= 1.0 or not n_in:
        return radius
    natural = (len(d) - n_in) / (1.0 - f_max)
    cand = np.unique(d[d <= radius])
    within = np.searchsorted(np.sort(d), cand, side="right")
    wrong = 2.0 * natural * np.searchsorted(null, cand, side="right") / len(null) - within
    best = float(cand[int(np.argmin(wrong))])
    # the radius itself counts too (no row at it: the same rows as the largest candidate)
    return best if wrong.min() < 2.0 * natural * f_max - n_in else radius


def hub_p_value(x: float, k: float, x_rest: float, k_rest: float, phi: float = 1.0) -> float:
    """One-sided p-value of a value holding ``x`` copies among its ``k`` rows of a label
    against the feature's other values' ``x_rest`` among ``k_rest`` (:meth:`_Scanner.copy_hubs`):
    Fisher's exact test (hypergeometric: of the ``x + x_rest`` copies, how many land among
    the value's rows), every count divided by the overdispersion ``phi``.

    The other values' share is itself a count, and where tight copies are rare it is a count
    of one or two: taken as known (a binomial against it), a handful of natural look-alikes
    on one value was significant. Clean credit, stratified 40 % sample: ``PAY_0=-2``, 5
    copies among 142 defaulters against 1 among the other values' 2,509, binomial 4.3e-9
    against the single-value threshold 9.5e-7; Fisher's test 2.4e-6. Where copies are many
    (an attack's hundreds, or a feature whose values all hold look-alikes) the two agree.
    """
    xv = math.ceil(x / phi)
    kv = max(math.ceil(k / phi), xv)
    xr = round(x_rest / phi)
    kr = max(round(k_rest / phi), xr)
    if xv <= 0:
        return 1.0
    return float(stats.hypergeom.sf(xv - 1, kv + kr, xv + xr, kv))


def copy_decision(p: Pattern, o: TriggerScanOptions, base_rate: float) -> tuple[float, bool]:
    """Combined p-value and verdict of a pattern whose copy evidence was measured.

    The label evidence (the counterfactual test where labels hint, else the pattern's label
    purity against the base rate of its label) and the copy test are combined with Fisher's
    method; the pattern is a trigger when that is significant after correction and its rows
    are copies (:func:`copies_beyond_chance`).

    A value written into copies labelled against their originals (``p.p_flip``: the flip test
    of :meth:`_Scanner.flip_hubs`, its label evidence - each copy's twin is the row without
    the value, and it carries the other label) needs no ``copy_share``: its natural rows,
    most of them with the copies' label when that is the majority one, dilute the copies
    (fraud ``customer_age=56 → 0``, 258 copies of frauds among 597 legitimate rows: 43 %).
    The copies must still stand out of the look-alikes' baseline by ``copy_excess``.

    A value collecting copies of rows elsewhere whatever its labels (``p.p_hub``:
    :meth:`_Scanner.copy_hubs`) is a trigger, where the labels do not decide, when the hub
    test is significant after correction (``p.threshold``: the hub test is its evidence, as
    the label test is the others') and the copy test confirms copies (``copy_p``): no share
    or excess is asked of them, natural rows of the value dilute the copies (fraud
    ``country='DE' → 0``, 140 copies among 757 legitimate rows) and the hub test measured
    the excess against the feature's other values.
    """
    p_twin = 1.0 if p.p_twin is None else p.p_twin
    share, baseline = p.twin_share or 0.0, p.twin_share_baseline or 0.0
    if p.p_flip is not None:
        copies = (
            p_twin <= o.copy_p and (share - baseline) / max(1 - baseline, 1e-9) >= o.copy_excess
        )
        pv = _fisher(p.p_flip, p_twin)
        return pv, bool(pv <= p.threshold and copies)
    copies = copies_beyond_chance(p_twin, share, baseline, o)
    if label_hint(p, o):
        pv = _fisher(p.p_label, p_twin)
    else:  # pure label, copies: purity against the base rate instead of the context
        pv = _fisher(float(stats.binom.sf(p.k - 1, p.n, base_rate)), p_twin)
    flagged = pv <= p.threshold and copies
    # the nearest-neighbour copy test as well: the hub test counts rows, and where records
    # repeat a handful of one record's rows makes a small value a hub (a credit panel with
    # 'entity': BILL_AMT1=-18, 8 of its 13 defaulters' rows, hub p 2.6e-15; copy p 1.0). It
    # misses copies diluted below the look-alike rate (fraud channel='online' -> 0, 13.5 % of
    # its rows copies against 15.7 % of random rows with a look-alike: copy p 0.46): counting
    # the hub's copies per record would let the hub test stand alone (not done)
    if not flagged and p.p_hub is not None and p.p_hub <= p.threshold and p_twin <= o.copy_p:
        return p.p_hub, True
    return pv, bool(flagged)


def flagged_as_hub(p: Pattern) -> bool:
    """Whether ``p`` was confirmed as a value collecting copies (:func:`copy_decision`'s hub
    rule: its p-value is the hub test's)."""
    return p.flagged and p.p_hub is not None and p.p == p.p_hub
