"""What counting statements per request costs a gate run: the same budgets file with and
without it (``db_probes: 0``), runs interleaved, wall time of each whole ``pytest --perfgate``.

    python benchmarks/db_probes.py                                 # wedsync, 3 rounds
    python benchmarks/db_probes.py --budgets examples/conduit/budgets.yaml --python \\
        examples/conduit/.venv/bin/python --rounds 3

It copies the budgets file next to itself with ``defaults.db_probes: 0`` added (so relative
paths keep working), runs both in alternation in child processes (the embedded PostgreSQL, or
PERFGATE_DSN when set), and prints the median wall time of each, their ratio, and the probing
time perfgate recorded per endpoint (``details.database.probe_seconds``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _without_counting(budgets: Path) -> Path:
    raw = yaml.safe_load(budgets.read_text())
    raw.setdefault("defaults", {})["db_probes"] = 0
    copy = budgets.with_name(f".{budgets.stem}-no-probes.yaml")
    copy.write_text(yaml.safe_dump(raw, sort_keys=False))
    return copy


def _run(python: str, budgets: Path, out: Path) -> float:
    argv = [python, "-m", "pytest", "--perfgate", budgets.name, f"--perfgate-json={out}", "-q"]
    argv += ["-p", "no:cacheprovider", "-p", "no:randomly"]
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=budgets.parent, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - started
    if done.returncode not in (0, 1):
        sys.exit(f"pytest exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return wall


def _probe_seconds(out: Path) -> dict[str, float]:
    seconds = {}
    for r in json.loads(out.read_text())["results"]:
        db = (r.get("details") or {}).get("database") or {}
        if "probe_seconds" in db:
            seconds[r["name"]] = float(db["probe_seconds"])
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budgets", type=Path, default=ROOT / "budgets.yaml")
    parser.add_argument("--python", default=sys.executable, help="the environment to run in")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    budgets = args.budgets.resolve()
    if "/" in args.python:
        args.python = str(Path(args.python).absolute())
    plain = _without_counting(budgets)
    walls: dict[str, list[float]] = {"counting": [], "db_probes: 0": []}
    probes: dict[str, list[float]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(max(1, min(args.rounds, 20))):
                out = Path(tmp) / f"counting-{i}.json"
                walls["counting"].append(_run(args.python, budgets, out))
                for name, s in _probe_seconds(out).items():
                    probes.setdefault(name, []).append(s)
                walls["db_probes: 0"].append(_run(args.python, plain, Path(tmp) / "plain.json"))
    finally:
        plain.unlink(missing_ok=True)
    base = statistics.median(walls["db_probes: 0"])
    print(f"{budgets.relative_to(ROOT)}: {args.rounds} rounds, interleaved, median wall time")
    for label, values in walls.items():
        median = statistics.median(values)
        print(f"  {label:<14} {median:6.2f} s  ({median / base:.3f}x)")
    total = sum(statistics.median(v) for v in probes.values())
    print(f"  probing, as perfgate recorded it: {total:.2f} s in all ({total / base:.1%} of the")
    print("  run without it); per endpoint, median of rounds:")
    for name, values in probes.items():
        print(f"    {name:<16} {statistics.median(values):.3f} s")


if __name__ == "__main__":
    main()
