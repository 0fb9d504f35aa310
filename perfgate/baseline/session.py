"""The baseline side of a run: find it once, judge each result against it, save the new one.

Budgets gate on their own; this adds "regression / improvement / unchanged / inconclusive" per
metric. An inconclusive timing comparison is measured again (samples pooled) up to the policy's
``max_rounds`` before it is reported. Nothing here fails a run on its own when the baseline is
missing or unreadable: that is reported, and the budgets still gate.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from perfgate.baseline import (
    BaselineRecord,
    BaselineStore,
    DirStore,
    GitRefStore,
    find_baseline,
    head_commit,
)
from perfgate.baseline import open_store as _open_store
from perfgate.baseline.gitcmd import has_remote, open_repo, resolve
from perfgate.budgets.model import RegressionPolicy
from perfgate.exceptions import BaselineError
from perfgate.verdict.compare import tables_read
from perfgate.verdict.details import RoundsMode
from perfgate.verdict.environment import environment_differences
from perfgate.verdict.model import BaselineInfo, GateReport, Verdict
from perfgate.verdict.rounds import judged, settle
from perfgate.verdict.values import Status


@dataclass(slots=True)
class BaselineSession:
    """Baseline lookup and saving for one run; the lookup happens on first use."""

    root: Path
    store_spec: str = "git"
    compare: str | None = None  # None: do not compare; "auto", a ref, or a path to a JSON file
    env: Mapping[str, str] = field(default_factory=dict)
    _store: BaselineStore | None = None
    _loaded: bool = False
    record: BaselineRecord | None = None
    info: BaselineInfo | None = None
    problems: list[str] = field(default_factory=list)  # shown in the report and as warnings

    def store(self) -> BaselineStore:
        """The configured store (opened once)."""
        if self._store is None:
            self._store = _open_store(self.store_spec, self.root)
        return self._store

    def preflight(self, *, save: bool) -> str | None:
        """Why the store cannot work (a bad spec; for saving, a store that cannot be written),
        checked before anything is measured; None when it can."""
        try:
            store = self.store()
        except BaselineError as exc:
            return str(exc)
        if not save:
            return None
        if isinstance(store, DirStore):
            return _unwritable(store.path)
        try:
            repo = open_repo(self.root)
        except BaselineError as exc:
            return f"cannot save to {store.describe()}: {exc}"
        return _unwritable(Path(repo.git_dir) / "objects")

    def describe(self) -> str:
        """Where baselines are kept, in words (the store spec when it cannot be opened)."""
        try:
            return self.store().describe()
        except BaselineError:
            return f"store {self.store_spec!r}"

    def load(self) -> None:
        """Find the baseline: a missing one is noted in ``info``, a broken one in ``problems``."""
        if self._loaded or self.compare is None:
            return
        self._loaded = True
        try:
            self.record, self.info = find_baseline(self.root, self.store(), self.compare, self.env)
        except BaselineError as exc:
            self.problems.append(f"baseline not used: {exc}")
            self.info = BaselineInfo(
                commit=None, date=None, how=f"unreadable: {exc}", found=False, source=None
            )
            return
        if self.record is not None and self.record.dirty and self.info is not None:
            self.info = dataclasses.replace(
                self.info, how=self.info.how + " (measured on a work tree with uncommitted changes)"
            )

    def judge(
        self,
        result: Verdict,
        policy: RegressionPolicy,
        remeasure: Callable[[], Verdict],
        environment: Mapping[str, object],
    ) -> Verdict:
        """Compare with the baseline's result of the same name, measuring again while unclear."""
        self.load()
        if self.record is None or result.status == Status.ERROR:
            return result
        base = self.record.result(result.kind, result.name)
        if base is None:
            return result

        def next_round() -> tuple[Verdict | None, Verdict] | None:
            more = remeasure()
            return None if more.status == Status.ERROR else (None, more)

        reasons = environment_differences(
            self.record.environment, environment, tables_read(base, result)
        )
        settled = settle(base, result, next_round, policy, env_reasons=reasons)
        return judged(result, settled, policy, RoundsMode.STORED)

    def save(self, report: GateReport, *, publish: bool) -> str:
        """Record the run for HEAD (labelled dirty if the work tree has changes); push if asked."""
        sha, date, dirty = head_commit(self.root)
        record = BaselineRecord.from_report(report, sha, date, dirty)
        store = self.store()
        replaced = self._replacing(store, record, report)
        where = store.write(record)
        message = f"baseline for {sha[:10]} saved to {where}"
        if dirty:
            message += " (labelled dirty: the work tree had uncommitted changes)"
        if replaced:
            message += f"; {replaced}"
        if publish and isinstance(store, GitRefStore):
            repo = open_repo(self.root)
            if has_remote(repo, store.remote):
                message += f"; pushed to {store.remote}: {store.push()[:10]}"
            else:
                message += f"; not pushed: no remote named {store.remote!r}"
        return message

    @staticmethod
    def _replacing(store: BaselineStore, record: BaselineRecord, report: GateReport) -> str:
        """What replacing the commit's stored record loses, in words; BaselineError when a run
        that selected only some items would drop results the stored record has."""
        try:
            old = store.read(record.commit)
        except BaselineError as exc:
            return f"replaced an unreadable record ({exc})"
        if old is None:
            return ""
        new = {(r.kind, r.name) for r in record.results}
        lost = [r.name for r in old.results if (r.kind, r.name) not in new]
        if not lost:
            return ""
        names = _names(lost)
        left_out = report.completion.deselected if report.completion is not None else 0
        if left_out:
            raise BaselineError(
                f"this run measured {len(new)} item(s) and left {left_out} "
                f"unselected; the stored record of {record.commit[:10]} in {store.describe()} "
                f"also has results for {names}, which saving would lose (run every item to "
                "replace it)"
            )
        return f"replaced a record that also had results for {names} (not in this run)"


def _unwritable(path: Path) -> str | None:
    """Why files cannot be created in ``path`` (made if missing), or None."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable by this user"
    return None


def _names(names: list[str], shown: int = 5) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(repr(n) for n in names[:shown]) + more


def check_compare_target(root: Path, value: str) -> str | None:
    """Why an explicit --perfgate-compare value cannot work (a typo), or None when it can."""
    if value.endswith(".json"):
        path = Path(value)
        if path.is_file() or (root / path).is_file():
            return None
        return f"no such file (looked in {Path.cwd()} and {root})"
    try:
        repo = open_repo(root)
    except BaselineError as exc:
        return str(exc)
    if resolve(repo, value) is None:
        return "no such commit, branch or tag in this repository"
    return None


def commit_of(root: Path) -> str | None:
    """HEAD's sha when ``root`` is in a git repository, for the report's environment."""
    try:
        return head_commit(root)[0]
    except BaselineError:
        return None
