"""WedSync's ASGI app: `uvicorn examples.wedsync.app:app`, configured by environment variables.

Endpoints (JSON): GET /healthz, GET /api/clients, GET /api/guest-lists/{wedding_id},
POST /api/guest-lists/{wedding_id}/guests, GET /api/journey-instances,
GET /api/supplier-schedules. See README.md for parameters and the regression switches.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as dtime
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from examples.wedsync import queries
from examples.wedsync.cache import L1Cache, RedisTier, TwoTierCache
from examples.wedsync.db import create_pool, fetch, fetchrow, fetchval
from examples.wedsync.settings import Settings
from examples.wedsync.timing import (
    BearerAuthMiddleware,
    RequestTimer,
    TimingMiddleware,
    request_timer,
)

logger = logging.getLogger("examples.wedsync")

MAX_PAGE = 200
RSVP_VALUES = ("pending", "yes", "no")


class ApiError(Exception):
    """A request the API refuses; becomes a JSON error response with this status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Running:
    """What the lifespan opened: settings, the pool, and the cache."""

    settings: Settings
    pool: asyncpg.Pool
    cache: TwoTierCache


class WedSync:
    """The service behind the routes; `lifespan` opens and closes its pool and cache."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings  # None: read the environment when the lifespan starts
        self._running: Running | None = None

    @property
    def running(self) -> Running:
        if self._running is None:
            raise RuntimeError("WedSync is not started: run the ASGI lifespan first")
        return self._running

    def slowdown(self) -> float:
        return self._running.settings.slowdown if self._running else 1.0

    def token(self) -> str | None:
        return self._running.settings.token if self._running else None

    @asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        settings = self._settings or Settings.from_env(os.environ)
        pool = await create_pool(
            settings.database_url, settings.pool_min_size, settings.pool_max_size
        )
        l2 = None
        if settings.redis_url and not settings.no_cache:
            l2 = RedisTier.from_url(settings.redis_url, settings.cache_ttl_s)
            await l2.ping()  # logs once and leaves the tier paused when Redis is down
        l1 = L1Cache(settings.cache_max_entries, settings.cache_ttl_s)
        cache = TwoTierCache(l1, l2, settings.cache_namespace)
        self._running = Running(settings, pool, cache)
        logger.info(
            "WedSync started: cache=%s slowdown=%.2f auth=%s",
            "off" if settings.no_cache else cache.tiers,
            settings.slowdown,
            "on" if settings.token else "off",
        )
        try:
            yield
        finally:
            self._running = None
            await cache.close()
            await pool.close()

    # --- endpoints -----------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        running = self.running
        await fetchval(running.pool, request_timer(request.scope), queries.HEALTH_CHECK)
        return _json(200, {"status": "ok", "cache": running.cache.tiers})

    async def clients(self, request: Request) -> Response:
        supplier_id = _int_param(request, "supplier_id")
        after = _int_param(request, "after", default=0, minimum=0)
        limit = _int_param(request, "limit", default=50, maximum=MAX_PAGE)

        async def load(timer: RequestTimer) -> dict[str, Any]:
            rows = await fetch(
                self.running.pool, timer, queries.CLIENTS_BY_SUPPLIER, supplier_id, after, limit
            )
            return {
                "supplier_id": supplier_id,
                "clients": [dict(row) for row in rows],
                "next_after": rows[-1]["id"] if len(rows) == limit else None,
            }

        return await self._cached(request, f"clients:{supplier_id}:{after}:{limit}", load)

    async def guest_list(self, request: Request) -> Response:
        wedding_id = _int_path(request, "wedding_id")

        async def load(timer: RequestTimer) -> dict[str, Any]:
            pool = self.running.pool
            rows = await fetch(pool, timer, queries.GUESTS_BY_WEDDING, wedding_id)
            if not rows and not await fetchval(pool, timer, queries.WEDDING_EXISTS, wedding_id):
                raise ApiError(404, f"wedding {wedding_id} not found")
            return {"wedding_id": wedding_id, "count": len(rows), "guests": [dict(r) for r in rows]}

        return await self._cached(request, _guest_list_key(wedding_id), load)

    async def add_guest(self, request: Request) -> Response:
        wedding_id = _int_path(request, "wedding_id")
        name, rsvp, table_no = await _guest_body(request)
        running = self.running
        try:
            row = await fetchrow(
                running.pool,
                request_timer(request.scope),
                queries.INSERT_GUEST,
                wedding_id,
                name,
                rsvp,
                table_no,
            )
        except asyncpg.ForeignKeyViolationError:
            raise ApiError(404, f"wedding {wedding_id} not found") from None
        if not running.settings.no_cache:
            await running.cache.invalidate(_guest_list_key(wedding_id))
        return _json(201, {"wedding_id": wedding_id, **dict(row or {})})

    async def journey_instances(self, request: Request) -> Response:
        client_id = _int_param(request, "client_id")

        async def load(timer: RequestTimer) -> dict[str, Any]:
            rows = await fetch(self.running.pool, timer, queries.JOURNEY_STEPS_BY_CLIENT, client_id)
            instances: dict[int, dict[str, Any]] = {}
            for row in rows:
                instance = instances.setdefault(
                    row["instance_id"],
                    {"instance_id": row["instance_id"], "journey": row["journey"], "steps": []},
                )
                step = {k: row[k] for k in ("position", "title", "due_on", "status")}
                instance["steps"].append(step)
            return {"client_id": client_id, "instances": list(instances.values())}

        return await self._cached(request, f"journeys:{client_id}", load)

    async def supplier_schedule(self, request: Request) -> Response:
        supplier_id = _int_param(request, "supplier_id")
        day = _date_param(request, "date")

        async def load(timer: RequestTimer) -> dict[str, Any]:
            rows = await fetch(
                self.running.pool, timer, queries.SUPPLIER_SCHEDULE, supplier_id, day
            )
            return {
                "supplier_id": supplier_id,
                "date": day,
                "bookings": [dict(row) for row in rows],
            }

        return await self._cached(request, f"schedule:{supplier_id}:{day.isoformat()}", load)

    async def _cached(
        self,
        request: Request,
        key: str,
        load: Callable[[RequestTimer], Awaitable[dict[str, Any]]],
    ) -> Response:
        """Serve `key` from the cache, or run `load`, store its JSON, and serve that."""
        running = self.running
        timer = request_timer(request.scope)
        if running.settings.no_cache:
            timer.cache = "bypass"
            return _json_body(200, _encode(await load(timer)))
        started = time.perf_counter()
        hit = await running.cache.get(key)
        timer.cache_ms += (time.perf_counter() - started) * 1000
        if hit is not None:
            timer.cache = f"{hit.tier}-hit"
            return _json_body(200, hit.value)
        timer.cache = "miss"
        body = _encode(await load(timer))
        started = time.perf_counter()
        await running.cache.set(key, body)
        timer.cache_ms += (time.perf_counter() - started) * 1000
        return _json_body(200, body)


def _guest_list_key(wedding_id: int) -> str:
    return f"guest-list:{wedding_id}"


def _int_param(
    request: Request,
    name: str,
    default: int | None = None,
    minimum: int = 1,
    maximum: int = 2**31 - 1,
) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        if default is None:
            raise ApiError(400, f"query parameter {name!r} is required, e.g. ?{name}=7")
        return default
    return _bounded_int(raw, f"query parameter {name!r}", minimum, maximum)


def _int_path(request: Request, name: str) -> int:
    return _bounded_int(str(request.path_params[name]), f"path segment {name}", 1, 2**31 - 1)


def _bounded_int(raw: str, what: str, minimum: int, maximum: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{what}: expected an integer, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ApiError(400, f"{what}: expected {minimum}..{maximum}, got {value}")
    return value


def _date_param(request: Request, name: str) -> date:
    raw = request.query_params.get(name)
    if not raw:
        raise ApiError(400, f"query parameter {name!r} is required, e.g. ?{name}=2026-06-13")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, f"query parameter {name!r}: expected YYYY-MM-DD, got {raw!r}") from None


async def _guest_body(request: Request) -> tuple[str, str, int | None]:
    """Validate `{"name": ..., "rsvp"?: "pending"|"yes"|"no", "table_no"?: int|null}`."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise ApiError(400, "request body must be JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, 'request body must be a JSON object like {"name": "Ada Lovelace"}')
    name = body.get("name")
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 200:
        raise ApiError(400, "name: expected a non-empty string of at most 200 characters")
    rsvp = body.get("rsvp", "pending")
    if rsvp not in RSVP_VALUES:
        raise ApiError(400, f"rsvp: expected one of {', '.join(RSVP_VALUES)}, got {rsvp!r}")
    table_no = body.get("table_no")
    if table_no is not None and (
        not isinstance(table_no, int) or isinstance(table_no, bool) or not 1 <= table_no <= 1000
    ):
        raise ApiError(400, f"table_no: expected an integer 1..1000 or null, got {table_no!r}")
    return name.strip(), str(rsvp), table_no


def _json_default(value: object) -> str:
    if isinstance(value, (date, datetime, dtime)):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def _encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, default=_json_default, separators=(",", ":")).encode()


def _json_body(status: int, body: bytes) -> Response:
    return Response(body, status_code=status, media_type="application/json")


def _json(status: int, payload: dict[str, Any]) -> Response:
    return _json_body(status, _encode(payload))


def _api(
    handler: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """Turn ApiError into its JSON response."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as exc:
            return _json(exc.status, {"error": exc.message})

    return endpoint


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the app; with no settings it reads the environment when its lifespan starts."""
    service = WedSync(settings)
    routes = [
        Route("/healthz", _api(service.healthz), methods=["GET"]),
        Route("/api/clients", _api(service.clients), methods=["GET"]),
        Route("/api/guest-lists/{wedding_id}", _api(service.guest_list), methods=["GET"]),
        Route("/api/guest-lists/{wedding_id}/guests", _api(service.add_guest), methods=["POST"]),
        Route("/api/journey-instances", _api(service.journey_instances), methods=["GET"]),
        Route("/api/supplier-schedules", _api(service.supplier_schedule), methods=["GET"]),
    ]
    # Timing is outermost so 401s and errors carry the timing headers too.
    middleware = [
        Middleware(TimingMiddleware, slowdown=service.slowdown),
        Middleware(BearerAuthMiddleware, token=service.token),
    ]
    return Starlette(routes=routes, middleware=middleware, lifespan=service.lifespan)


app = create_app()
