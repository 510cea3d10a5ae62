"""The engine: configured sources, targets and decryptors, and the operations on them.

The CLI and the daemon's scheduler both drive the engine; it owns no threads itself. Operator
actions (pause, resume, approve) go through here so they are audited the same way from the CLI,
the status API and tests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from setpoint.api import HealthStatus, Outcome, SyncStatus, TargetInfo
from setpoint.config import Config, config_line_index, validate_block
from setpoint.engine.outputs import has_stored_secrets
from setpoint.engine.reconcile import Reconciler
from setpoint.engine.runner import TargetRunner
from setpoint.errors import ConfigError, SetpointError, SourceError
from setpoint.plugins import Registry, get_plugin_manager
from setpoint.secrets import safe_error, scrub
from setpoint.source.git import GitSource, PollResult
from setpoint.state import HeldPlan, Pause, StateStore

log = logging.getLogger("setpoint.engine")

#: How long a one-shot command waits for another process that is reconciling the same target.
LOCK_TIMEOUT = 600.0


class Engine:
    def __init__(self, config: Config, registry: Registry | None = None, store: StateStore | None = None,
                 *, poll_on_demand: bool = True) -> None:
        self.config = config
        self.registry = registry or get_plugin_manager()
        self.state_dir = config.state_dir
        self.store = store or StateStore(config.state_path)
        #: One-shot commands poll Git at every reconcile; the daemon's pollers do it on their own clock.
        self.poll_on_demand = poll_on_demand
        self.sources = {name: GitSource(name, sc, self.state_dir / "cache", config.base_dir)
                        for name, sc in config.sources.items()}
        self.outputs: dict[str, dict[str, Any]] = {}
        self._wake: Callable[[str, str], None] | None = None
        self.decryptors = self._create_decryptors()
        self.runners: dict[str, TargetRunner] = {}
        for target in config.targets:
            if target.enabled:
                self.runners[target.name] = self._create_runner(target)

    # ------------------------------------------------------------------ construction

    def _create_decryptors(self, overrides: dict[str, dict[str, Any]] | None = None,
                           loc: tuple[Any, ...] = ("secrets",)) -> list[Any]:
        """One instance of every registered decryptor, with the ``secrets:`` settings (and a
        target's overrides merged over them)."""
        index = config_line_index(self.config.file)
        decryptors = []
        for name, cls in sorted(self.registry.decryptors.items()):
            block = {**self.config.secrets.get(name, {}), **(overrides or {}).get(name, {})}
            settings, problems = validate_block(cls.Settings, block, str(self.config.file), index, (*loc, name))
            if problems:
                raise ConfigError("\n".join(str(p) for p in problems))
            decryptors.append(cls(settings))
        return decryptors

    def decryptors_for(self, runner: TargetRunner) -> list[Any]:
        if not runner.target.secrets:
            return self.decryptors
        if runner.decryptors is None:
            runner.decryptors = self._create_decryptors(runner.target.secrets, ("targets", runner.name, "secrets"))
        return runner.decryptors

    def _create_runner(self, target: Any) -> TargetRunner:
        runner = TargetRunner(self.config, target)
        try:
            cls = self.registry.driver_class(target.kind)
            settings, problems = validate_block(cls.Settings, target.settings_block, str(self.config.file), {},
                                                ("targets", target.name, target.kind))
            if problems:
                raise ConfigError("; ".join(p.message for p in problems))
            runner.create_driver(cls, settings, self.state_dir, lambda reason, n=target.name: self.trigger(n, reason),
                                 lambda t=target: self.dependency_outputs(t),
                                 lambda resource, info=runner.info: self.registry.hook.setpoint_check_health(
                                     target=info, resource=resource),
                                 lambda message, r=runner: self._report_progress(r, message))
        except Exception as exc:  # noqa: BLE001 - one bad target never stops the others
            runner.driver_error = safe_error(exc)
            log.error("target %s cannot run: %s", target.name, runner.driver_error)
        return runner

    def _report_progress(self, runner: TargetRunner, message: str) -> None:
        """A driver's progress during a long step, as the target's status message while it runs
        (``setpoint status`` from another process sees it); the reconcile's end replaces it."""
        data = dict(self.store.status(runner.name) or {"target": runner.name, "kind": runner.target.kind})
        data["message"] = scrub(message)
        data["progress"] = data["message"]
        self.store.save_status(runner.name, runner.target.kind, data)
        runner.saved_status = None  # the final status of this reconcile must be written

    def close(self) -> None:
        for runner in self.runners.values():
            if runner.driver is not None:
                try:
                    runner.driver.close()
                except Exception:  # noqa: BLE001
                    log.exception("closing target %s failed", runner.name)
        self.store.close()

    # ------------------------------------------------------------------ sources

    def poll(self, source_name: str) -> PollResult:
        source = self.sources[source_name]
        started = time.monotonic()
        try:
            result = source.poll()
        except SourceError as exc:
            self.emit("source_poll_failed", None, {"source": source_name, "error": safe_error(exc)})
            raise
        # every successful poll, so a dashboard can tell a quiet branch from a poller that stopped
        self.emit("source_polled", None, {"source": source_name, "moved": result.moved,
                                          "seconds": time.monotonic() - started})
        if result.moved:
            revision = source.revision(result.head)
            self.store.record_revision(source_name, revision)
            self.emit("source_fetched", None, {"source": source_name, "head": result.head,
                                               "seconds": time.monotonic() - started})
            if result.forced:
                self.store.audit("force-push", trigger="poll", revision=revision, details={
                    "source": source_name, "previous_head": result.previous, "new_head": result.head,
                    "note": "the branch was rewritten: the previous head is not an ancestor of the new one"})
                log.warning("source %s: branch was force-pushed (%s -> %s)", source_name,
                            (result.previous or "")[:12], result.head[:12])
        return result

    def current_head(self, source_name: str) -> str:
        """The head to reconcile to. A failed poll falls back to the last good head, never to nothing."""
        source = self.sources[source_name]
        if self.poll_on_demand or source.head is None:
            try:
                self.poll(source_name)
            except SourceError:
                fallback = source.head or source._stored_head()
                if fallback is None:
                    raise
                log.warning("%s; using the last good revision %s", source.last_error, fallback[:12])
                return fallback
        assert source.head is not None
        return source.head

    def source_error(self, source_name: str) -> str | None:
        return self.sources[source_name].last_error

    # ------------------------------------------------------------------ reconcile

    def reconcile(self, name: str, trigger: str = "manual", dry_run: bool = False,
                  lock_timeout: float = LOCK_TIMEOUT) -> Outcome:
        runner = self.runner(name)
        with runner.exclusive(self.state_dir / "locks", lock_timeout):
            outcome = Reconciler(self, runner).run(trigger, dry_run)
        runner.last_outcome = outcome
        if not dry_run:
            try:
                self.registry.hook.setpoint_reconcile_finished(outcome=outcome)
            except Exception:  # noqa: BLE001 - observers never break the loop
                log.exception("a setpoint_reconcile_finished hook failed")
        return outcome

    def sync(self, names: Iterable[str] | None = None, dry_run: bool = False, trigger: str = "manual") -> list[Outcome]:
        """One pass over ``names`` (default: every target), dependencies first."""
        wanted = list(names) if names else list(self.runners)
        for name in wanted:
            self.runner(name)
        # One poll per source for the whole pass, not one per target.
        for source in sorted({self.runners[n].target.source for n in wanted}):
            try:
                self.poll(source)
            except SourceError as exc:
                log.warning("%s; targets of this source use the last good revision", safe_error(exc))
        triggers = {name: trigger for name in wanted}
        if not dry_run:
            for dep, dependant in self._lagging_dependencies(wanted):
                # `sync app` deploys app: its dependencies must be at the same head first
                log.info("reconciling %s first: %s depends on it and it is not yet at the head", dep, dependant)
                triggers[dep] = f"dependency of {dependant}"
                wanted.append(dep)
        self.prime_revisions(wanted)
        polling, self.poll_on_demand = self.poll_on_demand, False
        try:
            return [self.reconcile(name, triggers[name], dry_run) for name in self.ordered(wanted)]
        finally:
            self.poll_on_demand = polling

    def _lagging_dependencies(self, names: list[str]) -> list[tuple[str, str]]:
        """(dependency, dependant) for the transitive dependencies of ``names`` that are not in
        ``names`` and not Synced and Healthy at their source's current head."""
        found: list[tuple[str, str]] = []
        queue = list(names)
        while queue:
            runner = self.runners[queue.pop(0)]
            head = self.sources[runner.target.source].head
            if head is None:
                continue
            for dep in self.unmet_dependencies(runner, head):
                if dep in self.runners and dep not in names and dep not in (d for d, _ in found):
                    found.append((dep, runner.name))
                    queue.append(dep)
        return found

    def prime_revisions(self, names: Iterable[str]) -> None:
        """Resolve the revision of many targets with one history walk per source."""
        by_source: dict[str, list[list[str]]] = {}
        for name in names:
            runner = self.runners[name]
            by_source.setdefault(runner.target.source, []).append([runner.target.path, *runner.watched_paths])
        for source_name, path_sets in by_source.items():
            source = self.sources[source_name]
            if source.head:
                try:
                    source.prime_last_changes(source.head, path_sets)
                except (OSError, SourceError):
                    log.debug("priming revisions of %s failed; resolving one by one", source_name, exc_info=True)

    def ordered(self, names: Iterable[str]) -> list[str]:
        """``names`` in dependency order (dependencies of a name come before it if also named)."""
        wanted = set(names)
        done: list[str] = []

        def visit(name: str) -> None:
            if name in done:
                return
            for dep in self.config.target(name).depends_on:
                if dep in wanted:
                    visit(dep)
            done.append(name)

        for name in sorted(wanted, key=lambda n: [t.name for t in self.config.targets].index(n)):
            visit(name)
        return done

    def unmet_dependencies(self, runner: TargetRunner, head: str) -> dict[str, str]:
        """The dependencies ``runner`` must wait for, each with why."""
        waiting = {}
        for dep in runner.target.depends_on:
            status = self.store.status(dep) or {}
            same_source = self.config.target(dep).source == runner.target.source
            ok = (status.get("sync") == SyncStatus.SYNCED.value and status.get("health") == HealthStatus.HEALTHY.value
                  and not status.get("last_error") and (not same_source or status.get("applied_head") == head))
            if not ok:
                waiting[dep] = f"not yet Synced and Healthy at {head[:12]}"
            elif has_stored_secrets(self.outputs.get(dep) or self.store.outputs(dep) or {}):
                # Sensitive outputs are stored only as fingerprints: their values exist once the
                # dependency has been reconciled by this process (e.g. just after a daemon start).
                waiting[dep] = "its sensitive outputs are available once this process has reconciled it"
        return waiting

    def dependants(self, name: str) -> list[str]:
        return [t.name for t in self.config.targets if name in t.depends_on and t.name in self.runners]

    def dependency_outputs(self, target: Any) -> dict[str, Mapping[str, Any]]:
        """Outputs of ``target``'s dependencies: from this process, else as last stored (where
        secret outputs are only fingerprints and cannot be used)."""
        result: dict[str, Mapping[str, Any]] = {}
        for dep in target.depends_on:
            if dep not in self.outputs:
                stored = self.store.outputs(dep)
                if stored is None:
                    continue
                self.outputs[dep] = stored
            result[dep] = self.outputs[dep]
        return result

    def runner(self, name: str) -> TargetRunner:
        if name not in self.runners:
            known = ", ".join(self.runners) or "none"
            raise ConfigError(f"no target named {name!r} in the configuration (targets: {known})")
        return self.runners[name]

    # ------------------------------------------------------------------ wake-ups and events

    def set_waker(self, wake: Callable[[str, str], None] | None) -> None:
        self._wake = wake

    def trigger(self, name: str, reason: str) -> None:
        """Wake a target now (live-state events, webhooks). Without a running scheduler: no-op."""
        if self._wake is not None:
            self._wake(name, reason)

    def emit(self, event: str, target: TargetInfo | None, details: dict[str, Any]) -> None:
        try:
            self.registry.hook.setpoint_event(name=event, target=target, details=details)
        except Exception:  # noqa: BLE001
            log.exception("a setpoint_event hook failed")

    # ------------------------------------------------------------------ operator actions

    def pause(self, name: str, reason: str, by: str, duration: float | None) -> Pause:
        runner = self.runner(name)
        if not reason.strip():
            raise SetpointError("a pause needs a reason (--reason), so the audit log says why")
        until = time.time() + duration if duration else None
        pause = self.store.pause(name, reason.strip(), by, until)
        self.store.audit("pause", target=name, kind=runner.target.kind, actor=by,
                         details={"reason": pause.reason, "until": until})
        self.emit("paused", runner.info, {"reason": pause.reason, "by": by, "until": until})
        self.store.request_wakeup(name, "pause")
        return pause

    def resume(self, name: str, by: str) -> Pause | None:
        runner = self.runner(name)
        pause = self.store.resume(name)
        if pause is not None:
            self.store.audit("resume", target=name, kind=runner.target.kind, actor=by,
                             details={"reason": pause.reason, "paused_by": pause.paused_by})
            self.emit("resumed", runner.info, {"by": by, "paused_by": pause.paused_by})
            self.store.request_wakeup(name, "resume")
            self.trigger(name, "resume")
        return pause

    def approve(self, name: str, plan_id: str, by: str) -> HeldPlan:
        runner = self.runner(name)
        held = self.store.decide_plan(name, plan_id, "approved", by)
        if held is None:
            pending = ", ".join(h.plan_id for h in self.store.held_plans(name, ("pending",))) or "none"
            raise SetpointError(f"target {name} has no pending plan {plan_id!r} (pending plans: {pending})")
        self.store.audit("approve", target=name, kind=runner.target.kind, actor=by,
                         details={"plan_id": plan_id, "reason_held": held.reason, "changes": held.changes})
        self.emit("approved", runner.info, {"plan_id": plan_id, "by": by})
        self.store.request_wakeup(name, "approve")
        self.trigger(name, "approve")
        return held
