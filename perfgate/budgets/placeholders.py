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


def names(text: str) -> list[str]:
    """The placeholders in ``text``, e.g. ``['login.user.token', 'seq']``."""
    return [m.group(1) for m in PLACEHOLDER.finditer(text)]


def problems(text: str, allowed: Iterable[str], *, has_login: bool) -> list[str]:
    """Why the placeholders in ``text`` cannot be filled where it is written (empty: fine)."""
    allowed = frozenset(allowed)
    out = []
    for name in names(text):
        kind = "login" if name.split(".", 1)[0] == "login" else name
        if kind not in allowed:
            where = ", ".join("{" + a + "}" for a in sorted(allowed)) or "none"
            out.append(f"{{{name}}} cannot be used here (placeholders allowed here: {where})")
        elif kind == "login" and "." not in name:
            out.append("{login} needs a path into the login response, e.g. {login.user.token}")
        elif kind == "login" and not has_login:
            out.append(f"{{{name}}} needs target.login (the request that logs in)")
        elif kind not in DSN and kind not in REQUEST and kind != "port":
            out.append(f"unknown placeholder {{{name}}}")
    return out


def fill(text: str, values: Mapping[str, str]) -> str:
    """Replace the placeholders that ``values`` has (by full name, e.g. ``login.user.token``)."""
    if "{" not in text:
        return text
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)
