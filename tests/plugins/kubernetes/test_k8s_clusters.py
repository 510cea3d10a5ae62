"""Several clusters in one config: two targets on two kubeconfigs (a client-certificate user and a
token user standing in for two clusters); an unreachable cluster fails only its own target."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import Kube, configmap, k8s_target, manifests

from setpoint.api import SyncStatus
from setpoint.testing import GitRepo

pytestmark = pytest.mark.kubernetes


def kubeconfig_copy(source: str, dest: Path, context: str | None = None, server: str | None = None) -> str:
    config = yaml.safe_load(Path(source).read_text())
    if context:
        config["current-context"] = context
    if server:
        for cluster in config["clusters"]:
            cluster["cluster"]["server"] = server
    dest.write_text(yaml.safe_dump(config))
    dest.chmod(0o600)
    return str(dest)


def test_two_clusters_and_an_unreachable_one(kube: Kube, git_repo: GitRepo, engine_for, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ns = kube.namespace
    contexts = yaml.safe_load(Path(kube.kubeconfig).read_text())["contexts"]
    token_context = next(c["name"] for c in contexts if c["context"]["user"].endswith("token"))
    cert = kubeconfig_copy(kube.kubeconfig, tmp_path / "cert.kubeconfig")
    token = kubeconfig_copy(kube.kubeconfig, tmp_path / "token.kubeconfig", context=token_context)
    dead = kubeconfig_copy(kube.kubeconfig, tmp_path / "dead.kubeconfig", server="https://127.0.0.1:1")
    git_repo.commit({"east/cm.yaml": manifests(configmap("region", {"name": "east"})),
                     "west/cm.yaml": manifests(configmap("region", {"name": "west"})),
                     "gone/cm.yaml": manifests(configmap("region", {"name": "gone"}))})
    east, west, gone = f"{ns}-east", f"{ns}-west", f"{ns}-gone"
    for extra in (east, west):
        kube.kubectl("create", "namespace", extra, namespaced=False)
    engine = engine_for(git_repo, [
        k8s_target(east, cert, east, path="east"),
        k8s_target(west, token, west, path="west", kubernetes={"context": token_context}),
        k8s_target(gone, dead, ns, path="gone", kubernetes={"request_timeout_seconds": 3}),
    ])
    try:
        outcomes = {name: engine.reconcile(name) for name in (east, west, gone)}
        assert outcomes[east].sync == SyncStatus.SYNCED and outcomes[west].sync == SyncStatus.SYNCED
        assert kube.get(f"/api/v1/namespaces/{east}/configmaps/region")["data"] == {"name": "east"}
        assert kube.get(f"/api/v1/namespaces/{west}/configmaps/region")["data"] == {"name": "west"}
        west_cm = kube.get(f"/api/v1/namespaces/{west}/configmaps/region")
        assert any(m["manager"] == "setpoint" for m in west_cm["metadata"]["managedFields"])
        # the unreachable cluster: a temporary failure of that target alone, retried with back-off
        failed = outcomes[gone]
        assert failed.error_stage == "observe" and "unreachable" in failed.error, failed.error
        assert "TemporaryError" not in failed.error  # what is wrong, never a Python class name (issue 15)
        assert engine.reconcile(east).sync == SyncStatus.SYNCED
    finally:
        for extra in (east, west):
            kube.kubectl("delete", "namespace", extra, "--wait=false", namespaced=False, check=False)
