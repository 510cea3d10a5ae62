"""The hooks a setpoint plugin may implement.

There are few on purpose. Target kinds and decryptors are *registered* (one owner per name, typed
base classes in :mod:`setpoint.api`); the remaining hooks let a plugin veto a plan or observe
outcomes. Built-in functionality uses exactly these hooks. Each hook is documented in
docs/writing-plugins.md and has a test in tests/core/test_hooks.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

from setpoint.api import (
    Decryptor,
    Denial,
    Health,
    Notifier,
    Outcome,
    Plan,
    Resource,
    TargetDriver,
    TargetInfo,
)

hookspec = pluggy.HookspecMarker("setpoint")


@hookspec
def setpoint_register_target_kinds(register: Callable[[type[TargetDriver]], None]) -> None:
    """Register the target kinds this plugin provides.

    Called once when the plugin manager is built. Call ``register(DriverClass)`` for each
    :class:`setpoint.api.TargetDriver` subclass; its ``kind`` must be unique across all plugins
    (a duplicate marks both plugins' kinds as failed to load).

    :param register: the registration callback.
    :returns: nothing.
    """


@hookspec
def setpoint_register_decryptors(register: Callable[[type[Decryptor]], None]) -> None:
    """Register the encrypted-file formats this plugin can decrypt.

    Called once when the plugin manager is built. Call ``register(DecryptorClass)`` for each
    :class:`setpoint.api.Decryptor` subclass; its ``name`` is the key of its settings block under
    ``secrets:`` in setpoint.yaml.

    :param register: the registration callback.
    :returns: nothing.
    """


@hookspec
def setpoint_register_notifiers(register: Callable[[type[Notifier]], None]) -> None:
    """Register the notifier kinds this plugin provides (chat webhooks, commit status, paging).

    Called once by ``setpoint run`` when it starts its notifications. Call ``register(NotifierClass)``
    for each :class:`setpoint.api.Notifier` subclass; its ``kind`` is what a notifier's ``kind:``
    names under ``notifications.notifiers`` in setpoint.yaml and must be unique across plugins.
    The core owns noise control (failure threshold, one message per target, revision and event,
    recovery messages, per-commit digests) and retries; a notifier only delivers.

    :param register: the registration callback.
    :returns: nothing.
    """


@hookspec(firstresult=True)
def setpoint_review_plan(target: TargetInfo, plan: Plan, drift: bool) -> Denial | None:
    """Review a plan before it is applied and optionally veto it.

    Called once per reconcile that has something to apply, after the core's own safety checks
    (empty render, deletion budget) passed and before ``apply``. Not called for dry runs.
    Stops at the first non-``None`` result: a :class:`setpoint.api.Denial` holds the plan (it is
    audited with its reason and shown in status); nothing is applied.

    :param target: the target the plan is for.
    :param plan: the plan; secret values in it are :class:`setpoint.secrets.Secret`.
    :param drift: True when the plan reverts drift rather than deploying a new revision.
    :returns: a ``Denial`` to stop the plan, or ``None`` to let it through.
    """


@hookspec
def setpoint_reconcile_finished(outcome: Outcome) -> None:
    """Observe the outcome of one reconcile (for notifications, metrics, external status).

    Called after every reconcile of every target, also failed and paused ones, from the target's
    worker thread; keep it fast and never raise (an exception is logged and ignored).

    :param outcome: what happened; it holds no secret values.
    :returns: nothing.
    """


@hookspec
def setpoint_event(name: str, target: TargetInfo | None, details: dict[str, Any]) -> None:
    """Observe an operator event that is not a reconcile: ``paused``, ``resumed``, ``approved``,
    ``plugin_load_failed``, ``source_polled`` (every successful poll; details: source, moved,
    seconds), ``source_fetched``, ``source_poll_failed``, and from ``setpoint run``'s
    server ``webhook_received`` (details: provider, result) and ``notification_sent`` (details:
    notifier, kind, event, result).

    Called from whichever thread produced the event; never raise.

    :param name: the event name.
    :param target: the target concerned, if any.
    :param details: JSON-safe details without secret values.
    :returns: nothing.
    """


@hookspec(firstresult=True)
def setpoint_check_health(target: TargetInfo, resource: Resource) -> Health | None:
    """Judge the health of one live resource that a target driver cannot judge itself (a custom
    resource with its own status conventions, for example).

    Called by a target driver through ``context.check_health(resource)`` while it computes health,
    typically once per resource of a kind it has no built-in check for. Stops at the first
    non-``None`` result.

    :param target: the target the resource belongs to.
    :param resource: the live resource (``body`` as the driver observed it, ``meta`` included).
    :returns: a :class:`setpoint.api.Health`, or ``None`` to leave the decision to others.
    """
