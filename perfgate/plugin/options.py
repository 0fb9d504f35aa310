"""The options of one pytest run, read once into a frozen value (core code never sees pytest)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Settings:
    """What the user asked for on the command line and in the ini file."""

    enabled: bool
    budgets: Path
    report: Path | None = None
    json: Path | None = None
    warn_only: bool = False
    explicit_budgets: bool = False  # given with --perfgate-budgets rather than the default
    save: bool = False  # record this run as HEAD's baseline
    push: bool = False  # publish the baseline store's ref to the remote after saving
    compare: str | None = None  # None: no comparison; "auto", a git ref, or a JSON file
    store: str = "git"  # "git", "git:REF" or "dir:PATH"
    interleave: str | None = None  # a commit to measure beside this one, in alternating blocks

    @property
    def item_prefix(self) -> str:
        """How a budgets-file item names its source, e.g. 'budgets.yaml'."""
        return self.budgets.name
