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
