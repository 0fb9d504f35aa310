"""The flow for one item, one call per arrow: budgets → probe → measurement → verdict.

``Gate`` holds the run's ``System`` (database, target, loop) and measures an endpoint or a
query through its probe, then turns the measurement into a verdict. Errors become ERROR
verdicts, never exceptions; comparing with a baseline is the caller's next step.

Every verdict leaves the gate through one redaction pass (``Redactor.scrub``, fed by all the
run's secrets: ``System.secrets``), and so do its notes and errors: what the reports, the
JSON file and the baseline store get is already masked and clean.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

from perfgate.budgets.model import DATABASE_BUDGET_KEYS, Config, Endpoint, Query
from perfgate.exceptions import DatabaseError, PerfgateError
from perfgate.probes.dbprofile import (
    DatabaseReading,
    explain_heaviest,
    probe_requests,
    watch_load,
)
from perfgate.probes.http import EndpointRun, HttpLoad, HttpProbe
from perfgate.probes.postgres import PostgresProbe
from perfgate.probes.statements import DatabaseWatch, StatementsUnavailable
from perfgate.redact import Redactor
from perfgate.system.resources import System
from perfgate.verdict.endpoint import endpoint_error, endpoint_verdict
from perfgate.verdict.model import Verdict
from perfgate.verdict.query import gate_query, query_error_result

__all__ = ["Gate", "now_iso"]


@dataclass(slots=True)
class Gate:
    """Measures items against the run's resources; ``system`` starts what they need."""

    system: System
    _postgres_version: str | None = field(default=None)

    @classmethod
    def for_config(cls, config: Config, environ: dict[str, str] | None = None) -> Gate:
        """A gate with a system of its own (started on first use)."""
        return cls(System(config) if environ is None else System(config, environ=environ))

    @property
    def config(self) -> Config:
        return self.system.config

    def begin_item(self) -> None:
        """Start the next item from the database as setup left it."""
        self.system.begin_item()

    def run_endpoint(self, endpoint: Endpoint, source: str | None = None) -> Verdict:
        """Measure one endpoint and hold it against its budget."""
        system = self.system
        try:
            # The database before the target, as when the target's command names {dsn}: set
            # up and copied before anything of the app runs.
            counting = system.attributing and endpoint.db_probes > 0
            dsn = system.database(endpoint.name).dsn if counting else None
            system.start_target(endpoint.name)
            load = HttpLoad(
                request=system.request_for(endpoint),
                requests=endpoint.requests,
                concurrency=endpoint.concurrency,
                warmup=endpoint.warmup,
                timeout_s=endpoint.timeout_ms / 1000,
                expect_status=endpoint.expect_status,
                max_response_bytes=endpoint.max_response_bytes,
            )
            probe = HttpProbe(system.client, system.values)
            with system.watching_writes():
                if dsn is not None:
                    measured = self._with_statements(endpoint, probe, load, dsn)
                    run, reading = system.loop.run(measured)
                else:
                    run, reading = system.loop.run(probe.measure(load)), None
                    if DATABASE_BUDGET_KEYS & endpoint.budget.keys():
                        reading = DatabaseReading(self._not_counted(endpoint))
        except PerfgateError as exc:
            error = endpoint_error(endpoint, str(exc), source=source)
            return self._outgoing(error, endpoint.headers)
        defaults = self.config.defaults
        verdict = endpoint_verdict(
            endpoint,
            run,
            confidence=defaults.confidence,
            source=source,
            db=reading,
            plan_rules=defaults.plan_rules,
            seq_scan_min_pages=defaults.seq_scan_min_pages,
        )
        return self._outgoing(verdict, endpoint.headers)

    def _not_counted(self, endpoint: Endpoint) -> str:
        """Why an endpoint's statements are not read."""
        if endpoint.db_probes == 0:
            return "db_probes is 0"
        if not self.config.database.enabled:
            return "the budgets file has no database section"
        return "only for a target perfgate starts (target.command or target.app)"

    async def _with_statements(
        self, endpoint: Endpoint, probe: HttpProbe, load: HttpLoad, dsn: str
    ) -> tuple[EndpointRun, DatabaseReading]:
        """The load run, with requests sent one at a time first and the statements of each."""
        system = self.system
        if system.statements_unavailable:
            return await probe.measure(load), DatabaseReading(system.statements_unavailable)
        try:
            watch = await DatabaseWatch.open(dsn)
        except StatementsUnavailable as exc:  # said once, for the whole run
            system.statements_unavailable = str(exc)
            return await probe.measure(load), DatabaseReading(str(exc))
        except DatabaseError as exc:  # this endpoint's reading only
            return await probe.measure(load), DatabaseReading(str(exc))
        try:
            started = time.perf_counter()
            try:
                async with probe.one_at_a_time(load, self.config.target.ready) as send:
                    probes = await probe_requests(watch, send, endpoint.db_probes)
            except DatabaseError as exc:  # the endpoint is measured all the same
                return await probe.measure(load), DatabaseReading(str(exc))
            probing_s = time.perf_counter() - started
            run, totals = await watch_load(
                watch, lambda: probe.measure(load), lambda r: r.warmup + len(r.samples)
            )
            if isinstance(totals, str):
                return run, DatabaseReading(totals)
            started = time.perf_counter()
            try:
                plans, pages = await explain_heaviest(watch, totals, probes)
            except DatabaseError:  # the counts stand without the plans
                plans, pages = {}, {}
            probing_s += time.perf_counter() - started
        finally:
            await watch.close()
        return run, DatabaseReading("", probes, totals, plans, pages, probing_s)

    def run_query(self, query: Query, source: str | None = None) -> Verdict:
        """Measure one query on the scratch database and hold it, and its plan, to the budget."""
        try:
            probe = PostgresProbe(self.system.database(query.name).dsn)
            measurement = self.system.loop.run(probe.measure(query))
        except PerfgateError as exc:  # PostgreSQL's errors can echo parameters and DSNs
            return self._outgoing(query_error_result(query, exc, source))
        self._postgres_version = measurement.server_version
        return self._outgoing(gate_query(query, measurement, self.config.defaults, source=source))

    def redactor(self, headers: Mapping[str, str] | None = None) -> Redactor:
        """The run's one redaction pass, knowing every secret so far (and ``headers``')."""
        return Redactor.of(self.system.secrets(headers))

    def redact(self, text: str) -> str:
        """A note or an error, through the run's redaction pass."""
        return self.redactor().text(text)

    def _outgoing(self, verdict: Verdict, headers: Mapping[str, str] | None = None) -> Verdict:
        return self.redactor(headers).scrub(verdict)

    def environment(self) -> dict[str, object]:
        """What the numbers were measured on (compared with a baseline's)."""
        env = self.system.environment()
        if self._postgres_version:
            env["postgres_version"] = self._postgres_version
        return env

    def notes(self) -> list[str]:
        """What the summary should say about the run's resources (redacted)."""
        redactor = self.redactor()
        return [redactor.text(note) for note in self.system.notes()]

    def close(self) -> None:
        """Stop and remove what the run started; PerfgateError (redacted) if something stayed."""
        try:
            self.system.close()
        except PerfgateError as exc:
            raise PerfgateError(self.redact(str(exc))) from None


def now_iso() -> str:
    """The current UTC time, ISO 8601, second precision."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()
