"""Notifications: the built-in plugin that turns outcomes into few, useful, secret-free messages.

It is registered like an external plugin (``setpoint_register_notifiers`` for its kinds,
``setpoint_reconcile_finished`` and ``setpoint_event`` to observe). The loader gives every engine
its own instance (``make_plugin``); it stays silent until ``setpoint run`` calls :meth:`start`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from setpoint import hookimpl
from setpoint.api import Notification, Notifier, Outcome, TargetInfo
from setpoint.builtin.notify.builtin import SlackNotifier, WebhookNotifier
from setpoint.builtin.notify.commit_status import (
    BitbucketStatusNotifier,
    ForgejoStatusNotifier,
    GiteaStatusNotifier,
    GitLabStatusNotifier,
)
from setpoint.builtin.notify.dispatcher import Dispatcher
from setpoint.builtin.notify.email import EmailNotifier
from setpoint.builtin.notify.github_status import GitHubStatusNotifier
from setpoint.builtin.notify.incident import AlertmanagerNotifier, OpsgenieNotifier, PagerDutyNotifier
from setpoint.builtin.notify.policy import NoisePolicy
from setpoint.builtin.notify.teams import TeamsNotifier

if TYPE_CHECKING:
    from setpoint.builtin.engine_view import EngineView

log = logging.getLogger("setpoint.notify")
#: Key in the state store's meta table where schema 5 and earlier kept the sent (target, revision, event)
#: keys; they now live in the notify_sent table (setpoint.builtin.notify.shared), imported once.
SENT_KEYS = "notify.sent_keys"


class NotifyPlugin:
    def __init__(self) -> None:
        self.policy: NoisePolicy | None = None
        self.dispatcher: Dispatcher | None = None

    @hookimpl
    def setpoint_register_notifiers(self, register: Callable[[type[Notifier]], None]) -> None:
        register(SlackNotifier)
        register(WebhookNotifier)
        register(GitHubStatusNotifier)
        register(TeamsNotifier)
        register(PagerDutyNotifier)
        register(OpsgenieNotifier)
        register(AlertmanagerNotifier)
        register(EmailNotifier)
        register(GitLabStatusNotifier)
        register(GiteaStatusNotifier)
        register(ForgejoStatusNotifier)
        register(BitbucketStatusNotifier)

    @hookimpl
    def setpoint_reconcile_finished(self, outcome: Outcome) -> None:
        if self.policy is not None and self.dispatcher is not None:
            policy = self.policy
            self._submit(lambda: policy.outcome(outcome))

    @hookimpl
    def setpoint_event(self, name: str, target: TargetInfo | None, details: dict[str, Any]) -> None:
        if self.policy is not None and self.dispatcher is not None:
            policy = self.policy
            self._submit(lambda: policy.event(name, target, details))

    def _submit(self, decide: Callable[[], list[Notification]]) -> None:
        """The memory is in the state store: when it cannot be reached the message is dropped (at most
        once) and the other observers of the hook (metrics) still run."""
        dispatcher = self.dispatcher
        try:
            notifications = decide()
        except Exception as exc:  # noqa: BLE001 - a notification never breaks a reconcile's observers
            log.warning("notifications: could not consult the shared memory (%s); nothing sent for this event",
                        type(exc).__name__)
            return
        if dispatcher is not None:
            dispatcher.submit(notifications)

    def start(self, engine: EngineView, backoff: float = 0.5) -> None:
        """Build the configured notifiers (raises ConfigError) and start sending."""
        from setpoint.builtin.notify.setup import build_routes
        from setpoint.builtin.notify.shared import SharedMemory

        routes = build_routes(engine.config, engine.registry)
        if not routes:
            return  # nobody to tell: no memory to keep either (no write per reconcile for nothing)
        settings = engine.config.notifications
        # with several replicas (a PostgreSQL state) the cluster's duties are leases: the digests are
        # sent by the replica holding duty:notify; on SQLite the one process holds every duty
        memory = SharedMemory(engine.store, getattr(engine, "leases", None))
        policy = NoisePolicy(settings.failure_threshold, settings.repeat_after, settings.digest.enabled,
                             settings.digest.window, memory=memory)
        _import_legacy_keys(engine)
        for name, status in engine.store.all_status().items():
            if status.consecutive_failures:
                policy.resume_from(name, status.consecutive_failures, status.revision)
        dispatcher = Dispatcher(routes, policy, engine.emit, backoff=backoff)
        dispatcher.start()
        self.policy, self.dispatcher = policy, dispatcher

    def stop(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.stop()
        self.policy = self.dispatcher = None


def _import_legacy_keys(engine: EngineView) -> None:
    """Up to schema 5 the sent keys were one JSON list in the meta table: move them to notify_sent once."""
    stored = engine.store.get_meta(SENT_KEYS)
    if stored is None:
        return
    try:
        keys = [(str(t), str(r), str(e)) for t, r, e in json.loads(stored)]
    except (ValueError, TypeError):
        log.warning("the stored notification memory is unreadable; starting afresh")
        keys = []
    for key in keys:
        engine.store.claim_notification(*key)
    engine.store.delete_meta(SENT_KEYS)


def make_plugin() -> NotifyPlugin:
    """Called by the plugin loader once per registry (see setpoint.plugins)."""
    return NotifyPlugin()
