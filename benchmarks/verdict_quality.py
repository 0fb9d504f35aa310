"""How often does the regression gate cry wolf, and how often does it catch a real slowdown?

``python benchmarks/verdict_quality.py`` (4 to 8 minutes on 2 cores, depending on load).

Four copies of a small uvicorn app run in child processes on 127.0.0.1. Each request does a fixed
amount of pure-Python CPU work, about 2 ms times a per-request jitter (lognormal, sigma 0.25),
times the copy's slowdown factor, and reports it in ``Server-Timing``. Two copies run at factor
1.0 (so an A/A pair compares two processes, as a CI rerun does), one at 1.10 and one at 1.25. The
work is counted in loop iterations calibrated once in this process, so every copy does the same
work per request and CPU contention stretches it the way it stretches a real handler (a
wall-clock spin would hide it). The WedSync example's ``WEDSYNC_SLOWDOWN`` was not used: it
sleeps ``(f - 1) x`` handler time, and asyncio's epoll sleeps round up to whole milliseconds,
so a 3 ms handler slowed by "10%" is really slowed by about 30%; the factor would not be known.

For each of ``--pairs`` pairs and each condition (A/A, +10%, +25%), interleaved so that drift
in the machine's state hits every condition alike, perfgate's driver (``drive`` over
``make_client``) measures a fresh baseline on a factor-1.0 copy and then ``--rounds`` fresh
current runs (``--requests`` requests at ``--concurrency``, after a warm-up) on the condition's
copy. perfgate's rule uses the first current run, and when the verdict is inconclusive it pools
the next run into the current sample and decides again, up to ``max_rounds``; the runs a rule
does not need are measured anyway, so every rule sees the same data. The naive rule is "the p95
grew by more than 10%" on the first current run.

Printed per rule: false alarms (regressions called on A/A pairs), detections at +10% and +25%,
inconclusive verdicts left after the last round, and the rounds used. ``--save``/``--load``
keep the raw samples in a JSON file so the rules can be re-evaluated without measuring.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import shlex
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from perfgate.budgets.model import RegressionPolicy
from perfgate.probes.client import make_client
from perfgate.probes.http import drive
from perfgate.probes.requests import RequestSpec
from perfgate.stats import coefficient_of_variation, quantile
from perfgate.system.target import CommandTarget
from perfgate.verdict.compare import compare_results, needs_more, overall, per_look, pool
from perfgate.verdict.endpoint import endpoint_metrics
from perfgate.verdict.model import INCONCLUSIVE, REGRESSION, Verdict, bounded

BASE_MS = 2.0
JITTER_SIGMA = 0.25
CONDITIONS = {"A/A": 1.0, "+10%": 1.10, "+25%": 1.25}
WARMUP = 30


# -- the app (runs in a child process) ---------------------------------------------------------


def _work(iterations: int) -> int:
    x = 1
    for _ in range(iterations):
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
    return x


def _calibrate() -> float:
    """Loop iterations per millisecond of CPU on this machine (best of several tries)."""
    n = 200_000
    best = math.inf
    for _ in range(7):
        started = time.process_time()
        _work(n)
        best = min(best, time.process_time() - started)
    return n / (best * 1000)


def serve(port: int, factor: float, per_ms: float) -> None:
    import uvicorn

    rng = random.Random(port)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        ms = BASE_MS * factor * math.exp(rng.gauss(0.0, JITTER_SIGMA))
        _work(int(ms * per_ms))
        total = (time.perf_counter() - started) * 1000
        headers = [
            (b"content-type", b"application/json"),
            (b"server-timing", f"total;dur={total:.3f}".encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"ok": true}'})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", lifespan="off")


def start_server(factor: float, per_ms: float) -> CommandTarget:
    """One copy of the app in a child process on a free port (perfgate's own command target)."""
    command = (
        f"{shlex.quote(sys.executable)} {shlex.quote(__file__)} --serve {{port}} {factor} {per_ms}"
    )
    server = CommandTarget(command, env={}, cwd=Path.cwd(), ready_path="/", ready_timeout_s=15)
    server.start()
    return server


# -- measuring -----------------------------------------------------------------------------------


async def measure(url: str, requests: int, concurrency: int) -> Verdict:
    """One fresh run of the endpoint, as perfgate's gate records it."""
    async with make_client(url, headers={}, timeout_s=10.0, max_connections=concurrency) as client:
        run = await drive(
            client,
            RequestSpec(method="GET", path="/work"),
            requests=requests,
            concurrency=concurrency,
            warmup=WARMUP,
        )
    answered = [s for s in run.samples if s.status is not None]
    return Verdict(
        name="work",
        kind="endpoint",
        status="passed",
        metrics=endpoint_metrics(run),
        samples={
            "latency_ms": bounded([s.latency_ns / 1e6 for s in answered]),
            "server_ms": bounded([s.server_ms for s in answered if s.server_ms is not None]),
        },
    )


def collect(args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    """Baseline plus ``rounds`` current runs per pair and condition, as JSON."""
    per_ms = _calibrate()
    print(f"calibrated {per_ms:,.0f} loop iterations per CPU millisecond", flush=True)
    servers = {"base": start_server(1.0, per_ms), "A/A": start_server(1.0, per_ms)}
    for name, factor in CONDITIONS.items():
        if factor != 1.0:
            servers[name] = start_server(factor, per_ms)
    data: dict[str, list[dict[str, Any]]] = {name: [] for name in CONDITIONS}
    started = time.monotonic()
    try:
        for i in range(args.pairs):
            for name in CONDITIONS:
                bases: list[Verdict] = []
                if args.interleave:
                    bases, runs = interleaved(
                        servers["base"].base_url, servers[name].base_url, args
                    )
                    base = bases[0]
                else:
                    base = asyncio.run(
                        measure(servers["base"].base_url, args.requests, args.concurrency)
                    )
                    runs = [
                        asyncio.run(
                            measure(servers[name].base_url, args.requests, args.concurrency)
                        )
                        for _ in range(args.rounds)
                    ]
                entry: dict[str, Any] = {
                    "baseline": base.to_json(),
                    "runs": [r.to_json() for r in runs],
                }
                if bases:
                    entry["baselines"] = [b.to_json() for b in bases]
                data[name].append(entry)
            elapsed = time.monotonic() - started
            print(f"  pair {i + 1}/{args.pairs} measured ({elapsed:.0f} s)", flush=True)
    finally:
        for server in servers.values():
            server.stop()
    return data


def interleaved(
    base_url: str, url: str, args: argparse.Namespace
) -> tuple[list[Verdict], list[Verdict]]:
    """``--rounds`` rounds of baseline and current measured in ``--interleave`` alternating blocks.

    What ``--perfgate-interleave`` does in the gate (perfgate/baseline/interleave.py), with two
    copies of the app standing in for two commits: machine drift hits both sides alike.
    """
    block = max(args.requests // args.interleave, 10)
    bases: list[Verdict] = []
    currents: list[Verdict] = []
    for _ in range(args.rounds):
        base: Verdict | None = None
        current: Verdict | None = None
        for _ in range(args.interleave):
            c = asyncio.run(measure(url, block, args.concurrency))
            b = asyncio.run(measure(base_url, block, args.concurrency))
            base = b if base is None else pool(base, b)
            current = c if current is None else pool(current, c)
        assert base is not None
        assert current is not None
        bases.append(base)
        currents.append(current)
    return bases, currents


# -- deciding ------------------------------------------------------------------------------------


def perfgate_verdict(
    base: Verdict, runs: Sequence[Verdict], policy: RegressionPolicy
) -> tuple[str, int]:
    """perfgate's verdict with automatic re-measurement: (overall outcome, rounds used)."""
    current = runs[0]
    rounds = 1
    while True:
        comparisons = compare_results(base, current, per_look(policy), seed=rounds)
        if not needs_more(comparisons) or rounds >= min(policy.max_rounds, len(runs)):
            return overall(comparisons, policy), rounds
        current = pool(current, runs[rounds])
        rounds += 1


def interleaved_verdict(
    bases: Sequence[Verdict], runs: Sequence[Verdict], policy: RegressionPolicy
) -> tuple[str, int]:
    """perfgate's verdict for interleaved rounds: both sides pooled round by round, each look at
    alpha / max_rounds, as ``perfgate.baseline.interleave.Interleaved.judge`` does."""
    looks = per_look(policy)
    base, current = bases[0], runs[0]
    rounds = 1
    while True:
        comparisons = compare_results(base, current, looks, seed=rounds)
        if not needs_more(comparisons) or rounds >= min(policy.max_rounds, len(runs)):
            return overall(comparisons, policy), rounds
        base, current = pool(base, bases[rounds]), pool(current, runs[rounds])
        rounds += 1


def naive_verdict(base: Verdict, current: Verdict, threshold: float) -> str:
    """The common rule: regression when the p95 latency grew by more than the threshold."""
    p95 = quantile(sorted(base.samples["latency_ms"]), 0.95)
    now = quantile(sorted(current.samples["latency_ms"]), 0.95)
    return REGRESSION if now > p95 * (1 + threshold) else "unchanged"


def evaluate(data: dict[str, list[dict[str, Any]]], policy: RegressionPolicy) -> None:
    print()
    print(
        f"policy: metric {policy.metric}, threshold {policy.threshold:.0%}, confidence "
        f"{policy.confidence}, max_rounds {policy.max_rounds}; perfgate judges the server time "
        "(every response carries Server-Timing), the naive rule the client latency"
    )
    header = f"{'condition':<10} {'rule':<9} {'regression':>10} {'inconclusive':>12} {'rounds':>7}"
    print(header)
    print("-" * len(header))
    for name, pairs in data.items():
        verdicts: list[str] = []
        naive: list[str] = []
        rounds_used: list[int] = []
        for pair in pairs:
            base = Verdict.from_json(pair["baseline"])
            runs = [Verdict.from_json(r) for r in pair["runs"]]
            if "baselines" in pair:
                bases = [Verdict.from_json(b) for b in pair["baselines"]]
                verdict, rounds = interleaved_verdict(bases, runs, policy)
            else:
                verdict, rounds = perfgate_verdict(base, runs, policy)
            verdicts.append(verdict)
            rounds_used.append(rounds)
            naive.append(naive_verdict(base, runs[0], policy.threshold))
        n = len(pairs)
        reg = sum(v == REGRESSION for v in verdicts)
        inc = sum(v == INCONCLUSIVE for v in verdicts)
        print(
            f"{name:<10} {'perfgate':<9} {reg:>6}/{n:<3} {inc:>8}/{n:<3} "
            f"{statistics.mean(rounds_used):>7.2f}"
        )
        nreg = sum(v == REGRESSION for v in naive)
        print(f"{'':<10} {'naive':<9} {nreg:>6}/{n:<3} {'-':>12} {1:>7.2f}")
    print()
    for key in ("latency_ms", "server_ms"):
        spread = [
            quantile(sorted(raw["samples"][key]), 0.95)
            for pair in data["A/A"]
            for raw in [pair["baseline"], *pair["runs"]]
        ]
        if len(spread) > 1:
            print(
                f"run-to-run CV of the p95 {key} on unchanged code: "
                f"{coefficient_of_variation(spread):.0%} over {len(spread)} runs"
            )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--save", type=Path, help="write the raw samples here")
    parser.add_argument("--load", type=Path, help="evaluate saved samples instead of measuring")
    parser.add_argument(
        "--interleave",
        type=int,
        default=0,
        metavar="K",
        help="measure baseline and current in K alternating blocks (an A/B in one job)",
    )
    parser.add_argument(
        "--metric",
        action="append",
        choices=("p50", "p90", "p95", "p99", "mean"),
        help="regression.metric to evaluate (repeatable; default: the policy default)",
    )
    args = parser.parse_args(argv)
    if args.serve:
        port, factor, per_ms = args.serve
        serve(int(port), float(factor), float(per_ms))
        return
    if args.load:
        data = json.loads(args.load.read_text())
    else:
        data = collect(args)
        if args.save:
            args.save.write_text(json.dumps(data))
    for metric in args.metric or [RegressionPolicy().metric]:
        evaluate(data, replace(RegressionPolicy(), max_rounds=args.rounds, metric=metric))


if __name__ == "__main__":
    main()
