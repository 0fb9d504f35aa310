"""How long do perfgate's estimates take? ``python benchmarks/stats_speed.py``.

Times, on two lognormal samples of --n values each: the p95 bootstrap ratio through the
order-statistic path (`QuantileStat`), the same ratio through plain resampling (a lambda), a mean
ratio, and a p95 quantile estimate with its binomial interval (first call and cached ranks).
Each is run --repeat times; the median wall time is printed.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable, Sequence

from perfgate.stats import QuantileStat, bootstrap_ratio, quantile, quantile_estimate
from perfgate.stats import quantile_order_statistics as order_statistics


def _median_seconds(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(0)
    base = [rng.lognormvariate(3.0, 0.5) for _ in range(args.n)]
    current = [rng.lognormvariate(3.0, 0.5) * 1.1 for _ in range(args.n)]

    def p95(values: Sequence[float]) -> float:
        return quantile(sorted(values), 0.95)

    def mean(values: Sequence[float]) -> float:
        return sum(values) / len(values)

    def uncached_estimate() -> object:
        order_statistics.cache_clear()
        return quantile_estimate(current, 0.95)

    cases: list[tuple[str, Callable[[], object]]] = [
        ("bootstrap p95 ratio, QuantileStat", lambda: bootstrap_ratio(
            base, current, QuantileStat(0.95), resamples=args.resamples)),
        ("bootstrap p95 ratio, plain resampling", lambda: bootstrap_ratio(
            base, current, p95, resamples=args.resamples)),
        ("bootstrap mean ratio", lambda: bootstrap_ratio(
            base, current, mean, resamples=args.resamples)),
        ("quantile_estimate p95 (ranks computed)", uncached_estimate),
        ("quantile_estimate p95 (ranks cached)", lambda: quantile_estimate(current, 0.95)),
    ]  # fmt: skip
    print(f"n={args.n} per sample, {args.resamples} resamples, median of {args.repeat} runs")
    for name, run in cases:
        print(f"  {name:<42} {_median_seconds(run, args.repeat) * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
