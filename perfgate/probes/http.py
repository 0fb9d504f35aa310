"""The HTTP probe: drive one endpoint at a fixed concurrency and record every request."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx

from perfgate.exceptions import TargetError
from perfgate.probes.client import DriverClient
from perfgate.probes.framing import header_value, parse_headers
from perfgate.probes.limits import (
    DEFAULT_MAX_RESPONSE_BYTES,
    MAX_RESPONSE_BYTES,
    ResponseTooLarge,
    decoded_size,
    read_bounded,
)
from perfgate.probes.requests import RequestSpec, RequestValues, renderer
from perfgate.probes.servertiming import server_time_ms
from perfgate.probes.transport import KeepAliveTransport, Prepared
from perfgate.probes.wire import RawResponse

__all__ = [
    "EndpointRun",
    "HttpLoad",
    "HttpProbe",
    "RequestSample",
    "RequestSpec",
    "RequestValues",
    "drive",
    "ready_verdict",
    "wait_ready",
]

# Statuses that mean the server is up but the ready path will never answer 2xx: stop waiting.
_WRONG_READY = frozenset({400, 401, 403, 404, 405, 410})

_DETAIL_BYTES = 300  # of an error response's body, kept to show what the server said


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
# A worker sends requests while take() allows and hands each sample to keep().
_Worker = Callable[[Callable[[], bool], Callable[[RequestSample], None]], Awaitable[None]]


def _detail(body: bytes) -> str:
    """The start of an error response's body, as text."""
    return body[:_DETAIL_BYTES].decode("utf-8", "replace")


def _via_client(
    client: httpx.AsyncClient, build: Callable[[], httpx.Request], accepted: _Accept, limit: int
) -> _Worker:
    """Send through ``client.send``: any transport, event hooks and auth honoured."""
    clock = time.perf_counter_ns

    async def one() -> RequestSample:
        request = build()
        started = clock()
        try:
            response = await client.send(request, stream=True)
            nbytes, start = await read_bounded(response, limit, keep=_DETAIL_BYTES)
        except (httpx.HTTPError, OSError) as exc:
            return RequestSample(clock() - started, None, 0, None, None, _describe(exc))
        latency = clock() - started
        headers = response.headers
        status = response.status_code
        ok = accepted(status)
        return RequestSample(
            latency_ns=latency,
            status=status,
            nbytes=nbytes,
            cache=_cache_status(headers.get("x-cache")),
            server_ms=server_time_ms(headers.get("server-timing"), headers.get("x-response-time")),
            error=None if ok else f"HTTP {status}",
            detail=None if ok else _detail(start),
        )

    async def worker(take: Callable[[], bool], keep: Callable[[RequestSample], None]) -> None:
        while take():
            keep(await one())

    return worker


def _via_lanes(transport: KeepAliveTransport, prepared: Prepared, accepted: _Accept) -> _Worker:
    """Each worker sends through a ``Lane`` of its own, skipping httpx's per-request objects."""
    clock = time.perf_counter_ns

    def sample(started: int, raw: RawResponse) -> RequestSample:
        latency = clock() - started
        status, head, body, _ = raw
        lowered = head.lower()
        nbytes = len(body)
        if b"\ncontent-encoding:" in lowered:
            # Rare in a load test; let httpx decode so nbytes means the same either way.
            try:
                nbytes = decoded_size(status, parse_headers(head), body, prepared.max_body)
            except (httpx.DecodingError, ResponseTooLarge, ValueError) as exc:
                return RequestSample(latency, None, 0, None, None, _describe(exc))
        server_ms = None
        if b"\nserver-timing:" in lowered or b"\nx-response-time:" in lowered:
            server_ms = server_time_ms(
                header_value(head, lowered, b"server-timing"),
                header_value(head, lowered, b"x-response-time"),
            )
        cache = None
        if b"\nx-cache:" in lowered:
            cache = _cache_status(header_value(head, lowered, b"x-cache"))
        ok = accepted(status)
        return RequestSample(
            latency_ns=latency,
            status=status,
            nbytes=nbytes,
            cache=cache,
            server_ms=server_ms,
            error=None if ok else f"HTTP {status}",
            detail=None if ok else _detail(body),
        )

    async def worker(take: Callable[[], bool], keep: Callable[[RequestSample], None]) -> None:
        def record(started: int, raw: RawResponse | None, error: Exception | None) -> None:
            if raw is not None:
                keep(sample(started, raw))
            elif error is not None:
                keep(RequestSample(clock() - started, None, 0, None, None, _describe(error)))

        lane = transport.lane(prepared)
        try:
            await lane.repeat(take, record)
        finally:
            lane.release()

    return worker


async def _run(worker: _Worker, count: int, concurrency: int) -> list[RequestSample]:
    """Send ``count`` requests with ``concurrency`` workers pulling from one shared counter."""
    samples: list[RequestSample] = []
    remaining = count

    def take() -> bool:
        nonlocal remaining
        if remaining <= 0:
            return False
        remaining -= 1
        return True

    workers = [
        asyncio.ensure_future(worker(take, samples.append)) for _ in range(min(concurrency, count))
    ]
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
    values: RequestValues | None = None,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
) -> EndpointRun:
    """Send ``warmup`` untimed, then exactly ``requests`` timed requests, ``concurrency`` at a time.

    A status outside 2xx is an error unless it is in ``expect_status``; transport errors and
    timeouts are recorded as samples with ``status=None``, never raised, and so is a body over
    ``max_response_bytes`` (as received or once decoded). ``nbytes`` is the body size after
    content decoding. The request is built once and re-sent (httpx's URL parsing
    would otherwise dominate the client's cost), so cookies set during the run are not sent
    back; ``{seq}`` and ``{uuid}`` in it are filled anew for every request from ``values``
    (shared by a run, so ``{seq}`` never repeats), by substitution in the encoded bytes.
    With a ``make_client`` client (no auth, no event hooks) each worker sends through a
    ``Lane`` of the transport, a connection of its own, and sends its next request from the
    callback that parses the previous response, skipping httpx's response objects and the task
    switch (see probes/transport.py for the figures); there at most ``max_connections``
    requests are in flight even when ``concurrency`` is higher.
    """
    if requests < 1 or concurrency < 1 or warmup < 0:
        raise ValueError(
            f"need requests >= 1, concurrency >= 1, warmup >= 0; got {requests=}, "
            f"{concurrency=}, {warmup=}"
        )
    extra = expect_status or frozenset()

    def accepted(status: int) -> bool:
        return 200 <= status < 300 or status in extra

    limit = {MAX_RESPONSE_BYTES: max_response_bytes}

    def build(spec: RequestSpec) -> httpx.Request:
        return client.build_request(
            spec.method,
            spec.path,
            headers=list(spec.headers),
            json=spec.json,
            content=spec.body,
            extensions=limit,
        )

    varying = request.per_request
    if varying and values is None:
        values = RequestValues()
    seq_marker, uid_marker = (f"pgseq{secrets.token_hex(6)}", f"pguuid{secrets.token_hex(6)}")
    built = build(request.filled(seq_marker, uid_marker) if varying else request)

    def build_next() -> httpx.Request:
        if not varying or values is None:
            return built
        return build(request.filled(*values.next()))

    start = _via_client(client, build_next, accepted, max_response_bytes)
    workers = concurrency
    transport = _direct_transport(client)
    if transport is not None:
        # An unusable URL falls through to client.send, which records the error per request.
        with contextlib.suppress(httpx.HTTPError):
            prepared = transport.prepare(built, built.content)
            if varying and values is not None:
                render = renderer(
                    prepared.payload, seq_marker.encode(), uid_marker.encode(), values
                )
                prepared = prepared._replace(render=render)
            start = _via_lanes(transport, prepared, accepted)
            # A lane keeps its connection slot, so workers beyond the pool would only wait.
            workers = min(concurrency, transport.max_connections)
    if warmup:
        await _run(start, warmup, workers)
    started = time.perf_counter_ns()
    samples = await _run(start, requests, workers)
    wall_ns = time.perf_counter_ns() - started
    return EndpointRun(
        samples=tuple(samples), wall_ns=wall_ns, concurrency=concurrency, warmup=warmup
    )


def ready_verdict(status: int, method_path: str) -> bool:
    """True for 2xx; raise TargetError at once for a status that waiting cannot change."""
    if 200 <= status < 300:
        return True
    if status in _WRONG_READY:
        why = (
            "the ready path needs authentication"
            if status in (401, 403)
            else "the server is up, but nothing answers 2xx at that path"
        )
        raise TargetError(
            f"target.ready: {method_path} answered HTTP {status} ({why}); set target.ready to "
            "a path your app answers with 2xx without credentials"
        )
    return False


@dataclass(frozen=True, slots=True)
class HttpLoad:
    """What ``HttpProbe`` measures: one request, sent this many times, this many at once."""

    request: RequestSpec
    requests: int
    concurrency: int
    warmup: int
    timeout_s: float
    expect_status: frozenset[int] | None = None
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES


class HttpProbe:
    """The HTTP probe: ``await HttpProbe(client, values).measure(load)`` -> ``EndpointRun``.

    ``client(timeout_s, connections)`` makes the client for one measurement (see
    ``make_client``); ``values`` fill ``{seq}`` and ``{uuid}``.
    """

    def __init__(
        self, client: Callable[[float, int], httpx.AsyncClient], values: RequestValues
    ) -> None:
        self._client = client
        self._values = values

    @contextlib.asynccontextmanager
    async def one_at_a_time(
        self, load: HttpLoad, first: str | None = None
    ) -> AsyncIterator[Callable[[], Awaitable[RequestSample]]]:
        """A sender of single requests (each one's sample), on one connection; ``GET first``
        is sent before, its answer read and ignored (it opens what the app opens lazily)."""
        async with self._client(load.timeout_s, 1) as client:
            if first is not None:
                with contextlib.suppress(httpx.HTTPError, OSError, ResponseTooLarge):
                    response = await client.send(client.build_request("GET", first), stream=True)
                    await read_bounded(response, load.max_response_bytes, keep=0)

            single = dataclasses.replace(load, requests=1, concurrency=1, warmup=0)

            async def send() -> RequestSample:
                return (await self._drive(client, single)).samples[0]

            yield send

    async def measure(self, load: HttpLoad) -> EndpointRun:
        async with self._client(load.timeout_s, load.concurrency) as client:
            return await self._drive(client, load)

    async def _drive(self, client: httpx.AsyncClient, load: HttpLoad) -> EndpointRun:
        return await drive(
            client,
            load.request,
            requests=load.requests,
            concurrency=load.concurrency,
            warmup=load.warmup,
            expect_status=load.expect_status,
            values=self._values,
            max_response_bytes=load.max_response_bytes,
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
            # Streamed and closed unread: only the status matters, not what the body decodes to.
            request = client.build_request("GET", path, timeout=max(0.05, min(remaining, 2.0)))
            response = await client.send(request, stream=True)
            await response.aclose()
            status = response.status_code
        except (httpx.HTTPError, OSError) as exc:
            last = _describe(exc)
        else:
            if ready_verdict(status, f"GET {path}"):
                return
            last = f"HTTP {status}"
        await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
        delay = min(delay * 2, 0.5)
    raise TargetError(
        f"target not ready: GET {client.base_url.join(path)} gave no 2xx within {timeout_s:g}s "
        f"(last: {last})"
    )
