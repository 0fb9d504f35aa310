"""Checks for values that leave perfgate: HTTP headers and paths, environment, URLs, app specs.

Each returns why a value cannot be used (a phrase that follows "expected ..." is not assumed),
or None when it can. They run when budgets.yaml is read, so a header that HTTP cannot carry or
a DSN asyncpg cannot parse is an error at its line rather than a traceback mid-run. Messages
about URLs never repeat the URL: it may hold a password.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

__all__ = [
    "app_problem",
    "base_url_problem",
    "dsn_problem",
    "env_name_problem",
    "header_name_problem",
    "header_value_problem",
    "nul_problem",
    "request_path_problem",
    "sql_file_problem",
]

# RFC 9110 field names are tokens: letters, digits and these.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# asyncpg's values for the DSN's query options that it checks itself, mid-run.
_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_SESSION_ATTRS = ("any", "primary", "standby", "read-write", "read-only", "prefer-standby")


def nul_problem(text: str) -> str | None:
    """Programs, file names and PostgreSQL text end at a NUL character."""
    return "a NUL character (\\0) cannot be passed on" if "\x00" in text else None


def header_name_problem(name: str) -> str | None:
    if not _TOKEN.fullmatch(name):
        return f"expected a header name of letters, digits and !#$%&'*+-.^_`|~, got {name!a}"
    return None


def header_value_problem(value: str) -> str | None:
    if "\r" in value or "\n" in value:
        return "a header value cannot hold a line break (CR or LF): it would end the header"
    if not value.isascii():
        return (
            f"expected ASCII text in a header value (HTTP sends header values as ASCII bytes; "
            f"percent-encode or base64 other text), got {value!a}"
        )
    if any(c != "\t" and not c.isprintable() for c in value):
        return f"a header value cannot hold control characters, got {value!a}"
    return None


def request_path_problem(path: str) -> str | None:
    """A request target: '/...', no whitespace or control characters (HTTP splits on them)."""
    if not path.startswith("/"):
        return f"expected a path starting with '/', got {path!r}"
    if any(c.isspace() or not c.isprintable() for c in path):
        return (
            f"expected a path without spaces or control characters (write a space as %20), "
            f"got {path!a}"
        )
    if path.startswith("//"):
        return f"expected a path on the target, got {path[:60]!r} (a URL would take // for a host)"
    try:
        httpx.URL(path)
    except httpx.InvalidURL as exc:  # e.g. longer than httpx sends
        why = _without_values(str(exc))
        return f"expected a path httpx can send ({why}), got {len(path):,} characters"
    return None


def env_name_problem(name: str) -> str | None:
    if not name or "=" in name or "\x00" in name:
        return f"expected an environment variable name (not empty, no '=' or NUL), got {name!r}"
    return None


def app_problem(spec: str) -> str | None:
    module, sep, attr = spec.partition(":")
    parts = [*module.split("."), *attr.split(".")]
    if not sep or not all(p.isidentifier() for p in parts):
        return f"expected 'module.path:attribute', got {spec!r}"
    return None


def base_url_problem(url: str) -> str | None:
    """An http(s) URL with a host, and a port if any from 1 to 65535 (httpx parses it)."""
    if not url.startswith(("http://", "https://")):
        return "expected an http:// or https:// URL"
    if any(c.isspace() or not c.isprintable() for c in url):
        return "expected a URL without spaces or control characters"
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        return f"expected a URL like http://127.0.0.1:8000 ({_without_values(str(exc))})"
    if not parsed.host:
        return "expected a URL with a host, like http://127.0.0.1:8000"
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        return f"expected a port from 1 to 65535, got {parsed.port}"
    return None


def dsn_problem(dsn: str) -> str | None:
    """A postgresql:// URL with one host, a numeric port and options asyncpg accepts."""
    example = "a URL like postgresql://user@host:5432/postgres"
    if not dsn.startswith(("postgres://", "postgresql://")):
        return f"expected {example}"
    if any(c.isspace() or not c.isprintable() for c in dsn):
        return f"expected {example}, without spaces or control characters"
    if any(c in "'\"\\" for c in dsn):
        # {dsn} is filled into command lines, which are split like a shell's.
        return f"expected {example} with quotes and backslashes percent-encoded (%27, %22, %5C)"
    try:
        parts = urlsplit(dsn)
        port = parts.port
    except ValueError as exc:
        if "port" in str(exc).lower():
            return f"expected {example}: one host, and a port from 1 to 65535"
        return f"expected {example} ({_without_values(str(exc))})"
    if port == 0:
        return f"expected {example}: one host, and a port from 1 to 65535"
    options = parse_qs(parts.query)
    for name, allowed in (("sslmode", _SSLMODES), ("target_session_attrs", _SESSION_ATTRS)):
        for value in options.get(name, []):
            if value not in allowed:
                return f"expected ?{name}= one of {', '.join(allowed)}, got {value!r}"
    for value in options.get("port", []):
        if not value.isdigit() or not 1 <= int(value) <= 65535:
            return f"expected ?port= a number from 1 to 65535, got {value!r}"
    return None


def sql_file_problem(root: Path, name: str) -> str | None:
    """A SQL file relative to ``root`` that exists and is UTF-8 text, read as it will be run.

    Read in chunks, so a multi-gigabyte dump costs a pass and no memory.
    """
    path = (root / name).resolve()
    if not path.is_file():
        what = "a directory, not a file" if path.is_dir() else "file not found"
        return f"{what}: {name} (relative to {root})"
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = lines = 0
    try:
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    line = lines + chunk.count(b"\n", 0, exc.start) + 1
                    return (
                        f"{name} is not UTF-8 text (byte {offset + exc.start:,}, line {line}); "
                        "save it as UTF-8"
                    )
                offset += len(chunk)
                lines += chunk.count(b"\n")
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return f"{name} is not UTF-8 text (it ends inside a character); save it as UTF-8"
    except OSError as exc:
        return f"cannot read {name}: {exc.strerror or exc}"
    return None


def _without_values(message: str) -> str:
    """A parser's message without the quoted text it may repeat (a URL with a password)."""
    return re.sub(r":? *'[^']*'", "", message).rstrip(".")
