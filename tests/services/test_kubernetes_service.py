"""Smoke tests: the control plane is a real kube-apiserver (dev/services up kubernetes)."""

from __future__ import annotations

import time
import uuid

import pytest

pytestmark = pytest.mark.kubernetes

MANAGER = "setpoint"


def configmap(name: str, namespace: str, data: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}, "data": data}


def test_server_side_apply_configmap(k8s_dynamic, k8s_namespace):
    cms = k8s_dynamic.resources.get(api_version="v1", kind="ConfigMap")
    obj = k8s_dynamic.server_side_apply(cms, body=configmap("cm", k8s_namespace, {"a": "1"}), field_manager=MANAGER)
    assert obj.data.a == "1"
    managers = [m.manager for m in obj.metadata.managedFields]
    assert managers == [MANAGER]
    assert obj.metadata.managedFields[0].operation == "Apply"


def test_dry_run_apply_persists_nothing(k8s_dynamic, k8s_namespace):
    cms = k8s_dynamic.resources.get(api_version="v1", kind="ConfigMap")
    k8s_dynamic.server_side_apply(cms, body=configmap("cm", k8s_namespace, {"a": "1"}), field_manager=MANAGER)
    dry = k8s_dynamic.server_side_apply(
        cms, body=configmap("cm", k8s_namespace, {"a": "2"}), field_manager=MANAGER, dry_run="All"
    )
    assert dry.data.a == "2"
    assert k8s_dynamic.get(cms, name="cm", namespace=k8s_namespace).data.a == "1"


def test_conflict_with_second_field_manager(k8s_dynamic, k8s_namespace):
    from kubernetes.client.exceptions import ApiException

    cms = k8s_dynamic.resources.get(api_version="v1", kind="ConfigMap")
    k8s_dynamic.server_side_apply(cms, body=configmap("cm", k8s_namespace, {"a": "1"}), field_manager=MANAGER)
    with pytest.raises(ApiException) as exc:
        k8s_dynamic.server_side_apply(cms, body=configmap("cm", k8s_namespace, {"a": "2"}), field_manager="intruder")
    assert exc.value.status == 409
    assert MANAGER in exc.value.body  # the conflict names the owning manager
    # forcing takes ownership
    forced = k8s_dynamic.server_side_apply(
        cms, body=configmap("cm", k8s_namespace, {"a": "2"}), field_manager="intruder", force_conflicts=True
    )
    assert forced.data.a == "2"


def test_crd_and_custom_resource(k8s_dynamic, k8s_namespace):
    group = f"t{uuid.uuid4().hex[:8]}.setpoint.test"
    crd_body = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{
                "name": "v1", "served": True, "storage": True,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {"type": "object", "properties": {
                        "size": {"type": "integer"},
                        "color": {"type": "string", "default": "blue"},
                    }}},
                }},
            }],
        },
    }
    crds = k8s_dynamic.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    k8s_dynamic.server_side_apply(crds, body=crd_body, field_manager=MANAGER)
    try:
        deadline = time.monotonic() + 30
        while True:
            crd = k8s_dynamic.get(crds, name=f"widgets.{group}")
            conds = {c.type: c.status for c in (crd.status.conditions or [])}
            if conds.get("Established") == "True":
                break
            assert time.monotonic() < deadline, f"CRD not Established: {conds}"
            time.sleep(0.2)
        k8s_dynamic.resources.invalidate_cache()  # re-discover after the CRD appeared
        widgets = k8s_dynamic.resources.get(api_version=f"{group}/v1", kind="Widget")
        cr = k8s_dynamic.server_side_apply(
            widgets,
            body={"apiVersion": f"{group}/v1", "kind": "Widget",
                  "metadata": {"name": "w1", "namespace": k8s_namespace}, "spec": {"size": 3}},
            field_manager=MANAGER,
        )
        assert cr.spec.size == 3
        assert cr.spec.color == "blue"  # structural schema default applied by the server
    finally:
        k8s_dynamic.delete(crds, name=f"widgets.{group}")


def test_deployment_defaulting(k8s_dynamic, k8s_namespace):
    deps = k8s_dynamic.resources.get(api_version="apps/v1", kind="Deployment")
    body = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": k8s_namespace},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": "setpoint-test/busybox:1"}]}},
        },
    }
    obj = k8s_dynamic.server_side_apply(deps, body=body, field_manager=MANAGER)
    spec = obj.spec
    # fields the server filled in (not in the applied body): the source of perpetual diffs
    assert spec.replicas == 1
    assert spec.revisionHistoryLimit == 10
    assert spec.progressDeadlineSeconds == 600
    assert spec.strategy.type == "RollingUpdate"
    container = spec.template.spec.containers[0]
    assert container.imagePullPolicy == "IfNotPresent"
    assert container.terminationMessagePath == "/dev/termination-log"
    assert spec.template.spec.restartPolicy == "Always"
    # the owned fields are only those applied
    owned = obj.metadata.managedFields[0].fieldsV1["f:spec"]
    assert "f:revisionHistoryLimit" not in owned


def test_namespace_deletion_finishes(k8s_api_client):
    """kube-controller-manager's namespace controller runs: a deleted namespace goes away."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(k8s_api_client)
    name = core.create_namespace({"metadata": {"generateName": "sptest-del-"}}).metadata.name
    core.create_namespaced_config_map(name, {"metadata": {"name": "x"}, "data": {"k": "v"}})
    core.delete_namespace(name)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            core.read_namespace(name)
        except ApiException as e:
            if e.status == 404:
                return
            raise
        time.sleep(0.5)
    pytest.fail(f"namespace {name} still exists 60 s after deletion (is kube-controller-manager running?)")
