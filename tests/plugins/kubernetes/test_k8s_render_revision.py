"""A Kustomize overlay is never rendered at an older revision than its files at the head, also in a
new process (a restart, `setpoint sync` from the shell) and in a second replica with no memory of
its own: the paths a render depends on are remembered, and a render that reveals newer files is
done again at the newer revision before anything is applied."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Kube, configmap, deployment, k8s_target, manifests

from setpoint.api import SyncStatus
from setpoint.testing import GitRepo, make_engine, write_config

pytestmark = pytest.mark.kubernetes


def base_files(image: str, level: str) -> dict[str, str]:
    return {
        "base/kustomization.yaml": "resources: [deploy.yaml]\n"
                                   f"configMapGenerator:\n- name: settings\n  literals: [level={level}]\n",
        # more objects, as real bases have: replacing the hashed ConfigMap stays within the deletion budget
        "base/deploy.yaml": manifests(deployment("web", replicas=0, image=image),
                                      *(configmap(f"static-{i}", {"i": str(i)}) for i in range(4))),
    }


def live_state(kube: Kube) -> tuple[str, list[str]]:
    dep = kube.obj("apis/apps/v1/deployments", "prod-web")
    image = dep["spec"]["template"]["spec"]["containers"][0]["image"]
    cms = [n for n in kube.kubectl("get", "configmaps", "-o", "name").split() if "prod-settings-" in n]
    return image, sorted(kube.get(f"/api/v1/namespaces/{kube.namespace}/{c.replace('configmap/', 'configmaps/')}")["data"]["level"]
                         for c in cms)


def test_new_process_and_second_replica_render_the_head(kube: Kube, git_repo: GitRepo, tmp_path: Path) -> None:
    ns = kube.namespace
    git_repo.commit({**base_files("registry.local/web:5", "five"),
                     "overlays/prod/kustomization.yaml": "resources: [../../base]\nnamePrefix: prod-\n"}, "v5")
    target = k8s_target(ns, kube.kubeconfig, ns, path="overlays/prod", prune=True)
    first_dir = tmp_path / "one"
    first_dir.mkdir()
    config = write_config(first_dir, git_repo.path, [target])
    engine = make_engine(config, load_entrypoints=True)
    try:
        assert engine.reconcile(ns).sync == SyncStatus.SYNCED
        six = git_repo.commit(base_files("registry.local/web:6", "six"), "v6: only the base changes")
        out = engine.reconcile(ns)
        assert (out.sync, out.error) == (SyncStatus.SYNCED, None), out.error
        assert live_state(kube) == ("registry.local/web:6", ["six"])
    finally:
        engine.close()

    # a new process (daemon restart, `setpoint sync`): same state directory, nothing in memory
    restarted = make_engine(config, load_entrypoints=True)
    try:
        remembered = list(restarted.runners[ns].watched_paths)
        out = restarted.reconcile(ns)
        assert (out.sync, out.error, out.actions) == (SyncStatus.SYNCED, None, ()), out.actions
        assert out.revision.sha == six
        assert live_state(kube) == ("registry.local/web:6", ["six"])
        assert remembered == ["base"], "known before the first render: remembered from the last one"
        plan = restarted.reconcile(ns, dry_run=True)
        assert plan.sync == SyncStatus.SYNCED and plan.revision.sha == six
    finally:
        restarted.close()

    # Git then adds a second base to the overlay, and a later commit changes only that base
    git_repo.commit({"extra/kustomization.yaml": "resources: [cm.yaml]\n",
                     "extra/cm.yaml": manifests({"apiVersion": "v1", "kind": "ConfigMap",
                                                 "metadata": {"name": "extra"}, "data": {"v": "1"}}),
                     "overlays/prod/kustomization.yaml": "resources: [../../base, ../../extra]\nnamePrefix: prod-\n"},
                    "add a base")
    latest = git_repo.commit({"extra/cm.yaml": manifests({"apiVersion": "v1", "kind": "ConfigMap",
                                                          "metadata": {"name": "extra"}, "data": {"v": "2"}})},
                             "change only the new base")
    # a second replica: its own state, no memory of the paths at all
    second_dir = tmp_path / "two"
    second_dir.mkdir()
    replica = make_engine(write_config(second_dir, git_repo.path, [target]), load_entrypoints=True)
    try:
        assert replica.runners[ns].watched_paths == []
        out = replica.reconcile(ns)
        assert out.error is None, out.error
        assert out.revision.sha == latest, "rendered at the head's files, not at the overlay's last commit"
        assert live_state(kube) == ("registry.local/web:6", ["six"])
        assert kube.obj("api/v1/configmaps", "prod-extra")["data"] == {"v": "2"}
        assert sorted(replica.runners[ns].watched_paths) == ["base", "extra"]
    finally:
        replica.close()
