"""Plans as text for reports: a compact tree, and what changed between two plans."""

from __future__ import annotations

from dataclasses import dataclass

from perfgate.plan.labels import node_label
from perfgate.plan.model import Plan, PlanNode


@dataclass(frozen=True, slots=True)
class NodeChange:
    """A node whose label changed, or that appeared or vanished, between two plans."""

    kind: str  # "changed", "added" or "removed"
    old_path: str | None
    new_path: str | None
    old_label: str | None
    new_label: str | None
    old_buffers: int | None
    new_buffers: int | None
    old_rows: float | None  # rows over all loops
    new_rows: float | None

    def __str__(self) -> str:
        if self.kind == "added":
            return f"+ {self.new_label} (node {self.new_path})"
        if self.kind == "removed":
            return f"- {self.old_label} (node {self.old_path})"
        return f"~ {self.old_label} -> {self.new_label} (node {self.old_path} -> {self.new_path})"


def render_tree(plan: Plan) -> str:
    """One line per node, indented by depth: label, actual rows (per loop) times loops, buffers.

    For example ``Index Scan using guests_wedding_name_idx on guests  rows=120×1  buffers=9``
    (shared hit + read, children included); a plain EXPLAIN shows the estimate, ``est=120``.
    """
    lines = []
    for node in plan.nodes():
        depth = node.path.count(".")
        prefix = "" if depth == 0 else "  " * (depth - 1) + "-> "
        if node.subplan_name:
            prefix += f"{node.subplan_name}: "
        lines.append(prefix + "  ".join([node_label(node), *_details(node)]))
    return "\n".join(lines)


def diff_plans(old: Plan, new: Plan) -> tuple[NodeChange, ...]:
    """Nodes that changed between two plans, for a side-by-side in reports.

    Nodes are paired first where path and label both agree, then by table (so a reordered
    join pairs ``Seq Scan on a`` with itself wherever it moved), then by path. A pair with
    different labels is "changed"; what is left unpaired was "removed" or "added".
    """
    olds, news = list(old.nodes()), list(new.nodes())
    pairs: list[tuple[PlanNode, PlanNode]] = []

    def pair_by(key: str) -> None:
        for o in list(olds):
            k = _pair_key(o, key)
            if k is None:
                continue
            match = next((n for n in news if _pair_key(n, key) == k), None)
            if match is not None:
                pairs.append((o, match))
                olds.remove(o)
                news.remove(match)

    for key in ("path+label", "relation+alias", "relation", "path"):
        pair_by(key)
    changes = [_change("changed", o, n) for o, n in pairs if node_label(o) != node_label(n)]
    changes += [_change("removed", o, None) for o in olds]
    changes += [_change("added", None, n) for n in news]
    return tuple(sorted(changes, key=lambda c: _path_key(c.new_path or c.old_path or "")))


def _pair_key(node: PlanNode, key: str) -> tuple[str | None, ...] | None:
    if key == "path+label":
        return (node.path, node_label(node))
    if key == "path":
        return (node.path,)
    if node.relation is None or node.node_type == "ModifyTable":
        return None
    return (node.relation, node.alias) if key == "relation+alias" else (node.relation,)


def _change(kind: str, old: PlanNode | None, new: PlanNode | None) -> NodeChange:
    return NodeChange(
        kind=kind,
        old_path=old.path if old else None,
        new_path=new.path if new else None,
        old_label=node_label(old) if old else None,
        new_label=node_label(new) if new else None,
        old_buffers=old.buffers if old else None,
        new_buffers=new.buffers if new else None,
        old_rows=old.total_actual_rows if old else None,
        new_rows=new.total_actual_rows if new else None,
    )


def _details(node: PlanNode) -> list[str]:
    out = []
    if node.actual_loops is None:
        if node.plan_rows is not None:
            out.append(f"est={_num(node.plan_rows)}")
    elif node.actual_loops == 0:
        out.append("never executed")
    else:
        out.append(f"rows={_num(node.actual_rows or 0)}×{_num(node.actual_loops)}")
    if node.buffers is not None:
        out.append(f"buffers={node.buffers}")
    removed = (node.rows_removed_by_filter or 0) * (node.actual_loops or 0)
    if removed:
        out.append(f"removed={_num(removed)}")
    if node.temp_written:
        out.append(f"temp_written={node.temp_written}")
    return out


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def _path_key(path: str) -> tuple[int, ...]:
    return tuple(int(part) for part in path.split("."))
