"""Read budgets.yaml (schema version 1) into a Config, collecting every problem with its line.

Errors read like ``budgets.yaml:14: endpoints.clients.budget.p95_ms: expected a duration like
'200ms', '0.2s' or a number of milliseconds, got 'fast'`` and are raised together as one
ConfigError, so a user fixes the whole file in one pass.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from perfgate.budgets.fields import (
    read_confidence,
    read_positive_ms,
    read_positive_size,
    read_regression,
)
from perfgate.budgets.model import (
    PLAN_RULES,
    RULE_LEVELS,
    SCHEMA_VERSION,
    Config,
    Database,
    Defaults,
    SetupCommand,
    SetupStep,
    SqlFile,
    Target,
)
from perfgate.budgets.placeholders import DSN, REQUEST, TARGET
from perfgate.budgets.scenarios import (
    endpoint_from_mapping,
    query_from_mapping,
    read_endpoint,
    read_login,
    read_query,
)
from perfgate.budgets.yamlsource import InvalidConfig, Path_, Source, compose, describe, environ
from perfgate.exceptions import ConfigError
from perfgate.system.launch import split_command

TOP_KEYS = ("version", "target", "database", "defaults", "endpoints", "queries")
TARGET_KEYS = ("command", "app", "base_url", "ready", "ready_timeout", "env", "headers", "login")
DATABASE_KEYS = ("dsn", "setup", "isolate")
DSN_VARIABLE = "PERFGATE_DSN"  # the server database.dsn defaults to
SETUP_COMMAND_KEYS = ("run", "env", "cwd", "timeout")
DEFAULT_KEYS = (
    "requests",
    "concurrency",
    "warmup",
    "timeout",
    "max_response_bytes",
    "runs",
    "statement_timeout",
    "confidence",
    "plan_rules",
    "seq_scan_min_pages",
    "regression",
)


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
    src = Source(filename=str(path), lines=lines, env=env, errors=[], root=path.parent)
    # Top-level keys starting with x- are the user's own, e.g. for YAML anchors.
    raw = {k: v for k, v in raw.items() if not str(k).startswith("x-")}
    top = src.mapping(raw, (), TOP_KEYS, required=("version",))
    if "version" in top and top["version"] != SCHEMA_VERSION:
        src.error(
            ("version",), f"expected 1 (the schema this perfgate reads), got {top['version']!r}"
        )
    defaults = _defaults(src, top.get("defaults"))
    target = _target(src, top.get("target"))
    database = _database(src, top.get("database"), path.parent)
    endpoints = _named(
        src,
        top.get("endpoints"),
        "endpoints",
        lambda n, v, p: read_endpoint(src, n, v, p, defaults),
    )
    queries = _named(
        src, top.get("queries"), "queries", lambda n, v, p: read_query(src, n, v, p, defaults)
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
        database=dataclasses.replace(database, enabled=database.enabled or bool(queries)),
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


def _defaults(src: Source, value: Any) -> Defaults:
    path: Path_ = ("defaults",)
    raw = src.mapping(value, path, DEFAULT_KEYS)
    d = Defaults()
    ints = {
        k: src.integer(
            raw[k], (*path, k), minimum=0 if k in ("warmup", "seq_scan_min_pages") else 1
        )
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
        timeout_ms=read_positive_ms(src, raw, "timeout", path, d.timeout_ms),
        max_response_bytes=read_positive_size(
            src, raw, "max_response_bytes", path, d.max_response_bytes
        ),
        runs=ints.get("runs") or d.runs,
        statement_timeout_ms=read_positive_ms(
            src, raw, "statement_timeout", path, d.statement_timeout_ms
        ),
        confidence=read_confidence(src, raw["confidence"], (*path, "confidence"), d.confidence)
        if "confidence" in raw
        else d.confidence,
        plan_rules=rules,
        seq_scan_min_pages=d.seq_scan_min_pages
        if ints.get("seq_scan_min_pages") is None
        else int(ints["seq_scan_min_pages"] or 0),
        regression=read_regression(src, raw.get("regression"), (*path, "regression"), d.regression),
    )


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
    allowed = TARGET if kind == "command" else frozenset()
    text = src.template(raw[kind], (*path, kind), allowed) or ""
    if kind == "command":
        try:
            split_command(text)
        except ValueError as exc:
            src.error((*path, kind), f"cannot split the command line: {exc}")
    if kind == "app" and text and ":" not in text:
        src.error((*path, "app"), f"expected 'module.path:attribute', got {text!r}")
    if kind == "base_url" and text and not text.startswith(("http://", "https://")):
        src.error((*path, "base_url"), f"expected an http:// or https:// URL, got {text!r}")
    ready = src.string(raw.get("ready", "/healthz"), (*path, "ready")) or "/healthz"
    if not ready.startswith("/") or not ready.isprintable():
        src.error((*path, "ready"), f"expected a path starting with '/', got {ready!r}")
    login = read_login(src, raw["login"], (*path, "login")) if "login" in raw else None
    src.has_login = login is not None
    return Target(
        kind=kind,
        value=text,
        ready=ready,
        ready_timeout_s=read_positive_ms(src, raw, "ready_timeout", path, 30_000.0) / 1000,
        env=src.template_map(raw.get("env"), (*path, "env"), TARGET),
        headers=src.template_map(raw.get("headers"), (*path, "headers"), REQUEST),
        login=login,
    )


def _database(src: Source, value: Any, root: Path) -> Database:
    path: Path_ = ("database",)
    raw = src.mapping(value, path, DATABASE_KEYS)
    if "dsn" in raw:
        dsn = src.string(raw["dsn"], (*path, "dsn")) if raw["dsn"] is not None else None
    else:  # not written: the PERFGATE_DSN of the environment, as the README's commands use it
        dsn = src.env.get(DSN_VARIABLE) or None
    if value is None:
        return Database(dsn=dsn)
    if dsn and not dsn.startswith(("postgres://", "postgresql://")):
        src.error((*path, "dsn"), "expected a URL like postgresql://user@host:5432/postgres")
    setup = raw.get("setup", [])
    if isinstance(setup, (str, dict)):
        setup = [setup]
    steps: list[SetupStep] = []
    if not isinstance(setup, list):
        src.error(
            (*path, "setup"), f"expected a list of SQL files and commands, got {describe(setup)}"
        )
        setup = []
    for i, item in enumerate(setup):
        step = _setup_step(src, item, (*path, "setup", i), root)
        if step is not None:
            steps.append(step)
    isolate = True
    if "isolate" in raw:
        isolate = bool(src.boolean(raw["isolate"], (*path, "isolate")))
    return Database(dsn=dsn or None, setup=tuple(steps), enabled=True, isolate=isolate)


def _setup_step(src: Source, item: Any, path: Path_, root: Path) -> SetupStep | None:
    """A SQL file (its path), or ``{run: COMMAND, env: ..., cwd: ..., timeout: ...}``."""
    if isinstance(item, dict):
        raw = src.mapping(item, path, SETUP_COMMAND_KEYS, required=("run",))
        command = src.template(raw["run"], (*path, "run"), DSN) if "run" in raw else None
        if command is None:
            return None
        try:
            split_command(command)
        except ValueError as exc:
            src.error((*path, "run"), f"cannot split the command line: {exc}")
        cwd = root
        if "cwd" in raw:
            name = src.string(raw["cwd"], (*path, "cwd")) or "."
            cwd = (root / name).resolve()
            if not cwd.is_dir():
                src.error((*path, "cwd"), f"directory not found: {name} (relative to {root})")
        return SetupCommand(
            command=command,
            env=src.template_map(raw.get("env"), (*path, "env"), DSN),
            cwd=cwd,
            timeout_s=read_positive_ms(src, raw, "timeout", path, 600_000.0) / 1000,
        )
    file_name = src.string(item, path)
    if file_name is None:
        return None
    file = (root / file_name).resolve()
    if not file.is_file():
        src.error(path, f"file not found: {file_name} (relative to {root})")
    return SqlFile(file)


__all__ = ["endpoint_from_mapping", "load_config", "parse_config", "query_from_mapping"]
