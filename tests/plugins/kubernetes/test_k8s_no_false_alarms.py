"""No perpetual OutOfSync: objects the API server defaults, normalises or annotates stay Synced with
zero writes; each built-in normaliser is checked against the real API server."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from conftest import Kube, configmap, deployment, k8s_target, manifests, service

from setpoint.api import HealthStatus, SyncStatus
from setpoint.testing import GitRepo

pytestmark = pytest.mark.kubernetes


def crd(group: str) -> dict[str, Any]:
    """A namespaced CRD whose schema defaults two fields (structural defaulting)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                   "spec": {"type": "object", "properties": {
                                       "size": {"type": "integer", "default": 3},
                                       "color": {"type": "string", "default": "blue"},
                                       "name": {"type": "string"}}},
                                   "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}]},
    }


def widget(group: str, name: str = "w1", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": name}, "spec": {"name": name, **spec}}


def resource_versions(engine: Any, target: str) -> dict[str, str]:
    driver = engine.runners[target].driver
    out = {}
    for informer in driver.cache.informers.values():
        for key, obj in informer.snapshot().items():
            out[key] = obj["metadata"]["resourceVersion"]
    return out


def live_versions(kube: Kube, engine: Any, target: str) -> dict[str, Any]:
    """What only a write by setpoint changes, straight from the API server: the generation, setpoint's
    managedFields entry and its revision annotation (controllers bump resourceVersion with status)."""
    versions = {}
    driver = engine.runners[target].driver
    for key in resource_versions(engine, target):
        from setpoint_kubernetes.identity import Ref

        ref = Ref.parse(key)
        resource = driver.cluster.resource(ref.group, ref.kind)
        obj = driver.cluster.request("GET", resource.path(ref.namespace, ref.name))
        meta = obj["metadata"]
        mine = [m for m in meta["managedFields"] if m["manager"] == "setpoint"]
        # the deployment controller adds deployment.kubernetes.io/revision on its own schedule
        annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                       if not k.startswith("deployment.kubernetes.io/")}
        versions[key] = (meta.get("generation"), mine, annotations,
                         meta["resourceVersion"] if ref.kind not in ("Deployment",) else None)
    return versions


def writes(engine: Any, target: str) -> int:
    calls = engine.runners[target].driver.cluster.calls
    return calls["PATCH"] + calls["POST"] + calls["PUT"] + calls["DELETE"]


def test_defaulted_objects_and_crd_with_custom_resource_stay_synced(kube: Kube, git_repo: GitRepo, engine_for) -> None:  # type: ignore[no-untyped-def]
    group = f"t{uuid.uuid4().hex[:8]}.example.com"
    nodeport = service("api")
    nodeport["spec"]["type"] = "NodePort"
    objects = [
        crd(group), widget(group, "w1"), widget(group, "w2", size=5),   # CRD and CRs in the same commit
        deployment("web"), deployment("api", replicas=1, strategy={"type": "Recreate"}),
        service("web"), nodeport,
        configmap("settings", {"a": "1", "empty": ""}),
    ]
    git_repo.commit({"app/all.yaml": manifests(*objects)}, "everything")
    engine = engine_for(git_repo, [k8s_target(kube.namespace, kube.kubeconfig, kube.namespace)])

    out = engine.reconcile(kube.namespace)
    assert (out.sync, out.error) == (SyncStatus.SYNCED, None), out.error
    w1 = kube.get(f"/apis/{group}/v1/namespaces/{kube.namespace}/widgets/w1")
    assert w1["spec"] == {"name": "w1", "size": 3, "color": "blue"}, "the server defaulted the custom resource"
    crd_live = kube.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.{group}")
    assert any(c["type"] == "Established" and c["status"] == "True" for c in crd_live["status"]["conditions"])

    before = live_versions(kube, engine, kube.namespace)
    assert len(before) == len(objects)
    calls = dict(engine.runners[kube.namespace].driver.cluster.calls)
    for _ in range(3):
        out = engine.reconcile(kube.namespace)
        assert out.sync == SyncStatus.SYNCED and not out.actions and not out.drift, (out.actions, out.drift)
    assert dict(engine.runners[kube.namespace].driver.cluster.calls) == calls, "a no-op reconcile sends no request at all"
    assert live_versions(kube, engine, kube.namespace) == before, "a no-op reconcile wrote nothing"

    # A fresh process (no memo, no watch history) agrees: the comparison itself finds nothing.
    fresh = engine_for(git_repo, [k8s_target(kube.namespace, kube.kubeconfig, kube.namespace)])
    out = fresh.reconcile(kube.namespace, dry_run=True)
    assert out.sync == SyncStatus.SYNCED, [c.to_record() for c in engine.runners[kube.namespace].last_plan.changes]


def test_custom_resource_health_from_conditions(kube: Kube, git_repo: GitRepo, engine_for) -> None:  # type: ignore[no-untyped-def]
    group = f"t{uuid.uuid4().hex[:8]}.example.com"
    git_repo.commit({"app/all.yaml": manifests(crd(group), widget(group, "w1"))}, "crd")
    engine = engine_for(git_repo, [k8s_target(kube.namespace, kube.kubeconfig, kube.namespace)])
    out = engine.reconcile(kube.namespace)
    assert out.sync == SyncStatus.SYNCED and out.health == HealthStatus.HEALTHY, "no conditions: healthy"
    path = f"/apis/{group}/v1/namespaces/{kube.namespace}/widgets/w1/status"

    def set_status(status: dict[str, Any]) -> None:
        kube.kubectl("patch", f"widgets.{group}", "w1", "--subresource=status", "--type=merge",
                     "-p", __import__("json").dumps({"status": status}))

    set_status({"conditions": [{"type": "Ready", "status": "False", "reason": "Provisioning"}]})
    from setpoint.testing import wait_for

    driver = engine.runners[kube.namespace].driver
    key = f"Widget.{group}/{kube.namespace}/w1"
    wait_for(lambda: "conditions" in driver.cache.find(group, "Widget").snapshot()[key].get("status", {}), 5)
    assert engine.reconcile(kube.namespace).health == HealthStatus.PROGRESSING
    set_status({"conditions": [{"type": "Stalled", "status": "True", "message": "quota"}]})
    wait_for(lambda: driver.cache.find(group, "Widget").snapshot()[key]["status"]["conditions"][0]["type"] == "Stalled", 5)
    out = engine.reconcile(kube.namespace)
    assert out.health == HealthStatus.DEGRADED
    set_status({"conditions": [{"type": "Ready", "status": "True"}]})
    wait_for(lambda: driver.cache.find(group, "Widget").snapshot()[key]["status"]["conditions"][0]["type"] == "Ready", 5)
    assert engine.reconcile(kube.namespace).health == HealthStatus.HEALTHY
    assert path


@pytest.mark.parametrize("name, obj", [
    # server-fields + numbers: 1.0 in YAML is 1, status and metadata noise are the server's
    ("numbers", deployment("n", replicas=1.0)),  # type: ignore[arg-type]
    # quantities come back canonical: 0.5 -> 500m, 1024Mi -> 1Gi, 1 -> "1"
    ("quantities", {**deployment("q"), "spec": {**deployment("q")["spec"], "template": {
        "metadata": {"labels": {"app": "q"}},
        "spec": {"containers": [{"name": "app", "image": "x:1",
                                 "resources": {"requests": {"cpu": 0.5, "memory": "1024Mi"},
                                               "limits": {"cpu": 1, "memory": "2048Mi"}}}]}}}}),
    # a Secret's stringData is stored as base64 data
    ("secret-string-data", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                            "stringData": {"user": "admin"}, "data": {"extra": "eA=="}}),
    # empty maps, lists and strings are omitted by the server
    ("empty-values", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "e", "annotations": {}},
                      "data": {"k": "v"}, "binaryData": {}}),
    # defaulted fields inside list items: protocol, imagePullPolicy, terminationMessagePath, targetPort
    ("defaulted-list-items", service("d")),
])
def test_normalizer_against_the_api_server(name: str, obj: dict[str, Any], kube: Kube, git_repo: GitRepo,
                                           engine_for) -> None:  # type: ignore[no-untyped-def]
    git_repo.commit({"app/o.yaml": manifests(obj)}, name)
    engine = engine_for(git_repo, [k8s_target(kube.namespace, kube.kubeconfig, kube.namespace)])
    assert engine.reconcile(kube.namespace).sync == SyncStatus.SYNCED
    before = live_versions(kube, engine, kube.namespace)
    written = writes(engine, kube.namespace)
    # a second process with an empty memo compares from scratch
    out = engine_for(git_repo, [k8s_target(kube.namespace, kube.kubeconfig, kube.namespace)]).reconcile(kube.namespace, dry_run=True)
    assert out.sync == SyncStatus.SYNCED, engine.runners[kube.namespace].last_plan
    out = engine.reconcile(kube.namespace)
    assert out.sync == SyncStatus.SYNCED and not out.actions
    assert writes(engine, kube.namespace) == written
    assert live_versions(kube, engine, kube.namespace) == before
