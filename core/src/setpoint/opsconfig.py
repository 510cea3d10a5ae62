"""The ``server:`` and ``notifications:`` blocks of setpoint.yaml (docs/operations.md).

Kept apart from :mod:`setpoint.config` so the core models stay short; this module imports nothing
from setpoint but durations, so config.py can import it without a cycle. Every credential (API
tokens, webhook secrets, notifier URLs) is named by a file or an environment variable, never
written inline: setpoint.yaml lives in Git and is shown in reviews.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from setpoint.durationtype import Duration

#: Names of the notification events a notifier may subscribe to (docs/operations.md).
NOTIFICATION_EVENTS = ("failed", "recovered", "drift_detected", "drift_repaired", "held", "paused", "resumed",
                       "deployed", "digest")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _one_source(file: Any, env: Any, what: str) -> None:
    if (file is None) == (env is None):
        raise ValueError(f"give exactly one of {what}_file or {what}_env (credentials are never written inline)")


def read_credential(file: Path | None, env: str | None, base_dir: Path) -> str:
    """The value behind a ``*_file`` / ``*_env`` pair; raises ValueError naming what is missing."""
    if file is not None:
        path = Path(os.path.expanduser(str(file)))
        path = path if path.is_absolute() else base_dir / path
        try:
            value = path.read_text().strip()
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror or exc.__class__.__name__}") from None
        if not value:
            raise ValueError(f"{path} is empty")
        return value
    value = os.environ.get(env or "", "").strip()
    if not value:
        raise ValueError(f"environment variable {env} is not set or empty")
    return value


class TokenConfig(_Strict):
    """One API bearer token. ``name`` is the caller's identity in the audit log."""

    name: str = Field(pattern=r"^[A-Za-z0-9._@-]{1,64}$")
    file: Path | None = None
    env: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> TokenConfig:
        if (self.file is None) == (self.env is None):
            raise ValueError("give exactly one of file or env for a token (tokens are never written inline)")
        return self


class WebhookSecret(_Strict):
    """A Git host's webhook secret (GitHub, Gitea, Bitbucket: HMAC key; GitLab: the secret token)."""

    secret_file: Path | None = None
    secret_env: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> WebhookSecret:
        _one_source(self.secret_file, self.secret_env, "secret")
        return self


class GenericWebhook(WebhookSecret):
    #: A signed request whose timestamp is further than this from the server's clock is refused.
    max_skew: Duration = 300.0


class PreviewPoster(_Strict):
    """Where a webhook-triggered preview is posted: the host's API and a token allowed to comment on
    pull/merge requests and set commit statuses."""

    token_file: Path | None = None
    token_env: str | None = None
    api_url: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> PreviewPoster:
        _one_source(self.token_file, self.token_env, "token")
        if self.api_url is not None and not self.api_url.startswith(("https://", "http://")):
            raise ValueError("api_url must be an http(s) URL")
        return self


class WebhookPreviews(_Strict):
    """Previews of pull/merge requests on their webhook events (docs/git-safety.md)."""

    github: PreviewPoster | None = None
    gitlab: PreviewPoster | None = None
    #: Previews waiting beside the one running; a further pull request's event is refused (503).
    max_pending: int = Field(default=8, ge=1, le=1000)
    #: Preview requests from forks too. Off by default: a preview renders the request's code with
    #: this daemon's credentials and decrypted secrets (a Terraform plan runs its data sources).
    forks: bool = False


class Webhooks(_Strict):
    github: WebhookSecret | None = None
    gitlab: WebhookSecret | None = None
    #: Gitea and Forgejo sign the same way; one secret serves /hooks/gitea and /hooks/forgejo.
    gitea: WebhookSecret | None = None
    bitbucket: WebhookSecret | None = None
    generic: GenericWebhook | None = None
    #: Preview pull requests (GitHub ``pull_request``) and merge requests (GitLab) when they are
    #: opened or pushed to, and post the result on them; off without this block.
    previews: WebhookPreviews | None = None
    #: How long a delivery ID is remembered to refuse a replay, and how many are kept at most.
    replay_window: Duration = 86400.0
    replay_cache_size: int = Field(default=10000, ge=100, le=1_000_000)


class TLSConfig(_Strict):
    cert_file: Path
    key_file: Path


class ServerConfig(_Strict):
    """The HTTP server inside ``setpoint run``: webhooks, /metrics, /healthz, /readyz, /api/v1."""

    enabled: bool = True
    #: host:port; ``[::1]:9464`` for IPv6. Port 0 picks a free port (logged at startup).
    listen: str = "127.0.0.1:9464"
    tls: TLSConfig | None = None
    #: Requests with a larger body are refused with 413 before they are read completely.
    max_body_bytes: int = Field(1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    #: Tokens for the read-only status API.
    status_tokens: tuple[TokenConfig, ...] = ()
    #: Tokens for mutating calls (sync now, approve, pause, resume); they can also read.
    admin_tokens: tuple[TokenConfig, ...] = ()
    #: Require a status (or admin) token on /metrics too, for a listen address beyond loopback.
    metrics_require_token: bool = False
    webhooks: Webhooks = Webhooks()

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        split_listen(value)
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> ServerConfig:
        names = [t.name for t in (*self.status_tokens, *self.admin_tokens)]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"token name(s) used twice: {', '.join(duplicates)} (the name identifies the caller)")
        if self.metrics_require_token and not names:
            raise ValueError("metrics_require_token needs at least one status_tokens (or admin_tokens) entry; "
                             "Prometheus sends it with `authorization: {credentials_file: ...}`")
        return self


def split_listen(value: str) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``) into its parts; raises ValueError with the expected form."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host or int(port) > 65535:
        raise ValueError(f"listen must be host:port, e.g. 127.0.0.1:9464 or [::1]:9464 (got {value!r})")
    return host.strip("[]"), int(port)


class Digest(_Strict):
    """One message per commit listing every target it was deployed to, instead of one per target."""

    enabled: bool = True
    #: How long after the first target deployed a commit the digest is sent.
    window: Duration = 30.0


class NotifierConfig(BaseModel):
    """One notifier. The kind's own settings go in a block named after the kind (``slack:``)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$")
    kind: str
    #: The endpoint is a credential (an incoming-webhook URL embeds its token): file or env only.
    url_file: Path | None = None
    url_env: str | None = None
    #: Only these events (default: all); see NOTIFICATION_EVENTS.
    events: tuple[str, ...] = ()
    #: Only these targets (default: all).
    targets: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> NotifierConfig:
        if self.url_file is not None and self.url_env is not None:
            raise ValueError("give one of url_file or url_env, not both")
        unknown = sorted(set(self.events) - set(NOTIFICATION_EVENTS))
        if unknown:
            raise ValueError(f"unknown event(s) {', '.join(unknown)}; known: {', '.join(NOTIFICATION_EVENTS)}")
        extras = sorted(set(self.model_extra or {}) - {self.kind})
        if extras:
            raise ValueError(f"unknown key(s) {', '.join(extras)}; a notifier takes name, kind, url_file, url_env, "
                             f"events, targets and one settings block named after its kind ({self.kind}:)")
        return self

    @property
    def settings_block(self) -> dict[str, Any]:
        return dict((self.model_extra or {}).get(self.kind) or {})


class NotificationsConfig(_Strict):
    #: Alert after this many consecutive failed reconciles of a target (then stay quiet until it heals).
    failure_threshold: int = Field(3, ge=1, le=1000)
    #: Send the same (target, revision, event) message again after this long; default never.
    repeat_after: Duration | None = None
    digest: Digest = Digest()
    notifiers: tuple[NotifierConfig, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> NotificationsConfig:
        names = [n.name for n in self.notifiers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate notifier name(s): {', '.join(duplicates)}")
        return self


class LifecycleConfig(_Strict):
    """How ``setpoint run`` stops (docs/operations.md, "Stopping")."""

    #: After SIGTERM/SIGINT, how long running reconciles (an apply in flight) may take to finish; a
    #: second signal or the end of this grace stops at once and records them as interrupted.
    shutdown_grace: Duration = Field(120.0, ge=0)

