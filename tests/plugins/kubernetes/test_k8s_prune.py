"""Prune: only what setpoint created and Git dropped, under the core's safety rules (empty-render
guard, deletion budget), honouring the opt-out annotation; namespaces with the controller-manager."""

from __future__ import annotations

import pytest
from conftest import Kube, configmap, deployment, k8s_target, manifests

from setpoint.api import SyncStatus
from setpoint.testing import GitRepo, wait_for

pytestmark = pytest.mark.kubernetes

CM = "api/v1/configmaps"


def test_prune_opt_out_and_foreign_objects(kube: Kube, git_repo: GitRepo, engine_for) -> None:  # type: ignore[no-untyped-def]
    ns = kube.namespace
    keep = configmap("keep", {"x": "1"}, annotations={"setpoint.dev/prune": "disabled"})
    git_repo.commit({"app/a.yaml": manifests(configmap("a", {"x": "1"}), configmap("b", {"x": "1"}), keep)})
    engine = engine_for(git_repo, [k8s_target(ns, kube.kubeconfig, ns, prune=True,
                                              deletion_budget={"max_count": 10, "max_percent": 100})])
    assert engine.reconcile(ns).sync == SyncStatus.SYNCED

    # an object a person created with setpoint's labels (copied from one it applied) is reported, never deleted
    kube.kubectl("create", "configmap", "handmade", "--from-literal=x=1")
    kube.kubectl("label", "configmap", "handmade", f"setpoint.dev/target={ns}",
                 f"setpoint.dev/instance={engine.instance_id}")
    # b and keep leave Git
    git_repo.commit({"app/a.yaml": manifests(configmap("a", {"x": "1"}))}, "drop b and keep")
    driver = engine.runners[ns].driver
    wait_for(lambda: f"ConfigMap/{ns}/handmade" in driver.cache.find("", "ConfigMap").snapshot(), 5)
    out = engine.reconcile(ns)
    assert out.error is None, out.error
    assert kube.obj(CM, "b") is None, "pruned"
    assert kube.obj(CM, "keep") is not None, "opted out of pruning"
    assert kube.obj(CM, "handmade") is not None, "setpoint did not create it"
    assert f"ConfigMap/{ns}/handmade" in [c.key for c in out.drift]
    assert "not from Git" in engine.store.status(ns)["message"]
    deleted = [c["key"] for e in engine.store.audit_entries(actions=("apply",)) for c in e.details["changes"]
               if c["action"] == "delete"]
    assert deleted == [f"ConfigMap/{ns}/b"]


def test_prune_off_keeps_objects(kube: Kube, git_repo: GitRepo, engine_for) -> None:  # type: ignore[no-untyped-def]
    ns = kube.namespace
    git_repo.commit({"app/a.yaml": manifests(configmap("a", {"x": "1"}), configmap("b", {"x": "1"}))})
    engine = engine_for(git_repo, [k8s_target(ns, kube.kubeconfig, ns)])
    assert engine.reconcile(ns).sync == SyncStatus.SYNCED
    git_repo.commit({"app/a.yaml": manifests(configmap("a", {"x": "1"}))})
    out = engine.reconcile(ns)
    assert kube.obj(CM, "b") is not None and "prune is off" in engine.store.status(ns)["message"], out


def test_empty_render_guard_and_deletion_budget(kube: Kube, git_repo: GitRepo, engine_for) -> None:  # type: ignore[no-untyped-def]
    ns = kube.namespace
    objects = [configmap(f"c{i}", {"x": "1"}) for i in range(6)]
    git_repo.commit({"app/a.yaml": manifests(*objects)})
    engine = engine_for(git_repo, [k8s_target(ns, kube.kubeconfig, ns, prune=True,
                                              deletion_budget={"max_count": 2, "max_percent": 100})])
    assert engine.reconcile(ns).sync == SyncStatus.SYNCED

    # a render that comes out empty (a broken generator, a wrong path) prunes nothing
    git_repo.commit({"app/a.yaml": "# nothing here\n"}, "oops")
    out = engine.reconcile(ns)
    assert out.error_stage == "review" and "produced no resources" in out.error
    assert all(kube.obj(CM, f"c{i}") for i in range(6))

    # three deletions are over a budget of two: held for approval, nothing deleted
    git_repo.commit({"app/a.yaml": manifests(*objects[:3])}, "drop three")
    out = engine.reconcile(ns)
    assert out.held_plan_id and all(kube.obj(CM, f"c{i}") for i in range(6))
    engine.approve(ns, out.held_plan_id, by="ops")
    out = engine.reconcile(ns)
    assert (out.sync, out.error) == (SyncStatus.SYNCED, None), out.error
    assert [bool(kube.obj(CM, f"c{i}")) for i in range(6)] == [True] * 3 + [False] * 3


def test_namespace_prune_with_the_controller_manager(kube: Kube, git_repo: GitRepo, engine_for) -> None:  # type: ignore[no-untyped-def]
    ns = kube.namespace
    app_ns, busy_ns = f"{ns}-app", f"{ns}-busy"
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": app_ns}}
    busy = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": busy_ns}}
    in_app = deployment("web")
    in_app["metadata"]["namespace"] = app_ns
    git_repo.commit({"app/ns.yaml": manifests(namespace, busy, in_app)})
    engine = engine_for(git_repo, [k8s_target(ns, kube.kubeconfig, ns, prune=True,
                                              deletion_budget={"max_count": 10, "max_percent": 100})])
    out = engine.reconcile(ns)
    assert out.error is None, out.error
    # something setpoint did not create lives in the busy namespace
    kube.kubectl("create", "configmap", "precious", "--from-literal=x=1", "-n", busy_ns, namespaced=False)

    git_repo.commit({"app/ns.yaml": manifests(configmap("left", {"x": "1"}))}, "remove both namespaces")
    out = engine.reconcile(ns)
    assert out.error_stage == "apply"
    assert f"namespace {busy_ns} holds objects this target did not create (ConfigMap/{busy_ns}/precious)" in out.error

    def gone() -> bool:
        return kube.get(f"/api/v1/namespaces/{app_ns}") is None

    # the controller-manager empties the namespace (ReplicaSets too) and removes it
    wait_for(gone, 60, step=0.5)
    assert kube.get(f"/api/v1/namespaces/{busy_ns}/configmaps/precious") is not None
    out = engine.reconcile(ns)
    assert f"Namespace/{app_ns}" not in engine.store.inventory(ns)
    kube.kubectl("delete", "namespace", busy_ns, "--wait=false", namespaced=False)


def test_held_deletions_do_not_block_the_updates_of_the_same_commit(kube: Kube, git_repo: GitRepo, engine_for) -> None:  # type: ignore[no-untyped-def]
    ns = kube.namespace
    objects = [configmap(f"c{i}", {"x": "1"}) for i in range(6)]
    git_repo.commit({"app/a.yaml": manifests(*objects)})
    engine = engine_for(git_repo, [k8s_target(ns, kube.kubeconfig, ns, prune=True,
                                              deletion_budget={"max_count": 2, "max_percent": 100})])
    assert engine.reconcile(ns).sync == SyncStatus.SYNCED
    git_repo.commit({"app/a.yaml": manifests(configmap("c0", {"x": "2"}), *objects[1:3])}, "drop three, change c0")
    out = engine.reconcile(ns)
    assert out.held_plan_id and out.error is None, out.error
    assert kube.obj(CM, "c0")["data"] == {"x": "2"}, "the update went ahead"
    assert all(kube.obj(CM, f"c{i}") for i in range(6)), "the deletions wait"
    [held] = engine.store.held_plans(ns)
    assert sorted(c["name"] for c in held.changes) == ["c3", "c4", "c5"]
    engine.approve(ns, held.plan_id, by="ops")
    out = engine.reconcile(ns)
    assert (out.sync, out.error) == (SyncStatus.SYNCED, None), out.error
    assert [bool(kube.obj(CM, f"c{i}")) for i in range(6)] == [True] * 3 + [False] * 3
