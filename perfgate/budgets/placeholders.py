"""The ``{name}`` placeholders perfgate fills in budgets.yaml strings, and where each may go.

- ``{port}``: the target's port, in ``target.command`` and ``target.env``.
- ``{dsn}`` and its parts ``{dsn_host}``, ``{dsn_port}``, ``{dsn_user}``, ``{dsn_password}``,
  ``{dsn_database}``: the scratch database, in ``target.command``, ``target.env`` and the
  ``run``/``env`` of a database setup step.
- ``{login.PATH}``: a value from the login response (``target.login``): ``{login.user.token}``
  is the JSON body's ``user.token``, ``{login.headers.NAME}`` a response header and
  ``{login.cookies.NAME}`` a cookie it set; in ``target.headers`` and an endpoint's request
  line, headers, ``json`` and ``body``. Treated as a secret.
- ``{seq}`` (1, 2, 3, ... over the whole run) and ``{uuid}`` (a random UUID): new for every
  request, in the same places as ``{login...}``, for endpoints that create things.

Anything else in braces is left as written, so JSON text and format strings pass through.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

__all__ = [
    "DSN",
    "PER_REQUEST",
    "PLACEHOLDER",
    "REQUEST",
    "TARGET",
    "fill",
    "names",
    "problems",
]

PLACEHOLDER = re.compile(r"\{(port|dsn(?:_[a-z]+)?|seq|uuid|login(?:\.[^{}\s]*)?)\}")

DSN = frozenset({"dsn", "dsn_host", "dsn_port", "dsn_user", "dsn_password", "dsn_database"})
PER_REQUEST = frozenset({"seq", "uuid"})
TARGET = DSN | {"port"}  # target.command and target.env
REQUEST = PER_REQUEST | {"login"}  # what is sent: headers, request line, json, body
KNOWN = DSN | REQUEST | {"port"}
_BRACED = re.compile(r"\{([A-Za-z_][\w.-]*)\}")


def names(text: str) -> list[str]:
    """The placeholders in ``text``, e.g. ``['login.user.token', 'seq']``."""
    return [m.group(1) for m in PLACEHOLDER.finditer(text)]


def problems(text: str, allowed: Iterable[str], *, has_login: bool) -> list[str]:
    """Why the placeholders in ``text`` cannot be filled where it is written (empty: fine).

    A ``{word}`` that is no placeholder but close to one (``{dns_host}``, ``{sqe}``) is taken
    for a typo: left as it is, it would be sent as written and fail far from its cause.
    """
    allowed = frozenset(allowed)
    out = []
    for match in _BRACED.finditer(text):
        name = match.group(1)
        head = name.split(".", 1)[0]
        kind = "login" if head == "login" else name
        if kind not in KNOWN:
            close = _typo_of(head)
            if close:
                rest = name[len(head) :]
                out.append(f"unknown placeholder {{{name}}} (did you mean {{{close}{rest}}}?)")
        elif kind not in allowed:
            where = ", ".join("{" + a + "}" for a in sorted(allowed)) or "none"
            out.append(f"{{{name}}} cannot be used here (placeholders allowed here: {where})")
        elif kind == "login" and "." not in name:
            out.append("{login} needs a path into the login response, e.g. {login.user.token}")
        elif kind == "login" and not has_login:
            out.append(f"{{{name}}} needs target.login (the request that logs in)")
    return out


def _typo_of(word: str) -> str | None:
    """The placeholder ``word`` is a slip of: one edit away (two for long names), or dsn_*."""
    best = min(sorted(KNOWN), key=lambda known: _edits(word, known))
    allowed = 2 if len(best) >= 7 else 1
    if _edits(word, best) <= allowed or word.startswith("dsn_"):
        return best
    return None


def _edits(a: str, b: str) -> int:
    """Edits (insert, delete, substitute, swap two neighbours) from ``a`` to ``b``."""
    rows = [list(range(len(b) + 1))] + [[i] + [0] * len(b) for i in range(1, len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            rows[i][j] = min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                rows[i][j] = min(rows[i][j], rows[i - 2][j - 2] + 1)
    return rows[len(a)][len(b)]


def fill(text: str, values: Mapping[str, str]) -> str:
    """Replace the placeholders that ``values`` has (by full name, e.g. ``login.user.token``)."""
    if "{" not in text:
        return text
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)
