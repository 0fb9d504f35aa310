"""PostgreSQL access for WedSync: the pool, timed queries, and loading the schema and seed."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

from examples.wedsync.timing import RequestTimer

HERE = Path(__file__).parent
SCHEMA_SQL = HERE / "schema.sql"
SEED_SQL = HERE / "seed.sql"
DROP_GUEST_INDEX_SQL = HERE / "migrations" / "drop_guest_index.sql"
RESTORE_GUEST_INDEX_SQL = HERE / "migrations" / "restore_guest_index.sql"


async def create_pool(dsn: str, min_size: int, max_size: int) -> asyncpg.Pool:
    """Open the pool; fails fast (5 s) with asyncpg's own error when PostgreSQL is unreachable."""
    return await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, timeout=5.0, command_timeout=30.0
    )


async def fetch(
    pool: asyncpg.Pool, timer: RequestTimer, sql: str, *args: Any
) -> list[asyncpg.Record]:
    """Run one query; the time, including waiting for a connection, counts as db time."""
    started = time.perf_counter()
    try:
        rows: list[asyncpg.Record] = await pool.fetch(sql, *args)
    finally:
        timer.db_ms += (time.perf_counter() - started) * 1000
    return rows


async def fetchval(pool: asyncpg.Pool, timer: RequestTimer, sql: str, *args: Any) -> Any:
    """Like fetch, for a single value."""
    started = time.perf_counter()
    try:
        return await pool.fetchval(sql, *args)
    finally:
        timer.db_ms += (time.perf_counter() - started) * 1000


async def fetchrow(
    pool: asyncpg.Pool, timer: RequestTimer, sql: str, *args: Any
) -> asyncpg.Record | None:
    """Like fetch, for one row."""
    started = time.perf_counter()
    try:
        row: asyncpg.Record | None = await pool.fetchrow(sql, *args)
    finally:
        timer.db_ms += (time.perf_counter() - started) * 1000
    return row


async def load_schema_and_seed(conn: asyncpg.Connection) -> None:
    """(Re)create the WedSync tables and load the deterministic seed (about 3 to 4 s)."""
    await conn.execute(SCHEMA_SQL.read_text(encoding="utf-8"))
    await conn.execute(SEED_SQL.read_text(encoding="utf-8"))


async def _load(dsn: str) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        await load_schema_and_seed(conn)
        return time.perf_counter() - started
    finally:
        await conn.close()


def main() -> int:
    """`python -m examples.wedsync.db`: load schema.sql and seed.sql into $DATABASE_URL."""
    dsn = os.environ.get("DATABASE_URL", "").strip()
    if not dsn:
        print("DATABASE_URL is not set (an asyncpg DSN of a scratch database)", file=sys.stderr)
        return 2
    seconds = asyncio.run(_load(dsn))
    print(f"WedSync schema and seed loaded in {seconds:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
