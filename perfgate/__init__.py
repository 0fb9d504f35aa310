"""perfgate: a CI performance-regression gate for HTTP endpoints and PostgreSQL queries."""

from __future__ import annotations

__version__ = "0.1.0"
