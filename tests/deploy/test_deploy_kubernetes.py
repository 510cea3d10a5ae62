"""The plain manifests (deploy/kubernetes, rendered from the Helm chart) applied to the real API
server, then setpoint authenticated ONLY with the chart's ServiceAccount token (TokenRequest API)
and the cluster CA, through the in-cluster configuration path (`in_cluster: true`, the token and CA
files and KUBERNETES_SERVICE_HOST/PORT a pod would have): the five phases pass in its namespace, and
what the RBAC does not grant is refused with a clear error and nothing of that commit applied."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from setpoint.api import SyncStatus
from setpoint.testing import GitRepo, make_engine, write_config

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"
KUBECTL = "/usr/bin/kubectl"
pytestmark = pytest.mark.kubernetes


def kubectl(kubeconfig: str, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, *args], input=stdin, capture_output=True, text=True,
                          timeout=120)
    if check:
        assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
    return proc


def in_namespace(name: str, namespace: str) -> str:
    """The manifests as `kustomize edit set namespace` would make them."""
    docs = [d for d in yaml.safe_load_all((MANIFESTS / name).read_text()) if d]
    for doc in docs:
        if "namespace" in doc["metadata"]:
            doc["metadata"]["namespace"] = namespace
        if doc["kind"] in ("ClusterRole", "ClusterRoleBinding"):
            doc["metadata"]["name"] = f"setpoint-{namespace}"
        if doc["kind"] == "ClusterRoleBinding":
            doc["roleRef"]["name"] = f"setpoint-{namespace}"
        for subject in doc.get("subjects", []):
            subject["namespace"] = namespace
    return yaml.safe_dump_all(docs)


def deployment(image: str, replicas: int = 2) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": image}]}}}}


def configmap(name: str, value: str, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"value": value}}


def role(name: str) -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}


def dump(*objects: dict[str, Any]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False)


@pytest.fixture
def service_account_only(kubeconfig: str, k8s_namespace: str, tmp_path: Path,
                         monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """Apply the manifests to a fresh namespace, then make this process look like setpoint's pod:
    the ServiceAccount token from the TokenRequest API and the cluster CA at the in-cluster paths,
    KUBERNETES_SERVICE_HOST/PORT set, no kubeconfig anywhere."""
    ns = k8s_namespace
    # as deploy/kubernetes/namespace.yaml labels it: the pod must meet the `restricted` Pod Security level
    kubectl(kubeconfig, "label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
    applied = kubectl(kubeconfig, "apply", "--server-side", "--field-manager", "setpoint-install", "-f", "-",
                      stdin=in_namespace("setpoint.yaml", ns))
    assert sorted(line.split()[0] for line in applied.stdout.splitlines()) == sorted([
        "serviceaccount/setpoint", "configmap/setpoint-config", "role.rbac.authorization.k8s.io/setpoint",
        "rolebinding.rbac.authorization.k8s.io/setpoint", "service/setpoint", "statefulset.apps/setpoint"])
    assert "PodSecurity" not in applied.stderr, applied.stderr   # a violation is a warning on workloads
    # the cluster-wide opt-in is valid too (checked by the API server, not granted)
    kubectl(kubeconfig, "apply", "--dry-run=server", "-f", "-", stdin=in_namespace("cluster-wide-rbac.yaml", ns))

    token = kubectl(kubeconfig, "-n", ns, "create", "token", "setpoint", "--duration", "1h").stdout.strip()
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["sub"] == f"system:serviceaccount:{ns}:setpoint"
    view = json.loads(kubectl(kubeconfig, "config", "view", "--raw", "--minify", "-o", "json").stdout)
    cluster = view["clusters"][0]["cluster"]
    ca = (base64.b64decode(cluster["certificate-authority-data"]) if "certificate-authority-data" in cluster
          else Path(cluster["certificate-authority"]).read_bytes())
    pod = tmp_path / "serviceaccount"
    pod.mkdir()
    (pod / "token").write_text(token)
    (pod / "ca.crt").write_bytes(ca)
    server = urlparse(cluster["server"])
    from kubernetes.config import incluster_config

    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(pod / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(pod / "ca.crt"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", str(server.hostname))
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(server.port))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))   # no ~/.kube/config either
    from setpoint_kubernetes import client as k8s_client

    monkeypatch.setattr(k8s_client, "_clients", {})
    return ns, str(cluster["server"])


def test_five_phases_and_refusals_with_only_the_serviceaccount(service_account_only: tuple[str, str], kubeconfig: str,
                                                               git_repo: GitRepo, tmp_path: Path) -> None:
    ns, server = service_account_only

    def live(kind: str, name: str) -> dict[str, Any] | None:
        proc = kubectl(kubeconfig, "-n", ns, "get", kind, name, "-o", "json", check=False)
        return json.loads(proc.stdout) if proc.returncode == 0 else None

    git_repo.commit({"app/all.yaml": dump(deployment("registry.local/web:1"), configmap("settings", "a"))}, "v1")
    target = {"name": "app", "kind": "kubernetes", "path": "app", "interval": "1h", "prune": True,
              "kubernetes": {"in_cluster": True, "namespace": ns, "scope": "namespace"}}
    engine = make_engine(write_config(tmp_path, git_repo.path, [target], server={"enabled": False}),
                         load_entrypoints=True)
    try:
        # 1. deploy
        out = engine.reconcile("app")
        assert out.sync == SyncStatus.SYNCED and out.error is None, out.error
        assert live("deployment", "web")["spec"]["replicas"] == 2
        assert live("configmap", "settings")["data"] == {"value": "a"}
        assert engine.runners["app"].driver.cluster.label == "the in-cluster API server"

        # 2. no-op
        out = engine.reconcile("app")
        assert out.sync == SyncStatus.SYNCED and not out.actions

        # 3. drift by hand (admin) is reverted by the ServiceAccount
        kubectl(kubeconfig, "-n", ns, "scale", "deployment/web", "--replicas=5")
        out = engine.reconcile("app")
        assert [c.key for c in out.drift] and live("deployment", "web")["spec"]["replicas"] == 2

        # 4. a new commit
        git_repo.commit({"app/all.yaml": dump(deployment("registry.local/web:2"), configmap("settings", "b"))}, "v2")
        out = engine.reconcile("app")
        assert out.sync == SyncStatus.SYNCED, out.error
        assert live("deployment", "web")["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/web:2"

        # 5. rollback by git revert
        git_repo.revert()
        out = engine.reconcile("app")
        assert out.sync == SyncStatus.SYNCED, out.error
        assert live("deployment", "web")["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/web:1"
        assert live("configmap", "settings")["data"] == {"value": "a"}

        # refused by RBAC: a kind the Role does not grant (a Role: no privilege escalation through
        # setpoint), committed together with an allowed change, which must not be applied either
        git_repo.commit({"app/all.yaml": dump(deployment("registry.local/web:1"), configmap("settings", "c"),
                                              role("sneaky"))}, "add a role")
        out = engine.reconcile("app")
        assert out.failed, out
        # the API server's own words: who, which verb, which resource, where
        assert "403 Forbidden" in out.error and f'User "system:serviceaccount:{ns}:setpoint"' in out.error, out.error
        assert 'resource "roles"' in out.error, out.error
        assert live("configmap", "settings")["data"] == {"value": "a"}
        assert live("role", "sneaky") is None

        # refused before any request: an object in another namespace under scope: namespace
        git_repo.commit({"app/all.yaml": dump(deployment("registry.local/web:1"), configmap("settings", "d"),
                                              configmap("elsewhere", "x", namespace="default"))}, "reach out")
        out = engine.reconcile("app")
        assert out.failed and out.error_stage == "render", out.error
        assert f"allows objects in namespace {ns} only" in out.error and "ConfigMap/elsewhere (namespace default)" in out.error
        assert live("configmap", "settings")["data"] == {"value": "a"}

        # and the RBAC really stops at the namespace: the same token cannot read next door
        can = subprocess.run([KUBECTL, "--kubeconfig", "/dev/null", "--server", server, "--token", (tmp_path / "serviceaccount" / "token").read_text(),
                              "--certificate-authority", str(tmp_path / "serviceaccount" / "ca.crt"),
                              "auth", "can-i", "create", "configmaps", "-n", "default"], capture_output=True, text=True,
                             timeout=60)
        assert can.stdout.strip() == "no"

        # back to a commit it may apply: it heals
        git_repo.commit({"app/all.yaml": dump(deployment("registry.local/web:1"), configmap("settings", "e"))}, "fix")
        out = engine.reconcile("app")
        assert out.sync == SyncStatus.SYNCED, out.error
        assert live("configmap", "settings")["data"] == {"value": "e"}
    finally:
        engine.close()


def test_kustomize_builds_the_documented_install(kubeconfig: str) -> None:
    """`kubectl apply -k deploy/kubernetes` as docs/deploy.md shows it: the kustomization builds, puts
    everything in namespace `setpoint`, and the namespace enforces the `restricted` Pod Security level."""
    built = [d for d in yaml.safe_load_all(kubectl(kubeconfig, "kustomize", str(MANIFESTS)).stdout) if d]
    kinds = sorted(d["kind"] for d in built)
    assert kinds == sorted(["Namespace", "ServiceAccount", "ConfigMap", "Role", "RoleBinding", "Service",
                            "StatefulSet"]), kinds
    [namespace] = [d for d in built if d["kind"] == "Namespace"]
    assert namespace["metadata"]["name"] == "setpoint"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert all(d["metadata"].get("namespace") == "setpoint" for d in built if d["kind"] != "Namespace")
    # (the objects themselves are applied for real, in a test namespace, by the test above)
    client = kubectl(kubeconfig, "apply", "--dry-run=client", "-k", str(MANIFESTS))
    assert "namespace/setpoint" in client.stdout and "statefulset.apps/setpoint" in client.stdout, client.stdout
