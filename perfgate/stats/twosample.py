"""Two samples compared: the bootstrap interval of a ratio of statistics, the Mann-Whitney test.

Pure functions over sequences, seeded where they resample.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from perfgate.stats.distributions import normal_cdf
from perfgate.stats.estimates import (
    Estimate,
    Interval,
    QuantileStat,
    _check_confidence,
    _number,
    quantile,
)

__all__ = ["MannWhitney", "bootstrap_ratio", "mann_whitney"]


def _resampled_quantiles(
    sorted_values: Sequence[float], q: float, resamples: int, rng: random.Random
) -> list[float]:
    """Type-7 quantiles of bootstrap resamples, drawn through their order statistics.

    The k-th smallest of a resample is sorted_values[floor(n * U_(k))], where U_(k) ~ Beta(k,
    n - k + 1) is the k-th of n uniform order statistics; given it, U_(k+1) is U_(k) plus
    (1 - U_(k)) times the minimum of n - k uniforms. So each draw costs O(1), not O(n log n).
    """
    n = len(sorted_values)
    h = (n - 1) * q
    k = int(h) + 1  # 1-based rank of the lower of the two interpolated order statistics
    g = h - (k - 1)
    out = []
    for _ in range(resamples):
        u = rng.betavariate(k, n - k + 1)
        low = sorted_values[min(int(n * u), n - 1)]
        if g == 0.0 or k >= n:
            out.append(low)
            continue
        u += (1.0 - u) * (1.0 - rng.random() ** (1.0 / (n - k)))
        out.append(low + g * (sorted_values[min(int(n * u), n - 1)] - low))
    return out


def _resampled_stats(
    values: Sequence[float],
    stat: Callable[[Sequence[float]], float],
    resamples: int,
    rng: random.Random,
) -> list[float]:
    if isinstance(stat, QuantileStat):
        return _resampled_quantiles(sorted(values), stat.q, resamples, rng)
    # a sorted resample costs one sort here and makes a sorting `stat` re-sort in O(n)
    ordered = sorted(values)
    return [stat(sorted(rng.choices(ordered, k=len(ordered)))) for _ in range(resamples)]


def bootstrap_ratio(
    base: Sequence[float],
    current: Sequence[float],
    stat: Callable[[Sequence[float]], float],
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> Estimate:
    """stat(current) / stat(base) with a two-sample percentile bootstrap interval.

    Each sample is resampled independently with a `random.Random(seed)`, so the result is
    deterministic for a given seed and Python version. Percentile rather than BCa: BCa's
    acceleration comes from the jackknife, which is inconsistent for quantiles (perfgate's main
    statistic), and the percentile interval is invariant under the log transform a ratio wants.
    `stat` receives sorted resamples and must be positive on `base`; `QuantileStat` takes an
    O(1)-per-resample path. A resample whose base statistic is 0 counts as an infinite ratio.
    """
    if not base or not current:
        raise ValueError("bootstrap_ratio needs two non-empty samples")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    _check_confidence(confidence)
    denominator = stat(sorted(base))
    if not denominator > 0.0:
        raise ValueError(f"stat(base) must be positive for a ratio, got {denominator!r}")
    value = stat(sorted(current)) / denominator
    rng = random.Random(seed)
    bases = _resampled_stats(base, stat, resamples, rng)
    currents = _resampled_stats(current, stat, resamples, rng)
    ratios = sorted(c / b if b > 0.0 else math.inf for b, c in zip(bases, currents, strict=True))
    alpha = 1.0 - confidence
    low, high = quantile(ratios, alpha / 2.0), quantile(ratios, 1.0 - alpha / 2.0)
    return Estimate(value, Interval(min(low, value), max(high, value), confidence))


@dataclass(frozen=True, slots=True)
class MannWhitney:
    """Mann-Whitney U test of current against base.

    u: U of `current` (pairs where current wins, ties counting half); z: its tie- and
    continuity-corrected normal score, positive when current tends larger; p_greater: one-sided
    p for "current is stochastically greater"; effect: u / (n_base * n_current), the probability
    of superiority P(current > base) + P(tie) / 2.
    """

    u: float
    z: float
    p_two_sided: float
    p_greater: float
    effect: float

    def to_json(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> MannWhitney:
        return cls(*(_number(data, name, "MannWhitney") for name in cls.__slots__))


def mann_whitney(base: Sequence[float], current: Sequence[float]) -> MannWhitney:
    """Mann-Whitney U test, normal approximation with tie and continuity corrections.

    Matches scipy.stats.mannwhitneyu(current, base, method="asymptotic"). All values equal
    gives z = 0 and p = 1.
    """
    n_b, n_c = len(base), len(current)
    if n_b == 0 or n_c == 0:
        raise ValueError("mann_whitney needs two non-empty samples")
    pooled = sorted([(x, 0) for x in base] + [(x, 1) for x in current])
    total = n_b + n_c
    rank_sum_current = 0.0
    tie_term = 0.0
    i = 0
    while i < total:
        j = i
        while j + 1 < total and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        midrank = (i + j) / 2.0 + 1.0
        rank_sum_current += midrank * sum(pooled[m][1] for m in range(i, j + 1))
        tied = j - i + 1
        tie_term += tied**3 - tied
        i = j + 1
    u = rank_sum_current - n_c * (n_c + 1) / 2.0
    mean = n_b * n_c / 2.0
    var = n_b * n_c / 12.0 * ((total + 1) - tie_term / (total * (total - 1) or 1))
    effect = u / (n_b * n_c)
    if var <= 0.0:
        return MannWhitney(u, 0.0, 1.0, 1.0, effect)
    sd = math.sqrt(var)
    diff = u - mean
    z = math.copysign(max(abs(diff) - 0.5, 0.0), diff) / sd
    p_two_sided = min(1.0, 2.0 * normal_cdf(-(abs(diff) - 0.5) / sd))
    p_greater = normal_cdf(-(diff - 0.5) / sd)
    return MannWhitney(u, z, p_two_sided, p_greater, effect)
