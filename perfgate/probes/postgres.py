"""The PostgreSQL query probe: repeated ``EXPLAIN (ANALYZE, BUFFERS)`` runs that change no data.

Protocol, per gated query: session settings that change plans are pinned (``jit = off``, no
parallel workers, an explicit ``plan_cache_mode``); one warm-up run, then ``runs`` measured
runs. Each run is its own transaction, always rolled back, so a DELETE or UPDATE measures the
same rows every time and leaves none changed; ``SET LOCAL statement_timeout`` bounds it.
Sequences advanced by an INSERT are not rolled back (PostgreSQL never rolls them back).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from perfgate.budgets.model import Query
from perfgate.budgets.setupsql import setup_sql_problem
from perfgate.exceptions import PlanError, QueryError
from perfgate.plan import Plan, parse_plan
from perfgate.probes.sqlparams import check_count, coerce_params, literal

# Pinned so a plan does not flip with the machine's core count or JIT thresholds.
PINNED_SETTINGS: Mapping[str, str] = {"jit": "off", "max_parallel_workers_per_gather": "0"}
# Recorded with every measurement (plus every enable_*): the settings that change plans.
PLANNER_SETTINGS = (
    "work_mem",
    "random_page_cost",
    "seq_page_cost",
    "effective_cache_size",
    "shared_buffers",
    "default_statistics_target",
    "jit",
    "max_parallel_workers_per_gather",
    "plan_cache_mode",
)
EXPLAIN_ANALYZE = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "
EXPLAIN_PLAN = "EXPLAIN (FORMAT JSON) "
# Time the client waits beyond statement_timeout before giving up on a silent server.
CLIENT_GRACE_S = 5.0

_SET_MANY = (
    "SELECT set_config(name, value, $3) FROM unnest($1::text[], $2::text[]) AS s(name, value)"
)
_SETTINGS_SQL = (
    "SELECT name, current_setting(name) FROM pg_settings "
    "WHERE name = ANY($1::text[]) OR name LIKE 'enable\\_%' ORDER BY name"
)
PAGES_SQL = (
    "SELECT c.relname, greatest(c.relpages, pg_relation_size(c.oid) "
    "/ current_setting('block_size')::bigint)::bigint "
    "FROM pg_class c WHERE c.relname = ANY($1::text[]) AND c.relkind IN ('r', 'm', 't') "
    "ORDER BY pg_table_is_visible(c.oid)"
)
_CONNECTION_ERRORS = (asyncpg.InterfaceError, OSError)
# Which transaction this is (its virtual id, and when it started), and the pinned settings.
_SNAPSHOT_SQL = (
    "SELECT (SELECT virtualtransaction FROM pg_locks WHERE pid = pg_backend_pid() "
    "AND locktype = 'virtualxid' LIMIT 1), now()::text, "
    "array(SELECT current_setting(n) FROM unnest($1::text[]) AS n)"
)


@dataclass(frozen=True, slots=True)
class QueryMeasurement:
    """What the probe saw for one query: the warm run's plan, and every run's timings."""

    name: str
    plan: Plan  # the last (warmest) run's plan: its buffers and rows are what is gated
    execution_ms: tuple[float, ...]
    planning_ms: tuple[float, ...]
    server_version: str
    settings: Mapping[str, str] = field(default_factory=dict)
    relation_pages: Mapping[str, int] = field(default_factory=dict)
    index_plan: Plan | None = None  # the re-plan with enable_seqscan = off (require_index)


async def planner_settings(conn: asyncpg.Connection) -> dict[str, str]:
    """The current values of the settings that change plans, e.g. {"work_mem": "4MB", ...}."""
    rows = await conn.fetch(_SETTINGS_SQL, list(PLANNER_SETTINGS))
    return {str(r[0]): str(r[1]) for r in rows}


class PostgresProbe:
    """The query probe: ``await PostgresProbe(dsn).measure(query)`` -> ``QueryMeasurement``.

    One connection per measurement; QueryError for anything that stops it.
    """

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn

    async def measure(self, query: Query) -> QueryMeasurement:
        try:
            conn = await asyncpg.connect(self._dsn, timeout=15)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            raise QueryError(f"cannot connect to the scratch database: {exc}") from exc
        try:
            return await measure_query(conn, query)
        finally:
            await conn.close()


async def measure_query(conn: asyncpg.Connection, query: Query) -> QueryMeasurement:
    """One warm-up and ``query.runs`` measured EXPLAIN ANALYZE runs, each rolled back.

    Raises QueryError (with the query's name and PostgreSQL's message) for anything that
    stops the measurement: bad SQL or parameters, a timeout, a lost connection.
    """
    if query.runs < 1:
        raise QueryError(f"query {query.name!r}: runs must be at least 1, got {query.runs}")
    for i, setup in enumerate(query.setup_sql):  # budgets.yaml checked these; a Query may not be
        problem = setup_sql_problem(setup)
        if problem:
            raise QueryError(f"query {query.name!r}: setup_sql[{i}]: {problem}")
    try:
        version = str(await conn.fetchval("SELECT current_setting('server_version')"))
        plans: list[Plan] = []
        settings: dict[str, str] = {}
        for i in range(query.runs + 1):  # run 0 is the warm-up
            last = i == query.runs
            plan, seen = await _explain(conn, query, analyze=True, record_settings=last)
            if i > 0:
                plans.append(plan)
            settings = seen or settings
        index_plan = None
        if query.require_index:
            index_plan, _ = await _explain(
                conn, query, analyze=False, overrides={"enable_seqscan": "off"}
            )
        await _vacuum_modified(conn, plans[-1])
        relations = sorted({n.relation for n in plans[-1].nodes() if n.relation})
        pages = {str(r[0]): int(r[1]) for r in await conn.fetch(PAGES_SQL, relations)}
    except _CONNECTION_ERRORS as exc:
        raise QueryError(f"query {query.name!r}: database connection failed: {exc}") from exc
    except asyncpg.PostgresError as exc:
        raise QueryError(f"query {query.name!r}: {_pg_message(exc)}") from exc
    return QueryMeasurement(
        name=query.name,
        plan=plans[-1],
        execution_ms=tuple(_timing(p.execution_ms, query, "Execution Time") for p in plans),
        planning_ms=tuple(_timing(p.planning_ms, query, "Planning Time") for p in plans),
        server_version=version,
        settings=settings,
        relation_pages=pages,
        index_plan=index_plan,
    )


# -- one run -----------------------------------------------------------------------------------


async def _explain(
    conn: asyncpg.Connection,
    query: Query,
    *,
    analyze: bool,
    record_settings: bool = False,
    overrides: Mapping[str, str] | None = None,
) -> tuple[Plan, dict[str, str] | None]:
    """One EXPLAIN in its own transaction, rolled back whatever the statement did."""
    timeout_s = query.statement_timeout_ms / 1000 + CLIENT_GRACE_S
    mode = "force_generic_plan" if query.generic_plan else "auto"
    local = {
        **PINNED_SETTINGS,
        "plan_cache_mode": mode,
        "statement_timeout": f"{max(1, math.ceil(query.statement_timeout_ms))}ms",
        **(overrides or {}),
    }
    prefix = EXPLAIN_ANALYZE if analyze else EXPLAIN_PLAN
    sql = query.sql.strip().rstrip(";").rstrip()
    prepared: str | None = None
    tx = conn.transaction()
    await tx.start()
    try:
        await _set(conn, local, local=True)
        pinned = await _snapshot(conn, local) if query.setup_sql else None
        for i, setup in enumerate(query.setup_sql):
            await _step(conn, query, setup, (), timeout_s, f"setup_sql[{i}]", 0)
            if pinned is not None:
                await _check_unchanged(conn, query, i, local, pinned)
        if query.generic_plan:
            prepared = f"perfgate_q_{secrets.token_hex(4)}"
            head = f"PREPARE {prepared} AS "
            await _step(conn, query, head + sql, (), timeout_s, None, len(head))
            types = await conn.fetchval(
                "SELECT parameter_types::text[] FROM pg_prepared_statements WHERE name = $1",
                prepared,
            )
            check_count(query, len(types or ()), len(query.params))
            literals = ", ".join(literal(query, i, p) for i, p in enumerate(query.params, 1))
            call = f"EXECUTE {prepared}({literals})" if literals else f"EXECUTE {prepared}"
            text = await _step(conn, query, prefix + call, (), timeout_s, "EXECUTE", None)
        else:
            text = await _step(
                conn, query, prefix + sql, query.params, timeout_s, None, len(prefix)
            )
        seen = await planner_settings(conn) if record_settings else None
        if prepared is not None:
            await conn.execute(f"DEALLOCATE {prepared}")
            prepared = None
    finally:
        await _rollback(conn, tx)
        if prepared is not None:  # PREPARE is not transactional: the rollback kept it
            await _deallocate(conn, prepared)
    try:
        return parse_plan(text), seen
    except PlanError as exc:
        raise QueryError(f"query {query.name!r}: unreadable EXPLAIN output: {exc}") from exc


async def _step(
    conn: asyncpg.Connection,
    query: Query,
    text: str,
    params: Sequence[Any],
    timeout_s: float,
    what: str | None,
    offset: int | None,
) -> Any:
    """Run one statement through the extended protocol, which refuses a second statement.

    ``offset`` is where the gated SQL starts in ``text``, to point an error at the user's SQL.
    """
    try:
        stmt = await conn.prepare(text, timeout=timeout_s)
        args = coerce_params(query, params, [t.name for t in stmt.get_parameters()])
        return await stmt.fetchval(*args, timeout=timeout_s)
    except asyncpg.QueryCanceledError as exc:
        where = f" in {what}" if what else ""
        raise QueryError(
            f"query {query.name!r}: timed out{where} after statement_timeout "
            f"{query.statement_timeout_ms:g}ms ({exc})"
        ) from exc
    except asyncpg.PostgresError as exc:
        where = f"{what}: " if what else ""
        source = text[offset:] if offset is not None else None
        raise QueryError(
            f"query {query.name!r}: {where}{_pg_message(exc, source, offset)}"
        ) from exc
    except (asyncio.TimeoutError, TimeoutError) as exc:
        raise QueryError(
            f"query {query.name!r}: the server did not answer within {timeout_s:g}s"
        ) from exc


async def _snapshot(
    conn: asyncpg.Connection, settings: Mapping[str, str]
) -> tuple[str | None, str, list[str]]:
    """The transaction's virtual id and start time, and the current values of ``settings``."""
    row = await conn.fetchrow(_SNAPSHOT_SQL, list(settings))
    if row is None:  # pragma: no cover - a SELECT without FROM returns one row
        raise QueryError("the transaction snapshot query returned nothing")
    return row[0], row[1], list(row[2])


async def _check_unchanged(
    conn: asyncpg.Connection,
    query: Query,
    index: int,
    settings: Mapping[str, str],
    before: tuple[str | None, str, list[str]],
) -> None:
    """Fail the run when setup_sql left the measurement's transaction or changed its settings.

    budgets.yaml refuses COMMIT, RESET ALL and SET of a pinned setting when it is read; this
    catches what no parser sees, such as ``SELECT set_config('statement_timeout', '0', false)``
    or a procedure that commits.
    """
    where = f"query {query.name!r}: setup_sql[{index}]"
    if not conn.is_in_transaction():
        raise QueryError(f"{where} ended the transaction the run is measured (and rolled back) in")
    after = await _snapshot(conn, settings)
    if after[:2] != before[:2]:
        raise QueryError(
            f"{where} ended the transaction the run is measured in and started another "
            "(COMMIT AND CHAIN?): what ran before it was committed, and perfgate's pinned "
            "settings were dropped"
        )
    for name, old, new in zip(settings, before[2], after[2], strict=True):
        if old != new:
            hint = " (set the query's statement_timeout key)" if name == "statement_timeout" else ""
            raise QueryError(
                f"{where} changed {name} from {old!r} to {new!r}; perfgate pins it for the run"
                + hint
            )


async def _rollback(conn: asyncpg.Connection, tx: Any) -> None:
    """Roll back; if that fails, drop the connection, which aborts the transaction server-side."""
    if conn.is_closed():
        return
    try:
        await tx.rollback()
    except (asyncpg.PostgresError, *_CONNECTION_ERRORS, asyncio.TimeoutError):
        conn.terminate()


async def _deallocate(conn: asyncpg.Connection, name: str) -> None:
    if conn.is_closed():
        return
    try:
        await conn.execute(f"DEALLOCATE {name}")
    except (asyncpg.PostgresError, *_CONNECTION_ERRORS):
        pass  # gone already, or the connection is; either way nothing is left to clean


async def _vacuum_modified(conn: asyncpg.Connection, plan: Plan) -> None:
    """VACUUM the tables a rolled-back INSERT, UPDATE or DELETE left dead row versions in.

    The rows are as they were, but the heap is not: each run's aborted versions stay until
    a vacuum, and a table they extended makes every later query read more buffers.
    """
    if conn.is_in_transaction():
        return  # VACUUM cannot run inside the caller's transaction
    targets = {n.relation for n in plan.nodes() if n.node_type == "ModifyTable" and n.relation}
    for relation in sorted(targets):
        # Not the owner, say: the measurement stands, only later buffers may drift.
        with contextlib.suppress(asyncpg.PostgresError):
            await conn.execute(f'VACUUM "{relation.replace(chr(34), chr(34) * 2)}"')


async def _set(conn: asyncpg.Connection, values: Mapping[str, str], *, local: bool) -> None:
    await conn.execute(_SET_MANY, list(values), list(values.values()), local)


def _timing(value: float | None, query: Query, key: str) -> float:
    if value is None:
        raise QueryError(f"query {query.name!r}: EXPLAIN ANALYZE output has no {key}")
    return float(value)


def _pg_message(
    exc: asyncpg.PostgresError, sql: str | None = None, offset: int | None = None
) -> str:
    """PostgreSQL's message, where in the SQL it points, and its detail and hint."""
    text = str(getattr(exc, "message", None) or exc)
    position = getattr(exc, "position", None)
    if sql is not None and offset is not None and position and str(position).isdigit():
        index = int(position) - 1 - offset
        if 0 <= index <= len(sql):
            line_no = sql.count("\n", 0, index) + 1
            start = sql.rfind("\n", 0, index) + 1
            end = sql.find("\n", index)
            line = sql[start : end if end >= 0 else len(sql)].strip()
            text += f" (line {line_no}, column {index - start + 1} of the SQL: {line!r})"
    if "multiple commands" in text:
        text += " (a gated query is a single statement)"
    for label in ("detail", "hint"):
        extra = getattr(exc, label, None)
        if extra:
            text += f"; {label}: {extra}"
    return text
