"""The HTTP probe: drive one endpoint at a fixed concurrency and record every request."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from perfgate.exceptions import TargetError
from perfgate.measurement import EndpointRun, RequestSample
from perfgate.probes.servertiming import server_time_ms
from perfgate.probes.transport import DriverClient, KeepAliveTransport, Prepared

__all__ = ["RequestSpec", "drive", "wait_ready"]


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """What to send: ``path`` is relative to the client's base URL and may carry a query string."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    json: object | None = None
    body: bytes | None = None


def _cache_status(value: str | None) -> str | None:
    # "HIT", "miss", "Hit from cloudfront" -> HIT / MISS; anything else is not a cache verdict.
    if not value:
        return None
    word = value.split(None, 1)[0].rstrip(",").upper() if value.strip() else ""
    return word if word in ("HIT", "MISS") else None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_Accept = Callable[[int], bool]
_One = Callable[[], Awaitable[RequestSample]]


def _via_client(client: httpx.AsyncClient, request: httpx.Request, accepted: _Accept) -> _One:
    """Send through ``client.send``: any transport, event hooks and auth honoured."""
    clock = time.perf_counter_ns

    async def one() -> RequestSample:
        started = clock()
        try:
            response = await client.send(request)
        except (httpx.HTTPError, OSError) as exc:
            return RequestSample(clock() - started, None, 0, None, None, _describe(exc))
        latency = clock() - started
        headers = response.headers
        status = response.status_code
        return RequestSample(
            latency_ns=latency,
            status=status,
            nbytes=len(response.content),
            cache=_cache_status(headers.get("x-cache")),
            server_ms=server_time_ms(headers.get("server-timing"), headers.get("x-response-time")),
            error=None if accepted(status) else f"HTTP {status}",
        )

    return one


def _via_transport(transport: KeepAliveTransport, prepared: Prepared, accepted: _Accept) -> _One:
    """Send through ``KeepAliveTransport.fetch``, skipping httpx's per-request objects."""
    clock = time.perf_counter_ns
    fetch = transport.fetch

    async def one() -> RequestSample:
        started = clock()
        try:
            status, headers, body, _ = await fetch(prepared)
        except (httpx.HTTPError, OSError) as exc:
            return RequestSample(clock() - started, None, 0, None, None, _describe(exc))
        latency = clock() - started
        cache = timing = response_time = None
        encoded = False
        for name, value in headers:
            lowered = name.lower()
            if lowered == b"x-cache":
                cache = value.decode("latin-1")
            elif lowered == b"server-timing":
                text = value.decode("latin-1")
                timing = text if timing is None else f"{timing}, {text}"
            elif lowered == b"x-response-time":
                response_time = value.decode("latin-1")
            elif lowered == b"content-encoding":
                encoded = True
        nbytes = len(body)
        if encoded:  # rare in a load test; let httpx decode so nbytes means the same either way
            try:
                nbytes = len(httpx.Response(status, headers=headers, content=body).content)
            except httpx.DecodingError as exc:
                return RequestSample(latency, status, len(body), None, None, _describe(exc))
        return RequestSample(
            latency_ns=latency,
            status=status,
            nbytes=nbytes,
            cache=_cache_status(cache),
            server_ms=server_time_ms(timing, response_time),
            error=None if accepted(status) else f"HTTP {status}",
        )

    return one


async def _run(one: _One, count: int, concurrency: int) -> list[RequestSample]:
    """Send ``count`` requests with ``concurrency`` workers pulling from one shared counter."""
    samples: list[RequestSample] = []
    remaining = count

    async def worker() -> None:
        nonlocal remaining
        # No await between the check and the decrement, so workers never over-issue.
        while remaining > 0:
            remaining -= 1
            samples.append(await one())

    workers = [asyncio.ensure_future(worker()) for _ in range(min(concurrency, count))]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
    return samples


def _direct_transport(client: httpx.AsyncClient) -> KeepAliveTransport | None:
    """The transport to call directly, if nothing on the client would notice the shortcut."""
    if not isinstance(client, DriverClient) or client.auth is not None:
        return None
    hooks = client.event_hooks
    return None if hooks["request"] or hooks["response"] else client.keepalive


async def drive(
    client: httpx.AsyncClient,
    request: RequestSpec,
    *,
    requests: int,
    concurrency: int,
    warmup: int,
    expect_status: frozenset[int] | None = None,
) -> EndpointRun:
    """Send ``warmup`` untimed, then exactly ``requests`` timed requests, ``concurrency`` at a time.

    A status outside 2xx is an error unless it is in ``expect_status``; transport errors and
    timeouts are recorded as samples with ``status=None``, never raised. ``nbytes`` is the body
    size after content decoding. The request is built once and re-sent (httpx's URL parsing
    would otherwise dominate the client's cost), so cookies set during the run are not sent
    back; with a ``make_client`` client (no auth, no event hooks) it goes straight to the
    transport, skipping httpx's response objects (see probes/transport.py for the figures).
    """
    if requests < 1 or concurrency < 1 or warmup < 0:
        raise ValueError(
            f"need requests >= 1, concurrency >= 1, warmup >= 0; got {requests=}, "
            f"{concurrency=}, {warmup=}"
        )
    extra = expect_status or frozenset()

    def accepted(status: int) -> bool:
        return 200 <= status < 300 or status in extra

    built = client.build_request(
        request.method,
        request.path,
        headers=list(request.headers),
        json=request.json,
        content=request.body,
    )
    one = _via_client(client, built, accepted)
    transport = _direct_transport(client)
    if transport is not None:
        # An unusable URL falls through to client.send, which records the error per request.
        with contextlib.suppress(httpx.HTTPError):
            one = _via_transport(transport, transport.prepare(built, built.content), accepted)
    if warmup:
        await _run(one, warmup, concurrency)
    started = time.perf_counter_ns()
    samples = await _run(one, requests, concurrency)
    wall_ns = time.perf_counter_ns() - started
    return EndpointRun(
        samples=tuple(samples), wall_ns=wall_ns, concurrency=concurrency, warmup=warmup
    )


async def wait_ready(client: httpx.AsyncClient, path: str, timeout_s: float) -> None:
    """Poll ``GET path`` until 2xx; on timeout raise TargetError naming the last outcome."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    delay = 0.02
    last = "no attempt made"
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        try:
            response = await client.get(path, timeout=max(0.05, min(remaining, 2.0)))
        except (httpx.HTTPError, OSError) as exc:
            last = _describe(exc)
        else:
            if 200 <= response.status_code < 300:
                return
            last = f"HTTP {response.status_code}"
        await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
        delay = min(delay * 2, 0.5)
    raise TargetError(
        f"target not ready: GET {client.base_url.join(path)} gave no 2xx within {timeout_s:g}s "
        f"(last: {last})"
    )
