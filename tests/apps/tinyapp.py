"""A tiny, real ASGI app for plugin tests: cache headers, server timing, errors, slowness."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

Scope = dict[str, Any]

_hits: dict[str, int] = {}


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if os.environ.get("TINYAPP_FAIL_STARTUP"):
                    await send({"type": "lifespan.startup.failed", "message": "boom at startup"})
                    return
                pidfile = os.environ.get("TINYAPP_PIDFILE")
                if pidfile:
                    Path(pidfile).write_text(str(os.getpid()))  # noqa: ASYNC240
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    auth = dict(scope["headers"]).get(b"authorization", b"").decode()
    status, headers, body = 200, [], b"{}"
    if path == "/healthz":
        body = b'{"ok": true}'
    elif path == "/fast":
        n = _hits[path] = _hits.get(path, 0) + 1
        headers = [
            (b"x-cache", b"HIT" if n > 1 else b"MISS"),
            (b"server-timing", b'db;dur=0.4, cache;desc="l1", total;dur=0.5'),
        ]
        body = json.dumps({"n": n}).encode()
    elif path == "/slow":
        await asyncio.sleep(0.02)
        headers = [(b"x-response-time", b"20.5ms")]
    elif path == "/big":
        body = b"x" * 100_000
    elif path == "/broken":
        status, body = 503, b'{"error": "down"}'
    elif path == "/secret":
        status = 200 if auth == "Bearer s3cr3t-token" else 401
    elif path == "/echo":
        status = 201
    else:
        status = 404
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})
