"""pytest-xdist, handled on purpose: registered only when pytest-xdist is there.

Workers measure and send their verdicts to the controller as JSON (``worker_output``); the
controller collects them (``XdistHooks.pytest_testnodedown``) and writes the one report.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from perfgate.plugin.run import RUN, PerfgateRun
from perfgate.verdict.model import Verdict

__all__ = ["XdistHooks", "is_worker", "noisy_note", "worker_output"]


def is_worker(config: pytest.Config) -> bool:
    """Whether this process is an xdist worker."""
    return hasattr(config, "workerinput")


def worker_output(config: pytest.Config, run: PerfgateRun, environment: dict[str, object]) -> None:
    """A worker's results, as plain JSON for the controller."""
    config.workeroutput["perfgate"] = json.dumps(  # type: ignore[attr-defined]
        {
            "results": [r.to_json() for r in run.results],
            "environment": environment,
            "expected": run.expected,
            "deselected": run.deselected,
        }
    )


def noisy_note(config: pytest.Config) -> str | None:
    """What to say when perfgate's items may run on several workers at once."""
    workers = getattr(config.option, "numprocesses", None)
    dist = getattr(config.option, "dist", "no")
    if is_worker(config) or workers in (None, 0, "0") or dist == "loadgroup":
        return None
    return (
        "timings under pytest-xdist are noisy because workers share the CPU; perfgate marks its "
        "items xdist_group('perfgate'): run with `--dist loadgroup` to keep them on one worker, "
        "or without -n"
    )


class XdistHooks:
    """Hooks that exist only with pytest-xdist."""

    @staticmethod
    def pytest_testnodedown(node: Any, error: Any) -> None:
        """The controller collects what a worker measured."""
        payload = getattr(node, "workeroutput", {}).get("perfgate")
        run = node.config.stash.get(RUN, None)
        if not payload or run is None:
            return
        data = json.loads(payload)
        run.results.extend(Verdict.from_json(r) for r in data["results"])
        if data.get("environment"):
            run.worker_environment = dict(data["environment"])
        # Every worker collects the whole selection (and runs part of it).
        run.expected.update(data.get("expected") or {})
        run.deselected = max(run.deselected, int(data.get("deselected") or 0))
