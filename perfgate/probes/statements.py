"""What requests do to the scratch database, read from ``pg_stat_statements`` around them.

The scratch database is perfgate's alone and perfgate decides when requests are sent, so the
difference between two readings of ``pg_stat_statements`` (filtered to that database, top-level
statements only) is exactly what the requests in between caused: which statements, how often,
their rows, buffers and execution time. perfgate reads from a connection of its own; its own
reading is left out by the marker comment after its first word (pg_stat_statements keeps a
comment inside a statement in the normalised text, though newer versions drop a leading one).

A reading is taken when the response has arrived and again until two readings agree (an app may
finish a statement, a ``COMMIT`` say, just after it answers), at most ``SETTLE_READS`` times.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import asyncpg

from perfgate.exceptions import DatabaseError
from perfgate.plan import Plan
from perfgate.probes.postgres import PAGES_SQL
from perfgate.probes.statementplan import explain_statement

__all__ = [
    "FIX",
    "MIN_SERVER",
    "DatabaseWatch",
    "StatementTotals",
    "StatementsUnavailable",
    "difference",
    "first_line",
    "is_transaction_control",
]

MIN_SERVER = 130000  # total_exec_time and the buffer columns as read here
MARKER = "/* perfgate: statements */"
SETTLE_READS = 20  # readings after a response until two agree
SETTLE_PAUSE_S = 0.01
FIX = (
    "add pg_stat_statements to shared_preload_libraries in postgresql.conf (keeping what is "
    "there) and restart the server; perfgate then creates the extension in its scratch "
    "database. The shipped workflows and the embedded server preload it"
)
PRIVILEGE_FIX = "grant the role pg_read_all_stats (GRANT pg_read_all_stats TO <role>)"
CREATE_FIX = (
    "creating it needs a superuser: run perfgate as one, or have one run CREATE EXTENSION "
    "pg_stat_statements in the database setup runs in, or in template1 so every new database "
    "has it"
)
HIDDEN = "<insufficient privilege>"  # pg_stat_statements' text for a statement it will not show
# Not counted as queries: transaction control, and what connection pools send to reset a
# connection they take back (asyncpg's pool: pg_advisory_unlock_all, CLOSE ALL, UNLISTEN *,
# RESET ALL; pgbouncer and others: DISCARD ALL, DEALLOCATE ALL).
_CONTROL = re.compile(
    r"\s*(?:BEGIN|START\s+TRANSACTION|COMMIT|END|ROLLBACK|ABORT|SAVEPOINT|RELEASE"
    r"|CLOSE\s+ALL|UNLISTEN\s+\*|RESET\s+ALL|DISCARD\s+ALL|DEALLOCATE\s+ALL"
    r"|SELECT\s+pg_advisory_unlock_all\(\)\s*$)(?![\w(])",
    re.IGNORECASE,
)


# What a connection that was lost or ended by the server raises (asyncpg's state machine says
# InternalClientError when an operation follows a connection the server terminated).
_LOST = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)


class StatementsUnavailable(DatabaseError):
    """pg_stat_statements cannot be read on this server (the message says why and the fix)."""


def first_line(exc: BaseException) -> str:
    """An error's first line (PostgreSQL adds DETAIL and HINT lines)."""
    return str(exc).strip().split("\n", 1)[0]


def is_transaction_control(text: str) -> bool:
    """BEGIN, COMMIT, ROLLBACK, SAVEPOINT and a pool's connection reset: not queries."""
    return _CONTROL.match(text) is not None


@dataclass(frozen=True, slots=True)
class StatementTotals:
    """One normalised statement's counters, summed since some reading (or between two)."""

    text: str
    calls: int
    rows: int
    exec_ms: float
    shared_hit: int
    shared_read: int
    shared_dirtied: int
    temp_blocks: int
    exec_sq_ms: float  # the sum of squared execution times (from mean and stddev)
    queryid: int = 0  # pg_stat_statements' id (it hashes table OIDs: differs per database)

    @property
    def buffers(self) -> int:
        """Shared buffers hit or read."""
        return self.shared_hit + self.shared_read

    @property
    def mean_ms(self) -> float:
        return self.exec_ms / self.calls if self.calls else math.nan

    @property
    def stddev_ms(self) -> float:
        """The spread of one call's execution time (NaN for fewer than two calls)."""
        if self.calls < 2:
            return math.nan
        mean = self.mean_ms
        variance = max(0.0, self.exec_sq_ms / self.calls - mean * mean)
        return math.sqrt(variance * self.calls / (self.calls - 1))

    def minus(self, earlier: StatementTotals) -> StatementTotals:
        return StatementTotals(
            text=self.text,
            calls=self.calls - earlier.calls,
            rows=self.rows - earlier.rows,
            exec_ms=self.exec_ms - earlier.exec_ms,
            shared_hit=self.shared_hit - earlier.shared_hit,
            shared_read=self.shared_read - earlier.shared_read,
            shared_dirtied=self.shared_dirtied - earlier.shared_dirtied,
            temp_blocks=self.temp_blocks - earlier.temp_blocks,
            exec_sq_ms=self.exec_sq_ms - earlier.exec_sq_ms,
            queryid=self.queryid,
        )

    def plus(self, other: StatementTotals) -> StatementTotals:
        return StatementTotals(
            text=self.text,
            calls=self.calls + other.calls,
            rows=self.rows + other.rows,
            exec_ms=self.exec_ms + other.exec_ms,
            shared_hit=self.shared_hit + other.shared_hit,
            shared_read=self.shared_read + other.shared_read,
            shared_dirtied=self.shared_dirtied + other.shared_dirtied,
            temp_blocks=self.temp_blocks + other.temp_blocks,
            exec_sq_ms=self.exec_sq_ms + other.exec_sq_ms,
            queryid=self.queryid,
        )


Snapshot = Mapping[int, StatementTotals]  # by queryid


def difference(before: Snapshot, after: Snapshot) -> tuple[StatementTotals, ...]:
    """What ran between two readings, by normalised text, most execution time first.

    Keyed by text, not queryid: a query id hashes table OIDs, which differ between scratch
    databases, while the normalised text is what a baseline can compare.
    """
    by_text: dict[str, StatementTotals] = {}
    for queryid, now in after.items():
        was = before.get(queryid)
        ran = now.minus(was) if was is not None else now
        if ran.calls <= 0:
            continue
        seen = by_text.get(ran.text)
        by_text[ran.text] = ran if seen is None else seen.plus(ran)
    return tuple(sorted(by_text.values(), key=lambda s: (-s.exec_ms, s.text)))


def _reading_sql(schema: str, version: int) -> str:
    toplevel = " AND s.toplevel" if version >= 140000 else ""
    return (
        f"SELECT {MARKER} s.queryid, s.query, s.calls, s.rows, s.total_exec_time, "
        "s.mean_exec_time, s.stddev_exec_time, s.shared_blks_hit, s.shared_blks_read, "
        "s.shared_blks_dirtied, s.temp_blks_read + s.temp_blks_written "
        f"FROM {schema}.pg_stat_statements(true) s "
        "WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        f"{toplevel} AND s.query NOT LIKE '%/* perfgate: %'"
    )


def _totals(row: asyncpg.Record) -> StatementTotals:
    calls = int(row[2])
    mean, stddev = float(row[5] or 0.0), float(row[6] or 0.0)
    return StatementTotals(
        text=str(row[1]),
        calls=calls,
        rows=int(row[3]),
        exec_ms=float(row[4]),
        shared_hit=int(row[7]),
        shared_read=int(row[8]),
        shared_dirtied=int(row[9]),
        temp_blocks=int(row[10]),
        exec_sq_ms=calls * (stddev * stddev + mean * mean),
        queryid=int(row[0] or 0),
    )


class DatabaseWatch:
    """perfgate's own connection to the scratch database, reading what requests did to it."""

    def __init__(
        self, conn: asyncpg.Connection, sql: str, max_connections: int, version: int
    ) -> None:
        self._conn = conn
        self._sql = sql
        self.max_connections = max_connections
        self.version = version

    @classmethod
    async def open(cls, dsn: str) -> DatabaseWatch:
        """Connect and check that pg_stat_statements can be read and tells what the app does;
        StatementsUnavailable, saying why and the fix, if not; DatabaseError if the connection
        fails."""
        try:
            conn = await asyncpg.connect(dsn, timeout=15)
        except _LOST as exc:
            raise DatabaseError(f"cannot connect to read pg_stat_statements: {exc}") from exc
        try:
            return await cls._checked(conn)
        except asyncpg.PostgresError as exc:
            await conn.close()
            raise StatementsUnavailable(
                f"pg_stat_statements cannot be read: {first_line(exc)}"
            ) from exc
        except BaseException:
            await conn.close()
            raise

    @classmethod
    async def _checked(cls, conn: asyncpg.Connection) -> DatabaseWatch:
        version = int(await conn.fetchval("SELECT current_setting('server_version_num')"))
        if version < MIN_SERVER:
            raise StatementsUnavailable(
                f"statements per request need PostgreSQL 13 or later (this server is "
                f"{version // 10000})"
            )
        schema = await conn.fetchval(
            "SELECT quote_ident(n.nspname) FROM pg_extension e JOIN pg_namespace n "
            "ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'"
        )
        if schema is None:
            raise StatementsUnavailable(
                f"pg_stat_statements is not installed in the scratch database; {FIX}"
            )
        sql = _reading_sql(str(schema), version)
        try:
            rows = await conn.fetch(sql)
        except asyncpg.ObjectNotInPrerequisiteStateError as exc:  # not preloaded
            raise StatementsUnavailable(
                f"pg_stat_statements is not loaded on this server ({first_line(exc)}); {FIX}"
            ) from None
        except asyncpg.InsufficientPrivilegeError as exc:
            raise StatementsUnavailable(
                f"pg_stat_statements cannot be read by this role ({first_line(exc)}); "
                f"{PRIVILEGE_FIX}"
            ) from None
        if any(r[1] == HIDDEN for r in rows):
            raise StatementsUnavailable(
                f"pg_stat_statements hides other roles' statements from this role; {PRIVILEGE_FIX}"
            )
        track = await conn.fetchval("SELECT current_setting('pg_stat_statements.track', true)")
        if track == "none":
            raise StatementsUnavailable(
                "pg_stat_statements.track is 'none', so nothing is counted; set it to 'top' "
                "(the default)"
            )
        limit = await conn.fetchval(
            "SELECT current_setting('max_connections')::int "
            "- current_setting('superuser_reserved_connections')::int"
        )
        return cls(conn, sql, int(limit), version)

    async def reading(self) -> dict[int, StatementTotals]:
        """Every statement of the scratch database, with its counters so far."""
        out: dict[int, StatementTotals] = {}
        async with _reading_failed():
            rows = await self._conn.fetch(self._sql, timeout=15)
        for row in rows:
            totals = _totals(row)
            key = int(row[0]) if row[0] is not None else hash(totals.text)
            seen = out.get(key)
            out[key] = totals if seen is None else seen.plus(totals)
        return out

    async def settled(self) -> dict[int, StatementTotals]:
        """A reading once two in a row agree (bounded: ``SETTLE_READS`` readings)."""
        last = await self.reading()
        for _ in range(SETTLE_READS):
            await asyncio.sleep(SETTLE_PAUSE_S)
            now = await self.reading()
            if _calls(now) == _calls(last):
                return now
            last = now
        return last

    async def connections(self) -> int:
        """Client connections to the scratch database now, perfgate's own left out."""
        async with _reading_failed():
            n = await self._conn.fetchval(
                f"SELECT {MARKER} count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND backend_type = 'client backend'",
                timeout=15,
            )
        return int(n)

    async def explain(self, text: str) -> Plan | str:
        """A statement's generic plan (nothing is run), or why there is none."""
        return await explain_statement(self._conn, text, server_version_num=self.version)

    async def relation_pages(self, relations: list[str]) -> dict[str, int]:
        """``pg_class.relpages`` of the tables named (what seq-scan-filter judges size by)."""
        sql = PAGES_SQL.replace("SELECT ", f"SELECT {MARKER} ", 1)
        async with _reading_failed():
            rows = await self._conn.fetch(sql, relations, timeout=15)
        return {str(r[0]): int(r[1]) for r in rows}

    async def close(self) -> None:
        """Close the connection; a connection already lost is fine."""
        with contextlib.suppress(*_LOST):
            await self._conn.close()


@contextlib.asynccontextmanager
async def _reading_failed() -> AsyncIterator[None]:
    """A lost connection or a refused reading, as a DatabaseError saying what failed."""
    try:
        yield
    except _LOST as exc:
        raise DatabaseError(f"reading pg_stat_statements failed: {exc}") from exc


def _calls(reading: Snapshot) -> dict[int, int]:
    return {k: v.calls for k, v in reading.items()}
