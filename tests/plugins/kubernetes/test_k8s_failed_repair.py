"""A repair that fails is reported as such: the target is OutOfSync with the error (never Synced
while listing drift it could not revert), and the log says "reverted drift" only for what really
was reverted."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from conftest import Kube, configmap, k8s_target, manifests
from test_k8s_conflicts import intruder_apply

from setpoint.api import SyncStatus
from setpoint.testing import GitRepo, wait_for

pytestmark = pytest.mark.kubernetes


def test_failed_revert_is_out_of_sync_and_not_logged_as_reverted(kube: Kube, git_repo: GitRepo, engine_for,  # type: ignore[no-untyped-def]
                                                                 caplog: Any) -> None:
    caplog.set_level(logging.INFO)
    ns = kube.namespace
    git_repo.commit({"app/cm.yaml": manifests(configmap("held", {"a": "1"}), configmap("edited", {"a": "1"}))})
    engine = engine_for(git_repo, [k8s_target(ns, kube.kubeconfig, ns)])
    assert engine.reconcile(ns).sync == SyncStatus.SYNCED
    assert engine.store.status(ns)["sync"] == "Synced"

    # one object edited by hand (revertible), one taken by another applier (the revert conflicts)
    kube.kubectl("patch", "configmap", "edited", "--type=merge", "-p", '{"data":{"a":"by-hand"}}')
    intruder_apply(kube, "other-gitops", configmap("held", {"a": "theirs"}))
    cache = engine.runners[ns].driver.cache.find("", "ConfigMap")
    wait_for(lambda: cache.snapshot()[f"ConfigMap/{ns}/held"]["data"]["a"] == "theirs"
             and cache.snapshot()[f"ConfigMap/{ns}/edited"]["data"]["a"] == "by-hand", 5)
    caplog.clear()
    out = engine.reconcile(ns)
    assert out.error_stage == "apply" and "other-gitops" in out.error, out.error
    assert out.sync == SyncStatus.OUT_OF_SYNC
    status = engine.store.status(ns)
    assert status["sync"] == "OutOfSync" and f"ConfigMap/{ns}/held" in status["drift"] and status["last_error"]
    reverted = [r.getMessage() for r in caplog.records if "reverted drift" in r.getMessage()]
    assert reverted == [f"reverted drift on ConfigMap/{ns}/edited"], reverted
    assert kube.obj("api/v1/configmaps", "edited")["data"]["a"] == "1"
    assert kube.obj("api/v1/configmaps", "held")["data"]["a"] == "theirs"
    # and it stays OutOfSync while the conflict lasts
    assert engine.reconcile(ns).sync == SyncStatus.OUT_OF_SYNC
    assert engine.store.status(ns)["sync"] == "OutOfSync"
