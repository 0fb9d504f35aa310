"""The scratch database a gate runs against: created, set up, kept pristine, always dropped.

perfgate never points a target at data someone cares about. Given a server DSN it creates
``perfgate_<random>`` on that server; without one it starts an embedded PostgreSQL
(``embedded.py``). Either way the database is dropped at the end, also after a failure or
Ctrl-C (an ``atexit`` hook backs up ``close``).

Isolation: after setup, a copy of the database is kept as a template (``<name>_pristine``).
When an item wrote to the database, the next item gets it back as it was: the database is
dropped and cloned again from the template (``restore``). Whether anything wrote is read from
the server's transaction counter (``write_mark``), which moves with every transaction that
wrote, committed or not.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import math
import os
import secrets
import time
import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg

from perfgate.budgets.model import SetupCommand, SetupStep, SqlFile
from perfgate.exceptions import DatabaseError, PerfgateError
from perfgate.probes.statements import CREATE_FIX, FIX, first_line
from perfgate.redact import redact_dsn
from perfgate.system import ledger
from perfgate.system.launch import program_environment, run_to_completion, split_command
from perfgate.system.sqlscript import ScriptOutcome, run_script

T = TypeVar("T")

__all__ = [
    "ExternalServer",
    "PostgresServer",
    "ScratchDatabase",
    "dsn_values",
    "open_server",
    "with_database",
]


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


def open_server(dsn: str | None) -> PostgresServer:
    """The server named by ``dsn``, or an embedded one when it is empty."""
    if dsn:
        return ExternalServer(dsn=dsn)
    from perfgate.system.embedded import EmbeddedServer

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


def dsn_values(dsn: str) -> dict[str, str]:
    """``{dsn}`` and its parts, for apps that take host, port, user... separately."""
    parts = urlsplit(dsn)
    query = parse_qs(parts.query)
    host = parts.hostname or (query.get("host") or [""])[0]
    return {
        "dsn": dsn,
        "dsn_host": host,
        "dsn_port": str(parts.port or 5432),
        "dsn_user": parts.username or "",
        "dsn_password": parts.password or "",
        "dsn_database": parts.path.lstrip("/"),
    }


def _run(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on a private loop: lifecycle calls come from synchronous pytest hooks."""

    async def main() -> T:
        return await make()

    return asyncio.run(main())


async def _admin(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=15)
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


# Rows per table of the app's schemas, as VACUUM (ANALYZE) after setup counted them.
_TABLE_ROWS_SQL = (
    "SELECT c.relname, sum(c.reltuples) FROM pg_class c JOIN pg_namespace n "
    "ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'm', 'p') "
    "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg_toast%' GROUP BY c.relname"
)


def _significant(n: float, digits: int = 3) -> int:
    """``n`` rounded to ``digits`` significant digits (ANALYZE samples the largest tables)."""
    if n < 1:
        return 0
    return int(round(n, digits - 1 - math.floor(math.log10(n))))


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(slots=True)
class ScratchDatabase:
    """A database perfgate created and will drop; ``dsn`` is what targets and queries use."""

    server: PostgresServer
    name: str
    dsn: str
    size_bytes: int = 0  # after setup: the dataset the numbers were measured on
    table_rows: dict[str, int] = field(default_factory=dict)  # after setup, 3 significant digits
    notes: list[str] = field(default_factory=list)  # statements skipped during setup
    restores: int = 0
    restore_seconds: float = 0.0
    server_version: str = ""
    _template: str | None = None
    _version: int = 0
    _dropped: bool = False

    @classmethod
    def create(
        cls,
        server: PostgresServer,
        setup: Sequence[SetupStep] = (),
        *,
        environ: Mapping[str, str] | None = None,
    ) -> ScratchDatabase:
        """Create ``perfgate_<random>`` on ``server`` and run the setup steps into it."""
        name = f"perfgate_{secrets.token_hex(6)}"
        db = cls(server=server, name=name, dsn=with_database(server.dsn, name))
        try:
            _run(lambda: _admin(server.dsn, f"CREATE DATABASE {_quoted(name)}"))
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
        except BaseException:  # stopped while CREATE DATABASE ran: it may exist
            db.drop()
            raise
        atexit.register(db.drop)
        try:
            db._note()
            db._setup(setup, environ)
        except BaseException:
            db.drop()
            raise
        return db

    def _names(self) -> list[str]:
        return [self.name] + ([self._template] if self._template else [])

    def _note(self) -> None:
        """Mark the database as perfgate's and write it down, so a later run can drop it if
        this one is killed (an embedded server's databases go with the server)."""
        marker = ledger.database_marker()
        _run(
            lambda: _admin(
                self.server.dsn,
                *(f"COMMENT ON DATABASE {_quoted(n)} IS {_literal(marker)}" for n in self._names()),
            )
        )
        if self.server.kind != "embedded":
            values = dsn_values(self.server.dsn)
            ledger.note(
                "database",
                self.name,
                server=_without_password(self.server.dsn),
                where=f"{values['dsn_host']}:{values['dsn_port']}",
                names=self._names(),
                marker=marker,
            )

    def _setup(self, steps: Sequence[SetupStep], environ: Mapping[str, str] | None) -> None:
        skipped: dict[str, int] = {}
        for i, step in enumerate(steps):
            where = f"database.setup[{i}]"
            if isinstance(step, SqlFile):
                outcome = _run(functools.partial(self._script, step.path))
                for reason, count in outcome.skipped.items():
                    skipped[reason] = skipped.get(reason, 0) + count
            else:
                self._command(step, where, environ)
        for reason, count in skipped.items():
            self.notes.append(
                f"setup skipped {count} statement(s) setting {reason} (as psql would, after an "
                "error); dump with --no-owner --no-privileges to leave them out"
            )
        self.size_bytes, self._version = _run(self._analyze)

    async def _script(self, path: Path) -> ScriptOutcome:
        # A connection per file: a file's SET search_path (pg_dump writes one) stays in it.
        conn = await asyncpg.connect(self.dsn, timeout=15)
        try:
            return await run_script(conn, path)
        finally:
            await conn.close()

    def _command(self, step: SetupCommand, where: str, environ: Mapping[str, str] | None) -> None:
        values = dsn_values(self.dsn)
        env = {key: fill_dsn(value, values) for key, value in step.env.items()}
        try:
            argv = split_command(fill_dsn(step.command, values))
            run_to_completion(
                argv,
                env=program_environment(os.environ if environ is None else environ, env),
                cwd=step.cwd,
                timeout_s=step.timeout_s,
                what=where,
            )
        except (ValueError, PerfgateError) as exc:
            raise DatabaseError(redact_dsn(str(exc))) from None

    async def _analyze(self) -> tuple[int, int]:
        conn = await asyncpg.connect(self.dsn, timeout=15)
        try:
            # Fresh statistics make estimates, plans and index-only scans repeatable.
            await conn.execute("VACUUM (ANALYZE)")
            size = await conn.fetchval("SELECT pg_database_size(current_database())")
            self.table_rows = {
                str(r[0]): _significant(float(r[1]))
                for r in await conn.fetch(_TABLE_ROWS_SQL)
                if r[1] is not None and r[1] >= 0
            }
            version = await conn.fetchval("SELECT current_setting('server_version_num')::int")
            self.server_version = str(
                await conn.fetchval("SELECT current_setting('server_version')")
            )
            return int(size), int(version)
        finally:
            await conn.close()

    def enable_statements(self) -> str:
        """Install pg_stat_statements in this database; why not, or "" when it is there."""

        async def install() -> str:
            conn = await asyncpg.connect(self.dsn, timeout=15)
            try:
                await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            except asyncpg.PostgresError as exc:
                fix = CREATE_FIX if isinstance(exc, asyncpg.InsufficientPrivilegeError) else FIX
                return f"CREATE EXTENSION pg_stat_statements failed ({first_line(exc)}); {fix}"
            finally:
                await conn.close()
            return ""

        return _run(install)

    def describe(self) -> str:
        """'the embedded PostgreSQL 18.6' or 'PostgreSQL 15.20 at 127.0.0.1:5432'."""
        version = self.server_version.split(" ", 1)[0]
        if self.server.kind == "embedded":
            return f"the embedded PostgreSQL {version}"
        values = dsn_values(self.server.dsn)
        return f"PostgreSQL {version} at {values['dsn_host']}:{values['dsn_port']}"

    # -- isolation -----------------------------------------------------------------------------

    def keep_pristine(self) -> None:
        """Keep a copy of the set-up database to ``restore`` from (no connections may be open)."""
        if self._template is not None:
            return
        template = f"{self.name}_pristine"
        # Known before it exists: a run stopped while it is being created still drops it.
        self._template = template
        _run(
            lambda: _admin(
                self.server.dsn,
                f"CREATE DATABASE {_quoted(template)} TEMPLATE {_quoted(self.name)}"
                + self._strategy(),
                # Nothing may connect to it, or cloning from it would fail.
                f"ALTER DATABASE {_quoted(template)} ALLOW_CONNECTIONS false",
            )
        )
        self._note()

    def _strategy(self) -> str:
        # PostgreSQL 15+ copies through the WAL by default; copying the files is faster for a
        # database of more than a few MB, which a seeded scratch database is.
        return " STRATEGY FILE_COPY" if self._version >= 150000 else ""

    def restore(self) -> None:
        """Drop the database and clone it again from the pristine copy (connections are ended)."""
        if self._template is None:
            raise DatabaseError("restore() before keep_pristine()")
        started = time.perf_counter()
        _run(
            lambda: _admin(
                self.server.dsn,
                f"DROP DATABASE IF EXISTS {_quoted(self.name)} WITH (FORCE)",
                f"CREATE DATABASE {_quoted(self.name)} TEMPLATE {_quoted(self._template or '')}"
                + self._strategy(),
            )
        )
        self.restores += 1
        self.restore_seconds += time.perf_counter() - started

    def write_mark(self) -> str:
        """The server's next transaction id: it moves whenever a transaction writes."""

        async def read() -> str:
            conn = await asyncpg.connect(self.server.dsn, timeout=15)
            try:
                sql = (
                    "SELECT pg_snapshot_xmax(pg_current_snapshot())::text"
                    if self._version >= 130000
                    else "SELECT txid_snapshot_xmax(txid_current_snapshot())::text"
                )
                return str(await conn.fetchval(sql))
            finally:
                await conn.close()

        return _run(read)

    def drop(self) -> None:
        """Drop the database and its pristine copy; safe to call twice, and from atexit."""
        if self._dropped:
            return
        self._dropped = True
        atexit.unregister(self.drop)
        names = self._names()
        try:
            _run(
                lambda: _admin(
                    self.server.dsn,
                    *(f"DROP DATABASE IF EXISTS {_quoted(n)} WITH (FORCE)" for n in names),
                )
            )
        except (OSError, asyncpg.PostgresError, asyncio.TimeoutError, RuntimeError) as exc:
            warnings.warn(
                f"perfgate: could not drop scratch database {self.name}: {exc}", stacklevel=2
            )
        else:
            ledger.forget("database", self.name)


def drop_marked(server: str, names: Sequence[str], marker: str, dsns: Sequence[str]) -> list[str]:
    """Drop those of ``names`` that still carry perfgate's ``marker`` comment (a killed run's
    scratch databases); the names dropped. A password comes from a DSN in ``dsns`` for the
    same server, as notes never hold one."""
    dsn = _with_credentials(server, dsns)

    async def main() -> list[str]:
        conn = await asyncpg.connect(dsn, timeout=15)
        try:
            dropped = []
            for name in names:
                comment = await conn.fetchval(
                    "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                    "WHERE datname = $1",
                    name,
                )
                if comment == marker:
                    await conn.execute(f"DROP DATABASE IF EXISTS {_quoted(name)} WITH (FORCE)")
                    dropped.append(name)
            return dropped
        finally:
            await conn.close()

    try:
        return _run(main)
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
        raise DatabaseError(f"cannot connect to {redact_dsn(server)}: {exc}") from None


def _without_password(dsn: str) -> str:
    parts = urlsplit(dsn)
    if not parts.password:
        return dsn
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname or ""
    netloc = f"{parts.username or ''}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _with_credentials(server: str, dsns: Sequence[str]) -> str:
    """``server`` with the password of a DSN in ``dsns`` naming the same host, port and user."""
    want = dsn_values(server)
    for dsn in dsns:
        try:
            have = dsn_values(dsn)
        except ValueError:
            continue
        same = all(have[k] == want[k] for k in ("dsn_host", "dsn_port", "dsn_user"))
        if same and have["dsn_password"]:
            return with_database(dsn, want["dsn_database"] or "postgres")
    return server


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def fill_dsn(text: str, values: Mapping[str, str]) -> str:
    """Replace ``{dsn}`` and ``{dsn_host}``, ``{dsn_port}``, ... in ``text``."""
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text
