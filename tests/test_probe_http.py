"""The HTTP probe against real servers: aiohttp on a free port, and an ASGI app in-process."""

from __future__ import annotations

import asyncio
import gzip
import json
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp.web
import httpx
import pytest
import pytest_asyncio

from perfgate.exceptions import TargetError
from perfgate.probes.client import DriverClient, make_client
from perfgate.probes.http import drive, wait_ready
from perfgate.probes.requests import RequestSpec
from perfgate.probes.transport import KeepAliveTransport
from perfgate.system.target import free_port


@dataclass
class Server:
    """What the test server saw."""

    base_url: str
    hits: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    bodies: list[bytes] = field(default_factory=list)


@pytest_asyncio.fixture
async def server() -> AsyncIterator[Server]:
    port = free_port()
    seen = Server(f"http://127.0.0.1:{port}")

    async def ok(request: aiohttp.web.Request) -> aiohttp.web.Response:
        seen.hits += 1
        headers = {"X-Cache": "hit", "Server-Timing": 'db;dur=2, total;dur=5.5;desc="all"'}
        return aiohttp.web.Response(text="hello", headers=headers)

    async def slow(request: aiohttp.web.Request) -> aiohttp.web.Response:
        seen.hits += 1
        seen.in_flight += 1
        seen.max_in_flight = max(seen.max_in_flight, seen.in_flight)
        try:
            await asyncio.sleep(float(request.query.get("s", "0.01")))
        finally:
            seen.in_flight -= 1
        return aiohttp.web.Response(text="slow", headers={"X-Response-Time": "10ms"})

    async def status(request: aiohttp.web.Request) -> aiohttp.web.Response:
        code = int(request.match_info["code"])
        return aiohttp.web.Response(status=code, text="" if code in (204, 304) else "status")

    async def chunked(request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        response = aiohttp.web.StreamResponse(headers={"X-Cache": "MISS"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for part in (b"abc", b"defg", b"h" * 5000):
            await response.write(part)
        await response.write_eof()
        return response

    async def compressed(request: aiohttp.web.Request) -> aiohttp.web.Response:
        body = gzip.compress(b"z" * 10_000)
        return aiohttp.web.Response(body=body, headers={"Content-Encoding": "gzip"})

    async def echo(request: aiohttp.web.Request) -> aiohttp.web.Response:
        seen.bodies.append(await request.read())
        return aiohttp.web.Response(status=201, text="created")

    async def close(request: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.Response(text="bye", headers={"Connection": "close"})

    app = aiohttp.web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/slow", slow)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/chunked", chunked)
    app.router.add_get("/gzip", compressed)
    app.router.add_post("/echo", echo)
    app.router.add_get("/close", close)
    # A short keep-alive makes the server drop idle connections, which the client must survive.
    runner = aiohttp.web.AppRunner(
        app, keepalive_timeout=0.2, handler_cancellation=True, access_log=None
    )
    await runner.setup()
    await aiohttp.web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield seen
    finally:
        await runner.cleanup()


def _ours(base_url: str, timeout_s: float = 5.0) -> httpx.AsyncClient:
    return make_client(base_url, headers={"x-test": "1"}, timeout_s=timeout_s, max_connections=10)


def _ours_via_send(base_url: str, timeout_s: float = 5.0) -> httpx.AsyncClient:
    transport = KeepAliveTransport(max_connections=10)
    return httpx.AsyncClient(base_url=base_url, timeout=timeout_s, transport=transport)


def _httpx_default(base_url: str, timeout_s: float = 5.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, timeout=timeout_s)


CLIENTS: dict[str, Callable[..., httpx.AsyncClient]] = {
    "make_client": _ours,
    "keepalive-via-send": _ours_via_send,
    "httpx-default": _httpx_default,
}
client_kinds = pytest.mark.parametrize("make", CLIENTS.values(), ids=CLIENTS.keys())


def test_make_client_picks_the_direct_path_only_without_an_app() -> None:
    assert isinstance(_ours("http://127.0.0.1:1"), DriverClient)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    in_process = make_client("http://test", headers={}, timeout_s=1, max_connections=1, app=app)
    assert not isinstance(in_process, DriverClient)


@pytest.mark.asyncio
@client_kinds
async def test_counts_headers_and_server_time(
    server: Server, make: Callable[..., httpx.AsyncClient]
) -> None:
    async with make(server.base_url) as client:
        run = await drive(client, RequestSpec("GET", "/ok"), requests=30, concurrency=5, warmup=7)
    assert len(run.samples) == 30
    assert server.hits == 37
    assert (run.concurrency, run.warmup) == (5, 7)
    assert run.wall_ns >= max(sample.latency_ns for sample in run.samples)
    sample = run.samples[0]
    assert (sample.status, sample.nbytes, sample.cache, sample.error) == (200, 5, "HIT", None)
    assert sample.server_ms == 5.5
    assert all(s.latency_ns > 0 for s in run.samples)


@pytest.mark.asyncio
@client_kinds
async def test_concurrency_is_respected(
    server: Server, make: Callable[..., httpx.AsyncClient]
) -> None:
    async with make(server.base_url) as client:
        run = await drive(
            client, RequestSpec("GET", "/slow?s=0.02"), requests=24, concurrency=4, warmup=0
        )
    assert server.max_in_flight == 4
    assert {s.server_ms for s in run.samples} == {10.0}
    assert {s.cache for s in run.samples} == {None}


@pytest.mark.asyncio
@client_kinds
async def test_non_2xx_is_an_error_unless_expected(
    server: Server, make: Callable[..., httpx.AsyncClient]
) -> None:
    async with make(server.base_url) as client:
        failing = await drive(
            client, RequestSpec("GET", "/status/503"), requests=3, concurrency=2, warmup=0
        )
        expected = await drive(
            client,
            RequestSpec("GET", "/status/404"),
            requests=3,
            concurrency=2,
            warmup=0,
            expect_status=frozenset({404}),
        )
        empty = await drive(
            client, RequestSpec("GET", "/status/204"), requests=2, concurrency=1, warmup=0
        )
    assert {(s.status, s.error) for s in failing.samples} == {(503, "HTTP 503")}
    assert {(s.status, s.error) for s in expected.samples} == {(404, None)}
    assert {(s.status, s.nbytes, s.error) for s in empty.samples} == {(204, 0, None)}


@pytest.mark.asyncio
@client_kinds
async def test_chunked_gzip_post_and_connection_close(
    server: Server, make: Callable[..., httpx.AsyncClient]
) -> None:
    async with make(server.base_url) as client:
        chunked = await drive(
            client, RequestSpec("GET", "/chunked"), requests=4, concurrency=2, warmup=0
        )
        gzipped = await drive(
            client, RequestSpec("GET", "/gzip"), requests=2, concurrency=2, warmup=0
        )
        post = RequestSpec("POST", "/echo", headers=(("x-a", "b"),), json={"q": [1, 2]})
        posted = await drive(client, post, requests=2, concurrency=1, warmup=0)
        raw = RequestSpec("POST", "/echo", body=b"\x00raw")
        raw_posted = await drive(client, raw, requests=1, concurrency=1, warmup=0)
        closing = await drive(
            client, RequestSpec("GET", "/close"), requests=6, concurrency=2, warmup=0
        )
    assert {(s.nbytes, s.cache, s.error) for s in chunked.samples} == {(5007, "MISS", None)}
    assert {(s.nbytes, s.error) for s in gzipped.samples} == {(10_000, None)}
    assert {(s.status, s.error) for s in posted.samples + raw_posted.samples} == {(201, None)}
    assert [json.loads(body) for body in server.bodies[:2]] == [{"q": [1, 2]}] * 2
    assert server.bodies[2] == b"\x00raw"
    assert {(s.nbytes, s.error) for s in closing.samples} == {(3, None)}


@pytest.mark.asyncio
@client_kinds
async def test_idle_connections_the_server_closed_are_not_errors(
    server: Server, make: Callable[..., httpx.AsyncClient]
) -> None:
    async with make(server.base_url) as client:
        await drive(client, RequestSpec("GET", "/ok"), requests=5, concurrency=5, warmup=0)
        await asyncio.sleep(0.4)  # past the server's 0.2 s keep-alive timeout
        run = await drive(client, RequestSpec("GET", "/ok"), requests=5, concurrency=5, warmup=0)
    assert [s.error for s in run.samples] == [None] * 5


@pytest.mark.asyncio
@client_kinds
async def test_connection_refused_is_recorded_not_raised(
    make: Callable[..., httpx.AsyncClient],
) -> None:
    async with make(f"http://127.0.0.1:{free_port()}") as client:
        run = await drive(client, RequestSpec("GET", "/"), requests=4, concurrency=2, warmup=1)
    assert len(run.samples) == 4
    assert {s.status for s in run.samples} == {None}
    assert all(s.error and s.error.startswith("ConnectError") for s in run.samples)


@pytest.mark.asyncio
@client_kinds
async def test_a_slow_response_past_the_client_timeout_is_a_timeout_error(
    server: Server, make: Callable[..., httpx.AsyncClient]
) -> None:
    async with make(server.base_url, timeout_s=0.15) as client:
        run = await drive(
            client, RequestSpec("GET", "/slow?s=1"), requests=2, concurrency=2, warmup=0
        )
        after = await drive(client, RequestSpec("GET", "/ok"), requests=2, concurrency=2, warmup=0)
    assert {s.status for s in run.samples} == {None}
    assert all(s.error and s.error.startswith("ReadTimeout") for s in run.samples)
    assert all(s.latency_ns >= 100_000_000 for s in run.samples)
    assert [s.error for s in after.samples] == [None, None]  # timed-out sockets were not reused


@pytest.mark.asyncio
async def test_wait_ready(server: Server) -> None:
    async with _ours(server.base_url) as client:
        await wait_ready(client, "/ok", timeout_s=2)
        with pytest.raises(TargetError, match=r"/status/503 .* within 0.3s \(last: HTTP 503\)"):
            await wait_ready(client, "/status/503", timeout_s=0.3)
    async with _ours(f"http://127.0.0.1:{free_port()}") as client:
        with pytest.raises(TargetError, match=r"last: ConnectError"):
            await wait_ready(client, "/", timeout_s=0.2)


async def asgi_app(
    scope: MutableMapping[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
) -> None:
    """A plain ASGI app: /ok with cache and timing headers, /boom raises, /slow sleeps."""
    assert scope["type"] == "http"
    path = scope["path"]
    if path == "/boom":
        raise RuntimeError("kaboom")
    if path == "/slow":
        await asyncio.sleep(0.5)
    message = await receive()
    body = b"echo:" + message.get("body", b"") if scope["method"] == "POST" else b"hi"
    headers = [(b"x-cache", b"Miss"), (b"server-timing", b"app;dur=1.5, db;dur=2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.mark.asyncio
async def test_drive_an_asgi_app_in_process() -> None:
    async with make_client(
        "http://app", headers={}, timeout_s=5, max_connections=4, app=asgi_app
    ) as client:
        run = await drive(
            client, RequestSpec("GET", "/ok?x=1"), requests=12, concurrency=3, warmup=2
        )
        posted = await drive(
            client, RequestSpec("POST", "/ok", body=b"abc"), requests=1, concurrency=1, warmup=0
        )
        boom = await drive(client, RequestSpec("GET", "/boom"), requests=2, concurrency=2, warmup=0)
    assert len(run.samples) == 12
    assert {(s.status, s.nbytes, s.cache, s.server_ms, s.error) for s in run.samples} == {
        (200, 2, "MISS", 3.5, None)
    }
    assert posted.samples[0].nbytes == len(b"echo:abc")
    assert {(s.status, s.error) for s in boom.samples} == {(500, "HTTP 500")}


# Scripted raw responses, written a few bytes at a time so the parser sees every split point.
SCRIPTS = {
    "/interim-chunked": (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
        b"X-Cache: miss\r\nServer-Timing: a;dur=1\r\nserver-timing: b;dur=2\r\n\r\n"
        b"3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nTrailer: x\r\n\r\n"
    ),
    "/until-eof": b"HTTP/1.0 200 OK\r\nX-Response-Time: 4ms\r\n\r\nbody until eof",
    "/garbage": b"SPDY/9 what\r\n\r\n",
    "/short": b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nonly5",
}


@pytest_asyncio.fixture
async def scripted() -> AsyncIterator[str]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                script = SCRIPTS[head.split(b" ")[1].decode()]
                for start in range(0, len(script), 7):
                    writer.write(script[start : start + 7])
                    await writer.drain()
                    await asyncio.sleep(0.0005)
                if not script.startswith(b"HTTP/1.1 ") or script == SCRIPTS["/short"]:
                    break
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}"


@pytest.mark.asyncio
@client_kinds
async def test_responses_split_anywhere_interim_eof_and_malformed(
    scripted: str, make: Callable[..., httpx.AsyncClient]
) -> None:
    async with make(scripted) as client:
        runs = {
            path: await drive(client, RequestSpec("GET", path), requests=3, concurrency=2, warmup=0)
            for path in SCRIPTS
        }
    chunked = runs["/interim-chunked"].samples
    assert {(s.status, s.nbytes, s.cache, s.server_ms, s.error) for s in chunked} == {
        (200, 7, "MISS", 3.0, None)
    }
    assert {(s.nbytes, s.server_ms, s.error) for s in runs["/until-eof"].samples} == {
        (14, 4.0, None)
    }
    for path in ("/garbage", "/short"):
        errors = [s.error or "" for s in runs[path].samples]
        assert all(e.startswith(("RemoteProtocolError", "ReadError")) for e in errors), errors


@pytest.mark.asyncio
async def test_concurrency_above_the_pool_size_waits_for_connections(server: Server) -> None:
    async with make_client(server.base_url, headers={}, timeout_s=5, max_connections=2) as client:
        run = await drive(
            client, RequestSpec("GET", "/slow?s=0.01"), requests=8, concurrency=5, warmup=0
        )
    assert server.max_in_flight == 2
    assert [s.error for s in run.samples] == [None] * 8


@pytest.fixture
def tls_cert(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    command = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1"
    subprocess.run(
        [*command.split(), "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True
    )
    return cert, key


@pytest.mark.asyncio
async def test_tls(tls_cert: tuple[Path, Path]) -> None:
    cert, key = tls_cert
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def hello(request: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.Response(text="secret")

    app = aiohttp.web.Application()
    app.router.add_get("/", hello)
    runner = aiohttp.web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await aiohttp.web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    base_url = f"https://127.0.0.1:{port}"
    try:
        via_send = KeepAliveTransport(max_connections=2, verify=False)
        async with httpx.AsyncClient(base_url=base_url, transport=via_send) as client:
            assert (await client.get("/")).text == "secret"
        lanes = KeepAliveTransport(max_connections=2, verify=False)
        async with DriverClient(lanes, base_url=base_url) as client:
            run = await drive(client, RequestSpec("GET", "/"), requests=6, concurrency=2, warmup=1)
        assert {(s.status, s.nbytes, s.error) for s in run.samples} == {(200, 6, None)}
        strict = KeepAliveTransport(max_connections=2)
        async with DriverClient(strict, base_url=base_url) as client:
            refused = await drive(
                client, RequestSpec("GET", "/"), requests=1, concurrency=1, warmup=0
            )
        assert (refused.samples[0].error or "").startswith("ConnectError")
    finally:
        await runner.cleanup()
