"""Drift records name who changed the object, from managedFields, never the revision's author
(issue 15 item 2), against the real API server."""

from __future__ import annotations

import pytest
from conftest import Kube, deployment, k8s_target, manifests

from setpoint.testing import GitRepo, wait_for

pytestmark = pytest.mark.kubernetes


def test_drift_names_the_field_manager_that_changed_it(kube: Kube, git_repo: GitRepo, engine_for) -> None:  # type: ignore[no-untyped-def]
    ns = kube.namespace
    git_repo.commit({"app/web.yaml": manifests(deployment())}, "web 1", author="Bob <bob@example.com>")
    engine = engine_for(git_repo, [k8s_target(ns, kube.kubeconfig, ns)])
    assert engine.reconcile(ns).error is None
    key = f"Deployment.apps/{ns}/web"
    cache = engine.runners[ns].driver.cache

    def live() -> dict:  # type: ignore[type-arg]
        return cache.find("apps", "Deployment").snapshot()[key]

    kube.kubectl("scale", "deployment/web", "--replicas=5")  # kubectl writes through the scale subresource
    wait_for(lambda: live()["spec"]["replicas"] == 5, 5)
    out = engine.reconcile(ns)
    assert [c.changed_by for c in out.drift] == ["kubectl via scale"]
    detected = engine.store.audit_entries(actions=("drift-detected",))[-1]
    assert detected.actor == "kubectl via scale" and detected.details["changed_by"] == "kubectl via scale"
    assert detected.author == "Bob <bob@example.com>", "the revision's author stays the revision's"

    kube.kubectl("patch", "deployment/web", "--type=strategic", "--field-manager=hotfix-by-carol", "-p",
                 '{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"registry.local/web:9"}]}}}}')
    wait_for(lambda: live()["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/web:9", 5)
    out = engine.reconcile(ns)
    assert [c.changed_by for c in out.drift] == ["hotfix-by-carol"]
    assert engine.store.audit_entries(actions=("drift-detected",))[-1].actor == "hotfix-by-carol"
