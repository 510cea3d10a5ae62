"""Empty maps and lists Git sets are desired state: removing cert-manager's `spec.selfSigned: {}`
(or an empty list) from a custom resource by hand is drift, also for a process that never applied
the object; the empty maps the server drops itself (`annotations: {}`) stay no difference."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from conftest import Kube, configmap, issuer_crd, k8s_target, manifests

from setpoint.api import SyncStatus
from setpoint.testing import GitRepo, make_engine, wait_for, write_config

pytestmark = pytest.mark.kubernetes


def test_removing_an_empty_object_or_list_is_drift(kube: Kube, git_repo: GitRepo, engine_for,  # type: ignore[no-untyped-def]
                                                  tmp_path: Path) -> None:
    ns = kube.namespace
    group = f"e{uuid.uuid4().hex[:8]}.example.com"
    issuer = {"apiVersion": f"{group}/v1", "kind": "ClusterIssuer", "metadata": {"name": f"selfsigned-{ns}"},
              "spec": {"selfSigned": {}, "solvers": []}}
    git_repo.commit({"app/crd.yaml": manifests(issuer_crd(group)),
                     "app/issuer.yaml": manifests(issuer, configmap("plain", {"a": "1"}, annotations={}))})
    target = k8s_target(ns, kube.kubeconfig, ns)
    engine = engine_for(git_repo, [target])
    out = engine.reconcile(ns)
    assert (out.sync, out.error) == (SyncStatus.SYNCED, None), out.error
    path = f"/apis/{group}/v1/clusterissuers/selfsigned-{ns}"
    assert kube.get(path)["spec"] == {"selfSigned": {}, "solvers": []}
    quiet = engine.reconcile(ns)
    assert (quiet.sync, quiet.drift, quiet.actions) == (SyncStatus.SYNCED, (), ()), "annotations: {} is no difference"

    cache = engine.runners[ns].driver.cache.find(group, "ClusterIssuer")
    key = f"ClusterIssuer.{group}/selfsigned-{ns}"
    for field in ("selfSigned", "solvers"):
        kube.kubectl("patch", "clusterissuer." + group, f"selfsigned-{ns}", "--type=json",
                     "-p", json.dumps([{"op": "remove", "path": f"/spec/{field}"}]), namespaced=False)
        wait_for(lambda f=field: f not in cache.snapshot()[key]["spec"], 5)
        # a second process, with the same state (it remembers what the server keeps), and a replica
        # with a state of its own, which never applied the object (it asks the server once)
        assert engine_for(git_repo, [target]).reconcile(ns, dry_run=True).sync == SyncStatus.OUT_OF_SYNC, field
        fresh_dir = tmp_path / f"replica-{field}"
        fresh_dir.mkdir()
        replica = make_engine(write_config(fresh_dir, git_repo.path, [target]), load_entrypoints=True)
        try:
            assert replica.reconcile(ns, dry_run=True).sync == SyncStatus.OUT_OF_SYNC, field
        finally:
            replica.close()
        out = engine.reconcile(ns)
        assert (out.sync, out.error) == (SyncStatus.SYNCED, None), out.error
        assert [f.path for c in out.drift for f in c.fields] == [f"spec.{field}"]
        assert kube.get(path)["spec"] == {"selfSigned": {}, "solvers": []}
