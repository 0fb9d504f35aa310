"""SQL from the app's own files: named queries (aiosql's convention) and ``:name`` parameters.

A file of named queries holds blocks that each start with a ``-- name: get-article-by-slug``
line, optionally followed by ``--`` comment lines (the query's docstring); aiosql's operation
suffixes (``^``, ``$``, ``!``, ``<!``, ``*!``, ``#``) and parameter lists are ignored, and
``-`` and ``_`` in names match each other. A file without ``-- name:`` lines is one query.

``:slug``-style parameters (aiosql's and SQLAlchemy ``text()``'s) become ``$1, $2, ...`` for
PostgreSQL, found by PostgreSQL's own scanner, so ``::text`` casts and ``':x'`` in strings or
comments are left alone; a name used twice is the same ``$n``.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

from pglast.parser import scan

__all__ = ["NamedSqlError", "named_parameters", "read_named_query"]

_NAME = re.compile(r"^--\s*name\s*:\s*([A-Za-z_][\w-]*)[^\n]*$", re.MULTILINE)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class NamedSqlError(ValueError):
    """A query file or query that cannot be used; the message says why."""


def _key(name: str) -> str:
    return name.replace("-", "_")


def read_named_query(path: Path, name: str | None) -> tuple[str, int]:
    """The SQL of query ``name`` in ``path`` (the whole file without a name), and its line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NamedSqlError(f"cannot read {path}: {exc}") from None
    headers = list(_NAME.finditer(text))
    if name is None:
        if headers:
            found = ", ".join(h.group(1) for h in headers)
            raise NamedSqlError(f"{path} holds named queries ({found}): say which with name:")
        return text, 1
    for i, header in enumerate(headers):
        if _key(header.group(1)) != _key(name):
            continue
        end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
        body = text[header.end() : end]
        lines = body.split("\n")
        while lines and (not lines[0].strip() or lines[0].lstrip().startswith("--")):
            lines.pop(0)  # the docstring
        sql = "\n".join(lines).strip()
        if not sql:
            raise NamedSqlError(f"{path}: query {name!r} has no SQL")
        return sql, text.count("\n", 0, header.start()) + 1
    if not headers:
        raise NamedSqlError(
            f"{path} has no query named {name!r}: it has no `-- name:` lines, so it is one "
            "query; drop name: to gate it"
        )
    known = ", ".join(h.group(1) for h in headers)
    raise NamedSqlError(f"{path} has no query named {name!r} (its queries: {known})")


def named_parameters(sql: str) -> tuple[str, list[str]]:
    """``sql`` with ``:name`` parameters as ``$1, $2, ...``, and the names in that order."""
    try:
        tokens = scan(sql)
    except Exception as exc:  # pglast's scanner error type varies between releases
        raise NamedSqlError(f"cannot read the SQL: {exc}") from None
    order: list[str] = []
    out: list[str] = []
    last = 0
    for colon, word in itertools.pairwise(tokens):
        if sql[colon.start : colon.end + 1] != ":" or word.start != colon.end + 1:
            continue
        name = sql[word.start : word.end + 1]
        if not _IDENTIFIER.match(name):
            continue
        if name not in order:
            order.append(name)
        out += [sql[last : colon.start], f"${order.index(name) + 1}"]
        last = word.end + 1
    out.append(sql[last:])
    return "".join(out), order
