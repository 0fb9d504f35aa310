"""Named queries from sql/queries.sql (``-- name: popular-tags`` blocks), as SQLAlchemy text."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from sqlalchemy import TextClause, text

_FILE = Path(__file__).parent / "sql" / "queries.sql"
_NAME = re.compile(r"^-- name: ([\w-]+)\s*$", re.MULTILINE)


@lru_cache
def _queries() -> dict[str, str]:
    source = _FILE.read_text()
    heads = list(_NAME.finditer(source))
    out = {}
    for i, head in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(source)
        lines = [ln for ln in source[head.end() : end].splitlines() if not ln.startswith("--")]
        out[head.group(1)] = "\n".join(lines).strip().rstrip(";")
    return out


def query(name: str) -> TextClause:
    return text(_queries()[name])
