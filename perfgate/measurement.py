"""What the probes measured: raw samples and the metrics derived from them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RequestSample:
    """One timed HTTP request; an error is recorded here, never raised."""

    latency_ns: int
    status: int | None  # None when no response arrived (transport error, timeout)
    nbytes: int  # response body size in bytes
    cache: str | None  # "HIT" / "MISS" from x-cache, None when absent
    server_ms: float | None  # Server-Timing total (or sum of durs) / x-response-time
    error: str | None  # why the request counts as an error, None when it succeeded
    detail: str | None = None  # for an error response: the start of its body


@dataclass(frozen=True, slots=True)
class EndpointRun:
    """The timed part of one endpoint probe (warm-up requests are not included)."""

    samples: tuple[RequestSample, ...]
    wall_ns: int  # from the first timed request sent to the last one answered
    concurrency: int
    warmup: int
