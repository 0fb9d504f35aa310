"""The ``perfgate`` fixture: scenarios written in test code, gated like budgets.yaml items."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from perfgate.budgets import endpoint_from_mapping, query_from_mapping
from perfgate.budgets.model import Endpoint, RegressionPolicy
from perfgate.gate import Gate
from perfgate.verdict.model import Verdict


@dataclass(slots=True)
class PerfgateFixture:
    """What a test gets as ``perfgate``; its coroutines work under any asyncio test plugin."""

    gate: Gate
    nodeid: str
    record: Callable[[Verdict], Verdict]
    judge: Callable[[RegressionPolicy, Callable[[], Verdict], Endpoint | None], Verdict]
    _count: int = field(default=0)

    def _name(self, name: str | None, what: str) -> str:
        self._count += 1
        if name:
            return name
        test = self.nodeid.rpartition("::")[2]
        return f"{test}[{what}]" if self._count == 1 else f"{test}[{what}#{self._count}]"

    async def endpoint(
        self,
        method: str,
        path: str,
        *,
        name: str | None = None,
        requests: int | None = None,
        concurrency: int | None = None,
        warmup: int | None = None,
        budget: Mapping[str, object] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        body: str | None = None,
        expect_status: int | Sequence[int] | None = None,
        timeout: str | float | None = None,
    ) -> Verdict:
        """Measure ``METHOD path`` against the budgets file's target; fail the test on a breach."""
        raw: dict[str, object] = {"request": f"{method.upper()} {path}"}
        for key, value in (
            ("requests", requests),
            ("concurrency", concurrency),
            ("warmup", warmup),
            ("budget", dict(budget) if budget else None),
            ("headers", dict(headers) if headers else None),
            ("json", json),
            ("body", body),
            (
                "expect_status",
                list(expect_status) if isinstance(expect_status, Sequence) else expect_status,
            ),
            ("timeout", timeout),
        ):
            if value is not None:
                raw[key] = value
        label = self._name(name, f"{method.upper()} {path}")
        config = self.gate.config
        endpoint = endpoint_from_mapping(
            label,
            raw,
            config.defaults,
            origin=self.nodeid,
            has_login=config.target.login is not None,
        )

        def measure() -> Verdict:
            return self.gate.run_endpoint(endpoint, self.nodeid)

        # The gate's own loop thread does the measuring; this loop only waits for it.
        result = await asyncio.to_thread(self.judge, endpoint.regression, measure, endpoint)
        return self.record(result)

    async def query(
        self,
        name: str,
        sql: str,
        *params: Any,
        budget: Mapping[str, object] | None = None,
        runs: int | None = None,
        require_index: bool = False,
        generic_plan: bool = False,
        setup_sql: Sequence[str] = (),
        statement_timeout: str | float | None = None,
    ) -> Verdict:
        """EXPLAIN ANALYZE ``sql`` on the scratch database and gate it like a budgets.yaml query."""
        raw: dict[str, object] = {"sql": sql, "params": list(params)}
        for key, value in (
            ("budget", dict(budget) if budget else None),
            ("runs", runs),
            ("require_index", require_index or None),
            ("generic_plan", generic_plan or None),
            ("setup_sql", list(setup_sql) or None),
            ("statement_timeout", statement_timeout),
        ):
            if value is not None:
                raw[key] = value
        config = self.gate.config
        query = query_from_mapping(name, raw, config.defaults, origin=self.nodeid, root=config.root)

        def measure() -> Verdict:
            return self.gate.run_query(query, self.nodeid)

        result = await asyncio.to_thread(self.judge, query.regression, measure, None)
        return self.record(result)
