"""Health of a Compose project: every replica running and, where a healthcheck exists, healthy.

Healthy: all replicas up (and healthy). Progressing: a healthcheck still starting, a container just
created, replicas still coming. Degraded: unhealthy, exited, dead, paused, restarting (Docker's own
restart loop) or held back by the crash-loop guard. Missing: a service with no container at all.
"""

from __future__ import annotations

from setpoint.api import Desired, Health, HealthStatus, Live
from setpoint_docker_compose.observe import ContainerState


def service_health(replicas: int, one_shot: bool, containers: list[ContainerState],
                   crash_looping: bool) -> tuple[HealthStatus, str]:
    if replicas == 0:
        return HealthStatus.HEALTHY, ""
    if not containers:
        return HealthStatus.MISSING, "no container"
    if crash_looping:
        return HealthStatus.DEGRADED, "crash-looping: restarts paused by the restart limit"
    statuses = []
    for c in containers:
        if c.status == "restarting":
            statuses.append((HealthStatus.DEGRADED, f"{c.name} restarting (restarted {c.restart_count} times)"))
        elif c.status == "created":
            statuses.append((HealthStatus.PROGRESSING, f"{c.name} created"))
        elif c.status != "running" and not c.ok(one_shot):
            detail = f"exited ({c.exit_code})" if c.status == "exited" else c.status
            statuses.append((HealthStatus.DEGRADED, f"{c.name} {detail}"))
        elif c.health == "unhealthy":
            statuses.append((HealthStatus.DEGRADED, f"{c.name} unhealthy"))
        elif c.health == "starting":
            statuses.append((HealthStatus.PROGRESSING, f"{c.name} health check starting"))
    if len(containers) < replicas:
        statuses.append((HealthStatus.PROGRESSING, f"{len(containers)} of {replicas} replicas"))
    if not statuses:
        return HealthStatus.HEALTHY, ""
    worst = HealthStatus.worst([s for s, _ in statuses])
    return worst, "; ".join(m for s, m in statuses if s == worst)


def project_health(desired: Desired, live: Live, crash_looping: set[str]) -> Health:
    per: dict[str, HealthStatus] = {}
    messages = []
    for key, want in sorted(desired.resources.items()):
        have = live.resources.get(key)
        if want.kind != "Service":
            per[key] = HealthStatus.HEALTHY if have is not None else HealthStatus.MISSING
            continue
        containers = list(have.meta.get("containers", [])) if have is not None else []
        status, message = service_health(int(want.body["replicas"]), bool(want.meta.get("one_shot")), containers,
                                         want.name in crash_looping)
        per[key] = status
        if message:
            messages.append(f"{want.name}: {message}")
    overall = HealthStatus.worst(list(per.values()))
    return Health(overall, "; ".join(messages), per)
