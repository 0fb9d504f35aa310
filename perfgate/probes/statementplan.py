"""The generic plan of a pg_stat_statements text (``$1`` for each constant): planned, never run.

Read on every server as ``PREPARE`` of the text and ``EXPLAIN EXECUTE`` under ``plan_cache_mode =
force_generic_plan``. Not ``EXPLAIN (GENERIC_PLAN)`` (PostgreSQL 16+): asyncpg sends everything
through the extended protocol, which makes the text's ``$n`` parameters of the EXPLAIN itself,
and the values bound to them are folded into the plan (a NULL turns ``id = $1`` into ``false``).

Only planned: in a read-only transaction (a savepoint in the caller's), bounded by
``statement_timeout`` and always rolled back; the prepared statement, which a rollback keeps, is
deallocated. The extended protocol refuses a second statement (``SELECT 1; DELETE ...``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import secrets

import asyncpg

from perfgate.exceptions import PlanError
from perfgate.plan import Plan, parse_plan
from perfgate.probes.postgres import PINNED_SETTINGS

__all__ = ["MAX_TEXT", "explain_statement", "plannable"]

MAX_TEXT = 100_000  # characters; pg_stat_statements keeps longer texts, perfgate does not send them
PLANNABLE = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "VALUES", "WITH", "TABLE"})
MIN_SERVER = 120000  # plan_cache_mode
CLIENT_GRACE_S = 5.0  # how long past statement_timeout the client waits for a silent server
MAX_REASON = 200

_SET_LOCAL = "SELECT set_config(n, v, true) FROM unnest($1::text[], $2::text[]) AS s(n, v)"
# NULL (no row) when there is no such statement; 0 for one without parameters.
_PARAMS_SQL = "SELECT cardinality(parameter_types) FROM pg_prepared_statements WHERE name = $1"
_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError)
_TIMEOUTS = (asyncio.TimeoutError, TimeoutError)  # distinct classes before Python 3.11
_WORD = re.compile(r"[A-Za-z_]+")


def plannable(text: str) -> bool:
    """Whether EXPLAIN can plan the text (SELECT, INSERT, ..., WITH), judged by its first word."""
    return _leading_word(text) in PLANNABLE


async def explain_statement(
    conn: asyncpg.Connection, text: str, *, server_version_num: int, timeout_s: float = 5.0
) -> Plan | str:
    """The generic plan of ``text`` (``$n`` placeholders allowed), or a one-line reason.

    The prepared statement is run as ``EXECUTE name(NULL, ...)``, one NULL per parameter:
    under ``force_generic_plan`` the plan is built without looking at the values, so the NULLs
    do not influence it. Every failure (a missing table, a parameter whose type cannot be
    inferred, a timeout, a lost connection) is returned as the reason, never raised; the
    connection is left as it was: nothing prepared, no transaction open, no setting changed.
    """
    if len(text) > MAX_TEXT:
        return f"the statement text is {len(text)} characters, over the {MAX_TEXT} perfgate sends"
    if not plannable(text):
        return f"not a plannable statement ({_leading_word(text) or 'no statement'})"
    if server_version_num < MIN_SERVER:
        return f"generic plans need PostgreSQL 12 or later, not {server_version_num // 10000}"
    name = f"perfgate_s_{secrets.token_hex(6)}"
    try:
        output = await _explain(conn, text.strip().rstrip(";"), name, timeout_s)
    except asyncpg.QueryCanceledError as exc:
        return _line(f"timed out after statement_timeout {timeout_s:g}s: {_message(exc)}")
    except _ERRORS as exc:
        return _line(f"the server refused to plan it: {_message(exc)}")
    except _TIMEOUTS:
        return f"the server did not answer within {timeout_s + CLIENT_GRACE_S:g}s"
    try:
        return parse_plan(output)
    except PlanError as exc:
        return _line(f"unreadable EXPLAIN output: {exc}")


async def _explain(conn: asyncpg.Connection, sql: str, name: str, timeout_s: float) -> object:
    """PREPARE, count its parameters, EXPLAIN EXECUTE; rolled back and deallocated always."""
    wait = timeout_s + CLIENT_GRACE_S
    local = {
        **PINNED_SETTINGS,  # as the query probe pins them, so plans compare across machines
        "transaction_read_only": "on",
        "plan_cache_mode": "force_generic_plan",
        "statement_timeout": f"{max(1, math.ceil(timeout_s * 1000))}ms",
    }
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.execute(_SET_LOCAL, list(local), list(local.values()), timeout=wait)
        await _once(conn, f"PREPARE {name} AS {sql}", wait)
        count = await conn.fetchval(_PARAMS_SQL, name, timeout=wait) or 0
        args = f"({', '.join(['NULL'] * count)})" if count else ""
        return await _once(conn, f"EXPLAIN (FORMAT JSON) EXECUTE {name}{args}", wait)
    finally:
        await _rollback(conn, tx)
        await _deallocate(conn, name)


async def _once(conn: asyncpg.Connection, sql: str, wait: float) -> object:
    """Run a one-off text through the extended protocol, outside asyncpg's statement cache."""
    stmt = await conn.prepare(sql, timeout=wait)
    return await stmt.fetchval(timeout=wait)


async def _rollback(conn: asyncpg.Connection, tx: asyncpg.transaction.Transaction) -> None:
    """Roll back; if that fails, drop the connection, which aborts the transaction server-side."""
    try:
        await tx.rollback()
    except (*_ERRORS, *_TIMEOUTS):
        conn.terminate()


async def _deallocate(conn: asyncpg.Connection, name: str) -> None:
    """DEALLOCATE, which a rollback does not do, if the PREPARE got that far (asked first: a
    failing DEALLOCATE would log an ERROR and abort a transaction the caller has open)."""
    with contextlib.suppress(*_ERRORS, *_TIMEOUTS):  # the connection is gone: so is the statement
        if await conn.fetchval(_PARAMS_SQL, name, timeout=CLIENT_GRACE_S) is not None:
            await conn.execute(f"DEALLOCATE {name}", timeout=CLIENT_GRACE_S)


def _leading_word(text: str) -> str:
    """The first keyword, upper-cased, after whitespace, comments and parentheses ("" if none)."""
    i = 0
    while i < len(text):
        if text[i].isspace() or text[i] == "(":
            i += 1
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
        elif text.startswith("/*", i):
            i = _comment_end(text, i)
        else:
            break
    word = _WORD.match(text, i)
    return word.group().upper() if word else ""


def _comment_end(text: str, i: int) -> int:
    """Where the ``/* */`` comment at ``i`` ends; comments nest in PostgreSQL, unlike in C."""
    depth = 0
    while i < len(text):
        if text.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif text.startswith("*/", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    return i


def _message(exc: BaseException) -> str:
    return str(getattr(exc, "message", None) or exc) or type(exc).__name__


def _line(reason: str) -> str:
    """One line of at most MAX_REASON characters."""
    flat = " ".join(reason.split())
    return flat if len(flat) <= MAX_REASON else flat[: MAX_REASON - 1] + "…"
