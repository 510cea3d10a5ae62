"""The built-in ``github_status`` notifier: each target's result as a commit status on GitHub
(or GitHub Enterprise), so the commit page shows where it is deployed and where it failed.

One status per (commit, target), context ``setpoint/TARGET``: ``success`` when the commit's digest
(or ``deployed`` message) says the target runs it and on ``recovered``; ``failure`` on a digest
entry that failed and on ``failed`` (after the failure threshold); ``pending`` while a plan for it
waits for approval (``held``). Other events say nothing about a commit and are skipped.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from setpoint.api import Notification
from setpoint.builtin.notify.builtin import HTTPNotifier

#: GitHub caps a status description at 140 characters.
DESCRIPTION_LIMIT = 140
_SHA = re.compile(r"^[0-9a-f]{40}$")


class GitHubStatusSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: ``owner/name`` of the repository the commits belong to (the source's repository).
    repository: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
    #: A token allowed to write commit statuses (fine-grained: "Commit statuses: write").
    token_file: Path | None = None
    token_env: str | None = None
    #: GitHub Enterprise Server: ``https://HOST/api/v3``.
    api_url: str = Field(default="https://api.github.com", pattern=r"^https?://")
    #: The status context is ``PREFIX/TARGET``.
    context_prefix: str = Field(default="setpoint", min_length=1, max_length=60)
    #: Shown as the status's link (a dashboard, setpoint's status API).
    target_url: str | None = Field(default=None, pattern=r"^https?://")

    @model_validator(mode="after")
    def _one_token(self) -> GitHubStatusSettings:
        if (self.token_file is None) == (self.token_env is None):
            raise ValueError("give exactly one of token_file or token_env")
        return self


class GitHubStatusNotifier(HTTPNotifier):
    kind = "github_status"
    Settings = GitHubStatusSettings
    needs_url = False

    def send(self, notification: Notification) -> None:
        if notification.revision is None or not _SHA.match(notification.revision):
            return
        for target, state, description in statuses(notification):
            self._status(notification.revision, target, state, description)

    def _status(self, sha: str, target: str, state: str, description: str) -> None:
        settings: GitHubStatusSettings = self.settings
        body = {"state": state, "context": f"{settings.context_prefix}/{target}",
                "description": description[:DESCRIPTION_LIMIT]}
        if settings.target_url:
            body["target_url"] = settings.target_url
        token = self._credential(settings.token_file, settings.token_env, "token")
        response = self._client().post(
            f"{settings.api_url.rstrip('/')}/repos/{settings.repository}/statuses/{sha}",
            content=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {token.reveal()}", "Accept": "application/vnd.github+json",
                     "X-GitHub-Api-Version": "2022-11-28", "Content-Type": "application/json"})
        response.raise_for_status()


def statuses(n: Notification) -> list[tuple[str, str, str]]:
    """(target, state, description) for each commit status a notification stands for."""
    if n.event == "digest":
        return [(target, "success" if result == "deployed" else "failure",
                 "deployed" if result == "deployed" else "failed to deploy") for target, result in n.targets.items()]
    if n.target is None:
        return []
    if n.event in ("deployed", "recovered"):
        return [(n.target, "success", "deployed" if n.event == "deployed" else "reconciles again")]
    if n.event == "failed":
        return [(n.target, "failure", f"reconcile failing at the {n.fields.get('stage', 'unknown')} stage")]
    if n.event == "held":
        return [(n.target, "pending", f"plan {n.fields.get('plan', '?')} waits for approval")]
    return []
