"""An endpoint's database profile: the statements of single requests, and of the load run.

Before the load run, ``probe_requests`` sends ``count`` requests one at a time with a settled
reading of pg_stat_statements around each: per request, exactly which statements ran and how
often. The first one is counted too: behind a response cache it is the MISS that the others
are HITs of. What an app does once per new database connection (a driver's type lookups, an
ORM's first-connect queries) is not the endpoint's, so the gate sends the target's ready path
first, uncounted, on the same connection (an app's ready path usually touches its database).
``watch_load`` reads the totals around the load run (warm-up included, so they are divided by
every request sent) and samples the scratch database's connections while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from perfgate.exceptions import DatabaseError
from perfgate.plan import Plan
from perfgate.probes.http import RequestSample
from perfgate.probes.statements import DatabaseWatch, StatementTotals, difference
from perfgate.probes.statements import is_transaction_control as control

__all__ = [
    "CONNECTIONS_EVERY_S",
    "HEAVIEST",
    "DatabaseReading",
    "LoadStatements",
    "RequestStatements",
    "explain_heaviest",
    "own_statements",
    "probe_requests",
    "watch_load",
]

CONNECTIONS_EVERY_S = 0.05  # how often connections are counted during the load run
HEAVIEST = 3  # statements whose plans are read, by execution time during the load run
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RequestStatements:
    """One probe request: its cache state and status, and the statements it caused."""

    cache: str | None  # "HIT" / "MISS" from x-cache
    status: int | None
    statements: tuple[StatementTotals, ...]
    ok: bool = True  # the request was accepted (a failed one's statements are not the endpoint's)

    @property
    def queries(self) -> int:
        """Statements run, transaction control (BEGIN, COMMIT, ...) left out."""
        return sum(s.calls for s in self.statements if not control(s.text))

    @property
    def rows(self) -> int:
        """Rows the queries returned or changed."""
        return sum(s.rows for s in self.statements if not control(s.text))

    @property
    def buffers(self) -> int:
        """Shared buffers the queries hit or read."""
        return sum(s.buffers for s in self.statements if not control(s.text))

    @property
    def db_ms(self) -> float:
        return sum(s.exec_ms for s in self.statements)


@dataclass(frozen=True, slots=True)
class LoadStatements:
    """What the load run did to the database, in total, and its busiest moment."""

    requests: int  # every request sent, warm-up included
    statements: tuple[StatementTotals, ...]
    connections_peak: int
    max_connections: int


async def probe_requests(
    watch: DatabaseWatch, send: Callable[[], Awaitable[RequestSample]], count: int
) -> tuple[RequestStatements, ...]:
    """``count`` requests sent one by one, each with the statements it caused."""
    before = await watch.settled()
    out = []
    for _ in range(count):
        sample = await send()
        after = await watch.settled()
        ran = difference(before, after)
        out.append(RequestStatements(sample.cache, sample.status, ran, sample.error is None))
        before = after
    return tuple(out)


async def watch_load(
    watch: DatabaseWatch, run: Callable[[], Awaitable[T]], requests: Callable[[T], int]
) -> tuple[T, LoadStatements | str]:
    """Run the load, reading the statements around it and counting connections; instead of
    the totals, why they could not be read (the load is run all the same)."""
    try:
        before = await watch.reading()
    except DatabaseError as exc:
        return await run(), str(exc)
    peak = 0
    done = asyncio.Event()

    async def count_connections() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, await watch.connections())
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(done.wait(), CONNECTIONS_EVERY_S)

    counter = asyncio.ensure_future(count_connections())
    try:
        result = await run()
    finally:
        done.set()
        with contextlib.suppress(DatabaseError):
            await counter
    try:
        after = await watch.settled()
    except DatabaseError as exc:  # the load run's result stands; only its totals are lost
        return result, str(exc)
    load = LoadStatements(requests(result), difference(before, after), peak, watch.max_connections)
    return result, load


@dataclass(frozen=True, slots=True)
class DatabaseReading:
    """What was read about one endpoint's statements; ``unavailable`` says why nothing was."""

    unavailable: str = ""
    probes: tuple[RequestStatements, ...] = ()
    load: LoadStatements | None = None
    plans: Mapping[str, Plan | str] = field(default_factory=dict)  # by text: plan or why none
    relation_pages: Mapping[str, int] = field(default_factory=dict)  # of the plans' tables
    probing_s: float = 0.0  # the single requests and their readings


def own_statements(
    probes: Sequence[RequestStatements], load: LoadStatements
) -> tuple[StatementTotals, ...]:
    """The load run's queries that the requests sent alone ran too (all of them without
    probes): not what new connections ran once (a driver's lookups, an ORM's first queries)."""
    seen = {s.text for p in probes if p.ok for s in p.statements}
    return tuple(s for s in load.statements if not control(s.text) and (not seen or s.text in seen))


async def explain_heaviest(
    watch: DatabaseWatch,
    load: LoadStatements,
    probes: Sequence[RequestStatements] = (),
    top: int = HEAVIEST,
) -> tuple[dict[str, Plan | str], dict[str, int]]:
    """The generic plans of the endpoint's ``top`` queries by execution time during the load
    run, and the page counts of the tables they read."""
    heavy = own_statements(probes, load)[:top]
    plans = {s.text: await watch.explain(s.text) for s in heavy}
    tables = {n.relation for p in plans.values() if isinstance(p, Plan) for n in p.nodes()}
    pages = await watch.relation_pages(sorted(t for t in tables if t))
    return plans, pages
