"""The built-in chat and webhook notifier kinds: ``slack`` (any Slack-compatible incoming webhook:
Slack, Mattermost, Rocket.Chat, Discord's /slack endpoint) and ``webhook`` (a JSON document for
your own receiver, optionally HMAC-signed like setpoint's own generic webhook receiver). The third
built-in kind, ``github_status``, lives in github_status.py."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, model_validator

from setpoint.api import Notification, Notifier
from setpoint.opsconfig import read_credential
from setpoint.secrets import Secret, register_known_values

if TYPE_CHECKING:  # httpx is imported when a notifier first sends (one-shot commands never do)
    import httpx

#: Seconds a notification request may take.
TIMEOUT = 10.0
_ICONS = {"error": ":red_circle:", "warning": ":large_yellow_circle:", "info": ":large_green_circle:"}


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CredentialNotifier(Notifier):
    """A kind with credentials of its own (tokens, keys, passwords) named by a file or a variable."""

    #: Set by setpoint.builtin.notify.setup before the first send (relative paths need the config folder).
    base_dir: Path = Path(".")

    def _credential(self, file: Path | None, env: str | None, what: str) -> Secret[str]:
        """A credential from its file or variable, read at the first send and kept; from then on
        the scrubber blanks its value wherever it might appear."""
        cache: dict[str, Secret[str]] = self.__dict__.setdefault("_credentials", {})
        if what not in cache:
            value = read_credential(file, env, self.base_dir)
            register_known_values([value])
            cache[what] = Secret(value, f"notifier {self.name} {what}")
        return cache[what]


class HTTPNotifier(CredentialNotifier):
    def _client(self) -> httpx.Client:
        client = getattr(self, "_http", None)
        if client is None:
            import httpx

            # no redirects: a redirect could carry the request (and its URL token) somewhere else
            client = httpx.Client(timeout=TIMEOUT, follow_redirects=False,
                                  headers={"User-Agent": "setpoint-notifier"})
            self._http = client
        return client

    def _post(self, body: bytes, headers: dict[str, str]) -> None:
        assert self.url is not None
        response = self._client().post(self.url.reveal(), content=body,
                                       headers={"Content-Type": "application/json", **headers})
        response.raise_for_status()

    def close(self) -> None:
        client = getattr(self, "_http", None)
        if client is not None:
            client.close()


class SlackSettings(_Settings):
    #: Override the channel / user name / icon the incoming webhook posts as (where allowed).
    channel: str | None = None
    username: str | None = None
    icon_emoji: str | None = None


class SlackNotifier(HTTPNotifier):
    kind = "slack"
    Settings = SlackSettings

    def send(self, notification: Notification) -> None:
        settings: SlackSettings = self.settings or SlackSettings()
        icon = _ICONS.get(notification.severity, "")
        lines = [f"{icon} *{notification.title}*".strip(), notification.text]
        if notification.targets:
            lines.append(" · ".join(f"{t}: {r}" for t, r in notification.targets.items()))
        payload: dict[str, str] = {"text": "\n".join(lines)}
        for key in ("channel", "username", "icon_emoji"):
            value = getattr(settings, key)
            if value:
                payload[key] = value
        self._post(json.dumps(payload).encode(), {})


class WebhookSettings(_Settings):
    """Sign each body: ``X-Setpoint-Signature: sha256=HEX`` of HMAC-SHA256(key, TIMESTAMP + "." + body)
    with ``X-Setpoint-Timestamp: TIMESTAMP``, the scheme of setpoint's own /hooks/generic."""

    signing_secret_file: Path | None = None
    signing_secret_env: str | None = None

    @model_validator(mode="after")
    def _one(self) -> WebhookSettings:
        if self.signing_secret_file is not None and self.signing_secret_env is not None:
            raise ValueError("give one of signing_secret_file or signing_secret_env")
        return self


def sign(key: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class WebhookNotifier(HTTPNotifier):
    kind = "webhook"
    Settings = WebhookSettings

    def _key(self) -> Secret[str] | None:
        settings: WebhookSettings | None = self.settings
        if settings is None or (settings.signing_secret_file is None and settings.signing_secret_env is None):
            return None
        return self._credential(settings.signing_secret_file, settings.signing_secret_env, "signing secret")

    def send(self, notification: Notification) -> None:
        body = json.dumps({"source": "setpoint", "version": 1, **notification.to_record()}, sort_keys=True).encode()
        headers = {}
        key = self._key()
        if key is not None:
            stamp = str(int(time.time()))
            headers = {"X-Setpoint-Timestamp": stamp, "X-Setpoint-Signature": sign(key.reveal().encode(), stamp, body)}
        self._post(body, headers)
