"""Live-state events: the Docker events stream of one project wakes its target within a second.

One daemon thread per target follows ``/events`` filtered by the project label. Lifecycle events
that can mean drift (die, stop, kill, destroy, rename, update, pause, oom, health_status) call
``trigger``; the scheduler coalesces bursts (a ``docker stop`` sends kill, die and stop). Exec
events from healthchecks are ignored. When the stream breaks (the daemon restarted, the host went
away) it reconnects with back-off and triggers once, since events may have been missed meanwhile.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from setpoint.errors import TemporaryError
from setpoint_docker_compose.connection import UNREACHABLE
from setpoint_docker_compose.observe import PROJECT, SERVICE

WATCHED = frozenset({"die", "stop", "kill", "destroy", "rename", "update", "pause", "oom", "health_status"})


class EventWatcher:
    def __init__(self, make_client: Callable[[], Any], project: str, trigger: Callable[[str], None],
                 log: logging.Logger | logging.LoggerAdapter[Any],
                 touched: Callable[[str | None], None] = lambda container_id: None) -> None:
        self.make_client = make_client
        self.project = project
        self.trigger = trigger
        #: Told which container an event was about (None: any of them, events may have been missed)
        #: before the target is woken, so the next observe inspects it instead of trusting a cache.
        self.touched = touched
        self.log = log
        self._stop = threading.Event()
        self._stream: Any = None
        self._client: Any = None
        self._thread = threading.Thread(target=self._loop, name=f"setpoint-docker-events-{project}", daemon=True)
        #: Set once the stream is open (tests wait on it).
        self.connected = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        for closable in (self._stream, self._client):
            try:
                if closable is not None:
                    closable.close()
            except Exception:  # noqa: BLE001, S110 - closing a broken stream may fail; we are leaving anyway
                pass
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        delay, first, was_open = 0.5, True, False
        while not self._stop.is_set():
            try:
                self._client = self.make_client()
                self._stream = self._client.events(decode=True, filters={
                    "type": "container", "label": f"{PROJECT}={self.project}"})
                if self._stop.is_set():  # stop() ran while we connected: it may have missed this stream
                    return
                self.connected.set()
                was_open = True
                if not first:
                    self.log.info("Docker events stream for project %s reconnected", self.project)
                    self.touched(None)
                    self.trigger("event:docker:reconnected")
                first, delay = False, 0.5
                for event in self._stream:
                    if self._stop.is_set():
                        return
                    self._handle(event)
                if not self._stop.is_set():
                    self.log.info("Docker events stream for project %s ended; reconnecting", self.project)
            except (*UNREACHABLE, TemporaryError) as exc:
                if self._stop.is_set():
                    return
                self.log.info("Docker events stream for project %s lost (%s); retrying in %.1fs",
                              self.project, type(exc).__name__, delay)
                if was_open:
                    # the host may be gone: one reconcile now, so the target's status says so (its
                    # observe fails and the core backs off) instead of waiting for the interval
                    was_open = False
                    self.trigger("event:docker:lost")
            except Exception:  # noqa: BLE001 - the watcher must outlive anything the stream does
                self.log.exception("Docker events stream for project %s failed", self.project)
            finally:
                self.connected.clear()
                for closable in (self._stream, self._client):
                    try:
                        if closable is not None:
                            closable.close()
                    except Exception:  # noqa: BLE001, S110
                        pass
                self._stream = self._client = None
            first = False
            self._stop.wait(delay)
            delay = min(delay * 2, 30.0)

    def _handle(self, event: dict[str, Any]) -> None:
        action = str(event.get("Action") or event.get("status") or "")
        base = action.split(":", 1)[0].strip()
        if base not in WATCHED:
            return
        actor = event.get("Actor") or {}
        attributes = actor.get("Attributes") or {}
        service = attributes.get(SERVICE, "?")
        self.touched(actor.get("ID") or event.get("id") or None)
        self.trigger(f"event:docker:{base}:{service}")
