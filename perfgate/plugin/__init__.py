"""pytest hooks and fixtures, and nothing else: read the options once, collect the budgets
file's items, gate them, report once.

options.py  every option and ini key, read into Settings; addopts options switched off
run.py      the run's state in config.stash: LAUNCH (early) and RUN
items.py    budgets.yaml as a collector, one item per endpoint and query; judge and record
fixture.py  the perfgate fixture
completeness.py  whether the run measured all it selected (only then is it a baseline)
signals.py  SIGTERM/SIGHUP as Ctrl-C; cleanup that cannot be interrupted
xdist.py    pytest-xdist's workers and controller (registered only with pytest-xdist)
finish.py   the end of a run: release, the one report, the baseline saved
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from perfgate.baseline.interleave import Interleaved
from perfgate.baseline.session import BaselineSession, check_compare_target
from perfgate.budgets import load_config
from perfgate.exceptions import ConfigError, PerfgateError
from perfgate.gate import Gate
from perfgate.plugin import signals
from perfgate.plugin.completeness import CompletenessHooks, part_of_gate
from perfgate.plugin.finish import finish, release
from perfgate.plugin.fixture import PerfgateFixture
from perfgate.plugin.items import BudgetsFile, GateItem, judge, record
from perfgate.plugin.options import (
    Settings,
    add_options,
    quiet_addopts_coverage,
    quiet_addopts_xdist,
    read_settings,
)
from perfgate.plugin.run import LAUNCH, RUN, Launch, PerfgateRun
from perfgate.plugin.xdist import XdistHooks, is_worker, noisy_note, worker_output
from perfgate.report import render_terminal
from perfgate.report.escape import terminal_text
from perfgate.system import ledger

HOW_TO_RUN = "perfgate measurements run only with --perfgate (e.g. `pytest --perfgate`)"
_WHY_OFF = {
    "-n": "measurements must not share the CPU with other tests",
    "--cov": "the load driver and an in-process app run several times slower under a tracer",
}


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> Generator[None, object, object]:
    """Before pytest-env and conftest.py change it: keep the environment targets will get."""
    launch = early_config.stash[LAUNCH] = Launch(environ=dict(os.environ))
    if quiet_addopts_coverage(early_config, early_config.known_args_namespace):
        launch.adjusted.append("--cov")
    return (yield)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "perfgate: a performance-gate item (endpoint or query budget)"
    )
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistHooks(), "perfgate-xdist")
    else:
        # perfgate's items carry it; --strict-markers must accept it without pytest-xdist.
        config.addinivalue_line("markers", "xdist_group(name): pytest-xdist's group marker")
    # Loaded too late to see the launch (from a conftest.py): the environment as it is now.
    launch = config.stash.get(LAUNCH, None) or Launch(environ=dict(os.environ))
    run = config.stash[RUN] = PerfgateRun(settings=read_settings(config), launch=launch)
    if not run.settings.enabled:
        return
    _start(config, run)


def _start(config: pytest.Config, run: PerfgateRun) -> None:
    settings, environ = run.settings, run.launch.environ
    try:
        run.config = load_config(settings.budgets, environ)
    except ConfigError as exc:
        raise pytest.UsageError(f"perfgate: {exc}") from None
    run.gate = Gate.for_config(run.config, environ)
    if not is_worker(config):  # workers share the controller's sweep
        dsns = [d for d in (run.config.database.dsn, environ.get("PERFGATE_DSN")) if d]
        run.notes.extend(ledger.sweep(dsns))
    if quiet_addopts_xdist(config):
        run.launch.adjusted.append("-n")
    for option in run.launch.adjusted:
        run.notes.append(
            f"{option} from the project's addopts is off under --perfgate: {_WHY_OFF[option]} "
            f"(type {option} on the command line to keep it)"
        )
    run.signals = signals.stop_on_signals()
    config.pluginmanager.register(CompletenessHooks(run), "perfgate-completeness")
    if settings.compare is not None or settings.save:
        run.baseline = BaselineSession(
            root=config.rootpath, store_spec=settings.store, compare=settings.compare, env=environ
        )
        problem = run.baseline.preflight(save=settings.save)
        if problem:
            raise pytest.UsageError(f"perfgate: --perfgate-store={settings.store}: {problem}")
    note = noisy_note(config)
    if note:  # a note in the summary, not a warning: filterwarnings=error must not crash
        run.notes.append(note)
    if settings.push and not settings.save:
        raise pytest.UsageError(
            "perfgate: --perfgate-push publishes what --perfgate-save saves; add --perfgate-save"
        )
    if settings.interleave is not None:
        if settings.compare is not None:
            raise pytest.UsageError(
                "perfgate: --perfgate-interleave measures its own baseline; drop --perfgate-compare"
            )
        problem = check_compare_target(config.rootpath, settings.interleave)
        if problem:
            raise pytest.UsageError(
                f"perfgate: --perfgate-interleave={settings.interleave}: {problem}"
            )
        run.interleaved = Interleaved(
            root=config.rootpath, budgets=settings.budgets, ref=settings.interleave, environ=environ
        )
    if settings.compare not in (None, "auto"):
        problem = check_compare_target(config.rootpath, settings.compare)
        if problem:
            raise pytest.UsageError(f"perfgate: --perfgate-compare={settings.compare}: {problem}")
    _add_budgets_to_args(config, settings)


def pytest_unconfigure(config: pytest.Config) -> None:
    run = config.stash.get(RUN, None)
    if run is not None:
        signals.restore(run.signals)


def _add_budgets_to_args(config: pytest.Config, settings: Settings) -> None:
    """Collect the budgets file even when the test paths (e.g. testpaths = tests) miss it."""
    if config.args_source == pytest.Config.ArgsSource.ARGS and not settings.explicit_budgets:
        return  # the user named what to run; they add budgets.yaml to the args to include it
    for arg in config.args:
        base = Path(arg.split("::")[0]).absolute()
        if settings.budgets == base or base in settings.budgets.parents:
            return
    config.args.append(str(settings.budgets))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """``pytest --perfgate`` with no paths runs the gate: the budgets file's items and tests
    that use perfgate, in the order they are written (whatever reordered them)."""
    run = config.stash.get(RUN, None)
    if run is None or not run.settings.enabled:
        return
    positions = [i for i, item in enumerate(items) if isinstance(item, GateItem)]
    ordered = sorted((items[i] for i in positions), key=lambda item: item.reportinfo()[1] or 0)
    for i, item in zip(positions, ordered, strict=True):
        items[i] = item
    if config.args_source == pytest.Config.ArgsSource.ARGS:
        return  # the user named what to run
    kept = [item for item in items if part_of_gate(item)]
    deselected = [item for item in items if not part_of_gate(item)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept
        run.notes.append(
            f"ran the performance gate only: {len(deselected)} other test(s) deselected "
            "(name paths, e.g. `pytest --perfgate tests budgets.yaml`, to run them too)"
        )


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    run = parent.config.stash.get(RUN, None)
    if run is None or not run.settings.enabled or file_path.resolve() != run.settings.budgets:
        return None
    return BudgetsFile.from_parent(parent, path=file_path)


@pytest.fixture
def perfgate(request: pytest.FixtureRequest) -> PerfgateFixture:
    """Measure endpoints and queries from a test: ``await perfgate.endpoint("GET", "/x", ...)``."""
    run = request.config.stash[RUN]
    gate = run.active
    if gate is None:
        pytest.skip(HOW_TO_RUN)
    nodeid = request.node.nodeid
    return PerfgateFixture(
        gate=gate,
        nodeid=nodeid,
        record=lambda result: record(run, result),
        judge=lambda policy, measure, endpoint: judge(run, gate, policy, measure, endpoint, nodeid),
    )


@pytest.fixture(scope="session")
def perfgate_dsn(request: pytest.FixtureRequest) -> str:
    """The DSN of perfgate's scratch database (set up from database.setup)."""
    gate = request.config.stash[RUN].active
    if gate is None:
        pytest.skip(HOW_TO_RUN)
    try:
        return gate.system.database().dsn
    except PerfgateError as exc:
        pytest.fail(terminal_text(f"perfgate: {gate.redact(str(exc))}"), pytrace=False)


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    run = config.stash.get(RUN, None)
    if run is None or not run.settings.enabled:
        return
    environment = release(run)
    if is_worker(config):
        worker_output(config, run, environment)  # the controller writes the one report
        return
    finish(run, config.rootpath, environment)
    if run.failures and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    run = config.stash.get(RUN, None)
    if run is None or run.report is None:
        return
    try:
        notes = [run.gate.redact(n) for n in run.notes] if run.gate else run.notes
        lines = render_terminal(run.report, written=run.written, notes=notes)
    except Exception as exc:  # the summary must never turn a run into an internal error
        lines = terminal_text(f"perfgate: could not render the summary: {exc}").split("\n")
    terminalreporter.section("perfgate")
    for line in lines:
        terminalreporter.write_line(line)
    for failure in run.failures:
        text = run.gate.redact(failure) if run.gate else failure
        terminalreporter.write_line(terminal_text(f"perfgate: FAILED: {text}"), red=True, bold=True)
