"""One reconcile of one target: resolve revision, render, decrypt, observe, diff, review, apply,
check health, record. Every safety rule of the core is applied here or in a stage module:

* fail closed: an error in source, decrypt or render applies and prunes nothing;
* drift attribution and the self-heal policy (:mod:`.drift`): a change to an object whose desired
  state Git did not change is drift; revert now, after a grace period, or report only;
* paused targets never apply;
* prune safety: only objects setpoint applied are pruned, never on an empty render unless allowed,
  and deletions over the budget are held for approval (:mod:`.review`);
* audit: every apply, revert, hold and newly seen drift is recorded with revision and diff (:mod:`.record`).

:meth:`Reconciler.run` returns a :class:`~setpoint.engine.run.RunResult`: the outcome, the plan and
when to run again. Nothing it decides is written onto shared objects for others to read.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from setpoint.api import (
    Action,
    Desired,
    Health,
    HealthStatus,
    Live,
    Plan,
    ResourceChange,
    SourceTree,
    SyncStatus,
)
from setpoint.engine.decrypt import decrypt_tree
from setpoint.engine.drift import DriftStage, attribute_drift
from setpoint.engine.outputs import outputs_digest, substitute
from setpoint.engine.ports import ReconcilePorts
from setpoint.engine.record import Recorder, sync_without_apply
from setpoint.engine.review import ReviewStage
from setpoint.engine.run import PROGRESS_RECHECK, Run, RunResult, StageError, stage
from setpoint.engine.runner import RenderCache, TargetRunner
from setpoint.errors import RenderError, SetpointError, SourceError, TemporaryError
from setpoint.secrets import safe_error
from setpoint.state import AuditAction, InventoryItem, Pause, TargetStatus
from setpoint.state.store import LeaseLost


def refuse_undecodable_names(root: Path) -> None:
    """Git allows any bytes in a file name; the state store, the API, the audit log and most drivers
    hold text. Refuse a name that is not UTF-8 anywhere under the target's folder before decrypt,
    render or apply see it, whichever driver or decryptor would have read it."""
    for folder, dirs, files in os.walk(bytes(root)):
        for name in (*dirs, *files):
            try:
                name.decode()
            except UnicodeDecodeError:
                shown = os.path.relpath(os.path.join(folder, name), bytes(root)).decode(errors="backslashreplace")
                raise SourceError(f"'{shown}' is not a valid UTF-8 file name; setpoint refuses it before "
                                  "anything is applied: rename it in Git") from None


@dataclass
class Scoped:
    """A plan cut down to what setpoint may do, and what it set aside."""

    plan: Plan
    #: Keys removed from Git but kept because prune is off.
    orphans: list[str]
    #: Deletions of objects setpoint never applied: reported as drift, never removed.
    unmanaged: list[ResourceChange]


class Reconciler:
    def __init__(self, ports: ReconcilePorts, runner: TargetRunner) -> None:
        self.ports = ports
        self.store = ports.store
        self.runner = runner
        self.name = runner.name
        self.drift = DriftStage(ports.store, runner)
        self.review = ReviewStage(ports, runner)
        self.record = Recorder(ports, runner)

    # ------------------------------------------------------------------ entry point

    def run(self, trigger: str, dry_run: bool = False, *, poll: bool = True, pinned: str | None = None) -> RunResult:
        """Reconcile once. ``poll``: ask Git for the head first (one-shot commands) rather than
        using the last poll's (the daemon polls on its own clock). ``pinned``: a dry run at this
        commit instead of the branch head (``setpoint preview``)."""
        if pinned is not None and not dry_run:
            raise ValueError("a pinned revision is only ever previewed (dry_run=True), never applied")
        run = Run(trigger, dry_run, pinned=pinned)
        previous = self.store.status(self.name) or TargetStatus(self.name, self.runner.target.kind)
        if pinned is not None:
            # what this process knows about the target's current revision survives a preview
            kept = self.runner.render_cache, list(self.runner.watched_paths)
            try:
                return self._run(run, previous, poll)
            finally:
                self.runner.render_cache, self.runner.watched_paths = kept
        return self._run(run, previous, poll)

    def _run(self, run: Run, previous: TargetStatus, poll: bool) -> RunResult:
        try:
            try:
                self._stages(run, previous, poll)
            except StageError as exc:
                if isinstance(exc.error, LeaseLost):  # another replica owns the target now: record nothing
                    raise exc.error from None
                return RunResult.of(run, self.record.failed(run, previous, exc.stage, exc.error), exc.error)
            return RunResult.of(run, self.record.finished(run, previous))
        except BaseException:
            # nothing of this run was recorded: neither may the driver's memory of it be
            self.runner.memory.discard_pending()
            raise

    def _stages(self, run: Run, previous: TargetStatus, poll: bool) -> None:
        try:
            self._all_stages(run, previous, poll)
        except StageError as exc:
            # a repair at the last verified revision that fails is logged and audited by its stage; the
            # run still reports the refusal (the status must name the refused commit), except for
            # failures whose own handling matters (a lost lease, an apply whose record failed)
            if run.refused is None or exc is run.refused or isinstance(exc.error, LeaseLost) or exc.stage == "record":
                raise
            self.runner.logger.warning("repairing drift at the last verified revision failed at %s: %s",
                                       exc.stage, safe_error(exc.error), extra=run.log_fields(exc.stage))
        if run.refused is not None:
            run.revision, run.head = run.refused_revision, run.refused_head
            raise run.refused

    def _all_stages(self, run: Run, previous: TargetStatus, poll: bool) -> None:
        if self.runner.driver is None:
            raise StageError("plugin", SetpointError(self.runner.driver_error or "no driver"))
        if not run.dry_run:
            stage("record", self.record.interrupted, run)
        pause = self._pause(run)
        rev_sha = self._source(run, poll, previous)
        if self._waiting_for_dependencies(run, previous):
            return
        desired = self._desired(run, rev_sha)
        inventory = self.store.inventory(self.name)
        live, scoped = self._observe_and_diff(desired, inventory)
        run.live = live
        if not run.dry_run:
            inventory = self._forget_vanished(desired, live, inventory)
        attribute_drift(scoped.plan, desired, inventory)
        run.plan = scoped.plan
        self._guard_empty_render(desired, inventory, rev_sha)
        revert, pending_grace = self._drift(run, scoped, live)
        if run.dry_run:
            run.sync = SyncStatus.SYNCED if scoped.plan.empty else SyncStatus.OUT_OF_SYNC
            run.health = self.runner.driver.health(desired, live)
            notes = self._notes(run, scoped, pending_grace, pause)
            if scoped.plan.changes and run.pinned is None:
                notes.insert(0, f"dry run: {len(scoped.plan.changes)} change(s) not applied")
            run.message = "; ".join(notes)
            return
        applied_any = self._review_and_apply(run, scoped.plan, desired, inventory, revert)
        self._converge(run, desired, live, scoped.plan, applied_any)
        self._adopt_and_publish(run, desired, inventory, applied_any)
        # the review's note (a held plan) first, then what else this run set aside
        run.message = "; ".join([m for m in (run.message,) if m] + self._notes(run, scoped, pending_grace, pause))

    # ------------------------------------------------------------------ stages

    def _pause(self, run: Run) -> Pause | None:
        """The target's pause, if any; an expired one is lifted (and audited) first."""
        runner, store = self.runner, self.store
        pause = store.get_pause(self.name)
        if pause and pause.expired() and run.pinned is not None:
            pause = None  # a preview changes nothing, not even an expired pause; the next reconcile lifts it
        elif pause and pause.expired():
            store.resume(self.name)
            if not run.dry_run:
                store.audit(AuditAction.RESUME, target=self.name, kind=runner.target.kind,
                            actor="setpoint (pause expired)", details={"reason": pause.reason,
                                                                       "paused_by": pause.paused_by})
                self.ports.emit("resumed", runner.info, {"reason": "pause expired", "paused_by": pause.paused_by})
            pause = None
        run.paused = pause is not None
        if pause and pause.until:
            run.wake_by(pause.until)
        return pause

    def _source(self, run: Run, poll: bool, previous: TargetStatus) -> str:
        """Which revision does this target want? The last commit under its paths at the head."""
        source = self.ports.sources[self.runner.target.source]
        if run.pinned is not None:
            head = run.pinned  # a preview: the commit asked for, whatever the branch says
        else:
            head = stage("source", self.ports.current_head, source.name, poll=poll)
            head = self._not_behind_applied(run, head, previous)
        run.head = head
        paths = [self.runner.target.path, *self.runner.watched_paths]
        rev_sha: str = stage("source", source.last_change, head, paths) or head
        run.revision = stage("source", source.revision, rev_sha)
        if run.pinned is None:
            # the gate: nothing of an unverified head is rendered, let alone applied (docs/git-safety.md);
            # a preview applies nothing, so an unsigned pull request can still be previewed
            try:
                run.signer = stage("verify", source.verify, head, previous.applied_head)
            except StageError as refused:
                return self._last_verified(run, refused, previous)
        return rev_sha

    def _last_verified(self, run: Run, refused: StageError, previous: TargetStatus) -> str:
        """The head is refused: go on at the head last applied, so drift is still repaired against the
        last good state (self-heal policy as usual) while the head waits. That head is verified again
        first (a key removed since no longer vouches for it); without one, the run stops here."""
        source = self.ports.sources[self.runner.target.source]
        applied = previous.applied_head
        if run.dry_run or not applied or applied == run.head:
            raise refused
        try:
            run.signer = source.verify(applied, applied)
        except Exception:  # noqa: BLE001 - not verified either: nothing to fall back on
            raise refused from None
        run.refused, run.refused_revision, run.refused_head, run.head = refused, run.revision, run.head, applied
        paths = [self.runner.target.path, *self.runner.watched_paths]
        rev_sha: str = stage("source", source.last_change, applied, paths) or applied
        run.revision = stage("source", source.revision, rev_sha)
        self.runner.logger.warning("the head is refused (%s); keeping %s, the last verified revision applied, "
                                   "and repairing drift against it", safe_error(refused.error), run.revision.short,
                                   extra=run.log_fields("verify"))
        return rev_sha

    def _not_behind_applied(self, run: Run, head: str, previous: TargetStatus) -> str:
        """Never apply a head older than the one last applied unless Git itself moved back.

        The daemon reconciles to its last poll's head; another process (``setpoint sync``) may have
        applied a newer one meanwhile. This runs under the target's cross-process lock, so the
        applied head read here is final: a head in its history is stale, and Git is asked again.
        Only when Git confirms it is back at the older commit (force-push, reset) does it apply,
        audited as such."""
        applied = previous.applied_head
        source = self.ports.sources[self.runner.target.source]
        if not applied or head == applied or not stage("source", source.is_ancestor, head, applied):
            return head
        fresh: str = stage("source", self.ports.current_head, source.name, poll=True)
        if source.last_error:
            raise StageError("source", TemporaryError(
                f"the head {head[:12]} is older than the applied {applied[:12]} and Git could not be asked "
                f"whether it moved back ({source.last_error}); nothing applied"))
        if fresh != applied and source.is_ancestor(fresh, applied) and not run.dry_run:
            self.store.audit(AuditAction.FORCE_PUSH, target=self.name, kind=self.runner.target.kind,
                             trigger=run.trigger, revision=source.revision(head),
                             details={"source": source.name, "applied_head": applied, "head": head,
                                      "note": "Git moved back behind the applied revision"})
        return fresh

    def _waiting_for_dependencies(self, run: Run, previous: TargetStatus) -> bool:
        """Wait until each dependency is Synced and Healthy at the same source head."""
        assert run.head is not None
        waiting = self.ports.unmet_dependencies(self.runner, run.head)
        if not waiting or run.dry_run:
            return False
        # Never "Synced" while a dependency is not at this head, unless this very revision is the one applied.
        applied = sync_without_apply(run, previous) == SyncStatus.SYNCED
        run.sync = SyncStatus.SYNCED if applied else SyncStatus.OUT_OF_SYNC
        run.health = Health(HealthStatus.PROGRESSING, f"waiting for {', '.join(waiting)}")
        why = "; ".join(f"{dep}: {reason}" for dep, reason in waiting.items())
        run.message = f"waiting for dependencies: {why}; {self.name} is deployed after them"
        run.actions.append({"action": "wait", "dependencies": list(waiting), "reason": run.message})
        run.wake_in(PROGRESS_RECHECK * 2)
        return True

    def _desired(self, run: Run, rev_sha: str) -> Desired:
        """Decrypt and render, cached while the target's files (and its inputs) are unchanged."""
        runner = self.runner
        dependency_outputs = self.ports.dependency_outputs(runner.target) if runner.target.depends_on else {}
        inputs_key = outputs_digest(dependency_outputs) if dependency_outputs else ""
        cache = runner.render_cache
        if cache is not None and cache.revision == rev_sha and cache.inputs == inputs_key:
            return cache.desired
        desired, rev_sha = self._render_current(run, rev_sha, dependency_outputs)
        runner.render_cache = RenderCache(rev_sha, desired, inputs_key)
        return desired

    def _render_current(self, run: Run, rev_sha: str, dependency_outputs: dict[str, Any]) -> tuple[Desired, str]:
        """Render at ``rev_sha``; when the render names files outside the target's path (watched
        paths: Kustomize bases, values files) that changed after ``rev_sha``, render again at the
        newest commit touching them. The revision was picked with the paths known *before* this
        render (none in a new process whose driver remembers none, fewer when Git just added a base),
        so without this a render could use files older than the head's: never apply such a render."""
        source = self.ports.sources[self.runner.target.source]
        head = run.head or rev_sha
        desired = self._render(run, rev_sha, dependency_outputs)
        for _ in range(3):  # each round can only reveal more paths; three is plenty
            paths = [self.runner.target.path, *self.runner.watched_paths]
            if rev_sha == head or not stage("source", source.changed, rev_sha, head, paths):
                break  # the head has the same files: rev_sha is as current as the head (never go back)
            rev_sha = stage("source", source.last_change, head, paths) or head
            run.revision = stage("source", source.revision, rev_sha)
            desired = self._render(run, rev_sha, dependency_outputs)
        return desired, rev_sha

    def _render(self, run: Run, rev_sha: str, dependency_outputs: dict[str, Any]) -> Desired:
        runner, driver = self.runner, self.runner.driver
        assert driver is not None and run.revision is not None
        source = self.ports.sources[runner.target.source]
        checkout = stage("source", source.checkout, rev_sha)
        root = checkout / runner.target.path
        if not root.is_dir():
            return self._missing_path(rev_sha)
        stage("source", refuse_undecodable_names, root)
        overlay = None
        if runner.target.depends_on:
            overlay = stage("render", substitute, root, self.name, runner.target.depends_on, dependency_outputs)
        try:
            tree_root = overlay[0] if overlay else root
            decryptors = stage("decrypt", self.ports.decryptors_for, runner)
            decrypted = dict(stage("decrypt", decrypt_tree, tree_root, decryptors))
            if overlay:
                decrypted.update(overlay[1])
            tree = SourceTree(tree_root, checkout, run.revision, decrypted)
            desired: Desired = stage("render", driver.render, tree)
            desired.revision = desired.revision or rev_sha
            runner.watched_paths = list(stage("render", driver.watched_paths, tree))
            return desired
        finally:
            if overlay:
                shutil.rmtree(overlay[0].parent, ignore_errors=True)

    def _missing_path(self, rev_sha: str) -> Desired:
        """The target's ``path`` is not a folder at ``rev_sha``: an error, nothing applied or pruned,
        with one exception. When the folder existed at the revision last applied (so Git deleted it,
        it is not a typo in setpoint.yaml) and the target has ``prune`` and ``allow_empty``, it is
        the empty render ``allow_empty`` allows: the core plans the deletion of the inventory, which
        goes through the deletion budget and approval, and the driver sees ``removed_from_git``."""
        runner = self.runner
        source = self.ports.sources[runner.target.source]
        path = runner.target.path
        previous = self.store.status(self.name)
        applied = previous.applied_revision if previous else None
        deleted_in_git = bool(applied) and stage("source", source.has_folder, applied, path)
        if deleted_in_git and runner.prune and runner.allow_empty and self.store.inventory(self.name):
            return Desired(revision=rev_sha, removed_from_git=True)
        if deleted_in_git:
            raise StageError("render", RenderError(
                f"path {path!r} was deleted in Git (it exists at the applied revision {str(applied)[:12]}, "
                f"not at {rev_sha[:12]}); nothing is applied or pruned. Restore the folder, or set "
                "prune: true and allow_empty: true on the target to remove what setpoint applied "
                "(the deletions wait for approval over the deletion budget)"))
        raise StageError("render", RenderError(
            f"path {path!r} does not exist at revision {rev_sha[:12]}; nothing is applied or pruned "
            "(check the target's path in setpoint.yaml)"))

    def _observe_and_diff(self, desired: Desired, inventory: dict[str, InventoryItem]) -> tuple[Live, Scoped]:
        driver = self.runner.driver
        assert driver is not None
        live: Live = stage("observe", driver.observe, desired, list(inventory))
        plan: Plan = stage("diff", driver.diff, desired, live)
        for change in plan.changes:  # secrecy is sticky: what was secret when applied stays fingerprinted
            item = inventory.get(change.key)
            if item is not None and item.secret_paths:
                change.secret_paths = frozenset(item.secret_paths)
        return live, self._scope(plan, inventory, live)

    def _scope(self, plan: Plan, inventory: dict[str, InventoryItem], live: Live | None = None) -> Scoped:
        """Split off deletions setpoint must not make: objects it never applied, or (for drivers
        whose live digest is the applied one) changed since it applied them (returned as unmanaged,
        reported as drift, never removed) and, with prune off, objects that left Git."""
        kept, orphans, unmanaged = [], [], []
        for change in plan.changes:
            if change.action == Action.DELETE:
                if change.key not in inventory or self._not_what_setpoint_wrote(inventory[change.key], live):
                    change.drift = True
                    unmanaged.append(change)
                    continue
                if not self.runner.prune:
                    orphans.append(change.key)
                    continue
            kept.append(change)
        fixed = plan.fixed_id if len(kept) == len(plan.changes) else None
        return Scoped(Plan(kept, plan.extra, fixed), orphans, unmanaged)

    def _not_what_setpoint_wrote(self, item: InventoryItem, live: Live | None) -> bool:
        """An inventory key whose live object is no longer what setpoint applied (a stale key left by a
        crash mid-prune, the name reused by hand). Secret items compare by fingerprint of a typed
        value the driver may not reproduce once the file left Git, so they are not judged here."""
        driver = self.runner.driver
        if live is None or driver is None or not driver.live_digest_is_applied_digest or item.secret_paths:
            return False
        have = live.resources.get(item.key)
        return have is not None and have.digest() != item.digest

    def _forget_vanished(self, desired: Desired, live: Live,
                         inventory: dict[str, InventoryItem]) -> dict[str, InventoryItem]:
        """Inventory keys neither in Git nor live are gone (a prune whose result a crash lost): drop
        them, so an object made later under that name is not taken for one setpoint applied."""
        gone = [k for k in inventory if k not in desired.resources and k not in live.resources]
        if not gone:
            return inventory
        self.store.update_inventory(self.name, [], gone)
        return {k: v for k, v in inventory.items() if k not in gone}

    def _guard_empty_render(self, desired: Desired, inventory: dict[str, InventoryItem], rev_sha: str) -> None:
        """Never prune a whole target because a render came out empty."""
        if not desired.resources and inventory and not self.runner.allow_empty:
            raise StageError("review", RenderError(
                f"the render at {rev_sha[:12]} produced no resources while setpoint manages {len(inventory)}; "
                "refusing to apply or prune anything (set allow_empty: true if the target should really be empty)"))

    def _drift(self, run: Run, scoped: Scoped, live: Live) -> tuple[list[ResourceChange], list[str]]:
        """Record drift (and unmanaged objects); return the drift to revert now and the keys in grace."""
        drift = [c for c in scoped.plan.changes if c.drift]
        run.drift = drift + scoped.unmanaged
        self.drift.record(run, run.drift, live, {c.key for c in scoped.plan.changes if not c.drift})
        return self.drift.to_revert(run, drift)

    def _review_and_apply(self, run: Run, plan: Plan, desired: Desired, inventory: dict[str, InventoryItem],
                          revert: list[ResourceChange]) -> bool:
        """Apply the changes from Git plus the drift to revert, if review lets them through."""
        deploy = [c for c in plan.changes if not c.drift]
        to_apply = deploy + revert
        if to_apply and not run.paused:
            apply_plan = plan if len(to_apply) == len(plan.changes) else Plan(to_apply, dict(plan.extra))
            split = self.review.split_deletions(apply_plan, inventory)
            if split is not None:
                return self._apply_beside_held_deletions(run, split, desired, inventory, revert)
            if self.review.review(run, apply_plan, inventory, only_drift=not deploy):
                return self._apply(run, apply_plan, desired, revert)
        elif not plan.changes and self.store.held_plans(self.name):
            self.store.supersede_plans(self.name)  # Git or live state moved: a held plan no longer applies
        return False

    def _apply_beside_held_deletions(self, run: Run, split: tuple[Plan, Plan], desired: Desired,
                                     inventory: dict[str, InventoryItem], revert: list[ResourceChange]) -> bool:
        """The deletions are over the budget: they wait for approval (or go, approved), and the rest
        of the plan, which does not depend on them, is applied now."""
        rest, deletions = split
        applied_any = False
        if self.review.review(run, rest, inventory, only_drift=all(c.drift for c in rest.changes), supersede=False):
            applied_any = self._apply(run, rest, desired, [c for c in revert if c.key in {r.key for r in rest.changes}])
        if self.review.review(run, deletions, inventory, only_drift=False, supersede=False):
            applied_any = self._apply(run, deletions, desired, []) or applied_any
        return applied_any

    def _apply(self, run: Run, plan: Plan, desired: Desired, revert: list[ResourceChange]) -> bool:
        driver = self.runner.driver
        assert driver is not None
        stage("record", self.record.apply_intent, run, plan)  # no intent on disk, no apply
        started = time.monotonic()
        try:
            result = driver.apply(plan, desired)
        except Exception as exc:  # noqa: BLE001
            with self.store.batch():
                self.record.claim_attempted(run, plan, desired, set())
                self.record.apply_audit(run, plan, [], {c.key: safe_error(exc) for c in plan.changes},
                                        time.monotonic() - started)
                self.store.clear_apply_intent(self.name)
            raise StageError("apply", exc) from exc
        applied = set(result.applied) if result.applied or result.failed else {c.key for c in plan.changes}
        # an apply whose result cannot be recorded (full disk) is a failed run, never reported done;
        # its intent stays, so the next run audits it as interrupted and reconciles again
        with self.store.batch():
            self.record.claim_attempted(run, plan, desired, applied)
            stage("record", self.record.apply_result, run, plan, desired, revert, result, applied,
                  time.monotonic() - started)
        if result.failed:
            raise StageError("apply", SetpointError(_failures(result.failed)))
        return True

    def _converge(self, run: Run, desired: Desired, live: Live, plan: Plan, applied_any: bool) -> None:
        """Health and the final sync state; look again soon if an apply did not converge."""
        driver = self.runner.driver
        assert driver is not None
        if applied_any:
            live = stage("observe", driver.observe, desired, list(self.store.inventory(self.name)))
            after = self._scope(stage("diff", driver.diff, desired, live), self.store.inventory(self.name))
            remaining = after.plan.changes
        else:
            remaining = plan.changes
        run.sync = SyncStatus.SYNCED if not remaining else SyncStatus.OUT_OF_SYNC
        run.health = stage("health", driver.health, desired, live)
        if applied_any and remaining:
            # Something changed again while we applied: look again soon, backing off if it keeps
            # happening (another controller fighting over the same object).
            self.runner.recheck_delay = min(PROGRESS_RECHECK, (self.runner.recheck_delay or 0.125) * 2)
            run.wake_in(self.runner.recheck_delay)
        else:
            self.runner.recheck_delay = 0.0
        if run.health.status == HealthStatus.PROGRESSING:
            run.wake_in(PROGRESS_RECHECK)  # a rollout in progress

    def _adopt_and_publish(self, run: Run, desired: Desired, inventory: dict[str, InventoryItem],
                           applied_any: bool) -> None:
        """Synced and not paused: record desired objects as managed, publish changed outputs."""
        runner = self.runner
        if run.sync != SyncStatus.SYNCED or run.paused:
            return
        assert runner.driver is not None
        outputs = dict(runner.driver.outputs())
        digest = outputs_digest({self.name: outputs})
        adopt = applied_any or runner.adopted is not desired
        # everything desired is live and equal: it is managed from now on (once per render:
        # digesting a thousand objects on every quiet reconcile would dominate a no-op)
        upserts = self.record.adoptions(desired, inventory, run.revision) if adopt else []
        if digest != runner.outputs_digest and not outputs and not runner.outputs_digest \
                and not self.store.outputs(self.name):
            runner.outputs_digest = digest  # none, and none stored (a new process): nothing to publish
        if upserts or digest != runner.outputs_digest:  # else no transaction at all (a quiet pass)
            with self.store.batch():  # one commit for both (each is an fsync; thousands of targets add up)
                if upserts:
                    self.store.update_inventory(self.name, upserts, [])
                if digest != runner.outputs_digest:  # write only when they changed
                    self.store.save_outputs(self.name, outputs)
        if adopt:
            runner.adopted = desired
        if digest != runner.outputs_digest:
            self.ports.outputs[self.name] = outputs
            runner.outputs_digest = digest

    def _notes(self, run: Run, scoped: Scoped, pending_grace: list[str], pause: Pause | None) -> list[str]:
        notes = []
        if scoped.unmanaged:
            notes.append(f"{len(scoped.unmanaged)} object(s) not from Git found "
                         "(reported, never removed: setpoint did not create them)")
        if scoped.orphans:
            notes.append(f"{len(scoped.orphans)} object(s) removed from Git are kept because prune is off")
        if pending_grace:
            due = self.drift.revert_at
            when = f"; reverted at {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(due))} unless Git changes " \
                   "them first" if due else ""
            notes.append(f"{len(pending_grace)} drifted object(s) within their grace period{when}")
        if run.paused and pause is not None:
            until = f" until {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(pause.until))}" if pause.until else ""
            notes.append(f"paused by {pause.paused_by}{until}: {pause.reason}")
        return notes


def _failures(failed: dict[str, str]) -> str:
    """One line per distinct reason, naming its resources: one command that failed for nine
    resources (a ``compose up``, a ``terraform apply``) is reported once, not nine times."""
    by_reason: dict[str, list[str]] = {}
    for key, reason in sorted(failed.items()):
        by_reason.setdefault(reason, []).append(key)
    return "; ".join(f"{', '.join(keys)}: {reason}" for reason, keys in by_reason.items())
