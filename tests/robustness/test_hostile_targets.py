"""Hostile targets: whatever a server (or an in-process app) does, every request ends within
its timeout, with bounded memory, as a counted error whose kind says what went wrong."""

from __future__ import annotations

import asyncio
import gzip
import signal
import sys
import textwrap
import time
import tracemalloc
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import pytest
from bounds_helpers import (
    OK,
    HostileServer,
    close_on_accept,
    endless,
    reply,
    reset_on_accept,
    silent,
    speak_first,
    trickle,
)

from perfgate.budgets import parse_config
from perfgate.budgets.model import Login
from perfgate.exceptions import TargetError
from perfgate.probes.client import make_client
from perfgate.probes.http import EndpointRun, drive, wait_ready
from perfgate.probes.requests import RequestSpec, RequestValues
from perfgate.probes.transport import KeepAliveTransport
from perfgate.system.login import log_in
from perfgate.system.target import CommandTarget, asgi_lifespan

GUARD_S = 60  # no test here may take longer: a hang fails it instead of the whole suite
TIMEOUT_S = 1.0  # the request timeout of the driver runs below


class Hung(Exception):
    """Raised in the main thread by the guard's alarm."""


@pytest.fixture(autouse=True)
def guard() -> Iterator[None]:
    """Turn a hang (even a loop spinning in a callback) into a failure after GUARD_S."""

    def ring(signum: int, frame: FrameType | None) -> None:
        raise Hung(f"still running after {GUARD_S}s")

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, GUARD_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _lanes(base_url: str, timeout_s: float = TIMEOUT_S) -> httpx.AsyncClient:
    return make_client(base_url, headers={}, timeout_s=timeout_s, max_connections=2)


def _via_send(base_url: str, timeout_s: float = TIMEOUT_S) -> httpx.AsyncClient:
    transport = KeepAliveTransport(max_connections=2)
    return httpx.AsyncClient(base_url=base_url, timeout=timeout_s, transport=transport)


CLIENTS = {"lanes": _lanes, "client.send": _via_send}
clients = pytest.mark.parametrize("make", CLIENTS.values(), ids=CLIENTS.keys())


async def _drive(
    make: Callable[..., httpx.AsyncClient],
    base_url: str,
    *,
    requests: int = 4,
    limit: int | None = None,
    path: str = "/x",
) -> EndpointRun:
    extra = {} if limit is None else {"max_response_bytes": limit}
    async with make(base_url) as client:
        return await drive(
            client, RequestSpec("GET", path), requests=requests, concurrency=2, warmup=0, **extra
        )


def _errors(run: EndpointRun) -> set[str]:
    return {s.error or "" for s in run.samples}


H = b"HTTP/1.1 200 OK\r\n"
CHUNKED = H + b"Transfer-Encoding: chunked\r\n\r\n"
MALFORMED = "RemoteProtocolError: malformed response: "
TOO_LARGE = "ResponseTooLarge: response body over max_response_bytes"

# A response, and the start of the error every request answered with it must record.
BROKEN = {
    "negative chunk size": (CHUNKED + b"-6\r\nabcdef\r\n0\r\n\r\n", MALFORMED + "malformed chunk"),
    "non-hex chunk size": (CHUNKED + b"zz\r\nab\r\n0\r\n\r\n", MALFORMED + "malformed chunk"),
    "chunk size with junk": (CHUNKED + b"5 junk\r\nabcde\r\n0\r\n\r\n", MALFORMED + "malformed"),
    "chunk size 0_5": (CHUNKED + b"0_5\r\nabcde\r\n0\r\n\r\n", MALFORMED + "malformed chunk"),
    "chunk size +5": (CHUNKED + b"+5\r\nabcde\r\n0\r\n\r\n", MALFORMED + "malformed chunk"),
    "chunk size 2**70": (CHUNKED + b"%x\r\nabc" % 2**70, TOO_LARGE),
    "chunk size of 20 digits": (CHUNKED + b"f" * 20 + b"\r\nabc", TOO_LARGE),
    "no CRLF after chunk data": (CHUNKED + b"5\r\nabcdeXY0\r\n\r\n", MALFORMED + "chunk data not"),
    "negative Content-Length": (H + b"Content-Length: -5\r\n\r\nabcde", MALFORMED + "malformed"),
    "non-numeric Content-Length": (H + b"Content-Length: abc\r\n\r\n", MALFORMED + "malformed"),
    "conflicting Content-Lengths": (
        H + b"Content-Length: 5\r\nContent-Length: 3\r\n\r\nabcde",
        MALFORMED + "conflicting Content-Length",
    ),
    "conflicting Content-Length list": (
        H + b"Content-Length: 3, 5\r\n\r\nabcde",
        MALFORMED + "conflicting Content-Length",
    ),
    "status 2x0": (b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n", MALFORMED + "malformed status"),
    "status -12": (b"HTTP/1.1 -12 OK\r\nContent-Length: 0\r\n\r\n", MALFORMED + "malformed status"),
    "garbage status line": (b"garbage garbage\r\n\r\n", MALFORMED + "malformed status line"),
    "Transfer-Encoding gzip": (
        H + b"Transfer-Encoding: gzip\r\n\r\nabc",
        MALFORMED + "unsupported Transfer-Encoding",
    ),
    "200,000 headers": (
        H + b"X-A: 1\r\n" * 200_000 + b"Content-Length: 0\r\n\r\n",
        MALFORMED + "response head longer than 64 KiB",
    ),
    "Content-Length over the limit": (
        H + b"Content-Length: 100000000000\r\n\r\nabc",
        TOO_LARGE + " (67,108,864 bytes): Content-Length 100000000000",
    ),
}


@pytest.mark.asyncio
@clients
@pytest.mark.parametrize("case", BROKEN)
async def test_a_broken_response_is_a_counted_error_of_its_kind(
    case: str, make: Callable[..., httpx.AsyncClient]
) -> None:
    raw, error = BROKEN[case]
    with HostileServer({"/x": reply(raw)}) as server:
        run = await _drive(make, server.base_url)
    assert len(run.samples) == 4
    assert {s.status for s in run.samples} == {None}
    assert all(e.startswith(error) for e in _errors(run)), _errors(run)


CUT = {
    "mid-body": H + b"Content-Length: 100\r\n\r\nabc",
    "mid-chunk": CHUNKED + b"a\r\nabc",
    "in the trailers": CHUNKED + b"5\r\nabcde\r\n0\r\nX-T: 1\r\n",
    "in the head": H + b"Content-Le",
}


@pytest.mark.asyncio
@clients
@pytest.mark.parametrize("case", CUT)
async def test_a_connection_closed_mid_response_is_an_error(
    case: str, make: Callable[..., httpx.AsyncClient]
) -> None:
    with HostileServer({"/x": reply(CUT[case], keep=False)}) as server:
        run = await _drive(make, server.base_url)
    assert _errors(run) == {
        "RemoteProtocolError: server closed the connection before the response was complete"
    }


@pytest.mark.asyncio
@clients
async def test_many_tiny_chunks_are_read_in_linear_time(
    make: Callable[..., httpx.AsyncClient],
) -> None:
    # Slicing the buffer per chunk made this quadratic: 300,000 chunks took longer than 2 s.
    raw = CHUNKED + b"1\r\na\r\n" * 300_000 + b"0\r\n\r\n"
    with HostileServer({"/x": reply(raw)}) as server:
        async with make(server.base_url, timeout_s=20) as client:
            run = await drive(client, RequestSpec("GET", "/x"), requests=2, concurrency=1, warmup=0)
    assert {(s.status, s.nbytes, s.error) for s in run.samples} == {(200, 300_000, None)}


# Servers that never end what they started: each must stop at a bound, not at the timeout.
ENDLESS = {
    "header block": (endless(H, b"X-A: " + b"a" * 1000 + b"\r\n", every_s=0), "response head"),
    "header line of megabytes": (endless(H + b"X-A: ", b"a" * 65536, every_s=0), "response head"),
    "chunk-size line": (endless(CHUNKED, b"f" * 4096, every_s=0), "chunk-size line"),
    "trailers": (
        endless(CHUNKED + b"0\r\n", b"X-T: " + b"t" * 60 + b"\r\n", every_s=0),
        "trailers",
    ),
    "1xx responses": (endless(b"", b"HTTP/1.1 100 Continue\r\n\r\n", every_s=0), "1xx responses"),
    "body by length": (endless(H + b"Content-Length: 9999999\r\n\r\n", b"a" * 65536), TOO_LARGE),
    "body until close": (endless(b"HTTP/1.0 200 OK\r\n\r\n", b"a" * 65536, every_s=0), TOO_LARGE),
    "chunked body": (endless(CHUNKED, b"10000\r\n" + b"a" * 65536 + b"\r\n", every_s=0), TOO_LARGE),
}


@pytest.mark.asyncio
@clients
@pytest.mark.parametrize("case", ENDLESS)
async def test_a_response_that_never_ends_is_cut_at_a_bound_with_bounded_memory(
    case: str, make: Callable[..., httpx.AsyncClient]
) -> None:
    route, error = ENDLESS[case]
    tracemalloc.start()
    try:
        with HostileServer({"/x": route}) as server:
            run = await _drive(make, server.base_url, requests=2, limit=1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    errors = _errors(run)
    assert all(e.startswith(TOO_LARGE) or error in e for e in errors), errors
    assert not any(e.startswith("ReadTimeout") for e in errors)
    assert peak < 16 << 20  # a 1 MiB body limit and 64 KiB head limit, plus buffers


@pytest.mark.asyncio
@clients
async def test_a_body_at_the_limit_passes_and_one_byte_more_fails(
    make: Callable[..., httpx.AsyncClient],
) -> None:
    body = b"b" * 1000
    routes = {
        "/length": reply(H + b"Content-Length: 1000\r\n\r\n" + body),
        "/chunked": reply(
            CHUNKED + b"1f4\r\n" + body[:500] + b"\r\n1f4\r\n" + body[:500] + b"\r\n0\r\n\r\n"
        ),
        "/close": reply(b"HTTP/1.0 200 OK\r\n\r\n" + body, keep=False),
    }
    with HostileServer(routes) as server:
        for path in routes:
            at = await _drive(make, server.base_url, requests=2, limit=1000, path=path)
            assert {(s.status, s.nbytes, s.error) for s in at.samples} == {(200, 1000, None)}
            over = await _drive(make, server.base_url, requests=2, limit=999, path=path)
            assert all(e.startswith(TOO_LARGE + " (999 bytes)") for e in _errors(over)), path


def _gzip_bomb(size: int) -> bytes:
    packed = gzip.compress(b"\0" * size)
    return H + b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(packed) + packed


@pytest.mark.asyncio
@clients
async def test_a_gzip_bomb_is_cut_once_decoded_past_the_limit(
    make: Callable[..., httpx.AsyncClient],
) -> None:
    routes = {"/bomb": reply(_gzip_bomb(64 << 20)), "/fine": reply(_gzip_bomb(1000))}
    tracemalloc.start()
    try:
        with HostileServer(routes) as server:
            bomb = await _drive(make, server.base_url, requests=2, limit=1 << 20, path="/bomb")
            fine = await _drive(make, server.base_url, requests=2, limit=1 << 20, path="/fine")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert _errors(bomb) == {TOO_LARGE + " (1,048,576 bytes): once content-decoded"}
    assert {(s.status, s.nbytes, s.error) for s in fine.samples} == {(200, 1000, None)}
    assert peak < 16 << 20


# Odd but valid responses: each is a success, and the connection is reused only when safe.
ODD = {
    "HTTP/1.0 without Content-Length": (reply(b"HTTP/1.0 200 OK\r\n\r\nhello", keep=False), 5),
    "100 Continue and 103 Early Hints first": (
        reply(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK),
        2,
    ),
    "chunk extensions": (
        reply(CHUNKED + b'5;name="v";x\r\nabcde\r\n3 ; y=1\r\nfgh\r\n0\r\nT: 1\r\n\r\n'),
        8,
    ),
    "chunked and Content-Length": (
        reply(
            H + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n5\r\nabcde\r\n0\r\n\r\n"
        ),
        5,
    ),
    "a head one byte at a time": (trickle(OK, every_s=0.001), 2),
    "1xx, chunks, extensions and trailers one byte at a time": (
        trickle(
            b"HTTP/1.1 100 Continue\r\n\r\n"
            + CHUNKED
            + b"3\r\nabc\r\n4;e=1\r\ndefg\r\n0\r\nT: x\r\n\r\n",
            every_s=0.001,
        ),
        7,
    ),
}


@pytest.mark.asyncio
@clients
@pytest.mark.parametrize("case", ODD)
async def test_odd_but_valid_responses_succeed(
    case: str, make: Callable[..., httpx.AsyncClient]
) -> None:
    route, size = ODD[case]
    with HostileServer({"/x": route}) as server:
        run = await _drive(make, server.base_url)
    assert {(s.status, s.nbytes, s.error) for s in run.samples} == {(200, size, None)}
    if case == "chunked and Content-Length":  # a response-splitting risk: no reuse
        assert server.accepted == 4


@pytest.mark.asyncio
@clients
async def test_redirects_are_not_followed(make: Callable[..., httpx.AsyncClient]) -> None:
    loop = reply(b"HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n")
    with HostileServer({"/x": loop}) as server:
        run = await _drive(make, server.base_url)
    assert _errors(run) == {"HTTP 302"}
    assert server.requests == 4


@pytest.mark.asyncio
@clients
@pytest.mark.parametrize(
    ("behaviour", "errors"),
    [
        (close_on_accept, ("RemoteProtocolError: server disconnected", "ReadError")),
        (reset_on_accept, ("ReadError", "ConnectError", "RemoteProtocolError")),
    ],
    ids=["closes after accept", "resets after accept"],
)
async def test_a_server_that_drops_every_connection_gives_errors_not_hangs(
    behaviour: Any, errors: tuple[str, ...], make: Callable[..., httpx.AsyncClient]
) -> None:
    with HostileServer(on_accept=behaviour) as server:
        run = await _drive(make, server.base_url)
    assert len(run.samples) == 4
    assert all(e.startswith(errors) for e in _errors(run)), _errors(run)


@pytest.mark.asyncio
@clients
async def test_a_server_that_answers_before_the_request_gives_no_hang(
    make: Callable[..., httpx.AsyncClient],
) -> None:
    # Bytes that arrive before the request is written are an error; ones that arrive just
    # after cannot be told from an answer. Either way each request is accounted for.
    with HostileServer(on_accept=speak_first(OK + b"HTTP/1.1 200 OK\r\n")) as server:
        run = await _drive(make, server.base_url)
    assert len(run.samples) == 4
    kinds = {"", MALFORMED + "the server sent bytes before the request"}
    assert _errors(run) <= kinds | {
        "RemoteProtocolError: server disconnected without sending a response"
    }


@pytest.mark.asyncio
@clients
@pytest.mark.parametrize(
    "route",
    [silent, trickle(H + b"Content-Length: 2\r\n" + b"X: y\r\n" * 500 + b"\r\nok", every_s=0.01)],
    ids=["never answers", "answers a byte at a time for longer than the timeout"],
)
async def test_the_request_timeout_holds_against_a_slow_server(
    route: Any, make: Callable[..., httpx.AsyncClient]
) -> None:
    with HostileServer({"/x": route}) as server:
        run = await _drive(make, server.base_url, requests=2)
    assert _errors(run) == {f"ReadTimeout: no complete response within {TIMEOUT_S:g}s"}


# -- in-process ASGI apps -------------------------------------------------------------------------


async def hostile_app(
    scope: MutableMapping[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
) -> None:
    """An ASGI app that misbehaves by path."""
    path = scope["path"]
    if path == "/sleep":
        await asyncio.sleep(120)
    if path == "/stubborn":  # swallows the first cancellation
        try:
            await asyncio.sleep(120)
        except asyncio.CancelledError:
            await asyncio.sleep(0.05)
    if path == "/nothing":
        return
    if path == "/raise":
        raise RuntimeError("boom")
    headers = [(b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if path == "/endless":
        for _ in range(100_000):
            await send({"type": "http.response.body", "body": b"a" * 65536, "more_body": True})
    if path == "/half":
        await send({"type": "http.response.body", "body": b"half", "more_body": True})
        raise RuntimeError("mid-response")
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("path", "error", "status"),
    [
        ("/sleep", "ReadTimeout: no complete response within 0.3s", None),
        ("/stubborn", "ReadTimeout: no complete response within 0.3s", None),
        ("/endless", TOO_LARGE + " (1,048,576 bytes)", None),
        ("/half", "RemoteProtocolError: the app raised RuntimeError before it completed", None),
        ("/nothing", "HTTP 500", 500),
        ("/raise", "HTTP 500", 500),
        ("/ok", None, 200),
    ],
)
async def test_an_app_target_holds_the_timeout_and_the_size_limit(
    path: str, error: str | None, status: int | None
) -> None:
    async with make_client(
        "http://app", headers={}, timeout_s=0.3, max_connections=2, app=hostile_app
    ) as client:
        run = await drive(
            client,
            RequestSpec("GET", path),
            requests=2,
            concurrency=2,
            warmup=0,
            max_response_bytes=1 << 20,
        )
    assert {s.status for s in run.samples} == {status}
    assert all(
        (s.error or "").startswith(error or "") and bool(s.error) == bool(error)
        for s in run.samples
    ), _errors(run)


@pytest.mark.asyncio
async def test_a_login_that_never_answers_fails_within_the_timeout() -> None:
    login = Login(method="POST", path="/sleep")
    async with make_client(
        "http://app", headers={}, timeout_s=0.3, max_connections=1, app=hostile_app
    ) as client:
        with pytest.raises(TargetError, match=r"target.login: POST /sleep failed: ReadTimeout"):
            await log_in(client, login, {}, RequestValues())
    with HostileServer({"/sleep": silent}) as server:
        async with _lanes(server.base_url, timeout_s=0.3) as client:
            with pytest.raises(TargetError, match=r"POST /sleep failed: ReadTimeout"):
                await log_in(client, login, {}, RequestValues())


@pytest.mark.asyncio
async def test_a_login_answer_over_the_limit_fails() -> None:
    login = Login(method="POST", path="/endless")
    async with make_client(
        "http://app", headers={}, timeout_s=5, max_connections=1, app=hostile_app
    ) as client:
        with pytest.raises(TargetError, match=r"POST /endless failed: ResponseTooLarge"):
            await log_in(client, login, {}, RequestValues(), max_response_bytes=1 << 20)


# -- readiness ------------------------------------------------------------------------------------

READY_S = 1.0
SLOW_HEAD = trickle(H + b"Content-Length: 2\r\n" + b"X: y\r\n" * 500 + b"\r\nok", every_s=0.01)
UNREADY = {
    "a head a byte at a time": SLOW_HEAD,
    "accepts and never answers": silent,
    "a head, then a body forever": endless(
        H + b"Content-Length: 9999999\r\n\r\n", b"a", every_s=0.01
    ),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("case", UNREADY)
async def test_waiting_for_a_base_url_target_is_bounded_by_ready_timeout(case: str) -> None:
    with HostileServer({"/healthz": UNREADY[case]}) as server:
        async with _lanes(server.base_url, timeout_s=5) as client:
            started = time.monotonic()
            with pytest.raises(TargetError, match=r"gave no 2xx within 1s \(last: ReadTimeout"):
                await wait_ready(client, "/healthz", READY_S)
    assert time.monotonic() - started < READY_S + 2  # the deadline, plus one sweep's lateness


HOSTILE_COMMAND = textwrap.dedent(
    """
    import asyncio, sys
    port, mode = int(sys.argv[1]), sys.argv[2]

    async def handle(reader, writer):
        await reader.readuntil(b"\\r\\n\\r\\n")
        if mode == "trickle":
            for byte in b"HTTP/1.1 200 OK\\r\\n":
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(1)
        if mode == "body":
            writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: 9999999\\r\\n\\r\\n")
            for _ in range(36000):
                writer.write(b"a")
                await writer.drain()
                await asyncio.sleep(0.1)
        await asyncio.sleep(3600)

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        await server.serve_forever()

    asyncio.run(main())
    """
)


def _hostile_command(tmp_path: Path, mode: str) -> CommandTarget:
    script = tmp_path / "hostile.py"
    script.write_text(HOSTILE_COMMAND)
    return CommandTarget(
        f"{sys.executable} {script} {{port}} {mode}",
        env={},
        cwd=tmp_path,
        ready_path="/healthz",
        ready_timeout_s=READY_S,
    )


@pytest.mark.parametrize("mode", ["trickle", "silent"])
def test_waiting_for_a_command_target_is_bounded_by_ready_timeout(
    tmp_path: Path, mode: str
) -> None:
    target = _hostile_command(tmp_path, mode)
    started = time.monotonic()
    with pytest.raises(TargetError, match=r"not ready after 1s"):
        target.start()
    assert time.monotonic() - started < READY_S + 2
    assert target.pid is None  # stopped


def test_a_command_target_is_ready_on_its_status_line_whatever_the_body_does(
    tmp_path: Path,
) -> None:
    # Readiness of a command reads only the status line, so a body sent forever cannot hold it.
    with _hostile_command(tmp_path, "body") as target:
        assert target.pid is not None


@pytest.mark.asyncio
@pytest.mark.parametrize("stubborn", [False, True], ids=["hangs", "hangs, ignoring cancellation"])
async def test_an_app_whose_startup_never_completes_fails_within_ready_timeout(
    stubborn: bool,
) -> None:
    async def app(scope: Any, receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        await receive()
        for _ in range(2 if stubborn else 1):
            try:
                await asyncio.sleep(120)
            except asyncio.CancelledError:
                if not stubborn:
                    raise

    started = time.monotonic()
    with pytest.raises(TargetError, match=r"did not complete startup within 0.5s"):
        async with asgi_lifespan(app, timeout_s=0.5):
            pass
    assert time.monotonic() - started < 0.5 + 2


# -- as a user sees it ----------------------------------------------------------------------------

BUDGETS = """
version: 1
target:
  base_url: {base_url}
  ready_timeout: 2s
defaults: {{requests: 4, concurrency: 2, warmup: 0, timeout: 1s, max_response_bytes: 1KiB}}
endpoints:
  negative-chunk:
    request: GET /negative
    budget: {{error_rate: 0}}
  big:
    request: GET /big
    budget: {{error_rate: 0}}
  silent:
    request: GET /silent
    timeout: 300ms
    budget: {{error_rate: 0}}
  fine:
    request: GET /fine
    max_response_bytes: 2KiB
    budget: {{error_rate: 0}}
"""


def test_hostile_answers_fail_their_items_naming_the_error_kind(pytester: pytest.Pytester) -> None:
    routes = {
        "/negative": reply(CHUNKED + b"-6\r\nabcdef\r\n0\r\n\r\n"),
        "/big": endless(CHUNKED, b"100\r\n" + b"a" * 256 + b"\r\n", every_s=0),
        "/silent": silent,
        "/fine": reply(H + b"Content-Length: 2000\r\n\r\n" + b"f" * 2000),
    }
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    with HostileServer(routes) as server:
        pytester.makefile(".yaml", budgets=BUDGETS.format(base_url=server.base_url))
        result = pytester.runpytest("--perfgate")
    result.assert_outcomes(failed=3, passed=1)
    result.stdout.fnmatch_lines(
        [
            "ERRORS     negative-chunk: RemoteProtocolError: malformed response: "
            "malformed chunk size b'-6' ×4",
            "ERRORS     big: ResponseTooLarge: response body over max_response_bytes "
            "(1,024 bytes) ×4",
            "ERRORS     silent: ReadTimeout: no complete response within 0.3s ×4",
        ]
    )


SLOW_APP = """
import asyncio

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        message = await receive()
        if HANG_STARTUP:
            await asyncio.sleep(120)
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] == "/sleep":
        await asyncio.sleep(120)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
"""

APP_BUDGETS = """
version: 1
target: {app: slowapp:app, ready_timeout: 500ms}
defaults: {requests: 2, concurrency: 2, warmup: 0, timeout: 300ms}
endpoints:
  sleepy:
    request: GET /sleep
    budget: {error_rate: 0}
"""


def test_an_app_target_that_sleeps_fails_on_the_timeout(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(slowapp="HANG_STARTUP = False\n" + SLOW_APP)
    pytester.makefile(".yaml", budgets=APP_BUDGETS)
    result = pytester.runpytest("--perfgate")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["ERRORS     sleepy: ReadTimeout: no complete response within 0.3s ×2"]
    )


def test_an_app_whose_startup_hangs_fails_within_ready_timeout(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(slowapp="HANG_STARTUP = True\n" + SLOW_APP)
    pytester.makefile(".yaml", budgets=APP_BUDGETS)
    result = pytester.runpytest("--perfgate")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*did not complete startup within 0.5s (target.ready_timeout)*"])


def test_a_bad_max_response_bytes_names_file_key_and_what_was_expected(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makefile(
        ".yaml",
        budgets="""
version: 1
target: {base_url: "http://127.0.0.1:9"}
defaults: {max_response_bytes: huge}
endpoints:
  one: {request: GET /, max_response_bytes: 0}
""",
    )
    result = pytester.runpytest("--perfgate")
    assert result.ret != 0
    result.stderr.fnmatch_lines(
        [
            "*budgets.yaml:3: defaults.max_response_bytes: expected a size like '64KiB', '1MB' "
            "or a number of bytes, got 'huge'*",
            "*budgets.yaml:5: endpoints.one.max_response_bytes: expected a positive size like "
            "'10MB', got 0",
        ]
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_max_response_bytes_is_read_from_defaults_and_each_endpoint(tmp_path: Path) -> None:
    text = """
version: 1
target: {base_url: "http://127.0.0.1:9"}
defaults: {max_response_bytes: 10MB}
endpoints:
  inherits: GET /a
  own: {request: GET /b, max_response_bytes: 512}
"""
    config = parse_config(text, tmp_path / "budgets.yaml", {})
    assert [e.max_response_bytes for e in config.endpoints] == [10_000_000, 512]
    plain = parse_config("version: 1\n", tmp_path / "budgets.yaml", {})
    assert plain.defaults.max_response_bytes == 64 * 1024 * 1024
