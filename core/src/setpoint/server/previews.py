"""Previews triggered by pull/merge request webhooks, off the reconcile loop.

One worker thread runs them one at a time; at most ``max_pending`` wait. A newer event of a pull
request that is still waiting replaces it in place (only its newest head is worth previewing), and
an event of a further pull request while the queue is full is refused (503, logged), so a flood of
pull request events costs at most one preview at a time and never holds a reconcile back: a preview
runs on drivers of its own (:mod:`setpoint.preview_sandbox`) and takes a target's run lock only to
copy its folder.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from setpoint.errors import ConfigError, SetpointError
from setpoint.opsconfig import WebhookPreviews, read_credential
from setpoint.preview import preview
from setpoint.preview_github import GitHubPoster, GitHubPullRequest
from setpoint.preview_gitlab import GitLabMergeRequest, GitLabPoster
from setpoint.preview_post import Poster, post, summary
from setpoint.secrets import Secret, safe_error
from setpoint.server.webhooks import PullRequest

if TYPE_CHECKING:
    from setpoint.engine.engine import Engine

log = logging.getLogger("setpoint.previews")

#: How long stopping the daemon waits for a preview in progress (a Terraform plan can take a while).
STOP_TIMEOUT = 30.0
API_URLS = {"github": "https://api.github.com", "gitlab": "https://gitlab.com/api/v4"}


class QueueFull(Exception):
    pass


@dataclass(frozen=True)
class PreviewJob:
    request: PullRequest
    #: The sources that follow the request's base branch of its repository.
    sources: tuple[str, ...]


class PreviewQueue:
    def __init__(self, run: Callable[[PreviewJob], None], max_pending: int) -> None:
        self.run = run
        self.max_pending = max_pending
        self._pending: OrderedDict[str, PreviewJob] = OrderedDict()
        self._cond = threading.Condition()
        self._stopped = False
        self.running: str | None = None
        self._thread = threading.Thread(target=self._loop, name="setpoint-previews", daemon=True)
        self._thread.start()

    def submit(self, job: PreviewJob) -> str:
        """Queue ``job``: "queued", or "replaced" (an older event of the same request was waiting);
        raises QueueFull."""
        key = job.request.key
        with self._cond:
            if self._stopped:
                raise QueueFull("the server is stopping")
            if key in self._pending:
                self._pending[key] = job  # keeps its place in the line: the newest head, not a new turn
                return "replaced"
            if len(self._pending) >= self.max_pending:
                raise QueueFull(f"{len(self._pending)} previews are waiting (server.webhooks.previews.max_pending)")
            self._pending[key] = job
            self._cond.notify()
            return "queued"

    def pending(self) -> list[str]:
        with self._cond:
            return list(self._pending)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                key, job = self._pending.popitem(last=False)
                self.running = key
            try:
                self.run(job)
            except Exception:  # noqa: BLE001 - one preview never stops the next
                log.exception("preview of %s failed", key)
            finally:
                with self._cond:
                    self.running = None
                    self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """For tests and shutdown: True once nothing waits or runs."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and self.running is None, timeout)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            dropped = list(self._pending)
            self._pending.clear()
            self._cond.notify_all()
        if dropped:
            log.warning("stopping: %d queued preview(s) dropped: %s", len(dropped), ", ".join(dropped))
        self._thread.join(STOP_TIMEOUT)


class Previewer:
    """Runs a queued preview on the engine and posts it on the request it came from."""

    def __init__(self, engine: Engine, config: WebhookPreviews) -> None:
        self.engine = engine
        self.api_urls: dict[str, str] = {}
        self.tokens: dict[str, Secret[str]] = {}
        problems = []
        for provider in ("github", "gitlab"):
            block = getattr(config, provider)
            if block is None:
                continue
            try:
                token = read_credential(block.token_file, block.token_env, engine.config.base_dir)
            except ValueError as exc:
                problems.append(f"server.webhooks.previews.{provider}: {exc}")
                continue
            self.tokens[provider] = Secret(token, f"{provider} preview token")
            self.api_urls[provider] = block.api_url or API_URLS[provider]
        if problems:
            raise ConfigError("\n".join(problems))

    def poster(self, request: PullRequest) -> Poster:
        token, url = self.tokens[request.provider], self.api_urls[request.provider]
        if request.provider == "github":
            return GitHubPoster(GitHubPullRequest(request.project, request.number, token, url))
        return GitLabPoster(GitLabMergeRequest(request.project, request.number, token, url))

    def __call__(self, job: PreviewJob) -> None:
        request = job.request
        poster = self.poster(request)
        try:
            try:
                report = preview(self.engine, request.ref, sources=job.sources)
            except SetpointError as exc:
                # the ref could not be fetched or resolved: say so on the request, without a comment
                poster.status(request.head_sha, "error", f"setpoint could not preview: {safe_error(exc)}")
                log.warning("preview of %s: %s", request.key, safe_error(exc))
                return
            where = post(poster, report, [request.head_sha])
            log.info("preview of %s at %s: %s (%s)", request.key, request.head_sha[:12], summary(report), where)
        except SetpointError as exc:
            log.warning("preview of %s could not be posted: %s", request.key, safe_error(exc))
        finally:
            poster.close()
