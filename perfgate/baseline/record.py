"""One stored run: the results measured on a commit, and the environment they were measured in."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from perfgate import __version__
from perfgate.exceptions import BaselineError
from perfgate.verdict.model import GateReport, Verdict, without_nan

BASELINE_SCHEMA = 2
READABLE = (1, 2)  # schema 1 records (perfgate 0.1) are read as they are

_SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")

# key -> (type, what the message calls it)
_FIELDS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "commit": (str, "a commit sha"),
    "commit_date": (str, "an ISO 8601 date"),
    "created_at": (str, "an ISO 8601 date"),
    "perfgate_version": (str, "a version string"),
    "environment": (dict, "an object"),
    "results": (list, "a list of results"),
    "dirty": (bool, "true or false"),
}


@dataclass(frozen=True, slots=True)
class BaselineRecord:
    """The results of one run on one commit, as the baseline store keeps them."""

    commit: str  # full sha ("" for a results file that does not say)
    commit_date: str  # ISO 8601
    created_at: str  # ISO 8601, UTC: when the run was measured
    perfgate_version: str
    environment: Mapping[str, object] = field(default_factory=dict)
    results: tuple[Verdict, ...] = ()
    dirty: bool = False  # the work tree had uncommitted changes: labelled, not hidden
    schema: int = BASELINE_SCHEMA

    @classmethod
    def from_report(
        cls, report: GateReport, commit: str, commit_date: str, dirty: bool
    ) -> BaselineRecord:
        """The record of a gate run on `commit` (see head_commit)."""
        return cls(
            commit=commit,
            commit_date=commit_date,
            created_at=report.created_at,
            perfgate_version=report.perfgate_version or __version__,
            environment=dict(report.environment),
            results=report.results,
            dirty=dirty,
        )

    def result(self, kind: str, name: str) -> Verdict | None:
        """The stored result of one gated item, if this run had it."""
        return next((r for r in self.results if r.kind == kind and r.name == name), None)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (schema 2; each result as in a results file)."""
        return {
            "schema": self.schema,
            "commit": self.commit,
            "commit_date": self.commit_date,
            "created_at": self.created_at,
            "perfgate_version": self.perfgate_version,
            "dirty": self.dirty,
            "environment": dict(self.environment),
            "results": [r.to_json() for r in self.results],
        }

    @classmethod
    def from_json(cls, data: Any) -> BaselineRecord:
        """Inverse of to_json; BaselineError says which key is missing or wrong."""
        if not isinstance(data, Mapping):
            raise BaselineError(f"expected a JSON object, got {_kind(data)}")
        schema = data.get("schema")
        if schema not in READABLE:
            raise BaselineError(
                f"unsupported baseline schema {schema!r} (this perfgate reads schema "
                f"{' or '.join(map(str, READABLE))}; perfgate {data.get('perfgate_version', '?')} "
                "wrote it)"
            )
        for key, (typ, what) in _FIELDS.items():
            if key not in data:
                raise BaselineError(f"missing key {key!r}")
            if not isinstance(data[key], typ):
                raise BaselineError(f"{key}: expected {what}, got {_kind(data[key])}")
        results = []
        for i, item in enumerate(data["results"]):
            try:
                results.append(Verdict.from_json(item))
            except KeyError as e:
                raise BaselineError(f"results[{i}]: missing key {e}") from e
            except (TypeError, ValueError, AttributeError) as e:
                raise BaselineError(f"results[{i}]: malformed result: {e}") from e
        return cls(
            commit=data["commit"],
            commit_date=data["commit_date"],
            created_at=data["created_at"],
            perfgate_version=data["perfgate_version"],
            environment=dict(data["environment"]),
            results=tuple(results),
            dirty=data["dirty"],
        )


def dumps(record: BaselineRecord) -> str:
    """Readable JSON (indented, one file per commit): diffs on GitHub stay reviewable."""
    data = without_nan(record.to_json())
    return json.dumps(data, indent=2, allow_nan=False, ensure_ascii=False) + "\n"


def loads(text: str, where: str, commit: str | None = None) -> BaselineRecord:
    """Parse a stored record; BaselineError starts with `where` and says what is wrong."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise BaselineError(f"{where}: not valid JSON: {e.msg} at line {e.lineno}") from e
    try:
        record = BaselineRecord.from_json(data)
    except BaselineError as e:
        raise BaselineError(f"{where}: {e}") from e
    if commit is not None and record.commit != commit:
        raise BaselineError(f"{where}: the file is for commit {record.commit!r}, not {commit}")
    return record


def check_sha(commit: str) -> str:
    """A full lowercase sha, or BaselineError: stores key files by the full sha."""
    if not _SHA.fullmatch(commit):
        raise BaselineError(f"expected a full commit sha (40 hex digits), got {commit!r}")
    return commit


def is_sha(text: str) -> bool:
    """Whether `text` is a full sha (a file name stem in a store)."""
    return _SHA.fullmatch(text) is not None


def created_at_key(text: str) -> datetime | None:
    """The created_at of a stored record, for keeping the newer of two; None if unreadable."""
    try:
        data = json.loads(text)
        return datetime.fromisoformat(str(data["created_at"]).replace("Z", "+00:00"))
    except (ValueError, TypeError, KeyError):
        return None


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
