"""Per-request timing, the x-cache / Server-Timing / x-response-time headers, and the slowdown."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("examples.wedsync")

_SCOPE_KEY = "wedsync.timer"


@dataclass(slots=True)
class RequestTimer:
    """What one request spent where; handlers add to it, the middleware reads it.

    Mutable on purpose: it is an accumulator owned by a single request, not a value passed on.
    """

    db_ms: float = 0.0
    cache_ms: float = 0.0
    cache: str = "none"  # l1-hit | l2-hit | miss | bypass | none

    @property
    def hit(self) -> bool:
        return self.cache.endswith("-hit")


def request_timer(scope: Scope) -> RequestTimer:
    """The timer TimingMiddleware put in this request's scope (a fresh one outside it)."""
    timer = scope.get(_SCOPE_KEY)
    return timer if isinstance(timer, RequestTimer) else RequestTimer()


def server_timing(timer: RequestTimer, app_ms: float, slowdown_ms: float, total_ms: float) -> str:
    """Server-Timing header value, e.g. `db;dur=3.2, cache;desc="l1-hit";dur=0.1, total;dur=3.9`."""
    parts = [
        f"db;dur={timer.db_ms:.2f}",
        f'cache;desc="{timer.cache}";dur={timer.cache_ms:.2f}',
        f"app;dur={app_ms:.2f}",
    ]
    if slowdown_ms > 0:
        parts.append(f"slowdown;dur={slowdown_ms:.2f}")
    parts.append(f"total;dur={total_ms:.2f}")
    return ", ".join(parts)


class TimingMiddleware:
    """Times each HTTP request, applies the slowdown, and sets the timing headers.

    `app` is measured from here to the moment the handler starts its response; with a
    slowdown factor f > 1 the response start is delayed by (f - 1) x app, so the server time
    seen by clients scales by f. `total` is what the server spent before the response started.
    """

    def __init__(self, app: ASGIApp, slowdown: Callable[[], float]) -> None:
        self.app = app
        self._slowdown = slowdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        timer = RequestTimer()
        scope[_SCOPE_KEY] = timer
        response_started = False

        async def send_timed(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                app_ms = (time.perf_counter() - started) * 1000
                slowdown_ms = 0.0
                factor = self._slowdown()
                if factor > 1.0:
                    await asyncio.sleep((factor - 1.0) * app_ms / 1000)
                    slowdown_ms = (time.perf_counter() - started) * 1000 - app_ms
                total_ms = app_ms + slowdown_ms
                headers = MutableHeaders(scope=message)
                headers["x-cache"] = "HIT" if timer.hit else "MISS"
                headers["server-timing"] = server_timing(timer, app_ms, slowdown_ms, total_ms)
                headers["x-response-time"] = f"{total_ms:.2f}ms"
            await send(message)

        try:
            await self.app(scope, receive, send_timed)
        except Exception:
            if response_started:
                raise
            # Answer here rather than in Starlette's outer error handler so even a 500 carries
            # the timing headers the gate reads; the traceback still goes to the log.
            logger.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            await _send_json(send_timed, 500, {"error": "internal server error"})


class BearerAuthMiddleware:
    """When a token is configured, /api/* answers 401 unless `Authorization: Bearer <token>`."""

    def __init__(self, app: ASGIApp, token: Callable[[], str | None]) -> None:
        self.app = app
        self._token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = self._token()
        if scope["type"] != "http" or token is None or not str(scope["path"]).startswith("/api/"):
            await self.app(scope, receive, send)
            return
        sent = dict(scope["headers"]).get(b"authorization", b"")
        expected = b"Bearer " + token.encode()
        if hmac.compare_digest(sent, expected):
            await self.app(scope, receive, send)
            return
        await _send_json(
            send,
            401,
            {"error": "missing or wrong bearer token"},
            extra_headers=[(b"www-authenticate", b'Bearer realm="wedsync"')],
        )


async def _send_json(
    send: Send,
    status: int,
    payload: dict[str, Any],
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = json.dumps(payload).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(extra_headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
