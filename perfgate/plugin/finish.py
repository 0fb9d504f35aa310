"""The end of a run: resources released, the one report built, written and the baseline saved.

Nothing here raises into pytest. A report or baseline that cannot be written fails the run
(``PerfgateRun.fail``: said in the summary, and pytest exits non-zero); a cleanup problem is a
note. A baseline is saved only from a complete run: one that was not interrupted and measured
every item it selected.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from perfgate import __version__
from perfgate.baseline.session import commit_of
from perfgate.exceptions import PerfgateError
from perfgate.gate import now_iso
from perfgate.plugin.run import PerfgateRun
from perfgate.plugin.signals import uninterrupted
from perfgate.report import append_step_summary, render_markdown, write_json, write_markdown
from perfgate.verdict.model import Completion, GateReport

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
        completion=completion(run),
    )
    _write_reports(run, run.report)
    if run.baseline is not None:
        if run.settings.save:
            _save(run, run.report)
        run.notes.extend(run.baseline.problems)


def completion(run: PerfgateRun) -> Completion:
    """How much of what the run selected it measured, and why it stopped if it did."""
    missing = [name for nodeid, name in run.expected.items() if nodeid not in run.finished]
    return Completion(
        expected=len(run.expected),
        measured=len(run.expected) - len(missing),
        stopped=run.stopped,
        missing=tuple(missing[:20]),
        deselected=run.deselected,
    )


def _save(run: PerfgateRun, report: GateReport) -> None:
    session = run.baseline
    assert session is not None
    if report.completion is not None and not report.complete:
        run.fail(
            f"baseline not saved: the run is incomplete ({report.completion.why()}); a "
            "baseline is saved only from a run that measured every item it selected"
        )
        return
    try:
        run.notes.append(session.save(report, publish=run.settings.push))
    except PerfgateError as exc:
        run.fail(f"baseline not saved to {session.describe()}: {exc}")


def _write_reports(run: PerfgateRun, report: GateReport) -> None:
    """Each report on its own: one that cannot be written does not stop the others."""
    settings = run.settings
    try:
        markdown = render_markdown(report)
    except Exception as exc:  # a bug; the JSON results and the baseline must still be written
        run.fail(f"could not render the markdown report (a bug in perfgate): {exc!r}")
    else:
        if settings.report is not None:
            path = settings.report
            _write(run, "the markdown report", path, lambda p: write_markdown(markdown, p))
        try:
            summary = append_step_summary(markdown)
        except OSError as exc:
            run.fail(f"could not write the job summary (GITHUB_STEP_SUMMARY): {exc}")
        else:
            if summary is not None:
                run.written.append(f"{summary} (GITHUB_STEP_SUMMARY)")
    if settings.json is not None:
        _write(run, "the JSON results", settings.json, lambda p: write_json(report, p))


def _write(run: PerfgateRun, what: str, path: Path, write: Callable[[Path], None]) -> None:
    try:
        write(path)
    except (OSError, PerfgateError) as exc:
        run.fail(f"could not write {what} to {path}: {exc}")
    else:
        run.written.append(str(path))
