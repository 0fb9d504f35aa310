"""Block resampling for timing series whose samples are correlated in time.

Requests of one run share machine state: a noisy neighbour or a frequency change slows a
stretch of consecutive requests, not random ones. An iid bootstrap treats those as independent
draws and gives intervals too narrow to hold between runs (it cried wolf on 4-7 of 20 A/A pairs
in benchmarks/verdict_quality.py). Resampling blocks of consecutive samples keeps each stretch
whole, and ranking block medians rather than single requests gives the rank test the same
honesty.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from itertools import chain

from perfgate.stats import Estimate, Interval, MannWhitney, mann_whitney, quantile

__all__ = ["BLOCK", "block_bootstrap_ratio", "block_mann_whitney", "block_size", "blocks"]

BLOCK = 30  # consecutive requests per block: about 0.1 s of a run at concurrency 4


def block_size(n: int) -> int:
    """``BLOCK``, shrunk so that a short series still has ten blocks (one value each at n < 20)."""
    return max(1, min(BLOCK, n // 10))


def blocks(values: Sequence[float], size: int) -> list[tuple[float, ...]]:
    """Consecutive non-overlapping blocks of about ``size`` values; the remainder is spread."""
    count = max(1, len(values) // size)
    step = len(values) / count
    return [tuple(values[int(i * step) : int((i + 1) * step)]) for i in range(count)]


def block_bootstrap_ratio(
    base: Sequence[float],
    current: Sequence[float],
    stat: Callable[[Sequence[float]], float],
    *,
    confidence: float,
    resamples: int,
    seed: int,
) -> Estimate:
    """stat(current) / stat(base) with a percentile interval from a two-sample block bootstrap.

    Each sample is cut into blocks of ``block_size(n)`` consecutive values (Künsch's
    non-overlapping block bootstrap); a resample draws as many blocks as there are, with
    replacement, from each sample independently. ``stat`` gets sorted values. Seeded.
    """
    denominator = stat(sorted(base))
    value = stat(sorted(current)) / denominator
    rng = random.Random(seed)
    base_blocks = blocks(base, block_size(len(base)))
    cur_blocks = blocks(current, block_size(len(current)))
    ratios = []
    draw, join = rng.choices, chain.from_iterable
    for _ in range(resamples):
        b = stat(sorted(join(draw(base_blocks, k=len(base_blocks)))))
        c = stat(sorted(join(draw(cur_blocks, k=len(cur_blocks)))))
        ratios.append(c / b if b > 0.0 else float("inf"))
    ratios.sort()
    alpha = 1.0 - confidence
    low, high = quantile(ratios, alpha / 2.0), quantile(ratios, 1.0 - alpha / 2.0)
    return Estimate(value, Interval(min(low, value), max(high, value), confidence))


def block_mann_whitney(base: Sequence[float], current: Sequence[float]) -> MannWhitney:
    """Mann-Whitney test of current's block medians against the baseline's."""
    return mann_whitney(_medians(base), _medians(current))


def _medians(values: Sequence[float]) -> list[float]:
    return [quantile(sorted(b), 0.5) for b in blocks(values, block_size(len(values)))]
