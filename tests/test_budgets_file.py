"""Bad budgets files: one clear error naming the file, line, key path and what was expected."""

from __future__ import annotations

import textwrap
from fnmatch import fnmatch
from pathlib import Path

import pytest

from perfgate.budgets import parse_config
from perfgate.cli import main
from perfgate.exceptions import ConfigError

GOOD = """
version: 1
target: {base_url: "http://127.0.0.1:9"}
endpoints:
  clients:
    request: GET /api/clients?supplier_id=7
    budget: {p95_ms: 100, p99_ms: 0.2s, error_rate: 0, cache_hit_ratio: 85%, max_bytes: 64KiB}
"""


def errors_of(text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as excinfo:
        parse_config(textwrap.dedent(text), Path("budgets.yaml"), env or {})
    return str(excinfo.value)


def test_a_good_file_parses_with_units() -> None:
    config = parse_config(GOOD, Path("budgets.yaml"), {})
    (clients,) = config.endpoints
    assert clients.method == "GET"
    assert clients.path == "/api/clients?supplier_id=7"
    assert clients.budget == {
        "p95_ms": 100.0,
        "p99_ms": 200.0,
        "error_rate": 0.0,
        "cache_hit_ratio": 0.85,
        "max_bytes": 65536,
    }
    assert clients.line == 5


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "version: 1\ntarget: {base_url: 'http://x'}\nendpoints:\n  a:\n    request: GET /\n"
            "    budget: {p95_ms: fast}\n",
            "budgets.yaml:6: endpoints.a.budget.p95_ms: expected a duration like '200ms', '0.2s' "
            "or a number of milliseconds, got 'fast'",
        ),
        (
            "version: 1\ntarget: {base_url: 'http://x'}\nendpoints:\n  a:\n    request: GET /\n"
            "    budget: {p95: 100}\n",
            "budgets.yaml:6: endpoints.a.budget.p95: unknown key (did you mean 'p95_ms'?)*",
        ),
        (
            "version: 1\ntarget: {base_url: 'http://x'}\nendpoints:\n  a:\n    request: GET /\n"
            "    concurency: 3\n",
            "budgets.yaml:6: endpoints.a.concurency: unknown key (did you mean 'concurrency'?)*",
        ),
        (
            "version: 1\ntarget: {base_url: 'http://x'}\nendpoints:\n  a:\n    request: GET /\n"
            "    budget: {error_rate: 2}\n",
            "budgets.yaml:6: endpoints.a.budget.error_rate: expected a ratio between 0 and 1*",
        ),
        (
            "version: 1\ntarget: {base_url: 'http://x'}\nendpoints:\n  a:\n    request: GET /\n"
            "    budget: {p99_ms: -5}\n",
            "budgets.yaml:6: endpoints.a.budget.p99_ms: expected a value >= 0, got -5",
        ),
        (
            "version: 1\ntarget: {base_url: 'http://x'}\nendpoints:\n  a:\n    request: GET /\n"
            "    requests: ten\n",
            "budgets.yaml:6: endpoints.a.requests: expected a whole number >= 1, "
            "got the string 'ten'",
        ),
        (
            "version: 1\ntarget: {base_url: 'http://x'}\nendpoints:\n  a:\n    request: FETCH it\n",
            "budgets.yaml:5: endpoints.a.request: expected 'METHOD /path'*",
        ),
        (
            "version: 2\n",
            "budgets.yaml:1: version: expected 1 (the schema this perfgate reads), got 2",
        ),
        (
            "version: 1\ntarget: {app: x, base_url: 'http://x'}\n",
            "budgets.yaml:2: target: expected exactly one of command, app or base_url*",
        ),
        (
            "version: 1\ntarget:\n  headers: {Authorization: 'Bearer ${TOKEN}'}\n  base_url: http://x\n",
            "budgets.yaml:3: target.headers.Authorization: environment variable TOKEN is not set*",
        ),
        (
            "version: 1\nendpoints: [a, b]\n",
            "budgets.yaml:2: endpoints: expected a mapping of names to definitions, got a list",
        ),
        (
            "version: 1\nqueries:\n  q:\n    sql: SELECT 1\n    budget: {max_buffers: 1.5}\n",
            "budgets.yaml:5: queries.q.budget.max_buffers: expected a whole number >= 0*",
        ),
        (
            "version: 1\ndefaults:\n  plan_rules: {misestimate: loud}\n",
            "budgets.yaml:3: defaults.plan_rules.misestimate: expected one of warning, error, off*",
        ),
        ("version: 1\n  bad: [\n", "budgets.yaml:2: invalid YAML:*"),
        (
            "version: 1\ntarget: {base_url: 'http://x'}\nendpoints:\n"
            "  a: {request: GET /, budget: {p95_ms: 1\n  b: GET /\n",
            "budgets.yaml:5: invalid YAML: expected ',' or '}', but got ':' (while parsing a "
            "flow mapping that starts at line 4, column 31)",
        ),
        ("", "budgets.yaml: the file is empty*"),
        ("target: {base_url: 'http://x'}\n", "*missing required key 'version' (add `version: 1`*"),
        (
            "version: 1\ntarget:\n  command: 'app --port {port}'\n"
            "  env: {DATABASE_URL: 'postgresql://u@{dns_host}/db'}\n",
            "budgets.yaml:4: target.env.DATABASE_URL: unknown placeholder {dns_host} "
            "(did you mean {dsn_host}?)",
        ),
        (
            "version: 1\ntarget: {base_url: 'http://x'}\nendpoints:\n  a:\n    request: POST /\n"
            "    json: {slug: 'lt-{sqe}'}\n",
            "budgets.yaml:6: endpoints.a.json.slug: unknown placeholder {sqe} "
            "(did you mean {seq}?)",
        ),
        (
            "version: 1\ntarget: {base_url: 'http://x'}\nendpoints:\n  a: 'GET /x?d={dsn}'\n",
            "budgets.yaml:4: endpoints.a.request: {dsn} cannot be used here*",
        ),
        (
            "version: 1\ntarget: {base_url: 'http://x', headers: {A: 'T {login.token}'}}\n",
            "budgets.yaml:2: target.headers.A: {login.token} needs target.login*",
        ),
        (
            "version: 1\nqueries:\n  q: {sql: 'SELECT 1', sql_file: x.sql}\n",
            "budgets.yaml:3: queries.q: set exactly one of sql or sql_file",
        ),
        (
            "version: 1\nqueries:\n  q: {sql: 'SELECT $1 + :n', params: [1]}\n",
            "budgets.yaml:3: queries.q.params: the SQL uses named parameters (:n): give params as "
            "a mapping*",
        ),
        (
            "version: 1\nqueries:\n  q: {sql: 'SELECT :a, :b', params: {a: 1, c: 2}}\n",
            "budgets.yaml:3: queries.q.params: no value for :b*",
        ),
        (
            "version: 1\ndatabase:\n  setup: [{run: 'alembic upgrade head', cwd: nowhere}]\n",
            "budgets.yaml:3: database.setup[[]0[]].cwd: directory not found: nowhere*",
        ),
        (
            "version: 1\ndatabase:\n  setup: [{run: 'alembic \"upgrade'}]\n",
            "budgets.yaml:3: database.setup[[]0[]].run: cannot split the command line*",
        ),
        (
            "version: 1\ntarget: {command: ''}\n",
            "budgets.yaml:2: target.command: cannot split the command line: the command is empty",
        ),
        (
            "version: 1\ntarget: {base_url: 'http://x', login: {request: 'POST /login', x: 1}}\n",
            "budgets.yaml:2: target.login.x: unknown key*",
        ),
        (
            "version: 1\ndefaults:\n  regression: {metric: execution}\nendpoints: {}\n"
            "queries:\n  q: {sql: SELECT 1, regression: {metric: p95}}\n",
            "budgets.yaml:6: queries.q.regression.metric: expected one of execution, mean here*",
        ),
        (
            "version: 1\ndefaults:\n  regression: {threshold: 2000%}\n",
            "budgets.yaml:3: defaults.regression.threshold: expected a relative change like '10%'*",
        ),
        (
            "version: 1\ndefaults:\n  regression: {confidence: 40%}\n",
            "budgets.yaml:3: defaults.regression.confidence: expected a confidence level between "
            "0.5 and 1*",
        ),
        (
            "version: 1\ndefaults:\n  regression: {max_rounds: 0, fail_on_inconclusive: 1}\n",
            "budgets.yaml:3: defaults.regression.max_rounds: expected a whole number >= 1, got 0*",
        ),
        (
            "version: 1\ndefaults:\n  timeout: 0\n",
            "budgets.yaml:3: defaults.timeout: expected a positive duration, got 0",
        ),
        (
            "version: 1\ntarget: {base_url: 'http://x'}\nendpoints:\n  a:\n    request: GET /\n"
            "    budget: {max_bytes: lots, min_throughput_rps: 0}\n",
            "budgets.yaml:6: endpoints.a.budget.max_bytes: expected a size like '64KiB'*",
        ),
        (
            "version: 1\ntarget: {base_url: 'http://x'}\nendpoints:\n  a:\n    request: GET /\n"
            "    expect_status: [201, 700]\n",
            "budgets.yaml:6: endpoints.a.expect_status[[]1[]]: expected an HTTP status 100-599*",
        ),
    ],
)
def test_each_mistake_is_one_located_error(text: str, expected: str) -> None:
    message = errors_of(text)
    assert fnmatch(message, expected), message


def test_named_queries_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "queries.sql").write_text(
        "-- name: by-slug^\n-- One article.\nSELECT * FROM articles WHERE slug = :slug "
        "AND published_at::date <= :day;\n\n-- name: count$\nSELECT count(*) FROM articles;\n"
    )
    (tmp_path / "plain.sql").write_text("SELECT 1\n")
    text = (
        "version: 1\nqueries:\n"
        "  a: {sql_file: queries.sql, name: by_slug, params: {slug: x, day: 2026-06-13}}\n"
        "  b: {sql_file: plain.sql}\n"
    )
    config = parse_config(text, tmp_path / "budgets.yaml", {})
    a, b = config.queries
    assert a.sql == "SELECT * FROM articles WHERE slug = $1 AND published_at::date <= $2;"
    assert a.params[0] == "x"
    assert b.sql == "SELECT 1\n"
    missing = errors_of_file(
        tmp_path, "version: 1\nqueries:\n  c: {sql_file: queries.sql, name: nope}\n"
    )
    assert "has no query named 'nope' (its queries: by-slug, count)" in missing
    whole = errors_of_file(tmp_path, "version: 1\nqueries:\n  c: {sql_file: plain.sql, name: x}\n")
    assert "it has no `-- name:` lines, so it is one query; drop name: to gate it" in whole
    unnamed = errors_of_file(tmp_path, "version: 1\nqueries:\n  c: {sql_file: queries.sql}\n")
    assert "holds named queries (by-slug, count): say which with name:" in unnamed


def errors_of_file(root: Path, text: str) -> str:
    with pytest.raises(ConfigError) as excinfo:
        parse_config(text, root / "budgets.yaml", {})
    return str(excinfo.value)


def test_database_dsn_defaults_to_perfgate_dsn() -> None:
    dsn = "postgresql://postgres@127.0.0.1:5432/postgres"
    config = parse_config("version: 1\nqueries:\n  q: {sql: SELECT 1}\n", Path("b.yaml"),
                          {"PERFGATE_DSN": dsn})  # fmt: skip
    assert config.database.dsn == dsn
    written = parse_config(
        "version: 1\ndatabase: {dsn: ''}\n", Path("b.yaml"), {"PERFGATE_DSN": dsn}
    )
    assert written.database.dsn is None  # written empty: the embedded server, as asked
    assert parse_config("version: 1\n", Path("b.yaml"), {}).database.dsn is None


def test_interpolation_defaults_and_escapes() -> None:
    text = (
        "version: 1\ntarget:\n  base_url: 'http://127.0.0.1:${PORT:-8000}'\n"
        "  headers: {X-Price: '$$5', X-Token: '${TOKEN}'}\n"
    )
    config = parse_config(text, Path("b.yaml"), {"TOKEN": "t0k"})
    assert config.target.value == "http://127.0.0.1:8000"
    assert config.target.headers == {"X-Price": "$5", "X-Token": "t0k"}


def test_all_problems_are_reported_together() -> None:
    message = errors_of(
        "version: 1\ntarget: {base_url: 'http://x'}\nendpoints:\n  a:\n    request: GET /\n"
        "    budget: {p95_ms: fast, p99: 3}\n"
    )
    assert len(message.splitlines()) == 2


def test_pytest_exits_with_a_usage_error_and_no_traceback(pytester: pytest.Pytester) -> None:
    pytester.makefile(
        ".yaml",
        budgets="version: 1\nendpoints:\n  a:\n    request: GET /\n    budget: {p95_ms: fast}\n",
    )
    result = pytester.runpytest("--perfgate")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*budgets.yaml:5: endpoints.a.budget.p95_ms: expected a duration*"]
    )
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_missing_file_is_named(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--perfgate")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*budgets.yaml: budgets file not found*"])


def test_cli_check_budgets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nendpoints:\n  a: {request: GET /, budget: {p95_ms: fast}}\n")
    assert main(["check-budgets", str(good)]) == 0
    assert "ok (1 endpoints, 0 queries, target: base_url)" in capsys.readouterr().out
    assert main(["check-budgets", str(good), str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:3: endpoints.a.budget.p95_ms: expected a duration" in err


def test_cli_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["--version"])
    assert excinfo.value.code == 0
    assert capsys.readouterr().out.startswith("perfgate ")


def test_statement_counting_keys_are_read_inherited_and_checked() -> None:
    config = parse_config(
        textwrap.dedent(
            """
            version: 1
            target: {base_url: "http://127.0.0.1:9"}
            defaults: {db_probes: 0, n_plus_one: error, n_plus_one_repeats: 3}
            endpoints:
              a: GET /a
              b:
                request: GET /b
                db_probes: 7
                n_plus_one: off
                budget: {max_queries_per_request: 21, max_db_ms_per_request: 5ms,
                         min_db_cache_hit_ratio: 99%, max_connections_ratio: 80%}
            """
        ),
        Path("budgets.yaml"),
        {},
    )
    a, b = config.endpoints
    assert (a.db_probes, a.n_plus_one, a.n_plus_one_repeats) == (0, "error", 3)
    assert (b.db_probes, b.n_plus_one, b.n_plus_one_repeats) == (7, "off", 3)
    assert b.budget == {
        "max_queries_per_request": 21.0,
        "max_db_ms_per_request": 5.0,
        "min_db_cache_hit_ratio": 0.99,
        "max_connections_ratio": 0.8,
    }
    errors = errors_of(
        """
        version: 1
        target: {base_url: "http://127.0.0.1:9"}
        defaults: {n_plus_one: loud, n_plus_one_repeats: 1, db_probes: 101}
        endpoints:
          a: {request: GET /a, budget: {max_queries_per_request: many}}
        """
    )
    assert "defaults.n_plus_one: expected one of warning, error, off, got 'loud'" in errors
    assert "defaults.n_plus_one_repeats: expected a whole number >= 2, got 1" in errors
    assert "defaults.db_probes: expected a whole number from 0 to 100, got 101" in errors
    assert "endpoints.a.budget.max_queries_per_request:" in errors


def test_regression_min_effect_is_a_duration_inherited_from_defaults() -> None:
    config = parse_config(
        textwrap.dedent(
            """
            version: 1
            target: {base_url: "http://127.0.0.1:9"}
            defaults: {regression: {min_effect: 2ms}}
            endpoints:
              a: GET /a
              b: {request: GET /b, regression: {min_effect: 0ms}}
            """
        ),
        Path("budgets.yaml"),
        {},
    )
    a, b = config.endpoints
    assert a.regression.min_effect_ms == 2.0
    assert b.regression.min_effect_ms == 0.0
    errors = errors_of(
        """
        version: 1
        target: {base_url: "http://127.0.0.1:9"}
        endpoints:
          a: {request: GET /a, regression: {min_effect: soon}}
        """
    )
    assert "endpoints.a.regression.min_effect:" in errors
