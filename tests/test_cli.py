"""The `perfgate` command's CI helpers: report, annotate, and their help and error messages."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from perfgate import cli
from perfgate.ci.annotate import Annotation, escape_data, escape_property, parse_source
from perfgate.cli import main
from perfgate.report import read_json, render_markdown, write_json
from perfgate.verdict.model import GateReport, Verdict
from perfgate.verdict.values import Comparison, Kind, Metric, Outcome, Status, check_limit


def ms(value: float, low: float | None = None, high: float | None = None) -> Metric:
    return Metric(value, "ms", low, high, 0.95 if low is not None else None)


def over_budget() -> Verdict:
    p95 = ms(182.4, 171.3, 190.2)
    return Verdict(
        name="clients",
        kind=Kind.ENDPOINT,
        status=Status.FAILED,
        metrics={"p95_ms": p95},
        checks=(check_limit("p95_ms", 100, p95),),
        source="budgets.yaml:31",
        description="GET /api/clients?supplier_id=7",
    )


def marginal_pass() -> Verdict:
    p95 = ms(19.8, 18.1, 21.9)
    inconclusive = Comparison(
        metric="p95_ms",
        baseline=ms(19.2),
        current=p95,
        change=Metric(0.031, "ratio", -0.02, 0.085, 0.95),
        threshold=0.10,
        outcome=Outcome.INCONCLUSIVE,
        reason="+3.1% [-2.0%, +8.5%]: the interval reaches past neither threshold",
    )
    return Verdict(
        name="guest-list",
        kind=Kind.ENDPOINT,
        status=Status.PASSED,
        metrics={"p95_ms": p95},
        checks=(check_limit("p95_ms", 20, p95),),
        source="budgets.yaml:34",
        comparisons=(inconclusive,),
    )


def slower_query() -> Verdict:
    execution = ms(14.0, 13.1, 15.2)
    regression = Comparison(
        metric="execution_ms",
        baseline=ms(7.0),
        current=execution,
        change=Metric(1.0, "ratio", 0.8, 1.2, 0.95),
        threshold=0.10,
        outcome=Outcome.REGRESSION,
        reason="+100.0% [+80.0%, +120.0%] is above the 10% threshold",
    )
    return Verdict(
        name="clients-by-supplier",
        kind=Kind.QUERY,
        status=Status.FAILED,
        metrics={"execution_ms": execution},
        checks=(check_limit("execution_ms", 20, execution),),
        source="budgets.yaml:52",
        description="SELECT id FROM clients WHERE supplier_id = $1",
        comparisons=(regression,),
    )


def broken() -> Verdict:
    return Verdict(
        name="schedule",
        kind=Kind.ENDPOINT,
        status=Status.ERROR,
        error="connection refused: postgresql://app:hunter2@db:5432/app\n::add-mask::x",
        source="budgets.yaml:44",
    )


def fine() -> Verdict:
    return Verdict("journey", Kind.ENDPOINT, Status.PASSED, source="budgets.yaml:40")


def gate(*results: Verdict, warn_only: bool = False) -> GateReport:
    return GateReport(
        results=results or (over_budget(), marginal_pass(), slower_query(), broken(), fine()),
        environment={"python": "3.12.3"},
        created_at="2026-03-02T10:15:00Z",
        perfgate_version="0.1.0",
        budgets_file="budgets.yaml",
        warn_only=warn_only,
    )


@pytest.fixture
def results(tmp_path: Path) -> Path:
    path = tmp_path / "results.json"
    write_json(gate(), path)
    return path


def test_annotate_points_at_the_budgets_lines(
    results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["annotate", str(results)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4  # "journey" passed cleanly: no annotation
    assert lines[0] == (
        "::error file=budgets.yaml,line=31,title=perfgate%3A endpoint clients over budget::"
        "perfgate: endpoint 'clients' (GET /api/clients?supplier_id=7) is over budget:%0A"
        "  - p95_ms 182ms [171ms, 190ms] > limit 100ms"
    )
    assert lines[1].startswith(
        "::warning file=budgets.yaml,line=34,title=perfgate%3A endpoint guest-list needs a "
        "second look::p95_ms 19.8ms [18.1ms, 21.9ms] <= limit 20.0ms (marginal"
    )
    assert "%0Ap95_ms: inconclusive against the baseline: +3.1%25 [-2.0%25, +8.5%25]" in lines[1]
    assert lines[2].startswith(
        "::error file=budgets.yaml,line=52,title=perfgate%3A query clients-by-supplier "
        "slower than the baseline::"
    )
    assert "regression in execution_ms: +100.0%25" in lines[2]


def test_annotate_escapes_untrusted_text(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["annotate", str(results)])
    error = capsys.readouterr().out.splitlines()[3]
    assert error.startswith("::error file=budgets.yaml,line=44,title=perfgate%3A endpoint ")
    assert "could not be measured: connection refused" in error
    assert "%0A::add-mask::x" in error  # the newline is data, so no second command starts
    assert "hunter2" not in error


def test_workflow_command_escaping() -> None:
    assert escape_data("100% done\r\nnext") == "100%25 done%0D%0Anext"
    assert escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"
    annotation = Annotation("warning", "t,i:t", "m", "dir/budgets, v2.yaml", 3)
    assert annotation.command() == "::warning file=dir/budgets%2C v2.yaml,line=3,title=t%2Ci%3At::m"
    assert Annotation("error", "t", "m").command() == "::error title=t::m"


def test_parse_source() -> None:
    assert parse_source("budgets.yaml:14") == ("budgets.yaml", 14)
    assert parse_source("ci/perf/budgets.yaml:7") == ("ci/perf/budgets.yaml", 7)
    assert parse_source("tests/test_perf.py::test_checkout") == ("tests/test_perf.py", None)
    assert parse_source(None) == (None, None)


def test_warn_only_failures_are_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "r.json"
    write_json(gate(replace(over_budget(), status=Status.WARNED), warn_only=True), path)
    main(["annotate", str(path)])
    assert capsys.readouterr().out.startswith(
        "::warning file=budgets.yaml,line=31,title=perfgate%3A endpoint clients over budget "
        "(warn-only)::"
    )


def test_report_markdown_is_the_plugins_report(
    results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(results)]) == 0
    assert capsys.readouterr().out == render_markdown(read_json(results))


def test_report_json_is_normalised(results: Path, tmp_path: Path) -> None:
    data = json.loads(results.read_text())
    data["results"][0]["metrics"]["p95_ms"]["value"] = None  # NaN in memory, null again on output
    messy = tmp_path / "messy.json"
    messy.write_text(json.dumps(data, indent=None))
    out = tmp_path / "clean.json"
    assert main(["report", str(messy), "--format", "json", "-o", str(out)]) == 0
    clean = json.loads(out.read_text())
    assert clean["schema"] == 2
    assert clean["results"][0]["metrics"]["p95_ms"]["value"] is None
    assert read_json(out) == read_json(messy)


def test_report_github_annotates_and_fills_the_step_summary(
    results: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert main(["report", str(results), "--format", "github"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("::error file=budgets.yaml,line=31,")
    assert "## " not in out
    text = summary.read_text()
    assert text.startswith("earlier step\n## ❌ perfgate: 2 failed, 1 error")


def test_report_github_without_a_step_summary_prints_the_markdown(
    results: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    main(["report", str(results), "--format", "github"])
    assert "\n## ❌ perfgate: 2 failed, 1 error" in capsys.readouterr().out


def test_a_bad_results_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    for command in ("report", "annotate", "comment", "notify"):
        assert main([command, str(bad)]) == 2
        assert f"perfgate {command}: {bad}:1: not valid JSON" in capsys.readouterr().err


def test_an_oversized_results_file_is_refused(
    results: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "MAX_RESULTS_BYTES", 100)
    assert main(["annotate", str(results)]) == 2
    assert "is too large for a perfgate results file (limit 100)" in capsys.readouterr().err


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    out = capsys.readouterr().out
    for command in ("check-budgets", "report", "annotate", "comment", "notify"):
        assert command in out
    with pytest.raises(SystemExit):
        main(["comment", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "found by a hidden marker" in help_text
    assert "--head-sha SHA" in help_text
    assert "--max-wait SECONDS" in help_text
