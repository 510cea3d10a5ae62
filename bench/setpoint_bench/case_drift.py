"""Case 2: drift-to-repair latency under the daemon (the Scheduler, with live-state watches).

For each kind a manual change is made the way an operator would (``kubectl scale``, ``docker
stop``, an editor on a managed file, an edit of the Terraform test provider's resource outside
Terraform); the clock starts when that command returns and stops when setpoint's repair is seen
in the live system. The target's interval is 1 h for Kubernetes, Compose and files, so only the
watch can explain a fast repair; Terraform has no event source and repairs on its interval.

Anchors are published defaults, not run: Argo CD re-compares every 3 min (self-heal then
reverts), Flux re-applies every Kustomization interval (10 min in bootstrap).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from setpoint.testing import GitRepo
from setpoint_bench import composedata, k8sdata, services, tfdata
from setpoint_bench.engines import Daemon, check, engine
from setpoint_bench.harness import Ctx, NotRun, Row, Stats, wait_for

CASE = "2 Drift-to-repair"
PUBLISHED = "Argo CD 180 s / Flux 600 s interval (published)"


def _trials(ctx: Ctx) -> int:
    return ctx.reps if ctx.smoke else 20


def _measure(ctx: Ctx, change: Callable[[int], object], repaired: Callable[[], bool], timeout: float = 30,
             pause: float = 0.3) -> Stats:
    values = []
    for i in range(_trials(ctx)):
        change(i)
        values.append(wait_for(repaired, timeout))
        time.sleep(pause)  # let the repair's own events settle before the next change
    return Stats(values)


def files(ctx: Ctx) -> Row:
    base = ctx.scratch("drift-files")
    repo = GitRepo(base / "repo")
    repo.commit({"etc/app.conf": "port = 80\n", "etc/motd": "hello\n"}, "v1")
    live = base / "live"
    eng = engine(base, repo.path, [{"name": "host", "kind": "files", "path": "etc", "interval": "1h",
                                    "files": {"destination": str(live)}}], poll_interval="1h")
    with Daemon(eng):
        stats = _measure(ctx, lambda i: (live / "app.conf").write_text(f"port = {2200 + i}\n"),
                         lambda: _read(live / "app.conf") == "port = 80\n")
    return Row(CASE, "files: edit a managed file", setpoint=stats, anchor_name=PUBLISHED, style="latency",
               target="p50 <= 1 s", met=stats.median <= 1.0, note="files watch: stat every 0.25 s (watch_interval)")


def kubernetes(ctx: Ctx) -> Row:
    services.require("kubernetes")
    from kubernetes import client

    base = ctx.scratch("drift-k8s")
    ns = k8sdata.new_namespace("bench-drift")
    try:
        repo = GitRepo(base / "repo")
        repo.commit(k8sdata.files([k8sdata.deployment("web", 0), *k8sdata.objects(8, "extra")], "app"), "v1")
        eng = engine(base, repo.path, [k8sdata.target("k8s", ns, "app")], poll_interval="1h")
        apps = client.AppsV1Api(k8sdata.api())
        with Daemon(eng):
            stats = _measure(ctx, lambda i: k8sdata.kubectl("-n", ns, "scale", "deployment/web", f"--replicas={i % 5 + 1}"),
                             lambda: apps.read_namespaced_deployment("web", ns).spec.replicas == 0, step_timeout(ctx))
    finally:
        k8sdata.delete_namespaces(ns, wait=False)
    return Row(CASE, "kubernetes: kubectl scale", setpoint=stats, anchor_name=PUBLISHED, style="latency",
               target="p50 <= 1 s", met=stats.median <= 1.0, note="watch event -> reconcile -> server-side apply")


def kubernetes_progressing(ctx: Ctx) -> Row:
    """The same scale, on a target that stays Progressing (replicas 2 never become available without
    nodes, as on a real cluster mid-rollout): its status events keep reconciles coming, and the
    drift's reconcile may wait for one that is running."""
    services.require("kubernetes")
    from kubernetes import client

    base = ctx.scratch("drift-k8s-progressing")
    ns = k8sdata.new_namespace("bench-drift-prog")
    try:
        repo = GitRepo(base / "repo")
        repo.commit(k8sdata.files([k8sdata.deployment("web", 2), *k8sdata.objects(8, "extra")], "app"), "v1")
        eng = engine(base, repo.path, [k8sdata.target("k8s", ns, "app")], poll_interval="1h")
        apps = client.AppsV1Api(k8sdata.api())
        with Daemon(eng):
            stats = _measure(ctx, lambda i: apps.patch_namespaced_deployment_scale(
                                 "web", ns, {"spec": {"replicas": 3 + i % 3}}, field_manager="kubectl-scale"),
                             lambda: apps.read_namespaced_deployment("web", ns).spec.replicas == 2, step_timeout(ctx))
    finally:
        k8sdata.delete_namespaces(ns, wait=False)
    return Row(CASE, "kubernetes: scale, target Progressing", setpoint=stats, anchor_name=PUBLISHED, style="latency",
               target="p50 <= 1 s", met=stats.median <= 1.0,
               note="status events keep the target reconciling; the drift may queue behind a running reconcile")


def kubernetes_service_port(ctx: Ctx) -> Row:
    """A Service port changed by hand (as ``kubectl edit`` does: a JSON patch, an *update*): the
    repair takes the hand-made port entry over before the apply (one more request than a scale)."""
    services.require("kubernetes")
    from kubernetes import client

    base = ctx.scratch("drift-k8s-port")
    ns = k8sdata.new_namespace("bench-drift-port")
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": {"bench": "web"},
                        "ports": [{"name": "http", "port": 9898, "targetPort": "http"},
                                  {"name": "grpc", "port": 9999, "targetPort": "grpc"}]}}
    try:
        repo = GitRepo(base / "repo")
        repo.commit(k8sdata.files([k8sdata.deployment("web", 0), service, *k8sdata.objects(8, "extra")], "app"), "v1")
        eng = engine(base, repo.path, [k8sdata.target("k8s", ns, "app")], poll_interval="1h")
        core = client.CoreV1Api(k8sdata.api())

        def edit(i: int) -> None:
            core.patch_namespaced_service("web", ns, [{"op": "replace", "path": "/spec/ports/0/port", "value": 9000 + i}],
                                          field_manager="kubectl-edit")

        def repaired() -> bool:
            spec = core.read_namespaced_service("web", ns).spec
            ports = (spec.ports if spec is not None else None) or []
            return sorted(p.port for p in ports) == [9898, 9999]

        with Daemon(eng):
            stats = _measure(ctx, edit, repaired, step_timeout(ctx))
    finally:
        k8sdata.delete_namespaces(ns, wait=False)
    return Row(CASE, "kubernetes: Service port edited", setpoint=stats, anchor_name=PUBLISHED, style="latency",
               target="p50 <= 1 s", met=stats.median <= 1.0,
               note="watch event -> reconcile -> take over the hand-made port -> server-side apply")


def compose(ctx: Ctx) -> Row:
    services.require("docker")
    return _compose(ctx, "compose: docker stop", {}, None, None)


def compose_ssh(ctx: Ctx) -> Row:
    """The same on a host behind OpenSSH: setpoint's events stream and repair go over SSH."""
    services.require("docker-hosts")
    return _compose(ctx, "compose over SSH: docker stop", composedata.ssh_settings(),
                    os.environ["SETPOINT_DHOSTS_SSH_SOCK"], composedata.ssh_compose_env())


def _compose(ctx: Ctx, title: str, settings: dict[str, Any], admin: str | None, env: dict[str, str] | None) -> Row:
    base = ctx.scratch("drift-compose" + ("-ssh" if settings else ""))
    name = f"benchdrift{'ssh' if settings else ''}{int(time.time()) % 100000}"
    repo = GitRepo(base / "repo")
    repo.commit({"app/compose.yaml": composedata.project(3)}, "v1")
    docker = composedata.docker_client(admin)  # the engine itself, to stop containers behind setpoint's back
    try:
        eng = engine(base, repo.path, [composedata.target("shop", "app", name, **settings)], poll_interval="1h")
        with Daemon(eng):
            def container() -> Any:
                labels = [f"com.docker.compose.project={name}", "com.docker.compose.service=svc00"]
                found = docker.containers.list(all=True, ignore_removed=True, filters={"label": labels})
                if len(found) != 1:
                    raise RuntimeError(f"expected one container of svc00, found {len(found)}")
                return found[0]

            def stop(_: int) -> None:
                container().stop(timeout=0)  # `docker stop -t 0`: no grace, the change is immediate

            def running() -> bool:
                c = container()
                c.reload()
                return bool(c.attrs["State"]["Running"])

            stats = _measure(ctx, stop, running, step_timeout(ctx), pause=0.5)
    finally:
        composedata.down(name, env=env)
        docker.close()
    return Row(CASE, title, setpoint=stats, anchor_name=PUBLISHED, style="latency",
               target="p50 <= 1 s", met=stats.median <= 1.0, note="Docker events stream -> reconcile -> container started through the Docker API")


def terraform(ctx: Ctx) -> Row:
    services.require("terraform")
    base = ctx.scratch("drift-tf")
    world = base / "world"
    world.mkdir()
    cache = ctx.scratch("tf-plugin-cache")
    interval = 2.0 if ctx.smoke else 5.0
    repo = GitRepo(base / "repo")
    repo.commit({"infra/main.tf": tfdata.module(world, 3)}, "v1")
    eng = engine(base, repo.path, [tfdata.target("net", "infra", cache, interval=f"{interval:.0f}s")], poll_interval="1h")
    check(eng.reconcile("net"))
    # one no-op reconcile (= one plan) for the bound "interval + one plan"
    started = time.perf_counter()
    check(eng.reconcile("net"))
    plan = time.perf_counter() - started
    wanted = tfdata.sg(world, 0)

    def edit(i: int) -> None:
        (world / "sg00.json").write_text(json.dumps({**(wanted or {}), "ingress_ports": [22, 1000 + i]}))

    with Daemon(eng):
        stats = _measure(ctx, edit, lambda: tfdata.sg(world, 0) == wanted, 120)
    jitter = eng.config.defaults.jitter
    bound = interval * (1 + jitter) + 2 * plan  # plan + apply of the saved plan ≈ two terraform runs
    return Row(CASE, "terraform: out-of-band edit", setpoint=stats, anchor_name=PUBLISHED, style="latency",
               target=f"<= interval·(1+jitter) + plan + apply = {bound:.1f} s", met=stats.pct(95) <= bound,
               note=f"interval {interval:.0f} s; no event source, repaired on the interval; one plan {plan:.1f} s",
               extra={"bound_s": bound, "plan_s": plan})


def step_timeout(ctx: Ctx) -> float:
    return 60.0


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def run(ctx: Ctx) -> list[Row]:
    rows = []
    # compose_ssh runs in case compose-ssh (case_compose_ssh.py), with the other measurements over SSH
    for kind in (files, kubernetes, kubernetes_progressing, kubernetes_service_port, compose, terraform):
        try:
            rows.append(kind(ctx))
        except NotRun as exc:
            rows.append(Row(CASE, kind.__name__, status="not run", note=exc.reason, extra={"service": exc.service}))
    return rows
