"""The httpx client the driver sends through: over perfgate's transport, or to an ASGI app."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, MutableMapping
from typing import Any

import httpx

from perfgate.probes.limits import Slices, limit_of, too_large
from perfgate.probes.transport import ASGIApp, KeepAliveTransport

__all__ = ["AppTransport", "DriverClient", "make_client"]

_DEFAULT_TIMEOUT = httpx.Timeout(5.0)  # httpx's own default
_CANCEL_GRACE_S = 1.0  # how long a timed-out app gets to end once cancelled


def make_client(
    base_url: str,
    *,
    headers: Mapping[str, str],
    timeout_s: float,
    max_connections: int,
    app: ASGIApp | None = None,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` for the driver: in-process when ``app`` is given, else over TCP.

    Either way a request ends within ``timeout_s`` and a response body is bounded (by the
    request's ``limits.MAX_RESPONSE_BYTES``). App exceptions become 500 responses (as a real
    server would answer), not raised errors.
    """
    timeout = httpx.Timeout(timeout_s)
    if app is not None:
        return httpx.AsyncClient(
            transport=AppTransport(app),
            base_url=base_url,
            headers=dict(headers),
            timeout=timeout,
        )
    keepalive = KeepAliveTransport(max_connections=max_connections)
    return DriverClient(keepalive, base_url=base_url, headers=dict(headers), timeout=timeout)


class DriverClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` over a ``KeepAliveTransport`` the driver may call directly."""

    def __init__(
        self,
        keepalive: KeepAliveTransport,
        *,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        timeout: httpx.Timeout = _DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(
            transport=keepalive, base_url=base_url, headers=dict(headers or {}), timeout=timeout
        )
        self.keepalive = keepalive


class AppTransport(httpx.AsyncBaseTransport):
    """Sends each request to an ASGI app in-process, as a server on loopback would serve it.

    Unlike ``httpx.ASGITransport`` it holds a request to its timeout (httpx's read timeout):
    the app is cancelled and the request is a ``ReadTimeout``. A body over the request's
    limit ends it with ``ResponseTooLarge``; an app that raises before it starts a response
    gives a 500, one that raises or returns mid-response an error, as uvicorn's client sees.
    An app that blocks the event loop (``time.sleep`` in ``async def``) cannot be interrupted
    in-process.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._lingering: set[asyncio.Task[None]] = set()  # cancelled, not yet ended

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {}).get("read")
        exchange = _Exchange(request, await request.aread(), limit_of(request))
        url = request.url
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "scheme": url.scheme,
            "path": url.path,
            "raw_path": url.raw_path.split(b"?")[0],
            "query_string": url.query,
            "server": (url.host, url.port),
            "client": ("127.0.0.1", 123),
            "root_path": "",
        }
        task = asyncio.ensure_future(self._app(scope, exchange.receive, exchange.send))
        try:
            done, _ = await asyncio.wait({task}, timeout=timeout)
        except BaseException:
            await self._stop(task)
            raise
        if not done:
            await self._stop(task)
            raise httpx.ReadTimeout(f"no complete response within {timeout:g}s", request=request)
        return exchange.response(task)

    async def _stop(self, task: asyncio.Task[None]) -> None:
        """Cancel the app's handling of a request; one that will not end is left to itself."""
        task.cancel()
        await asyncio.wait({task}, timeout=_CANCEL_GRACE_S)
        if not task.done():
            self._lingering.add(task)
            task.add_done_callback(self._lingering.discard)

    async def aclose(self) -> None:
        for task in self._lingering:
            task.cancel()


class _Exchange:
    """One request's ASGI ``receive`` and ``send``, and the response they make."""

    def __init__(self, request: httpx.Request, body: bytes, limit: int) -> None:
        self.request = request
        self.body: bytes | None = body  # None once the app has received it
        self.limit = limit
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.parts: list[bytes] = []
        self.size = 0
        self.complete = asyncio.Event()
        self.over = False

    async def receive(self) -> MutableMapping[str, Any]:
        if self.body is not None:
            body, self.body = self.body, None
            return {"type": "http.request", "body": body, "more_body": False}
        await self.complete.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: MutableMapping[str, Any]) -> None:
        if self.over:  # as a server's send fails once its client has gone
            raise OSError("perfgate: response body over max_response_bytes")
        if message["type"] == "http.response.start" and self.status is None:
            self.status = int(message["status"])
            self.headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
        elif message["type"] == "http.response.body" and not self.complete.is_set():
            body = message.get("body", b"")
            self.size += len(body)
            if self.size > self.limit:
                self.over = True
                self.complete.set()
                raise OSError("perfgate: response body over max_response_bytes")
            if body and self.request.method != "HEAD":
                self.parts.append(body)
            if not message.get("more_body", False):
                self.complete.set()

    def response(self, task: asyncio.Task[None]) -> httpx.Response:
        """The response the app gave, now that it has returned (or raised)."""
        request = self.request
        if self.over:
            raise too_large(self.limit, request)
        error = None if task.cancelled() else task.exception()
        if self.status is None:
            if error is None:
                return httpx.Response(500, text="the app returned without a response")
            return httpx.Response(500, text="Internal Server Error")
        if not self.complete.is_set():
            why = f"raised {type(error).__name__}" if error is not None else "returned"
            raise httpx.RemoteProtocolError(
                f"the app {why} before it completed the response", request=request
            )
        body = b"".join(self.parts)
        encoded = any(k.lower() == b"content-encoding" for k, _ in self.headers)
        # Slices: httpx decodes a slice at a time, which bounds a gzip bomb too.
        stream = Slices(body) if encoded else httpx.ByteStream(body)
        return httpx.Response(self.status, headers=self.headers, stream=stream)
