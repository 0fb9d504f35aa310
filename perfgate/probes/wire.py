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

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "HEAD_LIMIT",
    "Deadlines",
    "Failure",
    "Listener",
    "RawResponse",
    "Wire",
    "header_value",
    "parse_headers",
]

# The longest response head, chunk-size line or trailer section a Wire accepts (h11 allows
# 16 KiB by default; big cookies and CSP headers are why this is more). Also the most bytes
# of interim (1xx) responses before the real one.
HEAD_LIMIT = 64 * 1024
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024  # budgets.yaml's max_response_bytes default
_HEAD, _LENGTH, _CHUNKED, _EOF = range(4)  # what a Wire is reading
_HEX = b"0123456789abcdefABCDEF"
_MAX_DIGITS = 18  # a Content-Length with more digits is over any limit a Wire takes


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


class _Malformed(ValueError):
    """A response that breaks HTTP/1.1 framing; ``str()`` says how."""


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
        self.state = _HEAD
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
        self.head_only, self.state, self.received, self.interim = head_only, _HEAD, False, 0
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
        except _Malformed as exc:
            self._fail(Failure("malformed", str(exc), received=True))
        except _TooLarge as exc:
            self._fail(Failure("too_large", str(exc), received=True))
        except ValueError as exc:  # a case the checks above missed: still the server's fault
            self._fail(Failure("malformed", str(exc), received=True))

    def _advance(self, data: bytes) -> None:
        pos = 0
        if self.state == _HEAD:
            while True:
                end = data.find(b"\r\n\r\n", pos)
                if end < 0 or end - pos > HEAD_LIMIT:
                    if len(data) - pos > HEAD_LIMIT:
                        raise _Malformed(_what_overran(self))
                    return self._wait_for(data, pos, b"\r\n\r\n")
                head = data[pos : end + 2]
                pos = end + 4
                status, framing, length, keep_alive = _parse_head(head)
                if not (100 <= status < 200 and status != 101):
                    break
                self.interim += len(head)  # skip interim responses, but not without end
                if self.interim > HEAD_LIMIT:
                    raise _Malformed(f"more than {HEAD_LIMIT // 1024} KiB of 1xx responses")
            self.status, self.head, self.reusable = status, head, keep_alive
            if self.head_only or status in (204, 304) or status < 200:
                self.reusable = keep_alive and status >= 200  # after a 101 it is not HTTP
                return self._finish(b"", len(data) > pos)
            if framing == _LENGTH:
                if length > self.limit:
                    raise _TooLarge(f"Content-Length {length}")
                self.length = length
            else:
                self.body = bytearray()
            self.state = framing
        if self.state == _LENGTH:
            length = self.length
            if len(data) - pos < length:
                return self._wait(data, pos, length)
            return self._finish(data[pos : pos + length], len(data) > pos + length)
        body = self.body
        if self.state == _EOF:  # the body ends when the connection does
            body += data[pos:] if pos else data
            if len(body) > self.limit:
                raise _TooLarge("")
            return None
        limit = self.limit
        while True:  # _CHUNKED
            eol = data.find(b"\r\n", pos)
            if eol < 0:
                if len(data) - pos > HEAD_LIMIT:
                    raise _Malformed(_what_overran(self))
                return self._wait_for(data, pos, b"\r\n")
            size = _chunk_size(data[pos:eol])
            if size == 0:
                end = data.find(b"\r\n\r\n", eol)  # the end of the (usually empty) trailers
                if end < 0:
                    if len(data) - eol > HEAD_LIMIT:
                        self.until = b"\r\n\r\n"
                        raise _Malformed(_what_overran(self))
                    return self._wait_for(data, pos, b"\r\n\r\n")
                return self._finish(bytes(body), len(data) > end + 4)
            if size > limit - len(body):
                raise _TooLarge("")
            start = eol + 2
            end = start + size
            if len(data) < end + 2:
                return self._wait(data, pos, end + 2 - pos)
            if data[end : end + 2] != b"\r\n":
                raise _Malformed("chunk data not followed by CRLF")
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
            listener(RawResponse(self.status, self.head, body, self.state == _CHUNKED))

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
        if self.state == _EOF:
            return self._finish(bytes(self.body), False)
        received = self.received or bool(self.pending)
        return self._fail(Failure("lost", detail, received=received))


def _what_overran(wire: Wire) -> str:
    """What a Wire waited too long for the end of: a head, a chunk-size line or trailers."""
    if wire.state == _HEAD:
        what = "response head"
    else:
        what = "trailers" if wire.until == b"\r\n\r\n" else "chunk-size line"
    return f"{what} longer than {HEAD_LIMIT // 1024} KiB"


def _chunk_size(line: bytes) -> int:
    """The size on a chunk-size line (hex digits, then maybe whitespace and ``;extensions``)."""
    digits = line if line.isalnum() else line.split(b";", 1)[0].rstrip(b" \t")
    if not digits or digits.strip(_HEX):
        raise _Malformed(f"malformed chunk size {line[:40]!r}")
    return int(digits, 16)


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
    if (
        not head.startswith(b"HTTP/1.")
        or head[8:9] != b" "
        or not head[9:12].isdigit()
        or head[12:13] not in (b" ", b"\r")
        or head[9:10] == b"0"
    ):
        line = head[: head.find(b"\r")]
        raise _Malformed(f"malformed status line {line[:40]!r}")
    status = int(head[9:12])
    lowered = head.lower()
    framing, length, trusted = _EOF, 0, True
    if b"\ntransfer-encoding:" in lowered:
        encoding = header_value(head, lowered, b"transfer-encoding") or ""
        if encoding.lower() != "chunked":  # as h11: no other transfer coding is decoded
            raise _Malformed(f"unsupported Transfer-Encoding {encoding[:40]!r}")
        framing = _CHUNKED
        # With a Content-Length too, chunked wins (RFC 9112 6.3, as in h11), but it may be an
        # attempt at response splitting: the connection is not trusted with another request.
        trusted = b"\ncontent-length:" not in lowered
    else:
        at = lowered.find(b"\ncontent-length:")
        if at >= 0:
            end = head.index(b"\r", at)
            value = head[at + 16 : end].strip()
            if not value.isdigit() or lowered.find(b"\ncontent-length:", end) >= 0:
                value = _content_length(header_value(head, lowered, b"content-length") or "")
            if len(value) > _MAX_DIGITS:
                value = value.lstrip(b"0") or b"0"
            framing = _LENGTH
            length = int(value) if len(value) <= _MAX_DIGITS else 1 << 63
    keep_alive = head[7:8] != b"0"
    if b"\nconnection:" in lowered:
        connection = header_value(head, lowered, b"connection") or ""
        tokens = {token.strip() for token in connection.lower().split(",")}
        if "close" in tokens:
            keep_alive = False
        elif "keep-alive" in tokens:
            keep_alive = True
    return status, framing, length, keep_alive and trusted


def _content_length(values: str) -> bytes:
    """The one length that repeated Content-Length headers (or a list in one) agree on."""
    found = {v.strip() for v in values.split(",")}
    for value in found:
        if not (value.isascii() and value.isdigit()):
            raise _Malformed(f"malformed Content-Length {values[:40]!r}")
    if len({v.lstrip("0") for v in found}) > 1:
        raise _Malformed(f"conflicting Content-Length values {values[:40]!r}")
    return found.pop().lstrip("0").encode() or b"0"


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
