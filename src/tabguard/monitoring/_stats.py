"""Significance tests on the counts behind a monitored number (the one module using scipy here).

A rate moving by 20 % means nothing when it rests on 12 requests: every rule's change must
also be significant given the counts, so a quiet segment or a quiet night cannot page anyone.

* rates (decision rate, guard-action rate): Fisher's exact test on the 2×2 table
  (current hits / misses vs baseline hits / misses) — exact at any count, and it accounts for
  the baseline's own noise (last week's night was quiet too);
* counts (volume, probing signals): the conditional binomial test of two Poisson counts,
  ``c ~ Binomial(c + c0, 1/(1+w))`` for a baseline pooled over ``w`` windows;
* against an absolute level: the exact binomial test (rates) or the Poisson test (counts);
* quantiles: the distribution-free order-statistic interval — the q-quantile of n values lies
  between the sketch's ranks ``q ∓ z·sqrt(q(1-q)/n)``; a baseline value outside that interval
  is a significant shift (see :func:`quantile_bounds`).

Real traffic is more dispersed than binomial counts (applicant mix, campaigns, a partner's
batch): a segment whose rate varies 1.3x the binomial standard deviation between weeks pages
on chance alone. :func:`dispersion` estimates that factor from the segment's own baseline weeks
(quasi-binomial, shrunk towards 1 when few weeks exist) and the rate tests divide their counts
by it (Rao-Scott: ``k/phi`` of ``n/phi`` carries the information of the dispersed counts).

A rate that stays low for longer than one window is caught sooner by :func:`rate_cusum`, a
one-sided CUSUM of the hourly counts' log-likelihood ratio (rate at the baseline vs at the
rule's threshold); its limit comes from Ville's inequality, so it needs no tuning on traffic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

Direction = Literal["below", "above", "either"]


def _alt(direction: Direction) -> Literal["less", "greater", "two-sided"]:
    return {"below": "less", "above": "greater", "either": "two-sided"}[direction]  # type: ignore[return-value]


def rate_change_p(
    k: int, n: int, k0: int, n0: int, direction: Direction, *, dispersion: float = 1.0
) -> float:
    """p-value that the current rate ``k/n`` is below / above / unlike the baseline ``k0/n0``.

    With ``dispersion`` ``phi > 1`` (variance ``phi`` times the binomial one, see
    :func:`dispersion`) every count is divided by ``phi`` before Fisher's test: the effective
    sample sizes of a quasi-binomial (Rao-Scott) adjustment.
    """
    if dispersion > 1.0:
        k, n = _deflate(k, n, dispersion)
        k0, n0 = _deflate(k0, n0, dispersion)
    if n <= 0 or n0 <= 0:
        return 1.0
    table = [[k, n - k], [k0, n0 - k0]]
    return float(stats.fisher_exact(table, alternative=_alt(direction)).pvalue)


def _deflate(k: int, n: int, phi: float) -> tuple[int, int]:
    """Counts ``k`` of ``n`` divided by ``phi``, rounded (the rate is kept)."""
    n_eff = round(n / phi)
    return min(n_eff, round(k / phi)), n_eff


def rate_level_p(
    k: int, n: int, level: float, direction: Direction, *, dispersion: float = 1.0
) -> float:
    """p-value that the rate ``k/n`` is below / above ``level`` (exact binomial).

    ``dispersion`` divides the counts as in :func:`rate_change_p`.
    """
    if dispersion > 1.0:
        k, n = _deflate(k, n, dispersion)
    if n <= 0:
        return 1.0
    level = min(max(level, 1e-12), 1 - 1e-12)
    return float(stats.binomtest(k, n, level, alternative=_alt(direction)).pvalue)


def count_change_p(c: int, c0: int, direction: Direction, *, weeks: int = 1) -> float:
    """p-value that a Poisson count ``c`` is below / above / unlike the baseline.

    ``c0`` is the baseline count pooled over ``weeks`` windows of the same length: under equal
    rates, ``c ~ Binomial(c + c0, 1 / (1 + weeks))``.
    """
    if c + c0 == 0:
        return 1.0
    share = 1.0 / (1 + weeks)
    return float(stats.binomtest(c, c + c0, share, alternative=_alt(direction)).pvalue)


def count_level_p(c: int, level: float, direction: Direction) -> float:
    """p-value that a Poisson count ``c`` comes from a mean below / above ``level``."""
    if level <= 0:
        return 0.0 if c > 0 and direction != "below" else 1.0
    lower = float(stats.poisson.cdf(c, level))  # P(X <= c)
    upper = float(stats.poisson.sf(c - 1, level))  # P(X >= c)
    if direction == "below":
        return lower
    if direction == "above":
        return upper
    return min(1.0, 2 * min(lower, upper))


def quantile_bounds(q: float, n: int, alpha: float) -> tuple[float, float]:
    """Ranks bracketing the ``q`` quantile of ``n`` values at level ``alpha`` (two-sided).

    The rank of the population q-quantile among n values is Binomial(n, q); its normal
    approximation gives the ranks ``q ∓ z·sqrt(q(1-q)/n)``, clipped to [0, 1].
    """
    if n <= 0:
        return 0.0, 1.0
    z = float(stats.norm.ppf(1 - alpha / 2))
    half = z * math.sqrt(q * (1 - q) / n)
    return max(0.0, q - half), min(1.0, q + half)


def dispersion(
    k: Sequence[Sequence[float]],
    n: Sequence[Sequence[float]],
    *,
    prior_df: float,
    min_n: int = 1,
) -> tuple[float, int]:
    """Quasi-binomial dispersion of rates across weeks, shrunk towards 1; and its df.

    Parameters
    ----------
    k, n : 2-d array-likes, shape (cells, weeks)
        Hits and totals of the same window (a cell: a clock position, e.g. the 6 h window
        ending now or the ones before it) in each baseline week. Entries with ``n < min_n``
        are left out.
    prior_df : float
        Weight of the prior value 1 in degrees of freedom: with ``d`` observed degrees of
        freedom the estimate is ``(d * phi_hat + prior_df) / (d + prior_df)``.
    min_n : int
        Totals below this are left out (a thin week says nothing about dispersion).

    Returns
    -------
    (float, int)
        The dispersion (never below 1: a test is never made more liberal than the binomial
        one) and the degrees of freedom behind it (``sum(weeks - 1)`` over the cells).

    Notes
    -----
    For each cell, Pearson's statistic of the weeks against their pooled rate,
    ``sum_w (k_w - n_w p)^2 / (n_w p (1 - p))``, has expectation ``weeks - 1`` under binomial
    counts; ``phi_hat`` is their sum over the cells divided by the summed degrees of freedom
    (the quasi-binomial estimate). The weeks are compared at the same clock position, so the
    daily and weekly seasonality does not count as dispersion.
    """
    chi2, df = 0.0, 0
    k_arr, n_arr = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    for kc, nc in zip(np.atleast_2d(k_arr), np.atleast_2d(n_arr), strict=True):
        keep = nc >= max(min_n, 1)
        if keep.sum() < 2:
            continue
        kc, nc = kc[keep], nc[keep]
        p = kc.sum() / nc.sum()
        if not 0 < p < 1:
            continue
        chi2 += float((((kc - nc * p) ** 2) / (nc * p * (1 - p))).sum())
        df += int(keep.sum()) - 1
    if df == 0:
        return 1.0, 0
    shrunk = (chi2 + prior_df) / (df + prior_df)
    return max(1.0, shrunk), df


@dataclass(frozen=True)
class CusumRun:
    """The end of a one-sided CUSUM (:func:`rate_cusum`) and the run behind it.

    Attributes
    ----------
    stat : float
        The last value of the CUSUM.
    buckets : int
        Buckets with counts since the run started (its last zero; 0 when it is at zero).
    k, n : int
        Hits and totals over the run.
    expected : float
        Hits the baseline rates expected over the run (``sum n_t p0_t``).
    """

    stat: float = 0.0
    buckets: int = 0
    k: int = 0
    n: int = 0
    expected: float = 0.0

    @property
    def rate(self) -> float:
        """The run's rate (NaN for an empty run)."""
        return self.k / self.n if self.n else math.nan

    @property
    def baseline(self) -> float:
        """The baseline rate over the run (weighted by its counts)."""
        return self.expected / self.n if self.n else math.nan


def rate_cusum(
    k: Sequence[float],
    n: Sequence[float],
    p0: Sequence[float],
    p1: Sequence[float],
    *,
    scale: float = 1.0,
) -> CusumRun:
    """One-sided CUSUM of binomial counts, rate ``p0`` (no change) against ``p1``.

    ``S_t = max(0, S_{t-1} + llr_t / scale)`` with
    ``llr_t = k_t log(p1/p0) + (n_t - k_t) log((1-p1)/(1-p0))``: the log-likelihood ratio of
    the counts since the most recent start that makes it largest. Under the no-change rate,
    for any start hour the likelihood ratio is a martingale of mean 1, so by Ville's inequality
    it ever reaches ``e^h`` with probability at most ``e^-h``: a limit ``h = log(m / alpha)``
    gives each start hour and segment the level ``alpha / m`` of the window test.

    Parameters
    ----------
    k, n : sequences
        Hits and totals per bucket, oldest first.
    p0, p1 : sequences
        Per bucket: the baseline rate and the rate the rule is looking for (same length).
    scale : float
        Divides each increment: the dispersion (quasi-likelihood) and the baseline's own
        sampling noise (see ``_rules._History.cusum``).

    Returns
    -------
    CusumRun
        The last value and the counts of the run since its last zero.
    """
    s, run, rk, rn, rexp = 0.0, 0, 0, 0, 0.0
    for kt, nt, a, b in zip(k, n, p0, p1, strict=True):
        if nt <= 0 or not (0 < a < 1 and 0 < b < 1):
            continue
        llr = kt * math.log(b / a) + (nt - kt) * math.log((1 - b) / (1 - a))
        s = s + llr / scale
        if s <= 0:
            s, run, rk, rn, rexp = 0.0, 0, 0, 0, 0.0
        else:
            run, rk, rn, rexp = run + 1, rk + int(kt), rn + int(nt), rexp + nt * a
    return CusumRun(s, run, rk, rn, rexp)
