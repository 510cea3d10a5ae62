"""How ``setpoint run`` stops and reloads (docs/operations.md, "Stopping and reloading").

The first SIGTERM (or SIGINT) stops new work; reconciles already running, an apply among them, may
finish within ``lifecycle.shutdown_grace``. A second signal, or the grace running out, stops at
once: every target still reconciling gets an ``interrupted`` audit entry (so nobody wonders later
whether that apply happened), then the process exits with status 143. Either way a ``shutdown``
entry records how it ended. SIGHUP re-reads setpoint.yaml (setpoint.reload).

Signal handlers run on the main thread, which may be inside the state store at that moment, so the
handler never touches the store itself: the hard stop runs on a thread of its own.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from setpoint.durations import format_duration
from setpoint.state.status import AuditAction

if TYPE_CHECKING:
    from setpoint.engine.engine import Engine
    from setpoint.engine.scheduler import Scheduler

log = logging.getLogger("setpoint")

#: Exit status after a hard stop (128 + SIGTERM, what a shell reports for a terminated process).
EXIT_INTERRUPTED = 143


class Shutdown:
    def __init__(self, engine: Engine, scheduler: Scheduler, grace: float,
                 exit: Callable[[int], None] = os._exit) -> None:
        self.engine = engine
        self.scheduler = scheduler
        self.grace = grace
        self._exit = exit
        self._lock = threading.Lock()
        self._requested_at: float | None = None
        self._waiting_for: list[str] = []
        self._hard = False
        self._timer: threading.Timer | None = None

    @property
    def requested(self) -> bool:
        """A stop signal arrived (the daemon's loop starts no new engine after a reload)."""
        with self._lock:
            return self._requested_at is not None

    def request(self, signame: str) -> None:
        """A stop signal arrived (called from the signal handler)."""
        with self._lock:
            first = self._requested_at is None
            if first:
                self._requested_at = time.monotonic()
        if not first:
            self._stop_now(f"a second {signame}")
            return
        self._waiting_for = self.scheduler.in_flight()
        self.scheduler.stop()
        if self._waiting_for:
            log.info("received %s: waiting up to %s for %s to finish (send it again to stop at once)", signame,
                     format_duration(self.grace), ", ".join(self._waiting_for))
        else:
            log.info("received %s, stopping", signame)
        self._timer = threading.Timer(self.grace, self._stop_now_sync,
                                      args=(f"the shutdown grace of {format_duration(self.grace)} ran out",))
        self._timer.daemon = True
        self._timer.start()

    def finished(self) -> None:
        """The scheduler returned: every reconcile ended by itself."""
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            if self._hard or self._requested_at is None:
                return
            waited = time.monotonic() - self._requested_at
        self.engine.store.audit(AuditAction.SHUTDOWN, result="ok", actor="setpoint", duration=waited,
                                details={"finished": self._waiting_for, "grace_seconds": self.grace})

    def _stop_now(self, reason: str) -> None:
        threading.Thread(target=self._stop_now_sync, args=(reason,), name="setpoint-stop-now", daemon=True).start()

    def _stop_now_sync(self, reason: str) -> None:
        with self._lock:
            if self._hard:
                return
            self._hard = True
        running = self.scheduler.in_flight()
        try:
            for name in running:
                runner = self.engine.runners.get(name)
                self.engine.store.audit(AuditAction.INTERRUPTED, target=name, kind=runner.target.kind if runner else None,
                                        result="interrupted", actor="setpoint", trigger="shutdown",
                                        details={"reason": reason})
            self.engine.store.audit(AuditAction.SHUTDOWN, result="interrupted", actor="setpoint",
                                    details={"reason": reason, "interrupted": running})
        except Exception:  # noqa: BLE001 - stopping must not depend on the store answering
            log.exception("could not record the interrupted reconciles")
        if running:
            log.error("stopping at once (%s): interrupted %s; their next reconcile compares again and finishes "
                      "the job", reason, ", ".join(running))
        else:
            log.warning("stopping at once (%s)", reason)
        for handler in logging.getLogger().handlers:
            handler.flush()
        self._exit(EXIT_INTERRUPTED)
