"""One reconcile in flight (:class:`Run`), how a stage fails (:class:`StageError`) and what a
reconcile hands back to whoever scheduled it (:class:`RunResult`).

The stage modules (drift, review, record) and the reconciler all build on this module, so it
imports none of them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from setpoint.api import Health, HealthStatus, Live, Outcome, Plan, ResourceChange, Revision, SyncStatus
from setpoint.errors import PermanentError, TemporaryError
from setpoint.secrets import safe_error

#: How soon to look again at a target whose rollout is still progressing.
PROGRESS_RECHECK = 2.0


class StageError(Exception):
    """A stage of the reconcile failed; ``error`` is what the stage raised."""

    def __init__(self, stage: str, error: BaseException) -> None:
        super().__init__(f"{stage}: {safe_error(error)}")
        self.stage = stage
        self.error = error


def stage(name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``fn``; any failure becomes a :class:`StageError` of stage ``name``."""
    try:
        return fn(*args, **kwargs)
    except StageError:
        raise
    except Exception as exc:  # noqa: BLE001 - every stage failure is reported, never crashes the loop
        raise StageError(name, exc) from exc


@dataclass
class Run:
    """Mutable state of one reconcile, turned into an :class:`Outcome` and a :class:`RunResult` at the end."""

    trigger: str
    dry_run: bool
    #: A preview: this commit stands in for the branch head (a dry run only; never applied).
    pinned: str | None = None
    started: float = field(default_factory=time.monotonic)
    revision: Revision | None = None
    head: str | None = None
    #: Who signed the head (a :class:`~setpoint.source.verify.Signer`) when the source verifies commits.
    signer: Any = None
    actions: list[dict[str, Any]] = field(default_factory=list)
    drift: list[ResourceChange] = field(default_factory=list)
    #: Keys of drift this run reverted successfully.
    reverted: set[str] = field(default_factory=set)
    plan: Plan | None = None
    #: What observe saw this run (a held plan records the live objects its deletions would remove).
    live: Live | None = None
    held_plan_id: str | None = None
    message: str = ""
    paused: bool = False
    sync: SyncStatus = SyncStatus.UNKNOWN
    health: Health = field(default_factory=lambda: Health(HealthStatus.UNKNOWN))
    #: A time (epoch) by which the target must run again regardless of its interval
    #: (a grace period or a pause expiring, a rollout to re-check); the earliest request wins.
    wake_at: float | None = None
    #: The head's refusal by signature verification, when this run goes on at the last verified,
    #: applied head to repair drift (raised at the end, so the run is still reported as refused).
    refused: Any = None
    #: The refused head and the revision it wanted (what the outcome and status name).
    refused_head: str | None = None
    refused_revision: Revision | None = None
    #: With several replicas: the replica and fencing token the apply intent was written under.
    writer: dict[str, Any] | None = None

    def wake_by(self, at: float) -> None:
        self.wake_at = min(self.wake_at or at, at)

    def wake_in(self, seconds: float) -> None:
        self.wake_by(time.time() + seconds)

    def log_fields(self, stage_name: str | None = None) -> dict[str, Any]:
        fields: dict[str, Any] = {"trigger": self.trigger}
        if self.revision is not None:
            fields["revision"] = self.revision.short
        if stage_name:
            fields["stage"] = stage_name
        return fields


@dataclass(frozen=True)
class RunResult:
    """What one reconcile decided, returned to the engine and the scheduler (never written onto shared state)."""

    outcome: Outcome
    #: The plan computed this run (None when the run stopped before diff).
    plan: Plan | None = None
    #: Run again no later than this time (epoch), whatever the interval says.
    next_run_at: float | None = None
    #: A failure asked to be retried after this many seconds (``TemporaryError(delay=...)``).
    retry_after: float | None = None
    #: A failure retrying cannot fix (``PermanentError``): wait for a new revision or a manual sync.
    give_up: bool = False

    @classmethod
    def of(cls, run: Run, outcome: Outcome, error: BaseException | None = None) -> RunResult:
        retry_after = error.delay if isinstance(error, TemporaryError) and error.delay is not None else None
        return cls(outcome, run.plan, run.wake_at, retry_after, isinstance(error, PermanentError))
