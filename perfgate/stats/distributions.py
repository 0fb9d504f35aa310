"""Normal, Student t and gamma distributions: CDFs and quantile functions.

The normal is the stdlib's ``statistics.NormalDist``. The stdlib has no Student t or gamma, and
SciPy (tens of MB, compiled) would be a heavy dependency for two quantile functions; the ones
here are tested against SciPy's reference values in tests/test_stats.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from statistics import NormalDist

_STANDARD = NormalDist()


def normal_cdf(x: float) -> float:
    """Standard normal CDF (the stdlib's ``NormalDist``)."""
    return _STANDARD.cdf(x)


def normal_ppf(p: float) -> float:
    """Standard normal quantile (the stdlib's ``NormalDist.inv_cdf``, Wichura's AS241).

    Unlike ``inv_cdf``, 0 and 1 give the infinite tails, as the t quantile below relies on.
    """
    if p == 0.0:
        return -math.inf
    if p == 1.0:
        return math.inf
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in [0, 1], got {p!r}")
    return _STANDARD.inv_cdf(p)


def _solve_cdf(
    cdf: Callable[[float], float], pdf: Callable[[float], float], p: float, x: float, lo: float
) -> float:
    """Invert an increasing CDF by Newton's method, safeguarded by bisection."""
    hi = max(x, lo + 1.0)
    while cdf(hi) < p:
        lo, hi = hi, lo + 2.0 * (hi - lo)
    while cdf(lo) > p:
        lo, hi = lo - 2.0 * (hi - lo), lo
    x = min(max(x, lo), hi)
    for _ in range(200):
        f = cdf(x) - p
        if f == 0.0:
            return x
        if f < 0.0:
            lo = x
        else:
            hi = x
        density = pdf(x)
        step = f / density if density > 0.0 else math.inf
        nxt = x - step
        if not lo < nxt < hi:
            nxt = 0.5 * (lo + hi)
        if abs(nxt - x) <= 1e-13 * max(1.0, abs(x)) or hi - lo <= 1e-15 * max(1.0, abs(x)):
            return nxt
        x = nxt
    return x


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b) by Lentz's continued fraction."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1.0) / (a + b + 2.0):
        return 1.0 - _betainc(b, a, 1.0 - x)
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    log_front += a * math.log(x) + b * math.log1p(-x)
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return math.exp(log_front) * h / a


def student_t_cdf(t: float, df: float) -> float:
    """Student t CDF through the regularized incomplete beta function."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def student_t_ppf(p: float, df: float) -> float:
    """Student t quantile: closed form for df 1 and 2, else Hill's expansion refined by Newton.

    Hill's (1970) Cornish-Fisher-type series in 1/df is the start; for df < 1000 Newton steps
    on `student_t_cdf` polish it to ~1e-12; above that the series alone is exact to ~1e-15.
    """
    if df <= 0:
        raise ValueError(f"df must be positive, got {df!r}")
    if not 0.0 < p < 1.0:
        return normal_ppf(p)  # raises, or returns the infinite tail
    if df == 1:  # Cauchy; -cot(pi p) keeps the digits that tan(pi (p - 0.5)) would round off
        return -1.0 / math.tan(math.pi * p) if p < 0.5 else 1.0 / math.tan(math.pi * (1.0 - p))
    if df == 2:
        return (2.0 * p - 1.0) / math.sqrt(2.0 * p * (1.0 - p))
    z = normal_ppf(p)
    z2 = z * z
    g1 = (z2 + 1.0) * z / 4.0
    g2 = ((5.0 * z2 + 16.0) * z2 + 3.0) * z / 96.0
    g3 = (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) * z / 384.0
    g4 = ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) * z / 92160.0
    x = z + (g1 + (g2 + (g3 + g4 / df) / df) / df) / df
    if df >= 1000:
        return x
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def pdf(t: float) -> float:
        return math.exp(log_norm - (df + 1) / 2 * math.log1p(t * t / df))

    return _solve_cdf(lambda t: student_t_cdf(t, df), pdf, p, x, x - 1.0)


def _gammainc(a: float, x: float) -> float:
    """Regularized lower incomplete gamma P(a, x): series below a + 1, continued fraction above."""
    if x <= 0.0:
        return 0.0
    log_front = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1.0:
        term = total = 1.0 / a
        n = a
        while abs(term) > abs(total) * 1e-16:
            n += 1.0
            term *= x / n
            total += term
        return total * math.exp(log_front)
    tiny = 1e-300
    b = x + 1.0 - a
    c, d = 1.0 / tiny, 1.0 / b
    h = d
    for i in range(1, 100_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = b + an / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        if abs(d * c - 1.0) < 1e-16:
            break
    return 1.0 - math.exp(log_front) * h


def gamma_ppf(p: float, shape: float) -> float:
    """Quantile of Gamma(shape, scale 1): Wilson-Hilferty start refined by Newton on P(a, x)."""
    if not 0.0 < p < 1.0 or shape <= 0.0:
        raise ValueError(f"need 0 < p < 1 and shape > 0, got p={p!r}, shape={shape!r}")
    z = normal_ppf(p)
    x = shape * (1.0 - 1.0 / (9.0 * shape) + z / (3.0 * math.sqrt(shape))) ** 3
    log_norm = -math.lgamma(shape)

    def pdf(t: float) -> float:
        return math.exp((shape - 1.0) * math.log(t) - t + log_norm) if t > 0.0 else 0.0

    return _solve_cdf(lambda t: _gammainc(shape, t), pdf, p, max(x, 1e-300), 0.0)
