"""``target.login``: one request that logs in, and the values endpoints take from its answer.

``{login.user.token}`` is the JSON body's ``user.token`` (list items by index:
``{login.items.0.id}``), ``{login.headers.NAME}`` a response header, ``{login.cookies.NAME}``
a cookie the response set. Every value taken is a secret: the gate masks it in all output.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from perfgate.budgets.model import Login
from perfgate.exceptions import TargetError
from perfgate.probes.limits import DEFAULT_MAX_RESPONSE_BYTES, MAX_RESPONSE_BYTES, read_bounded
from perfgate.probes.requests import RequestSpec, RequestValues

__all__ = ["LoginAnswer", "log_in"]

_SHOWN = 200  # characters of a failed login's body in the message


@dataclass(frozen=True, slots=True)
class LoginAnswer:
    """What the login request answered."""

    request: str  # "POST /api/users/login"
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    cookies: Mapping[str, str] = field(default_factory=dict)
    body: Any = None  # the parsed JSON body, or None

    def value(self, name: str) -> str:
        """The value of placeholder ``name`` (``login.user.token``); TargetError if absent."""
        parts = name.split(".")[1:]
        if parts and parts[0] in ("headers", "cookies") and len(parts) == 2:
            found = self.headers if parts[0] == "headers" else self.cookies
            key = parts[1].lower() if parts[0] == "headers" else parts[1]
            if key in found:
                return found[key]
            known = ", ".join(sorted(found)) or "none"
            raise TargetError(
                f"{{{name}}}: the answer to {self.request} has no {parts[0][:-1]} {parts[1]!r} "
                f"(it has: {known})"
            )
        current: Any = self.body
        for i, part in enumerate(parts):
            if isinstance(current, dict) and part in current:
                current = current[part]
            elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
                current = current[int(part)]
            else:
                where = ".".join(parts[:i]) or "the top level"
                raise TargetError(
                    f"{{{name}}}: the JSON answer to {self.request} has no {part!r} at {where} "
                    f"(there: {_shape(current)})"
                )
        return current if isinstance(current, str) else json.dumps(current)


def _shape(value: Any) -> str:
    if isinstance(value, dict):
        return "keys " + ", ".join(map(str, value)) if value else "an empty object"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return f"a {type(value).__name__}"


async def log_in(
    client: httpx.AsyncClient,
    login: Login,
    headers: Mapping[str, str],
    values: RequestValues,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
) -> LoginAnswer:
    """Send the login request; TargetError with what the server said when it is refused.

    Bounded as an endpoint's requests are: by the client's timeout, and its answer by
    ``max_response_bytes``.
    """
    spec = RequestSpec(
        method=login.method,
        path=login.path,
        headers=tuple({**headers, **login.headers}.items()),
        json=login.json,
        body=login.body.encode() if login.body is not None else None,
    ).filled(*values.next())
    described = f"{login.method} {login.path}"
    request = client.build_request(
        spec.method,
        spec.path,
        headers=list(spec.headers),
        json=spec.json,
        content=spec.body,
        extensions={MAX_RESPONSE_BYTES: max_response_bytes},
    )
    try:
        response = await client.send(request, stream=True)
        _, content = await read_bounded(response, max_response_bytes)
    except (httpx.HTTPError, OSError) as exc:
        raise TargetError(f"target.login: {described} failed: {type(exc).__name__}: {exc}") from exc
    accepted = 200 <= response.status_code < 300 or response.status_code in (
        login.expect_status or ()
    )
    if not accepted:
        text = " ".join(content[: _SHOWN * 4].decode("utf-8", "replace")[:_SHOWN].split())
        raise TargetError(
            f"target.login: {described} answered HTTP {response.status_code}: {text or '(empty)'}"
        )
    try:
        body = json.loads(content)
    except ValueError:
        body = None
    return LoginAnswer(
        request=described,
        headers={k.lower(): v for k, v in response.headers.items()},
        cookies=dict(response.cookies.items()),
        body=body,
    )
