"""Commit statuses on GitLab, Gitea/Forgejo and Bitbucket (Cloud and Data Center): the same
statuses as ``github_status`` (see :func:`setpoint.builtin.notify.github_status.statuses`: success
when deployed or recovered, failure after the threshold, pending while a plan is held), in each
host's API and vocabulary. The token is sent only in a header, to ``api_url``."""

from __future__ import annotations

import json
import re
from typing import Any, Literal
from urllib.parse import quote

from pydantic import Field, model_validator

from setpoint.api import Notification
from setpoint.builtin.notify.builtin import HTTPNotifier
from setpoint.builtin.notify.credentials import TokenSettings
from setpoint.builtin.notify.github_status import statuses

_SHA = re.compile(r"^[0-9a-f]{40}$")


class CommitStatusSettings(TokenSettings):
    #: The status name is ``PREFIX/TARGET``.
    context_prefix: str = Field(default="setpoint", min_length=1, max_length=60)
    #: Shown as the status's link (a dashboard, setpoint's status API).
    target_url: str | None = Field(default=None, pattern=r"^https?://")


class CommitStatusNotifier(HTTPNotifier):
    needs_url = False
    #: The host's word for success, failure and pending.
    STATES: dict[str, str] = {}

    def send(self, notification: Notification) -> None:
        if notification.revision is None or not _SHA.match(notification.revision):
            return
        s: CommitStatusSettings = self.settings
        for target, state, description in statuses(notification):
            self._post_status(notification.revision, f"{s.context_prefix}/{target}", self.STATES[state], description)

    def _post_status(self, sha: str, context: str, state: str, description: str) -> None:
        raise NotImplementedError

    def _send_json(self, url: str, body: dict[str, Any], auth: dict[str, str]) -> None:
        response = self._client().post(url, content=json.dumps(body).encode(),
                                       headers={"Content-Type": "application/json", "Accept": "application/json", **auth})
        response.raise_for_status()

    def _token(self) -> str:
        s: CommitStatusSettings = self.settings
        return self._credential(s.token_file, s.token_env, "token").reveal()


# --------------------------------------------------------------------------- GitLab


class GitLabStatusSettings(CommitStatusSettings):
    #: The project's path (``group/subgroup/project``) or numeric ID.
    project: str = Field(pattern=r"^([0-9]+|[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+)$")
    #: Self-managed: ``https://gitlab.example.com/api/v4``.
    api_url: str = Field(default="https://gitlab.com/api/v4", pattern=r"^https?://")


class GitLabStatusNotifier(CommitStatusNotifier):
    """``POST /projects/:id/statuses/:sha`` with ``PRIVATE-TOKEN`` (a token with the ``api`` scope,
    Developer role or higher)."""

    kind = "gitlab_status"
    Settings = GitLabStatusSettings
    STATES = {"success": "success", "failure": "failed", "pending": "pending"}

    def _post_status(self, sha: str, context: str, state: str, description: str) -> None:
        s: GitLabStatusSettings = self.settings
        body = {"state": state, "name": context, "description": description[:255]}
        if s.target_url:
            body["target_url"] = s.target_url
        self._send_json(f"{s.api_url.rstrip('/')}/projects/{quote(s.project, safe='')}/statuses/{sha}", body,
                        {"PRIVATE-TOKEN": self._token()})


# --------------------------------------------------------------------------- Gitea and Forgejo


class GiteaStatusSettings(CommitStatusSettings):
    #: ``owner/name``.
    repository: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
    #: ``https://gitea.example.com/api/v1`` (Forgejo: the same path).
    api_url: str = Field(pattern=r"^https?://")


class GiteaStatusNotifier(CommitStatusNotifier):
    """``POST /repos/{owner}/{repo}/statuses/{sha}`` with ``Authorization: token ...`` (a token with
    the ``write:repository`` scope). Forgejo serves the same API."""

    kind = "gitea_status"
    Settings = GiteaStatusSettings
    STATES = {"success": "success", "failure": "failure", "pending": "pending"}

    def _post_status(self, sha: str, context: str, state: str, description: str) -> None:
        s: GiteaStatusSettings = self.settings
        body = {"state": state, "context": context, "description": description[:255]}
        if s.target_url:
            body["target_url"] = s.target_url
        self._send_json(f"{s.api_url.rstrip('/')}/repos/{s.repository}/statuses/{sha}", body,
                        {"Authorization": f"token {self._token()}"})


class ForgejoStatusNotifier(GiteaStatusNotifier):
    kind = "forgejo_status"


# --------------------------------------------------------------------------- Bitbucket


class BitbucketStatusSettings(CommitStatusSettings):
    #: Cloud: ``workspace/repo_slug``. Data Center: not needed (statuses are per commit), may be given.
    repository: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
    server: Literal["cloud", "datacenter"] = "cloud"
    #: Cloud: ``https://api.bitbucket.org/2.0``. Data Center: the server's base URL.
    api_url: str = Field(default="https://api.bitbucket.org/2.0", pattern=r"^https?://")
    #: Bitbucket requires a link on every status; without one, ``api_url`` is not a useful page, so
    #: give ``target_url`` (setpoint's status API or a dashboard).
    target_url: str = Field(pattern=r"^https?://")

    @model_validator(mode="after")
    def _cloud_needs_repository(self) -> BitbucketStatusSettings:
        if self.server == "cloud" and self.repository is None:
            raise ValueError("Bitbucket Cloud needs repository: workspace/repo_slug")
        return self


class BitbucketStatusNotifier(CommitStatusNotifier):
    """Build statuses, ``Authorization: Bearer`` (a repository or workspace access token, or a Data
    Center HTTP access token, with write permission). Cloud:
    ``POST /repositories/{workspace}/{slug}/commit/{sha}/statuses/build``; Data Center:
    ``POST /rest/build-status/1.0/commits/{sha}``. The status ``key`` is the context."""

    kind = "bitbucket_status"
    Settings = BitbucketStatusSettings
    STATES = {"success": "SUCCESSFUL", "failure": "FAILED", "pending": "INPROGRESS"}

    def _post_status(self, sha: str, context: str, state: str, description: str) -> None:
        s: BitbucketStatusSettings = self.settings
        body = {"state": state, "key": context[:40], "name": context, "url": s.target_url,
                "description": description[:255]}
        base = s.api_url.rstrip("/")
        url = (f"{base}/repositories/{s.repository}/commit/{sha}/statuses/build" if s.server == "cloud"
               else f"{base}/rest/build-status/1.0/commits/{sha}")
        self._send_json(url, body, {"Authorization": f"Bearer {self._token()}"})
