"""A small real ASGI app on PostgreSQL for the tests of login, per-request values and isolation.

GET /healthz; POST /login with {"user": {"email", "password"}} answers {"user": {"token"}} and
a session cookie; GET /me needs "Authorization: Token <token>"; POST /items with {"title"}
inserts a row (409 when the title exists); GET /items counts the rows. DATABASE_URL must be a
postgresql:// URL with a host, as typed settings demand. SHOPAPP_SEEN, when set, is a file
each POST /items appends its title to.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg

Scope = dict[str, Any]
_state: dict[str, Any] = {}
_tokens: set[str] = set()


async def _read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def _answer(
    send: Any, status: int, payload: object, headers: list[Any] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(payload).encode()})


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                url = os.environ["DATABASE_URL"]
                if not urlsplit(url).hostname:
                    raise ValueError(f"DATABASE_URL needs a host, got {url!r}")
                _state["pool"] = await asyncpg.create_pool(url, min_size=1, max_size=4)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await _state.pop("pool").close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    pool: asyncpg.Pool = _state["pool"]
    method, path = scope["method"], scope["path"]
    headers = dict(scope["headers"])
    body = await _read_body(receive)
    if path == "/healthz":
        await pool.fetchval("SELECT 1")
        await _answer(send, 200, {"ok": True})
    elif path == "/login" and method == "POST":
        user = json.loads(body or b"{}").get("user", {})
        if user.get("password") != "hunter2":
            await _answer(send, 422, {"errors": {"password": ["is wrong"]}})
            return
        token = f"tok-{secrets.token_hex(8)}"
        _tokens.add(token)
        cookie = f"session=sess-{token[4:]}; Path=/; HttpOnly".encode()
        await _answer(send, 200, {"user": {"email": user.get("email"), "token": token}},
                      [(b"set-cookie", cookie), (b"x-token", token.encode())])  # fmt: skip
    elif path == "/me":
        auth = headers.get(b"authorization", b"").decode()
        if auth.removeprefix("Token ") not in _tokens:
            await _answer(send, 401, {"detail": "Not authenticated"})
            return
        await _answer(send, 200, {"user": "ok"})
    elif path == "/items" and method == "POST":
        title = json.loads(body)["title"]
        seen = os.environ.get("SHOPAPP_SEEN")
        if seen:
            with Path(seen).open("a") as f:  # noqa: ASYNC230
                f.write(title + "\n")
        try:
            await pool.execute("INSERT INTO items (title) VALUES ($1)", title)
        except asyncpg.UniqueViolationError:
            await _answer(send, 409, {"detail": f"{title} exists"})
            return
        await _answer(send, 201, {"title": title})
    elif path == "/items":
        await _answer(send, 200, {"count": await pool.fetchval("SELECT count(*) FROM items")})
    else:
        await _answer(send, 404, {"detail": "no such page"})


SCHEMA = """
CREATE TABLE items (id serial PRIMARY KEY, title text NOT NULL UNIQUE);
INSERT INTO items (title) SELECT 'item ' || g FROM generate_series(1, 2000) g;
"""
