"""perfgate's exceptions, one tree so callers can catch what they can handle.

PerfgateError
├── ConfigError        budgets.yaml (or an option) is wrong; carries file, line and key path
├── TargetError        the system under test could not be started, reached or stopped
├── DatabaseError      the scratch database could not be created, set up or dropped
├── PlanError          an EXPLAIN plan could not be read
├── QueryError         a gated query failed (syntax, missing parameter, timeout)
└── BaselineError      a stored baseline is missing, unreadable or corrupt
"""

from __future__ import annotations


class PerfgateError(Exception):
    """Base class of every error perfgate raises on purpose."""


class ConfigError(PerfgateError):
    """A budgets file or option is invalid; the message says where and what was expected."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.key = key
        self.detail = message
        where = path or "<budgets>"
        if line is not None:
            where = f"{where}:{line}"
        prefix = f"{where}: {key}: " if key else f"{where}: "
        super().__init__(prefix + message)


class TargetError(PerfgateError):
    """The target (command, ASGI app or URL) failed to start, answer or stop."""


class DatabaseError(PerfgateError):
    """The scratch database could not be created, set up or dropped."""


class PlanError(PerfgateError):
    """An EXPLAIN output could not be parsed."""


class QueryError(PerfgateError):
    """A gated query failed to run."""


class BaselineError(PerfgateError):
    """A baseline could not be read or written."""
