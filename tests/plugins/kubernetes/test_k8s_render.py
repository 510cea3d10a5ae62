"""Rendering: plain YAML (recursive, multi-document, Lists, include/exclude), Kustomize with a base
outside the target's path, remote bases refused, Helm without a binary is a clear error."""

from __future__ import annotations

import pytest
from conftest import Kube, configmap, k8s_target, manifests

from setpoint.api import SyncStatus
from setpoint.testing import GitRepo

pytestmark = pytest.mark.kubernetes


def test_plain_yaml_recursive_multidoc_lists_and_globs(kube: Kube, git_repo: GitRepo, engine_for) -> None:  # type: ignore[no-untyped-def]
    ns = kube.namespace
    items = {"apiVersion": "v1", "kind": "List", "items": [configmap("l1", {"a": "1"}), configmap("l2", {"a": "2"})]}
    git_repo.commit({
        "app/one.yaml": manifests(configmap("a", {"x": "1"}), configmap("b", {"x": "2"})),
        "app/nested/deeper/two.yml": manifests(items),
        "app/skip/ignored.yaml": manifests(configmap("skipped", {"x": "1"})),
        "app/README.md": "not a manifest\n",
    })
    engine = engine_for(git_repo, [k8s_target(ns, kube.kubeconfig, ns, kubernetes={"exclude": ["skip/**"]})])
    out = engine.reconcile(ns)
    assert (out.sync, out.error) == (SyncStatus.SYNCED, None), out.error
    assert sorted(engine.store.inventory(ns)) == sorted(f"ConfigMap/{ns}/{n}" for n in ("a", "b", "l1", "l2"))


def test_render_errors_name_the_file(kube: Kube, git_repo: GitRepo, engine_for) -> None:  # type: ignore[no-untyped-def]
    ns = kube.namespace
    git_repo.commit({"app/bad.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [x\n"})
    engine = engine_for(git_repo, [k8s_target(ns, kube.kubeconfig, ns)])
    out = engine.reconcile(ns)
    assert out.error_stage == "render" and "bad.yaml" in out.error and "invalid YAML" in out.error
    git_repo.commit({"app/bad.yaml": manifests(configmap("a", {"x": "1"}), configmap("a", {"x": "2"}))})
    out = engine.reconcile(ns)
    assert out.error_stage == "render" and "defined twice" in out.error


def test_kustomize_overlay_with_a_base_outside_the_path(kube: Kube, git_repo: GitRepo, engine_for) -> None:  # type: ignore[no-untyped-def]
    ns = kube.namespace
    git_repo.commit({
        "base/kustomization.yaml": "resources: [cm.yaml]\n",
        "base/cm.yaml": manifests(configmap("settings", {"level": "base"})),
        "overlays/prod/kustomization.yaml": "resources: [../../base]\nnamePrefix: prod-\n"
                                            "commonLabels: {env: prod}\n",
    })
    engine = engine_for(git_repo, [k8s_target(ns, kube.kubeconfig, ns, path="overlays/prod")])
    out = engine.reconcile(ns)
    assert (out.sync, out.error) == (SyncStatus.SYNCED, None), out.error
    live = kube.obj("api/v1/configmaps", "prod-settings")
    assert live["metadata"]["labels"]["env"] == "prod" and live["data"] == {"level": "base"}
    assert engine.runners[ns].watched_paths == ["base"]
    # a change in the base (outside the target's path) is picked up
    git_repo.commit({"base/cm.yaml": manifests(configmap("settings", {"level": "changed"}))})
    out = engine.reconcile(ns)
    assert out.error is None and kube.obj("api/v1/configmaps", "prod-settings")["data"] == {"level": "changed"}


def test_remote_bases_and_helm_without_binary_are_refused(kube: Kube, git_repo: GitRepo, engine_for) -> None:  # type: ignore[no-untyped-def]
    ns = kube.namespace
    git_repo.commit({
        "remote/kustomization.yaml": "resources:\n- https://github.com/example/repo//deploy?ref=v1\n",
        "chart/Chart.yaml": "apiVersion: v2\nname: demo\nversion: 0.1.0\n",
        "chart/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: demo}\n",
    })
    engine = engine_for(git_repo, [k8s_target(f"{ns}-r", kube.kubeconfig, ns, path="remote"),
                                   k8s_target(f"{ns}-h", kube.kubeconfig, ns, path="chart")])
    out = engine.reconcile(f"{ns}-r")
    assert out.error_stage == "render" and "remote bases" in out.error and "allow_remote_bases" in out.error
    out = engine.reconcile(f"{ns}-h")
    assert out.error_stage == "render" and "no helm binary is configured" in out.error
