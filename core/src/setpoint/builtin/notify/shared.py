"""The notifications' memory in the state store, shared by every replica of a state (SQLite: the one
process; PostgreSQL: all of them).

* What was sent: one row per (target, revision, event). Claiming a key is one atomic statement, so a
  replica that takes a failing target over finds the alert its previous owner sent and stays quiet, and
  the recovery is announced by whichever replica sees the target heal (it removes the alert's key).
* Digests: every replica adds the targets it deployed to the commit's rows; the replica holding the
  ``duty:notify`` lease (``setpoint.state.replicas``) sends each digest once its window has passed,
  claiming its key and removing its rows in one transaction that first checks the duty's fencing token.

Delivery is at most once: a key is claimed before its message is queued, so a replica that dies between
the claim and the send loses that message (it is never sent twice).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any, Protocol

from setpoint.api import Revision
from setpoint.builtin.notify.policy import DueDigest
from setpoint.errors import StateError
from setpoint.state import StateStore

log = logging.getLogger("setpoint.notify")

#: The lease name of the cluster-wide notification duty (digests).
DUTY = "duty:notify"


class DutyLeases(Protocol):
    """The part of ``setpoint.state.replicas.Replicas`` a duty needs (None on SQLite: always ours)."""

    def holds(self, name: str) -> bool: ...

    def check_fence(self, db: Any, target: str) -> dict[str, Any]: ...


class SharedMemory:
    local = False

    def __init__(self, store: StateStore, leases: DutyLeases | None = None, poll: float = 1.0) -> None:
        self.store = store
        self.leases = leases
        #: Seconds between two looks for due digests (the dispatcher asks ten times a second).
        self.poll = poll
        self._next_look = 0.0

    def claim(self, key: tuple[str, str, str], repeat_after: float | None) -> bool:
        return self.store.claim_notification(*key, repeat_after=repeat_after)

    def release(self, target: str, event: str) -> bool:
        # a cheap read first: nearly every successful reconcile asks, very few have anything to release
        if not self.store.has_notifications(target, event):
            return False
        return self.store.release_notifications(target, event) > 0

    def add_to_digest(self, revision: Revision, target: str, result: str, only_if_open: bool) -> None:
        about = {"author": revision.author, "subject": revision.subject}
        self.store.add_to_digest(revision.sha, target, result, about, only_if_open=only_if_open)

    def due_digests(self, window: float, force: bool, repeat_after: float | None) -> list[DueDigest]:
        if not force:
            now = time.monotonic()
            if now < self._next_look:
                return []
            self._next_look = now + min(self.poll, max(window / 4, 0.05))
        if force and self.leases is not None:
            return []  # other replicas may still deploy this commit: the next holder of the duty sends it
        leases = self.leases
        if leases is not None and not leases.holds(DUTY):
            return []
        fence = (lambda db: leases.check_fence(db, DUTY)) if leases is not None else None
        try:
            due = self.store.take_due_digests(None if force else time.time() - window, repeat_after, fence)
        except StateError as exc:  # LeaseLost: the duty moved to another replica between the two checks
            log.info("notification digests: %s", exc)
            return []
        except Exception as exc:
            if not self.store.db.is_error(exc):
                raise
            # the database is away: the digests stay stored and are sent when it is back
            log.warning("notification digests: the state store is unreachable (%s)", type(exc).__name__)
            return []
        return [(Revision(sha, author=str(about.get("author") or ""), message=str(about.get("subject") or ""),
                          time=datetime.now(UTC)), targets) for sha, about, targets in due]
