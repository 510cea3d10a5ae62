"""The user's five phases against the real API server: create, no-op (zero writes), `kubectl scale`
reverted at field level, a new image from a new commit, `git revert` rolls back."""

from __future__ import annotations

import json

import pytest
from conftest import Kube, deployment, k8s_target, manifests, service

from setpoint.api import HealthStatus, SyncStatus
from setpoint.testing import GitRepo, wait_for

pytestmark = pytest.mark.kubernetes

DEPLOY = "apis/apps/v1/deployments"


def test_five_phases(kube: Kube, git_repo: GitRepo, engine_for) -> None:  # type: ignore[no-untyped-def]
    ns = kube.namespace
    v1 = git_repo.commit({"app/web.yaml": manifests(deployment(), service())}, "web 1", author="Alice <alice@example.com>")
    engine = engine_for(git_repo, [k8s_target(ns, kube.kubeconfig, ns)])

    # 1. create
    out = engine.reconcile(ns)
    assert (out.sync, out.error) == (SyncStatus.SYNCED, None), out.error
    dep = kube.obj(DEPLOY, "web")
    assert dep["spec"]["replicas"] == 2
    assert dep["metadata"]["labels"]["setpoint.dev/target"] == ns
    assert dep["metadata"]["annotations"]["setpoint.dev/revision"] == v1
    managers = {m["manager"]: m["operation"] for m in dep["metadata"]["managedFields"]}
    assert managers.get("setpoint") == "Apply"
    # no nodes: the rollout cannot finish, and health says so instead of pretending
    assert out.health in (HealthStatus.PROGRESSING, HealthStatus.HEALTHY)
    inventory = kube.obj("api/v1/configmaps", f"setpoint-inventory-{ns}")
    assert sorted(json.loads(inventory["data"]["objects"])) == [f"Deployment.apps/{ns}/web", f"Service/{ns}/web"]

    # 2. no-op: nothing written (resourceVersions unchanged), nothing audited
    def versions() -> tuple[object, ...]:
        # the deployment controller bumps a Deployment's resourceVersion with status: its generation
        # and setpoint's managedFields entry only change when setpoint writes
        dep = kube.obj(DEPLOY, "web")["metadata"]
        return (dep["generation"], [m for m in dep["managedFields"] if m["manager"] == "setpoint"],
                kube.obj("api/v1/services", "web")["metadata"]["resourceVersion"])

    before = versions()
    calls = dict(engine.runners[ns].driver.cluster.calls)
    audit_before = len(engine.store.audit_entries())
    for _ in range(3):
        out = engine.reconcile(ns)
        assert out.sync == SyncStatus.SYNCED and not out.actions, out
    assert versions() == before
    assert dict(engine.runners[ns].driver.cluster.calls) == calls, "no request at all: the watch cache answered"
    assert len(engine.store.audit_entries()) == audit_before

    # 3. kubectl scale by hand is reverted, at field level, with the live value seen
    kube.kubectl("scale", "deployment/web", "--replicas=5")
    driver = engine.runners[ns].driver
    wait_for(lambda: driver.cache.find("apps", "Deployment").snapshot()[f"Deployment.apps/{ns}/web"]["spec"]["replicas"] == 5, 5)
    out = engine.reconcile(ns)
    assert out.error is None, out.error
    assert [c.key for c in out.drift] == [f"Deployment.apps/{ns}/web"]
    assert kube.obj(DEPLOY, "web")["spec"]["replicas"] == 2
    revert = engine.store.audit_entries(actions=("revert-drift",))[-1]
    assert revert.details["changes"][0]["fields"] == [{"path": "spec.replicas", "before": 5, "after": 2}]

    # 4. a new image from a new commit
    v2 = git_repo.commit({"app/web.yaml": manifests(deployment(image="registry.local/web:2"), service())}, "web 2",
                         author="Bob <bob@example.com>")
    svc_rv = kube.obj("api/v1/services", "web")["metadata"]["resourceVersion"]
    out = engine.reconcile(ns)
    assert out.sync == SyncStatus.SYNCED and out.revision.sha == v2 and not out.drift
    dep = kube.obj(DEPLOY, "web")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/web:2"
    assert dep["metadata"]["annotations"]["setpoint.dev/revision"] == v2
    assert kube.obj("api/v1/services", "web")["metadata"]["resourceVersion"] == svc_rv, "only changed objects are sent"
    apply = engine.store.audit_entries(actions=("apply",))[-1]
    paths = [f["path"] for c in apply.details["changes"] for f in c["fields"]]
    assert paths == ["spec.template.spec.containers[name=app].image"]

    # 5. git revert rolls back
    v3 = git_repo.revert(v2)
    out = engine.reconcile(ns)
    assert out.sync == SyncStatus.SYNCED and out.revision.sha == v3
    assert kube.obj(DEPLOY, "web")["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/web:1"
    assert [e.revision for e in engine.store.audit_entries(actions=("apply",))] == [v1, v2, v3]
