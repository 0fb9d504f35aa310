"""Interleaved A/B: the base commit's code measured beside the branch's, in alternating blocks.

A stored baseline was measured in another job, on a machine in another state; on a shared CI
runner that state swings (benchmarks/README.md: the p95 of unchanged code moves 13% from run
to run, up to 2x under load), and no statistics on one run per side can tell a 25% slowdown
from it. Measuring both sides in one job, block after block, lets those swings hit both alike
(run-to-run spread 3-5% in the same benchmark). The base commit is checked out in a git
worktree, its budgets file gives its target and database setup, and its target is started
beside the branch's; each endpoint is then measured in ``BLOCKS`` alternating blocks per side.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from perfgate.baseline.gitcmd import open_repo, resolve, run, try_run
from perfgate.budgets import load_config
from perfgate.budgets.model import Endpoint
from perfgate.exceptions import BaselineError, PerfgateError
from perfgate.gate import Gate
from perfgate.verdict.compare import compare_results, needs_more, overall, per_look, pool
from perfgate.verdict.model import ERROR, FAILED, REGRESSION, BaselineInfo, Comparison, Result

BLOCKS = 6  # per side and round: enough alternation to average out swings of a few seconds


@dataclass(slots=True)
class Interleaved:
    """The base commit's checkout and gate, started on first use and removed by ``close``."""

    root: Path  # the repository's top level (pytest's rootdir)
    budgets: Path  # the branch's budgets file; the same path is read in the base checkout
    ref: str
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    _sha: str | None = None
    _worktree: Path | None = None
    _gate: Gate | None = None
    info: BaselineInfo | None = None
    problems: list[str] = field(default_factory=list)

    def _start(self) -> Gate:
        if self._gate is not None:
            return self._gate
        repo = open_repo(self.root)
        sha = resolve(repo, self.ref)
        if sha is None:
            raise BaselineError(f"--perfgate-interleave={self.ref}: no such commit")
        top = Path(run(repo, "rev-parse", "--show-toplevel"))
        worktree = Path(tempfile.mkdtemp(prefix="perfgate-base-"))
        run(repo, "worktree", "add", "--detach", "--force", str(worktree), sha)
        self._sha, self._worktree = sha, worktree
        try:
            relative = self.budgets.resolve().relative_to(top.resolve())
        except ValueError:
            raise BaselineError(f"{self.budgets} is not inside the repository {top}") from None
        base_budgets = worktree / relative
        if not base_budgets.is_file():
            raise BaselineError(f"{relative} does not exist at {sha[:10]}: nothing to compare with")
        config = load_config(base_budgets, self.environ)
        if config.target.kind != "command":
            raise BaselineError(
                "interleaving starts the base commit's own server, so it needs target.command "
                f"(this budgets file uses target.{config.target.kind})"
            )
        self._gate = Gate(config, environ=self.environ)
        date = run(repo, "show", "-s", "--format=%cI", sha)
        self.info = BaselineInfo(
            commit=sha,
            date=date,
            how=f"--perfgate-interleave={self.ref}: measured in this job, in alternating blocks",
            source=f"git worktree of {sha[:10]}",
        )
        return self._gate

    def judge(self, endpoint: Endpoint, current: Gate, result: Result, source: str) -> Result:
        """Compare ``endpoint`` on both sides, block by block; budgets stay round one's verdict."""
        if result.status == ERROR:
            return result
        try:
            base_gate = self._start()
        except PerfgateError as exc:
            if str(exc) not in self.problems:
                self.problems.append(f"not interleaved: {exc}")
            return result
        policy = endpoint.regression
        looks = per_look(policy)
        block = dataclasses.replace(
            endpoint, requests=max(endpoint.requests // BLOCKS, 10), warmup=0
        )
        warm = dataclasses.replace(endpoint, requests=1)
        base_gate.begin_item()
        base_gate.run_endpoint(warm, source)  # start it and warm it up like the current side
        base: Result | None = None
        cur: Result | None = None
        comparisons: tuple[Comparison, ...] = ()
        rounds = 0
        while rounds < policy.max_rounds:
            rounds += 1
            for _ in range(BLOCKS):
                c = current.run_endpoint(block, source)
                b = base_gate.run_endpoint(block, source)
                if ERROR in (b.status, c.status):
                    failed = b if b.status == ERROR else c
                    self.problems.append(f"{endpoint.name}: not interleaved: {failed.error}")
                    return result
                cur = c if cur is None else pool(cur, c)
                base = b if base is None else pool(base, b)
            assert base is not None
            assert cur is not None
            comparisons = compare_results(base, cur, looks, seed=rounds)
            if not needs_more(comparisons):
                break
        status = result.status
        if overall(comparisons, policy) == REGRESSION:
            status = FAILED
        details = {**result.details, "interleaved": {"blocks": BLOCKS, "rounds": rounds}}
        return dataclasses.replace(result, comparisons=comparisons, details=details, status=status)

    def close(self) -> None:
        """Stop the base target, drop its database, remove the worktree."""
        try:
            if self._gate is not None:
                self._gate.close()
        finally:
            if self._worktree is not None:
                repo = open_repo(self.root)
                try_run(repo, "worktree", "remove", "--force", str(self._worktree))
                shutil.rmtree(self._worktree, ignore_errors=True)
                try_run(repo, "worktree", "prune")
