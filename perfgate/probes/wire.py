"""One HTTP/1.1 connection as an asyncio Protocol: responses parsed as their bytes arrive.

``Wire`` is what ``KeepAliveTransport`` and its lanes send through: ``data_received`` finds the
head with ``bytes.find``, reads only the headers that frame the body (Content-Length, chunked,
Connection) and hands the whole response to a listener, which may send the next request from
inside that callback. No StreamReader awaits, no task switch per response.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Callable
from typing import NamedTuple

from perfgate.probes.framing import (
    CHUNKED,
    EOF,
    HEAD,
    HEAD_LIMIT,
    LENGTH,
    Malformed,
    chunk_size,
    parse_head,
)

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "Deadlines",
    "Failure",
    "Listener",
    "RawResponse",
    "Wire",
]

DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024  # budgets.yaml's max_response_bytes default


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
        self.kind = kind  # "timeout", "lost", "malformed" or "too_large"
        self.detail = detail
        self.received = received  # any byte of the response had arrived


class _TooLarge(Exception):
    """A body over the Wire's ``limit``; ``str()`` says how it was found."""


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
    Every wait is bounded: the head, a chunk-size line and the trailers by ``HEAD_LIMIT``,
    the body by ``limit``, the whole response by the request's deadline.
    """

    __slots__ = (
        "body",
        "broken",
        "deadline",
        "deadlines",
        "head",
        "head_only",
        "interim",
        "length",
        "limit",
        "listener",
        "pending",
        "received",
        "reusable",
        "scan",
        "state",
        "status",
        "transport",
        "until",
        "want",
    )

    def __init__(self, deadlines: Deadlines, limit: int = DEFAULT_MAX_RESPONSE_BYTES) -> None:
        self.deadlines = deadlines
        self.deadline = 0.0
        self.limit = limit  # the largest body accepted, in bytes
        self.listener: Listener | None = None
        self.reusable = False
        self.broken: Failure | None = None  # why the connection ended while no request was out
        self.head_only = False
        self.pending = bytearray()  # bytes received but not yet enough to make progress on
        self.want = 0  # how many pending bytes the next step needs
        self.until = b""  # or: the delimiter the next step needs, searched for from ``scan``
        self.scan = 0
        self.state = HEAD
        self.received = False
        self.interim = 0  # bytes of interim (1xx) responses to this request
        self.status = 0
        self.head = b""
        self.length = 0
        self.body = bytearray()  # of a chunked or until-close response

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
        if self.broken is not None:  # closed, or spoke out of turn, before this request
            asyncio.get_running_loop().call_soon(listener, self.broken)
            return
        self.listener = listener
        self.head_only, self.state, self.received, self.interim = head_only, HEAD, False, 0
        self.deadline = self.deadlines.watch(timeout) if timeout is not None else math.inf
        self.transport.write(payload)

    def close(self) -> None:
        self.reusable = False
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.listener is None:  # unsolicited bytes: the framing can no longer be trusted
            self.reusable = False
            if self.broken is None:
                self.broken = Failure(
                    "malformed", "the server sent bytes before the request", received=True
                )
            self.transport.abort()
            return
        self.received = True
        pending = self.pending
        if pending:
            pending += data
            if len(pending) < self.want:
                return
            if self.until:
                if pending.find(self.until, self.scan) < 0:
                    self.scan = max(0, len(pending) - len(self.until) + 1)
                    if len(pending) > HEAD_LIMIT + 4:
                        self._fail(Failure("malformed", _what_overran(self), received=True))
                    return
                self.until = b""
            data = bytes(pending)
            pending.clear()
        try:
            self._advance(data)
        except Malformed as exc:
            self._fail(Failure("malformed", str(exc), received=True))
        except _TooLarge as exc:
            self._fail(Failure("too_large", str(exc), received=True))
        except ValueError as exc:  # a case the checks above missed: still the server's fault
            self._fail(Failure("malformed", str(exc), received=True))

    def _advance(self, data: bytes) -> None:
        pos = 0
        if self.state == HEAD:
            while True:
                end = data.find(b"\r\n\r\n", pos)
                if end < 0 or end - pos > HEAD_LIMIT:
                    if len(data) - pos > HEAD_LIMIT:
                        raise Malformed(_what_overran(self))
                    return self._wait_for(data, pos, b"\r\n\r\n")
                head = data[pos : end + 2]
                pos = end + 4
                status, framing, length, keep_alive = parse_head(head)
                if not (100 <= status < 200 and status != 101):
                    break
                self.interim += len(head)  # skip interim responses, but not without end
                if self.interim > HEAD_LIMIT:
                    raise Malformed(f"more than {HEAD_LIMIT // 1024} KiB of 1xx responses")
            self.status, self.head, self.reusable = status, head, keep_alive
            if self.head_only or status in (204, 304) or status < 200:
                self.reusable = keep_alive and status >= 200  # after a 101 it is not HTTP
                return self._finish(b"", len(data) > pos)
            if framing == LENGTH:
                if length > self.limit:
                    raise _TooLarge(f"Content-Length {length}")
                self.length = length
            else:
                self.body = bytearray()
            self.state = framing
        if self.state == LENGTH:
            length = self.length
            if len(data) - pos < length:
                return self._wait(data, pos, length)
            return self._finish(data[pos : pos + length], len(data) > pos + length)
        body = self.body
        if self.state == EOF:  # the body ends when the connection does
            body += data[pos:] if pos else data
            if len(body) > self.limit:
                raise _TooLarge("")
            return None
        limit = self.limit
        while True:  # CHUNKED
            eol = data.find(b"\r\n", pos)
            if eol < 0:
                if len(data) - pos > HEAD_LIMIT:
                    raise Malformed(_what_overran(self))
                return self._wait_for(data, pos, b"\r\n")
            size = chunk_size(data[pos:eol])
            if size == 0:
                end = data.find(b"\r\n\r\n", eol)  # the end of the (usually empty) trailers
                if end < 0:
                    if len(data) - eol > HEAD_LIMIT:
                        self.until = b"\r\n\r\n"
                        raise Malformed(_what_overran(self))
                    return self._wait_for(data, pos, b"\r\n\r\n")
                return self._finish(bytes(body), len(data) > end + 4)
            if size > limit - len(body):
                raise _TooLarge("")
            start = eol + 2
            end = start + size
            if len(data) < end + 2:
                return self._wait(data, pos, end + 2 - pos)
            if data[end : end + 2] != b"\r\n":
                raise Malformed("chunk data not followed by CRLF")
            body += data[start:end]
            pos = end + 2

    def _wait(self, data: bytes, pos: int, want: int) -> None:
        """Keep ``data[pos:]``; go on once ``want`` bytes are pending."""
        self.pending += data[pos:] if pos else data
        self.want, self.until = want, b""

    def _wait_for(self, data: bytes, pos: int, until: bytes) -> None:
        """Keep ``data[pos:]``; go on once ``until`` is among the pending bytes."""
        self.pending += data[pos:] if pos else data
        self.want, self.until = 0, until
        self.scan = max(0, len(self.pending) - len(until) + 1)

    def _finish(self, body: bytes, extra: bool) -> None:
        listener, self.listener = self.listener, None
        if extra:  # bytes past the response we asked for: the framing can no longer be trusted
            self.reusable = False
        if listener is not None:
            listener(RawResponse(self.status, self.head, body, self.state == CHUNKED))

    def _fail(self, failure: Failure) -> None:
        self.reusable = False
        self.pending.clear()
        self.body = bytearray()
        listener, self.listener = self.listener, None
        if listener is not None:
            listener(failure)
        self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self.deadlines.wires.discard(self)
        detail = f"{type(exc).__name__}: {exc}" if exc is not None else ""
        if self.listener is None:
            if self.broken is None:
                self.broken = Failure("lost", detail)
            return
        if self.state == EOF:
            return self._finish(bytes(self.body), False)
        received = self.received or bool(self.pending)
        return self._fail(Failure("lost", detail, received=received))


def _what_overran(wire: Wire) -> str:
    """What a Wire waited too long for the end of: a head, a chunk-size line or trailers."""
    if wire.state == HEAD:
        what = "response head"
    else:
        what = "trailers" if wire.until == b"\r\n\r\n" else "chunk-size line"
    return f"{what} longer than {HEAD_LIMIT // 1024} KiB"


def _settle(waiter: asyncio.Future[RawResponse], outcome: RawResponse | Failure) -> None:
    if waiter.done():  # cancelled
        return
    if isinstance(outcome, Failure):
        waiter.set_exception(outcome)
    else:
        waiter.set_result(outcome)
