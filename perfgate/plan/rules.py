"""Plan rules: the patterns in an EXPLAIN ANALYZE that usually mean a slow query at scale.

Rule ids are a contract with budgets.yaml (``plan.rules: {misestimate: error}``):

* ``seq-scan-filter``: a Seq Scan with a Filter on a table bigger than a few pages;
* ``filter-discard``: a Filter or index recheck throwing away > 90% of the rows it read;
* ``misestimate``: actual rows off from the planner's estimate by 10x or more;
* ``disk-spill``: a sort, hash or aggregate that wrote temp files;
* ``nested-loop-seq-scan``: a Nested Loop re-running a Seq Scan for each outer row;
* ``heap-fetches``: an Index Only Scan that had to visit the heap (visibility map not set).
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from perfgate.plan.labels import node_label, node_labels
from perfgate.plan.model import Plan, PlanNode

RULE_IDS = (
    "seq-scan-filter",
    "filter-discard",
    "misestimate",
    "disk-spill",
    "nested-loop-seq-scan",
    "heap-fetches",
)
SEVERITIES = ("warning", "error", "off")

# Without a page count, a Seq Scan reading more rows than this counts as "big".
HEURISTIC_ROWS = 1000
DISCARD_FRACTION = 0.9
DISCARD_MIN_ROWS = 1000
MISESTIMATE_FACTOR = 10.0
MISESTIMATE_MIN_ROWS = 100


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule that matched one plan node."""

    rule: str
    severity: str  # "warning" or "error"
    path: str
    node_type: str
    relation: str | None
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] node {self.path}: {self.message}"


def analyze(
    plan: Plan,
    *,
    relation_pages: Mapping[str, int] | None = None,
    rules: Mapping[str, str] | None = None,
    seq_scan_min_pages: int = 8,
) -> tuple[Finding, ...]:
    """Run every rule not turned "off" over every node, in tree order.

    ``rules`` maps rule id -> "warning" | "error" | "off"; unmentioned rules are warnings.
    ``relation_pages`` (table -> ``pg_class.relpages``) lets ``seq-scan-filter`` judge table
    size; without it a row-count heuristic is used and the message says so. Unknown rule ids
    or severities raise ValueError (the config layer validates them against RULE_IDS first).
    """
    severity = dict.fromkeys(RULE_IDS, "warning")
    for rule, level in (rules or {}).items():
        if rule not in severity:
            hint = difflib.get_close_matches(rule, RULE_IDS, n=1)
            suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
            raise ValueError(f"unknown plan rule {rule!r}{suggestion} (known: {RULE_IDS})")
        if level not in SEVERITIES:
            raise ValueError(f"plan rule {rule!r}: severity must be one of {SEVERITIES}")
        severity[rule] = level
    cut_short = _cut_short(plan.root)
    checks: dict[str, Callable[[PlanNode], Iterator[str]]] = {
        "seq-scan-filter": lambda n: _seq_scan_filter(n, relation_pages, seq_scan_min_pages),
        "filter-discard": _filter_discard,
        "misestimate": lambda n: _misestimate(n, n.path in cut_short),
        "disk-spill": _disk_spill,
        "nested-loop-seq-scan": _nested_loop_seq_scan,
        "heap-fetches": _heap_fetches,
    }
    findings = []
    for node in plan.nodes():
        for rule, check in checks.items():
            if severity[rule] == "off":
                continue
            for message in check(node):
                findings.append(
                    Finding(rule, severity[rule], node.path, node.node_type, node.relation, message)
                )
    return tuple(findings)


def match_forbidden(plan: Plan, patterns: Sequence[str]) -> tuple[str, ...]:
    """One line per (node, pattern) where a ``forbid`` glob matches one of the node's labels.

    See ``perfgate.plan.labels`` for the label vocabulary.
    """
    hits = []
    for node in plan.nodes():
        labels = node_labels(node)
        for pattern in patterns:
            matched = next((lb for lb in labels if fnmatch.fnmatchcase(lb, pattern)), None)
            if matched is not None:
                hits.append(f"node {node.path}: {matched!r} matches forbidden {pattern!r}")
    return tuple(hits)


def seq_scans(plan: Plan) -> tuple[PlanNode, ...]:
    """Every Seq Scan node (parallel ones included), in tree order."""
    return tuple(n for n in plan.nodes() if n.node_type == "Seq Scan")


_CAST = re.compile(
    r"::(?:character varying|double precision|bit varying|"
    r"time(?:stamp)? with(?:out)? time zone|\"[^\"]+\"|[\w.]+)(?:\(\d+(?:,\d+)?\))?(?:\[\])?"
)
_LITERAL = re.compile(r"'(?:[^']|'')*'")
_PLACEHOLDER = re.compile(r"\((?:hashed )?SubPlan \d+\)|\(InitPlan \d+\)\.col\d+|\$\d+")
_IDENT = re.compile(r'(?<![\w."])((?:"[^"]+"|[A-Za-z_]\w*)(?:\.(?:"[^"]+"|[A-Za-z_]\w*))?)')
_KEYWORDS = frozenset(
    [
        "and",
        "or",
        "not",
        "is",
        "null",
        "true",
        "false",
        "any",
        "all",
        "some",
        "array",
        "like",
        "ilike",
        "in",
        "between",
        "distinct",
        "from",
        "unknown",
        "case",
        "when",
        "then",
        "else",
        "end",
        "similar",
        "to",
        "escape",
        "current_date",
        "current_timestamp",
        "localtimestamp",
        "row",
        "collate",
    ]
)


def suggest_index_columns(node: PlanNode) -> tuple[str, ...]:
    """Column names in the node's Filter, equality tests first: candidates for an index.

    ``((wedding_id = 42) AND (created_at > now()))`` gives ``("wedding_id", "created_at")``.
    A hint for messages, not a planner: functions, casts and literals are stripped crudely.
    """
    if not node.filter:
        return ()
    text = _PLACEHOLDER.sub(" ", _CAST.sub("", _LITERAL.sub(" ", node.filter)))
    equality: list[str] = []
    others: list[str] = []
    for match in _IDENT.finditer(text):
        rest = text[match.end() :]
        if rest.lstrip().startswith("(") or match.group(1).lower() in _KEYWORDS:
            continue  # a function name or SQL keyword, not a column
        column = match.group(1).rsplit(".", 1)[-1].strip('"')
        before = text[: match.start()].rstrip()
        # "col = x", "lower(col) = x", "col = ANY (...)", "col IS NULL" and "x = col" all
        # pin the column to values an index can look up, so they lead the suggestion.
        is_equality = re.match(r"[\s)]*(=|IS\s+NULL)", rest) or before.endswith("=")
        target = equality if is_equality else others
        if column not in equality and column not in others:
            target.append(column)
    return tuple(equality + others)


def _seq_scan_filter(
    node: PlanNode, relation_pages: Mapping[str, int] | None, min_pages: int
) -> Iterator[str]:
    if node.node_type != "Seq Scan" or not node.filter or node.relation is None:
        return
    pages = (relation_pages or {}).get(node.relation)
    where = f"Seq Scan on {node.relation} with Filter {node.filter}"
    if pages is not None:
        if pages > min_pages:
            yield f"{where}: the table has {pages} pages (limit {min_pages}); add an index?"
        return
    read = _total(node.actual_rows, node) + _total(node.rows_removed_by_filter, node)
    if read > HEURISTIC_ROWS:
        yield (
            f"{where} read {_n(read)} rows (more than {HEURISTIC_ROWS}; page count unknown, "
            "judged by rows read); add an index?"
        )


def _filter_discard(node: PlanNode) -> Iterator[str]:
    for what, removed_per_loop in (
        ("Filter", node.rows_removed_by_filter),
        ("index recheck", node.rows_removed_by_index_recheck),
    ):
        removed = _total(removed_per_loop, node)
        kept = _total(node.actual_rows, node)
        if removed > DISCARD_MIN_ROWS and removed > DISCARD_FRACTION * (removed + kept):
            share = removed / (removed + kept)
            yield (
                f"{node_label(node)}: {what} removed {_n(removed)} of {_n(removed + kept)} rows "
                f"read ({share:.1%}), kept {_n(kept)}"
            )


def _cut_short(root: PlanNode) -> frozenset[str]:
    """Paths of nodes whose consumer may stop reading them early.

    Below a Limit, on the inner side of a semi or anti join, and under a Merge Join (which
    stops when one input runs out), fewer rows than estimated is expected, not a misestimate.
    """
    out: set[str] = set()

    def visit(node: PlanNode, inherited: bool) -> None:
        if inherited:
            out.add(node.path)
        below = inherited or node.node_type == "Limit"
        for child in node.children:
            early = node.node_type == "Merge Join" or (
                node.join_type in ("Semi", "Anti", "Right Semi", "Right Anti")
                and child.parent_relationship == "Inner"
            )
            visit(child, below or early)

    visit(root, False)
    return frozenset(out)


def _misestimate(node: PlanNode, cut_short: bool) -> Iterator[str]:
    if not node.executed or node.plan_rows is None or node.actual_rows is None:
        return
    loops = node.actual_loops or 1
    actual, estimated = node.actual_rows * loops, node.plan_rows * loops
    if max(actual, estimated) < MISESTIMATE_MIN_ROWS:
        return
    factor = max(actual, 1) / max(estimated, 1)
    if cut_short and factor < 1:
        return  # its consumer stopped early; only an underestimate means anything here
    if factor >= MISESTIMATE_FACTOR or factor <= 1 / MISESTIMATE_FACTOR:
        way = "under" if factor > 1 else "over"
        ratio = factor if factor > 1 else 1 / factor
        yield (
            f"{node_label(node)}: estimated {_n(estimated)} rows, got {_n(actual)} "
            f"({way}estimated {ratio:.0f}x); stale statistics or correlated columns?"
        )


def _disk_spill(node: PlanNode) -> Iterator[str]:
    reasons = []
    if node.sort_space_type == "Disk" or (node.sort_method or "").startswith("external"):
        reasons.append(f"sort method {node.sort_method} ({node.sort_space_type})")
    if node.hash_batches is not None and node.hash_batches > 1:
        reasons.append(
            f"hash in {node.hash_batches} batches (planned {node.original_hash_batches})"
        )
    if node.own_temp_written > 0:
        reasons.append(f"{_n(node.own_temp_written)} temp blocks written")
    if reasons:
        yield f"{node_label(node)} spilled to disk: {', '.join(reasons)}; raise work_mem?"


def _nested_loop_seq_scan(node: PlanNode) -> Iterator[str]:
    if node.node_type != "Nested Loop":
        return
    for child in node.children:
        loops = child.actual_loops or 0
        if child.parent_relationship == "Inner" and child.node_type == "Seq Scan" and loops > 1:
            read = _total(child.actual_rows, child) + _total(child.rows_removed_by_filter, child)
            yield (
                f"{node_label(node)} runs Seq Scan on {child.relation} {_n(loops)} times "
                f"({_n(read)} rows read in all); index the inner join column?"
            )


def _heap_fetches(node: PlanNode) -> Iterator[str]:
    if node.node_type == "Index Only Scan" and (node.heap_fetches or 0) > 0:
        yield (
            f"{node_label(node)}: {_n(node.heap_fetches or 0)} heap fetches for "
            f"{_n(_total(node.actual_rows, node))} rows; VACUUM the table to set the visibility map"
        )


def _total(per_loop: float | None, node: PlanNode) -> float:
    return (per_loop or 0) * (node.actual_loops or 0)


def _n(value: float) -> str:
    return f"{value:,.0f}"
