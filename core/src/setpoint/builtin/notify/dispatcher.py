"""Delivery: one background thread sends what the policy decided, with retries and back-off.

Hooks run on reconcile worker threads and must stay fast, so they only queue. A send that keeps
failing is logged with the notifier's name and a reason that cannot hold a credential (an HTTP
status or an exception class, never the exception text, which may include the webhook URL).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from setpoint.api import Notification, Notifier
from setpoint.builtin.notify.policy import NoisePolicy, clean

log = logging.getLogger("setpoint.notify")

Emit = Callable[[str, Any, dict[str, Any]], None]


@dataclass(frozen=True)
class Route:
    """A configured notifier and the events and targets it wants."""

    name: str
    notifier: Notifier
    events: frozenset[str] = frozenset()
    targets: frozenset[str] = frozenset()

    def wants(self, n: Notification) -> bool:
        if self.events and n.event not in self.events:
            return False
        if not self.targets:
            return True
        if n.target is not None:
            return n.target in self.targets
        return bool(self.targets & set(n.targets))


def failure_reason(exc: BaseException) -> str:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return f"HTTP {status}" if status else exc.__class__.__name__


def scrubbed(n: Notification) -> Notification:
    """The last line of defence: re-scrub every text field right before it leaves the process."""
    return replace(n, title=clean(n.title, 150), text=clean(n.text, 1500),
                   fields={clean(k, 40): clean(v, 200) for k, v in n.fields.items()},
                   targets={clean(k, 80): clean(v, 40) for k, v in n.targets.items()})


class Dispatcher:
    def __init__(self, routes: list[Route], policy: NoisePolicy, emit: Emit, attempts: int = 3,
                 backoff: float = 0.5) -> None:
        self.routes = routes
        self.policy = policy
        self.emit = emit
        self.attempts = attempts
        self.backoff = backoff
        self._queue: queue.Queue[Notification] = queue.Queue(maxsize=10000)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy = False

    def submit(self, notifications: Iterable[Notification]) -> None:
        for n in notifications:
            try:
                self._queue.put_nowait(n)
            except queue.Full:
                log.error("notification queue full: dropping a %s message for %s", n.event, n.target or "-")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="setpoint-notify", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Send pending digests (a process alone on its state; with several replicas they stay stored for
        the next holder of the duty) and queued messages (bounded by ``timeout``), then stop."""
        self.submit(self.policy.due_digests(force=True))
        self.drain(timeout)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for route in self.routes:
            try:
                route.notifier.close()
            except Exception:  # noqa: BLE001 - closing must not stop shutdown
                log.warning("notifier %s did not close cleanly", route.name)

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is queued or being sent (digests not yet due are not waited for)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0 and not self._busy:
                return True
            time.sleep(0.02)
        return False

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                n: Notification | None = self._queue.get(timeout=0.1)
            except queue.Empty:
                n = None
            if n is not None:
                self._busy = True
                try:
                    self._deliver(n)
                finally:
                    self._busy = False
                    self._queue.task_done()
            self.submit(self.policy.due_digests())

    def _deliver(self, n: Notification) -> None:
        n = scrubbed(n)
        for route in self.routes:
            if not route.wants(n):
                continue
            result = "failed"
            for attempt in range(1, self.attempts + 1):
                try:
                    route.notifier.send(n)
                    result = "sent"
                    break
                except Exception as exc:  # noqa: BLE001 - a notifier must never stop the others
                    log.warning("notifier %s: sending a %s message failed (%s), attempt %d of %d", route.name,
                                n.event, failure_reason(exc), attempt, self.attempts)
                    if attempt < self.attempts:
                        time.sleep(self.backoff * 2 ** (attempt - 1))
            self.emit("notification_sent", None, {"notifier": route.name, "kind": route.notifier.kind,
                                                  "event": n.event, "result": result})
