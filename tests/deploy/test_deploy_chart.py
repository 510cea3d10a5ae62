"""The Helm chart (deploy/chart/setpoint) and the plain manifests rendered from it
(deploy/kubernetes), checked without helm: the manifests agree with the chart's values (RBAC rules,
resources, security context, probes, grace), the RBAC is namespaced unless opted in, the ConfigMap
holds a setpoint.yaml that setpoint loads, and every kind in the manifests comes from a template.
tests/deploy/test_deploy_kubernetes.py applies the manifests to a real API server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from setpoint.config import load_config

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "chart" / "setpoint"
MANIFESTS = ROOT / "deploy" / "kubernetes"


def values() -> dict[str, Any]:
    return dict(yaml.safe_load((CHART / "values.yaml").read_text()))


def objects(name: str = "setpoint.yaml") -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((MANIFESTS / name).read_text()) if d]


def by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in docs}


def test_chart_metadata_and_templates() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "setpoint"
    version = next(line.split('"')[1] for line in (ROOT / "core" / "pyproject.toml").read_text().splitlines()
                   if line.startswith("version = "))
    assert chart["appVersion"] == version == values()["image"]["tag"]
    templates = "\n".join(p.read_text() for p in (CHART / "templates").glob("*.yaml"))
    for kind in ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "Secret",
                 "Service", "StatefulSet", "ServiceMonitor"):
        assert f"kind: {kind}\n" in templates, kind
    for doc in objects() + objects("cluster-wide-rbac.yaml"):
        assert f"kind: {doc['kind']}\n" in templates


def test_plain_manifests_agree_with_the_values() -> None:
    v = values()
    kinds = by_kind(objects())
    assert set(kinds) == {"ServiceAccount", "ConfigMap", "Role", "RoleBinding", "Service", "StatefulSet"}
    assert all(d["metadata"]["namespace"] == "setpoint" for d in kinds.values())
    # namespaced by default: a Role with the chart's rules, bound to the ServiceAccount only
    assert kinds["Role"]["rules"] == v["rbac"]["rules"]
    assert kinds["RoleBinding"]["subjects"] == [{"kind": "ServiceAccount", "name": "setpoint", "namespace": "setpoint"}]
    assert kinds["RoleBinding"]["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "setpoint"}
    verbs = {verb for rule in v["rbac"]["rules"] for verb in rule["verbs"]}
    assert "*" not in verbs and "escalate" not in verbs and "bind" not in verbs and "impersonate" not in verbs
    assert not any("*" in rule["resources"] or "*" in rule["apiGroups"] for rule in v["rbac"]["rules"])
    # cluster-wide only in its own file, opt-in
    wide = by_kind(objects("cluster-wide-rbac.yaml"))
    assert set(wide) == {"ClusterRole", "ClusterRoleBinding"} and v["rbac"]["clusterWide"] is False
    assert wide["ClusterRoleBinding"]["subjects"][0]["name"] == "setpoint"

    sts = kinds["StatefulSet"]["spec"]
    assert sts["replicas"] == 1   # SQLite: one writer
    pod = sts["template"]["spec"]
    [container] = pod["containers"]
    assert pod["serviceAccountName"] == "setpoint" and pod["automountServiceAccountToken"] is True
    assert pod["securityContext"] == v["podSecurityContext"] and container["securityContext"] == v["securityContext"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["resources"] == v["resources"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 9464, "protocol": "TCP"}]
    assert container["image"] == f"{v['image']['repository']}:{v['image']['tag']}"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/etc/setpoint"]["readOnly"] and mounts["/etc/setpoint/secrets"]["readOnly"]
    assert {"/var/lib/setpoint", "/tmp"} <= set(mounts)
    assert sts["volumeClaimTemplates"][0]["metadata"]["name"] == "state"
    # the pod's grace outlasts setpoint's own shutdown grace (lifecycle.shutdown_grace, 120 s by default)
    assert pod["terminationGracePeriodSeconds"] == v["terminationGracePeriodSeconds"] > 120
    assert kinds["Service"]["spec"]["ports"][0]["targetPort"] == "http"


def test_the_configmap_is_a_setpoint_yaml_setpoint_loads(tmp_path: Path) -> None:
    text = by_kind(objects())["ConfigMap"]["data"]["setpoint.yaml"]
    config = yaml.safe_load(text)
    assert config == values()["config"]
    assert config["state"].startswith("sqlite:////var/lib/setpoint/")
    assert config["server"]["listen"] == "0.0.0.0:9464"
    assert all(t["kubernetes"]["in_cluster"] for t in config["targets"] if t["kind"] == "kubernetes")
    (tmp_path / "setpoint.yaml").write_text(text)
    loaded = load_config(tmp_path / "setpoint.yaml")
    assert [t.name for t in loaded.targets] == ["apps"]


def test_kustomization_lists_the_files() -> None:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    assert kustomization["namespace"] == "setpoint"
    for resource in kustomization["resources"]:
        assert (MANIFESTS / resource).exists()
