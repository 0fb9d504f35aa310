"""perfgate.stats against hand-computed values, published tables and known distributions.

Reference values marked "scipy" were computed once with scipy 1.17 (scipy is not a test
dependency); the others are worked out in the comments.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import pytest

from perfgate.stats import (
    Estimate,
    Interval,
    MannWhitney,
    QuantileStat,
    bootstrap_ratio,
    coefficient_of_variation,
    gamma_ppf,
    mann_whitney,
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
from perfgate.stats.twosample import _resampled_quantiles

# --- values -----------------------------------------------------------------------------------


def test_interval_contains_width_and_json_round_trip() -> None:
    interval = Interval(1.0, 3.5, 0.95)
    assert interval.contains(1.0)
    assert interval.contains(3.5)
    assert not interval.contains(3.6)
    assert interval.width == 2.5
    assert Interval.from_json(interval.to_json()) == interval


def test_interval_rejects_inverted_bounds_and_bad_confidence() -> None:
    with pytest.raises(ValueError, match=r"low 2\.0 is above high 1\.0"):
        Interval(2.0, 1.0, 0.95)
    with pytest.raises(ValueError, match="confidence"):
        Interval(1.0, 2.0, 95.0)


@pytest.mark.parametrize("estimate", [Estimate(3.0, None), Estimate(3.0, Interval(2, 4, 0.9))])
def test_estimate_json_round_trip(estimate: Estimate) -> None:
    assert Estimate.from_json(estimate.to_json()) == estimate


def test_from_json_names_the_bad_field() -> None:
    with pytest.raises(ValueError, match=r"Interval.from_json: 'high' must be a number, got 'x'"):
        Interval.from_json({"low": 1.0, "high": "x", "confidence": 0.95})
    with pytest.raises(ValueError, match=r"'value' must be a number, got True"):
        Estimate.from_json({"value": True, "interval": None})
    with pytest.raises(ValueError, match=r"'interval' must be an object"):
        Estimate.from_json({"value": 1.0, "interval": [1, 2]})


# --- normal and t distributions ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "expected"),  # scipy
    [
        (1e-12, -7.034483825301131),
        (0.001, -3.090232306167813),
        (0.3, -0.5244005127080409),
        (0.5, 0.0),
        (0.975, 1.959963984540054),
        (0.999999, 4.753424308817087),
    ],
)
def test_normal_ppf_to_double_precision(p: float, expected: float) -> None:
    assert normal_ppf(p) == pytest.approx(expected, rel=1e-14, abs=1e-15)


def test_normal_ppf_inverts_normal_cdf_and_handles_the_ends() -> None:
    for p in (1e-300, 1e-9, 0.02, 0.4, 0.7, 0.99):
        assert normal_cdf(normal_ppf(p)) == pytest.approx(p, rel=1e-12)
    assert normal_ppf(0.0) == -math.inf
    assert normal_ppf(1.0) == math.inf
    with pytest.raises(ValueError, match="p must be in"):
        normal_ppf(1.5)


@pytest.mark.parametrize(
    ("df", "table"),  # two-sided 95% column of any t table
    [(2, 4.303), (10, 2.228), (30, 2.042), (1, 12.706), (5, 2.571), (1000, 1.962)],
)
def test_t_quantiles_match_the_printed_table(df: int, table: float) -> None:
    assert student_t_ppf(0.975, df) == pytest.approx(table, abs=5e-4)
    assert student_t_ppf(0.025, df) == pytest.approx(-table, abs=5e-4)


@pytest.mark.parametrize(
    ("p", "df", "expected"),  # scipy
    [
        (0.975, 3, 3.1824463052837078),
        (0.995, 5, 4.032142983555228),
        (0.05, 7, -1.8945786050900066),
        (0.9, 2.5, 1.7302509288071766),
        (0.975, 120, 1.9799304050824402),
        (0.999, 5000, 3.091863119960982),
    ],
)
def test_t_quantiles_to_1e_9(p: float, df: float, expected: float) -> None:
    assert student_t_ppf(p, df) == pytest.approx(expected, rel=1e-9)


def test_t_cdf() -> None:
    assert student_t_cdf(1.5, 3) == pytest.approx(0.8847080673775886, rel=1e-10)  # scipy
    assert student_t_cdf(-2.0, 10) == pytest.approx(0.03669401738537018, rel=1e-10)  # scipy
    assert student_t_cdf(0.0, 7) == 0.5
    # df = 2 has the closed form 1/2 + t / (2 sqrt(2 + t^2))
    assert student_t_cdf(1.0, 2) == pytest.approx(0.5 + 1.0 / (2.0 * math.sqrt(3.0)), rel=1e-12)


@pytest.mark.parametrize(
    ("p", "shape", "expected"),  # scipy
    [
        (0.025, 10, 4.7953886961324335),
        (0.975, 11, 18.39035604201778),
        (0.5, 3.5, 3.1729055977607574),
        (0.025, 1000, 938.9730184076952),
    ],
)
def test_gamma_ppf(p: float, shape: float, expected: float) -> None:
    assert gamma_ppf(p, shape) == pytest.approx(expected, rel=1e-10)


# --- quantiles --------------------------------------------------------------------------------


def test_quantile_is_hyndman_fan_type_7() -> None:
    # numpy.quantile([1, 2, 3, 4], [0, .5, .95, 1]) == [1, 2.5, 3.85, 4]
    assert [quantile([1, 2, 3, 4], q) for q in (0.0, 0.5, 0.95, 1.0)] == pytest.approx(
        [1.0, 2.5, 3.85, 4.0]
    )
    # h = 19 * 0.95 = 18.05: 0.05 of the way from the 19th value to the 20th
    assert quantile(list(range(1, 21)), 0.95) == pytest.approx(19.05)
    assert quantile([7.0], 0.99) == 7.0


def test_quantile_rejects_empty_and_out_of_range() -> None:
    with pytest.raises(ValueError, match="empty"):
        quantile([], 0.5)
    with pytest.raises(ValueError, match="q must be in"):
        quantile([1.0], 1.5)


def test_median_interval_for_ten_values_is_second_to_ninth() -> None:
    # K ~ Binomial(10, 1/2); P(2 <= K <= 8) = 1 - 2 * (1 + 10) / 1024 = 1002/1024 = 0.9785
    lo, hi, coverage = quantile_order_statistics(10, 0.5, 0.95) or (0, 0, 0.0)
    assert (lo, hi) == (2, 9)
    assert coverage == pytest.approx(1002 / 1024)
    values = [9.0, 1.0, 8.0, 2.0, 7.0, 3.0, 6.0, 4.0, 5.0, 10.0]
    assert quantile_estimate(values, 0.5) == Estimate(5.5, Interval(2.0, 9.0, 0.95))


def test_p99_of_fifty_values_has_no_interval() -> None:
    # even (X_(1), X_(50)) misses whenever all 50 fall below p99: 0.99**50 = 0.61
    assert quantile_order_statistics(50, 0.99, 0.95) is None
    estimate = quantile_estimate([float(i) for i in range(50)], 0.99)
    assert estimate.interval is None
    assert estimate.value == pytest.approx(48.51)


def test_one_tail_is_pinned_to_the_maximum_when_it_cannot_reach_alpha_over_2() -> None:
    # p99 of 300: P(K = 300) = 0.99**300 = 0.049 > 0.025, so u = 300 and the lower tail gets
    # the remaining 0.001; P(K < 290) = 0.000265 (scipy) is the largest that fits
    lo, hi, coverage = quantile_order_statistics(300, 0.99, 0.95) or (0, 0, 0.0)
    assert (lo, hi) == (290, 300)
    assert coverage == pytest.approx(1 - 0.0002648437053322075 - 0.99**300, rel=1e-9)


def _binomial_tails(n: int, q: float, lo: int, hi: int) -> tuple[float, float]:
    """P(K < lo) and P(K >= hi) for K ~ Binomial(n, q), summed term by term."""

    def pmf(k: int) -> float:
        return math.comb(n, k) * q**k * (1 - q) ** (n - k)

    return math.fsum(pmf(k) for k in range(lo)), math.fsum(pmf(k) for k in range(hi, n + 1))


@pytest.mark.parametrize("q", [0.05, 0.25, 0.5, 0.9, 0.95, 0.99])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_order_statistics_are_the_tightest_equal_tailed_pair(q: float, confidence: float) -> None:
    alpha = 1 - confidence
    for n in (5, 12, 37, 80, 150):
        ranks = quantile_order_statistics(n, q, confidence)
        if ranks is None:
            # no interval only when a tail is too heavy even at the extreme order statistics
            lower, upper = _binomial_tails(n, q, 1, n)
            assert lower + upper > alpha
            continue
        lo, hi, coverage = ranks
        lower, upper = _binomial_tails(n, q, lo, hi)
        assert coverage == pytest.approx(1 - lower - upper, abs=1e-12)
        assert coverage >= confidence
        if lower <= alpha / 2 and upper <= alpha / 2 and lo > 1 and hi < n:
            # one rank further in on either side would break that tail's alpha/2
            assert _binomial_tails(n, q, lo + 1, hi)[0] > alpha / 2
            assert _binomial_tails(n, q, lo, hi - 1)[1] > alpha / 2


def test_large_n_uses_the_exact_binomial_and_is_cheap() -> None:
    # matches the normal approximation n q +- z sqrt(n q (1 - q)) + 1/2 to within a rank
    n, q = 10**7, 0.95
    lo, hi, coverage = quantile_order_statistics(n, q, 0.95) or (0, 0, 0.0)
    half = normal_ppf(0.975) * math.sqrt(n * q * (1 - q))
    assert abs(lo - (n * q + 0.5 - half)) < 1.5
    assert abs(hi - (n * q + 0.5 + half)) < 1.5
    assert 0.95 <= coverage < 0.951


def test_sample_quantile_lies_inside_its_interval() -> None:
    rng = random.Random(3)
    for n in (3, 10, 31, 100, 999):
        values = [rng.expovariate(1.0) for _ in range(n)]
        for q in (0.01, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999):
            estimate = quantile_estimate(values, q)
            assert estimate.interval is None or estimate.interval.contains(estimate.value)


def test_p95_interval_covers_the_true_lognormal_p95_as_promised() -> None:
    mu, sigma, n, draws = 3.0, 0.6, 300, 400
    true_p95 = math.exp(mu + sigma * normal_ppf(0.95))
    rng = random.Random(20240601)
    covered = 0
    for _ in range(draws):
        interval = quantile_estimate([rng.lognormvariate(mu, sigma) for _ in range(n)], 0.95)
        assert interval.interval is not None
        covered += interval.interval.contains(true_p95)
    exact = (quantile_order_statistics(n, 0.95, 0.95) or (0, 0, 0.0))[2]  # 0.967 here
    rate = covered / draws
    assert 0.92 <= rate <= 0.98
    assert abs(rate - exact) < 3 * math.sqrt(exact * (1 - exact) / draws)


# --- mean, proportion, rate, spread -----------------------------------------------------------


def test_mean_interval_by_hand() -> None:
    # mean 3, s = sqrt(2.5), se = s / sqrt(5) = sqrt(0.5); t(0.975, 4) = 2.7764451051977934
    estimate = mean_estimate([1.0, 2.0, 3.0, 4.0, 5.0])
    half = 2.7764451051977934 * math.sqrt(0.5)
    assert estimate.value == 3.0
    assert estimate.interval is not None
    assert estimate.interval.low == pytest.approx(3.0 - half, rel=1e-12)
    assert estimate.interval.high == pytest.approx(3.0 + half, rel=1e-12)


def test_mean_of_one_value_has_no_interval() -> None:
    assert mean_estimate([4.2]) == Estimate(4.2, None)
    with pytest.raises(ValueError, match="empty"):
        mean_estimate([])


def test_wilson_interval_at_zero_and_all() -> None:
    # 0/10: [0, z^2 / (n + z^2)] with z = 1.959964, and 10/10 its mirror image
    z2 = normal_ppf(0.975) ** 2
    none, every = proportion_estimate(0, 10), proportion_estimate(10, 10)
    assert (none.value, every.value) == (0.0, 1.0)
    assert none.interval is not None
    assert every.interval is not None
    assert none.interval.low == 0.0
    assert none.interval.high == pytest.approx(z2 / (10 + z2))
    assert every.interval.low == pytest.approx(10 / (10 + z2))
    assert every.interval.high == 1.0
    # 3/10: the textbook example, [0.1078, 0.6032]
    interval = proportion_estimate(3, 10).interval
    assert interval is not None
    assert (interval.low, interval.high) == pytest.approx((0.10779, 0.60322), abs=1e-5)


def test_wilson_without_trials_and_with_bad_counts() -> None:
    assert proportion_estimate(0, 0) == Estimate(0.0, None)
    with pytest.raises(ValueError, match="0 <= successes <= n"):
        proportion_estimate(11, 10)


def test_rate_uses_the_exact_poisson_interval() -> None:
    # Gamma(1) is the exponential, so the count-0 upper and count-1 lower bounds are closed form
    zero = rate_estimate(0, 2.0)
    assert zero.value == 0.0
    assert zero.interval is not None
    assert zero.interval.low == 0.0
    assert zero.interval.high == pytest.approx(-math.log(0.025) / 2)
    one = rate_estimate(1, 1.0).interval
    assert one is not None
    assert one.low == pytest.approx(-math.log(0.975), rel=1e-12)
    # 1000 in 10 s: Garwood bounds 938.97/10 and 1063.95/10 (scipy chi2)
    thousand = rate_estimate(1000, 10.0).interval
    assert thousand is not None
    assert (thousand.low, thousand.high) == pytest.approx((93.89730184, 106.39521360), rel=1e-9)
    with pytest.raises(ValueError, match="seconds > 0"):
        rate_estimate(5, 0.0)


def test_coefficient_of_variation() -> None:
    # mean 5, sample variance 32 / 7
    values = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]
    assert coefficient_of_variation(values) == pytest.approx(math.sqrt(32 / 7) / 5)
    with pytest.raises(ValueError, match="at least 2"):
        coefficient_of_variation([1.0])
    with pytest.raises(ValueError, match="zero mean"):
        coefficient_of_variation([-1.0, 1.0])


# --- comparing samples ------------------------------------------------------------------------


def test_mann_whitney_by_hand() -> None:
    # current beats base: 3 -> 2.5, 4 -> 3.5, 5 -> 4.5, 6, 7, 8 -> 5 each; U = 25.5 of 30 pairs.
    # Ties: 3, 4 and 5 twice, so var = 30/12 * (12 - 3 * 6 / 110) and z = (25.5 - 15 - 0.5) / sd
    result = mann_whitney([1, 2, 3, 4, 5], [3, 4, 5, 6, 7, 8])
    sd = math.sqrt(30 / 12 * (12 - 18 / 110))
    assert result.u == 25.5
    assert result.effect == pytest.approx(0.85)
    assert result.z == pytest.approx(10 / sd)
    assert result.p_greater == pytest.approx(0.0330077157606155, rel=1e-10)  # scipy
    assert result.p_two_sided == pytest.approx(0.066015431521231, rel=1e-10)  # scipy


def test_mann_whitney_matches_scipy_asymptotic() -> None:
    rng = random.Random(7)
    base = [round(rng.gauss(100, 15), 1) for _ in range(25)]
    current = [round(rng.gauss(110, 15), 1) for _ in range(30)]
    result = mann_whitney(base, current)
    # scipy.stats.mannwhitneyu(current, base, method="asymptotic")
    assert result.u == 542.0
    assert result.p_two_sided == pytest.approx(0.004885074990268728, rel=1e-10)
    assert result.p_greater == pytest.approx(0.002442537495134364, rel=1e-10)
    swapped = mann_whitney(current, base)
    assert swapped.effect == pytest.approx(1 - result.effect)
    assert swapped.z == pytest.approx(-result.z)
    assert MannWhitney.from_json(result.to_json()) == result


def test_mann_whitney_of_identical_values_finds_nothing() -> None:
    assert mann_whitney([5, 5, 5], [5, 5]) == MannWhitney(3.0, 0.0, 1.0, 1.0, 0.5)


def _lognormal(rng: random.Random, n: int, scale: float = 1.0) -> list[float]:
    return [scale * rng.lognormvariate(3.0, 0.5) for _ in range(n)]


@pytest.mark.parametrize("stat", [QuantileStat(0.5), QuantileStat(0.95)])
@pytest.mark.parametrize("scale", [1.0, 1.25])
def test_bootstrap_ratio_interval_covers_the_true_ratio(stat: QuantileStat, scale: float) -> None:
    # one draw can miss by bad luck (a 95% interval does 1 time in 20), so count over 20 pairs
    rng = random.Random(11)
    covered = slower = 0
    for seed in range(20):
        base, current = _lognormal(rng, 300), _lognormal(rng, 300, scale)
        interval = bootstrap_ratio(base, current, stat, resamples=1000, seed=seed).interval
        assert interval is not None
        covered += interval.contains(scale)
        slower += interval.low > 1.0
    assert covered >= 17
    if scale == 1.0:
        assert slower <= 2  # a false alarm should come 1 time in 40
    else:
        # the 25% slowdown is called at the median 19 times out of 20 here; the p95 of 300
        # samples is noisier and calls it 14 times
        assert slower >= 12


def test_bootstrap_ratio_with_any_statistic_and_seeded() -> None:
    rng = random.Random(13)
    base = _lognormal(rng, 60)
    current = [1.25 * x for x in base]

    def mean(values: Sequence[float]) -> float:
        return sum(values) / len(values)

    first = bootstrap_ratio(base, current, mean, resamples=500, seed=1)
    assert first == bootstrap_ratio(base, current, mean, resamples=500, seed=1)
    assert first != bootstrap_ratio(base, current, mean, resamples=500, seed=2)
    assert first.value == pytest.approx(1.25)
    assert first.interval is not None
    assert 1.0 < first.interval.low < 1.25 < first.interval.high < 1.6


def test_quantile_fast_path_draws_the_same_distribution_as_plain_resampling() -> None:
    rng = random.Random(14)
    values = sorted(_lognormal(rng, 200))
    fast = sorted(_resampled_quantiles(values, 0.95, 3000, random.Random(1)))
    draw = random.Random(2)
    plain = sorted(quantile(sorted(draw.choices(values, k=200)), 0.95) for _ in range(3000))
    for q in (0.025, 0.25, 0.5, 0.75, 0.975):
        assert quantile(fast, q) == pytest.approx(quantile(plain, q), rel=0.02)


def test_bootstrap_ratio_rejects_what_has_no_ratio() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_ratio([], [1.0], QuantileStat(0.5))
    with pytest.raises(ValueError, match="must be positive"):
        bootstrap_ratio([0.0, 0.0], [1.0], QuantileStat(0.5))
