"""The plugin as a user meets it: collection, options, gating, warn-only, the fixture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

TINYAPP = (Path(__file__).parent / "apps" / "tinyapp.py").read_text()

BUDGETS = """
version: 1
target:
  app: "tinyapp:app"
  headers: {Authorization: "Bearer s3cr3t-token"}
defaults:
  requests: 60
  concurrency: 4
  warmup: 5
endpoints:
  fast:
    request: GET /fast
    budget: {p95_ms: 500, error_rate: 0, cache_hit_ratio: 80%, server_p95_ms: 100}
  slow:
    request: GET /slow
    budget: {p50_ms: 5}
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(tinyapp=TINYAPP)
    pytester.makefile(".yaml", budgets=BUDGETS)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    return pytester


def test_without_the_flag_nothing_is_measured(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_perf="""
        def test_uses_fixture(perfgate):
            raise AssertionError("must not run")
        """
    )
    result = project.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*perfgate measurements run only with --perfgate*"])


def test_every_endpoint_is_an_item_and_a_breach_fails_its_own(project: pytest.Pytester) -> None:
    result = project.runpytest("--perfgate", "-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*budgets.yaml::fast PASSED*",
            "*budgets.yaml::slow FAILED*",
            "*perfgate: endpoint 'slow' (GET /slow) is over budget:*",
            "*p50_ms *ms [[]*ms, *ms[]] > limit 5.0ms*",
            "*= perfgate =*",
        ]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_selection_with_k_and_marker(project: pytest.Pytester) -> None:
    result = project.runpytest("--perfgate", "-k", "fast", "-m", "perfgate")
    result.assert_outcomes(passed=1)


def test_warn_only_reports_but_passes(project: pytest.Pytester) -> None:
    result = project.runpytest("--perfgate", "--perfgate-warn-only", "--perfgate-json=out.json")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.OK
    data = json.loads((project.path / "out.json").read_text())
    statuses = {r["name"]: r["status"] for r in data["results"]}
    assert statuses == {"fast": "passed", "slow": "warned"}
    assert data["status"] == "passed"


def test_json_report_carries_metrics_checks_and_no_secret(project: pytest.Pytester) -> None:
    result = project.runpytest(
        "--perfgate", "--perfgate-json=r/out.json", "--perfgate-report=r/out.md"
    )
    result.assert_outcomes(passed=1, failed=1)
    text = (project.path / "r" / "out.json").read_text()
    assert "s3cr3t-token" not in text
    assert "s3cr3t-token" not in (project.path / "r" / "out.md").read_text()
    assert "s3cr3t-token" not in result.stdout.str()
    data = json.loads(text)
    assert data["schema"] == 2
    fast = next(r for r in data["results"] if r["name"] == "fast")
    assert fast["kind"] == "endpoint"
    assert fast["metrics"]["requests"]["value"] == 60
    low, high = fast["metrics"]["p95_ms"]["interval"]
    assert low <= fast["metrics"]["p95_ms"]["value"] <= high
    assert fast["metrics"]["cache_hit_ratio"]["value"] > 0.9
    assert fast["metrics"]["server_p95_ms"]["value"] == pytest.approx(0.5)
    checks = {c["metric"]: c["status"] for c in fast["checks"]}
    assert checks == {
        "p95_ms": "pass",
        "error_rate": "pass",
        "cache_hit_ratio": "pass",
        "server_p95_ms": "pass",
    }
    assert set(data["environment"]) >= {"python", "perfgate", "cpu_count"}


def test_step_summary_is_appended(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = project.path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    project.runpytest("--perfgate", "-k", "fast")
    text = summary.read_text()
    assert text.startswith("earlier step\n")
    assert "fast" in text


def test_fixture_gates_scenarios_written_in_code(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_perf="""
        import pytest

        @pytest.mark.asyncio
        async def test_fast(perfgate):
            result = await perfgate.endpoint("GET", "/fast", requests=40, concurrency=4,
                                             budget={"p99_ms": 500})
            assert result.status == "passed"
            assert result.metrics["requests"].value == 40

        @pytest.mark.asyncio
        async def test_broken(perfgate):
            await perfgate.endpoint("GET", "/broken", requests=10, budget={"error_rate": "5%"})
        """
    )
    result = project.runpytest("--perfgate", "test_perf.py")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*error_rate 100.0%*> limit 5.0%*"])


def test_fixture_rejects_a_bad_budget_clearly(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_perf="""
        import pytest

        @pytest.mark.asyncio
        async def test_bad(perfgate):
            await perfgate.endpoint("GET", "/fast", budget={"p95": 100})
        """
    )
    result = project.runpytest("--perfgate", "test_perf.py")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*p95: unknown key (did you mean 'p95_ms'?)*"])


def test_budgets_option_and_ini(pytester: pytest.Pytester) -> None:
    # Paths in a budgets file (here the app's module) are relative to the file's directory.
    (pytester.path / "perf").mkdir()
    (pytester.path / "perf" / "tinyapp.py").write_text(TINYAPP)
    (pytester.path / "perf" / "gate.yaml").write_text(BUDGETS)
    pytester.makeini(
        "[pytest]\nperfgate_budgets = perf/gate.yaml\n"
        "asyncio_default_fixture_loop_scope = function\n"
    )
    result = pytester.runpytest("--perfgate", "-k", "fast")
    result.assert_outcomes(passed=1)
    result = pytester.runpytest("--perfgate", "--perfgate-budgets=missing.yaml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*missing.yaml: budgets file not found*"])


def test_help_lists_every_option(project: pytest.Pytester) -> None:
    result = project.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "*perfgate*",
            "*--perfgate *measure the endpoints and queries*",
            "*--perfgate-budgets=PATH*",
            "*--perfgate-report=PATH*",
            "*--perfgate-json=PATH*",
            "*--perfgate-warn-only*",
            "*--perfgate-save*record the results as the baseline of HEAD*",
            "*--perfgate-push*",
            "*--perfgate-compare=*",
            "*--perfgate-store=SPEC*",
            "*--perfgate-interleave=REF*",
            "*perfgate_store (string)*",
            "*perfgate_budgets (string)*",
        ]
    )


def test_warn_only_keeps_errors_as_errors(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makefile(
        ".yaml",
        budgets="""
        version: 1
        target: {base_url: "http://127.0.0.1:9", ready_timeout: 200ms}
        endpoints:
          down: GET /x
        """,
    )
    result = pytester.runpytest("--perfgate", "--perfgate-warn-only", "--perfgate-json=out.json")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    data = json.loads((pytester.path / "out.json").read_text())
    assert [r["status"] for r in data["results"]] == ["error"]
    assert "over budget" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*1 error*"])


def test_a_yaml_file_named_on_the_command_line_is_the_budgets_file(
    project: pytest.Pytester,
) -> None:
    (project.path / "budgets.yaml").rename(project.path / "perf.yaml")
    result = project.runpytest("--perfgate", "perf.yaml", "-k", "fast")
    result.assert_outcomes(passed=1)


def test_option_mistakes_are_usage_errors(project: pytest.Pytester) -> None:
    for args, expected in (
        (["--perfgate-push"], "*--perfgate-push publishes what --perfgate-save saves*"),
        (["--perfgate-compare=nope.json"], "*--perfgate-compare=nope.json: no such file*"),
        (["--perfgate-compare", "budgets.yaml"], "*took 'budgets.yaml' as the baseline*"),
    ):
        result = project.runpytest("--perfgate", *args)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([expected])


def test_a_quantile_without_an_interval_says_why(project: pytest.Pytester) -> None:
    project.makefile(".yaml", budgets=BUDGETS.replace("requests: 60", "requests: 50"))
    result = project.runpytest("--perfgate", "--perfgate-json=out.json", "-k", "slow")
    data = json.loads((project.path / "out.json").read_text())
    (slow,) = data["results"]
    assert slow["checks"][0]["interval"] is not None  # p50 from 50 requests has one
    project.makefile(
        ".yaml", budgets=BUDGETS.replace("requests: 60", "requests: 50").replace("p50_ms", "p99_ms")
    )
    result = project.runpytest("--perfgate", "--perfgate-json=out.json", "-k", "slow")
    result.stdout.fnmatch_lines(["*no 95% interval for p99 from 50 requests*"])
    data = json.loads((project.path / "out.json").read_text())
    (slow,) = data["results"]
    assert slow["checks"][0]["note"] == (
        "no 95% interval for p99 from 50 requests (needs at least 299)"
    )


def test_environment_values_sent_to_the_target_are_masked(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUSTOM_SECRET", "zz-top-secret-zz")
    project.makefile(
        ".yaml",
        budgets="""
        version: 1
        target: {app: "tinyapp:app"}
        defaults: {requests: 10, concurrency: 2, warmup: 0}
        endpoints:
          q:
            request: GET /broken?key=${CUSTOM_SECRET}
            headers: {X-Custom: "${CUSTOM_SECRET}"}
            budget: {error_rate: 0}
        """,
    )
    result = project.runpytest("--perfgate", "--perfgate-json=out.json", "--perfgate-report=r.md")
    result.assert_outcomes(failed=1)
    for text in (
        result.stdout.str(),
        (project.path / "out.json").read_text(),
        (project.path / "r.md").read_text(),
    ):
        assert "zz-top-secret-zz" not in text


def test_fixture_scenarios_are_compared_with_the_baseline(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_perf="""
        import os
        import pytest

        @pytest.mark.asyncio
        async def test_slow(perfgate):
            await perfgate.endpoint("GET", "/slow", name="slow-fixture", requests=120,
                                    concurrency=2, budget={"p99_ms": 2000})
        """
    )
    args = ("--perfgate", "test_perf.py")
    project.runpytest(*args, "--perfgate-json=base.json").assert_outcomes(passed=1)
    result = project.runpytest(*args, "--perfgate-compare=base.json", "--perfgate-json=cur.json")
    result.assert_outcomes(passed=1)
    data = json.loads((project.path / "cur.json").read_text())
    (slow,) = data["results"]
    # /slow reports x-response-time, so the timing comparison is on server time
    assert {c["metric"] for c in slow["comparisons"]} >= {"server_p95_ms", "error_rate"}
    assert data["baseline"]["how"] == "file base.json"


def test_fixture_query_gates_sql_on_the_scratch_database(
    pytester: pytest.Pytester, pg_server_dsn: str
) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    (pytester.path / "schema.sql").write_text(
        "CREATE TABLE guests (id int PRIMARY KEY, wedding_id int NOT NULL);"
        "INSERT INTO guests SELECT g, g % 100 FROM generate_series(1, 20000) g;"
        "CREATE INDEX ON guests (wedding_id);"
    )
    pytester.makefile(
        ".yaml",
        budgets=f'version: 1\ndatabase: {{dsn: "{pg_server_dsn}", setup: [schema.sql]}}\n',
    )
    pytester.makepyfile(
        test_sql="""
        import pytest

        @pytest.mark.asyncio
        async def test_indexed(perfgate):
            verdict = await perfgate.query(
                "by-wedding", "SELECT id FROM guests WHERE wedding_id = $1", 7,
                budget={"max_buffers": 500, "no_seq_scan": True}, runs=3,
            )
            assert verdict.metrics["rows"].value == 200
            assert verdict.details.coarse_fingerprint

        @pytest.mark.asyncio
        async def test_scan(perfgate):
            await perfgate.query(
                "scan", "SELECT id FROM guests WHERE id % 7 = $1", 3,
                budget={"no_seq_scan": True}, runs=2,
            )
        """
    )
    result = pytester.runpytest("--perfgate", "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*no_seq_scan: Seq Scan on guests*"])
