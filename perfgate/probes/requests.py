"""What the load driver sends: a request, and the values that change with every request.

``RequestSpec`` is one request; ``{seq}`` and ``{uuid}`` in it are filled anew for every
request from ``RequestValues``. The driver encodes the request once with markers in their
place and substitutes the markers in the bytes (``renderer``), fixing Content-Length.
"""

from __future__ import annotations

import itertools
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["RequestSpec", "RequestValues", "renderer"]


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """What to send: ``path`` is relative to the client's base URL and may carry a query string."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    json: object | None = None
    body: bytes | None = None

    @property
    def per_request(self) -> bool:
        """Whether it holds ``{seq}`` or ``{uuid}``, which change with every request."""
        texts = [self.path, *(v for _, v in self.headers), _text_of(self.json)]
        if self.body is not None:
            texts.append(self.body.decode("utf-8", "replace"))
        return any("{seq}" in t or "{uuid}" in t for t in texts)

    def filled(self, seq: str, uid: str) -> RequestSpec:
        """The request with ``{seq}`` and ``{uuid}`` replaced."""

        def sub(text: str) -> str:
            return text.replace("{seq}", seq).replace("{uuid}", uid)

        return replace(
            self,
            path=sub(self.path),
            headers=tuple((k, sub(v)) for k, v in self.headers),
            json=_map_strings(self.json, sub),
            body=sub(self.body.decode()).encode() if self.body is not None else None,
        )


def _text_of(value: object) -> str:
    return "" if value is None else json.dumps(value, default=str)


def _map_strings(value: Any, sub: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return sub(value)
    if isinstance(value, list):
        return [_map_strings(v, sub) for v in value]
    if isinstance(value, dict):
        return {k: _map_strings(v, sub) for k, v in value.items()}
    return value


class RequestValues:
    """Fresh ``{seq}`` and ``{uuid}`` values: seq counts 1, 2, 3, ... over the whole run."""

    def __init__(self) -> None:
        self._seq = itertools.count(1)

    def next(self) -> tuple[str, str]:
        """The values for one request."""
        return str(next(self._seq)), str(uuid.uuid4())


_CONTENT_LENGTH = re.compile(rb"(?im)^(content-length:[ \t]*)\d+")


def renderer(payload: bytes, seq: bytes, uid: bytes, values: RequestValues) -> Callable[[], bytes]:
    """Make each request's bytes from one encoded with markers in place of the placeholders."""
    head, _, body = payload.partition(b"\r\n\r\n")
    has_body = bool(body)

    def render() -> bytes:
        s, u = values.next()
        b = body.replace(seq, s.encode()).replace(uid, u.encode())
        h = head.replace(seq, s.encode()).replace(uid, u.encode())
        if has_body:
            h = _CONTENT_LENGTH.sub(lambda m: m.group(1) + str(len(b)).encode(), h, count=1)
        return h + b"\r\n\r\n" + b

    return render
