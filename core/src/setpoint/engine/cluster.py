"""``setpoint run`` on a PostgreSQL state joins the cluster of replicas: it reconciles the targets whose
lease it holds (setpoint.state.replicas) and wakes a target as soon as its lease moves here."""

from __future__ import annotations

from setpoint.engine.scheduler import Scheduler
from setpoint.state.replicas import Replicas


def join_cluster(scheduler: Scheduler) -> Replicas | None:
    """Start this replica's heartbeat and leases (None on SQLite: one process owns every target)."""
    engine = scheduler.engine
    if engine.store.backend != "postgresql":
        return None
    replicas = Replicas(engine.store, {t.name: list(t.depends_on) for t in engine.config.targets
                                       if t.name in engine.runners},
                        ttl=engine.config.replicas.lease_ttl,
                        on_claimed=lambda name: scheduler.wake_here(name, "lease claimed"),
                        busy=scheduler.executing,
                        on_notify=lambda kind, name: _notified(scheduler, kind, name))
    engine.leases = replicas
    replicas.start()
    return replicas


def _notified(scheduler: Scheduler, kind: str, name: str) -> None:
    if kind == "target":  # a wake-up request was committed (CLI sync/approve/resume, another replica's API)
        if scheduler.engine.may_run(name):
            scheduler.take_wakeups()
    else:  # a webhook reached another replica: poll the source here too
        scheduler.wake_source_here(name, "webhook")
