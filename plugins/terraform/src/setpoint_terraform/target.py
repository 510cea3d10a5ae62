"""The ``terraform`` target kind: render a module, plan, review, apply exactly the saved plan.

Per reconcile the core calls ``observe`` (which runs ``plan -out`` and ``show -json``), ``diff``
(which only maps the saved plan), ``review`` (apply policy; a plan is applied whole or held), and
``apply`` (``apply PLANFILE``). See docs/targets/terraform.md for the semantics.
"""

from __future__ import annotations

import json
import shutil
import time
import zipfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

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
)
from setpoint.errors import PermanentError, RenderError
from setpoint.secrets import iter_secrets, scrub
from setpoint_terraform import planjson, snapshot
from setpoint_terraform.binary import StalePlan, Terraform, build_env, find_binary
from setpoint_terraform.heldplans import HeldPlans, TamperedPlan
from setpoint_terraform.memory import MEMORY_KEY, Memory
from setpoint_terraform.planjson import OUTPUTS_KEY, Redactor, TfPlan
from setpoint_terraform.progress import ApplyProgress
from setpoint_terraform.settings import TerraformSettings
from setpoint_terraform.snapshot import ModuleSnapshot
from setpoint_terraform.workdir import WorkDir, _private_dir

#: Diagnostics that mean the working directory needs ``init`` again (someone cleaned the cache).
_NEEDS_INIT = ("initialization required", "module not installed", "missing required provider",
               "inconsistent dependency lock file", "required plugins are not installed")
_PAST = {"move": "moved", "import": "imported", "forget": "forgot"}


@dataclass
class Observed:
    """The last plan: the mapped JSON, its saved file and the state it was made against."""

    tfplan: TfPlan
    path: Path
    plan_id: str
    digest: str
    serial: int | None
    lineage: str | None
    state_version: str | None
    at: float = field(default_factory=time.monotonic)


class TerraformTarget(TargetDriver):
    kind = "terraform"
    Settings = TerraformSettings
    whole_plan_reason = "terraform applies its saved plan whole, so its updates cannot go ahead of its destroys"

    def __init__(self, context: TargetContext) -> None:
        super().__init__(context)
        self.cfg: TerraformSettings = context.settings or TerraformSettings.model_validate({})
        cache = (context.resolve(self.cfg.plugin_cache_dir) if self.cfg.plugin_cache_dir
                 else context.state_dir.parent.parent / "terraform-plugin-cache")
        self.workdir = WorkDir(context.state_dir, cache)
        # a setpoint.json from an older version moves into setpoint's state store once
        context.memory.adopt_file(MEMORY_KEY, self.workdir.base / "setpoint.json")
        self.memory = Memory.load(context.memory)
        self.held_plans = HeldPlans(self.workdir.base / "plans")
        self._tf: Terraform | None = None
        self._version: str | None = None
        self._plans: Path | None = None
        self._counter = 0
        self._watched: list[str] = []
        self._last: Observed | None = None
        self._held: str | None = None
        self._pending: list[ResourceChange] = []
        self._held_last = False
        self._apply_error: str | None = None
        self._outputs: tuple[int | None, dict[str, Any]] | None = None
        self._texts: frozenset[str] = frozenset()

    # ------------------------------------------------------------------ the binary

    def terraform(self) -> Terraform:
        if self._tf is None:
            binary = find_binary(self.cfg.binary)
            extra = {"TF_DATA_DIR": str(self.workdir.data_dir), "TF_PLUGIN_CACHE_DIR": str(self.workdir.cache_dir)}
            if self.cfg.cli_config:
                extra["TF_CLI_CONFIG_FILE"] = str(self.context.resolve(self.cfg.cli_config))
            self._tf = Terraform(binary, build_env(self.cfg.env, extra), self.cfg.timeout)
            self._version = self._tf.version()
        return self._tf

    def _cli_config(self) -> bytes | None:
        path = self.terraform().env.get("TF_CLI_CONFIG_FILE")
        try:
            return Path(path).read_bytes() if path else None
        except OSError:
            raise PermanentError(f"terraform.cli_config {path} cannot be read") from None

    def _confirm_syntax(self, path: str, content: bytes) -> str | None:
        """Ask ``terraform fmt`` (syntax only, no state, no providers) whether a file python-hcl2
        rejected is really broken."""
        if path.endswith(".json"):
            return "invalid JSON"
        result = self.terraform().run(["fmt", "-no-color", "-"], Path.cwd(), stdin=content, timeout=60)
        return None if result.returncode == 0 else (result.stderr.strip() or "invalid")

    # ------------------------------------------------------------------ render

    def render(self, tree: SourceTree) -> Desired:
        dependency_secrets = [str(s.reveal()) for s in iter_secrets(dict(self.context.dependency_outputs()))]
        snap = snapshot.build(tree, self.spec.path, self.cfg, self._confirm_syntax, dependency_secrets)
        for warning in snap.warnings:
            self.context.logger.warning("%s", warning)
        base = self.spec.path.strip("/")
        self._watched = [d for d in snap.scan.local_modules
                         if base and d != base and not d.startswith(base + "/")]
        # Terraform decides the resource instances (count, for_each) only when it plans:
        # observe() fills desired.resources from the saved plan.
        return Desired(extra={"terraform": snap})

    def watched_paths(self, tree: SourceTree) -> list[str]:
        return list(self._watched)

    # ------------------------------------------------------------------ observe = plan

    def observe(self, desired: Desired, managed: Collection[str]) -> Live:
        snap: ModuleSnapshot | None = desired.extra.get("terraform")
        if snap is None:
            raise RenderError("the target's folder was removed from Git; remove its resources with terraform "
                              "destroy yourself (setpoint does not destroy a whole Terraform target)")
        self._held = None
        self._pending = []
        last = self._last
        if (self._held_last and last is not None and last.digest == snap.digest and last.path.exists()
                and time.monotonic() - last.at < min(self.spec.interval_seconds, 300.0)):
            # A plan is waiting for approval: re-planning every few seconds would only repeat it.
            # An approval applies the reviewed plan file, which terraform checks for staleness.
            self._fill(desired, last, snap)
            return Live(dict(last.tfplan.live), {"serial": last.serial})
        self._held_last = False
        tf = self.terraform()
        module_dir = self.workdir.materialize(snap)
        fingerprint = self.workdir.init_fingerprint(snap, self.cfg.backend_config, self._version or "",
                                                    self._cli_config())
        self.workdir.ensure_init(tf, snap, fingerprint, self.cfg.backend_config, self.cfg.workspace)
        path = self._plan_path()
        result = tf.run(self._plan_args(snap, path), module_dir, json_lines=True)
        if result.returncode == 1 and any(n in d.summary.lower() or f"{tf.name} init" in d.detail
                                          for d in result.errors() for n in _NEEDS_INIT):
            self.workdir.forget_init()
            self.workdir.ensure_init(tf, snap, fingerprint, self.cfg.backend_config, self.cfg.workspace)
            result = tf.run(self._plan_args(snap, path), module_dir, json_lines=True)
        if result.returncode not in (0, 2):
            tf.fail("plan", result)
        state = _saved_state(path)
        self._texts = snap.secret_texts
        redactor = Redactor(snap.secret_texts)
        if result.returncode == 0 and state is not None:
            tfplan = planjson.from_state(state, redactor)
        else:
            tfplan = planjson.parse(self._show(tf, module_dir, path), redactor)
        serial, lineage, version = _state_info(state)
        plan_id = tfplan.content_id[:12]
        if plan_id in self.memory.stale_ids:
            plan_id = planjson.stale_salted(tfplan.content_id, serial, lineage)[:12]
        if last is not None and last.path != path and last.path.exists():
            last.path.unlink()
        self._last = Observed(tfplan, path, plan_id, snap.digest, serial, lineage, version)
        if not tfplan.changes:
            # Git and the world agree: remember this as setpoint's own state of things.
            self._apply_error = None
            self.memory.synced_digest, self.memory.serial, self.memory.lineage = snap.digest, serial, lineage
            self.memory.stale_ids = []
            self.memory.save(self.context.memory)
            self.held_plans.clear_refusal()
        self._fill(desired, self._last, snap)
        return Live(dict(tfplan.live), {"serial": serial})

    @staticmethod
    def _show(tf: Terraform, module_dir: Path, path: Path) -> dict[str, Any]:
        shown = tf.run(["show", "-json", "-no-color", str(path)], module_dir)
        if shown.returncode != 0:
            tf.fail("show", shown)
        try:
            return json.loads(shown.stdout)  # type: ignore[no-any-return]
        except json.JSONDecodeError:
            raise PermanentError(f"{tf.name} show -json printed no JSON") from None

    def _plan_path(self) -> Path:
        if self._plans is None or not self._plans.is_dir():
            self._plans = _private_dir("setpoint-tfplans-")
        self._counter += 1
        return self._plans / f"plan-{self._counter}.tfplan"

    def _plan_args(self, snap: ModuleSnapshot, path: Path) -> list[str]:
        return ["plan", "-input=false", "-no-color", "-json", "-refresh=true", "-detailed-exitcode",
                f"-lock-timeout={self.cfg.lock_timeout:g}s", f"-parallelism={self.cfg.parallelism}",
                f"-out={path}", *self.workdir.var_file_args(snap)]

    def _fill(self, desired: Desired, observed: Observed, snap: ModuleSnapshot) -> None:
        # Every instance shares the module's digest: the core's drift attribution then says
        # "drift" exactly when the revision (module, variables, secrets) did not change.
        desired.resources = {key: Resource(key, kind, name, {"module": snap.digest}, namespace=module)
                             for key, (kind, name, module) in observed.tfplan.desired_keys.items()}

    # ------------------------------------------------------------------ diff

    def diff(self, desired: Desired, live: Live) -> Plan:
        observed = self._last
        if observed is None:
            raise PermanentError("diff without a plan")
        unchanged = self.memory.synced_digest == observed.digest
        moved = (self.memory.serial is not None and observed.serial is not None
                 and (observed.serial, observed.lineage) != (self.memory.serial, self.memory.lineage))
        changes = []
        for original in observed.tfplan.changes:
            change = ResourceChange(original.key, original.kind, original.name, original.action,
                                    list(original.fields), original.namespace)
            outside = observed.tfplan.drift.get(change.key)
            if outside is not None or unchanged:
                change.drift = True
            if change.drift and outside is None and moved and change.key != OUTPUTS_KEY:
                # Nothing changed outside Terraform, yet the state no longer matches Git: someone
                # applied another configuration (a stale branch) against the same state.
                change.fields.append(FieldChange(
                    "(terraform state)",
                    f"serial {observed.serial} written outside setpoint ({observed.state_version or '?'})",
                    f"serial {self.memory.serial}, setpoint's last apply"))
            changes.append(change)
        keys = {c.key: (str(c.action), c.drift) for c in changes}
        if changes:
            # Until apply runs, assume the plan waits (held by the core, a policy, or a pause);
            # the reviewed file is kept under its id so an approval applies exactly it.
            self._pending = [c for c in changes if not c.drift]
            self._pin(observed.plan_id)
        return Plan(changes, {"terraform": {"plan_id": observed.plan_id, "keys": keys}}, fixed_id=observed.plan_id)

    # ------------------------------------------------------------------ review

    def review(self, plan: Plan, drift: bool) -> str | None:
        info = plan.extra.get("terraform") or {}
        present = {c.key for c in plan.changes}
        reasons = []
        left_out = {k: v for k, v in (info.get("keys") or {}).items() if k not in present}
        if left_out:
            parts = []
            deletes = sorted(k for k, (action, _) in left_out.items() if action == Action.DELETE)
            others = sorted(k for k in left_out if k not in deletes)
            if deletes:
                why = "prune is off" if not self.spec.prune else "setpoint did not create them"
                parts.append(f"destroys {', '.join(deletes)} ({why})")
            if others:
                parts.append(f"reverts drift on {', '.join(others)} (not reverted now by the self_heal setting)")
            reasons.append("the saved Terraform plan also " + " and ".join(parts)
                           + "; a plan is applied whole or not at all, so it waits for approval")
        if self.cfg.apply_policy == "manual":
            reasons.append("apply_policy is manual: every plan waits for approval")
        elif self.cfg.apply_policy == "no-destroy":
            destroys = sorted({c.key for c in plan.deletions}
                              | {k for k, (a, _) in left_out.items() if a in (Action.DELETE, Action.REPLACE)})
            if destroys:
                reasons.append(f"apply_policy is no-destroy and the plan destroys or replaces {', '.join(destroys)}")
        if self.memory.stale_ids and reasons:
            why = self.held_plans.last_refusal() or "the state changed after it was reviewed"
            reasons.append(f"this is a new plan: setpoint refused the previously approved plan as stale: {why}")
        if not reasons:
            return None
        self._pin(plan.id)
        self._held = "; ".join(reasons)
        self._held_last = True
        return self._held

    def _pin(self, plan_id: str) -> None:
        """Keep the reviewed plan file in the state folder: an approval of this id applies exactly
        this file, also after a restart (``setpoint approve`` then ``setpoint sync``)."""
        observed = self._last
        if observed is None or not observed.path.exists():
            return
        self.held_plans.pin(plan_id, observed.path, content_id=observed.tfplan.content_id, serial=observed.serial,
                            lineage=observed.lineage, snapshot_digest=observed.digest)

    def _reviewed_file(self, plan: Plan, observed: Observed) -> Path:
        """The saved file to apply for ``plan``: the reviewed one when it was pinned, after checking
        it is intact and still made against the current state and module (else refused as stale)."""
        try:
            pinned = self.held_plans.get(plan.id)
        except TamperedPlan as exc:
            self._refuse(plan, f"{exc}; it is not applied")
        if pinned is None:
            return observed.path
        reason = pinned.stale_reason(observed.serial, observed.lineage, observed.digest)
        if reason:
            self._refuse(plan, reason)
        return self.held_plans.plan_file(plan.id)

    def _refuse(self, plan: Plan, reason: str) -> NoReturn:
        """A reviewed plan no longer applies: nothing is applied; re-plan, and a plan that needs
        approval is held again under a new id with this reason."""
        self.held_plans.discard(plan.id)
        self.held_plans.note_refusal(reason)
        self.memory.stale_ids = [*self.memory.stale_ids[-20:], plan.id]
        self.memory.save(self.context.memory)
        self._last = None
        self.context.trigger("terraform:stale-plan")
        raise StalePlan(f"setpoint refused the saved plan {plan.id} as stale: {reason}. Nothing was applied; "
                        "setpoint re-plans, and a plan that needs approval is held again under a new id")

    # ------------------------------------------------------------------ apply

    def apply(self, plan: Plan, desired: Desired) -> ApplyResult:
        observed, snap = self._last, desired.extra.get("terraform")
        if observed is None or snap is None:
            raise PermanentError("apply without a plan")
        self._held, self._held_last, self._pending = None, False, []
        path = self._reviewed_file(plan, observed)
        tf = self.terraform()
        module_dir = self.workdir.materialize(snap)
        args = ["apply", "-input=false", "-no-color", "-json", f"-lock-timeout={self.cfg.lock_timeout:g}s",
                f"-parallelism={self.cfg.parallelism}", str(path)]
        resources = sum(1 for c in plan.changes if c.key != OUTPUTS_KEY and not planjson.state_only(c))
        progress = ApplyProgress(plan.id, resources, lambda line: self.context.logger.info("apply: %s", line),
                                 self.context.progress)
        result = tf.run(args, module_dir, json_lines=True, on_message=progress)
        self._outputs = None
        if result.returncode == 0:
            self._apply_error = None
            self.memory.synced_digest = observed.digest
            self.memory.stale_ids = []
            self.memory.serial = self.memory.lineage = None  # set from the re-observe
            self.memory.save(self.context.memory)
            self.held_plans.discard(plan.id)
            self.held_plans.clear_refusal()
            return ApplyResult([c.key for c in plan.changes], message=self._applied_message(plan))
        done = {m["hook"]["resource"]["addr"] for m in result.messages
                if m.get("type") == "apply_complete" and isinstance(m.get("hook"), dict)}
        try:
            tf.fail("apply", result)
        except StalePlan:
            self._refuse(plan, "terraform said the state changed after it was planned (another apply against "
                               "the same state?)")
        except PermanentError as exc:
            self.held_plans.discard(plan.id)  # apply changed the state: this file can never apply again
            self._apply_error = scrub(str(exc))
            self._last = None
            failed = {c.key: self._apply_error for c in plan.changes if c.key not in done}
            return ApplyResult([c.key for c in plan.changes if c.key in done], failed, self._apply_error)
        return ApplyResult()  # unreachable: fail() always raises

    def _applied_message(self, plan: Plan) -> str:
        """``applied plan ID``, naming the changes that only rewrote the state (moves, imports,
        forgets): they destroyed and created nothing."""
        counts: dict[str, int] = {}
        for change in plan.changes:
            kind = planjson.state_only(change)
            if kind:
                counts[kind] = counts.get(kind, 0) + 1
        if not counts:
            return f"applied plan {plan.id}"
        done = ", ".join(f"{_PAST[k]} {n} resource(s)" for k, n in sorted(counts.items()))
        self.context.logger.info("terraform state only: %s (nothing created or destroyed for them)", done)
        return f"applied plan {plan.id} ({done} in the state only)"

    # ------------------------------------------------------------------ health and outputs

    def health(self, desired: Desired, live: Live) -> Health:
        if self._apply_error:
            return Health(HealthStatus.DEGRADED, f"last apply failed: {self._apply_error}")
        if self._held:
            return Health(HealthStatus.PROGRESSING, f"plan held for approval: {self._held}")
        if self._pending:
            # held by the core (deletion budget) or paused: progressing, but no quick re-plans
            self._held_last = True
            return Health(HealthStatus.PROGRESSING, f"{len(self._pending)} change(s) not applied yet")
        observed = self._last
        pending = [c for c in observed.tfplan.changes] if observed else []
        drifted = [c.key for c in pending if c.key in observed.tfplan.drift or
                   self.memory.synced_digest == observed.digest] if observed else []
        if drifted:
            return Health(HealthStatus.DEGRADED, f"drift not reverted: {', '.join(sorted(drifted)[:10])}")
        missing = [k for k in desired.resources if k not in live.resources and k != OUTPUTS_KEY]
        if missing:
            return Health(HealthStatus.MISSING, f"{len(missing)} resource(s) not created yet")
        return Health(HealthStatus.HEALTHY)

    def outputs(self) -> Mapping[str, Any]:
        observed = self._last
        serial = observed.serial if observed else None
        if self._outputs is not None and self._outputs[0] == serial:
            return dict(self._outputs[1])
        if observed is not None and not observed.tfplan.changes:
            # a plan with no changes was made against exactly the state's outputs
            self._outputs = (serial, dict(observed.tfplan.outputs))
            return dict(observed.tfplan.outputs)
        if self.workdir._module_dir is None:
            return {}
        tf = self.terraform()
        result = tf.run(["output", "-json", "-no-color"], self.workdir._module_dir)
        if result.returncode != 0:
            tf.fail("output", result)
        try:
            raw = json.loads(result.stdout or "{}")
        except json.JSONDecodeError:
            raw = {}
        redactor = Redactor(self._texts)
        values = {name: redactor.wrap(out.get("value"), bool(out.get("sensitive"))) for name, out in raw.items()}
        self._outputs = (serial, values)
        return dict(values)

    def close(self) -> None:
        self.workdir.close()
        if self._plans is not None:
            shutil.rmtree(self._plans, ignore_errors=True)
            self._plans = None


def _saved_state(plan_file: Path) -> dict[str, Any] | None:
    """The (refreshed) state a saved plan was made against, from inside the plan file."""
    try:
        with zipfile.ZipFile(plan_file) as archive:
            state = json.loads(archive.read("tfstate"))
        return state if isinstance(state, dict) else None
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


def _state_info(state: dict[str, Any] | None) -> tuple[int | None, str | None, str | None]:
    """Serial, lineage and writer version of a state."""
    if not state:
        return None, None, None
    try:
        serial = int(state["serial"])
    except (KeyError, TypeError, ValueError):
        serial = None
    return serial, state.get("lineage") or None, state.get("terraform_version")
