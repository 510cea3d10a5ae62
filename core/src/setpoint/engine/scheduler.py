"""The daemon's clock: when each target reconciles, on which thread, and what wakes it early.

A heap of due times feeds a bounded worker pool. A target is never queued twice and never runs
twice at once: a wake-up that arrives while it runs makes it run once more right after. Each
source has a poller thread (``ls-remote`` every ``poll_interval``); a moved head wakes that
source's targets. Live-state events, webhooks and other setpoint processes (through the state
store's wake-up table) wake a target at once.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from setpoint.api import HealthStatus, SyncStatus
from setpoint.engine.engine import PRUNE_BATCH, Engine
from setpoint.engine.run import RunResult
from setpoint.engine.runner import TargetRunner
from setpoint.errors import SourceError
from setpoint.secrets import safe_error

log = logging.getLogger("setpoint.scheduler")

#: How often other processes' wake-up requests (setpoint sync/approve/resume) are picked up.
WAKEUP_POLL = 0.5


class Scheduler:
    def __init__(self, engine: Engine, concurrency: int | None = None) -> None:
        self.engine = engine
        self.concurrency = concurrency or engine.config.defaults.concurrency
        self._heap: list[tuple[float, int, str]] = []
        self._due: dict[str, float] = {}
        self._reason: dict[str, str] = {}
        #: queued for a worker or reconciling
        self._running: set[str] = set()
        #: reconciling now (a worker has started it): what a replica keeps a moved lease for
        self._executing: set[str] = set()
        self._again: dict[str, str] = {}
        self._watching: set[str] = set()
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._source_wake = {name: threading.Event() for name in engine.sources}
        self._source_reason: dict[str, str] = {}
        self._threads: list[threading.Thread] = []
        self.first_pass_done = threading.Event()
        self._first_pending = set(engine.runners)
        engine.set_waker(self.wake)

    # ------------------------------------------------------------------ public

    def wake(self, name: str, reason: str) -> None:
        """Reconcile ``name`` now; with replicas, a target another replica owns is passed to it."""
        if name not in self.engine.runners:
            return
        if not self.engine.may_run(name):
            self.engine.store.request_wakeup(name, reason)  # its owner takes it (LISTEN/NOTIFY, or the next poll)
            return
        self.wake_here(name, reason)

    def wake_here(self, name: str, reason: str) -> None:
        """Reconcile ``name`` now in this process (git, wake-up requests, a lease that moved here)."""
        if name not in self.engine.runners:
            return
        with self._cond:
            if name in self._running:
                self._again.setdefault(name, reason)
            else:
                self._schedule(name, time.monotonic(), reason)
            self._cond.notify_all()

    def wake_source(self, source: str, reason: str = "webhook") -> None:
        """Poll ``source`` now (a webhook said it moved); with replicas, every replica polls it."""
        self.wake_source_here(source, reason)
        if self.engine.leases is not None:
            self.engine.store.notify_source(source, reason)

    def wake_source_here(self, source: str, reason: str) -> None:
        if source in self._source_wake:
            self._source_reason[source] = reason
            self._source_wake[source].set()

    def in_flight(self) -> list[str]:
        """Targets reconciling right now or queued for a worker."""
        with self._cond:
            return sorted(self._running)

    def executing(self, name: str) -> bool:
        """``name`` is reconciling right now (not merely queued behind the pool's workers)."""
        with self._cond:
            return name in self._executing

    def wake_all(self, reason: str) -> None:
        """Poll every source and reconcile every target now (SIGHUP): this process's targets."""
        for source in self._source_wake:
            self.wake_source_here(source, reason)
        for name in self.engine.runners:
            if self.engine.may_run(name):
                self.wake_here(name, reason)

    @property
    def running(self) -> bool:
        return not self._stop.is_set() and all(t.is_alive() for t in self._threads)

    def stop(self) -> None:
        self._stop.set()
        for event in self._source_wake.values():
            event.set()
        with self._cond:
            self._cond.notify_all()

    def join_pollers(self, timeout: float) -> None:
        """After :meth:`run` returned: wait for the source pollers to leave (a reload closes the engine next)."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def run(self) -> None:
        """Run until :meth:`stop`; in-flight reconciles finish before it returns."""
        for name in self.engine.sources:
            thread = threading.Thread(target=self._poll_loop, args=(name,), name=f"setpoint-poll-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        now = time.monotonic()
        with self._cond:
            for name in self.engine.runners:
                self._schedule(name, now, "startup")
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="setpoint-worker") as pool:
            next_wakeup_check = 0.0
            while not self._stop.is_set():
                if time.monotonic() >= next_wakeup_check:
                    self.take_wakeups()
                    next_wakeup_check = time.monotonic() + WAKEUP_POLL
                with self._cond:
                    ready = self._pop_ready()
                    if not ready:
                        timeout = WAKEUP_POLL
                        if self._heap:
                            timeout = max(0.0, min(timeout, self._heap[0][0] - time.monotonic()))
                        self._cond.wait(timeout)
                        continue
                    for name in ready:
                        self._running.add(name)
                for name in ready:
                    pool.submit(self._work, name, self._reason.pop(name, "poll"))
            log.info("stopping: waiting for running reconciles to finish")

    # ------------------------------------------------------------------ internals

    def _schedule(self, name: str, due: float, reason: str) -> None:
        current = self._due.get(name)
        if current is not None and current <= due:
            return
        self._due[name] = due
        self._reason[name] = reason
        heapq.heappush(self._heap, (due, next(self._seq), name))

    def _pop_ready(self) -> list[str]:
        now, ready = time.monotonic(), []
        while self._heap and self._heap[0][0] <= now:
            due, _, name = heapq.heappop(self._heap)
            if self._due.get(name) != due:
                continue  # superseded by an earlier wake-up
            del self._due[name]
            if name in self._running:
                self._again.setdefault(name, self._reason.get(name, "poll"))
                continue
            ready.append(name)
        return ready

    def _work(self, name: str, reason: str) -> None:
        with self._cond:
            self._executing.add(name)
        if self._stop.is_set() or not self.engine.may_run(name):
            # queued behind the pool's workers when a stop came, or owned by another replica: not started
            # (a lease claimed later wakes it again)
            with self._cond:
                self._running.discard(name)
                self._executing.discard(name)
                self._again.pop(name, None)
                self._first_pending.discard(name)
                if not self._first_pending:
                    self.first_pass_done.set()
            return
        result: RunResult | None = None
        try:
            result = self.engine.run_target(name, trigger=reason, lock_timeout=5.0, poll=False)
        except Exception as exc:  # noqa: BLE001 - the loop survives anything a target does
            log.error("target %s: %s", name, safe_error(exc))
        finally:
            self._after(name, result)

    def _next_delay(self, runner: TargetRunner, result: RunResult | None) -> float | None:
        """Seconds until the next timed run (None: none; only a wake-up runs the target again).

        After a failure: a ``TemporaryError``'s own delay, else exponential backoff; after a
        ``PermanentError``: no timed run, a new revision (the poller's wake-up) or a manual sync
        runs it again. Otherwise the interval with jitter. Never later than the run asked for
        (a grace period or a pause ending, a rollout to re-check)."""
        defaults = self.engine.config.defaults
        delay: float | None
        if result is not None and result.give_up:
            delay = None
        elif result is not None and result.retry_after is not None:
            delay = result.retry_after
        elif result is not None and result.outcome.failed:
            failures = max(1, runner.consecutive_failures)
            delay = min(defaults.backoff * 2 ** (failures - 1), defaults.max_backoff)
        else:
            delay = runner.interval * (1 + random.uniform(-defaults.jitter, defaults.jitter))
        if result is not None and result.next_run_at is not None:
            asked = max(0.0, result.next_run_at - time.time())
            delay = asked if delay is None else min(delay, asked)
        return delay

    def _after(self, name: str, result: RunResult | None) -> None:
        runner = self.engine.runners[name]
        if self.engine.leases is not None:
            # a replica joined while this ran and the target hashes to it now: hand it over at once
            # (before a wake-up that came meanwhile could start it here again)
            self.engine.leases.release_if_moved(name)
        outcome = result.outcome if result is not None else None
        if runner.driver is not None and name not in self._watching and not self._stop.is_set():
            self._watching.add(name)
            try:
                runner.driver.start_watching()
            except Exception as exc:  # noqa: BLE001
                log.warning("target %s: live-state watch could not start (%s); relying on the interval",
                            name, safe_error(exc))
        delay, now = self._next_delay(runner, result), time.monotonic()
        with self._cond:
            self._running.discard(name)
            self._executing.discard(name)
            again = self._again.pop(name, None)
            if again is not None:
                self._schedule(name, now, again)
            elif delay is not None:
                self._schedule(name, now + delay, "poll")
            self._cond.notify_all()
        if delay is None and again is None:
            log.warning("target %s: the error is permanent; waiting for a new revision or a manual sync", name)
        if outcome is not None and outcome.sync == SyncStatus.SYNCED and outcome.health == HealthStatus.HEALTHY:
            for dependant in self.engine.dependants(name):
                self.wake(dependant, f"dependency:{name}")
        self._first_pending.discard(name)
        if not self._first_pending:
            self.first_pass_done.set()

    def _poll_loop(self, source: str) -> None:
        interval = self.engine.config.sources[source].poll_interval
        wake = self._source_wake[source]
        #: New revisions were seen since exported trees were last pruned (at start: whatever an earlier run left).
        prune_pending = True
        while not self._stop.is_set():
            reason = "git"
            try:
                result = self.engine.poll(source)
                if result.moved:
                    prune_pending = True
                    reason = self._source_reason.pop(source, "git")
                    names = [n for n, r in self.engine.runners.items() if r.target.source == source]
                    self.engine.prime_revisions(names)
                    for name in names:
                        if self.engine.may_run(name):  # every replica polls; each wakes its own
                            self.wake_here(name, reason)
            except SourceError as exc:
                log.warning("%s", safe_error(exc))
            except Exception:  # noqa: BLE001
                log.exception("source %s: poll failed", source)
            if prune_pending:
                prune_pending = not self._prune_trees(source)
            wake.wait(interval)
            wake.clear()

    def _prune_trees(self, source: str) -> bool:
        """Drop the exported trees no target needs; False when it must be tried again (a target was
        busy, or there were more than one batch)."""
        try:
            removed = self.engine.prune_trees(source)
        except Exception:  # noqa: BLE001 - disk housekeeping never stops the loop
            log.exception("source %s: pruning exported trees failed", source)
            return True
        if removed:
            log.debug("source %s: removed %d exported tree(s)", source, removed)
        return removed is not None and removed < PRUNE_BATCH

    def take_wakeups(self) -> None:
        """Wake-up requests from other processes (CLI, other replicas), for the targets this one owns."""
        try:
            leases = self.engine.leases
            for name, reason in self.engine.store.take_wakeups(leases.owned() if leases is not None else None):
                if name in self.engine.runners:
                    self.wake_here(name, reason)
        except Exception:  # noqa: BLE001
            log.exception("reading wake-up requests failed")
