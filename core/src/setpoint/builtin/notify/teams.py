"""The ``teams`` notifier: a Microsoft Teams channel through an incoming webhook URL, either a
Workflows ("Post to a channel when a webhook request is received") URL or a legacy Office 365
connector URL. Both accept a message with one Adaptive Card attachment, which is what is sent."""

from __future__ import annotations

import json
from typing import Any

from setpoint.api import Notification
from setpoint.builtin.notify.builtin import HTTPNotifier
from setpoint.builtin.notify.credentials import Strict

#: Adaptive Card text colours per severity.
_COLOURS = {"error": "Attention", "warning": "Warning", "info": "Good"}


class TeamsSettings(Strict):
    #: A link shown as the card's button (a dashboard, setpoint's status API).
    link_url: str | None = None
    link_title: str = "Open"


def card(n: Notification, settings: TeamsSettings) -> dict[str, Any]:
    """The documented message shape: ``type: message`` with one ``AdaptiveCard`` attachment."""
    facts = [{"title": key, "value": value} for key, value in n.fields.items()]
    facts += [{"title": target, "value": result} for target, result in n.targets.items()]
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": n.title, "weight": "Bolder", "size": "Medium", "wrap": True,
         "color": _COLOURS.get(n.severity, "Default")},
        {"type": "TextBlock", "text": n.text, "wrap": True},
    ]
    if facts:
        body.append({"type": "FactSet", "facts": facts})
    content: dict[str, Any] = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                               "type": "AdaptiveCard", "version": "1.4", "body": body}
    if settings.link_url:
        content["actions"] = [{"type": "Action.OpenUrl", "title": settings.link_title, "url": settings.link_url}]
    return {"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": content}]}


class TeamsNotifier(HTTPNotifier):
    kind = "teams"
    Settings = TeamsSettings

    def send(self, notification: Notification) -> None:
        self._post(json.dumps(card(notification, self.settings or TeamsSettings())).encode(), {})
