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
PLAIN_PASSWORD = "plain-pw-4c1e"


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
    result = pytester.runpytest("--perfgate", "--perfgate-json=out.json")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*endpoint 'budgeted' (GET /orders) is over budget:",
            "*max_queries_per_request*21*5*",
            "*endpoint 'strict' (GET /orders) failed:",
            f"*N+1: {LINES} ×20 per request",
        ]
    )
    results = _results(pytester.path / "out.json")
    checks = {c["metric"]: c["status"] for c in results["budgeted"]["checks"]}
    assert checks == {
        "max_queries_per_request": "fail",
        "max_statement_mean_ms": "pass",
        "min_db_cache_hit_ratio": "pass",
        "max_connections_ratio": "pass",
    }
    assert results["quiet"]["details"]["findings"] == []
    assert results["quiet"]["status"] == "passed"


def test_every_count_budget_is_held_to_its_metric(
    pytester: pytest.Pytester, pg_server_dsn: str
) -> None:
    _project(
        pytester,
        pg_server_dsn,
        "  tight:\n"
        "    request: GET /orders\n"
        "    budget: {max_queries_per_request: 1, max_rows_per_request: 60,"
        " max_buffers_per_request: 1, max_db_ms_per_request: 0.000001ms,"
        " max_statement_mean_ms: 0.000001ms, max_connections_ratio: 0%}\n"
        "  roomy:\n"
        "    request: GET /orders\n"
        "    budget: {max_queries_per_request: 2, max_rows_per_request: 61,"
        " max_buffers_per_request: 10000, max_db_ms_per_request: 10s,"
        " max_statement_mean_ms: 10s, min_db_cache_hit_ratio: 0%, max_connections_ratio: 100%}\n",
    )
    result = pytester.runpytest("--perfgate", "--perfgate-json=out.json")
    result.assert_outcomes(passed=1, failed=1)
    results = _results(pytester.path / "out.json")
    tight = {c["metric"]: c["status"] for c in results["tight"]["checks"]}
    # 2 statements (a count, and a join of 20 orders' 60 lines): 61 rows per request.
    assert _value(results["tight"], "rows_per_request") == 61
    assert set(tight.values()) == {"fail"}, tight
    roomy = {c["metric"]: c["status"] for c in results["roomy"]["checks"]}
    assert set(roomy.values()) == {"pass"}, roomy


def test_a_missing_index_behind_an_endpoint_is_found_from_its_statement_plan(
    pytester: pytest.Pytester, pg_server_dsn: str
) -> None:
    _project(pytester, pg_server_dsn, "  events: GET /events\n")
    result = pytester.runpytest("--perfgate", "--perfgate-json=out.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["PLAN *events: seq-scan-filter: Seq Scan on events with Filter*"])
    events = _results(pytester.path / "out.json")["events"]
    (row,) = [s for s in events["details"]["database"]["statements"] if "events" in s["text"]]
    assert row["text"] == "SELECT count(*) FROM events WHERE kind = $1"
    assert any(n["node_type"] == "Seq Scan" for n in row["plan"]["nodes"])
    assert "seq-scan-filter" in [f["rule"] for f in events["details"]["findings"]]


def test_what_a_new_connection_runs_once_is_not_the_endpoints(
    pytester: pytest.Pytester, pg_server_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = "SET application_name = 'ordersapp'"
    monkeypatch.setenv("ORDERS_CONNECTION_SETUP", setup)
    _project(pytester, pg_server_dsn, "  orders: {request: GET /orders, concurrency: 8}\n")
    pytester.runpytest("--perfgate", "--perfgate-json=out.json").assert_outcomes(passed=1)
    orders = _results(pytester.path / "out.json")["orders"]
    db = orders["details"]["database"]
    # The ready path, sent first, opened the connection the requests sent alone use.
    assert [p["queries"] for p in db["probes"]] == [2] * 5
    statements = {s["text"]: s for s in db["statements"]}
    setups = [s for t, s in statements.items() if t.startswith("SET application_name")]
    # The load run opened connections (8 at once), each running the setup statement once.
    (setup_row,) = setups
    assert setup_row["per_request"] == 0
    assert setup_row["load_calls"] >= 1
    assert _value(orders, "queries_per_request") == 2


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
        run(
            "DROP ROLE IF EXISTS perfgate_plain; "
            f"CREATE ROLE perfgate_plain LOGIN CREATEDB PASSWORD '{PLAIN_PASSWORD}'"
        )
    )
    parts = urlsplit(pg_server_dsn)
    host = parts.netloc.rsplit("@", 1)[-1]
    try:
        yield urlunsplit(parts._replace(netloc=f"perfgate_plain:{PLAIN_PASSWORD}@{host}"))
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
            " failed (permission denied*); creating it needs a superuser*",
        ]
    )
    a = _results(pytester.path / "out.json")["a"]
    assert a["details"]["database"]["unavailable"].startswith("CREATE EXTENSION")
    assert "queries_per_request" not in a["metrics"]
    assert PLAIN_PASSWORD not in out
    assert PLAIN_PASSWORD not in (pytester.path / "out.json").read_text()


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
