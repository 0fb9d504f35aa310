"""What one pytest run of perfgate holds, in ``config.stash`` (never in module globals).

``LAUNCH`` is set first, before pytest-env and conftest.py run (the environment programs and
the budgets file will see, and the addopts options switched off); ``RUN`` is set when pytest
configures, with everything else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from perfgate.baseline.interleave import Interleaved
from perfgate.baseline.session import BaselineSession
from perfgate.budgets.model import Config
from perfgate.gate import Gate
from perfgate.plugin.options import Settings
from perfgate.plugin.signals import Handlers
from perfgate.verdict.model import GateReport, Verdict

__all__ = ["LAUNCH", "RUN", "Launch", "PerfgateRun"]


@dataclass(slots=True)
class Launch:
    """Before the tests' own setup: pytest's environment, and addopts options switched off."""

    environ: dict[str, str]
    adjusted: list[str] = field(default_factory=list)


@dataclass(slots=True)
class PerfgateRun:
    """The run: its settings, what it measured with, what it found, what it wrote."""

    settings: Settings
    launch: Launch
    config: Config | None = None  # the budgets file (with --perfgate)
    gate: Gate | None = None
    baseline: BaselineSession | None = None  # with --perfgate-compare or --perfgate-save
    interleaved: Interleaved | None = None  # with --perfgate-interleave
    results: list[Verdict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # for the summary
    written: list[str] = field(default_factory=list)  # report files
    report: GateReport | None = None  # when the session finished
    worker_environment: dict[str, object] = field(default_factory=dict)  # from xdist workers
    signals: Handlers = field(default_factory=dict)  # the handlers perfgate replaced
    # Completeness: the gate's items selected (node id -> name), those that ran to the end,
    # why the run stopped early, and how many budgets-file items were not selected.
    expected: dict[str, str] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)
    stopped: str | None = None
    deselected: int = 0
    failures: list[str] = field(default_factory=list)  # what makes the run fail at its end

    def fail(self, why: str) -> None:
        """The run must not pass: a report or baseline could not be written (said at the end)."""
        self.failures.append(why)

    @property
    def active(self) -> Gate | None:
        """The gate, when --perfgate was given and the budgets file was read."""
        return self.gate if self.settings.enabled else None


LAUNCH = pytest.StashKey[Launch]()
RUN = pytest.StashKey[PerfgateRun]()
