"""Gating a query: budget limits, plan assertions and plan rules, on real plans."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import asyncpg
import pytest

from perfgate.budgets.model import PLAN_RULES, Defaults, Query, QueryBudget
from perfgate.exceptions import QueryError
from perfgate.plan import Finding, parse_plan
from perfgate.probes.postgres import QueryMeasurement, measure_query
from perfgate.verdict.details import QueryDetails
from perfgate.verdict.model import Verdict
from perfgate.verdict.query import gate_query, query_error_result, query_metrics
from perfgate.verdict.values import Status

PLANS = Path(__file__).parent / "plans"
TABLE = "qgate_guests"
INDEXED = "qgate_indexed"  # require_index drops this table's index, so nothing else uses it


async def _create(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for table in (TABLE, INDEXED):
            await conn.execute(
                f"""
                DROP TABLE IF EXISTS {table};
                CREATE TABLE {table} (id serial PRIMARY KEY, wedding_id int, name text);
                INSERT INTO {table} (wedding_id, name)
                SELECT i % 200, 'guest ' || i FROM generate_series(1, 10000) AS i;
                CREATE INDEX {table}_wedding_idx ON {table} (wedding_id);
                """
            )
            await conn.execute(f"VACUUM ANALYZE {table}")
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def tables(pg_dsn: str) -> None:
    """Two 10,000-row guests tables indexed on wedding_id."""
    asyncio.run(_create(pg_dsn))


async def _gate(dsn: str, query: Query, defaults: Defaults | None = None) -> Verdict:
    conn = await asyncpg.connect(dsn)
    try:
        m = await measure_query(conn, query)
    finally:
        await conn.close()
    return gate_query(query, m, defaults or Defaults(), source="budgets.yaml:3")


def _stored(name: str, *, execution: tuple[float, ...] = (1.0, 2.0, 3.0)) -> QueryMeasurement:
    """A measurement around a plan PostgreSQL 15 produced (tests/plans)."""
    plan = parse_plan((PLANS / f"pg15_{name}.json").read_text())
    return QueryMeasurement(
        name=name,
        plan=plan,
        execution_ms=execution,
        planning_ms=tuple(0.1 for _ in execution),
        server_version="15.20",
        settings={"work_mem": "4MB"},
        relation_pages={"guests": 935},
    )


def _q(budget: QueryBudget | None = None, **kwargs: object) -> Query:
    return Query(name="q", sql="SELECT *\n  FROM guests", budget=budget or QueryBudget(), **kwargs)  # type: ignore[arg-type]


# -- metrics -----------------------------------------------------------------------------------


def test_metrics_median_with_interval_and_counts() -> None:
    m = _stored("external_sort", execution=tuple(float(x) for x in range(1, 16)))
    metrics = query_metrics(m, 0.95)
    assert metrics["execution_ms"].value == 8.0
    assert metrics["execution_ms"].has_interval
    assert (metrics["execution_ms"].low or 8.0) < 8.0
    assert metrics["buffers"].value == 935
    assert metrics["rows"].value == 100_000
    assert metrics["temp_blocks"].value == 4148
    assert metrics["runs"].value == 15


def test_metrics_single_run_has_no_interval() -> None:
    metrics = query_metrics(_stored("index_scan", execution=(1.0,)), 0.95)
    assert metrics["execution_ms"].value == 1.0
    assert not metrics["execution_ms"].has_interval


# -- gate_query on stored plans ----------------------------------------------------------------


def test_within_budget_passes_and_carries_the_details() -> None:
    budget = QueryBudget(limits={"execution_ms": 50.0, "max_buffers": 20, "max_rows": 10})
    result = gate_query(_q(budget), _stored("index_scan"), Defaults(), source="budgets.yaml:3")
    assert result.status == Status.PASSED
    assert result.kind == "query"
    assert result.description == "SELECT * FROM guests"
    assert [c.metric for c in result.checks] == ["execution_ms", "max_buffers", "max_rows"]
    details = result.details
    assert isinstance(details, QueryDetails)
    assert result.failures == ()
    assert details.access_paths == ("guests: Index Scan using guests_wedding_name_idx",)
    assert details.plan_tree.startswith("Limit")
    assert len(details.fingerprint) == len(details.coarse_fingerprint) == 16
    assert details.plan is not None
    assert [n.path for n in details.plan.nodes()] == ["0", "0.0"]
    assert details.server_version == "15.20"
    assert details.settings == {"work_mem": "4MB"}
    assert Verdict.from_json(result.to_json()) == result


def test_over_budget_fails_with_each_limit_named() -> None:
    budget = QueryBudget(limits={"max_buffers": 100, "max_temp_blocks": 0, "planning_ms": 5})
    result = gate_query(_q(budget), _stored("external_sort"), Defaults(), source=None)
    assert result.status == Status.FAILED
    failed = {c.metric: c for c in result.failed_checks}
    assert set(failed) == {"max_buffers", "max_temp_blocks"}
    assert "max_buffers 935 > limit 100" in result.explain()
    assert "max_temp_blocks 4,148 > limit 0" in result.explain()


def test_no_seq_scan_names_the_node_relation_rows_and_buffers() -> None:
    result = gate_query(
        _q(QueryBudget(no_seq_scan=True)), _stored("seq_scan_filter"), Defaults(), source=None
    )
    assert result.status == Status.FAILED
    assert list(result.failures) == [
        "no_seq_scan: Seq Scan on guests (node 0.0.0) returned 100 rows "
        "(99,900 more removed by Filter (wedding_id = 42)), 936 buffers; "
        "the table has 935 pages (seq_scan_min_pages: 8)"
    ]


def test_no_seq_scan_allows_a_table_smaller_than_seq_scan_min_pages() -> None:
    measured = _stored("seq_scan_filter")  # guests: 935 pages
    budget = QueryBudget(no_seq_scan=True)
    assert (
        gate_query(_q(budget), measured, Defaults(seq_scan_min_pages=936), source=None).status
        == Status.PASSED
    )
    assert (
        gate_query(_q(budget), measured, Defaults(seq_scan_min_pages=935), source=None).status
        == Status.FAILED
    )
    assert gate_query(_q(budget), measured, Defaults(seq_scan_min_pages=0), source=None).status == (
        Status.FAILED
    )


def test_forbid_patterns() -> None:
    budget = QueryBudget(forbid=("Sort Method: external*", "Nested Loop*"))
    result = gate_query(_q(budget), _stored("external_sort"), Defaults(), source=None)
    assert result.status == Status.FAILED
    assert list(result.failures) == [
        "forbid: node 0: 'Sort Method: external merge' matches forbidden 'Sort Method: external*'"
    ]


def test_plan_rule_levels_decide_between_failing_and_reporting() -> None:
    m = _stored("external_sort")
    warned = gate_query(_q(), m, Defaults(), source=None)
    assert warned.status == Status.PASSED
    assert [f.rule for f in findings_of(warned)] == ["disk-spill"]
    assert findings_of(warned)[0].severity == "warning"
    assert findings_of(warned)[0].path == "0"

    rules = dict.fromkeys(PLAN_RULES, "warning") | {"disk-spill": "error"}
    failed = gate_query(_q(), m, Defaults(plan_rules=rules), source=None)
    assert failed.status == Status.FAILED
    assert failed.failures[0].startswith("plan rule disk-spill: Sort spilled to disk")

    off = gate_query(_q(), m, Defaults(plan_rules={"disk-spill": "off"}), source=None)
    assert findings_of(off) == ()


def test_seq_scan_rule_uses_relation_pages() -> None:
    m = _stored("seq_scan_filter")
    result = gate_query(_q(), m, Defaults(seq_scan_min_pages=8), source=None)
    seq = [f for f in findings_of(result) if f.rule == "seq-scan-filter"]
    assert "935 pages" in seq[0].message
    assert seq[0].relation == "guests"


def test_error_result() -> None:
    error = QueryError("query 'q': syntax error at or near \"FORM\"")
    result = query_error_result(_q(), error, "budgets.yaml:9")
    assert result.status == Status.ERROR
    assert result.error == 'syntax error at or near "FORM"'  # the result names the query
    assert result.source == "budgets.yaml:9"
    assert "query 'q' (SELECT * FROM guests) could not be measured: syntax" in result.explain()


# -- end to end on a real server ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_statuses_on_a_real_query(pg_dsn: str, tables: None) -> None:
    sql = f"SELECT * FROM {TABLE} WHERE wedding_id = $1"
    generous = QueryBudget(limits={"execution_ms": 5000, "max_buffers": 1000, "max_rows": 50})
    passed = await _gate(pg_dsn, Query(name="ok", sql=sql, params=(4,), runs=5, budget=generous))
    assert passed.status == Status.PASSED, passed.explain()
    assert passed.metrics["rows"].value == 50
    assert not math.isnan(passed.metrics["execution_ms"].value)

    tight = QueryBudget(limits={"max_rows": 10})
    failed = await _gate(pg_dsn, Query(name="tight", sql=sql, params=(4,), runs=2, budget=tight))
    assert failed.status == Status.FAILED
    assert "max_rows 50 > limit 10" in failed.explain()


@pytest.mark.asyncio
async def test_no_seq_scan_on_a_real_query(pg_dsn: str, tables: None) -> None:
    q = Query(
        name="by_name",
        sql=f"SELECT * FROM {TABLE} WHERE name = $1",
        params=("guest 7",),
        runs=2,
        budget=QueryBudget(no_seq_scan=True),
    )
    result = await _gate(pg_dsn, q)
    assert result.status == Status.FAILED
    (failure,) = result.failures
    assert failure.startswith(f"no_seq_scan: Seq Scan on {TABLE} (node 0) returned 1 row")
    assert "9,999 more removed by Filter" in failure


@pytest.mark.asyncio
async def test_require_index_passes_then_fails_after_drop_index(pg_dsn: str, tables: None) -> None:
    q = Query(
        name="guests_of_wedding",
        sql=f"SELECT * FROM {INDEXED} WHERE wedding_id = $1 AND name LIKE 'guest%'",
        params=(9,),
        runs=2,
        require_index=True,
    )
    assert (await _gate(pg_dsn, q)).status == Status.PASSED

    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(f"DROP INDEX {INDEXED}_wedding_idx")
    finally:
        await conn.close()
    result = await _gate(pg_dsn, q)
    assert result.status == Status.FAILED
    assert list(result.failures) == [
        f"require_index: no index serves {INDEXED} (wedding_id, name): "
        f"consider CREATE INDEX ON {INDEXED} (wedding_id, name)"
    ]
    assert isinstance(result.details, QueryDetails)
    assert result.details.index_plan_tree


def findings_of(result: Verdict) -> tuple[Finding, ...]:
    assert isinstance(result.details, QueryDetails)
    return result.details.findings
