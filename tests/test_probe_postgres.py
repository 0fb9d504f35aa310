"""The query probe against a real PostgreSQL: pinned settings, rollback, errors, generic plans."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import asyncpg
import pytest

from perfgate.budgets.model import Query
from perfgate.exceptions import QueryError
from perfgate.plan import shape_fingerprint
from perfgate.probes.postgres import measure_query, planner_settings
from perfgate.probes.sqlparams import quote_literal

TABLE = "pgprobe_guests"
CHECKSUM = f"SELECT md5(string_agg(g::text, ',' ORDER BY id)) FROM {TABLE} g"


async def _create(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            f"""
            DROP TABLE IF EXISTS {TABLE};
            CREATE TABLE {TABLE} (
                id serial PRIMARY KEY,
                wedding_id int NOT NULL,
                name text NOT NULL,
                rsvp date
            );
            INSERT INTO {TABLE} (wedding_id, name, rsvp)
            SELECT i % 500, 'guest ' || i, date '2024-01-01' + (i % 300)
            FROM generate_series(1, 20000) AS i;
            CREATE INDEX {TABLE}_wedding_idx ON {TABLE} (wedding_id);
            """
        )
        await conn.execute(f"VACUUM ANALYZE {TABLE}")
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def guests(pg_dsn: str) -> str:
    """A 20,000-row guests table with an index on wedding_id."""
    asyncio.run(_create(pg_dsn))
    return TABLE


def _query(sql: str, *params: object, **kwargs: object) -> Query:
    kwargs.setdefault("runs", 3)
    return Query(name="q", sql=sql, params=params, **kwargs)  # type: ignore[arg-type]


async def _connect(dsn: str) -> asyncpg.Connection:
    return await asyncpg.connect(dsn)


@pytest.mark.asyncio
async def test_protocol_pins_settings_per_run_and_records_them(pg_dsn: str, guests: str) -> None:
    conn = await _connect(pg_dsn)
    try:
        before = await conn.fetchval("SHOW max_parallel_workers_per_gather")
        q = _query(f"SELECT * FROM {guests} WHERE wedding_id = $1", 7, runs=4)
        m = await measure_query(conn, q)
        after = await conn.fetchval("SHOW max_parallel_workers_per_gather")
    finally:
        await conn.close()
    assert m.settings["jit"] == "off"
    assert m.settings["max_parallel_workers_per_gather"] == "0"
    assert m.settings["plan_cache_mode"] == "auto"
    assert {"work_mem", "random_page_cost", "shared_buffers", "enable_seqscan"} <= set(m.settings)
    assert m.server_version[:2].isdigit()
    assert len(m.execution_ms) == len(m.planning_ms) == 4
    assert all(t > 0 for t in m.execution_ms)
    assert m.plan.rows == 40
    assert m.relation_pages[guests] > 8
    assert before == after  # SET LOCAL: the caller's session is left as it was


@pytest.mark.asyncio
async def test_planner_settings_are_the_ones_in_force(pg_dsn: str) -> None:
    conn = await _connect(pg_dsn)
    try:
        await conn.execute("SET jit = off; SET plan_cache_mode = force_generic_plan")
        settings = await planner_settings(conn)
    finally:
        await conn.close()
    assert settings["jit"] == "off"
    assert settings["plan_cache_mode"] == "force_generic_plan"
    assert "enable_hashjoin" in settings


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("sql", "rows"),
    [
        (f"DELETE FROM {TABLE} WHERE wedding_id < 250", 10_000),
        (f"UPDATE {TABLE} SET name = upper(name), rsvp = NULL", 20_000),
        (
            f"INSERT INTO {TABLE} (wedding_id, name) "
            "SELECT 1, 'x' FROM generate_series(1, 500) RETURNING id",
            500,
        ),
    ],
    ids=["delete", "update", "insert-returning"],
)
async def test_gating_never_changes_data(pg_dsn: str, guests: str, sql: str, rows: int) -> None:
    conn = await _connect(pg_dsn)
    try:
        before = await conn.fetchval(CHECKSUM)
        m = await measure_query(conn, _query(sql))
        assert await conn.fetchval(CHECKSUM) == before
        assert not conn.is_in_transaction()
    finally:
        await conn.close()
    assert m.plan.root.node_type == "ModifyTable"
    # the last of four runs still found every row: each earlier run was rolled back
    assert max(n.total_actual_rows or 0 for n in m.plan.nodes()) == rows


@pytest.mark.asyncio
async def test_setup_sql_runs_in_the_rolled_back_transaction(pg_dsn: str, guests: str) -> None:
    q = _query(
        f"SELECT id FROM {guests} WHERE wedding_id = -1",
        setup_sql=(
            f"INSERT INTO {guests} (wedding_id, name) VALUES (-1, 'setup')",
            "SET LOCAL work_mem = '64kB'",
        ),
    )
    conn = await _connect(pg_dsn)
    try:
        m = await measure_query(conn, q)
        left = await conn.fetchval(f"SELECT count(*) FROM {guests} WHERE wedding_id = -1")
        work_mem = await conn.fetchval("SHOW work_mem")
    finally:
        await conn.close()
    assert m.plan.rows == 1  # the setup row was visible to the measured statement
    assert m.settings["work_mem"] == "64kB"
    assert left == 0
    assert work_mem != "64kB"


@pytest.mark.asyncio
@pytest.mark.parametrize("statement", ["COMMIT", "  -- done\nrollback", "END"])
async def test_setup_sql_may_not_end_the_transaction(
    pg_dsn: str, guests: str, statement: str
) -> None:
    q = _query(
        f"SELECT 1 FROM {guests} LIMIT 1",
        setup_sql=(f"DELETE FROM {guests} WHERE wedding_id = 3", statement),
    )
    conn = await _connect(pg_dsn)
    try:
        before = await conn.fetchval(CHECKSUM)
        with pytest.raises(QueryError, match=r"setup_sql\[1\]: (COMMIT|ROLLBACK) .*is not allowed"):
            await measure_query(conn, q)
        assert await conn.fetchval(CHECKSUM) == before
    finally:
        await conn.close()


@pytest.mark.asyncio
async def test_statement_timeout_stops_a_slow_query_quickly(pg_dsn: str) -> None:
    q = Query(name="sleepy", sql="SELECT pg_sleep(5)", runs=3, statement_timeout_ms=200)
    conn = await _connect(pg_dsn)
    try:
        started = time.monotonic()
        with pytest.raises(QueryError, match=r"query 'sleepy': timed out after statement_timeout"):
            await measure_query(conn, q)
        elapsed = time.monotonic() - started
        assert await conn.fetchval("SELECT 1") == 1  # the connection is still usable
    finally:
        await conn.close()
    assert elapsed < 2.0


@pytest.mark.asyncio
async def test_syntax_error_names_the_query_and_the_place(pg_dsn: str, guests: str) -> None:
    q = Query(name="typo", sql=f"SELECT *\nFORM {guests}", runs=1)
    conn = await _connect(pg_dsn)
    try:
        with pytest.raises(QueryError) as info:
            await measure_query(conn, q)
    finally:
        await conn.close()
    message = str(info.value)
    assert message.startswith("query 'typo': syntax error at or near \"FORM\"")
    assert "line 2, column 1 of the SQL: 'FORM pgprobe_guests'" in message


@pytest.mark.asyncio
@pytest.mark.parametrize("generic", [False, True])
async def test_missing_parameter_is_a_query_error(pg_dsn: str, guests: str, generic: bool) -> None:
    q = Query(
        name="needs_two",
        sql=f"SELECT * FROM {guests} WHERE wedding_id = $1 AND name = $2",
        params=(7,),
        runs=1,
        generic_plan=generic,
    )
    conn = await _connect(pg_dsn)
    try:
        with pytest.raises(
            QueryError, match=r"'needs_two': the SQL takes 2 parameters \(\$1, \$2\)"
        ):
            await measure_query(conn, q)
    finally:
        await conn.close()


@pytest.mark.asyncio
async def test_wrong_parameter_type_is_a_query_error(pg_dsn: str, guests: str) -> None:
    q = _query(f"SELECT * FROM {guests} WHERE wedding_id = $1", "seven")
    conn = await _connect(pg_dsn)
    try:
        with pytest.raises(QueryError, match=r"'q': parameter \$1 \(int4\): cannot use 'seven'"):
            await measure_query(conn, q)
    finally:
        await conn.close()


@pytest.mark.asyncio
async def test_string_parameters_are_coerced_to_the_column_type(pg_dsn: str, guests: str) -> None:
    q = _query(
        f"SELECT * FROM {guests} WHERE rsvp = $1 AND wedding_id = ANY($2) AND id > $3",
        "2024-01-05",
        ["4", 504],
        "0",
    )
    conn = await _connect(pg_dsn)
    try:
        m = await measure_query(conn, q)
    finally:
        await conn.close()
    assert m.plan.rows == 14  # i % 300 == 4 and i % 500 == 4: i = 4, 1504, ..., 19504


@pytest.mark.asyncio
async def test_generic_plan_with_int_and_str_params(pg_dsn: str, guests: str) -> None:
    q = _query(
        f"SELECT * FROM {guests} WHERE wedding_id = $1 AND name <> $2 AND rsvp >= $3",
        7,
        "it's \\ me",
        dt.date(2024, 1, 1),
        generic_plan=True,
    )
    conn = await _connect(pg_dsn)
    try:
        m = await measure_query(conn, q)
        leftover = await conn.fetchval(
            "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'perfgate_q%'"
        )
    finally:
        await conn.close()
    assert m.settings["plan_cache_mode"] == "force_generic_plan"
    assert m.plan.rows == 40
    scan = next(n for n in m.plan.nodes() if n.relation == guests)
    assert "$1" in (scan.index_cond or scan.recheck_cond or "")  # generic: no literal inlined
    assert leftover == 0


@pytest.mark.asyncio
async def test_generic_plan_leaves_no_prepared_statement_after_an_error(pg_dsn: str) -> None:
    q = Query(name="bad", sql="SELECT $1::int", params=("x",), runs=1, generic_plan=True)
    conn = await _connect(pg_dsn)
    try:
        with pytest.raises(QueryError, match=r"'bad': EXECUTE: invalid input syntax"):
            await measure_query(conn, q)
        leftover = await conn.fetchval(
            "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'perfgate_q%'"
        )
    finally:
        await conn.close()
    assert leftover == 0


def test_generic_plan_rejects_unquotable_parameters() -> None:
    with pytest.raises(TypeError, match="cannot pass a dict"):
        quote_literal({"a": 1})


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("plain", "plain"),
        ("it's", "it's"),
        ("back\\slash\\'", "back\\slash\\'"),
        ("", ""),
        (42, "42"),
        (-7, "-7"),
        (1.5, "1.5"),
        (True, "true"),
        (None, None),
        (dt.date(2024, 5, 1), "2024-05-01"),
    ],
)
async def test_quote_literal_round_trips(pg_dsn: str, value: object, text: str | None) -> None:
    conn = await _connect(pg_dsn)
    try:
        got = await conn.fetchval(f"SELECT ({quote_literal(value)})::text")
    finally:
        await conn.close()
    assert got == text


@pytest.mark.asyncio
async def test_quote_literal_array(pg_dsn: str) -> None:
    conn = await _connect(pg_dsn)
    try:
        texts = quote_literal(['a"b', "c,d", "e\\f", None])
        got = await conn.fetchval(f"SELECT ({texts})::text[]")
        ints = await conn.fetchval(f"SELECT ({quote_literal([1, 2])})::int[]")
    finally:
        await conn.close()
    assert got == ['a"b', "c,d", "e\\f", None]
    assert ints == [1, 2]


@pytest.mark.asyncio
async def test_fingerprints_identical_across_20_measurements(pg_dsn: str, guests: str) -> None:
    q = _query(
        f"SELECT g.* FROM {guests} g JOIN {guests} h ON h.id = g.id "
        "WHERE g.wedding_id = $1 ORDER BY g.name",
        11,
        runs=1,
    )
    conn = await _connect(pg_dsn)
    try:
        plans = [(await measure_query(conn, q)).plan for _ in range(20)]
    finally:
        await conn.close()
    assert len({shape_fingerprint(p) for p in plans}) == 1
    assert len({p.total_buffers() for p in plans}) == 1


@pytest.mark.asyncio
async def test_require_index_replans_with_seqscan_disabled(pg_dsn: str, guests: str) -> None:
    q = _query(f"SELECT * FROM {guests} WHERE wedding_id = $1", 3, require_index=True)
    conn = await _connect(pg_dsn)
    try:
        m = await measure_query(conn, q)
    finally:
        await conn.close()
    assert m.index_plan is not None
    assert m.index_plan.root.actual_loops is None  # plain EXPLAIN, not executed
    assert all(n.node_type != "Seq Scan" for n in m.index_plan.nodes())
