"""The probes: each measures one kind of thing and judges nothing.

A probe is a ``Probe``: ``await probe.measure(spec)`` returns a measurement, a frozen value
defined beside the probe, which ``perfgate.verdict`` turns into a verdict.

http.py         HttpProbe: an endpoint driven at a fixed concurrency (EndpointRun)
postgres.py     PostgresProbe: a query's EXPLAIN (ANALYZE, BUFFERS) runs (QueryMeasurement)
statements.py   pg_stat_statements of the scratch database, read around requests
dbprofile.py    an endpoint's statements: requests sent one at a time, and the load run's
statementplan.py a pg_stat_statements text's generic plan, planned and never run
requests.py     what the driver sends: a request, and {seq}/{uuid} new for every request
client.py       the httpx client the driver sends through (make_client)
transport.py    the keep-alive HTTP/1.1 transport under it
wire.py         one connection as an asyncio Protocol
framing.py      HTTP/1.1 response framing: status line, Content-Length, chunked, strictly
limits.py       max_response_bytes: the size limit, its error, bounded decoding
servertiming.py Server-Timing and x-response-time
sqlparams.py    a query's parameters, coerced to the types PostgreSQL asks for
"""

from __future__ import annotations

from typing import Protocol, TypeVar

__all__ = ["Probe"]

SpecT = TypeVar("SpecT", contravariant=True)
MeasurementT = TypeVar("MeasurementT", covariant=True)


class Probe(Protocol[SpecT, MeasurementT]):
    """Measures what ``spec`` describes; failures to measure are raised as PerfgateErrors."""

    async def measure(self, spec: SpecT) -> MeasurementT: ...
