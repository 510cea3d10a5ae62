"""`setpoint run` with a kubernetes target: the watch turns `kubectl scale` into a repair within
about a second (the interval is an hour, and everything is Healthy, so nothing else wakes it)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Kube, configmap, deployment, k8s_target, manifests

from setpoint.testing import GitRepo, wait_for, write_config

pytestmark = pytest.mark.kubernetes


def test_kubectl_scale_is_repaired_within_about_a_second(kube: Kube, git_repo: GitRepo, tmp_path: Path) -> None:
    ns = kube.namespace
    # replicas: 0 lets the Deployment become Healthy without nodes, so no progress re-check runs
    git_repo.commit({"app/app.yaml": manifests(deployment("web", replicas=0), configmap("settings", {"a": "1"}))})
    config = write_config(tmp_path, git_repo.path, [k8s_target(ns, kube.kubeconfig, ns)], server={"enabled": False})
    log = open(tmp_path / "daemon.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "setpoint.cli", "-c", str(config), "run"], stdout=log,
                            stderr=subprocess.STDOUT, text=True)
    try:
        def status() -> str:
            return subprocess.run([sys.executable, "-m", "setpoint.cli", "-c", str(config), "status", "-o", "json"],
                                  capture_output=True, text=True).stdout

        def ready() -> bool:
            text = status()
            return '"health": "Healthy"' in text and '"sync": "Synced"' in text

        took = wait_for(ready, 60, step=0.2)
        print(f"first sync and healthy after {took:.1f}s")
        time.sleep(1.0)  # the watch starts after the first reconcile
        latencies = []
        for replicas in (3, 4, 5):
            kube.kubectl("scale", "deployment/web", f"--replicas={replicas}")
            started = time.monotonic()
            wait_for(lambda: kube.obj("apis/apps/v1/deployments", "web")["spec"]["replicas"] == 0, 10, step=0.02)
            latencies.append(time.monotonic() - started)
            time.sleep(0.5)
        kube.kubectl("delete", "configmap", "settings")
        started = time.monotonic()
        wait_for(lambda: kube.obj("api/v1/configmaps", "settings") is not None, 10, step=0.02)
        latencies.append(time.monotonic() - started)
        print("repair latencies:", [f"{x:.2f}s" for x in latencies])
        assert max(latencies) < 2.5, latencies  # about a second; generous for a shared 2-core machine
        audit = subprocess.run([sys.executable, "-m", "setpoint.cli", "-c", str(config), "audit", "--action",
                                "revert-drift", "-o", "json"], capture_output=True, text=True).stdout
        assert audit.count('"action": "revert-drift"') >= 4 and "event:k8s:" in audit
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def many_kinds(ns: str) -> list[dict]:
    """One object of each of 16 kinds: 16 watch streams on one connection pool."""
    meta = {"name": "x"}
    pod = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "registry.local/x:1"}]}}
    selector = {"matchLabels": {"app": "x"}}
    return [
        configmap("x", {"a": "1"}),
        {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "stringData": {"k": "v"}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}},
        {"apiVersion": "v1", "kind": "LimitRange", "metadata": meta,
         "spec": {"limits": [{"type": "Container", "default": {"cpu": "100m"}}]}},
        {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": meta, "spec": {"hard": {"pods": "50"}}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
         "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "x"},
         "subjects": [{"kind": "ServiceAccount", "name": "x", "namespace": ns}]},
        deployment("x", replicas=0),
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta,
         "spec": {"replicas": 0, "serviceName": "x", "selector": selector, "template": pod}},
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta,
         "spec": {"schedule": "0 3 * * *", "suspend": True,
                  "jobTemplate": {"spec": {"template": {**pod, "spec": {**pod["spec"], "restartPolicy": "Never"}}}}}},
        {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": meta,
         "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "x"},
                  "minReplicas": 1, "maxReplicas": 3}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta,
         "spec": {"maxUnavailable": 1, "selector": selector}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta,
         "spec": {"podSelector": selector, "policyTypes": ["Ingress"]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta,
         "spec": {"defaultBackend": {"service": {"name": "x", "port": {"number": 80}}}}},
        {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": f"x-{ns}"}, "value": 10},
    ]


def test_daemon_stops_without_connection_pool_warnings(kube: Kube, git_repo: GitRepo, tmp_path: Path) -> None:
    ns = kube.namespace
    git_repo.commit({"app/all.yaml": manifests(*many_kinds(ns))})
    config = write_config(tmp_path, git_repo.path, [k8s_target(ns, kube.kubeconfig, ns)], server={"enabled": False})
    log_path = tmp_path / "daemon.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "setpoint.cli", "-c", str(config), "run"], stdout=log,
                                stderr=subprocess.STDOUT, text=True)
        try:
            def synced() -> bool:
                out = subprocess.run([sys.executable, "-m", "setpoint.cli", "-c", str(config), "status", "-o", "json"],
                                     capture_output=True, text=True).stdout
                return '"sync": "Synced"' in out
            wait_for(synced, 90, step=0.5)
            time.sleep(2.0)  # every kind's watch stream is open
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    text = log_path.read_text()
    assert proc.returncode == 0, text[-2000:]
    assert "Connection pool is full" not in text, text[-3000:]
