"""Timing comparisons: the relative change of a quantile or mean, its interval, and the verdict.

The decision rule, with r the ratio statistic(current) / statistic(baseline), [L, H] its
interval at the policy's confidence c from a two-sample *block* bootstrap (blocks of 30
consecutive requests, see ``perfgate.stats.blocks``), t the threshold, alpha = 1 - c, and the
rank test a one-sided Mann-Whitney test on the block medians:

* **regression** when r > 1 + t (the change is larger than the threshold), L > 1 (it is
  significant), and the rank test agrees that current is shifted up (p < alpha);
* **improvement** mirrored: r < 1 / (1 + t), H < 1, and the rank test agrees it shifted down;
* **inconclusive** when it might be a regression: r > 1 + t without that evidence (the caller
  re-measures and pools, see ``needs_more``); when either sample is too small for a
  distribution-free interval of the quantile at c (p95 at 99% needs 90 values, p99 460); or,
  without re-measuring, when the environment differs from the baseline's;
* **unchanged** otherwise: a change below the threshold is not a regression however
  significant (the noise floor), so a wide interval around a small change does not re-measure;
  nor is a change smaller in absolute terms than the policy's minimum effect (a query going
  from 0.04 ms to 0.06 ms is +50%, and 0.02 ms that no user feels).

Why the point estimate, not L, must clear the threshold: L > 1 + t needs a change about twice
the threshold before one run of 300 requests can show it, missing most real +25% slowdowns.
Why blocks: samples within a run are correlated by machine state, and the iid bootstrap with a
per-request rank test called 4 to 7 of 20 A/A pairs regressions on a shared 2-core runner; the
block versions called 2 (benchmarks/verdict_quality.py has the figures).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from perfgate.budgets.units import format_confidence, format_ms
from perfgate.stats import (
    mean_estimate,
    quantile,
    quantile_estimate,
    quantile_order_statistics,
)
from perfgate.stats.blocks import block_bootstrap_ratio, block_mann_whitney
from perfgate.verdict.values import Comparison, Metric, Outcome

__all__ = ["ENVIRONMENT_REASON", "TimingStat", "compare_timing", "decide", "format_change"]

RESAMPLES = 2000
ENVIRONMENT_REASON = "the environment differs from the baseline's"
MIN_SAMPLES = 10  # below this even the median's interval says nothing worth a verdict


@dataclass(frozen=True, slots=True)
class TimingStat:
    """A statistic of a timing series: ``p95`` (q=0.95) or ``mean`` (q=None)."""

    label: str  # "p95", "median", "mean"
    q: float | None

    def metric(self, values: Sequence[float], confidence: float) -> Metric:
        """The statistic with its own interval (none below two values or for too few)."""
        if not values:
            return Metric(math.nan, "ms")
        if self.q is None:
            estimate = mean_estimate(values, confidence)
        else:
            estimate = quantile_estimate(values, self.q, confidence)
        return Metric.from_estimate(estimate, "ms")

    def on_sorted(self, ordered: Sequence[float]) -> float:
        """The statistic of values already sorted (what the block bootstrap hands over)."""
        return math.fsum(ordered) / len(ordered) if self.q is None else quantile(ordered, self.q)

    def too_few(self, n: int, confidence: float) -> bool:
        """Whether n values cannot give a distribution-free interval for this statistic."""
        if n < MIN_SAMPLES:
            return True
        return self.q is not None and quantile_order_statistics(n, self.q, confidence) is None


def compare_timing(
    metric: str,
    stat: TimingStat,
    base: Sequence[float],
    current: Sequence[float],
    *,
    threshold: float,
    confidence: float,
    env_reasons: Sequence[str] = (),
    seed: int = 0,
    series: str = "latency",
    min_effect_ms: float = 0.0,
) -> Comparison:
    """One timing comparison under the rule in the module docstring; pure and seeded."""
    baseline_m, current_m = stat.metric(base, confidence), stat.metric(current, confidence)
    base_value, cur_value = baseline_m.value, current_m.value
    name = f"{stat.label} {series}" if series != "latency" else stat.label
    small = [
        f"{which} has {len(values)}"
        for which, values in (("baseline", base), ("current", current))
        if stat.too_few(len(values), confidence)
    ]
    if small or not base_value > 0.0:
        why = "; ".join(small) or "the baseline's value is not positive"
        reason = (
            f"{name} {format_ms(base_value)} -> {format_ms(cur_value)}: too few samples for a "
            f"{format_confidence(confidence)} interval ({why}); measure more requests"
        )
        if env_reasons:
            reason += f"; not judged: {ENVIRONMENT_REASON} ({'; '.join(env_reasons)})"
        return Comparison(
            metric, baseline_m, current_m, None, threshold, Outcome.INCONCLUSIVE, reason,
            more_data_helps=not env_reasons,
        )  # fmt: skip

    ratio = block_bootstrap_ratio(
        base, current, stat.on_sorted, confidence=confidence, resamples=RESAMPLES, seed=seed
    )
    assert ratio.interval is not None  # the bootstrap always gives one
    r, low, high = ratio.value, ratio.interval.low, ratio.interval.high
    change = Metric(r - 1.0, "ratio", low - 1.0, high - 1.0, confidence)
    up = block_mann_whitney(base, current).p_greater
    down = block_mann_whitney(current, base).p_greater
    head = (
        f"{name} {format_ms(base_value)} -> {format_ms(cur_value)}, "
        f"{format_change(r - 1.0, low - 1.0, high - 1.0)} at {format_confidence(confidence)}"
    )
    if env_reasons:
        outcome = Outcome.INCONCLUSIVE
        reason = f"{head}; not judged: {ENVIRONMENT_REASON} ({'; '.join(env_reasons)})"
    else:
        outcome, why = decide(r, low, high, up, down, threshold, 1.0 - confidence)
        moved = abs(cur_value - base_value)
        if outcome in (Outcome.REGRESSION, Outcome.IMPROVEMENT) and moved < min_effect_ms:
            outcome = Outcome.UNCHANGED
            why = (
                f"{why.split(';')[0]} on the estimate, but {format_ms(moved)} is less than the "
                f"minimum effect of {format_ms(min_effect_ms)}"
            )
        reason = f"{head}, {why}{_sensitivity(r, low, threshold, len(base), len(current), outcome)}"
    return Comparison(
        metric, baseline_m, current_m, change, threshold, outcome, reason,
        more_data_helps=outcome == Outcome.INCONCLUSIVE and not env_reasons,
    )  # fmt: skip


def _sensitivity(
    r: float, low: float, threshold: float, n_base: int, n_current: int, outcome: Outcome
) -> str:
    """What this run could see: the smallest slowdown it could call a regression, and for an
    inconclusive one, about how many requests per side would settle it.

    A regression needs the estimate past the threshold and the interval's lower end past 0, so
    with the interval's lower reach d = r - L at this run's noise, the smallest change it
    could call one is about max(threshold, d). An interval's width falls as 1/sqrt(n), so
    settling a change c = r - 1 that the interval does not yet clear (d > c) needs about
    n * (d / c)^2 samples per side.
    """
    reach = max(0.0, r - low)
    text = f"; this run could detect {_pct(max(threshold, reach))} or more"
    change = r - 1.0
    if outcome == Outcome.INCONCLUSIVE and change > threshold and reach >= change > 0:
        n = min(n_base, n_current)
        needed = math.ceil(n * (reach / change) ** 2 * 1.1)  # 10% margin
        text += f"; about {needed:,} requests per side (now {n:,}) would settle it"
    return text


def decide(
    r: float, low: float, high: float, up: float, down: float, threshold: float, alpha: float
) -> tuple[Outcome, str]:
    """The rule in the module docstring: (outcome, why) from the ratio, its interval and p's."""
    limit = f"the {threshold:.0%} threshold"
    if r > 1.0 + threshold and low > 1.0 and up < alpha:
        return Outcome.REGRESSION, f"above {limit}; Mann-Whitney p={_p(up)}"
    if r < 1.0 / (1.0 + threshold) and high < 1.0 and down < alpha:
        return Outcome.IMPROVEMENT, f"an improvement beyond {limit}; Mann-Whitney p={_p(down)}"
    if r > 1.0 + threshold:
        if low <= 1.0:
            return (
                Outcome.INCONCLUSIVE,
                f"above {limit} but not significant (the interval includes 0)",
            )
        return (
            Outcome.INCONCLUSIVE,
            f"above {limit} but the rank test does not confirm it (p={_p(up)})",
        )
    # The estimate decides "unchanged"; when the interval still reaches past the threshold the
    # reason says so, rather than claiming a regression was ruled out.
    caveat = (
        f"; the interval reaches {_pct(high - 1.0)}, so more requests would be needed to rule "
        "out a regression"
        if high > 1.0 + threshold
        else ""
    )
    if r < 1.0 / (1.0 + threshold):
        return Outcome.UNCHANGED, (
            f"faster by more than {limit} on the estimate but not significantly; "
            f"p={_p(down)}{caveat}"
        )
    p_two = _p(min(1.0, 2.0 * min(up, down)))
    return Outcome.UNCHANGED, f"within {limit} on the estimate; Mann-Whitney p={p_two}{caveat}"


def format_change(change: float, low: float, high: float) -> str:
    """'+31% [+22%, +41%]': whole percents from 10% up, one decimal below."""
    return f"{_pct(change)} [{_pct(low)}, {_pct(high)}]"


def _pct(x: float) -> str:
    if not math.isfinite(x):
        return "+inf%" if x > 0 else "n/a"
    return f"{x:+.0%}" if abs(x) >= 0.095 else f"{x:+.1%}"


def _p(p: float) -> str:
    p = min(p, 1.0)
    return "<0.0001" if p < 0.0001 else f"{p:.2g}" if p < 0.01 else f"{p:.2f}"
