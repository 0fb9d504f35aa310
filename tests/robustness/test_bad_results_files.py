"""Corrupt results files: every `perfgate` command names the key path and exits 2, never crashes.

A results file may be a pull request's artifact, written by anyone. Before, a truncated or
hand-edited one reached the renderers: an interval of one number raised IndexError, a 400-digit
number OverflowError, a list for the environment TypeError, a deep nesting RecursionError, and
an outcome of '<img src=x>' or a value of "fast" was rendered as if it were fine. Each command
now checks the file against perfgate/schemas first.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import fields
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest

from perfgate import schemas
from perfgate.baseline.record import BaselineRecord
from perfgate.cli import main, normalised_json
from perfgate.plan.model import PlanNode
from perfgate.report import read_json

GOLDEN = Path(__file__).parent.parent / "golden" / "schema1"
TINYAPP = (Path(__file__).parent.parent / "apps" / "tinyapp.py").read_text()
# Each command as CI runs it; notify aims at a closed loopback port, so nothing leaves the host.
COMMANDS = [
    ["report"],
    ["report", "--format", "github"],
    ["report", "--format", "json"],
    ["annotate"],
    ["comment", "--dry-run"],
    ["notify", "--slack-webhook", "http://127.0.0.1:9/hook", "--any-branch",
     "--no-only-on-failure"],
]  # fmt: skip


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real schema-2 results file: endpoints with comparisons, a query with its plan."""
    out = tmp_path_factory.mktemp("good") / "results.json"
    assert main(["report", str(GOLDEN / "results.json"), "--format", "json", "-o", str(out)]) == 0
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def query_of(data: dict[str, Any]) -> dict[str, Any]:
    return next(r for r in data["results"] if r["kind"] == "query")


def changed(good: dict[str, Any], change: Callable[[dict[str, Any]], object]) -> str:
    data = copy.deepcopy(good)
    change(data)
    return json.dumps(data)


def run(
    path: Path, args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str]:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    code = main([args[0], str(path), *args[1:]])
    return code, capsys.readouterr().err


# (case, how the file is corrupted, what every command says after "FILE")
CASES: list[tuple[str, Callable[[dict[str, Any]], str], str]] = [
    ("truncated", lambda g: json.dumps(g)[:700], ":1: not valid JSON: *"),
    ("a-list", lambda g: "[1, 2]", ": expected a JSON object at the top level, got a list"),
    (
        "schema-99",
        lambda g: changed(g, lambda d: d.update(schema=99)),
        ": schema: expected 1 or 2 (the schemas this perfgate reads), got 99",
    ),
    (
        "outcome-html",
        lambda g: changed(
            g, lambda d: d["results"][0]["comparisons"][0].update(outcome="<img src=x>")
        ),
        ": results[[]0[]].comparisons[[]0[]].outcome: expected one of 'regression', 'improvement', "
        "'unchanged', 'inconclusive', got '<img src=x>'",
    ),
    (
        "missing-key",
        lambda g: changed(g, lambda d: d["results"][1].pop("status")),
        ": results[[]1[]]: missing key 'status'",
    ),
    (
        "wrong-type",
        lambda g: changed(g, lambda d: d["results"][0]["metrics"]["p95_ms"].update(value="fast")),
        ": results[[]0[]].metrics.p95_ms.value: expected a number or null, got 'fast'",
    ),
    (
        "interval-of-one",
        lambda g: changed(g, lambda d: d["results"][0]["checks"][0].update(interval=[1.0])),
        ": results[[]0[]].checks[[]0[]].interval: expected at least 2 items, got 1",
    ),
    (
        "huge-number",
        lambda g: changed(g, lambda d: d["results"][0]["metrics"]["p95_ms"].update(value=10**400)),
        ": results[[]0[]].metrics.p95_ms.value: expected a number a float holds, got 401 digits",
    ),
    (
        "nan",
        lambda g: changed(g, lambda d: d["results"][0]["checks"][0].update(limit=float("nan"))),
        ": results[[]0[]].checks[[]0[]].limit: expected a finite number, got nan",
    ),
    (
        "infinity",
        lambda g: json.dumps(g).replace('"value": 60.0', '"value": 1e999', 1),
        ": results[[]*[]].metrics.requests.value: expected a finite number, got inf",
    ),
    (
        "environment-list",
        lambda g: changed(g, lambda d: d.update(environment=["python"])),
        ": environment: expected an object, got a list",
    ),
    (
        "searched-number",
        lambda g: changed(g, lambda d: d["baseline"].update(searched=5)),
        ": baseline.searched: expected a list, got 5",
    ),
    (
        "unknown-key",
        lambda g: changed(g, lambda d: d["results"][0].update({"<b>\n::error::x": 1})),
        ": results[[]0[]]: unknown key '<b>\\n::error::x'",
    ),
    (
        "plan-node",
        lambda g: changed(
            g, lambda d: query_of(d)["details"]["plan"]["nodes"][0].update(actual_rows="many")
        ),
        ": results[[]2[]].details.plan.nodes[[]0[]].actual_rows: expected a number or null, got "
        "'many'",
    ),
    (
        "plan-path",
        lambda g: changed(
            g, lambda d: query_of(d)["details"]["plan"]["nodes"][1].update(path="0" + ".0" * 150)
        ),
        ": results[[]2[]].details.plan.nodes[[]1[]].path: expected at most 200 characters, got *",
    ),
    (
        "deep",
        lambda g: '{"schema": 2, "results": ' + "[" * 100_000 + "]" * 100_000 + "}",
        ": not a perfgate results file: nested too deeply",
    ),
    (
        "nested-environment",
        lambda g: changed(g, lambda d: d["environment"].update(python={"a": {"b": [1]}})),
        ": environment.python.a: expected text or a number or true or false or null, got an object",
    ),
    ("not-utf-8", lambda g: '{"schema": 2, "name": "caf\udce9"}', ": not UTF-8 text (byte 26)"),
]


@pytest.mark.parametrize(("corrupt", "says"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_every_command_names_what_is_wrong_and_exits_2(
    good: dict[str, Any],
    corrupt: Callable[[dict[str, Any]], str],
    says: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "results.json"
    path.write_bytes(corrupt(good).encode("utf-8", "surrogateescape"))
    for args in COMMANDS:
        code, err = run(path, args, capsys, monkeypatch)
        assert code == 2, (args, err)
        (line,) = err.splitlines()
        assert fnmatch(line, f"perfgate {args[0]}: {path}{says}"), line


def test_a_corrupt_schema_1_file_is_named_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = json.loads((GOLDEN / "results.json").read_text())
    query_of(data)["details"]["nodes"][0]["shared_hit"] = "34"
    data["results"][0]["details"]["baseline_rounds"] = [3]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    code, err = run(path, ["annotate"], capsys, monkeypatch)
    assert code == 2
    assert err.startswith(f"perfgate annotate: {path}: results[")
    assert "expected a whole number" in err


def test_a_baseline_record_is_read_and_a_corrupt_one_named(
    good: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    report = read_json(GOLDEN / "results.json")
    record = BaselineRecord.from_report(report, "ab" * 20, "2026-06-13T10:00:00+00:00", False)
    path = tmp_path / f"{'ab' * 20}.json"
    path.write_text(json.dumps(record.to_json()))
    assert run(path, ["report"], capsys, monkeypatch)[0] == 0
    data = record.to_json()
    data["dirty"] = "yes"
    path.write_text(json.dumps(data))
    code, err = run(path, ["report"], capsys, monkeypatch)
    assert (code, err) == (
        2,
        f"perfgate report: {path}: dirty: expected true or false, got 'yes'\n",
    )


def test_the_message_cannot_smuggle_a_workflow_command(
    good: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    evil = "x\n::add-mask::\n::error title=pwned::" + "A" * 500
    path = tmp_path / "r.json"
    path.write_text(changed(good, lambda d: d["results"][0].update(kind=evil)))
    code, err = run(path, ["annotate"], capsys, monkeypatch)
    assert code == 2
    (line,) = err.splitlines()
    assert "::error" in line  # quoted, escaped and cut short, on the one line
    assert line.endswith("AAAA'…")
    assert len(line) < len(str(path)) + 200


# Values the schema allows, at their extremes: none may crash a renderer. Keys whose text is a
# vocabulary (a status, a plan node's path) keep theirs, so the file stays valid.
VOCABULARY = frozenset(
    {"schema", "kind", "status", "outcome", "mode", "severity", "change", "path"}
)


def everywhere(data: Any, floats: float | None = None, ints: int | None = None,
               text: str | None = None, key: str = "") -> Any:  # fmt: skip
    if isinstance(data, dict):
        return {k: everywhere(v, floats, ints, text, str(k)) for k, v in data.items()}
    if isinstance(data, list):
        return [everywhere(v, floats, ints, text, key) for v in data]
    if isinstance(data, float) and floats is not None:
        return floats
    if isinstance(data, int) and not isinstance(data, bool) and ints is not None:
        return ints if key not in VOCABULARY else data
    if isinstance(data, str) and text is not None and key not in VOCABULARY:
        return text if text or key != "name" else data
    return data


EXTREMES: dict[str, Callable[[Any], Any]] = {
    "huge": lambda d: everywhere(d, floats=1.7e308, ints=2**1000),
    "negative": lambda d: everywhere(d, floats=-1.7e308),
    "tiny": lambda d: everywhere(d, floats=5e-324, ints=1),
    "zero": lambda d: everywhere(d, floats=0.0),
    "empty-text": lambda d: everywhere(d, text=""),
    "hostile-text": lambda d: everywhere(
        d, text="<img src=x> @all |\n::error::x `a` ${{ x }} " * 50
    ),
}


@pytest.mark.parametrize("extreme", sorted(EXTREMES))
def test_what_the_schema_accepts_renders(
    good: dict[str, Any],
    extreme: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = EXTREMES[extreme](copy.deepcopy(good))
    schemas.check(data)
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    for args in COMMANDS:
        code, err = run(path, args, capsys, monkeypatch)
        assert code == 0, (args, err)
    assert json.loads(normalised_json(read_json(path)))["schema"] == 2


def test_a_corrupt_file_to_compare_with_leaves_the_budgets_gating(
    good: dict[str, Any], pytester: pytest.Pytester
) -> None:
    """--perfgate-compare=FILE once raised IndexError from the hook; now the run goes on."""
    pytester.makepyfile(tinyapp=TINYAPP)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makefile(
        ".yaml",
        budgets='version: 1\ntarget: {app: "tinyapp:app"}\n'
        "defaults: {requests: 20, concurrency: 2, warmup: 0}\nendpoints: {fast: GET /fast}\n",
    )
    bad = changed(good, lambda d: d["results"][0]["checks"][0].update(interval=[1.0]))
    (pytester.path / "old.json").write_text(bad)
    result = pytester.runpytest("--perfgate", "--perfgate-compare=old.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["perfgate: baseline not used: old.json: malformed perfgate results file: *list index*"]
    )
    assert "Traceback" not in result.stdout.str()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["comment", "--max-wait", "nan"], "argument --max-wait: expected seconds from 0 to 3600"),
        (["comment", "--max-wait", "inf"], "argument --max-wait: expected seconds from 0 to 3600"),
        (["comment", "--max-wait", "-1"], "argument --max-wait: expected seconds from 0 to 3600"),
        (["comment", "--max-wait", "soon"], "argument --max-wait: expected seconds from 0*"),
    ],
)
def test_a_numeric_flag_out_of_range_is_a_usage_error(
    good: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
    says: str,
) -> None:  # fmt: skip
    """NaN waited out any rate limit (no wait is greater than NaN); argparse says so now."""
    path = tmp_path / "r.json"
    path.write_text(json.dumps(good))
    with pytest.raises(SystemExit) as excinfo:
        main([args[0], str(path), *args[1:], "--repo", "o/r", "--pr", "1"])
    assert excinfo.value.code == 2
    assert fnmatch(capsys.readouterr().err.splitlines()[-1], f"*: error: {says}*")


def test_writing_the_report_into_a_directory_is_an_error(
    good: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps(good))
    assert main(["report", str(path), "-o", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (
        f"perfgate report: -o {tmp_path}: cannot write: Is a directory\n"
    )


def test_the_schema_types_every_field_a_stored_plan_node_has() -> None:
    node = schemas.load(2)["$defs"]["plan_node"]
    assert set(node["properties"]) == {f.name for f in fields(PlanNode)} - {"children"}
    assert node["additionalProperties"] is False


@pytest.mark.parametrize("name", ["results.json", "baseline.json"])
def test_the_schema_1_files_perfgate_0_1_wrote_are_valid(name: str) -> None:
    schemas.check(json.loads((GOLDEN / name).read_text()))
