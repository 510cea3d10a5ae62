"""One reconcile of one target: resolve revision, render, decrypt, observe, diff, review, apply,
check health, record. Every safety rule of the core lives here:

* fail closed: an error in source, decrypt or render applies and prunes nothing;
* drift attribution: a change to an object whose desired state Git did not change is drift;
* self-heal policy: revert now, after a grace period, or report only; paused targets never apply;
* prune safety: only objects setpoint applied are pruned, never on an empty render unless allowed,
  and deletions over the budget are held for approval;
* audit: every apply, revert, hold and newly seen drift is recorded with revision and diff.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from setpoint.api import (
    Action,
    Desired,
    Health,
    HealthStatus,
    Live,
    Outcome,
    Plan,
    ResourceChange,
    Revision,
    SourceTree,
    SyncStatus,
)
from setpoint.config import Grace
from setpoint.engine.decrypt import decrypt_tree
from setpoint.engine.outputs import outputs_digest, substitute
from setpoint.engine.runner import RenderCache
from setpoint.errors import RenderError, SetpointError
from setpoint.secrets import safe_error
from setpoint.state import DriftRecord, InventoryItem

if TYPE_CHECKING:
    from setpoint.engine.engine import Engine
    from setpoint.engine.runner import TargetRunner

#: How soon to look again at a target whose rollout is still progressing.
PROGRESS_RECHECK = 2.0
#: Status fields that change on every run; alone they are persisted at most every STATUS_REFRESH seconds.
VOLATILE_STATUS = {"last_run", "duration", "last_trigger"}
STATUS_REFRESH = 60.0


class StageError(Exception):
    def __init__(self, stage: str, error: BaseException) -> None:
        super().__init__(f"{stage}: {safe_error(error)}")
        self.stage = stage
        self.error = error


@dataclass
class Run:
    """Mutable state of one reconcile, turned into an :class:`Outcome` at the end."""

    trigger: str
    dry_run: bool
    started: float = field(default_factory=time.monotonic)
    revision: Revision | None = None
    head: str | None = None
    actions: list[dict[str, Any]] = field(default_factory=list)
    drift: list[ResourceChange] = field(default_factory=list)
    plan: Plan | None = None
    held_plan_id: str | None = None
    message: str = ""
    paused: bool = False
    sync: SyncStatus = SyncStatus.UNKNOWN
    health: Health = field(default_factory=lambda: Health(HealthStatus.UNKNOWN))


def _stage(name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except StageError:
        raise
    except Exception as exc:  # noqa: BLE001 - every stage failure is reported, never crashes the loop
        raise StageError(name, exc) from exc


class Reconciler:
    def __init__(self, engine: Engine, runner: TargetRunner) -> None:
        self._drift_first_seen: dict[str, float] = {}
        self.engine = engine
        self.store = engine.store
        self.runner = runner
        self.name = runner.name
        self.log = runner.logger

    # ------------------------------------------------------------------ entry point

    def run(self, trigger: str, dry_run: bool = False) -> Outcome:
        run = Run(trigger, dry_run)
        previous = self.store.status(self.name) or {}
        try:
            self._reconcile(run, previous)
        except StageError as exc:
            self.runner.last_plan = run.plan
            return self._failed(run, previous, exc.stage, exc.error)
        self.runner.last_plan = run.plan
        return self._finished(run, previous)

    # ------------------------------------------------------------------ the stages

    def _reconcile(self, run: Run, previous: dict[str, Any]) -> None:
        runner, store = self.runner, self.store
        if runner.driver is None:
            raise StageError("plugin", SetpointError(runner.driver_error or "no driver"))
        driver = runner.driver
        pause = store.get_pause(self.name)
        if pause and pause.expired():
            store.resume(self.name)
            if not run.dry_run:
                store.audit("resume", target=self.name, kind=runner.target.kind, actor="setpoint (pause expired)",
                            details={"reason": pause.reason, "paused_by": pause.paused_by})
                self.engine.emit("resumed", runner.info, {"reason": "pause expired", "paused_by": pause.paused_by})
            pause = None
        run.paused = pause is not None
        if pause and pause.until:
            runner.wake_at = pause.until

        # 1. source: which revision does this target want?
        source = self.engine.sources[runner.target.source]
        head = _stage("source", self.engine.current_head, source.name)
        run.head = head
        paths = [runner.target.path, *runner.watched_paths]
        rev_sha = _stage("source", source.last_change, head, paths) or head
        run.revision = _stage("source", source.revision, rev_sha)

        # dependencies: wait until each is Synced and Healthy at the same source head
        waiting = self.engine.unmet_dependencies(runner, head)
        if waiting and not run.dry_run:
            run.sync = SyncStatus(previous.get("sync", SyncStatus.UNKNOWN))
            run.health = Health(HealthStatus.PROGRESSING, f"waiting for {', '.join(waiting)}")
            run.message = f"waiting for dependencies: {', '.join(waiting)}"
            runner.wake_at = time.time() + PROGRESS_RECHECK * 2
            return

        # 2+3. decrypt and render, cached while the target's files (and its inputs) are unchanged
        dependency_outputs = self.engine.dependency_outputs(runner.target) if runner.target.depends_on else {}
        inputs_key = outputs_digest(dependency_outputs) if dependency_outputs else ""
        cache = runner.render_cache
        if cache is not None and cache.revision == rev_sha and cache.inputs == inputs_key:
            desired = cache.desired
        else:
            desired = self._render(run, rev_sha, source, dependency_outputs)
            runner.render_cache = RenderCache(rev_sha, desired, inputs_key)

        # 4. observe and 5. diff
        inventory = store.inventory(self.name)
        live: Live = _stage("observe", driver.observe, desired, list(inventory))
        plan: Plan = _stage("diff", driver.diff, desired, live)
        plan, orphans, unmanaged = self._scope(plan, inventory)
        self._attribute_drift(plan, desired, inventory)
        run.plan = plan

        # empty-render guard: never prune a whole target because a render came out empty
        if not desired.resources and inventory and not self.runner.allow_empty \
                and not desired.extra.get("removed_from_git"):
            raise StageError("review", RenderError(
                f"the render at {rev_sha[:12]} produced no resources while setpoint manages {len(inventory)}; "
                "refusing to apply or prune anything (set allow_empty: true if the target should really be empty)"))

        drift = [c for c in plan.changes if c.drift]
        run.drift = drift + unmanaged
        with store.batch():
            self._record_drift(run, run.drift, live)
        revert, pending_grace = self._drift_policy(run, drift)
        deploy = [c for c in plan.changes if not c.drift]
        to_apply = deploy + revert
        if run.dry_run:
            run.sync = SyncStatus.SYNCED if plan.empty else SyncStatus.OUT_OF_SYNC
            run.health = driver.health(desired, live)
            return

        applied_any = False
        if to_apply and not run.paused:
            apply_plan = plan if len(to_apply) == len(plan.changes) else Plan(to_apply, dict(plan.extra))
            if self._review(run, apply_plan, inventory, only_drift=not deploy):
                applied_any = self._apply(run, apply_plan, desired, inventory, revert)
        elif not plan.changes and store.held_plans(self.name):
            store.supersede_plans(self.name)  # Git or live state moved: a held plan no longer applies

        # 6. health and final sync state
        if applied_any:
            live = _stage("observe", driver.observe, desired, list(store.inventory(self.name)))
            after, _, _ = self._scope(_stage("diff", driver.diff, desired, live), store.inventory(self.name))
            remaining = after.changes
        else:
            remaining = plan.changes
        run.sync = SyncStatus.SYNCED if not remaining else SyncStatus.OUT_OF_SYNC
        run.health = _stage("health", driver.health, desired, live)
        if applied_any and remaining:
            # Something changed again while we applied: look again soon, backing off if it keeps
            # happening (another controller fighting over the same object).
            self.runner.recheck_delay = min(PROGRESS_RECHECK, (self.runner.recheck_delay or 0.125) * 2)
            self._wake_in(self.runner.recheck_delay)
        else:
            self.runner.recheck_delay = 0.0
        if run.health.status == HealthStatus.PROGRESSING:
            self._wake_in(PROGRESS_RECHECK)  # a rollout in progress
        if run.sync == SyncStatus.SYNCED and not run.paused and (applied_any or runner.adopted is not desired):
            # everything desired is live and equal: it is managed from now on (once per render:
            # digesting a thousand objects on every quiet reconcile would dominate a no-op)
            self._adopt(desired, inventory, run.revision)
            runner.adopted = desired
        if run.sync == SyncStatus.SYNCED and not run.paused:
            outputs = dict(driver.outputs())
            digest = outputs_digest({self.name: outputs})
            if digest != runner.outputs_digest:  # write only when they changed
                self.engine.outputs[self.name] = outputs
                store.save_outputs(self.name, outputs)
                runner.outputs_digest = digest
        notes = []
        if unmanaged:
            notes.append(f"{len(unmanaged)} object(s) not from Git found (reported, never removed: setpoint did not create them)")
        if orphans:
            notes.append(f"{len(orphans)} object(s) removed from Git are kept because prune is off")
        if pending_grace:
            notes.append(f"{len(pending_grace)} drifted object(s) within their grace period")
        if run.paused and pause is not None:
            until = f" until {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(pause.until))}" if pause.until else ""
            notes.append(f"paused by {pause.paused_by}{until}: {pause.reason}")
        run.message = "; ".join(notes) or run.message

    # ------------------------------------------------------------------ helpers

    def _render(self, run: Run, rev_sha: str, source: Any, dependency_outputs: dict[str, Any]) -> Desired:
        runner, driver = self.runner, self.runner.driver
        assert driver is not None and run.revision is not None
        checkout = _stage("source", source.checkout, rev_sha)
        root = checkout / runner.target.path
        if not root.is_dir():
            if runner.prune and self.store.inventory(self.name):
                # The target's folder was deleted in Git: an explicit removal, not an accidental empty
                # render. Everything setpoint applied goes, through the deletion budget and approval.
                return Desired(extra={"removed_from_git": True})
            raise StageError("render", RenderError(
                f"path {runner.target.path!r} does not exist at revision {rev_sha[:12]}"))
        overlay = None
        if runner.target.depends_on:
            overlay = _stage("render", substitute, root, self.name, runner.target.depends_on, dependency_outputs)
        try:
            tree_root = overlay[0] if overlay else root
            decryptors = _stage("decrypt", self.engine.decryptors_for, runner)
            decrypted = dict(_stage("decrypt", decrypt_tree, tree_root, decryptors))
            if overlay:
                decrypted.update(overlay[1])
            tree = SourceTree(tree_root, checkout, run.revision, decrypted)
            desired: Desired = _stage("render", driver.render, tree)
            runner.watched_paths = list(_stage("render", driver.watched_paths, tree))
            return desired
        finally:
            if overlay:
                shutil.rmtree(overlay[0].parent, ignore_errors=True)

    def _wake_in(self, seconds: float) -> None:
        at = time.time() + seconds
        self.runner.wake_at = min(self.runner.wake_at or at, at)

    def _scope(self, plan: Plan, inventory: dict[str, InventoryItem]) -> tuple[Plan, list[str], list[ResourceChange]]:
        """Split off deletions setpoint must not make: objects it never applied (returned as
        unmanaged, reported as drift, never removed) and, with prune off, objects that left Git."""
        kept, orphans, unmanaged = [], [], []
        for change in plan.changes:
            if change.action == Action.DELETE:
                if change.key not in inventory:
                    change.drift = True
                    unmanaged.append(change)
                    continue
                if not self.runner.prune:
                    orphans.append(change.key)
                    continue
            kept.append(change)
        fixed = plan.fixed_id if len(kept) == len(plan.changes) else None
        return Plan(kept, plan.extra, fixed), orphans, unmanaged

    def _attribute_drift(self, plan: Plan, desired: Desired, inventory: dict[str, InventoryItem]) -> None:
        """A change is drift when the object's desired state is what setpoint last applied."""
        for change in plan.changes:
            if change.drift or change.action == Action.DELETE:
                continue
            item = inventory.get(change.key)
            want = desired.resources.get(change.key)
            if item is not None and want is not None and item.digest == want.digest():
                change.drift = True

    def _record_drift(self, run: Run, drift: list[ResourceChange], live: Live) -> None:
        """Keep one record per drifted object; audit drift when first seen or when it changes."""
        store, now = self.store, time.time()
        known = store.drift(self.name)
        records, seen_keys = [], set()
        for change in drift:
            seen_keys.add(change.key)
            have = live.resources.get(change.key)
            live_digest = have.digest() if have is not None else "absent"
            record = known.get(change.key)
            if record is None or record.live_digest != live_digest:
                first_seen = record.first_seen if record else now
                records.append(DriftRecord(change.key, first_seen, live_digest, {"change": change.to_record()}))
                if not run.dry_run:
                    store.audit("drift-detected", target=self.name, kind=self.runner.target.kind, revision=run.revision,
                                trigger=run.trigger, details={"changes": [change.to_record()],
                                                              "policy": self._policy_name(run)})
                    run.actions.append({"action": "drift-detected", "key": change.key})
                    self.log.warning("drift on %s (%s)", change.key, self._policy_name(run), extra=self._log_fields(run))
        self._drift_first_seen = {k: r.first_seen for k, r in known.items()} | {r.key: r.first_seen for r in records}
        cleared = [key for key in known if key not in seen_keys]
        if run.dry_run:
            return
        if records or cleared:
            store.set_drift(self.name, records, cleared)
        for key in cleared:
            store.audit("drift-resolved", target=self.name, kind=self.runner.target.kind, revision=run.revision,
                        trigger=run.trigger, details={"key": key, "how": "live state matches Git again"})

    def _drift_policy(self, run: Run, drift: list[ResourceChange]) -> tuple[list[ResourceChange], list[str]]:
        """Pick the drift to revert now: all (self_heal: true), none (false, or paused), or what
        has outlived its grace period; schedule a wake-up for the next grace expiry."""
        if run.paused or not drift:
            return [], []
        policy = self.runner.self_heal
        if policy is True:
            return drift, []
        if isinstance(policy, Grace):
            now = time.time()
            first = self._drift_first_seen
            due = [c for c in drift if now - first.get(c.key, now) >= policy.grace]
            pending = [c.key for c in drift if c not in due]
            if pending:
                expiry = min(first.get(k, now) + policy.grace for k in pending)
                self.runner.wake_at = min(self.runner.wake_at or expiry, expiry)
            return due, pending
        return [], []

    def _policy_name(self, run: Run) -> str:
        if run.paused:
            return "paused: report only"
        policy = self.runner.self_heal
        if policy is True:
            return "self-heal: revert"
        if isinstance(policy, Grace):
            return f"self-heal after grace {policy.grace:g}s"
        return "report only"

    def _review(self, run: Run, plan: Plan, inventory: dict[str, InventoryItem], only_drift: bool) -> bool:
        """Core safety checks, then plugins' review hook. False: the plan is held."""
        cfg = self.engine.config
        budget = cfg.effective(self.runner.target, "deletion_budget")
        hold_all = cfg.effective(self.runner.target, "hold_deletions")
        deletions = plan.deletions
        reason = None
        if deletions and hold_all:
            reason = f"the plan deletes {len(deletions)} object(s) and this target holds every deletion for approval"
        elif deletions and (len(deletions) > budget.max_count
                            or (inventory and 100.0 * len(deletions) / len(inventory) > budget.max_percent)):
            reason = (f"the plan deletes {len(deletions)} of {len(inventory)} managed object(s), over the deletion budget "
                      f"(at most {budget.max_count} and {budget.max_percent:g}%)")
        if reason is None and self.runner.driver is not None:
            reason = _stage("review", self.runner.driver.review, plan, only_drift)
        if reason is None:
            denial = self.engine.registry.hook.setpoint_review_plan(target=self.runner.info, plan=plan, drift=only_drift)
            if denial is not None:
                reason = f"denied by {denial.plugin or 'a review plugin'}: {denial.reason}"
        if reason is None:
            if self.store.held_plans(self.name, ("pending",)):
                self.store.supersede_plans(self.name)
            return True
        approved = [h for h in self.store.held_plans(self.name, ("approved",)) if h.plan_id == plan.id]
        if approved:
            run.actions.append({"action": "approved-plan", "plan_id": plan.id, "approved_by": approved[0].decided_by})
            return True
        already = {h.plan_id for h in self.store.held_plans(self.name, ("pending",))}
        held = self.store.hold_plan(self.name, plan.id, run.revision.sha if run.revision else "", reason, plan.to_record())
        run.held_plan_id = held.plan_id
        run.message = f"plan {held.plan_id} held for approval: {reason}. Approve with: setpoint approve {self.name} {held.plan_id}"
        if held.plan_id not in already:
            self.store.audit("held", target=self.name, kind=self.runner.target.kind, revision=run.revision,
                             trigger=run.trigger, details={"plan_id": held.plan_id, "reason": reason,
                                                           "changes": plan.to_record()})
            run.actions.append({"action": "held", "plan_id": held.plan_id, "reason": reason})
            self.log.warning("plan %s held for approval: %s", held.plan_id, reason, extra=self._log_fields(run))
        return False

    def _apply(self, run: Run, plan: Plan, desired: Desired, inventory: dict[str, InventoryItem],
               revert: list[ResourceChange]) -> bool:
        driver = self.runner.driver
        assert driver is not None
        started = time.monotonic()
        try:
            result = driver.apply(plan, desired)
        except Exception as exc:  # noqa: BLE001
            self._claim_attempted(run, plan, desired, inventory, set())
            self._record_apply(run, plan, [], {c.key: safe_error(exc) for c in plan.changes}, time.monotonic() - started)
            raise StageError("apply", exc) from exc
        applied = set(result.applied) if result.applied or result.failed else {c.key for c in plan.changes}
        with self.store.batch():
            self._claim_attempted(run, plan, desired, inventory, applied)
            self._record_result(run, plan, desired, revert, result, applied, time.monotonic() - started)
        if result.failed:
            raise StageError("apply", SetpointError(_failures(result.failed)))
        return True

    def _claim_attempted(self, run: Run, plan: Plan, desired: Desired, inventory: dict[str, InventoryItem],
                         applied: set[str]) -> None:
        """A creation that failed may still have created something (a container created, then not
        started): it is setpoint's from that moment, so it enters the inventory and is pruned if it
        leaves Git. Its digest is empty, so the next pass treats the difference as a deploy still to
        do, never as drift."""
        claims = [InventoryItem(c.key, desired.resources[c.key].kind, desired.resources[c.key].name,
                                desired.resources[c.key].namespace, "", run.revision.sha if run.revision else "",
                                time.time())
                  for c in plan.changes
                  if c.action != Action.DELETE and c.key not in applied and c.key not in inventory
                  and c.key in desired.resources]
        if claims:
            self.store.update_inventory(self.name, claims, [])

    def _record_result(self, run: Run, plan: Plan, desired: Desired, revert: list[ResourceChange],
                       result: Any, applied: set[str], duration: float) -> None:
        now = time.time()
        upserts, deletes = [], []
        for change in plan.changes:
            if change.key not in applied:
                continue
            if change.action == Action.DELETE:
                deletes.append(change.key)
            else:
                want = desired.resources[change.key]
                upserts.append(InventoryItem(change.key, want.kind, want.name, want.namespace, want.digest(),
                                             run.revision.sha if run.revision else "", now))
        self.store.update_inventory(self.name, upserts, deletes)
        reverted = [c.key for c in revert if c.key in applied]
        if reverted:
            self.store.set_drift(self.name, [], reverted)
        if plan.id and any(a.get("action") == "approved-plan" for a in run.actions):
            self.store.finish_plan(self.name, plan.id, "applied" if result.ok else "failed")
        self._record_apply(run, plan, sorted(applied), result.failed, duration)

    def _log_fields(self, run: Run, stage: str | None = None) -> dict[str, Any]:
        fields: dict[str, Any] = {"trigger": run.trigger}
        if run.revision is not None:
            fields["revision"] = run.revision.short
        if stage:
            fields["stage"] = stage
        return fields

    def _record_apply(self, run: Run, plan: Plan, applied: list[str], failed: dict[str, str], duration: float) -> None:
        deploy = [c.to_record() for c in plan.changes if not c.drift]
        reverts = [c.to_record() for c in plan.changes if c.drift]
        result = "failed" if failed else "ok"
        common: dict[str, Any] = {"target": self.name, "kind": self.runner.target.kind, "revision": run.revision,
                                  "trigger": run.trigger, "duration": duration, "result": result}
        fields = self._log_fields(run)
        if deploy:
            self.store.audit("apply", details={"changes": deploy, "failed": failed, "plan_id": plan.id}, **common)
            run.actions.append({"action": "apply", "count": len(deploy), "result": result})
            self.log.info("applied %d change(s) from %s: %s", len(deploy),
                          run.revision.author if run.revision else "?", run.revision.subject if run.revision else "",
                          extra=fields)
        if reverts:
            self.store.audit("revert-drift", details={"changes": reverts, "failed": failed, "plan_id": plan.id}, **common)
            run.actions.append({"action": "revert-drift", "count": len(reverts), "result": result})
            self.log.info("reverted drift on %s", ", ".join(c["key"] for c in reverts[:5]) +
                          (f" and {len(reverts) - 5} more" if len(reverts) > 5 else ""), extra=fields)

    def _adopt(self, desired: Desired, inventory: dict[str, InventoryItem], revision: Revision | None) -> None:
        upserts = []
        now = time.time()
        for key, want in desired.resources.items():
            item = inventory.get(key)
            digest = want.digest()
            if item is None or item.digest != digest:
                upserts.append(InventoryItem(key, want.kind, want.name, want.namespace, digest,
                                             revision.sha if revision else "", now))
        if upserts:
            self.store.update_inventory(self.name, upserts, [])

    # ------------------------------------------------------------------ results

    def _outcome(self, run: Run, error_stage: str | None = None, error: str | None = None) -> Outcome:
        return Outcome(
            target=self.runner.info, trigger=run.trigger, revision=run.revision, sync=run.sync,
            health=run.health.status, actions=tuple(run.actions), drift=tuple(run.drift), error_stage=error_stage,
            error=error, held_plan_id=run.held_plan_id, duration_seconds=time.monotonic() - run.started,
            paused=run.paused,
        )

    def _finished(self, run: Run, previous: dict[str, Any]) -> Outcome:
        outcome = self._outcome(run)
        if not run.dry_run:
            self.runner.consecutive_failures = 0
            with self.store.batch():
                if previous.get("last_error"):
                    self.store.audit("recovered", target=self.name, kind=self.runner.target.kind,
                                     revision=run.revision, trigger=run.trigger,
                                     details={"previous_error": previous.get("last_error")})
                self._save(run, outcome, previous, None, None)
        return outcome

    def _failed(self, run: Run, previous: dict[str, Any], stage: str, error: BaseException) -> Outcome:
        message = safe_error(error)
        self.runner.consecutive_failures += 1
        run.sync = SyncStatus(previous.get("sync", SyncStatus.UNKNOWN.value)) if stage != "plugin" else SyncStatus.UNKNOWN
        run.health = Health(HealthStatus(previous.get("health", HealthStatus.UNKNOWN.value))
                            if stage not in ("plugin", "apply") else HealthStatus.DEGRADED, message)
        outcome = self._outcome(run, stage, message)
        if not run.dry_run:
            with self.store.batch():
                if previous.get("last_error") != message:
                    self.store.audit("error", target=self.name, kind=self.runner.target.kind, revision=run.revision,
                                     trigger=run.trigger, result="failed", details={"stage": stage, "error": message})
                self._save(run, outcome, previous, stage, message)
        self.log.warning("reconcile failed at %s: %s", stage, message, extra=self._log_fields(run, stage))
        return outcome

    def _save(self, run: Run, outcome: Outcome, previous: dict[str, Any], stage: str | None, error: str | None) -> None:
        pause = self.store.get_pause(self.name)
        synced = outcome.sync == SyncStatus.SYNCED and error is None
        data = {
            "target": self.name,
            "kind": self.runner.target.kind,
            "sync": outcome.sync.value,
            "health": outcome.health.value,
            "health_message": run.health.message,
            "message": run.message,
            "head": run.head or previous.get("head"),
            "revision": run.revision.sha if run.revision else previous.get("revision"),
            "revision_author": run.revision.author if run.revision else previous.get("revision_author"),
            "revision_subject": run.revision.subject if run.revision else previous.get("revision_subject"),
            "applied_revision": (run.revision.sha if synced and run.revision else previous.get("applied_revision")),
            "applied_head": (run.head if synced else previous.get("applied_head")),
            "last_error": error,
            "error_stage": stage,
            "source_error": self.engine.source_error(self.runner.target.source),
            "consecutive_failures": self.runner.consecutive_failures,
            "drift": [c.key for c in run.drift],
            "held_plan": run.held_plan_id,
            "paused": ({"reason": pause.reason, "by": pause.paused_by, "since": pause.paused_at, "until": pause.until}
                       if pause else None),
            "last_run": time.time(),
            "last_trigger": run.trigger,
            "duration": outcome.duration_seconds,
        }
        # A no-op reconcile changes only the volatile fields: persist those at most once a minute,
        # so a thousand quiet targets do not cost a thousand fsyncs per pass.
        stable = {k: v for k, v in data.items() if k not in VOLATILE_STATUS}
        now = time.monotonic()
        if stable == self.runner.saved_status and now - self.runner.saved_at < STATUS_REFRESH:
            return
        self.store.save_status(self.name, self.runner.target.kind, data)
        self.runner.saved_status, self.runner.saved_at = stable, now


def _failures(failed: dict[str, str]) -> str:
    """One line per distinct reason, naming its resources: one command that failed for nine
    resources (a ``compose up``, a ``terraform apply``) is reported once, not nine times."""
    by_reason: dict[str, list[str]] = {}
    for key, reason in sorted(failed.items()):
        by_reason.setdefault(reason, []).append(key)
    return "; ".join(f"{', '.join(keys)}: {reason}" for reason, keys in by_reason.items())
