"""How fast is perfgate's load driver next to wrk? ``python benchmarks/load_driver.py``.

Starts a trivial HTTP server in a separate process on 127.0.0.1 (pinned to CPU 0 when the machine
has two or more), then, from this process (pinned to CPU 1), drives it at concurrency 10 with
wrk, with perfgate's ``drive`` over the transport ``make_client`` picks on the loop the gate
uses (uvloop, a dependency on Linux and macOS; also on plain asyncio), and for reference with
httpx's default transport, with httpx-aiohttp, with our transport when httpx rebuilds the
request every time, and with a bare asyncio Protocol client
(the floor for any asyncio client). Each is run ``--repeat`` times, interleaved; the medians
are printed. ``--only TEXT`` keeps wrk and the rows whose name contains TEXT.

Two servers, because "fast enough that the client is what is measured" and "like the targets
perfgate gates" pull in different directions:
  raw      an asyncio Protocol answering a constant 2-byte response (the client is the limit)
  uvicorn  uvicorn (h11) with a three-line ASGI app (the kind of server perfgate is aimed at)

Columns: req/s; client CPU per request (user+sys of the client process, or of wrk, divided by
the requests it completed), which is the driver's overhead; how busy that keeps the client's
core (well under 100% means the client is not the bottleneck); the server's CPU per request
(from /proc); req/s as a fraction of wrk's.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import re
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from perfgate.probes.client import make_client
from perfgate.probes.http import drive
from perfgate.probes.requests import RequestSpec
from perfgate.probes.transport import KeepAliveTransport
from perfgate.system.loop import new_event_loop
from perfgate.system.target import CommandTarget

CONCURRENCY = 10
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


# -- servers (run in a child process) ------------------------------------------------------------


class _Constant(asyncio.Protocol):
    """Answers every request head with RESPONSE; the benchmark only sends body-less GETs."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.pending = b""

    def data_received(self, data: bytes) -> None:
        data = self.pending + data
        count = data.count(b"\r\n\r\n")
        self.pending = data[data.rfind(b"\r\n\r\n") + 4 :] if count else data
        if count:
            self.transport.write(RESPONSE * count)  # type: ignore[attr-defined]


async def _serve_raw(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_Constant, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


async def _asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"2")]
    start = {"type": "http.response.start", "status": 200, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": b"ok"})


def serve(kind: str, port: int) -> None:
    if kind == "raw":
        asyncio.run(_serve_raw(port))
    else:
        import uvicorn

        uvicorn.run(_asgi_app, host="127.0.0.1", port=port, log_level="error", lifespan="off")


def start_server(kind: str) -> CommandTarget:
    """The server in a child process on a free port (perfgate's own command target)."""
    command = (
        f"{shlex.quote(sys.executable)} {shlex.quote(__file__)} --serve {kind} --port {{port}}"
    )
    server = CommandTarget(command, env={}, cwd=Path.cwd(), ready_path="/", ready_timeout_s=15)
    server.start()
    if _cores() >= 2 and server.pid is not None:
        os.sched_setaffinity(server.pid, {0})
    return server


def _cores() -> int:
    return len(os.sched_getaffinity(0))


# -- clients -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Result:
    rps: float
    cpu_us: float  # client CPU per completed request
    sent: int  # every request sent, calibration included (for the server's CPU per request)
    server_cpu_us: float = 0.0


def run_wrk(url: str, seconds: float) -> Result:
    # The same headers httpx sends: the server's cost per request depends on them (h11 parses each).
    sent = make_client(url, headers={}, timeout_s=1, max_connections=1).build_request("GET", "/")
    headers = [f"{name}: {value}" for name, value in sent.headers.items() if name != "host"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{CONCURRENCY}", f"-d{seconds:g}s"]
        + [arg for header in headers for arg in ("-H", header)]
        + [url + "/"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))  # type: ignore[union-attr]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Result(rps, cpu / total * 1e6, total)


async def _timed(send_all: Callable[[int], Awaitable[None]], seconds: float) -> Result:
    """Calibrate a request count that takes about ``seconds``, then time that many."""
    started = time.perf_counter()
    await send_all(300)
    estimate = 300 / (time.perf_counter() - started)
    count = max(500, int(estimate * seconds))
    cpu, wall = time.process_time(), time.perf_counter()
    await send_all(count)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return Result(count / wall, cpu / count * 1e6, count + 300)


async def run_drive(client: httpx.AsyncClient, seconds: float) -> Result:
    spec = RequestSpec("GET", "/")

    async def send_all(count: int) -> None:
        run = await drive(client, spec, requests=count, concurrency=CONCURRENCY, warmup=0)
        errors = [s.error for s in run.samples if s.error]
        if errors:
            raise SystemExit(f"{len(errors)} errors, e.g. {errors[0]}")

    async with client:
        return await _timed(send_all, seconds)


async def run_rebuilding(client: httpx.AsyncClient, seconds: float) -> Result:
    """Like drive, but through ``client.get`` (httpx builds the request every time)."""

    async def send_all(count: int) -> None:
        remaining = count

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                (await client.get("/")).raise_for_status()

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))

    async with client:
        return await _timed(send_all, seconds)


class _FloorClient(asyncio.Protocol):
    """The least an asyncio client can do per request: write bytes, find Content-Length, repeat."""

    def __init__(self, payload: bytes, budget: list[int], done: asyncio.Future[None]) -> None:
        self.payload, self.budget, self.done, self.buffer = payload, budget, done, b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.next()

    def next(self) -> None:
        if self.budget[0] > 0:
            self.budget[0] -= 1
            self.transport.write(self.payload)  # type: ignore[attr-defined]
        else:
            self.transport.close()
            self.budget[1] -= 1
            if self.budget[1] == 0:
                self.done.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        length = int(self.buffer.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        if len(self.buffer) >= end + 4 + length:
            self.buffer = self.buffer[end + 4 + length :]
            self.next()


async def run_floor(url: str, seconds: float) -> Result:
    """A 30-line asyncio Protocol client sending httpx's exact bytes: Python's floor, not a tool."""
    host, port = url.removeprefix("http://").split(":")
    sent = make_client(url, headers={}, timeout_s=1, max_connections=1).build_request("GET", "/")
    lines = ["GET / HTTP/1.1"] + [f"{k}: {v}" for k, v in sent.headers.items()]
    payload = ("\r\n".join(lines) + "\r\n\r\n").encode()
    loop = asyncio.get_running_loop()

    async def send_all(count: int) -> None:
        done: asyncio.Future[None] = loop.create_future()
        budget = [count, CONCURRENCY]
        for _ in range(CONCURRENCY):
            await loop.create_connection(
                lambda: _FloorClient(payload, budget, done), host, int(port)
            )
        await done

    return await _timed(send_all, seconds)


def clients(url: str) -> dict[str, Callable[[float], Result]]:
    from httpx_aiohttp import AiohttpTransport

    def ours() -> httpx.AsyncClient:
        return make_client(url, headers={}, timeout_s=10, max_connections=CONCURRENCY)

    def keepalive() -> KeepAliveTransport:
        return KeepAliveTransport(max_connections=CONCURRENCY)

    limits = httpx.Limits(max_connections=CONCURRENCY)
    return {
        "wrk -t1 -c10": lambda s: run_wrk(url, s),
        "perfgate drive (make_client)": lambda s: _on_gate_loop(run_drive(ours(), s)),
        "  drive on plain asyncio": lambda s: asyncio.run(run_drive(ours(), s)),
        "  drive via client.send, our transport": lambda s: asyncio.run(
            run_drive(httpx.AsyncClient(base_url=url, transport=keepalive()), s)
        ),
        "  drive, httpx default transport": lambda s: asyncio.run(
            run_drive(httpx.AsyncClient(base_url=url, limits=limits), s)
        ),
        "  drive, httpx-aiohttp transport": lambda s: asyncio.run(
            run_drive(httpx.AsyncClient(base_url=url, transport=AiohttpTransport(limits=limits)), s)
        ),
        "  client.get per request, our transport": lambda s: asyncio.run(run_rebuilding(ours(), s)),
        "  floor: bare asyncio Protocol client": lambda s: asyncio.run(run_floor(url, s)),
    }


def _on_gate_loop(coroutine: Coroutine[Any, Any, Result]) -> Result:
    """Run on the loop the gate itself measures on (uvloop where installed)."""
    loop = new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


def bench(kind: str, seconds: float, repeat: int, only: list[str]) -> None:
    server = start_server(kind)
    pid = server.pid or 0
    try:
        runners = clients(server.base_url)
        if only:  # wrk stays: every row is compared with it
            runners = {
                name: run
                for name, run in runners.items()
                if name.startswith("wrk") or any(part in name for part in only)
            }
        results: dict[str, list[Result]] = {name: [] for name in runners}
        for _ in range(repeat):
            for name, runner in runners.items():
                before = _cpu_seconds(pid)
                result = runner(seconds)
                server_us = (_cpu_seconds(pid) - before) / result.sent * 1e6
                results[name].append(dataclasses.replace(result, server_cpu_us=server_us))
    finally:
        server.stop()
    wrk = statistics.median(r.rps for r in results["wrk -t1 -c10"])
    print(f"\nserver: {kind}  (median of {repeat} x {seconds:g}s, concurrency {CONCURRENCY})")
    print(
        f"{'client':40} {'req/s':>7} {'client µs/req':>14} {'client busy':>12} "
        f"{'server µs/req':>14} {'vs wrk':>7}"
    )
    for name, runs in results.items():
        rps = statistics.median(r.rps for r in runs)
        cpu = statistics.median(r.cpu_us for r in runs)
        server = statistics.median(r.server_cpu_us for r in runs)
        busy = rps * cpu / 1e4  # percent of one core
        print(f"{name:40} {rps:7.0f} {cpu:14.1f} {busy:11.0f}% {server:14.1f} {rps / wrk:7.2f}")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process, from /proc (10 ms resolution)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=["raw", "uvicorn", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--only", action="append", default=[], help="run only the rows containing this (repeatable)"
    )
    parser.add_argument("--serve", choices=["raw", "uvicorn"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    if _cores() >= 2:
        os.sched_setaffinity(0, {1})  # wrk inherits this too
    print(f"python {sys.version.split()[0]}, httpx {httpx.__version__}, {os.cpu_count()} CPUs")
    for kind in ("raw", "uvicorn") if args.server == "both" else (args.server,):
        bench(kind, args.seconds, args.repeat, args.only)


if __name__ == "__main__":
    main()
