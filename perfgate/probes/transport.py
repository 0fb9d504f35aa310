"""The transport the load driver sends through, and ``make_client`` to build its client.

The driver must not be the bottleneck. Client CPU per request and req/s as a fraction of wrk's at
concurrency 10, against uvicorn / against a raw asyncio constant-response server, server and
client on different vCPUs of the 2-vCPU CI box (``python benchmarks/load_driver.py``, median of
3 x 3 s, load average 1.8; table, other runs and caveats in benchmarks/README.md):

    wrk                                           46 /   14 µs    1.00 / 1.00 of wrk's req/s
    drive -> Lane (make_client)                  112 /   44 µs    0.83 / 0.40   <- make_client
    the same on uvloop (optional)                100 /   46 µs    0.79 / 0.36
    drive -> httpx.AsyncClient.send -> this      379 /  298 µs    0.45 / 0.09
    drive -> httpx-aiohttp                       445 /  429 µs    0.45 / 0.06
    drive -> httpx default (httpcore)           1510 / 1925 µs    0.17 / 0.02
    bare asyncio Protocol client (floor)          70 /   22 µs    1.04 / 0.72

httpx's own per-request work (URL parsing when building, cookie extraction, the response model
and decoding) costs more than any transport underneath it, so swapping transports alone cannot
get near wrk. Hence this module: a minimal HTTP/1.1 keep-alive transport over ``wire.Wire``
(an asyncio Protocol per connection that parses responses in ``data_received``), a LIFO pool,
one write per request, bodies read whole, one deadline sweep per transport instead of a timer
per request. It works as an ordinary httpx transport, and offers ``prepare`` and ``lane``:
``drive`` encodes its request once and gives each worker a ``Lane``, a connection of its own
(no pool or semaphore per request) on which the next request is sent from the callback that
completes the previous response, with no task switch in between. Callers still hold an
``httpx.AsyncClient`` and see httpx exceptions.

Scope: HTTP/1.1 over TCP or TLS; no proxies, no HTTP/2, no streamed response bodies, no
pipelining.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, NamedTuple

import httpx

from perfgate.probes.framing import parse_headers
from perfgate.probes.limits import Slices, limit_of, too_large
from perfgate.probes.wire import Deadlines, Failure, RawResponse, Wire

__all__ = [
    "ASGIApp",
    "KeepAliveTransport",
    "Lane",
    "Prepared",
    "RawResponse",
    "Record",
]

# ASGI's scopes and messages are dicts of any JSON-like values, by the ASGI specification.
ASGIApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[MutableMapping[str, Any]]],
        Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]

_IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})
_DEFAULT_PORTS = {b"http": 80, b"https": 443}
_Key = tuple[bytes, bytes, int]


# A NamedTuple like RawResponse, which it is unpacked next to on the driver's hot path.
class Prepared(NamedTuple):
    """A request encoded once for ``KeepAliveTransport.fetch`` or a ``Lane``, sent many times."""

    request: httpx.Request  # kept for the exceptions, which name it
    key: _Key
    payload: bytes
    idempotent: bool
    head_only: bool
    close: bool  # the request itself asked for Connection: close
    pool_timeout: float | None
    connect_timeout: float | None
    read_timeout: float | None
    max_body: int  # the largest response body accepted (max_response_bytes)
    # Requests that differ each time ({seq}, {uuid}): makes the bytes of the next one.
    render: Callable[[], bytes] | None = None

    def next_payload(self) -> bytes:
        """The bytes to send for the next request."""
        return self.payload if self.render is None else self.render()


Record = Callable[[int, "RawResponse | None", "httpx.HTTPError | OSError | None"], None]


class Lane:
    """One worker's connection for sending one prepared request over and over.

    The lane holds one of the transport's connection slots from its first ``fetch`` until
    ``release``, so a worker pays no pool or semaphore cost per request; ``release`` returns
    its connection to the transport's pool for the next lane.
    """

    __slots__ = ("_holds_slot", "_pool", "_prepared", "_wire")

    def __init__(self, pool: KeepAliveTransport, prepared: Prepared, *, holds_slot: bool) -> None:
        self._pool = pool
        self._prepared = prepared
        self._wire: Wire | None = None
        self._holds_slot = holds_slot

    async def fetch(self) -> RawResponse:
        """Send the request and read its whole response; errors are httpx exceptions."""
        prepared = self._prepared
        retried = False
        while True:
            wire = self._wire
            if wire is None or not wire.reusable:
                if wire is not None:
                    wire.close()
                if not self._holds_slot:
                    await self._pool.acquire(prepared)
                    self._holds_slot = True
                wire, reused = await self._pool.checkout(prepared)
                wire.limit = prepared.max_body
                self._wire = wire
            else:
                reused = True
            try:
                raw = await wire.send(
                    prepared.next_payload(), prepared.head_only, prepared.read_timeout
                )
            except Failure as failure:
                self._wire = None
                wire.close()
                stale = failure.kind == "lost" and not failure.received
                if stale and reused and not retried and prepared.idempotent:
                    retried = True  # the server closed an idle connection just as we reused it
                    continue
                raise _error(failure, prepared) from None
            except BaseException:  # cancelled mid-response: the connection's state is unknown
                self._wire = None
                wire.close()
                raise
            if prepared.close or not wire.reusable:
                self._wire = None
                wire.close()
            return raw

    async def repeat(self, take: Callable[[], bool], record: Record) -> None:
        """Send the request while ``take()`` allows; pass each outcome to ``record``.

        ``record(started_ns, response, error)`` gets exactly one of ``response`` and ``error``
        (an httpx exception) per request taken. While the connection stays healthy the next
        request is sent from the callback that completes the previous response, with no task
        switch in between, which is what keeps a Python client close to wrk.
        """
        clock = time.perf_counter_ns
        owed = None  # a request taken whose connection failed under it, with its start time
        while owed is not None or take():
            started = clock() if owed is None else owed
            owed = None
            try:
                raw = await self.fetch()
            except (httpx.HTTPError, OSError) as exc:
                record(started, None, exc)
                continue
            record(started, raw, None)
            wire = self._wire
            if wire is None:
                continue
            try:
                outcome = await self._chain(wire, take, record)
            except BaseException:  # cancelled: a request may be in flight on the connection
                self._wire = None
                wire.close()
                raise
            if outcome is not None or not wire.reusable:
                self._wire = None
                wire.close()
            if outcome is not None:
                started, failure = outcome
                stale = failure.kind == "lost" and not failure.received
                if stale and self._prepared.idempotent:
                    owed = started  # retried on a fresh connection by fetch
                else:
                    record(started, None, _error(failure, self._prepared))

    def _chain(
        self, wire: Wire, take: Callable[[], bool], record: Record
    ) -> asyncio.Future[tuple[int, Failure] | None]:
        """Send requests back to back from the response callback until done or failed."""
        prepared = self._prepared
        head_only, timeout = prepared.head_only, prepared.read_timeout
        payload = prepared.payload if prepared.render is None else None
        clock = time.perf_counter_ns
        done: asyncio.Future[tuple[int, Failure] | None]
        done = asyncio.get_running_loop().create_future()
        started = 0

        def on_response(outcome: RawResponse | Failure) -> None:
            nonlocal started
            if done.done():  # the task was cancelled
                return
            try:
                if isinstance(outcome, Failure):
                    done.set_result((started, outcome))
                    return
                record(started, outcome, None)
                if prepared.close or not wire.reusable or not take():
                    done.set_result(None)
                    return
                data = payload or prepared.next_payload()
                started = clock()
                wire.start(data, head_only, timeout, on_response)
            except BaseException as exc:  # a bug in record must reach the task, not the loop
                done.set_exception(exc)

        if prepared.close or not wire.reusable or not take():
            done.set_result(None)
        else:
            data = payload or prepared.next_payload()
            started = clock()
            wire.start(data, head_only, timeout, on_response)
        return done

    def release(self) -> None:
        """Give the connection back to the transport's pool and free the slot."""
        wire, self._wire = self._wire, None
        if wire is not None:
            self._pool.checkin(self._prepared.key, wire)
        if self._holds_slot:
            self._holds_slot = False
            self._pool.release_slot()


class KeepAliveTransport(httpx.AsyncBaseTransport):
    """A minimal HTTP/1.1 keep-alive transport with at most ``max_connections`` open sockets.

    Besides the httpx interface it offers ``prepare`` + ``fetch`` or ``lane``: the load driver
    encodes its request once and gets raw responses, skipping httpx's per-request objects.
    """

    def __init__(self, *, max_connections: int, verify: bool | ssl.SSLContext = True) -> None:
        self.max_connections = max_connections
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: dict[_Key, list[Wire]] = {}
        self._verify = verify
        self._ssl_context: ssl.SSLContext | None = None
        self._closed = False
        self._deadlines = Deadlines()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raw = await self.fetch(self.prepare(request, await _request_body(request)))
        try:
            headers = parse_headers(raw.head)
        except ValueError as exc:
            raise httpx.RemoteProtocolError(f"malformed response: {exc}", request=request) from exc
        if raw.chunked or b"\ncontent-encoding:" in raw.head.lower():
            # content= would add a Content-Length next to Transfer-Encoding; a stream does not.
            # Slices: httpx decodes a chunk at a time, so small chunks bound a gzip bomb.
            stream = Slices(raw.body)
            return httpx.Response(raw.status, headers=headers, stream=stream, request=request)
        return httpx.Response(raw.status, headers=headers, content=raw.body, request=request)

    def prepare(self, request: httpx.Request, body: bytes) -> Prepared:
        """Encode ``request`` (whose body is ``body``) for ``fetch`` or ``lane``."""
        url = request.url
        scheme = url.raw_scheme
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(
                f"unsupported URL scheme {url.scheme!r}", request=request
            )
        timeouts: Mapping[str, float | None] = request.extensions.get("timeout", {})
        method = request.method.encode("ascii")
        return Prepared(
            request=request,
            key=(scheme, url.raw_host, url.port or _DEFAULT_PORTS[scheme]),
            payload=_encode_request(request, body),
            idempotent=method in _IDEMPOTENT,
            head_only=method == b"HEAD",
            close=request.headers.get("connection", "").lower() == "close",
            pool_timeout=timeouts.get("pool"),
            connect_timeout=timeouts.get("connect"),
            read_timeout=timeouts.get("read"),
            max_body=limit_of(request),
        )

    def lane(self, prepared: Prepared) -> Lane:
        """A connection of one's own for repeated ``fetch``es; ``release`` it when done."""
        return Lane(self, prepared, holds_slot=False)

    async def fetch(self, prepared: Prepared) -> RawResponse:
        """Send a prepared request and read its whole response; errors are httpx exceptions."""
        await self.acquire(prepared)
        lane = Lane(self, prepared, holds_slot=True)
        try:
            return await lane.fetch()
        finally:
            lane.release()

    async def aclose(self) -> None:
        self._closed = True
        self._deadlines.stop()
        for connections in self._idle.values():
            for wire in connections:
                wire.close()
        self._idle.clear()

    async def acquire(self, prepared: Prepared) -> None:
        """Take a connection slot, waiting at most the request's pool timeout."""
        if not self._slots.locked():
            await self._slots.acquire()  # returns at once; the common case stays cheap
            return
        try:
            await asyncio.wait_for(self._slots.acquire(), prepared.pool_timeout)
        except asyncio.TimeoutError:
            raise httpx.PoolTimeout(
                f"no free connection within {prepared.pool_timeout:g}s", request=prepared.request
            ) from None

    def release_slot(self) -> None:
        self._slots.release()

    def checkin(self, key: _Key, wire: Wire) -> None:
        if wire.reusable and not self._closed:
            self._idle.setdefault(key, []).append(wire)
        else:
            wire.close()

    async def checkout(self, prepared: Prepared) -> tuple[Wire, bool]:
        """An idle connection to the request's origin, else a new one; and whether it was idle."""
        idle = self._idle.get(prepared.key)
        while idle:
            wire = idle.pop()
            if wire.reusable:
                return wire, True
            wire.close()
        scheme, host, port = prepared.key
        context = self._context() if scheme == b"https" else None
        timeout = prepared.connect_timeout
        loop = asyncio.get_running_loop()
        try:
            _, wire = await asyncio.wait_for(
                loop.create_connection(
                    functools.partial(Wire, self._deadlines),
                    host.decode("ascii"),
                    port,
                    ssl=context,
                ),
                timeout,
            )
        except asyncio.TimeoutError:
            raise httpx.ConnectTimeout(
                f"no connection to {_where(prepared.key)} within {timeout:g}s",
                request=prepared.request,
            ) from None
        except OSError as exc:
            raise httpx.ConnectError(
                f"{_where(prepared.key)}: {exc}", request=prepared.request
            ) from exc
        return wire, False

    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            if isinstance(self._verify, ssl.SSLContext):
                self._ssl_context = self._verify
            else:
                self._ssl_context = ssl.create_default_context()
                if not self._verify:
                    self._ssl_context.check_hostname = False
                    self._ssl_context.verify_mode = ssl.CERT_NONE
        return self._ssl_context


def _error(failure: Failure, prepared: Prepared) -> httpx.TransportError:
    """The httpx exception for a ``Failure``, naming the request."""
    request = prepared.request
    if failure.kind == "timeout":
        message = f"no complete response within {prepared.read_timeout:g}s"
        return httpx.ReadTimeout(message, request=request)
    if failure.kind == "malformed":
        return httpx.RemoteProtocolError(f"malformed response: {failure.detail}", request=request)
    if failure.kind == "too_large":
        return too_large(prepared.max_body, request, failure.detail)
    if failure.detail:
        return httpx.ReadError(failure.detail, request=request)
    if failure.received:
        message = "server closed the connection before the response was complete"
    else:
        message = "server disconnected without sending a response"
    return httpx.RemoteProtocolError(message, request=request)


def _where(key: _Key) -> str:
    return f"{key[1].decode('ascii')}:{key[2]}"


async def _request_body(request: httpx.Request) -> bytes:
    try:
        return request.content
    except httpx.RequestNotRead:
        return b"".join([chunk async for chunk in request.stream])  # type: ignore[union-attr]


def _encode_request(request: httpx.Request, body: bytes) -> bytes:
    parts = [request.method.encode("ascii"), b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
    chunked = False
    for name, value in request.headers.raw:
        if name.lower() == b"transfer-encoding":
            chunked = True  # a streamed upload: we send what we read as one chunk
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    if chunked:
        parts += (b"%x\r\n" % len(body), body, b"\r\n0\r\n\r\n") if body else (b"0\r\n\r\n",)
    else:
        parts.append(body)
    return b"".join(parts)
