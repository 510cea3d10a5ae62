"""The drift stage: which changes are drift, what is recorded about them, and which to revert now.

A change is drift when the object's desired state is what setpoint last applied (Git did not
change it, so the live object did). Policy: revert now (``self_heal: true``), after a grace period,
or report only; a paused target only reports.
"""

from __future__ import annotations

import time
from collections.abc import Collection

from setpoint.api import Action, Desired, Live, Plan, ResourceChange
from setpoint.config import Grace
from setpoint.engine.run import Run
from setpoint.engine.runner import TargetRunner
from setpoint.state import AuditAction, DriftRecord, InventoryItem, StateStore

#: What a drift record says when the driver cannot tell who made the change.
CHANGED_OUTSIDE = "outside setpoint (who is not known)"


def attribute_drift(plan: Plan, desired: Desired, inventory: dict[str, InventoryItem]) -> None:
    """Mark a change as drift when the object's desired state is what setpoint last applied."""
    for change in plan.changes:
        if change.drift or change.action == Action.DELETE:
            continue
        item = inventory.get(change.key)
        want = desired.resources.get(change.key)
        if item is not None and want is not None and item.digest == want.digest():
            change.drift = True


def policy_name(run: Run, runner: TargetRunner) -> str:
    if run.paused:
        return "paused: report only"
    policy = runner.self_heal
    if policy is True:
        return "self-heal: revert"
    if isinstance(policy, Grace):
        return f"self-heal after grace {policy.grace:g}s"
    return "report only"


class DriftStage:
    def __init__(self, store: StateStore, runner: TargetRunner) -> None:
        self.store = store
        self.runner = runner
        self.name = runner.name
        #: When each currently drifted object was first seen (epoch), for grace periods.
        self.first_seen: dict[str, float] = {}
        #: When the earliest drift still inside its grace period will be reverted (epoch), if any.
        self.revert_at: float | None = None

    def record(self, run: Run, drift: list[ResourceChange], live: Live, deploying: Collection[str] = ()) -> None:
        """Keep one record per drifted object; audit drift when first seen or when it changes.

        ``deploying``: keys a commit changes this run. A drifted object among them is not resolved
        here: applying the commit overwrites the hand edit, which the recorder audits after the apply
        (:meth:`setpoint.engine.record.Recorder.apply_result`)."""
        store, now = self.store, time.time()
        known = store.drift(self.name)
        records, seen_keys, detected = [], set(), []
        for change in drift:
            seen_keys.add(change.key)
            have = live.resources.get(change.key)
            live_digest = have.digest() if have is not None else "absent"
            record = known.get(change.key)
            if record is None or record.live_digest != live_digest:
                first_seen = record.first_seen if record else now
                records.append(DriftRecord(change.key, first_seen, live_digest, {"change": change.to_record()}))
                detected.append(change)
        self.first_seen = {k: r.first_seen for k, r in known.items()} | {r.key: r.first_seen for r in records}
        cleared = [key for key in known if key not in seen_keys and key not in deploying]
        if run.dry_run or not (records or cleared):
            return  # nothing new: no transaction at all (a quiet pass over many targets writes nothing)
        with store.batch():  # the records and their audit entries in one commit
            for change in detected:
                self._audit_detected(run, change)
            store.set_drift(self.name, records, cleared)
            for key in cleared:
                store.audit(AuditAction.DRIFT_RESOLVED, target=self.name, kind=self.runner.target.kind,
                            revision=run.revision, trigger=run.trigger,
                            details={"key": key, "how": "live state matches Git again"})

    def _audit_detected(self, run: Run, change: ResourceChange) -> None:
        policy = policy_name(run, self.runner)
        # ``actor`` is who made the change, never the revision's author (who did not)
        self.store.audit(AuditAction.DRIFT_DETECTED, target=self.name, kind=self.runner.target.kind,
                         revision=run.revision, trigger=run.trigger, actor=change.changed_by,
                         details={"changes": [change.to_record()], "policy": policy,
                                  "changed_by": change.changed_by or CHANGED_OUTSIDE})
        run.actions.append({"action": AuditAction.DRIFT_DETECTED.value, "key": change.key})
        self.runner.logger.warning("drift on %s (%s)", change.key, policy, extra=run.log_fields())

    def to_revert(self, run: Run, drift: list[ResourceChange]) -> tuple[list[ResourceChange], list[str]]:
        """Pick the drift to revert now: all (self_heal: true), none (false, or paused), or what
        has outlived its grace period; ask for a wake-up at the next grace expiry."""
        if run.paused or not drift:
            return [], []
        policy = self.runner.self_heal
        if policy is True:
            return drift, []
        if isinstance(policy, Grace):
            now = time.time()
            first = self.first_seen
            due = [c for c in drift if now - first.get(c.key, now) >= policy.grace]
            pending = [c.key for c in drift if c not in due]
            if pending:
                self.revert_at = min(first.get(k, now) + policy.grace for k in pending)
                run.wake_by(self.revert_at)
            return due, pending
        return [], []
