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
                        on_claimed=lambda name: scheduler.wake(name, "lease claimed"),
                        busy=lambda name: name in scheduler.in_flight())
    engine.leases = replicas
    replicas.start()
    return replicas
