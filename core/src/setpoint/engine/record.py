"""The record stage: what a reconcile leaves behind in the state store.

* inventory: the objects setpoint applied (after an apply) or adopted (when live already equals Git);
* audit: apply and revert results, errors and recoveries; an apply's intent is committed before
  the driver runs (:meth:`Recorder.apply_intent`) and cleared with its result, so an apply cut
  short by a crash is audited as interrupted by the next run (:meth:`Recorder.interrupted`);
* status: the target's status row, written once per run (a no-op run at most once a minute).
"""

from __future__ import annotations

import time
from typing import Any

from setpoint.api import (
    Action,
    ApplyResult,
    Desired,
    Health,
    HealthStatus,
    Outcome,
    Plan,
    ResourceChange,
    Revision,
    SyncStatus,
    secret_paths,
)
from setpoint.engine.ports import ReconcilePorts
from setpoint.engine.run import Run
from setpoint.engine.runner import TargetRunner
from setpoint.secrets import safe_error
from setpoint.state import AuditAction, InventoryItem, PauseInfo, TargetStatus

#: A status that changed only in its volatile fields (TargetStatus.VOLATILE) is persisted at most this often.
STATUS_REFRESH = 60.0


def sync_without_apply(run: Run, previous: TargetStatus) -> SyncStatus:
    """The sync status of a run that applied nothing (it failed, or waits for its dependencies).

    Synced means the revision the run resolved is the one last applied; a run that resolved a newer
    revision and never applied it is OutOfSync (Unknown if nothing was ever applied), whatever the
    previous run said. A run that never resolved a revision learnt nothing: the previous status stands.
    """
    if run.revision is None:
        return previous.sync
    if previous.applied_revision is None:
        return SyncStatus.UNKNOWN
    if run.revision.sha != previous.applied_revision:
        return SyncStatus.OUT_OF_SYNC
    return previous.sync


def sticky_secret_paths(body: Any, item: InventoryItem | None) -> tuple[str, ...]:
    """The secret field paths to record for an applied object: those of its body now, plus every path
    that was secret before. Secrecy is sticky: a value once decrypted is never shown in clear later."""
    return tuple(sorted(secret_paths(body) | set(item.secret_paths if item else ())))


class Recorder:
    def __init__(self, ports: ReconcilePorts, runner: TargetRunner) -> None:
        self.ports = ports
        self.store = ports.store
        self.runner = runner
        self.name = runner.name
        self.kind = runner.target.kind

    # ------------------------------------------------------------------ inventory

    def apply_result(self, run: Run, plan: Plan, desired: Desired, revert: list[ResourceChange],
                     result: ApplyResult, applied: set[str], duration: float) -> None:
        """Record what an apply changed: inventory, cleared drift, the approved plan's end, the audit entries."""
        now = time.time()
        upserts, deletes = [], []
        inventory = self.store.inventory(self.name)
        for change in plan.changes:
            if change.key not in applied:
                continue
            if change.action == Action.DELETE:
                deletes.append(change.key)
            else:
                want = desired.resources[change.key]
                upserts.append(InventoryItem(change.key, want.kind, want.name, want.namespace, want.digest(),
                                             run.revision.sha if run.revision else "", now,
                                             sticky_secret_paths(want.body, inventory.get(change.key))))
        self.store.update_inventory(self.name, upserts, deletes)
        reverted = [c.key for c in revert if c.key in applied]
        run.reverted.update(reverted)
        overwritten = self._overwritten_drift(plan, applied)
        if reverted or overwritten:
            self.store.set_drift(self.name, [], reverted + overwritten)
        for key in overwritten:
            self._audit_overwritten(run, key)
        if plan.id and any(a.get("action") == "approved-plan" for a in run.actions):
            self.store.finish_plan(self.name, plan.id, "applied" if result.ok else "failed")
        self.apply_audit(run, plan, sorted(applied), result.failed, duration)
        self.store.clear_apply_intent(self.name)  # the result is recorded: the intent is done with
        self.runner.memory.flush()  # what the driver remembered about this apply, in the same commit

    def _overwritten_drift(self, plan: Plan, applied: set[str]) -> list[str]:
        """Drifted objects a commit just changed: the apply replaced the hand edit."""
        known = self.store.drift(self.name)
        return [c.key for c in plan.changes if not c.drift and c.key in applied and c.key in known]

    def _audit_overwritten(self, run: Run, key: str) -> None:
        revision = run.revision
        commit = f"commit {revision.short} by {revision.author}" if revision else "a commit"
        self.store.audit(AuditAction.DRIFT_OVERWRITTEN, target=self.name, kind=self.kind, revision=revision,
                         trigger=run.trigger,
                         details={"key": key, "overwritten_by": revision.sha if revision else None,
                                  "how": f"the change made outside setpoint was overwritten by {commit}"})
        run.actions.append({"action": AuditAction.DRIFT_OVERWRITTEN.value, "key": key})

    def apply_intent(self, run: Run, plan: Plan) -> None:
        """Write-ahead: what is about to be applied, committed before the driver touches anything.
        If the process dies before :meth:`apply_result`, the next run finds it (:meth:`interrupted`)."""
        run.writer = self.store.set_apply_intent(self.name, {
            "revision": run.revision.sha if run.revision else None, "trigger": run.trigger, "plan_id": plan.id,
            "started": time.time(), "changes": [c.to_record() for c in plan.changes]})

    def interrupted(self, run: Run) -> None:
        """An apply whose intent has no result was cut short (crash, SIGKILL, power): audit it as
        interrupted; this run reconciles the target again, so what it half-did is completed."""
        intent = self.store.apply_intent(self.name)
        if intent is None:
            return
        with self.store.batch():
            self.store.audit(AuditAction.APPLY, target=self.name, kind=self.kind, trigger=run.trigger,
                             result="interrupted", details={"changes": intent.get("changes", []),
                                                            "plan_id": intent.get("plan_id"),
                                                            "revision": intent.get("revision"),
                                                            "started": intent.get("started")})
            self.store.clear_apply_intent(self.name)
        self.runner.logger.warning("an earlier apply (plan %s) was interrupted before its result was recorded; "
                                   "reconciling again", intent.get("plan_id"), extra=run.log_fields())

    def claim_attempted(self, run: Run, plan: Plan, desired: Desired, applied: set[str]) -> None:
        """A creation that failed may still have created something (a container created, then not
        started): it is setpoint's from that moment, so it enters the inventory and is pruned if it
        leaves Git. Its digest is empty, so the next pass treats the difference as a deploy still to
        do, never as drift."""
        candidates = [c for c in plan.changes
                      if c.action != Action.DELETE and c.key not in applied and c.key in desired.resources]
        if not candidates:
            return
        inventory = self.store.inventory(self.name)
        now = time.time()
        sha = run.revision.sha if run.revision else ""
        claims = [InventoryItem(c.key, desired.resources[c.key].kind, desired.resources[c.key].name,
                                desired.resources[c.key].namespace, "", sha, now)
                  for c in candidates if c.key not in inventory]
        if claims:
            self.store.update_inventory(self.name, claims, [])

    def adopt(self, desired: Desired, inventory: dict[str, InventoryItem], revision: Revision | None) -> None:
        """Everything desired is live and equal: record it as managed (digests that changed only)."""
        upserts = self.adoptions(desired, inventory, revision)
        if upserts:
            self.store.update_inventory(self.name, upserts, [])

    def adoptions(self, desired: Desired, inventory: dict[str, InventoryItem],
                  revision: Revision | None) -> list[InventoryItem]:
        """The inventory rows :meth:`adopt` writes (none when the inventory already says it all)."""
        upserts = []
        now = time.time()
        for key, want in desired.resources.items():
            item = inventory.get(key)
            digest = want.digest()
            secret = sticky_secret_paths(want.body, item)
            if item is None or item.digest != digest or secret != item.secret_paths:
                upserts.append(InventoryItem(key, want.kind, want.name, want.namespace, digest,
                                             revision.sha if revision else "", now, secret))
        return upserts

    # ------------------------------------------------------------------ audit

    def apply_audit(self, run: Run, plan: Plan, applied: list[str], failed: dict[str, str], duration: float) -> None:
        deploy = [c.to_record() for c in plan.changes if not c.drift]
        reverts = [c.to_record() for c in plan.changes if c.drift]
        result = "failed" if failed else "ok"
        common: dict[str, Any] = {"target": self.name, "kind": self.kind, "revision": run.revision,
                                  "trigger": run.trigger, "duration": duration, "result": result}
        writer = {"writer": run.writer} if run.writer else {}  # with replicas: which one applied, its token
        fields, log = run.log_fields(), self.runner.logger
        done = set(applied) - set(failed)
        signed: dict[str, Any] = {"signer": run.signer.to_record()} if run.signer is not None else {}
        if deploy:
            self.store.audit(AuditAction.APPLY, details={"changes": deploy, "failed": failed, "plan_id": plan.id,
                                                         **signed, **writer}, **common)
            run.actions.append({"action": AuditAction.APPLY.value, "count": len(deploy), "result": result})
            ok = sum(1 for c in deploy if c["key"] in done)
            if ok:  # only what really was applied: failures are logged with their errors ("reconcile failed")
                log.info("applied %d change(s) from %s: %s", ok,
                         run.revision.author if run.revision else "?", run.revision.subject if run.revision else "",
                         extra=fields)
        if reverts:
            self.store.audit(AuditAction.REVERT_DRIFT, details={"changes": reverts, "failed": failed,
                                                                "plan_id": plan.id, **signed, **writer}, **common)
            run.actions.append({"action": AuditAction.REVERT_DRIFT.value, "count": len(reverts), "result": result})
            reverted = [c["key"] for c in reverts if c["key"] in done]
            if reverted:
                log.info("reverted drift on %s", _some(reverted), extra=fields)

    # ------------------------------------------------------------------ the end of a run

    def outcome(self, run: Run, error_stage: str | None = None, error: str | None = None) -> Outcome:
        return Outcome(
            target=self.runner.info, trigger=run.trigger, revision=run.revision, sync=run.sync,
            health=run.health.status, actions=tuple(run.actions), drift=tuple(run.drift), error_stage=error_stage,
            error=error, held_plan_id=run.held_plan_id, duration_seconds=time.monotonic() - run.started,
            paused=run.paused, message=run.message,
        )

    def finished(self, run: Run, previous: TargetStatus) -> Outcome:
        outcome = self.outcome(run)
        if not run.dry_run:
            self.runner.consecutive_failures = 0
            status = self.status(run, outcome, previous, None, None)
            if not previous.last_error and not self.runner.memory.has_pending() and \
                    self._status_unchanged(status, previous):
                return outcome  # a run that changed nothing writes nothing: no transaction, no fsync
            with self.store.batch():
                if previous.last_error:
                    self.store.audit(AuditAction.RECOVERED, target=self.name, kind=self.kind,
                                     revision=run.revision, trigger=run.trigger,
                                     details={"previous_error": previous.last_error})
                self.save_status(run, outcome, previous, None, None, status)
                self.runner.memory.flush()
        elif run.pinned is not None:
            self.runner.memory.discard_pending()  # a preview leaves nothing behind, not even memory
        else:
            self.runner.memory.flush()
        return outcome

    def failed(self, run: Run, previous: TargetStatus, stage: str, error: BaseException) -> Outcome:
        message = safe_error(error)
        self.runner.consecutive_failures += 1
        if stage == "plugin":
            run.sync = SyncStatus.UNKNOWN
        elif run.plan is not None and run.plan.changes and stage in ("review", "apply"):
            run.sync = SyncStatus.OUT_OF_SYNC  # the plan (a Git change, drift) is not applied, or not all of it
        else:
            run.sync = sync_without_apply(run, previous)
        run.health = Health(previous.health if stage not in ("plugin", "apply") else HealthStatus.DEGRADED, message)
        outcome = self.outcome(run, stage, message)
        if stage == "record":
            # the apply's result (inventory, audit) could not be written: what the driver remembered
            # about that apply must not be kept either; the intent stays and the next run redoes it
            self.runner.memory.discard_pending()
        if not run.dry_run:
            with self.store.batch():
                if previous.last_error != message:
                    self.store.audit(AuditAction.ERROR, target=self.name, kind=self.kind, revision=run.revision,
                                     trigger=run.trigger, result="failed", details={"stage": stage, "error": message})
                self.save_status(run, outcome, previous, stage, message)
                self.runner.memory.flush()
        elif run.pinned is not None:
            self.runner.memory.discard_pending()  # a preview leaves nothing behind, not even memory
        else:
            self.runner.memory.flush()
        self.runner.logger.warning("reconcile failed at %s: %s", stage, message, extra=run.log_fields(stage))
        return outcome

    def status(self, run: Run, outcome: Outcome, previous: TargetStatus, stage: str | None,
               error: str | None) -> TargetStatus:
        """The status row after this run; what the run did not learn is kept from ``previous``."""
        pause = self.store.get_pause(self.name)
        synced = outcome.sync == SyncStatus.SYNCED and error is None
        revision = run.revision
        applied_now = error is None and any(
            a.get("action") in (AuditAction.APPLY.value, AuditAction.REVERT_DRIFT.value) and a.get("result") == "ok"
            for a in run.actions)
        return TargetStatus(
            target=self.name,
            kind=self.kind,
            sync=outcome.sync,
            health=outcome.health,
            health_message=run.health.message,
            message=run.message,
            head=run.head or previous.head,
            revision=revision.sha if revision else previous.revision,
            revision_author=revision.author if revision else previous.revision_author,
            revision_subject=revision.subject if revision else previous.revision_subject,
            applied_revision=revision.sha if synced and revision else previous.applied_revision,
            applied_head=run.head if synced else previous.applied_head,
            last_applied_at=time.time() if applied_now else previous.last_applied_at,
            last_applied_revision=(revision.sha if revision else previous.revision) if applied_now
            else previous.last_applied_revision,
            last_error=error,
            error_stage=stage,
            source_error=self.ports.source_error(self.runner.target.source),
            consecutive_failures=self.runner.consecutive_failures,
            # drift reverted by this run is gone from the live state already
            drift=tuple(c.key for c in run.drift if c.key not in run.reverted),
            held_plan=run.held_plan_id,
            paused=PauseInfo(pause.reason, pause.paused_by, pause.paused_at, pause.until) if pause else None,
            last_run=time.time(),
            last_trigger=run.trigger,
            duration=outcome.duration_seconds,
        )

    def _status_unchanged(self, status: TargetStatus, previous: TargetStatus) -> bool:
        """True when ``status`` differs from what is stored only in its volatile fields (last run,
        duration...) and those were written less than :data:`STATUS_REFRESH` ago: by this process
        (its last save) or, for a process that has not saved it yet, by whoever wrote ``previous``."""
        stable = status.without_volatile()
        if self.runner.saved_status is not None:
            return stable == self.runner.saved_status and time.monotonic() - self.runner.saved_at < STATUS_REFRESH
        fresh = previous.last_run is not None and 0 <= time.time() - previous.last_run < STATUS_REFRESH
        if fresh and stable == previous.without_volatile():
            # what is stored is this status: count it as this process's last save
            self.runner.saved_status = stable
            self.runner.saved_at = time.monotonic() - (time.time() - (previous.last_run or 0.0))
            return True
        return False

    def save_status(self, run: Run, outcome: Outcome, previous: TargetStatus, stage: str | None,
                    error: str | None, status: TargetStatus | None = None) -> None:
        """``status``: the row :meth:`status` made for this run already (its pause read once, not twice)."""
        status = status or self.status(run, outcome, previous, stage, error)
        # the driver's health per object (the dashboard's target page); written when it changes only.
        # A failed run did not check health: the last report stays. A good run whose driver reports
        # no object (it cannot tell) removes it, so the page says the core estimates.
        objects = {key: HealthStatus(value).value for key, value in run.health.resources.items()}
        if error is None and objects != self.runner.saved_object_health:
            self.store.save_object_health(self.name, objects)
            self.runner.saved_object_health = objects
        # A no-op reconcile changes only the volatile fields: persist those at most once a minute,
        # so a thousand quiet targets do not cost a thousand fsyncs per pass.
        if self._status_unchanged(status, previous):
            return
        self.store.save_status(status)
        self.runner.saved_status, self.runner.saved_at = status.without_volatile(), time.monotonic()


def _some(items: list[str], shown: int = 5) -> str:
    return ", ".join(items[:shown]) + (f" and {len(items) - shown} more" if len(items) > shown else "")
