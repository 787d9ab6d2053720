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
"""

from __future__ import annotations

import math
from typing import Literal

from scipy import stats

Direction = Literal["below", "above", "either"]


def _alt(direction: Direction) -> Literal["less", "greater", "two-sided"]:
    return {"below": "less", "above": "greater", "either": "two-sided"}[direction]  # type: ignore[return-value]


def rate_change_p(k: int, n: int, k0: int, n0: int, direction: Direction) -> float:
    """p-value that the current rate ``k/n`` is below / above / unlike the baseline ``k0/n0``."""
    if n <= 0 or n0 <= 0:
        return 1.0
    table = [[k, n - k], [k0, n0 - k0]]
    return float(stats.fisher_exact(table, alternative=_alt(direction)).pvalue)


def rate_level_p(k: int, n: int, level: float, direction: Direction) -> float:
    """p-value that the rate ``k/n`` is below / above ``level`` (exact binomial)."""
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
