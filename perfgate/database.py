"""The scratch database a gate runs against: created, set up, and always dropped.

perfgate never points a target at data someone cares about. Given a server DSN it creates
``perfgate_<random>`` on that server; without one it starts an embedded PostgreSQL
(the optional ``pgserver`` package) in a temporary directory. Either way the database is
dropped at the end, also after a failure or Ctrl-C (an ``atexit`` hook backs up ``close``).
"""

from __future__ import annotations

import asyncio
import atexit
import secrets
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from perfgate.exceptions import DatabaseError
from perfgate.redact import redact_dsn


class PostgresServer(Protocol):
    """A running PostgreSQL server perfgate may create databases on."""

    @property
    def dsn(self) -> str: ...

    @property
    def kind(self) -> str: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class ExternalServer:
    """A server someone else runs (CI's service container, a developer's local one)."""

    dsn: str
    kind: str = "external"

    def close(self) -> None:
        """Nothing to stop: perfgate does not own the server."""


@dataclass(slots=True)
class EmbeddedServer:
    """A throwaway PostgreSQL started from the ``pgserver`` package."""

    dsn: str
    kind: str = "embedded"
    _handle: Any = None
    _datadir: Path | None = None

    @classmethod
    def start(cls) -> EmbeddedServer:
        """Start a server in a fresh temporary directory."""
        try:
            with warnings.catch_warnings():
                # platformdirs warns when XDG_RUNTIME_DIR is unset, as on most CI runners.
                warnings.simplefilter("ignore")
                import pgserver
        except ImportError as exc:
            raise DatabaseError(
                "no database.dsn is set and the embedded PostgreSQL is not installed: "
                "install it with `pip install 'perfgate[embedded]'` or set database.dsn "
                "(e.g. PERFGATE_DSN=postgresql://postgres@127.0.0.1:5432/postgres)"
            ) from exc
        datadir = Path(tempfile.mkdtemp(prefix="perfgate-pg-"))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                handle = pgserver.get_server(datadir, cleanup_mode="delete")
            dsn = str(handle.get_uri())
        except Exception as exc:
            shutil.rmtree(datadir, ignore_errors=True)
            raise DatabaseError(f"the embedded PostgreSQL did not start: {exc}") from exc
        return cls(dsn=dsn, _handle=handle, _datadir=datadir)

    def close(self) -> None:
        """Stop the server and delete its data directory."""
        if self._handle is not None:
            handle, self._handle = self._handle, None
            try:
                handle.cleanup()
            finally:
                if self._datadir is not None:
                    shutil.rmtree(self._datadir, ignore_errors=True)


def open_server(dsn: str | None) -> PostgresServer:
    """The server named by ``dsn``, or an embedded one when it is empty."""
    if dsn:
        return ExternalServer(dsn=dsn)
    return EmbeddedServer.start()


def with_database(dsn: str, database: str) -> str:
    """The same DSN pointing at another database (URL form only, which asyncpg takes)."""
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgres", "postgresql"):
        raise DatabaseError(
            "database.dsn must be a URL like postgresql://user@host:5432/db, "
            f"got {redact_dsn(dsn)!r}"
        )
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def _run(coro: Any) -> Any:
    """Run a coroutine on a private loop: lifecycle calls come from synchronous pytest hooks."""
    return asyncio.run(coro)


async def _admin(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=15)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _setup(dsn: str, files: Sequence[Path]) -> int:
    conn = await asyncpg.connect(dsn, timeout=15)
    try:
        for path in files:
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise DatabaseError(f"database.setup: cannot read {path}: {exc}") from exc
            try:
                await conn.execute(text)
            except asyncpg.PostgresError as exc:
                raise DatabaseError(f"database.setup: {path} failed: {exc}") from exc
        # Fresh statistics make estimates, plans and index-only scans repeatable.
        await conn.execute("VACUUM (ANALYZE)")
        size = await conn.fetchval("SELECT pg_database_size(current_database())")
        return int(size)
    finally:
        await conn.close()


@dataclass(slots=True)
class ScratchDatabase:
    """A database perfgate created and will drop; ``dsn`` is what targets and queries use."""

    server: PostgresServer
    name: str
    dsn: str
    size_bytes: int = 0  # after setup: the dataset the numbers were measured on
    _dropped: bool = field(default=False)

    @classmethod
    def create(cls, server: PostgresServer, setup: Sequence[Path] = ()) -> ScratchDatabase:
        """Create ``perfgate_<random>`` on ``server`` and run the setup files into it."""
        name = f"perfgate_{secrets.token_hex(6)}"
        try:
            _run(_admin(server.dsn, f'CREATE DATABASE "{name}"'))
        except asyncpg.InsufficientPrivilegeError as exc:
            raise DatabaseError(
                f"the server at {redact_dsn(server.dsn)} refused CREATE DATABASE ({exc}); perfgate "
                "needs a role with CREATEDB so it never runs against existing data: "
                "`ALTER ROLE <user> CREATEDB`, or leave database.dsn empty to use the embedded "
                "server"
            ) from exc
        except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
            raise DatabaseError(
                f"cannot create a scratch database on {redact_dsn(server.dsn)}: {exc}"
            ) from exc
        db = cls(server=server, name=name, dsn=with_database(server.dsn, name))
        atexit.register(db.drop)
        try:
            db.size_bytes = _run(_setup(db.dsn, setup))
        except BaseException:
            db.drop()
            raise
        return db

    def drop(self) -> None:
        """Drop the database; safe to call twice, and from atexit."""
        if self._dropped:
            return
        self._dropped = True
        atexit.unregister(self.drop)
        try:
            _run(_admin(self.server.dsn, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        except (OSError, asyncpg.PostgresError, asyncio.TimeoutError, RuntimeError) as exc:
            warnings.warn(
                f"perfgate: could not drop scratch database {self.name}: {exc}", stacklevel=2
            )
