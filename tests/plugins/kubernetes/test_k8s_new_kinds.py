"""A dependant target whose custom resources need CRDs its dependency has just established finds the
new kinds at once, even through another kubeconfig whose discovery was read moments before (the
re-discovery throttle is stretched here so that the race of a real run happens every time)."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from conftest import Kube, issuer_crd, k8s_target, manifests

from setpoint.api import SyncStatus
from setpoint.testing import GitRepo

pytestmark = pytest.mark.kubernetes


def test_dependant_sees_kinds_its_dependency_just_established(kube: Kube, git_repo: GitRepo, engine_for,  # type: ignore[no-untyped-def]
                                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from setpoint_kubernetes import client

    monkeypatch.setattr(client, "REDISCOVER_AFTER", 3600.0)
    ns = kube.namespace
    group = f"d{uuid.uuid4().hex[:8]}.example.com"
    issuer = {"apiVersion": f"{group}/v1", "kind": "ClusterIssuer", "metadata": {"name": f"ca-{ns}"},
              "spec": {"selfSigned": {}}}
    git_repo.commit({"crds/crd.yaml": manifests(issuer_crd(group)), "issuers/issuer.yaml": manifests(issuer)})
    other_kubeconfig = tmp_path / "dependant-kubeconfig"
    shutil.copy(kube.kubeconfig, other_kubeconfig)
    engine = engine_for(git_repo, [
        k8s_target(f"{ns}-crds", kube.kubeconfig, ns, path="crds"),
        k8s_target(f"{ns}-issuers", str(other_kubeconfig), ns, path="issuers", depends_on=[f"{ns}-crds"]),
    ])
    early = engine.reconcile(f"{ns}-issuers", dry_run=True)  # reads discovery before the CRD exists
    assert early.error_stage == "render" and "serves no kind ClusterIssuer" in early.error
    out = engine.reconcile(f"{ns}-crds")
    assert (out.sync, out.error) == (SyncStatus.SYNCED, None), out.error
    out = engine.reconcile(f"{ns}-issuers")
    assert (out.sync, out.error) == (SyncStatus.SYNCED, None), out.error
    assert kube.get(f"/apis/{group}/v1/clusterissuers/ca-{ns}")["spec"] == {"selfSigned": {}}
