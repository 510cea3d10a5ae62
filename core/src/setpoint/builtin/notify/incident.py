"""Incident kinds: ``pagerduty`` (Events API v2), ``opsgenie`` (Alert API) and ``alertmanager``
(Prometheus Alertmanager's API v2).

They open an incident when the core decides a target is failing (``failed``: after the failure
threshold, once per streak) and close the same incident when it reconciles again (``recovered``).
The incident is keyed by the target (``setpoint-TARGET``), so a new streak after a recovery opens a
new one. Other events are not incidents and are skipped; send them to a chat kind instead.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

from pydantic import BeforeValidator, Field, model_validator

from setpoint.api import Notification
from setpoint.builtin.notify.builtin import HTTPNotifier
from setpoint.builtin.notify.credentials import Strict, TokenSettings, exactly_one
from setpoint.durations import parse_duration

OPEN, CLOSE = "failed", "recovered"


def incident_key(n: Notification) -> str:
    return f"setpoint-{n.target}"


def _action(n: Notification) -> str | None:
    """``open``, ``close`` or None (not an incident event)."""
    if n.target is None:
        return None
    return {OPEN: "open", CLOSE: "close"}.get(n.event)


# --------------------------------------------------------------------------- PagerDuty


class PagerDutySettings(Strict):
    #: The integration's routing key (Events API v2 integration on a service): a credential.
    routing_key_file: Path | None = None
    routing_key_env: str | None = None
    #: ``https://events.eu.pagerduty.com/v2/enqueue`` for the EU service region.
    events_url: str = Field(default="https://events.pagerduty.com/v2/enqueue", pattern=r"^https?://")
    severity: Literal["critical", "error", "warning", "info"] = "error"
    #: ``payload.source``: where the problem is (default: ``setpoint``).
    source: str = Field(default="setpoint", min_length=1, max_length=255)
    #: A link shown on the incident (a dashboard, setpoint's status API).
    client_url: str | None = Field(default=None, pattern=r"^https?://")

    @model_validator(mode="after")
    def _one_key(self) -> PagerDutySettings:
        exactly_one(self, "routing_key")
        return self


class PagerDutyNotifier(HTTPNotifier):
    """Events v2: ``trigger`` on ``failed``, ``resolve`` with the same ``dedup_key`` on ``recovered``."""

    kind = "pagerduty"
    Settings = PagerDutySettings
    needs_url = False

    def send(self, notification: Notification) -> None:
        action = _action(notification)
        if action is None:
            return
        s: PagerDutySettings = self.settings
        key = self._credential(s.routing_key_file, s.routing_key_env, "routing key")
        event: dict[str, Any] = {"routing_key": key.reveal(), "dedup_key": incident_key(notification),
                                 "event_action": "trigger" if action == "open" else "resolve"}
        if action == "open":
            event["payload"] = {
                "summary": notification.title + ": " + notification.text[:900],
                "source": s.source, "severity": s.severity, "component": notification.target,
                "group": notification.kind or "", "class": notification.fields.get("stage", "reconcile"),
                "custom_details": dict(notification.fields),
            }
            event["client"] = "setpoint"
            if s.client_url:
                event["client_url"] = s.client_url
        response = self._client().post(s.events_url, content=json.dumps(event).encode(),
                                       headers={"Content-Type": "application/json"})
        response.raise_for_status()


# --------------------------------------------------------------------------- Opsgenie


class OpsgenieSettings(TokenSettings):
    """``token_file``/``token_env``: an API key of an "API" integration (sent as ``GenieKey``)."""

    #: ``https://api.eu.opsgenie.com`` for the EU instance.
    api_url: str = Field(default="https://api.opsgenie.com", pattern=r"^https?://")
    priority: Literal["P1", "P2", "P3", "P4", "P5"] = "P3"
    tags: list[str] = Field(default_factory=lambda: ["setpoint"])
    #: Teams, users, escalations or schedules to notify, as Opsgenie's ``responders`` objects.
    responders: list[dict[str, str]] = Field(default_factory=list)


class OpsgenieNotifier(HTTPNotifier):
    """Create an alert (``alias`` = the incident key) on ``failed``; close it by alias on ``recovered``."""

    kind = "opsgenie"
    Settings = OpsgenieSettings
    needs_url = False

    def send(self, notification: Notification) -> None:
        action = _action(notification)
        if action is None:
            return
        s: OpsgenieSettings = self.settings
        key = self._credential(s.token_file, s.token_env, "API key")
        base = s.api_url.rstrip("/")
        alias = incident_key(notification)
        if action == "open":
            url = f"{base}/v2/alerts"
            body: dict[str, Any] = {
                "message": notification.title[:130], "alias": alias[:512], "description": notification.text[:15000],
                "tags": [*s.tags, notification.kind or "unknown"], "details": dict(notification.fields),
                "entity": notification.target, "source": "setpoint", "priority": s.priority}
            if s.responders:
                body["responders"] = s.responders
        else:
            url = f"{base}/v2/alerts/{quote(alias, safe='')}/close?identifierType=alias"
            body = {"source": "setpoint", "user": "setpoint", "note": notification.text[:25000]}
        response = self._client().post(url, content=json.dumps(body).encode(), headers={
            "Content-Type": "application/json", "Authorization": f"GenieKey {key.reveal()}"})
        response.raise_for_status()


# --------------------------------------------------------------------------- Alertmanager


class AlertmanagerSettings(Strict):
    #: Alertmanager's base URL (``http://alertmanager:9093``); not a credential.
    url: str = Field(pattern=r"^https?://")
    #: Optional bearer token (an authenticating proxy in front of Alertmanager).
    token_file: Path | None = None
    token_env: str | None = None
    #: Extra labels on every alert (routing: ``team: platform``).
    labels: dict[str, str] = Field(default_factory=dict)
    #: Alertmanager resolves an alert nobody re-sends at its ``endsAt``. setpoint sends one alert per
    #: failure streak, so it asks for this long; the recovery message resolves it earlier.
    expires_after: Annotated[float, BeforeValidator(parse_duration)] = 7 * 86400
    generator_url: str | None = Field(default=None, pattern=r"^https?://")

    @model_validator(mode="after")
    def _at_most_one_token(self) -> AlertmanagerSettings:
        if self.token_file is not None and self.token_env is not None:
            raise ValueError("give one of token_file or token_env")
        return self


def _rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class AlertmanagerNotifier(HTTPNotifier):
    """``POST /api/v2/alerts``: alert ``SetpointTargetFailing`` (labels target, kind, severity) on
    ``failed``; the same labels with ``endsAt`` = now on ``recovered``, which resolves it."""

    kind = "alertmanager"
    Settings = AlertmanagerSettings
    needs_url = False

    def send(self, notification: Notification) -> None:
        action = _action(notification)
        if action is None:
            return
        s: AlertmanagerSettings = self.settings
        now = time.time()
        labels = {"severity": "page", **s.labels, "alertname": "SetpointTargetFailing",
                  "target": notification.target or "", "kind": notification.kind or "unknown", "source": "setpoint"}
        alert: dict[str, Any] = {"labels": labels, "annotations": {"summary": notification.title,
                                                                  "description": notification.text}}
        if action == "open":
            alert["startsAt"], alert["endsAt"] = _rfc3339(now), _rfc3339(now + s.expires_after)
        else:
            alert["endsAt"] = _rfc3339(now)
        if s.generator_url:
            alert["generatorURL"] = s.generator_url
        headers = {"Content-Type": "application/json"}
        if s.token_file is not None or s.token_env is not None:
            headers["Authorization"] = f"Bearer {self._credential(s.token_file, s.token_env, 'token').reveal()}"
        response = self._client().post(f"{s.url.rstrip('/')}/api/v2/alerts", content=json.dumps([alert]).encode(),
                                       headers=headers)
        response.raise_for_status()
