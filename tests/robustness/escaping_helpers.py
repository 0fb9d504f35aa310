"""What the escaping and secrets tests share: a results file with every field filled, hostile
text, and a check per output channel that says what got through.

``full_report()`` fills every field the results schema has (``uncovered_schema_strings`` says
which it misses, so a new field is fuzzed as soon as the sample is given a value for it).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator
from importlib.resources import files
from typing import Any

import markdown_it

from perfgate.plan import Finding, NodeChange, parse_plan
from perfgate.verdict.database import DatabaseDetails, ProbeCount, StatementRow
from perfgate.verdict.details import EndpointDetails, QueryDetails, Rounds, RoundsMode
from perfgate.verdict.model import BaselineInfo, Completion, GateReport, Verdict
from perfgate.verdict.values import Comparison, Kind, Metric, Outcome, Status, check_limit

SCHEMA = json.loads((files("perfgate") / "schemas" / "perfgate-2.schema.json").read_text())

# Everything a reader of one channel or another would act on: HTML, mentions, links, images,
# table and block syntax, workflow commands (after CR, LF and a percent-encoded LF), ANSI and
# OSC sequences, Slack's control sequences, bidi overrides and NUL.
HOSTILE = (
    # First a short mix of everything, for the channels that cut a text to a width.
    "<b>\x1b[31m@everyone\r::error::cr\n::add-mask::lf |`t`[l](https://e.x) "
    "<img src=x onerror=alert(1)> @octo-org/admins </details> <!-- hidden --> "
    "[link](https://evil.example/a) ![img](https://evil.example/i.png) `tick` | pipe |"
    " *bold* _em_ ~~strike~~ $x^2$ #123 www.evil.example http://evil.example me@evil.example"
    " <!channel> <@U024BE7LH> <https://evil.example|click> &amp;"
    "\n::error::injected\r::add-mask::masked\r\n  ::stop-commands::tok\n##[error]legacy"
    "\x1b[31mred\x1b[0m \x1b]8;;https://evil.example\x07osc\x1b]8;;\x07 \x9b2J\x07\x08\x00"
    "\u202eevil\u2028::warning::ls %0A::notice::pct\v::debug::vt"
)
BENIGN = "PAYLOAD"
# Free-form mappings: their keys are user data too.
FREE_MAPS = {"environment", "metrics", "samples", "settings", "relation_pages"}


def ms(value: float, low: float | None = None, high: float | None = None) -> Metric:
    return Metric(value, "ms", low, high, 0.95 if low is not None else None)


def _plan_json() -> dict[str, Any]:
    """EXPLAIN output with every text field a node can have."""
    names = [
        "Relation Name", "Alias", "Index Name", "CTE Name", "Function Name", "Join Type",
        "Parent Relationship", "Subplan Name", "Strategy", "Partial Mode", "Operation",
        "Command", "Scan Direction", "Filter", "Index Cond", "Recheck Cond", "Hash Cond",
        "Merge Cond", "Join Filter", "Sort Method", "Sort Space Type",
    ]  # fmt: skip
    child = {name: f"child {name.lower()}" for name in names}
    child |= {"Node Type": "Seq Scan", "Actual Rows": 5000, "Actual Loops": 1}
    child |= {"Shared Hit Blocks": 40, "Rows Removed by Filter": 4900, "Sort Key": ["name"]}
    return {
        "Plan": {
            "Node Type": "Sort",
            "Actual Rows": 100,
            "Actual Loops": 1,
            "Shared Hit Blocks": 40,
            "Sort Key": ["guests.name"],
            "Plans": [child],
        },
        "Planning Time": 0.1,
        "Execution Time": 1.5,
        "Triggers": [{"Trigger Name": "audit", "Relation": "guests", "Time": 0.1, "Calls": 1}],
    }


def full_report() -> GateReport:
    """A run with every kind of result, and every optional text present."""
    p95 = ms(182.4, 171.3, 190.2)
    comparison = Comparison(
        metric="p95_ms",
        baseline=ms(150.1, 143.0, 158.8),
        current=p95,
        change=Metric(0.215, "ratio", 0.121, 0.304, 0.95),
        threshold=0.10,
        outcome=Outcome.REGRESSION,
        reason="+21.5% is above the 10% threshold",
        baseline_text="guests: Index Scan",
        current_text="guests: Seq Scan",
        more_data_helps=True,
    )
    inconclusive = Comparison(
        metric="p50_ms",
        baseline=ms(40.0, 38.0, 42.0),
        current=ms(41.0, 39.0, 43.0),
        change=Metric(0.02, "ratio", -0.04, 0.08, 0.95),
        threshold=0.10,
        outcome=Outcome.INCONCLUSIVE,
        reason="the interval reaches past the threshold",
    )
    endpoint = Verdict(
        name="clients",
        kind=Kind.ENDPOINT,
        status=Status.FAILED,
        metrics={"p50_ms": ms(41.0, 38.2, 44.9), "p95_ms": p95, "error_rate": Metric(0.1, "ratio")},
        checks=(check_limit("p95_ms", 150, p95, note="a note on the check"),),
        failures=("something else failed",),
        source="budgets.yaml:14",
        description="GET /api/clients?supplier_id=7",
        details=EndpointDetails(
            requests=400,
            concurrency=8,
            warmup=30,
            error_summary=("HTTP 503 ×12: busy",),
            database=DatabaseDetails(
                probes=(
                    ProbeCount("MISS", 200, 21, 80, 120, 1.5),
                    ProbeCount("HIT", 200, 0, 0, 0, 0),
                ),
                statements=(
                    StatementRow(
                        "SELECT sku FROM order_lines WHERE order_id = $1",
                        20,
                        60,
                        100,
                        load_calls=4000,
                        load_ms=80.0,
                        mean_ms=0.02,
                        plan=parse_plan(_plan_json()),
                    ),
                    StatementRow("SELECT 1", 1, 1, 0, plan_note="not planned: a reason"),
                ),
                load_requests=430,
                load_queries=4300,
                load_ms=90.0,
                connections_peak=8,
                max_connections=100,
            ),
            findings=(Finding("n-plus-one", "warning", "", "", None, "N+1: SELECT sku ×20"),),
        ),
        comparisons=(comparison, inconclusive),
        rounds=Rounds(RoundsMode.STORED, 2),
        samples={"latency_ms": (1.0, 2.0)},
    )
    unread = Verdict(
        name="unread",
        kind=Kind.ENDPOINT,
        status=Status.PASSED,
        description="GET /unread",
        details=EndpointDetails(
            requests=10,
            concurrency=1,
            warmup=0,
            database=DatabaseDetails(unavailable="pg_stat_statements is not loaded"),
        ),
    )
    broken = Verdict(
        name="broken",
        kind=Kind.ENDPOINT,
        status=Status.ERROR,
        error="target command 'app' exited\nlast output:\n  | Traceback",
        source="budgets.yaml:20",
        description="GET /broken",
    )
    plan = parse_plan(_plan_json())
    finding = Finding("seq-scan", "warning", "0.0", "Seq Scan", "guests", "reads every row")
    fatal = Finding("disk-sort", "error", "0", "Sort", "guests", "sorts on disk")
    change = NodeChange("changed", "0.0", "0.0", "Index Scan", "Seq Scan", 4, 40, 100.0, 5000.0)
    execution = ms(12.0, 11.0, 13.0)
    query = Verdict(
        name="guests-by-wedding",
        kind=Kind.QUERY,
        status=Status.FAILED,
        metrics={"execution_ms": execution, "buffers": Metric(40, "count")},
        checks=(check_limit("execution_ms", 12.5, execution),),
        failures=("no_seq_scan: Seq Scan on guests",),
        source="budgets.yaml:30",
        description="SELECT id FROM guests WHERE wedding_id = $1",
        details=QueryDetails(
            sql="SELECT id\nFROM guests WHERE wedding_id = $1",
            params=("seven", 7),
            plan=plan,
            index_plan=plan,
            findings=(finding, fatal),
            fingerprint="Sort > Seq Scan guests",
            coarse_fingerprint="guests:seq",
            access_paths=("guests: Seq Scan",),
            server_version="16.4",
            settings={"work_mem": "4MB"},
            relation_pages={"guests": 40},
            plan_changes=(change,),
        ),
        comparisons=(comparison,),
        rounds=Rounds(RoundsMode.INTERLEAVED, 1, 6),
        samples={"execution_ms": (12.0,)},
    )
    passing = Verdict(
        name="marginal",
        kind=Kind.QUERY,
        status=Status.PASSED,
        metrics={"execution_ms": ms(0.4, 0.3, 0.5)},
        checks=(check_limit("execution_ms", 0.45, ms(0.4, 0.3, 0.5)),),
        source="tests/test_perf.py::test_marginal",
        description="SELECT 1",
        details=QueryDetails(sql="SELECT 1", findings=(finding,)),
        comparisons=(inconclusive,),
    )
    warned = Verdict(
        name="warned",
        kind=Kind.ENDPOINT,
        status=Status.WARNED,
        checks=(check_limit("p95_ms", 1, p95),),
        source="budgets.yaml:40",
        description="GET /warned",
    )
    return GateReport(
        results=(endpoint, broken, query, passing, warned, unread),
        environment={"python": "3.12.3", "planner_settings": {"work_mem": "4MB"}, "x": ["a"]},
        created_at="2026-03-02T10:15:00Z",
        perfgate_version="0.1.0",
        budgets_file="budgets.yaml",
        baseline=BaselineInfo(
            commit="4f2c9e1" + "0" * 33,
            date="2026-03-01T09:00:00Z",
            how="merge-base of HEAD and origin/main",
            searched=("a" * 40,),
            source="git branch perfgate-baselines",
        ),
        completion=Completion(
            expected=6, measured=5, stopped="stopped by SIGTERM", missing=("late",), deselected=1
        ),
    )


# --- where the strings are ------------------------------------------------------------------

Path_ = tuple[str | int, ...]


def string_places(data: Any, path: Path_ = ()) -> Iterator[tuple[Path_, bool]]:
    """(path, is_key) of every string value in ``data``, and every key of a free-form map."""
    if isinstance(data, str):
        yield path, False
    elif isinstance(data, list):
        for i, item in enumerate(data):
            yield from string_places(item, (*path, i))
    elif isinstance(data, dict):
        free = bool(path) and path[-1] in FREE_MAPS
        for key, value in data.items():
            if free:
                yield (*path, key), True
            yield from string_places(value, (*path, key))


def replaced(data: Any, path: Path_, is_key: bool, text: str) -> Any:
    """A deep copy of ``data`` with the string (or key) at ``path`` replaced by ``text``."""
    copy = json.loads(json.dumps(data))
    parent = copy
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if is_key:
        parent[text] = parent.pop(last)
    else:
        parent[last] = text
    return copy


def general(path: Path_) -> str:
    """'results[].details.findings[].rule' for ('results', 3, 'details', 'findings', 0, 'rule')."""
    out = ""
    for part in path:
        out += "[]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def schema_string_paths(
    node: Any = None, path: str = "", seen: frozenset[str] = frozenset()
) -> set[str]:
    """Every place the results-file schema allows a string ('*' for a free-form key)."""
    if node is None:
        node = SCHEMA["$defs"]["results_file"]
    if not isinstance(node, dict):
        return set()
    out: set[str] = set()
    ref = node.get("$ref")
    if ref:
        name = ref.rsplit("/", 1)[1]
        if name not in seen:
            out |= schema_string_paths(SCHEMA["$defs"][name], path, seen | {name})
    types = node.get("type")
    if types == "string" or (isinstance(types, list) and "string" in types):
        out.add(path)
    for key in ("oneOf", "anyOf", "allOf"):
        for sub in node.get(key, ()):
            out |= schema_string_paths(sub, path, seen)
    if isinstance(node.get("then"), dict):
        out |= schema_string_paths(node["then"], path, seen)
    for name, sub in (node.get("properties") or {}).items():
        out |= schema_string_paths(sub, f"{path}.{name}" if path else name, seen)
    if isinstance(node.get("items"), dict):
        out |= schema_string_paths(node["items"], f"{path}[]", seen)
    if isinstance(node.get("additionalProperties"), dict):
        out |= schema_string_paths(node["additionalProperties"], f"{path}.*", seen)
    return out


def uncovered_schema_strings(data: Any) -> set[str]:
    """Schema string places the sample holds no string at (so the fuzz would miss them)."""
    have = {general(p) for p, is_key in string_places(data) if not is_key}
    have |= {general((*p[:-1], "*")) for p, _ in string_places(data)}
    return {
        want
        for want in schema_string_paths()
        if not any(re.fullmatch(re.escape(want).replace(r"\*", "[^.]+"), h) for h in have)
    }


# --- what got through, per channel ----------------------------------------------------------

# Tags perfgate's own template writes; anything else in HTML came from the data.
OWN_HTML = re.compile(
    r"</?(?:sub|code|summary)>|<br>|<details(?: open)?>|</details>"
    r"|<!-- perfgate-report(?::[\w.-]+)? -->"
)
_MENTION = re.compile(r"(?<![\w`])@[A-Za-z0-9]")
_AUTOLINK = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://|www\.|\w@\w", re.IGNORECASE)
_PARSER = markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"])


def markdown_tokens(text: str) -> list[Any]:
    """Every token of the document as a GFM reader parses it, inline ones included."""
    return [t for token in _PARSER.parse(text) for t in [token, *(token.children or ())]]


def markdown_shape(tokens: list[Any]) -> list[tuple[str, ...]]:
    """The document's structure (no text content): what a hostile string must not change."""
    shape: list[tuple[str, ...]] = []
    for t in tokens:
        if t.type in ("text", "code_inline", "fence", "code_block"):
            shape.append((t.type,))
        elif t.type in ("html_inline", "html_block"):
            shape.append((t.type, t.content))
        else:
            shape.append((t.type, t.tag, str(t.attrs)))
    return shape


def markdown_problems(text: str, tokens: list[Any] | None = None) -> list[str]:
    """What a GitHub reader would see acted on: foreign HTML, links, mentions, commands."""
    out = []
    for t in markdown_tokens(text) if tokens is None else tokens:
        foreign = OWN_HTML.sub("", t.content)
        if t.type in ("html_inline", "html_block") and re.search("[<>]", foreign):
            out.append(f"HTML {t.content!r}")
        if t.type in ("link_open", "image"):
            out.append(f"{t.type} {t.attrs}")
        if t.type == "text" and _MENTION.search(t.content):
            out.append(f"mention in {t.content!r}")
        if t.type == "text" and _AUTOLINK.search(t.content):
            out.append(f"autolink in {t.content!r}")
    out += log_problems(text)
    return out


def log_problems(text: str) -> list[str]:
    """What a CI log would act on: a workflow command, an escape sequence, a control char."""
    out = []
    for line in re.split(r"\r\n|\r|\n", text):
        if line.lstrip().startswith(("::", "##[")):
            out.append(f"workflow command {line!r}")
        bad = [c for c in line if unicodedata.category(c) == "Cc" and c != "\t"]
        bad += [c for c in line if c in "\u2028\u2029\u202a\u202b\u202c\u202d\u202e"]
        if bad:
            out.append(f"control characters {bad!r} in {line!r}")
    return out


_COMMAND = re.compile(r"^::(error|warning) (?P<props>[^:]*)::(?P<message>[^\r\n]*)$")


def annotation_problems(text: str, expected: int) -> list[str]:
    """One command per annotation, properties escaped, nothing a second command could start."""
    lines = text.split("\n")
    out = [] if lines[-1] == "" else ["no final newline"]
    lines = lines[:-1]
    if len(lines) != expected:
        out.append(f"{len(lines)} lines for {expected} annotations: {lines!r}")
    for line in lines:
        match = _COMMAND.match(line)
        if match is None:
            out.append(f"not one command: {line!r}")
            continue
        for prop in match["props"].split(","):
            if not re.fullmatch(r"(file|line|title)=[^,:]*", prop):
                out.append(f"bad property {prop!r}")
        out += [p for p in log_problems(line) if not p.startswith("workflow")]
    return out


def slack_problems(payload: dict[str, Any]) -> list[str]:
    """Slack acts on <...> (mentions, links, <!channel>) and bare URLs; & must be an entity."""
    out = []
    texts = [payload["text"], *(b["text"]["text"] for b in payload["blocks"])]
    for text in texts:
        if re.search(r"[<>]", text):
            out.append(f"angle bracket in {text!r}")
        if re.search(r"&(?!amp;|lt;|gt;)", text):
            out.append(f"bare & in {text!r}")
        if re.search(r"[A-Za-z]://|www\.", text):
            out.append(f"bare link in {text!r}")
        out += [p for p in log_problems(text) if not p.startswith("workflow")]
    return out


def mail_problems(subject: str, body: str) -> list[str]:
    """One-line subject; a plain body without escape sequences or control characters."""
    out = [f"subject {subject!r} spans lines"] if re.search(r"[\r\n]", subject) else []
    out += [p for p in log_problems(subject + "\n" + body) if not p.startswith("workflow")]
    return out
