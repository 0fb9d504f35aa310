"""Reports: the terminal section, the markdown report, the JSON file, the GitHub step summary.

The markdown golden files live in ``tests/golden/``. After an intended change to the report,
regenerate them and read the diff before committing::

    PERFGATE_UPDATE_GOLDEN=1 pytest tests/test_report.py
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import replace
from pathlib import Path

import pytest

from perfgate.exceptions import PerfgateError
from perfgate.plan import Finding, NodeChange, parse_plan
from perfgate.report import (
    append_step_summary,
    read_json,
    render_markdown,
    render_terminal,
    write_json,
    write_markdown,
)
from perfgate.report.markdown import fence, md
from perfgate.verdict.details import EndpointDetails, QueryDetails
from perfgate.verdict.model import BaselineInfo, GateReport, Verdict
from perfgate.verdict.values import Comparison, Kind, Metric, Outcome, Status, check_limit

GOLDEN = Path(__file__).parent / "golden"
UPDATE = bool(os.environ.get("PERFGATE_UPDATE_GOLDEN"))
SHAS = [f"{i:x}" * 40 for i in range(1, 8)]


def ms(value: float, low: float | None = None, high: float | None = None) -> Metric:
    return Metric(value, "ms", low, high, 0.95 if low is not None else None)


def change(value: float, low: float, high: float) -> Metric:
    return Metric(value, "ratio", low, high, 0.95)


def clients_list() -> Verdict:
    """An endpoint over its p99 budget, slower than the baseline at p95."""
    metrics = {
        "p50_ms": ms(41.0, 38.2, 44.9),
        "p90_ms": ms(150.2, 141.0, 162.5),
        "p95_ms": ms(182.4, 171.3, 190.2),
        "p99_ms": ms(312.0, 288.5, 351.0),
        "mean_ms": ms(63.5, 60.1, 67.2),
        "max_ms": ms(402.0),
        "error_rate": Metric(0.03, "ratio", 0.018, 0.047, 0.95),
        "throughput_rps": Metric(812.4, "rps"),
        "cache_hit_ratio": Metric(0.931, "ratio"),
        "max_bytes": Metric(13_000, "bytes"),
        "mean_bytes": Metric(12_100, "bytes"),
        "requests": Metric(400, "count"),
        "errors": Metric(12, "count"),
    }
    checks = (
        check_limit("p95_ms", 200, metrics["p95_ms"]),
        check_limit("p99_ms", 250, metrics["p99_ms"]),
        check_limit("error_rate", 0.05, metrics["error_rate"]),
    )
    regression = Comparison(
        metric="p95_ms",
        baseline=ms(150.1, 143.0, 158.8),
        current=metrics["p95_ms"],
        change=change(0.215, 0.121, 0.304),
        threshold=0.10,
        outcome=Outcome.REGRESSION,
        reason="+21.5% [+12.1%, +30.4%] is above the 10% threshold, and so is the whole interval",
    )
    unchanged = Comparison(
        metric="p50_ms",
        baseline=ms(40.2, 37.9, 43.1),
        current=metrics["p50_ms"],
        change=change(0.02, -0.04, 0.08),
        threshold=0.10,
        outcome=Outcome.UNCHANGED,
        reason="the interval lies within ±10%",
    )
    return Verdict(
        name="clients-list",
        kind=Kind.ENDPOINT,
        status=Status.FAILED,
        metrics=metrics,
        checks=checks,
        source="budgets.yaml:14",
        description="GET /api/clients?supplier_id=7",
        details=EndpointDetails(
            requests=400, concurrency=8, warmup=30, error_summary=("HTTP 503 ×12",)
        ),
        comparisons=(regression, unchanged),
    )


def client_detail() -> Verdict:
    """A pass whose interval straddles the budget, and an inconclusive comparison."""
    p95 = ms(19.8, 18.1, 21.9)
    return Verdict(
        name="client-detail",
        kind=Kind.ENDPOINT,
        status=Status.PASSED,
        metrics={"p50_ms": ms(8.4, 8.1, 8.9), "p95_ms": p95, "p99_ms": ms(27.5, 24.0, 33.1)},
        checks=(check_limit("p95_ms", 20, p95),),
        source="budgets.yaml:22",
        description="GET /api/clients/{id}",
        details=EndpointDetails(requests=200, concurrency=4, warmup=30),
        comparisons=(
            Comparison(
                metric="p95_ms",
                baseline=ms(19.2, 17.9, 20.8),
                current=p95,
                change=change(0.031, -0.02, 0.085),
                threshold=0.10,
                outcome=Outcome.INCONCLUSIVE,
                reason="+3.1% [-2.0%, +8.5%]: the interval reaches past neither threshold",
            ),
        ),
    )


def export_error() -> Verdict:
    return Verdict(
        name="reports-export",
        kind=Kind.ENDPOINT,
        status=Status.ERROR,
        error="TargetError: connection refused by 127.0.0.1:8000\n(after 3 attempts)",
        source="budgets.yaml:30",
        description="POST /api/reports/export",
    )


GUESTS_SQL = """SELECT id, name
FROM guests
WHERE wedding_id = $1 AND lower(name) LIKE lower($2) || '%'
ORDER BY name
LIMIT 50"""

GUESTS_PLAN = parse_plan(
    [
        {
            "Plan": {
                "Node Type": "Limit",
                "Actual Rows": 50,
                "Actual Loops": 1,
                "Shared Hit Blocks": 1234,
                "Plans": [
                    {
                        "Node Type": "Sort",
                        "Actual Rows": 50,
                        "Actual Loops": 1,
                        "Shared Hit Blocks": 1234,
                        "Plans": [
                            {
                                "Node Type": "Seq Scan",
                                "Relation Name": "guests",
                                "Actual Rows": 120,
                                "Actual Loops": 1,
                                "Shared Hit Blocks": 1234,
                                "Rows Removed by Filter": 49880,
                            }
                        ],
                    }
                ],
            }
        }
    ]
)
SEQ_SCAN = Finding(
    rule="seq-scan-filter",
    severity="error",
    path="0.0.0",
    node_type="Seq Scan",
    relation="guests",
    message="Seq Scan on guests read 50,000 rows to keep 120; an index on "
    "(wedding_id, lower(name)) would avoid it",
)


def guests_by_name() -> Verdict:
    """A query whose plan went from an index scan to a forbidden sequential scan."""
    buffers = Metric(1234, "count")
    return Verdict(
        name="guests-by-name",
        kind=Kind.QUERY,
        status=Status.FAILED,
        metrics={
            "execution_ms": ms(4.2, 3.9, 4.8),
            "planning_ms": ms(0.21),
            "buffers": buffers,
            "rows": Metric(50, "count"),
            "temp_blocks": Metric(0, "count"),
        },
        checks=(check_limit("buffers", 1000, buffers),),
        source="budgets.yaml:41",
        description=GUESTS_SQL,
        failures=("Seq Scan on guests is forbidden",),
        details=QueryDetails(
            sql=GUESTS_SQL,
            plan=GUESTS_PLAN,
            findings=(SEQ_SCAN,),
            fingerprint="9f2c4e1a7b3d",
            coarse_fingerprint="41d0aa",
            access_paths=("Seq Scan on guests",),
            plan_changes=(
                NodeChange(
                    kind="changed",
                    old_path="0.0.0",
                    new_path="0.0.0",
                    old_label="Index Scan using guests_wedding_name_idx on guests",
                    new_label="Seq Scan on guests",
                    old_rows=120,
                    new_rows=120,
                    old_buffers=9,
                    new_buffers=1234,
                ),
            ),
        ),
        comparisons=(
            Comparison(
                metric="access_paths",
                baseline=Metric(math.nan, ""),
                current=Metric(math.nan, ""),
                change=None,
                threshold=None,
                outcome=Outcome.REGRESSION,
                reason="Index Scan on guests became Seq Scan on guests",
                baseline_text="Index Scan using guests_wedding_name_idx on guests",
                current_text="Seq Scan on guests",
            ),
        ),
    )


def upcoming_weddings() -> Verdict:
    """A passing query with a warning finding and an improvement."""
    execution = ms(0.84, 0.79, 0.91)
    return Verdict(
        name="upcoming-weddings",
        kind=Kind.QUERY,
        status=Status.PASSED,
        metrics={
            "execution_ms": execution,
            "buffers": Metric(12, "count"),
            "rows": Metric(30, "count"),
        },
        checks=(check_limit("execution_ms", 5, execution),),
        source="budgets.yaml:55",
        description="SELECT * FROM weddings WHERE date >= current_date ORDER BY date LIMIT 30",
        details=QueryDetails(
            sql="SELECT * FROM weddings WHERE date >= current_date ORDER BY date LIMIT 30",
            findings=(
                Finding(
                    rule="heap-fetches",
                    severity="warning",
                    path="0.0",
                    node_type="Index Only Scan",
                    relation="weddings",
                    message="Index Only Scan fetched 30 rows from the heap; VACUUM sets "
                    "the visibility map",
                ),
            ),
        ),
        comparisons=(
            Comparison(
                metric="execution_ms",
                baseline=ms(1.31, 1.22, 1.40),
                current=execution,
                change=change(-0.359, -0.41, -0.30),
                threshold=0.10,
                outcome=Outcome.IMPROVEMENT,
                reason="-35.9% [-41.0%, -30.0%]: faster beyond the threshold",
            ),
        ),
    )


ENVIRONMENT = {
    "target": "http://127.0.0.1:8000",
    "python": "3.11.7",
    "perfgate": "0.1.0",
    "platform": "Linux-6.5.0-x86_64",
    "cpu_model": "AMD EPYC 7763 64-Core Processor",
    "cpu_count": 2,
    "postgres_version": "15.6",
    "database": "external",
    "planner_settings": {"random_page_cost": "1.1", "jit": "off"},
    "git_commit": "0123456789abcdef0123456789abcdef01234567",
}


def failing_report() -> GateReport:
    return GateReport(
        results=(
            clients_list(),
            client_detail(),
            export_error(),
            guests_by_name(),
            upcoming_weddings(),
        ),
        environment=ENVIRONMENT,
        created_at="2024-05-02T10:14:03Z",
        perfgate_version="0.1.0",
        budgets_file="budgets.yaml",
        baseline=BaselineInfo(
            commit="1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b",
            date="2024-05-01T09:12:44+00:00",
            how="merge-base of HEAD and origin/main, 2 commits back",
            source="git ref refs/perfgate/baselines",
        ),
    )


def warn_only_report() -> GateReport:
    over = replace(clients_list(), status=Status.WARNED, comparisons=())
    return GateReport(
        results=(over, replace(client_detail(), comparisons=())),
        environment={"python": "3.11.7", "perfgate": "0.1.0", "database": "embedded"},
        created_at="2024-05-02T10:14:03Z",
        perfgate_version="0.1.0",
        budgets_file="budgets.yaml",
        warn_only=True,
        baseline=BaselineInfo(
            commit=None,
            date=None,
            how="walked back 7 commits from the merge-base of HEAD and origin/main",
            searched=tuple(SHAS),
            found=False,
        ),
    )


def assert_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), (
        f"{path} differs; if the change is intended, rerun with PERFGATE_UPDATE_GOLDEN=1"
    )


def table_shapes(markdown: str) -> list[list[int]]:
    """For each table: the number of cells in every row (raw pipes split cells in GFM)."""
    tables: list[list[int]] = []
    previous = ""
    for line in markdown.splitlines():
        if line.startswith("|"):
            if not previous.startswith("|"):
                tables.append([])
            tables[-1].append(line.count("|") - 1)
        previous = line
    return tables


# --- markdown -----------------------------------------------------------------------------


def test_markdown_failing_report_matches_golden() -> None:
    assert_golden("failing.md", render_markdown(failing_report()))


def test_markdown_warn_only_report_matches_golden() -> None:
    assert_golden("warn_only.md", render_markdown(warn_only_report()))


def test_markdown_headline_counts_and_baseline() -> None:
    text = render_markdown(failing_report())
    first = text.splitlines()[0]
    assert first == (
        "## ❌ perfgate: 2 failed, 1 error, 2 passed · 2 regressions · 1 inconclusive"
        " · 1 improvement"
    )
    assert "<code>1a2b3c4</code> of 2024-05-01 (merge-base of HEAD and origin/main" in text


def test_markdown_warn_only_and_missing_baseline() -> None:
    text = render_markdown(warn_only_report())
    assert text.startswith("## ⚠️ perfgate: 1 over budget (warn-only), 1 passed\n")
    assert "No baseline: searched 7 commits (<code>1111111</code>, " in text
    assert ", …), walked back 7 commits" in text
    assert "⚠️ warn" in text


def test_markdown_all_passing_is_green() -> None:
    report = replace(failing_report(), results=(client_detail(), upcoming_weddings()))
    text = render_markdown(report)
    assert text.startswith("## ✅ perfgate: 2 passed · no regressions · 1 inconclusive")
    assert "What needs a look" not in text
    assert "<details><summary>Passing items" in text


def test_markdown_without_results() -> None:
    report = GateReport((), {}, "2024-05-02T10:14:03Z", "0.1.0")
    assert "No endpoints or queries were gated." in render_markdown(report)


def test_markdown_tables_keep_their_columns() -> None:
    for table in table_shapes(render_markdown(failing_report())):
        assert len(set(table)) == 1, table


HOSTILE_NAMES = [
    "a|b<img src=x>",
    "@everyone",
    "](http://evil)",
    "[click](https://evil.example/x)",
    "x\n| injected | row |",
    "`code` *bold* _em_ ~~strike~~ $math$ <!-- c --> &amp; #1",
    "www.evil.example",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_markdown_escapes_user_text_everywhere(name: str) -> None:
    hostile = replace(
        clients_list(),
        name=name,
        description=name,
        error=name,
        details=EndpointDetails(requests=400, concurrency=8, warmup=30, error_summary=(name,)),
        failures=(name,),
        comparisons=(replace(clients_list().comparisons[0], reason=name),),
    )
    query = replace(
        guests_by_name(),
        name=name,
        details=replace(
            query_details(guests_by_name()),
            findings=(replace(SEQ_SCAN, rule=name, message=name, relation=name),),
        ),
    )
    report = replace(
        failing_report(),
        results=(hostile, query),
        environment={"target": name, name: name},
        budgets_file=name,
    )
    text = render_markdown(report)
    fenced = re.sub(r"(?ms)^(`{3,})[a-z]*\n.*?^\1$", "", text)  # code blocks show it verbatim
    for table in table_shapes(fenced):
        assert len(set(table)) == 1, table
    for bad in ("<img", "@everyone", "](", "http://", "https://", "<!--", "www.evil", "`code`"):
        assert bad not in fenced
    assert "| injected |" not in fenced


def test_md_filter_escapes_each_special_character() -> None:
    assert md("a|b") == "a&#124;b"
    assert md("<b>&") == "&lt;b&gt;&amp;"
    assert md("@everyone") == "@&#8203;everyone"
    assert md("[x](y)") == "&#91;x&#93;(y)"
    assert md("*_`~\\#$") == "&#42;&#95;&#96;&#126;&#92;&#35;&#36;"
    assert md("supplier_id _em_ a__b") == "supplier_id &#95;em&#95; a&#95;&#95;b"
    assert md("line\nbreak\r\n  here") == "line break here"
    assert md("see http://x.example") == "see http&#58;&#8203;//x.example"
    assert md("www.x.example") == "www&#8203;&#46;x.example"
    assert (
        md("postgresql://app:hunter2@db/app")
        == "postgresql&#58;&#8203;//app:&#42;&#42;&#42;@&#8203;db/app"
    )
    assert md(42) == "42"


def test_fence_outgrows_backticks_inside() -> None:
    assert fence("select 1") == "```text\nselect 1\n```"
    block = fence("a ``` b ```` c", "sql")
    assert block.startswith("`````sql\n")
    assert block.endswith("\n`````")


def test_markdown_renders_as_gfm_tables() -> None:
    """With a real markdown parser (optional): every row has the header's cell count."""
    markdown_it = pytest.importorskip("markdown_it")
    parser = markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"])
    report = replace(
        failing_report(),
        results=(*failing_report().results, replace(clients_list(), name=HOSTILE_NAMES[0])),
    )
    tokens = parser.parse(render_markdown(report))
    cells = 0
    widths: list[int] = []
    tables = 0
    for token in tokens:
        if token.type == "tr_open":
            cells = 0
        elif token.type in ("th_open", "td_open"):
            cells += 1
        elif token.type == "tr_close":
            widths.append(cells)
        elif token.type == "thead_open":
            widths = []
        elif token.type == "table_close":
            tables += 1
            assert len(set(widths)) == 1, widths
    # endpoints, queries, 3 failing items' comparisons, plan diff, 2 passing, environment
    assert tables == 9
    html = parser.render(render_markdown(report))
    assert "<strong>a|b&lt;img src=x&gt;</strong>" in html  # shown as typed, inert
    assert "<img" not in html
    assert "<a " not in html


# --- terminal -----------------------------------------------------------------------------


def test_terminal_tables_verdicts_and_headline() -> None:
    lines = render_terminal(failing_report(), written=["out/perfgate.json", "out/perfgate.md"])
    text = "\n".join(lines)
    assert all(len(line) <= 100 for line in lines)
    assert lines[0].split() == ["endpoint", "p50", "p95", "p99", "errors", "budget", "verdict"]
    row = next(line for line in lines if line.startswith("clients-list "))
    assert row.split() == [
        "clients-list",
        "41.0ms",
        "182ms",
        "[171–190]",
        "312ms",
        "[288–351]",
        "3.0%",
        "p99",
        "<=",
        "250ms",
        "(+2)",
        "FAIL",
    ]
    assert next(line for line in lines if line.startswith("client-detail ")).endswith("MARGINAL")
    assert next(line for line in lines if line.startswith("reports-export ")).endswith("ERROR")
    assert "guests-by-name        4.2ms [3.9–4.8]    1,234    50  buffers <= 1,000  FAIL" in text
    assert "FAIL       clients-list: p99_ms 312ms [288ms, 351ms] > limit 250ms" in lines
    assert "FAIL       guests-by-name: Seq Scan on guests is forbidden" in lines
    # A multi-line error (a target's output) shows its first line; the rest is in its failure.
    assert (
        "ERROR      reports-export: TargetError: connection refused by 127.0.0.1:8000 (more above)"
        in lines
    )
    assert "REGRESSION guests-by-name access_paths: Index Scan on guests became Seq Scan" in text
    assert lines[-3:] == [
        "baseline: 1a2b3c4 2024-05-01, merge-base of HEAD and origin/main, 2 commits back",
        "perfgate: 2 failed, 1 error, 2 passed · 2 regressions · 1 inconclusive · 1 improvement",
        "reports: out/perfgate.json, out/perfgate.md",
    ]


def test_terminal_warn_only_without_baseline() -> None:
    lines = render_terminal(warn_only_report())
    assert next(line for line in lines if line.startswith("clients-list ")).endswith("WARN")
    assert lines[-3:] == [
        "no baseline: searched 7 commits (walked back 7 commits from the merge-base of HEAD and"
        " origin/main);",
        "  budgets only",
        "perfgate: 1 over budget (warn-only), 1 passed",
    ]


@pytest.mark.parametrize("width", [40, 60, 80, 100, 140])
def test_terminal_fits_the_width(width: int) -> None:
    long = replace(clients_list(), name="clients-list-for-a-supplier-with-a-very-long-name" * 2)
    report = replace(failing_report(), results=(long, *failing_report().results))
    lines = render_terminal(report, width=width, written=["a" * 50 + "/perfgate.json"])
    assert all(len(line) <= width for line in lines), [x for x in lines if len(x) > width]
    assert any("…" in line for line in lines[:5])  # the long name, cut


def test_terminal_narrow_drops_intervals_first() -> None:
    lines = render_terminal(failing_report(), width=80)
    assert lines[0].split() == ["endpoint", "p50", "p95", "p99", "errors", "budget", "verdict"]
    assert "[" not in lines[2]
    assert lines[2].startswith("clients-list")


def test_terminal_without_results() -> None:
    report = GateReport((), {}, "2024-05-02T10:14:03Z", "0.1.0")
    assert render_terminal(report) == [
        "no endpoints or queries were gated",
        "",
        "perfgate: 0 passed",
    ]


# --- JSON and files -----------------------------------------------------------------------


def test_json_round_trip(tmp_path: Path) -> None:
    report = failing_report()
    path = tmp_path / "perfgate.json"
    write_json(report, path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["schema"] == 2
    assert data["status"] == "failed"
    assert list(data) == [
        "schema",
        "perfgate_version",
        "created_at",
        "status",
        "warn_only",
        "budgets_file",
        "baseline",
        "completion",
        "results",
        "environment",
    ]
    again = read_json(path)
    assert again == GateReport.from_json(data)
    assert _canonical(again) == _canonical(report)


def _canonical(report: GateReport) -> object:
    """What the file holds: NaN and null read alike, and so do 200 and 200.0."""
    text = json.dumps(report.to_json()).replace("NaN", "null")
    return json.loads(text, parse_int=float)


def test_json_round_trip_is_exact(tmp_path: Path) -> None:
    report = replace(
        failing_report(),
        results=(clients_list(), client_detail(), export_error(), upcoming_weddings()),
    )  # no NaN in these, so == can hold
    write_json(report, tmp_path / "perfgate.json")
    assert read_json(tmp_path / "perfgate.json") == report


def test_json_has_no_nan(tmp_path: Path) -> None:
    """Whatever to_json leaves as NaN (here in a check's interval) is written as null."""
    broken = Metric(math.nan, "ms", math.nan, math.nan)
    result = replace(
        export_error(),
        metrics={"p95_ms": broken},
        checks=(check_limit("p95_ms", 200, broken),),
        details=EndpointDetails(requests=400, concurrency=8, warmup=30),
    )
    path = tmp_path / "r.json"
    write_json(replace(failing_report(), results=(result,)), path)
    text = path.read_text(encoding="utf-8")
    assert "NaN" not in text
    assert "Infinity" not in text
    entry = json.loads(text)["results"][0]
    assert entry["metrics"]["p95_ms"]["value"] is None
    assert entry["checks"][0]["interval"] == [None, None]
    assert entry["details"]["requests"] == 400


def test_atomic_writes_leave_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "dir"
    write_json(failing_report(), target / "perfgate.json")
    write_json(warn_only_report(), target / "perfgate.json")  # replaces the first
    write_markdown("# hi\n", target / "perfgate.md")
    assert sorted(p.name for p in target.iterdir()) == ["perfgate.json", "perfgate.md"]
    assert read_json(target / "perfgate.json").warn_only
    assert (target / "perfgate.md").read_text(encoding="utf-8") == "# hi\n"


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "perfgate.json"
    write_json(failing_report(), path)
    before = path.read_bytes()
    unserialisable = replace(failing_report(), environment={"x": object()})
    with pytest.raises(TypeError):
        write_json(unserialisable, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["perfgate.json"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"missing\.json: cannot read the perfgate results file: No such file"),
        ("{not json", r"bad\.json:1: not valid JSON: Expecting property name"),
        ("[1, 2]", r"bad\.json: not a perfgate results file: expected a JSON object, got list"),
        ('{"schema": 3}', r"bad\.json: unsupported schema 3 \(this perfgate reads results files"),
        (
            '{"schema": 1, "results": [{"kind": "query"}]}',
            r"bad\.json: not a perfgate results file: results\[0\]: missing key 'name'",
        ),
        (
            '{"schema": 2, "results": [{"kind": "query", "name": "q", "status": "bogus"}]}',
            r"bad\.json: .*results\[0\]: status: expected one of 'passed', 'failed'",
        ),
    ],
)
def test_read_json_names_the_file(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / ("missing.json" if content is None else "bad.json")
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(PerfgateError, match=message):
        read_json(path)


# --- GitHub step summary ------------------------------------------------------------------


def test_step_summary_appends(tmp_path: Path) -> None:
    summary = tmp_path / "step_summary.md"
    summary.write_text("# Earlier step\n", encoding="utf-8")
    env = {"GITHUB_STEP_SUMMARY": str(summary)}
    text = render_markdown(failing_report())
    assert append_step_summary(text, env) == summary
    assert append_step_summary("second\n", env) == summary
    assert summary.read_text(encoding="utf-8") == "# Earlier step\n" + text + "\n" + "second\n\n"


def test_step_summary_unset_does_nothing() -> None:
    assert append_step_summary("x", {}) is None
    assert append_step_summary("x", {"GITHUB_STEP_SUMMARY": ""}) is None


def test_step_summary_stays_under_githubs_limit(tmp_path: Path) -> None:
    summary = tmp_path / "step_summary.md"
    huge = "| row |\n" * 200_000  # 1.6 MB
    append_step_summary(huge, {"GITHUB_STEP_SUMMARY": str(summary)})
    written = summary.read_text(encoding="utf-8")
    assert len(written.encode()) <= 1024 * 1024
    assert written.endswith("report truncated to fit the step summary; see the JSON report._\n\n")
    assert "| row |\n\n_perfgate" in written  # cut at a line boundary


def test_step_summary_unwritable_raises_perfgate_error(tmp_path: Path) -> None:
    env = {"GITHUB_STEP_SUMMARY": str(tmp_path)}  # a directory
    with pytest.raises(PerfgateError, match="cannot append to GITHUB_STEP_SUMMARY"):
        append_step_summary("x", env)


def test_code_blocks_keep_their_blank_lines() -> None:
    sql = "SELECT 1\n\n\n\n-- ``` not the end\nFROM t"
    query = replace(guests_by_name(), details=QueryDetails(sql=sql))
    text = render_markdown(replace(failing_report(), results=(query,)))
    assert "````sql\n" + sql + "\n````\n" in text
    assert "\n\n\n" not in text.replace(sql, "")


def query_details(result: Verdict) -> QueryDetails:
    assert isinstance(result.details, QueryDetails)
    return result.details
