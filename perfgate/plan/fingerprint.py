"""Plan fingerprints: a digest that changes when the plan does and not when the numbers do.

Two tiers. The *shape* covers the tree: node types, tables, indexes, join types, strategies and
where each node hangs. The *coarse* one covers only how each table is read (its access paths),
so a join reorder keeps it while ``Index Scan -> Seq Scan`` on a table changes it.

Both leave out what differs between identical runs or between server versions: costs, rows,
timings, buffers, sort methods, worker counts, conditions (they carry literals and aliases),
aliases, "Subplan Name" (``InitPlan 1 (returns $0)`` in 15/16, ``InitPlan 1`` in 17),
"Inner Unique", "Async Capable", "Disabled" (18), Memoize cache keys, JIT and "Output".
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass

from perfgate.plan.model import Plan, PlanNode

_DIGEST_CHARS = 16


@dataclass(frozen=True, slots=True, order=True)
class AccessPath:
    """How one table is read: ``guests: Index Scan using guests_wedding_name_idx``."""

    relation: str
    scan: str  # the node type: Seq Scan, Index Scan, Index Only Scan, Bitmap Heap Scan, ...
    index: str | None  # the index; "a+b" for a bitmap scan combining two indexes

    def __str__(self) -> str:
        return f"{self.relation}: {self.method}"

    @property
    def method(self) -> str:
        """The access method without the table: ``Index Scan using guests_pkey``."""
        return self.scan if self.index is None else f"{self.scan} using {self.index}"


def shape_fingerprint(plan: Plan) -> str:
    """Digest of the tree's structure and access methods (see the module docstring)."""
    return _digest(_shape(plan.root))


def coarse_fingerprint(plan: Plan) -> str:
    """Digest of the sorted multiset of access paths, the join order left out."""
    return _digest([[p.relation, p.scan, p.index] for p in access_paths(plan)])


def access_paths(plan: Plan) -> tuple[AccessPath, ...]:
    """Every table read in the plan and how, sorted; a table read twice appears twice."""
    paths = []
    for node in plan.nodes():
        if node.relation is None or node.node_type == "ModifyTable":
            continue
        index = node.index_name
        if node.node_type == "Bitmap Heap Scan":
            names = sorted({n.index_name for n in node.walk() if n.index_name and n is not node})
            index = "+".join(names) or None
        paths.append(AccessPath(node.relation, node.node_type, index))
    return tuple(sorted(paths, key=lambda p: (p.relation, p.scan, p.index or "")))


def access_path_changes(old: Plan, new: Plan) -> tuple[str, ...]:
    """Per table, how its reading changed: ``guests: Index Scan using x -> Seq Scan``."""
    before: dict[str, list[str]] = defaultdict(list)
    after: dict[str, list[str]] = defaultdict(list)
    for p in access_paths(old):
        before[p.relation].append(p.method)
    for p in access_paths(new):
        after[p.relation].append(p.method)
    changes = []
    for relation in sorted(before.keys() | after.keys()):
        was, now = before.get(relation, []), after.get(relation, [])
        if was != now:
            changes.append(
                f"{relation}: {', '.join(was) or '(not read)'} -> {', '.join(now) or '(not read)'}"
            )
    return tuple(changes)


def _shape(node: PlanNode) -> list[object]:
    return [
        node.node_type,
        node.relation,
        node.index_name,
        node.cte_name,
        node.function_name,
        node.join_type,
        node.parent_relationship,
        node.strategy,
        node.partial_mode,
        node.operation,
        node.command,
        node.scan_direction,
        node.parallel_aware,
        [_shape(child) for child in node.children],
    ]


def _digest(value: object) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:_DIGEST_CHARS]
