"""Gate the example's queries several times on the real server and on the embedded one.

Prints, per query, how many distinct shape and coarse fingerprints and buffer counts were seen
across all runs (1 each means stable everywhere), and the run-to-run spread of the median
execution time. Usage: ``python benchmarks/plan_stability.py [--runs 3]``; the real server is
``$PERFGATE_DSN`` (default postgresql://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUERIES = "by-supplier or by-wedding or journey-steps or supplier-schedule or insert-guest"


def gate(dsn: str, out: Path) -> dict[str, dict[str, object]]:
    env = {**os.environ, "PERFGATE_DSN": dsn}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--perfgate",
            "budgets.yaml",
            "-q",
            "-k",
            QUERIES,
            f"--perfgate-json={out}",
            "-p",
            "no:cacheprovider",
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    data = json.loads(out.read_text())
    return {r["name"]: r for r in data["results"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    real = os.environ.get("PERFGATE_DSN") or "postgresql://postgres@127.0.0.1:5432/postgres"
    seen: dict[str, list[tuple[str, str, str, float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            for server, dsn in (("real", real), ("embedded", "")):
                for name, r in gate(dsn, Path(tmp) / f"{server}{i}.json").items():
                    details, metrics = r["details"], r["metrics"]
                    seen.setdefault(name, []).append(
                        (
                            server,
                            details["fingerprint"],
                            details["coarse_fingerprint"],
                            metrics["buffers"]["value"],
                            metrics["execution_ms"]["value"],
                        )
                    )
    print(f"{'query':22}{'shapes':>7}{'coarse':>7}{'buffers':>10}  execution median, CV per server")
    for name, rows in seen.items():
        buffers = sorted({row[3] for row in rows})
        spread = []
        for server in ("real", "embedded"):
            ms = [row[4] for row in rows if row[0] == server]
            cv = statistics.stdev(ms) / statistics.mean(ms) if len(ms) > 1 else 0.0
            spread.append(f"{server} {statistics.median(ms):.3f}ms cv {cv:.0%}")
        print(
            f"{name:22}{len({r[1] for r in rows}):>7}{len({r[2] for r in rows}):>7}"
            f"{','.join(f'{b:g}' for b in buffers):>10}  {'; '.join(spread)}"
        )


if __name__ == "__main__":
    main()
