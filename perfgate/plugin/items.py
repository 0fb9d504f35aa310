"""The pytest nodes perfgate adds: budgets.yaml as a collector, one item per endpoint or query.

Each item measures through the session's Gate, is judged against the baseline when one is being
compared with, and fails with the verdict's own words (no traceback).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from perfgate import __version__
from perfgate.budgets.model import Endpoint, Query, RegressionPolicy
from perfgate.exceptions import PerfgateError
from perfgate.gate import Gate
from perfgate.plugin.run import RUN, PerfgateRun
from perfgate.report.escape import terminal_text
from perfgate.verdict.endpoint import endpoint_error
from perfgate.verdict.model import Verdict
from perfgate.verdict.query import query_error_result
from perfgate.verdict.values import Status

BUG = "perfgate's own error, a bug in perfgate (not in your app or budgets file)"


class BudgetsFile(pytest.File):
    """budgets.yaml as a collector: one item per endpoint and per query."""

    def collect(self) -> Iterator[pytest.Item]:
        cfg = self.config.stash[RUN].config
        assert cfg is not None  # collected only with --perfgate and a budgets file read
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
        run = self.config.stash[RUN]
        gate = run.gate
        assert gate is not None  # collected only with --perfgate
        source = f"{run.settings.item_prefix}:{self.line}" if self.line else None
        where = source or self.nodeid
        endpoint = self.endpoint if isinstance(self, EndpointItem) else None
        try:
            measure = functools.partial(self.measure, gate, where)
            result = judge(run, gate, self.policy, measure, endpoint, where)
        except Exception as exc:
            # perfgate's own bug: the item is an ERROR in every report (not missing from them),
            # and pytest shows the traceback with a line saying whose bug it is.
            text = f"{BUG} ({type(exc).__name__}: {exc})"
            run.results.append(self.crashed(gate, text, where))
            raise
        record(run, result)

    def crashed(self, gate: Gate, error: str, source: str) -> Verdict:
        raise NotImplementedError

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, PerfgateError):
            return terminal_text(f"perfgate: {excinfo.value}")
        if isinstance(excinfo.value, pytest.fail.Exception):
            return str(super().repr_failure(excinfo, style=style))
        # From this item's runtest down: pytest's and pluggy's frames above it are noise.
        excinfo.traceback = excinfo.traceback.cut(path=__file__).filter(excinfo)
        shown = str(super().repr_failure(excinfo, style=style))
        gate = self.config.stash[RUN].gate
        shown = gate.redact(shown) if gate is not None else shown
        return terminal_text(
            f"{shown}\n\nperfgate {__version__}: {BUG}; please report it with this traceback"
        )

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

    def crashed(self, gate: Gate, error: str, source: str) -> Verdict:
        verdict = endpoint_error(self.endpoint, error, source=source)
        return gate.redactor(self.endpoint.headers).scrub(verdict)

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

    def crashed(self, gate: Gate, error: str, source: str) -> Verdict:
        return gate.redactor().scrub(query_error_result(self.query, error, source))

    @property
    def policy(self) -> RegressionPolicy:
        return self.query.regression


def judge(
    run: PerfgateRun,
    gate: Gate,
    policy: RegressionPolicy,
    measure: Callable[[], Verdict],
    endpoint: Endpoint | None = None,
    source: str = "",
) -> Verdict:
    """Measure, then compare with the baseline when asked (measuring again while unclear)."""
    gate.begin_item()
    result = measure()
    if run.interleaved is not None and endpoint is not None:
        return run.interleaved.judge(endpoint, gate, result, source)
    if run.baseline is None or run.baseline.compare is None:
        return result
    return run.baseline.judge(result, policy, measure, gate.environment())


def record(run: PerfgateRun, result: Verdict) -> Verdict:
    """Keep the result for the reports, then fail the current item if it breached.

    Under --perfgate-warn-only nothing fails: a breach becomes WARNED, and a result that could
    not be measured stays ERROR (reported as such, never as "over budget").
    """
    warn_only = run.settings.warn_only
    if result.status == Status.FAILED and warn_only:
        result = dataclasses.replace(result, status=Status.WARNED)
    run.results.append(result)
    if result.status == Status.FAILED or (result.status == Status.ERROR and not warn_only):
        pytest.fail(terminal_text(result.explain()), pytrace=False)
    return result
