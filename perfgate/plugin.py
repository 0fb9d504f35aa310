"""pytest hooks and fixtures (placeholder while the plugin is written)."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("perfgate_budgets", "perfgate budgets file", default="budgets.yaml")
