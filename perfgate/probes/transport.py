"""The transport the load driver sends through, and ``make_client`` to build its client.

The driver must not be the bottleneck. CPU per request of each client at concurrency 10 against
uvicorn / against a raw asyncio constant-response server, server and client on different vCPUs
of the 2-vCPU CI box (``python benchmarks/load_driver.py``; table and caveats in
benchmarks/README.md):

    wrk                                         52 /   18 µs    1.00 / 1.00 of wrk's req/s
    drive -> KeepAliveTransport.fetch          196 /  108 µs    0.72 / 0.27   <- make_client
    drive -> httpx.AsyncClient.send -> this    444 /  360 µs    0.46 / 0.10
    drive -> httpx-aiohttp                     778 /  672 µs    0.32 / 0.05
    drive -> httpx default (httpcore)         1883 / 1987 µs    0.16 / 0.02
    bare asyncio Protocol client (floor)       100 /   23 µs    0.85 / 0.91

httpx's own per-request work (URL parsing when building, cookie extraction, the response model
and decoding) costs more than any transport underneath it, so swapping transports alone cannot
get near wrk. Hence this module: a minimal HTTP/1.1 keep-alive transport (asyncio streams, one
write per request, a LIFO pool, bodies read whole, one timer handle per request instead of
``wait_for``) that works as an ordinary httpx transport, plus ``prepare``/``fetch``, so that
``drive`` encodes its request once and skips httpx's per-request objects when the client is a
``DriverClient`` from ``make_client``. Callers still hold an ``httpx.AsyncClient`` and see
httpx exceptions.

Scope: HTTP/1.1 over TCP or TLS; no proxies, no HTTP/2, no streamed response bodies.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, NamedTuple

import httpx

__all__ = [
    "ASGIApp",
    "DriverClient",
    "KeepAliveTransport",
    "Prepared",
    "RawResponse",
    "make_client",
]

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
_STREAM_LIMIT = 1 << 20  # longest response head (or chunk-size line) we accept
_Key = tuple[bytes, bytes, int]


class _Connection:
    """One keep-alive connection; ``expired`` is set by the request timer before it aborts."""

    __slots__ = ("expired", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.expired = False

    def expire(self) -> None:
        self.expired = True
        self.writer.transport.abort()

    def usable(self) -> bool:
        return not (self.reader.at_eof() or self.writer.is_closing())

    def close(self) -> None:
        self.writer.close()


# Prepared and RawResponse are NamedTuples rather than frozen dataclasses because RawResponse
# is built and unpacked once per request on the driver's hot path, where that is measurably cheaper.
class Prepared(NamedTuple):
    """A request encoded once for ``KeepAliveTransport.fetch``, which may send it many times."""

    request: httpx.Request  # kept for the exceptions, which name it
    key: _Key
    payload: bytes
    idempotent: bool
    head_only: bool
    close: bool  # the request itself asked for Connection: close
    pool_timeout: float | None
    connect_timeout: float | None
    read_timeout: float | None


class RawResponse(NamedTuple):
    """A whole response as received: body de-chunked but not content-decoded."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    chunked: bool


class KeepAliveTransport(httpx.AsyncBaseTransport):
    """A minimal HTTP/1.1 keep-alive transport with at most ``max_connections`` open sockets.

    Besides the httpx interface it offers ``prepare`` + ``fetch``: the load driver encodes its
    request once and gets raw responses, skipping httpx's per-request model objects.
    """

    def __init__(self, *, max_connections: int, verify: bool | ssl.SSLContext = True) -> None:
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: dict[_Key, list[_Connection]] = {}
        self._verify = verify
        self._ssl_context: ssl.SSLContext | None = None
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raw = await self.fetch(self.prepare(request, await _request_body(request)))
        if raw.chunked:
            # content= would add a Content-Length next to Transfer-Encoding; a stream does not.
            stream = httpx.ByteStream(raw.body)
            return httpx.Response(raw.status, headers=raw.headers, stream=stream, request=request)
        return httpx.Response(raw.status, headers=raw.headers, content=raw.body, request=request)

    def prepare(self, request: httpx.Request, body: bytes) -> Prepared:
        """Encode ``request`` (whose body is ``body``) for ``fetch``."""
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
        )

    async def fetch(self, prepared: Prepared) -> RawResponse:
        """Send a prepared request and read its whole response; errors are httpx exceptions."""
        await self._acquire(prepared)
        try:
            for attempt in (1, 2):
                conn, reused = await self._connection(prepared)
                try:
                    raw, keep_alive = await _exchange(conn, prepared)
                except _StaleConnection as stale:
                    conn.close()
                    if reused and attempt == 1 and prepared.idempotent:
                        continue  # the server closed an idle connection just as we reused it
                    raise stale.error from None
                except BaseException:
                    conn.close()
                    raise
                if keep_alive and not prepared.close and not self._closed:
                    self._idle.setdefault(prepared.key, []).append(conn)
                else:
                    conn.close()
                return raw
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            self._slots.release()

    async def aclose(self) -> None:
        self._closed = True
        for connections in self._idle.values():
            for conn in connections:
                conn.close()
        self._idle.clear()

    async def _acquire(self, prepared: Prepared) -> None:
        if not self._slots.locked():
            await self._slots.acquire()  # returns at once; the common case stays cheap
            return
        try:
            await asyncio.wait_for(self._slots.acquire(), prepared.pool_timeout)
        except asyncio.TimeoutError:
            raise httpx.PoolTimeout(
                f"no free connection within {prepared.pool_timeout:g}s", request=prepared.request
            ) from None

    async def _connection(self, prepared: Prepared) -> tuple[_Connection, bool]:
        idle = self._idle.get(prepared.key)
        while idle:
            conn = idle.pop()
            if conn.usable():
                return conn, True
            conn.close()
        scheme, host, port = prepared.key
        context = self._context() if scheme == b"https" else None
        timeout = prepared.connect_timeout
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    host.decode("ascii"), port, ssl=context, limit=_STREAM_LIMIT
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
        return _Connection(reader, writer), False

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


async def _exchange(conn: _Connection, prepared: Prepared) -> tuple[RawResponse, bool]:
    """Send one request and read its whole response; return it and whether to keep-alive."""
    request = prepared.request
    timer = None
    if prepared.read_timeout is not None:
        timer = asyncio.get_running_loop().call_later(prepared.read_timeout, conn.expire)
    reader = conn.reader
    received_any = False
    try:
        conn.writer.write(prepared.payload)
        if len(prepared.payload) > 65536:
            await conn.writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        received_any = True
        status, headers, framing, length, keep_alive = _parse_head(head)
        while 100 <= status < 200 and status != 101:  # skip interim responses
            head = await reader.readuntil(b"\r\n\r\n")
            status, headers, framing, length, keep_alive = _parse_head(head)
        if prepared.head_only or status in (204, 304) or status < 200:
            body = b""
            keep_alive = keep_alive and status >= 200  # after a 101 it is not HTTP any more
        elif framing == "chunked":
            body = await _read_chunked(reader)
        elif framing == "length":
            body = await reader.readexactly(length)
        else:
            body = await reader.read()
            keep_alive = False
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        if conn.expired:
            raise httpx.ReadTimeout(
                f"no complete response within {prepared.read_timeout:g}s", request=request
            ) from None
        if not received_any and not (isinstance(exc, asyncio.IncompleteReadError) and exc.partial):
            raise _StaleConnection(
                httpx.RemoteProtocolError(
                    "server disconnected without sending a response", request=request
                )
            ) from exc
        if isinstance(exc, asyncio.IncompleteReadError):
            raise httpx.RemoteProtocolError(
                "server closed the connection before the response was complete", request=request
            ) from exc
        raise httpx.ReadError(f"{type(exc).__name__}: {exc}", request=request) from exc
    except (asyncio.LimitOverrunError, ValueError) as exc:
        raise httpx.RemoteProtocolError(f"malformed response: {exc}", request=request) from exc
    except OSError as exc:
        raise httpx.ReadError(f"{type(exc).__name__}: {exc}", request=request) from exc
    finally:
        if timer is not None:
            timer.cancel()
    return RawResponse(status, headers, body, framing == "chunked"), keep_alive


class _StaleConnection(Exception):
    """The connection failed before any response byte: safe to retry an idempotent request."""

    def __init__(self, error: httpx.TransportError) -> None:
        super().__init__(str(error))
        self.error = error


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


def _parse_head(head: bytes) -> tuple[int, list[tuple[bytes, bytes]], str, int, bool]:
    """Status, headers, body framing ("chunked", "length" or "eof"), length and keep-alive."""
    lines = head[:-4].split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    if not version.startswith(b"HTTP/1."):
        raise ValueError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    status = int(rest[:3])
    keep_alive = version != b"HTTP/1.0"
    body_kind, length = "eof", 0
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t") and headers:  # obsolete line folding
            name, value = headers.pop()
            headers.append((name, value + b" " + line.strip()))
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            raise ValueError(f"header line without a colon: {line[:80]!r}")
        value = value.strip()
        headers.append((name, value))
        lowered = name.lower()
        if lowered == b"content-length" and body_kind != "chunked":
            body_kind, length = "length", int(value)
        elif lowered == b"transfer-encoding" and value.lower().endswith(b"chunked"):
            body_kind = "chunked"
        elif lowered == b"connection":
            tokens = {token.strip() for token in value.lower().split(b",")}
            if b"close" in tokens:
                keep_alive = False
            elif b"keep-alive" in tokens:
                keep_alive = True
    return status, headers, body_kind, length, keep_alive


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                pass
            return b"".join(chunks)
        chunk = await reader.readexactly(size + 2)
        chunks.append(chunk[:-2])


def make_client(
    base_url: str,
    *,
    headers: Mapping[str, str],
    timeout_s: float,
    max_connections: int,
    app: ASGIApp | None = None,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` for the driver: in-process when ``app`` is given, else over TCP.

    App exceptions become 500 responses (as a real server would answer), not raised errors.
    """
    options: dict[str, Any] = {
        "base_url": base_url,
        "headers": dict(headers),
        "timeout": httpx.Timeout(timeout_s),
    }
    if app is not None:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), **options
        )
    return DriverClient(KeepAliveTransport(max_connections=max_connections), **options)


class DriverClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` over a ``KeepAliveTransport`` the driver may call directly."""

    def __init__(self, keepalive: KeepAliveTransport, **options: Any) -> None:
        super().__init__(transport=keepalive, **options)
        self.keepalive = keepalive
