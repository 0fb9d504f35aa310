"""Read the named entries of budgets.yaml: endpoints and queries (also when given in test code)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from perfgate.config import (
    ENDPOINT_BUDGET_KEYS,
    METHODS,
    QUERY_BUDGET_KEYS,
    Defaults,
    Endpoint,
    Query,
    QueryBudget,
)
from perfgate.exceptions import ConfigError
from perfgate.fields import read_limit, read_positive_ms, read_regression
from perfgate.yamlsource import InvalidConfig, Path_, Source, describe, environ

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
    "budget",
    "regression",
)
QUERY_KEYS = (
    "sql",
    "params",
    "runs",
    "setup_sql",
    "require_index",
    "generic_plan",
    "statement_timeout",
    "budget",
    "regression",
)


def read_endpoint(src: Source, name: str, value: Any, path: Path_, d: Defaults) -> Endpoint | None:
    if isinstance(value, str):
        value = {"request": value}
    raw = src.mapping(value, path, ENDPOINT_KEYS, required=("request",))
    if "request" not in raw:
        return None
    request = src.string(raw["request"], (*path, "request"))
    if request is None:
        return None
    method, _, target = request.strip().partition(" ")
    method = method.upper()
    target = target.strip()
    if method not in METHODS or not target.startswith("/"):
        src.error(
            (*path, "request"),
            f"expected 'METHOD /path' such as 'GET /api/clients?supplier_id=7', got {request!r}",
        )
        return None
    if "json" in raw and "body" in raw:
        src.error(path, "set json or body, not both")
    body = src.string(raw["body"], (*path, "body")) if "body" in raw else None
    budget: dict[str, float] = {}
    for key, item in src.mapping(
        raw.get("budget"), (*path, "budget"), ENDPOINT_BUDGET_KEYS
    ).items():
        parsed = read_limit(src, ENDPOINT_BUDGET_KEYS[key], item, (*path, "budget", key))
        if parsed is not None:
            budget[key] = parsed
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
    counts = {
        k: src.integer(raw[k], (*path, k), minimum=0 if k == "warmup" else 1)
        for k in ("requests", "concurrency", "warmup")
        if k in raw
    }
    return Endpoint(
        name=name,
        method=method,
        path=target,
        headers=src.string_map(raw.get("headers"), (*path, "headers")),
        json=_interpolate_json(src, raw.get("json"), (*path, "json")),
        body=body,
        expect_status=expect,
        requests=counts.get("requests") or d.requests,
        concurrency=counts.get("concurrency") or d.concurrency,
        warmup=d.warmup if counts.get("warmup") is None else int(counts["warmup"] or 0),
        timeout_ms=read_positive_ms(src, raw, "timeout", path, d.timeout_ms),
        budget=budget,
        regression=read_regression(src, raw.get("regression"), (*path, "regression"), d.regression),
        line=src.lines.get(path),
    )


def _interpolate_json(src: Source, value: Any, path: Path_) -> Any:
    if isinstance(value, str):
        return src.string(value, path)
    if isinstance(value, list):
        return [_interpolate_json(src, v, (*path, i)) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _interpolate_json(src, v, (*path, str(k))) for k, v in value.items()}
    return value


def read_query(src: Source, name: str, value: Any, path: Path_, d: Defaults) -> Query | None:
    raw = src.mapping(value, path, QUERY_KEYS, required=("sql",))
    sql = src.string(raw["sql"], (*path, "sql"), interpolate_env=False) if "sql" in raw else None
    if not sql or not sql.strip():
        if "sql" in raw:
            src.error((*path, "sql"), "expected a SQL statement")
        return None
    params = raw.get("params", [])
    if not isinstance(params, list):
        src.error(
            (*path, "params"),
            f"expected a list of parameters for $1, $2, ..., got {describe(params)}",
        )
        params = []
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
    runs = src.integer(raw["runs"], (*path, "runs"), minimum=1) if "runs" in raw else None
    return Query(
        name=name,
        sql=sql,
        params=tuple(params),
        runs=runs or d.runs,
        setup_sql=src.string_list(raw["setup_sql"], (*path, "setup_sql"))
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
    name: str, raw: Mapping[str, Any], defaults: Defaults, *, origin: str
) -> Endpoint:
    """An endpoint defined in test code (the fixture), validated like a budgets-file entry."""
    src = Source(filename=origin, lines={}, env=environ(), errors=[])
    endpoint = read_endpoint(src, name, dict(raw), (name,), defaults)
    if src.errors or endpoint is None:
        raise InvalidConfig(src.errors or [ConfigError("invalid endpoint", path=origin)])
    return endpoint


def query_from_mapping(
    name: str, raw: Mapping[str, Any], defaults: Defaults, *, origin: str
) -> Query:
    """A query defined in test code (the fixture), validated like a budgets-file entry."""
    src = Source(filename=origin, lines={}, env=environ(), errors=[])
    query = read_query(src, name, dict(raw), (name,), defaults)
    if src.errors or query is None:
        raise InvalidConfig(src.errors or [ConfigError("invalid query", path=origin)])
    return query
