"""A query measurement → its verdict: metrics, budget checks, plan assertions and rules."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from perfgate.budgets.model import Defaults, Query
from perfgate.plan import (
    Plan,
    PlanNode,
    access_paths,
    analyze,
    coarse_fingerprint,
    match_forbidden,
    seq_scans,
    shape_fingerprint,
    suggest_index_columns,
)
from perfgate.probes.postgres import QueryMeasurement
from perfgate.stats import quantile_estimate
from perfgate.verdict.details import QueryDetails
from perfgate.verdict.model import Verdict, bounded, decide
from perfgate.verdict.values import Check, Kind, Metric, Status, check_limit

# Which metric a budget key is held against.
BUDGET_METRIC: Mapping[str, str] = {
    "execution_ms": "execution_ms",
    "planning_ms": "planning_ms",
    "max_buffers": "buffers",
    "max_rows": "rows",
    "max_temp_blocks": "temp_blocks",
}


def query_metrics(m: QueryMeasurement, confidence: float) -> dict[str, Metric]:
    """Median execution and planning time with intervals; buffers, rows, temp blocks as counts.

    The counts come from the last (warm) run: with a warm cache they repeat exactly, so they
    gate without an interval.
    """
    rows = m.plan.rows
    return {
        "execution_ms": _median(m.execution_ms, confidence),
        "planning_ms": _median(m.planning_ms, confidence),
        "buffers": Metric(float(m.plan.total_buffers()), "count"),
        "rows": Metric(math.nan if rows is None else float(rows), "count"),
        "temp_blocks": Metric(float(m.plan.temp_blocks()), "count"),
        "runs": Metric(float(len(m.execution_ms)), "count"),
    }


def query_checks(metrics: Mapping[str, Metric], limits: Mapping[str, float]) -> tuple[Check, ...]:
    """One check per budget limit, in the order the budget lists them."""
    nothing = Metric(math.nan, "count")
    return tuple(
        check_limit(key, limit, metrics.get(BUDGET_METRIC.get(key, key), nothing))
        for key, limit in limits.items()
    )


def gate_query(
    query: Query, m: QueryMeasurement, defaults: Defaults, *, source: str | None
) -> Verdict:
    """Budget limits, plan assertions and plan rules for one measured query."""
    metrics = query_metrics(m, defaults.confidence)
    checks = query_checks(metrics, query.budget.limits)
    findings = analyze(
        m.plan,
        relation_pages=m.relation_pages,
        rules=defaults.plan_rules,
        seq_scan_min_pages=defaults.seq_scan_min_pages,
    )
    failures: list[str] = []
    if query.budget.no_seq_scan:
        # A Seq Scan is the right plan for a table of a few pages: only larger ones fail.
        small = defaults.seq_scan_min_pages
        failures += [
            f"no_seq_scan: {_describe_scan(n)}; the table has "
            f"{m.relation_pages.get(n.relation or '', 0):,} pages (seq_scan_min_pages: {small})"
            for n in seq_scans(m.plan)
            if m.relation_pages.get(n.relation or "", small) >= small
        ]
    if query.budget.forbid:
        failures += [f"forbid: {hit}" for hit in match_forbidden(m.plan, query.budget.forbid)]
    if query.require_index:
        failures += missing_indexes(m.index_plan if m.index_plan is not None else m.plan)
    failures += [f"plan rule {f.rule}: {f.message}" for f in findings if f.severity == "error"]
    return Verdict(
        name=query.name,
        kind=Kind.QUERY,
        status=decide(checks, extra_failures=failures),
        metrics=metrics,
        checks=checks,
        failures=tuple(failures),
        source=source,
        description=one_line(query.sql),
        details=QueryDetails(
            sql=query.sql,
            params=tuple(_jsonable(p) for p in query.params),
            generic_plan=query.generic_plan,
            plan=m.plan,
            index_plan=m.index_plan,
            findings=tuple(findings),
            fingerprint=shape_fingerprint(m.plan),
            coarse_fingerprint=coarse_fingerprint(m.plan),
            access_paths=tuple(str(p) for p in access_paths(m.plan)),
            server_version=m.server_version,
            settings=dict(m.settings),
            relation_pages=dict(m.relation_pages),
        ),
        samples={"execution_ms": bounded(m.execution_ms), "planning_ms": bounded(m.planning_ms)},
    )


def query_error_result(query: Query, error: Exception | str, source: str | None) -> Verdict:
    """The verdict of a query that could not be measured."""
    text = str(error)
    own = f"query {query.name!r}: "  # QueryError names the query; the result already does
    return Verdict(
        name=query.name,
        kind=Kind.QUERY,
        status=Status.ERROR,
        error=text[len(own) :] if text.startswith(own) else text,
        source=source,
        description=one_line(query.sql),
        details=QueryDetails(sql=query.sql),
    )


def missing_indexes(index_plan: Plan) -> list[str]:
    """Scans that still filter without an index when sequential scans are discouraged.

    With ``enable_seqscan = off`` a surviving Seq Scan with a Filter, or a full Index Scan
    (no Index Cond) that filters, means no index serves that predicate.
    """
    out = []
    for node in index_plan.nodes():
        unserved = node.node_type == "Seq Scan" or (
            node.node_type in ("Index Scan", "Index Only Scan") and node.index_cond is None
        )
        if not unserved or not node.filter or node.relation is None:
            continue
        columns = ", ".join(suggest_index_columns(node))
        if columns:
            out.append(
                f"require_index: no index serves {node.relation} ({columns}): "
                f"consider CREATE INDEX ON {node.relation} ({columns})"
            )
        else:
            out.append(f"require_index: no index serves {node.relation} for {node.filter}")
    return out


def one_line(sql: str) -> str:
    """The SQL with its whitespace collapsed, for one-line descriptions."""
    return " ".join(sql.split())


def _median(values: tuple[float, ...], confidence: float) -> Metric:
    if not values:
        return Metric(math.nan, "ms")
    return Metric.from_estimate(quantile_estimate(values, 0.5, confidence), "ms")


def _describe_scan(node: PlanNode) -> str:
    loops = node.actual_loops or 0
    read = (node.actual_rows or 0) * loops
    removed = (node.rows_removed_by_filter or 0) * loops
    text = f"Seq Scan on {node.relation} (node {node.path}) returned {_rows(read)}"
    if removed:
        text += f" ({removed:,.0f} more removed by Filter {node.filter})"
    if node.buffers is not None:
        text += f", {node.buffers:,} buffers"
    if loops > 1:
        text += f", {loops:,.0f} loops"
    return text


def _rows(n: float) -> str:
    return "1 row" if n == 1 else f"{n:,.0f} rows"


def _jsonable(value: Any) -> Any:
    """Parameters as JSON: YAML dates become ISO strings."""
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
