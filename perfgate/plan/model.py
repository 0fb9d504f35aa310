"""The typed plan: what ``EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)`` returned, read once."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

from perfgate.exceptions import PlanError

SCHEMA_VERSION = 1

# PlanNode field -> EXPLAIN JSON key, for the plain scalar fields copied as they are.
_TEXT_KEYS = {
    "relation": "Relation Name",
    "alias": "Alias",
    "index_name": "Index Name",
    "cte_name": "CTE Name",
    "function_name": "Function Name",
    "join_type": "Join Type",
    "parent_relationship": "Parent Relationship",
    "subplan_name": "Subplan Name",
    "strategy": "Strategy",
    "partial_mode": "Partial Mode",
    "operation": "Operation",
    "command": "Command",
    "scan_direction": "Scan Direction",
    "filter": "Filter",
    "index_cond": "Index Cond",
    "recheck_cond": "Recheck Cond",
    "hash_cond": "Hash Cond",
    "merge_cond": "Merge Cond",
    "join_filter": "Join Filter",
    "sort_method": "Sort Method",
    "sort_space_type": "Sort Space Type",
}
_NUMBER_KEYS = {
    "hash_batches": "Hash Batches",
    "original_hash_batches": "Original Hash Batches",
    "workers_planned": "Workers Planned",
    "workers_launched": "Workers Launched",
    "plan_rows": "Plan Rows",
    "actual_rows": "Actual Rows",
    "actual_loops": "Actual Loops",
    "rows_removed_by_filter": "Rows Removed by Filter",
    "rows_removed_by_index_recheck": "Rows Removed by Index Recheck",
    "rows_removed_by_join_filter": "Rows Removed by Join Filter",
    "heap_fetches": "Heap Fetches",
    "shared_hit": "Shared Hit Blocks",
    "shared_read": "Shared Read Blocks",
    "shared_dirtied": "Shared Dirtied Blocks",
    "shared_written": "Shared Written Blocks",
    "temp_read": "Temp Read Blocks",
    "temp_written": "Temp Written Blocks",
    "startup_cost": "Startup Cost",
    "total_cost": "Total Cost",
    "actual_total_ms": "Actual Total Time",
}


@dataclass(frozen=True, slots=True)
class PlanNode:
    """One node of an EXPLAIN tree.

    Row counts are as EXPLAIN prints them: ``actual_rows`` and the ``rows_removed_*`` counts
    are per loop (multiply by ``actual_loops``); buffer and temp counts are totals over all
    loops and include the node's children. Fields EXPLAIN did not print are ``None``.
    """

    path: str  # "0" is the root, "0.1.0" the first child of the root's second child
    node_type: str
    relation: str | None = None  # table name without schema ("Relation Name")
    alias: str | None = None
    index_name: str | None = None
    cte_name: str | None = None
    function_name: str | None = None
    join_type: str | None = None
    parent_relationship: str | None = None  # Outer, Inner, Member, InitPlan, SubPlan, Subquery
    subplan_name: str | None = None
    strategy: str | None = None  # Plain, Sorted, Hashed, Mixed (Agg, SetOp)
    partial_mode: str | None = None  # Simple, Partial, Finalize (Agg)
    operation: str | None = None  # Insert, Update, Delete, Merge (ModifyTable)
    command: str | None = None  # Intersect, Except (SetOp)
    scan_direction: str | None = None
    parallel_aware: bool = False
    filter: str | None = None
    index_cond: str | None = None
    recheck_cond: str | None = None
    hash_cond: str | None = None
    merge_cond: str | None = None
    join_filter: str | None = None
    sort_key: tuple[str, ...] = ()
    sort_method: str | None = None
    sort_space_type: str | None = None  # "Disk" or "Memory"
    hash_batches: int | None = None
    original_hash_batches: int | None = None
    workers_planned: int | None = None
    workers_launched: int | None = None
    plan_rows: float | None = None
    actual_rows: float | None = None
    actual_loops: float | None = None
    rows_removed_by_filter: float | None = None
    rows_removed_by_index_recheck: float | None = None
    rows_removed_by_join_filter: float | None = None
    heap_fetches: float | None = None
    shared_hit: int | None = None
    shared_read: int | None = None
    shared_dirtied: int | None = None
    shared_written: int | None = None
    temp_read: int | None = None
    temp_written: int | None = None
    startup_cost: float | None = None
    total_cost: float | None = None
    actual_total_ms: float | None = None
    children: tuple[PlanNode, ...] = ()

    @property
    def executed(self) -> bool:
        """False for nodes EXPLAIN ANALYZE reports as "never executed" (or plain EXPLAIN)."""
        return bool(self.actual_loops)

    @property
    def total_actual_rows(self) -> float | None:
        """Rows produced over all loops."""
        if self.actual_rows is None or self.actual_loops is None:
            return None
        return self.actual_rows * self.actual_loops

    @property
    def buffers(self) -> int | None:
        """Shared hit + read blocks, children included; None without BUFFERS."""
        if self.shared_hit is None and self.shared_read is None:
            return None
        return (self.shared_hit or 0) + (self.shared_read or 0)

    @property
    def own_temp_written(self) -> int:
        """Temp blocks written by this node itself, not by its children."""
        below = sum(child.temp_written or 0 for child in self.children)
        return max(0, (self.temp_written or 0) - below)

    def walk(self) -> Iterator[PlanNode]:
        """This node and its descendants, pre-order."""
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass(frozen=True, slots=True)
class Trigger:
    """A trigger that fired during an EXPLAIN ANALYZE of a data-modifying statement."""

    name: str
    relation: str | None
    time_ms: float | None
    calls: int | None


@dataclass(frozen=True, slots=True)
class Plan:
    """A whole EXPLAIN result: the node tree plus the statement-level timings."""

    root: PlanNode
    planning_ms: float | None = None
    execution_ms: float | None = None
    triggers: tuple[Trigger, ...] = ()
    jit_ms: float | None = None  # JIT total, None when JIT did not run

    def nodes(self) -> tuple[PlanNode, ...]:
        """Every node, pre-order (root first)."""
        return tuple(self.root.walk())

    def node(self, path: str) -> PlanNode:
        """The node at ``path``; KeyError if there is none."""
        for node in self.root.walk():
            if node.path == path:
                return node
        raise KeyError(path)

    def total_buffers(self) -> int:
        """Shared hit + read blocks of the whole statement (the root's counts are inclusive)."""
        return self.root.buffers or 0

    def temp_blocks(self) -> int:
        """Temp blocks read + written by the whole statement."""
        return (self.root.temp_read or 0) + (self.root.temp_written or 0)

    @property
    def rows(self) -> float | None:
        """Rows the statement returned (the root's actual rows)."""
        return self.root.total_actual_rows

    def to_json(self) -> dict[str, Any]:
        """A compact form for reports and baselines: a flat node list keyed by path."""
        nodes = []
        for node in self.root.walk():
            item: dict[str, Any] = {}
            for f in fields(PlanNode):
                value = getattr(node, f.name)
                if f.name == "children" or value is None or value == () or value is False:
                    continue
                item[f.name] = list(value) if isinstance(value, tuple) else value
            nodes.append(item)
        out: dict[str, Any] = {"schema": SCHEMA_VERSION, "nodes": nodes}
        for key in ("planning_ms", "execution_ms", "jit_ms"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.triggers:
            out["triggers"] = [
                {"name": t.name, "relation": t.relation, "time_ms": t.time_ms, "calls": t.calls}
                for t in self.triggers
            ]
        return out

    @classmethod
    def from_json(cls, data: object) -> Plan:
        """Rebuild a plan from ``to_json()``; PlanError when the data is not such a form."""
        return _from_compact(data)


def parse_plan(explain_json: object) -> Plan:
    """Read EXPLAIN (FORMAT JSON) output: JSON text, the list it decodes to, or its one item."""
    data = explain_json
    if isinstance(data, (bytes, bytearray)):
        data = data.decode()
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise PlanError(f"EXPLAIN output is not JSON: {exc}") from exc
    if isinstance(data, list):
        if len(data) != 1:
            raise PlanError(f"expected EXPLAIN JSON with one statement, got a list of {len(data)}")
        data = data[0]
    if not isinstance(data, dict) or not isinstance(data.get("Plan"), dict):
        raise PlanError(
            'expected EXPLAIN (FORMAT JSON) output: [{"Plan": {...}, ...}], '
            f"got {_describe(explain_json)}"
        )
    jit = data.get("JIT")
    jit_ms = None
    if isinstance(jit, dict) and isinstance(jit.get("Timing"), dict):
        jit_ms = _number(jit["Timing"], "Total", "JIT")
    return Plan(
        root=_parse_node(data["Plan"], "0"),
        planning_ms=_number(data, "Planning Time", "top level"),
        execution_ms=_number(data, "Execution Time", "top level"),
        triggers=tuple(_parse_trigger(t) for t in _list(data, "Triggers", "top level")),
        jit_ms=jit_ms,
    )


def _parse_node(raw: object, path: str) -> PlanNode:
    if not isinstance(raw, dict):
        raise PlanError(f"plan node {path}: expected an object, got {_describe(raw)}")
    node_type = raw.get("Node Type")
    if not isinstance(node_type, str):
        raise PlanError(f'plan node {path}: missing "Node Type"')
    where = f"plan node {path} ({node_type})"
    values: dict[str, Any] = {"path": path, "node_type": node_type}
    for name, key in _TEXT_KEYS.items():
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            raise PlanError(f'{where}: "{key}" should be text, got {_describe(value)}')
        values[name] = value
    for name, key in _NUMBER_KEYS.items():
        values[name] = _number(raw, key, where)
    for name in ("hash_batches", "original_hash_batches", "workers_planned", "workers_launched"):
        values[name] = None if values[name] is None else int(values[name])
    for name in ("shared_hit", "shared_read", "shared_dirtied", "shared_written"):
        values[name] = None if values[name] is None else int(values[name])
    for name in ("temp_read", "temp_written"):
        values[name] = None if values[name] is None else int(values[name])
    values["parallel_aware"] = raw.get("Parallel Aware") is True
    values["sort_key"] = tuple(str(k) for k in _list(raw, "Sort Key", where))
    children = _list(raw, "Plans", where)
    values["children"] = tuple(_parse_node(c, f"{path}.{i}") for i, c in enumerate(children))
    return PlanNode(**values)


def _parse_trigger(raw: object) -> Trigger:
    if not isinstance(raw, dict) or not isinstance(raw.get("Trigger Name"), str):
        raise PlanError(f'trigger: expected an object with "Trigger Name", got {_describe(raw)}')
    calls = _number(raw, "Calls", "trigger")
    relation = raw.get("Relation")
    return Trigger(
        name=raw["Trigger Name"],
        relation=relation if isinstance(relation, str) else None,
        time_ms=_number(raw, "Time", "trigger"),
        calls=None if calls is None else int(calls),
    )


def _number(raw: Mapping[str, object], key: str, where: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    # bool is an int subclass; a true/false here means the JSON is not what EXPLAIN writes.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PlanError(f'{where}: "{key}" should be a number, got {_describe(value)}')
    return value


def _list(raw: Mapping[str, object], key: str, where: str) -> list[object]:
    value = raw.get(key, [])
    if not isinstance(value, list):
        raise PlanError(f'{where}: "{key}" should be a list, got {_describe(value)}')
    return value


def _describe(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def _from_compact(data: object) -> Plan:
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list) or not data["nodes"]:
        raise PlanError(f"expected a stored plan with a node list, got {_describe(data)}")
    if data.get("schema") != SCHEMA_VERSION:
        raise PlanError(f"stored plan has schema {data.get('schema')!r}, expected {SCHEMA_VERSION}")
    names = {f.name for f in fields(PlanNode)} - {"children"}
    flat: dict[str, dict[str, Any]] = {}
    for item in data["nodes"]:
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            raise PlanError(f"stored plan node without a path: {_describe(item)}")
        unknown = set(item) - names
        if unknown:
            raise PlanError(f"stored plan node {item['path']}: unknown keys {sorted(unknown)}")
        if not isinstance(item.get("node_type"), str):
            raise PlanError(f"stored plan node {item['path']}: missing node_type")
        values = dict(item)
        if "sort_key" in values:
            values["sort_key"] = tuple(values["sort_key"])
        flat[item["path"]] = values

    def build(path: str) -> PlanNode:
        kids: list[PlanNode] = []
        while f"{path}.{len(kids)}" in flat:
            kids.append(build(f"{path}.{len(kids)}"))
        return PlanNode(**flat[path], children=tuple(kids))

    if "0" not in flat:
        raise PlanError("stored plan has no root node (path '0')")
    root = build("0")
    if sum(1 for _ in root.walk()) != len(flat):
        raise PlanError("stored plan has nodes whose parent path is missing")
    try:
        triggers = tuple(
            Trigger(name=t["name"], relation=t["relation"], time_ms=t["time_ms"], calls=t["calls"])
            for t in data.get("triggers", [])
        )
    except (TypeError, KeyError) as exc:
        raise PlanError(f"stored plan has a malformed trigger list: {exc!r}") from exc
    return Plan(
        root=root,
        planning_ms=data.get("planning_ms"),
        execution_ms=data.get("execution_ms"),
        triggers=triggers,
        jit_ms=data.get("jit_ms"),
    )
