"""Reading PostgreSQL ``EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)`` plans: no database I/O here.

``parse_plan`` turns the JSON into a typed ``Plan``; ``shape_fingerprint`` and
``coarse_fingerprint`` say whether a plan changed; ``analyze`` and ``match_forbidden`` find
the patterns budgets.yaml gates on; ``render_tree`` and ``diff_plans`` write them for reports.
"""

from __future__ import annotations

from perfgate.plan.fingerprint import (
    AccessPath,
    access_path_changes,
    access_paths,
    coarse_fingerprint,
    shape_fingerprint,
)
from perfgate.plan.labels import node_label, node_labels
from perfgate.plan.model import Plan, PlanNode, Trigger, parse_plan
from perfgate.plan.render import NodeChange, diff_plans, render_tree
from perfgate.plan.rules import (
    RULE_IDS,
    Finding,
    analyze,
    match_forbidden,
    seq_scans,
    suggest_index_columns,
)

__all__ = [
    "RULE_IDS",
    "AccessPath",
    "Finding",
    "NodeChange",
    "Plan",
    "PlanNode",
    "Trigger",
    "access_path_changes",
    "access_paths",
    "analyze",
    "coarse_fingerprint",
    "diff_plans",
    "match_forbidden",
    "node_label",
    "node_labels",
    "parse_plan",
    "render_tree",
    "seq_scans",
    "shape_fingerprint",
    "suggest_index_columns",
]
