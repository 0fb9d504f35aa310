"""The options of one pytest run, read once into a frozen value (core code never sees pytest).

``add_options`` defines every ``--perfgate-*`` option and ini key; ``read_settings`` reads them
into ``Settings``. Options from the project's ``addopts`` that would distort measurements are
switched off under ``--perfgate`` (``quiet_addopts_*``), those typed on the command line kept.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from perfgate.baseline.store import DirStore, open_store
from perfgate.exceptions import BaselineError

__all__ = [
    "Settings",
    "add_options",
    "quiet_addopts_coverage",
    "quiet_addopts_xdist",
    "read_settings",
]

_NUMPROCESSES = ("-n", "--numprocesses")
_COVERAGE = ("--cov",)


@dataclass(frozen=True, slots=True)
class Settings:
    """What the user asked for on the command line and in the ini file."""

    enabled: bool
    budgets: Path
    report: Path | None = None
    json: Path | None = None
    warn_only: bool = False
    explicit_budgets: bool = False  # given with --perfgate-budgets rather than the default
    save: bool = False  # record this run as HEAD's baseline
    push: bool = False  # publish the baseline store's ref to the remote after saving
    compare: str | None = None  # None: no comparison; "auto", a git ref, or a JSON file
    store: str = "git"  # "git", "git:REF" or "dir:PATH"
    interleave: str | None = None  # a commit to measure beside this one, in alternating blocks

    @property
    def item_prefix(self) -> str:
        """How a budgets-file item names its source, e.g. 'budgets.yaml'."""
        return self.budgets.name


def add_options(parser: pytest.Parser) -> None:
    """Every perfgate option, in one group of ``pytest --help``, and the ini keys."""
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
        help="write the results as JSON (schema 2) to PATH",
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


def read_settings(config: pytest.Config) -> Settings:
    """The options of this run, read once (UsageError for a value that cannot work)."""
    option = config.getoption("--perfgate-budgets") or _yaml_arg(config)
    budgets = Path(option) if option else config.rootpath / str(config.getini("perfgate_budgets"))
    if option and not budgets.is_absolute():
        budgets = Path.cwd() / budgets

    enabled = bool(config.getoption("--perfgate"))

    def path(name: str) -> Path | None:
        value = config.getoption(name)
        if enabled and value is not None:
            _check_output(name, value)
        return Path(value).absolute() if value else None

    store = str(config.getoption("--perfgate-store") or config.getini("perfgate_store"))
    if enabled:
        for name in ("--perfgate-budgets", "--perfgate-store"):
            if config.getoption(name) == "":  # --perfgate-json=$UNSET_VARIABLE, say
                raise pytest.UsageError(f"perfgate: {name}: expected a value, got nothing")
        where = "--perfgate-store" if config.getoption("--perfgate-store") else "perfgate_store"
        _check_store(where, store, config.rootpath)
    return Settings(
        enabled=enabled,
        budgets=budgets.resolve(),
        report=path("--perfgate-report"),
        json=path("--perfgate-json"),
        warn_only=bool(config.getoption("--perfgate-warn-only")),
        explicit_budgets=bool(option),
        save=bool(config.getoption("--perfgate-save")),
        push=bool(config.getoption("--perfgate-push")),
        compare=_compare_option(config.getoption("--perfgate-compare")),
        store=store,
        interleave=config.getoption("--perfgate-interleave"),
    )


def _check_output(option: str, value: str) -> None:
    """A file perfgate can write at the end: not a directory, under no file, given at all.

    Found out only after the run, each lost the report to a warning.
    """
    if not value.strip():
        raise pytest.UsageError(f"perfgate: {option}: expected a file path, got nothing")
    path = Path(value).absolute()
    if path.is_dir():
        raise pytest.UsageError(
            f"perfgate: {option}={value}: is a directory; give a file path, e.g. "
            f"{Path(value) / ('results.json' if option.endswith('json') else 'report.md')}"
        )
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent  # written with its missing directories created
    if not parent.is_dir():
        raise pytest.UsageError(f"perfgate: {option}={value}: {parent} is a file, not a directory")
    if not os.access(parent, os.W_OK):
        raise pytest.UsageError(f"perfgate: {option}={value}: cannot write in {parent}")


def _check_store(where: str, spec: str, root: Path) -> None:
    """'git', 'git:REF' or 'dir:PATH' (relative to the rootdir), checked before the run by the
    one parser of store specs (a bad spec was found only when saving, after every item ran)."""
    try:
        store = open_store(spec, root)
    except BaselineError as exc:
        raise pytest.UsageError(f"perfgate: {where}={spec}: {exc}") from None
    if isinstance(store, DirStore) and store.path.is_file():
        raise pytest.UsageError(
            f"perfgate: {where}={spec}: {store.path} is a file, not a directory"
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


def _typed(config: pytest.Config, options: tuple[str, ...]) -> bool:
    """Whether one of ``options`` was typed on the command line (not from addopts)."""
    for arg in map(str, config.invocation_params.args):
        for option in options:
            if arg == option or arg.startswith(option + "="):
                return True
            if len(option) == 2 and arg.startswith(option) and not arg.startswith("--"):
                return True  # -n4, -nauto
    return False


def quiet_addopts_coverage(early_config: pytest.Config, known: argparse.Namespace) -> bool:
    """Keep pytest-cov from starting when its --cov came from addopts; True if it did.

    Runs before pytest-cov reads ``known`` (the early parse of the arguments): the load driver
    measured under a tracer is several times slower.
    """
    if not getattr(known, "perfgate", False) or not getattr(known, "cov_source", None):
        return False
    if _typed(early_config, _COVERAGE):
        return False
    known.no_cov = True  # what --no-cov sets; pytest-cov reads it when it starts
    return True


def quiet_addopts_xdist(config: pytest.Config) -> bool:
    """Run in one process when -n came from addopts; True if it did.

    pytest-xdist's own configure, which runs after perfgate's, then starts no workers.
    """
    if hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None):
        return False
    if _typed(config, _NUMPROCESSES):
        return False
    config.option.numprocesses = None
    config.option.dist = "no"
    config.option.tx = []
    return True
