"""The review stage: may this plan be applied now, or is it held for approval?

In order: the core's deletion rules (``hold_deletions``, the deletion budget), the driver's own
review, then the ``setpoint_review_plan`` hook. A held plan is recorded once; an operator's
approval of exactly that plan lets it through.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from setpoint.api import Action, Live, Plan, Resource, covers_secret, secret_paths
from setpoint.engine.ports import ReconcilePorts
from setpoint.engine.run import Run, stage
from setpoint.engine.runner import TargetRunner
from setpoint.secrets import Secret, to_jsonable
from setpoint.state import AuditAction, InventoryItem


class ReviewStage:
    def __init__(self, ports: ReconcilePorts, runner: TargetRunner) -> None:
        self.ports = ports
        self.store = ports.store
        self.runner = runner
        self.name = runner.name

    def deletion_reason(self, plan: Plan, inventory: dict[str, InventoryItem]) -> str | None:
        """Why the core holds this plan's deletions (None: it does not)."""
        cfg = self.ports.config
        budget = cfg.effective(self.runner.target, "deletion_budget")
        hold_all = cfg.effective(self.runner.target, "hold_deletions")
        deletions = plan.deletions
        if deletions and hold_all:
            return f"the plan deletes {len(deletions)} object(s) and this target holds every deletion for approval"
        share = 100.0 * len(deletions) / len(inventory) if inventory else 0.0
        if deletions and (len(deletions) > budget.max_count
                          or (len(deletions) >= min(budget.min_count, len(inventory)) and share > budget.max_percent)):
            return (f"the plan deletes {len(deletions)} of {len(inventory)} managed object(s), over the deletion budget "
                    f"(at most {budget.max_count}, and at most {budget.max_percent:g}% once {budget.min_count} "
                    "or more, or all, are deleted)")
        return None

    def split_deletions(self, plan: Plan, inventory: dict[str, InventoryItem]) -> tuple[Plan, Plan] | None:
        """``(the rest, the deletions)`` when the core holds this plan's deletions and only they
        need wait: the budget says so (``hold: deletions``), the target kind can apply in part, and
        the plan changes something else too. None: review the plan whole."""
        driver = self.runner.driver
        budget = self.ports.config.effective(self.runner.target, "deletion_budget")
        deleting = {c.key for c in plan.deletions}
        if not deleting or len(deleting) == len(plan.changes) or budget.hold != "deletions" \
                or driver is None or not driver.partial_apply or self.deletion_reason(plan, inventory) is None:
            return None
        return plan.without(deleting), plan.only(deleting)

    def hold_reason(self, plan: Plan, inventory: dict[str, InventoryItem], only_drift: bool) -> str | None:
        """The first reason to hold the plan: core rules, then the driver, then review plugins."""
        reason = self.deletion_reason(plan, inventory)
        if reason is None and self.runner.driver is not None:
            reason = stage("review", self.runner.driver.review, plan, only_drift)
        if reason is None:
            denial = self.ports.registry.hook.setpoint_review_plan(target=self.runner.info, plan=plan, drift=only_drift)
            if denial is not None:
                reason = f"denied by {denial.plugin or 'a review plugin'}: {denial.reason}"
        return reason

    def review(self, run: Run, plan: Plan, inventory: dict[str, InventoryItem], only_drift: bool,
               *, supersede: bool = True) -> bool:
        """True: apply ``plan`` now. False: it is held for approval (recorded and audited once).
        ``supersede``: a plan let through ends the pending held plans (not when it is the part of a
        plan applied beside its held deletions)."""
        reason = self.hold_reason(plan, inventory, only_drift)
        if reason is None:
            if supersede and self.store.held_plans(self.name, ("pending",)):
                self.store.supersede_plans(self.name)
            return True
        driver = self.runner.driver
        if driver is not None and not driver.partial_apply and 0 < len(plan.deletions) < len(plan.changes) \
                and reason == self.deletion_reason(plan, inventory):
            reason += f"; the other changes wait with them: {driver.whole_plan_reason}"
        approved = [h for h in self.store.held_plans(self.name, ("approved",)) if h.plan_id == plan.id]
        if approved:
            run.actions.append({"action": "approved-plan", "plan_id": plan.id, "approved_by": approved[0].decided_by})
            return True
        self._hold(run, plan, reason)
        return False

    def _hold(self, run: Run, plan: Plan, reason: str) -> None:
        already = {h.plan_id for h in self.store.held_plans(self.name, ("pending",))}
        changes = held_changes(plan, run.live, self.store.inventory(self.name))
        held = self.store.hold_plan(self.name, plan.id, run.revision.sha if run.revision else "", reason, changes)
        run.held_plan_id = held.plan_id
        run.message = f"plan {held.plan_id} held for approval: {reason}. Approve with: setpoint approve {self.name} {held.plan_id}"
        if held.plan_id in already:
            return
        self.store.audit(AuditAction.HELD, target=self.name, kind=self.runner.target.kind, revision=run.revision,
                         trigger=run.trigger, details={"plan_id": held.plan_id, "reason": reason,
                                                       "changes": changes})
        run.actions.append({"action": AuditAction.HELD.value, "plan_id": held.plan_id, "reason": reason})
        self.runner.logger.warning("plan %s held for approval: %s", held.plan_id, reason, extra=run.log_fields())


def held_changes(plan: Plan, live: Live | None, inventory: Mapping[str, InventoryItem]) -> list[dict[str, Any]]:
    """The plan's records, each deletion (and replacement) with ``live``: the object it would remove
    as observed now (``None``: not found live), so an approver sees exactly what goes. Secret fields
    (secret now, or when setpoint applied the object) are fingerprints; the plan id does not change."""
    records = plan.to_record()
    for record, change in zip(records, plan.changes, strict=True):
        if change.action not in (Action.DELETE, Action.REPLACE):
            continue
        resource = live.resources.get(change.key) if live is not None else None
        item = inventory.get(change.key)
        record["live"] = None if resource is None else live_record(
            resource, set(item.secret_paths if item else ()) | set(change.secret_paths))
    return records


def live_record(resource: Resource, sticky: Collection[str]) -> dict[str, Any]:
    """A live object as a JSON-safe record: its identity and compared fields, every secret field
    (a :class:`Secret`, or one of ``sticky``) as its salted fingerprint only."""
    paths = set(sticky) | secret_paths(resource.body)
    return {"key": resource.key, "kind": resource.kind, "name": resource.name, "namespace": resource.namespace,
            "body": to_jsonable(_hide(resource.body, paths, ""))}


def _hide(value: Any, paths: Collection[str], path: str) -> Any:
    if isinstance(value, Secret) or not paths:
        return value
    if isinstance(value, Mapping):
        return {k: _hide(v, paths, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    return Secret(value) if covers_secret(paths, path or "(value)") and value is not None else value
