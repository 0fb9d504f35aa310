"""The WedSync example app, run for real: PostgreSQL with the seed, Redis, and the ASGI lifespan."""

from __future__ import annotations

import asyncio
import logging
import os
import statistics
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from starlette.types import ASGIApp, Message

from examples.wedsync import queries
from examples.wedsync.app import create_app
from examples.wedsync.cache import L1Cache
from examples.wedsync.db import (
    DROP_GUEST_INDEX_SQL,
    RESTORE_GUEST_INDEX_SQL,
    load_schema_and_seed,
)
from examples.wedsync.settings import Settings, SettingsError

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = os.environ.get("PERFGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SEEDED_GUESTS = 300_031  # guests rows seed.sql creates; API inserts get ids above 499,997


# --- fixtures: a scratch database per module, loaded with schema.sql + seed.sql ---------------


@pytest.fixture(scope="module")
def admin_dsn(request: pytest.FixtureRequest) -> str:
    """The suite's `pg_dsn` when conftest provides it, else PERFGATE_TEST_DSN or local 5432."""
    try:
        return str(request.getfixturevalue("pg_dsn"))
    except pytest.FixtureLookupError:
        return os.environ.get("PERFGATE_TEST_DSN", DEFAULT_DSN)


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


async def _create_and_load(admin: str, database: str) -> str:
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()
    dsn = _with_database(admin, database)
    conn = await asyncpg.connect(dsn)
    try:
        await load_schema_and_seed(conn)
    finally:
        await conn.close()
    return dsn


async def _drop(admin: str, database: str) -> None:
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def wedsync_dsn(admin_dsn: str) -> Iterator[str]:
    """A fresh database with the WedSync seed (about 4 s to load), dropped afterwards."""
    database = f"wedsync_test_{uuid.uuid4().hex[:12]}"
    dsn = asyncio.run(_create_and_load(admin_dsn, database))
    try:
        yield dsn
    finally:
        asyncio.run(_drop(admin_dsn, database))


@asynccontextmanager
async def lifespan(app: ASGIApp) -> AsyncIterator[None]:
    """Drive the ASGI lifespan protocol the way uvicorn does: startup, yield, shutdown."""
    to_app: asyncio.Queue[Message] = asyncio.Queue()
    from_app: asyncio.Queue[Message] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}

    async def run() -> None:
        await app(scope, to_app.get, from_app.put)

    task = asyncio.create_task(run())
    await to_app.put({"type": "lifespan.startup"})
    started = await from_app.get()
    if started["type"] != "lifespan.startup.complete":
        await task  # re-raises the startup error
        raise RuntimeError(started.get("message", "lifespan startup failed"))
    try:
        yield
    finally:
        await to_app.put({"type": "lifespan.shutdown"})
        await from_app.get()
        await task


@asynccontextmanager
async def serve(settings: Settings | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """A started WedSync app behind httpx.ASGITransport (settings None: read the environment)."""
    app = create_app(settings)
    async with lifespan(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://wedsync.test") as c:
            yield c


def server_timing(response: httpx.Response) -> dict[str, dict[str, str]]:
    """Parse `db;dur=3.2, cache;desc="l1-hit";dur=0.1` into {"db": {"dur": "3.2"}, ...}."""
    metrics: dict[str, dict[str, str]] = {}
    for entry in response.headers["server-timing"].split(","):
        name, *params = (part.strip() for part in entry.split(";"))
        metrics[name] = {}
        for param in params:
            key, _, value = param.partition("=")
            metrics[name][key] = value.strip('"')
    return metrics


def dur(response: httpx.Response, metric: str) -> float:
    return float(server_timing(response)[metric]["dur"])


# --- the endpoints ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_guest_list_is_a_miss_then_an_l1_hit(wedsync_dsn: str) -> None:
    async with serve(Settings(database_url=wedsync_dsn)) as client:
        first = await client.get("/api/guest-lists/42")
        second = await client.get("/api/guest-lists/42")

    assert first.status_code == 200
    body = first.json()
    assert body["wedding_id"] == 42
    assert body["count"] == len(body["guests"]) == 35
    names = [(g["name"], g["id"]) for g in body["guests"]]
    assert names == sorted(names)
    assert {g["rsvp"] for g in body["guests"]} <= {"yes", "no", "pending"}

    assert first.headers["x-cache"] == "MISS"
    timing = server_timing(first)
    assert timing["cache"]["desc"] == "miss"
    assert float(timing["db"]["dur"]) > 0
    assert float(timing["total"]["dur"]) >= float(timing["db"]["dur"])
    assert first.headers["x-response-time"] == f"{timing['total']['dur']}ms"

    assert second.headers["x-cache"] == "HIT"
    assert server_timing(second)["cache"]["desc"] == "l1-hit"
    assert dur(second, "db") == 0
    assert second.content == first.content


@pytest.mark.asyncio
async def test_clients_paginate_by_keyset(wedsync_dsn: str) -> None:
    async with serve(Settings(database_url=wedsync_dsn)) as client:
        page1 = (await client.get("/api/clients", params={"supplier_id": 7})).json()
        after = page1["next_after"]
        page2 = (await client.get("/api/clients", params={"supplier_id": 7, "after": after})).json()
        page3 = await client.get(
            "/api/clients", params={"supplier_id": 7, "after": page2["next_after"]}
        )

    assert len(page1["clients"]) == 50
    assert after == page1["clients"][-1]["id"]
    ids = [c["id"] for c in page1["clients"] + page2["clients"] + page3.json()["clients"]]
    assert ids == sorted(set(ids))
    assert len(ids) == 139  # supplier 7's clients in the seed
    assert page3.json()["next_after"] is None
    assert set(page1["clients"][0]) == {"id", "name", "email", "phone", "status", "wedding_id"}


@pytest.mark.asyncio
async def test_journey_instances_group_steps_per_instance(wedsync_dsn: str) -> None:
    async with serve(Settings(database_url=wedsync_dsn)) as client:
        response = await client.get("/api/journey-instances", params={"client_id": 8})

    body = response.json()
    assert response.status_code == 200
    assert body["client_id"] == 8  # a booked client: both journeys
    assert [i["journey"] for i in body["instances"]] == [
        "Enquiry to booking",
        "Planning to wedding day",
    ]
    for instance in body["instances"]:
        assert [s["position"] for s in instance["steps"]] == [1, 2, 3, 4, 5, 6]
        statuses = [s["status"] for s in instance["steps"]]
        assert statuses == sorted(statuses, key=["done", "current", "pending"].index)


@pytest.mark.asyncio
async def test_supplier_schedule_joins_weddings_and_venues(wedsync_dsn: str) -> None:
    params: dict[str, str | int] = {"supplier_id": 7, "date": "2026-06-13"}
    async with serve(Settings(database_url=wedsync_dsn)) as client:
        response = await client.get("/api/supplier-schedules", params=params)

    body = response.json()
    assert response.status_code == 200
    assert body["date"] == "2026-06-13"
    kinds = sorted(b["kind"] for b in body["bookings"])
    assert kinds == ["consultation", "wedding-day", "wedding-day"]
    assert all(b["venue"] and b["couple_name"] and b["city"] for b in body["bookings"])
    starts = [b["starts_at"] for b in body["bookings"]]
    assert starts == sorted(starts)


@pytest.mark.asyncio
async def test_posting_a_guest_invalidates_that_weddings_cache(wedsync_dsn: str) -> None:
    async with serve(Settings(database_url=wedsync_dsn)) as client:
        await client.get("/api/guest-lists/43")
        assert (await client.get("/api/guest-lists/43")).headers["x-cache"] == "HIT"
        created = await client.post(
            "/api/guest-lists/43/guests", json={"name": "  Ada Lovelace ", "table_no": 4}
        )
        after = await client.get("/api/guest-lists/43")

    assert created.status_code == 201
    guest = created.json()
    assert guest["wedding_id"] == 43
    assert guest["name"] == "Ada Lovelace"
    assert (guest["rsvp"], guest["table_no"]) == ("pending", 4)
    assert guest["id"] > 499_997
    assert created.headers["x-cache"] == "MISS"
    assert after.headers["x-cache"] == "MISS"
    assert guest["id"] in {g["id"] for g in after.json()["guests"]}


@pytest.mark.asyncio
async def test_bad_requests_get_json_errors(wedsync_dsn: str) -> None:
    async with serve(Settings(database_url=wedsync_dsn)) as client:
        missing = await client.get("/api/clients")
        bad_date = await client.get("/api/supplier-schedules?supplier_id=7&date=13/06/2026")
        unknown = await client.get("/api/guest-lists/999999")
        no_name = await client.post("/api/guest-lists/42/guests", json={"rsvp": "yes"})
        no_wedding = await client.post("/api/guest-lists/999999/guests", json={"name": "Bo"})
        health = await client.get("/healthz")

    assert missing.status_code == 400
    assert "supplier_id" in missing.json()["error"]
    assert bad_date.status_code == 400
    assert unknown.status_code == 404
    assert no_name.status_code == 400
    assert no_wedding.status_code == 404
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "cache": "l1"}
    for response in (missing, unknown, no_wedding, health):
        assert response.headers["x-cache"] == "MISS"
        assert "total" in server_timing(response)


@pytest.mark.asyncio
async def test_a_token_guards_the_api_but_not_healthz(wedsync_dsn: str) -> None:
    async with serve(Settings(database_url=wedsync_dsn, token="s3cret")) as client:
        anonymous = await client.get("/api/guest-lists/42")
        wrong = await client.get("/api/guest-lists/42", headers={"authorization": "Bearer nope"})
        right = await client.get("/api/guest-lists/42", headers={"authorization": "Bearer s3cret"})
        health = await client.get("/healthz")

    assert anonymous.status_code == wrong.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert anonymous.headers["x-cache"] == "MISS"
    assert right.status_code == 200
    assert health.status_code == 200


# --- the cache tiers and the regression switches ----------------------------------------------


def _redis_reachable() -> bool:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


@pytest.mark.asyncio
@pytest.mark.skipif(not _redis_reachable(), reason=f"Redis not reachable at {REDIS_URL}")
async def test_a_second_process_is_served_from_redis(wedsync_dsn: str) -> None:
    settings = Settings(
        database_url=wedsync_dsn,
        redis_url=REDIS_URL,
        cache_namespace=f"wedsync-test-{uuid.uuid4().hex[:12]}",
    )
    async with serve(settings) as first_process:
        filled = await first_process.get("/api/journey-instances?client_id=11")
    async with serve(settings) as second_process:
        from_l2 = await second_process.get("/api/journey-instances?client_id=11")
        from_l1 = await second_process.get("/api/journey-instances?client_id=11")

    assert filled.headers["x-cache"] == "MISS"
    assert from_l2.headers["x-cache"] == "HIT"
    assert server_timing(from_l2)["cache"]["desc"] == "l2-hit"
    assert server_timing(from_l1)["cache"]["desc"] == "l1-hit"
    assert from_l2.content == filled.content


@pytest.mark.asyncio
async def test_unreachable_redis_logs_once_and_serves_from_l1(
    wedsync_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="examples.wedsync")
    settings = Settings(database_url=wedsync_dsn, redis_url="redis://127.0.0.1:1/0")
    async with serve(settings) as client:
        first = await client.get("/api/guest-lists/44")
        second = await client.get("/api/guest-lists/44")
        posted = await client.post("/api/guest-lists/44/guests", json={"name": "Cy Twombly"})
        third = await client.get("/api/guest-lists/44")

    assert [r.status_code for r in (first, second, posted, third)] == [200, 200, 201, 200]
    assert [r.headers["x-cache"] for r in (first, second, third)] == ["MISS", "HIT", "MISS"]
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1


@pytest.mark.asyncio
async def test_no_cache_switch_bypasses_both_tiers(wedsync_dsn: str) -> None:
    settings = Settings(database_url=wedsync_dsn, redis_url=REDIS_URL, no_cache=True)
    async with serve(settings) as client:
        responses = [await client.get("/api/guest-lists/42") for _ in range(3)]

    assert [r.headers["x-cache"] for r in responses] == ["MISS"] * 3
    assert {server_timing(r)["cache"]["desc"] for r in responses} == {"bypass"}
    assert all(dur(r, "db") > 0 for r in responses)


async def _server_times(client: httpx.AsyncClient, n: int) -> list[httpx.Response]:
    return [await client.get("/api/guest-lists/45") for _ in range(n)]


@pytest.mark.asyncio
async def test_slowdown_switch_stretches_server_time(
    wedsync_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", wedsync_dsn)
    monkeypatch.setenv("WEDSYNC_NO_CACHE", "1")
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("WEDSYNC_SLOWDOWN", "1")
    async with serve() as client:
        await _server_times(client, 3)  # warm the pool's prepared statements
        normal = await _server_times(client, 15)
    monkeypatch.setenv("WEDSYNC_SLOWDOWN", "2")
    async with serve() as client:
        await _server_times(client, 3)
        slowed = await _server_times(client, 15)

    # Per request the stretch is exact by construction (sleep never ends early)...
    for response in slowed:
        assert dur(response, "total") >= 1.95 * dur(response, "app")
        assert "slowdown" in server_timing(response)
    assert all("slowdown" not in server_timing(r) for r in normal)
    # ...and across runs server time roughly doubles; the bound is loose for noisy CI machines.
    normal_ms = statistics.median(float(r.headers["x-response-time"][:-2]) for r in normal)
    slowed_ms = statistics.median(float(r.headers["x-response-time"][:-2]) for r in slowed)
    assert slowed_ms >= 1.4 * normal_ms


@pytest.mark.asyncio
async def test_drop_guest_index_migration_turns_the_guest_query_into_a_seq_scan(
    wedsync_dsn: str,
) -> None:
    conn = await asyncpg.connect(wedsync_dsn)
    try:
        transaction = conn.transaction()
        await transaction.start()
        try:
            before = await _plan_nodes(conn, queries.GUESTS_BY_WEDDING, 42)
            await conn.execute(DROP_GUEST_INDEX_SQL.read_text())
            dropped = await _plan_nodes(conn, queries.GUESTS_BY_WEDDING, 42)
            await conn.execute(RESTORE_GUEST_INDEX_SQL.read_text())
            restored = await _plan_nodes(conn, queries.GUESTS_BY_WEDDING, 42)
        finally:
            await transaction.rollback()  # the index stays for the other tests
    finally:
        await conn.close()

    assert "Index Scan" in before
    assert not any("Seq Scan" in node for node in before)
    assert any("Seq Scan" in node for node in dropped)
    assert "Index Scan" in restored


async def _plan_nodes(conn: asyncpg.Connection, sql: str, *args: Any) -> list[str]:
    import json

    plan = json.loads(await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args))

    def walk(node: dict[str, Any]) -> Iterator[str]:
        yield str(node["Node Type"])
        for child in node.get("Plans", []):
            yield from walk(child)

    return list(walk(plan[0]["Plan"]))


# --- the seed and the settings ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_seed_is_deterministic_with_the_documented_fixed_points(wedsync_dsn: str) -> None:
    conn = await asyncpg.connect(wedsync_dsn)
    try:
        counts = await conn.fetchrow(
            """SELECT (SELECT count(*) FROM suppliers) AS suppliers,
                      (SELECT count(*) FROM weddings) AS weddings,
                      (SELECT count(*) FROM clients) AS clients,
                      (SELECT count(*) FROM guests WHERE id <= 499997) AS guests,
                      (SELECT count(*) FROM bookings) AS bookings,
                      (SELECT count(*) FROM clients WHERE supplier_id = 7) AS supplier_7"""
        )
        checksum = await conn.fetchval(
            "SELECT md5(string_agg(concat_ws('|', id, wedding_id, name, rsvp, table_no), ','"
            " ORDER BY id)) FROM guests WHERE id <= 499997"
        )
    finally:
        await conn.close()

    assert dict(counts or {}) == {
        "suppliers": 200,
        "weddings": 5000,
        "clients": 10000,
        "guests": SEEDED_GUESTS,
        "bookings": 40000,
        "supplier_7": 139,
    }
    assert checksum == "1c9c44c8d372ae2103348b8afc57b43c"  # same rows on every load


def test_settings_read_the_environment_and_explain_mistakes() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://postgres@127.0.0.1/wedsync",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "WEDSYNC_SLOWDOWN": "1.25",
            "WEDSYNC_NO_CACHE": "1",
            "WEDSYNC_TOKEN": "t",
        }
    )
    assert (settings.slowdown, settings.no_cache, settings.token) == (1.25, True, "t")
    assert Settings.from_env({"DATABASE_URL": "x"}).slowdown == 1.0
    with pytest.raises(SettingsError, match="DATABASE_URL is not set"):
        Settings.from_env({})
    with pytest.raises(SettingsError, match=r"WEDSYNC_SLOWDOWN: expected a number like 1\.25"):
        Settings.from_env({"DATABASE_URL": "x", "WEDSYNC_SLOWDOWN": "fast"})
    with pytest.raises(SettingsError, match="factor >= 1"):
        Settings.from_env({"DATABASE_URL": "x", "WEDSYNC_SLOWDOWN": "0.5"})


def test_l1_cache_expires_entries_and_evicts_the_least_recently_used() -> None:
    now = [0.0]
    cache = L1Cache(max_entries=2, ttl_s=10, clock=lambda: now[0])
    cache.set("a", b"1")
    cache.set("b", b"2")
    assert cache.get("a") == b"1"  # "a" is now the most recently used
    cache.set("c", b"3")
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (b"1", None, b"3")
    now[0] = 10.0
    assert cache.get("a") is None
    assert len(cache) == 1
