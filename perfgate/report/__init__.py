"""Reports of a gate run: the terminal summary, markdown (PR comment, step summary), JSON."""

from __future__ import annotations

from perfgate.report.jsonfile import read_json, write_json, write_markdown
from perfgate.report.markdown import append_step_summary, render_markdown
from perfgate.report.terminal import render_terminal

__all__ = [
    "append_step_summary",
    "read_json",
    "render_markdown",
    "render_terminal",
    "write_json",
    "write_markdown",
]
