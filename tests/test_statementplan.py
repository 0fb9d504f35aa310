"""Generic plans of pg_stat_statements texts, against a real PostgreSQL: planned, never run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

from perfgate.plan import Plan, parse_plan, shape_fingerprint
from perfgate.probes.statementplan import MAX_TEXT, explain_statement, plannable
from perfgate.system.database import PostgresServer, ScratchDatabase

SETUP = """
CREATE TABLE tags (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE article_tags (article_id int NOT NULL, tag_id int NOT NULL REFERENCES tags);
INSERT INTO tags (name) SELECT 'tag ' || i FROM generate_series(1, 200) AS i;
INSERT INTO article_tags SELECT i / 4, 1 + i % 200 FROM generate_series(1, 20000) AS i;
CREATE INDEX article_tags_article_idx ON article_tags (article_id);
"""
TAGS_OF_ARTICLE = (  # as pg_stat_statements stores it
    "SELECT tags.id, tags.name FROM tags JOIN article_tags ON tags.id = article_tags.tag_id "
    "WHERE $1 = article_tags.article_id"
)
STATE = (  # what must be the same before and after: rows, the sequence, nothing prepared
    "SELECT (SELECT count(*) FROM tags), (SELECT count(*) FROM article_tags), "
    "(SELECT last_value FROM tags_id_seq), "
    "(SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'perfgate\\_s\\_%')"
)


async def _setup(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(SETUP)
        await conn.execute("ANALYZE tags; ANALYZE article_tags")
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def db_dsn(pg_server: PostgresServer) -> Iterator[str]:
    """A fresh database with tags and article_tags (index on article_id), analyzed."""
    db = ScratchDatabase.create(pg_server)
    try:
        asyncio.run(_setup(db.dsn))
        yield db.dsn
    finally:
        db.drop()


@asynccontextmanager
async def _connect(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(dsn)
    try:
        yield conn
    finally:
        await conn.close()


async def _version(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT current_setting('server_version_num')"))


async def _closed(dsn: str) -> asyncpg.Connection:
    """A closed connection: any statement sent on it would fail, so a reason proves none was."""
    conn = await asyncpg.connect(dsn)
    await conn.close()
    return conn


async def _state(conn: asyncpg.Connection) -> tuple[object, ...]:
    return tuple(await conn.fetchrow(STATE) or ())


async def _assert_usable(conn: asyncpg.Connection, state: tuple[object, ...]) -> None:
    assert not conn.is_in_transaction()
    assert await conn.fetchval("SELECT 1") == 1
    assert await _state(conn) == state


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SELECT 1", True),
        ("  with recent AS (SELECT 1) SELECT * FROM recent", True),
        ("-- SET\n/* outer /* nested */ still */\n(SELECT 1) UNION (SELECT 2)", True),
        ("INSERT INTO t VALUES ($1)", True),
        ("update t set a = $1", True),
        ("DELETE FROM t", True),
        ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", True),
        ("VALUES ($1)", True),
        ("TABLE t", True),
        ("BEGIN", False),
        ("/* SELECT */ COMMIT", False),
        ("SET search_path = public", False),
        ("SHOW work_mem", False),
        ("DO $$BEGIN END$$", False),
        ("CALL refresh($1)", False),
        ("EXPLAIN SELECT 1", False),
        ("SELECTED", False),
        ("/* SELECT 1", False),
        ("", False),
    ],
)
def test_plannable_reads_the_first_keyword(text: str, expected: bool) -> None:
    assert plannable(text) is expected


@pytest.mark.asyncio
@pytest.mark.parametrize("version", ["the server's", 150000])
async def test_select_with_placeholder_gets_its_generic_plan(
    db_dsn: str, version: str | int
) -> None:
    async with _connect(db_dsn) as conn:
        num = await _version(conn) if isinstance(version, str) else version
        state = await _state(conn)
        plan = await explain_statement(
            conn, "SELECT * FROM article_tags WHERE article_id = $1", server_version_num=num
        )
        joined = await explain_statement(conn, TAGS_OF_ARTICLE, server_version_num=num)
        await _assert_usable(conn, state)
    assert isinstance(plan, Plan), plan
    assert plan.root.node_type == "Index Scan"
    assert plan.root.index_name == "article_tags_article_idx"
    assert plan.root.index_cond == "(article_id = $1)"  # generic: the value is not in the plan
    assert plan.execution_ms is None  # planned, not run
    assert isinstance(joined, Plan), joined
    scans = {(n.relation, n.node_type) for n in joined.nodes() if n.relation}
    assert ("article_tags", "Index Scan") in scans


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "text",
    [
        "INSERT INTO tags (name) VALUES ($1)",
        "UPDATE article_tags SET tag_id = $1 WHERE article_id = $2",
        "DELETE FROM article_tags WHERE tag_id = $1",
        "WITH gone AS (DELETE FROM tags RETURNING id) SELECT count(*) FROM gone",
    ],
)
async def test_writes_are_planned_but_not_run(db_dsn: str, text: str) -> None:
    async with _connect(db_dsn) as conn:
        state = await _state(conn)
        plan = await explain_statement(conn, text, server_version_num=await _version(conn))
        await _assert_usable(conn, state)  # rows and the sequence as they were
    assert isinstance(plan, Plan), plan
    assert any(n.node_type == "ModifyTable" for n in plan.nodes())


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("BEGIN", "not a plannable statement (BEGIN)"),
        ("SET statement_timeout = $1", "not a plannable statement (SET)"),
        ("show work_mem", "not a plannable statement (SHOW)"),
        ("-- a comment, nothing else", "not a plannable statement (no statement)"),
        ("SELECT " + "1, " * MAX_TEXT, "the statement text is 300007 characters, over the"),
    ],
)
async def test_what_cannot_be_planned_is_not_sent(db_dsn: str, text: str, reason: str) -> None:
    result = await explain_statement(await _closed(db_dsn), text, server_version_num=180000)
    assert isinstance(result, str)
    assert result.startswith(reason)


@pytest.mark.asyncio
async def test_servers_without_plan_cache_mode_are_not_asked(db_dsn: str) -> None:
    result = await explain_statement(await _closed(db_dsn), "SELECT 1", server_version_num=110022)
    assert result == "generic plans need PostgreSQL 12 or later, not 11"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SELECT * FROM missing WHERE id = $1", 'relation "missing" does not exist'),
        ("SELECT count(*) FROM tags WHERE $1 IS NULL", "could not determine data type of para"),
        ("SELECT 1; DELETE FROM article_tags", "cannot insert multiple commands"),
    ],
)
async def test_refusals_are_reasons_and_leave_the_connection_usable(
    db_dsn: str, text: str, message: str
) -> None:
    async with _connect(db_dsn) as conn:
        state = await _state(conn)
        for version in (await _version(conn), 150000):
            result = await explain_statement(conn, text, server_version_num=version)
            assert isinstance(result, str)
            assert result.startswith(f"the server refused to plan it: {message}")
            assert "\n" not in result
            assert len(result) <= 200
            await _assert_usable(conn, state)


@pytest.mark.asyncio
async def test_a_timeout_is_a_reason_and_leaves_the_connection_usable(db_dsn: str) -> None:
    async with _connect(db_dsn) as locker, _connect(db_dsn) as conn:
        state = await _state(conn)
        async with locker.transaction():  # planning needs a lock this holds
            await locker.execute("LOCK TABLE tags IN ACCESS EXCLUSIVE MODE")
            result = await explain_statement(
                conn, TAGS_OF_ARTICLE, server_version_num=await _version(conn), timeout_s=0.2
            )
        await _assert_usable(conn, state)
    assert result == (
        "timed out after statement_timeout 0.2s: canceling statement due to statement timeout"
    )


@pytest.mark.asyncio
async def test_a_callers_transaction_is_left_open_and_unchanged(db_dsn: str) -> None:
    async with _connect(db_dsn) as conn, conn.transaction():
        await conn.execute("SET LOCAL work_mem = '7MB'")
        version = await _version(conn)
        plan = await explain_statement(conn, TAGS_OF_ARTICLE, server_version_num=version)
        refused = await explain_statement(conn, "SELECT * FROM missing", server_version_num=version)
        assert conn.is_in_transaction()
        assert await conn.fetchval("SHOW work_mem") == "7MB"
        assert await conn.fetchval("SHOW transaction_read_only") == "off"
        assert await conn.fetchval("SELECT count(*) FROM tags") == 200  # not aborted
    assert isinstance(plan, Plan)
    assert isinstance(refused, str)


# EXPLAIN (GENERIC_PLAN) sees $n as placeholders only when no values are bound, which asyncpg
# cannot do: a DO block sends it without parameters and hands the plan back in a setting.
_GENERIC_PLAN_DO = """DO $$DECLARE p text; BEGIN
EXECUTE 'EXPLAIN (GENERIC_PLAN, FORMAT JSON) ' || current_setting('perfgate_test.sql') INTO p;
PERFORM set_config('perfgate_test.plan', p, true); END$$"""


@pytest.mark.asyncio
async def test_same_plan_as_explain_generic_plan_on_16_and_later(db_dsn: str) -> None:
    async with _connect(db_dsn) as conn:
        version = await _version(conn)
        if version < 160000:
            pytest.skip(
                f"EXPLAIN (GENERIC_PLAN) needs PostgreSQL 16 (server_version_num {version})"
            )
        plan = await explain_statement(conn, TAGS_OF_ARTICLE, server_version_num=version)
        async with conn.transaction():
            await conn.execute("SET LOCAL jit = off; SET LOCAL max_parallel_workers_per_gather = 0")
            await conn.execute("SELECT set_config('perfgate_test.sql', $1, true)", TAGS_OF_ARTICLE)
            await conn.execute(_GENERIC_PLAN_DO)
            reference = parse_plan(
                await conn.fetchval("SELECT current_setting('perfgate_test.plan')")
            )
    assert isinstance(plan, Plan), plan
    assert shape_fingerprint(plan) == shape_fingerprint(reference)
    assert plan.root.total_cost == reference.root.total_cost
