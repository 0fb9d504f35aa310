"""One escaping discipline: how foreign text is made safe for each channel perfgate writes to.

Foreign text is any text perfgate did not write itself: names and SQL from the budgets file,
what the target printed or answered, PostgreSQL's errors and plans, whatever a results file
from a pull request holds. Every channel has its functions here, and the renderers use them
for every foreign string:

- the terminal and the CI log: ``terminal_text``; no line may start a workflow command
  (``::error::``, ``::add-mask::``, ``::stop-commands::``, the legacy ``##[...]``), which the
  runner reads on any line after leading whitespace;
- markdown (the PR comment, the step summary): ``md`` inline, ``fence`` for code blocks;
- GitHub workflow commands: ``escape_data`` and ``escape_property``, as @actions/core does;
- Slack mrkdwn: ``slack_escape``; e-mail is plain text, one line per item.

Each starts from ``perfgate.redact.clean`` (no control characters or ANSI/OSC sequences, line
breaks as ``\\n``) and masks URL credentials and DSN passwords, whatever the text's origin.
"""

from __future__ import annotations

import re

from perfgate.redact import clean, redact_text

__all__ = [
    "clip",
    "escape_data",
    "escape_property",
    "fence",
    "inert_line",
    "md",
    "slack_escape",
    "terminal_text",
]

ZWSP = "\u200b"  # zero-width space: invisible, and it breaks a command, a mention, a link
_COMMAND_START = ("::", "##[")

# Entities rather than backslashes: they hold in table cells, HTML blocks and <summary> alike,
# and a GFM table splits its cells on raw "|" before entities are decoded.
_ESCAPES = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    "|": "&#124;",
    "`": "&#96;",
    "[": "&#91;",
    "]": "&#93;",
    "*": "&#42;",
    "_": "&#95;",
    "~": "&#126;",
    "\\": "&#92;",
    "#": "&#35;",
    "$": "&#36;",  # GitHub renders $...$ as math
    # A zero-width space after "@" stops mentions (e.g. @everyone), as Renovate and Dependabot do.
    "@": "@&#8203;",
}
# An underscore between two letters or digits can never open or close emphasis (CommonMark
# flanking rules), so "supplier_id" stays readable in the raw markdown.
_ESCAPE = re.compile(
    "|".join(re.escape(c) for c in _ESCAPES if c != "_") + r"|(?<![^\W_])_|_(?![^\W_])"
)
# GFM autolinks bare "http://..." and "www....". An entity defeats the parser's match; the
# zero-width space also defeats any linkifier that runs on the decoded text.
_URL_SCHEME = re.compile(r"://")
_WWW = re.compile(r"\b(www)\.", re.IGNORECASE)
_BACKTICKS = re.compile(r"`+")


def inert_line(line: str) -> str:
    """The line, unable to start a workflow command: a zero-width space after its first ':'."""
    rest = line.lstrip()
    if not rest.startswith(_COMMAND_START):
        return line
    at = len(line) - len(rest) + 1
    return line[:at] + ZWSP + line[at:]


def terminal_text(value: object) -> str:
    """Foreign text for the terminal or a CI log: clean, masked, each line inert."""
    text = redact_text(clean(str(value)))
    return "\n".join(inert_line(line) for line in text.split("\n"))


def md(value: object) -> str:
    """Make any user text safe inline in markdown: a table cell, a heading, a list, a summary.

    Markdown and HTML syntax is escaped as entities, links and mentions are defeated, newlines
    become spaces, and DSN passwords are masked (the report may be public).
    """
    text = " ".join(redact_text(clean(str(value))).split())
    text = _ESCAPE.sub(lambda m: _ESCAPES[m.group(0)], text)
    text = _URL_SCHEME.sub("&#58;&#8203;//", text)
    return _WWW.sub(r"\1&#8203;&#46;", text)


def fence(value: object, lang: str = "text") -> str:
    """A fenced code block, its fence longer than any run of backticks inside, lines inert."""
    text = redact_text(clean(str(value))).strip("\n")
    text = "\n".join(inert_line(line) for line in text.split("\n"))
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    bar = "`" * max(3, longest + 1)
    return f"{bar}{lang}\n{text}\n{bar}"


def clip(value: object, width: int = 80) -> str:
    """One line of at most ``width`` characters, ending in … when cut (escape afterwards)."""
    text = " ".join(clean(str(value)).split())
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def escape_data(text: str) -> str:
    """Escape a command's message: %, CR and LF (the runner decodes these)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a property value (file, title): as data, and also ':' and ','."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def slack_escape(text: str) -> str:
    """Slack's three control characters as entities: no <!channel>, <@U…> or <url|text>.

    Bare URLs are broken with a zero-width space too, so Slack does not turn them into links.
    """
    text = clean(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _WWW.sub(rf"\1{ZWSP}.", _URL_SCHEME.sub(f":{ZWSP}//", text))
