"""The end of a run: resources released, the one report built, written and the baseline saved.

Nothing here raises into pytest: a report that cannot be written is a warning, a baseline
that cannot be saved a note (as is every cleanup problem), and the summary never fails.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from perfgate import __version__
from perfgate.baseline.session import commit_of
from perfgate.exceptions import PerfgateError
from perfgate.gate import now_iso
from perfgate.plugin.run import PerfgateRun
from perfgate.plugin.signals import uninterrupted
from perfgate.report import append_step_summary, render_markdown, write_json, write_markdown
from perfgate.verdict.model import GateReport

__all__ = ["finish", "release"]


def release(run: PerfgateRun) -> dict[str, object]:
    """Stop the target, drop the databases, remove the base worktree; the environment seen."""
    environment: dict[str, object] = {}
    with uninterrupted():
        if run.gate is not None:
            environment = run.gate.environment()
            run.notes.extend(run.gate.notes())
            try:
                run.gate.close()
            except PerfgateError as exc:
                run.notes.append(str(exc))
        if run.interleaved is not None:
            try:
                run.interleaved.close()
            except PerfgateError as exc:
                run.notes.append(f"interleaving: {exc}")
            run.notes.extend(run.interleaved.problems)
    return environment


def finish(run: PerfgateRun, rootpath: Path, environment: dict[str, object]) -> None:
    """Build the run's report, write it where asked, and save the baseline when asked."""
    if not run.results and run.config is None:
        return
    environment = {**environment, **run.worker_environment}
    commit = commit_of(rootpath)
    if commit:
        environment["git_commit"] = commit
    baseline = run.baseline.info if run.baseline is not None else None
    if baseline is None and run.interleaved is not None:
        baseline = run.interleaved.info
    run.report = GateReport(
        results=tuple(run.results),
        environment=environment,
        created_at=now_iso(),
        perfgate_version=__version__,
        budgets_file=str(run.settings.budgets.name),
        warn_only=run.settings.warn_only,
        baseline=baseline,
    )
    _write_reports(run, run.report)
    if run.baseline is not None:
        if run.settings.save:
            try:
                run.notes.append(run.baseline.save(run.report, publish=run.settings.push))
            except PerfgateError as exc:
                run.notes.append(f"baseline not saved: {exc}")
        run.notes.extend(run.baseline.problems)


def _write_reports(run: PerfgateRun, report: GateReport) -> None:
    settings = run.settings
    try:
        markdown = render_markdown(report)
        if settings.report is not None:
            write_markdown(markdown, settings.report)
            run.written.append(str(settings.report))
        summary = append_step_summary(markdown)
        if summary is not None:
            run.written.append(f"{summary} (GITHUB_STEP_SUMMARY)")
        if settings.json is not None:
            write_json(report, settings.json)
            run.written.append(str(settings.json))
    except (OSError, PerfgateError) as exc:
        warnings.warn(
            pytest.PytestWarning(f"perfgate: could not write a report: {exc}"), stacklevel=1
        )
