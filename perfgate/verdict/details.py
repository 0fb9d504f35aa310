"""What a verdict knows besides metrics and checks, typed per kind, and how many rounds it took.

``EndpointDetails`` and ``QueryDetails`` are written as JSON by ``to_json`` and read by
``from_json``, which also read the untyped ``details`` mapping of schema 1 results files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from perfgate.plan import Finding, NodeChange, Plan, render_tree
from perfgate.verdict.database import DatabaseDetails, plan_from_json
from perfgate.verdict.values import Kind, Text, number

__all__ = [
    "Details",
    "EndpointDetails",
    "QueryDetails",
    "Rounds",
    "RoundsMode",
    "details_from_json",
    "finding_from_json",
    "finding_to_json",
]


@dataclass(frozen=True, slots=True)
class EndpointDetails:
    """How an endpoint was driven, and what its errors said."""

    requests: int
    concurrency: int
    warmup: int
    error_summary: tuple[str, ...] = ()  # 'HTTP 403 ×300: {"detail":"Not authenticated"}'
    database: DatabaseDetails | None = None  # the statements it caused, when they were read
    findings: tuple[Finding, ...] = ()  # N+1, and plan rules on its statements' plans

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "concurrency": self.concurrency,
            "warmup": self.warmup,
            "error_summary": list(self.error_summary),
            "database": self.database.to_json() if self.database is not None else None,
            "findings": [finding_to_json(f) for f in self.findings],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EndpointDetails:
        database = data.get("database")
        return cls(
            requests=int(number(data.get("requests", 0)) or 0),
            concurrency=int(number(data.get("concurrency", 0)) or 0),
            warmup=int(number(data.get("warmup", 0)) or 0),
            error_summary=tuple(str(e) for e in data.get("error_summary") or ()),
            database=DatabaseDetails.from_json(database) if isinstance(database, Mapping) else None,
            findings=tuple(finding_from_json(f) for f in data.get("findings") or ()),
        )


@dataclass(frozen=True, slots=True)
class QueryDetails:
    """The gated SQL, the plan it got, and what the plan reader found in it."""

    sql: str
    params: tuple[Any, ...] = ()  # as JSON values (dates as ISO text)
    generic_plan: bool = False
    plan: Plan | None = None  # the warm run's plan: its buffers and rows are what is gated
    index_plan: Plan | None = None  # the re-plan with enable_seqscan = off (require_index)
    findings: tuple[Finding, ...] = ()
    fingerprint: str = ""  # the plan's shape
    coarse_fingerprint: str = ""  # how each table is read
    access_paths: tuple[str, ...] = ()  # "guests: Index Scan using guests_wedding_idx"
    server_version: str = ""
    settings: Mapping[str, str] = field(default_factory=dict)  # the planner settings in force
    relation_pages: Mapping[str, int] = field(default_factory=dict)
    plan_changes: tuple[NodeChange, ...] = ()  # node by node since the baseline's plan

    @property
    def plan_tree(self) -> str:
        """The plan, one line per node (empty without one)."""
        return render_tree(self.plan) if self.plan is not None else ""

    @property
    def index_plan_tree(self) -> str:
        """The require_index re-plan, one line per node (empty without one)."""
        return render_tree(self.index_plan) if self.index_plan is not None else ""

    def to_json(self) -> dict[str, Any]:
        return {
            "sql": self.sql,
            "params": list(self.params),
            "generic_plan": self.generic_plan,
            "plan": self.plan.to_json() if self.plan is not None else None,
            "plan_tree": self.plan_tree,
            "index_plan": self.index_plan.to_json() if self.index_plan is not None else None,
            "findings": [finding_to_json(f) for f in self.findings],
            "fingerprint": self.fingerprint,
            "coarse_fingerprint": self.coarse_fingerprint,
            "access_paths": list(self.access_paths),
            "server_version": self.server_version,
            "settings": dict(self.settings),
            "relation_pages": dict(self.relation_pages),
            "plan_changes": [_change_to_json(c) for c in self.plan_changes],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> QueryDetails:
        """Schema 2, or schema 1's details (its plan under "nodes", its diff as "plan_diff")."""
        plan = plan_from_json(data.get("plan"))
        if plan is None and isinstance(data.get("nodes"), list):
            plan = plan_from_json({"schema": 1, "nodes": data["nodes"]})
        changes = data.get("plan_changes", data.get("plan_diff")) or ()
        return cls(
            sql=str(data.get("sql", "")),
            params=tuple(data.get("params") or ()),
            generic_plan=data.get("generic_plan") is True,
            plan=plan,
            index_plan=plan_from_json(data.get("index_plan")),
            findings=tuple(finding_from_json(f) for f in data.get("findings") or ()),
            fingerprint=str(data.get("fingerprint") or ""),
            coarse_fingerprint=str(data.get("coarse_fingerprint") or ""),
            access_paths=tuple(str(p) for p in data.get("access_paths") or ()),
            server_version=str(data.get("server_version") or ""),
            settings={str(k): str(v) for k, v in dict(data.get("settings") or {}).items()},
            relation_pages={
                str(k): int(number(v))
                for k, v in dict(data.get("relation_pages") or {}).items()
                if math.isfinite(number(v))
            },
            plan_changes=tuple(_change_from_json(c) for c in changes),
        )


Details = EndpointDetails | QueryDetails


def details_from_json(kind: Kind, data: object) -> Details | None:
    """The details of a result of ``kind``; None when there are none (an unmeasured endpoint)."""
    if not isinstance(data, Mapping) or not data:
        return None
    if kind == Kind.QUERY:
        return QueryDetails.from_json(data)
    if "requests" not in data:
        return None
    return EndpointDetails.from_json(data)


class RoundsMode(Text):
    """Where the baseline side of a comparison came from."""

    STORED = "stored"  # a baseline recorded by an earlier run
    INTERLEAVED = "interleaved"  # the base commit measured in this run, block by block


@dataclass(frozen=True, slots=True)
class Rounds:
    """How a comparison was reached: the mode, rounds measured, blocks per side and round."""

    mode: RoundsMode
    rounds: int
    blocks: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode.value, "rounds": self.rounds, "blocks": self.blocks}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Rounds:
        blocks = data.get("blocks")
        return cls(
            mode=RoundsMode.read(data.get("mode"), "rounds.mode"),
            rounds=int(number(data.get("rounds", 1)) or 1),
            blocks=None if blocks is None else int(number(blocks)),
        )

    @classmethod
    def from_schema1(cls, details: Mapping[str, Any]) -> Rounds | None:
        """Schema 1 kept these in details: "baseline_rounds", or "interleaved"."""
        interleaved = details.get("interleaved")
        if isinstance(interleaved, Mapping):
            return cls(
                RoundsMode.INTERLEAVED,
                int(number(interleaved.get("rounds", 1)) or 1),
                int(number(interleaved.get("blocks", 0)) or 0) or None,
            )
        if "baseline_rounds" in details:
            return cls(RoundsMode.STORED, int(number(details["baseline_rounds"]) or 1))
        return None


def finding_to_json(f: Finding) -> dict[str, Any]:
    """A plan finding as JSON."""
    return {
        "rule": f.rule,
        "severity": f.severity,
        "message": f.message,
        "node": f.path,
        "node_type": f.node_type,
        "relation": f.relation,
    }


def finding_from_json(data: Mapping[str, Any]) -> Finding:
    """Inverse of finding_to_json."""
    relation = data.get("relation")
    return Finding(
        rule=str(data.get("rule", "")),
        severity=str(data.get("severity", "warning")),
        path=str(data.get("node", "")),
        node_type=str(data.get("node_type", "")),
        relation=None if relation is None else str(relation),
        message=str(data.get("message", "")),
    )


def _change_to_json(c: NodeChange) -> dict[str, Any]:
    return {
        "change": c.kind,
        "old_path": c.old_path,
        "new_path": c.new_path,
        "old": c.old_label,
        "new": c.new_label,
        "old_rows": c.old_rows,
        "new_rows": c.new_rows,
        "old_buffers": c.old_buffers,
        "new_buffers": c.new_buffers,
    }


def _change_from_json(data: Mapping[str, Any]) -> NodeChange:
    """Schema 2, or schema 1's plan_diff entry (one "path" for both sides)."""
    path = data.get("path")
    return NodeChange(
        kind=str(data.get("change", "changed")),
        old_path=_optional(data.get("old_path", path if data.get("old") else None)),
        new_path=_optional(data.get("new_path", path if data.get("new") else None)),
        old_label=_optional(data.get("old")),
        new_label=_optional(data.get("new")),
        old_buffers=_count(data.get("old_buffers")),
        new_buffers=_count(data.get("new_buffers")),
        old_rows=_rows(data.get("old_rows")),
        new_rows=_rows(data.get("new_rows")),
    )


def _optional(value: object) -> str | None:
    return None if value is None else str(value)


def _count(value: object) -> int | None:
    n = number(value)
    return None if math.isnan(n) else int(n)


def _rows(value: object) -> float | None:
    n = number(value)
    return None if math.isnan(n) else n
