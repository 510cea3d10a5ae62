"""Post a preview on a GitHub pull request: one comment, edited in place on every new preview, and a
commit status ``setpoint/preview`` (docs/git-safety.md, "In CI").

The comment is found again by a hidden marker on its first line, so a pull request collects one
preview comment however often it is pushed to. The token is a :class:`~setpoint.secrets.Secret`:
it goes into one request header and is scrubbed from any error text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from setpoint.errors import SetpointError
from setpoint.secrets import Secret, scrub

MARKER = "<!-- setpoint-preview -->"
#: GitHub refuses comment bodies over 65,536 characters.
COMMENT_LIMIT = 65_000
#: GitHub caps a status description at 140 characters.
DESCRIPTION_LIMIT = 140
#: Comments of the pull request searched for the marker (100 per page).
MAX_PAGES = 10
TIMEOUT = 30.0


@dataclass(frozen=True)
class GitHubPullRequest:
    repository: str  # owner/name
    number: int
    token: Secret
    api_url: str = "https://api.github.com"


class GitHubPoster:
    def __init__(self, pull: GitHubPullRequest, client: httpx.Client | None = None) -> None:
        self.pull = pull  # the token is a Secret: the scrubber already knows its value
        # no redirects: a redirect could carry the token somewhere else
        self.client = client or httpx.Client(timeout=TIMEOUT, follow_redirects=False,
                                             headers={"User-Agent": "setpoint-preview"})

    def close(self) -> None:
        self.client.close()

    def comment(self, markdown: str) -> str:
        """Create or update the pull request's preview comment; returns its URL."""
        body = MARKER + "\n" + markdown
        if len(body) > COMMENT_LIMIT:
            body = body[:COMMENT_LIMIT] + "\n\n*(cut: the preview is longer than a GitHub comment; run " \
                                          "`setpoint preview -o markdown` for all of it)*\n"
        existing = self._find()
        base = f"{self._repo_url()}/issues"
        if existing is not None:
            answer = self._call("PATCH", f"{base}/comments/{existing}", {"body": body})
        else:
            answer = self._call("POST", f"{base}/{self.pull.number}/comments", {"body": body})
        return str(answer.get("html_url") or answer.get("url") or "")

    def status(self, sha: str, state: str, description: str) -> None:
        self._call("POST", f"{self._repo_url()}/statuses/{sha}",
                   {"state": state, "context": "setpoint/preview", "description": description[:DESCRIPTION_LIMIT]})

    def _find(self) -> int | None:
        for page in range(1, MAX_PAGES + 1):
            comments = self._call("GET", f"{self._repo_url()}/issues/{self.pull.number}/comments"
                                         f"?per_page=100&page={page}")
            if not isinstance(comments, list):
                return None
            for comment in comments:
                if str(comment.get("body", "")).startswith(MARKER):
                    return int(comment["id"])
            if len(comments) < 100:
                return None
        return None

    def _repo_url(self) -> str:
        return f"{self.pull.api_url.rstrip('/')}/repos/{self.pull.repository}"

    def _call(self, method: str, url: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.pull.token.reveal()}", "Accept": "application/vnd.github+json",
                   "X-GitHub-Api-Version": "2022-11-28"}
        try:
            response = self.client.request(method, url, headers=headers,
                                           content=json.dumps(body).encode() if body is not None else None)
        except httpx.HTTPError as exc:
            raise SetpointError(f"GitHub {method} {url}: {scrub(str(exc))}") from None
        if response.status_code >= 300:
            raise SetpointError(f"GitHub {method} {url} answered {response.status_code}: "
                                f"{scrub(response.text[:300])} (check the token's pull-request and "
                                "commit-status permissions)")
        return response.json() if response.content else {}
