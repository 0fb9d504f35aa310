"""The regression verdict: timing against known distributions, deterministic metrics, plans."""

from __future__ import annotations

import json
import random
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from perfgate.budgets.model import RegressionPolicy
from perfgate.plan import access_paths, coarse_fingerprint, parse_plan, shape_fingerprint
from perfgate.verdict.compare import (
    compare_results,
    environment_differences,
    needs_more,
    overall,
    path_changes,
    pool,
)
from perfgate.verdict.details import QueryDetails
from perfgate.verdict.model import Verdict
from perfgate.verdict.values import Comparison, Kind, Metric, Outcome, Status

PLANS = Path(__file__).parent / "plans"
POLICY = RegressionPolicy()  # p95, 10%, 99%, 3 rounds


def lognormal(n: int, seed: int, scale: float = 1.0, median_ms: float = 20.0) -> tuple[float, ...]:
    """Latencies from one lognormal (sigma 0.5: a p95/p50 of about 2.3, like a busy endpoint)."""
    rng = random.Random(seed)
    return tuple(scale * median_ms * rng.lognormvariate(0.0, 0.5) for _ in range(n))


def endpoint(
    latency: tuple[float, ...], *, server: tuple[float, ...] = (), max_bytes: float = 1000.0
) -> Verdict:
    return Verdict(
        name="clients",
        kind=Kind.ENDPOINT,
        status=Status.PASSED,
        metrics={
            "max_bytes": Metric(max_bytes, "bytes"),
            "error_rate": Metric(0.0, "ratio"),
            "requests": Metric(float(len(latency)), "count"),
            "errors": Metric(0.0, "count"),
        },
        samples={"latency_ms": latency, **({"server_ms": server} if server else {})},
    )


def by_metric(comparisons: tuple[Comparison, ...]) -> dict[str, Comparison]:
    return {c.metric: c for c in comparisons}


def timing(base: Verdict, current: Verdict, policy: RegressionPolicy = POLICY) -> Comparison:
    return compare_results(base, current, policy)[0]


# --- timing against known distributions --------------------------------------------------------


def test_a_a_is_unchanged_and_rarely_a_false_alarm() -> None:
    outcomes = [
        timing(endpoint(lognormal(300, 2 * i)), endpoint(lognormal(300, 2 * i + 1))).outcome
        for i in range(30)
    ]
    assert outcomes.count(Outcome.REGRESSION) == 0
    assert outcomes.count(Outcome.UNCHANGED) >= 25


def test_a_1_5x_slowdown_is_a_regression_with_the_numbers_in_the_reason() -> None:
    c = timing(endpoint(lognormal(300, 1)), endpoint(lognormal(300, 2, scale=1.5)))
    assert c.outcome == Outcome.REGRESSION
    assert c.metric == "p95_ms"
    assert c.change is not None
    assert c.change.low is not None
    assert c.change.low > 0.0
    assert 0.3 < c.change.value < 0.7
    assert c.threshold == 0.10
    assert 0 < c.baseline.value < c.current.value
    # "p95 45.2ms -> 67.9ms, +50% [+35%, +66%] at 99%, above the 10% threshold; Mann-Whitney p=..."
    assert re.fullmatch(
        r"p95 [\d.]+ms -> [\d.]+ms, \+\d+% \[\+\d+%, \+\d+%\] at 99%, above the 10% threshold; "
        r"Mann-Whitney p=[<\d.e-]+; this run could detect \+\d+% or more",
        c.reason,
    ), c.reason


def test_a_0_7x_speed_up_is_an_improvement() -> None:
    c = timing(endpoint(lognormal(1000, 3)), endpoint(lognormal(1000, 4, scale=0.7)))
    assert c.outcome == Outcome.IMPROVEMENT
    assert "an improvement beyond the 10% threshold" in c.reason


def test_a_significant_8_percent_shift_is_not_a_regression_at_a_10_percent_threshold() -> None:
    c = timing(endpoint(lognormal(2000, 5)), endpoint(lognormal(2000, 6, scale=1.08)))
    assert c.change is not None
    assert 0.05 < c.change.value < 0.10
    assert c.outcome == Outcome.UNCHANGED
    assert c.reason.endswith(
        "within the 10% threshold on the estimate; Mann-Whitney p=0.00022; the interval reaches "
        "+17%, so more requests would be needed to rule out a regression; this run could "
        "detect +10% or more"
    )


def test_too_few_requests_is_inconclusive_and_asks_for_more() -> None:
    comparisons = compare_results(
        endpoint(lognormal(40, 7)), endpoint(lognormal(40, 8, 1.5)), POLICY
    )
    c = comparisons[0]
    assert c.outcome == Outcome.INCONCLUSIVE
    assert "too few samples for a 99% interval (baseline has 40; current has 40)" in c.reason
    assert needs_more(comparisons)
    assert overall(comparisons, POLICY) == Outcome.INCONCLUSIVE
    assert overall(comparisons, RegressionPolicy(fail_on_inconclusive=True)) == Outcome.REGRESSION


def test_pooling_rounds_settles_an_inconclusive_verdict() -> None:
    base = endpoint(lognormal(600, 9))
    current = endpoint(lognormal(60, 10, scale=1.5))
    assert needs_more(compare_results(base, current, POLICY))
    for round_no in range(1, POLICY.max_rounds + 3):
        current = pool(current, endpoint(lognormal(60, 10 + round_no, scale=1.5)))
        if not needs_more(compare_results(base, current, POLICY)):
            break
    assert len(current.samples["latency_ms"]) >= 120
    assert current.metrics["requests"].value == len(current.samples["latency_ms"])
    assert overall(compare_results(base, current, POLICY), POLICY) == Outcome.REGRESSION


def test_server_time_is_compared_when_every_request_carried_it() -> None:
    base = endpoint(lognormal(300, 11), server=lognormal(300, 12, median_ms=5.0))
    current = endpoint(lognormal(300, 13), server=lognormal(300, 14, 1.5, median_ms=5.0))
    c = timing(base, current)
    assert (c.metric, c.outcome) == ("server_p95_ms", Outcome.REGRESSION)
    assert c.reason.startswith("p95 server time ")
    partial = endpoint(current.samples["latency_ms"], server=lognormal(200, 14, 1.5))
    assert timing(base, partial).metric == "p95_ms"


def test_policy_metric_and_threshold_are_honoured() -> None:
    base, current = endpoint(lognormal(1000, 15)), endpoint(lognormal(1000, 16, scale=1.3))
    assert timing(base, current, RegressionPolicy(metric="mean")).metric == "mean_ms"
    assert timing(base, current, RegressionPolicy(metric="p50")).outcome == Outcome.REGRESSION
    assert timing(base, current, RegressionPolicy(threshold=0.5)).outcome == Outcome.UNCHANGED


# --- deterministic metrics ---------------------------------------------------------------------


def test_bytes_grown_past_the_tolerance_regress_and_within_it_do_not() -> None:
    base = endpoint(lognormal(300, 17))
    grown = by_metric(compare_results(base, endpoint(lognormal(300, 18), max_bytes=1100), POLICY))
    assert grown["max_bytes"].outcome == Outcome.REGRESSION
    assert grown["max_bytes"].reason == (
        "max_bytes 1000B -> 1.1KiB (+10.0%), more than the 5% tolerance"
    )
    slight = by_metric(compare_results(base, endpoint(lognormal(300, 18), max_bytes=1040), POLICY))
    assert slight["max_bytes"].outcome == Outcome.UNCHANGED
    assert "within the 5% tolerance" in slight["max_bytes"].reason
    loose = compare_results(
        base, endpoint(lognormal(300, 18), max_bytes=1100), POLICY, tolerances={"max_bytes": 0.2}
    )
    assert by_metric(loose)["max_bytes"].outcome == Outcome.UNCHANGED


def plan_details(case: str) -> QueryDetails:
    """What the query gate keeps for a stored real plan."""
    plan = parse_plan(json.loads((PLANS / f"pg15_{case}.json").read_text()))
    return QueryDetails(
        sql="SELECT ...",
        plan=plan,
        fingerprint=shape_fingerprint(plan),
        coarse_fingerprint=coarse_fingerprint(plan),
        access_paths=tuple(str(p) for p in access_paths(plan)),
        server_version="15.8",
        settings={"random_page_cost": "4"},
    )


def query(case: str, buffers: float = 120.0, **details: Any) -> Verdict:
    return Verdict(
        name="guest_list",
        kind=Kind.QUERY,
        status=Status.PASSED,
        metrics={
            "execution_ms": Metric(2.0, "ms"),
            "buffers": Metric(buffers, "count"),
            "rows": Metric(35.0, "count"),
            "temp_blocks": Metric(0.0, "count"),
        },
        details=replace(plan_details(case), **details),
        samples={"execution_ms": lognormal(15, len(case), median_ms=2.0)},
    )


def test_equal_buffers_rows_and_plan_are_unchanged() -> None:
    comparisons = by_metric(compare_results(query("index_scan"), query("index_scan"), POLICY))
    assert comparisons["buffers"].outcome == Outcome.UNCHANGED
    assert comparisons["buffers"].reason == "buffers 120 -> 120, equal"
    assert comparisons["rows"].outcome == Outcome.UNCHANGED
    assert comparisons["fingerprint"].outcome == Outcome.UNCHANGED
    assert comparisons["execution_ms"].metric == "execution_ms"
    assert "median execution" in comparisons["execution_ms"].reason


def test_index_scan_to_seq_scan_is_a_regression_naming_the_table() -> None:
    comparisons = compare_results(query("index_scan"), query("seq_scan_filter"), POLICY)
    plan = by_metric(comparisons)["coarse_fingerprint"]
    assert plan.outcome == Outcome.REGRESSION
    assert "guests: Index Scan using guests_wedding_name_idx -> Seq Scan" in plan.reason
    assert plan.baseline_text == "guests: Index Scan using guests_wedding_name_idx"
    assert plan.current_text == "guests: Seq Scan"
    assert overall(comparisons, POLICY) == Outcome.REGRESSION
    back = by_metric(compare_results(query("seq_scan_filter"), query("index_scan"), POLICY))
    assert back["coarse_fingerprint"].outcome == Outcome.IMPROVEMENT


def test_a_shape_only_change_is_reported_not_failed() -> None:
    reordered = query("nested_loop", fingerprint="0123456789abcdef")
    comparisons = compare_results(query("nested_loop"), reordered, POLICY)
    plan = by_metric(comparisons)["fingerprint"]
    assert plan.outcome == Outcome.UNCHANGED
    assert "plan shape changed" in plan.reason
    assert "reported, not failed" in plan.reason
    assert overall(comparisons, POLICY) != Outcome.REGRESSION


def test_path_changes_lists_tables_whose_reading_changed() -> None:
    assert path_changes(
        ["guests: Index Only Scan using g_idx", "weddings: Index Scan using weddings_pkey"],
        ["guests: Seq Scan", "weddings: Index Scan using weddings_pkey", "venues: Seq Scan"],
    ) == ("guests: Index Only Scan using g_idx -> Seq Scan", "venues: (not read) -> Seq Scan")


# --- environment -------------------------------------------------------------------------------


def test_environment_differences_name_each_key() -> None:
    base = {"cpu_model": "Xeon", "cpu_count": 4, "python": "3.12.1", "platform": "Linux-a",
            "planner_settings": {"random_page_cost": "4", "work_mem": "4MB"}}  # fmt: skip
    cur = {"cpu_model": "Xeon", "cpu_count": 2, "python": "3.12.1", "platform": "Linux-b",
           "planner_settings": {"random_page_cost": "1.1", "work_mem": "4MB"}}  # fmt: skip
    assert environment_differences(base, cur) == (
        "cpu_count: 4 -> 2",
        "planner_settings.random_page_cost: 4 -> 1.1",
    )
    assert environment_differences(base, {"cpu_model": "Xeon"}) == ()


def test_a_different_environment_makes_timing_inconclusive_and_bytes_still_gate() -> None:
    base = endpoint(lognormal(300, 19))
    current = endpoint(lognormal(300, 20, scale=1.5), max_bytes=2000)
    reasons = environment_differences({"cpu_count": 4}, {"cpu_count": 2})
    comparisons = by_metric(compare_results(base, current, POLICY, env_reasons=reasons))
    assert comparisons["p95_ms"].outcome == Outcome.INCONCLUSIVE
    assert "environment differs from the baseline's (cpu_count: 4 -> 2)" in (
        comparisons["p95_ms"].reason
    )
    # the change is still shown, with its numbers
    assert re.match(r"p95 [\d.]+ms -> [\d.]+ms, \+\d+% \[", comparisons["p95_ms"].reason)
    assert comparisons["max_bytes"].outcome == Outcome.REGRESSION
    assert not needs_more(tuple(comparisons.values()))


def test_a_query_under_other_planner_settings_is_not_timed_but_its_plan_gates() -> None:
    tuned = query("seq_scan_filter", settings={"random_page_cost": "1.1"})
    comparisons = by_metric(compare_results(query("index_scan"), tuned, POLICY))
    assert comparisons["execution_ms"].outcome == Outcome.INCONCLUSIVE
    assert "planner_settings.random_page_cost: 4 -> 1.1" in comparisons["execution_ms"].reason
    assert comparisons["coarse_fingerprint"].outcome == Outcome.REGRESSION


def test_comparisons_survive_json() -> None:
    for c in compare_results(query("index_scan"), query("seq_scan_filter"), POLICY):
        assert Comparison.from_json(json.loads(json.dumps(c.to_json()))).outcome == c.outcome


def test_an_errored_result_is_not_compared() -> None:
    broken = Verdict(name="clients", kind=Kind.ENDPOINT, status=Status.ERROR, error="refused")
    assert compare_results(endpoint(lognormal(300, 21)), broken, POLICY) == ()


def test_pooling_a_query_appends_its_execution_times() -> None:
    first, again = query("index_scan"), query("index_scan")
    pooled = pool(first, again)
    assert len(pooled.samples["execution_ms"]) == 30
    assert pooled.metrics["buffers"] == first.metrics["buffers"]


def test_a_change_smaller_than_the_minimum_effect_is_not_a_regression() -> None:
    # A query's median from 0.04 ms to 0.06 ms: +50%, significant, and 0.02 ms.
    base = replace(endpoint(lognormal(300, 31, median_ms=0.04)), kind=Kind.QUERY)
    slower = replace(endpoint(lognormal(300, 32, median_ms=0.06)), kind=Kind.QUERY)
    base = replace(base, samples={"execution_ms": base.samples["latency_ms"]})
    slower = replace(slower, samples={"execution_ms": slower.samples["latency_ms"]})
    c = by_metric(compare_results(base, slower, POLICY))["execution_ms"]
    assert c.outcome == Outcome.UNCHANGED
    assert "is less than the minimum effect of 0.05ms" in c.reason, c.reason
    assert c.change is not None
    assert c.change.value > 0.3  # the change is still shown as it is
    strict = replace(POLICY, min_effect_ms=0.0)
    assert by_metric(compare_results(base, slower, strict))["execution_ms"].outcome == (
        Outcome.REGRESSION
    )
    # An endpoint's default floor is 1 ms: +50% of a 20 ms median is far above it.
    assert timing(endpoint(lognormal(300, 1)), endpoint(lognormal(300, 2, scale=1.5))).outcome == (
        Outcome.REGRESSION
    )


def test_row_counts_matter_only_for_the_tables_an_item_reads() -> None:
    base = {"table_rows": {"guests": 20000, "audit": 10}, "dataset_size": 8_184_323}
    cur = {"table_rows": {"guests": 20000, "audit": 12, "new_table": 0}, "dataset_size": 8_241_000}
    assert environment_differences(base, cur) == ("table_rows.audit: 10 -> 12",)
    assert environment_differences(base, cur, {"guests"}) == ()  # the bytes are not compared
    grown = {"table_rows": {"guests": 40000, "audit": 10}}
    assert environment_differences(base, grown, {"guests"}) == (
        "table_rows.guests: 20000 -> 40000",
    )


def test_an_inconclusive_comparison_says_what_it_could_detect_and_what_would_settle_it() -> None:
    # +20% on 100 noisy requests: above the threshold, but the interval still includes 0.
    base, slower = lognormal(100, 41), lognormal(100, 42, scale=1.2)
    c = timing(endpoint(base), endpoint(slower))
    assert c.outcome == Outcome.INCONCLUSIVE, c.reason
    found = re.search(
        r"this run could detect \+(\d+)% or more; about ([\d,]+) requests per", c.reason
    )
    assert found, c.reason
    assert int(found[1]) > 20  # it could not see this change...
    needed = int(found[2].replace(",", ""))
    assert needed > 100  # ...and says how many requests would
    more = timing(endpoint(lognormal(needed, 43)), endpoint(lognormal(needed, 44, scale=1.2)))
    assert more.outcome == Outcome.REGRESSION, more.reason  # with that many, it does
