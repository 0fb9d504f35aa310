"""Read budgets.yaml (schema version 1) into a Config, collecting every problem with its line.

Errors read like ``budgets.yaml:14: endpoints.clients.budget.p95_ms: expected a duration like
'200ms', '0.2s' or a number of milliseconds, got 'fast'`` and are raised together as one
ConfigError, so a user fixes the whole file in one pass.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from perfgate.budgets.checks import (
    app_problem,
    base_url_problem,
    dsn_problem,
    nul_problem,
    request_path_problem,
    sql_file_problem,
)
from perfgate.budgets.fields import (
    read_confidence,
    read_count,
    read_env,
    read_headers,
    read_level,
    read_n_plus_one,
    read_positive_ms,
    read_positive_size,
    read_regression,
)
from perfgate.budgets.model import (
    PLAN_RULES,
    SCHEMA_VERSION,
    Config,
    Database,
    Defaults,
    Endpoint,
    Query,
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
MAX_NAME = 200  # characters in an item name
_NAME = re.compile(rf"[^\s/]{{1,{MAX_NAME}}}")
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
    "db_probes",
    "n_plus_one",
    "n_plus_one_repeats",
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
    version = top.get("version")
    if "version" in top and (type(version) is not int or version != SCHEMA_VERSION):
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
    _unique_names(src, endpoints, queries)
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
    for key, item in value.items():
        name = str(key)
        if key is None or isinstance(key, bool):
            # YAML reads a bare yes, no, on, off, true, false or null as no text at all.
            src.error((section, name), f"a name must be text, got {describe(key)}: quote it")
            continue
        if not _NAME.fullmatch(name) or not name.isprintable() or "::" in name:
            src.error(
                (section, name),
                f"a name must be 1 to {MAX_NAME} visible characters, without spaces, '/' or "
                f"'::', got {name!r}",
            )
            continue
        built = build(name, item, (section, name))
        if built is not None:
            out.append(built)
    return out


def _unique_names(src: Source, endpoints: list[Endpoint], queries: list[Query]) -> None:
    """Item names are unique across endpoints and queries, also as Unicode normalises them.

    'é' typed as one character or as 'e' and a combining accent looks the same in every report
    and means the same to a reader, so two items so named would be told apart by nothing.
    """
    seen: dict[str, tuple[str, str]] = {}
    items = [("endpoints", e.name) for e in endpoints] + [("queries", q.name) for q in queries]
    for section, name in items:
        key = unicodedata.normalize("NFC", name)
        if key not in seen:
            seen[key] = (section, name)
            continue
        first_section, first = seen[key]
        line = src.lines.get((first_section, first))
        where = f"{first_section}.{first}" + (f" (line {line})" if line else "")
        if first == name:
            src.error((section, name), f"{where} has the same name; item names must be unique")
        else:
            src.error(
                (section, name),
                f"this name ({name!a}) and {where} ({first!a}) are the same once "
                "Unicode normalises them (NFC); item names must be unique",
            )


def _defaults(src: Source, value: Any) -> Defaults:
    path: Path_ = ("defaults",)
    raw = src.mapping(value, path, DEFAULT_KEYS)
    d = Defaults()
    ints = {
        k: read_count(
            src, raw[k], (*path, k), 0 if k in ("warmup", "seq_scan_min_pages", "db_probes") else 1
        )
        for k in ("requests", "concurrency", "warmup", "runs", "seq_scan_min_pages", "db_probes")
        if k in raw
    }
    n_plus_one, repeats = read_n_plus_one(src, raw, path, d.n_plus_one, d.n_plus_one_repeats)
    rules = dict(d.plan_rules)
    if "plan_rules" in raw:
        for rule, level in src.mapping(
            raw["plan_rules"], (*path, "plan_rules"), PLAN_RULES
        ).items():
            rules[rule] = read_level(src, level, (*path, "plan_rules", rule), rules[rule])
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
        db_probes=d.db_probes if ints.get("db_probes") is None else int(ints["db_probes"] or 0),
        n_plus_one=n_plus_one,
        n_plus_one_repeats=repeats,
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
    text = src.template(raw[kind], (*path, kind), allowed)
    problem = None
    if text is not None and kind == "command":
        problem = _command_problem(text)
    elif text is not None and kind == "app":
        problem = app_problem(text)
    elif text is not None:
        problem = base_url_problem(text)
    if problem:
        src.error((*path, kind), problem)
    ready = src.string(raw.get("ready", "/healthz"), (*path, "ready")) or "/healthz"
    problem = request_path_problem(ready)
    if problem:
        src.error((*path, "ready"), problem)
    login = read_login(src, raw["login"], (*path, "login")) if "login" in raw else None
    src.has_login = login is not None
    return Target(
        kind=kind,
        value=text or "",
        ready=ready,
        ready_timeout_s=read_positive_ms(src, raw, "ready_timeout", path, 30_000.0) / 1000,
        env=read_env(src, raw.get("env"), (*path, "env"), TARGET),
        headers=read_headers(src, raw.get("headers"), (*path, "headers"), REQUEST),
        login=login,
    )


def _command_problem(command: str) -> str | None:
    """Why a command line cannot be started: it does not split, is empty, or holds a NUL."""
    try:
        split_command(command)
    except ValueError as exc:
        return f"cannot split the command line: {exc}"
    return nul_problem(command)


def _database(src: Source, value: Any, root: Path) -> Database:
    path: Path_ = ("database",)
    raw = src.mapping(value, path, DATABASE_KEYS)
    if "dsn" in raw:
        dsn = src.string(raw["dsn"], (*path, "dsn")) if raw["dsn"] is not None else None
        problem = dsn_problem(dsn) if dsn else None
    else:  # not written: the PERFGATE_DSN of the environment, as the README's commands use it
        dsn = src.env.get(DSN_VARIABLE) or None
        problem = dsn_problem(dsn) if dsn else None
        if problem:
            problem = f"${DSN_VARIABLE} (what database.dsn defaults to): {problem}"
    if problem:
        src.error((*path, "dsn"), problem)
    if value is None:
        return Database(dsn=dsn)
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
        problem = _command_problem(command)
        if problem:
            src.error((*path, "run"), problem)
        cwd = root
        if "cwd" in raw:
            name = src.string(raw["cwd"], (*path, "cwd")) or "."
            problem = nul_problem(name)
            if problem:
                src.error((*path, "cwd"), problem)
            elif not (root / name).resolve().is_dir():
                src.error((*path, "cwd"), f"directory not found: {name} (relative to {root})")
            else:
                cwd = (root / name).resolve()
        return SetupCommand(
            command=command,
            env=read_env(src, raw.get("env"), (*path, "env"), DSN),
            cwd=cwd,
            timeout_s=read_positive_ms(src, raw, "timeout", path, 600_000.0) / 1000,
        )
    file_name = src.string(item, path)
    if file_name is None:
        return None
    problem = nul_problem(file_name) or sql_file_problem(root, file_name)
    if problem:
        src.error(path, problem)
        return None
    return SqlFile((root / file_name).resolve())


__all__ = ["endpoint_from_mapping", "load_config", "parse_config", "query_from_mapping"]
