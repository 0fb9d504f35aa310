"""Statistics, pure functions over sequences, each method named in its docstring.

estimates.py      quantiles and their distribution-free intervals, means, rates, proportions
twosample.py      two samples compared: the bootstrap of a ratio, the Mann-Whitney test
distributions.py  normal, Student t and gamma distributions
blocks.py         block resampling for timing series correlated in time
"""

from __future__ import annotations

from perfgate.stats.estimates import (
    Estimate,
    Interval,
    QuantileStat,
    coefficient_of_variation,
    gamma_ppf,
    mean_estimate,
    normal_cdf,
    normal_ppf,
    proportion_estimate,
    quantile,
    quantile_estimate,
    quantile_order_statistics,
    rate_estimate,
    student_t_cdf,
    student_t_ppf,
)
from perfgate.stats.twosample import MannWhitney, bootstrap_ratio, mann_whitney

__all__ = [
    "Estimate",
    "Interval",
    "MannWhitney",
    "QuantileStat",
    "bootstrap_ratio",
    "coefficient_of_variation",
    "gamma_ppf",
    "mann_whitney",
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
