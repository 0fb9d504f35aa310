"""Hostile HTTP servers on loopback, for the tests that perfgate's HTTP side stays bounded.

A ``HostileServer`` runs its own event loop in a thread, so a client that spins its loop (the
bug these tests guard against) cannot starve the server, and a server that never answers
cannot block the client. Each connection is handed to one ``Behaviour``; by default one that picks a
``Route`` by request path after reading the request head (``on_accept`` ones act before that).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType

__all__ = [
    "OK",
    "Behaviour",
    "HostileServer",
    "close_on_accept",
    "endless",
    "reply",
    "reset_on_accept",
    "silent",
    "speak_first",
    "trickle",
]

Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
# A route gets the connection after its request head was read; True keeps the connection.
Route = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
_HEAD_LIMIT = 1 << 16
_FOREVER_S = 3600.0  # "forever": the server is stopped (and its tasks cancelled) long before


class HostileServer:
    """``with HostileServer(routes) as server:`` serves on ``server.base_url``.

    ``routes`` map request paths to how they are answered (``/healthz`` answers 200 unless
    given); ``on_accept`` instead acts on every connection before reading a request.
    """

    def __init__(
        self, routes: Mapping[str, Route] | None = None, *, on_accept: Behaviour | None = None
    ) -> None:
        self._routes = {"/healthz": reply(OK), **(routes or {})}
        self._behaviour = on_accept or self._routed
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="hostile-server", daemon=True)
        self.port = 0
        self.accepted = 0  # connections accepted so far
        self.requests = 0  # request heads read by routed() so far

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> HostileServer:
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("the hostile server did not start within 5s")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        if self._thread.is_alive():
            raise RuntimeError("the hostile server did not stop within 10s")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        tasks: set[asyncio.Task[None]] = set()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted += 1
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            try:
                await self._behaviour(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                pass
            except asyncio.CancelledError:
                pass  # stopping; Python 3.11's start_server logs a handler that ends cancelled
            finally:
                tasks.discard(task)
                writer.transport.abort()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, limit=_HEAD_LIMIT)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        server.close()
        for task in list(tasks):
            task.cancel()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)
        await server.wait_closed()

    async def _routed(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read request heads; answer each with the route of its path (404 if none)."""
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests += 1
            path = head.split(b" ", 2)[1].decode().split("?")[0]
            if not await self._routes.get(path, _not_found)(reader, writer):
                return


async def _not_found(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    return True


def reply(raw: bytes, *, keep: bool = True) -> Route:
    """Answer with these bytes; keep the connection open afterwards or close it."""

    async def route(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(raw)
        await writer.drain()
        if not keep:
            writer.close()
        return keep

    return route


def trickle(raw: bytes, *, every_s: float = 0.005) -> Route:
    """Answer with these bytes one at a time, then close."""

    async def route(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        for i in range(len(raw)):
            writer.write(raw[i : i + 1])
            await writer.drain()
            await asyncio.sleep(every_s)
        return False

    return route


def endless(first: bytes, piece: bytes, *, every_s: float = 0.01) -> Route:
    """Send ``first``, then ``piece`` every ``every_s`` until the client goes away."""

    async def route(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(first)
        await writer.drain()
        for _ in range(int(_FOREVER_S / max(every_s, 1e-4))):
            writer.write(piece)
            await writer.drain()
            if every_s:
                await asyncio.sleep(every_s)
        return False

    return route


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """Read the request, never answer."""
    await asyncio.sleep(_FOREVER_S)
    return False


async def close_on_accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def reset_on_accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()  # with SO_LINGER 0: an RST, not a FIN


def speak_first(raw: bytes) -> Behaviour:
    """Send a response as soon as the connection is accepted, before any request; then idle."""

    async def behaviour(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(raw)
        await writer.drain()
        await asyncio.sleep(_FOREVER_S)

    return behaviour
