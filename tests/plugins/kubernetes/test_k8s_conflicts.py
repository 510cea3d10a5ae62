"""Field ownership: a conflict with another applier is reported with the fields and the manager and
changes nothing; with force_conflicts it is taken; ignore rules and ignored managers keep fields
another controller owns out of the comparison and out of the apply."""

from __future__ import annotations

import json

import pytest
from conftest import Kube, configmap, deployment, k8s_target, manifests

from setpoint.api import SyncStatus
from setpoint.testing import GitRepo, wait_for

pytestmark = pytest.mark.kubernetes


def intruder_apply(kube: Kube, manager: str, body: dict, force: bool = True) -> None:
    query = [("fieldManager", manager)] + ([("force", "true")] if force else [])
    path = f"/api/v1/namespaces/{kube.namespace}/configmaps/{body['metadata']['name']}"
    req = kube.api.param_serialize("PATCH", path, query_params=query, body={**body, "metadata": {
        **body["metadata"], "namespace": kube.namespace}}, header_params={"Content-Type": "application/apply-patch+yaml"},
        auth_settings=["BearerToken"])
    resp = kube.api.call_api(*req)
    assert resp.status == 200, resp.read()


def test_conflict_with_another_applier_is_reported_then_forced(kube: Kube, git_repo: GitRepo, engine_for) -> None:  # type: ignore[no-untyped-def]
    ns = kube.namespace
    git_repo.commit({"app/cm.yaml": manifests(configmap("settings", {"a": "1", "b": "2"}))}, "v1")
    engine = engine_for(git_repo, [k8s_target(ns, kube.kubeconfig, ns)])
    assert engine.reconcile(ns).sync == SyncStatus.SYNCED

    # another declarative tool takes field a (server-side apply with force, as `kubectl apply --server-side --force-conflicts`)
    intruder_apply(kube, "other-gitops", configmap("settings", {"a": "99"}))
    driver = engine.runners[ns].driver
    key = f"ConfigMap/{ns}/settings"
    wait_for(lambda: driver.cache.find("", "ConfigMap").snapshot()[key]["data"]["a"] == "99", 5)
    out = engine.reconcile(ns)
    assert out.error_stage == "apply"
    assert ".data.a owned by field manager 'other-gitops' (apply)" in out.error, out.error
    assert "force_conflicts" in out.error
    assert kube.obj("api/v1/configmaps", "settings")["data"]["a"] == "99", "a conflict changes nothing"

    # the same target with force_conflicts takes the field
    forced = engine_for(git_repo, [k8s_target(ns, kube.kubeconfig, ns, kubernetes={"force_conflicts": True})])
    out = forced.reconcile(ns)
    assert (out.sync, out.error) == (SyncStatus.SYNCED, None), out.error
    live = kube.obj("api/v1/configmaps", "settings")
    assert live["data"]["a"] == "1"
    owners = {m["manager"]: json.dumps(m["fieldsV1"]) for m in live["metadata"]["managedFields"]}
    assert '"f:a"' in owners["setpoint"] and '"f:a"' not in owners.get("other-gitops", "")


def test_imperative_edits_are_taken_back_without_force(kube: Kube, git_repo: GitRepo, engine_for) -> None:  # type: ignore[no-untyped-def]
    ns = kube.namespace
    git_repo.commit({"app/cm.yaml": manifests(configmap("settings", {"a": "1"}))}, "v1")
    engine = engine_for(git_repo, [k8s_target(ns, kube.kubeconfig, ns)])
    assert engine.reconcile(ns).sync == SyncStatus.SYNCED
    kube.kubectl("patch", "configmap", "settings", "--type=merge", "-p", '{"data":{"a":"edited"}}')
    driver = engine.runners[ns].driver
    wait_for(lambda: driver.cache.find("", "ConfigMap").snapshot()[f"ConfigMap/{ns}/settings"]["data"]["a"] == "edited", 5)
    out = engine.reconcile(ns)
    assert (out.sync, out.error) == (SyncStatus.SYNCED, None), out.error
    assert kube.obj("api/v1/configmaps", "settings")["data"]["a"] == "1"


def test_ignore_rules_and_ignored_managers(kube: Kube, git_repo: GitRepo, engine_for) -> None:  # type: ignore[no-untyped-def]
    ns = kube.namespace
    git_repo.commit({"app/app.yaml": manifests(deployment("web", replicas=2), configmap("settings", {"a": "1", "b": "2"}))})
    settings = {"ignore": [{"kind": "Deployment", "paths": ["/spec/replicas"]}], "ignore_managers": ["autoscaler"]}
    engine = engine_for(git_repo, [k8s_target(ns, kube.kubeconfig, ns, kubernetes=settings)])
    assert engine.reconcile(ns).sync == SyncStatus.SYNCED
    driver = engine.runners[ns].driver

    # an HPA-like controller scales: ignored by rule, neither OutOfSync nor taken back
    kube.kubectl("scale", "deployment/web", "--replicas=4")
    # a controller applying as an ignored manager owns field b
    intruder_apply(kube, "autoscaler", configmap("settings", {"b": "20"}))
    wait_for(lambda: driver.cache.find("apps", "Deployment").snapshot()[f"Deployment.apps/{ns}/web"]["spec"]["replicas"] == 4
             and driver.cache.find("", "ConfigMap").snapshot()[f"ConfigMap/{ns}/settings"]["data"]["b"] == "20", 5)
    out = engine.reconcile(ns)
    assert (out.sync, out.error, out.drift) == (SyncStatus.SYNCED, None, ()), [c.to_record() for c in out.drift]
    assert kube.obj("apis/apps/v1/deployments", "web")["spec"]["replicas"] == 4
    assert kube.obj("api/v1/configmaps", "settings")["data"] == {"a": "1", "b": "20"}

    # a Git change elsewhere in the object is applied without reverting the ignored fields
    git_repo.commit({"app/app.yaml": manifests(deployment("web", replicas=2, image="registry.local/web:2"),
                                               configmap("settings", {"a": "10", "b": "2"}))})
    out = engine.reconcile(ns)
    assert (out.sync, out.error) == (SyncStatus.SYNCED, None), out.error
    dep = kube.obj("apis/apps/v1/deployments", "web")
    assert dep["spec"]["replicas"] == 4 and dep["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":2")
    assert kube.obj("api/v1/configmaps", "settings")["data"] == {"a": "10", "b": "20"}


def test_immutable_field_change_needs_the_opt_in_then_replaces(kube: Kube, git_repo: GitRepo, engine_for) -> None:  # type: ignore[no-untyped-def]
    """An immutable ConfigMap cannot take new data in place: without the annotation the error says
    how to opt in and nothing changes; with it the object is deleted and re-created."""
    ns = kube.namespace
    frozen = {**configmap("frozen", {"a": "1"}), "immutable": True}
    git_repo.commit({"app/cm.yaml": manifests(frozen)}, "v1")
    engine = engine_for(git_repo, [k8s_target(ns, kube.kubeconfig, ns)])
    assert engine.reconcile(ns).sync == SyncStatus.SYNCED
    first_uid = kube.obj("api/v1/configmaps", "frozen")["metadata"]["uid"]

    git_repo.commit({"app/cm.yaml": manifests({**frozen, "data": {"a": "2"}})}, "v2")
    out = engine.reconcile(ns)
    assert out.error_stage == "apply" and "field is immutable" in out.error, out.error
    assert 'setpoint.dev/replace-on-immutable: "true"' in out.error
    live = kube.obj("api/v1/configmaps", "frozen")
    assert live["data"] == {"a": "1"} and live["metadata"]["uid"] == first_uid, "refused: nothing changed"

    opted_in = {**frozen, "data": {"a": "2"},
                "metadata": {"name": "frozen", "annotations": {"setpoint.dev/replace-on-immutable": "true"}}}
    git_repo.commit({"app/cm.yaml": manifests(opted_in)}, "v3: opt in")
    out = engine.reconcile(ns)
    assert (out.sync, out.error) == (SyncStatus.SYNCED, None), out.error
    live = kube.obj("api/v1/configmaps", "frozen")
    assert live["data"] == {"a": "2"} and live["metadata"]["uid"] != first_uid, "a new object"
    assert engine.reconcile(ns).sync == SyncStatus.SYNCED and not engine.reconcile(ns).actions
