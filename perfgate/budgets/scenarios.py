"""Read the named entries of budgets.yaml: endpoints and queries (also when given in test code)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from perfgate.budgets.checks import nul_problem, request_path_problem, sql_file_problem
from perfgate.budgets.fields import (
    read_count,
    read_headers,
    read_limit,
    read_n_plus_one,
    read_positive_ms,
    read_positive_size,
    read_regression,
)
from perfgate.budgets.jsonbody import json_body
from perfgate.budgets.model import (
    ENDPOINT_BUDGET_KEYS,
    METHODS,
    QUERY_BUDGET_KEYS,
    Defaults,
    Endpoint,
    Login,
    Query,
    QueryBudget,
    Request,
)
from perfgate.budgets.namedsql import NamedSqlError, named_parameters, read_named_query
from perfgate.budgets.placeholders import PER_REQUEST, REQUEST
from perfgate.budgets.setupsql import setup_sql_problem
from perfgate.budgets.yamlsource import InvalidConfig, Path_, Source, describe, environ
from perfgate.exceptions import ConfigError

ENDPOINT_KEYS = (
    "request",
    "headers",
    "json",
    "body",
    "expect_status",
    "requests",
    "concurrency",
    "warmup",
    "timeout",
    "max_response_bytes",
    "budget",
    "regression",
    "db_probes",
    "n_plus_one",
    "n_plus_one_repeats",
)
LOGIN_KEYS = ("request", "headers", "json", "body", "expect_status")
QUERY_KEYS = (
    "sql",
    "sql_file",
    "name",
    "params",
    "runs",
    "setup_sql",
    "require_index",
    "generic_plan",
    "statement_timeout",
    "budget",
    "regression",
)


def read_request(
    src: Source, raw: dict[str, Any], path: Path_, allowed: frozenset[str]
) -> Request | None:
    """What to send: method and path, headers, a json or raw body, and the accepted statuses."""
    if "request" not in raw:
        return None
    request = src.template(raw["request"], (*path, "request"), allowed)
    if request is None:
        return None
    method, _, target = request.strip().partition(" ")
    method = method.upper()
    target = target.strip()
    if method not in METHODS or not target.startswith("/") or not target.isprintable():
        src.error(
            (*path, "request"),
            f"expected 'METHOD /path' such as 'GET /api/clients?supplier_id=7', got {request!r}",
        )
        return None
    problem = request_path_problem(target)
    if problem:
        src.error((*path, "request"), problem)
        return None
    if "json" in raw and "body" in raw:
        src.error(path, "set json or body, not both")
    body = src.template(raw["body"], (*path, "body"), allowed) if "body" in raw else None
    expect = None
    if "expect_status" in raw:
        statuses = (
            raw["expect_status"]
            if isinstance(raw["expect_status"], list)
            else [raw["expect_status"]]
        )
        codes = []
        for i, code in enumerate(statuses):
            if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
                src.error(
                    (*path, "expect_status", i),
                    f"expected an HTTP status 100-599, got {describe(code)}",
                )
            else:
                codes.append(code)
        expect = frozenset(codes)
    return Request(
        method=method,
        path=target,
        headers=read_headers(src, raw.get("headers"), (*path, "headers"), allowed),
        json=json_body(src, raw.get("json"), (*path, "json"), allowed),
        body=body,
        expect_status=expect,
    )


def _requesting(src: Source, value: Any, path: Path_, keys: tuple[str, ...]) -> dict[str, Any]:
    """The mapping of something that sends a request; a string is just its request line."""
    if isinstance(value, str):
        value = {"request": value}
    return src.mapping(value, path, keys, required=("request",))


def read_login(src: Source, value: Any, path: Path_) -> Login | None:
    """target.login: the request that logs in once per target, before any endpoint."""
    request = read_request(src, _requesting(src, value, path, LOGIN_KEYS), path, PER_REQUEST)
    if request is None:
        return None
    return Login(
        method=request.method,
        path=request.path,
        headers=request.headers,
        json=request.json,
        body=request.body,
        expect_status=request.expect_status,
        line=src.lines.get(path),
    )


def read_endpoint(src: Source, name: str, value: Any, path: Path_, d: Defaults) -> Endpoint | None:
    raw = _requesting(src, value, path, ENDPOINT_KEYS)
    request = read_request(src, raw, path, REQUEST)
    if request is None:
        return None
    budget: dict[str, float] = {}
    for key, item in src.mapping(
        raw.get("budget"), (*path, "budget"), ENDPOINT_BUDGET_KEYS
    ).items():
        parsed = read_limit(src, ENDPOINT_BUDGET_KEYS[key], item, (*path, "budget", key))
        if parsed is not None:
            budget[key] = parsed
    counts = {
        k: read_count(src, raw[k], (*path, k), {"warmup": 0, "db_probes": 0}.get(k, 1))
        for k in ("requests", "concurrency", "warmup", "db_probes")
        if k in raw
    }
    n_plus_one, repeats = read_n_plus_one(src, raw, path, d.n_plus_one, d.n_plus_one_repeats)
    return Endpoint(
        name=name,
        method=request.method,
        path=request.path,
        headers=request.headers,
        json=request.json,
        body=request.body,
        expect_status=request.expect_status,
        requests=counts.get("requests") or d.requests,
        concurrency=counts.get("concurrency") or d.concurrency,
        warmup=d.warmup if counts.get("warmup") is None else int(counts["warmup"] or 0),
        timeout_ms=read_positive_ms(src, raw, "timeout", path, d.timeout_ms),
        max_response_bytes=read_positive_size(
            src, raw, "max_response_bytes", path, d.max_response_bytes
        ),
        budget=budget,
        regression=read_regression(src, raw.get("regression"), (*path, "regression"), d.regression),
        db_probes=d.db_probes if counts.get("db_probes") is None else int(counts["db_probes"] or 0),
        n_plus_one=n_plus_one,
        n_plus_one_repeats=repeats,
        line=src.lines.get(path),
    )


def _query_sql(src: Source, raw: dict[str, Any], path: Path_) -> str | None:
    """The SQL of a query: written inline (``sql``), or read from the app's file (``sql_file``)."""
    if ("sql" in raw) == ("sql_file" in raw):
        src.error(path, "set exactly one of sql or sql_file")
        return None
    if "name" in raw and "sql_file" not in raw:
        src.error((*path, "name"), "name picks a query in a sql_file; set sql_file too")
    if "sql" in raw:
        sql = src.string(raw["sql"], (*path, "sql"), interpolate_env=False)
        problem = None if sql is None else _sql_problem(sql)
        if problem:
            src.error((*path, "sql"), problem)
            return None
        return sql
    file = src.string(raw["sql_file"], (*path, "sql_file"))
    name = src.string(raw["name"], (*path, "name")) if "name" in raw else None
    if file is None:
        return None
    problem = nul_problem(file) or sql_file_problem(src.root, file)
    if problem:
        src.error((*path, "sql_file"), problem)
        return None
    try:
        sql, _ = read_named_query((src.root / file).resolve(), name)
    except NamedSqlError as exc:
        src.error((*path, "name" if "name" in raw else "sql_file"), str(exc))
        return None
    problem = _sql_problem(sql)
    if problem:
        src.error((*path, "name" if "name" in raw else "sql_file"), f"{file}: {problem}")
        return None
    return sql


def _sql_problem(sql: str) -> str | None:
    if not sql.strip():
        return "expected a SQL statement"
    return nul_problem(sql)


def _setup_sql(src: Source, value: Any, path: Path_) -> tuple[str, ...]:
    """setup_sql: statements as written (SQL is not interpolated) that keep the transaction."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        src.error(path, f"expected a list of SQL statements, got {describe(value)}")
        return ()
    out = []
    for i, item in enumerate(value):
        sql = src.string(item, (*path, i), interpolate_env=False)
        problem = None if sql is None else (_sql_problem(sql) or setup_sql_problem(sql))
        if problem:
            src.error((*path, i), problem)
        elif sql is not None:
            out.append(sql)
    return tuple(out)


def _query_params(
    src: Source, sql: str, value: Any, path: Path_
) -> tuple[str, tuple[Any, ...]] | None:
    """The SQL with ``$n`` parameters, and their values: a list, or a mapping for ``:name``."""
    try:
        positional, named = named_parameters(sql)
    except NamedSqlError as exc:
        src.error(path[:-1], str(exc))
        return None
    if isinstance(value, dict):
        if not named:
            src.error(path, "a mapping of parameters needs :name parameters in the SQL")
            return None
        missing = [n for n in named if n not in value]
        extra = sorted(str(k) for k in value if k not in named)
        if missing:
            src.error(path, f"no value for :{', :'.join(missing)}")
        if extra:
            src.error(path, f"the SQL has no parameter :{', :'.join(extra)}")
        _check_params(src, value, path)
        return positional, tuple(value.get(n) for n in named)
    if not isinstance(value, list):
        src.error(path, f"expected a list of parameters for $1, $2, ..., got {describe(value)}")
        return None
    if named:
        src.error(
            path,
            f"the SQL uses named parameters (:{', :'.join(named)}): give params as a mapping, "
            f"e.g. {{{named[0]}: ...}}",
        )
        return None
    _check_params(src, dict(enumerate(value)), path)
    return sql, tuple(value)


def _check_params(src: Source, values: Mapping[Any, Any], path: Path_) -> None:
    """Text that PostgreSQL cannot hold (a NUL character), anywhere in a parameter."""
    for key, value in values.items():
        texts = value if isinstance(value, list) else [value]
        if any(isinstance(t, str) and nul_problem(t) for t in texts):
            src.error(
                (*path, key if isinstance(key, int) else str(key)),
                "PostgreSQL text cannot hold a NUL character (\\0)",
            )


def read_query(src: Source, name: str, value: Any, path: Path_, d: Defaults) -> Query | None:
    raw = src.mapping(value, path, QUERY_KEYS)
    sql = _query_sql(src, raw, path)
    if sql is None:
        return None
    bound = _query_params(src, sql, raw.get("params", []), (*path, "params"))
    sql, params = bound if bound is not None else (sql, ())
    limits: dict[str, float] = {}
    budget_raw = src.mapping(
        raw.get("budget"), (*path, "budget"), (*QUERY_BUDGET_KEYS, "no_seq_scan", "forbid")
    )
    for key, item in budget_raw.items():
        if key in QUERY_BUDGET_KEYS:
            parsed = read_limit(src, QUERY_BUDGET_KEYS[key], item, (*path, "budget", key))
            if parsed is not None:
                limits[key] = parsed
    no_seq = False
    if "no_seq_scan" in budget_raw:
        no_seq = bool(src.boolean(budget_raw["no_seq_scan"], (*path, "budget", "no_seq_scan")))
    forbid = (
        src.string_list(budget_raw["forbid"], (*path, "budget", "forbid"))
        if "forbid" in budget_raw
        else ()
    )
    flags = {
        k: bool(src.boolean(raw[k], (*path, k)))
        for k in ("require_index", "generic_plan")
        if k in raw
    }
    runs = read_count(src, raw["runs"], (*path, "runs"), 1) if "runs" in raw else None
    return Query(
        name=name,
        sql=sql,
        params=params,
        runs=runs or d.runs,
        setup_sql=_setup_sql(src, raw["setup_sql"], (*path, "setup_sql"))
        if "setup_sql" in raw
        else (),
        require_index=flags.get("require_index", False),
        generic_plan=flags.get("generic_plan", False),
        statement_timeout_ms=read_positive_ms(
            src, raw, "statement_timeout", path, d.statement_timeout_ms
        ),
        budget=QueryBudget(limits=limits, no_seq_scan=no_seq, forbid=forbid),
        regression=read_regression(src, raw.get("regression"), (*path, "regression"), d.regression),
        line=src.lines.get(path),
    )


def endpoint_from_mapping(
    name: str, raw: Mapping[str, Any], defaults: Defaults, *, origin: str, has_login: bool = False
) -> Endpoint:
    """An endpoint defined in test code (the fixture), validated like a budgets-file entry."""
    src = Source(filename=origin, lines={}, env=environ(), errors=[], has_login=has_login)
    endpoint = read_endpoint(src, name, dict(raw), (name,), defaults)
    if src.errors or endpoint is None:
        raise InvalidConfig(src.errors or [ConfigError("invalid endpoint", path=origin)])
    return endpoint


def query_from_mapping(
    name: str, raw: Mapping[str, Any], defaults: Defaults, *, origin: str, root: Path
) -> Query:
    """A query defined in test code (the fixture), validated like a budgets-file entry."""
    src = Source(filename=origin, lines={}, env=environ(), errors=[], root=root)
    query = read_query(src, name, dict(raw), (name,), defaults)
    if src.errors or query is None:
        raise InvalidConfig(src.errors or [ConfigError("invalid query", path=origin)])
    return query
