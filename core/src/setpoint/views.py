"""Rows for people and dashboards: target status, apply history and held plans.

The CLI (``setpoint status``/``history``, ``-o json``) and the HTTP status API (``/api/v1``) both
build their rows here, so the same field has the same name and meaning everywhere. The fields
are documented once, in docs/cli.md ("Status, history and plan fields").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from setpoint import statusrow
from setpoint.state import AuditAction, AuditEntry, HeldPlan, StateStore, TargetStatus

if TYPE_CHECKING:
    from setpoint.config import Config, TargetConfig

#: How many applies ``history`` shows when not told otherwise.
HISTORY_LIMIT = 20


def held_plan_row(held: HeldPlan, *, changes: bool = True) -> dict[str, Any]:
    return statusrow.held_plan_row(held.target, held.plan_id, held.revision, held.reason, held.created_at,
                                   held.changes if changes else None)


def held_plan_rows(store: StateStore, target: str | None = None) -> list[dict[str, Any]]:
    """Plans waiting for approval (of one target, or of all)."""
    return [held_plan_row(h) for h in store.held_plans(target, ("pending",))]


def status_row(target: TargetConfig, status: TargetStatus | None, store: StateStore,
               source_error: str | None = None, pending: list[HeldPlan] | None = None) -> dict[str, Any]:
    """One target's status: the stored row, its current pause and its pending plans.

    ``source_error`` is the running process's own view of the target's source (an unreachable remote
    it polled just now); without it, the one last recorded is shown. ``pending``: the target's
    pending plans when the caller has read them already (one query for many targets)."""
    pause = store.get_pause(target.name)
    if pending is None:
        pending = store.held_plans(target.name, ("pending",))
    # the same builder as setpoint.quick's (setpoint.statusrow), so the rows cannot diverge
    return statusrow.status_row(
        target.name, target.kind, target.source, target.path,
        statusrow.normalise(status.to_json()) if status else None,
        {"reason": pause.reason, "paused_by": pause.paused_by, "paused_at": pause.paused_at, "until": pause.until}
        if pause else None,
        [held_plan_row(h, changes=False) for h in pending], source_error)


def status_rows(config: Config, store: StateStore,
                source_errors: dict[str, str | None] | None = None) -> list[dict[str, Any]]:
    """Every configured target, in configuration order (``source_errors``: by source name, see status_row)."""
    states = store.all_status()
    errors = source_errors or {}
    pending: dict[str, list[HeldPlan]] = {}
    for held in store.held_plans(None, ("pending",)):
        pending.setdefault(held.target, []).append(held)
    return [status_row(target, states.get(target.name), store, errors.get(target.source), pending.get(target.name, []))
            for target in config.targets]


def history_row(entry: AuditEntry) -> dict[str, Any]:
    return {"time": entry.time, "revision": entry.revision, "author": entry.author, "subject": entry.subject,
            "trigger": entry.trigger, "changes": len(entry.details.get("changes", []))}


def history_rows(store: StateStore, target: str, limit: int = HISTORY_LIMIT) -> list[dict[str, Any]]:
    """Revisions applied successfully to ``target``, newest first."""
    applies = [e for e in store.audit_entries(target=target, actions=(AuditAction.APPLY.value,)) if e.result == "ok"]
    return [history_row(e) for e in reversed(applies[-limit:])] if limit > 0 else []


# --------------------------------------------------------------------------- dashboard pages (and anyone else)


def resource_rows(store: StateStore, target: str) -> list[dict[str, Any]]:
    """The objects setpoint applied to ``target`` (its inventory), each with whether it drifted now
    and its health: as the driver last reported it per object (``health_source: "driver"``) where
    the driver does, else estimated by the core from the target's health and its message, which
    names the objects that are not Healthy (``health_source: "estimated"``)."""
    drifted = store.drift(target)
    status = store.status(target)
    health, message = (status.health.value, status.health_message) if status else ("Unknown", "")
    reported = store.object_health(target) or {}
    rows = []
    for key, item in sorted(store.inventory(target).items()):
        if key in reported:
            object_health, source = reported[key], "driver"
        elif health == "Healthy":
            object_health, source = "Healthy", "estimated"
        else:
            object_health, source = (health if key in message or item.name in message else "-"), "estimated"
        rows.append({"key": key, "kind": item.kind, "name": item.name, "namespace": item.namespace,
                     "revision": item.revision, "applied_at": item.applied_at,
                     "sync": "OutOfSync" if key in drifted else "Synced", "health": object_health,
                     "health_source": source, "secret_fields": list(item.secret_paths)})
    return rows


def drift_rows(store: StateStore, target: str) -> list[dict[str, Any]]:
    """The live differences recorded for ``target`` now, each with its per-field diff (secrets are
    fingerprints: the engine stores nothing else)."""
    rows = []
    for key, record in sorted(store.drift(target).items()):
        change = record.details.get("change") or {}
        rows.append({"key": key, "first_seen": record.first_seen, "action": change.get("action", "update"),
                     "fields": list(change.get("fields") or [])})
    return rows


def dependency_rows(config: Config, target: str) -> dict[str, list[str]]:
    """Targets ``target`` waits for (upstream) and targets waiting for it (downstream), any kind,
    transitively, nearest first."""
    by_name = {t.name: t for t in config.targets}

    def walk(start: str, step: Any) -> list[str]:
        seen: list[str] = []
        frontier = [start]
        while frontier:
            nxt = []
            for name in frontier:
                for other in step(name):
                    if other not in seen and other != target:
                        seen.append(other)
                        nxt.append(other)
            frontier = nxt
        return seen

    def up(name: str) -> tuple[str, ...]:
        return by_name[name].depends_on if name in by_name else ()

    def down(name: str) -> list[str]:
        return [t.name for t in config.targets if name in t.depends_on]

    return {"upstream": walk(target, up), "downstream": walk(target, down)}


def audit_groups(entries: list[AuditEntry]) -> list[dict[str, Any]]:
    """Audit entries grouped by target, then by the Git revision they concern (drift and reverts
    included: they carry the revision Git wanted), in time order within each group."""
    groups: dict[str, dict[str, list[AuditEntry]]] = {}
    for e in entries:
        groups.setdefault(e.target or "-", {}).setdefault(e.revision or "", []).append(e)
    out = []
    for target, by_revision in sorted(groups.items()):
        commits = []
        for revision, items in by_revision.items():
            first = next((i for i in items if i.subject), items[0])
            commits.append({"revision": revision or None, "author": first.author, "subject": first.subject,
                            "entries": items})
        out.append({"target": target, "count": sum(len(items) for items in by_revision.values()), "commits": commits})
    return out
