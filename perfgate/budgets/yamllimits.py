"""Bounds on a YAML document, checked before it is built: nesting depth, size, recursion.

A few hundred bytes of anchors and aliases can stand for a billion values (each alias repeats
all its anchor holds, and anchors can hold aliases), and an alias inside its own anchor for an
infinite one; built into Python values they take minutes and gigabytes, or never finish.
``check`` reads the event stream once, without recursion, and counts what building it would
make, so a budgets file is refused at the line where it goes too far.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

__all__ = ["MAX_DEPTH", "MAX_VALUES", "YamlLimitError", "check"]

MAX_DEPTH = 50  # nested mappings and lists, aliases expanded; a budgets file needs about 6
MAX_VALUES = 100_000  # keys, values and items, aliases expanded; a large file has a few thousand


class YamlLimitError(ValueError):
    """The document is too deep, too large once expanded, or refers to itself."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


@dataclass(slots=True)
class _Open:
    """A mapping or list being read: its anchor, and its size and depth once expanded."""

    anchor: str | None
    definition: int  # where the anchor was defined (a later &name replaces an earlier one)
    size: int = 1
    depth: int = 1


def check(text: str) -> None:
    """Raise YamlLimitError (with the 1-based line) if building ``text`` would go too far.

    YAML syntax errors are left for the composer to report (``yaml.YAMLError``).
    """
    stack: list[_Open] = []
    expanded: dict[str, tuple[int, int]] = {}  # anchor -> (values, depth) it stands for
    latest: dict[str, int] = {}  # anchor -> its current definition
    total = 0

    def add(size: int, depth: int) -> None:
        if stack:
            stack[-1].size += size
            stack[-1].depth = max(stack[-1].depth, depth + 1)

    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        mark = event.start_mark
        line = mark.line + 1 if mark is not None else 0
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            if len(stack) >= MAX_DEPTH:
                raise YamlLimitError(f"nested more than {MAX_DEPTH} levels deep", line)
            if event.anchor is not None:
                latest[event.anchor] = mark.index if mark is not None else total
            stack.append(_Open(event.anchor, latest.get(event.anchor or "", -1)))
            total += 1
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            done = stack.pop()
            if done.anchor is not None and latest[done.anchor] == done.definition:
                expanded[done.anchor] = (done.size, done.depth)
            add(done.size, done.depth)
        elif isinstance(event, yaml.ScalarEvent):
            if event.anchor is not None:
                latest[event.anchor] = mark.index if mark is not None else total
                expanded[event.anchor] = (1, 0)
            add(1, 0)
            total += 1
        elif isinstance(event, yaml.AliasEvent):
            current = latest.get(event.anchor or "")
            if any(o.anchor == event.anchor and o.definition == current for o in stack):
                raise YamlLimitError(
                    f"the alias *{event.anchor} is inside its own anchor &{event.anchor}, so "
                    "it would repeat itself forever",
                    line,
                )
            if event.anchor not in expanded:
                continue  # an undefined alias: the composer names it
            size, depth = expanded[event.anchor]
            if len(stack) + depth > MAX_DEPTH:
                raise YamlLimitError(
                    f"the alias *{event.anchor} nests values more than {MAX_DEPTH} levels deep",
                    line,
                )
            add(size, depth)
            total += size
        if total > MAX_VALUES:
            raise YamlLimitError(
                f"the document stands for more than {MAX_VALUES:,} values once its aliases are "
                "expanded (each *alias repeats everything its &anchor holds)",
                line,
            )
