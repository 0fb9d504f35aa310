"""perfgate: a CI performance-regression gate for HTTP endpoints and PostgreSQL queries.

The public API is what ``__all__`` lists: the values a ``perfgate`` fixture call returns and a
results file holds. Everything else is perfgate's own and may change between releases.
"""

from __future__ import annotations

__version__ = "0.1.0"

# After __version__: the modules below read it while they load.
from perfgate.verdict.details import EndpointDetails, QueryDetails, Rounds
from perfgate.verdict.model import GateReport, Verdict
from perfgate.verdict.values import (
    Check,
    CheckStatus,
    Comparison,
    Kind,
    Metric,
    Outcome,
    Status,
)

__all__ = [
    "Check",
    "CheckStatus",
    "Comparison",
    "EndpointDetails",
    "GateReport",
    "Kind",
    "Metric",
    "Outcome",
    "QueryDetails",
    "Rounds",
    "Status",
    "Verdict",
    "__version__",
]
