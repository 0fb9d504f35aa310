"""Names for plan nodes as a person reads them, the same words as text-format EXPLAIN.

The label vocabulary (what ``forbid`` patterns in budgets.yaml are matched against, each node
offering every label that applies to it):

* the node's one-line name, as text EXPLAIN prints it, without aliases or costs:
  ``Seq Scan on guests``, ``Parallel Seq Scan on guests``,
  ``Index Scan using guests_wedding_name_idx on guests``, ``Index Scan Backward using ...``,
  ``Index Only Scan using guests_pkey on guests``, ``Bitmap Heap Scan on guests``,
  ``Bitmap Index Scan on guests_wedding_name_idx``, ``CTE Scan on recent``,
  ``Function Scan on generate_series``, ``Hash Join``, ``Hash Left Join``, ``Hash Anti Join``,
  ``Nested Loop``, ``Nested Loop Left Join``, ``Merge Join``, ``HashAggregate``,
  ``GroupAggregate``, ``Partial HashAggregate``, ``HashSetOp Except``, ``Update on guests``,
  ``Sort``, ``Hash``, ``Limit``, ``Gather`` ...;
* the bare node type when it differs from that name: ``Hash Join`` for a ``Hash Left Join``,
  ``Aggregate`` for a ``HashAggregate``, ``ModifyTable`` for ``Update on guests``,
  ``Seq Scan`` for ``Seq Scan on guests``;
* ``Sort Method: <method>`` for sorts: ``Sort Method: external merge``, ``Sort Method: quicksort``,
  ``Sort Method: top-N heapsort``;
* ``Sort Space Type: Disk`` / ``Sort Space Type: Memory``;
* ``Hash Batches: <n>`` for hashes (``Hash Batches: 1`` when the hash fitted in memory).

Patterns are ``fnmatch`` globs, case-sensitive: ``Seq Scan on *``, ``Nested Loop*``,
``Sort Method: external*``, ``Hash Batches: [2-9]*``.
"""

from __future__ import annotations

from perfgate.plan.model import PlanNode

_AGG_NAMES = {"Sorted": "GroupAggregate", "Hashed": "HashAggregate", "Mixed": "MixedAggregate"}
_JOIN_TYPES = ("Nested Loop", "Hash Join", "Merge Join")


def node_label(node: PlanNode) -> str:
    """The node's one-line name, e.g. ``Index Scan using guests_pkey on guests``."""
    name = _base_name(node)
    if node.parallel_aware:
        name = f"Parallel {name}"
    target = node.relation or node.cte_name or node.function_name
    if node.node_type == "Subquery Scan" or (target is None and node.node_type.endswith("Scan")):
        target = target or node.alias
    if node.index_name is not None and node.node_type in ("Index Scan", "Index Only Scan"):
        backward = " Backward" if node.scan_direction == "Backward" else ""
        return f"{name}{backward} using {node.index_name} on {target}"
    if node.node_type == "Bitmap Index Scan":
        return f"{name} on {node.index_name}"
    if target is not None:
        return f"{name} on {target}"
    return name


def node_labels(node: PlanNode) -> tuple[str, ...]:
    """Every label a ``forbid`` pattern may match for this node (see the module docstring)."""
    labels = [node_label(node)]
    if node.node_type not in labels:
        labels.append(node.node_type)
    if node.sort_method is not None:
        labels.append(f"Sort Method: {node.sort_method}")
    if node.sort_space_type is not None:
        labels.append(f"Sort Space Type: {node.sort_space_type}")
    if node.hash_batches is not None:
        labels.append(f"Hash Batches: {node.hash_batches}")
    return tuple(labels)


def _base_name(node: PlanNode) -> str:
    kind = node.node_type
    if kind == "Aggregate":
        name = _AGG_NAMES.get(node.strategy or "", "Aggregate")
        if node.partial_mode in ("Partial", "Finalize"):
            name = f"{node.partial_mode} {name}"
        return name
    if kind == "SetOp":
        name = "HashSetOp" if node.strategy == "Hashed" else "SetOp"
        return f"{name} {node.command}" if node.command else name
    if kind == "ModifyTable" and node.operation:
        return node.operation
    if kind in _JOIN_TYPES and node.join_type not in (None, "Inner"):
        if kind == "Nested Loop":
            return f"Nested Loop {node.join_type} Join"
        return f"{kind.split()[0]} {node.join_type} Join"
    return kind
