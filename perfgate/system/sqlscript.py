"""Run a SQL file as ``psql -f`` would: statement by statement, pg_dump's output included.

A file is split into statements by PostgreSQL's own parser (pglast, libpg_query), so dollar
quotes, ``BEGIN ATOMIC`` bodies and comments are handled exactly, and each statement is sent
on its own, as psql sends them: ``VACUUM`` or ``CREATE INDEX CONCURRENTLY`` work, and a failure
names the file and line of the statement. What pg_dump writes besides SQL is understood:

- ``\\restrict`` / ``\\unrestrict`` (pg_dump 17.6 and later) are skipped, other psql
  meta-commands are an error naming the line;
- ``COPY ... FROM stdin;`` with its data lines up to ``\\.`` is loaded with COPY;
- ``ALTER ... OWNER TO``, ``GRANT`` and ``REVOKE`` for a role this server does not have, and
  ``SET`` of a parameter it does not know (a newer pg_dump's ``transaction_timeout``), are
  skipped and counted, where psql would print an error and go on.

Each file runs on a connection of its own, so its ``SET search_path = ''`` (which pg_dump
writes) does not reach the next file.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pglast
from pglast import ast
from pglast.parser import ParseError

from perfgate.exceptions import DatabaseError

__all__ = ["ScriptOutcome", "Statement", "read_script", "run_script"]

_COPY_FROM_STDIN = re.compile(r"^\s*COPY\s+.+\s+FROM\s+stdin\b.*;\s*$", re.IGNORECASE)
_IGNORED_META = frozenset({"restrict", "unrestrict"})
# Statements psql would fail on and go past, when the failure is one of these.
_OWNERSHIP = r"^\s*(ALTER\s+.+\s+OWNER\s+TO|GRANT|REVOKE|ALTER\s+DEFAULT\s+PRIVILEGES)\b"
_SKIPPABLE = (
    (
        re.compile(_OWNERSHIP, re.IGNORECASE | re.DOTALL),
        re.compile(r'role ".*" does not exist'),
        "ownership or privileges for a role this server does not have",
    ),
    (
        re.compile(r"^\s*(SET|SELECT\s+pg_catalog\.set_config)\b", re.IGNORECASE),
        re.compile(r"unrecognized configuration parameter"),
        "a setting this server does not know",
    ),
)


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement of a script: its text, the line it starts on, and COPY data if any."""

    sql: str
    line: int
    copy_data: bytes | None = None


@dataclass(slots=True)
class ScriptOutcome:
    """What running a script did besides succeeding: statements skipped, by reason."""

    statements: int = 0
    skipped: dict[str, int] = field(default_factory=dict)


def read_script(path: Path) -> list[Statement]:
    """The statements of a SQL file; DatabaseError naming the file and line when unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DatabaseError(
            f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from None
    except OSError as exc:
        raise DatabaseError(f"cannot read {path}: {exc}") from None
    sql, copies = _strip_non_sql(text, path)
    statements = []
    for part in _split(sql):
        line = sql.count("\n", 0, part.start) + 1
        statements.append(Statement(sql=sql[part], line=line, copy_data=copies.get(line)))
    return statements


def _strip_non_sql(text: str, path: Path) -> tuple[str, dict[int, bytes]]:
    """Blank psql meta-commands and COPY data (line numbers kept); return the data by line."""
    lines = text.split("\n")
    copies: dict[int, bytes] = {}
    i = 0
    while i < len(lines):
        stripped = lines[i].lstrip()
        if stripped.startswith("\\"):
            command = stripped[1:].split(None, 1)[0] if len(stripped) > 1 else ""
            if command not in _IGNORED_META:
                raise DatabaseError(
                    f"{path}:{i + 1}: psql meta-command \\{command} is not SQL; perfgate runs "
                    "setup files statement by statement, as psql -f would, but without psql: "
                    "remove the line, or run the file with a setup step such as "
                    "{run: 'psql -v ON_ERROR_STOP=1 -f FILE {dsn}'}"
                )
            lines[i] = ""
        elif _COPY_FROM_STDIN.match(lines[i]):
            start = i
            data: list[str] = []
            i += 1
            while i < len(lines) and lines[i] != "\\.":
                data.append(lines[i])
                lines[i] = ""
                i += 1
            if i == len(lines):
                raise DatabaseError(
                    f"{path}:{start + 1}: COPY ... FROM stdin has no closing \\. line"
                )
            lines[i] = ""
            copies[start + 1] = "".join(f"{row}\n" for row in data).encode()
        i += 1
    return "\n".join(lines), copies


def _split(sql: str) -> Iterator[slice]:
    """Statement slices by the parser; by the scanner when the parser refuses the file.

    A file this pglast's grammar rejects (a syntax error, or syntax of another release) is
    split by the scanner, which keeps quotes and comments right, and the server then reports
    the syntax error at its statement.
    """
    try:
        yield from pglast.split(sql, with_parser=True, only_slices=True)
    except ParseError:
        yield from pglast.split(sql, with_parser=False, only_slices=True)


async def run_script(conn: asyncpg.Connection, path: Path) -> ScriptOutcome:
    """Run every statement of ``path`` in order; DatabaseError at the first that fails."""
    outcome = ScriptOutcome()
    for statement in read_script(path):
        try:
            if statement.copy_data is not None:
                await _copy(conn, statement)
            else:
                await conn.execute(statement.sql)
        except asyncpg.PostgresError as exc:
            reason = _skippable(statement.sql, str(exc))
            if reason is None:
                raise DatabaseError(_located(path, statement, exc)) from exc
            outcome.skipped[reason] = outcome.skipped.get(reason, 0) + 1
            continue
        outcome.statements += 1
    return outcome


async def _copy(conn: asyncpg.Connection, statement: Statement) -> None:
    """Load COPY data through the COPY statement's own table and columns."""
    node = pglast.parse_sql(statement.sql)[0].stmt
    if not isinstance(node, ast.CopyStmt) or node.relation is None:
        raise DatabaseError(f"line {statement.line}: not a COPY ... FROM stdin statement")
    relation = node.relation
    columns = [str(c.sval) for c in node.attlist or ()]
    await conn.copy_to_table(
        str(relation.relname),
        schema_name=relation.schemaname,
        columns=columns or None,
        source=io.BytesIO(statement.copy_data or b""),
        format="text",
    )


def _skippable(sql: str, message: str) -> str | None:
    for statement, error, reason in _SKIPPABLE:
        if statement.match(sql) and error.search(message):
            return reason
    return None


def _located(path: Path, statement: Statement, exc: asyncpg.PostgresError) -> str:
    """'schema.sql:57: relation "x" does not exist', pointing into the statement when it can."""
    line = statement.line
    text = str(getattr(exc, "message", None) or exc)
    position = getattr(exc, "position", None)
    if position and str(position).isdigit():
        line += statement.sql.count("\n", 0, int(position) - 1)
    first = statement.sql.strip().split("\n", 1)[0]
    shown = first if len(first) <= 100 else first[:97] + "..."
    for label in ("detail", "hint"):
        extra = getattr(exc, label, None)
        if extra:
            text += f"; {label}: {extra}"
    return f"{path}:{line}: {text}\n  statement at line {statement.line}: {shown}"
