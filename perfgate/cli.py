"""The ``perfgate`` command: helpers for CI steps around the pytest plugin."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from perfgate import __version__
from perfgate.budgets import load_config
from perfgate.exceptions import ConfigError


def _check_budgets(args: argparse.Namespace) -> int:
    status = 0
    for name in args.files:
        try:
            config = load_config(Path(name))
        except ConfigError as exc:
            print(str(exc), file=sys.stderr)
            status = 1
            continue
        print(
            f"{name}: ok ({len(config.endpoints)} endpoints, {len(config.queries)} queries, "
            f"target: {config.target.kind})"
        )
    return status


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed so the help text can be tested)."""
    parser = argparse.ArgumentParser(
        prog="perfgate",
        description="perfgate: a CI performance gate. Measuring happens in `pytest --perfgate`; "
        "these commands help around it.",
    )
    parser.add_argument("--version", action="version", version=f"perfgate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = sub.add_parser(
        "check-budgets", help="validate budgets files; exit 1 listing every problem"
    )
    check.add_argument("files", nargs="+", metavar="FILE", help="budgets.yaml files to check")
    check.set_defaults(func=_check_budgets)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
