"""Post a preview on a GitLab merge request: one note, edited in place on every new preview, and a
commit status ``setpoint/preview`` (GitLab REST API v4; docs/git-safety.md, "In CI").

Endpoints (https://docs.gitlab.com/api/notes/, https://docs.gitlab.com/api/commits/):

* ``GET  /projects/:id/merge_requests/:iid/notes?per_page=100&page=N`` finds the earlier note by
  the hidden marker on its first line (system notes are skipped);
* ``PUT  /projects/:id/merge_requests/:iid/notes/:note_id`` edits it, else
  ``POST /projects/:id/merge_requests/:iid/notes`` creates it (``{"body": ...}``);
* ``POST /projects/:id/statuses/:sha`` with ``{"state": "success"|"failed", "name": "setpoint/preview",
  "description": ...}``.

``:id`` is the numeric project ID or the URL-encoded path (``group%2Fproject``). The token (a
project, group or personal access token with the ``api`` scope) is a
:class:`~setpoint.secrets.Secret` sent in one ``PRIVATE-TOKEN`` header and scrubbed from errors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from setpoint.errors import SetpointError
from setpoint.secrets import Secret, scrub

#: The first line of the note, found again on the next preview (the same as on GitHub).
MARKER = "<!-- setpoint-preview -->"
#: GitLab refuses note bodies over 1,000,000 characters; a preview that long is unreadable anyway.
NOTE_LIMIT = 200_000
#: GitLab stores a status description in a 255-character column.
DESCRIPTION_LIMIT = 255
MAX_PAGES = 10
TIMEOUT = 30.0
#: The poster's states (GitHub's words) in GitLab's.
STATES = {"success": "success", "failure": "failed", "error": "failed", "pending": "pending"}


@dataclass(frozen=True)
class GitLabMergeRequest:
    project: str  # numeric ID or group/subgroup/name
    iid: int
    token: Secret
    api_url: str = "https://gitlab.com/api/v4"


class GitLabPoster:
    def __init__(self, request: GitLabMergeRequest, client: httpx.Client | None = None) -> None:
        self.request = request
        # no redirects: a redirect could carry the token somewhere else
        self.client = client or httpx.Client(timeout=TIMEOUT, follow_redirects=False,
                                             headers={"User-Agent": "setpoint-preview"})

    def close(self) -> None:
        self.client.close()

    def comment(self, markdown: str) -> str:
        """Create or update the merge request's preview note; returns its URL."""
        body = MARKER + "\n" + markdown
        if len(body) > NOTE_LIMIT:
            body = body[:NOTE_LIMIT] + "\n\n*(cut: run `setpoint preview -o markdown` for all of it)*\n"
        notes = f"{self._project_url()}/merge_requests/{self.request.iid}/notes"
        existing = self._find(notes)
        if existing is not None:
            answer = self._call("PUT", f"{notes}/{existing}", {"body": body})
        else:
            answer = self._call("POST", notes, {"body": body})
        note = answer.get("id") if isinstance(answer, dict) else None
        return f"merge request !{self.request.iid} note {note}"

    def status(self, sha: str, state: str, description: str) -> None:
        self._call("POST", f"{self._project_url()}/statuses/{sha}",
                   {"state": STATES.get(state, "failed"), "name": "setpoint/preview",
                    "description": description[:DESCRIPTION_LIMIT]})

    def _find(self, notes: str) -> int | None:
        for page in range(1, MAX_PAGES + 1):
            found = self._call("GET", f"{notes}?per_page=100&page={page}&sort=asc&order_by=created_at")
            if not isinstance(found, list):
                return None
            for note in found:
                if not note.get("system") and str(note.get("body", "")).startswith(MARKER):
                    return int(note["id"])
            if len(found) < 100:
                return None
        return None

    def _project_url(self) -> str:
        return f"{self.request.api_url.rstrip('/')}/projects/{quote(self.request.project, safe='')}"

    def _call(self, method: str, url: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"PRIVATE-TOKEN": self.request.token.reveal(), "Content-Type": "application/json"}
        try:
            response = self.client.request(method, url, headers=headers,
                                           content=json.dumps(body).encode() if body is not None else None)
        except httpx.HTTPError as exc:
            raise SetpointError(f"GitLab {method} {url}: {scrub(str(exc))}") from None
        if response.status_code >= 300:
            raise SetpointError(f"GitLab {method} {url} answered {response.status_code}: "
                                f"{scrub(response.text[:300])} (check that the token has the api scope and "
                                "at least the Developer role)")
        return response.json() if response.content else {}
