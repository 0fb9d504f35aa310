"""Pure statistics over samples: quantile, mean, proportion and rate estimates, ratios, ranks.

Only the standard library is used, so the gate runs anywhere pytest does. Every interval is
two-sided at the given confidence; `Estimate.interval` is None when the sample is too small to
give one at that confidence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from perfgate.stats.distributions import (
    gamma_ppf,
    normal_cdf,
    normal_ppf,
    student_t_cdf,
    student_t_ppf,
)

__all__ = [
    "Estimate",
    "Interval",
    "QuantileStat",
    "coefficient_of_variation",
    "gamma_ppf",
    "mean_estimate",
    "normal_cdf",
    "normal_ppf",
    "proportion_estimate",
    "quantile",
    "quantile_estimate",
    "quantile_order_statistics",
    "rate_estimate",
    "student_t_cdf",
    "student_t_ppf",
]


def _number(data: Mapping[str, object], key: str, owner: str) -> float:
    value = data.get(key)
    # bool is an int subclass, and "true" is never a meaningful statistic
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{owner}.from_json: {key!r} must be a number, got {value!r}")
    return float(value)


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence!r}")


@dataclass(frozen=True, slots=True)
class Interval:
    """A two-sided confidence interval [low, high] at the nominal `confidence`."""

    low: float
    high: float
    confidence: float

    def __post_init__(self) -> None:
        if not self.low <= self.high:
            raise ValueError(f"Interval low {self.low!r} is above high {self.high!r}")
        _check_confidence(self.confidence)

    @property
    def width(self) -> float:
        return self.high - self.low

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high

    def to_json(self) -> dict[str, float]:
        return {"low": self.low, "high": self.high, "confidence": self.confidence}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Interval:
        return cls(*(_number(data, k, "Interval") for k in ("low", "high", "confidence")))


@dataclass(frozen=True, slots=True)
class Estimate:
    """A point estimate and its interval (None when n is too small for one)."""

    value: float
    interval: Interval | None

    def to_json(self) -> dict[str, object]:
        interval = None if self.interval is None else self.interval.to_json()
        return {"value": self.value, "interval": interval}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Estimate:
        raw = data.get("interval")
        if raw is not None and not isinstance(raw, Mapping):
            raise ValueError(f"Estimate.from_json: 'interval' must be an object, got {raw!r}")
        interval = None if raw is None else Interval.from_json(raw)
        return cls(_number(data, "value", "Estimate"), interval)


# --- quantiles --------------------------------------------------------------------------------


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Quantile of already-sorted values, Hyndman-Fan type 7 (numpy's and Excel's default).

    With h = (n - 1) * q, the result interpolates linearly between the 0-based order statistics
    floor(h) and floor(h) + 1. The input is not re-sorted or checked: sort it first.
    """
    n = len(sorted_values)
    if n == 0:
        raise ValueError("quantile of an empty sample")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q!r}")
    h = (n - 1) * q
    j = int(h)
    low = sorted_values[j]
    return low if j + 1 >= n else low + (h - j) * (sorted_values[j + 1] - low)


@lru_cache(maxsize=512)
def quantile_order_statistics(n: int, q: float, confidence: float) -> tuple[int, int, float] | None:
    """1-based ranks (l, u) with P(X_(l) <= x_q <= X_(u)) >= confidence, and that exact coverage.

    Distribution-free, from binomial order statistics: the number K of observations below the
    true quantile x_q is Binomial(n, q), and the coverage of (X_(l), X_(u)) is P(l <= K < u).
    The interval is equal-tailed: l is the largest rank with P(K < l) <= alpha/2 and u the
    smallest with P(K >= u) <= alpha/2, so each bound alone holds with confidence 1 - alpha/2
    (what a one-sided gate relies on). When one tail cannot reach alpha/2 even at X_(1) or X_(n),
    that bound is pinned there and the other tail gets the rest of alpha. None when no pair of
    order statistics reaches the confidence (e.g. p99 with n = 50: P(K = n) = 0.99**50 = 0.61).

    The binomial pmf is exact, built by the ratio recursion outwards from its mode until terms
    fall below 1e-18 of the peak; that window holds all but ~1e-17 of the mass and spans only
    ~18 standard deviations, so the exact CDF costs O(sqrt(n)) and no normal approximation is
    needed at any n.
    """
    _check_confidence(confidence)
    if n < 1 or not 0.0 < q < 1.0:
        return None
    alpha = 1.0 - confidence
    mode = min(n, int((n + 1) * q))
    up, down = q / (1.0 - q), (1.0 - q) / q
    weights = {mode: 1.0}
    k, w = mode, 1.0
    while k < n and w > 1e-18:
        w *= (n - k) / (k + 1) * up
        k += 1
        weights[k] = w
    k, w = mode, 1.0
    while k > 0 and w > 1e-18:
        w *= k / (n - k + 1) * down
        k -= 1
        weights[k] = w
    first, last = min(weights), max(weights)
    total = math.fsum(weights.values())
    pmf = [weights[i] / total for i in range(first, last + 1)]

    # below[i] = P(K < first + i); above[i] = P(K >= first + i); summed separately so neither
    # tail suffers the cancellation of 1 - CDF
    below = [0.0]
    for m in pmf:
        below.append(below[-1] + m)
    above = [0.0]
    for m in reversed(pmf):
        above.append(above[-1] + m)
    above.reverse()

    def p_below(rank: int) -> float:
        return below[min(max(rank - first, 0), len(pmf))]

    def p_at_or_above(rank: int) -> float:
        return above[min(max(rank - first, 0), len(pmf))]

    def lowest_rank(budget: float) -> int | None:  # largest l >= 1 with P(K < l) <= budget
        if p_below(1) > budget:
            return None
        rank = max(1, first)
        while rank < n and p_below(rank + 1) <= budget:
            rank += 1
        return rank

    def highest_rank(budget: float) -> int | None:  # smallest u <= n with P(K >= u) <= budget
        if p_at_or_above(n) > budget:
            return None
        rank = min(n, last + 1)
        while rank > 1 and p_at_or_above(rank - 1) <= budget:
            rank -= 1
        return rank

    lo, hi = lowest_rank(alpha / 2), highest_rank(alpha / 2)
    if lo is None and hi is not None:
        hi = highest_rank(alpha - p_below(1))
        lo = 1
    elif hi is None and lo is not None:
        lo = lowest_rank(alpha - p_at_or_above(n))
        hi = n
    if lo is None or hi is None or lo >= hi:
        return None
    return lo, hi, 1.0 - p_below(lo) - p_at_or_above(hi)


def quantile_estimate(values: Sequence[float], q: float, confidence: float = 0.95) -> Estimate:
    """Type-7 sample quantile with a distribution-free interval from binomial order statistics.

    See `quantile_order_statistics` for how the ranks are chosen; the interval's `confidence` is
    the nominal one asked for (the exact coverage is at least that).
    """
    ordered = sorted(values)
    value = quantile(ordered, q)
    ranks = quantile_order_statistics(len(ordered), q, confidence)
    if ranks is None:
        return Estimate(value, None)
    lo, hi, _ = ranks
    # type 7 interpolates between ranks floor(h)+1 and floor(h)+2, both inside [lo, hi] for the
    # equal-tailed ranks; min/max keep the point inside the interval for any exotic q anyway
    low, high = min(ordered[lo - 1], value), max(ordered[hi - 1], value)
    return Estimate(value, Interval(low, high, confidence))


@dataclass(frozen=True, slots=True)
class QuantileStat:
    """The type-7 q-quantile as a statistic; `bootstrap_ratio` resamples it in O(1) per draw."""

    q: float

    def __call__(self, values: Sequence[float]) -> float:
        return quantile(sorted(values), self.q)


# --- means, proportions, rates ----------------------------------------------------------------


def mean_estimate(values: Sequence[float], confidence: float = 0.95) -> Estimate:
    """Arithmetic mean with a Student t interval (interval None below two values)."""
    n = len(values)
    if n == 0:
        raise ValueError("mean of an empty sample")
    _check_confidence(confidence)
    mean = math.fsum(values) / n
    if n < 2:
        return Estimate(mean, None)
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in values) / (n - 1))
    half = student_t_ppf(0.5 + confidence / 2.0, n - 1) * sd / math.sqrt(n)
    return Estimate(mean, Interval(mean - half, mean + half, confidence))


def proportion_estimate(successes: int, n: int, confidence: float = 0.95) -> Estimate:
    """Proportion successes/n with the Wilson score interval.

    Wilson's interval stays inside [0, 1] and keeps near-nominal coverage at 0/n and n/n, where
    the Wald interval collapses to a point. n = 0 gives Estimate(0.0, None): no requests, no
    errors observed, and nothing known about the rate.
    """
    if not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    _check_confidence(confidence)
    if n == 0:
        return Estimate(0.0, None)
    p = successes / n
    z = normal_ppf(0.5 + confidence / 2.0)
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1.0 + z2 / n)
    half = z / (1.0 + z2 / n) * math.sqrt(p * (1.0 - p) / n + z2 / (4 * n * n))
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Estimate(p, Interval(min(low, p), max(high, p), confidence))


def rate_estimate(count: int, seconds: float, confidence: float = 0.95) -> Estimate:
    """Events per second with the exact Poisson (Garwood) interval for the count.

    Garwood: low = Gamma^-1(alpha/2; count), high = Gamma^-1(1 - alpha/2; count + 1), each divided
    by `seconds`. A closed-loop load test is not a Poisson process: with steady workers the count's
    variance is about CV^2 of the latency times Poisson's, so the interval is conservative when
    latency CV < 1 (the usual case) and optimistic for heavy-tailed latency.
    """
    if count < 0 or not seconds > 0.0:
        raise ValueError(f"need count >= 0 and seconds > 0, got count={count}, seconds={seconds}")
    _check_confidence(confidence)
    alpha = 1.0 - confidence
    low = 0.0 if count == 0 else gamma_ppf(alpha / 2.0, count)
    high = gamma_ppf(1.0 - alpha / 2.0, count + 1)
    rate = count / seconds
    return Estimate(rate, Interval(min(low / seconds, rate), max(high / seconds, rate), confidence))


def coefficient_of_variation(values: Sequence[float]) -> float:
    """Sample standard deviation (n - 1) over the mean; needs two values and a non-zero mean."""
    n = len(values)
    if n < 2:
        raise ValueError(f"coefficient of variation needs at least 2 values, got {n}")
    mean = math.fsum(values) / n
    if mean == 0.0:
        raise ValueError("coefficient of variation is undefined for a zero mean")
    return math.sqrt(math.fsum((x - mean) ** 2 for x in values) / (n - 1)) / abs(mean)


# --- comparing two samples --------------------------------------------------------------------
