"""pytest hooks and fixtures: read options once, collect budgets.yaml items, gate, report."""

from __future__ import annotations

import json
import os
import signal
import threading
import warnings
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from perfgate import __version__
from perfgate.baseline.interleave import Interleaved
from perfgate.baseline.session import BaselineSession, check_compare_target, commit_of
from perfgate.budgets import load_config
from perfgate.exceptions import ConfigError, PerfgateError
from perfgate.gate import Gate, now_iso
from perfgate.plugin.fixture import PerfgateFixture
from perfgate.plugin.items import (
    BASELINE,
    CONFIG,
    GATE,
    INTERLEAVE,
    LAUNCH_ENV,
    NOTES,
    REPORT,
    RESULTS,
    SETTINGS,
    WORKER_ENV,
    WRITTEN,
    BudgetsFile,
    GateItem,
    judge,
    record,
)
from perfgate.plugin.options import Settings
from perfgate.report import (
    append_step_summary,
    render_markdown,
    render_terminal,
    write_json,
    write_markdown,
)
from perfgate.verdict.model import GateReport, Verdict

HOW_TO_RUN = "perfgate measurements run only with --perfgate (e.g. `pytest --perfgate`)"
ADJUSTED = pytest.StashKey[list[str]]()  # options from addopts that --perfgate switched off
SIGNALS = pytest.StashKey[dict[int, Any]]()  # the handlers perfgate replaced, to restore
_STOP_SIGNALS = tuple(
    s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None
)
_NUMPROCESSES = ("-n", "--numprocesses")
_COVERAGE = ("--cov",)


def _typed(config: pytest.Config, options: tuple[str, ...]) -> bool:
    """Whether one of ``options`` was typed on the command line (not from addopts)."""
    for arg in map(str, config.invocation_params.args):
        for option in options:
            if arg == option or arg.startswith(option + "="):
                return True
            if len(option) == 2 and arg.startswith(option) and not arg.startswith("--"):
                return True  # -n4, -nauto
    return False


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> Generator[None, object, object]:
    """Before pytest-env and conftest.py change it: keep the environment targets will get.

    And under --perfgate, keep pytest-cov from starting when its --cov comes from the
    project's addopts: the load driver measured under a tracer is several times slower.
    """
    early_config.stash[LAUNCH_ENV] = dict(os.environ)
    adjusted = early_config.stash[ADJUSTED] = []
    known = early_config.known_args_namespace
    covered = getattr(known, "cov_source", None) and not _typed(early_config, _COVERAGE)
    if getattr(known, "perfgate", False) and covered:
        known.no_cov = True  # what --no-cov sets; pytest-cov reads it when it starts
        adjusted.append("--cov")
    return (yield)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("perfgate", "performance gate (perfgate)")
    group.addoption(
        "--perfgate",
        action="store_true",
        default=False,
        help="measure the endpoints and queries in the budgets file and gate on their budgets",
    )
    group.addoption(
        "--perfgate-budgets",
        metavar="PATH",
        default=None,
        help="budgets file (default: the perfgate_budgets ini value, else budgets.yaml in the "
        "rootdir)",
    )
    group.addoption(
        "--perfgate-report",
        metavar="PATH",
        default=None,
        help="write the markdown report to PATH (also appended to $GITHUB_STEP_SUMMARY when set)",
    )
    group.addoption(
        "--perfgate-json",
        metavar="PATH",
        default=None,
        help="write the results as JSON (schema 1) to PATH",
    )
    group.addoption(
        "--perfgate-warn-only",
        action="store_true",
        default=False,
        help="report breaches and regressions but never fail the run",
    )
    group.addoption(
        "--perfgate-save",
        action="store_true",
        default=False,
        help="record the results as the baseline of HEAD in the baseline store",
    )
    group.addoption(
        "--perfgate-push",
        action="store_true",
        default=False,
        help="after --perfgate-save, push the git baseline store to its remote (origin)",
    )
    group.addoption(
        "--perfgate-compare",
        metavar="REF|FILE",
        nargs="?",
        const="auto",
        default=None,
        help="compare with a baseline: alone, the merge-base's (automatic); =REF a commit's; "
        "=FILE.json a saved results file. Write =VALUE (a bare word after it is taken as REF)",
    )
    group.addoption(
        "--perfgate-store",
        metavar="SPEC",
        default=None,
        help="baseline store: git (default: branch perfgate-baselines), git:REF or dir:PATH "
        "(ini: perfgate_store)",
    )
    group.addoption(
        "--perfgate-interleave",
        metavar="REF",
        default=None,
        help="measure commit REF's code beside this one, in alternating blocks, and compare "
        "(starts REF's target from a git worktree; needs target.command)",
    )
    parser.addini(
        "perfgate_store", "perfgate baseline store: git, git:REF or dir:PATH", default="git"
    )
    parser.addini(
        "perfgate_budgets", "perfgate budgets file, relative to the rootdir", default="budgets.yaml"
    )


def _settings(config: pytest.Config) -> Settings:
    option = config.getoption("--perfgate-budgets") or _yaml_arg(config)
    budgets = Path(option) if option else config.rootpath / str(config.getini("perfgate_budgets"))
    if option and not budgets.is_absolute():
        budgets = Path.cwd() / budgets

    def path(name: str) -> Path | None:
        value = config.getoption(name)
        return Path(value).absolute() if value else None

    return Settings(
        enabled=bool(config.getoption("--perfgate")),
        budgets=budgets.resolve(),
        report=path("--perfgate-report"),
        json=path("--perfgate-json"),
        warn_only=bool(config.getoption("--perfgate-warn-only")),
        explicit_budgets=bool(option),
        save=bool(config.getoption("--perfgate-save")),
        push=bool(config.getoption("--perfgate-push")),
        compare=_compare_option(config.getoption("--perfgate-compare")),
        store=str(config.getoption("--perfgate-store") or config.getini("perfgate_store")),
        interleave=config.getoption("--perfgate-interleave"),
    )


def _yaml_arg(config: pytest.Config) -> str | None:
    """`pytest --perfgate perf.yaml`: a YAML file named on the command line is the budgets file."""
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        return None
    named = [a.split("::")[0] for a in config.args if a.split("::")[0].endswith((".yaml", ".yml"))]
    return named[0] if len(set(named)) == 1 else None


def _compare_option(value: str | None) -> str | None:
    """Catch the classic slip: ``--perfgate-compare budgets.yaml`` swallowing a path."""
    if value is None or value == "auto" or value.endswith(".json"):
        return value
    if value.endswith((".yaml", ".yml", ".py")) or Path(value).is_dir():
        raise pytest.UsageError(
            f"perfgate: --perfgate-compare took {value!r} as the baseline to compare with; "
            f"write --perfgate-compare=auto (or =REF) before the paths to run"
        )
    return value


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "perfgate: a performance-gate item (endpoint or query budget)"
    )
    if not config.pluginmanager.hasplugin("xdist"):
        # perfgate's items carry it; --strict-markers must accept it without pytest-xdist.
        config.addinivalue_line("markers", "xdist_group(name): pytest-xdist's group marker")
    settings = _settings(config)
    config.stash[SETTINGS] = settings
    config.stash[RESULTS] = []
    config.stash[WRITTEN] = []
    config.stash[NOTES] = []
    if not settings.enabled:
        return
    environ = config.stash.get(LAUNCH_ENV, None)
    if environ is None:  # loaded too late to see the launch (from a conftest.py)
        environ = config.stash[LAUNCH_ENV] = dict(os.environ)
    try:
        loaded = load_config(settings.budgets, environ)
    except ConfigError as exc:
        raise pytest.UsageError(f"perfgate: {exc}") from None
    config.stash[CONFIG] = loaded
    config.stash[GATE] = Gate.for_config(loaded, environ)
    _quiet_addopts_xdist(config)
    for option in config.stash.get(ADJUSTED, []):
        config.stash[NOTES].append(
            f"{option} from the project's addopts is off under --perfgate: measurements must "
            f"not run beside other tests or under a tracer (type {option} on the command line "
            "to keep it)"
        )
    _handle_stop_signals(config)
    if settings.compare is not None or settings.save:
        config.stash[BASELINE] = BaselineSession(
            root=config.rootpath,
            store_spec=settings.store,
            compare=settings.compare,
            env=os.environ,
        )
    workers = getattr(config.option, "numprocesses", None)
    dist = getattr(config.option, "dist", "no")
    if not hasattr(config, "workerinput") and workers not in (None, 0, "0") and dist != "loadgroup":
        # A note in the summary, not a warning: projects with filterwarnings=error must not crash.
        config.stash[NOTES].append(
            "timings under pytest-xdist are noisy because workers share the CPU; perfgate marks "
            "its items xdist_group('perfgate'): run with `--dist loadgroup` to keep them on one "
            "worker, or without -n"
        )
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
        config.stash[INTERLEAVE] = Interleaved(
            root=config.rootpath,
            budgets=settings.budgets,
            ref=settings.interleave,
            environ=environ,
        )
    if settings.compare not in (None, "auto"):
        problem = check_compare_target(config.rootpath, settings.compare)
        if problem:
            raise pytest.UsageError(f"perfgate: --perfgate-compare={settings.compare}: {problem}")
    _add_budgets_to_args(config, settings)


def _quiet_addopts_xdist(config: pytest.Config) -> None:
    """Run in one process when -n comes from the project's addopts (pytest-xdist's own
    configure, which runs after this one, then starts no workers)."""
    if hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None):
        return
    if _typed(config, _NUMPROCESSES):
        return
    config.option.numprocesses = None
    config.option.dist = "no"
    config.option.tx = []
    config.stash[ADJUSTED].append("-n")


def _handle_stop_signals(config: pytest.Config) -> None:
    """SIGTERM and SIGHUP (timeout, docker stop, a cancelled CI job) stop the run as Ctrl-C
    does, so the target, the scratch database and the embedded server are cleaned up."""
    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        # Once: a second signal must not interrupt the cleanup the first one started.
        signal.signal(signum, signal.SIG_IGN)
        raise KeyboardInterrupt(f"perfgate: stopped by {signal.Signals(signum).name}")

    config.stash[SIGNALS] = {sig: signal.signal(sig, interrupt) for sig in _STOP_SIGNALS}


def pytest_unconfigure(config: pytest.Config) -> None:
    for sig, previous in config.stash.get(SIGNALS, {}).items():
        signal.signal(sig, previous)


@contextmanager
def _uninterrupted() -> Iterator[None]:
    """Let cleanup finish: Ctrl-C, SIGTERM and SIGHUP during the block are ignored (the run
    is ending anyway, and an interrupted cleanup would leave processes and databases)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, *_STOP_SIGNALS)
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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
    settings = config.stash.get(SETTINGS, None)
    if settings is None or not settings.enabled:
        return
    positions = [i for i, item in enumerate(items) if isinstance(item, GateItem)]
    ordered = sorted((items[i] for i in positions), key=lambda item: item.reportinfo()[1] or 0)
    for i, item in zip(positions, ordered, strict=True):
        items[i] = item
    if config.args_source == pytest.Config.ArgsSource.ARGS:
        return  # the user named what to run
    kept = [item for item in items if _part_of_gate(item)]
    deselected = [item for item in items if not _part_of_gate(item)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept
        config.stash[NOTES].append(
            f"ran the performance gate only: {len(deselected)} other test(s) deselected "
            "(name paths, e.g. `pytest --perfgate tests budgets.yaml`, to run them too)"
        )


def _part_of_gate(item: pytest.Item) -> bool:
    fixtures = getattr(item, "fixturenames", ())
    return (
        isinstance(item, GateItem)
        or item.get_closest_marker("perfgate") is not None
        or "perfgate" in fixtures
        or "perfgate_dsn" in fixtures
    )


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    config = parent.config
    settings = config.stash.get(SETTINGS, None)
    if settings is None or not settings.enabled or file_path.resolve() != settings.budgets:
        return None
    return BudgetsFile.from_parent(parent, path=file_path)


@pytest.fixture
def perfgate(request: pytest.FixtureRequest) -> PerfgateFixture:
    """Measure endpoints and queries from a test: ``await perfgate.endpoint("GET", "/x", ...)``."""
    config = request.config
    if not config.stash[SETTINGS].enabled:
        pytest.skip(HOW_TO_RUN)
    return PerfgateFixture(
        gate=config.stash[GATE],
        nodeid=request.node.nodeid,
        record=lambda result: record(config, result),
        judge=lambda policy, measure, endpoint: judge(
            config, policy, measure, endpoint, request.node.nodeid
        ),
    )


@pytest.fixture(scope="session")
def perfgate_dsn(request: pytest.FixtureRequest) -> str:
    """The DSN of perfgate's scratch database (set up from database.setup)."""
    config = request.config
    if not config.stash[SETTINGS].enabled:
        pytest.skip(HOW_TO_RUN)
    try:
        return config.stash[GATE].system.database().dsn
    except PerfgateError as exc:
        pytest.fail(f"perfgate: {exc}", pytrace=False)


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    settings = config.stash.get(SETTINGS, None)
    if settings is None or not settings.enabled:
        return
    gate = config.stash.get(GATE, None)
    environment: dict[str, Any] = {}
    interleaved = config.stash.get(INTERLEAVE, None)
    with _uninterrupted():
        if gate is not None:
            environment = gate.environment()
            config.stash[NOTES].extend(gate.notes())
            try:
                gate.close()
            except PerfgateError as exc:
                config.stash[NOTES].append(str(exc))
        if interleaved is not None:
            try:
                interleaved.close()
            except PerfgateError as exc:
                config.stash[NOTES].append(f"interleaving: {exc}")
            config.stash[NOTES].extend(interleaved.problems)
    results = config.stash[RESULTS]
    if hasattr(config, "workerinput"):
        # xdist worker: hand plain JSON to the controller, which writes the one report.
        config.workeroutput["perfgate"] = json.dumps(  # type: ignore[attr-defined]
            {"results": [r.to_json() for r in results], "environment": environment}
        )
        return
    if not results and not config.stash.get(CONFIG, None):
        return
    worker_env: dict[str, Any] = config.stash.get(WORKER_ENV, {})
    environment = {**environment, **worker_env}
    baseline = config.stash.get(BASELINE, None)
    commit = commit_of(config.rootpath)
    if commit:
        environment = {**environment, "git_commit": commit}
    report = GateReport(
        results=tuple(results),
        environment=environment,
        created_at=now_iso(),
        perfgate_version=__version__,
        budgets_file=str(settings.budgets.name),
        warn_only=settings.warn_only,
        baseline=baseline.info
        if baseline is not None
        else (interleaved.info if interleaved is not None else None),
    )
    config.stash[REPORT] = report
    _write_reports(config, settings, report)
    if baseline is not None:
        _save_baseline(config, settings, baseline, report)
        for problem in baseline.problems:
            config.stash[NOTES].append(problem)


def _save_baseline(
    config: pytest.Config, settings: Settings, baseline: BaselineSession, report: GateReport
) -> None:
    if not settings.save:
        return
    try:
        config.stash[NOTES].append(baseline.save(report, publish=settings.push))
    except PerfgateError as exc:
        config.stash[NOTES].append(f"baseline not saved: {exc}")


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: collect what a worker measured."""
    payload = getattr(node, "workeroutput", {}).get("perfgate")
    if not payload:
        return
    data = json.loads(payload)
    config = node.config
    config.stash[RESULTS].extend(Verdict.from_json(r) for r in data["results"])
    if data.get("environment"):
        config.stash[WORKER_ENV] = data["environment"]


def _write_reports(config: pytest.Config, settings: Settings, report: GateReport) -> None:
    written = config.stash[WRITTEN]
    try:
        markdown = render_markdown(report)
        if settings.report is not None:
            write_markdown(markdown, settings.report)
            written.append(str(settings.report))
        summary = append_step_summary(markdown)
        if summary is not None:
            written.append(f"{summary} (GITHUB_STEP_SUMMARY)")
        if settings.json is not None:
            write_json(report, settings.json)
            written.append(str(settings.json))
    except (OSError, PerfgateError) as exc:
        warnings.warn(
            pytest.PytestWarning(f"perfgate: could not write a report: {exc}"), stacklevel=1
        )


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    report = config.stash.get(REPORT, None)
    if report is None:
        return
    written: list[str] = config.stash[WRITTEN]
    try:
        lines = render_terminal(report, written=written)
    except Exception as exc:  # the summary must never turn a run into an internal error
        lines = [f"perfgate: could not render the summary: {exc}"]
    terminalreporter.section("perfgate")
    for line in lines:
        terminalreporter.write_line(line)
    for note in config.stash[NOTES]:
        terminalreporter.write_line(f"perfgate: {note}")
