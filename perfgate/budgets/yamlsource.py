"""YAML with line numbers, environment interpolation and strict, friendly key checking."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from perfgate.budgets import placeholders, yamllimits
from perfgate.exceptions import ConfigError
from perfgate.redact import MIN_SECRET, redact_text

T = TypeVar("T")
Path_ = tuple[str | int, ...]

_ENV = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\})")


_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")
_NONE = object()


class InvalidConfig(ConfigError):
    """Several problems in one budgets file, reported together."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        first = errors[0]
        super().__init__(first.detail, path=first.path, line=first.line, key=first.key)
        self.args = ("\n".join(str(e) for e in errors),)


def key_path(path: Path_) -> str:
    """'endpoints.clients.budget.p95_ms' from ('endpoints', 'clients', 'budget', 'p95_ms')."""
    out = ""
    for part in path:
        if isinstance(part, str) and not part.isprintable():
            part = repr(part)  # a key with a line break must not break the message
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def interpolate(text: str, env: Mapping[str, str], used: list[str] | None = None) -> str:
    """Replace ${VAR}, ${VAR:-default} and ${VAR-default}; '$$' is a literal '$'.

    Values taken from the environment (not defaults written in the file) are appended to
    ``used``, so callers can treat them as secrets.
    """

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, default = match.group(1), match.group(2), match.group(3)
        value = env.get(name)
        if op == ":-" and not value:
            return default or ""
        if op == "-" and value is None:
            return default or ""
        if value is None:
            raise KeyError(name)
        if used is not None:
            used.append(value)
        return value

    return _ENV.sub(sub, text)


def compose(text: str, filename: str) -> tuple[Any, dict[Path_, int]]:
    """Parse YAML into plain values, with the 1-based line of every key and item.

    The document is bounded first (``yamllimits``): too deep, too large once its aliases are
    expanded, or an alias inside its own anchor is an error at its line, not a hang.
    """
    try:
        yamllimits.check(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yamllimits.YamlLimitError as exc:
        raise ConfigError(f"invalid YAML: {exc}", path=filename, line=exc.line) from None
    except yaml.YAMLError as exc:
        problem, line = _yaml_problem(exc)
        raise ConfigError(f"invalid YAML: {problem}", path=filename, line=line) from None
    lines: dict[Path_, int] = {}
    constructor = yaml.SafeLoader("")

    def walk(n: yaml.Node, path: Path_) -> Any:
        lines.setdefault(path, n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            out: dict[Any, Any] = {}
            texts: dict[str, Any] = {}  # every key is used as text: 1 and "1" are one key
            for key_node, value_node in n.value:
                key = walk(key_node, (*path, "<key>"))
                where = {"path": filename, "line": key_node.start_mark.line + 1}
                if isinstance(key, (list, dict)):
                    raise ConfigError(
                        "a mapping key must be a plain value", **where, key=key_path(path) or None
                    )
                first = next((k for k in out if k == key), texts.get(str(key), _NONE))
                if first is not _NONE:
                    raise ConfigError(
                        f"duplicate key {_as_written(key)}"
                        if repr(first) == repr(key)
                        else f"duplicate key: {_as_written(first)} and {_as_written(key)} are "
                        "the same key here",
                        **where,
                        key=key_path(path) or None,
                    )
                texts[str(key)] = key
                # mypy rejects a starred subscript when targeting Python 3.10
                lines[path + (str(key),)] = key_node.start_mark.line + 1  # noqa: RUF005
                out[key] = walk(value_node, (*path, str(key)))
            return out
        if isinstance(n, yaml.SequenceNode):
            return [walk(item, (*path, i)) for i, item in enumerate(n.value)]
        return constructor.construct_object(n, deep=True)

    if node is None:
        return None, lines
    try:
        return walk(node, ()), lines
    except yaml.YAMLError as exc:
        problem, line = _yaml_problem(exc)
        raise ConfigError(f"invalid YAML: {problem}", path=filename, line=line) from None


def _as_written(key: object) -> str:
    """A plain YAML key as a reader would write it: 'text' quoted, 1, true, null, 2026-06-13."""
    if isinstance(key, str):
        return repr(key)
    if key is None or isinstance(key, bool):
        return "null" if key is None else str(key).lower()
    return str(key)


def _yaml_problem(exc: yaml.YAMLError) -> tuple[str, int | None]:
    """What PyYAML says is wrong, on one line, and the 1-based line where it is."""
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and start is not None and context.startswith("found duplicate anchor"):
        anchor = context.partition(";")[0].removeprefix("found duplicate anchor ").strip("'")
        return f"the anchor &{anchor} is defined twice (first at line {start.line + 1})", line
    if context and start is not None and (mark is None or start.line != mark.line):
        # Where the unclosed bracket or quote began, which is where the fix usually is.
        problem += f" ({context} that starts at line {start.line + 1}, column {start.column + 1})"
    return problem, line


@dataclass(slots=True)
class Source:
    """A parsed budgets file: values, their lines, and where errors are collected."""

    filename: str
    lines: dict[Path_, int]
    env: Mapping[str, str]
    errors: list[ConfigError]
    # Environment values interpolated anywhere in the file (but numbers and values too short
    # to be secret): never printed, wherever they went.
    secrets: list[str] = field(default_factory=list)
    has_login: bool = False  # target.login is set, so {login.PATH} can be filled
    root: Path = field(default_factory=Path.cwd)  # relative paths are relative to this

    def error(self, path: Path_, message: str) -> None:
        """Record a problem at a key path (the nearest known line is used)."""
        line = None
        probe = path
        while probe and line is None:
            line = self.lines.get(probe)
            probe = probe[:-1]
        message = redact_text(message, self.secrets)  # "got '...'" may quote a ${VAR}
        self.errors.append(
            ConfigError(message, path=self.filename, line=line, key=key_path(path) or None)
        )

    def mapping(
        self, value: Any, path: Path_, allowed: Iterable[str], *, required: Iterable[str] = ()
    ) -> dict[str, Any]:
        """A mapping with only known keys; unknown ones get a 'did you mean'."""
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping, got {describe(value)}")
            return {}
        allowed = list(allowed)
        out: dict[str, Any] = {}
        for key, item in value.items():
            skey = str(key)
            if skey not in allowed:
                close = difflib.get_close_matches(skey, allowed, n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.error(
                    (*path, skey), f"unknown key{hint}; expected one of: {', '.join(allowed)}"
                )
                continue
            out[skey] = item
        for key in required:
            if key not in out:
                hint = " (add `version: 1` at the top of the file)" if key == "version" else ""
                self.error(path, f"missing required key {key!r}{hint}")
        return out

    def string(self, value: Any, path: Path_, *, interpolate_env: bool = True) -> str | None:
        """A string with ${VAR} interpolated; numbers are accepted as their text."""
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.error(path, f"expected a string, got {describe(value)}")
            return None
        text = str(value)
        if not interpolate_env:
            return text
        used: list[str] = []
        try:
            text = interpolate(text, self.env, used)
        except KeyError as exc:
            self.error(
                path,
                f"environment variable {exc.args[0]} is not set "
                f"(give a default with ${{{exc.args[0]}:-value}})",
            )
            return None
        self.secrets += [v for v in used if is_secret(v)]
        return text

    def template(self, value: Any, path: Path_, allowed: Iterable[str]) -> str | None:
        """A string (as ``string``) whose ``{placeholders}`` must be among ``allowed``."""
        text = self.string(value, path)
        if text is not None:
            for problem in placeholders.problems(text, allowed, has_login=self.has_login):
                self.error(path, problem)
        return text

    def template_map(self, value: Any, path: Path_, allowed: Iterable[str]) -> dict[str, str]:
        """A mapping of names to strings (as ``string_map``), each checked as ``template``."""
        out = self.string_map(value, path)
        for key, text in out.items():
            for problem in placeholders.problems(text, allowed, has_login=self.has_login):
                self.error((*path, key), problem)
        return out

    def convert(self, value: Any, path: Path_, parse: Callable[[object], T]) -> T | None:
        """Apply a unit parser, turning its ValueError into a located error."""
        if isinstance(value, str):
            interpolated = self.string(value, path)
            if interpolated is None:
                return None
            value = interpolated
        try:
            return parse(value)
        except ValueError as exc:
            self.error(path, f"expected {exc}")
            return None

    def integer(self, value: Any, path: Path_, *, minimum: int = 0) -> int | None:
        """A whole number no smaller than ``minimum``."""
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(path, f"expected a whole number >= {minimum}, got {describe(value)}")
            return None
        if value < minimum:
            self.error(path, f"expected a whole number >= {minimum}, got {value}")
            return None
        return value

    def boolean(self, value: Any, path: Path_) -> bool | None:
        """true or false."""
        if not isinstance(value, bool):
            self.error(path, f"expected true or false, got {describe(value)}")
            return None
        return value

    def string_list(self, value: Any, path: Path_) -> tuple[str, ...]:
        """A list of strings (a single string is taken as a list of one)."""
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            self.error(path, f"expected a list of strings, got {describe(value)}")
            return ()
        out = [self.string(item, (*path, i)) for i, item in enumerate(value)]
        return tuple(s for s in out if s is not None)

    def string_map(self, value: Any, path: Path_) -> dict[str, str]:
        """A mapping of strings to strings (header names, environment variables)."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping of names to strings, got {describe(value)}")
            return {}
        out: dict[str, str] = {}
        for key, item in value.items():
            text = self.string(item, (*path, str(key)))
            if text is not None:
                out[str(key)] = text
        return out


def is_secret(value: str) -> bool:
    """Whether a value from the environment is masked in output: all are, but numbers (a
    port, a count) and values too short to mask without garbling every message."""
    return len(value) >= MIN_SECRET and not _NUMBER.fullmatch(value.strip())


def describe(value: Any) -> str:
    """How a YAML value reads in an error message."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string {value!r}"
    return f"{type(value).__name__} {value!r}"


def environ() -> Mapping[str, str]:
    """The process environment (a seam so tests can pass their own)."""
    return os.environ
