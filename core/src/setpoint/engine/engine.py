"""The engine: configured sources, targets and decryptors, and the operations on them.

The CLI and the daemon's scheduler both drive the engine; it owns no threads itself. Operator
actions (pause, resume, approve) go through here so they are audited the same way from the CLI,
the status API and tests.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any, Protocol

from setpoint.api import HealthStatus, Outcome, SharedScope, SyncStatus, TargetInfo
from setpoint.config import Config, validate_block
from setpoint.decryption import build_decryptors
from setpoint.engine.outputs import has_stored_secrets
from setpoint.engine.reconcile import Reconciler
from setpoint.engine.run import RunResult
from setpoint.engine.runner import TargetRunner
from setpoint.errors import ConfigError, SetpointError, SourceError
from setpoint.plugins import Registry, get_plugin_manager
from setpoint.secrets import safe_error, scrub
from setpoint.source.git import GitSource, PollResult
from setpoint.state import AuditAction, HeldPlan, Pause, StateStore, TargetStatus
from setpoint.state.memory import StoredMemory
from setpoint.state.replicas import Borrower, OwnedElsewhere

log = logging.getLogger("setpoint.engine")

#: How long a one-shot command waits for another process that is reconciling the same target.
LOCK_TIMEOUT = 600.0
#: Exported trees removed per :meth:`Engine.prune_trees` call.
PRUNE_BATCH = 50


class TargetLeases(Protocol):
    def owns(self, target: str) -> bool: ...
    def owned(self) -> set[str]: ...
    def release_if_moved(self, target: str) -> None: ...


class Engine:
    def __init__(self, config: Config, registry: Registry | None = None, store: StateStore | None = None) -> None:
        self.config = config
        self.registry = registry or get_plugin_manager(needed_kinds={t.kind for t in config.targets})
        self.state_dir = config.state_dir
        self.store = store or StateStore(config.state_location)
        self.sources = {name: GitSource(name, sc, self.state_dir / "cache", config.base_dir)
                        for name, sc in config.sources.items()}
        self.outputs: dict[str, dict[str, Any]] = {}
        #: With several replicas (setpoint.state.replicas): which targets this process owns now.
        self.leases: TargetLeases | None = None
        self._borrowed: Borrower | None = None
        # concurrent one-shot reconciles share one borrower: a second one would take the store's fence
        self._borrowed_lock = threading.Lock()
        self._wake: Callable[[str, str], None] | None = None
        #: ``setpoint run``'s SIGHUP reload outcomes, shared by each engine it starts (read by the metrics)
        self.reloads: Any = None
        self._dependants: dict[str, list[str]] | None = None
        self.decryptors = self._create_decryptors()
        #: What the drivers share (context.shared), closed by :meth:`close`: nothing outlives the engine.
        self.shared = SharedScope()
        self._instance: str | None = None
        self.runners: dict[str, TargetRunner] = {}
        enabled = [target for target in config.targets if target.enabled]
        #: every target's stored memory, read in one query (one per target adds up at thousands)
        self._memories = self.store.memories(t.name for t in enabled)
        for target in enabled:
            self.runners[target.name] = self._create_runner(target)
        self._memories = {}

    # ------------------------------------------------------------------ construction

    def _create_decryptors(self, overrides: dict[str, dict[str, Any]] | None = None,
                           loc: tuple[Any, ...] = ("secrets",)) -> list[Any]:
        """One instance of every registered decryptor, with the ``secrets:`` settings (and a
        target's overrides merged over them)."""
        decryptors, problems = build_decryptors(self.registry, self.config, overrides, loc)
        if problems:
            raise ConfigError("\n".join(str(p) for p in problems))
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
                raise ConfigError("; ".join(f"{p.path}: {p.message}" for p in problems))
            runner.create_driver(cls, settings, self.state_dir, lambda reason, n=target.name: self.trigger(n, reason),
                                 lambda t=target: self.dependency_outputs(t),
                                 lambda resource, info=runner.info: self.registry.hook.setpoint_check_health(
                                     target=info, resource=resource),
                                 StoredMemory(self.store, target.name, self._memories.get(target.name)),
                                 lambda message, r=runner: self._report_progress(r, message),
                                 shared=self.shared, instance=self.instance_id)
        except Exception as exc:  # noqa: BLE001 - one bad target never stops the others
            runner.driver_error = safe_error(exc)
            log.error("target %s cannot run: %s", target.name, runner.driver_error)
        return runner

    @property
    def instance_id(self) -> str:
        """This installation's id, kept by the state store (one read per engine)."""
        if self._instance is None:
            self._instance = self.store.instance_id()
        return self._instance

    def _report_progress(self, runner: TargetRunner, message: str) -> None:
        """A driver's progress during a long step, as the target's status message while it runs
        (``setpoint status`` from another process sees it); the reconcile's end replaces it."""
        current = self.store.status(runner.name) or TargetStatus(runner.name, runner.target.kind)
        self.store.save_status(dataclasses.replace(current, message=scrub(message)))
        runner.saved_status = None  # the final status of this reconcile must be written

    def close(self) -> None:
        for source in self.sources.values():
            if source.verifier is not None:
                source.verifier.close()  # its private keyring
        for runner in self.runners.values():
            if runner.driver is not None:
                try:
                    runner.driver.close()
                    runner.memory.flush()  # what a driver remembered outside a reconcile
                except Exception:  # noqa: BLE001
                    log.exception("closing target %s failed", runner.name)
        self.shared.close()  # after the drivers: what they shared (watch threads) stops with the engine
        if self._borrowed is not None:
            self._borrowed.stop()
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
            self.emit("source_fetched", None, {"source": source_name, "head": result.head,
                                               "seconds": time.monotonic() - started})
            if result.forced:
                self.store.audit(AuditAction.FORCE_PUSH, trigger="poll", revision=source.revision(result.head), details={
                    "source": source_name, "previous_head": result.previous, "new_head": result.head,
                    "note": "the branch was rewritten: the previous head is not an ancestor of the new one"})
                log.warning("source %s: branch was force-pushed (%s -> %s)", source_name,
                            (result.previous or "")[:12], result.head[:12])
        return result

    def current_head(self, source_name: str, *, poll: bool = True) -> str:
        """The head to reconcile to: polled now if ``poll`` (or never polled yet), else the last poll's.
        A failed poll falls back to the last good head, never to nothing."""
        source = self.sources[source_name]
        if poll or source.head is None:
            try:
                self.poll(source_name)
            except SourceError:
                fallback = source.last_good_head()
                if fallback is None:
                    raise
                log.warning("%s; using the last good revision %s", source.last_error, fallback[:12])
                return fallback
        assert source.head is not None
        return source.head

    def source_error(self, source_name: str) -> str | None:
        return self.sources[source_name].last_error

    def prune_trees(self, source_name: str) -> int | None:
        """Remove the exported per-commit trees of ``source_name`` that no target needs (see
        :meth:`needed_revisions`), at most :data:`PRUNE_BATCH` per call. Runs only while no target of
        the source is reconciling (in this or another process: it takes every target's run lock
        without waiting); returns how many it removed, or None when a target was busy."""
        runners = [r for r in self.runners.values() if r.target.source == source_name]
        keep = self.needed_revisions(source_name)
        source = self.sources[source_name]
        try:
            with ExitStack() as locks:
                for runner in runners:
                    locks.enter_context(runner.exclusive(self.state_dir / "locks", 0.0))
                # a batch at a time: the targets' locks are held meanwhile, and a reconcile waiting
                # for one gives up after a few seconds
                present = set(source.exported_trees())
                victims = sorted(present - keep)[:PRUNE_BATCH]
                return source.prune_trees(present - set(victims))
        except SetpointError:
            return None  # a target is reconciling (and may be reading a tree): try again later

    def needed_revisions(self, source_name: str) -> set[str]:
        """The revisions of ``source_name`` whose trees are kept: each target's last resolved and last
        applied revision, those of pending or approved held plans, and the renders cached in memory."""
        names = {t.name for t in self.config.targets if t.source == source_name}
        keep: set[str] = set()
        for name, status in self.store.all_status().items():
            if name in names:
                keep.update(filter(None, (status.revision, status.applied_revision)))
        keep.update(h.revision for h in self.store.held_plans(None) if h.target in names)
        keep.update(r.render_cache.revision for n, r in self.runners.items() if n in names and r.render_cache)
        keep.discard("")
        return keep

    # ------------------------------------------------------------------ reconcile

    def _borrower(self) -> Borrower:
        with self._borrowed_lock:
            if self._borrowed is None:
                self._borrowed = Borrower(self.store, self.config.replicas.lease_ttl)
            return self._borrowed

    def may_run(self, name: str) -> bool:
        """False for a target another replica owns (it reconciles it; this one leaves it alone)."""
        return self.leases is None or self.leases.owns(name)

    def reconcile(self, name: str, trigger: str = "manual", dry_run: bool = False,
                  lock_timeout: float = LOCK_TIMEOUT, *, poll: bool = True) -> Outcome:
        """Reconcile one target once; see :meth:`run_target` for the whole decision."""
        return self.run_target(name, trigger, dry_run, lock_timeout, poll=poll).outcome

    def run_target(self, name: str, trigger: str = "manual", dry_run: bool = False,
                   lock_timeout: float = LOCK_TIMEOUT, *, poll: bool = True, pinned: str | None = None) -> RunResult:
        """Reconcile one target once, under its run lock. ``poll``: ask Git for the head first
        (one-shot commands); the daemon passes False because its pollers keep the head fresh.
        ``pinned``: a dry run at that commit instead of the head (``setpoint preview``)."""
        runner = self.runner(name)
        with ExitStack() as held:
            if not dry_run and self.leases is None and self.store.backend == "postgresql":
                try:
                    held.enter_context(self._borrower().hold(name, trigger))  # one-shot: apply under a lease too
                except OwnedElsewhere:  # its owner reconciles it, after polling Git like this command would
                    self.store.notify_source(runner.target.source, trigger)
                    raise
            held.enter_context(runner.exclusive(self.state_dir / "locks", lock_timeout))
            result = Reconciler(self, runner).run(trigger, dry_run, poll=poll, pinned=pinned)
        if pinned is None:  # a preview is not this target's last run
            runner.last_result = result
        if not dry_run:
            try:
                self.registry.hook.setpoint_reconcile_finished(outcome=result.outcome)
            except Exception:  # noqa: BLE001 - observers never break the loop
                log.exception("a setpoint_reconcile_finished hook failed")
        return result

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
        order = self.ordered(wanted)
        with ExitStack() as held:
            if not dry_run and self.leases is None and self.store.backend == "postgresql":
                owned = held.enter_context(self._borrower().hold_many(order))  # one lease statement
                # this process owns them now: their rows in a few queries, not a round trip per read
                # (not on SQLite: its reads are local calls, and the rows would only take memory)
                held.enter_context(self.store.prefetch(owned))
            outcomes = self._reconcile_all(order, lambda name: self._reconcile_in_pass(name, triggers[name], dry_run),
                                           one_by_one=self._waits_for_nothing(order))
        return [outcomes[name] for name in order]

    def _waits_for_nothing(self, order: list[str]) -> bool:
        """A pass expected to wait for nothing: every target is of a kind that only touches local files
        (``TargetDriver.local_work``) and is already Synced at its source's current head, so it should
        find nothing to apply. Threads would only contend for the interpreter lock there (a no-op
        pass over 3,000 ``files`` targets on SQLite: 2.4 s in 8 threads, 1.2 s in one; over 1,000 on
        PostgreSQL, whose few reads per target are sub-millisecond round trips: 4.2-5.2 s in 8
        threads, 2.9-3.5 s in one). A pass that applies waits on fsyncs and commits, which threads
        overlap (3,000 ``files`` targets' first pass: 14 s in 8 threads, 22 s in one)."""
        if not all(self._local_work(name) for name in order):
            return False
        for name in order:
            status = self.store.status(name)
            head = self.sources[self.runners[name].target.source].head
            if status is None or status.sync != SyncStatus.SYNCED or status.last_error or status.applied_head != head:
                return False
        return True

    def _reconcile_in_pass(self, name: str, trigger: str, dry_run: bool) -> Outcome:
        try:
            return self.reconcile(name, trigger, dry_run, poll=False)
        finally:
            self.store.release_prefetched(name)

    def _reconcile_all(self, order: list[str], run: Callable[[str], Outcome], one_by_one: bool = False
                       ) -> dict[str, Outcome]:
        """Run ``run`` for every name of ``order`` (dependency order), up to ``defaults.concurrency``
        at a time: most of a reconcile is waiting on an API or a disk, so a pass over many targets is
        as slow as its sum when run one by one. A name starts only after every dependency of it in
        ``order`` has finished (whatever its result: it then sees for itself whether to wait). An
        exception of one target does not stop the others; the first is raised once all finished.
        ``one_by_one``: the pass waits for nothing (:meth:`_waits_for_nothing`), run it in this thread."""
        position = {name: i for i, name in enumerate(order)}
        blocking = {n: sum(1 for d in self.config.target(n).depends_on if d in position) for n in order}
        after: dict[str, list[str]] = {}
        for name in order:
            for dep in self.config.target(name).depends_on:
                if dep in position:
                    after.setdefault(dep, []).append(name)
        workers = 1 if one_by_one else min(self.config.defaults.concurrency, len(order))
        outcomes: dict[str, Outcome] = {}
        errors: list[BaseException] = []
        if workers <= 1:
            for name in order:  # dependency order: every dependency has finished already
                try:
                    outcomes[name] = run(name)
                except Exception as exc:  # noqa: BLE001 - the others still run
                    errors.append(exc)
        else:
            _run_concurrently(order, run, workers, blocking, after, outcomes, errors)
        if errors:
            raise errors[0]
        return outcomes

    def _local_work(self, name: str) -> bool:
        """The target's kind only works on local files (``TargetDriver.local_work``); a target without
        a driver fails at once, so it waits for nothing either."""
        driver = self.runners[name].driver
        return driver is None or type(driver).local_work

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
        seen: set[str] = set()  # `done` as a set: a membership test per visit must not scan the list

        def visit(name: str) -> None:
            if name in seen:
                return
            for dep in self.config.target(name).depends_on:
                if dep in wanted:
                    visit(dep)
            seen.add(name)
            done.append(name)

        position = self.config.target_index()
        for name in sorted(wanted, key=lambda n: position[n][0]):
            visit(name)
        return done

    def unmet_dependencies(self, runner: TargetRunner, head: str) -> dict[str, str]:
        """The dependencies ``runner`` must wait for, each with why."""
        waiting = {}
        for dep in runner.target.depends_on:
            status = self.store.status(dep)
            same_source = self.config.target(dep).source == runner.target.source
            ok = (status is not None and status.sync == SyncStatus.SYNCED and status.health == HealthStatus.HEALTHY
                  and not status.last_error and (not same_source or status.applied_head == head))
            if not ok:
                waiting[dep] = f"not yet Synced and Healthy at {head[:12]}"
            elif has_stored_secrets(self.outputs.get(dep) or self.store.outputs(dep) or {}):
                # Sensitive outputs are stored only as fingerprints: their values exist once the
                # dependency has been reconciled by this process (e.g. just after a daemon start).
                waiting[dep] = "its sensitive outputs are available once this process has reconciled it"
        return waiting

    def dependants(self, name: str) -> list[str]:
        if self._dependants is None:  # built once: the scheduler asks after every run
            self._dependants = {}
            for t in self.config.targets:
                for dep in t.depends_on:
                    self._dependants.setdefault(dep, []).append(t.name)
        return [n for n in self._dependants.get(name, ()) if n in self.runners]

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


def _run_concurrently(order: list[str], run: Callable[[str], Outcome], workers: int, blocking: dict[str, int],
                      after: dict[str, list[str]], outcomes: dict[str, Outcome], errors: list[BaseException]) -> None:
    """:meth:`Engine._reconcile_all` with ``workers`` threads: a name is submitted when its last
    blocking dependency finished; results and exceptions go to ``outcomes`` and ``errors``."""
    finished: queue.SimpleQueue[tuple[str, Future[Outcome]]] = queue.SimpleQueue()
    futures: list[Future[Outcome]] = []
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="setpoint-sync") as pool:

        def start(name: str) -> None:
            def done(future: Future[Outcome]) -> None:
                finished.put((name, future))

            future = pool.submit(run, name)
            future.add_done_callback(done)
            futures.append(future)

        try:
            for name in order:
                if not blocking[name]:
                    start(name)
            for _ in order:
                name, future = finished.get()
                try:
                    outcomes[name] = future.result()
                except Exception as exc:  # noqa: BLE001 - the others still run
                    errors.append(exc)
                for dependant in after.get(name, ()):
                    blocking[dependant] -= 1
                    if not blocking[dependant]:
                        start(dependant)
        except BaseException:  # Ctrl-C: what has not started yet never starts
            for future in futures:
                future.cancel()
            raise
