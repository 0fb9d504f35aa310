"""What each request does to the database: exact statements per request from pg_stat_statements,
the N+1 named, budgets and baselines on the counts, the HIT/MISS split, and a server that
cannot tell."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

APP = (Path(__file__).parent / "apps" / "ordersapp.py").read_text()
INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
LINES = "SELECT sku, qty, price FROM order_lines WHERE order_id = $1"


def _project(pytester: pytest.Pytester, dsn: str, endpoints: str, defaults: str = "") -> None:
    pytester.makeini(INI)
    pytester.makepyfile(ordersapp=APP)
    schema = APP.split('SCHEMA = """', 1)[1].split('"""', 1)[0]
    (pytester.path / "orders.sql").write_text(schema)
    pytester.makefile(
        ".yaml",
        budgets=f"""
version: 1
target:
  app: "ordersapp:app"
  env: {{DATABASE_URL: "{{dsn}}", ORDERS_MODE: "${{ORDERS_MODE:-join}}"}}
database:
  dsn: "{dsn}"
  setup: [orders.sql]
defaults: {{requests: 30, concurrency: 4, warmup: 3{defaults}}}
endpoints:
{endpoints}
""",
    )


def _results(path: Path) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in json.loads(path.read_text())["results"]}


def _value(result: dict[str, Any], metric: str) -> float:
    return float(result["metrics"][metric]["value"])


def test_a_join_is_two_statements_and_an_n_plus_one_is_named_with_its_count(
    pytester: pytest.Pytester, pg_server_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDERS_MODE", "nplus1")
    _project(
        pytester,
        pg_server_dsn,
        "  lonely: {request: GET /orders, concurrency: 1}\n"
        "  crowded: {request: GET /orders, concurrency: 8}\n",
    )
    result = pytester.runpytest("--perfgate", "--perfgate-json=out.json", "--perfgate-report=r.md")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [f"N+1 *lonely: {LINES} ×20 per request", f"N+1 *crowded: {LINES} ×20 per request"]
    )
    results = _results(pytester.path / "out.json")
    for name in ("lonely", "crowded"):
        r = results[name]
        assert _value(r, "queries_per_request") == 21  # 1 + 20, exactly
        assert _value(r, "rows_per_request") == 20 + 60  # 20 orders, 3 lines each
        db = r["details"]["database"]
        assert [p["queries"] for p in db["probes"]] == [21] * 5
        # The load run's totals agree, whatever its concurrency.
        assert db["load_queries"] == 21 * db["load_requests"] == 21 * 33
        statements = {s["text"]: s for s in db["statements"]}
        assert statements[LINES]["per_request"] == 20
        assert statements[LINES]["load_calls"] == 20 * 33
        assert [f["message"] for f in r["details"]["findings"] if f["rule"] == "n-plus-one"] == [
            f"N+1: {LINES} ×20 per request"
        ]
        assert 0 < _value(r, "connections_peak_ratio") <= 1
        assert _value(r, "db_cache_hit_ratio") == pytest.approx(1.0, abs=0.05)
    markdown = (pytester.path / "r.md").read_text()
    assert "What this request does: 21 queries" in markdown
    assert "Generic plans of the heaviest statements" in markdown

    monkeypatch.setenv("ORDERS_MODE", "join")
    result = pytester.runpytest("--perfgate", "--perfgate-json=join.json")
    result.assert_outcomes(passed=2)
    assert "N+1" not in result.stdout.str()
    joined = _results(pytester.path / "join.json")
    assert _value(joined["lonely"], "queries_per_request") == 2
    assert _value(joined["crowded"], "queries_per_request") == 2


def test_budgets_on_the_counts_fail_the_endpoint_and_an_n_plus_one_can_be_an_error(
    pytester: pytest.Pytester, pg_server_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDERS_MODE", "nplus1")
    _project(
        pytester,
        pg_server_dsn,
        "  budgeted:\n"
        "    request: GET /orders\n"
        "    budget: {max_queries_per_request: 5, max_statement_mean_ms: 1s,"
        " min_db_cache_hit_ratio: 50%, max_connections_ratio: 90%}\n"
        "  strict: {request: GET /orders, n_plus_one: error}\n"
        "  quiet: {request: GET /orders, n_plus_one: off}\n",
    )
    result = pytester.runpytest("--perfgate")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*endpoint 'budgeted' (GET /orders) is over budget:",
            "*max_queries_per_request*21*5*",
            "*endpoint 'strict' (GET /orders) failed:",
            f"*N+1: {LINES} ×20 per request",
        ]
    )
    assert "quiet: N+1" not in result.stdout.str()


def test_two_statements_becoming_twenty_one_is_a_regression_that_names_the_new_one(
    pytester: pytest.Pytester, pg_server_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(pytester, pg_server_dsn, "  orders: GET /orders\n")
    monkeypatch.setenv("ORDERS_MODE", "join")
    pytester.runpytest("--perfgate", "--perfgate-json=base.json").assert_outcomes(passed=1)
    monkeypatch.setenv("ORDERS_MODE", "nplus1")
    result = pytester.runpytest(
        "--perfgate", "--perfgate-compare=base.json", "--perfgate-json=now.json"
    )
    result.assert_outcomes(failed=1)
    now = _results(pytester.path / "now.json")["orders"]
    (change,) = [c for c in now["comparisons"] if c["metric"] == "queries_per_request"]
    assert change["outcome"] == "regression"
    assert "queries_per_request 2 -> 21" in change["reason"]
    assert f"{LINES} (new, ×20)" in change["reason"]
    result.stdout.fnmatch_lines(["*regression in queries_per_request*2 -> 21*"])


def test_a_cached_endpoint_is_counted_per_cache_state(
    pytester: pytest.Pytester, pg_server_dsn: str
) -> None:
    _project(pytester, pg_server_dsn, "  cached: GET /cached\n")
    result = pytester.runpytest("--perfgate", "--perfgate-json=out.json", "--perfgate-report=r.md")
    result.assert_outcomes(passed=1)
    r = _results(pytester.path / "out.json")["cached"]
    probes = r["details"]["database"]["probes"]
    assert [(p["cache"], p["queries"]) for p in probes] == [("MISS", 1)] + [("HIT", 0)] * 4
    assert _value(r, "queries_per_request") == 1  # the costly path: the MISS
    markdown = (pytester.path / "r.md").read_text()
    assert "What this request does: 1 query on MISS, 0 on HIT" in markdown


@pytest.fixture
def plain_role(pg_server_dsn: str) -> Any:
    """A role that may create databases but not pg_stat_statements (not a superuser)."""

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(pg_server_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(
        run("DROP ROLE IF EXISTS perfgate_plain; CREATE ROLE perfgate_plain LOGIN CREATEDB")
    )
    parts = urlsplit(pg_server_dsn)
    host = parts.netloc.rsplit("@", 1)[-1]
    try:
        yield urlunsplit(parts._replace(netloc=f"perfgate_plain@{host}"))
    finally:
        asyncio.run(run("DROP ROLE IF EXISTS perfgate_plain"))


def test_without_pg_stat_statements_it_says_so_once_with_the_fix_and_gates_the_rest(
    pytester: pytest.Pytester, plain_role: str
) -> None:
    _project(
        pytester,
        plain_role,
        "  a: {request: GET /orders, budget: {p95_ms: 10s}}\n"
        "  b: {request: GET /orders, budget: {max_queries_per_request: 5}}\n",
    )
    result = pytester.runpytest("--perfgate", "--perfgate-json=out.json")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert out.count("perfgate: statements per request were not read:") == 1
    result.stdout.fnmatch_lines(
        [
            "*max_queries_per_request*statements per request were not read*",
            "perfgate: statements per request were not read: CREATE EXTENSION pg_stat_statements"
            " failed (permission denied*); preload it: shared_preload_libraries*",
        ]
    )
    a = _results(pytester.path / "out.json")["a"]
    assert a["details"]["database"]["unavailable"].startswith("CREATE EXTENSION")
    assert "queries_per_request" not in a["metrics"]


def test_a_reading_that_fails_mid_way_is_reported_and_the_endpoint_still_measured(
    pytester: pytest.Pytester, pg_server_dsn: str
) -> None:
    _project(
        pytester,
        pg_server_dsn,
        "  hostile: {request: GET /terminate, budget: {p95_ms: 10s}}\n  after: GET /orders\n",
    )
    result = pytester.runpytest("--perfgate", "--perfgate-json=out.json")
    result.assert_outcomes(passed=2)
    results = _results(pytester.path / "out.json")
    why = results["hostile"]["details"]["database"]["unavailable"]
    assert why.startswith("reading pg_stat_statements failed: ")
    assert _value(results["hostile"], "requests") == 30
    assert _value(results["after"], "queries_per_request") == 2  # the next endpoint reads again
