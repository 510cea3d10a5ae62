"""Health: the built-in checks on controllers' status reports, against the real API server where
the control plane can produce the state (no nodes: pods never run), and the plugin hook."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import Kube, configmap, deployment, k8s_config, k8s_target, manifests, service

from setpoint import hookimpl
from setpoint.api import Health, HealthStatus, Resource, SyncStatus
from setpoint.testing import GitRepo, make_engine, wait_for
from setpoint_kubernetes import health

H = HealthStatus


def obj(status: dict[str, Any], generation: int = 1, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"generation": generation}, "spec": spec, "status": status}


@pytest.mark.parametrize("check, o, expected", [
    (health.deployment, obj({}), H.PROGRESSING),  # not observed yet
    (health.deployment, obj({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1},
                            replicas=2), H.PROGRESSING),
    (health.deployment, obj({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2},
                            replicas=2), H.HEALTHY),
    (health.deployment, obj({"observedGeneration": 1, "conditions": [
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}, replicas=2), H.DEGRADED),
    (health.statefulset, obj({"observedGeneration": 1, "availableReplicas": 3, "updatedReplicas": 3,
                              "currentRevision": "a", "updateRevision": "a"}, replicas=3), H.HEALTHY),
    (health.statefulset, obj({"observedGeneration": 1, "availableReplicas": 1}, replicas=3), H.PROGRESSING),
    (health.daemonset, obj({"observedGeneration": 1, "desiredNumberScheduled": 2, "updatedNumberScheduled": 2,
                            "numberAvailable": 2}), H.HEALTHY),
    (health.daemonset, obj({"observedGeneration": 1, "desiredNumberScheduled": 2, "updatedNumberScheduled": 1}),
     H.PROGRESSING),
    (health.replicaset, obj({"observedGeneration": 1, "availableReplicas": 1}, replicas=1), H.HEALTHY),
    (health.pod, obj({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}), H.HEALTHY),
    (health.pod, obj({"phase": "Pending", "containerStatuses": [
        {"name": "app", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}), H.DEGRADED),
    (health.pod, obj({"phase": "Failed"}), H.DEGRADED),
    (health.job, obj({"conditions": [{"type": "Complete", "status": "True"}]}), H.HEALTHY),
    (health.job, obj({"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}),
     H.DEGRADED),
    (health.pvc, obj({"phase": "Bound"}), H.HEALTHY),
    (health.pvc, obj({"phase": "Lost"}), H.DEGRADED),
    (health.ingress, obj({"loadBalancer": {"ingress": [{"hostname": "lb.example"}]}}), H.HEALTHY),
    (health.crd, obj({"conditions": [{"type": "NamesAccepted", "status": "False"}]}), H.DEGRADED),
    (health.namespace, obj({"phase": "Terminating"}), H.PROGRESSING),
])
def test_builtin_checks(check: Any, o: dict[str, Any], expected: HealthStatus) -> None:
    assert check(o)[0] == expected


@pytest.mark.parametrize("status, expected", [
    ({}, None),
    ({"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]}, H.HEALTHY),
    ({"observedGeneration": 0, "conditions": [{"type": "Ready", "status": "True"}]}, H.PROGRESSING),
    ({"conditions": [{"type": "Ready", "status": "False", "reason": "Pending"}]}, H.PROGRESSING),
    ({"conditions": [{"type": "Stalled", "status": "True"}]}, H.DEGRADED),
    ({"conditions": [{"type": "Reconciling", "status": "True"}]}, H.PROGRESSING),
])
def test_kstatus_conditions(status: dict[str, Any], expected: HealthStatus | None) -> None:
    result = health.kstatus(obj(status))
    assert (result[0] if result else None) == expected


@pytest.mark.kubernetes
def test_health_against_the_control_plane(kube: Kube, git_repo: GitRepo, engine_for) -> None:  # type: ignore[no-untyped-def]
    ns = kube.namespace
    lb = service("lb")
    lb["spec"]["type"] = "LoadBalancer"
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
           "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
    git_repo.commit({"app/a.yaml": manifests(deployment("idle", replicas=0), configmap("c", {"a": "1"}), lb, pvc)})
    engine = engine_for(git_repo, [k8s_target(ns, kube.kubeconfig, ns)])
    assert engine.reconcile(ns).sync == SyncStatus.SYNCED
    driver = engine.runners[ns].driver

    def statuses() -> dict[str, HealthStatus]:
        desired = engine.runners[ns].render_cache.desired
        return dict(driver.health(desired, driver.observe(desired, [])).resources)

    # the deployment controller observes the Deployment with zero replicas: Healthy; no provisioner, no LB
    wait_for(lambda: statuses()[f"Deployment.apps/{ns}/idle"] == H.HEALTHY, 60, step=0.2)  # the controller may be busy on a loaded machine
    current = statuses()
    assert current[f"Service/{ns}/lb"] == H.PROGRESSING
    assert current[f"PersistentVolumeClaim/{ns}/data"] == H.PROGRESSING
    assert current[f"ConfigMap/{ns}/c"] == H.HEALTHY
    # a cloud controller would report the address through the status subresource
    kube.kubectl("patch", "service", "lb", "--subresource=status", "--type=merge",
                 "-p", json.dumps({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}}))
    wait_for(lambda: statuses()[f"Service/{ns}/lb"] == H.HEALTHY, 5)


class GadgetVerdict:
    """A health-check plugin with an opinion on one custom kind."""

    __name__ = "gadget-verdict"

    @hookimpl
    def setpoint_check_health(self, target: Any, resource: Resource) -> Health | None:
        if resource.kind == "Gadget":
            return Health(H.DEGRADED, "gadget is broken")
        return None


@pytest.mark.kubernetes
def test_check_health_hook_for_kinds_without_a_builtin_check(kube: Kube, git_repo: GitRepo, tmp_path: Path) -> None:
    ns = kube.namespace
    group = f"t{uuid.uuid4().hex[:8]}.example.com"
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": f"gadgets.{group}"},
           "spec": {"group": group, "scope": "Namespaced", "names": {"plural": "gadgets", "kind": "Gadget"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                        "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}
    gadget = {"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "judged"}}
    git_repo.commit({"app/a.yaml": manifests(crd, gadget, configmap("judged", {"a": "1"}))})

    engine = make_engine(k8s_config(tmp_path, git_repo, [k8s_target(ns, kube.kubeconfig, ns)]), GadgetVerdict(),
                         load_entrypoints=True)
    try:
        out = engine.reconcile(ns)
        assert out.sync == SyncStatus.SYNCED and out.health == H.DEGRADED
        assert "gadget is broken" in engine.store.status(ns)["health_message"]
    finally:
        engine.close()


def certificate_crd(group: str) -> dict[str, Any]:
    """Shaped like cert-manager's Certificate: a status subresource whose schema has conditions."""
    condition = {"type": "object", "properties": {"type": {"type": "string"}, "status": {"type": "string"},
                                                  "reason": {"type": "string"}, "message": {"type": "string"}}}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"certificates.{group}"},
            "spec": {"group": group, "scope": "Namespaced",
                     "names": {"plural": "certificates", "singular": "certificate", "kind": "Certificate"},
                     "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                                   "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                       "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                                       "status": {"type": "object", "properties": {
                                           "conditions": {"type": "array", "items": condition}}}}}}}]}}


@pytest.mark.kubernetes
def test_custom_resource_without_its_controller_is_not_healthy_and_status_says_why(  # type: ignore[no-untyped-def]
        kube: Kube, git_repo: GitRepo, tmp_path: Path, engine_for) -> None:
    ns = kube.namespace
    group = f"c{uuid.uuid4().hex[:8]}.example.com"
    cert = {"apiVersion": f"{group}/v1", "kind": "Certificate", "metadata": {"name": "web-tls"},
            "spec": {"secretName": "web-tls", "dnsNames": ["web.example.com"]}}
    git_repo.commit({"app/a.yaml": manifests(certificate_crd(group), cert, configmap("c", {"a": "1"}))})
    engine = engine_for(git_repo, [k8s_target(ns, kube.kubeconfig, ns)])
    out = engine.reconcile(ns)
    assert (out.sync, out.health) == (SyncStatus.SYNCED, H.PROGRESSING), "no controller has reported on it"
    key = f"Certificate.{group}/{ns}/web-tls"
    config = str(tmp_path / "setpoint.yaml")
    rows = json.loads(subprocess.run([sys.executable, "-m", "setpoint.cli", "-c", config, "status", "-o", "json"],
                                     capture_output=True, text=True, check=True).stdout)
    row = next(r for r in rows if r["target"] == ns)
    assert row["health"] == "Progressing" and key in row["health_message"] and "controller" in row["health_message"]
    table = subprocess.run([sys.executable, "-m", "setpoint.cli", "-c", config, "status"], capture_output=True,
                           text=True, check=True, env={**os.environ, "COLUMNS": "400"}).stdout
    assert key in table and "Progressing" in table

    # its controller reports Ready=False, then Ready=True through the status subresource
    def report(status: str, reason: str, message: str) -> None:
        kube.kubectl("patch", f"certificate.{group}", "web-tls", "--subresource=status", "--type=merge", "-p",
                     json.dumps({"status": {"conditions": [{"type": "Ready", "status": status, "reason": reason,
                                                            "message": message}]}}))

    report("False", "Failed", "issuer not found")
    wait_for(lambda: engine.reconcile(ns).health == H.DEGRADED, 10, step=0.2)
    assert "issuer not found" in engine.store.status(ns)["health_message"]
    report("True", "Ready", "certificate is up to date")
    wait_for(lambda: engine.reconcile(ns).health == H.HEALTHY, 10, step=0.2)
