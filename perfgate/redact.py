"""Keep secrets out of every report, log line and JSON file."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit, urlunsplit

SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-auth-token"}
)
MASK = "***"

_DSN_IN_TEXT = re.compile(r"(postgres(?:ql)?://[^:/@\s]*:)([^@\s]*)(@)")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)


def redact_dsn(dsn: str) -> str:
    """The DSN with its password masked (URL and key=value forms)."""
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return redact_text(dsn)
    if parts.password:
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        netloc = f"{parts.username or ''}:{MASK}@{host}"
        return redact_text(urlunsplit(parts._replace(netloc=netloc)))
    return redact_text(dsn)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask DSN passwords and any of the given secret values inside free text."""
    text = _DSN_IN_TEXT.sub(lambda m: m.group(1) + MASK + m.group(3), text)
    text = _KV_PASSWORD.sub(lambda m: m.group(1) + MASK, text)
    for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def secret_values(headers: Mapping[str, str], dsns: Iterable[str] = ()) -> tuple[str, ...]:
    """The raw secret strings (header values, DSN passwords) to scrub from error text."""
    found: list[str] = []
    for key, value in headers.items():
        if key.lower() in SECRET_HEADERS:
            found.append(value)
            _scheme, _, token = value.partition(" ")
            if token:
                found.append(token)
    for dsn in dsns:
        try:
            password = urlsplit(dsn).password
        except ValueError:
            password = None
        if password:
            found.append(password)
    return tuple(found)
