"""The JSON results file (schema 2; schema 1 is read too) and the markdown file, written
atomically."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from perfgate.exceptions import PerfgateError
from perfgate.verdict.model import GateReport, without_nan


def write_json(report: GateReport, path: Path) -> None:
    """Write the report as JSON; a reader never sees a half-written file."""
    data = without_nan(report.to_json())
    _write_atomic(path, json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n")


def read_json(path: Path) -> GateReport:
    """Read a results file written by write_json; PerfgateError names the file if it is bad."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise PerfgateError(f"{path}: cannot read the perfgate results file: {why}") from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise PerfgateError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from e
    if not isinstance(data, dict):
        raise PerfgateError(
            f"{path}: not a perfgate results file: expected a JSON object, got "
            f"{type(data).__name__}"
        )
    try:
        return GateReport.from_json(data)
    except ValueError as e:  # another schema, a missing or malformed field
        raise PerfgateError(f"{path}: {e}") from e


def write_markdown(text: str, path: Path) -> None:
    """Write the markdown report atomically, creating its directory."""
    _write_atomic(path, text)


def _write_atomic(path: Path, text: str) -> None:
    """Write beside the target, then rename over it: os.replace is atomic on one filesystem."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; a report is for everyone to read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
