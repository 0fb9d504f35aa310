"""The pytest nodes perfgate adds: budgets.yaml as a collector, one item per endpoint or query.

Each item measures through the session's Gate, is judged against the baseline when one is being
compared with, and fails with the verdict's own words (no traceback).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from perfgate.baseline.interleave import Interleaved
from perfgate.baseline.session import BaselineSession
from perfgate.budgets.model import Config, Endpoint, Query, RegressionPolicy
from perfgate.exceptions import PerfgateError
from perfgate.gate import Gate
from perfgate.plugin.options import Settings
from perfgate.verdict.model import GateReport, Verdict
from perfgate.verdict.values import Status

# Session state, all in config.stash (never module globals).
SETTINGS = pytest.StashKey[Settings]()
CONFIG = pytest.StashKey[Config]()
GATE = pytest.StashKey[Gate]()
RESULTS = pytest.StashKey[list[Verdict]]()
REPORT = pytest.StashKey[GateReport]()
WRITTEN = pytest.StashKey[list[str]]()
NOTES = pytest.StashKey[list[str]]()  # baseline saved / not found / unreadable, for the summary
BASELINE = pytest.StashKey[BaselineSession]()
WORKER_ENV = pytest.StashKey[dict[str, Any]]()
INTERLEAVE = pytest.StashKey[Interleaved]()
LAUNCH_ENV = pytest.StashKey[dict[str, str]]()  # os.environ before pytest-env and conftest.py


class BudgetsFile(pytest.File):
    """budgets.yaml as a collector: one item per endpoint and per query."""

    def collect(self) -> Iterator[pytest.Item]:
        cfg = self.config.stash[CONFIG]
        for endpoint in cfg.endpoints:
            yield EndpointItem.from_parent(self, name=endpoint.name, endpoint=endpoint)
        for query in cfg.queries:
            yield QueryItem.from_parent(self, name=query.name, query=query)


class GateItem(pytest.Item):
    """Common behaviour: run, record, fail with the verdict's words (no traceback)."""

    line: int | None = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_marker("perfgate")
        self.add_marker(pytest.mark.xdist_group("perfgate"))

    def measure(self, gate: Gate, source: str) -> Verdict:
        raise NotImplementedError

    @property
    def policy(self) -> RegressionPolicy:
        raise NotImplementedError

    def runtest(self) -> None:
        gate = self.config.stash[GATE]
        source = f"{self.config.stash[SETTINGS].item_prefix}:{self.line}" if self.line else None
        where = source or self.nodeid
        endpoint = self.endpoint if isinstance(self, EndpointItem) else None
        result = judge(self.config, self.policy, lambda: self.measure(gate, where), endpoint, where)
        record(self.config, result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, PerfgateError):
            return f"perfgate: {excinfo.value}"
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, (self.line - 1) if self.line else None, f"perfgate: {self.name}"


class EndpointItem(GateItem):
    """One endpoint of the budgets file."""

    def __init__(self, *, endpoint: Endpoint, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.endpoint = endpoint
        self.line = endpoint.line

    def measure(self, gate: Gate, source: str) -> Verdict:
        return gate.run_endpoint(self.endpoint, source)

    @property
    def policy(self) -> RegressionPolicy:
        return self.endpoint.regression


class QueryItem(GateItem):
    """One query of the budgets file."""

    def __init__(self, *, query: Query, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.query = query
        self.line = query.line

    def measure(self, gate: Gate, source: str) -> Verdict:
        return gate.run_query(self.query, source)

    @property
    def policy(self) -> RegressionPolicy:
        return self.query.regression


def judge(
    config: pytest.Config,
    policy: RegressionPolicy,
    measure: Callable[[], Verdict],
    endpoint: Endpoint | None = None,
    source: str = "",
) -> Verdict:
    """Measure, then compare with the baseline when asked (measuring again while unclear)."""
    config.stash[GATE].begin_item()
    result = measure()
    interleaved = config.stash.get(INTERLEAVE, None)
    if interleaved is not None and endpoint is not None:
        return interleaved.judge(endpoint, config.stash[GATE], result, source)
    baseline = config.stash.get(BASELINE, None)
    if baseline is None or baseline.compare is None:
        return result
    return baseline.judge(result, policy, measure, config.stash[GATE].environment())


def record(config: pytest.Config, result: Verdict) -> Verdict:
    """Keep the result for the reports, then fail the current item if it breached.

    Under --perfgate-warn-only nothing fails: a breach becomes WARNED, and a result that could
    not be measured stays ERROR (reported as such, never as "over budget").
    """
    settings = config.stash[SETTINGS]
    if result.status == Status.FAILED and settings.warn_only:
        result = dataclasses.replace(result, status=Status.WARNED)
    config.stash[RESULTS].append(result)
    if result.status == Status.FAILED or (result.status == Status.ERROR and not settings.warn_only):
        pytest.fail(result.explain(), pytrace=False)
    return result
