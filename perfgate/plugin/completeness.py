"""Whether a run measured everything it selected: only a complete run may become a baseline.

Registered for a ``--perfgate`` run. It notes the gate's items once collection is final, each
item that ran to its end (from the reports, which pytest-xdist relays to the controller), and
why the run stopped early (Ctrl-C, SIGTERM, ``-x``).
"""

from __future__ import annotations

from typing import Any

import pytest

from perfgate.plugin.items import GateItem
from perfgate.plugin.run import PerfgateRun

__all__ = ["CompletenessHooks", "part_of_gate"]


def part_of_gate(item: pytest.Item) -> bool:
    """A budgets-file item, or a test that measures through perfgate."""
    fixtures = getattr(item, "fixturenames", ())
    return (
        isinstance(item, GateItem)
        or item.get_closest_marker("perfgate") is not None
        or "perfgate" in fixtures
        or "perfgate_dsn" in fixtures
    )


class CompletenessHooks:
    """Hooks that keep ``PerfgateRun.expected``, ``finished``, ``stopped`` and ``deselected``."""

    def __init__(self, run: PerfgateRun) -> None:
        self.run = run

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        run = self.run
        if session.config.pluginmanager.hasplugin("dsession"):
            return  # pytest-xdist's controller collects nothing: its workers send theirs
        run.expected = {item.nodeid: item.name for item in session.items if part_of_gate(item)}
        if run.config is not None:
            in_file = len(run.config.endpoints) + len(run.config.queries)
            selected = sum(isinstance(item, GateItem) for item in session.items)
            run.deselected = max(0, in_file - selected)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # An item ran to its end: its call phase reported, or its setup failed or skipped. An
        # interrupted item reports neither.
        if report.when == "call" or (report.when == "setup" and not report.passed):
            self.run.finished.add(report.nodeid)

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[Any]) -> None:
        text = str(excinfo.value).removeprefix("perfgate: ")
        self.run.stopped = text if text.startswith("stopped by") else "interrupted (Ctrl-C)"

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        run = self.run
        missing = any(nodeid not in run.finished for nodeid in run.expected)
        if run.stopped is None and missing and session.shouldfail:
            run.stopped = f"stopped early: {session.shouldfail}"
        elif run.stopped is None and missing and session.shouldstop:
            run.stopped = f"stopped early: {session.shouldstop}"
