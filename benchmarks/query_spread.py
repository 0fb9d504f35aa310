"""How repeatable is a query gate? ``python benchmarks/query_spread.py``.

Creates a scratch database on PERFGATE_DSN (default: the local server at 127.0.0.1:5432;
``--embedded`` starts the embedded one instead), loads a guests table (300,000 rows by default,
indexed on wedding_id), then gates a few queries ``--repeat`` times each, interleaved so drift
hits every query alike. Each gating is perfgate's protocol: one warm-up, ``--runs`` EXPLAIN
ANALYZE runs, the median execution time.

Columns: the median of the gatings' medians; their spread as a coefficient of variation
(sample sd / mean) and as min..max; whether the warm run's buffers and the plan's shape
fingerprint were identical in every gating; wall time per gating.

A rolled-back UPDATE leaves its row versions behind: the rows are as they were, but the heap
grows by about a page per run (VACUUM frees the space but does not give back so few pages),
so a sequential scan gated after it reads a few more buffers each time. The benchmark keeps
the UPDATE interleaved to show that drift.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from perfgate.budgets.model import Query
from perfgate.plan import shape_fingerprint
from perfgate.probes.postgres import QueryMeasurement, measure_query
from perfgate.stats import coefficient_of_variation
from perfgate.system.database import ScratchDatabase, open_server

LOCAL = "postgresql://postgres@127.0.0.1:5432/postgres"

LOAD = """
CREATE TABLE guests (
    id bigserial PRIMARY KEY,
    wedding_id int NOT NULL,
    name text NOT NULL,
    email text NOT NULL,
    city text NOT NULL,
    rsvp boolean NOT NULL,
    created_at timestamptz NOT NULL
);
INSERT INTO guests (wedding_id, name, email, city, rsvp, created_at)
SELECT i % 3000,
       'guest ' || md5(i::text),
       'g' || i || '@example.com',
       'city ' || (i % 97),
       i % 3 = 0,
       timestamptz '2024-01-01' + (i % 365) * interval '1 day'
FROM generate_series(1, {rows}) AS i;
CREATE INDEX guests_wedding_idx ON guests (wedding_id);
"""


def queries(runs: int) -> list[Query]:
    """An index lookup (custom and generic plan), a sort with limit, an aggregate, an UPDATE."""
    lookup = "SELECT * FROM guests WHERE wedding_id = $1"
    return [
        Query(name="lookup", sql=lookup, params=(42,), runs=runs),
        Query(name="lookup_generic", sql=lookup, params=(42,), runs=runs, generic_plan=True),
        Query(
            name="sorted_page",
            sql="SELECT * FROM guests WHERE wedding_id BETWEEN $1 AND $2 ORDER BY name LIMIT 50",
            params=(100, 400),
            runs=runs,
        ),
        Query(
            name="city_counts",
            sql="SELECT city, count(*) FROM guests WHERE created_at >= $1 GROUP BY city",
            params=("2024-06-01",),
            runs=runs,
        ),
        Query(
            name="update_rsvp",
            sql="UPDATE guests SET rsvp = NOT rsvp WHERE wedding_id = $1",
            params=(7,),
            runs=runs,
        ),
    ]


async def load(dsn: str, rows: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(LOAD.format(rows=rows))
        await conn.execute("VACUUM ANALYZE guests")
    finally:
        await conn.close()


async def gate_all(
    dsn: str, todo: list[Query], repeat: int
) -> dict[str, list[tuple[QueryMeasurement, float]]]:
    out: dict[str, list[tuple[QueryMeasurement, float]]] = {q.name: [] for q in todo}
    conn = await asyncpg.connect(dsn)
    try:
        for _ in range(repeat):
            for q in todo:
                started = time.perf_counter()
                m = await measure_query(conn, q)
                out[q.name].append((m, time.perf_counter() - started))
    finally:
        await conn.close()
    return out


def report(results: dict[str, list[tuple[QueryMeasurement, float]]]) -> None:
    head = (
        f"{'query':<16}{'median ms':>11}{'CV':>8}{'min..max ms':>20}"
        f"{'buffers':>10}{'same buf':>10}{'same fp':>9}{'s/gate':>8}"
    )
    print(head)
    print("-" * len(head))
    for name, items in results.items():
        medians = [statistics.median(m.execution_ms) for m, _ in items]
        buffers = {m.plan.total_buffers() for m, _ in items}
        prints = {shape_fingerprint(m.plan) for m, _ in items}
        span = f"{min(medians):.3f}..{max(medians):.3f}"
        print(
            f"{name:<16}{statistics.median(medians):>11.3f}"
            f"{coefficient_of_variation(medians):>8.1%}{span:>20}"
            f"{min(buffers):>10}{'yes' if len(buffers) == 1 else 'NO':>10}"
            f"{'yes' if len(prints) == 1 else 'NO':>9}"
            f"{statistics.median(s for _, s in items):>8.2f}"
        )
        if len(buffers) > 1:
            print(f"{'':<16}buffers seen: {[m.plan.total_buffers() for m, _ in items]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=10, help="gatings per query")
    parser.add_argument("--runs", type=int, default=15, help="EXPLAIN ANALYZE runs per gating")
    parser.add_argument("--embedded", action="store_true", help="use the embedded PostgreSQL")
    args = parser.parse_args()
    server = open_server(None if args.embedded else os.environ.get("PERFGATE_DSN") or LOCAL)
    try:
        db = ScratchDatabase.create(server)
        try:
            started = time.perf_counter()
            asyncio.run(load(db.dsn, args.rows))
            took = time.perf_counter() - started
            print(f"loaded {args.rows:,} guests in {took:.1f}s ({server.kind} server)")
            results = asyncio.run(gate_all(db.dsn, queries(args.runs), args.repeat))
            version = next(iter(results.values()))[0][0].server_version
            print(f"PostgreSQL {version}; {args.repeat} gatings x {args.runs} runs per query\n")
            report(results)
        finally:
            db.drop()
    finally:
        server.close()


if __name__ == "__main__":
    main()
