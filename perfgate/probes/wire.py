"""One HTTP/1.1 connection as an asyncio Protocol: responses parsed as their bytes arrive.

``Wire`` is what ``KeepAliveTransport`` and its lanes send through: ``data_received`` finds the
head with ``bytes.find``, reads only the headers that frame the body (Content-Length, chunked,
Connection) and hands the whole response to a listener, which may send the next request from
inside that callback. No StreamReader awaits, no task switch per response.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import NamedTuple

__all__ = [
    "Deadlines",
    "Failure",
    "Listener",
    "RawResponse",
    "Wire",
    "header_value",
    "parse_headers",
]

_HEAD_LIMIT = 1 << 20  # longest response head (or chunk-size line) we accept
_HEAD, _LENGTH, _CHUNKED, _EOF = range(4)  # what a Wire is reading


# A NamedTuple rather than a frozen dataclass: it is built and unpacked once per request on the
# driver's hot path, where that is measurably cheaper.
class RawResponse(NamedTuple):
    """A whole response as received: ``head`` is the status line and header lines, each ending
    in CRLF; the body is de-chunked but not content-decoded."""

    status: int
    head: bytes
    body: bytes
    chunked: bool


class Failure(Exception):
    """Why a ``Wire`` could not deliver a response; the transport turns it into an httpx error."""

    def __init__(self, kind: str, detail: str = "", *, received: bool = False) -> None:
        super().__init__(detail)
        self.kind = kind  # "timeout", "lost" or "malformed"
        self.detail = detail
        self.received = received  # any byte of the response had arrived


class Deadlines:
    """Times out in-flight requests with one periodic sweep instead of a timer per request.

    ``call_later`` + ``cancel`` per request cost ~2.7 µs of the ~20 µs the driver spends per
    request; a sweep every eighth of the timeout fires at most 12.5% late, which is fine for
    a timeout that only guards against a hung server.
    """

    __slots__ = ("handle", "loop", "timeout", "wires")

    def __init__(self) -> None:
        self.wires: set[Wire] = set()
        self.handle: asyncio.TimerHandle | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.timeout = 0.0  # the shortest timeout being watched

    def watch(self, timeout: float) -> float:
        """The deadline for a request sent now with ``timeout``; makes sure a sweep will come."""
        loop = asyncio.get_running_loop()
        if self.handle is None or loop is not self.loop or timeout < self.timeout:
            self.stop()
            self.loop, self.timeout = loop, timeout
            self.handle = loop.call_later(max(timeout / 8, 0.001), self.sweep)
        return loop.time() + timeout

    def sweep(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        busy = False
        for wire in list(self.wires):
            if wire.listener is not None:
                if wire.deadline <= now:
                    wire.expire()
                else:
                    busy = True
        self.handle = loop.call_later(max(self.timeout / 8, 0.001), self.sweep) if busy else None

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


Listener = Callable[["RawResponse | Failure"], None]


class Wire(asyncio.Protocol):
    """One keep-alive connection that parses responses as bytes arrive, one request at a time.

    ``send`` returns a future for the whole response, ``start`` calls a listener with it
    instead; ``reusable`` says afterwards whether the connection may carry another request.
    """

    __slots__ = (
        "chunks",
        "deadline",
        "deadlines",
        "head",
        "head_only",
        "length",
        "listener",
        "pending",
        "received",
        "reusable",
        "state",
        "status",
        "transport",
        "want",
    )

    def __init__(self, deadlines: Deadlines) -> None:
        self.deadlines = deadlines
        self.deadline = 0.0
        self.listener: Listener | None = None
        self.reusable = False
        self.head_only = False
        self.pending = bytearray()  # bytes received but not yet enough to make progress on
        self.want = 0  # how many pending bytes the next step needs
        self.state = _HEAD
        self.received = False
        self.status = 0
        self.head = b""
        self.length = 0
        self.chunks: list[bytes] = []

    transport: asyncio.Transport  # set before create_connection hands the Wire out

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.reusable = True
        self.deadlines.wires.add(self)

    def expire(self) -> None:
        self._fail(Failure("timeout"))

    def send(
        self, payload: bytes, head_only: bool, timeout: float | None
    ) -> asyncio.Future[RawResponse]:
        """Send one request; the future gets its response or a ``Failure``."""
        waiter: asyncio.Future[RawResponse] = asyncio.get_running_loop().create_future()
        self.start(payload, head_only, timeout, functools.partial(_settle, waiter))
        return waiter

    def start(
        self, payload: bytes, head_only: bool, timeout: float | None, listener: Listener
    ) -> None:
        """Send one request; ``listener`` is called with its response or a ``Failure``."""
        self.listener = listener
        self.head_only, self.state, self.received = head_only, _HEAD, False
        if timeout is not None:
            self.deadline = self.deadlines.watch(timeout)
        self.transport.write(payload)

    def close(self) -> None:
        self.reusable = False
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.listener is None:  # unsolicited bytes: the framing can no longer be trusted
            self.reusable = False
            self.transport.abort()
            return
        self.received = True
        if self.pending:
            self.pending += data
            if len(self.pending) < self.want:
                return
            data = bytes(self.pending)
            self.pending.clear()
        try:
            self._advance(data)
        except ValueError as exc:
            self._fail(Failure("malformed", str(exc), received=True))

    def _advance(self, data: bytes) -> None:
        if self.state == _HEAD:
            while True:
                end = data.find(b"\r\n\r\n")
                if end < 0:
                    if len(data) > _HEAD_LIMIT:
                        raise ValueError("response head longer than 1 MiB")
                    return self._wait(data, len(data) + 1)
                head, data = data[: end + 2], data[end + 4 :]
                status, framing, length, keep_alive = _parse_head(head)
                if not (100 <= status < 200 and status != 101):  # skip interim responses
                    break
            self.status, self.head, self.reusable = status, head, keep_alive
            if self.head_only or status in (204, 304) or status < 200:
                self.reusable = keep_alive and status >= 200  # after a 101 it is not HTTP
                return self._finish(b"", data)
            self.state, self.length = framing, length
            self.chunks = []
        if self.state == _LENGTH:
            if len(data) < self.length:
                return self._wait(data, self.length)
            return self._finish(data[: self.length], data[self.length :])
        if self.state == _CHUNKED:
            while True:
                eol = data.find(b"\r\n")
                if eol < 0:
                    if len(data) > _HEAD_LIMIT:
                        raise ValueError("chunk-size line longer than 1 MiB")
                    return self._wait(data, len(data) + 1)
                size = int(data[:eol].split(b";", 1)[0].strip(), 16)
                if size == 0:
                    end = data.find(b"\r\n\r\n", eol)  # the end of the (usually empty) trailers
                    if end < 0:
                        return self._wait(data, len(data) + 1)
                    return self._finish(b"".join(self.chunks), data[end + 4 :])
                end = eol + 2 + size
                if len(data) < end + 2:
                    return self._wait(data, end + 2)
                self.chunks.append(data[eol + 2 : end])
                data = data[end + 2 :]
        self.chunks.append(data)  # _EOF: the body ends when the connection does
        return None

    def _wait(self, data: bytes, want: int) -> None:
        self.pending += data
        self.want = want

    def _finish(self, body: bytes, rest: bytes) -> None:
        listener, self.listener = self.listener, None
        if rest:  # bytes past the response we asked for: the framing can no longer be trusted
            self.reusable = False
        if listener is not None:
            listener(RawResponse(self.status, self.head, body, self.state == _CHUNKED))

    def _fail(self, failure: Failure) -> None:
        self.reusable = False
        listener, self.listener = self.listener, None
        if listener is not None:
            listener(failure)
        self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self.deadlines.wires.discard(self)
        if self.listener is None:
            return
        if self.state == _EOF:
            self.chunks.append(bytes(self.pending))
            self.pending.clear()
            return self._finish(b"".join(self.chunks), b"")
        received = self.received or bool(self.pending)
        detail = f"{type(exc).__name__}: {exc}" if exc is not None else ""
        return self._fail(Failure("lost", detail, received=received))


def _settle(waiter: asyncio.Future[RawResponse], outcome: RawResponse | Failure) -> None:
    if waiter.done():  # cancelled
        return
    if isinstance(outcome, Failure):
        waiter.set_exception(outcome)
    else:
        waiter.set_result(outcome)


def header_value(head: bytes, lowered: bytes, name: bytes) -> str | None:
    """The value of header ``name`` (lower case) in a response head, repeats joined by ", ".

    ``lowered`` is ``head.lower()``, passed in so that several look-ups share it. Scanning for
    the few headers the driver reads is cheaper than splitting every header line.
    """
    if name not in lowered:
        return None
    needle = b"\n" + name + b":"
    at = lowered.find(needle)
    if at < 0:
        return None
    values = []
    while at >= 0:
        start = at + len(needle)
        end = head.find(b"\r\n", start)
        values.append(head[start:end].strip().decode("latin-1"))
        at = lowered.find(needle, end)
    return ", ".join(values)


def _parse_head(head: bytes) -> tuple[int, int, int, bool]:
    """Status, body framing (_LENGTH, _CHUNKED or _EOF), length and keep-alive of a head."""
    if not head.startswith(b"HTTP/1.") or head[8:9] != b" ":
        raise ValueError(f"not an HTTP/1.x status line: {head[:80]!r}")
    status = int(head[9:12])
    lowered = head.lower()
    framing, length = _EOF, 0
    encoding = None
    if b"\ntransfer-encoding:" in lowered:
        encoding = header_value(head, lowered, b"transfer-encoding")
    if encoding is not None and encoding.lower().endswith("chunked"):
        framing = _CHUNKED
    else:
        at = lowered.find(b"\ncontent-length:")
        if at >= 0:  # int() takes bytes and ignores the spaces around the digits
            framing, length = _LENGTH, int(head[at + 16 : head.index(b"\r", at)].split(b",")[0])
    keep_alive = head[7:8] != b"0"
    if b"\nconnection:" in lowered:
        connection = header_value(head, lowered, b"connection") or ""
        tokens = {token.strip() for token in connection.lower().split(",")}
        if "close" in tokens:
            keep_alive = False
        elif "keep-alive" in tokens:
            keep_alive = True
    return status, framing, length, keep_alive


def parse_headers(head: bytes) -> list[tuple[bytes, bytes]]:
    """Every header of a ``RawResponse.head``, as httpx takes them."""
    headers: list[tuple[bytes, bytes]] = []
    for line in head[:-2].split(b"\r\n")[1:]:
        if line[:1] in (b" ", b"\t") and headers:  # obsolete line folding
            name, value = headers.pop()
            headers.append((name, value + b" " + line.strip()))
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            raise ValueError(f"header line without a colon: {line[:80]!r}")
        headers.append((name, value.strip()))
    return headers
