"""The pull request comment: one per gate, found by a hidden marker, created or updated in place.

Talks to the GitHub REST API with httpx (``GITHUB_API_URL`` for GitHub Enterprise Server).
Failures become GitHubError with a message that says what to fix, e.g. which ``permissions:``
the workflow job is missing. The token goes in one header and never into a message.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import httpx

from perfgate import __version__
from perfgate.exceptions import PerfgateError
from perfgate.redact import redact_text
from perfgate.report import render_markdown
from perfgate.report.escape import terminal_text
from perfgate.verdict.model import GateReport

DEFAULT_API_URL = "https://api.github.com"
BODY_LIMIT = 65_536  # characters; GitHub answers 422 "body is too long" above it
MARKER = "<!-- perfgate-report -->"
MAX_ATTEMPTS = 4
PER_PAGE = 100

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_SAFE_URL = re.compile(r"^https?://[A-Za-z0-9._~:/?#@!$&'*+,;=%-]+$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


class GitHubError(PerfgateError):
    """A GitHub API call failed; the message names the missing permission or the limit hit."""


def marker(key: str | None = None) -> str:
    """The hidden first line that identifies perfgate's comment (one per key on a PR)."""
    if key is None:
        return MARKER
    if not _KEY.match(key):
        raise GitHubError(f"comment key {key!r}: use letters, digits, '.', '_' or '-'")
    return f"<!-- perfgate-report:{key} -->"


def check_repo(repo: str) -> str:
    """'OWNER/NAME', or GitHubError saying what was expected."""
    if not _REPO.match(repo):
        raise GitHubError(f"--repo {repo!r}: expected OWNER/NAME, e.g. octo-org/shop")
    return repo


def run_url(env: Mapping[str, str]) -> str | None:
    """This workflow run's page, from GITHUB_SERVER_URL/GITHUB_REPOSITORY/GITHUB_RUN_ID."""
    server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    repo, run_id = env.get("GITHUB_REPOSITORY", ""), env.get("GITHUB_RUN_ID", "")
    if not (_REPO.match(repo) and run_id.isdigit()):
        return None
    return safe_url(f"{server}/{repo}/actions/runs/{run_id}")


def safe_url(url: str | None) -> str | None:
    """The URL if it can go inside a markdown link unchanged (http(s), no spaces or brackets)."""
    return url if url and _SAFE_URL.match(url) and ")" not in url else None


def comment_body(
    report: GateReport, *, key: str | None = None, link: str | None = None, limit: int = BODY_LIMIT
) -> str:
    """Marker, the markdown report, a link to the run; fitted to GitHub's size limit."""
    link = safe_url(link)
    footer = f"\n<sub>[Workflow run with the full report]({link})</sub>\n" if link else ""
    body = f"{marker(key)}\n{render_markdown(report).rstrip()}\n{footer}"
    return fit_body(body, limit, link)


def fit_body(text: str, limit: int = BODY_LIMIT, link: str | None = None) -> str:
    """Fit ``limit`` characters: first empty the <details> sections, then cut at a line."""
    if len(text) <= limit:
        return text
    where = f"[the workflow run]({link})" if link else "the workflow run's job summary"
    collapsed = _collapse_details(text, f"_Left out to fit GitHub's comment limit; see {where}._")
    if len(collapsed) <= limit:
        return collapsed
    note = (
        f"\n\n---\n⚠️ perfgate: this report was cut to fit GitHub's {BODY_LIMIT:,}-character "
        f"comment limit. The full report is in {where} and its `perfgate-report` artifact.\n"
    )
    return _truncate(collapsed, max(limit - len(note), 0)) + note


def _collapse_details(text: str, note: str) -> str:
    """Keep each top-level <details> and its <summary>, drop what is inside."""
    out: list[str] = []
    fence = ""
    inside = False
    for line in text.split("\n"):
        match = _FENCE.match(line)
        if fence:
            if match and match[1][0] == fence[0] and len(match[1]) >= len(fence):
                fence = ""
            if not inside:
                out.append(line)
            continue
        if match:
            fence = match[1]
        if not inside and line.startswith("<details"):
            inside = True
            out += [line.replace("<details open>", "<details>"), "", note, ""]
            if "</details>" in line:
                inside = False
                out.append("</details>")
            continue
        if inside:
            if line.startswith("</details>"):
                inside = False
                out.append(line)
            continue
        out.append(line)
    return "\n".join(out)


def _truncate(text: str, room: int) -> str:
    """Whole lines up to ``room`` characters, closing a code fence or <details> left open."""
    out: list[str] = []
    used = 0
    fence = ""
    details = 0
    for line in text.split("\n"):
        closing = len(fence) + 1 + details * len("\n</details>")
        if used + len(line) + 1 + closing > room:
            break
        out.append(line)
        used += len(line) + 1
        match = _FENCE.match(line)
        if fence:
            if match and match[1][0] == fence[0] and len(match[1]) >= len(fence):
                fence = ""
        elif match:
            fence = match[1]
        elif line.startswith("<details"):
            details += "</details>" not in line
        elif line.startswith("</details>"):
            details = max(details - 1, 0)
    if not out:  # not even the first line fits: cut characters
        return text[:room]
    if fence:
        out.append(fence)
    out += ["</details>"] * details
    return "\n".join(out)


@dataclass(frozen=True, slots=True)
class Comment:
    """An issue comment as the API returns it (the fields perfgate uses)."""

    id: int
    body: str
    url: str  # html_url
    author: str

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Comment:
        """From one element of the comments list."""
        user = data.get("user") or {}
        return cls(
            id=int(data["id"]),
            body=str(data.get("body") or ""),
            url=str(data.get("html_url") or ""),
            author=str(user.get("login") or ""),
        )


class GitHubClient:
    """A small synchronous client for the few REST calls the comment needs."""

    def __init__(
        self,
        token: str,
        api_url: str = DEFAULT_API_URL,
        *,
        max_wait: float = 60.0,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not token.isprintable() or " " in token:
            # httpx would refuse the header and quote it, token included, in its error.
            raise GitHubError("GITHUB_TOKEN contains spaces or control characters")
        self.api_url = api_url.rstrip("/")
        self.max_wait = max_wait
        self._token = token
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.api_url,
            timeout=timeout,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": f"perfgate/{__version__}",
            },
        )

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def request(
        self, method: str, url: str, action: str, json: Any = None, params: Any = None
    ) -> httpx.Response:
        """One call, retried after a rate limit (bounded by max_wait); GitHubError otherwise."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                response = self._http.request(method, url, json=json, params=params)
            except httpx.HTTPError as e:
                raise self._error(
                    f"cannot reach the GitHub API at {_origin(self.api_url)} to {action}: "
                    f"{type(e).__name__}: {e}"
                ) from None
            if response.is_success:
                return response
            wait = rate_limit_wait(response, time.time())
            if wait is None:
                raise self._error(explain_failure(response, action))
            if wait > self.max_wait or attempt == MAX_ATTEMPTS:
                raise self._error(_rate_limit_message(response, action, wait, self.max_wait))
            self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def pages(self, path: str, action: str) -> Iterator[Any]:
        """Every element of a paginated list, following the Link header's rel="next"."""
        url: str | None = path
        params: dict[str, int] | None = {"per_page": PER_PAGE}
        while url:
            response = self.request("GET", url, action, params=params)
            yield from response.json()
            url = response.links.get("next", {}).get("url")
            params = None  # the next link carries them
            if url and _origin(url) != _origin(self.api_url):
                # Following it would send the token to another host.
                raise self._error(f"refusing a pagination link to another host ({_origin(url)})")

    def comments(self, repo: str, pr: int) -> Iterator[Comment]:
        """The comments of a pull request (its issue comments), oldest first."""
        action = f"list the comments of {repo}#{pr}"
        for item in self.pages(f"/repos/{repo}/issues/{pr}/comments", action):
            yield Comment.from_api(item)

    def create_comment(self, repo: str, pr: int, body: str) -> Comment:
        """Post a new comment on the pull request."""
        path = f"/repos/{repo}/issues/{pr}/comments"
        response = self.request("POST", path, f"comment on {repo}#{pr}", json={"body": body})
        return Comment.from_api(response.json())

    def update_comment(self, repo: str, comment_id: int, body: str) -> Comment:
        """Replace a comment's body."""
        path = f"/repos/{repo}/issues/comments/{comment_id}"
        action = f"update comment {comment_id} in {repo}"
        return Comment.from_api(self.request("PATCH", path, action, json={"body": body}).json())

    def head_sha(self, repo: str, pr: int) -> str:
        """The commit a pull request's head points at."""
        response = self.request("GET", f"/repos/{repo}/pulls/{pr}", f"read {repo}#{pr}")
        return str((response.json().get("head") or {}).get("sha", ""))

    def _error(self, message: str) -> GitHubError:
        # The message may quote the API's answer: printed to the log, it must be inert.
        return GitHubError(terminal_text(redact_text(message, [self._token])))


def upsert_comment(
    client: GitHubClient,
    repo: str,
    pr: int,
    body: str,
    *,
    key: str | None = None,
    author: str | None = None,
) -> tuple[str, Comment]:
    """Update the comment that starts with the marker, or create it: ('updated'|'created', it)."""
    first_line = marker(key)
    for comment in client.comments(repo, pr):
        if comment.body.split("\n", 1)[0].strip() != first_line:
            continue
        if author is not None and comment.author != author:
            continue
        return "updated", client.update_comment(repo, comment.id, body)
    return "created", client.create_comment(repo, pr, body)


def rate_limit_wait(response: httpx.Response, now: float) -> float | None:
    """Seconds to wait before retrying a rate-limited response; None if it is not one."""
    if response.status_code not in (403, 429):
        return None
    retry_after = response.headers.get("retry-after", "")
    if retry_after.strip().isdigit():
        return float(retry_after)
    if response.headers.get("x-ratelimit-remaining") == "0":
        reset = response.headers.get("x-ratelimit-reset", "")
        return max(float(reset) - now, 0.0) + 1.0 if reset.isdigit() else 60.0
    if response.status_code == 429 or "rate limit" in _api_message(response).lower():
        return 60.0  # a secondary limit without a hint: GitHub asks for at least a minute
    return None


def _rate_limit_message(response: httpx.Response, action: str, wait: float, bound: float) -> str:
    reset = response.headers.get("x-ratelimit-reset", "")
    when = ""
    if reset.isdigit():
        stamp = datetime.fromtimestamp(int(reset), tz=timezone.utc).strftime("%H:%M:%S UTC")
        when = f", resets at {stamp}"
    return (
        f"GitHub's rate limit stopped the request to {action} ({response.status_code}{when}, "
        f"retry in {wait:.0f}s); perfgate waits at most {bound:.0f}s (--max-wait). "
        "Run it again later, or use a token with a higher limit."
    )


def explain_failure(response: httpx.Response, action: str) -> str:
    """What went wrong and how to fix it, for a non-rate-limit error response."""
    status = response.status_code
    said = _api_message(response)
    said = f" ({said})" if said else ""
    if status == 401:
        return (
            f"GitHub rejected the token (401{said}) trying to {action}: GITHUB_TOKEN is "
            "missing, expired or revoked."
        )
    if status == 403:
        return (
            f"GitHub denied permission (403{said}) to {action}: the token needs "
            "`pull-requests: write` (or `issues: write`); add it to the job's `permissions:`. "
            "A pull_request run from a fork only ever gets a read-only token, which is why "
            "perfgate comments from a separate workflow_run workflow."
        )
    if status == 404:
        return (
            f"GitHub found nothing (404{said}) trying to {action}: check --repo and --pr. "
            "GitHub also answers 404 when the token cannot see a private repository: the job "
            "needs `pull-requests: write` and `contents: read`."
        )
    if status == 422:
        details = _api_errors(response)
        return f"GitHub refused the request (422{said}{details}) trying to {action}."
    return f"GitHub API error {status}{said} trying to {action}."


def _api_message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return ""
    message = data.get("message", "") if isinstance(data, dict) else ""
    return " ".join(str(message).split())[:200]


def _api_errors(response: httpx.Response) -> str:
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        return ""
    texts = [str(e.get("message") or e.get("code")) for e in errors if isinstance(e, dict)]
    return (": " + "; ".join(texts)[:300]) if texts else ""


def _origin(url: str) -> str:
    """scheme://host[:port], without any credentials a URL might carry."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")
