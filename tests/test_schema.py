"""Results files and baseline records against their JSON Schema; schema 1 files still read."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from perfgate.baseline.record import BaselineRecord
from perfgate.cli import main
from perfgate.report import read_json
from perfgate.verdict.details import EndpointDetails, QueryDetails, RoundsMode
from perfgate.verdict.values import Kind, Outcome, Status

GOLDEN = Path(__file__).parent / "golden"
TINYAPP = (Path(__file__).parent / "apps" / "tinyapp.py").read_text()
SCHEMA = json.loads((files("perfgate") / "schemas" / "perfgate-2.schema.json").read_text())


def validate(data: Any, kind: str) -> None:
    """Against the schema's definition of a results file or a baseline record."""
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    wrapper = {k: v for k, v in SCHEMA.items() if k != "oneOf"} | {"$ref": f"#/$defs/{kind}"}
    jsonschema.Draft202012Validator(wrapper).validate(data)


@pytest.fixture
def compared_run(pytester: pytest.Pytester, pg_server_dsn: str) -> pytest.Pytester:
    """A real run with endpoints, an error and a query, saved and then compared with itself."""
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(tinyapp=TINYAPP)
    (pytester.path / "schema.sql").write_text(
        "CREATE TABLE guests (id int PRIMARY KEY, wedding_id int NOT NULL, name text NOT NULL);"
        "INSERT INTO guests SELECT g, g % 50, 'guest ' || g FROM generate_series(1, 5000) g;"
        "CREATE INDEX ON guests (wedding_id);"
    )
    pytester.makefile(
        ".yaml",
        budgets=f"""
        version: 1
        target: {{app: "tinyapp:app"}}
        database: {{dsn: "{pg_server_dsn}", setup: [schema.sql]}}
        defaults: {{requests: 60, concurrency: 2, warmup: 5, runs: 5}}
        endpoints:
          fast: {{request: GET /fast, budget: {{p95_ms: 500}}}}
          broken: {{request: GET /broken, budget: {{error_rate: 0}}}}
        queries:
          by-wedding:
            sql: SELECT id, name FROM guests WHERE wedding_id = $1
            params: [7]
            budget: {{max_buffers: 100, no_seq_scan: true}}
          broken-sql: {{sql: SELEC 1}}
        """,
    )
    pytester.run("git", "init", "-q", ".")
    pytester.run("git", "-c", "user.email=a@b", "-c", "user.name=a", "add", "-A")
    pytester.run("git", "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "init")
    store = "--perfgate-store=dir:store"
    pytester.runpytest("--perfgate", "--perfgate-save", store)
    pytester.runpytest("--perfgate", "--perfgate-compare=HEAD", store, "--perfgate-json=out.json")
    return pytester


def test_a_real_results_file_and_its_baseline_match_the_schema(
    compared_run: pytest.Pytester,
) -> None:
    data = json.loads((compared_run.path / "out.json").read_text())
    validate(data, "results_file")
    kinds = {r["name"]: r for r in data["results"]}
    assert kinds["by-wedding"]["details"]["plan"]["nodes"][0]["path"] == "0"
    assert kinds["by-wedding"]["rounds"]["mode"] == "stored"
    assert kinds["broken-sql"]["status"] == "error"
    (record,) = (compared_run.path / "store").glob("*.json")
    validate(json.loads(record.read_text()), "baseline_record")


def test_the_schema_refuses_what_perfgate_would_not_write(compared_run: pytest.Pytester) -> None:
    data = json.loads((compared_run.path / "out.json").read_text())
    data["results"][0]["status"] = "sort-of"
    with pytest.raises(jsonschema.ValidationError, match="'sort-of' is not one of"):
        validate(data, "results_file")


def test_a_schema_1_results_file_is_read_with_its_details_typed() -> None:
    report = read_json(GOLDEN / "schema1" / "results.json")
    by_name = {r.name: r for r in report.results}
    fast, query = by_name["fast"], by_name["by-wedding"]
    assert fast.kind == Kind.ENDPOINT
    assert fast.status == Status.FAILED
    assert isinstance(fast.details, EndpointDetails)
    assert fast.details.requests == 60
    assert fast.rounds is not None
    assert fast.rounds.mode == RoundsMode.STORED
    assert Outcome.REGRESSION in {c.outcome for c in fast.comparisons}
    assert isinstance(query.details, QueryDetails)
    assert query.details.plan is not None  # rebuilt from schema 1's "nodes"
    assert query.details.plan_tree.startswith("Bitmap Heap Scan on guests")
    assert query.details.coarse_fingerprint


def test_a_schema_1_baseline_record_is_read() -> None:
    text = (GOLDEN / "schema1" / "baseline.json").read_text()
    record = BaselineRecord.from_json(json.loads(text))
    assert {r.name for r in record.results} == {"fast", "broken", "by-wedding"}
    assert record.to_json()["schema"] == 2
    validate(json.loads(json.dumps(record.to_json(), allow_nan=False)), "baseline_record")


def test_report_renders_a_schema_1_file_and_writes_schema_2(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    assert main(["report", str(GOLDEN / "schema1" / "results.json"), "--format", "json",
                 "-o", str(out)]) == 0  # fmt: skip
    validate(json.loads(out.read_text()), "results_file")
    markdown = tmp_path / "out.md"
    assert main(["report", str(GOLDEN / "schema1" / "results.json"), "-o", str(markdown)]) == 0
    assert "by-wedding" in markdown.read_text()
