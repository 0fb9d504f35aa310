"""The regression verdict: one result compared with its baseline, metric by metric.

Pure functions, no I/O. ``compare_results`` gives one ``Comparison`` per compared metric:

* the timing metric named by the policy (``p95_ms`` for an endpoint, ``execution_ms`` for a
  query), judged by the rule in ``perfgate.verdict.timing`` (relative change with a bootstrap
  interval, a rank test, a threshold, three outcomes plus inconclusive);
* deterministic metrics (``max_bytes``, ``error_rate``; ``buffers``, ``rows``, ``temp_blocks``)
  exactly or within a tolerance (``perfgate.verdict.exact``);
* for queries, the plan: a changed access path is a regression, a changed shape is reported.

When the environment differs (``environment_differences``, or for a query a different server
version or planner setting) the timing comparison is inconclusive with that reason, and the
deterministic ones still gate. An inconclusive timing comparison asks for more data:
``needs_more`` says so, the caller measures again, ``pool``s the new run into the current
result and compares again, up to ``policy.max_rounds`` rounds; ``overall`` then decides.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

from perfgate.budgets.model import RegressionPolicy
from perfgate.verdict.database import DatabaseDetails, name_statement_changes
from perfgate.verdict.details import EndpointDetails, QueryDetails
from perfgate.verdict.environment import ENVIRONMENT_KEYS, environment_differences
from perfgate.verdict.exact import (
    DEFAULT_TOLERANCES,
    EXACT_METRICS,
    compare_exact,
    compare_plans,
    path_changes,
)
from perfgate.verdict.model import Verdict
from perfgate.verdict.pooling import pool, series
from perfgate.verdict.timing import (
    TimingStat,
    compare_timing,
    format_change,
)
from perfgate.verdict.values import Comparison, Kind, Outcome, Status

__all__ = [
    "DEFAULT_TOLERANCES",
    "ENVIRONMENT_KEYS",
    "EXACT_METRICS",
    "TimingStat",
    "compare_results",
    "compare_timing",
    "environment_differences",
    "format_change",
    "min_effect_ms",
    "needs_more",
    "overall",
    "path_changes",
    "per_look",
    "pool",
    "tables_read",
    "timing_stat",
]

_QUANTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}
# Server time is preferred when both runs carry enough of it: see ``compare_results``.
SERVER_SERIES = "server_ms"


def timing_stat(policy_metric: str, kind: Kind) -> TimingStat:
    """The statistic a policy's ``metric`` names for an endpoint or a query.

    Endpoints: ``p50``/``p90``/``p95``/``p99`` or ``mean`` of the latency (``execution`` means
    the median). Queries: the median execution time (``mean`` for ``mean``), whatever quantile
    the policy names, because a query is run only a few times (15 by default) and the p95 of 15
    runs is the maximum, which no interval can pin down.
    """
    if policy_metric == "mean":
        return TimingStat("mean", None)
    if kind == Kind.QUERY or policy_metric not in _QUANTILES:
        return TimingStat("median", 0.5)
    return TimingStat(policy_metric, _QUANTILES[policy_metric])


def compare_results(
    baseline: Verdict,
    current: Verdict,
    policy: RegressionPolicy,
    *,
    env_reasons: Sequence[str] = (),
    seed: int = 0,
    tolerances: Mapping[str, float] | None = None,
) -> tuple[Comparison, ...]:
    """Every comparison between a result and its baseline; empty if either could not be measured.

    Endpoints are timed on server time (``server_ms``, from Server-Timing or x-response-time)
    when both runs carry it for every answered request, else on client latency; the
    comparison's metric says which (``server_p95_ms`` or ``p95_ms``). Server time leaves out
    the load driver's own scheduling noise, which on a shared 2-core runner is most of the
    run-to-run spread. ``tolerances`` overrides ``DEFAULT_TOLERANCES`` per metric.
    """
    if (
        baseline.status == Status.ERROR
        or current.status == Status.ERROR
        or baseline.error
        or current.error
    ):
        return ()
    allowed = {**DEFAULT_TOLERANCES, **(tolerances or {})}
    reasons = list(env_reasons)
    out: list[Comparison] = []
    queries = _query_details(baseline, current)
    if queries is not None:
        reasons += _query_environment(*queries)
    timing = _timing(baseline, current, policy, tuple(reasons), seed)
    if timing is not None:
        out.append(timing)
    for metric in EXACT_METRICS:
        b, c = baseline.metrics.get(metric), current.metrics.get(metric)
        if b is None or c is None or math.isnan(b.value) or math.isnan(c.value):
            continue
        out.append(compare_exact(metric, b, c, allowed[metric]))
    databases = _database_details(baseline, current)
    if databases is not None:
        out = [
            name_statement_changes(c, *databases) if c.metric == "queries_per_request" else c
            for c in out
        ]
    if queries is not None:
        plan = compare_plans(*queries)
        if plan is not None:
            out.append(plan)
    return tuple(out)


def tables_read(*results: Verdict) -> frozenset[str] | None:
    """The tables the results' plans read (a query's plan; an endpoint's statements' plans),
    or None when one of them has no plan to say (then every table's row count matters)."""
    tables: set[str] = set()
    for r in results:
        if isinstance(r.details, QueryDetails):
            plans = [r.details.plan]
        elif isinstance(r.details, EndpointDetails) and r.details.database is not None:
            plans = [s.plan for s in r.details.database.statements if s.plan is not None]
        else:
            return None
        if not plans or any(p is None for p in plans):
            return None
        tables |= {n.relation for p in plans if p is not None for n in p.nodes() if n.relation}
    return frozenset(tables)


def _database_details(a: Verdict, b: Verdict) -> tuple[DatabaseDetails, DatabaseDetails] | None:
    da = a.details.database if isinstance(a.details, EndpointDetails) else None
    db = b.details.database if isinstance(b.details, EndpointDetails) else None
    return (da, db) if da is not None and db is not None else None


def _query_details(a: Verdict, b: Verdict) -> tuple[QueryDetails, QueryDetails] | None:
    if isinstance(a.details, QueryDetails) and isinstance(b.details, QueryDetails):
        return a.details, b.details
    return None


def _timing(
    baseline: Verdict,
    current: Verdict,
    policy: RegressionPolicy,
    env_reasons: tuple[str, ...],
    seed: int,
) -> Comparison | None:
    stat = timing_stat(policy.metric, current.kind)
    base, cur = series(baseline), series(current)
    if current.kind == Kind.QUERY:
        key, metric, label = "execution_ms", "execution_ms", "execution"
    elif _has_server_time(base, cur):
        key, metric, label = SERVER_SERIES, f"server_{stat.label}_ms", "server time"
    else:
        key, metric, label = "latency_ms", f"{stat.label}_ms", "latency"
    if key not in base or key not in cur:
        return None
    return compare_timing(
        metric,
        stat,
        base[key],
        cur[key],
        threshold=policy.threshold,
        confidence=policy.confidence,
        min_effect_ms=min_effect_ms(policy, current.kind),
        env_reasons=env_reasons,
        seed=seed,
        series=label,
    )


# The smallest absolute change a timing comparison counts, by kind, unless the policy sets one:
# a query's median moves by a few hundredths of a millisecond between identical runs on a
# shared runner; an endpoint's latency by more.
MIN_EFFECT_MS = {Kind.ENDPOINT: 1.0, Kind.QUERY: 0.05}


def min_effect_ms(policy: RegressionPolicy, kind: Kind) -> float:
    """The policy's minimum effect, else the kind's default."""
    if policy.min_effect_ms is not None:
        return policy.min_effect_ms
    return MIN_EFFECT_MS.get(kind, 0.0)


def _has_server_time(
    base: Mapping[str, Sequence[float]], cur: Mapping[str, Sequence[float]]
) -> bool:
    # Only when every answered request carried it: a partial series would be a biased sample.
    return all(
        len(s.get(SERVER_SERIES, ())) > 0 and len(s[SERVER_SERIES]) == len(s.get("latency_ms", ()))
        for s in (base, cur)
    )


def _query_environment(base: QueryDetails, cur: QueryDetails) -> list[str]:
    """A query's own environment: its server version and planner settings."""
    out = []
    if base.server_version and cur.server_version and base.server_version != cur.server_version:
        out.append(f"postgres_version: {base.server_version} -> {cur.server_version}")
    if base.settings and cur.settings:
        out += environment_differences(
            {"planner_settings": base.settings}, {"planner_settings": cur.settings}
        )
    return out


def per_look(policy: RegressionPolicy) -> RegressionPolicy:
    """The policy each round is tested at: alpha split over ``max_rounds`` looks (Bonferroni).

    Measuring again until a comparison is clear is a look at the data each time; testing every
    look at alpha / max_rounds keeps the chance of any false alarm at the policy's alpha.
    """
    if policy.max_rounds <= 1:
        return policy
    return dataclasses.replace(
        policy, confidence=1.0 - (1.0 - policy.confidence) / policy.max_rounds
    )


def needs_more(comparisons: Sequence[Comparison]) -> bool:
    """Whether measuring again could settle an inconclusive timing comparison.

    False when the only inconclusive ones are so because the environment differs (more runs
    on another machine do not make it the baseline's machine).
    """
    return any(c.more_data_helps for c in comparisons)


def overall(comparisons: Sequence[Comparison], policy: RegressionPolicy) -> Outcome:
    """The verdict over all comparisons, worst first.

    ``regression`` if any comparison is one, or if any is inconclusive and the policy says
    ``fail_on_inconclusive``; else ``inconclusive`` (a warning, not a failure) if any is;
    else ``improvement`` if any is; else ``unchanged``.
    """
    outcomes = {c.outcome for c in comparisons}
    if Outcome.REGRESSION in outcomes:
        return Outcome.REGRESSION
    if Outcome.INCONCLUSIVE in outcomes:
        return Outcome.REGRESSION if policy.fail_on_inconclusive else Outcome.INCONCLUSIVE
    if Outcome.IMPROVEMENT in outcomes:
        return Outcome.IMPROVEMENT
    return Outcome.UNCHANGED
