"""Keep secrets and terminal controls out of every report, log line and JSON file.

``Redactor`` is the one pass every text leaving a run goes through: each verdict as the gate
makes it (``Redactor.scrub`` walks all its strings), every note and every error. It is fed by
every secret source the run knows (``System.secrets``: ``${VAR}`` values of the budgets file,
secret headers, DSN and ``base_url`` credentials, login values). It also removes what no output
channel should carry (``clean``: control characters, ANSI and OSC sequences) and masks the
credentials of any URL, known or not. Each channel then escapes for itself
(``perfgate.report.escape``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping
from enum import Enum
from typing import TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "MASK",
    "SECRET_HEADERS",
    "Redactor",
    "clean",
    "redact_dsn",
    "redact_text",
    "secret_values",
    "url_secrets",
]

T = TypeVar("T")

SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-auth-token"}
)
MASK = "***"
MIN_SECRET = 4  # shorter values would mask ordinary words and numbers everywhere

# Escape sequences: CSI (colours, cursor moves; 7- and 8-bit), the string commands (OSC
# hyperlinks and titles, DCS, SOS, PM, APC) up to their terminator, and any other ESC pair.
_ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
)
# What some reader takes for a line break: the CI runner splits on a lone CR.
_LINE_BREAK = re.compile(r"\r\n?|[\v\f\x1c-\x1e\x85\u2028\u2029]")
# Left after the above: C0 and C1 controls but tab and newline, and the bidi overrides that
# make text read differently from what it is.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")

# user:password@ in any URL; also a bare user@ for http(s), where it is a token (GitHub's
# https://TOKEN@github.com). A DSN's user alone is a role name, not a secret.
_URL_USERINFO = re.compile(
    r"\b(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^\s/?#@:\"'<>]*)(?::(?P<password>[^\s/?#@]*))?@",
    re.IGNORECASE,
)
_DSN_IN_TEXT = re.compile(r"(postgres(?:ql)?://[^:/@\s]*:)([^@\s]*)(@)")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)
_CUT = "…"  # what a text cut to a width ends with


def clean(text: str) -> str:
    """``text`` without escape sequences and control characters; line breaks become ``\\n``."""
    if text.isprintable():
        return text  # the common case, and no work
    text = _ESCAPE_SEQUENCE.sub("", text)
    text = _LINE_BREAK.sub("\n", text)
    return _CONTROL.sub("", text)


def _mask_userinfo(match: re.Match[str]) -> str:
    scheme, user, password = match["scheme"], match["user"], match["password"]
    if password is not None:
        return f"{scheme}{user}:{MASK}@"
    if scheme.lower() in ("http://", "https://") and user:
        return f"{scheme}{MASK}@"
    return match[0]


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask any of the given secret values, then URL credentials and DSN passwords, in text.

    Known secrets first: masking a URL's password first would leave the rest of a secret URL.
    """
    for secret in sorted((s for s in secrets if len(s) >= MIN_SECRET), key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _URL_USERINFO.sub(_mask_userinfo, text)
    text = _DSN_IN_TEXT.sub(lambda m: m.group(1) + MASK + m.group(3), text)
    return _KV_PASSWORD.sub(lambda m: m.group(1) + MASK, text)


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


def url_secrets(url: str) -> tuple[str, ...]:
    """The credentials a URL carries: its password; for http(s), a user that is a token."""
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return ()
    if password:
        return (password,)
    if user and parts.scheme in ("http", "https"):
        return (user,)
    return ()


def secret_values(headers: Mapping[str, str], urls: Iterable[str] = ()) -> tuple[str, ...]:
    """The raw secret strings: secret header values (and their tokens), URL credentials."""
    found: list[str] = []
    for key, value in headers.items():
        if key.lower() in SECRET_HEADERS:
            found.append(value)
            _scheme, _, token = value.partition(" ")
            if token:
                found.append(token)
    for url in urls:
        found += url_secrets(url)
    return tuple(found)


# Fields that name things (an item, the budgets line it is on): cleaned, never masked, so a
# secret that happens to be a common word cannot rename an item and lose its baseline.
_IDENTIFIERS = frozenset({"name", "source"})


@dataclasses.dataclass(frozen=True, slots=True)
class Redactor:
    """The pass every outgoing text takes: cleaned (``clean``), then secrets masked."""

    secrets: tuple[str, ...] = ()

    @classmethod
    def of(cls, secrets: Iterable[str]) -> Redactor:
        """A redactor for these values (the short ones are dropped, longest first)."""
        kept = {clean(s) for s in secrets if len(clean(s)) >= MIN_SECRET}
        return cls(tuple(sorted(kept, key=lambda s: (-len(s), s))))

    def text(self, text: str) -> str:
        """One text, cleaned and masked (also a secret cut short before a '…')."""
        text = redact_text(clean(text), self.secrets)
        if _CUT in text:
            text = self._mask_cut(text)
        return text

    def _mask_cut(self, text: str) -> str:
        # A text cut to a width can end in the first part of a secret: mask that part too.
        for secret in self.secrets:
            for n in range(len(secret) - 1, MIN_SECRET - 1, -1):
                text = text.replace(secret[:n] + _CUT, MASK + _CUT)
        return text

    def scrub(self, value: T) -> T:
        """``value`` with every string inside it (dataclass fields, items, keys) through text()."""
        return cast(T, self._scrub(value, self.text))

    def _scrub(self, value: object, text: Callable[[str], str]) -> object:
        if isinstance(value, Enum) or value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, str):
            return text(value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            changes = {}
            for f in dataclasses.fields(value):
                if f.init:
                    how = clean if f.name in _IDENTIFIERS else text
                    changes[f.name] = self._scrub(getattr(value, f.name), how)
            return dataclasses.replace(value, **changes)
        if isinstance(value, (tuple, list)):
            if all(type(v) is float for v in value):
                return value  # samples: nothing to do, and many of them
            items = [self._scrub(v, text) for v in value]
            return tuple(items) if isinstance(value, tuple) else items
        if isinstance(value, Mapping):
            return {self._scrub(k, text): self._scrub(v, text) for k, v in value.items()}
        return value
