"""Hand-made entries in keyed lists Git sets are drift and are repaired to exactly Git's list:
a Service port changed with `kubectl edit` (unnamed 80 -> 8080, named 9898 -> 9090), a container
renamed, an env var set with `kubectl set env`, a volume and its mount patched in. Entries another
*applier* adds are left alone."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest
from conftest import KUBECTL, Kube, deployment, k8s_target, manifests

from setpoint.api import SyncStatus
from setpoint.testing import GitRepo, wait_for

pytestmark = pytest.mark.kubernetes


def kubectl_edit(kube: Kube, what: str, sed: str) -> None:
    """`kubectl edit` as a person would do it, with sed as the editor."""
    env = {**os.environ, "KUBE_EDITOR": f"sed -i -e '{sed}'"}
    proc = subprocess.run([KUBECTL, "--kubeconfig", kube.kubeconfig, "-n", kube.namespace, "edit", what],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr


def svc(name: str, ports: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": ports}}



def ports_of(kube: Kube, name: str) -> list[tuple[Any, ...]]:
    live = kube.obj("api/v1/services", name)
    return sorted((p.get("name"), p["port"], p.get("targetPort")) for p in live["spec"]["ports"])


def containers_of(kube: Kube) -> dict[str, Any]:
    return kube.obj("apis/apps/v1/deployments", "web")["spec"]["template"]["spec"]


def test_service_port_edits_are_repaired(kube: Kube, git_repo: GitRepo, engine_for) -> None:  # type: ignore[no-untyped-def]
    ns = kube.namespace
    git_repo.commit({"app/svc.yaml": manifests(svc("plain", [{"port": 80, "targetPort": 8080}]),
                                               svc("named", [{"name": "http", "port": 9898, "targetPort": "http"},
                                                             {"name": "grpc", "port": 9999, "targetPort": 9999}]))})
    engine = engine_for(git_repo, [k8s_target(ns, kube.kubeconfig, ns)])
    assert engine.reconcile(ns).sync == SyncStatus.SYNCED
    driver = engine.runners[ns].driver

    kubectl_edit(kube, "service/plain", "s/port: 80$/port: 8080/")
    kubectl_edit(kube, "service/named", "s/port: 9898$/port: 9090/")
    assert ports_of(kube, "plain") == [(None, 8080, 8080)]
    assert ports_of(kube, "named") == [("grpc", 9999, 9999), ("http", 9090, "http")]
    cache = driver.cache.find("", "Service")
    wait_for(lambda: cache.snapshot()[f"Service/{ns}/named"]["spec"]["ports"][0]["port"] == 9090
             and cache.snapshot()[f"Service/{ns}/plain"]["spec"]["ports"][0]["port"] == 8080, 5)
    out = engine.reconcile(ns)
    assert (out.sync, out.error) == (SyncStatus.SYNCED, None), out.error
    drifted = {c.key: {f.path for f in c.fields} for c in out.drift}
    assert "spec.ports[port=8080,protocol=TCP]" in drifted[f"Service/{ns}/plain"], drifted
    assert ports_of(kube, "plain") == [(None, 80, 8080)]
    assert ports_of(kube, "named") == [("grpc", 9999, 9999), ("http", 9898, "http")]
    again = engine.reconcile(ns)
    assert (again.sync, again.drift, again.actions) == (SyncStatus.SYNCED, (), ())


def test_containers_env_and_volumes_added_by_hand_are_removed(kube: Kube, git_repo: GitRepo, engine_for) -> None:  # type: ignore[no-untyped-def]
    ns = kube.namespace
    web = deployment("web", replicas=0)
    web["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "MODE", "value": "prod"}]
    web["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    web["spec"]["template"]["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}]
    git_repo.commit({"app/app.yaml": manifests(web)})
    engine = engine_for(git_repo, [k8s_target(ns, kube.kubeconfig, ns)])
    assert engine.reconcile(ns).sync == SyncStatus.SYNCED
    cache = engine.runners[ns].driver.cache.find("apps", "Deployment")
    key = f"Deployment.apps/{ns}/web"

    def live_spec() -> dict[str, Any]:
        return cache.snapshot()[key]["spec"]["template"]["spec"]

    def repaired() -> None:
        out = engine.reconcile(ns)
        assert (out.sync, out.error) == (SyncStatus.SYNCED, None), out.error
        assert out.drift, "the hand-made entry is reported as drift"
        spec = containers_of(kube)
        assert [c["name"] for c in spec["containers"]] == ["app"]
        assert spec["containers"][0]["env"] == [{"name": "MODE", "value": "prod"}]
        assert spec["volumes"] == [{"name": "data", "emptyDir": {}}]
        assert spec["containers"][0]["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
        again = engine.reconcile(ns)
        assert (again.sync, again.drift, again.actions) == (SyncStatus.SYNCED, (), ())

    # env: `kubectl set env` adds an entry (manager kubectl-set)
    kube.kubectl("set", "env", "deployment/web", "DEBUG=1")
    wait_for(lambda: len(live_spec()["containers"][0]["env"]) == 2, 5)
    repaired()

    # volumes and volumeMounts patched in (manager kubectl-patch)
    patch = ('{"spec":{"template":{"spec":{"volumes":[{"name":"scratch","emptyDir":{}}],'
             '"containers":[{"name":"app","volumeMounts":[{"name":"scratch","mountPath":"/scratch"}]}]}}}}')
    kube.kubectl("patch", "deployment/web", "--type=strategic", "-p", patch)
    wait_for(lambda: len(live_spec()["volumes"]) == 2, 5)
    repaired()

    # a container renamed with `kubectl edit` (the list is keyed by name: a new entry)
    kubectl_edit(kube, "deployment/web", "s/- name: app$/- name: app-renamed/; s/^\\(  *\\)name: app$/\\1name: app-renamed/")
    wait_for(lambda: [c["name"] for c in live_spec()["containers"]] == ["app-renamed"], 5)
    repaired()

    # an env entry another *applier* owns is its business: not drift, kept
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "env": [{"name": "INJECTED", "value": "1"}]}]}}}}
    path = f"/apis/apps/v1/namespaces/{ns}/deployments/web"
    req = kube.api.param_serialize("PATCH", path, query_params=[("fieldManager", "other-gitops")], body=body,
                                   header_params={"Content-Type": "application/apply-patch+yaml"},
                                   auth_settings=["BearerToken"])
    assert kube.api.call_api(*req).status == 200
    wait_for(lambda: len(live_spec()["containers"][0]["env"]) == 2, 5)
    out = engine.reconcile(ns)
    assert (out.sync, out.error, out.drift) == (SyncStatus.SYNCED, None, ()), [c.to_record() for c in out.drift]
    assert {e["name"] for e in containers_of(kube)["containers"][0]["env"]} == {"MODE", "INJECTED"}
