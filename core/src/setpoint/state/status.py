"""The closed vocabulary of what setpoint persists about a target: its status row and audit actions.

:class:`TargetStatus` is what the reconciler writes after every run and what the CLI, the status
API, metrics and notifications read; it is stored as JSON (:meth:`TargetStatus.to_json`), and
:meth:`TargetStatus.from_json` reads rows written by older versions (missing keys take defaults,
unknown keys are ignored).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from setpoint.apicore import HealthStatus, SyncStatus


class AuditAction(StrEnum):
    """Every ``action`` an audit entry can carry (the ``setpoint audit --action`` choices)."""

    APPLY = "apply"
    REVERT_DRIFT = "revert-drift"
    DRIFT_DETECTED = "drift-detected"
    DRIFT_RESOLVED = "drift-resolved"
    #: A commit changed an object that had drifted: applying it replaced the hand edit.
    DRIFT_OVERWRITTEN = "drift-overwritten"
    HELD = "held"
    APPROVE = "approve"
    PAUSE = "pause"
    RESUME = "resume"
    ERROR = "error"
    RECOVERED = "recovered"
    FORCE_PUSH = "force-push"
    API = "api"
    #: an apply cut short when setpoint stopped (second signal, or the shutdown grace ran out)
    INTERRUPTED = "interrupted"
    #: setpoint stopped; result ``ok`` (in-flight work finished) or ``interrupted``
    SHUTDOWN = "shutdown"
    #: SIGHUP re-read setpoint.yaml; result ``ok`` (applied) or ``failed`` (rejected, the old one runs on)
    CONFIG_RELOAD = "config-reload"


@dataclass(frozen=True)
class PauseInfo:
    """A pause as shown in status: why, by whom, since and until when (epoch seconds)."""

    reason: str
    by: str
    since: float
    until: float | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> PauseInfo | None:
        if not data:
            return None
        return cls(str(data.get("reason", "")), str(data.get("by", "")), float(data.get("since") or 0.0),
                   data.get("until"))


@dataclass(frozen=True)
class TargetStatus:
    """One target's status after its last reconcile."""

    target: str
    kind: str = ""
    sync: SyncStatus = SyncStatus.UNKNOWN
    health: HealthStatus = HealthStatus.UNKNOWN
    health_message: str = ""
    message: str = ""
    #: The source head of the last run, and the revision (last commit under the target's paths) it resolved to.
    head: str | None = None
    revision: str | None = None
    revision_author: str | None = None
    revision_subject: str | None = None
    #: The revision and head last seen fully applied (Synced without error).
    applied_revision: str | None = None
    applied_head: str | None = None
    #: When a run last applied changes (Git's or a drift revert) without error, and the revision it
    #: applied; None until then (and for rows written before this field existed).
    last_applied_at: float | None = None
    last_applied_revision: str | None = None
    last_error: str | None = None
    error_stage: str | None = None
    source_error: str | None = None
    consecutive_failures: int = 0
    #: Keys of drifted objects (including unmanaged ones found live).
    drift: tuple[str, ...] = ()
    held_plan: str | None = None
    paused: PauseInfo | None = None
    last_run: float | None = None
    last_trigger: str | None = None
    duration: float | None = None

    #: Fields that change on every run (see the reconciler's status write throttling).
    VOLATILE = ("last_run", "last_trigger", "duration")

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["sync"], data["health"] = self.sync.value, self.health.value
        data["drift"] = list(self.drift)
        data["paused"] = self.paused.to_json() if self.paused else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TargetStatus:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["sync"] = SyncStatus(values.get("sync") or SyncStatus.UNKNOWN)
        values["health"] = HealthStatus(values.get("health") or HealthStatus.UNKNOWN)
        values["drift"] = tuple(values.get("drift") or ())
        values["paused"] = PauseInfo.from_json(values.get("paused"))
        values["consecutive_failures"] = int(values.get("consecutive_failures") or 0)
        for text in ("health_message", "message", "kind"):
            values[text] = values.get(text) or ""
        return cls(**values)

    def without_volatile(self) -> TargetStatus:
        """This status with the per-run fields blanked: equal to the last write means nothing changed."""
        return dataclasses.replace(self, last_run=None, last_trigger=None, duration=None)

    def __getitem__(self, key: str) -> Any:
        """Read a field by its JSON name (``status["message"]``), as callers of the old dict did."""
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return self.to_json()[key]
