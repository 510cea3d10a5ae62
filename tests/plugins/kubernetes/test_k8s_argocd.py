"""Manifests migrated from Argo CD: `argocd.argoproj.io/sync-wave` orders the applies (said once in the
log), `argocd.argoproj.io/hook: Skip` objects are left out, other Argo CD hooks are refused with
their names unless `hooks: skip`."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from conftest import Kube, configmap, k8s_target, manifests

from setpoint.api import SyncStatus
from setpoint.testing import GitRepo

pytestmark = pytest.mark.kubernetes


def waved(name: str, wave: str | None) -> dict[str, Any]:
    annotations = {"argocd.argoproj.io/sync-wave": wave} if wave is not None else {}
    return configmap(name, {"a": "1"}, annotations=annotations)


def test_sync_waves_order_the_apply_and_hooks_are_handled(kube: Kube, git_repo: GitRepo, engine_for,  # type: ignore[no-untyped-def]
                                                           caplog: Any) -> None:
    caplog.set_level(logging.WARNING)
    ns = kube.namespace
    skipped = {**configmap("argo-only", {"a": "1"}), "metadata": {
        "name": "argo-only", "annotations": {"argocd.argoproj.io/hook": "Skip"}}}
    git_repo.commit({"app/app.yaml": manifests(waved("a-last", "2"), waved("m-middle", None), waved("z-first", "-1"),
                                               skipped)})
    engine = engine_for(git_repo, [k8s_target(ns, kube.kubeconfig, ns, kubernetes={"apply_concurrency": 1})])
    out = engine.reconcile(ns)
    assert (out.sync, out.error) == (SyncStatus.SYNCED, None), out.error
    versions = {n: int(kube.obj("api/v1/configmaps", n)["metadata"]["resourceVersion"])
                for n in ("a-last", "m-middle", "z-first")}
    assert sorted(versions, key=versions.__getitem__) == ["z-first", "m-middle", "a-last"], versions
    assert kube.obj("api/v1/configmaps", "argo-only") is None
    notes = [r.getMessage() for r in caplog.records if "argocd.argoproj.io/sync-wave" in r.getMessage()]
    assert len(notes) == 1 and "does not wait for health between waves" in notes[0], notes
    engine.reconcile(ns)
    assert len([r for r in caplog.records if "argocd.argoproj.io/sync-wave" in r.getMessage()]) == 1, "said once"

    presync = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {
        "name": "db-migrate", "annotations": {"argocd.argoproj.io/hook": "PreSync",
                                              "argocd.argoproj.io/hook-delete-policy": "HookSucceeded"}},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
                                       "containers": [{"name": "m", "image": "registry.local/m:1"}]}}}}
    git_repo.commit({"app/hook.yaml": manifests(presync)})
    out = engine.reconcile(ns)
    assert out.error_stage == "render" and "Job/db-migrate (PreSync)" in out.error and "hooks: skip" in out.error


def test_argo_prune_false_keeps_the_object(kube: Kube, git_repo: GitRepo, engine_for) -> None:  # type: ignore[no-untyped-def]
    ns = kube.namespace
    keep = configmap("keep", {"a": "1"}, annotations={"argocd.argoproj.io/sync-options": "ServerSideApply=true,Prune=false"})
    stay = [configmap(f"stay-{i}", {"a": "1"}) for i in range(6)]
    git_repo.commit({"app/keep.yaml": manifests(keep), "app/gone.yaml": manifests(configmap("gone", {"a": "1"})),
                     "app/stay.yaml": manifests(*stay)})
    engine = engine_for(git_repo, [k8s_target(ns, kube.kubeconfig, ns, prune=True)])
    assert engine.reconcile(ns).sync == SyncStatus.SYNCED
    git_repo.commit({"app/keep.yaml": None, "app/gone.yaml": None}, "remove two")
    out = engine.reconcile(ns)
    assert out.error is None, out.error
    assert kube.obj("api/v1/configmaps", "gone") is None
    assert kube.obj("api/v1/configmaps", "keep") is not None, "Prune=false keeps it, as in Argo CD"
