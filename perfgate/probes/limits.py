"""The response-size limit (budgets.yaml's ``max_response_bytes``) and bounded body decoding.

A request carries its limit in the httpx extension ``MAX_RESPONSE_BYTES``; perfgate's
transports stop reading a body that crosses it, and content decoding (gzip, br, ...) is done
a slice at a time so that a small compressed body cannot expand without bound either.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx

from perfgate.probes.wire import DEFAULT_MAX_RESPONSE_BYTES

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "MAX_RESPONSE_BYTES",
    "ResponseTooLarge",
    "Slices",
    "decoded_size",
    "limit_of",
    "read_bounded",
    "too_large",
]

MAX_RESPONSE_BYTES = "perfgate.max_response_bytes"  # the httpx request extension
# Compressed bytes handed to a decoder at once: deflate expands at most ~1032:1, so one step
# of decoding holds at most a few MiB whatever the body.
_SLICE = 4096


class ResponseTooLarge(httpx.TransportError):
    """A response body (as received, or once decoded) over the request's limit."""


def too_large(limit: int, request: httpx.Request | None, how: str = "") -> ResponseTooLarge:
    """The error for a body over ``limit``; ``how`` says what showed it ("Content-Length 9")."""
    message = f"response body over max_response_bytes ({limit:,} bytes)"
    return ResponseTooLarge(f"{message}: {how}" if how else message, request=request)


_DECODED = "once content-decoded"


def limit_of(request: httpx.Request, default: int = DEFAULT_MAX_RESPONSE_BYTES) -> int:
    """The limit a request carries, else ``default``."""
    value = request.extensions.get(MAX_RESPONSE_BYTES)
    return value if isinstance(value, int) and value > 0 else default


class Slices(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A received body handed on in small slices, so that its decoding is bounded too."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def __iter__(self) -> Iterator[bytes]:
        body = memoryview(self._body)
        for start in range(0, len(body), _SLICE):
            yield bytes(body[start : start + _SLICE])

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self:
            yield part


def decoded_size(status: int, headers: list[tuple[bytes, bytes]], body: bytes, limit: int) -> int:
    """The size of ``body`` once content-decoded (as httpx decodes it), up to ``limit``.

    Raises ``ResponseTooLarge`` past the limit and ``httpx.DecodingError`` for a body that
    does not decode; nothing decoded is kept.
    """
    response = httpx.Response(status, headers=headers, stream=Slices(body))
    size = 0
    for part in response.iter_bytes():
        size += len(part)
        if size > limit:
            response.close()
            raise too_large(limit, None, _DECODED)
    return size


async def read_bounded(
    response: httpx.Response, limit: int, keep: int | None = None
) -> tuple[int, bytes]:
    """The decoded size of a streamed response's body and the body (or its first ``keep``
    bytes), failing past ``limit``; the response is closed afterwards."""
    kept = bytearray()
    size = 0
    try:
        async for part in response.aiter_bytes():
            size += len(part)
            if size > limit:
                how = _DECODED if "content-encoding" in response.headers else ""
                raise too_large(limit, response.request, how)
            if keep is None or len(kept) < keep:
                kept += part
    finally:
        await response.aclose()
    return size, bytes(kept if keep is None else kept[:keep])
