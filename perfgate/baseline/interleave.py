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
from perfgate.system import ledger
from perfgate.verdict.details import RoundsMode
from perfgate.verdict.model import BaselineInfo, Verdict
from perfgate.verdict.pooling import pool
from perfgate.verdict.rounds import judged, settle
from perfgate.verdict.values import Status

BLOCKS = 6  # per side and round: enough alternation to average out swings of a few seconds


@dataclass(slots=True)
class Interleaved:
    """The base commit's checkout and gate, started on first use and removed by ``close``."""

    root: Path  # the repository's top level (pytest's rootdir)
    budgets: Path  # the branch's budgets file; the same path is read in the base checkout
    ref: str
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    _worktree: Path | None = None
    _gate: Gate | None = None
    _failed: str | None = None  # why the base side could not be set up: not tried again
    info: BaselineInfo | None = None
    problems: list[str] = field(default_factory=list)

    def _start(self) -> Gate:
        if self._gate is not None:
            return self._gate
        if self._failed is not None:
            raise BaselineError(self._failed)
        try:
            self._gate = self._set_up()
        except PerfgateError as exc:
            self._give_up(str(exc))
            raise
        return self._gate

    def _give_up(self, why: str) -> None:
        """Stop interleaving for the rest of the run, saying why once; release what started."""
        self._failed = why
        self.problems.append(f"not interleaved: {why}")
        self.info = BaselineInfo(
            commit=None, date=None, how=f"--perfgate-interleave={self.ref}: {why}", found=False
        )
        gate, self._gate = self._gate, None
        try:
            if gate is not None:
                gate.close()
        except PerfgateError as exc:
            self.problems.append(f"interleaving: {exc}")
        finally:
            self._remove_worktree()  # nothing of a failed setup stays behind

    def _set_up(self) -> Gate:
        repo = open_repo(self.root)
        sha = resolve(repo, self.ref)
        if sha is None:
            raise BaselineError(f"--perfgate-interleave={self.ref}: no such commit")
        top = Path(run(repo, "rev-parse", "--show-toplevel"))
        self._worktree = Path(tempfile.mkdtemp(prefix="perfgate-base-"))
        ledger.note("worktree", self._worktree.name, repo=str(top), path=str(self._worktree))
        run(repo, "worktree", "add", "--detach", "--force", str(self._worktree), sha)
        try:
            relative = self.budgets.resolve().relative_to(top.resolve())
        except ValueError:
            raise BaselineError(f"{self.budgets} is not inside the repository {top}") from None
        base_budgets = self._worktree / relative
        if not base_budgets.is_file():
            raise BaselineError(f"{relative} does not exist at {sha[:10]}: nothing to compare with")
        config = load_config(base_budgets, self.environ)
        if config.target.kind != "command":
            raise BaselineError(
                "interleaving starts the base commit's own server, so it needs target.command "
                f"(this budgets file uses target.{config.target.kind})"
            )
        date = run(repo, "show", "-s", "--format=%cI", sha)
        self.info = BaselineInfo(
            commit=sha,
            date=date,
            how=f"--perfgate-interleave={self.ref}: measured in this job, in alternating blocks",
            source=f"git worktree of {sha[:10]}",
        )
        return Gate.for_config(config, dict(self.environ))

    def judge(self, endpoint: Endpoint, current: Gate, result: Verdict, source: str) -> Verdict:
        """Compare ``endpoint`` on both sides, block by block; budgets stay round one's verdict."""
        if result.status == Status.ERROR:
            return result
        try:
            base_gate = self._start()
        except PerfgateError:
            return result
        # Blocks compare timings: what each request does to the database is read once, by the
        # branch's own measurement, not in every block.
        block = dataclasses.replace(
            endpoint, requests=max(endpoint.requests // BLOCKS, 10), warmup=0, db_probes=0
        )
        base_gate.begin_item()
        # Start the base side and warm it up as the current side was.
        warm = base_gate.run_endpoint(
            dataclasses.replace(endpoint, requests=1, db_probes=0), source
        )
        if warm.status == Status.ERROR:
            self._give_up(f"the base commit's side of {endpoint.name}: {warm.error}")
            return result

        def one_round() -> tuple[Verdict, Verdict] | None:
            base: Verdict | None = None
            cur: Verdict | None = None
            for _ in range(BLOCKS):
                c = current.run_endpoint(block, source)
                b = base_gate.run_endpoint(block, source)
                if Status.ERROR in (b.status, c.status):
                    failed = b if b.status == Status.ERROR else c
                    self.problems.append(f"{endpoint.name}: not interleaved: {failed.error}")
                    return None
                cur = c if cur is None else pool(cur, c)
                base = b if base is None else pool(base, b)
            assert base is not None  # BLOCKS >= 1
            assert cur is not None
            return base, cur

        first = one_round()
        if first is None:
            return result
        settled = settle(*first, one_round, endpoint.regression)
        return judged(result, settled, endpoint.regression, RoundsMode.INTERLEAVED, BLOCKS)

    def close(self) -> None:
        """Stop the base target, drop its database, remove the worktree."""
        try:
            if self._gate is not None:
                gate, self._gate = self._gate, None
                gate.close()
        finally:
            self._remove_worktree()

    def _remove_worktree(self) -> None:
        if self._worktree is None:
            return
        worktree, self._worktree = self._worktree, None
        try:
            repo = open_repo(self.root)
        except BaselineError:
            repo = None
        if repo is not None:
            try_run(repo, "worktree", "remove", "--force", str(worktree))
        shutil.rmtree(worktree, ignore_errors=True)
        if repo is not None:
            try_run(repo, "worktree", "prune")
        ledger.forget("worktree", worktree.name)
