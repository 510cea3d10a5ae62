"""Pure functions behind list-drift repair and hooks (the behaviour itself is tested against the real
API server in test_k8s_list_drift.py, test_k8s_helm.py and test_k8s_argocd.py)."""

from __future__ import annotations

import pytest

from setpoint.errors import RenderError
from setpoint_kubernetes.hooks import filter_hooks
from setpoint_kubernetes.ownership import foreign_entries, taken_over

PORT_80 = 'k:{"port":80,"protocol":"TCP"}'
PORT_8080 = 'k:{"port":8080,"protocol":"TCP"}'


def live_service() -> dict:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "resourceVersion": "7", "managedFields": [
            {"manager": "setpoint", "operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:spec": {"f:selector": {}}}},
            {"manager": "kubectl-edit", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:spec": {"f:ports": {PORT_8080: {".": {}, "f:port": {}, "f:targetPort": {}}}}}},
            {"manager": "other-gitops", "operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:metadata": {"f:labels": {"f:team": {}}}}},
        ]},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 8080, "targetPort": 8080, "protocol": "TCP"}]},
    }


def test_foreign_entry_found_and_taken_over() -> None:
    live = live_service()
    want = {"spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    found = foreign_entries(live, want, "setpoint")
    assert [f.path for f in found] == ["spec.ports[port=8080,protocol=TCP]"]
    entries = taken_over(live, found, "setpoint")
    managers = {e["manager"]: e for e in entries}
    assert "kubectl-edit" not in managers, "its only fields moved: the entry goes"
    assert managers["setpoint"]["fieldsV1"]["f:spec"]["f:ports"][PORT_8080] == {".": {}, "f:port": {}, "f:targetPort": {}}
    assert managers["setpoint"]["fieldsV1"]["f:spec"]["f:selector"] == {}
    assert managers["other-gitops"]["fieldsV1"] == {"f:metadata": {"f:labels": {"f:team": {}}}}


def test_entries_git_has_or_another_applier_owns_are_not_foreign() -> None:
    live = live_service()
    assert foreign_entries(live, {"spec": {"ports": [{"port": 8080}]}}, "setpoint") == []
    assert foreign_entries(live, {"spec": {"selector": {"app": "web"}}}, "setpoint") == [], "Git does not set the list"
    assert foreign_entries(live, {"spec": {"ports": [{"port": 80}]}}, "setpoint", ("kubectl-edit",)) == []
    live["metadata"]["managedFields"][2]["fieldsV1"] = {"f:spec": {"f:ports": {PORT_8080: {"f:name": {}}}}}
    assert foreign_entries(live, {"spec": {"ports": [{"port": 80}]}}, "setpoint") == []


def hook(kind: str, name: str, annotations: dict) -> dict:
    return {"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "annotations": annotations}}


def test_hooks_tests_left_out_others_refused_or_skipped() -> None:
    plain = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    test = hook("Pod", "t-abcde", {"helm.sh/hook": "test"})
    skip = hook("ConfigMap", "s", {"argocd.argoproj.io/hook": "Skip"})
    job = hook("Job", "migrate", {"helm.sh/hook": "pre-install,pre-upgrade"})
    assert filter_hooks([plain, test, skip], "refuse") == ([plain], [])
    with pytest.raises(RenderError, match=r"Job/migrate \(pre-install, pre-upgrade\).*hooks: skip"):
        filter_hooks([plain, job], "refuse")
    kept, notes = filter_hooks([plain, job], "skip")
    assert kept == [plain] and "Job/migrate" in notes[0]
