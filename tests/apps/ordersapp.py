"""A small ASGI app on PostgreSQL whose endpoints send a known number of statements.

GET /healthz runs SELECT 1. GET /orders lists 20 orders with their lines: with ORDERS_MODE=join
(the default) in 2 statements (a count and one join), with ORDERS_MODE=nplus1 in 1 + 20 (the
orders, then the lines of each order on their own: an N+1). GET /cached answers from a process-wide
cache after its first request, with x-cache MISS (1 statement) or HIT (none). GET /terminate
ends the connections that read pg_stat_statements (perfgate's), as a hostile app could.
GET /events counts rows of a table of 5,000 by a column with no index. ORDERS_CONNECTION_SETUP
is a statement every new database connection runs first (as drivers and ORMs do); with it,
connections are opened when first needed.
DATABASE_URL is the database (orders.sql makes its tables).
"""

from __future__ import annotations

import json
import os
from typing import Any

import asyncpg

Scope = dict[str, Any]
_state: dict[str, Any] = {}

SCHEMA = """
CREATE TABLE orders (id serial PRIMARY KEY, customer text NOT NULL);
CREATE TABLE order_lines (
  id serial PRIMARY KEY,
  order_id int NOT NULL REFERENCES orders(id),
  sku text NOT NULL,
  qty int NOT NULL,
  price numeric NOT NULL
);
CREATE INDEX order_lines_order_idx ON order_lines (order_id);
CREATE TABLE events (id serial PRIMARY KEY, kind text NOT NULL, payload text NOT NULL);
INSERT INTO events (kind, payload)
  SELECT 'kind-' || (g % 50), repeat('x', 100) FROM generate_series(1, 5000) g;
INSERT INTO orders (customer) SELECT 'customer ' || g FROM generate_series(1, 50) g;
INSERT INTO order_lines (order_id, sku, qty, price)
  SELECT o, 'sku-' || l, l, 9.99 FROM generate_series(1, 50) o, generate_series(1, 3) l;
"""
COUNT = "SELECT count(*) FROM orders"
JOINED = (
    "SELECT o.id, l.sku, l.qty, l.price FROM orders o JOIN order_lines l ON l.order_id = o.id "
    "WHERE o.id <= 20 ORDER BY o.id, l.id"
)
ORDERS = "SELECT id FROM orders ORDER BY id LIMIT 20"
LINES = "SELECT sku, qty, price FROM order_lines WHERE order_id = $1"
EVENTS = "SELECT count(*) FROM events WHERE kind = $1"  # no index on kind: a Seq Scan


async def _init(conn: asyncpg.Connection) -> None:
    setup = os.environ.get("ORDERS_CONNECTION_SETUP")  # run on every new connection
    if setup:
        await conn.execute(setup)


async def _answer(send: Any, payload: object, headers: list[Any] | None = None) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
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
                # With a setup statement, connections open when first needed (min_size 0), as
                # an ORM's pool does.
                lazy = bool(os.environ.get("ORDERS_CONNECTION_SETUP"))
                _state["pool"] = await asyncpg.create_pool(
                    url, min_size=0 if lazy else 1, max_size=8, init=_init
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await _state.pop("pool").close()
                _state.pop("cached", None)
                await send({"type": "lifespan.shutdown.complete"})
                return
    pool: asyncpg.Pool = _state["pool"]
    path = scope["path"]
    if path == "/healthz":
        await pool.fetchval("SELECT 1")
        await _answer(send, {"ok": True})
    elif path == "/orders":
        async with pool.acquire() as conn:
            if os.environ.get("ORDERS_MODE", "join") == "nplus1":
                ids = [r["id"] for r in await conn.fetch(ORDERS)]
                total = len(ids)
                lines = [[dict(r) for r in await conn.fetch(LINES, i)] for i in ids]
            else:
                total = await conn.fetchval(COUNT)
                lines = [[dict(r) for r in await conn.fetch(JOINED)]]
        await _answer(send, {"total": total, "lines": json.loads(json.dumps(lines, default=str))})
    elif path == "/events":
        await _answer(send, {"count": await pool.fetchval(EVENTS, "kind-7")})
    elif path == "/terminate":  # ends every other connection reading pg_stat_statements
        ended = await pool.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE query LIKE '%perfgate: statements%' AND pid <> pg_backend_pid()"
        )
        await _answer(send, {"ended": ended})
    elif path == "/cached":
        hit = "cached" in _state
        if not hit:
            _state["cached"] = await pool.fetchval(COUNT)
        await _answer(send, {"total": _state["cached"]}, [(b"x-cache", b"HIT" if hit else b"MISS")])
    else:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})
