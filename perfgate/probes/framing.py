"""HTTP/1.1 response framing as pure functions over bytes: the status line, the headers that
frame a body (Content-Length, Transfer-Encoding, Connection) and chunk-size lines, strictly, as
h11 reads them. ``Wire`` calls them while a response arrives.
"""

from __future__ import annotations

__all__ = [
    "CHUNKED",
    "EOF",
    "HEAD",
    "HEAD_LIMIT",
    "LENGTH",
    "Malformed",
    "chunk_size",
    "header_value",
    "parse_head",
    "parse_headers",
]

# The longest response head, chunk-size line or trailer section a Wire accepts (h11 allows
# 16 KiB by default; big cookies and CSP headers are why this is more). Also the most bytes
# of interim (1xx) responses before the real one.
HEAD_LIMIT = 64 * 1024
HEAD, LENGTH, CHUNKED, EOF = range(4)  # what a Wire is reading: the head, or a body framed so
_HEX = b"0123456789abcdefABCDEF"
_MAX_DIGITS = 18  # a Content-Length with more digits is over any limit a Wire takes


class Malformed(ValueError):
    """A response that breaks HTTP/1.1 framing; ``str()`` says how."""


def chunk_size(line: bytes) -> int:
    """The size on a chunk-size line (hex digits, then maybe whitespace and ``;extensions``)."""
    digits = line if line.isalnum() else line.split(b";", 1)[0].rstrip(b" \t")
    if not digits or digits.strip(_HEX):
        raise Malformed(f"malformed chunk size {line[:40]!r}")
    return int(digits, 16)


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


def parse_head(head: bytes) -> tuple[int, int, int, bool]:
    """Status, body framing (LENGTH, CHUNKED or EOF), length and keep-alive of a head."""
    if (
        not head.startswith(b"HTTP/1.")
        or head[8:9] != b" "
        or not head[9:12].isdigit()
        or head[12:13] not in (b" ", b"\r")
        or head[9:10] == b"0"
    ):
        line = head[: head.find(b"\r")]
        raise Malformed(f"malformed status line {line[:40]!r}")
    status = int(head[9:12])
    lowered = head.lower()
    framing, length, trusted = EOF, 0, True
    if b"\ntransfer-encoding:" in lowered:
        encoding = header_value(head, lowered, b"transfer-encoding") or ""
        if encoding.lower() != "chunked":  # as h11: no other transfer coding is decoded
            raise Malformed(f"unsupported Transfer-Encoding {encoding[:40]!r}")
        framing = CHUNKED
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
            framing = LENGTH
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
            raise Malformed(f"malformed Content-Length {values[:40]!r}")
    if len({v.lstrip("0") for v in found}) > 1:
        raise Malformed(f"conflicting Content-Length values {values[:40]!r}")
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
