"""Budgets files that used to pass validation and crash mid-run: each is now one located error.

Every case here once either raised a traceback while measuring (a header httpx cannot encode, a
YAML date in a JSON body, a DSN asyncpg cannot parse, ...), hung or exhausted memory while being
read (an alias bomb), or was accepted and did the wrong thing (colliding names, an unquoted
``off``). Now each is an error naming the file, the line, the key path and what was expected.
"""

from __future__ import annotations

import textwrap
from fnmatch import fnmatch
from pathlib import Path

import pytest

from perfgate.budgets import parse_config
from perfgate.budgets.yamllimits import MAX_DEPTH, MAX_VALUES
from perfgate.exceptions import ConfigError

TINYAPP = (Path(__file__).parent.parent / "apps" / "tinyapp.py").read_text()
APP = 'version: 1\ntarget: {app: "tinyapp:app"}\n'
URL = "version: 1\ntarget: {base_url: 'http://127.0.0.1:9'}\n"


def errors_of(text: str, root: Path = Path(), env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as excinfo:
        parse_config(textwrap.dedent(text), root / "budgets.yaml", env or {})
    return str(excinfo.value)


def endpoint(extra: str) -> str:
    return URL + "endpoints:\n  a:\n    request: GET /\n" + extra


def query(extra: str) -> str:
    return "version: 1\nqueries:\n  q:\n    sql: SELECT 1\n" + extra


# (case, budgets text, the error it gives), each once a traceback at run time or accepted.
CASES = [
    (
        "command-nul",
        'version: 1\ntarget: {command: "python -m app\\0 --port {port}"}\n',
        "budgets.yaml:2: target.command: a NUL character (\\0) cannot be passed on",
    ),
    (
        "header-not-ascii",
        endpoint('    headers: {X-Name: "café"}\n'),
        "budgets.yaml:6: endpoints.a.headers.X-Name: expected ASCII text in a header value "
        "(HTTP sends header values as ASCII bytes; percent-encode or base64 other text), "
        "got 'caf\\xe9'",
    ),
    (
        "header-name-not-a-token",
        endpoint('    headers: {"X Name": x}\n'),
        "budgets.yaml:6: endpoints.a.headers.X Name: expected a header name of letters, digits "
        "and *, got 'X Name'",
    ),
    (
        "header-crlf",
        endpoint('    headers: {X-A: "x\\r\\nX-Injected: 1"}\n'),
        "budgets.yaml:6: endpoints.a.headers.X-A: a header value cannot hold a line break (CR or "
        "LF): it would end the header",
    ),
    (
        "target-header-lf",
        'version: 1\ntarget:\n  base_url: http://127.0.0.1:9\n  headers: {X-A: "a\\nb"}\n',
        "budgets.yaml:4: target.headers.X-A: a header value cannot hold a line break*",
    ),
    (
        "login-header-not-ascii",
        "version: 1\ntarget:\n  base_url: http://127.0.0.1:9\n"
        '  login: {request: POST /login, headers: {X: "ü"}}\n',
        "budgets.yaml:4: target.login.headers.X: expected ASCII text in a header value*",
    ),
    (
        "request-crlf",
        URL + 'endpoints:\n  a: "GET /fast\\r\\nX-Injected: 1"\n',
        "budgets.yaml:4: endpoints.a.request: expected 'METHOD /path'*",
    ),
    (
        "request-space-in-path",
        URL + "endpoints:\n  a: GET /fast HTTP/1.1\n",
        "budgets.yaml:4: endpoints.a.request: expected a path without spaces or control "
        "characters (write a space as %20), got '/fast HTTP/1.1'",
    ),
    (
        "request-host-in-path",
        URL + "endpoints:\n  a: GET //evil.example/x\n",
        "budgets.yaml:4: endpoints.a.request: expected a path on the target, got "
        "'//evil.example/x' (a URL would take // for a host)",
    ),
    (
        "request-too-long",
        URL + "endpoints:\n  a: GET /" + "x" * 70_000 + "\n",
        "budgets.yaml:4: endpoints.a.request: expected a path httpx can send (URL too long), got "
        "70,001 characters",
    ),
    (
        "ready-space",
        "version: 1\ntarget: {base_url: 'http://127.0.0.1:9', ready: /health z}\n",
        "budgets.yaml:2: target.ready: expected a path without spaces*",
    ),
    (
        "json-nan",
        endpoint("    json: {score: .nan}\n"),
        "budgets.yaml:6: endpoints.a.json.score: expected a finite number (JSON has no NaN or "
        "infinity), got nan",
    ),
    (
        "json-binary",
        endpoint("    json: {blob: !!binary aGVsbG8=}\n"),
        "budgets.yaml:6: endpoints.a.json.blob: expected a JSON value (text, a number, true, "
        "false, null, a list or a mapping), got bytes b'hello'",
    ),
    (
        "dsn-port",
        "version: 1\ndatabase: {dsn: 'postgresql://u:secret@127.0.0.1:notaport/db'}\n",
        "budgets.yaml:2: database.dsn: expected a URL like postgresql://user@host:5432/postgres: "
        "one host, and a port from 1 to 65535",
    ),
    (
        "dsn-bracket",
        "version: 1\ndatabase: {dsn: 'postgresql://u:secret@[::1/db'}\n",
        "budgets.yaml:2: database.dsn: expected a URL like postgresql://user@host:5432/postgres "
        "(Invalid IPv6 URL)",
    ),
    (
        "dsn-port-range",
        "version: 1\ndatabase: {dsn: 'postgresql://u@127.0.0.1:99999/db'}\n",
        "budgets.yaml:2: database.dsn: expected * a port from 1 to 65535",
    ),
    (
        "dsn-quote",
        'version: 1\ndatabase: {dsn: "postgresql://u:it\'s@127.0.0.1/db"}\n',
        "budgets.yaml:2: database.dsn: expected a URL like postgresql://user@host:5432/postgres "
        "with quotes and backslashes percent-encoded (%27, %22, %5C)",
    ),
    (
        "dsn-sslmode",
        "version: 1\ndatabase: {dsn: 'postgresql://u@127.0.0.1/db?sslmode=always'}\n",
        "budgets.yaml:2: database.dsn: expected ?sslmode= one of disable, allow, prefer, require, "
        "verify-ca, verify-full, got 'always'",
    ),
    (
        "base-url-port",
        "version: 1\ntarget: {base_url: 'http://127.0.0.1:abc'}\n",
        "budgets.yaml:2: target.base_url: expected a URL like http://127.0.0.1:8000 (Invalid port)",
    ),
    (
        "base-url-port-range",
        "version: 1\ntarget: {base_url: 'http://127.0.0.1:99999'}\n",
        "budgets.yaml:2: target.base_url: expected a port from 1 to 65535, got 99999",
    ),
    (
        "base-url-no-host",
        "version: 1\ntarget: {base_url: 'http://'}\n",
        "budgets.yaml:2: target.base_url: expected a URL with a host*",
    ),
    (
        "app-spec",
        "version: 1\ntarget: {app: 'my app:make-app'}\n",
        "budgets.yaml:2: target.app: expected 'module.path:attribute', got 'my app:make-app'",
    ),
    (
        "env-name",
        "version: 1\ntarget: {command: 'app --port {port}', env: {'A=B': x}}\n",
        "budgets.yaml:2: target.env.A=B: expected an environment variable name (not empty, no "
        "'=' or NUL), got 'A=B'",
    ),
    (
        "env-nul",
        'version: 1\ndatabase:\n  setup: [{run: migrate, env: {A: "x\\0y"}}]\n',
        "budgets.yaml:3: database.setup[[]0[]].env.A: a NUL character (\\0) cannot be passed on",
    ),
    (
        "setup-file-nul",
        'version: 1\ndatabase: {setup: ["db\\0.sql"]}\n',
        "budgets.yaml:2: database.setup[[]0[]]: a NUL character (\\0) cannot be passed on",
    ),
    (
        "sql-nul",
        'version: 1\nqueries:\n  q: {sql: "SELECT 1\\0"}\n',
        "budgets.yaml:3: queries.q.sql: a NUL character (\\0) cannot be passed on",
    ),
    (
        "param-nul",
        'version: 1\nqueries:\n  q: {sql: "SELECT $1::text", params: ["a\\0b"]}\n',
        "budgets.yaml:3: queries.q.params[[]0[]]: PostgreSQL text cannot hold a NUL character*",
    ),
    (
        "statement-timeout-over-int",
        query("    statement_timeout: 99999999999999999999\n"),
        "budgets.yaml:5: queries.q.statement_timeout: expected a duration of at most 24 hours "
        "(86,400,000ms), got 99999999999999999999",
    ),
    (
        "timeout-huge",
        endpoint("    timeout: 1e308\n"),
        "budgets.yaml:6: endpoints.a.timeout: expected a duration of at most 24 hours*",
    ),
    (
        "ready-timeout-huge",
        "version: 1\ntarget: {base_url: 'http://127.0.0.1:9', ready_timeout: 100000h}\n",
        "budgets.yaml:2: target.ready_timeout: expected a duration like '200ms'*",
    ),
    (
        "setup-timeout-huge",
        "version: 1\ndatabase:\n  setup: [{run: migrate, timeout: 1e12}]\n",
        "budgets.yaml:3: database.setup[[]0[]].timeout: expected a duration of at most 24 hours*",
    ),
    (
        "concurrency-huge",
        endpoint("    concurrency: 99999999999999999999\n"),
        "budgets.yaml:6: endpoints.a.concurrency: expected a whole number from 1 to 1,000, got "
        "99,999,999,999,999,999,999",
    ),
    (
        "requests-huge",
        "version: 1\ndefaults: {requests: 10000000000}\n",
        "budgets.yaml:2: defaults.requests: expected a whole number from 1 to 1,000,000*",
    ),
    (
        "runs-huge",
        query("    runs: 1000000\n"),
        "budgets.yaml:5: queries.q.runs: expected a whole number from 1 to 10,000, got 1,000,000",
    ),
    (
        "max-rounds-huge",
        "version: 1\ndefaults: {regression: {max_rounds: 1000}}\n",
        "budgets.yaml:2: defaults.regression.max_rounds: expected a whole number from 1 to 10*",
    ),
    (
        "min-throughput-nan",
        endpoint("    budget: {min_throughput_rps: .nan}\n"),
        "budgets.yaml:6: endpoints.a.budget.min_throughput_rps: expected a finite number, got nan",
    ),
    (
        "min-throughput-inf",
        endpoint("    budget: {min_throughput_rps: .inf}\n"),
        "budgets.yaml:6: endpoints.a.budget.min_throughput_rps: expected a finite number, got inf",
    ),
    (
        "limit-beyond-float",
        endpoint("    budget: {p95_ms: " + "9" * 400 + "}\n"),
        "budgets.yaml:6: endpoints.a.budget.p95_ms: expected a duration like '200ms'*",
    ),
    (
        "version-true",
        "version: true\n",
        "budgets.yaml:1: version: expected 1 (the schema this perfgate reads), got True",
    ),
    (
        "plan-rule-on",
        "version: 1\ndefaults: {plan_rules: {misestimate: on}}\n",
        "budgets.yaml:2: defaults.plan_rules.misestimate: expected one of warning, error, off, "
        "got a boolean (true)",
    ),
    (
        "names-1-and-quoted-1",
        URL + "endpoints:\n  1: GET /a\n  '1': GET /b\n",
        "budgets.yaml:5: endpoints: duplicate key: 1 and '1' are the same key here",
    ),
    (
        "names-date-and-text",
        URL + "endpoints:\n  2026-06-13: GET /a\n  '2026-06-13': GET /b\n",
        "budgets.yaml:5: endpoints: duplicate key: 2026-06-13 and '2026-06-13' are the same key "
        "here",
    ),
    (
        "names-nfc",
        URL + 'endpoints:\n  "caf\\u00e9": GET /a\n  "cafe\\u0301": GET /b\n',
        "budgets.yaml:5: endpoints.cafe\u0301: this name ('cafe\\u0301') and endpoints.café "
        "(line 4) ('caf\\xe9') are the same once Unicode normalises them (NFC); item names must "
        "be unique",
    ),
    (
        "names-endpoint-and-query",
        URL + "endpoints:\n  a: GET /\nqueries:\n  a: {sql: SELECT 1}\n",
        "budgets.yaml:6: queries.a: endpoints.a (line 4) has the same name; item names must be "
        "unique",
    ),
    (
        "name-boolean",
        URL + "endpoints:\n  yes: GET /\n",
        "budgets.yaml:4: endpoints.True: a name must be text, got a boolean (true): quote it",
    ),
    (
        "name-bidi-override",
        URL + 'endpoints:\n  "\u202egnp.exe": GET /\n',
        "budgets.yaml:4: endpoints.'\\u202egnp.exe': a name must be 1 to 200 visible characters*",
    ),
    (
        "name-control-character",
        URL + 'endpoints:\n  "a\\tb": GET /\n',
        "budgets.yaml:4: endpoints.'a\\tb': a name must be 1 to 200 visible characters*",
    ),
    (
        "yaml-unknown-tag",
        "version: !!python/object:os.system x\n",
        "budgets.yaml:1: invalid YAML: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object:os.system'",
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_is_one_located_error(text: str, expected: str) -> None:
    message = errors_of(text)
    assert fnmatch(message, expected), message
    assert "secret" not in message


def alias_bomb(levels: int) -> str:
    """The billion laughs: each anchor a list of nine aliases of the one before."""
    text = 'version: 1\nx-0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for i in range(1, levels + 1):
        text += f"x-{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n"
    return text


def test_an_alias_bomb_is_refused_at_the_line_where_it_grows_too_large() -> None:
    bomb = alias_bomb(7)  # 9**8 = 43 million strings once expanded; 31 s and 1.3 GB before
    assert len(bomb) < 600
    message = errors_of(bomb)
    assert message == (
        f"budgets.yaml:7: invalid YAML: the document stands for more than {MAX_VALUES:,} values "
        "once its aliases are expanded (each *alias repeats everything its &anchor holds)"
    )


def test_anchors_and_aliases_within_bounds_still_work() -> None:
    text = (
        "version: 1\nx-env: &env {A: '1', B: '2'}\n"
        "target: {command: 'app --port {port}', env: *env}\n"
        "database:\n  setup: [{run: migrate, env: *env}]\n"
    )
    config = parse_config(text, Path("budgets.yaml"), {})
    assert config.target.env == {"A": "1", "B": "2"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: 1\nx-a: &a [1, *a]\n", "budgets.yaml:2: invalid YAML: the alias *a is inside"),
        ("version: 1\nx-a: &a {b: {c: *a}}\n", "budgets.yaml:2: invalid YAML: the alias *a is"),
        (
            "version: 1\nx-a: " + "[" * 5000 + "]" * 5000 + "\n",
            f"budgets.yaml:2: invalid YAML: nested more than {MAX_DEPTH} levels deep",
        ),
        (
            "version: 1\n" + "".join("  " * i + f"k{i}:\n" for i in range(200)),
            f"budgets.yaml:{MAX_DEPTH + 2}: invalid YAML: nested more than {MAX_DEPTH} levels",
        ),
        (
            "version: 1\n"
            + "".join(f"x-{i}: &a{i} [{f'*a{i - 1}' if i else 0}]\n" for i in range(60)),
            "budgets.yaml:*: invalid YAML: the alias *a* nests values more than 50 levels deep",
        ),
        (
            "version: 1\nx-a: &a 1\nx-b: &a 2\n",
            "budgets.yaml:3: invalid YAML: the anchor &a is defined twice (first at line 2)",
        ),
    ],
    ids=["recursive-list", "recursive-mapping", "deep-flow", "deep-block", "alias-depth", "twice"],
)
def test_recursion_and_depth_are_errors_not_recursion_errors(text: str, expected: str) -> None:
    message = errors_of(text)
    assert fnmatch(message, expected + "*"), message


def test_yaml_dates_in_a_json_body_are_sent_as_iso_text() -> None:
    config = parse_config(
        endpoint(
            "    json: {day: 2026-06-13, at: 2026-06-13 10:30:00, 2026-01-01: new-year,"
            " 7: seven, true: yes}\n"
        ),
        Path("budgets.yaml"),
        {},
    )
    assert config.endpoints[0].json == {
        "day": "2026-06-13",
        "at": "2026-06-13T10:30:00",
        "2026-01-01": "new-year",
        "7": "seven",
        "true": True,
    }


def test_unquoted_off_is_the_level_off() -> None:
    config = parse_config(
        "version: 1\ndefaults: {plan_rules: {misestimate: off, disk-spill: error}}\n",
        Path("budgets.yaml"),
        {},
    )
    assert config.defaults.plan_rules["misestimate"] == "off"
    assert config.defaults.plan_rules["disk-spill"] == "error"


def test_perfgate_dsn_from_the_environment_is_checked_too() -> None:
    message = errors_of(
        "version: 1\nqueries:\n  q: {sql: SELECT 1}\n",
        env={"PERFGATE_DSN": "postgresql://ci:hunter2@db:5432,db2:5432/app"},
    )
    assert message == (
        "budgets.yaml: database.dsn: $PERFGATE_DSN (what database.dsn defaults to): expected a URL "
        "like postgresql://user@host:5432/postgres: one host, and a port from 1 to 65535"
    )
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("files", "step", "expected"),
    [
        ({"seed.sql": b"SELECT 'caf\xe9';"}, "seed.sql", "seed.sql is not UTF-8 (byte 11, line 1)"),
        ({"s.sql": b"SELECT 1;\nSELECT '\xff';"}, "s.sql", "s.sql is not UTF-8 (byte 18, line 2)"),
        ({}, "nowhere.sql", "file not found: nowhere.sql (relative to *)"),
        ({"db/x.sql": b""}, "db", "a directory, not a file: db (relative to *)"),
    ],
    ids=["latin-1", "second-line", "missing", "directory"],
)  # fmt: skip
def test_setup_files_are_checked_when_the_file_is_read(
    tmp_path: Path, files: dict[str, bytes], step: str, expected: str
) -> None:
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    message = errors_of(f"version: 1\ndatabase:\n  setup: [{step}]\n", tmp_path)
    expected = expected.replace("UTF-8", "UTF-8 text")
    assert fnmatch(message, f"*budgets.yaml:3: database.setup[[]0[]]: {expected}*"), message


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({}, "file not found: q.sql (relative to *)"),
        ({"q.sql": b"SELECT '\xe9'"}, "q.sql is not UTF-8 text (byte 8, line 1); save it as UTF-8"),
        ({"q.sql": b"  \n"}, "q.sql: expected a SQL statement"),
    ],
    ids=["missing", "not-utf-8", "empty"],
)
def test_a_sql_file_is_read_when_the_budgets_file_is(
    tmp_path: Path, files: dict[str, bytes], expected: str
) -> None:
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    message = errors_of("version: 1\nqueries:\n  q: {sql_file: q.sql}\n", tmp_path)
    assert fnmatch(message, f"*budgets.yaml:3: queries.q.sql_file: {expected}"), message


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(tinyapp=TINYAPP)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    return pytester


def test_what_crashed_mid_run_is_a_usage_error_before_anything_starts(
    project: pytest.Pytester,
) -> None:
    project.makefile(
        ".yaml",
        budgets="""
        version: 1
        target: {app: "tinyapp:app", headers: {X-Who: "José"}}
        database: {dsn: "postgresql://ci:hunter2@127.0.0.1:5432x/db"}
        endpoints:
          create: {request: POST /echo, json: {on: 2026-06-13, blob: !!binary aGk=}}
        queries:
          q: {sql: SELECT 1, setup_sql: ["COMMIT AND CHAIN"]}
        """,
    )
    result = project.runpytest("--perfgate")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*budgets.yaml:2: target.headers.X-Who: expected ASCII text in a header value*",
            "*budgets.yaml:3: database.dsn: expected a URL like postgresql://*",
            "*budgets.yaml:5: endpoints.create.json.blob: expected a JSON value*",
            "*budgets.yaml:7: queries.q.setup_sql[[]0[]]: COMMIT AND CHAIN is not allowed*",
        ]
    )
    output = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in output
    assert "hunter2" not in output


def test_an_endpoint_whose_every_request_failed_fails(project: pytest.Pytester) -> None:
    project.makefile(
        ".yaml",
        budgets="""
        version: 1
        target: {app: "tinyapp:app"}
        defaults: {requests: 20, concurrency: 2, warmup: 0}
        endpoints:
          down: GET /broken
          down-as-expected: {request: GET /broken, budget: {error_rate: 100%}}
          dated: {request: POST /echo, json: {day: 2026-06-13}}
        """,
    )
    result = project.runpytest("--perfgate", "-v")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*budgets.yaml::down FAILED*",
            "*perfgate: endpoint 'down' (GET /broken) failed:",
            "*- every request failed (20 of 20), so nothing was measured",
            '*errors seen: HTTP 503 ×20: {"error": "down"}',
        ]
    )


@pytest.mark.parametrize(
    ("flag", "says"),
    [
        ("--perfgate-json=out", "--perfgate-json=out: is a directory; give a file path, e.g. "
         "out/results.json"),
        ("--perfgate-report=out", "--perfgate-report=out: is a directory*out/report.md"),
        ("--perfgate-json=budgets.yaml/r.json", "--perfgate-json=budgets.yaml/r.json: "
         "*/budgets.yaml is a file, not a directory"),
        ("--perfgate-json=", "--perfgate-json: expected a file path, got nothing"),
        ("--perfgate-store=bogus", "--perfgate-store=bogus: unknown baseline store 'bogus': "
         "expected 'git' (the perfgate-baselines branch), 'git:REF' or 'dir:PATH'"),
        ("--perfgate-store=dir:", "*=dir:: *'dir:' needs a directory after the colon"),
        ("--perfgate-store=dir:budgets.yaml", "*/budgets.yaml is a file, not a directory"),
        ("--perfgate-store=git:", "*=git:: *'git:' needs a ref name after the colon"),
        ("--perfgate-store=", "--perfgate-store: expected a value, got nothing"),
        ("--perfgate-budgets=", "--perfgate-budgets: expected a value, got nothing"),
    ],
)  # fmt: skip
def test_a_flag_that_cannot_work_is_a_usage_error_before_the_run(
    project: pytest.Pytester, flag: str, says: str
) -> None:
    """Each was found only after every item had run: a warning, and the report lost."""
    project.makefile(".yaml", budgets=APP + "endpoints: {fast: GET /fast}\n")
    (project.path / "out").mkdir()
    result = project.runpytest("--perfgate", "budgets.yaml", flag)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: perfgate: {says}"])


def test_the_store_in_the_ini_file_is_named_as_such(project: pytest.Pytester) -> None:
    project.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\nperfgate_store = s3\n"
    )
    project.makefile(".yaml", budgets=APP + "endpoints: {fast: GET /fast}\n")
    assert project.runpytest().ret == pytest.ExitCode.NO_TESTS_COLLECTED  # not without --perfgate
    result = project.runpytest("--perfgate")
    result.stderr.fnmatch_lines(["ERROR: perfgate: perfgate_store=s3: unknown baseline store*"])


def test_a_parameter_postgresql_refuses_is_the_items_error(
    project: pytest.Pytester, pg_server_dsn: str
) -> None:
    """Only PostgreSQL knows a parameter's type, so this one is found when the query runs."""
    project.makefile(
        ".yaml",
        budgets=f"""
        version: 1
        database: {{dsn: "{pg_server_dsn}"}}
        defaults: {{runs: 2}}
        queries:
          mapping-for-int: {{sql: "SELECT $1::int", params: [{{a: 1}}]}}
          not-a-date: {{sql: "SELECT $1::date", params: [someday], generic_plan: true}}
          fine: {{sql: "SELECT $1::date", params: [2026-06-13]}}
        """,
    )
    result = project.runpytest("--perfgate")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines_random(
        [
            "*query 'mapping-for-int' (SELECT $1::int) could not be measured: invalid input for "
            "query argument $1: {'a': 1}*",
            "*query 'not-a-date' (SELECT $1::date) could not be measured: EXECUTE: invalid input "
            'syntax for type date: "someday"*',
        ]
    )
    assert "Traceback" not in result.stdout.str()
