"""Read budgets.yaml (schema version 1) into a Config, collecting every problem with its line.

Errors read like ``budgets.yaml:14: endpoints.clients.budget.p95_ms: expected a duration like
'200ms', '0.2s' or a number of milliseconds, got 'fast'`` and are raised together as one
ConfigError, so a user fixes the whole file in one pass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from perfgate.config import (
    ENDPOINT_BUDGET_KEYS,
    METHODS,
    PLAN_RULES,
    QUERY_BUDGET_KEYS,
    REGRESSION_METRICS,
    RULE_LEVELS,
    SCHEMA_VERSION,
    Config,
    Database,
    Defaults,
    Endpoint,
    Query,
    QueryBudget,
    RegressionPolicy,
    Target,
)
from perfgate.exceptions import ConfigError
from perfgate.units import parse_duration_ms, parse_ratio, parse_size_bytes
from perfgate.yamlsource import InvalidConfig, Path_, Source, compose, describe, environ

TOP_KEYS = ("version", "target", "database", "defaults", "endpoints", "queries")
TARGET_KEYS = ("command", "app", "base_url", "ready", "ready_timeout", "env", "headers")
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
DEFAULT_KEYS = (
    "requests",
    "concurrency",
    "warmup",
    "timeout",
    "runs",
    "statement_timeout",
    "confidence",
    "plan_rules",
    "seq_scan_min_pages",
    "regression",
)
REGRESSION_KEYS = ("metric", "threshold", "confidence", "max_rounds", "fail_on_inconclusive")


def load_config(path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a budgets file; raise one ConfigError listing every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            "budgets file not found (pass --perfgate-budgets PATH or set perfgate_budgets in "
            "the pytest ini file)",
            path=str(path),
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the budgets file: {exc}", path=str(path)) from None
    return parse_config(text, path, env if env is not None else environ())


def parse_config(text: str, path: Path, env: Mapping[str, str]) -> Config:
    """Validate budgets-file text (see load_config)."""
    raw, lines = compose(text, str(path))
    if raw is None:
        raise ConfigError("the file is empty; it needs at least 'version: 1'", path=str(path))
    if not isinstance(raw, dict):
        raise ConfigError(
            f"expected a mapping at the top level, got {describe(raw)}", path=str(path)
        )
    src = Source(filename=str(path), lines=lines, env=env, errors=[])
    top = src.mapping(raw, (), TOP_KEYS, required=("version",))
    if "version" in top and top["version"] != SCHEMA_VERSION:
        src.error(
            ("version",), f"expected 1 (the schema this perfgate reads), got {top['version']!r}"
        )
    defaults = _defaults(src, top.get("defaults"))
    target = _target(src, top.get("target"))
    database = _database(src, top.get("database"), path.parent)
    endpoints = _named(
        src, top.get("endpoints"), "endpoints", lambda n, v, p: _endpoint(src, n, v, p, defaults)
    )
    queries = _named(
        src, top.get("queries"), "queries", lambda n, v, p: _query(src, n, v, p, defaults)
    )
    endpoint_names = {e.name for e in endpoints}
    for q in queries:
        if q.name in endpoint_names:
            src.error(
                ("queries", q.name), "an endpoint has the same name; item names must be unique"
            )
    if endpoints and target.kind == "none":
        src.error(("target",), "endpoints need a target: set one of command, app or base_url")
    if src.errors:
        raise InvalidConfig(src.errors)
    return Config(
        path=path,
        target=target,
        database=Database(
            dsn=database.dsn, setup=database.setup, enabled=database.enabled or bool(queries)
        ),
        defaults=defaults,
        endpoints=tuple(endpoints),
        queries=tuple(queries),
        secrets=tuple(src.secrets),
    )


def _named(
    src: Source, value: Any, section: str, build: Callable[[str, Any, Path_], Any]
) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, dict):
        src.error((section,), f"expected a mapping of names to definitions, got {describe(value)}")
        return []
    out = []
    for name, item in value.items():
        name = str(name)
        if not name or any(c.isspace() for c in name) or "::" in name or "/" in name:
            src.error((section, name), "a name must be non-empty, without spaces, '/' or '::'")
            continue
        built = build(name, item, (section, name))
        if built is not None:
            out.append(built)
    return out


# What a regression policy may compare, per place it is written: an endpoint compares a latency
# quantile or the mean; a query its median ("execution") or mean execution time; defaults apply
# to both (a quantile in defaults means the median for queries).
_METRICS_FOR = {
    "defaults": REGRESSION_METRICS,
    "endpoints": ("p50", "p90", "p95", "p99", "mean"),
    "queries": ("execution", "mean"),
}


def _regression(src: Source, value: Any, path: Path_, base: RegressionPolicy) -> RegressionPolicy:
    raw = src.mapping(value, path, REGRESSION_KEYS)
    metric, threshold, confidence = base.metric, base.threshold, base.confidence
    max_rounds, fail_inconclusive = base.max_rounds, base.fail_on_inconclusive
    if "metric" in raw:
        m = src.string(raw["metric"], (*path, "metric"))
        allowed = _METRICS_FOR.get(str(path[0]), REGRESSION_METRICS)
        if m is not None and m not in allowed:
            src.error((*path, "metric"), f"expected one of {', '.join(allowed)} here, got {m!r}")
        elif m is not None:
            metric = m
    if "threshold" in raw:
        t = src.convert(raw["threshold"], (*path, "threshold"), parse_ratio)
        if t is not None and not 0 < t < 10:
            src.error(
                (*path, "threshold"),
                f"expected a relative change like '10%' (0 < t < 1000%), got {t}",
            )
        elif t is not None:
            threshold = t
    if "confidence" in raw:
        confidence = _confidence(src, raw["confidence"], (*path, "confidence"), confidence)
    if "max_rounds" in raw:
        max_rounds = src.integer(raw["max_rounds"], (*path, "max_rounds"), minimum=1) or max_rounds
    if "fail_on_inconclusive" in raw:
        b = src.boolean(raw["fail_on_inconclusive"], (*path, "fail_on_inconclusive"))
        fail_inconclusive = fail_inconclusive if b is None else b
    return RegressionPolicy(metric, threshold, confidence, max_rounds, fail_inconclusive)


def _confidence(src: Source, value: Any, path: Path_, fallback: float) -> float:
    c = src.convert(value, path, parse_ratio)
    if c is None:
        return fallback
    if not 0.5 <= c < 1:
        src.error(
            path, f"expected a confidence level between 0.5 and 1 (e.g. 0.95 or '99%'), got {c}"
        )
        return fallback
    return c


def _defaults(src: Source, value: Any) -> Defaults:
    path: Path_ = ("defaults",)
    raw = src.mapping(value, path, DEFAULT_KEYS)
    d = Defaults()
    ints = {
        k: src.integer(raw[k], (*path, k), minimum=1 if k != "warmup" else 0)
        for k in ("requests", "concurrency", "warmup", "runs", "seq_scan_min_pages")
        if k in raw
    }
    rules = dict(d.plan_rules)
    if "plan_rules" in raw:
        for rule, level in src.mapping(
            raw["plan_rules"], (*path, "plan_rules"), PLAN_RULES
        ).items():
            text = src.string(level, (*path, "plan_rules", rule))
            if text is not None and text not in RULE_LEVELS:
                src.error(
                    (*path, "plan_rules", rule),
                    f"expected one of {', '.join(RULE_LEVELS)}, got {text!r}",
                )
            elif text is not None:
                rules[rule] = text
    return Defaults(
        requests=ints.get("requests") or d.requests,
        concurrency=ints.get("concurrency") or d.concurrency,
        warmup=d.warmup if ints.get("warmup") is None else int(ints["warmup"] or 0),
        timeout_ms=_positive_ms(src, raw, "timeout", path, d.timeout_ms),
        runs=ints.get("runs") or d.runs,
        statement_timeout_ms=_positive_ms(
            src, raw, "statement_timeout", path, d.statement_timeout_ms
        ),
        confidence=_confidence(src, raw["confidence"], (*path, "confidence"), d.confidence)
        if "confidence" in raw
        else d.confidence,
        plan_rules=rules,
        seq_scan_min_pages=ints.get("seq_scan_min_pages") or d.seq_scan_min_pages,
        regression=_regression(src, raw.get("regression"), (*path, "regression"), d.regression),
    )


def _positive_ms(
    src: Source, raw: Mapping[str, Any], key: str, path: Path_, fallback: float
) -> float:
    if key not in raw:
        return fallback
    ms = src.convert(raw[key], (*path, key), parse_duration_ms)
    if ms is not None and ms <= 0:
        src.error((*path, key), f"expected a positive duration, got {raw[key]!r}")
        return fallback
    return fallback if ms is None else ms


def _target(src: Source, value: Any) -> Target:
    path: Path_ = ("target",)
    if value is None:
        return Target(kind="none", value="")
    raw = src.mapping(value, path, TARGET_KEYS)
    kinds = [k for k in ("command", "app", "base_url") if k in raw]
    if len(kinds) != 1:
        got = "none of them" if not kinds else " and ".join(kinds)
        src.error(path, f"expected exactly one of command, app or base_url, got {got}")
        return Target(kind="none", value="")
    kind = kinds[0]
    text = src.string(raw[kind], (*path, kind)) or ""
    if kind == "app" and text and ":" not in text:
        src.error((*path, "app"), f"expected 'module.path:attribute', got {text!r}")
    if kind == "base_url" and text and not text.startswith(("http://", "https://")):
        src.error((*path, "base_url"), f"expected an http:// or https:// URL, got {text!r}")
    ready = src.string(raw.get("ready", "/healthz"), (*path, "ready")) or "/healthz"
    if not ready.startswith("/"):
        src.error((*path, "ready"), f"expected a path starting with '/', got {ready!r}")
    return Target(
        kind=kind,
        value=text,
        ready=ready,
        ready_timeout_s=_positive_ms(src, raw, "ready_timeout", path, 30_000.0) / 1000,
        env=src.string_map(raw.get("env"), (*path, "env")),
        headers=src.string_map(raw.get("headers"), (*path, "headers")),
    )


def _database(src: Source, value: Any, root: Path) -> Database:
    path: Path_ = ("database",)
    if value is None:
        return Database()
    raw = src.mapping(value, path, ("dsn", "setup"))
    dsn = src.string(raw["dsn"], (*path, "dsn")) if raw.get("dsn") is not None else None
    if dsn and not dsn.startswith(("postgres://", "postgresql://")):
        src.error((*path, "dsn"), "expected a URL like postgresql://user@host:5432/postgres")
    files = []
    for i, name in enumerate(src.string_list(raw.get("setup", []), (*path, "setup"))):
        file = (root / name).resolve()
        if not file.is_file():
            src.error((*path, "setup", i), f"file not found: {name} (relative to {root})")
        files.append(file)
    return Database(dsn=dsn or None, setup=tuple(files), enabled=True)


def _budget_value(src: Source, kind: str, value: Any, path: Path_) -> float | None:
    parsed: float | None
    if kind == "duration":
        parsed = src.convert(value, path, parse_duration_ms)
    elif kind == "size":
        parsed = src.convert(value, path, parse_size_bytes)
    elif kind == "ratio":
        parsed = src.convert(value, path, parse_ratio)
        if parsed is not None and not 0 <= parsed <= 1:
            src.error(path, f"expected a ratio between 0 and 1 (or 0% to 100%), got {value!r}")
            return None
    elif kind == "count":
        parsed = src.integer(value, path, minimum=0)
    else:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            src.error(path, f"expected a number, got {describe(value)}")
            return None
        parsed = float(value)
    if parsed is not None and parsed < 0:
        src.error(path, f"expected a value >= 0, got {value!r}")
        return None
    if parsed is not None and kind in ("duration", "number") and parsed == 0:
        src.error(path, f"a limit of 0 can never be met; expected a positive value, got {value!r}")
        return None
    return parsed


def _endpoint(src: Source, name: str, value: Any, path: Path_, d: Defaults) -> Endpoint | None:
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
        parsed = _budget_value(src, ENDPOINT_BUDGET_KEYS[key], item, (*path, "budget", key))
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
        timeout_ms=_positive_ms(src, raw, "timeout", path, d.timeout_ms),
        budget=budget,
        regression=_regression(src, raw.get("regression"), (*path, "regression"), d.regression),
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


def _query(src: Source, name: str, value: Any, path: Path_, d: Defaults) -> Query | None:
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
            parsed = _budget_value(src, QUERY_BUDGET_KEYS[key], item, (*path, "budget", key))
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
        statement_timeout_ms=_positive_ms(
            src, raw, "statement_timeout", path, d.statement_timeout_ms
        ),
        budget=QueryBudget(limits=limits, no_seq_scan=no_seq, forbid=forbid),
        regression=_regression(src, raw.get("regression"), (*path, "regression"), d.regression),
        line=src.lines.get(path),
    )


def endpoint_from_mapping(
    name: str, raw: Mapping[str, Any], defaults: Defaults, *, origin: str
) -> Endpoint:
    """An endpoint defined in test code (the fixture), validated like a budgets-file entry."""
    src = Source(filename=origin, lines={}, env=environ(), errors=[])
    endpoint = _endpoint(src, name, dict(raw), (name,), defaults)
    if src.errors or endpoint is None:
        raise InvalidConfig(src.errors or [ConfigError("invalid endpoint", path=origin)])
    return endpoint


def query_from_mapping(
    name: str, raw: Mapping[str, Any], defaults: Defaults, *, origin: str
) -> Query:
    """A query defined in test code (the fixture), validated like a budgets-file entry."""
    src = Source(filename=origin, lines={}, env=environ(), errors=[])
    query = _query(src, name, dict(raw), (name,), defaults)
    if src.errors or query is None:
        raise InvalidConfig(src.errors or [ConfigError("invalid query", path=origin)])
    return query
