"""The ``ansible`` target kind: hosts configured by a playbook; drift is what ``--check --diff`` says.

Per reconcile the core calls ``observe`` (``ansible-playbook --check --diff``: every task on every
host, changed or not), ``diff`` (the changed tasks, with the modules' diffs as fields, plus one
change per host that could not be checked), ``review`` (a run applies every task of a host, so a
host is applied whole or not at all) and ``apply`` (the real run, limited to the hosts in the plan).
See docs/targets/ansible.md.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from setpoint.api import (
    Action,
    ApplyResult,
    Desired,
    FieldChange,
    Health,
    HealthStatus,
    Live,
    Plan,
    Resource,
    ResourceChange,
    SourceTree,
    TargetContext,
    TargetDriver,
    diff_values,
)
from setpoint.errors import PermanentError, RenderError
from setpoint.secrets import Secret
from setpoint_ansible.project import Snapshot, build, redact
from setpoint_ansible.runner import RunResult, TaskResult, build_env, run_playbook
from setpoint_ansible.settings import AnsibleSettings

#: How the kinds of resources are called in plans, the inventory and the audit.
TASK, HOST, EXTRA = "task", "host", "task-not-checked"


@dataclass
class Observation:
    """The last check run, against one project digest."""

    digest: str
    run: RunResult
    #: changed tasks that are drift candidates (not handlers, not known to be non-idempotent)
    changed: list[TaskResult] = field(default_factory=list)
    #: hosts that could not be checked: host -> "unreachable: ..." / "failed: ..."
    problems: dict[str, str] = field(default_factory=dict)
    not_idempotent: list[str] = field(default_factory=list)


class AnsibleTarget(TargetDriver):
    kind = "ansible"
    Settings = AnsibleSettings

    def __init__(self, context: TargetContext) -> None:
        super().__init__(context)
        self.cfg: AnsibleSettings = context.settings
        if self.cfg is None:
            raise PermanentError("an ansible target needs an 'ansible:' block with 'inventory' or 'hosts'")
        self._snapshot: Snapshot | None = None
        self._last: Observation | None = None
        self._managed: set[str] = set()
        # ssh's ControlPath must stay short (unix sockets: 108 bytes), so not under state_dir
        self._control_dir = Path(tempfile.mkdtemp(prefix="sp-ansible-cp-"))
        self._memory_path = context.state_dir / "ansible.json"
        self._memory = _load(self._memory_path)
        #: (digest, keys changed by the last real run): a key that shows changed again right after is not idempotent
        self._just_applied: tuple[str, set[str]] | None = None

    # ------------------------------------------------------------------ helpers

    def _env(self) -> dict[str, str]:
        known = self.context.resolve(self.cfg.known_hosts_file) if self.cfg.known_hosts_file else None
        if known is not None and not known.is_file():
            raise PermanentError(f"ansible.known_hosts_file {known} does not exist")
        return build_env(self.cfg, self._control_dir, known)

    def _key_file(self) -> Path | None:
        if not self.cfg.private_key_file:
            return None
        key = self.context.resolve(self.cfg.private_key_file)
        if not key.is_file():
            raise PermanentError(f"ansible.private_key_file {key} does not exist")
        return key

    def _run(self, snapshot: Snapshot, *, check: bool, limit: Collection[str] | None = None) -> RunResult:
        result = run_playbook(snapshot.project, self.cfg, self._env(), check=check,
                              private_key=self._key_file(), limit=limit)
        if result.rc != 0 and not result.hosts:
            what = "--check" if check else "run"
            raise PermanentError(f"ansible-playbook {what} failed (exit {result.rc}) before any host ran: "
                                 f"{result.output_tail or 'no output'}")
        return result

    # ------------------------------------------------------------------ render

    def render(self, tree: SourceTree) -> Desired:
        snapshot = build(tree, self.cfg)
        if self._snapshot is not None and self._snapshot.project.directory != snapshot.project.directory:
            self._snapshot.remove()
        self._snapshot = snapshot
        # Which tasks run on which hosts is known only when ansible runs: observe() fills the resources.
        return Desired(extra={"ansible": snapshot})

    # ------------------------------------------------------------------ observe = check run

    def observe(self, desired: Desired, managed: Collection[str]) -> Live:
        snapshot: Snapshot | None = desired.extra.get("ansible")
        if snapshot is None:
            raise RenderError("the target's folder was removed from Git; setpoint does not undo a playbook "
                              "(write a playbook that removes what the old one set up)")
        self._managed = set(managed)
        run = self._run(snapshot, check=True)
        if self._memory.get("digest") != snapshot.digest:
            self._memory = {"digest": snapshot.digest, "not_idempotent": []}
            _save(self._memory_path, self._memory)
        known_bad = set(self._memory.get("not_idempotent", []))
        changed_now = {t.key for t in run.tasks if t.status == "changed" and not t.handler}
        if self._just_applied is not None and self._just_applied[0] == snapshot.digest:
            # Ansible said these changed in the real run a moment ago and says so again: the task
            # cannot converge (a command without changed_when, a line that never matches).
            repeat = sorted((changed_now & self._just_applied[1]) - known_bad)
            if repeat:
                known_bad |= set(repeat)
                self._memory["not_idempotent"] = sorted(known_bad)
                _save(self._memory_path, self._memory)
                self.context.logger.warning("not idempotent (changed again right after the real run): %s",
                                            ", ".join(repeat))
        self._just_applied = None
        obs = Observation(snapshot.digest, run)
        for task in run.tasks:
            if task.status == "changed" and not task.handler:
                if task.key in known_bad:
                    obs.not_idempotent.append(task.key)
                else:
                    obs.changed.append(task)
        for host, outcome in sorted(run.hosts.items()):
            if outcome.status != "ok":
                obs.problems[host] = f"{outcome.status}: {outcome.message}"
        self._last = obs
        body = {"project": snapshot.digest}
        resources, live = [], []
        for host in sorted(run.hosts):
            resources.append(Resource(host, HOST, host, dict(body), namespace=host))
            if host not in obs.problems:
                live.append(Resource(host, HOST, host, dict(body), namespace=host))
        changed_keys = {t.key for t in obs.changed}
        for task in run.tasks:
            if task.handler or task.status not in ("ok", "changed"):
                continue
            resources.append(Resource(task.key, TASK, task.task, dict(body), namespace=task.host))
            live.append(Resource(task.key, TASK, task.task,
                                 {**body, "changed": True} if task.key in changed_keys else dict(body),
                                 namespace=task.host))
        desired.resources = {r.key: r for r in resources}
        return Live.of(live)

    # ------------------------------------------------------------------ diff

    def diff(self, desired: Desired, live: Live) -> Plan:
        obs = self._last
        if obs is None:
            raise PermanentError("diff without a check run")
        secrets = self._snapshot.secret_texts if self._snapshot else frozenset()
        changes = []
        for host, problem in obs.problems.items():
            changes.append(ResourceChange(host, HOST, host, Action.UPDATE,
                                          [FieldChange("check", problem, "ok")], namespace=host))
        for task in obs.changed:
            action = Action.UPDATE if task.key in self._managed else Action.CREATE
            changes.append(ResourceChange(task.key, TASK, task.task, action, _fields(task, secrets),
                                          namespace=task.host))
        hosts: dict[str, list[str]] = {}
        for change in changes:
            hosts.setdefault(change.namespace or "", []).append(change.key)
        return Plan(changes, {"ansible": {"hosts": hosts}})

    # ------------------------------------------------------------------ review

    def review(self, plan: Plan, drift: bool) -> str | None:
        observed = (plan.extra.get("ansible") or {}).get("hosts") or {}
        present = {c.key for c in plan.changes}
        partial = {}
        for host in sorted({c.namespace for c in plan.changes if c.namespace}):
            left_out = [k for k in observed.get(host, []) if k not in present]
            if left_out:
                partial[host] = left_out
        if not partial:
            return None
        listed = "; ".join(f"{h}: {', '.join(keys)}" for h, keys in partial.items())
        return ("a playbook run applies every task of a host, and the core keeps some changed tasks of these "
                f"hosts out of this plan (drift not reverted now by self_heal): {listed}; the run waits for approval")

    # ------------------------------------------------------------------ apply = the real run

    def apply(self, plan: Plan, desired: Desired) -> ApplyResult:
        snapshot: Snapshot | None = desired.extra.get("ansible")
        if snapshot is None:
            raise PermanentError("apply without a rendered project")
        hosts = sorted({c.namespace for c in plan.changes if c.namespace})
        run = self._run(snapshot, check=False, limit=hosts)
        results = run.by_key()
        applied: list[str] = []
        failed: dict[str, str] = {}
        for change in plan.changes:
            host = change.namespace or ""
            outcome = run.hosts.get(host)
            if change.kind == HOST:
                if outcome is not None and outcome.status == "ok":
                    applied.append(change.key)
                else:
                    failed[change.key] = _host_problem(host, outcome)
                continue
            task = results.get(change.key)
            host_ok = outcome is not None and outcome.status == "ok"
            if task is not None and (task.status in ("ok", "changed", "skipped") or host_ok):
                # (a failure on a host that ansible still counts as ok was handled by a rescue block)
                applied.append(change.key)
            elif task is not None and task.status == "failed":
                failed[change.key] = task.message or "failed"
            else:
                failed[change.key] = _host_problem(host, outcome)
        # Tasks that changed in the real run without being in the plan: tasks check mode skips
        # (command, shell) and handlers. They go into the audit with the run they belong to.
        planned = {c.key for c in plan.changes}
        extra = [t for t in run.tasks if t.key not in planned and t.host in hosts
                 and (t.status == "changed" or (t.status == "failed" and not t.ignored
                                                and getattr(run.hosts.get(t.host), "status", "") != "ok"))]
        if extra:
            plan.fixed_id = plan.id  # the approved/audited identity stays the one reviewed
            all_drift = all(c.drift for c in plan.changes)
            secrets = snapshot.secret_texts
            checked = self._last.run.by_key() if self._last is not None else {}
            for task in extra:
                fields = _fields(task, secrets)
                before = checked.get(task.key)
                if task.handler:
                    fields.insert(0, FieldChange("(handler)", None, "notified by a changed task"))
                elif before is not None and before.status == "skipped":
                    # skipped by the check run (a command, a `when: not ansible_check_mode`), run for real
                    fields.insert(0, FieldChange("(check mode)", "skipped in check mode", task.status))
                change = ResourceChange(task.key, EXTRA, task.task, Action.UPDATE, fields, namespace=task.host)
                change.drift = all_drift
                plan.changes.append(change)
                desired.resources.setdefault(task.key, Resource(task.key, EXTRA, task.task,
                                                                {"project": snapshot.digest}, namespace=task.host))
                if task.status == "failed":
                    failed[task.key] = task.message or "failed"
                else:
                    applied.append(task.key)
        self._just_applied = (snapshot.digest, {t.key for t in run.tasks if t.status == "changed"})
        summary = []
        for host in hosts:
            counts: dict[str, int] = {}
            for task in run.tasks:
                if task.host == host:
                    counts[task.status] = counts.get(task.status, 0) + 1
            state = run.hosts.get(host)
            summary.append(f"{host}: {state.status if state else 'not run'} "
                           f"({', '.join(f'{n} {s}' for s, n in sorted(counts.items())) or 'no tasks'})")
        message = "; ".join(summary)
        self.context.logger.info("ansible run: %s", message)
        return ApplyResult(applied, failed, message)

    # ------------------------------------------------------------------ health

    def health(self, desired: Desired, live: Live) -> Health:
        obs = self._last
        if obs is None:
            return Health(HealthStatus.UNKNOWN, "not checked yet")
        per_host = {h: (HealthStatus.DEGRADED if h in obs.problems else HealthStatus.HEALTHY) for h in obs.run.hosts}
        if obs.problems:
            listed = "; ".join(f"{h} {p}" for h, p in obs.problems.items())
            return Health(HealthStatus.DEGRADED, f"{len(obs.problems)} of {len(per_host)} host(s) not checked: "
                                                 f"{listed}", per_host)
        if obs.not_idempotent:
            return Health(HealthStatus.DEGRADED,
                          "not idempotent (reported changed on every run; not re-applied until the playbook "
                          f"changes): {', '.join(obs.not_idempotent)}", per_host)
        if obs.changed:
            return Health(HealthStatus.DEGRADED, f"{len(obs.changed)} task(s) differ from Git: "
                                                 f"{', '.join(t.key for t in obs.changed[:10])}", per_host)
        return Health(HealthStatus.HEALTHY, f"{len(per_host)} host(s) match the playbook", per_host)

    def close(self) -> None:
        if self._snapshot is not None:
            self._snapshot.remove()
            self._snapshot = None
        shutil.rmtree(self._control_dir, ignore_errors=True)


def _host_problem(host: str, outcome: Any) -> str:
    if outcome is None:
        return f"{host} did not run"
    return f"{host} {outcome.status}: {outcome.message}"


def _fields(task: TaskResult, secrets: Collection[str]) -> list[FieldChange]:
    """The module's diff as field changes; values holding a secret become :class:`Secret`."""
    if task.no_log:
        return [FieldChange("(no_log)", None, "changed; details hidden by no_log")]
    fields: list[FieldChange] = []
    for index, entry in enumerate(task.diffs):
        # before_header is the file on the host; a template's after_header is a temporary local file
        where = str(entry.get("before_header") or entry.get("after_header") or (f"diff {index + 1}" if index else "diff"))
        if "prepared" in entry:
            fields.append(_field(where, None, redact(entry["prepared"], secrets)))
            continue
        before, after = redact(entry.get("before"), secrets), redact(entry.get("after"), secrets)
        if isinstance(before, Mapping) and isinstance(after, Mapping):
            fields += [_field(f.path, f.before, f.after) for f in diff_values(before, after, where)]
        elif before != after:
            fields.append(_field(where, before, after))
    if not fields:
        fields.append(FieldChange("(changed)", None, task.message or "changed (the module reports no diff)"))
    return fields


def _field(path: str, before: Any, after: Any) -> FieldChange:
    # one secret side makes both secret: the old value of a rotated password is as secret as the new one
    if isinstance(before, Secret) and after is not None and not isinstance(after, Secret):
        after = Secret(after)
    if isinstance(after, Secret) and before is not None and not isinstance(before, Secret):
        before = Secret(before)
    return FieldChange(path, before, after)


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, sort_keys=True))
    tmp.replace(path)
